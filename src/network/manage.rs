//! The event loop's care of its peers: keeping the outbound peers at their
//! target from the address book, the fixed peers (bootstrap, `--connect`,
//! `node connect`) dialled again with backoff, the book filled from
//! identify and Kademlia with what is worth keeping, bans, and the
//! operator's `node …` commands.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use libp2p::core::ConnectedPoint;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::ConnectionId;
use libp2p::{identify, Multiaddr, PeerId};

use super::addrbook::{endpoint_of, multiaddr_of, AddressBook, Group, Reach};
use super::bans::{BanTarget, Bans};
use super::event_loop::{EventLoop, NetworkEvent};
use super::peer_set::{Action, Direction, Opened};
use crate::rpc::{NodeCommand, NodeReply, PeerReply, QueryResponse};

/// A dial of ours in flight.
pub struct Dial {
    pub purpose: Purpose,
    pub started: Instant,
}

#[derive(Clone, Copy, Debug)]
pub enum Purpose {
    /// An outbound slot, to this address-book entry.
    Outbound(SocketAddr),
    /// The fixed peer at this index.
    Fixed(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixedKind {
    Bootstrap,
    /// `--connect`: dialled always, nothing else is.
    Connect,
    /// `node connect`: kept connected, never evicted.
    Manual,
}

pub struct FixedPeer {
    pub addr: Multiaddr,
    pub peer: Option<PeerId>,
    pub kind: FixedKind,
    pub next_try: Instant,
    pub backoff: Duration,
    pub dialing: bool,
}

/// Backoff of a fixed peer's dials: from one second, doubling, to a minute.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Dials to book entries at once, beyond the peers we have.
const MAX_OUTBOUND_DIALS: usize = 4;
/// How long with no peer before the node says so.
const ALONE_WARNING: Duration = Duration::from_secs(60);
/// Kademlia lookups: this often while the node lacks outbound peers, else rarely.
const WALK_WHEN_SHORT: Duration = Duration::from_secs(20);
const WALK_INTERVAL: Duration = Duration::from_secs(900);
/// How often the address book is written.
const BOOK_SAVE_INTERVAL: Duration = Duration::from_secs(60);
/// Addresses taken from one identify message at most.
const MAX_ADDRS_PER_IDENTIFY: usize = 8;

const BOOK_FILE: &str = "addrbook.dat";
const BANS_FILE: &str = "bans.json";

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The address book and bans from the data directory (fresh ones without it).
pub fn load_files(datadir: Option<&Path>) -> (AddressBook, Bans) {
    let fresh = || AddressBook::new(rand::random());
    let Some(dir) = datadir else { return (fresh(), Bans::default()) };
    let path = dir.join(BOOK_FILE);
    let book = match std::fs::read(&path) {
        Ok(bytes) => AddressBook::decode(&bytes).unwrap_or_else(|e| {
            tracing::warn!("starting with an empty address book: {}: {e}", path.display());
            fresh()
        }),
        Err(_) => fresh(),
    };
    (book, Bans::load(&dir.join(BANS_FILE), unix_now()))
}

/// The kinds of address accepted from peers besides public ones: those of
/// the networks the node listens on. Loopback only when a listen address
/// names it (a wildcard listens on loopback too, but a public node must not
/// take loopback addresses from strangers).
pub fn reach_of_listen_addrs(listen: &[Multiaddr]) -> HashSet<Reach> {
    let mut reach = HashSet::from([Reach::Public]);
    for addr in listen {
        if let Some((endpoint, _)) = endpoint_of(addr) {
            match Reach::of(endpoint.ip()) {
                Reach::Unroutable | Reach::Public => {}
                other => {
                    reach.insert(other);
                }
            }
        }
    }
    reach
}

impl EventLoop {
    pub(super) fn update_gate(&mut self) {
        let (peers, ips) = (self.bans.peers(), self.bans.ips());
        self.swarm.behaviour_mut().gate.set(peers, ips);
    }

    pub(super) fn save_book(&mut self) {
        self.last_book_save = Instant::now();
        let Some(dir) = &self.datadir else { return };
        if let Err(e) = crate::fsio::write_atomically(&dir.join(BOOK_FILE), &self.book.encode(), 0o644) {
            tracing::warn!("address book not saved: {e}");
        }
    }

    fn save_bans(&self) {
        let Some(dir) = &self.datadir else { return };
        if let Err(e) = self.bans.save(&dir.join(BANS_FILE)) {
            tracing::warn!("bans not saved: {e}");
        }
    }

    pub(super) fn add_fixed(&mut self, addr: Multiaddr, kind: FixedKind) -> usize {
        let peer = endpoint_of(&addr).and_then(|(_, peer)| peer);
        if let Some(i) = self.fixed.iter().position(|f| f.addr == addr) {
            if kind == FixedKind::Manual {
                self.fixed[i].kind = kind;
            }
            self.fixed[i].next_try = Instant::now();
            return i;
        }
        self.fixed.push(FixedPeer {
            addr,
            peer,
            kind,
            next_try: Instant::now(),
            backoff: FIRST_BACKOFF,
            dialing: false,
        });
        self.fixed.len() - 1
    }

    /// A wildcard listen address expands to the machine's addresses: the
    /// private networks among them are networks we are on.
    pub(super) fn note_listen_addr(&mut self, addr: &Multiaddr) {
        if let Some((endpoint, _)) = endpoint_of(addr) {
            if matches!(Reach::of(endpoint.ip()), Reach::Private | Reach::LinkLocal) {
                self.reach.insert(Reach::of(endpoint.ip()));
            }
        }
    }

    /// Whether an address a peer gave us is worth keeping and handing on.
    fn acceptable(&self, addr: &Multiaddr) -> Option<SocketAddr> {
        let (endpoint, _) = endpoint_of(addr)?;
        (self.reach.contains(&Reach::of(endpoint.ip())) && endpoint.port() != 0).then_some(endpoint)
    }

    /// Puts an address a peer told us of in the book and in Kademlia, if it
    /// is worth it. `source`: the address of whoever told us (`None`: the
    /// address's own group counts as its source).
    pub(super) fn learn_address(&mut self, peer: PeerId, addr: &Multiaddr, source: Option<Group>) {
        if peer == *self.swarm.local_peer_id() {
            return;
        }
        let Some(endpoint) = self.acceptable(addr) else { return };
        let source = source.unwrap_or_else(|| Group::of(endpoint.ip()));
        self.book.add(endpoint, peer, source, unix_now());
        self.swarm.behaviour_mut().kad.add_address(&peer, multiaddr_of(endpoint, peer));
    }

    pub(super) fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Close { connection, peer, why } => {
                    tracing::debug!(%peer, "closing a connection: {why}");
                    self.swarm.close_connection(connection);
                }
                Action::PeerUp { peer, addr, direction } => {
                    tracing::debug!(%peer, %addr, direction = direction.as_str(), "peer connection");
                    self.emit(NetworkEvent::PeerConnected { peer, addr });
                }
                Action::PeerDown { peer } => self.emit(NetworkEvent::PeerDisconnected { peer }),
            }
        }
    }

    pub(super) fn on_connection_established(&mut self, peer: PeerId, id: ConnectionId, endpoint: &ConnectedPoint) {
        let now = Instant::now();
        let (direction, addr) = match endpoint {
            ConnectedPoint::Dialer { address, .. } => (Direction::Outbound, address.clone()),
            ConnectedPoint::Listener { send_back_addr, .. } => (Direction::Inbound, send_back_addr.clone()),
        };
        let dial = self.dials.remove(&id);
        let mut manual = false;
        match dial.as_ref().map(|d| d.purpose) {
            Some(Purpose::Outbound(entry)) => self.book.good(entry, peer, unix_now()),
            Some(Purpose::Fixed(i)) => {
                if let Some(fixed) = self.fixed.get_mut(i) {
                    fixed.dialing = false;
                    fixed.peer = Some(peer);
                    fixed.backoff = FIRST_BACKOFF;
                    manual = fixed.kind != FixedKind::Bootstrap;
                }
                if let Some(endpoint) = endpoint_of(&addr).map(|(e, _)| e) {
                    self.book.good(endpoint, peer, unix_now());
                }
            }
            None => {}
        }
        if let Some(channel) = self.connect_replies.remove(&id) {
            let reply = QueryResponse::Node(NodeReply::Connected { peer_id: peer.to_string() });
            let _ = self.swarm.behaviour_mut().query.send_response(channel, reply);
        }
        if dial.is_some() {
            let full = endpoint_of(&addr).map(|(e, _)| multiaddr_of(e, peer));
            if let Some(full) = full {
                self.swarm.behaviour_mut().kad.add_address(&peer, full);
            }
        }
        let opened = Opened { peer, direction, addr, intended: dial.is_some(), manual };
        let actions = self.peer_set.established(id, opened, now);
        self.apply(actions);
    }

    pub(super) fn on_dial_failed(&mut self, id: ConnectionId, peer: Option<PeerId>, error: &str) {
        if let Some(channel) = self.connect_replies.remove(&id) {
            let reply = QueryResponse::Error(format!("cannot connect: {error}"));
            let _ = self.swarm.behaviour_mut().query.send_response(channel, reply);
        }
        let Some(dial) = self.dials.remove(&id) else {
            tracing::debug!(?peer, "outgoing connection failed: {error}");
            return;
        };
        match dial.purpose {
            Purpose::Outbound(entry) => {
                tracing::debug!(?peer, %entry, "dial to an address-book peer failed: {error}");
                self.book.failed(&entry, unix_now());
            }
            Purpose::Fixed(i) => {
                let Some(fixed) = self.fixed.get_mut(i) else { return };
                fixed.dialing = false;
                let wait = fixed.backoff;
                fixed.next_try = Instant::now() + wait;
                fixed.backoff = (fixed.backoff * 2).min(MAX_BACKOFF);
                let what = match fixed.kind {
                    FixedKind::Bootstrap => "bootstrap",
                    FixedKind::Connect => "--connect",
                    FixedKind::Manual => "node connect",
                };
                tracing::warn!(addr = %fixed.addr, "{what} dial failed: {error}; trying again in {} s", wait.as_secs());
            }
        }
    }

    pub(super) fn on_identified(&mut self, id: ConnectionId, peer: PeerId, info: identify::Info) {
        if info.protocol_version != self.protocol_version {
            tracing::debug!(%peer, theirs = %info.protocol_version, "not a node of our network; closing");
            self.swarm.close_connection(id);
            return;
        }
        // Not promoted for this: Kademlia's lookups identify too. A node
        // becomes a peer by asking for sync, as every node asks its outbound
        // peers for their status at once.
        let source = self.peer_set.connection(id).and_then(|c| c.ip).map(Group::of);
        let mut kept = Vec::new();
        for addr in info.listen_addrs.iter().take(MAX_ADDRS_PER_IDENTIFY) {
            if self.acceptable(addr).is_some() {
                self.learn_address(peer, addr, source);
                kept.push(addr.clone());
            }
        }
        if let Some(known) = self.peer_set.info_mut(&peer) {
            known.agent = Some(info.agent_version.chars().take(64).collect());
            known.listen_addrs = kept;
        }
    }

    /// Once a second: closes what is due, keeps the outbound peers at their
    /// target, dials fixed peers that are due, expires bans, saves the book.
    pub(super) fn manage_peers(&mut self, now: Instant) {
        let actions = self.peer_set.tick(now);
        self.apply(actions);
        if let Some(metrics) = &self.metrics {
            metrics
                .set_peers(self.peer_set.peer_count(Direction::Inbound), self.peer_set.peer_count(Direction::Outbound));
        }
        self.dials.retain(|_, dial| now.saturating_duration_since(dial.started) < Duration::from_secs(60));
        let peers = self.peer_set.peer_count(Direction::Outbound) + self.peer_set.peer_count(Direction::Inbound);
        let target = self.peer_set.limits().outbound_target;
        let outbound = self.peer_set.peer_count(Direction::Outbound) + self.dials.len();
        self.dial_fixed(now, peers < target && outbound < target);
        if !self.connect_only {
            self.fill_outbound();
            let short = self.peer_set.peer_count(Direction::Outbound) < target;
            let walk_every = if short { WALK_WHEN_SHORT } else { WALK_INTERVAL };
            if self.last_walk.is_none_or(|at| now.saturating_duration_since(at) >= walk_every) && peers > 0 {
                self.last_walk = Some(now);
                self.swarm.behaviour_mut().kad.get_closest_peers(PeerId::random());
            }
        }
        if peers > 0 {
            self.last_peer_seen = now;
            self.warned_alone = false;
        } else if !self.warned_alone && now.saturating_duration_since(self.last_peer_seen) >= ALONE_WARNING {
            self.warned_alone = true;
            tracing::warn!(
                "no peers for a minute: check the network, --bootstrap and --connect (bootstrap dials are retried)"
            );
        }
        if self.bans.expire(unix_now()) {
            self.update_gate();
            self.save_bans();
        }
        if now.saturating_duration_since(self.last_book_save) >= BOOK_SAVE_INTERVAL {
            self.save_book();
        }
    }

    /// `--connect` and `node connect` peers are kept connected; bootstrap
    /// peers are dialled while the node has fewer peers than its target.
    fn dial_fixed(&mut self, now: Instant, short: bool) {
        for i in 0..self.fixed.len() {
            let fixed = &self.fixed[i];
            let wanted = fixed.kind != FixedKind::Bootstrap || short;
            let connected = fixed.peer.is_some_and(|p| self.peer_set.is_connected(&p));
            if !wanted || connected || fixed.dialing || fixed.next_try > now {
                continue;
            }
            let opts = match fixed.peer {
                Some(peer) => DialOpts::peer_id(peer)
                    .addresses(vec![fixed.addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
                None => DialOpts::unknown_peer_id().address(fixed.addr.clone()).build(),
            };
            self.dial(opts, Purpose::Fixed(i), now);
        }
    }

    fn dial(&mut self, opts: DialOpts, purpose: Purpose, now: Instant) -> Option<ConnectionId> {
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                if let Purpose::Fixed(i) = purpose {
                    if let Some(fixed) = self.fixed.get_mut(i) {
                        fixed.dialing = true;
                    }
                }
                self.dials.insert(id, super::manage::Dial { purpose, started: now });
                Some(id)
            }
            Err(e) => {
                self.dials.insert(id, super::manage::Dial { purpose, started: now });
                self.on_dial_failed(id, None, &e.to_string());
                None
            }
        }
    }

    /// Dials address-book peers until the outbound peers (and dials in
    /// flight) reach the target, each in a network group none of the others
    /// is in (groups of private or loopback addresses may repeat).
    fn fill_outbound(&mut self) {
        let target = self.peer_set.limits().outbound_target;
        let mut groups = self.peer_set.outbound_groups();
        let mut dialing: HashSet<SocketAddr> = HashSet::new();
        for dial in self.dials.values() {
            if let Purpose::Outbound(entry) = dial.purpose {
                dialing.insert(entry);
                groups.insert(Group::of(entry.ip()));
            }
        }
        let outbound = self.peer_set.peer_count(Direction::Outbound);
        let mut wanted =
            target.saturating_sub(outbound + dialing.len()).min(MAX_OUTBOUND_DIALS.saturating_sub(dialing.len()));
        let now_unix = unix_now();
        let me = *self.swarm.local_peer_id();
        while wanted > 0 {
            let pick = {
                let (peer_set, bans) = (&self.peer_set, &self.bans);
                let reach = &self.reach;
                self.book.select(&mut self.rng, now_unix, |addr, entry| {
                    entry.peer == me
                        || !reach.contains(&Reach::of(addr.ip()))
                        || dialing.contains(addr)
                        || peer_set.is_connected(&entry.peer)
                        || bans.is_banned(&BanTarget::Peer(entry.peer), now_unix)
                        || bans.is_banned(&BanTarget::Ip(addr.ip()), now_unix)
                        || (Reach::of(addr.ip()) == Reach::Public && groups.contains(&Group::of(addr.ip())))
                })
            };
            let Some((addr, peer)) = pick else { break };
            self.book.attempt(&addr, now_unix);
            dialing.insert(addr);
            groups.insert(Group::of(addr.ip()));
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![multiaddr_of(addr, peer)])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            self.dial(opts, Purpose::Outbound(addr), Instant::now());
            wanted -= 1;
        }
    }

    /// The node banned a peer for abuse: its id, and its address unless that is loopback.
    pub(super) fn ban_for_abuse(&mut self, peer: PeerId, duration: Duration) {
        tracing::warn!(%peer, "banning peer for {} s", duration.as_secs());
        let until = unix_now().saturating_add(duration.as_secs());
        self.bans.ban(BanTarget::Peer(peer), until);
        let ips: HashSet<_> = self
            .peer_set
            .peers()
            .into_iter()
            .filter(|(p, _, _)| **p == peer)
            .filter_map(|(_, c, _)| c.ip)
            .filter(|ip| Reach::of(*ip) != Reach::Loopback)
            .collect();
        for ip in ips {
            self.bans.ban(BanTarget::Ip(ip), until);
            self.drop_address(ip);
        }
        self.enforce_ban(BanTarget::Peer(peer));
    }

    fn drop_address(&mut self, ip: std::net::IpAddr) {
        for (id, _) in self.peer_set.connections_from(ip) {
            self.swarm.close_connection(id);
        }
    }

    fn enforce_ban(&mut self, target: BanTarget) {
        if let Some(metrics) = &self.metrics {
            metrics.peers_banned.inc();
        }
        self.update_gate();
        self.save_bans();
        match target {
            BanTarget::Peer(peer) => {
                let behaviour = self.swarm.behaviour_mut();
                behaviour.gossipsub.blacklist_peer(&peer);
                behaviour.kad.remove_peer(&peer);
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            BanTarget::Ip(ip) => self.drop_address(ip),
        }
    }

    pub(super) fn peer_replies(&self, now: Instant) -> Vec<PeerReply> {
        self.peer_set
            .peers()
            .into_iter()
            .map(|(peer, connection, info)| {
                let mut addrs = vec![connection.addr.to_string()];
                addrs.extend(info.iter().flat_map(|i| &i.listen_addrs).map(|a| a.to_string()));
                addrs.dedup();
                PeerReply {
                    peer_id: peer.to_string(),
                    addrs,
                    direction: connection.direction.as_str().to_string(),
                    agent: info.and_then(|i| i.agent.clone()),
                    ping_ms: info.and_then(|i| i.ping).map(|p| (p.as_secs_f64() * 100_000.0).round() / 100.0),
                    connected_s: now.saturating_duration_since(connection.since).as_secs(),
                    score: info.map_or(0.0, |i| i.score),
                }
            })
            .collect()
    }

    /// Carries out a `node …` command; returns the reply to send now, or
    /// `None` when it comes later (a connection being dialled).
    pub(super) fn node_command(
        &mut self,
        cookie: &str,
        command: NodeCommand,
        channel: libp2p::request_response::ResponseChannel<QueryResponse>,
    ) -> Option<(libp2p::request_response::ResponseChannel<QueryResponse>, QueryResponse)> {
        let authorised =
            self.cookie.as_deref().is_some_and(|ours| constant_time_eq(ours.as_bytes(), cookie.as_bytes()));
        if !authorised {
            let refusal =
                "node commands need the node's cookie (see --cookie; it is <datadir>/.cookie on the node's machine)";
            return Some((channel, QueryResponse::Error(refusal.into())));
        }
        let reply = match command {
            NodeCommand::Connect(addr) => {
                let addr: Multiaddr = match addr.parse() {
                    Ok(addr) => addr,
                    Err(e) => {
                        return Some((channel, QueryResponse::Error(format!("{addr:?} is not a multiaddr: {e}"))))
                    }
                };
                let i = self.add_fixed(addr.clone(), FixedKind::Manual);
                if let Some(peer) = self.fixed[i].peer.filter(|p| self.peer_set.is_connected(p)) {
                    NodeReply::Connected { peer_id: peer.to_string() }
                } else {
                    let opts = DialOpts::unknown_peer_id().address(addr).build();
                    let id = opts.connection_id();
                    self.connect_replies.insert(id, channel);
                    self.dial(opts, Purpose::Fixed(i), Instant::now());
                    return None;
                }
            }
            NodeCommand::Disconnect(peer) => {
                let Ok(peer) = peer.parse::<PeerId>() else {
                    return Some((channel, QueryResponse::Error(format!("{peer:?} is not a peer id"))));
                };
                if !self.peer_set.is_connected(&peer) {
                    return Some((channel, QueryResponse::Error(format!("{peer} is not connected"))));
                }
                // A peer the operator drops is not dialled again by itself.
                self.fixed.retain(|f| f.peer != Some(peer));
                let _ = self.swarm.disconnect_peer_id(peer);
                NodeReply::Disconnected { peer_id: peer.to_string() }
            }
            NodeCommand::Ban { target, duration_s } => {
                let target = match target.parse::<BanTarget>() {
                    Ok(target) => target,
                    Err(e) => return Some((channel, QueryResponse::Error(e.to_string()))),
                };
                self.bans.ban(target, unix_now().saturating_add(duration_s));
                if let BanTarget::Peer(peer) = target {
                    self.fixed.retain(|f| f.peer != Some(peer));
                }
                self.enforce_ban(target);
                NodeReply::Banned { banned: target.to_string() }
            }
            NodeCommand::Unban(target) => {
                let target = match target.parse::<BanTarget>() {
                    Ok(target) => target,
                    Err(e) => return Some((channel, QueryResponse::Error(e.to_string()))),
                };
                if !self.bans.unban(&target) {
                    return Some((channel, QueryResponse::Error(format!("{target} is not banned"))));
                }
                if let BanTarget::Peer(peer) = target {
                    self.swarm.behaviour_mut().gossipsub.remove_blacklisted_peer(&peer);
                }
                self.update_gate();
                self.save_bans();
                NodeReply::Unbanned { unbanned: target.to_string() }
            }
            NodeCommand::Bans => {
                self.bans.expire(unix_now());
                NodeReply::Bans(self.bans.entries())
            }
        };
        Some((channel, QueryResponse::Node(reply)))
    }
}

/// Compares secrets in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
