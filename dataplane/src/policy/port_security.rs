//! Port security: a VM speaks only from the MAC and IP addresses its port
//! was given (OpenStack's port security, OVN's `port_security`), so it
//! cannot take another VM's traffic by claiming its addresses.
//!
//! Checked on frames received from a local port, before anything (the
//! FDB, ARP suppression, flows) believes them. What is checked:
//! - the Ethernet source MAC is one of the port's MACs;
//! - with allowed IPs (none: only MACs are checked, as OVN does with a
//!   bare MAC): the IPv4/IPv6 source is one of them, or the unspecified
//!   address where a host must use it (DHCP from 0.0.0.0, ICMPv6 from ::
//!   for duplicate address detection and MLD); ARP's sender MAC and IP
//!   (0.0.0.0 for an RFC 5227 probe); a neighbor advertisement's target
//!   and its target link-layer address, and a solicitation's source
//!   link-layer address, since those are what neighbor caches learn.
//!
//! The IPv6 link-local address a host forms from its MAC (EUI-64, RFC 4291
//! appendix A) is allowed with it; other link-locals (RFC 7217 stable or
//! random ones) must be listed.

use std::net::{IpAddr, Ipv6Addr};

use crate::wire::arp::ArpPacket;
use crate::wire::ethernet::ethertype;
use crate::wire::flow::PacketInfo;
use crate::wire::icmp::{icmpv6_type, parse_ndp, NdpKind};
use crate::wire::ip::proto;
use xvs_types::{ipv4_to_u128, FlowKey, MacAddr};

/// What a port may send from, compiled for the per-packet path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSecurity {
    macs: Box<[MacAddr]>,
    /// Sorted 128-bit forms (IPv4 mapped); empty: IPs are not checked.
    ips: Box<[u128]>,
}

/// Why a frame failed the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A source MAC (Ethernet, ARP sender, ND link-layer option) not the port's.
    Mac,
    /// A source IP (IP header, ARP sender, ND target) not the port's.
    Ip,
}

/// The link-local address a host forms from `mac` (modified EUI-64).
pub fn eui64_link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

impl PortSecurity {
    /// Security for a port allowed `macs` and `ips` (validated by the
    /// config). `None` when `macs` is empty: the port is not secured.
    pub fn new(macs: &[MacAddr], ips: &[IpAddr]) -> Option<PortSecurity> {
        if macs.is_empty() {
            return None;
        }
        let mut v: Vec<u128> = ips
            .iter()
            .map(|ip| match ip {
                IpAddr::V4(a) => ipv4_to_u128(*a),
                IpAddr::V6(a) => u128::from(*a),
            })
            .collect();
        if !v.is_empty() {
            v.extend(macs.iter().map(|m| u128::from(eui64_link_local(*m))));
        }
        v.sort_unstable();
        v.dedup();
        Some(PortSecurity {
            macs: macs.into(),
            ips: v.into(),
        })
    }

    #[inline]
    fn mac_ok(&self, m: MacAddr) -> bool {
        self.macs.contains(&m)
    }

    #[inline]
    fn ip_ok(&self, ip: u128) -> bool {
        self.ips.binary_search(&ip).is_ok()
    }

    /// Checks a frame `key`/`info` describe (parsed from `frame`).
    pub fn check(&self, key: &FlowKey, info: &PacketInfo, frame: &[u8]) -> Result<(), Violation> {
        if !self.mac_ok(key.dl_src()) {
            return Err(Violation::Mac);
        }
        if self.ips.is_empty() {
            return Ok(());
        }
        match key.eth_type() {
            ethertype::IPV4 => {
                let src = key.nw_src();
                let dhcp = src == ipv4_to_u128(0.into())
                    && key.ip_proto() == proto::UDP
                    && key.tp_src() == 68
                    && key.tp_dst() == 67;
                if dhcp || self.ip_ok(src) {
                    Ok(())
                } else {
                    Err(Violation::Ip)
                }
            }
            ethertype::IPV6 => self.check_ipv6(key, info, frame),
            ethertype::ARP => {
                let l3 = usize::from(info.l3_offset);
                // extract() checked the header is there.
                let Some(Ok(arp)) = frame.get(l3..).map(ArpPacket::new_checked) else {
                    return Err(Violation::Mac);
                };
                if !self.mac_ok(arp.sender_hw_addr()) {
                    return Err(Violation::Mac);
                }
                let spa = key.nw_src();
                if spa == ipv4_to_u128(0.into()) || self.ip_ok(spa) {
                    Ok(())
                } else {
                    Err(Violation::Ip)
                }
            }
            _ => Ok(()),
        }
    }

    fn check_ipv6(&self, key: &FlowKey, info: &PacketInfo, frame: &[u8]) -> Result<(), Violation> {
        let icmp = key.ip_proto() == proto::ICMPV6;
        let src = key.nw_src();
        if !(self.ip_ok(src) || (src == 0 && icmp)) {
            return Err(Violation::Ip);
        }
        let nd = icmp
            && !info.is_fragment
            && matches!(
                u8::try_from(key.tp_src()),
                Ok(icmpv6_type::NEIGHBOR_SOLICIT | icmpv6_type::NEIGHBOR_ADVERT)
            );
        if !nd {
            return Ok(());
        }
        let (l4, len) = (usize::from(info.l4_offset), usize::from(info.l4_len));
        let Some(Ok(Some(ndp))) = frame.get(l4..l4 + len).map(parse_ndp) else {
            // Not shown to claim only the port's addresses, and a lenient
            // receiver might still learn from it.
            return Err(Violation::Ip);
        };
        if ndp.lladdr.is_some_and(|m| !self.mac_ok(m)) {
            return Err(Violation::Mac);
        }
        if ndp.kind == NdpKind::Advert && !self.ip_ok(u128::from(ndp.target)) {
            return Err(Violation::Ip);
        }
        Ok(())
    }
}
