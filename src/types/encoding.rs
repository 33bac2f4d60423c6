//! Postcard encoding with size caps, decoded canonically.
//!
//! postcard accepts over-long varints and ignores trailing bytes, so two byte
//! strings could decode to one value. Every decode of untrusted bytes therefore
//! re-encodes the value and requires the exact input back.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest encoded block (2 MiB).
pub const MAX_BLOCK_BYTES: usize = 2 * 1024 * 1024;
/// The largest encoded signed transaction. A real one is about 190 bytes.
pub const MAX_TX_BYTES: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("encoding is {len} bytes, over the limit of {cap}")]
    TooLarge { len: usize, cap: usize },
    #[error("malformed encoding: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the encoded value")]
    TrailingBytes(usize),
    #[error("non-canonical encoding (for example an over-long varint)")]
    NonCanonical,
}

/// Encodes a value with postcard. Serialising our own types into a vector
/// cannot fail; should it ever, the empty vector decodes to nothing valid.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).unwrap_or_default()
}

/// Decodes untrusted bytes: at most `cap` of them, no trailing bytes, and
/// only the one canonical encoding of the value.
pub fn decode<T: Serialize + DeserializeOwned>(bytes: &[u8], cap: usize) -> Result<T, DecodeError> {
    if bytes.len() > cap {
        return Err(DecodeError::TooLarge { len: bytes.len(), cap });
    }
    let (value, rest): (T, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    if encode(&value) != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}

/// Serde for fixed-size byte arrays longer than 32 (keys, signatures): written
/// as a tuple, so postcard stores exactly N bytes with no length prefix.
pub(crate) mod byte_array {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeTuple;
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer, const N: usize>(bytes: &[u8; N], serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(N)?;
        for b in bytes {
            tuple.serialize_element(b)?;
        }
        tuple.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(deserializer: D) -> Result<[u8; N], D::Error> {
        struct ArrayVisitor<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for ArrayVisitor<N> {
            type Value = [u8; N];
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "{N} bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
                let mut out = [0u8; N];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq.next_element()?.ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                Ok(out)
            }
        }
        deserializer.deserialize_tuple(N, ArrayVisitor::<N>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Sample {
        n: u64,
        items: Vec<u32>,
    }

    #[test]
    fn round_trip() {
        let s = Sample { n: 300, items: vec![1, 2, 70000] };
        let bytes = encode(&s);
        assert_eq!(decode::<Sample>(&bytes, 100), Ok(s));
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = encode(&Sample { n: 1, items: vec![] });
        bytes.push(0);
        assert_eq!(decode::<Sample>(&bytes, 100), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn rejects_an_over_long_varint() {
        // 1 encoded as the two-byte varint 0x81 0x00 instead of 0x01.
        let bytes = [0x81, 0x00, 0x00];
        assert!(postcard::from_bytes::<Sample>(&bytes).is_ok(), "postcard itself accepts it");
        assert_eq!(decode::<Sample>(&bytes, 100), Err(DecodeError::NonCanonical));
    }

    #[test]
    fn rejects_oversize_input_before_parsing() {
        let bytes = vec![0u8; 101];
        assert_eq!(decode::<Sample>(&bytes, 100), Err(DecodeError::TooLarge { len: 101, cap: 100 }));
    }

    #[test]
    fn a_length_prefix_claiming_gigabytes_fails_without_allocating() {
        // n = 0, then a vector length of 2^32 with no elements behind it.
        let bytes = [0x00, 0x80, 0x80, 0x80, 0x80, 0x10];
        assert!(matches!(decode::<Sample>(&bytes, 100), Err(DecodeError::Malformed(_))));
    }
}
