//! `--metrics IP:PORT` (SPEC §6): Prometheus text at `GET /metrics`, with
//! libp2p's own metrics (`libp2p_*`, from the `libp2p-metrics` crate) and the
//! node's `ourcoin_*` metrics, all in one `prometheus-client` registry.
//!
//! The network's event loop and the node each hold an [`Arc<Metrics>`] and
//! update it in place (atomics; no locks on the hot paths but the peer map).
//! The server answers nothing but `GET /metrics`: other paths get 404, other
//! methods 405.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use libp2p::metrics::Recorder;
use libp2p::swarm::SwarmEvent;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::network::behaviour::BehaviourEvent;

/// Connections served at once; more are closed at once, so a flood of them
/// cannot make the node hold memory or sockets without bound.
const MAX_CONNECTIONS: usize = 32;

/// The content type of the OpenMetrics text `prometheus-client` writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// The outcomes `ourcoin_compact_blocks_total` counts.
pub const COMPACT_OUTCOMES: [&str; 4] =
    ["received", "rebuilt_without_roundtrip", "rebuilt_with_roundtrip", "fallen_back"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GossipLabels {
    pub topic: &'static str,
    pub direction: &'static str,
}

/// Every metric the node serves.
pub struct Metrics {
    registry: Registry,
    libp2p: libp2p::metrics::Metrics,
    pub chain_height: Gauge,
    pub peers: Family<DirectionLabel, Gauge>,
    pub mempool_transactions: Gauge,
    pub mempool_bytes: Gauge,
    pub blocks_connected: Counter,
    pub reorgs: Counter,
    pub block_validation_seconds: Histogram,
    pub signature_cache_hit_ratio: Gauge<f64, AtomicU64>,
    pub peers_banned: Counter,
    pub sync_progress: Gauge<f64, AtomicU64>,
    pub gossip_bytes: Family<GossipLabels, Counter>,
    /// Compact blocks received, and how each was rebuilt (`outcome`:
    /// "received", "rebuilt_without_roundtrip", "rebuilt_with_roundtrip", "fallen_back").
    pub compact_blocks: Family<OutcomeLabel, Counter>,
    /// Bytes of the block messages received on gossip, and how many.
    pub block_message_bytes: Counter,
    pub block_messages: Counter,
    /// The direction of each connected peer's first connection.
    /// The transaction topic's hash, to tell the two topics apart.
    tx_topic: Mutex<Option<libp2p::gossipsub::TopicHash>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let libp2p = libp2p::metrics::Metrics::new(&mut registry);
        let mut metrics = Metrics {
            registry,
            libp2p,
            chain_height: Gauge::default(),
            peers: Family::default(),
            mempool_transactions: Gauge::default(),
            mempool_bytes: Gauge::default(),
            blocks_connected: Counter::default(),
            reorgs: Counter::default(),
            // 1 ms to about 65 s.
            block_validation_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            signature_cache_hit_ratio: Gauge::default(),
            peers_banned: Counter::default(),
            sync_progress: Gauge::default(),
            gossip_bytes: Family::default(),
            compact_blocks: Family::default(),
            block_message_bytes: Counter::default(),
            block_messages: Counter::default(),
            tx_topic: Mutex::new(None),
        };
        metrics.register();
        metrics
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register("ourcoin_chain_height", "Height of the best chain", self.chain_height.clone());
        r.register("ourcoin_peers", "Connected peers by direction", self.peers.clone());
        r.register("ourcoin_mempool_transactions", "Pending transactions", self.mempool_transactions.clone());
        r.register("ourcoin_mempool_bytes", "Pending transactions' encoded size", self.mempool_bytes.clone());
        r.register("ourcoin_blocks_connected", "Blocks connected to the best chain", self.blocks_connected.clone());
        r.register("ourcoin_reorgs", "Reorganisations to a chain with more work", self.reorgs.clone());
        r.register(
            "ourcoin_block_validation_seconds",
            "Time to validate and store one block",
            self.block_validation_seconds.clone(),
        );
        r.register(
            "ourcoin_signature_cache_hit_ratio",
            "Share of block payments whose pairing was cached at mempool admission",
            self.signature_cache_hit_ratio.clone(),
        );
        r.register("ourcoin_peers_banned", "Peers banned", self.peers_banned.clone());
        r.register(
            "ourcoin_sync_progress",
            "Chain height over the best header height (0 to 1)",
            self.sync_progress.clone(),
        );
        r.register("ourcoin_gossip_bytes", "Gossip payload bytes by topic and direction", self.gossip_bytes.clone());
        r.register(
            "ourcoin_compact_blocks",
            "Compact blocks received, and how they were rebuilt",
            self.compact_blocks.clone(),
        );
        r.register(
            "ourcoin_block_message_bytes",
            "Bytes of block messages received on gossip",
            self.block_message_bytes.clone(),
        );
        r.register("ourcoin_block_messages", "Block messages received on gossip", self.block_messages.clone());
        for outcome in COMPACT_OUTCOMES {
            let _ = self.compact_blocks.get_or_create(&OutcomeLabel { outcome });
        }
        // Every series exists from the start, so a scrape shows it at 0.
        for direction in ["inbound", "outbound"] {
            let _ = self.peers.get_or_create(&DirectionLabel { direction });
            for topic in ["transactions", "blocks"] {
                let _ = self.gossip_bytes.get_or_create(&GossipLabels { topic, direction });
            }
        }
    }

    /// The registry, for a behaviour that registers metrics of its own
    /// (gossipsub) before the metrics are shared.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The registry as Prometheus (OpenMetrics) text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!("cannot encode the metrics: {e}");
        }
        text
    }

    /// Records one event of the swarm in libp2p's metrics.
    pub fn record_swarm(&self, event: &SwarmEvent<BehaviourEvent>) {
        self.libp2p.record(event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => {
                self.libp2p.record(e);
                if let libp2p::gossipsub::Event::Message { message, .. } = e {
                    self.record_gossip(self.topic_kind(&message.topic), "inbound", message.data.len());
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.libp2p.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.libp2p.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => self.libp2p.record(e),
            _ => {}
        }
    }

    /// The peers the network layer counts as peers (not query clients, not lookups).
    pub fn set_peers(&self, inbound: usize, outbound: usize) {
        for (direction, count) in [("inbound", inbound), ("outbound", outbound)] {
            self.peers.get_or_create(&DirectionLabel { direction }).set(count as i64);
        }
    }

    /// Names the transaction topic; every other topic counts as blocks.
    pub fn set_tx_topic(&self, topic: libp2p::gossipsub::TopicHash) {
        if let Ok(mut tx) = self.tx_topic.lock() {
            *tx = Some(topic);
        }
    }

    /// `transactions` or `blocks`: the label of a topic.
    pub fn topic_kind(&self, topic: &libp2p::gossipsub::TopicHash) -> &'static str {
        match self.tx_topic.lock() {
            Ok(tx) if tx.as_ref() == Some(topic) => "transactions",
            _ => "blocks",
        }
    }

    /// Counts gossip payload bytes; `topic` is the topic's kind.
    pub fn record_gossip(&self, topic: &'static str, direction: &'static str, bytes: usize) {
        self.gossip_bytes.get_or_create(&GossipLabels { topic, direction }).inc_by(bytes as u64);
    }
}

/// One HTTP request's answer.
fn respond(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found: the metrics are at /metrics\n");
    }
    if request.method() != Method::GET {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        response.headers_mut().insert(hyper::header::ALLOW, hyper::header::HeaderValue::from_static("GET"));
        return response;
    }
    let mut response = Response::new(Full::new(Bytes::from(metrics.encode())));
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// Binds `addr` (so a taken port fails at start) and serves the metrics on
/// the current tokio runtime until it stops.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::debug!("metrics: cannot accept a connection: {e}");
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::debug!("metrics: too many connections; one closed");
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let response = respond(&metrics, &request);
                    async move { Ok::<_, Infallible>(response) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(io, service);
                if let Err(e) = connection.await {
                    tracing::debug!("metrics: connection ended: {e}");
                }
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_metric_is_exposed_from_the_start() {
        let metrics = Metrics::new();
        metrics.blocks_connected.inc();
        metrics.block_validation_seconds.observe(0.004);
        metrics.record_gossip("blocks", "inbound", 300);
        let text = metrics.encode();
        for name in [
            "ourcoin_chain_height ",
            "ourcoin_peers{direction=\"inbound\"} 0",
            "ourcoin_peers{direction=\"outbound\"} 0",
            "ourcoin_mempool_transactions ",
            "ourcoin_mempool_bytes ",
            "ourcoin_blocks_connected_total 1",
            "ourcoin_reorgs_total 0",
            "ourcoin_block_validation_seconds_bucket",
            "ourcoin_block_validation_seconds_count 1",
            "ourcoin_signature_cache_hit_ratio ",
            "ourcoin_peers_banned_total 0",
            "ourcoin_sync_progress ",
            "ourcoin_gossip_bytes_total{topic=\"blocks\",direction=\"inbound\"} 300",
        ] {
            assert!(text.contains(name), "{name} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn the_example_dashboard_asks_only_for_served_metrics() {
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../config/grafana-dashboard.json")).unwrap();
        let served = Metrics::new().encode();
        let mut asked = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for (at, _) in expr.match_indices("ourcoin_") {
                    let name: String =
                        expr[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    assert!(served.contains(&name), "{name} of panel {} is served", panel["title"]);
                    asked += 1;
                }
            }
        }
        assert!(asked >= 10, "the dashboard shows the node's metrics");
    }
}
