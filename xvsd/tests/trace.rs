//! `xvsctl trace` against a running xvsd: a frame built from a flow match
//! (or given in hex) goes through the workers' pipeline on the running
//! snapshot and the answer names each decision: the ACL rule, NORMAL or
//! the flow rule, the drop and its reason, and every frame that would
//! leave with its bytes, the VXLAN header it would be pushed in included.
//! Nothing is sent and no counter moves; bad input is refused saying why.
//!
//! Needs root.

use std::path::Path;

use std::time::Duration;

use serde_json::Value;
use xvs_ctl::client::Client;
use xvs_ctl::protocol::{Method, TraceParams};
use xvs_tests::kvxlan::{xvsd_config, Topology, VNI};
use xvs_tests::{require_root, Netns, Xvsd};

const SPEC: &str = "udp,dl_src=02:00:00:00:0a:01,dl_dst=02:00:00:00:0b:01,\
                    nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=1000,tp_dst=53";

/// UDP datagrams that reached `ns`, to a socket or to none (NoPorts): a
/// traced frame sent for real would be one.
fn udp_in(ns: &Netns) -> u64 {
    let snmp = ns.run("cat", &["/proc/net/snmp"]);
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter(|(n, _)| *n == "InDatagrams" || *n == "NoPorts")
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .sum()
}

#[test]
fn a_trace_names_each_decision_and_sends_nothing() {
    if !require_root() {
        return;
    }
    let Topology { vm, hv, peer } = Topology::new("tr");
    // The VM's IPv6 (router solicitations, MLD reports at the kernel's
    // own times) would be flooded through the tunnel and counted at the
    // peer as UDP: only the traced frame may be looked for there.
    vm.run(
        "sh",
        &["-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6"],
    );
    let d = Xvsd::start(
        Path::new(env!("CARGO_BIN_EXE_xvsd")),
        &hv,
        &xvsd_config("192.0.2.1", "192.0.2.2"),
        &[],
    );
    assert_eq!(vm.ping("10.0.0.2", 2), 2, "{}", d.log());
    let before = udp_in(&peer);

    // To the peer's MAC behind vx1: one frame out of the uplink, the
    // traced frame inside a VXLAN header with the tunnel's VNI.
    let t: Value = serde_json::from_str(&d.ok(&["--format", "json", "trace", "p0", SPEC])).unwrap();
    assert_eq!(t["bridge"], "br0");
    assert_eq!(t["normal"], true, "{t}");
    let outs = t["outputs"].as_array().expect("outputs");
    assert_eq!(outs.len(), 1, "{t}");
    assert_eq!(outs[0]["port"], "u0");
    let out = xvs_config::parse_hex(outs[0]["hex"].as_str().unwrap()).unwrap();
    assert_eq!(&out[12..14], &[0x08, 0x00], "IPv4 outside");
    assert_eq!(out[23], 17, "UDP");
    assert_eq!(&out[26..30], &[192, 0, 2, 1], "from our VTEP");
    assert_eq!(&out[30..34], &[192, 0, 2, 2], "to the peer's");
    assert_eq!(u16::from_be_bytes([out[36], out[37]]), 4789);
    assert_eq!(&out[46..49], &VNI.to_be_bytes()[1..], "VNI");
    assert_eq!(out.len(), t["frame_len"].as_u64().unwrap() as usize + 50);
    let text = d.ok(&["trace", "p0", SPEC]);
    assert!(
        text.contains("flow: NORMAL") && text.contains("output: u0"),
        "{text}"
    );

    // An ACL that drops it: named, with the drop's reason, nothing out.
    d.ok(&[
        "acl-add",
        "p0",
        "--dir",
        "in",
        "--prio",
        "10",
        "udp,tp_dst=53",
        "--action",
        "drop",
    ]);
    let text = d.ok(&["trace", "p0", SPEC]);
    assert!(
        text.contains("acl: p0 in priority=10") && text.contains("-> drop"),
        "{text}"
    );
    assert!(text.contains("dropped: firewall_in"), "{text}");
    assert!(!text.contains("output: u0"), "{text}");

    // The same frame in hex, from the uplink's side it would not be ours.
    let frame = t["outputs"][0]["hex"].as_str().unwrap().to_owned();
    let t: Value =
        serde_json::from_str(&d.ok(&["--format", "json", "trace", "u0", &frame])).unwrap();
    assert_eq!(t["port"], "u0");

    // Nothing reached the peer.
    assert_eq!(udp_in(&peer), before, "a trace sends nothing");

    // Refused, saying why.
    d.rejected(
        &["trace", "p0", "not a frame"],
        "neither hex nor a flow match",
    );
    d.rejected(&["trace", "nope", SPEC], "no port or uplink named \"nope\"");
    d.rejected(&["trace", "vx1", SPEC], "is a tunnel");
    // Straight to the socket, past xvsctl's own check: a frame that is not
    // hex (a multi-byte character where a digit pair would start) is
    // refused, and the daemon goes on.
    let mut c = Client::connect(&d.socket, Duration::from_secs(10)).expect("connect");
    let e = c
        .call(&Method::Trace(TraceParams {
            port: "p0".into(),
            frame: "aéb0".repeat(8),
        }))
        .expect_err("not hex");
    assert!(e.to_string().contains("invalid hex string"), "{e}");
    assert_eq!(vm.ping("10.0.0.2", 1), 1, "{}", d.log());
}
