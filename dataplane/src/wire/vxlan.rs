//! VXLAN headers (RFC 7348 §5): 8 bytes after UDP, then an Ethernet frame.
//!
//! ```text
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! ```
//!
//! Invariant: after [`VxlanPacket::new_checked`] the buffer holds the 8-byte
//! header and the I flag is set. Reserved bits are ignored on receipt, as
//! RFC 7348 §5 requires ("MUST be ignored on receipt"). Open vSwitch is
//! stricter (its decap drops packets with any other flag bit set unless GBP
//! or GPE is configured on the port); we follow the RFC so that peers using
//! extensions we do not implement still reach us. On emit every reserved bit
//! is zero.

use super::{read_u32, write, Result, WireError};

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// IANA-assigned UDP port (RFC 7348 §5).
pub const DEFAULT_PORT: u16 = 4789;
/// The I flag: the VNI is valid. The only flag this RFC defines.
pub const FLAG_I: u8 = 0x08;

mod field {
    use crate::wire::Field;
    pub const FLAGS: usize = 0;
    /// VNI (24 bits) and the last reserved byte.
    pub const VNI_RSVD: Field = 4..8;
    pub const PAYLOAD: usize = 8;
}

const VNI_MAX: u32 = 0x00ff_ffff;

/// A view over a VXLAN header and its inner frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanPacket { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    #[inline]
    pub fn check(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.flags() & FLAG_I == 0 {
            return Err(WireError::VxlanNoIFlag);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole first byte (I flag and reserved bits).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The 24-bit VNI.
    #[inline]
    pub fn vni(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VNI_RSVD) >> 8
    }

    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<'a> VxlanPacket<&'a [u8]> {
    /// Like `payload()`, but borrowed for the buffer's lifetime rather than
    /// the view's, so a parser can return it after the view is gone.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let range = field::PAYLOAD..;
        &self.buffer[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    #[inline]
    pub fn set_flags(&mut self, f: u8) {
        self.buffer.as_mut()[field::FLAGS] = f;
    }

    /// Sets the VNI (low 24 bits of `vni`), keeping the reserved byte.
    #[inline]
    pub fn set_vni(&mut self, vni: u32) {
        let b = self.buffer.as_mut();
        let v = ((vni & VNI_MAX) << 8) | (read_u32(b, field::VNI_RSVD) & 0xff);
        write(b, field::VNI_RSVD, &v.to_be_bytes());
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// A VXLAN header as values: only the VNI is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VxlanRepr {
    /// 24-bit VNI; higher bits are dropped on emit.
    pub vni: u32,
}

impl VxlanRepr {
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &VxlanPacket<T>) -> Result<Self> {
        p.check()?;
        Ok(VxlanRepr { vni: p.vni() })
    }

    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes flags = I and zero reserved bits. Panics if the view is
    /// shorter than [`HEADER_LEN`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut VxlanPacket<T>) {
        let b = p.buffer.as_mut();
        b[..HEADER_LEN].copy_from_slice(&[0; HEADER_LEN]);
        p.set_flags(FLAG_I);
        p.set_vni(self.vni);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_emit_fixture() {
        let b = [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0, 0xde, 0xad];
        let p = VxlanPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.vni(), 0x123456);
        assert_eq!(p.flags(), FLAG_I);
        assert_eq!(p.payload(), &[0xde, 0xad]);
        let mut out = [0u8; 8];
        VxlanRepr::parse(&p)
            .unwrap()
            .emit(&mut VxlanPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, b[..8]);
    }

    #[test]
    fn reserved_bits_ignored_i_flag_required() {
        let b = [0xff, 0xff, 0xff, 0xff, 0, 0, 7, 0xff];
        let p = VxlanPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.vni(), 7);
        let b = [0xf7, 0xff, 0xff, 0xff, 0, 0, 7, 0xff];
        assert_eq!(
            VxlanPacket::new_checked(&b[..]),
            Err(WireError::VxlanNoIFlag)
        );
        for n in 0..HEADER_LEN {
            assert_eq!(VxlanPacket::new_checked(&b[..n]), Err(WireError::Truncated));
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..20)) {
            if let Ok(p) = VxlanPacket::new_checked(&data[..]) {
                let _ = (p.vni(), p.payload().len());
            }
        }

        #[test]
        fn repr_round_trip(vni in 0u32..0x100_0000, junk in any::<[u8; 8]>()) {
            let mut b = junk;
            VxlanRepr { vni }.emit(&mut VxlanPacket::new_unchecked(&mut b[..]));
            prop_assert_eq!(b[0], FLAG_I);
            prop_assert_eq!([b[1], b[2], b[3], b[7]], [0; 4]);
            prop_assert_eq!(VxlanRepr::parse(&VxlanPacket::new_checked(&b[..]).unwrap()).unwrap(), VxlanRepr { vni });
        }
    }
}
