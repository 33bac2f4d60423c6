//! The combined libp2p behaviour: gossipsub for transactions and blocks,
//! Kademlia and identify for discovery, ping, and the sync and query
//! request-response protocols.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::kad::store::MemoryStore;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{gossipsub, identify, kad, ping, StreamProtocol};

use super::codec::PostcardCodec;
use super::protocol::{SyncRequest, SyncResponse, MAX_SYNC_REQUEST_BYTES, MAX_SYNC_RESPONSE_BYTES, SYNC_PROTOCOL};
use crate::rpc::{QueryRequest, QueryResponse, MAX_QUERY_REQUEST_BYTES, MAX_QUERY_RESPONSE_BYTES, QUERY_PROTOCOL};
use crate::types::{Hash256, Network, MAX_BLOCK_BYTES};

pub type SyncBehaviour = request_response::Behaviour<PostcardCodec<SyncRequest, SyncResponse>>;
pub type QueryBehaviour = request_response::Behaviour<PostcardCodec<QueryRequest, QueryResponse>>;

#[derive(NetworkBehaviour)]
pub struct Behaviour {
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

/// Largest gossip message: a block of the maximum size with room for framing.
pub const MAX_GOSSIP_BYTES: usize = MAX_BLOCK_BYTES + 64 * 1024;

impl Behaviour {
    pub fn new(key: &Keypair, network: Network) -> Result<Behaviour, BehaviourError> {
        let peer_id = key.public().to_peer_id();
        // Content-hash ids: the same transaction or block relayed by two peers is one message.
        let message_id = |m: &gossipsub::Message| gossipsub::MessageId::from(Hash256::sha256(&m.data).0.to_vec());
        let gossip_config = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_millis(700))
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .message_id_fn(message_id)
            .max_transmit_size(MAX_GOSSIP_BYTES)
            .duplicate_cache_time(Duration::from_secs(120))
            .build()
            .map_err(|e| BehaviourError::Gossipsub(e.to_string()))?;
        let gossipsub = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossip_config)
            .map_err(|e| BehaviourError::Gossipsub(e.to_string()))?;

        // Kademlia per network, so networks never mix their routing tables.
        let kad_protocol = StreamProtocol::try_from_owned(format!("/ourcoin/{network}/kad/1"))
            .unwrap_or(StreamProtocol::new("/ourcoin/kad/1"));
        let mut kad_config = kad::Config::new(kad_protocol);
        kad_config.set_query_timeout(Duration::from_secs(30));
        kad_config.set_periodic_bootstrap_interval(Some(Duration::from_secs(60)));
        let mut kad = kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kad_config);
        // On loopback and private addresses Kademlia would stay a client and answer nothing.
        kad.set_mode(Some(kad::Mode::Server));

        let identify = identify::Behaviour::new(
            identify::Config::new(format!("/ourcoin/{network}/1"), key.public())
                .with_push_listen_addr_updates(true)
                .with_interval(Duration::from_secs(60)),
        );

        let sync = request_response::Behaviour::with_codec(
            PostcardCodec::new(MAX_SYNC_REQUEST_BYTES, MAX_SYNC_RESPONSE_BYTES),
            [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
        );
        let query = request_response::Behaviour::with_codec(
            PostcardCodec::new(MAX_QUERY_REQUEST_BYTES, MAX_QUERY_RESPONSE_BYTES),
            [(StreamProtocol::new(QUERY_PROTOCOL), ProtocolSupport::Inbound)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
        );
        Ok(Behaviour { gossipsub, kad, identify, ping: ping::Behaviour::default(), sync, query })
    }
}
