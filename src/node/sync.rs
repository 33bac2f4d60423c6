//! Sync as a state machine without I/O: events in (a status, a checked
//! headers reply, a blocks reply, a failure, blocks connected, the clock),
//! actions out (requests to send, penalties). The node checks headers
//! against its chain and connects blocks; this module decides whom to ask
//! for what, and what a reply costs its sender.
//!
//! Headers come first, from one peer (the *source*, the one claiming the
//! most work), checked as a chain by the caller before any of their blocks
//! is asked for. Below the network's minimum chain work a header chain is
//! only *presynced*: followed with a constant-size cursor, keeping one hash
//! per reply, and fetched again once it has shown enough work; only the
//! second pass, which must end each reply on the hash kept from the first,
//! is kept (Bitcoin Core's headers presync, with exact hashes where Core
//! keeps salted bits). Blocks of the validated chain are then downloaded
//! from every peer that has them, in batches, a few per peer, within a
//! window ahead of the connected tip, so a slow or lying peer holds up one
//! batch until its timeout, never the sync.
//!
//! Memory is bounded whatever peers send: one header chain is followed at a
//! time, with at most `window + max_headers` hashes held, and a presync
//! keeps at most `max_presync_replies` hashes.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::crypto::Work;
use crate::types::BlockHash;

/// Penalty for headers that are not a valid chain: they cannot come from an
/// honest peer (every honest reply links and carries its proof of work), so
/// one is a ban.
pub const PENALTY_BAD_HEADERS: u32 = 500;
/// Penalty for a peer whose headers end with less work than its status claimed.
pub const PENALTY_WORK_CLAIM: u32 = 100;
/// Penalty for a blocks reply that is not what we asked for: out of order,
/// holding blocks we did not request, or empty from the peer whose headers
/// announced them.
pub const PENALTY_WRONG_BLOCKS: u32 = 100;
/// Penalty for a sync request that failed or timed out: small, since an
/// honest peer can be slow, but repeated failures add up.
pub const PENALTY_FAILED_SYNC: u32 = 25;

/// A request's number, unique for the life of the machine.
pub type RequestId = u64;

/// How far the machine may go; the defaults are the node's.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Blocks in one request.
    pub batch: usize,
    /// Block requests in flight to one peer.
    pub per_peer: usize,
    /// Block requests in flight in all.
    pub in_flight: usize,
    /// How far past the connected tip blocks may be asked for.
    pub window: usize,
    /// Headers a full reply holds (a shorter one means the peer has no more).
    pub max_headers: usize,
    /// A blocks request not answered in this time has failed.
    pub timeout: Duration,
    /// A headers request (a few hundred kilobytes at most) not answered in
    /// this time has failed: a silent source stalls the start of sync for
    /// no longer.
    pub headers_timeout: Duration,
    /// A blocks request that holds up a full window fails after this time
    /// when another peer could serve it.
    pub stall_timeout: Duration,
    /// Below this work a header chain is presynced, not kept.
    pub min_chain_work: Work,
    /// Replies a presync may take before the peer is dropped from sync (its
    /// chain cannot be that long: see `Node`'s bound from the clock).
    pub max_presync_replies: usize,
}

impl Default for SyncConfig {
    fn default() -> SyncConfig {
        SyncConfig {
            batch: 64,
            per_peer: 2,
            in_flight: 8,
            window: 1024,
            max_headers: 2_000,
            timeout: Duration::from_secs(20),
            headers_timeout: Duration::from_secs(8),
            stall_timeout: Duration::from_secs(5),
            min_chain_work: Work::default(),
            max_presync_replies: 100_000,
        }
    }
}

/// What happened, told to the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<P> {
    /// A peer's status: the work it claims and its tip.
    Status {
        peer: P,
        work: Work,
        tip: BlockHash,
    },
    PeerGone(P),
    /// The caller checked a headers reply as a chain.
    Headers {
        peer: P,
        id: RequestId,
        outcome: HeadersOutcome,
    },
    /// A blocks reply: the hashes of the blocks in it, in order.
    Blocks {
        peer: P,
        id: RequestId,
        hashes: Vec<BlockHash>,
    },
    /// A request failed: a timeout, a dropped stream, a refusal, a garbled reply.
    Failed {
        peer: P,
        id: RequestId,
    },
    /// A block that `peer` served failed validation; `tampered` when its body
    /// did not match its header (the server's fault, not the chain's).
    InvalidBlock {
        peer: P,
        hash: BlockHash,
        tampered: bool,
    },
    /// Blocks were stored (`stored`: from sync, gossip or our miner), and
    /// our best chain now ends at `height` with `work`.
    Connected {
        height: u64,
        work: Work,
        stored: Vec<BlockHash>,
    },
    /// The clock moved: timeouts are due.
    Tick,
}

/// A headers reply after the caller's chain check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadersOutcome {
    /// Every header passed (or those before one too far ahead of our clock).
    Valid {
        /// Height of the first header of `hashes`; the rest follow one by one.
        first_height: u64,
        /// The headers whose blocks we do not store (the caller leaves out
        /// the run of those it stores, at the start).
        hashes: Vec<BlockHash>,
        /// The last header that passed, stored or not (where the next
        /// request continues); `None` when none did.
        last: Option<BlockHash>,
        /// Cumulative work at the last header that passed (or at the start, when none did).
        work: Work,
        /// The reply held `max_headers` headers: the peer may have more.
        full: bool,
    },
    /// A reply that does not continue the chain we asked it to (it answered
    /// from another block of ours): not an offence, the peer moved.
    Diverged,
    /// Not a valid chain: why.
    Invalid(String),
}

/// What the machine asks the caller to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<P> {
    /// Ask `peer` for headers: after `after` (the last header the caller
    /// checked for us, continuing its cursor), or, when `None`, after our
    /// best chain (a fresh cursor from the block the reply starts on).
    RequestHeaders {
        peer: P,
        id: RequestId,
        after: Option<BlockHash>,
    },
    RequestBlocks {
        peer: P,
        id: RequestId,
        hashes: Vec<BlockHash>,
    },
    Penalize {
        peer: P,
        penalty: u32,
        reason: String,
    },
    /// The header chain with more work than ours is downloaded and connected.
    CaughtUp,
}

#[derive(Clone, Debug)]
struct PeerInfo {
    /// Work its status claimed; zero once it failed to back a claim, until its next status.
    claimed: Work,
    tip: BlockHash,
    /// Block requests in flight to it.
    in_flight: usize,
    /// It showed it lacks blocks of the chain being downloaded: not asked for them again.
    lacks_target: bool,
    /// Times it failed to back a claim while connected: a source is chosen
    /// among the peers with the fewest, so a liar that re-sends its status
    /// is tried again only after every other peer.
    strikes: u32,
}

#[derive(Clone, Debug)]
enum Asked {
    Headers,
    Blocks(Vec<BlockHash>),
}

#[derive(Clone, Debug)]
struct Request<P> {
    peer: P,
    asked: Asked,
    sent: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Wanted,
    Asked(RequestId),
    Received,
}

#[derive(Clone, Debug)]
struct Slot {
    height: u64,
    hash: BlockHash,
    state: SlotState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Below the minimum chain work: the last hash of each reply, nothing else.
    Presync {
        checkpoints: Vec<BlockHash>,
    },
    /// Fetching again what the presync showed: each reply must end on its checkpoint.
    Redownload {
        checkpoints: VecDeque<BlockHash>,
    },
    Download,
}

/// The header chain being followed, from its source.
#[derive(Clone, Debug)]
struct Target<P> {
    source: P,
    claimed: Work,
    phase: Phase,
    /// Validated headers whose blocks we do not store, in height order, and
    /// what became of their blocks.
    slots: VecDeque<Slot>,
    /// The hashes of `slots`.
    wanted: HashSet<BlockHash>,
    /// The last header checked, and the work up to it.
    tip: Option<BlockHash>,
    work: Work,
    /// The last headers reply was full: there may be more.
    more: bool,
    headers_asked: bool,
}

/// The sync state machine; `P` names a peer.
#[derive(Clone, Debug)]
pub struct Sync<P> {
    config: SyncConfig,
    peers: BTreeMap<P, PeerInfo>,
    requests: BTreeMap<RequestId, Request<P>>,
    target: Option<Target<P>>,
    next_id: RequestId,
    height: u64,
    work: Work,
}

impl<P: Copy + Ord + std::fmt::Debug> Sync<P> {
    /// A machine for a chain that ends at `height` with `work`.
    pub fn new(config: SyncConfig, height: u64, work: Work) -> Sync<P> {
        Sync { config, peers: BTreeMap::new(), requests: BTreeMap::new(), target: None, next_id: 0, height, work }
    }

    /// Whether a header chain is being followed.
    pub fn is_syncing(&self) -> bool {
        self.target.is_some()
    }

    /// The height of the best validated header chain we know (ours, when not syncing).
    pub fn header_height(&self) -> u64 {
        match &self.target {
            Some(target) => target.slots.back().map_or(self.height, |slot| slot.height.max(self.height)),
            None => self.height,
        }
    }

    /// The peer whose headers are being followed.
    pub fn source(&self) -> Option<P> {
        self.target.as_ref().map(|t| t.source)
    }

    /// Whether `hash` is a block of the validated header chain that we asked for.
    pub fn is_wanted(&self, hash: &BlockHash) -> bool {
        self.target.as_ref().is_some_and(|t| t.wanted.contains(hash))
    }

    /// The blocks of the validated header chain that we do not store yet, in
    /// height order: the order to connect downloaded blocks in.
    pub fn wanted_blocks(&self) -> impl Iterator<Item = &BlockHash> {
        self.target.iter().flat_map(|t| t.slots.iter().map(|slot| &slot.hash))
    }

    /// Requests in flight, for tests and status.
    pub fn requests_in_flight(&self) -> usize {
        self.requests.len()
    }

    pub fn on_event(&mut self, now: Instant, event: Event<P>) -> Vec<Action<P>> {
        let mut actions = Vec::new();
        match event {
            Event::Status { peer, work, tip } => {
                let info = self.peers.entry(peer).or_insert(PeerInfo {
                    claimed: work,
                    tip,
                    in_flight: 0,
                    lacks_target: false,
                    strikes: 0,
                });
                info.claimed = work;
                info.tip = tip;
                info.lacks_target = false;
            }
            Event::PeerGone(peer) => {
                self.peers.remove(&peer);
                let gone: Vec<RequestId> =
                    self.requests.iter().filter(|(_, r)| r.peer == peer).map(|(id, _)| *id).collect();
                for id in gone {
                    self.forget_request(id);
                }
                if self.source() == Some(peer) {
                    self.drop_target();
                }
            }
            Event::Headers { peer, id, outcome } => self.on_headers(peer, id, outcome, &mut actions),
            Event::Blocks { peer, id, hashes } => self.on_blocks(peer, id, &hashes, &mut actions),
            Event::Failed { peer, id } => self.on_failed(peer, id, "failed a sync request", &mut actions),
            Event::InvalidBlock { peer, hash, tampered } => {
                if tampered {
                    // The chain may be fine: another peer serves the block.
                    self.set_lacks_target(peer);
                    self.release_slots(|slot| slot.hash == hash && slot.state == SlotState::Received);
                } else if self.is_wanted(&hash) {
                    // The chain its headers described is invalid from there on.
                    if let Some(source) = self.source() {
                        self.distrust(source);
                    }
                    self.drop_target();
                }
            }
            Event::Connected { height, work, stored } => {
                self.height = height;
                self.work = work;
                if let Some(target) = &mut self.target {
                    for hash in &stored {
                        if target.wanted.remove(hash) {
                            target.slots.retain(|slot| slot.hash != *hash);
                        }
                    }
                }
                let done = |t: &Target<P>| t.slots.is_empty() && !t.more && !t.headers_asked;
                if self.target.as_ref().is_some_and(done) {
                    self.drop_target();
                    actions.push(Action::CaughtUp);
                } else if self.target.as_ref().is_some_and(|t| t.phase == Phase::Download && t.work <= work) {
                    // Our chain (from gossip, say) has overtaken what the source showed.
                    self.drop_target();
                }
            }
            Event::Tick => {
                let (blocks, headers) = (self.config.timeout, self.config.headers_timeout);
                let late: Vec<(RequestId, P)> = self
                    .requests
                    .iter()
                    .filter(|(_, r)| {
                        let timeout = if matches!(r.asked, Asked::Headers) { headers } else { blocks };
                        now.saturating_duration_since(r.sent) >= timeout
                    })
                    .map(|(id, r)| (*id, r.peer))
                    .collect();
                for (id, peer) in late {
                    self.on_failed(peer, id, "did not answer a sync request in time", &mut actions);
                }
                if let Some((id, peer)) = self.stalling_request(now) {
                    self.on_failed(peer, id, "stalled the download window", &mut actions);
                }
            }
        }
        self.schedule(now, &mut actions);
        actions
    }

    /// Whether `id` is a request to `peer` of the kind `blocks` says; a reply
    /// of the other kind to it fails the request (never dropping it silently,
    /// which left a headers request marked asked, or slots asked, for ever).
    fn answers(&mut self, peer: P, id: RequestId, blocks: bool, actions: &mut Vec<Action<P>>) -> bool {
        let Some(request) = self.requests.get(&id).filter(|r| r.peer == peer) else { return false };
        if matches!(request.asked, Asked::Blocks(_)) == blocks {
            return true;
        }
        self.on_failed(peer, id, "answered a sync request with another kind of reply", actions);
        false
    }

    fn on_headers(&mut self, peer: P, id: RequestId, outcome: HeadersOutcome, actions: &mut Vec<Action<P>>) {
        if !self.answers(peer, id, false, actions) {
            return;
        }
        let Some(request) = self.take_request(id, peer) else { return };
        let Asked::Headers = request.asked else { return };
        let Some(target) = self.target.as_mut().filter(|t| t.source == peer) else { return };
        target.headers_asked = false;
        let (first_height, hashes, last, work, full) = match outcome {
            HeadersOutcome::Valid { first_height, hashes, last, work, full } => {
                (first_height, hashes, last, work, full)
            }
            HeadersOutcome::Diverged => {
                self.drop_target();
                return;
            }
            HeadersOutcome::Invalid(why) => {
                actions.push(Action::Penalize {
                    peer,
                    penalty: PENALTY_BAD_HEADERS,
                    reason: format!("served headers that are not a valid chain: {why}"),
                });
                self.distrust(peer);
                self.drop_target();
                return;
            }
        };
        // A full reply whose headers all failed to pass (too far ahead) is not full.
        let full = full && last.is_some();
        target.more = full;
        target.work = work;
        if last.is_some() {
            target.tip = last;
        }
        let min_work = self.config.min_chain_work;
        let enough = work > self.work && work >= min_work;
        match &mut target.phase {
            Phase::Presync { checkpoints } if enough && checkpoints.is_empty() => {
                // The first reply shows enough work (the usual case: a peer a
                // few blocks ahead of us): nothing to fetch again.
                target.phase = Phase::Download;
                push_slots(target, first_height, &hashes);
            }
            Phase::Presync { checkpoints } => {
                if let Some(last) = last {
                    checkpoints.push(last);
                }
                if enough {
                    // Enough work shown: fetch it again, this time to keep.
                    let checkpoints = std::mem::take(checkpoints).into();
                    target.phase = Phase::Redownload { checkpoints };
                    target.tip = None;
                    target.more = true;
                    return;
                }
                if checkpoints.len() > self.config.max_presync_replies {
                    self.distrust(peer);
                    self.drop_target();
                    return;
                }
            }
            Phase::Redownload { checkpoints } => {
                let expected = checkpoints.pop_front();
                if expected.is_some() && last != expected {
                    actions.push(Action::Penalize {
                        peer,
                        penalty: PENALTY_BAD_HEADERS,
                        reason: "served other headers than it presynced".to_string(),
                    });
                    self.distrust(peer);
                    self.drop_target();
                    return;
                }
                if checkpoints.is_empty() {
                    target.phase = Phase::Download;
                }
                push_slots(target, first_height, &hashes);
            }
            Phase::Download => push_slots(target, first_height, &hashes),
        }
        if full {
            return;
        }
        // The peer says this is all it has.
        let overclaimed = work < target.claimed;
        if overclaimed {
            // What it did show is still a validated chain: worth its blocks
            // when it has more work than ours.
            target.claimed = work;
        }
        let downloading = target.phase == Phase::Download;
        if overclaimed {
            actions.push(Action::Penalize {
                peer,
                penalty: PENALTY_WORK_CLAIM,
                reason: "claimed more work than it served".to_string(),
            });
            self.distrust(peer);
        }
        if work <= self.work {
            // Everything it has, we have.
            if let Some(info) = self.peers.get_mut(&peer).filter(|_| !overclaimed) {
                info.claimed = work;
            }
            self.drop_target();
            actions.push(Action::CaughtUp);
        } else if work < min_work {
            // Short of the minimum chain work: not followed.
            self.distrust(peer);
            self.drop_target();
        } else if !downloading {
            // A redownload that ended before its checkpoints did.
            actions.push(Action::Penalize {
                peer,
                penalty: PENALTY_BAD_HEADERS,
                reason: "served fewer headers than it presynced".to_string(),
            });
            self.distrust(peer);
            self.drop_target();
        }
    }

    fn on_blocks(&mut self, peer: P, id: RequestId, hashes: &[BlockHash], actions: &mut Vec<Action<P>>) {
        if !self.answers(peer, id, true, actions) {
            return;
        }
        let Some(request) = self.take_request(id, peer) else { return };
        let Asked::Blocks(asked) = request.asked else { return };
        let is_prefix = hashes.len() <= asked.len() && hashes.iter().zip(&asked).all(|(got, want)| got == want);
        let is_source = self.source() == Some(peer);
        if !is_prefix || (hashes.is_empty() && is_source) {
            actions.push(Action::Penalize {
                peer,
                penalty: PENALTY_WRONG_BLOCKS,
                reason: "answered a blocks request with blocks it was not asked for".to_string(),
            });
            self.release_slots(|slot| slot.state == SlotState::Asked(id));
            self.distrust(peer);
            if is_source {
                self.drop_target();
            }
            return;
        }
        if hashes.is_empty() {
            // A peer that is not the source may be on another branch: no offence,
            // but it is not asked for this chain's blocks again.
            self.set_lacks_target(peer);
        }
        let received = hashes.len();
        if let Some(target) = &mut self.target {
            for slot in target.slots.iter_mut().filter(|slot| slot.state == SlotState::Asked(id)) {
                let got = asked.iter().take(received).any(|h| *h == slot.hash);
                slot.state = if got { SlotState::Received } else { SlotState::Wanted };
            }
        }
    }

    fn on_failed(&mut self, peer: P, id: RequestId, why: &str, actions: &mut Vec<Action<P>>) {
        let Some(request) = self.take_request(id, peer) else { return };
        self.release_slots(|slot| slot.state == SlotState::Asked(id));
        actions.push(Action::Penalize { peer, penalty: PENALTY_FAILED_SYNC, reason: why.to_string() });
        let is_source = self.source() == Some(peer);
        match request.asked {
            Asked::Headers if is_source => {
                self.distrust(peer);
                self.drop_target();
            }
            Asked::Headers => {}
            Asked::Blocks(_) if is_source => {
                // Another peer takes over: the chain stays validated, but its
                // source is not trusted to serve it.
                self.distrust(peer);
                self.drop_target();
            }
            Asked::Blocks(_) => self.set_lacks_target(peer),
        }
    }

    /// The request holding up the download (Bitcoin Core's block stalling
    /// rule): when everything in the window has been asked for, and the
    /// first block we still lack has waited `stall_timeout` on one peer
    /// while another peer could serve it, that request has failed.
    fn stalling_request(&self, now: Instant) -> Option<(RequestId, P)> {
        let target = self.target.as_ref()?;
        let window = target.slots.iter().take(self.config.window);
        if window.clone().any(|slot| slot.state == SlotState::Wanted) {
            return None;
        }
        let SlotState::Asked(id) = window.clone().find(|slot| slot.state != SlotState::Received)?.state else {
            return None;
        };
        let request = self.requests.get(&id)?;
        let others = self.peers.iter().any(|(peer, info)| *peer != request.peer && !info.lacks_target);
        let late = now.saturating_duration_since(request.sent) >= self.config.stall_timeout;
        (others && late).then_some((id, request.peer))
    }

    /// Removes request `id` if `peer` was asked it, with its count.
    fn take_request(&mut self, id: RequestId, peer: P) -> Option<Request<P>> {
        if self.requests.get(&id).is_none_or(|r| r.peer != peer) {
            return None;
        }
        let request = self.requests.remove(&id)?;
        if let (Asked::Blocks(_), Some(info)) = (&request.asked, self.peers.get_mut(&peer)) {
            info.in_flight = info.in_flight.saturating_sub(1);
        }
        Some(request)
    }

    fn forget_request(&mut self, id: RequestId) {
        if let Some(peer) = self.requests.get(&id).map(|r| r.peer) {
            self.take_request(id, peer);
            self.release_slots(|slot| slot.state == SlotState::Asked(id));
            if self.source() == Some(peer) {
                if let Some(target) = &mut self.target {
                    target.headers_asked = false;
                }
            }
        }
    }

    fn release_slots(&mut self, which: impl Fn(&Slot) -> bool) {
        if let Some(target) = &mut self.target {
            for slot in target.slots.iter_mut().filter(|slot| which(slot)) {
                slot.state = SlotState::Wanted;
            }
        }
    }

    /// Its claim is not trusted again until its next status.
    fn distrust(&mut self, peer: P) {
        if let Some(info) = self.peers.get_mut(&peer) {
            info.claimed = Work::default();
            info.strikes = info.strikes.saturating_add(1);
        }
    }

    fn set_lacks_target(&mut self, peer: P) {
        if let Some(info) = self.peers.get_mut(&peer) {
            info.lacks_target = true;
        }
    }

    /// Stops following the header chain; requests in flight for it are forgotten
    /// (their replies, when they come, answer nothing).
    fn drop_target(&mut self) {
        self.target = None;
        let ids: Vec<RequestId> = self.requests.keys().copied().collect();
        for id in ids {
            self.forget_request(id);
        }
        for info in self.peers.values_mut() {
            info.lacks_target = false;
        }
    }

    fn next_id(&mut self) -> RequestId {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Sends what there is room for: a source and its headers, then blocks.
    fn schedule(&mut self, now: Instant, actions: &mut Vec<Action<P>>) {
        if self.target.is_none() {
            let best = self
                .peers
                .iter()
                .filter(|(_, info)| info.claimed > self.work && info.claimed >= self.config.min_chain_work)
                .max_by_key(|(_, info)| (std::cmp::Reverse(info.strikes), info.claimed))
                .map(|(peer, info)| (*peer, info.claimed));
            let Some((source, claimed)) = best else { return };
            // A header chain is kept only once it shows more work than ours
            // and the minimum: until then it is presynced.
            let phase = Phase::Presync { checkpoints: Vec::new() };
            self.target = Some(Target {
                source,
                claimed,
                phase,
                slots: VecDeque::new(),
                wanted: HashSet::new(),
                tip: None,
                work: self.work,
                more: true,
                headers_asked: false,
            });
        }
        self.request_headers(now, actions);
        self.request_blocks(now, actions);
    }

    fn request_headers(&mut self, now: Instant, actions: &mut Vec<Action<P>>) {
        let window = self.config.window;
        let Some(target) = &self.target else { return };
        if target.headers_asked || !target.more || target.slots.len() >= window {
            return;
        }
        let (peer, after) = (target.source, target.tip);
        let id = self.next_id();
        self.requests.insert(id, Request { peer, asked: Asked::Headers, sent: now });
        if let Some(target) = &mut self.target {
            target.headers_asked = true;
        }
        actions.push(Action::RequestHeaders { peer, id, after });
    }

    fn request_blocks(&mut self, now: Instant, actions: &mut Vec<Action<P>>) {
        loop {
            let Some(target) = &self.target else { return };
            let in_flight: usize = self.peers.values().map(|p| p.in_flight).sum();
            if in_flight >= self.config.in_flight {
                return;
            }
            // The least busy peer that has blocks we still want.
            let source = target.source;
            let candidate = self
                .peers
                .iter()
                .filter(|(_, info)| info.in_flight < self.config.per_peer && !info.lacks_target)
                .filter_map(|(peer, info)| {
                    let has_up_to = if *peer == source || info.claimed >= target.work && info.claimed > Work::default()
                    {
                        u64::MAX
                    } else {
                        target.slots.iter().find(|slot| slot.hash == info.tip).map(|slot| slot.height)?
                    };
                    Some((*peer, info.in_flight, has_up_to))
                })
                .filter(|(_, _, has_up_to)| {
                    target
                        .slots
                        .iter()
                        .take(self.config.window)
                        .any(|slot| slot.state == SlotState::Wanted && slot.height <= *has_up_to)
                })
                .min_by_key(|(peer, busy, _)| (*busy, *peer != source));
            let Some((peer, _, has_up_to)) = candidate else { return };
            let id = self.next_id();
            let batch = self.config.batch;
            let window = self.config.window;
            let Some(target) = &mut self.target else { return };
            let mut hashes = Vec::new();
            for slot in target.slots.iter_mut().take(window) {
                if hashes.len() == batch {
                    break;
                }
                if slot.state == SlotState::Wanted && slot.height <= has_up_to {
                    slot.state = SlotState::Asked(id);
                    hashes.push(slot.hash);
                } else if !hashes.is_empty() {
                    // One request asks for a run of consecutive blocks.
                    break;
                }
            }
            if let Some(info) = self.peers.get_mut(&peer) {
                info.in_flight += 1;
            }
            self.requests.insert(id, Request { peer, asked: Asked::Blocks(hashes.clone()), sent: now });
            actions.push(Action::RequestBlocks { peer, id, hashes });
        }
    }
}

fn push_slots<P>(target: &mut Target<P>, first_height: u64, hashes: &[BlockHash]) {
    let known = target.slots.back().map(|slot| slot.height);
    for (height, hash) in (first_height..).zip(hashes) {
        // A reply that starts below what we hold repeats headers we have.
        if known.is_some_and(|known| height <= known) {
            continue;
        }
        if target.wanted.insert(*hash) {
            target.slots.push_back(Slot { height, hash: *hash, state: SlotState::Wanted });
        }
    }
}

#[cfg(any(test, feature = "fuzzing"))]
mod invariants;
#[cfg(test)]
mod tests;
