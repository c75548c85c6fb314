//! IPv4 headers (RFC 791).
//!
//! Invariant: after [`Ipv4Packet::new_checked`] the version is 4, the header
//! length (IHL) is at least 20 bytes and within the buffer, and the total
//! length covers the header and is within the buffer. So `options()` and
//! `payload()` cannot panic, and `payload()` stops at the total length, which
//! drops the padding Ethernet adds to short frames. The header checksum is
//! NOT checked here: only the tunnel layer verifies it (on the outer header).

use std::net::Ipv4Addr;

pub use super::ip::proto;
use super::{checksum, read_ipv4, read_u16, write, write_u16, Result, WireError};

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

mod field {
    use crate::wire::Field;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
    pub const OPTIONS: usize = 20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view over an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// The checks `new_checked` makes, in the order that decides which error
    /// a doubly broken header reports.
    #[inline]
    pub fn check(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        let len = b.len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(WireError::BadIpVersion);
        }
        let hlen = self.header_len();
        if hlen < HEADER_LEN || hlen > len {
            return Err(WireError::BadIhl);
        }
        let total = usize::from(self.total_len());
        if total < hlen || total > len {
            return Err(WireError::BadIpLength);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The whole DSCP + ECN byte.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    #[inline]
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }

    #[inline]
    pub fn ecn(&self) -> u8 {
        self.tos() & 0x3
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    fn flg_off(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flg_off() & FLAG_DF != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flg_off() & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flg_off() & OFFSET_MASK) << 3
    }

    /// True for any fragment, first or later: MF set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flg_off() & (FLAG_MF | OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// See [`proto`].
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SRC_ADDR)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::DST_ADDR)
    }

    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    /// The bytes between the header and the total length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }

    /// True if the header (options included) sums to zero.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::ones_sum(
            0,
            &self.buffer.as_ref()[..self.header_len()],
        )) == 0xffff
    }
}

impl<'a> Ipv4Packet<&'a [u8]> {
    /// Like `payload()`, but borrowed for the buffer's lifetime rather than
    /// the view's, so a parser can return it after the view is gone.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &self.buffer[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version nibble; emitters always pass 4.
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets IHL from a length in bytes (rounded down to 4-byte units; at
    /// most 60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let ihl = (len / 4).min(15) as u8;
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ihl;
    }

    #[inline]
    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[field::TOS] = tos;
    }

    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    #[inline]
    pub fn set_ident(&mut self, id: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, id);
    }

    #[inline]
    fn set_flg_off(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    #[inline]
    pub fn set_dont_frag(&mut self, df: bool) {
        let v = self.flg_off();
        self.set_flg_off(if df { v | FLAG_DF } else { v & !FLAG_DF });
    }

    #[inline]
    pub fn set_more_frags(&mut self, mf: bool) {
        let v = self.flg_off();
        self.set_flg_off(if mf { v | FLAG_MF } else { v & !FLAG_MF });
    }

    /// Sets the fragment offset from bytes (must be a multiple of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, bytes: u16) {
        let v = (self.flg_off() & !OFFSET_MASK) | ((bytes >> 3) & OFFSET_MASK);
        self.set_flg_off(v);
    }

    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    #[inline]
    pub fn set_protocol(&mut self, p: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = p;
    }

    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        write(self.buffer.as_mut(), field::SRC_ADDR, &a.octets());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        write(self.buffer.as_mut(), field::DST_ADDR, &a.octets());
    }

    /// Computes and stores the header checksum (over IHL × 4 bytes).
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hlen = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..hlen]);
        self.set_checksum(c);
    }

    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hlen = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..hlen]
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

/// An option-less IPv4 header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: u8,
    /// Bytes after the header.
    pub payload_len: usize,
    pub ttl: u8,
    pub tos: u8,
    pub dont_frag: bool,
    pub ident: u16,
}

impl Ipv4Repr {
    /// Reads the header values. Options are skipped (payload_len is what
    /// follows them); fragments are reported as [`WireError::Fragment`]
    /// because a Repr cannot describe one.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<Self> {
        p.check()?;
        if p.is_fragment() {
            return Err(WireError::Fragment);
        }
        Ok(Ipv4Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: usize::from(p.total_len()) - p.header_len(),
            ttl: p.ttl(),
            tos: p.tos(),
            dont_frag: p.dont_frag(),
            ident: p.ident(),
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

    /// Writes a 20-byte header with its checksum. The total length saturates
    /// at 65535 (the caller keeps payload_len in range). Panics if the view
    /// is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv4Packet<T>) {
        p.set_version(4);
        p.set_header_len(HEADER_LEN);
        p.set_tos(self.tos);
        p.set_total_len(u16::try_from(self.buffer_len()).unwrap_or(u16::MAX));
        p.set_ident(self.ident);
        p.set_flg_off(if self.dont_frag { FLAG_DF } else { 0 });
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.fill_checksum();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 192.168.0.1 -> 192.168.0.199, UDP, total length 0x73 (header only in
    /// the fixture: the rest is built in tests that need it).
    pub(crate) const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn packet() -> Vec<u8> {
        let mut v = HEADER.to_vec();
        v.resize(0x73, 0xab);
        v
    }

    #[test]
    fn parse_fixture() {
        let mut buf = packet();
        buf.extend_from_slice(&[0, 0, 0]); // Ethernet padding
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 0x73);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), proto::UDP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 0x73 - 20);
        assert!(p.options().is_empty());
        let r = Ipv4Repr::parse(&p).unwrap();
        let mut out = vec![0u8; 20];
        r.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, HEADER);
    }

    #[test]
    fn options_and_fragments() {
        let mut b = packet();
        b[0] = 0x46; // IHL 6: 4 bytes of options
        b[6] = 0x20; // MF
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.options().len(), 4);
        assert_eq!(p.payload().len(), 0x73 - 24);
        assert!(p.is_fragment());
        assert_eq!(Ipv4Repr::parse(&p), Err(WireError::Fragment));
        p.set_more_frags(false);
        p.set_frag_offset(1480);
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.is_fragment() && !p.more_frags());
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.set_ttl(1);
        assert!(!p.verify_checksum());
    }

    #[test]
    fn errors() {
        let b = packet();
        for n in 0..HEADER_LEN {
            assert_eq!(Ipv4Packet::new_checked(&b[..n]), Err(WireError::Truncated));
        }
        // Shorter than the total length.
        assert_eq!(
            Ipv4Packet::new_checked(&b[..0x72]),
            Err(WireError::BadIpLength)
        );
        let with = |at: usize, v: u8| {
            let mut c = b.clone();
            c[at] = v;
            Ipv4Packet::new_checked(c).err()
        };
        assert_eq!(with(0, 0x65), Some(WireError::BadIpVersion));
        assert_eq!(with(0, 0x44), Some(WireError::BadIhl));
        assert_eq!(with(3, 19), Some(WireError::BadIpLength));
        let mut c = b[..22].to_vec();
        c[0] = 0x46; // 24-byte header in 22 bytes
        assert_eq!(Ipv4Packet::new_checked(c).err(), Some(WireError::BadIhl));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Ipv4Packet::new_checked(&data[..]) {
                let _ = (p.options().len(), p.payload().len(), p.verify_checksum(), p.src_addr());
                let _ = Ipv4Repr::parse(&p);
            }
        }

        #[test]
        fn repr_round_trip(src in any::<u32>(), dst in any::<u32>(), protocol in any::<u8>(),
                           payload_len in 0usize..100, ttl in any::<u8>(), tos in any::<u8>(),
                           dont_frag in any::<bool>(), ident in any::<u16>()) {
            let r = Ipv4Repr { src_addr: src.into(), dst_addr: dst.into(), protocol, payload_len, ttl, tos, dont_frag, ident };
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Ipv4Repr::parse(&p).unwrap(), r);
        }
    }
}
