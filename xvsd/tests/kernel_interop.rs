//! xvsd against the Linux kernel's own vxlan device: a VM namespace behind
//! xvsd and a namespace behind the kernel's vxlan (VNI 42, port 4789)
//! ping and run bounded iperf3 TCP transfers both ways, and tshark, on the
//! kernel side of the underlay, dissects what xvsd sends. Every interface
//! keeps its default offloads: the checksums the guests leave to offload
//! arrive complete (tshark verifies them).
//!
//! ```text
//! ns vm: vm0 10.0.0.1/24 ── veth ── ns hv: p0 (xvsd port)   xvsd: br0 = {p0, vx1 VNI 42}
//!                                   ns hv: u0 192.0.2.1/24 (xvsd uplink)
//!                                     └── veth ── ns peer: pu0 192.0.2.2/24
//!                                                 vx0 vxlan 42 → 192.0.2.1, 10.0.0.2/24
//! ```
//!
//! Needs root (`xvs_tests::require`: fails without it
//! under XVS_REQUIRE_ALL=1, skips loudly by hand). Namespaces and the daemon
//! go away on drop, panics included; every wait is bounded.

use std::collections::BTreeSet;
use std::path::Path;

use xvs_tests::kvxlan::{kernel_vxlan, vm_on_p0, xvsd_config};
use xvs_tests::{iperf3, require_root, tshark, underlay, Netns, Xvsd};

struct Topology {
    vm: Netns,
    hv: Netns,
    peer: Netns,
}

fn topology(tag: &str) -> Topology {
    let vm = Netns::new(&format!("{tag}vm"));
    let hv = Netns::new(&format!("{tag}hv"));
    let peer = Netns::new(&format!("{tag}pe"));
    vm_on_p0(&vm, &hv);
    underlay(&hv, &peer);
    kernel_vxlan(
        &peer,
        "pu0",
        "02:00:00:00:0b:01",
        "192.0.2.2",
        "192.0.2.1",
        "10.0.0.2/24",
    );
    Topology { vm, hv, peer }
}

fn xvsd(hv: &Netns) -> Xvsd {
    let config = xvsd_config("192.0.2.1", "192.0.2.2");
    Xvsd::start(Path::new(env!("CARGO_BIN_EXE_xvsd")), hv, &config, &[])
}

#[test]
fn ping_and_tcp_both_ways_with_the_kernel_vxlan() {
    if !require_root() {
        return;
    }
    let t = topology("kv");
    let d = xvsd(&t.hv);
    // The first ping may be lost while the next hop resolves.
    t.vm.ping("10.0.0.2", 1);
    assert_eq!(t.vm.ping("10.0.0.2", 5), 5, "{}", d.log());
    assert_eq!(t.peer.ping("10.0.0.1", 5), 5, "{}", d.log());
    let up = iperf3(&t.peer, &t.vm, "10.0.0.2", 2);
    let down = iperf3(&t.vm, &t.peer, "10.0.0.1", 2);
    eprintln!("iperf3: vm -> kernel vxlan {up:.0} Mbit/s, kernel vxlan -> vm {down:.0} Mbit/s");
    assert!(up > 20.0 && down > 20.0, "{up} {down}\n{}", d.log());
    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
}

#[test]
fn tshark_dissects_what_xvsd_sends_as_valid_vxlan() {
    if !require_root() {
        return;
    }
    let t = topology("kt");
    let d = xvsd(&t.hv);
    t.vm.ping("10.0.0.2", 1);
    #[rustfmt::skip]
    let fields = [
        "vxlan.vni", "udp.srcport", "udp.dstport", "ip.len", "udp.length", "frame.len",
        "ip.checksum.status", "udp.checksum", "ip.ttl", "ip.flags.df",
        "tcp.checksum.status", "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport",
    ];
    let (lines, mbps) = tshark(
        &t.peer,
        "pu0",
        "ip.src == 192.0.2.1 && vxlan",
        &fields,
        || iperf3(&t.peer, &t.vm, "10.0.0.2", 1),
    );
    eprintln!(
        "{} VXLAN frames from xvsd at {mbps:.0} Mbit/s; first: {:?}",
        lines.len(),
        lines.first()
    );
    assert!(lines.len() > 100, "{lines:?}\n{}", d.log());
    // Outer UDP source ports seen per inner TCP flow.
    let mut src_ports = std::collections::BTreeMap::<(&str, &str), BTreeSet<u16>>::new();
    for l in &lines {
        let f: Vec<&str> = l.split('|').collect();
        assert_eq!(f.len(), fields.len(), "{l}");
        assert_eq!(f[0], "42", "VNI: {l}");
        let sport: u16 = f[1].parse().expect("udp.srcport");
        assert!(sport >= 49152, "RFC 7348 source port range: {l}");
        if !f[13].is_empty() {
            src_ports.entry((f[13], f[14])).or_default().insert(sport);
        }
        assert_eq!(f[2], "4789", "{l}");
        let ip_len: usize = f[3].parse().expect("ip.len");
        let udp_len: usize = f[4].parse().expect("udp.length");
        let frame_len: usize = f[5].parse().expect("frame.len");
        assert_eq!(ip_len + 14, frame_len, "IP total length: {l}");
        assert_eq!(udp_len + 20, ip_len, "UDP length: {l}");
        assert_eq!(f[6], "1", "IPv4 header checksum must verify: {l}");
        assert_eq!(f[7], "0x0000", "no UDP checksum configured: {l}");
        assert_eq!(f[8], "64", "TTL: {l}");
        assert_eq!(f[9], "1", "DF by default: {l}");
        // The inner TCP segment (from the VM) must carry a good checksum.
        if !f[10].is_empty() {
            assert_eq!(f[10], "1", "inner TCP checksum: {l}");
        }
        assert_eq!((f[11], f[12]), ("192.0.2.1", "192.0.2.2"), "{l}");
    }
    // iperf3's control and data connections; each keeps one outer source
    // port (the entropy comes from a stable hash of the inner flow).
    assert!(src_ports.len() >= 2, "{src_ports:?}");
    for (flow, ports) in &src_ports {
        assert_eq!(ports.len(), 1, "flow {flow:?} used source ports {ports:?}");
    }
}

/// Default offloads on both guests: the VM's veth and the kernel's vxlan
/// device hand over TCP segments whose checksum is left to offload. What
/// xvsd delivers must carry complete checksums both ways: tshark verifies
/// every inner TCP checksum on the underlay (VM to kernel) and on the VM's
/// own interface (kernel to VM), and xvsd counts what it completed.
#[test]
fn checksums_left_to_offload_arrive_complete_both_ways() {
    if !require_root() {
        return;
    }
    let t = topology("kc");
    let d = xvsd(&t.hv);
    t.vm.ping("10.0.0.2", 1);
    let fields = ["tcp.checksum.status", "tcp.len"];
    let (up, _) = tshark(
        &t.peer,
        "pu0",
        "ip.src == 192.0.2.1 && tcp",
        &fields,
        || iperf3(&t.peer, &t.vm, "10.0.0.2", 1),
    );
    let (down, _) = tshark(&t.vm, "vm0", "ip.src == 10.0.0.2 && tcp", &fields, || {
        iperf3(&t.vm, &t.peer, "10.0.0.1", 1)
    });
    for (dir, lines) in [("vm to kernel", &up), ("kernel to vm", &down)] {
        let data = lines.iter().filter(|l| !l.ends_with("|0")).count();
        assert!(
            data > 100,
            "{dir}: {} segments, {data} with data\n{}",
            lines.len(),
            d.log()
        );
        for l in lines {
            assert!(
                l.starts_with("1|"),
                "{dir}: inner TCP checksum must verify: {l}"
            );
        }
    }
    let stats: serde_json::Value =
        serde_json::from_str(&d.ok(&["--format", "json", "stats"])).expect("stats JSON");
    let completed = |kind: &str| -> u64 {
        stats
            .as_array()
            .expect("rows")
            .iter()
            .filter(|r| r["kind"] == kind)
            .map(|r| r["csum_completed"].as_u64().unwrap_or(0))
            .sum()
    };
    assert!(completed("port") > 100, "{stats}");
    assert!(completed("tunnel") > 100, "{stats}");
}

/// A VM whose MTU (1500) exceeds what fits through the tunnel (1450 on a
/// 1500-byte underlay): xvsd drops what does not fit and answers with ICMP
/// "fragmentation needed", so the VM's path MTU discovery finds 1450 and
/// TCP, which starts with a 1460-byte MSS, goes through instead of
/// black-holing.
#[test]
fn a_vm_with_a_larger_mtu_learns_the_tunnel_mtu_from_icmp() {
    if !require_root() {
        return;
    }
    let t = topology("km");
    t.vm.ip(&["link", "set", "vm0", "mtu", "1500"]);
    let d = xvsd(&t.hv);
    t.vm.ping("10.0.0.2", 1);
    let out = t.vm.exec(
        "ping",
        &["-c", "2", "-W", "2", "-M", "do", "-s", "1472", "10.0.0.2"],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("mtu = 1450") || text.contains("mtu=1450"),
        "ping should learn 1450: {text}\n{}",
        d.log()
    );
    let route = t.vm.run("ip", &["route", "get", "10.0.0.2"]);
    assert!(route.contains("mtu 1450"), "cached path MTU: {route}");
    let up = iperf3(&t.peer, &t.vm, "10.0.0.2", 2);
    assert!(
        up > 20.0,
        "TCP from a 1500-byte VM: {up} Mbit/s\n{}",
        d.log()
    );
    assert!(d.drops("too_big") >= 1, "{}", d.log());
    let stats: serde_json::Value =
        serde_json::from_str(&d.ok(&["--format", "json", "stats"])).expect("stats JSON");
    let sent: u64 = stats
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["icmp_too_big"].as_u64().unwrap_or(0))
        .sum();
    assert!(sent >= 1, "{stats}");
}
