//! The control plane's state and the snapshot builder: desired config,
//! underlay state (routes, neighbors), the authoritative FDBs, and the
//! compilation of all of it into the immutable [`Snapshot`] workers read.
//!
//! One thread owns a [`Control`] (the daemon's control thread); it is the
//! only writer of the [`SnapshotHandle`]. Applying a config is validate-
//! then-commit: every problem is collected first and nothing changes unless
//! there are none. Learn events from workers arrive on a bounded channel
//! and are folded into the FDBs in batches, each batch published as one new
//! snapshot that shares every unchanged table with the previous one.
//!
//! A config change costs what it changes: what an apply would build from
//! the same inputs as the running snapshot's part is taken from it (a
//! tunnel port with its templates, a bridge's flow and address tables, a
//! bridge's FDB), so a one-line transaction builds one tunnel's templates
//! or one bridge's tables ([`Control::last_apply`] counts them). Templates
//! are all rebuilt only when the underlay or the uplink's MAC moved.
//!
//! Dynamic remotes: beyond its configured remotes (the flood set) a tunnel
//! port holds the VTEPs its FDB entries point at: learned ones (a port that
//! learns remotes accepts packets from any VTEP; the learn event carries
//! the outer source, and the VTEP is added here) and those static entries
//! name. They get templates like configured remotes but are never flooded
//! to, and go once no FDB entry refers to them (checked at the tick after
//! the FDB changed). Whenever a port's remote list is rebuilt (config
//! change, a remote gone), FDB entries follow their VTEP by address to its
//! new index, in the same snapshot as the new list. Learn events are
//! resolved by address, never by the worker's index, which may be stale.
//!
//! Underlay neighbors: the next hops of the templates are the neighbor
//! cache's entries in use. Those without a MAC are resolved through the
//! kernel ([`Control::due_resolutions`]); those with one are re-confirmed
//! through it every refresh interval ([`Control::due_refreshes`]), and stay
//! usable while that happens. Snooped replies from the uplink are taken
//! only when the kernel would take them (addressed to us, from the
//! uplink's subnets) and only as the cache allows (solicited; never moving
//! a known MAC); every other is counted ([`SnoopCounters`]) and dropped.

//!
//! Parts: this file holds [`Control`], its state and the state machine
//! around it (apply, ticks, publishing snapshots, templates); `compile.rs`
//! compiles a config into a snapshot; `learning.rs` folds learn events into
//! the FDBs and keeps tunnels' dynamic remotes; `upcall.rs` answers lookup
//! misses and invalidations; `underlay.rs` the routes and neighbors from
//! the kernel and the next hops to resolve; `snoop.rs` snooped neighbor
//! replies. `kernel.rs` holds what the kernel's tables report, as data
//! (xvsd reads them over rtnetlink), `lookup.rs` holds the providers,
//! `invalidate.rs` the invalidation datagram. Public items are re-exported
//! here, so users name `control::X` only.

mod compile;
pub mod invalidate;
pub mod kernel;
mod learning;
pub mod lookup;
mod mirrors;
mod snoop;
mod tunnels;
mod underlay;
mod upcall;

pub use learning::LearnRefusals;
pub use snoop::SnoopCounters;
pub use tunnels::{tunnel_encap, tunnel_spec};
pub use underlay::Underlay;
pub use upcall::{Miss, UpcallWork};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::events::{self, LearnEvent, Upcall};
use crate::snapshot::{BridgeEntry, PortKind, Snapshot, SnapshotHandle};
use crate::stats::DropReason;
use crate::tables::addr::AddrTable;
use crate::tables::fdb::{Fdb, FdbDest};
use crate::tables::neigh::NeighSource;
use crate::tables::route::RouteOrigin;
use crate::tunnel::{
    multicast_mac, Encap, RemoteIdx, Template, TunnelPort, TunnelSpec, TunnelTable, NO_REMOTE,
};
use xvs_config::{Config, ConfigErrors, Shared, ValidConfig};
use xvs_types::{ip_to_u128, MacAddr, PortNo};

use compile::{addr_table, by_name, compile, fdb_config, same_members, Previous};

/// The index of interface `name` in this network namespace, 0 if there is
/// none (a route's ifindex only says where to resolve its next hop).
pub fn ifindex_of(name: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// How often one invalidation is sent to one VTEP at most.
const INVALIDATE_EVERY_NS: u64 = 1_000_000_000;

/// Addresses lookup installed in one bridge: (VLAN, address in 128-bit
/// form) -> (MAC, installed at).
type LookedUpAddrs = HashMap<(u16, u128), (MacAddr, u64)>;

/// The control plane.
#[derive(Debug)]
pub struct Control {
    /// The running config, with the index its successor is revalidated
    /// against (read as a `Config` through `Deref`).
    config: ValidConfig,
    pub underlay: Underlay,
    /// Per bridge name (Fx: looked up once per bridge on every apply).
    fdbs: FxHashMap<String, Fdb>,
    handle: Arc<SnapshotHandle>,
    current: Arc<Snapshot>,
    learn_tx: Sender<LearnEvent>,
    learn_rx: Receiver<LearnEvent>,
    next_generation: u64,
    /// Next hops a template waits for: the daemon sends ARP/ND for them.
    unresolved: BTreeSet<IpAddr>,
    neigh_generation_built: u64,
    route_generation_built: u64,
    /// Per tunnel name: its dynamic remotes, in index order after the
    /// configured ones (never one of those). The snapshot's tunnel ports
    /// agree with this after every publish.
    dyn_remotes: HashMap<String, Vec<IpAddr>>,
    /// A dynamic remote was added: rebuild the tunnel ports at the next
    /// publish.
    tunnels_dirty: bool,
    /// The FDBs changed since dynamic remotes were last collected.
    remotes_gc_due: bool,
    /// One upcall queue per worker.
    upcall_rx: Vec<Receiver<Upcall>>,
    /// FDB entries lookup installed, per bridge (for `fdb-show`, and kept
    /// where learning is off).
    lookup_fdb: HashMap<String, HashSet<(u16, MacAddr)>>,
    /// Addresses lookup installed, per bridge: (VLAN, address) -> (MAC,
    /// installed at).
    lookup_addrs: HashMap<String, LookedUpAddrs>,
    /// `lookup_addrs` changed since the address tables were built.
    addrs_dirty: bool,
    /// When each invalidation was last sent (rate limit).
    invalidated_at: HashMap<(IpAddr, invalidate::Invalidation), u64>,
    snoop_counters: SnoopCounters,
    /// Learn events refused, by port name (kept across reconfigurations
    /// of the port, as its other counters are).
    learn_refused: HashMap<String, LearnRefusals>,
    /// Per tunnel name: the next hops of its templates. Their union is
    /// what `unresolved` and the neighbor cache's in-use set hold, so a
    /// tunnel's templates are rebuilt without rebuilding the others'.
    tunnel_hops: HashMap<String, NextHops>,
    /// Per next hop of `tunnel_hops`: how many tunnels use it and how many
    /// wait for it. Their union kept as counts: a tunnel built or gone
    /// changes its own hops' counts, not a pass over every tunnel.
    hop_counts: BTreeMap<IpAddr, (usize, usize)>,
    /// The uplink MAC the templates were built with.
    uplink_mac_built: Option<MacAddr>,
    /// Per bridge: the static FDB entries last installed from the config.
    statics: FxHashMap<String, Vec<StaticEntry>>,
    /// What the last [`Control::apply`] built.
    last_apply: ApplyWork,
    /// Where an apply sends the snapshot and config it replaced.
    reaper: Option<Reaper>,
}

/// What an apply replaced: the previous snapshot (workers may still hold
/// it) and config. At 10,000 tunnels they are some 100,000 allocations,
/// freed on the reaper thread rather than between a transaction and its
/// answer.
type Retired = (Arc<Snapshot>, ValidConfig);

/// A thread that drops what it is sent, until the [`Control`] goes, which
/// then waits for it: what was retired is freed by the time the control
/// plane is, not by a thread that outlives it (a fuzz target making a
/// control plane per input saw it as leaked).
#[derive(Debug)]
struct Reaper {
    tx: Option<Sender<Retired>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reaper {
    /// `None` if no thread could be started: things are then dropped where
    /// they are replaced.
    fn start() -> Option<Reaper> {
        let (tx, rx) = crossbeam_channel::unbounded::<Retired>();
        let thread = std::thread::Builder::new()
            .name("xvs-reaper".into())
            .spawn(move || rx.iter().for_each(drop))
            .ok()?;
        Some(Reaper {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Hands `r` to the thread; drops it here if the thread is gone.
    fn retire(&self, r: Retired) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(r);
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // The sender first: the thread's loop ends when the channel is
        // empty and closed.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A static FDB entry of a bridge: (VLAN, MAC, destination).
type StaticEntry = (u16, MacAddr, FdbDest);

/// Bridge `bridge`'s entries in `m`. Most configs have no static entries:
/// no lookup then.
fn statics_of<'m>(m: &'m FxHashMap<String, Vec<StaticEntry>>, bridge: &str) -> &'m [StaticEntry] {
    if m.is_empty() {
        return &[];
    }
    m.get(bridge).map_or(&[], Vec::as_slice)
}

/// What one [`Control::apply`] built rather than took from the running
/// snapshot: a transaction costs what it changes, so a one-line change
/// builds one tunnel's templates or one bridge's tables, and leaves every
/// other bridge's FDB alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyWork {
    /// Tunnel ports built anew (the others are the running ones).
    pub tunnels_compiled: usize,
    /// Tunnel templates built, one per remote of each tunnel built (all
    /// of them when the underlay or the uplink's MAC moved).
    pub templates_built: usize,
    /// Flow and address tables built anew.
    pub bridge_tables_built: usize,
    /// Bridges whose FDB was re-derived from the config (learned entries
    /// checked against the bridge's ports, static entries installed
    /// again); the others keep theirs as they are.
    pub fdbs_rederived: usize,
}

/// The next hops of the templates being built.
#[derive(Debug, Default)]
struct NextHops {
    /// Every unicast one: the neighbor cache's entries in use.
    used: BTreeSet<IpAddr>,
    /// Those without a MAC yet.
    unresolved: BTreeSet<IpAddr>,
}

/// Counts tunnel hops `h` into (`up`) or out of `counts`.
fn count_hops(counts: &mut BTreeMap<IpAddr, (usize, usize)>, h: &NextHops, up: bool) {
    let step = |n: &mut usize| *n = if up { *n + 1 } else { n.saturating_sub(1) };
    for ip in &h.used {
        step(&mut counts.entry(*ip).or_default().0);
    }
    for ip in &h.unresolved {
        step(&mut counts.entry(*ip).or_default().1);
    }
    if !up {
        counts.retain(|_, c| *c != (0, 0));
    }
}

/// Per tunnel port number: new index of each old remote index (`None`:
/// the remote is gone, and so are entries pointing at it).
type Remaps = HashMap<PortNo, Vec<Option<RemoteIdx>>>;

impl Control {
    pub fn new() -> Control {
        let (learn_tx, learn_rx) = events::learn_channel();
        let empty = Arc::new(Snapshot::empty());
        Control {
            config: ValidConfig::default(),
            underlay: Underlay::default(),
            fdbs: FxHashMap::default(),
            handle: Arc::new(SnapshotHandle::new(Snapshot::empty())),
            current: empty,
            learn_tx,
            learn_rx,
            next_generation: 1,
            unresolved: BTreeSet::new(),
            neigh_generation_built: 0,
            route_generation_built: 0,
            dyn_remotes: HashMap::new(),
            tunnels_dirty: false,
            remotes_gc_due: false,
            upcall_rx: Vec::new(),
            lookup_fdb: HashMap::new(),
            lookup_addrs: HashMap::new(),
            addrs_dirty: false,
            invalidated_at: HashMap::new(),
            snoop_counters: SnoopCounters::default(),
            learn_refused: HashMap::new(),
            tunnel_hops: HashMap::new(),
            hop_counts: BTreeMap::new(),
            uplink_mac_built: None,
            statics: FxHashMap::default(),
            last_apply: ApplyWork::default(),
            reaper: Reaper::start(),
        }
    }

    /// The dynamic remotes of tunnel `name`: VTEPs beyond its configured
    /// ones that FDB entries point at.
    pub fn dynamic_remotes(&self, name: &str) -> &[IpAddr] {
        self.dyn_remotes.get(name).map_or(&[], Vec::as_slice)
    }

    /// The handle workers load snapshots from.
    pub fn handle(&self) -> Arc<SnapshotHandle> {
        Arc::clone(&self.handle)
    }

    /// A sender for a worker's learn events.
    pub fn learn_sender(&self) -> Sender<LearnEvent> {
        self.learn_tx.clone()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The running config as validated: a transaction's config is
    /// revalidated against it ([`ValidConfig::revalidate`]), at a cost set
    /// by what it changes.
    pub fn valid(&self) -> &ValidConfig {
        &self.config
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current)
    }

    pub fn fdb(&self, bridge: &str) -> Option<&Fdb> {
        self.fdbs.get(bridge)
    }

    /// Validates `config` (what differs from the running config, with the
    /// whole validation's result) and, only if it has no problem, makes
    /// it the running config in one snapshot swap.
    pub fn apply(&mut self, config: Config) -> Result<(), ConfigErrors> {
        self.apply_valid(self.config.revalidate(config)?)
    }

    /// [`Control::apply`] of a config validated already (by the daemon,
    /// before it touched any interface): the compiled tables may still
    /// refuse it (flow syntax, ACL shapes, policers, tunnel keys).
    pub fn apply_valid(&mut self, config: ValidConfig) -> Result<(), ConfigErrors> {
        let mut work = ApplyWork::default();
        let mut fresh_hops: HashMap<String, NextHops> = HashMap::new();
        let mut compiled = {
            let this = &*self;
            let mut template = |spec: &TunnelSpec, local: IpAddr, remote: IpAddr| {
                let hops = fresh_hops.entry(spec.name.clone()).or_default();
                this.build_template(&spec.encap, local, remote, hops)
            };
            let prev = Previous {
                config: &this.config,
                snapshot: &this.current,
                dyn_remotes: &this.dyn_remotes,
                lookup_addrs: &this.lookup_addrs,
                addrs_dirty: this.addrs_dirty,
            };
            compile(
                &config,
                &prev,
                this.next_generation,
                &mut template,
                &mut work,
            )?
        };

        // Nothing below can fail: commit.
        let remaps = remote_remaps(&self.current.tunnels, &compiled.snapshot);
        let mut statics: FxHashMap<String, Vec<StaticEntry>> = FxHashMap::default();
        for (bridge, vlan, mac, dest) in std::mem::take(&mut compiled.statics) {
            statics.entry(bridge).or_default().push((vlan, mac, dest));
        }
        // The bridges whose static entries differ: found over the bridges
        // that have any, so an untouched bridge is not looked up by name.
        let statics_changed: FxHashSet<&str> = statics
            .keys()
            .chain(self.statics.keys())
            .filter(|b| statics_of(&statics, b) != statics_of(&self.statics, b))
            .map(String::as_str)
            .collect();
        // FDBs are re-derived in place: an untouched bridge's is not even
        // moved.
        for ((b, entry), prev_b) in config
            .bridges
            .iter()
            .zip(compiled.snapshot.bridges.iter())
            .zip(&compiled.prev_bridge)
        {
            // Same limits, same ports, no remote renumbered, same static
            // entries: the FDB stays as it is.
            let kept = prev_b.and_then(|k| {
                let c = &self.config.bridges[k];
                let e = self
                    .current
                    .bridges
                    .get(k)
                    .filter(|e| Shared::same(c, b) || *e.name == *b.name)?;
                Some((c, e))
            });
            let untouched = kept.is_some_and(|(c, e)| {
                c == b && same_members(&e.ports, &entry.ports, &compiled.renamed)
            }) && (remaps.is_empty()
                || !entry.ports.iter().any(|n| remaps.contains_key(n)))
                && (statics_changed.is_empty() || !statics_changed.contains(b.name.as_str()));
            // Every bridge of the running config has its FDB.
            if untouched {
                continue;
            }
            work.fdbs_rederived += 1;
            let mine = statics_of(&statics, &b.name);
            let cfg = fdb_config(b);
            let fdb = match self.fdbs.get_mut(&b.name) {
                Some(f) => {
                    // compile() validated the limits.
                    if *f.config() != cfg {
                        let _ = f.set_config(cfg);
                    }
                    f
                }
                None => match Fdb::new(cfg) {
                    Ok(f) => self.fdbs.entry(b.name.clone()).or_insert(f),
                    Err(_) => continue,
                },
            };
            // Learned entries behind ports that left the bridge go; static
            // entries are re-derived from the config below; the others
            // follow their VTEP to its index in the rebuilt tunnel port.
            // A bridge whose learning was turned off forgets what it learned.
            let by_lookup = self.lookup_fdb.get(&b.name);
            fdb.retain_map(|e| {
                let looked_up = by_lookup.is_some_and(|s| s.contains(&(e.vlan, e.mac)));
                if e.is_static || (!b.learning && !looked_up) || !entry.ports.contains(&e.dest.port)
                {
                    return None;
                }
                remap(&remaps, e.dest)
            });
            for (vlan, mac, dest) in mine {
                // Capacity was checked by compile(); a failure here would
                // be a bug, not bad input.
                let _ = fdb.add_static(*vlan, *mac, *dest);
            }
        }
        // Every bridge of the config has its FDB now: more FDBs than
        // bridges means some bridge went.
        if self.fdbs.len() != config.bridges.len() {
            let bridges = by_name(&config.bridges, |b| &b.name);
            self.fdbs.retain(|b, _| bridges.contains_key(b.as_str()));
        }
        self.statics = statics;
        self.dyn_remotes = compiled.dyn_remotes;
        self.tunnels_dirty = false;
        // Only a re-derived FDB can have let go of a dynamic remote.
        self.remotes_gc_due |= work.fdbs_rederived > 0;
        self.apply_underlay(&config);
        let old_config = std::mem::replace(&mut self.config, config);
        let old_tunnels = &old_config.tunnels;
        self.next_generation += 1;
        // Only state about objects that may have gone is pruned: a name
        // map of every object is built only when there is such state.
        if !self.lookup_fdb.is_empty() || !self.lookup_addrs.is_empty() {
            let bridges = by_name(&self.config.bridges, |b| &b.name);
            self.lookup_fdb
                .retain(|b, _| bridges.contains_key(b.as_str()));
            self.lookup_addrs
                .retain(|b, _| bridges.contains_key(b.as_str()));
        }
        if !self.learn_refused.is_empty() {
            let tunnels = by_name(&self.config.tunnels, |t| &t.name);
            let ports = by_name(&self.config.ports, |p| &p.name);
            self.learn_refused
                .retain(|n, _| ports.contains_key(n.as_str()) || tunnels.contains_key(n.as_str()));
        }
        let mut snap = compiled.snapshot;
        if self.underlay_changed() {
            // Every template, against the new underlay.
            work.templates_built = snap.tunnels.ports().iter().map(|t| t.remotes.len()).sum();
            self.fill_dynamic(&mut snap, true, &compiled.unfilled);
        } else {
            for k in &compiled.removed_tunnels {
                if let Some(h) = self.tunnel_hops.remove(&old_tunnels[*k].name) {
                    count_hops(&mut self.hop_counts, &h, false);
                }
            }
            for (name, h) in fresh_hops {
                count_hops(&mut self.hop_counts, &h, true);
                if let Some(old) = self.tunnel_hops.insert(name, h) {
                    count_hops(&mut self.hop_counts, &old, false);
                }
            }
            self.hops_in_use();
            self.fill_dynamic(&mut snap, false, &compiled.unfilled);
        }
        self.last_apply = work;
        let old_snapshot = Arc::clone(&self.current);
        self.publish(snap);
        if let Some(r) = &self.reaper {
            r.retire((old_snapshot, old_config));
        }
        Ok(())
    }

    /// What the last [`Control::apply`] built (the rest it took from the
    /// running snapshot).
    pub fn last_apply(&self) -> ApplyWork {
        self.last_apply
    }

    /// Installs the config's routes and static neighbors, replacing those
    /// of the previous config (validated: nothing here can fail).
    fn apply_underlay(&mut self, config: &Config) {
        // Unchanged: leave the tables (and their generations, which would
        // have every template rebuilt) alone.
        if config.routes == self.config.routes && config.neighbors == self.config.neighbors {
            return;
        }
        self.underlay.routes.remove_origin(RouteOrigin::Config);
        for r in &config.routes {
            let _ = self.underlay.routes.insert(crate::tables::route::Route {
                prefix: r.prefix,
                gateway: r.gateway,
                dev: r.dev.clone(),
                ifindex: crate::control::ifindex_of(&r.dev),
                src: None,
                metric: r.metric,
                origin: RouteOrigin::Config,
            });
        }
        for old in &self.config.neighbors {
            if !config.neighbors.iter().any(|n| n.ip == old.ip) {
                self.underlay.neigh.remove(old.ip);
            }
        }
        for n in &config.neighbors {
            self.underlay
                .neigh
                .learn(n.ip, n.mac, 0, NeighSource::Static);
        }
    }

    /// Periodic work: FDB aging, neighbor expiry, template rebuilds.
    pub fn tick(&mut self, now: u64) {
        let mut changed = false;
        for fdb in self.fdbs.values_mut() {
            let aged = fdb.age(now) > 0;
            changed |= aged;
            self.remotes_gc_due |= aged;
        }
        self.invalidated_at
            .retain(|_, at| now.saturating_sub(*at) < INVALIDATE_EVERY_NS);
        // What lookup installed ages like learned entries.
        for (b, set) in &mut self.lookup_fdb {
            if let Some(fdb) = self.fdbs.get(b) {
                set.retain(|&(v, m)| fdb.get(v, m, now).is_some_and(|e| !e.is_static));
            }
        }
        for (b, t) in &mut self.lookup_addrs {
            let aging = self
                .config
                .bridges
                .iter()
                .find(|c| c.name == *b)
                .map_or(0, |c| c.fdb_aging_secs.saturating_mul(1_000_000_000));
            let before = t.len();
            t.retain(|_, (_, at)| now.saturating_sub(*at) <= aging);
            if t.len() != before {
                self.addrs_dirty = true;
                changed = true;
            }
        }
        changed |= !self.underlay.neigh.expire(now).is_empty();
        if changed || self.underlay_changed() {
            self.republish();
        }
        if self.remotes_gc_due {
            self.collect_remotes();
        }
    }

    fn underlay_changed(&self) -> bool {
        self.underlay.neigh.generation() != self.neigh_generation_built
            || self.underlay.routes.generation() != self.route_generation_built
            || self.underlay.uplink_mac != self.uplink_mac_built
    }

    /// A new snapshot from the current one with fresh FDB views and
    /// templates; everything else is shared.
    fn republish(&mut self) {
        let mut snap = (*self.current).clone();
        snap.generation = self.next_generation;
        self.next_generation += 1;
        let templates = self.underlay_changed() || self.tunnels_dirty;
        self.fill_dynamic(&mut snap, templates, &[]);
        self.publish(snap);
    }

    /// The FDB views of the bridges `changed` names or `unfilled` lists
    /// (positions, ascending), and every address table if lookup changed
    /// addresses.
    fn fill_bridges(
        &mut self,
        bridges: &mut [BridgeEntry],
        changed: &FxHashSet<String>,
        unfilled: &[usize],
    ) {
        let mut new = unfilled.iter().peekable();
        for (i, b) in bridges.iter_mut().enumerate() {
            let fresh = new.next_if_eq(&&i).is_some();
            if fresh || (!changed.is_empty() && changed.contains(&*b.name)) {
                if let Some(fdb) = self.fdbs.get_mut(&*b.name) {
                    b.fdb = fdb.view();
                }
            }
            if self.addrs_dirty {
                b.addrs = Arc::new(self.addr_table(&b.name));
            }
        }
    }

    /// Fills what changes without a config change: FDB views and, when
    /// asked, tunnel templates.
    fn fill_dynamic(&mut self, snap: &mut Snapshot, templates: bool, unfilled: &[usize]) {
        // An entry carries its FDB's current view unless the FDB changed
        // since (it has unpublished changes) or the entry is new: only
        // those are looked up, and with none the bridge list is not even
        // copied. A walk over the FDBs finds the changed ones without
        // hashing a name per bridge.
        let changed: FxHashSet<String> = self
            .fdbs
            .iter()
            .filter(|(_, f)| f.has_unpublished())
            .map(|(b, _)| b.clone())
            .collect();
        if self.addrs_dirty || !changed.is_empty() || !unfilled.is_empty() {
            // A freshly compiled list is ours alone: filled in place.
            if let Some(bridges) = Arc::get_mut(&mut snap.bridges) {
                self.fill_bridges(bridges, &changed, unfilled);
            } else {
                let mut bridges: Vec<BridgeEntry> = snap.bridges.to_vec();
                self.fill_bridges(&mut bridges, &changed, unfilled);
                snap.bridges = Arc::from(bridges);
            }
        }
        self.addrs_dirty = false;

        if templates {
            let configs = by_name(&self.config.tunnels, |t| &t.name);
            let mut tunnel_hops = HashMap::new();
            let mut ports: Vec<TunnelPort> = snap.tunnels.ports().to_vec();
            for tp in &mut ports {
                let Some(cfg) = configs.get(&*tp.name).copied() else {
                    continue;
                };
                let hops: &mut NextHops = tunnel_hops.entry(tp.name.to_string()).or_default();
                let dynamic = self
                    .dyn_remotes
                    .get(&*tp.name)
                    .map_or(&[][..], Vec::as_slice);
                if tp.dynamic_remotes() != dynamic {
                    *tp = TunnelPort::with_dynamic(&tunnel_spec(cfg), tp.port, tp.local, dynamic);
                }
                let encap = tunnel_encap(cfg);
                for (i, remote) in tp.remotes.clone().iter().enumerate() {
                    let t = self.build_template(&encap, tp.local, *remote, hops);
                    tp.set_template(i as RemoteIdx, t);
                }
            }
            // Rebuilding with the same ports cannot fail: keys were checked
            // when the config was compiled.
            if let Ok(t) = TunnelTable::build_after(&snap.tunnels, ports) {
                snap.tunnels = Arc::new(t);
            }
            self.tunnel_hops = tunnel_hops;
            self.hop_counts.clear();
            for h in self.tunnel_hops.values() {
                count_hops(&mut self.hop_counts, h, true);
            }
            self.hops_in_use();
            self.tunnels_dirty = false;
            self.neigh_generation_built = self.underlay.neigh.generation();
            self.route_generation_built = self.underlay.routes.generation();
            self.uplink_mac_built = self.underlay.uplink_mac;
        }
    }

    /// Makes `unresolved` and the neighbor cache's in-use set the union
    /// of the tunnels' next hops (`hop_counts`).
    fn hops_in_use(&mut self) {
        let counts = &self.hop_counts;
        self.unresolved = counts
            .iter()
            .filter(|(_, c)| c.1 > 0)
            .map(|(ip, _)| *ip)
            .collect();
        let used = counts.iter().filter(|(_, c)| c.0 > 0).map(|(ip, _)| *ip);
        self.underlay
            .neigh
            .set_in_use(used.collect::<BTreeSet<_>>());
    }

    /// A bridge's address table: what lookup installed, then the
    /// config's (which wins where both have an address).
    fn addr_table(&self, bridge: &str) -> AddrTable {
        let configured = self
            .config
            .addrs
            .iter()
            .filter(|a| a.bridge == bridge)
            .map(|a| (a.vlan, a.ip, a.mac));
        addr_table(self.lookup_addrs.get(bridge), configured)
    }

    fn build_template(
        &self,
        cfg: &Encap,
        local: IpAddr,
        remote: IpAddr,
        hops: &mut NextHops,
    ) -> Result<Template, DropReason> {
        let src_mac = self.underlay.uplink_mac.ok_or(DropReason::NoRoute)?;
        if let Some(group_mac) = multicast_mac(remote) {
            // RFC 7348 §4.2: straight to the group's MAC out of the uplink.
            return Template::build(cfg, local, remote, src_mac, group_mac)
                .map_err(|_| DropReason::NoRoute);
        }
        let route = self
            .underlay
            .routes
            .lookup(remote)
            .ok_or(DropReason::NoRoute)?;
        let nh = route.gateway.unwrap_or(remote);
        hops.used.insert(nh);
        let Some(dst_mac) = self.underlay.neigh.lookup(nh) else {
            hops.unresolved.insert(nh);
            return Err(DropReason::NeighUnresolved);
        };
        Template::build(cfg, local, remote, src_mac, dst_mac).map_err(|_| DropReason::NoRoute)
    }

    fn publish(&mut self, snap: Snapshot) {
        let snap = Arc::new(snap);
        self.handle.store(Arc::clone(&snap));
        self.current = snap;
    }
}

impl Default for Control {
    fn default() -> Self {
        Control::new()
    }
}

/// Where each remote index of the old snapshot's tunnel ports went in
/// `new`, by address, for the ports whose list changed. A port number now
/// held by another tunnel (or none) maps every index to `None`.
fn remote_remaps(old: &TunnelTable, new: &Snapshot) -> Remaps {
    let mut out = Remaps::new();
    for tp in old.ports() {
        let now = match new.port(tp.port).map(|p| p.kind) {
            Some(PortKind::Tunnel(t)) => new.tunnels.get(t).filter(|n| n.name == tp.name),
            _ => None,
        };
        if now.is_some_and(|n| n.remotes == tp.remotes) {
            continue;
        }
        let map = tp
            .remotes
            .iter()
            .map(|r| now.and_then(|n| n.remote_index(ip_to_u128(*r))))
            .collect();
        out.insert(tp.port, map);
    }
    out
}

/// `dest` after a remap: unchanged for local ports and ports not remapped.
fn remap(remaps: &Remaps, dest: FdbDest) -> Option<FdbDest> {
    match remaps.get(&dest.port) {
        Some(m) if dest.remote != NO_REMOTE => m
            .get(usize::from(dest.remote))
            .copied()
            .flatten()
            .map(|r| FdbDest::tunnel(dest.port, r)),
        _ => Some(dest),
    }
}

#[cfg(test)]
mod testutil {
    use super::*;
    use crate::tables::route::Route;
    use crate::testkit;

    pub(super) const VTEP: &str = "192.0.2.2";
    pub(super) const KNOWN: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x22]);
    pub(super) const SPOOF: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x66]);

    pub(super) fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The testbed with the VTEP 192.0.2.2 learned from the kernel (not
    /// static) at `KNOWN`, and 10.0.0.0/8 on-link on the uplink too.
    pub(super) fn bed() -> Control {
        let mut ctl = testkit::testbed();
        ctl.underlay.neigh.remove(ip(VTEP));
        ctl.underlay.neigh.learn_kernel(ip(VTEP), KNOWN, true, 0);
        ctl.underlay
            .routes
            .insert(Route {
                prefix: "10.0.0.0/8".parse().unwrap(),
                gateway: None,
                dev: "eth0".into(),
                ifindex: 2,
                src: None,
                metric: 0,
                origin: RouteOrigin::User,
            })
            .unwrap();
        ctl.underlay_updated();
        assert_eq!(vtep_mac(&ctl), Some(KNOWN));
        ctl
    }

    /// The destination MAC of vx1's template towards the VTEP.
    pub(super) fn vtep_mac(ctl: &Control) -> Option<MacAddr> {
        let snap = ctl.snapshot();
        let t = snap.tunnels.ports()[0].template(0).ok()?;
        MacAddr::from_slice(&t.bytes()[..6])
    }
}
