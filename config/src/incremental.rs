//! Incremental validation: [`ValidConfig::revalidate`] validates the next
//! config of a running one at a cost set by what changed, not by the size
//! of the config.
//!
//! A [`ValidConfig`] carries an [`Index`] of what the cross-object checks
//! of `validate.rs` need (names, numbers, references, uniqueness keys,
//! this host's addresses, each bridge's tunnels), in persistent maps
//! (`imbl`): deriving the next index clones the previous one in O(1) and
//! updates it in O(log n) per changed object, so the previous
//! `ValidConfig`, the daemon's rollback, stays intact. The index is built
//! whole, in O(n), the first time a config is revalidated against.
//!
//! The one safety rule: the fast path never accepts a config
//! [`Config::validate`] rejects. It runs the same per-object checks
//! (`check_port`, `check_tunnel`, ...) on the added and changed objects
//! and the cross-object ones against the index. On any problem, and on a
//! change it does not handle cheaply (the uplink, which every tunnel
//! reads), it validates the whole config instead and returns exactly
//! that result: error messages and their order are the whole validation's
//! by construction. `incremental_tests.rs` proves the two equal on random
//! edits.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::ops::{Deref, Range};
use std::sync::{Arc, OnceLock};

use imbl::shared_ptr::DefaultSharedPtr;
use rustc_hash::FxBuildHasher;
use xvs_types::{MacAddr, PortNo, Prefix};

use super::validate::{
    check_acl, check_addr, check_bridge, check_fdb_entry, check_lookup, check_neighbor, check_port,
    check_port_name, check_qos, check_route, lookup_reaches, wire_key, Clashes, Report,
    TunnelShape, WireKey,
};
use super::{
    AclConfig, BridgeConfig, Config, ConfigErrors, Direction, NeighborConfig, OverlayAddrConfig,
    PortConfig, QosConfig, RouteConfig, StaticFdbConfig, TunnelConfig, FIRST_PORT_NO,
};

// Fx, not SipHash: the keys are the operator's own config.
type Map<K, V> = imbl::GenericHashMap<K, V, FxBuildHasher, DefaultSharedPtr>;
/// A multiset: how many objects hold each key. Counts, not sets, so that
/// taking one object out leaves a key others still hold.
type Counts<K> = Map<K, u32>;

fn inc<K: Hash + Eq + Clone>(m: &mut Counts<K>, k: K) -> u32 {
    let c = m.entry(k).or_insert(0);
    *c += 1;
    *c
}

fn dec<K, Q>(m: &mut Counts<K>, k: &Q)
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

fn count<K, Q>(m: &Counts<K>, k: &Q) -> u32
where
    K: Hash + Eq + Borrow<Q>,
    Q: Hash + Eq + ?Sized,
{
    m.get(k).copied().unwrap_or(0)
}

/// A config [`Config::validate`] accepted, its port numbers assigned: what
/// the control plane compiles. Only [`Config::validated`] and
/// [`ValidConfig::revalidate`] make one, so a config is validated once on
/// its way from a transaction to a snapshot.
#[derive(Clone, Default)]
pub struct ValidConfig {
    config: Config,
    /// Built on the first revalidation against this config, derived from
    /// the previous one by a fast revalidation.
    index: OnceLock<Index>,
}

impl PartialEq for ValidConfig {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
    }
}

impl Eq for ValidConfig {}

impl fmt::Debug for ValidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValidConfig").field(&self.config).finish()
    }
}

/// Read-only: a valid config is read like any config, and only changed by
/// making a new one.
impl Deref for ValidConfig {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.config
    }
}

/// What a [`ValidConfig::revalidate`] did: the proof, without a clock,
/// that a small change was validated at a small cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revalidation {
    /// Validated against the index (else: the whole config).
    pub fast: bool,
    /// The running config's index was built whole first (the first
    /// revalidation after a whole validation).
    pub index_built: bool,
    /// Objects the fast path checked or moved in or out of the index.
    pub objects: usize,
}

impl ValidConfig {
    pub(super) fn new(config: Config) -> ValidConfig {
        ValidConfig {
            config,
            index: OnceLock::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn into_config(self) -> Config {
        self.config
    }

    pub(super) fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// `new`, a config derived from this one, validated: port numbers
    /// assigned and the result exactly [`Config::validated`]'s, at a cost
    /// set by what differs between the two (see the module's comment).
    pub fn revalidate(&self, new: Config) -> Result<ValidConfig, ConfigErrors> {
        self.revalidate_traced(new).0
    }

    /// Builds the index the next [`Self::revalidate`] validates against,
    /// if it is not there yet (once per whole validation): a daemon calls
    /// it when it starts, so that its first transaction does not pay for
    /// it (about 50 ms at 10,000 tunnels).
    pub fn prepare(&self) {
        self.index.get_or_init(|| Index::build(&self.config));
    }

    /// [`Self::revalidate`], and what it did.
    pub fn revalidate_traced(
        &self,
        mut new: Config,
    ) -> (Result<ValidConfig, ConfigErrors>, Revalidation) {
        let mut work = Revalidation::default();
        let old = &self.config;
        // Every tunnel reads the uplink (its addresses, its family).
        if new.uplink != old.uplink {
            return (new.validated(), work);
        }
        let index = self
            .index
            .get_or_init(|| {
                work.index_built = true;
                Index::build(old)
            })
            .clone();
        match fast(old, index, &mut new, &mut work) {
            Some(index) => {
                work.fast = true;
                let v = ValidConfig {
                    config: new,
                    index: OnceLock::from(index),
                };
                (Ok(v), work)
            }
            // Numbering again finds every number given: the result is
            // `validated`'s of the config as it came.
            None => (new.validated(), work),
        }
    }
}

/// Port numbers in use, one bit each: the lowest free one is a short
/// scan, and the map is cloned (8 KiB) only when a transaction changes it.
#[derive(Clone)]
struct Numbers(Arc<[u64; 1024]>);

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
    fn has(&self, n: PortNo) -> bool {
        let n = usize::from(n);
        self.0[n / 64] & (1 << (n % 64)) != 0
    }

    fn set(&mut self, n: PortNo, on: bool) {
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
    fn lowest_free(&self) -> Option<PortNo> {
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
struct PortRef {
    bridge: String,
    tunnel: Option<TunnelShape>,
}

/// The static MACs naming one port, as their checks read the port: so that
/// a port or tunnel changed under them is checked without finding them.
#[derive(Debug, Clone, Default)]
struct FdbRefs {
    count: u32,
    /// Entries without a remote, with an IPv4 one, with an IPv6 one.
    bare: u32,
    v4: u32,
    v6: u32,
    /// The entries' bridges.
    bridges: Counts<String>,
}

impl FdbRefs {
    /// Whether every entry's port checks in `check_fdb_entry` still pass
    /// with the port now `now`. (Their remotes against this host's own
    /// addresses are the `remotes` count's matter.)
    fn hold(&self, now: &PortRef) -> bool {
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
    bridges: Counts<String>,
    /// Ports, tunnels, static MACs and addresses naming each bridge.
    bridge_refs: Counts<String>,
    /// The one namespace of the uplink, ports and tunnels.
    names: Counts<String>,
    numbers: Numbers,
    /// Ports and tunnels by name.
    ports: Map<String, PortRef>,
    /// Static MACs naming each port.
    fdb_refs: Map<String, FdbRefs>,
    /// ACLs and policers naming each port.
    rule_refs: Counts<String>,
    /// Each bridge's tunnels, as the VNI and lookup checks read them:
    /// how many, how many per VNI, per family of their first remote (true:
    /// IPv4), per multicast remote. Flat maps, not a small map per bridge:
    /// building 10,000 of those took most of the index's build time.
    bridge_tunnels: Counts<String>,
    bridge_vnis: Counts<(String, u32)>,
    bridge_families: Counts<(String, bool)>,
    bridge_groups: Counts<(String, IpAddr)>,
    /// The VTEPs each bridge's lookup may answer, for bridges that have one.
    lookups: Map<String, Arc<[IpAddr]>>,
    wire: Counts<WireKey>,
    /// This host's VTEP addresses: the uplink's and tunnels' locals.
    own: Counts<IpAddr>,
    /// Unicast remotes of tunnels and static MACs: none may become own.
    remotes: Counts<IpAddr>,
    fdb: Counts<(String, u16, MacAddr)>,
    acls: Counts<(String, Direction)>,
    qos: Counts<(String, Direction)>,
    routes: Counts<(Prefix, u32)>,
    neighbors: Counts<IpAddr>,
    /// Per (bridge, VLAN, IP), the MACs given for it.
    addrs: Map<(String, u16, IpAddr), Counts<MacAddr>>,
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

    fn add_bridge(&mut self, b: &BridgeConfig) -> bool {
        if let Some(l) = &b.lookup {
            self.lookups.insert(b.name.clone(), Arc::from(l.vteps()));
        }
        inc(&mut self.bridges, b.name.clone()) == 1
    }

    fn remove_bridge(&mut self, b: &BridgeConfig) {
        if b.lookup.is_some() {
            self.lookups.remove(b.name.as_str());
        }
        dec(&mut self.bridges, b.name.as_str());
    }

    fn add_port(&mut self, p: &PortConfig) -> bool {
        inc(&mut self.bridge_refs, p.bridge.clone());
        let r = PortRef {
            bridge: p.bridge.clone(),
            tunnel: None,
        };
        self.ports.insert(p.name.clone(), r);
        inc(&mut self.names, p.name.clone()) == 1
    }

    fn remove_port(&mut self, p: &PortConfig) {
        dec(&mut self.bridge_refs, p.bridge.as_str());
        self.ports.remove(p.name.as_str());
        dec(&mut self.names, p.name.as_str());
    }

    fn add_tunnel(&mut self, t: &TunnelConfig) -> bool {
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

    fn remove_tunnel(&mut self, t: &TunnelConfig) {
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

    fn add_fdb(&mut self, f: &StaticFdbConfig) -> bool {
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

    fn remove_fdb(&mut self, f: &StaticFdbConfig) {
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

    fn add_acl(&mut self, a: &AclConfig) -> bool {
        inc(&mut self.rule_refs, a.port.clone());
        inc(&mut self.acls, (a.port.clone(), a.dir)) == 1
    }

    fn remove_acl(&mut self, a: &AclConfig) {
        dec(&mut self.rule_refs, a.port.as_str());
        dec(&mut self.acls, &(a.port.clone(), a.dir));
    }

    fn add_qos(&mut self, q: &QosConfig) -> bool {
        inc(&mut self.rule_refs, q.port.clone());
        inc(&mut self.qos, (q.port.clone(), q.dir)) == 1
    }

    fn remove_qos(&mut self, q: &QosConfig) {
        dec(&mut self.rule_refs, q.port.as_str());
        dec(&mut self.qos, &(q.port.clone(), q.dir));
    }

    fn add_route(&mut self, r: &RouteConfig) -> bool {
        inc(&mut self.routes, (r.prefix, r.metric)) == 1
    }

    fn remove_route(&mut self, r: &RouteConfig) {
        dec(&mut self.routes, &(r.prefix, r.metric));
    }

    fn add_neighbor(&mut self, n: &NeighborConfig) -> bool {
        inc(&mut self.neighbors, n.ip) == 1
    }

    fn remove_neighbor(&mut self, n: &NeighborConfig) {
        dec(&mut self.neighbors, &n.ip);
    }

    fn add_addr(&mut self, a: &OverlayAddrConfig) -> bool {
        inc(&mut self.bridge_refs, a.bridge.clone());
        let macs = self
            .addrs
            .entry((a.bridge.clone(), a.vlan, a.ip))
            .or_default();
        inc(macs, a.mac);
        // The same address given twice at the same MAC is no clash.
        macs.len() == 1
    }

    fn remove_addr(&mut self, a: &OverlayAddrConfig) {
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

    fn has_bridge(&self, name: &str) -> bool {
        self.bridges.contains_key(name)
    }

    fn has_group(&self, bridge: &str, g: &IpAddr) -> bool {
        self.bridge_groups.contains_key(&(bridge.to_owned(), *g))
    }

    fn has_family(&self, bridge: &str, v4: bool) -> bool {
        self.bridge_families.contains_key(&(bridge.to_owned(), v4))
    }

    /// Whether bridge `name`'s lookup, if it has one, reaches all its VTEPs.
    fn lookup_ok(&self, name: &str) -> bool {
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

/// Where two lists differ: `old[.0]` became `new[.1]`, everything before
/// and after equal and in the same order. Elements are compared with
/// `==` from both ends: for shared (pointer-compared) objects an unchanged
/// one costs a pointer comparison.
fn changed<T: PartialEq>(old: &[T], new: &[T]) -> (Range<usize>, Range<usize>) {
    let pre = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let room = old.len().min(new.len()) - pre;
    let suf = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(room)
        .take_while(|(a, b)| a == b)
        .count();
    (pre..old.len() - suf, pre..new.len() - suf)
}

/// The fast path: `new`'s port numbers assigned as
/// [`Config::assign_port_numbers`] would, then the changed objects taken
/// out of and put into `ix` and checked. `Some`: `new` is valid and this
/// is its index; `None`: a problem, or a change this path leaves to the
/// whole validation.
fn fast(old: &Config, mut ix: Index, new: &mut Config, work: &mut Revalidation) -> Option<Index> {
    let bridges = changed(&old.bridges, &new.bridges);
    let ports = changed(&old.ports, &new.ports);
    let tunnels = changed(&old.tunnels, &new.tunnels);
    let fdb = changed(&old.fdb, &new.fdb);
    let acls = changed(&old.acls, &new.acls);
    let qos = changed(&old.qos, &new.qos);
    let routes = changed(&old.routes, &new.routes);
    let neighbors = changed(&old.neighbors, &new.neighbors);
    let addrs = changed(&old.addrs, &new.addrs);
    work.objects = [
        &bridges, &ports, &tunnels, &fdb, &acls, &qos, &routes, &neighbors, &addrs,
    ]
    .iter()
    .map(|(o, n)| o.len() + n.len())
    .sum();

    let numbers_unique = number(&mut ix.numbers, old, new, &ports, &tunnels)?;

    // Everything out first, then in: a clash is then a count above one,
    // whatever the order of the objects.
    for b in old.bridges[bridges.0.clone()].iter() {
        ix.remove_bridge(b);
    }
    for p in old.ports[ports.0.clone()].iter() {
        ix.remove_port(p);
    }
    for t in old.tunnels[tunnels.0.clone()].iter() {
        ix.remove_tunnel(t);
    }
    for f in old.fdb[fdb.0.clone()].iter() {
        ix.remove_fdb(f);
    }
    for a in old.acls[acls.0.clone()].iter() {
        ix.remove_acl(a);
    }
    for q in old.qos[qos.0.clone()].iter() {
        ix.remove_qos(q);
    }
    for r in old.routes[routes.0.clone()].iter() {
        ix.remove_route(r);
    }
    for n in old.neighbors[neighbors.0.clone()].iter() {
        ix.remove_neighbor(n);
    }
    for a in old.addrs[addrs.0.clone()].iter() {
        ix.remove_addr(a);
    }
    let mut unique = numbers_unique;
    for b in new.bridges[bridges.1.clone()].iter() {
        unique &= ix.add_bridge(b);
    }
    for p in new.ports[ports.1.clone()].iter() {
        unique &= ix.add_port(p);
    }
    for t in new.tunnels[tunnels.1.clone()].iter() {
        unique &= ix.add_tunnel(t);
    }
    for f in new.fdb[fdb.1.clone()].iter() {
        unique &= ix.add_fdb(f);
    }
    for a in new.acls[acls.1.clone()].iter() {
        unique &= ix.add_acl(a);
    }
    for q in new.qos[qos.1.clone()].iter() {
        unique &= ix.add_qos(q);
    }
    for r in new.routes[routes.1.clone()].iter() {
        unique &= ix.add_route(r);
    }
    for n in new.neighbors[neighbors.1.clone()].iter() {
        unique &= ix.add_neighbor(n);
    }
    for a in new.addrs[addrs.1.clone()].iter() {
        unique &= ix.add_addr(a);
    }
    if !unique {
        return None;
    }

    // The added and changed objects, each by validate.rs's own checks,
    // against the index of the whole new config.
    let mut problems = 0usize;
    {
        let e: &mut Report = &mut |_, _| problems += 1;
        let ix = &ix;
        let is_own = |ip: &IpAddr| ix.own.contains_key(ip);
        for b in new.bridges[bridges.1.clone()].iter() {
            check_bridge(b, false, e);
            if let Some(l) = &b.lookup {
                let has_group = |g: &IpAddr| ix.has_group(&b.name, g);
                let has_family = |v4: bool| ix.has_family(&b.name, v4);
                check_lookup(b, l, &has_group, &has_family, e);
            }
        }
        for p in new.ports[ports.1.clone()].iter() {
            check_port_name(&p.name, p.number, None, None, e);
        }
        for t in new.tunnels[tunnels.1.clone()].iter() {
            check_port_name(&t.name, t.number, None, None, e);
        }
        for p in new.ports[ports.1.clone()].iter() {
            check_port(p, ix.has_bridge(&p.bridge), e);
        }
        for t in new.tunnels[tunnels.1.clone()].iter() {
            let bridge_known = ix.has_bridge(&t.bridge);
            new.check_tunnel(t, bridge_known, Clashes::default(), &is_own, e);
            // One VNI per bridge: the tunnel's, whatever its bridge's
            // other tunnels.
            let same_vni = count(&ix.bridge_vnis, &(t.bridge.clone(), t.vni));
            if same_vni != count(&ix.bridge_tunnels, t.bridge.as_str()) {
                e(String::new(), String::new());
            }
            // Its local address is ours now: no remote may be it.
            if t.local.is_some_and(|l| count(&ix.remotes, &l) > 0) {
                e(String::new(), String::new());
            }
        }
        for f in new.fdb[fdb.1.clone()].iter() {
            let port = ix
                .ports
                .get(f.port.as_str())
                .map(|r| (r.bridge.as_str(), r.tunnel));
            check_fdb_entry(f, ix.has_bridge(&f.bridge), false, port, &is_own, e);
        }
        for a in new.acls[acls.1.clone()].iter() {
            check_acl(a, ix.ports.contains_key(a.port.as_str()), false, e);
        }
        for q in new.qos[qos.1.clone()].iter() {
            check_qos(q, ix.ports.contains_key(q.port.as_str()), false, e);
        }
        for r in new.routes[routes.1.clone()].iter() {
            check_route(r, false, e);
        }
        for a in new.addrs[addrs.1.clone()].iter() {
            check_addr(a, ix.has_bridge(&a.bridge), None, e);
        }
        for n in new.neighbors[neighbors.1.clone()].iter() {
            check_neighbor(n, false, e);
        }
    }
    if problems > 0 {
        return None;
    }

    // What the removed and changed objects leave behind: a bridge gone
    // that objects still name, a port gone that static MACs, ACLs or
    // policers name, a port changed under the static MACs that name it.
    for b in old.bridges[bridges.0.clone()].iter() {
        if !ix.has_bridge(&b.name) && count(&ix.bridge_refs, b.name.as_str()) > 0 {
            return None;
        }
    }
    let was = old.ports[ports.0.clone()]
        .iter()
        .map(|p| &p.name)
        .chain(old.tunnels[tunnels.0.clone()].iter().map(|t| &t.name));
    for name in was {
        let refs = ix.fdb_refs.get(name.as_str());
        match ix.ports.get(name.as_str()) {
            None if refs.is_some() || count(&ix.rule_refs, name.as_str()) > 0 => return None,
            Some(now) if refs.is_some_and(|r| !r.hold(now)) => return None,
            _ => {}
        }
    }
    // A bridge's lookup must still reach its VTEPs when its tunnels change.
    let mut rechecked = rustc_hash::FxHashSet::default();
    for t in old.tunnels[tunnels.0.clone()]
        .iter()
        .chain(new.tunnels[tunnels.1.clone()].iter())
    {
        if ix.lookups.contains_key(t.bridge.as_str()) && rechecked.insert(t.bridge.as_str()) {
            work.objects += 1;
            if !ix.lookup_ok(&t.bridge) {
                return None;
            }
        }
    }
    Some(ix)
}

/// Numbers the changed ports and tunnels of `new` that have none, exactly
/// as [`Config::assign_port_numbers`] would (ports, then tunnels, the
/// lowest free number each), and moves `used` to `new`'s numbers.
/// `Some(false)`: two objects have one number; `None`: no number is free.
fn number(
    used: &mut Numbers,
    old: &Config,
    new: &mut Config,
    ports: &(Range<usize>, Range<usize>),
    tunnels: &(Range<usize>, Range<usize>),
) -> Option<bool> {
    // The old config's numbers are unique: clearing the changed objects'
    // leaves exactly the unchanged objects' (and the uplink's).
    let gone = old.ports[ports.0.clone()]
        .iter()
        .map(|p| p.number)
        .chain(old.tunnels[tunnels.0.clone()].iter().map(|t| t.number));
    for n in gone.flatten() {
        used.set(n, false);
    }
    let mut unique = true;
    let given = new.ports[ports.1.clone()]
        .iter()
        .map(|p| p.number)
        .chain(new.tunnels[tunnels.1.clone()].iter().map(|t| t.number));
    for n in given.flatten() {
        unique &= !used.has(n);
        used.set(n, true);
    }
    for i in ports.1.clone() {
        if new.ports[i].number.is_none() {
            let n = used.lowest_free()?;
            used.set(n, true);
            new.ports[i].number = Some(n);
        }
    }
    for i in tunnels.1.clone() {
        if new.tunnels[i].number.is_none() {
            let n = used.lowest_free()?;
            used.set(n, true);
            new.tunnels[i].number = Some(n);
        }
    }
    Some(unique)
}

#[cfg(test)]
#[path = "incremental_tests.rs"]
mod tests;
