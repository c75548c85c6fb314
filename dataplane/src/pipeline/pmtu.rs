//! Path MTU discovery for what does not fit: a frame too big for its
//! egress (a local port's MTU, or the uplink's once the outer header is
//! on) is dropped, and its sender is told the MTU that fits, as a router
//! would: ICMP "fragmentation needed" (RFC 1191) for IPv4 with DF set,
//! ICMPv6 "packet too big" (RFC 8201) for IPv6. RFC 7348 forbids
//! fragmenting the outer packet, so without this a guest whose MTU exceeds
//! the overlay's would see its large packets vanish (a PMTU black hole).
//!
//! The error is built in the dropped frame's own buffer and goes back out
//! of the port the frame came in by, like an answered ARP request; its
//! source address is the original destination's, as Linux's tunnels do
//! (`iptunnel_pmtud_build_icmp`): the switch has no address of its own in
//! the overlay, and the sender's stack matches the error to its flow by
//! the quoted header, whatever the source. Errors are rate limited per
//! worker (RFC 1812 §4.3.2.8, RFC 4443 §2.4(f)).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;
use crate::wire::checksum::checksum;
use crate::wire::icmp::{icmpv4_type, icmpv6_type, IcmpPacket};
use crate::wire::ip::proto;
use crate::wire::{ipv4, ipv6, EthernetRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr};

/// ICMP "destination unreachable" code 4: fragmentation needed and DF set.
const FRAG_NEEDED: u8 = 4;
/// The ICMP header of both errors: type, code, checksum, 4 bytes (unused
/// and next-hop MTU, or the MTU as 32 bits).
const ICMP_LEN: usize = 8;
/// How much of the offending packet an error quotes: as much as fits the
/// minimum datagram every host accepts (RFC 1812 §4.3.2.3: 576 bytes for
/// IPv4; RFC 4443 §2.4(c): the IPv6 minimum MTU, 1280).
const V4_MAX: usize = 576;
const V6_MAX: usize = 1280;
const TTL: u8 = 64;

/// At most this many errors per worker per window.
pub(super) const BUDGET: u32 = 100;
pub(super) const WINDOW_NS: u64 = 100_000_000;

/// Rewrites `frame`, an untagged Ethernet frame that was too big for an
/// egress whose IP MTU is `mtu`, into the ICMP error its sender is due.
/// `false` (the frame unchanged) when none is due: not IP, IPv4 without DF
/// or not a first fragment, an ICMP error itself, a source that is not a
/// unicast host, or no headroom for the headers.
pub(super) fn too_big_reply(frame: &mut Frame<'_>, mtu: u16) -> bool {
    let data = frame.data();
    let Ok(eth) = EthernetFrame::new_checked(data).and_then(|e| EthernetRepr::parse(&e)) else {
        return false;
    };
    let ip_len = data.len().saturating_sub(ethernet::HEADER_LEN);
    match eth.ethertype {
        ethertype::IPV4 => v4(frame, &eth, mtu, ip_len),
        ethertype::IPV6 => v6(frame, &eth, mtu, ip_len),
        _ => false,
    }
}

fn v4(frame: &mut Frame<'_>, eth: &EthernetRepr, mtu: u16, ip_len: usize) -> bool {
    let ip = frame.data().get(ethernet::HEADER_LEN..).unwrap_or_default();
    let Ok(p) = Ipv4Packet::new_checked(ip) else {
        return false;
    };
    if p.check().is_err() || !p.dont_frag() || p.frag_offset() != 0 {
        return false;
    }
    let (src, dst) = (p.src_addr(), p.dst_addr());
    if !unicast_v4(src) || is_icmp_error(p.protocol(), ip.get(p.header_len()), false) {
        return false;
    }
    let quoted = usize::from(p.total_len())
        .min(ip_len)
        .min(V4_MAX - ipv4::HEADER_LEN - ICMP_LEN);
    let grow = ipv4::HEADER_LEN + ICMP_LEN;
    if frame.push_front(grow).is_none() {
        return false;
    }
    let at = ethernet::HEADER_LEN + grow;
    frame.truncate(at + quoted);
    let data = frame.data_mut();
    reply_eth(data, eth, ethertype::IPV4);
    let r = Ipv4Repr {
        src_addr: dst,
        dst_addr: src,
        protocol: proto::ICMP,
        payload_len: ICMP_LEN + quoted,
        ttl: TTL,
        tos: 0,
        dont_frag: false,
        ident: 0,
    };
    // Unchecked: the bytes are still the old ones; the length is `at` + quoted.
    r.emit(&mut Ipv4Packet::new_unchecked(
        &mut data[ethernet::HEADER_LEN..],
    ));
    let icmp = &mut data[ethernet::HEADER_LEN + ipv4::HEADER_LEN..];
    icmp[..ICMP_LEN].copy_from_slice(&[
        icmpv4_type::DEST_UNREACHABLE,
        FRAG_NEEDED,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    let c = checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    true
}

fn v6(frame: &mut Frame<'_>, eth: &EthernetRepr, mtu: u16, ip_len: usize) -> bool {
    let ip = frame.data().get(ethernet::HEADER_LEN..).unwrap_or_default();
    let Ok(p) = Ipv6Packet::new_checked(ip) else {
        return false;
    };
    if p.check().is_err() {
        return false;
    }
    let (src, dst) = (p.src_addr(), p.dst_addr());
    if !unicast_v6(&src) || is_icmp_error(p.next_header(), ip.get(ipv6::HEADER_LEN), true) {
        return false;
    }
    let quoted = (ipv6::HEADER_LEN + usize::from(p.payload_len()))
        .min(ip_len)
        .min(V6_MAX - ipv6::HEADER_LEN - ICMP_LEN);
    let grow = ipv6::HEADER_LEN + ICMP_LEN;
    if frame.push_front(grow).is_none() {
        return false;
    }
    let at = ethernet::HEADER_LEN + grow;
    frame.truncate(at + quoted);
    let data = frame.data_mut();
    reply_eth(data, eth, ethertype::IPV6);
    let r = Ipv6Repr {
        src_addr: dst,
        dst_addr: src,
        next_header: proto::ICMPV6,
        payload_len: ICMP_LEN + quoted,
        hop_limit: TTL,
        traffic_class: 0,
        flow_label: 0,
    };
    r.emit(&mut Ipv6Packet::new_unchecked(
        &mut data[ethernet::HEADER_LEN..],
    ));
    let icmp = &mut data[ethernet::HEADER_LEN + ipv6::HEADER_LEN..];
    icmp[..4].copy_from_slice(&[icmpv6_type::PACKET_TOO_BIG, 0, 0, 0]);
    icmp[4..8].copy_from_slice(&u32::from(mtu).to_be_bytes());
    let Ok(mut p) = IcmpPacket::new_checked(icmp) else {
        return false;
    };
    p.fill_checksum_v6(&dst, &src);
    true
}

/// The reply's Ethernet header: back to the sender, from the MAC it sent to.
fn reply_eth(data: &mut [u8], orig: &EthernetRepr, ethertype: u16) {
    let r = EthernetRepr {
        src_addr: orig.dst_addr,
        dst_addr: orig.src_addr,
        ethertype,
    };
    r.emit(&mut EthernetFrame::new_unchecked(data));
}

fn unicast_v4(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_multicast() || a.is_broadcast())
}

fn unicast_v6(a: &Ipv6Addr) -> bool {
    !(a.is_unspecified() || a.is_multicast())
}

/// No error about an error (RFC 1122 §3.2.2, RFC 4443 §2.4(e)): ICMPv4
/// types 3, 4, 5, 11, 12; ICMPv6 types below 128.
fn is_icmp_error(protocol: u8, first: Option<&u8>, v6: bool) -> bool {
    match (v6, protocol, first) {
        (false, proto::ICMP, Some(&t)) => matches!(t, 3 | 4 | 5 | 11 | 12),
        (true, proto::ICMPV6, Some(&t)) => t < 128,
        (_, proto::ICMP | proto::ICMPV6, None) => true,
        _ => false,
    }
}
