//! The load of netsim's `--big-blocks` mode (`scripts/netsim.sh`): blocks of
//! thousands of payments, which `ourcoin-cli send` is far too slow to make.
//!
//! ```text
//! cargo build --release --example netsim_blocks
//! netsim_blocks prepare OUT --payments N
//! netsim_blocks run OUT --connect MULTIADDR
//! ```
//!
//! `prepare` writes, under OUT: `chain`, a regtest chain (a sled store, as
//! a node keeps it in its datadir) funding one payer for every
//! `MAX_FUTURE_NONCES` payments; `blocks.bin`, the payments P1 and P2 (N
//! each, signed ahead) and the blocks B1 (P1, on the chain's tip) and B2
//! (P2, on B1); and `prepared`, lines of `template_height H`, `payments N`
//! and `block K HASH` for the script. P2 is paid by the same payers at the
//! next nonces: a node's mempool keeps at most `MAX_FUTURE_NONCES` payments
//! of a sender ahead of its account, so P2 is admitted only once B1 is
//! connected, and the two blocks' payments are never pending together.
//!
//! `run` is a peer that keeps connected to the node at MULTIADDR alone (so
//! what it publishes enters the network there) and does what lines on its
//! standard input say, answering each with one line on standard output:
//!
//! ```text
//! payments K FROM TO     publish payments FROM..TO of block K (1 or 2)  ->  sent K FROM TO
//! block K compact|full   publish block K as that message                ->  published K KIND UNIX_SECS HASH BYTES
//! ```
//!
//! UNIX_SECS is the time the message was handed to the peer's event loop;
//! BYTES the message's size. It stops at the end of its input.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::{Parser, Subcommand};
use ourcoin::chain::NoSignatures;
use ourcoin::mempool::MAX_FUTURE_NONCES;
use ourcoin::network::Topic;
use ourcoin::testkit::{block_on_tip, now_for};
use ourcoin::types::{decode, encode, Address, Block, BlockMessage, CompactBlock, SignedTransaction};
use serde::{Deserialize, Serialize};

// The report's other uses of this module (a lying peer, one that dials
// whatever it discovers) are not needed here.
#[allow(dead_code)]
#[path = "../benches/common/relay.rs"]
mod relay;

use relay::{copy_chain, funded_payments, BenchPeer, Role};

/// Seeds of the payer keys: any, as long as the prepared files and the chain agree.
const FIRST_PAYER_SEED: u64 = 50_000;
/// Payments handed to the peer's event loop at once, and the pause after
/// each chunk, so its queue to the node never holds many more.
const PUBLISH_CHUNK: usize = 100;
const PUBLISH_PAUSE: Duration = Duration::from_millis(20);

#[derive(Parser)]
#[command(about = "Blocks of many payments for scripts/netsim.sh --big-blocks")]
struct Args {
    #[command(subcommand)]
    step: Step,
}

#[derive(Subcommand)]
enum Step {
    /// Build the funded chain, the payments and the two blocks under OUT.
    Prepare {
        out: PathBuf,
        /// Payments in each of the two blocks.
        #[arg(long)]
        payments: usize,
    },
    /// Publish them to one node, as the lines on standard input say.
    Run {
        /// What `prepare` wrote.
        prepared: PathBuf,
        /// The node's peer address, ending in /p2p/<peer id>.
        #[arg(long)]
        connect: libp2p::Multiaddr,
    },
}

/// What `run` publishes: index 0 is P1 and B1, index 1 P2 and B2.
#[derive(Serialize, Deserialize)]
struct Prepared {
    payments: [Vec<SignedTransaction>; 2],
    blocks: [Block; 2],
}

fn main() {
    let result = match Args::parse().step {
        Step::Prepare { out, payments } => prepare(&out, payments),
        Step::Run { prepared, connect } => run(&prepared, connect),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn prepare(out: &Path, count: usize) -> Result<()> {
    ensure!(count > 0, "--payments must be at least 1");
    let per_payer = MAX_FUTURE_NONCES as usize;
    let payers = count.div_ceil(per_payer);
    eprintln!("netsim_blocks: funding {payers} payers and signing {} payments", 2 * count);
    // Payment j of block k (k = 0, 1) is payer j / 16's; its nonce follows
    // the payer's payments in the blocks before (the last payer may have
    // fewer than 16 a block).
    let in_each_block = |payer: usize| per_payer.min(count - payer * per_payer);
    let (mut chain, mut payments) = funded_payments(
        FIRST_PAYER_SEED,
        payers as u64,
        2 * count,
        |i| (i % count) / per_payer,
        |i| ((i / count) * in_each_block((i % count) / per_payer) + (i % count) % per_payer) as u64,
    )?;
    let second = payments.split_off(count);
    let first = payments;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let template_height = chain.height();
    // The nodes start on the chain without B1 and B2.
    copy_chain(&chain, out)?;
    let miner = Address([0x44; 20]);
    let b1 = block_on_tip(&chain, miner, &first);
    chain.accept_block(b1.clone(), now_for(&chain), &NoSignatures).map_err(|e| anyhow!("connecting B1: {e}"))?;
    let b2 = block_on_tip(&chain, miner, &second);
    // What the nodes will be asked to connect must connect here.
    chain.accept_block(b2.clone(), now_for(&chain), &NoSignatures).map_err(|e| anyhow!("connecting B2: {e}"))?;
    let summary =
        format!("template_height {template_height}\npayments {count}\nblock 1 {}\nblock 2 {}\n", b1.hash(), b2.hash());
    let prepared = Prepared { payments: [first, second], blocks: [b1, b2] };
    let blocks_path = out.join("blocks.bin");
    std::fs::write(&blocks_path, encode(&prepared)).with_context(|| format!("writing {}", blocks_path.display()))?;
    std::fs::write(out.join("prepared"), summary).context("writing the summary")?;
    eprintln!("netsim_blocks: chain at height {template_height} and two blocks written to {}", out.display());
    Ok(())
}

fn run(dir: &Path, connect: libp2p::Multiaddr) -> Result<()> {
    let path = dir.join("blocks.bin");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {} (run prepare first)", path.display()))?;
    let prepared: Prepared = decode(&bytes, bytes.len()).with_context(|| format!("decoding {}", path.display()))?;
    // Like a miner, it answers for its blocks: a node that lacks some of
    // a compact block's payments asks the sender for them.
    let peer = BenchPeer::connected_to(Role::Publisher, vec![connect], prepared.blocks.to_vec())?;
    eprintln!("netsim_blocks: peer {} up", peer.client.peer_id);
    let mut stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading a command")?;
        let reply = command(&peer, &prepared, line.split_whitespace().collect::<Vec<_>>().as_slice())
            .with_context(|| format!("the command '{line}'"))?;
        writeln!(stdout, "{reply}").context("answering")?;
    }
    Ok(())
}

/// Does what one line of input says; the line to answer with.
fn command(peer: &BenchPeer, prepared: &Prepared, words: &[&str]) -> Result<String> {
    let index = |word: &str| -> Result<usize> {
        match word {
            "1" => Ok(0),
            "2" => Ok(1),
            _ => bail!("a block is 1 or 2, not '{word}'"),
        }
    };
    match words {
        ["payments", k, from, to] => {
            let payments = &prepared.payments[index(k)?];
            let (from, to): (usize, usize) = (from.parse()?, to.parse()?);
            let range = payments.get(from..to).with_context(|| format!("block {k} has {} payments", payments.len()))?;
            for (n, chunk) in range.chunks(PUBLISH_CHUNK).enumerate() {
                if n > 0 {
                    thread::sleep(PUBLISH_PAUSE);
                }
                for payment in chunk {
                    peer.publish(Topic::Transactions, encode(payment))?;
                }
            }
            Ok(format!("sent {k} {from} {to}"))
        }
        ["block", k, kind] => {
            let block = &prepared.blocks[index(k)?];
            let message = match *kind {
                "compact" => BlockMessage::Compact(CompactBlock::of(block)),
                "full" => BlockMessage::Full(block.clone()),
                _ => bail!("a block is sent compact or full, not '{kind}'"),
            };
            let bytes = encode(&message);
            let size = bytes.len();
            peer.publish(Topic::Blocks, bytes)?;
            let at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
            Ok(format!("published {k} {kind} {at:.6} {} {size}", block.hash()))
        }
        _ => bail!("expected 'payments K FROM TO' or 'block K compact|full'"),
    }
}
