//! `ourcoind`: the OurCoin node. This milestone opens (or creates) the chain
//! database and can mine on it alone; the libp2p network comes next.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;
use ourcoin::chain::{Chain, NoSignatures};
use ourcoin::consensus::Params;
use ourcoin::miner::{assemble_block, mine, MineOutcome};
use ourcoin::store::SledStore;
use ourcoin::types::{Address, Network};

#[derive(Parser, Debug)]
#[command(name = "ourcoind", version, about = "The OurCoin node")]
struct Args {
    /// Data directory (default: ~/.ourcoin/<network>).
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// main, test or regtest.
    #[arg(long, default_value = "main")]
    network: Network,
    /// Mine blocks paying --miner-address.
    #[arg(long, requires = "miner_address")]
    mine: bool,
    #[arg(long)]
    miner_address: Option<String>,
    /// Mining threads.
    #[arg(long, default_value_t = 1)]
    miner_threads: u64,
    /// Log filter, as RUST_LOG.
    #[arg(long)]
    log: Option<String>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let filter = args.log.clone().or_else(|| std::env::var("RUST_LOG").ok()).unwrap_or_else(|| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    let params = Params::get(args.network);
    let miner = match (&args.miner_address, args.mine) {
        (Some(text), true) => Some(Address::parse(text, args.network)?),
        _ => None,
    };
    if args.miner_threads == 0 {
        bail!("--miner-threads must be at least 1");
    }
    let datadir = match args.datadir {
        Some(dir) => dir,
        None => {
            let home = std::env::var_os("HOME").context("HOME is not set; give --datadir")?;
            PathBuf::from(home).join(".ourcoin").join(args.network.name())
        }
    };
    std::fs::create_dir_all(&datadir).with_context(|| format!("cannot create {}", datadir.display()))?;
    let store = SledStore::open(&datadir.join("chain")).context("cannot open the chain database")?;
    let mut chain = Chain::open(params, store).context("cannot open the chain")?;
    tracing::info!(network = %args.network, height = chain.height(), tip = %chain.tip(), datadir = %datadir.display(), "chain opened");

    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            runtime.block_on(wait_for_signal());
            stop.store(true, Ordering::SeqCst);
        });
    }

    match miner {
        Some(address) => mine_alone(&mut chain, address, args.miner_threads, &stop)?,
        None => {
            tracing::info!("no network yet: waiting for Ctrl-C");
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    chain.flush()?;
    tracing::info!(height = chain.height(), "stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Nonces a thread tries between looks at the stop flag.
const NONCES_PER_ROUND: u64 = 1 << 22;

/// Mines on the local chain with `threads` plain threads until `stop` is set.
fn mine_alone(chain: &mut Chain<SledStore>, address: Address, threads: u64, stop: &AtomicBool) -> Result<()> {
    let params = chain.params();
    while !stop.load(Ordering::SeqCst) {
        // Never faster than the block time: a policy that keeps regtest at a steady pace.
        let earliest = chain.tip_header().time.saturating_add(params.block_time_secs);
        if params.network == Network::Regtest && unix_now() < earliest {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let next = chain.next_block();
        let mut block = assemble_block(&next, unix_now(), address, &[])?;
        let round_done = AtomicBool::new(false);
        let found = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let header = block.header;
                    let round_done = &round_done;
                    scope.spawn(move || {
                        let mut start = i;
                        while !stop.load(Ordering::Relaxed) && !round_done.load(Ordering::Relaxed) {
                            match mine(&header, start, threads, NONCES_PER_ROUND, round_done) {
                                MineOutcome::Found(found) => {
                                    round_done.store(true, Ordering::Relaxed);
                                    return Some(found);
                                }
                                MineOutcome::Cancelled => return None,
                                MineOutcome::Exhausted => {
                                    start = start.wrapping_add(NONCES_PER_ROUND.wrapping_mul(threads))
                                }
                            }
                        }
                        None
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok().flatten()).next()
        });
        let Some(header) = found else { continue };
        block.header = header;
        let hash = block.hash();
        chain.accept_block(block, unix_now(), &NoSignatures)?;
        chain.flush()?;
        tracing::info!(height = chain.height(), %hash, "mined a block");
    }
    Ok(())
}
