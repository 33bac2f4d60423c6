//! `ourcoind`: the OurCoin node. Flags and config file in, the node out:
//! everything else lives in the library.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use ourcoin::chain::Chain;
use ourcoin::consensus::Params;
use ourcoin::network::{self, NetworkConfig};
use ourcoin::node::config::{resolve, Args, NodeConfig};
use ourcoin::node::{files, DataFiles, Node, Stopped};
use ourcoin::rpc::StatusBoard;
use ourcoin::store::SledStore;
use ourcoin::wallet::{Wallet, WalletError};

fn main() -> ExitCode {
    let config = match resolve(Args::parse()) {
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
    match runtime.block_on(run(config)) {
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

async fn run(mut config: NodeConfig) -> Result<Stopped> {
    let params = Params::get(config.network);
    let datadir = config.datadir.clone();
    std::fs::create_dir_all(&datadir)
        .with_context(|| format!("cannot create the data directory {}", datadir.display()))?;

    if config.dev && config.miner_address.is_none() {
        let path = datadir.join("wallet.json");
        let wallet = match Wallet::load(&path, config.network) {
            Ok(wallet) => wallet,
            Err(WalletError::NotFound(_)) => Wallet::create(&path, config.network)?,
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

    let allow = config.query_allow.clone();
    let status_board = StatusBoard::default();
    let (client, events, event_loop) = network::event_loop::new(
        key,
        params,
        NetworkConfig {
            listen: config.listen.clone(),
            external_addrs: config.external_addrs.clone(),
            query_allowed: Box::new(move |ip| allow.iter().any(|cidr| cidr.contains(ip))),
            status: Some(status_board.clone()),
        },
    )?;
    let network_task = tokio::spawn(event_loop.run());

    let data_files = DataFiles { peers: datadir.join("peers.json"), mempool: datadir.join("mempool.dat") };
    let known_peers = files::load_known_peers(&data_files.peers);
    let mining = if config.mine { config.miner_address.map(|a| (config.miner_threads, a)) } else { None };
    let node = Node::new(chain, client, known_peers, data_files, mining, status_board);
    // The node validates and stores on a thread of its own; this runtime
    // keeps polling the swarm whatever the node is busy with.
    let (stop, stop_rx) = tokio::sync::oneshot::channel();
    let mut stopped = node.spawn(events, config.bootstrap.clone(), stop_rx).context("cannot start the node thread")?;
    let outcome = tokio::select! {
        outcome = &mut stopped => outcome,
        () = shutdown_signal() => {
            let _ = stop.send(());
            (&mut stopped).await
        }
    };
    network_task.abort();
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
