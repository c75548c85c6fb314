//! Unit tests of every command, good and bad, and of transactions.

use super::*;

fn base() -> Config {
    let mut c = Config::default();
    apply_ok(
        &mut c,
        &[
            Command::SetUplink(SetUplink {
                iface: "eth0".into(),
                local_ips: vec!["192.0.2.1".parse().unwrap()],
                mac: None,
                mtu: None,
            }),
            add_br("br0"),
            add_port("br0", "vm1"),
            vxlan("br0", "vx1", 100, &["192.0.2.2"]),
        ],
    );
    c
}

fn apply_ok(c: &mut Config, cmds: &[Command]) {
    *c = apply_all(cmds, c).unwrap_or_else(|e| panic!("{e:#?}"));
}

fn err(c: &Config, cmd: Command) -> String {
    let mut copy = c.clone();
    let e = apply(&cmd, &mut copy)
        .expect_err("expected an error")
        .to_string();
    assert_eq!(&copy, c, "a failed command changed the config");
    e
}

fn add_br(name: &str) -> Command {
    Command::AddBr(AddBr {
        name: name.into(),
        may_exist: false,
        fdb_max_entries: None,
        fdb_aging_secs: None,
        learning: None,
        arp_suppress: None,
    })
}

fn add_port(bridge: &str, name: &str) -> Command {
    Command::AddPort(AddPort {
        bridge: bridge.into(),
        name: name.into(),
        queues: None,
        tag: None,
        trunks: None,
        native: None,
        mtu: None,
        max_macs: None,
        allowed_macs: Vec::new(),
        allowed_ips: Vec::new(),
        storm_pps: None,
        kind: Default::default(),
        may_exist: false,
    })
}

fn vxlan(bridge: &str, name: &str, vni: u32, remotes: &[&str]) -> Command {
    Command::AddTunnel(AddTunnel {
        bridge: bridge.into(),
        name: name.into(),
        kind: TunnelKind::Vxlan,
        vni,
        remotes: remotes.iter().map(|r| r.parse().unwrap()).collect(),
        local: None,
        dst_port: None,
        ttl: None,
        tos: None,
        df: None,
        csum: false,
        geneve_opts: Vec::new(),
        learn_remotes: false,
        may_exist: false,
    })
}

/// A second tunnel with the bridge's VNI needs its own UDP port (or
/// local address): incoming packets are told apart by those.
fn on_port(mut c: Command, port: u16) -> Command {
    if let Command::AddTunnel(t) = &mut c {
        t.dst_port = Some(port);
    }
    c
}

fn fdb_add(bridge: &str, mac: &str, port: &str) -> FdbAdd {
    FdbAdd {
        bridge: bridge.into(),
        mac: mac.parse().unwrap(),
        port: port.into(),
        vlan: 0,
        remote: None,
    }
}

fn flow(bridge: &str, text: &str) -> Command {
    Command::AddFlow(AddFlow {
        bridge: bridge.into(),
        flow: text.into(),
    })
}

fn acl(port: &str, prio: u32, matches: &str, action: AclAction) -> Command {
    Command::AclAdd(AclAdd {
        port: port.into(),
        dir: Direction::In,
        priority: prio,
        matches: matches.into(),
        action,
    })
}

fn qos(port: &str, rate: u64, burst: u64) -> QosSet {
    QosSet {
        port: port.into(),
        dir: Direction::In,
        rate_bps: rate,
        burst_bytes: burst,
        peak_bps: None,
    }
}

#[test]
fn base_config_is_valid_and_numbered() {
    let c = base();
    c.validate().unwrap();
    let n = c.port_numbers();
    assert_eq!((n["eth0"], n["vm1"], n["vx1"]), (1, 2, 3));
}

#[test]
fn add_br_and_its_errors() {
    let mut c = base();
    apply(&add_br("br1"), &mut c).unwrap();
    assert_eq!(c.bridges[1].name, "br1");
    assert_eq!(
        err(&c, add_br("br1")),
        "bridge \"br1\" already exists (use --may-exist to accept an existing one)"
    );
    let before = c.clone();
    apply(
        &Command::AddBr(AddBr {
            name: "br1".into(),
            may_exist: true,
            fdb_max_entries: Some(5),
            fdb_aging_secs: None,
            learning: None,
            arp_suppress: None,
        }),
        &mut c,
    )
    .unwrap();
    assert_eq!(c, before, "--may-exist changes nothing");
    assert!(err(&c, add_br("")).contains("empty name"));
    assert!(err(&c, add_br("a b")).contains("whitespace"));
    assert!(err(&c, add_br("averyveryverylongname")).contains("15 bytes"));
    // What xvsctl could not address (an option to clap) is not created.
    let e = err(&c, add_br("-rf"));
    assert!(
        e.contains("bridge name \"-rf\": name starts with '-'"),
        "{e}"
    );
    assert!(err(&c, add_br("..")).contains("directory entry"));
    let e = err(
        &c,
        Command::AddBr(AddBr {
            name: "br9".into(),
            may_exist: false,
            fdb_max_entries: Some(0),
            fdb_aging_secs: None,
            learning: None,
            arp_suppress: None,
        }),
    );
    assert!(e.contains("fdb_max_entries 0"), "{e}");
}

#[test]
fn overlay_addresses_are_added_replaced_checked_and_deleted() {
    let mut c = base();
    let add = |ip: &str, mac: &str, vlan, owner: Option<&str>| {
        Command::ArpAdd(ArpAdd {
            bridge: "br0".into(),
            ip: ip.parse().unwrap(),
            mac: mac.parse().unwrap(),
            vlan,
            owner: owner.map(Into::into),
        })
    };
    let del = |ip: &str, vlan, if_exists| {
        Command::ArpDel(ArpDel {
            bridge: "br0".into(),
            ip: ip.parse().unwrap(),
            vlan,
            if_exists,
        })
    };
    apply_ok(
        &mut c,
        &[
            add("10.0.0.2", "02:00:00:00:00:02", 0, None),
            add("10.0.0.2", "02:00:00:00:00:05", 5, Some("model")),
            add("2001:db8::2", "02:00:00:00:00:06", 0, Some("etcd")),
            // Replaces the first.
            add("10.0.0.2", "02:00:00:00:00:03", 0, None),
        ],
    );
    assert_eq!(c.addrs.len(), 3);
    assert_eq!(c.addrs[0].mac.to_string(), "02:00:00:00:00:03");
    assert_eq!(c.addrs[1].owner.as_deref(), Some("model"));
    let rows = crate::view::addr_rows(&c, Some("br0")).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(crate::view::addr_rows(&c, Some("nope")).is_err());

    assert!(err(&c, add("10.0.0.9", "01:00:5e:00:00:01", 0, None)).contains("not a unicast MAC"));
    assert!(err(&c, add("224.0.0.1", "02:00:00:00:00:01", 0, None)).contains("not a unicast"));
    assert!(err(&c, add("10.0.0.9", "02:00:00:00:00:01", 4095, None)).contains("VLAN"));
    let e = err(
        &c,
        Command::ArpAdd(ArpAdd {
            bridge: "nope".into(),
            ip: "10.0.0.1".parse().unwrap(),
            mac: "02:00:00:00:00:01".parse().unwrap(),
            vlan: 0,
            owner: None,
        }),
    );
    assert_eq!(e, "no bridge \"nope\"");
    assert!(err(&c, del("10.0.0.7", 0, false)).contains("not found"));
    apply_ok(
        &mut c,
        &[del("10.0.0.7", 0, true), del("10.0.0.2", 5, false)],
    );
    assert_eq!(c.addrs.len(), 2);

    // Two MACs for one address in one config (a file, another control
    // plane's edit) are refused whole, naming the address.
    let mut bad = c.clone();
    let mut dup = bad.addrs[0].clone();
    dup.mac = "02:00:00:00:00:04".parse().unwrap();
    bad.addrs.push(dup);
    let errs = bad.validate().unwrap_err().to_string();
    assert!(
        errs.contains("address 10.0.0.2 vlan 0") && errs.contains("given twice"),
        "{errs}"
    );

    // del-br takes the bridge's addresses with it.
    apply_ok(
        &mut c,
        &[Command::DelBr(DelBr {
            name: "br0".into(),
            if_exists: false,
        })],
    );
    assert!(c.addrs.is_empty());
}

#[test]
fn set_br_changes_only_the_options_given() {
    let mut c = base();
    assert!(c.bridges[0].learning && !c.bridges[0].arp_suppress);
    let set = |learning, arp_suppress| {
        Command::SetBr(SetBr {
            name: "br0".into(),
            learning,
            arp_suppress,
            ..Default::default()
        })
    };
    apply_ok(&mut c, &[set(Some(false), None)]);
    assert!(!c.bridges[0].learning && !c.bridges[0].arp_suppress);
    apply_ok(&mut c, &[set(None, Some(true))]);
    assert!(!c.bridges[0].learning && c.bridges[0].arp_suppress);
    let e = err(
        &c,
        Command::SetBr(SetBr {
            name: "nope".into(),
            learning: Some(true),
            arp_suppress: None,
            ..Default::default()
        }),
    );
    assert_eq!(e, "no bridge \"nope\"");
    // Lookup on miss: on with a provider, the miss action changed alone,
    // then off.
    use xvs_config::{LookupProviderConfig, MissAction};
    let lookup = |lookup, lookup_miss, no_lookup| {
        Command::SetBr(SetBr {
            name: "br0".into(),
            lookup,
            lookup_miss,
            no_lookup,
            ..Default::default()
        })
    };
    let e = err(&c, lookup(None, Some(MissAction::Drop), false));
    assert!(e.contains("has no lookup"), "{e}");
    let direct = LookupProviderConfig::Direct {
        vtep: "192.0.2.2".parse().unwrap(),
    };
    apply_ok(&mut c, &[lookup(Some(direct.clone()), None, false)]);
    let l = c.bridges[0].lookup.clone().unwrap();
    assert_eq!((l.provider, l.miss), (direct.clone(), MissAction::Flood));
    apply_ok(&mut c, &[lookup(None, Some(MissAction::Drop), false)]);
    assert_eq!(c.bridges[0].lookup.as_ref().unwrap().miss, MissAction::Drop);
    // The whole-config check: a tunnel port must reach the answer.
    let e = apply_all(
        &[lookup(
            Some(LookupProviderConfig::Direct {
                vtep: "2001:db8::9".parse().unwrap(),
            }),
            None,
            false,
        )],
        &c,
    )
    .unwrap_err()
    .join("\n");
    assert!(e.contains("no tunnel port to reach"), "{e}");
    assert!(err(&c, lookup(Some(direct), None, true)).contains("excludes"));
    apply_ok(&mut c, &[lookup(None, None, true)]);
    assert!(c.bridges[0].lookup.is_none());
    // Old configs (without the fields) still read, with the defaults.
    let old: xvs_config::BridgeConfig =
        serde_json::from_str(r#"{"name":"b","fdb_max_entries":5,"fdb_aging_secs":9,"flows":[]}"#)
            .unwrap();
    assert!(old.learning && !old.arp_suppress);
}

#[test]
fn del_br_takes_everything_of_the_bridge() {
    let mut c = base();
    apply_ok(
        &mut c,
        &[
            add_br("br1"),
            add_port("br1", "vm2"),
            Command::FdbAdd(fdb_add("br0", "02:00:00:00:00:01", "vx1")),
            Command::FdbAdd(fdb_add("br1", "02:00:00:00:00:02", "vm2")),
            acl("vm2", 10, "tcp,tp_dst=22", AclAction::Drop),
            Command::QosSet(qos("vm2", 100_000_000, 65536)),
        ],
    );
    apply(
        &Command::DelBr(DelBr {
            name: "br1".into(),
            if_exists: false,
        }),
        &mut c,
    )
    .unwrap();
    assert_eq!(c.bridges.len(), 1);
    assert!(c.ports.iter().all(|p| p.name != "vm2"));
    assert_eq!(c.fdb.len(), 1);
    assert!(c.acls.is_empty() && c.qos.is_empty());
    c.validate().unwrap();
    let e = err(
        &c,
        Command::DelBr(DelBr {
            name: "br1".into(),
            if_exists: false,
        }),
    );
    assert!(
        e.contains("bridge \"br1\" not found") && e.contains("--if-exists"),
        "{e}"
    );
    apply(
        &Command::DelBr(DelBr {
            name: "br1".into(),
            if_exists: true,
        }),
        &mut c,
    )
    .unwrap();
}

#[test]
fn add_port_and_its_errors() {
    let mut c = base();
    assert_eq!(err(&c, add_port("nope", "vm2")), "no bridge \"nope\"");
    assert!(err(&c, add_port("br0", "vm1")).contains("port \"vm1\" already exists"));
    assert!(err(&c, add_port("br0", "vx1")).contains("tunnel \"vx1\" already exists"));
    assert!(err(&c, add_port("br0", "eth0")).contains("is the uplink"));
    apply_ok(&mut c, &[add_br("br1")]);
    let mut again = Command::AddPort(AddPort {
        bridge: "br1".into(),
        name: "vm1".into(),
        queues: None,
        tag: None,
        trunks: None,
        native: None,
        mtu: None,
        max_macs: None,
        allowed_macs: Vec::new(),
        allowed_ips: Vec::new(),
        storm_pps: None,
        kind: Default::default(),
        may_exist: true,
    });
    assert!(err(&c, again.clone()).contains("already exists in bridge \"br0\""));
    if let Command::AddPort(p) = &mut again {
        p.bridge = "br0".into();
    }
    let before = c.clone();
    apply(&again, &mut c).unwrap();
    assert_eq!(c, before);

    let port = |tag, trunks: Option<Vec<u16>>, native| {
        Command::AddPort(AddPort {
            bridge: "br0".into(),
            name: "vm2".into(),
            queues: Some(2),
            tag,
            trunks,
            native,
            mtu: Some(9000),
            max_macs: None,
            allowed_macs: Vec::new(),
            allowed_ips: Vec::new(),
            storm_pps: None,
            kind: Default::default(),
            may_exist: false,
        })
    };
    assert!(err(&c, port(Some(4095), None, None)).contains("tag 4095: VLAN out of range 0..=4094"));
    assert!(
        err(&c, port(None, Some(vec![0]), None)).contains("trunk 0: VLAN out of range 1..=4094")
    );
    assert!(err(&c, port(Some(1), Some(vec![2]), None)).contains("exclude each other"));
    assert!(err(&c, port(Some(1), None, Some(3))).contains("--native applies to a trunk"));
    apply(&port(None, Some(vec![30, 10, 10]), Some(5)), &mut c).unwrap();
    let p = c.ports.iter().find(|p| p.name == "vm2").unwrap();
    assert_eq!(
        p.vlan,
        VlanMode::Trunk {
            trunks: vec![10, 30],
            native: Some(5)
        }
    );
    assert_eq!((p.queues, p.mtu, p.number), (2, 9000, Some(4)));
    c.validate().unwrap();
}

#[test]
fn add_tunnel_and_its_errors() {
    let mut c = base();
    let e = err(&c, vxlan("br0", "vx2", MAX_VNI + 1, &["192.0.2.3"]));
    assert_eq!(e, "VNI 16777216: out of range 0..=16777215");
    assert!(err(&c, vxlan("br0", "vx2", 100, &[])).contains("at least one remote"));
    assert!(err(&c, vxlan("br0", "vx2", 100, &["0.0.0.0"])).contains("not a unicast address"));
    assert_eq!(
        err(&c, vxlan("nope", "vx2", 1, &["192.0.2.3"])),
        "no bridge \"nope\""
    );
    let mut g = AddTunnel {
        bridge: "br0".into(),
        name: "gn1".into(),
        kind: TunnelKind::Vxlan,
        vni: 100,
        remotes: vec!["192.0.2.3".parse().unwrap()],
        local: Some("192.0.2.1".parse().unwrap()),
        dst_port: Some(6081),
        ttl: Some(0),
        tos: Some(TosConfig::Inherit),
        df: Some(false),
        csum: true,
        geneve_opts: vec![GeneveOptConfig {
            class: 0x0102,
            typ: 0x80,
            data: vec![0, 0, 1],
        }],
        learn_remotes: false,
        may_exist: false,
    };
    assert!(err(&c, Command::AddTunnel(g.clone())).contains("TTL of 0"));
    g.ttl = Some(32);
    assert!(err(&c, Command::AddTunnel(g.clone())).contains("on a VXLAN tunnel"));
    g.kind = TunnelKind::Geneve;
    assert!(err(&c, Command::AddTunnel(g.clone())).contains("multiple of 4"));
    g.geneve_opts[0].data.push(1);
    apply(&Command::AddTunnel(g), &mut c).unwrap();
    let t = c.tunnels.iter().find(|t| t.name == "gn1").unwrap();
    assert_eq!(
        (t.kind, t.ttl, t.tos, t.df, t.csum, t.udp_port(), t.number),
        (
            TunnelKind::Geneve,
            32,
            TosConfig::Inherit,
            false,
            true,
            6081,
            Some(4)
        )
    );
    c.validate().unwrap();
}

#[test]
fn del_port_takes_its_references_and_respects_flows() {
    let mut c = base();
    apply_ok(
        &mut c,
        &[
            add_port("br0", "vm2"),
            Command::FdbAdd(fdb_add("br0", "02:00:00:00:00:01", "vm2")),
            acl("vm2", 10, "tcp", AclAction::Drop),
            Command::QosSet(qos("vm2", 100_000_000, 65536)),
            flow("br0", "priority=10,in_port=vm1,actions=output:vx1"),
        ],
    );
    apply(
        &Command::DelPort(DelPort {
            name: "vm2".into(),
            if_exists: false,
        }),
        &mut c,
    )
    .unwrap();
    assert!(c.fdb.is_empty() && c.acls.is_empty() && c.qos.is_empty());
    assert!(c.ports.iter().all(|p| p.name != "vm2"));
    let del = |n: &str| {
        Command::DelPort(DelPort {
            name: n.into(),
            if_exists: false,
        })
    };
    let e = err(&c, del("vx1"));
    assert!(e.contains("used by flow 1 of bridge \"br0\""), "{e}");
    assert!(err(&c, del("eth0")).contains("is the uplink"));
    assert!(err(&c, del("ghost")).contains("port or tunnel \"ghost\" not found"));
    apply(
        &Command::DelPort(DelPort {
            name: "ghost".into(),
            if_exists: true,
        }),
        &mut c,
    )
    .unwrap();
}

#[test]
fn set_uplink_replaces_and_keeps_what_is_not_given() {
    let mut c = base();
    let set = |iface: &str, mac: Option<&str>, ips: &[&str]| {
        Command::SetUplink(SetUplink {
            iface: iface.into(),
            local_ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            mac: mac.map(|m| m.parse().unwrap()),
            mtu: None,
        })
    };
    apply(&set("eth0", Some("02:00:00:00:00:aa"), &[]), &mut c).unwrap();
    let u = c.uplink.clone().unwrap();
    assert_eq!(u.local_ips, vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        (u.number, u.mac.unwrap().to_string().as_str()),
        (Some(1), "02:00:00:00:00:aa")
    );
    assert!(err(&c, set("eth0", Some("01:00:5e:00:00:01"), &[])).contains("not a unicast MAC"));
    assert!(err(&c, set("vm1", None, &[])).contains("is a port"));
    assert!(err(&c, set("eth1", None, &["192.0.2.9", "192.0.2.9"])).contains("listed twice"));
    apply(&set("eth1", None, &["2001:db8::1"]), &mut c).unwrap();
    let u = c.uplink.clone().unwrap();
    assert_eq!((u.iface.as_str(), u.mac, u.number), ("eth1", None, Some(1)));
}

#[test]
fn a_multicast_group_is_a_tunnels_only_remote() {
    let mut c = base();
    apply_ok(
        &mut c,
        &[on_port(vxlan("br0", "vx2", 100, &["239.1.1.1"]), 4790)],
    );
    c.validate().unwrap();
    assert_eq!(c.tunnels[1].group(), Some("239.1.1.1".parse().unwrap()));
    let e = err(
        &c,
        on_port(vxlan("br0", "vx3", 100, &["239.1.1.2", "192.0.2.3"]), 4791),
    );
    assert!(
        e.contains("a multicast group must be the tunnel's only remote"),
        "{e}"
    );
    let e = err(
        &c,
        Command::FdbAdd(fdb_add("br0", "02:00:00:00:00:02", "vx2")),
    );
    assert!(
        e.contains("multicast tunnel: say which VTEP with --remote"),
        "{e}"
    );
}

fn set_tunnel(name: &str, remotes: &[&str]) -> SetTunnel {
    SetTunnel {
        name: name.into(),
        remotes: Some(remotes.iter().map(|r| r.parse().unwrap()).collect()),
        ..Default::default()
    }
}

#[test]
fn set_tunnel_changes_a_tunnel_in_place() {
    let mut c = base();
    apply_ok(
        &mut c,
        &[Command::FdbAdd(fdb_add("br0", "02:00:00:00:00:07", "vx1"))],
    );
    let no = c.port_numbers()["vx1"];
    let mut s = set_tunnel("vx1", &["192.0.2.3", "192.0.2.4"]);
    s.ttl = Some(9);
    s.learn_remotes = Some(true);
    // The static entry without a remote now needs one: the whole
    // transaction is refused, the config untouched.
    let e = apply_all(&[Command::SetTunnel(s.clone())], &c).unwrap_err();
    assert!(e.iter().any(|e| e.contains("say which")), "{e:?}");
    let mut f = fdb_add("br0", "02:00:00:00:00:07", "vx1");
    f.remote = Some("192.0.2.2".parse().unwrap());
    apply_ok(&mut c, &[Command::FdbAdd(f), Command::SetTunnel(s)]);
    let t = &c.tunnels[0];
    assert_eq!(t.remotes.len(), 2);
    assert_eq!(
        (t.ttl, t.learn_remotes, t.vni),
        (9, true, 100),
        "others kept"
    );
    assert_eq!(c.port_numbers()["vx1"], no, "same port number");
    // 192.0.2.2 left the flood list but stays a (dynamic) static remote.
    c.validate().unwrap();

    assert_eq!(
        err(&c, Command::SetTunnel(set_tunnel("ghost", &["192.0.2.3"]))),
        "no port or tunnel \"ghost\""
    );
    let e = err(
        &c,
        Command::SetTunnel(set_tunnel("vx1", &["239.1.1.1", "192.0.2.3"])),
    );
    assert!(e.contains("only remote"), "{e}");
    let e = err(&c, Command::SetTunnel(set_tunnel("vx1", &[])));
    assert!(e.contains("at least one remote"), "{e}");
    let e = err(
        &c,
        Command::SetTunnel(SetTunnel {
            name: "vx1".into(),
            vni: Some(MAX_VNI + 1),
            ..Default::default()
        }),
    );
    assert!(e.contains("out of range"), "{e}");
    // A flow sending to remote 1 keeps the list from shrinking below 2.
    apply_ok(&mut c, &[flow("br0", "priority=5,actions=tunnel:vx1:1")]);
    let e = err(&c, Command::SetTunnel(set_tunnel("vx1", &["192.0.2.3"])));
    assert!(e.contains("would have 1 remote"), "{e}");
    // One bad command refuses the whole transaction.
    let e = apply_all(
        &[
            Command::SetTunnel(set_tunnel("vx1", &["192.0.2.5", "192.0.2.6"])),
            Command::SetTunnel(set_tunnel("ghost", &["192.0.2.3"])),
        ],
        &c,
    )
    .unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        c.tunnels[0].remotes[0],
        "192.0.2.3".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn fdb_add_and_del() {
    let mut c = base();
    apply_ok(
        &mut c,
        &[
            on_port(vxlan("br0", "vx2", 100, &["192.0.2.3", "192.0.2.4"]), 4790),
            Command::FdbAdd(fdb_add("br0", "02:00:00:00:00:01", "vm1")),
        ],
    );
    assert_eq!(
        err(
            &c,
            Command::FdbAdd(fdb_add("nope", "02:00:00:00:00:01", "vm1"))
        ),
        "no bridge \"nope\""
    );
    assert_eq!(
        err(
            &c,
            Command::FdbAdd(fdb_add("br0", "02:00:00:00:00:01", "ghost"))
        ),
        "no port or tunnel \"ghost\""
    );
    let e = err(
        &c,
        Command::FdbAdd(fdb_add("br0", "01:00:5e:00:00:01", "vm1")),
    );
    assert_eq!(e, "mac 01:00:5e:00:00:01: not a unicast MAC address");
    assert!(err(
        &c,
        Command::FdbAdd(fdb_add("br0", "00:00:00:00:00:00", "vm1"))
    )
    .contains("unicast"));
    let mut f = fdb_add("br0", "02:00:00:00:00:02", "vm1");
    f.vlan = 4095;
    assert!(err(&c, Command::FdbAdd(f)).contains("vlan 4095: VLAN out of range"));
    let mut f = fdb_add("br0", "02:00:00:00:00:02", "vm1");
    f.remote = Some("192.0.2.3".parse().unwrap());
    assert!(err(&c, Command::FdbAdd(f)).contains("is a local port"));
    assert!(err(
        &c,
        Command::FdbAdd(fdb_add("br0", "02:00:00:00:00:02", "vx2"))
    )
    .contains("say which with --remote"));
    // Any unicast VTEP of the tunnel's family, listed or not; never a group.
    let mut f = fdb_add("br0", "02:00:00:00:00:02", "vx2");
    f.remote = Some("239.1.1.1".parse().unwrap());
    assert!(err(&c, Command::FdbAdd(f.clone())).contains("remote 239.1.1.1: not a unicast address"));
    f.remote = Some("2001:db8::9".parse().unwrap());
    assert!(err(&c, Command::FdbAdd(f.clone())).contains("not of the address family"));
    f.remote = Some("192.0.2.9".parse().unwrap());
    let mut c9 = c.clone();
    apply(&Command::FdbAdd(f.clone()), &mut c9).unwrap();
    c9.validate().unwrap();
    f.remote = Some("192.0.2.4".parse().unwrap());
    apply(&Command::FdbAdd(f), &mut c).unwrap();
    apply_ok(&mut c, &[add_br("br1"), add_port("br1", "vm9")]);
    assert!(err(
        &c,
        Command::FdbAdd(fdb_add("br0", "02:00:00:00:00:03", "vm9"))
    )
    .contains("is in bridge \"br1\""));

    // Same bridge, VLAN and MAC: replaced, not duplicated.
    apply(
        &Command::FdbAdd(fdb_add("br0", "02:00:00:00:00:01", "vx1")),
        &mut c,
    )
    .unwrap();
    assert_eq!(c.fdb.len(), 2);
    assert_eq!(c.fdb[0].port, "vx1");

    let del = |mac: &str, if_exists| {
        Command::FdbDel(FdbDel {
            bridge: "br0".into(),
            mac: mac.parse().unwrap(),
            vlan: 0,
            if_exists,
        })
    };
    apply(&del("02:00:00:00:00:01", false), &mut c).unwrap();
    assert_eq!(c.fdb.len(), 1);
    let e = err(&c, del("02:00:00:00:00:01", false));
    assert!(
        e.contains("static MAC 02:00:00:00:00:01 vlan 0 in bridge \"br0\" not found"),
        "{e}"
    );
    apply(&del("02:00:00:00:00:01", true), &mut c).unwrap();
    c.validate().unwrap();
}

#[test]
fn many_fdb_entries_in_one_transaction() {
    let c = base();
    let mut cmds: Vec<Command> = (0..20_000u64)
        .map(|i| {
            Command::FdbAdd(FdbAdd {
                bridge: "br0".into(),
                mac: MacAddr::from_u64(0x0200_0000_0000 | i),
                port: if i % 2 == 0 { "vm1" } else { "vx1" }.into(),
                vlan: 0,
                remote: None,
            })
        })
        .collect();
    // Deletes and re-adds interleaved with other commands keep the index right.
    cmds.push(Command::FdbDel(FdbDel {
        bridge: "br0".into(),
        mac: MacAddr::from_u64(0x0200_0000_0000),
        vlan: 0,
        if_exists: false,
    }));
    cmds.push(add_port("br0", "vm2"));
    cmds.push(Command::FdbAdd(fdb_add("br0", "02:00:00:00:00:00", "vm2")));
    cmds.push(Command::FdbAdd(fdb_add("br0", "02:00:00:00:00:01", "vm2")));
    let t = std::time::Instant::now();
    let n = apply_all(&cmds, &c).unwrap();
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(n.fdb.len(), 20_000);
    let vm2: Vec<_> = n.fdb.iter().filter(|f| f.port == "vm2").collect();
    assert_eq!(vm2.len(), 2);
}

#[test]
fn neighbors() {
    let mut c = base();
    let set = |ip: &str, mac: &str| {
        Command::NeighSet(NeighSet {
            ip: ip.parse().unwrap(),
            mac: mac.parse().unwrap(),
        })
    };
    apply_ok(
        &mut c,
        &[
            set("192.0.2.254", "02:00:00:00:fe:01"),
            set("192.0.2.254", "02:00:00:00:fe:02"),
        ],
    );
    assert_eq!(c.neighbors.len(), 1);
    assert_eq!(c.neighbors[0].mac.to_string(), "02:00:00:00:fe:02");
    assert!(err(&c, set("224.0.0.1", "02:00:00:00:fe:01")).contains("not a unicast address"));
    assert!(err(&c, set("192.0.2.9", "ff:ff:ff:ff:ff:ff")).contains("not a unicast MAC"));
    let flush = |ip: Option<&str>, if_exists| {
        Command::NeighFlush(NeighFlush {
            ip: ip.map(|i| i.parse().unwrap()),
            if_exists,
        })
    };
    assert!(
        err(&c, flush(Some("192.0.2.9"), false)).contains("static neighbor 192.0.2.9 not found")
    );
    apply(&flush(Some("192.0.2.9"), true), &mut c).unwrap();
    apply(&flush(Some("192.0.2.254"), false), &mut c).unwrap();
    assert!(c.neighbors.is_empty());
    apply_ok(
        &mut c,
        &[set("192.0.2.7", "02:00:00:00:fe:07"), flush(None, false)],
    );
    assert!(c.neighbors.is_empty());
}

#[test]
fn routes() {
    let mut c = base();
    let add = |p: &str, gw: Option<&str>, metric, may_exist| {
        Command::RouteAdd(RouteAdd {
            prefix: p.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
            dev: None,
            metric,
            may_exist,
        })
    };
    apply(
        &add("198.51.100.0/24", Some("192.0.2.254"), 0, false),
        &mut c,
    )
    .unwrap();
    assert_eq!(c.routes[0].dev, "eth0");
    let e = err(&c, add("198.51.100.0/24", Some("192.0.2.253"), 0, false));
    assert!(
        e.contains("route \"198.51.100.0/24 metric 0\" already exists"),
        "{e}"
    );
    apply(
        &add("198.51.100.0/24", Some("192.0.2.253"), 0, true),
        &mut c,
    )
    .unwrap();
    apply(&add("198.51.100.0/24", None, 10, false), &mut c).unwrap();
    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.routes[0].gateway, Some("192.0.2.253".parse().unwrap()));
    assert!(
        err(&c, add("2001:db8::/32", Some("192.0.2.1"), 0, false)).contains("not of the family")
    );
    let mut none = c.clone();
    none.uplink = None;
    assert!(err(&none, add("203.0.113.0/24", None, 0, false)).contains("no uplink set"));
    // Host bits in a prefix are refused when it is parsed (serde or clap).
    assert!("198.51.100.1/24".parse::<Prefix>().is_err());

    let del = |p: &str, metric, if_exists| {
        Command::RouteDel(RouteDel {
            prefix: p.parse().unwrap(),
            metric,
            if_exists,
        })
    };
    apply(&del("198.51.100.0/24", Some(10), false), &mut c).unwrap();
    assert_eq!(c.routes.len(), 1);
    apply(&del("198.51.100.0/24", None, false), &mut c).unwrap();
    assert!(c.routes.is_empty());
    assert!(err(&c, del("198.51.100.0/24", None, false))
        .contains("route 198.51.100.0/24 not found (use --if-exists"));
    apply(&del("198.51.100.0/24", None, true), &mut c).unwrap();
}

#[test]
fn add_flow_resolves_names_and_replaces() {
    let mut c = base();
    apply_ok(
        &mut c,
        &[
            on_port(vxlan("br0", "vx2", 100, &["192.0.2.3", "192.0.2.4"]), 4790),
            flow(
                "br0",
                "priority=100,in_port=vm1,dl_dst=02:00:00:00:00:02,actions=output:vx1",
            ),
            flow(
                "br0",
                "priority=90,in_port=vm1,actions=tunnel:vx2:192.0.2.4,vx1",
            ),
        ],
    );
    let flows = &c.bridges[0].flows;
    assert_eq!(
        flows[0],
        "priority=100,in_port=2,dl_dst=02:00:00:00:00:02,actions=output:3"
    );
    assert_eq!(
        flows[1],
        "priority=90,in_port=2,actions=tunnel:4:1,output:3"
    );
    // Same priority and match: replaced.
    apply(
        &flow(
            "br0",
            "priority=100,in_port=2,dl_dst=02:00:00:00:00:02,actions=drop",
        ),
        &mut c,
    )
    .unwrap();
    assert_eq!(c.bridges[0].flows.len(), 2);
    assert!(c.bridges[0].flows[0].ends_with("actions=drop"));

    let e = err(&c, flow("br0", "in_port=ghost,actions=drop"));
    assert!(e.contains("no port \"ghost\" in bridge \"br0\""), "{e}");
    let e = err(
        &c,
        flow("br0", "priority=1,nw_src=10.0.0.0/33,actions=drop"),
    );
    assert!(e.contains("nw_src"), "{e}");
    let e = err(&c, flow("br0", "priority=1,tcp"));
    assert!(e.contains("no actions="), "{e}");
    let e = err(&c, flow("br0", "priority=1,actions=output:99"));
    assert!(e.contains("port 99 is not a port of bridge \"br0\""), "{e}");
    let e = err(&c, flow("br0", "priority=1,actions=tunnel:vx2:192.0.2.9"));
    assert!(e.contains("is not a remote of tunnel"), "{e}");
    let e = err(&c, flow("br0", "priority=1,actions=tunnel:vm1:0"));
    assert!(e.contains("is not a tunnel"), "{e}");
    let e = err(&c, flow("br0", "priority=1,actions=teleport"));
    assert!(e.contains("unknown action"), "{e}");
    assert_eq!(err(&c, flow("nope", "actions=drop")), "no bridge \"nope\"");
    // The stored flows compile in the dataplane.
    xvs_dataplane::control::Control::new()
        .apply(c.clone())
        .unwrap();
}

#[test]
fn del_flows_all_loose_and_strict() {
    let mut c = base();
    let setup = [
        flow("br0", "priority=100,in_port=vm1,tcp,tp_dst=22,actions=drop"),
        flow("br0", "priority=90,in_port=vm1,tcp,actions=output:vx1"),
        flow("br0", "priority=80,in_port=vx1,actions=output:vm1"),
    ];
    apply_ok(&mut c, &setup);
    let del = |m: Option<&str>, strict| {
        Command::DelFlows(DelFlows {
            bridge: "br0".into(),
            matches: m.map(str::to_string),
            strict,
        })
    };
    // Loose: every flow at least as specific as in_port=vm1,tcp.
    let mut d = c.clone();
    apply(&del(Some("in_port=vm1,tcp"), false), &mut d).unwrap();
    assert_eq!(d.bridges[0].flows.len(), 1);
    // Strict: only the exact match.
    let mut d = c.clone();
    apply(&del(Some("in_port=vm1,tcp"), true), &mut d).unwrap();
    assert_eq!(d.bridges[0].flows.len(), 2);
    let mut d = c.clone();
    apply(&del(Some("priority=80,in_port=vx1"), true), &mut d).unwrap();
    assert_eq!(d.bridges[0].flows.len(), 2);
    let mut d = c.clone();
    apply(&del(None, false), &mut d).unwrap();
    assert!(d.bridges[0].flows.is_empty());
    assert!(err(&c, del(Some("in_port=vm1,actions=drop"), false))
        .contains("takes a match, not actions"));
    assert!(err(&c, del(Some("colour=red"), false)).contains("unknown match field"));
}

#[test]
fn acls_with_the_lsdn_restriction() {
    let mut c = base();
    apply_ok(
        &mut c,
        &[
            acl("vm1", 10, "tcp,tp_dst=22", AclAction::Drop),
            acl("vm1", 10, "tcp,tp_dst=23", AclAction::Drop),
            acl("vm1", 5, "", AclAction::Allow),
        ],
    );
    assert_eq!(
        c.acls[0].rules,
        vec![
            "priority=10,tcp,tp_dst=22,action=drop",
            "priority=10,tcp,tp_dst=23,action=drop",
            "priority=5,action=allow"
        ]
    );
    // Same priority and match: replaced.
    apply(&acl("vm1", 10, "tcp,tp_dst=22", AclAction::Allow), &mut c).unwrap();
    assert_eq!(c.acls[0].rules.len(), 3);
    assert!(c.acls[0].rules[0].ends_with("action=allow"));
    let e = err(&c, acl("vm1", 10, "nw_src=10.0.0.0/8", AclAction::Drop));
    assert!(
        e.contains("share priority 10 but match different fields"),
        "{e}"
    );
    assert!(err(&c, acl("ghost", 1, "", AclAction::Drop)).contains("no port or tunnel \"ghost\""));
    assert!(err(&c, acl("vm1", 1, "in_port=3", AclAction::Drop))
        .contains("cannot be matched by an ACL"));
    assert!(err(&c, acl("vm1", 1, "tp_dst=99999", AclAction::Drop)).contains("tp_dst"));
    assert!(err(&c, acl("vm1", 1, "tcp,action=allow", AclAction::Drop)).contains("--action"));

    let del = |prio, m: Option<&str>, if_exists| {
        Command::AclDel(AclDel {
            port: "vm1".into(),
            dir: Direction::In,
            priority: prio,
            matches: m.map(str::to_string),
            if_exists,
        })
    };
    let mut d = c.clone();
    apply(&del(Some(10), Some("tcp,tp_dst=23"), false), &mut d).unwrap();
    assert_eq!(d.acls[0].rules.len(), 2);
    apply(&del(Some(10), None, false), &mut d).unwrap();
    assert_eq!(d.acls[0].rules, vec!["priority=5,action=allow"]);
    assert!(err(&d, del(Some(10), None, false)).contains("priority 10"));
    apply(&del(None, None, false), &mut d).unwrap();
    assert!(d.acls.is_empty(), "an empty rule list goes away");
    apply(&del(None, None, true), &mut d).unwrap();
    xvs_dataplane::control::Control::new().apply(c).unwrap();
}

#[test]
fn qos_set_and_clear() {
    let mut c = base();
    apply(&Command::QosSet(qos("vm1", 100_000_000, 65_536)), &mut c).unwrap();
    let mut q = qos("vm1", 200_000_000, 65_536);
    q.peak_bps = Some(1_000_000_000);
    apply(&Command::QosSet(q), &mut c).unwrap();
    assert_eq!(c.qos.len(), 1);
    assert_eq!(
        (c.qos[0].rate_bps, c.qos[0].peak_bps),
        (200_000_000, Some(1_000_000_000))
    );
    assert!(err(&c, Command::QosSet(qos("vm1", 0, 65_536))).contains("rate 0: a rate of zero"));
    assert!(err(&c, Command::QosSet(qos("vm1", 1, 65_536))).contains("policer rate is 0 bytes/s"));
    assert!(err(&c, Command::QosSet(qos("vm1", 100_000_000, 1500))).contains("smaller than mtu"));
    let mut q = qos("vm1", 200_000_000, 65_536);
    q.peak_bps = Some(100_000_000);
    assert!(err(&c, Command::QosSet(q)).contains("peak rate"));
    assert_eq!(
        err(&c, Command::QosSet(qos("ghost", 1_000_000, 65_536))),
        "no port or tunnel \"ghost\""
    );
    let clear = |dir, if_exists| {
        Command::QosClear(QosClear {
            port: "vm1".into(),
            dir,
            if_exists,
        })
    };
    assert!(
        err(&c, clear(Some(Direction::Out), false)).contains("policer on \"vm1\" out not found")
    );
    apply(&clear(Some(Direction::Out), true), &mut c).unwrap();
    apply(&clear(None, false), &mut c).unwrap();
    assert!(c.qos.is_empty());
}

#[test]
fn a_transaction_is_all_or_nothing_with_every_problem_named() {
    let c = base();
    let cmds = [
        add_br("br1"),
        add_port("br1", "vm2"),
        vxlan("br1", "vx9", MAX_VNI + 1, &["192.0.2.9"]),
    ];
    let problems = apply_all(&cmds, &c).unwrap_err();
    assert_eq!(
        problems,
        vec!["command 3 (add-tunnel vx9): VNI 16777216: out of range 0..=16777215"]
    );

    // Independent mistakes are all listed, each with its command.
    let cmds = [
        add_port("nope", "vm2"),
        Command::FdbAdd(fdb_add("br0", "ff:ff:ff:ff:ff:ff", "vm1")),
        vxlan("br0", "vx2", 101, &["192.0.2.3"]),
    ];
    let problems = apply_all(&cmds, &c).unwrap_err();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with("command 1 (add-port nope vm2): no bridge"));
    assert!(problems[1].starts_with("command 2 (fdb-add br0 ff:ff:ff:ff:ff:ff vm1)"));
    // Found by Config::validate, attributed to the command that caused it.
    assert!(
        problems[2].starts_with(
            "command 3 (add-tunnel vx2): tunnel \"vx2\": VNI 101 differs from VNI 100"
        ),
        "{problems:#?}"
    );

    // A tunnel needing a local address the uplink does not have.
    let cmds = [vxlan("br0", "vx6", 100, &["2001:db8::2"])];
    let problems = apply_all(&cmds, &c).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("command 1 (add-tunnel vx6)") && p.contains("no local IP")),
        "{problems:?}"
    );
}

#[test]
fn commands_round_trip_through_json() {
    let cmds = vec![
        add_br("br0"),
        Command::DelBr(DelBr {
            name: "br0".into(),
            if_exists: true,
        }),
        Command::SetBr(SetBr {
            name: "br0".into(),
            learning: Some(false),
            arp_suppress: None,
            ..Default::default()
        }),
        add_port("br0", "vm1"),
        vxlan("br0", "vx1", 5, &["192.0.2.2", "2001:db8::2"]),
        Command::SetTunnel(SetTunnel {
            name: "vx1".into(),
            remotes: Some(vec!["239.1.1.1".parse().unwrap()]),
            ttl: Some(4),
            learn_remotes: Some(true),
            ..Default::default()
        }),
        Command::SetPort(SetPort {
            name: "vm1".into(),
            max_macs: Some(4),
            allowed_macs: Some(vec!["02:00:00:00:00:01".parse().unwrap()]),
            allowed_ips: Some(vec![]),
            storm_pps: Some(100),
        }),
        Command::DelPort(DelPort {
            name: "vm1".into(),
            if_exists: false,
        }),
        Command::SetUplink(SetUplink {
            iface: "eth0".into(),
            local_ips: vec!["192.0.2.1".parse().unwrap()],
            mac: Some("02:00:00:00:00:01".parse().unwrap()),
            mtu: Some(9000),
        }),
        Command::FdbAdd(fdb_add("br0", "02:00:00:00:00:01", "vm1")),
        Command::FdbDel(FdbDel {
            bridge: "br0".into(),
            mac: "02:00:00:00:00:01".parse().unwrap(),
            vlan: 3,
            if_exists: false,
        }),
        Command::ArpAdd(ArpAdd {
            bridge: "br0".into(),
            ip: "10.0.0.1".parse().unwrap(),
            mac: "02:00:00:00:00:01".parse().unwrap(),
            vlan: 0,
            owner: Some("etcd".into()),
        }),
        Command::ArpDel(ArpDel {
            bridge: "br0".into(),
            ip: "10.0.0.1".parse().unwrap(),
            vlan: 0,
            if_exists: true,
        }),
        Command::NeighSet(NeighSet {
            ip: "192.0.2.254".parse().unwrap(),
            mac: "02:00:00:00:fe:01".parse().unwrap(),
        }),
        Command::NeighFlush(NeighFlush {
            ip: None,
            if_exists: false,
        }),
        Command::RouteAdd(RouteAdd {
            prefix: "10.0.0.0/8".parse().unwrap(),
            gateway: None,
            dev: Some("eth0".into()),
            metric: 5,
            may_exist: false,
        }),
        Command::RouteDel(RouteDel {
            prefix: "10.0.0.0/8".parse().unwrap(),
            metric: None,
            if_exists: false,
        }),
        flow("br0", "actions=normal"),
        Command::DelFlows(DelFlows {
            bridge: "br0".into(),
            matches: Some("tcp".into()),
            strict: true,
        }),
        acl("vm1", 1, "udp", AclAction::Allow),
        Command::AclDel(AclDel {
            port: "vm1".into(),
            dir: Direction::Out,
            priority: Some(1),
            matches: None,
            if_exists: false,
        }),
        Command::QosSet(qos("vm1", 1_000_000, 65_536)),
        Command::QosClear(QosClear {
            port: "vm1".into(),
            dir: None,
            if_exists: false,
        }),
        Command::MirrorAdd(MirrorAdd {
            name: "m1".into(),
            src: vec!["vm1".into()],
            dir: MirrorDir::Out,
            to: "vx1".into(),
            may_exist: true,
        }),
        Command::MirrorDel(MirrorDel {
            name: "m1".into(),
            if_exists: true,
        }),
        Command::MetaSet(MetaSet {
            key: "model".into(),
            value: Some(serde_json::json!({"local": "hv1"})),
        }),
    ];
    let ops: Vec<&str> = cmds.iter().map(Command::op).collect();
    assert_eq!(ops, Command::OPS, "one of each, in order");
    for c in &cmds {
        let v = serde_json::to_value(c).unwrap();
        assert_eq!(v["op"], c.op());
        assert_eq!(&Command::from_value(&v).unwrap(), c);
        assert_eq!(&serde_json::from_value::<Command>(v).unwrap(), c);
    }
    let v = serde_json::json!({"op": "add-br", "name": "br0", "colour": "red"});
    let (path, msg) = Command::from_value(&v).unwrap_err();
    assert!(
        path == "colour" && msg.contains("unknown field `colour`"),
        "{path} {msg}"
    );
    let v = serde_json::json!({"op": "add-tunnel", "bridge": "b", "name": "t", "kind": "gre", "vni": 1, "remotes": []});
    let (path, msg) = Command::from_value(&v).unwrap_err();
    assert_eq!(path, "kind");
    assert!(msg.contains("unknown variant `gre`"), "{msg}");
    let v = serde_json::json!({"op": "route-add", "prefix": "10.0.0.1/8"});
    let (path, _) = Command::from_value(&v).unwrap_err();
    assert_eq!(path, "prefix");
    let (_, msg) = Command::from_value(&serde_json::json!({"name": "x"})).unwrap_err();
    assert!(msg.contains("missing \"op\""), "{msg}");
}

#[test]
fn set_port_changes_limits_and_port_security_in_place() {
    let mut c = base();
    let mac: MacAddr = "02:00:00:00:00:01".parse().unwrap();
    let set = |max_macs, macs: Option<Vec<MacAddr>>, ips: Option<Vec<IpAddr>>| {
        Command::SetPort(SetPort {
            name: "vm1".into(),
            max_macs,
            allowed_macs: macs,
            allowed_ips: ips,
            storm_pps: None,
        })
    };
    apply_ok(
        &mut c,
        &[set(
            Some(8),
            Some(vec![mac]),
            Some(vec!["10.0.0.1".parse().unwrap()]),
        )],
    );
    let p = &c.ports[0];
    assert_eq!(
        (p.max_macs, p.allowed_macs.len(), p.allowed_ips.len()),
        (Some(8), 1, 1)
    );
    // Options not given keep their value; 0 and empty lists clear.
    apply_ok(&mut c, &[set(Some(0), None, Some(vec![]))]);
    let p = &c.ports[0];
    assert_eq!(
        (p.max_macs, p.allowed_macs.len(), p.allowed_ips.len()),
        (None, 1, 0)
    );
    // IPs without MACs are refused by the config's validation.
    let e = apply_all(
        &[set(
            None,
            Some(vec![]),
            Some(vec!["10.0.0.1".parse().unwrap()]),
        )],
        &c,
    )
    .unwrap_err();
    assert!(
        format!("{e:?}").contains("allowed_ips needs allowed_macs"),
        "{e:?}"
    );
    let mut tunnel = set(Some(1), None, None);
    if let Command::SetPort(p) = &mut tunnel {
        p.name = "vx1".into();
    }
    assert!(err(&c, tunnel).contains("is a tunnel"));
    let mut nope = set(Some(1), None, None);
    if let Command::SetPort(p) = &mut nope {
        p.name = "nope".into();
    }
    assert!(err(&c, nope).contains("nope"));
}

#[test]
fn a_tunnel_survives_the_trip_through_add_tunnel_and_set_tunnel() {
    let mut t = TunnelConfig::new(
        "vx1",
        "br0",
        TunnelKind::Geneve,
        42,
        vec!["192.0.2.2".parse().unwrap()],
    );
    t.local = Some("192.0.2.1".parse().unwrap());
    t.dst_port = Some(7000);
    t.ttl = 9;
    t.tos = TosConfig::Inherit;
    t.df = false;
    t.csum = true;
    t.learn_remotes = true;
    t.geneve_opts = vec![GeneveOptConfig {
        class: 0x0102,
        typ: 3,
        data: vec![0, 0, 0, 1],
    }];
    // Every option add-tunnel has comes back as it was.
    assert_eq!(AddTunnel::from_config(&t).to_config(), t);
    let plain = TunnelConfig::new("vx1", "br0", TunnelKind::Geneve, 42, vec![]);
    let add = AddTunnel::from_config(&plain);
    assert_eq!((add.ttl, add.tos, add.df), (None, None, None));
    // And set-tunnel takes a tunnel to another through every option it has.
    let mut from = plain.clone();
    from.geneve_opts = t.geneve_opts.clone();
    let set = SetTunnel::between(&from, &t).unwrap();
    set.apply_to(&mut from);
    assert_eq!(from, t);
    // Not to another kind.
    let mut vx = t.clone();
    vx.kind = TunnelKind::Vxlan;
    assert_eq!(SetTunnel::between(&t, &vx), None);
}
