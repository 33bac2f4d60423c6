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
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WalletFile {
    version: u32,
    network: Network,
    /// The 32-byte secret key, hex.
    secret_key: String,
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
        let shown = path.display().to_string();
        let secret = SecretKey::generate()?;
        let file = WalletFile { version: 1, network, secret_key: hex::encode(secret.to_bytes()) };
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

    /// Loads a wallet file of `network`.
    pub fn load(path: &Path, network: Network) -> Result<Wallet, WalletError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => WalletError::NotFound(shown.clone()),
            _ => WalletError::Io { action: "read", path: shown.clone(), source },
        })?;
        let invalid = |reason: String| WalletError::Invalid { path: shown.clone(), reason };
        let file: WalletFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if file.version != 1 {
            return Err(invalid(format!("unknown version {}", file.version)));
        }
        if file.network != network {
            return Err(WalletError::WrongNetwork { path: shown, found: file.network, expected: network });
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&file.secret_key, &mut bytes)
            .map_err(|_| invalid("secret key is not 64 hex digits".into()))?;
        let secret = SecretKey::from_bytes(&bytes).map_err(|_| invalid("secret key is not a valid scalar".into()))?;
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
    fn payments_verify() {
        let dir = tempfile::tempdir().unwrap();
        let wallet = Wallet::create(&dir.path().join("w.json"), Network::Regtest).unwrap();
        let params = Params::get(Network::Regtest);
        let stx = wallet.pay(params.chain_id, Address([1; 20]), Amount(5), Amount(1_000), 0);
        assert_eq!(rules::check_signed_transaction(params, &stx), Ok(()));
    }
}
