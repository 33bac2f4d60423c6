//! Proof of work: header hashing, compact targets and the work a target stands for.

use std::fmt;

use primitive_types::U256;

use crate::types::{BlockHash, BlockHeader, CompactTarget};

/// A 256-bit target: a header's hash, read as a big-endian number, must not exceed it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Target(pub U256);

/// The expected number of hashes behind a block, and sums of it along a chain.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Work(pub U256);

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", self.to_hex())
    }
}

impl fmt::Debug for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Work({:#x})", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    #[error("compact target {0:#010x} is negative")]
    Negative(u32),
    #[error("compact target {0:#010x} overflows 256 bits")]
    Overflow(u32),
    #[error("compact target {0:#010x} is zero")]
    Zero(u32),
}

impl Target {
    /// Decodes Bitcoin's compact form; a negative, zero or overflowing value is an error.
    pub fn from_compact(compact: CompactTarget) -> Result<Target, CompactError> {
        let bits = compact.0;
        let exponent = bits >> 24;
        let mantissa = bits & 0x007f_ffff;
        if mantissa != 0 && bits & 0x0080_0000 != 0 {
            return Err(CompactError::Negative(bits));
        }
        let value = if exponent <= 3 {
            U256::from(mantissa >> (8 * (3 - exponent)))
        } else {
            let shift = 8 * (exponent - 3);
            // The mantissa has at most 23 significant bits.
            if mantissa != 0 && (shift > 255 || (256 - shift) < bits_of(mantissa)) {
                return Err(CompactError::Overflow(bits));
            }
            if shift > 255 {
                U256::zero()
            } else {
                U256::from(mantissa) << shift
            }
        };
        if value.is_zero() {
            return Err(CompactError::Zero(bits));
        }
        Ok(Target(value))
    }

    /// Encodes to the compact form, rounding down to its 23-bit precision.
    pub fn to_compact(&self) -> CompactTarget {
        let mut size = (self.0.bits() as u32).div_ceil(8);
        let mut mantissa: u32 = if size <= 3 {
            (self.0.low_u64() << (8 * (3 - size))) as u32
        } else {
            (self.0 >> (8 * (size - 3))).low_u64() as u32
        };
        // A set top bit would read as a sign: move one byte into the exponent.
        if mantissa & 0x0080_0000 != 0 {
            mantissa >>= 8;
            size += 1;
        }
        CompactTarget(mantissa | (size << 24))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.to_be_bytes())
    }

    pub fn to_be_bytes(&self) -> [u8; 32] {
        self.0.to_big_endian()
    }

    /// Whether a block hash, read as a big-endian number, meets this target.
    pub fn is_met_by(&self, hash: &BlockHash) -> bool {
        U256::from_big_endian(hash.as_bytes()) <= self.0
    }

    /// The expected number of hashes to meet this target: 2^256 / (target + 1).
    pub fn work(&self) -> Work {
        // (2^256 - target - 1) / (target + 1) + 1, which stays within 256 bits.
        let inverse = !self.0;
        Work((inverse / (self.0.saturating_add(U256::one()))).saturating_add(U256::one()))
    }
}

fn bits_of(x: u32) -> u32 {
    32 - x.leading_zeros()
}

impl Work {
    pub fn checked_add(self, other: Work) -> Option<Work> {
        self.0.checked_add(other.0).map(Work)
    }

    pub fn to_be_bytes(&self) -> [u8; 32] {
        self.0.to_big_endian()
    }

    pub fn from_be_bytes(bytes: &[u8; 32]) -> Work {
        Work(U256::from_big_endian(bytes))
    }
}

/// The header's hash meets the target its own header states.
pub fn header_meets_its_target(header: &BlockHeader) -> Result<bool, CompactError> {
    Ok(Target::from_compact(header.target)?.is_met_by(&header.hash()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compact_matches_bitcoins_known_values() {
        let t = Target::from_compact(CompactTarget(0x1d00ffff)).unwrap();
        assert_eq!(t.to_hex(), "00000000ffff0000000000000000000000000000000000000000000000000000");
        assert_eq!(t.to_compact(), CompactTarget(0x1d00ffff));
        let t = Target::from_compact(CompactTarget(0x207fffff)).unwrap();
        assert_eq!(t.to_hex(), "7fffff0000000000000000000000000000000000000000000000000000000000");
        // Bitcoin's genesis work: 0x100010001.
        assert_eq!(Target::from_compact(CompactTarget(0x1d00ffff)).unwrap().work().0, U256::from(0x1_0001_0001u64));
        assert_eq!(Target::from_compact(CompactTarget(0x03123456)).unwrap().0, U256::from(0x123456u64));
        assert_eq!(Target::from_compact(CompactTarget(0x01120000)).unwrap().0, U256::from(0x12u64));
    }

    #[test]
    fn rejects_negative_zero_and_overflowing_compacts() {
        assert_eq!(Target::from_compact(CompactTarget(0x04923456)), Err(CompactError::Negative(0x04923456)));
        assert_eq!(Target::from_compact(CompactTarget(0x00000000)), Err(CompactError::Zero(0)));
        assert_eq!(Target::from_compact(CompactTarget(0x21010000)), Err(CompactError::Overflow(0x21010000)));
        assert_eq!(Target::from_compact(CompactTarget(0xff123456)), Err(CompactError::Overflow(0xff123456)));
        assert!(Target::from_compact(CompactTarget(0x20ffffff)).is_err());
    }

    #[test]
    fn the_easiest_target_is_met_by_almost_every_hash() {
        let t = Target::from_compact(CompactTarget(0x207fffff)).unwrap();
        assert!(t.is_met_by(&BlockHash(crate::types::Hash256([0x7f; 32]))));
        assert!(!t.is_met_by(&BlockHash(crate::types::Hash256([0x80; 32]))));
        assert_eq!(t.work().0, U256::from(2u64));
    }

    proptest! {
        #[test]
        fn compact_round_trip_rounds_down(bytes in any::<[u8; 32]>()) {
            let value = U256::from_big_endian(&bytes);
            prop_assume!(!value.is_zero());
            let compact = Target(value).to_compact();
            if let Ok(back) = Target::from_compact(compact) {
                prop_assert!(back.0 <= value);
                prop_assert_eq!(back.to_compact(), compact);
            } else {
                // Only values whose top 23 bits round to zero cannot be represented.
                prop_assert!(value.bits() <= 8);
            }
        }

        #[test]
        fn smaller_targets_mean_more_work(a in 1u64.., b in 1u64..) {
            prop_assume!(a < b);
            prop_assert!(Target(U256::from(a)).work() >= Target(U256::from(b)).work());
        }
    }
}
