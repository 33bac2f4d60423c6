//! Benchmarks of the consensus core: validating a 1,000-transaction block
//! (dominated by the aggregate signature check) and the miner's hash loop.

use std::sync::atomic::AtomicBool;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ourcoin::chain::{Chain, MemoryStore, NoSignatures};
use ourcoin::consensus::rules;
use ourcoin::miner::lanes::{LaneHasher, LANES};
use ourcoin::miner::{mine, HeaderHasher};
use ourcoin::testkit::{block_on_tip, fund, now_for, regtest, TestKey};
use ourcoin::types::{Address, Block, BlockHash, CompactTarget, Hash256, SignedTransaction, COIN};

const PAYERS: u64 = 10;
const PAYMENTS_EACH: u64 = 100;

/// A funded chain and an unconnected block of 1,000 payments on its tip.
fn chain_and_block() -> (Chain<MemoryStore>, Block) {
    let keys: Vec<TestKey> = (0..PAYERS).map(TestKey::new).collect();
    let mut chain = Chain::open(regtest(), MemoryStore::default()).expect("memory store");
    fund(&mut chain, &keys).expect("funding");
    let to = Address([0x42; 20]);
    let payments: Vec<SignedTransaction> = keys
        .iter()
        .flat_map(|k| (0..PAYMENTS_EACH).map(move |n| k.pay(regtest().chain_id, to, COIN / 100, 1_000, n)))
        .collect();
    let block = block_on_tip(&chain, Address([0x43; 20]), &payments);
    (chain, block)
}

fn block_validation(c: &mut Criterion) {
    let (chain, block) = chain_and_block();
    let txs = block.body.transactions.len() as u64;
    let mut group = c.benchmark_group("block_1000tx");
    group.sample_size(10);
    group.throughput(Throughput::Elements(txs));
    group
        .bench_function("aggregate_verify", |b| b.iter(|| rules::aggregate_signature_verifies(&block).expect("valid")));
    group.bench_function("check_block_structure", |b| {
        b.iter(|| rules::check_block_structure(regtest(), &block).expect("valid"))
    });
    group.bench_function("accept_and_connect", |b| {
        b.iter_batched(
            || chain.clone(),
            |mut chain| {
                let now = now_for(&chain);
                chain.accept_block(block.clone(), now, &NoSignatures).expect("valid")
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn hash_loop(c: &mut Criterion) {
    let (_, block) = chain_and_block();
    let mut header = block.header;
    // Nothing meets this target: the loop runs all its nonces.
    header.target = CompactTarget(0x03000001);
    const NONCES: u64 = 100_000;
    let mut group = c.benchmark_group("miner");
    group.throughput(Throughput::Elements(NONCES));
    let never = AtomicBool::new(false);
    // `mine` runs on the SHA-NI lanes where the CPU has them; the midstate
    // loop is the same loop on the sha2 path, whatever the CPU.
    let portable = LaneHasher::portable(&header);
    group.bench_function("hash_loop_midstate", |b| b.iter(|| portable.mine(0, 1, NONCES, &never)));
    let sha_ni = if LaneHasher::new(&header).uses_sha_ni() { "SHA-NI" } else { "no SHA-NI: the sha2 fallback" };
    eprintln!("miner/hash_loop_lanes: {LANES} lanes, {sha_ni}");
    group.bench_function("hash_loop_lanes", |b| b.iter(|| mine(&header, 0, 1, NONCES, &never)));
    group.bench_function("sha2_digest_baseline", |b| {
        b.iter(|| {
            let mut h = header;
            let mut best = [0xffu8; 32];
            for nonce in 0..NONCES {
                h.nonce = nonce;
                best = best.min(h.hash().0 .0);
            }
            best
        })
    });
    let hasher = HeaderHasher::new(&header);
    group.bench_function("midstate_hash_only", |b| {
        b.iter(|| {
            let mut best = [0xffu8; 32];
            for nonce in 0..NONCES {
                best = best.min(hasher.hash(nonce));
            }
            best
        })
    });
    let lanes = LaneHasher::new(&header);
    group.bench_function("lanes_hash_only", |b| {
        b.iter(|| {
            let mut best = BlockHash(Hash256([0xff; 32]));
            for first in (0..NONCES).step_by(LANES) {
                let mut nonces = [0; LANES];
                for (nonce, n) in nonces.iter_mut().zip(first..) {
                    *nonce = n;
                }
                best = lanes.hash_lanes(&nonces).into_iter().fold(best, std::cmp::min);
            }
            best
        })
    });
    group.finish();
}

criterion_group!(benches, block_validation, hash_loop);
criterion_main!(benches);
