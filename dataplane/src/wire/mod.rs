//! Typed zero-copy views over packet bytes, and owned representations to
//! emit them (the smoltcp `Packet<T>` + `Repr` pattern).
//!
//! Invariant: once a view's `new_checked` has succeeded, no accessor of that
//! view can panic or read out of bounds; setters need `T: AsMut<[u8]>`.
//! Every rejection is a [`WireError`], a flat `Copy` enum so the pipeline can
//! count drops by reason in a fixed array.

#![forbid(unsafe_code)]

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod flow;
pub mod geneve;
pub mod icmp;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod offload;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod vxlan;

pub use arp::{ArpPacket, ArpRepr};
pub use ethernet::{EthernetFrame, EthernetRepr};
pub use flow::{extract, PacketInfo};
pub use geneve::{GeneveOption, GeneveOptionIter, GeneveOptionRepr, GenevePacket, GeneveRepr};
pub use icmp::{IcmpPacket, IcmpRepr, Ndp, NdpKind};
pub use ip::proto as ip_proto;
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use tcp::{TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};
pub use vlan::{VlanRepr, VlanTag};
pub use vxlan::{VxlanPacket, VxlanRepr};

use std::net::{Ipv4Addr, Ipv6Addr};

use xvs_types::MacAddr;

/// A header field: a byte range from the start of its header.
pub(crate) type Field = core::ops::Range<usize>;

// Field readers and writers shared by the views. They index with the field's
// range, so they cannot go out of bounds once a view's `new_checked` has
// proved the buffer covers the header; the array width is fixed by the
// caller's type and must equal the field width (a mismatch is a programming
// error that every unit test would hit).

#[inline(always)]
pub(crate) fn read<const N: usize>(buf: &[u8], f: Field) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[f]);
    out
}

#[inline(always)]
pub(crate) fn read_u16(buf: &[u8], f: Field) -> u16 {
    u16::from_be_bytes(read(buf, f))
}

#[inline(always)]
pub(crate) fn read_u32(buf: &[u8], f: Field) -> u32 {
    u32::from_be_bytes(read(buf, f))
}

#[inline(always)]
pub(crate) fn read_mac(buf: &[u8], f: Field) -> MacAddr {
    MacAddr(read(buf, f))
}

#[inline(always)]
pub(crate) fn read_ipv4(buf: &[u8], f: Field) -> Ipv4Addr {
    Ipv4Addr::from(read::<4>(buf, f))
}

#[inline(always)]
pub(crate) fn read_ipv6(buf: &[u8], f: Field) -> Ipv6Addr {
    Ipv6Addr::from(read::<16>(buf, f))
}

#[inline(always)]
pub(crate) fn write(buf: &mut [u8], f: Field, v: &[u8]) {
    buf[f].copy_from_slice(v);
}

#[inline(always)]
pub(crate) fn write_u16(buf: &mut [u8], f: Field, v: u16) {
    write(buf, f, &v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn write_u32(buf: &mut [u8], f: Field, v: u32) {
    write(buf, f, &v.to_be_bytes());
}

/// Why bytes were rejected by a parser. Flat and fieldless on purpose: it is
/// counted per reason on the per-packet path (see `stats::DropReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[repr(u8)]
pub enum WireError {
    #[error("truncated packet")]
    Truncated,
    #[error("too many stacked VLAN tags")]
    TooManyVlanTags,
    #[error("malformed ARP packet")]
    BadArp,
    #[error("IP version does not match the ethertype")]
    BadIpVersion,
    #[error("IPv4 header length (IHL) below 5 or beyond the packet")]
    BadIhl,
    #[error("IP length field disagrees with the frame")]
    BadIpLength,
    #[error("IPv4 header checksum mismatch")]
    BadIpChecksum,
    #[error("IPv4 fragment")]
    Fragment,
    #[error("malformed or too long IPv6 extension header chain")]
    BadIpv6ExtHeader,
    #[error("UDP length field disagrees with the IP payload")]
    BadUdpLength,
    #[error("UDP checksum mismatch")]
    BadUdpChecksum,
    #[error("TCP data offset below 5 or beyond the packet")]
    BadTcpOffset,
    #[error("VXLAN header without the I (valid VNI) flag")]
    VxlanNoIFlag,
    #[error("Geneve version is not 0")]
    GeneveBadVersion,
    #[error("Geneve protocol type is not Transparent Ethernet Bridging (0x6558)")]
    GeneveBadProtocol,
    #[error("Geneve options longer than the packet or malformed")]
    GeneveBadOptions,
    #[error("Geneve option with the critical bit set that we do not understand")]
    GeneveCriticalOption,
    #[error("malformed ICMPv6 neighbor discovery message (code or option length)")]
    BadNdp,
}

impl WireError {
    /// Number of variants; sizes per-reason counter arrays.
    pub const COUNT: usize = WireError::BadNdp as usize + 1;

    pub const ALL: [WireError; WireError::COUNT] = [
        WireError::Truncated,
        WireError::TooManyVlanTags,
        WireError::BadArp,
        WireError::BadIpVersion,
        WireError::BadIhl,
        WireError::BadIpLength,
        WireError::BadIpChecksum,
        WireError::Fragment,
        WireError::BadIpv6ExtHeader,
        WireError::BadUdpLength,
        WireError::BadUdpChecksum,
        WireError::BadTcpOffset,
        WireError::VxlanNoIFlag,
        WireError::GeneveBadVersion,
        WireError::GeneveBadProtocol,
        WireError::GeneveBadOptions,
        WireError::GeneveCriticalOption,
        WireError::BadNdp,
    ];

    /// Stable snake_case name for counters and JSON output.
    pub fn name(self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::TooManyVlanTags => "too_many_vlan_tags",
            WireError::BadArp => "bad_arp",
            WireError::BadIpVersion => "bad_ip_version",
            WireError::BadIhl => "bad_ihl",
            WireError::BadIpLength => "bad_ip_length",
            WireError::BadIpChecksum => "bad_ip_checksum",
            WireError::Fragment => "fragment",
            WireError::BadIpv6ExtHeader => "bad_ipv6_ext_header",
            WireError::BadUdpLength => "bad_udp_length",
            WireError::BadUdpChecksum => "bad_udp_checksum",
            WireError::BadTcpOffset => "bad_tcp_offset",
            WireError::VxlanNoIFlag => "vxlan_no_i_flag",
            WireError::GeneveBadVersion => "geneve_bad_version",
            WireError::GeneveBadProtocol => "geneve_bad_protocol",
            WireError::GeneveBadOptions => "geneve_bad_options",
            WireError::GeneveCriticalOption => "geneve_critical_option",
            WireError::BadNdp => "bad_ndp",
        }
    }
}

/// Result of a parse.
pub type Result<T> = core::result::Result<T, WireError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_variant_in_order() {
        for (i, e) in WireError::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i, "{e:?}");
        }
    }
}
