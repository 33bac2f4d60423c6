//! Every decoder of bytes from a peer, a file or a user, as the node calls
//! it: nothing panics, and whatever decodes re-encodes to the same bytes
//! (files in JSON or TOML, which have many spellings of one value, instead
//! read back the same value from what the node would write).

use futures::io::Cursor;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{read_frame, write_frame};
use crate::consensus::verdict::{verdict, verdict_for_transaction};
use crate::consensus::{rules, ValidationError};
use crate::network::addrbook::AddressBook;
use crate::network::bans::Bans;
use crate::network::protocol::{SyncRequest, SyncResponse, MAX_SYNC_REQUEST_BYTES, MAX_SYNC_RESPONSE_BYTES};
use crate::node::config::resolve_config_text;
use crate::node::files::decode_saved_mempool;
use crate::rpc::{QueryRequest, QueryResponse, MAX_QUERY_REQUEST_BYTES, MAX_QUERY_RESPONSE_BYTES};
use crate::testkit::regtest;
use crate::types::{
    decode, encode, Block, BlockMessage, CompactBlock, PartialBlock, SignedTransaction, Transaction, MAX_BLOCK_BYTES,
    MAX_TX_BYTES,
};
use crate::wallet::Wallet;

/// `decode` as every caller uses it; a value that decodes must re-encode to
/// exactly its input (SPEC §4, "One encoding per value").
fn decode_canonically<T: Serialize + DeserializeOwned>(bytes: &[u8], cap: usize) -> Option<T> {
    match decode::<T>(bytes, cap) {
        Ok(value) => {
            assert!(bytes.len() <= cap, "decoded {} bytes over the cap of {cap}", bytes.len());
            assert_eq!(encode(&value), bytes, "a decoded value re-encodes to other bytes");
            Some(value)
        }
        Err(e) => {
            // What gossip does with a malformed message: a verdict, never a panic.
            let _ = verdict(&ValidationError::from(e));
            None
        }
    }
}

/// `bytes` as a request-response frame (4-byte length, then the value), read
/// by the codec the sync and query protocols share; what it reads is written
/// back as the same frame.
fn read_framed<T: Serialize + DeserializeOwned + Sync>(bytes: &[u8], cap: usize) -> Option<T> {
    futures::executor::block_on(async {
        let value: T = read_frame(&mut Cursor::new(bytes), cap).await.ok()?;
        let mut written = Cursor::new(Vec::new());
        assert!(write_frame(&mut written, &value, cap).await.is_ok(), "a frame that was read cannot be written");
        let written = written.into_inner();
        assert_eq!(Some(written.as_slice()), bytes.get(..written.len()), "a frame re-encodes to other bytes");
        Some(value)
    })
}

/// A block as sync receives it, then the context-free rules the chain runs
/// before anything else (signature included); and the same bytes as a
/// block-topic message, compact (rebuilt from no held payment, then from
/// the block's own payments when it is a full one) or whole.
pub fn block(data: &[u8]) {
    if let Some(block) = decode_canonically::<Block>(data, MAX_BLOCK_BYTES) {
        check_block(&block);
    }
    match decode_canonically::<BlockMessage>(data, BlockMessage::MAX_BYTES) {
        Some(BlockMessage::Compact(compact)) => {
            if let Ok(partial) = PartialBlock::new(compact, std::iter::empty()) {
                let missing = partial.missing();
                assert_eq!(missing.len(), partial.payments(), "nothing is placed from no candidate");
                assert_eq!(partial.block().is_some(), missing.is_empty());
            }
        }
        Some(BlockMessage::Full(block)) => {
            check_block(&block);
            // Its own compact form rebuilds it exactly from its own payments.
            let held: Vec<_> = block.body.transactions.iter().map(|tx| (tx.txid(), tx)).collect();
            if let Ok(partial) = PartialBlock::new(CompactBlock::of(&block), held) {
                assert_eq!(partial.block().as_ref(), Some(&block), "a block's compact form rebuilds it");
            }
        }
        None => {}
    }
}

fn check_block(block: &Block) {
    let _ = block.txids();
    if let Err(e) = rules::check_block(regtest(), block) {
        let _ = verdict(&e);
    }
}

/// A transaction: unsigned (as inside a block) and signed (as gossip, the
/// query protocol's submit and `ourcoin-cli sign` read it), with the rules
/// the mempool runs on a signed one.
pub fn transaction(data: &[u8]) {
    if let Some(tx) = decode_canonically::<Transaction>(data, MAX_TX_BYTES) {
        let _ = rules::check_transaction_fields(regtest(), &tx);
        let _ = tx.signing_message();
    }
    if let Some(stx) = decode_canonically::<SignedTransaction>(data, MAX_TX_BYTES) {
        if let Err(e) = rules::check_signed_transaction(regtest(), &stx) {
            let _ = verdict_for_transaction(&e);
        }
    }
}

/// Every sync request and response, bare and framed.
pub fn sync(data: &[u8]) {
    decode_canonically::<SyncRequest>(data, MAX_SYNC_REQUEST_BYTES);
    decode_canonically::<SyncResponse>(data, MAX_SYNC_RESPONSE_BYTES);
    read_framed::<SyncRequest>(data, MAX_SYNC_REQUEST_BYTES);
    read_framed::<SyncResponse>(data, MAX_SYNC_RESPONSE_BYTES);
}

/// Every query request and response, bare and framed.
pub fn query(data: &[u8]) {
    decode_canonically::<QueryRequest>(data, MAX_QUERY_REQUEST_BYTES);
    decode_canonically::<QueryResponse>(data, MAX_QUERY_RESPONSE_BYTES);
    read_framed::<QueryRequest>(data, MAX_QUERY_REQUEST_BYTES);
    read_framed::<QueryResponse>(data, MAX_QUERY_RESPONSE_BYTES);
}

/// The files the node and the wallet read, chosen by the first byte:
/// 0 the wallet, 1 the config file, 2 the saved mempool, 3 the address book,
/// 4 the bans.
pub fn files(data: &[u8]) {
    let Some((which, rest)) = data.split_first() else { return };
    match which % 5 {
        0 => wallet_file(rest),
        1 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = resolve_config_text(text);
            }
        }
        2 => {
            if let Ok(txs) = decode_saved_mempool(rest) {
                assert_eq!(encode(&txs), rest, "a saved mempool re-encodes to other bytes");
            }
        }
        3 => {
            if let Ok(book) = AddressBook::decode(rest) {
                // What was read is written back, and reads back the same.
                let saved = book.encode();
                let again = AddressBook::decode(&saved);
                assert!(again.is_ok(), "the address book the node writes does not read back");
                assert_eq!(again.map(|b| b.encode()).ok(), Some(saved), "the address book changes on a second reading");
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let now = 1_700_000_000;
                let bans = Bans::from_text(text, now, "bans.json");
                let saved = serde_json::to_string_pretty(&bans.entries());
                assert!(saved.is_ok(), "bans cannot be written");
                let again = Bans::from_text(&saved.unwrap_or_default(), now, "bans.json");
                assert_eq!(again, bans, "the bans change on a second reading");
            }
        }
    }
}

/// A wallet file, opened without a passphrase and, when its key derivation
/// is cheap, with one; what opens is saved and opens again to the same keys.
fn wallet_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let network = crate::types::Network::Regtest;
    let passphrase: &[u8] = b"correct horse";
    // Argon2 at the costs a file may ask (up to 4 GiB) is bounded but far
    // too slow for a fuzzer: try the passphrase only on light costs.
    let light = serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| {
        ["encrypted_mnemonic", "encrypted_secret_key"].iter().all(|field| {
            let params = &v[field]["kdf_params"];
            params.is_null()
                || (params["memory_kib"].as_u64().is_some_and(|m| m <= 256)
                    && params["iterations"].as_u64().is_some_and(|i| i <= 2)
                    && params["parallelism"].as_u64().is_some_and(|p| p <= 2))
        })
    });
    let attempts: &[Option<&[u8]>] = if light { &[None, Some(passphrase)] } else { &[None] };
    for attempt in attempts {
        let Ok((wallet, saved)) = Wallet::from_text(text, network, *attempt) else { continue };
        let Some(saved) = saved else { continue };
        let reopened = Wallet::from_text(&saved, network, *attempt);
        let keys = |w: &Wallet| w.keys().iter().map(|k| (k.index, k.label.clone(), k.address)).collect::<Vec<_>>();
        match reopened {
            Ok((again, _)) => assert_eq!(keys(&again), keys(&wallet), "a saved wallet reopens to other keys"),
            Err(e) => panic!("a wallet the node saved does not open: {e}"),
        }
    }
}
