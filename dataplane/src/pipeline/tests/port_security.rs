//! Port security at the pipeline: each rule of `policy::port_security`,
//! one frame that passes it and one that breaks it, on vm1 given MAC `A`
//! and 10.0.0.1 / 2001:db8::1.

use std::net::Ipv6Addr;

use etherparse::Icmpv6Type;

use super::*;
use crate::policy::port_security::eui64_link_local;

const OTHER: [u8; 6] = [0x02, 0xdd, 0, 0, 0, 9];

fn secured() -> Bed {
    let mut bed = Bed::new();
    bed.apply(|c| {
        let p = &mut c.ports[0];
        assert_eq!(&*p.name, "vm1");
        p.allowed_macs = vec![MacAddr(A)];
        p.allowed_ips = vec![ip4("10.0.0.1"), "2001:db8::1".parse().unwrap()];
    });
    bed
}

/// Sends `f` from vm1 and says what happened to it: `None` if it was
/// forwarded, else the one drop it counted.
fn verdict(bed: &mut Bed, f: &[u8]) -> Option<&'static str> {
    let before = bed.ws.drops.clone();
    let out = bed.send(VM1, &[f]);
    let counted: Vec<&str> = DropReason::all()
        .filter(|&r| bed.ws.drops.get(r) != before.get(r))
        .map(DropReason::name)
        .collect();
    match (out.tx.is_empty(), counted.as_slice()) {
        (false, []) => None,
        (true, [r]) => Some(r),
        other => panic!("neither forwarded nor one drop: {other:?}"),
    }
}

fn udp4(src_mac: [u8; 6], src: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, BCAST)
        .ipv4(src, [255, 255, 255, 255], 64)
        .udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, &[0; 8]).unwrap();
    v
}

fn udp6(src: Ipv6Addr) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(A, BCAST)
        .ipv6(
            src.octets(),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets(),
            64,
        )
        .udp(1000, 2000);
    let mut v = Vec::new();
    b.write(&mut v, &[0; 8]).unwrap();
    v
}

/// A neighbor solicitation (135) or advertisement (136) from `src` about
/// `target`, with a link-layer address option (source for 135, target for
/// 136) when `lladdr` is given.
fn nd(typ: u8, src: Ipv6Addr, target: Ipv6Addr, lladdr: Option<[u8; 6]>) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let b = PacketBuilder::ethernet2(A, [0x33, 0x33, 0, 0, 0, 1])
        .ipv6(src.octets(), all_nodes.octets(), 255)
        .icmpv6(Icmpv6Type::Unknown {
            type_u8: typ,
            code_u8: 0,
            bytes5to8: if typ == 136 { [0x20, 0, 0, 0] } else { [0; 4] },
        });
    let mut body = target.octets().to_vec();
    if let Some(m) = lladdr {
        body.extend_from_slice(&[if typ == 136 { 2 } else { 1 }, 1]);
        body.extend_from_slice(&m);
    }
    let mut v = Vec::new();
    b.write(&mut v, &body).unwrap();
    v
}

/// An ARP packet from vm1 whose Ethernet source is `A` and whose sender
/// MAC is `sha`.
fn arp_from(op: u16, sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = arp(A, BCAST, None, op, spa, tpa);
    f[22..28].copy_from_slice(&sha);
    f
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn the_source_mac_must_be_the_ports() {
    let mut bed = secured();
    assert_eq!(verdict(&mut bed, &udp4(A, [10, 0, 0, 1], 1, 2)), None);
    assert_eq!(
        verdict(&mut bed, &udp4(OTHER, [10, 0, 0, 1], 1, 2)),
        Some("spoofed_mac")
    );
    // A frame that is not IP or ARP is checked by its MAC only.
    let mut lldp_like = udp_frame(A, BCAST, 16);
    lldp_like[12..14].copy_from_slice(&[0x88, 0xb5]);
    assert_eq!(verdict(&mut bed, &lldp_like), None);
    lldp_like[6..12].copy_from_slice(&OTHER);
    assert_eq!(verdict(&mut bed, &lldp_like), Some("spoofed_mac"));
    // The spoofed MAC was never learned.
    assert_eq!(fdb_dest(&bed, OTHER), None);
}

#[test]
fn ipv4_sources_must_be_the_ports_but_dhcp_may_come_from_nowhere() {
    let mut bed = secured();
    assert_eq!(
        verdict(&mut bed, &udp4(A, [10, 0, 0, 2], 1, 2)),
        Some("spoofed_ip")
    );
    assert_eq!(verdict(&mut bed, &udp4(A, [0, 0, 0, 0], 68, 67)), None);
    assert_eq!(
        verdict(&mut bed, &udp4(A, [0, 0, 0, 0], 1000, 2000)),
        Some("spoofed_ip")
    );
}

#[test]
fn ipv6_sources_must_be_the_ports_its_mac_link_local_or_unspecified_for_icmp() {
    let mut bed = secured();
    assert_eq!(verdict(&mut bed, &udp6(v6("2001:db8::1"))), None);
    assert_eq!(verdict(&mut bed, &udp6(eui64_link_local(MacAddr(A)))), None);
    assert_eq!(
        verdict(&mut bed, &udp6(v6("2001:db8::2"))),
        Some("spoofed_ip")
    );
    assert_eq!(
        verdict(&mut bed, &udp6(eui64_link_local(MacAddr(OTHER)))),
        Some("spoofed_ip")
    );
    assert_eq!(
        verdict(&mut bed, &udp6(Ipv6Addr::UNSPECIFIED)),
        Some("spoofed_ip")
    );
    // Duplicate address detection: a solicitation from ::, without option.
    let dad = nd(135, Ipv6Addr::UNSPECIFIED, v6("2001:db8::1"), None);
    assert_eq!(verdict(&mut bed, &dad), None);
}

#[test]
fn arp_must_claim_the_ports_mac_and_ip() {
    let mut bed = secured();
    let own = arp_from(1, A, [10, 0, 0, 1], [10, 0, 0, 2]);
    assert_eq!(verdict(&mut bed, &own), None);
    // RFC 5227 probe.
    assert_eq!(
        verdict(&mut bed, &arp_from(1, A, [0; 4], [10, 0, 0, 1])),
        None
    );
    // Gratuitous ARP, and a reply, for another VM's address.
    let garp = arp_from(1, A, [10, 0, 0, 2], [10, 0, 0, 2]);
    assert_eq!(verdict(&mut bed, &garp), Some("spoofed_ip"));
    let reply = arp_from(2, A, [10, 0, 0, 2], [10, 0, 0, 3]);
    assert_eq!(verdict(&mut bed, &reply), Some("spoofed_ip"));
    // Our IP, but another MAC as the sender's.
    let poison = arp_from(2, OTHER, [10, 0, 0, 1], [10, 0, 0, 3]);
    assert_eq!(verdict(&mut bed, &poison), Some("spoofed_mac"));
}

#[test]
fn neighbor_discovery_must_claim_the_ports_addresses() {
    let mut bed = secured();
    let me = v6("2001:db8::1");
    assert_eq!(verdict(&mut bed, &nd(136, me, me, Some(A))), None);
    assert_eq!(
        verdict(&mut bed, &nd(136, me, v6("2001:db8::2"), Some(A))),
        Some("spoofed_ip")
    );
    assert_eq!(
        verdict(&mut bed, &nd(136, me, me, Some(OTHER))),
        Some("spoofed_mac")
    );
    // A solicitation asks about any target but must give its own MAC.
    assert_eq!(
        verdict(&mut bed, &nd(135, me, v6("2001:db8::2"), Some(A))),
        None
    );
    assert_eq!(
        verdict(&mut bed, &nd(135, me, v6("2001:db8::2"), Some(OTHER))),
        Some("spoofed_mac")
    );
}

#[test]
fn macs_alone_leave_ips_unchecked_and_other_ports_are_not_secured() {
    let mut bed = Bed::new();
    bed.apply(|c| c.ports[0].allowed_macs = vec![MacAddr(A)]);
    assert_eq!(verdict(&mut bed, &udp4(A, [10, 9, 9, 9], 1, 2)), None);
    assert_eq!(
        verdict(&mut bed, &udp4(OTHER, [10, 9, 9, 9], 1, 2)),
        Some("spoofed_mac")
    );
    let out = bed.send(VM2, &[&udp4(OTHER, [10, 9, 9, 9], 1, 2)]);
    assert!(!out.tx.is_empty());
}

#[test]
fn bad_port_security_config_is_refused_naming_the_value() {
    let mut bed = Bed::new();
    let refused = |bed: &mut Bed, f: fn(&mut Config)| {
        let mut c = bed.ctl.config().clone();
        f(&mut c);
        bed.ctl.apply(c).unwrap_err().to_string()
    };
    let e = refused(&mut bed, |c| c.ports[0].allowed_macs = vec![MacAddr(BCAST)]);
    assert!(e.contains("vm1") && e.contains("ff:ff:ff:ff:ff:ff"), "{e}");
    let e = refused(&mut bed, |c| {
        c.ports[0].allowed_macs = vec![MacAddr(A)];
        c.ports[0].allowed_ips = vec![ip4("224.0.0.1")];
    });
    assert!(e.contains("224.0.0.1"), "{e}");
    let e = refused(&mut bed, |c| c.ports[0].allowed_ips = vec![ip4("10.0.0.1")]);
    assert!(e.contains("allowed_ips needs allowed_macs"), "{e}");
}
