//! The address book: where the node may find peers, in the spirit of Bitcoin
//! Core's addrman. Addresses heard of go to the *new* table, addresses the
//! node has connected to go to the *tried* table. Both are split in buckets
//! chosen by a keyed hash of the address's network group (and, for new
//! addresses, of the group of whoever told us), so one source, or one
//! network, can fill only a few buckets however many addresses it sends;
//! peers are drawn by bucket first, so those few buckets are a small share of
//! the draw. The book is bounded, and it is persisted in the data directory.
//!
//! Pure: the clock is an argument and the randomness is the caller's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::types::Hash256;

/// Buckets of the new table, and the most of them one source group reaches.
pub const NEW_BUCKETS: usize = 256;
pub const NEW_BUCKETS_PER_SOURCE_GROUP: u64 = 16;
/// Buckets of the tried table, and the most of them one address group reaches.
pub const TRIED_BUCKETS: usize = 64;
pub const TRIED_BUCKETS_PER_GROUP: u64 = 8;
/// Slots per bucket.
pub const BUCKET_SIZE: usize = 16;
/// New addresses one source group may have in the book at once.
pub const MAX_NEW_PER_SOURCE: usize = 64;
/// Dial attempts without a success after which an address is given up.
const MAX_FAILURES: u32 = 5;
/// An address not heard of for this long (seconds) may be replaced.
const HORIZON_SECS: u64 = 30 * 24 * 3_600;

/// A network group: addresses in one group are probably run by one party
/// (one /16 of IPv4, one /32 of IPv6, the machine itself for loopback).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Group(pub [u8; 5]);

impl Group {
    pub fn of(ip: IpAddr) -> Group {
        let ip = canonical(ip);
        if ip.is_loopback() {
            return Group([3, 0, 0, 0, 0]);
        }
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                Group([4, a, b, 0, 0])
            }
            IpAddr::V6(v6) => {
                let [a, b, c, d, ..] = v6.octets();
                Group([6, a, b, c, d])
            }
        }
    }

    pub fn is_loopback(self) -> bool {
        self.0[0] == 3
    }
}

/// IPv4 addresses mapped into IPv6 are IPv4 addresses.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Where an address can be reached from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reach {
    /// The internet.
    Public,
    /// A private network (RFC 1918, shared address space, unique local IPv6).
    Private,
    /// This machine only.
    Loopback,
    /// One link only.
    LinkLocal,
    /// Nowhere: unspecified, multicast, broadcast, documentation, reserved.
    Unroutable,
}

impl Reach {
    pub fn of(ip: IpAddr) -> Reach {
        match canonical(ip) {
            IpAddr::V4(ip) => {
                let [a, b, c, _] = ip.octets();
                if ip.is_loopback() {
                    Reach::Loopback
                } else if ip.is_unspecified()
                    || ip.is_broadcast()
                    || ip.is_multicast()
                    || ip.is_documentation()
                    || a == 0
                    || a >= 240
                    || (a == 192 && b == 0 && c == 0)
                    || (a == 198 && (b & 0xfe) == 18)
                {
                    Reach::Unroutable
                } else if ip.is_link_local() {
                    Reach::LinkLocal
                } else if ip.is_private() || (a == 100 && (b & 0xc0) == 64) {
                    Reach::Private
                } else {
                    Reach::Public
                }
            }
            IpAddr::V6(ip) => {
                let first = ip.segments()[0];
                if ip.is_loopback() {
                    Reach::Loopback
                } else if ip.is_unspecified() || ip.is_multicast() || first == 0x2001 && ip.segments()[1] == 0x0db8 {
                    Reach::Unroutable
                } else if (first & 0xffc0) == 0xfe80 {
                    Reach::LinkLocal
                } else if (first & 0xfe00) == 0xfc00 {
                    Reach::Private
                } else {
                    Reach::Public
                }
            }
        }
    }
}

/// The TCP endpoint and peer id a multiaddr names, if it is one we can keep:
/// `/ip4|ip6/…/tcp/…` with an optional `/p2p/…`.
pub fn endpoint_of(addr: &Multiaddr) -> Option<(SocketAddr, Option<PeerId>)> {
    let mut ip = None;
    let mut port = None;
    let mut peer = None;
    for part in addr.iter() {
        match part {
            Protocol::Ip4(v4) => ip = Some(IpAddr::V4(v4)),
            Protocol::Ip6(v6) => ip = Some(IpAddr::V6(v6)),
            Protocol::Tcp(p) => port = Some(p),
            Protocol::P2p(id) => peer = Some(id),
            _ => return None,
        }
    }
    Some((SocketAddr::new(canonical(ip?), port?), peer))
}

/// The multiaddr to dial a book entry.
pub fn multiaddr_of(addr: SocketAddr, peer: PeerId) -> Multiaddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => Protocol::Ip4(v4),
        IpAddr::V6(v6) => Protocol::Ip6(v6),
    };
    Multiaddr::empty().with(ip).with(Protocol::Tcp(addr.port())).with(Protocol::P2p(peer))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub peer: PeerId,
    /// The group of whoever told us of this address.
    pub source: Group,
    pub tried: bool,
    pub last_seen: u64,
    pub last_try: u64,
    pub last_success: u64,
    /// Failed attempts since the last success.
    pub failures: u32,
}

impl Entry {
    /// Worth nothing any more: it failed too often, or nobody spoke of it for a month.
    fn is_terrible(&self, now: u64) -> bool {
        self.failures >= MAX_FAILURES || now.saturating_sub(self.last_seen) > HORIZON_SECS
    }

    /// How likely a draw takes it: less after failures, much less if tried a moment ago.
    fn chance(&self, now: u64) -> f64 {
        let mut chance = 0.66f64.powi(self.failures.min(8) as i32);
        if now.saturating_sub(self.last_try) < 600 {
            chance *= 0.01;
        }
        chance
    }
}

/// The book as saved: the key and the entries (the tables are rebuilt from them).
#[derive(Serialize, Deserialize)]
pub struct SavedBook {
    pub version: u8,
    pub key: [u8; 32],
    pub entries: Vec<(SocketAddr, Entry)>,
}

const SAVED_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("the address book is damaged: {0}")]
    Damaged(String),
    #[error("the address book has version {0}, which this node does not read")]
    Version(u8),
}

pub struct AddressBook {
    key: [u8; 32],
    entries: HashMap<SocketAddr, Entry>,
    new: Vec<Option<SocketAddr>>,
    tried: Vec<Option<SocketAddr>>,
    /// New entries per source group.
    per_source: HashMap<Group, usize>,
}

impl AddressBook {
    /// An empty book; `key` salts the bucket hashes (random per node, so an
    /// attacker cannot aim at buckets).
    pub fn new(key: [u8; 32]) -> AddressBook {
        AddressBook {
            key,
            entries: HashMap::new(),
            new: vec![None; NEW_BUCKETS * BUCKET_SIZE],
            tried: vec![None; TRIED_BUCKETS * BUCKET_SIZE],
            per_source: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn tried_len(&self) -> usize {
        self.entries.values().filter(|e| e.tried).count()
    }

    pub fn get(&self, addr: &SocketAddr) -> Option<&Entry> {
        self.entries.get(addr)
    }

    fn hash(&self, parts: &[&[u8]]) -> u64 {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(&self.key);
        for part in parts {
            bytes.extend_from_slice(&(part.len() as u32).to_le_bytes());
            bytes.extend_from_slice(part);
        }
        let digest = Hash256::sha256(&bytes).0;
        u64::from_le_bytes([digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7]])
    }

    fn addr_bytes(addr: &SocketAddr) -> Vec<u8> {
        let mut bytes = match addr.ip() {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        bytes.extend_from_slice(&addr.port().to_le_bytes());
        bytes
    }

    /// The group an address is bucketed by: its network group, except on
    /// loopback, where every node of the machine shares one address and
    /// each port is a node of its own.
    fn bucket_group(addr: &SocketAddr) -> Group {
        let group = Group::of(addr.ip());
        if group.is_loopback() {
            let [hi, lo] = addr.port().to_be_bytes();
            return Group([3, hi, lo, 0, 0]);
        }
        group
    }

    /// The slot of a new address told by `source`.
    fn new_slot(&self, addr: &SocketAddr, source: Group) -> usize {
        let group = Self::bucket_group(addr);
        let within = self.hash(&[b"new1", &group.0, &source.0]) % NEW_BUCKETS_PER_SOURCE_GROUP;
        let bucket = (self.hash(&[b"new2", &source.0, &within.to_le_bytes()]) % NEW_BUCKETS as u64) as usize;
        let position = (self.hash(&[b"newpos", &(bucket as u64).to_le_bytes(), &Self::addr_bytes(addr)])
            % BUCKET_SIZE as u64) as usize;
        bucket * BUCKET_SIZE + position
    }

    fn tried_slot(&self, addr: &SocketAddr) -> usize {
        let group = Self::bucket_group(addr);
        let within = self.hash(&[b"tried1", &Self::addr_bytes(addr)]) % TRIED_BUCKETS_PER_GROUP;
        let bucket = (self.hash(&[b"tried2", &group.0, &within.to_le_bytes()]) % TRIED_BUCKETS as u64) as usize;
        let position = (self.hash(&[b"triedpos", &(bucket as u64).to_le_bytes(), &Self::addr_bytes(addr)])
            % BUCKET_SIZE as u64) as usize;
        bucket * BUCKET_SIZE + position
    }

    /// Adds an address heard of from `source`. Returns whether it is new to the book.
    pub fn add(&mut self, addr: SocketAddr, peer: PeerId, source: Group, now: u64) -> bool {
        if let Some(entry) = self.entries.get_mut(&addr) {
            entry.last_seen = entry.last_seen.max(now);
            if !entry.tried {
                // A new node on an old address; a tried one keeps the id it proved.
                entry.peer = peer;
            }
            return false;
        }
        if self.per_source.get(&source).copied().unwrap_or(0) >= MAX_NEW_PER_SOURCE {
            return false;
        }
        let slot = self.new_slot(&addr, source);
        if let Some(old) = self.new[slot] {
            let replaceable = self.entries.get(&old).is_none_or(|e| e.is_terrible(now));
            if !replaceable {
                return false;
            }
            self.forget(&old);
        }
        self.new[slot] = Some(addr);
        *self.per_source.entry(source).or_default() += 1;
        let entry = Entry { peer, source, tried: false, last_seen: now, last_try: 0, last_success: 0, failures: 0 };
        self.entries.insert(addr, entry);
        true
    }

    /// Removes an address from the book and its table.
    pub fn forget(&mut self, addr: &SocketAddr) {
        let Some(entry) = self.entries.remove(addr) else { return };
        if entry.tried {
            let slot = self.tried_slot(addr);
            if self.tried[slot] == Some(*addr) {
                self.tried[slot] = None;
            }
        } else {
            let slot = self.new_slot(addr, entry.source);
            if self.new[slot] == Some(*addr) {
                self.new[slot] = None;
            }
            if let Some(count) = self.per_source.get_mut(&entry.source) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.per_source.remove(&entry.source);
                }
            }
        }
    }

    /// We dialled it.
    pub fn attempt(&mut self, addr: &SocketAddr, now: u64) {
        if let Some(entry) = self.entries.get_mut(addr) {
            entry.last_try = now;
        }
    }

    /// The dial failed. An address that keeps failing and was never tried is dropped.
    pub fn failed(&mut self, addr: &SocketAddr, now: u64) {
        let Some(entry) = self.entries.get_mut(addr) else { return };
        entry.failures = entry.failures.saturating_add(1);
        entry.last_try = now;
        if !entry.tried && entry.failures >= MAX_FAILURES {
            self.forget(addr);
        }
    }

    /// We connected to `peer` at `addr`: it moves to the tried table. If its
    /// tried slot is taken, the one there goes back to the new table.
    pub fn good(&mut self, addr: SocketAddr, peer: PeerId, now: u64) {
        let source = Group::of(addr.ip());
        let entry = match self.entries.get(&addr) {
            Some(entry) if entry.tried && entry.peer == peer => {
                let entry = self.entries.get_mut(&addr).expect("just read");
                entry.last_success = now;
                entry.last_seen = now;
                entry.failures = 0;
                return;
            }
            Some(entry) => Entry { peer, ..entry.clone() },
            None => Entry { peer, source, tried: false, last_seen: now, last_try: now, last_success: now, failures: 0 },
        };
        self.forget(&addr);
        let slot = self.tried_slot(&addr);
        if let Some(old) = self.tried[slot].take() {
            if let Some(mut demoted) = self.entries.remove(&old) {
                demoted.tried = false;
                let new_slot = self.new_slot(&old, demoted.source);
                if let Some(there) = self.new[new_slot] {
                    self.forget(&there);
                }
                self.new[new_slot] = Some(old);
                *self.per_source.entry(demoted.source).or_default() += 1;
                self.entries.insert(old, demoted);
            }
        }
        self.tried[slot] = Some(addr);
        let entry = Entry { tried: true, last_seen: now, last_success: now, failures: 0, ..entry };
        self.entries.insert(addr, entry);
    }

    /// Draws an address to dial: a table (tried or new, evenly), a bucket of
    /// it that holds something, an entry of that bucket; taken with its
    /// chance, else drawn again. `skip` excludes what the caller cannot use
    /// (connected, banned, a group it already has). At most a few hundred draws.
    pub fn select(
        &self,
        rng: &mut impl Rng,
        now: u64,
        skip: impl Fn(&SocketAddr, &Entry) -> bool,
    ) -> Option<(SocketAddr, PeerId)> {
        let occupied = |table: &[Option<SocketAddr>]| -> Vec<usize> {
            table
                .chunks(BUCKET_SIZE)
                .enumerate()
                .filter(|(_, bucket)| bucket.iter().flatten().any(|a| self.entries.get(a).is_some_and(|e| !skip(a, e))))
                .map(|(i, _)| i)
                .collect()
        };
        let new_buckets = occupied(&self.new);
        let tried_buckets = occupied(&self.tried);
        if new_buckets.is_empty() && tried_buckets.is_empty() {
            return None;
        }
        let mut factor = 1.0f64;
        for _ in 0..500 {
            let use_tried = !tried_buckets.is_empty() && (new_buckets.is_empty() || rng.gen_bool(0.5));
            let (table, buckets) = if use_tried { (&self.tried, &tried_buckets) } else { (&self.new, &new_buckets) };
            let bucket = buckets[rng.gen_range(0..buckets.len())];
            let usable: Vec<(SocketAddr, &Entry)> = table[bucket * BUCKET_SIZE..(bucket + 1) * BUCKET_SIZE]
                .iter()
                .flatten()
                .filter_map(|a| self.entries.get(a).map(|e| (*a, e)))
                .filter(|(a, e)| !skip(a, e))
                .collect();
            let Some(&(addr, entry)) = usable.get(rng.gen_range(0..usable.len().max(1))) else { continue };
            if rng.gen_bool((entry.chance(now) * factor).min(1.0)) {
                return Some((addr, entry.peer));
            }
            factor *= 1.2;
        }
        None
    }

    /// Every entry, for the file.
    pub fn to_saved(&self) -> SavedBook {
        let mut entries: Vec<(SocketAddr, Entry)> = self.entries.iter().map(|(a, e)| (*a, e.clone())).collect();
        entries.sort_by_key(|(a, _)| *a);
        SavedBook { version: SAVED_VERSION, key: self.key, entries }
    }

    /// The book from its file: the tables are rebuilt, so an edited file can
    /// put no more in a bucket than the rules allow.
    pub fn from_saved(saved: SavedBook) -> Result<AddressBook, BookError> {
        if saved.version != SAVED_VERSION {
            return Err(BookError::Version(saved.version));
        }
        let mut book = AddressBook::new(saved.key);
        for (addr, entry) in saved.entries.into_iter().take((NEW_BUCKETS + TRIED_BUCKETS) * BUCKET_SIZE) {
            if entry.tried {
                let slot = book.tried_slot(&addr);
                if book.tried[slot].is_none() {
                    book.tried[slot] = Some(addr);
                    book.entries.insert(addr, entry);
                }
            } else if book.add(addr, entry.peer, entry.source, entry.last_seen) {
                book.entries.insert(addr, entry);
            }
        }
        Ok(book)
    }

    pub fn encode(&self) -> Vec<u8> {
        crate::types::encode(&self.to_saved())
    }

    pub fn decode(bytes: &[u8]) -> Result<AddressBook, BookError> {
        let saved: SavedBook =
            crate::types::decode(bytes, MAX_BOOK_FILE_BYTES).map_err(|e| BookError::Damaged(e.to_string()))?;
        AddressBook::from_saved(saved)
    }
}

/// The largest address book file read back (a full book is about 400 KB).
pub const MAX_BOOK_FILE_BYTES: usize = 2 * 1024 * 1024;

#[cfg(test)]
mod tests;
