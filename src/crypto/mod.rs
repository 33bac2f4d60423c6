//! Cryptography: BLS signatures and proof of work.
// A validator must never panic on hostile input.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod batch;
pub mod bls;
mod fifo;
mod pairing;
pub mod pairing_cache;
pub mod pow;

pub use bls::{CryptoError, PublicKey, SecretKey, Signature};
pub use pow::{CompactError, Target, Work};
