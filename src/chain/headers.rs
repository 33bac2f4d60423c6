//! Checking a peer's headers as a chain before any of its blocks is asked
//! for: each must link to the one before, carry the target ASERT gives it,
//! meet that target, and keep the timestamp rules. A peer that claims work
//! it does not have cannot make us download anything: made-up headers fail
//! here, and real ones cost their proof of work.

use super::{block_work, Chain, ChainStore};
use crate::consensus::params::MEDIAN_TIME_SPAN;
use crate::consensus::{self, median_time_past, rules, ParentContext, ValidationError};
use crate::crypto::Work;
use crate::types::{BlockHash, BlockHeader};

/// Where a header chain being checked stands: its last header, the work up
/// to it, and what the next header's rules depend on (the ASERT anchor and
/// the last timestamps). Constant size, so a peer's header chain can be
/// followed past what we store without holding its headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderCursor {
    tip: BlockHeader,
    work: Work,
    anchor: Option<BlockHeader>,
    /// Timestamps of `tip` and its ancestors, oldest first, at most `MEDIAN_TIME_SPAN`.
    times: Vec<u64>,
}

impl HeaderCursor {
    /// The last header checked.
    pub fn tip(&self) -> &BlockHeader {
        &self.tip
    }

    /// Cumulative work of the chain up to [`HeaderCursor::tip`].
    pub fn work(&self) -> Work {
        self.work
    }

    pub fn height(&self) -> u64 {
        self.tip.height
    }
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
    /// A cursor at the stored block `hash`, to check headers that follow it;
    /// `None` when the block is unknown or invalid.
    pub fn header_cursor(&self, hash: &BlockHash) -> Option<HeaderCursor> {
        let entry = self.index.get(hash).filter(|e| !e.invalid)?;
        Some(HeaderCursor {
            tip: entry.header,
            work: entry.cumulative_work,
            anchor: self.anchor_of(entry),
            times: self.ancestor_times(hash),
        })
    }

    /// Checks `headers` as the continuation of `cursor`'s chain and moves the
    /// cursor to the last one that passed. Returns how many passed: all of
    /// them, unless one was too far ahead of our clock (it may pass later and
    /// is not held against the peer). Costs one hash and one target
    /// computation per header and writes nothing: a reply of `MAX_HEADERS`
    /// headers is checked in about a millisecond.
    ///
    /// On an error the cursor stays at the last header that passed.
    pub fn extend_headers(
        &self,
        cursor: &mut HeaderCursor,
        headers: &[BlockHeader],
        now: u64,
    ) -> Result<usize, HeaderChainError> {
        for (at, header) in headers.iter().enumerate() {
            if header.prev != cursor.tip.hash() {
                return Err(HeaderChainError::NotLinked { at });
            }
            let invalid = |error| HeaderChainError::Invalid { at, error };
            if self.index.get(&header.hash()).is_some_and(|e| e.invalid) {
                return Err(invalid(ValidationError::InvalidAncestor));
            }
            rules::check_header(self.params, header).map_err(invalid)?;
            let context = ParentContext {
                parent: &cursor.tip,
                median_time_past: median_time_past(&cursor.times),
                anchor: cursor.anchor.as_ref(),
            };
            match consensus::check_header_against_parent(self.params, header, &context, now) {
                Ok(()) => {}
                Err(ValidationError::TimeTooFarAhead { .. }) => return Ok(at),
                Err(error) => return Err(invalid(error)),
            }
            cursor.work = cursor.work.checked_add(block_work(header)).unwrap_or(cursor.work);
            if header.height == 1 {
                cursor.anchor = Some(*header);
            }
            if cursor.times.len() == MEDIAN_TIME_SPAN {
                cursor.times.remove(0);
            }
            cursor.times.push(header.time);
            cursor.tip = *header;
        }
        Ok(headers.len())
    }

    /// Checks `headers` as one chain from the stored block the first one
    /// follows: a cursor at that block, extended by them.
    pub fn check_headers(&self, headers: &[BlockHeader], now: u64) -> Result<(HeaderCursor, usize), HeaderChainError> {
        let start = headers.first().map_or(self.tip(), |h| h.prev);
        let Some(mut cursor) = self.header_cursor(&start) else {
            return Err(match self.index.get(&start) {
                Some(_) => HeaderChainError::Invalid { at: 0, error: ValidationError::InvalidAncestor },
                None => HeaderChainError::NotLinked { at: 0 },
            });
        };
        let usable = self.extend_headers(&mut cursor, headers, now)?;
        Ok((cursor, usable))
    }
}
