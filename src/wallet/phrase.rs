//! The recovery phrase (BIP39, 24 English words) and the keys it gives
//! (EIP-2333 over the BIP39 seed, address `i` at `m/12381/9733/0/i`).

use crate::crypto::{CryptoError, SecretKey};

/// The words of a recovery phrase (SPEC §7: 256 bits of entropy).
pub const PHRASE_WORDS: usize = 24;
/// The hardened EIP-2333 path of the wallet's addresses, before the index:
/// purpose 12381 (BLS12-381, as EIP-2334), coin 9733 (the main port), account 0.
pub const ADDRESS_PATH: [u32; 3] = [12381, 9733, 0];

/// Why a typed phrase is not a recovery phrase; each says which part is wrong.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PhraseError {
    #[error("the recovery phrase has {0} words; it must have {PHRASE_WORDS}")]
    WordCount(usize),
    #[error("word {position} of the recovery phrase, `{word}`, is not in the BIP39 English word list")]
    UnknownWord { position: usize, word: String },
    #[error("the recovery phrase's checksum fails: a word is mistyped or out of order")]
    Checksum,
}

/// A valid recovery phrase, words lowercase and single-spaced. Never printed
/// by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryPhrase(String);

impl std::fmt::Debug for RecoveryPhrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryPhrase(..)")
    }
}

impl Drop for RecoveryPhrase {
    fn drop(&mut self) {
        // Best effort: the words do not linger in freed memory.
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
    }
}

impl RecoveryPhrase {
    /// A new phrase from 32 bytes of operating-system randomness.
    pub fn generate() -> Result<RecoveryPhrase, CryptoError> {
        let mut entropy = [0u8; 32];
        getrandom::getrandom(&mut entropy).map_err(|e| CryptoError::Randomness(e.to_string()))?;
        let phrase = RecoveryPhrase::from_entropy(&entropy);
        entropy.fill(0);
        phrase.ok_or_else(|| CryptoError::Randomness("BIP39 refused 32 bytes of entropy".into()))
    }

    /// The phrase of 32 bytes of entropy (always a valid BIP39 length).
    fn from_entropy(entropy: &[u8; 32]) -> Option<RecoveryPhrase> {
        let mnemonic = bip39::Mnemonic::from_entropy(entropy).ok()?;
        Some(RecoveryPhrase(mnemonic.words().collect::<Vec<_>>().join(" ")))
    }

    /// Reads a phrase as a person types it: any case, any whitespace between
    /// the words. Refuses the wrong number of words, an unknown word (naming
    /// it) and a failed checksum.
    pub fn parse(text: &str) -> Result<RecoveryPhrase, PhraseError> {
        let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
        if words.len() != PHRASE_WORDS {
            return Err(PhraseError::WordCount(words.len()));
        }
        let english = bip39::Language::English;
        for (position, word) in words.iter().enumerate() {
            if english.find_word(word).is_none() {
                let shown: String = word.chars().take(20).filter(|c| !c.is_control()).collect();
                return Err(PhraseError::UnknownWord { position: position + 1, word: shown });
            }
        }
        let joined = words.join(" ");
        match bip39::Mnemonic::parse_in_normalized(english, &joined) {
            Ok(_) => Ok(RecoveryPhrase(joined)),
            Err(_) => Err(PhraseError::Checksum),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The BIP39 seed, as SPEC §7 fixes it: no BIP39 passphrase.
    pub fn seed(&self) -> [u8; 64] {
        seed_with_passphrase(&self.0, "")
    }

    /// The secret key of address `index`: `m/12381/9733/0/index`.
    pub fn address_key(&self, index: u32) -> Result<SecretKey, CryptoError> {
        let mut seed = self.seed();
        let master = SecretKey::derive_master_eip2333(&seed);
        seed.fill(0);
        let mut key = master?;
        for step in ADDRESS_PATH.into_iter().chain(std::iter::once(index)) {
            key = key.derive_child_eip2333(step);
        }
        Ok(key)
    }
}

/// BIP39's phrase -> seed (PBKDF2-HMAC-SHA512, 2048 rounds, salt
/// "mnemonic" + passphrase), for a phrase already normalized.
fn seed_with_passphrase(phrase: &str, passphrase: &str) -> [u8; 64] {
    match bip39::Mnemonic::parse_in_normalized_without_checksum_check(bip39::Language::English, phrase) {
        Ok(mnemonic) => mnemonic.to_seed_normalized(passphrase),
        Err(_) => [0u8; 64],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(decimal: &str) -> [u8; 32] {
        primitive_types::U256::from_dec_str(decimal).unwrap().to_big_endian()
    }

    /// BIP39's published vectors (trezor/python-mnemonic vectors.json), with
    /// their passphrase "TREZOR".
    #[test]
    fn bip39_published_vectors() {
        let twelve = format!("{}about", "abandon ".repeat(11));
        assert_eq!(
            hex::encode(seed_with_passphrase(&twelve, "TREZOR")),
            "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04"
        );
        let zero = RecoveryPhrase::from_entropy(&[0; 32]).unwrap();
        assert_eq!(zero.as_str(), format!("{}art", "abandon ".repeat(23)));
        assert_eq!(
            hex::encode(seed_with_passphrase(zero.as_str(), "TREZOR")),
            "bda85446c68413707090a52022edd26a1c9462295029f2e60cd7c4f2bbd3097170af7a4d73245cafa9c3cca8d561a7c3de6f5d4a10be8ed2a5e608d68f92fcc8"
        );
        let legal = RecoveryPhrase::from_entropy(&[0x7f; 32]).unwrap();
        assert_eq!(
            legal.as_str(),
            "legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth title"
        );
    }

    /// The same phrase without a passphrase, as SPEC §7 uses it (PBKDF2
    /// computed independently with Python's hashlib).
    #[test]
    fn the_wallet_seed_has_no_bip39_passphrase() {
        let zero = RecoveryPhrase::parse(&format!("{}art", "abandon ".repeat(23))).unwrap();
        assert_eq!(
            hex::encode(zero.seed()),
            "408b285c123836004f4b8842c89324c1f01382450c0d439af345ba7fc49acf705489c6fc77dbd4e3dc1dd8cc6bc9f043db8ada1e243c4a0eafb290d399480840"
        );
    }

    /// EIP-2333's published test cases: seed -> master -> child.
    #[test]
    fn eip2333_published_vectors() {
        let cases = [
            ("c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04",
             "6083874454709270928345386274498605044986640685124978867557563392430687146096", 0u32,
             "20397789859736650942317412262472558107875392172444076792671091975210932703118"),
            ("3141592653589793238462643383279502884197169399375105820974944592",
             "29757020647961307431480504535336562678282505419141012933316116377660817309383", 3141592653,
             "25457201688850691947727629385191704516744796114925897962676248250929345014287"),
            ("0099ff991111002299dd7744ee3355bbdd8844115566cc55663355668888cc00",
             "27580842291869792442942448775674722299803720648445448686099262467207037398656", 4294967295,
             "29358610794459428860402234341874281240803786294062035874021252734817515685787"),
            ("d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3",
             "19022158461524446591288038168518313374041767046816487870552872741050760015818", 42,
             "31372231650479070279774297061823572166496564838472787488249775572789064611981"),
        ];
        for (seed, master, index, child) in cases {
            let key = SecretKey::derive_master_eip2333(&hex::decode(seed).unwrap()).unwrap();
            assert_eq!(key.to_bytes(), scalar(master), "master of {seed}");
            assert_eq!(key.derive_child_eip2333(index).to_bytes(), scalar(child), "child {index} of {seed}");
        }
    }

    #[test]
    fn addresses_follow_the_hardened_path() {
        let phrase = RecoveryPhrase::from_entropy(&[0x7f; 32]).unwrap();
        let mut key = SecretKey::derive_master_eip2333(&phrase.seed()).unwrap();
        for step in [12381, 9733, 0, 1] {
            key = key.derive_child_eip2333(step);
        }
        assert_eq!(phrase.address_key(1).unwrap().to_bytes(), key.to_bytes());
        assert_ne!(phrase.address_key(0).unwrap().to_bytes(), key.to_bytes());
    }

    #[test]
    fn bad_phrases_say_what_is_wrong() {
        let good = RecoveryPhrase::from_entropy(&[0x7f; 32]).unwrap();
        let words: Vec<&str> = good.as_str().split(' ').collect();
        assert_eq!(RecoveryPhrase::parse(&words[..23].join(" ")), Err(PhraseError::WordCount(23)));
        let mut unknown = words.clone();
        unknown[4] = "bitcoin";
        assert_eq!(
            RecoveryPhrase::parse(&unknown.join(" ")),
            Err(PhraseError::UnknownWord { position: 5, word: "bitcoin".into() })
        );
        let mut swapped = words.clone();
        swapped.swap(0, 1);
        assert_eq!(RecoveryPhrase::parse(&swapped.join(" ")), Err(PhraseError::Checksum));
        // Case and spacing do not matter.
        let shouted = format!("  {}\n", good.as_str().to_uppercase().replace(' ', "\t "));
        assert_eq!(RecoveryPhrase::parse(&shouted).unwrap(), good);
    }

    #[test]
    fn generated_phrases_are_24_words_and_differ() {
        let a = RecoveryPhrase::generate().unwrap();
        let b = RecoveryPhrase::generate().unwrap();
        assert_eq!(a.as_str().split(' ').count(), PHRASE_WORDS);
        assert_ne!(a, b);
        assert_eq!(RecoveryPhrase::parse(a.as_str()).unwrap(), a);
        assert!(!format!("{a:?}").contains(a.as_str().split(' ').next().unwrap()));
    }
}
