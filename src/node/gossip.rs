//! What arrives by gossip, and what we publish: transactions are checked
//! in batches (cheap rules one by one, then every signature in one weighted
//! multi-pairing), blocks one at a time; each verdict goes back to
//! gossipsub, which relays only what we accepted. Blocks our miner finds go
//! out the same way once stored.

use libp2p::gossipsub::MessageId;
use libp2p::PeerId;

use super::{unix_now, Node};
use crate::chain::{Arrival, ChainError, SignatureCheck};
use crate::consensus::verdict::{verdict, verdict_for_transaction, Verdict};
use crate::consensus::ValidationError;
use crate::network::{Command, Topic};
use crate::state::Account;
use crate::types::{decode, encode, Block, BlockMessage, CompactBlock, SignedTransaction, Txid, MAX_TX_BYTES};

/// Gossiped transactions verified together at most.
pub const BATCH_MAX: usize = 64;
/// The longest a gossiped transaction waits for its batch. A check has a
/// fixed cost of about two payments' worth (the final pairing and the
/// multi-exponentiation set-up), so at hundreds of payments a second a
/// wait of a few milliseconds left batches of two or three paying it; 20 ms
/// a hop is small beside a block interval and lets batches fill.
pub const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// Gossiped transactions waiting for their signatures to be checked together.
#[derive(Default)]
pub(super) struct GossipBatch {
    items: Vec<(PeerId, MessageId, SignedTransaction)>,
    /// When the oldest arrived: a lone transaction waits at most `BATCH_WAIT`.
    since: Option<tokio::time::Instant>,
}

impl GossipBatch {
    pub(super) fn is_waiting(&self) -> bool {
        self.since.is_some()
    }

    /// Resolves when the batch is due; pending while it is empty.
    pub(super) async fn due(&self) {
        match self.since {
            Some(since) => tokio::time::sleep_until(since + BATCH_WAIT).await,
            None => std::future::pending().await,
        }
    }

    fn push(&mut self, item: (PeerId, MessageId, SignedTransaction)) -> bool {
        self.items.push(item);
        self.since.get_or_insert_with(tokio::time::Instant::now);
        self.items.len() >= BATCH_MAX
    }

    fn take(&mut self) -> Vec<(PeerId, MessageId, SignedTransaction)> {
        self.since = None;
        std::mem::take(&mut self.items)
    }
}

impl Node {
    pub(super) fn handle_gossip(&mut self, source: PeerId, id: MessageId, topic: Topic, data: &[u8]) {
        match topic {
            Topic::Transactions => self.handle_gossip_tx(source, id, data),
            Topic::Blocks => self.handle_gossip_block(source, id, data),
        }
    }

    /// Decodes a gossiped transaction and queues it for the next signature batch.
    fn handle_gossip_tx(&mut self, source: PeerId, id: MessageId, data: &[u8]) {
        match decode::<SignedTransaction>(data, MAX_TX_BYTES) {
            Ok(stx) => {
                if self.gossip_batch.push((source, id, stx)) {
                    self.verify_gossip_batch();
                }
            }
            Err(e) => {
                tracing::debug!(%source, "malformed transaction: {e}");
                self.report(id, source, verdict_for_transaction(&ValidationError::from(e)));
            }
        }
    }

    /// Admits the queued gossiped transactions: cheap rules one by one, then
    /// their signatures together; reports each verdict and relays what became ready.
    pub(super) fn verify_gossip_batch(&mut self) {
        let batch = self.gossip_batch.take();
        if batch.is_empty() {
            return;
        }
        let items: Vec<(SignedTransaction, Account)> =
            batch.iter().map(|(_, _, stx)| (*stx, self.account(&stx.tx.sender_address()))).collect();
        let results = self.mempool.add_batch(items, unix_now());
        let mut promoted = Vec::new();
        for ((source, id, _), result) in batch.into_iter().zip(results) {
            let verdict = match result {
                // Only the gap-free run is relayed.
                Ok(added) => {
                    self.template_dirty = true;
                    promoted.extend(added.promoted);
                    if added.ready {
                        Verdict::Accept
                    } else {
                        Verdict::Ignore
                    }
                }
                Err(e) => {
                    tracing::debug!(%source, "transaction refused: {e}");
                    verdict_for_transaction(&e)
                }
            };
            self.report(id, source, verdict);
        }
        self.publish_transactions(&promoted);
    }

    /// Adds a transaction to the mempool; returns whether it is ready (relayable)
    /// and the transactions it made ready, which we publish ourselves.
    pub(super) fn admit_transaction(&mut self, stx: SignedTransaction) -> Result<(bool, Vec<Txid>), ValidationError> {
        let account = self.account(&stx.tx.sender_address());
        let added = self.mempool.add(stx, account, unix_now())?;
        self.template_dirty = true;
        Ok((added.ready, added.promoted))
    }

    pub(super) fn publish_transactions(&self, txids: &[Txid]) {
        for txid in txids {
            if let Some(stx) = self.mempool.get(txid) {
                self.command(Command::Publish { topic: Topic::Transactions, data: encode(stx) });
            }
        }
    }

    /// A block relayed to us, compact or in full: stored and relayed only if
    /// its chain has at least the best chain's work (SPEC §4, "What is
    /// stored and relayed").
    fn handle_gossip_block(&mut self, source: PeerId, id: MessageId, data: &[u8]) {
        self.count_block_message(data.len());
        match decode::<BlockMessage>(data, BlockMessage::MAX_BYTES) {
            Ok(BlockMessage::Compact(compact)) => self.handle_compact_block(source, id, compact, data.len()),
            Ok(BlockMessage::Full(block)) => self.accept_relayed_block(source, id, block),
            Err(e) => {
                tracing::debug!(%source, "malformed block: {e}");
                self.report(id, source, verdict(&ValidationError::from(e)));
            }
        }
    }

    /// Validates a relayed block (received whole or rebuilt) and reports the
    /// verdict on the message that brought it.
    pub(super) fn accept_relayed_block(&mut self, source: PeerId, id: MessageId, block: Block) {
        let hash = block.hash();
        match self.accept_blocks_with(vec![block], SignatureCheck::Verify, Arrival::Unrequested) {
            Ok(()) => self.report(id, source, Verdict::Accept),
            Err(ChainError::Invalid(e)) => self.on_relayed_block_refused(source, id, hash, e),
            Err(ChainError::Store(e)) => self.fail(format!("database write failed: {e}")),
        }
    }

    pub(super) fn handle_mined_block(&mut self, block: Block) {
        let hash = block.hash();
        let message = if self.relay_full_blocks {
            BlockMessage::Full(block.clone())
        } else {
            BlockMessage::Compact(CompactBlock::of(&block))
        };
        let data = encode(&message);
        match self.accept_blocks(vec![block]) {
            Ok(()) => {
                tracing::info!(%hash, "mined a block");
                self.command(Command::Publish { topic: Topic::Blocks, data });
            }
            Err(ChainError::Invalid(e)) => tracing::warn!(%hash, "own block refused: {e}"),
            Err(ChainError::Store(e)) => self.fail(format!("database write failed: {e}")),
        }
    }
}
