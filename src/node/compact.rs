//! Compact blocks (SPEC §8): a relayed block is rebuilt from the mempool and
//! the payments of the last few blocks; what is missing is asked of the
//! sender by position, and when that cannot work (a short-id collision, a
//! wrong or missing answer) the full block is fetched, from the sender or
//! from other peers in turn. The block is validated like any relayed block,
//! and gossipsub relays the compact message only once it is accepted.
//!
//! What this costs us is bounded: a compact block is rebuilt only when its
//! header is valid, with its proof of work, on a known parent and a chain
//! with at least the best chain's work; at most `MAX_PENDING` wait for an
//! answer, and every request has a deadline.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use libp2p::gossipsub::MessageId;
use libp2p::PeerId;

use super::{unix_now, Asked, Node};
use crate::consensus::verdict::{verdict, Verdict, PENALTY_MALFORMED};
use crate::consensus::{rules, ValidationError};
use crate::network::protocol::{SyncRequest, SyncResponse};
use crate::rpc::CompactBlockStats;
use crate::types::compact::{MAX_BLOCK_PAYMENTS, MAX_COMPACT_BLOCK_BYTES};
use crate::types::{Block, BlockHash, CompactBlock, PartialBlock, Transaction, Txid};

/// Compact blocks waiting for payments or a full block at most; the oldest
/// is given up for a newer one.
pub const MAX_PENDING: usize = 8;
/// How long the sender has to send the missing payments.
pub const PAYMENTS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long each peer has to send the full block when rebuilding failed.
pub const FULL_BLOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// Peers asked for the full block at most, one after another.
pub const FALLBACK_PEERS: usize = 4;
/// Blocks whose payments stay candidates, for a block that competes with one
/// already connected.
const RECENT_BLOCKS: usize = 6;
/// A sender that answers a request for a block's payments with the wrong ones.
pub const PENALTY_WRONG_PAYMENTS: u32 = 50;

/// A compact block we could not rebuild at once.
struct Pending {
    /// `None` once we fall back to the full block.
    partial: Option<PartialBlock>,
    /// The positions asked of the sender.
    asked: Vec<u32>,
    source: PeerId,
    id: MessageId,
    /// Peers asked for the full block so far.
    tried: Vec<PeerId>,
    arrived: std::time::Instant,
}

/// What the node keeps for compact blocks.
#[derive(Default)]
pub(super) struct CompactRelay {
    pending: HashMap<BlockHash, Pending>,
    /// The payments of the last blocks connected, newest last.
    recent: VecDeque<Vec<(Txid, Transaction)>>,
    pub(super) stats: CompactBlockStats,
}

/// The counters of [`CompactBlockStats`], for the metrics too.
#[derive(Clone, Copy)]
enum Outcome {
    Received,
    WithoutRoundTrip,
    WithRoundTrip,
    FellBack,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Received => "received",
            Outcome::WithoutRoundTrip => "rebuilt_without_roundtrip",
            Outcome::WithRoundTrip => "rebuilt_with_roundtrip",
            Outcome::FellBack => "fallen_back",
        }
    }
}

impl CompactRelay {
    /// Keeps the payments of a newly connected block as candidates.
    pub(super) fn remember(&mut self, block: &Block) {
        if block.body.transactions.is_empty() {
            return;
        }
        self.recent.push_back(block.body.transactions.iter().map(|tx| (tx.txid(), *tx)).collect());
        while self.recent.len() > RECENT_BLOCKS {
            self.recent.pop_front();
        }
    }
}

impl Node {
    fn count(&mut self, outcome: Outcome) {
        let stats = &mut self.compact.stats;
        let counter = match outcome {
            Outcome::Received => &mut stats.received,
            Outcome::WithoutRoundTrip => &mut stats.rebuilt_without_roundtrip,
            Outcome::WithRoundTrip => &mut stats.rebuilt_with_roundtrip,
            Outcome::FellBack => &mut stats.fallen_back,
        };
        *counter += 1;
        if let Some(metrics) = &self.operator.metrics {
            metrics.compact_blocks.get_or_create(&crate::metrics::OutcomeLabel { outcome: outcome.label() }).inc();
        }
    }

    /// Counts a block message of `bytes` received on gossip.
    pub(super) fn count_block_message(&mut self, bytes: usize) {
        self.compact.stats.block_messages += 1;
        self.compact.stats.block_message_bytes += bytes as u64;
        if let Some(metrics) = &self.operator.metrics {
            metrics.block_messages.inc();
            metrics.block_message_bytes.inc_by(bytes as u64);
        }
    }

    /// A compact block relayed to us.
    pub(super) fn handle_compact_block(&mut self, source: PeerId, id: MessageId, compact: CompactBlock, bytes: usize) {
        let hash = compact.hash();
        if bytes > MAX_COMPACT_BLOCK_BYTES || compact.short_ids.len() > MAX_BLOCK_PAYMENTS {
            tracing::debug!(%source, %hash, "oversized compact block");
            self.report(id, source, Verdict::Reject { penalty: PENALTY_MALFORMED });
            return;
        }
        if self.compact.pending.contains_key(&hash) {
            self.report(id, source, Verdict::Ignore);
            return;
        }
        if let Err(e) = self.chain.precheck_relayed_header(&compact.header, unix_now()) {
            self.on_relayed_block_refused(source, id, hash, e);
            return;
        }
        self.count(Outcome::Received);
        // Payments still waiting for their batch's signature check are candidates too.
        if self.gossip_batch.is_waiting() {
            self.verify_gossip_batch();
        }
        let candidates =
            self.mempool.payments().chain(self.compact.recent.iter().flatten().map(|(txid, tx)| (*txid, tx)));
        let partial = match PartialBlock::new(compact, candidates) {
            Ok(partial) => partial,
            Err(e) => {
                tracing::debug!(%source, %hash, "compact block not rebuilt: {e}");
                let pending = Pending {
                    partial: None,
                    asked: Vec::new(),
                    source,
                    id,
                    tried: Vec::new(),
                    arrived: std::time::Instant::now(),
                };
                self.count(Outcome::FellBack);
                self.hold(hash, pending);
                self.ask_full_block(hash);
                return;
            }
        };
        let missing = partial.missing();
        if let Some(block) = partial.block() {
            self.count(Outcome::WithoutRoundTrip);
            self.accept_relayed_block(source, id, block);
            return;
        }
        tracing::debug!(%source, %hash, missing = missing.len(), payments = partial.payments(), "asking for a compact block's missing payments");
        let request = SyncRequest::BlockTxs { block: hash, indexes: missing.clone() };
        let pending = Pending {
            partial: Some(partial),
            asked: missing,
            source,
            id,
            tried: Vec::new(),
            arrived: std::time::Instant::now(),
        };
        self.hold(hash, pending);
        self.request_within(source, request, Asked::BlockTxs { block: hash }, PAYMENTS_TIMEOUT);
    }

    /// Keeps a compact block waiting, giving up the oldest one if full.
    fn hold(&mut self, hash: BlockHash, pending: Pending) {
        if self.compact.pending.len() >= MAX_PENDING {
            let oldest = self.compact.pending.iter().min_by_key(|(_, p)| p.arrived).map(|(h, _)| *h);
            if let Some(old) = oldest.and_then(|h| self.compact.pending.remove(&h)) {
                self.report(old.id, old.source, Verdict::Ignore);
            }
        }
        self.compact.pending.insert(hash, pending);
    }

    /// The sender's answer with the missing payments.
    pub(super) fn handle_block_txs(&mut self, peer: PeerId, hash: BlockHash, txs: Vec<Transaction>) {
        let Some(mut pending) = self.compact.pending.remove(&hash) else { return };
        let filled = match pending.partial.as_mut() {
            Some(partial) => partial.fill(&pending.asked, &txs).map(|()| partial.block()),
            None => Ok(None),
        };
        match filled {
            Ok(Some(block)) => {
                self.count(Outcome::WithRoundTrip);
                self.accept_relayed_block(pending.source, pending.id, block);
            }
            Ok(None) => self.fall_back(hash, pending),
            Err(e) => {
                self.penalize(
                    peer,
                    PENALTY_WRONG_PAYMENTS,
                    &format!("answered for a compact block's payments wrongly ({e})"),
                );
                self.fall_back(hash, pending);
            }
        }
    }

    /// The sender did not send the missing payments: fetch the full block.
    pub(super) fn on_block_txs_failed(&mut self, hash: BlockHash) {
        if let Some(pending) = self.compact.pending.remove(&hash) {
            self.fall_back(hash, pending);
        }
    }

    fn fall_back(&mut self, hash: BlockHash, mut pending: Pending) {
        if pending.partial.take().is_some() {
            self.count(Outcome::FellBack);
        }
        // The sender was asked already; others first.
        pending.tried.push(pending.source);
        self.compact.pending.insert(hash, pending);
        self.ask_full_block(hash);
    }

    /// Asks the next peer not yet tried for the full block; gives the block up
    /// when none is left.
    fn ask_full_block(&mut self, hash: BlockHash) {
        let Some(pending) = self.compact.pending.get(&hash) else { return };
        if self.chain.knows(&hash) {
            let pending = self.compact.pending.remove(&hash);
            if let Some(p) = pending {
                self.report(p.id, p.source, Verdict::Ignore);
            }
            return;
        }
        let height = pending.partial.as_ref().map(|p| p.header().height);
        // The sender can serve what it sent, even before its status is in.
        let mut peers: Vec<(bool, PeerId)> = std::iter::once(pending.source)
            .chain(self.sync_peers().into_iter().filter(|p| *p != pending.source))
            .filter(|p| !pending.tried.contains(p))
            .map(|p| {
                let behind = match (height, self.peers.get(&p).and_then(|s| s.status)) {
                    (Some(h), Some(status)) => status.height < h,
                    _ => false,
                };
                (behind, p)
            })
            .collect();
        // The sender first (it has the block), then peers whose chain reaches it.
        peers.sort_by_key(|(behind, p)| (*p != pending.source, *behind));
        let next = if pending.tried.len() >= FALLBACK_PEERS { None } else { peers.first().map(|(_, p)| *p) };
        match next {
            Some(peer) => {
                if let Some(p) = self.compact.pending.get_mut(&hash) {
                    p.tried.push(peer);
                }
                tracing::debug!(%peer, %hash, "fetching a compact block in full");
                self.request_within(
                    peer,
                    SyncRequest::Blocks(vec![hash]),
                    Asked::FullBlock { block: hash },
                    FULL_BLOCK_TIMEOUT,
                );
            }
            None => {
                if let Some(p) = self.compact.pending.remove(&hash) {
                    tracing::info!(%hash, "compact block given up: no peer sent it");
                    self.report(p.id, p.source, Verdict::Ignore);
                }
            }
        }
    }

    /// A peer's answer to our request for a full block.
    pub(super) fn handle_full_block(&mut self, peer: PeerId, hash: BlockHash, blocks: Vec<Block>) {
        if !self.compact.pending.contains_key(&hash) {
            return;
        }
        match blocks.into_iter().find(|b| b.hash() == hash) {
            // A body that is not the header's is this peer's doing, not the block's.
            Some(block) if rules::body_matches_commitment(&block).is_err() => {
                self.penalize(peer, PENALTY_WRONG_PAYMENTS, "sent a block whose body is not its header's");
                self.ask_full_block(hash);
            }
            Some(block) => {
                if let Some(pending) = self.compact.pending.remove(&hash) {
                    tracing::info!(%peer, %hash, "compact block fetched in full");
                    self.accept_relayed_block(pending.source, pending.id, block);
                }
            }
            // It does not have the block (yet): the next peer.
            None => self.ask_full_block(hash),
        }
    }

    pub(super) fn on_full_block_failed(&mut self, hash: BlockHash) {
        self.ask_full_block(hash);
    }

    /// Serves the payments of a stored block at the positions asked.
    pub(super) fn block_txs_response(&self, hash: &BlockHash, indexes: &[u32]) -> SyncResponse {
        if indexes.len() > MAX_BLOCK_PAYMENTS {
            return SyncResponse::Refused("too many positions".into());
        }
        let block = match self.chain.block(hash) {
            Ok(Some(block)) => block,
            Ok(None) => return SyncResponse::Refused("unknown block".into()),
            Err(e) => {
                tracing::error!("cannot read a block: {e}");
                return SyncResponse::Refused("cannot read the block".into());
            }
        };
        let txs: Option<Vec<Transaction>> =
            indexes.iter().map(|&i| block.body.transactions.get(i as usize).copied()).collect();
        match txs {
            Some(txs) => SyncResponse::BlockTxs(txs),
            None => SyncResponse::Refused("position out of range".into()),
        }
    }

    /// Why a relayed block was refused, handled alike for full and compact ones.
    pub(super) fn on_relayed_block_refused(
        &mut self,
        source: PeerId,
        id: MessageId,
        hash: BlockHash,
        e: ValidationError,
    ) {
        if let ValidationError::UnknownParent(_) = e {
            // We are behind or on another branch: ask this peer where it
            // stands, and sync decides (unless it is busy already).
            if !self.sync.machine.is_syncing() {
                let status = self.status();
                self.request(source, SyncRequest::Status(status), Asked::Status { first: false });
            }
        } else if !matches!(e, ValidationError::DuplicateBlock | ValidationError::LessWorkThanBest) {
            tracing::info!(%source, %hash, "block refused: {e}");
        }
        self.report(id, source, verdict(&e));
    }
}
