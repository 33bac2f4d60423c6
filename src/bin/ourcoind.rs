//! `ourcoind`: the OurCoin node. Flags and config file in, the node out:
//! everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use ourcoin::chain::Chain;
use ourcoin::consensus::Params;
use ourcoin::network::{self, NetworkConfig};
use ourcoin::node::config::{resolve, Flags, NodeConfig};
use ourcoin::node::{files, DataFiles, Node, Stopped};
use ourcoin::rpc::StatusBoard;
use ourcoin::store::SledStore;
use ourcoin::types::Network;
use ourcoin::wallet::{Wallet, WalletError};

/// `ourcoind`'s command line: the library's [`Flags`], parsed by clap.
#[derive(Parser, Debug, Clone, Default)]
#[command(name = "ourcoind", version, about = "The OurCoin node: mines, validates, relays, stores, serves queries")]
struct Args {
    /// TOML config file (default: <datadir>/ourcoind.toml, when it exists).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (default: ~/.ourcoin/<network>).
    #[arg(long, value_name = "DIR")]
    datadir: Option<PathBuf>,
    /// The network: main (default), test or regtest.
    #[arg(long, value_name = "main|test|regtest")]
    network: Option<Network>,
    /// Address to listen on (repeatable; default: /ip4/0.0.0.0/tcp/<network's port>).
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// A peer to join through, ending in /p2p/<peer id> (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    bootstrap: Vec<String>,
    /// An address others can reach this node at, announced to peers (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    external_addr: Vec<String>,
    /// Networks whose peers may use the query protocol (repeatable; default: loopback only).
    #[arg(long, value_name = "CIDR")]
    query_allow: Vec<String>,
    /// Peer connections at most (default: 125).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Outbound peers the node dials and keeps, across distinct networks (default: 8).
    #[arg(long, value_name = "N")]
    outbound_peers: Option<usize>,
    /// Dial only this peer (repeatable); no discovery, as bitcoind's -connect.
    #[arg(long, value_name = "MULTIADDR")]
    connect: Vec<String>,
    /// Rebuild the ledger and every index from the stored blocks.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    reindex: Option<bool>,
    /// Mine blocks paying --miner-address.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    mine: Option<bool>,
    /// Testing only: every block write after the first N fails, as a failing disk would.
    #[arg(long, value_name = "N", hide = true)]
    debug_fail_writes_after: Option<u64>,
    /// The address mining rewards are paid to.
    #[arg(long, value_name = "ADDRESS")]
    miner_address: Option<String>,
    /// Mining threads (default: 1).
    #[arg(long, value_name = "N")]
    miner_threads: Option<usize>,
    /// Log filter, as RUST_LOG (default: info).
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
    /// A private playground: regtest, mining to a wallet created in the datadir.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    dev: Option<bool>,
    /// Serve Prometheus metrics at http://IP:PORT/metrics (off by default).
    #[arg(long, value_name = "IP:PORT")]
    metrics: Option<String>,
    /// Run COMMAND (through sh -c) at each new best block; %s is its hash.
    #[arg(long, value_name = "COMMAND", allow_hyphen_values = true)]
    blocknotify: Option<String>,
    /// Publish mined blocks whole instead of compact (for measurements).
    #[arg(long, hide = true)]
    relay_full_blocks: bool,
}

impl From<Args> for Flags {
    fn from(a: Args) -> Flags {
        Flags {
            config: a.config,
            datadir: a.datadir,
            network: a.network,
            listen: a.listen,
            bootstrap: a.bootstrap,
            external_addr: a.external_addr,
            query_allow: a.query_allow,
            max_connections: a.max_connections,
            outbound_peers: a.outbound_peers,
            connect: a.connect,
            reindex: a.reindex,
            mine: a.mine,
            debug_fail_writes_after: a.debug_fail_writes_after,
            miner_address: a.miner_address,
            miner_threads: a.miner_threads,
            log: a.log,
            dev: a.dev,
            metrics: a.metrics,
            blocknotify: a.blocknotify,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let relay_full_blocks = args.relay_full_blocks;
    let config = match resolve(args.into()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A lone node's Kademlia warns every minute that it knows no peers: not news.
    let filter =
        if config.log.contains("libp2p_kad") { config.log.clone() } else { format!("{},libp2p_kad=error", config.log) };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, relay_full_blocks)) {
        Ok(Stopped::Clean) => ExitCode::SUCCESS,
        Ok(Stopped::Fatal(reason)) => {
            eprintln!("error: {reason}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut config: NodeConfig, relay_full_blocks: bool) -> Result<Stopped> {
    let params = Params::get(config.network);
    let datadir = config.datadir.clone();
    std::fs::create_dir_all(&datadir)
        .with_context(|| format!("cannot create the data directory {}", datadir.display()))?;

    if config.dev && config.miner_address.is_none() {
        let path = datadir.join("wallet.json");
        let wallet = match Wallet::load(&path, config.network) {
            Ok(wallet) => wallet,
            Err(WalletError::NotFound(_)) => {
                let wallet = Wallet::create(&path, config.network)?;
                eprintln!(
                    "Created wallet {} from a new recovery phrase; `ourcoin-cli --network {} --wallet {} wallet mnemonic` shows it.",
                    path.display(),
                    config.network,
                    path.display()
                );
                wallet
            }
            Err(e) => return Err(e.into()),
        };
        config.miner_address = Some(wallet.address());
        let node = config.listen.first().map(|a| a.to_string()).unwrap_or_default().replace("0.0.0.0", "127.0.0.1");
        let cli = format!("ourcoin-cli --network {} --node {node} --wallet {}", config.network, path.display());
        eprintln!(
            "\nDevelopment node: regtest, mining to {} (wallet {}).\nTry, in another terminal:\n  {cli} status\n  {cli} balance\n  {cli} wallet new --wallet /tmp/other.json && {cli} send --to <that address> --amount 1.5\n  {cli} history\n",
            wallet.address().encode(config.network),
            path.display()
        );
    }

    let key = files::load_or_create_identity(&datadir.join("node_key"))?;
    let peer_id = key.public().to_peer_id();
    tracing::info!(%peer_id, network = %config.network, datadir = %datadir.display(), "starting ourcoind");

    let store = SledStore::open(&datadir.join("chain")).context("cannot open the chain database")?;
    let mut store =
        if config.reindex { ourcoin::store::reindex(store, params).context("reindex failed")? } else { store };
    if let Some(writes) = config.debug_fail_writes_after {
        tracing::warn!(writes, "testing: every block write after these will fail");
        store.fail_writes_after(writes);
    }
    let chain = Chain::open(params, store).context("cannot open the chain")?;
    tracing::info!(height = chain.height(), tip = %chain.tip(), "chain loaded");

    let cookie = files::load_or_create_cookie(&datadir.join(".cookie"))?;
    let allow = config.query_allow.clone();
    let status_board = StatusBoard::default();
    // The metrics exist before the network, so gossipsub can register its own.
    let mut metrics = config.metrics.map(|addr| (addr, ourcoin::metrics::Metrics::new()));
    let gossip_registry = metrics.as_mut().map(|(_, m)| m.registry_mut());
    let (client, events, event_loop) = network::event_loop::new_with_gossip_metrics(
        key,
        params,
        NetworkConfig {
            listen: config.listen.clone(),
            external_addrs: config.external_addrs.clone(),
            bootstrap: config.bootstrap.clone(),
            connect: config.connect.clone(),
            limits: network::peer_set::Limits {
                max_connections: config.max_connections,
                outbound_target: config.outbound_peers,
            },
            query_allowed: Box::new(move |ip| allow.iter().any(|cidr| cidr.contains(ip))),
            status: Some(status_board.clone()),
            datadir: Some(datadir.clone()),
            cookie: Some(cookie),
        },
        gossip_registry,
    )?;
    let metrics = match metrics {
        Some((addr, metrics)) => {
            let metrics = std::sync::Arc::new(metrics);
            let bound = ourcoin::metrics::serve(addr, metrics.clone())
                .await
                .with_context(|| format!("--metrics: cannot listen on {addr}"))?;
            tracing::info!("serving metrics at http://{bound}/metrics");
            Some(metrics)
        }
        None => None,
    };
    let event_loop = match &metrics {
        Some(metrics) => event_loop.with_metrics(metrics.clone()),
        None => event_loop,
    };
    let network_task = tokio::spawn(event_loop.run());

    let data_files = DataFiles { mempool: datadir.join("mempool.dat") };
    let mining = if config.mine { config.miner_address.map(|a| (config.miner_threads, a)) } else { None };
    let blocknotify = config.blocknotify.clone().map(ourcoin::node::notify::BlockNotify::new);
    let node = Node::new(chain, client, data_files, mining, status_board)
        .with_operator(metrics, blocknotify)
        .with_full_block_relay(relay_full_blocks);
    // The node validates and stores on a thread of its own; this runtime
    // keeps polling the swarm whatever the node is busy with.
    let (stop, stop_rx) = tokio::sync::oneshot::channel();
    let mut stopped = node.spawn(events, stop_rx).context("cannot start the node thread")?;
    let outcome = tokio::select! {
        outcome = &mut stopped => outcome,
        () = shutdown_signal() => {
            let _ = stop.send(());
            (&mut stopped).await
        }
    };
    // With the node gone, the event loop sees its last client drop, saves
    // the address book and ends; it is not waited for long.
    if tokio::time::timeout(std::time::Duration::from_secs(3), network_task).await.is_err() {
        tracing::warn!("the network did not stop within 3 s; the address book may not be saved");
    }
    Ok(outcome.unwrap_or_else(|_| Stopped::Fatal("the node thread ended without a word".into())))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutting down");
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn flags(words: &[&str]) -> Flags {
        Args::try_parse_from(std::iter::once("ourcoind").chain(words.iter().copied())).unwrap().into()
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn boolean_flags_take_an_optional_value() {
        assert_eq!(flags(&["--mine"]).mine, Some(true));
        assert_eq!(flags(&["--mine=false"]).mine, Some(false));
        assert_eq!(flags(&["--reindex=true"]).reindex, Some(true));
        assert_eq!(flags(&[]).dev, None);
        // The value must be attached, so a stray word is not read as one.
        assert!(Args::try_parse_from(["ourcoind", "--mine", "false"]).is_err());
    }

    #[test]
    fn every_flag_reaches_the_library() {
        let parsed = flags(&[
            "--config=/c.toml",
            "--datadir=/d",
            "--network=regtest",
            "--listen=/ip4/127.0.0.1/tcp/1",
            "--bootstrap=/ip4/127.0.0.1/tcp/2",
            "--external-addr=/ip4/127.0.0.1/tcp/3",
            "--query-allow=10.0.0.0/8",
            "--max-connections=40",
            "--outbound-peers=4",
            "--connect=/ip4/127.0.0.1/tcp/4",
            "--reindex",
            "--mine",
            "--debug-fail-writes-after=4",
            "--miner-address=roc1",
            "--miner-threads=2",
            "--log=debug",
            "--dev",
            "--metrics=127.0.0.1:5",
            "--blocknotify=echo %s",
        ]);
        assert_eq!(
            parsed,
            Flags {
                config: Some("/c.toml".into()),
                datadir: Some("/d".into()),
                network: Some(Network::Regtest),
                listen: vec!["/ip4/127.0.0.1/tcp/1".into()],
                bootstrap: vec!["/ip4/127.0.0.1/tcp/2".into()],
                external_addr: vec!["/ip4/127.0.0.1/tcp/3".into()],
                query_allow: vec!["10.0.0.0/8".into()],
                max_connections: Some(40),
                outbound_peers: Some(4),
                connect: vec!["/ip4/127.0.0.1/tcp/4".into()],
                reindex: Some(true),
                mine: Some(true),
                debug_fail_writes_after: Some(4),
                miner_address: Some("roc1".into()),
                miner_threads: Some(2),
                log: Some("debug".into()),
                dev: Some(true),
                metrics: Some("127.0.0.1:5".into()),
                blocknotify: Some("echo %s".into()),
            }
        );
    }
}
