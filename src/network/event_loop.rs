//! The event loop that owns the Swarm alone. The rest of the node holds a
//! cheap [`Client`] that sends [`Command`]s, and reads [`NetworkEvent`]s from
//! a channel: the shape of rust-libp2p's file-sharing example.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, PublishError};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, kad, noise, tcp, yamux, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use super::addrbook::{AddressBook, Reach};
use super::bans::Bans;
use super::behaviour::{Behaviour, BehaviourEvent};
use super::manage::{Dial, FixedPeer};
use super::peer_set::{self, Limits, PeerSet};
use super::protocol::{SyncRequest, SyncResponse};
use crate::consensus::Params;
use crate::rpc::{QueryRequest, QueryResponse, StatusBoard};

/// The two gossip topics of a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    Transactions,
    Blocks,
}

#[derive(Debug)]
pub enum Command {
    Publish {
        topic: Topic,
        data: Vec<u8>,
    },
    ReportValidation {
        id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    },
    /// A sync request; its reply (or why there is none) comes back on `reply`.
    SendSync {
        peer: PeerId,
        request: SyncRequest,
        reply: oneshot::Sender<SyncReply>,
    },
    RespondSync {
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
    },
    RespondQuery {
        channel: ResponseChannel<QueryResponse>,
        response: QueryResponse,
    },
    /// Dials a peer now and keeps it connected (as `node connect`).
    Dial(Multiaddr),
    Disconnect(PeerId),
    /// The node's score of a peer, fed into gossipsub's peer score.
    SetScore {
        peer: PeerId,
        score: f64,
    },
    /// Disconnects a peer and refuses it for a while.
    Ban {
        peer: PeerId,
        duration: Duration,
    },
}

#[derive(Debug)]
pub enum NetworkEvent {
    /// A complete listen address, ending in `/p2p/<peer id>`.
    Listening(Multiaddr),
    PeerConnected {
        peer: PeerId,
        addr: Multiaddr,
    },
    PeerDisconnected {
        peer: PeerId,
    },
    Gossip {
        source: PeerId,
        id: MessageId,
        topic: Topic,
        data: Vec<u8>,
    },
    SyncRequest {
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    },
    /// A peer's sync request could not be read (malformed, over a cap).
    SyncMalformedRequest {
        peer: PeerId,
        error: String,
    },
    QueryRequest {
        peer: PeerId,
        request: QueryRequest,
        channel: ResponseChannel<QueryResponse>,
    },
}

/// The answer to one sync request we made: the peer's response, or why
/// there is none (a timeout, a dropped stream, an unreadable reply).
pub type SyncReply = Result<SyncResponse, String>;

/// The node's handle on the network.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    pub peer_id: PeerId,
}

impl Client {
    /// Sends a command; `false` when the event loop has stopped. Never waits.
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok()
    }

    /// Sends a sync request to `peer`; the receiver gets exactly its reply
    /// (libp2p matches it to the request's stream), or the failure.
    pub fn request_sync(&self, peer: PeerId, request: SyncRequest) -> oneshot::Receiver<SyncReply> {
        let (reply, receiver) = oneshot::channel();
        // If the loop has stopped, `reply` is dropped and the receiver says so.
        let _ = self.commands.send(Command::SendSync { peer, request, reply });
        receiver
    }
}

/// What the node hears from the network, on two channels: connections come
/// and go on one without bound (the connection limits bound them), while
/// gossip and inbound requests, which peers can send at will, queue on a
/// bounded one. When that one is full the event loop sheds the work (gossip
/// is ignored, requests refused as busy) instead of waiting: the swarm is
/// always polled, whatever the node is busy with. Blocks have a bounded lane
/// of their own, read before the rest, so that a flood of transactions
/// never makes the node drop the blocks that confirm them.
pub struct NetworkEvents {
    control: mpsc::UnboundedReceiver<NetworkEvent>,
    blocks: mpsc::Receiver<NetworkEvent>,
    work: mpsc::Receiver<NetworkEvent>,
}

impl NetworkEvents {
    /// The next event, connection events first; `None` once the loop has stopped.
    pub async fn recv(&mut self) -> Option<NetworkEvent> {
        tokio::select! {
            biased;
            Some(event) = self.control.recv() => Some(event),
            Some(event) = self.blocks.recv() => Some(event),
            event = self.work.recv() => event,
        }
    }
}

/// Gossip messages and inbound requests queued for the node at most.
pub const WORK_QUEUE: usize = 1024;
/// Block messages queued for the node at most, apart from the rest.
pub const BLOCK_QUEUE: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(start);
        let burst = (0..1_000).take_while(|_| bucket.take(start)).count();
        assert_eq!(burst, REQUEST_BURST as usize);
        assert!(!bucket.take(start));
        // One second later, about REQUESTS_PER_SEC more.
        let later = start + Duration::from_secs(1);
        let refill = (0..1_000).take_while(|_| bucket.take(later)).count();
        assert_eq!(refill, REQUESTS_PER_SEC as usize);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot set up the transport: {0}")]
    Transport(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error(transparent)]
    Behaviour(#[from] super::behaviour::BehaviourError),
}

pub struct NetworkConfig {
    pub listen: Vec<Multiaddr>,
    pub external_addrs: Vec<Multiaddr>,
    /// Dialled at start, and again (with backoff) while the node has fewer peers than its target.
    pub bootstrap: Vec<Multiaddr>,
    /// When not empty, the only peers dialled (`--connect`): no discovery.
    pub connect: Vec<Multiaddr>,
    pub limits: Limits,
    /// Whether a connection from this address may use the query protocol.
    pub query_allowed: Box<dyn Fn(IpAddr) -> bool + Send>,
    /// The node's latest status, kept up to date by the node: `status`
    /// queries are answered from it here, without waiting for the node.
    pub status: Option<StatusBoard>,
    /// Where the address book and the bans are kept; `None`: in memory only.
    pub datadir: Option<PathBuf>,
    /// The secret `node …` commands must present; `None`: they are refused.
    pub cookie: Option<String>,
}

impl Default for NetworkConfig {
    fn default() -> NetworkConfig {
        NetworkConfig {
            listen: Vec::new(),
            external_addrs: Vec::new(),
            bootstrap: Vec::new(),
            connect: Vec::new(),
            limits: Limits { max_connections: DEFAULT_MAX_CONNECTIONS, outbound_target: DEFAULT_OUTBOUND_PEERS },
            query_allowed: Box::new(|_| false),
            status: None,
            datadir: None,
            cookie: None,
        }
    }
}

/// `--max-connections` and `--outbound-peers` by default, as bitcoind's.
pub const DEFAULT_MAX_CONNECTIONS: usize = 125;
pub const DEFAULT_OUTBOUND_PEERS: usize = 8;

pub struct EventLoop {
    pub(super) swarm: Swarm<Behaviour>,
    commands: mpsc::UnboundedReceiver<Command>,
    control: mpsc::UnboundedSender<NetworkEvent>,
    work: mpsc::Sender<NetworkEvent>,
    blocks: mpsc::Sender<NetworkEvent>,
    /// Our sync requests in flight, each with where its reply goes.
    pending_sync: HashMap<request_response::OutboundRequestId, oneshot::Sender<SyncReply>>,
    status: Option<StatusBoard>,
    /// Work shed because the node's queue was full, not yet logged.
    shed: u64,
    tx_topic: IdentTopic,
    block_topic: IdentTopic,
    query_allowed: Box<dyn Fn(IpAddr) -> bool + Send>,
    pub(super) peer_set: PeerSet,
    pub(super) book: AddressBook,
    pub(super) bans: Bans,
    pub(super) datadir: Option<PathBuf>,
    pub(super) cookie: Option<String>,
    /// Our dials in flight, by the connection they will be.
    pub(super) dials: HashMap<libp2p::swarm::ConnectionId, Dial>,
    /// Bootstrap, `--connect` and `node connect` peers.
    pub(super) fixed: Vec<FixedPeer>,
    pub(super) connect_only: bool,
    /// Kinds of address besides public ones that we accept from peers: the
    /// kinds of network the node listens on.
    pub(super) reach: HashSet<Reach>,
    /// `node connect` replies waiting for their connection.
    pub(super) connect_replies: HashMap<libp2p::swarm::ConnectionId, ResponseChannel<QueryResponse>>,
    /// The topic of each gossip message the node is validating, to credit its source.
    gossip_topics: HashMap<MessageId, Topic>,
    /// Request budgets per peer and protocol.
    sync_limits: HashMap<PeerId, TokenBucket>,
    query_limits: HashMap<PeerId, TokenBucket>,
    pub(super) last_peer_seen: Instant,
    pub(super) warned_alone: bool,
    pub(super) last_walk: Option<Instant>,
    pub(super) last_book_save: Instant,
    pub(super) rng: rand::rngs::StdRng,
    /// What our network's nodes say they speak in identify.
    pub(super) protocol_version: String,
    /// `--metrics`: updated from the swarm's events when set.
    pub(super) metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

/// Requests a peer may make per second on one protocol, and the burst it may save up.
pub const REQUESTS_PER_SEC: f64 = 50.0;
pub const REQUEST_BURST: f64 = 200.0;

/// A token bucket: refills at `REQUESTS_PER_SEC`, holds at most `REQUEST_BURST`.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(now: Instant) -> TokenBucket {
        TokenBucket { tokens: REQUEST_BURST, last: now }
    }

    /// Takes one token; `false` when the peer is over its budget.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * REQUESTS_PER_SEC).min(REQUEST_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Gossip messages whose topic is remembered until the node's verdict, at most.
const MAX_GOSSIP_TOPICS: usize = 4 * WORK_QUEUE;

/// Builds the swarm, starts listening, and returns the client, the events and the loop to run.
pub fn new(
    key: Keypair,
    params: &'static Params,
    config: NetworkConfig,
) -> Result<(Client, NetworkEvents, EventLoop), NetworkError> {
    new_with_gossip_metrics(key, params, config, None)
}

/// [`new`], with gossipsub's own metrics registered in `registry`.
pub fn new_with_gossip_metrics(
    key: Keypair,
    params: &'static Params,
    config: NetworkConfig,
    registry: Option<&mut prometheus_client::registry::Registry>,
) -> Result<(Client, NetworkEvents, EventLoop), NetworkError> {
    let peer_id = key.public().to_peer_id();
    let behaviour = Behaviour::new(&key, params, config.limits, registry)?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| NetworkError::Transport(e.to_string()))?
        .with_behaviour(|_| behaviour)
        .map_err(|e| NetworkError::Transport(e.to_string()))?
        // Peers stay connected between blocks; the default 10 s would drop
        // quiet ones. Connections that are not peers are closed by the peer set.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetworkError::Listen { addr: addr.clone(), reason: e.to_string() })?;
    }
    for addr in &config.external_addrs {
        swarm.add_external_address(addr.clone());
    }
    let tx_topic = IdentTopic::new(params.tx_topic());
    let block_topic = IdentTopic::new(params.block_topic());
    for topic in [&tx_topic, &block_topic] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(topic)
            .map_err(|e| NetworkError::Transport(format!("cannot subscribe: {e}")))?;
    }
    // Neither side ever waits for the other: commands are unbounded (the node
    // sends them in proportion to the events it handles), connection events
    // are bounded by the connection limits, and the rest is shed when full.
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (work_tx, work_rx) = mpsc::channel(WORK_QUEUE);
    let (blocks_tx, blocks_rx) = mpsc::channel(BLOCK_QUEUE);
    let now = Instant::now();
    let (book, bans) = super::manage::load_files(config.datadir.as_deref());
    let connect_only = !config.connect.is_empty();
    let mut event_loop = EventLoop {
        swarm,
        commands: command_rx,
        control: control_tx,
        work: work_tx,
        blocks: blocks_tx,
        pending_sync: HashMap::new(),
        status: config.status,
        shed: 0,
        tx_topic,
        block_topic,
        query_allowed: config.query_allowed,
        peer_set: PeerSet::new(config.limits),
        book,
        bans,
        datadir: config.datadir,
        cookie: config.cookie,
        dials: HashMap::new(),
        fixed: Vec::new(),
        connect_only,
        reach: super::manage::reach_of_listen_addrs(&config.listen),
        connect_replies: HashMap::new(),
        gossip_topics: HashMap::new(),
        sync_limits: HashMap::new(),
        query_limits: HashMap::new(),
        last_peer_seen: now,
        warned_alone: false,
        last_walk: None,
        last_book_save: now,
        rng: rand::SeedableRng::from_entropy(),
        protocol_version: super::behaviour::protocol_version(params),
        metrics: None,
    };
    event_loop.update_gate();
    for addr in config.connect {
        event_loop.add_fixed(addr, super::manage::FixedKind::Connect);
    }
    if !connect_only {
        for addr in config.bootstrap {
            event_loop.add_fixed(addr, super::manage::FixedKind::Bootstrap);
        }
    }
    let events = NetworkEvents { control: control_rx, blocks: blocks_rx, work: work_rx };
    Ok((Client { commands: command_tx, peer_id }, events, event_loop))
}

impl EventLoop {
    /// Records the swarm's events (and gossip bytes, bans) in `metrics`.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> EventLoop {
        metrics.set_tx_topic(self.tx_topic.hash());
        self.metrics = Some(metrics);
        self
    }

    /// Runs until the node drops its client (every sender of commands).
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.handle_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(command) => self.handle_command(command),
                    None => break,
                },
                _ = tick.tick() => {
                    self.manage_peers(Instant::now());
                    if self.shed > 0 {
                        tracing::warn!(shed = self.shed, "the node was busy: gossip ignored and requests refused");
                        self.shed = 0;
                    }
                }
            }
        }
        self.save_book();
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data } => {
                let topic = match topic {
                    Topic::Transactions => self.tx_topic.clone(),
                    Topic::Blocks => self.block_topic.clone(),
                };
                if let Some(m) = &self.metrics {
                    m.record_gossip(m.topic_kind(&topic.hash()), "outbound", data.len());
                }
                match self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
                    // Nobody to tell yet, or already told: neither is a failure here.
                    Ok(_) | Err(PublishError::Duplicate) | Err(PublishError::NoPeersSubscribedToTopic) => {}
                    Err(e) => tracing::warn!("cannot publish: {e}"),
                }
            }
            Command::ReportValidation { id, source, acceptance } => {
                let topic = self.gossip_topics.remove(&id);
                if acceptance == MessageAcceptance::Accept {
                    self.credit_relay(source, topic);
                }
                self.swarm.behaviour_mut().gossipsub.report_message_validation_result(&id, &source, acceptance);
            }
            Command::SendSync { peer, request, reply } => {
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                self.pending_sync.insert(id, reply);
            }
            Command::RespondSync { channel, response } => {
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
            }
            Command::RespondQuery { channel, response } => {
                let _ = self.swarm.behaviour_mut().query.send_response(channel, response);
            }
            Command::Dial(addr) => {
                self.add_fixed(addr, super::manage::FixedKind::Manual);
            }
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::SetScore { peer, score } => {
                if let Some(info) = self.peer_set.info_mut(&peer) {
                    info.score = score;
                }
                self.swarm.behaviour_mut().gossipsub.set_application_score(&peer, score);
            }
            Command::Ban { peer, duration } => self.ban_for_abuse(peer, duration),
        }
    }

    /// Hands an event to the node without ever waiting (see [`NetworkEvents`]).
    pub(super) fn emit(&mut self, event: NetworkEvent) {
        let event = match event {
            NetworkEvent::Gossip { topic: Topic::Blocks, .. } => match self.blocks.try_send(event) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(event)) => event,
            },
            NetworkEvent::Gossip { .. } | NetworkEvent::SyncRequest { .. } | NetworkEvent::QueryRequest { .. } => {
                match self.work.try_send(event) {
                    Ok(()) => return,
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                    Err(mpsc::error::TrySendError::Full(event)) => event,
                }
            }
            control => {
                let _ = self.control.send(control);
                return;
            }
        };
        self.shed = self.shed.saturating_add(1);
        let behaviour = self.swarm.behaviour_mut();
        match event {
            // Not forwarded, not held against the sender.
            NetworkEvent::Gossip { source, id, .. } => {
                self.gossip_topics.remove(&id);
                behaviour.gossipsub.report_message_validation_result(&id, &source, MessageAcceptance::Ignore);
            }
            NetworkEvent::SyncRequest { channel, .. } => {
                let _ = behaviour.sync.send_response(channel, SyncResponse::Refused("busy; try again".into()));
            }
            NetworkEvent::QueryRequest { channel, .. } => {
                let busy = QueryResponse::Error("the node is busy; try again in a moment".into());
                let _ = behaviour.query.send_response(channel, busy);
            }
            _ => {}
        }
    }

    /// A peer whose message the node accepted relayed something useful: eviction protects it.
    fn credit_relay(&mut self, source: PeerId, topic: Option<Topic>) {
        let Some(info) = self.peer_set.info_mut(&source) else { return };
        match topic {
            Some(Topic::Blocks) => info.last_block = Some(Instant::now()),
            Some(Topic::Transactions) => info.last_tx = Some(Instant::now()),
            None => {}
        }
    }

    fn handle_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        if let Some(m) = &self.metrics {
            m.record_swarm(&event);
        }
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                self.note_listen_addr(&address);
                let full = address.with_p2p(*self.swarm.local_peer_id()).unwrap_or_else(|a| a);
                self.emit(NetworkEvent::Listening(full));
            }
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                self.on_connection_established(peer_id, connection_id, &endpoint);
            }
            SwarmEvent::ConnectionClosed { peer_id, connection_id, .. } => {
                let actions = self.peer_set.closed(connection_id);
                self.apply(actions);
                if !self.swarm.is_connected(&peer_id) {
                    self.sync_limits.remove(&peer_id);
                    self.query_limits.remove(&peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError { connection_id, peer_id, error } => {
                self.on_dial_failed(connection_id, peer_id, &error.to_string());
            }
            SwarmEvent::Behaviour(event) => self.handle_behaviour_event(event),
            _ => {}
        }
    }

    fn handle_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message { propagation_source, message_id, message }) => {
                let topic = if message.topic == self.tx_topic.hash() {
                    Topic::Transactions
                } else if message.topic == self.block_topic.hash() {
                    Topic::Blocks
                } else {
                    self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        MessageAcceptance::Reject,
                    );
                    return;
                };
                if self.gossip_topics.len() >= MAX_GOSSIP_TOPICS {
                    self.gossip_topics.clear();
                }
                self.gossip_topics.insert(message_id.clone(), topic);
                self.emit(NetworkEvent::Gossip {
                    source: propagation_source,
                    id: message_id,
                    topic,
                    data: message.data,
                });
            }
            BehaviourEvent::Identify(identify::Event::Received { connection_id, peer_id, info }) => {
                self.on_identified(connection_id, peer_id, info);
            }
            BehaviourEvent::Kad(kad::Event::RoutablePeer { peer, address }) => {
                self.learn_address(peer, &address, None);
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::GetClosestPeers(Ok(ok)),
                ..
            }) => {
                for info in ok.peers {
                    for addr in &info.addrs {
                        self.learn_address(info.peer_id, addr, None);
                    }
                }
            }
            BehaviourEvent::Ping(libp2p::ping::Event { peer, result: Ok(rtt), .. }) => {
                if let Some(info) = self.peer_set.info_mut(&peer) {
                    info.ping = Some(rtt);
                }
            }
            BehaviourEvent::Sync(request_response::Event::Message { peer, connection_id, message }) => match message {
                request_response::Message::Request { request, channel, .. } => {
                    // Whoever asks for sync is a node of ours.
                    let actions = self.peer_set.promote(connection_id, Instant::now());
                    self.apply(actions);
                    if self.peer_set.connection(connection_id).is_none_or(|c| c.kind == peer_set::Kind::Closing) {
                        return;
                    }
                    let now = Instant::now();
                    if self.sync_limits.entry(peer).or_insert_with(|| TokenBucket::new(now)).take(now) {
                        self.emit(NetworkEvent::SyncRequest { peer, request, channel });
                    } else {
                        let refusal = SyncResponse::Refused("too many requests; slow down".into());
                        let _ = self.swarm.behaviour_mut().sync.send_response(channel, refusal);
                    }
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.pending_sync.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            BehaviourEvent::Sync(request_response::Event::OutboundFailure { request_id, error, .. }) => {
                if let Some(reply) = self.pending_sync.remove(&request_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
            BehaviourEvent::Sync(request_response::Event::InboundFailure {
                peer,
                error: request_response::InboundFailure::Io(error),
                ..
            }) => {
                self.emit(NetworkEvent::SyncMalformedRequest { peer, error: error.to_string() });
            }
            BehaviourEvent::Query(request_response::Event::Message {
                peer,
                connection_id,
                message: request_response::Message::Request { request, channel, .. },
            }) => self.on_query(peer, connection_id, request, channel),
            _ => {}
        }
    }

    /// A query, judged by the address of the connection it arrived on.
    fn on_query(
        &mut self,
        peer: PeerId,
        connection_id: libp2p::swarm::ConnectionId,
        request: QueryRequest,
        channel: ResponseChannel<QueryResponse>,
    ) {
        let now = Instant::now();
        let ip = self.peer_set.connection(connection_id).and_then(|c| c.ip);
        let allowed = ip.is_some_and(|ip| (self.query_allowed)(ip));
        if !allowed {
            let refusal = QueryResponse::Error(
                "this node does not answer queries from your address; see its --query-allow".into(),
            );
            let _ = self.swarm.behaviour_mut().query.send_response(channel, refusal);
            return;
        }
        let actions = self.peer_set.query(connection_id, now);
        self.apply(actions);
        if !self.query_limits.entry(peer).or_insert_with(|| TokenBucket::new(now)).take(now) {
            let refusal = QueryResponse::Error("too many requests; slow down".into());
            let _ = self.swarm.behaviour_mut().query.send_response(channel, refusal);
            return;
        }
        let response = match request {
            // Answered here: status must come even while the node validates.
            QueryRequest::Status => match &self.status {
                Some(board) => {
                    let status =
                        board.lock().map(|s| s.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone());
                    QueryResponse::Status(status)
                }
                None => QueryResponse::Error("this node keeps no status".into()),
            },
            QueryRequest::Peers => QueryResponse::Peers(self.peer_replies(now)),
            QueryRequest::Node { cookie, command } => match self.node_command(&cookie, command, channel) {
                Some((channel, response)) => {
                    let _ = self.swarm.behaviour_mut().query.send_response(channel, response);
                    return;
                }
                None => return,
            },
            request => {
                self.emit(NetworkEvent::QueryRequest { peer, request, channel });
                return;
            }
        };
        let _ = self.swarm.behaviour_mut().query.send_response(channel, response);
    }
}
