//! Consensus: network parameters, the rules every valid block and transaction
//! obeys, difficulty, and the one error enum that names every rule.
// A validator must never panic on hostile input.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod contextual;
pub mod difficulty;
pub mod error;
pub mod params;
pub mod rules;
pub mod verdict;

pub use contextual::{check_header_against_parent, median_time_past, ParentContext};
pub use difficulty::next_target;
pub use error::ValidationError;
pub use params::{subsidy, Params, BLOCK_VERSION};
