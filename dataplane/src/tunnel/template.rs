//! Precomputed outer headers and tunnel push (the Open vSwitch tnl_push
//! design, lib/netdev-native-tnl.c).
//!
//! A [`Template`] holds the complete outer Ethernet + IP + UDP + VXLAN/Geneve
//! header for one (tunnel port, remote VTEP), built once on the control path
//! from the tunnel's config, the route to the remote and the next hop's MAC.
//! [`Template::push`] copies it into the frame's headroom and patches only
//! what varies per packet: IP total/payload length, the IPv4 checksum
//! (incrementally, RFC 1624), the outer TOS when inherited, the IPv4 ident
//! when DF is off, UDP length, the UDP source port (flow entropy, RFC 7348
//! §5) and the UDP checksum when enabled.

use std::net::IpAddr;

use crate::frame::Frame;
use crate::stats::DropReason;
use crate::wire::checksum;
use crate::wire::ethernet::{self, ethertype, EthernetFrame, EthernetRepr};
use crate::wire::geneve::{self, GeneveOptionRepr, GenevePacket, GeneveRepr};
use crate::wire::ip_proto;
use crate::wire::ipv4::{self, Ipv4Packet, Ipv4Repr};
use crate::wire::ipv6::{self, Ipv6Packet, Ipv6Repr};
use crate::wire::udp::{self, UdpPacket, UdpRepr};
use crate::wire::vxlan::{self, VxlanPacket, VxlanRepr};
use xvs_types::MacAddr;
use xvs_types::TunnelKind;
use xvs_types::TunnelOffload;

/// Longest outer header: Ethernet + IPv6 + UDP + Geneve with full options.
pub const MAX_HEADER_LEN: usize = ethernet::HEADER_LEN
    + ipv6::HEADER_LEN
    + udp::HEADER_LEN
    + geneve::HEADER_LEN
    + geneve::MAX_OPTIONS_LEN;

/// Size of the fixed-copy block (see [`Frame::push_front_fixed`]).
const FIXED: usize = 96;

/// ECN bits of the TOS / traffic class byte.
const ECN_MASK: u8 = 0x03;

/// Why a template could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("local VTEP {local} and remote VTEP {remote} are of different IP families")]
    FamilyMismatch { local: IpAddr, remote: IpAddr },
}

/// The Ethernet address a multicast group maps to: 01:00:5e plus the low
/// 23 bits of an IPv4 group (RFC 1112 §6.4), 33:33 plus the low 32 bits of
/// an IPv6 group (RFC 2464 §7). `None` for a unicast address. A multicast
/// tunnel's template is sent to it directly: no route or neighbor lookup,
/// the uplink is the egress.
pub fn multicast_mac(ip: IpAddr) -> Option<MacAddr> {
    match ip {
        IpAddr::V4(a) if a.is_multicast() => {
            let o = a.octets();
            Some(MacAddr([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]))
        }
        IpAddr::V6(a) if a.is_multicast() => {
            let o = a.octets();
            Some(MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]]))
        }
        _ => None,
    }
}

/// Per-packet values push needs from the inner frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushMeta {
    /// Hash of the inner flow, for the UDP source port.
    pub flow_hash: u64,
    /// Inner IP TOS / traffic class (0 for non-IP), for TOS inheritance and
    /// ECN propagation.
    pub inner_tos: u8,
    /// Value for the IPv4 identification field when DF is off.
    pub ip_id: u16,
}

/// The outer header of one (tunnel port, remote VTEP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    hdr: Box<[u8]>,
    /// `hdr` right-aligned in a fixed block, for the fixed-size copy when
    /// the header fits (VXLAN over IPv4 and IPv6, Geneve with few options).
    fixed: Option<[u8; FIXED]>,
    v6: bool,
    udp_off: usize,
    udp_csum: bool,
    tos_inherit: bool,
    df: bool,
    src_min: u16,
    src_span: u32,
    remote: IpAddr,
    /// Header fields push patches, kept here so push computes from the
    /// template and only writes to the frame (reading back bytes just
    /// written by the block copy stalls on store forwarding).
    base_csum: u16,
    base_tos: u8,
    /// UDP pseudo-header sum with a zero length.
    pseudo0: u64,
}

/// A tunnel's encapsulation as the control plane compiled it from the
/// config (`control::tunnel_spec`): defaults applied, the outer TOS
/// resolved. What a [`Template`] is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encap {
    pub kind: TunnelKind,
    pub vni: u32,
    /// UDP destination port.
    pub dst_port: u16,
    pub ttl: u8,
    /// A fixed outer TOS, or `None`: copied from the inner IP header.
    pub tos: Option<u8>,
    /// DF on the outer IPv4 header.
    pub df: bool,
    /// UDP checksums sent (and non-zero ones verified).
    pub csum: bool,
    /// IPv6 only: a zero UDP checksum when `csum` is off (RFC 6935).
    pub zero_csum6: bool,
    pub src_port_range: (u16, u16),
    /// Geneve options sent on every packet.
    pub geneve_opts: Vec<GeneveOptionRepr>,
}

/// The VXLAN or Geneve header `e` pushes, options included.
fn tunnel_header_len(e: &Encap) -> usize {
    match e.kind {
        TunnelKind::Vxlan => vxlan::HEADER_LEN,
        TunnelKind::Geneve => {
            geneve::HEADER_LEN
                + e.geneve_opts
                    .iter()
                    .map(|o| geneve::OPTION_HEADER_LEN + o.data.len())
                    .sum::<usize>()
        }
    }
}

fn ip_header_len(v6: bool) -> usize {
    if v6 {
        ipv6::HEADER_LEN
    } else {
        ipv4::HEADER_LEN
    }
}

/// The whole outer header (Ethernet, IP, UDP, tunnel) `e` pushes over
/// IPv6 if `v6`, else over IPv4: what the UMEM's headroom must hold.
pub fn outer_header_len(e: &Encap, v6: bool) -> usize {
    ethernet::HEADER_LEN + ip_header_len(v6) + udp::HEADER_LEN + tunnel_header_len(e)
}

impl Template {
    /// Builds the header for `cfg` towards `remote`, sent from `local`
    /// through the next hop `dst_mac` out of an interface with MAC `src_mac`.
    pub fn build(
        cfg: &Encap,
        local: IpAddr,
        remote: IpAddr,
        src_mac: MacAddr,
        dst_mac: MacAddr,
    ) -> Result<Template, TemplateError> {
        if local.is_ipv4() != remote.is_ipv4() {
            return Err(TemplateError::FamilyMismatch { local, remote });
        }
        let tun_len = tunnel_header_len(cfg);
        let v6 = remote.is_ipv6();
        let ip_len = ip_header_len(v6);
        let ip_off = ethernet::HEADER_LEN;
        let udp_off = ip_off + ip_len;
        let tun_off = udp_off + udp::HEADER_LEN;
        let mut hdr = vec![0u8; tun_off + tun_len].into_boxed_slice();

        let tos = cfg.tos.map_or(0, |t| t & !ECN_MASK);
        EthernetRepr {
            src_addr: src_mac,
            dst_addr: dst_mac,
            ethertype: if v6 { ethertype::IPV6 } else { ethertype::IPV4 },
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut hdr[..]));
        // Lengths are written as zero here; push adds the real ones, which is
        // what lets the IPv4 checksum be patched incrementally.
        match (local, remote) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let repr = Ipv4Repr {
                    src_addr: src,
                    dst_addr: dst,
                    protocol: ip_proto::UDP,
                    payload_len: 0,
                    ttl: cfg.ttl,
                    tos,
                    dont_frag: cfg.df,
                    ident: 0,
                };
                let mut ip = Ipv4Packet::new_unchecked(&mut hdr[ip_off..udp_off]);
                repr.emit(&mut ip);
                ip.set_total_len(0);
                ip.fill_checksum();
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let repr = Ipv6Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: ip_proto::UDP,
                    payload_len: 0,
                    hop_limit: cfg.ttl,
                    traffic_class: tos,
                    flow_label: 0,
                };
                repr.emit(&mut Ipv6Packet::new_unchecked(&mut hdr[ip_off..udp_off]));
            }
            _ => unreachable!("families checked above"),
        }
        UdpRepr {
            src_port: cfg.src_port_range.0,
            dst_port: cfg.dst_port,
            payload_len: 0,
        }
        .emit(&mut UdpPacket::new_unchecked(&mut hdr[udp_off..tun_off]));
        match cfg.kind {
            TunnelKind::Vxlan => VxlanRepr { vni: cfg.vni }
                .emit(&mut VxlanPacket::new_unchecked(&mut hdr[tun_off..])),
            TunnelKind::Geneve => GeneveRepr {
                vni: cfg.vni,
                protocol: ethertype::TEB,
                oam: false,
                critical: false,
                options: cfg.geneve_opts.clone(),
            }
            .emit(&mut GenevePacket::new_unchecked(&mut hdr[tun_off..])),
        }
        let (lo, hi) = cfg.src_port_range;
        let ip = &hdr[ip_off..udp_off];
        let (base_csum, base_tos, pseudo0) = if v6 {
            let ip = Ipv6Packet::new_unchecked(ip);
            let p = checksum::pseudo_header_v6(&ip.src_addr(), &ip.dst_addr(), ip_proto::UDP, 0);
            (0, ip.traffic_class(), p)
        } else {
            let ip = Ipv4Packet::new_unchecked(ip);
            let p = checksum::pseudo_header_v4(ip.src_addr(), ip.dst_addr(), ip_proto::UDP, 0);
            (ip.checksum(), ip.tos(), p)
        };
        let fixed = (hdr.len() <= FIXED).then(|| {
            let mut b = [0u8; FIXED];
            b[FIXED - hdr.len()..].copy_from_slice(&hdr);
            b
        });
        Ok(Template {
            hdr,
            fixed,
            v6,
            udp_off,
            // IPv6 requires a UDP checksum (RFC 8200 §8.1) unless the tunnel
            // is configured for zero checksums (RFC 6935/6936).
            udp_csum: cfg.csum || (v6 && !cfg.zero_csum6),
            tos_inherit: cfg.tos.is_none(),
            df: cfg.df,
            src_min: lo,
            src_span: u32::from(hi.saturating_sub(lo)) + 1,
            remote,
            base_csum,
            base_tos,
            pseudo0,
        })
    }

    /// Length of the outer header push adds.
    #[inline]
    pub fn len(&self) -> usize {
        self.hdr.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.hdr.is_empty()
    }

    pub fn remote(&self) -> IpAddr {
        self.remote
    }

    /// The raw header bytes (lengths and checksums zero), for `tunnel-ports`.
    pub fn bytes(&self) -> &[u8] {
        &self.hdr
    }

    /// This header for a fast path that pushes it on whole GSO skbs, or
    /// `None` where that cannot give push's bytes: an outer UDP checksum
    /// (over 64 KiB the kernel has not segmented yet), or an IPv4 header
    /// without DF (its identification is per-worker state).
    pub fn offload(&self) -> Option<TunnelOffload<'_>> {
        (!self.udp_csum && (self.v6 || self.df)).then_some(TunnelOffload {
            hdr: &self.hdr,
            v6: self.v6,
            udp_off: self.udp_off,
            base_csum: self.base_csum,
            tos_inherit: self.tos_inherit,
            base_tos: self.base_tos,
        })
    }

    /// UDP source port for a flow hash: scaled into the configured range
    /// (multiply-shift, as Open vSwitch does, instead of a modulo).
    #[inline]
    pub fn src_port(&self, flow_hash: u64) -> u16 {
        let h = (flow_hash ^ (flow_hash >> 32)) as u32;
        self.src_min + ((u64::from(h) * u64::from(self.src_span)) >> 32) as u16
    }

    /// Prepends the outer header. The frame must have `self.len()` bytes of
    /// headroom (`NoHeadroom` otherwise: the caller decides whether to make
    /// room by copying). Returns the number of bytes added.
    #[inline(always)]
    pub fn push(&self, frame: &mut Frame<'_>, meta: &PushMeta) -> Result<usize, DropReason> {
        let n = self.hdr.len();
        let inner_len = frame.len();
        let total = n - ethernet::HEADER_LEN + inner_len;
        if total > usize::from(u16::MAX) {
            return Err(DropReason::TooBig);
        }
        match (&self.fixed, frame.headroom() >= FIXED) {
            (Some(fixed), true) => {
                let Some(block) = frame.push_front_fixed::<FIXED>(n) else {
                    return Err(DropReason::NoHeadroom);
                };
                *block = *fixed;
            }
            _ => {
                let Some(front) = frame.push_front(n) else {
                    return Err(DropReason::NoHeadroom);
                };
                front.copy_from_slice(&self.hdr);
            }
        }
        let data = frame.data_mut();
        let ecn = meta.inner_tos & ECN_MASK;
        let (ip_hdr, rest) =
            data[ethernet::HEADER_LEN..].split_at_mut(self.udp_off - ethernet::HEADER_LEN);
        let udp_len = (total - ip_hdr.len()) as u16;
        let tos = if self.tos_inherit {
            meta.inner_tos
        } else {
            self.base_tos | ecn
        };
        if self.v6 {
            let mut ip = Ipv6Packet::new_unchecked(&mut *ip_hdr);
            ip.set_payload_len(udp_len);
            ip.set_traffic_class(tos);
        } else {
            let mut ip = Ipv4Packet::new_unchecked(&mut *ip_hdr);
            let mut csum = checksum::update16(self.base_csum, 0, total as u16);
            ip.set_total_len(total as u16);
            if tos != self.base_tos {
                // The TOS shares a 16-bit word with version/IHL.
                csum = checksum::update16(csum, u16::from(self.base_tos), u16::from(tos));
                ip.set_tos(tos);
            }
            if !self.df && meta.ip_id != 0 {
                csum = checksum::update16(csum, 0, meta.ip_id);
                ip.set_ident(meta.ip_id);
            }
            ip.set_checksum(csum);
        }
        let mut udp = UdpPacket::new_unchecked(&mut *rest);
        udp.set_src_port(self.src_port(meta.flow_hash));
        udp.set_len(udp_len);
        if self.udp_csum {
            let initial = self.pseudo0 + u64::from(udp_len);
            let (_, udp_bytes) = data.split_at_mut(self.udp_off);
            let mut c = !checksum::fold(checksum::ones_sum(initial, udp_bytes));
            if c == 0 {
                c = 0xffff;
            }
            UdpPacket::new_unchecked(udp_bytes).set_checksum(c);
        }
        Ok(n)
    }
}
