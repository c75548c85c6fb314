//! QEMU guests' TCP through tunnels, with the guests' offloads on:
//! Linux's virtio-net driver sees TSO and checksum offload offered on
//! xvsd's vhost-user ports, so iperf3 in a guest hands over TCP frames of
//! up to 64 KiB with the checksum left to the device; xvsd cuts them into
//! segments and encapsulates each.
//!
//! - Against the kernel: one guest (two vCPUs, two queue pairs:
//!   multiqueue) behind xvsd, the kernel's own VXLAN device across the
//!   underlay (this kernel has no Geneve device: CONFIG_GENEVE is not
//!   set), iperf3 both ways over IPv4 and, guest to remote, IPv6 inside;
//!   the kernel's TCP counts no checksum error.
//! - Two hypervisors: a guest on each, one xvsd each, iperf3 from guest
//!   to guest both ways over VXLAN, then Geneve, IPv4 and IPv6 inside.
//!
//! ```text
//! guest 10.0.0.1 fd00::1 (MTU 1400) ── vu1 ─ xvsd br0 ─ t1 (VXLAN|Geneve 42)
//!   ns hv: u0 192.0.2.1 ── underlay ── pu0 192.0.2.2: the kernel's vx0, or
//!   a second xvsd and guest 10.0.0.2 fd00::2
//! ```
//!
//! Needs what `vm_guest` needs (root, QEMU 10, the guest image, which
//! carries iperf3), and iperf3 here. Under TCG: the rates printed say
//! what the emulated guests manage, not what the switch does.

use std::path::Path;
use std::time::{Duration, Instant};

use xvs_tests::guest::{guest_dir, port_stats, wait_port_state, Guest};
use xvs_tests::require::{require_file, require_root, require_tool};
use xvs_tests::{underlay, Netns, Xvsd};

/// One test at a time: each boots QEMU guests under TCG, which take
/// both cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const GUEST: &str = "10.0.0.1";
const GUEST6: &str = "fd00::1";
const MAC: &str = "02:00:00:00:0c:02";

/// xvsd's config: `vu1` on `sock` with `pairs` queue pairs, tunnel `t1`.
fn config(sock: &Path, pairs: u32, uplink: &str, local: &str, remote: &str) -> String {
    format!(
        r#"
[uplink]
iface = "{uplink}"
local_ips = ["{local}"]

[[bridges]]
name = "br0"

[[ports]]
name = "vu1"
bridge = "br0"
queues = {pairs}
kind = {{ type = "vhost-user", socket = "{}" }}

[[tunnels]]
name = "t1"
bridge = "br0"
kind = "vxlan"
vni = 42
remotes = ["{remote}"]
"#,
        sock.display()
    )
}

/// The kernel's tunnel device `dev` of `kind` in the remote namespace,
/// the guest's peer inside it.
fn remote_device(pe: &Netns, dev: &str, kind: &str) {
    let mut args = vec![
        "link",
        "add",
        dev,
        "address",
        MAC,
        "mtu",
        "1400",
        "type",
        kind,
        "id",
        "42",
        "remote",
        "192.0.2.1",
    ];
    if kind == "vxlan" {
        args.extend(["local", "192.0.2.2", "dstport", "4789", "dev", "pu0"]);
    }
    pe.ip(&args);
    pe.ip(&["addr", "add", "10.0.0.2/24", "dev", dev]);
    pe.ip(&["-6", "addr", "add", "fd00::2/64", "dev", dev, "nodad"]);
    pe.ip(&["link", "set", dev, "up"]);
}

/// TCP segments with a bad checksum the remote's kernel has received.
fn csum_errors(pe: &Netns) -> u64 {
    let snmp = pe.run("cat", &["/proc/net/snmp"]);
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap_or(""), tcp.next().unwrap_or(""));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "InCsumErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// iperf3 from the remote to the guest's server for `secs` (`reverse`:
/// the guest sends); the Mbit/s received.
fn iperf3(pe: &Netns, to: &str, reverse: bool, secs: u32, why: &dyn Fn() -> String) -> f64 {
    let t = secs.to_string();
    let mut args = vec!["40", "iperf3", "-c", to, "-t", &t, "-J"];
    if reverse {
        args.push("-R");
    }
    let out = pe.exec("timeout", &args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "iperf3 -c {to} {args:?} failed: {text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        why()
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("iperf3 JSON");
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| {
            panic!(
                "iperf3 -c {to} {args:?} measured nothing: {text}\n{}",
                why()
            )
        })
        / 1e6
}

fn tso_segments(d: &Xvsd) -> u64 {
    port_stats(d, "vu1")["tso_segments"].as_u64().unwrap_or(0)
}

fn guest_ready() -> bool {
    require_root()
        && require_tool("qemu-system-x86_64")
        && require_tool("iperf3")
        && require_file(
            &guest_dir().join("vmlinuz").to_string_lossy(),
            "the guest kernel (scripts/guest.sh DIR, XVS_GUEST_DIR=DIR)",
        )
}

fn socket_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xvs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("socket directory");
    dir
}

#[test]
fn a_guests_tso_tcp_reaches_the_kernels_vxlan_with_good_checksums() {
    if !guest_ready() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!("QEMU under TCG (no KVM for a non-PVM guest kernel here)");
    let hv = Netns::new("vthv");
    let pe = Netns::new("vtpe");
    underlay(&hv, &pe);
    remote_device(&pe, "vx0", "vxlan");
    let dir = socket_dir("vt");
    let sock = dir.join("vu1.sock");
    let d = Xvsd::start(
        Path::new(env!("CARGO_BIN_EXE_xvsd")),
        &hv,
        &config(&sock, 2, "u0", "192.0.2.1", "192.0.2.2"),
        &[],
    );
    let mut g = Guest::boot_with(
        &sock,
        "52:54:00:00:0c:01",
        &format!("{GUEST}/24"),
        "t",
        &format!("xvs.mtu=1400 xvs.ip6={GUEST6}/64"),
        2,
    );
    g.wait_ready(1, 120);
    wait_port_state(&d, "vu1", "up", 60, &|| g.console());
    let why = || format!("{}\n{}\n{}", port_stats(&d, "vu1"), d.log(), g.console());

    let deadline = Instant::now() + Duration::from_secs(60);
    while pe.ping(GUEST, 1) == 0 {
        assert!(
            Instant::now() < deadline,
            "the guest does not answer\n{}",
            why()
        );
    }
    // Two vCPUs and two queue pairs offered: Linux takes both.
    let (_, queues) = g.sh("ls /sys/class/net/eth0/queues", 20);
    assert!(
        queues.contains("rx-1") && queues.contains("tx-1"),
        "the guest's NIC has one queue pair: {queues}"
    );
    let (errors, segs) = (csum_errors(&pe), tso_segments(&d));
    let down = iperf3(&pe, GUEST, false, 3, &why);
    let up = iperf3(&pe, GUEST, true, 3, &why);
    let up6 = iperf3(&pe, GUEST6, true, 3, &why);
    eprintln!("remote to guest {down:.0} Mbit/s, guest to remote {up:.0}, over IPv6 {up6:.0}");
    let cut = tso_segments(&d) - segs;
    assert!(cut > 0, "the guest sent no TSO frame: {}", why());
    assert_eq!(
        csum_errors(&pe),
        errors,
        "the kernel received TCP segments with bad checksums"
    );
    let s = port_stats(&d, "vu1");
    assert_eq!(s["drops"].get("guest_bad_descriptor"), None, "{s}");
    eprintln!("{cut} segments cut from the guest's TSO frames");
    drop(g);
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// iperf3 from guest `g` to `to` for `secs` (`-R`: the other way); the
/// Mbit/s the receiver counted.
fn guest_iperf3(g: &Guest, to: &str, reverse: bool, secs: u32, why: &dyn Fn() -> String) -> f64 {
    let r = if reverse { " -R" } else { "" };
    let cmd = format!("timeout 60 iperf3 -c {to} -t {secs} -f m{r}");
    let (rc, out) = g.sh(&cmd, 90);
    assert_eq!(rc, 0, "{cmd} in the guest: {out}\n{}", why());
    out.lines()
        .find(|l| l.trim_end().ends_with("receiver"))
        .and_then(|l| l.split("Mbits/sec").next())
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no receiver rate in: {out}"))
}

#[test]
fn guests_on_two_hypervisors_talk_tcp_over_vxlan_and_geneve() {
    if !guest_ready() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!("QEMU under TCG (no KVM for a non-PVM guest kernel here)");
    let (h1, h2) = (Netns::new("v2a"), Netns::new("v2b"));
    underlay(&h1, &h2);
    let dir = socket_dir("v2");
    let (s1, s2) = (dir.join("a.sock"), dir.join("b.sock"));
    let bin = Path::new(env!("CARGO_BIN_EXE_xvsd"));
    let d1 = Xvsd::start(
        bin,
        &h1,
        &config(&s1, 1, "u0", "192.0.2.1", "192.0.2.2"),
        &[],
    );
    let d2 = Xvsd::start(
        bin,
        &h2,
        &config(&s2, 1, "pu0", "192.0.2.2", "192.0.2.1"),
        &[],
    );
    let extra = |ip6: &str| format!("xvs.mtu=1400 xvs.ip6={ip6}/64");
    let mut g1 = Guest::boot_with(
        &s1,
        "52:54:00:00:0d:01",
        "10.0.0.1/24",
        "a",
        &extra("fd00::1"),
        1,
    );
    let mut g2 = Guest::boot_with(
        &s2,
        "52:54:00:00:0d:02",
        "10.0.0.2/24",
        "b",
        &extra("fd00::2"),
        1,
    );
    g1.wait_ready(1, 180);
    g2.wait_ready(1, 180);
    wait_port_state(&d1, "vu1", "up", 60, &|| g1.console());
    wait_port_state(&d2, "vu1", "up", 60, &|| g2.console());
    let why = || {
        format!(
            "{}\n{}\n{}\n{}",
            port_stats(&d1, "vu1"),
            port_stats(&d2, "vu1"),
            d1.log(),
            d2.log()
        )
    };
    for kind in ["vxlan", "geneve"] {
        if kind == "geneve" {
            for (d, remote) in [(&d1, "192.0.2.2"), (&d2, "192.0.2.1")] {
                d.ok(&[
                    "del-port",
                    "t1",
                    "--",
                    "add-tunnel",
                    "br0",
                    "t1",
                    "--type",
                    "geneve",
                    "--vni",
                    "42",
                    "--remote",
                    remote,
                ]);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while g1.sh("ping -c 1 -W 1 10.0.0.2", 10).0 != 0 {
            assert!(
                Instant::now() < deadline,
                "{kind}: no ping answered\n{}",
                why()
            );
        }
        let (a, b) = (tso_segments(&d1), tso_segments(&d2));
        let there = guest_iperf3(&g1, "10.0.0.2", false, 3, &why);
        let back = guest_iperf3(&g1, "10.0.0.2", true, 3, &why);
        let there6 = guest_iperf3(&g1, "fd00::2", false, 2, &why);
        eprintln!(
            "{kind}: guest to guest {there:.0} Mbit/s, back {back:.0}, over IPv6 {there6:.0}"
        );
        assert!(
            tso_segments(&d1) > a,
            "{kind}: guest 1 sent no TSO frame\n{}",
            why()
        );
        assert!(
            tso_segments(&d2) > b,
            "{kind}: guest 2 sent no TSO frame\n{}",
            why()
        );
        for d in [&d1, &d2] {
            let s = port_stats(d, "vu1");
            assert_eq!(s["drops"].get("guest_bad_descriptor"), None, "{s}");
        }
    }
    drop((g1, g2));
    for d in [d1, d2] {
        let (status, log) = d.stop();
        assert!(status.success(), "{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
