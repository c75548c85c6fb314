//! Incremental validation: [`ValidConfig::revalidate`] validates the next
//! config of a running one at a cost set by what changed, not by the size
//! of the config.
//!
//! A [`ValidConfig`] carries an `Index` (`index.rs`) of what the cross-object checks
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

use std::fmt;
use std::net::IpAddr;
use std::ops::{Deref, Range};
use std::sync::OnceLock;

use super::index::{count, Index, Numbers};
use super::objects::{
    check_acl, check_addr, check_bridge, check_fdb_entry, check_lookup, check_neighbor, check_port,
    check_port_name, check_qos, check_route, Clashes,
};
use super::validate::Report;
use super::{changed_span, Config, ConfigErrors};

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

/// The fast path: `new`'s port numbers assigned as
/// [`Config::assign_port_numbers`] would, then the changed objects taken
/// out of and put into `ix` and checked. `Some`: `new` is valid and this
/// is its index; `None`: a problem, or a change this path leaves to the
/// whole validation.
fn fast(old: &Config, mut ix: Index, new: &mut Config, work: &mut Revalidation) -> Option<Index> {
    let bridges = changed_span(&old.bridges, &new.bridges);
    let ports = changed_span(&old.ports, &new.ports);
    let tunnels = changed_span(&old.tunnels, &new.tunnels);
    let fdb = changed_span(&old.fdb, &new.fdb);
    let acls = changed_span(&old.acls, &new.acls);
    let qos = changed_span(&old.qos, &new.qos);
    let routes = changed_span(&old.routes, &new.routes);
    let neighbors = changed_span(&old.neighbors, &new.neighbors);
    let addrs = changed_span(&old.addrs, &new.addrs);
    // Mirrors are left to the whole validation: a change to them, or,
    // while there are any, to the ports, tunnels and static MACs they may
    // name. They are a debugging tool, few and short-lived; the index
    // does not hold them.
    let mirrors = changed_span(&old.mirrors, &new.mirrors);
    let touched = |s: &(Range<usize>, Range<usize>)| !s.0.is_empty() || !s.1.is_empty();
    if touched(&mirrors)
        || (!new.mirrors.is_empty() && (touched(&ports) || touched(&tunnels) || touched(&fdb)))
    {
        return None;
    }
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
            // Socket paths are not in the index: a vhost-user port is
            // checked against the others by the whole validation.
            if !p.kind.is_afxdp() {
                e(String::new(), String::new());
            }
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
