//! The sync protocol's messages: status on connecting, headers from a
//! locator, blocks by hash, and the mempool exchange.

use serde::{Deserialize, Serialize};

use crate::types::{
    Block, BlockHash, BlockHeader, SignedTransaction, Transaction, Txid, MAX_BLOCK_BYTES, MAX_TX_BYTES,
};

pub const SYNC_PROTOCOL: &str = "/ourcoin/sync/1";
/// Bumped when the sync messages change incompatibly.
pub const SYNC_VERSION: u32 = 2;
/// Headers per response at most.
pub const MAX_HEADERS: u32 = 2_000;
/// Block hashes per request at most.
pub const MAX_BLOCKS_PER_REQUEST: usize = 64;
/// A blocks response stops adding blocks past this many bytes (one block always fits).
pub const BLOCKS_RESPONSE_SOFT_BYTES: usize = 8 * 1024 * 1024;
/// Txids per mempool message at most.
pub const MAX_MEMPOOL_IDS: usize = 50_000;
/// Transactions per mempool response at most.
pub const MAX_MEMPOOL_TXS: usize = 1_000;
/// Locator entries at most.
pub const MAX_LOCATOR: usize = 64;

pub const MAX_SYNC_REQUEST_BYTES: usize = 64 + MAX_MEMPOOL_IDS * 33;
pub const MAX_SYNC_RESPONSE_BYTES: usize = BLOCKS_RESPONSE_SOFT_BYTES + MAX_BLOCK_BYTES + 1024;

/// What a peer says of its chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStatus {
    pub version: u32,
    pub genesis: BlockHash,
    pub tip: BlockHash,
    pub height: u64,
    /// Cumulative work of the tip, big-endian.
    pub work: [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// Sent on connecting, carrying our own status; answered with theirs.
    Status(ChainStatus),
    /// Headers of the best chain after the first locator hash we share.
    Headers {
        locator: Vec<BlockHash>,
        max: u32,
    },
    Blocks(Vec<BlockHash>),
    MempoolIds,
    MempoolTxs(Vec<Txid>),
    /// Pending transactions the sender has and thinks we lack (after a reorg
    /// returned them to its mempool); we fetch the missing ones with `MempoolTxs`.
    AnnounceTxs(Vec<Txid>),
    /// The payments at these positions of a block (a compact block's missing ones).
    BlockTxs {
        block: BlockHash,
        indexes: Vec<u32>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    Status(ChainStatus),
    Headers(Vec<BlockHeader>),
    Blocks(Vec<Block>),
    MempoolIds(Vec<Txid>),
    MempoolTxs(Vec<SignedTransaction>),
    /// The payments asked for by `BlockTxs`, in the order asked.
    BlockTxs(Vec<Transaction>),
    /// The request was refused (wrong network, malformed, rate-limited).
    Refused(String),
    /// Received; nothing to return.
    Ack,
}

// A request for every payment of the largest block, and the reply, fit.
const _: () = assert!(64 + crate::types::compact::MAX_BLOCK_PAYMENTS * 5 < MAX_SYNC_REQUEST_BYTES);
const _: () = assert!(MAX_BLOCK_BYTES + 1024 < MAX_SYNC_RESPONSE_BYTES);
const _: () = assert!(MAX_MEMPOOL_TXS * (MAX_TX_BYTES + 8) < MAX_SYNC_RESPONSE_BYTES);
