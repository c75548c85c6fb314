//! A transaction costs what it changes (issue 15), shown without a clock:
//! [`Control::last_apply`] counts what an apply built, and the parts of
//! the snapshot a change did not touch are the running snapshot's own
//! (`Arc::ptr_eq`: the same flow table, address table and FDB view).
//! And building less changes nothing: after every edit of a varied
//! sequence (underlay and uplink changes among them) the snapshot equals
//! the one a fresh control plane compiles from the same config.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use xvs_config::{
    BridgeConfig, Config, NeighborConfig, OverlayAddrConfig, PortConfig, RouteConfig,
    StaticFdbConfig, TunnelConfig, TunnelKind, UplinkConfig,
};
use xvs_dataplane::control::{ApplyWork, Control};
use xvs_dataplane::snapshot::Snapshot;
use xvs_dataplane::testkit::UPLINK_MAC;
use xvs_types::MacAddr;

const BRIDGES: usize = 200;
const GATEWAY_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

fn remote(i: usize) -> IpAddr {
    Ipv4Addr::from(0x0a80_0000 + i as u32 + 2).into()
}

/// An uplink with a default route through a resolved gateway, and
/// `BRIDGES` bridges `b{i}` each with one VXLAN tunnel `t{i}`; bridge b1
/// also has a local port, a flow, an overlay address and static MACs.
fn config() -> Config {
    let mut c = Config {
        uplink: Some(UplinkConfig {
            iface: "u0".into(),
            number: None,
            mac: Some(UPLINK_MAC),
            local_ips: vec!["192.0.2.1".parse().unwrap()],
            mtu: 1500,
        }),
        routes: vec![RouteConfig {
            prefix: "0.0.0.0/0".parse().unwrap(),
            gateway: Some("192.0.2.2".parse().unwrap()),
            dev: "u0".into(),
            metric: 0,
        }
        .into()],
        neighbors: vec![NeighborConfig {
            ip: "192.0.2.2".parse().unwrap(),
            mac: GATEWAY_MAC,
        }
        .into()],
        ..Default::default()
    };
    for i in 0..BRIDGES {
        c.bridges.push(BridgeConfig::new(format!("b{i}")).into());
        c.tunnels.push(
            TunnelConfig::new(
                format!("t{i}"),
                format!("b{i}"),
                TunnelKind::Vxlan,
                i as u32 + 1,
                vec![remote(i)],
            )
            .into(),
        );
    }
    c.ports.push(PortConfig::new("pa1", "b1").into());
    c.assign_port_numbers();
    let pa1 = c.port_numbers()["pa1"];
    c.bridges[1].flows.push(format!(
        "priority=100,in_port={pa1},tcp,tp_dst=22,actions=drop"
    ));
    c.addrs.push(
        OverlayAddrConfig {
            bridge: "b1".into(),
            vlan: 0,
            ip: "10.1.0.5".parse().unwrap(),
            mac: MacAddr([2, 0, 0, 0, 1, 5]),
            owner: None,
        }
        .into(),
    );
    for (k, remote) in [(1, None), (2, Some("10.99.0.1".parse().unwrap()))] {
        c.fdb.push(
            StaticFdbConfig {
                bridge: "b1".into(),
                vlan: 0,
                mac: MacAddr([2, 0, 0, 0, 2, k]),
                port: "t1".into(),
                remote,
            }
            .into(),
        );
    }
    c
}

fn control(config: &Config) -> Control {
    let mut ctl = Control::new();
    ctl.underlay.uplink_mac = Some(UPLINK_MAC);
    ctl.apply(config.clone()).unwrap();
    ctl
}

/// Which bridges of `before` are in `after` with the very same flow table,
/// address table and FDB view.
fn shared(before: &Snapshot, after: &Snapshot) -> BTreeSet<String> {
    before
        .bridges
        .iter()
        .filter(|b| {
            after.bridges.iter().any(|a| {
                a.name == b.name
                    && Arc::ptr_eq(&a.flows, &b.flows)
                    && Arc::ptr_eq(&a.addrs, &b.addrs)
                    && Arc::ptr_eq(&a.fdb, &b.fdb)
            })
        })
        .map(|b| b.name.to_string())
        .collect()
}

/// Every bridge name of `snap` but `except`.
fn all_but(snap: &Snapshot, except: &[&str]) -> BTreeSet<String> {
    snap.bridges
        .iter()
        .map(|b| b.name.to_string())
        .filter(|n| !except.contains(&n.as_str()))
        .collect()
}

#[test]
fn a_one_line_change_builds_only_what_it_changes() {
    let mut c = config();
    let mut ctl = control(&c);
    let first = ctl.last_apply();
    assert_eq!(first.tunnels_compiled, BRIDGES);
    assert_eq!(first.fdbs_rederived, BRIDGES);

    // set-tunnel t5 --ttl 33: one tunnel, one template, nothing else.
    let before = ctl.snapshot();
    c.tunnels[5].ttl = 33;
    ctl.apply(c.clone()).unwrap();
    assert_eq!(
        ctl.last_apply(),
        ApplyWork {
            tunnels_compiled: 1,
            templates_built: 1,
            bridge_tables_built: 0,
            fdbs_rederived: 0,
        }
    );
    let after = ctl.snapshot();
    assert_eq!(shared(&before, &after), all_but(&before, &[]));
    assert_eq!(
        after.tunnels.ports()[5].templates[0]
            .as_ref()
            .unwrap()
            .bytes()[22],
        33
    );

    // add-port b7 p7: b7's flow table and FDB, nothing else.
    let before = ctl.snapshot();
    c.ports.push(PortConfig::new("p7", "b7").into());
    // Numbers are kept once given, as a transaction does.
    c.assign_port_numbers();
    ctl.apply(c.clone()).unwrap();
    let w = ctl.last_apply();
    assert_eq!((w.tunnels_compiled, w.templates_built), (0, 0), "{w:?}");
    assert_eq!(w.fdbs_rederived, 1, "{w:?}");
    assert!(w.bridge_tables_built <= 1, "{w:?}");
    assert!(shared(&before, &ctl.snapshot()).is_superset(&all_but(&before, &["b7"])));

    // fdb-add b9: b9's FDB only.
    let before = ctl.snapshot();
    c.fdb.push(
        StaticFdbConfig {
            bridge: "b9".into(),
            vlan: 0,
            mac: MacAddr([2, 0, 0, 0, 9, 9]),
            port: "t9".into(),
            remote: None,
        }
        .into(),
    );
    ctl.apply(c.clone()).unwrap();
    let w = ctl.last_apply();
    assert_eq!(
        w,
        ApplyWork {
            fdbs_rederived: 1,
            ..ApplyWork::default()
        }
    );
    assert_eq!(shared(&before, &ctl.snapshot()), all_but(&before, &["b9"]));

    // del-port t11 (a tunnel): b11's FDB; the other tunnels keep their
    // templates though their indices moved.
    let before = ctl.snapshot();
    c.tunnels.remove(11);
    ctl.apply(c.clone()).unwrap();
    let w = ctl.last_apply();
    assert_eq!((w.tunnels_compiled, w.templates_built), (0, 0), "{w:?}");
    assert_eq!(w.fdbs_rederived, 1, "{w:?}");
    assert!(shared(&before, &ctl.snapshot()).is_superset(&all_but(&before, &["b11"])));

    // A new neighbor for the gateway moves every template: all rebuilt.
    c.neighbors[0].mac = MacAddr([2, 0, 0, 0, 0, 3]);
    ctl.apply(c.clone()).unwrap();
    // BRIDGES - 1 tunnels, and t1's VTEP that only a static MAC names.
    assert_eq!(ctl.last_apply().templates_built, BRIDGES);
}

/// The tunnel ports of `after` that are `before`'s by pointer (name,
/// remotes, options and templates: nothing copied), by name.
fn shared_tunnels(before: &Snapshot, after: &Snapshot) -> BTreeSet<String> {
    after
        .tunnels
        .ports()
        .iter()
        .filter(|a| {
            before.tunnels.ports().iter().any(|b| {
                Arc::ptr_eq(&a.name, &b.name)
                    && Arc::ptr_eq(&a.remotes, &b.remotes)
                    && Arc::ptr_eq(&a.known_opts, &b.known_opts)
                    && Arc::ptr_eq(&a.templates, &b.templates)
            })
        })
        .map(|t| t.name.to_string())
        .collect()
}

/// Does every port and bridge of `after` that `before` has under the same
/// number share its name (and a bridge its port list, when equal) by
/// pointer?
fn names_shared(before: &Snapshot, after: &Snapshot) -> bool {
    let ports = after.ports.iter().zip(before.ports.iter());
    let ports = ports
        .filter(|(a, b)| !a.name.is_empty() && a.name == b.name)
        .all(|(a, b)| Arc::ptr_eq(&a.name, &b.name));
    let bridges = after.bridges.iter().all(|a| {
        before
            .bridges
            .iter()
            .find(|b| b.name == a.name)
            .is_none_or(|b| {
                Arc::ptr_eq(&a.name, &b.name)
                    && (a.ports != b.ports || Arc::ptr_eq(&a.ports, &b.ports))
            })
    });
    ports && bridges
}

#[test]
fn what_a_change_leaves_alone_is_shared_not_copied() {
    let mut c = config();
    let mut ctl = control(&c);
    let every = |snap: &Snapshot, except: &[&str]| -> BTreeSet<String> {
        snap.tunnels
            .ports()
            .iter()
            .map(|t| t.name.to_string())
            .filter(|n| !except.contains(&n.as_str()))
            .collect()
    };

    // set-tunnel t5 --ttl 33: every other tunnel port is the running one's.
    let before = ctl.snapshot();
    c.tunnels[5].ttl = 33;
    ctl.apply(c.clone()).unwrap();
    let after = ctl.snapshot();
    assert_eq!(shared_tunnels(&before, &after), every(&after, &["t5"]));
    assert!(names_shared(&before, &after));

    // add-port b7 p7, then del-port t11 (every later tunnel's index moves)
    // and add-br bz with tunnel tz: still no tunnel port copied or rebuilt
    // but the new one.
    for edit in [
        (|c: &mut Config| c.ports.push(PortConfig::new("p7", "b7").into())) as fn(&mut Config),
        |c| {
            c.tunnels.remove(11);
        },
        |c| {
            c.bridges.push(BridgeConfig::new("bz").into());
            c.tunnels.push(
                TunnelConfig::new("tz", "bz", TunnelKind::Vxlan, 7777, vec![remote(999)]).into(),
            )
        },
    ] {
        let before = ctl.snapshot();
        edit(&mut c);
        c.assign_port_numbers();
        ctl.apply(c.clone()).unwrap();
        let after = ctl.snapshot();
        assert_eq!(shared_tunnels(&before, &after), every(&after, &["tz"]));
        assert!(names_shared(&before, &after));
    }
}

/// What a snapshot forwards by, without its generations and random
/// seeds: ports, tunnels with their templates, bridges with their flow
/// rules, addresses and FDB contents, policies.
fn forwarding(ctl: &Control) -> String {
    let snap = ctl.snapshot();
    let mut out = format!(
        "ports {:?}\ntunnels {:?}\nuplink {:?} {}\nfirewalls {:?}\npolicers {:?}\n",
        snap.ports,
        snap.tunnels.ports(),
        snap.uplink,
        snap.uplink_mtu,
        snap.firewalls,
        snap.policers,
    );
    for b in snap.bridges.iter() {
        // The entries as the workers see them: through the snapshot's
        // view, which must hold every entry of the control plane's FDB.
        let mut fdb: Vec<String> = ctl
            .fdb(&b.name)
            .map(|f| {
                f.iter(0)
                    .map(|e| format!("{e:?} seen {:?}", b.fdb.lookup(e.vlan, e.mac)))
                    .collect()
            })
            .unwrap_or_default();
        fdb.sort();
        out += &format!(
            "bridge {} ports {:?} flows {:?} addrs {:?} learning {} fdb {fdb:?}\n",
            b.name,
            b.ports,
            b.flows.rules(),
            b.addrs,
            b.learning,
        );
    }
    let unresolved: Vec<_> = ctl.unresolved().collect();
    out + &format!("unresolved {unresolved:?}\n")
}

#[test]
fn building_less_compiles_the_same_snapshot_as_building_all() {
    let mut c = config();
    let mut ctl = control(&c);
    type Edit = fn(&mut Config, &mut Control);
    let edits: Vec<(&str, Edit)> = vec![
        ("ttl", |c, _| c.tunnels[3].ttl = 9),
        ("remotes", |c, _| c.tunnels[4].remotes.push(remote(900))),
        ("vni", |c, _| c.tunnels[6].vni = 5000),
        ("add port", |c, _| {
            c.ports.push(PortConfig::new("p2", "b2").into())
        }),
        ("del tunnel", |c, _| {
            c.tunnels.remove(8);
        }),
        ("add tunnel", |c, _| {
            c.tunnels
                .push(TunnelConfig::new("tz", "b8", TunnelKind::Vxlan, 9, vec![remote(901)]).into())
        }),
        ("static to a new VTEP", |c, _| {
            c.fdb.push(
                StaticFdbConfig {
                    bridge: "b1".into(),
                    vlan: 0,
                    mac: MacAddr([2, 0, 0, 0, 3, 3]),
                    port: "t1".into(),
                    remote: Some("10.99.0.2".parse().unwrap()),
                }
                .into(),
            )
        }),
        ("del static", |c, _| {
            c.fdb.remove(0);
        }),
        ("addr", |c, _| c.addrs[0].mac = MacAddr([2, 0, 0, 0, 1, 6])),
        ("flow", |c, _| c.bridges[1].flows.clear()),
        ("learning off", |c, _| c.bridges[1].learning = false),
        ("del bridge", |c, _| {
            c.bridges.retain(|b| b.name != "b12");
            c.tunnels.retain(|t| t.bridge != "b12");
        }),
        ("gateway MAC", |c, _| {
            c.neighbors[0].mac = MacAddr([2, 0, 0, 0, 0, 4])
        }),
        ("route", |c, _| {
            c.routes.push(
                RouteConfig {
                    prefix: "10.128.0.0/24".parse().unwrap(),
                    gateway: Some("192.0.2.9".parse().unwrap()),
                    dev: "u0".into(),
                    metric: 0,
                }
                .into(),
            )
        }),
        ("uplink MAC", |c, ctl| {
            let mac = MacAddr([2, 0, 0, 0, 0, 0x11]);
            c.uplink.as_mut().unwrap().mac = Some(mac);
            ctl.underlay.uplink_mac = Some(mac);
        }),
        ("uplink MTU", |c, _| c.uplink.as_mut().unwrap().mtu = 1400),
    ];
    for (what, edit) in edits {
        edit(&mut c, &mut ctl);
        c.assign_port_numbers();
        ctl.apply(c.clone())
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut fresh = Control::new();
        fresh.underlay.uplink_mac = ctl.underlay.uplink_mac;
        fresh.apply(c.clone()).unwrap();
        assert_eq!(forwarding(&ctl), forwarding(&fresh), "after {what}");
    }
}

/// A small deterministic generator (xorshift64), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// 300 random one-line edits, some of them invalid: after each, the
/// incremental control plane forwards exactly as a fresh one compiled
/// from the config it runs, and a refused edit changed nothing.
#[test]
fn random_edits_compile_as_a_fresh_control_plane_would() {
    let mut c = config();
    let mut ctl = control(&c);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut applied, mut refused) = (0, 0);
    for step in 0..300 {
        let mut next = c.clone();
        let t = rng.below(next.tunnels.len().max(1));
        let b = format!("b{}", rng.below(BRIDGES));
        match rng.below(8) {
            0 if !next.tunnels.is_empty() => next.tunnels[t].ttl = 1 + rng.below(200) as u8,
            1 if !next.tunnels.is_empty() => next.tunnels[t].remotes = vec![remote(300 + step)],
            // Often refused: another VNI than the bridge's other tunnel.
            2 => next.tunnels.push(
                TunnelConfig::new(
                    format!("x{step}"),
                    b,
                    TunnelKind::Vxlan,
                    100_000 + step as u32,
                    vec![remote(1_000 + step)],
                )
                .into(),
            ),
            3 if !next.tunnels.is_empty() => {
                let gone = next.tunnels.remove(t).name.clone();
                next.fdb.retain(|f| f.port != gone);
            }
            4 => next
                .ports
                .push(PortConfig::new(format!("p{step}"), b.clone()).into()),
            5 if !next.tunnels.is_empty() => next.fdb.push(
                StaticFdbConfig {
                    bridge: next.tunnels[t].bridge.clone(),
                    vlan: 0,
                    mac: MacAddr([2, 0, 0, 1, (step >> 8) as u8, step as u8]),
                    port: next.tunnels[t].name.clone(),
                    remote: (rng.below(2) == 0).then(|| remote(2_000 + step)),
                }
                .into(),
            ),
            6 => next.addrs.push(
                OverlayAddrConfig {
                    bridge: b,
                    vlan: 0,
                    ip: Ipv4Addr::from(0x0a01_0000 + step as u32).into(),
                    mac: MacAddr([2, 0, 0, 2, (step >> 8) as u8, step as u8]),
                    owner: None,
                }
                .into(),
            ),
            _ => {
                let i = rng.below(next.bridges.len());
                next.bridges[i].learning = !next.bridges[i].learning;
            }
        }
        next.assign_port_numbers();
        let before = forwarding(&ctl);
        match ctl.apply(next.clone()) {
            Ok(()) => {
                c = next;
                applied += 1;
            }
            Err(_) => {
                refused += 1;
                assert_eq!(
                    forwarding(&ctl),
                    before,
                    "step {step}: refused, yet changed"
                );
            }
        }
        let mut fresh = Control::new();
        fresh.underlay.uplink_mac = ctl.underlay.uplink_mac;
        fresh.apply(c.clone()).unwrap();
        assert_eq!(forwarding(&ctl), forwarding(&fresh), "after step {step}");
    }
    // Both kinds were exercised.
    assert!(
        applied > 150 && refused > 10,
        "{applied} applied, {refused} refused"
    );
}
