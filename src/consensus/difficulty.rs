//! ASERT difficulty (aserti3-2d, as specified for Bitcoin Cash), retargeted
//! every block toward the network's block time.
//!
//! The anchor is block 1, with its own timestamp and target: a genesis dated
//! long before launch must not hand out cheap blocks. A block one half-life
//! behind schedule gets twice the target, one ahead gets half.

use primitive_types::{U256, U512};

use super::params::Params;
use crate::crypto::Target;
use crate::types::{BlockHeader, CompactTarget};

/// The target the block after `parent` must carry. `anchor` is block 1's
/// header; it is needed once `parent` is block 1 or later.
pub fn next_target(params: &Params, parent: &BlockHeader, anchor: Option<&BlockHeader>) -> CompactTarget {
    let anchor = match anchor {
        Some(anchor) if parent.height >= 1 => anchor,
        // The block after genesis is the anchor: it carries the initial target.
        _ => return params.initial_target,
    };
    let pow_limit = Target::from_compact(params.pow_limit).map(|t| t.0).unwrap_or(U256::MAX);
    let anchor_target = Target::from_compact(anchor.target).map(|t| t.0).unwrap_or(pow_limit);
    let time_diff = i128::from(parent.time) - i128::from(anchor.time);
    let height_diff = i128::from(parent.height) - i128::from(anchor.height);
    let target = asert(
        anchor_target,
        pow_limit,
        i128::from(params.block_time_secs),
        i128::from(params.asert_half_life_secs),
        time_diff,
        height_diff,
    );
    Target(target).to_compact()
}

/// aserti3-2d: `anchor_target * 2^((time_diff - spacing * height_diff) / half_life)`,
/// with the fractional power approximated by the reference cubic polynomial
/// in 16.16 fixed point.
pub fn asert(
    anchor_target: U256,
    pow_limit: U256,
    spacing: i128,
    half_life: i128,
    time_diff: i128,
    height_diff: i128,
) -> U256 {
    if half_life <= 0 {
        return anchor_target.min(pow_limit);
    }
    // i128 holds these products for any u64 times and heights.
    let exponent = (time_diff - spacing * height_diff) * 65536 / half_life;
    // Arithmetic shift: rounds toward minus infinity, as the reference does.
    let mut shifts = exponent >> 16;
    let frac = (exponent & 0xffff) as u128;
    let factor = 65536
        + ((195_766_423_245_049u128 * frac
            + 971_821_376u128 * frac * frac
            + 5_127u128 * frac * frac * frac
            + (1u128 << 47))
            >> 48);
    let mut next: U512 = anchor_target.full_mul(U256::from(factor as u64));
    shifts -= 16;
    if shifts <= 0 {
        let right = (-shifts).min(512) as usize;
        next = if right >= 512 { U512::zero() } else { next >> right };
    } else {
        let left = shifts.min(512) as usize;
        // Anything shifted past 256 bits is far above every limit.
        if left >= 256 || next.bits() + left > 256 {
            return pow_limit;
        }
        next <<= left;
    }
    let next = U256::try_from(next).unwrap_or(U256::MAX);
    if next.is_zero() {
        U256::one()
    } else {
        next.min(pow_limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Network;
    use proptest::prelude::*;

    const LIMIT: U256 = U256::MAX;

    fn t(hex: &str) -> U256 {
        U256::from_str_radix(hex, 16).unwrap()
    }

    // Hand-computed vectors: spacing 60 s, half-life 14 400 s, anchor target
    // 0x0000000fffff << 200. The factor for a fraction f (of 65536) is
    // 65536 + (195766423245049 f + 971821376 f^2 + 5127 f^3 + 2^47) >> 48.
    #[test]
    fn on_schedule_keeps_the_anchor_target() {
        let anchor = t("fffff") << 200;
        // 10 blocks, exactly 600 s: exponent 0, factor 65536, shift -16.
        assert_eq!(asert(anchor, LIMIT, 60, 14_400, 600, 10), anchor);
    }

    #[test]
    fn one_half_life_late_doubles_and_early_halves() {
        let anchor = t("fffff") << 200;
        assert_eq!(asert(anchor, LIMIT, 60, 14_400, 600 + 14_400, 10), anchor << 1);
        assert_eq!(asert(anchor, LIMIT, 60, 14_400, 600 + 2 * 14_400, 10), anchor << 2);
        assert_eq!(asert(anchor, LIMIT, 60, 14_400, 600 - 14_400, 10), anchor >> 1);
    }

    #[test]
    fn half_a_half_life_late_multiplies_by_the_polynomial_root_two() {
        let anchor = U256::from(1u64) << 200;
        // exponent = 7200 * 65536 / 14400 = 32768; factor =
        // 65536 + (195766423245049*32768 + 971821376*32768^2 + 5127*32768^3 + 2^47) >> 48
        // = 65536 + 27138 = 92674 (sqrt(2) * 65536 = 92681.9).
        assert_eq!(asert(anchor, LIMIT, 60, 14_400, 7_200, 0), (anchor * U256::from(92_674u64)) >> 16);
        // Half a half-life early: exponent -32768, shifts -1, frac 32768: 92674 >> 17.
        assert_eq!(asert(anchor, LIMIT, 60, 14_400, -7_200, 0), (anchor * U256::from(92_674u64)) >> 17);
    }

    #[test]
    fn a_quarter_half_life_late() {
        let anchor = U256::from(1u64) << 100;
        // exponent 16384: 195766423245049*16384 = 3207437078446882816,
        // 971821376*16384^2 = 260871314217107456, 5127*16384^3 = 22548784462430208;
        // factor = 65536 + floor((3207437078446882816 + 260871314217107456
        //          + 22548784462430208 + 2^47) / 2^48) = 65536 + 12402 = 77938
        // (2^0.25 * 65536 = 77935.8; the polynomial is within 0.01 %).
        assert_eq!(asert(anchor, LIMIT, 60, 14_400, 3_600, 0), (anchor * U256::from(77_938u64)) >> 16);
    }

    #[test]
    fn clamps_at_the_limit_and_at_one() {
        let anchor = t("fffff") << 200;
        let limit = t("ffff") << 208;
        assert_eq!(asert(anchor, limit, 60, 14_400, 10 * 14_400, 0), limit);
        assert_eq!(asert(anchor, LIMIT, 60, 14_400, i128::from(u64::MAX), 0), LIMIT);
        assert_eq!(asert(anchor, LIMIT, 60, 14_400, -(i128::from(u64::MAX)), 0), U256::one());
        assert_eq!(asert(anchor, LIMIT, 60, 14_400, 0, 1_000_000_000), U256::one());
    }

    #[test]
    fn block_one_carries_the_initial_target_and_block_two_the_anchors() {
        let params = Params::get(Network::Main);
        let genesis = params.genesis.header;
        assert_eq!(next_target(params, &genesis, None), params.initial_target);
        let mut block1 = genesis;
        block1.height = 1;
        block1.target = params.initial_target;
        block1.time = genesis.time + 1_000_000; // long after genesis: no cheap blocks
        assert_eq!(next_target(params, &block1, Some(&block1)), params.initial_target);
    }

    proptest! {
        #[test]
        fn later_blocks_never_get_harder_targets(late in 0i128..1_000_000, more in 1i128..100_000) {
            let anchor = t("fffff") << 200;
            let a = asert(anchor, LIMIT, 60, 14_400, late, 100);
            let b = asert(anchor, LIMIT, 60, 14_400, late + more, 100);
            prop_assert!(b >= a);
        }
    }
}
