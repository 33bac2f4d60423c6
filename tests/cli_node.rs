//! `ourcoin-cli` end to end against running regtest nodes: every command's
//! `--json` document has the SPEC §7 keys with the right types, the output
//! for people carries the same values, and requests the node cannot satisfy
//! fail with exit code 1, one `error:` line on stderr and nothing on stdout.
//!
//! The wallets are funded by a chain written beforehand with the library, so
//! the node need not mine for a dozen seconds first; it runs without mining,
//! which keeps payments pending for as long as the test looks at them.

mod common;

use std::collections::BTreeSet;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{
    is_hash, is_lower_hex, prebuild_chain, text, uint, wait_for, wait_until, NodeOptions, TestNode, TestWallet, COIN,
    DEFAULT_FEE, MATURITY, SUBSIDY,
};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);
/// Blocks written beforehand, all paying the funded wallet: the rewards of
/// blocks 1 and 2 are mature at height 12.
const PREBUILT: u64 = 12;
const FUNDED: u64 = (PREBUILT - MATURITY) * SUBSIDY;

/// A node on a prebuilt chain whose rewards all went to a new wallet.
fn funded_node(name: &str, options: NodeOptions) -> (TestNode, TestWallet) {
    let wallet = TestWallet::new();
    let mut node = TestNode::new(name);
    prebuild_chain(&node.datadir(), &wallet.address, PREBUILT);
    node.start(options);
    (node, wallet)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The output for people of a command that must succeed.
fn readable(node: &TestNode, args: &[&str]) -> String {
    let output = node.cli(args);
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "ourcoin-cli {args:?}: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let out = stdout(&output);
    assert!(serde_json::from_str::<Value>(&out).is_err(), "without --json the output is for people: {out}");
    out
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(haystack.contains(needle), "expected {needle:?} in:\n{haystack}");
    }
}

/// Exactly these keys (SPEC §7's, plus the documented extras of the reply).
fn assert_keys(doc: &Value, keys: &[&str]) {
    let object = doc.as_object().unwrap_or_else(|| panic!("a JSON object: {doc}"));
    let found: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    let wanted: BTreeSet<&str> = keys.iter().copied().collect();
    assert!(wanted.is_subset(&found), "missing keys {:?} in {doc}", wanted.difference(&found).collect::<Vec<_>>());
}

fn strings(doc: &Value) -> Vec<String> {
    doc.as_array()
        .unwrap_or_else(|| panic!("a JSON list: {doc}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("a string: {v}")).to_string())
        .collect()
}

#[test]
fn every_command_prints_the_spec_fields_as_json_and_for_people() {
    let started = Instant::now();
    let (mut a, wa) = funded_node("A", NodeOptions::new());
    let wb = TestWallet::new();
    let b = TestNode::started("B", NodeOptions::new().bootstrap(a.multiaddr()));

    // wallet
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("new.json");
    let out = common::cli(&["--network", "regtest", "--wallet", common::path_str(&path), "wallet", "new"]);
    assert!(out.status.success(), "{out:?}");
    let created = stdout(&out);
    assert!(created.starts_with("roc1") && created.ends_with('\n') && created.lines().count() == 1, "{created:?}");
    let doc =
        common::cli_json(&["--network", "regtest", "--wallet", common::path_str(&path), "--json", "wallet", "address"]);
    assert_eq!(format!("{}\n", text(&doc, "address")), created);
    let doc = common::cli_json(&["--network", "regtest", "--wallet", wa.path(), "--json", "wallet", "address"]);
    assert_keys(&doc, &["address"]);
    assert_eq!(text(&doc, "address"), wa.address);
    let out = common::cli(&["--network", "regtest", "--wallet", wa.path(), "wallet", "address"]);
    assert_eq!(stdout(&out), format!("{}\n", wa.address));

    // status
    wait_until("A counts B among its peers", DEADLINE, || a.json(&["status"])["peers"] == 1);
    let status = a.status();
    assert_keys(&status, &["network", "peer_id", "listen_addrs", "height", "tip", "peers", "mempool", "mining"]);
    assert_eq!(text(&status, "network"), "regtest");
    assert_eq!(text(&status, "peer_id"), a.peer_id());
    assert!(strings(&status["listen_addrs"]).contains(&a.multiaddr().to_string()), "{status}");
    assert_eq!(uint(&status, "height"), PREBUILT);
    assert!(is_hash(&status["tip"]), "{status}");
    assert_eq!((uint(&status, "peers"), uint(&status, "mempool")), (1, 0));
    assert_eq!(status["mining"], false);
    let tip = text(&status, "tip").to_string();
    let out = readable(&a, &["status"]);
    assert_contains(&out, &["regtest", a.peer_id(), a.multiaddr(), &tip, &PREBUILT.to_string()]);

    // peers
    let peers = a.json(&["peers"]);
    let list = peers.as_array().unwrap_or_else(|| panic!("`peers` is a JSON list: {peers}"));
    assert_eq!(list.len(), 1, "{peers}");
    assert_keys(&list[0], &["peer_id", "addrs"]);
    assert_eq!(text(&list[0], "peer_id"), b.peer_id());
    assert!(!strings(&list[0]["addrs"]).is_empty(), "{peers}");
    assert_contains(&readable(&a, &["peers"]), &[b.peer_id()]);

    // balance
    let balance = a.balance(&wa.address);
    assert_keys(&balance, &["address", "confirmed", "immature", "pending", "nonce", "next_nonce"]);
    assert_eq!(text(&balance, "address"), wa.address);
    assert_eq!(
        [&balance["confirmed"], &balance["immature"], &balance["pending"], &balance["nonce"], &balance["next_nonce"]],
        [FUNDED, MATURITY * SUBSIDY, FUNDED, 0, 0].map(Value::from).each_ref(),
        "{balance}"
    );
    // The wallet's own balance when no address is given: its sums, and each address.
    let whole = a.json(&["--wallet", wa.path(), "balance"]);
    assert_keys(&whole, &["confirmed", "immature", "pending", "addresses"]);
    assert_eq!(
        [&whole["confirmed"], &whole["immature"], &whole["pending"]],
        [&balance["confirmed"], &balance["immature"], &balance["pending"]]
    );
    assert_eq!(whole["addresses"].as_array().map(Vec::len), Some(1), "{whole}");
    assert_keys(&whole["addresses"][0], &["address", "confirmed", "immature", "pending"]);
    assert_eq!(text(&whole["addresses"][0], "address"), wa.address);
    let out = readable(&a, &["balance", &wa.address]);
    assert_contains(&out, &[&wa.address, "100 OUR", "500 OUR"]);

    // block, by height and by hash, without payments
    let block = a.json(&["block", &PREBUILT.to_string()]);
    assert_keys(&block, &["hash", "height", "prev", "time", "target", "nonce", "txids", "aggregate_signature"]);
    assert_eq!(text(&block, "hash"), tip);
    assert_eq!(uint(&block, "height"), PREBUILT);
    assert_eq!(block["prev"], a.json(&["block", &(PREBUILT - 1).to_string()])["hash"]);
    assert!(is_hash(&block["prev"]) && is_hash(&block["target"]), "{block}");
    uint(&block, "time");
    uint(&block, "nonce");
    let txids = strings(&block["txids"]);
    assert_eq!(txids.len(), 1, "only the coinbase: {block}");
    assert!(is_hash(&block["txids"][0]));
    assert!(block["aggregate_signature"].is_null(), "no payments, no signature: {block}");
    assert_eq!(a.json(&["block", &tip]), block);
    let out = readable(&a, &["block", &tip]);
    assert_contains(&out, &[&tip, text(&block, "prev"), text(&block, "target"), &txids[0], "none"]);

    // tx: a coinbase
    let coinbase = a.json(&["tx", &txids[0]]);
    assert_keys(&coinbase, &["txid", "from", "to", "amount", "fee", "nonce", "height"]);
    assert_eq!(text(&coinbase, "txid"), txids[0]);
    assert!(coinbase["from"].is_null() && coinbase["nonce"].is_null(), "a coinbase: {coinbase}");
    assert_eq!(text(&coinbase, "to"), wa.address);
    assert_eq!((uint(&coinbase, "amount"), uint(&coinbase, "fee"), uint(&coinbase, "height")), (SUBSIDY, 0, PREBUILT));
    assert_contains(&readable(&a, &["tx", &txids[0]]), &[&txids[0], &wa.address, "50 OUR"]);

    // send, as JSON and for people; both payments stay pending (nobody mines)
    let big = a.json(&["--wallet", wa.path(), "send", "--to", &wb.address, "--amount", "12.5"]);
    assert_keys(&big, &["txid", "from", "fee"]);
    assert_eq!((text(&big, "from"), uint(&big, "fee")), (wa.address.as_str(), DEFAULT_FEE));
    assert!(is_hash(&big["txid"]), "{big}");
    let big = text(&big, "txid").to_string();
    let out = readable(&a, &["--wallet", wa.path(), "send", "--to", &wb.address, "--amount", "1", "--fee", "0.001"]);
    let small = out.trim_end().to_string();
    assert!(is_hash(&Value::from(small.as_str())), "send prints the txid: {out:?}");
    let (big_units, small_units, small_fee) = (1_250_000_000, COIN, 100_000);

    let pending = a.json(&["tx", &big]);
    assert_keys(&pending, &["txid", "from", "to", "amount", "fee", "nonce", "height"]);
    assert_eq!((text(&pending, "from"), text(&pending, "to")), (wa.address.as_str(), wb.address.as_str()));
    assert_eq!((uint(&pending, "amount"), uint(&pending, "fee"), uint(&pending, "nonce")), (big_units, DEFAULT_FEE, 0));
    assert!(pending["height"].is_null(), "pending: {pending}");
    assert_eq!(uint(&a.json(&["tx", &small]), "nonce"), 1);
    assert_contains(&readable(&a, &["tx", &big]), &[&big, "12.5 OUR", "0.0001 OUR", "pending"]);

    // mempool
    let mempool = a.json(&["mempool"]);
    assert_keys(&mempool, &["count", "bytes", "min_fee", "txids"]);
    assert!(uint(&mempool, "bytes") > 0 && uint(&mempool, "min_fee") == 1_000, "{mempool}");
    assert_eq!(uint(&mempool, "count"), 2);
    let listed: BTreeSet<String> = strings(&mempool["txids"]).into_iter().collect();
    assert_eq!(listed, [big.clone(), small.clone()].into_iter().collect(), "{mempool}");
    let limited = a.json(&["mempool", "--limit", "1"]);
    assert_eq!((uint(&limited, "count"), strings(&limited["txids"]).len()), (2, 1), "{limited}");
    assert_contains(&readable(&a, &["mempool"]), &["2", &big, &small]);

    // balances and history with pending payments
    let balance = a.balance(&wa.address);
    assert_eq!(uint(&balance, "confirmed"), FUNDED);
    assert_eq!(uint(&balance, "pending"), FUNDED - big_units - DEFAULT_FEE - small_units - small_fee, "{balance}");
    assert_eq!((uint(&balance, "nonce"), uint(&balance, "next_nonce")), (0, 2), "{balance}");
    let balance = a.balance(&wb.address);
    assert_eq!((uint(&balance, "confirmed"), uint(&balance, "pending")), (0, big_units + small_units), "{balance}");

    let history = a.history(&wb.address);
    assert_keys(&history, &["address", "transactions"]);
    assert_eq!(text(&history, "address"), wb.address);
    let entries = history["transactions"].as_array().expect("a list");
    assert_eq!(entries.len(), 2, "{history}");
    for entry in entries {
        assert_keys(entry, &["txid", "from", "to", "amount", "fee", "height", "confirmations"]);
        assert!(entry["height"].is_null() && entry["confirmations"] == 0, "pending: {entry}");
    }
    assert_eq!([text(&entries[0], "txid"), text(&entries[1], "txid")], [small.as_str(), big.as_str()], "newest first");
    assert_contains(&readable(&a, &["history", &wb.address]), &["pending", "received", "+12.5 OUR", "+1 OUR", &big]);

    // The sender's history: its two pending payments, then every mining
    // reward, newest first; `--limit` cuts it.
    let history = a.json(&["--wallet", wa.path(), "history"]);
    assert!(history["address"].is_null(), "the whole wallet's history: {history}");
    let entries = history["transactions"].as_array().expect("a list");
    assert_eq!(entries.len() as u64, 2 + PREBUILT, "{history}");
    assert_eq!([&entries[0]["txid"], &entries[1]["txid"]], [small.as_str(), big.as_str()], "pending first");
    for (entry, height) in entries[2..].iter().zip((1..=PREBUILT).rev()) {
        assert!(entry["from"].is_null(), "a mining reward: {entry}");
        assert_eq!((uint(entry, "amount"), uint(entry, "fee"), uint(entry, "height")), (SUBSIDY, 0, height), "{entry}");
        assert_eq!(uint(entry, "confirmations"), PREBUILT - height + 1, "{entry}");
    }
    let limited = a.json(&["history", &wa.address, "--limit", "3"]);
    assert_eq!(limited["transactions"].as_array().map(|l| &l[..]), Some(&entries[..3]), "{limited}");
    assert_contains(&readable(&a, &["history", &wa.address]), &["sent", "-12.5 OUR", "reward", "+50 OUR"]);

    // The node saves its mempool on a clean stop and mines it after a restart.
    a.stop();
    a.start(NodeOptions::new().mining(&wa.address));
    let height = wait_for("both payments are mined", DEADLINE, || {
        let (h1, h2) = (a.tx_height(&big)?, a.tx_height(&small)?);
        (h1 == h2).then_some(h1)
    });
    let block = a.json(&["block", &height.to_string()]);
    let txids = strings(&block["txids"]);
    assert_eq!(txids.len(), 3, "coinbase and the two payments: {block}");
    assert!(a.json(&["tx", &txids[0]])["from"].is_null(), "the coinbase comes first: {block}");
    assert!(txids.contains(&big) && txids.contains(&small), "{block}");
    assert!(is_lower_hex(&block["aggregate_signature"], 192), "a 96-byte aggregate signature: {block}");
    let signature = text(&block, "aggregate_signature").to_string();
    assert_contains(&readable(&a, &["block", &height.to_string()]), &[&signature, &big, &small]);

    let confirmed = a.json(&["tx", &big]);
    assert_eq!(uint(&confirmed, "height"), height);
    assert_eq!(confirmed["block"], block["hash"]);
    assert!(uint(&confirmed, "confirmations") >= 1);
    let history = a.history(&wb.address);
    for entry in history["transactions"].as_array().expect("a list") {
        assert_eq!(uint(entry, "height"), height, "{entry}");
        assert!(uint(entry, "confirmations") >= 1, "{entry}");
    }
    assert_contains(&readable(&a, &["history", &wb.address]), &[&height.to_string(), "received", "+12.5 OUR"]);
    let balance = a.balance(&wb.address);
    assert_eq!(
        (uint(&balance, "confirmed"), uint(&balance, "pending")),
        (big_units + small_units, big_units + small_units)
    );
    assert_contains(&readable(&a, &["balance", &wb.address]), &["13.5 OUR"]);
    assert_eq!(uint(&a.json(&["mempool"]), "count"), 0);
    eprintln!("every_command_prints_the_spec_fields_as_json_and_for_people: {:.1?}", started.elapsed());
}

/// Failed the documented way: exit code 1, nothing on stdout, and one line
/// `error: ...` on stderr containing `reason`.
fn assert_refused(output: &Output, args: &[&str], reason: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "ourcoin-cli {args:?} exits 1; stderr: {stderr}");
    assert_eq!(stdout(output), "", "nothing on stdout after an error: ourcoin-cli {args:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr for ourcoin-cli {args:?}, got {stderr:?}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(reason), "expected {reason:?} in {stderr:?}");
}

#[test]
fn requests_the_node_cannot_satisfy_fail_with_one_line_and_no_output() {
    let started = Instant::now();
    let (a, wa) = funded_node("A", NodeOptions::new());
    let wb = TestWallet::new();
    let wc = TestWallet::new();
    let (unknown_hash, unknown_txid) = ("ab".repeat(32), "cd".repeat(32));

    // 60 coins leave 39.9999 pending: 39.9999 with the 0.0001 fee is too
    // much, 39.9998 with it is exactly enough.
    let first = a.send(&wa, &wb.address, "60");
    let wallet = ["--wallet", wa.path()];
    let cases: &[(&str, Vec<&str>, &str)] = &[
        (
            "more than the whole balance",
            [&wallet[..], &["send", "--to", &wb.address, "--amount", "150"]].concat(),
            "insufficient funds",
        ),
        (
            "more than is left pending",
            [&wallet[..], &["send", "--to", &wb.address, "--amount", "40"]].concat(),
            "insufficient funds",
        ),
        (
            "the amount fits but not with the fee",
            [&wallet[..], &["send", "--to", &wb.address, "--amount", "39.9999"]].concat(),
            "insufficient funds",
        ),
        (
            "the amount fits but not with a larger fee",
            [&wallet[..], &["send", "--to", &wb.address, "--amount", "39.99", "--fee", "0.01"]].concat(),
            "insufficient funds",
        ),
        (
            "a wallet with nothing at all",
            vec!["--wallet", wc.path(), "send", "--to", &wa.address, "--amount", "1"],
            "insufficient funds",
        ),
        // WB's `pending` counts the incoming 60 coins, so the CLI lets this
        // through; the node refuses it, as only confirmed money can be spent.
        (
            "money that is only pending incoming",
            vec!["--wallet", wb.path(), "send", "--to", &wa.address, "--amount", "1"],
            "transaction refused",
        ),
        ("an unknown block height", vec!["block", "999999"], "no block at height 999999"),
        ("the height after the tip", vec!["block", "13"], "no block at height 13"),
        ("an unknown block hash", vec!["block", &unknown_hash], "no block"),
        ("an unknown txid", vec!["tx", &unknown_txid], "no transaction"),
    ];

    let balance_before = a.balance(&wa.address);
    let mempool_before = a.json(&["mempool"]);
    assert_eq!(uint(&balance_before, "pending"), FUNDED - 60 * COIN - DEFAULT_FEE, "{balance_before}");
    for (case, args, reason) in cases {
        for json in [false, true] {
            let mut full: Vec<&str> = if json { vec!["--json"] } else { vec![] };
            full.extend(args.iter().copied());
            let output = a.cli(&full);
            assert_refused(&output, &full, reason);
            eprintln!("refused as expected ({case}): {}", String::from_utf8_lossy(&output.stderr).trim_end());
        }
    }
    // Nothing changed.
    assert_eq!(a.balance(&wa.address), balance_before);
    assert_eq!(a.json(&["mempool"]), mempool_before);

    // The last coin that fits is accepted: the refusals were not off by one.
    let last = a.send(&wa, &wb.address, "39.9998");
    let balance = a.balance(&wa.address);
    assert_eq!((uint(&balance, "pending"), uint(&balance, "next_nonce")), (0, 2), "{balance}");
    let mempool = a.json(&["mempool"]);
    assert_eq!(uint(&mempool, "count"), 2, "{mempool}");
    assert!(strings(&mempool["txids"]).contains(&first) && strings(&mempool["txids"]).contains(&last));
    assert_refused(
        &a.cli(&["--wallet", wa.path(), "send", "--to", &wb.address, "--amount", "0.00000001"]),
        &["send 0.00000001 with nothing left"],
        "insufficient funds",
    );
    eprintln!("requests_the_node_cannot_satisfy_fail_with_one_line_and_no_output: {:.1?}", started.elapsed());
}
