//! Geneve headers and options (RFC 8926 §3).
//!
//! ```text
//! |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//! |        Virtual Network Identifier (VNI)       |    Reserved   |
//! |                    Variable-Length Options                    |
//! option: | Option Class (16) | Type (8) |R|R|R| Length (5) | data (Length × 4) |
//! ```
//!
//! RFC points we enforce:
//! - Version must be 0; anything else is dropped (§3.4: "Packets received
//!   by a tunnel endpoint with an unknown version MUST be dropped").
//! - O (OAM) marks a control packet: it is never forwarded as data (§3.4);
//!   the tunnel layer counts it as `GeneveControl`.
//! - An option with the critical bit (high bit of Type) that we do not
//!   understand makes the packet undeliverable and it MUST be dropped
//!   (§3.5.1); [`GenevePacket::check_options`] reports that as
//!   [`WireError::GeneveCriticalOption`].
//! - The protocol type is not checked here: the tunnel layer rejects
//!   anything but Transparent Ethernet Bridging (0x6558) with
//!   [`WireError::GeneveBadProtocol`].
//!
//! Invariant: after [`GenevePacket::new_checked`] the fixed header and the
//! whole option area (Opt Len × 4 bytes) are in the buffer. Individual
//! option TLVs are checked as they are iterated; none can be read past the
//! option area.

use super::{read_u16, read_u32, write, write_u16, Result, WireError};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 8;
/// IANA-assigned UDP port (RFC 8926 §3.3).
pub const DEFAULT_PORT: u16 = 6081;
/// Opt Len is 6 bits of 4-byte units.
pub const MAX_OPTIONS_LEN: usize = 63 * 4;
/// An option's Length is 5 bits of 4-byte units.
pub const MAX_OPTION_DATA_LEN: usize = 31 * 4;
/// Option header: class (2), type (1), length (1).
pub const OPTION_HEADER_LEN: usize = 4;

const VER_SHIFT: u8 = 6;
const OPT_LEN_MASK: u8 = 0x3f;
const FLAG_O: u8 = 0x80;
const FLAG_C: u8 = 0x40;
/// High bit of an option's type: the receiver must understand it.
pub const OPTION_CRITICAL: u8 = 0x80;
const OPTION_LEN_MASK: u8 = 0x1f;

mod field {
    use crate::wire::Field;
    pub const VER_OPTLEN: usize = 0;
    pub const FLAGS: usize = 1;
    pub const PROTOCOL: Field = 2..4;
    /// VNI (24 bits) and the reserved byte.
    pub const VNI_RSVD: Field = 4..8;
    pub const OPTIONS: usize = 8;

    // Option fields, relative to the option.
    pub const OPT_CLASS: Field = 0..2;
    pub const OPT_TYPE: usize = 2;
    pub const OPT_LEN: usize = 3;
    pub const OPT_DATA: usize = 4;
}

const VNI_MAX: u32 = 0x00ff_ffff;

/// A view over a Geneve header, its options and the inner frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenevePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GenevePacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        GenevePacket { buffer }
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
        if self.version() != 0 {
            return Err(WireError::GeneveBadVersion);
        }
        if self.header_len() > len {
            return Err(WireError::GeneveBadOptions);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_OPTLEN] >> VER_SHIFT
    }

    /// Length of the option area in bytes.
    #[inline]
    pub fn options_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_OPTLEN] & OPT_LEN_MASK) * 4
    }

    /// Fixed header plus options: where the inner frame starts.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }

    /// O bit: a control (OAM) packet, not to be forwarded as data.
    #[inline]
    pub fn oam(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & FLAG_O != 0
    }

    /// C bit: at least one option is critical.
    #[inline]
    pub fn critical(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & FLAG_C != 0
    }

    /// Ethertype of the payload (0x6558 for an Ethernet frame).
    #[inline]
    pub fn protocol(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PROTOCOL)
    }

    #[inline]
    pub fn vni(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VNI_RSVD) >> 8
    }

    /// The raw option area.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    /// The inner frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Iterates over the option TLVs. After the first error it yields
    /// nothing more.
    #[inline]
    pub fn option_iter(&self) -> GeneveOptionIter<'_> {
        // Written with `get` so that even an unchecked view cannot make this
        // panic (it then sees no options if the area is incomplete).
        let b = self.buffer.as_ref();
        let opt_len = b
            .get(field::VER_OPTLEN)
            .map_or(0, |v| usize::from(v & OPT_LEN_MASK) * 4);
        let area = b.get(field::OPTIONS..HEADER_LEN + opt_len).unwrap_or(&[]);
        GeneveOptionIter { rest: area }
    }

    /// Walks every option: [`WireError::GeneveBadOptions`] if a TLV is
    /// malformed, [`WireError::GeneveCriticalOption`] if an option with the
    /// critical bit is not `known(class, type)`. Non-critical unknown
    /// options are skipped (RFC 8926 §3.5.1). Runs even when the C bit is
    /// clear: a lying C bit must not smuggle a critical option past us.
    pub fn check_options(&self, known: impl Fn(u16, u8) -> bool) -> Result<()> {
        for opt in self.option_iter() {
            let opt = opt?;
            if opt.critical() && !known(opt.class, opt.typ) {
                return Err(WireError::GeneveCriticalOption);
            }
        }
        Ok(())
    }
}

impl<'a> GenevePacket<&'a [u8]> {
    /// Like `payload()`, but borrowed for the buffer's lifetime rather than
    /// the view's, so a parser can return it after the view is gone.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let range = self.header_len()..;
        &self.buffer[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GenevePacket<T> {
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_OPTLEN];
        *b = (*b & OPT_LEN_MASK) | (v << VER_SHIFT);
    }

    /// Sets Opt Len from bytes (4-byte units, at most [`MAX_OPTIONS_LEN`]).
    #[inline]
    pub fn set_options_len(&mut self, len: usize) {
        let units = (len / 4).min(usize::from(OPT_LEN_MASK)) as u8;
        let b = &mut self.buffer.as_mut()[field::VER_OPTLEN];
        *b = (*b & !OPT_LEN_MASK) | units;
    }

    #[inline]
    fn set_flag(&mut self, flag: u8, on: bool) {
        let b = &mut self.buffer.as_mut()[field::FLAGS];
        *b = if on { *b | flag } else { *b & !flag };
    }

    #[inline]
    pub fn set_oam(&mut self, on: bool) {
        self.set_flag(FLAG_O, on);
    }

    #[inline]
    pub fn set_critical(&mut self, on: bool) {
        self.set_flag(FLAG_C, on);
    }

    #[inline]
    pub fn set_protocol(&mut self, p: u16) {
        write_u16(self.buffer.as_mut(), field::PROTOCOL, p);
    }

    /// Sets the VNI (low 24 bits), keeping the reserved byte.
    #[inline]
    pub fn set_vni(&mut self, vni: u32) {
        let b = self.buffer.as_mut();
        let v = ((vni & VNI_MAX) << 8) | (read_u32(b, field::VNI_RSVD) & 0xff);
        write(b, field::VNI_RSVD, &v.to_be_bytes());
    }

    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..end]
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// One option TLV, borrowed from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneveOption<'a> {
    pub class: u16,
    /// The type byte, critical bit included.
    pub typ: u8,
    pub data: &'a [u8],
}

impl GeneveOption<'_> {
    /// The receiver must drop the packet if it does not understand this
    /// option.
    #[inline]
    pub fn critical(&self) -> bool {
        self.typ & OPTION_CRITICAL != 0
    }
}

/// Iterator over a Geneve option area; see [`GenevePacket::option_iter`].
#[derive(Debug, Clone)]
pub struct GeneveOptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for GeneveOptionIter<'a> {
    type Item = Result<GeneveOption<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = self.rest;
        let item = (|| {
            let hdr = r
                .get(..OPTION_HEADER_LEN)
                .ok_or(WireError::GeneveBadOptions)?;
            let len = usize::from(hdr[field::OPT_LEN] & OPTION_LEN_MASK) * 4;
            let end = field::OPT_DATA + len;
            let data = r
                .get(field::OPT_DATA..end)
                .ok_or(WireError::GeneveBadOptions)?;
            Ok((
                GeneveOption {
                    class: read_u16(hdr, field::OPT_CLASS),
                    typ: hdr[field::OPT_TYPE],
                    data,
                },
                end,
            ))
        })();
        match item {
            Ok((opt, end)) => {
                self.rest = r.get(end..).unwrap_or(&[]);
                Some(Ok(opt))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// An owned option, for building headers on the control path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GeneveOptionRepr {
    pub class: u16,
    /// Critical bit included.
    pub typ: u8,
    /// A multiple of 4 bytes, at most [`MAX_OPTION_DATA_LEN`]; see
    /// [`Self::new`].
    pub data: Vec<u8>,
}

impl GeneveOptionRepr {
    /// Validates the data length (RFC 8926 §3.5: 4-byte multiples, 5-bit
    /// length field).
    pub fn new(class: u16, typ: u8, data: Vec<u8>) -> Result<Self> {
        if data.len() % 4 != 0 || data.len() > MAX_OPTION_DATA_LEN {
            return Err(WireError::GeneveBadOptions);
        }
        Ok(GeneveOptionRepr { class, typ, data })
    }

    #[inline]
    pub fn critical(&self) -> bool {
        self.typ & OPTION_CRITICAL != 0
    }

    /// Bytes on the wire: data rounded up to 4 and capped like `emit`.
    #[inline]
    pub fn wire_len(&self) -> usize {
        OPTION_HEADER_LEN + self.data.len().min(MAX_OPTION_DATA_LEN).div_ceil(4) * 4
    }
}

/// A Geneve header as values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GeneveRepr {
    pub vni: u32,
    pub protocol: u16,
    pub oam: bool,
    /// Emitted as `critical || any option is critical` (RFC 8926 §3.4: C
    /// must be set when a critical option is present).
    pub critical: bool,
    pub options: Vec<GeneveOptionRepr>,
}

impl GeneveRepr {
    /// Reads the header and options (allocates: control path and tests).
    pub fn parse<T: AsRef<[u8]>>(p: &GenevePacket<T>) -> Result<Self> {
        p.check()?;
        let mut options = Vec::new();
        for opt in p.option_iter() {
            let opt = opt?;
            options.push(GeneveOptionRepr {
                class: opt.class,
                typ: opt.typ,
                data: opt.data.to_vec(),
            });
        }
        Ok(GeneveRepr {
            vni: p.vni(),
            protocol: p.protocol(),
            oam: p.oam(),
            critical: p.critical(),
            options,
        })
    }

    /// [`GeneveBadOptions`](WireError::GeneveBadOptions) if an option's data
    /// is not a multiple of 4 or too long, or all options exceed
    /// [`MAX_OPTIONS_LEN`]. `emit` never panics on such a repr but pads or
    /// truncates; call this first where the options come from config.
    pub fn validate(&self) -> Result<()> {
        let mut total = 0;
        for o in &self.options {
            if o.data.len() % 4 != 0 || o.data.len() > MAX_OPTION_DATA_LEN {
                return Err(WireError::GeneveBadOptions);
            }
            total += o.wire_len();
        }
        if total > MAX_OPTIONS_LEN {
            return Err(WireError::GeneveBadOptions);
        }
        Ok(())
    }

    /// Option bytes as emitted (whole options only, up to the limit).
    fn options_wire_len(&self) -> usize {
        let mut total = 0;
        for o in &self.options {
            if total + o.wire_len() > MAX_OPTIONS_LEN {
                break;
            }
            total += o.wire_len();
        }
        total
    }

    /// Fixed header plus options.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_wire_len()
    }

    /// Writes the header and options with zero reserved bits. Options that
    /// would overflow [`MAX_OPTIONS_LEN`] are left out and option data is
    /// zero-padded to 4 bytes (see [`Self::validate`]). Panics if the view
    /// is shorter than [`Self::header_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut GenevePacket<T>) {
        let opt_len = self.options_wire_len();
        let b = p.buffer.as_mut();
        b[..HEADER_LEN].copy_from_slice(&[0; HEADER_LEN]);
        p.set_version(0);
        p.set_options_len(opt_len);
        p.set_oam(self.oam);
        let any_critical = self.options.iter().any(GeneveOptionRepr::critical);
        p.set_critical(self.critical || any_critical);
        p.set_protocol(self.protocol);
        p.set_vni(self.vni);
        let mut area = &mut p.options_mut()[..];
        for o in &self.options {
            let n = o.wire_len();
            if n > area.len() {
                break;
            }
            let (opt, rest) = area.split_at_mut(n);
            write_u16(opt, field::OPT_CLASS, o.class);
            opt[field::OPT_TYPE] = o.typ;
            opt[field::OPT_LEN] = ((n - OPTION_HEADER_LEN) / 4) as u8;
            let data = &mut opt[field::OPT_DATA..];
            let copy = o.data.len().min(data.len());
            data[..copy].copy_from_slice(&o.data[..copy]);
            data[copy..].fill(0);
            area = rest;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Built from RFC 8926 §3.4/§3.5: version 0, Opt Len 3 (12 bytes), C set,
    /// protocol 0x6558, VNI 0x00abcd, one critical option class 0x0102 type
    /// 0x83 with 8 bytes of data, then 2 bytes of inner frame.
    pub(crate) const GENEVE: [u8; 22] = [
        0x03, 0x40, 0x65, 0x58, 0x00, 0xab, 0xcd, 0x00, // fixed header
        0x01, 0x02, 0x83, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, // option
        0xee, 0xff, // payload
    ];

    #[test]
    fn parse_fixture() {
        let p = GenevePacket::new_checked(&GENEVE[..]).unwrap();
        assert_eq!(p.version(), 0);
        assert_eq!(p.options_len(), 12);
        assert_eq!(p.header_len(), 20);
        assert!(!p.oam());
        assert!(p.critical());
        assert_eq!(p.protocol(), 0x6558);
        assert_eq!(p.vni(), 0xabcd);
        assert_eq!(p.payload(), &[0xee, 0xff]);
        let opts: Vec<_> = p.option_iter().collect();
        assert_eq!(
            opts,
            vec![Ok(GeneveOption {
                class: 0x0102,
                typ: 0x83,
                data: &[1, 2, 3, 4, 5, 6, 7, 8]
            })]
        );
        assert!(opts[0].unwrap().critical());
        assert_eq!(p.check_options(|c, t| c == 0x0102 && t == 0x83), Ok(()));
        assert_eq!(
            p.check_options(|_, _| false),
            Err(WireError::GeneveCriticalOption)
        );
    }

    #[test]
    fn emit_fixture() {
        let p = GenevePacket::new_checked(&GENEVE[..]).unwrap();
        let mut r = GeneveRepr::parse(&p).unwrap();
        r.critical = false; // emit must set C from the critical option
        assert_eq!(r.validate(), Ok(()));
        assert_eq!(r.header_len(), 20);
        let mut out = [0u8; 22];
        let mut q = GenevePacket::new_unchecked(&mut out[..]);
        r.emit(&mut q);
        q.payload_mut().copy_from_slice(&[0xee, 0xff]);
        assert_eq!(out, GENEVE);
    }

    #[test]
    fn errors() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                GenevePacket::new_checked(&GENEVE[..n]),
                Err(WireError::Truncated)
            );
        }
        for n in HEADER_LEN..20 {
            assert_eq!(
                GenevePacket::new_checked(&GENEVE[..n]),
                Err(WireError::GeneveBadOptions)
            );
        }
        let mut b = GENEVE;
        b[0] |= 0x40;
        assert_eq!(
            GenevePacket::new_checked(&b[..]),
            Err(WireError::GeneveBadVersion)
        );
        // Option claiming 12 data bytes in a 12-byte area (8 available).
        let mut b = GENEVE;
        b[11] = 3;
        let p = GenevePacket::new_checked(&b[..]).unwrap();
        let v: Vec<_> = p.option_iter().collect();
        assert_eq!(v, vec![Err(WireError::GeneveBadOptions)]);
        assert_eq!(
            p.check_options(|_, _| true),
            Err(WireError::GeneveBadOptions)
        );
        // Option area of 4 bytes holding a header that claims 8 data bytes.
        let mut b = GENEVE;
        b[0] = 0x01;
        let p = GenevePacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            p.check_options(|_, _| true),
            Err(WireError::GeneveBadOptions)
        );
        // Non-critical unknown option: accepted.
        let mut b = GENEVE;
        b[10] = 0x03;
        let p = GenevePacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.check_options(|_, _| false), Ok(()));
        // Protocol is not checked by the view.
        let mut b = GENEVE;
        b[2] = 0x08;
        b[3] = 0x00;
        assert!(GenevePacket::new_checked(&b[..]).is_ok());
    }

    #[test]
    fn option_repr_limits() {
        assert!(GeneveOptionRepr::new(1, 2, vec![0; 3]).is_err());
        assert!(GeneveOptionRepr::new(1, 2, vec![0; 128]).is_err());
        assert!(GeneveOptionRepr::new(1, 2, vec![0; 124]).is_ok());
        let big = GeneveRepr {
            vni: 1,
            protocol: 0x6558,
            oam: true,
            critical: false,
            options: vec![GeneveOptionRepr::new(1, 2, vec![0; 124]).unwrap(); 3],
        };
        assert_eq!(big.validate(), Err(WireError::GeneveBadOptions));
        // 128 + 128 > 252: only the first option fits and is emitted.
        assert_eq!(big.header_len(), 8 + 128);
        let mut buf = vec![0u8; big.header_len()];
        let mut p = GenevePacket::new_unchecked(&mut buf[..]);
        big.emit(&mut p);
        let p = GenevePacket::new_checked(&buf[..]).unwrap();
        assert!(p.oam());
        assert_eq!(p.option_iter().count(), 1);
    }

    fn option() -> impl Strategy<Value = GeneveOptionRepr> {
        (any::<u16>(), any::<u8>(), 0usize..8).prop_flat_map(|(class, typ, words)| {
            proptest::collection::vec(any::<u8>(), words * 4)
                .prop_map(move |data| GeneveOptionRepr { class, typ, data })
        })
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..300), v0 in any::<bool>()) {
            if v0 && !data.is_empty() {
                data[0] &= 0x3f;
            }
            if let Ok(p) = GenevePacket::new_checked(&data[..]) {
                let _ = (p.options().len(), p.payload().len(), p.vni(), p.protocol());
                for o in p.option_iter() {
                    let _ = o.map(|o| o.data.len());
                }
                let _ = p.check_options(|c, _| c == 0);
                let _ = GeneveRepr::parse(&p);
            }
            // The iterator on an unchecked view must not panic either.
            let _ = GenevePacket::new_unchecked(&data[..]).option_iter().count();
        }

        #[test]
        fn repr_round_trip(vni in 0u32..0x100_0000, protocol in any::<u16>(), oam in any::<bool>(),
                           critical in any::<bool>(), options in proptest::collection::vec(option(), 0..6)) {
            let r = GeneveRepr { vni, protocol, oam, critical, options };
            prop_assert_eq!(r.validate(), Ok(()));
            let mut buf = vec![0u8; r.header_len()];
            r.emit(&mut GenevePacket::new_unchecked(&mut buf[..]));
            let p = GenevePacket::new_checked(&buf[..]).unwrap();
            let back = GeneveRepr::parse(&p).unwrap();
            let mut want = r.clone();
            want.critical = r.critical || r.options.iter().any(GeneveOptionRepr::critical);
            prop_assert_eq!(back, want);
        }
    }
}
