//! The pool of pending transactions (SPEC §4a): admission with the cheap
//! rules before the costly signature check, per-sender nonce sequences of
//! which only the gap-free run from the account's nonce is ready (relayed and
//! mined), bounds on count and bytes with lowest-fee eviction that never
//! leaves a gap, expiry, and the bookkeeping for blocks connected and undone.
//!
//! Pure: no clock, disk or socket. The caller passes `now` and looks up the
//! ledger state at its tip.

// The pool eats transactions from any peer: it must never panic on one.
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

pub mod estimate;
mod eviction;
#[cfg(any(test, feature = "fuzzing"))]
pub mod invariants;
mod select;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::chain::SignatureSource;
use crate::consensus::{rules, Params, ValidationError};
use crate::crypto::pairing_cache::PairingCache;
use crate::crypto::{batch, CryptoError, Signature};
use crate::state::{check_can_spend, Account};
use crate::types::{
    encode, Address, Amount, Block, DecodeError, SignatureBytes, SignedTransaction, Transaction, Txid, MAX_TX_BYTES,
};

/// The minimum relay fee (SPEC §3): a transaction paying less is neither
/// accepted nor relayed.
pub const MIN_RELAY_FEE: Amount = Amount(1_000);
/// How long a transaction may wait in the pool (SPEC §4a: 24 hours).
pub const EXPIRY_SECS: u64 = 24 * 60 * 60;
/// How far ahead of the account's nonce a transaction may be kept (SPEC §4a).
pub const MAX_FUTURE_NONCES: u64 = 16;

/// Bounds and policy knobs of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MempoolConfig {
    /// The most transactions the pool holds.
    pub max_count: usize,
    /// The most bytes the pool holds, counted as encoded signed transactions.
    pub max_bytes: usize,
    /// Transactions paying a lower fee are refused.
    pub min_relay_fee: Amount,
    /// Entries older than this many seconds are dropped by [`Mempool::expire`].
    pub expiry_secs: u64,
    /// A nonce more than this far above the account's is refused.
    pub max_future_nonces: u64,
    /// The most transactions held that are not ready (waiting behind a nonce
    /// gap). They are never mined until the gap fills, so they get a small
    /// share of the pool of their own, are evicted first, and never push a
    /// ready transaction out.
    pub max_gapped: usize,
}

impl Default for MempoolConfig {
    /// 50 000 transactions or 64 MiB: several full blocks' worth, yet a few
    /// tens of megabytes of memory at most.
    fn default() -> MempoolConfig {
        MempoolConfig {
            max_count: 50_000,
            max_bytes: 64 * 1024 * 1024,
            min_relay_fee: MIN_RELAY_FEE,
            expiry_secs: EXPIRY_SECS,
            max_future_nonces: MAX_FUTURE_NONCES,
            max_gapped: 5_000,
        }
    }
}

/// What admitting a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub txid: Txid,
    /// The pending transaction with the same sender and nonce that it replaced.
    pub replaced: Option<Txid>,
    /// Whether it is in its sender's gap-free run from the account nonce:
    /// relay it now. A future transaction waits silently for its gap to fill.
    pub ready: bool,
    /// Later transactions of the same sender that became ready because this
    /// one filled their gap; they are due for relay too.
    pub promoted: Vec<Txid>,
    /// Transactions evicted to make room, each the highest-nonce pending
    /// transaction of its sender when it went.
    pub evicted: Vec<Txid>,
}

/// What connecting a block did to the pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Pool transactions that the block confirmed.
    pub confirmed: Vec<Txid>,
    /// Transactions the block made stale (nonce used) or unaffordable.
    pub dropped: Vec<Txid>,
    /// Transactions that became ready because the block confirmed the
    /// transactions before them; due for relay.
    pub promoted: Vec<Txid>,
}

/// Orders transactions for eviction: lowest fee first and, among equal fees,
/// the latest arrival first, so an incumbent keeps its place against a
/// newcomer that pays no more. Reversed, it is the "highest fee first" order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct FeeKey {
    fee: Amount,
    newest_first: Reverse<u64>,
    txid: Txid,
}

#[derive(Debug, Clone)]
struct PoolEntry {
    stx: SignedTransaction,
    sender: Address,
    /// Amount plus fee, checked not to overflow on admission.
    spend: Amount,
    /// Encoded size with the signature: what it costs the pool.
    pool_bytes: usize,
    /// Encoded size without the signature: what it costs a block, whose
    /// payments carry no individual signatures.
    block_bytes: usize,
    added_at: u64,
    /// Arrival order, for deterministic tie-breaking among equal fees.
    seq: u64,
}

impl PoolEntry {
    fn nonce(&self) -> u64 {
        self.stx.tx.nonce
    }

    fn fee_key(&self, txid: Txid) -> FeeKey {
        FeeKey { fee: self.stx.tx.fee, newest_first: Reverse(self.seq), txid }
    }
}

/// One sender's pending transactions.
#[derive(Debug, Clone, Default)]
struct SenderQueue {
    /// The sender's account nonce at the tip as last seen: its ready run starts here.
    account_nonce: u64,
    by_nonce: BTreeMap<u64, Txid>,
}

impl SenderQueue {
    /// The gap-free run of transactions from nonce `start` on.
    fn run_from(&self, start: u64) -> Vec<(u64, Txid)> {
        let mut run = Vec::new();
        let mut expected = Some(start);
        for (nonce, txid) in self.by_nonce.range(start..) {
            if expected != Some(*nonce) {
                break;
            }
            run.push((*nonce, *txid));
            expected = nonce.checked_add(1);
        }
        run
    }

    fn ready(&self) -> Vec<(u64, Txid)> {
        self.run_from(self.account_nonce)
    }

    fn tail(&self) -> Option<Txid> {
        self.by_nonce.last_key_value().map(|(_, txid)| *txid)
    }

    /// How many of its transactions wait behind a gap (always its highest nonces).
    fn gapped(&self) -> usize {
        self.by_nonce.len().saturating_sub(self.ready().len())
    }

    /// The lowest nonce that is not ready: everything from here up waits behind a gap.
    fn first_gapped_nonce(&self) -> u64 {
        let ready = u64::try_from(self.ready().len()).unwrap_or(u64::MAX);
        self.account_nonce.saturating_add(ready)
    }
}

/// Whether admission runs the BLS signature check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignatureCheck {
    Verify,
    /// Checked just now, in a batch: here is the parsed signature.
    Verified(Signature),
    /// The signature was checked by this node before (see [`Mempool::add_previously_verified`]).
    AlreadyVerified,
}

/// The pending transactions, by txid, by sender and nonce, by fee and by age.
#[derive(Debug, Clone)]
pub struct Mempool {
    params: &'static Params,
    config: MempoolConfig,
    entries: HashMap<Txid, PoolEntry>,
    senders: BTreeMap<Address, SenderQueue>,
    by_fee: BTreeSet<FeeKey>,
    /// The highest-nonce transaction of each sender: the only ones eviction
    /// may take, so that it never leaves a gap in a sequence.
    tails: BTreeSet<FeeKey>,
    by_arrival: BTreeSet<(u64, Txid)>,
    by_recipient: HashMap<Address, BTreeSet<Txid>>,
    /// Each entry's signature as a curve point, parsed and group-checked once
    /// on admission, so that block templates aggregate them without parsing
    /// thousands of signatures again.
    points: HashMap<Txid, Signature>,
    bytes: usize,
    /// Entries that are not ready, over all senders.
    gapped: usize,
    next_seq: u64,
    /// Pairings of admitted transactions, kept for block validation.
    signature_cache: Option<Arc<PairingCache>>,
}

/// The sender key, signing message and signature of each item at `indexes`,
/// parsed and group-checked on every core.
fn parse_claims(
    items: &[(SignedTransaction, Account)],
    indexes: &[usize],
) -> Vec<Result<batch::SignedMessage, ValidationError>> {
    let parse = |i: &usize| -> Result<batch::SignedMessage, ValidationError> {
        let (stx, _) = items.get(*i).ok_or(ValidationError::BadSignature)?;
        let public_key = rules::sender_public_key(&stx.tx)?;
        let signature = rules::transaction_signature(stx)?;
        Ok((public_key, stx.tx.signing_message().to_vec(), signature))
    };
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if threads < 2 || indexes.len() < 8 {
        return indexes.iter().map(parse).collect();
    }
    let chunk = indexes.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = indexes
            .chunks(chunk)
            .map(|part| (part.len(), scope.spawn(move || part.iter().map(parse).collect::<Vec<_>>())))
            .collect();
        // A worker that died refuses its part rather than misaligning the results.
        handles
            .into_iter()
            .flat_map(|(len, h)| h.join().unwrap_or_else(|_| vec![Err(ValidationError::BadSignature); len]))
            .collect()
    })
}

/// What the cheap rules decided for a transaction about to be admitted.
struct Prepared {
    txid: Txid,
    entry: PoolEntry,
    replaced: Option<Txid>,
    victims: Vec<Txid>,
}

impl Mempool {
    pub fn new(params: &'static Params, config: MempoolConfig) -> Mempool {
        Mempool {
            params,
            config,
            entries: HashMap::new(),
            senders: BTreeMap::new(),
            by_fee: BTreeSet::new(),
            tails: BTreeSet::new(),
            by_arrival: BTreeSet::new(),
            by_recipient: HashMap::new(),
            points: HashMap::new(),
            bytes: 0,
            gapped: 0,
            next_seq: 0,
            signature_cache: None,
        }
    }

    /// Keeps the pairing each admitted transaction's signature check computes
    /// in `cache`, where block validation finds it.
    pub fn set_signature_cache(&mut self, cache: Arc<PairingCache>) {
        self.signature_cache = Some(cache);
    }

    /// Admits several transactions, verifying the signatures of those that
    /// pass the cheap rules together (a weighted batch, bisected on failure,
    /// on every core). Results are in the order given.
    pub fn add_batch(
        &mut self,
        items: Vec<(SignedTransaction, Account)>,
        now: u64,
    ) -> Vec<Result<Added, ValidationError>> {
        let mut results: Vec<Option<Result<Added, ValidationError>>> = Vec::with_capacity(items.len());
        let mut cheap_ok = Vec::new();
        for (i, (stx, account)) in items.iter().enumerate() {
            match self.prepare(stx, account, now) {
                Ok(_) => {
                    cheap_ok.push(i);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        // Decompressing and group-checking keys and signatures costs about a
        // third of a pairing each: spread it over the cores too.
        let parsed = parse_claims(&items, &cheap_ok);
        let mut candidates = Vec::new();
        let mut claims = Vec::new();
        for (i, claim) in cheap_ok.into_iter().zip(parsed) {
            match claim {
                Ok(claim) => {
                    candidates.push(i);
                    claims.push(claim);
                }
                Err(e) => {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = Some(Err(e));
                    }
                }
            }
        }
        let valid = batch::verify_batch(&claims, self.signature_cache.as_deref());
        for (position, (i, ok)) in candidates.into_iter().zip(valid).enumerate() {
            if let (Some((stx, account)), Some(slot)) = (items.get(i), results.get_mut(i)) {
                let signature = claims.get(position).map(|(_, _, signature)| *signature);
                *slot = Some(if ok {
                    let check = signature.map_or(SignatureCheck::AlreadyVerified, SignatureCheck::Verified);
                    self.admit(*stx, *account, now, check)
                } else {
                    Err(ValidationError::BadSignature)
                });
            }
        }
        results.into_iter().map(|r| r.unwrap_or(Err(ValidationError::BadSignature))).collect()
    }

    pub fn config(&self) -> &MempoolConfig {
        &self.config
    }

    /// Admits a transaction. `sender_account` is the sender's ledger state at
    /// the tip. Every cheap rule runs before the BLS signature check, so a
    /// transaction failing one costs no pairing.
    ///
    /// Once the transaction passes the context-free and nonce checks, the
    /// sender's other pending transactions are brought in line with
    /// `sender_account` (those it made stale or unaffordable are dropped),
    /// whether or not the transaction then gets in: the caller's view of the
    /// tip is the truth.
    pub fn add(&mut self, stx: SignedTransaction, sender_account: Account, now: u64) -> Result<Added, ValidationError> {
        self.admit(stx, sender_account, now, SignatureCheck::Verify)
    }

    /// [`Mempool::add`] without the signature check, for transactions whose
    /// signature this node verified itself before: its saved pool reloaded at
    /// start, or its record of recently confirmed signatures. Skipping the
    /// check keeps a restart or a reorganisation from spending a millisecond
    /// per transaction. Never use it for anything that came from a peer.
    pub fn add_previously_verified(
        &mut self,
        stx: SignedTransaction,
        sender_account: Account,
        now: u64,
    ) -> Result<Added, ValidationError> {
        self.admit(stx, sender_account, now, SignatureCheck::AlreadyVerified)
    }

    fn admit(
        &mut self,
        stx: SignedTransaction,
        account: Account,
        now: u64,
        check: SignatureCheck,
    ) -> Result<Added, ValidationError> {
        let prepared = self.prepare(&stx, &account, now)?;
        let signature = match check {
            SignatureCheck::Verify => {
                let signature = rules::transaction_signature(&stx)?;
                rules::verify_transaction_signature(&stx, &signature, self.signature_cache.as_deref())?;
                signature
            }
            SignatureCheck::Verified(signature) => signature,
            SignatureCheck::AlreadyVerified => rules::transaction_signature(&stx)?,
        };
        let txid = prepared.txid;
        let added = self.commit(prepared, account);
        self.points.insert(txid, signature);
        Ok(added)
    }

    /// The aggregate of the signatures of `payments` (pool entries, as
    /// [`Mempool::select`] returns them), from the points kept since
    /// admission; `None` for no payments. A payment not in the pool is parsed.
    pub fn aggregate_signature(&self, payments: &[SignedTransaction]) -> Result<Option<Signature>, CryptoError> {
        if payments.is_empty() {
            return Ok(None);
        }
        let points = payments
            .iter()
            .map(|stx| match self.points.get(&stx.txid()) {
                Some(point) => Ok(*point),
                None => Signature::from_bytes(&stx.signature),
            })
            .collect::<Result<Vec<Signature>, CryptoError>>()?;
        Signature::aggregate(&points).map(Some)
    }

    /// Every cheap rule, and the eviction a newcomer would cause; changes
    /// nothing but bringing the sender's other entries in line with `account`.
    fn prepare(&mut self, stx: &SignedTransaction, account: &Account, now: u64) -> Result<Prepared, ValidationError> {
        let txid = stx.txid();
        if self.entries.contains_key(&txid) {
            return Err(ValidationError::AlreadyInMempool);
        }
        let pool_bytes = encode(stx).len();
        if pool_bytes > MAX_TX_BYTES {
            return Err(ValidationError::Malformed(DecodeError::TooLarge { len: pool_bytes, cap: MAX_TX_BYTES }));
        }
        let tx = stx.tx;
        rules::check_transaction_fields(self.params, &tx)?;
        if tx.fee < self.config.min_relay_fee {
            return Err(ValidationError::FeeBelowMinimum { minimum: self.config.min_relay_fee, found: tx.fee });
        }
        self.check_nonce_window(&tx, account.nonce)?;

        let sender = tx.sender_address();
        self.revalidate_sender(&sender, account);
        let replaced = self.replacement_target(&sender, &tx)?;
        let spend = tx.total_spend().ok_or(ValidationError::AmountOverflow)?;
        check_can_spend(account, spend)?;
        self.check_pending_spends(&sender, replaced, spend, account.balance)?;

        let entry = PoolEntry {
            stx: *stx,
            sender,
            spend,
            pool_bytes,
            block_bytes: encode(&tx).len(),
            added_at: now,
            seq: self.next_seq,
        };
        let victims = self.plan_eviction(txid, &entry, replaced, account.nonce)?;
        Ok(Prepared { txid, entry, replaced, victims })
    }

    fn commit(&mut self, prepared: Prepared, account: Account) -> Added {
        let Prepared { txid, entry, replaced, victims } = prepared;
        let tx = entry.stx.tx;
        let sender = entry.sender;
        self.next_seq = self.next_seq.saturating_add(1);
        if let Some(old) = replaced {
            self.remove_entry(&old);
        }
        for victim in &victims {
            self.remove_entry(victim);
        }
        self.insert_entry(txid, entry, account.nonce);

        let queue = self.senders.get(&sender);
        let ready_run = queue.map(SenderQueue::ready).unwrap_or_default();
        let ready = ready_run.iter().any(|(_, id)| *id == txid);
        // Only a newcomer that filled a gap promotes: a replacement takes the
        // place of one that was already ready or not.
        let promoted = if ready && replaced.is_none() {
            ready_run.iter().filter(|(nonce, _)| *nonce > tx.nonce).map(|(_, id)| *id).collect()
        } else {
            Vec::new()
        };
        Added { txid, replaced, ready, promoted, evicted: victims }
    }

    fn check_nonce_window(&self, tx: &Transaction, account_nonce: u64) -> Result<(), ValidationError> {
        if tx.nonce < account_nonce {
            return Err(ValidationError::NonceTooLow { expected: account_nonce, found: tx.nonce });
        }
        let limit = self.config.max_future_nonces;
        if tx.nonce > account_nonce.saturating_add(limit) {
            return Err(ValidationError::NonceTooFarAhead { expected: account_nonce, found: tx.nonce, limit });
        }
        Ok(())
    }

    /// The pending transaction that `tx` would replace, if its fee is high enough.
    fn replacement_target(&self, sender: &Address, tx: &Transaction) -> Result<Option<Txid>, ValidationError> {
        let Some(old_txid) = self.senders.get(sender).and_then(|q| q.by_nonce.get(&tx.nonce)).copied() else {
            return Ok(None);
        };
        let Some(old) = self.entries.get(&old_txid) else { return Ok(None) };
        let required = replacement_fee(old.stx.tx.fee);
        if u128::from(tx.fee.0) < required {
            let required = Amount(u64::try_from(required).unwrap_or(u64::MAX));
            return Err(ValidationError::ReplacementFeeTooLow { required, found: tx.fee });
        }
        Ok(Some(old_txid))
    }

    /// The sender's balance must cover all its pending spends together, so
    /// every pending transaction can be mined whatever the order of arrival.
    fn check_pending_spends(
        &self,
        sender: &Address,
        replaced: Option<Txid>,
        spend: Amount,
        balance: Amount,
    ) -> Result<(), ValidationError> {
        let others = self
            .senders
            .get(sender)
            .map(|q| q.by_nonce.values().filter(|id| Some(**id) != replaced).collect::<Vec<_>>())
            .unwrap_or_default();
        let needed = others
            .into_iter()
            .map(|id| self.entries.get(id).map_or(Amount(u64::MAX), |e| e.spend))
            .try_fold(spend, Amount::checked_add)
            .unwrap_or(Amount(u64::MAX));
        if needed > balance {
            return Err(ValidationError::PendingSpendsExceedBalance { balance, needed });
        }
        Ok(())
    }

    /// Brings a sender's queue in line with its ledger state at the tip:
    /// drops transactions whose nonce is used, those beyond the window of
    /// future nonces, and, from the highest nonce down, those its balance no
    /// longer covers. Returns what was dropped.
    fn revalidate_sender(&mut self, sender: &Address, account: &Account) -> Vec<Txid> {
        let gapped_before = self.gapped_of(sender);
        let Some(queue) = self.senders.get_mut(sender) else { return Vec::new() };
        queue.account_nonce = account.nonce;
        // A new account nonce moves the ready run: recount before removing.
        let gapped_now = queue.gapped();
        self.gapped = self.gapped.saturating_sub(gapped_before).saturating_add(gapped_now);
        let mut doomed: Vec<Txid> = queue.by_nonce.range(..account.nonce).map(|(_, id)| *id).collect();
        let horizon = account.nonce.saturating_add(self.config.max_future_nonces);
        let mut total = Amount::ZERO;
        let mut cut = None;
        for (nonce, txid) in queue.by_nonce.range(account.nonce..) {
            let spend = self.entries.get(txid).map_or(Amount(u64::MAX), |e| e.spend);
            match total.checked_add(spend) {
                Some(sum) if sum <= account.balance && *nonce <= horizon => total = sum,
                _ => {
                    cut = Some(*nonce);
                    break;
                }
            }
        }
        if let Some(cut) = cut {
            doomed.extend(queue.by_nonce.range(cut..).rev().map(|(_, id)| *id));
        }
        for txid in &doomed {
            self.remove_entry(txid);
        }
        doomed
    }

    fn insert_entry(&mut self, txid: Txid, entry: PoolEntry, account_nonce: u64) {
        let gapped_before = self.gapped_of(&entry.sender);
        let sender = entry.sender;
        let key = entry.fee_key(txid);
        let queue = self
            .senders
            .entry(entry.sender)
            .or_insert_with(|| SenderQueue { account_nonce, by_nonce: BTreeMap::new() });
        let old_tail = queue.by_nonce.last_key_value().map(|(nonce, id)| (*nonce, *id));
        match old_tail {
            Some((tail_nonce, _)) if tail_nonce > entry.nonce() => {}
            _ => {
                if let Some(old) = old_tail.and_then(|(_, id)| self.entries.get(&id).map(|e| e.fee_key(id))) {
                    self.tails.remove(&old);
                }
                self.tails.insert(key);
            }
        }
        queue.by_nonce.insert(entry.nonce(), txid);
        self.by_fee.insert(key);
        self.by_arrival.insert((entry.added_at, txid));
        self.by_recipient.entry(entry.stx.tx.recipient).or_default().insert(txid);
        self.bytes = self.bytes.saturating_add(entry.pool_bytes);
        self.entries.insert(txid, entry);
        self.gapped = self.gapped.saturating_sub(gapped_before).saturating_add(self.gapped_of(&sender));
    }

    fn gapped_of(&self, sender: &Address) -> usize {
        self.senders.get(sender).map_or(0, SenderQueue::gapped)
    }

    /// Transactions held that wait behind a nonce gap.
    pub fn gapped_count(&self) -> usize {
        self.gapped
    }

    fn remove_entry(&mut self, txid: &Txid) -> Option<PoolEntry> {
        let sender = self.entries.get(txid)?.sender;
        self.points.remove(txid);
        let gapped_before = self.gapped_of(&sender);
        let removed = self.remove_entry_uncounted(txid);
        self.gapped = self.gapped.saturating_sub(gapped_before).saturating_add(self.gapped_of(&sender));
        removed
    }

    fn remove_entry_uncounted(&mut self, txid: &Txid) -> Option<PoolEntry> {
        let entry = self.entries.remove(txid)?;
        let key = entry.fee_key(*txid);
        self.by_fee.remove(&key);
        self.by_arrival.remove(&(entry.added_at, *txid));
        let recipient = entry.stx.tx.recipient;
        if let Some(ids) = self.by_recipient.get_mut(&recipient) {
            ids.remove(txid);
            if ids.is_empty() {
                self.by_recipient.remove(&recipient);
            }
        }
        self.bytes = self.bytes.saturating_sub(entry.pool_bytes);
        if let Some(queue) = self.senders.get_mut(&entry.sender) {
            let was_tail = queue.tail() == Some(*txid);
            if queue.by_nonce.get(&entry.nonce()) == Some(txid) {
                queue.by_nonce.remove(&entry.nonce());
            }
            if was_tail {
                self.tails.remove(&key);
                if let Some(new_tail) = queue.tail().and_then(|id| self.entries.get(&id).map(|e| e.fee_key(id))) {
                    self.tails.insert(new_tail);
                }
            }
            if queue.by_nonce.is_empty() {
                self.senders.remove(&entry.sender);
            }
        }
        Some(entry)
    }

    /// Removes a transaction and every later one of its sender, from the top
    /// down, so the sender's sequence keeps no gap.
    fn remove_with_successors(&mut self, txid: &Txid) -> Vec<Txid> {
        let Some(entry) = self.entries.get(txid) else { return Vec::new() };
        let doomed: Vec<Txid> = self
            .senders
            .get(&entry.sender)
            .map(|q| q.by_nonce.range(entry.nonce()..).rev().map(|(_, id)| *id).collect())
            .unwrap_or_default();
        for id in &doomed {
            self.remove_entry(id);
        }
        doomed
    }

    /// Drops entries that have waited `expiry_secs` or longer, with the later
    /// transactions of their senders (which could never be mined without them).
    pub fn expire(&mut self, now: u64) -> Vec<Txid> {
        let Some(cutoff) = now.checked_sub(self.config.expiry_secs) else { return Vec::new() };
        let mut expired = Vec::new();
        while let Some((added_at, txid)) = self.by_arrival.first().copied() {
            if added_at > cutoff {
                break;
            }
            expired.extend(self.remove_with_successors(&txid));
        }
        expired
    }

    /// On connecting `block`: drops its transactions, and brings each of
    /// their senders' queues in line with the new ledger state (`accounts`
    /// at the new tip): stale nonces go, and from the top down whatever the
    /// new balance no longer covers.
    pub fn remove_confirmed(&mut self, block: &Block, accounts: &dyn Fn(&Address) -> Account) -> Pruned {
        let affected: BTreeSet<Address> = block.body.transactions.iter().map(Transaction::sender_address).collect();
        let ready_before: BTreeSet<Txid> = affected
            .iter()
            .filter_map(|a| self.senders.get(a))
            .flat_map(|q| q.ready().into_iter().map(|(_, id)| id))
            .collect();
        let mut pruned = Pruned::default();
        for tx in &block.body.transactions {
            let txid = tx.txid();
            if self.remove_entry(&txid).is_some() {
                pruned.confirmed.push(txid);
            }
        }
        for sender in &affected {
            pruned.dropped.extend(self.revalidate_sender(sender, &accounts(sender)));
        }
        pruned.promoted = affected
            .iter()
            .filter_map(|a| self.senders.get(a))
            .flat_map(|q| q.ready().into_iter().map(|(_, id)| id))
            .filter(|id| !ready_before.contains(id))
            .collect();
        pruned
    }

    /// On undoing `block` (called once the whole reorganisation is done,
    /// `accounts` at the new tip; best for the undone blocks oldest first, so
    /// each sender's nonces come back in order): re-admits the block's
    /// payments whose signature `signatures` knows and that are still valid.
    /// Returns how many came back.
    ///
    /// The signatures are not verified again: they come from the node's own
    /// record of signatures it verified when the transactions entered its
    /// pool, and re-checking a full block's would cost seconds per block.
    ///
    /// Undoing payments may also lower balances (money received in the block
    /// is gone), so every address the block paid is revalidated too.
    pub fn return_disconnected(
        &mut self,
        block: &Block,
        signatures: &dyn SignatureSource,
        accounts: &dyn Fn(&Address) -> Account,
        now: u64,
    ) -> usize {
        let mut returned = 0usize;
        for tx in &block.body.transactions {
            let Some(signature) = signatures.signature(&tx.txid()) else { continue };
            let stx = SignedTransaction { tx: *tx, signature };
            let account = accounts(&tx.sender_address());
            if self.admit(stx, account, now, SignatureCheck::AlreadyVerified).is_ok() {
                returned = returned.saturating_add(1);
            }
        }
        let touched: BTreeSet<Address> = block
            .body
            .transactions
            .iter()
            .flat_map(|tx| [tx.sender_address(), tx.recipient])
            .chain(std::iter::once(block.body.coinbase.recipient))
            .collect();
        for address in &touched {
            if self.senders.contains_key(address) {
                self.revalidate_sender(address, &accounts(address));
            }
        }
        self.trim_gapped();
        returned
    }

    /// Evicts the cheapest gapped sequence tails until the gapped bound holds:
    /// a reorg whose payments cannot all return (no signature kept) leaves
    /// later nonces behind new gaps. Taking a tail never opens a gap.
    fn trim_gapped(&mut self) {
        while self.gapped > self.config.max_gapped {
            let victim = self.tails.iter().find(|key| {
                self.entries
                    .get(&key.txid)
                    .and_then(|e| self.senders.get(&e.sender).map(|q| e.nonce() >= q.first_gapped_nonce()))
                    .unwrap_or(false)
            });
            let Some(txid) = victim.map(|key| key.txid) else { return };
            self.remove_entry(&txid);
        }
    }

    pub fn get(&self, txid: &Txid) -> Option<&SignedTransaction> {
        self.entries.get(txid).map(|e| &e.stx)
    }

    pub fn contains(&self, txid: &Txid) -> bool {
        self.entries.contains_key(txid)
    }

    /// Whether the transaction is in its sender's gap-free run from the
    /// account nonce: relayed and minable. False for unknown txids.
    pub fn is_ready(&self, txid: &Txid) -> bool {
        let Some(entry) = self.entries.get(txid) else { return false };
        let Some(queue) = self.senders.get(&entry.sender) else { return false };
        let nonce = entry.nonce();
        let Some(span) = nonce.checked_sub(queue.account_nonce) else { return false };
        let present = queue.by_nonce.range(queue.account_nonce..=nonce).count();
        u64::try_from(present).ok() == span.checked_add(1)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total encoded size of the pending signed transactions.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The lowest fee that gets a payment in now: the relay minimum, or, in a
    /// full pool, one unit more than the cheapest transaction it could push out.
    pub fn min_fee(&self) -> Amount {
        let floor = self.config.min_relay_fee;
        // A payment of the usual size would not fit without an eviction.
        let full = self.entries.len() >= self.config.max_count
            || self.bytes.saturating_add(MAX_TX_BYTES) > self.config.max_bytes;
        match self.tails.first() {
            Some(cheapest) if full => Amount(cheapest.fee.0.saturating_add(1)).max(floor),
            _ => floor,
        }
    }

    /// The fees of the payments that are ready to be mined, highest first.
    pub fn ready_fees(&self) -> Vec<Amount> {
        let mut fees: Vec<Amount> = self.by_fee.iter().filter(|k| self.is_ready(&k.txid)).map(|k| k.fee).collect();
        fees.reverse();
        fees
    }

    /// Up to `limit` txids, highest fee first (earliest arrival first among equal fees).
    pub fn txids(&self, limit: usize) -> Vec<Txid> {
        self.by_fee.iter().rev().take(limit).map(|k| k.txid).collect()
    }

    /// The pending amounts flowing in to and out of `address` (outgoing
    /// counts fees too): the `pending` balance is confirmed + incoming - outgoing.
    /// Sums saturate at the largest amount rather than wrap.
    pub fn pending_for(&self, address: &Address) -> (Amount, Amount) {
        let saturating_sum = |amounts: &mut dyn Iterator<Item = Amount>| {
            amounts.fold(Amount::ZERO, |acc, a| acc.checked_add(a).unwrap_or(Amount(u64::MAX)))
        };
        let incoming = self.by_recipient.get(address).map_or(Amount::ZERO, |ids| {
            saturating_sum(&mut ids.iter().filter_map(|id| self.entries.get(id)).map(|e| e.stx.tx.amount))
        });
        let outgoing = self.senders.get(address).map_or(Amount::ZERO, |q| {
            saturating_sum(&mut q.by_nonce.values().filter_map(|id| self.entries.get(id)).map(|e| e.spend))
        });
        (incoming, outgoing)
    }

    /// The nonce the sender's next transaction should carry: the account
    /// nonce plus the length of its gap-free pending run from there.
    pub fn next_nonce(&self, address: &Address, account_nonce: u64) -> u64 {
        let run = self.senders.get(address).map_or(0, |q| q.run_from(account_nonce).len());
        account_nonce.saturating_add(u64::try_from(run).unwrap_or(u64::MAX))
    }

    /// Every pending payment with its txid, in no order: the candidates a
    /// compact block is rebuilt from.
    pub fn payments(&self) -> impl Iterator<Item = (Txid, &Transaction)> + '_ {
        self.entries.iter().map(|(txid, e)| (*txid, &e.stx.tx))
    }

    /// Every pending transaction, sender by sender in nonce order, so that
    /// re-adding them in this order (a saved pool) never meets a gap.
    pub fn iter(&self) -> impl Iterator<Item = &SignedTransaction> + '_ {
        self.senders.values().flat_map(|q| q.by_nonce.values()).filter_map(|id| self.entries.get(id)).map(|e| &e.stx)
    }
}

impl SignatureSource for Mempool {
    fn signature(&self, txid: &Txid) -> Option<SignatureBytes> {
        self.entries.get(txid).map(|e| e.stx.signature)
    }
}

/// The least fee that replaces a pending one paying `old`: 10% more, rounded
/// up, in u128 so that no fee can overflow it.
fn replacement_fee(old: Amount) -> u128 {
    u128::from(old.0).saturating_mul(11).div_ceil(10)
}
