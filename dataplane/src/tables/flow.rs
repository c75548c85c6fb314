//! The OpenFlow-like flow table and the per-worker exact-match cache (EMC).
//!
//! Who writes, who reads:
//! - [`FlowMatch`], [`FlowRule`] and their text syntax belong to the control
//!   plane (xvsctl input, persistence, dumps).
//! - [`FlowTable`] is built once by the control plane from a rule list and a
//!   generation number, then published in a snapshot; workers only read it.
//!   Its actions live in one contiguous array, so a hit costs one range load
//!   and no pointer chase.
//! - [`ExactMatchCache`] is owned by one worker and written only by it. It
//!   remembers full-key results (including misses) tagged with the table's
//!   generation; a snapshot swap with a new generation invalidates every entry
//!   at once without touching them.
//!
//! Semantics the pipeline relies on:
//! - A table with **no rules** forwards everything with [`Action::Normal`]
//!   (like the default `NORMAL` flow of a fresh OVS bridge); a table **with**
//!   rules drops what no rule matches (OpenFlow 1.3 table-miss). Use
//!   [`FlowTable::actions_or_default`] to get that right in one place.
//! - An empty action list drops.
//! - An IPv4 or IPv6 prefix on `nw_src`/`nw_dst` implies `dl_type` (0x0800 or
//!   0x86dd) when none is given, so an IPv4 rule never matches an IPv6 packet
//!   that carries an IPv4-mapped address.
//! - The control plane must give every table it publishes a generation that
//!   differs from the previous one, or EMC entries survive the swap.
//!
//! Text syntax (ovs-ofctl style; separators are commas or spaces, `actions=`
//! is last and takes the rest):
//! `priority=100,in_port=3,tun_id=42,dl_src=02:00:00:00:00:01/ff:ff:ff:00:00:00,
//! dl_vlan=10,dl_type=0x0800,nw_src=10.0.0.0/24,nw_proto=6,tp_dst=443/0xfff0,
//! actions=output:4,tunnel:5:0,mod_vlan_vid:7,strip_vlan,normal,flood,drop`.
//! Shorthands: `ip`, `ipv6`, `arp`, `tcp`, `udp`, `icmp`, `tcp6`, `udp6`,
//! `icmp6`. `dl_vlan=none` (or `0xffff`) matches untagged frames.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::tables::classifier::{Classifier, Rule};
use crate::types::{ip_to_u128, FlowKey, MacAddr, PortNo};

pub const ETH_TYPE_IPV4: u16 = 0x0800;
pub const ETH_TYPE_IPV6: u16 = 0x86dd;
pub const ETH_TYPE_ARP: u16 = 0x0806;

/// Priority of a rule whose text gives none (the OpenFlow default).
pub const DEFAULT_PRIORITY: u32 = 32768;

/// Seed the caller must use for the hash passed to
/// [`ExactMatchCache::lookup_or_classify`]: `key.hash_with(EMC_HASH_SEED)`.
pub const EMC_HASH_SEED: u64 = 0x0e3c_7a11_5eed_0001;

/// Default EMC size in entries (OVS uses the same).
pub const EMC_DEFAULT_ENTRIES: usize = 8192;

/// One miss in this many evicts a live entry (Open vSwitch's
/// `emc-insert-inv-prob`, same default): more flows than the cache holds
/// then keep a stable half of them cached instead of evicting each other
/// on every packet. A miss whose set has a free or stale way always
/// inserts, so a new generation refills the cache at once.
pub const EMC_DEFAULT_INSERT_INV_PROB: u32 = 100;

/// Errors from flow parsing, validation and table building. Every message
/// names the offending token or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("unknown match field {0:?}")]
    UnknownField(String),
    #[error("field {0:?} needs a value (write {0}=VALUE)")]
    MissingValue(String),
    #[error("field {field} set twice with different values (second: {token:?})")]
    Duplicate { field: &'static str, token: String },
    #[error("bad value {value:?} for {field}: {reason}")]
    BadValue {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    #[error("bad action {token:?}: {reason}")]
    BadAction { token: String, reason: &'static str },
    #[error("flow {0:?} has no actions= clause (use actions=drop to drop)")]
    MissingActions(String),
    #[error("{field}={value} does not fit dl_type={dl_type:#06x}")]
    Conflict {
        field: &'static str,
        value: String,
        dl_type: u16,
    },
    #[error("flow rule {index} (priority {priority}): {source}")]
    InRule {
        index: usize,
        priority: u32,
        source: Box<FlowError>,
    },
}

fn bad(field: &'static str, value: &str, reason: &'static str) -> FlowError {
    FlowError::BadValue {
        field,
        value: value.to_string(),
        reason,
    }
}

/// Decimal or `0x` hex.
fn parse_uint(field: &'static str, s: &str, max: u64) -> Result<u64, FlowError> {
    let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        s.parse::<u64>()
    }
    .map_err(|_| bad(field, s, "not a decimal or 0x-hex number"))?;
    if v > max {
        return Err(bad(field, s, "out of range"));
    }
    Ok(v)
}

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
        p.addr = crate::types::u128_to_ip(v);
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
    fn apply(&mut self, field: &str, value: Option<&str>) -> Result<(), FlowError> {
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
fn split_token(tok: &str) -> (&str, Option<&str>) {
    match tok.split_once('=') {
        Some((f, v)) => (f.trim(), Some(v.trim())),
        None => (tok, None),
    }
}

fn match_tokens(s: &str) -> impl Iterator<Item = &str> {
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

/// What to do with a frame that hit a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// To a local port; to a tunnel port means "push to all its remotes".
    Output(PortNo),
    /// Push via tunnel `port` to one remote VTEP (index into its remotes).
    Tunnel {
        port: PortNo,
        remote: u16,
    },
    /// The L2 learning switch.
    Normal,
    Drop,
    /// Set the 802.1Q VID, pushing a tag if there is none.
    PushVlan(u16),
    StripVlan,
    Flood,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Output(p) => write!(f, "output:{p}"),
            Action::Tunnel { port, remote } => write!(f, "tunnel:{port}:{remote}"),
            Action::Normal => f.write_str("normal"),
            Action::Drop => f.write_str("drop"),
            Action::PushVlan(v) => write!(f, "mod_vlan_vid:{v}"),
            Action::StripVlan => f.write_str("strip_vlan"),
            Action::Flood => f.write_str("flood"),
        }
    }
}

impl FromStr for Action {
    type Err = FlowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad_action = |reason| FlowError::BadAction {
            token: s.to_string(),
            reason,
        };
        let num = |v: &str, max: u64| -> Result<u64, FlowError> {
            parse_uint("action", v, max)
                .map_err(|_| bad_action("argument is not a number in range"))
        };
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        // ovs-ofctl takes action names in any case (NORMAL, Drop, ...).
        let name = name.to_ascii_lowercase();
        match (name.as_str(), arg) {
            ("normal", None) => Ok(Action::Normal),
            ("drop", None) => Ok(Action::Drop),
            ("flood", None) => Ok(Action::Flood),
            ("strip_vlan", None) => Ok(Action::StripVlan),
            ("output", Some(p)) => Ok(Action::Output(num(p, u64::from(PortNo::MAX))? as PortNo)),
            ("mod_vlan_vid" | "push_vlan", Some(v)) => Ok(Action::PushVlan(num(v, 0x0fff)? as u16)),
            ("tunnel", Some(a)) => {
                let (p, r) = a
                    .split_once(':')
                    .ok_or_else(|| bad_action("expected tunnel:PORT:REMOTE"))?;
                Ok(Action::Tunnel {
                    port: num(p, u64::from(PortNo::MAX))? as PortNo,
                    remote: num(r, u64::from(u16::MAX))? as u16,
                })
            }
            // ovs-ofctl accepts a bare port number as output.
            (n, None) if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => {
                Ok(Action::Output(num(n, u64::from(PortNo::MAX))? as PortNo))
            }
            ("normal" | "drop" | "flood" | "strip_vlan", Some(_)) => {
                Err(bad_action("takes no argument"))
            }
            ("output" | "mod_vlan_vid" | "push_vlan" | "tunnel", None) => {
                Err(bad_action("needs an argument after ':'"))
            }
            _ => Err(FlowError::UnknownAction(s.to_string())),
        }
    }
}

/// One flow: match, priority, actions, and an opaque cookie for the
/// controller that installed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRule {
    pub priority: u32,
    pub matches: FlowMatch,
    pub actions: Vec<Action>,
    pub cookie: u64,
}

impl FlowRule {
    /// Port numbers the rule names (match and actions), for the control
    /// plane to check they exist in the bridge.
    pub fn referenced_ports(&self) -> impl Iterator<Item = PortNo> + '_ {
        self.matches
            .in_port
            .into_iter()
            .chain(self.actions.iter().filter_map(|a| match a {
                Action::Output(p) | Action::Tunnel { port: p, .. } => Some(*p),
                _ => None,
            }))
    }
}

impl fmt::Display for FlowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "priority={}", self.priority)?;
        if self.cookie != 0 {
            write!(f, ",cookie={:#x}", self.cookie)?;
        }
        let m = self.matches.to_string();
        if !m.is_empty() {
            write!(f, ",{m}")?;
        }
        f.write_str(",actions=")?;
        if self.actions.is_empty() {
            return f.write_str("drop");
        }
        for (i, a) in self.actions.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl FromStr for FlowRule {
    type Err = FlowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some(pos) = s.find("actions=") else {
            return Err(FlowError::MissingActions(s.to_string()));
        };
        let (head, acts) = (&s[..pos], &s[pos + "actions=".len()..]);
        let mut priority = None;
        let mut cookie = None;
        let mut matches = FlowMatch::default();
        for tok in match_tokens(head) {
            match split_token(tok) {
                ("priority", Some(v)) => {
                    let p = parse_uint("priority", v, u64::from(u32::MAX))? as u32;
                    if priority.replace(p).is_some_and(|old| old != p) {
                        return Err(FlowError::Duplicate {
                            field: "priority",
                            token: tok.to_string(),
                        });
                    }
                }
                ("cookie", Some(v)) => {
                    let c = parse_uint("cookie", v, u64::MAX)?;
                    if cookie.replace(c).is_some_and(|old| old != c) {
                        return Err(FlowError::Duplicate {
                            field: "cookie",
                            token: tok.to_string(),
                        });
                    }
                }
                (f @ ("priority" | "cookie"), None) => {
                    return Err(FlowError::MissingValue(f.to_string()))
                }
                (f, v) => matches.apply(f, v)?,
            }
        }
        matches.validate()?;
        let mut actions = Vec::new();
        for tok in acts.split(',').map(str::trim) {
            if tok.is_empty() {
                return Err(FlowError::BadAction {
                    token: acts.to_string(),
                    reason: "empty action in list",
                });
            }
            actions.push(tok.parse()?);
        }
        Ok(FlowRule {
            priority: priority.unwrap_or(DEFAULT_PRIORITY),
            matches,
            actions,
            cookie: cookie.unwrap_or(0),
        })
    }
}

/// Where one rule's actions sit in [`FlowTable::actions`]' backing array.
#[derive(Debug, Clone, Copy)]
struct ActionRange {
    start: u32,
    len: u32,
}

/// An immutable flow table. See the module documentation for the miss and
/// empty-table semantics.
#[derive(Debug)]
pub struct FlowTable {
    classifier: Classifier<()>,
    /// Indexed by rule index.
    ranges: Box<[ActionRange]>,
    actions: Box<[Action]>,
    rules: Vec<FlowRule>,
    generation: u64,
}

static NORMAL_ACTIONS: [Action; 1] = [Action::Normal];

impl Default for FlowTable {
    /// The empty table: every frame takes the NORMAL path.
    fn default() -> Self {
        FlowTable {
            classifier: Classifier::build(Vec::new()),
            ranges: Box::new([]),
            actions: Box::new([]),
            rules: Vec::new(),
            generation: 0,
        }
    }
}

impl FlowTable {
    /// Validates and compiles `rules`; rule indices are positions in
    /// `rules`. `generation` must differ from the previously published
    /// table's (it is what invalidates the workers' exact-match caches).
    pub fn build(rules: Vec<FlowRule>, generation: u64) -> Result<FlowTable, FlowError> {
        let mut crules = Vec::with_capacity(rules.len());
        let mut ranges = Vec::with_capacity(rules.len());
        let mut actions = Vec::new();
        for (index, r) in rules.iter().enumerate() {
            let (key, mask) = r.matches.to_key_mask().map_err(|e| FlowError::InRule {
                index,
                priority: r.priority,
                source: Box::new(e),
            })?;
            crules.push(Rule::new(r.priority, key, mask, ()));
            let start = u32::try_from(actions.len()).map_err(|_| FlowError::InRule {
                index,
                priority: r.priority,
                source: Box::new(FlowError::BadAction {
                    token: format!("{} actions so far", actions.len()),
                    reason: "more than u32::MAX actions in one table",
                }),
            })?;
            actions.extend_from_slice(&r.actions);
            ranges.push(ActionRange {
                start,
                len: r.actions.len() as u32,
            });
        }
        Ok(FlowTable {
            classifier: Classifier::build(crules),
            ranges: ranges.into_boxed_slice(),
            actions: actions.into_boxed_slice(),
            rules,
            generation,
        })
    }

    /// The best matching rule's index.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<u32> {
        self.classifier.lookup(key).map(|(i, _)| i)
    }

    /// The actions of rule `idx`; empty (drop) for an unknown index.
    #[inline]
    pub fn actions(&self, idx: u32) -> &[Action] {
        let Some(r) = self.ranges.get(idx as usize) else {
            return &[];
        };
        let start = r.start as usize;
        self.actions
            .get(start..start + r.len as usize)
            .unwrap_or(&[])
    }

    /// The actions for a lookup result, applying the table-miss rules:
    /// an empty table acts as `normal`, a miss in a non-empty one drops.
    #[inline]
    pub fn actions_or_default(&self, hit: Option<u32>) -> &[Action] {
        match hit {
            Some(i) => self.actions(i),
            None if self.ranges.is_empty() => &NORMAL_ACTIONS,
            None => &[],
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn rule(&self, idx: u32) -> Option<&FlowRule> {
        self.rules.get(idx as usize)
    }

    pub fn rules(&self) -> &[FlowRule] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Stored in an entry for a cached miss.
const EMC_NO_MATCH: u32 = u32::MAX;

/// `slot` of a result that was not cached (see [`EmcHit`]).
const EMC_NO_SLOT: u32 = u32::MAX;

/// Two ways make a set of four cache lines; the results sit next to their
/// key, so a hit reads no other memory.
#[derive(Debug, Clone, Copy, Default)]
struct EmcWay {
    key: FlowKey,
    /// `generation + 1` of the table the result came from; 0 = empty.
    stamp: u64,
    /// Stamp of `aux` and `plan` (the caller's second generation); 0 = not
    /// computed.
    aux_stamp: u64,
    /// The high half of the key's hash (the low bits chose the set): a
    /// cheap first test before the full key compare.
    hash_hi: u32,
    /// Rule index, or [`EMC_NO_MATCH`].
    rule: u32,
    /// A second per-key result the caller caches alongside the rule (the
    /// pipeline keeps the ingress firewall verdict here).
    aux: u32,
    /// In way 0 only: the index of the way used last (LRU of two ways).
    mru: u32,
    /// A third per-key result, set by the caller after the lookup (see
    /// [`ExactMatchCache::set_plan`]); 0 = none.
    plan: u64,
}

#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct EmcSet {
    ways: [EmcWay; 2],
}

/// What one probe of an [`ExactMatchCache`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmcHit {
    /// The matching rule's index, `None` for a table miss.
    pub rule: Option<u32>,
    /// The caller's per-key value (see [`ExactMatchCache::lookup_with_aux`]).
    pub aux: u32,
    /// What the caller stored for this key with
    /// [`ExactMatchCache::set_plan`] under the same aux generation; 0 =
    /// nothing yet.
    pub plan: u64,
    /// The way that holds the entry, for `set_plan`.
    slot: u32,
}

impl EmcHit {
    /// A result that no cache entry backs (`set_plan` ignores it).
    pub const fn uncached(rule: Option<u32>, aux: u32) -> EmcHit {
        EmcHit {
            rule,
            aux,
            plan: 0,
            slot: EMC_NO_SLOT,
        }
    }
}

/// Per-worker exact-match cache in front of a [`FlowTable`].
///
/// 2-way set associative with exact LRU per set (one bit suffices for two
/// ways). Why not direct-mapped: two hot flows whose hashes share a set would
/// evict each other on every packet; with two ways they coexist, and LRU
/// keeps the hot one when a burst of one-off flows (a scan) passes through,
/// since each newcomer evicts the other newcomer before the hot entry.
/// Stale entries (older generation) are replaced first. Misses (no rule
/// matched) are cached too, so unmatched traffic does not re-run the
/// classifier either.
///
/// Besides the rule, an entry keeps two results of the caller's that are
/// pure functions of the key under the caller's generation: `aux` (computed
/// by the lookup) and `plan` (stored after it). The pipeline keeps the
/// ingress firewall verdict and the forwarding decision there, as Open
/// vSwitch's EMC keeps a datapath flow's actions with the MAC learning
/// result already resolved into them.
#[derive(Debug)]
pub struct ExactMatchCache {
    sets: Box<[EmcSet]>,
    set_mask: usize,
    hits: u64,
    misses: u64,
    /// See [`EMC_DEFAULT_INSERT_INV_PROB`]; 1 = always evict.
    insert_inv_prob: u32,
    /// xorshift state for the eviction draw (never 0).
    rng: u64,
}

impl Default for ExactMatchCache {
    fn default() -> Self {
        ExactMatchCache::new(EMC_DEFAULT_ENTRIES)
    }
}

impl ExactMatchCache {
    /// A cache of `entries` entries, rounded up to a power of two and at
    /// least 2. Allocates once, here.
    pub fn new(entries: usize) -> ExactMatchCache {
        let nsets = (entries.max(2).next_power_of_two()) / 2;
        ExactMatchCache {
            sets: vec![EmcSet::default(); nsets].into_boxed_slice(),
            set_mask: nsets - 1,
            hits: 0,
            misses: 0,
            insert_inv_prob: EMC_DEFAULT_INSERT_INV_PROB,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// One miss in `n` may evict a live entry (0 or 1: every miss).
    pub fn set_insert_inv_prob(&mut self, n: u32) {
        self.insert_inv_prob = n.max(1);
    }

    /// Capacity in entries.
    pub fn capacity(&self) -> usize {
        self.sets.len() * 2
    }

    pub fn hits(&self) -> u64 {
        self.hits
    }

    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// The rule index for `key`, from the cache if it holds a result for
    /// this table generation, else from the classifier (and then cached).
    /// `hash` should be `key.hash_with(EMC_HASH_SEED)`; results are correct
    /// for any hash (the full key is compared), only the hit rate suffers.
    #[inline]
    pub fn lookup_or_classify(
        &mut self,
        table: &FlowTable,
        key: &FlowKey,
        hash: u64,
    ) -> Option<u32> {
        self.lookup_with_aux(table, key, hash, 0, |_| 0).rule
    }

    /// As [`ExactMatchCache::lookup_or_classify`], and also caches a second
    /// per-key value `aux(key)`, valid while `aux_generation` stays the same
    /// (one probe then answers two questions, e.g. flow rule and firewall
    /// verdict), and returns the plan stored for the key under that
    /// generation. `aux` must be a pure function of the key for a given
    /// `aux_generation`.
    #[inline]
    pub fn lookup_with_aux(
        &mut self,
        table: &FlowTable,
        key: &FlowKey,
        hash: u64,
        aux_generation: u64,
        aux: impl FnOnce(&FlowKey) -> u32,
    ) -> EmcHit {
        let stamp = table.generation().wrapping_add(1);
        let aux_stamp = aux_generation.wrapping_add(1);
        if stamp == 0 || aux_stamp == 0 {
            // Generation u64::MAX has no stamp distinct from "empty": do
            // not cache, stay correct.
            self.misses += 1;
            return EmcHit::uncached(table.lookup(key), aux(key));
        }
        let set_idx = (hash as usize) & self.set_mask;
        let hash_hi = (hash >> 32) as u32;
        let set = &mut self.sets[set_idx];
        for w in 0..2 {
            let e = &mut set.ways[w];
            if e.stamp == stamp && e.hash_hi == hash_hi && e.key == *key {
                self.hits += 1;
                if e.aux_stamp != aux_stamp {
                    e.aux = aux(key);
                    e.aux_stamp = aux_stamp;
                    e.plan = 0;
                }
                let hit = EmcHit {
                    rule: (e.rule != EMC_NO_MATCH).then_some(e.rule),
                    aux: e.aux,
                    plan: e.plan,
                    slot: (set_idx * 2 + w) as u32,
                };
                set.ways[0].mru = w as u32;
                return hit;
            }
        }
        self.misses += 1;
        let result = table.lookup(key);
        let a = aux(key);
        let victim = if set.ways[0].stamp != stamp {
            0
        } else if set.ways[1].stamp != stamp {
            1
        } else {
            if self.insert_inv_prob > 1 {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                if self.rng % u64::from(self.insert_inv_prob) != 0 {
                    return EmcHit::uncached(result, a);
                }
            }
            1 - (set.ways[0].mru as usize & 1)
        };
        set.ways[victim] = EmcWay {
            key: *key,
            stamp,
            aux_stamp,
            hash_hi,
            rule: result.unwrap_or(EMC_NO_MATCH),
            aux: a,
            mru: 0,
            plan: 0,
        };
        set.ways[0].mru = victim as u32;
        EmcHit {
            rule: result,
            aux: a,
            plan: 0,
            slot: (set_idx * 2 + victim) as u32,
        }
    }

    /// Starts loading the set a key with `hash` lives in, so that a lookup
    /// a little later finds it in cache. Only a hint.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        #[cfg(target_arch = "x86_64")]
        if let Some(set) = self.sets.get((hash as usize) & self.set_mask) {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p: *const EmcSet = set;
            // SAFETY: prefetch is only a hint: it never faults and reads
            // nothing the program sees; both addresses lie inside `set`
            // (256 bytes).
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p.cast());
                _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>().wrapping_add(64));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = hash;
    }

    /// Stores `plan` with the entry `hit` came from, valid until the aux
    /// generation changes. The caller must not have probed the cache since
    /// `hit` (the way may hold another key by then).
    #[inline]
    pub fn set_plan(&mut self, hit: &EmcHit, plan: u64) {
        let s = hit.slot as usize;
        if let Some(set) = self.sets.get_mut(s / 2) {
            set.ways[s & 1].plan = plan;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn tcp_key(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> FlowKey {
        let mut k = FlowKey::default();
        k.set_in_port(3);
        k.set_eth_type(if src.is_ipv4() {
            ETH_TYPE_IPV4
        } else {
            ETH_TYPE_IPV6
        });
        k.set_ip_proto(6);
        k.set_nw_src(ip_to_u128(src));
        k.set_nw_dst(ip_to_u128(dst));
        k.set_tp_src(sport);
        k.set_tp_dst(dport);
        k
    }

    #[test]
    fn parse_full_example_and_roundtrip() {
        let s = "priority=100,in_port=3,tun_id=42,dl_src=02:00:00:00:00:01/ff:ff:ff:00:00:00,\
                 dl_dst=02:00:00:00:00:02,dl_vlan=10,dl_type=0x0800,nw_src=10.0.0.0/24,\
                 nw_dst=10.0.1.5,nw_proto=6,tp_src=80,tp_dst=443/0xfff0,actions=output:4,output:5";
        let r: FlowRule = s.parse().unwrap();
        assert_eq!(r.priority, 100);
        assert_eq!(r.matches.in_port, Some(3));
        assert_eq!(r.matches.tun_id, Some(42));
        assert_eq!(
            r.matches.dl_src,
            Some(Masked {
                value: MacAddr([2, 0, 0, 0, 0, 0]),
                mask: MacAddr([0xff, 0xff, 0xff, 0, 0, 0])
            })
        );
        assert_eq!(r.matches.dl_vlan, Some(VlanMatch::Vid(10)));
        assert_eq!(
            r.matches.tp_dst,
            Some(Masked {
                value: 432,
                mask: 0xfff0
            })
        );
        assert_eq!(r.actions, vec![Action::Output(4), Action::Output(5)]);
        let text = r.to_string();
        assert!(text.contains("tcp"), "{text}");
        let again: FlowRule = text.parse().unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn shorthands_and_all_actions_roundtrip() {
        for s in [
            "priority=1,ip,actions=normal",
            "priority=2,ipv6,nw_dst=2001:db8::/32,actions=flood",
            "priority=3,arp,actions=drop",
            "priority=4,udp,tp_dst=4789,actions=tunnel:7:2,mod_vlan_vid:100,strip_vlan",
            "priority=5,icmp6,actions=output:1",
            "priority=6,cookie=0xabc,dl_vlan=none,actions=normal",
            "priority=7,actions=drop",
        ] {
            let r: FlowRule = s.parse().unwrap();
            assert_eq!(r.to_string(), s);
        }
        let r: FlowRule = "tcp actions=3".parse().unwrap();
        assert_eq!(r.priority, DEFAULT_PRIORITY);
        assert_eq!(r.matches.dl_type, Some(ETH_TYPE_IPV4));
        assert_eq!(r.matches.nw_proto, Some(6));
        assert_eq!(r.actions, vec![Action::Output(3)]);
    }

    #[test]
    fn parse_errors_name_the_token() {
        let cases: [(&str, &str); 10] = [
            ("in_port=3,bogus=1,actions=drop", "bogus"),
            ("in_port=70000,actions=drop", "70000"),
            ("dl_src=02:00:00:00:00,actions=drop", "02:00:00:00:00"),
            ("nw_src=10.0.0.0/33,actions=drop", "10.0.0.0/33"),
            ("dl_vlan=4096,actions=drop", "4096"),
            ("in_port=3", "in_port=3"),
            ("actions=output:x", "output:x"),
            ("actions=jump", "jump"),
            ("ipv6,nw_src=10.0.0.1,actions=drop", "10.0.0.1"),
            ("tcp,nw_proto=17,actions=drop", "nw_proto=17"),
        ];
        for (s, needle) in cases {
            let e = s.parse::<FlowRule>().unwrap_err();
            assert!(e.to_string().contains(needle), "{s}: {e}");
        }
        assert_eq!(
            "in_port".parse::<FlowMatch>(),
            Err(FlowError::MissingValue("in_port".into()))
        );
    }

    #[test]
    fn ipv4_prefix_implies_eth_type_and_uses_mapped_form() {
        let m = FlowMatch::new().nw_src(IpPrefix::new(v4(10, 0, 0, 0), 24).unwrap());
        let (k, mask) = m.to_key_mask().unwrap();
        assert_eq!(mask.eth_type(), 0xffff);
        assert_eq!(k.eth_type(), ETH_TYPE_IPV4);
        assert_eq!(mask.nw_src(), u128::MAX << (128 - 120));
        let hit = tcp_key(v4(10, 0, 0, 77), v4(1, 1, 1, 1), 1, 2);
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

    fn table(rules: &[&str], generation: u64) -> FlowTable {
        let rules = rules.iter().map(|s| s.parse().unwrap()).collect();
        FlowTable::build(rules, generation).unwrap()
    }

    #[test]
    fn table_lookup_actions_and_defaults() {
        let t = table(
            &[
                "priority=10,tcp,nw_dst=10.0.0.0/8,actions=output:1",
                "priority=20,tcp,nw_dst=10.0.0.0/8,tp_dst=443,actions=output:2,output:3",
                "priority=5,actions=drop",
            ],
            1,
        );
        let k = tcp_key(v4(1, 2, 3, 4), v4(10, 9, 9, 9), 1000, 443);
        assert_eq!(t.lookup(&k), Some(1));
        assert_eq!(t.actions(1), &[Action::Output(2), Action::Output(3)]);
        let k80 = tcp_key(v4(1, 2, 3, 4), v4(10, 9, 9, 9), 1000, 80);
        assert_eq!(t.actions_or_default(t.lookup(&k80)), &[Action::Output(1)]);
        assert_eq!(t.actions(99), &[] as &[Action]);

        let empty = FlowTable::build(vec![], 1).unwrap();
        assert_eq!(
            empty.actions_or_default(empty.lookup(&k)),
            &[Action::Normal]
        );
        let miss = table(&["priority=1,in_port=9,actions=normal"], 1);
        assert_eq!(miss.actions_or_default(miss.lookup(&k)), &[] as &[Action]);
    }

    #[test]
    fn build_rejects_invalid_builder_values_naming_the_rule() {
        let bad = FlowRule {
            priority: 7,
            matches: FlowMatch::new().dl_vlan(5000),
            actions: vec![],
            cookie: 0,
        };
        let e = FlowTable::build(vec![bad], 1).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("rule 0") && msg.contains("priority 7") && msg.contains("5000"),
            "{msg}"
        );
    }

    #[test]
    fn emc_hits_after_first_miss_and_caches_negative_results() {
        let t = table(&["priority=1,in_port=3,actions=output:1"], 1);
        let mut emc = ExactMatchCache::new(64);
        let k = tcp_key(v4(1, 1, 1, 1), v4(2, 2, 2, 2), 1, 2);
        let h = k.hash_with(EMC_HASH_SEED);
        assert_eq!(emc.lookup_or_classify(&t, &k, h), Some(0));
        assert_eq!(emc.lookup_or_classify(&t, &k, h), Some(0));
        assert_eq!((emc.hits(), emc.misses()), (1, 1));

        let mut other = k;
        other.set_in_port(4);
        let h2 = other.hash_with(EMC_HASH_SEED);
        assert_eq!(emc.lookup_or_classify(&t, &other, h2), None);
        assert_eq!(emc.lookup_or_classify(&t, &other, h2), None);
        assert_eq!((emc.hits(), emc.misses()), (2, 2));
    }

    #[test]
    fn emc_generation_change_invalidates_everything() {
        let t1 = table(&["priority=1,in_port=3,actions=output:1"], 1);
        let t2 = table(
            &[
                "priority=1,in_port=3,actions=output:1",
                "priority=9,in_port=3,actions=output:2",
            ],
            2,
        );
        let mut emc = ExactMatchCache::default();
        assert_eq!(emc.capacity(), EMC_DEFAULT_ENTRIES);
        let k = tcp_key(v4(1, 1, 1, 1), v4(2, 2, 2, 2), 1, 2);
        let h = k.hash_with(EMC_HASH_SEED);
        assert_eq!(emc.lookup_or_classify(&t1, &k, h), Some(0));
        assert_eq!(emc.lookup_or_classify(&t2, &k, h), Some(1));
        assert_eq!(emc.misses(), 2);
        assert_eq!(emc.lookup_or_classify(&t2, &k, h), Some(1));
        assert_eq!(emc.hits(), 1);
        // Generation u64::MAX is served correctly, just not cached.
        let tmax = table(&["priority=1,in_port=3,actions=output:1"], u64::MAX);
        assert_eq!(emc.lookup_or_classify(&tmax, &k, h), Some(0));
        assert_eq!(emc.lookup_or_classify(&tmax, &k, h), Some(0));
    }

    #[test]
    fn emc_set_is_four_cache_lines() {
        assert_eq!(std::mem::size_of::<EmcSet>(), 256);
    }

    #[test]
    fn emc_plan_lives_as_long_as_its_aux_generation() {
        let t = table(&["priority=1,in_port=3,actions=normal"], 1);
        let mut emc = ExactMatchCache::new(64);
        let k = tcp_key(v4(1, 1, 1, 1), v4(2, 2, 2, 2), 1, 2);
        let h = k.hash_with(EMC_HASH_SEED);
        let first = emc.lookup_with_aux(&t, &k, h, 7, |_| 5);
        assert_eq!((first.rule, first.aux, first.plan), (Some(0), 5, 0));
        emc.set_plan(&first, 0xabc);
        let again = emc.lookup_with_aux(&t, &k, h, 7, |_| unreachable!("aux is cached"));
        assert_eq!((again.aux, again.plan), (5, 0xabc));
        // Another key in the cache keeps its own (empty) plan.
        let mut other = k;
        other.set_tp_dst(3);
        let o = emc.lookup_with_aux(&t, &other, other.hash_with(EMC_HASH_SEED), 7, |_| 6);
        assert_eq!((o.aux, o.plan), (6, 0));
        // A new aux generation recomputes aux and forgets the plan.
        let next = emc.lookup_with_aux(&t, &k, h, 8, |_| 9);
        assert_eq!((next.rule, next.aux, next.plan), (Some(0), 9, 0));
        // A result the cache does not hold ignores set_plan.
        let tmax = table(&["priority=1,in_port=3,actions=normal"], u64::MAX);
        let u = emc.lookup_with_aux(&tmax, &k, h, 8, |_| 1);
        emc.set_plan(&u, 0x1);
        assert_eq!(emc.lookup_with_aux(&t, &k, h, 8, |_| 9).plan, 0);
    }

    #[test]
    fn emc_set_collisions_keep_two_ways_and_evict_lru() {
        let t = table(&["priority=1,actions=normal"], 1);
        // Two sets: every key lands in set (hash & 1); collect three keys in
        // the same set.
        let mut emc = ExactMatchCache::new(4);
        emc.set_insert_inv_prob(1);
        let mut keys = Vec::new();
        let mut i = 0u16;
        while keys.len() < 3 {
            let mut k = FlowKey::default();
            k.set_tp_src(i);
            if k.hash_with(EMC_HASH_SEED) & 1 == 0 {
                keys.push(k);
            }
            i += 1;
        }
        let look = |emc: &mut ExactMatchCache, k: &FlowKey| {
            emc.lookup_or_classify(&t, k, k.hash_with(EMC_HASH_SEED))
        };
        look(&mut emc, &keys[0]);
        look(&mut emc, &keys[1]);
        look(&mut emc, &keys[0]); // hit, keys[0] most recent
        assert_eq!(emc.hits(), 1);
        look(&mut emc, &keys[2]); // evicts keys[1], the LRU
        look(&mut emc, &keys[0]);
        assert_eq!(emc.hits(), 2);
        look(&mut emc, &keys[1]);
        assert_eq!((emc.hits(), emc.misses()), (2, 4));
    }

    #[test]
    fn more_flows_than_entries_keep_a_stable_part_cached() {
        let t = table(&["priority=1,actions=normal"], 1);
        let keys: Vec<FlowKey> = (0..2048u16)
            .map(|i| {
                let mut k = FlowKey::default();
                k.set_tp_src(i);
                k
            })
            .collect();
        let rounds = |emc: &mut ExactMatchCache| {
            for _ in 0..200 {
                for k in &keys {
                    emc.lookup_or_classify(&t, k, k.hash_with(EMC_HASH_SEED));
                }
            }
            emc.hits() as f64 / (emc.hits() + emc.misses()) as f64
        };
        // Round-robin over twice the capacity: with LRU alone, only keys
        // that have a set (nearly) to themselves hit.
        let mut always = ExactMatchCache::new(1024);
        always.set_insert_inv_prob(1);
        let lru = rounds(&mut always);
        let mut sampled = ExactMatchCache::new(1024);
        let rate = rounds(&mut sampled);
        eprintln!("hit rate: LRU {lru:.3}, sampled eviction {rate:.3}");
        assert!(rate > lru + 0.15, "hit rate: LRU {lru}, sampled {rate}");
        // A new generation refills at once: free and stale ways always
        // take the newcomer.
        let t2 = table(&["priority=1,actions=normal"], 2);
        let mut fresh = ExactMatchCache::new(8192);
        for k in &keys {
            fresh.lookup_or_classify(&t, k, k.hash_with(EMC_HASH_SEED));
        }
        for k in &keys {
            fresh.lookup_or_classify(&t2, k, k.hash_with(EMC_HASH_SEED));
        }
        let before = fresh.hits();
        for k in &keys {
            fresh.lookup_or_classify(&t2, k, k.hash_with(EMC_HASH_SEED));
        }
        assert!(fresh.hits() - before > 1900, "{}", fresh.hits() - before);
    }

    #[test]
    fn emc_same_hash_different_key_is_not_a_hit() {
        let t = table(&["priority=1,in_port=3,actions=output:1"], 1);
        let mut emc = ExactMatchCache::new(2);
        let mut a = FlowKey::default();
        a.set_in_port(3);
        let b = FlowKey::default();
        // One hash for both keys: a forced full-hash collision.
        assert_eq!(emc.lookup_or_classify(&t, &a, 5), Some(0));
        assert_eq!(emc.lookup_or_classify(&t, &b, 5), None);
        assert_eq!(emc.hits(), 0);
    }
}
