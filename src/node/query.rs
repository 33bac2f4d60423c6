//! Serving `ourcoin-cli`: submissions change state and are handled here;
//! reads are answered by `rpc::handler` from the chain and the mempool; the
//! status is also kept on the board the network answers `status` from.

use libp2p::request_response::ResponseChannel;

use super::Node;
use crate::network::Command;
use crate::rpc::handler::{answer, status_reply, NetworkInfo};
use crate::rpc::{QueryRequest, QueryResponse, SubmitReply};

impl Node {
    pub(super) fn network_info(&self) -> NetworkInfo {
        NetworkInfo {
            peer_id: self.client.peer_id.to_string(),
            listen_addrs: self.listen_addrs.iter().map(|a| a.to_string()).collect(),
            // Only peers that speak the sync protocol are nodes.
            peers: self.peers.values().filter(|state| state.status.is_some()).count() as u64,
            mining: self.miner.is_some(),
            signature_cache_hit_ratio: self.signature_cache.stats().hit_ratio(),
            compact_blocks: self.compact.stats,
            best_known_height: self
                .peers
                .values()
                .filter_map(|p| p.status.map(|s| s.height))
                .max()
                .unwrap_or(0)
                .max(self.sync.machine.header_height()),
        }
    }

    /// Puts the current status on the board the network answers `status` from.
    pub(super) fn publish_status(&mut self) {
        self.status_published = (std::time::Instant::now(), self.chain.tip());
        let status = status_reply(&self.chain, &self.mempool, &self.network_info());
        self.update_metrics(status.best_known_height);
        match self.status_board.lock() {
            Ok(mut board) => *board = status,
            Err(poisoned) => *poisoned.into_inner() = status,
        }
    }

    pub(super) fn serve_query(&mut self, request: QueryRequest, channel: ResponseChannel<QueryResponse>) {
        let response = match request {
            QueryRequest::Submit(stx) => {
                let txid = stx.txid();
                match self.admit_transaction(stx) {
                    Ok((ready, promoted)) => {
                        let mut publish = promoted;
                        if ready {
                            publish.push(txid);
                        }
                        self.publish_transactions(&publish);
                        tracing::info!(%txid, "transaction submitted");
                        QueryResponse::Submitted(SubmitReply { txid: txid.to_string() })
                    }
                    Err(e) => QueryResponse::Error(format!("transaction refused: {e}")),
                }
            }
            QueryRequest::EstimateFee { blocks } => self.estimate_fee(blocks),
            QueryRequest::ChainInfo => self.chain_info(),
            QueryRequest::MiningInfo => self.mining_info(),
            other => answer(&self.chain, &self.mempool, &self.network_info(), &other),
        };
        self.command(Command::RespondQuery { channel, response });
    }
}
