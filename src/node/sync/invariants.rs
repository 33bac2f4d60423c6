//! What must hold of the sync machine after any event, as a check that says
//! what broke: for the fuzz target and the property tests.

use std::collections::{BTreeMap, HashSet};

use super::{Asked, Phase, SlotState, Sync};

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

impl<P: Copy + Ord + std::fmt::Debug> Sync<P> {
    /// Requests go only to known peers and are counted per peer within the
    /// bounds; one headers request at most, to the source; every slot asked
    /// for is in the request that asked; memory stays within `window +
    /// max_headers` hashes and `max_presync_replies` checkpoints.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut blocks_to: BTreeMap<P, usize> = BTreeMap::new();
        let mut headers = Vec::new();
        for (id, request) in &self.requests {
            ensure!(self.peers.contains_key(&request.peer), "request {id} is to {:?}, who is gone", request.peer);
            match &request.asked {
                Asked::Blocks(hashes) => {
                    ensure!(
                        !hashes.is_empty() && hashes.len() <= self.config.batch,
                        "request {id} asks {} blocks",
                        hashes.len()
                    );
                    *blocks_to.entry(request.peer).or_default() += 1;
                }
                Asked::Headers => headers.push(request.peer),
            }
        }
        for (peer, info) in &self.peers {
            let asked = blocks_to.get(peer).copied().unwrap_or(0);
            ensure!(info.in_flight == asked, "{peer:?} counted {} block requests but has {asked}", info.in_flight);
            ensure!(asked <= self.config.per_peer, "{peer:?} has {asked} block requests");
        }
        let blocks: usize = blocks_to.values().sum();
        ensure!(blocks <= self.config.in_flight, "{blocks} block requests in flight");
        ensure!(headers.len() <= 1, "{} headers requests in flight", headers.len());
        let Some(target) = &self.target else {
            ensure!(headers.is_empty() && blocks == 0, "requests in flight without a header chain to follow");
            return Ok(());
        };
        ensure!(headers.iter().all(|p| *p == target.source), "a headers request to a peer other than the source");
        ensure!(
            target.headers_asked != headers.is_empty(),
            "headers_asked is {} with {} requests",
            target.headers_asked,
            headers.len()
        );
        let cap = self.config.window.saturating_add(self.config.max_headers);
        ensure!(target.slots.len() <= cap, "{} slots held, over {cap}", target.slots.len());
        let hashes: HashSet<_> = target.slots.iter().map(|s| s.hash).collect();
        ensure!(hashes == target.wanted && hashes.len() == target.slots.len(), "wanted and the slots disagree");
        ensure!(
            target.slots.iter().zip(target.slots.iter().skip(1)).all(|(a, b)| a.height < b.height),
            "slots out of height order"
        );
        for slot in &target.slots {
            if let SlotState::Asked(id) = slot.state {
                let asked = self
                    .requests
                    .get(&id)
                    .is_some_and(|r| matches!(&r.asked, Asked::Blocks(h) if h.contains(&slot.hash)));
                ensure!(asked, "slot {:?} is asked in request {id}, which does not ask it", slot.hash);
            }
        }
        let checkpoints = match &target.phase {
            Phase::Presync { checkpoints } => checkpoints.len(),
            Phase::Redownload { checkpoints } => checkpoints.len(),
            Phase::Download => 0,
        };
        ensure!(
            checkpoints <= self.config.max_presync_replies.saturating_add(1),
            "{checkpoints} presync checkpoints held"
        );
        Ok(())
    }
}
