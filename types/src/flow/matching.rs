//! The match half of a flow rule: [`FlowMatch`] and its field types
//! ([`Masked`], [`VlanMatch`], [`IpPrefix`]), their `field=value` text form,
//! and the classifier's `(key, mask)` form they compile to. Control plane
//! only; the firewall parses its rules' matches with the same type.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::{bad, parse_uint, FlowError};
use crate::{ip_to_u128, FlowKey, MacAddr, PortNo};

pub const ETH_TYPE_IPV4: u16 = 0x0800;
pub const ETH_TYPE_IPV6: u16 = 0x86dd;
pub const ETH_TYPE_ARP: u16 = 0x0806;

/// A value with a bit mask: a set mask bit must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Masked<T> {
    pub value: T,
    pub mask: T,
}

/// What a rule requires of the 802.1Q tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VlanMatch {
    /// No tag.
    Untagged,
    /// A tag with this VID (0..=4095), any PCP.
    Vid(u16),
}

/// An IPv4 or IPv6 prefix. IPv4 prefixes are applied to the IPv4-mapped
/// form of the key, so `10.0.0.0/24` masks the top 96 + 24 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// Host bits beyond `len` are cleared.
    pub fn new(addr: IpAddr, len: u8) -> Result<IpPrefix, FlowError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(FlowError::BadValue {
                field: "prefix",
                value: format!("{addr}/{len}"),
                reason: "prefix length longer than the address",
            });
        }
        let mut p = IpPrefix { addr, len };
        let (v, _) = p.key_mask();
        p.addr = crate::u128_to_ip(v);
        // A v6 prefix that happens to be IPv4-mapped must stay v6.
        if addr.is_ipv6() {
            p.addr = IpAddr::V6(std::net::Ipv6Addr::from(v));
        }
        Ok(p)
    }

    /// A full-length prefix.
    pub fn host(addr: IpAddr) -> IpPrefix {
        IpPrefix {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Prefix length in bits (of the IPv4 or IPv6 address, not the mapped form).
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The implied eth_type.
    pub fn eth_type(&self) -> u16 {
        if self.is_ipv4() {
            ETH_TYPE_IPV4
        } else {
            ETH_TYPE_IPV6
        }
    }

    /// (masked value, mask) over the 128-bit key form.
    pub fn key_mask(&self) -> (u128, u128) {
        let bits = if self.is_ipv4() {
            96 + u32::from(self.len)
        } else {
            u32::from(self.len)
        };
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - bits)
        };
        (ip_to_u128(self.addr) & mask, mask)
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.is_ipv4() { 32 } else { 128 };
        if self.len == full {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

impl FromStr for IpPrefix {
    type Err = FlowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| bad("prefix", s, "not an IPv4 or IPv6 address"))?;
        match l {
            None => Ok(IpPrefix::host(addr)),
            Some(l) => {
                let len: u8 = l
                    .parse()
                    .map_err(|_| bad("prefix", s, "prefix length is not a number"))?;
                IpPrefix::new(addr, len)
            }
        }
    }
}

/// The match half of a flow rule. `None` fields are wildcards. Build it with
/// the chaining methods or parse it from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowMatch {
    pub in_port: Option<PortNo>,
    pub tun_id: Option<u32>,
    pub dl_src: Option<Masked<MacAddr>>,
    pub dl_dst: Option<Masked<MacAddr>>,
    pub dl_vlan: Option<VlanMatch>,
    pub dl_type: Option<u16>,
    pub nw_src: Option<IpPrefix>,
    pub nw_dst: Option<IpPrefix>,
    pub nw_proto: Option<u8>,
    pub tp_src: Option<Masked<u16>>,
    pub tp_dst: Option<Masked<u16>>,
}

const FULL_MAC: MacAddr = MacAddr([0xff; 6]);

impl FlowMatch {
    pub fn new() -> FlowMatch {
        FlowMatch::default()
    }
    pub fn in_port(mut self, p: PortNo) -> Self {
        self.in_port = Some(p);
        self
    }
    pub fn tun_id(mut self, id: u32) -> Self {
        self.tun_id = Some(id);
        self
    }
    pub fn dl_src(self, mac: MacAddr) -> Self {
        self.dl_src_masked(mac, FULL_MAC)
    }
    pub fn dl_src_masked(mut self, mac: MacAddr, mask: MacAddr) -> Self {
        self.dl_src = Some(Masked { value: mac, mask });
        self
    }
    pub fn dl_dst(self, mac: MacAddr) -> Self {
        self.dl_dst_masked(mac, FULL_MAC)
    }
    pub fn dl_dst_masked(mut self, mac: MacAddr, mask: MacAddr) -> Self {
        self.dl_dst = Some(Masked { value: mac, mask });
        self
    }
    pub fn dl_vlan(mut self, vid: u16) -> Self {
        self.dl_vlan = Some(VlanMatch::Vid(vid));
        self
    }
    pub fn untagged(mut self) -> Self {
        self.dl_vlan = Some(VlanMatch::Untagged);
        self
    }
    pub fn dl_type(mut self, t: u16) -> Self {
        self.dl_type = Some(t);
        self
    }
    pub fn nw_src(mut self, p: IpPrefix) -> Self {
        self.nw_src = Some(p);
        self
    }
    pub fn nw_dst(mut self, p: IpPrefix) -> Self {
        self.nw_dst = Some(p);
        self
    }
    pub fn nw_proto(mut self, p: u8) -> Self {
        self.nw_proto = Some(p);
        self
    }
    pub fn tp_src(self, port: u16) -> Self {
        self.tp_src_masked(port, 0xffff)
    }
    pub fn tp_src_masked(mut self, port: u16, mask: u16) -> Self {
        self.tp_src = Some(Masked { value: port, mask });
        self
    }
    pub fn tp_dst(self, port: u16) -> Self {
        self.tp_dst_masked(port, 0xffff)
    }
    pub fn tp_dst_masked(mut self, port: u16, mask: u16) -> Self {
        self.tp_dst = Some(Masked { value: port, mask });
        self
    }

    /// The eth_type the rule requires: explicit, or implied by a prefix.
    pub fn effective_dl_type(&self) -> Option<u16> {
        self.dl_type
            .or_else(|| self.nw_src.or(self.nw_dst).map(|p| p.eth_type()))
    }

    /// Rejects values the key cannot express and contradictions between
    /// the prefixes and `dl_type`.
    pub fn validate(&self) -> Result<(), FlowError> {
        if let Some(VlanMatch::Vid(v)) = self.dl_vlan {
            if v > 0x0fff {
                return Err(bad("dl_vlan", &v.to_string(), "VLAN ID above 4095"));
            }
        }
        let dl_type = self.effective_dl_type();
        for (field, p) in [("nw_src", self.nw_src), ("nw_dst", self.nw_dst)] {
            let (Some(p), Some(t)) = (p, dl_type) else {
                continue;
            };
            // ARP carries IPv4 addresses too (sender/target protocol address).
            let ok = if p.is_ipv4() {
                t == ETH_TYPE_IPV4 || t == ETH_TYPE_ARP
            } else {
                t == ETH_TYPE_IPV6
            };
            if !ok {
                return Err(FlowError::Conflict {
                    field,
                    value: p.to_string(),
                    dl_type: t,
                });
            }
        }
        Ok(())
    }

    /// The classifier form: `(key, mask)` with the key already masked.
    pub fn to_key_mask(&self) -> Result<(FlowKey, FlowKey), FlowError> {
        self.validate()?;
        let mut k = FlowKey::default();
        let mut m = FlowKey::default();
        if let Some(p) = self.in_port {
            k.set_in_port(p);
            m.set_in_port(0xffff);
        }
        if let Some(id) = self.tun_id {
            k.set_tun_id(id);
            m.set_tun_id(u32::MAX);
        }
        if let Some(x) = self.dl_src {
            k.set_dl_src(x.value);
            m.set_dl_src(x.mask);
        }
        if let Some(x) = self.dl_dst {
            k.set_dl_dst(x.value);
            m.set_dl_dst(x.mask);
        }
        match self.dl_vlan {
            None => {}
            // Only the "present" bit: PCP and VID of untagged frames are
            // whatever the parser left, and must not matter.
            Some(VlanMatch::Untagged) => m.set_vlan_tci(0x8000),
            Some(VlanMatch::Vid(v)) => {
                k.set_vlan_tci(0x8000 | v);
                m.set_vlan_tci(0x8fff);
            }
        }
        if let Some(t) = self.effective_dl_type() {
            k.set_eth_type(t);
            m.set_eth_type(0xffff);
        }
        if let Some(p) = self.nw_src {
            let (v, mask) = p.key_mask();
            k.set_nw_src(v);
            m.set_nw_src(mask);
        }
        if let Some(p) = self.nw_dst {
            let (v, mask) = p.key_mask();
            k.set_nw_dst(v);
            m.set_nw_dst(mask);
        }
        if let Some(p) = self.nw_proto {
            k.set_ip_proto(p);
            m.set_ip_proto(0xff);
        }
        if let Some(x) = self.tp_src {
            k.set_tp_src(x.value);
            m.set_tp_src(x.mask);
        }
        if let Some(x) = self.tp_dst {
            k.set_tp_dst(x.value);
            m.set_tp_dst(x.mask);
        }
        Ok((k.masked(&m), m))
    }

    /// Applies one `field=value` (or shorthand, `value == None`) token.
    pub(super) fn apply(&mut self, field: &str, value: Option<&str>) -> Result<(), FlowError> {
        fn set<T: PartialEq>(
            slot: &mut Option<T>,
            v: T,
            field: &'static str,
            token: &str,
        ) -> Result<(), FlowError> {
            match slot {
                Some(old) if *old != v => Err(FlowError::Duplicate {
                    field,
                    token: token.to_string(),
                }),
                _ => {
                    *slot = Some(v);
                    Ok(())
                }
            }
        }
        let shorthand = match field {
            "ip" => Some((ETH_TYPE_IPV4, None)),
            "ipv6" => Some((ETH_TYPE_IPV6, None)),
            "arp" => Some((ETH_TYPE_ARP, None)),
            "tcp" => Some((ETH_TYPE_IPV4, Some(6))),
            "udp" => Some((ETH_TYPE_IPV4, Some(17))),
            "icmp" => Some((ETH_TYPE_IPV4, Some(1))),
            "tcp6" => Some((ETH_TYPE_IPV6, Some(6))),
            "udp6" => Some((ETH_TYPE_IPV6, Some(17))),
            "icmp6" => Some((ETH_TYPE_IPV6, Some(58))),
            _ => None,
        };
        if let Some((t, proto)) = shorthand {
            if value.is_some() {
                return Err(bad("shorthand", field, "takes no value"));
            }
            set(&mut self.dl_type, t, "dl_type", field)?;
            if let Some(p) = proto {
                set(&mut self.nw_proto, p, "nw_proto", field)?;
            }
            return Ok(());
        }
        let known = [
            "in_port", "tun_id", "dl_src", "dl_dst", "dl_vlan", "dl_type", "nw_src", "nw_dst",
            "nw_proto", "tp_src", "tp_dst",
        ];
        let Some(&f) = known.iter().find(|&&k| k == field) else {
            return Err(FlowError::UnknownField(field.to_string()));
        };
        let Some(v) = value else {
            return Err(FlowError::MissingValue(field.to_string()));
        };
        let token = format!("{field}={v}");
        match f {
            "in_port" => {
                let p = parse_uint(f, v, u64::from(PortNo::MAX))? as PortNo;
                set(&mut self.in_port, p, f, &token)
            }
            "tun_id" => {
                let id = parse_uint(f, v, u64::from(u32::MAX))? as u32;
                set(&mut self.tun_id, id, f, &token)
            }
            "dl_src" | "dl_dst" => {
                let (a, m) = match v.split_once('/') {
                    Some((a, m)) => (a, Some(m)),
                    None => (v, None),
                };
                let value: MacAddr = a.parse().map_err(|_| bad(f, v, "not a MAC address"))?;
                let mask: MacAddr = match m {
                    Some(m) => m.parse().map_err(|_| bad(f, v, "mask is not a MAC"))?,
                    None => FULL_MAC,
                };
                let x = Masked {
                    value: MacAddr::from_u64(value.to_u64() & mask.to_u64()),
                    mask,
                };
                let slot = if f == "dl_src" {
                    &mut self.dl_src
                } else {
                    &mut self.dl_dst
                };
                set(slot, x, f, &token)
            }
            "dl_vlan" => {
                let m = if v == "none" || v == "0xffff" {
                    VlanMatch::Untagged
                } else {
                    VlanMatch::Vid(parse_uint(f, v, 0x0fff)? as u16)
                };
                set(&mut self.dl_vlan, m, f, &token)
            }
            "dl_type" => {
                let t = parse_uint(f, v, 0xffff)? as u16;
                set(&mut self.dl_type, t, f, &token)
            }
            "nw_src" | "nw_dst" => {
                let p: IpPrefix = v.parse().map_err(|e| match e {
                    FlowError::BadValue { reason, .. } => bad(f, v, reason),
                    other => other,
                })?;
                let slot = if f == "nw_src" {
                    &mut self.nw_src
                } else {
                    &mut self.nw_dst
                };
                set(slot, p, f, &token)
            }
            "nw_proto" => {
                let p = parse_uint(f, v, 0xff)? as u8;
                set(&mut self.nw_proto, p, f, &token)
            }
            _ => {
                // tp_src | tp_dst
                let (a, m) = match v.split_once('/') {
                    Some((a, m)) => (a, Some(m)),
                    None => (v, None),
                };
                let value = parse_uint(f, a, 0xffff)? as u16;
                let mask = match m {
                    Some(m) => parse_uint(f, m, 0xffff)? as u16,
                    None => 0xffff,
                };
                let x = Masked {
                    value: value & mask,
                    mask,
                };
                let slot = if f == "tp_src" {
                    &mut self.tp_src
                } else {
                    &mut self.tp_dst
                };
                set(slot, x, f, &token)
            }
        }
    }
}

/// Splits `a=b` into its parts; a bare word has no value.
pub(super) fn split_token(tok: &str) -> (&str, Option<&str>) {
    match tok.split_once('=') {
        Some((f, v)) => (f.trim(), Some(v.trim())),
        None => (tok, None),
    }
}

pub(super) fn match_tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', ' ', '\t']).filter(|t| !t.is_empty())
}

impl FromStr for FlowMatch {
    type Err = FlowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut m = FlowMatch::default();
        for tok in match_tokens(s) {
            let (f, v) = split_token(tok);
            m.apply(f, v)?;
        }
        m.validate()?;
        Ok(m)
    }
}

impl fmt::Display for FlowMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(p) = self.in_port {
            parts.push(format!("in_port={p}"));
        }
        if let Some(id) = self.tun_id {
            parts.push(format!("tun_id={id}"));
        }
        for (name, x) in [("dl_src", self.dl_src), ("dl_dst", self.dl_dst)] {
            if let Some(x) = x {
                if x.mask == FULL_MAC {
                    parts.push(format!("{name}={}", x.value));
                } else {
                    parts.push(format!("{name}={}/{}", x.value, x.mask));
                }
            }
        }
        match self.dl_vlan {
            None => {}
            Some(VlanMatch::Untagged) => parts.push("dl_vlan=none".into()),
            Some(VlanMatch::Vid(v)) => parts.push(format!("dl_vlan={v}")),
        }
        let short = match (self.dl_type, self.nw_proto) {
            (Some(ETH_TYPE_IPV4), Some(6)) => Some(("tcp", true)),
            (Some(ETH_TYPE_IPV4), Some(17)) => Some(("udp", true)),
            (Some(ETH_TYPE_IPV4), Some(1)) => Some(("icmp", true)),
            (Some(ETH_TYPE_IPV6), Some(6)) => Some(("tcp6", true)),
            (Some(ETH_TYPE_IPV6), Some(17)) => Some(("udp6", true)),
            (Some(ETH_TYPE_IPV6), Some(58)) => Some(("icmp6", true)),
            (Some(ETH_TYPE_IPV4), _) => Some(("ip", false)),
            (Some(ETH_TYPE_IPV6), _) => Some(("ipv6", false)),
            (Some(ETH_TYPE_ARP), _) => Some(("arp", false)),
            _ => None,
        };
        let proto_done = match short {
            Some((name, with_proto)) => {
                parts.push(name.into());
                with_proto
            }
            None => {
                if let Some(t) = self.dl_type {
                    parts.push(format!("dl_type={t:#06x}"));
                }
                false
            }
        };
        if let Some(p) = self.nw_src {
            parts.push(format!("nw_src={p}"));
        }
        if let Some(p) = self.nw_dst {
            parts.push(format!("nw_dst={p}"));
        }
        if let (Some(p), false) = (self.nw_proto, proto_done) {
            parts.push(format!("nw_proto={p}"));
        }
        for (name, x) in [("tp_src", self.tp_src), ("tp_dst", self.tp_dst)] {
            if let Some(x) = x {
                if x.mask == 0xffff {
                    parts.push(format!("{name}={}", x.value));
                } else {
                    parts.push(format!("{name}={}/{:#x}", x.value, x.mask));
                }
            }
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::from([a, b, c, d])
    }

    #[test]
    fn ipv4_prefix_implies_eth_type_and_uses_mapped_form() {
        let m = FlowMatch::new().nw_src(IpPrefix::new(v4(10, 0, 0, 0), 24).unwrap());
        let (k, mask) = m.to_key_mask().unwrap();
        assert_eq!(mask.eth_type(), 0xffff);
        assert_eq!(k.eth_type(), ETH_TYPE_IPV4);
        assert_eq!(mask.nw_src(), u128::MAX << (128 - 120));
        let mut hit = FlowKey::default();
        hit.set_eth_type(ETH_TYPE_IPV4);
        hit.set_nw_src(ip_to_u128(v4(10, 0, 0, 77)));
        assert_eq!(hit.masked(&mask), k);
        // Same mapped address inside an IPv6 packet does not match.
        let mut v6 = hit;
        v6.set_eth_type(ETH_TYPE_IPV6);
        assert_ne!(v6.masked(&mask), k);
        // Host bits are cleared on construction.
        let p = IpPrefix::new(v4(10, 0, 0, 99), 24).unwrap();
        assert_eq!(p.addr(), v4(10, 0, 0, 0));
        let p6 = IpPrefix::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0).unwrap();
        assert!(!p6.is_ipv4());
        assert_eq!(p6.key_mask(), (0, 0));
    }
}
