//! The mempool exchange: on connecting, peers trade the ids of their pending
//! payments, then each asks for those it lacks; after a reorg a node
//! announces the payments that came back. Every transaction a peer sends us
//! here must be one we asked that peer for, each peer has a bounded number of
//! ids in flight, and the replies go through the batched admission path, so
//! invented ids cost the announcer a request budget and bad signatures cost
//! it its score, never a free pairing of ours.

use std::collections::{HashMap, HashSet, VecDeque};

use libp2p::PeerId;

use super::gossip::BATCH_MAX;
use super::{unix_now, Asked, Node};
use crate::consensus::verdict::{verdict_for_transaction, Verdict, PENALTY_MALFORMED};
use crate::network::protocol::{SyncRequest, MAX_MEMPOOL_TXS};
use crate::state::Account;
use crate::types::{SignedTransaction, Txid};

/// Ids waiting to be asked of one peer at most, besides those in flight;
/// announcements past this are dropped (the peer can announce them again).
pub const MAX_QUEUED_IDS: usize = 4 * MAX_MEMPOOL_TXS;

/// What we have asked each peer for and not yet received.
#[derive(Debug, Default)]
pub(super) struct MempoolExchange {
    peers: HashMap<PeerId, PeerExchange>,
}

#[derive(Debug, Default)]
struct PeerExchange {
    /// Whether a `MempoolTxs` request to the peer is on its way.
    in_flight: bool,
    /// Ids to ask next, oldest first, without repeats.
    queued: VecDeque<Txid>,
    queued_set: HashSet<Txid>,
}

impl MempoolExchange {
    /// Queues `ids` for `peer` within its bound; returns the next request to
    /// send, if none is in flight.
    fn queue(&mut self, peer: PeerId, ids: impl IntoIterator<Item = Txid>) -> Option<Vec<Txid>> {
        let state = self.peers.entry(peer).or_default();
        for id in ids {
            if state.queued.len() >= MAX_QUEUED_IDS {
                break;
            }
            if state.queued_set.insert(id) {
                state.queued.push_back(id);
            }
        }
        Self::next_request(state)
    }

    fn next_request(state: &mut PeerExchange) -> Option<Vec<Txid>> {
        if state.in_flight || state.queued.is_empty() {
            return None;
        }
        let take = state.queued.len().min(MAX_MEMPOOL_TXS);
        let ids: Vec<Txid> = state.queued.drain(..take).collect();
        for id in &ids {
            state.queued_set.remove(id);
        }
        state.in_flight = true;
        Some(ids)
    }

    /// The peer's request was answered (or failed): the next one, if any.
    pub(super) fn answered(&mut self, peer: &PeerId) -> Option<Vec<Txid>> {
        let state = self.peers.get_mut(peer)?;
        state.in_flight = false;
        Self::next_request(state)
    }

    pub(super) fn forget(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }
}

impl Node {
    pub(super) fn ask_mempool_ids(&mut self, peer: PeerId) {
        self.request(peer, SyncRequest::MempoolIds, Asked::MempoolIds);
    }

    pub(super) fn handle_mempool_ids(&mut self, peer: PeerId, ids: Vec<Txid>) {
        self.ask_missing_txs(peer, ids);
    }

    /// Asks `peer` for those of `ids` that we lack, within its bound.
    pub(super) fn ask_missing_txs(&mut self, peer: PeerId, ids: Vec<Txid>) {
        let missing = ids.into_iter().filter(|id| !self.mempool.contains(id));
        if let Some(next) = self.mempool_exchange.queue(peer, missing) {
            self.send_mempool_request(peer, next);
        }
    }

    fn send_mempool_request(&mut self, peer: PeerId, ids: Vec<Txid>) {
        self.request(peer, SyncRequest::MempoolTxs(ids.clone()), Asked::MempoolTxs(ids));
    }

    /// Transactions `peer` sent for our request for `asked`: anything we did
    /// not ask for is an offence and the whole reply is dropped; the rest is
    /// admitted in signature batches, and a bad signature (which does not
    /// depend on our chain state) costs the sender as it would on gossip.
    /// A `MempoolTxs` request to `peer` is over (answered or failed): the next one, if any.
    pub(super) fn mempool_request_done(&mut self, peer: PeerId) {
        if let Some(next) = self.mempool_exchange.answered(&peer) {
            self.send_mempool_request(peer, next);
        }
    }

    pub(super) fn handle_mempool_txs(&mut self, peer: PeerId, asked: &[Txid], txs: Vec<SignedTransaction>) {
        self.mempool_request_done(peer);
        let asked: HashSet<&Txid> = asked.iter().collect();
        let mut seen = HashSet::new();
        if !txs.iter().all(|stx| {
            let txid = stx.txid();
            asked.contains(&txid) && seen.insert(txid)
        }) {
            self.penalize(peer, PENALTY_MALFORMED, "sent pending transactions it was not asked for");
            return;
        }
        let mut accepted = Vec::new();
        for chunk in txs.chunks(BATCH_MAX) {
            if !self.peers.contains_key(&peer) {
                // Banned (or gone) during the reply: the rest is not worth a pairing.
                break;
            }
            let items: Vec<(SignedTransaction, Account)> =
                chunk.iter().map(|stx| (*stx, self.account(&stx.tx.sender_address()))).collect();
            let results = self.mempool.add_batch(items, unix_now());
            for (stx, result) in chunk.iter().zip(results) {
                match result {
                    Ok(added) => {
                        self.template_dirty = true;
                        if added.ready {
                            accepted.push(stx.txid());
                        }
                        accepted.extend(added.promoted);
                    }
                    Err(e) => {
                        if let Verdict::Reject { penalty } = verdict_for_transaction(&e) {
                            self.penalize(peer, penalty, "sent an invalid pending transaction");
                        }
                    }
                }
            }
        }
        if !accepted.is_empty() {
            tracing::info!(%peer, transactions = accepted.len(), "received pending transactions");
            self.publish_transactions(&accepted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Txid {
        Txid(crate::types::Hash256([n; 32]))
    }

    #[test]
    fn one_request_in_flight_per_peer_and_a_bounded_queue() {
        let mut exchange = MempoolExchange::default();
        let peer = PeerId::random();
        let first = exchange.queue(peer, [id(1), id(2)]).expect("a first request");
        assert_eq!(first, vec![id(1), id(2)]);
        assert_eq!(exchange.queue(peer, [id(3), id(3)]), None, "one in flight at a time");
        assert_eq!(exchange.answered(&peer), Some(vec![id(3)]), "repeats are asked once");
        assert_eq!(exchange.answered(&peer), None);

        let many: Vec<Txid> = (0..(MAX_QUEUED_IDS + MAX_MEMPOOL_TXS) as u32)
            .map(|n| {
                let mut bytes = [0u8; 32];
                bytes[..4].copy_from_slice(&n.to_le_bytes());
                Txid(crate::types::Hash256(bytes))
            })
            .collect();
        let other = PeerId::random();
        let sent = exchange.queue(other, many).expect("a request");
        assert_eq!(sent.len(), MAX_MEMPOOL_TXS);
        let queued = exchange.peers.get(&other).map(|p| p.queued.len()).unwrap_or(0);
        assert!(queued <= MAX_QUEUED_IDS, "{queued} ids queued");
        exchange.forget(&other);
        assert!(!exchange.peers.contains_key(&other));
    }
}
