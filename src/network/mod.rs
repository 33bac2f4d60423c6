//! The libp2p side: codecs, protocols, the behaviour, and the event loop that owns the Swarm.

pub mod behaviour;
pub mod cidr;
pub mod event_loop;
pub mod protocol;

pub use event_loop::{Client, Command, EventLoop, NetworkConfig, NetworkEvent, NetworkEvents, SyncReply, Topic};
