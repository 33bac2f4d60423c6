//! Blocks whose parent is not known yet, kept a short while and in bounded
//! number so a peer cannot fill memory with them.

use std::collections::{HashMap, VecDeque};

use crate::types::{Block, BlockHash};

/// Orphans kept at most.
pub const MAX_ORPHANS: usize = 64;
/// Seconds an orphan is kept.
pub const ORPHAN_EXPIRY_SECS: u64 = 600;

#[derive(Debug, Default, Clone)]
pub struct OrphanPool {
    blocks: HashMap<BlockHash, (Block, u64)>,
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
    pub fn insert(&mut self, block: Block, now: u64) {
        let hash = block.hash();
        if self.blocks.contains_key(&hash) {
            return;
        }
        self.blocks.retain(|_, (_, arrived)| now.saturating_sub(*arrived) < ORPHAN_EXPIRY_SECS);
        self.order.retain(|h| self.blocks.contains_key(h));
        while self.blocks.len() >= MAX_ORPHANS {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.blocks.remove(&oldest);
                }
                None => break,
            }
        }
        self.blocks.insert(hash, (block, now));
        self.order.push_back(hash);
    }

    /// Removes and returns the orphans whose parent is `parent`.
    pub fn take_children(&mut self, parent: &BlockHash) -> Vec<Block> {
        let children: Vec<BlockHash> =
            self.blocks.iter().filter(|(_, (b, _))| b.header.prev == *parent).map(|(h, _)| *h).collect();
        let out = children.iter().filter_map(|h| self.blocks.remove(h)).map(|(b, _)| b).collect();
        self.order.retain(|h| self.blocks.contains_key(h));
        out
    }
}
