//! Addresses: the first 20 bytes of SHA-256(public key), in bech32m text with a
//! per-network prefix, so a typo or an address of another network is refused.

use std::fmt;

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};

use super::hash::Hash256;
use super::network::Network;
use super::transaction::PublicKeyBytes;

/// A 20-byte account address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
pub struct Address(pub [u8; 20]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressParseError {
    #[error("`{0}` is not a valid address (mistyped, or not an OurCoin address)")]
    Invalid(String),
    #[error("`{text}` is an address of the {found} network, not of {expected}")]
    WrongNetwork { text: String, found: String, expected: Network },
}

impl Address {
    /// The address of a public key.
    pub fn from_public_key(public_key: &PublicKeyBytes) -> Address {
        let digest = Hash256::sha256(&public_key.0);
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest.0[..20]);
        Address(out)
    }

    /// The bech32m text of this address on `network`.
    pub fn encode(&self, network: Network) -> String {
        // The prefixes are fixed valid strings and the payload is 20 bytes, far
        // below bech32's length limit, so encoding cannot fail.
        let hrp = Hrp::parse_unchecked(network.address_prefix());
        bech32::encode::<Bech32m>(hrp, &self.0).unwrap_or_default()
    }

    /// Parses the bech32m text of an address of `network`.
    pub fn parse(text: &str, network: Network) -> Result<Address, AddressParseError> {
        let short: String = text.chars().take(100).collect();
        let invalid = || AddressParseError::Invalid(short.clone());
        if text.len() > 90 {
            return Err(invalid());
        }
        let checked = CheckedHrpstring::new::<Bech32m>(text).map_err(|_| invalid())?;
        let prefix = checked.hrp().to_lowercase();
        if prefix != network.address_prefix() {
            return match Network::from_address_prefix(&prefix) {
                Some(found) => Err(AddressParseError::WrongNetwork {
                    text: short.clone(),
                    found: found.to_string(),
                    expected: network,
                }),
                None => Err(invalid()),
            };
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let array: [u8; 20] = bytes.try_into().map_err(|_| invalid())?;
        Ok(Address(array))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_with_the_network_prefix() {
        let a = Address([7u8; 20]);
        assert!(a.encode(Network::Main).starts_with("oc1"));
        assert!(a.encode(Network::Test).starts_with("toc1"));
        assert!(a.encode(Network::Regtest).starts_with("roc1"));
    }

    #[test]
    fn refuses_an_address_of_another_network() {
        let text = Address([7u8; 20]).encode(Network::Test);
        assert!(matches!(Address::parse(&text, Network::Main), Err(AddressParseError::WrongNetwork { .. })));
    }

    #[test]
    fn refuses_garbage_and_plain_bech32() {
        assert!(Address::parse("", Network::Main).is_err());
        assert!(Address::parse("oc1", Network::Main).is_err());
        assert!(Address::parse(&"oc1".repeat(40), Network::Main).is_err());
        // Same payload with the older bech32 checksum: refused, only bech32m is valid.
        let hrp = Hrp::parse("oc").unwrap();
        let old = bech32::encode::<bech32::Bech32>(hrp, &[7u8; 20]).unwrap();
        assert!(Address::parse(&old, Network::Main).is_err());
        // A wrong payload length.
        let short = bech32::encode::<Bech32m>(hrp, &[7u8; 19]).unwrap();
        assert!(Address::parse(&short, Network::Main).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(bytes in any::<[u8; 20]>()) {
            let a = Address(bytes);
            for network in [Network::Main, Network::Test, Network::Regtest] {
                prop_assert_eq!(Address::parse(&a.encode(network), network), Ok(a));
            }
        }

        #[test]
        fn a_one_character_typo_is_rejected(bytes in any::<[u8; 20]>(), pos in 0usize..64, replacement in 0usize..32) {
            const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
            let text = Address(bytes).encode(Network::Main);
            // Change one character of the data part (after "oc1").
            let data_start = 3;
            let idx = data_start + pos % (text.len() - data_start);
            let mut chars: Vec<u8> = text.clone().into_bytes();
            let new = CHARSET[replacement];
            prop_assume!(chars[idx] != new);
            chars[idx] = new;
            let typo = String::from_utf8(chars).unwrap();
            prop_assert!(Address::parse(&typo, Network::Main).is_err());
        }
    }
}
