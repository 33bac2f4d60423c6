//! Who is connected and as what. Every connection starts as one of:
//!
//! - **Peer**, outbound: we dialled it to fill an outbound slot, or the
//!   operator asked for it (`--connect`, `--bootstrap`, `node connect`);
//! - **Transient**, outbound: Kademlia dialled it for a lookup; it is closed
//!   soon and never counts as a peer;
//! - **Pending**, inbound: nobody knows yet. It becomes a *peer* once it
//!   asks for sync (a node asks each new outbound peer for its status at
//!   once; a lookup never does, so lookups never take a peer's slot), or a
//!   *query client* once it asks a query from an address `--query-allow`
//!   admits. One that identifies with another network is closed.
//!   A pending connection that does neither within a few seconds is closed,
//!   and pending connections have a small pool of their own.
//!
//! Inbound peers are capped; when a newcomer would pass the cap, the
//! eviction rules of [`super::eviction`] choose who makes room. Query
//! clients have a small reserve apart from the peers, so no flood of peer
//! connections can keep `ourcoin-cli` out, and they are closed when idle.
//!
//! Pure: the clock is an argument; the event loop carries out the actions.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use super::addrbook::{endpoint_of, Group, Reach};
use super::eviction::{self, Candidate};

/// Connections not yet known as peers or query clients, at most, and from one address.
pub const PENDING_MAX: usize = 32;
pub const PENDING_PER_IP: usize = 4;
/// How long a connection may stay unknown.
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(10);
/// Query clients at once, and how long one may stay idle.
pub const QUERY_RESERVE: usize = 8;
pub const QUERY_IDLE: Duration = Duration::from_secs(30);
/// How long a connection Kademlia opened for a lookup is kept.
pub const TRANSIENT_LIFETIME: Duration = Duration::from_secs(8);
/// Inbound peers from one non-loopback address (Zebra's default is one).
pub const MAX_INBOUND_PER_IP: usize = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pending,
    Peer,
    Query,
    Transient,
    /// Being closed: counted as nothing.
    Closing,
}

#[derive(Clone, Debug)]
pub struct Connection {
    pub peer: PeerId,
    pub direction: Direction,
    pub addr: Multiaddr,
    pub ip: Option<IpAddr>,
    pub kind: Kind,
    pub since: Instant,
    pub last_active: Instant,
    /// Asked for by the operator: never evicted.
    pub manual: bool,
}

/// What the node has learnt of a peer, for eviction and for `peers`.
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    pub agent: Option<String>,
    pub ping: Option<Duration>,
    pub last_block: Option<Instant>,
    pub last_tx: Option<Instant>,
    pub score: f64,
    pub listen_addrs: Vec<Multiaddr>,
}

/// A connection just established, as the event loop saw it.
#[derive(Clone, Debug)]
pub struct Opened {
    pub peer: PeerId,
    pub direction: Direction,
    /// Its remote address.
    pub addr: Multiaddr,
    /// We dialled it for a peer slot, or the operator asked for it.
    pub intended: bool,
    /// The operator asked for it: never evicted.
    pub manual: bool,
}

/// What the event loop must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Close {
        connection: ConnectionId,
        peer: PeerId,
        why: &'static str,
    },
    /// The peer's first connection as a peer: the node hears of it.
    PeerUp {
        peer: PeerId,
        addr: Multiaddr,
        direction: Direction,
    },
    /// Its last one closed.
    PeerDown {
        peer: PeerId,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Peer connections in all (`--max-connections`).
    pub max_connections: usize,
    /// Outbound peers the node keeps (`--outbound-peers`).
    pub outbound_target: usize,
}

impl Limits {
    pub fn max_inbound(&self) -> usize {
        self.max_connections.saturating_sub(self.outbound_target)
    }
}

pub struct PeerSet {
    limits: Limits,
    connections: HashMap<ConnectionId, Connection>,
    info: HashMap<PeerId, PeerInfo>,
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    endpoint_of(addr).map(|(endpoint, _)| endpoint.ip())
}

/// The older of two connections of a peer; of two opened at the same
/// instant, the outbound one (the one we chose).
fn first_of<'a>(
    a: (ConnectionId, &'a Connection),
    b: (ConnectionId, &'a Connection),
) -> (ConnectionId, &'a Connection) {
    let key = |(_, c): (ConnectionId, &Connection)| (c.since, c.direction == Direction::Inbound);
    if key(b) < key(a) {
        b
    } else {
        a
    }
}

fn counts_per_ip(ip: Option<IpAddr>) -> Option<IpAddr> {
    ip.filter(|ip| Reach::of(*ip) != Reach::Loopback)
}

impl PeerSet {
    pub fn new(limits: Limits) -> PeerSet {
        PeerSet { limits, connections: HashMap::new(), info: HashMap::new() }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn connection(&self, id: ConnectionId) -> Option<&Connection> {
        self.connections.get(&id)
    }

    pub fn info_mut(&mut self, peer: &PeerId) -> Option<&mut PeerInfo> {
        self.info.get_mut(peer)
    }

    fn is_peer(&self, peer: &PeerId) -> bool {
        self.connections.values().any(|c| c.peer == *peer && c.kind == Kind::Peer)
    }

    /// Each peer (not a client, not a lookup) with its first peer
    /// connection, the one that made it a peer: its direction is the
    /// peer's, whatever further connections the two sides open. (A peer we
    /// dialled may dial us back, and Kademlia may dial an inbound peer for a
    /// lookup; counted by their later connections, one peer would take a
    /// slot of each kind, and a flood that we also dial would pass the
    /// inbound cap.)
    fn first_connections(&self) -> HashMap<PeerId, (ConnectionId, &Connection)> {
        let mut first: HashMap<PeerId, (ConnectionId, &Connection)> = HashMap::new();
        for (id, c) in self.connections.iter().filter(|(_, c)| c.kind == Kind::Peer) {
            first.entry(c.peer).and_modify(|f| *f = first_of(*f, (*id, c))).or_insert((*id, c));
        }
        first
    }

    /// Peers, with their first peer connection, oldest first.
    pub fn peers(&self) -> Vec<(&PeerId, &Connection, Option<&PeerInfo>)> {
        let mut peers: Vec<_> =
            self.first_connections().into_values().map(|(_, c)| (&c.peer, c, self.info.get(&c.peer))).collect();
        peers.sort_by_key(|(_, c, _)| c.since);
        peers
    }

    pub fn peer_count(&self, direction: Direction) -> usize {
        self.first_connections().values().filter(|(_, c)| c.direction == direction).count()
    }

    /// Whether any connection to `peer` is open, of any kind.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.connections.values().any(|c| c.peer == *peer)
    }

    /// The network groups of our outbound peers.
    pub fn outbound_groups(&self) -> HashSet<Group> {
        self.first_connections()
            .values()
            .filter(|(_, c)| c.direction == Direction::Outbound)
            .filter_map(|(_, c)| c.ip.map(Group::of))
            .collect()
    }

    /// Connections from `ip` (of any peer).
    pub fn connections_from(&self, ip: IpAddr) -> Vec<(ConnectionId, PeerId)> {
        self.connections.iter().filter(|(_, c)| c.ip == Some(ip)).map(|(id, c)| (*id, c.peer)).collect()
    }

    /// A connection is up.
    pub fn established(&mut self, id: ConnectionId, opened: Opened, now: Instant) -> Vec<Action> {
        let Opened { peer, direction, addr, intended, manual } = opened;
        let was_peer = self.is_peer(&peer);
        // A peer's further connection is the peer's too: requests may travel
        // on any of them, so it is never closed as a stranger's would be.
        let kind = match direction {
            _ if was_peer => Kind::Peer,
            Direction::Outbound if intended => Kind::Peer,
            Direction::Outbound => Kind::Transient,
            Direction::Inbound => Kind::Pending,
        };
        let ip = ip_of(&addr);
        let connection =
            Connection { peer, direction, addr: addr.clone(), ip, kind, since: now, last_active: now, manual };
        self.connections.insert(id, connection);
        self.info.entry(peer).or_default();
        let mut actions = Vec::new();
        match kind {
            Kind::Peer if !was_peer => actions.push(Action::PeerUp { peer, addr, direction }),
            Kind::Pending => {
                if let Some(ip) = counts_per_ip(ip) {
                    let from_ip = self.pending().filter(|(_, c)| c.ip == Some(ip)).count();
                    if from_ip > PENDING_PER_IP {
                        actions.extend(self.close(id, "too many unidentified connections from its address"));
                        return actions;
                    }
                }
                if self.pending().count() > PENDING_MAX {
                    if let Some(oldest) = self.pending().min_by_key(|(_, c)| c.since).map(|(id, _)| id) {
                        actions.extend(self.close(oldest, "unidentified for too long while others wait"));
                    }
                }
            }
            _ => {}
        }
        actions
    }

    fn pending(&self) -> impl Iterator<Item = (ConnectionId, &Connection)> {
        self.connections.iter().filter(|(_, c)| c.kind == Kind::Pending).map(|(id, c)| (*id, c))
    }

    /// Marks a connection closed, for the event loop to close it (a
    /// connection is forgotten only once the swarm says it closed).
    fn close(&mut self, id: ConnectionId, why: &'static str) -> Vec<Action> {
        let Some(connection) = self.connections.get_mut(&id) else { return Vec::new() };
        let peer = connection.peer;
        let was_peer = connection.kind == Kind::Peer;
        connection.kind = Kind::Closing;
        let mut actions = vec![Action::Close { connection: id, peer, why }];
        if was_peer && !self.is_peer(&peer) {
            actions.push(Action::PeerDown { peer });
        }
        actions
    }

    /// The connection asked for sync: a node of ours wants it as a peer.
    pub fn promote(&mut self, id: ConnectionId, now: Instant) -> Vec<Action> {
        let Some(connection) = self.connections.get(&id) else { return Vec::new() };
        if connection.kind != Kind::Pending {
            return Vec::new();
        }
        let (peer, ip, addr) = (connection.peer, connection.ip, connection.addr.clone());
        if let Some(ip) = counts_per_ip(ip) {
            let from_ip = self
                .connections
                .values()
                .filter(|c| c.kind == Kind::Peer && c.direction == Direction::Inbound && c.ip == Some(ip))
                .filter(|c| c.peer != peer)
                .count();
            if from_ip >= MAX_INBOUND_PER_IP {
                return self.close(id, "too many peers from its address");
            }
        }
        let was_peer = self.is_peer(&peer);
        let mut actions = Vec::new();
        if self.peer_count(Direction::Inbound) >= self.limits.max_inbound() && !was_peer {
            match self.eviction_choice(now) {
                Some(victim) => actions.extend(self.close_peer_of(victim, "evicted to make room for a newcomer")),
                None => return self.close(id, "inbound slots full"),
            }
        }
        if let Some(connection) = self.connections.get_mut(&id) {
            connection.kind = Kind::Peer;
            connection.last_active = now;
        }
        for other in self.connections.values_mut() {
            if other.peer == peer && matches!(other.kind, Kind::Pending | Kind::Transient) {
                other.kind = Kind::Peer;
            }
        }
        if !was_peer {
            actions.push(Action::PeerUp { peer, addr, direction: Direction::Inbound });
        }
        actions
    }

    /// A connection of the inbound peer to close to make room, if any may go.
    fn eviction_choice(&self, now: Instant) -> Option<ConnectionId> {
        let candidates = self
            .first_connections()
            .into_values()
            .filter(|(_, c)| c.direction == Direction::Inbound && !c.manual)
            .map(|(id, c)| {
                let info = self.info.get(&c.peer);
                let ago = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
                Candidate {
                    id,
                    group: c.ip.map(Group::of).unwrap_or(Group([0; 5])),
                    connected: now.saturating_duration_since(c.since),
                    ping: info.and_then(|i| i.ping),
                    last_block: ago(info.and_then(|i| i.last_block)),
                    last_tx: ago(info.and_then(|i| i.last_tx)),
                }
            })
            .collect();
        eviction::choose(candidates)
    }

    /// A query arrived on this connection from an address `--query-allow`
    /// admits. An unknown connection becomes a query client; the reserve
    /// keeps the most recently active ones.
    pub fn query(&mut self, id: ConnectionId, now: Instant) -> Vec<Action> {
        let Some(connection) = self.connections.get_mut(&id) else { return Vec::new() };
        connection.last_active = now;
        if connection.kind != Kind::Pending {
            return Vec::new();
        }
        connection.kind = Kind::Query;
        let clients: Vec<(ConnectionId, Instant)> = self
            .connections
            .iter()
            .filter(|(other, c)| c.kind == Kind::Query && **other != id)
            .map(|(other, c)| (*other, c.last_active))
            .collect();
        if clients.len() >= QUERY_RESERVE {
            if let Some((idle, _)) = clients.iter().min_by_key(|(_, at)| *at) {
                return self.close(*idle, "the query reserve is full; the least recently active client goes");
            }
        }
        Vec::new()
    }

    /// The swarm closed a connection.
    pub fn closed(&mut self, id: ConnectionId) -> Vec<Action> {
        let Some(connection) = self.connections.remove(&id) else { return Vec::new() };
        let peer = connection.peer;
        let mut actions = Vec::new();
        if connection.kind == Kind::Peer && !self.is_peer(&peer) {
            actions.push(Action::PeerDown { peer });
        }
        if !self.connections.values().any(|c| c.peer == peer) {
            self.info.remove(&peer);
        }
        actions
    }

    /// Closes what waited too long: unknown connections, idle clients, lookups.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let due: Vec<(ConnectionId, &'static str)> = self
            .connections
            .iter()
            .filter_map(|(id, c)| {
                let age = now.saturating_duration_since(c.since);
                let idle = now.saturating_duration_since(c.last_active);
                match c.kind {
                    Kind::Pending if age >= PENDING_TIMEOUT => Some((*id, "did not identify in time")),
                    Kind::Query if idle >= QUERY_IDLE => Some((*id, "idle query client")),
                    Kind::Transient if age >= TRANSIENT_LIFETIME => Some((*id, "lookup done")),
                    _ => None,
                }
            })
            .collect();
        let mut actions: Vec<Action> = due.into_iter().flat_map(|(id, why)| self.close(id, why)).collect();
        // A peer we dialled that dialled us back is inbound once our
        // connection closes, and may find the inbound slots full.
        if self.peer_count(Direction::Inbound) > self.limits.max_inbound() {
            if let Some(victim) = self.eviction_choice(now) {
                actions.extend(self.close_peer_of(victim, "inbound slots over the cap"));
            }
        }
        actions
    }

    /// Closes every open connection of the peer of connection `id`.
    fn close_peer_of(&mut self, id: ConnectionId, why: &'static str) -> Vec<Action> {
        let Some(peer) = self.connections.get(&id).map(|c| c.peer) else { return Vec::new() };
        let all: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.peer == peer && c.kind != Kind::Closing)
            .map(|(id, _)| *id)
            .collect();
        all.into_iter().flat_map(|connection| self.close(connection, why)).collect()
    }
}

#[cfg(test)]
mod tests;
