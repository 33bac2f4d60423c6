//! The miner's core: assembling a block from a template and a blocking,
//! cancellable hash loop for plain `std::thread`s (no rayon).
// A validator must never panic on hostile input.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use std::sync::atomic::AtomicBool;

use sha2::digest::generic_array::GenericArray;

use crate::chain::NextBlock;
use crate::consensus::{subsidy, BLOCK_VERSION};
use crate::crypto::{CryptoError, Signature};
use crate::types::{
    Address, Amount, Block, BlockBody, BlockHeader, Coinbase, SignedTransaction, HEADER_BYTES, HEADER_NONCE_OFFSET,
};

pub mod lanes;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the fees of the chosen transactions overflow")]
    FeeOverflow,
    #[error("a chosen transaction's signature is invalid: {0}")]
    Signature(#[from] CryptoError),
}

/// Builds an unmined block on `next`: the coinbase pays the subsidy plus all
/// fees, and the payments' signatures are aggregated into one.
pub fn assemble_block(
    next: &NextBlock,
    time: u64,
    miner: Address,
    payments: &[SignedTransaction],
) -> Result<Block, TemplateError> {
    let aggregate = if payments.is_empty() {
        None
    } else {
        let sigs = payments.iter().map(|p| Signature::from_bytes(&p.signature)).collect::<Result<Vec<_>, _>>()?;
        Some(Signature::aggregate(&sigs)?)
    };
    assemble_block_with(next, time, miner, payments, aggregate)
}

/// [`assemble_block`] with the payments' aggregate signature already made
/// (the mempool keeps its entries' signatures parsed, so a template of
/// thousands of payments need not parse them again).
pub fn assemble_block_with(
    next: &NextBlock,
    time: u64,
    miner: Address,
    payments: &[SignedTransaction],
    aggregate: Option<Signature>,
) -> Result<Block, TemplateError> {
    let fees = Amount::checked_sum(payments.iter().map(|p| p.tx.fee)).ok_or(TemplateError::FeeOverflow)?;
    let amount = subsidy(next.height).checked_add(fees).ok_or(TemplateError::FeeOverflow)?;
    let aggregate_signature = aggregate.map(|a| a.to_bytes());
    let body = BlockBody {
        coinbase: Coinbase { height: next.height, recipient: miner, amount },
        transactions: payments.iter().map(|p| p.tx).collect(),
        aggregate_signature,
    };
    Ok(Block {
        header: BlockHeader {
            version: BLOCK_VERSION,
            prev: next.prev,
            height: next.height,
            body_commitment: body.commitment(),
            time: time.max(next.min_time),
            target: next.target,
            nonce: 0,
        },
        body,
    })
}

/// SHA-256's initial state.
const SHA256_IV: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// Hashes headers that differ only in their nonce, reusing the state after
/// the first 64 bytes (the midstate): two compressions per nonce instead of three.
#[derive(Clone)]
pub struct HeaderHasher {
    midstate: [u32; 8],
    /// The second 64-byte block of the padded header; the nonce is patched in.
    tail: [u8; 64],
}

impl HeaderHasher {
    pub fn new(header: &BlockHeader) -> HeaderHasher {
        let bytes = header.to_bytes();
        let mut midstate = SHA256_IV;
        sha2::compress256(&mut midstate, &[*GenericArray::from_slice(&bytes[..64])]);
        let mut tail = [0u8; 64];
        tail[..HEADER_BYTES - 64].copy_from_slice(&bytes[64..]);
        tail[HEADER_BYTES - 64] = 0x80;
        tail[56..].copy_from_slice(&((HEADER_BYTES as u64) * 8).to_be_bytes());
        HeaderHasher { midstate, tail }
    }

    /// The double SHA-256 of the header with `nonce`.
    pub fn hash(&self, nonce: u64) -> [u8; 32] {
        let mut block = self.tail;
        block[HEADER_NONCE_OFFSET - 64..HEADER_NONCE_OFFSET - 64 + 8].copy_from_slice(&nonce.to_le_bytes());
        let mut state = self.midstate;
        sha2::compress256(&mut state, &[*GenericArray::from_slice(&block)]);
        let mut second = [0u8; 64];
        for (chunk, word) in second[..32].chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        second[32] = 0x80;
        second[56..].copy_from_slice(&256u64.to_be_bytes());
        let mut out_state = SHA256_IV;
        sha2::compress256(&mut out_state, &[*GenericArray::from_slice(&second)]);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(out_state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

/// How a hash loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MineOutcome {
    Found(BlockHeader),
    Cancelled,
    /// Every nonce of the range was tried: change the time and go on.
    Exhausted,
}

/// Nonces between two looks at the cancel flag: a few milliseconds of work.
const CANCEL_CHECK_INTERVAL: u64 = 4096;

/// Tries nonces `start, start + stride, …` (`count` of them) until the
/// header's hash meets its target or `cancel` is set, and reports the first
/// nonce in that order that meets it. Hashes [`lanes::LANES`] nonces at a
/// time, with SHA-NI where the CPU has it. Blocking: run it on a plain
/// thread, one per core with distinct `start`s and `stride` = threads.
pub fn mine(header: &BlockHeader, start: u64, stride: u64, count: u64, cancel: &AtomicBool) -> MineOutcome {
    lanes::LaneHasher::new(header).mine(start, stride, count, cancel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Target;
    use crate::types::{BlockHash, CompactTarget, Hash256};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn midstate_hash_equals_the_plain_double_sha256(
            prev in any::<[u8; 32]>(), time in any::<u64>(), height in any::<u64>(), nonce in any::<u64>()
        ) {
            let mut header = BlockHeader {
                version: 1,
                prev: BlockHash(Hash256(prev)),
                height,
                body_commitment: Hash256([9; 32]),
                time,
                target: CompactTarget(0x1d00ffff),
                nonce: 0,
            };
            let hasher = HeaderHasher::new(&header);
            header.nonce = nonce;
            prop_assert_eq!(hasher.hash(nonce), header.hash().0 .0);
        }
    }

    #[test]
    fn finds_a_nonce_that_meets_the_target_and_stops_when_cancelled() {
        let header = BlockHeader {
            version: 1,
            prev: BlockHash::default(),
            height: 1,
            body_commitment: Hash256([1; 32]),
            time: 1,
            target: CompactTarget(0x1f00ffff), // one hash in 65536 meets it
            nonce: 0,
        };
        let never = AtomicBool::new(false);
        match mine(&header, 0, 1, 10_000_000, &never) {
            MineOutcome::Found(found) => {
                assert!(Target::from_compact(found.target).unwrap().is_met_by(&found.hash()));
            }
            other => panic!("expected a block, got {other:?}"),
        }
        let cancelled = AtomicBool::new(true);
        assert_eq!(mine(&header, 0, 1, 10_000_000, &cancelled), MineOutcome::Cancelled);
        assert_eq!(mine(&header, 0, 1, 0, &never), MineOutcome::Exhausted);
    }
}
