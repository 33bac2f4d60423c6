//! Every rule a transaction or block can break, named in words.
//!
//! One enum for consensus rules and mempool policy alike, so a verdict (accept,
//! ignore, reject and a penalty for the peer) can be decided for each variant
//! in one exhaustive `match`.

use crate::crypto::CompactError;
use crate::types::{Amount, BlockHash, CompactTarget, DecodeError, Txid};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    // Encoding.
    #[error("malformed encoding: {0}")]
    Malformed(#[from] DecodeError),

    // Transactions, context-free.
    #[error("transaction is for chain id {found:#x}, this network's is {expected:#x}")]
    WrongChainId { expected: u32, found: u32 },
    #[error("transaction pays a zero amount")]
    ZeroAmount,
    #[error("transaction amount plus fee overflows")]
    AmountOverflow,
    #[error("sender public key is invalid: {0}")]
    InvalidPublicKey(String),
    #[error("transaction signature does not verify")]
    BadSignature,
    #[error("transaction signature is malformed: {0}")]
    MalformedSignature(String),

    // Blocks, context-free.
    #[error("block is {size} bytes, over the limit of {limit}")]
    BlockTooLarge { size: usize, limit: usize },
    #[error("block version {0} is not known")]
    UnknownVersion(u32),
    #[error("block hash does not meet its target")]
    BadProofOfWork,
    #[error("block target is not a valid compact value: {0}")]
    InvalidTarget(CompactError),
    #[error("block target {0:?} is easier than the network's proof-of-work limit")]
    TargetAboveLimit(CompactTarget),
    #[error("header body commitment does not match the body")]
    BodyCommitmentMismatch,
    #[error("transaction {0} appears twice in the block")]
    DuplicateTransaction(Txid),
    #[error("block has no payments but carries an aggregate signature")]
    UnexpectedAggregateSignature,
    #[error("block has payments but no aggregate signature")]
    MissingAggregateSignature,
    #[error("aggregate signature is malformed: {0}")]
    MalformedAggregateSignature(String),
    #[error("aggregate signature does not verify over the block's transactions")]
    BadAggregateSignature,
    #[error("coinbase carries height {found}, the block's height is {expected}")]
    CoinbaseHeightMismatch { expected: u64, found: u64 },

    // Blocks, against their parent.
    #[error("parent block {0} is not known")]
    UnknownParent(BlockHash),
    #[error("block height {found} does not follow its parent's ({expected} expected)")]
    WrongHeight { expected: u64, found: u64 },
    #[error("block target {found:?} is not the difficulty schedule's {expected:?}")]
    WrongTarget { expected: CompactTarget, found: CompactTarget },
    #[error("block time {time} is not after the median time past {median_time_past}")]
    TimeTooOld { time: u64, median_time_past: u64 },
    #[error("block time {time} is more than {limit_secs} s ahead of the local clock {now}")]
    TimeTooFarAhead { time: u64, now: u64, limit_secs: u64 },
    #[error("block descends from a block known to be invalid")]
    InvalidAncestor,
    #[error("block is already known")]
    DuplicateBlock,
    #[error("unrequested block is on a chain with less work than the best chain")]
    LessWorkThanBest,

    // Against the ledger.
    #[error("coinbase pays {found}, more than subsidy plus fees {expected}")]
    CoinbasePaysTooMuch { expected: Amount, found: Amount },
    #[error("coinbase pays {found}, less than subsidy plus fees {expected}")]
    CoinbasePaysTooLittle { expected: Amount, found: Amount },
    #[error("transaction nonce {found} is not the sender's next nonce {expected}")]
    WrongNonce { expected: u64, found: u64 },
    #[error("sender balance {balance} does not cover {needed}")]
    InsufficientBalance { balance: Amount, needed: Amount },
    #[error("sender balance {balance} covers {needed} only with rewards that have not matured")]
    SpendsImmatureReward { balance: Amount, needed: Amount },
    #[error("a balance would overflow")]
    BalanceOverflow,

    // Mempool policy.
    #[error("fee {found} is below the minimum relay fee {minimum}")]
    FeeBelowMinimum { minimum: Amount, found: Amount },
    #[error("transaction nonce {found} is below the sender's next nonce {expected}")]
    NonceTooLow { expected: u64, found: u64 },
    #[error("transaction nonce {found} is more than {limit} ahead of the sender's next nonce {expected}")]
    NonceTooFarAhead { expected: u64, found: u64, limit: u64 },
    #[error("the sender's pending spends together ({needed}) exceed its balance {balance}")]
    PendingSpendsExceedBalance { balance: Amount, needed: Amount },
    #[error("replacement fee {found} is below the required {required} (10% above the pending fee)")]
    ReplacementFeeTooLow { required: Amount, found: Amount },
    #[error("transaction is already in the mempool")]
    AlreadyInMempool,
    #[error("the mempool is full and the transaction's fee is too low to enter it")]
    MempoolFull,
}
