//! What the chain needs from storage, and an in-memory implementation.
//!
//! Connecting or disconnecting a block is one call, which an implementation
//! must make atomic: after a crash either all of it is there or none.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::state::{Account, BlockUndo, LedgerUpdate, MaturingReward, MemoryLedger};
use crate::types::{Address, Block, BlockHash, BlockHeader, SignatureBytes, Txid};

/// How many of the most recent best-chain blocks' transaction signatures a
/// store keeps at the least, so undone payments can return to the mempool.
pub const SIGNATURE_KEEP_BLOCKS: u64 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("database error: {0}")]
pub struct StoreError(pub String);

/// Where a confirmed transaction sits: block, height, and position (0 is the coinbase).
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct TxLocation {
    pub block: BlockHash,
    pub height: u64,
    pub index: u32,
}

pub trait ChainStore {
    // The ledger at the tip.
    fn account(&self, address: &Address) -> Result<Option<Account>, StoreError>;
    fn maturing_reward(&self, height: u64) -> Result<Option<MaturingReward>, StoreError>;

    // Blocks, on the best chain or not.
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError>;
    fn undo_record(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError>;
    /// Headers of every stored block, in no particular order.
    fn stored_headers(&self) -> Result<Vec<BlockHeader>, StoreError>;
    /// Blocks found invalid, so they are not fetched and checked again.
    fn invalid_blocks(&self) -> Result<Vec<BlockHash>, StoreError>;

    // The best chain and its indexes.
    fn tip(&self) -> Result<Option<BlockHash>, StoreError>;
    fn best_hash_at(&self, height: u64) -> Result<Option<BlockHash>, StoreError>;
    fn tx_location(&self, txid: &Txid) -> Result<Option<TxLocation>, StoreError>;
    /// Confirmed transactions touching `address` (as sender, recipient or
    /// coinbase recipient), newest first.
    fn address_history(&self, address: &Address, limit: usize) -> Result<Vec<(TxLocation, Txid)>, StoreError>;
    /// The signature of a recently confirmed transaction, if it was seen.
    fn confirmed_signature(&self, txid: &Txid) -> Result<Option<SignatureBytes>, StoreError>;

    // Writes.
    /// Stores a block that is not (yet) on the best chain.
    fn put_block(&mut self, block: &Block) -> Result<(), StoreError>;
    fn mark_invalid(&mut self, hash: &BlockHash) -> Result<(), StoreError>;
    /// Atomically: store the block, apply the ledger update, keep the undo
    /// record, make it the tip, index its transactions and keep `signatures`.
    fn connect_block(
        &mut self,
        block: &Block,
        update: &LedgerUpdate,
        undo: &BlockUndo,
        signatures: &[(Txid, SignatureBytes)],
    ) -> Result<(), StoreError>;
    /// Atomically: restore the ledger from `undo`, make the parent the tip,
    /// and drop the block's transactions from the indexes.
    fn disconnect_block(&mut self, block: &Block, undo: &BlockUndo) -> Result<(), StoreError>;
    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), StoreError>;
}

/// The addresses a block's transaction at `index` touches (0 is the coinbase).
pub fn addresses_of_entry(block: &Block, index: usize) -> Vec<Address> {
    if index == 0 {
        return vec![block.body.coinbase.recipient];
    }
    match block.body.transactions.get(index - 1) {
        Some(tx) => {
            let sender = tx.sender_address();
            if sender == tx.recipient {
                vec![sender]
            } else {
                vec![sender, tx.recipient]
            }
        }
        None => Vec::new(),
    }
}

/// A store in memory: for tests of the chain logic, and short-lived tools.
#[derive(Default, Debug, Clone)]
pub struct MemoryStore {
    pub ledger: MemoryLedger,
    blocks: HashMap<BlockHash, Block>,
    undo: HashMap<BlockHash, BlockUndo>,
    invalid: HashSet<BlockHash>,
    best: Vec<BlockHash>,
    txs: HashMap<Txid, TxLocation>,
    history: HashMap<Address, BTreeMap<(u64, u32), Txid>>,
    signatures: HashMap<Txid, SignatureBytes>,
}

impl ChainStore for MemoryStore {
    fn account(&self, address: &Address) -> Result<Option<Account>, StoreError> {
        Ok(self.ledger.account(address))
    }
    fn maturing_reward(&self, height: u64) -> Result<Option<MaturingReward>, StoreError> {
        Ok(self.ledger.rewards.get(&height).copied())
    }
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        Ok(self.blocks.get(hash).cloned())
    }
    fn undo_record(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError> {
        Ok(self.undo.get(hash).cloned())
    }
    fn stored_headers(&self) -> Result<Vec<BlockHeader>, StoreError> {
        Ok(self.blocks.values().map(|b| b.header).collect())
    }
    fn invalid_blocks(&self) -> Result<Vec<BlockHash>, StoreError> {
        Ok(self.invalid.iter().copied().collect())
    }
    fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        Ok(self.best.last().copied())
    }
    fn best_hash_at(&self, height: u64) -> Result<Option<BlockHash>, StoreError> {
        Ok(usize::try_from(height).ok().and_then(|h| self.best.get(h)).copied())
    }
    fn tx_location(&self, txid: &Txid) -> Result<Option<TxLocation>, StoreError> {
        Ok(self.txs.get(txid).copied())
    }
    fn address_history(&self, address: &Address, limit: usize) -> Result<Vec<(TxLocation, Txid)>, StoreError> {
        let Some(entries) = self.history.get(address) else { return Ok(Vec::new()) };
        Ok(entries
            .iter()
            .rev()
            .take(limit)
            .filter_map(|(_, txid)| self.txs.get(txid).map(|loc| (*loc, *txid)))
            .collect())
    }
    fn confirmed_signature(&self, txid: &Txid) -> Result<Option<SignatureBytes>, StoreError> {
        Ok(self.signatures.get(txid).copied())
    }
    fn put_block(&mut self, block: &Block) -> Result<(), StoreError> {
        self.blocks.insert(block.hash(), block.clone());
        Ok(())
    }
    fn mark_invalid(&mut self, hash: &BlockHash) -> Result<(), StoreError> {
        self.invalid.insert(*hash);
        Ok(())
    }
    fn connect_block(
        &mut self,
        block: &Block,
        update: &LedgerUpdate,
        undo: &BlockUndo,
        signatures: &[(Txid, SignatureBytes)],
    ) -> Result<(), StoreError> {
        let hash = block.hash();
        if usize::try_from(block.height()).ok() != Some(self.best.len()) {
            return Err(StoreError(format!("block {hash} at height {} does not extend the tip", block.height())));
        }
        self.blocks.insert(hash, block.clone());
        self.ledger.apply(update);
        self.undo.insert(hash, undo.clone());
        self.best.push(hash);
        for (index, txid) in block.txids().into_iter().enumerate() {
            let index32 = u32::try_from(index).map_err(|_| StoreError("too many transactions".into()))?;
            self.txs.insert(txid, TxLocation { block: hash, height: block.height(), index: index32 });
            for address in addresses_of_entry(block, index) {
                self.history.entry(address).or_default().insert((block.height(), index32), txid);
            }
        }
        self.signatures.extend(signatures.iter().copied());
        Ok(())
    }
    fn disconnect_block(&mut self, block: &Block, undo: &BlockUndo) -> Result<(), StoreError> {
        let hash = block.hash();
        if self.best.last() != Some(&hash) {
            return Err(StoreError(format!("block {hash} is not the tip")));
        }
        self.ledger.undo(undo);
        self.best.pop();
        self.undo.remove(&hash);
        for (index, txid) in block.txids().into_iter().enumerate() {
            self.txs.remove(&txid);
            let index32 = u32::try_from(index).unwrap_or(u32::MAX);
            for address in addresses_of_entry(block, index) {
                if let Some(entries) = self.history.get_mut(&address) {
                    entries.remove(&(block.height(), index32));
                }
            }
        }
        Ok(())
    }
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
