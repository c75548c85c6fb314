//! Jumbo frames through xvsd: an 8950-byte overlay MTU over a 9000-byte
//! underlay, both ways, with pings that may not fragment (`-M do`) at the
//! largest size and 8900-byte UDP datagrams checked byte for byte. VXLAN
//! against the kernel's vxlan device; Geneve between two xvsd (this
//! kernel has no geneve module to meet).
//!
//! ```text
//! VXLAN:  ns vm: vm0 8950 ── p0 ── hv: xvsd ── u0 9000 ── pu0 9000: vx0 vxlan 8950 (peer)
//! Geneve: ns va: eth0 8950 ── pa ── h1: xvsd ── u1 9000 ══ u2 9000 ── h2: xvsd ── pb ── eth0 8950 (ns vb)
//! ```
//!
//! Needs root (`xvs_tests::require`). Namespaces and daemons go away on
//! drop, panics included; every wait is bounded (pings by count and
//! deadline, the UDP receiver by a socket timeout and a datagram count).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use xvs_tests::kvxlan::{kernel_vxlan, vm_on_p0, PEER_IP, VM_IP, VNI};
use xvs_tests::{require_root, underlay, veth, Netns, Xvsd};

/// The overlay MTU (the VMs' and the kernel vxlan's), and the underlay's.
const OVERLAY_MTU: &str = "8950";
const UNDERLAY_MTU: &str = "9000";
/// ICMP payload filling an 8950-byte IP packet (20 IP + 8 ICMP).
const PING_SIZE: &str = "8922";
/// UDP payload of the datagrams checked end to end.
const UDP_LEN: usize = 8900;
const DATAGRAMS: usize = 20;

/// Receives up to `count` datagrams on UDP `port` (3 s of silence ends
/// it), prints how many were `len` bytes of the expected pattern.
const RECEIVER: &str = r#"
import socket, sys
port, count, length = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", port))
s.settimeout(3.0)
good = 0
for _ in range(count):
    try:
        d, _ = s.recvfrom(65535)
    except socket.timeout:
        break
    seq = d[0] if d else 0
    want = bytes((seq + i * 7) & 0xff for i in range(length))
    if d == want:
        good += 1
print(good, flush=True)
"#;

/// Sends `count` datagrams of `length` bytes to `dst` `port`, 20 ms apart.
const SENDER: &str = r#"
import socket, sys, time
dst, port, count, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER, IP_PMTUDISC_DO: never fragment
for seq in range(count):
    s.sendto(bytes((seq + i * 7) & 0xff for i in range(length)), (dst, port))
    time.sleep(0.02)
"#;

/// Sends [`DATAGRAMS`] datagrams of [`UDP_LEN`] bytes from `from` to
/// `to_ip` (in `to`); returns how many arrived intact.
fn udp_intact(from: &Netns, to: &Netns, to_ip: &str) -> usize {
    let (count, len) = (DATAGRAMS.to_string(), UDP_LEN.to_string());
    let rx = Command::new("ip")
        .args(["netns", "exec", &to.name, "python3", "-c", RECEIVER])
        .args(["5201", &count, &len])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 receiver");
    std::thread::sleep(Duration::from_millis(300));
    from.run("python3", &["-c", SENDER, to_ip, "5201", &count, &len]);
    // The receiver ends by count or after 3 s without a datagram.
    let out = rx.wait_with_output().expect("receiver");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("receiver: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Pings `dst` `count` times at the largest size, never fragmenting.
fn big_pings(ns: &Netns, dst: &str, count: u32) -> u32 {
    let c = count.to_string();
    #[rustfmt::skip]
    let out = ns.exec("ping", &[
        "-q", "-M", "do", "-s", PING_SIZE, "-c", &c, "-i", "0.2", "-W", "2", dst,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(',')
        .find_map(|p| p.trim().strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// `xvsctl worker-stats` events summed over workers (jumbo counters).
fn event(d: &Xvsd, name: &str) -> u64 {
    let out = d.ok(&["--format", "json", "worker-stats"]);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("worker-stats JSON");
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| r["events"][name].as_u64().unwrap_or(0))
        .sum()
}

/// Waits (at most 3 s: workers publish their counters periodically)
/// for event `name` to reach `want`; returns its last value.
fn event_reaches(d: &Xvsd, name: &str, want: u64) -> u64 {
    let mut v = 0;
    for _ in 0..30 {
        v = event(d, name);
        if v >= want {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    v
}

/// The daemon's log with its worker and drop counters, for failures.
fn report(d: &Xvsd) -> String {
    format!(
        "{}\n{}\n{}",
        d.log(),
        d.ok(&["worker-stats"]),
        d.ok(&["--format", "json", "stats"])
    )
}

/// Fails (never passes silently) unless xvsd attached natively to `ifs`:
/// generic XDP would lose frames longer than a page.
fn attached_natively(d: &Xvsd, ifs: &[&str]) {
    let log = d.log();
    for i in ifs {
        let line = log
            .lines()
            .find(|l| l.contains("XDP attached") && l.contains(&format!("iface={i}")))
            .unwrap_or_else(|| panic!("no attach line for {i}:\n{log}"));
        assert!(line.contains("mode=native"), "{i}: {line}");
    }
}

#[test]
fn jumbo_frames_both_ways_with_the_kernel_vxlan() {
    if !require_root() {
        return;
    }
    let vm = Netns::new("jvm");
    let hv = Netns::new("jhv");
    let peer = Netns::new("jpe");
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
    for (ns, dev, mtu) in [
        (&vm, "vm0", OVERLAY_MTU),
        (&hv, "p0", OVERLAY_MTU),
        (&hv, "u0", UNDERLAY_MTU),
        (&peer, "pu0", UNDERLAY_MTU),
        (&peer, "vx0", OVERLAY_MTU),
    ] {
        ns.ip(&["link", "set", dev, "mtu", mtu]);
    }
    let config = format!(
        r#"
[uplink]
iface = "u0"
local_ips = ["192.0.2.1"]
mtu = {UNDERLAY_MTU}

[[bridges]]
name = "br0"

[[ports]]
name = "p0"
bridge = "br0"
mtu = {OVERLAY_MTU}

[[tunnels]]
name = "vx1"
bridge = "br0"
kind = "vxlan"
vni = {VNI}
remotes = ["192.0.2.2"]
"#
    );
    let d = Xvsd::start(Path::new(env!("CARGO_BIN_EXE_xvsd")), &hv, &config, &[]);
    attached_natively(&d, &["p0", "u0"]);
    // The first ping may be lost while the next hop resolves.
    vm.ping(PEER_IP, 1);
    assert_eq!(big_pings(&vm, PEER_IP, 5), 5, "vm -> peer\n{}", report(&d));
    assert_eq!(big_pings(&peer, VM_IP, 5), 5, "peer -> vm\n{}", report(&d));
    let up = udp_intact(&vm, &peer, PEER_IP);
    let down = udp_intact(&peer, &vm, VM_IP);
    eprintln!("UDP {UDP_LEN} B intact: vm -> peer {up}/{DATAGRAMS}, peer -> vm {down}/{DATAGRAMS}");
    assert_eq!((up, down), (DATAGRAMS, DATAGRAMS), "{}", report(&d));
    // Every one of those frames was a chain both ways.
    let want = 2 * (10 + DATAGRAMS as u64);
    let rx = event_reaches(&d, "jumbo_rx", want);
    let tx = event_reaches(&d, "jumbo_tx", want);
    assert!(rx >= want && tx >= want, "jumbo_rx {rx}, jumbo_tx {tx}");
    assert_eq!(event(&d, "jumbo_drop_no_slot"), 0);
    assert_eq!(event(&d, "jumbo_drop_bad_chain"), 0);
    let (status, log) = d.stop();
    assert!(status.success() && log.contains("stopped cleanly"), "{log}");
}

#[test]
fn jumbo_frames_both_ways_over_geneve_between_two_xvsd() {
    if !require_root() {
        return;
    }
    let hvs = [1, 2].map(|n| Netns::new(&format!("jgh{n}")));
    veth(
        &hvs[0],
        "u1",
        "02:00:00:00:01:01",
        &hvs[1],
        "u2",
        "02:00:00:00:02:01",
    );
    let ips = ["10.3.0.1", "10.3.0.2"];
    let vms = [0, 1].map(|h| {
        let n = h + 1;
        let hv = &hvs[h];
        hv.ip(&[
            "addr",
            "add",
            &format!("192.0.2.{n}/24"),
            "dev",
            &format!("u{n}"),
        ]);
        hv.ip(&["link", "set", &format!("u{n}"), "mtu", UNDERLAY_MTU]);
        hv.no_ipv6_on_new_interfaces();
        let vm = Netns::new(&format!("jgv{n}"));
        vm.no_ipv6_on_new_interfaces();
        veth(
            &vm,
            "eth0",
            &format!("02:00:00:0{n}:0a:01"),
            hv,
            "p",
            &format!("02:00:00:0{n}:0a:02"),
        );
        vm.ip(&["link", "set", "eth0", "mtu", OVERLAY_MTU]);
        hv.ip(&["link", "set", "p", "mtu", OVERLAY_MTU]);
        vm.ip(&["addr", "add", &format!("{}/24", ips[h]), "dev", "eth0"]);
        vm
    });
    let daemons: Vec<Xvsd> = (0..2)
        .map(|h| {
            let n = h + 1;
            let other = 2 - h;
            let config = format!(
                r#"
[uplink]
iface = "u{n}"
local_ips = ["192.0.2.{n}"]
mtu = {UNDERLAY_MTU}

[[bridges]]
name = "green"

[[ports]]
name = "p"
bridge = "green"
mtu = {OVERLAY_MTU}

[[tunnels]]
name = "gn"
bridge = "green"
kind = "geneve"
vni = 200
remotes = ["192.0.2.{other}"]
"#
            );
            Xvsd::start(Path::new(env!("CARGO_BIN_EXE_xvsd")), &hvs[h], &config, &[])
        })
        .collect();
    let logs = || {
        daemons
            .iter()
            .map(Xvsd::log)
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    attached_natively(&daemons[0], &["p", "u1"]);
    attached_natively(&daemons[1], &["p", "u2"]);
    vms[0].ping(ips[1], 1);
    assert_eq!(big_pings(&vms[0], ips[1], 5), 5, "1 -> 2\n{}", logs());
    assert_eq!(big_pings(&vms[1], ips[0], 5), 5, "2 -> 1\n{}", logs());
    let up = udp_intact(&vms[0], &vms[1], ips[1]);
    let down = udp_intact(&vms[1], &vms[0], ips[0]);
    eprintln!(
        "Geneve UDP {UDP_LEN} B intact: {up}/{DATAGRAMS} one way, {down}/{DATAGRAMS} the other"
    );
    assert_eq!((up, down), (DATAGRAMS, DATAGRAMS), "{}", logs());
    for d in daemons {
        let want = 2 * (10 + DATAGRAMS as u64);
        let rx = event_reaches(&d, "jumbo_rx", want);
        let tx = event_reaches(&d, "jumbo_tx", want);
        assert!(rx >= want && tx >= want, "jumbo_rx {rx}, jumbo_tx {tx}");
        assert_eq!(event(&d, "jumbo_drop_no_slot"), 0);
        let (status, log) = d.stop();
        assert!(status.success() && log.contains("stopped cleanly"), "{log}");
    }
}
