//! 802.1Q VLAN tags: the four bytes that follow the TPID (0x8100), i.e. the
//! tag control information (PCP, DEI, VID) and the encapsulated ethertype.
//!
//! The TPID itself is the outer ethertype and is read through
//! [`super::EthernetFrame`]. Invariant: after [`VlanTag::new_checked`] the
//! buffer holds at least [`TAG_LEN`] bytes.

use super::{read_u16, write_u16, Result, WireError};

/// Bytes a tag adds after the TPID: TCI (2) + inner ethertype (2).
pub const TAG_LEN: usize = 4;

mod field {
    use crate::wire::Field;
    pub const TCI: Field = 0..2;
    pub const ETHERTYPE: Field = 2..4;
    pub const PAYLOAD: usize = 4;
}

const PCP_SHIFT: u16 = 13;
const DEI_BIT: u16 = 0x1000;
const VID_MASK: u16 = 0x0fff;

/// A view over a VLAN tag (after the TPID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let t = Self::new_unchecked(buffer);
        t.check_len()?;
        Ok(t)
    }

    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < TAG_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The raw tag control information (PCP | DEI | VID).
    #[inline]
    pub fn tci(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TCI)
    }

    /// Priority code point (0..=7).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> PCP_SHIFT) as u8
    }

    /// Drop eligible indicator (formerly CFI).
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & DEI_BIT != 0
    }

    /// VLAN identifier (0..=4095; 0 means priority-tagged, 4095 reserved).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & VID_MASK
    }

    /// Ethertype of what the tag encapsulates.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<'a> VlanTag<&'a [u8]> {
    /// Like `payload()`, but borrowed for the buffer's lifetime rather than
    /// the view's, so a parser can return it after the view is gone.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let range = field::PAYLOAD..;
        &self.buffer[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        write_u16(self.buffer.as_mut(), field::TCI, tci);
    }

    /// Sets the PCP; only the low 3 bits of `pcp` are used.
    #[inline]
    pub fn set_pcp(&mut self, pcp: u8) {
        let tci = (self.tci() & !(0x7 << PCP_SHIFT)) | ((u16::from(pcp) & 0x7) << PCP_SHIFT);
        self.set_tci(tci);
    }

    #[inline]
    pub fn set_dei(&mut self, dei: bool) {
        let tci = if dei {
            self.tci() | DEI_BIT
        } else {
            self.tci() & !DEI_BIT
        };
        self.set_tci(tci);
    }

    /// Sets the VID; only the low 12 bits of `vid` are used.
    #[inline]
    pub fn set_vid(&mut self, vid: u16) {
        let tci = (self.tci() & !VID_MASK) | (vid & VID_MASK);
        self.set_tci(tci);
    }

    #[inline]
    pub fn set_ethertype(&mut self, t: u16) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, t);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// A VLAN tag as values. `pcp` above 7 and `vid` above 4095 are masked on
/// emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanRepr {
    pub pcp: u8,
    pub dei: bool,
    pub vid: u16,
    pub ethertype: u16,
}

impl VlanRepr {
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(tag: &VlanTag<T>) -> Result<Self> {
        tag.check_len()?;
        Ok(VlanRepr {
            pcp: tag.pcp(),
            dei: tag.dei(),
            vid: tag.vid(),
            ethertype: tag.ethertype(),
        })
    }

    #[inline]
    pub const fn header_len(&self) -> usize {
        TAG_LEN
    }

    /// The TCI these values encode.
    #[inline]
    pub fn tci(&self) -> u16 {
        ((u16::from(self.pcp) & 0x7) << PCP_SHIFT)
            | if self.dei { DEI_BIT } else { 0 }
            | (self.vid & VID_MASK)
    }

    /// Writes the tag; panics if the view is shorter than [`TAG_LEN`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, tag: &mut VlanTag<T>) {
        tag.set_tci(self.tci());
        tag.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_fixture() {
        // PCP 5, DEI 1, VID 100, IPv4 inside.
        let b = [0xb0, 0x64, 0x08, 0x00, 0x45];
        let t = VlanTag::new_checked(&b[..]).unwrap();
        assert_eq!(t.tci(), 0xb064);
        assert_eq!(t.pcp(), 5);
        assert!(t.dei());
        assert_eq!(t.vid(), 100);
        assert_eq!(t.ethertype(), 0x0800);
        assert_eq!(t.payload(), &[0x45]);
        for n in 0..TAG_LEN {
            assert_eq!(VlanTag::new_checked(&b[..n]), Err(WireError::Truncated));
        }
    }

    #[test]
    fn setters_touch_only_their_bits() {
        let mut b = [0xff, 0xff, 0, 0];
        let mut t = VlanTag::new_unchecked(&mut b[..]);
        t.set_vid(0x123);
        assert_eq!(t.tci(), 0xf123);
        t.set_pcp(2);
        assert_eq!(t.tci(), 0x5123);
        t.set_dei(false);
        assert_eq!(t.tci(), 0x4123);
    }

    proptest! {
        #[test]
        fn repr_round_trip(pcp in 0u8..8, dei in any::<bool>(), vid in 0u16..4096, et in any::<u16>()) {
            let r = VlanRepr { pcp, dei, vid, ethertype: et };
            let mut b = [0u8; TAG_LEN];
            r.emit(&mut VlanTag::new_unchecked(&mut b[..]));
            prop_assert_eq!(VlanRepr::parse(&VlanTag::new_checked(&b[..]).unwrap()).unwrap(), r);
        }
    }
}
