//! What a validation failure means for the peer that sent the data: one
//! exhaustive `match`, so a new rule cannot be added without deciding how it
//! treats the peer.

use super::error::ValidationError;

/// The outcome reported to gossipsub, and the score the sender loses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Not forwarded, not punished: duplicates, data not yet useful, and every
    /// failure that depends on the receiver's own chain state.
    Ignore,
    /// Invalid whatever the chain: not forwarded, and the sender is penalised.
    Reject {
        penalty: u32,
    },
}

/// The penalty for data that is plainly invalid.
pub const PENALTY_INVALID: u32 = 100;
/// The penalty for data that is malformed (not even decodable).
pub const PENALTY_MALFORMED: u32 = 100;

pub fn verdict(error: &ValidationError) -> Verdict {
    use ValidationError as E;
    match error {
        E::Malformed(_) => Verdict::Reject { penalty: PENALTY_MALFORMED },

        // Invalid whatever the chain.
        E::WrongChainId { .. }
        | E::ZeroAmount
        | E::AmountOverflow
        | E::InvalidPublicKey(_)
        | E::BadSignature
        | E::MalformedSignature(_)
        | E::BlockTooLarge { .. }
        | E::UnknownVersion(_)
        | E::BadProofOfWork
        | E::InvalidTarget(_)
        | E::TargetAboveLimit(_)
        | E::BodyCommitmentMismatch
        | E::DuplicateTransaction(_)
        | E::UnexpectedAggregateSignature
        | E::MissingAggregateSignature
        | E::MalformedAggregateSignature(_)
        | E::BadAggregateSignature
        | E::CoinbaseHeightMismatch { .. }
        | E::WrongHeight { .. }
        | E::WrongTarget { .. }
        | E::TimeTooOld { .. }
        | E::InvalidAncestor
        | E::CoinbasePaysTooMuch { .. }
        | E::CoinbasePaysTooLittle { .. } => Verdict::Reject { penalty: PENALTY_INVALID },

        // A block's ledger rules are checked against its own ancestors, so
        // breaking them is invalid whatever our tip; for a lone transaction
        // they depend on our tip and are ignored. The caller tells which by
        // using `verdict_for_transaction` for transactions.
        E::WrongNonce { .. } | E::InsufficientBalance { .. } | E::SpendsImmatureReward { .. } | E::BalanceOverflow => {
            Verdict::Reject { penalty: PENALTY_INVALID }
        }

        // Not yet useful, or already known: never punished. A block on a
        // losing fork is what an honest peer on that fork sends.
        E::UnknownParent(_) | E::TimeTooFarAhead { .. } | E::DuplicateBlock | E::LessWorkThanBest => Verdict::Ignore,

        // Mempool policy: depends on our pool and tip.
        E::FeeBelowMinimum { .. }
        | E::NonceTooLow { .. }
        | E::NonceTooFarAhead { .. }
        | E::PendingSpendsExceedBalance { .. }
        | E::ReplacementFeeTooLow { .. }
        | E::AlreadyInMempool
        | E::MempoolFull => Verdict::Ignore,
    }
}

/// The verdict on a relayed transaction: ledger failures depend on the
/// receiver's tip (a stale nonce or a low balance is normal from an honest
/// peer on another tip), so they are ignored.
pub fn verdict_for_transaction(error: &ValidationError) -> Verdict {
    use ValidationError as E;
    match error {
        E::WrongNonce { .. } | E::InsufficientBalance { .. } | E::SpendsImmatureReward { .. } | E::BalanceOverflow => {
            Verdict::Ignore
        }
        other => verdict(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Amount, BlockHash};

    #[test]
    fn chain_state_failures_of_transactions_are_ignored_but_invalid_data_rejected() {
        let stale = ValidationError::NonceTooLow { expected: 3, found: 1 };
        assert_eq!(verdict_for_transaction(&stale), Verdict::Ignore);
        let low = ValidationError::InsufficientBalance { balance: Amount(1), needed: Amount(2) };
        assert_eq!(verdict_for_transaction(&low), Verdict::Ignore);
        assert_eq!(verdict(&low), Verdict::Reject { penalty: PENALTY_INVALID }, "in a block it is invalid");
        assert!(matches!(verdict_for_transaction(&ValidationError::BadSignature), Verdict::Reject { .. }));
        assert_eq!(verdict(&ValidationError::UnknownParent(BlockHash::default())), Verdict::Ignore);
        assert_eq!(verdict(&ValidationError::MempoolFull), Verdict::Ignore);
    }
}
