//! What the relay measurements share (the report's `measure_*` steps and
//! `examples/netsim_blocks.rs`): a chain funding payer keys, with payments
//! signed ahead from them, written into a node's datadir as the node would
//! have stored it; and a peer on the library's own network stack, in this
//! process, that publishes on gossip.

use std::path::Path;
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use libp2p::Multiaddr;
use ourcoin::chain::{Chain, MemoryStore, NoSignatures};
use ourcoin::mempool::MIN_RELAY_FEE;
use ourcoin::store::SledStore;
use ourcoin::testkit::{fund, now_for, regtest, TestKey};
use ourcoin::types::{Address, Block, SignedTransaction};

/// How long a bench peer may take to listen.
const LISTEN_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `work(i)` for `i` in `0..count` on one plain thread per core; the
/// results in order of `i`.
pub fn on_every_core<T: Send>(count: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = count.div_ceil(cores).max(1);
    let work = &work;
    thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .step_by(chunk)
            .map(|first| scope.spawn(move || (first..(first + chunk).min(count)).map(work).collect::<Vec<T>>()))
            .collect();
        handles.into_iter().flat_map(|handle| handle.join().expect("a worker thread finished")).collect()
    })
}

/// A chain funding `payers` keys (seeds from `first_seed`), and `count`
/// payments from them: payment `i` is from payer `payer_of(i)` at nonce `nonce_of(i)`.
pub fn funded_payments(
    first_seed: u64,
    payers: u64,
    count: usize,
    payer_of: impl Fn(usize) -> usize + Sync,
    nonce_of: impl Fn(usize) -> u64 + Sync,
) -> Result<(Chain<MemoryStore>, Vec<SignedTransaction>)> {
    let keys: Vec<TestKey> = (0..payers).map(|i| TestKey::new(first_seed + i)).collect();
    let mut chain = Chain::open(regtest(), MemoryStore::default()).context("an in-memory chain")?;
    fund(&mut chain, &keys).map_err(|e| anyhow!("funding the payers: {e}"))?;
    let to = Address([0x42; 20]);
    let payments =
        on_every_core(count, |i| keys[payer_of(i)].pay(regtest().chain_id, to, 1_000, MIN_RELAY_FEE.0, nonce_of(i)));
    Ok((chain, payments))
}

/// Writes the best chain of `source` into the node datadir `datadir` (as
/// `datadir/chain`), as the node would have stored it.
pub fn copy_chain(source: &Chain<MemoryStore>, datadir: &Path) -> Result<()> {
    let store = SledStore::open(&datadir.join("chain")).context("a chain database for a node")?;
    let mut chain = Chain::open(regtest(), store).context("a node's chain")?;
    for height in 1..=source.height() {
        let block = source
            .best_hash_at(height)
            .and_then(|hash| source.block(&hash).ok().flatten())
            .context("a block of the funded chain")?;
        chain.accept_block(block, now_for(source), &NoSignatures).map_err(|e| anyhow!("copying the chain: {e}"))?;
    }
    chain.flush().map_err(|e| anyhow!("flushing a node's chain: {e}"))
}

/// What an in-process peer of the report does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Claims far more work than any chain has and never answers a headers
    /// or blocks request (it keeps them open, so each costs its timeout).
    SilentLiar,
    /// Stands at genesis and publishes what it is given.
    Publisher,
}

/// A peer on the node's own libp2p stack, in this process, listening on 127.0.0.1.
pub struct BenchPeer {
    pub client: ourcoin::network::Client,
    /// Its listen address, ending in `/p2p/<peer id>`.
    pub multiaddr: String,
    /// Dropped last: stops the event loop.
    _runtime: tokio::runtime::Runtime,
}

impl BenchPeer {
    /// A peer that dials what it is told (`Command::Dial`) and whatever it discovers.
    pub fn start(role: Role) -> Result<BenchPeer> {
        BenchPeer::connected_to(role, Vec::new(), Vec::new())
    }

    /// A peer that keeps connected to `connect` (`--connect`): when that is
    /// not empty, to no one else, so what it publishes enters the network
    /// there alone. A publisher serves the blocks of `served` as their
    /// miner would: whole, and their payments by position for a compact
    /// block's receiver that lacks some.
    pub fn connected_to(role: Role, connect: Vec<Multiaddr>, served: Vec<Block>) -> Result<BenchPeer> {
        use ourcoin::network::event_loop::{self, NetworkConfig};
        use ourcoin::network::protocol::{ChainStatus, SyncRequest, SyncResponse, SYNC_VERSION};
        use ourcoin::network::{Command as NetCommand, NetworkEvent};

        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let config = NetworkConfig { listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?], connect, ..Default::default() };
        let key = libp2p::identity::Keypair::generate_ed25519();
        let (client, mut events, event_loop) = {
            let _entered = runtime.enter();
            event_loop::new(key, regtest(), config).map_err(|e| anyhow!("a bench peer's network: {e}"))?
        };
        runtime.spawn(event_loop.run());
        let (listening_tx, listening) = std::sync::mpsc::channel();
        let (peer_id, answering) = (client.peer_id, client.clone());
        runtime.spawn(async move {
            let genesis = regtest().genesis_hash;
            let status = match role {
                Role::SilentLiar => ChainStatus {
                    version: SYNC_VERSION,
                    genesis,
                    tip: ourcoin::types::BlockHash(ourcoin::types::Hash256([0x77; 32])),
                    height: 1_000_000,
                    work: [0x7f; 32],
                },
                Role::Publisher => {
                    ChainStatus { version: SYNC_VERSION, genesis, tip: genesis, height: 0, work: [0; 32] }
                }
            };
            let mut held = Vec::new();
            while let Some(event) = events.recv().await {
                match event {
                    NetworkEvent::Listening(addr) => {
                        let _ = listening_tx.send(format!("{addr}/p2p/{peer_id}"));
                    }
                    // As a node does: a peer is one that asks for sync.
                    NetworkEvent::PeerConnected { peer, .. } => {
                        drop(answering.request_sync(peer, SyncRequest::Status(status)));
                    }
                    NetworkEvent::SyncRequest { request, channel, .. } => {
                        let response = match request {
                            SyncRequest::Status(_) => SyncResponse::Status(status),
                            SyncRequest::MempoolIds => SyncResponse::MempoolIds(Vec::new()),
                            SyncRequest::MempoolTxs(_) => SyncResponse::MempoolTxs(Vec::new()),
                            SyncRequest::AnnounceTxs(_) => SyncResponse::Ack,
                            SyncRequest::BlockTxs { block, indexes } => {
                                let payments = served.iter().find(|b| b.hash() == block).and_then(|b| {
                                    indexes.iter().map(|&i| b.body.transactions.get(i as usize).copied()).collect()
                                });
                                payments.map_or_else(
                                    || SyncResponse::Refused("no blocks here".into()),
                                    SyncResponse::BlockTxs,
                                )
                            }
                            SyncRequest::Headers { .. } | SyncRequest::Blocks(_) if role == Role::SilentLiar => {
                                held.push(channel);
                                continue;
                            }
                            SyncRequest::Headers { .. } => SyncResponse::Headers(Vec::new()),
                            SyncRequest::Blocks(hashes) => SyncResponse::Blocks(
                                served.iter().filter(|b| hashes.contains(&b.hash())).cloned().collect(),
                            ),
                        };
                        answering.send(NetCommand::RespondSync { channel, response });
                    }
                    _ => {}
                }
            }
        });
        let multiaddr = listening.recv_timeout(LISTEN_DEADLINE).context("a bench peer never listened")?;
        Ok(BenchPeer { client, multiaddr, _runtime: runtime })
    }

    pub fn publish(&self, topic: ourcoin::network::Topic, data: Vec<u8>) -> Result<()> {
        let command = ourcoin::network::Command::Publish { topic, data };
        ensure!(self.client.send(command), "a bench peer's event loop stopped");
        Ok(())
    }
}
