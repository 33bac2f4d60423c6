//! Catching up with peers that have more work: the network side of sync.
//! Headers come from the peer claiming the most work; blocks are asked for
//! in batches, their aggregate signatures checked together on blocking
//! threads while the next batch downloads, and connected in order.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use libp2p::request_response::ResponseChannel;
use libp2p::PeerId;

use super::{Asked, Node};
use crate::chain::{ChainError, SignatureCheck};
use crate::consensus::rules;
use crate::consensus::verdict::{verdict, Verdict};
use crate::consensus::ValidationError;
use crate::crypto::batch::verify_blocks_batch;
use crate::crypto::Work;
use crate::network::protocol::{
    ChainStatus, SyncRequest, SyncResponse, BLOCKS_RESPONSE_SOFT_BYTES, MAX_BLOCKS_PER_REQUEST, MAX_HEADERS,
    MAX_LOCATOR, MAX_MEMPOOL_IDS, MAX_MEMPOOL_TXS, SYNC_VERSION,
};
use crate::network::Command;
use crate::types::{encode, Block, BlockHash, BlockHeader, Txid};

/// The penalty for a sync request to the peer we sync from that failed (a
/// garbage answer, a timeout, a dropped stream): small, since an honest peer
/// can be slow, but repeated failures add up.
pub const PENALTY_FAILED_SYNC: u32 = 25;
/// The penalty for a peer that claimed more work than it could show.
pub const PENALTY_WORK_CLAIM: u32 = 100;
/// The penalty for a blocks reply that is not what we asked for: empty, out
/// of order, or holding blocks we did not request.
pub const PENALTY_WRONG_BLOCKS: u32 = 100;
/// A sync peer that answers nothing useful for this long is dropped from sync.
pub const SYNC_STALL: Duration = Duration::from_secs(20);

/// Sync batches being checked at most, with one more downloading: the next
/// batches' pairings run while the previous one is connected and written
/// (at most 8 MiB each).
const SYNC_BATCHES_IN_FLIGHT: usize = 3;

/// Where initial (or catch-up) sync stands.
#[derive(Debug, Default)]
pub(super) struct SyncState {
    /// The peer we download from, and when it last made progress.
    peer: Option<(PeerId, Instant)>,
    /// Blocks announced by its headers that we still have to fetch.
    queue: VecDeque<BlockHash>,
    pub(super) target_height: u64,
    started: Option<(Instant, u64)>,
    last_log: Option<Instant>,
    /// Whether a request for blocks is on its way to the peer.
    requested: bool,
    /// Downloaded batches whose signatures are being checked on blocking
    /// threads, oldest first; each is connected once checked, in order.
    pub(super) verifying: VecDeque<tokio::task::JoinHandle<CheckedBatch>>,
}

impl SyncState {
    /// Stops downloading from the current peer, dropping what it sent that
    /// is not connected yet.
    pub(super) fn abandon(&mut self) {
        self.peer = None;
        self.queue.clear();
        self.requested = false;
        self.verifying.clear();
    }

    fn is_peer(&self, peer: PeerId) -> bool {
        self.peer.is_some_and(|(p, _)| p == peer)
    }
}

/// A sync batch after its signature check: the blocks up to the first one
/// with a bad signature, and that block's hash and error.
#[derive(Debug)]
pub(super) struct CheckedBatch {
    peer: PeerId,
    blocks: Vec<Block>,
    bad: Option<(BlockHash, ValidationError)>,
}

/// Checks the aggregate signatures of a sync batch together. Returns the
/// blocks up to the first bad one (all of them when none is), and that bad
/// block's hash and error. Blocks without payments need no pairing.
fn verify_sync_signatures(blocks: Vec<Block>) -> (Vec<Block>, Option<(BlockHash, ValidationError)>) {
    let mut claims = Vec::new();
    let mut owners = Vec::new();
    let mut cut = None;
    for (i, block) in blocks.iter().enumerate() {
        match rules::aggregate_signature_claim(block) {
            Ok(Some(claim)) => {
                claims.push(claim);
                owners.push(i);
            }
            Ok(None) => {}
            Err(e) => {
                cut = Some((i, e));
                break;
            }
        }
    }
    if let Err(bad) = verify_blocks_batch(&claims) {
        if let Some(&i) = owners.get(bad) {
            if cut.as_ref().is_none_or(|(c, _)| i < *c) {
                cut = Some((i, ValidationError::BadAggregateSignature));
            }
        }
    }
    match cut {
        None => (blocks, None),
        Some((i, e)) => {
            let hash = blocks.get(i).map(Block::hash).unwrap_or_default();
            let mut blocks = blocks;
            blocks.truncate(i);
            (blocks, Some((hash, e)))
        }
    }
}

/// The oldest batch's check, once done (cancel-safe: the handle stays queued).
pub(super) async fn next_checked(
    verifying: &mut VecDeque<tokio::task::JoinHandle<CheckedBatch>>,
) -> Result<CheckedBatch, tokio::task::JoinError> {
    match verifying.front_mut() {
        Some(check) => check.await,
        None => std::future::pending().await,
    }
}

/// Whether `blocks` answers a request for `asked`: not empty, and the
/// first blocks of the request in its order (a server stops early past its
/// byte budget, which is honest).
fn answers_request(asked: &[BlockHash], blocks: &[Block]) -> bool {
    !blocks.is_empty() && blocks.len() <= asked.len() && blocks.iter().zip(asked).all(|(b, h)| b.hash() == *h)
}

impl Node {
    pub(super) fn status(&self) -> ChainStatus {
        ChainStatus {
            version: SYNC_VERSION,
            genesis: self.params.genesis_hash,
            tip: self.chain.tip(),
            height: self.chain.height(),
            work: self.chain.tip_work().to_be_bytes(),
        }
    }

    fn peer_has_more_work(&self, status: &ChainStatus) -> bool {
        status.genesis == self.params.genesis_hash && Work::from_be_bytes(&status.work) > self.chain.tip_work()
    }

    pub(super) fn maybe_start_sync(&mut self) {
        if self.sync.peer.is_some() {
            return;
        }
        let best = self
            .peers
            .iter()
            .filter_map(|(peer, state)| state.status.map(|s| (*peer, s)))
            .filter(|(_, s)| self.peer_has_more_work(s))
            .max_by_key(|(_, s)| Work::from_be_bytes(&s.work));
        if let Some((peer, status)) = best {
            self.sync.target_height = status.height;
            self.start_sync_from(peer);
        }
    }

    pub(super) fn start_sync_from(&mut self, peer: PeerId) {
        if self.sync.peer.is_some_and(|(p, _)| p != peer) {
            return;
        }
        self.sync.peer = Some((peer, Instant::now()));
        if self.sync.started.is_none() {
            self.sync.started = Some((Instant::now(), self.chain.height()));
        }
        let mut locator = self.chain.locator();
        locator.truncate(MAX_LOCATOR);
        self.request(peer, SyncRequest::Headers { locator, max: MAX_HEADERS }, Asked::Headers);
    }

    /// A sync peer that has made no progress for `SYNC_STALL` is dropped from
    /// sync, so another can take over.
    pub(super) fn check_sync_progress(&mut self) {
        if let Some((peer, last)) = self.sync.peer {
            if last.elapsed() > SYNC_STALL {
                tracing::warn!(%peer, "sync peer made no progress; trying another");
                self.drop_sync_peer(peer);
                self.penalize(peer, PENALTY_FAILED_SYNC, "made no sync progress");
            }
        }
    }

    /// Stops syncing from `peer`; its claim of more work is not trusted again
    /// until it sends a new status, or we would pick it again at every tick.
    fn drop_sync_peer(&mut self, peer: PeerId) {
        if self.sync.is_peer(peer) {
            self.sync.abandon();
        }
        if let Some(state) = self.peers.get_mut(&peer) {
            state.status = None;
        }
    }

    pub(super) fn on_sync_peer_gone(&mut self, peer: PeerId) {
        if self.sync.is_peer(peer) {
            self.sync.abandon();
        }
    }

    pub(super) fn on_sync_request_failed(&mut self, peer: PeerId) {
        if self.sync.is_peer(peer) {
            self.drop_sync_peer(peer);
            self.penalize(peer, PENALTY_FAILED_SYNC, "failed a sync request");
        }
    }

    /// Asks the sync peer for the next blocks when fewer than
    /// `SYNC_BATCHES_IN_FLIGHT` batches are downloading or being checked; for
    /// headers again once everything asked for is connected (the peer may
    /// have more past what it sent).
    fn request_next_blocks(&mut self, peer: PeerId) {
        if self.sync.requested || self.sync.verifying.len() >= SYNC_BATCHES_IN_FLIGHT {
            return;
        }
        let batch: Vec<BlockHash> =
            std::iter::from_fn(|| self.sync.queue.pop_front()).take(MAX_BLOCKS_PER_REQUEST).collect();
        if !batch.is_empty() {
            self.sync.requested = true;
            self.request(peer, SyncRequest::Blocks(batch.clone()), Asked::Blocks(batch));
        } else if self.sync.verifying.is_empty() {
            self.start_sync_from(peer);
        }
    }

    pub(super) fn handle_headers(&mut self, peer: PeerId, headers: Vec<BlockHeader>) {
        if !self.sync.is_peer(peer) {
            // Asked of a peer we have since dropped from sync.
            return;
        }
        let new: Vec<BlockHash> = headers.iter().map(|h| h.hash()).filter(|hash| !self.chain.knows(hash)).collect();
        if let Some(last) = headers.last() {
            self.sync.target_height = self.sync.target_height.max(last.height);
        }
        if new.is_empty() {
            let claimed_more =
                self.peers.get(&peer).and_then(|p| p.status).is_some_and(|st| self.peer_has_more_work(&st));
            self.finish_sync();
            if claimed_more {
                // It announced more work than we have, but has nothing to show for it.
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.status = None;
                }
                self.penalize(peer, PENALTY_WORK_CLAIM, "claimed more work than it served");
            }
            self.maybe_start_sync();
        } else {
            self.sync.peer = Some((peer, Instant::now()));
            self.sync.queue.extend(new);
            self.request_next_blocks(peer);
        }
    }

    pub(super) fn handle_blocks(&mut self, peer: PeerId, asked: &[BlockHash], blocks: Vec<Block>) {
        if !answers_request(asked, &blocks) {
            self.drop_sync_peer(peer);
            self.penalize(peer, PENALTY_WRONG_BLOCKS, "answered a blocks request with blocks it was not asked for");
            return;
        }
        if !self.sync.is_peer(peer) {
            return;
        }
        self.sync.requested = false;
        self.sync.peer = Some((peer, Instant::now()));
        // What it left out past its byte budget is asked for again, first.
        for hash in asked.iter().skip(blocks.len()).rev() {
            self.sync.queue.push_front(*hash);
        }
        // All the batch's aggregate signatures in one weighted
        // multi-pairing, on blocking threads; the next batch is asked
        // for meanwhile, and the batch is connected once checked.
        let check = tokio::task::spawn_blocking(move || {
            let (blocks, bad) = verify_sync_signatures(blocks);
            CheckedBatch { peer, blocks, bad }
        });
        self.sync.verifying.push_back(check);
        self.request_next_blocks(peer);
    }

    /// Connects a sync batch whose signatures were checked, then asks for more.
    pub(super) fn connect_checked_batch(&mut self, batch: CheckedBatch) {
        let CheckedBatch { peer, blocks, bad } = batch;
        let count = blocks.len();
        // The pipeline has room again: keep the cores busy while this one is written.
        if self.sync.is_peer(peer) && !self.sync.queue.is_empty() {
            self.request_next_blocks(peer);
        }
        if let Some((hash, e)) = &bad {
            tracing::warn!(%peer, %hash, "sync peer served a block with a bad signature: {e}");
        }
        // Blocks connected meanwhile (a gossiped block's orphan children, say)
        // are skipped, or the first duplicate would stop the batch.
        let blocks: Vec<Block> =
            blocks.into_iter().filter(|block| self.chain.entry(&block.hash()).is_none_or(|e| e.invalid)).collect();
        let accepted =
            self.accept_blocks_with(blocks, SignatureCheck::AlreadyVerified, crate::chain::Arrival::Requested);
        let accepted = match (accepted, bad) {
            (Ok(()), Some((_, e))) => Err(ChainError::Invalid(e)),
            (other, _) => other,
        };
        match accepted {
            Ok(()) => {}
            Err(ChainError::Invalid(ValidationError::DuplicateBlock)) => {}
            Err(ChainError::Invalid(e)) => {
                tracing::warn!(%peer, "sync peer served an invalid block: {e}");
                if self.sync.is_peer(peer) {
                    // What it sent after the bad block is dropped with it.
                    self.sync.abandon();
                }
                if let Verdict::Reject { penalty } = verdict(&e) {
                    // Serving an invalid chain is worse than relaying one bad message.
                    self.penalize(peer, penalty.saturating_mul(5), "served an invalid block in sync");
                }
                return;
            }
            Err(ChainError::Store(e)) => return self.fail(format!("database write failed: {e}")),
        }
        self.log_sync_progress(count);
        if self.sync.is_peer(peer) {
            self.request_next_blocks(peer);
        }
    }

    fn finish_sync(&mut self) {
        if let Some((started, from)) = self.sync.started.take() {
            let blocks = self.chain.height().saturating_sub(from);
            if blocks > 0 {
                let secs = started.elapsed().as_secs_f64().max(0.001);
                tracing::info!(
                    height = self.chain.height(),
                    blocks,
                    "caught up ({:.1} blocks/s)",
                    blocks as f64 / secs
                );
            }
        }
        self.sync.abandon();
    }

    fn log_sync_progress(&mut self, _received: usize) {
        let due = self.sync.last_log.is_none_or(|t| t.elapsed() > Duration::from_secs(2));
        if !due {
            return;
        }
        self.sync.last_log = Some(Instant::now());
        if let Some((started, from)) = self.sync.started {
            let done = self.chain.height().saturating_sub(from);
            let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
            tracing::info!(
                height = self.chain.height(),
                target = self.sync.target_height,
                "syncing: {}/{} ({rate:.1} blocks/s)",
                self.chain.height(),
                self.sync.target_height
            );
        }
    }

    pub(super) fn record_status(&mut self, peer: PeerId, status: ChainStatus) {
        if status.genesis != self.params.genesis_hash || status.version != SYNC_VERSION {
            tracing::info!(%peer, "peer is on another network or protocol version; disconnecting");
            self.command(Command::Disconnect(peer));
            return;
        }
        let state = self.peers.entry(peer).or_default();
        if state.status.is_none() {
            tracing::info!(%peer, height = status.height, "peer connected");
        }
        state.status = Some(status);
        if self.peer_has_more_work(&status) {
            self.sync.target_height = self.sync.target_height.max(status.height);
            self.maybe_start_sync();
        }
    }

    pub(super) fn serve_sync(&mut self, peer: PeerId, request: SyncRequest, channel: ResponseChannel<SyncResponse>) {
        let response = match request {
            SyncRequest::Status(theirs) => {
                let ours = self.status();
                self.record_status(peer, theirs);
                SyncResponse::Status(ours)
            }
            SyncRequest::Headers { locator, max } => {
                let max = max.min(MAX_HEADERS) as usize;
                let locator: Vec<BlockHash> = locator.into_iter().take(MAX_LOCATOR).collect();
                SyncResponse::Headers(self.chain.headers_after(&locator, max))
            }
            SyncRequest::Blocks(hashes) => {
                let mut blocks = Vec::new();
                let mut bytes = 0usize;
                for hash in hashes.iter().take(MAX_BLOCKS_PER_REQUEST) {
                    if !blocks.is_empty() && bytes >= BLOCKS_RESPONSE_SOFT_BYTES {
                        break;
                    }
                    match self.chain.block(hash) {
                        Ok(Some(block)) => {
                            bytes = bytes.saturating_add(encode(&block).len());
                            blocks.push(block);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::error!("cannot read a block: {e}");
                            break;
                        }
                    }
                }
                SyncResponse::Blocks(blocks)
            }
            SyncRequest::MempoolIds => SyncResponse::MempoolIds(self.mempool.txids(MAX_MEMPOOL_IDS)),
            SyncRequest::MempoolTxs(ids) => SyncResponse::MempoolTxs(
                ids.iter().take(MAX_MEMPOOL_TXS).filter_map(|id| self.mempool.get(id).copied()).collect(),
            ),
            SyncRequest::AnnounceTxs(ids) => {
                let ids: Vec<Txid> = ids.into_iter().take(MAX_MEMPOOL_TXS).collect();
                self.ask_missing_txs(peer, ids);
                SyncResponse::Ack
            }
        };
        self.command(Command::RespondSync { channel, response });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{block_on_tip, regtest};

    #[test]
    fn a_blocks_reply_must_be_a_non_empty_prefix_of_the_request() {
        let chain = crate::chain::Chain::open(regtest(), crate::chain::MemoryStore::default()).unwrap();
        let a = block_on_tip(&chain, crate::types::Address([1; 20]), &[]);
        let b = block_on_tip(&chain, crate::types::Address([2; 20]), &[]);
        let asked = vec![a.hash(), b.hash()];
        assert!(answers_request(&asked, std::slice::from_ref(&a)), "a prefix is honest");
        assert!(answers_request(&asked, &[a.clone(), b.clone()]));
        assert!(!answers_request(&asked, &[]), "empty");
        assert!(!answers_request(&asked, &[b.clone(), a.clone()]), "out of order");
        assert!(!answers_request(&asked[..1], &[a.clone(), b]), "more than asked");
        assert!(!answers_request(&[], &[a]), "nothing asked");
    }
}
