//! Tests of the neighbour cache: states, the kernel's authority, what a
//! snooped reply may and may not do, eviction and refresh.

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const S: u64 = NS_PER_SEC;

fn ip(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
}

fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, n])
}

fn cache(capacity: usize) -> NeighCache {
    NeighCache::new(NeighConfig {
        capacity,
        ..NeighConfig::default()
    })
    .unwrap()
}

#[test]
fn learn_lookup_and_changes() {
    let mut c = cache(8);
    let g0 = c.generation();
    assert_eq!(
        c.learn(ip(1), mac(1), 0, NeighSource::Kernel),
        NeighChange::New
    );
    assert_eq!(c.lookup(ip(1)), Some(mac(1)));
    let g1 = c.generation();
    assert!(g1 > g0);
    assert_eq!(
        c.learn(ip(1), mac(1), S, NeighSource::Kernel),
        NeighChange::Refreshed
    );
    assert_eq!(c.generation(), g1);
    assert_eq!(
        c.learn(ip(1), mac(2), 2 * S, NeighSource::Kernel),
        NeighChange::MacChanged { old: mac(1) }
    );
    assert!(c.generation() > g1);
    assert_eq!(
        c.state(ip(1)),
        Some(NeighState::Reachable { until_ns: 32 * S })
    );
    assert_eq!(
        c.learn(ip(2), MacAddr::BROADCAST, 0, NeighSource::Kernel),
        NeighChange::Ignored
    );
    assert_eq!(c.lookup(ip(2)), None);
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    assert_eq!(
        c.learn(v6, mac(6), 0, NeighSource::Kernel),
        NeighChange::New
    );
    assert_eq!(c.lookup(v6), Some(mac(6)));
    assert_eq!(c.lookup(IpAddr::V6(Ipv6Addr::LOCALHOST)), None);
}

#[test]
fn static_is_not_overridden_by_snooping() {
    let mut c = cache(8);
    assert_eq!(
        c.learn(ip(1), mac(1), 0, NeighSource::Kernel),
        NeighChange::New
    );
    assert_eq!(
        c.learn(ip(1), mac(9), 0, NeighSource::Static),
        NeighChange::MacChanged { old: mac(1) }
    );
    assert_eq!(
        c.learn(ip(1), mac(2), 0, NeighSource::Snooped),
        NeighChange::Ignored
    );
    assert_eq!(
        c.learn(ip(1), mac(2), 0, NeighSource::Kernel),
        NeighChange::Ignored
    );
    assert_eq!(c.lookup(ip(1)), Some(mac(9)));
    assert!(!c.request(ip(1), 0));
    assert!(c.expire(1_000_000 * S).is_empty());
    assert_eq!(c.flush(), 0);
    assert_eq!(c.state(ip(1)), Some(NeighState::Static));
    assert!(c.remove(ip(1)));
    assert_eq!(c.lookup(ip(1)), None);
}

#[test]
fn request_is_throttled_then_fails() {
    let mut c = cache(8);
    assert!(c.request(ip(1), 0));
    assert!(!c.request(ip(1), S / 2));
    assert!(c.request(ip(1), S));
    assert!(!c.request(ip(1), S + 1));
    assert!(c.request(ip(1), 2 * S));
    assert_eq!(
        c.state(ip(1)),
        Some(NeighState::Incomplete {
            retries: 3,
            next_retry_ns: 3 * S
        })
    );
    // Third request unanswered: give up.
    assert!(!c.request(ip(1), 3 * S));
    assert_eq!(c.state(ip(1)), Some(NeighState::Failed { since_ns: 3 * S }));
    assert_eq!(c.lookup(ip(1)), None);
    // Held down for one full retry cycle, then resolution starts again.
    assert!(!c.request(ip(1), 5 * S));
    assert!(c.request(ip(1), 6 * S));
    // An answer completes it.
    assert_eq!(
        c.learn(ip(1), mac(1), 6 * S + 1, NeighSource::Snooped),
        NeighChange::New
    );
    assert!(!c.request(ip(1), 7 * S));
}

#[test]
fn expire_moves_through_states() {
    let mut c = cache(8);
    c.learn(ip(1), mac(1), 0, NeighSource::Kernel);
    c.learn(ip(2), mac(2), 0, NeighSource::Static);
    assert!(c.request(ip(3), 0));
    let g = c.generation();
    assert!(c.expire(29 * S).is_empty());
    // Reachable -> Stale at 30 s, still usable, generation unchanged.
    assert_eq!(c.expire(30 * S), vec![ip(1)]);
    assert_eq!(c.state(ip(1)), Some(NeighState::Stale { since_ns: 30 * S }));
    assert_eq!(c.lookup(ip(1)), Some(mac(1)));
    assert_eq!(c.generation(), g);
    // A stale entry asks for re-confirmation, throttled.
    assert!(c.request(ip(1), 31 * S));
    assert!(!c.request(ip(1), 31 * S + 1));
    // Confirmed again.
    assert_eq!(
        c.learn(ip(1), mac(1), 40 * S, NeighSource::Snooped),
        NeighChange::Refreshed
    );
    // ip(3) was requested once at 0 and never again: dropped 60 s after
    // its retry time; ip(1) goes stale again.
    assert_eq!(c.expire(70 * S), vec![ip(1), ip(3)]);
    // Stale GC after 60 s more: removed, generation bumps.
    assert!(c.expire(129 * S).is_empty());
    assert_eq!(c.expire(130 * S), vec![ip(1)]);
    assert_eq!(c.state(ip(1)), None);
    assert!(c.generation() > g);
    // The static one survives everything.
    assert_eq!(c.lookup(ip(2)), Some(mac(2)));
}

#[test]
fn expire_fails_unanswered_and_collects_failed() {
    let mut c = cache(8);
    assert!(c.request(ip(1), 0));
    assert!(c.request(ip(1), S));
    assert!(c.request(ip(1), 2 * S));
    assert!(c.expire(2 * S + 1).is_empty());
    assert_eq!(c.expire(3 * S), vec![ip(1)]);
    assert_eq!(c.state(ip(1)), Some(NeighState::Failed { since_ns: 3 * S }));
    assert_eq!(c.expire(63 * S), vec![ip(1)]);
    assert!(c.is_empty());
    // An incomplete entry nobody asks about again is dropped too.
    assert!(c.request(ip(2), 100 * S));
    assert!(c.expire(160 * S).is_empty());
    assert_eq!(c.expire(161 * S), vec![ip(2)]);
}

#[test]
fn capacity_evicts_oldest_non_static() {
    let mut c = cache(3);
    c.learn(ip(1), mac(1), 0, NeighSource::Static);
    c.learn(ip(2), mac(2), 10, NeighSource::Kernel);
    c.learn(ip(3), mac(3), 5, NeighSource::Kernel);
    let g = c.generation();
    assert_eq!(
        c.learn(ip(4), mac(4), 20, NeighSource::Kernel),
        NeighChange::New
    );
    assert_eq!(c.len(), 3);
    assert_eq!(c.lookup(ip(3)), None);
    assert_eq!(c.lookup(ip(1)), Some(mac(1)));
    assert!(c.generation() > g);
    let ips: Vec<IpAddr> = c.iter().map(|e| e.ip).collect();
    assert_eq!(ips, vec![ip(1), ip(2), ip(4)]);

    let mut full = cache(1);
    full.learn(ip(1), mac(1), 0, NeighSource::Static);
    assert_eq!(
        full.learn(ip(2), mac(2), 0, NeighSource::Kernel),
        NeighChange::Ignored
    );
    assert!(!full.request(ip(2), 0));
}

#[test]
fn flush_keeps_static() {
    let mut c = cache(8);
    c.learn(ip(1), mac(1), 0, NeighSource::Static);
    c.learn(ip(2), mac(2), 0, NeighSource::Kernel);
    c.request(ip(3), 0);
    let g = c.generation();
    assert_eq!(c.flush(), 2);
    assert!(c.generation() > g);
    let shown: Vec<_> = c.iter().collect();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].mac, Some(mac(1)));
    assert_eq!(shown[0].source, NeighSource::Static);
}

/// Ten simulated minutes of a next hop in use that the kernel confirms
/// only now and then (its reachable time is random, up to 1.5 times
/// the base, then a DELAY and a probe): refreshed every `refresh_ns`,
/// the first well before it would go stale, and usable throughout.
#[test]
fn an_in_use_entry_is_refreshed_before_stale_and_stays_usable_while_answered() {
    let mut c = cache(8);
    let cfg = *c.config();
    c.learn_kernel(ip(1), mac(1), true, 0);
    c.set_in_use([ip(1)]);
    let step = S / 10;
    let mut refreshed = Vec::new();
    let mut confirmations = 1;
    let mut now = 0;
    while now <= 600 * S {
        c.expire(now);
        if c.due_refresh(now).contains(&ip(1)) {
            refreshed.push(now);
            // The kernel's answer to being marked used: confirmed
            // every 50 s, unconfirmed (DELAY, PROBE) in between.
            let confirmed = now % (50 * S) < S;
            confirmations += u64::from(confirmed);
            c.learn_kernel(ip(1), mac(1), confirmed, now);
        }
        assert_eq!(c.lookup(ip(1)), Some(mac(1)), "unusable at {now} ns");
        now += step;
    }
    assert!(refreshed[0] <= cfg.refresh_ns, "{}", refreshed[0]);
    assert!(refreshed[0] < cfg.reachable_ns);
    for w in refreshed.windows(2) {
        assert!(w[1] - w[0] <= cfg.refresh_ns + step, "{w:?}");
    }
    // What neigh-show tells the operator about it.
    let shown = c.iter().next().unwrap();
    assert_eq!(
        (shown.refreshes, shown.confirmations),
        (refreshed.len() as u64, confirmations)
    );
    assert!(confirmations > 10 && refreshed.len() > 500);
    // Not in use, the same entry goes: nobody re-confirms it.
    c.set_in_use([]);
    assert!(c.due_refresh(now + 10 * S).is_empty());
    c.expire(now + 200 * S);
    assert_eq!(c.lookup(ip(1)), None);
}

#[test]
fn a_kernel_deletion_keeps_an_in_use_mac_while_it_is_resolved_again() {
    let mut c = cache(8);
    c.learn_kernel(ip(1), mac(1), true, 0);
    c.learn_kernel(ip(2), mac(2), true, 0);
    c.set_in_use([ip(1)]);
    let g = c.generation();
    assert!(!c.kernel_deleted(ip(1), 5 * S));
    assert_eq!(c.lookup(ip(1)), Some(mac(1)));
    assert_eq!(c.state(ip(1)), Some(NeighState::Stale { since_ns: 5 * S }));
    assert_eq!(c.generation(), g, "templates keep their MAC");
    // Re-confirmation is due at once (it re-creates the kernel's entry).
    assert_eq!(c.due_refresh(5 * S), vec![ip(1)]);
    assert_eq!(
        c.learn_kernel(ip(1), mac(1), true, 5 * S + 1),
        NeighChange::Refreshed
    );
    // Not in use: gone with the kernel's.
    assert!(c.kernel_deleted(ip(2), 5 * S));
    assert_eq!(c.lookup(ip(2)), None);
    // Failed while confirmed (a deletion by hand fails it first): kept
    // and resolved again; failed again while unconfirmed: removed.
    assert!(!c.kernel_failed(ip(1), 7 * S));
    assert_eq!(c.state(ip(1)), Some(NeighState::Stale { since_ns: 7 * S }));
    assert_eq!(c.due_refresh(7 * S), vec![ip(1)]);
    assert!(c.kernel_failed(ip(1), 10 * S));
    assert_eq!(c.lookup(ip(1)), None);
    c.learn_kernel(ip(1), mac(1), true, 11 * S);
    // A stale kernel entry is usable, and moves a MAC like any kernel
    // entry.
    assert_eq!(
        c.learn_kernel(ip(3), mac(3), false, 6 * S),
        NeighChange::New
    );
    assert_eq!(c.lookup(ip(3)), Some(mac(3)));
    assert_eq!(
        c.learn_kernel(ip(1), mac(4), false, 6 * S),
        NeighChange::MacChanged { old: mac(1) }
    );
}

/// The operator's flood: 200,000 replies from other addresses, at
/// 20,000/s, into a full cache. The next hop in use stays, with its
/// MAC, and the cache does not grow.
#[test]
fn a_flood_of_unsolicited_replies_never_evicts_an_in_use_entry() {
    let mut c = cache(1024);
    let vtep = ip(2);
    c.learn_kernel(vtep, mac(2), true, 0);
    c.set_in_use([vtep]);
    // Fill the rest of the cache with kernel entries not in use.
    for n in 0..1100u32 {
        let a = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
        c.learn_kernel(a, mac(7), true, S);
    }
    assert_eq!(c.len(), 1024);
    let g = c.generation();
    for n in 0..200_000u32 {
        let a = IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + n));
        let now = 2 * S + u64::from(n) * 50_000;
        assert_eq!(
            c.learn(a, mac(9), now, NeighSource::Snooped),
            NeighChange::Unsolicited
        );
    }
    assert_eq!(c.len(), 1024);
    assert_eq!(c.generation(), g);
    // Kernel entries (arp_accept on) may evict, but never the one in use.
    for n in 0..5_000u32 {
        let a = IpAddr::V4(Ipv4Addr::from(0x0a02_0000 + n));
        c.learn_kernel(a, mac(8), true, 20 * S);
    }
    assert_eq!(c.len(), 1024);
    assert_eq!(c.lookup(vtep), Some(mac(2)));
}

#[test]
fn a_spoofed_reply_never_moves_a_known_mac() {
    let mut c = cache(8);
    c.learn_kernel(ip(2), mac(2), true, 0);
    c.set_in_use([ip(2), ip(3)]);
    let g = c.generation();
    assert_eq!(
        c.learn(ip(2), mac(66), S, NeighSource::Snooped),
        NeighChange::Conflict { kept: mac(2) }
    );
    assert_eq!(c.lookup(ip(2)), Some(mac(2)));
    assert_eq!(c.generation(), g);
    // The same MAC confirms it.
    assert_eq!(
        c.learn(ip(2), mac(2), 2 * S, NeighSource::Snooped),
        NeighChange::Refreshed
    );
    assert_eq!(
        c.state(ip(2)),
        Some(NeighState::Reachable { until_ns: 32 * S })
    );
    // Solicited: a next hop in use without a MAC, or one being resolved.
    assert_eq!(
        c.learn(ip(3), mac(3), 3 * S, NeighSource::Snooped),
        NeighChange::New
    );
    assert!(c.request(ip(4), 3 * S));
    assert_eq!(
        c.learn(ip(4), mac(4), 3 * S, NeighSource::Snooped),
        NeighChange::New
    );
    // Nobody asked for ip(5).
    assert_eq!(
        c.learn(ip(5), mac(5), 3 * S, NeighSource::Snooped),
        NeighChange::Unsolicited
    );
    assert_eq!(c.state(ip(5)), None);
    // The kernel's table decides: a move it accepted is taken.
    assert_eq!(
        c.learn_kernel(ip(2), mac(66), true, 4 * S),
        NeighChange::MacChanged { old: mac(2) }
    );
}

#[test]
fn bad_config_is_named() {
    let e = NeighCache::new(NeighConfig {
        retry_interval_ns: 0,
        ..NeighConfig::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("retry_interval_ns"));
    assert_eq!(
        NeighCache::new(NeighConfig {
            capacity: 0,
            ..NeighConfig::default()
        })
        .unwrap_err(),
        NeighError::BadCapacity(0)
    );
}
