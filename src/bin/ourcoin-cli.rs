//! `ourcoin-cli`: the OurCoin wallet and node client (SPEC §7).
//!
//! Every command prints either its whole output on stdout, or one line
//! `error: ...` on stderr and nothing on stdout, with exit code 1. The output
//! is built in full before anything is written, so a failure half-way never
//! leaves a partial document behind.

use std::io::IsTerminal;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use libp2p::Multiaddr;
use ourcoin::consensus::rules;
use ourcoin::consensus::Params;
use ourcoin::mempool::MIN_RELAY_FEE;
use ourcoin::network::bans::BanTarget;
use ourcoin::rpc::client::QueryClient;
use ourcoin::rpc::{
    BalanceReply, BlockId, BlockReply, ChainInfoReply, HistoryEntry, MempoolReply, MiningInfoReply, NodeCommand,
    NodeReply, PeerReply, QueryRequest, QueryResponse, StatusReply, TxReply, MAX_ESTIMATE_BLOCKS, MAX_LIST_LIMIT,
};
use ourcoin::types::{Address, Amount, BlockHash, Network, SignedTransaction, Txid, MAX_TX_BYTES};
use ourcoin::wallet::{KdfParams, RecoveryPhrase, Wallet, WalletKey, MAX_ADDRESSES};
use serde::Serialize;

/// How long the client waits to connect, and then for each answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The fee `send` pays unless `--fee` says otherwise (SPEC §3).
const DEFAULT_FEE: Amount = Amount::from_units(10_000);
/// The confirmation target `--fee auto` asks `estimatefee` for.
const DEFAULT_ESTIMATE_BLOCKS: u32 = 6;
/// How often `send --wait` asks whether the payment is in a block.
const WAIT_POLL: Duration = Duration::from_millis(500);

#[derive(Parser, Debug)]
#[command(name = "ourcoin-cli", version, about = "The OurCoin wallet and node client")]
struct Args {
    /// The node to ask [default: /ip4/127.0.0.1/tcp/<the network's default port>].
    #[arg(long, env = "OURCOIN_NODE", global = true, value_name = "MULTIADDR")]
    node: Option<String>,
    /// Wallet file [default: ~/.ourcoin/<network>/wallet.json].
    #[arg(long, env = "OURCOIN_WALLET", global = true, value_name = "FILE")]
    wallet: Option<PathBuf>,
    /// main, test or regtest.
    #[arg(long, default_value = "main", global = true, value_name = "NAME")]
    network: Network,
    /// Print one JSON document (amounts in base units).
    #[arg(long, global = true)]
    json: bool,
    /// Read the wallet's passphrase from this file (its first line) instead of the terminal.
    #[arg(long, env = "OURCOIN_PASSPHRASE_FILE", global = true, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// The node's cookie, for `node …` commands [default: ~/.ourcoin/<network>/.cookie].
    #[arg(long, env = "OURCOIN_COOKIE", global = true, value_name = "FILE")]
    cookie: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The wallet file.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Balance of ADDRESS, or of the wallet.
    Balance { address: Option<String> },
    /// Sign a payment with the wallet and submit it to the node.
    Send(SendArgs),
    /// Transactions touching ADDRESS (or the wallet), newest first.
    History {
        address: Option<String>,
        /// The most transactions to show.
        #[arg(long, value_name = "N", default_value_t = 100, value_parser = list_limit())]
        limit: u32,
    },
    /// What the node knows.
    Status,
    /// One block of the node's best chain.
    Block {
        #[arg(value_name = "HEIGHT|HASH", allow_hyphen_values = true)]
        id: String,
    },
    /// One transaction, confirmed or pending.
    Tx {
        #[arg(value_name = "TXID", allow_hyphen_values = true)]
        txid: String,
    },
    /// The node's connected peers.
    Peers,
    /// The node's pending transactions.
    Mempool {
        /// The most txids to list.
        #[arg(long, value_name = "N", default_value_t = 100, value_parser = list_limit())]
        limit: u32,
    },
    /// Hand a signed transaction (from `send --offline`) to the node.
    Submit {
        #[arg(value_name = "HEX", allow_hyphen_values = true)]
        hex: String,
    },
    /// Replace this wallet's pending payment with the same one at a higher fee.
    Bumpfee {
        #[arg(value_name = "TXID", allow_hyphen_values = true)]
        txid: String,
        /// The new fee in coins [default: 25% more].
        #[arg(long, value_name = "AMOUNT", allow_hyphen_values = true)]
        fee: Option<String>,
    },
    /// The fee that gets a payment confirmed within N blocks.
    Estimatefee {
        #[arg(long, value_name = "N", default_value_t = 6, value_parser = estimate_blocks())]
        blocks: u32,
    },
    /// The chain as the node sees it.
    Chaininfo,
    /// The node's miner.
    Mininginfo,
    /// A completion script for a shell, on stdout.
    Completions {
        #[arg(value_name = "SHELL")]
        shell: CompletionShell,
    },
    /// Control the node's peers and bans (needs the node's cookie).
    #[command(subcommand)]
    Node(NodeSubcommand),
}

#[derive(Subcommand, Debug)]
enum NodeSubcommand {
    /// Dial a peer now and keep it connected (as addnode).
    Connect {
        #[arg(value_name = "MULTIADDR")]
        addr: String,
    },
    /// Drop a peer.
    Disconnect {
        #[arg(value_name = "PEER_ID")]
        peer: String,
    },
    /// Refuse a peer or an address for a while.
    Ban {
        #[arg(value_name = "PEER_ID|IP")]
        target: String,
        /// How long, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
        duration: u64,
    },
    /// Lift a ban.
    Unban {
        #[arg(value_name = "PEER_ID|IP")]
        target: String,
    },
    /// The current bans.
    Bans,
}

#[derive(clap::Args, Debug)]
struct SendArgs {
    /// The recipient's address.
    #[arg(long, value_name = "ADDRESS", allow_hyphen_values = true)]
    to: String,
    /// Coins to send, like 12.5.
    #[arg(long, value_name = "AMOUNT", allow_hyphen_values = true)]
    amount: String,
    /// Fee in coins, or `auto` for estimatefee's [default: 0.0001].
    #[arg(long, value_name = "AMOUNT|auto", allow_hyphen_values = true)]
    fee: Option<String>,
    /// Pay from this wallet address [default: the first that can].
    #[arg(long, value_name = "ADDRESS", allow_hyphen_values = true)]
    from: Option<String>,
    /// Return only once the payment is confirmed.
    #[arg(long)]
    wait: bool,
    /// Sign without any node and print the signed transaction (needs --nonce).
    #[arg(long, requires = "nonce", conflicts_with = "wait")]
    offline: bool,
    /// The sender's nonce, for --offline (its count of sent payments).
    #[arg(long, value_name = "N", requires = "offline")]
    nonce: Option<u64>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

fn estimate_blocks() -> clap::builder::RangedU64ValueParser<u32> {
    clap::builder::RangedU64ValueParser::new().range(1..=u64::from(MAX_ESTIMATE_BLOCKS))
}

#[derive(Subcommand, Debug)]
enum WalletCommand {
    /// Create the wallet file from a new 24-word recovery phrase, shown once.
    New {
        /// Seal the phrase under a passphrase (asked at the terminal, or --passphrase-file).
        #[arg(long)]
        encrypt: bool,
    },
    /// Create the wallet file from a recovery phrase (asked at the terminal, or --words-file).
    Restore {
        /// Read the phrase from the first line of FILE.
        #[arg(long, value_name = "FILE")]
        words_file: Option<PathBuf>,
        /// Seal the phrase under a passphrase.
        #[arg(long)]
        encrypt: bool,
        /// How many addresses to derive again (index 0 up).
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = address_count())]
        addresses: u32,
    },
    /// Show the recovery phrase again.
    Mnemonic,
    /// Show the wallet's first address.
    Address,
    /// Derive and remember the wallet's next address.
    NewAddress {
        /// A name for the address, for you.
        #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
        label: Option<String>,
    },
    /// The wallet's addresses.
    Addresses,
}

fn address_count() -> clap::builder::RangedU64ValueParser<u32> {
    clap::builder::RangedU64ValueParser::new().range(1..=MAX_ADDRESSES as u64)
}

fn list_limit() -> clap::builder::RangedU64ValueParser<u32> {
    clap::builder::RangedU64ValueParser::new().range(1..=u64::from(MAX_LIST_LIMIT))
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => return usage_error(e),
    };
    match run(args) {
        Ok(output) => write_stdout(&output),
        Err(e) => {
            eprintln!("error: {}", one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout with success; every other clap error
/// becomes the usual one-line `error:` message.
fn usage_error(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            eprintln!("error: a command is missing; see `ourcoin-cli --help`");
            ExitCode::FAILURE
        }
        _ => {
            // clap's message is a paragraph (then tips and usage); keep the
            // paragraph, on one line.
            let text = e.to_string();
            let paragraph: Vec<&str> = text.lines().map(str::trim).take_while(|line| !line.is_empty()).collect();
            let message = paragraph.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("error: {}; see `ourcoin-cli --help`", one_line(message));
            ExitCode::FAILURE
        }
    }
}

fn write_stdout(output: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(output.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`| head`) is not our failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The global flags, resolved lazily so a command reads only what it needs.
struct Settings {
    node: Option<String>,
    wallet: Option<PathBuf>,
    network: Network,
    json: bool,
    passphrase_file: Option<PathBuf>,
    cookie: Option<PathBuf>,
}

/// Argon2id costs for new encrypted wallets. `OURCOIN_WALLET_KDF=light` picks
/// cheap ones, for tests only: a wallet made with them is easy to brute-force.
fn kdf_params() -> KdfParams {
    match std::env::var("OURCOIN_WALLET_KDF").as_deref() {
        Ok("light") => KdfParams::LIGHT_FOR_TESTS,
        _ => KdfParams::DEFAULT,
    }
}

impl Settings {
    fn node(&self) -> Result<Multiaddr> {
        match &self.node {
            Some(text) => text.parse().map_err(|e| {
                anyhow!(
                    "--node: `{}` is not a multiaddr ({e}); write it like /ip4/127.0.0.1/tcp/{}",
                    short(text),
                    Params::get(self.network).default_port
                )
            }),
            None => format!("/ip4/127.0.0.1/tcp/{}", Params::get(self.network).default_port)
                .parse()
                .context("the default node address is not a multiaddr"),
        }
    }

    /// The node's cookie, read from `--cookie` or the network's default datadir.
    fn cookie(&self) -> Result<String> {
        let path = match &self.cookie {
            Some(path) => path.clone(),
            None => {
                let home = std::env::var_os("HOME").context("HOME is not set; give the node's cookie with --cookie")?;
                PathBuf::from(home).join(".ourcoin").join(self.network.name()).join(".cookie")
            }
        };
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read the node's cookie {} (node commands need it: give the node's <datadir>/.cookie with --cookie)",
                path.display()
            )
        })?;
        Ok(text.trim().to_string())
    }

    fn wallet_path(&self) -> Result<PathBuf> {
        match &self.wallet {
            Some(path) => Ok(path.clone()),
            None => {
                let home = std::env::var_os("HOME").context("HOME is not set; give the wallet file with --wallet")?;
                Ok(PathBuf::from(home).join(".ourcoin").join(self.network.name()).join("wallet.json"))
            }
        }
    }

    /// The passphrase from --passphrase-file, or asked at the terminal (twice when `confirm`).
    fn passphrase(&self, prompt: &str, confirm: bool) -> Result<String> {
        if let Some(path) = &self.passphrase_file {
            let line = first_line(path, "passphrase file")?;
            if line.is_empty() {
                bail!("the passphrase file {} is empty", path.display());
            }
            return Ok(line);
        }
        if !std::io::stdin().is_terminal() {
            bail!("the wallet needs a passphrase and there is no terminal to ask: give --passphrase-file");
        }
        let first = rpassword::prompt_password(prompt).context("cannot read the passphrase")?;
        if first.is_empty() {
            bail!("an empty passphrase protects nothing");
        }
        if confirm
            && rpassword::prompt_password("Repeat the passphrase: ").context("cannot read the passphrase")? != first
        {
            bail!("the two passphrases differ; nothing was written");
        }
        Ok(first)
    }

    fn load_wallet(&self) -> Result<Wallet> {
        let path = self.wallet_path()?;
        if Wallet::is_encrypted(&path)? {
            let passphrase = self.passphrase("Wallet passphrase: ", false)?;
            Ok(Wallet::load_with(&path, self.network, Some(passphrase.as_bytes()))?)
        } else {
            Ok(Wallet::load(&path, self.network)?)
        }
    }

    /// Serializes `value` as the JSON document, or renders it for people.
    fn output<T: Serialize>(&self, value: &T, human: impl FnOnce(&T) -> String) -> Result<String> {
        if self.json {
            let mut text = serde_json::to_string_pretty(value).context("cannot write JSON")?;
            text.push('\n');
            Ok(text)
        } else {
            Ok(human(value))
        }
    }
}

fn run(args: Args) -> Result<String> {
    let Args { node, wallet, network, json, passphrase_file, cookie, command } = args;
    let settings = Settings { node, wallet, network, json, passphrase_file, cookie };
    match command {
        Command::Wallet(command) => wallet_command(&settings, command),
        Command::Completions { shell } => Ok(completions(shell)),
        Command::Send(send) if send.offline => send_offline(&settings, &send),
        command => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(node_command(&settings, command))
        }
    }
}

/// The words of a new or restored wallet, for people: on stderr, so
/// `address=$(ourcoin-cli wallet new)` keeps only the address.
const PHRASE_WARNING: &str = "Write these words down, in order, and keep them offline.\n\
Whoever has them has the coins; without them a lost wallet file is lost money.\n\
`ourcoin-cli wallet mnemonic` shows them again.";

#[derive(Serialize)]
struct AddressLine {
    address: String,
    index: u32,
    label: Option<String>,
}

fn address_lines(settings: &Settings, wallet: &Wallet) -> Vec<AddressLine> {
    wallet
        .keys()
        .iter()
        .map(|k| AddressLine { address: k.address.encode(settings.network), index: k.index, label: k.label.clone() })
        .collect()
}

fn wallet_command(settings: &Settings, command: WalletCommand) -> Result<String> {
    let path = settings.wallet_path()?;
    match command {
        WalletCommand::New { encrypt } => {
            let wallet = if encrypt {
                if path.exists() {
                    bail!("wallet file {} already exists; refusing to overwrite it", path.display());
                }
                let passphrase = settings.passphrase("New wallet passphrase: ", true)?;
                Wallet::create_with(&path, settings.network, Some((passphrase.as_bytes(), kdf_params())))?
            } else {
                Wallet::create(&path, settings.network)?
            };
            let address = wallet.address().encode(settings.network);
            let mnemonic = wallet.phrase().map(|p| p.as_str().to_string()).unwrap_or_default();
            if !settings.json {
                eprintln!("Recovery phrase of {}:\n\n  {mnemonic}\n\n{PHRASE_WARNING}", path.display());
            }
            settings
                .output(&serde_json::json!({ "address": address, "mnemonic": mnemonic }), |_| format!("{address}\n"))
        }
        WalletCommand::Restore { words_file, encrypt, addresses } => {
            if path.exists() {
                bail!("wallet file {} already exists; refusing to overwrite it", path.display());
            }
            let phrase = RecoveryPhrase::parse(&read_phrase(words_file.as_deref())?)?;
            let passphrase = if encrypt { Some(settings.passphrase("New wallet passphrase: ", true)?) } else { None };
            let sealing = passphrase.as_ref().map(|p| (p.as_bytes(), kdf_params()));
            let wallet = Wallet::restore(&path, settings.network, phrase, addresses, sealing)?;
            let address = wallet.address().encode(settings.network);
            let lines = address_lines(settings, &wallet);
            settings.output(&serde_json::json!({ "address": address, "addresses": lines }), |_| format!("{address}\n"))
        }
        WalletCommand::Mnemonic => {
            let wallet = settings.load_wallet()?;
            let Some(phrase) = wallet.phrase() else {
                bail!(
                    "wallet file {} holds a single key of the older form and has no recovery phrase; back up the file itself",
                    path.display()
                );
            };
            let mnemonic = phrase.as_str().to_string();
            settings.output(&serde_json::json!({ "mnemonic": mnemonic }), |_| format!("{mnemonic}\n"))
        }
        WalletCommand::Address => {
            let address = settings.load_wallet()?.address().encode(settings.network);
            settings.output(&serde_json::json!({ "address": address }), |_| format!("{address}\n"))
        }
        WalletCommand::NewAddress { label } => {
            let mut wallet = settings.load_wallet()?;
            let key = wallet.new_address(&path, label)?;
            let line = AddressLine {
                address: key.address.encode(settings.network),
                index: key.index,
                label: key.label.clone(),
            };
            settings.output(&line, |line| format!("{}\n", line.address))
        }
        WalletCommand::Addresses => {
            let wallet = settings.load_wallet()?;
            let lines = address_lines(settings, &wallet);
            settings.output(&lines, |lines| {
                let rows = lines
                    .iter()
                    .map(|l| vec![l.index.to_string(), l.address.clone(), l.label.clone().unwrap_or_default()])
                    .collect::<Vec<_>>();
                table(&[("INDEX", Align::Right), ("ADDRESS", Align::Left), ("LABEL", Align::Left)], &rows)
            })
        }
    }
}

/// The first line of a small file the user names (at most 64 KiB are read).
fn first_line(path: &std::path::Path, what: &str) -> Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(64 * 1024).read_to_string(&mut text))
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// The recovery phrase from the first line of `file`, or asked at the
/// terminal without echo.
fn read_phrase(file: Option<&std::path::Path>) -> Result<String> {
    if let Some(path) = file {
        return first_line(path, "words file");
    }
    if !std::io::stdin().is_terminal() {
        bail!("the recovery phrase is asked at the terminal, and there is none: give --words-file");
    }
    rpassword::prompt_password("Recovery phrase (24 words): ").context("cannot read the recovery phrase")
}

/// Takes the reply of the expected kind out of a response; the node's own
/// refusal becomes the error message as it stands.
macro_rules! expect_reply {
    ($response:expr, $variant:ident, $what:literal) => {
        match $response {
            QueryResponse::$variant(reply) => reply,
            QueryResponse::Error(message) => bail!("{}", message),
            _ => bail!(concat!(
                "the node sent a reply that does not answer a ",
                $what,
                " query (is it an ourcoind of this version?)"
            )),
        }
    };
}

async fn ask(node: &Multiaddr, request: QueryRequest) -> Result<QueryResponse> {
    let mut client = QueryClient::connect(node, QUERY_TIMEOUT).await?;
    Ok(client.request(request).await?)
}

async fn node_command(settings: &Settings, command: Command) -> Result<String> {
    match command {
        Command::Wallet(_) | Command::Completions { .. } => bail!("this command does not ask the node"),
        Command::Send(send) => send_online(settings, &send).await,
        Command::Balance { address } => {
            let address = address.map(|text| Address::parse(&text, settings.network)).transpose()?;
            let node = settings.node()?;
            let Some(address) = address else { return wallet_balance(settings, &node).await };
            let reply = expect_reply!(ask(&node, QueryRequest::Balance { address }).await?, Balance, "balance");
            check_same_network(settings.network, address, &reply.address)?;
            settings.output(&reply, show_balance)
        }
        Command::History { address, limit } => {
            let address = address.map(|text| Address::parse(&text, settings.network)).transpose()?;
            let node = settings.node()?;
            let Some(address) = address else { return wallet_history(settings, &node, limit).await };
            let request = QueryRequest::History { address, limit };
            let reply = expect_reply!(ask(&node, request).await?, History, "history");
            check_same_network(settings.network, address, &reply.address)?;
            settings
                .output(&reply, |h| show_history(h.address.as_str(), std::slice::from_ref(&h.address), &h.transactions))
        }
        Command::Submit { hex } => submit(settings, &hex).await,
        Command::Bumpfee { txid, fee } => bumpfee(settings, &txid, fee.as_deref()).await,
        Command::Estimatefee { blocks } => {
            let node = settings.node()?;
            let reply =
                expect_reply!(ask(&node, QueryRequest::EstimateFee { blocks }).await?, FeeEstimate, "estimatefee");
            settings.output(&reply, |e| {
                fields(&[("fee", coins(e.fee)), ("blocks", e.blocks.to_string()), ("basis", e.basis.clone())])
            })
        }
        Command::Chaininfo => {
            let node = settings.node()?;
            let reply = expect_reply!(ask(&node, QueryRequest::ChainInfo).await?, ChainInfo, "chaininfo");
            settings.output(&reply, show_chain_info)
        }
        Command::Mininginfo => {
            let node = settings.node()?;
            let reply = expect_reply!(ask(&node, QueryRequest::MiningInfo).await?, MiningInfo, "mininginfo");
            settings.output(&reply, show_mining_info)
        }
        Command::Status => {
            let node = settings.node()?;
            let reply = expect_reply!(ask(&node, QueryRequest::Status).await?, Status, "status");
            settings.output(&reply, show_status)
        }
        Command::Block { id } => {
            let id = parse_block_id(&id)?;
            let node = settings.node()?;
            let reply = expect_reply!(ask(&node, QueryRequest::Block(id)).await?, Block, "block");
            settings.output(&reply, show_block)
        }
        Command::Tx { txid } => {
            let txid = parse_txid(&txid)?;
            let node = settings.node()?;
            let reply = expect_reply!(ask(&node, QueryRequest::Tx(txid)).await?, Tx, "tx");
            settings.output(&reply, show_tx)
        }
        Command::Peers => {
            let node = settings.node()?;
            let reply = expect_reply!(ask(&node, QueryRequest::Peers).await?, Peers, "peers");
            settings.output(&reply, |peers| show_peers(peers))
        }
        Command::Mempool { limit } => {
            let node = settings.node()?;
            let reply = expect_reply!(ask(&node, QueryRequest::Mempool { limit }).await?, Mempool, "mempool");
            settings.output(&reply, show_mempool)
        }
        Command::Node(command) => control_node(settings, command).await,
    }
}

async fn control_node(settings: &Settings, command: NodeSubcommand) -> Result<String> {
    let command = match command {
        NodeSubcommand::Connect { addr } => {
            addr.parse::<Multiaddr>().map_err(|e| anyhow!("`{}` is not a multiaddr ({e})", short(&addr)))?;
            NodeCommand::Connect(addr)
        }
        NodeSubcommand::Disconnect { peer } => {
            peer.parse::<libp2p::PeerId>().map_err(|_| anyhow!("`{}` is not a peer id", short(&peer)))?;
            NodeCommand::Disconnect(peer)
        }
        NodeSubcommand::Ban { target, duration } => {
            target.parse::<BanTarget>()?;
            NodeCommand::Ban { target, duration_s: duration }
        }
        NodeSubcommand::Unban { target } => {
            target.parse::<BanTarget>()?;
            NodeCommand::Unban(target)
        }
        NodeSubcommand::Bans => NodeCommand::Bans,
    };
    let cookie = settings.cookie()?;
    let node = settings.node()?;
    let reply = expect_reply!(ask(&node, QueryRequest::Node { cookie, command }).await?, Node, "node");
    settings.output(&reply.json(), |_| show_node_reply(&reply))
}

fn show_node_reply(reply: &NodeReply) -> String {
    match reply {
        NodeReply::Connected { peer_id } => format!("connected to {}\n", clean(peer_id)),
        NodeReply::Disconnected { peer_id } => format!("disconnected {}\n", clean(peer_id)),
        NodeReply::Banned { banned } => format!("banned {}\n", clean(banned)),
        NodeReply::Unbanned { unbanned } => format!("unbanned {}\n", clean(unbanned)),
        NodeReply::Bans(bans) if bans.is_empty() => "no bans\n".to_string(),
        NodeReply::Bans(bans) => {
            let rows = bans.iter().map(|b| vec![clean(&b.target), b.until.to_string()]).collect::<Vec<_>>();
            table(&[("TARGET", Align::Left), ("UNTIL (UNIX TIME)", Align::Right)], &rows)
        }
    }
}

/// The amount, fee and recipient of a `send`, checked before the wallet or
/// the node is touched. `None` for the fee means `auto`.
struct Payment {
    to: Address,
    amount: Amount,
    fee: Option<Amount>,
}

fn check_payment(settings: &Settings, send: &SendArgs) -> Result<Payment> {
    let to = parse_address(&send.to, settings.network, "--to")?;
    let amount = parse_amount("--amount", &send.amount)?;
    if amount == Amount::ZERO {
        bail!("--amount: the amount must be more than 0");
    }
    let fee = match send.fee.as_deref() {
        Some("auto") => None,
        Some(text) => Some(parse_fee(text)?),
        None => Some(DEFAULT_FEE),
    };
    if let Some(fee) = fee {
        amount.checked_add(fee).context("--amount: the amount plus the fee is too large")?;
    }
    Ok(Payment { to, amount, fee })
}

fn parse_fee(text: &str) -> Result<Amount> {
    let fee = parse_amount("--fee", text)?;
    if fee < MIN_RELAY_FEE {
        bail!("--fee: {fee} is below the minimum relay fee of {MIN_RELAY_FEE}; nodes would not relay the payment");
    }
    Ok(fee)
}

/// The wallet key `--from` names, or `None` without `--from`.
fn chosen_key<'w>(settings: &Settings, wallet: &'w Wallet, from: Option<&str>) -> Result<Option<&'w WalletKey>> {
    let Some(text) = from else { return Ok(None) };
    let address = parse_address(text, settings.network, "--from")?;
    match wallet.key_of(&address) {
        Some(key) => Ok(Some(key)),
        None => bail!("--from: {} is not an address of this wallet (see `wallet addresses`)", short(text)),
    }
}

/// `send --offline`: signs with the nonce given, contacts no node.
fn send_offline(settings: &Settings, send: &SendArgs) -> Result<String> {
    let payment = check_payment(settings, send)?;
    let Some(fee) = payment.fee else {
        bail!("--fee auto asks a node for an estimate; offline, give the fee (default 0.0001)");
    };
    let nonce = send.nonce.context("--offline needs --nonce: the sender's count of sent payments")?;
    let wallet = settings.load_wallet()?;
    let key = match chosen_key(settings, &wallet, send.from.as_deref())? {
        Some(key) => key,
        None => wallet.keys().first().context("the wallet has no address")?,
    };
    let stx = key.pay(Params::get(settings.network).chain_id, payment.to, payment.amount, fee, nonce);
    let txid = stx.txid().to_string();
    let doc = serde_json::json!({
        "txid": txid,
        "hex": hex::encode(ourcoin::types::encode(&stx)),
        "from": key.address.encode(settings.network),
        "fee": fee.units(),
        "nonce": nonce,
    });
    settings.output(&doc, |doc| format!("{}\n", doc["hex"].as_str().unwrap_or_default()))
}

/// Validates everything the user typed before touching the wallet or the
/// node, takes the nonce and the balances from the node, pays from the
/// first address that can (or `--from`), and submits.
async fn send_online(settings: &Settings, send: &SendArgs) -> Result<String> {
    let payment = check_payment(settings, send)?;
    let node = settings.node()?;
    let wallet = settings.load_wallet()?;
    let chosen = chosen_key(settings, &wallet, send.from.as_deref())?;

    let mut client = QueryClient::connect(&node, QUERY_TIMEOUT).await?;
    let fee = match payment.fee {
        Some(fee) => fee,
        None => {
            let request = QueryRequest::EstimateFee { blocks: DEFAULT_ESTIMATE_BLOCKS };
            let estimate = expect_reply!(client.request(request).await?, FeeEstimate, "estimatefee");
            Amount::from_units(estimate.fee).max(MIN_RELAY_FEE)
        }
    };
    let total = payment.amount.checked_add(fee).context("--amount: the amount plus the fee is too large")?;
    let candidates: Vec<&WalletKey> = match chosen {
        Some(key) => vec![key],
        None => wallet.keys().iter().collect(),
    };
    let mut balances = Vec::with_capacity(candidates.len());
    let mut payer = None;
    for key in candidates {
        let request = QueryRequest::Balance { address: key.address };
        let balance = expect_reply!(client.request(request).await?, Balance, "balance");
        check_same_network(settings.network, key.address, &balance.address)?;
        if total.units() <= balance.pending {
            payer = Some((key, balance));
            break;
        }
        balances.push(balance);
    }
    let Some((key, balance)) = payer else { bail!("{}", insufficient(payment.amount, fee, total, &balances)) };
    let stx = key.pay(Params::get(settings.network).chain_id, payment.to, payment.amount, fee, balance.next_nonce);
    let submitted = expect_reply!(client.request(QueryRequest::Submit(stx)).await?, Submitted, "submit");
    let mut doc = serde_json::json!({
        "txid": submitted.txid,
        "from": balance.address,
        "fee": fee.units(),
    });
    if send.wait {
        let height = wait_for_confirmation(&mut client, &stx.txid()).await?;
        doc["height"] = height.into();
    }
    settings.output(&doc, |doc| format!("{}\n", clean(doc["txid"].as_str().unwrap_or_default())))
}

/// Why no address can pay: too little in all, or (accounts do not merge)
/// enough only across several addresses.
fn insufficient(amount: Amount, fee: Amount, total: Amount, balances: &[BalanceReply]) -> String {
    let sum = balances.iter().fold(0u64, |acc, b| acc.saturating_add(b.pending));
    let immature = balances.iter().fold(0u64, |acc, b| acc.saturating_add(b.immature));
    let largest = balances.iter().max_by_key(|b| b.pending);
    match largest {
        Some(largest) if balances.len() > 1 && sum >= total.units() => format!(
            "no single address of the wallet holds {total} (sending {amount} with a fee of {fee}): the most any one holds is {} at {}, though the wallet's {} addresses hold {} together; a payment comes from one address, so send less, or first gather the coins at one address",
            Amount::from_units(largest.pending),
            largest.address,
            balances.len(),
            Amount::from_units(sum)
        ),
        Some(largest) if balances.len() == 1 => format!(
            "insufficient funds: sending {amount} with a fee of {fee} needs {total}, but {} has {} available{}",
            largest.address,
            Amount::from_units(largest.pending),
            immature_note(immature)
        ),
        _ => format!(
            "insufficient funds: sending {amount} with a fee of {fee} needs {total}, but the wallet has {} available{}",
            Amount::from_units(sum),
            immature_note(immature)
        ),
    }
}

fn immature_note(immature: u64) -> String {
    match immature {
        0 => String::new(),
        immature => format!(" ({} more are mining rewards not yet mature)", Amount::from_units(immature)),
    }
}

/// Polls the node until `txid` is in a block; progress on stderr.
async fn wait_for_confirmation(client: &mut QueryClient, txid: &Txid) -> Result<u64> {
    let mut shown_height = None;
    loop {
        let reply = expect_reply!(client.request(QueryRequest::Tx(*txid)).await?, Tx, "tx");
        if let Some(height) = reply.height {
            eprintln!("confirmed in block {height}");
            return Ok(height);
        }
        let status = expect_reply!(client.request(QueryRequest::Status).await?, Status, "status");
        if shown_height != Some(status.height) {
            eprintln!("waiting for {txid} to be mined: pending, the node's tip is at height {}", status.height);
            shown_height = Some(status.height);
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// `submit HEX`: a transaction signed elsewhere, checked here first so a
/// bad one is refused with its reason before it reaches the node.
async fn submit(settings: &Settings, text: &str) -> Result<String> {
    let stx = decode_signed(settings.network, text.trim())?;
    let node = settings.node()?;
    let reply = expect_reply!(ask(&node, QueryRequest::Submit(stx)).await?, Submitted, "submit");
    settings.output(&serde_json::json!({ "txid": reply.txid }), |_| format!("{}\n", clean(&reply.txid)))
}

fn decode_signed(network: Network, text: &str) -> Result<SignedTransaction> {
    if text.len() > 2 * MAX_TX_BYTES {
        bail!("this is not a signed transaction: it is longer than {MAX_TX_BYTES} bytes of hex");
    }
    let bytes =
        hex::decode(text).map_err(|e| anyhow!("this is not a signed transaction: the hex does not decode ({e})"))?;
    let stx: SignedTransaction =
        ourcoin::types::decode(&bytes, MAX_TX_BYTES).map_err(|e| anyhow!("this is not a signed transaction: {e}"))?;
    let params = Params::get(network);
    if stx.tx.chain_id != params.chain_id {
        let theirs = Network::ALL.iter().find(|n| Params::get(**n).chain_id == stx.tx.chain_id);
        match theirs {
            Some(theirs) => bail!("this transaction is signed for the {theirs} network, not {network}"),
            None => bail!("this transaction is signed for an unknown network (chain id {})", stx.tx.chain_id.0),
        }
    }
    rules::check_signed_transaction(params, &stx).map_err(|e| anyhow!("this transaction breaks a rule: {e}"))?;
    Ok(stx)
}

/// The least fee that replaces a pending one (the mempool's +10% rule).
fn replacement_fee(old: u64) -> u64 {
    u64::try_from(u128::from(old).saturating_mul(11).div_ceil(10)).unwrap_or(u64::MAX)
}

/// `bumpfee`: the same payment (recipient, amount, nonce) at a higher fee.
async fn bumpfee(settings: &Settings, txid: &str, fee: Option<&str>) -> Result<String> {
    let txid = parse_txid(txid)?;
    let fee = fee.map(parse_fee).transpose()?;
    let node = settings.node()?;
    let wallet = settings.load_wallet()?;
    let mut client = QueryClient::connect(&node, QUERY_TIMEOUT).await?;
    let old = expect_reply!(client.request(QueryRequest::Tx(txid)).await?, Tx, "tx");
    if let Some(height) = old.height {
        bail!("payment {txid} is already confirmed (height {height}); only a pending payment can be bumped");
    }
    let (Some(from), Some(nonce)) = (old.from.as_deref(), old.nonce) else {
        bail!("{txid} is a mining reward, not a payment");
    };
    let from = parse_address(from, settings.network, "the node's answer")?;
    let Some(key) = wallet.key_of(&from) else {
        bail!("payment {txid} is not this wallet's: it pays from {}", from.encode(settings.network));
    };
    let least = replacement_fee(old.fee);
    let fee = match fee {
        Some(fee) if fee.units() < least => bail!(
            "--fee: {fee} does not replace a fee of {}: a replacement pays at least {} (10% more)",
            Amount::from_units(old.fee),
            Amount::from_units(least)
        ),
        Some(fee) => fee,
        None => Amount::from_units(
            u64::try_from(u128::from(old.fee).saturating_mul(5).div_ceil(4)).unwrap_or(u64::MAX).max(least),
        ),
    };
    let to = parse_address(&old.to, settings.network, "the node's answer")?;
    let amount = Amount::from_units(old.amount);
    let stx = key.pay(Params::get(settings.network).chain_id, to, amount, fee, nonce);
    let submitted = expect_reply!(client.request(QueryRequest::Submit(stx)).await?, Submitted, "submit");
    let doc = serde_json::json!({ "txid": submitted.txid, "replaced": txid.to_string(), "fee": fee.units() });
    settings.output(&doc, |doc| format!("{}\n", clean(doc["txid"].as_str().unwrap_or_default())))
}

#[derive(Serialize)]
struct AddressBalance {
    address: String,
    confirmed: u64,
    immature: u64,
    pending: u64,
}

#[derive(Serialize)]
struct WalletBalance {
    confirmed: u64,
    immature: u64,
    pending: u64,
    addresses: Vec<AddressBalance>,
}

/// `balance` without an address: every wallet address, and their sums.
async fn wallet_balance(settings: &Settings, node: &Multiaddr) -> Result<String> {
    let wallet = settings.load_wallet()?;
    let mut client = QueryClient::connect(node, QUERY_TIMEOUT).await?;
    let mut total = WalletBalance { confirmed: 0, immature: 0, pending: 0, addresses: Vec::new() };
    for key in wallet.keys() {
        let reply =
            expect_reply!(client.request(QueryRequest::Balance { address: key.address }).await?, Balance, "balance");
        check_same_network(settings.network, key.address, &reply.address)?;
        total.confirmed = total.confirmed.saturating_add(reply.confirmed);
        total.immature = total.immature.saturating_add(reply.immature);
        total.pending = total.pending.saturating_add(reply.pending);
        total.addresses.push(AddressBalance {
            address: reply.address,
            confirmed: reply.confirmed,
            immature: reply.immature,
            pending: reply.pending,
        });
    }
    settings.output(&total, |t| {
        let mut out = fields(&[
            ("confirmed", coins(t.confirmed)),
            ("immature", coins(t.immature)),
            ("pending", coins(t.pending)),
        ]);
        if t.addresses.len() > 1 {
            let rows = t
                .addresses
                .iter()
                .map(|a| vec![a.address.clone(), coins(a.confirmed), coins(a.immature), coins(a.pending)])
                .collect::<Vec<_>>();
            out.push('\n');
            out.push_str(&table(
                &[
                    ("ADDRESS", Align::Left),
                    ("CONFIRMED", Align::Right),
                    ("IMMATURE", Align::Right),
                    ("PENDING", Align::Right),
                ],
                &rows,
            ));
        }
        out
    })
}

#[derive(Serialize)]
struct WalletHistory {
    /// Null: the whole wallet.
    address: Option<String>,
    transactions: Vec<HistoryEntry>,
}

/// `history` without an address: every wallet address's, merged newest
/// first, a payment between two of them listed once.
async fn wallet_history(settings: &Settings, node: &Multiaddr, limit: u32) -> Result<String> {
    let wallet = settings.load_wallet()?;
    let mut client = QueryClient::connect(node, QUERY_TIMEOUT).await?;
    let mut seen = std::collections::HashSet::new();
    let mut transactions = Vec::new();
    let mut own = Vec::new();
    for key in wallet.keys() {
        let request = QueryRequest::History { address: key.address, limit };
        let reply = expect_reply!(client.request(request).await?, History, "history");
        check_same_network(settings.network, key.address, &reply.address)?;
        own.push(reply.address);
        transactions.extend(reply.transactions.into_iter().filter(|t| seen.insert(t.txid.clone())));
    }
    // Pending first, then by height, newest first; the sort is stable, so
    // each address's own order holds within a block.
    transactions.sort_by_key(|t| std::cmp::Reverse(t.height.unwrap_or(u64::MAX)));
    transactions.truncate(limit as usize);
    let history = WalletHistory { address: None, transactions };
    settings.output(&history, |h| show_history("the wallet", &own, &h.transactions))
}

// ---- inputs -------------------------------------------------------------

fn parse_address(text: &str, network: Network, flag: &str) -> Result<Address> {
    Address::parse(text, network).map_err(|e| anyhow!("{flag}: {e}"))
}

fn parse_amount(flag: &str, text: &str) -> Result<Amount> {
    Amount::parse_coins(text).map_err(|e| anyhow!("{flag}: {e}"))
}

/// A decimal height, or a block hash of 64 hex digits.
fn parse_block_id(text: &str) -> Result<BlockId> {
    if text.len() == 64 {
        if let Ok(hash) = BlockHash::from_hex(text) {
            return Ok(BlockId::Hash(hash));
        }
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(height) = text.parse::<u64>() {
            return Ok(BlockId::Height(height));
        }
    }
    bail!(
        "`{}` is neither a block height nor a block hash: give a decimal height or 64 hexadecimal digits",
        short(text)
    )
}

fn parse_txid(text: &str) -> Result<Txid> {
    Txid::from_hex(text)
        .map_err(|_| anyhow!("`{}` is not a transaction id: expected 64 hexadecimal digits", short(text)))
}

/// The node names addresses in its own network's form; another form means
/// the client and the node disagree on the network, and nothing the node says
/// about this address can be trusted to mean what the user thinks.
fn check_same_network(network: Network, asked: Address, answered: &str) -> Result<()> {
    if answered == asked.encode(network) {
        return Ok(());
    }
    let theirs = answered.split('1').next().and_then(Network::from_address_prefix);
    match theirs {
        Some(theirs) => {
            bail!("the node runs the {theirs} network, not {network}; give --network {theirs} or another --node")
        }
        None => bail!("the node answered about `{}`, not the address asked for", short(answered)),
    }
}

// ---- output for people --------------------------------------------------

fn coins(units: u64) -> String {
    Amount::from_units(units).to_string()
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_string()
}

fn show_status(s: &StatusReply) -> String {
    let listen = if s.listen_addrs.is_empty() { "(none)".to_string() } else { s.listen_addrs.join("\n") };
    fields(&[
        ("network", s.network.clone()),
        ("peer id", s.peer_id.clone()),
        ("listen addresses", listen),
        ("height", s.height.to_string()),
        ("best known height", s.best_known_height.to_string()),
        ("tip", s.tip.clone()),
        ("chain work", s.work.clone()),
        ("peers", s.peers.to_string()),
        ("mempool", format!("{} transactions", s.mempool)),
        ("mining", yes_no(s.mining)),
    ])
}

fn show_balance(b: &BalanceReply) -> String {
    fields(&[
        ("address", b.address.clone()),
        ("confirmed", coins(b.confirmed)),
        ("immature", coins(b.immature)),
        ("pending", coins(b.pending)),
        ("nonce", b.nonce.to_string()),
        ("next nonce", b.next_nonce.to_string()),
    ])
}

/// A history for people; `own` are the addresses it is the history of.
fn show_history(whose: &str, own: &[String], transactions: &[HistoryEntry]) -> String {
    if transactions.is_empty() {
        return format!("no transactions for {}\n", clean(whose));
    }
    let is_own = |a: &str| own.iter().any(|o| o == a);
    let rows = transactions
        .iter()
        .map(|t| {
            let (kind, counterparty, amount) = match &t.from {
                None => ("reward", "-".to_string(), format!("+{}", coins(t.amount))),
                Some(from) if is_own(from) && is_own(&t.to) => ("self", t.to.clone(), coins(t.amount)),
                Some(from) if is_own(from) => ("sent", t.to.clone(), format!("-{}", coins(t.amount))),
                Some(from) => ("received", from.clone(), format!("+{}", coins(t.amount))),
            };
            let height = t.height.map_or_else(|| "pending".to_string(), |h| h.to_string());
            vec![
                height,
                t.confirmations.to_string(),
                kind.to_string(),
                amount,
                coins(t.fee),
                counterparty,
                t.txid.clone(),
            ]
        })
        .collect::<Vec<_>>();
    table(
        &[
            ("HEIGHT", Align::Right),
            ("CONFIRMATIONS", Align::Right),
            ("TYPE", Align::Left),
            ("AMOUNT", Align::Right),
            ("FEE", Align::Right),
            ("COUNTERPARTY", Align::Left),
            ("TXID", Align::Left),
        ],
        &rows,
    )
}

fn show_chain_info(c: &ChainInfoReply) -> String {
    fields(&[
        ("network", c.network.clone()),
        ("height", c.height.to_string()),
        ("best block", c.best_block.clone()),
        ("headers", c.headers.to_string()),
        ("chain work", c.chain_work.clone()),
        ("difficulty", format!("{}", c.difficulty)),
        ("median time", format!("{} ({})", utc_time(c.median_time), c.median_time)),
        ("initial sync", yes_no(c.initial_sync)),
        ("sync progress", format!("{:.2}%", c.sync_progress * 100.0)),
        ("size on disk", format!("{} bytes", c.size_on_disk)),
    ])
}

fn show_mining_info(m: &MiningInfoReply) -> String {
    fields(&[
        ("mining", yes_no(m.mining)),
        ("threads", m.threads.to_string()),
        ("hash rate", format!("{:.0} H/s", m.hashrate)),
        ("network hash rate", format!("{:.0} H/s", m.network_hashrate)),
        ("difficulty", format!("{}", m.difficulty)),
    ])
}

/// The completion script of `shell` for every command and flag.
fn completions(shell: CompletionShell) -> String {
    use clap::CommandFactory;
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Args::command(), "ourcoin-cli", &mut script);
    String::from_utf8_lossy(&script).into_owned()
}

fn show_block(b: &BlockReply) -> String {
    let mut txids = Vec::with_capacity(b.txids.len());
    for (index, txid) in b.txids.iter().enumerate() {
        txids.push(if index == 0 { format!("{txid} (coinbase)") } else { txid.clone() });
    }
    let transactions = std::iter::once(b.txids.len().to_string()).chain(txids).collect::<Vec<_>>().join("\n");
    fields(&[
        ("hash", b.hash.clone()),
        ("height", b.height.to_string()),
        ("previous", b.prev.clone()),
        ("time", format!("{} ({})", utc_time(b.time), b.time)),
        ("target", b.target.clone()),
        ("nonce", b.nonce.to_string()),
        ("confirmations", b.confirmations.to_string()),
        ("aggregate signature", b.aggregate_signature.clone().unwrap_or_else(|| "none (no payments)".to_string())),
        ("transactions", transactions),
    ])
}

fn show_tx(t: &TxReply) -> String {
    fields(&[
        ("txid", t.txid.clone()),
        ("from", t.from.clone().unwrap_or_else(|| "(mining reward)".to_string())),
        ("to", t.to.clone()),
        ("amount", coins(t.amount)),
        ("fee", coins(t.fee)),
        ("nonce", t.nonce.map_or_else(|| "-".to_string(), |n| n.to_string())),
        ("height", t.height.map_or_else(|| "pending (in the mempool)".to_string(), |h| h.to_string())),
        ("block", t.block.clone().unwrap_or_else(|| "-".to_string())),
        ("confirmations", t.confirmations.to_string()),
    ])
}

fn show_peers(peers: &[PeerReply]) -> String {
    if peers.is_empty() {
        return "no connected peers\n".to_string();
    }
    let rows = peers
        .iter()
        .map(|p| {
            vec![
                clean(&p.peer_id),
                p.direction.clone(),
                p.agent.as_deref().map_or_else(|| "-".to_string(), clean),
                p.ping_ms.map_or_else(|| "-".to_string(), |ms| format!("{ms:.2}")),
                p.connected_s.to_string(),
                format!("{:.0}", p.score),
                clean(&p.addrs.join(", ")),
            ]
        })
        .collect::<Vec<_>>();
    table(
        &[
            ("PEER ID", Align::Left),
            ("DIRECTION", Align::Left),
            ("AGENT", Align::Left),
            ("PING MS", Align::Right),
            ("CONNECTED S", Align::Right),
            ("SCORE", Align::Right),
            ("ADDRESSES", Align::Left),
        ],
        &rows,
    )
}

fn show_mempool(m: &MempoolReply) -> String {
    let shown = m.txids.len() as u64;
    let mut out = if shown < m.count {
        format!("pending transactions: {} (the first {shown} listed; see --limit)\n", m.count)
    } else {
        format!("pending transactions: {}\n", m.count)
    };
    out.push_str(&format!("size: {} bytes\nlowest fee that gets in: {}\n", m.bytes, coins(m.min_fee)));
    for txid in &m.txids {
        out.push_str(&format!("  {}\n", clean(txid)));
    }
    out
}

/// `key: value` lines with the values aligned; a value with several lines
/// continues under its first.
fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(key, _)| key.len() + 1).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in rows {
        for (index, line) in value.split('\n').enumerate() {
            let label = if index == 0 { format!("{key}:") } else { String::new() };
            let line = format!("{label:<width$}  {}", clean(line));
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

enum Align {
    Left,
    Right,
}

/// An aligned table with a header row, two spaces between columns.
fn table(headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|row| row.iter().map(|cell| clean(cell)).collect()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|(title, _)| title.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let render = |cells: Vec<&str>| {
        let mut line = String::new();
        for ((cell, (_, align)), width) in cells.into_iter().zip(headers).zip(&widths) {
            if !line.is_empty() {
                line.push_str("  ");
            }
            match align {
                Align::Left => line.push_str(&format!("{cell:<width$}")),
                Align::Right => line.push_str(&format!("{cell:>width$}")),
            }
        }
        let mut line = line.trim_end().to_string();
        line.push('\n');
        line
    };
    let mut out = render(headers.iter().map(|(title, _)| *title).collect());
    for row in &rows {
        out.push_str(&render(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Seconds since the Unix epoch as a UTC date and time.
fn utc_time(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

// ---- text hygiene -------------------------------------------------------

/// Text from the node or the user, made safe for a terminal: control
/// characters (escape sequences, carriage returns) are shown as `?`.
fn clean(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// A user's input quoted back in an error, cut to a readable length.
fn short(text: &str) -> String {
    let cut: String = text.chars().take(80).collect();
    clean(&cut)
}

/// An error message on one line, whatever the node or the OS put in it.
fn one_line(text: &str) -> String {
    clean(&text.replace(['\n', '\r'], " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_time(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_time(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn block_ids_are_heights_or_hashes() {
        assert_eq!(parse_block_id("12").unwrap(), BlockId::Height(12));
        let hash = "ab".repeat(32);
        assert_eq!(parse_block_id(&hash).unwrap(), BlockId::Hash(BlockHash::from_hex(&hash).unwrap()));
        // 64 decimal digits read as a hash, not as an overflowing height.
        assert!(matches!(parse_block_id(&"1".repeat(64)).unwrap(), BlockId::Hash(_)));
        for bad in ["", "-1", "+1", "1.5", "12ab", &"ab".repeat(31), "99999999999999999999999"] {
            assert!(parse_block_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tables_align() {
        let rows = vec![vec!["1".to_string(), "a".to_string()], vec!["100".to_string(), "bcd".to_string()]];
        let out = table(&[("N", Align::Right), ("NAME", Align::Left)], &rows);
        assert_eq!(out, "  N  NAME\n  1  a\n100  bcd\n");
        let out = fields(&[("a", "1".to_string()), ("long key", "x\ny".to_string())]);
        assert_eq!(out, "a:         1\nlong key:  x\n           y\n");
    }

    #[test]
    fn node_text_cannot_drive_the_terminal() {
        assert_eq!(one_line("bad\x1b[2Jthing\nnext"), "bad?[2Jthing next");
    }
}
