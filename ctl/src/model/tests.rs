//! Model tests: validation lists everything, compile per phys, and the
//! diff/transaction round trip (apply twice = no change, moves are small,
//! foreign objects are left alone).

use super::cli::plan;
use super::validate::{Interfaces, VLAN_BRIDGE};
use super::*;
use crate::command::{apply_all, Command};
use xvs_config::{Config, StaticFdbConfig};

/// Two tenants reusing the same MACs and IPs, over three hypervisors.
pub(crate) const TWO_TENANTS: &str = r#"
[settings.st]
type = "vxlan/static"

[settings.gn]
type = "geneve"

[[net]]
name = "red"
vni = 100
settings = "st"

[[net]]
name = "blue"
vni = 200
settings = "gn"

[[phys]]
name = "hv1"
iface = "up1"
ip = "192.0.2.1"
nets = ["red", "blue"]

[[phys]]
name = "hv2"
iface = "up2"
ip = "192.0.2.2"
nets = ["red", "blue"]

[[phys]]
name = "hv3"
iface = "up3"
ip = "192.0.2.3"
nets = ["red"]

[[virt]]
name = "red1"
net = "red"
phys = "hv1"
iface = "r1"
mac = "02:00:00:00:00:01"
ip = "10.0.0.1"
ingress = ["priority=10,tcp,tp_dst=22,action=drop"]
rate_egress = { avg = "100mbit", burst = "64kb" }

[[virt]]
name = "red2"
net = "red"
phys = "hv2"
iface = "r2"
mac = "02:00:00:00:00:02"
ip = "10.0.0.2"

[[virt]]
name = "red3"
net = "red"
phys = "hv3"
iface = "r3"
mac = "02:00:00:00:00:03"
ip = "10.0.0.3"

[[virt]]
name = "blue1"
net = "blue"
phys = "hv1"
iface = "b1"
mac = "02:00:00:00:00:01"
ip = "10.0.0.1"

[[virt]]
name = "blue2"
net = "blue"
phys = "hv2"
iface = "b2"
mac = "02:00:00:00:00:02"
ip = "10.0.0.2"
"#;

struct AllExist;
impl Interfaces for AllExist {
    fn exists(&self, _: &str) -> bool {
        true
    }
}

struct NoneExist;
impl Interfaces for NoneExist {
    fn exists(&self, _: &str) -> bool {
        false
    }
}

fn model(text: &str) -> Model {
    Model::parse(text, false).unwrap_or_else(|e| panic!("{e}"))
}

/// Applies `model` as `local` on `config` through the real transaction.
fn apply(config: &Config, m: &Model, local: &str) -> (Config, Vec<Command>) {
    let cmds = plan(config, m, local);
    let new = apply_all(&cmds, config).unwrap_or_else(|p| panic!("{p:#?}\n{cmds:#?}"));
    (new, cmds)
}

#[test]
fn the_example_model_is_valid_everywhere() {
    let m = model(TWO_TENANTS);
    for local in ["hv1", "hv2", "hv3"] {
        assert_eq!(validate(&m, Some(local), &AllExist), Ok(()), "{local}");
    }
    // TOML and JSON round trip to the same model.
    let back = model(&m.to_toml());
    assert_eq!(back, m);
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(Model::parse(&json, true).unwrap(), m);
}

#[test]
fn missing_interfaces_are_reported_for_the_local_phys_only() {
    let m = model(TWO_TENANTS);
    let v = validate(&m, Some("hv3"), &NoneExist).unwrap_err();
    let text: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    assert_eq!(
        text,
        [
            "phys \"hv3\": iface \"up3\" does not exist on this host",
            "virt \"red3\": iface \"r3\" does not exist on this host",
        ]
    );
    assert!(validate(&m, Some("hv9"), &AllExist).is_err());
    assert_eq!(validate(&m, None, &NoneExist), Ok(()));
}

#[test]
fn a_broken_model_lists_every_violation_with_names() {
    let broken = r#"
[settings.st]
type = "vxlan/static"
[settings.e2e]
type = "vxlan/e2e"
[settings.mc]
type = "vxlan/mcast"
[settings.mc2]
type = "vxlan/mcast"
group = "10.0.0.1"
[settings.vl]
type = "vlan"
port = 99
[settings.dir]
type = "direct"

[[net]]
name = "a"
vni = 100
settings = "st"
[[net]]
name = "b"
vni = 100
settings = "e2e"
[[net]]
name = "c"
vni = 16777216
settings = "st"
[[net]]
name = "d"
vni = 0
settings = "vl"
[[net]]
name = "e"
settings = "nosuch"
[[net]]
name = "averyveryverylongname"
vni = 7
settings = "st"
[[net]]
name = "f"
vni = 8
settings = "dir"
[[net]]
name = "g"
vni = 9
settings = "e2e"

[[phys]]
name = "p1"
iface = "eth0"
ip = "192.0.2.1"
nets = ["a", "g", "f"]
[[phys]]
name = "p2"
ip = "2001:db8::2"
nets = ["a"]
[[phys]]
name = "p3"
iface = "eth0"
nets = ["a"]

[[virt]]
name = "v1"
net = "a"
phys = "p1"
iface = "t1"
mac = "02:00:00:00:00:01"
ingress = ["priority=5,tcp,tp_dst=22,action=drop", "priority=5,tcp,tp_dst=22,action=allow"]
rate_ingress = { avg = "0", burst = "64kb" }
[[virt]]
name = "v2"
net = "a"
phys = "p1"
iface = "t1"
mac = "02:00:00:00:00:01"
egress = ["priority=5,udp,action=drop", "priority=5,tcp,tp_dst=80,action=drop"]
rate_egress = { avg = "10mbit", burst = "64kb", peak = "1mbit" }
[[virt]]
name = "v3"
net = "a"
[[virt]]
name = "v4"
net = "g"
phys = "p2"
iface = "t4"
ip = "10.0.0.4"
"#;
    let m = model(broken);
    let v = validate(&m, None, &AllExist).unwrap_err();
    let text: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    let expect = [
        "net \"averyveryverylongname\": name \"averyveryverylongname\" longer than 13 bytes",
        "net \"b\": duplicate vxlan VNI 100 (also net \"a\")",
        "net \"c\": VNI 16777216 out of range 0..=16777215",
        "net \"d\": VLAN ID 0 out of range 1..=4094",
        "net \"e\": no settings \"nosuch\"",
        "net \"f\": a direct net has no VNI",
        "net \"a\": physes with IPv4 and IPv6 addresses (one underlay family per net)",
        "phys \"p1\": static VXLAN net \"a\" and learning VXLAN net \"g\" share UDP port 4789",
        "phys \"p2\": needs an iface (it is attached to nets)",
        "phys \"p3\": needs an ip: net \"a\" is vxlan/static",
        "settings \"mc\": vxlan/mcast needs a multicast group",
        "settings \"mc2\": group 10.0.0.1 is not a multicast address",
        "settings \"vl\": vlan has no UDP port",
        "virt \"v2\": duplicate MAC 02:00:00:00:00:01 in net \"a\" (also virt \"v1\")",
        "virt \"v2\": iface \"t1\" on phys \"p1\" also used by virt \"v1\"",
        "virt \"v3\": needs a mac: net \"a\" is vxlan/static (no learning)",
        "virt \"v4\": ip 10.0.0.4 without a mac",
        "virt \"v4\": phys \"p2\" is not attached to its net \"g\"",
    ];
    for e in expect {
        assert!(text.iter().any(|t| t == e), "missing {e:?} in {text:#?}");
    }
    // Rules and rates name the object and what is wrong.
    let has = |obj: &str, frag: &str| {
        v.iter()
            .any(|x| x.object == obj && x.message.contains(frag))
    };
    assert!(has("virt \"v1\"", "ingress rules"), "{text:#?}");
    assert!(has("virt \"v1\"", "rate_ingress: avg"), "{text:#?}");
    assert!(has("virt \"v2\"", "egress rules"), "{text:#?}");
    assert!(has("virt \"v2\"", "rate_egress: peak"), "{text:#?}");
    // The phys that mixes the uplink role with a direct net is refused.
    assert!(has("phys \"p1\"", "both the tunnel uplink"), "{text:#?}");
}

#[test]
fn compile_gives_each_host_its_share() {
    let m = model(TWO_TENANTS);
    let c1 = compile(&m, "hv1");
    let names = |v: &[xvs_config::Shared<xvs_config::BridgeConfig>]| -> Vec<String> {
        v.iter().map(|b| b.name.clone()).collect()
    };
    assert_eq!(names(&c1.bridges), ["red", "blue"]);
    let up = c1.uplink.as_ref().unwrap();
    assert_eq!(
        (up.iface.as_str(), up.local_ips.clone()),
        ("up1", vec!["192.0.2.1".parse().unwrap()])
    );
    let red = c1.tunnels.iter().find(|t| t.name == "t-red").unwrap();
    assert_eq!(
        red.remotes,
        [
            "192.0.2.2".parse::<std::net::IpAddr>().unwrap(),
            "192.0.2.3".parse().unwrap()
        ]
    );
    let blue = c1.tunnels.iter().find(|t| t.name == "t-blue").unwrap();
    assert_eq!(blue.kind, xvs_config::TunnelKind::Geneve);
    assert_eq!(
        blue.remotes,
        ["192.0.2.2".parse::<std::net::IpAddr>().unwrap()]
    );
    // Static MACs for the virts of both tenants (same MACs, own bridges):
    // remote ones at their VTEP, the local one at its port.
    let fdb: Vec<String> = c1
        .fdb
        .iter()
        .map(|f| format!("{} {} {} {:?}", f.bridge, f.mac, f.port, f.remote))
        .collect();
    assert_eq!(
        fdb,
        [
            "red 02:00:00:00:00:02 t-red Some(192.0.2.2)",
            "red 02:00:00:00:00:03 t-red Some(192.0.2.3)",
            "red 02:00:00:00:00:01 r1 None",
            "blue 02:00:00:00:00:02 t-blue Some(192.0.2.2)",
            "blue 02:00:00:00:00:01 b1 None",
        ]
    );
    assert_eq!(c1.ports.len(), 2);
    assert_eq!(c1.acls.len(), 1);
    assert_eq!(c1.qos.len(), 1);
    // hv3 only has red, with one tunnel to hv1 and hv2.
    let c3 = compile(&m, "hv3");
    assert_eq!(names(&c3.bridges), ["red"]);
    assert_eq!(c3.tunnels[0].remotes.len(), 2);
}

#[test]
fn apply_then_reapply_changes_nothing_and_leaves_foreign_objects_alone() {
    let m = model(TWO_TENANTS);
    // Something the model does not own: a bridge added by hand.
    let start = apply_all(
        &[Command::AddBr(crate::command::AddBr {
            name: "mine".into(),
            may_exist: false,
            fdb_max_entries: None,
            fdb_aging_secs: None,
            learning: None,
            arp_suppress: None,
        })],
        &Config::default(),
    )
    .unwrap();
    let (c, cmds) = apply(&start, &m, "hv1");
    assert!(cmds.len() > 5, "{cmds:#?}");
    assert!(c.bridges.iter().any(|b| b.name == "mine"));
    assert_eq!(Record::of(&c).unwrap().local, "hv1");
    // Every virt's address, in its own tenant's bridge, tagged as the model's.
    assert_eq!(c.addrs.len(), 5);
    assert!(c.addrs.iter().all(|a| a.owner.as_deref() == Some("model")));
    assert!(c
        .bridges
        .iter()
        .filter(|b| b.name != "mine")
        .all(|b| b.arp_suppress));
    assert!(
        plan(&c, &m, "hv1").is_empty(),
        "second apply must send nothing"
    );

    // Dropping the blue net removes its bridge and nothing else.
    let mut m2 = m.clone();
    m2.nets.retain(|n| n.name != "blue");
    m2.virts.retain(|v| v.net != "blue");
    for p in &mut m2.physes {
        p.nets.retain(|n| n != "blue");
    }
    let (c2, cmds) = apply(&c, &m2, "hv1");
    let ops: Vec<&str> = cmds.iter().map(|c| c.op()).collect();
    assert_eq!(ops, ["del-br", "meta-set"], "{cmds:#?}");
    assert!(c2.bridges.iter().any(|b| b.name == "mine"));
    assert!(!c2.bridges.iter().any(|b| b.name == "blue"));
    assert!(c2.validate().is_ok());
}

#[test]
fn a_migration_is_a_small_change_on_every_host() {
    let m = model(TWO_TENANTS);
    let mut moved = m.clone();
    for v in &mut moved.virts {
        if v.name == "red3" {
            v.phys = Some("hv2".into());
            v.iface = Some("r3b".into());
        }
    }
    // A third host only repoints one static MAC.
    let (c1, _) = apply(&Config::default(), &m, "hv1");
    let (after, cmds) = apply(&c1, &moved, "hv1");
    let ops: Vec<&str> = cmds.iter().map(|c| c.op()).collect();
    assert_eq!(ops, ["fdb-add", "meta-set"], "{cmds:#?}");
    let e: &StaticFdbConfig = after
        .fdb
        .iter()
        .find(|f| f.bridge == "red" && f.mac.to_string() == "02:00:00:00:00:03")
        .unwrap();
    assert_eq!(e.remote, Some("192.0.2.2".parse().unwrap()));
    // The source host loses the port and points the MAC at hv2; the
    // destination gains the port and points the MAC at it.
    let (c3, _) = apply(&Config::default(), &m, "hv3");
    let (_, cmds) = apply(&c3, &moved, "hv3");
    let ops: Vec<&str> = cmds.iter().map(|c| c.op()).collect();
    assert_eq!(ops, ["del-port", "fdb-add", "meta-set"], "{cmds:#?}");
    let (c2, _) = apply(&Config::default(), &m, "hv2");
    let (_, cmds) = apply(&c2, &moved, "hv2");
    let ops: Vec<&str> = cmds.iter().map(|c| c.op()).collect();
    assert_eq!(ops, ["add-port", "fdb-add", "meta-set"], "{cmds:#?}");
}

#[test]
fn rule_and_rate_changes_touch_only_the_policy() {
    let m = model(TWO_TENANTS);
    let (c, _) = apply(&Config::default(), &m, "hv1");
    let mut m2 = m.clone();
    let v = m2.virts.iter_mut().find(|v| v.name == "red1").unwrap();
    v.ingress = vec!["priority=10,tcp,tp_dst=23,action=drop".into()];
    v.rate_egress = None;
    let (c2, cmds) = apply(&c, &m2, "hv1");
    let ops: Vec<&str> = cmds.iter().map(|c| c.op()).collect();
    assert_eq!(
        ops,
        ["qos-clear", "acl-del", "acl-add", "meta-set"],
        "{cmds:#?}"
    );
    assert!(c2.qos.is_empty());
    assert!(plan(&c2, &m2, "hv1").is_empty());
}

#[test]
fn vlan_and_direct_nets_become_ports() {
    let m = model(
        r#"
[settings.vl]
type = "vlan"
[settings.d]
type = "direct"
[[net]]
name = "v10"
vni = 10
settings = "vl"
[[net]]
name = "v20"
vni = 20
settings = "vl"
[[net]]
name = "flat"
settings = "d"
[[phys]]
name = "a"
iface = "eth1"
nets = ["v10", "v20"]
[[phys]]
name = "b"
iface = "eth2"
nets = ["flat"]
[[virt]]
name = "x"
net = "v20"
phys = "a"
iface = "tx"
[[virt]]
name = "y"
net = "flat"
phys = "b"
iface = "ty"
"#,
    );
    assert_eq!(validate(&m, None, &AllExist), Ok(()));
    let a = compile(&m, "a");
    assert_eq!(a.bridges.len(), 1);
    assert_eq!(a.bridges[0].name, VLAN_BRIDGE);
    let trunk = a.ports.iter().find(|p| p.name == "eth1").unwrap();
    assert_eq!(
        trunk.vlan,
        xvs_config::VlanMode::Trunk {
            trunks: vec![10, 20],
            native: None
        }
    );
    let x = a.ports.iter().find(|p| p.name == "tx").unwrap();
    assert_eq!(x.vlan, xvs_config::VlanMode::Access { tag: 20 });
    assert!(a.uplink.is_none() && a.tunnels.is_empty());
    let (ca, _) = apply(&Config::default(), &m, "a");
    assert!(ca.validate().is_ok());
    let b = compile(&m, "b");
    assert_eq!(b.bridges[0].name, "flat");
    assert_eq!(b.ports.len(), 2);
}

#[test]
fn a_phys_joining_a_net_edits_the_tunnel_in_place() {
    let m = model(TWO_TENANTS);
    let (c, _) = apply(&Config::default(), &m, "hv1");
    let before = c
        .tunnels
        .iter()
        .find(|t| t.name == "t-blue")
        .unwrap()
        .number;
    let mut m2 = m.clone();
    m2.physes[2].nets.push("blue".into());
    let (c2, cmds) = apply(&c, &m2, "hv1");
    let ops: Vec<&str> = cmds.iter().map(|c| c.op()).collect();
    assert_eq!(ops, ["set-tunnel", "meta-set"], "{cmds:#?}");
    let t = c2.tunnels.iter().find(|t| t.name == "t-blue").unwrap();
    assert_eq!(t.remotes.len(), 2);
    assert_eq!(
        t.number, before,
        "same port number: flows and FDB stay valid"
    );
    assert!(plan(&c2, &m2, "hv1").is_empty());
}
