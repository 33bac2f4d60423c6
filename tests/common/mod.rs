//! The harness shared by the multi-node and end-to-end tests: real `ourcoind`
//! processes on 127.0.0.1 with free ports and temporary data directories, the
//! real `ourcoin-cli` to talk to them, and waits on conditions with deadlines
//! (never fixed sleeps).
//!
//! Every node started here is stopped when its [`TestNode`] is dropped, even
//! when the test panics: SIGTERM first, SIGKILL if it does not exit in time.
//! A failed wait names what it waited for, the last thing it observed and the
//! tail of every node's log started by the same test.

// Each test file uses its own part of the harness.
#![allow(dead_code)]

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const OURCOIND: &str = env!("CARGO_BIN_EXE_ourcoind");
pub const OURCOIN_CLI: &str = env!("CARGO_BIN_EXE_ourcoin-cli");

/// Base units per coin.
pub const COIN: u64 = 100_000_000;
/// The fee `ourcoin-cli send` pays unless told otherwise.
pub const DEFAULT_FEE: u64 = 10_000;
/// The block subsidy on regtest (before any halving).
pub const SUBSIDY: u64 = 50 * COIN;
/// Regtest's coinbase maturity: block h's reward is spendable at h + 10.
pub const MATURITY: u64 = 10;

/// How long a node may take to start listening, or to exit after SIGTERM.
const START_DEADLINE: Duration = Duration::from_secs(60);
const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// Time between two looks at a condition.
const POLL: Duration = Duration::from_millis(200);
/// Lines of each node's log shown when a wait fails.
const LOG_TAIL_LINES: usize = 25;

// ---- what a failing wait reports ------------------------------------------

thread_local! {
    /// The logs of the nodes this test (thread) has created: (name, path).
    static LOGS: RefCell<Vec<(String, PathBuf)>> = const { RefCell::new(Vec::new()) };
    /// The last state a condition looked at.
    static OBSERVED: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records what a condition last saw; a failed wait prints it. Every CLI call
/// made through the harness records its command and its output by itself.
pub fn observe(state: impl Into<String>) {
    let mut state = state.into();
    if state.len() > 2_000 {
        let mut cut = 2_000;
        while !state.is_char_boundary(cut) {
            cut -= 1;
        }
        state.truncate(cut);
        state.push_str(" [...]");
    }
    OBSERVED.with(|o| *o.borrow_mut() = state);
}

fn last_observed() -> String {
    OBSERVED.with(|o| o.borrow().clone())
}

/// The last `lines` lines of a node's log, leaving out the connections of
/// `ourcoin-cli` (a "peer connected" line followed at once by the same peer's
/// "peer disconnected"), which would drown everything else.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).lines().map(strip_ansi).collect::<Vec<_>>(),
        Err(e) => return format!("(cannot read {}: {e})", path.display()),
    };
    let peer_of = |line: &str, event: &str| -> Option<String> {
        let rest = &line[line.find(event)? + event.len()..];
        Some(rest.trim_start().strip_prefix("peer=")?.split_whitespace().next()?.to_string())
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut index = 0;
    while index < text.len() {
        let line = &text[index];
        if let (Some(peer), Some(next)) = (peer_of(line, "peer connected"), text.get(index + 1)) {
            if peer_of(next, "peer disconnected").as_ref() == Some(&peer) {
                index += 2;
                continue;
            }
        }
        kept.push(line);
        index += 1;
    }
    kept[kept.len().saturating_sub(lines)..].join("\n")
}

fn logs_report() -> String {
    LOGS.with(|logs| {
        logs.borrow()
            .iter()
            .map(|(name, path)| {
                format!(
                    "---- last lines of node {name}'s log ({}) ----\n{}\n",
                    path.display(),
                    tail(path, LOG_TAIL_LINES)
                )
            })
            .collect()
    })
}

/// Polls `condition` every ~200 ms until it holds; past `deadline`, panics
/// with `what`, the last observed state and the tail of each node's log.
pub fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    wait_for(what, deadline, || condition().then_some(()));
}

/// Like [`wait_until`], for a condition that yields a value once it holds.
pub fn wait_for<T>(what: &str, deadline: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    observe("(nothing observed yet)");
    loop {
        if let Some(value) = condition() {
            return value;
        }
        if started.elapsed() > deadline {
            panic!(
                "timed out after {:.0?} waiting for: {what}\nlast observed: {}\n{}",
                started.elapsed(),
                last_observed(),
                logs_report()
            );
        }
        std::thread::sleep(POLL);
    }
}

// ---- small helpers ----------------------------------------------------------

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// `text` is a hash or key as the CLI prints it: 64 lowercase hex digits.
pub fn is_hash(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// Lowercase hex of any even length.
pub fn is_lower_hex(value: &Value, len: usize) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// The value of `key` in `doc`, which must be an unsigned integer.
pub fn uint(doc: &Value, key: &str) -> u64 {
    doc.get(key).and_then(Value::as_u64).unwrap_or_else(|| panic!("`{key}` is not an unsigned integer in {doc}"))
}

/// The value of `key` in `doc`, which must be a string.
pub fn text<'a>(doc: &'a Value, key: &str) -> &'a str {
    doc.get(key).and_then(Value::as_str).unwrap_or_else(|| panic!("`{key}` is not a string in {doc}"))
}

/// Removes ANSI colour sequences (in case a log is coloured after all).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

// ---- the CLI ----------------------------------------------------------------

/// Runs `ourcoin-cli` with `args` as given (no implied flags) and records
/// the call as the last observed state.
pub fn cli(args: &[&str]) -> Output {
    let output = Command::new(OURCOIN_CLI)
        .args(args)
        .env_remove("OURCOIN_NODE")
        .env_remove("OURCOIN_WALLET")
        .stdin(Stdio::null())
        .output()
        .expect("run ourcoin-cli");
    observe(format!(
        "ourcoin-cli {} -> {}\nstdout: {}\nstderr: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout).trim_end(),
        String::from_utf8_lossy(&output.stderr).trim_end()
    ));
    output
}

/// The JSON document of a successful `ourcoin-cli` run, or why there is none.
pub fn try_cli_json(args: &[&str]) -> Result<Value, String> {
    let output = cli(args);
    if !output.status.success() {
        return Err(format!(
            "ourcoin-cli {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "ourcoin-cli {}: stdout is not one JSON document ({e}): {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The JSON document of an `ourcoin-cli` run that must succeed.
pub fn cli_json(args: &[&str]) -> Value {
    try_cli_json(args).unwrap_or_else(|e| panic!("{e}\n{}", logs_report()))
}

/// A wallet file made by `ourcoin-cli wallet new`, in its own directory.
pub struct TestWallet {
    _dir: TempDir,
    pub path: PathBuf,
    pub address: String,
}

impl TestWallet {
    pub fn new() -> TestWallet {
        let dir = tempfile::tempdir().expect("temp dir for a wallet");
        let path = dir.path().join("wallet.json");
        let doc = cli_json(&["--network", "regtest", "--wallet", path_str(&path), "--json", "wallet", "new"]);
        let address = text(&doc, "address").to_string();
        assert!(address.starts_with("roc1"), "a regtest address: {address}");
        TestWallet { _dir: dir, path, address }
    }

    pub fn path(&self) -> &str {
        path_str(&self.path)
    }
}

impl Default for TestWallet {
    fn default() -> TestWallet {
        TestWallet::new()
    }
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

// ---- chains built with the library ------------------------------------------

/// Writes a regtest chain of `blocks` blocks, every reward paid to `miner`,
/// into `datadir/chain`, the way a node would have stored it. Block times
/// are one second apart after the genesis (in the past, which is fine).
pub fn prebuild_chain(datadir: &Path, miner: &str, blocks: u64) {
    use ourcoin::chain::Chain;
    use ourcoin::store::SledStore;
    use ourcoin::types::{Address, Network};

    let miner = Address::parse(miner, Network::Regtest).expect("a regtest address");
    std::fs::create_dir_all(datadir).expect("create the datadir");
    let store = SledStore::open(&datadir.join("chain")).expect("open the chain database");
    let mut chain = Chain::open(ourcoin::testkit::regtest(), store).expect("open the chain");
    for _ in 0..blocks {
        ourcoin::testkit::extend(&mut chain, miner, &[]).expect("extend the chain");
    }
    assert_eq!(chain.height(), blocks);
    chain.flush().expect("flush the chain");
}

/// The height, tip and cumulative work (64 hex digits, as `status` prints
/// it) of the chain stored in a stopped node's datadir, read with the library.
pub fn stored_chain(datadir: &Path) -> (u64, String, String) {
    use ourcoin::chain::Chain;
    use ourcoin::store::SledStore;

    let store = SledStore::open(&datadir.join("chain")).expect("open the chain database of a stopped node");
    let chain = Chain::open(ourcoin::testkit::regtest(), store).expect("open the chain");
    (chain.height(), chain.tip().to_string(), hex::encode(chain.tip_work().to_be_bytes()))
}

// ---- nodes ------------------------------------------------------------------

/// How to start a node.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    pub mine_to: Option<String>,
    pub bootstrap: Vec<String>,
    pub extra_args: Vec<String>,
}

impl NodeOptions {
    pub fn new() -> NodeOptions {
        NodeOptions::default()
    }

    /// Mine, paying `address`.
    pub fn mining(mut self, address: &str) -> NodeOptions {
        self.mine_to = Some(address.to_string());
        self
    }

    /// Dial `multiaddr` (with `/p2p/<peer id>`) at start.
    pub fn bootstrap(mut self, multiaddr: &str) -> NodeOptions {
        self.bootstrap.push(multiaddr.to_string());
        self
    }

    pub fn arg(mut self, arg: &str) -> NodeOptions {
        self.extra_args.push(arg.to_string());
        self
    }
}

/// One `ourcoind` on 127.0.0.1, with its own temporary directory holding
/// `data/` (the datadir) and `node.log` (stderr of every run, appended).
pub struct TestNode {
    name: String,
    dir: TempDir,
    port: u16,
    options: NodeOptions,
    child: Option<Child>,
    runs: u32,
    peer_id: Option<String>,
    multiaddr: Option<String>,
}

impl TestNode {
    /// A node that is not started yet: its datadir can be prepared first.
    pub fn new(name: &str) -> TestNode {
        let dir = tempfile::Builder::new().prefix(&format!("ourcoin-{name}-")).tempdir().expect("temp dir for a node");
        let node = TestNode {
            name: name.to_string(),
            dir,
            port: free_port(),
            options: NodeOptions::default(),
            child: None,
            runs: 0,
            peer_id: None,
            multiaddr: None,
        };
        let log = node.log_path();
        LOGS.with(|logs| logs.borrow_mut().push((node.name.clone(), log)));
        node
    }

    /// A node started with `options`, listening.
    pub fn started(name: &str, options: NodeOptions) -> TestNode {
        let mut node = TestNode::new(name);
        node.start(options);
        node
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn datadir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("node.log")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `/ip4/127.0.0.1/tcp/<port>`: what `ourcoin-cli --node` takes.
    pub fn addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.port)
    }

    /// The peer id the current (or last) run logged.
    pub fn peer_id(&self) -> &str {
        self.peer_id.as_deref().expect("the node has been started")
    }

    /// The full listen multiaddr the current (or last) run logged, for `--bootstrap`.
    pub fn multiaddr(&self) -> &str {
        self.multiaddr.as_deref().expect("the node has been started")
    }

    /// Waits for the node to exit by itself; its exit status.
    pub fn exited_within(&mut self, deadline: Duration) -> ExitStatus {
        self.wait_exit(deadline).unwrap_or_else(|| {
            panic!("node {} did not exit within {deadline:?}:\n{}", self.name, tail(&self.log_path(), LOG_TAIL_LINES))
        })
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Starts the node with `options` (remembered for [`TestNode::restart`])
    /// and waits until it logs its listen address.
    pub fn start(&mut self, options: NodeOptions) {
        assert!(self.child.is_none(), "node {} is already running", self.name);
        self.options = options;
        self.runs += 1;
        let log_path = self.log_path();
        let mut log = OpenOptions::new().create(true).append(true).open(&log_path).expect("open the node log");
        let run_start = log.metadata().map(|m| m.len()).unwrap_or(0);

        let datadir = self.datadir();
        let listen = self.addr();
        let mut args: Vec<String> = vec![
            "--network".into(),
            "regtest".into(),
            "--datadir".into(),
            path_str(&datadir).into(),
            "--listen".into(),
            listen,
            "--log".into(),
            "info".into(),
        ];
        for addr in &self.options.bootstrap {
            args.push("--bootstrap".into());
            args.push(addr.clone());
        }
        if let Some(address) = &self.options.mine_to {
            args.push("--mine".into());
            args.push("--miner-address".into());
            args.push(address.clone());
        }
        args.extend(self.options.extra_args.iter().cloned());
        writeln!(log, "==== harness: run {} of node {}: ourcoind {}", self.runs, self.name, args.join(" "))
            .expect("write the node log");

        let child = Command::new(OURCOIND)
            .args(&args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ourcoind");
        self.child = Some(child);

        // SPEC §6: each listen address is logged as a complete multiaddr
        // ending in `/p2p/<peer id>`.
        let wanted = format!("{}/p2p/", self.addr());
        let started = Instant::now();
        let multiaddr = loop {
            let found = self.run_log(run_start).lines().find_map(|line| {
                let at = line.find(&wanted)?;
                line[at..].split_whitespace().next().map(str::to_string)
            });
            if let Some(multiaddr) = found {
                break multiaddr;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                panic!("node {} exited at start ({status}):\n{}", self.name, tail(&log_path, LOG_TAIL_LINES));
            }
            if started.elapsed() > START_DEADLINE {
                panic!("node {} did not log `{wanted}` within {START_DEADLINE:?}:\n{}", self.name, tail(&log_path, 40));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let peer_id = multiaddr.rsplit("/p2p/").next().unwrap_or_default().to_string();
        assert!(peer_id.starts_with("12D3KooW"), "a peer id in {multiaddr:?}");
        self.peer_id = Some(peer_id);
        self.multiaddr = Some(multiaddr);
    }

    /// Starts the node again with the options of its last start, on the same
    /// datadir and port.
    pub fn restart(&mut self) {
        let options = self.options.clone();
        self.start(options);
    }

    /// The log text written since byte `from`, colour codes removed.
    fn run_log(&self, from: u64) -> String {
        let bytes = std::fs::read(self.log_path()).unwrap_or_default();
        let from = (from as usize).min(bytes.len());
        String::from_utf8_lossy(&bytes[from..]).lines().map(strip_ansi).collect::<Vec<_>>().join("\n")
    }

    /// The whole log (every run), colour codes removed.
    pub fn log(&self) -> String {
        self.run_log(0)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("the node is running").id()
    }

    fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            match self.child.as_mut()?.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return Some(status);
                }
                Ok(None) if started.elapsed() < deadline => std::thread::sleep(Duration::from_millis(50)),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Sends SIGTERM; whether it was delivered.
    fn sigterm(&self) -> bool {
        Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().is_ok_and(|s| s.success())
    }

    fn sigkill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.child = None;
    }

    /// SIGTERM, then waits for the exit, which must be clean (code 0).
    pub fn stop(&mut self) {
        assert!(self.sigterm(), "cannot send SIGTERM to node {}", self.name);
        match self.wait_exit(STOP_DEADLINE) {
            Some(status) => assert_eq!(
                status.code(),
                Some(0),
                "node {} did not stop cleanly on SIGTERM ({status}):\n{}",
                self.name,
                tail(&self.log_path(), LOG_TAIL_LINES)
            ),
            None => {
                self.sigkill();
                panic!(
                    "node {} did not exit within {STOP_DEADLINE:?} of SIGTERM:\n{}",
                    self.name,
                    tail(&self.log_path(), LOG_TAIL_LINES)
                );
            }
        }
    }

    /// `kill -9`: no chance to flush or save anything.
    pub fn kill(&mut self) {
        assert!(self.child.is_some(), "node {} is not running", self.name);
        self.sigkill();
    }

    // ---- asking the node ----------------------------------------------------

    /// `ourcoin-cli --network regtest --node <this node> ARGS`.
    pub fn cli(&self, args: &[&str]) -> Output {
        let addr = self.addr();
        let mut full = vec!["--network", "regtest", "--node", &addr];
        full.extend_from_slice(args);
        cli(&full)
    }

    /// The same with `--json`; `Err` says why there is no document.
    pub fn try_json(&self, args: &[&str]) -> Result<Value, String> {
        let addr = self.addr();
        let mut full = vec!["--network", "regtest", "--node", &addr, "--json"];
        full.extend_from_slice(args);
        try_cli_json(&full)
    }

    /// The same with `--json`, which must succeed.
    pub fn json(&self, args: &[&str]) -> Value {
        self.try_json(args).unwrap_or_else(|e| panic!("node {}: {e}\n{}", self.name, logs_report()))
    }

    pub fn status(&self) -> Value {
        self.json(&["status"])
    }

    /// The height, or `None` when the node does not answer.
    pub fn try_height(&self) -> Option<u64> {
        self.try_json(&["status"]).ok().and_then(|s| s.get("height").and_then(Value::as_u64))
    }

    pub fn height(&self) -> u64 {
        uint(&self.status(), "height")
    }

    pub fn tip(&self) -> String {
        text(&self.status(), "tip").to_string()
    }

    pub fn balance(&self, address: &str) -> Value {
        self.json(&["balance", address])
    }

    pub fn history(&self, address: &str) -> Value {
        self.json(&["history", address, "--limit", "10000"])
    }

    /// The ids of the connected peers.
    pub fn peer_ids(&self) -> Vec<String> {
        let peers = self.json(&["peers"]);
        peers
            .as_array()
            .unwrap_or_else(|| panic!("`peers` is a JSON list: {peers}"))
            .iter()
            .map(|p| text(p, "peer_id").to_string())
            .collect()
    }

    /// `tx TXID`, or `None` when the node does not know it.
    pub fn try_tx(&self, txid: &str) -> Option<Value> {
        self.try_json(&["tx", txid]).ok()
    }

    /// The height of a confirmed transaction; `None` while pending or unknown.
    pub fn tx_height(&self, txid: &str) -> Option<u64> {
        self.try_tx(txid).and_then(|t| t.get("height").and_then(Value::as_u64))
    }

    /// Signs with `wallet` and submits through this node; the txid.
    pub fn send(&self, wallet: &TestWallet, to: &str, amount: &str) -> String {
        let reply = self.json(&["--wallet", wallet.path(), "send", "--to", to, "--amount", amount]);
        let txid = text(&reply, "txid").to_string();
        assert!(is_hash(&reply["txid"]), "a txid of 64 lowercase hex digits: {reply}");
        txid
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if self.child.is_some() && (!self.sigterm() || self.wait_exit(Duration::from_secs(10)).is_none()) {
            self.sigkill();
        }
        if std::thread::panicking() {
            // Keep the datadir and the whole log for a look after the failure.
            self.dir.disable_cleanup(true);
            eprintln!(
                "---- node {}'s log ({}) ----\n{}",
                self.name,
                self.log_path().display(),
                tail(&self.log_path(), 60)
            );
        }
        let log = self.log_path();
        LOGS.with(|logs| logs.borrow_mut().retain(|(_, path)| *path != log));
    }
}

/// Runs `query` on every node when they all have the same tip, then reads
/// their tips again: the first node's status and the answers if nothing moved
/// in between, else `None` (poll it with [`wait_for`]). Lets tests compare
/// values that change with every block, such as a miner's balance.
pub fn at_common_tip<T>(nodes: &[&TestNode], mut query: impl FnMut(&TestNode) -> T) -> Option<(Value, Vec<T>)> {
    let statuses =
        |nodes: &[&TestNode]| -> Option<Vec<Value>> { nodes.iter().map(|n| n.try_json(&["status"]).ok()).collect() };
    let tips = |statuses: &[Value]| -> Vec<String> { statuses.iter().map(|s| text(s, "tip").to_string()).collect() };
    let before = statuses(nodes)?;
    let before_tips = tips(&before);
    if before_tips.iter().any(|t| *t != before_tips[0]) {
        observe(format!("tips differ: {before_tips:?}"));
        return None;
    }
    let answers: Vec<T> = nodes.iter().map(|n| query(n)).collect();
    let after_tips = tips(&statuses(nodes)?);
    if after_tips != before_tips {
        observe(format!("the tip moved while asking: {before_tips:?} -> {after_tips:?}"));
        return None;
    }
    let first = before.into_iter().next()?;
    Some((first, answers))
}

/// A history's entries without `confirmations` (which grows with the tip).
pub fn history_entries(history: &Value) -> Vec<Value> {
    history["transactions"]
        .as_array()
        .unwrap_or_else(|| panic!("`transactions` is a list: {history}"))
        .iter()
        .map(|entry| {
            let mut entry = entry.clone();
            if let Some(map) = entry.as_object_mut() {
                map.remove("confirmations");
            }
            entry
        })
        .collect()
}

// ---- reading a log line by line ---------------------------------------------

impl TestNode {
    /// The complete lines of the node's log (every run), colour codes removed.
    /// A line still being written is left out, so `log_lines().len()` is a
    /// stable mark: the lines after it are exactly those written since.
    pub fn log_lines(&self) -> Vec<String> {
        let bytes = std::fs::read(self.log_path()).unwrap_or_default();
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |at| at + 1);
        String::from_utf8_lossy(&bytes[..complete]).lines().map(strip_ansi).collect()
    }
}

/// Removes the address book of a stopped node, so it remembers nobody.
pub fn forget_peers(node: &TestNode) {
    let path = node.datadir().join("addrbook.dat");
    assert!(path.exists(), "node {} saved its address book on a clean stop: {}", node.name(), path.display());
    std::fs::remove_file(&path).expect("remove addrbook.dat");
}

/// A peer on the node's own libp2p stack, listening on 127.0.0.1, for tests
/// that play a peer by hand: its runtime (with the event loop running on it),
/// its client and its events.
pub fn test_peer(who: &str) -> (tokio::runtime::Runtime, ourcoin::network::Client, ourcoin::network::NetworkEvents) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a tokio runtime for {who}: {e}"));
    let config = ourcoin::network::event_loop::NetworkConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddr")],
        // A peer played by hand dials whom the test says, and nobody else.
        limits: ourcoin::network::peer_set::Limits { max_connections: 125, outbound_target: 0 },
        ..Default::default()
    };
    let key = libp2p::identity::Keypair::generate_ed25519();
    let (client, events, event_loop) = {
        let _entered = runtime.enter();
        ourcoin::network::event_loop::new(key, ourcoin::testkit::regtest(), config)
            .unwrap_or_else(|e| panic!("{who}'s network: {e}"))
    };
    runtime.spawn(event_loop.run());
    (runtime, client, events)
}
