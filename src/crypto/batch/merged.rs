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
//! The per-sender fold without weights, within one block, is
//! `pairing::miller_product_per_key`, which the pairing cache uses.

use blst::{blst_fp12, blst_p2, blst_p2_affine};

use super::{multi_scalar_mult, random_weights, weighted_product, AggregateSignedMessages};
use crate::crypto::bls::PublicKey;
use crate::crypto::pairing::{
    hashed_per_key_and_block, is_one_after_final_exp, miller_loop_n, on_workers, signature_miller_loop, to_affine,
    KeyTerms,
};

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
            pairs.push((sum?, terms.public_key.point()));
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
            let pairs: Vec<_> = affine.into_iter().zip(pairs.iter().map(|(key, _)| key.point())).collect();
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
    let signatures: Vec<blst_p2_affine> = blocks.iter().map(|(_, signature)| signature.point()).collect();
    let Some(signature_sum) = multi_scalar_mult(&signatures, &weights) else {
        return false;
    };
    product *= signature_miller_loop(&signature_sum);
    is_one_after_final_exp(&product)
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
