//! The libp2p side: codecs, protocols, the behaviour, and the event loop that owns the Swarm.

pub mod addrbook;
pub mod bans;
pub mod behaviour;
pub mod cidr;
pub mod event_loop;
pub mod eviction;
pub mod gate;
mod manage;
pub mod peer_set;
pub mod protocol;

pub use event_loop::{Client, Command, EventLoop, NetworkConfig, NetworkEvent, NetworkEvents, SyncReply, Topic};
