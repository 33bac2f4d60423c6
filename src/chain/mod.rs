//! The block index over every known block, fork choice by most cumulative
//! work (the first seen wins a tie), reorganisation of any depth by undo and
//! connect, and a bounded pool for blocks whose parent is not known yet.
//! Generic over [`ChainStore`], so it runs the same on sled and in memory.
// A validator must never panic on hostile input.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod headers;
pub mod orphans;
pub mod store;

use std::collections::HashMap;

use crate::consensus::contextual::check_not_too_far_ahead;
use crate::consensus::{self, median_time_past, rules, Params, ParentContext, ValidationError};
use crate::crypto::{Target, Work};
use crate::state::{self, Account, LedgerSnapshot};
use crate::types::{Address, Block, BlockHash, BlockHeader, CompactTarget, SignatureBytes, Txid};

pub use headers::{HeaderChainError, HeaderCursor};
pub use orphans::OrphanPool;
pub use store::{ChainStore, MemoryStore, StoreError, TxLocation, SIGNATURE_KEEP_BLOCKS};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the chain knows of one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub header: BlockHeader,
    pub cumulative_work: Work,
    pub invalid: bool,
    /// Order of arrival: among chains of equal work the first seen stays best.
    pub seen: u64,
}

/// How the best chain moved: blocks undone (tip first), then blocks connected (in order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainUpdate {
    pub disconnected: Vec<Block>,
    pub connected: Vec<Block>,
}

impl ChainUpdate {
    pub fn is_empty(&self) -> bool {
        self.disconnected.is_empty() && self.connected.is_empty()
    }

    fn absorb(&mut self, other: ChainUpdate) {
        self.disconnected.extend(other.disconnected);
        self.connected.extend(other.connected);
    }
}

/// Where a newly accepted block went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockAccepted {
    /// It (or a chain it completed) became the best chain.
    BestChain(ChainUpdate),
    /// Valid so far and stored, but on a chain with no more work than the best.
    SideChain,
}

/// The header fields a new block on a given parent must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextBlock {
    pub prev: BlockHash,
    pub height: u64,
    pub target: CompactTarget,
    /// The earliest valid time: one second after the median time past.
    pub min_time: u64,
}

/// Looks up the signature of a transaction (the mempool knows those it relayed),
/// so the store can keep them for recently confirmed transactions.
pub trait SignatureSource {
    fn signature(&self, txid: &Txid) -> Option<SignatureBytes>;
}

/// No signatures known.
pub struct NoSignatures;

impl SignatureSource for NoSignatures {
    fn signature(&self, _txid: &Txid) -> Option<SignatureBytes> {
        None
    }
}

#[derive(Clone)]
pub struct Chain<S: ChainStore> {
    params: &'static Params,
    store: S,
    index: HashMap<BlockHash, IndexEntry>,
    /// The best chain by height, mirrored from the store.
    best: Vec<BlockHash>,
    orphans: OrphanPool,
    next_seen: u64,
    /// Pairings of transactions seen in the mempool, reused by block validation.
    signature_cache: Option<std::sync::Arc<crate::crypto::pairing_cache::PairingCache>>,
}

/// How a block reached us: the fork-spam rule applies only to blocks nobody asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Asked for along a validated header chain (sync), or our own.
    Requested,
    /// Relayed to us (gossip): stored only on a chain with at least the best chain's work.
    Unrequested,
}

/// Whether `accept_block` checks the aggregate signature itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    Verify,
    /// The caller verified it already (sync checks a whole batch of blocks in one multi-pairing).
    AlreadyVerified,
}

impl<S: ChainStore> Chain<S> {
    /// Opens the chain in `store`, writing the genesis block into an empty one.
    pub fn open(params: &'static Params, mut store: S) -> Result<Chain<S>, ChainError> {
        if store.tip()?.is_none() {
            let genesis = &params.genesis;
            let update = state::LedgerUpdate { height: 0, accounts: vec![], new_reward: None, matured_height: None };
            let undo = state::BlockUndo { height: 0, accounts: vec![], matured: None };
            store.connect_block(genesis, &update, &undo, &[])?;
            store.flush()?;
        }
        match store.best_hash_at(0)? {
            Some(hash) if hash == params.genesis_hash => {}
            _ => {
                return Err(ChainError::Store(StoreError(format!(
                    "the database holds another network's chain, not {}",
                    params.network
                ))))
            }
        }
        let mut chain = Chain {
            params,
            store,
            index: HashMap::new(),
            best: Vec::new(),
            orphans: OrphanPool::default(),
            next_seen: 0,
            signature_cache: None,
        };
        chain.load_index()?;
        Ok(chain)
    }

    /// Rebuilds the in-memory index from the stored headers: parents before
    /// children, so cumulative work adds up along each chain.
    fn load_index(&mut self) -> Result<(), ChainError> {
        let mut headers = self.store.stored_headers()?;
        headers.sort_by_key(|h| h.height);
        let invalid: std::collections::HashSet<BlockHash> = self.store.invalid_blocks()?.into_iter().collect();
        for header in headers {
            let hash = header.hash();
            let parent = self.index.get(&header.prev);
            let (parent_work, parent_invalid) = match parent {
                Some(p) => (p.cumulative_work, p.invalid),
                None if header.height == 0 => (Work::default(), false),
                // A stored block whose parent is gone cannot be on any chain.
                None => continue,
            };
            let work = parent_work.checked_add(block_work(&header)).unwrap_or(parent_work);
            let seen = self.next_seen;
            self.next_seen += 1;
            self.index.insert(
                hash,
                IndexEntry { header, cumulative_work: work, invalid: parent_invalid || invalid.contains(&hash), seen },
            );
        }
        let tip = self.store.tip()?.ok_or_else(|| StoreError("the database has no tip".into()))?;
        let mut best = Vec::new();
        let mut cursor = Some(tip);
        while let Some(hash) = cursor {
            let entry = self.index.get(&hash).ok_or_else(|| StoreError(format!("tip ancestor {hash} is missing")))?;
            best.push(hash);
            cursor = (entry.header.height > 0).then_some(entry.header.prev);
        }
        best.reverse();
        self.best = best;
        Ok(())
    }

    /// Validates aggregate signatures through `cache`, which the mempool fills.
    pub fn set_signature_cache(&mut self, cache: std::sync::Arc<crate::crypto::pairing_cache::PairingCache>) {
        self.signature_cache = Some(cache);
    }

    pub fn params(&self) -> &'static Params {
        self.params
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the store back, closing the chain.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Makes every connected block durable. Call before announcing or reporting blocks.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush()
    }

    pub fn tip(&self) -> BlockHash {
        self.best.last().copied().unwrap_or(self.params.genesis_hash)
    }

    pub fn height(&self) -> u64 {
        self.best.len().saturating_sub(1) as u64
    }

    pub fn tip_header(&self) -> BlockHeader {
        self.index.get(&self.tip()).map(|e| e.header).unwrap_or(self.params.genesis.header)
    }

    pub fn tip_work(&self) -> Work {
        self.index.get(&self.tip()).map(|e| e.cumulative_work).unwrap_or_default()
    }

    pub fn entry(&self, hash: &BlockHash) -> Option<&IndexEntry> {
        self.index.get(hash)
    }

    pub fn best_hash_at(&self, height: u64) -> Option<BlockHash> {
        usize::try_from(height).ok().and_then(|h| self.best.get(h)).copied()
    }

    pub fn is_on_best_chain(&self, hash: &BlockHash) -> bool {
        self.index.get(hash).is_some_and(|e| self.best_hash_at(e.header.height) == Some(*hash))
    }

    pub fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        self.store.block(hash)
    }

    /// The account at the tip (the default, empty account when it never existed).
    pub fn account(&self, address: &Address) -> Result<Account, StoreError> {
        Ok(self.store.account(address)?.unwrap_or_default())
    }

    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    /// The header context a block on top of `parent` is checked against.
    fn parent_context(&self, parent: &BlockHash) -> Option<(BlockHeader, u64, Option<BlockHeader>)> {
        let parent_entry = self.index.get(parent)?;
        let times = self.ancestor_times(parent);
        Some((parent_entry.header, median_time_past(&times), self.anchor_of(parent_entry)))
    }

    /// The timestamps of `hash` and its ancestors, up to `MEDIAN_TIME_SPAN`, oldest first.
    fn ancestor_times(&self, hash: &BlockHash) -> Vec<u64> {
        let mut times = Vec::with_capacity(consensus::params::MEDIAN_TIME_SPAN);
        let mut cursor = self.index.get(hash);
        while let Some(entry) = cursor {
            if times.len() == consensus::params::MEDIAN_TIME_SPAN {
                break;
            }
            times.push(entry.header.time);
            cursor = if entry.header.height == 0 { None } else { self.index.get(&entry.header.prev) };
        }
        times.reverse();
        times
    }

    /// Block 1 of the chain `entry` is on: the best chain's unless the branch forks below it.
    fn anchor_of(&self, entry: &IndexEntry) -> Option<BlockHeader> {
        let mut cursor = entry;
        loop {
            if cursor.header.height == 0 {
                return None;
            }
            if cursor.header.height == 1 {
                return Some(cursor.header);
            }
            let hash = cursor.header.hash();
            if self.best_hash_at(cursor.header.height) == Some(hash) {
                return self.best_hash_at(1).and_then(|h| self.index.get(&h)).map(|e| e.header);
            }
            cursor = self.index.get(&cursor.header.prev)?;
        }
    }

    /// Hashes that describe the best chain to a peer: the tip, then back by
    /// doubling steps, genesis last (Bitcoin's block locator).
    pub fn locator(&self) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut height = self.height();
        let mut step = 1u64;
        loop {
            if let Some(hash) = self.best_hash_at(height) {
                out.push(hash);
            }
            if height == 0 {
                break;
            }
            if out.len() >= 10 {
                step = step.saturating_mul(2);
            }
            height = height.saturating_sub(step);
        }
        out
    }

    /// Headers of the best chain after the first `locator` hash on it (genesis
    /// when none is), at most `max`.
    pub fn headers_after(&self, locator: &[BlockHash], max: usize) -> Vec<BlockHeader> {
        let start = locator
            .iter()
            .find(|h| self.is_on_best_chain(h))
            .and_then(|h| self.index.get(h))
            .map(|e| e.header.height)
            .unwrap_or(0);
        (start.saturating_add(1)..=self.height())
            .take(max)
            .filter_map(|h| self.best_hash_at(h))
            .filter_map(|hash| self.index.get(&hash).map(|e| e.header))
            .collect()
    }

    /// Whether the block is known (stored, or known to be invalid).
    pub fn knows(&self, hash: &BlockHash) -> bool {
        self.index.contains_key(hash) || self.orphans.contains(hash)
    }

    /// What a block on top of `parent` must carry: height, target, and a
    /// time after the median time past. `None` when `parent` is unknown.
    pub fn next_block_on(&self, parent: &BlockHash) -> Option<NextBlock> {
        let (parent_header, median_time_past, anchor) = self.parent_context(parent)?;
        Some(NextBlock {
            prev: *parent,
            height: parent_header.height.saturating_add(1),
            target: consensus::next_target(self.params, &parent_header, anchor.as_ref()),
            min_time: median_time_past.saturating_add(1),
        })
    }

    /// [`Chain::next_block_on`] the tip: what a miner needs.
    pub fn next_block(&self) -> NextBlock {
        let tip = self.tip();
        self.next_block_on(&tip).unwrap_or(NextBlock {
            prev: tip,
            height: self.height().saturating_add(1),
            target: self.params.initial_target,
            min_time: 0,
        })
    }

    /// Validates `block` and adds it: to the best chain when it brings the
    /// most work (reorganising if needed), as a side chain otherwise, or to
    /// the orphan pool when its parent is unknown (then `UnknownParent`).
    /// Nothing is flushed: call [`Chain::flush`] before reporting the result.
    pub fn accept_block(
        &mut self,
        block: Block,
        now: u64,
        signatures: &dyn SignatureSource,
    ) -> Result<BlockAccepted, ChainError> {
        self.accept_block_with(block, now, signatures, SignatureCheck::Verify)
    }

    /// [`Chain::accept_block`], trusting the caller's check of the aggregate
    /// signature when `check` says so.
    pub fn accept_block_with(
        &mut self,
        block: Block,
        now: u64,
        signatures: &dyn SignatureSource,
        check: SignatureCheck,
    ) -> Result<BlockAccepted, ChainError> {
        self.accept_arrived(block, now, signatures, check, Arrival::Requested)
    }

    /// [`Chain::accept_block`] for a block that arrived unrequested: one on a
    /// chain with less cumulative work than the best is refused with
    /// `LessWorkThanBest` before any costly check, and nothing is written
    /// (Bitcoin Core's rule for unrequested blocks). Otherwise a cheap fork
    /// from genesis, whose back-dated block 1 makes ASERT hand out easy
    /// targets, would make every node store it for ever.
    pub fn accept_unrequested_block(
        &mut self,
        block: Block,
        now: u64,
        signatures: &dyn SignatureSource,
    ) -> Result<BlockAccepted, ChainError> {
        self.accept_arrived(block, now, signatures, SignatureCheck::Verify, Arrival::Unrequested)
    }

    /// What can be said of a relayed block from its header alone, before its
    /// body is rebuilt (a compact block): it is not known already, the header
    /// is valid with its proof of work, its parent is known and valid, the
    /// header fits the parent, and its chain has at least the best chain's
    /// work (the rule of [`Chain::accept_unrequested_block`]). Nothing is
    /// written: the block itself is judged again when it is accepted.
    pub fn precheck_relayed_header(&self, header: &BlockHeader, now: u64) -> Result<(), ValidationError> {
        let hash = header.hash();
        if let Some(entry) = self.index.get(&hash) {
            return Err(if entry.invalid { ValidationError::InvalidAncestor } else { ValidationError::DuplicateBlock });
        }
        rules::check_header(self.params, header)?;
        let Some((parent, median_time_past, anchor)) = self.parent_context(&header.prev) else {
            check_not_too_far_ahead(self.params, header, now)?;
            return Err(ValidationError::UnknownParent(header.prev));
        };
        let parent_entry = self.index.get(&header.prev);
        if parent_entry.is_some_and(|p| p.invalid) {
            return Err(ValidationError::InvalidAncestor);
        }
        let parent_work = parent_entry.map(|p| p.cumulative_work).unwrap_or_default();
        let work = parent_work.checked_add(block_work(header)).unwrap_or(parent_work);
        if work.checked_add(self.orphans.descendant_work(&hash)).unwrap_or(work) < self.tip_work() {
            return Err(ValidationError::LessWorkThanBest);
        }
        let context = ParentContext { parent: &parent, median_time_past, anchor: anchor.as_ref() };
        consensus::check_header_against_parent(self.params, header, &context, now)
    }

    fn accept_arrived(
        &mut self,
        block: Block,
        now: u64,
        signatures: &dyn SignatureSource,
        check: SignatureCheck,
        arrival: Arrival,
    ) -> Result<BlockAccepted, ChainError> {
        let hash = block.hash();
        let outcome = self.accept_one(block, now, signatures, check, arrival)?;
        let mut update = match outcome {
            BlockAccepted::BestChain(update) => update,
            BlockAccepted::SideChain => ChainUpdate::default(),
        };
        let mut side_chain = update.is_empty();
        // Blocks that were waiting for this one.
        let mut ready = self.orphans.take_children(&hash);
        while let Some((child, child_arrival)) = ready.pop() {
            let child_hash = child.hash();
            // Each child is judged by how it arrived itself.
            let accepted = self.accept_one(child, now, signatures, SignatureCheck::Verify, child_arrival);
            if let Ok(BlockAccepted::BestChain(more)) = accepted {
                update.absorb(more);
                side_chain = false;
            }
            ready.extend(self.orphans.take_children(&child_hash));
        }
        Ok(if side_chain && update.is_empty() { BlockAccepted::SideChain } else { BlockAccepted::BestChain(update) })
    }

    fn accept_one(
        &mut self,
        block: Block,
        now: u64,
        signatures: &dyn SignatureSource,
        check: SignatureCheck,
        arrival: Arrival,
    ) -> Result<BlockAccepted, ChainError> {
        let hash = block.hash();
        if let Some(entry) = self.index.get(&hash) {
            return Err(
                if entry.invalid { ValidationError::InvalidAncestor } else { ValidationError::DuplicateBlock }.into()
            );
        }
        // Cheap and context-free: size, header, proof of work, body commitment, structure.
        rules::check_block_structure(self.params, &block)?;
        let Some((parent, median_time_past, anchor)) = self.parent_context(&block.header.prev) else {
            // Too far ahead is checked first so the pool holds no block we
            // would refuse anyway.
            check_not_too_far_ahead(self.params, &block.header, now)?;
            let prev = block.header.prev;
            self.orphans.insert(block, now, arrival);
            return Err(ValidationError::UnknownParent(prev).into());
        };
        let parent_entry = self.index.get(&block.header.prev).cloned();
        if parent_entry.as_ref().is_some_and(|p| p.invalid) {
            self.mark_invalid(hash, block.header)?;
            return Err(ValidationError::InvalidAncestor.into());
        }
        let parent_work = parent_entry.as_ref().map(|p| p.cumulative_work).unwrap_or_default();
        let work = parent_work.checked_add(block_work(&block.header)).unwrap_or(parent_work);
        // Orphans already waiting on this block count: a relayed branch that
        // arrived out of order is judged by the work it brings as a whole.
        if arrival == Arrival::Unrequested
            && work.checked_add(self.orphans.descendant_work(&hash)).unwrap_or(work) < self.tip_work()
        {
            // Not marked either: the index holds only what is stored or known invalid.
            return Err(ValidationError::LessWorkThanBest.into());
        }
        let context = ParentContext { parent: &parent, median_time_past, anchor: anchor.as_ref() };
        match consensus::check_header_against_parent(self.params, &block.header, &context, now) {
            Ok(()) => {}
            // May become valid as the clock moves: not marked.
            Err(e @ ValidationError::TimeTooFarAhead { .. }) => return Err(e.into()),
            Err(e) => {
                self.mark_invalid(hash, block.header)?;
                return Err(e.into());
            }
        }
        // The costly check last. The commitment matched, so the header itself is bad.
        if check == SignatureCheck::Verify {
            if let Err(e) = rules::aggregate_signature_verifies_with(&block, self.signature_cache.as_deref()) {
                self.mark_invalid(hash, block.header)?;
                return Err(e.into());
            }
        }

        self.store.put_block(&block)?;
        let seen = self.next_seen;
        self.next_seen += 1;
        self.index.insert(hash, IndexEntry { header: block.header, cumulative_work: work, invalid: false, seen });

        if work > self.tip_work() {
            let update = self.reorganize_to(hash, signatures)?;
            Ok(BlockAccepted::BestChain(update))
        } else {
            Ok(BlockAccepted::SideChain)
        }
    }

    fn mark_invalid(&mut self, hash: BlockHash, header: BlockHeader) -> Result<(), StoreError> {
        self.store.mark_invalid(&hash)?;
        let seen = self.next_seen;
        self.next_seen += 1;
        self.index.insert(hash, IndexEntry { header, cumulative_work: Work::default(), invalid: true, seen });
        Ok(())
    }

    /// Makes `new_tip` the tip: undoes the best chain down to the fork point,
    /// then connects the new branch. If a block of the branch breaks a ledger
    /// rule, it and its descendants are marked invalid and the old chain is restored.
    fn reorganize_to(
        &mut self,
        new_tip: BlockHash,
        signatures: &dyn SignatureSource,
    ) -> Result<ChainUpdate, ChainError> {
        let mut branch = Vec::new();
        let mut cursor = new_tip;
        while !self.is_on_best_chain(&cursor) {
            branch.push(cursor);
            let entry = self.index.get(&cursor).ok_or_else(|| StoreError(format!("index lost block {cursor}")))?;
            cursor = entry.header.prev;
        }
        branch.reverse();
        let fork_height = self.index.get(&cursor).map(|e| e.header.height).unwrap_or(0);

        let mut update = ChainUpdate::default();
        while self.height() > fork_height {
            update.disconnected.push(self.disconnect_tip()?);
        }
        for (i, hash) in branch.iter().enumerate() {
            let block = self.stored_block(hash)?;
            match self.connect_tip(&block, signatures) {
                Ok(()) => update.connected.push(block),
                Err(ChainError::Invalid(rule)) => {
                    for bad in branch.iter().skip(i) {
                        self.store.mark_invalid(bad)?;
                        if let Some(entry) = self.index.get_mut(bad) {
                            entry.invalid = true;
                        }
                    }
                    // Back to the chain we left: it was valid, and had at least as much work.
                    while self.height() > fork_height {
                        self.disconnect_tip()?;
                    }
                    for old in update.disconnected.iter().rev() {
                        self.connect_tip(old, signatures)?;
                    }
                    return Err(ChainError::Invalid(rule));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(update)
    }

    fn stored_block(&self, hash: &BlockHash) -> Result<Block, StoreError> {
        self.store.block(hash)?.ok_or_else(|| StoreError(format!("block {hash} is indexed but not stored")))
    }

    fn snapshot(&self, block: &Block) -> Result<LedgerSnapshot, StoreError> {
        let maturing = match state::maturing_height(self.params, block.height()) {
            Some(h) => self.store.maturing_reward(h)?,
            None => None,
        };
        let mut accounts = HashMap::new();
        for address in state::touched_addresses(block, maturing.as_ref()) {
            accounts.insert(address, self.store.account(&address)?);
        }
        Ok(LedgerSnapshot { accounts, maturing })
    }

    fn connect_tip(&mut self, block: &Block, signatures: &dyn SignatureSource) -> Result<(), ChainError> {
        let snapshot = self.snapshot(block)?;
        let (update, undo) = state::connect_block(&snapshot, block)?;
        let sigs: Vec<(Txid, SignatureBytes)> = block
            .body
            .transactions
            .iter()
            .filter_map(|tx| {
                let txid = tx.txid();
                signatures.signature(&txid).map(|s| (txid, s))
            })
            .collect();
        self.store.connect_block(block, &update, &undo, &sigs)?;
        self.best.push(block.hash());
        Ok(())
    }

    fn disconnect_tip(&mut self) -> Result<Block, ChainError> {
        let hash = self.tip();
        let block = self.stored_block(&hash)?;
        let undo = self.store.undo_record(&hash)?.ok_or_else(|| StoreError(format!("no undo record for {hash}")))?;
        self.store.disconnect_block(&block, &undo)?;
        self.best.pop();
        Ok(block)
    }
}

/// The work a header's target stands for (none for an invalid target).
pub fn block_work(header: &BlockHeader) -> Work {
    Target::from_compact(header.target).map(|t| t.work()).unwrap_or_default()
}

#[cfg(test)]
mod tests;
