//! Files the node keeps in its data directory besides the database: its
//! libp2p identity and the mempool across restarts (the address book and
//! bans are the network layer's: `network::manage`).

use std::path::Path;

use libp2p::identity::Keypair;

use crate::types::{decode, encode, DecodeError, SignedTransaction};

/// The largest saved mempool file read back.
const MAX_MEMPOOL_FILE_BYTES: usize = 256 * 1024 * 1024;

pub use crate::fsio::{io_error, write_atomically, FileError};

/// The node's libp2p identity: created on first start (mode 0600), so the
/// peer id stays the same across restarts.
pub fn load_or_create_identity(path: &Path) -> Result<Keypair, FileError> {
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| FileError::Damaged { path: path.display().to_string(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| FileError::Damaged { path: path.display().to_string(), reason: e.to_string() })?;
            write_atomically(path, &bytes, 0o600)?;
            Ok(key)
        }
        Err(e) => Err(io_error("read", path)(e)),
    }
}

/// The secret `ourcoin-cli node …` commands present, as bitcoind's RPC
/// cookie: 32 random bytes in hex, written on first start with mode 0600.
pub fn load_or_create_cookie(path: &Path) -> Result<String, FileError> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().len() >= 32 => Ok(text.trim().to_string()),
        Ok(_) => Err(FileError::Damaged { path: path.display().to_string(), reason: "too short for a cookie".into() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cookie = hex::encode(rand::random::<[u8; 32]>());
            write_atomically(path, cookie.as_bytes(), 0o600)?;
            Ok(cookie)
        }
        Err(e) => Err(io_error("read", path)(e)),
    }
}

pub fn save_mempool(path: &Path, txs: &[SignedTransaction]) -> Result<(), FileError> {
    write_atomically(path, &encode(&txs.to_vec()), 0o600)
}

/// Reads and removes the saved mempool (a crash must not replay an old one).
pub fn take_saved_mempool(path: &Path) -> Result<Vec<SignedTransaction>, FileError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("read", path)(e)),
    };
    let _ = std::fs::remove_file(path);
    decode_saved_mempool(&bytes)
        .map_err(|e| FileError::Damaged { path: path.display().to_string(), reason: e.to_string() })
}

/// The transactions of a saved mempool file's bytes.
pub fn decode_saved_mempool(bytes: &[u8]) -> Result<Vec<SignedTransaction>, DecodeError> {
    decode(bytes, MAX_MEMPOOL_FILE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node_key");
        let first = load_or_create_identity(&path).unwrap();
        let again = load_or_create_identity(&path).unwrap();
        assert_eq!(first.public().to_peer_id(), again.public().to_peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(load_or_create_identity(&path), Err(FileError::Damaged { .. })));
    }

    #[test]
    fn the_cookie_is_made_once_with_mode_0600_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".cookie");
        let cookie = load_or_create_cookie(&path).unwrap();
        assert_eq!(cookie.len(), 64);
        assert_eq!(load_or_create_cookie(&path).unwrap(), cookie);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, "short").unwrap();
        assert!(load_or_create_cookie(&path).is_err());
    }

    #[test]
    fn the_saved_mempool_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mempool.dat");
        let stx =
            crate::testkit::TestKey::new(1).pay(crate::types::ChainId(1), crate::types::Address([2; 20]), 5, 1_000, 0);
        save_mempool(&path, &[stx]).unwrap();
        assert_eq!(take_saved_mempool(&path).unwrap(), vec![stx]);
        assert!(take_saved_mempool(&path).unwrap().is_empty());
        std::fs::write(&path, [0xff; 10]).unwrap();
        assert!(take_saved_mempool(&path).is_err());
    }
}
