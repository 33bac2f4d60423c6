//! The bodies of the fuzz targets in `tests/fuzz` (one function a target,
//! each taking the fuzzer's bytes), so that `cargo test` runs the same
//! properties on the committed seed corpus and on generated inputs without
//! a fuzzer. A target panics exactly when a property fails.
//!
//! - decoders (`block`, `transaction`, `sync`, `query`, `files`): nothing
//!   panics, and what decodes re-encodes to the same bytes;
//! - `chain`: blocks built from a few keys, reordered, duplicated, forked
//!   and tampered with, against the ledger replayed from genesis;
//! - `signatures`: the pairing cache and the batch verifiers against blst;
//! - `mempool`: additions, blocks connected and undone, expiry, against the
//!   pool's invariants;
//! - `sync_machine`: arbitrary events against the sync machine's invariants.

mod chain;
mod decoders;
mod mempool;
mod signatures;
mod sync_machine;
#[cfg(test)]
mod tests;

pub use chain::{chain, check_chain};
pub use decoders::{block, files, query, sync, transaction};
pub use mempool::mempool;
pub use signatures::signatures;
pub use sync_machine::sync_machine;

/// A target's body: the fuzzer's bytes in, a panic when a property fails.
pub type Target = fn(&[u8]);

/// Every target by name, as `tests/fuzz/fuzz_targets` and the corpus folders name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("block", block),
    ("transaction", transaction),
    ("sync", sync),
    ("query", query),
    ("files", files),
    ("chain", chain),
    ("signatures", signatures),
    ("mempool", mempool),
    ("sync_machine", sync_machine),
];
