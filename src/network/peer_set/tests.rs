use super::*;

fn limits(max_connections: usize, outbound_target: usize) -> Limits {
    Limits { max_connections, outbound_target }
}

fn addr(ip: &str, port: u16) -> Multiaddr {
    format!("/ip4/{ip}/tcp/{port}").parse().unwrap()
}

struct Harness {
    set: PeerSet,
    next: usize,
    start: Instant,
}

impl Harness {
    fn new(limits: Limits) -> Harness {
        Harness { set: PeerSet::new(limits), next: 0, start: Instant::now() }
    }

    fn at(&self, secs: u64) -> Instant {
        self.start + Duration::from_secs(secs)
    }

    fn inbound(&mut self, ip: &str, secs: u64) -> (ConnectionId, PeerId, Vec<Action>) {
        self.next += 1;
        let id = ConnectionId::new_unchecked(self.next);
        let peer = PeerId::random();
        let now = self.at(secs);
        let actions = self.set.established(
            id,
            Opened {
                peer,
                direction: Direction::Inbound,
                addr: addr(ip, 40_000 + self.next as u16),
                intended: false,
                manual: false,
            },
            now,
        );
        (id, peer, actions)
    }

    /// An inbound connection that identifies at once.
    fn inbound_peer(&mut self, ip: &str, secs: u64) -> (ConnectionId, PeerId, Vec<Action>) {
        let (id, peer, mut actions) = self.inbound(ip, secs);
        actions.extend(self.set.promote(id, self.at(secs)));
        (id, peer, actions)
    }

    /// Carries out the closes, as the swarm would.
    fn settle(&mut self, actions: &[Action]) -> Vec<ConnectionId> {
        let closed: Vec<ConnectionId> = actions
            .iter()
            .filter_map(|a| if let Action::Close { connection, .. } = a { Some(*connection) } else { None })
            .collect();
        for id in &closed {
            self.set.closed(*id);
        }
        closed
    }
}

#[test]
fn an_inbound_connection_is_a_peer_only_once_it_identifies() {
    let mut h = Harness::new(limits(10, 2));
    let (id, peer, actions) = h.inbound("8.8.8.8", 0);
    assert!(actions.is_empty());
    assert_eq!(h.set.peer_count(Direction::Inbound), 0);
    let up = h.set.promote(id, h.at(1));
    assert!(matches!(up.as_slice(), [Action::PeerUp { peer: p, direction: Direction::Inbound, .. }] if *p == peer));
    assert!(h.set.promote(id, h.at(1)).is_empty(), "promoted once");
    assert_eq!(h.set.peer_count(Direction::Inbound), 1);
    assert_eq!(h.set.closed(id), vec![Action::PeerDown { peer }]);
}

#[test]
fn an_unknown_connection_is_closed_after_a_few_seconds_and_a_lookup_after_its_lifetime() {
    let mut h = Harness::new(limits(10, 2));
    let (pending, _, _) = h.inbound("8.8.8.8", 0);
    let lookup = ConnectionId::new_unchecked(999);
    let actions = h.set.established(
        lookup,
        Opened {
            peer: PeerId::random(),
            direction: Direction::Outbound,
            addr: addr("9.9.9.9", 1),
            intended: false,
            manual: false,
        },
        h.at(0),
    );
    assert!(actions.is_empty(), "a lookup is not a peer");
    assert_eq!(h.set.peer_count(Direction::Outbound), 0);
    let mut due_times = [(pending, PENDING_TIMEOUT), (lookup, TRANSIENT_LIFETIME)];
    due_times.sort_by_key(|(_, due)| *due);
    for (id, due) in due_times {
        let early = h.set.tick(h.at(due.as_secs() - 1));
        assert!(!early.iter().any(|a| matches!(a, Action::Close { connection, .. } if *connection == id)));
        let actions = h.set.tick(h.at(due.as_secs()));
        assert!(h.settle(&actions).contains(&id), "{id:?} is closed after {due:?}");
    }
}

#[test]
fn an_outbound_connection_we_asked_for_is_a_peer_at_once() {
    let mut h = Harness::new(limits(10, 2));
    let peer = PeerId::random();
    let id = ConnectionId::new_unchecked(1);
    let actions = h.set.established(
        id,
        Opened { peer, direction: Direction::Outbound, addr: addr("1.2.3.4", 9733), intended: true, manual: false },
        h.at(0),
    );
    assert!(matches!(actions.as_slice(), [Action::PeerUp { direction: Direction::Outbound, .. }]));
    // A second connection of the same peer is no second peer.
    let again = h.set.established(
        ConnectionId::new_unchecked(2),
        Opened { peer, direction: Direction::Inbound, addr: addr("1.2.3.4", 5), intended: false, manual: false },
        h.at(0),
    );
    assert!(again.is_empty());
    assert_eq!(h.set.connection(ConnectionId::new_unchecked(2)).map(|c| c.kind), Some(Kind::Peer));
    assert_eq!(h.set.outbound_groups().len(), 1);
    assert!(h.set.tick(h.at(60)).is_empty(), "a peer's further connection is never closed as a stranger's");
    assert!(h.set.closed(id).is_empty(), "still a peer by its other connection");
    assert_eq!(h.set.closed(ConnectionId::new_unchecked(2)), vec![Action::PeerDown { peer }]);
}

#[test]
fn a_flood_of_fresh_identities_from_one_network_evicts_only_its_own() {
    // Eight inbound slots; six honest peers in six networks, connected first.
    let mut h = Harness::new(limits(10, 2));
    let honest: Vec<ConnectionId> = (0..6).map(|i| h.inbound_peer(&format!("{}.1.1.1", 20 + i), i).0).collect();
    let mut flood = Vec::new();
    for i in 0..150u64 {
        let (id, _, actions) = h.inbound_peer(&format!("66.66.{}.{}", i / 200, i % 200 + 1), 100 + i);
        h.settle(&actions);
        flood.push(id);
        assert!(h.set.peer_count(Direction::Inbound) <= 8);
    }
    for id in &honest {
        assert_eq!(h.set.connection(*id).map(|c| c.kind), Some(Kind::Peer), "an honest peer was evicted");
    }
    // An honest newcomer from another network gets in during the flood.
    let (newcomer, _, actions) = h.inbound_peer("77.1.1.1", 300);
    h.settle(&actions);
    assert_eq!(h.set.connection(newcomer).map(|c| c.kind), Some(Kind::Peer));
    assert_eq!(h.set.peer_count(Direction::Inbound), 8);
}

#[test]
fn query_clients_have_their_own_reserve_and_never_count_as_peers() {
    let mut h = Harness::new(limits(4, 2));
    // The two inbound slots are taken.
    for i in 0..2 {
        h.inbound_peer(&format!("{}.0.0.1", 30 + i), 0);
    }
    let mut clients = Vec::new();
    for i in 0..QUERY_RESERVE {
        let (id, _, _) = h.inbound("127.0.0.1", 1);
        assert!(h.set.query(id, h.at(1 + i as u64)).is_empty());
        clients.push(id);
    }
    assert_eq!(h.set.peer_count(Direction::Inbound), 2);
    // One more: the least recently active client makes room.
    let (extra, _, _) = h.inbound("127.0.0.1", 20);
    let actions = h.set.query(extra, h.at(20));
    let closed = h.settle(&actions);
    assert_eq!(closed, vec![clients[0]]);
    // A flood of peers cannot close a client.
    for i in 0..50 {
        let (_, _, actions) = h.inbound_peer(&format!("66.66.0.{}", i + 1), 21);
        let closed = h.settle(&actions);
        assert!(!closed.contains(&extra));
    }
    assert_eq!(h.set.connection(extra).map(|c| c.kind), Some(Kind::Query));
    // Idle clients go.
    let actions = h.set.tick(h.at(20 + QUERY_IDLE.as_secs()));
    let closed = h.settle(&actions);
    assert!(closed.contains(&extra));
}

#[test]
fn one_public_address_gets_one_inbound_peer_and_loopback_is_exempt() {
    let mut h = Harness::new(limits(20, 2));
    let (_, _, first) = h.inbound_peer("8.8.8.8", 0);
    assert!(first.iter().any(|a| matches!(a, Action::PeerUp { .. })));
    let (second, _, actions) = h.inbound_peer("8.8.8.8", 1);
    assert_eq!(h.settle(&actions), vec![second]);
    for i in 0..5 {
        let (id, _, actions) = h.inbound_peer("127.0.0.1", 2 + i);
        assert!(h.settle(&actions).is_empty());
        assert_eq!(h.set.connection(id).map(|c| c.kind), Some(Kind::Peer));
    }
}

#[test]
fn unknown_connections_have_a_bounded_pool() {
    let mut h = Harness::new(limits(200, 8));
    let mut first = None;
    for i in 0..PENDING_MAX {
        let (id, _, actions) = h.inbound("127.0.0.1", i as u64);
        assert!(actions.is_empty());
        first.get_or_insert(id);
    }
    let (_, _, actions) = h.inbound("127.0.0.1", 100);
    assert_eq!(h.settle(&actions), vec![first.unwrap()], "the oldest unknown connection goes");
    // From one public address, a few at most.
    let mut h = Harness::new(limits(200, 8));
    for _ in 0..PENDING_PER_IP {
        assert!(h.inbound("8.8.4.4", 101).2.is_empty());
    }
    let (extra, _, actions) = h.inbound("8.8.4.4", 101);
    assert_eq!(h.settle(&actions), vec![extra]);
}

#[test]
fn when_every_inbound_peer_is_protected_the_newcomer_is_refused() {
    // Two inbound slots, two peers in two networks: both protected.
    let mut h = Harness::new(limits(3, 1));
    let a = h.inbound_peer("20.0.0.1", 0).0;
    let b = h.inbound_peer("21.0.0.1", 0).0;
    let (newcomer, _, actions) = h.inbound_peer("22.0.0.1", 5);
    assert_eq!(h.settle(&actions), vec![newcomer]);
    assert!(h.set.connection(a).is_some() && h.set.connection(b).is_some());
}

#[test]
fn a_peer_keeps_the_direction_of_its_first_connection_and_the_inbound_cap_holds() {
    // Eight inbound slots, full of a flood from one network.
    let mut h = Harness::new(limits(10, 2));
    for i in 0..8u64 {
        let (_, _, actions) = h.inbound_peer(&format!("66.66.0.{}", i + 1), i);
        assert!(h.settle(&actions).is_empty());
    }
    // We dial one of the flood's identities for an outbound slot, and it
    // dials us back: one outbound peer, not a ninth inbound one.
    let peer = PeerId::random();
    let dialled = ConnectionId::new_unchecked(500);
    h.set.established(
        dialled,
        Opened { peer, direction: Direction::Outbound, addr: addr("66.66.1.1", 9733), intended: true, manual: false },
        h.at(10),
    );
    let back = ConnectionId::new_unchecked(501);
    h.set.established(
        back,
        Opened { peer, direction: Direction::Inbound, addr: addr("66.66.1.1", 5000), intended: false, manual: false },
        h.at(11),
    );
    assert_eq!(h.set.connection(back).map(|c| c.kind), Some(Kind::Peer));
    assert_eq!((h.set.peer_count(Direction::Inbound), h.set.peer_count(Direction::Outbound)), (8, 1));
    let listed = h.set.peers();
    let (_, first, _) = listed.iter().find(|(p, _, _)| **p == peer).expect("listed");
    assert_eq!(first.direction, Direction::Outbound, "listed by the connection that made it a peer");
    // A lookup's connection to an inbound peer makes it no outbound peer.
    // (It comes from another network, so one of the flood makes room.)
    let (inbound_id, inbound_peer, actions) = h.inbound_peer("30.1.1.1", 12);
    h.settle(&actions);
    assert_eq!(h.set.connection(inbound_id).map(|c| c.kind), Some(Kind::Peer));
    h.set.established(
        ConnectionId::new_unchecked(502),
        Opened {
            peer: inbound_peer,
            direction: Direction::Outbound,
            addr: addr("30.1.1.1", 9733),
            intended: false,
            manual: false,
        },
        h.at(13),
    );
    assert_eq!((h.set.peer_count(Direction::Inbound), h.set.peer_count(Direction::Outbound)), (8, 1));
    // Our connection closes: the peer is inbound now, one over the cap,
    // and the next tick evicts down to it.
    assert!(h.set.closed(dialled).is_empty(), "still a peer by the connection it opened");
    assert_eq!(h.set.peer_count(Direction::Outbound), 0);
    let over = h.set.peer_count(Direction::Inbound);
    assert!(over > 8, "{over} inbound peers");
    let actions = h.set.tick(h.at(14));
    h.settle(&actions);
    assert_eq!(h.set.peer_count(Direction::Inbound), 8);
}
