//! ICMP (RFC 792) and ICMPv6 (RFC 4443) common header, plus the IPv6
//! neighbor discovery messages the neighbor cache needs (RFC 4861 §4.3,
//! §4.4): parsing solicitations/advertisements and emitting a solicitation.
//!
//! Invariant: after [`IcmpPacket::new_checked`] the buffer holds the 4-byte
//! type/code/checksum header. The checksum functions cover the whole buffer:
//! pass exactly the IP payload. Neighbor discovery parsing checks every
//! option length before reading it; hop limit 255 and the source address
//! rules of RFC 4861 §7.1 are the caller's (they need the IP header).

use std::net::Ipv6Addr;

use super::checksum::{self, ones_sum, pseudo_header_v6};
use super::ip::proto;
use super::{read_ipv6, read_u16, write, write_u16, Result, WireError};
use xvs_types::MacAddr;

/// Length of the common header (type, code, checksum).
pub const HEADER_LEN: usize = 4;

/// ICMPv4 message types we name.
pub mod icmpv4_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
}

/// ICMPv6 message types we name.
pub mod icmpv6_type {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

mod field {
    use crate::wire::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const PAYLOAD: usize = 4;

    // Neighbor solicitation / advertisement body.
    /// NS: reserved; NA: R, S, O flags then reserved.
    pub const ND_FLAGS: Field = 4..8;
    pub const ND_TARGET: Field = 8..24;
    pub const ND_OPTIONS: usize = 24;

    // Neighbor discovery option, relative to the option.
    pub const OPT_TYPE: usize = 0;
    pub const OPT_LEN: usize = 1;
    pub const OPT_LLADDR: Field = 2..8;
}

/// A view over an ICMP or ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// See [`icmpv4_type`] / [`icmpv6_type`].
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Everything after the 4-byte header (the "rest of header" included).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }

    /// ICMPv4: the checksum covers the message only.
    #[inline]
    pub fn verify_checksum_v4(&self) -> bool {
        checksum::fold(ones_sum(0, self.buffer.as_ref())) == 0xffff
    }

    /// ICMPv6: the checksum covers a pseudo header too (RFC 4443 §2.3).
    #[inline]
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let ph = pseudo_header_v6(src, dst, proto::ICMPV6, b.len() as u32);
        checksum::fold(ones_sum(ph, b)) == 0xffff
    }
}

impl<'a> IcmpPacket<&'a [u8]> {
    /// Like `payload()`, but borrowed for the buffer's lifetime rather than
    /// the view's, so a parser can return it after the view is gone.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let range = field::PAYLOAD..;
        &self.buffer[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    #[inline]
    pub fn set_msg_type(&mut self, t: u8) {
        self.buffer.as_mut()[field::TYPE] = t;
    }

    #[inline]
    pub fn set_code(&mut self, c: u8) {
        self.buffer.as_mut()[field::CODE] = c;
    }

    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }

    #[inline]
    pub fn fill_checksum_v4(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }

    #[inline]
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let ph = pseudo_header_v6(src, dst, proto::ICMPV6, b.len() as u32);
        let c = !checksum::fold(ones_sum(ph, b));
        self.set_checksum(c);
    }
}

/// The common ICMP header as values; the body is the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpRepr {
    pub msg_type: u8,
    pub code: u8,
    /// Bytes after the 4-byte header.
    pub payload_len: usize,
}

impl IcmpRepr {
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &IcmpPacket<T>) -> Result<Self> {
        p.check_len()?;
        Ok(IcmpRepr {
            msg_type: p.msg_type(),
            code: p.code(),
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

    /// Writes type and code with a zero checksum; fill it once the body is
    /// in place. Panics if the view is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut IcmpPacket<T>) {
        p.set_msg_type(self.msg_type);
        p.set_code(self.code);
        p.set_checksum(0);
    }
}

/// Which neighbor discovery message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdpKind {
    Solicit,
    Advert,
}

/// What the neighbor cache needs from a solicitation or advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ndp {
    pub kind: NdpKind,
    pub target: Ipv6Addr,
    /// Source link-layer address option of a solicitation, or target
    /// link-layer address option of an advertisement.
    pub lladdr: Option<MacAddr>,
}

/// Neighbor discovery option types (RFC 4861 §4.6.1).
const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;
/// Fixed part of a solicitation/advertisement.
const ND_BODY_LEN: usize = field::ND_OPTIONS;
/// A link-layer address option for Ethernet: 1 unit of 8 bytes.
const LLADDR_OPT_LEN: usize = 8;

/// Parses an ICMPv6 message as neighbor discovery. `Ok(None)` for any other
/// ICMPv6 type. Code must be 0 and option lengths non-zero and within the
/// message (RFC 4861 §7.1.1, §7.1.2), else [`WireError::BadNdp`]; a message
/// shorter than its fixed part is [`WireError::Truncated`]. The checksum is
/// not checked here (it needs the IPv6 addresses).
pub fn parse_ndp(icmp6: &[u8]) -> Result<Option<Ndp>> {
    let p = IcmpPacket::new_checked(icmp6)?;
    let (kind, wanted_opt) = match p.msg_type() {
        icmpv6_type::NEIGHBOR_SOLICIT => (NdpKind::Solicit, OPT_SOURCE_LLADDR),
        icmpv6_type::NEIGHBOR_ADVERT => (NdpKind::Advert, OPT_TARGET_LLADDR),
        _ => return Ok(None),
    };
    if p.code() != 0 {
        return Err(WireError::BadNdp);
    }
    if icmp6.len() < ND_BODY_LEN {
        return Err(WireError::Truncated);
    }
    let target = read_ipv6(icmp6, field::ND_TARGET);
    let mut lladdr = None;
    let mut opts = &icmp6[field::ND_OPTIONS..];
    while !opts.is_empty() {
        let len = usize::from(*opts.get(field::OPT_LEN).ok_or(WireError::BadNdp)?) * 8;
        if len == 0 || len > opts.len() {
            return Err(WireError::BadNdp);
        }
        // An 8-byte option holds the 6-byte MAC; longer ones are for other
        // link layers and are not Ethernet addresses.
        if opts[field::OPT_TYPE] == wanted_opt && len == LLADDR_OPT_LEN {
            lladdr = MacAddr::from_slice(&opts[field::OPT_LLADDR]);
        }
        opts = &opts[len..];
    }
    Ok(Some(Ndp {
        kind,
        target,
        lladdr,
    }))
}

/// Bytes [`emit_neighbor_solicit`] writes.
pub const fn neighbor_solicit_len(with_lladdr: bool) -> usize {
    ND_BODY_LEN + if with_lladdr { LLADDR_OPT_LEN } else { 0 }
}

/// Writes an ICMPv6 neighbor solicitation for `target` into `buf` (the IPv6
/// payload), with the source link-layer address option when `lladdr` is
/// given (RFC 4861 §4.3: required except from the unspecified address), and
/// its checksum for the IPv6 `src`/`dst` it will be sent with. Returns the
/// length written. The IPv6 header must use hop limit 255.
pub fn emit_neighbor_solicit(
    buf: &mut [u8],
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    target: &Ipv6Addr,
    lladdr: Option<MacAddr>,
) -> Result<usize> {
    let len = neighbor_solicit_len(lladdr.is_some());
    let buf = buf.get_mut(..len).ok_or(WireError::Truncated)?;
    let mut p = IcmpPacket::new_unchecked(&mut *buf);
    p.set_msg_type(icmpv6_type::NEIGHBOR_SOLICIT);
    p.set_code(0);
    let b = p.into_inner();
    write(b, field::ND_FLAGS, &[0; 4]);
    write(b, field::ND_TARGET, &target.octets());
    if let Some(mac) = lladdr {
        let opt = &mut b[field::ND_OPTIONS..];
        opt[field::OPT_TYPE] = OPT_SOURCE_LLADDR;
        opt[field::OPT_LEN] = (LLADDR_OPT_LEN / 8) as u8;
        write(opt, field::OPT_LLADDR, &mac.0);
    }
    IcmpPacket::new_unchecked(b).fill_checksum_v6(src, dst);
    Ok(len)
}

/// Neighbor advertisement flags (RFC 4861 §4.4), in the first byte after
/// the checksum.
pub mod na_flag {
    pub const ROUTER: u8 = 0x80;
    pub const SOLICITED: u8 = 0x40;
    pub const OVERRIDE: u8 = 0x20;
}

/// Bytes [`emit_neighbor_advert`] writes: the fixed part and a target
/// link-layer address option.
pub const NEIGHBOR_ADVERT_LEN: usize = ND_BODY_LEN + LLADDR_OPT_LEN;

/// Writes an ICMPv6 neighbor advertisement for `target` at `lladdr` (the
/// target link-layer address option) with `flags` (see [`na_flag`]) into
/// `buf` (the IPv6 payload), with its checksum for the IPv6 `src`/`dst` it
/// will be sent with. Returns [`NEIGHBOR_ADVERT_LEN`]. The IPv6 header must
/// use hop limit 255.
pub fn emit_neighbor_advert(
    buf: &mut [u8],
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    target: &Ipv6Addr,
    lladdr: MacAddr,
    flags: u8,
) -> Result<usize> {
    let b = buf
        .get_mut(..NEIGHBOR_ADVERT_LEN)
        .ok_or(WireError::Truncated)?;
    b[field::TYPE] = icmpv6_type::NEIGHBOR_ADVERT;
    b[field::CODE] = 0;
    write(b, field::ND_FLAGS, &[flags, 0, 0, 0]);
    write(b, field::ND_TARGET, &target.octets());
    let opt = &mut b[field::ND_OPTIONS..];
    opt[field::OPT_TYPE] = OPT_TARGET_LLADDR;
    opt[field::OPT_LEN] = (LLADDR_OPT_LEN / 8) as u8;
    write(opt, field::OPT_LLADDR, &lladdr.0);
    IcmpPacket::new_unchecked(b).fill_checksum_v6(src, dst);
    Ok(NEIGHBOR_ADVERT_LEN)
}

/// The solicited-node multicast address of `a` (ff02::1:ffXX:XXXX, RFC 4291
/// §2.7.1): where solicitations for `a` are sent.
pub fn solicited_node(a: &Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet address an IPv6 multicast is sent to (33:33 + low 32 bits,
/// RFC 2464 §7).
pub fn ipv6_multicast_mac(a: &Ipv6Addr) -> MacAddr {
    let o = a.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn echo_fixture() {
        // ICMPv4 echo request id 1 seq 1, "abcd".
        let mut b = vec![8, 0, 0, 0, 0, 1, 0, 1, b'a', b'b', b'c', b'd'];
        let mut p = IcmpPacket::new_checked(&mut b[..]).unwrap();
        p.fill_checksum_v4();
        assert!(p.verify_checksum_v4());
        assert_eq!(p.msg_type(), icmpv4_type::ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.payload().len(), 8);
        let r = IcmpRepr::parse(&p).unwrap();
        assert_eq!(r.buffer_len(), 12);
        for n in 0..HEADER_LEN {
            assert_eq!(IcmpPacket::new_checked(&b[..n]), Err(WireError::Truncated));
        }
    }

    #[test]
    fn solicit_round_trip() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let target: Ipv6Addr = "2001:db8::abcd:1234".parse().unwrap();
        let dst = solicited_node(&target);
        assert_eq!(dst, "ff02::1:ffcd:1234".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            ipv6_multicast_mac(&dst),
            MacAddr([0x33, 0x33, 0xff, 0xcd, 0x12, 0x34])
        );
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        let mut buf = [0u8; 64];
        let n = emit_neighbor_solicit(&mut buf, &src, &dst, &target, Some(mac)).unwrap();
        assert_eq!(n, 32);
        assert!(IcmpPacket::new_checked(&buf[..n])
            .unwrap()
            .verify_checksum_v6(&src, &dst));
        assert_eq!(
            parse_ndp(&buf[..n]),
            Ok(Some(Ndp {
                kind: NdpKind::Solicit,
                target,
                lladdr: Some(mac)
            }))
        );
        let n =
            emit_neighbor_solicit(&mut buf, &Ipv6Addr::UNSPECIFIED, &dst, &target, None).unwrap();
        assert_eq!(n, 24);
        assert_eq!(parse_ndp(&buf[..n]).unwrap().unwrap().lladdr, None);
        assert_eq!(
            emit_neighbor_solicit(&mut buf[..31], &src, &dst, &target, Some(mac)),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn advert_round_trip() {
        let src: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mac = MacAddr([2, 0, 0, 0, 0, 2]);
        let mut buf = [0xffu8; 40];
        let flags = na_flag::SOLICITED | na_flag::OVERRIDE;
        let n = emit_neighbor_advert(&mut buf, &src, &dst, &src, mac, flags).unwrap();
        assert_eq!(n, 32);
        assert_eq!(&buf[4..8], &[0x60, 0, 0, 0]);
        assert_eq!(&buf[24..32], &[2, 1, 2, 0, 0, 0, 0, 2]);
        assert!(IcmpPacket::new_checked(&buf[..n])
            .unwrap()
            .verify_checksum_v6(&src, &dst));
        let nd = parse_ndp(&buf[..n]).unwrap().unwrap();
        assert_eq!(
            (nd.kind, nd.target, nd.lladdr),
            (NdpKind::Advert, src, Some(mac))
        );
        assert_eq!(
            emit_neighbor_advert(&mut buf[..31], &src, &dst, &src, mac, flags),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn advert_fixture() {
        // NA, S+O flags, target 2001:db8::2, nonce option (type 14, 8 bytes)
        // before the target link-layer address option.
        let mut b = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
        b.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
        b.extend_from_slice(&[2, 1, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
        let n = parse_ndp(&b).unwrap().unwrap();
        assert_eq!(n.kind, NdpKind::Advert);
        assert_eq!(
            n.lladdr,
            Some(MacAddr([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]))
        );
        for cut in 0..24 {
            assert!(parse_ndp(&b[..cut]).is_err(), "{cut}");
        }
        for cut in [25, 31, 33, 39] {
            assert_eq!(parse_ndp(&b[..cut]), Err(WireError::BadNdp), "{cut}");
        }
        let mut z = b.clone();
        z[25] = 0;
        assert_eq!(parse_ndp(&z), Err(WireError::BadNdp));
        let mut c = b.clone();
        c[1] = 1;
        assert_eq!(parse_ndp(&c), Err(WireError::BadNdp));
        assert_eq!(parse_ndp(&[128, 0, 0, 0]), Ok(None));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..80), t in 135u8..137) {
            let _ = IcmpPacket::new_checked(&data[..]).map(|p| (p.payload().len(), p.verify_checksum_v4()));
            if !data.is_empty() {
                data[0] = t;
            }
            if data.len() > 1 {
                data[1] = 0;
            }
            let _ = parse_ndp(&data);
        }
    }
}
