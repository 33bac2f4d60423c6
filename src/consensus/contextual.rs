//! Checks of a header against its parent: height, the difficulty schedule,
//! median time past and the future-time limit. The clock is an argument.

use super::difficulty::next_target;
use super::error::ValidationError;
use super::params::{Params, MEDIAN_TIME_SPAN};
use crate::types::BlockHeader;

/// What a header is checked against: its parent, the parent's median time
/// past, and block 1 (the difficulty anchor) once it exists.
#[derive(Debug, Clone, Copy)]
pub struct ParentContext<'a> {
    pub parent: &'a BlockHeader,
    pub median_time_past: u64,
    pub anchor: Option<&'a BlockHeader>,
}

/// The median of up to `MEDIAN_TIME_SPAN` timestamps (the parent and its ancestors).
pub fn median_time_past(times: &[u64]) -> u64 {
    let mut recent: Vec<u64> = times.iter().rev().take(MEDIAN_TIME_SPAN).copied().collect();
    recent.sort_unstable();
    recent.get(recent.len() / 2).copied().unwrap_or(0)
}

pub fn check_header_against_parent(
    params: &Params,
    header: &BlockHeader,
    context: &ParentContext<'_>,
    now: u64,
) -> Result<(), ValidationError> {
    let expected_height = context.parent.height.saturating_add(1);
    if header.height != expected_height {
        return Err(ValidationError::WrongHeight { expected: expected_height, found: header.height });
    }
    let expected_target = next_target(params, context.parent, context.anchor);
    if header.target != expected_target {
        return Err(ValidationError::WrongTarget { expected: expected_target, found: header.target });
    }
    if header.time <= context.median_time_past {
        return Err(ValidationError::TimeTooOld { time: header.time, median_time_past: context.median_time_past });
    }
    check_not_too_far_ahead(params, header, now)
}

/// Not more than the network's future limit ahead of the local clock. Such a
/// block may become valid later, so it is ignored, not punished.
pub fn check_not_too_far_ahead(params: &Params, header: &BlockHeader, now: u64) -> Result<(), ValidationError> {
    if header.time > now.saturating_add(params.future_limit_secs) {
        return Err(ValidationError::TimeTooFarAhead { time: header.time, now, limit_secs: params.future_limit_secs });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_the_last_eleven() {
        assert_eq!(median_time_past(&[]), 0);
        assert_eq!(median_time_past(&[5]), 5);
        assert_eq!(median_time_past(&[3, 1, 2]), 2);
        // Only the last 11 count: the leading 1000s are ignored.
        let mut times = vec![1000, 1000, 1000];
        times.extend(1..=11);
        assert_eq!(median_time_past(&times), 6);
    }
}
