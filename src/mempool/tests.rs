use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use proptest::prelude::*;

use super::*;
use crate::chain::NoSignatures;
use crate::testkit::{regtest, TestKey};
use crate::types::{BlockBody, ChainId, Coinbase};

const SINK: Address = Address([0xee; 20]);

fn chain() -> ChainId {
    regtest().chain_id
}

fn account(balance: u64, nonce: u64) -> Account {
    Account { balance: Amount(balance), immature: Amount::ZERO, nonce }
}

fn default_pool() -> Mempool {
    Mempool::new(regtest(), MempoolConfig::default())
}

fn pool_with(max_count: usize, max_bytes: usize) -> Mempool {
    Mempool::new(regtest(), MempoolConfig { max_count, max_bytes, ..MempoolConfig::default() })
}

/// A payment of 10 000 units to the sink.
fn pay(key: &TestKey, fee: u64, nonce: u64) -> SignedTransaction {
    key.pay(chain(), SINK, 10_000, fee, nonce)
}

/// The same transaction with a valid signature over something else.
fn with_bad_signature(stx: SignedTransaction) -> SignedTransaction {
    let key = TestKey::new(999);
    let other = key.pay(chain(), SINK, 1, 1, 0);
    SignedTransaction { tx: stx.tx, signature: other.signature }
}

/// A block holding `payments`; the pool looks at nothing else.
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

struct KnownSignatures(HashMap<Txid, SignatureBytes>);

impl SignatureSource for KnownSignatures {
    fn signature(&self, txid: &Txid) -> Option<SignatureBytes> {
        self.0.get(txid).copied()
    }
}

fn ledger_fn(ledger: &HashMap<Address, Account>) -> impl Fn(&Address) -> Account + '_ {
    |a| ledger.get(a).copied().unwrap_or_default()
}

fn nonces_of(pool: &Mempool, sender: &Address) -> Vec<u64> {
    pool.senders.get(sender).map(|q| q.by_nonce.keys().copied().collect()).unwrap_or_default()
}

/// Every index agrees with the entries, and the bounds hold.
fn assert_consistent(pool: &Mempool) {
    assert_eq!(pool.by_fee.len(), pool.entries.len());
    assert_eq!(pool.by_arrival.len(), pool.entries.len());
    assert_eq!(pool.bytes, pool.entries.values().map(|e| e.pool_bytes).sum::<usize>());
    assert_eq!(pool.bytes, pool.iter().map(|s| encode(s).len()).sum::<usize>());
    assert!(pool.len() <= pool.config.max_count);
    assert!(pool.bytes <= pool.config.max_bytes);
    let mut tails = BTreeSet::new();
    let mut queued = 0;
    for (sender, queue) in &pool.senders {
        assert!(!queue.by_nonce.is_empty(), "empty queues are dropped");
        for (nonce, txid) in &queue.by_nonce {
            let entry = &pool.entries[txid];
            assert_eq!(entry.sender, *sender);
            assert_eq!(entry.nonce(), *nonce);
            assert!(*nonce >= queue.account_nonce);
            assert!(*nonce <= queue.account_nonce + pool.config.max_future_nonces);
            queued += 1;
        }
        let tail = queue.tail().unwrap();
        tails.insert(pool.entries[&tail].fee_key(tail));
    }
    assert_eq!(queued, pool.entries.len());
    assert_eq!(tails, pool.tails);
    let gapped: usize = pool.senders.values().map(|q| q.by_nonce.len() - q.ready().len()).sum();
    assert_eq!(pool.gapped, gapped, "the gapped count follows every change");
    assert_eq!(pool.points.len(), pool.entries.len(), "one parsed signature per entry");
    assert!(pool.entries.keys().all(|id| pool.points.contains_key(id)));
    assert!(pool.gapped <= pool.config.max_gapped);
    for (txid, entry) in &pool.entries {
        assert!(pool.by_fee.contains(&entry.fee_key(*txid)));
        assert!(pool.by_arrival.contains(&(entry.added_at, *txid)));
        assert!(pool.by_recipient[&entry.stx.tx.recipient].contains(txid));
    }
    assert_eq!(pool.by_recipient.values().map(BTreeSet::len).sum::<usize>(), pool.entries.len());
}

/// A transaction is ready exactly when every nonce from its sender's account
/// nonce up to its own is pending.
fn assert_readiness(pool: &Mempool, ledger: &HashMap<Address, Account>) {
    for (sender, queue) in &pool.senders {
        let account_nonce = ledger.get(sender).copied().unwrap_or_default().nonce;
        assert_eq!(queue.account_nonce, account_nonce, "the queue follows the ledger");
        for (nonce, txid) in &queue.by_nonce {
            let run_complete = (account_nonce..=*nonce).all(|n| queue.by_nonce.contains_key(&n));
            assert_eq!(pool.is_ready(txid), run_complete, "nonce {nonce} of a sender at {account_nonce}");
        }
        let spends = Amount::checked_sum(queue.by_nonce.values().map(|id| pool.entries[id].spend)).unwrap();
        assert!(spends <= ledger[sender].balance, "pending spends stay covered");
    }
}

/// Removing transactions (eviction, expiry) only ever takes the top of a
/// sender's sequence: whatever was removed lies above whatever remains.
fn assert_no_gap_created(before: &BTreeMap<Address, Vec<u64>>, pool: &Mempool) {
    for (sender, old) in before {
        let now: BTreeSet<u64> = nonces_of(pool, sender).into_iter().collect();
        let removed: Vec<u64> = old.iter().filter(|n| !now.contains(n)).copied().collect();
        let kept: Vec<u64> = old.iter().filter(|n| now.contains(n)).copied().collect();
        if let (Some(lowest_removed), Some(highest_kept)) = (removed.iter().min(), kept.iter().max()) {
            assert!(highest_kept < lowest_removed, "gap created: kept {kept:?}, removed {removed:?}");
        }
    }
}

fn snapshot(pool: &Mempool) -> BTreeMap<Address, Vec<u64>> {
    pool.senders.keys().map(|s| (*s, nonces_of(pool, s))).collect()
}

// ---------------------------------------------------------------- admission

#[test]
fn admission_refusals_name_the_broken_rule() {
    let key = TestKey::new(1);
    let rich = account(1_000_000, 5);
    let wrong_chain = key.pay(ChainId(chain().0 ^ 1), SINK, 10_000, 2_000, 5);
    let cases: Vec<(&str, SignedTransaction, Account, ValidationError)> = vec![
        (
            "wrong chain id",
            wrong_chain,
            rich,
            ValidationError::WrongChainId { expected: chain().0, found: chain().0 ^ 1 },
        ),
        ("zero amount", key.pay(chain(), SINK, 0, 2_000, 5), rich, ValidationError::ZeroAmount),
        ("amount overflow", key.pay(chain(), SINK, u64::MAX, 2_000, 5), rich, ValidationError::AmountOverflow),
        (
            "fee below the minimum",
            pay(&key, 999, 5),
            rich,
            ValidationError::FeeBelowMinimum { minimum: MIN_RELAY_FEE, found: Amount(999) },
        ),
        ("stale nonce", pay(&key, 2_000, 4), rich, ValidationError::NonceTooLow { expected: 5, found: 4 }),
        (
            "nonce 17 ahead",
            pay(&key, 2_000, 5 + 17),
            rich,
            ValidationError::NonceTooFarAhead { expected: 5, found: 22, limit: 16 },
        ),
        (
            "balance too low",
            pay(&key, 2_000, 5),
            account(11_999, 5),
            ValidationError::InsufficientBalance { balance: Amount(11_999), needed: Amount(12_000) },
        ),
        (
            "only immature rewards would pay",
            pay(&key, 2_000, 5),
            Account { balance: Amount(11_999), immature: Amount(1), nonce: 5 },
            ValidationError::SpendsImmatureReward { balance: Amount(11_999), needed: Amount(12_000) },
        ),
        ("bad signature", with_bad_signature(pay(&key, 2_000, 5)), rich, ValidationError::BadSignature),
    ];
    for (name, stx, sender_account, expected) in cases {
        let mut pool = default_pool();
        assert_eq!(pool.add(stx, sender_account, 0), Err(expected), "{name}");
        assert!(pool.is_empty(), "{name}: nothing admitted");
    }
}

#[test]
fn cheap_rules_are_checked_before_the_signature() {
    // Each transaction carries a bad signature yet fails a cheap rule: the
    // cheap rule is what is reported, so no pairing was spent on it.
    let key = TestKey::new(1);
    let mut pool = pool_with(1, usize::MAX);
    let incumbent = pay(&key, 50_000, 0);
    pool.add(incumbent, account(1_000_000, 0), 0).unwrap();
    let rich = account(1_000_000, 0);
    let other = TestKey::new(2);
    let cases: Vec<(&str, SignedTransaction, ValidationError)> = vec![
        ("already pending", incumbent, ValidationError::AlreadyInMempool),
        (
            "fee below the minimum",
            with_bad_signature(pay(&other, 10, 0)),
            ValidationError::FeeBelowMinimum { minimum: MIN_RELAY_FEE, found: Amount(10) },
        ),
        (
            "stale nonce",
            with_bad_signature(pay(&other, 2_000, 0)),
            ValidationError::NonceTooLow { expected: 3, found: 0 },
        ),
        (
            "replacement fee too low",
            with_bad_signature(pay(&key, 50_001, 0)),
            ValidationError::ReplacementFeeTooLow { required: Amount(55_000), found: Amount(50_001) },
        ),
        (
            "pending spends exceed the balance",
            with_bad_signature(key.pay(chain(), SINK, 1_000_000 - 60_000, 2_000, 1)),
            ValidationError::PendingSpendsExceedBalance { balance: Amount(1_000_000), needed: Amount(1_002_000) },
        ),
        ("pool full", with_bad_signature(pay(&other, 2_000, 3)), ValidationError::MempoolFull),
    ];
    for (name, stx, expected) in cases {
        let sender_account = if stx.tx.sender == other.public { account(1_000_000, 3) } else { rich };
        assert_eq!(pool.add(stx, sender_account, 0), Err(expected), "{name}");
    }
    // With enough fee to evict, only the signature is left to fail, and the
    // incumbent is not evicted for a transaction that never gets in.
    let bad = with_bad_signature(pay(&other, 90_000, 3));
    assert_eq!(pool.add(bad, account(1_000_000, 3), 0), Err(ValidationError::BadSignature));
    assert!(pool.contains(&incumbent.txid()));
    assert_consistent(&pool);
}

#[test]
fn a_transaction_already_pending_is_refused() {
    let key = TestKey::new(1);
    let mut pool = default_pool();
    let stx = pay(&key, 2_000, 0);
    pool.add(stx, account(100_000, 0), 0).unwrap();
    assert_eq!(pool.add(stx, account(100_000, 0), 0), Err(ValidationError::AlreadyInMempool));
    assert_eq!(pool.len(), 1);
}

// ------------------------------------------------------------ nonce sequences

#[test]
fn future_nonces_are_kept_but_not_ready_until_the_gap_fills() {
    let key = TestKey::new(1);
    let mut pool = default_pool();
    let funds = account(1_000_000, 0);
    let (t0, t1, t2) = (pay(&key, 2_000, 0), pay(&key, 2_000, 1), pay(&key, 2_000, 2));

    let added = pool.add(t2, funds, 0).unwrap();
    assert!(!added.ready);
    let added = pool.add(t1, funds, 0).unwrap();
    assert!(!added.ready && added.promoted.is_empty());
    assert!(!pool.is_ready(&t1.txid()) && !pool.is_ready(&t2.txid()));
    assert_eq!(pool.next_nonce(&key.address, 0), 0, "the run from the account nonce is empty");
    assert!(pool.select(&|_| funds, usize::MAX, usize::MAX).is_empty(), "a gap is never mined");

    let added = pool.add(t0, funds, 0).unwrap();
    assert!(added.ready);
    assert_eq!(added.promoted, vec![t1.txid(), t2.txid()]);
    assert!(pool.is_ready(&t1.txid()) && pool.is_ready(&t2.txid()));
    assert_eq!(pool.next_nonce(&key.address, 0), 3);
    assert_eq!(pool.select(&|_| funds, usize::MAX, usize::MAX), vec![t0, t1, t2]);
    assert_consistent(&pool);
}

#[test]
fn sixteen_nonces_ahead_are_kept_and_seventeen_refused() {
    let key = TestKey::new(1);
    let mut pool = default_pool();
    let funds = account(1_000_000, 3);
    assert!(pool.add(pay(&key, 2_000, 3 + 16), funds, 0).is_ok());
    assert_eq!(
        pool.add(pay(&key, 2_000, 3 + 17), funds, 0),
        Err(ValidationError::NonceTooFarAhead { expected: 3, found: 20, limit: 16 })
    );
}

#[test]
fn a_replacement_needs_a_fee_ten_percent_higher() {
    let key = TestKey::new(1);
    let mut pool = default_pool();
    let funds = account(1_000_000, 0);
    let old = pay(&key, 10_000, 0);
    pool.add(old, funds, 0).unwrap();

    let nine_percent = pay(&key, 10_900, 0);
    assert_eq!(
        pool.add(nine_percent, funds, 0),
        Err(ValidationError::ReplacementFeeTooLow { required: Amount(11_000), found: Amount(10_900) })
    );
    assert!(pool.contains(&old.txid()));

    let ten_percent = pay(&key, 11_000, 0);
    let added = pool.add(ten_percent, funds, 0).unwrap();
    assert_eq!(added.replaced, Some(old.txid()));
    assert!(added.ready);
    assert!(!pool.contains(&old.txid()));
    assert_eq!(pool.get(&ten_percent.txid()), Some(&ten_percent));
    assert_eq!(pool.len(), 1);
    assert_consistent(&pool);
}

#[test]
fn the_replacement_fee_rounds_up_and_never_overflows() {
    assert_eq!(replacement_fee(Amount(10_000)), 11_000);
    // 1.1 * 1 005 = 1 105.5: a fee of 1 105 would be less than 10% more.
    assert_eq!(replacement_fee(Amount(1_005)), 1_106);
    assert!(replacement_fee(Amount(u64::MAX)) > u128::from(u64::MAX));
}

#[test]
fn a_replacement_may_change_the_amount_within_the_balance() {
    let key = TestKey::new(1);
    let mut pool = default_pool();
    let funds = account(100_000, 0);
    pool.add(key.pay(chain(), SINK, 50_000, 2_000, 0), funds, 0).unwrap();
    pool.add(key.pay(chain(), SINK, 40_000, 2_000, 1), funds, 0).unwrap();
    // Replacing nonce 0 with a larger payment counts the new spend, not the old.
    assert_eq!(
        pool.add(key.pay(chain(), SINK, 58_000, 2_200, 0), funds, 0),
        Err(ValidationError::PendingSpendsExceedBalance { balance: Amount(100_000), needed: Amount(102_200) })
    );
    assert!(pool.add(key.pay(chain(), SINK, 55_000, 2_200, 0), funds, 0).is_ok());
    assert_eq!(pool.pending_for(&key.address).1, Amount(55_000 + 2_200 + 42_000));
}

#[test]
fn pending_spends_together_must_fit_the_balance() {
    let key = TestKey::new(1);
    let mut pool = default_pool();
    let funds = account(100_000, 0);
    pool.add(key.pay(chain(), SINK, 50_000, 1_000, 0), funds, 0).unwrap();
    // Each alone is affordable; both together are not, whatever the nonce order.
    assert_eq!(
        pool.add(key.pay(chain(), SINK, 50_000, 1_000, 1), funds, 0),
        Err(ValidationError::PendingSpendsExceedBalance { balance: Amount(100_000), needed: Amount(102_000) })
    );
    assert_eq!(
        pool.add(key.pay(chain(), SINK, 50_000, 1_000, 7), funds, 0),
        Err(ValidationError::PendingSpendsExceedBalance { balance: Amount(100_000), needed: Amount(102_000) })
    );
    assert!(pool.add(key.pay(chain(), SINK, 48_000, 1_000, 1), funds, 0).is_ok());
    assert_eq!(pool.len(), 2);
}

#[test]
fn adding_brings_the_senders_queue_to_the_callers_tip() {
    let key = TestKey::new(1);
    let mut pool = default_pool();
    let (t0, t1) = (pay(&key, 2_000, 0), pay(&key, 2_000, 1));
    pool.add(t0, account(100_000, 0), 0).unwrap();
    pool.add(t1, account(100_000, 0), 0).unwrap();
    // The caller's tip has a block with nonce 0 that the pool has not heard of.
    let added = pool.add(pay(&key, 2_000, 2), account(88_000, 1), 0).unwrap();
    assert!(added.ready);
    assert!(!pool.contains(&t0.txid()), "its nonce is used: dropped");
    assert!(pool.is_ready(&t1.txid()));
    assert_consistent(&pool);
}

// ------------------------------------------------------------------ selection

#[test]
fn select_takes_the_highest_fees_in_each_senders_nonce_order() {
    let (a, b, c) = (TestKey::new(1), TestKey::new(2), TestKey::new(3));
    let mut pool = default_pool();
    let funds = account(1_000_000, 0);
    let a0 = pay(&a, 2_000, 0);
    let a1 = pay(&a, 9_000, 1);
    let b0 = pay(&b, 5_000, 0);
    let c0 = pay(&c, 3_000, 0);
    let c2 = pay(&c, 50_000, 2);
    for stx in [a1, c2, a0, b0, c0] {
        pool.add(stx, funds, 0).unwrap();
    }
    // a1 pays most but waits for a0; c2 waits for a c1 that never came.
    assert_eq!(pool.select(&|_| funds, usize::MAX, usize::MAX), vec![b0, c0, a0, a1]);
    assert_eq!(pool.select(&|_| funds, usize::MAX, 2), vec![b0, c0], "the count budget");
    let one = encode(&b0.tx).len();
    assert_eq!(pool.select(&|_| funds, one, usize::MAX), vec![b0], "the byte budget, without signatures");
    assert_eq!(pool.txids(2), vec![c2.txid(), a1.txid()], "highest fee first");
    assert_eq!(pool.txids(10).len(), 5);
}

#[test]
fn select_never_spends_more_than_a_senders_balance_at_the_tip() {
    let key = TestKey::new(1);
    let mut pool = default_pool();
    let (t0, t1, t2) = (pay(&key, 2_000, 0), pay(&key, 2_000, 1), pay(&key, 2_000, 2));
    for stx in [t0, t1, t2] {
        pool.add(stx, account(1_000_000, 0), 0).unwrap();
    }
    // The tip the template builds on has less money than when they came in.
    assert_eq!(pool.select(&|_| account(24_000, 0), usize::MAX, usize::MAX), vec![t0, t1]);
    // And a tip where nonce 0 is already used starts at nonce 1.
    assert_eq!(pool.select(&|_| account(1_000_000, 1), usize::MAX, usize::MAX), vec![t1, t2]);
}

// ------------------------------------------------------------ bounds, eviction

#[test]
fn a_full_pool_evicts_the_lowest_fee_from_the_highest_nonce_down() {
    let (a, b, c) = (TestKey::new(1), TestKey::new(2), TestKey::new(3));
    let mut pool = pool_with(4, usize::MAX);
    let funds = account(1_000_000, 0);
    let a_txs: Vec<_> = [9_000, 8_000, 1_500, 7_000].iter().zip(0..).map(|(fee, n)| pay(&a, *fee, n)).collect();
    for stx in &a_txs {
        pool.add(*stx, funds, 0).unwrap();
    }
    // a2 pays least, but a3 stands on it: only a3 may go, and b pays less than a3.
    assert_eq!(pool.add(pay(&b, 6_999, 0), funds, 0), Err(ValidationError::MempoolFull));
    assert_eq!(pool.add(pay(&b, 7_000, 0), funds, 0), Err(ValidationError::MempoolFull), "ties keep the incumbent");

    let before = snapshot(&pool);
    let added = pool.add(pay(&b, 7_500, 0), funds, 0).unwrap();
    assert_eq!(added.evicted, vec![a_txs[3].txid()]);
    assert_no_gap_created(&before, &pool);

    // Now a2 is a's top and the lowest fee of all tops.
    let before = snapshot(&pool);
    let added = pool.add(pay(&c, 2_000, 0), funds, 0).unwrap();
    assert_eq!(added.evicted, vec![a_txs[2].txid()]);
    assert_no_gap_created(&before, &pool);
    assert_eq!(nonces_of(&pool, &a.address), vec![0, 1]);
    assert_consistent(&pool);
}

fn pool_with_gapped_cap(max_count: usize, max_gapped: usize) -> Mempool {
    Mempool::new(regtest(), MempoolConfig { max_count, max_gapped, ..MempoolConfig::default() })
}

#[test]
fn high_fee_gapped_payments_never_push_out_ready_ones() {
    // The attack: future-nonce payments that can never be mined, at a high
    // fee, filling a full pool of honest ready payments.
    let honest: Vec<TestKey> = (1..=4).map(TestKey::new).collect();
    let attacker = TestKey::new(9);
    let mut pool = pool_with_gapped_cap(4, 2);
    let funds = account(1_000_000, 0);
    for key in &honest {
        pool.add(pay(key, 2_000, 0), funds, 0).unwrap();
    }
    // Nonce 1 with nonce 0 missing: gapped, and the pool is full of ready ones.
    assert_eq!(pool.add(pay(&attacker, 90_000, 1), funds, 0), Err(ValidationError::MempoolFull));
    assert_eq!(pool.len(), 4);
    assert!(honest.iter().all(|k| nonces_of(&pool, &k.address) == vec![0]));
    assert_consistent(&pool);
}

#[test]
fn gapped_payments_have_a_cap_of_their_own_and_go_first() {
    let (a, b, c) = (TestKey::new(1), TestKey::new(2), TestKey::new(3));
    let mut pool = pool_with_gapped_cap(10, 2);
    let funds = account(1_000_000, 0);
    let a1 = pay(&a, 50_000, 1);
    let b1 = pay(&b, 60_000, 1);
    pool.add(a1, funds, 0).unwrap();
    pool.add(b1, funds, 0).unwrap();
    assert_eq!(pool.gapped_count(), 2);
    // A third gapped payment must outbid the cheapest gapped one, and takes its place.
    assert_eq!(pool.add(pay(&c, 50_000, 1), funds, 0), Err(ValidationError::MempoolFull));
    let added = pool.add(pay(&c, 55_000, 1), funds, 0).unwrap();
    assert_eq!(added.evicted, vec![a1.txid()]);
    assert_eq!(pool.gapped_count(), 2);
    assert_consistent(&pool);

    // A full pool: a ready newcomer evicts gapped ones first, whatever they pay.
    let mut full = pool_with_gapped_cap(3, 2);
    let d = TestKey::new(4);
    full.add(pay(&d, 1_500, 0), funds, 0).unwrap();
    full.add(a1, funds, 0).unwrap();
    full.add(b1, funds, 0).unwrap();
    let added = full.add(pay(&c, 1_200, 0), funds, 0).unwrap();
    assert_eq!(added.evicted, vec![a1.txid()], "the cheapest gapped one goes, not the cheaper ready one");
    assert_eq!(nonces_of(&full, &d.address), vec![0]);
    assert_consistent(&full);
}

#[test]
fn the_kept_signature_points_aggregate_as_the_bytes_do() {
    let keys: Vec<TestKey> = (1..=5).map(TestKey::new).collect();
    let mut pool = default_pool();
    let funds = account(1_000_000, 0);
    let payments: Vec<SignedTransaction> = keys.iter().map(|k| pay(k, 2_000, 0)).collect();
    // Admitted one by one, in a batch, and as previously verified: every path keeps its point.
    pool.add(payments[0], funds, 0).unwrap();
    let batch: Vec<_> = payments[1..4].iter().map(|p| (*p, funds)).collect();
    assert!(pool.add_batch(batch, 0).iter().all(Result::is_ok));
    pool.add_previously_verified(payments[4], funds, 0).unwrap();
    assert_consistent(&pool);
    let from_points = pool.aggregate_signature(&payments).unwrap().unwrap();
    let parsed: Vec<crate::crypto::Signature> =
        payments.iter().map(|p| crate::crypto::Signature::from_bytes(&p.signature).unwrap()).collect();
    assert_eq!(from_points, crate::crypto::Signature::aggregate(&parsed).unwrap());
    assert_eq!(pool.aggregate_signature(&[]).unwrap(), None);
}

#[test]
fn filling_a_gap_makes_payments_ready_and_the_count_follows() {
    let a = TestKey::new(1);
    let mut pool = pool_with_gapped_cap(10, 3);
    let funds = account(1_000_000, 0);
    pool.add(pay(&a, 2_000, 2), funds, 0).unwrap();
    pool.add(pay(&a, 2_000, 1), funds, 0).unwrap();
    assert_eq!(pool.gapped_count(), 2);
    pool.add(pay(&a, 2_000, 0), funds, 0).unwrap();
    assert_eq!(pool.gapped_count(), 0);
    assert_consistent(&pool);
}

#[test]
fn a_newcomer_never_evicts_its_own_predecessors() {
    let key = TestKey::new(1);
    let mut pool = pool_with(2, usize::MAX);
    let funds = account(1_000_000, 0);
    pool.add(pay(&key, 2_000, 0), funds, 0).unwrap();
    pool.add(pay(&key, 3_000, 1), funds, 0).unwrap();
    // It would stand on nonces 0 and 1: evicting either leaves it with a gap.
    assert_eq!(pool.add(pay(&key, 90_000, 2), funds, 0), Err(ValidationError::MempoolFull));
    // Filling a gap below the top evicts the top instead, when that pays less.
    let mut pool = pool_with(2, usize::MAX);
    pool.add(pay(&key, 2_000, 0), funds, 0).unwrap();
    let top = pay(&key, 3_000, 2);
    pool.add(top, funds, 0).unwrap();
    let added = pool.add(pay(&key, 5_000, 1), funds, 0).unwrap();
    assert_eq!(added.evicted, vec![top.txid()]);
    assert_eq!(nonces_of(&pool, &key.address), vec![0, 1]);
    assert_consistent(&pool);
}

#[test]
fn eviction_may_take_several_transactions_down_one_sequence() {
    let (a, b) = (TestKey::new(1), TestKey::new(2));
    let size = encode(&pay(&a, 2_000, 0)).len();
    let mut pool = pool_with(usize::MAX, 3 * size);
    let funds = account(1_000_000, 0);
    for (fee, n) in [(5_000, 0), (3_000, 1), (2_000, 2)] {
        pool.add(pay(&a, fee, n), funds, 0).unwrap();
    }
    assert_eq!(pool.bytes(), 3 * size);
    // A larger payment of b's (a bigger amount encodes longer) needs two slots.
    let big = b.pay(chain(), SINK, u64::MAX / 4, 4_000, 0);
    let big_size = encode(&big).len();
    assert!(big_size > size, "{big_size} vs {size}");
    let added = pool.add(big, account(u64::MAX, 0), 0).unwrap();
    assert_eq!(added.evicted.len(), 2);
    assert_eq!(nonces_of(&pool, &a.address), vec![0]);
    assert!(pool.bytes() <= 3 * size);
    assert_consistent(&pool);
}

#[test]
fn the_byte_bound_holds() {
    let (a, b) = (TestKey::new(1), TestKey::new(2));
    let size = encode(&pay(&a, 2_000, 0)).len();
    let mut pool = pool_with(usize::MAX, 2 * size);
    let funds = account(1_000_000, 0);
    pool.add(pay(&a, 2_000, 0), funds, 0).unwrap();
    pool.add(pay(&a, 3_000, 1), funds, 0).unwrap();
    assert_eq!(pool.add(pay(&b, 2_500, 0), funds, 0), Err(ValidationError::MempoolFull));
    let added = pool.add(pay(&b, 3_500, 0), funds, 0).unwrap();
    assert_eq!(added.evicted.len(), 1);
    assert_eq!(pool.bytes(), 2 * size);
    // A pool too small for even one transaction takes none.
    let mut tiny = pool_with(usize::MAX, size - 1);
    assert_eq!(tiny.add(pay(&a, 2_000, 0), funds, 0), Err(ValidationError::MempoolFull));
}

// ---------------------------------------------------------------------- expiry

#[test]
fn entries_expire_with_their_successors() {
    let (a, b) = (TestKey::new(1), TestKey::new(2));
    let mut pool = default_pool();
    let funds = account(1_000_000, 0);
    let a0 = pay(&a, 2_000, 0);
    let a1 = pay(&a, 2_000, 1);
    let b0 = pay(&b, 2_000, 0);
    let b1 = pay(&b, 2_000, 1);
    pool.add(a0, funds, 100).unwrap();
    pool.add(a1, funds, 200).unwrap();
    pool.add(b1, funds, 50).unwrap();
    pool.add(b0, funds, 300).unwrap();

    assert!(pool.expire(EXPIRY_SECS + 49).is_empty(), "nothing is a day old yet");
    // b1 expires alone: it is b's top.
    assert_eq!(pool.expire(EXPIRY_SECS + 50), vec![b1.txid()]);
    // a0 expires and takes a1, younger but unminable without it.
    let before = snapshot(&pool);
    assert_eq!(pool.expire(EXPIRY_SECS + 100), vec![a1.txid(), a0.txid()]);
    assert_no_gap_created(&before, &pool);
    assert_eq!(pool.iter().collect::<Vec<_>>(), vec![&b0]);
    assert!(pool.expire(5).is_empty(), "an early clock expires nothing");
    assert_consistent(&pool);
}

// -------------------------------------------------------------- block changes

#[test]
fn a_connected_block_removes_its_transactions_and_what_it_made_stale() {
    let (a, b) = (TestKey::new(1), TestKey::new(2));
    let mut pool = default_pool();
    let funds = account(100_000, 0);
    let a0 = pay(&a, 2_000, 0);
    let a1 = pay(&a, 2_000, 1);
    let a2 = pay(&a, 2_000, 2);
    let b1 = pay(&b, 2_000, 1);
    for stx in [a0, a1, a2] {
        pool.add(stx, funds, 0).unwrap();
    }
    pool.add(b1, funds, 0).unwrap();
    assert!(!pool.is_ready(&b1.txid()));

    // The block confirms a0, a conflicting a1 of a larger amount, and b's nonce 0
    // that the pool never saw.
    let a1_other = a.pay(chain(), SINK, 70_000, 5_000, 1);
    let b0 = pay(&b, 2_000, 0);
    let block = block_with(&[a0, a1_other, b0]);
    let ledger = HashMap::from([(a.address, account(100_000 - 12_000 - 75_000, 2)), (b.address, account(88_000, 1))]);
    let pruned = pool.remove_confirmed(&block, &ledger_fn(&ledger));

    assert_eq!(pruned.confirmed, vec![a0.txid()]);
    // a1's nonce is used by the block's a1; a2 still fits a's new balance of 13 000.
    assert!(pruned.dropped.contains(&a1.txid()));
    assert!(pool.is_ready(&a2.txid()));
    assert_eq!(pruned.promoted, vec![b1.txid()], "the block filled b's gap");
    assert!(pool.is_ready(&b1.txid()));
    assert_readiness(&pool, &ledger);
    assert_consistent(&pool);
}

#[test]
fn a_connected_block_drops_what_the_new_balance_no_longer_covers_from_the_top() {
    let key = TestKey::new(1);
    let mut pool = default_pool();
    let funds = account(100_000, 0);
    let txs: Vec<_> = (0..4).map(|n| pay(&key, 2_000, n)).collect();
    for stx in &txs {
        pool.add(*stx, funds, 0).unwrap();
    }
    // A block confirms txs[0] and the ledger leaves 30 000: two of the
    // remaining three (12 000 each) fit, the top one goes.
    let ledger = HashMap::from([(key.address, account(30_000, 1))]);
    let pruned = pool.remove_confirmed(&block_with(&txs[..1]), &ledger_fn(&ledger));
    assert_eq!(pruned.confirmed, vec![txs[0].txid()]);
    assert_eq!(pruned.dropped, vec![txs[3].txid()]);
    assert_eq!(nonces_of(&pool, &key.address), vec![1, 2]);
    assert_readiness(&pool, &ledger);
    assert_consistent(&pool);
}

#[test]
fn undone_payments_return_when_their_signature_is_known() {
    let (a, b) = (TestKey::new(1), TestKey::new(2));
    let a0 = pay(&a, 2_000, 0);
    let a1 = pay(&a, 2_000, 1);
    let b0 = pay(&b, 2_000, 0);
    let block = block_with(&[a0, b0, a1]);
    let ledger = HashMap::from([(a.address, account(100_000, 0)), (b.address, account(100_000, 0))]);

    let mut pool = default_pool();
    let known = KnownSignatures(HashMap::from([(a0.txid(), a0.signature), (a1.txid(), a1.signature)]));
    assert_eq!(pool.return_disconnected(&block, &known, &ledger_fn(&ledger), 0), 2);
    assert!(pool.is_ready(&a0.txid()) && pool.is_ready(&a1.txid()));
    assert!(!pool.contains(&b0.txid()), "its signature is unknown");
    assert_readiness(&pool, &ledger);

    let mut pool = default_pool();
    assert_eq!(pool.return_disconnected(&block, &NoSignatures, &ledger_fn(&ledger), 0), 0);
    assert!(pool.is_empty());
}

#[test]
fn undone_payments_that_the_new_chain_confirmed_stay_out() {
    let key = TestKey::new(1);
    let t0 = pay(&key, 2_000, 0);
    let t1 = pay(&key, 2_000, 1);
    let all = KnownSignatures(HashMap::from([(t0.txid(), t0.signature), (t1.txid(), t1.signature)]));
    // The new chain confirmed nonce 0 (the same payment or another one).
    let ledger = HashMap::from([(key.address, account(88_000, 1))]);
    let mut pool = default_pool();
    assert_eq!(pool.return_disconnected(&block_with(&[t0, t1]), &all, &ledger_fn(&ledger), 0), 1);
    assert!(pool.is_ready(&t1.txid()));
    assert!(!pool.contains(&t0.txid()));
}

#[test]
fn undoing_a_payment_received_drops_what_it_funded() {
    let (a, b) = (TestKey::new(1), TestKey::new(2));
    let payment = a.pay(chain(), b.address, 50_000, 2_000, 0);
    let b0 = b.pay(chain(), SINK, 40_000, 2_000, 0);
    let mut pool = default_pool();
    pool.add(b0, account(50_000, 0), 0).unwrap();
    // The block that paid b is undone and the payment cannot return.
    let ledger = HashMap::from([(a.address, account(100_000, 0)), (b.address, account(0, 0))]);
    assert_eq!(pool.return_disconnected(&block_with(&[payment]), &NoSignatures, &ledger_fn(&ledger), 0), 0);
    assert!(!pool.contains(&b0.txid()));
    assert_consistent(&pool);
}

// -------------------------------------------------------------------- queries

#[test]
fn queries_report_pending_flows_nonces_and_signatures() {
    let (a, b) = (TestKey::new(1), TestKey::new(2));
    let mut pool = default_pool();
    let a0 = a.pay(chain(), b.address, 30_000, 2_000, 0);
    let a1 = a.pay(chain(), b.address, 20_000, 3_000, 1);
    let a3 = a.pay(chain(), SINK, 1_000, 1_000, 3);
    let b0 = b.pay(chain(), a.address, 5_000, 1_000, 0);
    for stx in [a3, a1, a0] {
        pool.add(stx, account(1_000_000, 0), 0).unwrap();
    }
    pool.add(b0, account(10_000, 0), 0).unwrap();

    assert_eq!(pool.pending_for(&a.address), (Amount(5_000), Amount(32_000 + 23_000 + 2_000)));
    assert_eq!(pool.pending_for(&b.address), (Amount(50_000), Amount(6_000)));
    assert_eq!(pool.pending_for(&SINK), (Amount(1_000), Amount::ZERO));
    assert_eq!(pool.next_nonce(&a.address, 0), 2, "a3 waits behind a gap");
    assert_eq!(pool.next_nonce(&SINK, 7), 7);
    assert_eq!(pool.signature(&a1.txid()), Some(a1.signature));
    assert_eq!(pool.signature(&b.pay(chain(), SINK, 1, 1_000, 9).txid()), None);
    assert_eq!(pool.len(), 4);
    assert_eq!(pool.bytes(), [a0, a1, a3, b0].iter().map(|s| encode(s).len()).sum::<usize>());
    let a_order: Vec<u64> = pool.iter().filter(|s| s.tx.sender == a.public).map(|s| s.tx.nonce).collect();
    assert_eq!(a_order, vec![0, 1, 3], "iter goes in nonce order");
    assert!(!pool.is_ready(&a3.txid()));
    assert!(!pool.is_ready(&b.pay(chain(), SINK, 1, 1_000, 9).txid()), "unknown");
}

// --------------------------------------------------------------- invariants

const SENDERS: usize = 3;
const NONCES: u64 = 20;
const FEES: [u64; 4] = [2_000, 5_000, 8_000, 11_000];
const AMOUNT: u64 = 100_000;

/// Every transaction the property test may use, signed once:
/// (sender, nonce, fee level).
fn table() -> &'static HashMap<(usize, u64, usize), SignedTransaction> {
    static TABLE: OnceLock<HashMap<(usize, u64, usize), SignedTransaction>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut out = HashMap::new();
        for s in 0..SENDERS {
            let key = TestKey::new(100 + s as u64);
            for n in 0..NONCES {
                for (f, fee) in FEES.iter().enumerate() {
                    out.insert((s, n, f), key.pay(chain(), SINK, AMOUNT, *fee, n));
                }
            }
        }
        out
    })
}

fn sender_address(s: usize) -> Address {
    table()[&(s, 0, 0)].tx.sender_address()
}

#[derive(Debug, Clone)]
enum Op {
    Add {
        sender: usize,
        nonce: u64,
        fee: usize,
        wait: u64,
    },
    /// Mines a block of up to `count` payments chosen by `select`.
    Mine {
        count: usize,
    },
    /// Mines a block with a payment of `sender` the pool may not hold.
    MineExternal {
        sender: usize,
        fee: usize,
    },
    Expire {
        wait: u64,
    },
    /// Undoes the last block; its signatures known or not.
    Undo {
        signatures_known: bool,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..SENDERS, 0..NONCES, 0..FEES.len(), 0..400u64)
            .prop_map(|(sender, nonce, fee, wait)| Op::Add { sender, nonce, fee, wait }),
        2 => (0..4usize).prop_map(|count| Op::Mine { count }),
        1 => (0..SENDERS, 0..FEES.len()).prop_map(|(sender, fee)| Op::MineExternal { sender, fee }),
        1 => (0..2_000u64).prop_map(|wait| Op::Expire { wait }),
        1 => any::<bool>().prop_map(|signatures_known| Op::Undo { signatures_known }),
    ]
}

/// Applies a block's payments to the ledger, or refuses the block.
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Whatever happens, every sender's entries lie in its nonce window, its
    /// ready set is exactly the gap-free run from its account nonce, its
    /// pending spends fit its balance, the indexes agree, the bounds hold, and
    /// eviction and expiry only ever take the top of a sequence.
    #[test]
    fn the_pool_invariants_hold(ops in proptest::collection::vec(arb_op(), 1..40), max_count in 3usize..12) {
        let config = MempoolConfig { max_count, expiry_secs: 3_000, ..MempoolConfig::default() };
        let mut pool = Mempool::new(regtest(), config);
        let mut ledger: HashMap<Address, Account> =
            // From about 3 to about 9 pending payments' worth, so the balance binds too.
            (0..SENDERS).map(|s| (sender_address(s), account(350_000 * (s as u64 + 1), 0))).collect();
        let mut undo: Vec<(Vec<SignedTransaction>, HashMap<Address, Account>)> = Vec::new();
        let mut now = 1_000u64;
        for op in ops {
            match op {
                Op::Add { sender, nonce, fee, wait } => {
                    now += wait;
                    let stx = table()[&(sender, nonce, fee)];
                    let before = snapshot(&pool);
                    let result = pool.add(stx, ledger[&sender_address(sender)], now);
                    if let Ok(added) = &result {
                        prop_assert_eq!(added.ready, pool.is_ready(&stx.txid()));
                        for gone in &added.evicted {
                            prop_assert!(!pool.contains(gone));
                        }
                        prop_assert!(added.promoted.iter().all(|id| pool.is_ready(id)));
                    } else {
                        prop_assert!(!pool.contains(&stx.txid()) || result == Err(ValidationError::AlreadyInMempool));
                    }
                    assert_no_gap_created(&before, &pool);
                }
                Op::Mine { count } => {
                    let payments = pool.select(&ledger_fn(&ledger), usize::MAX, count);
                    let next = apply(&ledger, &payments);
                    prop_assert!(next.is_some(), "select chose an invalid block: {:?}", payments);
                    let previous = std::mem::replace(&mut ledger, next.unwrap_or_default());
                    pool.remove_confirmed(&block_with(&payments), &ledger_fn(&ledger));
                    undo.push((payments, previous));
                }
                Op::MineExternal { sender, fee } => {
                    let address = sender_address(sender);
                    let nonce = ledger[&address].nonce;
                    if nonce >= NONCES {
                        continue;
                    }
                    let payments = vec![table()[&(sender, nonce, fee)]];
                    let Some(next) = apply(&ledger, &payments) else { continue };
                    let previous = std::mem::replace(&mut ledger, next);
                    pool.remove_confirmed(&block_with(&payments), &ledger_fn(&ledger));
                    undo.push((payments, previous));
                }
                Op::Expire { wait } => {
                    now += wait;
                    let before = snapshot(&pool);
                    pool.expire(now);
                    assert_no_gap_created(&before, &pool);
                    prop_assert!(pool.entries.values().all(|e| e.added_at + 3_000 > now));
                }
                Op::Undo { signatures_known } => {
                    let Some((payments, previous)) = undo.pop() else { continue };
                    ledger = previous;
                    let block = block_with(&payments);
                    let known = KnownSignatures(if signatures_known {
                        payments.iter().map(|p| (p.txid(), p.signature)).collect()
                    } else {
                        HashMap::new()
                    });
                    pool.return_disconnected(&block, &known, &ledger_fn(&ledger), now);
                }
            }
            assert_consistent(&pool);
            assert_readiness(&pool, &ledger);
            let chosen = pool.select(&ledger_fn(&ledger), usize::MAX, usize::MAX);
            prop_assert!(apply(&ledger, &chosen).is_some(), "a template is always a valid block");
            let ready = pool.entries.keys().filter(|id| pool.is_ready(id)).count();
            prop_assert_eq!(chosen.len(), ready, "select takes every ready transaction when nothing binds");
            for address in pool.senders.keys() {
                let account_nonce = ledger[address].nonce;
                let run = nonces_of(&pool, address).into_iter().zip(account_nonce..).take_while(|(n, e)| n == e).count();
                prop_assert_eq!(pool.next_nonce(address, account_nonce), account_nonce + run as u64);
            }
        }
    }
}

#[test]
fn a_batch_verifies_signatures_together_and_marks_exactly_the_bad_ones() {
    let keys: Vec<TestKey> = (0..6).map(TestKey::new).collect();
    let cache = Arc::new(PairingCache::new(1_000));
    let mut pool = default_pool();
    pool.set_signature_cache(cache.clone());
    let mut items = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let stx = pay(key, 2_000, 0);
        // Transactions 1 and 4 carry someone else's signature; 3 fails a cheap rule.
        let stx = if i == 1 || i == 4 { with_bad_signature(stx) } else { stx };
        let nonce_account = if i == 3 { account(1_000_000_000, 5) } else { account(1_000_000_000, 0) };
        items.push((stx, nonce_account));
    }
    let results = pool.add_batch(items, 1_000);
    assert_eq!(results.len(), 6);
    for (i, result) in results.iter().enumerate() {
        match i {
            1 | 4 => assert_eq!(result.as_ref().err(), Some(&ValidationError::BadSignature), "item {i}"),
            3 => assert!(matches!(result, Err(ValidationError::NonceTooLow { .. })), "item {i}: {result:?}"),
            _ => assert!(result.as_ref().is_ok_and(|a| a.ready), "item {i}: {result:?}"),
        }
    }
    assert_eq!(pool.len(), 3);
    // The good ones' pairings are cached for block validation.
    assert_eq!(cache.stats().entries, 3);
}

/// Found by the `mempool` fuzz target: undoing a block whose payments'
/// signatures the node does not know left the sender's later transactions
/// gapped, over the gapped cap.
#[test]
fn an_undone_block_whose_payments_do_not_return_keeps_the_gapped_cap() {
    let key = TestKey::new(1);
    let config = MempoolConfig { max_gapped: 1, ..MempoolConfig::default() };
    let mut pool = Mempool::new(regtest(), config);
    let (p0, p1, p2) = (pay(&key, 2_000, 0), pay(&key, 3_000, 1), pay(&key, 4_000, 2));
    for stx in [p0, p1, p2] {
        pool.add(stx, account(1_000_000, 0), 0).unwrap();
    }
    let mined = HashMap::from([(key.address, account(1_000_000 - 12_000, 1))]);
    pool.remove_confirmed(&block_with(&[p0]), &ledger_fn(&mined));
    assert_eq!(pool.len(), 2);
    let undone = HashMap::from([(key.address, account(1_000_000, 0))]);
    pool.return_disconnected(&block_with(&[p0]), &NoSignatures, &ledger_fn(&undone), 0);
    assert_eq!(pool.gapped_count(), 1, "within the cap");
    assert!(pool.contains(&p1.txid()) && !pool.contains(&p2.txid()), "the top of the sequence went");
    assert_consistent(&pool);
}
