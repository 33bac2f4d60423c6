//! `ourcoin-cli` through the built binary, for everything that needs no
//! running node: the wallet file, the refusal of bad input before anything is
//! touched, and a prompt report of an unreachable node.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ourcoin::types::{Address, Network};

const CLI: &str = env!("CARGO_BIN_EXE_ourcoin-cli");

/// A private HOME, so defaults never touch the real `~/.ourcoin`.
struct Sandbox {
    home: tempfile::TempDir,
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox { home: tempfile::tempdir().expect("temp dir") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Outcome {
        self.run_with_env(args, &[])
    }

    fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let started = Instant::now();
        let mut command = Command::new(CLI);
        command.args(args).env("HOME", self.home.path()).env_remove("OURCOIN_NODE").env_remove("OURCOIN_WALLET");
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().expect("run ourcoin-cli");
        Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }
}

impl Outcome {
    fn succeeded(&self) -> &Outcome {
        assert_eq!(self.code, Some(0), "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        assert_eq!(self.stderr, "", "a success writes nothing on stderr");
        self
    }

    /// `wallet new` for people: the address on stdout, the recovery phrase
    /// and its warning on stderr.
    fn created(&self) -> &Outcome {
        assert_eq!(self.code, Some(0), "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        assert!(self.stderr.contains("Whoever has them has the coins"), "{}", self.stderr);
        self
    }

    /// Failed the documented way: exit 1, nothing on stdout, and exactly one
    /// `error: ...` line on stderr that contains `reason`.
    fn refused(&self, reason: &str) -> &Outcome {
        assert_eq!(self.code, Some(1), "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        assert_eq!(self.stdout, "", "nothing on stdout after an error");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr, got {:?}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{:?}", self.stderr);
        assert!(lines[0].contains(reason), "expected {reason:?} in {:?}", self.stderr);
        self
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).expect("stdout is one JSON document")
    }
}

/// A loopback port that nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr").port()
}

fn unreachable_node() -> String {
    format!("/ip4/127.0.0.1/tcp/{}", closed_port())
}

fn regtest_address(byte: u8) -> String {
    Address([byte; 20]).encode(Network::Regtest)
}

/// `text` with one character of its data part changed to another valid one.
fn one_char_changed(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let at = chars.len() - 10;
    chars[at] = if chars[at] == 'q' { 'p' } else { 'q' };
    chars.into_iter().collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("wallet file").permissions().mode() & 0o777
}

#[test]
fn wallet_new_creates_a_private_file_and_never_overwrites_it() {
    let sandbox = Sandbox::new();
    let wallet = sandbox.path("w/wallet.json");
    let wallet_arg = wallet.to_str().expect("utf-8 path");

    let created = sandbox.run(&["--network", "regtest", "--wallet", wallet_arg, "--json", "wallet", "new"]);
    let address = created.succeeded().json()["address"].as_str().expect("address").to_string();
    assert!(address.starts_with("roc1"), "{address}");
    #[cfg(unix)]
    assert_eq!(mode(&wallet), 0o600);
    let before = std::fs::read(&wallet).expect("wallet file");

    sandbox.run(&["--network", "regtest", "--wallet", wallet_arg, "wallet", "new"]).refused("already exists");
    assert_eq!(std::fs::read(&wallet).expect("wallet file"), before, "the wallet file is untouched");

    // Global flags after the subcommand, JSON and plain.
    let shown = sandbox.run(&["wallet", "address", "--wallet", wallet_arg, "--network", "regtest", "--json"]);
    assert_eq!(shown.succeeded().json()["address"], address.as_str());
    let plain = sandbox.run(&["wallet", "address", "--wallet", wallet_arg, "--network", "regtest"]);
    assert_eq!(plain.succeeded().stdout, format!("{address}\n"));
}

#[test]
fn the_wallet_defaults_to_the_home_folder_and_follows_the_environment() {
    let sandbox = Sandbox::new();
    let created = sandbox.run(&["--network", "regtest", "--json", "wallet", "new"]);
    let address = created.succeeded().json()["address"].as_str().expect("address").to_string();
    let default = sandbox.home.path().join(".ourcoin/regtest/wallet.json");
    assert!(default.exists(), "wallet at {}", default.display());

    let elsewhere = sandbox.path("env-wallet.json");
    let elsewhere_arg = elsewhere.to_str().expect("utf-8 path");
    let from_env =
        sandbox.run_with_env(&["--network", "regtest", "wallet", "new"], &[("OURCOIN_WALLET", elsewhere_arg)]);
    assert!(elsewhere.exists());
    assert_ne!(from_env.created().stdout.trim(), address);
}

#[test]
fn a_wallet_of_another_network_or_none_at_all_is_refused() {
    let sandbox = Sandbox::new();
    let wallet = sandbox.path("wallet.json");
    let wallet_arg = wallet.to_str().expect("utf-8 path");
    sandbox.run(&["--network", "regtest", "--wallet", wallet_arg, "wallet", "new"]).created();
    sandbox.run(&["--network", "main", "--wallet", wallet_arg, "wallet", "address"]).refused("regtest network");

    let missing = sandbox.path("missing.json");
    let missing_arg = missing.to_str().expect("utf-8 path");
    let node = unreachable_node();
    let to = regtest_address(7);
    for args in [
        vec!["wallet", "address"],
        vec!["balance"],
        vec!["history"],
        vec!["send", "--to", to.as_str(), "--amount", "1"],
    ] {
        let mut full = vec!["--network", "regtest", "--wallet", missing_arg, "--node", node.as_str()];
        full.extend(args);
        // The wallet is read before the node is asked, so this is about the file.
        sandbox.run(&full).refused("no wallet file");
    }
    assert!(!missing.exists(), "nothing is created by a refused command");
}

/// Bad input, each refused with its reason before the wallet is read or the
/// node is asked: the wallet file does not exist and the node is unreachable,
/// so any other error would mean the input was not checked first.
#[test]
fn bad_input_is_refused_before_anything_else() {
    let sandbox = Sandbox::new();
    let missing = sandbox.path("missing.json");
    let missing_arg = missing.to_str().expect("utf-8 path");
    let node = unreachable_node();
    let good = regtest_address(7);
    let typo = one_char_changed(&good);
    let main_address = Address([7; 20]).encode(Network::Main);
    let short_hash = "ab".repeat(31) + "a";

    let send = |to: &str, amount: &str, fee: Option<&str>| -> Vec<String> {
        let mut args = vec!["send".to_string(), "--to".into(), to.into(), "--amount".into(), amount.into()];
        if let Some(fee) = fee {
            args.extend(["--fee".to_string(), fee.to_string()]);
        }
        args
    };
    let words = |args: &[&str]| -> Vec<String> { args.iter().map(|a| a.to_string()).collect() };

    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("invalid address", send("notanaddress", "1", None), "not a valid address"),
        ("mistyped address", send(&typo, "1", None), "not a valid address"),
        ("another network's address", send(&main_address, "1", None), "main network"),
        ("amount without a leading digit", send(&good, ".5", None), "not an amount"),
        ("amount in exponent form", send(&good, "1e3", None), "not an amount"),
        ("negative amount", send(&good, "-1", None), "not an amount"),
        ("zero amount", send(&good, "0", None), "more than 0"),
        ("zero amount with decimals", send(&good, "0.00000000", None), "more than 0"),
        ("over-precise amount", send(&good, "1.123456789", None), "not an amount"),
        ("amount too large", send(&good, "999999999999999999999", None), "too large"),
        ("fee below the minimum", send(&good, "1", Some("0.000001")), "minimum relay fee"),
        ("zero fee", send(&good, "1", Some("0")), "minimum relay fee"),
        ("malformed fee", send(&good, "1", Some("abc")), "not an amount"),
        ("balance of an invalid address", words(&["balance", "notanaddress"]), "not a valid address"),
        ("history of a mistyped address", words(&["history", &typo]), "not a valid address"),
        ("block id that is neither", words(&["block", "xyz"]), "neither a block height nor a block hash"),
        ("block height with letters", words(&["block", "12ab"]), "neither a block height nor a block hash"),
        ("negative block height", words(&["block", "-1"]), "neither a block height nor a block hash"),
        ("block hash one digit short", words(&["block", &short_hash]), "neither a block height nor a block hash"),
        ("txid that is not hex", words(&["tx", "zz"]), "not a transaction id"),
        ("txid one digit short", words(&["tx", &short_hash]), "not a transaction id"),
        ("history limit of zero", words(&["history", &good, "--limit", "0"]), "--limit"),
    ];
    for (name, args, reason) in cases {
        let mut full: Vec<&str> = vec!["--network", "regtest", "--wallet", missing_arg, "--node", node.as_str()];
        full.extend(args.iter().map(String::as_str));
        eprintln!("case: {name}");
        sandbox.run(&full).refused(reason);
    }
}

#[test]
fn malformed_flags_and_commands_are_one_line_errors() {
    let sandbox = Sandbox::new();
    for (args, reason) in [
        (vec!["--network", "moon", "status"], "unknown network"),
        (vec!["--node", "not-a-multiaddr", "status"], "--node"),
        (vec!["frobnicate"], "frobnicate"),
        (vec![], "command"),
        (vec!["send", "--to", "x"], "--amount"),
    ] {
        sandbox.run(&args).refused(reason);
    }
    sandbox.run(&["--help"]).succeeded();
}

#[test]
fn an_unreachable_node_is_reported_within_seconds() {
    let sandbox = Sandbox::new();
    let node = unreachable_node();
    for json in [false, true] {
        let mut args = vec!["--network", "regtest", "--node", node.as_str(), "status"];
        if json {
            args.push("--json");
        }
        let outcome = sandbox.run(&args);
        outcome.refused("cannot reach the node").refused(&node);
        assert!(outcome.elapsed < Duration::from_secs(10), "took {:?}", outcome.elapsed);
    }
    // The environment names the node too.
    let outcome = sandbox.run_with_env(&["--network", "regtest", "peers"], &[("OURCOIN_NODE", node.as_str())]);
    outcome.refused(&node);
}

#[test]
fn an_encrypted_wallet_opens_only_with_its_passphrase() {
    let sandbox = Sandbox::new();
    let wallet = sandbox.path("enc.json");
    let wallet_arg = wallet.to_str().expect("utf-8 path");
    let good = sandbox.path("good");
    let bad = sandbox.path("bad");
    std::fs::write(&good, "correct horse battery staple\n").expect("write");
    std::fs::write(&bad, "wrong\n").expect("write");
    // Light KDF costs: tests never pay the release defaults.
    let light = [("OURCOIN_WALLET_KDF", "light")];
    let base = ["--network", "regtest", "--wallet", wallet_arg];

    let created = sandbox.run_with_env(
        &[&base[..], &["--passphrase-file", good.to_str().expect("path"), "--json", "wallet", "new", "--encrypt"]]
            .concat(),
        &light,
    );
    let address = created.succeeded().json()["address"].as_str().expect("address").to_string();
    let text = std::fs::read_to_string(&wallet).expect("wallet file");
    assert!(text.contains("argon2id") && !text.contains("\"mnemonic\""), "the phrase is sealed: {text}");

    // Even the address needs the passphrase: the file's public fields are
    // checked against the sealed phrase before anything is shown.
    sandbox.run(&[&base[..], &["wallet", "address"]].concat()).refused("--passphrase-file");
    let shown =
        sandbox.run(&[&base[..], &["--passphrase-file", good.to_str().expect("path"), "wallet", "address"]].concat());
    assert_eq!(shown.succeeded().stdout, format!("{address}\n"));

    // Signing does: a wrong one is refused, and with no terminal and no file it says what to give.
    let to = regtest_address(7);
    let node = unreachable_node();
    let send = ["--node", node.as_str(), "send", "--to", to.as_str(), "--amount", "1"];
    sandbox
        .run(&[&base[..], &["--passphrase-file", bad.to_str().expect("path")], &send[..]].concat())
        .refused("wrong passphrase");
    sandbox.run(&[&base[..], &send[..]].concat()).refused("--passphrase-file");
    // The right one gets past the wallet to the (unreachable) node.
    sandbox
        .run_with_env(&[&base[..], &send[..]].concat(), &[("OURCOIN_PASSPHRASE_FILE", good.to_str().expect("path"))])
        .refused("cannot reach the node");
}

// ---- recovery phrases, addresses, offline signing ---------------------------

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).expect("write");
    path.to_str().expect("utf-8 path").to_string()
}

#[test]
fn a_recovery_phrase_restores_the_same_addresses() {
    let sandbox = Sandbox::new();
    let original = sandbox.path("original.json");
    let base = ["--network", "regtest", "--wallet", original.to_str().expect("path"), "--json"];
    let created = sandbox.run(&[&base[..], &["wallet", "new"]].concat());
    let doc = created.succeeded().json();
    let mnemonic = doc["mnemonic"].as_str().expect("mnemonic").to_string();
    assert_eq!(mnemonic.split(' ').count(), 24, "{mnemonic}");
    let again = sandbox.run(&[&base[..], &["wallet", "mnemonic"]].concat());
    assert_eq!(again.succeeded().json()["mnemonic"], mnemonic.as_str());

    let second = sandbox.run(&[&base[..], &["wallet", "new-address", "--label", "savings"]].concat());
    let second = second.succeeded().json();
    assert_eq!(second["index"], 1);
    assert_eq!(second["label"], "savings");
    sandbox.run(&[&base[..], &["wallet", "new-address"]].concat()).succeeded();
    let listed = sandbox.run(&[&base[..], &["wallet", "addresses"]].concat()).succeeded().json();
    let listed = listed.as_array().expect("a JSON list").clone();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0]["address"], doc["address"]);
    assert_eq!(listed[1]["label"], "savings");
    assert!(listed[2]["label"].is_null(), "no label is null: {:?}", listed[2]);
    let plain =
        sandbox.run(&["--network", "regtest", "--wallet", original.to_str().expect("path"), "wallet", "addresses"]);
    assert!(plain.succeeded().stdout.contains("savings"));

    // Another machine: the same words, typed in another case and spacing.
    let restored = sandbox.path("other-machine/restored.json");
    let words = write(&sandbox.path("words.txt"), &format!("  {}  \n", mnemonic.to_uppercase().replace(' ', "   ")));
    let restore = ["--network", "regtest", "--wallet", restored.to_str().expect("path"), "--json"];
    let out = sandbox.run(&[&restore[..], &["wallet", "restore", "--words-file", &words, "--addresses", "3"]].concat());
    assert_eq!(out.succeeded().json()["address"], doc["address"]);
    let again = sandbox.run(&[&restore[..], &["wallet", "addresses"]].concat()).succeeded().json();
    let addresses = |list: &serde_json::Value| -> Vec<String> {
        list.as_array().expect("list").iter().map(|a| a["address"].as_str().expect("address").to_string()).collect()
    };
    assert_eq!(addresses(&again), addresses(&serde_json::Value::Array(listed)));
    // A restore never overwrites.
    sandbox.run(&[&restore[..], &["wallet", "restore", "--words-file", &words]].concat()).refused("already exists");
}

#[test]
fn bad_recovery_phrases_are_refused_with_their_reason_and_write_nothing() {
    let sandbox = Sandbox::new();
    let source = sandbox.path("source.json");
    let doc = sandbox
        .run(&["--network", "regtest", "--wallet", source.to_str().expect("path"), "--json", "wallet", "new"])
        .succeeded()
        .json();
    let words: Vec<String> = doc["mnemonic"].as_str().expect("mnemonic").split(' ').map(str::to_string).collect();
    let mut unknown = words.clone();
    unknown[4] = "bitcoin".into();
    // Two words swapped: an 8-bit checksum still passes one swap in 256, so
    // take the first swap that the library's own parser says fails it.
    let swapped = (1..words.len())
        .map(|j| {
            let mut swapped = words.clone();
            swapped.swap(0, j);
            swapped
        })
        .find(|swapped| {
            matches!(
                ourcoin::wallet::RecoveryPhrase::parse(&swapped.join(" ")),
                Err(ourcoin::wallet::PhraseError::Checksum)
            )
        })
        .expect("some swap of the first word breaks the checksum");
    let target = sandbox.path("restored.json");
    let cases = [
        ("23 words", words[..23].join(" "), "has 23 words; it must have 24"),
        (
            "unknown word",
            unknown.join(" "),
            "word 5 of the recovery phrase, `bitcoin`, is not in the BIP39 English word list",
        ),
        ("wrong checksum", swapped.join(" "), "checksum fails"),
        ("empty", String::new(), "has 0 words"),
    ];
    for (name, phrase, reason) in cases {
        let file = write(&sandbox.path(&format!("{name}.txt")), &phrase);
        let args = [
            "--network",
            "regtest",
            "--wallet",
            target.to_str().expect("path"),
            "wallet",
            "restore",
            "--words-file",
            &file,
        ];
        sandbox.run(&args).refused(reason);
        assert!(!target.exists(), "{name}: no wallet file is written");
    }
    // No terminal and no file: it says what to give.
    sandbox
        .run(&["--network", "regtest", "--wallet", target.to_str().expect("path"), "wallet", "restore"])
        .refused("--words-file");
    assert!(!target.exists());
}

#[test]
fn an_edited_encrypted_wallet_is_refused() {
    let sandbox = Sandbox::new();
    let wallet = sandbox.path("enc.json");
    let pass = write(&sandbox.path("pass"), "correct horse battery staple\n");
    let light = [("OURCOIN_WALLET_KDF", "light")];
    let base =
        ["--network", "regtest", "--wallet", wallet.to_str().expect("path"), "--passphrase-file", &pass, "--json"];
    sandbox.run_with_env(&[&base[..], &["wallet", "new", "--encrypt"]].concat(), &light).succeeded();
    sandbox.run(&[&base[..], &["wallet", "new-address", "--label", "shop"]].concat()).succeeded();
    let listed = sandbox.run(&[&base[..], &["wallet", "addresses"]].concat()).succeeded().json();
    assert_eq!(listed[1]["label"], "shop");
    let mnemonic = sandbox.run(&[&base[..], &["wallet", "mnemonic"]].concat()).succeeded().json();
    assert_eq!(mnemonic["mnemonic"].as_str().expect("words").split(' ').count(), 24);

    let original = std::fs::read_to_string(&wallet).expect("wallet file");
    let file: serde_json::Value = serde_json::from_str(&original).expect("json");
    let other = regtest_address(9);
    for (field, value) in [("label", serde_json::json!("attacker's")), ("address", serde_json::json!(other))] {
        let mut edited = file.clone();
        edited["addresses"][1][field] = value;
        std::fs::write(&wallet, edited.to_string()).expect("write");
        for command in [&["wallet", "addresses"][..], &["wallet", "address"], &["wallet", "mnemonic"]] {
            sandbox.run(&[&base[..], command].concat()).refused("the file was altered");
        }
    }
}

#[test]
fn an_old_single_key_wallet_file_still_signs() {
    use ourcoin::consensus::{rules, Params};
    use ourcoin::crypto::SecretKey;
    let sandbox = Sandbox::new();
    let secret = SecretKey::generate().expect("key");
    let address = Address::from_public_key(&secret.public_key().to_bytes()).encode(Network::Regtest);
    let old = serde_json::json!({
        "version": 1,
        "network": "regtest",
        "secret_key": hex::encode(secret.to_bytes()),
        "public_key": secret.public_key().to_bytes().to_hex(),
    });
    let wallet = write(&sandbox.path("old.json"), &old.to_string());
    let base = ["--network", "regtest", "--wallet", wallet.as_str(), "--json"];
    assert_eq!(
        sandbox.run(&[&base[..], &["wallet", "address"]].concat()).succeeded().json()["address"],
        address.as_str()
    );
    let to = regtest_address(7);
    let signed = sandbox
        .run(&[&base[..], &["send", "--to", &to, "--amount", "1.5", "--offline", "--nonce", "3"]].concat())
        .succeeded()
        .json();
    assert_eq!(signed["from"], address.as_str());
    let bytes = hex::decode(signed["hex"].as_str().expect("hex")).expect("hex");
    let stx: ourcoin::types::SignedTransaction = ourcoin::types::decode(&bytes, 512).expect("a signed transaction");
    assert_eq!(stx.tx.nonce, 3);
    assert_eq!(stx.txid().to_string(), signed["txid"].as_str().expect("txid"));
    assert_eq!(rules::check_signed_transaction(Params::get(Network::Regtest), &stx), Ok(()));
    sandbox.run(&[&base[..], &["wallet", "mnemonic"]].concat()).refused("no recovery phrase");
    sandbox.run(&[&base[..], &["wallet", "new-address"]].concat()).refused("older form");
}

#[test]
fn offline_signing_needs_no_node_and_submit_refuses_what_is_not_a_good_transaction() {
    use ourcoin::consensus::Params;
    let sandbox = Sandbox::new();
    let wallet = sandbox.path("cold.json");
    let wallet_arg = wallet.to_str().expect("path");
    let node = unreachable_node();
    let base = ["--network", "regtest", "--wallet", wallet_arg, "--node", node.as_str(), "--json"];
    let created = sandbox.run(&[&base[..], &["wallet", "new"]].concat()).succeeded().json();
    let second = sandbox.run(&[&base[..], &["wallet", "new-address"]].concat()).succeeded().json();
    let to = regtest_address(7);
    let send = ["send", "--to", to.as_str(), "--amount", "2", "--offline", "--nonce", "0"];

    let signed = sandbox.run(&[&base[..], &send[..]].concat());
    assert!(signed.elapsed < Duration::from_secs(3), "no node is asked: {:?}", signed.elapsed);
    let signed = signed.succeeded().json();
    assert_eq!(signed["from"], created["address"]);
    assert_eq!(signed["fee"], 10_000);
    assert_eq!(signed["hex"].as_str().expect("hex").len() % 2, 0);
    let from_second = sandbox
        .run(&[&base[..], &send[..], &["--from", second["address"].as_str().expect("address")]].concat())
        .succeeded()
        .json();
    assert_eq!(from_second["from"], second["address"]);
    sandbox.run(&[&base[..], &send[..], &["--fee", "auto"]].concat()).refused("offline, give the fee");
    sandbox
        .run(&[&base[..], &send[..], &["--from", &regtest_address(3)]].concat())
        .refused("not an address of this wallet");
    sandbox.run(&[&base[..], &["send", "--to", to.as_str(), "--amount", "2", "--offline"]].concat()).refused("--nonce");
    sandbox
        .run(&[&base[..], &["send", "--to", to.as_str(), "--amount", "2", "--nonce", "1"]].concat())
        .refused("--offline");

    // `submit` checks the transaction before it asks the (unreachable) node.
    let good = signed["hex"].as_str().expect("hex").to_string();
    let key = ourcoin::testkit::TestKey::new(5);
    let main = key.pay(Params::get(Network::Main).chain_id, Address([7; 20]), 100, 10_000, 0);
    let mut forged =
        ourcoin::types::encode(&key.pay(Params::get(Network::Regtest).chain_id, Address([7; 20]), 100, 10_000, 0));
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let zero = ourcoin::types::encode(&key.pay(Params::get(Network::Regtest).chain_id, Address([7; 20]), 0, 10_000, 0));
    let cases = [
        ("not hex", "xyz".to_string(), "the hex does not decode"),
        ("not a transaction", "00ff".to_string(), "not a signed transaction"),
        ("too long", "00".repeat(600), "longer than"),
        ("truncated", good[..good.len() - 20].to_string(), "not a signed transaction"),
        ("another network", hex::encode(ourcoin::types::encode(&main)), "signed for the main network"),
        ("bad signature", hex::encode(&forged), "breaks a rule"),
        ("zero amount", hex::encode(&zero), "breaks a rule"),
    ];
    for (name, hex_text, reason) in cases {
        let out = sandbox.run(&[&base[..], &["submit", hex_text.as_str()]].concat());
        assert!(out.stderr.contains(reason), "{name}: {}", out.stderr);
        out.refused(reason);
    }
    // A good one gets as far as the node.
    sandbox.run(&[&base[..], &["submit", good.as_str()]].concat()).refused("cannot reach the node");
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    let sandbox = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = sandbox.run(&["completions", shell]);
        let script = &out.succeeded().stdout;
        for word in ["bumpfee", "estimatefee", "chaininfo", "new-address", "--words-file"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    sandbox.run(&["completions", "powershell"]).refused("powershell");
}
