//! A cache of Miller-loop values of transactions that passed admission, so
//! that checking the aggregate signature of a block made of already-seen
//! transactions costs one Miller loop and one final exponentiation instead of
//! a pairing per transaction.
//!
//! `AggregateVerify` accepts a block's signature σ over pairs (pk_i, m_i) when
//! `e(g1, σ) = Π e(pk_i, H_i)`, with `H_i` the hash to G2 of the augmented
//! message `pk_i ‖ m_i`. A pairing is a Miller loop `ML` followed by a final
//! exponentiation `FE`, and `FE` is a homomorphism of the multiplicative group
//! of Fp12, so the equation is
//!
//! ```text
//! FE( Π ML(pk_i, H_i) · ML(−g1, σ) ) = 1
//! ```
//!
//! The factors `ML(pk_i, H_i)` depend only on the transaction, not on the
//! block: they are computed when the transaction is admitted, kept here, and
//! multiplied in Fp12 when a block carrying it arrives. An entry is a function
//! of its key alone (no signature goes into it), so whatever the cache holds
//! it can never make a wrong signature pass; it can only be missing, and a
//! missing value is computed on the spot.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use blst::blst_fp12;
use sha2::{Digest, Sha256};

use super::bls::{PublicKey, Signature};
use super::fifo::FifoMap;
use super::pairing::{
    is_one_after_final_exp, message_point, miller_loop_products, miller_product_per_key, on_workers,
    signature_miller_loop, MillerJob,
};

/// Entries kept by default: twice the mempool's default transaction count.
/// Each holds a 576-byte Fp12 value and a 32-byte key; with the map's spare
/// buckets and the eviction queue, a full cache takes about 85 MB.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Pairs a worker takes at a time when looking values up: enough that small
/// blocks are looked up without starting a thread.
const LOOKUP_STRIDE: usize = 256;

/// How often block validation found a transaction's value in the cache.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CacheStats {
    /// Pairs of checked blocks whose Miller-loop value was cached.
    pub hits: u64,
    /// Pairs of checked blocks whose Miller loop had to be run.
    pub misses: u64,
    /// Values held now.
    pub entries: usize,
}

impl CacheStats {
    /// Hits over lookups, or `None` before any block was checked.
    pub fn hit_ratio(&self) -> Option<f64> {
        let lookups = self.hits.saturating_add(self.misses);
        // u64 to f64 loses precision only beyond 2^53 lookups.
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }
}

/// SHA-256 of the augmented message `pk ‖ msg`, which encodes both
/// unambiguously since compressed keys have a fixed length.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct EntryKey([u8; 32]);

impl EntryKey {
    fn of(public_key: &PublicKey, msg: &[u8]) -> EntryKey {
        let mut hasher = Sha256::new();
        hasher.update(public_key.to_bytes().0);
        hasher.update(msg);
        EntryKey(hasher.finalize().into())
    }
}

/// Miller-loop values `ML(pk, H(pk ‖ msg))` of admitted transactions, bounded
/// in count, oldest evicted first.
///
/// First in, first out rather than least recently used: a lookup then only
/// reads, so block validation on several threads never waits on itself, and
/// admission order is what matters anyway: with the capacity above the
/// mempool's bound, every pending transaction keeps its value.
pub struct PairingCache {
    entries: FifoMap<EntryKey, blst_fp12>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for PairingCache {
    fn default() -> PairingCache {
        PairingCache::new(DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for PairingCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairingCache").field("capacity", &self.capacity()).field("stats", &self.stats()).finish()
    }
}

impl PairingCache {
    /// An empty cache that keeps at most `capacity` values.
    pub fn new(capacity: usize) -> PairingCache {
        PairingCache { entries: FifoMap::new(capacity), hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }

    pub fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.entries.len(),
        }
    }

    /// Computes and keeps the Miller-loop value of a transaction whose
    /// signature was verified elsewhere (one hash to G2 and one Miller loop).
    pub fn insert_verified(&self, public_key: &PublicKey, msg: &[u8]) {
        if self.capacity() == 0 {
            return;
        }
        let value = blst_fp12::miller_loop(&message_point(public_key, msg), &public_key.point());
        self.insert_values([(EntryKey::of(public_key, msg), value)]);
    }

    /// Verifies one signature exactly as `Signature::verify` does and, when
    /// it holds, keeps the Miller loop the check computed: admission costs a
    /// single pairing check, not a check and then a cache fill.
    pub fn verify_and_cache(&self, public_key: &PublicKey, msg: &[u8], signature: &Signature) -> bool {
        let value = blst_fp12::miller_loop(&message_point(public_key, msg), &public_key.point());
        if !is_one_after_final_exp(&(value * signature_miller_loop(&signature.point()))) {
            return false;
        }
        self.insert_values([(EntryKey::of(public_key, msg), value)]);
        true
    }

    /// `AggregateVerify` of `signature` over the pairs, accepting and
    /// rejecting exactly what `Signature::aggregate_verify` does: cached
    /// values are multiplied, Miller loops run (on every core) only for the
    /// pairs not cached, one per sender on the sum of its messages' points
    /// (`batch::merged`), then one Miller loop of the signature against the
    /// negated generator and one final exponentiation. Values of missed pairs
    /// are not added: a block's transactions leave the mempool with it.
    pub fn aggregate_verify<M: AsRef<[u8]> + Sync>(&self, pairs: &[(PublicKey, M)], signature: &Signature) -> bool {
        if pairs.is_empty() {
            return false;
        }
        let looked_up = on_workers(pairs, LOOKUP_STRIDE, |claimed| {
            self.entries.with_values(|cached| {
                let mut product = blst_fp12::default();
                let mut missed = Vec::new();
                for (_, (public_key, msg)) in claimed {
                    match cached(&EntryKey::of(public_key, msg.as_ref())) {
                        Some(value) => product *= value,
                        None => missed.push(MillerJob { public_key, msg: msg.as_ref(), group: 0 }),
                    }
                }
                (product, missed)
            })
        });
        let Some(looked_up) = looked_up else {
            return false;
        };
        let mut product = blst_fp12::default();
        let mut missed = Vec::new();
        for (partial, partial_missed) in looked_up {
            product *= partial;
            missed.extend(partial_missed);
        }
        let misses = missed.len();
        self.misses.fetch_add(misses as u64, Ordering::Relaxed);
        self.hits.fetch_add(pairs.len().saturating_sub(misses) as u64, Ordering::Relaxed);
        if !missed.is_empty() {
            // A sender's missed payments share one Miller loop; should that
            // fail (a worker, or a sum that is the identity), one loop each.
            match miller_product_per_key(&missed) {
                Some(value) => product *= value,
                None => {
                    let Some(products) = miller_loop_products(&missed, 1) else {
                        return false;
                    };
                    for value in products {
                        product *= value;
                    }
                }
            }
        }
        product *= signature_miller_loop(&signature.point());
        is_one_after_final_exp(&product)
    }

    /// Keeps the values of pairs whose signatures were verified.
    pub(super) fn insert_miller_loops<'a>(
        &self,
        values: impl IntoIterator<Item = (&'a PublicKey, &'a [u8], blst_fp12)>,
    ) {
        self.insert_values(values.into_iter().map(|(public_key, msg, value)| (EntryKey::of(public_key, msg), value)));
    }

    fn insert_values(&self, values: impl IntoIterator<Item = (EntryKey, blst_fp12)>) {
        self.entries.insert_all(values);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    // A payment from key `seed`: (public key, signing message, signature).
    use crate::testkit::signed_claim as payment;
    use crate::types::{PublicKeyBytes, SignatureBytes};

    fn aggregate(signatures: &[Signature]) -> Signature {
        Signature::aggregate(signatures).unwrap()
    }

    type Pairs = Vec<(PublicKey, Vec<u8>)>;

    #[derive(Clone, Copy, Debug)]
    enum Tamper {
        Nothing,
        WrongSignature,
        MissingSignature,
        ExtraSignature,
        SwappedMessages,
        DuplicatedPair,
    }

    #[derive(Clone, Copy, Debug)]
    enum Fill {
        Empty,
        Partly,
        Full,
    }

    /// A block's pairs and aggregate signature, tampered with as told; and
    /// whether blst must accept it (`None` when that depends on the keys).
    fn block(seeds: &[u64], tamper: Tamper, which: usize) -> (Pairs, Signature, Option<bool>) {
        let txs: Vec<_> = seeds.iter().enumerate().map(|(nonce, &seed)| payment(seed, nonce as u64)).collect();
        let mut pairs: Vec<(PublicKey, Vec<u8>)> = txs.iter().map(|(pk, msg, _)| (*pk, msg.clone())).collect();
        let mut signatures: Vec<Signature> = txs.iter().map(|(_, _, sig)| *sig).collect();
        let which = which % txs.len();
        let next = (which + 1) % txs.len();
        let unrelated = payment(u64::MAX - 1, 999).2;
        let expected = match tamper {
            Tamper::Nothing => Some(true),
            Tamper::WrongSignature => {
                signatures[which] = payment(seeds[which], 1_000).2;
                Some(false)
            }
            Tamper::MissingSignature if signatures.len() == 1 => {
                signatures[0] = unrelated;
                Some(false)
            }
            Tamper::MissingSignature => {
                signatures.remove(which);
                Some(false)
            }
            Tamper::ExtraSignature => {
                signatures.push(unrelated);
                Some(false)
            }
            Tamper::SwappedMessages if pairs.len() == 1 => {
                pairs[0].1 = payment(seeds[0], 1_001).1;
                Some(false)
            }
            Tamper::SwappedMessages => {
                let moved = pairs[which].1.clone();
                pairs[which].1 = pairs[next].1.clone();
                pairs[next].1 = moved;
                None
            }
            Tamper::DuplicatedPair => {
                pairs.push(pairs[which].clone());
                signatures.push(signatures[which]);
                Some(true)
            }
        };
        (pairs, aggregate(&signatures), expected)
    }

    fn tamper() -> impl Strategy<Value = Tamper> {
        prop_oneof![
            Just(Tamper::Nothing),
            Just(Tamper::WrongSignature),
            Just(Tamper::MissingSignature),
            Just(Tamper::ExtraSignature),
            Just(Tamper::SwappedMessages),
            Just(Tamper::DuplicatedPair),
        ]
    }

    fn fill() -> impl Strategy<Value = Fill> {
        prop_oneof![Just(Fill::Empty), Just(Fill::Partly), Just(Fill::Full)]
    }

    proptest! {
        // Each case costs a few dozen pairings.
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn accepts_and_rejects_exactly_what_aggregate_verify_does(
            // Senders from a small set half the time: their missed payments share a Miller loop.
            seeds in proptest::collection::vec(prop_oneof![0u64..3, 0u64..1_000], 1..=12),
            tamper in tamper(),
            fill in fill(),
            which in any::<usize>(),
            mask in any::<u64>(),
        ) {
            let (pairs, signature, expected) = block(&seeds, tamper, which);
            let cache = PairingCache::new(64);
            let mut cached = 0;
            for (i, (pk, msg)) in pairs.iter().enumerate() {
                let insert = match fill {
                    Fill::Empty => false,
                    Fill::Partly => mask >> (i % 64) & 1 == 1,
                    Fill::Full => true,
                };
                if insert {
                    cache.insert_verified(pk, msg);
                    cached += 1;
                }
            }
            let blst = signature.aggregate_verify(&pairs);
            if let Some(expected) = expected {
                prop_assert_eq!(blst, expected);
            }
            prop_assert_eq!(cache.aggregate_verify(&pairs, &signature), blst);
            let stats = cache.stats();
            prop_assert_eq!(stats.hits + stats.misses, pairs.len() as u64);
            if cached == 0 {
                prop_assert_eq!(stats.hits, 0);
            }
            if matches!(fill, Fill::Full) {
                prop_assert_eq!(stats.misses, 0);
            }
        }
    }

    #[test]
    fn a_senders_missed_payments_are_paired_once_and_checked_exactly() {
        // Sender 1 pays five times, sender 2 once; nothing is cached.
        let seeds = [1, 1, 2, 1, 1, 1];
        for tamper in [Tamper::Nothing, Tamper::WrongSignature, Tamper::SwappedMessages] {
            for which in 0..seeds.len() {
                let (pairs, signature, expected) = block(&seeds, tamper, which);
                let cache = PairingCache::default();
                let blst = signature.aggregate_verify(&pairs);
                assert_eq!(cache.aggregate_verify(&pairs, &signature), blst, "{tamper:?} at {which}");
                assert!(expected.is_none_or(|expected| expected == blst), "{tamper:?} at {which}");
            }
        }
    }

    #[test]
    fn an_empty_block_never_verifies() {
        let cache = PairingCache::default();
        let (pk, msg, signature) = payment(1, 0);
        cache.insert_verified(&pk, &msg);
        assert!(!cache.aggregate_verify::<Vec<u8>>(&[], &signature));
        assert_eq!(cache.stats().hits + cache.stats().misses, 0);
    }

    #[test]
    fn verify_and_cache_keeps_only_what_verifies() {
        let cache = PairingCache::default();
        let (pk, msg, signature) = payment(1, 0);
        let (other_pk, other_msg, other_signature) = payment(2, 0);
        assert!(!cache.verify_and_cache(&pk, &msg, &other_signature));
        assert!(!cache.verify_and_cache(&pk, &other_msg, &signature));
        assert_eq!(cache.stats().entries, 0);
        assert!(cache.verify_and_cache(&pk, &msg, &signature));
        assert!(cache.verify_and_cache(&other_pk, &other_msg, &other_signature));
        assert!(cache.verify_and_cache(&pk, &msg, &signature), "verifying again is harmless");
        assert_eq!(cache.stats().entries, 2);

        let pairs = [(pk, msg), (other_pk, other_msg)];
        assert!(cache.aggregate_verify(&pairs, &aggregate(&[signature, other_signature])));
        assert_eq!(cache.stats(), CacheStats { hits: 2, misses: 0, entries: 2 });
        assert_eq!(cache.stats().hit_ratio(), Some(1.0));
    }

    #[test]
    fn the_size_stays_bounded_and_the_oldest_go_first() {
        let cache = PairingCache::new(3);
        let txs: Vec<_> = (0..5).map(|seed| payment(seed, 0)).collect();
        for (pk, msg, _) in &txs {
            cache.insert_verified(pk, msg);
            assert!(cache.stats().entries <= 3);
        }
        assert_eq!(cache.stats().entries, 3);
        for (i, (pk, msg, signature)) in txs.iter().enumerate() {
            let before = cache.stats();
            assert!(cache.aggregate_verify(&[(*pk, msg.as_slice())], signature));
            let after = cache.stats();
            assert_eq!(after.hits - before.hits, u64::from(i >= 2), "entry {i}");
        }
        assert_eq!(cache.stats().hit_ratio(), Some(3.0 / 5.0));

        let nothing_kept = PairingCache::new(0);
        nothing_kept.insert_verified(&txs[0].0, &txs[0].1);
        assert_eq!(nothing_kept.stats().entries, 0);
        assert!(nothing_kept.aggregate_verify(&[(txs[0].0, txs[0].1.as_slice())], &txs[0].2));
    }

    #[test]
    fn a_block_larger_than_one_lookup_stride_is_checked_on_every_core() {
        let txs: Vec<_> = (0..(LOOKUP_STRIDE as u64 + 40)).map(|n| payment(n % 17, n)).collect();
        let pairs: Vec<(PublicKey, Vec<u8>)> = txs.iter().map(|(pk, msg, _)| (*pk, msg.clone())).collect();
        let signature = aggregate(&txs.iter().map(|t| t.2).collect::<Vec<_>>());
        let cache = PairingCache::default();
        for (pk, msg) in pairs.iter().step_by(3) {
            cache.insert_verified(pk, msg);
        }
        assert!(cache.aggregate_verify(&pairs, &signature));
        let stats = cache.stats();
        assert_eq!(
            (stats.hits, stats.misses),
            (pairs.len().div_ceil(3) as u64, (pairs.len() - pairs.len().div_ceil(3)) as u64)
        );
        let mut without_last = pairs.clone();
        without_last.pop();
        assert!(!cache.aggregate_verify(&without_last, &signature));
    }

    #[derive(serde::Deserialize)]
    struct Vectors {
        cases: Vec<Case>,
        aggregate: Aggregate,
    }
    #[derive(serde::Deserialize)]
    struct Case {
        pk_hex: String,
        msg_hex: String,
    }
    #[derive(serde::Deserialize)]
    struct Aggregate {
        of_cases: Vec<usize>,
        sig_hex: String,
        valid: bool,
    }

    #[test]
    fn known_answer_aggregate_from_an_independent_implementation() {
        let v: Vectors = serde_json::from_str(include_str!("../../tests/vectors/bls-aug.json")).unwrap();
        let pairs: Vec<(PublicKey, Vec<u8>)> = v
            .aggregate
            .of_cases
            .iter()
            .map(|&i| {
                let pk = PublicKeyBytes(hex::decode(&v.cases[i].pk_hex).unwrap().try_into().unwrap());
                (PublicKey::from_bytes(&pk).unwrap(), hex::decode(&v.cases[i].msg_hex).unwrap())
            })
            .collect();
        let sig = SignatureBytes(hex::decode(&v.aggregate.sig_hex).unwrap().try_into().unwrap());
        let signature = Signature::from_bytes(&sig).unwrap();
        for cached in 0..=pairs.len() {
            let cache = PairingCache::default();
            for (pk, msg) in &pairs[..cached] {
                cache.insert_verified(pk, msg);
            }
            assert_eq!(cache.aggregate_verify(&pairs, &signature), v.aggregate.valid, "{cached} cached");
        }
    }
}
