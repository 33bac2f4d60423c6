//! A chain kept in sled survives closing and reopening the database: after
//! payments, a reorganisation, an invalid block, a flush and a drop, the
//! reopened store holds exactly what a `MemoryStore` fed the same blocks holds.

use std::collections::HashMap;
use std::path::Path;

use ourcoin::chain::{BlockAccepted, Chain, ChainError, ChainStore, MemoryStore, SignatureSource};
use ourcoin::store::SledStore;
use ourcoin::testkit::{block_on_parent, block_on_tip, regtest, TestKey};
use ourcoin::types::{Address, Block, BlockHash, SignatureBytes, SignedTransaction, Txid, COIN};
use tempfile::TempDir;

const FEE: u64 = 10_000;

/// The signatures of every payment the test made, as a mempool would know them.
#[derive(Default)]
struct KnownSignatures(HashMap<Txid, SignatureBytes>);

impl SignatureSource for KnownSignatures {
    fn signature(&self, txid: &Txid) -> Option<SignatureBytes> {
        self.0.get(txid).copied()
    }
}

/// The same blocks fed to a chain on sled and to one in memory.
struct Twins {
    sled: Chain<SledStore>,
    memory: Chain<MemoryStore>,
    blocks: Vec<Block>,
    signatures: KnownSignatures,
}

impl Twins {
    fn open(path: &Path) -> Twins {
        Twins {
            sled: Chain::open(regtest(), SledStore::open(path).expect("open sled")).expect("chain on sled"),
            memory: Chain::open(regtest(), MemoryStore::default()).expect("chain in memory"),
            blocks: vec![regtest().genesis.clone()],
            signatures: KnownSignatures::default(),
        }
    }

    fn block_on(&mut self, parent: &BlockHash, miner: Address, payments: &[SignedTransaction]) -> Block {
        self.signatures.0.extend(payments.iter().map(|p| (p.txid(), p.signature)));
        block_on_parent(&self.sled, parent, miner, payments)
    }

    /// Feeds `block` to both chains; they must agree on what became of it.
    fn feed(&mut self, block: Block) -> Result<BlockAccepted, ChainError> {
        let now = block.header.time + 1_000_000;
        let on_sled = self.sled.accept_block(block.clone(), now, &self.signatures);
        let in_memory = self.memory.accept_block(block.clone(), now, &self.signatures);
        assert_eq!(on_sled, in_memory, "both chains treat block {} alike", block.hash());
        self.blocks.push(block);
        on_sled
    }

    fn extend(&mut self, miner: Address, payments: &[SignedTransaction]) -> BlockAccepted {
        let tip = self.sled.tip();
        let block = self.block_on(&tip, miner, payments);
        self.feed(block).expect("a valid block on the tip")
    }
}

fn pay(from: &TestKey, to: &TestKey, coins: u64, nonce: u64) -> SignedTransaction {
    from.pay(regtest().chain_id, to.address, coins * COIN, FEE, nonce)
}

/// Every observable part of `sled` equals `memory`, for the given blocks and addresses.
fn assert_same_stores(sled: &SledStore, memory: &MemoryStore, blocks: &[Block], addresses: &[Address]) {
    let tip = memory.tip().expect("memory tip");
    assert_eq!(sled.tip().expect("sled tip"), tip, "tip");
    let height = memory.block(&tip.expect("a tip")).expect("read").expect("tip block").height();
    for h in 0..=height + 2 {
        assert_eq!(sled.best_hash_at(h).expect("sled"), memory.best_hash_at(h).expect("memory"), "best hash at {h}");
    }
    for h in 0..=height + regtest().coinbase_maturity + 1 {
        assert_eq!(sled.maturing_reward(h).expect("sled"), memory.maturing_reward(h).expect("memory"), "reward {h}");
    }
    for address in addresses {
        assert_eq!(sled.account(address).expect("sled"), memory.account(address).expect("memory"), "{address:?}");
        for limit in [1000, 3, 1, 0] {
            assert_eq!(
                sled.address_history(address, limit).expect("sled"),
                memory.address_history(address, limit).expect("memory"),
                "history of {address:?}, limit {limit}"
            );
        }
    }
    for block in blocks {
        let hash = block.hash();
        assert_eq!(sled.block(&hash).expect("sled"), memory.block(&hash).expect("memory"), "block {hash}");
        assert_eq!(sled.undo_record(&hash).expect("sled"), memory.undo_record(&hash).expect("memory"), "undo {hash}");
        for txid in block.txids() {
            assert_eq!(sled.tx_location(&txid).expect("sled"), memory.tx_location(&txid).expect("memory"), "{txid}");
            assert_eq!(
                sled.confirmed_signature(&txid).expect("sled"),
                memory.confirmed_signature(&txid).expect("memory"),
                "signature of {txid}"
            );
        }
    }
    let mut sled_headers = sled.stored_headers().expect("sled");
    let mut memory_headers = memory.stored_headers().expect("memory");
    sled_headers.sort_by_key(|h| h.hash());
    memory_headers.sort_by_key(|h| h.hash());
    assert_eq!(sled_headers, memory_headers, "stored headers");
    let mut sled_invalid = sled.invalid_blocks().expect("sled");
    let mut memory_invalid = memory.invalid_blocks().expect("memory");
    sled_invalid.sort();
    memory_invalid.sort();
    assert_eq!(sled_invalid, memory_invalid, "invalid blocks");
}

#[test]
fn a_reorganised_chain_reads_back_the_same_after_reopening() {
    let dir = TempDir::new().expect("temporary directory");
    let mut twins = Twins::open(dir.path());
    let [a, b, c, miner] = [1, 2, 3, 4].map(TestKey::new);
    let burn = Address([0xee; 20]);

    // One reward each for a, b and c, matured.
    for key in [&a, &b, &c] {
        twins.extend(key.address, &[]);
    }
    for _ in 0..regtest().coinbase_maturity {
        twins.extend(burn, &[]);
    }
    twins.extend(miner.address, &[pay(&a, &b, 5, 0), pay(&b, &c, 7, 0)]);
    let fork = twins.sled.tip();
    let fork_height = twins.sled.height();

    // The branch that is undone: a payment to oneself, a reward to a.
    let resent = pay(&b, &a, 1, 1);
    twins.extend(a.address, &[pay(&c, &a, 1, 0), pay(&a, &a, 2, 1)]);
    twins.extend(b.address, &[resent]);
    twins.extend(c.address, &[]);
    let undone: Vec<BlockHash> = (1..=3).map(|i| twins.sled.best_hash_at(fork_height + i).expect("main")).collect();

    // A heavier branch from the fork: different payments, and one payment of
    // the undone branch confirmed again at another height.
    let side = [vec![pay(&c, &b, 4, 0), resent], vec![pay(&a, &b, 3, 1)], vec![], vec![pay(&b, &c, 1, 2)]];
    let mut parent = fork;
    let mut reorg = None;
    for payments in &side {
        let block = twins.block_on(&parent, miner.address, payments);
        parent = block.hash();
        if let BlockAccepted::BestChain(update) = twins.feed(block).expect("a valid side block") {
            reorg = Some(update);
        }
    }
    let reorg = reorg.expect("the side branch became best");
    assert_eq!(
        reorg.disconnected.iter().map(Block::hash).collect::<Vec<_>>(),
        undone.into_iter().rev().collect::<Vec<_>>()
    );
    assert_eq!(reorg.connected.len(), side.len());
    assert_eq!(twins.sled.tip(), parent);

    // A block that breaks a ledger rule (a spent nonce) is marked invalid.
    let tip = twins.sled.tip();
    let invalid = twins.block_on(&tip, miner.address, &[pay(&a, &c, 1, 0)]);
    assert!(matches!(twins.feed(invalid.clone()), Err(ChainError::Invalid(_))));
    twins.extend(burn, &[pay(&c, &miner, 1, 1)]);

    // Several blocks share one flush, as during sync.
    twins.sled.flush().expect("flush");
    let addresses = [a.address, b.address, c.address, miner.address, burn, Address([0x42; 20])];
    assert_same_stores(twins.sled.store(), twins.memory.store(), &twins.blocks, &addresses);
    let (tip, height) = (twins.sled.tip(), twins.sled.height());
    assert!(twins.sled.store().invalid_blocks().expect("invalid").contains(&invalid.hash()));

    // Close the database and open it again.
    let Twins { sled, memory, blocks, signatures } = twins;
    drop(sled);
    let store = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(store.tip(), Ok(Some(tip)));
    assert_same_stores(&store, memory.store(), &blocks, &addresses);

    let reopened = Chain::open(regtest(), store).expect("the chain reopens");
    assert_eq!((reopened.tip(), reopened.height()), (tip, height));
    for block in &blocks {
        let hash = block.hash();
        assert_eq!(reopened.best_hash_at(block.height()), memory.best_hash_at(block.height()));
        let (Some(after), Some(before)) = (reopened.entry(&hash), memory.entry(&hash)) else {
            panic!("block {hash} is missing from an index")
        };
        assert_eq!(
            (after.header, after.cumulative_work, after.invalid),
            (before.header, before.cumulative_work, before.invalid)
        );
    }

    // And both go on alike.
    let mut twins = Twins { sled: reopened, memory, blocks, signatures };
    twins.extend(a.address, &[pay(&b, &a, 2, 3)]);
    twins.sled.flush().expect("flush");
    assert_same_stores(twins.sled.store(), twins.memory.store(), &twins.blocks, &addresses);
}

#[test]
fn an_empty_directory_reopens_empty() {
    let dir = TempDir::new().expect("temporary directory");
    let store = SledStore::open(dir.path()).expect("open");
    assert_eq!(store.tip(), Ok(None));
    store.flush().expect("flush");
    drop(store);
    let store = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(store.tip(), Ok(None));
    assert_eq!(store.stored_headers(), Ok(vec![]));
}

#[test]
fn garbage_written_through_sled_is_an_error_not_a_panic() {
    let dir = TempDir::new().expect("temporary directory");
    let mut twins = Twins::open(dir.path());
    let key = TestKey::new(1);
    twins.extend(key.address, &[]);
    twins.sled.flush().expect("flush");
    drop(twins);

    let db = sled::open(dir.path()).expect("open with sled itself");
    db.open_tree("accounts").expect("accounts tree").insert(key.address.0, &[0xff; 7]).expect("write garbage");
    db.flush().expect("flush");
    drop(db);

    let store = SledStore::open(dir.path()).expect("the damage is not where opening looks");
    let err = store.account(&key.address).expect_err("a corrupt account");
    assert!(err.0.contains("accounts") && err.0.contains(&hex::encode(key.address.0)), "{err}");
    let mut chain = Chain::open(regtest(), store).expect("the chain opens");
    let block = block_on_tip(&chain, key.address, &[]);
    let now = block.header.time + 1_000_000;
    assert!(matches!(chain.accept_block(block, now, &KnownSignatures::default()), Err(ChainError::Store(_))));
}
