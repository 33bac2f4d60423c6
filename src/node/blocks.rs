//! Connecting blocks, whatever brought them: validate, store, flush once,
//! then bring the mempool and the miner's template in line with the new tip.

use super::miner::Template;
use super::{unix_now, Node};
use crate::chain::{Arrival, BlockAccepted, ChainError, ChainStore, ChainUpdate, SignatureCheck, SignatureSource};
use crate::miner::assemble_block_with;
use crate::network::protocol::{SyncRequest, MAX_MEMPOOL_TXS};
use crate::store::SledStore;
use crate::types::{Address, Block, SignatureBytes, Txid, MAX_BLOCK_BYTES};

/// The store's kept signatures, for payments returning to the mempool after a reorg.
struct StoreSignatures<'a>(&'a SledStore);

impl SignatureSource for StoreSignatures<'_> {
    fn signature(&self, txid: &Txid) -> Option<SignatureBytes> {
        self.0.confirmed_signature(txid).ok().flatten()
    }
}

impl Node {
    pub(super) fn fail(&mut self, reason: String) {
        tracing::error!("{reason}; stopping");
        self.fatal = Some(reason);
    }

    /// Validates and connects blocks we asked for (or mined), flushes once,
    /// then updates the mempool and the miner. The first error stops the batch.
    pub(super) fn accept_blocks(&mut self, blocks: Vec<Block>) -> Result<(), ChainError> {
        self.accept_blocks_with(blocks, SignatureCheck::Verify, Arrival::Requested)
    }

    pub(super) fn accept_blocks_with(
        &mut self,
        blocks: Vec<Block>,
        check: SignatureCheck,
        arrival: Arrival,
    ) -> Result<(), ChainError> {
        let now = unix_now();
        let mut update = ChainUpdate::default();
        let mut result = Ok(());
        let mut stored = Vec::new();
        for block in blocks {
            let hash = block.hash();
            let started = std::time::Instant::now();
            let accepted = match arrival {
                Arrival::Requested => self.chain.accept_block_with(block, now, &self.mempool, check),
                Arrival::Unrequested => self.chain.accept_unrequested_block(block, now, &self.mempool),
            };
            self.observe_block_validation(started.elapsed());
            match accepted {
                Ok(BlockAccepted::BestChain(more)) => {
                    update.disconnected.extend(more.disconnected);
                    update.connected.extend(more.connected);
                    stored.push(hash);
                }
                Ok(BlockAccepted::SideChain) => stored.push(hash),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Durable before anything is reported.
        self.chain.flush()?;
        if !update.is_empty() {
            if let Some(tip) = update.connected.last() {
                tracing::info!(height = tip.height(), hash = %tip.hash(), txs = tip.body.transactions.len(), "new best block");
            }
            self.apply_chain_update(&update);
        }
        if !stored.is_empty() {
            // Orphans connected with their parent are stored too, but stay
            // wanted until they are asked for and found stored: harmless.
            let (height, work) = (self.chain.height(), self.chain.tip_work());
            self.sync_event(super::sync::Event::Connected { height, work, stored });
        }
        result
    }

    fn apply_chain_update(&mut self, update: &ChainUpdate) {
        self.on_chain_update(update);
        let chain = &self.chain;
        let accounts = |a: &Address| chain.account(a).unwrap_or_default();
        for block in &update.connected {
            self.mempool.remove_confirmed(block, &accounts);
            self.compact.remember(block);
        }
        if !update.disconnected.is_empty() {
            let signatures = StoreSignatures(chain.store());
            let mut returned = 0;
            for block in update.disconnected.iter().rev() {
                returned += self.mempool.return_disconnected(block, &signatures, &accounts, unix_now());
                self.to_announce.extend(block.body.transactions.iter().map(|tx| tx.txid()));
            }
            tracing::info!(
                undone = update.disconnected.len(),
                connected = update.connected.len(),
                returned_to_mempool = returned,
                "reorganised to a chain with more work"
            );
        }
        self.template_dirty = true;
        self.refresh_template();
    }

    /// Relays payments a reorg returned to the mempool: by gossip, and by an
    /// announcement to each peer, since gossip drops a message it has carried
    /// in the last two minutes and a peer that never saw it would miss it.
    pub(super) fn announce_returned(&mut self) {
        let txids: Vec<Txid> =
            std::mem::take(&mut self.to_announce).into_iter().filter(|t| self.mempool.contains(t)).collect();
        if txids.is_empty() {
            return;
        }
        self.publish_transactions(&txids);
        for chunk in txids.chunks(MAX_MEMPOOL_TXS) {
            for peer in self.sync_peers() {
                self.request(peer, SyncRequest::AnnounceTxs(chunk.to_vec()), super::Asked::Announce);
            }
        }
    }

    pub(super) fn refresh_template(&mut self) {
        self.template_dirty = false;
        let Some((miner, address)) = &self.miner else { return };
        let next = self.chain.next_block();
        let chain = &self.chain;
        let accounts = |a: &Address| chain.account(a).unwrap_or_default();
        // Room for the header, coinbase and signature.
        let payments =
            self.mempool.select(&accounts, MAX_BLOCK_BYTES - 4096, crate::mempool::estimate::PAYMENTS_PER_BLOCK);
        let tip_time = self.chain.tip_header().time;
        // On regtest, never faster than the block time (a mining policy, SPEC §5).
        let not_before = if self.params.network == crate::types::Network::Regtest {
            tip_time.saturating_add(self.params.block_time_secs)
        } else {
            0
        };
        let time = unix_now().max(next.min_time).max(not_before);
        let built = self
            .mempool
            .aggregate_signature(&payments)
            .map_err(crate::miner::TemplateError::from)
            .and_then(|aggregate| assemble_block_with(&next, time, *address, &payments, aggregate));
        match built {
            Ok(block) => miner.set_template(Template { block, not_before }),
            Err(e) => tracing::error!("cannot build a block template: {e}"),
        }
    }
}
