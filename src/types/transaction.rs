//! Transactions: payments signed by their sender, and the coinbase that pays the miner.

use std::fmt;

use super::address::Address;
use super::amount::Amount;
use super::encoding::{byte_array, encode};
use super::hash::{Hash256, Txid};

/// Tags the signing message so a transaction signature can never be taken for
/// a signature over anything else.
pub const TX_SIGNING_DOMAIN: &[u8] = b"OURCOIN_TX_V1";

/// Identifies a network inside every signed message, so a transaction from one
/// network is never valid on another.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct ChainId(pub u32);

/// A compressed BLS12-381 G1 public key as bytes; not yet validated.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct PublicKeyBytes(#[serde(with = "byte_array")] pub [u8; 48]);

/// A compressed BLS12-381 G2 signature as bytes; not yet group-checked.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SignatureBytes(#[serde(with = "byte_array")] pub [u8; 96]);

impl fmt::Debug for PublicKeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKeyBytes({})", hex::encode(self.0))
    }
}

impl fmt::Debug for SignatureBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignatureBytes({})", hex::encode(self.0))
    }
}

impl PublicKeyBytes {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl SignatureBytes {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// A payment from the holder of `sender`'s key to `recipient`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct Transaction {
    pub chain_id: ChainId,
    pub sender: PublicKeyBytes,
    pub recipient: Address,
    pub amount: Amount,
    pub fee: Amount,
    /// The number of transactions the sender had sent before this one.
    pub nonce: u64,
}

impl Transaction {
    /// The double SHA-256 of the encoding without the signature.
    pub fn txid(&self) -> Txid {
        Txid(Hash256::double_sha256(&encode(self)))
    }

    pub fn sender_address(&self) -> Address {
        Address::from_public_key(&self.sender)
    }

    /// What the sender signs: the domain tag, the chain id, then the txid
    /// (which commits to every field).
    pub fn signing_message(&self) -> [u8; TX_SIGNING_DOMAIN.len() + 4 + 32] {
        let mut msg = [0u8; TX_SIGNING_DOMAIN.len() + 4 + 32];
        let (tag, rest) = msg.split_at_mut(TX_SIGNING_DOMAIN.len());
        tag.copy_from_slice(TX_SIGNING_DOMAIN);
        let (chain, id) = rest.split_at_mut(4);
        chain.copy_from_slice(&self.chain_id.0.to_le_bytes());
        id.copy_from_slice(self.txid().as_bytes());
        msg
    }

    /// Amount plus fee: what the sender's balance loses, or `None` on overflow.
    pub fn total_spend(&self) -> Option<Amount> {
        self.amount.checked_add(self.fee)
    }
}

/// A transaction as it travels through gossip and sits in the mempool: with
/// its own signature. Inside a block the signature is folded into the
/// aggregate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct SignedTransaction {
    pub tx: Transaction,
    pub signature: SignatureBytes,
}

impl SignedTransaction {
    pub fn txid(&self) -> Txid {
        self.tx.txid()
    }
}

/// The first entry of every block: pays the miner the subsidy plus all fees.
/// It carries the block's height so no two coinbases share a txid.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct Coinbase {
    pub height: u64,
    pub recipient: Address,
    pub amount: Amount,
}

impl Coinbase {
    /// The coinbase's txid. A coinbase encodes to at most 40 bytes and a
    /// transaction to at least 72, so the two kinds never share a txid.
    pub fn txid(&self) -> Txid {
        Txid(Hash256::double_sha256(&encode(self)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::encoding::{decode, MAX_TX_BYTES};
    use proptest::prelude::*;

    pub fn arb_transaction() -> impl Strategy<Value = Transaction> {
        (any::<u32>(), any::<[u8; 20]>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u8>()).prop_map(
            |(chain, to, amount, fee, nonce, k)| Transaction {
                chain_id: ChainId(chain),
                sender: PublicKeyBytes([k; 48]),
                recipient: Address(to),
                amount: Amount(amount),
                fee: Amount(fee),
                nonce,
            },
        )
    }

    proptest! {
        #[test]
        fn signed_transactions_round_trip(tx in arb_transaction(), sig in any::<u8>()) {
            let stx = SignedTransaction { tx, signature: SignatureBytes([sig; 96]) };
            let bytes = encode(&stx);
            prop_assert!(bytes.len() <= MAX_TX_BYTES);
            prop_assert_eq!(decode::<SignedTransaction>(&bytes, MAX_TX_BYTES), Ok(stx));
        }

        #[test]
        fn coinbase_and_transaction_encodings_never_share_a_length(tx in arb_transaction(), h in any::<u64>(), a in any::<u64>()) {
            let cb = Coinbase { height: h, recipient: Address([1; 20]), amount: Amount(a) };
            prop_assert!(encode(&cb).len() <= 40);
            prop_assert!(encode(&tx).len() >= 72);
        }

        #[test]
        fn the_signing_message_covers_every_field(tx in arb_transaction(), amount in any::<u64>()) {
            prop_assume!(amount != tx.amount.0);
            let mut other = tx;
            other.amount = Amount(amount);
            prop_assert_ne!(tx.signing_message(), other.signing_message());
        }
    }
}
