//! Port security end to end: three VMs on one xvsd bridge, a and b with
//! port security (their own MAC and IP each), c without. VM a takes b's
//! MAC and IP, then only b's IP, and talks as b; c, whose ARP entry for b
//! is flushed each time, still reaches b, and a receives none of the
//! echo requests meant for b (its own kernel's ICMP counter says so).
//!
//! ```text
//! a 10.2.0.1 ─ pa ┐
//! b 10.2.0.2 ─ pb ┼ hv: xvsd, bridge blue
//! c 10.2.0.3 ─ pc ┘
//! ```
//!
//! Needs root (`xvs_tests::require_root`); namespaces and the daemon go
//! away on drop, panics included; every wait is bounded.

use std::path::Path;

use xvs_tests::{require_root, veth, workspace_bin, Netns, Xvsd};

const NAMES: [&str; 3] = ["a", "b", "c"];
const IPS: [&str; 3] = ["10.2.0.1", "10.2.0.2", "10.2.0.3"];
const MACS: [&str; 3] = [
    "02:00:00:05:00:01",
    "02:00:00:05:00:02",
    "02:00:00:05:00:03",
];

/// Echo requests the namespace's kernel received (`Icmp: InEchos`).
fn in_echos(ns: &Netns) -> u64 {
    let snmp = ns.run("cat", &["/proc/net/snmp"]);
    let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (
        icmp.next().expect("Icmp header"),
        icmp.next().expect("Icmp values"),
    );
    let i = names
        .split_whitespace()
        .position(|n| n == "InEchos")
        .expect("InEchos");
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// One drop counter of a port, from `xvsctl stats`.
fn drops(d: &Xvsd, port: &str, reason: &str) -> u64 {
    let (code, out, err) = d.ctl(
        &workspace_bin("xvsctl"),
        &["--format", "json", "stats", port],
    );
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("stats JSON");
    rows[0]["drops"][reason].as_u64().unwrap_or(0)
}

/// Gives vm `a` the MAC `mac` and the one address `ip`.
fn readdress(a: &Netns, mac: &str, ip: &str) {
    a.ip(&["link", "set", "eth0", "down"]);
    a.ip(&["link", "set", "eth0", "address", mac]);
    a.ip(&["addr", "flush", "dev", "eth0"]);
    a.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
    a.ip(&["link", "set", "eth0", "up"]);
}

#[test]
fn a_vm_claiming_anothers_mac_or_ip_gets_none_of_its_traffic() {
    if !require_root() {
        return;
    }
    let hv = Netns::new("psh");
    hv.no_ipv6_on_new_interfaces();
    let vms = [0, 1, 2].map(|i| {
        let vm = Netns::new(&format!("psv{}", NAMES[i]));
        vm.no_ipv6_on_new_interfaces();
        veth(
            &vm,
            "eth0",
            MACS[i],
            &hv,
            &format!("p{}", NAMES[i]),
            &format!("02:00:00:05:01:0{}", i + 1),
        );
        vm.ip(&["addr", "add", &format!("{}/24", IPS[i]), "dev", "eth0"]);
        vm.no_tx_offload("eth0");
        vm
    });
    let mut config = String::from("[[bridges]]\nname = \"blue\"\n");
    for i in 0..3 {
        config += &format!("\n[[ports]]\nname = \"p{}\"\nbridge = \"blue\"\n", NAMES[i]);
        if i < 2 {
            config += &format!(
                "allowed_macs = [\"{}\"]\nallowed_ips = [\"{}\"]\n",
                MACS[i], IPS[i]
            );
        }
    }
    let xvsd = Xvsd::start(Path::new(env!("CARGO_BIN_EXE_xvsd")), &hv, &config, &[]);
    let [a, _, c] = &vms;

    // Before: everyone reaches b.
    assert_eq!(c.ping(IPS[1], 3), 3, "c -> b\n{}", xvsd.log());
    assert_eq!(a.ping(IPS[1], 3), 3, "a -> b\n{}", xvsd.log());

    // a becomes b (MAC and IP), then keeps its MAC and claims b's IP.
    for (step, mac, reason) in [
        ("b's MAC and IP", MACS[1], "spoofed_mac"),
        ("b's IP", MACS[0], "spoofed_ip"),
    ] {
        readdress(a, mac, IPS[1]);
        let dropped = drops(&xvsd, "pa", reason);
        // Talking as b: ARP from b's address, echo requests from it.
        assert_eq!(a.ping(IPS[2], 3), 0, "{step}: a got through to c");
        assert!(
            drops(&xvsd, "pa", reason) > dropped,
            "{step}: no {reason} counted on pa\n{}",
            xvsd.log()
        );
        c.ip(&["neigh", "flush", "dev", "eth0"]);
        let echos = in_echos(a);
        assert_eq!(c.ping(IPS[1], 5), 5, "{step}: c -> b\n{}", xvsd.log());
        assert_eq!(in_echos(a), echos, "{step}: a received b's echo requests");
        let neigh = c.run("ip", &["neigh", "show", IPS[1]]);
        assert!(neigh.contains(MACS[1]), "{step}: c resolved b to {neigh}");
    }
    let (status, log) = xvsd.stop();
    assert!(status.success(), "{log}");
}
