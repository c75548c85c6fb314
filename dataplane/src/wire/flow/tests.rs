//! Tests of [`extract`] and of the whole tunnel decode chain on real frames:
//! fixtures, a malformed corpus (every truncation, every wrong length field),
//! random input, and a cross-check against etherparse.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::stats::DropReason;
use crate::wire::{geneve, ipv6, vxlan, GenevePacket, VxlanPacket};
use xvs_types::{ip_to_u128, MacAddr};

/// VXLAN in IPv4, built by hand from RFC 791/768/7348:
/// 02:..:01 -> 02:..:02, 192.0.2.1 -> 192.0.2.2, UDP 49152 -> 4789 (checksum
/// 0), VNI 42, inner 02:..:aa -> 02:..:bb, 10.0.0.1 -> 10.0.0.2 ICMP echo
/// request id 0x12 seq 1 "ping".
const VXLAN_V4: [u8; 96] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, // eth
    0x45, 0x00, 0x00, 0x52, 0x01, 0x02, 0x40, 0x00, 0x40, 0x11, 0xb5, 0x95, 0xc0,
    0x00, // ipv4
    0x02, 0x01, 0xc0, 0x00, 0x02, 0x02, // ipv4 addrs
    0xc0, 0x00, 0x12, 0xb5, 0x00, 0x3e, 0x00, 0x00, // udp
    0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, // vxlan
    0x02, 0x00, 0x00, 0x00, 0x00, 0xbb, 0x02, 0x00, 0x00, 0x00, 0x00, 0xaa, 0x08, 0x00, // eth
    0x45, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x14, 0xa7, 0x0a,
    0x00, // ipv4
    0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, // ipv4 addrs
    0x08, 0x00, 0x19, 0x1c, 0x00, 0x12, 0x00, 0x01, 0x70, 0x69, 0x6e, 0x67, // icmp
];

/// IPv4 with 8 bytes of options (record route + padding), DSCP EF, TCP SYN
/// 40000 -> 443.
const IPV4_OPTIONS_TCP: [u8; 62] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, // eth
    0x47, 0xb8, 0x00, 0x30, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x16, 0x04, 0x0a,
    0x01, // ipv4
    0x01, 0x01, 0x0a, 0x02, 0x02, 0x02, // ipv4 addrs
    0x07, 0x07, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, // options
    0x9c, 0x40, 0x01, 0xbb, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02, // tcp
    0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00,
];

const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC2: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn eth(et: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = MAC2.to_vec();
    v.extend_from_slice(&MAC1);
    v.extend_from_slice(&et.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Ethernet + IPv6 with hop-by-hop and destination options + UDP.
fn ipv6_ext_frame() -> Vec<u8> {
    eth(ethertype::IPV6, &ipv6::tests::two_ext_headers())
}

/// Geneve (hand-built fixture with one critical option) + the VXLAN
/// fixture's inner frame, carried by an etherparse-built Eth/IPv4/UDP.
fn geneve_frame() -> Vec<u8> {
    let mut payload = geneve::tests::GENEVE[..20].to_vec();
    payload.extend_from_slice(&VXLAN_V4[50..]);
    let b = etherparse::PacketBuilder::ethernet2(MAC1, MAC2)
        .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
        .udp(50000, geneve::DEFAULT_PORT);
    let mut out = Vec::new();
    b.write(&mut out, &payload).unwrap();
    out
}

/// The tunnel decode chain the tunnel layer will run: outer extract, UDP,
/// VXLAN or Geneve (critical class 0x0102 known), inner extract.
fn decap(frame: &[u8]) -> core::result::Result<(u32, FlowKey), DropReason> {
    let mut k = FlowKey::default();
    let info = extract(frame, &mut k)?;
    let start = usize::from(info.l4_offset);
    let l4 = frame
        .get(start..start + usize::from(info.l4_len))
        .ok_or(WireError::Truncated)?;
    let udp = UdpPacket::new_checked(l4)?;
    let (vni, inner) = match udp.dst_port() {
        vxlan::DEFAULT_PORT => {
            let v = VxlanPacket::new_checked(udp.into_payload())?;
            (v.vni(), v.into_payload())
        }
        geneve::DEFAULT_PORT => {
            let g = GenevePacket::new_checked(udp.into_payload())?;
            g.check_options(|class, _| class == 0x0102)?;
            if g.protocol() != ethertype::TEB {
                return Err(WireError::GeneveBadProtocol.into());
            }
            (g.vni(), g.into_payload())
        }
        _ => return Err(DropReason::NotTunnel),
    };
    let mut ik = FlowKey::default();
    extract(inner, &mut ik)?;
    Ok((vni, ik))
}

fn v4(a: [u8; 4]) -> u128 {
    ip_to_u128(IpAddr::V4(Ipv4Addr::from(a)))
}

#[test]
fn vxlan_frame() {
    let mut k = FlowKey::default();
    k.set_in_port(7);
    k.set_tun_id(0xdead);
    k.set_tp_src(1); // stale field from a previous packet
    let info = extract(&VXLAN_V4, &mut k).unwrap();
    assert_eq!(
        info,
        PacketInfo {
            l3_offset: 14,
            l4_offset: 34,
            vlan_offset: 0,
            l4_len: 62,
            is_fragment: false
        }
    );
    assert_eq!(k.in_port(), 7);
    assert_eq!(k.tun_id(), 0xdead);
    assert_eq!(k.vlan_tci(), 0);
    assert_eq!(k.dl_src(), MacAddr(MAC1));
    assert_eq!(k.dl_dst(), MacAddr(MAC2));
    assert_eq!(k.eth_type(), ethertype::IPV4);
    assert_eq!(k.nw_src(), v4([192, 0, 2, 1]));
    assert_eq!(k.nw_dst(), v4([192, 0, 2, 2]));
    assert_eq!(k.ip_proto(), proto::UDP);
    assert_eq!((k.tp_src(), k.tp_dst()), (49152, 4789));
    assert!(Ipv4Packet::new_checked(&VXLAN_V4[14..])
        .unwrap()
        .verify_checksum());

    let (vni, ik) = decap(&VXLAN_V4).unwrap();
    assert_eq!(vni, 42);
    assert_eq!(ik.nw_src(), v4([10, 0, 0, 1]));
    assert_eq!(ik.ip_proto(), proto::ICMP);
    assert_eq!((ik.tp_src(), ik.tp_dst()), (8, 0));
    assert_eq!(ik.in_port(), 0);
}

#[test]
fn ipv4_options_frame() {
    let mut k = FlowKey::default();
    let info = extract(&IPV4_OPTIONS_TCP, &mut k).unwrap();
    assert_eq!((info.l4_offset, info.l4_len), (42, 20));
    assert_eq!(k.ip_tos(), 0xb8);
    assert_eq!(k.ip_proto(), proto::TCP);
    assert_eq!((k.tp_src(), k.tp_dst()), (40000, 443));
    let ip = Ipv4Packet::new_checked(&IPV4_OPTIONS_TCP[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.options(), &[7, 7, 4, 0, 0, 0, 0, 0]);
}

#[test]
fn ipv6_ext_headers_frame() {
    let f = ipv6_ext_frame();
    let mut k = FlowKey::default();
    let info = extract(&f, &mut k).unwrap();
    assert_eq!((info.l3_offset, info.l4_offset, info.l4_len), (14, 78, 12));
    assert_eq!(k.eth_type(), ethertype::IPV6);
    assert_eq!(
        k.nw_src(),
        u128::from("fe80::1".parse::<Ipv6Addr>().unwrap())
    );
    assert_eq!(
        k.nw_dst(),
        u128::from("ff02::1".parse::<Ipv6Addr>().unwrap())
    );
    assert_eq!(k.ip_tos(), 0x01);
    assert_eq!(k.ip_proto(), proto::UDP);
    assert_eq!((k.tp_src(), k.tp_dst()), (1000, 2000));
}

#[test]
fn geneve_frame_decap() {
    let f = geneve_frame();
    let (vni, ik) = decap(&f).unwrap();
    assert_eq!(vni, 0xabcd);
    assert_eq!(ik.dl_dst(), MacAddr([2, 0, 0, 0, 0, 0xbb]));
    assert_eq!(ik.nw_dst(), v4([10, 0, 0, 2]));
}

#[test]
fn vlan_arp_and_unknown_ethertypes() {
    // Tagged (PCP 5, DEI 1, VID 100) IPv4 from the VXLAN fixture.
    let mut f = VXLAN_V4[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00, 0xb0, 0x64]);
    f.extend_from_slice(&VXLAN_V4[12..]);
    let mut k = FlowKey::default();
    let info = extract(&f, &mut k).unwrap();
    assert_eq!(
        (info.vlan_offset, info.l3_offset, info.l4_offset),
        (12, 18, 38)
    );
    assert_eq!(k.vlan_tci(), 0x8000 | (5 << 12) | 100);
    assert_eq!(k.vlan_vid(), Some(100));
    assert_eq!(k.eth_type(), ethertype::IPV4);
    assert_eq!((k.tp_src(), k.tp_dst()), (49152, 4789));

    // A second tag, or an S-tag.
    for tpid in [[0x81, 0x00], [0x88, 0xa8]] {
        let mut g = f.clone();
        g[16..18].copy_from_slice(&tpid);
        assert_eq!(extract(&g, &mut k), Err(WireError::TooManyVlanTags));
    }
    let mut g = f.clone();
    g[12..14].copy_from_slice(&[0x88, 0xa8]);
    assert_eq!(extract(&g, &mut k), Err(WireError::TooManyVlanTags));

    // ARP request 10.0.0.1 -> who has 10.0.0.2.
    let arp = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0,
        0, 0, 10, 0, 0, 2,
    ];
    let f = eth(ethertype::ARP, &arp);
    let info = extract(&f, &mut k).unwrap();
    assert_eq!((info.l3_offset, info.l4_offset), (14, 0));
    assert_eq!(k.nw_src(), v4([10, 0, 0, 1]));
    assert_eq!(k.nw_dst(), v4([10, 0, 0, 2]));
    assert_eq!(k.ip_proto(), 1);
    assert_eq!(extract(&f[..40], &mut k), Err(WireError::Truncated));
    let mut bad = f.clone();
    bad[18] = 8;
    assert_eq!(extract(&bad, &mut k), Err(WireError::BadArp));

    // LLDP: L2 only, no error.
    let f = eth(0x88cc, &[1, 2, 3]);
    let info = extract(&f, &mut k).unwrap();
    assert_eq!(k.eth_type(), 0x88cc);
    assert_eq!(k.nw_src(), 0);
    assert_eq!(info.l4_offset, 0);
}

#[test]
fn fragments() {
    // First fragment of a UDP datagram: the UDP length exceeds the fragment.
    let mut f = VXLAN_V4.to_vec();
    f[20] = 0x20; // MF
    f[38..40].copy_from_slice(&1000u16.to_be_bytes());
    let mut k = FlowKey::default();
    let info = extract(&f, &mut k).unwrap();
    assert!(info.is_fragment);
    assert_eq!((k.tp_src(), k.tp_dst()), (49152, 4789));
    // Later fragment: no ports.
    f[21] = 0x10;
    let info = extract(&f, &mut k).unwrap();
    assert!(info.is_fragment);
    assert_eq!(k.ip_proto(), proto::UDP);
    assert_eq!((k.tp_src(), k.tp_dst()), (0, 0));

    // IPv6: turn the destination options header into fragment + 8 bytes.
    let mut f = ipv6_ext_frame();
    f[54] = proto::IPV6_FRAG;
    f[62..70].copy_from_slice(&[proto::IPV6_OPTS, 0, 0x00, 0x01, 0, 0, 0, 1]);
    f[70..78].copy_from_slice(&[proto::UDP, 0, 1, 4, 0, 0, 0, 0]);
    let info = extract(&f, &mut k).unwrap();
    assert!(info.is_fragment);
    assert_eq!(
        (k.ip_proto(), k.tp_src(), k.tp_dst()),
        (proto::UDP, 1000, 2000)
    );
    f[65] = 0x08; // offset 8: later fragment
    let info = extract(&f, &mut k).unwrap();
    assert!(info.is_fragment);
    assert_eq!((info.l4_offset, info.l4_len), (70, 20));
    assert_eq!(
        (k.ip_proto(), k.tp_src(), k.tp_dst()),
        (proto::IPV6_OPTS, 0, 0)
    );
}

/// Every truncation of every corpus frame is an error, never a panic.
#[test]
fn every_truncation_is_an_error() {
    let frames: Vec<(&str, Vec<u8>)> = vec![
        ("vxlan", VXLAN_V4.to_vec()),
        ("ipv4 options", IPV4_OPTIONS_TCP.to_vec()),
        ("ipv6 ext", ipv6_ext_frame()),
        ("geneve", geneve_frame()),
    ];
    for (name, f) in &frames {
        let mut k = FlowKey::default();
        assert!(extract(f, &mut k).is_ok(), "{name}");
        for n in 0..f.len() {
            let cut = &f[..n];
            let err = extract(cut, &mut k).expect_err(name);
            let l3 = n.saturating_sub(14);
            let want = match u16::from_be_bytes([f[12], f[13]]) {
                _ if n < 14 => WireError::Truncated,
                ethertype::IPV4 if l3 < 20 => WireError::Truncated,
                ethertype::IPV4 if l3 < usize::from(f[14] & 0xf) * 4 => WireError::BadIhl,
                ethertype::IPV6 if l3 < 40 => WireError::Truncated,
                _ => WireError::BadIpLength,
            };
            assert_eq!(err, want, "{name} cut at {n}");
        }
    }
    // The decode chain too: the tunnel views below the outer IP layer.
    for f in [VXLAN_V4.to_vec(), geneve_frame()] {
        assert!(decap(&f).is_ok());
        for n in 0..f.len() {
            assert!(decap(&f[..n]).is_err(), "cut at {n}");
        }
        // Truncating inside the outer UDP payload while fixing the length
        // fields reaches the VXLAN/Geneve/inner views.
        for n in 42..f.len() {
            let mut g = f[..n].to_vec();
            g[16..18].copy_from_slice(&((n - 14) as u16).to_be_bytes());
            g[38..40].copy_from_slice(&((n - 34) as u16).to_be_bytes());
            assert!(decap(&g).is_err(), "inner cut at {n}");
        }
    }
}

#[test]
fn wrong_length_fields_give_typed_errors() {
    let with = |base: &[u8], at: usize, bytes: &[u8]| {
        let mut f = base.to_vec();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        let mut k = FlowKey::default();
        extract(&f, &mut k).err()
    };
    let v = &VXLAN_V4[..];
    assert_eq!(with(v, 14, &[0x65]), Some(WireError::BadIpVersion));
    assert_eq!(with(v, 14, &[0x44]), Some(WireError::BadIhl));
    assert_eq!(with(v, 16, &[0x00, 0x53]), Some(WireError::BadIpLength));
    assert_eq!(with(v, 16, &[0x00, 0x13]), Some(WireError::BadIpLength));
    assert_eq!(with(v, 38, &[0x00, 0x3f]), Some(WireError::BadUdpLength));
    assert_eq!(with(v, 38, &[0x00, 0x07]), Some(WireError::BadUdpLength));
    assert_eq!(with(v, 12, &[0x86, 0xdd]), Some(WireError::BadIpVersion));

    let t = &IPV4_OPTIONS_TCP[..];
    assert_eq!(with(t, 14, &[0x4f]), Some(WireError::BadIhl));
    assert_eq!(with(t, 54, &[0x40]), Some(WireError::BadTcpOffset));
    assert_eq!(with(t, 54, &[0x60]), Some(WireError::BadTcpOffset));
    // 20 bytes of IP payload cut to 19 by the total length: TCP truncated.
    assert_eq!(with(t, 16, &[0x00, 0x2f]), Some(WireError::Truncated));

    let s = ipv6_ext_frame();
    assert_eq!(with(&s, 18, &[0x00, 0x25]), Some(WireError::BadIpLength));
    assert_eq!(with(&s, 14, &[0x40]), Some(WireError::BadIpVersion));
    assert_eq!(with(&s, 63, &[0x05]), Some(WireError::BadIpv6ExtHeader));
    assert_eq!(
        with(&s, 18, &[0x00, 0x10]),
        Some(WireError::BadIpv6ExtHeader)
    );
    assert_eq!(with(&s, 82, &[0x00, 0x0d]), Some(WireError::BadUdpLength));

    // VXLAN without the I flag.
    let mut f = VXLAN_V4.to_vec();
    f[42] = 0x00;
    assert_eq!(decap(&f).err(), Some(WireError::VxlanNoIFlag.into()));
    f[42] = 0xf7;
    assert_eq!(decap(&f).err(), Some(WireError::VxlanNoIFlag.into()));
    f[42] = 0xff; // reserved bits ignored
    assert_eq!(decap(&f).map(|(vni, _)| vni), Ok(42));

    // Geneve (header at 42: ver/optlen 42, flags 43, protocol 44..46, VNI
    // 46..50, option class 50..52, type 52, length 53): unknown critical
    // option, options longer than the packet, an option longer than the
    // option area, version, protocol.
    let g = geneve_frame();
    let mut f = g.clone();
    f[50..52].copy_from_slice(&[0x09, 0x99]);
    assert_eq!(
        decap(&f).err(),
        Some(WireError::GeneveCriticalOption.into())
    );
    f[52] = 0x03; // same option, not critical: skipped
    assert!(decap(&f).is_ok());
    let mut f = g.clone();
    f[42] = 0x3f;
    assert_eq!(decap(&f).err(), Some(WireError::GeneveBadOptions.into()));
    let mut f = g.clone();
    f[53] = 0x1f;
    assert_eq!(decap(&f).err(), Some(WireError::GeneveBadOptions.into()));
    let mut f = g.clone();
    f[42] = 0x83;
    assert_eq!(decap(&f).err(), Some(WireError::GeneveBadVersion.into()));
    let mut f = g.clone();
    f[44..46].copy_from_slice(&[0x08, 0x00]);
    assert_eq!(decap(&f).err(), Some(WireError::GeneveBadProtocol.into()));
}

fn fixtures() -> Vec<Vec<u8>> {
    vec![
        VXLAN_V4.to_vec(),
        IPV4_OPTIONS_TCP.to_vec(),
        ipv6_ext_frame(),
        geneve_frame(),
    ]
}

proptest! {
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut k = FlowKey::default();
        let _ = extract(&data, &mut k);
    }

    /// Random bytes behind a plausible Ethernet header reach the deeper
    /// parsers.
    #[test]
    fn random_l3_never_panics(et in prop::sample::select(vec![0x0800u16, 0x86dd, 0x0806, 0x8100]),
                              first in prop::sample::select(vec![0x45u8, 0x46, 0x4f, 0x60, 0x00]),
                              mut rest in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Some(b) = rest.first_mut() {
            *b = first;
        }
        let f = eth(et, &rest);
        let mut k = FlowKey::default();
        if let Ok(info) = extract(&f, &mut k) {
            prop_assert!(usize::from(info.l4_offset) + usize::from(info.l4_len) <= f.len());
        }
    }

    /// Mutating any byte of a valid frame never panics the decode chain.
    #[test]
    fn mutated_fixtures_never_panic(which in 0usize..4, at in any::<prop::sample::Index>(), v in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut f = fixtures().swap_remove(which);
        let i = at.index(f.len());
        f[i] = v;
        let n = cut.index(f.len() + 1);
        let _ = decap(&f[..n]);
        let mut k = FlowKey::default();
        if let Ok(info) = extract(&f[..n], &mut k) {
            prop_assert!(usize::from(info.l4_offset) + usize::from(info.l4_len) <= n);
        }
    }

    /// An independent parser must agree with ours on frames it builds.
    #[test]
    fn agrees_with_etherparse(
        src_mac in any::<[u8; 6]>(), dst_mac in any::<[u8; 6]>(),
        vlan in proptest::option::of((0u16..4096, 0u8..8)),
        v6 in any::<bool>(), ext in any::<bool>(),
        src4 in any::<[u8; 4]>(), dst4 in any::<[u8; 4]>(),
        src6 in any::<[u8; 16]>(), dst6 in any::<[u8; 16]>(),
        l4 in 0u8..3, sport in any::<u16>(), dport in any::<u16>(),
        tos in any::<u8>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        use etherparse::{IpHeaders, IpNumber, Ipv6Extensions, Ipv6Header, Ipv6RawExtHeader, NetSlice, PacketBuilder, SlicedPacket, TransportSlice, LinkSlice, LinkExtSlice};
        let ip = if v6 {
            let mut exts = Ipv6Extensions::default();
            if ext {
                exts.hop_by_hop_options = Some(Ipv6RawExtHeader::new_raw(IpNumber(0), &[1, 4, 0, 0, 0, 0]).unwrap());
                exts.destination_options = Some(Ipv6RawExtHeader::new_raw(IpNumber(0), &[1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap());
            }
            IpHeaders::Ipv6(Ipv6Header {
                traffic_class: tos,
                source: src6,
                destination: dst6,
                hop_limit: 64,
                ..Default::default()
            }, exts)
        } else {
            let mut h = etherparse::Ipv4Header::new(0, 64, IpNumber(0), src4, dst4).unwrap();
            h.dscp = etherparse::IpDscp::try_new(tos >> 2).unwrap();
            h.ecn = etherparse::IpEcn::try_new(tos & 3).unwrap();
            IpHeaders::Ipv4(h, Default::default())
        };
        let base = PacketBuilder::ethernet2(src_mac, dst_mac);
        let mut frame = Vec::new();
        macro_rules! finish {
            ($step:expr) => {{
                let s = $step.ip(ip.clone());
                match l4 {
                    0 => s.udp(sport, dport).write(&mut frame, &payload).unwrap(),
                    1 => s.tcp(sport, dport, 1, 1000).write(&mut frame, &payload).unwrap(),
                    _ => if v6 {
                        s.icmpv6_echo_request(sport, dport).write(&mut frame, &payload).unwrap()
                    } else {
                        s.icmpv4_echo_request(sport, dport).write(&mut frame, &payload).unwrap()
                    },
                }
            }};
        }
        match vlan {
            Some((vid, pcp)) => finish!(base.vlan(etherparse::VlanHeader::Single(etherparse::SingleVlanHeader {
                pcp: etherparse::VlanPcp::try_new(pcp).unwrap(),
                drop_eligible_indicator: vid % 2 == 0,
                vlan_id: etherparse::VlanId::try_new(vid).unwrap(),
                ether_type: etherparse::EtherType(0),
            }))),
            None => finish!(base),
        }

        let mut k = FlowKey::default();
        let info = extract(&frame, &mut k).unwrap();
        let sp = SlicedPacket::from_ethernet(&frame).unwrap();

        let Some(LinkSlice::Ethernet2(e)) = &sp.link else { panic!("no ethernet") };
        prop_assert_eq!(k.dl_src(), MacAddr(e.source()));
        prop_assert_eq!(k.dl_dst(), MacAddr(e.destination()));
        match sp.link_exts.first() {
            Some(LinkExtSlice::Vlan(v)) => {
                prop_assert_eq!(k.vlan_vid(), Some(v.vlan_identifier().value()));
                prop_assert_eq!((k.vlan_tci() >> 12) & 7, u16::from(v.priority_code_point().value()));
                prop_assert_eq!(k.eth_type(), v.ether_type().0);
                prop_assert_eq!(info.vlan_offset, 12);
            }
            _ => {
                prop_assert_eq!(k.vlan_tci(), 0);
                prop_assert_eq!(k.eth_type(), e.ether_type().0);
            }
        }
        let l4_start = match &sp.net {
            Some(NetSlice::Ipv4(s)) => {
                let h = s.header();
                prop_assert_eq!(k.nw_src(), v4(h.source()));
                prop_assert_eq!(k.nw_dst(), v4(h.destination()));
                prop_assert_eq!(k.ip_proto(), h.protocol().0);
                prop_assert_eq!(k.ip_tos(), tos);
                s.payload().payload
            }
            Some(NetSlice::Ipv6(s)) => {
                let h = s.header();
                prop_assert_eq!(k.nw_src(), u128::from(h.source_addr()));
                prop_assert_eq!(k.nw_dst(), u128::from(h.destination_addr()));
                prop_assert_eq!(k.ip_proto(), s.payload().ip_number.0);
                prop_assert_eq!(k.ip_tos(), h.traffic_class());
                s.payload().payload
            }
            _ => panic!("no IP layer"),
        };
        // Same L4 bytes: offset and length agree.
        let ours = &frame[usize::from(info.l4_offset)..][..usize::from(info.l4_len)];
        prop_assert_eq!(ours, l4_start);
        match &sp.transport {
            Some(TransportSlice::Udp(u)) => {
                prop_assert_eq!((k.tp_src(), k.tp_dst()), (u.source_port(), u.destination_port()));
            }
            Some(TransportSlice::Tcp(t)) => {
                prop_assert_eq!((k.tp_src(), k.tp_dst()), (t.source_port(), t.destination_port()));
            }
            Some(TransportSlice::Icmpv4(i)) => {
                prop_assert_eq!((k.tp_src(), k.tp_dst()), (u16::from(i.type_u8()), u16::from(i.code_u8())));
            }
            Some(TransportSlice::Icmpv6(i)) => {
                prop_assert_eq!((k.tp_src(), k.tp_dst()), (u16::from(i.type_u8()), u16::from(i.code_u8())));
            }
            other => panic!("unexpected transport {other:?}"),
        }
    }
}
