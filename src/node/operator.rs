//! What an operator asks of the node: `chaininfo`, `mininginfo` and
//! `estimatefee` (SPEC §7), and the samples they need (the miner's hash
//! counter, each recent block's cheapest payment, whether the initial sync
//! is over).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::notify::BlockNotify;
use super::{unix_now, Node};
use crate::chain::ChainUpdate;
use crate::crypto::{Target, Work};
use crate::mempool::estimate::{self, PAYMENTS_PER_BLOCK};
use crate::metrics::Metrics;
use crate::rpc::{ChainInfoReply, FeeEstimateReply, MiningInfoReply, QueryResponse, MAX_ESTIMATE_BLOCKS};
use crate::types::{Amount, BlockHash};

/// A tip younger than this ends the initial sync even with no peer to
/// compare with (bitcoind's `-maxtipage`).
const MAX_TIP_AGE_SECS: u64 = 24 * 60 * 60;
/// How many miner samples (one a second) the hash rate is averaged over.
const HASH_SAMPLES: usize = 30;
/// How many recent blocks `network_hashrate` spans.
const HASHRATE_BLOCKS: u64 = 120;
/// Blocks whose cheapest payment is remembered (enough for the widest window).
const FEE_CACHE_BLOCKS: usize = 1_000;

/// The operator views' state, kept by the node.
#[derive(Default)]
pub struct OperatorState {
    /// Latched false once the node has caught up (as bitcoind's IBD flag).
    sync_done: bool,
    hash_samples: VecDeque<(Instant, u64)>,
    /// Per block: the lowest fee among its payments (`None` without payments).
    lowest_fee: HashMap<BlockHash, Option<Amount>>,
    lowest_fee_order: VecDeque<BlockHash>,
    pub(super) metrics: Option<Arc<Metrics>>,
    blocknotify: Option<BlockNotify>,
}

/// A work value as a float (256 bits into an f64's 53).
pub fn work_to_f64(work: Work) -> f64 {
    work.to_be_bytes().iter().fold(0.0, |acc, b| acc * 256.0 + f64::from(*b))
}

impl Node {
    /// `--metrics` and `--blocknotify`: what the node reports to, and runs,
    /// as its chain moves.
    pub fn with_operator(mut self, metrics: Option<Arc<Metrics>>, blocknotify: Option<BlockNotify>) -> Node {
        self.operator.metrics = metrics;
        self.operator.blocknotify = blocknotify;
        self.publish_status();
        self
    }

    /// The gauges, from the node's state now (cheap: a few atomic stores);
    /// `best_known_height` is the one the status just published carries.
    pub(super) fn update_metrics(&self, best_known_height: u64) {
        let Some(metrics) = &self.operator.metrics else { return };
        let gauge = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        metrics.chain_height.set(i64::try_from(self.chain.height()).unwrap_or(i64::MAX));
        metrics.mempool_transactions.set(gauge(self.mempool.len()));
        metrics.mempool_bytes.set(gauge(self.mempool.bytes()));
        metrics.sync_progress.set(self.sync_progress_towards(best_known_height));
        if let Some(ratio) = self.signature_cache.stats().hit_ratio() {
            metrics.signature_cache_hit_ratio.set(ratio);
        }
    }

    /// One block's validation and storage took `took`.
    pub(super) fn observe_block_validation(&self, took: Duration) {
        if let Some(metrics) = &self.operator.metrics {
            metrics.block_validation_seconds.observe(took.as_secs_f64());
        }
    }

    /// The best chain moved: count it, and run `--blocknotify` for the new tip.
    pub(super) fn on_chain_update(&self, update: &ChainUpdate) {
        if let Some(metrics) = &self.operator.metrics {
            metrics.blocks_connected.inc_by(update.connected.len() as u64);
            if !update.disconnected.is_empty() {
                metrics.reorgs.inc();
            }
        }
        if let (Some(notify), Some(tip)) = (&self.operator.blocknotify, update.connected.last()) {
            notify.notify(&tip.hash());
        }
    }

    /// Called once a second: samples the miner and settles the sync flag.
    pub(super) fn operator_tick(&mut self) {
        if let Some((miner, _)) = &self.miner {
            let samples = &mut self.operator.hash_samples;
            samples.push_back((Instant::now(), miner.hashes()));
            while samples.len() > HASH_SAMPLES {
                samples.pop_front();
            }
        }
        self.initial_sync();
    }

    /// True until the node first catches up: its chain as high as the best
    /// header and every peer's announced height, once it has heard a peer or
    /// its tip is recent.
    pub(super) fn initial_sync(&mut self) -> bool {
        if !self.operator.sync_done {
            let height = self.chain.height();
            let caught_up = height >= self.network_info().best_known_height;
            let heard_a_peer = self.peers.values().any(|p| p.status.is_some());
            let tip_recent = unix_now().saturating_sub(self.chain.tip_header().time) < MAX_TIP_AGE_SECS;
            self.operator.sync_done = caught_up && (heard_a_peer || tip_recent);
        }
        !self.operator.sync_done
    }

    /// The best validated header's height: never below our own chain.
    fn headers_height(&self) -> u64 {
        self.sync.machine.header_height().max(self.chain.height())
    }

    /// `sync_progress`: the chain's height over the best header's (or the
    /// best height a peer announced, when higher).
    fn sync_progress_towards(&self, best_known_height: u64) -> f64 {
        let headers = self.headers_height().max(best_known_height);
        if headers == 0 {
            return 1.0;
        }
        (self.chain.height() as f64 / headers as f64).min(1.0)
    }

    /// 1 at the proof-of-work limit.
    fn difficulty(&self) -> f64 {
        let work_of = |compact| Target::from_compact(compact).map(|t| work_to_f64(t.work())).unwrap_or(0.0);
        let limit = work_of(self.params.pow_limit);
        if limit <= 0.0 {
            return 0.0;
        }
        work_of(self.chain.tip_header().target) / limit
    }

    pub(super) fn chain_info(&mut self) -> QueryResponse {
        let initial_sync = self.initial_sync();
        let best_known_height = self.network_info().best_known_height;
        let size_on_disk = match self.chain.store().size_on_disk() {
            Ok(bytes) => bytes,
            Err(e) => return QueryResponse::Error(format!("cannot read the database's size: {e}")),
        };
        QueryResponse::ChainInfo(ChainInfoReply {
            network: self.params.network.to_string(),
            height: self.chain.height(),
            best_block: self.chain.tip().to_string(),
            headers: self.headers_height(),
            chain_work: hex::encode(self.chain.tip_work().to_be_bytes()),
            difficulty: self.difficulty(),
            median_time: self.chain.next_block().min_time.saturating_sub(1),
            initial_sync,
            sync_progress: self.sync_progress_towards(best_known_height),
            size_on_disk,
        })
    }

    /// This node's hashes per second, over the last samples.
    fn hashrate(&self) -> f64 {
        let samples = &self.operator.hash_samples;
        let (Some((t0, h0)), Some((t1, h1))) = (samples.front(), samples.back()) else { return 0.0 };
        let secs = t1.duration_since(*t0).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        h1.saturating_sub(*h0) as f64 / secs
    }

    /// The work of the last blocks over the time they took.
    fn network_hashrate(&self) -> f64 {
        let height = self.chain.height();
        let span = HASHRATE_BLOCKS.min(height);
        let first = height.saturating_sub(span);
        let (Some(first_hash), Some(tip)) = (self.chain.best_hash_at(first), self.chain.entry(&self.chain.tip()))
        else {
            return 0.0;
        };
        let Some(start) = self.chain.entry(&first_hash) else { return 0.0 };
        let work = work_to_f64(tip.cumulative_work) - work_to_f64(start.cumulative_work);
        let secs = tip.header.time.saturating_sub(start.header.time);
        if secs == 0 || work <= 0.0 {
            return 0.0;
        }
        work / secs as f64
    }

    pub(super) fn mining_info(&self) -> QueryResponse {
        QueryResponse::MiningInfo(MiningInfoReply {
            mining: self.miner.is_some(),
            threads: self.miner.as_ref().map_or(0, |(miner, _)| miner.threads() as u64),
            hashrate: self.hashrate(),
            network_hashrate: self.network_hashrate(),
            difficulty: self.difficulty(),
        })
    }

    /// The lowest payment fee of a best-chain block, read once and remembered.
    fn lowest_fee_of(&mut self, hash: BlockHash) -> Option<Amount> {
        if let Some(known) = self.operator.lowest_fee.get(&hash) {
            return *known;
        }
        let lowest = match self.chain.block(&hash) {
            Ok(Some(block)) => block.body.transactions.iter().map(|tx| tx.fee).min(),
            _ => None,
        };
        let state = &mut self.operator;
        state.lowest_fee.insert(hash, lowest);
        state.lowest_fee_order.push_back(hash);
        while state.lowest_fee_order.len() > FEE_CACHE_BLOCKS {
            if let Some(old) = state.lowest_fee_order.pop_front() {
                state.lowest_fee.remove(&old);
            }
        }
        lowest
    }

    pub(super) fn estimate_fee(&mut self, blocks: u32) -> QueryResponse {
        let blocks = blocks.clamp(1, MAX_ESTIMATE_BLOCKS);
        let height = self.chain.height();
        let first = height.saturating_sub(estimate::window(blocks)).max(1);
        let hashes: Vec<BlockHash> = (first..=height).rev().filter_map(|h| self.chain.best_hash_at(h)).collect();
        let recent: Vec<Option<Amount>> = hashes.into_iter().map(|h| self.lowest_fee_of(h)).collect();
        let ready = self.mempool.ready_fees();
        let e = estimate::estimate_fee(blocks, &ready, PAYMENTS_PER_BLOCK, &recent, self.mempool.min_fee());
        QueryResponse::FeeEstimate(FeeEstimateReply { fee: e.fee.0, blocks, basis: e.basis.name().to_string() })
    }
}
