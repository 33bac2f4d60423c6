//! Values that every other module speaks in: hashes, amounts, addresses,
//! transactions, headers, blocks, and their canonical encoding.
// A validator must never panic on hostile input.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod address;
pub mod amount;
pub mod block;
pub mod compact;
pub mod encoding;
pub mod hash;
pub mod network;
pub mod transaction;

pub use address::{Address, AddressParseError};
pub use amount::{Amount, AmountParseError, COIN};
pub use block::{Block, BlockBody, BlockHeader, CompactTarget, HEADER_BYTES, HEADER_NONCE_OFFSET};
pub use compact::{BlockMessage, CompactBlock, PartialBlock, RebuildError, ShortId, ShortIdKey};
pub use encoding::{decode, encode, DecodeError, MAX_BLOCK_BYTES, MAX_TX_BYTES};
pub use hash::{BlockHash, Hash256, HashParseError, Txid};
pub use network::{Network, UnknownNetwork};
pub use transaction::{ChainId, Coinbase, PublicKeyBytes, SignatureBytes, SignedTransaction, Transaction};
