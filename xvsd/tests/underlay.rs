//! Underlay behaviour of xvsd with more than two hypervisors or a routed
//! underlay: head-end replication of a broadcast to every remote VTEP,
//! exactly once each; and a tunnel whose next hop (the underlay gateway)
//! changes its MAC in the middle of a ping, which goes on after at most a
//! few losses, without a restart.
//!
//! Needs root (`xvs_tests::require`: fails without it
//! under XVS_REQUIRE_ALL=1, skips loudly by hand). Namespaces and daemons
//! go away on drop, panics included; every wait is bounded.

use std::path::Path;
use std::time::Duration;

use xvs_tests::{require_root, veth, Netns, Xvsd};

/// A VM namespace `tag` with `eth0` (IP `ip`/24, MTU 1400, no IPv6) whose
/// peer `port` is in `hv`.
fn vm(tag: &str, hv: &Netns, port: &str, n: u8, ip: &str) -> Netns {
    let vm = Netns::new(tag);
    vm.no_ipv6_on_new_interfaces();
    let mac = format!("02:00:00:0{n}:0a:01");
    let port_mac = format!("02:00:00:0{n}:0a:02");
    veth(&vm, "eth0", &mac, hv, port, &port_mac);
    vm.ip(&["link", "set", "eth0", "mtu", "1400"]);
    vm.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
    vm
}

fn config(uplink: &str, local: &str, port: &str, remotes: &[&str]) -> String {
    let remotes: Vec<String> = remotes.iter().map(|r| format!("{r:?}")).collect();
    format!(
        r#"
[uplink]
iface = "{uplink}"
local_ips = ["{local}"]

[[bridges]]
name = "blue"

[[ports]]
name = "{port}"
bridge = "blue"

[[tunnels]]
name = "vx"
bridge = "blue"
kind = "vxlan"
vni = 100
remotes = [{}]
"#,
        remotes.join(", ")
    )
}

fn xvsd(hv: &Netns, config: &str) -> Xvsd {
    Xvsd::start(Path::new(env!("CARGO_BIN_EXE_xvsd")), hv, config, &[])
}

#[test]
fn a_broadcast_reaches_every_remote_vtep_exactly_once() {
    if !require_root() {
        return;
    }
    // Three hypervisors on one underlay segment (a Linux bridge).
    let net = Netns::new("flnet");
    net.ip(&["link", "add", "br0", "type", "bridge"]);
    net.ip(&["link", "set", "br0", "up"]);
    let hvs: Vec<Netns> = (1..=3).map(|n| Netns::new(&format!("flh{n}"))).collect();
    let vteps = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];
    let mut vms = Vec::new();
    let mut daemons = Vec::new();
    for (i, hv) in hvs.iter().enumerate() {
        let n = i as u8 + 1;
        let (u, b) = (format!("u{n}"), format!("b{n}"));
        veth(
            hv,
            &u,
            &format!("02:00:00:00:0{n}:01"),
            &net,
            &b,
            &format!("02:00:00:00:0{n}:02"),
        );
        net.ip(&["link", "set", &b, "master", "br0"]);
        hv.ip(&["addr", "add", &format!("{}/24", vteps[i]), "dev", &u]);
        hv.no_ipv6_on_new_interfaces();
        let port = format!("p{n}");
        vms.push(vm(&format!("flv{n}"), hv, &port, n, &format!("10.1.0.{n}")));
        let others: Vec<&str> = vteps.iter().copied().filter(|v| *v != vteps[i]).collect();
        daemons.push(xvsd(hv, &config(&u, vteps[i], &port, &others)));
    }
    let logs = || {
        daemons
            .iter()
            .map(Xvsd::log)
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    // Unicast first, so every next hop is resolved before counting.
    for (i, v) in ["10.1.0.2", "10.1.0.3"].iter().enumerate() {
        vms[0].ping(v, 1);
        assert_eq!(vms[0].ping(v, 2), 2, "to vm{}\n{}", i + 2, logs());
    }
    std::thread::sleep(Duration::from_millis(200));
    let before: Vec<u64> = vms.iter().map(|v| v.rx_packets("eth0")).collect();
    // Three ARP requests for an address nobody has: broadcasts, and no
    // answer comes back to count.
    vms[0].exec("arping", &["-c", "3", "-w", "3", "-I", "eth0", "10.1.0.99"]);
    std::thread::sleep(Duration::from_millis(300));
    let after: Vec<u64> = vms.iter().map(|v| v.rx_packets("eth0")).collect();
    let got: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(
        got,
        vec![0, 3, 3],
        "broadcasts received by vm1 (the sender), vm2, vm3\n{}",
        logs()
    );
}

#[test]
fn the_tunnel_follows_a_next_hop_that_changes_its_mac_during_a_ping() {
    if !require_root() {
        return;
    }
    // hv1 192.0.2.1 ── gw (192.0.2.254 | 198.51.100.254) ── hv2 198.51.100.2
    let gw = Netns::new("nhgw");
    let hv1 = Netns::new("nhh1");
    let hv2 = Netns::new("nhh2");
    veth(
        &hv1,
        "u1",
        "02:00:00:00:01:01",
        &gw,
        "g1",
        "02:00:00:00:fe:01",
    );
    veth(
        &hv2,
        "u2",
        "02:00:00:00:02:01",
        &gw,
        "g2",
        "02:00:00:00:fe:02",
    );
    gw.run("sh", &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    // A router taking over an address announces it (gratuitous ARP), as
    // VRRP and friends do; that is what moves the hypervisor's entry.
    gw.run(
        "sh",
        &["-c", "echo 1 > /proc/sys/net/ipv4/conf/g1/arp_notify"],
    );
    gw.ip(&["addr", "add", "192.0.2.254/24", "dev", "g1"]);
    gw.ip(&["addr", "add", "198.51.100.254/24", "dev", "g2"]);
    hv1.ip(&["addr", "add", "192.0.2.1/24", "dev", "u1"]);
    hv2.ip(&["addr", "add", "198.51.100.2/24", "dev", "u2"]);
    hv1.ip(&["route", "add", "198.51.100.0/24", "via", "192.0.2.254"]);
    hv2.ip(&["route", "add", "192.0.2.0/24", "via", "198.51.100.254"]);
    for hv in [&hv1, &hv2] {
        hv.no_ipv6_on_new_interfaces();
    }
    let vm1 = vm("nhv1", &hv1, "p1", 1, "10.1.0.1");
    let _vm2 = vm("nhv2", &hv2, "p2", 2, "10.1.0.2");
    let d1 = xvsd(&hv1, &config("u1", "192.0.2.1", "p1", &["198.51.100.2"]));
    let d2 = xvsd(&hv2, &config("u2", "198.51.100.2", "p2", &["192.0.2.1"]));
    let logs = || format!("{}\n---\n{}", d1.log(), d2.log());
    vm1.ping("10.1.0.2", 1);
    assert_eq!(vm1.ping("10.1.0.2", 3), 3, "{}", logs());

    let answered = std::thread::scope(|s| {
        let ping = s.spawn(|| vm1.ping("10.1.0.2", 30));
        std::thread::sleep(Duration::from_millis(1500));
        gw.ip(&["link", "set", "g1", "address", "02:00:00:00:ee:01"]);
        ping.join().expect("ping thread")
    });
    let neigh = hv1.run("ip", &["neigh", "show", "192.0.2.254"]);
    assert!(neigh.contains("02:00:00:00:ee:01"), "kernel entry: {neigh}");
    eprintln!("{answered}/30 answered across the MAC change");
    assert!(answered >= 26, "{answered}/30\n{}", logs());
}
