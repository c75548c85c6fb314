//! Underlay neighbours of a long-lived tunnel (issue 15, defects 3 and 4):
//! xvsd against the kernel's vxlan, as in `kernel_interop.rs`, with the
//! underlay on a bridge so a third namespace can talk on it.
//!
//! - The kernel's neighbour timers on xvsd's uplink are cut to a second or
//!   two, so its reachable/stale/collection cycle turns many times in half
//!   a minute (and its entry is deleted outright a few times): a fast ping
//!   through the tunnel loses nothing and nothing is dropped as
//!   `neigh_unresolved`.
//! - An attacker floods the segment with ARP replies from 20,000 other
//!   addresses (on and off the uplink's subnet) and one spoofed reply for
//!   the VTEP: a ping through the tunnel loses nothing, and the VTEP's MAC
//!   stays what it was, in xvsd and in the kernel.
//!
//! ```text
//! ns vm: vm0 10.0.0.1/24 ── veth ── ns hv: p0 (xvsd port)   xvsd: br0 = {p0, vx1 VNI 42}
//!                                   ns hv: u0 10.200.0.1/16 (xvsd uplink)
//!                                     └── veth ── ns net: bridge br0
//!        ns peer: pu0 10.200.0.2/16 ── veth ──┘    │
//!                 vx0 vxlan 42 → 10.200.0.1, 10.0.0.2/24
//!        ns atk:  a0 (no address)  ── veth ────────┘
//! ```
//!
//! - The VTEP's entry set by hand, PERMANENT, for a peer that answers no
//!   ARP: xvsd keeps its next hops confirmed by marking them used
//!   (NTF_USE), which since Linux 5.16 strips PERMANENT; it must leave
//!   such an entry alone, and the tunnel stays up for longer than a
//!   dynamic entry would have lived.
//!
//! `XVSD_BIN` runs another xvsd build (to show these fail on an older one).
//! Needs root (`xvs_tests::require`). Namespaces and the daemon go away on
//! drop, panics included; every wait and traffic loop is bounded.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xvs_tests::kvxlan::{kernel_vxlan, vm_on_p0, xvsd_config};
use xvs_tests::{on_thread, require_root, veth, workspace_bin, Netns, Xvsd};

const VTEP: &str = "10.200.0.2";
const VTEP_MAC: &str = "02:00:00:00:00:02";
const UPLINK_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const SPOOF_MAC: [u8; 6] = [2, 0, 0, 0, 0x66, 0x66];

struct Topology {
    vm: Netns,
    hv: Netns,
    atk: Netns,
    _peer: Netns,
    _net: Netns,
}

fn topology(tag: &str) -> Topology {
    let vm = Netns::new(&format!("{tag}vm"));
    let hv = Netns::new(&format!("{tag}hv"));
    let net = Netns::new(&format!("{tag}nt"));
    let peer = Netns::new(&format!("{tag}pe"));
    let atk = Netns::new(&format!("{tag}at"));
    for ns in [&vm, &hv, &peer, &atk] {
        ns.no_ipv6_on_new_interfaces();
    }
    net.ip(&["link", "add", "br0", "type", "bridge"]);
    net.ip(&["link", "set", "br0", "up"]);
    vm_on_p0(&vm, &hv);
    veth(
        &hv,
        "u0",
        "02:00:00:00:00:01",
        &net,
        "b0",
        "02:00:00:00:f0:00",
    );
    veth(&peer, "pu0", VTEP_MAC, &net, "b1", "02:00:00:00:f0:01");
    veth(
        &atk,
        "a0",
        "02:00:00:00:66:01",
        &net,
        "b2",
        "02:00:00:00:f0:02",
    );
    for b in ["b0", "b1", "b2"] {
        net.ip(&["link", "set", b, "master", "br0"]);
    }
    hv.ip(&["addr", "add", "10.200.0.1/16", "dev", "u0"]);
    peer.ip(&["addr", "add", "10.200.0.2/16", "dev", "pu0"]);
    kernel_vxlan(
        &peer,
        "pu0",
        "02:00:00:00:0b:01",
        "10.200.0.2",
        "10.200.0.1",
        "10.0.0.2/24",
    );
    Topology {
        vm,
        hv,
        atk,
        _peer: peer,
        _net: net,
    }
}

fn xvsd(hv: &Netns) -> Xvsd {
    let bin = std::env::var_os("XVSD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_xvsd")));
    Xvsd::start(&bin, hv, &xvsd_config("10.200.0.1", VTEP), &[])
}

/// Writes `value` to /proc/sys/`path` inside `ns`.
fn sysctl(ns: &Netns, path: &str, value: &str) {
    ns.run(
        "sh",
        &["-c", &format!("echo {value} > /proc/sys/net/ipv4/{path}")],
    );
}

/// The MAC xvsd's neighbour cache holds for `ip` (none while unresolved).
fn xvsd_mac(d: &Xvsd, ip: &str) -> Option<String> {
    let (code, out, err) = d.ctl(
        &workspace_bin("xvsctl"),
        &["--format", "json", "neigh-show"],
    );
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("neigh-show JSON");
    rows.as_array()
        .expect("rows")
        .iter()
        .find(|r| r["ip"] == ip)
        .and_then(|r| r["mac"].as_str().map(str::to_owned))
}

/// Waits (at most 10 s) until a ping goes through the tunnel.
fn tunnel_up(vm: &Netns, d: &Xvsd) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while vm.ping("10.0.0.2", 1) != 1 {
        assert!(Instant::now() < deadline, "no ping through\n{}", d.log());
    }
}

#[test]
fn a_permanent_neighbour_set_by_hand_stays_permanent_and_the_tunnel_up() {
    if !require_root() {
        return;
    }
    let t = topology("np");
    // The peer answers no ARP: once not permanent, the entry would fail.
    t._peer.run(
        "sh",
        &["-c", "echo 8 > /proc/sys/net/ipv4/conf/pu0/arp_ignore"],
    );
    // A dynamic entry on u0 would be reachable for 0.5-1.5 s only.
    sysctl(&t.hv, "neigh/u0/base_reachable_time_ms", "1000");
    sysctl(&t.hv, "neigh/u0/delay_first_probe_time", "1");
    #[rustfmt::skip]
    t.hv.ip(&["neigh", "replace", VTEP, "lladdr", VTEP_MAC, "nud", "permanent", "dev", "u0"]);
    let d = xvsd(&t.hv);
    tunnel_up(&t.vm, &d);
    // Seconds of refreshes (one a second), pings through the tunnel all along.
    let sent = 40;
    let got = t.vm.ping_every("10.0.0.2", sent, "0.2", 2);
    let entry = t.hv.run("ip", &["neigh", "show", VTEP, "dev", "u0"]);
    assert!(
        entry.contains("PERMANENT"),
        "the entry set by hand changed: {entry:?}"
    );
    assert_eq!(got, sent, "pings lost through the tunnel\n{}", d.log());
    assert_eq!(d.drops("neigh_unresolved"), 0);
}

#[test]
fn a_tunnel_loses_nothing_across_the_kernels_stale_and_gc_cycles() {
    if !require_root() {
        return;
    }
    let t = topology("ng");
    // The kernel's cycle on u0 in seconds: reachable for 0.5-1.5 s, one
    // second of DELAY, stale entries unused for 2 s collected.
    sysctl(&t.hv, "neigh/u0/base_reachable_time_ms", "1000");
    sysctl(&t.hv, "neigh/u0/delay_first_probe_time", "1");
    sysctl(&t.hv, "neigh/u0/gc_stale_time", "2");
    // The kernel's collection pass skips while the ARP table, shared by
    // every namespace, holds fewer than gc_thresh1 (128) entries; both it
    // and the pass's timing are the host's, not this namespace's. Rather
    // than change them, fill the table with permanent entries, which are
    // never collected.
    for n in 1..=130 {
        let a = format!("10.200.200.{n}");
        let m = format!("02:00:00:00:ff:{n:02x}");
        #[rustfmt::skip]
        t.hv.ip(&["neigh", "add", &a, "lladdr", &m, "nud", "permanent", "dev", "u0"]);
    }
    let d = xvsd(&t.hv);
    tunnel_up(&t.vm, &d);
    let unresolved_before = d.drops("neigh_unresolved");

    // Every change of the kernel's entry for the VTEP meanwhile.
    let monitor = Command::new("ip")
        .args(["netns", "exec", &t.hv.name, "timeout", "60"])
        .args(["ip", "monitor", "neigh"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ip monitor");
    // 6,400 pings 5 ms apart: 32 s, many turns of the reachable/stale
    // timers and of the collection pass. A forced collection (over
    // gc_thresh2, global too) deletes entries outright: done by hand, three
    // times (which fails the entry first, then deletes it).
    let sent = 6400;
    let answered = std::thread::scope(|s| {
        let ping = s.spawn(|| t.vm.ping_every("10.0.0.2", sent, "0.005", 1));
        for _ in 0..3 {
            std::thread::sleep(Duration::from_secs(4));
            t.hv.ip(&["neigh", "del", VTEP, "dev", "u0"]);
        }
        ping.join().expect("ping thread")
    });
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(monitor.id() as i32, libc::SIGTERM) };
    let out = monitor.wait_with_output().expect("ip monitor output");
    let events = String::from_utf8_lossy(&out.stdout);
    let mine: Vec<&str> = events.lines().filter(|l| l.contains(VTEP)).collect();
    let unresolved = d.drops("neigh_unresolved") - unresolved_before;
    eprintln!(
        "{answered}/{sent} answered, {unresolved} neigh_unresolved, {} kernel changes of {VTEP}, {} deletions:\n{}",
        mine.len(),
        mine.iter().filter(|l| l.starts_with("Deleted")).count(),
        mine.iter().take(16).copied().collect::<Vec<_>>().join("\n")
    );
    assert!(
        mine.len() >= 6,
        "the kernel's timers did not turn: {events}"
    );
    assert_eq!(unresolved, 0, "{}", d.log());
    assert_eq!(answered, sent, "{}", d.log());
    assert_eq!(xvsd_mac(&d, VTEP).as_deref(), Some(VTEP_MAC));
}

/// An ARP reply from `sender` (`mac`) to `dst`, for 10.200.0.1.
fn arp_reply(dst: [u8; 6], sender: [u8; 4], mac: [u8; 6]) -> Vec<u8> {
    let mut v = Vec::with_capacity(60);
    v.extend_from_slice(&dst);
    v.extend_from_slice(&mac);
    v.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
    v.extend_from_slice(&mac);
    v.extend_from_slice(&sender);
    v.extend_from_slice(&UPLINK_MAC);
    v.extend_from_slice(&[10, 200, 0, 1]);
    v.resize(60, 0);
    v
}

/// Sends `frames` out of `iface` in `ns` through an AF_PACKET socket, at
/// about `per_sec` a second; gives up after 20 s. Returns how many went.
fn send_raw(ns: &Netns, iface: &str, frames: &[Vec<u8>], per_sec: u64) -> usize {
    on_thread(|| {
        ns.enter();
        let name = std::ffi::CString::new(iface).expect("name");
        // SAFETY: `name` is a valid C string for the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(ifindex, 0, "no {iface} in {}", ns.name);
        // SAFETY: plain socket creation; the fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` was just created and is owned by nobody else.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        let start = Instant::now();
        let deadline = start + Duration::from_secs(20);
        let mut sent = 0;
        for (i, f) in frames.iter().enumerate() {
            if Instant::now() > deadline {
                break;
            }
            addr.sll_addr[..6].copy_from_slice(&f[..6]);
            // SAFETY: `f` and `addr` are valid for the lengths given.
            let n = unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    f.as_ptr().cast(),
                    f.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if n == f.len() as isize {
                sent += 1;
            }
            // Pace: frame i is due at i / per_sec seconds.
            let due = Duration::from_micros(i as u64 * 1_000_000 / per_sec);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        sent
    })
}

#[test]
fn an_arp_reply_flood_and_a_spoof_leave_the_tunnel_alone() {
    if !require_root() {
        return;
    }
    let t = topology("nf");
    let d = xvsd(&t.hv);
    tunnel_up(&t.vm, &d);
    assert_eq!(xvsd_mac(&d, VTEP).as_deref(), Some(VTEP_MAC), "{}", d.log());
    let unresolved_before = d.drops("neigh_unresolved");

    // 20,000 replies, unicast to xvsd's uplink: 18,000 from other
    // addresses of the uplink's /16, 2,000 from off it; then one spoof for
    // the VTEP, to a MAC that is not the uplink's (the kernel drops it,
    // as it is not for this host; a switch floods it while it does not
    // know that MAC).
    let mut frames: Vec<Vec<u8>> = (0..20_000u32)
        .map(|n| {
            let mac = [2, 0x77, 0, (n >> 16) as u8, (n >> 8) as u8, n as u8];
            let sender = if n % 10 == 9 {
                [192, 0, 2, (n % 250) as u8 + 1]
            } else {
                [10, 200, 1 + (n / 250) as u8, (n % 250) as u8 + 1]
            };
            arp_reply(UPLINK_MAC, sender, mac)
        })
        .collect();
    frames.push(arp_reply([2, 0, 0, 0, 0, 0x99], [10, 200, 0, 2], SPOOF_MAC));

    let sent_pings = 600;
    let (answered, flood) = std::thread::scope(|s| {
        let ping = s.spawn(|| t.vm.ping_every("10.0.0.2", sent_pings, "0.01", 1));
        std::thread::sleep(Duration::from_millis(500));
        let flood = send_raw(&t.atk, "a0", &frames, 20_000);
        (ping.join().expect("ping thread"), flood)
    });
    let unresolved = d.drops("neigh_unresolved") - unresolved_before;
    eprintln!("{answered}/{sent_pings} answered during a flood of {flood} frames, {unresolved} neigh_unresolved");
    assert_eq!(flood, frames.len(), "the flood was not sent whole");
    assert_eq!(unresolved, 0, "{}", d.log());
    assert_eq!(answered, sent_pings, "{}", d.log());
    assert_eq!(xvsd_mac(&d, VTEP).as_deref(), Some(VTEP_MAC), "{}", d.log());
    let kernel = t.hv.run("ip", &["neigh", "show", VTEP]);
    assert!(kernel.contains(VTEP_MAC), "kernel entry: {kernel}");
    // Still answered after the flood, with no entry for a flooded address.
    assert_eq!(t.vm.ping("10.0.0.2", 3), 3, "{}", d.log());
    assert_eq!(xvsd_mac(&d, "10.200.1.1"), None);
    assert!(
        d.log().contains("snooped neighbor replies refused"),
        "{}",
        d.log()
    );
}

/// The uplink's `snooped` counters from `xvsctl --format json stats`.
fn snooped(d: &Xvsd) -> serde_json::Value {
    let out = d.ok(&["--format", "json", "stats"]);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("stats JSON");
    rows.as_array()
        .expect("rows")
        .iter()
        .find(|r| r["kind"] == "uplink")
        .unwrap_or_else(|| panic!("no uplink row: {out}"))["snooped"]
        .clone()
}

#[test]
fn refused_replies_and_the_tunnels_next_hop_show_in_xvsctl() {
    if !require_root() {
        return;
    }
    let t = topology("nv");
    let d = xvsd(&t.hv);
    tunnel_up(&t.vm, &d);

    // One reply of each kind the kernel would not take or xvsd did not
    // ask for: from an address of the uplink's subnet nobody resolves,
    // from off the subnet, and (for the VTEP, with another MAC) to a MAC
    // that is not the uplink's.
    let frames = vec![
        arp_reply(UPLINK_MAC, [10, 200, 3, 3], [2, 0x77, 0, 0, 3, 3]),
        arp_reply(UPLINK_MAC, [192, 0, 2, 5], [2, 0x77, 0, 0, 2, 5]),
        arp_reply([2, 0, 0, 0, 0, 0x99], [10, 200, 0, 2], SPOOF_MAC),
    ];
    assert_eq!(send_raw(&t.atk, "a0", &frames, 100), frames.len());
    let want = [("unsolicited", 1), ("off_subnet", 1), ("not_for_us", 1)];
    let deadline = Instant::now() + Duration::from_secs(5);
    let s = loop {
        let s = snooped(&d);
        if want.iter().all(|(k, _)| s[k].as_u64().is_some()) || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for (k, n) in want {
        assert_eq!(s[k].as_u64(), Some(n), "{k} in {s}\n{}", d.log());
    }
    assert!(s.get("conflicting").is_none(), "{s}");
    // The operator's view: the same counts in the text table.
    let text = d.ok(&["stats"]);
    let line = text
        .lines()
        .find(|l| l.starts_with("u0 snooped ARP/ND replies:"))
        .unwrap_or_else(|| panic!("no snooped line for u0:\n{text}"));
    for (k, n) in want {
        assert!(line.contains(&format!("{k}={n}")), "{k}={n} in {line:?}");
    }

    // The tunnel's next hop is in the cache, resolved, in use, and kept
    // confirmed through the kernel (a refresh a second: wait for one);
    // the refused replies left no entry.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (out, rows) = loop {
        let out = d.ok(&["--format", "json", "neigh-show"]);
        let rows: serde_json::Value = serde_json::from_str(&out).expect("neigh-show JSON");
        let refreshed = rows.as_array().is_some_and(|rs| {
            rs.iter()
                .any(|r| r["ip"] == VTEP && r["refreshes"].as_u64().unwrap_or(0) > 0)
        });
        if refreshed || Instant::now() > deadline {
            break (out, rows);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let rows = rows.as_array().expect("rows");
    let vtep = rows
        .iter()
        .find(|r| r["ip"] == VTEP)
        .unwrap_or_else(|| panic!("no {VTEP} in {out}"));
    assert!(vtep["refreshes"].as_u64() > Some(0), "{out}\n{}", d.log());
    assert!(vtep["confirmations"].as_u64() > Some(0), "{out}");
    assert_eq!(vtep["mac"], VTEP_MAC, "{out}");
    assert_eq!(vtep["in_use"], true, "{out}");
    assert!(
        ["reachable", "stale"].contains(&vtep["state"].as_str().unwrap_or("")),
        "{out}"
    );
    assert!(vtep["age_secs"].as_u64().is_some(), "{out}");
    for ip in ["10.200.3.3", "192.0.2.5"] {
        assert!(rows.iter().all(|r| r["ip"] != ip), "{ip} in {out}");
    }
    let text = d.ok(&["neigh-show"]);
    let row = text
        .lines()
        .find(|l| l.starts_with(VTEP))
        .unwrap_or_else(|| panic!("no {VTEP} row:\n{text}"));
    assert!(
        row.contains(VTEP_MAC) && row.split_whitespace().any(|w| w == "yes"),
        "{text}"
    );
    assert_eq!(t.vm.ping("10.0.0.2", 2), 2, "{}", d.log());
}
