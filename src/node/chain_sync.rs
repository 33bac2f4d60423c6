//! Catching up with peers that have more work: the network side of sync.
//! What to ask of whom, and what a reply costs, is decided by the state
//! machine in `sync.rs`; here its requests are sent, headers are checked
//! against the chain (`Chain::extend_headers`), downloaded batches have
//! their aggregate signatures checked together on blocking threads, and
//! blocks are connected in the order of the validated header chain.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use libp2p::request_response::ResponseChannel;
use libp2p::PeerId;

use super::sync::{Action, Event, HeadersOutcome, RequestId, Sync, SyncConfig};
use super::{Asked, Node};
use crate::chain::{Arrival, ChainError, HeaderCursor, SignatureCheck};
use crate::consensus::rules;
use crate::consensus::verdict::{verdict, Verdict};
use crate::consensus::{Params, ValidationError};
use crate::crypto::batch::verify_blocks_batch;
use crate::crypto::Work;
use crate::network::protocol::{
    ChainStatus, SyncRequest, SyncResponse, BLOCKS_RESPONSE_SOFT_BYTES, MAX_BLOCKS_PER_REQUEST, MAX_HEADERS,
    MAX_LOCATOR, MAX_MEMPOOL_IDS, MAX_MEMPOOL_TXS, SYNC_VERSION,
};
use crate::network::Command;
use crate::types::{encode, Block, BlockHash, BlockHeader, Txid};

pub use super::sync::{PENALTY_BAD_HEADERS, PENALTY_FAILED_SYNC, PENALTY_WORK_CLAIM, PENALTY_WRONG_BLOCKS};

/// A sync request not answered in this time has failed: its peer is
/// penalised, and another is asked.
pub const SYNC_STALL: Duration = Duration::from_secs(20);
/// How often every peer is asked its status again, so a peer dropped from
/// sync can be trusted again, and a chain that grew without us is noticed.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(120);
/// Header cursors kept (the machine follows one chain; a few spare for
/// replies that cross a change of source).
const MAX_CURSORS: usize = 8;

/// The node's side of sync: the machine, and what it needs beside it.
#[derive(Debug)]
pub(super) struct SyncDriver {
    pub(super) machine: Sync<PeerId>,
    /// Header cursors by the hash they end at, for headers that continue them.
    cursors: HashMap<BlockHash, HeaderCursor>,
    /// Downloaded blocks, their signatures checked, waiting for their parent;
    /// only blocks of the validated header chain (`Sync::is_wanted`).
    downloaded: HashMap<BlockHash, (Block, PeerId)>,
    /// Batches whose aggregate signatures are being checked on blocking threads.
    pub(super) verifying: FuturesUnordered<tokio::task::JoinHandle<CheckedBatch>>,
    /// Downloaded batches waiting for a signature check to start.
    to_verify: VecDeque<(PeerId, Vec<Block>)>,
    /// More downloaded blocks follow our tip than one turn connects.
    pub(super) connect_more: bool,
    started: Option<(Instant, u64)>,
    last_log: Option<Instant>,
    pub(super) last_status_round: Instant,
}

impl SyncDriver {
    pub(super) fn new(params: &Params, height: u64, work: Work) -> SyncDriver {
        let config = SyncConfig {
            batch: MAX_BLOCKS_PER_REQUEST,
            max_headers: MAX_HEADERS as usize,
            timeout: SYNC_STALL,
            min_chain_work: params.min_chain_work,
            ..SyncConfig::default()
        };
        SyncDriver {
            machine: Sync::new(config, height, work),
            cursors: HashMap::new(),
            downloaded: HashMap::new(),
            verifying: FuturesUnordered::new(),
            to_verify: VecDeque::new(),
            connect_more: false,
            started: None,
            last_log: None,
            last_status_round: Instant::now(),
        }
    }
}

/// A sync batch after its signature check: the blocks up to the first one
/// that failed, and that block's hash and error.
#[derive(Debug)]
pub(super) struct CheckedBatch {
    peer: PeerId,
    blocks: Vec<Block>,
    bad: Option<(BlockHash, ValidationError)>,
}

/// Checks a sync batch's bodies against their headers, then all its
/// aggregate signatures together. Returns the blocks up to the first bad
/// one (all of them when none is), and that block's hash and error. Blocks
/// without payments need no pairing.
fn verify_sync_signatures(blocks: Vec<Block>) -> (Vec<Block>, Option<(BlockHash, ValidationError)>) {
    let mut claims = Vec::new();
    let mut owners = Vec::new();
    let mut cut = None;
    for (i, block) in blocks.iter().enumerate() {
        // A body that is not the header's is the server's doing, not the chain's.
        let claim = rules::body_matches_commitment(block).and_then(|()| rules::aggregate_signature_claim(block));
        match claim {
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

    /// Tells the sync machine what happened and does what it asks.
    pub(super) fn sync_event(&mut self, event: Event<PeerId>) {
        let actions = self.sync.machine.on_event(Instant::now(), event);
        for action in actions {
            match action {
                Action::RequestHeaders { peer, id, after } => {
                    let mut locator: Vec<BlockHash> = after.into_iter().chain(self.chain.locator()).collect();
                    locator.truncate(MAX_LOCATOR);
                    if self.sync.started.is_none() {
                        self.sync.started = Some((Instant::now(), self.chain.height()));
                    }
                    self.request(
                        peer,
                        SyncRequest::Headers { locator, max: MAX_HEADERS },
                        Asked::Headers { id, after },
                    );
                }
                Action::RequestBlocks { peer, id, hashes } => {
                    self.request(peer, SyncRequest::Blocks(hashes), Asked::Blocks { id });
                }
                Action::Penalize { peer, penalty, reason } => self.penalize(peer, penalty, &reason),
                Action::CaughtUp => self.finish_sync(),
            }
        }
        let machine = &self.sync.machine;
        self.sync.downloaded.retain(|hash, _| machine.is_wanted(hash));
        if !machine.is_syncing() {
            self.sync.cursors.clear();
            self.sync.to_verify.clear();
        }
    }

    /// Every peer is asked its status again now and then (`STATUS_INTERVAL`).
    pub(super) fn refresh_peer_statuses(&mut self) {
        if self.sync.last_status_round.elapsed() < STATUS_INTERVAL {
            return;
        }
        self.sync.last_status_round = Instant::now();
        let status = self.status();
        for peer in self.sync_peers() {
            self.request(peer, SyncRequest::Status(status), Asked::Status { first: false });
        }
    }

    pub(super) fn on_sync_peer_gone(&mut self, peer: PeerId) {
        self.sync_event(Event::PeerGone(peer));
    }

    pub(super) fn on_sync_request_failed(&mut self, peer: PeerId, id: RequestId) {
        self.sync_event(Event::Failed { peer, id });
    }

    /// Checks a headers reply as a chain, continuing the cursor at `after`
    /// or from the block of ours the reply starts on.
    fn check_peer_headers(&mut self, after: Option<BlockHash>, headers: &[BlockHeader]) -> HeadersOutcome {
        if headers.len() > MAX_HEADERS as usize {
            return HeadersOutcome::Invalid(format!(
                "{} headers, more than the {MAX_HEADERS} asked for",
                headers.len()
            ));
        }
        let now = super::unix_now();
        let checked = match after {
            Some(after) => {
                let Some(mut cursor) = self.sync.cursors.get(&after).cloned() else {
                    return HeadersOutcome::Diverged;
                };
                match headers.first() {
                    // It answered from another block of ours: its chain moved.
                    Some(first) if first.prev != after && self.chain.entry(&first.prev).is_some() => {
                        return HeadersOutcome::Diverged;
                    }
                    _ => {}
                }
                self.chain.extend_headers(&mut cursor, headers, now).map(|usable| (cursor, usable))
            }
            None => self.chain.check_headers(headers, now),
        };
        let (cursor, usable) = match checked {
            Ok(checked) => checked,
            Err(e) => return HeadersOutcome::Invalid(e.to_string()),
        };
        let passed = headers.get(..usable).unwrap_or_default();
        // Leave out the run of headers whose blocks we store.
        let stored = passed.iter().take_while(|h| self.chain.entry(&h.hash()).is_some_and(|e| !e.invalid)).count();
        let fresh = passed.get(stored..).unwrap_or_default();
        let outcome = HeadersOutcome::Valid {
            first_height: fresh.first().map_or(cursor.height(), |h| h.height),
            hashes: fresh.iter().map(BlockHeader::hash).collect(),
            last: passed.last().map(BlockHeader::hash),
            work: cursor.work(),
            full: headers.len() == MAX_HEADERS as usize,
        };
        if self.sync.cursors.len() >= MAX_CURSORS {
            self.sync.cursors.clear();
        }
        self.sync.cursors.insert(cursor.tip().hash(), cursor);
        outcome
    }

    pub(super) fn handle_headers(
        &mut self,
        peer: PeerId,
        id: RequestId,
        after: Option<BlockHash>,
        headers: Vec<BlockHeader>,
    ) {
        let outcome = self.check_peer_headers(after, &headers);
        if let HeadersOutcome::Invalid(why) = &outcome {
            tracing::warn!(%peer, "sync peer served headers that are not a valid chain: {why}");
        }
        self.sync_event(Event::Headers { peer, id, outcome });
    }

    pub(super) fn handle_blocks(&mut self, peer: PeerId, id: RequestId, blocks: Vec<Block>) {
        let hashes: Vec<BlockHash> = blocks.iter().map(Block::hash).collect();
        self.sync_event(Event::Blocks { peer, id, hashes });
        // Only blocks of the validated header chain are kept (the machine
        // judged the reply; a stale or refused one keeps nothing).
        let machine = &self.sync.machine;
        let blocks: Vec<Block> = blocks.into_iter().filter(|b| machine.is_wanted(&b.hash())).collect();
        if blocks.is_empty() {
            return;
        }
        self.sync.to_verify.push_back((peer, blocks));
        self.start_signature_checks();
    }

    /// Each batch's aggregate signatures in one weighted multi-pairing, on
    /// blocking threads while the other batches download; no more at once
    /// than there are cores. Unbounded (eight at once), `status` during sync
    /// reached p99 159 ms on two cores; one fewer than the cores kept it at
    /// 24 ms but cost 40% of the sync rate; as many as the cores: 37 ms and
    /// 0.88 of blst's rate (`scripts/bench.sh --quick`, BENCHMARKS.md).
    fn start_signature_checks(&mut self) {
        let at_once = std::thread::available_parallelism().map_or(1, |n| n.get()).max(1);
        while self.sync.verifying.len() < at_once {
            let Some((peer, blocks)) = self.sync.to_verify.pop_front() else { break };
            self.sync.verifying.push(tokio::task::spawn_blocking(move || {
                let (blocks, bad) = verify_sync_signatures(blocks);
                CheckedBatch { peer, blocks, bad }
            }));
        }
    }

    /// A batch whose signatures were checked: kept until its blocks connect in order.
    pub(super) fn on_checked_batch(&mut self, batch: CheckedBatch) {
        self.start_signature_checks();
        let CheckedBatch { peer, blocks, bad } = batch;
        for block in blocks {
            self.sync.downloaded.insert(block.hash(), (block, peer));
        }
        if let Some((hash, e)) = bad {
            self.on_invalid_sync_block(peer, hash, &e);
        }
        self.connect_downloaded();
    }

    /// Connects the downloaded blocks that follow our chain, in the order of
    /// the validated header chain.
    /// One request's worth at a time, with one flush: the rest waits for the
    /// loop's next turn (`connect_more`), so the events that came meanwhile
    /// are not held up behind a run of a thousand blocks.
    pub(super) fn connect_downloaded(&mut self) {
        let SyncDriver { machine, downloaded, .. } = &mut self.sync;
        let mut servers = Vec::new();
        let mut blocks = Vec::new();
        for hash in machine.wanted_blocks().take(MAX_BLOCKS_PER_REQUEST) {
            let Some((block, peer)) = downloaded.remove(hash) else { break };
            servers.push((*hash, peer));
            blocks.push(block);
        }
        self.connect_run(servers, blocks);
        let SyncDriver { machine, downloaded, .. } = &self.sync;
        let more = machine.wanted_blocks().next().is_some_and(|hash| downloaded.contains_key(hash));
        self.sync.connect_more = more;
    }

    fn connect_run(&mut self, servers: Vec<(BlockHash, PeerId)>, blocks: Vec<Block>) {
        if blocks.is_empty() {
            return;
        }
        let count = blocks.len();
        match self.accept_blocks_with(blocks, SignatureCheck::AlreadyVerified, Arrival::Requested) {
            Ok(()) | Err(ChainError::Invalid(ValidationError::DuplicateBlock)) => {}
            Err(ChainError::Invalid(e)) => {
                // The first block of the run that is not stored is the one that failed.
                let failed = servers.iter().find(|(hash, _)| self.chain.entry(hash).is_none_or(|e| e.invalid));
                if let Some(&(hash, peer)) = failed {
                    self.on_invalid_sync_block(peer, hash, &e);
                }
            }
            Err(ChainError::Store(e)) => return self.fail(format!("database write failed: {e}")),
        }
        self.log_sync_progress(count);
    }

    /// A block served in sync failed validation: serving an invalid chain is
    /// worse than relaying one bad message.
    fn on_invalid_sync_block(&mut self, peer: PeerId, hash: BlockHash, e: &ValidationError) {
        tracing::warn!(%peer, %hash, "sync peer served an invalid block: {e}");
        if let Verdict::Reject { penalty } = verdict(e) {
            self.penalize(peer, penalty.saturating_mul(5), "served an invalid block in sync");
        }
        let tampered = matches!(e, ValidationError::BodyCommitmentMismatch);
        self.sync_event(Event::InvalidBlock { peer, hash, tampered });
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
            let target = self.sync.machine.header_height();
            tracing::info!(
                height = self.chain.height(),
                target,
                "syncing: {}/{target} ({rate:.1} blocks/s)",
                self.chain.height(),
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
        self.sync_event(Event::Status { peer, work: Work::from_be_bytes(&status.work), tip: status.tip });
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
            SyncRequest::BlockTxs { block, indexes } => self.block_txs_response(&block, &indexes),
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
    use crate::types::Address;

    #[test]
    fn a_tampered_body_is_found_before_its_signature_is_checked() {
        let chain = crate::chain::Chain::open(regtest(), crate::chain::MemoryStore::default()).unwrap();
        let good = block_on_tip(&chain, Address([1; 20]), &[]);
        let mut tampered = good.clone();
        tampered.body.coinbase.recipient = Address([2; 20]);
        let (kept, bad) = verify_sync_signatures(vec![good.clone(), tampered.clone()]);
        assert_eq!(kept, vec![good]);
        assert_eq!(bad, Some((tampered.hash(), ValidationError::BodyCommitmentMismatch)));
    }
}
