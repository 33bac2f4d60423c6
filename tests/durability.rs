//! Durability of the real node, in the manner of Bitcoin Core's
//! `feature_dbcrash.py`: `kill -9` at random moments with payments in flight
//! never loses a block the node reported, and the final state equals that of
//! a node that validated the same chain from scratch; a failing disk write
//! stops the node cleanly and the database reopens at its last good block.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{text, uint, wait_for, wait_until, NodeOptions, TestNode, TestWallet, COIN};

const DEADLINE: Duration = Duration::from_secs(90);

/// A small xorshift generator: the crash moments vary per run, and the seed
/// is printed so a failing run can be repeated.
struct Moments(u64);

impl Moments {
    fn next_millis(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

fn confirmed(node: &TestNode, address: &str) -> u64 {
    uint(&node.balance(address), "confirmed")
}

#[test]
fn kill_9_at_random_moments_loses_no_reported_block() {
    let seed = std::env::var("OURCOIN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1);
    eprintln!("crash moments seed: {seed} (set OURCOIN_CRASH_SEED to repeat)");
    let mut moments = Moments(seed);

    let miner = TestWallet::new();
    let payee = TestWallet::new();
    let mut node = TestNode::started("crashy", NodeOptions::new().mining(&miner.address));
    wait_until("the miner's first rewards mature", DEADLINE, || {
        node.try_json(&["balance", &miner.address]).is_ok_and(|b| uint(&b, "confirmed") > 5 * COIN)
    });

    let mut reported = 0;
    let mut sent = 0;
    for round in 0..20 {
        // A payment in flight when the power goes. It may be refused (for
        // example while an earlier one is still pending after a crash): that
        // is not what this test is about.
        let reply = node.cli(&["--wallet", miner.path(), "send", "--to", &payee.address, "--amount", "0.01"]);
        if reply.status.success() {
            sent += 1;
        }
        // The crash moment: anywhere in the next 0.1 to 1.5 s of mining.
        std::thread::sleep(Duration::from_millis(moments.next_millis(100, 1_500)));
        if let Some(height) = node.try_height() {
            reported = reported.max(height);
        }
        node.kill();
        node.restart();
        let height = wait_for("the node answers after a crash", DEADLINE, || node.try_height());
        assert!(height >= reported, "round {round}: height {height} is below {reported}, reported before the crash");
    }
    assert!(sent > 0, "some payment went out between the crashes");
    // A payment still pending at the last kill is gone with the mempool (it is
    // saved on a clean stop only, as bitcoind's is): send one more, which the
    // node must take and mine after all the crashes.
    let reply = node.cli(&["--wallet", miner.path(), "send", "--to", &payee.address, "--amount", "0.01"]);
    assert!(reply.status.success(), "the node takes a payment after the crashes: {reply:?}");
    wait_until("a payment confirms after the crashes", DEADLINE, || {
        node.try_json(&["balance", &payee.address]).is_ok_and(|b| uint(&b, "confirmed") > 0)
    });

    // Stop mining, and let a node with an empty datadir validate the whole chain from scratch.
    node.stop();
    node.start(NodeOptions::new());
    let fresh = TestNode::started("fresh", NodeOptions::new().bootstrap(node.multiaddr()));
    let tip = node.tip();
    wait_until("the fresh node reaches the crashed node's tip", DEADLINE, || {
        fresh.try_json(&["status"]).is_ok_and(|s| text(&s, "tip") == tip)
    });
    for address in [&miner.address, &payee.address] {
        let (ours, theirs) = (node.balance(address), fresh.balance(address));
        for key in ["confirmed", "immature", "nonce"] {
            assert_eq!(ours[key], theirs[key], "{key} of {address}: crashed node {ours}, fresh node {theirs}");
        }
    }
    assert_eq!(confirmed(&node, &payee.address), confirmed(&fresh, &payee.address));
}

#[test]
fn a_failing_disk_write_stops_the_node_and_the_database_reopens_intact() {
    let miner = TestWallet::new();
    let mut node = TestNode::new("faulty");
    // Two writes per mined block (the block, then its connection): the tenth write fails.
    node.start(NodeOptions::new().mining(&miner.address).arg("--debug-fail-writes-after").arg("9"));
    let status = node.exited_within(DEADLINE);
    assert_eq!(status.code(), Some(1), "a failed write is an error exit");
    let log = node.log();
    assert!(log.contains("write failed"), "the node says why it stopped:\n{log}");
    assert!(!log.contains("panicked"), "no panic:\n{log}");
    // The last block it reported as connected.
    let last_good = log
        .lines()
        .filter(|l| l.contains("new best block"))
        .filter_map(|l| l.split("height=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
        .max()
        .expect("the node connected blocks before the failure");

    node.start(NodeOptions::new());
    assert_eq!(node.height(), last_good, "the database reopens at the last good block");
    // And it works on from there.
    let balance = node.balance(&miner.address);
    assert_eq!(uint(&balance, "confirmed") + uint(&balance, "immature"), last_good * 50 * COIN);
}
