//! The sync machine against simulated peers: honest ones, ones on a
//! lighter fork, and liars of every kind, with replies, failures, timeouts
//! and disconnects in any order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use primitive_types::U256;
use proptest::prelude::*;

use super::*;
use crate::types::Hash256;

type Peer = u8;

fn work(n: u64) -> Work {
    Work(U256::from(n))
}

/// Block `height` of chain `chain` (0 is the honest chain; every chain shares genesis).
fn hash(chain: u8, height: u64) -> BlockHash {
    if height == 0 {
        return BlockHash(Hash256([0; 32]));
    }
    let mut bytes = [0u8; 32];
    bytes[0] = chain.wrapping_add(1);
    bytes[8..16].copy_from_slice(&height.to_le_bytes());
    BlockHash(Hash256(bytes))
}

const HUGE: u64 = 1 << 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    /// Has the honest chain up to this height, and says so.
    Honest(u64),
    /// Has a fork from genesis of this length (less work than the honest chain), and says so.
    Fork(u64),
    /// Claims enormous work; its headers are made up.
    Boaster,
    /// Claims enormous work; serves a real fork of this length.
    ShortOfItsClaim(u64),
    /// Claims the honest tip, serves its headers, answers block requests with nothing.
    EmptyBlocks,
    /// Claims the honest tip, serves its headers, answers block requests with other blocks.
    Unrequested,
    /// Claims enormous work and never answers.
    Silent,
}

impl Behaviour {
    /// The chain it serves: its id and length.
    fn chain(self, peer: Peer, honest: u64) -> (u8, u64) {
        match self {
            Behaviour::Honest(has) => (0, has),
            Behaviour::Fork(len) | Behaviour::ShortOfItsClaim(len) => (peer.wrapping_add(1), len),
            Behaviour::EmptyBlocks | Behaviour::Unrequested => (0, honest),
            Behaviour::Boaster | Behaviour::Silent => (200, 0),
        }
    }

    fn claim(self, peer: Peer, honest: u64) -> (Work, BlockHash) {
        let (chain, len) = self.chain(peer, honest);
        match self {
            Behaviour::Boaster | Behaviour::Silent | Behaviour::ShortOfItsClaim(_) => {
                (work(HUGE), BlockHash(Hash256([0xee; 32])))
            }
            _ => (work(len), hash(chain, len)),
        }
    }
}

/// The node around the machine: a chain that stores what it is given and
/// follows the most work (one unit a block), and the simulated peers.
struct Sim {
    sync: Sync<Peer>,
    config: SyncConfig,
    now: Instant,
    honest: u64,
    peers: BTreeMap<Peer, Behaviour>,
    /// Stored blocks: height and parent.
    stored: HashMap<BlockHash, (u64, BlockHash)>,
    tip: BlockHash,
    downloaded: HashMap<BlockHash, BlockHash>,
    /// Requests sent and not answered: id -> (peer, request).
    outstanding: BTreeMap<RequestId, (Peer, Action<Peer>)>,
    /// Every hash the machine was told is on a validated header chain.
    validated: HashSet<BlockHash>,
    /// Header cursors, as the node keeps them, by the hash they end at: the chain and height.
    cursors: HashMap<BlockHash, (u8, u64)>,
    penalties: Vec<(Peer, u32, String)>,
}

impl Sim {
    fn new(config: SyncConfig, honest: u64, peers: &[Behaviour]) -> Sim {
        let genesis = hash(0, 0);
        let mut sim = Sim {
            sync: Sync::new(config.clone(), 0, work(0)),
            config,
            now: Instant::now(),
            honest,
            peers: BTreeMap::new(),
            stored: HashMap::from([(genesis, (0, genesis))]),
            tip: genesis,
            downloaded: HashMap::new(),
            outstanding: BTreeMap::new(),
            validated: HashSet::new(),
            cursors: HashMap::new(),
            penalties: Vec::new(),
        };
        for (peer, behaviour) in (0..).zip(peers) {
            sim.peers.insert(peer, *behaviour);
            sim.status(peer);
        }
        sim
    }

    fn height(&self) -> u64 {
        self.stored[&self.tip].0
    }

    fn status(&mut self, peer: Peer) {
        let Some(behaviour) = self.peers.get(&peer).copied() else { return };
        let (work, tip) = behaviour.claim(peer, self.honest);
        self.event(Event::Status { peer, work, tip });
    }

    fn event(&mut self, event: Event<Peer>) {
        let actions = self.sync.on_event(self.now, event);
        for action in actions {
            self.check(&action);
            match action {
                Action::RequestHeaders { peer, id, .. } | Action::RequestBlocks { peer, id, .. } => {
                    self.outstanding.insert(id, (peer, action));
                }
                Action::Penalize { peer, penalty, reason } => self.penalties.push((peer, penalty, reason)),
                Action::CaughtUp => {}
            }
        }
        assert!(
            self.sync.requests_in_flight() <= self.config.in_flight + 1,
            "{} requests in flight",
            self.sync.requests_in_flight()
        );
    }

    /// What must hold of every action.
    fn check(&self, action: &Action<Peer>) {
        if let Action::RequestBlocks { peer, hashes, .. } = action {
            assert!(self.peers.contains_key(peer), "asked a peer that is gone: {peer}");
            assert!(!hashes.is_empty() && hashes.len() <= self.config.batch, "a batch of {}", hashes.len());
            for h in hashes {
                assert!(self.validated.contains(h), "asked for a block off every validated header chain: {h:?}");
                assert!(!self.stored.contains_key(h), "asked for a block it stores");
                let chain_len = self.chain_length_of(h);
                assert!(
                    work(chain_len) >= self.config.min_chain_work,
                    "asked for a block of a chain below the minimum chain work"
                );
                assert!(chain_len > self.height(), "asked for a block of a chain with no more work than ours");
            }
        }
    }

    /// The length of the (simulated) chain `h` belongs to.
    fn chain_length_of(&self, h: &BlockHash) -> u64 {
        let chain = h.0 .0[0].wrapping_sub(1);
        self.peers
            .iter()
            .map(|(peer, b)| b.chain(*peer, self.honest))
            .filter(|(c, _)| *c == chain)
            .map(|(_, len)| len)
            .max()
            .unwrap_or(self.honest)
    }

    /// The headers `peer` sends for a request (as its node would), checked as the node would.
    fn headers_reply(&mut self, peer: Peer, after: Option<BlockHash>) -> HeadersOutcome {
        let behaviour = self.peers[&peer];
        if behaviour == Behaviour::Boaster {
            return HeadersOutcome::Invalid("header 0 does not meet its proof of work".into());
        }
        let (chain, len) = behaviour.chain(peer, self.honest);
        let start = match after {
            Some(after) => {
                match self.cursors.get(&after) {
                    Some(&(c, at)) if c == chain && at <= len => at,
                    // It answers from a block of ours instead: another branch.
                    _ => return HeadersOutcome::Diverged,
                }
            }
            None => {
                // The last block of our best chain on its chain.
                let mut at = self.height().min(len);
                while self.best_hash_at(at) != Some(hash(chain, at)) {
                    at -= 1;
                }
                at
            }
        };
        let end = (start + self.config.max_headers as u64).min(len);
        let mut first = start + 1;
        // The node leaves out the headers of blocks it stores.
        while first <= end && self.stored.contains_key(&hash(chain, first)) {
            first += 1;
        }
        let hashes: Vec<BlockHash> = (first..=end).map(|h| hash(chain, h)).collect();
        self.cursors.insert(hash(chain, end), (chain, end));
        let full = (end - start) as usize == self.config.max_headers;
        if work(end) >= self.config.min_chain_work {
            self.validated.extend(hashes.iter().copied());
        } else if matches!(
            self.sync.target.as_ref().map(|t| &t.phase),
            Some(Phase::Redownload { .. } | Phase::Download)
        ) {
            // Kept below the minimum only on the second pass, once the whole chain showed enough work.
            self.validated.extend(hashes.iter().copied());
        }
        let last = (end > start).then(|| hash(chain, end));
        HeadersOutcome::Valid { first_height: first, hashes, last, work: work(end), full }
    }

    fn best_hash_at(&self, height: u64) -> Option<BlockHash> {
        let mut at = self.tip;
        loop {
            let (h, parent) = self.stored[&at];
            if h == height {
                return Some(at);
            }
            if h < height {
                return None;
            }
            at = parent;
        }
    }

    fn blocks_reply(&self, peer: Peer, asked: &[BlockHash], keep: usize) -> Vec<BlockHash> {
        let behaviour = self.peers[&peer];
        let (chain, len) = behaviour.chain(peer, self.honest);
        match behaviour {
            Behaviour::EmptyBlocks => Vec::new(),
            Behaviour::Unrequested => vec![hash(99, 1)],
            _ => {
                let has: Vec<BlockHash> =
                    asked.iter().take_while(|h| (1..=len).any(|height| hash(chain, height) == **h)).copied().collect();
                // An honest server may stop early past its byte budget.
                let keep = keep.clamp(1, has.len().max(1));
                has.into_iter().take(keep).collect()
            }
        }
    }

    /// Answers request `id` as its peer would; `keep` bounds an honest blocks reply.
    fn answer(&mut self, id: RequestId, keep: usize) {
        let Some((peer, request)) = self.outstanding.remove(&id) else { return };
        if !self.peers.contains_key(&peer) || self.peers[&peer] == Behaviour::Silent {
            self.outstanding.insert(id, (peer, request));
            return;
        }
        match request {
            Action::RequestHeaders { after, .. } => {
                let outcome = self.headers_reply(peer, after);
                self.event(Event::Headers { peer, id, outcome });
            }
            Action::RequestBlocks { hashes: asked, .. } => {
                let hashes = self.blocks_reply(peer, &asked, keep);
                let (chain, _) = self.peers[&peer].chain(peer, self.honest);
                for h in &hashes {
                    let height = u64::from_le_bytes(h.0 .0[8..16].try_into().unwrap());
                    self.downloaded.insert(*h, hash(chain, height - 1));
                }
                self.event(Event::Blocks { peer, id, hashes });
                self.connect();
            }
            _ => unreachable!(),
        }
    }

    /// The headers requests sent and not answered.
    fn headers_requests(&self) -> Vec<RequestId> {
        let headers = self.outstanding.iter().filter(|(_, (_, a))| matches!(a, Action::RequestHeaders { .. }));
        headers.map(|(id, _)| *id).collect()
    }

    fn fail(&mut self, id: RequestId) {
        if let Some((peer, _)) = self.outstanding.remove(&id) {
            self.event(Event::Failed { peer, id });
        }
    }

    /// Connects downloaded blocks in the order of the validated chain, as the node does.
    fn connect(&mut self) {
        let order: Vec<BlockHash> = self.sync.wanted_blocks().copied().collect();
        let mut stored = Vec::new();
        for h in order {
            let Some(parent) = self.downloaded.get(&h).copied() else { break };
            let Some(&(parent_height, _)) = self.stored.get(&parent) else { break };
            self.downloaded.remove(&h);
            self.stored.insert(h, (parent_height + 1, parent));
            if parent_height + 1 > self.height() {
                self.tip = h;
            }
            stored.push(h);
        }
        self.downloaded.retain(|h, _| self.sync.is_wanted(h));
        if !stored.is_empty() {
            let height = self.height();
            self.event(Event::Connected { height, work: work(height), stored });
        }
    }

    fn disconnect(&mut self, peer: Peer) {
        if self.peers.remove(&peer).is_some() {
            self.outstanding.retain(|_, (p, _)| *p != peer);
            self.event(Event::PeerGone(peer));
        }
    }

    fn tick(&mut self, by: Duration) {
        self.now += by;
        self.event(Event::Tick);
    }

    /// Runs to the end: answers everything, lets the silent time out, and
    /// refreshes statuses (as the node does every minute) while behind.
    fn settle(&mut self) {
        for _round in 0..200 {
            let answerable: Vec<RequestId> = self
                .outstanding
                .iter()
                .filter(|(_, (peer, _))| self.peers.get(peer).is_some_and(|b| *b != Behaviour::Silent))
                .map(|(id, _)| *id)
                .collect();
            if !answerable.is_empty() {
                for id in answerable {
                    self.answer(id, usize::MAX);
                }
            } else if self.outstanding.keys().any(|id| self.sync.requests.contains_key(id)) {
                self.tick(self.config.timeout);
            } else if self.tip != hash(0, self.honest) {
                let peers: Vec<Peer> = self.peers.keys().copied().collect();
                for peer in peers {
                    self.status(peer);
                }
            } else {
                return;
            }
        }
    }
}

fn small_config(min_chain_work: u64) -> SyncConfig {
    SyncConfig {
        batch: 4,
        per_peer: 2,
        in_flight: 4,
        window: 16,
        max_headers: 8,
        timeout: Duration::from_secs(20),
        headers_timeout: Duration::from_secs(8),
        stall_timeout: Duration::from_secs(5),
        min_chain_work: work(min_chain_work),
        max_presync_replies: 1_000,
    }
}

fn behaviour(honest: u64) -> impl Strategy<Value = Behaviour> {
    let below = 1..honest.max(2);
    prop_oneof![
        (1..=honest).prop_map(Behaviour::Honest),
        below.clone().prop_map(Behaviour::Fork),
        Just(Behaviour::Boaster),
        below.prop_map(Behaviour::ShortOfItsClaim),
        Just(Behaviour::EmptyBlocks),
        Just(Behaviour::Unrequested),
        Just(Behaviour::Silent),
    ]
}

fn scenario() -> impl Strategy<Value = (u64, Vec<Behaviour>, Vec<(u8, u16)>)> {
    (2u64..60).prop_flat_map(|honest| {
        (
            Just(honest),
            prop::collection::vec(behaviour(honest), 0..5),
            prop::collection::vec((0u8..6, any::<u16>()), 0..120),
        )
    })
}

/// Plays `steps` (answer, fail, time passing, disconnect, status again) then settles.
fn play(config: SyncConfig, honest: u64, others: &[Behaviour], steps: &[(u8, u16)]) -> Sim {
    let mut peers = vec![Behaviour::Honest(honest)];
    peers.extend_from_slice(others);
    let mut sim = Sim::new(config, honest, &peers);
    for &(op, arg) in steps {
        let ids: Vec<RequestId> = sim.outstanding.keys().copied().collect();
        let pick = ids.get(usize::from(arg) % ids.len().max(1)).copied();
        match (op, pick) {
            (0..=2, Some(id)) => sim.answer(id, usize::from(arg % 5)),
            (3, Some(id)) => sim.fail(id),
            (4, _) => sim.tick(Duration::from_millis(u64::from(arg) * 10)),
            (5, _) if arg % 2 == 0 => {
                // Peer 0, the honest one with the whole chain, stays.
                let peer = (arg / 2 % 6) as Peer;
                if peer != 0 {
                    sim.disconnect(peer);
                }
            }
            (5, _) => sim.status((arg / 2 % 6) as Peer),
            _ => {}
        }
    }
    sim.settle();
    sim
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// For any order of replies, failures, timeouts and disconnects, blocks
    /// are asked for only along a validated header chain, and sync ends on
    /// the best honest chain.
    #[test]
    fn sync_asks_only_for_validated_blocks_and_ends_on_the_honest_chain((honest, others, steps) in scenario()) {
        let sim = play(small_config(0), honest, &others, &steps);
        prop_assert_eq!(sim.tip, hash(0, honest), "ended at height {} off the honest tip", sim.height());
        prop_assert_eq!(sim.sync.requests_in_flight(), 0);
    }

    /// With a minimum chain work, nothing of a chain below it is kept or
    /// downloaded (checked on every request), and the honest chain, above
    /// it, is still reached through presync and redownload.
    #[test]
    fn below_the_minimum_chain_work_nothing_is_downloaded((honest, others, steps) in scenario()) {
        let min = honest.saturating_sub(1).max(1);
        let sim = play(small_config(min), honest, &others, &steps);
        prop_assert_eq!(sim.tip, hash(0, honest), "ended at height {} off the honest tip", sim.height());
    }
}

#[test]
fn blocks_are_downloaded_from_several_peers_at_once() {
    let mut sim = Sim::new(small_config(0), 40, &[Behaviour::Honest(40), Behaviour::Honest(40), Behaviour::Honest(40)]);
    // The headers, from the source.
    for _ in 0..2 {
        let headers = sim.headers_requests();
        assert_eq!(headers.len(), 1, "one headers request, to one peer");
        sim.answer(headers[0], usize::MAX);
    }
    let asked: HashSet<Peer> =
        sim.outstanding.values().filter(|(_, a)| matches!(a, Action::RequestBlocks { .. })).map(|(p, _)| *p).collect();
    assert_eq!(asked.len(), 3, "every peer that has the chain is asked for blocks: {asked:?}");
    sim.settle();
    assert_eq!(sim.tip, hash(0, 40));
}

#[test]
fn a_peer_claiming_work_it_does_not_have_is_penalised_and_another_takes_over() {
    let sim = play(small_config(0), 20, &[Behaviour::Boaster, Behaviour::ShortOfItsClaim(5), Behaviour::Silent], &[]);
    assert_eq!(sim.tip, hash(0, 20));
    let of =
        |peer: Peer| sim.penalties.iter().filter(|(p, ..)| *p == peer).map(|(_, _, r)| r.as_str()).collect::<Vec<_>>();
    assert!(of(1).iter().any(|r| r.starts_with("served headers that are not a valid chain")), "{:?}", of(1));
    assert!(of(2).contains(&"claimed more work than it served"), "{:?}", of(2));
    assert!(of(3).contains(&"did not answer a sync request in time"), "{:?}", of(3));
    assert!(of(0).is_empty(), "the honest peer is not penalised: {:?}", of(0));
}

#[test]
fn an_empty_or_unrequested_blocks_reply_costs_the_sender() {
    let sim = play(small_config(0), 30, &[Behaviour::EmptyBlocks, Behaviour::Unrequested], &[]);
    assert_eq!(sim.tip, hash(0, 30));
    let unrequested = sim.penalties.iter().filter(|(p, ..)| *p == 2).count();
    assert!(unrequested > 0, "{:?}", sim.penalties);
    assert!(sim.penalties.iter().all(|(p, ..)| *p != 0), "{:?}", sim.penalties);
}

#[test]
fn presync_keeps_one_hash_a_reply_then_downloads_only_the_second_pass() {
    let config = small_config(30);
    let mut sim = Sim::new(config, 40, &[Behaviour::Honest(40)]);
    // Presync: headers only, until the chain shows the minimum work.
    let mut rounds = 0;
    loop {
        let presyncing = sim.sync.target.as_ref().is_some_and(|t| matches!(t.phase, Phase::Presync { .. }));
        let Some(&id) = sim.outstanding.keys().next() else { break };
        if !presyncing {
            break;
        }
        sim.answer(id, usize::MAX);
        rounds += 1;
        assert!(
            sim.outstanding.values().all(|(_, a)| matches!(a, Action::RequestHeaders { .. })),
            "no block before the minimum work"
        );
        let target = sim.sync.target.as_ref().expect("following the chain");
        assert!(target.slots.is_empty(), "presync keeps no header chain");
    }
    assert_eq!(rounds, 4, "30 of work at 8 headers a reply");
    sim.settle();
    assert_eq!(sim.tip, hash(0, 40));
}

/// A full headers reply of chain `chain`, heights `from..=to`, with one unit of work a block.
fn full_reply(chain: u8, from: u64, to: u64) -> HeadersOutcome {
    HeadersOutcome::Valid {
        first_height: from,
        hashes: (from..=to).map(|h| hash(chain, h)).collect(),
        last: Some(hash(chain, to)),
        work: work(to),
        full: true,
    }
}

#[test]
fn a_redownload_that_differs_from_the_presync_is_refused() {
    let mut sync: Sync<Peer> = Sync::new(small_config(10), 0, work(0));
    let now = Instant::now();
    let reply = |sync: &mut Sync<Peer>, actions: &[Action<Peer>], outcome: HeadersOutcome| {
        let Some(Action::RequestHeaders { id, .. }) = actions.first().cloned() else { panic!("{actions:?}") };
        sync.on_event(now, Event::Headers { peer: 1, id, outcome })
    };
    let actions = sync.on_event(now, Event::Status { peer: 1, work: work(16), tip: hash(0, 16) });
    assert!(matches!(actions.first(), Some(Action::RequestHeaders { after: None, .. })), "{actions:?}");
    let actions = reply(&mut sync, &actions, full_reply(0, 1, 8));
    assert!(matches!(actions.first(), Some(Action::RequestHeaders { after: Some(_), .. })), "{actions:?}");
    let actions = reply(&mut sync, &actions, full_reply(0, 9, 16));
    // Enough work: fetched again from our chain.
    assert!(matches!(actions.first(), Some(Action::RequestHeaders { after: None, .. })), "{actions:?}");
    let actions = reply(&mut sync, &actions, full_reply(7, 1, 8));
    assert!(
        actions.iter().any(|a| matches!(a, Action::Penalize { peer: 1, penalty: PENALTY_BAD_HEADERS, .. })),
        "{actions:?}"
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::RequestBlocks { .. })), "{actions:?}");
    assert!(!sync.is_syncing());
}

#[test]
fn memory_held_for_a_header_chain_is_bounded_by_the_window() {
    let config = small_config(0);
    let mut sim = Sim::new(config.clone(), 500, &[Behaviour::Honest(500)]);
    // Answer headers only; never blocks: the machine stops asking for headers once the window is full.
    for _ in 0..200 {
        let headers = sim.headers_requests();
        if headers.is_empty() {
            break;
        }
        for id in headers {
            sim.answer(id, usize::MAX);
        }
    }
    let held = sim.sync.target.as_ref().map_or(0, |t| t.slots.len());
    assert!(held >= config.window && held < config.window + config.max_headers, "{held} hashes held");
}

#[test]
fn a_liar_that_says_it_again_is_tried_only_after_every_other_peer() {
    let peers = [Behaviour::Silent, Behaviour::Honest(20), Behaviour::Honest(20)];
    let mut sim = Sim::new(small_config(0), 20, &peers);
    // The silent peer spoke first: it is asked first, and times out.
    assert_eq!(sim.sync.source(), Some(0));
    sim.tick(Duration::from_secs(8));
    assert!(matches!(sim.sync.source(), Some(1 | 2)), "an honest peer took over");
    // Its status again, with the same enormous claim; then the honest source
    // leaves: the other honest peer, not the liar, takes over.
    sim.status(0);
    let source = sim.sync.source().unwrap();
    sim.disconnect(source);
    assert_eq!(sim.sync.source(), Some(3 - source));
    sim.settle();
    assert_eq!(sim.tip, hash(0, 20));
}

#[test]
fn a_peer_holding_up_a_full_window_loses_its_request_to_another() {
    // The silent peer claims enough work to be asked for blocks, and never answers.
    let mut sim = Sim::new(small_config(0), 60, &[Behaviour::Honest(60), Behaviour::Silent]);
    // Everything honest answered at once: the window fills up behind the silent peer's batches.
    for _ in 0..20 {
        let answerable: Vec<RequestId> =
            sim.outstanding.iter().filter(|(_, (p, _))| *p == 0).map(|(id, _)| *id).collect();
        for id in answerable {
            sim.answer(id, usize::MAX);
        }
    }
    let held = sim.sync.requests.values().filter(|r| r.peer == 1).count();
    assert!(held > 0, "the silent peer holds a batch");
    sim.tick(Duration::from_secs(5));
    assert!(sim.penalties.iter().any(|(p, _, r)| *p == 1 && r == "stalled the download window"), "{:?}", sim.penalties);
    sim.settle();
    assert_eq!(sim.tip, hash(0, 60));
}

/// Found by the `sync_machine` fuzz target: a blocks reply to a headers
/// request removed the request but left it marked asked, so no headers
/// request was ever sent again and no timeout could fire.
#[test]
fn a_blocks_reply_to_a_headers_request_does_not_stall_sync() {
    let mut sync: Sync<Peer> = Sync::new(small_config(0), 0, work(0));
    let now = Instant::now();
    let actions = sync.on_event(now, Event::Status { peer: 1, work: work(10), tip: hash(0, 10) });
    let Some(Action::RequestHeaders { id, .. }) = actions.first().cloned() else { panic!("{actions:?}") };
    let actions = sync.on_event(now, Event::Blocks { peer: 1, id, hashes: vec![] });
    assert!(actions.iter().any(|a| matches!(a, Action::Penalize { peer: 1, .. })), "{actions:?}");
    sync.check_invariants().unwrap();
    // The peer says it again: its headers are asked for again.
    let actions = sync.on_event(now, Event::Status { peer: 1, work: work(10), tip: hash(0, 10) });
    assert!(actions.iter().any(|a| matches!(a, Action::RequestHeaders { peer: 1, .. })), "{actions:?}");
}
