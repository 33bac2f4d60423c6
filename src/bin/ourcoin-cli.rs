//! `ourcoin-cli`: the OurCoin wallet and node client. This milestone manages
//! the wallet file; the node commands arrive with the query protocol.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ourcoin::types::Network;
use ourcoin::wallet::Wallet;

#[derive(Parser, Debug)]
#[command(name = "ourcoin-cli", version, about = "The OurCoin wallet and node client")]
struct Args {
    /// Wallet file (default: ~/.ourcoin/<network>/wallet.json).
    #[arg(long, env = "OURCOIN_WALLET", global = true)]
    wallet: Option<PathBuf>,
    /// main, test or regtest.
    #[arg(long, default_value = "main", global = true)]
    network: Network,
    /// Print one JSON document.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The wallet file.
    #[command(subcommand)]
    Wallet(WalletCommand),
}

#[derive(Subcommand, Debug)]
enum WalletCommand {
    /// Create the wallet file (refuses to overwrite an existing one).
    New,
    /// Show the wallet's address.
    Address,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let path = match args.wallet {
        Some(path) => path,
        None => {
            let home = std::env::var_os("HOME").context("HOME is not set; give --wallet")?;
            PathBuf::from(home).join(".ourcoin").join(args.network.name()).join("wallet.json")
        }
    };
    let wallet = match args.command {
        Command::Wallet(WalletCommand::New) => Wallet::create(&path, args.network)?,
        Command::Wallet(WalletCommand::Address) => Wallet::load(&path, args.network)?,
    };
    let address = wallet.address().encode(args.network);
    if args.json {
        println!("{}", serde_json::json!({ "address": address }));
    } else {
        println!("{address}");
    }
    Ok(())
}
