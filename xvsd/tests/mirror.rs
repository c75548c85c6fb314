//! Port mirrors against a running xvsd: vm1's frames copied both ways to
//! a remote VTEP (the kernel's vxlan) through a tunnel port of their own
//! VNI, where tshark sees exactly the echoes vm1 sent and got, and copied as they enter to
//! a local port, where tshark sees only the requests; the counters say
//! as much; what the output port sends is dropped; the mirrors outlive a
//! restart from the state file.

use std::path::Path;
use std::time::{Duration, Instant};

use xvs_tests::require::{require_root, require_tool};
use xvs_tests::{tshark, veth, Netns, Xvsd};

const CONFIG: &str = r#"
[[bridges]]
name = "br0"

[[bridges]]
name = "mon"

[[ports]]
name = "p1"
bridge = "br0"

[[ports]]
name = "p2"
bridge = "br0"

[[ports]]
name = "span"
bridge = "br0"

[uplink]
iface = "u0"
local_ips = ["192.0.2.1"]

[[tunnels]]
name = "vxm"
bridge = "mon"
kind = "vxlan"
vni = 99
remotes = ["192.0.2.2"]
"#;

/// `mirror-list` rows once every mirror's count reached `want` (workers
/// publish their counters every few hundred milliseconds), bounded.
fn mirrored(d: &Xvsd, want: &[u64]) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows: serde_json::Value =
            serde_json::from_str(&d.ok(&["--format", "json", "mirror-list"])).expect("JSON rows");
        let got: Vec<u64> = rows
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["packets"].as_u64().unwrap_or(0))
            .collect();
        if got.iter().zip(want).all(|(g, w)| g >= w) || Instant::now() > deadline {
            assert!(
                got.iter().zip(want).all(|(g, w)| g >= w),
                "mirror counts {got:?}, want at least {want:?}"
            );
            return rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn mirrors_copy_to_a_remote_vtep_and_a_local_port_and_outlive_a_restart() {
    if !require_root() || !require_tool("tshark") {
        return;
    }
    let hv = Netns::new("mrhv");
    let (vm1, vm2, spn, peer) = (
        Netns::new("mrv1"),
        Netns::new("mrv2"),
        Netns::new("mrsp"),
        Netns::new("mrpe"),
    );
    for ns in [&vm1, &vm2, &spn] {
        // Only the test's own frames: no router solicitations or MLD.
        ns.no_ipv6_on_new_interfaces();
    }
    veth(
        &vm1,
        "vm0",
        "02:00:00:00:0d:01",
        &hv,
        "p1",
        "02:00:00:00:0d:11",
    );
    veth(
        &vm2,
        "vm0",
        "02:00:00:00:0d:02",
        &hv,
        "p2",
        "02:00:00:00:0d:12",
    );
    veth(
        &spn,
        "an0",
        "02:00:00:00:0d:03",
        &hv,
        "span",
        "02:00:00:00:0d:13",
    );
    xvs_tests::underlay(&hv, &peer);
    // The analyzer's VTEP: the kernel's vxlan on VNI 99 takes the copies
    // (without it, each would earn an ICMP port unreachable).
    #[rustfmt::skip]
    peer.ip(&[
        "link", "add", "vxm", "type", "vxlan", "id", "99", "local", "192.0.2.2",
        "remote", "192.0.2.1", "dstport", "4789", "dev", "pu0",
    ]);
    peer.ip(&["link", "set", "vxm", "up"]);
    vm1.ip(&["addr", "add", "10.0.0.1/24", "dev", "vm0"]);
    vm2.ip(&["addr", "add", "10.0.0.2/24", "dev", "vm0"]);
    let mut d = Xvsd::start(Path::new(env!("CARGO_BIN_EXE_xvsd")), &hv, CONFIG, &[]);
    // Neighbours resolved before the mirrors start: only echoes follow.
    assert_eq!(vm1.ping("10.0.0.2", 1), 1, "{}", d.log());

    d.ok(&["mirror-add", "rspan", "--src", "p1", "--to", "vxm"]);
    d.ok(&[
        "mirror-add",
        "span",
        "--src",
        "p1",
        "--dir",
        "in",
        "--to",
        "span",
    ]);
    d.rejected(
        &["mirror-add", "bad", "--src", "span", "--to", "p2"],
        "is a mirror's source",
    );

    // At the remote VTEP: VNI 99, each echo request (in) and reply (out)
    // of vm1, in order, with good outer checksums.
    let fields = ["vxlan.vni", "icmp.type", "icmp.seq", "ip.checksum.status"];
    let (lines, (remote_view, answered)) = tshark(&peer, "pu0", "vxlan && icmp", &fields, || {
        tshark(&spn, "an0", "icmp", &["icmp.type", "icmp.seq"], || {
            vm1.ping("10.0.0.2", 4)
        })
    });
    assert_eq!(answered, 4);
    let want: Vec<String> = (1..=4)
        .flat_map(|seq| [format!("99|8|{seq}|1"), format!("99|0|{seq}|1")])
        .collect();
    assert_eq!(lines, want, "{}", d.log());
    let want_local: Vec<String> = (1..=4).map(|seq| format!("8|{seq}")).collect();
    assert_eq!(remote_view, want_local, "only what p1 received");

    let rows = mirrored(&d, &[8, 4]);
    assert_eq!(rows[0]["remote"], true);
    assert_eq!(rows[0]["dropped"], 0);
    assert!(d.ok(&["mirror-list"]).contains("vxm (tunnel)"));

    // What the output sends is dropped: an ARP request from it floods
    // nowhere.
    spn.ip(&["addr", "add", "10.0.0.9/24", "dev", "an0"]);
    assert_eq!(spn.ping("10.0.0.1", 1), 0);
    assert!(d.drops("mirror_output") >= 1, "{}", d.log());

    // From the state file, the mirrors are back and copy again.
    d.restart_from_state();
    assert!(d.ok(&["show"]).contains("mirror rspan: p1 both -> vxm"));
    // The new daemon resolves the analyzer VTEP's MAC on the first copy
    // (that one is dropped as neigh_unresolved, as any first packet is).
    vm1.ping("10.0.0.2", 1);
    let (lines, answered) = tshark(&peer, "pu0", "vxlan && icmp", &["icmp.seq"], || {
        vm1.ping("10.0.0.2", 2)
    });
    assert_eq!(answered, 2);
    assert_eq!(lines.len(), 4, "{lines:?}\n{}", d.log());
    d.ok(&["mirror-del", "rspan", "--", "mirror-del", "span"]);
    assert!(d.ok(&["mirror-list"]).lines().count() <= 1);
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}
