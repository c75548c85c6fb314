//! A guest's TCP segmentation offload done here: a TSO frame (up to
//! 64 KiB of TCP payload behind one set of headers, its checksum left to
//! the device) cut into segments of the size the guest asked for, each
//! with headers fixed as the kernel's `tcp_gso_segment` and
//! `inet_gso_segment` fix them, and its checksum complete.
//!
//! The segments go through the pipeline like any frame, so each one is
//! encapsulated from the tunnel's template with its own outer header:
//! the outer packet is never fragmented (RFC 7348, section 4.3).
//!
//! Everything is read from the guest's header, so everything is checked:
//! a frame is segmented only if it is what its virtio-net header says
//! (TCP over IPv4 or IPv6, the checksum field where TCP's is, a segment
//! size that is not zero).

use std::net::{Ipv4Addr, Ipv6Addr};

use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6,
};
use xvs_dataplane::wire::checksum::{fold, ones_sum, pseudo_header_v4, pseudo_header_v6};

use super::queue::GuestFrameError;

/// The most header bytes a TSO frame may carry before its payload: an
/// Ethernet header with one VLAN tag, IPv4 with options or IPv6, and TCP
/// with options fit well inside.
pub const MAX_HEADERS: usize = 192;

/// Where a TSO frame's headers are and what the segments inherit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tso {
    ipv4: bool,
    /// Offsets of the IP header, the TCP header, and the payload.
    l3: usize,
    l4: usize,
    pub(crate) headers: usize,
    /// The payload bytes per segment.
    pub(crate) mss: usize,
    seq: u32,
    ip_id: u16,
}

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

impl Tso {
    /// Reads a TSO frame's headers from `head`, the first bytes of the
    /// frame (up to [`MAX_HEADERS`]), checked against what the virtio-net
    /// header says (`gso_type`, `csum_start`, `csum_offset`, `gso_size`)
    /// and the features the driver acknowledged; `len` is the whole
    /// frame's length.
    pub fn parse(
        head: &[u8],
        len: usize,
        features: u64,
        gso_type: u8,
        csum: Option<(u16, u16)>,
        gso_size: u16,
    ) -> Result<Tso, GuestFrameError> {
        let ecn = gso_type & VIRTIO_NET_HDR_GSO_ECN as u8 != 0;
        let kind = u32::from(gso_type & !(VIRTIO_NET_HDR_GSO_ECN as u8));
        let ipv4 = match kind {
            VIRTIO_NET_HDR_GSO_TCPV4 => true,
            VIRTIO_NET_HDR_GSO_TCPV6 => false,
            _ => return Err(GuestFrameError::GsoNotNegotiated),
        };
        let need = if ipv4 {
            VIRTIO_NET_F_HOST_TSO4
        } else {
            VIRTIO_NET_F_HOST_TSO6
        };
        if features & (1 << need) == 0 || (ecn && features & (1 << VIRTIO_NET_F_HOST_ECN) == 0) {
            return Err(GuestFrameError::GsoNotNegotiated);
        }
        // A segmentation request always leaves the checksum to the device.
        let (csum_start, csum_offset) = csum.ok_or(GuestFrameError::BadGso)?;
        let bad = GuestFrameError::BadGso;
        let byte = |at: usize| head.get(at).copied().ok_or(bad);
        let word =
            |at: usize| Ok::<_, GuestFrameError>(u16::from_be_bytes([byte(at)?, byte(at + 1)?]));
        let mut l3 = 14;
        let mut ethertype = word(12)?;
        if ethertype == 0x8100 || ethertype == 0x88a8 {
            l3 = 18;
            ethertype = word(16)?;
        }
        let l4 = usize::from(csum_start);
        if ipv4 {
            let ihl = usize::from(byte(l3)? & 0x0f) * 4;
            let fragment = word(l3 + 6)? & 0x3fff; // MF and the offset
            if ethertype != 0x0800
                || byte(l3)? >> 4 != 4
                || ihl < 20
                || l3 + ihl != l4
                || byte(l3 + 9)? != 6
                || fragment != 0
            {
                return Err(bad);
            }
        } else if ethertype != 0x86dd || byte(l3)? >> 4 != 6 || byte(l3 + 6)? != 6 || l3 + 40 != l4
        {
            // IPv6 extension headers between the fixed header and TCP
            // are not segmented: a Linux guest never puts them there.
            return Err(bad);
        }
        let doff = usize::from(byte(l4 + 12)? >> 4) * 4;
        let headers = l4 + doff;
        if csum_offset != 16 || doff < 20 || headers > head.len() || headers >= len || gso_size == 0
        {
            return Err(bad);
        }
        let seq = u32::from_be_bytes([byte(l4 + 4)?, byte(l4 + 5)?, byte(l4 + 6)?, byte(l4 + 7)?]);
        Ok(Tso {
            ipv4,
            l3,
            l4,
            headers,
            mss: usize::from(gso_size),
            seq,
            ip_id: if ipv4 { word(l3 + 4)? } else { 0 },
        })
    }

    /// The segments a frame of `len` bytes is cut into.
    pub fn segments(&self, len: usize) -> usize {
        (len - self.headers).div_ceil(self.mss)
    }

    /// The payload bytes of segment `k` of a frame of `len` bytes.
    pub fn payload(&self, len: usize, k: usize) -> usize {
        (len - self.headers - k * self.mss).min(self.mss)
    }

    /// Fixes segment `k`'s headers in `seg` (the frame's headers copied,
    /// then its payload), `last` if it is the frame's last: lengths, the
    /// IPv4 identification and checksum, the TCP sequence number and
    /// flags, and the TCP checksum over the segment.
    pub fn finish(&self, seg: &mut [u8], k: usize, last: bool) {
        let l3 = self.l3;
        let l4 = self.l4;
        if self.ipv4 {
            let total = (seg.len() - l3) as u16;
            seg[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
            let id = self.ip_id.wrapping_add(k as u16);
            seg[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
            seg[l3 + 10..l3 + 12].fill(0);
            let c = !fold(ones_sum(0, &seg[l3..l4]));
            seg[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        } else {
            let payload = (seg.len() - l3 - 40) as u16;
            seg[l3 + 4..l3 + 6].copy_from_slice(&payload.to_be_bytes());
        }
        let seq = self.seq.wrapping_add((k * self.mss) as u32);
        seg[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        // As tcp_gso_segment: FIN and PSH only on the last segment, CWR
        // only on the first.
        let mut flags = seg[l4 + 13];
        if !last {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        if k > 0 {
            flags &= !TCP_CWR;
        }
        seg[l4 + 13] = flags;
        seg[l4 + 16..l4 + 18].fill(0);
        let tcp_len = (seg.len() - l4) as u32;
        let pseudo = if self.ipv4 {
            let a = |at: usize| Ipv4Addr::new(seg[at], seg[at + 1], seg[at + 2], seg[at + 3]);
            pseudo_header_v4(a(l3 + 12), a(l3 + 16), 6, tcp_len)
        } else {
            let a = |at: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&seg[at..at + 16]);
                Ipv6Addr::from(b)
            };
            pseudo_header_v6(&a(l3 + 8), &a(l3 + 24), 6, tcp_len)
        };
        let c = !fold(ones_sum(pseudo, &seg[l4..]));
        seg[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    const TSO: u64 = (1 << VIRTIO_NET_F_HOST_TSO4)
        | (1 << VIRTIO_NET_F_HOST_TSO6)
        | (1 << VIRTIO_NET_F_HOST_ECN);

    fn frame(v6: bool, payload: usize, flags: (bool, bool, bool)) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let b = if v6 {
            b.ipv6([0xfd; 16], [0xfe; 16], 64)
        } else {
            b.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        };
        let mut b = b.tcp(40000, 5201, 0xffff_f000, 1000).ack(7);
        let (fin, psh, cwr) = flags;
        if fin {
            b = b.fin();
        }
        if psh {
            b = b.psh();
        }
        if cwr {
            b = b.cwr();
        }
        let data: Vec<u8> = (0..payload).map(|i| (i * 7) as u8).collect();
        let mut out = Vec::new();
        b.write(&mut out, &data).unwrap();
        out
    }

    fn cut(f: &[u8], mss: u16, gso: u32) -> Vec<Vec<u8>> {
        let l4 = if gso == VIRTIO_NET_HDR_GSO_TCPV4 {
            34
        } else {
            54
        };
        let t = Tso::parse(
            &f[..f.len().min(MAX_HEADERS)],
            f.len(),
            TSO,
            gso as u8,
            Some((l4, 16)),
            mss,
        )
        .unwrap();
        let n = t.segments(f.len());
        (0..n)
            .map(|k| {
                let p = t.payload(f.len(), k);
                let mut s = f[..t.headers].to_vec();
                let at = t.headers + k * t.mss;
                s.extend_from_slice(&f[at..at + p]);
                t.finish(&mut s, k, k + 1 == n);
                s
            })
            .collect()
    }

    /// Every segment parses, carries its share of the payload in order,
    /// has the next sequence number (wrapping), lengths and checksums
    /// the kernel would accept, FIN/PSH on the last, CWR on the first.
    #[test]
    fn segments_are_what_the_kernels_gso_would_send() {
        for v6 in [false, true] {
            let gso = if v6 {
                VIRTIO_NET_HDR_GSO_TCPV6
            } else {
                VIRTIO_NET_HDR_GSO_TCPV4
            };
            let f = frame(v6, 10_000, (true, true, true));
            let segs = cut(&f, 1398, gso);
            assert_eq!(segs.len(), 8);
            let mut payload = Vec::new();
            for (k, s) in segs.iter().enumerate() {
                let p = SlicedPacket::from_ethernet(s).unwrap();
                if let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net {
                    let h = ip.header();
                    assert_eq!(h.total_len() as usize, s.len() - 14);
                    assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
                }
                let Some(TransportSlice::Tcp(tcp)) = p.transport else {
                    panic!("not TCP")
                };
                let want = if v6 {
                    let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else {
                        panic!()
                    };
                    assert_eq!(ip.header().payload_length() as usize, s.len() - 54);
                    tcp.to_header()
                        .calc_checksum_ipv6(&ip.header().to_header(), tcp.payload())
                        .unwrap()
                } else {
                    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
                        panic!()
                    };
                    tcp.to_header()
                        .calc_checksum_ipv4(&ip.header().to_header(), tcp.payload())
                        .unwrap()
                };
                assert_eq!(tcp.checksum(), want, "segment {k}");
                assert_eq!(
                    tcp.sequence_number(),
                    0xffff_f000u32.wrapping_add(k as u32 * 1398)
                );
                let last = k + 1 == segs.len();
                assert_eq!(tcp.fin(), last);
                assert_eq!(tcp.psh(), last);
                assert_eq!(tcp.cwr(), k == 0);
                assert!(tcp.ack());
                assert!(tcp.payload().len() <= 1398);
                payload.extend_from_slice(tcp.payload());
            }
            assert_eq!(payload, f[f.len() - 10_000..]);
        }
    }

    /// The IPv4 identification goes up by one per segment, as Linux's
    /// `inet_gso_segment` counts it.
    #[test]
    fn ipv4_identification_counts_up() {
        let f = frame(false, 3000, (false, false, false));
        let ids: Vec<u16> = cut(&f, 1000, VIRTIO_NET_HDR_GSO_TCPV4)
            .iter()
            .map(|s| u16::from_be_bytes([s[18], s[19]]))
            .collect();
        let first = u16::from_be_bytes([f[18], f[19]]);
        assert_eq!(ids, [first, first.wrapping_add(1), first.wrapping_add(2)]);
    }

    /// What the header claims is checked against the frame: each lie is
    /// refused, nothing is cut.
    #[test]
    fn headers_that_lie_are_refused() {
        let f = frame(false, 3000, (false, false, false));
        let v4 = VIRTIO_NET_HDR_GSO_TCPV4 as u8;
        let v6 = VIRTIO_NET_HDR_GSO_TCPV6 as u8;
        let head = &f[..MAX_HEADERS];
        let parse = |feat, gso, csum, size| Tso::parse(head, f.len(), feat, gso, csum, size);
        assert!(parse(TSO, v4, Some((34, 16)), 1000).is_ok());
        use GuestFrameError::*;
        assert_eq!(parse(0, v4, Some((34, 16)), 1000), Err(GsoNotNegotiated));
        assert_eq!(parse(TSO, 3, Some((34, 16)), 1000), Err(GsoNotNegotiated)); // UFO
        assert_eq!(parse(TSO, v6, Some((34, 16)), 1000), Err(BadGso)); // not IPv6
        assert_eq!(parse(TSO, v4, None, 1000), Err(BadGso)); // no NEEDS_CSUM
        assert_eq!(parse(TSO, v4, Some((38, 16)), 1000), Err(BadGso)); // not where TCP is
        assert_eq!(parse(TSO, v4, Some((34, 6)), 1000), Err(BadGso)); // UDP's field
        assert_eq!(parse(TSO, v4, Some((34, 16)), 0), Err(BadGso)); // no segment size
        let mut udp = f.clone();
        udp[23] = 17;
        let r = Tso::parse(
            &udp[..MAX_HEADERS],
            udp.len(),
            TSO,
            v4,
            Some((34, 16)),
            1000,
        );
        assert_eq!(r, Err(BadGso));
        let mut frag = f.clone();
        frag[20] |= 0x20; // more fragments
        let r = Tso::parse(
            &frag[..MAX_HEADERS],
            frag.len(),
            TSO,
            v4,
            Some((34, 16)),
            1000,
        );
        assert_eq!(r, Err(BadGso));
        // Headers only, no payload to cut.
        let r = Tso::parse(&f[..54], 54, TSO, v4, Some((34, 16)), 1000);
        assert_eq!(r, Err(BadGso));
        // Truncated before the TCP header ends.
        let r = Tso::parse(&f[..40], 3054, TSO, v4, Some((34, 16)), 1000);
        assert_eq!(r, Err(BadGso));
        let ecn = v4 | VIRTIO_NET_HDR_GSO_ECN as u8;
        let r = Tso::parse(
            head,
            f.len(),
            1 << VIRTIO_NET_F_HOST_TSO4,
            ecn,
            Some((34, 16)),
            1000,
        );
        assert_eq!(r, Err(GsoNotNegotiated));
    }
}
