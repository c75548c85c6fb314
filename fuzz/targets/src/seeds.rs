//! The committed seed corpus (`fuzz/corpus/<target>/<name>`), as code: a
//! few meaningful inputs per target (real VXLAN, Geneve, ARP and IPv6
//! neighbor discovery frames, valid control requests, host records, state
//! files) from which libFuzzer starts instead of from nothing. The replay
//! test checks the files match this and rewrites them when asked
//! (`XVS_WRITE_SEEDS=1`), so a seed can be read and reviewed here rather
//! than as bytes.
//!
//! Each seed is also checked to be what it claims (a tunnel frame pops, a
//! request parses and applies, a reply is learned): a seed that no longer
//! gets past the first check would leave the fuzzer exploring nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use xvs_agent::registry::{HostRecord, NetRecord, VirtRecord};
use xvs_config::TunnelKind;
use xvs_dataplane::control::invalidate::Invalidation;
use xvs_dataplane::testkit;
use xvs_types::MacAddr;

use crate::common;

/// One seed input: its target, its file name, its bytes.
#[derive(Debug)]
pub struct Seed {
    pub target: &'static str,
    pub name: &'static str,
    pub data: Vec<u8>,
}

/// `fuzz/`, where the corpus and the regressions live.
pub fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/targets has a parent")
        .to_path_buf()
}

const VM_MAC: [u8; 6] = [2, 0, 0, 0, 0x10, 1];
const VM2_MAC: [u8; 6] = [2, 0, 0, 0, 0x10, 2];
const BROADCAST: [u8; 6] = [0xff; 6];
const VM_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const VM2_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const VM6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const VM6_2: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

/// Every seed of every target.
pub fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    wire_seeds(&mut out);
    control_seeds(&mut out);
    vhost_seeds(&mut out);
    out
}

/// A guest's rings (`vhost_queue`'s layout): one frame queued to send (a
/// header descriptor chained to a frame descriptor), two receive
/// buffers posted.
fn vhost_seeds(out: &mut Vec<Seed>) {
    // A virtqueue descriptor: address, length, flags (1 next, 2 write), next.
    fn desc(img: &mut [u8], at: usize, addr: u64, len: u32, flags: u16, next: u16) {
        img[at..at + 8].copy_from_slice(&addr.to_le_bytes());
        img[at + 8..at + 12].copy_from_slice(&len.to_le_bytes());
        img[at + 12..at + 14].copy_from_slice(&flags.to_le_bytes());
        img[at + 14..at + 16].copy_from_slice(&next.to_le_bytes());
    }
    fn avail(img: &mut [u8], at: usize, heads: &[u16]) {
        img[at + 2..at + 4].copy_from_slice(&(heads.len() as u16).to_le_bytes());
        for (i, h) in heads.iter().enumerate() {
            img[at + 4 + 2 * i..at + 6 + 2 * i].copy_from_slice(&h.to_le_bytes());
        }
    }
    let ping = eth(VM2_MAC, VM_MAC, 0x0800, ipv4(VM_IP, VM2_IP, 1, icmp_echo()));
    let image = |loops: bool| {
        let mut img = vec![0u8; 0x1100 + ping.len()];
        // Transmit queue (rings at 0x400, 0x500): header at 0x1000, frame at 0x1100.
        desc(&mut img, 0x400, 0x1000, 12, 1, 1);
        desc(
            &mut img,
            0x410,
            0x1100,
            ping.len() as u32,
            u16::from(loops),
            1,
        );
        avail(&mut img, 0x500, &[0]);
        img[0x1100..].copy_from_slice(&ping);
        // Receive queue (rings at 0, 0x100): two 2 KiB buffers.
        desc(&mut img, 0x000, 0x2000, 2048, 2, 0);
        desc(&mut img, 0x010, 0x3000, 2048, 2, 0);
        avail(&mut img, 0x100, &[0, 1]);
        img
    };
    let with = |sel: u8, img: Vec<u8>| [&[sel][..], &img].concat();
    seed(
        out,
        "vhost_queue",
        "one_frame_each_way",
        with(1 | 2, image(false)),
    );
    seed(out, "vhost_queue", "legacy_header", with(4, image(false)));
    seed(out, "vhost_queue", "looping_chain", with(1, image(true)));

    // A TSO frame: TCP with 3,000 bytes to cut into segments of 1,000,
    // its checksum left to the device.
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&5201u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&1u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18; // PSH, ACK
    tcp[14..16].copy_from_slice(&64000u16.to_be_bytes());
    tcp.extend((0..3000).map(|i| i as u8));
    let frame = eth(VM2_MAC, VM_MAC, 0x0800, ipv4(VM_IP, VM2_IP, 6, tcp));
    let mut img = vec![0u8; 0x1100 + frame.len()];
    let mut hdr = [0u8; 12];
    hdr[0] = 1; // NEEDS_CSUM
    hdr[1] = 1; // GSO_TCPV4
    hdr[2..4].copy_from_slice(&54u16.to_le_bytes());
    hdr[4..6].copy_from_slice(&1000u16.to_le_bytes());
    hdr[6..8].copy_from_slice(&34u16.to_le_bytes());
    hdr[8..10].copy_from_slice(&16u16.to_le_bytes());
    img[0x1000..0x100c].copy_from_slice(&hdr);
    desc(&mut img, 0x400, 0x1000, 12, 1, 1);
    desc(&mut img, 0x410, 0x1100, frame.len() as u32, 0, 0);
    avail(&mut img, 0x500, &[0]);
    img[0x1100..].copy_from_slice(&frame);
    seed(out, "vhost_queue", "tso_frame", with(1 | 2 | 8, img));
}

fn seed(out: &mut Vec<Seed>, target: &'static str, name: &'static str, data: Vec<u8>) {
    out.push(Seed { target, name, data });
}

/// Frames: the parsers, pop, the pipeline and the neighbor snoop.
fn wire_seeds(out: &mut Vec<Seed>) {
    let snap = common::testbed();
    let arp_req = eth(
        BROADCAST,
        VM_MAC,
        0x0806,
        arp(1, VM_MAC, VM_IP, [0; 6], VM2_IP),
    );
    let arp_rep = eth(
        VM_MAC,
        VM2_MAC,
        0x0806,
        arp(2, VM2_MAC, VM2_IP, VM_MAC, VM_IP),
    );
    let ping = eth(VM2_MAC, VM_MAC, 0x0800, ipv4(VM_IP, VM2_IP, 1, icmp_echo()));
    let syn = eth(VM2_MAC, VM_MAC, 0x0800, ipv4(VM_IP, VM2_IP, 6, tcp_syn()));
    let tagged = vlan(&ping, 10);
    let udp6 = eth(
        VM2_MAC,
        VM_MAC,
        0x86dd,
        ipv6(VM6, VM6_2, 17, udp(5353, 53, b"q")),
    );
    let ns = eth(
        [0x33, 0x33, 0xff, 0, 0, 2],
        VM_MAC,
        0x86dd,
        ndp(135, VM6, VM6_2, VM6_2, VM_MAC),
    );
    let na = eth(
        VM_MAC,
        VM2_MAC,
        0x86dd,
        ndp(136, VM6_2, VM6, VM6_2, VM2_MAC),
    );

    // Encapsulated for each tunnel of the testkit, by the same code the
    // targets' ENCAP mode uses: its input is the seed of tunnel_pop.
    let mut encaps = Vec::new();
    for (i, tp) in snap.tunnels.ports().iter().enumerate() {
        let mut input = vec![i as u8, 0, 0, 0xc0, 0x01, 0, 0];
        if tp.kind == TunnelKind::Geneve {
            // The option the testkit's gn1 is configured with (critical
            // type: pop must know it), as one 12-byte option.
            input.extend_from_slice(&[0, 3, 0x01, 0x02, 0x83, 2]);
            input.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]);
        } else {
            input.extend_from_slice(&[0, 0]);
        }
        input.extend_from_slice(&ping);
        let frame = common::uplink_frame(common::ENCAP, &snap.tunnels, &input);
        encaps.push((tp.name.clone(), input, frame));
    }
    let encap_named = |name: &str| {
        encaps
            .iter()
            .find(|e| &*e.0 == name)
            .unwrap_or_else(|| panic!("testkit tunnel {name}"))
    };
    let (_, vx_in, vx) = encap_named("vx1");
    let (_, gn_in, gn) = encap_named("gn1");
    let (_, vx6_in, vx6) = encap_named("vx6");

    for (name, f) in [
        ("arp_request", &arp_req),
        ("arp_reply", &arp_rep),
        ("ipv4_icmp", &ping),
        ("ipv4_tcp_syn", &syn),
        ("vlan_ipv4", &tagged),
        ("ipv6_udp", &udp6),
        ("ipv6_ns", &ns),
        ("ipv6_na", &na),
        ("vxlan_ipv4", vx),
        ("geneve_ipv4", gn),
        ("vxlan_ipv6", vx6),
    ] {
        seed(out, "wire_parse", name, f.clone());
    }
    // The views also run on the bare input: give them their own headers.
    seed(out, "wire_parse", "bare_ipv4_tcp", syn[14..].to_vec());
    seed(out, "wire_parse", "bare_geneve", gn[14 + 20 + 8..].to_vec());

    for (name, input) in [("vxlan", vx_in), ("geneve", gn_in), ("vxlan_ipv6", vx6_in)] {
        seed(
            out,
            "tunnel_pop",
            name,
            [&[common::ENCAP], &input[..]].concat(),
        );
    }
    seed(out, "tunnel_pop", "as_received", [&[0], &vx[..]].concat());
    seed(
        out,
        "tunnel_pop",
        "arp",
        [&[common::FIX_CSUM], &arp_req[..]].concat(),
    );

    let port = |name: &str| {
        let p = snap.ports.iter().position(|p| &*p.name == name);
        p.unwrap_or_else(|| panic!("testkit port {name}")) as u8
    };
    let (uplink, vm1, vm4) = (port("eth0"), port("vm1"), port("vm4"));
    let encap_sel = (common::ENCAP << 6) | uplink;
    for (name, sel, spare, f) in [
        ("vm1_arp_flood", vm1, 4, &arp_req),
        ("vm1_ping", vm1, 0, &ping),
        ("vm4_ns", vm4, 2, &ns),
        ("uplink_vxlan", encap_sel, 2, vx_in),
        ("uplink_geneve", encap_sel, 2, gn_in),
        ("uplink_vxlan_ipv6", encap_sel, 2, vx6_in),
    ] {
        seed(out, "pipeline", name, [&[sel, spare], &f[..]].concat());
    }

    let mac9 = [2, 0, 0, 0, 0, 9];
    let peer9 = Ipv4Addr::new(192, 0, 2, 9);
    let reply9 = |mac| {
        eth(
            testkit::UPLINK_MAC.0,
            mac,
            0x0806,
            arp(
                2,
                mac,
                peer9,
                testkit::UPLINK_MAC.0,
                Ipv4Addr::new(192, 0, 2, 1),
            ),
        )
    };
    let local6: Ipv6Addr = testkit::LOCAL6.parse().expect("testkit address");
    let peer6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9);
    let na9 = eth(
        testkit::UPLINK_MAC.0,
        mac9,
        0x86dd,
        ndp(136, peer6, local6, peer6, mac9),
    );
    let claim2 = eth(
        testkit::UPLINK_MAC.0,
        mac9,
        0x0806,
        arp(
            2,
            mac9,
            Ipv4Addr::new(192, 0, 2, 2),
            testkit::UPLINK_MAC.0,
            Ipv4Addr::new(192, 0, 2, 1),
        ),
    );
    let records = |frames: &[&[u8]]| -> Vec<u8> {
        frames
            .iter()
            .flat_map(|f| std::iter::once(f.len() as u8).chain(f.iter().copied()))
            .collect()
    };
    seed(out, "neigh_snoop", "arp_reply", records(&[&reply9(mac9)]));
    seed(
        out,
        "neigh_snoop",
        "arp_moved",
        records(&[&reply9(mac9), &reply9([2, 0, 0, 0, 0, 0x0a])]),
    );
    seed(out, "neigh_snoop", "na", records(&[&na9]));
    seed(out, "neigh_snoop", "static_claimed", records(&[&claim2]));
}

/// Control inputs: requests, invalidations, host records, state files.
fn control_seeds(out: &mut Vec<Seed>) {
    for (name, line) in [
        ("hello", r#"{"jsonrpc":"2.0","id":1,"method":"hello"}"#),
        ("show", r#"{"jsonrpc":"2.0","id":"a","method":"show"}"#),
        (
            "transact_ports",
            r#"{"jsonrpc":"2.0","id":2,"method":"transact","params":{"commands":[{"op":"add-br","name":"br1"},{"op":"add-port","bridge":"br1","name":"vm2"},{"op":"add-tunnel","bridge":"br1","name":"gn1","kind":"geneve","vni":7,"remotes":["192.0.2.7","2001:db8::7"]}]}}"#,
        ),
        (
            "transact_tables",
            r#"{"jsonrpc":"2.0","id":3,"method":"transact","params":{"commands":[{"op":"fdb-add","bridge":"br0","mac":"02:00:00:00:00:05","port":"vx1","remote":"192.0.2.3"},{"op":"arp-add","bridge":"br0","ip":"10.0.0.5","mac":"02:00:00:00:00:05"},{"op":"set-tunnel","name":"vx1","remotes":["192.0.2.4"]},{"op":"fdb-del","bridge":"br0","mac":"02:00:00:00:00:06","if_exists":true}]}}"#,
        ),
        (
            "transact_underlay",
            r#"{"jsonrpc":"2.0","id":4,"method":"transact","params":{"commands":[{"op":"route-add","prefix":"198.51.100.0/24","gateway":"192.0.2.254","metric":5},{"op":"neigh-set","ip":"192.0.2.254","mac":"02:00:00:00:00:fe"},{"op":"set-br","name":"br0","learning":false,"arp_suppress":true}]}}"#,
        ),
    ] {
        seed(out, "ctl_request", name, line.as_bytes().to_vec());
    }

    let inv = |vni: u32, mac: u8| Invalidation {
        vni,
        vlan: 0,
        mac: MacAddr([2, 0, 0, 0, 0, mac]),
    };
    // Source selector 0: from a remote of the tunnel.
    seed(
        out,
        "invalidation",
        "from_remote",
        [&[0], &inv(100, 2).encode()[..]].concat(),
    );
    seed(
        out,
        "invalidation",
        "unknown_mac",
        [&[1], &inv(100, 7).encode()[..]].concat(),
    );
    seed(
        out,
        "invalidation",
        "from_stranger",
        [&[2], &inv(100, 2).encode()[..]].concat(),
    );

    let ip = |s: &str| -> IpAddr { s.parse().expect("seed address") };
    let virt = |m: u8, a: &str| VirtRecord {
        mac: MacAddr([2, 0, 0, 0, 1, m]),
        ip: Some(ip(a)),
    };
    let host = |underlay: &str, nets: Vec<NetRecord>| HostRecord {
        underlay_ip: ip(underlay),
        vtep_mac: Some(MacAddr([2, 0, 0, 0, 0, 0x20])),
        subnet: Some("10.244.2.0/24".parse().expect("seed prefix")),
        nets,
    };
    let net = |name: &str, vni, virts| NetRecord {
        name: name.into(),
        vni,
        virts,
    };
    let hv2 = host(
        "192.0.2.2",
        vec![net(
            "blue",
            100,
            vec![virt(2, "10.1.0.2"), virt(3, "10.1.0.3")],
        )],
    );
    let hv3 = host(
        "192.0.2.3",
        vec![
            net("blue", 100, vec![virt(2, "10.1.0.4")]),
            net("red", 200, vec![virt(5, "10.2.0.5")]),
        ],
    );
    let hv4 = host(
        "2001:db8::4",
        vec![net("blue", 101, vec![virt(6, "10.1.0.6")])],
    );
    let record = |sel: u8, h: &HostRecord| [&[sel], h.to_json().as_bytes()].concat();
    seed(out, "agent_registry", "one_host", record(1 | 4, &hv2));
    // hv2 and hv3 claim one MAC; hv4 is in blue with another VNI.
    let many = [record(1 | 4, &hv2), record(2 | 8, &hv3), record(3, &hv4)].join(&[0xff][..]);
    seed(out, "agent_registry", "three_hosts", many);
    // hv3 publishes a loopback underlay: left out, hv2 still applied.
    let bad = host(
        "127.0.0.3",
        vec![net("blue", 100, vec![virt(7, "10.1.0.7")])],
    );
    let pair = [record(1 | 4, &hv2), record(2 | 8, &bad)].join(&[0xff][..]);
    seed(out, "agent_registry", "one_bad_host", pair);

    let json = |c| serde_json::to_vec_pretty(c).expect("config serializes");
    seed(out, "state_file", "testkit", json(&testkit::config()));
    seed(out, "state_file", "empty", b"{}".to_vec());
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: Vec<u8>) -> Vec<u8> {
    [&dst[..], &src, &ethertype.to_be_bytes(), &payload].concat()
}

fn vlan(frame: &[u8], vid: u16) -> Vec<u8> {
    [
        &frame[..12],
        &[0x81, 0x00],
        &vid.to_be_bytes(),
        &frame[12..],
    ]
    .concat()
}

fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let fixed = [0, 1, 0x08, 0x00, 6, 4];
    [
        &fixed[..],
        &op.to_be_bytes(),
        &sha,
        &spa.octets(),
        &tha,
        &tpa.octets(),
    ]
    .concat()
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: Vec<u8>) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = [
        &[0x45, 0][..],
        &total.to_be_bytes(),
        &[0, 1, 0x40, 0, 64, proto, 0, 0],
    ]
    .concat();
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = checksum(0, &h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(&payload);
    h
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: Vec<u8>) -> Vec<u8> {
    let plen = payload.len() as u16;
    [
        &[0x60, 0, 0, 0][..],
        &plen.to_be_bytes(),
        &[next, 255],
        &src.octets(),
        &dst.octets(),
        &payload,
    ]
    .concat()
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    [
        &sport.to_be_bytes()[..],
        &dport.to_be_bytes(),
        &len.to_be_bytes(),
        &[0, 0],
        payload,
    ]
    .concat()
}

/// The Internet checksum of `data` plus `initial` (a pseudo-header sum).
fn checksum(initial: u32, data: &[u8]) -> u16 {
    let mut sum = initial;
    for w in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn icmp_echo() -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, b'x', b'v', b's', 0];
    let c = checksum(0, &m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn tcp_syn() -> Vec<u8> {
    // Data offset 6 words: one MSS option.
    vec![
        0xc0, 0x01, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0, 0, 0, 0, 2, 4, 0x05,
        0xb4,
    ]
}

/// A neighbor solicitation (135) or advertisement (136) for `target`
/// from `src` to `dst`, with the link-layer address option, checksummed.
fn ndp(kind: u8, src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr, lladdr: [u8; 6]) -> Vec<u8> {
    let (flags, opt) = if kind == 136 { (0x60, 2) } else { (0, 1) };
    let mut m = [
        &[kind, 0, 0, 0, flags, 0, 0, 0][..],
        &target.octets(),
        &[opt, 1],
        &lladdr,
    ]
    .concat();
    let pseudo = [
        &src.octets()[..],
        &dst.octets(),
        &(m.len() as u32).to_be_bytes(),
        &[0, 0, 0, 58],
    ]
    .concat();
    let c = checksum(u32::from(!checksum(0, &pseudo)), &m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ipv6(src, dst, 58, m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvs_agent::registry::{self, Put, Registry};
    use xvs_ctl::protocol::{parse_request, Method};
    use xvs_dataplane::frame::Frame;
    use xvs_dataplane::pipeline::WorkerState;
    use xvs_dataplane::tables::neigh::NeighChange;
    use xvs_dataplane::testkit::Pool;
    use xvs_dataplane::tunnel::pop;

    fn of(target: &str) -> Vec<Seed> {
        seeds().into_iter().filter(|s| s.target == target).collect()
    }

    #[test]
    fn encapsulated_seeds_pop() {
        let tunnels = &common::testbed().tunnels;
        let encap = of("tunnel_pop");
        let encap = encap.iter().filter(|s| s.data[0] == common::ENCAP);
        for s in encap {
            let mut f = common::uplink_frame(s.data[0], tunnels, &s.data[1..]);
            let len = f.len();
            let mut frame = Frame::new(&mut f, 0, len).unwrap();
            assert!(pop(tunnels, &mut frame).is_ok(), "{} does not pop", s.name);
        }
    }

    #[test]
    fn pipeline_seeds_are_delivered() {
        let snap = common::testbed();
        let mut ws = WorkerState::new(0, None);
        for s in of("pipeline") {
            let (sel, spare) = (s.data[0], usize::from(s.data[1]));
            let frame = common::uplink_frame(sel >> 6, &snap.tunnels, &s.data[2..]);
            let port = u16::from(sel & 0x3f);
            let out = Pool::new(1 + spare).run(snap, &mut ws, port, 1, &[&frame], spare);
            assert!(!out.tx.is_empty(), "{} is not forwarded", s.name);
        }
    }

    #[test]
    fn snooped_seeds_are_learned() {
        for s in of("neigh_snoop")
            .iter()
            .filter(|s| s.name != "static_claimed")
        {
            let mut c = testkit::testbed();
            for ip in crate::neigh_snoop::SOLICITED {
                c.underlay.neigh.request(ip, 0);
            }
            let frame = &s.data[1..1 + usize::from(s.data[0])];
            let change = c.snoop(frame, 1);
            assert_eq!(change, Some(NeighChange::New), "{} is not learned", s.name);
        }
    }

    #[test]
    fn requests_parse_and_transactions_apply() {
        for s in of("ctl_request") {
            let req = parse_request(&s.data).unwrap_or_else(|e| panic!("{}: {e:?}", s.name));
            let m = Method::from_request(&req.method, req.params.as_ref());
            if let Method::Transact(p) = m.unwrap_or_else(|e| panic!("{}: {e:?}", s.name)) {
                let base = common::small_config();
                let r = xvs_ctl::command::apply_all(&p.commands, &base);
                assert!(r.is_ok(), "{}: {r:?}", s.name);
            }
        }
    }

    #[test]
    fn host_records_parse() {
        for s in of("agent_registry") {
            for rec in s.data.split(|&b| b == 0xff) {
                let mut reg = Registry::new();
                let local = crate::agent_registry::local();
                let put = registry::put(&mut reg, "hv2", &rec[1..], 1, local);
                assert_ne!(put, Put::Unreadable, "{}: a record does not parse", s.name);
            }
        }
    }

    #[test]
    fn state_files_load() {
        for s in of("state_file") {
            let r = serde_json::from_slice::<xvs_config::Config>(&s.data);
            assert!(r.is_ok(), "{}: {r:?}", s.name);
        }
    }
}
