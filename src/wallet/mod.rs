//! The wallet file: one BLS key, created with mode 0600 and never overwritten.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::crypto::{CryptoError, SecretKey};
use crate::types::{Address, Amount, ChainId, Network, SignedTransaction, Transaction};

#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("wallet file {0} already exists; refusing to overwrite it")]
    AlreadyExists(String),
    #[error("no wallet file at {0}; create one with `ourcoin-cli wallet new`")]
    NotFound(String),
    #[error("cannot {action} wallet file {path}: {source}")]
    Io { action: &'static str, path: String, source: std::io::Error },
    #[error("wallet file {path} is not valid: {reason}")]
    Invalid { path: String, reason: String },
    #[error("wallet file {path} belongs to the {found} network, not {expected}")]
    WrongNetwork { path: String, found: Network, expected: Network },
    #[error("wrong passphrase for wallet file {0} (or the file was altered)")]
    WrongPassphrase(String),
    #[error("wallet file {0} is encrypted: give its passphrase (--passphrase-file, or at the terminal)")]
    PassphraseNeeded(String),
    #[error("cannot derive the wallet key: {0}")]
    Kdf(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

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

/// The secret key sealed with XChaCha20-Poly1305 under an Argon2id key.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    kdf: String,
    kdf_params: KdfParams,
    salt: String,
    cipher: String,
    nonce: String,
    ciphertext: String,
}

const KDF_NAME: &str = "argon2id";
const CIPHER_NAME: &str = "xchacha20poly1305";

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

fn seal(secret: &SecretKey, passphrase: &[u8], params: KdfParams) -> Result<Sealed, WalletError> {
    use chacha20poly1305::aead::{Aead, KeyInit};
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    getrandom::getrandom(&mut salt).map_err(|e| WalletError::Kdf(e.to_string()))?;
    getrandom::getrandom(&mut nonce).map_err(|e| WalletError::Kdf(e.to_string()))?;
    let mut key = derive_key(passphrase, &salt, params)?;
    let cipher = chacha20poly1305::XChaCha20Poly1305::new((&key).into());
    key.fill(0);
    let mut plain = secret.to_bytes();
    let ciphertext = cipher
        .encrypt(chacha20poly1305::XNonce::from_slice(&nonce), plain.as_slice())
        .map_err(|_| WalletError::Kdf("encryption failed".into()));
    plain.fill(0);
    Ok(Sealed {
        kdf: KDF_NAME.into(),
        kdf_params: params,
        salt: hex::encode(salt),
        cipher: CIPHER_NAME.into(),
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(ciphertext?),
    })
}

fn unseal(sealed: &Sealed, passphrase: &[u8], shown: &str) -> Result<SecretKey, WalletError> {
    use chacha20poly1305::aead::{Aead, KeyInit};
    let invalid = |reason: &str| WalletError::Invalid { path: shown.to_string(), reason: reason.to_string() };
    if sealed.kdf != KDF_NAME || sealed.cipher != CIPHER_NAME {
        return Err(invalid("unknown key derivation or cipher"));
    }
    let salt = hex::decode(&sealed.salt).map_err(|_| invalid("salt is not hex"))?;
    let nonce: [u8; 24] = hex::decode(&sealed.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| invalid("nonce is not 24 hex bytes"))?;
    let ciphertext = hex::decode(&sealed.ciphertext).map_err(|_| invalid("ciphertext is not hex"))?;
    let mut key = derive_key(passphrase, &salt, sealed.kdf_params)?;
    let cipher = chacha20poly1305::XChaCha20Poly1305::new((&key).into());
    key.fill(0);
    let mut plain = cipher
        .decrypt(chacha20poly1305::XNonce::from_slice(&nonce), ciphertext.as_slice())
        .map_err(|_| WalletError::WrongPassphrase(shown.to_string()))?;
    let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| invalid("sealed key is not 32 bytes"))?;
    plain.fill(0);
    SecretKey::from_bytes(&bytes).map_err(|_| invalid("sealed key is not a valid scalar"))
}

fn read_file(path: &Path) -> Result<WalletFile, WalletError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => WalletError::NotFound(shown.clone()),
        _ => WalletError::Io { action: "read", path: shown.clone(), source },
    })?;
    serde_json::from_str(&text).map_err(|e| WalletError::Invalid { path: shown, reason: e.to_string() })
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WalletFile {
    version: u32,
    network: Network,
    /// The 32-byte secret key, hex, in a wallet without a passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_key: Option<String>,
    /// The secret key sealed under a passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encrypted_secret_key: Option<Sealed>,
    /// The public key, hex: lets an encrypted wallet show its address without the passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
}

/// A loaded wallet. Its secret key is never printed.
#[derive(Debug)]
pub struct Wallet {
    network: Network,
    secret: SecretKey,
    address: Address,
}

impl Wallet {
    /// Creates a wallet file with a fresh key. Fails if the file exists.
    pub fn create(path: &Path, network: Network) -> Result<Wallet, WalletError> {
        Wallet::create_with(path, network, None)
    }

    /// Creates a wallet file whose key is sealed under `passphrase` when given.
    pub fn create_with(
        path: &Path,
        network: Network,
        passphrase: Option<(&[u8], KdfParams)>,
    ) -> Result<Wallet, WalletError> {
        let shown = path.display().to_string();
        let secret = SecretKey::generate()?;
        let file = match passphrase {
            None => WalletFile {
                version: 1,
                network,
                secret_key: Some(hex::encode(secret.to_bytes())),
                encrypted_secret_key: None,
                public_key: Some(secret.public_key().to_bytes().to_hex()),
            },
            Some((passphrase, params)) => WalletFile {
                version: 1,
                network,
                secret_key: None,
                encrypted_secret_key: Some(seal(&secret, passphrase, params)?),
                public_key: Some(secret.public_key().to_bytes().to_hex()),
            },
        };
        let text = serde_json::to_string_pretty(&file)
            .map_err(|e| WalletError::Invalid { path: shown.clone(), reason: e.to_string() })?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| WalletError::Io {
                action: "create the folder of",
                path: shown.clone(),
                source,
            })?;
        }
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut out = options.open(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => WalletError::AlreadyExists(shown.clone()),
            _ => WalletError::Io { action: "create", path: shown.clone(), source },
        })?;
        out.write_all(text.as_bytes()).and_then(|()| out.sync_all()).map_err(|source| WalletError::Io {
            action: "write",
            path: shown.clone(),
            source,
        })?;
        Ok(Wallet::from_secret(network, secret))
    }

    /// Loads an unencrypted wallet file of `network`.
    pub fn load(path: &Path, network: Network) -> Result<Wallet, WalletError> {
        Wallet::load_with(path, network, None)
    }

    /// The wallet's address, read without opening its key (no passphrase needed).
    pub fn address_of(path: &Path, network: Network) -> Result<Address, WalletError> {
        let shown = path.display().to_string();
        let file = read_file(path)?;
        if file.network != network {
            return Err(WalletError::WrongNetwork { path: shown, found: file.network, expected: network });
        }
        match &file.public_key {
            Some(hex_key) => {
                let mut bytes = [0u8; 48];
                hex::decode_to_slice(hex_key, &mut bytes).map_err(|_| WalletError::Invalid {
                    path: shown,
                    reason: "public key is not 96 hex digits".into(),
                })?;
                Ok(Address::from_public_key(&crate::types::PublicKeyBytes(bytes)))
            }
            None => Wallet::load(path, network).map(|w| w.address()),
        }
    }

    /// Whether the wallet file at `path` is sealed under a passphrase.
    pub fn is_encrypted(path: &Path) -> Result<bool, WalletError> {
        Ok(read_file(path)?.encrypted_secret_key.is_some())
    }

    /// Loads a wallet file of `network`, opening a sealed key with `passphrase`.
    pub fn load_with(path: &Path, network: Network, passphrase: Option<&[u8]>) -> Result<Wallet, WalletError> {
        let shown = path.display().to_string();
        let invalid = |reason: String| WalletError::Invalid { path: shown.clone(), reason };
        let file = read_file(path)?;
        if file.version != 1 {
            return Err(invalid(format!("unknown version {}", file.version)));
        }
        if file.network != network {
            return Err(WalletError::WrongNetwork { path: shown, found: file.network, expected: network });
        }
        let secret = match (&file.secret_key, &file.encrypted_secret_key) {
            (Some(plain), None) => {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(plain, &mut bytes)
                    .map_err(|_| invalid("secret key is not 64 hex digits".into()))?;
                SecretKey::from_bytes(&bytes).map_err(|_| invalid("secret key is not a valid scalar".into()))?
            }
            (None, Some(sealed)) => match passphrase {
                Some(passphrase) => unseal(sealed, passphrase, &shown)?,
                None => return Err(WalletError::PassphraseNeeded(shown)),
            },
            _ => return Err(invalid("it must hold exactly one of secret_key and encrypted_secret_key".into())),
        };
        if file.public_key.as_ref().is_some_and(|pk| *pk != secret.public_key().to_bytes().to_hex()) {
            return Err(invalid("its public key does not belong to its secret key".into()));
        }
        Ok(Wallet::from_secret(network, secret))
    }

    fn from_secret(network: Network, secret: SecretKey) -> Wallet {
        let address = Address::from_public_key(&secret.public_key().to_bytes());
        Wallet { network, secret, address }
    }

    pub fn address(&self) -> Address {
        self.address
    }

    pub fn network(&self) -> Network {
        self.network
    }

    /// A signed payment from this wallet.
    pub fn pay(&self, chain_id: ChainId, to: Address, amount: Amount, fee: Amount, nonce: u64) -> SignedTransaction {
        let tx =
            Transaction { chain_id, sender: self.secret.public_key().to_bytes(), recipient: to, amount, fee, nonce };
        SignedTransaction { tx, signature: self.secret.sign(&tx.signing_message()).to_bytes() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::{rules, Params};

    #[test]
    fn creates_loads_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/wallet.json");
        let created = Wallet::create(&path, Network::Regtest).unwrap();
        let loaded = Wallet::load(&path, Network::Regtest).unwrap();
        assert_eq!(created.address(), loaded.address());
        assert!(matches!(Wallet::create(&path, Network::Regtest), Err(WalletError::AlreadyExists(_))));
        assert_eq!(Wallet::load(&path, Network::Regtest).unwrap().address(), created.address());
        assert!(matches!(Wallet::load(&path, Network::Main), Err(WalletError::WrongNetwork { .. })));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let text: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let secret_hex = text["secret_key"].as_str().unwrap();
        assert_eq!(secret_hex.len(), 64);
        assert!(!format!("{loaded:?}").contains(secret_hex), "the secret key never shows in output");
    }

    #[test]
    fn refuses_a_missing_or_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.json");
        assert!(matches!(Wallet::load(&path, Network::Regtest), Err(WalletError::NotFound(_))));
        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(Wallet::load(&path, Network::Regtest), Err(WalletError::Invalid { .. })));
    }

    #[test]
    fn an_encrypted_wallet_needs_its_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.json");
        let params = KdfParams::LIGHT_FOR_TESTS;
        let created = Wallet::create_with(&path, Network::Regtest, Some((b"correct horse", params))).unwrap();
        assert!(Wallet::is_encrypted(&path).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("\"secret_key\""), "no plain key in an encrypted file");
        assert!(matches!(Wallet::load(&path, Network::Regtest), Err(WalletError::PassphraseNeeded(_))));
        assert!(matches!(
            Wallet::load_with(&path, Network::Regtest, Some(b"wrong")),
            Err(WalletError::WrongPassphrase(_))
        ));
        let opened = Wallet::load_with(&path, Network::Regtest, Some(b"correct horse")).unwrap();
        assert_eq!(opened.address(), created.address());
        assert_eq!(Wallet::address_of(&path, Network::Regtest).unwrap(), created.address());
        // Tampering with the ciphertext is caught by the AEAD tag.
        let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ct = file["encrypted_secret_key"]["ciphertext"].as_str().unwrap().to_string();
        let flipped = format!("{}{}", if ct.starts_with('0') { "1" } else { "0" }, &ct[1..]);
        file["encrypted_secret_key"]["ciphertext"] = serde_json::Value::String(flipped);
        std::fs::write(&path, file.to_string()).unwrap();
        assert!(matches!(
            Wallet::load_with(&path, Network::Regtest, Some(b"correct horse")),
            Err(WalletError::WrongPassphrase(_))
        ));
    }

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
        assert!(matches!(unseal(&sealed, b"x", "w"), Err(WalletError::Kdf(_))));
    }

    #[test]
    fn payments_verify() {
        let dir = tempfile::tempdir().unwrap();
        let wallet = Wallet::create(&dir.path().join("w.json"), Network::Regtest).unwrap();
        let params = Params::get(Network::Regtest);
        let stx = wallet.pay(params.chain_id, Address([1; 20]), Amount(5), Amount(1_000), 0);
        assert_eq!(rules::check_signed_transaction(params, &stx), Ok(()));
    }
}
