//! The mempool under arbitrary sequences of additions (new, replacing,
//! gapped, badly signed, in batches), blocks connected and undone, and
//! expiry, with small bounds so that eviction happens: after each step its
//! invariants hold (`Mempool::check_invariants`), removals never open a gap,
//! and a template drawn from it is always a valid block.

use std::collections::HashMap;
use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};

use crate::chain::SignatureSource;
use crate::mempool::invariants::check_no_gap_created;
use crate::mempool::{Mempool, MempoolConfig};
use crate::state::Account;
use crate::testkit::{regtest, TestKey};
use crate::types::{Address, Amount, Block, BlockBody, Coinbase, SignatureBytes, SignedTransaction, Txid};

const SENDERS: usize = 3;
const NONCES: u64 = 12;
const FEES: [u64; 4] = [2_000, 5_000, 8_000, 11_000];
const AMOUNT: u64 = 100_000;
const SINK: Address = Address([0xee; 20]);
const MAX_STEPS: usize = 48;

/// `(sender, nonce, fee level)` to a payment, each signed once.
fn table() -> &'static HashMap<(usize, u64, usize), SignedTransaction> {
    static TABLE: OnceLock<HashMap<(usize, u64, usize), SignedTransaction>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut out = HashMap::new();
        for s in 0..SENDERS {
            let key = TestKey::new(800 + s as u64);
            for n in 0..NONCES {
                for (f, fee) in FEES.iter().enumerate() {
                    out.insert((s, n, f), key.pay(regtest().chain_id, SINK, AMOUNT, *fee, n));
                }
            }
        }
        out
    })
}

fn sender_address(s: usize) -> Address {
    table()[&(s, 0, 0)].tx.sender_address()
}

#[derive(Debug, Clone, Copy, arbitrary::Arbitrary)]
enum Op {
    Add {
        sender: u8,
        nonce: u8,
        fee: u8,
        wait: u16,
        bad_signature: bool,
    },
    /// Several at once, verified as one batch (as gossip does).
    AddBatch {
        items: [(u8, u8, u8); 4],
        count: u8,
    },
    /// A block of up to `count` payments chosen by `select`.
    Mine {
        count: u8,
    },
    /// A block with a payment of `sender` that the pool may not hold.
    MineExternal {
        sender: u8,
        fee: u8,
    },
    Expire {
        wait: u16,
    },
    /// Undoes the last block, its signatures known or not.
    Undo {
        signatures_known: bool,
    },
}

struct Known(HashMap<Txid, SignatureBytes>);

impl SignatureSource for Known {
    fn signature(&self, txid: &Txid) -> Option<SignatureBytes> {
        self.0.get(txid).copied()
    }
}

fn block_with(payments: &[SignedTransaction]) -> Block {
    Block {
        header: regtest().genesis.header,
        body: BlockBody {
            coinbase: Coinbase { height: 1, recipient: Address([0xcb; 20]), amount: Amount::ZERO },
            transactions: payments.iter().map(|p| p.tx).collect(),
            aggregate_signature: None,
        },
    }
}

/// The ledger after `payments`, or `None` when they are not a valid block.
fn apply(ledger: &HashMap<Address, Account>, payments: &[SignedTransaction]) -> Option<HashMap<Address, Account>> {
    let mut next = ledger.clone();
    for p in payments {
        let sender = next.get_mut(&p.tx.sender_address())?;
        if sender.nonce != p.tx.nonce {
            return None;
        }
        sender.balance = sender.balance.checked_sub(p.tx.total_spend()?)?;
        sender.nonce += 1;
    }
    Some(next)
}

fn pick(sender: u8, nonce: u8, fee: u8) -> SignedTransaction {
    table()[&(usize::from(sender) % SENDERS, u64::from(nonce) % NONCES, usize::from(fee) % FEES.len())]
}

pub fn mempool(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let config = MempoolConfig {
        max_count: u.int_in_range(1..=12)?,
        max_bytes: u.int_in_range(1..=12)? * 200,
        max_gapped: u.int_in_range(0..=6)?,
        expiry_secs: 3_000,
        ..MempoolConfig::default()
    };
    let mut pool = Mempool::new(regtest(), config);
    let mut ledger: HashMap<Address, Account> = (0..SENDERS)
        .map(|s| (sender_address(s), Account { balance: Amount(350_000 * (s as u64 + 1)), ..Account::default() }))
        .collect();
    let accounts = |ledger: &HashMap<Address, Account>| {
        let ledger = ledger.clone();
        move |a: &Address| ledger.get(a).copied().unwrap_or_default()
    };
    let mut undo: Vec<(Vec<SignedTransaction>, HashMap<Address, Account>)> = Vec::new();
    let mut now = 1_000u64;
    for _ in 0..MAX_STEPS {
        let Ok(op) = u.arbitrary::<Op>() else { break };
        let before = pool.nonce_runs();
        match op {
            Op::Add { sender, nonce, fee, wait, bad_signature } => {
                now += u64::from(wait);
                let mut stx = pick(sender, nonce, fee);
                if bad_signature {
                    stx.signature = pick(sender % SENDERS as u8 + 1, nonce, fee).signature;
                }
                let account = ledger[&stx.tx.sender_address()];
                match pool.add(stx, account, now) {
                    Ok(added) => {
                        assert!(!bad_signature, "a transaction with another's signature was admitted");
                        assert_eq!(added.ready, pool.is_ready(&stx.txid()));
                        assert!(added.evicted.iter().all(|id| !pool.contains(id)), "an evicted transaction stayed");
                        assert!(
                            added.promoted.iter().all(|id| pool.is_ready(id)),
                            "a promoted transaction is not ready"
                        );
                    }
                    Err(_) => assert!(
                        pool.get(&stx.txid()).is_none_or(|held| held.signature != stx.signature || !bad_signature),
                        "a refused signature is held"
                    ),
                }
                check_no_gap_created(&before, &pool.nonce_runs()).unwrap_or_else(|e| panic!("{e}"));
            }
            Op::AddBatch { items, count } => {
                let batch: Vec<(SignedTransaction, Account)> = items
                    .iter()
                    .take(usize::from(count % 5))
                    .map(|(s, n, f)| {
                        let stx = pick(*s, *n, *f);
                        (stx, ledger[&stx.tx.sender_address()])
                    })
                    .collect();
                let n = batch.len();
                assert_eq!(pool.add_batch(batch, now).len(), n, "one result per transaction");
                check_no_gap_created(&before, &pool.nonce_runs()).unwrap_or_else(|e| panic!("{e}"));
            }
            Op::Mine { count } => {
                let payments = pool.select(&accounts(&ledger), usize::MAX, usize::from(count % 5));
                let next =
                    apply(&ledger, &payments).unwrap_or_else(|| panic!("select chose an invalid block: {payments:?}"));
                let previous = std::mem::replace(&mut ledger, next);
                pool.remove_confirmed(&block_with(&payments), &accounts(&ledger));
                undo.push((payments, previous));
            }
            Op::MineExternal { sender, fee } => {
                let s = usize::from(sender) % SENDERS;
                let nonce = ledger[&sender_address(s)].nonce;
                if nonce >= NONCES {
                    continue;
                }
                let payments = vec![table()[&(s, nonce, usize::from(fee) % FEES.len())]];
                let Some(next) = apply(&ledger, &payments) else { continue };
                let previous = std::mem::replace(&mut ledger, next);
                pool.remove_confirmed(&block_with(&payments), &accounts(&ledger));
                undo.push((payments, previous));
            }
            Op::Expire { wait } => {
                now += u64::from(wait);
                pool.expire(now);
                check_no_gap_created(&before, &pool.nonce_runs()).unwrap_or_else(|e| panic!("{e}"));
                assert!(pool.iter().count() == pool.len());
            }
            Op::Undo { signatures_known } => {
                let Some((payments, previous)) = undo.pop() else { continue };
                ledger = previous;
                let known = Known(if signatures_known {
                    payments.iter().map(|p| (p.txid(), p.signature)).collect()
                } else {
                    HashMap::new()
                });
                pool.return_disconnected(&block_with(&payments), &known, &accounts(&ledger), now);
            }
        }
        pool.check_invariants(&accounts(&ledger)).unwrap_or_else(|e| panic!("after {op:?}: {e}"));
        let template = pool.select(&accounts(&ledger), usize::MAX, usize::MAX);
        assert!(apply(&ledger, &template).is_some(), "a template is not a valid block: {template:?}");
        let ready = pool.iter().filter(|s| pool.is_ready(&s.txid())).count();
        assert_eq!(template.len(), ready, "a template without bounds takes every ready transaction");
    }
    Ok(())
}
