//! Store tests against a real sled database in a temporary directory. The
//! whole-chain comparison with `MemoryStore` across a reopen is in
//! `tests/store_reopen.rs`.

use tempfile::TempDir;

use super::*;
use crate::chain::{Chain, ChainError, NoSignatures};
use crate::testkit::{block_on_tip, extend, fund, now_for, regtest, TestKey};
use crate::types::{Amount, BlockBody, Coinbase, CompactTarget, Hash256, COIN};

fn temp_store() -> (TempDir, SledStore) {
    let dir = TempDir::new().expect("temporary directory");
    let store = SledStore::open(dir.path()).expect("open a new database");
    (dir, store)
}

/// A block the store accepts: it checks linkage, not proof of work.
fn synthetic_block(prev: BlockHash, height: u64, branch: u8) -> Block {
    let body = BlockBody {
        coinbase: Coinbase { height, recipient: Address([branch; 20]), amount: Amount::ZERO },
        transactions: vec![],
        aggregate_signature: None,
    };
    Block {
        header: BlockHeader {
            version: 1,
            prev,
            height,
            body_commitment: body.commitment(),
            time: 1_700_000_000 + height,
            target: CompactTarget(0x207fffff),
            nonce: u64::from(branch),
        },
        body,
    }
}

fn empty_update(height: u64) -> (LedgerUpdate, BlockUndo) {
    (
        LedgerUpdate { height, accounts: vec![], new_reward: None, matured_height: None },
        BlockUndo { height, accounts: vec![], matured: None },
    )
}

fn connect(store: &mut SledStore, block: &Block, signatures: &[(Txid, SignatureBytes)]) -> Result<(), StoreError> {
    let (update, undo) = empty_update(block.height());
    store.connect_block(block, &update, &undo, signatures)
}

/// Connects `count` synthetic blocks on the tip (or from genesis), returning them.
fn grow(store: &mut SledStore, count: u64, branch: u8) -> Vec<Block> {
    let mut blocks = Vec::new();
    for _ in 0..count {
        let (prev, height) = match store.tip().expect("tip") {
            Some(tip) => (tip, store.block(&tip).expect("read").expect("stored").height() + 1),
            None => (BlockHash::default(), 0),
        };
        let block = synthetic_block(prev, height, branch);
        connect(store, &block, &[]).expect("connect");
        blocks.push(block);
    }
    blocks
}

#[test]
fn an_empty_directory_opens_as_an_empty_store() {
    let (dir, store) = temp_store();
    assert_eq!(store.tip(), Ok(None));
    assert_eq!(store.best_hash_at(0), Ok(None));
    assert_eq!(store.stored_headers(), Ok(vec![]));
    assert_eq!(store.invalid_blocks(), Ok(vec![]));
    assert_eq!(store.address_history(&Address([1; 20]), 10), Ok(vec![]));
    store.flush().expect("flush");
    drop(store);
    let store = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(store.tip(), Ok(None));
}

#[test]
fn connect_block_refuses_a_block_that_does_not_extend_the_tip() {
    let (_dir, mut store) = temp_store();
    let genesis = synthetic_block(BlockHash::default(), 0, 0);
    let orphan_genesis_child = synthetic_block(genesis.hash(), 1, 0);

    // Named cases: (what, block), each refused without a trace in the store.
    assert!(connect(&mut store, &orphan_genesis_child, &[]).is_err(), "height 1 on an empty store");
    assert_eq!(store.tip(), Ok(None));
    assert_eq!(store.block(&orphan_genesis_child.hash()), Ok(None));
    connect(&mut store, &genesis, &[]).expect("genesis on an empty store");

    let one = synthetic_block(genesis.hash(), 1, 0);
    let cases = [
        ("a second block at height 0", synthetic_block(BlockHash::default(), 0, 1)),
        ("a skipped height", synthetic_block(genesis.hash(), 2, 0)),
        ("the right height on another parent", synthetic_block(BlockHash(Hash256([7; 32])), 1, 0)),
    ];
    for (what, block) in &cases {
        let err = connect(&mut store, block, &[]).expect_err(what);
        assert!(err.0.contains("does not extend the tip"), "{what}: {err}");
        assert_eq!(store.tip(), Ok(Some(genesis.hash())), "{what}");
        assert_eq!(store.block(&block.hash()), Ok(None), "{what}: nothing written");
    }
    connect(&mut store, &one, &[]).expect("the right child");
    assert_eq!(store.tip(), Ok(Some(one.hash())));

    let (update, undo) = empty_update(5);
    assert!(
        store.connect_block(&synthetic_block(one.hash(), 2, 0), &update, &undo, &[]).is_err(),
        "wrong update height"
    );
}

#[test]
fn disconnect_block_refuses_a_block_that_is_not_the_tip() {
    let (_dir, mut store) = temp_store();
    let blocks = grow(&mut store, 3, 0);
    let side = synthetic_block(blocks[1].hash(), 2, 9);
    store.put_block(&side).expect("put side block");
    for (what, block) in [("the tip's parent", &blocks[1]), ("a side block at the tip's height", &side)] {
        let (_, undo) = empty_update(block.height());
        let err = store.disconnect_block(block, &undo).expect_err(what);
        assert!(err.0.contains("is not the tip"), "{what}: {err}");
        assert_eq!(store.tip(), Ok(Some(blocks[2].hash())), "{what}");
    }
    // Down to nothing, genesis included.
    for block in blocks.iter().rev() {
        let (_, undo) = empty_update(block.height());
        store.disconnect_block(block, &undo).expect("disconnect the tip");
    }
    assert_eq!(store.tip(), Ok(None));
    assert_eq!(store.best_hash_at(0), Ok(None));
    assert_eq!(store.block(&blocks[0].hash()).map(|b| b.is_some()), Ok(true), "blocks stay stored");
    assert_eq!(store.undo_record(&blocks[0].hash()), Ok(None), "undo records go with the best chain");
}

#[test]
fn stored_headers_lists_every_block_and_invalid_blocks_survive_a_reopen() {
    let (dir, mut store) = temp_store();
    let main = grow(&mut store, 4, 0);
    let side = synthetic_block(main[1].hash(), 2, 5);
    store.put_block(&side).expect("put");
    store.mark_invalid(&side.hash()).expect("mark invalid");
    store.flush().expect("flush");
    drop(store);

    let store = SledStore::open(dir.path()).expect("reopen");
    let mut headers = store.stored_headers().expect("headers");
    headers.sort_by_key(|h| h.hash());
    let mut expected: Vec<BlockHeader> = main.iter().chain([&side]).map(|b| b.header).collect();
    expected.sort_by_key(|h| h.hash());
    assert_eq!(headers, expected);
    assert_eq!(store.invalid_blocks(), Ok(vec![side.hash()]));
    assert_eq!(store.block(&side.hash()), Ok(Some(side)));
}

fn fake_signature(n: u64) -> (Txid, SignatureBytes) {
    let mut txid = [0u8; 32];
    txid[..8].copy_from_slice(&n.to_le_bytes());
    let mut signature = [0xa5u8; 96];
    signature[..8].copy_from_slice(&n.to_le_bytes());
    (Txid(Hash256(txid)), SignatureBytes(signature))
}

#[test]
fn signatures_are_kept_for_the_last_1000_blocks_and_pruned_below() {
    let (dir, mut store) = temp_store();
    grow(&mut store, 1, 0);
    let tip_height = SIGNATURE_KEEP_BLOCKS + 50;
    for height in 1..=tip_height {
        let prev = store.tip().expect("tip").expect("genesis");
        connect(&mut store, &synthetic_block(prev, height, 0), &[fake_signature(height)]).expect("connect");
    }
    let kept_from = tip_height - SIGNATURE_KEEP_BLOCKS;
    for height in 1..=tip_height {
        let (txid, signature) = fake_signature(height);
        let expected = (height >= kept_from).then_some(signature);
        assert_eq!(store.confirmed_signature(&txid), Ok(expected), "signature confirmed at height {height}");
    }
    let index_entries = store.signature_heights.len() as u64;
    assert_eq!(index_entries, tip_height - kept_from + 1, "the by-height index is pruned with the signatures");

    // Disconnecting keeps signatures, so undone payments can go back to the mempool.
    let tip = store.block(&store.tip().expect("tip").expect("some")).expect("read").expect("stored");
    let (_, undo) = empty_update(tip.height());
    store.disconnect_block(&tip, &undo).expect("disconnect");
    assert_eq!(store.confirmed_signature(&fake_signature(tip_height).0), Ok(Some(fake_signature(tip_height).1)));

    store.flush().expect("flush");
    drop(store);
    let store = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(store.confirmed_signature(&fake_signature(kept_from).0), Ok(Some(fake_signature(kept_from).1)));
    assert_eq!(store.confirmed_signature(&fake_signature(kept_from - 1).0), Ok(None));
}

#[test]
fn a_signature_confirmed_again_higher_up_outlives_its_first_height() {
    let (_dir, mut store) = temp_store();
    grow(&mut store, 2, 0);
    let (txid, signature) = fake_signature(42);
    let tip = store.tip().expect("tip").expect("some");
    connect(&mut store, &synthetic_block(tip, 2, 0), &[(txid, signature)]).expect("first confirmation at height 2");
    grow(&mut store, 5, 0);
    let tip = store.tip().expect("tip").expect("some");
    connect(&mut store, &synthetic_block(tip, 8, 0), &[(txid, signature)]).expect("confirmed again at height 8");
    // Height 2 falls out of the window once the tip reaches 1003; height 8 stays in it up to a tip of 1008.
    grow(&mut store, SIGNATURE_KEEP_BLOCKS - 8 + 2 + 1, 0);
    assert_eq!(store.confirmed_signature(&txid), Ok(Some(signature)));
    grow(&mut store, 6, 0);
    assert_eq!(store.confirmed_signature(&txid), Ok(None));
}

#[test]
fn a_database_of_another_layout_version_is_refused() {
    let (dir, store) = temp_store();
    store.meta.insert(LAYOUT_KEY, encode(&(LAYOUT_VERSION + 1))).expect("write");
    store.flush().expect("flush");
    drop(store);
    let err = SledStore::open(dir.path()).expect_err("another layout");
    assert!(err.0.contains("layout version"), "{err}");
}

/// A regtest chain in a sled store with payments, so every tree holds data.
fn chain_with_payments(store: SledStore) -> (Chain<SledStore>, [TestKey; 2]) {
    let params = regtest();
    let keys = [TestKey::new(1), TestKey::new(2)];
    let mut chain = Chain::open(params, store).expect("open chain");
    fund(&mut chain, &keys).expect("fund");
    let payment = keys[0].pay(params.chain_id, keys[1].address, 3 * COIN, 10_000, 0);
    let block = block_on_tip(&chain, keys[1].address, &[payment]);
    let now = now_for(&chain);
    chain.accept_block(block, now, &NoSignatures).expect("payment block");
    extend(&mut chain, keys[0].address, &[]).expect("one more");
    (chain, keys)
}

/// Bytes no decoder accepts for any of the store's values: a varint that never ends.
const GARBAGE: &[u8] = &[0xff; 12];

#[test]
fn a_corrupt_value_is_a_store_error_naming_its_tree() {
    let (_dir, store) = temp_store();
    let (chain, keys) = chain_with_payments(store);
    let store = chain.store();
    let tip = store.tip().expect("tip").expect("some");
    let tip_block = store.block(&tip).expect("read").expect("stored");
    let coinbase_txid = tip_block.txids()[0];
    let reward_height = store.rewards.iter().keys().next().expect("a maturing reward").expect("read");
    let history_key = store.history.scan_prefix(keys[0].address.0).keys().next().expect("history").expect("read");
    let signature_txid = Txid(Hash256([3; 32]));

    type Read<'a> = Box<dyn Fn(&SledStore) -> Result<(), StoreError> + 'a>;
    /// Tree name, tree, key, what to write there, and the read that must fail.
    type Case<'a> = (&'a str, &'a Tree, Vec<u8>, Vec<u8>, Read<'a>);
    let cases: Vec<Case> = vec![
        (
            "accounts",
            &store.accounts,
            keys[0].address.0.to_vec(),
            GARBAGE.to_vec(),
            Box::new(|s| s.account(&keys[0].address).map(drop)),
        ),
        (
            "accounts",
            &store.accounts,
            keys[1].address.0.to_vec(),
            // A valid account followed by a trailing byte.
            [encode(&Account::default()), vec![0]].concat(),
            Box::new(|s| s.account(&keys[1].address).map(drop)),
        ),
        (
            "maturing_rewards",
            &store.rewards,
            reward_height.to_vec(),
            GARBAGE.to_vec(),
            Box::new(|s| {
                let height = u64::from_be_bytes(reward_height.as_ref().try_into().expect("8 bytes"));
                s.maturing_reward(height).map(drop)
            }),
        ),
        ("blocks", &store.blocks, tip.as_bytes().to_vec(), GARBAGE.to_vec(), Box::new(|s| s.block(&tip).map(drop))),
        ("undo", &store.undo, tip.as_bytes().to_vec(), GARBAGE.to_vec(), Box::new(|s| s.undo_record(&tip).map(drop))),
        (
            "headers",
            &store.headers,
            tip.as_bytes().to_vec(),
            GARBAGE.to_vec(),
            Box::new(|s| s.stored_headers().map(drop)),
        ),
        (
            "headers",
            &store.headers,
            tip.as_bytes().to_vec(),
            // A well-formed header under another block's key.
            encode(&BlockHeader { nonce: tip_block.header.nonce.wrapping_add(1), ..tip_block.header }),
            Box::new(|s| s.stored_headers().map(drop)),
        ),
        ("invalid", &store.invalid, vec![1, 2, 3], vec![], Box::new(|s| s.invalid_blocks().map(drop))),
        ("best_chain", &store.best, height_key(1).to_vec(), vec![1; 31], Box::new(|s| s.best_hash_at(1).map(drop))),
        ("meta", &store.meta, TIP_KEY.to_vec(), GARBAGE.to_vec(), Box::new(|s| s.tip().map(drop))),
        (
            "tx_index",
            &store.txs,
            coinbase_txid.as_bytes().to_vec(),
            GARBAGE.to_vec(),
            Box::new(|s| s.tx_location(&coinbase_txid).map(drop)),
        ),
        (
            "address_index",
            &store.history,
            history_key.to_vec(),
            GARBAGE.to_vec(),
            Box::new(|s| s.address_history(&keys[0].address, 100).map(drop)),
        ),
        (
            "address_index",
            &store.history,
            history_key.to_vec(),
            // A txid the transaction index does not know.
            vec![0xee; 32],
            Box::new(|s| s.address_history(&keys[0].address, 100).map(drop)),
        ),
        (
            "signatures",
            &store.signatures,
            signature_txid.as_bytes().to_vec(),
            GARBAGE.to_vec(),
            Box::new(|s| s.confirmed_signature(&signature_txid).map(drop)),
        ),
    ];
    for (tree_name, tree, key, garbage, read) in cases {
        let original = tree.get(&key).expect("read");
        tree.insert(key.as_slice(), garbage).expect("write garbage");
        let err = read(store).expect_err(tree_name);
        assert!(err.0.contains(&format!("tree `{tree_name}`")), "{tree_name}: {err}");
        assert!(err.0.contains(&hex::encode(&key)), "{tree_name}: the error names the key: {err}");
        match original {
            Some(value) => tree.insert(key.as_slice(), value).map(drop),
            None => tree.remove(key.as_slice()).map(drop),
        }
        .expect("restore");
        read(store).expect("reads again once restored");
    }
}

#[test]
fn a_corrupt_tip_or_header_stops_the_chain_from_opening() {
    let (dir, store) = temp_store();
    let (chain, _keys) = chain_with_payments(store);
    let tip = chain.tip();
    chain.flush().expect("flush");
    drop(chain);

    let store = SledStore::open(dir.path()).expect("reopen");
    store.headers.insert(tip.as_bytes(), GARBAGE).expect("write garbage");
    let result = Chain::open(regtest(), store);
    assert!(matches!(&result, Err(ChainError::Store(e)) if e.0.contains("tree `headers`")), "{:?}", result.err());

    let store = SledStore::open(dir.path()).expect("reopen");
    store.meta.insert(TIP_KEY, encode(&StoredTip { height: 1, hash: tip })).expect("write a tip off the best chain");
    store.flush().expect("flush");
    drop(store);
    let err = SledStore::open(dir.path()).expect_err("the tip is not on the best chain");
    assert!(err.0.contains("tree `meta`"), "{err}");
}

#[test]
fn a_temporary_store_runs_a_chain() {
    let store = SledStore::open_temporary().expect("temporary store");
    let (chain, keys) = chain_with_payments(store);
    let account = chain.account(&keys[1].address).expect("account");
    assert_eq!(account.balance, Amount(50 * COIN + 3 * COIN));
}

#[test]
fn a_database_in_use_is_refused_with_its_path() {
    let (dir, _store) = temp_store();
    let err = SledStore::open(dir.path()).expect_err("the first store holds the lock");
    assert!(err.0.contains(&dir.path().display().to_string()), "{err}");
    assert!(err.0.contains("another ourcoind"), "{err}");
}
