//! What an operator runs beside a node: the Prometheus endpoint of
//! `--metrics` and the `--blocknotify` hook, against real nodes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{free_port, path_str, text, wait_for, wait_until, NodeOptions, TestNode, TestWallet};

const DEADLINE: Duration = Duration::from_secs(60);

/// One HTTP/1.1 exchange: the status code, the headers (lowercase names) and the body.
fn http(port: u16, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics port");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the answer");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_lowercase(), body.to_string())
}

/// Prometheus text parsed into sample name (with labels) -> value; panics on
/// a line that is neither a comment nor `name{labels} value`.
fn parse_prometheus(body: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in body.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("`{v}` is not a number in {line:?}")),
        };
        let name = series.split('{').next().unwrap_or_default();
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "a metric name: {line:?}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')), "labels: {line:?}");
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

#[test]
fn the_metrics_endpoint_serves_prometheus_text_with_every_spec_metric_and_nothing_else() {
    let miner = TestWallet::new();
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    let a = TestNode::started("A", NodeOptions::new().mining(&miner.address).arg("--metrics").arg(&metrics));
    let _b = TestNode::started("B", NodeOptions::new().bootstrap(a.multiaddr()));

    let samples = wait_for("A has an inbound peer and has gossiped a block", DEADLINE, || {
        let (status, head, body) = http(port, "GET", "/metrics");
        assert_eq!(status, 200, "{head}");
        assert!(head.contains("content-type: application/openmetrics-text"), "{head}");
        assert!(body.ends_with("# EOF\n"), "the OpenMetrics end marker");
        let samples = parse_prometheus(&body);
        let inbound = samples.get("ourcoin_peers{direction=\"inbound\"}").copied().unwrap_or(0.0);
        let gossiped = samples.get("ourcoin_gossip_bytes_total{topic=\"blocks\",direction=\"outbound\"}").copied();
        (inbound >= 1.0 && gossiped.unwrap_or(0.0) > 0.0).then_some(samples)
    });
    let names: BTreeSet<&str> = samples.keys().map(|k| k.split('{').next().unwrap_or_default()).collect();
    for name in [
        "ourcoin_chain_height",
        "ourcoin_peers",
        "ourcoin_mempool_transactions",
        "ourcoin_mempool_bytes",
        "ourcoin_blocks_connected_total",
        "ourcoin_reorgs_total",
        "ourcoin_block_validation_seconds_bucket",
        "ourcoin_block_validation_seconds_sum",
        "ourcoin_block_validation_seconds_count",
        "ourcoin_signature_cache_hit_ratio",
        "ourcoin_peers_banned_total",
        "ourcoin_sync_progress",
        "ourcoin_gossip_bytes_total",
        "ourcoin_compact_blocks_total",
        "ourcoin_block_messages_total",
        "ourcoin_block_message_bytes_total",
    ] {
        assert!(names.contains(name), "{name} is served; served: {names:?}");
    }
    for prefix in ["libp2p_swarm_", "libp2p_identify_", "libp2p_kad_", "libp2p_ping_"] {
        assert!(names.iter().any(|n| n.starts_with(prefix)), "libp2p's own {prefix}* metrics; served: {names:?}");
    }
    assert!(samples["ourcoin_chain_height"] >= 1.0);
    assert!(samples["ourcoin_blocks_connected_total"] >= 1.0);
    assert!(samples["ourcoin_block_validation_seconds_count"] >= 1.0);
    assert_eq!(samples["ourcoin_sync_progress"], 1.0);
    assert!(samples.contains_key("ourcoin_peers{direction=\"outbound\"}"));
    assert!(samples.contains_key("ourcoin_gossip_bytes_total{topic=\"transactions\",direction=\"inbound\"}"));
    for outcome in ["received", "rebuilt_without_roundtrip", "rebuilt_with_roundtrip", "fallen_back"] {
        let series = format!("ourcoin_compact_blocks_total{{outcome=\"{outcome}\"}}");
        assert!(samples.contains_key(&series), "{series} is served from the start");
    }

    // Nothing else: other paths 404, other methods 405.
    for path in ["/", "/metrics/", "/status", "/metricsx"] {
        assert_eq!(http(port, "GET", path).0, 404, "GET {path}");
    }
    for method in ["POST", "PUT", "DELETE"] {
        let (status, head, _) = http(port, method, "/metrics");
        assert_eq!(status, 405, "{method} /metrics");
        assert!(head.contains("allow: get"), "{head}");
    }
}

#[test]
fn blocknotify_runs_once_per_new_tip_with_its_hash() {
    let miner = TestWallet::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("tips.txt");
    let script = dir.path().join("notify.sh");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$1\" >> '{}'\n", path_str(&out))).expect("write the script");
    let command = format!("sh '{}' %s", path_str(&script));
    let mut a = TestNode::started("A", NodeOptions::new().mining(&miner.address).arg("--blocknotify").arg(&command));
    wait_until("three tips are notified", DEADLINE, || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() >= 3)
    });
    a.stop();
    a.start(NodeOptions::new());
    let height = a.height();
    // The commands of the last blocks may still have been running at the stop.
    let lines = wait_for("every tip's command finished", DEADLINE, || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        (lines.len() as u64 == height).then_some(lines)
    });
    let notified: BTreeSet<String> = lines.iter().cloned().collect();
    assert_eq!(notified.len(), lines.len(), "each tip once: {lines:?}");
    let tips: BTreeSet<String> =
        (1..=height).map(|h| text(&a.json(&["block", &h.to_string()]), "hash").to_string()).collect();
    assert_eq!(notified, tips, "one line per block, each its hash");
    assert!(!a.log().contains("blocknotify `"), "no failure was logged:\n{}", a.log());
}
