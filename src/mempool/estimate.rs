//! `estimatefee`: the fee that gets a payment confirmed within N blocks,
//! from the mempool's backlog and the fees recent blocks confirmed.
//!
//! Pure: the caller reads the blocks and the pool and passes what is needed.

use crate::types::Amount;

/// The most payments a block template takes (the miner's limit; the byte
/// limit of a block allows about as many).
pub const PAYMENTS_PER_BLOCK: usize = 15_000;

/// What an estimate came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// The ready backlog fills the next N blocks: outbid its marginal payment.
    Mempool,
    /// What recent blocks confirmed: the median of their cheapest payments.
    Blocks,
    /// No data: the relay minimum (or the full pool's entry fee).
    Minimum,
}

impl Basis {
    pub fn name(self) -> &'static str {
        match self {
            Basis::Mempool => "mempool",
            Basis::Blocks => "blocks",
            Basis::Minimum => "minimum",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Estimate {
    pub fee: Amount,
    pub basis: Basis,
}

/// How many recent blocks an estimate for `blocks` looks at.
pub fn window(blocks: u32) -> u64 {
    u64::from(blocks).saturating_mul(2).max(6)
}

/// The estimate for confirmation within `blocks` blocks.
///
/// - `ready_fees`: the pool's minable payments' fees, highest first;
/// - `per_block`: how many payments a block takes;
/// - `recent_lowest`: for each of the last [`window`] blocks, the lowest
///   fee among its payments (`None` for a block without any);
/// - `floor`: the lowest fee that gets into the pool now.
pub fn estimate_fee(
    blocks: u32,
    ready_fees: &[Amount],
    per_block: usize,
    recent_lowest: &[Option<Amount>],
    floor: Amount,
) -> Estimate {
    let capacity = per_block.saturating_mul(blocks.max(1) as usize);
    // A payment is mined within N blocks if fewer than N blocks' worth pay more.
    if let Some(marginal) = capacity.checked_sub(1).and_then(|i| ready_fees.get(i)) {
        return Estimate { fee: Amount(marginal.0.saturating_add(1)).max(floor), basis: Basis::Mempool };
    }
    let mut lows: Vec<Amount> = recent_lowest.iter().flatten().copied().collect();
    lows.sort_unstable();
    if let Some(median) = lows.get(lows.len() / 2) {
        return Estimate { fee: (*median).max(floor), basis: Basis::Blocks };
    }
    Estimate { fee: floor, basis: Basis::Minimum }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOOR: Amount = Amount(1_000);

    #[test]
    fn no_data_gives_the_minimum() {
        let e = estimate_fee(6, &[], PAYMENTS_PER_BLOCK, &[None; 12], FLOOR);
        assert_eq!(e, Estimate { fee: FLOOR, basis: Basis::Minimum });
    }

    #[test]
    fn recent_blocks_give_the_median_of_their_cheapest_payments() {
        let recent = [Some(Amount(50_000)), None, Some(Amount(20_000)), Some(Amount(90_000))];
        let e = estimate_fee(2, &[], PAYMENTS_PER_BLOCK, &recent, FLOOR);
        assert_eq!(e, Estimate { fee: Amount(50_000), basis: Basis::Blocks });
        // Never below what the pool takes now.
        let e = estimate_fee(2, &[], PAYMENTS_PER_BLOCK, &recent, Amount(70_000));
        assert_eq!(e.fee, Amount(70_000));
    }

    #[test]
    fn a_backlog_of_n_blocks_is_outbid() {
        let backlog: Vec<Amount> = (0..10).rev().map(|i| Amount(10_000 + i * 1_000)).collect();
        // 3 payments a block: within 2 blocks means beating the 6th highest.
        let e = estimate_fee(2, &backlog, 3, &[Some(Amount(1_000))], FLOOR);
        assert_eq!(e, Estimate { fee: Amount(backlog[5].0 + 1), basis: Basis::Mempool });
        // Within 4 blocks the backlog clears anyway: back to the blocks.
        assert_eq!(estimate_fee(4, &backlog, 3, &[Some(Amount(2_000))], FLOOR).basis, Basis::Blocks);
        assert!(estimate_fee(1, &backlog, 3, &[], FLOOR).fee > estimate_fee(3, &backlog, 3, &[], FLOOR).fee);
    }

    #[test]
    fn zero_blocks_reads_as_one() {
        let backlog = [Amount(5_000), Amount(4_000)];
        assert_eq!(estimate_fee(0, &backlog, 1, &[], FLOOR).fee, Amount(5_001));
    }
}
