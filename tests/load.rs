//! Load on a real `ourcoind`: while it validates a block of 5,000 payments
//! it has never seen (so no pairing of it is cached) and admits a flood of
//! transactions, the swarm keeps being polled: `ourcoin-cli status` keeps
//! getting answers, over fresh connections, throughout.
//!
//! What is asserted is that answers come, not how fast: latency figures are
//! printed for the note, and measured properly by `scripts/bench.sh`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{uint, wait_until, NodeOptions, TestNode};
use libp2p::{Multiaddr, PeerId};
use ourcoin::chain::Chain;
use ourcoin::miner::assemble_block;
use ourcoin::network::protocol::{ChainStatus, SyncRequest, SyncResponse, SYNC_VERSION};
use ourcoin::network::{Client, Command, NetworkEvent, Topic};
use ourcoin::node::unix_now;
use ourcoin::store::SledStore;
use ourcoin::testkit::{extend, mine_block, regtest, TestKey};
use ourcoin::types::{encode, Address, Block, SignedTransaction};

const DEADLINE: Duration = Duration::from_secs(120);
/// Payments in the block N validates.
const PAYMENTS: u64 = 5_000;
/// Senders of the flood, each with the 16 pending nonces policy allows.
const FLOOD_SENDERS: u64 = 40;
const FLOOD_NONCES: u64 = 16;

/// A peer on the node's own libp2p stack that publishes what it is given
/// and answers N's sync requests as a peer at genesis would.
struct Publisher {
    client: Client,
    connected: Arc<Mutex<Vec<(Instant, bool)>>>,
    runtime: tokio::runtime::Runtime,
}

impl Publisher {
    fn join(target: Multiaddr, n: PeerId) -> Publisher {
        let (runtime, client, mut events) = common::test_peer("the publisher");
        let connected = Arc::new(Mutex::new(Vec::new()));
        let (answering, seen) = (client.clone(), connected.clone());
        runtime.spawn(async move {
            let genesis = regtest().genesis_hash;
            let status = ChainStatus { version: SYNC_VERSION, genesis, tip: genesis, height: 0, work: [0; 32] };
            while let Some(event) = events.recv().await {
                match event {
                    NetworkEvent::PeerConnected { peer, .. } if peer == n => {
                        // As a node does: a peer is one that asks for sync.
                        drop(answering.request_sync(peer, SyncRequest::Status(status)));
                        seen.lock().expect("connections").push((Instant::now(), true));
                    }
                    NetworkEvent::PeerDisconnected { peer } if peer == n => {
                        seen.lock().expect("connections").push((Instant::now(), false));
                    }
                    NetworkEvent::SyncRequest { request, channel, .. } => {
                        let response = match request {
                            SyncRequest::Status(_) => SyncResponse::Status(status),
                            SyncRequest::Headers { .. } => SyncResponse::Headers(Vec::new()),
                            SyncRequest::Blocks(_) => SyncResponse::Blocks(Vec::new()),
                            SyncRequest::MempoolIds => SyncResponse::MempoolIds(Vec::new()),
                            SyncRequest::MempoolTxs(_) => SyncResponse::MempoolTxs(Vec::new()),
                            SyncRequest::AnnounceTxs(_) => SyncResponse::Ack,
                            SyncRequest::BlockTxs { .. } => SyncResponse::Refused("no blocks here".into()),
                        };
                        answering.send(Command::RespondSync { channel, response });
                    }
                    _ => {}
                }
            }
        });
        let publisher = Publisher { client, connected, runtime };
        assert!(publisher.client.send(Command::Dial(target)), "the publisher's event loop runs");
        publisher
    }

    fn publish(&self, topic: Topic, data: Vec<u8>) {
        assert!(self.client.send(Command::Publish { topic, data }), "the publisher's event loop runs");
    }

    fn ever_disconnected(&self) -> bool {
        self.connected.lock().expect("connections").iter().any(|(_, up)| !up)
    }
}

/// A chain in `datadir` that gives `payer` and every flood sender a matured
/// reward, and the block of `PAYMENTS` payments from `payer` on its tip.
fn prepare(datadir: &std::path::Path, payer: &TestKey, flood: &[TestKey]) -> Block {
    std::fs::create_dir_all(datadir).expect("create the datadir");
    let store = SledStore::open(&datadir.join("chain")).expect("open the chain database");
    let mut chain = Chain::open(regtest(), store).expect("open the chain");
    for key in std::iter::once(payer).chain(flood) {
        extend(&mut chain, key.address, &[]).expect("fund a key");
    }
    for _ in 0..regtest().coinbase_maturity {
        extend(&mut chain, Address([0x11; 20]), &[]).expect("mature the rewards");
    }
    chain.flush().expect("flush the chain");
    let to = Address([0x22; 20]);
    let payments: Vec<SignedTransaction> =
        (0..PAYMENTS).map(|nonce| payer.pay(regtest().chain_id, to, 1, 1_000, nonce)).collect();
    let next = chain.next_block();
    let time = unix_now().max(next.min_time);
    mine_block(assemble_block(&next, time, Address([0x33; 20]), &payments).expect("valid payments"))
}

#[test]
fn status_is_answered_while_the_node_validates_a_large_uncached_block_and_a_flood() {
    let started = Instant::now();
    let payer = TestKey::new(1);
    let flood_keys: Vec<TestKey> = (0..FLOOD_SENDERS).map(|i| TestKey::new(100 + i)).collect();
    let mut n = TestNode::new("N");
    let block = prepare(&n.datadir(), &payer, &flood_keys);
    let height = block.header.height - 1;
    let flood: Vec<SignedTransaction> = flood_keys
        .iter()
        .flat_map(|key| {
            (0..FLOOD_NONCES).map(move |nonce| key.pay(regtest().chain_id, Address([0x44; 20]), 1_000, 1_000, nonce))
        })
        .collect();
    n.start(NodeOptions::new());
    assert_eq!(uint(&n.status(), "height"), height);
    eprintln!("prepared a block of {PAYMENTS} payments in {:.1?}", started.elapsed());

    let publisher =
        Publisher::join(n.multiaddr().parse().expect("a multiaddr"), n.peer_id().parse().expect("a peer id"));
    // The first payment, published until N has it: gossip subscriptions are
    // exchanged, so nothing published after is lost for want of them.
    let (probe, rest) = flood.split_first().expect("a flood");
    wait_until("N admits a first payment from the publisher", DEADLINE, || {
        publisher.publish(Topic::Transactions, encode(probe));
        n.try_json(&["status"]).is_ok_and(|s| uint(&s, "mempool") == 1)
    });

    // Status, asked over and over from another thread while N works.
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let (done, addr) = (done.clone(), n.addr());
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            let mut failures = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let asked = Instant::now();
                match common::try_cli_json(&["--node", &addr, "--json", "status"]) {
                    Ok(_) => latencies.push(asked.elapsed()),
                    Err(e) => failures.push(e),
                }
            }
            (latencies, failures)
        })
    };

    let published = Instant::now();
    publisher.publish(Topic::Blocks, encode(&ourcoin::types::BlockMessage::Full(block.clone())));
    for tx in rest {
        publisher.publish(Topic::Transactions, encode(tx));
    }
    let expected = flood.len() as u64;
    wait_until(&format!("N connects the block and admits all {expected} payments"), DEADLINE, || {
        n.try_json(&["status"]).is_ok_and(|s| uint(&s, "height") == height + 1 && uint(&s, "mempool") == expected)
    });
    let validated = published.elapsed();
    done.store(true, Ordering::Relaxed);
    let (mut latencies, failures) = poller.join().expect("the status poller");

    assert!(failures.is_empty(), "status went unanswered {} times: {:?}", failures.len(), failures.first());
    assert!(!latencies.is_empty(), "status was asked while N worked");
    assert!(!publisher.ever_disconnected(), "N kept its connection to the publisher throughout");
    let stored = n.json(&["block", &block.hash().to_string()]);
    assert_eq!(stored["txids"].as_array().map(Vec::len), Some(PAYMENTS as usize + 1), "the coinbase and every payment");
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    eprintln!(
        "block of {PAYMENTS} payments and {expected} flood payments handled in {validated:.1?}; status answered {} times: p50 {:.1?}, p99 {:.1?}, max {:.1?}",
        latencies.len(),
        pick(0.5),
        pick(0.99),
        pick(1.0)
    );
    drop(publisher.runtime);
}
