//! Secrets sealed under a passphrase: Argon2id for the key, XChaCha20-Poly1305
//! for the secret, with the wallet's public fields as associated data.

use super::WalletError;

/// Argon2id cost parameters, stored in the file so it opens with what it was made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfParams {
    /// The release defaults: 64 MiB, 3 passes (OWASP's argon2id guidance is at least 19 MiB, 2 passes).
    pub const DEFAULT: KdfParams = KdfParams { memory_kib: 64 * 1024, iterations: 3, parallelism: 1 };
    /// Cheap parameters for tests only.
    pub const LIGHT_FOR_TESTS: KdfParams = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    /// Upper bounds accepted from a file, so a crafted file cannot make us allocate without bound.
    const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
    const MAX_ITERATIONS: u32 = 100;
}

/// A sealed secret as the file stores it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sealed {
    kdf: String,
    kdf_params: KdfParams,
    salt: String,
    cipher: String,
    nonce: String,
    ciphertext: String,
}

const KDF_NAME: &str = "argon2id";
const CIPHER_NAME: &str = "xchacha20poly1305";

/// The key a passphrase gives, with the salt and costs it was made with:
/// sealing again (a new address) needs no second Argon2 run.
pub(super) struct SealingKey {
    params: KdfParams,
    salt: [u8; 16],
    key: [u8; 32],
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

impl Drop for SealingKey {
    fn drop(&mut self) {
        self.key.fill(0);
    }
}

fn derive_key(passphrase: &[u8], salt: &[u8], params: KdfParams) -> Result<[u8; 32], WalletError> {
    if params.memory_kib > KdfParams::MAX_MEMORY_KIB || params.iterations > KdfParams::MAX_ITERATIONS {
        return Err(WalletError::Kdf("the file asks for unreasonable key-derivation costs".into()));
    }
    let argon_params = argon2::Params::new(params.memory_kib, params.iterations, params.parallelism, Some(32))
        .map_err(|e| WalletError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, argon_params);
    let mut key = [0u8; 32];
    argon.hash_password_into(passphrase, salt, &mut key).map_err(|e| WalletError::Kdf(e.to_string()))?;
    Ok(key)
}

impl SealingKey {
    /// A key for a new file: a fresh salt.
    pub(super) fn new(passphrase: &[u8], params: KdfParams) -> Result<SealingKey, WalletError> {
        let mut salt = [0u8; 16];
        getrandom::getrandom(&mut salt).map_err(|e| WalletError::Kdf(e.to_string()))?;
        Ok(SealingKey { params, salt, key: derive_key(passphrase, &salt, params)? })
    }

    /// Seals `plain` with a fresh nonce, bound to `aad`.
    pub(super) fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Sealed, WalletError> {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        let mut nonce = [0u8; 24];
        getrandom::getrandom(&mut nonce).map_err(|e| WalletError::Kdf(e.to_string()))?;
        let cipher = chacha20poly1305::XChaCha20Poly1305::new((&self.key).into());
        let ciphertext = cipher
            .encrypt(chacha20poly1305::XNonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| WalletError::Kdf("encryption failed".into()))?;
        Ok(Sealed {
            kdf: KDF_NAME.into(),
            kdf_params: self.params,
            salt: hex::encode(self.salt),
            cipher: CIPHER_NAME.into(),
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ciphertext),
        })
    }

    /// Opens `sealed` with `passphrase`; a wrong passphrase and an altered
    /// ciphertext or `aad` are the same failure.
    pub(super) fn open(
        sealed: &Sealed,
        passphrase: &[u8],
        aad: &[u8],
        shown: &str,
    ) -> Result<(Vec<u8>, SealingKey), WalletError> {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        let invalid = |reason: &str| WalletError::Invalid { path: shown.to_string(), reason: reason.to_string() };
        if sealed.kdf != KDF_NAME || sealed.cipher != CIPHER_NAME {
            return Err(invalid("unknown key derivation or cipher"));
        }
        let salt: [u8; 16] = hex::decode(&sealed.salt)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| invalid("salt is not 16 hex bytes"))?;
        let nonce: [u8; 24] = hex::decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| invalid("nonce is not 24 hex bytes"))?;
        let ciphertext = hex::decode(&sealed.ciphertext).map_err(|_| invalid("ciphertext is not hex"))?;
        let sealing =
            SealingKey { params: sealed.kdf_params, salt, key: derive_key(passphrase, &salt, sealed.kdf_params)? };
        let cipher = chacha20poly1305::XChaCha20Poly1305::new((&sealing.key).into());
        let plain = cipher
            .decrypt(chacha20poly1305::XNonce::from_slice(&nonce), Payload { msg: &ciphertext, aad })
            .map_err(|_| WalletError::WrongPassphrase(shown.to_string()))?;
        Ok((plain, sealing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_kdf_costs_in_a_file_are_refused() {
        let sealed = Sealed {
            kdf: KDF_NAME.into(),
            kdf_params: KdfParams { memory_kib: u32::MAX, iterations: 1, parallelism: 1 },
            salt: "00".repeat(16),
            cipher: CIPHER_NAME.into(),
            nonce: "00".repeat(24),
            ciphertext: "00".repeat(48),
        };
        assert!(matches!(SealingKey::open(&sealed, b"x", b"", "w"), Err(WalletError::Kdf(_))));
    }

    #[test]
    fn the_associated_data_is_bound() {
        let key = SealingKey::new(b"pass", KdfParams::LIGHT_FOR_TESTS).unwrap();
        let sealed = key.seal(b"secret", b"public").unwrap();
        assert_eq!(SealingKey::open(&sealed, b"pass", b"public", "w").unwrap().0, b"secret");
        assert!(matches!(SealingKey::open(&sealed, b"pass", b"publik", "w"), Err(WalletError::WrongPassphrase(_))));
        assert!(matches!(SealingKey::open(&sealed, b"wrong", b"public", "w"), Err(WalletError::WrongPassphrase(_))));
    }
}
