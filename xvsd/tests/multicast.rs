//! VXLAN in multicast mode (RFC 7348 §4.2) end to end: three hypervisors
//! on one underlay segment, a Linux bridge that floods multicast; xvsd on
//! two of them with a tunnel whose remote is the group 239.1.1.1, the
//! kernel's own vxlan device (`group 239.1.1.1`) on the third as a peer no
//! one here wrote. Every VM pings every other; tshark on the underlay
//! bridge checks that broadcasts (the first ARP requests) went to the
//! group with the mapped MAC 01:00:5e:01:01:01, that the VTEPs announced
//! the group (IGMP), and that echo traffic, once addresses are learned,
//! goes unicast to the learned VTEP. hv1 also has a static FDB entry
//! naming hv3's VTEP, which no tunnel lists.
//!
//! ```text
//! vm1 10.1.0.1 ─ p1 ─ hv1: xvsd ═ u1 ═ n1 ┐
//! vm2 10.1.0.2 ─ p2 ─ hv2: xvsd ═ u2 ═ n2 ┼ [sw] (tshark)
//!           hv3: vx0 10.1.0.3 ═ u3 ═ n3 ┘   underlay 192.0.2.0/24
//! ```
//!
//! Needs root (`xvs_tests::require`: fails without it
//! under XVS_REQUIRE_ALL=1, skips loudly by hand). Namespaces and daemons
//! go away on drop, panics included; every wait is bounded.

use std::path::Path;

use xvs_tests::{require_root, tshark, veth, workspace_bin, Netns, Xvsd};

const GROUP: &str = "239.1.1.1";
const GROUP_MAC: &str = "01:00:5e:01:01:01";
const IPS: [&str; 3] = ["10.1.0.1", "10.1.0.2", "10.1.0.3"];
const MACS: [&str; 3] = [
    "02:00:00:01:0a:01",
    "02:00:00:02:0a:01",
    "02:00:00:03:0b:01",
];

struct Bed {
    /// Dropped before the namespaces they run in (fields drop in order).
    xvsd: Vec<Xvsd>,
    /// vm1 and vm2, behind the xvsds (hv3 is its own VM, see [`Bed::vm`]).
    vms: Vec<Netns>,
    hvs: Vec<Netns>,
    net: Netns,
}

fn config(n: usize) -> String {
    format!(
        r#"
[uplink]
iface = "u{n}"
local_ips = ["192.0.2.{n}"]

[[bridges]]
name = "blue"

[[ports]]
name = "p{n}"
bridge = "blue"

[[tunnels]]
name = "vx"
bridge = "blue"
kind = "vxlan"
vni = 42
remotes = ["{GROUP}"]
"#
    )
}

/// The namespaces, with no daemon yet (they start under the capture).
fn bed(tag: &str) -> Bed {
    let hvs: Vec<Netns> = (1..=3).map(|n| Netns::new(&format!("{tag}h{n}"))).collect();
    let net = Netns::new(&format!("{tag}n"));
    net.ip(&["link", "add", "sw", "type", "bridge"]);
    net.ip(&["link", "set", "sw", "up"]);
    for (h, hv) in hvs.iter().enumerate() {
        let n = h + 1;
        hv.no_ipv6_on_new_interfaces();
        veth(
            hv,
            &format!("u{n}"),
            &format!("02:00:00:00:0{n}:01"),
            &net,
            &format!("n{n}"),
            &format!("02:00:00:00:0{n}:09"),
        );
        net.ip(&["link", "set", &format!("n{n}"), "master", "sw"]);
        hv.ip(&[
            "addr",
            "add",
            &format!("192.0.2.{n}/24"),
            "dev",
            &format!("u{n}"),
        ]);
    }
    let vms: Vec<Netns> = (0..2)
        .map(|h| {
            let vm = Netns::new(&format!("{tag}v{}", h + 1));
            vm.no_ipv6_on_new_interfaces();
            veth(
                &vm,
                "eth0",
                MACS[h],
                &hvs[h],
                &format!("p{}", h + 1),
                &format!("02:00:00:0{}:00:02", h + 1),
            );
            vm.ip(&["link", "set", "eth0", "mtu", "1400"]);
            vm.ip(&["addr", "add", &format!("{}/24", IPS[h]), "dev", "eth0"]);
            vm
        })
        .collect();
    // The kernel peer: its VM is hv3 itself, behind vx0.
    #[rustfmt::skip]
    hvs[2].ip(&[
        "link", "add", "vx0", "address", MACS[2], "mtu", "1400", "type", "vxlan",
        "id", "42", "group", GROUP, "dev", "u3", "dstport", "4789",
    ]);
    hvs[2].ip(&["addr", "add", &format!("{}/24", IPS[2]), "dev", "vx0"]);
    Bed {
        xvsd: Vec::new(),
        vms,
        hvs,
        net,
    }
}

impl Bed {
    /// VM `i` (0-based): vm1, vm2, or hv3 behind its kernel vxlan.
    fn vm(&self, i: usize) -> &Netns {
        self.vms.get(i).unwrap_or(&self.hvs[2])
    }
}

fn logs(b: &Bed) -> String {
    b.xvsd
        .iter()
        .map(Xvsd::log)
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// tshark lines `eth.dst|ip.src|ip.dst|arp.opcode|icmp.type|igmp.maddr`.
struct Line {
    eth_dst: String,
    src: String,
    dst: String,
    arp: String,
    icmp: String,
    igmp: String,
}

fn parse(lines: &[String]) -> Vec<Line> {
    lines
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let g = |i: usize| f.get(i).copied().unwrap_or("").to_string();
            Line {
                eth_dst: g(0),
                src: g(1),
                dst: g(2),
                arp: g(3),
                icmp: g(4),
                igmp: g(5),
            }
        })
        .collect()
}

const FIELDS: [&str; 6] = [
    "eth.dst",
    "ip.src",
    "ip.dst",
    "arp.opcode",
    "icmp.type",
    "igmp.maddr",
];

#[test]
fn multicast_vxlan_floods_to_the_group_and_answers_unicast() {
    if !require_root() {
        return;
    }
    let mut b = bed("mc");
    let xvsctl = workspace_bin("xvsctl");
    let bin = Path::new(env!("CARGO_BIN_EXE_xvsd"));

    // Phase 1, captured from the start: the daemons join the group, the
    // kernel peer comes up, and the first pings resolve addresses (ARP
    // requests are broadcasts: they must travel via the group).
    let (lines, (daemons, first)) =
        tshark(&b.net, "sw", "igmp || udp.dstport == 4789", &FIELDS, || {
            let daemons: Vec<Xvsd> = (0..2)
                .map(|h| Xvsd::start(bin, &b.hvs[h], &config(h + 1), &[]))
                .collect();
            b.hvs[2].ip(&["link", "set", "vx0", "up"]);
            // hv1: the kernel peer's MAC is behind 192.0.2.3, which no
            // tunnel lists (a static entry with a dynamic remote).
            let (code, _, err) = daemons[0].ctl(
                &xvsctl,
                &["fdb-add", "blue", MACS[2], "vx", "--remote", "192.0.2.3"],
            );
            assert_eq!(code, 0, "fdb-add: {err}");
            // Each VM's first pings may wait for its ARP and for the
            // underlay next hop of a VTEP learned a moment before.
            let first = [(0, 1), (0, 2), (1, 2)].map(|(a, z)| b.vm(a).ping(IPS[z], 3));
            (daemons, first)
        });
    b.xvsd = daemons;
    eprintln!("first pings answered: {first:?}");
    let lines = parse(&lines);
    for n in 1..=2 {
        let src = format!("192.0.2.{n}");
        assert!(
            lines.iter().any(|l| l.src == src && l.igmp == GROUP),
            "hv{n} announced no membership of {GROUP}: {:?}\n{}",
            lines.iter().map(|l| (&l.src, &l.igmp)).collect::<Vec<_>>(),
            logs(&b)
        );
    }
    let requests: Vec<&Line> = lines.iter().filter(|l| l.arp == "1").collect();
    for n in 1..=2 {
        let src = format!("192.0.2.{n}");
        assert!(
            requests.iter().any(|l| l.src == src),
            "no ARP request from hv{n}'s VM crossed: {}",
            dump(&lines)
        );
    }
    for l in &requests {
        assert_eq!(
            (l.dst.as_str(), l.eth_dst.as_str()),
            (GROUP, GROUP_MAC),
            "a broadcast went elsewhere than the group: {}",
            dump(&lines)
        );
    }

    // Phase 2: everything is learned; every pair pings both ways and all
    // echo traffic goes unicast to the VTEP behind which its MAC lives.
    let pairs = [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)];
    let (lines, answered) = tshark(&b.net, "sw", "udp.dstport == 4789", &FIELDS, || {
        pairs.map(|(a, z)| b.vm(a).ping(IPS[z], 5))
    });
    let lines = parse(&lines);
    for ((a, z), got) in pairs.iter().zip(answered) {
        assert_eq!(got, 5, "ping vm{} -> vm{}\n{}", a + 1, z + 1, logs(&b));
    }
    let echoes: Vec<&Line> = lines.iter().filter(|l| !l.icmp.is_empty()).collect();
    // The capture may start a frame or two late; most must be there.
    assert!(
        echoes.len() >= 6 * 5,
        "{} echoes:\n{}",
        echoes.len(),
        dump(&lines)
    );
    for l in &echoes {
        assert!(
            l.dst.starts_with("192.0.2.") && !l.eth_dst.starts_with("01:00:5e"),
            "an echo went to the group: {}",
            dump(&lines)
        );
    }
    // hv2 learned vm1 behind hv1's VTEP (a dynamic remote); hv1 shows the
    // static entry towards 192.0.2.3.
    let (_, fdb2, _) = b.xvsd[1].ctl(&xvsctl, &["fdb-show", "blue"]);
    assert!(
        fdb2.lines()
            .any(|l| l.contains(MACS[0]) && l.contains("192.0.2.1")),
        "{fdb2}"
    );
    let (_, fdb1, _) = b.xvsd[0].ctl(&xvsctl, &["fdb-show", "blue"]);
    assert!(
        fdb1.lines()
            .any(|l| l.contains(MACS[2]) && l.contains("192.0.2.3")),
        "{fdb1}"
    );
    // Both peers are dynamic remotes of each xvsd's tunnel (learned, and
    // on hv1 192.0.2.3 also named by the static entry).
    for (h, others) in [
        (0, ["192.0.2.2", "192.0.2.3"]),
        (1, ["192.0.2.1", "192.0.2.3"]),
    ] {
        let (code, out, err) = b.xvsd[h].ctl(&xvsctl, &["--format", "json", "tunnel-ports"]);
        assert_eq!(code, 0, "{err}");
        let rows: serde_json::Value = serde_json::from_str(&out).expect("tunnel-ports JSON");
        let row = &rows[0];
        assert_eq!(row["remotes"], serde_json::json!([GROUP]), "{out}");
        assert_eq!(row["learn_remotes"], true, "{out}");
        let dynamic: Vec<&str> = row["dynamic_remotes"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        for o in others {
            assert!(dynamic.contains(&o), "hv{}: {out}", h + 1);
        }
    }
    for d in b.xvsd.drain(..) {
        let (status, log) = d.stop();
        assert!(
            status.success() && log.contains("joined multicast group"),
            "{log}"
        );
    }
}

fn dump(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| {
            format!(
                "{} {} -> {} arp={} icmp={} igmp={}",
                l.eth_dst, l.src, l.dst, l.arp, l.icmp, l.igmp
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
