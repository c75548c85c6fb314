//! ARP and IPv6 neighbor discovery suppression (illumos' overlay ARP
//! proxy, EVPN's ARP suppression): a request for an address the bridge's
//! overlay address table knows is answered by the switch itself, on the
//! port it came in on, instead of being flooded to every VTEP.
//!
//! The request's own buffer becomes the reply (rewritten in place, its
//! 802.1Q tag left as it came, the length changed only for ND), so the
//! path allocates nothing and copies nothing. Only what a host would
//! answer is answered: an ARP request (op 1) that is not gratuitous, or a
//! neighbor solicitation that passes RFC 4861 §7.1.1 (hop limit 255, code
//! 0, checksum) from a unicast source (DAD probes from `::` are left to
//! the owner). A request about the requester's own MAC is not answered
//! (it would look like an address conflict to it). Anything else is
//! [`Verdict::Pass`] and takes the normal path.

use std::net::Ipv6Addr;

use crate::frame::Frame;
use crate::tables::addr::AddrTable;
use crate::wire::arp::{self, ArpPacket};
use crate::wire::ethernet::{ethertype, EthernetFrame};
use crate::wire::flow::PacketInfo;
use crate::wire::icmp::{
    emit_neighbor_advert, icmpv6_type, na_flag, parse_ndp, IcmpPacket, NdpKind, NEIGHBOR_ADVERT_LEN,
};
use crate::wire::ip::proto;
use crate::wire::ipv6::{self, Ipv6Packet};
use xvs_types::{ipv4_to_u128, FlowKey};

/// What suppression made of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Not an answerable request: forward it as usual.
    Pass,
    /// A request for an address the table does not have (128-bit form):
    /// forward it as usual; lookup on miss may ask about it.
    Miss(u128),
    /// The frame is now the ARP reply: send it back out of its port.
    ArpReply,
    /// The frame is now the neighbor advertisement.
    NdReply,
}

/// Could this frame be a request suppression answers? A check of the flow
/// key only, so other traffic pays one compare.
#[inline]
pub(super) fn candidate(key: &FlowKey) -> bool {
    match key.eth_type() {
        // The key holds the low byte of the ARP opcode.
        ethertype::ARP => key.ip_proto() == arp::op::REQUEST as u8,
        ethertype::IPV6 => {
            key.ip_proto() == proto::ICMPV6
                && key.tp_src() == u16::from(icmpv6_type::NEIGHBOR_SOLICIT)
        }
        _ => false,
    }
}

/// Answers the request in `frame` from `addrs` (VLAN `vlan`) if it can.
pub(super) fn answer(
    frame: &mut Frame<'_>,
    key: &FlowKey,
    info: &PacketInfo,
    addrs: &AddrTable,
    vlan: u16,
) -> Verdict {
    match key.eth_type() {
        ethertype::ARP => answer_arp(frame, usize::from(info.l3_offset), addrs, vlan),
        ethertype::IPV6 => answer_ns(frame, info, addrs, vlan),
        _ => Verdict::Pass,
    }
}

fn answer_arp(frame: &mut Frame<'_>, l3: usize, addrs: &AddrTable, vlan: u16) -> Verdict {
    let data = frame.data_mut();
    let asker = EthernetFrame::new_unchecked(&*data).src_addr();
    let Some(Ok(mut arp)) = data.get_mut(l3..).map(ArpPacket::new_checked) else {
        return Verdict::Pass;
    };
    if arp.operation() != arp::op::REQUEST {
        return Verdict::Pass;
    }
    let (sha, spa, tpa) = (
        arp.sender_hw_addr(),
        arp.sender_proto_addr(),
        arp.target_proto_addr(),
    );
    if spa == tpa {
        // Gratuitous: an announcement, not a question.
        return Verdict::Pass;
    }
    let Some(mac) = addrs.lookup(vlan, ipv4_to_u128(tpa)) else {
        return Verdict::Miss(ipv4_to_u128(tpa));
    };
    if mac == sha || mac == asker {
        return Verdict::Pass;
    }
    arp.set_operation(arp::op::REPLY);
    arp.set_sender_hw_addr(mac);
    arp.set_sender_proto_addr(tpa);
    arp.set_target_hw_addr(sha);
    // For an RFC 5227 probe (from 0.0.0.0) this is 0.0.0.0 too, as the
    // owner's own answer would be.
    arp.set_target_proto_addr(spa);
    let mut eth = EthernetFrame::new_unchecked(data);
    eth.set_dst_addr(asker);
    eth.set_src_addr(mac);
    Verdict::ArpReply
}

fn answer_ns(frame: &mut Frame<'_>, info: &PacketInfo, addrs: &AddrTable, vlan: u16) -> Verdict {
    let (l3, l4) = (usize::from(info.l3_offset), usize::from(info.l4_offset));
    // Extension headers in front of a solicitation are legal but unheard
    // of; the reply is built without them.
    if l4 != l3 + ipv6::HEADER_LEN {
        return Verdict::Pass;
    }
    let data = frame.data();
    let asker = EthernetFrame::new_unchecked(data).src_addr();
    let Some(Ok(ip)) = data.get(l3..).map(Ipv6Packet::new_checked) else {
        return Verdict::Pass;
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if ip.hop_limit() != 255 || src.is_unspecified() || src.is_multicast() {
        return Verdict::Pass;
    }
    let icmp = ip.payload();
    let valid = IcmpPacket::new_checked(icmp).is_ok_and(|p| p.verify_checksum_v6(&src, &dst));
    let target = match parse_ndp(icmp) {
        Ok(Some(nd)) if valid && nd.kind == NdpKind::Solicit => nd.target,
        _ => return Verdict::Pass,
    };
    if target.is_multicast() {
        return Verdict::Pass;
    }
    let Some(mac) = addrs.lookup(vlan, u128::from(target)) else {
        return Verdict::Miss(u128::from(target));
    };
    if mac == asker {
        return Verdict::Pass;
    }
    let want = l4 + NEIGHBOR_ADVERT_LEN;
    if frame.len() > want {
        frame.truncate(want);
    } else if !frame.extend(want - frame.len()) {
        return Verdict::Pass;
    }
    write_advert(frame.data_mut(), l3, asker, mac, &src, &target)
}

/// Rewrites a solicitation (already sized to its advertisement) into the
/// advertisement: Ethernet addresses, the fixed IPv6 header, the body.
fn write_advert(
    data: &mut [u8],
    l3: usize,
    asker: xvs_types::MacAddr,
    mac: xvs_types::MacAddr,
    asker_ip: &Ipv6Addr,
    target: &Ipv6Addr,
) -> Verdict {
    // The caller checked the IPv6 header and sized the frame; checked
    // again so that a bug passes the frame on untouched, not half written.
    if data.len() < l3 + ipv6::HEADER_LEN + NEIGHBOR_ADVERT_LEN {
        return Verdict::Pass;
    }
    let mut eth = EthernetFrame::new_unchecked(&mut *data);
    eth.set_dst_addr(asker);
    eth.set_src_addr(mac);
    let (hdr, body) = data[l3..].split_at_mut(ipv6::HEADER_LEN);
    ipv6::Ipv6Repr {
        src_addr: *target,
        dst_addr: *asker_ip,
        next_header: proto::ICMPV6,
        payload_len: NEIGHBOR_ADVERT_LEN,
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut Ipv6Packet::new_unchecked(hdr));
    let flags = na_flag::SOLICITED | na_flag::OVERRIDE;
    match emit_neighbor_advert(body, target, asker_ip, target, mac, flags) {
        Ok(_) => Verdict::NdReply,
        Err(_) => Verdict::Pass,
    }
}
