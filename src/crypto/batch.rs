//! Batched signature verification with random weights.
//!
//! A claim says `e(g1, σ_j) = F_j`, where `F_j` is the product of
//! `e(pk, H(pk ‖ m))` over the pairs σ_j signs (one pair for a transaction,
//! all of them for a block). Several claims are checked at once by drawing a
//! nonzero 64-bit weight `r_j` for each from the operating system and testing
//!
//! ```text
//! FE( Π ML_j^(r_j) · ML(−g1, Σ r_j σ_j) ) = 1
//! ```
//!
//! where `ML_j` is the Miller-loop product behind `F_j` and `FE` the final
//! exponentiation. GT has prime order, so whatever the other weights, at most
//! one value of a false claim's weight makes this hold: a batch with a bad
//! signature passes with probability at most 2^-63 (the weights are drawn
//! after the signatures, 64 bits wide, zero excluded). A batch that fails is
//! halved and each half checked again with fresh weights, down to single
//! claims checked exactly, so an honest transaction is never rejected for
//! arriving with a bad one.
//!
//! The weights go on the Miller-loop values, in one multi-exponentiation that
//! shares its 64 squarings among the claims, not on the public keys as blst's
//! `verify_multiple_aggregate_signatures` puts them: the unweighted
//! `ML(pk, H)` of a transaction is then both what the batch check uses and
//! what the pairing cache keeps, so admission runs one Miller loop per
//! transaction instead of two, and bisection reuses the values instead of
//! hashing and pairing again.

use std::cmp::Reverse;
use std::ptr;

use blst::{blst_fp12, blst_p2, blst_p2_affine, limb_t};

mod merged;

use super::bls::{PublicKey, Signature};
use super::pairing::{
    available_cores, is_one_after_final_exp, message_point, miller_loop_products, on_workers, signature_miller_loop,
    MillerJob,
};
use super::pairing_cache::PairingCache;

/// Claims in one weighted check at most. A check has a fixed cost (a Miller
/// loop, a final exponentiation and 64 squarings in Fp12, about 0.7 ms); at
/// 64 claims that is under 3% of the batch, and bisecting a batch with one
/// bad claim takes six levels.
const MAX_BATCH: usize = 64;

/// Claims a batch is split into per core at least: below it, the fixed
/// cost of one more check outweighs the core it would use (with gossip's
/// batches of a few payments, splitting them across two cores doubled the
/// checks and made each payment pay for a third of one).
const MIN_PER_WORKER: usize = 16;

/// A message with its signer's public key and signature.
pub type SignedMessage = (PublicKey, Vec<u8>, Signature);

/// Messages with their signers' public keys, and one aggregate signature over
/// all of them: a block's (sender key, signing message) pairs and signature.
pub type AggregateSignedMessages = (Vec<(PublicKey, Vec<u8>)>, Signature);

/// The weights' width in bits.
const WEIGHT_BITS: usize = 64;

/// `FE(miller · ML(−g1, signature)) = 1`, numbered by the caller.
struct Claim {
    index: usize,
    miller: blst_fp12,
    signature: blst_p2_affine,
}

/// Which of the signed messages verify, as `Signature::verify` would say of
/// each: batches of 16 to 64 spread over the cores, random weights, bisection
/// of failed batches. With a cache, the Miller-loop value of every valid
/// message is kept for block validation.
///
/// Should a worker thread fail (a bug), every verdict is false: nothing
/// unverified is ever marked valid. Blocks the calling thread for the whole
/// check (from async code, call it on a blocking thread).
pub fn verify_batch(items: &[SignedMessage], cache: Option<&PairingCache>) -> Vec<bool> {
    let mut verdicts = vec![false; items.len()];
    let workers = (items.len() / MIN_PER_WORKER).clamp(1, available_cores());
    let batch_size = items.len().div_ceil(workers).clamp(1, MAX_BATCH);
    let batches: Vec<_> = items.chunks(batch_size).collect();
    let valid = on_workers(&batches, 1, |claimed| {
        let mut valid = Vec::new();
        for (number, batch) in claimed {
            let offset = number * batch_size;
            valid.extend(valid_in_batch(batch, cache).into_iter().map(|index| offset + index));
        }
        valid
    });
    for index in valid.into_iter().flatten().flatten() {
        if let Some(verdict) = verdicts.get_mut(index) {
            *verdict = true;
        }
    }
    verdicts
}

/// The positions of the valid signatures of one batch, on this thread.
fn valid_in_batch(batch: &[SignedMessage], cache: Option<&PairingCache>) -> Vec<usize> {
    let claims: Vec<Claim> = batch
        .iter()
        .enumerate()
        .map(|(index, (public_key, msg, signature))| {
            let miller = blst_fp12::miller_loop(&message_point(public_key, msg), &public_key.point());
            Claim { index, miller, signature: signature.point() }
        })
        .collect();
    let mut valid = Vec::with_capacity(claims.len());
    collect_valid(&claims, &mut valid);
    if let Some(cache) = cache {
        cache.insert_miller_loops(valid.iter().filter_map(|claim| {
            let (public_key, msg, _) = batch.get(claim.index)?;
            Some((public_key, msg.as_slice(), claim.miller))
        }));
    }
    valid.into_iter().map(|claim| claim.index).collect()
}

/// Checks several blocks' aggregate signatures (each over its (public key,
/// signing message) pairs) in one weighted multi-pairing, as sync receives
/// them. `Err` holds the index of the first block whose signature
/// `Signature::aggregate_verify` would reject; the blocks before it verify.
///
/// First one check with each sender's messages merged (`merged`); only when
/// it fails, a Miller-loop product per block and bisection find the bad one.
pub fn verify_blocks_batch(blocks: &[AggregateSignedMessages]) -> Result<(), usize> {
    if merged::all_hold(blocks) {
        return Ok(());
    }
    // A block without pairs never verifies, as in `aggregate_verify`; only the
    // blocks before the first such one need pairings.
    let first_empty = blocks.iter().position(|(pairs, _)| pairs.is_empty());
    let checked = blocks.get(..first_empty.unwrap_or(blocks.len())).unwrap_or_default();
    let jobs: Vec<MillerJob<'_>> = checked
        .iter()
        .enumerate()
        .flat_map(|(group, (pairs, _))| pairs.iter().map(move |(public_key, msg)| MillerJob { public_key, msg, group }))
        .collect();
    let claims = miller_loop_products(&jobs, checked.len()).map(|products| {
        products
            .into_iter()
            .zip(checked)
            .enumerate()
            .map(|(index, (miller, (_, signature)))| Claim { index, miller, signature: signature.point() })
            .collect::<Vec<Claim>>()
    });
    let Some(claims) = claims else {
        // Only a failed worker thread gets here; blst decides then.
        return match blocks.iter().position(|(pairs, signature)| !signature.aggregate_verify(pairs)) {
            Some(index) => Err(index),
            None => Ok(()),
        };
    };
    match first_invalid(&claims).or(first_empty) {
        Some(index) => Err(index),
        None => Ok(()),
    }
}

/// Adds the claims that hold to `valid`, bisecting when their check fails.
fn collect_valid<'a>(claims: &'a [Claim], valid: &mut Vec<&'a Claim>) {
    if holds(claims) {
        valid.extend(claims);
    } else if claims.len() > 1 {
        let (left, right) = claims.split_at(claims.len() / 2);
        collect_valid(left, valid);
        collect_valid(right, valid);
    }
}

/// The index of the first claim that does not hold, if any.
fn first_invalid(claims: &[Claim]) -> Option<usize> {
    if holds(claims) {
        return None;
    }
    match claims {
        [claim] => Some(claim.index),
        _ => {
            let (left, right) = claims.split_at(claims.len() / 2);
            first_invalid(left).or_else(|| first_invalid(right))
        }
    }
}

/// Whether every claim holds: exactly for one claim, with random weights for
/// several. Without randomness the check fails closed, and bisection then
/// checks each claim alone.
fn holds(claims: &[Claim]) -> bool {
    match claims {
        [] => true,
        [claim] => is_one_after_final_exp(&(claim.miller * signature_miller_loop(&claim.signature))),
        _ => {
            let Some(weights) = random_weights(claims.len()) else {
                return false;
            };
            let signatures: Vec<blst_p2_affine> = claims.iter().map(|claim| claim.signature).collect();
            let Some(signature_sum) = multi_scalar_mult(&signatures, &weights) else {
                return false;
            };
            let values = claims.iter().map(|claim| &claim.miller).zip(weights.iter().copied());
            is_one_after_final_exp(&(weighted_product(values) * signature_miller_loop(&signature_sum)))
        }
    }
}

/// Nonzero weights from the operating system's random source (a zero, one
/// chance in 2^64, becomes one: a zero weight would drop its claim).
fn random_weights(count: usize) -> Option<Vec<u64>> {
    let mut bytes = vec![0u8; count.checked_mul(WEIGHT_BITS / 8)?];
    getrandom::getrandom(&mut bytes).ok()?;
    Some(
        bytes
            .chunks_exact(WEIGHT_BITS / 8)
            .map(|w| <[u8; 8]>::try_from(w).map_or(1, u64::from_le_bytes).max(1))
            .collect(),
    )
}

/// `Π miller_j^(r_j)` by Straus's method with sliding windows: the 64
/// squarings are shared by all claims, and each claim costs 8 multiplications
/// for its odd powers up to 15 plus one per window of its weight (about 13):
/// some 21 in Fp12 (40 µs), where square-and-multiply would take 32 and a
/// Miller loop costs 240 µs.
fn weighted_product<'a>(values: impl ExactSizeIterator<Item = (&'a blst_fp12, u64)>) -> blst_fp12 {
    let (values, weights): (Vec<&blst_fp12>, Vec<u64>) = values.unzip();
    let powers: Vec<Vec<blst_fp12>> = values.into_iter().map(odd_powers).collect();
    // Every multiplication due, with the bit position it is due at.
    let mut due: Vec<(usize, &blst_fp12)> = Vec::with_capacity(powers.len() * 14);
    for (powers, weight) in powers.iter().zip(weights) {
        for (position, digit) in sliding_windows(weight) {
            if let Some(power) = powers.get(digit / 2) {
                due.push((position, power));
            }
        }
    }
    due.sort_unstable_by_key(|&(position, _)| Reverse(position));
    let mut due = due.into_iter().peekable();
    let mut product = blst_fp12::default();
    for position in (0..WEIGHT_BITS).rev() {
        product = product * product;
        while let Some((_, power)) = due.next_if(|(at, _)| *at == position) {
            product *= *power;
        }
    }
    product
}

/// Width of the sliding windows of `weighted_product`.
const WINDOW_BITS: usize = 4;

/// `value^1, value^3, …, value^15`: the powers a window's odd digit picks.
fn odd_powers(value: &blst_fp12) -> Vec<blst_fp12> {
    let count = 1 << (WINDOW_BITS - 1);
    let square = *value * *value;
    let mut powers = Vec::with_capacity(count);
    let mut power = *value;
    powers.push(power);
    while powers.len() < count {
        power *= square;
        powers.push(power);
    }
    powers
}

/// The weight as a sum of `digit · 2^position` with odd digits below
/// `2^WINDOW_BITS`, highest position first (left-to-right sliding windows).
fn sliding_windows(weight: u64) -> Vec<(usize, usize)> {
    let mut windows = Vec::new();
    // The bits at and above `top` are accounted for.
    let mut top = WEIGHT_BITS;
    while top > 0 {
        let high = top - 1;
        if weight >> high & 1 == 0 {
            top = high;
            continue;
        }
        let mut low = high.saturating_sub(WINDOW_BITS - 1);
        // Ends at `high` at the latest, whose bit is set.
        while weight >> low & 1 == 0 {
            low += 1;
        }
        let digit = (weight >> low) & ((1 << (high - low + 1)) - 1);
        windows.push((low, digit as usize));
        top = low;
    }
    windows
}

/// `Σ r_j P_j` (the weighted sum of signatures, say) by blst's multi-scalar
/// multiplication on this thread (its `MultiPoint` would hand the work to
/// blst's pool from inside ours).
fn multi_scalar_mult(points: &[blst_p2_affine], weights: &[u64]) -> Option<blst_p2_affine> {
    if points.is_empty() || points.len() != weights.len() {
        return None;
    }
    let scalars: Vec<u8> = weights.iter().flat_map(|weight| weight.to_le_bytes()).collect();
    // SAFETY: a pure function of the count.
    let scratch_bytes = unsafe { blst::blst_p2s_mult_pippenger_scratch_sizeof(points.len()) };
    let mut scratch: Vec<limb_t> = vec![0; scratch_bytes.div_ceil(size_of::<limb_t>())];
    // blst's convention for arrays of points and scalars: a null second
    // pointer means the first points to all of them, laid out contiguously.
    let point_arrays = [points.as_ptr(), ptr::null()];
    let scalar_arrays = [scalars.as_ptr(), ptr::null()];
    let mut sum = blst_p2::default();
    let mut affine = blst_p2_affine::default();
    // SAFETY: `points` holds `points.len()` points and `scalars` as many
    // 64-bit little-endian scalars (8 bytes each); `scratch` has the size
    // blst asked for; blst writes only `sum`, `scratch`, then `affine`.
    unsafe {
        blst::blst_p2s_mult_pippenger(
            &mut sum,
            point_arrays.as_ptr(),
            points.len(),
            scalar_arrays.as_ptr(),
            WEIGHT_BITS,
            scratch.as_mut_ptr(),
        );
        blst::blst_p2_to_affine(&mut affine, &sum);
    }
    Some(affine)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    // A payment from key `seed`: (public key, signing message, signature).
    use crate::testkit::signed_claim as payment;

    /// `count` payments, the ones at `bad` carrying a signature of the same
    /// key over another message or, every other time, of another key.
    fn payments(count: usize, bad: &[usize]) -> Vec<SignedMessage> {
        (0..count)
            .map(|i| {
                let (pk, msg, signature) = payment(i as u64 % 7, i as u64);
                if !bad.contains(&i) {
                    (pk, msg, signature)
                } else if i % 2 == 0 {
                    (pk, msg, payment(i as u64 % 7, i as u64 + 10_000).2)
                } else {
                    (pk, msg, payment(100, i as u64).2)
                }
            })
            .collect()
    }

    fn check_marks_exactly_the_bad(count: usize, bad: &[usize]) {
        let items = payments(count, bad);
        let expected: Vec<bool> = (0..count).map(|i| !bad.contains(&i)).collect();
        let alone = PairingCache::default();
        for (i, (pk, msg, signature)) in items.iter().enumerate() {
            assert_eq!(signature.verify(pk, msg), expected[i], "blst agrees on {i}");
            assert_eq!(alone.verify_and_cache(pk, msg, signature), expected[i], "verify_and_cache agrees on {i}");
        }
        assert_eq!(verify_batch(&items, None), expected, "no cache, bad at {bad:?}");
        let cache = PairingCache::default();
        assert_eq!(verify_batch(&items, Some(&cache)), expected, "with a cache, bad at {bad:?}");
        assert_eq!(cache.stats().entries, count - bad.len());
        for (i, (pk, msg, signature)) in items.iter().enumerate() {
            let before = cache.stats();
            assert_eq!(cache.aggregate_verify(&[(*pk, msg.as_slice())], signature), expected[i]);
            assert_eq!(cache.stats().hits - before.hits, u64::from(expected[i]), "only valid ones are cached");
        }
    }

    proptest! {
        // Each case costs a few dozen pairings.
        #![proptest_config(ProptestConfig::with_cases(12))]

        #[test]
        fn batches_mark_exactly_the_bad_signatures(
            is_bad in proptest::collection::vec(proptest::bool::weighted(0.25), 1..=20),
        ) {
            let bad: Vec<usize> = (0..is_bad.len()).filter(|&i| is_bad[i]).collect();
            check_marks_exactly_the_bad(is_bad.len(), &bad);
        }
    }

    #[test]
    fn batches_with_none_one_or_several_bad_signatures() {
        check_marks_exactly_the_bad(0, &[]);
        check_marks_exactly_the_bad(1, &[]);
        check_marks_exactly_the_bad(1, &[0]);
        check_marks_exactly_the_bad(9, &[]);
        check_marks_exactly_the_bad(9, &[0]);
        check_marks_exactly_the_bad(9, &[8]);
        check_marks_exactly_the_bad(9, &[1, 4, 5]);
        check_marks_exactly_the_bad(5, &[0, 1, 2, 3, 4]);
    }

    #[test]
    fn bad_signatures_in_several_batches_on_several_threads() {
        // 150 items: at least three batches of at most 64.
        check_marks_exactly_the_bad(150, &[0, 63, 64, 77, 149]);
    }

    /// Six blocks of one to four payments; the ones at `bad` lose a
    /// signature from their aggregate, the ones at `empty` have no pairs.
    fn blocks(bad: &[usize], empty: &[usize]) -> Vec<AggregateSignedMessages> {
        (0..6u64)
            .map(|b| {
                let txs: Vec<_> = (0..=b % 4).map(|n| payment((b + n) % 5, b * 10 + n)).collect();
                let mut signatures: Vec<Signature> = txs.iter().map(|t| t.2).collect();
                if bad.contains(&(b as usize)) {
                    signatures[0] = payment(99, b).2;
                }
                let mut pairs: Vec<(PublicKey, Vec<u8>)> = txs.into_iter().map(|(pk, msg, _)| (pk, msg)).collect();
                if empty.contains(&(b as usize)) {
                    pairs.clear();
                }
                (pairs, Signature::aggregate(&signatures).unwrap())
            })
            .collect()
    }

    #[test]
    fn a_batch_of_blocks_finds_the_first_bad_block() {
        assert_eq!(verify_blocks_batch(&[]), Ok(()));
        assert_eq!(verify_blocks_batch(&blocks(&[], &[])), Ok(()));
        for bad in 0..6 {
            assert_eq!(verify_blocks_batch(&blocks(&[bad], &[])), Err(bad));
        }
        assert_eq!(verify_blocks_batch(&blocks(&[1, 4], &[])), Err(1));
        assert_eq!(verify_blocks_batch(&blocks(&[4], &[2])), Err(2));
        assert_eq!(verify_blocks_batch(&blocks(&[1], &[3])), Err(1));
        assert_eq!(verify_blocks_batch(&blocks(&[], &[5])), Err(5));
        for (index, (pairs, signature)) in blocks(&[2], &[]).iter().enumerate() {
            assert_eq!(signature.aggregate_verify(pairs), index != 2, "blst agrees on block {index}");
        }
    }

    #[test]
    fn sliding_windows_add_up_to_the_weight() {
        let mut weights = vec![0, 1, 2, 15, 16, 17, 0b1000_0001, u64::MAX, 1 << 63, (1 << 63) | 1];
        weights.extend(random_weights(200).unwrap());
        for weight in weights {
            let windows = sliding_windows(weight);
            assert!(windows.iter().all(|&(_, digit)| digit % 2 == 1 && digit < 1 << WINDOW_BITS), "{weight:#x}");
            let bits = |digit: usize| usize::BITS as usize - digit.leading_zeros() as usize;
            assert!(windows.windows(2).all(|pair| pair[1].0 + bits(pair[1].1) <= pair[0].0), "{weight:#x}");
            assert_eq!(windows.iter().map(|&(position, digit)| (digit as u64) << position).sum::<u64>(), weight);
        }
    }

    #[test]
    fn the_weighted_product_is_the_product_of_powers() {
        let claims: Vec<Claim> = (0..5)
            .map(|n| {
                let (pk, msg, signature) = payment(n, n);
                let miller = blst_fp12::miller_loop(&message_point(&pk, &msg), &pk.point());
                Claim { index: n as usize, miller, signature: signature.point() }
            })
            .collect();
        let mut weights = random_weights(claims.len()).unwrap();
        weights[0] = u64::MAX;
        weights[1] = 1;
        let mut expected = blst_fp12::default();
        for (claim, weight) in claims.iter().zip(&weights) {
            // Square-and-multiply, one claim at a time.
            let mut power = blst_fp12::default();
            for bit in (0..64).rev() {
                power = power * power;
                if weight >> bit & 1 == 1 {
                    power *= claim.miller;
                }
            }
            expected *= power;
        }
        let values = claims.iter().map(|claim| &claim.miller).zip(weights.iter().copied());
        assert!(weighted_product(values) == expected);
    }

    #[test]
    fn weights_are_never_zero() {
        let weights = random_weights(1_000).unwrap();
        assert_eq!(weights.len(), 1_000);
        assert!(weights.iter().all(|&w| w != 0));
        assert!(weights.iter().any(|&w| w > u64::from(u32::MAX)), "the weights use all 64 bits");
    }
}
