//! ARP suppression and lookup on miss end to end: two hypervisors with an
//! xvsd each, one VM behind each, VXLAN between them.
//!
//! Suppression: each xvsd is told the other VM's IP and MAC (`xvsctl
//! arp-add`); the VMs then ping each other and not one ARP request crosses
//! the underlay encapsulated (tshark on the underlay), while a request for
//! an address no table has still floods across.
//!
//! Lookup: bridges without learning, each knowing only its own VM (a
//! static MAC), with the direct provider and miss=drop: the first frames to
//! the other VM are dropped while the lookup installs its MAC behind the
//! other VTEP, then the VMs ping each other.
//!
//! ```text
//! vm1 10.1.0.1 ─ p1 ┐                                ┌ p2 ─ vm2 10.1.0.2
//!                   hv1: xvsd ═ u1 ═ n1 [sw] n2 ═ u2 ═ hv2: xvsd
//!                                   (tshark)             VXLAN VNI 100
//! ```
//!
//! Needs root (`xvs_tests::require`: fails without it
//! under XVS_REQUIRE_ALL=1, skips loudly by hand). Namespaces and daemons
//! go away on drop, panics included; every wait is bounded.

use std::path::Path;

use xvs_tests::{require_root, tshark, veth, workspace_bin, Netns, Xvsd};

const IPS: [&str; 2] = ["10.1.0.1", "10.1.0.2"];
const MACS: [&str; 2] = ["02:00:00:01:0a:01", "02:00:00:02:0a:01"];

struct Pair {
    vms: [Netns; 2],
    /// Dropped before the namespaces they run in (fields drop in order).
    xvsd: [Xvsd; 2],
    hvs: [Netns; 2],
    net: Netns,
}

/// The two hypervisors with `bridge` (TOML lines added to the bridge
/// `blue`) and `extra` (TOML tables); in both, `{n}`/`{other}`/`{mac}`
/// become the hypervisor's number, the other's, and its own VM's MAC.
fn pair(tag: &str, bridge: &str, extra: &str) -> Pair {
    let hvs = [1, 2].map(|n| Netns::new(&format!("{tag}h{n}")));
    // The underlay is a Linux bridge in a namespace of its own: a capture
    // there sees every frame, where one on an xvsd uplink would miss what
    // XDP takes before the kernel's taps.
    let net = Netns::new(&format!("{tag}n"));
    net.ip(&["link", "add", "sw", "type", "bridge"]);
    net.ip(&["link", "set", "sw", "up"]);
    for (h, hv) in hvs.iter().enumerate() {
        let n = h + 1;
        veth(
            hv,
            &format!("u{n}"),
            &format!("02:00:00:00:0{n}:01"),
            &net,
            &format!("n{n}"),
            &format!("02:00:00:00:0{n}:09"),
        );
        net.ip(&["link", "set", &format!("n{n}"), "master", "sw"]);
    }
    for (h, hv) in hvs.iter().enumerate() {
        let addr = format!("192.0.2.{}/24", h + 1);
        hv.ip(&["addr", "add", &addr, "dev", &format!("u{}", h + 1)]);
        hv.no_ipv6_on_new_interfaces();
    }
    let vms = [0, 1].map(|h| {
        let vm = Netns::new(&format!("{tag}v{}", h + 1));
        vm.no_ipv6_on_new_interfaces();
        let port = format!("p{}", h + 1);
        veth(
            &vm,
            "eth0",
            MACS[h],
            &hvs[h],
            &port,
            &format!("02:00:00:0{}:00:02", h + 1),
        );
        vm.ip(&["link", "set", "eth0", "mtu", "1400"]);
        vm.ip(&["addr", "add", &format!("{}/24", IPS[h]), "dev", "eth0"]);
        vm
    });
    let xvsd = [0, 1].map(|h| {
        let n = h + 1;
        let config = (format!(
            r#"
[uplink]
iface = "u{n}"
local_ips = ["192.0.2.{n}"]

[[bridges]]
name = "blue"
{bridge}

[[ports]]
name = "p{n}"
bridge = "blue"

[[tunnels]]
name = "vx"
bridge = "blue"
kind = "vxlan"
vni = 100
remotes = ["192.0.2.{other}"]
"#,
            other = 2 - h
        ) + extra)
            .replace("{n}", &n.to_string())
            .replace("{other}", &(2 - h).to_string())
            .replace("{mac}", MACS[h]);
        Xvsd::start(Path::new(env!("CARGO_BIN_EXE_xvsd")), &hvs[h], &config, &[])
    });
    Pair {
        vms,
        xvsd,
        hvs,
        net,
    }
}

fn logs(p: &Pair) -> String {
    p.xvsd
        .iter()
        .map(Xvsd::log)
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// The sum of one worker-stats event over the daemon's workers.
fn event(d: &Xvsd, name: &str) -> u64 {
    let (code, out, err) = d.ctl(
        &workspace_bin("xvsctl"),
        &["--format", "json", "worker-stats"],
    );
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("worker-stats JSON");
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| r["events"][name].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn known_addresses_are_answered_locally_and_no_arp_request_crosses() {
    if !require_root() {
        return;
    }
    let p = pair("as", "arp_suppress = true", "");
    let xvsctl = workspace_bin("xvsctl");
    // Each side learns the other VM's address, as a control plane would
    // tell it.
    for h in 0..2 {
        let o = 1 - h;
        let (code, _, err) = p.xvsd[h].ctl(&xvsctl, &["arp-add", "blue", IPS[o], MACS[o]]);
        assert_eq!(code, 0, "arp-add: {err}");
        let (_, shown, _) = p.xvsd[h].ctl(&xvsctl, &["arp-show", "blue"]);
        assert!(shown.contains(IPS[o]) && shown.contains(MACS[o]), "{shown}");
    }

    let (lines, (sent, received, unknown)) = tshark(
        &p.net,
        "n1",
        "vxlan && arp.opcode == 1",
        &["arp.dst.proto_ipv4"],
        || {
            // The first echo may wait for the underlay next hop to resolve.
            p.vms[0].ping(IPS[1], 1);
            let received = p.vms[0].ping(IPS[1], 5);
            // Control: an address in no table is asked for across.
            let unknown = p.vms[0].ping("10.1.0.99", 1);
            (5, received, unknown)
        },
    );
    assert_eq!(received, sent, "ping vm1 -> vm2\n{}", logs(&p));
    assert_eq!(unknown, 0);
    assert!(
        !lines.iter().any(|l| l == IPS[1] || l == IPS[0]),
        "ARP requests for known addresses crossed the underlay: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == "10.1.0.99"),
        "the control request for an unknown address should cross: {lines:?}"
    );
    // The VMs got their answers from the switches: each resolved the
    // other to the MAC the table gave.
    for h in 0..2 {
        let neigh = p.vms[h].run("ip", &["neigh", "show", IPS[1 - h]]);
        assert!(neigh.contains(MACS[1 - h]), "vm{}: {neigh}", h + 1);
    }
    let (a1, a2) = (
        event(&p.xvsd[0], "arp_suppressed"),
        event(&p.xvsd[1], "arp_suppressed"),
    );
    eprintln!("arp_suppressed: hv1 {a1}, hv2 {a2}; requests seen crossing: {lines:?}");
    assert!(a1 >= 1, "hv1 answered vm1's request\n{}", logs(&p));
    assert!(a2 >= 1, "hv2 answered vm2's request\n{}", logs(&p));
    for d in p.xvsd {
        let (status, log) = d.stop();
        assert!(status.success() && log.contains("stopped cleanly"), "{log}");
    }
}

#[test]
fn unknown_macs_are_looked_up_and_installed_behind_the_answered_vtep() {
    if !require_root() {
        return;
    }
    let p = pair(
        "lk",
        "learning = false\nlookup = { provider = { kind = \"direct\", vtep = \"192.0.2.{other}\" }, miss = \"drop\" }",
        "\n[[fdb]]\nbridge = \"blue\"\nmac = \"{mac}\"\nport = \"p{n}\"\n",
    );
    let xvsctl = workspace_bin("xvsctl");
    // The first frames to the other VM (an ARP reply, an echo request) are
    // dropped while their lookup runs; the senders' retries get through.
    let mut warm = 0;
    for _ in 0..4 {
        warm = p.vms[0].ping(IPS[1], 1);
        if warm == 1 {
            break;
        }
    }
    assert_eq!(warm, 1, "no ping got through\n{}", logs(&p));
    assert_eq!(p.vms[0].ping(IPS[1], 5), 5, "{}", logs(&p));
    for h in 0..2 {
        let (code, fdb, err) = p.xvsd[h].ctl(&xvsctl, &["fdb-show", "blue"]);
        assert_eq!(code, 0, "{err}");
        let line = fdb
            .lines()
            .find(|l| l.contains(MACS[1 - h]))
            .unwrap_or_else(|| panic!("hv{}: no entry for the other VM:\n{fdb}", h + 1));
        assert!(
            line.contains("lookup") && line.contains(&format!("192.0.2.{}", 2 - h)),
            "hv{}: {line}",
            h + 1
        );
        assert!(event(&p.xvsd[h], "upcalls") >= 1);
        eprintln!("hv{}: {line}", h + 1);
    }
    let (_, stats, _) = p.xvsd[1].ctl(&xvsctl, &["stats", "p2"]);
    eprintln!("{stats}");
    assert!(
        stats.contains("lookup_miss="),
        "hv2 dropped vm2's first reply: {stats}"
    );
    for d in p.xvsd {
        let (status, log) = d.stop();
        assert!(status.success() && log.contains("stopped cleanly"), "{log}");
    }
}

#[test]
fn a_vtep_tells_the_sender_that_a_mac_is_not_here() {
    if !require_root() {
        return;
    }
    let p = pair(
        "iv",
        "learning = false\nlookup = { provider = { kind = \"direct\", vtep = \"192.0.2.{other}\" } }",
        "\n[[fdb]]\nbridge = \"blue\"\nmac = \"{mac}\"\nport = \"p{n}\"\n",
    );
    // vm1 sends to a MAC no VM has: hv1's lookup puts it behind hv2, hv2
    // finds it is not local and tells hv1, which drops the entry.
    p.vms[0].run(
        "ip",
        &[
            "neigh",
            "replace",
            "10.1.0.77",
            "lladdr",
            "02:00:00:00:77:77",
            "dev",
            "eth0",
        ],
    );
    assert_eq!(p.vms[0].ping("10.1.0.77", 3), 0);
    let (told, dropped) = (p.xvsd[1].log(), p.xvsd[0].log());
    assert!(
        told.contains("told the VTEP its entry is stale") && told.contains("192.0.2.1"),
        "hv2:\n{told}"
    );
    assert!(
        dropped.contains("stale entry dropped on invalidation")
            && dropped.contains("02:00:00:00:77:77"),
        "hv1:\n{dropped}"
    );
    // Meanwhile the VMs still reach each other.
    p.vms[0].ping(IPS[1], 1);
    assert_eq!(p.vms[0].ping(IPS[1], 3), 3, "{}", logs(&p));
    for d in p.xvsd {
        let (status, log) = d.stop();
        assert!(status.success() && log.contains("stopped cleanly"), "{log}");
    }
}

#[test]
fn held_frames_wait_for_the_answer_and_nothing_is_lost() {
    if !require_root() {
        return;
    }
    let p = pair(
        "hd",
        "learning = false\nlookup = { provider = { kind = \"direct\", vtep = \"192.0.2.{other}\" }, miss = \"hold\", hold_ms = 200 }",
        "\n[[fdb]]\nbridge = \"blue\"\nmac = \"{mac}\"\nport = \"p{n}\"\n",
    );
    // Resolve the underlay first, so no loss comes from there.
    for h in 0..2 {
        p.hvs[h].run(
            "ping",
            &["-c", "1", "-W", "2", &format!("192.0.2.{}", 2 - h)],
        );
    }
    // vm2's ARP reply and vm1's first echo miss: held until the lookup's
    // snapshot is out, then sent. Not one ping is lost.
    assert_eq!(p.vms[0].ping(IPS[1], 5), 5, "{}", logs(&p));
    let held: u64 = p.xvsd.iter().map(|d| event(d, "held")).sum();
    let expired: u64 = p.xvsd.iter().map(|d| event(d, "hold_expired")).sum();
    eprintln!("held {held}, expired {expired}");
    assert!(held >= 2, "{}", logs(&p));
    assert_eq!(expired, 0);
    for d in p.xvsd {
        let (status, log) = d.stop();
        assert!(status.success() && log.contains("stopped cleanly"), "{log}");
    }
}
