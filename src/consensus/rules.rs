//! Context-free checks: what holds for a transaction or block whatever the chain.
//! Each rule is a small named function; the cheap ones run before the
//! expensive signature check.

use std::collections::HashSet;

use super::error::ValidationError;
use super::params::{Params, BLOCK_VERSION};
use crate::crypto::pairing_cache::PairingCache;
use crate::crypto::{PublicKey, Signature, Target};
use crate::types::{encode, Block, BlockHeader, SignedTransaction, Transaction, MAX_BLOCK_BYTES};

/// Chain id, a non-zero amount, and an amount plus fee that does not overflow.
pub fn check_transaction_fields(params: &Params, tx: &Transaction) -> Result<(), ValidationError> {
    if tx.chain_id != params.chain_id {
        return Err(ValidationError::WrongChainId { expected: params.chain_id.0, found: tx.chain_id.0 });
    }
    if tx.amount.0 == 0 {
        return Err(ValidationError::ZeroAmount);
    }
    tx.total_spend().ok_or(ValidationError::AmountOverflow)?;
    Ok(())
}

/// The sender's key is a valid point.
pub fn sender_public_key(tx: &Transaction) -> Result<PublicKey, ValidationError> {
    PublicKey::from_bytes(&tx.sender).map_err(|e| ValidationError::InvalidPublicKey(e.to_string()))
}

/// A transaction's own signature (gossip and mempool); the costly check.
pub fn check_transaction_signature(stx: &SignedTransaction) -> Result<(), ValidationError> {
    check_transaction_signature_with(stx, None)
}

/// The same check; with a cache, the pairing it computes is kept so the
/// block that later carries the transaction verifies without it.
pub fn check_transaction_signature_with(
    stx: &SignedTransaction,
    cache: Option<&PairingCache>,
) -> Result<(), ValidationError> {
    let signature = transaction_signature(stx)?;
    verify_transaction_signature(stx, &signature, cache)
}

/// [`check_transaction_signature_with`] for a signature already parsed from `stx`.
pub fn verify_transaction_signature(
    stx: &SignedTransaction,
    signature: &Signature,
    cache: Option<&PairingCache>,
) -> Result<(), ValidationError> {
    let public_key = sender_public_key(&stx.tx)?;
    let msg = stx.tx.signing_message();
    let valid = match cache {
        Some(cache) => cache.verify_and_cache(&public_key, &msg, signature),
        None => signature.verify(&public_key, &msg),
    };
    if valid {
        Ok(())
    } else {
        Err(ValidationError::BadSignature)
    }
}

/// The group-checked signature of a signed transaction.
pub fn transaction_signature(stx: &SignedTransaction) -> Result<Signature, ValidationError> {
    Signature::from_bytes(&stx.signature).map_err(|e| ValidationError::MalformedSignature(e.to_string()))
}

/// Every context-free rule of a signed transaction, cheap ones first.
pub fn check_signed_transaction(params: &Params, stx: &SignedTransaction) -> Result<(), ValidationError> {
    check_transaction_fields(params, &stx.tx)?;
    check_transaction_signature(stx)
}

/// Version, a valid target no easier than the limit, and proof of work.
pub fn check_header(params: &Params, header: &BlockHeader) -> Result<(), ValidationError> {
    if header.version != BLOCK_VERSION {
        return Err(ValidationError::UnknownVersion(header.version));
    }
    let target = Target::from_compact(header.target).map_err(ValidationError::InvalidTarget)?;
    let limit = Target::from_compact(params.pow_limit).map_err(ValidationError::InvalidTarget)?;
    if target > limit {
        return Err(ValidationError::TargetAboveLimit(header.target));
    }
    if !target.is_met_by(&header.hash()) {
        return Err(ValidationError::BadProofOfWork);
    }
    Ok(())
}

pub fn block_is_within_size_limit(block: &Block) -> Result<(), ValidationError> {
    let size = encode(block).len();
    if size > MAX_BLOCK_BYTES {
        return Err(ValidationError::BlockTooLarge { size, limit: MAX_BLOCK_BYTES });
    }
    Ok(())
}

pub fn body_matches_commitment(block: &Block) -> Result<(), ValidationError> {
    if block.body.commitment() != block.header.body_commitment {
        return Err(ValidationError::BodyCommitmentMismatch);
    }
    Ok(())
}

pub fn coinbase_carries_the_height(block: &Block) -> Result<(), ValidationError> {
    if block.body.coinbase.height != block.header.height {
        return Err(ValidationError::CoinbaseHeightMismatch {
            expected: block.header.height,
            found: block.body.coinbase.height,
        });
    }
    Ok(())
}

pub fn no_duplicate_transactions(block: &Block) -> Result<(), ValidationError> {
    let mut seen = HashSet::with_capacity(block.body.transactions.len());
    for tx in &block.body.transactions {
        let txid = tx.txid();
        if !seen.insert(txid) {
            return Err(ValidationError::DuplicateTransaction(txid));
        }
    }
    Ok(())
}

/// The aggregate signature is present exactly when there are payments.
pub fn signature_present_iff_payments(block: &Block) -> Result<(), ValidationError> {
    match (block.body.transactions.is_empty(), block.body.aggregate_signature.is_some()) {
        (true, true) => Err(ValidationError::UnexpectedAggregateSignature),
        (false, false) => Err(ValidationError::MissingAggregateSignature),
        _ => Ok(()),
    }
}

/// What a block's aggregate signature must verify over: the signature and
/// the (sender key, signing message) of every payment. `None` for a block
/// without payments (and so without a signature).
#[allow(clippy::type_complexity)]
pub fn aggregate_signature_claim(
    block: &Block,
) -> Result<Option<(Vec<(PublicKey, Vec<u8>)>, Signature)>, ValidationError> {
    let Some(bytes) = &block.body.aggregate_signature else {
        return signature_present_iff_payments(block).map(|()| None);
    };
    let signature =
        Signature::from_bytes(bytes).map_err(|e| ValidationError::MalformedAggregateSignature(e.to_string()))?;
    // Keys are validated once and remembered (`PublicKey::from_bytes`): a
    // sender with many payments costs one validation.
    let pairs = block
        .body
        .transactions
        .iter()
        .map(|tx| Ok((sender_public_key(tx)?, tx.signing_message().to_vec())))
        .collect::<Result<Vec<_>, ValidationError>>()?;
    Ok(Some((pairs, signature)))
}

/// `AggregateVerify` over (sender key, signing message) of every payment.
pub fn aggregate_signature_verifies(block: &Block) -> Result<(), ValidationError> {
    aggregate_signature_verifies_with(block, None)
}

/// The same check; with a cache, the pairings of transactions admitted to the
/// mempool are reused and only the rest are computed.
pub fn aggregate_signature_verifies_with(block: &Block, cache: Option<&PairingCache>) -> Result<(), ValidationError> {
    let Some((pairs, signature)) = aggregate_signature_claim(block)? else { return Ok(()) };
    let valid = match cache {
        Some(cache) => cache.aggregate_verify(&pairs, &signature),
        None => signature.aggregate_verify(&pairs),
    };
    if valid {
        Ok(())
    } else {
        Err(ValidationError::BadAggregateSignature)
    }
}

/// Every cheap context-free rule of a block: all but the aggregate signature.
pub fn check_block_structure(params: &Params, block: &Block) -> Result<(), ValidationError> {
    block_is_within_size_limit(block)?;
    check_header(params, &block.header)?;
    body_matches_commitment(block)?;
    coinbase_carries_the_height(block)?;
    signature_present_iff_payments(block)?;
    for tx in &block.body.transactions {
        check_transaction_fields(params, tx)?;
    }
    no_duplicate_transactions(block)
}

/// Every context-free rule of a block, the aggregate signature last.
pub fn check_block(params: &Params, block: &Block) -> Result<(), ValidationError> {
    check_block_structure(params, block)?;
    aggregate_signature_verifies(block)
}
