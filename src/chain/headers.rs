//! Checking a peer's headers as a chain before any of its blocks is asked
//! for: each must link to the one before, carry the target ASERT gives it,
//! meet that target, and keep the timestamp rules. A peer that claims work
//! it does not have cannot make us download anything: made-up headers fail
//! here, and real ones cost their proof of work.

use super::{block_work, Chain, ChainStore};
use crate::consensus::params::MEDIAN_TIME_SPAN;
use crate::consensus::{self, median_time_past, rules, ParentContext, ValidationError};
use crate::crypto::Work;
use crate::types::BlockHeader;

/// Headers that hold together as a chain from a block we know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedHeaders {
    /// Cumulative work of the chain at the last header.
    pub work: Work,
    /// How many of the headers passed (all of them unless one was too far
    /// ahead of our clock, which may pass later and is not held against the peer).
    pub usable: usize,
}

/// Why a run of headers is not a chain we would follow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderChainError {
    #[error("header {at} does not follow the one before it (or a block we know)")]
    NotLinked { at: usize },
    #[error("header {at} is invalid: {error}")]
    Invalid { at: usize, error: ValidationError },
}

impl<S: ChainStore> Chain<S> {
    /// Checks `headers` as one chain whose first header's parent we know.
    /// Costs one hash and one target computation per header, nothing
    /// written: a reply of `MAX_HEADERS` headers is checked in about a millisecond.
    pub fn check_headers(&self, headers: &[BlockHeader], now: u64) -> Result<CheckedHeaders, HeaderChainError> {
        let Some(first) = headers.first() else {
            return Ok(CheckedHeaders { work: self.tip_work(), usable: 0 });
        };
        let Some(parent_entry) = self.index.get(&first.prev) else {
            return Err(HeaderChainError::NotLinked { at: 0 });
        };
        if parent_entry.invalid {
            return Err(HeaderChainError::Invalid { at: 0, error: ValidationError::InvalidAncestor });
        }
        let mut work = parent_entry.cumulative_work;
        let mut parent = parent_entry.header;
        let mut anchor = self.anchor_of(parent_entry);
        let mut times = self.ancestor_times(&first.prev);
        for (at, header) in headers.iter().enumerate() {
            if header.prev != parent.hash() {
                return Err(HeaderChainError::NotLinked { at });
            }
            if self.index.get(&header.hash()).is_some_and(|e| e.invalid) {
                return Err(HeaderChainError::Invalid { at, error: ValidationError::InvalidAncestor });
            }
            let invalid = |error| HeaderChainError::Invalid { at, error };
            rules::check_header(self.params, header).map_err(invalid)?;
            let context =
                ParentContext { parent: &parent, median_time_past: median_time_past(&times), anchor: anchor.as_ref() };
            match consensus::check_header_against_parent(self.params, header, &context, now) {
                Ok(()) => {}
                Err(ValidationError::TimeTooFarAhead { .. }) => return Ok(CheckedHeaders { work, usable: at }),
                Err(error) => return Err(invalid(error)),
            }
            work = work.checked_add(block_work(header)).unwrap_or(work);
            if header.height == 1 {
                anchor = Some(*header);
            }
            if times.len() == MEDIAN_TIME_SPAN {
                times.remove(0);
            }
            times.push(header.time);
            parent = *header;
        }
        Ok(CheckedHeaders { work, usable: headers.len() })
    }
}
