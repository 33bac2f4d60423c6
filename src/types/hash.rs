//! Hashes: the 32-byte double SHA-256 values that name blocks and transactions.

use std::fmt;

use sha2::{Digest, Sha256};

/// A 32-byte hash, printed as lowercase hex in the byte order it is hashed in.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
pub struct Hash256(pub [u8; 32]);

impl Hash256 {
    pub const ZERO: Hash256 = Hash256([0u8; 32]);

    /// Double SHA-256 of `data`.
    pub fn double_sha256(data: &[u8]) -> Hash256 {
        let first = Sha256::digest(data);
        Hash256(Sha256::digest(first).into())
    }

    /// Single SHA-256 of `data`.
    pub fn sha256(data: &[u8]) -> Hash256 {
        Hash256(Sha256::digest(data).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Hash256, HashParseError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| HashParseError(text.chars().take(80).collect()))?;
        Ok(Hash256(out))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a hash: expected 64 hexadecimal digits")]
pub struct HashParseError(String);

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash256({})", self.to_hex())
    }
}

/// Names a block: the double SHA-256 of its header layout.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
pub struct BlockHash(pub Hash256);

/// Names a transaction: the double SHA-256 of its encoding without the signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
pub struct Txid(pub Hash256);

macro_rules! hash_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0 .0
            }
            pub fn from_hex(text: &str) -> Result<$name, HashParseError> {
                Hash256::from_hex(text).map($name)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.to_hex())
            }
        }
    };
}
hash_newtype!(BlockHash);
hash_newtype!(Txid);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_sha256_of_empty_input_matches_known_value() {
        // Known value: SHA256(SHA256("")).
        assert_eq!(
            Hash256::double_sha256(b"").to_hex(),
            "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
        );
    }

    #[test]
    fn hex_round_trip_and_rejects_bad_text() {
        let h = Hash256::double_sha256(b"ourcoin");
        assert_eq!(Hash256::from_hex(&h.to_hex()), Ok(h));
        assert!(Hash256::from_hex("abc").is_err());
        assert!(Hash256::from_hex(&"zz".repeat(32)).is_err());
    }
}
