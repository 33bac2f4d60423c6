//! Benchmarks of BLS signature checks: the aggregate signature of a
//! 5,000-payment block (blst's `AggregateVerify`, the pairing cache empty, the
//! cache full), admission (batched over all cores while filling the
//! cache, against one `Signature::verify` after another), and a sync
//! batch's check with repeated and with distinct senders.
//!
//! The performance targets are ratios between these figures. Criterion
//! measures each benchmark for seconds on end, and on a shared machine the
//! load changes from one to the next; so after criterion, the ratios are also
//! measured in interleaved rounds (every contestant once per round, the
//! median ratio over the rounds). `BLS_BENCH_ROUNDS=0` skips them.

use std::sync::OnceLock;
use std::time::Duration;

use blst::{blst_p1_affine, blst_p2_affine, min_pk, Pairing, BLST_ERROR};
use criterion::{criterion_group, BatchSize, Criterion, SamplingMode, Throughput};
use ourcoin::crypto::batch::{verify_batch, verify_blocks_batch, AggregateSignedMessages, SignedMessage};
use ourcoin::crypto::bls::DST;
use ourcoin::crypto::pairing_cache::PairingCache;
use ourcoin::crypto::{PublicKey, Signature};
use ourcoin::testkit::{regtest, TestKey};
use ourcoin::types::Address;

mod common;
use common::{median, seconds};

const BLOCK_PAYMENTS: usize = 5_000;
const SENDERS: u64 = 500;
/// Payments admitted per iteration: eight batches of 64.
const ADMITTED: usize = 512;
const DEFAULT_ROUNDS: usize = 11;

/// `BLOCK_PAYMENTS` payments from `SENDERS` keys, nonces in turn, built once:
/// (sender key, signing message, signature).
fn payments() -> &'static [SignedMessage] {
    static PAYMENTS: OnceLock<Vec<SignedMessage>> = OnceLock::new();
    PAYMENTS.get_or_init(|| {
        let keys: Vec<(TestKey, PublicKey)> = (0..SENDERS)
            .map(|seed| {
                let key = TestKey::new(seed);
                let public_key = PublicKey::from_bytes(&key.public).expect("a valid key");
                (key, public_key)
            })
            .collect();
        let to = Address([0x42; 20]);
        keys.iter()
            .cycle()
            .zip(0u64..)
            .take(BLOCK_PAYMENTS)
            .map(|((key, public_key), n)| {
                let stx = key.pay(regtest().chain_id, to, 1_000, 10, n / SENDERS);
                let signature = Signature::from_bytes(&stx.signature).expect("a valid signature");
                (*public_key, stx.tx.signing_message().to_vec(), signature)
            })
            .collect()
    })
}

/// A block of all the payments, with a cache holding all of their values
/// and one holding none (missed values are not added, so it stays empty).
struct Block {
    pairs: Vec<(PublicKey, Vec<u8>)>,
    signature: Signature,
    full: PairingCache,
    empty: PairingCache,
}

impl Block {
    fn new() -> Block {
        let payments = payments();
        let signatures: Vec<Signature> = payments.iter().map(|(_, _, signature)| *signature).collect();
        let full = PairingCache::new(BLOCK_PAYMENTS);
        assert!(verify_batch(payments, Some(&full)).iter().all(|&valid| valid));
        Block {
            pairs: payments.iter().map(|(pk, msg, _)| (*pk, msg.clone())).collect(),
            signature: Signature::aggregate(&signatures).expect("signatures to aggregate"),
            full,
            empty: PairingCache::default(),
        }
    }

    fn blst(&self) {
        assert!(self.signature.aggregate_verify(&self.pairs));
    }

    fn uncached(&self) {
        assert!(self.empty.aggregate_verify(&self.pairs, &self.signature));
    }

    fn cached(&self) {
        assert!(self.full.aggregate_verify(&self.pairs, &self.signature));
    }
}

/// The admitted payments as blst points and bytes, for `verify_on_one_core`.
type BlstPayment = ([u8; 48], blst_p1_affine, Vec<u8>, blst_p2_affine);

fn blst_payments(payments: &[SignedMessage]) -> Vec<BlstPayment> {
    payments
        .iter()
        .map(|(pk, msg, signature)| {
            let pk_bytes = pk.to_bytes().0;
            let pk_point = blst_p1_affine::from(min_pk::PublicKey::uncompress(&pk_bytes).expect("a valid key"));
            let signature_point = blst_p2_affine::from(
                min_pk::Signature::uncompress(&signature.to_bytes().0).expect("a valid signature"),
            );
            (pk_bytes, pk_point, msg.clone(), signature_point)
        })
        .collect()
}

/// `Signature::verify` one after another: blst runs part of each check on
/// its thread pool.
fn verify_one_by_one(payments: &[SignedMessage]) {
    assert!(payments.iter().all(|(pk, msg, signature)| signature.verify(pk, msg)));
}

/// The same checks without blst's thread pool, on one core.
fn verify_on_one_core(payments: &[BlstPayment]) {
    assert!(payments.iter().all(|(pk_bytes, pk, msg, signature)| {
        let mut pairing = Pairing::new(true, DST);
        let added = pairing.aggregate(pk, false, signature, false, msg, pk_bytes);
        pairing.commit();
        added == BLST_ERROR::BLST_SUCCESS && pairing.finalverify(None)
    }));
}

/// Admission: batches on all cores, filling `cache`.
fn admit(payments: &[SignedMessage], cache: &PairingCache) {
    assert!(verify_batch(payments, Some(cache)).iter().all(|&valid| valid));
}

fn block_signature(c: &mut Criterion) {
    let block = Block::new();
    let mut group = c.benchmark_group("block_5000tx_signature");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(BLOCK_PAYMENTS as u64));
    group.bench_function("blst_aggregate_verify", |b| b.iter(|| block.blst()));
    group.bench_function("cache_empty", |b| b.iter(|| block.uncached()));
    group.bench_function("cache_full", |b| b.iter(|| block.cached()));
    group.finish();
    assert_eq!(block.empty.stats().hits, 0);
    assert_eq!(block.full.stats().misses, 0);
}

fn admission(c: &mut Criterion) {
    let payments = payments().get(..ADMITTED).expect("enough payments");
    let points = blst_payments(payments);
    let mut group = c.benchmark_group("admission_512tx");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(ADMITTED as u64));
    group.bench_function("signature_verify_one_by_one", |b| b.iter(|| verify_one_by_one(payments)));
    group.bench_function("signature_verify_one_by_one_one_core", |b| b.iter(|| verify_on_one_core(&points)));
    group.bench_function("verify_and_cache_one_by_one", |b| {
        b.iter_batched(
            PairingCache::default,
            |cache| {
                assert!(payments.iter().all(|(pk, msg, signature)| cache.verify_and_cache(pk, msg, signature)));
                cache
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("verify_batch_filling_cache", |b| {
        b.iter_batched(
            PairingCache::default,
            |cache| {
                admit(payments, &cache);
                cache
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("verify_batch_no_cache", |b| {
        b.iter(|| assert!(verify_batch(payments, None).iter().all(|&valid| valid)))
    });
    // One bad signature in the first batch: the cost of bisection.
    let mut one_bad = payments.to_vec();
    one_bad[17].2 = payments[18].2;
    group.bench_function("verify_batch_filling_cache_one_bad", |b| {
        b.iter_batched(
            PairingCache::default,
            |cache| {
                assert_eq!(verify_batch(&one_bad, Some(&cache)).iter().filter(|&&valid| !valid).count(), 1);
                cache
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// The targets' ratios, from interleaved rounds: the median over rounds of the
/// ratio within a round, and the ratio of the fastest rounds (the least
/// disturbed by other processes).
fn interleaved_ratios(rounds: usize) {
    let block = Block::new();
    let payments = payments().get(..ADMITTED).expect("enough payments");
    let points = blst_payments(payments);
    // Per round: blst, uncached, cached, one by one, one core, batch.
    let mut times: Vec<[f64; 6]> = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let cache = PairingCache::default();
        times.push([
            seconds(|| block.blst()),
            seconds(|| block.uncached()),
            seconds(|| block.cached()),
            seconds(|| verify_one_by_one(payments)),
            seconds(|| verify_on_one_core(&points)),
            seconds(|| admit(payments, &cache)),
        ]);
    }
    let fastest: Vec<f64> = (0..6).map(|i| times.iter().map(|t| t[i]).fold(f64::INFINITY, f64::min)).collect();
    let ratio = |a: usize, b: usize| (median(times.iter().map(|t| t[a] / t[b]).collect()), fastest[a] / fastest[b]);
    println!(
        "\nratios over {rounds} interleaved rounds: median of the rounds' ratios, ratio of the fastest rounds [target]"
    );
    for (name, (a, b), target) in [
        ("block_5000tx: cache_empty / blst_aggregate_verify", (1, 0), "<= 1.15"),
        ("block_5000tx: cache_empty / cache_full", (1, 2), ">= 50"),
        ("admission_512tx: one_by_one / verify_batch_filling_cache", (3, 5), ">= 2.5"),
        ("admission_512tx: one_by_one_one_core / verify_batch_filling_cache", (4, 5), ">= 2.5"),
    ] {
        let (median, fastest) = ratio(a, b);
        println!("  {name:<68} {median:8.3} {fastest:8.3}  [{target}]");
    }
    println!("load average after: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
}

/// Blocks in one sync batch, and payments in each (as in the sync fixture).
const SYNC_BLOCKS: u64 = 64;
const SYNC_BLOCK_PAYMENTS: u64 = 10;

/// A sync batch: `SYNC_BLOCKS` blocks of `SYNC_BLOCK_PAYMENTS` payments,
/// payment `i` of block `b` signed by key `sender(b, i)`.
fn sync_batch(sender: impl Fn(u64, u64) -> u64) -> Vec<AggregateSignedMessages> {
    let to = Address([0x42; 20]);
    (0..SYNC_BLOCKS)
        .map(|b| {
            let payments: Vec<SignedMessage> = (0..SYNC_BLOCK_PAYMENTS)
                .map(|i| {
                    let key = TestKey::new(10_000 + sender(b, i));
                    let stx = key.pay(regtest().chain_id, to, 1_000, 10, b);
                    let public_key = PublicKey::from_bytes(&key.public).expect("a valid key");
                    let signature = Signature::from_bytes(&stx.signature).expect("a valid signature");
                    (public_key, stx.tx.signing_message().to_vec(), signature)
                })
                .collect();
            let signatures: Vec<Signature> = payments.iter().map(|(_, _, signature)| *signature).collect();
            let aggregate = Signature::aggregate(&signatures).expect("signatures to aggregate");
            (payments.into_iter().map(|(pk, msg, _)| (pk, msg)).collect(), aggregate)
        })
        .collect()
}

/// A sync batch's signature check (`verify_blocks_batch`, which merges each
/// sender's payments across blocks) when the same ten senders pay in every
/// block and when every payment has its own sender, against blst's
/// `aggregate_verify` block after block.
fn sync_batch_signatures(c: &mut Criterion) {
    let repeated = sync_batch(|_, i| i);
    let distinct = sync_batch(|b, i| b * SYNC_BLOCK_PAYMENTS + i);
    let mut group = c.benchmark_group("sync_batch_640tx");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(SYNC_BLOCKS * SYNC_BLOCK_PAYMENTS));
    for (name, batch) in [("ten_senders", &repeated), ("distinct_senders", &distinct)] {
        group.bench_function(format!("verify_blocks_batch_{name}"), |b| {
            b.iter(|| assert_eq!(verify_blocks_batch(batch), Ok(())))
        });
        group.bench_function(format!("blst_aggregate_verify_each_block_{name}"), |b| {
            b.iter(|| assert!(batch.iter().all(|(pairs, signature)| signature.aggregate_verify(pairs))))
        });
    }
    group.finish();
}

criterion_group!(benches, block_signature, admission, sync_batch_signatures);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Only `cargo bench` passes `--bench`; `cargo test --benches` runs each benchmark once.
    let benchmarking = std::env::args().any(|arg| arg == "--bench");
    let rounds = std::env::var("BLS_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(DEFAULT_ROUNDS);
    if benchmarking && rounds > 0 {
        interleaved_ratios(rounds);
    }
}
