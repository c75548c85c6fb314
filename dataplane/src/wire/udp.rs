//! UDP datagrams (RFC 768), the carrier of both VXLAN and Geneve.
//!
//! Invariant: after [`UdpPacket::new_checked`] the length field is at least
//! 8 and within the buffer, so `payload()` (which stops at the length field)
//! and the checksum functions cannot panic. The buffer should be the IP
//! payload: anything past the length field (e.g. Ethernet padding) is
//! ignored.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::checksum::{self, ones_sum, pseudo_header_v4, pseudo_header_v6};
use super::ip::proto;
use super::{read_u16, write_u16, Result, WireError};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

mod field {
    use crate::wire::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
    pub const PAYLOAD: usize = 8;
}

/// A view over a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
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
        let len = usize::from(self.len());
        if len < HEADER_LEN || len > b.len() {
            return Err(WireError::BadUdpLength);
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

    /// The length field: header plus payload.
    #[allow(clippy::len_without_is_empty)]
    #[inline]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..usize::from(self.len())]
    }

    /// Header and payload as the length field counts them.
    #[inline]
    fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.len())]
    }

    /// Verifies the checksum over the IPv4 pseudo header and the datagram.
    /// A zero checksum means the sender did not compute one (RFC 768), which
    /// IPv4 allows, so it verifies as true.
    #[inline]
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let ph = pseudo_header_v4(src, dst, proto::UDP, u32::from(self.len()));
        checksum::fold(ones_sum(ph, self.datagram())) == 0xffff
    }

    /// Verifies the checksum over the IPv6 pseudo header and the datagram.
    /// Zero is invalid in IPv6 (RFC 8200 §8.1) and returns false; RFC 6935
    /// lets tunnel endpoints accept zero on configured tunnels, which is the
    /// caller's decision (test `checksum() == 0` before calling).
    #[inline]
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        if self.checksum() == 0 {
            return false;
        }
        let ph = pseudo_header_v6(src, dst, proto::UDP, u32::from(self.len()));
        checksum::fold(ones_sum(ph, self.datagram())) == 0xffff
    }
}

impl<'a> UdpPacket<&'a [u8]> {
    /// Like `payload()`, but borrowed for the buffer's lifetime rather than
    /// the view's, so a parser can return it after the view is gone.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let range = field::PAYLOAD..usize::from(self.len());
        &self.buffer[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, p: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, p);
    }

    #[inline]
    pub fn set_dst_port(&mut self, p: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, p);
    }

    #[inline]
    pub fn set_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[field::PAYLOAD..end]
    }

    /// A computed checksum of zero is sent as 0xffff, because zero on the
    /// wire means "no checksum" (RFC 768).
    #[inline]
    fn store_checksum(&mut self, ph: u64) {
        self.set_checksum(0);
        let c = !checksum::fold(ones_sum(ph, self.datagram()));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// Computes and stores the checksum (length field must be final).
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let ph = pseudo_header_v4(src, dst, proto::UDP, u32::from(self.len()));
        self.store_checksum(ph);
    }

    #[inline]
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let ph = pseudo_header_v6(src, dst, proto::UDP, u32::from(self.len()));
        self.store_checksum(ph);
    }
}

/// A UDP header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: usize,
}

impl UdpRepr {
    /// Reads the header; the checksum is the caller's to verify (it needs
    /// the IP addresses).
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>) -> Result<Self> {
        p.check()?;
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: usize::from(p.len()) - HEADER_LEN,
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

    /// Writes the header with a zero checksum; call `fill_checksum_*` once
    /// the payload is in place. The length saturates at 65535. Panics if the
    /// view is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut UdpPacket<T>) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(u16::try_from(self.buffer_len()).unwrap_or(u16::MAX));
        p.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);

    /// 53 -> 49152, "hi!" plus a padding byte outside the length.
    fn datagram() -> Vec<u8> {
        let mut v = vec![
            0x00, 0x35, 0xc0, 0x00, 0x00, 0x0b, 0x00, 0x00, b'h', b'i', b'!',
        ];
        let mut p = UdpPacket::new_unchecked(&mut v[..]);
        p.fill_checksum_v4(SRC, DST);
        v.push(0);
        v
    }

    #[test]
    fn parse_fixture() {
        let b = datagram();
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.src_port(), 53);
        assert_eq!(p.dst_port(), 49152);
        assert_eq!(p.len(), 11);
        assert_eq!(p.payload(), b"hi!");
        assert!(p.verify_checksum_v4(SRC, DST));
        assert!(!p.verify_checksum_v4(SRC, Ipv4Addr::new(192, 168, 1, 3)));
        // Hand-computed: pseudo header c0a8+0101+c0a8+0102+0011+000b, header
        // 0035+c000+000b, data 6869+2100.
        assert_eq!(p.checksum(), 0x32e5);
        let mut c = b.clone();
        c[6] = 0;
        c[7] = 0;
        assert!(UdpPacket::new_checked(&c[..])
            .unwrap()
            .verify_checksum_v4(SRC, DST));
    }

    #[test]
    fn v6_checksum_and_zero() {
        let s: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut b = datagram();
        let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
        p.fill_checksum_v6(&s, &d);
        assert!(p.verify_checksum_v6(&s, &d));
        p.set_checksum(0);
        assert!(!p.verify_checksum_v6(&s, &d));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Payload chosen so the sum is 0xffff: header words plus 0xffff - sum.
        let mut v = vec![0, 0, 0, 0, 0, 10, 0, 0, 0, 0];
        let ph = pseudo_header_v4(SRC, DST, proto::UDP, 10);
        let s = checksum::fold(ones_sum(ph, &v));
        v[8..10].copy_from_slice(&(0xffff - s).to_be_bytes());
        let mut p = UdpPacket::new_checked(&mut v[..]).unwrap();
        p.fill_checksum_v4(SRC, DST);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum_v4(SRC, DST));
    }

    #[test]
    fn errors() {
        let b = datagram();
        for n in 0..HEADER_LEN {
            assert_eq!(UdpPacket::new_checked(&b[..n]), Err(WireError::Truncated));
        }
        for n in HEADER_LEN..11 {
            assert_eq!(
                UdpPacket::new_checked(&b[..n]),
                Err(WireError::BadUdpLength)
            );
        }
        let mut c = b.clone();
        c[5] = 7;
        assert_eq!(UdpPacket::new_checked(&c[..]), Err(WireError::BadUdpLength));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = UdpPacket::new_checked(&data[..]) {
                let _ = (p.payload().len(), p.verify_checksum_v4(SRC, DST), p.verify_checksum_v6(&Ipv6Addr::LOCALHOST, &Ipv6Addr::LOCALHOST));
            }
        }

        #[test]
        fn repr_round_trip(src_port in any::<u16>(), dst_port in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let r = UdpRepr { src_port, dst_port, payload_len: payload.len() };
            let mut buf = vec![0u8; r.buffer_len()];
            let mut p = UdpPacket::new_unchecked(&mut buf[..]);
            r.emit(&mut p);
            p.payload_mut().copy_from_slice(&payload);
            p.fill_checksum_v4(SRC, DST);
            let p = UdpPacket::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum_v4(SRC, DST));
            prop_assert_eq!(UdpRepr::parse(&p).unwrap(), r);
        }
    }
}
