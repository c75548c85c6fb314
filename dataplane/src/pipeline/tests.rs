//! Pipeline tests on real frames built (and re-parsed) with etherparse, an
//! independent implementation, over the testkit topology.

use std::net::Ipv4Addr;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

use super::*;
use crate::control::Control;
use crate::testkit::{self, Pool, PEER2_MAC, PEER3_MAC, UPLINK_MAC};
use crate::wire::WireError;
use xvs_config::{AclConfig, Config, Direction, QosConfig, VlanMode};
use xvs_types::MacAddr;

#[path = "../../tests/common/frames.rs"]
mod frames;
use frames::*;

const ETH0: PortNo = 1;
const VM1: PortNo = 2;
const VM2: PortNo = 3;
const VM3: PortNo = 4;
const VM4: PortNo = 5;
const VX1: PortNo = 6;

struct Bed {
    ctl: Control,
    ws: WorkerState,
    pool: Pool,
    now: u64,
}

impl Bed {
    fn new() -> Bed {
        Bed::with(testkit::testbed())
    }

    fn with(ctl: Control) -> Bed {
        let ws = WorkerState::new(0, Some(ctl.learn_sender()));
        Bed {
            ctl,
            ws,
            pool: Pool::new(64),
            now: 1_000_000_000,
        }
    }

    fn apply(&mut self, f: impl FnOnce(&mut Config)) {
        let mut c = self.ctl.config().clone();
        f(&mut c);
        self.ctl.apply(c).unwrap();
    }

    fn send(&mut self, port: PortNo, frames: &[&[u8]]) -> testkit::BatchOut {
        let snap = self.ctl.snapshot();
        self.now += 1_000;
        let out = self
            .pool
            .run(&snap, &mut self.ws, port, self.now, frames, 16);
        self.ctl.process_learning(self.now);
        out
    }

    fn drops(&self, r: DropReason) -> u64 {
        self.ws.drops.get(r)
    }
}

/// Parses an encapsulated frame: (eth dst, ip src, ip dst, udp src port,
/// udp dst port, tunnel header + inner bytes).
fn dissect(f: &[u8]) -> (MacAddr, Ipv4Addr, Ipv4Addr, u16, u16, Vec<u8>) {
    let p = SlicedPacket::from_ethernet(f).expect("valid outer frame");
    let eth = match p.link {
        Some(etherparse::LinkSlice::Ethernet2(e)) => e,
        other => panic!("not ethernet: {other:?}"),
    };
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not ipv4")
    };
    let h = ip.header().to_header();
    assert_eq!(
        h.header_checksum,
        h.calc_header_checksum(),
        "outer IPv4 checksum"
    );
    assert_eq!(usize::from(h.total_len), f.len() - 14, "IPv4 total length");
    let Some(TransportSlice::Udp(udp)) = p.transport else {
        panic!("not udp")
    };
    assert_eq!(usize::from(udp.length()), f.len() - 14 - 20, "UDP length");
    (
        MacAddr(eth.destination()),
        h.source.into(),
        h.destination.into(),
        udp.source_port(),
        udp.destination_port(),
        udp.payload().to_vec(),
    )
}

#[test]
fn broadcast_floods_local_ports_and_every_remote_vtep_once() {
    let mut bed = Bed::new();
    let f = udp_frame(A, BCAST, 64);
    let out = bed.send(VM1, &[&f]);
    let mut ports: Vec<PortNo> = out.tx.iter().map(|(p, _)| *p).collect();
    ports.sort();
    assert_eq!(
        ports,
        vec![ETH0, ETH0, VM2],
        "{:?}",
        bed.ws.drops.nonzero().collect::<Vec<_>>()
    );
    let mut remotes = Vec::new();
    for (p, bytes) in &out.tx {
        if *p == VM2 {
            assert_eq!(bytes, &f, "local copy is the frame as received");
            continue;
        }
        let (dmac, src, dst, sport, dport, payload) = dissect(bytes);
        assert_eq!(src, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(dport, 4789);
        assert!((49152..=65535).contains(&sport));
        assert_eq!(
            &payload[..8],
            &[0x08, 0, 0, 0, 0, 0, 42, 0],
            "VXLAN I flag, VNI 42"
        );
        assert_eq!(&payload[8..], &f[..], "inner frame intact");
        remotes.push((dst, dmac));
    }
    remotes.sort();
    assert_eq!(
        remotes,
        vec![
            (Ipv4Addr::new(192, 0, 2, 2), PEER2_MAC),
            (Ipv4Addr::new(192, 0, 2, 3), PEER3_MAC)
        ]
    );
    assert_eq!(bed.ws.replicas, 2);
    assert_eq!(bed.ws.copies, 0);
    // Nothing leaked into the other bridges.
    assert!(out.tx.iter().all(|(p, _)| *p != VM3 && *p != VM4));
}

#[test]
fn learning_turns_flooding_into_unicast_in_place() {
    let mut bed = Bed::new();
    // B talks to A from behind remote 192.0.2.3: learned there.
    let from_b = udp_frame(B, A, 32);
    let out = bed.send(ETH0, &[&vxlan([192, 0, 2, 3], 42, &from_b)]);
    assert_eq!(
        out.tx.len(),
        2,
        "A unknown: flooded to vm1 and vm2 only, never back to a VTEP"
    );
    assert!(out
        .tx
        .iter()
        .all(|(p, f)| (*p == VM1 || *p == VM2) && f == &from_b));
    let fdb = bed.ctl.fdb("br0").unwrap();
    let e = fdb
        .iter(0)
        .find(|e| e.mac == MacAddr(B))
        .expect("B learned");
    assert_eq!((e.dest.port, e.dest.remote), (VX1, 1));

    // A answers: one frame, straight to 192.0.2.3, no replica, no copy.
    let replicas = bed.ws.replicas;
    let to_b = udp_frame(A, B, 32);
    let out = bed.send(VM1, &[&to_b]);
    assert_eq!(out.tx.len(), 1);
    let (dmac, _, dst, _, _, payload) = dissect(&out.tx[0].1);
    assert_eq!((dst, dmac), (Ipv4Addr::new(192, 0, 2, 3), PEER3_MAC));
    assert_eq!(&payload[8..], &to_b[..]);
    assert_eq!(bed.ws.replicas, replicas);
    assert_eq!(bed.ws.copies, 0);

    // And A was learned on vm1: B's next frame goes to vm1 only.
    let out = bed.send(ETH0, &[&vxlan([192, 0, 2, 3], 42, &from_b)]);
    assert_eq!(out.tx.len(), 1);
    assert_eq!(out.tx[0].0, VM1);
}

#[test]
fn source_port_is_stable_per_flow_and_varies_across_flows() {
    let mut bed = Bed::new();
    let mut ports = std::collections::BTreeSet::new();
    for i in 0..32u16 {
        let b = PacketBuilder::ethernet2(A, BCAST)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000 + i, 2000);
        let mut f = Vec::new();
        b.write(&mut f, &[0; 8]).unwrap();
        let a = bed.send(VM1, &[&f]);
        let b2 = bed.send(VM1, &[&f]);
        let sp = |o: &testkit::BatchOut| {
            o.tx.iter()
                .find(|(p, _)| *p == ETH0)
                .map(|(_, f)| dissect(f).3)
                .unwrap()
        };
        assert_eq!(sp(&a), sp(&b2), "same flow, same source port");
        ports.insert(sp(&a));
    }
    assert!(ports.len() > 20, "entropy across flows: {}", ports.len());
}

#[test]
fn geneve_with_known_option_is_delivered_and_bad_ones_are_counted() {
    let mut bed = Bed::new();
    let inner = udp_frame(B, BCAST, 16);
    let out = bed.send(ETH0, &[&geneve(43, 0, &known_opt(), &inner)]);
    assert_eq!(out.tx.len(), 1);
    assert_eq!(out.tx[0], (VM3, inner.clone()));

    // Unknown option, critical bit set: dropped (RFC 8926 §3.5.1).
    let crit = [0xff, 0xff, 0x80, 1, 0, 0, 0, 0];
    let out = bed.send(ETH0, &[&geneve(43, 0x40, &crit, &inner)]);
    assert!(out.tx.is_empty());
    assert_eq!(bed.drops(WireError::GeneveCriticalOption.into()), 1);

    // Unknown but not critical: fine.
    let soft = [0xff, 0xff, 0x01, 1, 0, 0, 0, 0];
    let out = bed.send(ETH0, &[&geneve(43, 0, &soft, &inner)]);
    assert_eq!(out.tx.len(), 1);

    // O bit: a control packet, never forwarded.
    let out = bed.send(ETH0, &[&geneve(43, 0x80, &known_opt(), &inner)]);
    assert!(out.tx.is_empty());
    assert_eq!(bed.drops(DropReason::GeneveControl), 1);

    // Version 1.
    let mut v1 = geneve(43, 0, &[], &inner);
    v1[14 + 20 + 8] |= 0x40;
    bed.send(ETH0, &[&v1]);
    assert_eq!(bed.drops(WireError::GeneveBadVersion.into()), 1);

    // Options longer than the packet.
    let mut long = geneve(43, 0, &[], &inner[..0]);
    long[14 + 20 + 8] = 0x3f;
    bed.send(ETH0, &[&long]);
    assert_eq!(bed.drops(WireError::GeneveBadOptions.into()), 1);
}

#[test]
fn geneve_push_carries_the_configured_option() {
    let mut bed = Bed::new();
    let f = udp_frame(A, BCAST, 16);
    let out = bed.send(VM3, &[&f]);
    assert_eq!(out.tx.len(), 1);
    let (_, _, dst, _, dport, payload) = dissect(&out.tx[0].1);
    assert_eq!((dst, dport), (Ipv4Addr::new(192, 0, 2, 2), 6081));
    assert_eq!(payload[0], 3, "version 0, 3 words of options");
    assert_eq!(payload[1], 0x40, "C bit: a critical option is present");
    assert_eq!(&payload[2..4], &[0x65, 0x58]);
    assert_eq!(&payload[4..8], &[0, 0, 43, 0]);
    assert_eq!(&payload[8..20], &known_opt()[..]);
    assert_eq!(&payload[20..], &f[..]);
}

#[test]
fn vnis_never_leak_into_each_other() {
    let mut bed = Bed::new();
    // The same inner MACs in two bridges.
    let inner = udp_frame(B, BCAST, 16);
    let out = bed.send(ETH0, &[&vxlan([192, 0, 2, 2], 42, &inner)]);
    assert!(out.tx.iter().all(|(p, _)| *p == VM1 || *p == VM2));
    let out = bed.send(ETH0, &[&geneve(43, 0, &known_opt(), &inner)]);
    assert!(out.tx.iter().all(|(p, _)| *p == VM3));
    // VNI 43 over VXLAN, or an unknown VNI: no tunnel port matches.
    let out = bed.send(
        ETH0,
        &[
            &vxlan([192, 0, 2, 2], 43, &inner),
            &vxlan([192, 0, 2, 2], 7, &inner),
        ],
    );
    assert!(out.tx.is_empty());
    assert_eq!(bed.drops(DropReason::NoTunnelPort), 2);
    // B was learned in br0 and br1 independently.
    assert!(bed
        .ctl
        .fdb("br0")
        .unwrap()
        .iter(0)
        .any(|e| e.mac == MacAddr(B)));
    assert!(bed
        .ctl
        .fdb("br1")
        .unwrap()
        .iter(0)
        .any(|e| e.mac == MacAddr(B)));
}

#[test]
fn tunnel_packets_that_do_not_belong_are_dropped_with_a_reason() {
    let mut bed = Bed::new();
    let inner = udp_frame(B, A, 16);
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (vxlan([192, 0, 2, 9], 42, &inner), DropReason::UnknownRemote),
        (tagged_inner(), DropReason::InnerVlan),
        (
            {
                let mut f = vxlan([192, 0, 2, 2], 42, &inner);
                f[14 + 20 + 8] = 0; // clear the I flag
                f
            },
            WireError::VxlanNoIFlag.into(),
        ),
        (
            {
                let mut f = vxlan([192, 0, 2, 2], 42, &inner);
                f[14 + 10] ^= 0xff; // corrupt the IPv4 checksum
                f
            },
            WireError::BadIpChecksum.into(),
        ),
        (outer([192, 0, 2, 2], 53, &[0; 32]), DropReason::NotTunnel),
        (udp_frame(B, A, 16), DropReason::NotTunnel),
    ];
    for (f, why) in cases {
        let before = bed.drops(why);
        let out = bed.send(ETH0, &[&f]);
        assert!(out.tx.is_empty(), "{why:?}");
        assert_eq!(bed.drops(why), before + 1, "{why:?}");
    }
}

fn tagged_inner() -> Vec<u8> {
    vxlan([192, 0, 2, 2], 42, &tagged_frame(B, A, 10))
}

#[test]
fn reserved_vxlan_bits_are_ignored_on_receipt() {
    let mut bed = Bed::new();
    let inner = udp_frame(B, BCAST, 16);
    let mut f = vxlan([192, 0, 2, 2], 42, &inner);
    let v = 14 + 20 + 8;
    f[v] = 0xff; // every flag bit
    f[v + 1] = 0xff;
    f[v + 7] = 0xff;
    let out = bed.send(ETH0, &[&f]);
    assert_eq!(out.tx.len(), 2);
}

#[test]
fn malformed_frames_are_counted_never_panic_and_no_buffer_is_lost() {
    let mut bed = Bed::new();
    let inner = udp_frame(B, A, 40);
    let samples: Vec<(PortNo, Vec<u8>)> = vec![
        (ETH0, vxlan([192, 0, 2, 2], 42, &inner)),
        (ETH0, geneve(43, 0, &known_opt(), &inner)),
        (ETH0, vxlan([192, 0, 2, 2], 42, &ipv4_with_options(&inner))),
        (ETH0, vxlan([192, 0, 2, 2], 42, &ipv6_with_ext_headers())),
        (VM1, inner.clone()),
        (VM1, tagged_frame(A, B, 5)),
        (VM1, ipv4_with_options(&inner)),
        (VM1, ipv6_with_ext_headers()),
    ];
    // The extra samples are valid frames that reach a VM.
    for (port, f) in &samples[2..4] {
        let out = bed.send(*port, &[f]);
        assert_eq!(
            out.tx.len(),
            2,
            "{:?}",
            bed.ws.drops.nonzero().collect::<Vec<_>>()
        );
    }
    for (port, f) in &samples {
        for cut in 0..f.len() {
            let before = bed.ws.drops.total();
            let out = bed.send(*port, &[&f[..cut]]);
            let dropped = bed.ws.drops.total() - before;
            assert!(
                out.tx.len() as u64 + dropped >= 1,
                "cut {cut}: frame vanished"
            );
        }
        for i in 0..f.len() {
            for bit in [0x01u8, 0x80] {
                let mut g = f.clone();
                g[i] ^= bit;
                bed.send(*port, &[&g]);
            }
        }
    }
}

/// `f` (Ethernet + IPv4 without options) with 8 bytes of IPv4 options
/// (NOPs and an end-of-list) inserted; lengths and checksum fixed.
fn ipv4_with_options(f: &[u8]) -> Vec<u8> {
    let mut v = f[..34].to_vec();
    v.extend_from_slice(&[1, 1, 1, 1, 1, 1, 1, 0]);
    v.extend_from_slice(&f[34..]);
    v[14] = 0x47;
    let tl = u16::from_be_bytes([v[16], v[17]]) + 8;
    v[16..18].copy_from_slice(&tl.to_be_bytes());
    v[24..26].copy_from_slice(&[0, 0]);
    let c = crate::wire::checksum::checksum(&v[14..42]);
    v[24..26].copy_from_slice(&c.to_be_bytes());
    v
}

/// An IPv6/UDP frame with a hop-by-hop and a destination-options header.
fn ipv6_with_ext_headers() -> Vec<u8> {
    let b = PacketBuilder::ethernet2(B, A)
        .ipv6([0xfe; 16], [0xfd; 16], 64)
        .udp(5000, 6000);
    let mut v = Vec::new();
    b.write(&mut v, &[9; 12]).unwrap();
    // Insert hop-by-hop (next: dest opts) and dest opts (next: UDP), each
    // 8 bytes of PadN.
    let mut out = v[..54].to_vec();
    out.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
    out.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
    out.extend_from_slice(&v[54..]);
    out[20] = 0; // next header: hop-by-hop
    let pl = u16::from_be_bytes([out[18], out[19]]) + 16;
    out[18..20].copy_from_slice(&pl.to_be_bytes());
    out
}

#[test]
fn access_and_trunk_ports_follow_802_1q() {
    let mut bed = Bed::new();
    bed.apply(|c| {
        c.ports[0].vlan = VlanMode::Access { tag: 10 };
        c.ports[1].vlan = VlanMode::Trunk {
            trunks: vec![10, 20],
            native: None,
        };
    });
    // Untagged on access 10: leaves the trunk tagged 10, not the tunnel
    // (it only carries the untagged domain).
    let f = udp_frame(A, BCAST, 16);
    let out = bed.send(VM1, &[&f]);
    assert_eq!(out.tx.len(), 1);
    assert_eq!(out.tx[0].0, VM2);
    assert_eq!(out.tx[0].1, tagged_frame_like(&f, 10));
    // Tagged on the access port: refused.
    let out = bed.send(VM1, &[&tagged_frame(A, BCAST, 10)]);
    assert!(out.tx.is_empty());
    assert_eq!(bed.drops(DropReason::VlanNotAllowed), 1);
    // Tagged 10 on the trunk: untagged on the access port.
    let t = tagged_frame_like(&f, 10);
    let out = bed.send(VM2, &[&t]);
    assert_eq!(out.tx, vec![(VM1, f.clone())]);
    // Tagged 30 on the trunk: not a member.
    let out = bed.send(VM2, &[&tagged_frame_like(&f, 30)]);
    assert!(out.tx.is_empty());
    assert_eq!(bed.drops(DropReason::VlanNotAllowed), 2);
}

/// `f` with an 802.1Q tag (VID `vid`, PCP 0) inserted after the MACs.
fn tagged_frame_like(f: &[u8], vid: u16) -> Vec<u8> {
    let mut v = f[..12].to_vec();
    v.extend_from_slice(&[0x81, 0x00]);
    v.extend_from_slice(&vid.to_be_bytes());
    v.extend_from_slice(&f[12..]);
    v
}

#[test]
fn firewall_and_policer_drop_and_count() {
    let mut bed = Bed::new();
    bed.apply(|c| {
        c.acls.push(
            AclConfig {
                port: "vm1".into(),
                dir: Direction::In,
                rules: vec!["priority=10,udp,tp_dst=2000,action=drop".into()],
            }
            .into(),
        );
        c.qos.push(
            QosConfig {
                port: "vm2".into(),
                dir: Direction::Out,
                rate_bps: 8_000,
                burst_bytes: 10_000,
                peak_bps: None,
            }
            .into(),
        );
    });
    let f = udp_frame(A, BCAST, 16);
    let out = bed.send(VM1, &[&f]);
    assert!(out.tx.is_empty());
    assert_eq!(bed.drops(DropReason::FirewallIn), 1);
    assert_eq!(bed.ws.fw_hits[0][0].packets, 1);

    // From vm3's bridge nothing is filtered; from the tunnel into br0, the
    // egress policer on vm2 passes the burst and then drops.
    let big = udp_frame(B, BCAST, 1000);
    let frames: Vec<Vec<u8>> = (0..20).map(|_| vxlan([192, 0, 2, 2], 42, &big)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|v| &v[..]).collect();
    let out = bed.send(ETH0, &refs);
    let to_vm2 = out.tx.iter().filter(|(p, _)| *p == VM2).count();
    assert!(
        (8..=10).contains(&to_vm2),
        "burst of 10 kB passes ~9 frames: {to_vm2}"
    );
    assert_eq!(bed.drops(DropReason::PolicerOut), 20 - to_vm2 as u64);
}

#[test]
fn flows_override_normal_switching_and_hit_the_exact_match_cache() {
    let mut bed = Bed::new();
    bed.apply(|c| {
        c.bridges[0].flows = vec![
            format!("priority=100,in_port={VM1},actions=output:{VM2}"),
            format!("priority=90,in_port={VM2},udp,tp_dst=2000,actions=drop"),
            format!("priority=80,in_port={VM2},actions=mod_vlan_vid:7,output:{VM1}"),
        ];
    });
    let f = udp_frame(A, BCAST, 16);
    for _ in 0..3 {
        let out = bed.send(VM1, &[&f]);
        assert_eq!(out.tx, vec![(VM2, f.clone())]);
    }
    assert!(bed.ws.emc.hits() >= 2);
    let out = bed.send(VM2, &[&f]);
    assert!(out.tx.is_empty());
    assert_eq!(bed.drops(DropReason::FlowDrop), 1);
    // A frame no rule matches is dropped too (table miss).
    let out = bed.send(ETH0, &[&vxlan([192, 0, 2, 2], 42, &f)]);
    assert!(out.tx.is_empty());
    assert_eq!(bed.drops(DropReason::FlowDrop), 2);
}

#[test]
fn unresolved_next_hop_drops_only_that_remote_until_resolved() {
    let mut ctl = testkit::control();
    ctl.underlay.neigh.remove("192.0.2.3".parse().unwrap());
    ctl.apply(testkit::config()).unwrap();
    assert!(ctl
        .unresolved()
        .any(|a| *a == "192.0.2.3".parse::<std::net::IpAddr>().unwrap()));
    let mut bed = Bed::with(ctl);
    let f = udp_frame(A, BCAST, 16);
    let out = bed.send(VM1, &[&f]);
    assert_eq!(out.tx.len(), 2, "vm2 and 192.0.2.2");
    assert_eq!(bed.drops(DropReason::NeighUnresolved), 1);

    // The neighbor shows up (snooped ARP reply): templates are rebuilt.
    bed.ctl.underlay.neigh.learn(
        "192.0.2.3".parse().unwrap(),
        MacAddr([2, 0, 0, 0, 0, 0x33]),
        bed.now,
        crate::tables::neigh::NeighSource::Snooped,
    );
    bed.ctl.underlay_updated();
    let out = bed.send(VM1, &[&f]);
    assert_eq!(out.tx.len(), 3);
    assert!(out
        .tx
        .iter()
        .any(|(p, f)| *p == ETH0 && dissect(f).0 == MacAddr([2, 0, 0, 0, 0, 0x33])));
}

/// `f` as a sender with checksum offload hands it over: its L4 checksum
/// field holds only the folded pseudo-header sum.
fn left_to_offload(f: &[u8]) -> Vec<u8> {
    use crate::wire::checksum::{fold, pseudo_header_v4};
    let mut key = FlowKey::default();
    let info = extract(f, &mut key).unwrap();
    let at = usize::from(info.l4_offset) + if key.ip_proto() == 6 { 16 } else { 6 };
    let ph = pseudo_header_v4(
        Ipv4Addr::from(key.nw_src() as u32),
        Ipv4Addr::from(key.nw_dst() as u32),
        key.ip_proto(),
        u32::from(info.l4_len),
    );
    let mut v = f.to_vec();
    v[at..at + 2].copy_from_slice(&fold(ph).to_be_bytes());
    assert_ne!(v, f, "the full checksum differs from the partial one");
    v
}

#[test]
fn checksums_left_to_offload_are_completed_both_ways_and_counted() {
    let mut bed = Bed::new();
    let from_b = udp_frame(B, A, 300);
    let out = bed.send(
        ETH0,
        &[&vxlan([192, 0, 2, 3], 42, &left_to_offload(&from_b))],
    );
    assert_eq!(out.tx.len(), 2, "flooded to vm1 and vm2");
    assert!(
        out.tx.iter().all(|(_, f)| f == &from_b),
        "completed on decap"
    );
    assert_eq!(bed.ws.ports[usize::from(VX1)].csum_completed, 1);

    let to_b = udp_frame(A, B, 1400);
    let out = bed.send(VM1, &[&left_to_offload(&to_b), &to_b]);
    assert_eq!(out.tx.len(), 2);
    for (_, f) in &out.tx {
        let (_, _, _, _, _, payload) = dissect(f);
        assert_eq!(&payload[8..], &to_b[..], "completed before the push");
    }
    assert_eq!(
        bed.ws.ports[usize::from(VM1)].csum_completed,
        1,
        "the full checksum was kept, not counted"
    );
}

#[test]
fn ipv6_underlay_sends_a_valid_udp_checksum() {
    let mut bed = Bed::new();
    let f = udp_frame(A, BCAST, 33);
    let out = bed.send(VM4, &[&f]);
    assert_eq!(out.tx.len(), 1);
    let bytes = &out.tx[0].1;
    let p = SlicedPacket::from_ethernet(bytes).unwrap();
    let Some(NetSlice::Ipv6(ip)) = p.net else {
        panic!("not ipv6")
    };
    let h = ip.header().to_header();
    assert_eq!(usize::from(h.payload_length), bytes.len() - 14 - 40);
    let Some(TransportSlice::Udp(udp)) = p.transport else {
        panic!("not udp")
    };
    let uh = udp.to_header();
    assert_ne!(uh.checksum, 0, "IPv6 needs a UDP checksum");
    assert_eq!(
        uh.checksum,
        uh.calc_checksum_ipv6(&h, udp.payload()).unwrap()
    );
    assert_eq!(&udp.payload()[8..], &f[..]);
}

#[test]
fn reconfiguring_another_bridge_keeps_flows_cached_and_ports_counted() {
    let mut bed = Bed::new();
    let f = udp_frame(A, BCAST, 16);
    bed.send(VM1, &[&f]);
    let gen = bed.ctl.snapshot().bridges[0].flows.generation();
    bed.apply(|c| c.bridges[1].flows = vec!["priority=1,actions=drop".into()]);
    assert_eq!(bed.ctl.snapshot().bridges[0].flows.generation(), gen);
    bed.send(VM1, &[&f]);
    assert_eq!(bed.ws.ports[usize::from(VM1)].rx_packets, 2);
    assert_eq!(bed.ws.ports[usize::from(VM2)].tx_packets, 2);
}

#[test]
fn snooped_arp_reply_moves_a_next_hop_without_a_restart() {
    let mut bed = Bed::new();
    let f = udp_frame(A, BCAST, 16);
    let new_mac = [2, 0, 0, 0, 0, 0x99];
    // 192.0.2.2 now answers from another MAC (e.g. a failed-over gateway).
    let arp = {
        let mut v = vec![0u8; 42];
        v[..6].copy_from_slice(&UPLINK_MAC.0);
        v[6..12].copy_from_slice(&new_mac);
        v[12..14].copy_from_slice(&[0x08, 0x06]);
        v[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
        v[22..28].copy_from_slice(&new_mac);
        v[28..32].copy_from_slice(&[192, 0, 2, 2]);
        v[32..38].copy_from_slice(&UPLINK_MAC.0);
        v[38..42].copy_from_slice(&[192, 0, 2, 1]);
        v
    };
    // A static entry is config: a snooped reply never overrides it.
    assert_eq!(
        bed.ctl.snoop(&arp, bed.now),
        Some(crate::tables::neigh::NeighChange::Ignored)
    );
    bed.ctl.underlay.neigh.remove("192.0.2.2".parse().unwrap());
    assert!(matches!(
        bed.ctl.snoop(&arp, bed.now),
        Some(crate::tables::neigh::NeighChange::New)
    ));
    let out = bed.send(VM1, &[&f]);
    let macs: Vec<MacAddr> = out
        .tx
        .iter()
        .filter(|(p, _)| *p == ETH0)
        .map(|(_, f)| dissect(f).0)
        .collect();
    assert!(macs.contains(&MacAddr(new_mac)), "{macs:?}");
    // Not an ARP reply: ignored.
    assert_eq!(bed.ctl.snoop(&f, bed.now), None);
}

#[test]
fn exact_match_cache_hits_on_repeated_flows() {
    let mut ctl = testkit::control();
    let mut c = testkit::config();
    c.bridges[0].flows = vec!["priority=100,ip,actions=NORMAL".into()];
    c.acls.push(
        AclConfig {
            port: "vm1".into(),
            dir: Direction::In,
            rules: vec!["priority=10,tcp,tp_dst=22,action=drop".into()],
        }
        .into(),
    );
    ctl.apply(c).unwrap();
    let mut bed = Bed::with(ctl);
    let f = udp_frame(A, B, 16);
    for _ in 0..4 {
        bed.send(VM1, &[&f]);
    }
    assert_eq!(bed.ws.emc_misses(), 1);
    assert_eq!(bed.ws.emc_hits(), 3);
}

#[test]
fn a_cached_decision_follows_fdb_changes_and_keeps_learning() {
    use xvs_config::StaticFdbConfig;
    let mut bed = Bed::new();
    let static_b = |c: &mut Config, remote: &str| {
        c.fdb.retain(|f| f.mac != MacAddr(B));
        c.fdb.push(
            StaticFdbConfig {
                bridge: "br0".into(),
                vlan: 0,
                mac: MacAddr(B),
                port: "vx1".into(),
                remote: Some(remote.parse().unwrap()),
            }
            .into(),
        );
    };
    bed.apply(|c| {
        c.bridges[0].fdb_aging_secs = 10;
        static_b(c, "192.0.2.3");
    });
    let to_b = udp_frame(A, B, 8);
    let dst = |out: &testkit::BatchOut| {
        assert_eq!(out.tx.len(), 1);
        dissect(&out.tx[0].1).2
    };
    // The first frame learns A (a new snapshot); from the second on, the
    // cache answers.
    for _ in 0..3 {
        assert_eq!(dst(&bed.send(VM1, &[&to_b])), Ipv4Addr::new(192, 0, 2, 3));
    }
    assert!(bed.ws.plan_hits >= 1, "{}", bed.ws.plan_hits);
    // 30 s of cached forwarding keep A alive in a 10 s aging FDB: the cache
    // replays learning.
    for _ in 0..10 {
        bed.now += 3_000_000_000;
        bed.ctl.tick(bed.now);
        assert_eq!(dst(&bed.send(VM1, &[&to_b])), Ipv4Addr::new(192, 0, 2, 3));
    }
    assert!(bed.ws.plan_hits >= 8, "{}", bed.ws.plan_hits);
    assert_eq!(fdb_dest(&bed, A), Some((VM1, NO_REMOTE)));
    // The FDB changes: the next frame goes where the new snapshot says.
    bed.apply(|c| static_b(c, "192.0.2.2"));
    assert_eq!(dst(&bed.send(VM1, &[&to_b])), Ipv4Addr::new(192, 0, 2, 2));
    bed.apply(|c| c.fdb.retain(|f| f.mac != MacAddr(B)));
    assert!(bed.send(VM1, &[&to_b]).tx.len() > 1, "B unknown: flooded");
    // A decision with a side effect (a drop) is never replayed from the
    // cache: every frame counts it.
    let to_a = udp_frame(B, A, 8);
    let same = bed.drops(DropReason::SamePort);
    for _ in 0..3 {
        assert!(bed.send(VM1, &[&to_a]).tx.is_empty());
    }
    assert_eq!(bed.drops(DropReason::SamePort), same + 3);
}

#[test]
fn flows_differing_only_in_ports_each_stay_cached() {
    use xvs_config::StaticFdbConfig;
    let mut ctl = testkit::control();
    let mut cfg = testkit::config();
    cfg.bridges[0].flows = vec![
        "priority=200,tcp,tp_dst=22,actions=drop".into(),
        "priority=100,ip,actions=NORMAL".into(),
        "priority=1,actions=drop".into(),
    ];
    cfg.acls.push(
        AclConfig {
            port: "vm1".into(),
            dir: Direction::In,
            rules: (0..100)
                .map(|i| format!("priority=10,tcp,tp_dst={},action=drop", 1000 + i))
                .collect(),
        }
        .into(),
    );
    cfg.fdb.push(
        StaticFdbConfig {
            bridge: "br0".into(),
            vlan: 0,
            mac: MacAddr(B),
            port: "vx1".into(),
            remote: Some("192.0.2.2".parse().unwrap()),
        }
        .into(),
    );
    ctl.apply(cfg).unwrap();
    let mut bed = Bed::with(ctl);
    bed.ws = WorkerState::new(0, None);
    let frames: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let b = PacketBuilder::ethernet2(A, B)
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .udp(1000 + i, 2000);
            let mut v = Vec::new();
            b.write(&mut v, &[0xab; 22]).unwrap();
            v
        })
        .collect();
    let refs: Vec<&[u8]> = frames.iter().map(|v| &v[..]).collect();
    for _ in 0..3 {
        bed.send(VM1, &refs);
    }
    assert_eq!(bed.ws.emc_misses(), 4);
}

#[test]
fn moves_are_learned_statics_are_not_and_idle_macs_age_out() {
    use xvs_config::StaticFdbConfig;
    let mut bed = Bed::new();
    bed.apply(|c| {
        c.bridges[0].fdb_aging_secs = 10;
        c.fdb.push(
            StaticFdbConfig {
                bridge: "br0".into(),
                vlan: 0,
                mac: MacAddr(B),
                port: "vx1".into(),
                remote: Some("192.0.2.3".parse().unwrap()),
            }
            .into(),
        );
    });
    let fdb = |bed: &Bed, m: [u8; 6]| {
        bed.ctl
            .fdb("br0")
            .unwrap()
            .iter(0)
            .find(|e| e.mac == MacAddr(m))
            .map(|e| (e.dest.port, e.is_static))
    };
    // A appears on vm1, then moves to vm2.
    bed.send(VM1, &[&udp_frame(A, BCAST, 8)]);
    assert_eq!(fdb(&bed, A), Some((VM1, false)));
    bed.send(VM2, &[&udp_frame(A, BCAST, 8)]);
    assert_eq!(fdb(&bed, A), Some((VM2, false)));
    assert_eq!(bed.ctl.fdb("br0").unwrap().counters().moved, 1);
    // B is static behind 192.0.2.3: a frame from B on vm1 changes nothing,
    // and traffic to B keeps going to the tunnel.
    bed.send(VM1, &[&udp_frame(B, BCAST, 8)]);
    assert_eq!(fdb(&bed, B), Some((VX1, true)));
    let out = bed.send(VM2, &[&udp_frame(A, B, 8)]);
    assert_eq!(out.tx.len(), 1);
    assert_eq!(dissect(&out.tx[0].1).2, Ipv4Addr::new(192, 0, 2, 3));
    // Ten idle seconds later A is gone, B (static) stays.
    bed.ctl.tick(bed.now + 12_000_000_000);
    assert_eq!(fdb(&bed, A), None);
    assert_eq!(fdb(&bed, B), Some((VX1, true)));
    // And the workers' view follows: a frame to A floods again.
    let out = bed.send(VM2, &[&udp_frame(B, A, 8)]);
    assert!(out.tx.len() > 1);
}

#[test]
fn a_full_learning_queue_is_counted_not_waited_on() {
    let mut bed = Bed::new();
    // Never drained: fill the channel past its capacity with distinct MACs.
    let n = crate::events::LEARN_QUEUE + 10;
    let snap = bed.ctl.snapshot();
    let frames: Vec<Vec<u8>> = (0..n as u32)
        .map(|i| {
            let b = i.to_be_bytes();
            udp_frame([2, 0, b[0], b[1], b[2], b[3]], BCAST, 1)
        })
        .collect();
    for chunk in frames.chunks(64) {
        let refs: Vec<&[u8]> = chunk.iter().map(|v| &v[..]).collect();
        bed.pool.run(&snap, &mut bed.ws, VM1, 1, &refs, 0);
    }
    assert_eq!(bed.ws.learn_sent, crate::events::LEARN_QUEUE as u64);
    assert_eq!(bed.ws.learn_lost, 10);
}

#[test]
fn a_bridge_without_learning_keeps_only_static_entries() {
    let mut bed = Bed::new();
    // A learned while learning is on, then forgotten when it goes off.
    bed.send(VM1, &[&udp_frame(A, BCAST, 8)]);
    assert_eq!(bed.ctl.fdb("br0").unwrap().iter(0).count(), 1);
    bed.apply(|c| c.bridges[0].learning = false);
    assert_eq!(bed.ctl.fdb("br0").unwrap().iter(0).count(), 0);
    let sent = bed.ws.learn_sent;
    bed.send(VM1, &[&udp_frame(A, BCAST, 8)]);
    assert_eq!(bed.ws.learn_sent, sent, "no learn event at all");
    assert_eq!(bed.ctl.fdb("br0").unwrap().iter(0).count(), 0);
    // Traffic to A keeps flooding: nothing says where it is.
    let out = bed.send(VM2, &[&udp_frame(B, A, 8)]);
    assert!(out.tx.len() > 1);
}

mod suppression {
    use std::net::Ipv6Addr;

    use super::*;
    use crate::wire::icmp::{emit_neighbor_solicit, neighbor_solicit_len, IcmpPacket};
    use crate::wire::ipv6::{Ipv6Packet, Ipv6Repr};
    use xvs_config::OverlayAddrConfig;

    const A_IP: [u8; 4] = [10, 0, 0, 1];
    const B_IP: [u8; 4] = [10, 0, 0, 2];

    fn bed() -> Bed {
        let mut bed = Bed::new();
        bed.apply(|c| {
            c.bridges[0].arp_suppress = true;
            for (vlan, ip, mac) in [
                (0, "10.0.0.2", B),
                (10, "10.0.0.2", B),
                (0, "2001:db8::2", B),
            ] {
                c.addrs.push(
                    OverlayAddrConfig {
                        bridge: "br0".into(),
                        vlan,
                        ip: ip.parse().unwrap(),
                        mac: MacAddr(mac),
                        owner: None,
                    }
                    .into(),
                );
            }
        });
        bed
    }

    #[test]
    fn an_arp_request_for_a_known_ip_is_answered_on_its_port() {
        let mut bed = bed();
        // Padded to the 60-byte minimum, as a NIC would: the padding stays.
        let mut req = arp(A, BCAST, None, 1, A_IP, B_IP);
        req.resize(60, 0);
        let out = bed.send(VM1, &[&req]);
        assert_eq!(out.tx.len(), 1, "answered, never flooded");
        assert_eq!(out.tx[0].0, VM1);
        let mut want = arp(B, A, None, 2, B_IP, A_IP);
        want[32..38].copy_from_slice(&A); // tha: the asker
        want.resize(60, 0);
        assert_eq!(out.tx[0].1, want);
        assert_eq!(bed.ws.arp_suppressed, 1);
        assert_eq!(bed.ws.nd_suppressed, 0);
        // The tx counter of the port saw it.
        assert_eq!(bed.ws.ports[usize::from(VM1)].tx_packets, 1);
    }

    #[test]
    fn a_tagged_request_is_answered_with_its_tag() {
        let mut bed = bed();
        bed.apply(|c| {
            c.ports[0].vlan = VlanMode::Trunk {
                trunks: vec![10],
                native: None,
            }
        });
        let req = arp(A, BCAST, Some(0x2000 | 10), 1, A_IP, B_IP);
        let out = bed.send(VM1, &[&req]);
        assert_eq!(out.tx.len(), 1);
        let mut want = arp(B, A, Some(0x2000 | 10), 2, B_IP, A_IP);
        want[36..42].copy_from_slice(&A);
        assert_eq!(out.tx[0], (VM1, want));
        assert_eq!(bed.ws.arp_suppressed, 1);
    }

    #[test]
    fn what_is_not_answerable_floods_as_before() {
        let mut bed = bed();
        let cases: [(&str, Vec<u8>); 4] = [
            ("unknown IP", arp(A, BCAST, None, 1, A_IP, [10, 0, 0, 9])),
            ("gratuitous", arp(A, BCAST, None, 1, B_IP, B_IP)),
            ("a reply", arp(A, BCAST, None, 2, A_IP, B_IP)),
            (
                "about the asker itself",
                arp(B, BCAST, None, 1, [0; 4], B_IP),
            ),
        ];
        for (what, f) in &cases {
            let out = bed.send(VM1, &[f]);
            assert_eq!(out.tx.len(), 3, "{what}: flooded to vm2 and both VTEPs");
            assert_eq!(out.tx[0].1, *f, "{what}: unchanged");
        }
        assert_eq!(bed.ws.arp_suppressed, 0);
        // From a tunnel: the sender's switch answers, not us.
        let req = arp(A, BCAST, None, 1, A_IP, B_IP);
        let out = bed.send(ETH0, &[&vxlan([192, 0, 2, 2], 42, &req)]);
        assert_eq!(out.tx.len(), 2);
        // A bridge without suppression floods.
        bed.apply(|c| c.bridges[0].arp_suppress = false);
        let out = bed.send(VM1, &[&req]);
        assert_eq!(out.tx.len(), 3);
        assert_eq!(bed.ws.arp_suppressed, 0);
    }

    /// A neighbor solicitation from A (2001:db8::1) for `target`, to its
    /// solicited-node group, with or without the source link-layer option.
    fn ns(target: &str, hop_limit: u8, lladdr: bool) -> Vec<u8> {
        let target: Ipv6Addr = target.parse().unwrap();
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst = crate::wire::icmp::solicited_node(&target);
        let n = neighbor_solicit_len(lladdr);
        let mut f = vec![0u8; 14 + 40 + n];
        f[..6].copy_from_slice(&crate::wire::icmp::ipv6_multicast_mac(&dst).0);
        f[6..12].copy_from_slice(&A);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: 58,
            payload_len: n,
            hop_limit,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut f[14..54]));
        let mac = lladdr.then_some(MacAddr(A));
        emit_neighbor_solicit(&mut f[54..], &src, &dst, &target, mac).unwrap();
        f
    }

    #[test]
    fn a_neighbor_solicitation_for_a_known_ip_gets_an_advertisement() {
        let mut bed = bed();
        for with_option in [true, false] {
            let out = bed.send(VM1, &[&ns("2001:db8::2", 255, with_option)]);
            assert_eq!(out.tx.len(), 1, "answered, never flooded");
            let (port, f) = &out.tx[0];
            assert_eq!(*port, VM1);
            assert_eq!(f.len(), 14 + 40 + 32);
            assert_eq!(&f[..6], &A);
            assert_eq!(&f[6..12], &B);
            assert_eq!(&f[12..14], &[0x86, 0xdd]);
            let target: Ipv6Addr = "2001:db8::2".parse().unwrap();
            let asker: Ipv6Addr = "2001:db8::1".parse().unwrap();
            let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
            assert_eq!(
                (
                    ip.version(),
                    ip.payload_len(),
                    ip.next_header(),
                    ip.hop_limit()
                ),
                (6, 32, 58, 255)
            );
            assert_eq!((ip.src_addr(), ip.dst_addr()), (target, asker));
            let mut body = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
            body.extend_from_slice(&target.octets());
            body.extend_from_slice(&[2, 1]);
            body.extend_from_slice(&B);
            assert_eq!(&f[54..56], &body[..2]);
            assert_eq!(&f[58..], &body[4..], "flags S+O, target, target lladdr");
            assert!(
                IcmpPacket::new_checked(&f[54..])
                    .unwrap()
                    .verify_checksum_v6(&target, &asker),
                "ICMPv6 checksum"
            );
        }
        assert_eq!(bed.ws.nd_suppressed, 2);
        assert_eq!(bed.ws.arp_suppressed, 0);
    }

    #[test]
    fn invalid_or_unknown_solicitations_flood() {
        let mut bed = bed();
        let mut bad_sum = ns("2001:db8::2", 255, true);
        let last = bad_sum.len() - 1;
        bad_sum[last] ^= 1;
        let mut dad = ns("2001:db8::2", 255, false);
        dad[22..38].fill(0); // from ::
        for (what, f) in [
            ("unknown target", ns("2001:db8::9", 255, true)),
            ("hop limit 64", ns("2001:db8::2", 64, true)),
            ("bad checksum", bad_sum),
            ("DAD", dad),
        ] {
            let out = bed.send(VM1, &[&f]);
            assert_eq!(out.tx.len(), 3, "{what}: flooded");
            assert_eq!(out.tx[0].1, f, "{what}: unchanged");
        }
        assert_eq!(bed.ws.nd_suppressed, 0);
    }

    #[test]
    fn malformed_neighbor_discovery_is_dropped_and_counted_with_or_without_suppression() {
        let good = ns("2001:db8::2", 255, true);
        // ICMPv6 at 54, the source link-layer option at 78 (length at 79).
        let bad: [(&str, Vec<u8>); 4] = [
            ("code 1", with_byte(&good, 55, 1)),
            ("zero-length option", with_byte(&good, 79, 0)),
            ("option past the end", with_byte(&good, 79, 2)),
            ("advertisement, code 1", {
                let f = with_byte(&good, 54, 136);
                with_byte(&f, 55, 1)
            }),
        ];
        for suppress in [true, false] {
            let mut bed = bed();
            bed.apply(|c| c.bridges[0].arp_suppress = suppress);
            for (what, f) in &bad {
                let before = bed.drops(DropReason::Malformed(WireError::BadNdp));
                let out = bed.send(VM1, &[f]);
                assert!(out.tx.is_empty(), "{what}: not forwarded");
                assert_eq!(
                    bed.drops(DropReason::Malformed(WireError::BadNdp)),
                    before + 1,
                    "{what}: counted"
                );
                // From a tunnel too: the remote switch forwarded it.
                let out = bed.send(ETH0, &[&vxlan([192, 0, 2, 2], 42, f)]);
                assert!(out.tx.is_empty(), "{what} from a tunnel: not forwarded");
                assert_eq!(
                    bed.drops(DropReason::Malformed(WireError::BadNdp)),
                    before + 2,
                    "{what} from a tunnel: counted"
                );
            }
            assert_eq!(bed.ws.nd_suppressed, 0);
            // The well-formed one is still answered or flooded.
            let out = bed.send(VM1, &[&good]);
            assert_eq!(out.tx.len(), if suppress { 1 } else { 3 });
        }
    }

    fn with_byte(f: &[u8], at: usize, v: u8) -> Vec<u8> {
        let mut f = f.to_vec();
        f[at] = v;
        f
    }
}

/// A VXLAN packet from `src` to `dst` (our VTEP or a group).
fn vxlan_to(src: [u8; 4], dst: [u8; 4], vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut p = vec![0x08, 0, 0, 0];
    p.extend_from_slice(&(vni << 8).to_be_bytes());
    p.extend_from_slice(inner);
    let b = PacketBuilder::ethernet2(PEER2_MAC.0, UPLINK_MAC.0)
        .ipv4(src, dst, 64)
        .udp(50000, 4789);
    let mut v = Vec::new();
    b.write(&mut v, &p).unwrap();
    v
}

const C: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 3];
const PEER9_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);

/// The testbed with 192.0.2.9 resolved, a VTEP no tunnel lists.
fn bed_with_peer9() -> Bed {
    let mut bed = Bed::new();
    bed.ctl.underlay.neigh.learn(
        "192.0.2.9".parse().unwrap(),
        PEER9_MAC,
        0,
        crate::tables::neigh::NeighSource::Static,
    );
    bed.ctl.underlay_updated();
    bed
}

fn fdb_dest(bed: &Bed, m: [u8; 6]) -> Option<(PortNo, u16)> {
    bed.ctl
        .fdb("br0")
        .unwrap()
        .iter(0)
        .find(|e| e.mac == MacAddr(m))
        .map(|e| (e.dest.port, e.dest.remote))
}

fn ip4(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_port_learns_at_most_its_max_macs_and_still_forwards_the_others() {
    let mut bed = Bed::new();
    let mut c = bed.ctl.config().clone();
    c.ports[0].max_macs = Some(0);
    let e = bed.ctl.apply(c).unwrap_err().to_string();
    assert!(
        e.contains("port \"vm1\"") && e.contains("max_macs 0"),
        "{e}"
    );
    bed.apply(|c| c.ports[0].max_macs = Some(2));
    assert_eq!(bed.ctl.config().ports[0].name, "vm1");
    let macs: Vec<[u8; 6]> = (1..=4).map(|i| [0x02, 0xcc, 0, 0, 0, i]).collect();
    for m in &macs {
        let out = bed.send(VM1, &[&udp_frame(*m, BCAST, 16)]);
        assert!(!out.tx.is_empty(), "{m:x?} not forwarded");
    }
    let learned: Vec<bool> = macs.iter().map(|m| fdb_dest(&bed, *m).is_some()).collect();
    assert_eq!(learned, [true, true, false, false]);
    let r = bed.ctl.learn_refusals("vm1");
    assert_eq!((r.port_limit, r.fdb_full), (2, 0));
    // Unicast to a refused MAC floods, as to any unknown one.
    let out = bed.send(VM2, &[&udp_frame(B, macs[3], 16)]);
    assert!(out.tx.iter().any(|(p, _)| *p == VM1));
    // Other ports are not limited by vm1's limit.
    bed.send(VM2, &[&udp_frame(B, BCAST, 16)]);
    assert_eq!(fdb_dest(&bed, B), Some((VM2, NO_REMOTE)));
    // Once learned MACs have aged out, others take their place.
    bed.now += 400_000_000_000;
    bed.ctl.tick(bed.now);
    bed.send(VM1, &[&udp_frame(macs[2], BCAST, 16)]);
    assert!(fdb_dest(&bed, macs[2]).is_some());
}

#[test]
fn a_mac_refused_under_the_old_limit_is_learned_as_soon_as_the_limit_rises() {
    let mut bed = Bed::new();
    bed.apply(|c| c.ports[0].max_macs = Some(1));
    bed.send(VM1, &[&udp_frame(A, BCAST, 16)]);
    let c = [0x02, 0xcc, 0, 0, 0, 9];
    bed.send(VM1, &[&udp_frame(c, BCAST, 16)]);
    assert_eq!(fdb_dest(&bed, c), None);
    // A microsecond later, far inside the interval in which the worker
    // would not report a MAC again: the new limit makes it forget.
    bed.apply(|cfg| cfg.ports[0].max_macs = Some(2));
    bed.send(VM1, &[&udp_frame(c, BCAST, 16)]);
    assert_eq!(fdb_dest(&bed, c), Some((VM1, NO_REMOTE)));
}

#[test]
fn a_full_fdb_refusal_is_counted_against_the_port() {
    let mut bed = Bed::new();
    bed.apply(|c| c.bridges[0].fdb_max_entries = 1);
    bed.send(VM1, &[&udp_frame(A, BCAST, 16)]);
    bed.send(VM2, &[&udp_frame(B, BCAST, 16)]);
    assert_eq!(fdb_dest(&bed, B), None);
    assert_eq!(bed.ctl.learn_refusals("vm2").fdb_full, 1);
    assert_eq!(bed.ctl.learn_refusals("vm1").fdb_full, 0);
}

#[test]
fn storm_control_limits_a_ports_flooded_frames_and_nothing_else() {
    let mut bed = Bed::new();
    let mut c = bed.ctl.config().clone();
    c.ports[0].storm_pps = Some(0);
    let e = bed.ctl.apply(c).unwrap_err().to_string();
    assert!(e.contains("vm1") && e.contains("storm_pps 0"), "{e}");
    bed.apply(|c| c.ports[0].storm_pps = Some(3));
    // B is known (on vm2): unicast to it is never policed.
    bed.send(VM2, &[&udp_frame(B, BCAST, 16)]);
    let bcast = udp_frame(A, BCAST, 16);
    let unknown = udp_frame(A, [0x02, 0xee, 0, 0, 0, 1], 16);
    let multicast = udp_frame(A, [0x01, 0x00, 0x5e, 0, 0, 9], 16);
    let to_b = udp_frame(A, B, 16);
    let frames: Vec<&[u8]> = vec![&bcast, &to_b, &unknown, &to_b, &multicast, &bcast, &unknown];
    bed.send(VM1, &frames);
    assert_eq!(bed.drops(DropReason::StormControl), 2);
    assert_eq!(bed.ws.drops.total(), 2);
    // vm2 has no limit.
    for _ in 0..5 {
        bed.send(VM2, &[&udp_frame(B, BCAST, 16)]);
    }
    assert_eq!(bed.drops(DropReason::StormControl), 2);
    // A second refills the bucket.
    bed.now += 1_000_000_000;
    let out = bed.send(VM1, &[&bcast, &bcast, &bcast, &bcast]);
    assert_eq!(bed.drops(DropReason::StormControl), 3);
    assert!(!out.tx.is_empty());
}

#[test]
fn storm_control_holds_where_a_flood_has_one_output() {
    // With vm1 alone with vm2 (no tunnel), a broadcast has one output,
    // which the exact-match cache would otherwise keep as a plan.
    let mut bed = Bed::new();
    bed.apply(|c| {
        c.tunnels.retain(|t| t.bridge != c.ports[0].bridge);
        c.ports[0].storm_pps = Some(2);
    });
    let bcast = udp_frame(A, BCAST, 16);
    for _ in 0..4 {
        bed.send(VM1, &[&bcast]);
    }
    assert_eq!(bed.drops(DropReason::StormControl), 2);
}

#[test]
fn frames_from_a_group_or_zero_source_mac_are_dropped_from_every_input_and_never_learned() {
    let mut bed = Bed::new();
    let multicast = [0x01, 0x00, 0x5e, 0, 0, 1];
    let zero = [0; 6];
    let bad = [BCAST, multicast, zero];
    for src in bad {
        let out = bed.send(VM1, &[&udp_frame(src, B, 16)]);
        assert!(out.tx.is_empty(), "{src:x?} forwarded from a local port");
        let out = bed.send(ETH0, &[&vxlan([192, 0, 2, 2], 42, &udp_frame(src, B, 16))]);
        assert!(out.tx.is_empty(), "{src:x?} forwarded from a tunnel");
        assert_eq!(fdb_dest(&bed, src), None, "{src:x?} learned");
    }
    assert_eq!(bed.drops(DropReason::BadSrcMac), 6);
    assert_eq!(bed.ws.drops.total(), 6);
    // A unicast source still goes through (and is learned).
    let out = bed.send(VM1, &[&udp_frame(A, BCAST, 16)]);
    assert!(!out.tx.is_empty());
    assert_eq!(fdb_dest(&bed, A), Some((VM1, NO_REMOTE)));
}

#[test]
fn a_learning_tunnel_adds_an_unknown_vtep_as_a_unicast_only_remote() {
    let mut bed = bed_with_peer9();
    let from_c = udp_frame(C, A, 32);
    // Not learning: dropped as today.
    bed.send(ETH0, &[&vxlan([192, 0, 2, 9], 42, &from_c)]);
    assert_eq!(bed.drops(DropReason::UnknownRemote), 1);
    bed.apply(|c| c.tunnels[0].learn_remotes = true);
    let out = bed.send(ETH0, &[&vxlan([192, 0, 2, 9], 42, &from_c)]);
    assert_eq!(out.tx.len(), 2, "delivered to vm1 and vm2");
    assert_eq!(bed.ctl.dynamic_remotes("vx1"), &[ip4("192.0.2.9")]);
    assert_eq!(fdb_dest(&bed, C), Some((VX1, 2)));
    // Unicast to C goes to its VTEP, through the neighbor machinery.
    let out = bed.send(VM1, &[&udp_frame(A, C, 32)]);
    assert_eq!(out.tx.len(), 1);
    let (dmac, _, dst, _, _, _) = dissect(&out.tx[0].1);
    assert_eq!((dst, dmac), (Ipv4Addr::new(192, 0, 2, 9), PEER9_MAC));
    // Broadcast still goes to the configured remotes only.
    let out = bed.send(VM1, &[&udp_frame(A, BCAST, 32)]);
    let mut dsts: Vec<Ipv4Addr> = out
        .tx
        .iter()
        .filter(|(p, _)| *p == ETH0)
        .map(|(_, f)| dissect(f).2)
        .collect();
    dsts.sort();
    assert_eq!(
        dsts,
        vec![Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::new(192, 0, 2, 3)]
    );
    // Its next packet carries the remote's index; nothing changes.
    bed.send(ETH0, &[&vxlan([192, 0, 2, 9], 42, &from_c)]);
    assert_eq!(bed.ctl.dynamic_remotes("vx1"), &[ip4("192.0.2.9")]);
    // Once C ages out, the remote goes with it.
    bed.ctl.tick(bed.now + 400_000_000_000);
    assert_eq!(fdb_dest(&bed, C), None);
    assert!(bed.ctl.dynamic_remotes("vx1").is_empty());
    let snap = bed.ctl.snapshot();
    assert_eq!(snap.tunnels.get(0).unwrap().remotes.len(), 2);
}

#[test]
fn fdb_entries_follow_their_vtep_when_the_remote_list_is_rebuilt() {
    let mut bed = bed_with_peer9();
    bed.apply(|c| c.tunnels[0].learn_remotes = true);
    // B behind configured .3 (index 1), C behind learned .9 (index 2).
    bed.send(ETH0, &[&vxlan([192, 0, 2, 3], 42, &udp_frame(B, A, 8))]);
    bed.send(ETH0, &[&vxlan([192, 0, 2, 9], 42, &udp_frame(C, A, 8))]);
    assert_eq!(fdb_dest(&bed, B), Some((VX1, 1)));
    assert_eq!(fdb_dest(&bed, C), Some((VX1, 2)));
    // .2 leaves the flood list: .3 becomes 0, .9 becomes 1.
    bed.apply(|c| c.tunnels[0].remotes = vec![ip4("192.0.2.3")]);
    assert_eq!(fdb_dest(&bed, B), Some((VX1, 0)));
    assert_eq!(fdb_dest(&bed, C), Some((VX1, 1)));
    for (m, want) in [(B, [192, 0, 2, 3]), (C, [192, 0, 2, 9])] {
        let out = bed.send(VM1, &[&udp_frame(A, m, 8)]);
        assert_eq!(out.tx.len(), 1);
        assert_eq!(dissect(&out.tx[0].1).2, Ipv4Addr::from(want));
    }
    // .3 leaves too and .9 is configured now: B goes, C follows .9.
    bed.apply(|c| c.tunnels[0].remotes = vec![ip4("192.0.2.2"), ip4("192.0.2.9")]);
    assert_eq!(fdb_dest(&bed, B), None);
    assert_eq!(fdb_dest(&bed, C), Some((VX1, 1)));
    assert!(bed.ctl.dynamic_remotes("vx1").is_empty());
}

#[test]
fn static_entries_may_name_any_vtep_of_the_tunnel() {
    use xvs_config::StaticFdbConfig;
    let mut bed = bed_with_peer9();
    bed.apply(|c| {
        c.fdb.push(
            StaticFdbConfig {
                bridge: "br0".into(),
                vlan: 0,
                mac: MacAddr(C),
                port: "vx1".into(),
                remote: Some(ip4("192.0.2.9")),
            }
            .into(),
        )
    });
    assert_eq!(bed.ctl.dynamic_remotes("vx1"), &[ip4("192.0.2.9")]);
    assert_eq!(fdb_dest(&bed, C), Some((VX1, 2)));
    let out = bed.send(VM1, &[&udp_frame(A, C, 8)]);
    assert_eq!(out.tx.len(), 1);
    assert_eq!(dissect(&out.tx[0].1).2, Ipv4Addr::new(192, 0, 2, 9));
    // A VTEP the tunnel knows now: its packets are accepted though the
    // tunnel does not learn, and it still gets no floods.
    bed.send(ETH0, &[&vxlan([192, 0, 2, 9], 42, &udp_frame(C, A, 8))]);
    assert_eq!(bed.drops(DropReason::UnknownRemote), 0);
    // Entry gone: the remote goes at the next tick.
    bed.apply(|c| c.fdb.clear());
    bed.ctl.tick(bed.now);
    assert!(bed.ctl.dynamic_remotes("vx1").is_empty());
    assert_eq!(bed.ctl.snapshot().tunnels.get(0).unwrap().remotes.len(), 2);
}

#[test]
fn a_multicast_tunnel_floods_once_to_the_group_and_unicasts_to_learned_vteps() {
    let mut bed = bed_with_peer9();
    bed.apply(|c| c.tunnels[0].remotes = vec![ip4("239.1.1.1")]);
    let out = bed.send(VM1, &[&udp_frame(A, BCAST, 32)]);
    let enc: Vec<&Vec<u8>> = out
        .tx
        .iter()
        .filter(|(p, _)| *p == ETH0)
        .map(|(_, f)| f)
        .collect();
    assert_eq!(enc.len(), 1, "one copy, to the group");
    let (dmac, src, dst, _, dport, _) = dissect(enc[0]);
    assert_eq!(dmac, MacAddr([1, 0, 0x5e, 1, 1, 1]));
    assert_eq!(&enc[0][6..12], &UPLINK_MAC.0, "source: the uplink");
    assert_eq!(
        (src, dst, dport),
        (
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(239, 1, 1, 1),
            4789
        )
    );
    // A peer's flood to the group: accepted, its VTEP learned.
    let from_c = udp_frame(C, BCAST, 32);
    let out = bed.send(
        ETH0,
        &[&vxlan_to([192, 0, 2, 9], [239, 1, 1, 1], 42, &from_c)],
    );
    assert_eq!(out.tx.len(), 2, "to vm1 and vm2, never back to the group");
    assert!(out.tx.iter().all(|(p, _)| *p != ETH0));
    assert_eq!(fdb_dest(&bed, C), Some((VX1, 1)));
    // The reply goes unicast to that VTEP.
    let out = bed.send(VM1, &[&udp_frame(A, C, 32)]);
    assert_eq!(out.tx.len(), 1);
    let (dmac, _, dst, _, _, _) = dissect(&out.tx[0].1);
    assert_eq!((dst, dmac), (Ipv4Addr::new(192, 0, 2, 9), PEER9_MAC));
    // The group as a source is never a VTEP.
    bed.send(ETH0, &[&vxlan([239, 1, 1, 1], 42, &from_c)]);
    assert_eq!(bed.drops(DropReason::UnknownRemote), 1);
}

mod lookup_on_miss {
    use super::*;
    use crate::control::Miss;
    use xvs_config::{LookupConfig, LookupEntryConfig, LookupProviderConfig, MissAction};

    fn bed(provider: LookupProviderConfig, miss: MissAction) -> Bed {
        let mut bed = Bed::new();
        bed.apply(|c| {
            c.bridges[0].learning = false;
            c.bridges[0].arp_suppress = true;
            c.bridges[0].lookup = Some(LookupConfig::new(provider, miss));
        });
        let tx = bed.ctl.upcall_sender();
        bed.ws.set_upcalls(tx);
        bed
    }

    fn direct() -> LookupProviderConfig {
        LookupProviderConfig::Direct {
            vtep: "192.0.2.3".parse().unwrap(),
        }
    }

    #[test]
    fn an_unknown_mac_is_looked_up_and_installed() {
        let mut bed = bed(direct(), MissAction::Drop);
        // Five frames to B: one upcall, all dropped meanwhile.
        let f = udp_frame(A, B, 8);
        let out = bed.send(VM1, &[&f, &f, &f, &f, &f]);
        assert!(out.tx.is_empty());
        assert_eq!(bed.drops(DropReason::LookupMiss), 5);
        assert_eq!(bed.ws.upcalls, 1, "repeats within 100 ms are filtered");
        assert!(bed.ctl.process_upcalls(bed.now).misses.is_empty());
        let e = bed
            .ctl
            .fdb("br0")
            .unwrap()
            .get(0, MacAddr(B), bed.now)
            .unwrap();
        assert_eq!((e.dest.port, e.dest.remote, e.is_static), (VX1, 1, false));
        assert!(bed.ctl.is_lookup_entry("br0", 0, MacAddr(B)));
        // The next frame goes straight to 192.0.2.3.
        let out = bed.send(VM1, &[&f]);
        assert_eq!(out.tx.len(), 1);
        assert_eq!(dissect(&out.tx[0].1).2, Ipv4Addr::new(192, 0, 2, 3));
        // A config change keeps it although learning is off.
        bed.apply(|c| c.bridges[0].fdb_aging_secs = 100);
        assert!(bed
            .ctl
            .fdb("br0")
            .unwrap()
            .get(0, MacAddr(B), bed.now)
            .is_some());
        // It ages like a learned entry.
        bed.ctl.tick(bed.now + 200_000_000_000);
        assert!(bed
            .ctl
            .fdb("br0")
            .unwrap()
            .get(0, MacAddr(B), bed.now)
            .is_none());
        assert!(!bed.ctl.is_lookup_entry("br0", 0, MacAddr(B)));
    }

    #[test]
    fn a_held_frame_goes_out_once_the_answer_is_in() {
        let mut bed = bed(direct(), MissAction::Hold);
        let f = udp_frame(A, B, 8);
        let out = bed.send(VM1, &[&f]);
        assert!(out.tx.is_empty());
        assert_eq!(out.held.len(), 1);
        let (meta, bytes) = out.held[0].clone();
        assert_eq!((meta.port, meta.hold_ns), (VM1, 100_000_000));
        assert_eq!(bytes, f, "held as it came");
        assert_eq!(bed.ws.held, 1);
        // Run again before the answer: held again.
        let snap = bed.ctl.snapshot();
        let again = bed.pool.rerun(&snap, &mut bed.ws, meta, bed.now, &bytes);
        assert_eq!(again.held.len(), 1);
        bed.ctl.process_upcalls(bed.now);
        let snap = bed.ctl.snapshot();
        let out = bed.pool.rerun(&snap, &mut bed.ws, meta, bed.now, &bytes);
        assert_eq!(out.tx.len(), 1);
        assert_eq!(dissect(&out.tx[0].1).2, Ipv4Addr::new(192, 0, 2, 3));
        assert_eq!(bed.ws.upcalls, 1);
    }

    #[test]
    fn flood_on_miss_forwards_while_the_lookup_runs() {
        let mut bed = bed(direct(), MissAction::Flood);
        let out = bed.send(VM1, &[&udp_frame(A, B, 8)]);
        assert_eq!(out.tx.len(), 3);
        assert_eq!(bed.ws.upcalls, 1);
        assert_eq!(bed.drops(DropReason::LookupMiss), 0);
    }

    #[test]
    fn an_unknown_address_is_looked_up_then_answered_locally() {
        let provider = LookupProviderConfig::Static {
            entries: vec![LookupEntryConfig {
                vlan: 0,
                mac: MacAddr(B),
                vtep: None,
                ip: Some("10.0.0.2".parse().unwrap()),
            }],
        };
        let mut bed = bed(provider, MissAction::Flood);
        let mut req = vec![];
        req.extend_from_slice(&BCAST);
        req.extend_from_slice(&A);
        req.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        req.extend_from_slice(&A);
        req.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        let out = bed.send(VM1, &[&req]);
        assert_eq!(out.tx.len(), 3, "not known yet: flooded");
        assert_eq!(bed.ws.upcalls, 1);
        bed.ctl.process_upcalls(bed.now);
        assert_eq!(
            bed.ctl.lookup_addrs("br0"),
            vec![(0, "10.0.0.2".parse().unwrap(), MacAddr(B))]
        );
        let out = bed.send(VM1, &[&req]);
        assert_eq!(out.tx.len(), 1, "answered from the looked-up address");
        assert_eq!(bed.ws.arp_suppressed, 1);
    }

    #[test]
    fn external_misses_are_handed_out() {
        let mut bed = bed(LookupProviderConfig::External, MissAction::Flood);
        bed.send(VM1, &[&udp_frame(A, B, 8)]);
        let misses = bed.ctl.process_upcalls(bed.now).misses;
        assert_eq!(
            misses,
            vec![Miss {
                bridge: "br0".into(),
                vlan: 0,
                kind: MissKind::Mac(MacAddr(B)),
                port: "vm1".into(),
                src_vtep: None,
            }]
        );
        // From a tunnel, the sender's VTEP comes along.
        bed.send(
            ETH0,
            &[&vxlan(
                [192, 0, 2, 2],
                42,
                &udp_frame(B, [2, 0, 0, 0, 0, 9], 8),
            )],
        );
        let misses = bed.ctl.process_upcalls(bed.now).misses;
        assert_eq!(misses[0].src_vtep, Some("192.0.2.2".parse().unwrap()));
        assert_eq!(misses[0].port, "vx1");
    }

    #[test]
    fn a_frame_for_a_mac_that_is_not_here_invalidates_the_senders_entry() {
        use crate::control::invalidate::Invalidation;
        let mut bed = bed(direct(), MissAction::Flood);
        // Our lookup put B behind 192.0.2.3.
        bed.send(VM1, &[&udp_frame(A, B, 8)]);
        bed.ctl.process_upcalls(bed.now);
        // 192.0.2.2 sends us a frame for B: B is not here, tell it, once.
        let f = vxlan([192, 0, 2, 2], 42, &udp_frame(C, B, 8));
        bed.send(ETH0, &[&f]);
        let work = bed.ctl.process_upcalls(bed.now);
        let want = Invalidation {
            vni: 42,
            vlan: 0,
            mac: MacAddr(B),
        };
        assert_eq!(work.invalidations, vec![(ip4("192.0.2.2"), want)]);
        bed.now += 200_000_000;
        bed.send(ETH0, &[&f]);
        assert!(
            bed.ctl.process_upcalls(bed.now).invalidations.is_empty(),
            "rate-limited"
        );
        // A frame for a MAC nobody knows, from a VTEP: also not here.
        bed.send(
            ETH0,
            &[&vxlan(
                [192, 0, 2, 3],
                42,
                &udp_frame(C, [2, 0, 0, 0, 0, 0x42], 8),
            )],
        );
        let work = bed.ctl.process_upcalls(bed.now);
        assert_eq!(work.invalidations.len(), 1);
        assert_eq!(work.invalidations[0].0, ip4("192.0.2.3"));

        // The other side: a message from a remote drops the looked-up
        // entry; from a stranger, or for a static entry, nothing.
        let msg = want.encode();
        assert_eq!(
            bed.ctl.invalidation_received(ip4("198.51.100.1"), &msg),
            None
        );
        assert!(fdb_dest(&bed, B).is_some());
        assert_eq!(
            bed.ctl.invalidation_received(ip4("192.0.2.3"), &msg),
            Some(("br0".into(), MacAddr(B)))
        );
        assert_eq!(fdb_dest(&bed, B), None);
        assert!(!bed.ctl.is_lookup_entry("br0", 0, MacAddr(B)));
        bed.apply(|c| {
            c.fdb.push(
                xvs_config::StaticFdbConfig {
                    bridge: "br0".into(),
                    vlan: 0,
                    mac: MacAddr(B),
                    port: "vx1".into(),
                    remote: Some(ip4("192.0.2.3")),
                }
                .into(),
            )
        });
        assert_eq!(bed.ctl.invalidation_received(ip4("192.0.2.3"), &msg), None);
        assert!(fdb_dest(&bed, B).is_some());
    }

    #[test]
    fn answers_must_be_reachable_by_a_tunnel_port_of_the_bridge() {
        let mut c = testkit::config();
        let check = |c: &mut Config, provider, want: &str| {
            c.bridges[0].lookup = Some(LookupConfig {
                provider,
                miss: MissAction::Flood,
                hold_ms: 100,
            });
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        };
        check(
            &mut c,
            LookupProviderConfig::Direct {
                vtep: "2001:db8::9".parse().unwrap(),
            },
            "2001:db8::9: the bridge has no tunnel port",
        );
        check(
            &mut c,
            LookupProviderConfig::Multicast {
                group: "239.1.1.1".parse().unwrap(),
            },
            "not the group of a tunnel port",
        );
        check(
            &mut c,
            LookupProviderConfig::Multicast {
                group: "192.0.2.2".parse().unwrap(),
            },
            "not a multicast address",
        );
    }

    #[test]
    fn an_answer_may_name_a_vtep_the_tunnel_does_not_list() {
        let mut b = bed_with_peer9();
        b.apply(|c| {
            c.bridges[0].learning = false;
            c.bridges[0].lookup = Some(LookupConfig {
                provider: LookupProviderConfig::Direct {
                    vtep: "192.0.2.9".parse().unwrap(),
                },
                miss: MissAction::Drop,
                hold_ms: 100,
            });
        });
        let tx = b.ctl.upcall_sender();
        b.ws.set_upcalls(tx);
        let f = udp_frame(A, B, 8);
        assert!(b.send(VM1, &[&f]).tx.is_empty());
        b.ctl.process_upcalls(b.now);
        assert_eq!(b.ctl.dynamic_remotes("vx1"), &[ip4("192.0.2.9")]);
        assert_eq!(fdb_dest(&b, B), Some((VX1, 2)));
        let out = b.send(VM1, &[&f]);
        assert_eq!(out.tx.len(), 1);
        let (dmac, _, dst, _, _, _) = dissect(&out.tx[0].1);
        assert_eq!((dst, dmac), (Ipv4Addr::new(192, 0, 2, 9), PEER9_MAC));
        // Floods still go to the configured remotes only.
        let out = b.send(VM1, &[&udp_frame(A, BCAST, 8)]);
        assert_eq!(out.tx.iter().filter(|(p, _)| *p == ETH0).count(), 2);
    }
}

mod every_drop;
mod flow_counters;
mod mirrors;
mod offers;
mod pmtu;
mod port_security;
mod trace;
