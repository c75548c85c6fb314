//! Tests of whole-config validation: every problem listed at once, in a
//! fixed order, each naming its object.

use std::net::IpAddr;

use super::super::testutil::base;
use super::super::{PortConfig, PortKind, RouteConfig, StaticFdbConfig};
use super::*;

/// Every problem the whole validation finds in `c`, as text.
fn problems(c: &Config) -> Vec<String> {
    let errs = c.validate().expect_err("an invalid config").0;
    errs.iter().map(|e| e.to_string()).collect()
}

#[test]
fn every_problem_is_listed_at_once() {
    let mut c = base();
    c.tunnels[0].vni = MAX_VNI + 1;
    c.tunnels[0].bridge = "nope".into();
    c.ports.push(c.ports[0].clone());
    c.fdb.push(
        StaticFdbConfig {
            bridge: "br0".into(),
            vlan: 0,
            mac: MacAddr::BROADCAST,
            port: "ghost".into(),
            remote: None,
        }
        .into(),
    );
    let errs = c.validate().unwrap_err().0;
    let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    let has = |s: &str| text.iter().any(|t| t.contains(s));
    assert!(has("VNI 16777216 out of range"), "{text:?}");
    assert!(has("unknown bridge \"nope\""), "{text:?}");
    assert!(has("name already used"), "{text:?}");
    assert!(has("not a unicast MAC"), "{text:?}");
    assert!(has("unknown port \"ghost\""), "{text:?}");
}

#[test]
fn multicast_groups_are_single_remotes_never_fdb_remotes_or_local_ips() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let fdb = |mac: u8, remote: Option<&str>| StaticFdbConfig {
        bridge: "br0".into(),
        vlan: 0,
        mac: MacAddr([2, 0, 0, 0, 0, mac]),
        port: "vx1".into(),
        remote: remote.map(ip),
    };
    // A group as the only remote, and static entries naming any
    // unicast VTEP: valid.
    let mut c = base();
    c.tunnels[0].remotes = vec![ip("239.1.1.1")];
    c.fdb.push(fdb(1, Some("192.0.2.9")).into());
    c.validate().unwrap();
    let mut c = base();
    c.fdb.push(fdb(1, Some("192.0.2.9")).into());
    c.validate().unwrap();

    let mut c = base();
    c.tunnels[0].remotes = vec![ip("239.1.1.1"), ip("192.0.2.2")];
    c.uplink.as_mut().unwrap().local_ips.push(ip("224.0.0.5"));
    c.fdb.push(fdb(1, Some("239.1.1.1")).into());
    c.fdb.push(fdb(2, Some("2001:db8::9")).into());
    let text = problems(&c);
    let has = |s: &str| text.iter().any(|t| t.contains(s));
    assert!(has("a group must be the tunnel's only remote"), "{text:?}");
    assert!(
        has("local IP 224.0.0.5 is not a unicast address"),
        "{text:?}"
    );
    assert!(
        has("remote 239.1.1.1 is a multicast address, not a unicast VTEP"),
        "{text:?}"
    );
    assert!(
        has("remote 2001:db8::9 and tunnel \"vx1\" differ in family"),
        "{text:?}"
    );

    let mut c = base();
    c.tunnels[0].remotes = vec![ip("239.1.1.1")];
    c.fdb.push(fdb(1, None).into());
    let e = c.validate().unwrap_err().0;
    assert!(
        e[0].message.contains("multicast tunnel: say which VTEP"),
        "{e:?}"
    );
}

#[test]
fn two_vnis_in_one_bridge_are_rejected() {
    let mut c = base();
    let mut t = c.tunnels[0].clone();
    t.name = "vx2".into();
    t.number = None;
    t.vni = 43;
    c.tunnels.push(t);
    c.assign_port_numbers();
    let errs = c.validate().unwrap_err().0;
    assert!(errs[0].message.contains("differs from VNI 42"), "{errs:?}");
}

#[test]
fn validate_applies_the_name_rule_to_every_object_that_has_a_name() {
    let mut c = base();
    c.bridges[0].name = "-rf".into();
    c.ports[0].bridge = "-rf".into();
    c.uplink.as_mut().unwrap().iface = "eth 0".into();
    c.routes.push(
        RouteConfig {
            prefix: "10.9.0.0/16".parse().unwrap(),
            gateway: None,
            dev: "bad/dev".into(),
            metric: 0,
        }
        .into(),
    );
    let text = c.validate().unwrap_err().to_string();
    assert!(
        text.contains("bridge \"-rf\": name starts with '-'"),
        "{text}"
    );
    assert!(text.contains("port \"eth 0\": name contains ' '"), "{text}");
    assert!(
        text.contains("dev \"bad/dev\": name contains '/'"),
        "{text}"
    );
}

#[test]
fn remotes_that_are_not_another_vtep_are_refused() {
    for (remote, why) in [
        ("192.0.2.1", "this host's own VTEP address"),
        ("127.0.0.1", "loopback"),
        ("127.1.2.3", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("255.255.255.255", "limited broadcast"),
    ] {
        let mut c = base();
        c.tunnels[0].remotes = vec![remote.parse().unwrap(), "192.0.2.9".parse().unwrap()];
        let text = c.validate().unwrap_err().to_string();
        assert!(
            text.contains(&format!("tunnel \"vx1\": remote {remote} ")) && text.contains(why),
            "{remote}: {text}"
        );
    }
    let mut c = base();
    c.tunnels[0].local = Some("192.0.2.7".parse().unwrap());
    c.tunnels[0].remotes = vec!["192.0.2.7".parse().unwrap()];
    assert!(c.validate().unwrap_err().to_string().contains("own VTEP"));
    // IPv6: loopback and a group among unicast remotes.
    let mut c = base();
    c.uplink
        .as_mut()
        .unwrap()
        .local_ips
        .push("2001:db8::1".parse().unwrap());
    c.tunnels[0].remotes = vec!["::1".parse().unwrap()];
    assert!(c.validate().unwrap_err().to_string().contains("loopback"));
    c.tunnels[0].remotes = vec!["ff0e::1".parse().unwrap(), "2001:db8::2".parse().unwrap()];
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("multicast group"));
    // A static FDB entry's remote is held to the same rule.
    let mut c = base();
    c.fdb.push(
        StaticFdbConfig {
            bridge: "br0".into(),
            vlan: 0,
            mac: "02:00:00:00:00:09".parse().unwrap(),
            port: "vx1".into(),
            remote: Some("127.0.0.1".parse().unwrap()),
        }
        .into(),
    );
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("remote 127.0.0.1 is a loopback"));
    // A group alone is a multicast tunnel, and fine.
    let mut c = base();
    c.tunnels[0].remotes = vec!["239.1.1.1".parse().unwrap()];
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn the_uplink_is_no_port() {
    let mut c = base();
    c.ports[0].name = "eth0".into();
    let text = c.validate().unwrap_err().to_string();
    assert!(
        text.contains("port \"eth0\": is the uplink interface: it cannot also be a port"),
        "{text}"
    );
}

#[test]
fn vhost_user_sockets_are_absolute_one_per_port_and_queue_pairs_bounded() {
    let vhost = |name: &str, socket: &str| {
        let mut p = PortConfig::new(name, "br0");
        p.kind = PortKind::VhostUser {
            socket: socket.into(),
            client: false,
        };
        p
    };
    let mut c = base();
    c.ports.push(vhost("vu1", "/run/xvs/vu1.sock").into());
    c.assign_port_numbers();
    c.validate()
        .expect("a vhost-user port with an absolute socket path");
    // Through the incremental validation too: the same answer.
    let valid = c.clone().validated().expect("valid");
    let mut next = c.clone();
    next.ports.push(vhost("vu2", "/run/xvs/vu1.sock").into());
    next.assign_port_numbers();
    let e = valid.revalidate(next).unwrap_err().0;
    assert!(
        e[0].message.contains("already used by port \"vu1\""),
        "{e:?}"
    );

    let mut bad = c.clone();
    bad.ports.push(vhost("vu3", "relative.sock").into());
    let mut long = vhost("vu4", &format!("/{}", "x".repeat(120)));
    long.queues = 9;
    bad.ports.push(long.into());
    bad.assign_port_numbers();
    let text = problems(&bad);
    let has = |s: &str| text.iter().any(|t| t.contains(s));
    assert!(has("\"relative.sock\" is not an absolute path"), "{text:?}");
    assert!(has("longer than 107 bytes"), "{text:?}");
    assert!(
        has("a vhost-user port offers at most 8 queue pairs"),
        "{text:?}"
    );
}

#[test]
fn a_tap_port_has_one_queue_pair_and_reads_back_from_toml() {
    let tap = |name: &str, queues: u16| {
        let mut p = PortConfig::new(name, "br0");
        p.kind = PortKind::Tap;
        p.queues = queues;
        p
    };
    let mut c = base();
    c.ports.push(tap("tap1", 1).into());
    c.assign_port_numbers();
    let valid = c.clone().validated().expect("a single-queue tap port");
    // A config file's spelling of it.
    let toml = "[[bridges]]\nname = \"br0\"\n\n[[ports]]\nname = \"tap1\"\nbridge = \"br0\"\nkind = { type = \"tap\" }\n";
    let read: crate::Config = toml::from_str(toml).expect("a tap port in TOML");
    assert_eq!(read.ports[0].kind, PortKind::Tap);
    assert!(PortKind::Tap.is_interface() && !PortKind::Tap.is_afxdp());

    // Whole and incremental: the same refusal.
    let mut next = c.clone();
    next.ports.push(tap("tap2", 2).into());
    next.assign_port_numbers();
    let e = valid.revalidate(next.clone()).unwrap_err().0;
    assert!(
        e[0].message.contains("a tap port has one queue pair"),
        "{e:?}"
    );
    assert!(
        problems(&next)
            .iter()
            .any(|t| t.contains("queues 2: a tap port has one queue pair")),
        "{:?}",
        problems(&next)
    );
}
