//! Answers the read-only queries from the chain, the mempool and what the
//! network layer knows. Submissions change state and are the node's to handle.

use crate::chain::{Chain, ChainStore, StoreError};
use crate::crypto::Target;
use crate::mempool::Mempool;
use crate::types::{Address, Block, Network, SignedTransaction, Txid};

use super::{
    BalanceReply, BlockId, BlockReply, HistoryEntry, HistoryReply, MempoolReply, QueryRequest, QueryResponse,
    StatusReply, TxReply, MAX_LIST_LIMIT,
};

/// What the network layer contributes to the answers.
#[derive(Clone, Debug, Default)]
pub struct NetworkInfo {
    pub peer_id: String,
    pub listen_addrs: Vec<String>,
    /// Peers that speak the sync protocol.
    pub peers: u64,
    pub mining: bool,
    pub best_known_height: u64,
    pub signature_cache_hit_ratio: Option<f64>,
    pub compact_blocks: super::CompactBlockStats,
}

/// Answers one query. `Submit` is refused here: the node handles it.
pub fn answer<S: ChainStore>(
    chain: &Chain<S>,
    mempool: &Mempool,
    net: &NetworkInfo,
    request: &QueryRequest,
) -> QueryResponse {
    let result = match request {
        QueryRequest::Status => Ok(QueryResponse::Status(status_reply(chain, mempool, net))),
        QueryRequest::Balance { address } => balance(chain, mempool, address).map(QueryResponse::Balance),
        QueryRequest::History { address, limit } => {
            history(chain, mempool, address, (*limit).min(MAX_LIST_LIMIT) as usize).map(QueryResponse::History)
        }
        QueryRequest::Block(id) => block(chain, id),
        QueryRequest::Tx(txid) => tx(chain, mempool, txid),
        // The network layer answers these itself: it knows the connections and holds the bans.
        QueryRequest::Peers | QueryRequest::Node { .. } => {
            Ok(QueryResponse::Error("answered by the network layer, not here".into()))
        }
        QueryRequest::Mempool { limit } => Ok(QueryResponse::Mempool(MempoolReply {
            count: mempool.len() as u64,
            bytes: mempool.bytes() as u64,
            min_fee: mempool.min_fee().0,
            txids: mempool.txids((*limit).min(MAX_LIST_LIMIT) as usize).iter().map(Txid::to_string).collect(),
        })),
        QueryRequest::Submit(_) => Ok(QueryResponse::Error("submissions are handled by the node".into())),
        QueryRequest::EstimateFee { .. } | QueryRequest::ChainInfo | QueryRequest::MiningInfo => {
            Ok(QueryResponse::Error("the node answers this itself".into()))
        }
    };
    result.unwrap_or_else(|e| QueryResponse::Error(format!("the node's database failed: {e}")))
}

/// The node's status, as `status` shows it.
pub fn status_reply<S: ChainStore>(chain: &Chain<S>, mempool: &Mempool, net: &NetworkInfo) -> StatusReply {
    StatusReply {
        network: chain.params().network.to_string(),
        peer_id: net.peer_id.clone(),
        listen_addrs: net.listen_addrs.clone(),
        height: chain.height(),
        tip: chain.tip().to_string(),
        work: hex::encode(chain.tip_work().to_be_bytes()),
        peers: net.peers,
        mempool: mempool.len() as u64,
        mining: net.mining,
        best_known_height: net.best_known_height.max(chain.height()),
        signature_cache_hit_ratio: net.signature_cache_hit_ratio,
        compact_blocks: net.compact_blocks,
    }
}

fn balance<S: ChainStore>(chain: &Chain<S>, mempool: &Mempool, address: &Address) -> Result<BalanceReply, StoreError> {
    let account = chain.account(address)?;
    let (incoming, outgoing) = mempool.pending_for(address);
    let pending = account.balance.0.saturating_add(incoming.0).saturating_sub(outgoing.0);
    Ok(BalanceReply {
        address: address.encode(chain.params().network),
        confirmed: account.balance.0,
        immature: account.immature.0,
        pending,
        nonce: account.nonce,
        next_nonce: mempool.next_nonce(address, account.nonce),
    })
}

fn confirmations<S: ChainStore>(chain: &Chain<S>, height: u64) -> u64 {
    chain.height().saturating_add(1).saturating_sub(height)
}

fn pending_entry(network: Network, stx: &SignedTransaction) -> HistoryEntry {
    HistoryEntry {
        txid: stx.txid().to_string(),
        from: Some(stx.tx.sender_address().encode(network)),
        to: stx.tx.recipient.encode(network),
        amount: stx.tx.amount.0,
        fee: stx.tx.fee.0,
        height: None,
        confirmations: 0,
    }
}

/// The entry at `index` of a block (0 is the coinbase) as a history line.
fn confirmed_entry(network: Network, block: &Block, index: usize, confirmations: u64) -> Option<HistoryEntry> {
    if index == 0 {
        let cb = &block.body.coinbase;
        return Some(HistoryEntry {
            txid: cb.txid().to_string(),
            from: None,
            to: cb.recipient.encode(network),
            amount: cb.amount.0,
            fee: 0,
            height: Some(block.height()),
            confirmations,
        });
    }
    let tx = block.body.transactions.get(index - 1)?;
    Some(HistoryEntry {
        txid: tx.txid().to_string(),
        from: Some(tx.sender_address().encode(network)),
        to: tx.recipient.encode(network),
        amount: tx.amount.0,
        fee: tx.fee.0,
        height: Some(block.height()),
        confirmations,
    })
}

fn history<S: ChainStore>(
    chain: &Chain<S>,
    mempool: &Mempool,
    address: &Address,
    limit: usize,
) -> Result<HistoryReply, StoreError> {
    let network = chain.params().network;
    let mut transactions: Vec<HistoryEntry> = mempool
        .iter()
        .filter(|stx| stx.tx.recipient == *address || stx.tx.sender_address() == *address)
        .map(|stx| pending_entry(network, stx))
        .collect();
    // Newest first: pending ones before confirmed ones, the latest nonce first.
    transactions.reverse();
    transactions.truncate(limit);
    let remaining = limit.saturating_sub(transactions.len());
    // One block read at a time: entries of the same block come together in
    // the index, so the last block read is kept and nothing else (a history
    // of 100 entries in 100 full blocks must not hold 200 MiB).
    let mut current: Option<Block> = None;
    for (location, _txid) in chain.store().address_history(address, remaining)? {
        if current.as_ref().is_none_or(|b| b.hash() != location.block) {
            current = chain.block(&location.block)?;
        }
        let Some(block) = current.as_ref() else { continue };
        let confirmations = confirmations(chain, location.height);
        transactions.extend(confirmed_entry(network, block, location.index as usize, confirmations));
    }
    Ok(HistoryReply { address: address.encode(network), transactions })
}

fn block<S: ChainStore>(chain: &Chain<S>, id: &BlockId) -> Result<QueryResponse, StoreError> {
    let hash = match id {
        BlockId::Height(h) => chain.best_hash_at(*h),
        BlockId::Hash(hash) => chain.is_on_best_chain(hash).then_some(*hash),
    };
    let Some(block) = hash.map(|h| chain.block(&h)).transpose()?.flatten() else {
        let what = match id {
            BlockId::Height(h) => format!("no block at height {h} (the best chain's height is {})", chain.height()),
            BlockId::Hash(h) => format!("no block {h} on the best chain"),
        };
        return Ok(QueryResponse::Error(what));
    };
    let target = Target::from_compact(block.header.target).map(|t| t.to_hex()).unwrap_or_default();
    Ok(QueryResponse::Block(BlockReply {
        hash: block.hash().to_string(),
        height: block.height(),
        prev: block.header.prev.to_string(),
        time: block.header.time,
        target,
        nonce: block.header.nonce,
        txids: block.txids().iter().map(Txid::to_string).collect(),
        aggregate_signature: block.body.aggregate_signature.map(|s| s.to_hex()),
        confirmations: confirmations(chain, block.height()),
    }))
}

fn tx<S: ChainStore>(chain: &Chain<S>, mempool: &Mempool, txid: &Txid) -> Result<QueryResponse, StoreError> {
    let network = chain.params().network;
    if let Some(stx) = mempool.get(txid) {
        return Ok(QueryResponse::Tx(TxReply {
            txid: txid.to_string(),
            from: Some(stx.tx.sender_address().encode(network)),
            to: stx.tx.recipient.encode(network),
            amount: stx.tx.amount.0,
            fee: stx.tx.fee.0,
            nonce: Some(stx.tx.nonce),
            height: None,
            block: None,
            confirmations: 0,
        }));
    }
    let Some(location) = chain.store().tx_location(txid)? else {
        return Ok(QueryResponse::Error(format!("no transaction {txid} in the best chain or the mempool")));
    };
    let Some(block) = chain.block(&location.block)? else {
        return Ok(QueryResponse::Error(format!("the block of transaction {txid} is missing")));
    };
    let nonce = (location.index > 0)
        .then(|| block.body.transactions.get(location.index as usize - 1).map(|t| t.nonce))
        .flatten();
    let Some(entry) = confirmed_entry(network, &block, location.index as usize, confirmations(chain, location.height))
    else {
        return Ok(QueryResponse::Error(format!("transaction {txid} is not where the index says")));
    };
    Ok(QueryResponse::Tx(TxReply {
        txid: entry.txid,
        from: entry.from,
        to: entry.to,
        amount: entry.amount,
        fee: entry.fee,
        nonce,
        height: entry.height,
        block: Some(location.block.to_string()),
        confirmations: entry.confirmations,
    }))
}
