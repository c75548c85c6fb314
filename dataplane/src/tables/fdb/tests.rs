//! Tests of the FDB writer and its views.

use super::table::BUCKET;
use super::*;
use proptest::prelude::*;

const S: u64 = NS_PER_SEC;

fn mac(n: u64) -> MacAddr {
    // Locally administered unicast: 02:xx:...
    MacAddr::from_u64(0x0200_0000_0000 | n)
}

fn fdb(max: usize) -> Fdb {
    Fdb::new(FdbConfig {
        max_entries: max,
        ..FdbConfig::default()
    })
    .unwrap()
}

#[test]
fn learn_refresh_move() {
    let mut f = fdb(16);
    let a = FdbDest::local(1);
    let b = FdbDest::tunnel(2, 0);
    assert_eq!(f.learn(10, mac(1), a, 0), LearnOutcome::New);
    assert_eq!(f.learn(10, mac(1), a, S), LearnOutcome::Refreshed);
    assert_eq!(
        f.learn(10, mac(1), b, 2 * S),
        LearnOutcome::Moved { from: a }
    );
    assert_eq!(
        f.learn(10, mac(1), FdbDest::tunnel(2, 1), 2 * S),
        LearnOutcome::Moved { from: b }
    );
    // Same MAC in another VLAN is another entry.
    assert_eq!(f.learn(11, mac(1), a, 0), LearnOutcome::New);
    let v = f.view();
    assert_eq!(v.lookup(10, mac(1)), Some(FdbDest::tunnel(2, 1)));
    assert_eq!(v.lookup(11, mac(1)), Some(a));
    assert_eq!(v.lookup(12, mac(1)), None);
    let c = f.counters();
    assert_eq!((c.learned, c.moved), (2, 2));
}

#[test]
fn invalid_sources_are_not_learned() {
    let mut f = fdb(16);
    let d = FdbDest::local(1);
    assert_eq!(f.learn(1, MacAddr::BROADCAST, d, 0), LearnOutcome::Invalid);
    assert_eq!(
        f.learn(1, MacAddr([1, 0, 0x5e, 0, 0, 1]), d, 0),
        LearnOutcome::Invalid
    );
    assert_eq!(f.learn(1, MacAddr::ZERO, d, 0), LearnOutcome::Invalid);
    assert_eq!(f.learn(4096, mac(1), d, 0), LearnOutcome::Invalid);
    assert_eq!(
        f.learn(1, mac(1), FdbDest::local(NO_PORT), 0),
        LearnOutcome::Invalid
    );
    assert!(f.is_empty());
    assert_eq!(f.counters().invalid, 5);
    assert!(matches!(
        f.add_static(1, MacAddr::BROADCAST, d),
        Err(FdbError::InvalidMac { .. })
    ));
    assert!(matches!(
        f.add_static(5000, mac(1), d),
        Err(FdbError::InvalidVlan { vlan: 5000, .. })
    ));
}

#[test]
fn static_wins_over_learning_and_never_ages() {
    let mut f = fdb(16);
    let s = FdbDest::local(3);
    f.learn(1, mac(7), FdbDest::local(1), 0);
    f.add_static(1, mac(7), s).unwrap();
    assert_eq!(
        f.learn(1, mac(7), FdbDest::local(1), S),
        LearnOutcome::StaticIgnored
    );
    assert_eq!(f.age(10_000 * S), 0);
    assert_eq!(f.flush(), 0);
    assert_eq!(f.flush_port(3), 0);
    assert_eq!(f.view().lookup(1, mac(7)), Some(s));
    let e = f.get(1, mac(7), 99 * S).unwrap();
    assert!(e.is_static);
    assert_eq!(e.age_ns, 0);
    assert!(f.del(1, mac(7)));
    assert!(!f.del(1, mac(7)));
    assert_eq!(f.view().lookup(1, mac(7)), None);
}

#[test]
fn aging_follows_now() {
    let mut f = fdb(16);
    let d = FdbDest::local(1);
    f.learn(0, mac(1), d, 0);
    f.learn(0, mac(2), d, 100 * S);
    assert_eq!(f.age(300 * S), 0);
    assert_eq!(f.age(301 * S), 1);
    assert_eq!(f.get(0, mac(2), 150 * S).unwrap().age_ns, 50 * S);
    // A refresh restarts the idle timer.
    assert_eq!(f.learn(0, mac(2), d, 350 * S), LearnOutcome::Refreshed);
    assert_eq!(f.age(500 * S), 0);
    assert_eq!(f.age(651 * S), 1);
    assert!(f.is_empty());
    assert_eq!(f.counters().aged, 2);
    assert_eq!(f.view().lookup(0, mac(2)), None);
}

#[test]
fn a_port_limit_refuses_new_and_moving_macs_but_never_evicts() {
    let mut f = fdb(16);
    let (p1, p2) = (FdbDest::local(1), FdbDest::local(2));
    let lim = Some(2);
    assert_eq!(f.learn_limited(0, mac(1), p1, 0, lim), LearnOutcome::New);
    // Static entries are config, not counted against the limit.
    f.add_static(0, mac(9), p1).unwrap();
    assert_eq!(f.learn_limited(0, mac(2), p1, 0, lim), LearnOutcome::New);
    assert_eq!(
        f.learn_limited(0, mac(3), p1, 0, lim),
        LearnOutcome::PortLimit
    );
    assert_eq!(
        f.learn_limited(0, mac(2), p1, S, lim),
        LearnOutcome::Refreshed
    );
    // Full port 1 takes no MAC from port 2 either.
    assert_eq!(f.learn(0, mac(4), p2, 0), LearnOutcome::New);
    assert_eq!(
        f.learn_limited(0, mac(4), p1, 0, lim),
        LearnOutcome::PortLimit
    );
    assert_eq!(f.view().lookup(0, mac(4)), Some(p2));
    // Moves between remotes of one tunnel port add nothing.
    let (t0, t1) = (FdbDest::tunnel(5, 0), FdbDest::tunnel(5, 1));
    assert_eq!(
        f.learn_limited(0, mac(5), t0, 0, Some(1)),
        LearnOutcome::New
    );
    assert!(matches!(
        f.learn_limited(0, mac(5), t1, 0, Some(1)),
        LearnOutcome::Moved { .. }
    ));
    assert_eq!(f.counters().port_limit, 2);
    assert_eq!(
        (f.learned_on(1), f.learned_on(2), f.learned_on(5)),
        (2, 1, 1)
    );
    // Room again once one leaves.
    assert!(f.del(0, mac(1)));
    assert_eq!(f.learn_limited(0, mac(3), p1, 0, lim), LearnOutcome::New);
}

#[test]
fn size_limit() {
    let mut f = fdb(2);
    let d = FdbDest::local(1);
    assert_eq!(f.learn(0, mac(1), d, 0), LearnOutcome::New);
    assert_eq!(f.learn(0, mac(2), d, 0), LearnOutcome::New);
    assert_eq!(f.learn(0, mac(3), d, 0), LearnOutcome::TableFull);
    // Existing entries still refresh and move when full.
    assert_eq!(f.learn(0, mac(2), d, 0), LearnOutcome::Refreshed);
    assert!(matches!(
        f.learn(0, mac(2), FdbDest::local(2), 0),
        LearnOutcome::Moved { .. }
    ));
    assert_eq!(
        f.add_static(0, mac(3), d),
        Err(FdbError::Full {
            vlan: 0,
            mac: mac(3),
            max: 2
        })
    );
    assert_eq!(f.counters().full, 1);
    assert!(matches!(
        Fdb::new(FdbConfig {
            max_entries: 0,
            ..FdbConfig::default()
        }),
        Err(FdbError::BadMaxEntries(0))
    ));
}

#[test]
fn flush_port_and_flush() {
    let mut f = fdb(16);
    f.learn(0, mac(1), FdbDest::local(1), 0);
    f.learn(0, mac(2), FdbDest::tunnel(2, 0), 0);
    f.learn(0, mac(3), FdbDest::tunnel(2, 1), 0);
    f.add_static(0, mac(4), FdbDest::local(2)).unwrap();
    assert_eq!(f.flush_port(2), 2);
    assert_eq!(f.len(), 2);
    assert_eq!(f.flush(), 1);
    let v = f.view();
    assert_eq!(v.lookup(0, mac(1)), None);
    assert_eq!(v.lookup(0, mac(4)), Some(FdbDest::local(2)));
}

#[test]
fn view_is_same_arc_when_unchanged() {
    let mut f = fdb(16);
    f.learn(0, mac(1), FdbDest::local(1), 0);
    let v1 = f.view();
    let v2 = f.view();
    assert!(Arc::ptr_eq(&v1, &v2));
    // Refresh does not change what workers see.
    f.learn(0, mac(1), FdbDest::local(1), S);
    assert!(Arc::ptr_eq(&v1, &f.view()));
    // Learn then delete again: a new view, same answers.
    f.learn(0, mac(2), FdbDest::local(1), S);
    f.del(0, mac(2));
    let v3 = f.view();
    assert!(!Arc::ptr_eq(&v1, &v3));
    assert_eq!(v3.lookup(0, mac(1)), Some(FdbDest::local(1)));
    // The old view is untouched by later changes.
    f.del(0, mac(1));
    assert_eq!(f.view().lookup(0, mac(1)), None);
    assert_eq!(v1.lookup(0, mac(1)), Some(FdbDest::local(1)));
}

#[test]
fn flapping_mac_does_not_grow_the_change_list() {
    let mut f = fdb(4);
    for i in 0..10_000u64 {
        f.learn(0, mac(1), FdbDest::local((i % 2) as u16), i * S);
    }
    let limit = 2 * FdbConfig::default().merge_min_delta;
    assert!(f.changed.len() <= limit + 1);
    assert!(f.changed.capacity() <= 2 * limit);
    assert_eq!(f.view().lookup(0, mac(1)), Some(FdbDest::local(1)));
    assert_eq!(f.counters().moved, 9_999);
}

#[test]
fn tombstones_hide_base_entries() {
    let mut f = Fdb::new(FdbConfig {
        max_entries: 100,
        merge_min_delta: 2,
        ..FdbConfig::default()
    })
    .unwrap();
    for i in 1..=3 {
        f.learn(0, mac(i), FdbDest::local(1), 0);
    }
    let v = f.view();
    assert_eq!(f.counters().merges, 1);
    assert_eq!(v.delta_len(), 0);
    assert!(f.del(0, mac(2)));
    f.learn(0, mac(3), FdbDest::local(9), 0);
    let v = f.view();
    assert_eq!(f.counters().merges, 1);
    assert_eq!(v.delta_len(), 2);
    let k = pack_key(0, mac(2));
    assert!(v.base.get(hash(k, v.base.seed), k).is_some());
    assert_eq!(v.lookup(0, mac(2)), None);
    assert_eq!(v.lookup(0, mac(3)), Some(FdbDest::local(9)));
    assert_eq!(v.lookup(0, mac(1)), Some(FdbDest::local(1)));
    // Re-learning the deleted MAC at its base position leaves no delta key.
    f.learn(0, mac(2), FdbDest::local(1), 0);
    assert_eq!(f.view().delta_len(), 1);
}

#[test]
fn table_probing_wraps_and_misses_terminate() {
    // A tiny table filled to its limit (one free slot left): every probe,
    // hit or miss, must still end, wrapping past the last bucket.
    let mut t = Table::with_room(6, 1);
    let cap = t.buckets.len() * BUCKET;
    let mut n = 0;
    for i in 0..100u64 {
        if t.insert_new(i, i) {
            n += 1;
        }
    }
    assert_eq!(n, cap - 1);
    for i in 0..100u64 {
        let got = t.get(hash(i, 1), i);
        assert!(got.is_none() || got == Some(i));
    }
}

#[test]
fn one_million_entries_fit_64_bytes_each() {
    let n: u64 = 1_000_000;
    let mut f = Fdb::new(FdbConfig {
        max_entries: 1 << 21,
        ..FdbConfig::default()
    })
    .unwrap();
    for i in 0..n {
        let vlan = (i % 7) as u16;
        let out = f.learn(vlan, mac(i), FdbDest::tunnel(1, (i % 5) as u16), 0);
        assert_eq!(out, LearnOutcome::New);
        if i == n / 2 {
            f.view();
        }
    }
    let v = f.view();
    let per_entry = f.memory_bytes() / f.len();
    assert!(per_entry <= 64, "{per_entry} bytes per entry");
    for i in (0..n).step_by(997) {
        assert_eq!(
            v.lookup((i % 7) as u16, mac(i)),
            Some(FdbDest::tunnel(1, (i % 5) as u16))
        );
    }
    assert_eq!(v.lookup(0, mac(n + 1)), None);
}

// ---- model check ------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Learn(u16, u64, FdbDest),
    Static(u16, u64, FdbDest),
    Del(u16, u64),
    Age(u64),
    FlushPort(PortNo),
    Flush,
    View,
}

fn dest() -> impl Strategy<Value = FdbDest> {
    (0u16..3, prop_oneof![Just(NO_REMOTE), 0u16..2])
        .prop_map(|(port, remote)| FdbDest { port, remote })
}

fn op() -> impl Strategy<Value = Op> {
    let vlan = 0u16..2;
    let m = 1u64..12;
    prop_oneof![
        6 => (vlan.clone(), m.clone(), dest()).prop_map(|(v, m, d)| Op::Learn(v, m, d)),
        1 => (vlan.clone(), m.clone(), dest()).prop_map(|(v, m, d)| Op::Static(v, m, d)),
        2 => (vlan, m).prop_map(|(v, m)| Op::Del(v, m)),
        1 => (0u64..200).prop_map(Op::Age),
        1 => (0u16..3).prop_map(Op::FlushPort),
        1 => Just(Op::Flush),
        3 => Just(Op::View),
    ]
}

/// The reference: what the FDB should contain, kept as naively as possible.
#[derive(Default)]
struct Model {
    m: HashMap<(u16, u64), (FdbDest, bool, u64)>,
}

const MAX: usize = 14;
const AGING: u64 = 300 * S;

impl Model {
    fn learn(&mut self, v: u16, m: u64, d: FdbDest, now: u64) -> LearnOutcome {
        let full = self.m.len() >= MAX;
        match self.m.get_mut(&(v, m)) {
            Some((_, true, _)) => LearnOutcome::StaticIgnored,
            Some((old, false, seen)) => {
                *seen = now;
                if *old == d {
                    LearnOutcome::Refreshed
                } else {
                    let from = *old;
                    *old = d;
                    LearnOutcome::Moved { from }
                }
            }
            None if full => LearnOutcome::TableFull,
            None => {
                self.m.insert((v, m), (d, false, now));
                LearnOutcome::New
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn view_matches_reference(ops in proptest::collection::vec(op(), 1..120)) {
        let mut f = Fdb::new(FdbConfig {
            max_entries: MAX,
            aging_ns: AGING,
            merge_min_delta: 3,
        }).unwrap();
        let mut model = Model::default();
        // Whole seconds, so the FDB's one-second resolution is exact here.
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Learn(v, m, d) => {
                    now += S;
                    prop_assert_eq!(f.learn(v, mac(m), d, now), model.learn(v, m, d, now));
                }
                Op::Static(v, m, d) => {
                    let r = f.add_static(v, mac(m), d);
                    if model.m.contains_key(&(v, m)) || model.m.len() < MAX {
                        prop_assert!(r.is_ok());
                        model.m.insert((v, m), (d, true, 0));
                    } else {
                        prop_assert!(r.is_err());
                    }
                }
                Op::Del(v, m) => {
                    prop_assert_eq!(f.del(v, mac(m)), model.m.remove(&(v, m)).is_some());
                }
                Op::Age(secs) => {
                    now += secs * S;
                    let before = model.m.len();
                    model.m.retain(|_, (_, st, seen)| *st || now - *seen <= AGING);
                    prop_assert_eq!(f.age(now), before - model.m.len());
                }
                Op::FlushPort(p) => {
                    let before = model.m.len();
                    model.m.retain(|_, (d, st, _)| *st || d.port != p);
                    prop_assert_eq!(f.flush_port(p), before - model.m.len());
                }
                Op::Flush => {
                    let before = model.m.len();
                    model.m.retain(|_, (_, st, _)| *st);
                    prop_assert_eq!(f.flush(), before - model.m.len());
                }
                Op::View => {
                    let view = f.view();
                    for v in 0u16..2 {
                        for m in 0u64..13 {
                            let want = model.m.get(&(v, m)).map(|e| e.0);
                            prop_assert_eq!(view.lookup(v, mac(m)), want, "vlan {} mac {}", v, m);
                        }
                    }
                }
            }
            prop_assert_eq!(f.len(), model.m.len());
            for p in 0u16..3 {
                let n = model.m.values().filter(|(d, st, _)| !st && d.port == p).count();
                prop_assert_eq!(f.learned_on(p), n, "learned on port {}", p);
            }
        }
        let mut shown: Vec<_> = f.iter(now).map(|e| (e.vlan, e.mac, e.dest, e.is_static)).collect();
        shown.sort_by_key(|e| (e.0, e.1));
        let mut want: Vec<_> = model.m.iter().map(|(&(v, m), &(d, st, _))| (v, mac(m), d, st)).collect();
        want.sort_by_key(|e| (e.0, e.1));
        prop_assert_eq!(shown, want);
    }
}

#[test]
fn a_fixed_seed_repeats_and_a_random_one_differs() {
    let seeded = || {
        let mut f = fdb(100_000);
        f.fix_seed(7);
        for i in 0..20_000 {
            let _ = f.learn(0, mac(i), FdbDest::local(1), 0);
        }
        let v = f.view();
        (v.seed, v.base.seed)
    };
    assert_eq!(seeded(), seeded());
    assert_ne!(fdb(10).view().seed, fdb(10).view().seed);
}
