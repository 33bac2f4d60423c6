//! Blocks: a fixed-layout header and a body that it commits to.

use std::fmt;

use super::encoding::encode;
use super::hash::{BlockHash, Hash256, Txid};
use super::transaction::{Coinbase, SignatureBytes, Transaction};

/// The size of the header layout that is hashed.
pub const HEADER_BYTES: usize = 96;
/// Where the nonce starts in the header layout: in the second SHA-256 block,
/// so a miner hashes the first 64 bytes once and reuses that midstate.
pub const HEADER_NONCE_OFFSET: usize = 88;

// The nonce is the last field and lies in the second 64-byte block; the header
// with SHA-256's padding (one byte and an 8-byte length) fits two blocks.
const _: () = assert!(HEADER_NONCE_OFFSET >= 64 && HEADER_NONCE_OFFSET + 8 == HEADER_BYTES && HEADER_BYTES <= 119);

/// A target in compact form (Bitcoin's `nBits`: a one-byte exponent and a
/// three-byte mantissa).
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CompactTarget(pub u32);

impl fmt::Debug for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompactTarget({:#010x})", self.0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct BlockHeader {
    pub version: u32,
    pub prev: BlockHash,
    pub height: u64,
    /// Double SHA-256 of the encoded body, aggregate signature included.
    pub body_commitment: Hash256,
    /// Seconds since the Unix epoch.
    pub time: u64,
    pub target: CompactTarget,
    pub nonce: u64,
}

impl BlockHeader {
    /// The fixed-width little-endian layout that is hashed:
    /// version(4) prev(32) height(8) commitment(32) time(8) target(4) nonce(8).
    pub fn to_bytes(&self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        let fields: [&[u8]; 7] = [
            &self.version.to_le_bytes(),
            self.prev.as_bytes(),
            &self.height.to_le_bytes(),
            self.body_commitment.as_bytes(),
            &self.time.to_le_bytes(),
            &self.target.0.to_le_bytes(),
            &self.nonce.to_le_bytes(),
        ];
        // The field widths add up to HEADER_BYTES exactly.
        for (slot, byte) in out.iter_mut().zip(fields.into_iter().flatten()) {
            *slot = *byte;
        }
        out
    }

    pub fn hash(&self) -> BlockHash {
        BlockHash(Hash256::double_sha256(&self.to_bytes()))
    }
}

/// Everything the header's body commitment covers.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct BlockBody {
    pub coinbase: Coinbase,
    pub transactions: Vec<Transaction>,
    /// The aggregate of every transaction's signature; absent exactly when
    /// there is no transaction besides the coinbase.
    pub aggregate_signature: Option<SignatureBytes>,
}

impl BlockBody {
    pub fn commitment(&self) -> Hash256 {
        Hash256::double_sha256(&encode(self))
    }
}

#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub body: BlockBody,
}

impl Block {
    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// Txids, coinbase first.
    pub fn txids(&self) -> Vec<Txid> {
        std::iter::once(self.body.coinbase.txid()).chain(self.body.transactions.iter().map(Transaction::txid)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::address::Address;
    use crate::types::amount::Amount;
    use crate::types::encoding::{decode, MAX_BLOCK_BYTES};
    use proptest::prelude::*;

    fn header(nonce: u64) -> BlockHeader {
        BlockHeader {
            version: 1,
            prev: BlockHash(Hash256([1; 32])),
            height: 7,
            body_commitment: Hash256([2; 32]),
            time: 1_700_000_000,
            target: CompactTarget(0x1d00ffff),
            nonce,
        }
    }

    #[test]
    fn the_nonce_is_last_in_the_second_sha256_block() {
        let bytes = header(0x0102030405060708).to_bytes();
        assert_eq!(&bytes[HEADER_NONCE_OFFSET..], &0x0102030405060708u64.to_le_bytes());
    }

    proptest! {
        #[test]
        fn blocks_round_trip(nonce in any::<u64>(), n in 0usize..5, sig in proptest::option::of(any::<u8>())) {
            let tx = Transaction {
                chain_id: crate::types::ChainId(1),
                sender: crate::types::PublicKeyBytes([3; 48]),
                recipient: Address([4; 20]),
                amount: Amount(5),
                fee: Amount(6),
                nonce: 7,
            };
            let block = Block {
                header: header(nonce),
                body: BlockBody {
                    coinbase: Coinbase { height: 7, recipient: Address([9; 20]), amount: Amount(50) },
                    transactions: vec![tx; n],
                    aggregate_signature: sig.map(|s| SignatureBytes([s; 96])),
                },
            };
            let bytes = encode(&block);
            prop_assert_eq!(decode::<Block>(&bytes, MAX_BLOCK_BYTES), Ok(block));
        }

        #[test]
        fn every_header_field_changes_the_hash(nonce in any::<u64>()) {
            let h = header(nonce);
            let mut other = h;
            other.nonce = nonce.wrapping_add(1);
            prop_assert_ne!(h.hash(), other.hash());
            let mut other = h;
            other.time += 1;
            prop_assert_ne!(h.hash(), other.hash());
        }
    }
}
