//! The door of the swarm: connections from banned addresses are refused
//! before their handshake costs us anything, and banned peer ids are refused
//! once they show them. The event loop keeps the lists current from
//! [`super::bans::Bans`].

use std::collections::HashSet;
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

use super::addrbook::{canonical, endpoint_of};

#[derive(Default)]
pub struct Gate {
    ips: HashSet<IpAddr>,
    peers: HashSet<PeerId>,
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
        _: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.check_addr(remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
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

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
