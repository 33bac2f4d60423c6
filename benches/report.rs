//! The figures of the performance targets, all measured in one run on one
//! machine, ending in one line of JSON. Run it through `scripts/bench.sh`,
//! which builds the release binaries this needs:
//!
//! ```text
//! OURCOIN_BIN_DIR=target/release cargo bench --bench report -- [--quick] [--markdown FILE]
//! ```
//!
//! In this process: the miner's hash loop against the sha2 `Digest`
//! baseline, and a 5,000-payment block: its aggregate signature checked with
//! an empty pairing cache, with blst alone, and after the payments went
//! through mempool admission (which fills the cache), its acceptance by a
//! chain, and one-by-one verification for comparison. Each figure is the
//! median over interleaved rounds, because these machines are shared and
//! their load drifts.
//!
//! With the release `ourcoind` and `ourcoin-cli` on 127.0.0.1: a fresh node
//! syncing a 2,020-block chain (20,000 payments, written once with the library
//! and cached under `<target>/bench-fixtures/`) from a peer, in which ten
//! payers pay in every block; the same on a chain where every payment has
//! its own sender (reported, not a target: merging a sender's payments and
//! remembering its key do not help there); and the propagation of mined
//! blocks along a line of five nodes. Every node is killed when its handle is
//! dropped, on error too.
//!
//! Progress goes to stderr; stdout gets the markdown section (with
//! `--markdown`), one PASS/MISS line per target, the INFO line of the
//! distinct-senders sync, and the JSON line last. A
//! figure that could not be measured is `null`, and the run then exits with 1.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context, Result};
use ourcoin::chain::{BlockAccepted, Chain, MemoryStore, NoSignatures, SignatureCheck};
use ourcoin::consensus::rules;
use ourcoin::crypto::pairing_cache::PairingCache;
use ourcoin::crypto::{PublicKey, Signature};
use ourcoin::mempool::{Mempool, MempoolConfig, MIN_RELAY_FEE};
use ourcoin::miner::lanes::{LaneHasher, LANES};
use ourcoin::miner::{mine, MineOutcome};
use ourcoin::state::Account;
use ourcoin::store::SledStore;
use ourcoin::testkit::{block_on_tip, fund, now_for, regtest, TestKey};
use ourcoin::types::{Address, Block, BlockHeader, CompactTarget, SignedTransaction};
use serde_json::Value;
use tempfile::TempDir;

mod common;
use common::{median, seconds};
#[path = "common/relay.rs"]
mod relay;
use relay::{copy_chain, funded_payments, on_every_core, BenchPeer, Role};

// ---- sizes ------------------------------------------------------------------

/// The block of the signature figures: `BLOCK_PAYERS` keys paying
/// `PAYMENTS_PER_PAYER` times each, nonces in order.
const BLOCK_PAYERS: u64 = 50;
const PAYMENTS_PER_PAYER: u64 = 100;
const BLOCK_PAYMENTS: usize = (BLOCK_PAYERS * PAYMENTS_PER_PAYER) as usize;
/// Payments verified one by one for `single_verify_tx_per_s`.
const SINGLE_VERIFIED: usize = 500;
/// A compact target no hash meets: the hash loop tries every nonce it is given.
const UNREACHABLE_TARGET: CompactTarget = CompactTarget(0x0300_0001);
/// Nonces per timed hash loop: a few tenths of a second each.
const MINER_NONCES: u64 = 1 << 23;
const BASELINE_NONCES: u64 = 1 << 20;

/// The sync fixture: `SYNC_PAYERS` funded keys, then `SYNC_PAYMENT_BLOCKS`
/// blocks in which each of them pays once.
const SYNC_PAYERS: u64 = 10;
const SYNC_PAYMENT_BLOCKS: u64 = 2_000;
const SYNC_FIXTURE: &str = "sync-2000";
const FIXTURE_MARK: &str = "fixture.json";
/// The second fixture: the same payments, each from its own sender. The
/// senders are funded first, by `SYNC_PAYERS` funders in blocks of
/// `FUNDING_BLOCK_PAYMENTS`; only the blocks after those are timed.
const DISTINCT_FIXTURE: &str = "sync-distinct-2000";
const FUNDING_BLOCK_PAYMENTS: usize = 500;

/// Which chain a sync fixture holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fixture {
    /// `SYNC_PAYERS` payers paying once in every block.
    RepeatedSenders,
    /// Every payment from its own sender.
    DistinctSenders,
}

impl Fixture {
    fn dir_name(self) -> &'static str {
        match self {
            Fixture::RepeatedSenders => SYNC_FIXTURE,
            Fixture::DistinctSenders => DISTINCT_FIXTURE,
        }
    }
}

/// Nodes in the propagation line.
const LINE_NODES: usize = 5;

/// How often a node's status is asked for while waiting on it.
const STATUS_POLL: Duration = Duration::from_millis(50);
/// How often the logs are read while waiting for blocks to propagate.
const LOG_POLL: Duration = Duration::from_millis(200);
const START_DEADLINE: Duration = Duration::from_secs(60);
const SYNC_DEADLINE: Duration = Duration::from_secs(300);
/// Lines of a node's log shown when something goes wrong.
const LOG_TAIL_LINES: usize = 30;

// ---- options ----------------------------------------------------------------

struct Options {
    quick: bool,
    /// Interleaved rounds of the costly in-process figures.
    rounds: usize,
    /// Repetitions of the cheap ones (the cached check, block acceptance).
    repetitions: usize,
    propagation_blocks: usize,
    markdown: Option<PathBuf>,
    bin_dir: PathBuf,
    fixtures: PathBuf,
}

impl Options {
    fn from_env() -> Result<Options> {
        let mut args = std::env::args().skip(1);
        let mut quick = false;
        let mut markdown = None;
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--markdown" => markdown = Some(PathBuf::from(args.next().context("--markdown needs a file")?)),
                // `cargo bench` adds `--bench`; criterion-style filters mean nothing here.
                _ => {}
            }
        }
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        let bin_dir = std::env::var_os("OURCOIN_BIN_DIR").map(PathBuf::from).unwrap_or(target_dir.join("release"));
        let fixtures =
            std::env::var_os("OURCOIN_BENCH_FIXTURES").map(PathBuf::from).unwrap_or(target_dir.join("bench-fixtures"));
        Ok(Options {
            quick,
            rounds: if quick { 3 } else { 7 },
            repetitions: if quick { 5 } else { 15 },
            propagation_blocks: if quick { 10 } else { 25 },
            markdown,
            bin_dir,
            fixtures,
        })
    }
}

fn main() {
    // `cargo test --benches` runs bench targets without `--bench`: this one
    // starts nodes and runs for minutes, so it only runs when benchmarking.
    if !std::env::args().any(|arg| arg == "--bench") {
        eprintln!("report: run through scripts/bench.sh (or `cargo bench --bench report`); nothing to do here");
        return;
    }
    let options = match Options::from_env() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    };
    let machine = Machine::read();
    eprintln!(
        "report: {} ({} cores), {} mode",
        machine.cpu,
        machine.cores,
        if options.quick { "quick" } else { "full" }
    );

    // OURCOIN_BENCH_E2E_ONLY=N: only the throughput run, on N nodes, for profiling it.
    if let Some(nodes) = std::env::var("OURCOIN_BENCH_E2E_ONLY").ok().and_then(|n| n.parse().ok()) {
        let e2e = step("end-to-end throughput", || measure_e2e(&options, nodes));
        eprintln!(
            "e2e: {:?}",
            e2e.as_ref().map(|e| (e.tx_per_s, e.confirmed, e.secs, e.compact_received, e.compact_without_roundtrip))
        );
        return;
    }
    let in_process = measure_in_process(&options);
    let sync = step("sync", || measure_sync(&options, Fixture::RepeatedSenders));
    let distinct = step("sync with distinct senders", || measure_sync(&options, Fixture::DistinctSenders));
    let two_peers = Servers { honest: 2, liar: false };
    let two = step("sync from two peers", || measure_sync_from(&options, Fixture::RepeatedSenders, two_peers));
    let with_liar = Servers { honest: 2, liar: true };
    let liar = step("sync with a liar", || measure_sync_from(&options, Fixture::RepeatedSenders, with_liar));
    let validation = step("status while validating a block", || measure_validation(&options));
    let resilience = Resilience {
        status_during_sync: distinct.as_ref().and_then(|d| latency(&d.status_ms)),
        status_during_validation: validation.as_ref().and_then(|v| latency(&v.status_ms)),
        validation_s: validation.as_ref().map(|v| v.secs),
        one_peer_s: sync.as_ref().map(|s| s.secs),
        two_peers_s: two.map(|s| s.secs),
        with_liar_s: liar.map(|s| s.secs),
    };
    let relay = step("compact block relay", || measure_relay(&options));
    let e2e = step("end-to-end throughput", || measure_e2e(&options, E2E_NODES));
    let e2e_wide = step("end-to-end throughput on more nodes", || measure_e2e(&options, E2E_WIDE_NODES));
    let propagation = step("propagation", || measure_propagation(&options));
    let mut report = Report::new(machine, &options, in_process, sync, propagation);
    report.figures.sync_distinct_tx_per_s = distinct.map(|d| rounded(d.timed_tx_per_s, 1));
    report.set_resilience(resilience);
    if let Some(relay) = relay {
        report.set_relay(&relay);
    }
    for e2e in e2e.iter().chain(&e2e_wide) {
        report.set_e2e(e2e);
    }

    let mut out = String::new();
    if let Some(path) = &options.markdown {
        let section = report.markdown();
        if let Err(e) = fs::write(path, &section) {
            eprintln!("error: cannot write {}: {e}", path.display());
        }
        out.push_str(&section);
        out.push('\n');
    }
    for target in report.targets() {
        out.push_str(&target.line());
        out.push('\n');
    }
    for line in report.resilience_lines() {
        out.push_str(&line);
        out.push('\n');
    }
    let json = serde_json::to_string(&report.figures).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    out.push_str(&json);
    println!("{out}");
    if !report.figures.complete() {
        std::process::exit(1);
    }
}

/// Runs a multi-process step; its error is reported and its figures left out.
fn step<T>(name: &str, run: impl FnOnce() -> Result<T>) -> Option<T> {
    match run() {
        Ok(value) => Some(value),
        Err(e) => {
            eprintln!("error: the {name} benchmark failed: {e:#}");
            None
        }
    }
}

// ---- in this process --------------------------------------------------------

struct InProcess {
    pow_mhs_per_core: f64,
    pow_baseline_mhs: f64,
    sha_ni: bool,
    block_verify_cached_us_per_tx: f64,
    block_verify_uncached_us_per_tx: f64,
    block_connect_us_per_tx: f64,
    blst_aggregate_verify_us_per_tx: f64,
    mempool_admit_tx_per_s: f64,
    single_verify_tx_per_s: f64,
}

/// A funded in-memory chain and, on its tip, a mined but unconnected block of
/// `BLOCK_PAYMENTS` payments.
struct PaymentBlock {
    chain: Chain<MemoryStore>,
    payments: Vec<SignedTransaction>,
    block: Block,
    /// What the block's aggregate signature is checked over, as the chain builds it.
    pairs: Vec<(PublicKey, Vec<u8>)>,
    signature: Signature,
}

impl PaymentBlock {
    fn new() -> PaymentBlock {
        let keys: Vec<TestKey> = (0..BLOCK_PAYERS).map(TestKey::new).collect();
        let mut chain = Chain::open(regtest(), MemoryStore::default()).expect("an in-memory chain");
        fund(&mut chain, &keys).expect("funding the payers");
        let to = Address([0x42; 20]);
        let payments = on_every_core(BLOCK_PAYMENTS, |i| {
            let key = &keys[i / PAYMENTS_PER_PAYER as usize];
            key.pay(regtest().chain_id, to, 1_000, MIN_RELAY_FEE.0, i as u64 % PAYMENTS_PER_PAYER)
        });
        let block = block_on_tip(&chain, Address([0x43; 20]), &payments);
        let (pairs, signature) =
            rules::aggregate_signature_claim(&block).expect("a well-formed block").expect("a block with payments");
        PaymentBlock { chain, payments, block, pairs, signature }
    }

    fn mempool_config() -> MempoolConfig {
        // Every payment of a payer waits in the pool at once.
        MempoolConfig { max_future_nonces: PAYMENTS_PER_PAYER, ..MempoolConfig::default() }
    }

    /// Admits every payment in one `add_batch` into a new mempool filling a
    /// new cache; the seconds it took, the cache and the pool.
    fn admit_all(&self) -> (f64, Arc<PairingCache>, Mempool) {
        let cache = Arc::new(PairingCache::default());
        let mut mempool = Mempool::new(regtest(), PaymentBlock::mempool_config());
        mempool.set_signature_cache(cache.clone());
        let items: Vec<(SignedTransaction, Account)> = self
            .payments
            .iter()
            .map(|stx| (*stx, self.chain.account(&stx.tx.sender_address()).expect("an in-memory account")))
            .collect();
        let now = self.chain.tip_header().time;
        let start = Instant::now();
        let results = mempool.add_batch(items, now);
        let secs = start.elapsed().as_secs_f64();
        let refused = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(
            refused,
            0,
            "the mempool refused {refused} payments, first: {:?}",
            results.iter().find(|r| r.is_err())
        );
        (secs, cache, mempool)
    }
}

fn measure_in_process(options: &Options) -> InProcess {
    eprintln!("report: signing a {}-payment block", grouped(BLOCK_PAYMENTS as u64));
    let block = PaymentBlock::new();
    let per_tx_us = |secs: f64| secs * 1e6 / BLOCK_PAYMENTS as f64;

    eprintln!("report: miner hash loop against the sha2 Digest baseline ({} rounds)", options.rounds);
    let mut header = block.block.header;
    header.target = UNREACHABLE_TARGET;
    let sha_ni = LaneHasher::new(&header).uses_sha_ni();
    let (mut miner, mut baseline) = (Vec::new(), Vec::new());
    let never = AtomicBool::new(false);
    for _ in 0..options.rounds {
        let secs = seconds(|| assert_eq!(mine(&header, 0, 1, MINER_NONCES, &never), MineOutcome::Exhausted));
        miner.push(MINER_NONCES as f64 / secs / 1e6);
        let secs = seconds(|| digest_hashes(&header, BASELINE_NONCES));
        baseline.push(BASELINE_NONCES as f64 / secs / 1e6);
    }

    eprintln!("report: the block's aggregate signature, empty cache and blst ({} rounds)", options.rounds);
    let (mut uncached, mut blst) = (Vec::new(), Vec::new());
    for round in 0..options.rounds {
        // Alternate which goes first, so neither always runs on a warmer machine.
        let uncached_first = round % 2 == 0;
        if uncached_first {
            uncached.push(per_tx_us(seconds(|| uncached_check(&block))));
        }
        blst.push(per_tx_us(seconds(|| assert!(block.signature.aggregate_verify(&block.pairs)))));
        if !uncached_first {
            uncached.push(per_tx_us(seconds(|| uncached_check(&block))));
        }
    }

    eprintln!("report: mempool admission and one-by-one verification ({} rounds)", options.rounds);
    let singles: Vec<(PublicKey, Vec<u8>, Signature)> = block.payments[..SINGLE_VERIFIED]
        .iter()
        .map(|stx| {
            let public_key = PublicKey::from_bytes(&stx.tx.sender).expect("a valid key");
            let signature = Signature::from_bytes(&stx.signature).expect("a valid signature");
            (public_key, stx.tx.signing_message().to_vec(), signature)
        })
        .collect();
    let (mut admitted, mut single) = (Vec::new(), Vec::new());
    let mut filled = None;
    for _ in 0..options.rounds {
        let (secs, cache, mempool) = block.admit_all();
        admitted.push(BLOCK_PAYMENTS as f64 / secs);
        filled = Some((cache, mempool));
        let secs = seconds(|| assert!(singles.iter().all(|(pk, msg, sig)| sig.verify(pk, msg))));
        single.push(SINGLE_VERIFIED as f64 / secs);
    }
    let (cache, mempool) = filled.expect("at least one round");

    eprintln!("report: the cached check and block acceptance ({} repetitions)", options.repetitions);
    let misses_before = cache.stats().misses;
    let cached: Vec<f64> = (0..options.repetitions)
        .map(|_| per_tx_us(seconds(|| assert!(cache.aggregate_verify(&block.pairs, &block.signature)))))
        .collect();
    let connect: Vec<f64> = (0..options.repetitions)
        .map(|_| {
            let mut chain = block.chain.clone();
            chain.set_signature_cache(cache.clone());
            let candidate = block.block.clone();
            let now = now_for(&chain);
            per_tx_us(seconds(|| {
                let accepted = chain.accept_block(candidate, now, &mempool).expect("the block is valid");
                assert!(matches!(accepted, BlockAccepted::BestChain(_)), "the block extends the best chain");
            }))
        })
        .collect();
    assert_eq!(cache.stats().misses, misses_before, "every pair of the block was cached by admission");

    InProcess {
        pow_mhs_per_core: median(miner),
        pow_baseline_mhs: median(baseline),
        sha_ni,
        block_verify_cached_us_per_tx: median(cached),
        block_verify_uncached_us_per_tx: median(uncached),
        block_connect_us_per_tx: median(connect),
        blst_aggregate_verify_us_per_tx: median(blst),
        mempool_admit_tx_per_s: median(admitted),
        single_verify_tx_per_s: median(single),
    }
}

/// `BlockHeader::hash` (sha2 `Digest`, double SHA-256 of the whole header)
/// over `nonces` nonces: what a miner without a midstate or lanes does.
fn digest_hashes(header: &BlockHeader, nonces: u64) {
    let mut header = *header;
    for nonce in 0..nonces {
        header.nonce = nonce;
        black_box(header.hash());
    }
}

/// The block's check with a new, empty cache: a Miller loop per payment.
fn uncached_check(block: &PaymentBlock) {
    let cache = PairingCache::default();
    assert!(cache.aggregate_verify(&block.pairs, &block.signature));
}

// ---- the sync fixture -------------------------------------------------------

/// What a finished fixture holds; written last, so a fixture without it is
/// incomplete.
#[derive(serde::Serialize, serde::Deserialize)]
struct FixtureMark {
    height: u64,
    transactions: u64,
    tip: String,
    /// The height from which the timed payments start (0: all of them).
    #[serde(default)]
    timed_from: u64,
}

/// The cached sync fixture, checked by opening it; built first when missing
/// or unreadable (by an older store layout, say).
fn sync_fixture(root: &Path, fixture: Fixture) -> Result<(PathBuf, FixtureMark)> {
    let dir = root.join(fixture.dir_name());
    match check_fixture(&dir) {
        Ok(mark) => {
            eprintln!("report: reusing the sync fixture {} (height {})", dir.display(), mark.height);
            return Ok((dir, mark));
        }
        Err(why) if dir.exists() => eprintln!("report: rebuilding the sync fixture: {why:#}"),
        Err(_) => eprintln!("report: building the sync fixture in {} (once)", dir.display()),
    }
    let building = root.join(format!("{}.building", fixture.dir_name()));
    for stale in [&building, &dir] {
        if stale.exists() {
            fs::remove_dir_all(stale).with_context(|| format!("cannot remove {}", stale.display()))?;
        }
    }
    let started = Instant::now();
    match fixture {
        Fixture::RepeatedSenders => build_fixture(&building)?,
        Fixture::DistinctSenders => build_distinct_fixture(&building)?,
    };
    fs::rename(&building, &dir)
        .with_context(|| format!("cannot rename {} to {}", building.display(), dir.display()))?;
    let mark = check_fixture(&dir)?;
    eprintln!("report: fixture built in {:.1} s", started.elapsed().as_secs_f64());
    Ok((dir, mark))
}

fn check_fixture(dir: &Path) -> Result<FixtureMark> {
    let path = dir.join(FIXTURE_MARK);
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let mark: FixtureMark = serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
    let store = SledStore::open(&dir.join("chain"))?;
    let chain = Chain::open(regtest(), store)?;
    ensure!(
        chain.height() == mark.height && chain.tip().to_string() == mark.tip,
        "the stored chain ends at height {} ({}), not {} ({})",
        chain.height(),
        chain.tip(),
        mark.height,
        mark.tip
    );
    ensure!(
        mark.height >= SYNC_PAYMENT_BLOCKS && mark.transactions >= SYNC_PAYERS * SYNC_PAYMENT_BLOCKS,
        "the fixture is smaller than this benchmark wants"
    );
    Ok(mark)
}

/// Writes the chain into `dir/chain` with the library, as a node would have
/// stored it: funding blocks, then blocks of one payment from every payer,
/// one second apart from the regtest genesis (long past, which is fine).
fn build_fixture(dir: &Path) -> Result<FixtureMark> {
    let mut chain = open_fixture_chain(dir)?;
    let keys: Vec<TestKey> = (0..SYNC_PAYERS).map(|seed| TestKey::new(1_000 + seed)).collect();
    fund(&mut chain, &keys)?;
    let payers = keys.len();
    let to = Address([0x42; 20]);
    let payments = on_every_core(payers * SYNC_PAYMENT_BLOCKS as usize, |i| {
        keys[i % payers].pay(regtest().chain_id, to, 1_000, MIN_RELAY_FEE.0, (i / payers) as u64)
    });
    append_blocks(&mut chain, payments.chunks(payers))?;
    finish_fixture(dir, chain, payments.len(), 0)
}

/// The distinct-senders fixture: `SYNC_PAYERS` funders pay
/// `SYNC_PAYERS * SYNC_PAYMENT_BLOCKS` new keys enough for one payment each,
/// in large blocks; then `SYNC_PAYMENT_BLOCKS` blocks in which
/// `SYNC_PAYERS` of those keys pay once each, every key in one block only.
fn build_distinct_fixture(dir: &Path) -> Result<FixtureMark> {
    let mut chain = open_fixture_chain(dir)?;
    let funders: Vec<TestKey> = (0..SYNC_PAYERS).map(|seed| TestKey::new(2_000 + seed)).collect();
    fund(&mut chain, &funders)?;
    let count = (SYNC_PAYERS * SYNC_PAYMENT_BLOCKS) as usize;
    let per_funder = count / funders.len();
    let senders = on_every_core(count, |i| TestKey::new(100_000 + i as u64));
    let fee = MIN_RELAY_FEE.0;
    // Funder f pays senders f * per_funder.., nonces in turn.
    let funding = on_every_core(count, |i| {
        let (funder, nonce) = (i / per_funder, i % per_funder);
        funders[funder].pay(regtest().chain_id, senders[i].address, 1_000 + fee, fee, nonce as u64)
    });
    let to = Address([0x42; 20]);
    let payments = on_every_core(count, |i| senders[i].pay(regtest().chain_id, to, 1_000, fee, 0));
    // Each funding block takes the next payments of every funder, in nonce order.
    let per_block = FUNDING_BLOCK_PAYMENTS / funders.len();
    let funding_blocks = (0..per_funder).step_by(per_block).map(|start| {
        (0..funders.len())
            .flat_map(|f| (start..(start + per_block).min(per_funder)).map(move |n| f * per_funder + n))
            .map(|i| funding[i])
            .collect::<Vec<SignedTransaction>>()
    });
    append_blocks(&mut chain, funding_blocks)?;
    let timed_from = chain.height() + 1;
    append_blocks(&mut chain, payments.chunks(SYNC_PAYERS as usize))?;
    finish_fixture(dir, chain, payments.len(), timed_from)
}

fn open_fixture_chain(dir: &Path) -> Result<Chain<SledStore>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(Chain::open(regtest(), SledStore::open(&dir.join("chain"))?)?)
}

/// Mines a block on the tip for each group of payments and connects it.
fn append_blocks<P: AsRef<[SignedTransaction]>>(
    chain: &mut Chain<SledStore>,
    blocks: impl IntoIterator<Item = P>,
) -> Result<()> {
    let miner = Address([0xee; 20]);
    let now = unix_now().max(now_for(chain));
    for payments in blocks {
        let block = block_on_tip(chain, miner, payments.as_ref());
        // Signed by this process: not worth a pairing each.
        chain.accept_block_with(block, now, &NoSignatures, SignatureCheck::AlreadyVerified)?;
    }
    Ok(())
}

/// Flushes and closes the chain, then writes the mark that says the fixture is complete.
fn finish_fixture(dir: &Path, chain: Chain<SledStore>, transactions: usize, timed_from: u64) -> Result<FixtureMark> {
    let mark = FixtureMark {
        height: chain.height(),
        transactions: transactions as u64,
        tip: chain.tip().to_string(),
        timed_from,
    };
    chain.flush()?;
    drop(chain);
    fs::write(dir.join(FIXTURE_MARK), serde_json::to_string_pretty(&mark)?)
        .with_context(|| format!("cannot write the fixture mark in {}", dir.display()))?;
    Ok(mark)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target).with_context(|| format!("cannot copy to {}", target.display()))?;
        }
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn unix_now_secs_f64() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

// ---- nodes ------------------------------------------------------------------

struct Binaries {
    ourcoind: PathBuf,
    cli: PathBuf,
}

impl Binaries {
    fn find(dir: &Path) -> Result<Binaries> {
        let binaries = Binaries { ourcoind: dir.join("ourcoind"), cli: dir.join("ourcoin-cli") };
        for program in [&binaries.ourcoind, &binaries.cli] {
            ensure!(
                program.is_file(),
                "{} is missing: run `cargo build --release --bins`, or point OURCOIN_BIN_DIR at the binaries",
                program.display()
            );
        }
        Ok(binaries)
    }

    /// `ourcoin-cli --network regtest --json ARGS`: its JSON document.
    fn cli_json(&self, args: &[&str]) -> Result<Value> {
        let output = Command::new(&self.cli)
            .args(["--network", "regtest", "--json"])
            .args(args)
            .env_remove("OURCOIN_NODE")
            .env_remove("OURCOIN_WALLET")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", self.cli.display()))?;
        if !output.status.success() {
            bail!("ourcoin-cli {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
        }
        serde_json::from_slice(&output.stdout).with_context(|| format!("ourcoin-cli {}: not JSON", args.join(" ")))
    }
}

/// A node's directory, before it starts: `data/` (the datadir) and `node.log`.
struct NodeDir {
    name: String,
    dir: TempDir,
}

impl NodeDir {
    fn new(name: &str) -> Result<NodeDir> {
        let dir = tempfile::Builder::new().prefix(&format!("ourcoin-bench-{name}-")).tempdir()?;
        Ok(NodeDir { name: name.to_string(), dir })
    }

    fn datadir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("node.log")
    }
}

/// A running `ourcoind` on 127.0.0.1, killed when dropped.
struct Daemon {
    child: Child,
    /// `/ip4/127.0.0.1/tcp/<port>`: what `ourcoin-cli --node` takes.
    addr: String,
    /// The whole listen address, ending in `/p2p/<peer id>`: what `--bootstrap` takes.
    multiaddr: String,
    /// Dropped after the process is killed (fields drop after `Drop::drop`).
    dir: NodeDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The datadir is thrown away: no need for a clean shutdown.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `ourcoind` on a free loopback port and waits until it logs
    /// its listen address.
    fn start(bins: &Binaries, dir: NodeDir, log_filter: &str, args: &[&str]) -> Result<Daemon> {
        let log = File::create(dir.log_path()).context("cannot create a node log")?;
        let child = Command::new(&bins.ourcoind)
            .args(["--network", "regtest", "--listen", "/ip4/127.0.0.1/tcp/0", "--log", log_filter, "--datadir"])
            .arg(dir.datadir())
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", bins.ourcoind.display()))?;
        // Owned at once, so that it is killed if it never gets ready.
        let mut daemon = Daemon { child, addr: String::new(), multiaddr: String::new(), dir };
        let started = Instant::now();
        const WANTED: &str = "listening on /ip4/127.0.0.1/tcp/";
        let multiaddr = loop {
            let found = daemon.log().lines().find_map(|line| {
                let at = line.find(WANTED)? + "listening on ".len();
                line[at..].split_whitespace().next().map(str::to_string)
            });
            if let Some(multiaddr) = found {
                break multiaddr;
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                bail!("node {} exited at start ({status}):\n{}", daemon.name(), daemon.tail());
            }
            if started.elapsed() > START_DEADLINE {
                bail!("node {} did not start listening within {START_DEADLINE:?}:\n{}", daemon.name(), daemon.tail());
            }
            thread::sleep(Duration::from_millis(20));
        };
        let (addr, peer_id) =
            multiaddr.split_once("/p2p/").ok_or_else(|| anyhow!("no peer id in the listen address {multiaddr}"))?;
        ensure!(!peer_id.is_empty(), "no peer id in the listen address {multiaddr}");
        daemon.addr = addr.to_string();
        daemon.multiaddr = multiaddr;
        Ok(daemon)
    }

    fn name(&self) -> &str {
        &self.dir.name
    }

    /// The log so far, colour codes removed (in case NO_COLOR is ignored).
    fn log(&self) -> String {
        let bytes = fs::read(self.dir.log_path()).unwrap_or_default();
        strip_ansi(&String::from_utf8_lossy(&bytes))
    }

    fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "---- last lines of node {}'s log ----\n{}",
            self.name(),
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        )
    }

    /// Height and tip from `ourcoin-cli status`.
    fn status(&self, bins: &Binaries) -> Result<(u64, String)> {
        let status = bins.cli_json(&["--node", &self.addr, "status"])?;
        let height = status.get("height").and_then(Value::as_u64).context("status without a height")?;
        let tip = status.get("tip").and_then(Value::as_str).context("status without a tip")?;
        Ok((height, tip.to_string()))
    }

    /// Resident memory in MiB, from /proc.
    fn rss_mib(&self) -> Result<f64> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .with_context(|| format!("no VmRSS in {path}"))?;
        Ok(kib / 1024.0)
    }
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
        } else if chars.peek() == Some(&'[') {
            chars.by_ref().find(char::is_ascii_alphabetic);
        }
    }
    out
}

/// Polls `condition` every `poll` until it yields a value, or fails after `deadline`.
fn wait_for<T>(what: &str, deadline: Duration, poll: Duration, mut condition: impl FnMut() -> Option<T>) -> Result<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = condition() {
            return Ok(value);
        }
        if started.elapsed() > deadline {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        thread::sleep(poll);
    }
}

fn tails(nodes: &[&Daemon]) -> String {
    nodes.iter().map(|node| node.tail()).collect::<Vec<_>>().join("\n")
}

// ---- sync -------------------------------------------------------------------

struct SyncFigures {
    blocks: u64,
    transactions: u64,
    blocks_per_s: f64,
    tx_per_s: f64,
    rss_mib: f64,
    /// Payments per second over the fixture's timed blocks only.
    timed_tx_per_s: f64,
    secs: f64,
    /// `ourcoin-cli status` round trips to the syncing node, sorted.
    status_ms: Vec<f64>,
}

/// Who serves the fixture to the fresh node.
#[derive(Clone, Copy)]
struct Servers {
    honest: usize,
    /// A peer that claims enormous work and answers no headers or blocks.
    liar: bool,
}

const ONE_PEER: Servers = Servers { honest: 1, liar: false };

/// Node A serves a copy of the fixture; node D, fresh, syncs it from A.
/// Timed from D's start until its `status` shows A's height.
fn measure_sync(options: &Options, fixture: Fixture) -> Result<SyncFigures> {
    measure_sync_from(options, fixture, ONE_PEER)
}

/// `servers.honest` nodes serve copies of the fixture (and a silent liar,
/// when asked for); node D, fresh and bootstrapping from all of them, syncs
/// it. Timed from D's start until its `status` shows the fixture's height;
/// every status poll's round trip is kept.
fn measure_sync_from(options: &Options, fixture: Fixture, servers: Servers) -> Result<SyncFigures> {
    let bins = Binaries::find(&options.bin_dir)?;
    fs::create_dir_all(&options.fixtures).with_context(|| format!("cannot create {}", options.fixtures.display()))?;
    let (fixture_dir, mark) = sync_fixture(&options.fixtures, fixture)?;

    let mut honest = Vec::new();
    for i in 0..servers.honest {
        let dir = NodeDir::new(&format!("A{i}"))?;
        copy_dir(&fixture_dir.join("chain"), &dir.datadir().join("chain"))?;
        let node = Daemon::start(&bins, dir, "info", &[])?;
        let (height, _) = node.status(&bins)?;
        ensure!(
            height == mark.height,
            "node {} loaded height {height}, not the fixture's {}",
            node.name(),
            mark.height
        );
        honest.push(node);
    }
    let liar = if servers.liar { Some(BenchPeer::start(Role::SilentLiar)?) } else { None };
    let mut bootstrap: Vec<String> = Vec::new();
    for address in liar.iter().map(|l| l.multiaddr.clone()).chain(honest.iter().map(|n| n.multiaddr.clone())) {
        bootstrap.push("--bootstrap".into());
        bootstrap.push(address);
    }
    let bootstrap: Vec<&str> = bootstrap.iter().map(String::as_str).collect();

    let (blocks, payments) = (grouped(mark.height), grouped(mark.transactions));
    eprintln!(
        "report: a fresh node syncing {blocks} blocks ({payments} payments) over loopback from {} honest peer(s){}",
        servers.honest,
        if servers.liar { " and a silent liar" } else { "" }
    );
    let started = Instant::now();
    let d = Daemon::start(&bins, NodeDir::new("D")?, "info", &bootstrap)?;
    let mut status_ms = Vec::new();
    let synced = wait_for("node D to sync the fixture", SYNC_DEADLINE, STATUS_POLL, || {
        let asked = Instant::now();
        let status = d.status(&bins).ok();
        if status.is_some() {
            status_ms.push(asked.elapsed().as_secs_f64() * 1e3);
        }
        status.filter(|(height, _)| *height == mark.height)
    });
    let secs = started.elapsed().as_secs_f64();
    let mut nodes: Vec<&Daemon> = honest.iter().collect();
    nodes.push(&d);
    synced.map_err(|e| e.context(tails(&nodes)))?;
    status_ms.sort_by(f64::total_cmp);
    let rss_mib = d.rss_mib()?;
    eprintln!("report: synced in {secs:.2} s");
    let timed_tx_per_s = if mark.timed_from == 0 {
        mark.transactions as f64 / secs
    } else {
        // From the batch that reached the timed blocks to the last one, as D logged them.
        let log = d.log();
        let best = best_blocks(&log);
        let reached = |height: u64| best.iter().find(|(_, h, _)| *h >= height).map(|(time, h, _)| (*time, *h));
        let ((start, from), (end, to)) = reached(mark.timed_from)
            .zip(reached(mark.height))
            .context("node D's log does not show it connecting the timed blocks")?;
        let payments = to.saturating_sub(from) * SYNC_PAYERS;
        ensure!(payments >= mark.transactions * 9 / 10 && end > start, "too few timed blocks: {from} to {to}");
        eprintln!("report: the distinct senders' {} payments took {:.2} s", grouped(payments), end - start);
        payments as f64 / (end - start)
    };
    Ok(SyncFigures {
        blocks: mark.height,
        transactions: mark.transactions,
        blocks_per_s: mark.height as f64 / secs,
        tx_per_s: mark.transactions as f64 / secs,
        rss_mib,
        timed_tx_per_s,
        secs,
        status_ms,
    })
}

// ---- status while a large block is validated ---------------------------------

struct ValidationFigures {
    secs: f64,
    /// `ourcoin-cli status` round trips while the node validated the block, sorted (ms).
    status_ms: Vec<f64>,
}

/// A node holding the funded chain of a `BLOCK_PAYMENTS`-payment block
/// receives the block by gossip (none of its payments was in its mempool
/// but the first, used to see that gossip flows); its `status` is polled
/// until the block is connected.
fn measure_validation(options: &Options) -> Result<ValidationFigures> {
    let bins = Binaries::find(&options.bin_dir)?;
    eprintln!("report: signing another {}-payment block", grouped(BLOCK_PAYMENTS as u64));
    let payment_block = PaymentBlock::new();
    let dir = NodeDir::new("V")?;
    copy_chain(&payment_block.chain, &dir.datadir())?;
    let node = Daemon::start(&bins, dir, "info", &[])?;
    let (height, _) = node.status(&bins)?;
    let publisher = joined_publisher(&bins, &node, payment_block.payments.first().context("a payment")?)?;
    eprintln!("report: node V validating a {}-payment block it never saw", grouped(BLOCK_PAYMENTS as u64));
    let started = Instant::now();
    publisher.publish(
        ourcoin::network::Topic::Blocks,
        ourcoin::types::encode(&ourcoin::types::BlockMessage::Full(payment_block.block.clone())),
    )?;
    let mut status_ms = Vec::new();
    wait_for("node V to connect the block", SYNC_DEADLINE, STATUS_POLL, || {
        let asked = Instant::now();
        let status = node.status(&bins).ok()?;
        status_ms.push(asked.elapsed().as_secs_f64() * 1e3);
        (status.0 == height + 1).then_some(())
    })
    .map_err(|e| e.context(node.tail()))?;
    let secs = started.elapsed().as_secs_f64();
    status_ms.sort_by(f64::total_cmp);
    Ok(ValidationFigures { secs, status_ms })
}

/// A bench peer connected to `node`, with gossip flowing: `probe` is
/// published until the node knows it (pending, or already confirmed where
/// a miner is quick).
fn joined_publisher(bins: &Binaries, node: &Daemon, probe: &SignedTransaction) -> Result<BenchPeer> {
    let publisher = BenchPeer::start(Role::Publisher)?;
    ensure!(
        publisher.client.send(ourcoin::network::Command::Dial(publisher_target(node)?)),
        "the publisher's event loop stopped"
    );
    wait_for("gossip from a bench peer to reach a node", START_DEADLINE, STATUS_POLL, || {
        publisher.publish(ourcoin::network::Topic::Transactions, ourcoin::types::encode(probe)).ok()?;
        bins.cli_json(&["--node", &node.addr, "tx", &probe.txid().to_string()]).ok().map(|_| ())
    })
    .map_err(|e| e.context(node.tail()))?;
    Ok(publisher)
}

// ---- compact block relay ------------------------------------------------------

/// Payers of the relayed block: each may have `MAX_FUTURE_NONCES` + 1 payments pending.
const RELAY_PAYERS: u64 = 320;
/// Payments a bench peer gossips before waiting for the node to admit them.
const GOSSIP_CHUNK: usize = 100;
const RELAY_PER_PAYER: u64 = 16;

struct RelayFigures {
    payments: usize,
    /// Block message bytes node R received for the block, per payment.
    compact_bytes_per_tx: f64,
    /// The same block's full message, per payment.
    full_bytes_per_tx: f64,
    /// Whether R rebuilt it from its mempool alone.
    without_roundtrip: bool,
    /// From publishing the compact block to R reporting it connected (ms).
    connect_ms: f64,
}

/// Node R holds a funded chain; a bench peer gossips it `BLOCK_PAYMENTS`
/// payments, then the compact block that confirms them. R's own counters
/// say how many bytes of block messages it received and how it rebuilt it.
fn measure_relay(options: &Options) -> Result<RelayFigures> {
    let bins = Binaries::find(&options.bin_dir)?;
    let per_payer = RELAY_PER_PAYER as usize;
    let (chain, payments) =
        funded_payments(20_000, RELAY_PAYERS, BLOCK_PAYMENTS, |i| i / per_payer, |i| (i % per_payer) as u64)?;
    let block = block_on_tip(&chain, Address([0x43; 20]), &payments);
    let dir = NodeDir::new("R")?;
    copy_chain(&chain, &dir.datadir())?;
    let node = Daemon::start(&bins, dir, "info", &[])?;
    let (height, _) = node.status(&bins)?;
    let probe = payments.first().context("a payment")?;
    let publisher = joined_publisher(&bins, &node, probe)?;
    let stats = || -> Result<Value> {
        let status = bins.cli_json(&["--node", &node.addr, "status"])?;
        status.get("compact_blocks").cloned().context("status without compact_blocks")
    };
    let mempool = || bins.cli_json(&["--node", &node.addr, "status"]).ok()?.get("mempool")?.as_u64();
    eprintln!("report: gossiping {} payments to node R, then their compact block", grouped(BLOCK_PAYMENTS as u64));
    // In chunks the node admits before the next: a node whose work queue is
    // full ignores gossip (and a message ignored is not sent again).
    let mut sent = 1;
    for chunk in payments[1..].chunks(GOSSIP_CHUNK) {
        for stx in chunk {
            publisher.publish(ourcoin::network::Topic::Transactions, ourcoin::types::encode(stx))?;
        }
        sent += chunk.len() as u64;
        wait_for("node R to admit the payments sent", SYNC_DEADLINE, STATUS_POLL, || {
            (mempool()? >= sent).then_some(())
        })
        .map_err(|e| e.context(node.tail()))?;
    }
    let before = stats()?;
    let counter = |stats: &Value, key: &str| stats.get(key).and_then(Value::as_u64).unwrap_or(0);
    let compact =
        ourcoin::types::encode(&ourcoin::types::BlockMessage::Compact(ourcoin::types::CompactBlock::of(&block)));
    let full = ourcoin::types::encode(&ourcoin::types::BlockMessage::Full(block.clone()));
    let started = Instant::now();
    publisher.publish(ourcoin::network::Topic::Blocks, compact)?;
    wait_for("node R to connect the compact block", SYNC_DEADLINE, Duration::from_millis(5), || {
        (node.status(&bins).ok()?.0 == height + 1).then_some(())
    })
    .map_err(|e| e.context(node.tail()))?;
    let connect_ms = started.elapsed().as_secs_f64() * 1e3;
    let after = stats()?;
    let bytes = counter(&after, "block_message_bytes") - counter(&before, "block_message_bytes");
    let per_tx = |bytes: usize| bytes as f64 / BLOCK_PAYMENTS as f64;
    Ok(RelayFigures {
        payments: BLOCK_PAYMENTS,
        compact_bytes_per_tx: per_tx(bytes as usize),
        full_bytes_per_tx: per_tx(full.len()),
        without_roundtrip: counter(&after, "rebuilt_without_roundtrip") > counter(&before, "rebuilt_without_roundtrip"),
        connect_ms,
    })
}

// ---- end-to-end throughput ----------------------------------------------------

/// Node counts of the throughput runs: the figures' run, and the larger one beside it.
const E2E_NODES: usize = 3;
const E2E_WIDE_NODES: usize = 5;
/// Funded payers, each paying once per nonce layer.
const E2E_PAYERS: u64 = 1_000;
/// Pending payments the generator keeps at the node it feeds, at most.
const E2E_BACKLOG: u64 = 5_000;
/// Payments sent to the fed node and not yet admitted, at most: well under
/// the node's work queue (1,024), which sheds gossip when full.
const E2E_IN_FLIGHT: u64 = 600;
/// How often the generator asks the fed node for its status: the query
/// protocol answers a peer 50 times a second, and each new block costs one
/// more request.
const E2E_POLL: Duration = Duration::from_millis(25);
/// A generator that could send nothing for this long gives up: payments
/// lost to a busy node leave their senders' later ones waiting for ever.
const E2E_STALL: Duration = Duration::from_secs(15);

struct E2eFigures {
    nodes: usize,
    /// Payments confirmed per second in the measured window, as the last node saw them.
    tx_per_s: f64,
    confirmed: u64,
    secs: f64,
    /// Compact blocks the non-mining nodes received, and rebuilt without a round trip.
    compact_received: u64,
    compact_without_roundtrip: u64,
}

/// A query connection kept open to one node: a status poll costs a round
/// trip on it, not a process and a handshake as `ourcoin-cli` does.
struct Probe {
    runtime: tokio::runtime::Runtime,
    client: ourcoin::rpc::client::QueryClient,
}

impl Probe {
    fn connect(node: &Daemon) -> Result<Probe> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let addr = publisher_target(node)?;
        let client = runtime
            .block_on(ourcoin::rpc::client::QueryClient::connect(&addr, Duration::from_secs(10)))
            .with_context(|| format!("connecting a query client to {}", node.name()))?;
        Ok(Probe { runtime, client })
    }

    fn ask(&mut self, request: ourcoin::rpc::QueryRequest) -> Result<ourcoin::rpc::QueryResponse> {
        Ok(self.runtime.block_on(self.client.request(request))?)
    }

    fn status(&mut self) -> Result<ourcoin::rpc::StatusReply> {
        match self.ask(ourcoin::rpc::QueryRequest::Status)? {
            ourcoin::rpc::QueryResponse::Status(status) => Ok(status),
            other => bail!("status answered with {other:?}"),
        }
    }

    /// Payments (the coinbase not counted) of the best chain's block at `height`.
    fn payments_at(&mut self, height: u64) -> Result<u64> {
        let id = ourcoin::rpc::BlockId::Height(height);
        match self.ask(ourcoin::rpc::QueryRequest::Block(id))? {
            ourcoin::rpc::QueryResponse::Block(block) => Ok(block.txids.len().saturating_sub(1) as u64),
            other => bail!("block {height} answered with {other:?}"),
        }
    }
}

/// `nodes` release nodes on loopback, each bootstrapping from all before
/// it, the first mining; a load generator (a bench peer signing with the
/// library's keys) gossips payments from many senders to the second as fast
/// as the network confirms them. It polls the fed node's status on one
/// query connection and sends, each poll, what keeps at most `E2E_BACKLOG`
/// pending there and at most `E2E_IN_FLIGHT` on their way (sent, less
/// pending, less confirmed). Confirmed payments per second are read from
/// the last node's "new best block" lines: the sustained rate between a
/// tenth and nine tenths of them (`sustained_rate`).
fn measure_e2e(options: &Options, node_count: usize) -> Result<E2eFigures> {
    ensure!(node_count >= 2, "the throughput run needs a miner and a fed node");
    let bins = Binaries::find(&options.bin_dir)?;
    let layers: u64 = if options.quick { 20 } else { 40 };
    eprintln!("report: signing {} payments for the throughput run", grouped(layers * E2E_PAYERS));
    let payers = E2E_PAYERS as usize;
    let (chain, payments) =
        funded_payments(30_000, E2E_PAYERS, payers * layers as usize, |i| i % payers, |i| (i / payers) as u64)?;
    let miner = Address([0x43; 20]).encode(ourcoin::types::Network::Regtest);
    let mut nodes: Vec<Daemon> = Vec::new();
    for i in 1..=node_count {
        let dir = NodeDir::new(&format!("E{node_count}-{i}"))?;
        copy_chain(&chain, &dir.datadir())?;
        let mut args: Vec<String> =
            nodes.iter().flat_map(|n| ["--bootstrap".to_string(), n.multiaddr.clone()]).collect();
        if i == 1 {
            args.extend(["--mine".into(), "--miner-address".into(), miner.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(Daemon::start(&bins, dir, "info", &args)?);
    }
    let all: Vec<&Daemon> = nodes.iter().collect();
    let fed = &nodes[1];
    let last = &nodes[node_count - 1];
    let start_height = chain.height();
    wait_for("the nodes to follow the miner", START_DEADLINE, Duration::from_millis(100), || {
        let heights: Option<Vec<u64>> = all.iter().map(|n| n.status(&bins).ok().map(|s| s.0)).collect();
        heights.filter(|h| h.iter().all(|&h| h > start_height + 1)).map(|_| ())
    })
    .map_err(|e| e.context(tails(&all)))?;
    let publisher = joined_publisher(&bins, fed, payments.first().context("a payment")?)?;
    let mut probe = Probe::connect(fed)?;
    eprintln!("report: {node_count} nodes, payments from {E2E_PAYERS} senders as fast as they confirm");
    let started = unix_now_secs_f64();
    let mut seen_height = probe.status()?.height;
    // Confirmed at the fed node since `seen_height` was first read.
    let mut confirmed_at_fed = 0u64;
    let mut published = 1usize;
    let mut last_sent = Instant::now();
    while published < payments.len() {
        let status = probe.status()?;
        while seen_height < status.height {
            seen_height += 1;
            confirmed_at_fed += probe.payments_at(seen_height)?;
        }
        let in_flight = (published as u64).saturating_sub(status.mempool + confirmed_at_fed);
        let room = E2E_BACKLOG.saturating_sub(status.mempool).min(E2E_IN_FLIGHT.saturating_sub(in_flight)) as usize;
        if room == 0 {
            if last_sent.elapsed() > E2E_STALL {
                eprintln!(
                    "report: the fed node's backlog stopped draining after {} payments ({in_flight} unaccounted for)",
                    grouped(published as u64)
                );
                break;
            }
        } else {
            let end = (published + room).min(payments.len());
            for stx in &payments[published..end] {
                publisher.publish(ourcoin::network::Topic::Transactions, ourcoin::types::encode(stx))?;
            }
            published = end;
            last_sent = Instant::now();
        }
        thread::sleep(E2E_POLL);
    }
    // Then until every payment is confirmed at the last node, or none has been for ten seconds.
    let confirmed_at_last = || confirmed_blocks(last, started).iter().map(|(_, txs)| txs).sum::<u64>();
    let mut last_progress = (0, Instant::now());
    loop {
        let confirmed = confirmed_at_last();
        if confirmed as usize >= published || last_progress.1.elapsed() > Duration::from_secs(10) {
            break;
        }
        if confirmed > last_progress.0 {
            last_progress = (confirmed, Instant::now());
        }
        thread::sleep(LOG_POLL);
    }
    let blocks = confirmed_blocks(last, started);
    let confirmed: u64 = blocks.iter().map(|(_, txs)| txs).sum();
    let secs = blocks.last().map_or(0.0, |(time, _)| time - started);
    let sustained = sustained_rate(&blocks).unwrap_or(confirmed as f64 / secs.max(1e-9));
    if (confirmed as usize) < published {
        eprintln!("report: {} of {} payments confirmed", grouped(confirmed), grouped(published as u64));
    }
    let shed = fed.log().lines().filter(|l| l.contains("gossip ignored")).count();
    if shed > 0 {
        eprintln!("report: the fed node was busy and ignored gossip {shed} time(s) during the run");
    }
    ensure!(secs > 1.0 && confirmed > 0, "no payment confirmed ({secs:.1} s)\n{}", tails(&all));
    let (mut received, mut rebuilt) = (0, 0);
    for node in &nodes[1..] {
        let status = bins.cli_json(&["--node", &node.addr, "status"])?;
        let stats = status.get("compact_blocks").context("status without compact_blocks")?;
        received += stats.get("received").and_then(Value::as_u64).unwrap_or(0);
        rebuilt += stats.get("rebuilt_without_roundtrip").and_then(Value::as_u64).unwrap_or(0);
    }
    Ok(E2eFigures {
        nodes: node_count,
        tx_per_s: sustained,
        confirmed,
        secs,
        compact_received: received,
        compact_without_roundtrip: rebuilt,
    })
}

/// The payment blocks `node` connected since `since`: (time, payments).
fn confirmed_blocks(node: &Daemon, since: f64) -> Vec<(f64, u64)> {
    node.log()
        .lines()
        .filter_map(timestamped)
        .filter(|(time, text)| text.contains("new best block") && *time >= since)
        .filter_map(|(time, text)| Some((time, field(text, "txs")?.parse::<u64>().ok()?)))
        .filter(|(_, txs)| *txs > 0)
        .collect()
}

/// The sustained rate of confirmations: payments per second between the
/// blocks that took the count past a tenth and past nine tenths of the
/// total, so neither the ramp at the start nor the last block's wait counts.
fn sustained_rate(blocks: &[(f64, u64)]) -> Option<f64> {
    let total: u64 = blocks.iter().map(|(_, txs)| txs).sum();
    let mut sum = 0;
    let cumulative: Vec<(f64, u64)> = blocks
        .iter()
        .map(|&(time, txs)| {
            sum += txs;
            (time, sum)
        })
        .collect();
    let &(t10, c10) = cumulative.iter().find(|(_, c)| *c * 10 >= total)?;
    let &(t90, c90) = cumulative.iter().find(|(_, c)| *c * 10 >= total * 9)?;
    (t90 > t10).then(|| (c90 - c10) as f64 / (t90 - t10))
}

/// Where a bench peer dials `node`.
fn publisher_target(node: &Daemon) -> Result<libp2p::Multiaddr> {
    node.multiaddr.parse().context("the node's listen address")
}

/// The `q` quantile of sorted figures.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get((last as f64 * q).round() as usize).copied()
}

// ---- propagation ------------------------------------------------------------

struct PropagationFigures {
    blocks: usize,
    p50_ms: f64,
}

/// Five nodes in a line (each bootstraps from the one before), the first
/// mining. A block's propagation: from the moment its miner thread found it
/// until the last of the five connected it.
fn measure_propagation(options: &Options) -> Result<PropagationFigures> {
    let bins = Binaries::find(&options.bin_dir)?;
    let wallet_dir = tempfile::Builder::new().prefix("ourcoin-bench-wallet-").tempdir()?;
    let wallet = wallet_dir.path().join("wallet.json");
    let wallet = wallet.to_str().context("a UTF-8 temporary path")?;
    let created = bins.cli_json(&["--wallet", wallet, "wallet", "new"])?;
    let address = created.get("address").and_then(Value::as_str).context("`wallet new` printed no address")?;

    eprintln!("report: propagation along {LINE_NODES} nodes ({} blocks)", options.propagation_blocks);
    // The miner threads log each block they find at debug level, before it is connected.
    let miner_filter = "info,ourcoin::node::miner=debug";
    let mut nodes =
        vec![Daemon::start(&bins, NodeDir::new("P1")?, miner_filter, &["--mine", "--miner-address", address])?];
    for i in 2..=LINE_NODES {
        let previous = nodes.last().map(|node| node.multiaddr.clone()).unwrap_or_default();
        nodes.push(Daemon::start(&bins, NodeDir::new(&format!("P{i}"))?, "info", &["--bootstrap", &previous])?);
    }
    let all: Vec<&Daemon> = nodes.iter().collect();
    let common_tip = || {
        let tips: Option<Vec<(u64, String)>> = all.iter().map(|node| node.status(&bins).ok()).collect();
        tips.filter(|tips| tips.windows(2).all(|w| w[0] == w[1])).and_then(|tips| tips.into_iter().next())
    };
    // Ready once a block has gone down the whole line: every node then has its peers and gossip mesh.
    let measured = (|| {
        let first = wait_for("the five nodes to share a tip", START_DEADLINE, Duration::from_millis(100), common_tip)?;
        wait_for("the five nodes to share a later tip", START_DEADLINE, Duration::from_millis(100), || {
            common_tip().filter(|tip| tip.0 > first.0)
        })?;
        let ready = unix_now_secs_f64();
        let deadline = Duration::from_secs(30 + 3 * options.propagation_blocks as u64);
        wait_for("blocks to reach every node", deadline, LOG_POLL, || {
            let delays = propagation_delays(&all, ready);
            (delays.len() >= options.propagation_blocks).then_some(delays)
        })
    })();
    let delays = measured.map_err(|e| e.context(tails(&all)))?;
    let delays: Vec<f64> = delays.into_iter().take(options.propagation_blocks).collect();
    Ok(PropagationFigures { blocks: delays.len(), p50_ms: median(delays) * 1e3 })
}

/// The propagation delay (seconds) of each block the first node found after
/// `ready`, in height order, as far as every node has connected them.
fn propagation_delays(nodes: &[&Daemon], ready: f64) -> Vec<f64> {
    let logs: Vec<String> = nodes.iter().map(|node| node.log()).collect();
    let best: Vec<Vec<(f64, u64, &str)>> = logs.iter().map(|log| best_blocks(log)).collect();
    let Some(miner_log) = logs.first() else { return Vec::new() };
    // Each block's earliest "mined a block" line: the miner thread's, which has the height.
    let mut mined: Vec<(u64, f64)> = Vec::new();
    for (time, text) in miner_log.lines().filter_map(timestamped) {
        if !text.contains("mined a block") {
            continue;
        }
        let Some(hash) = field(text, "hash") else { continue };
        let height = field(text, "height")
            .and_then(|h| h.parse().ok())
            .or_else(|| best.first()?.iter().find(|(_, _, h)| *h == hash).map(|(_, height, _)| *height));
        if let Some(height) = height.filter(|height| !mined.iter().any(|(h, _)| h == height)) {
            mined.push((height, time));
        }
    }
    mined.retain(|(_, found)| *found > ready);
    mined.sort_by_key(|(height, _)| *height);
    let mut delays = Vec::new();
    for (height, found) in mined {
        // Blocks a node took in one batch are logged once, as its new tip.
        let connected: Option<Vec<f64>> =
            best.iter().map(|lines| lines.iter().find(|(_, h, _)| *h >= height).map(|(time, _, _)| *time)).collect();
        match connected {
            Some(times) => delays.push(times.into_iter().fold(f64::MIN, f64::max) - found),
            None => break,
        }
    }
    delays
}

/// The "new best block" lines of a log: (time, height, hash).
fn best_blocks(log: &str) -> Vec<(f64, u64, &str)> {
    log.lines()
        .filter_map(timestamped)
        .filter(|(_, text)| text.contains("new best block"))
        .filter_map(|(time, text)| Some((time, field(text, "height")?.parse().ok()?, field(text, "hash")?)))
        .collect()
}

/// A tracing line's time (Unix seconds) and the rest of it.
fn timestamped(line: &str) -> Option<(f64, &str)> {
    let (stamp, rest) = line.split_once(' ')?;
    Some((rfc3339_unix_seconds(stamp)?, rest))
}

/// The value of ` name=value` in a tracing line.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let at = text.find(&format!(" {name}="))? + name.len() + 2;
    text[at..].split_whitespace().next()
}

/// `2026-11-25T14:58:40.346198Z` as Unix seconds.
fn rfc3339_unix_seconds(stamp: &str) -> Option<f64> {
    let (date, time) = stamp.strip_suffix('Z')?.split_once('T')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let mut time = time.splitn(3, ':');
    let (hour, minute) = (time.next()?.parse::<i64>().ok()?, time.next()?.parse::<i64>().ok()?);
    let second: f64 = time.next()?.parse().ok()?;
    let whole = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60;
    Some(whole as f64 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day since 1970-01-01: the inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

// ---- the report -------------------------------------------------------------

struct Machine {
    cpu: String,
    cores: usize,
    memory_gib: f64,
}

impl Machine {
    fn read() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name")?.split_once(':').map(|(_, name)| name.trim().to_string()))
            .unwrap_or_else(|| "unknown CPU".to_string());
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cores: thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: kib / 1024.0 / 1024.0,
        }
    }
}

/// The JSON line, in the issue's order; `null` for what was not measured.
#[derive(serde::Serialize)]
struct Figures {
    pow_mhs_per_core: Option<f64>,
    pow_baseline_mhs: Option<f64>,
    block_verify_cached_us_per_tx: Option<f64>,
    block_verify_uncached_us_per_tx: Option<f64>,
    block_connect_us_per_tx: Option<f64>,
    blst_aggregate_verify_us_per_tx: Option<f64>,
    mempool_admit_tx_per_s: Option<f64>,
    single_verify_tx_per_s: Option<f64>,
    sync_blocks_per_s: Option<f64>,
    sync_tx_per_s: Option<f64>,
    /// `sync_tx_per_s` on the fixture whose payments all have their own sender.
    sync_distinct_tx_per_s: Option<f64>,
    propagation_ms_p50: Option<f64>,
    daemon_rss_mb: Option<f64>,
    /// `ourcoin-cli status` round trips to a node syncing the sender-per-payment fixture.
    sync_status_ms_p50: Option<f64>,
    sync_status_ms_p99: Option<f64>,
    sync_status_ms_max: Option<f64>,
    /// The same while a node validates a 5,000-payment block it never saw.
    validate_status_ms_p50: Option<f64>,
    validate_status_ms_p99: Option<f64>,
    validate_status_ms_max: Option<f64>,
    /// Seconds for a fresh node to sync the main fixture from one peer, two, and two with a silent liar.
    sync_one_peer_s: Option<f64>,
    sync_two_peers_s: Option<f64>,
    sync_with_liar_s: Option<f64>,
    /// Bytes of the block message per payment for a `BLOCK_PAYMENTS`-payment
    /// block whose payments were gossiped before, compact and in full.
    block_relay_bytes_per_tx: Option<f64>,
    block_relay_full_bytes_per_tx: Option<f64>,
    /// From publishing that compact block to the node reporting it connected.
    compact_block_connect_ms: Option<f64>,
    /// Share of compact blocks rebuilt without a round trip in the throughput run.
    compact_rebuild_no_roundtrip_ratio: Option<f64>,
    /// Confirmed payments per second on three nodes, and what the cores allow:
    /// cores / (nodes x blst_aggregate_verify_us_per_tx).
    e2e_tx_per_s: Option<f64>,
    e2e_limit_tx_per_s: Option<f64>,
    /// The same on five nodes (reported, not a target).
    e2e_5_nodes_tx_per_s: Option<f64>,
    e2e_5_nodes_limit_tx_per_s: Option<f64>,
}

/// p50, p99, max (ms) of sorted round trips, and their number.
fn latency(sorted: &[f64]) -> Option<(f64, f64, f64, usize)> {
    Some((quantile(sorted, 0.5)?, quantile(sorted, 0.99)?, quantile(sorted, 1.0)?, sorted.len()))
}

/// Figures of sync under load and among liars (reported, not targets).
struct Resilience {
    /// p50, p99, max (ms) and the number of polls.
    status_during_sync: Option<(f64, f64, f64, usize)>,
    status_during_validation: Option<(f64, f64, f64, usize)>,
    validation_s: Option<f64>,
    one_peer_s: Option<f64>,
    two_peers_s: Option<f64>,
    with_liar_s: Option<f64>,
}

impl Figures {
    fn complete(&self) -> bool {
        self.sync_blocks_per_s.is_some() && self.propagation_ms_p50.is_some()
    }
}

/// `20000` as `20,000`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Rounded to `decimals` places: the JSON carries what was measured, not float noise.
fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

struct Target {
    ratio: &'static str,
    value: Option<f64>,
    at_least: bool,
    bound: f64,
}

impl Target {
    fn passed(&self) -> Option<bool> {
        self.value.map(|value| if self.at_least { value >= self.bound } else { value <= self.bound })
    }

    fn verdict(&self) -> &'static str {
        if self.passed() == Some(true) {
            "PASS"
        } else {
            "MISS"
        }
    }

    fn measured(&self) -> String {
        self.value.map_or_else(|| "not measured".to_string(), |value| format!("{value:.3}"))
    }

    fn goal(&self) -> String {
        format!("{} {:?}", if self.at_least { ">=" } else { "<=" }, self.bound)
    }

    fn line(&self) -> String {
        format!("{}  {} = {} (target {})", self.verdict(), self.ratio, self.measured(), self.goal())
    }
}

struct Report {
    machine: Machine,
    date: String,
    quick: bool,
    rounds: usize,
    sha_ni: bool,
    sync: Option<(u64, u64)>,
    propagation_blocks: Option<usize>,
    figures: Figures,
    /// Status polls behind the `sync_status_ms_*` figures.
    status_polls: Option<usize>,
    /// Seconds to validate the large block, and the polls meanwhile.
    validation: Option<(f64, usize)>,
    /// Payments of the relayed compact block, and whether it needed no round trip.
    relay: Option<(usize, bool)>,
    /// Payments confirmed in the throughput window, its seconds, and the compact blocks received.
    e2e: Option<(u64, f64, u64)>,
    /// The same on `E2E_WIDE_NODES` nodes.
    e2e_wide: Option<(u64, f64, u64)>,
}

impl Report {
    fn new(
        machine: Machine,
        options: &Options,
        core: InProcess,
        sync: Option<SyncFigures>,
        propagation: Option<PropagationFigures>,
    ) -> Report {
        let (year, month, day) = civil_from_days((unix_now() / 86_400) as i64);
        let figures = Figures {
            pow_mhs_per_core: Some(rounded(core.pow_mhs_per_core, 2)),
            pow_baseline_mhs: Some(rounded(core.pow_baseline_mhs, 2)),
            block_verify_cached_us_per_tx: Some(rounded(core.block_verify_cached_us_per_tx, 3)),
            block_verify_uncached_us_per_tx: Some(rounded(core.block_verify_uncached_us_per_tx, 2)),
            block_connect_us_per_tx: Some(rounded(core.block_connect_us_per_tx, 2)),
            blst_aggregate_verify_us_per_tx: Some(rounded(core.blst_aggregate_verify_us_per_tx, 2)),
            mempool_admit_tx_per_s: Some(rounded(core.mempool_admit_tx_per_s, 1)),
            single_verify_tx_per_s: Some(rounded(core.single_verify_tx_per_s, 1)),
            sync_blocks_per_s: sync.as_ref().map(|s| rounded(s.blocks_per_s, 1)),
            sync_tx_per_s: sync.as_ref().map(|s| rounded(s.tx_per_s, 1)),
            sync_distinct_tx_per_s: None,
            propagation_ms_p50: propagation.as_ref().map(|p| rounded(p.p50_ms, 2)),
            daemon_rss_mb: sync.as_ref().map(|s| rounded(s.rss_mib, 1)),
            sync_status_ms_p50: None,
            sync_status_ms_p99: None,
            sync_status_ms_max: None,
            validate_status_ms_p50: None,
            validate_status_ms_p99: None,
            validate_status_ms_max: None,
            sync_one_peer_s: None,
            sync_two_peers_s: None,
            sync_with_liar_s: None,
            block_relay_bytes_per_tx: None,
            block_relay_full_bytes_per_tx: None,
            compact_block_connect_ms: None,
            compact_rebuild_no_roundtrip_ratio: None,
            e2e_tx_per_s: None,
            e2e_limit_tx_per_s: None,
            e2e_5_nodes_tx_per_s: None,
            e2e_5_nodes_limit_tx_per_s: None,
        };
        Report {
            machine,
            date: format!("{year:04}-{month:02}-{day:02}"),
            quick: options.quick,
            rounds: options.rounds,
            sha_ni: core.sha_ni,
            sync: sync.map(|s| (s.blocks, s.transactions)),
            propagation_blocks: propagation.map(|p| p.blocks),
            figures,
            status_polls: None,
            validation: None,
            relay: None,
            e2e: None,
            e2e_wide: None,
        }
    }

    fn set_relay(&mut self, r: &RelayFigures) {
        let f = &mut self.figures;
        f.block_relay_bytes_per_tx = Some(rounded(r.compact_bytes_per_tx, 2));
        f.block_relay_full_bytes_per_tx = Some(rounded(r.full_bytes_per_tx, 2));
        f.compact_block_connect_ms = Some(rounded(r.connect_ms, 1));
        self.relay = Some((r.payments, r.without_roundtrip));
    }

    /// The figures of a throughput run on `E2E_NODES` or `E2E_WIDE_NODES` nodes.
    fn set_e2e(&mut self, e: &E2eFigures) {
        let f = &mut self.figures;
        let rate = Some(rounded(e.tx_per_s, 1));
        let limit = f
            .blst_aggregate_verify_us_per_tx
            .map(|us| rounded(self.machine.cores as f64 / (e.nodes as f64 * us * 1e-6), 1));
        let run = Some((e.confirmed, e.secs, e.compact_received));
        if e.nodes != E2E_NODES {
            (f.e2e_5_nodes_tx_per_s, f.e2e_5_nodes_limit_tx_per_s) = (rate, limit);
            self.e2e_wide = run;
            return;
        }
        (f.e2e_tx_per_s, f.e2e_limit_tx_per_s) = (rate, limit);
        if e.compact_received > 0 {
            f.compact_rebuild_no_roundtrip_ratio =
                Some(rounded(e.compact_without_roundtrip as f64 / e.compact_received as f64, 3));
        }
        self.e2e = run;
    }

    fn set_resilience(&mut self, r: Resilience) {
        let f = &mut self.figures;
        if let Some((p50, p99, max, _)) = r.status_during_sync {
            (f.sync_status_ms_p50, f.sync_status_ms_p99, f.sync_status_ms_max) =
                (Some(rounded(p50, 1)), Some(rounded(p99, 1)), Some(rounded(max, 1)));
        }
        if let Some((p50, p99, max, _)) = r.status_during_validation {
            (f.validate_status_ms_p50, f.validate_status_ms_p99, f.validate_status_ms_max) =
                (Some(rounded(p50, 1)), Some(rounded(p99, 1)), Some(rounded(max, 1)));
        }
        self.validation = r.validation_s.zip(r.status_during_validation.map(|(_, _, _, n)| n));
        f.sync_one_peer_s = r.one_peer_s.map(|s| rounded(s, 2));
        f.sync_two_peers_s = r.two_peers_s.map(|s| rounded(s, 2));
        f.sync_with_liar_s = r.with_liar_s.map(|s| rounded(s, 2));
        self.status_polls = r.status_during_sync.map(|(_, _, _, n)| n);
    }

    /// Status latency during sync, and sync from several peers and among a liar: reported, not targets.
    fn resilience_lines(&self) -> Vec<String> {
        let f = &self.figures;
        let mut lines = Vec::new();
        match (f.sync_status_ms_p50, f.sync_status_ms_p99, f.sync_status_ms_max, self.status_polls) {
            (Some(p50), Some(p99), Some(max), Some(polls)) => lines.push(format!(
                "INFO  status while syncing the sender-per-payment fixture: p50 {p50} ms, p99 {p99} ms, max {max} ms ({polls} polls; goal p99 < 100 ms)"
            )),
            _ => lines.push("INFO  status while syncing: not measured".to_string()),
        }
        match (f.validate_status_ms_p50, f.validate_status_ms_p99, f.validate_status_ms_max, self.validation) {
            (Some(p50), Some(p99), Some(max), Some((secs, polls))) => lines.push(format!(
                "INFO  status while validating a {}-payment block it never saw ({secs:.2} s): p50 {p50} ms, p99 {p99} ms, max {max} ms ({polls} polls)",
                grouped(BLOCK_PAYMENTS as u64)
            )),
            _ => lines.push("INFO  status while validating a large block: not measured".to_string()),
        }
        match (f.sync_one_peer_s, f.sync_two_peers_s, f.sync_with_liar_s) {
            (Some(one), Some(two), Some(liar)) => lines.push(format!(
                "INFO  sync of the main fixture: one peer {one} s, two peers {two} s ({:.2} of one), two peers and a silent liar {liar} s ({:.2} of two)",
                two / one,
                liar / two
            )),
            _ => lines.push("INFO  sync from several peers: not measured".to_string()),
        }
        lines
    }

    /// The issue's targets, as ratios of the figures printed in the JSON.
    fn targets(&self) -> Vec<Target> {
        let f = &self.figures;
        let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
        let blst_tx_per_s = f.blst_aggregate_verify_us_per_tx.map(|us| 1e6 / us);
        vec![
            Target {
                ratio: "pow_mhs_per_core / pow_baseline_mhs",
                value: ratio(f.pow_mhs_per_core, f.pow_baseline_mhs),
                at_least: true,
                bound: 3.0,
            },
            Target {
                ratio: "block_verify_uncached_us_per_tx / block_verify_cached_us_per_tx",
                value: ratio(f.block_verify_uncached_us_per_tx, f.block_verify_cached_us_per_tx),
                at_least: true,
                bound: 50.0,
            },
            Target {
                ratio: "block_verify_uncached_us_per_tx / blst_aggregate_verify_us_per_tx",
                value: ratio(f.block_verify_uncached_us_per_tx, f.blst_aggregate_verify_us_per_tx),
                at_least: false,
                bound: 1.15,
            },
            Target {
                ratio: "mempool_admit_tx_per_s / single_verify_tx_per_s",
                value: ratio(f.mempool_admit_tx_per_s, f.single_verify_tx_per_s),
                at_least: true,
                bound: 2.5,
            },
            Target {
                ratio: "sync_tx_per_s / (1e6 / blst_aggregate_verify_us_per_tx)",
                value: ratio(f.sync_tx_per_s, blst_tx_per_s),
                at_least: true,
                bound: 0.8,
            },
            Target {
                ratio: "sync_distinct_tx_per_s / (1e6 / blst_aggregate_verify_us_per_tx)",
                value: ratio(f.sync_distinct_tx_per_s, blst_tx_per_s),
                at_least: true,
                bound: 0.9,
            },
            Target {
                ratio: "block_relay_bytes_per_tx",
                value: f.block_relay_bytes_per_tx,
                at_least: false,
                bound: 8.0,
            },
            Target {
                ratio: "compact_rebuild_no_roundtrip_ratio",
                value: f.compact_rebuild_no_roundtrip_ratio,
                at_least: true,
                bound: 0.95,
            },
            Target {
                ratio: "e2e_tx_per_s / e2e_limit_tx_per_s",
                value: ratio(f.e2e_tx_per_s, f.e2e_limit_tx_per_s),
                at_least: true,
                bound: 0.6,
            },
        ]
    }

    /// A section ready to paste into BENCHMARKS.md.
    fn markdown(&self) -> String {
        let f = &self.figures;
        let show = |value: Option<f64>, unit: &str| {
            value.map_or_else(|| "not measured".to_string(), |v| format!("{v} {unit}"))
        };
        let unknown = || "?".to_string();
        let (synced_blocks, synced_txs) =
            self.sync.map_or((unknown(), unknown()), |(blocks, txs)| (grouped(blocks), grouped(txs)));
        let propagated = self.propagation_blocks.map_or(unknown(), |n| n.to_string());
        let lanes = if self.sha_ni { format!("{LANES} SHA-NI lanes") } else { "no SHA-NI: the sha2 fallback".into() };
        let payments = grouped(BLOCK_PAYMENTS as u64);
        let rebuilt = match self.relay {
            Some((_, true)) => "rebuilt from the mempool without a round trip",
            Some((_, false)) => "NOT rebuilt without a round trip",
            None => "not measured",
        };
        let (e2e_confirmed, e2e_secs, e2e_blocks) = self
            .e2e
            .map_or((unknown(), unknown(), unknown()), |(c, s, b)| (grouped(c), format!("{s:.1}"), b.to_string()));
        let (wide_confirmed, wide_secs) =
            self.e2e_wide.map_or((unknown(), unknown()), |(c, s, _)| (grouped(c), format!("{s:.1}")));
        let rows: [(&str, String, String); 21] = [
            (
                "pow_mhs_per_core",
                show(f.pow_mhs_per_core, "M hashes/s"),
                format!("the miner's loop (`miner::mine`, {lanes}), one thread"),
            ),
            (
                "pow_baseline_mhs",
                show(f.pow_baseline_mhs, "M hashes/s"),
                "`BlockHeader::hash` (sha2 `Digest`, double SHA-256 of the whole header), one thread".into(),
            ),
            (
                "block_verify_uncached_us_per_tx",
                show(f.block_verify_uncached_us_per_tx, "µs"),
                format!(
                    "aggregate signature of a {payments}-payment block: `PairingCache::aggregate_verify`, \
                     empty cache, all cores"
                ),
            ),
            (
                "block_verify_cached_us_per_tx",
                show(f.block_verify_cached_us_per_tx, "µs"),
                "the same check after mempool admission of the payments (every pairing cached)".into(),
            ),
            (
                "blst_aggregate_verify_us_per_tx",
                show(f.blst_aggregate_verify_us_per_tx, "µs"),
                "the same block with blst's own `aggregate_verify` (`Signature::aggregate_verify`), all cores".into(),
            ),
            (
                "block_connect_us_per_tx",
                show(f.block_connect_us_per_tx, "µs"),
                "`Chain::accept_block` of that block (in-memory store, cache full): all of validation and connection"
                    .into(),
            ),
            (
                "mempool_admit_tx_per_s",
                show(f.mempool_admit_tx_per_s, "tx/s"),
                format!("`Mempool::add_batch` of the {payments} payments, filling the cache, all cores"),
            ),
            (
                "single_verify_tx_per_s",
                show(f.single_verify_tx_per_s, "tx/s"),
                format!(
                    "`Signature::verify` one after another on one thread ({SINGLE_VERIFIED} payments; blst runs \
                     part of each check on its pool)"
                ),
            ),
            (
                "sync_blocks_per_s",
                show(f.sync_blocks_per_s, "blocks/s"),
                format!(
                    "a fresh `ourcoind` syncing {synced_blocks} blocks from a peer over loopback, start to `status`"
                ),
            ),
            ("sync_tx_per_s", show(f.sync_tx_per_s, "tx/s"), format!("the same sync: {synced_txs} payments")),
            (
                "sync_distinct_tx_per_s",
                show(f.sync_distinct_tx_per_s, "tx/s"),
                format!(
                    "sync of a second fixture where every payment has its own sender (funded in \
                     {FUNDING_BLOCK_PAYMENTS}-payment blocks first, not timed)"
                ),
            ),
            (
                "propagation_ms_p50",
                show(f.propagation_ms_p50, "ms"),
                format!("found by node 1 until connected by all 5 nodes of a line, median of {propagated} blocks"),
            ),
            (
                "daemon_rss_mb",
                show(f.daemon_rss_mb, "MiB"),
                "resident memory (VmRSS) of the node that just synced".into(),
            ),
            (
                "block_relay_bytes_per_tx",
                show(f.block_relay_bytes_per_tx, "B"),
                format!(
                    "block message bytes a release node received (its own counter) for a {payments}-payment \
                     compact block whose payments it had by gossip, per payment ({rebuilt})"
                ),
            ),
            (
                "block_relay_full_bytes_per_tx",
                show(f.block_relay_full_bytes_per_tx, "B"),
                "the same block's full message, per payment".into(),
            ),
            (
                "compact_block_connect_ms",
                show(f.compact_block_connect_ms, "ms"),
                "from publishing that compact block to the node's `status` showing it connected (5 ms polls)".into(),
            ),
            (
                "e2e_tx_per_s",
                show(f.e2e_tx_per_s, "payments/s"),
                format!(
                    "{E2E_NODES} release nodes on loopback, one mining, payments from {E2E_PAYERS} senders gossiped \
                     to the second as fast as they confirm: {e2e_confirmed} confirmed in {e2e_secs} s"
                ),
            ),
            (
                "e2e_limit_tx_per_s",
                show(f.e2e_limit_tx_per_s, "payments/s"),
                format!("cores / ({E2E_NODES} nodes x `blst_aggregate_verify_us_per_tx`): each node checks each payment once"),
            ),
            (
                "e2e_5_nodes_tx_per_s",
                show(f.e2e_5_nodes_tx_per_s, "payments/s"),
                format!(
                    "the same on {E2E_WIDE_NODES} nodes (reported, not a target): {wide_confirmed} confirmed in \
                     {wide_secs} s"
                ),
            ),
            (
                "e2e_5_nodes_limit_tx_per_s",
                show(f.e2e_5_nodes_limit_tx_per_s, "payments/s"),
                format!("cores / ({E2E_WIDE_NODES} nodes x `blst_aggregate_verify_us_per_tx`)"),
            ),
            (
                "compact_rebuild_no_roundtrip_ratio",
                show(f.compact_rebuild_no_roundtrip_ratio, ""),
                format!("compact blocks the two other nodes rebuilt from their mempools alone, of {e2e_blocks} received"),
            ),
        ];
        let mut out = String::new();
        let _ = writeln!(out, "## {} — performance report (`scripts/bench.sh`)\n", self.date);
        let _ = writeln!(
            out,
            "Machine: `{}` (as `/proc/cpuinfo` names it), {} cores, {:.0} GiB; release profile, \
             `cargo bench --bench report`{}. Every figure is from the same run; in-process figures are \
             medians of {} interleaved rounds.\n",
            self.machine.cpu,
            self.machine.cores,
            self.machine.memory_gib,
            if self.quick { " --quick" } else { "" },
            self.rounds
        );
        let _ = writeln!(out, "| figure | value | what was measured |\n| --- | --- | --- |");
        for (name, value, what) in rows {
            let _ = writeln!(out, "| `{name}` | {value} | {what} |");
        }
        let _ = writeln!(out, "\n| target | measured | |\n| --- | --- | --- |");
        for target in self.targets() {
            let _ = writeln!(
                out,
                "| `{}` {} | {} | {} |",
                target.ratio,
                target.goal(),
                target.measured(),
                target.verdict()
            );
        }
        let _ = writeln!(out, "\nSync under load and among liars (not targets):\n");
        for line in self.resilience_lines() {
            let _ = writeln!(out, "    {line}");
        }
        out
    }
}
