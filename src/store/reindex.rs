//! `ourcoind --reindex`: rebuilds the ledger and every index from the
//! stored blocks of the best chain, validating each again.

use crate::chain::{Chain, ChainError, ChainStore, NoSignatures, StoreError};
use crate::consensus::Params;
use crate::types::BlockHash;

use super::layout::sled_error;
use super::SledStore;

/// Blocks connected between two flushes while reindexing.
const FLUSH_EVERY: usize = 1_000;

impl SledStore {
    /// Drops every derived tree (ledger, indexes, undo records, best chain,
    /// headers, invalid marks), keeping the blocks themselves and signatures.
    fn clear_derived_state(&self) -> Result<(), StoreError> {
        for tree in [
            &self.headers,
            &self.undo,
            &self.invalid,
            &self.best,
            &self.accounts,
            &self.rewards,
            &self.txs,
            &self.history,
        ] {
            tree.clear().map_err(|e| sled_error("clearing a tree for reindex", e))?;
        }
        self.meta.remove(super::layout::TIP_KEY).map_err(|e| sled_error("clearing the tip for reindex", e))?;
        self.db.flush().map_err(|e| sled_error("flushing before reindex", e))?;
        Ok(())
    }
}

/// Rebuilds the chain state in `store` from its best chain's stored blocks.
pub fn reindex(store: SledStore, params: &'static Params) -> Result<SledStore, ChainError> {
    let mut hashes: Vec<BlockHash> = Vec::new();
    while let Some(hash) = store.best_hash_at(hashes.len() as u64)? {
        hashes.push(hash);
    }
    tracing::info!(blocks = hashes.len(), "reindexing the best chain from stored blocks");
    store.clear_derived_state()?;
    let mut chain = Chain::open(params, store)?;
    for (i, hash) in hashes.iter().enumerate().skip(1) {
        let Some(block) = chain.block(hash)? else {
            tracing::warn!(height = i, %hash, "block missing; the reindexed chain ends here");
            break;
        };
        let now = block.header.time;
        chain.accept_block(block, now, &NoSignatures)?;
        if i % FLUSH_EVERY == 0 {
            chain.flush()?;
            tracing::info!(height = i, "reindexing");
        }
    }
    chain.flush()?;
    tracing::info!(height = chain.height(), "reindex done");
    Ok(chain.into_store())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{extend, fund, regtest, TestKey};
    use crate::types::{Address, COIN};

    #[test]
    fn reindex_rebuilds_the_same_ledger_and_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<TestKey> = (0..2).map(TestKey::new).collect();
        let (tip, height, accounts, history) = {
            let mut chain = Chain::open(regtest(), SledStore::open(dir.path()).unwrap()).unwrap();
            fund(&mut chain, &keys).unwrap();
            let pay = keys[0].pay(regtest().chain_id, keys[1].address, COIN, 1_000, 0);
            extend(&mut chain, Address([5; 20]), &[pay]).unwrap();
            chain.flush().unwrap();
            let accounts: Vec<_> = keys.iter().map(|k| chain.account(&k.address).unwrap()).collect();
            let history = chain.store().address_history(&keys[1].address, 100).unwrap();
            (chain.tip(), chain.height(), accounts, history)
        };
        let store = reindex(SledStore::open(dir.path()).unwrap(), regtest()).unwrap();
        let chain = Chain::open(regtest(), store).unwrap();
        assert_eq!((chain.tip(), chain.height()), (tip, height));
        let again: Vec<_> = keys.iter().map(|k| chain.account(&k.address).unwrap()).collect();
        assert_eq!(again, accounts);
        assert_eq!(chain.store().address_history(&keys[1].address, 100).unwrap(), history);
    }
}
