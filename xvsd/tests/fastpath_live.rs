//! The GSO-preserving fast path in a running xvsd (`--fastpath`), against
//! the kernel's vxlan, with the VM side's offloads as the kernel leaves
//! them:
//!
//! ```text
//! ns vm: vm0 1450 ── p0 (TC) ── hv: xvsd --fastpath ── u0 (TC) 1500 ── pu0: vx0 vxlan 1450 (peer)
//!                         │ misses, 802.1ad-tagged
//!                         └─► xvs-miss ══ xvs-miss-rx (XDP, the workers' sockets)
//! ```
//!
//! What the pipeline has not decided (ARP, the first frames of a flow)
//! reaches it through the miss pair and is forwarded; once a flow's
//! decision is offered and installed, the TC executor carries it on
//! whole super-packets, both ways (u0's executor decapsulates); the rest
//! of the tunnel traffic reaches the pipeline through the miss pair too,
//! and leaves by p0's and u0's TX-only sockets; the uplink's neighbour
//! is snooped by u0's TC program. TCP both ways, the fast path's counters, no
//! XDP program on p0 (so vm0 keeps GSO), and nothing left behind when
//! xvsd stops.
//!
//! Needs root (`xvs_tests::require`). Namespaces and daemons go away on
//! drop, panics included; every wait is bounded.

use std::path::Path;

use xvs_tests::kvxlan::{kernel_vxlan, vm_on_p0, PEER_IP, VM_IP, VNI};
use xvs_tests::{iperf3, require_root, underlay, Netns, Xvsd};

fn config() -> String {
    format!(
        r#"
[uplink]
iface = "u0"
local_ips = ["192.0.2.1"]
mtu = 1500

[[bridges]]
name = "br0"

[[ports]]
name = "p0"
bridge = "br0"
mtu = 1450

[[tunnels]]
name = "vx1"
bridge = "br0"
kind = "vxlan"
vni = {VNI}
remotes = ["192.0.2.2"]
"#
    )
}

/// `port`'s row of `xvsctl stats`.
fn stats(d: &Xvsd, port: &str) -> serde_json::Value {
    let out = d.ok(&["--format", "json", "stats", port]);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("stats JSON");
    rows[0].clone()
}

#[test]
fn tcp_both_ways_through_the_fast_path_and_the_miss_pair() {
    if !require_root() {
        return;
    }
    let vm = Netns::new("fvm");
    let hv = Netns::new("fhv");
    let peer = Netns::new("fpe");
    vm_on_p0(&vm, &hv);
    underlay(&hv, &peer);
    kernel_vxlan(
        &peer,
        "pu0",
        "02:00:00:00:0b:01",
        "192.0.2.2",
        "192.0.2.1",
        &format!("{PEER_IP}/24"),
    );
    for (ns, dev) in [(&vm, "vm0"), (&hv, "p0"), (&peer, "vx0")] {
        ns.ip(&["link", "set", dev, "mtu", "1450"]);
    }
    let d = Xvsd::start(
        Path::new(env!("CARGO_BIN_EXE_xvsd")),
        &hv,
        &config(),
        &["--fastpath"],
    );
    let log = d.log();
    assert!(
        log.contains("fast path attached") && log.contains("iface=p0"),
        "{log}"
    );
    // No XDP program on the guest port or the uplink: their peers keep
    // GSO.
    for dev in ["p0", "u0"] {
        let link = hv.run("ip", &["-d", "link", "show", dev]);
        assert!(!link.contains("xdp"), "{dev} has an XDP program:\n{link}");
    }
    let miss = hv.run("ip", &["-d", "link", "show", "xvs-miss-rx"]);
    assert!(
        miss.contains("xdp"),
        "the miss pair's far end has no XDP program:\n{miss}"
    );

    // Through the miss pair: ARP and the pings' echo (ICMP is never
    // offered).
    vm.ping(PEER_IP, 1);
    assert_eq!(vm.ping(PEER_IP, 3), 3, "{}", d.log());
    let s = stats(&d, "p0");
    let misses = s["fastpath"]["misses"].as_u64().unwrap_or(0);
    assert!(misses >= 4, "misses through the miss pair: {s}");

    let up = iperf3(&peer, &vm, PEER_IP, 3);
    let s = stats(&d, "p0");
    let carried = s["fastpath"]["packets"].as_u64().unwrap_or(0);
    let rx = s["rx_packets"].as_u64().unwrap_or(0);
    eprintln!("vm to peer: {up:.0} Mbit/s; p0: {s}");
    assert!(s["fastpath"]["flows"].as_u64().unwrap_or(0) >= 1, "{s}");
    // The data segments went by the fast path, the pipeline saw what
    // came before the decision.
    assert!(
        carried > rx,
        "the fast path carried {carried}, the workers received {rx}: {s}"
    );
    assert_eq!(s["fastpath"]["miss_errors"].as_u64(), Some(0), "{s}");
    assert!(up > 10.0, "{up} Mbit/s");

    let down = iperf3(&vm, &peer, VM_IP, 3);
    let u = stats(&d, "u0");
    eprintln!("peer to vm: {down:.0} Mbit/s; u0: {u}");
    assert!(down > 10.0, "{down} Mbit/s");
    // Decapsulated by the executor on u0's ingress: the uplink's XDP
    // program passed the decided flow's packets to it.
    let carried = u["fastpath"]["packets"].as_u64().unwrap_or(0);
    let rx = u["rx_packets"].as_u64().unwrap_or(0);
    assert!(u["fastpath"]["flows"].as_u64().unwrap_or(0) >= 1, "{u}");
    assert!(
        carried > rx,
        "u0: the fast path carried {carried}, the workers received {rx}: {u}"
    );
    let drops = stats(&d, "p0")["drops"].clone();
    assert!(
        drops.as_object().is_none_or(|m| m.is_empty()),
        "p0 drops: {drops}"
    );

    // Idle decisions are evicted (the tables are bounded), and a flow that
    // comes back is offered and carried again.
    let mut flows = u64::MAX;
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_secs(1));
        flows = ["p0", "u0"]
            .iter()
            .map(|p| stats(&d, p)["fastpath"]["flows"].as_u64().unwrap_or(0))
            .sum();
        if flows == 0 {
            break;
        }
    }
    assert_eq!(
        flows,
        0,
        "decisions outlived their flows' idleness:\n{}",
        d.log()
    );
    let before = stats(&d, "p0")["fastpath"]["packets"].as_u64().unwrap_or(0);
    iperf3(&peer, &vm, PEER_IP, 3);
    let s = stats(&d, "p0");
    let again = s["fastpath"]["packets"].as_u64().unwrap_or(0) - before;
    assert!(
        again > 1000,
        "the returning flow was not carried again: {again}: {s}"
    );

    // A rule added under a carried flow holds at once: the change flushes
    // the decisions, the flow's next frames reach the pipeline, which
    // drops them and never offers the flow again (a firewall on its way).
    let pid = std::env::temp_dir().join(format!("xvs-fp-iperf-{}", std::process::id()));
    let pid = pid.to_string_lossy().into_owned();
    peer.run("iperf3", &["-s", "-1", "-D", "--pidfile", &pid]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let client = std::process::Command::new("ip")
        .args([
            "netns", "exec", &vm.name, "timeout", "20", "iperf3", "-c", PEER_IP,
        ])
        .args(["-t", "5", "--connect-timeout", "2000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 client");
    std::thread::sleep(std::time::Duration::from_millis(2000));
    let before = stats(&d, "p0")["fastpath"]["packets"].as_u64().unwrap_or(0);
    d.ok(&[
        "acl-add",
        "p0",
        "--dir",
        "in",
        "--prio",
        "10",
        "tcp",
        "tp_dst=5201",
        "--action",
        "drop",
    ]);
    // The transaction's round flushed the decisions before it answered.
    let flushed = stats(&d, "p0")["fastpath"]["packets"].as_u64().unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let s = stats(&d, "p0");
    let after = s["fastpath"]["packets"].as_u64().unwrap_or(0);
    let _ = client.wait_with_output();
    if let Ok(p) = std::fs::read_to_string(&pid) {
        if let Ok(p) = p.trim().parse::<i32>() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
    let _ = std::fs::remove_file(&pid);
    let dropped: u64 = s["drops"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0);
    assert!(
        before > 0,
        "the flow was not on the fast path before the rule: {s}"
    );
    assert_eq!(
        s["fastpath"]["flows"].as_u64(),
        Some(0),
        "a flow kept its decision past the rule: {s}"
    );
    assert!(dropped > 0, "the rule dropped nothing: {s}");
    // Nothing carried once the change was answered.
    assert_eq!(
        after, flushed,
        "the executor went on carrying the flow: {before}, {flushed} then {after}: {s}"
    );
    d.ok(&["acl-del", "p0", "--dir", "in", "--prio", "10"]);

    // Killed, xvsd leaves its pair and TC filter behind; the next one
    // takes them over and forwards.
    let mut d = d;
    d.kill9();
    d.restart();
    vm.ping(PEER_IP, 1);
    assert_eq!(vm.ping(PEER_IP, 3), 3, "after a restart:\n{}", d.log());

    let (status, log) = d.stop();
    assert!(status.success(), "{status}:\n{log}");
    let links = hv.run("ip", &["link", "show"]);
    assert!(
        !links.contains("xvs-miss"),
        "the miss pair outlived xvsd:\n{links}"
    );
    let filters = hv.run("tc", &["filter", "show", "dev", "p0", "ingress"]);
    assert!(
        !filters.contains("xvs_tc"),
        "p0 kept the TC program:\n{filters}"
    );
}

/// Two hypervisors, each an xvsd --fastpath with a Geneve bridge and a
/// VXLAN bridge, one VM on each bridge:
///
/// ```text
/// ns g1: eth0 ── pg ┐                              ┌ pg ── eth0 :ns g2
///                   ├ h1: xvsd ── u1 ══ u2 ── h2: xvsd ┤
/// ns v1: eth0 ── pv ┘                              └ pv ── eth0 :ns v2
/// ```
///
/// TCP both ways over each tunnel, IPv4 and IPv6 inside, carried by the
/// executor on both sides (push on one, pop on the other). The rates
/// are printed, not asserted (bench/tcp.sh measures).
#[test]
fn geneve_and_vxlan_between_two_xvsd_on_the_fast_path() {
    if !require_root() {
        return;
    }
    let hvs = [1, 2].map(|n| Netns::new(&format!("fh{n}")));
    xvs_tests::veth(
        &hvs[0],
        "u1",
        "02:00:00:00:01:01",
        &hvs[1],
        "u2",
        "02:00:00:00:02:01",
    );
    let mut vms = Vec::new();
    for (h, hv) in hvs.iter().enumerate() {
        let n = h + 1;
        hv.ip(&[
            "addr",
            "add",
            &format!("192.0.2.{n}/24"),
            "dev",
            &format!("u{n}"),
        ]);
        for (b, port) in [(0, "pg"), (1, "pv")] {
            let vm = Netns::new(&format!("f{}{n}", ["g", "v"][b]));
            xvs_tests::veth(
                &vm,
                "eth0",
                &format!("02:00:00:0{n}:0{b}:01"),
                hv,
                port,
                &format!("02:00:00:0{n}:0{b}:02"),
            );
            vm.ip(&["link", "set", "eth0", "mtu", "1450"]);
            hv.ip(&["link", "set", port, "mtu", "1450"]);
            vm.ip(&["addr", "add", &format!("10.{b}.0.{n}/24"), "dev", "eth0"]);
            vm.ip(&[
                "addr",
                "add",
                &format!("fd0{b}::{n}/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
            vms.push(vm);
        }
    }
    // vms: [g1, v1, g2, v2]
    let daemons: Vec<Xvsd> = (0..2)
        .map(|h| {
            let n = h + 1;
            let other = 2 - h;
            let config = format!(
                r#"
[uplink]
iface = "u{n}"
local_ips = ["192.0.2.{n}"]
mtu = 1500

[[bridges]]
name = "green"

[[bridges]]
name = "blue"

[[ports]]
name = "pg"
bridge = "green"
mtu = 1450

[[ports]]
name = "pv"
bridge = "blue"
mtu = 1450

[[tunnels]]
name = "gn"
bridge = "green"
kind = "geneve"
vni = 200
remotes = ["192.0.2.{other}"]

[[tunnels]]
name = "vx"
bridge = "blue"
kind = "vxlan"
vni = 100
remotes = ["192.0.2.{other}"]
"#
            );
            Xvsd::start(
                Path::new(env!("CARGO_BIN_EXE_xvsd")),
                &hvs[h],
                &config,
                &["--fastpath"],
            )
        })
        .collect();
    for (b, kind) in [(0, "geneve"), (1, "vxlan")] {
        let (a, z) = (&vms[b], &vms[2 + b]);
        let (a4, z4) = (format!("10.{b}.0.1"), format!("10.{b}.0.2"));
        a.ping(&z4, 1);
        assert_eq!(a.ping(&z4, 3), 3, "{kind}: {}", daemons[0].log());
        let up = iperf3(z, a, &z4, 2);
        let down = iperf3(a, z, &a4, 2);
        let up6 = iperf3(z, a, &format!("fd0{b}::2"), 2);
        eprintln!("{kind}: {up:.0} Mbit/s one way, {down:.0} the other, {up6:.0} over IPv6 inside");
        let port = ["pg", "pv"][b];
        for d in &daemons {
            let s = stats(d, port);
            let carried = s["fastpath"]["packets"].as_u64().unwrap_or(0);
            let rx = s["rx_packets"].as_u64().unwrap_or(0);
            assert!(
                carried > rx,
                "{kind} {port}: the fast path carried {carried}, the workers received {rx}: {s}"
            );
        }
    }
    for d in daemons {
        let rows: serde_json::Value =
            serde_json::from_str(&d.ok(&["--format", "json", "stats"])).expect("stats JSON");
        for r in rows.as_array().expect("rows") {
            let lost = r["fastpath"]["miss_errors"].as_u64().unwrap_or(0);
            assert_eq!(lost, 0, "misses lost on the way to the pipeline: {r}");
        }
        let (status, log) = d.stop();
        assert!(status.success(), "{status}:\n{log}");
    }
}
