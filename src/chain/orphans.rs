//! Blocks whose parent is not known yet, kept a short while and in bounded
//! number so a peer cannot fill memory with them.

use std::collections::{HashMap, VecDeque};

use super::Arrival;
use crate::crypto::pow::Work;
use crate::types::{Block, BlockHash};

/// Orphans kept at most.
pub const MAX_ORPHANS: usize = 64;
/// Seconds an orphan is kept.
pub const ORPHAN_EXPIRY_SECS: u64 = 600;

#[derive(Debug, Default, Clone)]
pub struct OrphanPool {
    /// Each orphan with the time it arrived and how.
    blocks: HashMap<BlockHash, (Block, u64, Arrival)>,
    /// Arrival order, oldest first, for eviction.
    order: VecDeque<BlockHash>,
}

impl OrphanPool {
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.blocks.contains_key(hash)
    }

    /// Adds a block, dropping expired ones and then the oldest beyond the bound.
    pub fn insert(&mut self, block: Block, now: u64, arrival: Arrival) {
        let hash = block.hash();
        if self.blocks.contains_key(&hash) {
            return;
        }
        self.blocks.retain(|_, (_, arrived, _)| now.saturating_sub(*arrived) < ORPHAN_EXPIRY_SECS);
        self.order.retain(|h| self.blocks.contains_key(h));
        while self.blocks.len() >= MAX_ORPHANS {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.blocks.remove(&oldest);
                }
                None => break,
            }
        }
        self.blocks.insert(hash, (block, now, arrival));
        self.order.push_back(hash);
    }

    /// Removes and returns the orphans whose parent is `parent`, each with how it arrived.
    pub fn take_children(&mut self, parent: &BlockHash) -> Vec<(Block, Arrival)> {
        let children: Vec<BlockHash> =
            self.blocks.iter().filter(|(_, (b, _, _))| b.header.prev == *parent).map(|(h, _)| *h).collect();
        let out = children.iter().filter_map(|h| self.blocks.remove(h)).map(|(b, _, a)| (b, a)).collect();
        self.order.retain(|h| self.blocks.contains_key(h));
        out
    }

    /// The most work that orphans waiting on `hash` add to it: the heaviest
    /// chain of descendants in the pool. Bounded by the pool's size, so a
    /// walk costs at most [`MAX_ORPHANS`] steps.
    pub fn descendant_work(&self, hash: &BlockHash) -> Work {
        let mut best = Work::default();
        // (block, work of the orphans from `hash` down to and including it)
        let mut stack: Vec<(BlockHash, Work)> = vec![(*hash, Work::default())];
        let mut steps = 0;
        while let Some((at, work)) = stack.pop() {
            if work > best {
                best = work;
            }
            for (child_hash, (child, _, _)) in self.blocks.iter().filter(|(_, (b, _, _))| b.header.prev == at) {
                steps += 1;
                if steps > MAX_ORPHANS {
                    return best;
                }
                let child_work = work.checked_add(super::block_work(&child.header)).unwrap_or(work);
                stack.push((*child_hash, child_work));
            }
        }
        best
    }
}
