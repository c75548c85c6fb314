//! The frames a tx run sends: one per flow, Ethernet/IPv4/UDP with valid
//! IPv4 and UDP checksums, optionally inside a VXLAN (RFC 7348) or Geneve
//! (RFC 8926, no options) packet; built once, before the run, from the
//! command line ([`frame_spec`]). Also the header sizes, ports and
//! ethertypes the receiver's check reads.

use std::net::Ipv4Addr;

use xvs_io::xsk::CHUNK;

use super::args::{Encap, TxArgs, Vary};
use super::sys::{iface_err, iface_mac, iface_mtu};
use super::PktgenError;

pub(super) const ETH: usize = 14;
pub(super) const IPV4: usize = 20;
pub(super) const UDP: usize = 8;
/// VXLAN header, and a Geneve header without options: both 8 bytes.
pub(super) const TUNNEL_HDR: usize = 8;
/// Outer Ethernet, IPv4, UDP and tunnel header.
pub(super) const ENCAP_OVERHEAD: usize = ETH + IPV4 + UDP + TUNNEL_HDR;
pub(super) const VXLAN_PORT: u16 = 4789;
pub(super) const GENEVE_PORT: u16 = 6081;
pub(super) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(super) const ETHERTYPE_IPV6: u16 = 0x86dd;
pub(super) const ETHERTYPE_VLAN: u16 = 0x8100;
pub(super) const ETHERTYPE_TEB: u16 = 0x6558;

/// One's-complement sum of `data` as 16-bit big-endian words, added to
/// `acc` (RFC 1071); an odd last byte is padded with zero.
fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = words.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

/// Folds a sum into its 16-bit one's complement: the checksum field.
fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The addresses of one Ethernet/IPv4/UDP frame.
#[derive(Debug, Clone, Copy)]
struct Udp4 {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    ip_id: u16,
    /// Don't fragment: set on tunnel packets, as tunnel endpoints do.
    df: bool,
    /// Compute the UDP checksum (zero otherwise).
    udp_csum: bool,
}

impl Udp4 {
    /// The frame carrying `payload`.
    fn frame(&self, payload: &[u8]) -> Vec<u8> {
        let udp_len = UDP + payload.len();
        let ip_len = IPV4 + udp_len;
        let mut f = Vec::with_capacity(ETH + ip_len);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = ETH;
        f.extend_from_slice(&[0x45, 0]);
        // Bounded by the callers: frames fit a 4096-byte chunk.
        f.extend_from_slice(&(ip_len as u16).to_be_bytes());
        f.extend_from_slice(&self.ip_id.to_be_bytes());
        f.extend_from_slice(&(if self.df { 0x4000u16 } else { 0 }).to_be_bytes());
        f.extend_from_slice(&[64, 17, 0, 0]);
        f.extend_from_slice(&self.src_ip.octets());
        f.extend_from_slice(&self.dst_ip.octets());
        let ip_csum = fold(sum16(&f[ip..ip + IPV4], 0));
        f[ip + 10..ip + 12].copy_from_slice(&ip_csum.to_be_bytes());
        let udp = f.len();
        f.extend_from_slice(&self.src_port.to_be_bytes());
        f.extend_from_slice(&self.dst_port.to_be_bytes());
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        if self.udp_csum {
            // Pseudo-header (RFC 768): addresses, protocol, UDP length.
            let mut acc = sum16(&self.src_ip.octets(), 0);
            acc = sum16(&self.dst_ip.octets(), acc);
            acc += 17 + udp_len as u64;
            let c = match fold(sum16(&f[udp..], acc)) {
                // Zero means "no checksum"; its one's-complement twin
                // says the same sum.
                0 => 0xffff,
                c => c,
            };
            f[udp + 6..udp + 8].copy_from_slice(&c.to_be_bytes());
        }
        f
    }
}

/// The outer headers of a tunnel packet.
#[derive(Debug, Clone, Copy)]
struct TunnelSpec {
    kind: Encap,
    vni: u32,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    udp_csum: bool,
}

/// Everything that makes the frames of a tx run.
#[derive(Debug, Clone)]
pub(super) struct FrameSpec {
    /// Length of the (inner) frame.
    pub(super) size: usize,
    inner: Udp4,
    vary: Vary,
    tunnel: Option<TunnelSpec>,
}

impl FrameSpec {
    /// Bytes of each frame sent.
    pub(super) fn frame_len(&self) -> usize {
        self.size + self.tunnel.map_or(0, |_| ENCAP_OVERHEAD)
    }

    /// The frame of flow `flow`.
    pub(super) fn build(&self, flow: u32) -> Vec<u8> {
        let mut inner = self.inner;
        if matches!(self.vary, Vary::Port | Vary::Both) {
            inner.src_port = inner.src_port.wrapping_add(flow as u16);
        }
        if matches!(self.vary, Vary::Ip | Vary::Both) {
            inner.src_ip = Ipv4Addr::from(u32::from(inner.src_ip).wrapping_add(flow));
        }
        if matches!(self.vary, Vary::DstMac) {
            let m = &mut inner.dst_mac;
            let low = u32::from_be_bytes([m[2], m[3], m[4], m[5]]).wrapping_add(flow);
            m[2..6].copy_from_slice(&low.to_be_bytes());
        }
        inner.ip_id = flow as u16;
        // A recognisable payload: a tag, the flow, then a byte pattern.
        let mut payload = vec![0u8; self.size - ETH - IPV4 - UDP];
        for (i, b) in payload.iter_mut().enumerate() {
            *b = i as u8;
        }
        let tag = b"xvs-pktgen";
        let flow_be = flow.to_be_bytes();
        for (dst, src) in payload.iter_mut().zip(tag.iter().chain(&flow_be)) {
            *dst = *src;
        }
        let frame = inner.frame(&payload);
        let Some(t) = self.tunnel else {
            return frame;
        };
        let mut body = Vec::with_capacity(TUNNEL_HDR + frame.len());
        let vni = t.vni.to_be_bytes();
        match t.kind {
            // RFC 7348: flags with the I bit, 24 reserved bits, VNI,
            // 8 reserved bits.
            Encap::Vxlan => body.extend_from_slice(&[0x08, 0, 0, 0]),
            // RFC 8926: version 0, no options, O and C clear, protocol
            // Transparent Ethernet Bridging.
            Encap::Geneve => {
                body.extend_from_slice(&[0, 0]);
                body.extend_from_slice(&ETHERTYPE_TEB.to_be_bytes());
            }
        }
        body.extend_from_slice(&[vni[1], vni[2], vni[3], 0]);
        body.extend_from_slice(&frame);
        let outer = Udp4 {
            src_mac: t.src_mac,
            dst_mac: t.dst_mac,
            src_ip: t.src_ip,
            dst_ip: t.dst_ip,
            // Per-flow entropy in the ephemeral range, as a VTEP hashes
            // the inner flow into the source port (RFC 7348 §5).
            src_port: 49152 + (flow % 16384) as u16,
            dst_port: t.kind.port(),
            ip_id: 0,
            df: true,
            udp_csum: t.udp_csum,
        };
        outer.frame(&body)
    }
}

pub(super) fn frame_spec(a: &TxArgs) -> Result<FrameSpec, PktgenError> {
    let own = iface_mac(&a.iface)?;
    let tunnel = match (a.encap, a.vni, a.outer_src, a.outer_dst, a.outer_dst_mac) {
        (Some(kind), Some(vni), Some(src_ip), Some(dst_ip), Some(dst_mac)) => Some(TunnelSpec {
            kind,
            vni,
            src_mac: a.outer_src_mac.unwrap_or(own).0,
            dst_mac: dst_mac.0,
            src_ip,
            dst_ip,
            udp_csum: a.outer_udp_csum,
        }),
        (None, ..) => None,
        // clap's `requires_all` rules this out; say so rather than panic.
        _ => {
            return Err(PktgenError::Frame(
                "--encap needs --vni, --outer-src, --outer-dst and --outer-dst-mac".into(),
            ))
        }
    };
    let spec = FrameSpec {
        size: usize::from(a.size),
        inner: Udp4 {
            src_mac: a.src_mac.unwrap_or(own).0,
            dst_mac: a.dst_mac.0,
            src_ip: a.src_ip,
            dst_ip: a.dst_ip,
            src_port: a.src_port,
            dst_port: a.dst_port,
            ip_id: 0,
            df: false,
            udp_csum: true,
        },
        vary: a.vary,
        tunnel,
    };
    let len = spec.frame_len();
    if len as u64 > CHUNK {
        return Err(PktgenError::Frame(format!(
            "a frame of {len} bytes does not fit one {CHUNK}-byte UMEM chunk (no AF_XDP \
             multi-buffer support); the largest --size is {}",
            CHUNK as usize - (len - spec.size)
        )));
    }
    let mtu = iface_mtu(&a.iface)?;
    if len > mtu + ETH {
        return Err(iface_err(
            &a.iface,
            format!(
                "a frame of {len} bytes exceeds the MTU ({mtu}) plus the Ethernet header: \
                 every frame would be dropped; raise it (ip link set {} mtu {})",
                a.iface,
                len - ETH
            ),
        ));
    }
    Ok(spec)
}

/// A frame spec for tests: fixed addresses, the given size, variation and
/// tunnel.
#[cfg(test)]
pub(super) mod testutil {
    use super::*;

    pub const GEN: [u8; 6] = [2, 0, 0, 0, 0x0a, 1];
    pub const VM: [u8; 6] = [2, 0, 0, 0, 0x0b, 1];

    pub fn spec(size: usize, vary: Vary, tunnel: Option<Encap>) -> FrameSpec {
        FrameSpec {
            size,
            inner: Udp4 {
                src_mac: GEN,
                dst_mac: VM,
                src_ip: Ipv4Addr::new(10, 0, 0, 1),
                dst_ip: Ipv4Addr::new(10, 0, 0, 2),
                src_port: 1024,
                dst_port: 5001,
                ip_id: 0,
                df: false,
                udp_csum: true,
            },
            vary,
            tunnel: tunnel.map(|kind| TunnelSpec {
                kind,
                vni: 0x12_3456,
                src_mac: [2, 0, 0, 0, 0, 2],
                dst_mac: [2, 0, 0, 0, 0, 1],
                src_ip: Ipv4Addr::new(192, 0, 2, 2),
                dst_ip: Ipv4Addr::new(192, 0, 2, 1),
                udp_csum: true,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::rx::{frame_matches, Expect};
    use super::testutil::{spec, VM};
    use super::*;
    use etherparse::{Ipv4Header, SlicedPacket, TransportSlice, UdpHeader};

    /// Checks the Ethernet/IPv4/UDP frame `f` with etherparse (an
    /// independent parser): lengths and both checksums; returns the UDP
    /// header and payload.
    fn check_udp4(f: &[u8]) -> (UdpHeader, Vec<u8>) {
        let p = SlicedPacket::from_ethernet(f).expect("parses");
        let ip = match p.net {
            Some(etherparse::NetSlice::Ipv4(ip)) => ip,
            other => panic!("not IPv4: {other:?}"),
        };
        let h: Ipv4Header = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 checksum");
        assert_eq!(usize::from(h.total_len), f.len() - ETH);
        let Some(TransportSlice::Udp(u)) = p.transport else {
            panic!("not UDP");
        };
        let uh = u.to_header();
        let payload = u.payload().to_vec();
        assert_eq!(usize::from(uh.length), UDP + payload.len());
        if uh.checksum != 0 {
            let want = uh.calc_checksum_ipv4(&h, &payload).expect("payload fits");
            assert_eq!(uh.checksum, want, "UDP checksum");
        }
        (uh, payload)
    }

    #[test]
    fn plain_frames_have_the_size_and_valid_checksums() {
        for size in [60, 64, 65, 1400, 4096] {
            for flow in [0, 1, 1023] {
                let s = spec(size, Vary::Both, None);
                let f = s.build(flow);
                assert_eq!(f.len(), size);
                assert_eq!(f[..6], VM);
                let (uh, payload) = check_udp4(&f);
                assert_ne!(uh.checksum, 0);
                assert_eq!(uh.source_port, 1024 + flow as u16);
                assert_eq!(&payload[..10], b"xvs-pktgen");
                let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
                assert_eq!(u32::from(src), u32::from(Ipv4Addr::new(10, 0, 0, 1)) + flow);
            }
        }
    }

    #[test]
    fn vary_dst_mac_counts_up_the_low_32_bits() {
        let s = spec(64, Vary::DstMac, None);
        let base = s.build(0);
        let f = s.build(0x1_0001);
        assert_eq!(f[..2], base[..2]);
        let low = |b: &[u8]| u32::from_be_bytes([b[2], b[3], b[4], b[5]]);
        assert_eq!(low(&f).wrapping_sub(low(&base)), 0x1_0001);
        // Source MAC, addresses and ports stay.
        assert_eq!(f[6..12], base[6..12]);
        assert_eq!(f[26..38], base[26..38]);
    }

    #[test]
    fn vary_port_keeps_the_ip_and_vary_ip_keeps_the_port() {
        let p = spec(64, Vary::Port, None).build(7);
        let i = spec(64, Vary::Ip, None).build(7);
        assert_eq!(p[26..30], [10, 0, 0, 1]);
        assert_eq!(u16::from_be_bytes([p[34], p[35]]), 1031);
        assert_eq!(i[26..30], [10, 0, 0, 8]);
        assert_eq!(u16::from_be_bytes([i[34], i[35]]), 1024);
    }

    #[test]
    fn tunnel_frames_are_rfc_vxlan_and_geneve_around_a_valid_frame() {
        for kind in [Encap::Vxlan, Encap::Geneve] {
            let s = spec(64, Vary::Port, Some(kind));
            let f = s.build(5);
            assert_eq!(f.len(), 64 + ENCAP_OVERHEAD);
            assert_eq!(s.frame_len(), f.len());
            let (uh, payload) = check_udp4(&f);
            assert_eq!(uh.destination_port, kind.port());
            assert_eq!(uh.source_port, 49152 + 5);
            // DF set on the outer header.
            assert_eq!(f[ETH + 6] & 0x40, 0x40);
            let h = &payload[..TUNNEL_HDR];
            match kind {
                Encap::Vxlan => assert_eq!(h[..4], [0x08, 0, 0, 0]),
                Encap::Geneve => assert_eq!(h[..4], [0, 0, 0x65, 0x58]),
            }
            assert_eq!(h[4..8], [0x12, 0x34, 0x56, 0]);
            let (inner_udp, _) = check_udp4(&payload[TUNNEL_HDR..]);
            assert_eq!(inner_udp.source_port, 1029);
            assert!(frame_matches(&f, Expect::Vni(0x12_3456)));
            assert!(!frame_matches(&f, Expect::Vni(7)));
            assert!(frame_matches(&f, Expect::UdpDport(kind.port())));
        }
    }

    #[test]
    fn zero_outer_checksum_when_not_asked() {
        let mut s = spec(100, Vary::Port, Some(Encap::Vxlan));
        if let Some(t) = s.tunnel.as_mut() {
            t.udp_csum = false;
        }
        let f = s.build(0);
        assert_eq!(f[ETH + IPV4 + 6..ETH + IPV4 + 8], [0, 0]);
        check_udp4(&f);
    }
}
