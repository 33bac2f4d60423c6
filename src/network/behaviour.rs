//! The combined libp2p behaviour: gossipsub for transactions and blocks,
//! Kademlia and identify for discovery, ping, and the sync and query
//! request-response protocols.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::kad::store::MemoryStore;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{connection_limits, gossipsub, identify, kad, ping, StreamProtocol};

use super::gate::Gate;
use super::peer_set::{Limits, PENDING_MAX, QUERY_RESERVE};
use super::protocol::{SyncRequest, SyncResponse, MAX_SYNC_REQUEST_BYTES, MAX_SYNC_RESPONSE_BYTES, SYNC_PROTOCOL};
use crate::codec::PostcardCodec;
use crate::consensus::Params;
use crate::rpc::{QueryRequest, QueryResponse, MAX_QUERY_REQUEST_BYTES, MAX_QUERY_RESPONSE_BYTES, QUERY_PROTOCOL};
use crate::types::{Hash256, MAX_BLOCK_BYTES};

pub type SyncBehaviour = request_response::Behaviour<PostcardCodec<SyncRequest, SyncResponse>>;
pub type QueryBehaviour = request_response::Behaviour<PostcardCodec<QueryRequest, QueryResponse>>;

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Banned peers and addresses: refused.
    pub gate: Gate,
    pub limits: connection_limits::Behaviour,
    pub gossipsub: gossipsub::Behaviour,
    pub kad: kad::Behaviour<MemoryStore>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub sync: SyncBehaviour,
    pub query: QueryBehaviour,
}

#[derive(Debug, thiserror::Error)]
pub enum BehaviourError {
    #[error("gossipsub configuration: {0}")]
    Gossipsub(String),
}

/// Connections at most per peer.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 2;
/// How often peers are pinged (libp2p's default is 15 s; bitcoind pings
/// every 2 minutes) and identify is repeated: an idle network's traffic is
/// mostly these, times the peers.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
pub const IDENTIFY_INTERVAL: Duration = Duration::from_secs(300);

/// Inbound handshakes under way at once; the gate allows a few per address.
pub const MAX_PENDING_HANDSHAKES: u32 = 256;
/// Connections Kademlia's lookups may hold open besides the peers.
pub const MAX_LOOKUP_CONNECTIONS: usize = 32;

/// The identify protocol version of a network's nodes: a connection that
/// identifies with another is not a peer of ours.
pub fn protocol_version(params: &Params) -> String {
    format!("/ourcoin/{}/1", params.network)
}

/// The agent version nodes announce: `ourcoind/<version>`.
pub fn agent_version() -> String {
    format!("ourcoind/{}", env!("CARGO_PKG_VERSION"))
}
/// Concurrent inbound and outbound streams per connection (libp2p's default
/// is 100). Each inbound sync stream may carry up to `MAX_SYNC_RESPONSE_BYTES`
/// of reply, so this and the connection limits bound what peers can make us
/// hold: our own sync keeps at most a few requests in flight per peer.
pub const MAX_SYNC_STREAMS: usize = 8;
/// A client asks one thing at a time; a few streams leave room for a script.
pub const MAX_QUERY_STREAMS: usize = 4;

/// Gossipsub score thresholds: below `graylist` a peer's messages are ignored.
fn score_thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds {
        gossip_threshold: -1_000.0,
        publish_threshold: -2_000.0,
        graylist_threshold: -4_000.0,
        accept_px_threshold: 100.0,
        opportunistic_graft_threshold: 5.0,
    }
}

/// Scoring per topic. Blocks and transactions are rare on a quiet network,
/// so the mesh-delivery penalties (P3, P3b) that suit busy topics are off:
/// they would punish honest peers for silence. Invalid messages (P4) weigh
/// heavily: the counter is squared, so a few suffice to graylist a peer.
fn topic_score(topic_weight: f64) -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 3_600.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 50.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.9,
        ..Default::default()
    }
}

fn score_params(params: &Params) -> gossipsub::PeerScoreParams {
    let mut score = gossipsub::PeerScoreParams::default();
    score.topics.insert(gossipsub::IdentTopic::new(params.block_topic()).hash(), topic_score(1.0));
    score.topics.insert(gossipsub::IdentTopic::new(params.tx_topic()).hash(), topic_score(0.5));
    // Local test networks put every node on one address.
    score.ip_colocation_factor_whitelist.insert(std::net::IpAddr::from([127, 0, 0, 1]));
    score.app_specific_weight = 1.0;
    score
}

/// The payment topic's mesh (gossipsub's defaults, kept for blocks, are 6,
/// 5 and 12, with at least 2 outbound). Two mesh links keep a payment's cost
/// near two copies a node; the high mark stays at the default 12 because a
/// lower one has the node prune peers that graft onto it (with 4, a node
/// with five peers pruned three at every heartbeat, and their payments
/// reached it far more slowly than the mesh peers' did).
pub const TX_MESH_N: usize = 2;
pub const TX_MESH_N_LOW: usize = 2;
pub const TX_MESH_N_HIGH: usize = 12;
pub const TX_MESH_OUTBOUND_MIN: usize = 1;
/// Heartbeats whose message ids are advertised (default 3), and to how many
/// peers outside the mesh at least (default 6).
pub const GOSSIP_HISTORY: usize = 1;
pub const GOSSIP_LAZY: usize = 3;
/// Messages above this size are answered, on arrival, with an IDONTWANT to
/// the other mesh peers (gossipsub's default is 1,000 bytes, above a
/// payment's 200). Its 32-byte id costs a fifth of a payment, and since a
/// node validates a payment before it forwards it, the IDONTWANT reaches the
/// peer before that peer's own copy would leave.
pub const IDONTWANT_ABOVE_BYTES: usize = 150;

/// Largest gossip message: a block of the maximum size with room for framing.
pub const MAX_GOSSIP_BYTES: usize = MAX_BLOCK_BYTES + 64 * 1024;

impl Behaviour {
    /// `gossip_metrics`: where gossipsub registers its own metrics (those of
    /// messages received with their duplicates among them), if anywhere.
    pub fn new(
        key: &Keypair,
        params: &Params,
        peer_limits: Limits,
        gossip_metrics: Option<&mut prometheus_client::registry::Registry>,
    ) -> Result<Behaviour, BehaviourError> {
        let network = params.network;
        let peer_id = key.public().to_peer_id();
        // Content-hash ids: the same transaction or block relayed by two peers is one message.
        let message_id = |m: &gossipsub::Message| gossipsub::MessageId::from(Hash256::sha256(&m.data).0.to_vec());
        let tx_topic = gossipsub::IdentTopic::new(params.tx_topic()).hash();
        let gossip_config = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_millis(700))
            // Messages carry no author: ids are content hashes, and what a
            // message is worth is checked from its content, so gossipsub's
            // own signature, key and sequence number (about 120 bytes a
            // message a hop, two thirds of a payment) buy nothing.
            .validation_mode(gossipsub::ValidationMode::Anonymous)
            .validate_messages()
            // A message goes to the mesh, not to every peer: the publisher's
            // mesh and the advertisements to the rest reach the network.
            .flood_publish(false)
            // Payments: a thinner mesh. Each mesh link carries each payment
            // about once, so a node's cost per payment is about its mesh
            // degree in copies; IHAVEs to peers outside it still repair.
            .mesh_n_for_topic(TX_MESH_N, tx_topic.clone())
            .mesh_n_low_for_topic(TX_MESH_N_LOW, tx_topic.clone())
            .mesh_n_high_for_topic(TX_MESH_N_HIGH, tx_topic.clone())
            .mesh_outbound_min_for_topic(TX_MESH_OUTBOUND_MIN, tx_topic)
            // Each id is advertised in one heartbeat, to a few peers outside
            // the mesh (the defaults, three heartbeats to six peers, cost a
            // payment more in advertisements than in copies).
            .history_gossip(GOSSIP_HISTORY)
            .gossip_lazy(GOSSIP_LAZY)
            .idontwant_message_size_threshold(IDONTWANT_ABOVE_BYTES)
            .message_id_fn(message_id)
            .max_transmit_size(MAX_GOSSIP_BYTES)
            .duplicate_cache_time(Duration::from_secs(120))
            // The default 16 KiB holds only ~480 message ids, while a peer may
            // announce 5,000 in one IHAVE: a busy honest peer's stream would be
            // cut. Announce fewer, and accept what a peer may send.
            .max_control_messages_sent(400)
            .max_control_message_size(256 * 1024)
            .build()
            .map_err(|e| BehaviourError::Gossipsub(e.to_string()))?;
        let mut gossipsub = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossip_config)
            .map_err(|e| BehaviourError::Gossipsub(e.to_string()))?;
        gossipsub.with_peer_score(score_params(params), score_thresholds()).map_err(BehaviourError::Gossipsub)?;
        if let Some(registry) = gossip_metrics {
            let mut config = gossipsub::MetricsConfig::default();
            config.buckets_using_scoring_thresholds(&score_thresholds());
            gossipsub = gossipsub.with_metrics(registry.sub_registry_with_prefix("gossipsub"), config);
        }

        // Kademlia per network, so networks never mix their routing tables.
        let kad_protocol = StreamProtocol::try_from_owned(format!("/ourcoin/{network}/kad/1"))
            .unwrap_or(StreamProtocol::new("/ourcoin/kad/1"));
        let mut kad_config = kad::Config::new(kad_protocol);
        kad_config.set_query_timeout(Duration::from_secs(30));
        // The event loop walks when it needs addresses; Kademlia's own bootstrap is rare.
        kad_config.set_periodic_bootstrap_interval(Some(Duration::from_secs(1800)));
        // Only addresses that pass our filters enter the routing table.
        kad_config.set_kbucket_inserts(kad::BucketInserts::Manual);
        let mut kad = kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kad_config);
        // On loopback and private addresses Kademlia would stay a client and answer nothing.
        kad.set_mode(Some(kad::Mode::Server));

        let identify = identify::Behaviour::new(
            identify::Config::new(protocol_version(params), key.public())
                .with_agent_version(agent_version())
                .with_push_listen_addr_updates(true)
                // Changes of listen addresses are pushed at once; the periodic
                // exchange (a new stream and ~700 bytes each way) is a backstop.
                .with_interval(IDENTIFY_INTERVAL),
        );

        let sync = request_response::Behaviour::with_codec(
            PostcardCodec::new(MAX_SYNC_REQUEST_BYTES, MAX_SYNC_RESPONSE_BYTES),
            [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(Duration::from_secs(30))
                .with_max_concurrent_streams(MAX_SYNC_STREAMS),
        );
        let query = request_response::Behaviour::with_codec(
            PostcardCodec::new(MAX_QUERY_REQUEST_BYTES, MAX_QUERY_RESPONSE_BYTES),
            [(StreamProtocol::new(QUERY_PROTOCOL), ProtocolSupport::Inbound)],
            request_response::Config::default()
                .with_request_timeout(Duration::from_secs(30))
                .with_max_concurrent_streams(MAX_QUERY_STREAMS),
        );
        // The peer set keeps peers within `peer_limits`; these are the hard
        // bounds beyond it: unidentified connections, query clients and lookups.
        let hard_cap = peer_limits.max_connections + PENDING_MAX + QUERY_RESERVE + MAX_LOOKUP_CONNECTIONS;
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(u32::try_from(hard_cap).unwrap_or(u32::MAX)))
            .with_max_pending_incoming(Some(MAX_PENDING_HANDSHAKES))
            .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER));
        Ok(Behaviour {
            gate: Gate::default(),
            limits: connection_limits::Behaviour::new(limits),
            gossipsub,
            kad,
            identify,
            ping: ping::Behaviour::new(ping::Config::new().with_interval(PING_INTERVAL)),
            sync,
            query,
        })
    }
}
