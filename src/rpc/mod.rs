//! The query protocol that serves `ourcoin-cli`: requests, and replies shaped
//! exactly as the `--json` documents of SPEC §7 (amounts in base units,
//! hashes and keys as lowercase hex), so the client prints them as they come.

pub mod client;
pub mod handler;

use serde::{Deserialize, Serialize};

use crate::types::{Address, BlockHash, SignedTransaction, Txid, MAX_BLOCK_BYTES, MAX_TX_BYTES};

/// The libp2p protocol name of the query protocol.
pub const QUERY_PROTOCOL: &str = "/ourcoin/query/1";
/// The largest query request: a submission is the biggest.
pub const MAX_QUERY_REQUEST_BYTES: usize = MAX_TX_BYTES + 64;
/// The largest query reply (a block's txids, a long history).
pub const MAX_QUERY_RESPONSE_BYTES: usize = 4 * MAX_BLOCK_BYTES;
/// The most entries a history or mempool listing returns.
pub const MAX_LIST_LIMIT: u32 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockId {
    Height(u64),
    Hash(BlockHash),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryRequest {
    Status,
    Balance {
        address: Address,
    },
    History {
        address: Address,
        limit: u32,
    },
    Block(BlockId),
    Tx(Txid),
    Peers,
    Mempool {
        limit: u32,
    },
    Submit(SignedTransaction),
    /// Changes the node's peers or bans: only with the node's cookie.
    Node {
        cookie: String,
        command: NodeCommand,
    },
    EstimateFee {
        blocks: u32,
    },
    ChainInfo,
    MiningInfo,
}

/// What `ourcoin-cli node …` asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeCommand {
    /// A multiaddr to dial now and keep.
    Connect(String),
    Disconnect(String),
    /// A peer id or an IP address, for `duration_s` seconds.
    Ban {
        target: String,
        duration_s: u64,
    },
    Unban(String),
    Bans,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum QueryResponse {
    Status(StatusReply),
    Balance(BalanceReply),
    History(HistoryReply),
    Block(BlockReply),
    Tx(TxReply),
    Peers(Vec<PeerReply>),
    Mempool(MempoolReply),
    Submitted(SubmitReply),
    Node(NodeReply),
    /// The request could not be answered; the text says why, for the user.
    Error(String),
    FeeEstimate(FeeEstimateReply),
    ChainInfo(ChainInfoReply),
    MiningInfo(MiningInfoReply),
}

/// The node's latest status, shared with the network's event loop, which
/// answers `status` from it without waiting for the node.
pub type StatusBoard = std::sync::Arc<std::sync::Mutex<StatusReply>>;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    pub network: String,
    pub peer_id: String,
    pub listen_addrs: Vec<String>,
    pub height: u64,
    pub tip: String,
    /// Cumulative work of the best chain, 64 hex digits.
    pub work: String,
    pub peers: u64,
    pub mempool: u64,
    pub mining: bool,
    /// Height of the best chain a peer has announced (the sync target).
    pub best_known_height: u64,
    /// Share of block transactions whose signature pairing was already cached
    /// from mempool admission; `None` before any block with payments.
    pub signature_cache_hit_ratio: Option<f64>,
    /// How blocks arrived on gossip since the node started.
    pub compact_blocks: CompactBlockStats,
}

/// Counts of the blocks that arrived on gossip, and how compact ones were rebuilt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactBlockStats {
    /// Compact blocks received (each block once, however many peers sent it).
    pub received: u64,
    /// Rebuilt from the mempool and recent blocks alone.
    pub rebuilt_without_roundtrip: u64,
    /// Rebuilt after asking the sender for the missing payments.
    pub rebuilt_with_roundtrip: u64,
    /// Fetched in full instead (a short-id collision, a sender that did not answer).
    pub fallen_back: u64,
    /// Block messages of either kind received, and their bytes.
    pub block_messages: u64,
    pub block_message_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceReply {
    pub address: String,
    pub confirmed: u64,
    pub immature: u64,
    pub pending: u64,
    /// Transactions the account has sent (confirmed).
    pub nonce: u64,
    /// The nonce the next transaction must carry, counting pending ones.
    pub next_nonce: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub txid: String,
    /// `None` for a mining reward.
    pub from: Option<String>,
    pub to: String,
    pub amount: u64,
    pub fee: u64,
    /// `None` while pending.
    pub height: Option<u64>,
    pub confirmations: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryReply {
    pub address: String,
    pub transactions: Vec<HistoryEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockReply {
    pub hash: String,
    pub height: u64,
    pub prev: String,
    pub time: u64,
    /// The full 256-bit target, 64 hex digits.
    pub target: String,
    pub nonce: u64,
    /// Coinbase first.
    pub txids: Vec<String>,
    pub aggregate_signature: Option<String>,
    pub confirmations: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxReply {
    pub txid: String,
    /// `None` for a coinbase.
    pub from: Option<String>,
    pub to: String,
    pub amount: u64,
    pub fee: u64,
    /// `None` for a coinbase (it carries its height instead).
    pub nonce: Option<u64>,
    /// `None` while pending.
    pub height: Option<u64>,
    pub block: Option<String>,
    pub confirmations: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerReply {
    pub peer_id: String,
    pub addrs: Vec<String>,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// The agent version it gave through identify (`ourcoind/0.1.0`).
    pub agent: Option<String>,
    /// `None` until measured.
    pub ping_ms: Option<f64>,
    pub connected_s: u64,
    /// Our score of it: 0 is neutral, lowered by invalid data; a ban at -500.
    pub score: f64,
}

/// The answers to `node …` commands; [`NodeReply::json`] gives SPEC §7's documents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeReply {
    Connected { peer_id: String },
    Disconnected { peer_id: String },
    Banned { banned: String },
    Unbanned { unbanned: String },
    Bans(Vec<crate::network::bans::BanEntry>),
}

impl NodeReply {
    pub fn json(&self) -> serde_json::Value {
        match self {
            NodeReply::Connected { peer_id } | NodeReply::Disconnected { peer_id } => {
                serde_json::json!({ "peer_id": peer_id })
            }
            NodeReply::Banned { banned } => serde_json::json!({ "banned": banned }),
            NodeReply::Unbanned { unbanned } => serde_json::json!({ "unbanned": unbanned }),
            NodeReply::Bans(bans) => serde_json::json!(bans),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MempoolReply {
    pub count: u64,
    /// The pool's size, counted as encoded signed transactions.
    pub bytes: u64,
    /// The lowest fee that gets a payment into the pool now.
    pub min_fee: u64,
    pub txids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitReply {
    pub txid: String,
}

/// The most blocks `estimatefee --blocks` may ask about.
pub const MAX_ESTIMATE_BLOCKS: u32 = 100;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeEstimateReply {
    pub fee: u64,
    pub blocks: u32,
    /// What the estimate came from: `mempool`, `blocks` or `minimum`.
    pub basis: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainInfoReply {
    pub network: String,
    pub height: u64,
    pub best_block: String,
    /// Height of the best validated header chain.
    pub headers: u64,
    /// 64 hex digits.
    pub chain_work: String,
    /// 1 at the proof-of-work limit.
    pub difficulty: f64,
    pub median_time: u64,
    pub initial_sync: bool,
    /// 0 to 1.
    pub sync_progress: f64,
    pub size_on_disk: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MiningInfoReply {
    pub mining: bool,
    pub threads: u64,
    /// This node's miner, hashes per second.
    pub hashrate: f64,
    /// Estimated from recent blocks' work and times.
    pub network_hashrate: f64,
    pub difficulty: f64,
}
