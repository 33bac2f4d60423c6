//! The door of the swarm: connections from banned addresses are refused
//! before their handshake costs us anything, one address may hold only a few
//! handshakes open at once (loopback apart), and banned peer ids are refused
//! once they show them. The event loop keeps the lists current from
//! [`super::bans::Bans`].

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent,
    ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use super::addrbook::{canonical, endpoint_of, Reach};

/// Inbound handshakes one non-loopback address may have under way.
pub const MAX_HANDSHAKES_PER_IP: usize = 8;

#[derive(Default)]
pub struct Gate {
    ips: HashSet<IpAddr>,
    peers: HashSet<PeerId>,
    /// Inbound handshakes under way, and their count per address.
    handshaking: HashMap<ConnectionId, IpAddr>,
    per_ip: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
pub struct Banned(String);

impl fmt::Display for Banned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is banned", self.0)
    }
}

impl std::error::Error for Banned {}

impl Gate {
    pub fn set(&mut self, peers: HashSet<PeerId>, ips: HashSet<IpAddr>) {
        self.peers = peers;
        self.ips = ips;
    }

    fn check_peer(&self, peer: &PeerId) -> Result<(), ConnectionDenied> {
        if self.peers.contains(peer) {
            return Err(ConnectionDenied::new(Banned(peer.to_string())));
        }
        Ok(())
    }

    fn handshake_done(&mut self, id: ConnectionId) {
        if let Some(ip) = self.handshaking.remove(&id) {
            if let Some(count) = self.per_ip.get_mut(&ip) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.per_ip.remove(&ip);
                }
            }
        }
    }

    fn check_addr(&self, addr: &Multiaddr) -> Result<(), ConnectionDenied> {
        if let Some((endpoint, _)) = endpoint_of(addr) {
            if self.ips.contains(&canonical(endpoint.ip())) {
                return Err(ConnectionDenied::new(Banned(endpoint.ip().to_string())));
            }
        }
        Ok(())
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.check_addr(remote)?;
        if let Some((endpoint, _)) = endpoint_of(remote) {
            let ip = canonical(endpoint.ip());
            if Reach::of(ip) != Reach::Loopback {
                let count = self.per_ip.entry(ip).or_default();
                if *count >= MAX_HANDSHAKES_PER_IP {
                    return Err(ConnectionDenied::new(Banned(format!("{ip} (too many handshakes at once)"))));
                }
                *count += 1;
                self.handshaking.insert(id, ip);
            }
        }
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.handshake_done(id);
        self.check_peer(&peer)?;
        self.check_addr(remote)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if let Some(peer) = peer {
            self.check_peer(&peer)?;
        }
        Ok(vec![])
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check_peer(&peer)?;
        self.check_addr(addr)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ListenFailure(failure) => self.handshake_done(failure.connection_id),
            FromSwarm::ConnectionEstablished(established) => self.handshake_done(established.connection_id),
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(ip: &str) -> Multiaddr {
        format!("/ip4/{ip}/tcp/40000").parse().unwrap()
    }

    #[test]
    fn banned_addresses_are_refused_and_one_address_holds_few_handshakes() {
        let mut gate = Gate::default();
        let local = remote("0.0.0.0");
        gate.set(HashSet::new(), HashSet::from(["9.9.9.9".parse().unwrap()]));
        assert!(gate
            .handle_pending_inbound_connection(ConnectionId::new_unchecked(1), &local, &remote("9.9.9.9"))
            .is_err());
        for i in 0..MAX_HANDSHAKES_PER_IP {
            let id = ConnectionId::new_unchecked(10 + i);
            assert!(gate.handle_pending_inbound_connection(id, &local, &remote("8.8.8.8")).is_ok());
        }
        let extra = ConnectionId::new_unchecked(100);
        assert!(gate.handle_pending_inbound_connection(extra, &local, &remote("8.8.8.8")).is_err());
        // Loopback is the owner's machine: not limited here.
        for i in 0..50 {
            let id = ConnectionId::new_unchecked(200 + i);
            assert!(gate.handle_pending_inbound_connection(id, &local, &remote("127.0.0.1")).is_ok());
        }
        // A finished handshake frees its place.
        gate.handshake_done(ConnectionId::new_unchecked(10));
        assert!(gate.handle_pending_inbound_connection(extra, &local, &remote("8.8.8.8")).is_ok());
        let peer = PeerId::random();
        gate.set(HashSet::from([peer]), HashSet::new());
        assert!(gate.check_peer(&peer).is_err());
        assert!(gate.check_peer(&PeerId::random()).is_ok());
    }
}
