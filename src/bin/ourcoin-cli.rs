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
use ourcoin::consensus::Params;
use ourcoin::mempool::MIN_RELAY_FEE;
use ourcoin::network::bans::BanTarget;
use ourcoin::rpc::client::QueryClient;
use ourcoin::rpc::{
    BalanceReply, BlockId, BlockReply, HistoryReply, MempoolReply, NodeCommand, NodeReply, PeerReply, QueryRequest,
    QueryResponse, StatusReply, TxReply, MAX_LIST_LIMIT,
};
use ourcoin::types::{Address, Amount, BlockHash, Network, Txid};
use ourcoin::wallet::{KdfParams, Wallet};
use serde::Serialize;

/// How long the client waits to connect, and then for each answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The fee `send` pays unless `--fee` says otherwise (SPEC §3).
const DEFAULT_FEE: Amount = Amount::from_units(10_000);

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
    Send {
        /// The recipient's address.
        #[arg(long, value_name = "ADDRESS", allow_hyphen_values = true)]
        to: String,
        /// Coins to send, like 12.5.
        #[arg(long, value_name = "AMOUNT", allow_hyphen_values = true)]
        amount: String,
        /// Fee in coins [default: 0.0001].
        #[arg(long, value_name = "AMOUNT", allow_hyphen_values = true)]
        fee: Option<String>,
    },
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

#[derive(Subcommand, Debug)]
enum WalletCommand {
    /// Create the wallet file (refuses to overwrite an existing one).
    New {
        /// Seal the key under a passphrase (asked at the terminal, or --passphrase-file).
        #[arg(long)]
        encrypt: bool,
    },
    /// Show the wallet's address.
    Address,
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
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the passphrase file {}", path.display()))?;
            let line = text.lines().next().unwrap_or_default().to_string();
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
        command => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(node_command(&settings, command))
        }
    }
}

fn wallet_command(settings: &Settings, command: WalletCommand) -> Result<String> {
    let path = settings.wallet_path()?;
    let wallet = match command {
        WalletCommand::New { encrypt: false } => Wallet::create(&path, settings.network)?,
        WalletCommand::New { encrypt: true } => {
            if path.exists() {
                bail!("wallet file {} already exists; refusing to overwrite it", path.display());
            }
            let passphrase = settings.passphrase("New wallet passphrase: ", true)?;
            Wallet::create_with(&path, settings.network, Some((passphrase.as_bytes(), kdf_params())))?
        }
        WalletCommand::Address => {
            let address = Wallet::address_of(&path, settings.network)?.encode(settings.network);
            return settings.output(&serde_json::json!({ "address": address }), |_| format!("{address}\n"));
        }
    };
    let address = wallet.address().encode(settings.network);
    settings.output(&serde_json::json!({ "address": address }), |_| format!("{address}\n"))
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
        Command::Wallet(_) => bail!("wallet commands do not ask the node"),
        Command::Send { to, amount, fee } => send(settings, &to, &amount, fee.as_deref()).await,
        Command::Balance { address } => {
            let address = address.map(|text| Address::parse(&text, settings.network)).transpose()?;
            let node = settings.node()?;
            let address = match address {
                Some(address) => address,
                None => Wallet::address_of(&settings.wallet_path()?, settings.network)?,
            };
            let reply = expect_reply!(ask(&node, QueryRequest::Balance { address }).await?, Balance, "balance");
            check_same_network(settings.network, address, &reply.address)?;
            settings.output(&reply, show_balance)
        }
        Command::History { address, limit } => {
            let address = address.map(|text| Address::parse(&text, settings.network)).transpose()?;
            let node = settings.node()?;
            let address = match address {
                Some(address) => address,
                None => Wallet::address_of(&settings.wallet_path()?, settings.network)?,
            };
            let request = QueryRequest::History { address, limit };
            let reply = expect_reply!(ask(&node, request).await?, History, "history");
            check_same_network(settings.network, address, &reply.address)?;
            settings.output(&reply, show_history)
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

/// Validates everything the user typed before touching the wallet or the
/// node, takes the nonce and the balance from the node, and submits.
async fn send(settings: &Settings, to: &str, amount: &str, fee: Option<&str>) -> Result<String> {
    let to = parse_address(to, settings.network, "--to")?;
    let amount = parse_amount("--amount", amount)?;
    if amount == Amount::ZERO {
        bail!("--amount: the amount must be more than 0");
    }
    let fee = match fee {
        Some(text) => parse_amount("--fee", text)?,
        None => DEFAULT_FEE,
    };
    if fee < MIN_RELAY_FEE {
        bail!("--fee: {fee} is below the minimum relay fee of {MIN_RELAY_FEE}; nodes would not relay the payment");
    }
    let total = amount.checked_add(fee).context("--amount: the amount plus the fee is too large")?;
    let node = settings.node()?;
    let wallet = settings.load_wallet()?;
    let from = wallet.address();

    let mut client = QueryClient::connect(&node, QUERY_TIMEOUT).await?;
    let balance = expect_reply!(client.request(QueryRequest::Balance { address: from }).await?, Balance, "balance");
    check_same_network(settings.network, from, &balance.address)?;
    if total.units() > balance.pending {
        bail!(
            "insufficient funds: sending {amount} with a fee of {fee} needs {total}, but {} has {} available{}",
            balance.address,
            Amount::from_units(balance.pending),
            match balance.immature {
                0 => String::new(),
                immature => format!(" ({} more are mining rewards not yet mature)", Amount::from_units(immature)),
            }
        );
    }
    let payment = wallet.pay(Params::get(settings.network).chain_id, to, amount, fee, balance.next_nonce);
    let submitted = expect_reply!(client.request(QueryRequest::Submit(payment)).await?, Submitted, "submit");
    settings.output(&submitted, |reply| format!("{}\n", clean(&reply.txid)))
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

fn show_history(h: &HistoryReply) -> String {
    if h.transactions.is_empty() {
        return format!("no transactions for {}\n", clean(&h.address));
    }
    let rows = h
        .transactions
        .iter()
        .map(|t| {
            let (kind, counterparty, amount) = match &t.from {
                None => ("reward", "-".to_string(), format!("+{}", coins(t.amount))),
                Some(from) if *from == h.address && t.to == h.address => ("self", t.to.clone(), coins(t.amount)),
                Some(from) if *from == h.address => ("sent", t.to.clone(), format!("-{}", coins(t.amount))),
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
