//! What must hold of the pool after any sequence of operations, as a check
//! that says what broke: for the property tests and the fuzz target.

use std::collections::{BTreeMap, BTreeSet};

use super::Mempool;
use crate::state::Account;
use crate::types::{encode, Address, Amount};

/// Fails with the first broken rule.
macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

impl Mempool {
    /// The indexes agree with the entries, the bounds hold, every sender's
    /// entries lie in its nonce window from its account nonce (`accounts`:
    /// the ledger at the tip), a transaction is ready exactly when every
    /// nonce from the account's up to its own is pending, and a sender's
    /// pending spends fit its balance.
    pub fn check_invariants(&self, accounts: &dyn Fn(&Address) -> Account) -> Result<(), String> {
        ensure!(
            self.by_fee.len() == self.entries.len(),
            "by_fee holds {} of {} entries",
            self.by_fee.len(),
            self.entries.len()
        );
        ensure!(self.by_arrival.len() == self.entries.len(), "by_arrival out of step");
        ensure!(self.points.len() == self.entries.len(), "one parsed signature per entry");
        let bytes: usize = self.iter().map(|s| encode(s).len()).sum();
        ensure!(self.bytes == bytes, "bytes counted {} but the entries encode to {bytes}", self.bytes);
        ensure!(self.entries.len() <= self.config.max_count, "{} entries over the bound", self.entries.len());
        ensure!(self.bytes <= self.config.max_bytes, "{} bytes over the bound", self.bytes);
        ensure!(self.gapped <= self.config.max_gapped, "{} gapped over the bound", self.gapped);
        let mut tails = BTreeSet::new();
        let mut queued = 0usize;
        let mut gapped = 0usize;
        for (sender, queue) in &self.senders {
            ensure!(!queue.by_nonce.is_empty(), "an empty queue is kept for {sender:?}");
            let account = accounts(sender);
            ensure!(
                queue.account_nonce == account.nonce,
                "a queue at nonce {} for an account at {}",
                queue.account_nonce,
                account.nonce
            );
            let mut spends = Amount::ZERO;
            for (nonce, txid) in &queue.by_nonce {
                let Some(entry) = self.entries.get(txid) else { return Err(format!("queued {txid} has no entry")) };
                ensure!(
                    entry.sender == *sender && entry.nonce() == *nonce,
                    "entry {txid} filed under the wrong sender or nonce"
                );
                ensure!(*nonce >= queue.account_nonce, "stale nonce {nonce} kept");
                ensure!(
                    nonce.saturating_sub(queue.account_nonce) <= self.config.max_future_nonces,
                    "nonce {nonce} too far ahead of {}",
                    queue.account_nonce
                );
                let run_complete = (queue.account_nonce..=*nonce).all(|n| queue.by_nonce.contains_key(&n));
                ensure!(self.is_ready(txid) == run_complete, "readiness of nonce {nonce} is wrong");
                spends = spends.checked_add(entry.spend).ok_or("pending spends overflow")?;
                queued = queued.saturating_add(1);
            }
            ensure!(spends <= account.balance, "pending spends {spends:?} exceed the balance {:?}", account.balance);
            gapped = gapped.saturating_add(queue.gapped());
            if let Some(tail) = queue.tail().and_then(|id| self.entries.get(&id).map(|e| e.fee_key(id))) {
                tails.insert(tail);
            }
        }
        ensure!(queued == self.entries.len(), "{queued} queued of {} entries", self.entries.len());
        ensure!(tails == self.tails, "the tails index is out of step");
        ensure!(gapped == self.gapped, "gapped counted {} but {gapped} wait behind gaps", self.gapped);
        for (txid, entry) in &self.entries {
            ensure!(self.by_fee.contains(&entry.fee_key(*txid)), "{txid} missing by fee");
            ensure!(self.by_arrival.contains(&(entry.added_at, *txid)), "{txid} missing by arrival");
            ensure!(
                self.by_recipient.get(&entry.stx.tx.recipient).is_some_and(|ids| ids.contains(txid)),
                "{txid} missing by recipient"
            );
        }
        let by_recipient: usize = self.by_recipient.values().map(BTreeSet::len).sum();
        ensure!(by_recipient == self.entries.len(), "by_recipient holds {by_recipient} ids");
        Ok(())
    }

    /// Each sender's pending nonces: compare two of these to see that a
    /// removal (eviction, expiry) only took the top of a sequence.
    pub fn nonce_runs(&self) -> BTreeMap<Address, Vec<u64>> {
        self.senders.iter().map(|(sender, queue)| (*sender, queue.by_nonce.keys().copied().collect())).collect()
    }
}

/// Removing transactions only ever takes the top of a sender's sequence:
/// whatever went lies above whatever stayed.
pub fn check_no_gap_created(
    before: &BTreeMap<Address, Vec<u64>>,
    after: &BTreeMap<Address, Vec<u64>>,
) -> Result<(), String> {
    for (sender, old) in before {
        let now: BTreeSet<u64> = after.get(sender).map(|n| n.iter().copied().collect()).unwrap_or_default();
        let removed = old.iter().filter(|n| !now.contains(n)).min();
        let kept = old.iter().filter(|n| now.contains(n)).max();
        if let (Some(removed), Some(kept)) = (removed, kept) {
            ensure!(kept < removed, "a gap was created for {sender:?}: nonce {removed} went, {kept} stayed");
        }
    }
    Ok(())
}
