//! Wiring: network events -> validation -> store -> verdicts and replies.
//!
//! The node owns the chain, the ledger, the mempool and the store, and runs
//! on a thread of its own ([`Node::spawn`]), apart from the runtime whose
//! task polls the swarm: however long a block's validation, a sled flush or a
//! template rebuild takes, pings, yamux, Kademlia and gossip keep going, and
//! `status` is answered from the [`StatusBoard`] the node keeps current. The
//! two sides talk by typed messages only, and neither waits for the other.
//!
//! One concern a file: `peers.rs` (scores, bans, who is connected),
//! `gossip.rs` (transactions and blocks relayed to us, and our own),
//! `blocks.rs` (connecting blocks, the mempool and the miner after them),
//! `chain_sync.rs` (catching up with peers that have more work),
//! `mempool_sync.rs` (the mempool exchange), `query.rs` (serving
//! `ourcoin-cli`). A block goes socket -> `gossip.rs` or `chain_sync.rs` ->
//! `blocks.rs` -> the chain and the store.
//!
//! A block is reported (gossiped, answered to queries) only after its writes
//! are flushed; a transaction is acknowledged only once it is in the mempool.

mod blocks;
mod chain_sync;
mod compact;
pub mod config;
pub mod files;
mod gossip;
mod mempool_sync;
pub mod miner;
pub mod notify;
mod operator;
mod peers;
mod query;
pub mod sync;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use crate::chain::Chain;
use crate::consensus::Params;
use crate::crypto::pairing_cache::PairingCache;
use crate::mempool::{Mempool, MempoolConfig};
use crate::network::protocol::SyncRequest;
use crate::network::{Client, Command, NetworkEvent, NetworkEvents, SyncReply};
use crate::rpc::StatusBoard;
use crate::state::Account;
use crate::store::SledStore;
use crate::types::{Address, Block, SignedTransaction, Txid};

pub use chain_sync::{
    PENALTY_BAD_HEADERS, PENALTY_FAILED_SYNC, PENALTY_WORK_CLAIM, PENALTY_WRONG_BLOCKS, STATUS_INTERVAL, SYNC_STALL,
};
pub use gossip::{BATCH_MAX, BATCH_WAIT};
pub use peers::{BAN_DURATION, BAN_SCORE};

use chain_sync::SyncDriver;
use gossip::GossipBatch;
use mempool_sync::MempoolExchange;
use miner::Miner;
use peers::PeerState;

/// Seconds since the Unix epoch: the clock the rules are given.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Paths in the data directory.
pub struct DataFiles {
    pub mempool: PathBuf,
}

/// What a sync request we sent was for, so its reply is read as what we asked.
#[derive(Debug, Clone)]
enum Asked {
    /// `first`: on connecting (the mempool exchange follows), not a refresh.
    Status {
        first: bool,
    },
    Headers {
        id: sync::RequestId,
        after: Option<crate::types::BlockHash>,
    },
    Blocks {
        id: sync::RequestId,
    },
    MempoolIds,
    MempoolTxs(Vec<Txid>),
    /// Answered with `Ack`; nothing to do.
    Announce,
    /// A compact block's missing payments, from its sender.
    BlockTxs {
        block: crate::types::BlockHash,
    },
    /// A compact block in full, after rebuilding it failed.
    FullBlock {
        block: crate::types::BlockHash,
    },
}

/// A reply to one of our sync requests, with what it answers.
struct Answered {
    peer: PeerId,
    asked: Asked,
    reply: SyncReply,
}

type Replies = FuturesUnordered<futures::future::BoxFuture<'static, Answered>>;

pub struct Node {
    params: &'static Params,
    chain: Chain<SledStore>,
    mempool: Mempool,
    client: Client,
    listen_addrs: Vec<Multiaddr>,
    peers: HashMap<PeerId, PeerState>,
    sync: SyncDriver,
    mempool_exchange: MempoolExchange,
    /// Replies to the sync requests we sent, as they come.
    replies: Replies,
    miner: Option<(Miner, Address)>,
    found: mpsc::UnboundedReceiver<Block>,
    template_dirty: bool,
    files: DataFiles,
    fatal: Option<String>,
    /// Our score of each peer: lowered by invalid data, banned below `-BAN_SCORE`.
    scores: HashMap<PeerId, i64>,
    last_score_decay: Instant,
    /// Payments a reorg returned to the mempool, to relay to every peer.
    to_announce: Vec<Txid>,
    /// Pairings of admitted transactions, shared by the mempool and block validation.
    signature_cache: Arc<PairingCache>,
    gossip_batch: GossipBatch,
    /// The status the network answers `status` with, and when and at which
    /// tip it was last put there.
    status_board: StatusBoard,
    status_published: (Instant, crate::types::BlockHash),
    /// What `chaininfo`, `mininginfo` and `estimatefee` need kept.
    operator: operator::OperatorState,
    /// Compact blocks being rebuilt, and the payments of recent blocks.
    compact: compact::CompactRelay,
    /// Our own blocks go out whole instead of compact (for comparisons).
    relay_full_blocks: bool,
}

/// How stale the status board may get while the tip stays the same.
const STATUS_REFRESH: Duration = Duration::from_millis(50);

/// Pairing-cache entries (576-byte values; about 85 MB when full, with the map and eviction queue).
pub const SIGNATURE_CACHE_ENTRIES: usize = 100_000;

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
        files: DataFiles,
        mining: Option<(usize, Address)>,
        status_board: StatusBoard,
    ) -> Node {
        let params = chain.params();
        let (found_tx, found) = mpsc::unbounded_channel();
        let miner = mining.map(|(threads, address)| (Miner::start(threads, found_tx), address));
        let signature_cache = Arc::new(PairingCache::new(SIGNATURE_CACHE_ENTRIES));
        chain.set_signature_cache(signature_cache.clone());
        let mut mempool = Mempool::new(params, MempoolConfig::default());
        mempool.set_signature_cache(signature_cache.clone());
        let sync = SyncDriver::new(params, chain.height(), chain.tip_work());
        let mut node = Node {
            params,
            chain,
            mempool,
            client,
            listen_addrs: Vec::new(),
            peers: HashMap::new(),
            sync,
            mempool_exchange: MempoolExchange::default(),
            replies: FuturesUnordered::new(),
            miner,
            found,
            template_dirty: true,
            files,
            fatal: None,
            scores: HashMap::new(),
            last_score_decay: Instant::now(),
            to_announce: Vec::new(),
            signature_cache,
            gossip_batch: GossipBatch::default(),
            status_board,
            status_published: (Instant::now(), crate::types::BlockHash::default()),
            operator: operator::OperatorState::default(),
            compact: compact::CompactRelay::default(),
            relay_full_blocks: false,
        };
        node.publish_status();
        node
    }

    /// Runs the node on a thread of its own, with a single-threaded runtime
    /// for its timers and channels, until `shutdown` fires; the returned
    /// receiver tells how it stopped.
    pub fn spawn(
        mut self,
        events: NetworkEvents,
        shutdown: oneshot::Receiver<()>,
    ) -> std::io::Result<oneshot::Receiver<Stopped>> {
        let (done, stopped) = oneshot::channel();
        std::thread::Builder::new().name("node".into()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = done.send(Stopped::Fatal(format!("cannot start the node's runtime: {e}")));
                    return;
                }
            };
            self.restore_mempool();
            let outcome = runtime.block_on(self.run(events, async {
                let _ = shutdown.await;
            }));
            let _ = done.send(outcome);
        })?;
        Ok(stopped)
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

    /// Publishes the blocks we mine whole instead of compact: the
    /// comparison the network's figures are measured against.
    pub fn with_full_block_relay(mut self, full: bool) -> Node {
        self.relay_full_blocks = full;
        self
    }

    fn command(&self, command: Command) {
        self.client.send(command);
    }

    /// Sends a sync request; its reply comes back through `replies`, tagged
    /// with what it was for.
    fn request(&mut self, peer: PeerId, request: SyncRequest, asked: Asked) {
        let reply = self.client.request_sync(peer, request);
        self.replies.push(Box::pin(async move {
            let reply = reply.await.unwrap_or_else(|_| Err("the network stopped".into()));
            Answered { peer, asked, reply }
        }));
    }

    /// [`Node::request`] with a deadline of its own, shorter than the protocol's.
    fn request_within(&mut self, peer: PeerId, request: SyncRequest, asked: Asked, deadline: Duration) {
        let reply = self.client.request_sync(peer, request);
        self.replies.push(Box::pin(async move {
            let reply = match tokio::time::timeout(deadline, reply).await {
                Ok(reply) => reply.unwrap_or_else(|_| Err("the network stopped".into())),
                Err(_) => Err(format!("no answer within {deadline:?}")),
            };
            Answered { peer, asked, reply }
        }));
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
    pub async fn run(mut self, mut events: NetworkEvents, shutdown: impl std::future::Future<Output = ()>) -> Stopped {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        self.refresh_template();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                event = events.recv() => match event {
                    Some(event) => self.handle_network_event(event),
                    None => break,
                },
                Some(answered) = self.replies.next(), if !self.replies.is_empty() => self.handle_reply(answered),
                Some(block) = self.found.recv() => self.handle_mined_block(block),
                Some(checked) = self.sync.verifying.next(), if !self.sync.verifying.is_empty() => match checked {
                    Ok(batch) => self.on_checked_batch(batch),
                    // A bug, not the peer's doing: the batch's blocks are asked for again after a timeout.
                    Err(e) => tracing::error!("a sync batch's signature check failed to run: {e}"),
                },
                () = std::future::ready(()), if self.sync.connect_more => self.connect_downloaded(),
                _ = tick.tick() => self.on_tick(),
                _ = self.gossip_batch.due(), if self.gossip_batch.is_waiting() => self.verify_gossip_batch(),
            }
            if !self.to_announce.is_empty() {
                self.announce_returned();
            }
            let (at, tip) = self.status_published;
            if tip != self.chain.tip() || at.elapsed() >= STATUS_REFRESH {
                self.publish_status();
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
        if let Err(e) = self.chain.flush() {
            return Stopped::Fatal(format!("cannot flush the database: {e}"));
        }
        tracing::info!(height = self.chain.height(), "stopped; the database is flushed");
        match self.fatal {
            Some(reason) => Stopped::Fatal(reason),
            None => Stopped::Clean,
        }
    }

    fn on_tick(&mut self) {
        let now = unix_now();
        let expired = self.mempool.expire(now);
        if !expired.is_empty() {
            self.template_dirty = true;
        }
        if self.template_dirty {
            self.refresh_template();
        }
        self.sync_event(sync::Event::Tick);
        self.refresh_peer_statuses();
        if self.last_score_decay.elapsed() > Duration::from_secs(60) {
            self.decay_scores();
        }
        self.operator_tick();
    }

    // --- Routing ----------------------------------------------------------

    fn handle_network_event(&mut self, event: NetworkEvent) {
        match event {
            NetworkEvent::Listening(addr) => {
                tracing::info!("listening on {addr}");
                self.listen_addrs.push(addr);
            }
            NetworkEvent::PeerConnected { peer, addr } => self.on_peer_connected(peer, addr),
            NetworkEvent::PeerDisconnected { peer } => self.on_peer_disconnected(peer),
            NetworkEvent::Gossip { source, id, topic, data } => self.handle_gossip(source, id, topic, &data),
            NetworkEvent::SyncRequest { peer, request, channel } => self.serve_sync(peer, request, channel),
            NetworkEvent::SyncMalformedRequest { peer, error } => {
                let why = format!("sent a malformed sync request ({error})");
                self.penalize(peer, crate::consensus::verdict::PENALTY_MALFORMED, &why);
            }
            NetworkEvent::QueryRequest { request, channel, .. } => self.serve_query(request, channel),
        }
    }

    /// A reply to one of our sync requests, read as the answer to what we asked.
    fn handle_reply(&mut self, answered: Answered) {
        let Answered { peer, asked, reply } = answered;
        match (asked, reply) {
            (asked, Err(error)) => self.on_request_failed(peer, asked, &error),
            (Asked::Status { first }, Ok(crate::network::protocol::SyncResponse::Status(status))) => {
                self.record_status(peer, status);
                if first {
                    self.ask_mempool_ids(peer);
                }
            }
            (Asked::Headers { id, after }, Ok(crate::network::protocol::SyncResponse::Headers(headers))) => {
                self.handle_headers(peer, id, after, headers)
            }
            (Asked::Blocks { id, .. }, Ok(crate::network::protocol::SyncResponse::Blocks(blocks))) => {
                self.handle_blocks(peer, id, blocks)
            }
            (Asked::MempoolIds, Ok(crate::network::protocol::SyncResponse::MempoolIds(ids))) => {
                self.handle_mempool_ids(peer, ids)
            }
            (Asked::MempoolTxs(ids), Ok(crate::network::protocol::SyncResponse::MempoolTxs(txs))) => {
                self.handle_mempool_txs(peer, &ids, txs)
            }
            (Asked::Announce, Ok(crate::network::protocol::SyncResponse::Ack)) => {}
            (Asked::BlockTxs { block }, Ok(crate::network::protocol::SyncResponse::BlockTxs(txs))) => {
                self.handle_block_txs(peer, block, txs)
            }
            (Asked::FullBlock { block }, Ok(crate::network::protocol::SyncResponse::Blocks(blocks))) => {
                self.handle_full_block(peer, block, blocks)
            }
            (asked, Ok(crate::network::protocol::SyncResponse::Refused(reason))) => {
                tracing::debug!(%peer, "sync request refused: {reason}");
                self.on_request_failed(peer, asked, &format!("refused: {reason}"));
            }
            (asked, Ok(other)) => {
                // A reply of another kind than the request: not an answer.
                tracing::debug!(%peer, ?asked, "mismatched sync reply: {}", reply_kind(&other));
                self.on_request_failed(peer, asked, "mismatched reply");
                self.penalize(
                    peer,
                    crate::consensus::verdict::PENALTY_MALFORMED,
                    "answered a sync request with another kind of reply",
                );
            }
        }
    }

    /// A request that got no usable answer.
    fn on_request_failed(&mut self, peer: PeerId, asked: Asked, error: &str) {
        tracing::debug!(%peer, ?asked, "sync request failed: {error}");
        match asked {
            Asked::Headers { id, .. } | Asked::Blocks { id, .. } => self.on_sync_request_failed(peer, id),
            Asked::MempoolTxs(_) => self.mempool_request_done(peer),
            Asked::BlockTxs { block } => self.on_block_txs_failed(block),
            Asked::FullBlock { block } => self.on_full_block_failed(block),
            Asked::Status { .. } | Asked::MempoolIds | Asked::Announce => {}
        }
    }
}

fn reply_kind(response: &crate::network::protocol::SyncResponse) -> &'static str {
    use crate::network::protocol::SyncResponse as R;
    match response {
        R::Status(_) => "status",
        R::Headers(_) => "headers",
        R::Blocks(_) => "blocks",
        R::MempoolIds(_) => "mempool ids",
        R::MempoolTxs(_) => "mempool transactions",
        R::BlockTxs(_) => "block transactions",
        R::Refused(_) => "refused",
        R::Ack => "ack",
    }
}
