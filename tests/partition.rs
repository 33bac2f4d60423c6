//! A network split in two groups of real `ourcoind` processes, each group
//! mining its own branch for twenty blocks, then healed: every node must end
//! on the branch with more work, and a payment confirmed only on the losing
//! branch must confirm again on the winning one, on every node.

mod common;

use std::time::{Duration, Instant};

use common::{
    at_common_tip, forget_peers, stored_chain, text, uint, wait_for, wait_until, NodeOptions, TestNode, TestWallet,
    COIN,
};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(90);
/// Blocks each group mines on its own after the split.
const APART: u64 = 20;

/// Whether `node` is connected to any of `others`.
fn connected_to_any(node: &TestNode, others: &[&TestNode]) -> bool {
    let peers = node.peer_ids();
    others.iter().any(|other| peers.contains(&other.peer_id().to_string()))
}

fn assert_apart(group_a: &[&TestNode], group_b: &[&TestNode]) {
    for node in group_a {
        assert!(!connected_to_any(node, group_b), "{} reached across the split", node.name());
    }
    for node in group_b {
        assert!(!connected_to_any(node, group_a), "{} reached across the split", node.name());
    }
}

#[test]
fn two_groups_mine_apart_for_twenty_blocks_then_reconnect() {
    let started = Instant::now();
    let w = TestWallet::new(); // funded before the split
    let wa = TestWallet::new(); // group A's miner after the split
    let wb = TestWallet::new(); // group B's miner after the split
    let payee = TestWallet::new();

    // One network first: A1 mines to W; A2 and B1 know A1, B2 knows B1.
    let mut a1 = TestNode::started("A1", NodeOptions::new().mining(&w.address));
    let mut a2 = TestNode::started("A2", NodeOptions::new().bootstrap(a1.multiaddr()));
    let mut b1 = TestNode::started("B1", NodeOptions::new().bootstrap(a1.multiaddr()));
    let mut b2 = TestNode::started("B2", NodeOptions::new().bootstrap(b1.multiaddr()));
    wait_until("W can pay 1.5 coins, as B2 sees it", DEADLINE, || {
        b2.try_json(&["balance", &w.address]).is_ok_and(|b| uint(&b, "confirmed") >= 2 * COIN)
    });
    wait_for("all four agree on one tip", DEADLINE, || at_common_tip(&[&a1, &a2, &b1, &b2], |_| ()));

    // The split: everyone forgets everyone; each group restarts on its own.
    for node in [&mut a1, &mut a2, &mut b1, &mut b2] {
        node.stop();
        forget_peers(node);
    }
    let (split_height, split_tip, _) = stored_chain(&a1.datadir());
    for node in [&a2, &b1, &b2] {
        let (height, tip, _) = stored_chain(&node.datadir());
        assert_eq!((height, &tip), (split_height, &split_tip), "{} stopped on the common tip", node.name());
    }
    a1.start(NodeOptions::new().mining(&wa.address));
    a2.start(NodeOptions::new().bootstrap(a1.multiaddr()));
    b1.start(NodeOptions::new().mining(&wb.address));
    b2.start(NodeOptions::new().bootstrap(b1.multiaddr()));
    wait_until("A2 is connected to A1, and B2 to B1", DEADLINE, || {
        connected_to_any(&a2, &[&a1]) && connected_to_any(&b2, &[&b1])
    });
    assert_apart(&[&a1, &a2], &[&b1, &b2]);

    // A payment in group B, confirmed there only.
    let amount = 150_000_000; // 1.5 coins
    let p = b2.send(&w, &payee.address, "1.5");
    let target = split_height + APART;
    wait_until(&format!("each group mines {APART} blocks apart, and P confirms in group B"), DEADLINE, || {
        let heights = [&a1, &a2, &b1, &b2].map(|node| node.try_height().unwrap_or(0));
        common::observe(format!("heights A1 A2 B1 B2: {heights:?} (target {target})"));
        heights.iter().all(|h| *h >= target) && b1.tx_height(&p).is_some() && b2.tx_height(&p).is_some()
    });
    let p_on_b = b1.try_tx(&p).expect("P is known in group B");
    let p_block_on_b = text(&p_on_b, "block").to_string();
    assert!(a1.try_tx(&p).is_none() && a2.try_tx(&p).is_none(), "group A never heard of P");
    assert_apart(&[&a1, &a2], &[&b1, &b2]);

    // Group B stops mining, so group A's branch pulls ahead in work.
    b1.stop();
    b1.start(NodeOptions::new());
    let b_status = b1.status();
    let (b_height, b_tip, b_work) =
        (uint(&b_status, "height"), text(&b_status, "tip").to_string(), text(&b_status, "work").to_string());
    wait_until("A's branch is 3 blocks longer than B's", DEADLINE, || {
        a1.try_height().is_some_and(|h| h >= b_height + 3)
    });
    let a_work = text(&a1.status(), "work").to_string();
    assert!(
        a_work.len() == 64 && b_work.len() == 64 && a_work > b_work,
        "A's branch has more work: {a_work} vs {b_work}"
    );
    let fork_height = (split_height + 1).to_string();
    let a_fork_block = text(&a1.json(&["block", &fork_height]), "hash").to_string();
    let b_fork_block = text(&b1.json(&["block", &fork_height]), "hash").to_string();
    assert_ne!(a_fork_block, b_fork_block, "the groups mined different branches from height {fork_height}");
    assert_apart(&[&a1, &a2], &[&b1, &b2]);
    let apart_for = started.elapsed();

    // The heal: B1 comes back knowing A1.
    b1.stop();
    b1.start(NodeOptions::new().bootstrap(a1.multiaddr()));
    let healed = Instant::now();
    let nodes = [&a1, &a2, &b1, &b2];
    wait_until("all four follow A's branch", DEADLINE, || {
        nodes
            .iter()
            .all(|node| node.try_json(&["block", &fork_height]).is_ok_and(|b| b["hash"] == a_fork_block.as_str()))
    });
    let p_height = wait_for("P confirms again on A's branch, on all four", DEADLINE, || {
        let seen: Vec<Option<Value>> = nodes.iter().map(|node| node.try_tx(&p)).collect();
        common::observe(format!("P on A1 A2 B1 B2: {seen:?}"));
        let first = seen[0].as_ref()?;
        let agreed = seen.iter().all(|tx| {
            tx.as_ref().is_some_and(|tx| {
                !tx["height"].is_null() && tx["height"] == first["height"] && tx["block"] == first["block"]
            })
        });
        (agreed && first["block"] != p_block_on_b.as_str()).then(|| uint(first, "height"))
    });
    let reconverged = healed.elapsed();

    // One tip, the one with more work, and the same answers everywhere.
    let (status, answers) = wait_for("all four answer alike at one tip", DEADLINE, || {
        at_common_tip(&nodes, |node| {
            (node.balance(&payee.address), node.balance(&wb.address), node.balance(&w.address), node.try_tx(&p))
        })
    });
    for (node, answer) in nodes.iter().zip(&answers).skip(1) {
        assert_eq!(*answer, answers[0], "{} disagrees with A1 at tip {}", node.name(), text(&status, "tip"));
    }
    let (payee_balance, wb_balance, w_balance, tx) = &answers[0];
    assert!(uint(&status, "height") > b_height, "the common chain outgrew B's branch: {status}");
    assert_ne!(text(&status, "tip"), b_tip, "the common tip is not B's");
    assert_eq!(uint(payee_balance, "confirmed"), amount, "the payee holds P: {payee_balance}");
    assert_eq!(
        (uint(wb_balance, "confirmed"), uint(wb_balance, "immature")),
        (0, 0),
        "group B's rewards went with its branch: {wb_balance}"
    );
    assert_eq!(uint(w_balance, "nonce"), 1, "P is W's only payment: {w_balance}");
    let tx = tx.as_ref().expect("P is known");
    assert_eq!(uint(tx, "height"), p_height);
    assert_eq!(text(&a1.json(&["block", &p_height.to_string()]), "hash"), text(tx, "block"));
    eprintln!(
        "two_groups_mine_apart_for_twenty_blocks_then_reconnect: {:.1?} (split at {split_height}, B's branch to {b_height}, \
         apart until {apart_for:.1?}; reconverged and P reconfirmed at {p_height} {reconverged:.1?} after the heal)",
        started.elapsed()
    );
}
