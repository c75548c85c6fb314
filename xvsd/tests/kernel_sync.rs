//! Routes and neighbors read from a real kernel (in a network namespace of
//! the test's own), followed through notifications, and turned into tunnel
//! templates: a next hop that changes its MAC changes the template without
//! a restart. Needs root and iproute2 (`xvs_tests::require`: fails without them
//! under XVS_REQUIRE_ALL=1, skips loudly by hand).
//!
//! The test re-runs its own binary inside the namespace (`ip netns exec`),
//! so no unsafe `setns` is needed; a guard deletes the namespace even when
//! the test fails.

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use xvs_config::{BridgeConfig, Config, PortConfig, TunnelConfig, TunnelKind, UplinkConfig};
use xvs_dataplane::control::kernel::{KernelEvent, KernelState};
use xvs_dataplane::control::Control;
use xvs_tests::{ip, require_root, require_tool, Netns};
use xvs_types::MacAddr;
use xvsd::netlink::{dump, Monitor};

const INNER: &str = "XVS_KERNEL_SYNC_INNER";

/// Runs `test` of this binary inside namespace `ns`; panics if it fails.
fn run_inside(ns: &str, test: &str) {
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .output()
        .expect("re-run inside the namespace");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "inside {ns}:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the inner test did not run:\n{text}"
    );
}

fn setup(ns: &str) {
    for args in [
        vec!["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
        vec!["addr", "add", "10.9.0.1/24", "dev", "v0"],
        vec!["link", "set", "v0", "up"],
        vec!["link", "set", "v1", "up"],
        vec![
            "-6",
            "addr",
            "add",
            "2001:db8:9::1/64",
            "dev",
            "v0",
            "nodad",
        ],
        vec![
            "route",
            "add",
            "10.20.0.0/16",
            "via",
            "10.9.0.2",
            "metric",
            "7",
        ],
        vec![
            "-6",
            "route",
            "add",
            "2001:db8:20::/48",
            "via",
            "2001:db8:9::2",
        ],
        vec![
            "neigh",
            "replace",
            "10.9.0.2",
            "lladdr",
            "02:00:00:00:00:22",
            "dev",
            "v0",
            "nud",
            "permanent",
        ],
        vec![
            "-6",
            "neigh",
            "replace",
            "2001:db8:9::2",
            "lladdr",
            "02:00:00:00:00:23",
            "dev",
            "v0",
            "nud",
            "permanent",
        ],
    ] {
        let mut a = vec!["-n", ns];
        a.extend(args);
        ip(&a);
    }
}

#[test]
fn kernel_routes_and_neighbors_drive_templates() {
    if std::env::var_os(INNER).is_some() {
        return inner();
    }
    if !require_root() || !require_tool("ip") {
        return;
    }
    let ns = Netns::new("ksync");
    setup(&ns.name);
    run_inside(&ns.name, "kernel_routes_and_neighbors_drive_templates");
}

fn addr(s: &str) -> IpAddr {
    s.parse().expect("literal address")
}

/// Polls the monitor until `want` is seen or a second passes.
fn wait_for(m: &mut Monitor, want: impl Fn(&KernelEvent) -> bool) -> Vec<KernelEvent> {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        seen.extend(m.poll().expect("poll"));
        if seen.iter().any(&want) {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("event not seen in 1 s; got {seen:?}");
}

fn inner() {
    let mut mon = Monitor::new().expect("monitor");
    let state = dump().expect("dump");
    let r4 = state
        .routes
        .iter()
        .find(|r| r.prefix.to_string() == "10.20.0.0/16")
        .unwrap_or_else(|| panic!("10.20.0.0/16 in {:?}", state.routes));
    assert_eq!(r4.gateway, Some(addr("10.9.0.2")));
    assert_eq!(r4.dev, "v0");
    assert_eq!(r4.metric, 7);
    assert!(state
        .routes
        .iter()
        .any(|r| r.prefix.to_string() == "10.9.0.0/24" && r.gateway.is_none()));
    assert!(state
        .routes
        .iter()
        .any(|r| r.prefix.to_string() == "2001:db8:20::/48"
            && r.gateway == Some(addr("2001:db8:9::2"))));
    let n = |ip: &str| {
        state
            .neighbors
            .iter()
            .find(|n| n.ip == addr(ip))
            .map(|n| n.mac)
    };
    assert_eq!(n("10.9.0.2"), Some(MacAddr([2, 0, 0, 0, 0, 0x22])));
    assert_eq!(n("2001:db8:9::2"), Some(MacAddr([2, 0, 0, 0, 0, 0x23])));

    // A tunnel towards 10.20.1.1 resolves through the kernel's route and
    // neighbor: its template carries the gateway's MAC.
    let mut ctl = control_towards(&state, "10.20.1.1");
    let dst_mac = |ctl: &Control| {
        let snap = ctl.snapshot();
        let t = snap.tunnels.ports()[0]
            .template(0)
            .map(|t| t.bytes()[..6].to_vec());
        t.ok()
    };
    assert_eq!(dst_mac(&ctl), Some(vec![2, 0, 0, 0, 0, 0x22]));

    // The gateway moves to a new MAC: the kernel says so, the template
    // follows, no restart.
    ip(&[
        "neigh",
        "replace",
        "10.9.0.2",
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        "v0",
        "nud",
        "permanent",
    ]);
    let evs = wait_for(
        &mut mon,
        |e| matches!(e, KernelEvent::NeighUpdated(n) if n.ip == addr("10.9.0.2") && n.mac == MacAddr([2, 0, 0, 0, 0, 0x99])),
    );
    ctl.apply_kernel_events(&evs, 2);
    assert_eq!(dst_mac(&ctl), Some(vec![2, 0, 0, 0, 0, 0x99]));

    // Route changes are followed too.
    ip(&["route", "add", "10.30.0.0/16", "via", "10.9.0.2"]);
    let evs = wait_for(
        &mut mon,
        |e| matches!(e, KernelEvent::RouteAdded(r) if r.prefix.to_string() == "10.30.0.0/16"),
    );
    ctl.apply_kernel_events(&evs, 3);
    assert!(ctl.underlay.routes.lookup(addr("10.30.1.1")).is_some());
    ip(&["route", "del", "10.20.0.0/16"]);
    let evs = wait_for(
        &mut mon,
        |e| matches!(e, KernelEvent::RouteRemoved { prefix, .. } if prefix.to_string() == "10.20.0.0/16"),
    );
    ctl.apply_kernel_events(&evs, 4);
    // No route to the remote any more: the template is gone, frames to it
    // are dropped as no_route rather than sent to a stale next hop.
    assert_eq!(dst_mac(&ctl), None);
}

#[test]
fn an_unresolved_next_hop_is_resolved_through_the_kernel() {
    if std::env::var_os(INNER).is_some() {
        return inner_resolve();
    }
    if !require_root() || !require_tool("ip") {
        return;
    }
    let a = Netns::new("kres-a");
    let b = Netns::new("kres-b");
    ip(&[
        "-n", &a.name, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", &b.name,
    ]);
    ip(&[
        "-n",
        &b.name,
        "link",
        "set",
        "v1",
        "address",
        "02:00:00:00:00:b2",
    ]);
    ip(&["-n", &a.name, "addr", "add", "10.9.0.1/24", "dev", "v0"]);
    ip(&["-n", &b.name, "addr", "add", "10.9.0.2/24", "dev", "v1"]);
    ip(&["-n", &a.name, "link", "set", "v0", "up"]);
    ip(&["-n", &b.name, "link", "set", "v1", "up"]);
    run_inside(
        &a.name,
        "an_unresolved_next_hop_is_resolved_through_the_kernel",
    );
}

/// A control plane fed `state` from the kernel, with bridge br0 holding
/// vm1 and a VXLAN tunnel (VNI 5) from 10.9.0.1 on v0 towards `remote`.
fn control_towards(state: &KernelState, remote: &str) -> Control {
    let mut ctl = Control::new();
    ctl.underlay.uplink_mac = Some(MacAddr([2, 0, 0, 0, 0, 1]));
    ctl.load_kernel(state, 1);
    let mut cfg = Config {
        bridges: vec![BridgeConfig::new("br0").into()],
        uplink: Some(UplinkConfig {
            iface: "v0".into(),
            number: None,
            mac: None,
            local_ips: vec![addr("10.9.0.1")],
            mtu: 1500,
        }),
        ports: vec![PortConfig::new("vm1", "br0").into()],
        tunnels: vec![
            TunnelConfig::new("vx1", "br0", TunnelKind::Vxlan, 5, vec![addr(remote)]).into(),
        ],
        ..Default::default()
    };
    cfg.assign_port_numbers();
    ctl.apply(cfg).expect("valid config");
    ctl
}

fn inner_resolve() {
    let mut mon = Monitor::new().expect("monitor");
    let state = dump().expect("dump");
    let mut ctl = control_towards(&state, "10.9.0.2");
    assert!(
        ctl.snapshot().tunnels.ports()[0].template(0).is_err(),
        "no MAC yet"
    );
    let due = ctl.due_resolutions(1);
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].0, addr("10.9.0.2"));
    // Throttled: asking again at once sends nothing.
    assert!(ctl.due_resolutions(2).is_empty());
    xvsd::netlink::resolve(due[0].0, due[0].1).expect("resolve");
    let evs = wait_for(
        &mut mon,
        |e| matches!(e, KernelEvent::NeighUpdated(n) if n.ip == addr("10.9.0.2")),
    );
    ctl.apply_kernel_events(&evs, 3);
    let snap = ctl.snapshot();
    let t = snap.tunnels.ports()[0].template(0).expect("resolved");
    assert_eq!(&t.bytes()[..6], &[2, 0, 0, 0, 0, 0xb2]);
}
