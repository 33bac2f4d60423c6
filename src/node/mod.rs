//! Wiring: network events -> validation -> store -> verdicts and replies.
//!
//! One task owns the chain and the mempool and handles, in turn, what the
//! network reports, blocks the miner threads find, and a one-second tick. A
//! block is reported (gossiped, answered to queries) only after its writes are
//! flushed; a transaction is acknowledged only once it is in the mempool.

pub mod config;
pub mod files;
pub mod miner;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

use crate::chain::{
    Arrival, BlockAccepted, Chain, ChainError, ChainStore, ChainUpdate, SignatureCheck, SignatureSource,
};
use crate::consensus::rules;
use crate::consensus::verdict::{verdict, verdict_for_transaction, Verdict};
use crate::consensus::{Params, ValidationError};
use crate::crypto::batch::verify_blocks_batch;
use crate::crypto::pairing_cache::PairingCache;
use crate::crypto::Work;
use crate::mempool::{Mempool, MempoolConfig};
use crate::miner::assemble_block;
use crate::network::protocol::{
    ChainStatus, SyncRequest, SyncResponse, BLOCKS_RESPONSE_SOFT_BYTES, MAX_BLOCKS_PER_REQUEST, MAX_HEADERS,
    MAX_LOCATOR, MAX_MEMPOOL_IDS, MAX_MEMPOOL_TXS, SYNC_VERSION,
};
use crate::network::{Client, Command, NetworkEvent, Topic};
use crate::rpc::handler::{answer, NetworkInfo};
use crate::rpc::{PeerReply, QueryRequest, QueryResponse, SubmitReply};
use crate::state::Account;
use crate::store::SledStore;
use crate::types::{
    decode, encode, Address, Block, BlockHash, SignatureBytes, SignedTransaction, Txid, MAX_BLOCK_BYTES, MAX_TX_BYTES,
};

use files::KnownPeers;
use miner::{Miner, Template};

/// Seconds since the Unix epoch: the clock the rules are given.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
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
async fn next_checked(
    verifying: &mut VecDeque<tokio::task::JoinHandle<CheckedBatch>>,
) -> Result<CheckedBatch, tokio::task::JoinError> {
    match verifying.front_mut() {
        Some(check) => check.await,
        None => std::future::pending().await,
    }
}

/// The store's kept signatures, for payments returning to the mempool after a reorg.
struct StoreSignatures<'a>(&'a SledStore);

impl SignatureSource for StoreSignatures<'_> {
    fn signature(&self, txid: &Txid) -> Option<SignatureBytes> {
        self.0.confirmed_signature(txid).ok().flatten()
    }
}

/// What the node knows of one connected peer.
#[derive(Debug, Default)]
struct PeerState {
    addr: Option<Multiaddr>,
    listen_addrs: Vec<Multiaddr>,
    status: Option<ChainStatus>,
}

/// Where initial (or catch-up) sync stands.
#[derive(Debug, Default)]
struct SyncState {
    /// The peer we download from, and when it last answered.
    peer: Option<(PeerId, Instant)>,
    /// Blocks announced by its headers that we still have to fetch.
    queue: VecDeque<BlockHash>,
    target_height: u64,
    started: Option<(Instant, u64)>,
    last_log: Option<Instant>,
    /// Whether a request for blocks is on its way to the peer.
    requested: bool,
    /// Downloaded batches whose signatures are being checked on blocking
    /// threads, oldest first; each is connected once checked, in order.
    verifying: VecDeque<tokio::task::JoinHandle<CheckedBatch>>,
}

/// Sync batches being checked at most, with one more downloading: the next
/// batches' pairings run while the previous one is connected and written
/// (at most 8 MiB each).
const SYNC_BATCHES_IN_FLIGHT: usize = 3;

impl SyncState {
    /// Stops downloading from the current peer, dropping what it sent that
    /// is not connected yet.
    fn abandon(&mut self) {
        self.peer = None;
        self.queue.clear();
        self.requested = false;
        self.verifying.clear();
    }
}

/// A sync batch after its signature check: the blocks up to the first one
/// with a bad signature, and that block's hash and error.
#[derive(Debug)]
struct CheckedBatch {
    peer: PeerId,
    blocks: Vec<Block>,
    bad: Option<(BlockHash, ValidationError)>,
}

/// Paths in the data directory.
pub struct DataFiles {
    pub peers: PathBuf,
    pub mempool: PathBuf,
}

pub struct Node {
    params: &'static Params,
    chain: Chain<SledStore>,
    mempool: Mempool,
    client: Client,
    listen_addrs: Vec<Multiaddr>,
    peers: HashMap<PeerId, PeerState>,
    known_peers: KnownPeers,
    sync: SyncState,
    miner: Option<(Miner, Address)>,
    found: mpsc::UnboundedReceiver<Block>,
    template_dirty: bool,
    files: DataFiles,
    last_peer_save: Instant,
    fatal: Option<String>,
    /// Our score of each peer: lowered by invalid data, banned below `-BAN_SCORE`.
    scores: HashMap<PeerId, i64>,
    last_score_decay: Instant,
    /// Payments a reorg returned to the mempool, to relay to every peer.
    to_announce: Vec<Txid>,
    /// Pairings of admitted transactions, shared by the mempool and block validation.
    signature_cache: Arc<PairingCache>,
    /// Gossiped transactions waiting for their signatures to be checked as a batch.
    gossip_batch: Vec<(PeerId, MessageId, SignedTransaction)>,
    /// When the oldest of them arrived: a lone transaction waits at most `BATCH_WAIT`.
    gossip_batch_since: Option<tokio::time::Instant>,
}

/// Pairing-cache entries (576-byte values; about 85 MB when full, with the map and eviction queue).
pub const SIGNATURE_CACHE_ENTRIES: usize = 100_000;
/// Gossiped transactions verified together at most.
pub const BATCH_MAX: usize = 64;
/// The longest a gossiped transaction waits for its batch.
pub const BATCH_WAIT: Duration = Duration::from_millis(5);

/// A peer whose score falls to minus this is banned (five plainly invalid messages).
pub const BAN_SCORE: i64 = 500;
/// How long a ban lasts.
pub const BAN_DURATION: Duration = Duration::from_secs(3_600);
/// The penalty for a sync request to the peer we sync from that failed (a
/// garbage answer, a timeout, a dropped stream): small, since an honest peer
/// can be slow, but repeated failures add up.
pub const PENALTY_FAILED_SYNC: u32 = 25;
/// The penalty for a peer that claimed more work than it could show.
pub const PENALTY_WORK_CLAIM: u32 = 100;

/// How the node's run ended.
#[derive(Debug)]
pub enum Stopped {
    /// SIGINT or SIGTERM, or the network stopped.
    Clean,
    /// A write failed: the node stopped rather than run on in a bad state.
    Fatal(String),
}

impl Node {
    pub fn new(
        mut chain: Chain<SledStore>,
        client: Client,
        known_peers: KnownPeers,
        files: DataFiles,
        mining: Option<(usize, Address)>,
    ) -> Node {
        let params = chain.params();
        let (found_tx, found) = mpsc::unbounded_channel();
        let miner = mining.map(|(threads, address)| (Miner::start(threads, found_tx), address));
        let signature_cache = Arc::new(PairingCache::new(SIGNATURE_CACHE_ENTRIES));
        chain.set_signature_cache(signature_cache.clone());
        let mut mempool = Mempool::new(params, MempoolConfig::default());
        mempool.set_signature_cache(signature_cache.clone());
        Node {
            params,
            chain,
            mempool,
            client,
            listen_addrs: Vec::new(),
            peers: HashMap::new(),
            known_peers,
            sync: SyncState::default(),
            miner,
            found,
            template_dirty: true,
            files,
            last_peer_save: Instant::now(),
            fatal: None,
            scores: HashMap::new(),
            last_score_decay: Instant::now(),
            to_announce: Vec::new(),
            signature_cache,
            gossip_batch: Vec::new(),
            gossip_batch_since: None,
        }
    }

    /// Reloads the mempool saved at the last clean shutdown.
    pub fn restore_mempool(&mut self) {
        match files::take_saved_mempool(&self.files.mempool) {
            Ok(txs) => {
                let now = unix_now();
                let mut kept = 0;
                for stx in txs {
                    let account = self.account(&stx.tx.sender_address());
                    // These were verified before they were saved by this node.
                    if self.mempool.add_previously_verified(stx, account, now).is_ok() {
                        kept += 1;
                    }
                }
                if kept > 0 {
                    tracing::info!(transactions = kept, "mempool restored");
                }
            }
            Err(e) => tracing::warn!("saved mempool not restored: {e}"),
        }
    }

    /// Dials the peers known from earlier runs, then the bootstrap addresses.
    pub async fn dial_initial(&self, bootstrap: &[Multiaddr]) {
        for (peer, addrs) in &self.known_peers {
            for addr in addrs.iter().take(2) {
                let full = addr.clone().with_p2p(*peer).unwrap_or_else(|a| a);
                self.command(Command::Dial(full)).await;
            }
        }
        for addr in bootstrap {
            self.command(Command::Dial(addr.clone())).await;
        }
    }

    async fn command(&self, command: Command) {
        self.client.send(command).await;
    }

    fn account(&self, address: &Address) -> Account {
        match self.chain.account(address) {
            Ok(account) => account,
            Err(e) => {
                tracing::error!("cannot read an account: {e}");
                Account::default()
            }
        }
    }

    /// Runs until `shutdown` resolves, the network stops, or a write fails.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<NetworkEvent>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Stopped {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        self.refresh_template();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                event = events.recv() => match event {
                    Some(event) => self.handle_network_event(event).await,
                    None => break,
                },
                Some(block) = self.found.recv() => self.handle_mined_block(block).await,
                checked = next_checked(&mut self.sync.verifying), if !self.sync.verifying.is_empty() => {
                    self.sync.verifying.pop_front();
                    match checked {
                        Ok(batch) => self.connect_checked_batch(batch).await,
                        Err(e) => {
                            // A bug, not the peer's doing: nothing of the batch is connected.
                            tracing::error!("a sync batch's signature check failed to run: {e}");
                            self.sync.abandon();
                        }
                    }
                }
                _ = tick.tick() => self.on_tick().await,
                _ = tokio::time::sleep_until(self.gossip_batch_since.unwrap_or_else(tokio::time::Instant::now) + BATCH_WAIT),
                    if self.gossip_batch_since.is_some() => self.verify_gossip_batch().await,
            }
            if !self.to_announce.is_empty() {
                self.announce_returned().await;
            }
            if self.fatal.is_some() {
                break;
            }
        }
        self.shut_down()
    }

    fn shut_down(mut self) -> Stopped {
        if let Some((miner, _)) = self.miner.take() {
            miner.stop();
        }
        let txs: Vec<SignedTransaction> = self.mempool.iter().copied().collect();
        if let Err(e) = files::save_mempool(&self.files.mempool, &txs) {
            tracing::warn!("mempool not saved: {e}");
        }
        self.save_peers();
        if let Err(e) = self.chain.flush() {
            return Stopped::Fatal(format!("cannot flush the database: {e}"));
        }
        tracing::info!(height = self.chain.height(), "stopped; the database is flushed");
        match self.fatal {
            Some(reason) => Stopped::Fatal(reason),
            None => Stopped::Clean,
        }
    }

    fn save_peers(&mut self) {
        self.last_peer_save = Instant::now();
        if let Err(e) = files::save_known_peers(&self.files.peers, &self.known_peers) {
            tracing::warn!("known peers not saved: {e}");
        }
    }

    fn status(&self) -> ChainStatus {
        ChainStatus {
            version: SYNC_VERSION,
            genesis: self.params.genesis_hash,
            tip: self.chain.tip(),
            height: self.chain.height(),
            work: self.chain.tip_work().to_be_bytes(),
        }
    }

    async fn on_tick(&mut self) {
        let now = unix_now();
        let expired = self.mempool.expire(now);
        if !expired.is_empty() {
            self.template_dirty = true;
        }
        if self.template_dirty {
            self.refresh_template();
        }
        if let Some((peer, last)) = self.sync.peer {
            if last.elapsed() > Duration::from_secs(30) {
                tracing::warn!(%peer, "sync peer stalled; trying another");
                self.sync.abandon();
            }
        }
        self.maybe_start_sync().await;
        if self.last_peer_save.elapsed() > Duration::from_secs(30) {
            self.save_peers();
        }
        if self.last_score_decay.elapsed() > Duration::from_secs(60) {
            self.decay_scores();
        }
    }

    fn network_info(&self) -> NetworkInfo {
        NetworkInfo {
            peer_id: self.client.peer_id.to_string(),
            listen_addrs: self.listen_addrs.iter().map(|a| a.to_string()).collect(),
            // Only peers that speak the sync protocol are nodes; a connected
            // `ourcoin-cli` is not a peer.
            peers: self
                .peers
                .iter()
                .filter(|(_, state)| state.status.is_some())
                .map(|(peer, state)| PeerReply {
                    peer_id: peer.to_string(),
                    addrs: state.addr.iter().chain(&state.listen_addrs).map(|a| a.to_string()).collect(),
                })
                .collect(),
            mining: self.miner.is_some(),
            signature_cache_hit_ratio: self.signature_cache.stats().hit_ratio(),
            best_known_height: self
                .peers
                .values()
                .filter_map(|p| p.status.map(|s| s.height))
                .max()
                .unwrap_or(0)
                .max(self.sync.target_height),
        }
    }

    // --- Network events -------------------------------------------------

    async fn handle_network_event(&mut self, event: NetworkEvent) {
        match event {
            NetworkEvent::Listening(addr) => {
                tracing::info!("listening on {addr}");
                self.listen_addrs.push(addr);
            }
            NetworkEvent::PeerConnected { peer, addr } => {
                tracing::info!(%peer, %addr, "peer connected");
                self.peers.entry(peer).or_default().addr = Some(addr);
                let status = self.status();
                self.command(Command::SendSync { peer, request: SyncRequest::Status(status) }).await;
            }
            NetworkEvent::PeerDisconnected { peer } => {
                tracing::info!(%peer, "peer disconnected");
                self.peers.remove(&peer);
                if self.sync.peer.is_some_and(|(p, _)| p == peer) {
                    self.sync.abandon();
                }
            }
            NetworkEvent::PeerAddresses { peer, addrs } => {
                if !addrs.is_empty() {
                    let mut addrs = addrs;
                    addrs.truncate(8);
                    if self.known_peers.len() < files::MAX_KNOWN_PEERS || self.known_peers.contains_key(&peer) {
                        self.known_peers.insert(peer, addrs.clone());
                    }
                    self.peers.entry(peer).or_default().listen_addrs = addrs;
                }
            }
            NetworkEvent::Gossip { source, id, topic, data } => match topic {
                Topic::Transactions => self.handle_gossip_tx(source, id, &data).await,
                Topic::Blocks => self.handle_gossip_block(source, id, &data).await,
            },
            NetworkEvent::SyncRequest { peer, request, channel } => self.serve_sync(peer, request, channel).await,
            NetworkEvent::SyncResponse { peer, response } => self.handle_sync_response(peer, response).await,
            NetworkEvent::SyncFailure { peer, error } => {
                tracing::debug!(%peer, "sync request failed: {error}");
                if self.sync.peer.is_some_and(|(p, _)| p == peer) {
                    self.sync.abandon();
                    // Its claim of more work is not to be trusted until it answers a
                    // new status: otherwise we would pick it again at every tick.
                    if let Some(state) = self.peers.get_mut(&peer) {
                        state.status = None;
                    }
                    self.penalize(peer, PENALTY_FAILED_SYNC, "failed a sync request").await;
                }
            }
            NetworkEvent::SyncMalformedRequest { peer, error } => {
                let why = format!("sent a malformed sync request ({error})");
                self.penalize(peer, crate::consensus::verdict::PENALTY_MALFORMED, &why).await;
            }
            NetworkEvent::QueryRequest { request, channel, .. } => self.serve_query(request, channel).await,
        }
    }

    async fn report(&mut self, id: MessageId, source: PeerId, verdict: Verdict) {
        let acceptance = match verdict {
            Verdict::Accept => MessageAcceptance::Accept,
            Verdict::Ignore => MessageAcceptance::Ignore,
            Verdict::Reject { .. } => MessageAcceptance::Reject,
        };
        self.command(Command::ReportValidation { id, source, acceptance }).await;
        if let Verdict::Reject { penalty } = verdict {
            self.penalize(source, penalty, "sent invalid data").await;
        }
    }

    /// Lowers a peer's score; bans it once the score reaches `-BAN_SCORE`.
    async fn penalize(&mut self, peer: PeerId, penalty: u32, why: &str) {
        let score = self.scores.entry(peer).or_insert(0);
        *score = score.saturating_sub(i64::from(penalty));
        let score = *score;
        tracing::info!(%peer, score, "peer penalised: {why}");
        self.command(Command::SetScore { peer, score: score as f64 }).await;
        if score <= -BAN_SCORE {
            self.scores.remove(&peer);
            self.peers.remove(&peer);
            if self.sync.peer.is_some_and(|(p, _)| p == peer) {
                self.sync.abandon();
            }
            self.command(Command::Ban { peer, duration: BAN_DURATION }).await;
        }
    }

    /// Scores drift back toward zero: old offences fade.
    fn decay_scores(&mut self) {
        self.last_score_decay = Instant::now();
        for score in self.scores.values_mut() {
            *score -= *score / 10;
        }
        self.scores.retain(|_, score| *score != 0);
    }

    /// Decodes a gossiped transaction and queues it for the next signature batch.
    async fn handle_gossip_tx(&mut self, source: PeerId, id: MessageId, data: &[u8]) {
        match decode::<SignedTransaction>(data, MAX_TX_BYTES) {
            Ok(stx) => {
                self.gossip_batch.push((source, id, stx));
                self.gossip_batch_since.get_or_insert_with(tokio::time::Instant::now);
                if self.gossip_batch.len() >= BATCH_MAX {
                    self.verify_gossip_batch().await;
                }
            }
            Err(e) => {
                tracing::debug!(%source, "malformed transaction: {e}");
                self.report(id, source, verdict_for_transaction(&ValidationError::from(e))).await;
            }
        }
    }

    /// Admits the queued gossiped transactions: cheap rules one by one, then
    /// their signatures together; reports each verdict and relays what became ready.
    async fn verify_gossip_batch(&mut self) {
        self.gossip_batch_since = None;
        let batch = std::mem::take(&mut self.gossip_batch);
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
            self.report(id, source, verdict).await;
        }
        self.publish_transactions(&promoted).await;
    }

    /// Adds a transaction to the mempool; returns whether it is ready (relayable)
    /// and the transactions it made ready, which we publish ourselves.
    fn admit_transaction(&mut self, stx: SignedTransaction) -> Result<(bool, Vec<Txid>), ValidationError> {
        let account = self.account(&stx.tx.sender_address());
        let added = self.mempool.add(stx, account, unix_now())?;
        self.template_dirty = true;
        Ok((added.ready, added.promoted))
    }

    async fn publish_transactions(&self, txids: &[Txid]) {
        for txid in txids {
            if let Some(stx) = self.mempool.get(txid) {
                self.command(Command::Publish { topic: Topic::Transactions, data: encode(stx) }).await;
            }
        }
    }

    async fn handle_gossip_block(&mut self, source: PeerId, id: MessageId, data: &[u8]) {
        let block = match decode::<Block>(data, MAX_BLOCK_BYTES) {
            Ok(block) => block,
            Err(e) => {
                tracing::debug!(%source, "malformed block: {e}");
                self.report(id, source, verdict(&ValidationError::from(e))).await;
                return;
            }
        };
        let hash = block.hash();
        match self.accept_blocks_with(vec![block], SignatureCheck::Verify, Arrival::Unrequested) {
            Ok(()) => self.report(id, source, Verdict::Accept).await,
            Err(ChainError::Invalid(e)) => {
                if let ValidationError::UnknownParent(_) = e {
                    // We are behind or on another branch: ask this peer for its headers.
                    self.start_sync_from(source).await;
                } else if !matches!(e, ValidationError::DuplicateBlock | ValidationError::LessWorkThanBest) {
                    tracing::info!(%source, %hash, "block refused: {e}");
                }
                self.report(id, source, verdict(&e)).await;
            }
            Err(ChainError::Store(e)) => self.fail(format!("database write failed: {e}")),
        }
    }

    async fn handle_mined_block(&mut self, block: Block) {
        let hash = block.hash();
        let data = encode(&block);
        match self.accept_blocks(vec![block]) {
            Ok(()) => {
                tracing::info!(%hash, "mined a block");
                self.command(Command::Publish { topic: Topic::Blocks, data }).await;
            }
            Err(ChainError::Invalid(e)) => tracing::warn!(%hash, "own block refused: {e}"),
            Err(ChainError::Store(e)) => self.fail(format!("database write failed: {e}")),
        }
    }

    fn fail(&mut self, reason: String) {
        tracing::error!("{reason}; stopping");
        self.fatal = Some(reason);
    }

    /// Validates and connects blocks, flushes once, then updates the mempool
    /// and the miner. The first error stops the batch.
    fn accept_blocks(&mut self, blocks: Vec<Block>) -> Result<(), ChainError> {
        self.accept_blocks_with(blocks, SignatureCheck::Verify, Arrival::Requested)
    }

    fn accept_blocks_with(
        &mut self,
        blocks: Vec<Block>,
        check: SignatureCheck,
        arrival: Arrival,
    ) -> Result<(), ChainError> {
        let now = unix_now();
        let mut update = ChainUpdate::default();
        let mut result = Ok(());
        for block in blocks {
            let accepted = match arrival {
                Arrival::Requested => self.chain.accept_block_with(block, now, &self.mempool, check),
                Arrival::Unrequested => self.chain.accept_unrequested_block(block, now, &self.mempool),
            };
            match accepted {
                Ok(BlockAccepted::BestChain(more)) => {
                    update.disconnected.extend(more.disconnected);
                    update.connected.extend(more.connected);
                }
                Ok(BlockAccepted::SideChain) => {}
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
        result
    }

    fn apply_chain_update(&mut self, update: &ChainUpdate) {
        let chain = &self.chain;
        let accounts = |a: &Address| chain.account(a).unwrap_or_default();
        for block in &update.connected {
            self.mempool.remove_confirmed(block, &accounts);
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
    async fn announce_returned(&mut self) {
        let txids: Vec<Txid> =
            std::mem::take(&mut self.to_announce).into_iter().filter(|t| self.mempool.contains(t)).collect();
        if txids.is_empty() {
            return;
        }
        self.publish_transactions(&txids).await;
        let peers: Vec<PeerId> = self.peers.iter().filter(|(_, s)| s.status.is_some()).map(|(p, _)| *p).collect();
        for chunk in txids.chunks(MAX_MEMPOOL_TXS) {
            for peer in &peers {
                self.command(Command::SendSync { peer: *peer, request: SyncRequest::AnnounceTxs(chunk.to_vec()) })
                    .await;
            }
        }
    }

    fn refresh_template(&mut self) {
        self.template_dirty = false;
        let Some((miner, address)) = &self.miner else { return };
        let next = self.chain.next_block();
        let chain = &self.chain;
        let accounts = |a: &Address| chain.account(a).unwrap_or_default();
        // Room for the header, coinbase and signature.
        let payments = self.mempool.select(&accounts, MAX_BLOCK_BYTES - 4096, 15_000);
        let tip_time = self.chain.tip_header().time;
        // On regtest, never faster than the block time (a mining policy, SPEC §5).
        let not_before = if self.params.network == crate::types::Network::Regtest {
            tip_time.saturating_add(self.params.block_time_secs)
        } else {
            0
        };
        let time = unix_now().max(next.min_time).max(not_before);
        match assemble_block(&next, time, *address, &payments) {
            Ok(block) => miner.set_template(Template { block, not_before }),
            Err(e) => tracing::error!("cannot build a block template: {e}"),
        }
    }

    // --- Sync -------------------------------------------------------------

    fn peer_has_more_work(&self, status: &ChainStatus) -> bool {
        status.genesis == self.params.genesis_hash && Work::from_be_bytes(&status.work) > self.chain.tip_work()
    }

    async fn maybe_start_sync(&mut self) {
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
            self.start_sync_from(peer).await;
        }
    }

    async fn start_sync_from(&mut self, peer: PeerId) {
        if self.sync.peer.is_some_and(|(p, _)| p != peer) {
            return;
        }
        self.sync.peer = Some((peer, Instant::now()));
        if self.sync.started.is_none() {
            self.sync.started = Some((Instant::now(), self.chain.height()));
        }
        let mut locator = self.chain.locator();
        locator.truncate(MAX_LOCATOR);
        self.command(Command::SendSync { peer, request: SyncRequest::Headers { locator, max: MAX_HEADERS } }).await;
    }

    /// Asks the sync peer for the next blocks when fewer than
    /// `SYNC_BATCHES_IN_FLIGHT` batches are downloading or being checked; for
    /// headers again once everything asked for is connected (the peer may
    /// have more past what it sent).
    async fn request_next_blocks(&mut self, peer: PeerId) {
        if self.sync.requested || self.sync.verifying.len() >= SYNC_BATCHES_IN_FLIGHT {
            return;
        }
        let batch: Vec<BlockHash> =
            std::iter::from_fn(|| self.sync.queue.pop_front()).take(MAX_BLOCKS_PER_REQUEST).collect();
        if !batch.is_empty() {
            self.sync.requested = true;
            self.command(Command::SendSync { peer, request: SyncRequest::Blocks(batch) }).await;
        } else if self.sync.verifying.is_empty() {
            self.start_sync_from(peer).await;
        }
    }

    async fn handle_sync_response(&mut self, peer: PeerId, response: SyncResponse) {
        let is_sync_peer = self.sync.peer.is_some_and(|(p, _)| p == peer);
        if is_sync_peer {
            self.sync.peer = Some((peer, Instant::now()));
        }
        match response {
            SyncResponse::Status(status) => {
                self.record_status(peer, status).await;
                self.command(Command::SendSync { peer, request: SyncRequest::MempoolIds }).await;
            }
            SyncResponse::Headers(headers) if is_sync_peer => {
                let new: Vec<BlockHash> =
                    headers.iter().map(|h| h.hash()).filter(|hash| !self.chain.knows(hash)).collect();
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
                        self.penalize(peer, PENALTY_WORK_CLAIM, "claimed more work than it served").await;
                    }
                    self.maybe_start_sync().await;
                } else {
                    self.sync.queue.extend(new);
                    self.request_next_blocks(peer).await;
                }
            }
            SyncResponse::Blocks(blocks) if is_sync_peer => {
                self.sync.requested = false;
                // All the batch's aggregate signatures in one weighted
                // multi-pairing, on blocking threads; the next batch is asked
                // for meanwhile, and the batch is connected once checked.
                let check = tokio::task::spawn_blocking(move || {
                    let (blocks, bad) = verify_sync_signatures(blocks);
                    CheckedBatch { peer, blocks, bad }
                });
                self.sync.verifying.push_back(check);
                self.request_next_blocks(peer).await;
            }
            SyncResponse::MempoolIds(ids) => {
                let missing: Vec<Txid> =
                    ids.into_iter().filter(|id| !self.mempool.contains(id)).take(MAX_MEMPOOL_TXS).collect();
                if !missing.is_empty() {
                    self.command(Command::SendSync { peer, request: SyncRequest::MempoolTxs(missing) }).await;
                }
            }
            SyncResponse::MempoolTxs(txs) => {
                let mut accepted = Vec::new();
                for stx in txs.into_iter().take(MAX_MEMPOOL_TXS) {
                    let txid = stx.txid();
                    if let Ok((ready, promoted)) = self.admit_transaction(stx) {
                        if ready {
                            accepted.push(txid);
                        }
                        accepted.extend(promoted);
                    }
                }
                if !accepted.is_empty() {
                    tracing::info!(%peer, transactions = accepted.len(), "received pending transactions");
                    self.publish_transactions(&accepted).await;
                }
            }
            SyncResponse::Refused(reason) => tracing::info!(%peer, "sync request refused: {reason}"),
            SyncResponse::Ack => {}
            SyncResponse::Headers(_) | SyncResponse::Blocks(_) => {
                tracing::debug!(%peer, "unrequested sync response ignored")
            }
        }
    }

    /// Connects a sync batch whose signatures were checked, then asks for more.
    async fn connect_checked_batch(&mut self, batch: CheckedBatch) {
        let CheckedBatch { peer, blocks, bad } = batch;
        let count = blocks.len();
        // The pipeline has room again: keep the cores busy while this one is written.
        if self.sync.peer.is_some_and(|(p, _)| p == peer) && !self.sync.queue.is_empty() {
            self.request_next_blocks(peer).await;
        }
        if let Some((hash, e)) = &bad {
            tracing::warn!(%peer, %hash, "sync peer served a block with a bad signature: {e}");
        }
        // Blocks connected meanwhile (a gossiped block's orphan children, say)
        // are skipped, or the first duplicate would stop the batch.
        let blocks: Vec<Block> =
            blocks.into_iter().filter(|block| self.chain.entry(&block.hash()).is_none_or(|e| e.invalid)).collect();
        let accepted = self.accept_blocks_with(blocks, SignatureCheck::AlreadyVerified, Arrival::Requested);
        let accepted = match (accepted, bad) {
            (Ok(()), Some((_, e))) => Err(ChainError::Invalid(e)),
            (other, _) => other,
        };
        match accepted {
            Ok(()) => {}
            Err(ChainError::Invalid(ValidationError::DuplicateBlock)) => {}
            Err(ChainError::Invalid(e)) => {
                tracing::warn!(%peer, "sync peer served an invalid block: {e}");
                if self.sync.peer.is_some_and(|(p, _)| p == peer) {
                    // What it sent after the bad block is dropped with it.
                    self.sync.abandon();
                }
                if let Verdict::Reject { penalty } = verdict(&e) {
                    // Serving an invalid chain is worse than relaying one bad message.
                    self.penalize(peer, penalty.saturating_mul(5), "served an invalid block in sync").await;
                }
                return;
            }
            Err(ChainError::Store(e)) => return self.fail(format!("database write failed: {e}")),
        }
        self.log_sync_progress(count);
        if self.sync.peer.is_some_and(|(p, _)| p == peer) {
            self.request_next_blocks(peer).await;
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

    async fn record_status(&mut self, peer: PeerId, status: ChainStatus) {
        if status.genesis != self.params.genesis_hash || status.version != SYNC_VERSION {
            tracing::info!(%peer, "peer is on another network or protocol version; disconnecting");
            self.command(Command::Disconnect(peer)).await;
            return;
        }
        self.peers.entry(peer).or_default().status = Some(status);
        if self.peer_has_more_work(&status) {
            self.sync.target_height = self.sync.target_height.max(status.height);
            self.maybe_start_sync().await;
        }
    }

    async fn serve_sync(&mut self, peer: PeerId, request: SyncRequest, channel: ResponseChannel<SyncResponse>) {
        let response = match request {
            SyncRequest::Status(theirs) => {
                let ours = self.status();
                self.record_status(peer, theirs).await;
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
                let missing: Vec<Txid> =
                    ids.into_iter().take(MAX_MEMPOOL_TXS).filter(|id| !self.mempool.contains(id)).collect();
                if !missing.is_empty() {
                    self.command(Command::SendSync { peer, request: SyncRequest::MempoolTxs(missing) }).await;
                }
                SyncResponse::Ack
            }
        };
        self.command(Command::RespondSync { channel, response }).await;
    }

    // --- Queries ------------------------------------------------------------

    async fn serve_query(&mut self, request: QueryRequest, channel: ResponseChannel<QueryResponse>) {
        let response = match request {
            QueryRequest::Submit(stx) => {
                let txid = stx.txid();
                match self.admit_transaction(stx) {
                    Ok((ready, promoted)) => {
                        let mut publish = promoted;
                        if ready {
                            publish.push(txid);
                        }
                        self.publish_transactions(&publish).await;
                        tracing::info!(%txid, "transaction submitted");
                        QueryResponse::Submitted(SubmitReply { txid: txid.to_string() })
                    }
                    Err(e) => QueryResponse::Error(format!("transaction refused: {e}")),
                }
            }
            other => answer(&self.chain, &self.mempool, &self.network_info(), &other),
        };
        self.command(Command::RespondQuery { channel, response }).await;
    }
}
