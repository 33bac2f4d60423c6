//! The fuzz targets without a fuzzer: every target on its committed seed
//! corpus (`tests/fuzz/corpus/<target>/`, crashing inputs included once
//! fixed), and on inputs proptest generates: seeds with bytes changed for
//! the decoders, plain bytes for the structure-aware targets.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

/// The largest seed kept in the repository ("a few KB each").
const MAX_SEED_BYTES: usize = 8 * 1024;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus").join(target)
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no seed corpus at {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths.into_iter().map(|path| std::fs::read(path).unwrap()).collect()
}

#[test]
fn every_target_replays_its_seed_corpus() {
    for (name, target) in TARGETS {
        let seeds = seeds(name);
        assert!(!seeds.is_empty(), "target {name} has no seed corpus");
        for seed in &seeds {
            assert!(seed.len() <= MAX_SEED_BYTES, "a seed of {name} is {} bytes", seed.len());
            target(seed);
        }
    }
}

#[test]
fn every_fuzz_target_has_a_body_here() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    files.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(name, _)| name.to_string()).collect();
    names.sort();
    assert_eq!(files, names);
}

/// A seed of `target` with a few bytes overwritten, some inserted and the end cut.
fn mutated_seed(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds(target);
    let count = seeds.len();
    (0..count, proptest::collection::vec((any::<usize>(), any::<u8>(), any::<bool>()), 0..6), any::<usize>()).prop_map(
        move |(which, edits, cut)| {
            let mut bytes = seeds[which].clone();
            for (at, byte, insert) in edits {
                let at = at % (bytes.len() + 1);
                if insert || at == bytes.len() {
                    bytes.insert(at, byte);
                } else {
                    bytes[at] = byte;
                }
            }
            if cut % 4 == 0 {
                bytes.truncate(cut / 4 % (bytes.len() + 1));
            }
            bytes
        },
    )
}

fn any_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn block_decoding_holds_on_mutated_seeds(data in mutated_seed("block")) { block(&data) }

    #[test]
    fn transaction_decoding_holds_on_mutated_seeds(data in mutated_seed("transaction")) { transaction(&data) }

    #[test]
    fn sync_decoding_holds_on_mutated_seeds(data in mutated_seed("sync")) { sync(&data) }

    #[test]
    fn query_decoding_holds_on_mutated_seeds(data in mutated_seed("query")) { query(&data) }

    #[test]
    fn file_reading_holds_on_mutated_seeds(data in mutated_seed("files")) { files(&data) }

    #[test]
    fn the_sync_machine_invariants_hold(data in any_bytes(1024)) { sync_machine(&data) }

    #[test]
    fn the_mempool_invariants_hold_on_arbitrary_operations(data in any_bytes(512)) { mempool(&data) }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn the_chain_invariants_hold_on_arbitrary_blocks(data in any_bytes(256)) { chain(&data) }

    #[test]
    fn the_pairing_cache_and_the_batches_agree_with_blst(data in any_bytes(192)) { signatures(&data) }
}

/// Writes the seed corpus (run by hand: `cargo test --features fuzzing --lib
/// write_seed_corpus -- --ignored`); the fuzzers grow it from there.
#[test]
#[ignore]
fn write_seed_corpus() {
    seed::write_all();
}

mod seed {
    use std::net::SocketAddr;

    use super::corpus_dir;
    use crate::chain::{Chain, MemoryStore};
    use crate::network::addrbook::{AddressBook, Group};
    use crate::network::protocol::{ChainStatus, SyncRequest, SyncResponse};
    use crate::rpc::{BlockId, NodeCommand, QueryRequest, QueryResponse, StatusReply, SubmitReply};
    use crate::testkit::{block_on_tip, fund, regtest, TestKey};
    use crate::types::{encode, BlockHash, Hash256, Network, Txid};
    use crate::wallet::{KdfParams, RecoveryPhrase, Wallet};

    fn write(target: &str, name: &str, bytes: &[u8]) {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    fn framed(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    /// Bytes that look random but are the same on every run.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    pub fn write_all() {
        let keys: Vec<TestKey> = (1..=2).map(TestKey::new).collect();
        let mut chain = Chain::open(regtest(), MemoryStore::default()).unwrap();
        fund(&mut chain, &keys).unwrap();
        let pay0 = keys[0].pay(regtest().chain_id, keys[1].address, 5_000, 1_000, 0);
        let pay1 = keys[1].pay(regtest().chain_id, keys[0].address, 7_000, 2_000, 0);
        let block = block_on_tip(&chain, keys[0].address, &[pay0, pay1]);
        let empty = block_on_tip(&chain, keys[1].address, &[]);

        write("block", "genesis", &encode(&regtest().genesis));
        write("block", "two-payments", &encode(&block));
        write("block", "coinbase-only", &encode(&empty));

        write("transaction", "unsigned", &encode(&pay0.tx));
        write("transaction", "signed", &encode(&pay0));

        let status =
            ChainStatus { version: 1, genesis: regtest().genesis_hash, tip: block.hash(), height: 12, work: [1; 32] };
        let hash = BlockHash(Hash256([3; 32]));
        let requests = [
            ("request-status", SyncRequest::Status(status)),
            ("request-headers", SyncRequest::Headers { locator: vec![hash, regtest().genesis_hash], max: 2_000 }),
            ("request-blocks", SyncRequest::Blocks(vec![hash])),
            ("request-mempool-ids", SyncRequest::MempoolIds),
            ("request-mempool-txs", SyncRequest::MempoolTxs(vec![pay0.txid()])),
            ("request-announce", SyncRequest::AnnounceTxs(vec![pay1.txid()])),
        ];
        for (name, request) in &requests {
            write("sync", name, &encode(request));
        }
        write("sync", "request-headers-framed", &framed(&encode(&requests[1].1)));
        let responses = [
            ("response-status", SyncResponse::Status(status)),
            ("response-headers", SyncResponse::Headers(vec![block.header, empty.header])),
            ("response-blocks", SyncResponse::Blocks(vec![block.clone()])),
            ("response-mempool-ids", SyncResponse::MempoolIds(vec![pay0.txid(), Txid(Hash256([9; 32]))])),
            ("response-mempool-txs", SyncResponse::MempoolTxs(vec![pay0, pay1])),
            ("response-refused", SyncResponse::Refused("wrong network".into())),
            ("response-ack", SyncResponse::Ack),
        ];
        for (name, response) in &responses {
            write("sync", name, &encode(response));
        }
        write("sync", "response-blocks-framed", &framed(&encode(&responses[2].1)));

        let queries = [
            ("request-status", QueryRequest::Status),
            ("request-balance", QueryRequest::Balance { address: keys[0].address }),
            ("request-history", QueryRequest::History { address: keys[0].address, limit: 10 }),
            ("request-block", QueryRequest::Block(BlockId::Height(3))),
            ("request-block-hash", QueryRequest::Block(BlockId::Hash(hash))),
            ("request-submit", QueryRequest::Submit(pay0)),
            (
                "request-node-ban",
                QueryRequest::Node {
                    cookie: "00".repeat(32),
                    command: NodeCommand::Ban { target: "10.0.0.1".into(), duration_s: 60 },
                },
            ),
            ("request-estimate", QueryRequest::EstimateFee { blocks: 6 }),
        ];
        for (name, query) in &queries {
            write("query", name, &encode(query));
        }
        write("query", "request-submit-framed", &framed(&encode(&queries[5].1)));
        let status_reply = StatusReply { network: "regtest".into(), height: 12, ..StatusReply::default() };
        let replies = [
            ("response-status", QueryResponse::Status(status_reply)),
            ("response-submitted", QueryResponse::Submitted(SubmitReply { txid: pay0.txid().to_string() })),
            ("response-error", QueryResponse::Error("transaction refused".into())),
        ];
        for (name, reply) in &replies {
            write("query", name, &encode(reply));
        }

        // The files, each behind the byte that chooses its reader.
        let tagged = |tag: u8, bytes: &[u8]| [&[tag][..], bytes].concat();
        let dir = tempfile::tempdir().unwrap();
        let words = ["abandon"; 23].join(" ") + " art";
        let phrase = || RecoveryPhrase::parse(&words).unwrap();
        let plain = dir.path().join("plain.json");
        Wallet::restore(&plain, Network::Regtest, phrase(), 2, None).unwrap();
        write("files", "wallet-plain", &tagged(0, &std::fs::read(&plain).unwrap()));
        let sealed = dir.path().join("sealed.json");
        Wallet::restore(&sealed, Network::Regtest, phrase(), 1, Some((b"correct horse", KdfParams::LIGHT_FOR_TESTS)))
            .unwrap();
        write("files", "wallet-sealed", &tagged(0, &std::fs::read(&sealed).unwrap()));
        let example = include_str!("../../config/ourcoind.toml");
        write("files", "config-example", &tagged(1, example.as_bytes()));
        let config = "network = \"regtest\"\nlisten = [\"/ip4/127.0.0.1/tcp/19734\"]\nmine = true\nminer_threads = 2\n\
                      miner_address = \"\"\nquery_allow = [\"127.0.0.0/8\"]\nlog = \"info,ourcoin=debug\"\n";
        write("files", "config-small", &tagged(1, config.as_bytes()));
        write("files", "mempool", &tagged(2, &encode(&vec![pay0, pay1])));
        let mut book = AddressBook::new([7; 32]);
        let peer = libp2p::identity::Keypair::ed25519_from_bytes([5; 32]).unwrap().public().to_peer_id();
        for (i, addr) in ["8.8.8.8:9734", "1.2.3.4:19734", "[2001:db8::1]:9734"].iter().enumerate() {
            let addr: SocketAddr = addr.parse().unwrap();
            book.add(addr, peer, Group([4, i as u8, 0, 0, 0]), 1_700_000_000);
        }
        write("files", "addrbook", &tagged(3, &book.encode()));
        let bans = format!(
            "[\n  {{ \"target\": \"{peer}\", \"until\": 1900000000 }},\n  {{ \"target\": \"10.1.2.3\", \"until\": 1900000000 }}\n]"
        );
        write("files", "bans", &tagged(4, bans.as_bytes()));

        for target in ["chain", "signatures", "mempool", "sync_machine"] {
            for (i, len) in [64usize, 256, 1024].iter().enumerate() {
                write(target, &format!("noise-{len}"), &noise(i as u64 + 1 + target.len() as u64, *len));
            }
        }
    }
}
