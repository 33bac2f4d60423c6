//! OurCoin: a proof-of-work cryptocurrency whose blocks carry one aggregate
//! BLS signature for all of their transactions.
//!
//! The pure core (types, crypto, consensus, state, chain, mempool) reads no
//! clock, disk or socket; the store, miner threads and network sit at the edge.

pub mod chain;
pub mod codec;
pub mod consensus;
pub mod crypto;
pub mod fsio;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod mempool;
pub mod metrics;
pub mod miner;
pub mod network;
pub mod node;
pub mod rpc;
pub mod state;
pub mod store;
pub mod testkit;
pub mod types;
pub mod wallet;
