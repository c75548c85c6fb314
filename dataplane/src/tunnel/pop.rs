//! Tunnel pop: validate a packet received on the uplink against the tunnel
//! port table, extract the VNI and remote VTEP, and strip the outer headers
//! in place (no copy: the frame start moves forward).
//!
//! Checks run cheapest-first and every failure is one typed, counted
//! reason. Where the RFCs and Open vSwitch differ we follow the RFCs:
//! - VXLAN reserved bits are ignored on receipt (RFC 7348 §5); OVS drops
//!   frames with unknown flag bits set.
//! - A zero UDP checksum is always accepted (RFC 7348 §5, RFC 6935 for
//!   IPv6 tunnels); a non-zero one is verified when the port has `csum`.
//! - Geneve: version must be 0; an O-bit packet is a control packet and is
//!   never forwarded to a port; when the C bit says critical options are
//!   present, an unknown option with the critical bit set drops the packet
//!   (RFC 8926 §3.4, §3.5.1). OVS matches the last two.
//! - A packet from a VTEP outside the port's remotes is dropped
//!   (`unknown_remote`) unless the port learns remotes (its `learn`, implied
//!   by multicast mode); then it is accepted with [`UNKNOWN_REMOTE`] and its
//!   outer source in [`Decap::vtep`] for the control plane to add. A
//!   multicast or unspecified source is never a VTEP.
//! - ECN is decapsulated per RFC 6040 (normal mode): an outer CE is copied
//!   to an ECN-capable inner header, and dropped for a Not-ECT inner one.

use crate::frame::Frame;
use crate::stats::DropReason;
use crate::wire::checksum;
use crate::wire::ethernet::{self, ethertype, EthernetFrame};
use crate::wire::geneve::GenevePacket;
use crate::wire::ip_proto;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::udp::{self, UdpPacket};
use crate::wire::vxlan::{self, VxlanPacket};
use crate::wire::WireError;
use xvs_types::{ipv4_to_u128, PortNo};
use xvs_types::{is_unicast_ip, TunnelKind};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{RemoteIdx, TunnelTable, UNKNOWN_REMOTE};

const ECN_MASK: u8 = 0x03;
const ECN_CE: u8 = 0x03;

/// What pop learned about a tunnel packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decap {
    /// Index of the tunnel port in the table.
    pub tunnel: u16,
    /// Its port number.
    pub port: PortNo,
    /// Which of its remote VTEPs sent the packet; [`UNKNOWN_REMOTE`] for a
    /// VTEP the port does not know yet but learns.
    pub remote: RemoteIdx,
    /// The outer source address: the sending VTEP.
    pub vtep: IpAddr,
    pub vni: u32,
    /// Bytes stripped from the front.
    pub outer_len: usize,
}

/// Validates and strips the outer headers of `frame`. On error the frame is
/// unchanged.
#[inline]
pub fn pop(table: &TunnelTable, frame: &mut Frame<'_>) -> Result<Decap, DropReason> {
    let data = frame.data();
    let eth = EthernetFrame::new_checked(data)?;
    let ip_off = ethernet::HEADER_LEN;
    let (src, dst, udp_off, ip_end, outer_ecn, v6) = match eth.ethertype() {
        ethertype::IPV4 => {
            let ip = Ipv4Packet::new_checked(eth.payload())?;
            // Hardware usually checks this for the kernel; nobody did for us.
            if !ipv4_header_sum_ok(&ip, &data[ip_off..]) {
                return Err(WireError::BadIpChecksum.into());
            }
            if ip.is_fragment() {
                return Err(WireError::Fragment.into());
            }
            if ip.protocol() != ip_proto::UDP {
                return Err(DropReason::NotTunnel);
            }
            (
                ipv4_to_u128(ip.src_addr()),
                ipv4_to_u128(ip.dst_addr()),
                ip_off + ip.header_len(),
                ip_off + usize::from(ip.total_len()),
                ip.tos() & ECN_MASK,
                false,
            )
        }
        ethertype::IPV6 => {
            let ip = Ipv6Packet::new_checked(eth.payload())?;
            let (proto, off) = ip.upper_layer()?;
            if proto != ip_proto::UDP {
                return Err(DropReason::NotTunnel);
            }
            (
                u128::from(ip.src_addr()),
                u128::from(ip.dst_addr()),
                ip_off + off,
                ip_off + ipv6::HEADER_LEN + usize::from(ip.payload_len()),
                ip.traffic_class() & ECN_MASK,
                true,
            )
        }
        _ => return Err(DropReason::NotTunnel),
    };
    // The IP length excludes Ethernet padding; the views below see only
    // what the IP header claims.
    let l4 = data.get(udp_off..ip_end).ok_or(WireError::BadIpLength)?;
    let udp = UdpPacket::new_checked(l4)?;
    let kind = table
        .kind_for_port(udp.dst_port())
        .ok_or(DropReason::NotTunnel)?;
    let (vni, tun_len, geneve) = match kind {
        TunnelKind::Vxlan => {
            let v = VxlanPacket::new_checked(udp.payload())?;
            (v.vni(), vxlan::HEADER_LEN, None)
        }
        TunnelKind::Geneve => {
            let g = GenevePacket::new_checked(udp.payload())?;
            if g.protocol() != ethertype::TEB {
                return Err(WireError::GeneveBadProtocol.into());
            }
            (g.vni(), g.header_len(), Some(g))
        }
    };
    let idx = table
        .lookup(kind, dst, udp.dst_port(), vni)
        .ok_or(DropReason::NoTunnelPort)?;
    let Some(tp) = table.get(idx) else {
        return Err(DropReason::NoTunnelPort);
    };
    let remote = match tp.remote_index(src) {
        // A multicast tunnel's remote 0 is its group, never a sender.
        Some(r) if !(tp.group.is_some() && r == 0) => r,
        // Our own address as a source is a loop (a group echoed back), not
        // a peer: learning from it would move our VMs onto the tunnel.
        None if tp.learn && is_unicast_ip(&vtep(src, v6)) && vtep(src, v6) != tp.local => {
            UNKNOWN_REMOTE
        }
        _ => return Err(DropReason::UnknownRemote),
    };
    if let Some(g) = geneve {
        if g.oam() {
            return Err(DropReason::GeneveControl);
        }
        // RFC 8926 §3.4: the C bit says whether any option is critical;
        // an endpoint must parse the options only when it is set (and may
        // ignore non-critical ones), so the common case skips the walk.
        if g.critical() {
            g.check_options(|class, typ| tp.knows_option(class, typ))?;
        }
    }
    if tp.verify_csum && udp.checksum() != 0 {
        let ok = if v6 {
            let ip = Ipv6Packet::new_unchecked(&data[ip_off..]);
            udp.verify_checksum_v6(&ip.src_addr(), &ip.dst_addr())
        } else {
            let ip = Ipv4Packet::new_unchecked(&data[ip_off..]);
            udp.verify_checksum_v4(ip.src_addr(), ip.dst_addr())
        };
        if !ok {
            return Err(WireError::BadUdpChecksum.into());
        }
    }
    let inner_off = udp_off + udp::HEADER_LEN + tun_len;
    let inner_len = udp_off + usize::from(udp.len()) - inner_off;
    if inner_len < ethernet::HEADER_LEN {
        return Err(WireError::Truncated.into());
    }
    let port = tp.port;
    // From here on the packet is accepted; only ECN can still drop it, and
    // it must be checked before the frame is changed.
    if outer_ecn == ECN_CE {
        let inner = &mut frame.data_mut()[inner_off..inner_off + inner_len];
        ecn_decap_ce(inner)?;
    }
    frame.pull_front(inner_off);
    frame.truncate(inner_len);
    Ok(Decap {
        tunnel: idx,
        port,
        remote,
        vtep: vtep(src, v6),
        vni,
        outer_len: inner_off,
    })
}

/// The sending VTEP's address from its u128 form. Pop keeps only the u128
/// (which the remote lookup needs anyway) and the family until it returns:
/// an `IpAddr` carried through the function from the IP header on, as
/// 49bfa89 added it, is 17 more bytes live across every check; the
/// registers it took made the compiler spill, and the loads and stores of
/// those spills were the load/store unit's extra work that slowed pop by
/// 10-15% (llvm-mca: 40 -> 46 cycles per pop) for 12 more instructions.
#[inline(always)]
fn vtep(src: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(src))
    } else {
        // An IPv4 source is held IPv4-mapped: its low 32 bits.
        IpAddr::V4(Ipv4Addr::from(src as u32))
    }
}

/// Whether an IPv4 header's checksum verifies. A header without options
/// (every tunnel packet we send, and the kernel's) is summed as two 64-bit
/// words and one 32-bit word in native byte order: a one's complement sum
/// of byte-swapped words is the byte-swapped sum (RFC 1071 §2(B)), and
/// 0xffff, the only value a correct header sums to, reads the same either
/// way. That takes the general loop's setup and its byte swaps off the
/// per-packet path: 9 of pop's 283 instructions (callgrind,
/// bench/instructions.sh).
#[inline]
fn ipv4_header_sum_ok(ip: &Ipv4Packet<&[u8]>, hdr: &[u8]) -> bool {
    let Some(h) = hdr.first_chunk::<20>().filter(|_| ip.header_len() == 20) else {
        return ip.verify_checksum();
    };
    let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7, c0, c1, c2, c3] = *h;
    let a = u64::from_ne_bytes([a0, a1, a2, a3, a4, a5, a6, a7]);
    let b = u64::from_ne_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
    let c = u64::from(u32::from_ne_bytes([c0, c1, c2, c3]));
    // End-around carries; neither `+` can overflow, as a carry out leaves
    // the wrapped sum at most 2^64 - 2.
    let (s, carry) = a.overflowing_add(b);
    let s = s + u64::from(carry);
    let (s, carry) = s.overflowing_add(c);
    checksum::fold(s + u64::from(carry)) == 0xffff
}

/// RFC 6040 §4.2 with an outer CE: mark an ECN-capable inner IP header CE;
/// a Not-ECT inner IP packet must be dropped. Non-IP inner frames pass.
fn ecn_decap_ce(inner: &mut [u8]) -> Result<(), DropReason> {
    let Ok(eth) = EthernetFrame::new_checked(&mut *inner) else {
        return Ok(());
    };
    match eth.ethertype() {
        ethertype::IPV4 => {
            let Ok(mut ip) = Ipv4Packet::new_checked(&mut inner[ethernet::HEADER_LEN..]) else {
                return Ok(());
            };
            let tos = ip.tos();
            match tos & ECN_MASK {
                0 => return Err(DropReason::EcnNotEct),
                ECN_CE => {}
                _ => {
                    let new = tos | ECN_CE;
                    let c = checksum::update16(ip.checksum(), u16::from(tos), u16::from(new));
                    ip.set_tos(new);
                    ip.set_checksum(c);
                }
            }
        }
        ethertype::IPV6 => {
            let Ok(mut ip) = Ipv6Packet::new_checked(&mut inner[ethernet::HEADER_LEN..]) else {
                return Ok(());
            };
            let tc = ip.traffic_class();
            match tc & ECN_MASK {
                0 => return Err(DropReason::EcnNotEct),
                _ => ip.set_traffic_class(tc | ECN_CE),
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The native-order sum answers as the general big-endian one, on
        /// headers with a correct checksum and on arbitrary ones.
        #[test]
        fn the_fixed_header_sum_agrees_with_the_general_one(
            mut h in prop::array::uniform20(any::<u8>()),
            correct in any::<bool>(),
        ) {
            h[0] = 0x45;
            if correct {
                h[10..12].fill(0);
                let c = checksum::checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            let ip = Ipv4Packet::new_unchecked(&h[..]);
            prop_assert_eq!(ipv4_header_sum_ok(&ip, &h), ip.verify_checksum());
            if correct {
                prop_assert!(ipv4_header_sum_ok(&ip, &h));
            }
        }
    }
}
