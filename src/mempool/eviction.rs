//! Making room in a full pool: transactions waiting behind a nonce gap go
//! first, then the lowest fee loses, but only a sender's highest-nonce
//! transaction can go, so no sequence is left with a gap.
//!
//! The plan is made before the signature check and applied after it, so a
//! transaction that would not get in costs no pairing and one with a bad
//! signature evicts nothing.

use std::collections::BTreeSet;

use super::{FeeKey, Mempool, PoolEntry, SenderQueue};
use crate::consensus::ValidationError;
use crate::types::Txid;

/// Where the next victim comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The current tails of the other senders.
    Tails,
    /// Other senders' transactions laid bare by evicting their tails in this plan.
    Exposed,
    /// The incoming transaction's own sender, its sequence as it would be.
    Own,
}

/// One transaction of the incoming transaction's sender, as it would stand.
#[derive(Debug, Clone, Copy)]
struct OwnSlot {
    key: FeeKey,
    pool_bytes: usize,
    incoming: bool,
    /// In the gap-free run from the account nonce, with the newcomer in place.
    ready: bool,
}

impl Mempool {
    /// The transactions to evict, top of a sequence first, so that `incoming`
    /// (replacing `replaced`) fits the bounds; `MempoolFull` when that would
    /// take a transaction paying at least as much as the newcomer, or the
    /// newcomer itself.
    ///
    /// Transactions waiting behind a nonce gap go first, whatever their fee:
    /// they cannot be mined, so a high fee on them buys nothing and must not
    /// push out payments that can. A newcomer that is itself gapped may only
    /// take the place of gapped ones, and the gapped have a cap of their own.
    pub(super) fn plan_eviction(
        &self,
        txid: Txid,
        incoming: &PoolEntry,
        replaced: Option<Txid>,
        account_nonce: u64,
    ) -> Result<Vec<Txid>, ValidationError> {
        let replaced_bytes = replaced.and_then(|id| self.entries.get(&id)).map_or(0, |e| e.pool_bytes);
        let mut count = self.entries.len().saturating_sub(usize::from(replaced.is_some())).saturating_add(1);
        let mut bytes = self.bytes.saturating_sub(replaced_bytes).saturating_add(incoming.pool_bytes);

        // The newcomer's sender: its sequence with the newcomer in place,
        // lowest nonce first, so its top is the last element; each slot
        // knows whether it would be ready.
        let own_queue = self.senders.get(&incoming.sender);
        let own_tail = own_queue.and_then(|q| q.tail());
        let mut own: Vec<(u64, OwnSlot)> = own_queue
            .map(|q| {
                q.by_nonce
                    .iter()
                    .filter(|(_, id)| Some(**id) != replaced)
                    .filter_map(|(nonce, id)| {
                        let e = self.entries.get(id)?;
                        let slot =
                            OwnSlot { key: e.fee_key(*id), pool_bytes: e.pool_bytes, incoming: false, ready: false };
                        Some((*nonce, slot))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let newcomer =
            OwnSlot { key: incoming.fee_key(txid), pool_bytes: incoming.pool_bytes, incoming: true, ready: false };
        let at = own.partition_point(|(nonce, _)| *nonce < incoming.nonce());
        own.insert(at, (incoming.nonce(), newcomer));
        let mut expected = Some(account_nonce);
        for (nonce, slot) in own.iter_mut() {
            if expected != Some(*nonce) {
                break;
            }
            slot.ready = true;
            expected = nonce.checked_add(1);
        }
        let incoming_ready = own.iter().any(|(_, slot)| slot.incoming && slot.ready);
        let own_gapped_now = own_queue.map_or(0, SenderQueue::gapped);
        let own_gapped_after = own.iter().filter(|(_, slot)| !slot.ready).count();
        let mut gapped = self.gapped.saturating_sub(own_gapped_now).saturating_add(own_gapped_after);

        let over_size = |count: usize, bytes: usize| count > self.config.max_count || bytes > self.config.max_bytes;
        let over_gapped = |gapped: usize| gapped > self.config.max_gapped;
        if !over_size(count, bytes) && !over_gapped(gapped) {
            return Ok(Vec::new());
        }

        // Whether a pool entry (not of the newcomer's sender) waits behind a gap.
        let is_gapped = |key: &FeeKey| {
            self.entries
                .get(&key.txid)
                .and_then(|e| self.senders.get(&e.sender).map(|q| e.nonce() >= q.first_gapped_nonce()))
                .unwrap_or(false)
        };
        let (gapped_tails, ready_tails): (Vec<FeeKey>, Vec<FeeKey>) =
            self.tails.iter().filter(|k| Some(k.txid) != own_tail).copied().partition(|k| is_gapped(k));
        let mut gapped_tails = gapped_tails.into_iter().peekable();
        let mut ready_tails = ready_tails.into_iter().peekable();
        let mut exposed_gapped: BTreeSet<FeeKey> = BTreeSet::new();
        let mut exposed_ready: BTreeSet<FeeKey> = BTreeSet::new();
        let mut victims = Vec::new();
        while over_size(count, bytes) || over_gapped(gapped) {
            // Only the gapped may go to make room for the gapped, or when
            // only their own cap is exceeded.
            let gapped_only = !incoming_ready || !over_size(count, bytes);
            let own_top = own.last().map(|(_, slot)| (slot.ready, slot.key));
            let gapped_candidates = [
                (Source::Tails, gapped_tails.peek().copied()),
                (Source::Exposed, exposed_gapped.first().copied()),
                (Source::Own, own_top.filter(|(ready, _)| !ready).map(|(_, k)| k)),
            ];
            let ready_candidates = [
                (Source::Tails, ready_tails.peek().copied()),
                (Source::Exposed, exposed_ready.first().copied()),
                (Source::Own, own_top.filter(|(ready, _)| *ready).map(|(_, k)| k)),
            ];
            let lowest = |candidates: [(Source, Option<FeeKey>); 3]| {
                candidates.into_iter().filter_map(|(s, k)| k.map(|k| (s, k))).min_by_key(|(_, k)| *k)
            };
            let (victim_ready, source, key) = match lowest(gapped_candidates) {
                Some((source, key)) => (false, source, key),
                None if gapped_only => return Err(ValidationError::MempoolFull),
                None => match lowest(ready_candidates) {
                    Some((source, key)) => (true, source, key),
                    None => return Err(ValidationError::MempoolFull),
                },
            };
            // The newcomer must pay more than everything of its own kind it
            // pushes out; a ready newcomer outranks any gapped one.
            if (victim_ready || !incoming_ready) && key.fee >= incoming.stx.tx.fee {
                return Err(ValidationError::MempoolFull);
            }
            let freed = match source {
                Source::Own => match own.pop() {
                    Some((_, slot)) if !slot.incoming => slot.pool_bytes,
                    _ => return Err(ValidationError::MempoolFull),
                },
                Source::Tails | Source::Exposed => {
                    match (source, victim_ready) {
                        (Source::Tails, false) => {
                            gapped_tails.next();
                        }
                        (Source::Tails, true) => {
                            ready_tails.next();
                        }
                        (_, false) => {
                            exposed_gapped.remove(&key);
                        }
                        (_, true) => {
                            exposed_ready.remove(&key);
                        }
                    }
                    let Some(entry) = self.entries.get(&key.txid) else { return Err(ValidationError::MempoolFull) };
                    // Its predecessor becomes its sender's top.
                    let previous = self
                        .senders
                        .get(&entry.sender)
                        .and_then(|q| q.by_nonce.range(..entry.nonce()).next_back())
                        .and_then(|(_, id)| self.entries.get(id).map(|e| e.fee_key(*id)));
                    if let Some(key) = previous {
                        if is_gapped(&key) {
                            exposed_gapped.insert(key);
                        } else {
                            exposed_ready.insert(key);
                        }
                    }
                    entry.pool_bytes
                }
            };
            if !victim_ready {
                gapped = gapped.saturating_sub(1);
            }
            victims.push(key.txid);
            count = count.saturating_sub(1);
            bytes = bytes.saturating_sub(freed);
        }
        Ok(victims)
    }
}
