//! BLS12-381 signatures (blst `min_pk`) under the IETF message-augmentation
//! ciphersuite: the signer's compressed public key is prepended to every
//! message, which makes aggregating signatures of distinct signers over
//! possibly equal messages safe without proofs of possession.

use std::fmt;
use std::sync::OnceLock;

use blst::min_pk;
use blst::BLST_ERROR;

use super::fifo::FifoMap;
use crate::types::{PublicKeyBytes, SignatureBytes};

/// The ciphersuite's domain separation tag.
pub const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_AUG_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("invalid public key: {0}")]
    InvalidPublicKey(&'static str),
    #[error("invalid signature: {0}")]
    InvalidSignature(&'static str),
    #[error("invalid secret key")]
    InvalidSecretKey,
    #[error("the operating system's random source failed: {0}")]
    Randomness(String),
    #[error("nothing to aggregate")]
    EmptyAggregate,
}

fn describe(err: BLST_ERROR) -> &'static str {
    match err {
        BLST_ERROR::BLST_SUCCESS => "success",
        BLST_ERROR::BLST_BAD_ENCODING => "bad encoding",
        BLST_ERROR::BLST_POINT_NOT_ON_CURVE => "point not on the curve",
        BLST_ERROR::BLST_POINT_NOT_IN_GROUP => "point not in the prime-order subgroup",
        BLST_ERROR::BLST_AGGR_TYPE_MISMATCH => "aggregate type mismatch",
        BLST_ERROR::BLST_VERIFY_FAIL => "verification failed",
        BLST_ERROR::BLST_PK_IS_INFINITY => "the point at infinity",
        BLST_ERROR::BLST_BAD_SCALAR => "bad scalar",
    }
}

/// A secret key. Its bytes are never printed.
#[derive(Clone)]
pub struct SecretKey(min_pk::SecretKey);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A new key from the IETF KeyGen over 32 bytes of operating-system randomness.
    pub fn generate() -> Result<SecretKey, CryptoError> {
        let mut ikm = [0u8; 32];
        getrandom::getrandom(&mut ikm).map_err(|e| CryptoError::Randomness(e.to_string()))?;
        let key = SecretKey::from_ikm(&ikm);
        ikm.fill(0);
        key
    }

    /// KeyGen from input keying material of at least 32 bytes.
    pub fn from_ikm(ikm: &[u8]) -> Result<SecretKey, CryptoError> {
        min_pk::SecretKey::key_gen(ikm, &[]).map(SecretKey).map_err(|_| CryptoError::InvalidSecretKey)
    }

    /// EIP-2333's `derive_master_SK` over a seed of at least 32 bytes (a
    /// BIP39 seed is 64).
    pub fn derive_master_eip2333(seed: &[u8]) -> Result<SecretKey, CryptoError> {
        min_pk::SecretKey::derive_master_eip2333(seed).map(SecretKey).map_err(|_| CryptoError::InvalidSecretKey)
    }

    /// EIP-2333's `derive_child_SK`: every EIP-2333 child is hardened, so a
    /// public key never reveals its siblings.
    pub fn derive_child_eip2333(&self, index: u32) -> SecretKey {
        SecretKey(self.0.derive_child_eip2333(index))
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> Result<SecretKey, CryptoError> {
        min_pk::SecretKey::from_bytes(bytes).map(SecretKey).map_err(|_| CryptoError::InvalidSecretKey)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public_key(&self) -> PublicKey {
        let point = self.0.sk_to_pk();
        PublicKey { bytes: PublicKeyBytes(point.compress()), point }
    }

    /// Signs `msg` under the augmentation scheme: over `public_key || msg`.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        let pk = self.0.sk_to_pk().compress();
        Signature(self.0.sign(msg, DST, &pk))
    }
}

/// A validated public key: on the curve, in the subgroup, not the identity.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PublicKey {
    point: min_pk::PublicKey,
    bytes: PublicKeyBytes,
}

/// Validated keys remembered at most: senders recur from block to block, and
/// validating a key (decompression and subgroup check) costs about as much
/// as a Miller loop. About 200 bytes each with the map's overhead: 13 MB full.
const VALIDATED_KEYS: usize = 1 << 16;

/// The keys validated lately, shared by the whole process: mempool admission,
/// block validation and sync all parse the same senders' keys again and again.
/// Only keys that passed validation go in, so it can never make a bad key pass.
fn validated_keys() -> &'static FifoMap<PublicKeyBytes, PublicKey> {
    static KEYS: OnceLock<FifoMap<PublicKeyBytes, PublicKey>> = OnceLock::new();
    KEYS.get_or_init(|| FifoMap::new(VALIDATED_KEYS))
}

impl PublicKey {
    /// Parses and validates a compressed key (or finds it validated lately).
    pub fn from_bytes(bytes: &PublicKeyBytes) -> Result<PublicKey, CryptoError> {
        if let Some(key) = validated_keys().get(bytes) {
            return Ok(key);
        }
        let key = PublicKey::validate(bytes)?;
        validated_keys().insert_all([(*bytes, key)]);
        Ok(key)
    }

    fn validate(bytes: &PublicKeyBytes) -> Result<PublicKey, CryptoError> {
        let point =
            min_pk::PublicKey::key_validate(&bytes.0).map_err(|e| CryptoError::InvalidPublicKey(describe(e)))?;
        // Only the compressed form is accepted, so one key has one encoding.
        if point.compress() != bytes.0 {
            return Err(CryptoError::InvalidPublicKey("not in canonical compressed form"));
        }
        Ok(PublicKey { point, bytes: *bytes })
    }

    pub fn to_bytes(&self) -> PublicKeyBytes {
        self.bytes
    }

    /// The validated point, for the pairing arithmetic of this module's siblings.
    pub(super) fn point(&self) -> blst::blst_p1_affine {
        blst::blst_p1_affine::from(self.point)
    }
}

/// A group-checked signature (or aggregate of signatures), never the identity.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Signature(min_pk::Signature);

impl Signature {
    pub fn from_bytes(bytes: &SignatureBytes) -> Result<Signature, CryptoError> {
        let sig =
            min_pk::Signature::sig_validate(&bytes.0, true).map_err(|e| CryptoError::InvalidSignature(describe(e)))?;
        if sig.compress() != bytes.0 {
            return Err(CryptoError::InvalidSignature("not in canonical compressed form"));
        }
        Ok(Signature(sig))
    }

    pub fn to_bytes(&self) -> SignatureBytes {
        SignatureBytes(self.0.compress())
    }

    /// The group-checked point, for the pairing arithmetic of this module's siblings.
    pub(super) fn point(&self) -> blst::blst_p2_affine {
        blst::blst_p2_affine::from(self.0)
    }

    /// Verifies one signature by `public_key` over `msg`.
    pub fn verify(&self, public_key: &PublicKey, msg: &[u8]) -> bool {
        // Both points were checked when they were built from bytes.
        self.0.verify(false, msg, DST, &public_key.bytes.0, &public_key.point, false) == BLST_ERROR::BLST_SUCCESS
    }

    /// Aggregates signatures (already group-checked) into one.
    pub fn aggregate(signatures: &[Signature]) -> Result<Signature, CryptoError> {
        if signatures.is_empty() {
            return Err(CryptoError::EmptyAggregate);
        }
        let refs: Vec<&min_pk::Signature> = signatures.iter().map(|s| &s.0).collect();
        min_pk::AggregateSignature::aggregate(&refs, false)
            .map(|agg| Signature(agg.to_signature()))
            .map_err(|e| CryptoError::InvalidSignature(describe(e)))
    }

    /// `AggregateVerify` of this aggregate over (public key, message) pairs.
    /// blst's `aggregate_verify` takes no augmentation argument, so each
    /// message handed to it is the compressed public key followed by the message.
    pub fn aggregate_verify<M: AsRef<[u8]>>(&self, pairs: &[(PublicKey, M)]) -> bool {
        if pairs.is_empty() {
            return false;
        }
        let augmented: Vec<Vec<u8>> = pairs.iter().map(|(pk, msg)| augment(&pk.bytes, msg.as_ref())).collect();
        let msgs: Vec<&[u8]> = augmented.iter().map(Vec::as_slice).collect();
        let pks: Vec<&min_pk::PublicKey> = pairs.iter().map(|(pk, _)| &pk.point).collect();
        self.0.aggregate_verify(false, &msgs, DST, &pks, false) == BLST_ERROR::BLST_SUCCESS
    }
}

/// The augmented message: `public_key || msg`.
pub fn augment(public_key: &PublicKeyBytes, msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + msg.len());
    out.extend_from_slice(&public_key.0);
    out.extend_from_slice(msg);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vectors {
        cases: Vec<Case>,
        aggregate: Aggregate,
        aggregate_missing_one: MissingOne,
    }
    #[derive(serde::Deserialize)]
    struct Case {
        ikm_hex: String,
        sk_hex: String,
        pk_hex: String,
        msg_hex: String,
        sig_hex: String,
    }
    #[derive(serde::Deserialize)]
    struct Aggregate {
        of_cases: Vec<usize>,
        sig_hex: String,
        valid: bool,
    }
    #[derive(serde::Deserialize)]
    struct MissingOne {
        of_cases: Vec<usize>,
        sig_hex: String,
        valid_for_all_three: bool,
    }

    // The vectors are also copied into the crate so it tests on its own.
    const VECTORS: &str = include_str!("../../tests/vectors/bls-aug.json");

    fn arr<const N: usize>(h: &str) -> [u8; N] {
        hex::decode(h).unwrap().try_into().unwrap()
    }

    #[test]
    fn known_answer_vectors_from_an_independent_implementation() {
        let v: Vectors = serde_json::from_str(VECTORS).unwrap();
        let mut pairs = Vec::new();
        for case in &v.cases {
            let sk = SecretKey::from_bytes(&arr(&case.sk_hex)).unwrap();
            // The vectors' KeyGen is the draft's v3 form.
            let ikm = hex::decode(&case.ikm_hex).unwrap();
            assert_eq!(min_pk::SecretKey::key_gen_v3(&ikm, &[]).unwrap().to_bytes(), sk.to_bytes());
            let pk = sk.public_key();
            assert_eq!(pk.to_bytes().to_hex(), case.pk_hex);
            let msg = hex::decode(&case.msg_hex).unwrap();
            let sig = sk.sign(&msg);
            assert_eq!(sig.to_bytes().to_hex(), case.sig_hex);
            let parsed = Signature::from_bytes(&SignatureBytes(arr(&case.sig_hex))).unwrap();
            assert!(parsed.verify(&PublicKey::from_bytes(&PublicKeyBytes(arr(&case.pk_hex))).unwrap(), &msg));
            assert!(!parsed.verify(&pk, b"another message"));
            pairs.push((pk, msg, sig));
        }
        let chosen: Vec<_> = v.aggregate.of_cases.iter().map(|&i| pairs[i].clone()).collect();
        let agg = Signature::aggregate(&chosen.iter().map(|p| p.2).collect::<Vec<_>>()).unwrap();
        assert_eq!(agg.to_bytes().to_hex(), v.aggregate.sig_hex);
        let msgs: Vec<(PublicKey, Vec<u8>)> = chosen.iter().map(|p| (p.0, p.1.clone())).collect();
        assert_eq!(agg.aggregate_verify(&msgs), v.aggregate.valid);

        let missing = Signature::from_bytes(&SignatureBytes(arr(&v.aggregate_missing_one.sig_hex))).unwrap();
        let of: Vec<(PublicKey, Vec<u8>)> =
            v.aggregate_missing_one.of_cases.iter().map(|&i| (pairs[i].0, pairs[i].1.clone())).collect();
        assert!(missing.aggregate_verify(&of));
        assert_eq!(missing.aggregate_verify(&msgs), v.aggregate_missing_one.valid_for_all_three);
    }

    #[test]
    fn rejects_the_identity_and_malformed_points() {
        let mut infinity_pk = [0u8; 48];
        infinity_pk[0] = 0xc0;
        assert!(PublicKey::from_bytes(&PublicKeyBytes(infinity_pk)).is_err());
        let mut infinity_sig = [0u8; 96];
        infinity_sig[0] = 0xc0;
        assert!(Signature::from_bytes(&SignatureBytes(infinity_sig)).is_err());
        assert!(PublicKey::from_bytes(&PublicKeyBytes([0xab; 48])).is_err());
        assert!(Signature::from_bytes(&SignatureBytes([0xab; 96])).is_err());
    }

    #[test]
    fn remembered_keys_are_the_validated_ones_and_bad_keys_are_never_remembered() {
        let key = SecretKey::from_ikm(&[7; 32]).unwrap().public_key();
        let first = PublicKey::from_bytes(&key.to_bytes()).unwrap();
        assert!(validated_keys().get(&key.to_bytes()).is_some());
        assert_eq!(PublicKey::from_bytes(&key.to_bytes()).unwrap(), first);
        assert_eq!(first, key);
        // A flipped bit of a valid key is (almost surely) off the curve: refused every time.
        let mut bad = key.to_bytes();
        bad.0[47] ^= 1;
        for _ in 0..2 {
            if PublicKey::validate(&bad).is_err() {
                assert!(PublicKey::from_bytes(&bad).is_err());
                assert!(validated_keys().get(&bad).is_none());
            }
        }
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        let sk = SecretKey::generate().unwrap();
        let other = SecretKey::generate().unwrap();
        assert_ne!(sk.to_bytes(), other.to_bytes());
        let sig = sk.sign(b"m");
        assert!(sig.verify(&sk.public_key(), b"m"));
        assert!(!sig.verify(&other.public_key(), b"m"));
        assert_eq!(format!("{sk:?}"), "SecretKey(..)");
    }

    #[test]
    fn aggregation_over_equal_messages_of_distinct_signers() {
        let keys: Vec<SecretKey> = (0..3).map(|i| SecretKey::from_ikm(&[i; 32]).unwrap()).collect();
        let sigs: Vec<Signature> = keys.iter().map(|k| k.sign(b"same")).collect();
        let agg = Signature::aggregate(&sigs).unwrap();
        let pairs: Vec<(PublicKey, &[u8])> = keys.iter().map(|k| (k.public_key(), &b"same"[..])).collect();
        assert!(agg.aggregate_verify(&pairs));
        assert!(!agg.aggregate_verify(&pairs[..2]));
        assert!(!agg.aggregate_verify::<&[u8]>(&[]));
    }
}
