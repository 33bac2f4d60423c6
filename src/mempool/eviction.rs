//! Making room in a full pool: the lowest fee loses, but only a sender's
//! highest-nonce transaction can go, so no sequence is left with a gap.
//!
//! The plan is made before the signature check and applied after it, so a
//! transaction that would not get in costs no pairing and one with a bad
//! signature evicts nothing.

use std::collections::BTreeSet;

use super::{FeeKey, Mempool, PoolEntry};
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
}

impl Mempool {
    /// The transactions to evict, top of a sequence first, so that `incoming`
    /// (replacing `replaced`) fits the bounds; `MempoolFull` when that would
    /// take a transaction paying at least as much as the newcomer, or the
    /// newcomer itself.
    pub(super) fn plan_eviction(
        &self,
        txid: Txid,
        incoming: &PoolEntry,
        replaced: Option<Txid>,
    ) -> Result<Vec<Txid>, ValidationError> {
        let replaced_bytes = replaced.and_then(|id| self.entries.get(&id)).map_or(0, |e| e.pool_bytes);
        let mut count = self.entries.len().saturating_sub(usize::from(replaced.is_some())).saturating_add(1);
        let mut bytes = self.bytes.saturating_sub(replaced_bytes).saturating_add(incoming.pool_bytes);
        let over = |count: usize, bytes: usize| count > self.config.max_count || bytes > self.config.max_bytes;
        if !over(count, bytes) {
            return Ok(Vec::new());
        }

        // The newcomer's sender: its sequence with the newcomer in place,
        // lowest nonce first, so its top is the last element.
        let own_queue = self.senders.get(&incoming.sender);
        let own_tail = own_queue.and_then(|q| q.tail());
        let mut own: Vec<(u64, OwnSlot)> = own_queue
            .map(|q| {
                q.by_nonce
                    .iter()
                    .filter(|(_, id)| Some(**id) != replaced)
                    .filter_map(|(nonce, id)| {
                        let e = self.entries.get(id)?;
                        Some((*nonce, OwnSlot { key: e.fee_key(*id), pool_bytes: e.pool_bytes, incoming: false }))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let newcomer = OwnSlot { key: incoming.fee_key(txid), pool_bytes: incoming.pool_bytes, incoming: true };
        let at = own.partition_point(|(nonce, _)| *nonce < incoming.nonce());
        own.insert(at, (incoming.nonce(), newcomer));

        let mut tails = self.tails.iter().filter(|k| Some(k.txid) != own_tail).copied().peekable();
        let mut exposed: BTreeSet<FeeKey> = BTreeSet::new();
        let mut victims = Vec::new();
        while over(count, bytes) {
            let candidates = [
                (Source::Tails, tails.peek().copied()),
                (Source::Exposed, exposed.first().copied()),
                (Source::Own, own.last().map(|(_, slot)| slot.key)),
            ];
            let Some((source, key)) =
                candidates.into_iter().filter_map(|(s, k)| k.map(|k| (s, k))).min_by_key(|(_, k)| *k)
            else {
                return Err(ValidationError::MempoolFull);
            };
            // The newcomer must pay more than everything it pushes out.
            if key.fee >= incoming.stx.tx.fee {
                return Err(ValidationError::MempoolFull);
            }
            let freed = match source {
                Source::Own => match own.pop() {
                    Some((_, slot)) if !slot.incoming => slot.pool_bytes,
                    _ => return Err(ValidationError::MempoolFull),
                },
                Source::Tails | Source::Exposed => {
                    if source == Source::Tails {
                        tails.next();
                    } else {
                        exposed.remove(&key);
                    }
                    let Some(entry) = self.entries.get(&key.txid) else { return Err(ValidationError::MempoolFull) };
                    // Its predecessor becomes its sender's top.
                    let previous = self
                        .senders
                        .get(&entry.sender)
                        .and_then(|q| q.by_nonce.range(..entry.nonce()).next_back())
                        .and_then(|(_, id)| self.entries.get(id).map(|e| e.fee_key(*id)));
                    exposed.extend(previous);
                    entry.pool_bytes
                }
            };
            victims.push(key.txid);
            count = count.saturating_sub(1);
            bytes = bytes.saturating_sub(freed);
        }
        Ok(victims)
    }
}
