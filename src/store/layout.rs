//! How the store's data sits in sled: tree names, key layouts, value codecs.
//!
//! Keys that are scanned in order start with a big-endian height, so sled's
//! byte order is height order. Values are postcard, and everything read back
//! goes through the crate's canonical [`decode`] with a cap: a damaged value
//! becomes a [`StoreError`] naming its tree and key, never a panic and never
//! an allocation the value's length prefix asks for.

use std::fmt::Display;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::chain::StoreError;
use crate::types::{decode, Address, BlockHash, Hash256, SignatureBytes, Txid, MAX_BLOCK_BYTES};

/// Bumped whenever the layout below changes incompatibly.
pub(super) const LAYOUT_VERSION: u32 = 1;

// Tree names.
/// Block hash -> postcard `Block`, on the best chain or not.
pub(super) const BLOCKS: &str = "blocks";
/// Block hash -> postcard `BlockHeader`, so the index loads without decoding bodies.
pub(super) const HEADERS: &str = "headers";
/// Block hash -> postcard `BlockUndo`, for best-chain blocks only.
pub(super) const UNDO: &str = "undo";
/// Block hash -> nothing: blocks found invalid.
pub(super) const INVALID: &str = "invalid";
/// Height (8 bytes BE) -> block hash: the best chain.
pub(super) const BEST: &str = "best_chain";
/// [`TIP_KEY`] -> postcard [`StoredTip`]; [`LAYOUT_KEY`] -> postcard `u32`.
pub(super) const META: &str = "meta";
/// Address (20 bytes) -> postcard `Account`: the ledger at the tip.
pub(super) const ACCOUNTS: &str = "accounts";
/// Height (8 bytes BE) -> postcard `MaturingReward`.
pub(super) const REWARDS: &str = "maturing_rewards";
/// Txid -> postcard `TxLocation`, for best-chain transactions.
pub(super) const TXS: &str = "tx_index";
/// Address (20) || height (8 BE) || index (4 BE) -> txid: a reverse prefix
/// scan lists an address's transactions newest first.
pub(super) const HISTORY: &str = "address_index";
/// Txid -> postcard [`StoredSignature`]: signatures of recently confirmed transactions.
pub(super) const SIGNATURES: &str = "signatures";
/// Height (8 BE) || txid -> nothing: which signatures a height brought, for pruning.
pub(super) const SIGNATURE_HEIGHTS: &str = "signatures_by_height";

pub(super) const TIP_KEY: &[u8] = b"tip";
pub(super) const LAYOUT_KEY: &[u8] = b"layout_version";

// Caps on what a value may decode from; each well above what a valid value needs.
pub(super) const BLOCK_CAP: usize = MAX_BLOCK_BYTES;
/// A postcard header is at most 5 + 32 + 10 + 32 + 10 + 5 + 10 = 104 bytes.
pub(super) const HEADER_CAP: usize = 128;
/// Every payment (at least 72 bytes of block) changes at most two accounts,
/// each recorded in at most 20 + 1 + 30 bytes: the undo record of a full
/// block stays under 1.5 times the block's size.
pub(super) const UNDO_CAP: usize = 2 * MAX_BLOCK_BYTES;
/// Three varints: at most 30 bytes.
pub(super) const ACCOUNT_CAP: usize = 64;
/// Height, address, amount: at most 40 bytes.
pub(super) const REWARD_CAP: usize = 64;
/// Hash, height, index: at most 47 bytes.
pub(super) const LOCATION_CAP: usize = 64;
pub(super) const HASH_CAP: usize = 32;
/// Height and hash: at most 42 bytes.
pub(super) const TIP_CAP: usize = 64;
/// Height and signature: at most 106 bytes.
pub(super) const SIGNATURE_CAP: usize = 128;
pub(super) const LAYOUT_CAP: usize = 8;

/// The best chain's tip, kept beside the best-chain tree so the tip is one read.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct StoredTip {
    pub height: u64,
    pub hash: BlockHash,
}

/// A confirmed transaction's signature and the height of the block that last
/// confirmed it: a pruned height only removes a signature confirmed no later.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct StoredSignature {
    pub height: u64,
    pub signature: SignatureBytes,
}

pub(super) fn height_key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

pub(super) const HISTORY_KEY_BYTES: usize = 20 + 8 + 4;

pub(super) fn history_key(address: &Address, height: u64, index: u32) -> [u8; HISTORY_KEY_BYTES] {
    let mut key = [0u8; HISTORY_KEY_BYTES];
    let (addr, rest) = key.split_at_mut(20);
    addr.copy_from_slice(&address.0);
    let (h, i) = rest.split_at_mut(8);
    h.copy_from_slice(&height.to_be_bytes());
    i.copy_from_slice(&index.to_be_bytes());
    key
}

pub(super) const SIGNATURE_HEIGHT_KEY_BYTES: usize = 8 + 32;

pub(super) fn signature_height_key(height: u64, txid: &Txid) -> [u8; SIGNATURE_HEIGHT_KEY_BYTES] {
    let mut key = [0u8; SIGNATURE_HEIGHT_KEY_BYTES];
    let (h, id) = key.split_at_mut(8);
    h.copy_from_slice(&height.to_be_bytes());
    id.copy_from_slice(txid.as_bytes());
    key
}

/// Splits a [`SIGNATURE_HEIGHTS`] key into its height and txid.
pub(super) fn parse_signature_height_key(key: &[u8]) -> Result<(u64, Txid), StoreError> {
    let bad = || corrupt(SIGNATURE_HEIGHTS, key, format!("key is not {SIGNATURE_HEIGHT_KEY_BYTES} bytes"));
    let (height, txid) = key.split_first_chunk::<8>().ok_or_else(bad)?;
    let txid: [u8; 32] = txid.try_into().map_err(|_| bad())?;
    Ok((u64::from_be_bytes(*height), Txid(Hash256(txid))))
}

/// A block hash stored as a key (in [`INVALID`] and [`HEADERS`]).
pub(super) fn hash_from_key(tree: &str, key: &[u8]) -> Result<BlockHash, StoreError> {
    let bytes: [u8; 32] = key.try_into().map_err(|_| corrupt(tree, key, "key is not a 32-byte block hash"))?;
    Ok(BlockHash(Hash256(bytes)))
}

/// Decodes a value read from `tree` at `key`, canonically and within `cap` bytes.
pub(super) fn decode_value<T: Serialize + DeserializeOwned>(
    tree: &str,
    key: &[u8],
    bytes: &[u8],
    cap: usize,
) -> Result<T, StoreError> {
    decode(bytes, cap).map_err(|e| corrupt(tree, key, e))
}

pub(super) fn corrupt(tree: &str, key: &[u8], reason: impl Display) -> StoreError {
    StoreError(format!(
        "corrupt database: tree `{tree}`, key {}: {reason}; restart with --reindex, or delete the database and sync again",
        hex::encode(key)
    ))
}

pub(super) fn sled_error(doing: &str, error: sled::Error) -> StoreError {
    StoreError(format!("sled failed while {doing}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keys_sort_by_address_then_height_then_index() {
        let a = Address([1; 20]);
        let b = Address([2; 20]);
        let mut keys = [
            history_key(&b, 0, 0),
            history_key(&a, 256, 0),
            history_key(&a, 1, 7),
            history_key(&a, 1, 300),
            history_key(&a, 255, 0),
        ];
        keys.sort();
        assert_eq!(
            keys,
            [
                history_key(&a, 1, 7),
                history_key(&a, 1, 300),
                history_key(&a, 255, 0),
                history_key(&a, 256, 0),
                history_key(&b, 0, 0),
            ]
        );
    }

    #[test]
    fn signature_height_keys_round_trip_and_sort_by_height() {
        let txid = Txid(Hash256([9; 32]));
        let key = signature_height_key(0x0102, &txid);
        assert_eq!(parse_signature_height_key(&key), Ok((0x0102, txid)));
        assert!(signature_height_key(255, &txid) < signature_height_key(256, &Txid(Hash256([0; 32]))));
        assert!(parse_signature_height_key(&key[..39]).is_err());
    }

    #[test]
    fn caps_cover_the_largest_fixed_values() {
        use crate::types::{encode, Amount, BlockHeader, CompactTarget};
        let header = BlockHeader {
            version: u32::MAX,
            prev: BlockHash(Hash256([0xff; 32])),
            height: u64::MAX,
            body_commitment: Hash256([0xff; 32]),
            time: u64::MAX,
            target: CompactTarget(u32::MAX),
            nonce: u64::MAX,
        };
        assert!(encode(&header).len() <= HEADER_CAP);
        let account = crate::state::Account { balance: Amount(u64::MAX), immature: Amount(u64::MAX), nonce: u64::MAX };
        assert!(encode(&account).len() <= ACCOUNT_CAP);
        let reward =
            crate::state::MaturingReward { height: u64::MAX, recipient: Address([0xff; 20]), amount: Amount(u64::MAX) };
        assert!(encode(&reward).len() <= REWARD_CAP);
        let location =
            crate::chain::TxLocation { block: BlockHash(Hash256([0xff; 32])), height: u64::MAX, index: u32::MAX };
        assert!(encode(&location).len() <= LOCATION_CAP);
        assert!(encode(&StoredTip { height: u64::MAX, hash: BlockHash(Hash256([0xff; 32])) }).len() <= TIP_CAP);
        let signature = StoredSignature { height: u64::MAX, signature: SignatureBytes([0xff; 96]) };
        assert!(encode(&signature).len() <= SIGNATURE_CAP);
        assert_eq!(encode(&BlockHash(Hash256([0xff; 32]))).len(), HASH_CAP);
        assert!(encode(&u32::MAX).len() <= LAYOUT_CAP);
    }
}
