//! The sled implementation of [`ChainStore`]: one atomic transaction per
//! connected or disconnected block.
//!
//! Connecting a block writes the block, its header, its undo record, the
//! ledger changes, the new tip and the transaction indexes in one sled
//! transaction, so a crash at any moment (even `kill -9`) leaves either all
//! of it or none. Transactions are not flushed one by one: the caller calls
//! [`ChainStore::flush`] before it announces a block, and a batch of blocks
//! may share one flush. The tree layout is described in `layout.rs`.

mod layout;
mod reindex;

pub use reindex::reindex;

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};

use crate::chain::store::addresses_of_entry;
use crate::chain::{ChainStore, StoreError, TxLocation, SIGNATURE_KEEP_BLOCKS};
use crate::state::{Account, BlockUndo, LedgerUpdate, MaturingReward};
use crate::types::{encode, Address, Block, BlockHash, BlockHeader, SignatureBytes, Txid};

use layout::*;

/// The chain's data in a sled database. Not `Clone`: pruning plans its
/// deletions outside the transaction, which is sound only with one writer.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    blocks: Tree,
    headers: Tree,
    undo: Tree,
    invalid: Tree,
    best: Tree,
    meta: Tree,
    accounts: Tree,
    rewards: Tree,
    txs: Tree,
    history: Tree,
    signatures: Tree,
    signature_heights: Tree,
    /// Fault injection for tests (`ourcoind --debug-fail-writes-after N`, like
    /// bitcoind's -dbcrashratio): block writes left before every write fails.
    writes_before_failure: Option<u64>,
}

/// How long [`SledStore::open`] waits for a lock that a closing handle still holds.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What a transaction closure fails with: sled's own conflict handling, or our error.
type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

impl SledStore {
    /// Opens (or creates) the database in the directory `path`.
    ///
    /// sled 0.34 releases its lock file only when its flusher thread exits,
    /// which happens a moment after the last handle is dropped (spacejam/sled
    /// #1289), so a store reopened straight after closing can find it still
    /// held. A held lock is therefore retried for up to [`LOCK_WAIT`] before it
    /// is reported as another process using the directory.
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let started = std::time::Instant::now();
        let db = loop {
            match sled::Config::new().path(path).open() {
                Ok(db) => break db,
                Err(e) => {
                    // sled 0.34 reports a held lock only in the message of an I/O error.
                    let locked = matches!(&e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"));
                    if locked && started.elapsed() < LOCK_WAIT {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        continue;
                    }
                    let hint = if locked { " (is another ourcoind using this data directory?)" } else { "" };
                    return Err(StoreError(format!("cannot open the database at {}: {e}{hint}", path.display())));
                }
            }
        };
        SledStore::from_db(db)
    }

    /// A database that lives in memory and a temporary file, gone when dropped: for tests and tools.
    pub fn open_temporary() -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|e| StoreError(format!("cannot open a temporary database: {e}")))?;
        SledStore::from_db(db)
    }

    fn from_db(db: sled::Db) -> Result<SledStore, StoreError> {
        let tree = |name: &str| db.open_tree(name).map_err(|e| sled_error(&format!("opening tree `{name}`"), e));
        let store = SledStore {
            blocks: tree(BLOCKS)?,
            headers: tree(HEADERS)?,
            undo: tree(UNDO)?,
            invalid: tree(INVALID)?,
            best: tree(BEST)?,
            meta: tree(META)?,
            accounts: tree(ACCOUNTS)?,
            rewards: tree(REWARDS)?,
            txs: tree(TXS)?,
            history: tree(HISTORY)?,
            signatures: tree(SIGNATURES)?,
            signature_heights: tree(SIGNATURE_HEIGHTS)?,
            writes_before_failure: None,
            db,
        };
        store.check_layout_version()?;
        store.check_tip_is_on_best_chain()?;
        Ok(store)
    }

    /// Refuses a database written in another layout; marks a new one with ours.
    fn check_layout_version(&self) -> Result<(), StoreError> {
        match self.meta.get(LAYOUT_KEY).map_err(|e| sled_error("reading the layout version", e))? {
            Some(bytes) => {
                let version: u32 = decode_value(META, LAYOUT_KEY, &bytes, LAYOUT_CAP)?;
                if version != LAYOUT_VERSION {
                    return Err(StoreError(format!(
                        "the database has layout version {version}, but this program reads version {LAYOUT_VERSION}; \
                         delete the database and sync again"
                    )));
                }
            }
            None => {
                if !self.meta.is_empty() || !self.blocks.is_empty() {
                    return Err(corrupt(META, LAYOUT_KEY, "missing, though the database holds data"));
                }
                self.meta
                    .insert(LAYOUT_KEY, encode(&LAYOUT_VERSION))
                    .map_err(|e| sled_error("writing the layout version", e))?;
            }
        }
        Ok(())
    }

    /// The tip and the best-chain tree are written together; disagreement is damage.
    fn check_tip_is_on_best_chain(&self) -> Result<(), StoreError> {
        let Some(tip) = self.stored_tip()? else { return Ok(()) };
        if self.best_hash_at(tip.height)? != Some(tip.hash) {
            return Err(corrupt(
                META,
                TIP_KEY,
                format!("the tip {} is not the best chain's block at its height", tip.hash),
            ));
        }
        Ok(())
    }

    fn stored_tip(&self) -> Result<Option<StoredTip>, StoreError> {
        let bytes = self.meta.get(TIP_KEY).map_err(|e| sled_error("reading the tip", e))?;
        bytes.map(|b| decode_value(META, TIP_KEY, &b, TIP_CAP)).transpose()
    }

    /// Reads `key` from `tree` (named `name`) and decodes it within `cap` bytes.
    fn read<T: serde::Serialize + serde::de::DeserializeOwned>(
        tree: &Tree,
        name: &str,
        key: &[u8],
        cap: usize,
    ) -> Result<Option<T>, StoreError> {
        let bytes = tree.get(key).map_err(|e| sled_error(&format!("reading tree `{name}`"), e))?;
        bytes.map(|b| decode_value(name, key, &b, cap)).transpose()
    }

    /// The entries of [`SIGNATURE_HEIGHTS`] that fall out of the kept window
    /// once the block at `new_height` connects: those more than
    /// [`SIGNATURE_KEEP_BLOCKS`] below it.
    fn signatures_to_prune(&self, new_height: u64) -> Result<(u64, Vec<(u64, Txid)>), StoreError> {
        let Some(threshold) = new_height.checked_sub(SIGNATURE_KEEP_BLOCKS) else { return Ok((0, Vec::new())) };
        let mut out = Vec::new();
        for entry in self.signature_heights.range(..height_key(threshold)) {
            let (key, _) = entry.map_err(|e| sled_error("listing signatures to prune", e))?;
            out.push(parse_signature_height_key(&key)?);
        }
        Ok((threshold, out))
    }
}

/// Turns a failed transaction into our error: an abort carries it already.
fn transaction_error(doing: &str, error: TransactionError<StoreError>) -> StoreError {
    match error {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => sled_error(doing, e),
    }
}

/// Aborts a transaction with `error`.
fn abort<T>(error: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(error))
}

/// The tip as seen inside a transaction.
fn tip_in(meta: &TransactionalTree) -> TxResult<Option<StoredTip>> {
    match meta.get(TIP_KEY)? {
        Some(bytes) => match decode_value(META, TIP_KEY, &bytes, TIP_CAP) {
            Ok(tip) => Ok(Some(tip)),
            Err(e) => abort(e),
        },
        None => Ok(None),
    }
}

/// Account states encoded for writing: `None` removes the account.
fn encode_accounts(states: &[(Address, Option<Account>)]) -> Vec<(Address, Option<Vec<u8>>)> {
    states.iter().map(|(address, state)| (*address, state.as_ref().map(encode))).collect()
}

fn write_accounts(tree: &TransactionalTree, states: &[(Address, Option<Vec<u8>>)]) -> TxResult<()> {
    for (address, state) in states {
        match state {
            Some(bytes) => tree.insert(&address.0, bytes.as_slice())?,
            None => tree.remove(&address.0)?,
        };
    }
    Ok(())
}

/// One transaction of a block as the indexes record it.
struct IndexedTx {
    txid: Txid,
    location: Vec<u8>,
    history_keys: Vec<[u8; HISTORY_KEY_BYTES]>,
}

fn indexed_txs(block: &Block) -> Result<Vec<IndexedTx>, StoreError> {
    let hash = block.hash();
    let height = block.height();
    block
        .txids()
        .into_iter()
        .enumerate()
        .map(|(index, txid)| {
            let index32 =
                u32::try_from(index).map_err(|_| StoreError(format!("block {hash} has too many transactions")))?;
            let location = encode(&TxLocation { block: hash, height, index: index32 });
            let history_keys =
                addresses_of_entry(block, index).iter().map(|a| history_key(a, height, index32)).collect();
            Ok(IndexedTx { txid, location, history_keys })
        })
        .collect()
}

impl SledStore {
    /// The database's size on disk, in bytes.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(|e| sled_error("reading the size on disk", e))
    }

    /// Makes every block write after the next `writes` fail, as a failing disk
    /// would: for testing that the node stops cleanly and the database stays intact.
    pub fn fail_writes_after(&mut self, writes: u64) {
        self.writes_before_failure = Some(writes);
    }

    fn count_write(&mut self) -> Result<(), StoreError> {
        match &mut self.writes_before_failure {
            None => Ok(()),
            Some(0) => Err(StoreError("write failed (injected by --debug-fail-writes-after)".into())),
            Some(left) => {
                *left -= 1;
                Ok(())
            }
        }
    }
}

impl ChainStore for SledStore {
    fn account(&self, address: &Address) -> Result<Option<Account>, StoreError> {
        SledStore::read(&self.accounts, ACCOUNTS, &address.0, ACCOUNT_CAP)
    }

    fn maturing_reward(&self, height: u64) -> Result<Option<MaturingReward>, StoreError> {
        SledStore::read(&self.rewards, REWARDS, &height_key(height), REWARD_CAP)
    }

    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        SledStore::read(&self.blocks, BLOCKS, hash.as_bytes(), BLOCK_CAP)
    }

    fn undo_record(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError> {
        SledStore::read(&self.undo, UNDO, hash.as_bytes(), UNDO_CAP)
    }

    fn stored_headers(&self) -> Result<Vec<BlockHeader>, StoreError> {
        // Not `Vec::with_capacity(tree.len())`: sled counts a tree by scanning it.
        let mut headers = Vec::new();
        for entry in self.headers.iter() {
            let (key, value) = entry.map_err(|e| sled_error("reading the headers", e))?;
            let header: BlockHeader = decode_value(HEADERS, &key, &value, HEADER_CAP)?;
            if header.hash() != hash_from_key(HEADERS, &key)? {
                return Err(corrupt(HEADERS, &key, "the header does not hash to its key"));
            }
            headers.push(header);
        }
        Ok(headers)
    }

    fn invalid_blocks(&self) -> Result<Vec<BlockHash>, StoreError> {
        self.invalid
            .iter()
            .keys()
            .map(|key| {
                let key = key.map_err(|e| sled_error("reading the invalid blocks", e))?;
                hash_from_key(INVALID, &key)
            })
            .collect()
    }

    fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        Ok(self.stored_tip()?.map(|tip| tip.hash))
    }

    fn best_hash_at(&self, height: u64) -> Result<Option<BlockHash>, StoreError> {
        SledStore::read(&self.best, BEST, &height_key(height), HASH_CAP)
    }

    fn tx_location(&self, txid: &Txid) -> Result<Option<TxLocation>, StoreError> {
        SledStore::read(&self.txs, TXS, txid.as_bytes(), LOCATION_CAP)
    }

    fn address_history(&self, address: &Address, limit: usize) -> Result<Vec<(TxLocation, Txid)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.history.scan_prefix(address.0).rev().take(limit) {
            let (key, value) = entry.map_err(|e| sled_error("reading the address index", e))?;
            let txid: Txid = decode_value(HISTORY, &key, &value, HASH_CAP)?;
            // Both indexes are written in one transaction, so a miss is damage.
            let location = self
                .tx_location(&txid)?
                .ok_or_else(|| corrupt(HISTORY, &key, format!("transaction {txid} is not in the transaction index")))?;
            out.push((location, txid));
        }
        Ok(out)
    }

    fn confirmed_signature(&self, txid: &Txid) -> Result<Option<SignatureBytes>, StoreError> {
        let stored: Option<StoredSignature> =
            SledStore::read(&self.signatures, SIGNATURES, txid.as_bytes(), SIGNATURE_CAP)?;
        Ok(stored.map(|s| s.signature))
    }

    fn put_block(&mut self, block: &Block) -> Result<(), StoreError> {
        self.count_write()?;
        let hash = block.hash();
        let block_bytes = encode(block);
        if block_bytes.len() > BLOCK_CAP {
            return Err(StoreError(format!("block {hash} is {} bytes, too large to store", block_bytes.len())));
        }
        let header_bytes = encode(&block.header);
        (&self.blocks, &self.headers)
            .transaction(|(blocks, headers)| -> TxResult<()> {
                blocks.insert(hash.as_bytes(), block_bytes.as_slice())?;
                headers.insert(hash.as_bytes(), header_bytes.as_slice())?;
                Ok(())
            })
            .map_err(|e| transaction_error(&format!("storing block {hash}"), e))
    }

    fn mark_invalid(&mut self, hash: &BlockHash) -> Result<(), StoreError> {
        self.invalid
            .insert(hash.as_bytes(), &[])
            .map_err(|e| sled_error(&format!("marking block {hash} invalid"), e))?;
        Ok(())
    }

    fn connect_block(
        &mut self,
        block: &Block,
        update: &LedgerUpdate,
        undo: &BlockUndo,
        signatures: &[(Txid, SignatureBytes)],
    ) -> Result<(), StoreError> {
        self.count_write()?;
        let hash = block.hash();
        let height = block.height();
        if update.height != height || undo.height != height {
            return Err(StoreError(format!(
                "block {hash} at height {height} comes with a ledger update for {} and an undo record for {}",
                update.height, undo.height
            )));
        }
        // Everything is encoded before the transaction, whose closure sled may run more than once.
        let block_bytes = encode(block);
        if block_bytes.len() > BLOCK_CAP {
            return Err(StoreError(format!("block {hash} is {} bytes, too large to store", block_bytes.len())));
        }
        let undo_bytes = encode(undo);
        if undo_bytes.len() > UNDO_CAP {
            return Err(StoreError(format!(
                "the undo record of block {hash} is {} bytes, too large",
                undo_bytes.len()
            )));
        }
        let header_bytes = encode(&block.header);
        let tip_bytes = encode(&StoredTip { height, hash });
        let accounts = encode_accounts(&update.accounts);
        let matured_key = update.matured_height.map(height_key);
        let new_reward = update.new_reward.map(|r| (height_key(r.height), encode(&r)));
        let txs = indexed_txs(block)?;
        let new_signatures: Vec<(Txid, Vec<u8>)> = signatures
            .iter()
            .map(|(txid, signature)| (*txid, encode(&StoredSignature { height, signature: *signature })))
            .collect();
        // Only this store writes, so the plan made outside the transaction still holds inside it.
        let (prune_below, prune) = self.signatures_to_prune(height)?;

        (
            &self.blocks,
            &self.headers,
            &self.undo,
            &self.best,
            &self.meta,
            &self.accounts,
            &self.rewards,
            &self.txs,
            &self.history,
            &self.signatures,
            &self.signature_heights,
        )
            .transaction(
                |(
                    blocks,
                    headers,
                    undo_tree,
                    best,
                    meta,
                    accounts_tree,
                    rewards,
                    txs_tree,
                    history,
                    sigs,
                    sig_heights,
                )|
                 -> TxResult<()> {
                    let extends_tip = match tip_in(meta)? {
                        None => height == 0,
                        Some(tip) => tip.height.checked_add(1) == Some(height) && tip.hash == block.header.prev,
                    };
                    if !extends_tip {
                        return abort(StoreError(format!("block {hash} at height {height} does not extend the tip")));
                    }
                    blocks.insert(hash.as_bytes(), block_bytes.as_slice())?;
                    headers.insert(hash.as_bytes(), header_bytes.as_slice())?;
                    undo_tree.insert(hash.as_bytes(), undo_bytes.as_slice())?;
                    best.insert(&height_key(height), hash.as_bytes())?;
                    meta.insert(TIP_KEY, tip_bytes.as_slice())?;

                    write_accounts(accounts_tree, &accounts)?;
                    if let Some(key) = &matured_key {
                        rewards.remove(key)?;
                    }
                    if let Some((key, bytes)) = &new_reward {
                        rewards.insert(key, bytes.as_slice())?;
                    }

                    for tx in &txs {
                        txs_tree.insert(tx.txid.as_bytes(), tx.location.as_slice())?;
                        for key in &tx.history_keys {
                            history.insert(key, tx.txid.as_bytes())?;
                        }
                    }

                    for (txid, bytes) in &new_signatures {
                        sigs.insert(txid.as_bytes(), bytes.as_slice())?;
                        sig_heights.insert(signature_height_key(height, txid).as_slice(), &[])?;
                    }
                    for (pruned_height, txid) in &prune {
                        sig_heights.remove(signature_height_key(*pruned_height, txid).as_slice())?;
                        let Some(bytes) = sigs.get(txid.as_bytes())? else { continue };
                        let stored: StoredSignature =
                            match decode_value(SIGNATURES, txid.as_bytes(), &bytes, SIGNATURE_CAP) {
                                Ok(stored) => stored,
                                Err(e) => return abort(e),
                            };
                        // Confirmed again higher up (after a reorganisation): still wanted.
                        if stored.height < prune_below {
                            sigs.remove(txid.as_bytes())?;
                        }
                    }
                    Ok(())
                },
            )
            .map_err(|e| transaction_error(&format!("connecting block {hash}"), e))
    }

    fn disconnect_block(&mut self, block: &Block, undo: &BlockUndo) -> Result<(), StoreError> {
        self.count_write()?;
        let hash = block.hash();
        let height = block.height();
        if undo.height != height {
            return Err(StoreError(format!(
                "block {hash} at height {height} comes with an undo record for height {}",
                undo.height
            )));
        }
        let parent_tip = height.checked_sub(1).map(|h| encode(&StoredTip { height: h, hash: block.header.prev }));
        let accounts = encode_accounts(&undo.accounts);
        let reward_key = height_key(undo.height);
        let restored_reward = undo.matured.map(|r| (height_key(r.height), encode(&r)));
        let txs = indexed_txs(block)?;

        (&self.undo, &self.best, &self.meta, &self.accounts, &self.rewards, &self.txs, &self.history)
            .transaction(|(undo_tree, best, meta, accounts_tree, rewards, txs_tree, history)| -> TxResult<()> {
                if tip_in(meta)? != Some(StoredTip { height, hash }) {
                    return abort(StoreError(format!("block {hash} is not the tip")));
                }
                write_accounts(accounts_tree, &accounts)?;
                rewards.remove(&reward_key)?;
                if let Some((key, bytes)) = &restored_reward {
                    rewards.insert(key, bytes.as_slice())?;
                }
                best.remove(&height_key(height))?;
                match &parent_tip {
                    Some(bytes) => meta.insert(TIP_KEY, bytes.as_slice())?,
                    None => meta.remove(TIP_KEY)?,
                };
                undo_tree.remove(hash.as_bytes())?;
                // Signatures stay: they let the undone payments return to the mempool.
                for tx in &txs {
                    txs_tree.remove(tx.txid.as_bytes())?;
                    for key in &tx.history_keys {
                        history.remove(key)?;
                    }
                }
                Ok(())
            })
            .map_err(|e| transaction_error(&format!("disconnecting block {hash}"), e))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| sled_error("flushing to disk", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
