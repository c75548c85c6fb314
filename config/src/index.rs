//! The index a [`super::ValidConfig`] is revalidated against: what the
//! cross-object checks need of the running config (names, numbers,
//! references, uniqueness keys, this host's addresses, each bridge's
//! tunnels), in persistent maps (`imbl`) so that deriving the next index
//! clones the previous one in O(1), with how one object is put in or taken
//! out. `incremental.rs` drives it.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use imbl::shared_ptr::DefaultSharedPtr;
use rustc_hash::FxBuildHasher;
use xvs_types::{MacAddr, PortNo, Prefix};

use super::objects::{lookup_reaches, wire_key, TunnelShape, WireKey};
use super::{
    AclConfig, BridgeConfig, Config, Direction, NeighborConfig, OverlayAddrConfig, PortConfig,
    QosConfig, RouteConfig, StaticFdbConfig, TunnelConfig, FIRST_PORT_NO,
};

// Fx, not SipHash: the keys are the operator's own config.
pub(super) type Map<K, V> = imbl::GenericHashMap<K, V, FxBuildHasher, DefaultSharedPtr>;
/// A multiset: how many objects hold each key. Counts, not sets, so that
/// taking one object out leaves a key others still hold.
pub(super) type Counts<K> = Map<K, u32>;

pub(super) fn inc<K: Hash + Eq + Clone>(m: &mut Counts<K>, k: K) -> u32 {
    let c = m.entry(k).or_insert(0);
    *c += 1;
    *c
}

pub(super) fn dec<K, Q>(m: &mut Counts<K>, k: &Q)
where
    K: Hash + Eq + Clone + Borrow<Q>,
    Q: Hash + Eq + ?Sized,
{
    let gone = match m.get_mut(k) {
        Some(c) => {
            *c = c.saturating_sub(1);
            *c == 0
        }
        None => false,
    };
    if gone {
        m.remove(k);
    }
}

pub(super) fn count<K, Q>(m: &Counts<K>, k: &Q) -> u32
where
    K: Hash + Eq + Borrow<Q>,
    Q: Hash + Eq + ?Sized,
{
    m.get(k).copied().unwrap_or(0)
}

/// Port numbers in use, one bit each: the lowest free one is a short
/// scan, and the map is cloned (8 KiB) only when a transaction changes it.
#[derive(Clone)]
pub(super) struct Numbers(Arc<[u64; 1024]>);

impl Default for Numbers {
    fn default() -> Self {
        Numbers(Arc::new([0; 1024]))
    }
}

impl fmt::Debug for Numbers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n: u32 = self.0.iter().map(|w| w.count_ones()).sum();
        write!(f, "Numbers({n} in use)")
    }
}

impl Numbers {
    pub(super) fn has(&self, n: PortNo) -> bool {
        let n = usize::from(n);
        self.0[n / 64] & (1 << (n % 64)) != 0
    }

    pub(super) fn set(&mut self, n: PortNo, on: bool) {
        let n = usize::from(n);
        let w = &mut Arc::make_mut(&mut self.0)[n / 64];
        if on {
            *w |= 1 << (n % 64);
        } else {
            *w &= !(1 << (n % 64));
        }
    }

    /// The lowest number [`Config::assign_port_numbers`] may give; none
    /// when all are taken (then the whole validation says what it does).
    pub(super) fn lowest_free(&self) -> Option<PortNo> {
        let last = self.0.len() - 1;
        self.0
            .iter()
            .enumerate()
            .find_map(|(w, bits)| {
                let mut free = !bits;
                if w == 0 {
                    free &= !((1 << FIRST_PORT_NO) - 1);
                }
                if w == last {
                    // PortNo::MAX, reserved.
                    free &= !(1 << 63);
                }
                (free != 0).then(|| w * 64 + free.trailing_zeros() as usize)
            })
            .and_then(|n| PortNo::try_from(n).ok())
    }
}

/// What a static MAC's checks read of the port it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PortRef {
    pub(super) bridge: String,
    pub(super) tunnel: Option<TunnelShape>,
}

/// The static MACs naming one port, as their checks read the port: so that
/// a port or tunnel changed under them is checked without finding them.
#[derive(Debug, Clone, Default)]
pub(super) struct FdbRefs {
    pub(super) count: u32,
    /// Entries without a remote, with an IPv4 one, with an IPv6 one.
    pub(super) bare: u32,
    pub(super) v4: u32,
    pub(super) v6: u32,
    /// The entries' bridges.
    pub(super) bridges: Counts<String>,
}

impl FdbRefs {
    /// Whether every entry's port checks in `check_fdb_entry` still pass
    /// with the port now `now`. (Their remotes against this host's own
    /// addresses are the `remotes` count's matter.)
    pub(super) fn hold(&self, now: &PortRef) -> bool {
        let bridge = self.bridges.len() == 1 && self.bridges.contains_key(now.bridge.as_str());
        let shape = match now.tunnel {
            None => self.v4 + self.v6 == 0,
            Some(t) => {
                (self.bare == 0 || !(t.group || t.several))
                    && (self.v4 == 0 || t.first_v4 != Some(false))
                    && (self.v6 == 0 || t.first_v4 != Some(true))
            }
        };
        bridge && shape
    }
}

/// The facts the cross-object checks of a valid config need, kept so that
/// the next config is checked against them and not rebuilt from every
/// object (see the module's comment).
#[derive(Debug, Clone, Default)]
pub(super) struct Index {
    pub(super) bridges: Counts<String>,
    /// Ports, tunnels, static MACs and addresses naming each bridge.
    pub(super) bridge_refs: Counts<String>,
    /// The one namespace of the uplink, ports and tunnels.
    pub(super) names: Counts<String>,
    pub(super) numbers: Numbers,
    /// Ports and tunnels by name.
    pub(super) ports: Map<String, PortRef>,
    /// Static MACs naming each port.
    pub(super) fdb_refs: Map<String, FdbRefs>,
    /// ACLs and policers naming each port.
    pub(super) rule_refs: Counts<String>,
    /// Each bridge's tunnels, as the VNI and lookup checks read them:
    /// how many, how many per VNI, per family of their first remote (true:
    /// IPv4), per multicast remote. Flat maps, not a small map per bridge:
    /// building 10,000 of those took most of the index's build time.
    pub(super) bridge_tunnels: Counts<String>,
    pub(super) bridge_vnis: Counts<(String, u32)>,
    pub(super) bridge_families: Counts<(String, bool)>,
    pub(super) bridge_groups: Counts<(String, IpAddr)>,
    /// The VTEPs each bridge's lookup may answer, for bridges that have one.
    pub(super) lookups: Map<String, Arc<[IpAddr]>>,
    pub(super) wire: Counts<WireKey>,
    /// This host's VTEP addresses: the uplink's and tunnels' locals.
    pub(super) own: Counts<IpAddr>,
    /// Unicast remotes of tunnels and static MACs: none may become own.
    pub(super) remotes: Counts<IpAddr>,
    pub(super) fdb: Counts<(String, u16, MacAddr)>,
    pub(super) acls: Counts<(String, Direction)>,
    pub(super) qos: Counts<(String, Direction)>,
    pub(super) routes: Counts<(Prefix, u32)>,
    pub(super) neighbors: Counts<IpAddr>,
    /// Per (bridge, VLAN, IP), the MACs given for it.
    pub(super) addrs: Map<(String, u16, IpAddr), Counts<MacAddr>>,
}

impl Index {
    /// The index of `c`, a valid config, in one walk.
    pub(super) fn build(c: &Config) -> Index {
        let mut ix = Index::default();
        if let Some(u) = &c.uplink {
            inc(&mut ix.names, u.iface.clone());
            if let Some(n) = u.number {
                ix.numbers.set(n, true);
            }
            for ip in &u.local_ips {
                inc(&mut ix.own, *ip);
            }
        }
        for b in c.bridges.iter() {
            ix.add_bridge(b);
        }
        for p in c.ports.iter() {
            ix.add_port(p);
            if let Some(n) = p.number {
                ix.numbers.set(n, true);
            }
        }
        for t in c.tunnels.iter() {
            ix.add_tunnel(t);
            if let Some(n) = t.number {
                ix.numbers.set(n, true);
            }
        }
        for f in c.fdb.iter() {
            ix.add_fdb(f);
        }
        for a in c.acls.iter() {
            ix.add_acl(a);
        }
        for q in c.qos.iter() {
            ix.add_qos(q);
        }
        for r in c.routes.iter() {
            ix.add_route(r);
        }
        for n in c.neighbors.iter() {
            ix.add_neighbor(n);
        }
        for a in c.addrs.iter() {
            ix.add_addr(a);
        }
        ix
    }

    // Each `add_*` returns false when the object clashes with one already
    // counted (a name, a key); `remove_*` undoes `add_*` of an object the
    // index holds.

    pub(super) fn add_bridge(&mut self, b: &BridgeConfig) -> bool {
        if let Some(l) = &b.lookup {
            self.lookups.insert(b.name.clone(), Arc::from(l.vteps()));
        }
        inc(&mut self.bridges, b.name.clone()) == 1
    }

    pub(super) fn remove_bridge(&mut self, b: &BridgeConfig) {
        if b.lookup.is_some() {
            self.lookups.remove(b.name.as_str());
        }
        dec(&mut self.bridges, b.name.as_str());
    }

    pub(super) fn add_port(&mut self, p: &PortConfig) -> bool {
        inc(&mut self.bridge_refs, p.bridge.clone());
        let r = PortRef {
            bridge: p.bridge.clone(),
            tunnel: None,
        };
        self.ports.insert(p.name.clone(), r);
        inc(&mut self.names, p.name.clone()) == 1
    }

    pub(super) fn remove_port(&mut self, p: &PortConfig) {
        dec(&mut self.bridge_refs, p.bridge.as_str());
        self.ports.remove(p.name.as_str());
        dec(&mut self.names, p.name.as_str());
    }

    pub(super) fn add_tunnel(&mut self, t: &TunnelConfig) -> bool {
        inc(&mut self.bridge_refs, t.bridge.clone());
        let r = PortRef {
            bridge: t.bridge.clone(),
            tunnel: Some(TunnelShape::of(t)),
        };
        self.ports.insert(t.name.clone(), r);
        inc(&mut self.bridge_tunnels, t.bridge.clone());
        inc(&mut self.bridge_vnis, (t.bridge.clone(), t.vni));
        if let Some(r) = t.remotes.first() {
            inc(&mut self.bridge_families, (t.bridge.clone(), r.is_ipv4()));
        }
        for r in &t.remotes {
            if r.is_multicast() {
                inc(&mut self.bridge_groups, (t.bridge.clone(), *r));
            } else {
                inc(&mut self.remotes, *r);
            }
        }
        if let Some(l) = t.local {
            inc(&mut self.own, l);
        }
        let wire = inc(&mut self.wire, wire_key(t)) == 1;
        let name = inc(&mut self.names, t.name.clone()) == 1;
        wire && name
    }

    pub(super) fn remove_tunnel(&mut self, t: &TunnelConfig) {
        dec(&mut self.bridge_refs, t.bridge.as_str());
        self.ports.remove(t.name.as_str());
        dec(&mut self.bridge_tunnels, t.bridge.as_str());
        dec(&mut self.bridge_vnis, &(t.bridge.clone(), t.vni));
        if let Some(r) = t.remotes.first() {
            dec(&mut self.bridge_families, &(t.bridge.clone(), r.is_ipv4()));
        }
        for r in &t.remotes {
            if r.is_multicast() {
                dec(&mut self.bridge_groups, &(t.bridge.clone(), *r));
            } else {
                dec(&mut self.remotes, r);
            }
        }
        if let Some(l) = t.local {
            dec(&mut self.own, &l);
        }
        dec(&mut self.wire, &wire_key(t));
        dec(&mut self.names, t.name.as_str());
    }

    pub(super) fn add_fdb(&mut self, f: &StaticFdbConfig) -> bool {
        inc(&mut self.bridge_refs, f.bridge.clone());
        let refs = self.fdb_refs.entry(f.port.clone()).or_default();
        refs.count += 1;
        match f.remote {
            None => refs.bare += 1,
            Some(r) if r.is_ipv4() => refs.v4 += 1,
            Some(_) => refs.v6 += 1,
        }
        inc(&mut refs.bridges, f.bridge.clone());
        if let Some(r) = f.remote {
            inc(&mut self.remotes, r);
        }
        inc(&mut self.fdb, (f.bridge.clone(), f.vlan, f.mac)) == 1
    }

    pub(super) fn remove_fdb(&mut self, f: &StaticFdbConfig) {
        dec(&mut self.bridge_refs, f.bridge.as_str());
        let empty = match self.fdb_refs.get_mut(f.port.as_str()) {
            Some(refs) => {
                refs.count = refs.count.saturating_sub(1);
                let n = match f.remote {
                    None => &mut refs.bare,
                    Some(r) if r.is_ipv4() => &mut refs.v4,
                    Some(_) => &mut refs.v6,
                };
                *n = n.saturating_sub(1);
                dec(&mut refs.bridges, f.bridge.as_str());
                refs.count == 0
            }
            None => false,
        };
        if empty {
            self.fdb_refs.remove(f.port.as_str());
        }
        if let Some(r) = f.remote {
            dec(&mut self.remotes, &r);
        }
        dec(&mut self.fdb, &(f.bridge.clone(), f.vlan, f.mac));
    }

    pub(super) fn add_acl(&mut self, a: &AclConfig) -> bool {
        inc(&mut self.rule_refs, a.port.clone());
        inc(&mut self.acls, (a.port.clone(), a.dir)) == 1
    }

    pub(super) fn remove_acl(&mut self, a: &AclConfig) {
        dec(&mut self.rule_refs, a.port.as_str());
        dec(&mut self.acls, &(a.port.clone(), a.dir));
    }

    pub(super) fn add_qos(&mut self, q: &QosConfig) -> bool {
        inc(&mut self.rule_refs, q.port.clone());
        inc(&mut self.qos, (q.port.clone(), q.dir)) == 1
    }

    pub(super) fn remove_qos(&mut self, q: &QosConfig) {
        dec(&mut self.rule_refs, q.port.as_str());
        dec(&mut self.qos, &(q.port.clone(), q.dir));
    }

    pub(super) fn add_route(&mut self, r: &RouteConfig) -> bool {
        inc(&mut self.routes, (r.prefix, r.metric)) == 1
    }

    pub(super) fn remove_route(&mut self, r: &RouteConfig) {
        dec(&mut self.routes, &(r.prefix, r.metric));
    }

    pub(super) fn add_neighbor(&mut self, n: &NeighborConfig) -> bool {
        inc(&mut self.neighbors, n.ip) == 1
    }

    pub(super) fn remove_neighbor(&mut self, n: &NeighborConfig) {
        dec(&mut self.neighbors, &n.ip);
    }

    pub(super) fn add_addr(&mut self, a: &OverlayAddrConfig) -> bool {
        inc(&mut self.bridge_refs, a.bridge.clone());
        let macs = self
            .addrs
            .entry((a.bridge.clone(), a.vlan, a.ip))
            .or_default();
        inc(macs, a.mac);
        // The same address given twice at the same MAC is no clash.
        macs.len() == 1
    }

    pub(super) fn remove_addr(&mut self, a: &OverlayAddrConfig) {
        dec(&mut self.bridge_refs, a.bridge.as_str());
        let key = (a.bridge.clone(), a.vlan, a.ip);
        let empty = match self.addrs.get_mut(&key) {
            Some(macs) => {
                dec(macs, &a.mac);
                macs.is_empty()
            }
            None => false,
        };
        if empty {
            self.addrs.remove(&key);
        }
    }

    pub(super) fn has_bridge(&self, name: &str) -> bool {
        self.bridges.contains_key(name)
    }

    pub(super) fn has_group(&self, bridge: &str, g: &IpAddr) -> bool {
        self.bridge_groups.contains_key(&(bridge.to_owned(), *g))
    }

    pub(super) fn has_family(&self, bridge: &str, v4: bool) -> bool {
        self.bridge_families.contains_key(&(bridge.to_owned(), v4))
    }

    /// Whether bridge `name`'s lookup, if it has one, reaches all its VTEPs.
    pub(super) fn lookup_ok(&self, name: &str) -> bool {
        let Some(vteps) = self.lookups.get(name) else {
            return true;
        };
        vteps.iter().all(|v| {
            lookup_reaches(v, &|g| self.has_group(name, g), &|v4| {
                self.has_family(name, v4)
            })
        })
    }
}
