//! Files the node keeps in its data directory besides the database: its
//! libp2p identity, the peers it has known, and the mempool across restarts.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};

use crate::types::{decode, encode, SignedTransaction};

/// The largest saved mempool file read back.
const MAX_MEMPOOL_FILE_BYTES: usize = 256 * 1024 * 1024;
/// Known peers kept at most.
pub const MAX_KNOWN_PEERS: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: String, source: std::io::Error },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: String, reason: String },
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FileError + 'a {
    move |source| FileError::Io { action, path: path.display().to_string(), source }
}

/// Writes `bytes` to `path` atomically (a temporary file renamed over it), with `mode` on Unix.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    let tmp = path.with_extension("tmp");
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(io_error("create", &tmp))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io_error("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_error("replace", path))
}

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

/// Peers and the addresses they listen on, as saved between runs.
pub type KnownPeers = BTreeMap<PeerId, Vec<Multiaddr>>;

pub fn load_known_peers(path: &Path) -> KnownPeers {
    let Ok(text) = std::fs::read_to_string(path) else { return KnownPeers::new() };
    let raw: BTreeMap<String, Vec<String>> = match serde_json::from_str(&text) {
        Ok(raw) => raw,
        Err(e) => {
            tracing::warn!("ignoring {}: {e}", path.display());
            return KnownPeers::new();
        }
    };
    raw.into_iter()
        .take(MAX_KNOWN_PEERS)
        .filter_map(|(peer, addrs)| {
            let peer: PeerId = peer.parse().ok()?;
            let addrs: Vec<Multiaddr> = addrs.iter().filter_map(|a| a.parse().ok()).take(8).collect();
            (!addrs.is_empty()).then_some((peer, addrs))
        })
        .collect()
}

pub fn save_known_peers(path: &Path, peers: &KnownPeers) -> Result<(), FileError> {
    let raw: BTreeMap<String, Vec<String>> = peers
        .iter()
        .take(MAX_KNOWN_PEERS)
        .map(|(peer, addrs)| (peer.to_string(), addrs.iter().map(|a| a.to_string()).collect()))
        .collect();
    let text = serde_json::to_string_pretty(&raw)
        .map_err(|e| FileError::Damaged { path: path.display().to_string(), reason: e.to_string() })?;
    write_atomically(path, text.as_bytes(), 0o644)
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
    decode(&bytes, MAX_MEMPOOL_FILE_BYTES)
        .map_err(|e| FileError::Damaged { path: path.display().to_string(), reason: e.to_string() })
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
    fn known_peers_round_trip_and_bad_entries_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peers.json");
        let peer = PeerId::random();
        let mut peers = KnownPeers::new();
        peers.insert(peer, vec!["/ip4/127.0.0.1/tcp/1234".parse().unwrap()]);
        save_known_peers(&path, &peers).unwrap();
        assert_eq!(load_known_peers(&path), peers);
        std::fs::write(&path, r#"{"not-a-peer": ["/ip4/1.2.3.4/tcp/1"], "x": "y"}"#).unwrap();
        assert!(load_known_peers(&path).is_empty());
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
