//! The weighted check of several blocks with each sender's messages merged.
//!
//! The weighted check of blocks `B_j` with weights `r_j` is
//!
//! ```text
//! FE( Π_j ( Π_{i ∈ B_j} ML(pk_i, H_i) )^(r_j) · ML(−g1, Σ_j r_j σ_j) ) = 1
//! ```
//!
//! and after the final exponentiation the pairing is bilinear, so the pairs
//! of one key `pk` can be folded into one:
//!
//! ```text
//! Π_j Π_{i ∈ B_j, pk_i = pk} e(pk, H_i)^(r_j)  =  e(pk, Σ_j r_j · Σ_{i ∈ B_j, pk_i = pk} H_i)
//! ```
//!
//! A sender with payments in several blocks of the batch then costs one
//! Miller loop and its share of a multi-scalar multiplication in G2 (64-bit
//! scalars) instead of a Miller loop per payment. A sender in one block only
//! keeps its Miller loop in that block's product, weighted in GT as the
//! per-block check does, since a lone scalar multiplication in G2 costs more
//! than its share of the exponentiation in GT. Every message is still hashed
//! to G2: that is the part nothing removes.
//!
//! The equation is the per-block one rewritten, so it holds for valid blocks
//! whatever the weights and it is as sound for invalid ones; it only says
//! whether the whole batch verifies. The caller finds which block is bad
//! with the per-block check when it does not.
//!
//! Within one block no weights are needed: the pairing cache pairs the
//! payments it has not seen once per sender (`miller_product_per_key`).

use std::collections::HashMap;

use blst::{blst_fp12, blst_p1_affine, blst_p2, blst_p2_affine};

use super::{multi_scalar_mult, random_weights, weighted_product, AggregateSignedMessages};
use crate::crypto::bls::PublicKey;
use crate::crypto::pairing_cache::{
    is_one_after_final_exp, message_point_projective, on_workers, public_key_point, signature_miller_loop,
    signature_point, MillerJob,
};
use crate::types::PublicKeyBytes;

/// Messages a worker hashes at a time.
const HASH_STRIDE: usize = 16;

/// Pairs a worker takes at a time for Miller loops: blst's `miller_loop_n`
/// shares the squarings of up to 16.
const MILLER_N: usize = 16;

/// One payment of the batch: its sender (numbered), block and message.
struct Message<'a> {
    key: usize,
    block: usize,
    public_key: &'a PublicKey,
    msg: &'a [u8],
}

/// What is paired with one key: the sum of its messages' points in each
/// block it signs in.
struct KeyTerms<'a> {
    public_key: &'a PublicKey,
    per_block: Vec<(usize, blst_p2)>,
}

/// Whether every block's aggregate signature verifies, in one check with the
/// messages of each sender merged. `false` also when a worker fails or the
/// operating system gives no randomness: the caller then checks block by block.
pub(super) fn all_hold(blocks: &[AggregateSignedMessages]) -> bool {
    if blocks.is_empty() {
        return true;
    }
    if blocks.iter().any(|(pairs, _)| pairs.is_empty()) {
        // `aggregate_verify` rejects a block without pairs; the caller says which.
        return false;
    }
    let Some(weights) = random_weights(blocks.len()) else {
        return false;
    };
    let pairs = blocks
        .iter()
        .enumerate()
        .flat_map(|(block, (pairs, _))| pairs.iter().map(move |(public_key, msg)| (block, public_key, msg.as_slice())));
    let Some(keys) = hashed_per_key_and_block(pairs) else {
        return false;
    };
    // Keys signing in one block only go to that block's product, grouped so
    // each block's Miller loops run together.
    let mut merged: Vec<&KeyTerms<'_>> = Vec::new();
    let mut per_block: Vec<Vec<(&PublicKey, &blst_p2)>> = vec![Vec::new(); blocks.len()];
    for terms in &keys {
        match terms.per_block.as_slice() {
            [(block, point)] => match per_block.get_mut(*block) {
                Some(pairs) => pairs.push((terms.public_key, point)),
                None => return false,
            },
            _ => merged.push(terms),
        }
    }
    let merged_product = on_workers(&merged, 1, |claimed| {
        let mut pairs = Vec::new();
        for (_, terms) in claimed {
            let points: Vec<blst_p2> = terms.per_block.iter().map(|(_, point)| *point).collect();
            let scalars: Option<Vec<u64>> =
                terms.per_block.iter().map(|(block, _)| weights.get(*block).copied()).collect();
            let sum = scalars.and_then(|scalars| multi_scalar_mult(&to_affine(&points)?, &scalars));
            pairs.push((sum?, public_key_point(terms.public_key)));
        }
        Some(miller_loop_n(&pairs))
    });
    let block_products = on_workers(&per_block, 1, |claimed| {
        let mut products = Vec::new();
        for (block, pairs) in claimed {
            if pairs.is_empty() {
                continue;
            }
            let points: Vec<blst_p2> = pairs.iter().map(|(_, point)| **point).collect();
            let affine = to_affine(&points)?;
            let pairs: Vec<_> = affine.into_iter().zip(pairs.iter().map(|(key, _)| public_key_point(key))).collect();
            products.push((block, miller_loop_n(&pairs)));
        }
        Some(products)
    });
    let (Some(merged_product), Some(block_products)) = (merged_product, block_products) else {
        return false;
    };
    let mut product = blst_fp12::default();
    for value in merged_product {
        let Some(value) = value else { return false };
        product *= value;
    }
    let Some(block_products) = block_products.into_iter().collect::<Option<Vec<_>>>() else {
        return false;
    };
    let block_products: Vec<(blst_fp12, u64)> =
        block_products.into_iter().flatten().filter_map(|(block, value)| Some((value, *weights.get(block)?))).collect();
    product *= weighted_product(block_products.iter().map(|(value, weight)| (value, *weight)));
    let signatures: Vec<blst_p2_affine> = blocks.iter().map(|(_, signature)| signature_point(signature)).collect();
    let Some(signature_sum) = multi_scalar_mult(&signatures, &weights) else {
        return false;
    };
    product *= signature_miller_loop(&signature_sum);
    is_one_after_final_exp(&product)
}

/// `Π ML(pk, H(pk ‖ msg))` over the jobs (whatever their groups), up to a
/// factor the final exponentiation removes: each key's messages are hashed,
/// summed, and paired once, so a block's payments not in the pairing cache
/// cost one Miller loop per sender. `None` if a worker failed or a sum is
/// the identity; the caller then computes the plain product.
pub(in crate::crypto) fn miller_product_per_key(jobs: &[MillerJob<'_>]) -> Option<blst_fp12> {
    let keys = hashed_per_key_and_block(jobs.iter().map(|job| (0, job.public_key, job.msg)))?;
    let sums: Vec<(&PublicKey, blst_p2)> =
        keys.iter().flat_map(|terms| terms.per_block.iter().map(move |(_, sum)| (terms.public_key, *sum))).collect();
    let partials = on_workers(&sums, MILLER_N, |claimed| {
        let mut product = blst_fp12::default();
        let claimed: Vec<_> = claimed.map(|(_, pair)| pair).collect();
        for chunk in claimed.chunks(MILLER_N) {
            let points: Vec<blst_p2> = chunk.iter().map(|(_, sum)| *sum).collect();
            let keys = chunk.iter().map(|(public_key, _)| public_key_point(public_key));
            product *= miller_loop_n(&to_affine(&points)?.into_iter().zip(keys).collect::<Vec<_>>());
        }
        Some(product)
    })?;
    let mut product = blst_fp12::default();
    for partial in partials {
        product *= partial?;
    }
    Some(product)
}

/// Every message hashed to G2 (on every core) and summed per key and block;
/// the keys in the order they first appear. `None` if a worker failed or a
/// sum is the identity (which no honest batch produces; the per-block check
/// then decides).
fn hashed_per_key_and_block<'a>(
    pairs: impl Iterator<Item = (usize, &'a PublicKey, &'a [u8])>,
) -> Option<Vec<KeyTerms<'a>>> {
    let mut numbers: HashMap<PublicKeyBytes, usize> = HashMap::new();
    let mut keys: Vec<KeyTerms<'a>> = Vec::new();
    let mut messages = Vec::new();
    for (block, public_key, msg) in pairs {
        let key = *numbers.entry(public_key.to_bytes()).or_insert_with(|| {
            keys.push(KeyTerms { public_key, per_block: Vec::new() });
            keys.len() - 1
        });
        messages.push(Message { key, block, public_key, msg });
    }
    let partial_sums = on_workers(&messages, HASH_STRIDE, |claimed| {
        let mut sums: HashMap<(usize, usize), blst_p2> = HashMap::new();
        for (_, message) in claimed {
            let point = message_point_projective(message.public_key, message.msg);
            add_into(&mut sums, (message.key, message.block), &point);
        }
        sums
    })?;
    let mut sums: HashMap<(usize, usize), blst_p2> = HashMap::new();
    for partial in partial_sums {
        for (at, point) in partial {
            add_into(&mut sums, at, &point);
        }
    }
    let mut sums: Vec<((usize, usize), blst_p2)> = sums.into_iter().collect();
    // Blocks in order within each key, so the work does not depend on hashing order.
    sums.sort_unstable_by_key(|(at, _)| *at);
    for ((key, block), point) in sums {
        // SAFETY: blst reads the local point.
        if unsafe { blst::blst_p2_is_inf(&point) } {
            return None;
        }
        keys.get_mut(key)?.per_block.push((block, point));
    }
    Some(keys)
}

fn add_into(sums: &mut HashMap<(usize, usize), blst_p2>, at: (usize, usize), point: &blst_p2) {
    match sums.get_mut(&at) {
        Some(sum) => {
            let previous = *sum;
            // SAFETY: blst reads two local points and writes a third; it
            // handles equal points (doubling) and the identity.
            unsafe { blst::blst_p2_add_or_double(sum, &previous, point) };
        }
        None => {
            sums.insert(at, *point);
        }
    }
}

/// Projective points in affine coordinates, with one shared inversion.
fn to_affine(points: &[blst_p2]) -> Option<Vec<blst_p2_affine>> {
    if points.is_empty() {
        return Some(Vec::new());
    }
    let mut affine = vec![blst_p2_affine::default(); points.len()];
    let arrays = [points.as_ptr(), std::ptr::null()];
    // SAFETY: `points` holds `points.len()` contiguous points (a null second
    // pointer says so to blst) and `affine` has room for as many results.
    unsafe { blst::blst_p2s_to_affine(affine.as_mut_ptr(), arrays.as_ptr(), points.len()) };
    Some(affine)
}

/// `Π ML(P_k, Q_k)` with the squarings of the loops shared (blst runs them
/// in groups of up to 16).
fn miller_loop_n(pairs: &[(blst_p2_affine, blst_p1_affine)]) -> blst_fp12 {
    let mut product = blst_fp12::default();
    if pairs.is_empty() {
        return product;
    }
    let (qs, ps): (Vec<blst_p2_affine>, Vec<blst_p1_affine>) = pairs.iter().copied().unzip();
    let q_arrays = [qs.as_ptr(), std::ptr::null()];
    let p_arrays = [ps.as_ptr(), std::ptr::null()];
    // SAFETY: `qs` and `ps` each hold `pairs.len()` contiguous points (a null
    // second pointer says so to blst); blst writes only `product`.
    unsafe { blst::blst_miller_loop_n(&mut product, q_arrays.as_ptr(), p_arrays.as_ptr(), pairs.len()) };
    product
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::crypto::Signature;
    use crate::testkit::signed_claim as payment;

    /// Blocks of payments by keys numbered in `senders` (one vector per
    /// block); a block listed in `bad` has one signature replaced by one over
    /// another message.
    fn blocks(senders: &[Vec<u64>], bad: &[usize]) -> Vec<AggregateSignedMessages> {
        senders
            .iter()
            .enumerate()
            .map(|(b, keys)| {
                let txs: Vec<_> = keys.iter().enumerate().map(|(n, &key)| payment(key, (b * 100 + n) as u64)).collect();
                let mut signatures: Vec<Signature> = txs.iter().map(|t| t.2).collect();
                if bad.contains(&b) {
                    signatures[0] = payment(keys[0], 1_000_000 + b as u64).2;
                }
                let pairs = txs.into_iter().map(|(pk, msg, _)| (pk, msg)).collect();
                (pairs, Signature::aggregate(&signatures).unwrap())
            })
            .collect()
    }

    #[test]
    fn agrees_with_aggregate_verify_on_repeated_and_lone_senders() {
        // Key 0 signs in every block (twice in block 1), key 5 only in block 2.
        let senders = vec![vec![0, 1], vec![0, 0, 2], vec![5, 0, 1], vec![3]];
        assert!(all_hold(&blocks(&senders, &[])));
        for bad in 0..senders.len() {
            let batch = blocks(&senders, &[bad]);
            assert!(!batch[bad].1.aggregate_verify(&batch[bad].0), "blst rejects block {bad}");
            assert!(!all_hold(&batch), "a bad block {bad} fails the batch");
        }
        assert!(all_hold(&[]));
        let mut with_empty = blocks(&senders, &[]);
        with_empty[1].0.clear();
        assert!(!all_hold(&with_empty));
    }

    #[test]
    fn signatures_swapped_between_blocks_fail() {
        // Each block is wrong, the batch as a whole would add up: weights catch it.
        let mut batch = blocks(&[vec![0, 1], vec![0, 2]], &[]);
        let (first, second) = (batch[0].1, batch[1].1);
        batch[0].1 = second;
        batch[1].1 = first;
        assert!(!all_hold(&batch));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10))]

        #[test]
        fn accepts_exactly_when_every_block_verifies(
            senders in proptest::collection::vec(proptest::collection::vec(0u64..4, 1..5), 1..6),
            bad in proptest::collection::vec(0usize..6, 0..2),
        ) {
            let batch = blocks(&senders, &bad);
            let every_block_verifies = batch.iter().all(|(pairs, signature)| signature.aggregate_verify(pairs));
            prop_assert_eq!(all_hold(&batch), every_block_verifies);
        }
    }
}
