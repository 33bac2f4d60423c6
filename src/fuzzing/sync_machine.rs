//! The sync state machine under arbitrary statuses, replies (valid, diverged,
//! invalid, wrong), failures, timeouts, disconnects and connected blocks:
//! after every event its own invariants hold (`Sync::check_invariants`),
//! every block request is a non-empty batch of wanted blocks to a connected
//! peer, and no request number is used twice.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use arbitrary::{Result, Unstructured};
use primitive_types::U256;

use crate::crypto::Work;
use crate::node::sync::{Action, Event, HeadersOutcome, RequestId, Sync, SyncConfig};
use crate::types::{BlockHash, Hash256};

type Peer = u8;
const PEERS: u8 = 5;
const MAX_EVENTS: usize = 64;

fn config(min_chain_work: u64) -> SyncConfig {
    SyncConfig {
        batch: 4,
        per_peer: 2,
        in_flight: 4,
        window: 12,
        max_headers: 8,
        timeout: Duration::from_secs(20),
        headers_timeout: Duration::from_secs(8),
        stall_timeout: Duration::from_secs(5),
        min_chain_work: work(min_chain_work),
        max_presync_replies: 6,
    }
}

fn work(units: u64) -> Work {
    Work(U256::from(units))
}

/// Hashes from a small space, so replies collide with what the machine holds.
fn hash(u: &mut Unstructured<'_>) -> Result<BlockHash> {
    Ok(BlockHash(Hash256([u.int_in_range(0..=40u8)?; 32])))
}

pub fn sync_machine(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let config = config(u.int_in_range(0..=30)?);
    let (batch, max_headers) = (config.batch, config.max_headers);
    let mut sync: Sync<Peer> = Sync::new(config, 0, work(0));
    let start = Instant::now();
    let mut elapsed = Duration::ZERO;
    let mut connected: BTreeSet<Peer> = BTreeSet::new();
    // Requests the machine made, and those still unanswered, for replies that match.
    let mut issued: HashSet<RequestId> = HashSet::new();
    let mut open: Vec<(RequestId, Peer)> = Vec::new();
    let mut height = 0u64;
    let mut our_work = 0u64;
    for _ in 0..MAX_EVENTS {
        if u.is_empty() {
            break;
        }
        let peer = u.int_in_range(0..=PEERS - 1)?;
        // A reply usually answers a request the machine made; sometimes any number.
        let answer = |u: &mut Unstructured<'_>, open: &[(RequestId, Peer)]| -> Result<(RequestId, Peer)> {
            if !open.is_empty() && u.ratio(7, 8)? {
                Ok(open[u.choose_index(open.len())?])
            } else {
                Ok((u.int_in_range(0..=20)?, peer))
            }
        };
        let event = match u.int_in_range(0..=8u8)? {
            0 => {
                connected.insert(peer);
                Event::Status { peer, work: work(u.int_in_range(0..=60)?), tip: hash(u)? }
            }
            1 => {
                connected.remove(&peer);
                Event::PeerGone(peer)
            }
            2 => {
                let (id, peer) = answer(u, &open)?;
                let outcome = match u.int_in_range(0..=5u8)? {
                    0 => HeadersOutcome::Diverged,
                    1 => HeadersOutcome::Invalid("not a chain".into()),
                    _ => {
                        let count = u.int_in_range(0..=max_headers)?;
                        let mut hashes = Vec::with_capacity(count);
                        for _ in 0..count {
                            hashes.push(hash(u)?);
                        }
                        HeadersOutcome::Valid {
                            first_height: u.int_in_range(0..=40)?,
                            last: if u.arbitrary()? { hashes.last().copied() } else { Some(hash(u)?) },
                            hashes,
                            work: work(u.int_in_range(0..=60)?),
                            full: u.arbitrary()?,
                        }
                    }
                };
                Event::Headers { peer, id, outcome }
            }
            3 => {
                let (id, peer) = answer(u, &open)?;
                let count = u.int_in_range(0..=batch + 1)?;
                let mut hashes = Vec::with_capacity(count);
                for _ in 0..count {
                    hashes.push(hash(u)?);
                }
                Event::Blocks { peer, id, hashes }
            }
            4 => {
                let (id, peer) = answer(u, &open)?;
                Event::Failed { peer, id }
            }
            5 => Event::InvalidBlock { peer, hash: hash(u)?, tampered: u.arbitrary()? },
            6 => {
                // Some of the wanted blocks arrived and connected.
                let wanted: Vec<BlockHash> = sync.wanted_blocks().copied().collect();
                let take = u.int_in_range(0..=wanted.len())?;
                height += take as u64;
                our_work += u.int_in_range(0..=take as u64 * 2)?;
                Event::Connected { height, work: work(our_work), stored: wanted.into_iter().take(take).collect() }
            }
            _ => {
                elapsed += Duration::from_millis(u.int_in_range(0..=30_000)?);
                Event::Tick
            }
        };
        let now = start + elapsed;
        let actions = sync.on_event(now, event.clone());
        for action in &actions {
            match action {
                Action::RequestHeaders { peer, id, .. } | Action::RequestBlocks { peer, id, .. } => {
                    assert!(issued.insert(*id), "request number {id} used twice");
                    assert!(connected.contains(peer), "asked {peer}, which is gone, after {event:?}");
                    open.push((*id, *peer));
                }
                Action::Penalize { .. } | Action::CaughtUp => {}
            }
            if let Action::RequestBlocks { hashes, .. } = action {
                assert!(!hashes.is_empty() && hashes.len() <= batch, "a batch of {} blocks", hashes.len());
                assert!(hashes.iter().all(|h| sync.is_wanted(h)), "asked for a block off the header chain");
            }
        }
        open.retain(|(id, _)| !matches!(&event, Event::Headers { id: i, .. } | Event::Blocks { id: i, .. } | Event::Failed { id: i, .. } if i == id));
        sync.check_invariants().unwrap_or_else(|e| panic!("after {event:?}: {e}"));
    }
    Ok(())
}
