//! Compact blocks (SPEC §8): a block as its header, its coinbase, a 6-byte
//! short id of each payment and the one aggregate signature. A block carries
//! no payment's own signature, so a receiver that holds a payment holds all
//! of it that the block needs, and one that lacks it asks only for its fields.
//!
//! Short ids are BIP152's: SipHash-2-4 of the txid, keyed by the block (here
//! the first 16 bytes of the block hash, since the header already commits to
//! everything and nobody can choose a block hash without mining it), cut to
//! 48 bits. A receiver that finds two of its payments under one short id, or
//! one short id twice in a block, cannot tell which is meant and fetches the
//! full block instead.

use std::collections::HashMap;
use std::hash::Hasher;

use siphasher::sip::SipHasher24;

use super::block::{Block, BlockBody, BlockHeader};
use super::encoding::MAX_BLOCK_BYTES;
use super::hash::{BlockHash, Txid};
use super::transaction::{Coinbase, SignatureBytes, Transaction};

/// The smallest encoding of a payment: a one-byte chain id, key, address and
/// three one-byte varints. No block holds more payments than this allows.
pub const MIN_TX_BYTES: usize = 1 + 48 + 20 + 3;
/// Payments in a block at most.
pub const MAX_BLOCK_PAYMENTS: usize = MAX_BLOCK_BYTES / MIN_TX_BYTES;
/// The largest encoded compact block: the short ids, and room for the header,
/// the coinbase, the signature and the length prefixes.
pub const MAX_COMPACT_BLOCK_BYTES: usize = 1024 + 6 * MAX_BLOCK_PAYMENTS;
/// The largest message on the block topic (a full block, when one is sent).
pub const MAX_BLOCK_MESSAGE_BYTES: usize = MAX_BLOCK_BYTES + 16;

/// The low 48 bits of SipHash-2-4 of a txid, little-endian.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct ShortId(pub [u8; 6]);

/// The SipHash key of a block's short ids.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ShortIdKey(u64, u64);

impl ShortIdKey {
    pub fn of(block: &BlockHash) -> ShortIdKey {
        let bytes = block.0 .0;
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(bytes.get(at..at + 8).unwrap_or(&[0; 8]));
            u64::from_le_bytes(w)
        };
        ShortIdKey(word(0), word(8))
    }

    pub fn short_id(&self, txid: &Txid) -> ShortId {
        let mut hasher = SipHasher24::new_with_keys(self.0, self.1);
        hasher.write(txid.0.as_bytes());
        let hash = hasher.finish().to_le_bytes();
        let mut id = [0u8; 6];
        id.copy_from_slice(hash.get(..6).unwrap_or(&[0; 6]));
        ShortId(id)
    }
}

/// A block with a short id in place of each payment.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct CompactBlock {
    pub header: BlockHeader,
    pub coinbase: Coinbase,
    /// One per payment, in the block's order.
    pub short_ids: Vec<ShortId>,
    pub aggregate_signature: Option<SignatureBytes>,
}

impl CompactBlock {
    pub fn of(block: &Block) -> CompactBlock {
        let key = ShortIdKey::of(&block.hash());
        CompactBlock {
            header: block.header,
            coinbase: block.body.coinbase,
            short_ids: block.body.transactions.iter().map(|tx| key.short_id(&tx.txid())).collect(),
            aggregate_signature: block.body.aggregate_signature,
        }
    }

    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }
}

/// A message on the block topic.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum BlockMessage {
    /// What nodes send: receivers rebuild the block from their mempool.
    Compact(CompactBlock),
    /// The whole block, for a node that relays blocks in full (a comparison
    /// the network's figures are measured against).
    Full(Block),
}

impl BlockMessage {
    /// The cap a message of this kind is decoded with.
    pub const MAX_BYTES: usize = MAX_BLOCK_MESSAGE_BYTES;
}

/// Why a compact block cannot be rebuilt from what the receiver holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebuildError {
    #[error("short id {0:?} names two payments")]
    Collision(ShortId),
    #[error("the block has {0} payments, more than a block can hold")]
    TooManyPayments(usize),
    #[error("{given} payments given for {asked} asked")]
    WrongCount { asked: usize, given: usize },
    #[error("payment {index} does not match its short id")]
    WrongPayment { index: u32 },
}

/// A compact block being filled: its payments found so far, by position.
#[derive(Clone, Debug)]
pub struct PartialBlock {
    header: BlockHeader,
    coinbase: Coinbase,
    aggregate_signature: Option<SignatureBytes>,
    short_ids: Vec<ShortId>,
    slots: Vec<Option<Transaction>>,
    key: ShortIdKey,
}

impl PartialBlock {
    /// Places every candidate whose short id the block names. `candidates`
    /// are all the payments the receiver holds (mempool and recently
    /// confirmed ones); a repeated candidate is harmless, two different
    /// ones under one short id are a collision.
    pub fn new<'a>(
        compact: CompactBlock,
        candidates: impl IntoIterator<Item = (Txid, &'a Transaction)>,
    ) -> Result<PartialBlock, RebuildError> {
        let key = ShortIdKey::of(&compact.hash());
        PartialBlock::with_key(compact, key, candidates.into_iter().map(|(txid, tx)| (key.short_id(&txid), tx)))
    }

    /// [`PartialBlock::new`] with the short ids computed by the caller.
    pub fn with_key<'a>(
        compact: CompactBlock,
        key: ShortIdKey,
        candidates: impl IntoIterator<Item = (ShortId, &'a Transaction)>,
    ) -> Result<PartialBlock, RebuildError> {
        let CompactBlock { header, coinbase, short_ids, aggregate_signature } = compact;
        if short_ids.len() > MAX_BLOCK_PAYMENTS {
            return Err(RebuildError::TooManyPayments(short_ids.len()));
        }
        let mut position = HashMap::with_capacity(short_ids.len());
        for (index, id) in short_ids.iter().enumerate() {
            if position.insert(*id, index).is_some() {
                return Err(RebuildError::Collision(*id));
            }
        }
        let mut slots: Vec<Option<Transaction>> = vec![None; short_ids.len()];
        for (id, tx) in candidates {
            let Some(slot) = position.get(&id).and_then(|&i| slots.get_mut(i)) else { continue };
            match slot {
                Some(placed) if placed != tx => return Err(RebuildError::Collision(id)),
                _ => *slot = Some(*tx),
            }
        }
        Ok(PartialBlock { header, coinbase, aggregate_signature, short_ids, slots, key })
    }

    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    pub fn header(&self) -> &BlockHeader {
        &self.header
    }

    pub fn payments(&self) -> usize {
        self.slots.len()
    }

    /// The positions still empty, in order.
    pub fn missing(&self) -> Vec<u32> {
        (0u32..).zip(&self.slots).filter(|(_, s)| s.is_none()).map(|(i, _)| i).collect()
    }

    /// Fills the positions `asked` with `given`, in order: each must match
    /// its short id, or nothing is filled.
    pub fn fill(&mut self, asked: &[u32], given: &[Transaction]) -> Result<(), RebuildError> {
        if asked.len() != given.len() {
            return Err(RebuildError::WrongCount { asked: asked.len(), given: given.len() });
        }
        for (&index, tx) in asked.iter().zip(given) {
            let expected = self.short_ids.get(index as usize).ok_or(RebuildError::WrongPayment { index })?;
            if self.key.short_id(&tx.txid()) != *expected {
                return Err(RebuildError::WrongPayment { index });
            }
        }
        for (&index, tx) in asked.iter().zip(given) {
            if let Some(slot) = self.slots.get_mut(index as usize) {
                *slot = Some(*tx);
            }
        }
        Ok(())
    }

    /// The block, once every position is filled. Whether its body matches
    /// the header's commitment is for validation to say.
    pub fn block(&self) -> Option<Block> {
        let transactions: Option<Vec<Transaction>> = self.slots.iter().copied().collect();
        Some(Block {
            header: self.header,
            body: BlockBody {
                coinbase: self.coinbase,
                transactions: transactions?,
                aggregate_signature: self.aggregate_signature,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::address::Address;
    use crate::types::amount::Amount;
    use crate::types::block::CompactTarget;
    use crate::types::encoding::{decode, encode, DecodeError};
    use crate::types::hash::Hash256;
    use crate::types::transaction::{ChainId, PublicKeyBytes};
    use proptest::prelude::*;

    fn payment(nonce: u64) -> Transaction {
        Transaction {
            chain_id: ChainId(1),
            sender: PublicKeyBytes([3; 48]),
            recipient: Address([4; 20]),
            amount: Amount(5),
            fee: Amount(6),
            nonce,
        }
    }

    fn block(payments: usize, nonce: u64) -> Block {
        let transactions: Vec<Transaction> = (0..payments as u64).map(payment).collect();
        let body = BlockBody {
            coinbase: Coinbase { height: 7, recipient: Address([9; 20]), amount: Amount(50) },
            aggregate_signature: (payments > 0).then_some(SignatureBytes([8; 96])),
            transactions,
        };
        let header = BlockHeader {
            version: 1,
            prev: BlockHash(Hash256([1; 32])),
            height: 7,
            body_commitment: body.commitment(),
            time: 1_700_000_000,
            target: CompactTarget(0x207fffff),
            nonce,
        };
        Block { header, body }
    }

    fn candidates(block: &Block) -> Vec<(Txid, Transaction)> {
        block.body.transactions.iter().map(|tx| (tx.txid(), *tx)).collect()
    }

    fn rebuild(compact: CompactBlock, held: &[(Txid, Transaction)]) -> Result<PartialBlock, RebuildError> {
        PartialBlock::new(compact, held.iter().map(|(id, tx)| (*id, tx)))
    }

    #[test]
    fn a_compact_block_costs_six_bytes_a_payment() {
        let full = block(5_000, 1);
        let compact = encode(&BlockMessage::Compact(CompactBlock::of(&full)));
        let per_payment = compact.len() as f64 / 5_000.0;
        assert!(per_payment < 6.1, "{per_payment} bytes a payment");
        assert!(encode(&full).len() > 70 * 5_000);
    }

    #[test]
    fn short_ids_depend_on_the_block() {
        let txid = payment(1).txid();
        let a = ShortIdKey::of(&block(0, 1).hash()).short_id(&txid);
        let b = ShortIdKey::of(&block(0, 2).hash()).short_id(&txid);
        assert_ne!(a, b);
    }

    #[test]
    fn a_block_whose_payments_are_all_held_rebuilds_exactly() {
        let full = block(50, 3);
        let partial = rebuild(CompactBlock::of(&full), &candidates(&full)).unwrap();
        assert!(partial.missing().is_empty());
        assert_eq!(partial.block(), Some(full));
    }

    #[test]
    fn missing_payments_are_named_by_position_and_filled_from_the_reply() {
        let full = block(10, 4);
        let held: Vec<_> =
            candidates(&full).into_iter().enumerate().filter(|(i, _)| i % 3 != 0).map(|(_, c)| c).collect();
        let mut partial = rebuild(CompactBlock::of(&full), &held).unwrap();
        assert_eq!(partial.missing(), vec![0, 3, 6, 9]);
        assert_eq!(partial.block(), None);
        let given: Vec<Transaction> = [0usize, 3, 6, 9].iter().map(|&i| full.body.transactions[i]).collect();
        // A wrong payment or count fills nothing.
        let mut wrong = given.clone();
        wrong.swap(0, 1);
        assert_eq!(partial.fill(&[0, 3, 6, 9], &wrong), Err(RebuildError::WrongPayment { index: 0 }));
        assert_eq!(partial.fill(&[0, 3, 6, 9], &given[..3]), Err(RebuildError::WrongCount { asked: 4, given: 3 }));
        assert_eq!(partial.missing().len(), 4);
        partial.fill(&[0, 3, 6, 9], &given).unwrap();
        assert_eq!(partial.block(), Some(full));
    }

    #[test]
    fn two_held_payments_under_one_short_id_are_a_collision() {
        let full = block(3, 5);
        let compact = CompactBlock::of(&full);
        let key = ShortIdKey::of(&compact.hash());
        let stranger = payment(99);
        // The stranger is given the short id of the block's first payment.
        let forced = compact.short_ids[0];
        let mut held: Vec<(ShortId, &Transaction)> =
            full.body.transactions.iter().map(|tx| (key.short_id(&tx.txid()), tx)).collect();
        held.push((forced, &stranger));
        assert_eq!(PartialBlock::with_key(compact.clone(), key, held).unwrap_err(), RebuildError::Collision(forced));
        // The same payment held twice is not a collision.
        let twice = [full.body.transactions[0], full.body.transactions[0]];
        let held = twice.iter().map(|tx| (key.short_id(&tx.txid()), tx));
        assert!(PartialBlock::with_key(compact, key, held).is_ok());
    }

    #[test]
    fn one_short_id_twice_in_a_block_is_a_collision() {
        let full = block(3, 6);
        let mut compact = CompactBlock::of(&full);
        compact.short_ids[2] = compact.short_ids[0];
        assert!(matches!(rebuild(compact, &candidates(&full)), Err(RebuildError::Collision(_))));
    }

    #[test]
    fn an_over_long_compact_block_is_refused() {
        let mut compact = CompactBlock::of(&block(0, 7));
        compact.short_ids = vec![ShortId([0; 6]); MAX_BLOCK_PAYMENTS + 1];
        assert!(matches!(rebuild(compact.clone(), &[]), Err(RebuildError::TooManyPayments(_))));
        // The largest block's compact form fits the cap.
        compact.short_ids.pop();
        compact.coinbase.amount = Amount(u64::MAX);
        compact.aggregate_signature = Some(SignatureBytes([0; 96]));
        assert!(encode(&BlockMessage::Compact(compact)).len() <= MAX_COMPACT_BLOCK_BYTES);
    }

    #[test]
    fn block_messages_decode_only_canonically() {
        let message = BlockMessage::Compact(CompactBlock::of(&block(4, 8)));
        let mut bytes = encode(&message);
        assert_eq!(decode::<BlockMessage>(&bytes, BlockMessage::MAX_BYTES), Ok(message));
        bytes.push(0);
        assert_eq!(decode::<BlockMessage>(&bytes, BlockMessage::MAX_BYTES), Err(DecodeError::TrailingBytes(1)));
        // An over-long varint for the number of short ids: 4 as 0x84 0x00.
        let compact = CompactBlock::of(&block(4, 8));
        let mut long = encode(&BlockMessage::Compact(compact.clone()));
        // The variant tag, the header and the coinbase come before the count.
        let prefix = encode(&(0u8, compact.header, compact.coinbase)).len();
        assert_eq!(long[prefix], 4);
        long[prefix] = 0x84;
        long.insert(prefix + 1, 0x00);
        assert!(decode::<BlockMessage>(&long, BlockMessage::MAX_BYTES).is_err());
    }

    proptest! {
        #[test]
        fn block_messages_round_trip(payments in 0usize..40, nonce in any::<u64>(), full in any::<bool>()) {
            let b = block(payments, nonce);
            let message = if full { BlockMessage::Full(b) } else { BlockMessage::Compact(CompactBlock::of(&b)) };
            let bytes = encode(&message);
            prop_assert_eq!(decode::<BlockMessage>(&bytes, BlockMessage::MAX_BYTES), Ok(message));
        }
    }
}
