//! The peer set at scale, through real nodes on 127.0.0.1: a connection
//! flood of fresh identities, twenty nodes keeping their outbound target
//! under the cap, a poisoned address book, failed bootstrap dials, and the
//! operator's `node …` commands behind the cookie.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{path_str, text, uint, wait_until, NodeOptions, TestNode, TestWallet};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(90);

/// Fresh identities on our own network stack, all in one runtime, each
/// dialling `target` and dialling it again whenever it is dropped.
struct Flood {
    runtime: tokio::runtime::Runtime,
    clients: Vec<ourcoin::network::Client>,
}

impl Flood {
    fn start(target: &str, identities: usize) -> Flood {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the flood");
        let target: libp2p::Multiaddr = target.parse().expect("the target's multiaddr");
        let mut clients = Vec::new();
        for _ in 0..identities {
            let config = ourcoin::network::NetworkConfig {
                listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddr")],
                ..Default::default()
            };
            let key = libp2p::identity::Keypair::generate_ed25519();
            let _entered = runtime.enter();
            let (client, mut events, event_loop) =
                ourcoin::network::event_loop::new(key, ourcoin::testkit::regtest(), config).expect("a flood peer");
            runtime.spawn(event_loop.run());
            // Each asks for sync as a node does (so N takes it for a peer);
            // nothing is answered: requests are dropped with their channels.
            let hello = client.clone();
            runtime.spawn(async move {
                let genesis = ourcoin::testkit::regtest().genesis_hash;
                let status = ourcoin::network::protocol::ChainStatus {
                    version: ourcoin::network::protocol::SYNC_VERSION,
                    genesis,
                    tip: genesis,
                    height: 0,
                    work: [0; 32],
                };
                while let Some(event) = events.recv().await {
                    if let ourcoin::network::NetworkEvent::PeerConnected { peer, .. } = event {
                        drop(hello.request_sync(peer, ourcoin::network::protocol::SyncRequest::Status(status)));
                    }
                }
            });
            assert!(client.send(ourcoin::network::Command::Dial(target.clone())));
            clients.push(client);
        }
        Flood { runtime, clients }
    }

    fn stop(self) {
        drop(self.clients);
        self.runtime.shutdown_timeout(Duration::from_secs(5));
    }
}

/// `peers --json` of a node, by peer id.
fn peers_of(node: &TestNode) -> HashMap<String, Value> {
    let peers = node.json(&["peers"]);
    peers.as_array().expect("a list").iter().map(|p| (text(p, "peer_id").to_string(), p.clone())).collect()
}

fn direction_count(peers: &HashMap<String, Value>, direction: &str) -> usize {
    peers.values().filter(|p| p["direction"] == direction).count()
}

#[test]
fn a_connection_flood_locks_out_neither_the_owner_nor_honest_newcomers_nor_old_peers() {
    let wallet = TestWallet::new();
    let a = TestNode::started("A", NodeOptions::new().mining(&wallet.address));
    let n = TestNode::started("N", NodeOptions::new().bootstrap(a.multiaddr()));
    let b = TestNode::started("B", NodeOptions::new().bootstrap(n.multiaddr()));
    wait_until("B is an inbound peer of N and N an outbound peer of A", DEADLINE, || {
        let peers = peers_of(&n);
        peers.get(b.peer_id()).is_some_and(|p| p["direction"] == "inbound")
            && peers.get(a.peer_id()).is_some_and(|p| p["direction"] == "outbound")
    });
    wait_until("N follows A", DEADLINE, || n.try_height().is_some_and(|h| h >= 3));

    let flood_started = Instant::now();
    let flood = Flood::start(n.multiaddr(), 160);
    // Throughout the flood, the owner's `status` is answered.
    let mut answered = 0;
    let mut most_inbound = 0;
    let mut c: Option<TestNode> = None;
    while flood_started.elapsed() < Duration::from_secs(25) {
        let status = n.try_json(&["status"]).unwrap_or_else(|e| panic!("status during the flood: {e}"));
        assert!(status["height"].is_u64());
        answered += 1;
        most_inbound = most_inbound.max(direction_count(&peers_of(&n), "inbound"));
        if c.is_none() && flood_started.elapsed() > Duration::from_secs(5) {
            // An honest node joins during the flood, knowing only N.
            c = Some(TestNode::started("C", NodeOptions::new().bootstrap(n.multiaddr())));
        }
    }
    let c = c.expect("C started");
    wait_until("C, started during the flood, follows the chain", DEADLINE, || {
        let target = a.try_height().unwrap_or(u64::MAX);
        c.try_height().is_some_and(|h| h + 2 >= target && h >= 5)
    });
    let peers = peers_of(&n);
    let inbound = direction_count(&peers, "inbound");
    assert!(inbound <= 125 - 8, "N's inbound peers stay within the cap: {inbound}");
    let flood_age = flood_started.elapsed().as_secs();
    for (old, direction) in [(b.peer_id(), "inbound"), (a.peer_id(), "outbound")] {
        let peer = peers.get(old).unwrap_or_else(|| panic!("{old} was dropped from N during the flood"));
        assert_eq!(peer["direction"], direction);
        assert!(
            uint(peer, "connected_s") >= flood_age,
            "{old} kept its connection through the flood: connected {} s, flood {flood_age} s",
            uint(peer, "connected_s")
        );
    }
    assert!(answered >= 10, "status was asked throughout the flood ({answered} times)");
    assert!(most_inbound >= 100, "the flood filled N's inbound slots (at most {most_inbound} inbound peers seen)");
    flood.stop();
    // The old peers follow the chain too.
    let height = a.height();
    wait_until("B follows the chain after the flood", DEADLINE, || b.try_height().is_some_and(|h| h >= height));
}

#[test]
fn twenty_nodes_keep_their_outbound_target_within_the_cap_and_converge() {
    const NODES: usize = 20;
    const OUTBOUND: usize = 4;
    const MAX: usize = 10;
    let wallet = TestWallet::new();
    let limits = |options: NodeOptions| {
        options.arg("--outbound-peers").arg(&OUTBOUND.to_string()).arg("--max-connections").arg(&MAX.to_string())
    };
    let mut nodes = vec![TestNode::started("n0", limits(NodeOptions::new().mining(&wallet.address)))];
    // Each node knows one earlier node only (a fixed pseudo-random choice).
    let mut draw: u64 = 12345;
    for i in 1..NODES {
        draw = draw.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let earlier = ((draw >> 33) % i as u64) as usize;
        let options = limits(NodeOptions::new().bootstrap(nodes[earlier].multiaddr()));
        nodes.push(TestNode::started(&format!("n{i}"), options));
    }
    wait_until("every node keeps its outbound target and none passes the cap", Duration::from_secs(150), || {
        let mut summary = Vec::new();
        let mut all = true;
        for node in &nodes {
            let Ok(peers) = node.try_json(&["peers"]) else { return false };
            let peers = peers.as_array().cloned().unwrap_or_default();
            let outbound = peers.iter().filter(|p| p["direction"] == "outbound").count();
            assert!(peers.len() <= MAX, "node {} has {} peers, over its cap of {MAX}", node.name(), peers.len());
            summary.push(format!("{}: {outbound} out, {} in", node.name(), peers.len() - outbound));
            all &= outbound == OUTBOUND;
        }
        common::observe(summary.join("; "));
        all
    });
    wait_until("the network converges on one tip", DEADLINE, || {
        let tips: Vec<Option<String>> =
            nodes.iter().map(|n| n.try_json(&["status"]).ok().map(|s| text(&s, "tip").to_string())).collect();
        tips.iter().all(|t| t.is_some() && *t == tips[0]) && nodes[0].try_height().is_some_and(|h| h >= 5)
    });
    for node in &nodes {
        let peers = peers_of(node);
        assert!(peers.len() <= MAX, "node {}: {} peers", node.name(), peers.len());
        for peer in peers.values() {
            assert!(peer["agent"].as_str().is_some_and(|a| a.starts_with("ourcoind/")), "agent of {peer}");
        }
    }
}

#[test]
fn a_node_with_a_poisoned_address_book_finds_the_network_through_its_bootstrap() {
    let wallet = TestWallet::new();
    let a = TestNode::started("A", NodeOptions::new().mining(&wallet.address));
    let mut p = TestNode::started("P", NodeOptions::new().bootstrap(a.multiaddr()));
    wait_until("P follows A", DEADLINE, || p.try_height().is_some_and(|h| h >= 2));
    p.stop();

    // Only dead loopback ports and private addresses (P listens on loopback
    // only, so it must not dial the private ones at all).
    let mut book = ourcoin::network::addrbook::AddressBook::new([9; 32]);
    let source = ourcoin::network::addrbook::Group([4, 66, 66, 0, 0]);
    for i in 0..40u16 {
        let dead = std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port()));
        book.add(dead, libp2p::PeerId::random(), source, 1);
        let private = std::net::SocketAddr::from(([10, 200, (i / 200) as u8, (i % 200) as u8 + 1], 9733));
        book.good(private, libp2p::PeerId::random(), 1);
    }
    std::fs::write(p.datadir().join("addrbook.dat"), book.encode()).expect("write the poisoned book");

    p.start(NodeOptions::new().bootstrap(a.multiaddr()));
    let height = a.height();
    wait_until("P, with a poisoned book, follows A again", DEADLINE, || {
        p.try_height().is_some_and(|h| h >= height) && p.peer_ids().contains(&a.peer_id().to_string())
    });
    p.stop();
    let book = ourcoin::network::addrbook::AddressBook::decode(
        &std::fs::read(p.datadir().join("addrbook.dat")).expect("P saved its book"),
    )
    .expect("a readable book");
    let saved = book.to_saved();
    let private: Vec<_> =
        saved.entries.iter().filter(|(addr, _)| addr.ip().to_string().starts_with("10.200.")).collect();
    assert!(!private.is_empty(), "the private entries are still in the book");
    assert!(private.iter().all(|(_, e)| e.last_try <= 1), "P never dialled a private address it cannot reach");
    assert!(
        saved.entries.iter().any(|(addr, e)| addr.ip().is_loopback() && e.tried && e.peer.to_string() == a.peer_id()),
        "A is in P's tried table"
    );
}

#[test]
fn a_failed_bootstrap_dial_is_said_and_retried_until_the_peer_is_there() {
    let mut a = TestNode::started("A", NodeOptions::new());
    let a_addr = a.multiaddr().to_string();
    a.stop();
    let b = TestNode::started("B", NodeOptions::new().bootstrap(&a_addr));
    wait_until("B warns that its bootstrap dial failed", DEADLINE, || {
        b.log().lines().any(|l| l.contains("WARN") && l.contains("bootstrap dial failed"))
    });
    a.start(NodeOptions::new());
    wait_until("B retries and connects to A once it is up", DEADLINE, || {
        b.try_json(&["peers"]).is_ok_and(|peers| peers.to_string().contains(a.peer_id()))
    });
    // Query clients are not peers and are not logged as ones.
    for _ in 0..5 {
        b.status();
    }
    let connected = b.log().lines().filter(|l| l.contains("peer connected")).count();
    assert_eq!(connected, 1, "only A is logged as a peer:\n{}", b.log());
}

#[test]
fn node_commands_need_the_cookie_and_control_peers_and_bans() {
    let a = TestNode::started("A", NodeOptions::new());
    let b = TestNode::started("B", NodeOptions::new());
    let cookie = b.datadir().join(".cookie");
    let cookie_arg = ["--cookie", path_str(&cookie)];
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cookie).expect("the cookie exists").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the cookie is the owner's only");
    }

    // Without the cookie, or with a wrong one: refused, nothing changes.
    let wrong = tempfile::NamedTempFile::new().expect("a file");
    std::fs::write(wrong.path(), "0".repeat(64)).expect("write");
    for args in [
        vec!["node", "connect", a.multiaddr(), "--cookie", "/nonexistent/.cookie"],
        vec!["node", "connect", a.multiaddr(), "--cookie", path_str(wrong.path())],
    ] {
        let refused = b.cli(&args);
        assert!(!refused.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("cookie"), "the refusal names the cookie: {stderr}");
    }
    assert!(b.peer_ids().is_empty(), "nothing changed");

    let with_cookie = |args: &[&str]| {
        let mut full = args.to_vec();
        full.extend_from_slice(&cookie_arg);
        b.json(&full)
    };
    let connected = with_cookie(&["node", "connect", a.multiaddr()]);
    assert_eq!(text(&connected, "peer_id"), a.peer_id());
    wait_until("A is B's peer", DEADLINE, || b.peer_ids().contains(&a.peer_id().to_string()));
    let peer = peers_of(&b).remove(a.peer_id()).expect("A in B's peers");
    assert_eq!(peer["direction"], "outbound");
    assert_eq!(peer["agent"], format!("ourcoind/{}", env!("CARGO_PKG_VERSION")).as_str());
    assert!(peer["connected_s"].is_u64() && peer["score"].is_number());
    assert!(peer["ping_ms"].is_null() || peer["ping_ms"].is_number());

    let dropped = with_cookie(&["node", "disconnect", a.peer_id()]);
    assert_eq!(text(&dropped, "peer_id"), a.peer_id());
    wait_until("A is dropped", DEADLINE, || !b.peer_ids().contains(&a.peer_id().to_string()));

    let banned = with_cookie(&["node", "ban", a.peer_id(), "--duration", "600"]);
    assert_eq!(text(&banned, "banned"), a.peer_id());
    let bans = with_cookie(&["node", "bans"]);
    let list = bans.as_array().expect("a list of bans");
    assert_eq!(list.len(), 1);
    assert_eq!(text(&list[0], "target"), a.peer_id());
    let until = uint(&list[0], "until");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(until > now + 500 && until <= now + 601, "the ban lasts 600 s: until {until}, now {now}");
    // A banned peer cannot come back, even asked for.
    let refused = b.cli(&["node", "connect", a.multiaddr(), "--cookie", path_str(&cookie)]);
    assert!(!refused.status.success(), "a banned peer was connected");
    let ip_ban = with_cookie(&["node", "ban", "192.0.2.7"]);
    assert_eq!(text(&ip_ban, "banned"), "192.0.2.7");
    assert!(b.cli(&["node", "ban", "not-a-target", "--cookie", path_str(&cookie)]).status.code() != Some(0));

    let lifted = with_cookie(&["node", "unban", a.peer_id()]);
    assert_eq!(text(&lifted, "unbanned"), a.peer_id());
    let again = with_cookie(&["node", "connect", a.multiaddr()]);
    assert_eq!(text(&again, "peer_id"), a.peer_id());
    let bans = with_cookie(&["node", "bans"]);
    assert_eq!(bans.as_array().map(Vec::len), Some(1), "only the IP ban is left: {bans}");
    assert!(b.cli(&["node", "unban", a.peer_id(), "--cookie", path_str(&cookie)]).status.code() != Some(0));
    // Bans are kept across a restart.
    let mut b = b;
    b.stop();
    b.restart();
    let bans = b.json(&["node", "bans", "--cookie", path_str(&cookie)]);
    assert_eq!(bans[0]["target"], "192.0.2.7", "the IP ban survived the restart: {bans}");
}

#[test]
fn connect_dials_only_the_given_peers() {
    let wallet = TestWallet::new();
    let a = TestNode::started("A", NodeOptions::new().mining(&wallet.address));
    let b = TestNode::started("B", NodeOptions::new().bootstrap(a.multiaddr()));
    wait_until("B follows A", DEADLINE, || b.try_height().is_some_and(|h| h >= 2));
    // C may only talk to A, though A knows B and would tell C of it.
    let c = TestNode::started("C", NodeOptions::new().arg("--connect").arg(a.multiaddr()));
    let height = a.height() + 3;
    wait_until("C follows A", DEADLINE, || c.try_height().is_some_and(|h| h >= height));
    let peers = peers_of(&c);
    assert_eq!(peers.keys().collect::<Vec<_>>(), vec![a.peer_id()], "C's only peer is A");
    assert_eq!(peers[a.peer_id()]["direction"], "outbound");
    assert!(!peers_of(&b).contains_key(c.peer_id()), "B never heard from C");
}
