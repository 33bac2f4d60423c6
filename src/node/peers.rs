//! Who is connected, what they told us, and what they cost: scores lowered
//! by invalid data, bans when a score falls too far. Which peers to keep is
//! the network layer's choice (`network::peer_set`, `network::manage`).

use std::time::{Duration, Instant};

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::{Multiaddr, PeerId};

use super::{Asked, Node};
use crate::consensus::verdict::Verdict;
use crate::network::protocol::{ChainStatus, SyncRequest};
use crate::network::Command;

/// What the node knows of one connected peer.
#[derive(Debug, Default)]
pub(super) struct PeerState {
    pub(super) addr: Option<Multiaddr>,
    pub(super) status: Option<ChainStatus>,
}

/// A peer whose score falls to minus this is banned (five plainly invalid messages).
pub const BAN_SCORE: i64 = 500;
/// How long a ban lasts.
pub const BAN_DURATION: Duration = Duration::from_secs(3_600);

impl Node {
    pub(super) fn on_peer_connected(&mut self, peer: PeerId, addr: Multiaddr) {
        tracing::debug!(%peer, %addr, "connection opened");
        self.peers.entry(peer).or_default().addr = Some(addr);
        let status = self.status();
        self.request(peer, SyncRequest::Status(status), Asked::Status { first: true });
    }

    pub(super) fn on_peer_disconnected(&mut self, peer: PeerId) {
        if self.peers.remove(&peer).is_some_and(|state| state.status.is_some()) {
            tracing::info!(%peer, "peer disconnected");
        }
        self.mempool_exchange.forget(&peer);
        self.on_sync_peer_gone(peer);
    }

    /// Tells gossipsub what we made of a message, and penalises its sender for invalid data.
    pub(super) fn report(&mut self, id: MessageId, source: PeerId, verdict: Verdict) {
        let acceptance = match verdict {
            Verdict::Accept => MessageAcceptance::Accept,
            Verdict::Ignore => MessageAcceptance::Ignore,
            Verdict::Reject { .. } => MessageAcceptance::Reject,
        };
        self.command(Command::ReportValidation { id, source, acceptance });
        if let Verdict::Reject { penalty } = verdict {
            self.penalize(source, penalty, "sent invalid data");
        }
    }

    /// Lowers a peer's score; bans it once the score reaches `-BAN_SCORE`.
    pub(super) fn penalize(&mut self, peer: PeerId, penalty: u32, why: &str) {
        let score = self.scores.entry(peer).or_insert(0);
        *score = score.saturating_sub(i64::from(penalty));
        let score = *score;
        tracing::info!(%peer, score, "peer penalised: {why}");
        self.command(Command::SetScore { peer, score: score as f64 });
        if score <= -BAN_SCORE {
            self.scores.remove(&peer);
            self.peers.remove(&peer);
            self.mempool_exchange.forget(&peer);
            self.on_sync_peer_gone(peer);
            self.command(Command::Ban { peer, duration: BAN_DURATION });
        }
    }

    /// Scores drift back toward zero: old offences fade.
    pub(super) fn decay_scores(&mut self) {
        self.last_score_decay = Instant::now();
        for score in self.scores.values_mut() {
            *score -= *score / 10;
        }
        self.scores.retain(|_, score| *score != 0);
    }

    /// Peers that speak the sync protocol (a connected `ourcoin-cli` is not a peer).
    pub(super) fn sync_peers(&self) -> Vec<PeerId> {
        self.peers.iter().filter(|(_, s)| s.status.is_some()).map(|(p, _)| *p).collect()
    }
}
