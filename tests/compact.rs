//! Compact blocks between real nodes (SPEC §8): a block rebuilt from the
//! mempool with no round trip, missing payments fetched from the sender, a
//! short-id collision and a silent sender falling back to the full block,
//! and compact blocks that rebuild into an invalid block refused, their
//! sender penalised, nothing stored and nothing relayed.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{prebuild_chain, uint, wait_until, NodeOptions, TestNode, TestWallet};
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use ourcoin::chain::{Chain, MemoryStore, NoSignatures};
use ourcoin::crypto::Signature;
use ourcoin::network::protocol::{ChainStatus, SyncRequest, SyncResponse, SYNC_VERSION};
use ourcoin::network::{Client, Command, NetworkEvent, Topic};
use ourcoin::store::SledStore;
use ourcoin::testkit::{block_on_parent, fund, mine_block, regtest, TestKey};
use ourcoin::types::{encode, Address, Block, BlockHash, BlockMessage, CompactBlock, ShortIdKey, SignedTransaction};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);
const MINER: Address = Address([0x33; 20]);
const TO: Address = Address([0x44; 20]);

/// A peer played by hand: it publishes what it is given and answers sync
/// requests from the blocks it holds, the missing payments only when told to.
struct Peer {
    client: Client,
    blocks: Arc<Mutex<HashMap<BlockHash, Block>>>,
    answer_payments: Arc<AtomicBool>,
    /// Every sync request it was sent.
    asked: Arc<Mutex<Vec<SyncRequest>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Peer {
    fn join(who: &str, target: &TestNode) -> Peer {
        let (runtime, client, mut events) = common::test_peer(who);
        let n: PeerId = target.peer_id().parse().expect("a peer id");
        let blocks: Arc<Mutex<HashMap<BlockHash, Block>>> = Arc::default();
        let answer_payments = Arc::new(AtomicBool::new(true));
        let asked: Arc<Mutex<Vec<SyncRequest>>> = Arc::default();
        let (answering, held_blocks, answers, log) =
            (client.clone(), blocks.clone(), answer_payments.clone(), asked.clone());
        runtime.spawn(async move {
            let genesis = regtest().genesis_hash;
            // At genesis: N never syncs from it.
            let status = ChainStatus { version: SYNC_VERSION, genesis, tip: genesis, height: 0, work: [0; 32] };
            // Requests left unanswered, held so that N waits for its own deadline.
            let mut unanswered: Vec<ResponseChannel<SyncResponse>> = Vec::new();
            while let Some(event) = events.recv().await {
                match event {
                    NetworkEvent::PeerConnected { peer, .. } if peer == n => {
                        drop(answering.request_sync(peer, SyncRequest::Status(status)));
                    }
                    NetworkEvent::SyncRequest { request, channel, .. } => {
                        log.lock().expect("requests").push(request.clone());
                        let held = held_blocks.lock().expect("blocks").clone();
                        let response = match request {
                            SyncRequest::Status(_) => SyncResponse::Status(status),
                            SyncRequest::Blocks(hashes) => {
                                SyncResponse::Blocks(hashes.iter().filter_map(|h| held.get(h).cloned()).collect())
                            }
                            SyncRequest::BlockTxs { block, indexes } => {
                                if !answers.load(Ordering::SeqCst) {
                                    unanswered.push(channel);
                                    continue;
                                }
                                let block = held.get(&block).expect("asked for a block it sent");
                                SyncResponse::BlockTxs(
                                    indexes.iter().map(|&i| block.body.transactions[i as usize]).collect(),
                                )
                            }
                            SyncRequest::Headers { .. } => SyncResponse::Headers(Vec::new()),
                            SyncRequest::MempoolIds => SyncResponse::MempoolIds(Vec::new()),
                            SyncRequest::MempoolTxs(_) => SyncResponse::MempoolTxs(Vec::new()),
                            SyncRequest::AnnounceTxs(_) => SyncResponse::Ack,
                        };
                        answering.send(Command::RespondSync { channel, response });
                    }
                    _ => {}
                }
            }
        });
        let peer = Peer { client, blocks, answer_payments, asked, _runtime: runtime };
        let addr: Multiaddr = target.multiaddr().parse().expect("a multiaddr");
        assert!(peer.client.send(Command::Dial(addr)), "the peer's event loop runs");
        peer
    }

    fn id(&self) -> PeerId {
        self.client.peer_id
    }

    fn publish(&self, topic: Topic, data: Vec<u8>) {
        assert!(self.client.send(Command::Publish { topic, data }), "the peer's event loop runs");
    }

    fn publish_compact(&self, compact: CompactBlock) {
        self.publish(Topic::Blocks, encode(&BlockMessage::Compact(compact)));
    }

    /// Holds `block`, to serve it and its payments.
    fn hold(&self, block: &Block) {
        self.blocks.lock().expect("blocks").insert(block.hash(), block.clone());
    }

    fn was_asked(&self, wanted: impl Fn(&SyncRequest) -> bool) -> bool {
        self.asked.lock().expect("requests").iter().any(wanted)
    }
}

/// Publishes payments until `node`'s mempool holds `expected` (gossip
/// subscriptions take a moment to be exchanged; republishing is a no-op).
fn gossip_until_held(peer: &Peer, node: &TestNode, payments: &[SignedTransaction], expected: u64) {
    wait_until(&format!("{} holds {expected} pending payments", node.name()), DEADLINE, || {
        for stx in payments {
            peer.publish(Topic::Transactions, encode(stx));
        }
        uint(&node.status(), "mempool") == expected
    });
}

fn compact_stats(node: &TestNode) -> Value {
    node.status()["compact_blocks"].clone()
}

fn stat(node: &TestNode, key: &str) -> u64 {
    uint(&compact_stats(node), key)
}

fn has_block(node: &TestNode, hash: &BlockHash) -> bool {
    node.try_json(&["block", &hash.to_string()]).is_ok()
}

/// Writes `blocks` (genesis excluded), in order, into `datadir/chain`.
fn write_chain(datadir: &Path, blocks: &[Block]) {
    std::fs::create_dir_all(datadir).expect("create the datadir");
    let store = SledStore::open(&datadir.join("chain")).expect("open the chain database");
    let mut chain = Chain::open(regtest(), store).expect("open the chain");
    for block in blocks {
        let now = block.header.time + 1_000_000;
        chain.accept_block(block.clone(), now, &NoSignatures).expect("a valid prepared block");
    }
    chain.flush().expect("flush the chain");
}

fn count_penalties(node: &TestNode, peer: &PeerId) -> usize {
    let who = format!("peer={peer}");
    node.log_lines().iter().filter(|l| l.contains("peer penalised") && l.contains(&who)).count()
}

#[test]
fn compact_blocks_rebuild_fetch_fall_back_and_refuse_what_does_not_check_out() {
    let k = TestKey::new(1);
    let k2 = TestKey::new(2);
    let chain_id = regtest().chain_id;
    let pay = |key: &TestKey, nonce: u64| key.pay(chain_id, TO, 1_000 + nonce, 1_000, nonce);

    // A chain that funds K and K2, ending at T; S is T's sibling, which only M holds.
    let mut mirror = Chain::open(regtest(), MemoryStore::default()).expect("a chain in memory");
    fund(&mut mirror, &[k.clone(), k2.clone()]).expect("fund the keys");
    let prepared: Vec<Block> = (1..=mirror.height())
        .map(|h| mirror.block(&mirror.best_hash_at(h).expect("a best block")).expect("read").expect("stored"))
        .collect();
    let t = mirror.tip();
    let t_parent = mirror.tip_header().prev;
    let s = block_on_parent(&mirror, &t_parent, MINER, &[pay(&k2, 0)]);
    assert_eq!(s.height(), mirror.height());

    let mut n = TestNode::new("N");
    write_chain(&n.datadir(), &prepared);
    n.start(NodeOptions::new());
    let mut m = TestNode::new("M");
    write_chain(&m.datadir(), &prepared);
    let mut with_s = prepared.clone();
    with_s.push(s.clone());
    // M's store has S too, on a side chain (T was first).
    write_chain(&m.datadir(), &with_s[prepared.len()..]);
    m.start(NodeOptions::new().bootstrap(n.multiaddr()));
    assert_eq!(m.tip(), t.to_string());
    wait_until("N counts M among its peers", DEADLINE, || n.peer_ids().contains(&m.peer_id().to_string()));

    let x = Peer::join("X", &n);
    let (p2, p3, p4, p5, p6, p7, p8) =
        (pay(&k, 0), pay(&k, 1), pay(&k, 2), pay(&k, 3), pay(&k, 4), pay(&k, 5), pay(&k, 6));
    gossip_until_held(&x, &n, &[p2], 1);

    // 1. A sender that never answers: N asks it for the payment it lacks,
    // waits out its deadline, and fetches the block from M instead.
    x.answer_payments.store(false, Ordering::SeqCst);
    x.hold(&s);
    x.publish_compact(CompactBlock::of(&s));
    let fetched =
        ["compact block fetched in full".to_string(), format!("peer={}", m.peer_id()), format!("hash={}", s.hash())];
    wait_until("N fetched S from M after X did not answer", DEADLINE, || {
        n.log_lines().iter().any(|l| fetched.iter().all(|f| l.contains(f.as_str())))
    });
    assert!(!n.log().contains("block refused"), "S is stored as a side chain");
    assert!(
        x.was_asked(|r| matches!(r, SyncRequest::BlockTxs { block, indexes } if *block == s.hash() && indexes == &[0]))
    );
    assert!(
        !x.was_asked(|r| matches!(r, SyncRequest::Blocks(h) if h == &[s.hash()])),
        "the silent sender is not asked again"
    );
    // The status board is refreshed on the node's next turn: wait for it.
    wait_until("N counts one compact block received and one fallback", DEADLINE, || {
        let stats = compact_stats(&n);
        (uint(&stats, "received"), uint(&stats, "fallen_back")) == (1, 1)
    });
    assert_eq!(n.tip(), t.to_string(), "S only ties with T, which came first");
    x.answer_payments.store(true, Ordering::SeqCst);

    // 2. Some payments held (P2), one missing (P3): asked of the sender by position.
    let mut chain = mirror.clone();
    let a1 = block_on_parent(&chain, &t, MINER, &[p2, p3]);
    chain.accept_block(a1.clone(), a1.header.time + 1_000_000, &NoSignatures).expect("A1");
    x.hold(&a1);
    x.publish_compact(CompactBlock::of(&a1));
    wait_until("N rebuilds A1 with one round trip", DEADLINE, || n.tip() == a1.hash().to_string());
    assert!(x.was_asked(
        |r| matches!(r, SyncRequest::BlockTxs { block, indexes } if *block == a1.hash() && indexes == &[1])
    ));
    assert_eq!(stat(&n, "rebuilt_with_roundtrip"), 1, "{}", compact_stats(&n));
    // N relays it once valid, and serves M the payment M lacks.
    wait_until("M follows N to A1", DEADLINE, || m.tip() == a1.hash().to_string());

    // 3. Every payment held: rebuilt without a round trip.
    gossip_until_held(&x, &n, &[p4], 1);
    let a2 = block_on_parent(&chain, &a1.hash(), MINER, &[p4]);
    chain.accept_block(a2.clone(), a2.header.time + 1_000_000, &NoSignatures).expect("A2");
    x.publish_compact(CompactBlock::of(&a2));
    wait_until("N rebuilds A2 from its mempool", DEADLINE, || n.tip() == a2.hash().to_string());
    assert_eq!(stat(&n, "rebuilt_without_roundtrip"), 1, "{}", compact_stats(&n));
    assert!(!x.was_asked(|r| matches!(r, SyncRequest::BlockTxs { block, .. } if *block == a2.hash())));

    // 4. A short id twice in one block: N cannot tell the payments apart and
    // fetches the block whole, from the sender first.
    let a3 = block_on_parent(&chain, &a2.hash(), MINER, &[p5, p6]);
    chain.accept_block(a3.clone(), a3.header.time + 1_000_000, &NoSignatures).expect("A3");
    x.hold(&a3);
    let mut colliding = CompactBlock::of(&a3);
    colliding.short_ids[1] = colliding.short_ids[0];
    x.publish_compact(colliding);
    wait_until("N fetches A3 whole after the collision", DEADLINE, || n.tip() == a3.hash().to_string());
    assert!(x.was_asked(|r| matches!(r, SyncRequest::Blocks(h) if h == &[a3.hash()])));
    assert!(!x.was_asked(|r| matches!(r, SyncRequest::BlockTxs { block, .. } if *block == a3.hash())));
    assert_eq!(stat(&n, "fallen_back"), 2, "{}", compact_stats(&n));
    wait_until("M follows N to A3", DEADLINE, || m.tip() == a3.hash().to_string());
    assert_eq!(count_penalties(&n, &x.id()), 0, "an honest sender's fallbacks cost it nothing");

    // 5. Short ids that rebuild a body the header does not commit to: the
    // header commits to [P7], the short id names P8, and N holds both.
    gossip_until_held(&x, &n, &[p7, p8], 2);
    let b4 = block_on_parent(&chain, &a3.hash(), MINER, &[p7]);
    let mut lying = CompactBlock::of(&b4);
    lying.short_ids[0] = ShortIdKey::of(&b4.hash()).short_id(&p8.tx.txid());
    x.publish_compact(lying);
    wait_until("N refuses the body that is not B4's and penalises X", DEADLINE, || count_penalties(&n, &x.id()) == 1);
    assert!(n.log().contains(&format!("hash={}", b4.hash())), "N names the refused block");

    // 6. A body that matches its header but whose aggregate signature is not
    // its payments' (P7's block signed with P8's signature).
    let mut b5 = block_on_parent(&chain, &a3.hash(), MINER, &[p7]);
    b5.body.aggregate_signature = Some(Signature::from_bytes(&p8.signature).expect("a signature").to_bytes());
    b5.header.body_commitment = b5.body.commitment();
    let b5 = mine_block(b5);
    x.publish_compact(CompactBlock::of(&b5));
    wait_until("N refuses B5's signature and penalises X again", DEADLINE, || count_penalties(&n, &x.id()) == 2);
    assert!(n.log().contains("aggregate signature does not verify"));

    for hash in [b4.hash(), b5.hash()] {
        assert!(!has_block(&n, &hash), "N stored nothing of {hash}");
        assert!(!has_block(&m, &hash), "N relayed nothing of {hash} to M");
    }
    assert_eq!(n.tip(), a3.hash().to_string());
    assert_eq!(m.tip(), a3.hash().to_string());
    assert_eq!(uint(&n.status(), "mempool"), 2, "P7 and P8 wait on");
    m.stop();
    n.stop();
}

#[test]
fn payments_gossiped_first_are_rebuilt_from_every_mempool_without_a_round_trip() {
    let w = TestWallet::new();
    let to = TestWallet::new();
    let mut a = TestNode::new("A");
    // W's first rewards are mature at once.
    prebuild_chain(&a.datadir(), &w.address, regtest().coinbase_maturity + 3);
    a.start(NodeOptions::new().mining(&w.address));
    let b = TestNode::started("B", NodeOptions::new().bootstrap(a.multiaddr()));
    let c = TestNode::started("C", NodeOptions::new().bootstrap(b.multiaddr()).bootstrap(a.multiaddr()));
    wait_until("B and C reach A's chain", DEADLINE, || {
        let height = a.height();
        b.height() >= height && c.height() >= height
    });
    // Blocks that came by sync while catching up are not counted; what follows is.
    // Both counters from one status, so that no block comes between them.
    let before: Vec<(u64, u64)> = [&b, &c]
        .iter()
        .map(|node| {
            let stats = compact_stats(node);
            (uint(&stats, "received"), uint(&stats, "rebuilt_without_roundtrip"))
        })
        .collect();

    let txids: Vec<String> = (0..5).map(|_| c.send(&w, &to.address, "1")).collect();
    wait_until("every payment is confirmed on A, B and C", DEADLINE, || {
        txids.iter().all(|txid| [&a, &b, &c].iter().all(|node| node.tx_height(txid).is_some()))
    });
    for (node, (received, rebuilt)) in [&b, &c].iter().zip(before) {
        let stats = compact_stats(node);
        assert!(uint(&stats, "received") > received, "{}: {stats}", node.name());
        assert_eq!(uint(&stats, "rebuilt_with_roundtrip"), 0, "{}: {stats}", node.name());
        assert_eq!(uint(&stats, "fallen_back"), 0, "{}: {stats}", node.name());
        assert_eq!(
            uint(&stats, "rebuilt_without_roundtrip") - rebuilt,
            uint(&stats, "received") - received,
            "{}: every compact block rebuilt from the mempool alone: {stats}",
            node.name()
        );
        assert!(uint(&stats, "block_message_bytes") > 0, "{stats}");
    }
    assert_eq!(stat(&a, "received"), 0, "the miner's own blocks are not received");
}
