//! Differential: the pairing cache and the batched verifiers against blst's
//! `aggregate_verify` (behind `Signature::aggregate_verify`) and `verify`, on
//! sets of (key, message, signature) with tampering. They must agree on
//! every input.

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};

use crate::crypto::batch::{verify_batch, verify_blocks_batch, AggregateSignedMessages, SignedMessage};
use crate::crypto::pairing_cache::PairingCache;
use crate::crypto::{PublicKey, SecretKey, Signature};

const KEYS: usize = 4;
const MESSAGES: usize = 4;
const MAX_CLAIMS: usize = 6;
const MAX_PAIRS: usize = 4;

struct Table {
    secrets: Vec<SecretKey>,
    keys: Vec<PublicKey>,
    messages: Vec<Vec<u8>>,
    /// `signatures[key][message]`.
    signatures: Vec<Vec<Signature>>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let secrets: Vec<SecretKey> = (0..KEYS as u8)
            .map(|i| SecretKey::from_ikm(&[i.wrapping_add(0x31); 32]).expect("32 bytes of keying material"))
            .collect();
        let keys = secrets.iter().map(SecretKey::public_key).collect();
        let messages: Vec<Vec<u8>> = (0..MESSAGES as u8).map(|i| vec![i; 1 + usize::from(i) * 20]).collect();
        let signatures = secrets.iter().map(|s| messages.iter().map(|m| s.sign(m)).collect()).collect();
        Table { secrets, keys, messages, signatures }
    })
}

/// A (key, message) pair: one of the table's messages or bytes from the input.
fn pair(u: &mut Unstructured<'_>) -> Result<(usize, Vec<u8>)> {
    let t = table();
    let key = usize::from(u.arbitrary::<u8>()?) % KEYS;
    let message = match usize::from(u.arbitrary::<u8>()?) % (MESSAGES + 1) {
        m if m < MESSAGES => t.messages[m].clone(),
        _ => {
            let len = u.int_in_range(0..=40)?;
            u.bytes(len)?.to_vec()
        }
    };
    Ok((key, message))
}

fn sign(key: usize, message: &[u8]) -> Signature {
    let t = table();
    match t.messages.iter().position(|m| m == message) {
        Some(m) => t.signatures[key][m],
        None => t.secrets[key].sign(message),
    }
}

/// A claim: pairs and a signature, the aggregate of the pairs' own
/// signatures unless tampered with.
fn claim(u: &mut Unstructured<'_>, previous: &[AggregateSignedMessages]) -> Result<AggregateSignedMessages> {
    let t = table();
    let count = u.int_in_range(0..=MAX_PAIRS)?;
    let mut pairs = Vec::with_capacity(count);
    for _ in 0..count {
        pairs.push(pair(u)?);
    }
    let mut signers: Vec<(usize, Vec<u8>)> = pairs.clone();
    match u.int_in_range(0..=5u8)? {
        // Honest.
        0 | 1 => {}
        // One signature over another message, or by another key.
        2 => {
            if let Some(first) = signers.first_mut() {
                *first = pair(u)?;
            }
        }
        // One signature left out, or one too many.
        3 => {
            signers.pop();
        }
        4 => signers.push(pair(u)?),
        // Another claim's signature.
        _ => {
            if let Some((_, signature)) = previous.last() {
                let pairs = pairs.iter().map(|(k, m)| (t.keys[*k], m.clone())).collect();
                return Ok((pairs, *signature));
            }
        }
    }
    let signatures: Vec<Signature> = signers.iter().map(|(k, m)| sign(*k, m)).collect();
    let signature = match Signature::aggregate(&signatures) {
        Ok(signature) => signature,
        // Nothing signed: any signature, which must then fail.
        Err(_) => t.signatures[0][0],
    };
    Ok((pairs.into_iter().map(|(k, m)| (t.keys[k], m)).collect(), signature))
}

pub fn signatures(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let t = table();
    let cache = PairingCache::new(u.int_in_range(0..=8)?);
    // Some pairings cached ahead, as the mempool leaves them.
    for _ in 0..u.int_in_range(0..=4)? {
        let (key, message) = pair(u)?;
        if u.arbitrary()? {
            cache.insert_verified(&t.keys[key], &message);
        } else {
            let signature = sign(key, &message);
            assert!(cache.verify_and_cache(&t.keys[key], &message, &signature), "an honest signature fails");
        }
    }
    let mut claims: Vec<AggregateSignedMessages> = Vec::new();
    for _ in 0..u.int_in_range(1..=MAX_CLAIMS)? {
        let c = claim(u, &claims)?;
        claims.push(c);
    }
    let expected: Vec<bool> = claims.iter().map(|(pairs, signature)| signature.aggregate_verify(pairs)).collect();
    for ((pairs, signature), blst) in claims.iter().zip(&expected) {
        assert_eq!(
            cache.aggregate_verify(pairs, signature),
            *blst,
            "the pairing cache disagrees with blst on {pairs:?}"
        );
    }
    let first_bad = expected.iter().position(|ok| !ok);
    assert_eq!(
        verify_blocks_batch(&claims).err(),
        first_bad,
        "the blocks batch disagrees with blst (verdicts {expected:?})"
    );
    // Claims of one pair, as transactions are: the batch and the cache's own check against `verify`.
    let singles: Vec<SignedMessage> = claims
        .iter()
        .filter_map(|(pairs, signature)| match pairs.as_slice() {
            [(key, message)] => Some((*key, message.clone(), *signature)),
            _ => None,
        })
        .collect();
    let exact: Vec<bool> = singles.iter().map(|(k, m, s)| s.verify(k, m)).collect();
    let with_cache = u.arbitrary::<bool>()?;
    let batched = verify_batch(&singles, if with_cache { Some(&cache) } else { None });
    assert_eq!(batched, exact, "the transaction batch disagrees with verify");
    for ((key, message, signature), exact) in singles.iter().zip(&exact) {
        assert_eq!(cache.verify_and_cache(key, message, signature), *exact, "verify_and_cache disagrees with verify");
        let blst = signature.aggregate_verify(&[(*key, message.as_slice())]);
        assert_eq!(blst, *exact, "aggregate_verify of one pair disagrees with verify");
    }
    Ok(())
}
