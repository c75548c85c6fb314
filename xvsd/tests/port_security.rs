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
//! And a port's MAC limit (`xvsctl set-port --max-macs`): a VM with four
//! macvlan interfaces (four MACs) behind a port limited to two; the first
//! two are learned, the others are refused (counted in `xvsctl stats`) and
//! still reach the other VM both ways, by flooding.
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
        // b is still reached (a lost echo on a loaded machine is not the
        // point: where the others went is, and a got none of them).
        let answered = c.ping_every(IPS[1], 5, "0.2", 5);
        assert!(answered >= 4, "{step}: c -> b {answered}/5\n{}", xvsd.log());
        assert_eq!(in_echos(a), echos, "{step}: a received b's echo requests");
        let neigh = c.run("ip", &["neigh", "show", IPS[1]]);
        assert!(neigh.contains(MACS[1]), "{step}: c resolved b to {neigh}");
    }
    let (status, log) = xvsd.stop();
    assert!(status.success(), "{log}");
}

/// The MACs the FDB of bridge `blue` has behind `port`, sorted.
fn learned_on(d: &Xvsd, port: &str) -> Vec<String> {
    let out = d.ok(&["--format", "json", "fdb-show", "blue"]);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("fdb-show JSON");
    let mut macs: Vec<String> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["port"] == port)
        .filter_map(|r| r["mac"].as_str().map(str::to_owned))
        .collect();
    macs.sort();
    macs
}

/// Adds macvlan interface `m{i}` (MAC 02:00:00:06:00:0{i}, 10.3.0.1{i}/24)
/// on `ns`'s eth0; returns its name and MAC.
fn macvlan(ns: &Netns, i: usize) -> (String, String) {
    let (name, mac) = (format!("m{i}"), format!("02:00:00:06:00:0{i}"));
    #[rustfmt::skip]
    ns.ip(&["link", "add", &name, "link", "eth0", "address", &mac, "type", "macvlan", "mode", "bridge"]);
    ns.ip(&["addr", "add", &format!("10.3.0.1{i}/24"), "dev", &name]);
    ns.ip(&["link", "set", &name, "up"]);
    (name, mac)
}

/// Pings `dst` 3 times from interface `iface` of `ns`: all answered?
fn pings_from(ns: &Netns, iface: &str, dst: &str) -> bool {
    let out = ns.exec(
        "ping",
        &["-q", "-c", "3", "-i", "0.2", "-W", "2", "-I", iface, dst],
    );
    String::from_utf8_lossy(&out.stdout).contains(" 3 received")
}

#[test]
fn a_port_learns_at_most_max_macs_and_the_other_macs_still_get_through() {
    if !require_root() {
        return;
    }
    const LIMIT: usize = 2;
    let hv = Netns::new("pmh");
    let m = Netns::new("pmm");
    let w = Netns::new("pmw");
    for ns in [&hv, &m, &w] {
        ns.no_ipv6_on_new_interfaces();
    }
    veth(
        &m,
        "eth0",
        "02:00:00:06:00:00",
        &hv,
        "pm",
        "02:00:00:06:01:00",
    );
    veth(
        &w,
        "eth0",
        "02:00:00:06:00:ff",
        &hv,
        "pw",
        "02:00:00:06:01:ff",
    );
    w.ip(&["addr", "add", "10.3.0.2/24", "dev", "eth0"]);
    // Four interfaces on one subnet in m: each answers ARP only for its
    // own address and takes replies on whichever it is (no reverse-path
    // check), so each talks with its own MAC only.
    for (k, v) in [
        ("all.arp_ignore", "1"),
        ("all.arp_announce", "2"),
        ("all.rp_filter", "0"),
        ("default.rp_filter", "0"),
    ] {
        m.run("sysctl", &["-qw", &format!("net.ipv4.conf.{k}={v}")]);
    }
    let vms: Vec<(String, String)> = (1..=LIMIT + 2).map(|i| macvlan(&m, i)).collect();
    let config = "[[bridges]]\nname = \"blue\"\n\n[[ports]]\nname = \"pm\"\nbridge = \"blue\"\n\n\
                  [[ports]]\nname = \"pw\"\nbridge = \"blue\"\n";
    let d = Xvsd::start(Path::new(env!("CARGO_BIN_EXE_xvsd")), &hv, config, &[]);
    d.ok(&["set-port", "pm", "--max-macs", &LIMIT.to_string()]);
    let show: serde_json::Value =
        serde_json::from_str(&d.ok(&["--format", "json", "show"])).expect("show JSON");
    let pm = show["ports"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "pm"))
        .unwrap_or_else(|| panic!("no pm in {show}"));
    assert_eq!(pm["max_macs"], LIMIT, "{pm}");

    // One VM interface after the other, each a full exchange with w, so
    // the first two MACs are the ones that fit.
    for (name, mac) in &vms {
        assert!(
            pings_from(&m, name, "10.3.0.2"),
            "{name} ({mac}) -> w\n{}",
            d.log()
        );
    }
    let mut want: Vec<String> = vms[..LIMIT].iter().map(|(_, mac)| mac.clone()).collect();
    want.sort();
    assert_eq!(learned_on(&d, "pm"), want, "{}", d.log());
    assert_eq!(learned_on(&d, "pw"), ["02:00:00:06:00:ff"]);

    // Refusals counted, in JSON and in the text table.
    let out = d.ok(&["--format", "json", "stats", "pm"]);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("stats JSON");
    let refused = rows[0]["learn_refused"]["learn_refused_port_limit"]
        .as_u64()
        .unwrap_or(0);
    assert!(refused >= 2, "one refusal per extra MAC at least: {out}");
    assert!(
        rows[0]["drops"].as_object().is_none_or(|d| d.is_empty()),
        "{out}"
    );
    let text = d.ok(&["stats", "pm"]);
    assert!(
        text.contains("pm not learned: learn_refused_port_limit="),
        "{text}"
    );
    // w reaches the refused MACs too (its unicast to them floods).
    for (name, mac) in &vms[LIMIT..] {
        assert!(
            pings_from(&w, "eth0", &format!("10.3.0.1{}", &name[1..])),
            "w -> {name} ({mac})\n{}",
            d.log()
        );
    }
    assert_eq!(learned_on(&d, "pm").len(), LIMIT);

    // A higher limit in place: a MAC refused a moment ago is learned as
    // soon as it speaks again (the workers forget which MACs they reported
    // when a limit changes, instead of waiting out the learn refresh
    // interval, an eighth of the aging time).
    d.ok(&["set-port", "pm", "--max-macs", &(LIMIT + 1).to_string()]);
    let (name, mac) = vms[LIMIT].clone();
    assert!(
        pings_from(&m, &name, "10.3.0.2"),
        "{name} -> w\n{}",
        d.log()
    );
    let learned = learned_on(&d, "pm");
    assert!(
        learned.contains(&mac) && learned.len() == LIMIT + 1,
        "{learned:?}\n{}",
        d.log()
    );
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}
