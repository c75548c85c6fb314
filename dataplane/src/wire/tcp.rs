//! TCP segment headers (RFC 9293), read for flow keys and firewall rules and
//! written only to fix checksums after NAT-style rewrites.
//!
//! Invariant: after [`TcpPacket::new_checked`] the data offset is at least 5
//! words and within the buffer, so `options()` and `payload()` cannot panic.
//! The checksum functions cover the whole buffer: pass exactly the IP
//! payload.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::checksum::{self, ones_sum, pseudo_header_v4, pseudo_header_v6};
use super::ip::proto;
use super::{read_u16, read_u32, write_u16, write_u32, Result, WireError};

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

// Flag bits as returned by `flags()` (the low 9 bits of bytes 12..14).
pub const FIN: u16 = 0x001;
pub const SYN: u16 = 0x002;
pub const RST: u16 = 0x004;
pub const PSH: u16 = 0x008;
pub const ACK: u16 = 0x010;
pub const URG: u16 = 0x020;
pub const ECE: u16 = 0x040;
pub const CWR: u16 = 0x080;
pub const NS: u16 = 0x100;
const FLAGS_MASK: u16 = 0x01ff;

mod field {
    use crate::wire::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ: Field = 4..8;
    pub const ACK: Field = 8..12;
    /// Data offset (4 bits), reserved (3), flags (9).
    pub const OFF_FLAGS: Field = 12..14;
    pub const WINDOW: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
    pub const OPTIONS: usize = 20;
}

/// A view over a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    #[inline]
    pub fn check(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hlen = self.header_len();
        if hlen < HEADER_LEN || hlen > len {
            return Err(WireError::BadTcpOffset);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    #[inline]
    pub fn seq(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ)
    }

    #[inline]
    pub fn ack(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK)
    }

    #[inline]
    fn off_flags(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::OFF_FLAGS)
    }

    /// Header length in bytes (data offset × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.off_flags() >> 12) * 4
    }

    /// Flag bits; test with [`SYN`], [`ACK`], [`FIN`], [`RST`], [`PSH`]...
    #[inline]
    pub fn flags(&self) -> u16 {
        self.off_flags() & FLAGS_MASK
    }

    #[inline]
    pub fn window(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn urgent(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Checks the checksum over the IPv4 pseudo header and the whole buffer.
    #[inline]
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let b = self.buffer.as_ref();
        let ph = pseudo_header_v4(src, dst, proto::TCP, b.len() as u32);
        checksum::fold(ones_sum(ph, b)) == 0xffff
    }

    #[inline]
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let ph = pseudo_header_v6(src, dst, proto::TCP, b.len() as u32);
        checksum::fold(ones_sum(ph, b)) == 0xffff
    }
}

impl<'a> TcpPacket<&'a [u8]> {
    /// Like `payload()`, but borrowed for the buffer's lifetime rather than
    /// the view's, so a parser can return it after the view is gone.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let range = self.header_len()..;
        &self.buffer[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, p: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, p);
    }

    #[inline]
    pub fn set_dst_port(&mut self, p: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, p);
    }

    #[inline]
    pub fn set_seq(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ, v);
    }

    #[inline]
    pub fn set_ack(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::ACK, v);
    }

    /// Sets the data offset from a length in bytes (4-byte units, max 60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let words = (len / 4).min(15) as u16;
        let v = (self.off_flags() & 0x0fff) | (words << 12);
        write_u16(self.buffer.as_mut(), field::OFF_FLAGS, v);
    }

    /// Sets the 9 flag bits, keeping the data offset.
    #[inline]
    pub fn set_flags(&mut self, flags: u16) {
        let v = (self.off_flags() & !FLAGS_MASK) | (flags & FLAGS_MASK);
        write_u16(self.buffer.as_mut(), field::OFF_FLAGS, v);
    }

    #[inline]
    pub fn set_window(&mut self, w: u16) {
        write_u16(self.buffer.as_mut(), field::WINDOW, w);
    }

    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    #[inline]
    pub fn set_urgent(&mut self, u: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, u);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }

    #[inline]
    fn store_checksum(&mut self, ph: u64) {
        self.set_checksum(0);
        let c = !checksum::fold(ones_sum(ph, self.buffer.as_ref()));
        self.set_checksum(c);
    }

    /// Computes and stores the checksum over the whole buffer.
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.buffer.as_ref().len() as u32;
        self.store_checksum(pseudo_header_v4(src, dst, proto::TCP, len));
    }

    #[inline]
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let len = self.buffer.as_ref().len() as u32;
        self.store_checksum(pseudo_header_v6(src, dst, proto::TCP, len));
    }
}

/// An option-less TCP header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u16,
    pub window: u16,
    pub payload_len: usize,
}

impl TcpRepr {
    /// Reads the header; options are skipped, the checksum is the caller's.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &TcpPacket<T>) -> Result<Self> {
        p.check()?;
        Ok(TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq(),
            ack: p.ack(),
            flags: p.flags(),
            window: p.window(),
            payload_len: p.payload().len(),
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

    /// Writes a 20-byte header with a zero checksum and urgent pointer.
    /// Panics if the view is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut TcpPacket<T>) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq(self.seq);
        p.set_ack(self.ack);
        write_u16(
            p.buffer.as_mut(),
            field::OFF_FLAGS,
            (5 << 12) | (self.flags & FLAGS_MASK),
        );
        p.set_window(self.window);
        p.set_checksum(0);
        p.set_urgent(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// SYN 40000 -> 80 with an MSS option (data offset 6).
    const SYN_SEG: [u8; 24] = [
        0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xfa,
        0xf0, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
    ];

    #[test]
    fn parse_fixture() {
        let mut b = SYN_SEG;
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let mut p = TcpPacket::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq(), 1000);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags(), SYN);
        assert_eq!(p.window(), 0xfaf0);
        assert_eq!(p.options(), &[2, 4, 5, 0xb4]);
        assert!(p.payload().is_empty());
        p.fill_checksum_v4(src, dst);
        assert!(p.verify_checksum_v4(src, dst));
        let c = p.checksum();
        p.set_flags(SYN | ACK);
        assert_eq!(p.header_len(), 24);
        assert!(!p.verify_checksum_v4(src, dst));
        p.set_checksum(checksum::update16(c, 0x6002, 0x6012));
        assert!(p.verify_checksum_v4(src, dst));
    }

    #[test]
    fn errors() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                TcpPacket::new_checked(&SYN_SEG[..n]),
                Err(WireError::Truncated)
            );
        }
        assert_eq!(
            TcpPacket::new_checked(&SYN_SEG[..22]),
            Err(WireError::BadTcpOffset)
        );
        let mut b = SYN_SEG;
        b[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&b[..]), Err(WireError::BadTcpOffset));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = TcpPacket::new_checked(&data[..]) {
                let _ = (p.options().len(), p.payload().len(), p.flags(), p.verify_checksum_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST));
            }
        }

        #[test]
        fn repr_round_trip(src_port in any::<u16>(), dst_port in any::<u16>(), seq in any::<u32>(), ack in any::<u32>(),
                           flags in 0u16..0x200, window in any::<u16>(), payload_len in 0usize..40) {
            let r = TcpRepr { src_port, dst_port, seq, ack, flags, window, payload_len };
            let mut buf = vec![0u8; r.buffer_len()];
            let s6 = Ipv6Addr::LOCALHOST;
            let mut p = TcpPacket::new_unchecked(&mut buf[..]);
            r.emit(&mut p);
            p.fill_checksum_v6(&s6, &s6);
            let p = TcpPacket::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum_v6(&s6, &s6));
            prop_assert_eq!(TcpRepr::parse(&p).unwrap(), r);
        }
    }
}
