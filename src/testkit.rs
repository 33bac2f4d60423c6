//! Building blocks for tests and benchmarks: deterministic keys, signed
//! payments, and blocks mined on the easy regtest target.

use std::sync::atomic::AtomicBool;

use crate::chain::{BlockAccepted, Chain, ChainError, ChainStore, NextBlock, NoSignatures};
use crate::consensus::Params;
use crate::crypto::{PublicKey, SecretKey, Signature};
use crate::miner::{assemble_block, mine, MineOutcome};
use crate::types::{
    Address, Amount, Block, BlockHash, ChainId, Network, PublicKeyBytes, SignedTransaction, Transaction,
};

/// A key pair with its address.
#[derive(Clone, Debug)]
pub struct TestKey {
    pub secret: SecretKey,
    pub public: PublicKeyBytes,
    pub address: Address,
}

impl TestKey {
    /// A deterministic key from a small seed.
    pub fn new(seed: u64) -> TestKey {
        let mut ikm = [0x5au8; 32];
        ikm[..8].copy_from_slice(&seed.to_le_bytes());
        let secret = SecretKey::from_ikm(&ikm).expect("32 bytes of keying material");
        let public = secret.public_key().to_bytes();
        TestKey { secret, public, address: Address::from_public_key(&public) }
    }

    /// A payment signed by this key.
    pub fn pay(&self, chain_id: ChainId, to: Address, amount: u64, fee: u64, nonce: u64) -> SignedTransaction {
        let tx = Transaction {
            chain_id,
            sender: self.public,
            recipient: to,
            amount: Amount(amount),
            fee: Amount(fee),
            nonce,
        };
        SignedTransaction { tx, signature: self.secret.sign(&tx.signing_message()).to_bytes() }
    }
}

/// A payment from key `seed` as what a signature check takes: the sender's
/// validated public key, the signing message and the signature.
pub fn signed_claim(seed: u64, nonce: u64) -> (PublicKey, Vec<u8>, Signature) {
    let key = TestKey::new(seed);
    let stx = key.pay(ChainId(7), Address([0x42; 20]), 1_000 + nonce, 10, nonce);
    let public_key = PublicKey::from_bytes(&key.public).expect("a generated key is valid");
    let signature = Signature::from_bytes(&stx.signature).expect("a fresh signature is valid");
    (public_key, stx.tx.signing_message().to_vec(), signature)
}

pub fn regtest() -> &'static Params {
    Params::get(Network::Regtest)
}

/// Mines an assembled block on the regtest target (about two hashes).
pub fn mine_block(block: Block) -> Block {
    let never = AtomicBool::new(false);
    let mut block = block;
    loop {
        match mine(&block.header, 0, 1, 1 << 20, &never) {
            MineOutcome::Found(header) => return Block { header, body: block.body },
            _ => block.header.time += 1,
        }
    }
}

/// A mined block with `payments` on `next`, its time one block interval
/// after `parent_time` (and after the median time past).
pub fn block_on(next: &NextBlock, parent_time: u64, miner: Address, payments: &[SignedTransaction]) -> Block {
    let time = parent_time + regtest().block_time_secs;
    mine_block(assemble_block(next, time, miner, payments).expect("valid test payments"))
}

/// A mined block on `parent` in `chain`.
pub fn block_on_parent<S: ChainStore>(
    chain: &Chain<S>,
    parent: &BlockHash,
    miner: Address,
    payments: &[SignedTransaction],
) -> Block {
    let next = chain.next_block_on(parent).expect("known parent");
    let parent_time = chain.entry(parent).map(|e| e.header.time).expect("known parent");
    block_on(&next, parent_time, miner, payments)
}

/// A mined block on the tip of `chain`.
pub fn block_on_tip<S: ChainStore>(chain: &Chain<S>, miner: Address, payments: &[SignedTransaction]) -> Block {
    block_on_parent(chain, &chain.tip(), miner, payments)
}

/// A clock far enough ahead that no test block is "too far in the future".
pub fn now_for<S: ChainStore>(chain: &Chain<S>) -> u64 {
    chain.tip_header().time + 1_000_000
}

/// Mines a block with `payments` on the tip and connects it.
pub fn extend<S: ChainStore>(
    chain: &mut Chain<S>,
    miner: Address,
    payments: &[SignedTransaction],
) -> Result<BlockAccepted, ChainError> {
    let block = block_on_tip(chain, miner, payments);
    let now = block.header.time + 1_000_000;
    chain.accept_block(block, now, &NoSignatures)
}

/// Gives every key one matured coinbase reward (50 coins) on a regtest chain.
pub fn fund<S: ChainStore>(chain: &mut Chain<S>, keys: &[TestKey]) -> Result<(), ChainError> {
    for key in keys {
        extend(chain, key.address, &[])?;
    }
    let burn = Address([0xee; 20]);
    for _ in 0..chain.params().coinbase_maturity {
        extend(chain, burn, &[])?;
    }
    Ok(())
}
