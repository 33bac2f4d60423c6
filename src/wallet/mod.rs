//! The wallet file: a recovery phrase and the addresses derived from it
//! (SPEC §7 "Keys"), created with mode 0600 and never overwritten; files of
//! the older single-key form still load.
//!
//! Version 2 holds the phrase (plain, or sealed under a passphrase) and the
//! list of addresses with their labels. Sealed, the list is the AEAD's
//! associated data, so an edited address or label fails to open instead of
//! being shown. Plain or sealed, every listed address is derived again from
//! the phrase on load and must match.

mod phrase;
mod seal;

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;

use crate::crypto::{CryptoError, SecretKey};
use crate::types::{Address, Amount, ChainId, Network, SignedTransaction, Transaction};

pub use phrase::{PhraseError, RecoveryPhrase, ADDRESS_PATH, PHRASE_WORDS};
pub use seal::KdfParams;
use seal::{Sealed, SealingKey};

/// The most addresses a wallet file holds, so a crafted file cannot make us
/// derive keys without end.
pub const MAX_ADDRESSES: usize = 10_000;
/// The longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 100;
/// The largest wallet file read (10 000 addresses fit in well under this).
const MAX_FILE_BYTES: u64 = 4 << 20;

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
    #[error("wallet file {0} holds a single key of the older form and no recovery phrase; make a new wallet with `wallet new` and send the coins to it")]
    NoPhrase(String),
    #[error("a wallet holds at most {MAX_ADDRESSES} addresses")]
    TooManyAddresses,
    #[error("the label is not valid: {0}")]
    Label(String),
    #[error("cannot derive the wallet key: {0}")]
    Kdf(String),
    #[error(transparent)]
    Phrase(#[from] PhraseError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// One address of the wallet, with the key that spends from it.
#[derive(Debug)]
pub struct WalletKey {
    /// Its index `i` in `m/12381/9733/0/i` (0 for a single-key wallet).
    pub index: u32,
    pub label: Option<String>,
    pub address: Address,
    secret: SecretKey,
}

impl WalletKey {
    fn new(index: u32, label: Option<String>, secret: SecretKey) -> WalletKey {
        let address = Address::from_public_key(&secret.public_key().to_bytes());
        WalletKey { index, label, address, secret }
    }

    /// A signed payment from this address.
    pub fn pay(&self, chain_id: ChainId, to: Address, amount: Amount, fee: Amount, nonce: u64) -> SignedTransaction {
        let tx =
            Transaction { chain_id, sender: self.secret.public_key().to_bytes(), recipient: to, amount, fee, nonce };
        SignedTransaction { tx, signature: self.secret.sign(&tx.signing_message()).to_bytes() }
    }
}

/// What a wallet is made of.
#[derive(Debug)]
enum Origin {
    /// A version-1 file: one key, no phrase.
    SingleKey,
    Phrase(RecoveryPhrase),
}

/// A loaded wallet. Its secrets are never printed.
#[derive(Debug)]
pub struct Wallet {
    network: Network,
    origin: Origin,
    keys: Vec<WalletKey>,
    /// The sealing of an encrypted file, kept so a new address can be sealed
    /// in again without asking the passphrase twice.
    sealing: Option<SealingKey>,
}

// ---- the file -------------------------------------------------------------

/// Both file versions' fields; which must be present depends on `version`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WalletFile {
    version: u32,
    network: Network,
    /// Version 1: the 32-byte secret key, hex, in a wallet without a passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_key: Option<String>,
    /// Version 1: the secret key sealed under a passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encrypted_secret_key: Option<Sealed>,
    /// Version 1: the public key, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
    /// Version 2: the recovery phrase, in a wallet without a passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mnemonic: Option<String>,
    /// Version 2: the recovery phrase sealed under a passphrase, the
    /// addresses bound to it as associated data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encrypted_mnemonic: Option<Sealed>,
    /// Version 2: the addresses, index 0 first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    addresses: Option<Vec<AddressEntry>>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressEntry {
    index: u32,
    address: String,
    label: Option<String>,
}

/// The public fields an encrypted version-2 file binds to its ciphertext.
fn associated_data(network: Network, addresses: &[AddressEntry]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Bound<'a> {
        purpose: &'static str,
        version: u32,
        network: Network,
        addresses: &'a [AddressEntry],
    }
    let bound = Bound { purpose: "ourcoin wallet", version: 2, network, addresses };
    serde_json::to_vec(&bound).unwrap_or_default()
}

fn read_file(path: &Path) -> Result<WalletFile, WalletError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => WalletError::NotFound(shown.clone()),
        _ => WalletError::Io { action: "read", path: shown.clone(), source },
    })?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text).map_err(|source| WalletError::Io {
        action: "read",
        path: shown.clone(),
        source,
    })?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(WalletError::Invalid { path: shown, reason: format!("it is larger than {MAX_FILE_BYTES} bytes") });
    }
    parse_file(&text, shown)
}

fn parse_file(text: &str, shown: String) -> Result<WalletFile, WalletError> {
    serde_json::from_str(text).map_err(|e| WalletError::Invalid { path: shown, reason: e.to_string() })
}

/// Writes `text` as the wallet file, mode 0600: `create_new` for a new
/// wallet, else through a temporary file renamed over the old one, so a crash
/// leaves the old file or the new one, never half of either.
fn write_file(path: &Path, text: &str, replace: bool) -> Result<(), WalletError> {
    let shown = path.display().to_string();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| WalletError::Io {
            action: "create the folder of",
            path: shown.clone(),
            source,
        })?;
    }
    let target = if replace { path.with_extension("json.new") } else { path.to_path_buf() };
    let mut options = OpenOptions::new();
    options.write(true);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut out = options.open(&target).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => WalletError::AlreadyExists(shown.clone()),
        _ => WalletError::Io { action: "create", path: shown.clone(), source },
    })?;
    out.write_all(text.as_bytes()).and_then(|()| out.sync_all()).map_err(|source| WalletError::Io {
        action: "write",
        path: shown.clone(),
        source,
    })?;
    if replace {
        std::fs::rename(&target, path).map_err(|source| WalletError::Io { action: "replace", path: shown, source })?;
    }
    Ok(())
}

fn check_label(label: Option<&str>) -> Result<(), WalletError> {
    let Some(label) = label else { return Ok(()) };
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(WalletError::Label(format!("it is longer than {MAX_LABEL_CHARS} characters")));
    }
    if label.chars().any(char::is_control) {
        return Err(WalletError::Label("it holds control characters".into()));
    }
    Ok(())
}

impl Wallet {
    /// Creates a wallet file with a new recovery phrase. Fails if the file exists.
    pub fn create(path: &Path, network: Network) -> Result<Wallet, WalletError> {
        Wallet::create_with(path, network, None)
    }

    /// Creates a wallet file with a new recovery phrase, sealed under
    /// `passphrase` when given.
    pub fn create_with(
        path: &Path,
        network: Network,
        passphrase: Option<(&[u8], KdfParams)>,
    ) -> Result<Wallet, WalletError> {
        Wallet::restore(path, network, RecoveryPhrase::generate()?, 1, passphrase)
    }

    /// Creates a wallet file from a recovery phrase, with its first
    /// `addresses` addresses (at least one).
    pub fn restore(
        path: &Path,
        network: Network,
        phrase: RecoveryPhrase,
        addresses: u32,
        passphrase: Option<(&[u8], KdfParams)>,
    ) -> Result<Wallet, WalletError> {
        if addresses as usize > MAX_ADDRESSES {
            return Err(WalletError::TooManyAddresses);
        }
        if path.exists() {
            return Err(WalletError::AlreadyExists(path.display().to_string()));
        }
        let keys = (0..addresses.max(1))
            .map(|index| Ok(WalletKey::new(index, None, phrase.address_key(index)?)))
            .collect::<Result<Vec<_>, WalletError>>()?;
        let sealing = passphrase.map(|(passphrase, params)| SealingKey::new(passphrase, params)).transpose()?;
        let wallet = Wallet { network, origin: Origin::Phrase(phrase), keys, sealing };
        write_file(path, &wallet.file_text(path)?, false)?;
        Ok(wallet)
    }

    /// The version-2 file of this wallet.
    fn file_text(&self, path: &Path) -> Result<String, WalletError> {
        let shown = path.display().to_string();
        let Origin::Phrase(phrase) = &self.origin else { return Err(WalletError::NoPhrase(shown)) };
        let addresses: Vec<AddressEntry> = self
            .keys
            .iter()
            .map(|k| AddressEntry { index: k.index, address: k.address.encode(self.network), label: k.label.clone() })
            .collect();
        let (mnemonic, encrypted_mnemonic) = match &self.sealing {
            None => (Some(phrase.as_str().to_string()), None),
            Some(sealing) => {
                let aad = associated_data(self.network, &addresses);
                (None, Some(sealing.seal(phrase.as_str().as_bytes(), &aad)?))
            }
        };
        let file = WalletFile {
            version: 2,
            network: self.network,
            secret_key: None,
            encrypted_secret_key: None,
            public_key: None,
            mnemonic,
            encrypted_mnemonic,
            addresses: Some(addresses),
        };
        serde_json::to_string_pretty(&file).map_err(|e| WalletError::Invalid { path: shown, reason: e.to_string() })
    }

    /// Loads an unencrypted wallet file of `network`.
    pub fn load(path: &Path, network: Network) -> Result<Wallet, WalletError> {
        Wallet::load_with(path, network, None)
    }

    /// Whether the wallet file at `path` is sealed under a passphrase.
    pub fn is_encrypted(path: &Path) -> Result<bool, WalletError> {
        let file = read_file(path)?;
        Ok(file.encrypted_secret_key.is_some() || file.encrypted_mnemonic.is_some())
    }

    /// Loads a wallet file of `network`, opening a sealed one with `passphrase`.
    pub fn load_with(path: &Path, network: Network, passphrase: Option<&[u8]>) -> Result<Wallet, WalletError> {
        Wallet::from_file(read_file(path)?, network, passphrase, path.display().to_string())
    }

    /// A wallet file's text as [`Wallet::load_with`] reads it, and the file
    /// text it would save (the fuzz target's body).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn from_text(
        text: &str,
        network: Network,
        passphrase: Option<&[u8]>,
    ) -> Result<(Wallet, Option<String>), WalletError> {
        let shown = "wallet.json".to_string();
        let wallet = Wallet::from_file(parse_file(text, shown.clone())?, network, passphrase, shown)?;
        let saved = wallet.file_text(Path::new("wallet.json")).ok();
        Ok((wallet, saved))
    }

    fn from_file(
        file: WalletFile,
        network: Network,
        passphrase: Option<&[u8]>,
        shown: String,
    ) -> Result<Wallet, WalletError> {
        if file.network != network {
            return Err(WalletError::WrongNetwork { path: shown, found: file.network, expected: network });
        }
        match file.version {
            1 => Wallet::from_version_1(&file, passphrase, &shown),
            2 => Wallet::from_version_2(file, passphrase, &shown),
            other => Err(WalletError::Invalid { path: shown, reason: format!("unknown version {other}") }),
        }
    }

    fn from_version_1(file: &WalletFile, passphrase: Option<&[u8]>, shown: &str) -> Result<Wallet, WalletError> {
        let invalid = |reason: &str| WalletError::Invalid { path: shown.to_string(), reason: reason.to_string() };
        if file.mnemonic.is_some() || file.encrypted_mnemonic.is_some() || file.addresses.is_some() {
            return Err(invalid("a version 1 file holds no phrase and no address list"));
        }
        let secret = match (&file.secret_key, &file.encrypted_secret_key) {
            (Some(plain), None) => {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(plain, &mut bytes).map_err(|_| invalid("secret key is not 64 hex digits"))?;
                let key = SecretKey::from_bytes(&bytes).map_err(|_| invalid("secret key is not a valid scalar"));
                bytes.fill(0);
                key?
            }
            (None, Some(sealed)) => match passphrase {
                Some(passphrase) => {
                    let (mut plain, _) = SealingKey::open(sealed, passphrase, b"", shown)?;
                    let bytes: Result<[u8; 32], _> = plain.as_slice().try_into();
                    plain.fill(0);
                    let mut bytes = bytes.map_err(|_| invalid("sealed key is not 32 bytes"))?;
                    let key = SecretKey::from_bytes(&bytes).map_err(|_| invalid("sealed key is not a valid scalar"));
                    bytes.fill(0);
                    key?
                }
                None => return Err(WalletError::PassphraseNeeded(shown.to_string())),
            },
            _ => return Err(invalid("it must hold exactly one of secret_key and encrypted_secret_key")),
        };
        if file.public_key.as_ref().is_some_and(|pk| *pk != secret.public_key().to_bytes().to_hex()) {
            return Err(invalid("its public key does not belong to its secret key"));
        }
        let network = file.network;
        Ok(Wallet { network, origin: Origin::SingleKey, keys: vec![WalletKey::new(0, None, secret)], sealing: None })
    }

    fn from_version_2(file: WalletFile, passphrase: Option<&[u8]>, shown: &str) -> Result<Wallet, WalletError> {
        let invalid = |reason: String| WalletError::Invalid { path: shown.to_string(), reason };
        if file.secret_key.is_some() || file.encrypted_secret_key.is_some() || file.public_key.is_some() {
            return Err(invalid("a version 2 file holds a recovery phrase, not a single key".into()));
        }
        let addresses = file.addresses.ok_or_else(|| invalid("it has no address list".into()))?;
        if addresses.is_empty() || addresses.len() > MAX_ADDRESSES {
            return Err(invalid(format!("it must list from 1 to {MAX_ADDRESSES} addresses")));
        }
        let (words, sealing) = match (file.mnemonic, file.encrypted_mnemonic) {
            (Some(words), None) => (words, None),
            (None, Some(sealed)) => {
                let Some(passphrase) = passphrase else { return Err(WalletError::PassphraseNeeded(shown.into())) };
                let aad = associated_data(file.network, &addresses);
                let (plain, sealing) = SealingKey::open(&sealed, passphrase, &aad, shown)?;
                let words = String::from_utf8(plain).map_err(|_| invalid("the sealed phrase is not text".into()))?;
                (words, Some(sealing))
            }
            _ => return Err(invalid("it must hold exactly one of mnemonic and encrypted_mnemonic".into())),
        };
        let phrase = RecoveryPhrase::parse(&words).map_err(|e| invalid(e.to_string()))?;
        let mut keys = Vec::with_capacity(addresses.len());
        for (position, entry) in addresses.into_iter().enumerate() {
            if entry.index as usize != position {
                return Err(invalid(format!("address {position} of the list has index {}", entry.index)));
            }
            check_label(entry.label.as_deref()).map_err(|e| invalid(e.to_string()))?;
            let key = WalletKey::new(entry.index, entry.label, phrase.address_key(entry.index)?);
            if key.address.encode(file.network) != entry.address {
                return Err(invalid(format!(
                    "address {} does not come from the wallet's recovery phrase (the file was altered)",
                    entry.index
                )));
            }
            keys.push(key);
        }
        Ok(Wallet { network: file.network, origin: Origin::Phrase(phrase), keys, sealing })
    }

    /// Derives the next address, labels it, and saves the file with it.
    pub fn new_address(&mut self, path: &Path, label: Option<String>) -> Result<&WalletKey, WalletError> {
        check_label(label.as_deref())?;
        let Origin::Phrase(phrase) = &self.origin else {
            return Err(WalletError::NoPhrase(path.display().to_string()));
        };
        if self.keys.len() >= MAX_ADDRESSES {
            return Err(WalletError::TooManyAddresses);
        }
        let index = self.keys.len() as u32;
        let key = WalletKey::new(index, label, phrase.address_key(index)?);
        self.keys.push(key);
        let text = self.file_text(path);
        let saved = text.and_then(|text| write_file(path, &text, true));
        if let Err(e) = saved {
            self.keys.pop();
            return Err(e);
        }
        self.keys.last().ok_or(WalletError::TooManyAddresses)
    }

    /// The wallet's first address (index 0).
    pub fn address(&self) -> Address {
        self.first().address
    }

    fn first(&self) -> &WalletKey {
        // Every constructor makes at least one key.
        &self.keys[0]
    }

    /// Every address, index 0 first.
    pub fn keys(&self) -> &[WalletKey] {
        &self.keys
    }

    /// The key of `address`, if it is one of the wallet's.
    pub fn key_of(&self, address: &Address) -> Option<&WalletKey> {
        self.keys.iter().find(|k| k.address == *address)
    }

    /// The recovery phrase, when the wallet has one (not a version-1 file).
    pub fn phrase(&self) -> Option<&RecoveryPhrase> {
        match &self.origin {
            Origin::Phrase(phrase) => Some(phrase),
            Origin::SingleKey => None,
        }
    }

    pub fn network(&self) -> Network {
        self.network
    }

    /// A signed payment from the wallet's first address.
    pub fn pay(&self, chain_id: ChainId, to: Address, amount: Amount, fee: Amount, nonce: u64) -> SignedTransaction {
        self.first().pay(chain_id, to, amount, fee, nonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::{rules, Params};

    const LIGHT: KdfParams = KdfParams::LIGHT_FOR_TESTS;

    fn json(path: &Path) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn creates_loads_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/wallet.json");
        let created = Wallet::create(&path, Network::Regtest).unwrap();
        let loaded = Wallet::load(&path, Network::Regtest).unwrap();
        assert_eq!(created.address(), loaded.address());
        assert_eq!(created.phrase(), loaded.phrase());
        assert!(matches!(Wallet::create(&path, Network::Regtest), Err(WalletError::AlreadyExists(_))));
        assert_eq!(Wallet::load(&path, Network::Regtest).unwrap().address(), created.address());
        assert!(matches!(Wallet::load(&path, Network::Main), Err(WalletError::WrongNetwork { .. })));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let words = json(&path)["mnemonic"].as_str().unwrap().to_string();
        assert_eq!(words.split(' ').count(), PHRASE_WORDS);
        assert!(!format!("{loaded:?}").contains(&words[..12]), "the phrase never shows in debug output");
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
    fn a_restored_phrase_gives_the_same_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let mut original = Wallet::create(&dir.path().join("a.json"), Network::Regtest).unwrap();
        original.new_address(&dir.path().join("a.json"), Some("savings".into())).unwrap();
        original.new_address(&dir.path().join("a.json"), None).unwrap();
        let phrase = original.phrase().unwrap().clone();
        let restored = Wallet::restore(&dir.path().join("b.json"), Network::Regtest, phrase, 3, None).unwrap();
        let a: Vec<Address> = original.keys().iter().map(|k| k.address).collect();
        let b: Vec<Address> = restored.keys().iter().map(|k| k.address).collect();
        assert_eq!(a, b);
        let reloaded = Wallet::load(&dir.path().join("a.json"), Network::Regtest).unwrap();
        assert_eq!(reloaded.keys().len(), 3);
        assert_eq!(reloaded.keys()[1].label.as_deref(), Some("savings"));
        assert_eq!(reloaded.key_of(&a[2]).map(|k| k.index), Some(2));
    }

    #[test]
    fn an_edited_plain_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.json");
        Wallet::create(&path, Network::Regtest).unwrap();
        let other = Wallet::create(&dir.path().join("other.json"), Network::Regtest).unwrap();
        let mut file = json(&path);
        file["addresses"][0]["address"] = other.address().encode(Network::Regtest).into();
        std::fs::write(&path, file.to_string()).unwrap();
        let err = Wallet::load(&path, Network::Regtest).unwrap_err().to_string();
        assert!(err.contains("does not come from the wallet's recovery phrase"), "{err}");
    }

    #[test]
    fn an_encrypted_wallet_needs_its_passphrase_and_binds_its_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.json");
        let created = Wallet::create_with(&path, Network::Regtest, Some((b"correct horse", LIGHT))).unwrap();
        assert!(Wallet::is_encrypted(&path).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(created.phrase().unwrap().as_str()), "no plain phrase in an encrypted file");
        assert!(matches!(Wallet::load(&path, Network::Regtest), Err(WalletError::PassphraseNeeded(_))));
        assert!(matches!(
            Wallet::load_with(&path, Network::Regtest, Some(b"wrong")),
            Err(WalletError::WrongPassphrase(_))
        ));
        let mut opened = Wallet::load_with(&path, Network::Regtest, Some(b"correct horse")).unwrap();
        assert_eq!(opened.address(), created.address());
        // A new address is sealed in with the key already derived.
        opened.new_address(&path, Some("shop".into())).unwrap();
        let reopened = Wallet::load_with(&path, Network::Regtest, Some(b"correct horse")).unwrap();
        assert_eq!(reopened.keys()[1].label.as_deref(), Some("shop"));

        // An edited label or address is caught by the AEAD tag.
        let file = json(&path);
        for (field, value) in [("label", serde_json::json!("attacker")), ("index", serde_json::json!(7))] {
            let mut edited = file.clone();
            edited["addresses"][1][field] = value;
            std::fs::write(&path, edited.to_string()).unwrap();
            assert!(
                matches!(
                    Wallet::load_with(&path, Network::Regtest, Some(b"correct horse")),
                    Err(WalletError::WrongPassphrase(_))
                ),
                "{field}"
            );
        }
    }

    /// A version-1 file as the first releases wrote it.
    fn version_1_file(path: &Path, secret: &SecretKey, sealed: Option<Sealed>) {
        let mut file = serde_json::json!({
            "version": 1,
            "network": "regtest",
            "public_key": secret.public_key().to_bytes().to_hex(),
        });
        match sealed {
            None => file["secret_key"] = hex::encode(secret.to_bytes()).into(),
            Some(sealed) => file["encrypted_secret_key"] = serde_json::to_value(sealed).unwrap(),
        }
        std::fs::write(path, file.to_string()).unwrap();
    }

    #[test]
    fn single_key_files_of_version_1_still_load_and_sign() {
        let dir = tempfile::tempdir().unwrap();
        let params = Params::get(Network::Regtest);
        let secret = SecretKey::generate().unwrap();
        let address = Address::from_public_key(&secret.public_key().to_bytes());

        let plain = dir.path().join("plain.json");
        version_1_file(&plain, &secret, None);
        let sealing = SealingKey::new(b"pw", LIGHT).unwrap();
        let encrypted = dir.path().join("sealed.json");
        version_1_file(&encrypted, &secret, Some(sealing.seal(&secret.to_bytes(), b"").unwrap()));

        for (path, passphrase) in [(&plain, None), (&encrypted, Some(&b"pw"[..]))] {
            let mut wallet = Wallet::load_with(path, Network::Regtest, passphrase).unwrap();
            assert_eq!(wallet.address(), address);
            assert!(wallet.phrase().is_none());
            let stx = wallet.pay(params.chain_id, Address([1; 20]), Amount(5), Amount(1_000), 0);
            assert_eq!(rules::check_signed_transaction(params, &stx), Ok(()));
            assert!(matches!(wallet.new_address(path, None), Err(WalletError::NoPhrase(_))));
        }
    }

    #[test]
    fn labels_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.json");
        let mut wallet = Wallet::create(&path, Network::Regtest).unwrap();
        assert!(matches!(wallet.new_address(&path, Some("x".repeat(101))), Err(WalletError::Label(_))));
        assert!(matches!(wallet.new_address(&path, Some("a\x1b[2J".into())), Err(WalletError::Label(_))));
        assert_eq!(Wallet::load(&path, Network::Regtest).unwrap().keys().len(), 1, "nothing was saved");
    }

    #[test]
    fn payments_from_every_address_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.json");
        let mut wallet = Wallet::create(&path, Network::Regtest).unwrap();
        wallet.new_address(&path, None).unwrap();
        let params = Params::get(Network::Regtest);
        for key in wallet.keys() {
            let stx = key.pay(params.chain_id, Address([1; 20]), Amount(5), Amount(1_000), 0);
            assert_eq!(stx.tx.sender_address(), key.address);
            assert_eq!(rules::check_signed_transaction(params, &stx), Ok(()));
        }
    }
}
