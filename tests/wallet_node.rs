//! The wallet and operator commands against running regtest nodes: a
//! restored phrase finds its coins with no rescan, a wallet of several
//! addresses is one balance and one history, fees can be raised and are
//! estimated, an offline-signed payment confirms, and `chaininfo` follows a
//! sync.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{
    cli_json, is_hash, path_str, prebuild_chain, text, uint, wait_for, wait_until, NodeOptions, TestNode, TestWallet,
    COIN, MATURITY, SUBSIDY,
};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);
/// Blocks written beforehand: the rewards of blocks 1 and 2 are mature at height 12.
const PREBUILT: u64 = 12;
const FUNDED: u64 = (PREBUILT - MATURITY) * SUBSIDY;

/// A wallet file of several addresses, made with the CLI.
struct HdWallet {
    _dir: tempfile::TempDir,
    path: PathBuf,
    mnemonic: String,
    addresses: Vec<String>,
}

impl HdWallet {
    fn new(addresses: usize) -> HdWallet {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wallet.json");
        let created = cli_json(&["--network", "regtest", "--wallet", path_str(&path), "--json", "wallet", "new"]);
        let mnemonic = text(&created, "mnemonic").to_string();
        let mut list = vec![text(&created, "address").to_string()];
        while list.len() < addresses {
            let next =
                cli_json(&["--network", "regtest", "--wallet", path_str(&path), "--json", "wallet", "new-address"]);
            assert_eq!(uint(&next, "index"), list.len() as u64);
            list.push(text(&next, "address").to_string());
        }
        HdWallet { _dir: dir, path, mnemonic, addresses: list }
    }

    fn path(&self) -> &str {
        path_str(&self.path)
    }
}

fn addresses_of(list: &Value) -> Vec<String> {
    list.as_array().expect("a JSON list").iter().map(|a| text(a, "address").to_string()).collect()
}

fn mempool_txids(node: &TestNode) -> Vec<String> {
    let doc = node.json(&["mempool"]);
    doc["txids"].as_array().expect("txids").iter().map(|t| t.as_str().expect("txid").to_string()).collect()
}

fn refusal(node: &TestNode, args: &[&str]) -> String {
    let out = node.cli(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} must fail: {out:?}");
    assert!(out.stdout.is_empty(), "nothing on stdout after an error");
    String::from_utf8_lossy(&out.stderr).trim_end().to_string()
}

fn funded_node(name: &str, funded: &str, options: NodeOptions) -> TestNode {
    let mut node = TestNode::new(name);
    prebuild_chain(&node.datadir(), funded, PREBUILT);
    node.start(options);
    node
}

#[test]
fn a_restored_phrase_finds_the_original_addresses_and_their_coins_without_a_rescan() {
    let original = HdWallet::new(3);
    // The chain pays the wallet's second address; the node has never seen
    // the restored wallet.
    let node = funded_node("A", &original.addresses[1], NodeOptions::new());

    let dir = tempfile::tempdir().expect("temp dir");
    let words = dir.path().join("words.txt");
    std::fs::write(&words, format!("{}\n", original.mnemonic)).expect("write the words");
    let restored = dir.path().join("fresh/restored.json");
    let restored = path_str(&restored);
    let doc = cli_json(&[
        "--network",
        "regtest",
        "--wallet",
        restored,
        "--json",
        "wallet",
        "restore",
        "--words-file",
        path_str(&words),
        "--addresses",
        "3",
    ]);
    assert_eq!(text(&doc, "address"), original.addresses[0]);
    let listed = cli_json(&["--network", "regtest", "--wallet", restored, "--json", "wallet", "addresses"]);
    assert_eq!(addresses_of(&listed), original.addresses);

    let balance = node.json(&["--wallet", restored, "balance"]);
    assert_eq!(uint(&balance, "confirmed"), FUNDED, "{balance}");
    assert_eq!(uint(&balance, "immature"), MATURITY * SUBSIDY, "{balance}");
    let per_address = balance["addresses"].as_array().expect("addresses");
    assert_eq!(per_address.len(), 3);
    assert_eq!(uint(&per_address[1], "confirmed"), FUNDED);
    assert_eq!(uint(&per_address[0], "confirmed"), 0);
    let history = node.json(&["--wallet", restored, "history"]);
    assert!(history["address"].is_null(), "{history}");
    assert_eq!(history["transactions"].as_array().expect("transactions").len() as u64, PREBUILT);
}

#[test]
fn a_wallet_of_three_addresses_is_one_balance_and_one_history_and_accounts_do_not_merge() {
    let funder = TestWallet::new();
    let miner = TestWallet::new();
    let node = funded_node("A", &funder.address, NodeOptions::new().mining(&miner.address));
    let wallet = HdWallet::new(3);
    let mut txids = Vec::new();
    for (address, amount) in wallet.addresses.iter().zip(["1", "2", "3"]) {
        txids.push(node.send(&funder, address, amount));
    }
    wait_until("the three payments confirm", DEADLINE, || txids.iter().all(|t| node.tx_height(t).is_some()));

    let balance = node.json(&["--wallet", wallet.path(), "balance"]);
    assert_eq!(uint(&balance, "confirmed"), 6 * COIN, "{balance}");
    assert_eq!(uint(&balance, "pending"), 6 * COIN, "{balance}");
    let confirmed: Vec<u64> =
        balance["addresses"].as_array().expect("addresses").iter().map(|a| uint(a, "confirmed")).collect();
    assert_eq!(confirmed, [COIN, 2 * COIN, 3 * COIN]);
    let history = node.json(&["--wallet", wallet.path(), "history"]);
    let mut listed: Vec<String> =
        history["transactions"].as_array().expect("transactions").iter().map(|t| text(t, "txid").to_string()).collect();
    listed.sort();
    txids.sort();
    assert_eq!(listed, txids, "{history}");
    let people = node.cli(&["--wallet", wallet.path(), "balance"]);
    assert!(String::from_utf8_lossy(&people.stdout).contains("6 OUR"), "{people:?}");

    // 4 coins: more than any one address holds, less than all three together.
    let to = miner.address.as_str();
    let reason = refusal(&node, &["--wallet", wallet.path(), "send", "--to", to, "--amount", "4"]);
    assert!(reason.contains("no single address of the wallet holds"), "{reason}");
    assert!(reason.contains(&wallet.addresses[2]) && reason.contains("6 OUR"), "{reason}");
    let reason = refusal(
        &node,
        &["--wallet", wallet.path(), "send", "--to", to, "--amount", "2", "--from", &wallet.addresses[0]],
    );
    assert!(reason.contains("insufficient funds"), "{reason}");

    // 2.5 coins: the first address that can pay is the third.
    let out = node.cli(&["--json", "--wallet", wallet.path(), "send", "--to", to, "--amount", "2.5", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    let sent: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(text(&sent, "from"), wallet.addresses[2]);
    assert_eq!(uint(&sent, "fee"), 10_000);
    let height = uint(&sent, "height");
    assert_eq!(node.tx_height(text(&sent, "txid")), Some(height));
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.contains("confirmed in block"), "--wait shows its progress on stderr: {progress}");
}

#[test]
fn bumpfee_replaces_a_pending_payment_on_every_node_and_the_old_one_never_confirms() {
    let funder = TestWallet::new();
    let payee = TestWallet::new();
    let stranger = TestWallet::new();
    let mut a = funded_node("A", &funder.address, NodeOptions::new());
    let b = TestNode::started("B", NodeOptions::new().bootstrap(a.multiaddr()));
    wait_until("B syncs A's chain", DEADLINE, || b.try_height() == Some(PREBUILT));

    let old = b.send(&funder, &payee.address, "1");
    wait_until("A has the payment", DEADLINE, || mempool_txids(&a).contains(&old));
    let bumped = b.json(&["--wallet", funder.path.to_str().expect("path"), "bumpfee", &old]);
    let new = text(&bumped, "txid").to_string();
    assert!(is_hash(&bumped["txid"]) && new != old, "{bumped}");
    assert_eq!(text(&bumped, "replaced"), old);
    assert_eq!(uint(&bumped, "fee"), 12_500, "25% more than the default fee");
    for node in [&a, &b] {
        wait_until("the replacement is in every mempool, the old payment in none", DEADLINE, || {
            let txids = mempool_txids(node);
            txids.contains(&new) && !txids.contains(&old)
        });
    }

    let funder_path = funder.path.to_str().expect("path");
    let reason = refusal(&b, &["--wallet", funder_path, "bumpfee", &new, "--fee", "0.00013"]);
    assert!(reason.contains("at least 0.0001375 OUR"), "below the +10% rule: {reason}");
    let reason = refusal(&b, &["--wallet", stranger.path(), "bumpfee", &new]);
    assert!(reason.contains("not this wallet's"), "{reason}");

    // Mining starts: the replacement confirms, the replaced payment never.
    a.stop();
    a.start(NodeOptions::new().mining(&payee.address));
    wait_until("the replacement confirms", DEADLINE, || b.tx_height(&new).is_some());
    let height = b.tx_height(&new).expect("confirmed");
    wait_until("a few more blocks", DEADLINE, || b.try_height().is_some_and(|h| h >= height + 2));
    assert!(b.try_tx(&old).is_none(), "the replaced payment is gone");
    let reason = refusal(&b, &["--wallet", funder_path, "bumpfee", &new]);
    assert!(reason.contains("already confirmed"), "{reason}");
    let history = b.history(&payee.address);
    assert!(!history.to_string().contains(&old), "{history}");
}

#[test]
fn an_offline_payment_submitted_later_confirms_and_estimatefee_follows_the_fees() {
    let funder = TestWallet::new();
    let miner = TestWallet::new();
    let node = funded_node("A", &funder.address, NodeOptions::new().mining(&miner.address));

    let estimate = node.json(&["estimatefee"]);
    assert_eq!(text(&estimate, "basis"), "minimum", "{estimate}");
    assert_eq!(uint(&estimate, "fee"), 1_000);
    assert_eq!(uint(&estimate, "blocks"), 6);
    let mempool = node.json(&["mempool"]);
    assert_eq!(uint(&mempool, "min_fee"), 1_000, "{mempool}");
    assert_eq!(uint(&mempool, "bytes"), 0, "{mempool}");

    // Signed on a machine with no node (none is named, none is asked).
    let mut signed = Vec::new();
    for nonce in ["0", "1"] {
        let doc = cli_json(&[
            "--network",
            "regtest",
            "--wallet",
            funder.path(),
            "--json",
            "send",
            "--to",
            &miner.address,
            "--amount",
            "1",
            "--fee",
            "0.01",
            "--offline",
            "--nonce",
            nonce,
        ]);
        signed.push((text(&doc, "txid").to_string(), text(&doc, "hex").to_string()));
    }
    for (txid, hex) in &signed {
        let submitted = node.json(&["submit", hex]);
        assert_eq!(text(&submitted, "txid"), txid);
    }
    wait_until("both offline payments confirm", DEADLINE, || signed.iter().all(|(t, _)| node.tx_height(t).is_some()));
    let again = refusal(&node, &["submit", &signed[0].1]);
    assert!(again.contains("refused"), "{again}");

    let estimate = node.json(&["estimatefee", "--blocks", "2"]);
    assert_eq!(text(&estimate, "basis"), "blocks", "{estimate}");
    assert_eq!(uint(&estimate, "fee"), COIN / 100, "the fee recent blocks confirmed: {estimate}");
    let auto =
        node.json(&["--wallet", funder.path(), "send", "--to", &miner.address, "--amount", "1", "--fee", "auto"]);
    assert_eq!(uint(&auto, "fee"), COIN / 100, "{auto}");

    let mining = wait_for("the miner's hash rate is measured", DEADLINE, || {
        let doc = node.json(&["mininginfo"]);
        (doc["hashrate"].as_f64().unwrap_or(0.0) > 0.0).then_some(doc)
    });
    assert_eq!(mining["mining"], true);
    assert_eq!(uint(&mining, "threads"), 1);
    assert!(mining["network_hashrate"].as_f64().is_some_and(|h| h > 0.0), "{mining}");
    assert!(mining["difficulty"].as_f64().is_some_and(|d| d >= 1.0), "{mining}");
}

#[test]
fn chaininfo_follows_a_sync_from_initial_to_done() {
    const LENGTH: u64 = 1_500;
    let miner = TestWallet::new();
    let mut a = TestNode::new("A");
    prebuild_chain(&a.datadir(), &miner.address, LENGTH);
    a.start(NodeOptions::new());
    let info = a.json(&["chaininfo"]);
    for key in [
        "network",
        "height",
        "best_block",
        "headers",
        "chain_work",
        "difficulty",
        "median_time",
        "initial_sync",
        "sync_progress",
        "size_on_disk",
    ] {
        assert!(info.get(key).is_some(), "chaininfo has `{key}`: {info}");
    }
    assert_eq!(uint(&info, "height"), LENGTH);
    assert!(is_hash(&info["best_block"]) && is_hash(&info["chain_work"]), "{info}");
    assert!(uint(&info, "size_on_disk") > 0, "{info}");
    let idle = a.json(&["mininginfo"]);
    assert_eq!(idle["mining"], false);
    assert_eq!(idle["hashrate"].as_f64(), Some(0.0));

    let b = TestNode::started("B", NodeOptions::new().bootstrap(a.multiaddr()));
    let mut seen = Vec::new();
    wait_until("B's chaininfo says the sync is done", Duration::from_secs(120), || {
        let Ok(doc) = b.try_json(&["chaininfo"]) else { return false };
        let state = (doc["initial_sync"].as_bool(), doc["sync_progress"].as_f64(), uint(&doc, "height"));
        assert!(uint(&doc, "headers") >= uint(&doc, "height"), "{doc}");
        seen.push(state);
        state == (Some(false), Some(1.0), LENGTH)
    });
    assert!(
        seen.iter().any(|(initial, progress, _)| *initial == Some(true) && progress.is_some_and(|p| p < 1.0)),
        "seen during the sync: {seen:?}"
    );
    assert!(
        !seen.iter().any(|(initial, progress, _)| *initial == Some(false) && progress.is_some_and(|p| p < 1.0)),
        "never done before the end: {seen:?}"
    );
}
