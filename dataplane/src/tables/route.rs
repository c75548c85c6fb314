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

use std::net::IpAddr;

use prefix_trie::PrefixMap;
use serde::{Deserialize, Serialize};
pub use xvs_types::route::{Prefix, RouteError, RouteOrigin};

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
        let routes = match prefix.addr() {
            IpAddr::V4(a) => self
                .v4
                .entry((u32::from(a), prefix.prefix_len()))
                .or_default(),
            IpAddr::V6(a) => self
                .v6
                .entry((u128::from(a), prefix.prefix_len()))
                .or_default(),
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
        let removed = match prefix.addr() {
            IpAddr::V4(a) => remove_in(&mut self.v4, (u32::from(a), prefix.prefix_len()), metric),
            IpAddr::V6(a) => remove_in(&mut self.v6, (u128::from(a), prefix.prefix_len()), metric),
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
        let routes = match prefix.addr() {
            IpAddr::V4(a) => self.v4.get(&(u32::from(a), prefix.prefix_len())),
            IpAddr::V6(a) => self.v6.get(&(u128::from(a), prefix.prefix_len())),
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
    use std::net::{Ipv4Addr, Ipv6Addr};
    use xvs_types::route::{mask_v4, mask_v6};

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
