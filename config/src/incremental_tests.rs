//! Tests of incremental validation: on random chains of transactions
//! (valid and conflicting edits of every kind of object) it gives exactly
//! the whole validation's verdict, errors and numbered config; a
//! one-object change of each kind takes the fast path; and what the fast
//! path touches does not grow with the config.

use std::net::IpAddr;

use proptest::prelude::*;
use xvs_types::MacAddr;

use super::super::testutil::base;
use super::super::{
    AclConfig, BridgeConfig, Config, Direction, LookupConfig, LookupEntryConfig,
    LookupProviderConfig, MissAction, NeighborConfig, OverlayAddrConfig, PortConfig, QosConfig,
    RouteConfig, Shared, StaticFdbConfig, TunnelConfig, TunnelKind, MAX_VNI,
};
use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mac(last: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, last])
}

const BRIDGES: [&str; 5] = ["br0", "br1", "br2", "br3", "-bad"];
const PORTS: [&str; 8] = ["vm1", "vm2", "vm3", "vx1", "vx2", "vx3", "vx4", "eth0"];
// The uplink's own address, unicast VTEPs of both families, a group, a
// loopback.
const IPS: [&str; 8] = [
    "192.0.2.1",
    "192.0.2.2",
    "192.0.2.3",
    "198.51.100.7",
    "239.1.1.1",
    "2001:db8::2",
    "127.0.0.1",
    "192.0.2.9",
];
const VNIS: [u32; 4] = [42, 7, 1000, MAX_VNI + 1];
const NUMBERS: [Option<u16>; 7] = [None, None, None, Some(0), Some(2), Some(9), Some(10)];

/// Pushes `x` as its own shared object, as an editor adds one.
fn push<T>(list: &mut Vec<Shared<T>>, x: T) {
    list.push(Shared::new(x));
}

fn pick<T: Copy>(pool: &[T], i: u8) -> T {
    pool[usize::from(i) % pool.len()]
}

fn lookup(i: u8) -> Option<LookupConfig> {
    let p = match i % 6 {
        0 | 1 => return None,
        2 => LookupProviderConfig::Direct {
            vtep: ip("192.0.2.9"),
        },
        3 => LookupProviderConfig::Multicast {
            group: ip("239.1.1.1"),
        },
        4 => LookupProviderConfig::Direct {
            vtep: ip("2001:db8::9"),
        },
        _ => LookupProviderConfig::Static {
            entries: vec![LookupEntryConfig {
                vlan: 0,
                mac: mac(9),
                vtep: Some(ip("198.51.100.8")),
                ip: None,
            }],
        },
    };
    Some(LookupConfig::new(p, MissAction::Flood))
}

fn bridge(a: u8, b: u8) -> BridgeConfig {
    let mut br = BridgeConfig::new(pick(&BRIDGES, a));
    br.lookup = lookup(b);
    if b % 11 == 10 {
        br.fdb_max_entries = 0;
    }
    br
}

fn tunnel(x: [u8; 4]) -> TunnelConfig {
    let [a, b, c, d] = x;
    let remote = ip(pick(&IPS, c));
    let mut t = TunnelConfig::new(
        pick(&PORTS, a),
        pick(&BRIDGES, b),
        if d % 5 == 4 {
            TunnelKind::Geneve
        } else {
            TunnelKind::Vxlan
        },
        pick(&VNIS, d / 5),
        vec![remote],
    );
    if d % 7 == 6 {
        t.local = Some(ip(pick(&IPS, d / 7)));
    }
    if c % 9 == 8 {
        t.remotes.push(ip(pick(&IPS, d)));
    }
    t.number = pick(&NUMBERS, b / 5);
    t
}

fn port(x: [u8; 4]) -> PortConfig {
    let [a, b, c, d] = x;
    let mut p = PortConfig::new(pick(&PORTS, a), pick(&BRIDGES, b));
    p.number = pick(&NUMBERS, c);
    if d % 8 == 7 {
        p.mtu = 10;
    }
    p
}

fn fdb(x: [u8; 4]) -> StaticFdbConfig {
    let [a, b, c, d] = x;
    StaticFdbConfig {
        bridge: pick(&BRIDGES, a).into(),
        vlan: if d % 13 == 12 { 4095 } else { 0 },
        mac: if c % 10 == 9 {
            MacAddr::BROADCAST
        } else {
            mac(c % 4)
        },
        port: pick(&PORTS, b).into(),
        remote: (d % 3 == 0).then(|| ip(pick(&IPS, d / 3))),
    }
}

fn dir(i: u8) -> Direction {
    if i % 2 == 0 {
        Direction::In
    } else {
        Direction::Out
    }
}

/// Index of an existing object, if the list has any.
fn at(len: usize, i: u8) -> Option<usize> {
    (len > 0).then(|| usize::from(i) % len)
}

/// One edit of `c`, as the transactions of xvsctl make them (and some no
/// editor would, such as a reordered list), valid or not.
fn edit(c: &mut Config, op: u8, x: [u8; 4]) {
    let [a, b, cc, d] = x;
    match op % 28 {
        0 => push(&mut c.bridges, bridge(a, b)),
        1 => {
            if let Some(i) = at(c.bridges.len(), a) {
                c.bridges.remove(i);
            }
        }
        2 => {
            if let Some(i) = at(c.bridges.len(), a) {
                let name = c.bridges[i].name.clone();
                c.bridges[i] = bridge(0, b).into();
                c.bridges[i].name = name;
            }
        }
        3 => push(&mut c.ports, port(x)),
        4 => {
            if let Some(i) = at(c.ports.len(), a) {
                c.ports.remove(i);
            }
        }
        5 => {
            if let Some(i) = at(c.ports.len(), a) {
                match b % 3 {
                    0 => c.ports[i].bridge = pick(&BRIDGES, cc).into(),
                    1 => c.ports[i].mtu = if d % 2 == 0 { 9000 } else { 10 },
                    _ => c.ports[i].number = pick(&NUMBERS, d),
                }
            }
        }
        6 => push(&mut c.tunnels, tunnel(x)),
        7 => {
            if let Some(i) = at(c.tunnels.len(), a) {
                c.tunnels.remove(i);
            }
        }
        8 | 25 => {
            if let Some(i) = at(c.tunnels.len(), a) {
                let t = &mut c.tunnels[i];
                match b % 7 {
                    0 => t.ttl = cc,
                    1 => t.vni = pick(&VNIS, cc),
                    2 => t.remotes = vec![ip(pick(&IPS, cc))],
                    3 => t.local = (cc % 2 == 0).then(|| ip(pick(&IPS, d))),
                    4 => t.bridge = pick(&BRIDGES, cc).into(),
                    5 => t.number = pick(&NUMBERS, cc),
                    _ => t.remotes.push(ip(pick(&IPS, cc))),
                }
            }
        }
        9 => push(&mut c.fdb, fdb(x)),
        10 => {
            if let Some(i) = at(c.fdb.len(), a) {
                c.fdb.remove(i);
            }
        }
        11 => {
            if let Some(i) = at(c.fdb.len(), a) {
                c.fdb[i] = fdb([c.fdb[i].bridge.len() as u8, b, cc, d]).into();
            }
        }
        12 => push(
            &mut c.acls,
            AclConfig {
                port: pick(&PORTS, a).into(),
                dir: dir(b),
                rules: vec![format!("priority={cc},action=drop")],
            },
        ),
        13 => {
            if let Some(i) = at(c.acls.len(), a) {
                c.acls.remove(i);
            }
        }
        14 => push(
            &mut c.qos,
            QosConfig {
                port: pick(&PORTS, a).into(),
                dir: dir(b),
                rate_bps: 1_000_000,
                burst_bytes: u64::from(cc) * 1000,
                peak_bps: None,
            },
        ),
        15 => {
            if let Some(i) = at(c.qos.len(), a) {
                c.qos.remove(i);
            }
        }
        16 => push(
            &mut c.routes,
            RouteConfig {
                prefix: pick(&["198.51.100.0/24", "0.0.0.0/0", "2001:db8::/32"], a)
                    .parse()
                    .unwrap(),
                gateway: (b % 2 == 0).then(|| ip(pick(&IPS, cc))),
                dev: pick(&["eth0", "eth1", ""], d).into(),
                metric: u32::from(b % 3),
            },
        ),
        17 => {
            if let Some(i) = at(c.routes.len(), a) {
                c.routes.remove(i);
            }
        }
        18 => push(
            &mut c.neighbors,
            NeighborConfig {
                ip: ip(pick(&IPS, a)),
                mac: if b % 5 == 4 {
                    MacAddr::BROADCAST
                } else {
                    mac(b % 3)
                },
            },
        ),
        19 => {
            if let Some(i) = at(c.neighbors.len(), a) {
                c.neighbors.remove(i);
            }
        }
        20 => push(
            &mut c.addrs,
            OverlayAddrConfig {
                bridge: pick(&BRIDGES, a).into(),
                vlan: 0,
                ip: ip(pick(&["10.1.0.1", "10.1.0.2", "224.0.0.1"], b)),
                mac: mac(cc % 3),
                owner: None,
            },
        ),
        21 => {
            if let Some(i) = at(c.addrs.len(), a) {
                c.addrs.remove(i);
            }
        }
        22 => {
            if let Some(u) = c.uplink.as_mut() {
                u.local_ips = vec![ip(pick(&IPS, a))];
            }
        }
        23 => {
            c.meta.insert(format!("k{a}"), serde_json::json!(b));
        }
        // A tunnel becomes a port of the same name and bridge, or back:
        // what static MACs on it may say changes.
        26 => {
            if let Some(i) = at(c.tunnels.len(), a) {
                let t = c.tunnels.remove(i);
                push(
                    &mut c.ports,
                    PortConfig::new(t.name.clone(), t.bridge.clone()),
                );
            }
        }
        27 => {
            if let Some(i) = at(c.ports.len(), a) {
                let p = c.ports.remove(i);
                let mut t = tunnel(x);
                t.name = p.name.clone();
                t.bridge = p.bridge.clone();
                push(&mut c.tunnels, t);
            }
        }
        _ => {
            if let (Some(i), Some(j)) = (at(c.tunnels.len(), a), at(c.tunnels.len(), b)) {
                c.tunnels.swap(i, j);
            }
        }
    }
}

/// A valid config with something of every kind: a bridge with a lookup,
/// a multicast tunnel, static MACs on a port and on a tunnel, ACLs,
/// policers, routes, neighbors and addresses.
fn rich() -> ValidConfig {
    let mut c = base();
    // Both families, so a tunnel may change family and static MACs on it
    // be refused for theirs.
    if let Some(u) = c.uplink.as_mut() {
        u.local_ips.push(ip("2001:db8::1"));
    }
    c.bridges[0].lookup = lookup(2);
    push(&mut c.bridges, bridge(1, 3));
    push(&mut c.ports, PortConfig::new("vm2", "br1"));
    push(
        &mut c.tunnels,
        TunnelConfig::new("vx2", "br1", TunnelKind::Vxlan, 7, vec![ip("239.1.1.1")]),
    );
    push(&mut c.fdb, fdb([0, 0, 1, 1]));
    push(&mut c.fdb, fdb([0, 3, 2, 1]));
    push(&mut c.fdb, fdb([0, 3, 0, 9]));
    push(
        &mut c.acls,
        AclConfig {
            port: "vm1".into(),
            dir: Direction::In,
            rules: vec![],
        },
    );
    push(
        &mut c.qos,
        QosConfig {
            port: "vx1".into(),
            dir: Direction::Out,
            rate_bps: 1_000_000,
            burst_bytes: 10_000,
            peak_bps: None,
        },
    );
    push(
        &mut c.routes,
        RouteConfig {
            prefix: "0.0.0.0/0".parse().unwrap(),
            gateway: Some(ip("192.0.2.254")),
            dev: "eth0".into(),
            metric: 0,
        },
    );
    push(
        &mut c.neighbors,
        NeighborConfig {
            ip: ip("192.0.2.254"),
            mac: mac(1),
        },
    );
    push(
        &mut c.addrs,
        OverlayAddrConfig {
            bridge: "br1".into(),
            vlan: 0,
            ip: ip("10.1.0.1"),
            mac: mac(1),
            owner: None,
        },
    );
    c.validated().expect("the rich base is valid")
}

/// `revalidate` against `running` equals `validated`, whatever `new` is.
fn same_as_whole(
    running: &ValidConfig,
    new: Config,
) -> (Result<ValidConfig, ConfigErrors>, Revalidation) {
    let (got, work) = running.revalidate_traced(new.clone());
    let want = new.validated();
    assert_eq!(got, want, "revalidate differs from validated ({work:?})");
    (got, work)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Chains of transactions from a valid config, each of one to three
    /// edits: every verdict, error list and numbered config is the whole
    /// validation's, and an accepted one is the next running config.
    #[test]
    fn revalidation_equals_whole_validation(
        start in 0u8..2,
        txs in proptest::collection::vec(
            proptest::collection::vec((0u8..28, any::<[u8; 4]>()), 1..4),
            1..12,
        ),
    ) {
        let mut running = if start == 0 {
            base().validated().unwrap()
        } else {
            rich()
        };
        // The previous config stays usable (the daemon's rollback): each
        // step is checked from it too.
        let mut previous = running.clone();
        for tx in txs {
            let mut new = running.config().clone();
            for (op, x) in tx {
                edit(&mut new, op, x);
            }
            let _ = same_as_whole(&previous, new.clone());
            if let (Ok(next), _) = same_as_whole(&running, new) {
                previous = std::mem::replace(&mut running, next);
            }
        }
    }
}

/// A config of `n` bridges, each with a tunnel, and a port on the first.
fn wide(n: usize) -> ValidConfig {
    let mut c = base();
    for i in 0..n {
        push(&mut c.bridges, BridgeConfig::new(format!("b{i}")));
        let remote = IpAddr::from(std::net::Ipv4Addr::from(0x0a80_0000 + i as u32 + 2));
        push(
            &mut c.tunnels,
            TunnelConfig::new(
                format!("t{i}"),
                format!("b{i}"),
                TunnelKind::Vxlan,
                i as u32 + 100,
                vec![remote],
            ),
        );
    }
    c.validated().unwrap()
}

/// `running` revalidated with `f`'s edit: accepted on the fast path,
/// touching at most `objects` objects, and equal to the whole validation.
fn fast_ok(running: &ValidConfig, objects: usize, f: impl FnOnce(&mut Config)) -> ValidConfig {
    let mut new = running.config().clone();
    f(&mut new);
    let (got, work) = same_as_whole(running, new);
    assert!(work.fast, "{work:?}");
    assert!(work.objects <= objects, "{work:?}");
    got.unwrap()
}

/// `running` revalidated with `f`'s edit: refused, with the whole
/// validation's errors.
fn refused(running: &ValidConfig, f: impl FnOnce(&mut Config)) -> ConfigErrors {
    let mut new = running.config().clone();
    f(&mut new);
    let (got, work) = same_as_whole(running, new);
    assert!(!work.fast, "{work:?}");
    got.unwrap_err()
}

#[test]
fn one_object_changes_of_every_kind_take_the_fast_path() {
    let r = rich();
    // Bridges.
    fast_ok(&r, 1, |c| push(&mut c.bridges, BridgeConfig::new("br9")));
    let r2 = fast_ok(&r, 1, |c| push(&mut c.bridges, BridgeConfig::new("br9")));
    fast_ok(&r2, 1, |c| {
        c.bridges.pop();
    });
    fast_ok(&r, 2, |c| c.bridges[0].fdb_aging_secs = 9);
    // Ports, numbered as `validated` numbers them.
    let r2 = fast_ok(&r, 1, |c| push(&mut c.ports, PortConfig::new("vm9", "br1")));
    assert_eq!(r2.config().port_numbers()["vm9"], 6);
    fast_ok(&r, 2, |c| c.ports[1].mtu = 9000);
    fast_ok(&r, 1, |c| {
        c.ports.remove(1);
    });
    // Tunnels.
    // One more for br1's lookup, checked against its tunnels.
    fast_ok(&r, 2, |c| {
        let mut t = TunnelConfig::new("vx9", "br1", TunnelKind::Vxlan, 7, vec![ip("239.1.1.1")]);
        t.dst_port = Some(4790);
        push(&mut c.tunnels, t)
    });
    fast_ok(&r, 3, |c| c.tunnels[0].ttl = 9);
    fast_ok(&r, 4, |c| {
        c.tunnels[1].remotes = vec![ip("239.1.1.2")];
        c.bridges[1].lookup = None;
    });
    refused(&r, |c| c.tunnels[1].remotes = vec![ip("239.1.1.2")]);
    // A tunnel changed under the static MACs on it: they are checked
    // against its new shape without being looked for.
    fast_ok(&r, 3, |c| c.tunnels[0].remotes = vec![ip("192.0.2.3")]);
    refused(&r, |c| {
        c.tunnels[0].remotes = vec![ip("192.0.2.3"), ip("192.0.2.4")];
    });
    refused(&r, |c| c.tunnels[0].remotes = vec![ip("239.1.1.9")]);
    // Static MACs, ACLs, policers, routes, neighbors, addresses.
    fast_ok(&r, 1, |c| push(&mut c.fdb, fdb([0, 0, 3, 1])));
    fast_ok(&r, 1, |c| {
        c.fdb.remove(0);
    });
    fast_ok(&r, 1, |c| {
        push(
            &mut c.acls,
            AclConfig {
                port: "vx2".into(),
                dir: Direction::Out,
                rules: vec![],
            },
        )
    });
    fast_ok(&r, 1, |c| {
        c.acls.clear();
    });
    fast_ok(&r, 2, |c| c.qos[0].rate_bps = 5);
    fast_ok(&r, 1, |c| {
        push(
            &mut c.routes,
            RouteConfig {
                prefix: "198.51.100.0/24".parse().unwrap(),
                gateway: None,
                dev: "eth0".into(),
                metric: 1,
            },
        )
    });
    fast_ok(&r, 2, |c| c.neighbors[0].mac = mac(3));
    fast_ok(&r, 1, |c| {
        push(
            &mut c.addrs,
            OverlayAddrConfig {
                bridge: "br0".into(),
                vlan: 0,
                ip: ip("10.1.0.1"),
                mac: mac(2),
                owner: None,
            },
        )
    });
    // Records of other control planes are free.
    fast_ok(&r, 0, |c| {
        c.meta.insert("model".into(), serde_json::json!(1));
    });
}

#[test]
fn conflicts_fall_back_to_the_whole_validation_and_its_errors() {
    let r = rich();
    // A bridge still named by ports, tunnels, static MACs, addresses.
    let e = refused(&r, |c| {
        c.bridges.remove(1);
    });
    assert!(e.to_string().contains("unknown bridge \"br1\""), "{e}");
    // A port still named by an ACL; a tunnel by static MACs and a
    // policer.
    refused(&r, |c| {
        c.ports.remove(0);
    });
    refused(&r, |c| {
        c.tunnels.remove(0);
    });
    // A name taken, a number taken, a VNI clash in a bridge, a wire key.
    refused(&r, |c| push(&mut c.ports, PortConfig::new("vx1", "br0")));
    refused(&r, |c| {
        let mut p = PortConfig::new("vm9", "br0");
        p.number = Some(2);
        push(&mut c.ports, p);
    });
    refused(&r, |c| {
        push(
            &mut c.tunnels,
            TunnelConfig::new("vx9", "br0", TunnelKind::Vxlan, 43, vec![ip("192.0.2.3")]),
        )
    });
    refused(&r, |c| {
        push(
            &mut c.tunnels,
            TunnelConfig::new("vx9", "br2", TunnelKind::Vxlan, 42, vec![ip("192.0.2.3")]),
        )
    });
    // A tunnel's local that another tunnel has as its remote.
    refused(&r, |c| c.tunnels[1].local = Some(ip("192.0.2.2")));
    // The lookup's group no longer a tunnel's.
    refused(&r, |c| c.bridges[1].lookup = lookup(4));
    // Duplicate keys.
    refused(&r, |c| c.fdb.push(c.fdb[0].clone()));
    refused(&r, |c| c.acls.push(c.acls[0].clone()));
    refused(&r, |c| c.neighbors.push(c.neighbors[0].clone()));
    refused(&r, |c| {
        let mut a = c.addrs[0].clone();
        a.mac = mac(2);
        c.addrs.push(a);
    });
}

#[test]
fn the_fast_path_costs_what_changed_not_the_config() {
    let small = wide(10);
    let large = wide(2_000);
    for r in [&small, &large] {
        let (_, first) = r.revalidate_traced(r.config().clone());
        assert!(first.fast && first.index_built && first.objects == 0);
        let next = fast_ok(r, 2, |c| c.tunnels[5].ttl = 9);
        // Derived, not rebuilt: the next revalidation builds nothing.
        let (_, work) = next.revalidate_traced({
            let mut c = next.config().clone();
            push(&mut c.ports, PortConfig::new("vm9", "b3"));
            c
        });
        assert!(
            work.fast && !work.index_built && work.objects == 1,
            "{work:?}"
        );
        // t7 (after base's vx1) and b7 (after br0).
        let gone = fast_ok(r, 1, |c| {
            c.tunnels.remove(8);
        });
        // Its bridge can go now.
        fast_ok(&gone, 1, |c| {
            c.bridges.remove(8);
        });
    }
}

#[test]
fn a_running_config_stays_usable_after_the_next_is_derived() {
    let r = wide(20);
    let a = fast_ok(&r, 1, |c| push(&mut c.ports, PortConfig::new("vm9", "b3")));
    // From r again, as a rollback would: vm9 is free there.
    let b = fast_ok(&r, 1, |c| {
        let mut t = TunnelConfig::new("vm9", "b4", TunnelKind::Vxlan, 104, vec![ip("10.9.9.9")]);
        t.dst_port = Some(4790);
        push(&mut c.tunnels, t)
    });
    assert_eq!(
        a.config().port_numbers()["vm9"],
        b.config().port_numbers()["vm9"]
    );
    refused(&a, |c| c.tunnels.push(b.config().tunnels[20].clone()));
}

#[test]
fn an_uplink_change_is_validated_whole() {
    let r = rich();
    let mut c = r.config().clone();
    c.uplink.as_mut().unwrap().mtu = 9000;
    let (got, work) = same_as_whole(&r, c);
    assert!(got.is_ok() && !work.fast);
}

#[test]
fn static_macs_are_checked_against_their_tunnel_s_new_family() {
    let r = rich();
    // vx1 has a static MAC behind 198.51.100.7: it cannot turn IPv6.
    let v6 = |c: &mut Config| {
        c.bridges[0].lookup = None;
        c.tunnels[0].remotes = vec![ip("2001:db8::2")];
    };
    let e = refused(&r, v6);
    assert!(e.to_string().contains("differ in family"), "{e}");
    let r6 = fast_ok(&r, 6, |c| {
        v6(c);
        c.fdb.retain(|f| f.remote.is_none());
    });
    // And back: a static MAC behind an IPv6 VTEP keeps it IPv6.
    let r6 = fast_ok(&r6, 1, |c| {
        let mut f = fdb([0, 3, 0, 1]);
        f.remote = Some(ip("2001:db8::7"));
        push(&mut c.fdb, f);
    });
    refused(&r6, |c| c.tunnels[0].remotes = vec![ip("192.0.2.3")]);
    // A port cannot take a static MAC with a remote from a tunnel.
    refused(&r, |c| {
        let t = c.tunnels.remove(0);
        push(
            &mut c.ports,
            PortConfig::new(t.name.clone(), t.bridge.clone()),
        );
        c.acls.clear();
        c.qos.clear();
    });
}

#[test]
fn a_prepared_config_is_revalidated_without_building_its_index() {
    let r = wide(50);
    r.prepare();
    let (_, work) = r.revalidate_traced(r.config().clone());
    assert!(work.fast && !work.index_built, "{work:?}");
}
