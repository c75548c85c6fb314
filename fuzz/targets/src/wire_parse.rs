//! Every wire parser on arbitrary bytes: no panic, no out-of-bounds read.
//!
//! Each view's `new_checked` runs on the input and, when it succeeds, every
//! accessor and the view's `Repr::parse` run too (the `wire` module promises
//! that no accessor of a checked view can panic). `flow::extract` must
//! report layer offsets that stay inside the frame.

use std::net::{Ipv4Addr, Ipv6Addr};

use xvs_dataplane::wire::{arp, ethernet, flow, geneve, icmp, ipv4, ipv6, tcp, udp, vlan, vxlan};
use xvs_types::FlowKey;

const SRC4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const DST4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

pub fn wire_parse(data: &[u8]) {
    // The per-packet parser.
    let mut key = FlowKey::default();
    if let Ok(info) = flow::extract(data, &mut key) {
        let l3 = usize::from(info.l3_offset);
        let l4 = usize::from(info.l4_offset);
        let l4_end = l4 + usize::from(info.l4_len);
        assert!(
            l3 <= data.len(),
            "l3_offset {l3} beyond {} bytes",
            data.len()
        );
        assert!(
            l4_end <= data.len(),
            "l4 {l4}+{} beyond {} bytes",
            info.l4_len,
            data.len()
        );
        assert!(l4 == 0 || l4 >= l3, "l4_offset {l4} before l3_offset {l3}");
        let _ = format!("{key:?}");
    }

    // Each view on its own.
    if let Ok(p) = ethernet::EthernetFrame::new_checked(data) {
        let _ = (p.dst_addr(), p.src_addr(), p.ethertype(), p.payload().len());
        let _ = ethernet::EthernetRepr::parse(&p);
    }
    if let Ok(t) = vlan::VlanTag::new_checked(data) {
        let _ = (t.tci(), t.pcp(), t.dei(), t.vid(), t.ethertype());
        let _ = t.payload().len();
        let _ = vlan::VlanRepr::parse(&t);
    }
    if let Ok(p) = arp::ArpPacket::new_checked(data) {
        let _ = (p.hardware_type(), p.protocol_type(), p.operation());
        let _ = (p.sender_hw_addr(), p.sender_proto_addr());
        let _ = (p.target_hw_addr(), p.target_proto_addr());
        let _ = arp::ArpRepr::parse(&p);
    }
    if let Ok(p) = ipv4::Ipv4Packet::new_checked(data) {
        let _ = (p.version(), p.header_len(), p.tos(), p.dscp(), p.ecn());
        let _ = (p.total_len(), p.ident(), p.dont_frag(), p.more_frags());
        let _ = (p.frag_offset(), p.is_fragment(), p.ttl(), p.protocol());
        let _ = (p.checksum(), p.src_addr(), p.dst_addr());
        let _ = (p.verify_checksum(), p.payload().len(), p.options().len());
        let _ = ipv4::Ipv4Repr::parse(&p);
    }
    if let Ok(p) = ipv6::Ipv6Packet::new_checked(data) {
        let _ = (p.version(), p.traffic_class(), p.flow_label());
        let _ = (p.payload_len(), p.next_header(), p.hop_limit());
        let _ = (p.src_addr(), p.dst_addr(), p.payload().len());
        if let Ok((_, off)) = p.upper_layer() {
            assert!(off <= ipv6::HEADER_LEN + usize::from(p.payload_len()));
        }
        let _ = (p.walk(), p.is_fragment());
        let _ = ipv6::Ipv6Repr::parse(&p);
    }
    if let Ok(p) = udp::UdpPacket::new_checked(data) {
        let _ = (p.src_port(), p.dst_port(), p.len(), p.checksum());
        let _ = p.payload().len();
        let _ = p.verify_checksum_v4(SRC4, DST4);
        let _ = p.verify_checksum_v6(&SRC6, &DST6);
        let _ = udp::UdpRepr::parse(&p);
    }
    if let Ok(p) = tcp::TcpPacket::new_checked(data) {
        let _ = (p.src_port(), p.dst_port(), p.seq(), p.ack());
        let _ = (
            p.header_len(),
            p.flags(),
            p.window(),
            p.checksum(),
            p.urgent(),
        );
        let _ = (p.options().len(), p.payload().len());
        let _ = p.verify_checksum_v4(SRC4, DST4);
        let _ = p.verify_checksum_v6(&SRC6, &DST6);
        let _ = tcp::TcpRepr::parse(&p);
    }
    if let Ok(p) = icmp::IcmpPacket::new_checked(data) {
        let _ = (p.msg_type(), p.code(), p.checksum(), p.payload().len());
        let _ = p.verify_checksum_v4();
        let _ = p.verify_checksum_v6(&SRC6, &DST6);
        let _ = icmp::IcmpRepr::parse(&p);
    }
    let _ = icmp::parse_ndp(data);
    if let Ok(v) = vxlan::VxlanPacket::new_checked(data) {
        let _ = (v.flags(), v.vni(), v.payload().len());
        let _ = vxlan::VxlanRepr::parse(&v);
    }
    if let Ok(g) = geneve::GenevePacket::new_checked(data) {
        let _ = (g.version(), g.options_len(), g.header_len(), g.oam());
        let _ = (g.critical(), g.protocol(), g.vni());
        let _ = (g.options().len(), g.payload().len());
        for o in g.option_iter() {
            match o {
                Ok(o) => {
                    let _ = (o.class, o.critical(), o.data.len());
                }
                Err(_) => break,
            }
        }
        let _ = g.check_options(|_, _| false);
        let _ = g.check_options(|_, _| true);
        if let Ok(r) = geneve::GeneveRepr::parse(&g) {
            let _ = (r.validate(), r.header_len());
        }
    }
}
