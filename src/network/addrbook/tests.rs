use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;

fn v4(a: u8, b: u8, c: u8, d: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), 9733)
}

fn source(a: u8, b: u8) -> Group {
    Group::of(IpAddr::V4(Ipv4Addr::new(a, b, 1, 1)))
}

fn bucket_of_new(book: &AddressBook, addr: &SocketAddr) -> usize {
    book.new.iter().position(|a| a.as_ref() == Some(addr)).expect("in the new table") / BUCKET_SIZE
}

#[test]
fn groups_are_slash_16_for_ipv4_slash_32_for_ipv6_and_one_for_loopback() {
    assert_eq!(Group::of(v4(1, 2, 3, 4).ip()), Group::of(v4(1, 2, 200, 9).ip()));
    assert_ne!(Group::of(v4(1, 2, 3, 4).ip()), Group::of(v4(1, 3, 3, 4).ip()));
    let a: IpAddr = "2001:db9:1:2::1".parse().unwrap();
    let b: IpAddr = "2001:db9:ffff::1".parse().unwrap();
    let c: IpAddr = "2001:dba::1".parse().unwrap();
    assert_eq!(Group::of(a), Group::of(b));
    assert_ne!(Group::of(a), Group::of(c));
    let mapped: IpAddr = "::ffff:1.2.3.4".parse().unwrap();
    assert_eq!(Group::of(mapped), Group::of(v4(1, 2, 9, 9).ip()));
    assert!(Group::of("127.0.0.1".parse().unwrap()).is_loopback());
    assert_eq!(Group::of("127.0.0.1".parse().unwrap()), Group::of("::1".parse().unwrap()));
}

#[test]
fn reach_tells_public_private_loopback_link_local_and_nowhere_apart() {
    let reach = |s: &str| Reach::of(s.parse().unwrap());
    assert_eq!(reach("8.8.8.8"), Reach::Public);
    assert_eq!(reach("2a01:4f8::1"), Reach::Public);
    for private in ["10.1.2.3", "172.16.0.1", "172.31.255.1", "192.168.1.1", "100.64.0.1", "fd00::1"] {
        assert_eq!(reach(private), Reach::Private, "{private}");
    }
    assert_eq!(reach("172.32.0.1"), Reach::Public);
    assert_eq!(reach("127.0.0.1"), Reach::Loopback);
    assert_eq!(reach("::1"), Reach::Loopback);
    assert_eq!(reach("169.254.1.1"), Reach::LinkLocal);
    assert_eq!(reach("fe80::1"), Reach::LinkLocal);
    for nowhere in [
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "198.18.0.1",
        "240.0.0.1",
        "::",
        "ff02::1",
        "2001:db8::1",
    ] {
        assert_eq!(reach(nowhere), Reach::Unroutable, "{nowhere}");
    }
}

#[test]
fn endpoints_are_read_from_tcp_multiaddrs_only() {
    let peer = PeerId::random();
    let (addr, id) = endpoint_of(&format!("/ip4/1.2.3.4/tcp/9733/p2p/{peer}").parse().unwrap()).unwrap();
    assert_eq!((addr, id), (v4(1, 2, 3, 4), Some(peer)));
    assert_eq!(endpoint_of(&multiaddr_of(addr, peer)), Some((addr, Some(peer))));
    assert!(endpoint_of(&"/ip4/1.2.3.4/udp/9733/quic-v1".parse().unwrap()).is_none());
    assert!(endpoint_of(&"/dns4/example.org/tcp/9733".parse().unwrap()).is_none());
    assert!(endpoint_of(&"/ip4/1.2.3.4".parse().unwrap()).is_none());
}

#[test]
fn one_source_adds_a_bounded_number_of_addresses_into_few_buckets() {
    let mut book = AddressBook::new([7; 32]);
    let liar = source(66, 66);
    let mut added = 0;
    let mut buckets = HashSet::new();
    for i in 0..5_000u32 {
        let addr = v4((i >> 16) as u8 + 1, (i >> 8) as u8, i as u8, 1);
        if book.add(addr, PeerId::random(), liar, 1_000) {
            added += 1;
            buckets.insert(bucket_of_new(&book, &addr));
        }
    }
    assert_eq!(added, MAX_NEW_PER_SOURCE);
    assert!(buckets.len() as u64 <= NEW_BUCKETS_PER_SOURCE_GROUP, "{} buckets", buckets.len());
    // Other sources still get in.
    assert!(book.add(v4(9, 9, 9, 9), PeerId::random(), source(1, 1), 1_000));
}

#[test]
fn many_sources_fill_a_bounded_book() {
    let mut book = AddressBook::new([1; 32]);
    for s in 0..=255u8 {
        for i in 0..200u32 {
            let addr = v4(s, (i >> 8) as u8 + 1, i as u8, 7);
            book.add(addr, PeerId::random(), source(s, 3), 1_000);
        }
    }
    assert!(book.len() <= NEW_BUCKETS * BUCKET_SIZE);
    assert!(book.len() > NEW_BUCKETS * BUCKET_SIZE / 4, "{} entries", book.len());
}

#[test]
fn an_address_connected_to_moves_to_tried_and_a_collision_goes_back_to_new() {
    let mut book = AddressBook::new([3; 32]);
    let peer = PeerId::random();
    let addr = v4(5, 6, 7, 8);
    assert!(book.add(addr, peer, source(1, 1), 10));
    book.good(addr, peer, 20);
    let entry = book.get(&addr).unwrap();
    assert!(entry.tried);
    assert_eq!(entry.last_success, 20);
    assert_eq!(book.tried_len(), 1);
    // Fill the tried table until some address takes `addr`'s slot.
    let slot = book.tried_slot(&addr);
    let rival = (0..100_000u32)
        .map(|i| v4(5, 6, (i >> 8) as u8, i as u8))
        .find(|a| *a != addr && book.tried_slot(a) == slot)
        .expect("a rival for the slot");
    book.good(rival, PeerId::random(), 30);
    assert!(book.get(&rival).unwrap().tried);
    let demoted = book.get(&addr).expect("kept, in the new table");
    assert!(!demoted.tried);
    assert_eq!(book.new.iter().filter(|a| a.as_ref() == Some(&addr)).count(), 1);
}

#[test]
fn an_address_that_keeps_failing_is_dropped_unless_it_was_tried() {
    let mut book = AddressBook::new([4; 32]);
    let (dead, good) = (v4(1, 1, 1, 1), v4(2, 2, 2, 2));
    book.add(dead, PeerId::random(), source(3, 3), 0);
    let peer = PeerId::random();
    book.good(good, peer, 0);
    for t in 0..MAX_FAILURES as u64 {
        book.failed(&dead, t);
        book.failed(&good, t);
    }
    assert!(book.get(&dead).is_none());
    assert_eq!(book.get(&good).unwrap().failures, MAX_FAILURES);
    book.good(good, peer, 100);
    assert_eq!(book.get(&good).unwrap().failures, 0);
}

#[test]
fn selection_skips_what_the_caller_cannot_use_and_favours_the_untried_recently() {
    let mut book = AddressBook::new([5; 32]);
    let mut rng = StdRng::seed_from_u64(1);
    assert!(book.select(&mut rng, 0, |_, _| false).is_none());
    let addrs: Vec<SocketAddr> = (1..=20).map(|i| v4(i, i, 1, 1)).collect();
    for a in &addrs {
        book.add(*a, PeerId::random(), source(9, 9), 0);
    }
    let banned = addrs[0];
    let mut seen = HashSet::new();
    for _ in 0..2_000 {
        let (addr, peer) = book.select(&mut rng, 10_000, |a, _| *a == banned).unwrap();
        assert_ne!(addr, banned);
        assert_eq!(book.get(&addr).unwrap().peer, peer);
        seen.insert(addr);
    }
    assert_eq!(seen.len(), addrs.len() - 1);
    assert!(book.select(&mut rng, 0, |_, _| true).is_none());
    // An address tried a moment ago is drawn far less often than the others.
    let recent = addrs[1];
    book.attempt(&recent, 10_000);
    let draws = (0..2_000).filter(|_| book.select(&mut rng, 10_001, |_, _| false).unwrap().0 == recent).count();
    assert!(draws < 2_000 / 19 / 3, "drawn {draws} times");
}

#[test]
fn the_book_round_trips_through_its_file_and_rejects_damage() {
    let mut book = AddressBook::new([6; 32]);
    for i in 0..50u8 {
        book.add(v4(10 + i, i, 1, 1), PeerId::random(), source(i, 0), u64::from(i));
    }
    let peer = PeerId::random();
    book.good(v4(10, 0, 1, 1), peer, 99);
    let bytes = book.encode();
    let again = AddressBook::decode(&bytes).unwrap();
    assert_eq!(again.len(), book.len());
    assert_eq!(again.tried_len(), 1);
    assert_eq!(again.encode(), bytes);
    assert!(AddressBook::decode(&bytes[..bytes.len() / 2]).is_err());
    assert!(AddressBook::decode(&[0xff; 64]).is_err());
    let mut other = book.to_saved();
    other.version = 9;
    assert!(matches!(AddressBook::from_saved(other), Err(BookError::Version(9))));
}

#[test]
fn an_edited_file_cannot_put_more_in_the_book_than_the_rules_allow() {
    let book = AddressBook::new([8; 32]);
    let mut saved = book.to_saved();
    let liar = source(66, 66);
    for i in 0..1_000u32 {
        let entry = Entry {
            peer: PeerId::random(),
            source: liar,
            tried: false,
            last_seen: 1,
            last_try: 0,
            last_success: 0,
            failures: 0,
        };
        saved.entries.push((v4(20, (i >> 8) as u8, i as u8, 1), entry));
    }
    let loaded = AddressBook::from_saved(saved).unwrap();
    assert!(loaded.len() <= MAX_NEW_PER_SOURCE);
}

#[test]
fn nodes_of_one_machine_on_loopback_are_bucketed_apart() {
    let mut book = AddressBook::new([2; 32]);
    let local = Group::of("127.0.0.1".parse().unwrap());
    let added = (0..40u16)
        .filter(|i| book.add(SocketAddr::from(([127, 0, 0, 1], 30_000 + i)), PeerId::random(), local, 1))
        .count();
    assert!(added >= 35, "only {added} of 40 local nodes kept");
}
