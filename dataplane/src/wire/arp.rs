//! ARP for IPv4 over Ethernet (RFC 826), the only ARP we speak.
//!
//! Invariant: after [`ArpPacket::new_checked`] the buffer holds the full
//! 28-byte Ethernet/IPv4 packet and its hardware/protocol types and lengths
//! are Ethernet (1, 6) and IPv4 (0x0800, 4); any other ARP flavour is
//! [`WireError::BadArp`], a short one [`WireError::Truncated`].

use std::net::Ipv4Addr;

use super::{read_ipv4, read_mac, read_u16, write, write_u16, Result, WireError};
use xvs_types::MacAddr;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// ARP operation codes.
pub mod op {
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;
}

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;
const HLEN_ETHERNET: u8 = 6;
const PLEN_IPV4: u8 = 4;

mod field {
    use crate::wire::Field;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    /// End of the part whose layout does not depend on HLEN/PLEN.
    pub const FIXED_END: usize = 8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// A view over an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// Length first for the fixed part, then the types (so an ARP for
    /// another medium reports BadArp, not Truncated), then the full length.
    #[inline]
    pub fn check(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < field::FIXED_END {
            return Err(WireError::Truncated);
        }
        if read_u16(b, field::HTYPE) != HTYPE_ETHERNET
            || read_u16(b, field::PTYPE) != PTYPE_IPV4
            || b[field::HLEN] != HLEN_ETHERNET
            || b[field::PLEN] != PLEN_IPV4
        {
            return Err(WireError::BadArp);
        }
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    #[inline]
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PTYPE)
    }

    /// See [`op`].
    #[inline]
    pub fn operation(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::OPER)
    }

    #[inline]
    pub fn sender_hw_addr(&self) -> MacAddr {
        read_mac(self.buffer.as_ref(), field::SHA)
    }

    #[inline]
    pub fn sender_proto_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SPA)
    }

    #[inline]
    pub fn target_hw_addr(&self) -> MacAddr {
        read_mac(self.buffer.as_ref(), field::THA)
    }

    #[inline]
    pub fn target_proto_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes the Ethernet/IPv4 types and lengths.
    #[inline]
    pub fn set_eth_ipv4_types(&mut self) {
        let b = self.buffer.as_mut();
        write_u16(b, field::HTYPE, HTYPE_ETHERNET);
        write_u16(b, field::PTYPE, PTYPE_IPV4);
        b[field::HLEN] = HLEN_ETHERNET;
        b[field::PLEN] = PLEN_IPV4;
    }

    #[inline]
    pub fn set_operation(&mut self, op: u16) {
        write_u16(self.buffer.as_mut(), field::OPER, op);
    }

    #[inline]
    pub fn set_sender_hw_addr(&mut self, a: MacAddr) {
        write(self.buffer.as_mut(), field::SHA, &a.0);
    }

    #[inline]
    pub fn set_sender_proto_addr(&mut self, a: Ipv4Addr) {
        write(self.buffer.as_mut(), field::SPA, &a.octets());
    }

    #[inline]
    pub fn set_target_hw_addr(&mut self, a: MacAddr) {
        write(self.buffer.as_mut(), field::THA, &a.0);
    }

    #[inline]
    pub fn set_target_proto_addr(&mut self, a: Ipv4Addr) {
        write(self.buffer.as_mut(), field::TPA, &a.octets());
    }
}

/// An Ethernet/IPv4 ARP packet as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    pub operation: u16,
    pub sender_hw_addr: MacAddr,
    pub sender_proto_addr: Ipv4Addr,
    pub target_hw_addr: MacAddr,
    pub target_proto_addr: Ipv4Addr,
}

impl ArpRepr {
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<Self> {
        p.check()?;
        Ok(ArpRepr {
            operation: p.operation(),
            sender_hw_addr: p.sender_hw_addr(),
            sender_proto_addr: p.sender_proto_addr(),
            target_hw_addr: p.target_hw_addr(),
            target_proto_addr: p.target_proto_addr(),
        })
    }

    #[inline]
    pub const fn header_len(&self) -> usize {
        PACKET_LEN
    }

    #[inline]
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the whole packet; panics if the view is shorter than
    /// [`PACKET_LEN`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut ArpPacket<T>) {
        p.set_eth_ipv4_types();
        p.set_operation(self.operation);
        p.set_sender_hw_addr(self.sender_hw_addr);
        p.set_sender_proto_addr(self.sender_proto_addr);
        p.set_target_hw_addr(self.target_hw_addr);
        p.set_target_proto_addr(self.target_proto_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Who has 10.0.0.2? Tell 10.0.0.1.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // eth/ipv4, request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 10, 0, 0, 1, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 0, 0, 2, // target
    ];

    #[test]
    fn parse_emit_fixture() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        let r = ArpRepr::parse(&p).unwrap();
        assert_eq!(r.operation, op::REQUEST);
        assert_eq!(r.sender_hw_addr, MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(r.sender_proto_addr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(r.target_hw_addr, MacAddr::ZERO);
        assert_eq!(r.target_proto_addr, Ipv4Addr::new(10, 0, 0, 2));
        let mut buf = [0u8; PACKET_LEN];
        r.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REQUEST);
    }

    #[test]
    fn errors() {
        for n in 0..PACKET_LEN {
            assert_eq!(
                ArpPacket::new_checked(&REQUEST[..n]),
                Err(WireError::Truncated)
            );
        }
        for (at, v) in [(1, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut b = REQUEST;
            b[at] = v;
            assert_eq!(ArpPacket::new_checked(&b[..]), Err(WireError::BadArp));
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = ArpPacket::new_checked(&data[..]) {
                let _ = ArpRepr::parse(&p).unwrap();
            }
        }

        #[test]
        fn repr_round_trip(opc in any::<u16>(), sha in any::<[u8; 6]>(), spa in any::<u32>(), tha in any::<[u8; 6]>(), tpa in any::<u32>()) {
            let r = ArpRepr {
                operation: opc,
                sender_hw_addr: MacAddr(sha),
                sender_proto_addr: spa.into(),
                target_hw_addr: MacAddr(tha),
                target_proto_addr: tpa.into(),
            };
            let mut buf = [0u8; PACKET_LEN];
            r.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
            prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()).unwrap(), r);
        }
    }
}
