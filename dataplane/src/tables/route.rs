//! Underlay route table: longest-prefix match over IPv4 and IPv6 routes,
//! used to find the next hop and source address of each remote VTEP.
//!
//! # Who writes, who reads
//! Control thread only. It is filled from the kernel (rtnetlink, origin
//! `Kernel`) and from xvsctl (origin `User`), and read when tunnel header
//! templates are built; workers see its result only inside templates.
//! [`RouteTable::generation`] changes on every change so the template builder
//! knows when to rebuild.
//!
//! # Invariants
//! - A [`Prefix`] never has host bits set and its length fits its family.
//! - A route's gateway and preferred source are of the prefix's family.
//! - (prefix, metric) is unique: inserting the same pair replaces the route,
//!   as `ip route replace` does. Routes of one prefix are kept sorted by
//!   metric, so the best one is the first.
//! - IPv4 and IPv6 live in separate tries: an IPv4 address never matches an
//!   IPv6 route (not even `::/0`) and vice versa.
//!
//! The tries are prefix-trie's `PrefixMap` keyed by `(u32, u8)` and
//! `(u128, u8)`, which gives LPM without a hand-written trie.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use prefix_trie::PrefixMap;
use serde::{Deserialize, Serialize};

/// Why a prefix or a route was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("invalid prefix {0:?}: expected ADDRESS or ADDRESS/LENGTH")]
    Parse(String),
    #[error("invalid prefix {input:?}: length {len} exceeds {max} for this address family")]
    BadLength { input: String, len: u32, max: u8 },
    #[error(
        "invalid prefix {input:?}: host bits are set beyond /{len} (did you mean {canonical}?)"
    )]
    HostBits {
        input: String,
        len: u8,
        canonical: String,
    },
    #[error("route {prefix}: gateway {gateway} is not of the prefix's address family")]
    GatewayFamily { prefix: Prefix, gateway: IpAddr },
    #[error("route {prefix}: preferred source {src} is not of the prefix's address family")]
    SrcFamily { prefix: Prefix, src: IpAddr },
}

/// An IP prefix with no host bits set. Serialized as "addr/len".
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

fn mask_v4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask_v6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl Prefix {
    /// `addr/len`; refuses a length over 32 (IPv4) or 128 (IPv6) and host bits.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, RouteError> {
        Self::checked(addr, u32::from(len), || format!("{addr}/{len}"))
    }

    /// The host route for `addr` (/32 or /128).
    pub fn host(addr: IpAddr) -> Self {
        let len = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        Prefix { addr, len }
    }

    fn checked(addr: IpAddr, len: u32, input: impl Fn() -> String) -> Result<Self, RouteError> {
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        if len > u32::from(max) {
            return Err(RouteError::BadLength {
                input: input(),
                len,
                max,
            });
        }
        let len = len as u8;
        let canonical = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(len))),
        };
        if canonical != addr {
            return Err(RouteError::HostBits {
                input: input(),
                len,
                canonical: format!("{canonical}/{len}"),
            });
        }
        Ok(Prefix { addr, len })
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// True for the default route (`0.0.0.0/0`, `::/0`).
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether `ip` falls inside this prefix (never across families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => u32::from(a) & mask_v4(self.len) == u32::from(p),
            (IpAddr::V6(p), IpAddr::V6(a)) => u128::from(a) & mask_v6(self.len) == u128::from(p),
            _ => false,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Prefix {
    type Err = RouteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RouteError::Parse(s.to_string());
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let Some(len) = len else {
            return Ok(Prefix::host(addr));
        };
        // u32::from_str would take "+8"; a length is plain digits.
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let len: u32 = len.parse().map_err(|_| bad())?;
        Self::checked(addr, len, || s.to_string())
    }
}

impl Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Who owns a route: kernel routes are replaced wholesale on resync, user
/// routes only by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteOrigin {
    Kernel,
    User,
    /// From the config's `routes` (replaced whole on every apply).
    Config,
}

/// One underlay route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub prefix: Prefix,
    /// Next hop; `None` for a directly connected prefix (resolve the
    /// destination itself).
    pub gateway: Option<IpAddr>,
    /// Output interface name, for display.
    pub dev: String,
    pub ifindex: u32,
    /// Preferred source address for packets along this route.
    pub src: Option<IpAddr>,
    /// Lower wins among routes of the same prefix.
    pub metric: u32,
    pub origin: RouteOrigin,
}

/// The underlay routing table. See the module doc.
#[derive(Debug, Default)]
pub struct RouteTable {
    v4: PrefixMap<(u32, u8), Vec<Route>>,
    v6: PrefixMap<(u128, u8), Vec<Route>>,
    len: usize,
    generation: u64,
}

impl RouteTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route, replacing one with the same prefix and metric.
    pub fn insert(&mut self, route: Route) -> Result<(), RouteError> {
        let prefix = route.prefix;
        if let Some(gateway) = route.gateway {
            if gateway.is_ipv4() != prefix.is_ipv4() {
                return Err(RouteError::GatewayFamily { prefix, gateway });
            }
        }
        if let Some(src) = route.src {
            if src.is_ipv4() != prefix.is_ipv4() {
                return Err(RouteError::SrcFamily { prefix, src });
            }
        }
        let routes = match prefix.addr {
            IpAddr::V4(a) => self.v4.entry((u32::from(a), prefix.len)).or_default(),
            IpAddr::V6(a) => self.v6.entry((u128::from(a), prefix.len)).or_default(),
        };
        match routes.binary_search_by_key(&route.metric, |r| r.metric) {
            Ok(i) => routes[i] = route,
            Err(i) => {
                routes.insert(i, route);
                self.len += 1;
            }
        }
        self.generation += 1;
        Ok(())
    }

    /// Removes the route of `prefix` with `metric`, or every route of `prefix`
    /// when `metric` is `None`. False if nothing matched.
    pub fn remove(&mut self, prefix: &Prefix, metric: Option<u32>) -> bool {
        let removed = match prefix.addr {
            IpAddr::V4(a) => remove_in(&mut self.v4, (u32::from(a), prefix.len), metric),
            IpAddr::V6(a) => remove_in(&mut self.v6, (u128::from(a), prefix.len), metric),
        };
        if removed > 0 {
            self.len -= removed;
            self.generation += 1;
        }
        removed > 0
    }

    /// Removes every route of `origin` (e.g. before a kernel resync). Returns how many.
    pub fn remove_origin(&mut self, origin: RouteOrigin) -> usize {
        let removed = retain_in(&mut self.v4, |r| r.origin != origin)
            + retain_in(&mut self.v6, |r| r.origin != origin);
        if removed > 0 {
            self.len -= removed;
            self.generation += 1;
        }
        removed
    }

    /// The best route to `ip`: longest matching prefix of the same family,
    /// then the lowest metric.
    pub fn lookup(&self, ip: IpAddr) -> Option<&Route> {
        let routes = match ip {
            IpAddr::V4(a) => self.v4.get_lpm(&(u32::from(a), 32))?.1,
            IpAddr::V6(a) => self.v6.get_lpm(&(u128::from(a), 128))?.1,
        };
        routes.first()
    }

    /// The routes of exactly `prefix`, best metric first.
    pub fn routes(&self, prefix: &Prefix) -> &[Route] {
        let routes = match prefix.addr {
            IpAddr::V4(a) => self.v4.get(&(u32::from(a), prefix.len)),
            IpAddr::V6(a) => self.v6.get(&(u128::from(a), prefix.len)),
        };
        routes.map_or(&[], Vec::as_slice)
    }

    /// Every route for `route-show`: IPv4 before IPv6, then by address,
    /// prefix length and metric.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        let mut all: Vec<&Route> = self.v4.values().chain(self.v6.values()).flatten().collect();
        all.sort_by_key(|r| (r.prefix, r.metric));
        all.into_iter()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bumped on every change.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

fn remove_in<K>(map: &mut PrefixMap<K, Vec<Route>>, key: K, metric: Option<u32>) -> usize
where
    K: prefix_trie::Prefix,
{
    let Some(routes) = map.get_mut(&key) else {
        return 0;
    };
    let before = routes.len();
    match metric {
        Some(m) => routes.retain(|r| r.metric != m),
        None => routes.clear(),
    }
    let removed = before - routes.len();
    if routes.is_empty() {
        map.remove(&key);
    }
    removed
}

fn retain_in<K>(map: &mut PrefixMap<K, Vec<Route>>, keep: impl Fn(&Route) -> bool) -> usize
where
    K: prefix_trie::Prefix,
{
    let mut removed = 0;
    for routes in map.values_mut() {
        let before = routes.len();
        routes.retain(&keep);
        removed += before - routes.len();
    }
    map.retain(|_, routes| !routes.is_empty());
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn route(prefix: &str, gw: Option<&str>, dev: &str, metric: u32) -> Route {
        Route {
            prefix: p(prefix),
            gateway: gw.map(ip),
            dev: dev.to_string(),
            ifindex: 2,
            src: None,
            metric,
            origin: RouteOrigin::Kernel,
        }
    }

    #[test]
    fn prefix_parse_and_errors() {
        assert_eq!(p("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(p("2001:db8::/32").prefix_len(), 32);
        assert_eq!(p("192.0.2.7"), Prefix::host(ip("192.0.2.7")));
        assert_eq!(p("2001:db8::1").prefix_len(), 128);
        assert!(p("0.0.0.0/0").is_default());
        assert!(matches!(
            "10.0.0.0/33".parse::<Prefix>(),
            Err(RouteError::BadLength {
                len: 33,
                max: 32,
                ..
            })
        ));
        assert!(matches!(
            "::/129".parse::<Prefix>(),
            Err(RouteError::BadLength { len: 129, .. })
        ));
        let e = "10.0.0.1/8".parse::<Prefix>().unwrap_err();
        assert!(e.to_string().contains("10.0.0.1/8"), "{e}");
        assert!(e.to_string().contains("10.0.0.0/8"), "{e}");
        for bad in [
            "",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/8/1",
            "x/8",
        ] {
            assert!(
                matches!(bad.parse::<Prefix>(), Err(RouteError::Parse(_))),
                "{bad}"
            );
        }
        assert!(Prefix::new(ip("10.1.0.0"), 8).is_err());
        assert!(p("10.0.0.0/8").contains(ip("10.255.0.1")));
        assert!(!p("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(!p("::/0").contains(ip("10.0.0.1")));
    }

    #[test]
    fn longest_prefix_wins_and_defaults() {
        let mut t = RouteTable::new();
        t.insert(route("0.0.0.0/0", Some("192.0.2.1"), "eth0", 100))
            .unwrap();
        t.insert(route("10.0.0.0/8", Some("192.0.2.2"), "eth0", 0))
            .unwrap();
        t.insert(route("10.1.0.0/16", None, "eth1", 0)).unwrap();
        t.insert(route("10.1.2.3", Some("192.0.2.3"), "eth0", 0))
            .unwrap();
        assert_eq!(t.lookup(ip("10.1.2.3")).unwrap().prefix, p("10.1.2.3/32"));
        assert_eq!(t.lookup(ip("10.1.2.4")).unwrap().dev, "eth1");
        assert_eq!(t.lookup(ip("10.2.0.1")).unwrap().prefix, p("10.0.0.0/8"));
        assert_eq!(t.lookup(ip("8.8.8.8")).unwrap().prefix, p("0.0.0.0/0"));
        assert!(t.remove(&p("0.0.0.0/0"), None));
        assert!(t.lookup(ip("8.8.8.8")).is_none());
        assert!(!t.remove(&p("0.0.0.0/0"), None));
    }

    #[test]
    fn families_are_separate() {
        let mut t = RouteTable::new();
        t.insert(route("::/0", Some("fe80::1"), "eth0", 0)).unwrap();
        assert!(t.lookup(ip("10.0.0.1")).is_none());
        assert!(t.lookup(ip("::ffff:10.0.0.1")).is_some());
        t.insert(route("0.0.0.0/0", Some("192.0.2.1"), "eth0", 0))
            .unwrap();
        assert_eq!(t.lookup(ip("10.0.0.1")).unwrap().prefix, p("0.0.0.0/0"));
        assert_eq!(t.lookup(ip("2001:db8::1")).unwrap().prefix, p("::/0"));
        assert_eq!(
            t.insert(route("10.0.0.0/8", Some("fe80::1"), "eth0", 0)),
            Err(RouteError::GatewayFamily {
                prefix: p("10.0.0.0/8"),
                gateway: ip("fe80::1")
            })
        );
        let mut r = route("2001:db8::/32", None, "eth0", 0);
        r.src = Some(ip("192.0.2.9"));
        assert!(matches!(t.insert(r), Err(RouteError::SrcFamily { .. })));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn metrics_order_and_replace() {
        let mut t = RouteTable::new();
        let g0 = t.generation();
        t.insert(route("10.0.0.0/8", Some("192.0.2.1"), "a", 200))
            .unwrap();
        t.insert(route("10.0.0.0/8", Some("192.0.2.2"), "b", 100))
            .unwrap();
        assert_eq!(t.lookup(ip("10.0.0.1")).unwrap().dev, "b");
        // Same prefix and metric: replaced, not added.
        t.insert(route("10.0.0.0/8", Some("192.0.2.3"), "c", 100))
            .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(ip("10.0.0.1")).unwrap().dev, "c");
        assert!(t.remove(&p("10.0.0.0/8"), Some(100)));
        assert_eq!(t.lookup(ip("10.0.0.1")).unwrap().dev, "a");
        assert!(!t.remove(&p("10.0.0.0/8"), Some(5)));
        assert_eq!(t.routes(&p("10.0.0.0/8")).len(), 1);
        assert!(t.generation() > g0);
    }

    #[test]
    fn remove_origin_and_sorted_iter() {
        let mut t = RouteTable::new();
        let mut user = route("192.0.2.0/24", None, "eth1", 0);
        user.origin = RouteOrigin::User;
        t.insert(user).unwrap();
        t.insert(route("2001:db8::/32", None, "eth0", 0)).unwrap();
        t.insert(route("10.0.0.0/8", None, "eth0", 5)).unwrap();
        t.insert(route("10.0.0.0/8", None, "eth0", 1)).unwrap();
        t.insert(route("10.0.0.0/16", None, "eth0", 0)).unwrap();
        let shown: Vec<String> = t
            .iter()
            .map(|r| format!("{} {}", r.prefix, r.metric))
            .collect();
        assert_eq!(
            shown,
            [
                "10.0.0.0/8 1",
                "10.0.0.0/8 5",
                "10.0.0.0/16 0",
                "192.0.2.0/24 0",
                "2001:db8::/32 0"
            ]
        );
        assert_eq!(t.remove_origin(RouteOrigin::Kernel), 4);
        assert_eq!(t.len(), 1);
        assert!(t.lookup(ip("10.0.0.1")).is_none());
        assert_eq!(t.lookup(ip("192.0.2.1")).unwrap().dev, "eth1");
    }

    #[test]
    fn prefix_and_origin_deserialize_from_strings() {
        use serde::de::value::{Error as DeError, StrDeserializer};
        use serde::de::IntoDeserializer;
        let de: StrDeserializer<'_, DeError> = "10.0.0.0/8".into_deserializer();
        assert_eq!(Prefix::deserialize(de).unwrap(), p("10.0.0.0/8"));
        let de: StrDeserializer<'_, DeError> = "10.0.0.1/8".into_deserializer();
        let e = Prefix::deserialize(de).unwrap_err();
        assert!(e.to_string().contains("10.0.0.1/8"), "{e}");
        let de: StrDeserializer<'_, DeError> = "kernel".into_deserializer();
        assert_eq!(RouteOrigin::deserialize(de).unwrap(), RouteOrigin::Kernel);
    }

    // ---- model check against a linear scan ------------------------------------

    fn any_prefix() -> impl Strategy<Value = Prefix> {
        let v4 = (
            prop_oneof![Just(0x0a00_0000u32), Just(0x0a01_0000), Just(0xc000_0200)],
            any::<u16>(),
            0u8..=32,
        )
            .prop_map(|(hi, lo, len)| {
                let a = (hi | u32::from(lo)) & mask_v4(len);
                Prefix::new(IpAddr::V4(Ipv4Addr::from(a)), len).unwrap()
            });
        let v6 = (any::<u16>(), 0u8..=128).prop_map(|(lo, len)| {
            let a = (0x2001_0db8u128 << 96 | u128::from(lo) << 80) & mask_v6(len);
            Prefix::new(IpAddr::V6(Ipv6Addr::from(a)), len).unwrap()
        });
        prop_oneof![3 => v4, 1 => v6]
    }

    fn any_addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            3 => (prop_oneof![Just(0x0a00_0000u32), Just(0x0a01_0000), Just(0xc000_0200)], any::<u16>())
                .prop_map(|(hi, lo)| IpAddr::V4(Ipv4Addr::from(hi | u32::from(lo)))),
            1 => any::<u16>().prop_map(|lo| IpAddr::V6(Ipv6Addr::from(0x2001_0db8u128 << 96 | u128::from(lo) << 80))),
        ]
    }

    proptest! {
        #[test]
        fn lpm_matches_linear_scan(
            adds in proptest::collection::vec((any_prefix(), 0u32..3), 0..40),
            dels in proptest::collection::vec((any_prefix(), proptest::option::of(0u32..3)), 0..10),
            probes in proptest::collection::vec(any_addr(), 1..40),
        ) {
            let mut t = RouteTable::new();
            let mut model: Vec<Route> = Vec::new();
            for (i, (prefix, metric)) in adds.into_iter().enumerate() {
                let r = Route {
                    prefix,
                    gateway: None,
                    dev: format!("d{i}"),
                    ifindex: 1,
                    src: None,
                    metric,
                    origin: RouteOrigin::User,
                };
                model.retain(|m| !(m.prefix == prefix && m.metric == metric));
                model.push(r.clone());
                t.insert(r).unwrap();
            }
            for (prefix, metric) in dels {
                let before = model.len();
                model.retain(|m| !(m.prefix == prefix && metric.is_none_or(|x| x == m.metric)));
                prop_assert_eq!(t.remove(&prefix, metric), model.len() < before);
            }
            prop_assert_eq!(t.len(), model.len());
            for a in probes {
                let want = model
                    .iter()
                    .filter(|r| r.prefix.contains(a))
                    .max_by_key(|r| (r.prefix.prefix_len(), std::cmp::Reverse(r.metric)));
                prop_assert_eq!(t.lookup(a), want, "probe {}", a);
            }
        }
    }
}
