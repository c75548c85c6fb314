//! IPv6 headers (RFC 8200) and the walk over extension headers.
//!
//! Invariant: after [`Ipv6Packet::new_checked`] the version is 6 and the
//! fixed header plus the payload length fit in the buffer, so `payload()`
//! (which stops at the payload length, dropping Ethernet padding) cannot
//! panic. [`Ipv6Packet::upper_layer`] never reads past the payload and gives
//! up after [`MAX_EXT_HEADERS`] extension headers, so a crafted chain costs
//! bounded time on the per-packet path.

use std::net::Ipv6Addr;

use super::ip::proto;
use super::{read_ipv6, read_u16, read_u32, write, write_u16, write_u32, Result, WireError};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// Extension headers walked before [`Ipv6Packet::upper_layer`] gives up.
/// Real traffic carries one or two; the bound keeps a crafted chain from
/// costing more than a few cache lines per packet.
pub const MAX_EXT_HEADERS: usize = 8;

mod field {
    use crate::wire::Field;
    /// Version (4) | traffic class (8) | flow label (20).
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
    pub const PAYLOAD: usize = 40;

    // Extension header fields, relative to the extension header.
    pub const EXT_NXT: usize = 0;
    pub const EXT_LEN: usize = 1;
    pub const FRAG_OFF: super::super::Field = 2..4;
}

/// Fixed size of the fragment header.
const FRAG_HEADER_LEN: usize = 8;
/// Fragment offset bits in the fragment header's second word.
const FRAG_OFFSET_MASK: u16 = 0xfff8;

/// Where [`Ipv6Packet::walk`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtWalk {
    /// The upper-layer protocol, or [`proto::IPV6_FRAG`] for a non-first
    /// fragment (whose payload has no upper-layer header).
    pub protocol: u8,
    /// Offset of the upper-layer header (or of the fragment header, for a
    /// non-first fragment) from the start of the IPv6 header.
    pub offset: usize,
    /// A fragment header was seen (first or later fragment).
    pub fragment: bool,
}

/// A view over an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    #[inline]
    pub fn check(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 6 {
            return Err(WireError::BadIpVersion);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > b.len() {
            return Err(WireError::BadIpLength);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn word0(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW)
    }

    #[inline]
    pub fn version(&self) -> u8 {
        (self.word0() >> 28) as u8
    }

    /// DSCP + ECN, the IPv6 counterpart of the IPv4 TOS byte.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.word0() >> 20) as u8
    }

    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.word0() & 0x000f_ffff
    }

    /// Bytes after the fixed header (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), field::SRC_ADDR)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// The bytes after the fixed header, up to the payload length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// Skips extension headers and returns (upper-layer protocol, its offset
    /// from the start of this header). A non-first fragment stops at the
    /// fragment header with protocol 44. ESP, "no next header" and unknown
    /// values end the walk as the upper layer.
    #[inline]
    pub fn upper_layer(&self) -> Result<(u8, usize)> {
        let w = self.walk()?;
        Ok((w.protocol, w.offset))
    }

    /// [`Self::upper_layer`] plus whether a fragment header was seen.
    pub fn walk(&self) -> Result<ExtWalk> {
        let end = HEADER_LEN + usize::from(self.payload_len());
        // `end` is within the buffer after new_checked; `get` keeps an
        // unchecked view from panicking too.
        let b = self.buffer.as_ref().get(..end).unwrap_or(&[]);
        let mut nh = self.next_header();
        let mut off = HEADER_LEN;
        let mut fragment = false;
        for _ in 0..=MAX_EXT_HEADERS {
            let len = match nh {
                proto::HOPOPT | proto::IPV6_ROUTE | proto::IPV6_OPTS | proto::MOBILITY => {
                    let l = b
                        .get(off + field::EXT_LEN)
                        .ok_or(WireError::BadIpv6ExtHeader)?;
                    (usize::from(*l) + 1) * 8
                }
                proto::AH => {
                    let l = b
                        .get(off + field::EXT_LEN)
                        .ok_or(WireError::BadIpv6ExtHeader)?;
                    (usize::from(*l) + 2) * 4
                }
                proto::IPV6_FRAG => {
                    let h = b
                        .get(off..off + FRAG_HEADER_LEN)
                        .ok_or(WireError::BadIpv6ExtHeader)?;
                    fragment = true;
                    let fo = read_u16(h, field::FRAG_OFF);
                    if fo & FRAG_OFFSET_MASK != 0 {
                        return Ok(ExtWalk {
                            protocol: proto::IPV6_FRAG,
                            offset: off,
                            fragment,
                        });
                    }
                    FRAG_HEADER_LEN
                }
                _ => {
                    return Ok(ExtWalk {
                        protocol: nh,
                        offset: off,
                        fragment,
                    })
                }
            };
            if off + len > end {
                return Err(WireError::BadIpv6ExtHeader);
            }
            // In bounds: the length byte (at off + 1) was readable.
            nh = b[off + field::EXT_NXT];
            off += len;
        }
        Err(WireError::BadIpv6ExtHeader)
    }

    /// True if a fragment header is in the chain. Wraps [`Self::walk`].
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.walk().is_ok_and(|w| w.fragment)
    }
}

impl<'a> Ipv6Packet<&'a [u8]> {
    /// Like `payload()`, but borrowed for the buffer's lifetime rather than
    /// the view's, so a parser can return it after the view is gone.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let range = field::PAYLOAD..HEADER_LEN + usize::from(self.payload_len());
        &self.buffer[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    fn set_word0(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::VER_TC_FLOW, v);
    }

    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let w = (self.word0() & 0x0fff_ffff) | (u32::from(v & 0xf) << 28);
        self.set_word0(w);
    }

    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let w = (self.word0() & !0x0ff0_0000) | (u32::from(tc) << 20);
        self.set_word0(w);
    }

    /// Sets the flow label; only the low 20 bits are used.
    #[inline]
    pub fn set_flow_label(&mut self, fl: u32) {
        let w = (self.word0() & !0x000f_ffff) | (fl & 0x000f_ffff);
        self.set_word0(w);
    }

    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    #[inline]
    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = nh;
    }

    #[inline]
    pub fn set_hop_limit(&mut self, hl: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hl;
    }

    #[inline]
    pub fn set_src_addr(&mut self, a: &Ipv6Addr) {
        write(self.buffer.as_mut(), field::SRC_ADDR, &a.octets());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, a: &Ipv6Addr) {
        write(self.buffer.as_mut(), field::DST_ADDR, &a.octets());
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[field::PAYLOAD..end]
    }
}

/// The fixed IPv6 header as values (no extension headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    pub next_header: u8,
    /// Bytes after the fixed header.
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
}

impl Ipv6Repr {
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Self> {
        p.check()?;
        Ok(Ipv6Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        })
    }

    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the fixed header. The payload length saturates at 65535 (no
    /// jumbograms). Panics if the view is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv6Packet<T>) {
        p.set_word0(
            (6 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0x000f_ffff),
        );
        p.set_payload_len(u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(&self.src_addr);
        p.set_dst_addr(&self.dst_addr);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// fe80::1 -> ff02::1, with hop-by-hop (8 bytes) and destination options
    /// (16 bytes) before a UDP header and 4 bytes of data.
    pub(crate) fn two_ext_headers() -> Vec<u8> {
        let mut v = vec![
            0x60,
            0x12,
            0x34,
            0x56, // version 6, TC 0x01, flow 0x23456
            0x00,
            0x24, // payload length 36
            proto::HOPOPT,
            64, // hop limit
        ];
        v.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
        v.extend_from_slice(&"ff02::1".parse::<Ipv6Addr>().unwrap().octets());
        // Hop-by-hop: next = dst opts, len 0 (8 bytes), PadN.
        v.extend_from_slice(&[proto::IPV6_OPTS, 0, 1, 4, 0, 0, 0, 0]);
        // Destination options: next = UDP, len 1 (16 bytes), PadN.
        v.extend_from_slice(&[proto::UDP, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        // UDP 1000 -> 2000, length 12, checksum 0 (not checked here), data.
        v.extend_from_slice(&[0x03, 0xe8, 0x07, 0xd0, 0x00, 0x0c, 0, 0, 1, 2, 3, 4]);
        v
    }

    #[test]
    fn parse_fixture() {
        let b = two_ext_headers();
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x01);
        assert_eq!(p.flow_label(), 0x23456);
        assert_eq!(p.payload_len(), 36);
        assert_eq!(p.next_header(), proto::HOPOPT);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "fe80::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "ff02::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.upper_layer(), Ok((proto::UDP, 64)));
        assert!(!p.is_fragment());
        let r = Ipv6Repr::parse(&p).unwrap();
        let mut out = vec![0u8; 40];
        r.emit(&mut Ipv6Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, b[..40]);
    }

    #[test]
    fn fragments_and_ah() {
        let mut b = two_ext_headers();
        // Replace dest opts (16 bytes) by fragment (8) + AH of 8 bytes
        // (payload len field 0 → (0 + 2) * 4).
        b[48..64].copy_from_slice(&[
            proto::AH,
            0,
            0x00,
            0x01,
            0,
            0,
            0,
            7, // first fragment, M=1
            proto::UDP,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ]);
        b[40] = proto::IPV6_FRAG;
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        let w = p.walk().unwrap();
        assert_eq!((w.protocol, w.offset, w.fragment), (proto::UDP, 64, true));
        // Later fragment: offset 8.
        b[50] = 0x00;
        b[51] = 0x08;
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_layer(), Ok((proto::IPV6_FRAG, 48)));
        assert!(p.is_fragment());
    }

    #[test]
    fn errors() {
        let b = two_ext_headers();
        for n in 0..HEADER_LEN {
            assert_eq!(Ipv6Packet::new_checked(&b[..n]), Err(WireError::Truncated));
        }
        for n in HEADER_LEN..b.len() {
            assert_eq!(
                Ipv6Packet::new_checked(&b[..n]),
                Err(WireError::BadIpLength)
            );
        }
        let mut c = b.clone();
        c[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&c[..]),
            Err(WireError::BadIpVersion)
        );
        // Payload length cut inside the extension chain.
        for pl in 0..24u16 {
            let mut c = b.clone();
            c[4..6].copy_from_slice(&pl.to_be_bytes());
            let p = Ipv6Packet::new_checked(&c[..]).unwrap();
            assert_eq!(p.upper_layer(), Err(WireError::BadIpv6ExtHeader), "{pl}");
        }
        // Dest opts claiming more than the payload.
        let mut c = b.clone();
        c[49] = 200;
        let p = Ipv6Packet::new_checked(&c[..]).unwrap();
        assert_eq!(p.upper_layer(), Err(WireError::BadIpv6ExtHeader));
    }

    #[test]
    fn chain_bound() {
        let build = |n: usize| {
            let mut v = vec![0x60, 0, 0, 0, 0, 0, proto::IPV6_OPTS, 64];
            v.extend_from_slice(&[0u8; 32]);
            for i in 0..n {
                let next = if i + 1 == n {
                    proto::TCP
                } else {
                    proto::IPV6_OPTS
                };
                v.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
            }
            let pl = (v.len() - 40) as u16;
            v[4..6].copy_from_slice(&pl.to_be_bytes());
            v
        };
        let b = build(MAX_EXT_HEADERS);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_layer(), Ok((proto::TCP, 40 + 8 * MAX_EXT_HEADERS)));
        let b = build(MAX_EXT_HEADERS + 1);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_layer(), Err(WireError::BadIpv6ExtHeader));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..120), nh in prop::sample::select(vec![0u8, 43, 44, 51, 60, 135, 6])) {
            if data.len() > 6 {
                data[0] = 0x60 | (data[0] & 0x0f);
                data[6] = nh;
            }
            if let Ok(p) = Ipv6Packet::new_checked(&data[..]) {
                let _ = (p.payload().len(), p.upper_layer(), p.src_addr(), p.flow_label());
                let _ = Ipv6Repr::parse(&p);
            }
            // A header-sized unchecked view with a lying payload length.
            if data.len() >= HEADER_LEN {
                let _ = Ipv6Packet::new_unchecked(&data[..]).walk();
            }
        }

        #[test]
        fn repr_round_trip(src in any::<u128>(), dst in any::<u128>(), next_header in any::<u8>(),
                           payload_len in 0usize..100, hop_limit in any::<u8>(), traffic_class in any::<u8>(),
                           flow_label in 0u32..0x10_0000) {
            let r = Ipv6Repr { src_addr: src.into(), dst_addr: dst.into(), next_header, payload_len, hop_limit, traffic_class, flow_label };
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
            prop_assert_eq!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
        }
    }
}
