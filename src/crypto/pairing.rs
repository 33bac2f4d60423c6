//! The pairing arithmetic shared by the pairing cache and batch
//! verification: messages hashed to G2, Miller loops on every core, the
//! final check, and the fold of a sender's messages into one Miller loop.
//!
//! After the final exponentiation the pairing is bilinear, so
//! `Π_i e(pk, H_i) = e(pk, Σ_i H_i)`: the messages of one key can be hashed,
//! summed and paired once. Miller-loop values computed that way differ from
//! the product of the separate loops, but only by a factor the final
//! exponentiation removes, so every product here is only ever compared to
//! one after it.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;

use blst::{blst_fp12, blst_p1, blst_p1_affine, blst_p2, blst_p2_affine, Pairing, BLST_ERROR};

use super::bls::{PublicKey, DST};
use crate::types::PublicKeyBytes;

/// Pairs a worker takes at a time for Miller loops: blst's `Pairing` runs
/// them eight at a time, sharing their squarings.
const MILLER_STRIDE: usize = 8;

/// Messages a worker hashes at a time.
const HASH_STRIDE: usize = 16;

/// Pairs a worker takes at a time for `miller_loop_n`, which shares the
/// squarings of up to 16 loops.
const MILLER_N: usize = 16;

/// One message to fold: its sender (numbered), the block it is in, and the message.
struct Message<'a> {
    key: usize,
    block: usize,
    public_key: &'a PublicKey,
    msg: &'a [u8],
}

/// What is paired with one key: the sum of its messages' points in each
/// block it signs in.
pub(super) struct KeyTerms<'a> {
    pub public_key: &'a PublicKey,
    pub per_block: Vec<(usize, blst_p2)>,
}

/// `H(pk ‖ msg)`: the augmented message hashed to G2 under the ciphersuite's DST.
pub(super) fn message_point(public_key: &PublicKey, msg: &[u8]) -> blst_p2_affine {
    let point = message_point_projective(public_key, msg);
    let mut affine = blst_p2_affine::default();
    // SAFETY: blst reads the local point and writes the local affine one.
    unsafe { blst::blst_p2_to_affine(&mut affine, &point) };
    affine
}

/// The same point in projective coordinates, ready to be added to others.
pub(super) fn message_point_projective(public_key: &PublicKey, msg: &[u8]) -> blst_p2 {
    let augmentation = public_key.to_bytes().0;
    let mut point = blst_p2::default();
    // SAFETY: each pointer comes from a live slice passed with its own length
    // or from a local blst value; blst only reads the inputs and writes the
    // output, a fully initialised value of the type it expects.
    unsafe {
        blst::blst_hash_to_g2(
            &mut point,
            msg.as_ptr(),
            msg.len(),
            DST.as_ptr(),
            DST.len(),
            augmentation.as_ptr(),
            augmentation.len(),
        );
    }
    point
}

/// `ML(−g1, σ)`: the signature's side of the pairing equation.
pub(super) fn signature_miller_loop(signature: &blst_p2_affine) -> blst_fp12 {
    blst_fp12::miller_loop(signature, negated_generator())
}

/// Whether the final exponentiation of `value` is the identity of GT.
pub(super) fn is_one_after_final_exp(value: &blst_fp12) -> bool {
    // `blst_fp12::default()` is one; the comparison is `blst_fp12_is_equal`.
    value.final_exp() == blst_fp12::default()
}

fn negated_generator() -> &'static blst_p1_affine {
    static NEGATED: OnceLock<blst_p1_affine> = OnceLock::new();
    NEGATED.get_or_init(|| {
        let mut affine = blst_p1_affine::default();
        // SAFETY: `blst_p1_generator` points to a static constant, copied
        // here; the other calls read and write the two locals only.
        unsafe {
            let mut point: blst_p1 = *blst::blst_p1_generator();
            blst::blst_p1_cneg(&mut point, true);
            blst::blst_p1_to_affine(&mut affine, &point);
        }
        affine
    })
}

/// A (public key, message) pair whose Miller loop goes into the product of `group`.
pub(super) struct MillerJob<'a> {
    pub public_key: &'a PublicKey,
    pub msg: &'a [u8],
    pub group: usize,
}

/// For each group in `0..groups`, the product of `ML(pk, H(pk ‖ msg))` over
/// its jobs (one for a group without jobs), computed through `blst::Pairing`
/// on every core. `None` if a key cannot be used, which validated keys never
/// cause, or if a worker failed.
pub(super) fn miller_loop_products(jobs: &[MillerJob<'_>], groups: usize) -> Option<Vec<blst_fp12>> {
    let partials = on_workers(jobs, MILLER_STRIDE, |claimed| {
        let mut pairing = Pairing::new(true, DST);
        let mut open_group = None;
        let mut partials = Vec::new();
        for (_, job) in claimed {
            if open_group != Some(job.group) {
                if let Some(group) = open_group {
                    partials.push((group, pairing.as_fp12()));
                    pairing.init(true, DST);
                }
                open_group = Some(job.group);
            }
            let point = job.public_key.point();
            // Hashes `pk ‖ msg` (the key goes in as blst's augmentation) and
            // queues the pair; no signature is attached here.
            let added = pairing.aggregate(&point, false, &(), false, job.msg, &job.public_key.to_bytes().0);
            if added != BLST_ERROR::BLST_SUCCESS {
                return None;
            }
        }
        if let Some(group) = open_group {
            partials.push((group, pairing.as_fp12()));
        }
        Some(partials)
    })?;
    let mut products = vec![blst_fp12::default(); groups];
    for (group, partial) in partials.into_iter().collect::<Option<Vec<_>>>()?.into_iter().flatten() {
        *products.get_mut(group)? *= partial;
    }
    Some(products)
}

/// Runs `work` on up to one thread per core (the calling thread being one),
/// each worker claiming `stride` consecutive items at a time until none is
/// left and seeing them with their indices; returns what each worker
/// returned, or `None` if a helper thread panicked (a panic on the calling
/// thread goes on unwinding).
pub(super) fn on_workers<'a, T, R, W>(items: &'a [T], stride: usize, work: W) -> Option<Vec<R>>
where
    T: Sync,
    R: Send,
    W: Fn(&mut dyn Iterator<Item = (usize, &'a T)>) -> R + Sync,
{
    let stride = stride.max(1);
    let workers = available_cores().min(items.len().div_ceil(stride)).max(1);
    let next = AtomicUsize::new(0);
    let claim = || {
        std::iter::from_fn(|| {
            let start = next.fetch_add(stride, Ordering::Relaxed);
            let end = start.saturating_add(stride).min(items.len());
            items.get(start..end).filter(|chunk| !chunk.is_empty()).map(|chunk| (start, chunk))
        })
        .flat_map(|(start, chunk)| chunk.iter().enumerate().map(move |(offset, item)| (start + offset, item)))
    };
    thread::scope(|scope| {
        let helpers: Vec<_> = (1..workers).map(|_| scope.spawn(|| work(&mut claim()))).collect();
        let mut results = vec![work(&mut claim())];
        let mut all_finished = true;
        for helper in helpers {
            match helper.join() {
                Ok(result) => results.push(result),
                Err(_) => all_finished = false,
            }
        }
        all_finished.then_some(results)
    })
}

pub(super) fn available_cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| thread::available_parallelism().map_or(1, NonZeroUsize::get))
}

/// `Π ML(pk, H(pk ‖ msg))` over the jobs (whatever their groups), up to a
/// factor the final exponentiation removes: each key's messages are hashed,
/// summed, and paired once, so a block's payments not in the pairing cache
/// cost one Miller loop per sender. `None` if a worker failed or a sum is
/// the identity; the caller then computes the plain product.
pub(super) fn miller_product_per_key(jobs: &[MillerJob<'_>]) -> Option<blst_fp12> {
    let keys = hashed_per_key_and_block(jobs.iter().map(|job| (0, job.public_key, job.msg)))?;
    let sums: Vec<(&PublicKey, blst_p2)> =
        keys.iter().flat_map(|terms| terms.per_block.iter().map(move |(_, sum)| (terms.public_key, *sum))).collect();
    let partials = on_workers(&sums, MILLER_N, |claimed| {
        let mut product = blst_fp12::default();
        let claimed: Vec<_> = claimed.map(|(_, pair)| pair).collect();
        for chunk in claimed.chunks(MILLER_N) {
            let points: Vec<blst_p2> = chunk.iter().map(|(_, sum)| *sum).collect();
            let keys = chunk.iter().map(|(public_key, _)| public_key.point());
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
/// sum is the identity (which no honest input produces; callers then fall
/// back to one Miller loop per pair).
pub(super) fn hashed_per_key_and_block<'a>(
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
pub(super) fn to_affine(points: &[blst_p2]) -> Option<Vec<blst_p2_affine>> {
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
pub(super) fn miller_loop_n(pairs: &[(blst_p2_affine, blst_p1_affine)]) -> blst_fp12 {
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
    use super::*;
    use crate::crypto::SecretKey;
    use crate::testkit::signed_claim as payment;

    #[test]
    fn the_negated_generator_is_minus_the_public_key_of_one() {
        let mut one = [0u8; 32];
        one[31] = 1;
        let generator = SecretKey::from_bytes(&one).unwrap().public_key().point();
        assert_eq!(generator.x, negated_generator().x);
        assert_ne!(generator.y, negated_generator().y);
        // e(g1, H) · e(−g1, H) = 1.
        let h = message_point(&payment(1, 0).0, b"m");
        let product = blst_fp12::miller_loop(&h, &generator) * blst_fp12::miller_loop(&h, negated_generator());
        assert!(is_one_after_final_exp(&product));
    }

    #[test]
    fn a_senders_messages_paired_once_equal_one_loop_each_after_the_final_exponentiation() {
        // Key 1 signs four messages, key 2 one.
        let pairs: Vec<(PublicKey, Vec<u8>)> = [1, 1, 2, 1, 1]
            .iter()
            .enumerate()
            .map(|(n, &key)| payment(key, n as u64))
            .map(|(pk, msg, _)| (pk, msg))
            .collect();
        let jobs: Vec<MillerJob<'_>> =
            pairs.iter().map(|(public_key, msg)| MillerJob { public_key, msg, group: 0 }).collect();
        let merged = miller_product_per_key(&jobs).unwrap();
        let plain = miller_loop_products(&jobs, 1).unwrap()[0];
        assert!(merged != plain, "the Miller-loop values differ");
        assert!(merged.final_exp() == plain.final_exp());
        let other = miller_product_per_key(&jobs[1..]).unwrap();
        assert!(other.final_exp() != plain.final_exp(), "a missing message changes the result");
    }
}
