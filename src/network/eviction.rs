//! Which inbound peer makes room for a newcomer when the inbound slots are
//! full, as Bitcoin Core's `AttemptToEvictConnection` decides: peers that
//! are hard for an attacker to imitate are protected (one per network group,
//! the lowest pings, those that relayed blocks or transactions lately, the
//! longest connected), and of the rest the youngest of the most represented
//! network group goes. An attacker with many identities on few networks can
//! then only ever push out its own connections.
//!
//! Pure: ages and times are given, nothing is read from a clock.

use std::collections::HashMap;
use std::time::Duration;

use super::addrbook::Group;

/// Lowest pings protected.
pub const PROTECT_BY_PING: usize = 8;
/// Most recent block relayers protected, and transaction relayers.
pub const PROTECT_BY_BLOCKS: usize = 4;
pub const PROTECT_BY_TXS: usize = 4;

#[derive(Clone, Debug)]
pub struct Candidate<P> {
    pub id: P,
    pub group: Group,
    /// How long it has been connected.
    pub connected: Duration,
    /// `None` until measured.
    pub ping: Option<Duration>,
    /// How long ago it last relayed a new block to us, or a transaction.
    pub last_block: Option<Duration>,
    pub last_tx: Option<Duration>,
}

/// The peer to evict, or `None` when every candidate is protected (then the
/// newcomer is the one refused).
pub fn choose<P: Clone>(mut candidates: Vec<Candidate<P>>) -> Option<P> {
    // One peer per network group: the longest connected of each.
    let mut oldest: HashMap<Group, usize> = HashMap::new();
    for (i, c) in candidates.iter().enumerate() {
        let keep = oldest.entry(c.group).or_insert(i);
        if candidates[*keep].connected < c.connected {
            *keep = i;
        }
    }
    let mut protected: Vec<usize> = oldest.into_values().collect();
    protected.sort_unstable_by(|a, b| b.cmp(a));
    for i in protected {
        candidates.swap_remove(i);
    }
    protect(&mut candidates, PROTECT_BY_PING, |c| c.ping.is_some(), |c| c.ping.unwrap_or(Duration::MAX));
    protect(&mut candidates, PROTECT_BY_BLOCKS, |c| c.last_block.is_some(), |c| c.last_block.unwrap_or(Duration::MAX));
    protect(&mut candidates, PROTECT_BY_TXS, |c| c.last_tx.is_some(), |c| c.last_tx.unwrap_or(Duration::MAX));
    // Half of the rest: the longest connected.
    let half = candidates.len() / 2;
    protect(&mut candidates, half, |_| true, |c| Duration::MAX.saturating_sub(c.connected));

    // The most represented group (ties: the one whose youngest is youngest) loses its youngest.
    let mut groups: HashMap<Group, Vec<&Candidate<P>>> = HashMap::new();
    for c in &candidates {
        groups.entry(c.group).or_default().push(c);
    }
    let youngest = |members: &[&Candidate<P>]| members.iter().map(|c| c.connected).min().unwrap_or(Duration::MAX);
    let (_, members) = groups.into_iter().max_by(|(ga, a), (gb, b)| {
        a.len().cmp(&b.len()).then_with(|| youngest(b).cmp(&youngest(a))).then_with(|| gb.cmp(ga))
    })?;
    members.iter().min_by_key(|c| c.connected).map(|c| c.id.clone())
}

/// Removes from `candidates` the `count` best by `key` (smallest first) among those `eligible`.
fn protect<P, K: Ord>(
    candidates: &mut Vec<Candidate<P>>,
    count: usize,
    eligible: impl Fn(&Candidate<P>) -> bool,
    key: impl Fn(&Candidate<P>) -> K,
) {
    let mut order: Vec<usize> = (0..candidates.len()).filter(|&i| eligible(&candidates[i])).collect();
    order.sort_by_key(|&i| key(&candidates[i]));
    order.truncate(count);
    order.sort_unstable_by(|a, b| b.cmp(a));
    for i in order {
        candidates.swap_remove(i);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn group(a: u8) -> Group {
        Group::of(IpAddr::V4(Ipv4Addr::new(a, 1, 2, 3)))
    }

    fn peer(id: u32, g: u8, connected_s: u64) -> Candidate<u32> {
        Candidate {
            id,
            group: group(g),
            connected: Duration::from_secs(connected_s),
            ping: None,
            last_block: None,
            last_tx: None,
        }
    }

    #[test]
    fn nobody_is_evicted_when_every_peer_is_protected() {
        assert_eq!(choose::<u32>(vec![]), None);
        // One per group: all protected.
        let distinct: Vec<_> = (0..30).map(|i| peer(i, i as u8, 100)).collect();
        assert_eq!(choose(distinct), None);
    }

    #[test]
    fn a_flood_from_one_network_loses_its_youngest_not_the_honest_peers() {
        // Ten honest peers in ten groups, connected for hours.
        let mut peers: Vec<_> = (0..10).map(|i| peer(i, 10 + i as u8, 10_000 + u64::from(i))).collect();
        // A hundred fresh identities from one /16, connected in the last minute.
        peers.extend((100..200).map(|i| peer(i, 66, u64::from(200 - i))));
        assert_eq!(choose(peers), Some(199));
    }

    #[test]
    fn low_pings_and_recent_relayers_are_protected_even_in_the_biggest_group() {
        // Twenty peers in one group; the youngest has the best ping, the next
        // relayed a block, the next a transaction.
        let mut peers: Vec<_> = (0..20).map(|i| peer(i, 7, 1_000 - u64::from(i))).collect();
        peers[19].ping = Some(Duration::from_millis(1));
        peers[18].last_block = Some(Duration::from_secs(5));
        peers[17].last_tx = Some(Duration::from_secs(5));
        let evicted = choose(peers.clone()).unwrap();
        assert_eq!(evicted, 16);
        // With eight better pings elsewhere in the group, the youngest loses its protection.
        for p in peers.iter_mut().take(10) {
            p.ping = Some(Duration::from_micros(10));
        }
        peers[19].ping = Some(Duration::from_millis(1));
        assert_eq!(choose(peers), Some(19));
    }

    #[test]
    fn the_longest_connected_half_is_protected() {
        // Forty peers in one group, no pings, no relays: the oldest is
        // protected for its group, then half of the rest by uptime.
        let peers: Vec<_> = (0..40).map(|i| peer(i, 3, 100 + u64::from(i))).collect();
        let evicted = choose(peers).unwrap();
        assert_eq!(evicted, 0, "the youngest goes");
    }

    #[test]
    fn between_equally_represented_groups_the_one_with_the_youngest_member_loses() {
        let peers =
            vec![peer(1, 1, 500), peer(2, 1, 400), peer(3, 1, 300), peer(4, 2, 500), peer(5, 2, 450), peer(6, 2, 10)];
        // After protection (one per group, then half by uptime), both groups
        // keep candidates; group 2 has the youngest member.
        assert_eq!(choose(peers), Some(6));
    }
}
