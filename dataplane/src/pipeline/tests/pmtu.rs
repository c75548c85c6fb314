//! Frames too big for their egress: dropped (`too_big`, on the egress),
//! and a sender on a local port told the MTU that fits, by an ICMP error
//! built from the frame (`pipeline::pmtu`), parsed back with etherparse.

use etherparse::{Icmpv4Type, Icmpv6Type, IpNumber};

use super::*;
use crate::wire::checksum::checksum;

/// A UDP/IPv4 frame of `ip_len` IP bytes from A (vm1) to `dst`, DF as told.
fn v4(dst: [u8; 6], ip_len: usize, df: bool) -> Vec<u8> {
    let mut f = udp_frame(A, dst, ip_len - 28);
    f[20] = if df { 0x40 } else { 0 };
    f[24..26].copy_from_slice(&[0, 0]);
    let c = checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

fn v6(dst: [u8; 6], ip_len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(A, dst)
        .ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        )
        .udp(1000, 2000)
        .write(&mut v, &vec![0x5a; ip_len - 48])
        .unwrap();
    v
}

/// A bed whose uplink MTU is 1500 (VXLAN over IPv4: 1450 inside) and
/// where B sits behind vx1's first remote, or (`local`) on vm2.
fn bed(local: bool) -> Bed {
    let mut bed = Bed::new();
    bed.apply(|c| {
        c.uplink.as_mut().unwrap().mtu = 1500;
        let (port, remote) = if local {
            ("vm2", None)
        } else {
            ("vx1", Some("192.0.2.2"))
        };
        c.fdb.push(b_on("br0", port, remote));
    });
    bed
}

/// A static FDB entry: B on `port` of `bridge` (at `remote`, a tunnel's).
fn b_on(
    bridge: &str,
    port: &str,
    remote: Option<&str>,
) -> xvs_config::Shared<xvs_config::StaticFdbConfig> {
    let remote = remote.map(|r| r.parse().unwrap());
    xvs_config::StaticFdbConfig::new(bridge, MacAddr(B), port, remote).into()
}

/// The ICMPv4 error in `out`, checked: back to A from B's MAC and address,
/// a valid checksum, the quoted header the sender's.
fn frag_needed(out: &[u8], sent: &[u8]) -> u16 {
    let p = SlicedPacket::from_ethernet(out).expect("an Ethernet frame");
    let Some(etherparse::LinkSlice::Ethernet2(e)) = p.link else {
        panic!("not Ethernet")
    };
    assert_eq!((e.destination(), e.source()), (A, B));
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    assert_eq!((h.source, h.destination), ([10, 0, 0, 2], [10, 0, 0, 1]));
    assert_eq!(h.protocol, IpNumber::ICMP);
    assert!(
        usize::from(h.total_len) <= 576,
        "RFC 1812: at most 576 bytes"
    );
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!("not ICMP")
    };
    assert_eq!(checksum(ip.payload().payload), 0, "ICMP checksum");
    let Icmpv4Type::DestinationUnreachable(u) = icmp.icmp_type() else {
        panic!("{:?}", icmp.icmp_type())
    };
    let etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu } = u else {
        panic!("{u:?}")
    };
    let quoted = icmp.payload();
    assert_eq!(
        quoted,
        &sent[14..14 + quoted.len()],
        "quotes the sender's packet"
    );
    next_hop_mtu
}

#[test]
fn ipv4_with_df_too_big_for_the_tunnel_gets_frag_needed_with_1450() {
    let mut bed = bed(false);
    let ok = v4(B, 1450, true);
    let out = bed.send(VM1, &[&ok]);
    assert_eq!((out.tx.len(), out.tx[0].0), (1, ETH0), "1450 fits");
    let big = v4(B, 1451, true);
    let out = bed.send(VM1, &[&big]);
    assert_eq!(out.tx.len(), 1);
    assert_eq!(out.tx[0].0, VM1, "the error goes back to the sender");
    assert_eq!(frag_needed(&out.tx[0].1, &big), 1450);
    assert_eq!(
        bed.ws.ports[usize::from(VX1)].drops.get(DropReason::TooBig),
        1
    );
    assert_eq!(bed.ws.ports[usize::from(VM1)].icmp_too_big, 1);
}

#[test]
fn too_big_for_a_local_port_reports_the_port_mtu() {
    let mut bed = bed(true);
    let big = v4(B, 1501, true);
    let out = bed.send(VM1, &[&big]);
    assert_eq!((out.tx.len(), out.tx[0].0), (1, VM1));
    assert_eq!(frag_needed(&out.tx[0].1, &big), 1500);
    assert_eq!(
        bed.ws.ports[usize::from(VM2)].drops.get(DropReason::TooBig),
        1
    );
}

#[test]
fn ipv4_without_df_and_broadcasts_are_only_dropped() {
    let mut bed = bed(false);
    let out = bed.send(VM1, &[&v4(B, 1451, false)]);
    assert!(out.tx.is_empty());
    assert_eq!(bed.drops(DropReason::TooBig), 1);
    let out = bed.send(VM1, &[&v4(BCAST, 1600, true)]);
    assert!(out.tx.iter().all(|(p, _)| *p != VM1), "{:?}", out.tx.len());
    assert_eq!(bed.ws.ports[usize::from(VM1)].icmp_too_big, 0);
}

#[test]
fn ipv6_too_big_for_an_ipv6_tunnel_gets_packet_too_big_with_1430() {
    let mut bed = Bed::new();
    bed.apply(|c| {
        c.uplink.as_mut().unwrap().mtu = 1500;
        c.fdb.push(b_on("br6", "vx6", Some("2001:db8::2")));
    });
    let big = v6(B, 1431);
    let out = bed.send(VM4, &[&v6(B, 1430), &big]);
    assert_eq!(out.tx.len(), 2);
    assert_eq!(out.tx[0].0, ETH0, "1430 fits in 1500 less 70");
    let (port, f) = &out.tx[1];
    assert_eq!(*port, VM4);
    let p = SlicedPacket::from_ethernet(f).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!("not IPv6")
    };
    let h = ip.header().to_header();
    assert_eq!(h.destination, big[22..38]);
    assert_eq!(h.source, big[38..54]);
    assert!(usize::from(h.payload_length) + 40 <= 1280);
    let Some(TransportSlice::Icmpv6(icmp)) = p.transport else {
        panic!("not ICMPv6")
    };
    assert_eq!(icmp.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1430 });
    let c = icmp
        .header()
        .icmp_type
        .calc_checksum(h.source, h.destination, icmp.payload())
        .unwrap();
    assert_eq!(icmp.checksum(), c, "ICMPv6 checksum");
    assert_eq!(icmp.payload(), &big[14..14 + icmp.payload().len()]);
}

#[test]
fn errors_are_rate_limited_per_worker() {
    let mut bed = bed(false);
    let big = v4(B, 1451, true);
    let batch: Vec<&[u8]> = (0..60).map(|_| &big[..]).collect();
    let sent: usize = (0..3).map(|_| bed.send(VM1, &batch).tx.len()).sum();
    assert_eq!(
        sent,
        crate::pipeline::pmtu::BUDGET as usize,
        "one window's budget"
    );
    assert_eq!(bed.drops(DropReason::TooBig), 180);
    bed.now += crate::pipeline::pmtu::WINDOW_NS;
    assert_eq!(bed.send(VM1, &[&big]).tx.len(), 1, "a new window");
}
