//! Two xvsd instances, each in its own hypervisor namespace, joined by an
//! underlay veth: VXLAN and Geneve, over an IPv4 and an IPv6 underlay;
//! isolation of two VNIs whose VMs share MAC and IP addresses; and a
//! daemon killed with SIGKILL that restarts and forwards again.
//!
//! ```text
//! vm1a ─ p1a ┐                    ┌ p2a ─ vm2a   blue:  VXLAN  VNI 100
//!            hv1: xvsd ═ u1 ══ u2 ═ hv2: xvsd
//! vm1b ─ p1b ┘                    └ p2b ─ vm2b   green: Geneve VNI 200
//! ```
//!
//! Needs root (`xvs_tests::require`: fails without it
//! under XVS_REQUIRE_ALL=1, skips loudly by hand). Namespaces and daemons
//! go away on drop, panics included; every wait is bounded.

use std::path::Path;

use xvs_tests::{iperf3, require_root, veth, Netns, Xvsd};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Underlay {
    V4,
    V6,
}

impl Underlay {
    /// The VTEP address of hypervisor `n` (1 or 2).
    fn vtep(self, n: u8) -> String {
        match self {
            Underlay::V4 => format!("192.0.2.{n}"),
            Underlay::V6 => format!("fd00:2::{n}"),
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            Underlay::V4 => "24",
            Underlay::V6 => "64",
        }
    }
}

/// Two hypervisors with a blue (VXLAN 100) and a green (Geneve 200, one
/// option) bridge each, one VM on each bridge.
struct Pair {
    vms: [[Netns; 2]; 2],
    hvs: [Netns; 2],
    xvsd: Vec<Xvsd>,
}

/// `ips[h][b]`/`macs[h][b]`: the VM of hypervisor `h` on bridge `b`
/// (0 blue, 1 green).
fn pair(tag: &str, underlay: Underlay, ips: [[&str; 2]; 2], macs: [[&str; 2]; 2]) -> Pair {
    let hvs = [1, 2].map(|n| Netns::new(&format!("{tag}h{n}")));
    veth(
        &hvs[0],
        "u1",
        "02:00:00:00:01:01",
        &hvs[1],
        "u2",
        "02:00:00:00:02:01",
    );
    for (h, hv) in hvs.iter().enumerate() {
        let u = format!("u{}", h + 1);
        let addr = format!("{}/{}", underlay.vtep(h as u8 + 1), underlay.prefix());
        if underlay == Underlay::V6 {
            hv.ip(&["addr", "add", &addr, "dev", &u, "nodad"]);
        } else {
            hv.ip(&["addr", "add", &addr, "dev", &u]);
        }
    }
    // The hypervisors' kernels would send their own IPv6 chatter (MLD,
    // router solicitations) out of the VM-facing ports, straight to the
    // VMs; the ports created from here on have no IPv6.
    for hv in &hvs {
        hv.no_ipv6_on_new_interfaces();
    }
    let vms = [0, 1].map(|h| {
        [0, 1].map(|b| {
            let side = ["a", "b"][b];
            let vm = Netns::new(&format!("{tag}v{}{side}", h + 1));
            let port = format!("p{}{side}", h + 1);
            let port_mac = format!("02:00:00:0{}:0{}:02", h + 1, b + 1);
            // Nothing but the test's own traffic (no IPv6 autoconf, MLD),
            // from the moment the interface exists.
            vm.no_ipv6_on_new_interfaces();
            veth(&vm, "eth0", macs[h][b], &hvs[h], &port, &port_mac);
            vm.ip(&["link", "set", "eth0", "mtu", "1400"]);
            vm.ip(&["addr", "add", &format!("{}/24", ips[h][b]), "dev", "eth0"]);
            vm
        })
    });
    let xvsd = (0..2)
        .map(|h| {
            let me = underlay.vtep(h as u8 + 1);
            let other = underlay.vtep(2 - h as u8);
            let n = h + 1;
            let config = format!(
                r#"
[uplink]
iface = "u{n}"
local_ips = ["{me}"]

[[bridges]]
name = "blue"

[[bridges]]
name = "green"

[[ports]]
name = "p{n}a"
bridge = "blue"

[[ports]]
name = "p{n}b"
bridge = "green"

[[tunnels]]
name = "vx"
bridge = "blue"
kind = "vxlan"
vni = 100
remotes = ["{other}"]

[[tunnels]]
name = "gn"
bridge = "green"
kind = "geneve"
vni = 200
remotes = ["{other}"]
csum = true
geneve_opts = [{{ class = 0x0102, type = 1, data = "00000001" }}]
"#
            );
            Xvsd::start(Path::new(env!("CARGO_BIN_EXE_xvsd")), &hvs[h], &config, &[])
        })
        .collect();
    Pair { vms, hvs, xvsd }
}

fn logs(p: &Pair) -> String {
    p.xvsd
        .iter()
        .map(Xvsd::log)
        .collect::<Vec<_>>()
        .join("\n---\n")
}

const IPS: [[&str; 2]; 2] = [["10.1.0.1", "10.2.0.1"], ["10.1.0.2", "10.2.0.2"]];
const MACS: [[&str; 2]; 2] = [
    ["02:00:00:01:0a:01", "02:00:00:01:0b:01"],
    ["02:00:00:02:0a:01", "02:00:00:02:0b:01"],
];

fn both_tunnels(tag: &str, underlay: Underlay) {
    let p = pair(tag, underlay, IPS, MACS);
    for b in 0..2 {
        let kind = ["VXLAN", "Geneve"][b];
        // The first ping may be lost while the next hop resolves.
        p.vms[0][b].ping(IPS[1][b], 1);
        assert_eq!(p.vms[0][b].ping(IPS[1][b], 5), 5, "{kind}\n{}", logs(&p));
        let up = iperf3(&p.vms[1][b], &p.vms[0][b], IPS[1][b], 2);
        let down = iperf3(&p.vms[0][b], &p.vms[1][b], IPS[0][b], 2);
        eprintln!("{kind}: {up:.0} Mbit/s one way, {down:.0} Mbit/s the other");
        assert!(
            up > 20.0 && down > 20.0,
            "{kind}: {up} {down}\n{}",
            logs(&p)
        );
    }
    for d in p.xvsd {
        let (status, log) = d.stop();
        assert!(status.success() && log.contains("stopped cleanly"), "{log}");
    }
}

#[test]
fn vxlan_and_geneve_over_an_ipv4_underlay() {
    if !require_root() {
        return;
    }
    both_tunnels("p4", Underlay::V4);
}

#[test]
fn vxlan_and_geneve_over_an_ipv6_underlay() {
    if !require_root() {
        return;
    }
    both_tunnels("p6", Underlay::V6);
}

#[test]
fn identical_macs_and_ips_in_two_vnis_never_cross() {
    if !require_root() {
        return;
    }
    // Blue and green VMs share MAC and IP on each hypervisor.
    let ips = [["10.9.0.1"; 2], ["10.9.0.2"; 2]];
    let macs = [["02:00:00:00:99:01"; 2], ["02:00:00:00:99:02"; 2]];
    let p = pair("iso", Underlay::V4, ips, macs);
    for b in 0..2 {
        let other = 1 - b;
        let before = [
            p.vms[0][other].rx_packets("eth0"),
            p.vms[1][other].rx_packets("eth0"),
        ];
        p.vms[0][b].ping("10.9.0.2", 1);
        assert_eq!(
            p.vms[0][b].ping("10.9.0.2", 5),
            5,
            "bridge {b}\n{}",
            logs(&p)
        );
        let after = [
            p.vms[0][other].rx_packets("eth0"),
            p.vms[1][other].rx_packets("eth0"),
        ];
        assert_eq!(
            before,
            after,
            "traffic of bridge {b} reached bridge {other}\n{}",
            logs(&p)
        );
    }
}

#[test]
fn a_daemon_killed_with_sigkill_restarts_and_forwards_again() {
    if !require_root() {
        return;
    }
    let mut p = pair("kil", Underlay::V4, IPS, MACS);
    p.vms[0][0].ping(IPS[1][0], 1);
    assert_eq!(p.vms[0][0].ping(IPS[1][0], 3), 3, "{}", logs(&p));
    // No cleanup runs: its XDP programs stay attached, its sockets die.
    p.xvsd[0].kill9();
    assert_eq!(
        p.vms[0][0].ping(IPS[1][0], 2),
        0,
        "forwarded with xvsd dead"
    );
    let progs = p.hvs[0].run("ip", &["link", "show", "u1"]);
    assert!(
        progs.contains("xdp"),
        "the killed daemon's program: {progs}"
    );
    p.xvsd[0].restart();
    p.vms[0][0].ping(IPS[1][0], 1);
    assert_eq!(p.vms[0][0].ping(IPS[1][0], 5), 5, "{}", logs(&p));
    assert_eq!(p.vms[0][1].ping(IPS[1][1], 3), 3, "{}", logs(&p));
    assert!(
        p.xvsd[0].log().contains("stale"),
        "restart replaced the stale program: {}",
        p.xvsd[0].log()
    );
}
