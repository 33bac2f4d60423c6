//! One named case per consensus and mempool rule, each run against the real
//! chain (or mempool, or decoder) and asserting its specific error, in the
//! manner of Bitcoin Core's `data/invalid_txs.py` and `p2p_invalid_block.py`.

use ourcoin::chain::{Chain, ChainError, MemoryStore, NoSignatures};
use ourcoin::consensus::{rules, ValidationError};
use ourcoin::crypto::Signature;
use ourcoin::mempool::{Mempool, MempoolConfig};
use ourcoin::miner::assemble_block;
use ourcoin::testkit::{block_on_tip, extend, fund, mine_block, now_for, regtest, TestKey};
use ourcoin::types::{
    decode, encode, Address, Amount, Block, BlockHash, ChainId, CompactTarget, DecodeError, Hash256, SignedTransaction,
    COIN, MAX_BLOCK_BYTES,
};

struct Fixture {
    chain: Chain<MemoryStore>,
    keys: Vec<TestKey>,
    /// Holds only an immature reward.
    fresh_miner: TestKey,
}

impl Fixture {
    fn new() -> Fixture {
        let keys: Vec<TestKey> = (0..3).map(TestKey::new).collect();
        let mut chain = Chain::open(regtest(), MemoryStore::default()).unwrap();
        fund(&mut chain, &keys).unwrap();
        let fresh_miner = TestKey::new(99);
        extend(&mut chain, fresh_miner.address, &[]).unwrap();
        Fixture { chain, keys, fresh_miner }
    }

    fn pay(&self, from: usize, amount: u64, nonce: u64) -> SignedTransaction {
        self.keys[from].pay(regtest().chain_id, self.keys[(from + 1) % 3].address, amount, 1_000, nonce)
    }

    fn block(&self, payments: &[SignedTransaction]) -> Block {
        block_on_tip(&self.chain, Address([0xcc; 20]), payments)
    }

    fn submit(&mut self, block: Block) -> Result<(), ValidationError> {
        let now = now_for(&self.chain);
        match self.chain.accept_block(block, now, &NoSignatures) {
            Ok(_) => Ok(()),
            Err(ChainError::Invalid(e)) => Err(e),
            Err(ChainError::Store(e)) => panic!("store failed: {e}"),
        }
    }

    fn mempool_add(&self, stx: SignedTransaction) -> Result<(), ValidationError> {
        let mut pool = Mempool::new(regtest(), MempoolConfig::default());
        let now = now_for(&self.chain);
        let account = self.chain.account(&stx.tx.sender_address()).unwrap();
        pool.add(stx, account, now).map(|_| ())
    }
}

/// Recomputes the body commitment and mines again, so only the intended rule breaks.
fn remine(mut block: Block) -> Block {
    block.header.body_commitment = block.body.commitment();
    block.header.nonce = 0;
    mine_block(block)
}

fn with_aggregate(mut block: Block, signatures: &[SignedTransaction]) -> Block {
    let sigs: Vec<Signature> = signatures.iter().map(|s| Signature::from_bytes(&s.signature).unwrap()).collect();
    block.body.aggregate_signature = Some(Signature::aggregate(&sigs).unwrap().to_bytes());
    remine(block)
}

type Case = (&'static str, fn(&mut Fixture) -> Result<(), ValidationError>, fn(&ValidationError) -> bool);

fn cases() -> Vec<Case> {
    vec![
        (
            "bad signature (transaction)",
            |f| {
                let mut stx = f.pay(0, COIN, 0);
                stx.signature = f.pay(0, 2 * COIN, 0).signature;
                rules::check_signed_transaction(regtest(), &stx)
            },
            |e| matches!(e, ValidationError::BadSignature),
        ),
        (
            "bad signature (block aggregate)",
            |f| {
                let good = f.pay(0, COIN, 0);
                let other = f.pay(0, 2 * COIN, 0);
                let block = f.block(&[good]);
                let block = with_aggregate(block, &[other]);
                f.submit(block)
            },
            |e| matches!(e, ValidationError::BadAggregateSignature),
        ),
        (
            "aggregate missing one transaction",
            |f| {
                let (a, b) = (f.pay(0, COIN, 0), f.pay(1, COIN, 0));
                let block = f.block(&[a, b]);
                f.submit(with_aggregate(block, &[a]))
            },
            |e| matches!(e, ValidationError::BadAggregateSignature),
        ),
        (
            "aggregate covering an extra signature",
            |f| {
                let (a, extra) = (f.pay(0, COIN, 0), f.pay(1, COIN, 0));
                let block = f.block(&[a]);
                f.submit(with_aggregate(block, &[a, extra]))
            },
            |e| matches!(e, ValidationError::BadAggregateSignature),
        ),
        (
            "aggregate signature missing on a block with payments",
            |f| {
                let mut block = f.block(&[f.pay(0, COIN, 0)]);
                block.body.aggregate_signature = None;
                f.submit(remine(block))
            },
            |e| matches!(e, ValidationError::MissingAggregateSignature),
        ),
        (
            "signature present on a block without payments",
            |f| {
                let mut block = f.block(&[]);
                block.body.aggregate_signature = Some(f.pay(0, COIN, 0).signature);
                f.submit(remine(block))
            },
            |e| matches!(e, ValidationError::UnexpectedAggregateSignature),
        ),
        (
            "duplicate transaction in a block",
            |f| {
                let a = f.pay(0, COIN, 0);
                f.submit(f.block(&[a, a]))
            },
            |e| matches!(e, ValidationError::DuplicateTransaction(_)),
        ),
        (
            "wrong nonce (replay of a confirmed payment)",
            |f| {
                let a = f.pay(0, COIN, 0);
                f.submit(f.block(&[a])).unwrap();
                f.submit(f.block(&[a]))
            },
            |e| *e == ValidationError::WrongNonce { expected: 1, found: 0 },
        ),
        (
            "insufficient balance",
            |f| f.submit(f.block(&[f.pay(0, 51 * COIN, 0)])),
            |e| matches!(e, ValidationError::InsufficientBalance { .. }),
        ),
        (
            "spending an immature reward",
            |f| {
                let stx = f.fresh_miner.pay(regtest().chain_id, f.keys[0].address, COIN, 1_000, 0);
                f.submit(f.block(&[stx]))
            },
            |e| matches!(e, ValidationError::SpendsImmatureReward { .. }),
        ),
        ("zero amount", |f| f.submit(f.block(&[f.pay(0, 0, 0)])), |e| matches!(e, ValidationError::ZeroAmount)),
        (
            "overflowing amount",
            |f| {
                let stx = f.keys[0].pay(regtest().chain_id, f.keys[1].address, u64::MAX, 1, 0);
                f.submit(f.block(&[stx]))
            },
            |e| matches!(e, ValidationError::AmountOverflow),
        ),
        (
            "wrong chain id",
            |f| {
                let stx = f.keys[0].pay(ChainId(regtest().chain_id.0 ^ 1), f.keys[1].address, COIN, 1_000, 0);
                f.submit(f.block(&[stx]))
            },
            |e| matches!(e, ValidationError::WrongChainId { .. }),
        ),
        (
            "invalid sender public key",
            |f| {
                let mut stx = f.pay(0, COIN, 0);
                stx.tx.sender.0 = [0xab; 48];
                rules::check_signed_transaction(regtest(), &stx)
            },
            |e| matches!(e, ValidationError::InvalidPublicKey(_)),
        ),
        (
            "bad proof of work",
            |f| {
                let mut block = f.block(&[]);
                // Regtest's limit is met by about half the hashes: find a nonce that misses it.
                while rules::check_header(regtest(), &block.header).is_ok() {
                    block.header.nonce += 1;
                }
                f.submit(block)
            },
            |e| matches!(e, ValidationError::BadProofOfWork),
        ),
        (
            "target easier than the limit",
            |f| {
                let mut block = f.block(&[]);
                block.header.target = CompactTarget(0x2100ffff);
                f.submit(remine(block))
            },
            |e| matches!(e, ValidationError::TargetAboveLimit(_)),
        ),
        (
            "wrong target",
            |f| {
                let mut block = f.block(&[]);
                block.header.target = CompactTarget(0x2000ffff);
                f.submit(remine(block))
            },
            |e| matches!(e, ValidationError::WrongTarget { .. }),
        ),
        (
            "timestamp at the median time past",
            |f| {
                let mut block = f.block(&[]);
                block.header.time = f.chain.next_block().min_time - 1;
                f.submit(remine(block))
            },
            |e| matches!(e, ValidationError::TimeTooOld { .. }),
        ),
        (
            "timestamp too far ahead",
            |f| {
                let mut block = f.block(&[]);
                block.header.time = now_for(&f.chain) + regtest().future_limit_secs + 1;
                f.submit(remine(block))
            },
            |e| matches!(e, ValidationError::TimeTooFarAhead { .. }),
        ),
        (
            "oversize block",
            |f| {
                let mut block = f.block(&[]);
                let stx = f.pay(0, COIN, 0);
                block.body.transactions = vec![stx.tx; MAX_BLOCK_BYTES / 50];
                f.submit(block)
            },
            |e| matches!(e, ValidationError::BlockTooLarge { .. }),
        ),
        (
            "coinbase paying too much",
            |f| {
                let mut block = f.block(&[]);
                block.body.coinbase.amount = Amount(block.body.coinbase.amount.0 + 1);
                f.submit(remine(block))
            },
            |e| matches!(e, ValidationError::CoinbasePaysTooMuch { .. }),
        ),
        (
            "coinbase paying too little",
            |f| {
                let mut block = f.block(&[f.pay(0, COIN, 0)]);
                block.body.coinbase.amount = Amount(block.body.coinbase.amount.0 - 1);
                f.submit(remine(block))
            },
            |e| matches!(e, ValidationError::CoinbasePaysTooLittle { .. }),
        ),
        (
            "coinbase without its height",
            |f| {
                let mut block = f.block(&[]);
                block.body.coinbase.height = 0;
                f.submit(remine(block))
            },
            |e| matches!(e, ValidationError::CoinbaseHeightMismatch { .. }),
        ),
        (
            "body commitment mismatch",
            |f| {
                let mut block = f.block(&[]);
                block.body.coinbase.recipient = Address([0xdd; 20]);
                f.submit(block)
            },
            |e| matches!(e, ValidationError::BodyCommitmentMismatch),
        ),
        (
            "unknown parent",
            |f| {
                let next = ourcoin::chain::NextBlock { prev: BlockHash(Hash256([7; 32])), ..f.chain.next_block() };
                let block = mine_block(assemble_block(&next, next.min_time, Address([1; 20]), &[]).unwrap());
                f.submit(block)
            },
            |e| matches!(e, ValidationError::UnknownParent(_)),
        ),
        (
            "malformed encoding",
            |_| decode::<Block>(&[0xff; 40], MAX_BLOCK_BYTES).map(|_| ()).map_err(ValidationError::from),
            |e| matches!(e, ValidationError::Malformed(DecodeError::Malformed(_))),
        ),
        (
            "trailing bytes",
            |f| {
                let mut bytes = encode(&f.block(&[]));
                bytes.push(0);
                decode::<Block>(&bytes, MAX_BLOCK_BYTES).map(|_| ()).map_err(ValidationError::from)
            },
            |e| matches!(e, ValidationError::Malformed(DecodeError::TrailingBytes(1))),
        ),
        (
            "over-long varint",
            |f| {
                // The header's version (1) is the first field: write it as 0x81 0x00.
                let bytes = encode(&f.block(&[]));
                assert_eq!(bytes[0], 0x01);
                let mut long = vec![0x81, 0x00];
                long.extend_from_slice(&bytes[1..]);
                decode::<Block>(&long, MAX_BLOCK_BYTES).map(|_| ()).map_err(ValidationError::from)
            },
            |e| matches!(e, ValidationError::Malformed(DecodeError::NonCanonical)),
        ),
        (
            "nonce more than 16 ahead (mempool)",
            |f| f.mempool_add(f.pay(0, COIN, 17)),
            |e| matches!(e, ValidationError::NonceTooFarAhead { .. }),
        ),
        (
            "pending spends together exceed the balance (mempool)",
            |f| {
                let mut pool = Mempool::new(regtest(), MempoolConfig::default());
                let now = now_for(&f.chain);
                let account = f.chain.account(&f.keys[0].address).unwrap();
                pool.add(f.pay(0, 30 * COIN, 0), account, now).unwrap();
                pool.add(f.pay(0, 30 * COIN, 1), account, now).map(|_| ())
            },
            |e| matches!(e, ValidationError::PendingSpendsExceedBalance { .. }),
        ),
        (
            "fee below the minimum relay fee (mempool)",
            |f| {
                let stx = f.keys[0].pay(regtest().chain_id, f.keys[1].address, COIN, 999, 0);
                f.mempool_add(stx)
            },
            |e| matches!(e, ValidationError::FeeBelowMinimum { .. }),
        ),
    ]
}

#[test]
fn every_invalid_case_fails_with_its_own_error() {
    let mut failures = Vec::new();
    for (name, run, expected) in cases() {
        let mut fixture = Fixture::new();
        let tip = fixture.chain.tip();
        match run(&mut fixture) {
            Ok(()) => failures.push(format!("{name}: accepted")),
            Err(e) if expected(&e) => {}
            Err(e) => failures.push(format!("{name}: wrong error: {e:?}")),
        }
        // Replays advance the tip once on purpose; nothing else may.
        if !name.starts_with("wrong nonce") {
            assert_eq!(fixture.chain.tip(), tip, "{name}: the tip moved");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_valid_block_of_the_fixture_is_accepted() {
    // The control case: the same fixture accepts an honest block with payments.
    let mut f = Fixture::new();
    let (a, b) = (f.pay(0, COIN, 0), f.pay(1, COIN, 0));
    let block = f.block(&[a, b]);
    f.submit(block).unwrap();
}
