//! Several real `ourcoind` processes on 127.0.0.1: peer discovery through
//! Kademlia, payments relayed and confirmed across nodes, initial sync of a
//! long chain, a partition whose losing branch is undone, and restarts (clean
//! and `kill -9`) that keep the node's identity, chain and history.

mod common;

use std::time::{Duration, Instant};

use common::{
    at_common_tip, forget_peers, history_entries, prebuild_chain, stored_chain, text, uint, wait_for, wait_until,
    NodeOptions, TestNode, TestWallet, COIN, DEFAULT_FEE, MATURITY, SUBSIDY,
};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);

/// The confirmed entries of a history (pending ones have a null height).
fn confirmed_entries(history: &Value) -> Vec<Value> {
    history_entries(history).into_iter().filter(|e| !e["height"].is_null()).collect()
}

#[test]
fn three_nodes_discover_each_other_and_confirm_a_payment() {
    let started = Instant::now();
    let wa = TestWallet::new();
    let wb = TestWallet::new();
    let a = TestNode::started("A", NodeOptions::new().mining(&wa.address));
    let b = TestNode::started("B", NodeOptions::new().bootstrap(a.multiaddr()));
    let c = TestNode::started("C", NodeOptions::new().bootstrap(b.multiaddr()));

    // C was only told of B: it must find A through Kademlia and connect to it.
    wait_until("C connects to A, which only B told it of", DEADLINE, || {
        c.peer_ids().contains(&a.peer_id().to_string())
    });
    wait_until("A counts C among its peers", DEADLINE, || a.peer_ids().contains(&c.peer_id().to_string()));
    wait_until("B is connected to both A and C", DEADLINE, || {
        let peers = b.peer_ids();
        peers.contains(&a.peer_id().to_string()) && peers.contains(&c.peer_id().to_string())
    });

    let amount = 1_250_000_000; // 12.5 coins
    wait_until("WA's first reward matures, as C sees it", DEADLINE, || {
        uint(&c.balance(&wa.address), "confirmed") >= amount + DEFAULT_FEE
    });
    // Submitted at C, which does not mine: A must get it by gossip.
    let txid = c.send(&wa, &wb.address, "12.5");
    wait_until("the payment is confirmed on A, B and C", DEADLINE, || {
        [&a, &b, &c].iter().all(|node| node.tx_height(&txid).is_some())
    });

    let (status, answers) = wait_for("A, B and C answer alike at one tip", DEADLINE, || {
        at_common_tip(&[&a, &b, &c], |node| {
            (node.balance(&wb.address), node.balance(&wa.address), node.history(&wb.address), node.try_tx(&txid))
        })
    });
    let tip_height = uint(&status, "height");
    let (wb_balance, wa_balance, wb_history, tx) = answers[0].clone();
    for (node, answer) in ["B", "C"].iter().zip(&answers[1..]) {
        assert_eq!(*answer, answers[0], "node {node} disagrees with A at tip {}", text(&status, "tip"));
    }

    let tx = tx.expect("the payment is known");
    let tx_height = uint(&tx, "height");
    assert_eq!(text(&tx, "from"), wa.address);
    assert_eq!(text(&tx, "to"), wb.address);
    assert_eq!((uint(&tx, "amount"), uint(&tx, "fee"), uint(&tx, "nonce")), (amount, DEFAULT_FEE, 0));
    assert!(tx_height > MATURITY && tx_height <= tip_height, "{tx}");

    assert_eq!(
        (uint(&wb_balance, "confirmed"), uint(&wb_balance, "immature"), uint(&wb_balance, "pending")),
        (amount, 0, amount),
        "WB holds exactly the payment: {wb_balance}"
    );
    // A mined every block to WA, and took the payment's fee back as miner.
    let wa_total = uint(&wa_balance, "confirmed") + uint(&wa_balance, "immature");
    assert_eq!(wa_total, tip_height * SUBSIDY - amount, "WA's money at height {tip_height}: {wa_balance}");
    let fee_immature = if tx_height + MATURITY > tip_height { DEFAULT_FEE } else { 0 };
    assert_eq!(uint(&wa_balance, "immature"), MATURITY * SUBSIDY + fee_immature, "{wa_balance}");
    assert_eq!(uint(&wa_balance, "nonce"), 1, "{wa_balance}");

    let entries = wb_history["transactions"].as_array().expect("a list of transactions");
    assert_eq!(entries.len(), 1, "WB's history is the one payment: {wb_history}");
    let entry = &entries[0];
    assert_eq!(text(entry, "txid"), txid);
    assert_eq!(text(entry, "from"), wa.address);
    assert_eq!(text(entry, "to"), wb.address);
    assert_eq!((uint(entry, "amount"), uint(entry, "fee"), uint(entry, "height")), (amount, DEFAULT_FEE, tx_height));
    assert_eq!(uint(entry, "confirmations"), tip_height - tx_height + 1);

    // Every node admitted the payment before its block came (C by submission,
    // A and B by gossip), so each found the payment's pairing in its cache.
    for node in [&a, &b, &c] {
        let status = node.status();
        let ratio = status["signature_cache_hit_ratio"].as_f64();
        assert!(ratio.is_some_and(|r| r > 0.0), "node {} reused the admission pairing: {status}", node.name());
    }
    eprintln!("three_nodes_discover_each_other_and_confirm_a_payment: {:.1?}", started.elapsed());
}

#[test]
fn a_fresh_node_syncs_a_long_chain() {
    const LENGTH: u64 = 210;
    let started = Instant::now();
    let miner = TestWallet::new();
    let mut a = TestNode::new("A");
    prebuild_chain(&a.datadir(), &miner.address, LENGTH);
    a.start(NodeOptions::new());
    let a_status = a.status();
    assert_eq!(uint(&a_status, "height"), LENGTH, "A loaded the prepared chain: {a_status}");
    let a_tip = text(&a_status, "tip").to_string();

    let d = TestNode::started("D", NodeOptions::new().bootstrap(a.multiaddr()));
    let sync_started = Instant::now();
    wait_until("D reaches A's height and tip", DEADLINE, || {
        d.try_json(&["status"]).is_ok_and(|s| s["height"] == LENGTH && s["tip"] == a_tip.as_str())
    });
    let sync_time = sync_started.elapsed();

    for height in ["1", "2", "105", "209", "210"] {
        assert_eq!(d.json(&["block", height]), a.json(&["block", height]), "block {height} on D and on A");
    }
    assert_eq!(d.balance(&miner.address), a.balance(&miner.address));
    let balance = d.balance(&miner.address);
    assert_eq!(uint(&balance, "confirmed"), (LENGTH - MATURITY) * SUBSIDY, "{balance}");
    assert_eq!(uint(&balance, "immature"), MATURITY * SUBSIDY, "{balance}");
    // SPEC §6: long work reports its progress (height, target, blocks per second).
    let log = d.log();
    assert!(
        log.lines().any(|l| l.contains("blocks/s") && l.contains(&LENGTH.to_string())),
        "D logs its sync progress towards height {LENGTH}"
    );
    eprintln!("a_fresh_node_syncs_a_long_chain: {:.1?} (sync {sync_time:.1?})", started.elapsed());
}

#[test]
fn two_nodes_mine_apart_and_the_losing_branch_payments_confirm_again() {
    let started = Instant::now();
    let wa = TestWallet::new();
    let wb = TestWallet::new();
    let wm = TestWallet::new();
    let mut a = TestNode::started("A", NodeOptions::new().mining(&wa.address));
    let mut b = TestNode::started("B", NodeOptions::new().bootstrap(a.multiaddr()));
    wait_until("WA is funded (more than 2 coins), as B sees it", DEADLINE, || {
        uint(&b.balance(&wa.address), "confirmed") > 2 * COIN
    });

    // The partition: both forget each other and mine on their own.
    a.stop();
    b.stop();
    forget_peers(&a);
    forget_peers(&b);
    a.start(NodeOptions::new().mining(&wa.address));
    b.start(NodeOptions::new().mining(&wm.address));

    let amount = 150_000_000; // 1.5 coins
    let p = b.send(&wa, &wb.address, "1.5");
    let p_height_on_b = wait_for("P is confirmed on B's branch", DEADLINE, || b.tx_height(&p));
    let p_block_on_b = text(&b.try_tx(&p).expect("P on B"), "block").to_string();
    let b_coinbase = b.json(&["block", &p_block_on_b])["txids"][0].as_str().expect("a coinbase txid").to_string();
    assert!(a.try_tx(&p).is_none(), "A, cut off from B, does not know P");
    assert!(a.peer_ids().is_empty() && b.peer_ids().is_empty(), "A and B are apart");

    // B stops mining; A mines on until its branch is ahead by 3 blocks.
    b.stop();
    let (b_height, b_tip, b_work) = stored_chain(&b.datadir());
    assert!(b_height >= p_height_on_b, "B's branch holds P: height {b_height} < {p_height_on_b}");
    wait_until("A's branch is 3 blocks longer than B's", DEADLINE, || {
        a.try_height().is_some_and(|h| h >= b_height + 3)
    });
    let a_block_at_split = a.json(&["block", &b_height.to_string()]);
    assert_ne!(a_block_at_split["hash"], b_tip.as_str(), "A and B mined different branches");
    let a_work = text(&a.status(), "work").to_string();
    assert!(
        a_work.len() == 64 && b_work.len() == 64 && a_work > b_work,
        "A's branch has more work: {a_work} vs {b_work}"
    );

    b.start(NodeOptions::new().bootstrap(a.multiaddr()));
    let a_height = a.height();
    wait_until("B reorganises to A's branch, the one with more work", DEADLINE, || {
        b.try_height().is_some_and(|h| h >= a_height)
            && b.try_json(&["block", &b_height.to_string()]).is_ok_and(|blk| blk["hash"] == a_block_at_split["hash"])
    });

    // P was undone with B's branch and went back to B's mempool (unless A
    // already has it in a block of its own branch)...
    wait_until("B holds P again, pending or in a block of A's branch", DEADLINE, || {
        b.try_tx(&p).is_some_and(|tx| tx["block"] != p_block_on_b.as_str())
    });
    // Nothing of the undone branch is reported as if it were still in the best chain.
    assert!(b.try_json(&["block", &p_block_on_b]).is_err(), "B's undone block is not on the best chain");
    assert!(b.try_tx(&b_coinbase).is_none(), "the coinbase of B's undone block is gone");
    let wm_history = b.history(&wm.address);
    assert_eq!(wm_history["transactions"], serde_json::json!([]), "B's undone rewards left WM's history");
    // ...and must be mined again, by A, on the common chain.
    let p_height = wait_for("P confirms again on the common chain, on A and on B", DEADLINE, || {
        let (on_a, on_b) = (a.try_tx(&p), b.try_tx(&p));
        common::observe(format!("P on A: {on_a:?}\nP on B: {on_b:?}"));
        let (on_a, on_b) = (on_a?, on_b?);
        let same = !on_a["height"].is_null() && on_a["height"] == on_b["height"] && on_a["block"] == on_b["block"];
        same.then(|| uint(&on_a, "height"))
    });
    let p_block = text(&a.try_tx(&p).expect("P on A"), "block").to_string();
    assert_ne!(p_block, p_block_on_b, "P is in a block of A's branch, not in B's undone one");
    assert_eq!(a.json(&["block", &p_height.to_string()])["hash"], p_block.as_str());

    let (status, answers) = wait_for("A and B answer alike at one tip", DEADLINE, || {
        at_common_tip(&[&a, &b], |node| {
            (node.balance(&wb.address), node.balance(&wm.address), node.balance(&wa.address))
        })
    });
    assert_eq!(answers[0], answers[1], "A and B disagree at tip {}", text(&status, "tip"));
    let (wb_balance, wm_balance, wa_balance) = &answers[0];
    assert_eq!(uint(wb_balance, "confirmed"), amount, "the recipient holds P: {wb_balance}");
    assert_eq!(
        (uint(wm_balance, "confirmed"), uint(wm_balance, "immature")),
        (0, 0),
        "B's mining rewards went with its branch: {wm_balance}"
    );
    assert_eq!(uint(wa_balance, "nonce"), 1, "P is WA's only payment: {wa_balance}");
    eprintln!("two_nodes_mine_apart_and_the_losing_branch_payments_confirm_again: {:.1?}", started.elapsed());
}

#[derive(Clone, Copy, Debug)]
enum Stop {
    Sigterm,
    Kill9,
}

#[test]
fn restart_keeps_identity_chain_and_history() {
    let started = Instant::now();
    let wa = TestWallet::new();
    let wb = TestWallet::new();
    let a = TestNode::started("A", NodeOptions::new().mining(&wa.address));
    let mut b = TestNode::started("B", NodeOptions::new().bootstrap(a.multiaddr()));
    wait_until("WA can pay 1 coin, as B sees it", DEADLINE, || {
        uint(&b.balance(&wa.address), "confirmed") >= COIN + DEFAULT_FEE
    });
    let payment = b.send(&wa, &wb.address, "1");
    wait_until("the payment is confirmed on B", DEADLINE, || b.tx_height(&payment).is_some());
    let peer_id = b.peer_id().to_string();

    for how in [Stop::Sigterm, Stop::Kill9] {
        let before = b.status();
        let history_before = confirmed_entries(&b.history(&wa.address));
        assert!(
            history_before.iter().any(|e| e["txid"] == payment.as_str()),
            "WA's history holds the payment before the {how:?}"
        );
        match how {
            Stop::Sigterm => b.stop(),
            Stop::Kill9 => b.kill(),
        }
        // No bootstrap address this time: B must dial A again from the peers
        // it saved (at the clean stop, before the kill -9).
        b.start(NodeOptions::new());

        let after = b.status();
        assert_eq!(b.peer_id(), peer_id, "the same peer id after a {how:?} (log)");
        assert_eq!(text(&after, "peer_id"), peer_id, "the same peer id after a {how:?} (status)");
        assert!(
            uint(&after, "height") >= uint(&before, "height"),
            "height after a {how:?}: {} < {}",
            after["height"],
            before["height"]
        );
        let history_after = confirmed_entries(&b.history(&wa.address));
        let missing: Vec<&Value> = history_before.iter().filter(|e| !history_after.contains(e)).collect();
        assert!(missing.is_empty(), "WA's history lost or changed entries after a {how:?}: {missing:?}");

        wait_until(&format!("B reconnects to A from its saved peers after a {how:?}"), DEADLINE, || {
            b.peer_ids().contains(&a.peer_id().to_string())
        });
        let target = a.height();
        wait_until(&format!("B catches up to A's height {target} after a {how:?}"), DEADLINE, || {
            b.try_height().is_some_and(|h| h >= target)
        });
        let height = target.to_string();
        assert_eq!(b.json(&["block", &height])["hash"], a.json(&["block", &height])["hash"], "block {height}");
    }
    eprintln!("restart_keeps_identity_chain_and_history: {:.1?}", started.elapsed());
}
