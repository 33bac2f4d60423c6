//! The chain fed a sequence of mostly-valid blocks built from a few keys:
//! out of order, twice, on forks, tampered with. After every step the
//! ledger is what replaying the best chain from genesis gives, the stored
//! undo records are what that replay produced, and undoing every block and
//! connecting them again passes through exactly the ledgers of the replay.

use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};

use crate::chain::{block_work, Chain, ChainError, ChainStore, MemoryStore, NoSignatures};
use crate::miner::{assemble_block, mine, MineOutcome};
use crate::state::{self, MemoryLedger};
use crate::testkit::{fund, mine_block, regtest, TestKey};
use crate::types::{Amount, Block, BlockHash, Hash256, SignedTransaction};

const KEYS: usize = 3;
const NONCES: u64 = 8;
const AMOUNTS: [u64; 2] = [1_000_000, 20 * crate::types::COIN];
const FEE: u64 = 1_000;
/// Steps one input may take at most, so one run stays short.
const MAX_STEPS: usize = 24;

struct Base {
    chain: Chain<MemoryStore>,
    keys: Vec<TestKey>,
    /// `payments[key][nonce][amount]`, each to the next key.
    payments: Vec<Vec<Vec<SignedTransaction>>>,
}

/// A chain whose keys hold matured rewards, and their payments signed once.
fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let keys: Vec<TestKey> = (0..KEYS as u64).map(|seed| TestKey::new(700 + seed)).collect();
        let mut chain = Chain::open(regtest(), MemoryStore::default()).expect("an empty memory store opens");
        fund(&mut chain, &keys).expect("funding blocks connect");
        let payments = (0..KEYS)
            .map(|k| {
                let to = keys[(k + 1) % KEYS].address;
                (0..NONCES)
                    .map(|n| AMOUNTS.iter().map(|a| keys[k].pay(regtest().chain_id, to, *a, FEE, n)).collect())
                    .collect()
            })
            .collect();
        Base { chain, keys, payments }
    })
}

/// What the fuzzer does to a block after building it.
#[derive(Debug, Clone, Copy, arbitrary::Arbitrary)]
enum Tamper {
    None,
    Time(i8),
    Target(u32),
    Height(i8),
    Prev,
    CoinbaseAmount(i8),
    DropPayment,
    DuplicatePayment,
    DropSignature,
    /// The aggregate signature of another block.
    ForeignSignature(u8),
}

#[derive(Debug, Clone, Copy, arbitrary::Arbitrary)]
enum Step {
    /// A block on a parent: the tip, a block of the best chain, or one built before.
    Build { parent: u8, payments: u8, spec: [u8; 4], miner: u8, late: u8, tamper: Tamper, recommit: bool },
    /// Delivers a built block (in any order), unrequested or requested.
    Deliver { which: u8, unrequested: bool, early: bool },
    /// Delivers again a block that was already delivered.
    Duplicate { which: u8 },
}

struct Run {
    chain: Chain<MemoryStore>,
    built: Vec<Block>,
    pending: Vec<Block>,
    delivered: Vec<Block>,
}

pub fn chain(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let base = base();
    let mut run = Run { chain: base.chain.clone(), built: Vec::new(), pending: Vec::new(), delivered: Vec::new() };
    for _ in 0..MAX_STEPS {
        let Ok(step) = u.arbitrary::<Step>() else { break };
        if step_once(&mut run, base, step).is_err() {
            break;
        }
        check_chain(&run.chain);
    }
}

fn step_once(run: &mut Run, base: &Base, step: Step) -> Result<()> {
    match step {
        Step::Build { parent, payments, spec, miner, late, tamper, recommit } => {
            let chain = &run.chain;
            let parent_hash = match parent % 3 {
                0 => chain.tip(),
                1 => chain.best_hash_at(u64::from(parent / 3) % (chain.height() + 1)).unwrap_or(chain.tip()),
                _ => match run.built.len() {
                    0 => chain.tip(),
                    n => run.built[usize::from(parent / 3) % n].hash(),
                },
            };
            let Some(next) = chain.next_block_on(&parent_hash) else { return Ok(()) };
            let parent_time = chain.entry(&parent_hash).map_or(0, |e| e.header.time);
            let mut chosen = Vec::new();
            let mut next_nonce: Vec<u64> =
                base.keys.iter().map(|k| chain.account(&k.address).map(|a| a.nonce).unwrap_or(0)).collect();
            for s in spec.iter().take(usize::from(payments % 5)) {
                let key = usize::from(s & 0x3) % KEYS;
                // Mostly the key's next nonce at the tip; sometimes any.
                let nonce = if s & 0x80 == 0 { next_nonce[key] } else { u64::from(s >> 2 & 0x7) };
                let Some(payment) = base.payments[key].get(nonce as usize).map(|p| p[usize::from(s >> 5 & 1)]) else {
                    continue;
                };
                next_nonce[key] = nonce + 1;
                chosen.push(payment);
            }
            let miner_address = base.keys[usize::from(miner) % KEYS].address;
            let time = parent_time + regtest().block_time_secs + u64::from(late % 8);
            let Ok(block) = assemble_block(&next, time, miner_address, &chosen) else { return Ok(()) };
            let mut block = mine_block(block);
            if !matches!(tamper, Tamper::None) {
                apply_tamper(&mut block, tamper, &run.built);
                if recommit {
                    block.header.body_commitment = block.body.commitment();
                    block = mine_a_little(block);
                }
            }
            run.built.push(block.clone());
            run.pending.push(block);
        }
        Step::Deliver { which, unrequested, early } => {
            if run.pending.is_empty() {
                return Ok(());
            }
            let block = run.pending.remove(usize::from(which) % run.pending.len());
            // Far enough ahead for every test block, or exactly at the block's own time.
            let now = if early { block.header.time } else { block.header.time + 1_000_000 };
            accept(&mut run.chain, block.clone(), now, unrequested);
            run.delivered.push(block);
        }
        Step::Duplicate { which } => {
            if run.delivered.is_empty() {
                return Ok(());
            }
            let block = run.delivered[usize::from(which) % run.delivered.len()].clone();
            let now = block.header.time + 1_000_000;
            accept(&mut run.chain, block, now, false);
        }
    }
    Ok(())
}

/// Mines a tampered block with a bounded number of hashes: its target may be
/// one that no nonce meets (the block then goes out without proof of work).
fn mine_a_little(block: Block) -> Block {
    let never = AtomicBool::new(false);
    match mine(&block.header, 0, 1, 64, &never) {
        MineOutcome::Found(header) => Block { header, body: block.body },
        _ => block,
    }
}

fn apply_tamper(block: &mut Block, tamper: Tamper, built: &[Block]) {
    let header = &mut block.header;
    match tamper {
        Tamper::None => {}
        Tamper::Time(d) => header.time = header.time.saturating_add_signed(i64::from(d)),
        Tamper::Target(t) => header.target = crate::types::CompactTarget(t),
        Tamper::Height(d) => header.height = header.height.saturating_add_signed(i64::from(d)),
        Tamper::Prev => header.prev = BlockHash(Hash256([0x5a; 32])),
        Tamper::CoinbaseAmount(d) => {
            block.body.coinbase.amount = Amount(block.body.coinbase.amount.0.saturating_add_signed(i64::from(d)))
        }
        Tamper::DropPayment => {
            block.body.transactions.pop();
        }
        Tamper::DuplicatePayment => {
            if let Some(first) = block.body.transactions.first().copied() {
                block.body.transactions.push(first);
            }
        }
        Tamper::DropSignature => block.body.aggregate_signature = None,
        Tamper::ForeignSignature(i) => {
            let others: Vec<_> = built.iter().filter_map(|b| b.body.aggregate_signature).collect();
            if !others.is_empty() {
                block.body.aggregate_signature = Some(others[usize::from(i) % others.len()]);
            }
        }
    }
}

fn accept(chain: &mut Chain<MemoryStore>, block: Block, now: u64, unrequested: bool) {
    let result = if unrequested {
        chain.accept_unrequested_block(block, now, &NoSignatures)
    } else {
        chain.accept_block(block, now, &NoSignatures)
    };
    assert!(!matches!(result, Err(ChainError::Store(_))), "the memory store refused a write: {result:?}");
}

/// The invariants of a chain over the memory store.
pub fn check_chain(chain: &Chain<MemoryStore>) {
    let params = chain.params();
    let store = chain.store();
    let height = chain.height();
    assert_eq!(chain.best_hash_at(height), Some(chain.tip()), "the tip is the last block of the best chain");
    let mut replay = MemoryLedger::default();
    // The ledger after each height, and each block's undo record, from the replay.
    let mut ledgers = vec![replay.clone()];
    let mut undos = Vec::new();
    let mut updates = Vec::new();
    let mut previous: Option<(BlockHash, crate::crypto::Work)> = None;
    for h in 0..=height {
        let hash = chain.best_hash_at(h).expect("every height of the best chain has a block");
        let block = store.block(&hash).ok().flatten().expect("every block of the best chain is stored");
        assert_eq!(block.height(), h, "block {hash} at the wrong height");
        let entry = chain.entry(&hash).expect("every block of the best chain is indexed");
        assert!(!entry.invalid, "block {hash} of the best chain is marked invalid");
        assert!(chain.is_on_best_chain(&hash));
        if let Some((prev, prev_work)) = previous {
            assert_eq!(block.header.prev, prev, "block {hash} does not link to the best chain below it");
            let work = prev_work.checked_add(block_work(&block.header)).expect("work does not overflow");
            assert_eq!(entry.cumulative_work, work, "cumulative work at {h} is not the sum of the blocks' work");
            let snapshot = replay.snapshot_for(params, &block);
            let (update, undo) = state::connect_block(&snapshot, &block)
                .unwrap_or_else(|e| panic!("block {hash} of the best chain does not connect on replay: {e}"));
            replay.apply(&update);
            ledgers.push(replay.clone());
            assert_eq!(
                store.undo_record(&hash).ok().flatten().as_ref(),
                Some(&undo),
                "the stored undo of {hash} is not the replay's"
            );
            undos.push(undo);
            updates.push(update);
        }
        previous = Some((hash, entry.cumulative_work));
    }
    assert_eq!(chain.tip_work(), previous.map(|(_, w)| w).unwrap_or_default());
    assert!(store.ledger == replay, "the ledger is not the replay of the best chain from genesis");
    // Undo down to genesis, through each height's ledger, then redo.
    let mut ledger = store.ledger.clone();
    for (undo, before) in undos.iter().rev().zip(ledgers.iter().rev().skip(1)) {
        ledger.undo(undo);
        assert!(ledger == *before, "undoing block {} does not restore the ledger below it", undo.height);
    }
    for update in &updates {
        ledger.apply(update);
    }
    assert!(ledger == store.ledger, "undo then redo does not restore the ledger");
}
