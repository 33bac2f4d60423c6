//! Bans by peer id and by IP address, each until a time, kept across
//! restarts in `bans.json` (the shape `ourcoin-cli node bans` prints).
//! A peer id costs nothing to change, so a ban for abuse also covers the
//! address it came from, except loopback, where every local node lives.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::addrbook::canonical;

/// Bans kept at most; the oldest expiry goes first when full.
pub const MAX_BANS: usize = 10_000;
/// The largest bans file read back.
const MAX_BANS_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// What a ban applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BanTarget {
    Peer(PeerId),
    Ip(IpAddr),
}

impl std::fmt::Display for BanTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BanTarget::Peer(peer) => write!(f, "{peer}"),
            BanTarget::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is neither a peer id nor an IP address")]
pub struct BadTarget(String);

impl FromStr for BanTarget {
    type Err = BadTarget;
    fn from_str(s: &str) -> Result<BanTarget, BadTarget> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(BanTarget::Ip(canonical(ip)));
        }
        s.parse::<PeerId>().map(BanTarget::Peer).map_err(|_| BadTarget(s.to_string()))
    }
}

/// One ban as saved and as `node bans` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanEntry {
    pub target: String,
    /// Unix seconds.
    pub until: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Bans {
    until: BTreeMap<BanTarget, u64>,
}

impl Bans {
    pub fn ban(&mut self, target: BanTarget, until: u64) {
        if self.until.len() >= MAX_BANS && !self.until.contains_key(&target) {
            if let Some(first) = self.until.iter().min_by_key(|(_, u)| **u).map(|(t, _)| *t) {
                self.until.remove(&first);
            }
        }
        let entry = self.until.entry(target).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Whether there was a ban to lift.
    pub fn unban(&mut self, target: &BanTarget) -> bool {
        self.until.remove(target).is_some()
    }

    pub fn is_banned(&self, target: &BanTarget, now: u64) -> bool {
        self.until.get(target).is_some_and(|until| *until > now)
    }

    /// Drops expired bans; whether any went.
    pub fn expire(&mut self, now: u64) -> bool {
        let before = self.until.len();
        self.until.retain(|_, until| *until > now);
        self.until.len() != before
    }

    pub fn peers(&self) -> HashSet<PeerId> {
        self.until.keys().filter_map(|t| if let BanTarget::Peer(p) = t { Some(*p) } else { None }).collect()
    }

    pub fn ips(&self) -> HashSet<IpAddr> {
        self.until.keys().filter_map(|t| if let BanTarget::Ip(ip) = t { Some(*ip) } else { None }).collect()
    }

    pub fn entries(&self) -> Vec<BanEntry> {
        self.until.iter().map(|(t, until)| BanEntry { target: t.to_string(), until: *until }).collect()
    }

    /// Reads `bans.json`; a missing file is no bans, a damaged one is said and skipped.
    pub fn load(path: &Path, now: u64) -> Bans {
        let bans = Bans::default();
        let text = match std::fs::metadata(path) {
            Ok(meta) if meta.len() <= MAX_BANS_FILE_BYTES => std::fs::read_to_string(path).unwrap_or_default(),
            Ok(_) => {
                tracing::warn!("ignoring {}: larger than {MAX_BANS_FILE_BYTES} bytes", path.display());
                return bans;
            }
            Err(_) => return bans,
        };
        Bans::from_text(&text, now, &path.display().to_string())
    }

    /// The bans in a `bans.json` text, as [`Bans::load`] reads it (the fuzz
    /// target's body too): what does not parse is said and skipped.
    pub fn from_text(text: &str, now: u64, shown: &str) -> Bans {
        let mut bans = Bans::default();
        match serde_json::from_str::<Vec<BanEntry>>(text) {
            Ok(entries) => {
                for entry in entries {
                    match entry.target.parse::<BanTarget>() {
                        Ok(target) if entry.until > now => bans.ban(target, entry.until),
                        Ok(_) => {}
                        Err(e) => tracing::warn!("{shown}: skipping a ban: {e}"),
                    }
                }
            }
            Err(e) => tracing::warn!("ignoring {shown}: {e}"),
        }
        bans
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(&self.entries()).map_err(|e| e.to_string())?;
        crate::fsio::write_atomically(path, text.as_bytes(), 0o644).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_hold_until_they_expire_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bans.json");
        let peer = PeerId::random();
        let mut bans = Bans::default();
        bans.ban(BanTarget::Peer(peer), 100);
        bans.ban("10.1.2.3".parse().unwrap(), 200);
        bans.ban("::ffff:10.9.9.9".parse().unwrap(), 50);
        assert!(bans.is_banned(&BanTarget::Peer(peer), 99));
        assert!(!bans.is_banned(&BanTarget::Peer(peer), 100));
        assert!(bans.ips().contains(&"10.9.9.9".parse::<IpAddr>().unwrap()), "mapped addresses are IPv4");
        bans.save(&path).unwrap();
        let loaded = Bans::load(&path, 60);
        assert_eq!(loaded.entries().len(), 2, "the expired one is not read back");
        assert!(loaded.is_banned(&"10.1.2.3".parse().unwrap(), 150));
        let mut lifted = loaded.clone();
        assert!(lifted.unban(&BanTarget::Peer(peer)));
        assert!(!lifted.unban(&BanTarget::Peer(peer)));
        assert!(lifted.expire(250));
        assert!(lifted.entries().is_empty());
    }

    #[test]
    fn a_damaged_bans_file_is_skipped_and_targets_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bans.json");
        std::fs::write(&path, "{not json").unwrap();
        assert!(Bans::load(&path, 0).entries().is_empty());
        std::fs::write(&path, r#"[{"target": "nonsense", "until": 99}, {"target": "1.2.3.4", "until": 99}]"#).unwrap();
        assert_eq!(Bans::load(&path, 0).entries(), vec![BanEntry { target: "1.2.3.4".into(), until: 99 }]);
        assert!("not-a-target".parse::<BanTarget>().is_err());
    }

    #[test]
    fn the_ban_list_is_bounded() {
        let mut bans = Bans::default();
        for i in 0..MAX_BANS as u64 + 10 {
            bans.ban(BanTarget::Peer(PeerId::random()), 1_000 + i);
        }
        assert_eq!(bans.entries().len(), MAX_BANS);
        assert!(bans.entries().iter().all(|e| e.until >= 1_010));
    }
}
