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

pub mod invalidate;
pub mod kernel;
pub mod lookup;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::config::{
    BridgeConfig, Config, ConfigError, ConfigErrors, Direction, TunnelConfig, ValidConfig, VlanMode,
};
use crate::pipeline::{LearnEvent, MissKind, Upcall};
use crate::policy::firewall::{AclRule, Firewall};
use crate::policy::port_security::PortSecurity;
use crate::policy::qos::PolicerConfig;
use crate::snapshot::{BridgeEntry, PortEntry, PortKind, PortVlan, Snapshot, SnapshotHandle};
use crate::stats::DropReason;
use crate::tables::addr::AddrTable;
use crate::tables::fdb::{Fdb, FdbConfig, FdbDest, LearnOutcome};
use crate::tables::flow::{FlowRule, FlowTable};
use crate::tables::neigh::{NeighCache, NeighChange, NeighConfig, NeighSource};
use crate::tables::route::{RouteOrigin, RouteTable};
use crate::tunnel::{
    multicast_mac, RemoteIdx, Template, TunnelPort, TunnelTable, MAX_REMOTES, NO_REMOTE,
};
use crate::types::{ip_to_u128, MacAddr, PortNo};
use crate::wire::arp::{self, ArpPacket};
use crate::wire::ethernet::{ethertype, EthernetFrame};
use crate::wire::icmp::{parse_ndp, NdpKind};
use crate::wire::ip_proto;
use crate::wire::ipv6::Ipv6Packet;

/// The index of interface `name` in this network namespace, 0 if there is
/// none (a route's ifindex only says where to resolve its next hop).
pub fn ifindex_of(name: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Capacity of the learn-event channel shared by all workers.
pub const LEARN_QUEUE: usize = 65_536;
/// Capacity of each worker's upcall queue.
pub const UPCALL_QUEUE: usize = 1024;

/// What [`Control::process_upcalls`] leaves to the daemon.
#[derive(Debug, Default)]
pub struct UpcallWork {
    /// Misses for the external provider's clients.
    pub misses: Vec<Miss>,
    /// Invalidations to send: to this VTEP, this message.
    pub invalidations: Vec<(IpAddr, invalidate::Invalidation)>,
}

/// How often one invalidation is sent to one VTEP at most.
const INVALIDATE_EVERY_NS: u64 = 1_000_000_000;

/// Addresses lookup installed in one bridge: (VLAN, address in 128-bit
/// form) -> (MAC, installed at).
type LookedUpAddrs = HashMap<(u16, u128), (MacAddr, u64)>;

/// What became of the ARP replies and neighbor advertisements snooped on
/// the uplink, by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SnoopCounters {
    /// A next hop being resolved got its MAC.
    pub learned: u64,
    /// A known entry was confirmed (same MAC).
    pub confirmed: u64,
    /// Addressed to another host's MAC: the kernel drops those.
    pub not_for_us: u64,
    /// The sender is not on one of the uplink's subnets.
    pub off_subnet: u64,
    /// For an address nobody is resolving.
    pub unsolicited: u64,
    /// Would have moved a known MAC (a spoof, or a move the kernel will
    /// report if it accepts it).
    pub conflicting: u64,
    /// Static entries, and replies the cache had no room for.
    pub ignored: u64,
}

impl SnoopCounters {
    /// Replies refused (everything but learned and confirmed).
    pub fn refused(&self) -> u64 {
        self.not_for_us + self.off_subnet + self.unsolicited + self.conflicting + self.ignored
    }
}

/// A miss no provider answered at once, for an external control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    pub bridge: String,
    pub vlan: u16,
    pub kind: MissKind,
    /// Name of the port the frame came in on.
    pub port: String,
    pub src_vtep: Option<IpAddr>,
}

/// Underlay facts templates are built from.
#[derive(Debug)]
pub struct Underlay {
    pub routes: RouteTable,
    pub neigh: NeighCache,
    /// MAC of the uplink (outer source MAC).
    pub uplink_mac: Option<MacAddr>,
}

impl Default for Underlay {
    fn default() -> Self {
        Underlay {
            routes: RouteTable::default(),
            neigh: NeighCache::new(NeighConfig::default())
                .expect("default neighbor config is valid"),
            uplink_mac: None,
        }
    }
}

impl Underlay {
    /// The next hop towards a remote VTEP: the route's gateway, or the
    /// remote itself on a directly connected route; `None` without a route.
    pub fn next_hop(&self, remote: IpAddr) -> Option<IpAddr> {
        let route = self.routes.lookup(remote)?;
        Some(route.gateway.unwrap_or(remote))
    }
}

/// The control plane.
#[derive(Debug)]
pub struct Control {
    config: Config,
    pub underlay: Underlay,
    fdbs: HashMap<String, Fdb>,
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
    /// The uplink MAC the templates were built with.
    uplink_mac_built: Option<MacAddr>,
    /// Per bridge: the static FDB entries last installed from the config.
    statics: HashMap<String, Vec<StaticEntry>>,
    /// What the last [`Control::apply`] built.
    last_apply: ApplyWork,
}

/// A static FDB entry of a bridge: (VLAN, MAC, destination).
type StaticEntry = (u16, MacAddr, FdbDest);

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

/// Learn events of one port that the FDB refused. A refused MAC is not
/// learned but its frames are still forwarded (as by Linux's bridge over
/// its `max_learned`): dropping them would turn a limit meant to protect
/// the table into an outage for the VM's extra addresses, and port
/// security is the tool that drops. Frames to it are flooded, as to any
/// unknown MAC. Workers send an event per MAC once per refresh interval,
/// so these count MACs turned away per interval, not frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LearnRefusals {
    /// The port had its `max_macs` learned MACs.
    pub port_limit: u64,
    /// The bridge's FDB had `fdb_max_entries` entries.
    pub fdb_full: u64,
}

/// The next hops of the templates being built.
#[derive(Debug, Default)]
struct NextHops {
    /// Every unicast one: the neighbor cache's entries in use.
    used: BTreeSet<IpAddr>,
    /// Those without a MAC yet.
    unresolved: BTreeSet<IpAddr>,
}

/// Per tunnel port number: new index of each old remote index (`None`:
/// the remote is gone, and so are entries pointing at it).
type Remaps = HashMap<PortNo, Vec<Option<RemoteIdx>>>;

impl Control {
    pub fn new() -> Control {
        let (learn_tx, learn_rx) = crossbeam_channel::bounded(LEARN_QUEUE);
        let empty = Arc::new(Snapshot::empty());
        Control {
            config: Config::default(),
            underlay: Underlay::default(),
            fdbs: HashMap::new(),
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
            uplink_mac_built: None,
            statics: HashMap::new(),
            last_apply: ApplyWork::default(),
        }
    }

    /// A new upcall queue, for one worker's lookup misses.
    pub fn upcall_sender(&mut self) -> Sender<Upcall> {
        let (tx, rx) = crossbeam_channel::bounded(UPCALL_QUEUE);
        self.upcall_rx.push(rx);
        tx
    }

    /// Did lookup install this FDB entry?
    pub fn is_lookup_entry(&self, bridge: &str, vlan: u16, mac: MacAddr) -> bool {
        self.lookup_fdb
            .get(bridge)
            .is_some_and(|s| s.contains(&(vlan, mac)))
    }

    /// Drains the workers' upcall queues, asks each bridge's provider and
    /// installs its answers (one snapshot for all of them). Returns the
    /// misses of bridges with the external provider, for its clients.
    pub fn process_upcalls(&mut self, now: u64) -> UpcallWork {
        let mut ups = Vec::new();
        for rx in &self.upcall_rx {
            // Bounded per call, as learning is.
            ups.extend(rx.try_iter().take(UPCALL_QUEUE));
        }
        let mut work = UpcallWork::default();
        let mut changed = false;
        for u in ups {
            // A decapsulated frame for a MAC that is not local here: its
            // sender's entry is stale.
            if let MissKind::Mac(mac) | MissKind::NotHere(mac) = u.kind {
                if let Some(inv) = self.invalidation_for(u.port, u.remote, u.vlan, mac, now) {
                    work.invalidations.push(inv);
                }
            }
            if matches!(u.kind, MissKind::NotHere(_)) {
                continue;
            }
            let Some(b) = self.current.bridges.get(usize::from(u.bridge)) else {
                continue;
            };
            let Some(cfg) = self
                .config
                .bridges
                .iter()
                .find(|c| c.name == b.name)
                .and_then(|c| c.lookup.clone())
            else {
                continue;
            };
            let src_vtep = self.remote_ip(u.port, u.remote);
            let q = lookup::Query {
                vlan: u.vlan,
                kind: u.kind,
                src_vtep,
            };
            if cfg.provider == crate::config::LookupProviderConfig::External {
                work.misses.push(Miss {
                    bridge: b.name.clone(),
                    vlan: u.vlan,
                    kind: u.kind,
                    port: self
                        .current
                        .port(u.port)
                        .map_or_else(String::new, |p| p.name.clone()),
                    src_vtep,
                });
                continue;
            }
            let name = b.name.clone();
            changed |= match (lookup::LookupProvider::lookup(&cfg, &q), u.kind) {
                (Some(lookup::Answer::L2 { vtep }), MissKind::Mac(mac)) => {
                    self.install_l2(&name, u.vlan, mac, vtep, now)
                }
                (Some(lookup::Answer::L3 { mac }), MissKind::Ip(ip)) => {
                    let t = self.lookup_addrs.entry(name).or_default();
                    let old = t.insert((u.vlan, ip), (mac, now));
                    self.addrs_dirty |= old.map(|o| o.0) != Some(mac);
                    self.addrs_dirty
                }
                _ => false,
            };
        }
        if changed {
            self.republish();
        }
        work
    }

    /// The invalidation to send for `mac` to the VTEP behind (`port`,
    /// `remote`), unless it was sent within [`INVALIDATE_EVERY_NS`].
    fn invalidation_for(
        &mut self,
        port: PortNo,
        remote: RemoteIdx,
        vlan: u16,
        mac: MacAddr,
        now: u64,
    ) -> Option<(IpAddr, invalidate::Invalidation)> {
        let vtep = self.remote_ip(port, remote)?;
        let PortKind::Tunnel(t) = self.current.port(port)?.kind else {
            return None;
        };
        let vni = self.current.tunnels.get(t)?.vni;
        let inv = invalidate::Invalidation { vni, vlan, mac };
        let last = self.invalidated_at.entry((vtep, inv)).or_insert(0);
        if *last != 0 && now.saturating_sub(*last) < INVALIDATE_EVERY_NS {
            return None;
        }
        *last = now.max(1);
        Some((vtep, inv))
    }

    /// Takes an invalidation datagram from `from`: if `from` is a remote of
    /// a tunnel port with its VNI, drops the learned or looked-up entry of
    /// its MAC that points at a tunnel (never a static or a local one).
    /// Returns the bridge and MAC dropped.
    pub fn invalidation_received(&mut self, from: IpAddr, msg: &[u8]) -> Option<(String, MacAddr)> {
        let inv = invalidate::Invalidation::decode(msg)?;
        let key = ip_to_u128(from);
        let tp = self
            .current
            .tunnels
            .ports()
            .iter()
            .find(|tp| tp.vni == inv.vni && tp.remote_index(key).is_some())?;
        let bridge = self.current.port(tp.port)?.bridge;
        let name = self.current.bridges.get(usize::from(bridge))?.name.clone();
        let fdb = self.fdbs.get_mut(&name)?;
        let e = fdb.get(inv.vlan, inv.mac, 0)?;
        let behind_tunnel = matches!(
            self.current.port(e.dest.port).map(|p| p.kind),
            Some(PortKind::Tunnel(_))
        );
        if e.is_static || !behind_tunnel || !fdb.del(inv.vlan, inv.mac) {
            return None;
        }
        if let Some(s) = self.lookup_fdb.get_mut(&name) {
            s.remove(&(inv.vlan, inv.mac));
        }
        self.remotes_gc_due = true;
        self.republish();
        Some((name, inv.mac))
    }

    /// The address of remote `r` of tunnel port `port`, if it is one.
    fn remote_ip(&self, port: PortNo, r: RemoteIdx) -> Option<IpAddr> {
        match self.current.port(port)?.kind {
            PortKind::Tunnel(t) => self
                .current
                .tunnels
                .ports()
                .get(usize::from(t))?
                .remotes
                .get(usize::from(r))
                .copied(),
            _ => None,
        }
    }

    /// Installs `mac` behind `vtep` as an aging FDB entry: on the bridge's
    /// tunnel port that has the VTEP among its remotes, else on its first
    /// tunnel port of the VTEP's family, as a dynamic remote (unicast
    /// only: never flooded to). True if anything changed.
    fn install_l2(
        &mut self,
        bridge: &str,
        vlan: u16,
        mac: MacAddr,
        vtep: IpAddr,
        now: u64,
    ) -> bool {
        let snap = Arc::clone(&self.current);
        let Some(b) = snap.bridges.iter().find(|b| b.name == bridge) else {
            return false;
        };
        let tunnels: Vec<(PortNo, u16)> = b
            .ports
            .iter()
            .filter_map(|&p| match snap.port(p)?.kind {
                PortKind::Tunnel(t) => Some((p, t)),
                _ => None,
            })
            .collect();
        let key = ip_to_u128(vtep);
        let known = tunnels.iter().find_map(|&(p, t)| {
            let r = snap.tunnels.get(t)?.remote_index(key)?;
            Some(FdbDest { port: p, remote: r })
        });
        let dest = known.or_else(|| {
            tunnels.iter().find_map(|&(p, t)| {
                let r = self.add_dynamic_remote(t, vtep)?;
                Some(FdbDest { port: p, remote: r })
            })
        });
        let (Some(dest), Some(fdb)) = (dest, self.fdbs.get_mut(bridge)) else {
            return false;
        };
        let changed = fdb.learn(vlan, mac, dest, now).changed();
        self.lookup_fdb
            .entry(bridge.to_string())
            .or_default()
            .insert((vlan, mac));
        // A move may have left a dynamic remote unreferenced.
        self.remotes_gc_due |= changed;
        changed || self.tunnels_dirty
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

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current)
    }

    pub fn fdb(&self, bridge: &str) -> Option<&Fdb> {
        self.fdbs.get(bridge)
    }

    /// Next hops waiting for resolution.
    pub fn unresolved(&self) -> impl Iterator<Item = &IpAddr> {
        self.unresolved.iter()
    }

    /// Next hops to send a resolution request for now, each with the
    /// interface its route leaves by; throttled per address by the
    /// neighbor cache (one request per retry interval, a few retries).
    pub fn due_resolutions(&mut self, now: u64) -> Vec<(IpAddr, u32)> {
        let mut due = Vec::new();
        for ip in &self.unresolved {
            if self.underlay.neigh.request(*ip, now) {
                due.push((*ip, self.ifindex_towards(*ip)));
            }
        }
        due
    }

    /// Next hops in use, with a MAC, to re-confirm now (each once per
    /// refresh interval), with the interface their route leaves by. The
    /// daemon marks each used in the kernel's table and reads it back
    /// ([`Control::kernel_neigh`]).
    pub fn due_refreshes(&mut self, now: u64) -> Vec<(IpAddr, u32)> {
        let due = self.underlay.neigh.due_refresh(now);
        due.into_iter()
            .map(|ip| (ip, self.ifindex_towards(ip)))
            .collect()
    }

    fn ifindex_towards(&self, ip: IpAddr) -> u32 {
        self.underlay.routes.lookup(ip).map_or(0, |r| r.ifindex)
    }

    /// Takes what the kernel's table holds for `ip` (read after a
    /// resolution or a refresh): a MAC it has is used at once (a state such
    /// as DELAY is never notified), a failure removes ours; an entry being
    /// resolved or absent changes nothing (the answer will be notified).
    pub fn kernel_neigh(&mut self, ip: IpAddr, found: kernel::NeighLookup, now: u64) {
        match found {
            kernel::NeighLookup::Usable(n) if n.ip == ip => {
                self.underlay
                    .neigh
                    .learn_kernel(n.ip, n.mac, n.confirmed, now);
            }
            kernel::NeighLookup::Failed => self.neigh_failed(ip, now),
            _ => {}
        }
        self.underlay_updated();
    }

    /// The kernel's entry for `ip` failed: it does not answer, or it was
    /// deleted by hand (see [`NeighCache::kernel_failed`]).
    fn neigh_failed(&mut self, ip: IpAddr, now: u64) {
        self.underlay.neigh.kernel_failed(ip, now);
    }

    /// What became of snooped frames so far.
    /// Learn events refused for the port or tunnel `name`.
    pub fn learn_refusals(&self, name: &str) -> LearnRefusals {
        self.learn_refused.get(name).copied().unwrap_or_default()
    }

    pub fn snoop_counters(&self) -> SnoopCounters {
        self.snoop_counters
    }

    /// Validates `config` whole and, only if it has no problem, makes it
    /// the running config in one snapshot swap.
    pub fn apply(&mut self, config: Config) -> Result<(), ConfigErrors> {
        self.apply_valid(config.validated()?)
    }

    /// [`Control::apply`] of a config validated already (by the daemon,
    /// before it touched any interface): the compiled tables may still
    /// refuse it (flow syntax, ACL shapes, policers, tunnel keys).
    pub fn apply_valid(&mut self, config: ValidConfig) -> Result<(), ConfigErrors> {
        let config = config.into_config();
        let mut work = ApplyWork::default();
        let mut fresh_hops: HashMap<String, NextHops> = HashMap::new();
        let mut compiled = {
            let this = &*self;
            let mut template = |cfg: &TunnelConfig, local: IpAddr, remote: IpAddr| {
                let hops = fresh_hops.entry(cfg.name.clone()).or_default();
                this.build_template(cfg, local, remote, hops)
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
        let prev_bridges = bridges_by_name(&self.config, &self.current);
        let mut statics: HashMap<String, Vec<StaticEntry>> = HashMap::new();
        for (bridge, vlan, mac, dest) in std::mem::take(&mut compiled.statics) {
            statics.entry(bridge).or_default().push((vlan, mac, dest));
        }
        let mut fdbs = HashMap::new();
        for (b, entry) in config.bridges.iter().zip(compiled.snapshot.bridges.iter()) {
            let mine = statics.get(&b.name).map_or(&[][..], Vec::as_slice);
            // Same limits, same ports, no remote renumbered, same static
            // entries: the FDB stays as it is.
            let untouched = prev_bridges.get(b.name.as_str()).is_some_and(|(c, e)| {
                *c == b
                    && same_members(
                        &self.current,
                        &e.ports,
                        &entry.ports,
                        &compiled.snapshot.ports,
                    )
            }) && !entry.ports.iter().any(|n| remaps.contains_key(n))
                && self.statics.get(&b.name).map_or(&[][..], Vec::as_slice) == mine;
            if untouched {
                if let Some(f) = self.fdbs.remove(&b.name) {
                    fdbs.insert(b.name.clone(), f);
                    continue;
                }
            }
            work.fdbs_rederived += 1;
            let cfg = fdb_config(b);
            let mut fdb = match self.fdbs.remove(&b.name) {
                Some(mut f) => {
                    // compile() validated the limits.
                    if *f.config() != cfg {
                        let _ = f.set_config(cfg);
                    }
                    f
                }
                None => match Fdb::new(cfg) {
                    Ok(f) => f,
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
                if e.is_static
                    || (!b.learning && !looked_up)
                    || !compiled.bridge_has_port(&b.name, e.dest.port)
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
            fdbs.insert(b.name.clone(), fdb);
        }
        self.fdbs = fdbs;
        self.statics = statics;
        self.dyn_remotes = compiled.dyn_remotes;
        self.tunnels_dirty = false;
        // Only a re-derived FDB can have let go of a dynamic remote.
        self.remotes_gc_due |= work.fdbs_rederived > 0;
        self.apply_underlay(&config);
        self.config = config;
        self.next_generation += 1;
        let bridges = by_name(&self.config.bridges, |b| &b.name);
        self.lookup_fdb
            .retain(|b, _| bridges.contains_key(b.as_str()));
        self.lookup_addrs
            .retain(|b, _| bridges.contains_key(b.as_str()));
        let tunnels = by_name(&self.config.tunnels, |t| &t.name);
        let ports = by_name(&self.config.ports, |p| &p.name);
        self.learn_refused
            .retain(|n, _| ports.contains_key(n.as_str()) || tunnels.contains_key(n.as_str()));
        let mut snap = compiled.snapshot;
        if self.underlay_changed() {
            // Every template, against the new underlay.
            work.templates_built = snap.tunnels.ports().iter().map(|t| t.remotes.len()).sum();
            self.fill_dynamic(&mut snap, true);
        } else {
            self.tunnel_hops
                .retain(|n, _| tunnels.contains_key(n.as_str()));
            self.tunnel_hops.extend(fresh_hops);
            self.hops_in_use();
            self.fill_dynamic(&mut snap, false);
        }
        self.last_apply = work;
        self.publish(snap);
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

    /// Folds pending learn events into the FDBs; publishes one snapshot if
    /// any changed. Returns the number of events processed.
    pub fn process_learning(&mut self, now: u64) -> usize {
        let mut n = 0;
        let mut changed = false;
        let snap = Arc::clone(&self.current);
        // Bounded: workers may refill the queue while it is drained, and the
        // control thread has other work (a later call takes the rest).
        while n < LEARN_QUEUE {
            let Ok(ev) = self.learn_rx.try_recv() else {
                break;
            };
            n += 1;
            // Events are numbered by the snapshot the worker had: drop those
            // a reconfiguration made stale (port gone or moved bridges).
            let Some(pe) = snap.port(ev.port) else {
                continue;
            };
            if pe.bridge != ev.bridge {
                continue;
            }
            let remote = match (pe.kind, ev.vtep) {
                (PortKind::Tunnel(t), Some(vtep)) => match self.remote_for(t, vtep) {
                    Some(r) => r,
                    None => continue,
                },
                _ => ev.remote,
            };
            // Events sent before learning was turned off are stale too.
            let Some(b) = snap
                .bridges
                .get(usize::from(ev.bridge))
                .filter(|b| b.learning)
            else {
                continue;
            };
            let Some(fdb) = self.fdbs.get_mut(&b.name) else {
                continue;
            };
            let dest = FdbDest {
                port: ev.port,
                remote,
            };
            let max = pe.max_macs.map(|m| m as usize);
            let outcome = fdb.learn_limited(ev.vlan, ev.mac, dest, now, max);
            changed |= outcome.changed();
            let table_full = match outcome {
                LearnOutcome::PortLimit => false,
                LearnOutcome::TableFull => true,
                _ => continue,
            };
            if !self.learn_refused.contains_key(&pe.name) {
                self.learn_refused
                    .insert(pe.name.clone(), LearnRefusals::default());
            }
            if let Some(r) = self.learn_refused.get_mut(&pe.name) {
                if table_full {
                    r.fdb_full += 1;
                } else {
                    r.port_limit += 1;
                }
            }
        }
        if changed || self.tunnels_dirty {
            // A move may have left a dynamic remote unreferenced.
            self.remotes_gc_due = true;
            self.republish();
        }
        n
    }

    /// The index of `vtep` among tunnel `t`'s remotes, adding it as a
    /// dynamic remote when the port learns remotes. `None`: the port
    /// does not take it (it does not learn, the VTEP is not unicast, or
    /// the port is full).
    fn remote_for(&mut self, t: u16, vtep: IpAddr) -> Option<RemoteIdx> {
        let tp = self.current.tunnels.get(t)?;
        if let Some(r) = tp.remote_index(ip_to_u128(vtep)) {
            // Never the group: pop refuses it as a source.
            return (tp.group.is_none() || r != 0).then_some(r);
        }
        if !tp.learn {
            return None;
        }
        self.add_dynamic_remote(t, vtep)
    }

    /// Adds `vtep` to tunnel `t`'s dynamic remotes (or finds it among
    /// those added since the last publish). `None` if it is not a unicast
    /// address of the port's family or the port is full.
    fn add_dynamic_remote(&mut self, t: u16, vtep: IpAddr) -> Option<RemoteIdx> {
        let tp = self.current.tunnels.get(t)?;
        if !crate::config::is_unicast_ip(&vtep) || vtep.is_ipv4() != tp.local.is_ipv4() {
            return None;
        }
        let flood = tp.flood_len();
        let list = self.dyn_remotes.entry(tp.name.clone()).or_default();
        // Added earlier in this batch, not yet in the snapshot.
        if let Some(k) = list.iter().position(|r| *r == vtep) {
            return Some((flood + k) as RemoteIdx);
        }
        if flood + list.len() >= MAX_REMOTES {
            return None;
        }
        list.push(vtep);
        self.tunnels_dirty = true;
        Some((flood + list.len() - 1) as RemoteIdx)
    }

    /// Drops dynamic remotes no FDB entry points at any more, moving the
    /// entries of later remotes down to their new indices.
    fn collect_remotes(&mut self) {
        self.remotes_gc_due = false;
        let mut used: HashMap<PortNo, Vec<bool>> = HashMap::new();
        for tp in self.current.tunnels.ports() {
            let dynamic = self
                .dyn_remotes
                .get(&tp.name)
                .map_or(&[][..], Vec::as_slice);
            // Only when the snapshot agrees with the lists (it does after
            // every publish).
            if !dynamic.is_empty() && tp.dynamic_remotes() == dynamic {
                used.insert(tp.port, vec![false; tp.remotes.len()]);
            }
        }
        if used.is_empty() {
            return;
        }
        for fdb in self.fdbs.values() {
            for e in fdb.iter(0) {
                if let Some(u) = used.get_mut(&e.dest.port) {
                    if let Some(x) = u.get_mut(usize::from(e.dest.remote)) {
                        *x = true;
                    }
                }
            }
        }
        let mut remaps = Remaps::new();
        for tp in self.current.tunnels.ports() {
            let Some(u) = used.get(&tp.port) else {
                continue;
            };
            let flood = tp.flood_len();
            if u[flood..].iter().all(|x| *x) {
                continue;
            }
            let mut next = 0;
            let map = u
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    (i < flood || *x).then(|| {
                        next += 1;
                        (next - 1) as RemoteIdx
                    })
                })
                .collect();
            let kept: Vec<IpAddr> = tp.remotes[flood..]
                .iter()
                .zip(&u[flood..])
                .filter(|(_, x)| **x)
                .map(|(r, _)| *r)
                .collect();
            self.dyn_remotes.insert(tp.name.clone(), kept);
            remaps.insert(tp.port, map);
        }
        if remaps.is_empty() {
            return;
        }
        for fdb in self.fdbs.values_mut() {
            fdb.retain_map(|e| remap(&remaps, e.dest));
        }
        self.tunnels_dirty = true;
        self.republish();
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

    /// Call after changing `underlay` (routes, neighbors, uplink MAC):
    /// rebuilds templates and publishes if anything they depend on moved.
    pub fn underlay_updated(&mut self) {
        if self.underlay_changed() {
            self.republish();
        }
    }

    /// Replaces the kernel-learned routes with `state`'s and learns its
    /// neighbors (static and snooped entries stay); rebuilds templates.
    pub fn load_kernel(&mut self, state: &kernel::KernelState, now: u64) {
        self.underlay.routes.remove_origin(RouteOrigin::Kernel);
        for r in &state.routes {
            // A route the table refuses (e.g. a family mismatch) is one we
            // could not use anyway.
            let _ = self.underlay.routes.insert(r.clone());
        }
        for n in &state.neighbors {
            self.underlay
                .neigh
                .learn_kernel(n.ip, n.mac, n.confirmed, now);
        }
        self.underlay_updated();
    }

    /// Applies route and neighbor notifications from the kernel.
    pub fn apply_kernel_events(&mut self, events: &[kernel::KernelEvent], now: u64) {
        for ev in events {
            match ev {
                kernel::KernelEvent::RouteAdded(r) => {
                    let _ = self.underlay.routes.insert(r.clone());
                }
                kernel::KernelEvent::RouteRemoved { prefix, metric } => {
                    self.underlay.routes.remove(prefix, Some(*metric));
                }
                kernel::KernelEvent::NeighUpdated(n) => {
                    self.underlay
                        .neigh
                        .learn_kernel(n.ip, n.mac, n.confirmed, now);
                    // Gone stale (the kernel notifies that, not DELAY):
                    // mark it used now, so the kernel probes it while we
                    // keep sending to its MAC.
                    if !n.confirmed {
                        self.underlay.neigh.refresh_soon(n.ip);
                    }
                }
                kernel::KernelEvent::NeighRemoved(ip) => {
                    self.underlay.neigh.kernel_deleted(*ip, now);
                }
                kernel::KernelEvent::NeighFailed(ip) => self.neigh_failed(*ip, now),
            }
        }
        self.underlay_updated();
    }

    /// Takes an ARP reply or IPv6 neighbor advertisement seen on the uplink
    /// (snooped by the XDP program and handed up), if the kernel would:
    /// addressed to the uplink's MAC (or broadcast, multicast), from an
    /// address on one of the uplink's subnets (its connected routes); then
    /// the neighbor cache takes it only if solicited and never lets it move
    /// a known MAC. Any other frame is ignored. Templates are rebuilt when a
    /// next hop's MAC appeared. Returns what the neighbor cache did, if it
    /// was such a frame (refusals included, and counted).
    pub fn snoop(&mut self, frame: &[u8], now: u64) -> Option<NeighChange> {
        let (dst, ip, mac) = neighbor_from_frame(frame)?;
        let c = &mut self.snoop_counters;
        let for_us = dst.is_multicast() || Some(dst) == self.underlay.uplink_mac;
        if !for_us {
            c.not_for_us += 1;
            return Some(NeighChange::Ignored);
        }
        let uplink = self.config.uplink.as_ref().map(|u| u.iface.as_str());
        let on_link = crate::config::is_unicast_ip(&ip)
            && self
                .underlay
                .routes
                .lookup(ip)
                .is_some_and(|r| r.gateway.is_none() && Some(r.dev.as_str()) == uplink);
        if !on_link {
            c.off_subnet += 1;
            return Some(NeighChange::Ignored);
        }
        let change = self
            .underlay
            .neigh
            .learn(ip, mac, now, NeighSource::Snooped);
        let c = &mut self.snoop_counters;
        match change {
            NeighChange::New | NeighChange::MacChanged { .. } => c.learned += 1,
            NeighChange::Refreshed => c.confirmed += 1,
            NeighChange::Unsolicited => c.unsolicited += 1,
            NeighChange::Conflict { .. } => c.conflicting += 1,
            NeighChange::Ignored => c.ignored += 1,
        }
        self.underlay_updated();
        Some(change)
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
        self.fill_dynamic(&mut snap, templates);
        self.publish(snap);
    }

    /// Fills what changes without a config change: FDB views and, when
    /// asked, tunnel templates.
    fn fill_dynamic(&mut self, snap: &mut Snapshot, templates: bool) {
        let fill = |this: &mut Control, b: &mut BridgeEntry| {
            if let Some(fdb) = this.fdbs.get_mut(&b.name) {
                b.fdb = fdb.view();
            }
            if this.addrs_dirty {
                b.addrs = Arc::new(this.addr_table(&b.name));
            }
        };
        // A freshly compiled list is ours alone: filled in place.
        if let Some(bridges) = Arc::get_mut(&mut snap.bridges) {
            for b in bridges {
                fill(self, b);
            }
        } else {
            let mut bridges: Vec<BridgeEntry> = snap.bridges.to_vec();
            for b in &mut bridges {
                fill(self, b);
            }
            snap.bridges = Arc::from(bridges);
        }
        self.addrs_dirty = false;

        if templates {
            let configs = by_name(&self.config.tunnels, |t| &t.name);
            let mut tunnel_hops = HashMap::new();
            let mut ports: Vec<TunnelPort> = snap.tunnels.ports().to_vec();
            for tp in &mut ports {
                let Some(cfg) = configs.get(tp.name.as_str()).copied() else {
                    continue;
                };
                let hops: &mut NextHops = tunnel_hops.entry(tp.name.clone()).or_default();
                let dynamic = self
                    .dyn_remotes
                    .get(&tp.name)
                    .map_or(&[][..], Vec::as_slice);
                if tp.dynamic_remotes() != dynamic {
                    *tp = TunnelPort::with_dynamic(cfg, tp.port, tp.local, dynamic);
                }
                for (i, remote) in tp.remotes.clone().iter().enumerate() {
                    let t = self.build_template(cfg, tp.local, *remote, hops);
                    tp.set_template(i as RemoteIdx, t);
                }
            }
            // Rebuilding with the same ports cannot fail: keys were checked
            // when the config was compiled.
            if let Ok(t) = TunnelTable::build(ports) {
                snap.tunnels = Arc::new(t);
            }
            self.tunnel_hops = tunnel_hops;
            self.hops_in_use();
            self.tunnels_dirty = false;
            self.neigh_generation_built = self.underlay.neigh.generation();
            self.route_generation_built = self.underlay.routes.generation();
            self.uplink_mac_built = self.underlay.uplink_mac;
        }
    }

    /// Makes `unresolved` and the neighbor cache's in-use set the union
    /// of the tunnels' next hops.
    fn hops_in_use(&mut self) {
        let mut used = BTreeSet::new();
        let mut unresolved = BTreeSet::new();
        for h in self.tunnel_hops.values() {
            used.extend(h.used.iter().copied());
            unresolved.extend(h.unresolved.iter().copied());
        }
        self.unresolved = unresolved;
        self.underlay.neigh.set_in_use(used);
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

    /// Addresses lookup installed in `bridge`: (VLAN, IP, MAC).
    pub fn lookup_addrs(&self, bridge: &str) -> Vec<(u16, IpAddr, MacAddr)> {
        let mut v: Vec<_> = self
            .lookup_addrs
            .get(bridge)
            .into_iter()
            .flatten()
            .map(|(&(vlan, ip), &(mac, _))| (vlan, crate::types::u128_to_ip(ip), mac))
            .collect();
        v.sort();
        v
    }

    fn build_template(
        &self,
        cfg: &TunnelConfig,
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

/// The destination MAC of an ARP reply or a neighbor advertisement, and
/// the (IP, MAC) it announces.
fn neighbor_from_frame(frame: &[u8]) -> Option<(MacAddr, IpAddr, MacAddr)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let dst = eth.dst_addr();
    match eth.ethertype() {
        ethertype::ARP => {
            let arp = ArpPacket::new_checked(eth.payload()).ok()?;
            (arp.operation() == arp::op::REPLY).then(|| {
                (
                    dst,
                    IpAddr::V4(arp.sender_proto_addr()),
                    arp.sender_hw_addr(),
                )
            })
        }
        ethertype::IPV6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            let (proto, off) = ip.upper_layer().ok()?;
            if proto != ip_proto::ICMPV6 {
                return None;
            }
            let ndp = parse_ndp(eth.payload().get(off..)?).ok()??;
            match (ndp.kind, ndp.lladdr) {
                (NdpKind::Advert, Some(mac)) => Some((dst, IpAddr::V6(ndp.target), mac)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A config compiled into a snapshot (FDB views and templates still to be
/// filled), plus the static FDB entries to install.
struct Compiled {
    snapshot: Snapshot,
    statics: Vec<(String, u16, MacAddr, FdbDest)>,
    bridge_ports: HashMap<String, Vec<PortNo>>,
    /// The dynamic remotes the snapshot's tunnel ports were built with.
    dyn_remotes: HashMap<String, Vec<IpAddr>>,
}

impl Compiled {
    fn bridge_has_port(&self, bridge: &str, port: PortNo) -> bool {
        self.bridge_ports
            .get(bridge)
            .is_some_and(|v| v.contains(&port))
    }
}

fn fdb_config(b: &BridgeConfig) -> FdbConfig {
    FdbConfig {
        max_entries: b.fdb_max_entries,
        aging_ns: b.fdb_aging_secs.saturating_mul(1_000_000_000),
        ..FdbConfig::default()
    }
}

fn vlan_of(m: &VlanMode) -> PortVlan {
    match m {
        VlanMode::Access { tag } => PortVlan::Access(*tag),
        VlanMode::Trunk { trunks, native } => PortVlan::trunk(trunks, *native),
    }
}

/// What a config is compiled against: the running one, its snapshot and
/// the control plane's state that goes into compiled tables. A part of
/// the snapshot whose inputs did not change is taken from here as it is
/// (same `Arc`, or a copy with its templates), not built again.
struct Previous<'a> {
    config: &'a Config,
    snapshot: &'a Snapshot,
    dyn_remotes: &'a HashMap<String, Vec<IpAddr>>,
    lookup_addrs: &'a HashMap<String, LookedUpAddrs>,
    /// Lookup changed addresses since the address tables were built:
    /// none of them may be taken as they are.
    addrs_dirty: bool,
}

/// Builds tunnel `cfg`'s template from `local` to a remote.
type TemplateFn<'a> = dyn FnMut(&TunnelConfig, IpAddr, IpAddr) -> Result<Template, DropReason> + 'a;

/// Compiles a validated config. Reports every problem the lower layers find
/// (flow syntax, ACL shapes, policer parameters, tunnel key clashes).
/// Tunnel ports, flow tables and address tables whose inputs are those of
/// `prev` are taken from it; the others are built, tunnel templates with
/// `template`. `work` counts what was built.
fn compile(
    config: &Config,
    prev: &Previous,
    generation: u64,
    template: &mut TemplateFn,
    work: &mut ApplyWork,
) -> Result<Compiled, ConfigErrors> {
    let prev_dyn = prev.dyn_remotes;
    let prev_tunnels = by_name(&prev.config.tunnels, |t| &t.name);
    let prev_tunnel_ports: HashMap<&str, &TunnelPort> = prev
        .snapshot
        .tunnels
        .ports()
        .iter()
        .map(|tp| (tp.name.as_str(), tp))
        .collect();
    let mut errs = Vec::new();
    let numbers = config.port_numbers();
    let max_no = numbers.values().copied().max().unwrap_or(0);
    let mut ports = vec![PortEntry::absent(); usize::from(max_no) + 1];
    let bridge_no: HashMap<&str, u16> = config
        .bridges
        .iter()
        .enumerate()
        .map(|(i, b)| (b.name.as_str(), i as u16))
        .collect();
    let mut bridge_ports: HashMap<String, Vec<PortNo>> = HashMap::new();

    if let Some(u) = &config.uplink {
        let n = numbers[u.iface.as_str()];
        ports[usize::from(n)] = PortEntry {
            name: u.iface.clone(),
            kind: PortKind::Uplink,
            bridge: 0,
            vlan: PortVlan::Access(0),
            mtu: u.mtu,
            firewall: [None; 2],
            policer: [None; 2],
            max_macs: None,
            security: None,
            storm: None,
        };
    }
    for p in &config.ports {
        let n = numbers[p.name.as_str()];
        let b = bridge_no[p.bridge.as_str()];
        ports[usize::from(n)] = PortEntry {
            name: p.name.clone(),
            kind: PortKind::Local,
            bridge: b,
            vlan: vlan_of(&p.vlan),
            mtu: p.mtu,
            firewall: [None; 2],
            policer: [None; 2],
            max_macs: p.max_macs,
            security: PortSecurity::new(&p.allowed_macs, &p.allowed_ips).map(Arc::new),
            storm: None,
        };
        bridge_ports.entry(p.bridge.clone()).or_default().push(n);
    }
    // Dynamic remotes: those the tunnel had (learned ones among them, the
    // tick drops the unused), then VTEPs static entries name beyond the
    // configured remotes.
    let mut dyn_remotes: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for t in &config.tunnels {
        let v4 = t.remotes.first().is_none_or(|r| r.is_ipv4());
        let kept = prev_dyn.get(&t.name).map_or_else(Vec::new, |d| {
            d.iter()
                .filter(|r| !t.remotes.contains(r) && r.is_ipv4() == v4)
                .copied()
                .collect()
        });
        dyn_remotes.insert(t.name.clone(), kept);
    }
    {
        let mut seen: std::collections::HashSet<(usize, IpAddr)> = std::collections::HashSet::new();
        let tunnels: HashMap<&str, (usize, &TunnelConfig)> = config
            .tunnels
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), (i, t)))
            .collect();
        for (i, t) in config.tunnels.iter().enumerate() {
            seen.extend(dyn_remotes[&t.name].iter().map(|r| (i, *r)));
        }
        for f in &config.fdb {
            let (Some(&(i, t)), Some(r)) = (tunnels.get(f.port.as_str()), f.remote) else {
                continue;
            };
            if t.remotes.contains(&r) || !seen.insert((i, r)) {
                continue;
            }
            let d = dyn_remotes.entry(t.name.clone()).or_default();
            if t.remotes.len() + d.len() >= MAX_REMOTES {
                errs.push(ConfigError {
                    object: format!("tunnel {:?}", t.name),
                    message: format!(
                        "static FDB entries name more VTEPs than the {MAX_REMOTES} remotes a tunnel holds"
                    ),
                });
                break;
            }
            d.push(r);
        }
    }
    let mut tunnel_ports = Vec::new();
    for t in &config.tunnels {
        let n = numbers[t.name.as_str()];
        let b = bridge_no[t.bridge.as_str()];
        let local = t.local.or_else(|| {
            let v4 = t.remotes.first().is_none_or(|r| r.is_ipv4());
            config
                .uplink
                .as_ref()
                .and_then(|u| u.local_ips.iter().find(|a| a.is_ipv4() == v4).copied())
        });
        let Some(local) = local else {
            // validate() already reported it.
            continue;
        };
        ports[usize::from(n)] = PortEntry {
            name: t.name.clone(),
            kind: PortKind::Tunnel(tunnel_ports.len() as u16),
            bridge: b,
            vlan: vlan_of(&t.vlan),
            mtu: config.uplink.as_ref().map_or(1500, |u| u.mtu),
            firewall: [None; 2],
            policer: [None; 2],
            max_macs: None,
            security: None,
            storm: None,
        };
        let dynamic = dyn_remotes.get(&t.name).map_or(&[][..], Vec::as_slice);
        // Same config, number, local address and dynamic remotes: the
        // same port, templates included (the caller rebuilds every
        // template when the underlay moved).
        let same = prev_tunnels.get(t.name.as_str()).is_some_and(|p| *p == t);
        let kept = prev_tunnel_ports
            .get(t.name.as_str())
            .filter(|tp| same && tp.port == n && tp.local == local)
            .filter(|tp| tp.dynamic_remotes() == dynamic);
        let tp = match kept {
            Some(tp) => (*tp).clone(),
            None => {
                work.tunnels_compiled += 1;
                let mut tp = TunnelPort::with_dynamic(t, n, local, dynamic);
                for (i, remote) in tp.remotes.clone().iter().enumerate() {
                    work.templates_built += 1;
                    tp.set_template(i as RemoteIdx, template(t, local, *remote));
                }
                tp
            }
        };
        tunnel_ports.push(tp);
        bridge_ports.entry(t.bridge.clone()).or_default().push(n);
    }
    let tunnels = match TunnelTable::build(tunnel_ports) {
        Ok(t) => t,
        Err(e) => {
            errs.push(ConfigError {
                object: "tunnels".into(),
                message: e.to_string(),
            });
            TunnelTable::default()
        }
    };

    let mut firewalls = Vec::new();
    for a in &config.acls {
        let o = format!("acl {:?} {}", a.port, a.dir);
        let mut rules = Vec::new();
        for (i, r) in a.rules.iter().enumerate() {
            match r.parse::<AclRule>() {
                Ok(r) => rules.push(r),
                Err(e) => errs.push(ConfigError {
                    object: format!("{o} rule {}", i + 1),
                    message: e.to_string(),
                }),
            }
        }
        match Firewall::build(rules) {
            Ok(fw) => {
                let idx = firewalls.len() as u16;
                firewalls.push(fw);
                if let Some(&n) = numbers.get(a.port.as_str()) {
                    ports[usize::from(n)].firewall[dir_index(a.dir)] = Some(idx);
                }
            }
            Err(e) => errs.push(ConfigError {
                object: o,
                message: e.to_string(),
            }),
        }
    }
    let mut policers = Vec::new();
    for q in &config.qos {
        let o = format!("qos {:?} {}", q.port, q.dir);
        let cfg =
            PolicerConfig::new(q.rate_bps / 8, q.burst_bytes).and_then(|c| match q.peak_bps {
                Some(p) => c.with_peak(p / 8),
                None => Ok(c),
            });
        match cfg {
            Ok(cfg) => {
                let idx = policers.len() as u16;
                policers.push(cfg);
                if let Some(&n) = numbers.get(q.port.as_str()) {
                    ports[usize::from(n)].policer[dir_index(q.dir)] = Some(idx);
                }
            }
            Err(e) => errs.push(ConfigError {
                object: o,
                message: e.to_string(),
            }),
        }
    }
    for p in &config.ports {
        let Some(pps) = p.storm_pps else { continue };
        // Frames, not bytes: the pipeline takes one token per frame, so
        // the "MTU" is 1 and the burst a second's worth.
        let cfg = PolicerConfig {
            rate_bytes_per_sec: u64::from(pps),
            burst_bytes: u64::from(pps),
            peak_bytes_per_sec: None,
            mtu: 1,
        };
        match cfg.validate() {
            Ok(()) => {
                let idx = policers.len() as u16;
                policers.push(cfg);
                if let Some(&n) = numbers.get(p.name.as_str()) {
                    ports[usize::from(n)].storm = Some(idx);
                }
            }
            Err(e) => errs.push(ConfigError {
                object: format!("port {:?}", p.name),
                message: format!("storm_pps {pps}: {e}"),
            }),
        }
    }

    let prev_bridges = bridges_by_name(prev.config, prev.snapshot);
    let addrs_of = addrs_by_bridge(config);
    let prev_addrs_of = addrs_by_bridge(prev.config);
    let mut bridges = Vec::new();
    for b in &config.bridges {
        let mine = bridge_ports.get(&b.name).cloned().unwrap_or_default();
        let kept = prev_bridges.get(b.name.as_str()).copied();
        let same = kept
            .is_some_and(|(c, e)| c == b && same_members(prev.snapshot, &e.ports, &mine, &ports));
        let configured = addrs_of.get(b.name.as_str());
        let addrs = match kept {
            Some((_, e))
                if !prev.addrs_dirty && prev_addrs_of.get(b.name.as_str()) == configured =>
            {
                Arc::clone(&e.addrs)
            }
            _ => {
                work.bridge_tables_built += 1;
                Arc::new(addr_table(
                    prev.lookup_addrs.get(&b.name),
                    configured.into_iter().flatten().copied(),
                ))
            }
        };
        let flows = match kept {
            // Valid before, over the same ports: nothing to parse.
            Some((_, e)) if same => Arc::clone(&e.flows),
            _ => {
                work.bridge_tables_built += 1;
                match compile_flows(b, &mine, kept.map(|(_, e)| e), generation) {
                    Ok(t) => t,
                    Err(mut e) => {
                        errs.append(&mut e);
                        Arc::new(FlowTable::default())
                    }
                }
            }
        };
        if !same {
            if let Err(e) = Fdb::new(fdb_config(b)) {
                errs.push(ConfigError {
                    object: format!("bridge {:?}", b.name),
                    message: e.to_string(),
                });
            }
        }
        let aging_ns = b.fdb_aging_secs.saturating_mul(1_000_000_000);
        bridges.push(BridgeEntry {
            name: b.name.clone(),
            ports: mine,
            fdb: Arc::default(),
            flows,
            learn_refresh_ns: (aging_ns / 8).max(1_000_000_000),
            learning: b.learning,
            arp_suppress: b.arp_suppress,
            addrs,
            lookup: b.lookup.as_ref().map(|l| l.miss),
            lookup_hold_ns: b
                .lookup
                .as_ref()
                .map_or(0, |l| l.hold_ms.saturating_mul(1_000_000)),
        });
    }

    let mut statics = Vec::new();
    let mut per_bridge: HashMap<&str, usize> = HashMap::new();
    for f in &config.fdb {
        let Some(&n) = numbers.get(f.port.as_str()) else {
            continue;
        };
        let tunnel = match ports.get(usize::from(n)).map(|p| p.kind) {
            Some(PortKind::Tunnel(t)) => tunnels.get(t),
            _ => None,
        };
        let remote = match (f.remote, tunnel) {
            (Some(r), Some(tp)) => tp.remote_index(ip_to_u128(r)).unwrap_or(NO_REMOTE),
            (None, Some(_)) => 0,
            _ => NO_REMOTE,
        };
        *per_bridge.entry(f.bridge.as_str()).or_default() += 1;
        statics.push((f.bridge.clone(), f.vlan, f.mac, FdbDest { port: n, remote }));
    }
    for b in &config.bridges {
        let n = per_bridge.get(b.name.as_str()).copied().unwrap_or(0);
        if n > b.fdb_max_entries {
            errs.push(ConfigError {
                object: format!("bridge {:?}", b.name),
                message: format!(
                    "{n} static FDB entries exceed fdb_max_entries {}",
                    b.fdb_max_entries
                ),
            });
        }
    }

    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    // Workers cache firewall verdicts and keep policer buckets per policy
    // generation: it must change when rules, policers or their assignment
    // to ports change, and only then.
    let policy_changed = prev.snapshot.firewalls.len() != firewalls.len()
        || prev.snapshot.policers.as_ref() != policers.as_slice()
        || config_acls_changed(prev.snapshot, &firewalls)
        || !policy_slots(&prev.snapshot.ports).eq(policy_slots(&ports));
    let limits = |ports: &[PortEntry]| ports.iter().map(|p| p.max_macs).collect::<Vec<_>>();
    let limits_changed = limits(&prev.snapshot.ports) != limits(&ports);
    Ok(Compiled {
        snapshot: Snapshot {
            generation,
            policy_generation: if policy_changed {
                generation
            } else {
                prev.snapshot.policy_generation
            },
            learn_generation: if limits_changed {
                generation
            } else {
                prev.snapshot.learn_generation
            },
            ports: Arc::from(ports),
            bridges: Arc::from(bridges),
            tunnels: Arc::new(tunnels),
            uplink: config.uplink.as_ref().map(|u| numbers[u.iface.as_str()]),
            uplink_mtu: config.uplink.as_ref().map_or(0, |u| u.mtu),
            firewalls: Arc::from(firewalls),
            policers: Arc::from(policers),
        },
        statics,
        bridge_ports,
        dyn_remotes,
    })
}

/// Each port's firewall and policer slots, by port name.
fn policy_slots(
    ports: &[PortEntry],
) -> impl Iterator<Item = (&str, [Option<u16>; 2], [Option<u16>; 2])> + '_ {
    ports
        .iter()
        .filter(|e| e.kind != PortKind::Absent)
        .map(|e| (e.name.as_str(), e.firewall, e.policer))
}

fn config_acls_changed(prev: &Snapshot, new: &[Firewall]) -> bool {
    prev.firewalls
        .iter()
        .zip(new)
        .any(|(a, b)| a.rules() != b.rules())
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::In => 0,
        Direction::Out => 1,
    }
}

/// Bridge `b`'s flow table over its ports `mine`: `prev`'s table (and
/// its generation, so exact-match caches stay warm) when the rules did
/// not change, else a new one; or every problem with the rules.
fn compile_flows(
    b: &BridgeConfig,
    mine: &[PortNo],
    prev: Option<&BridgeEntry>,
    generation: u64,
) -> Result<Arc<FlowTable>, Vec<ConfigError>> {
    let mut errs = Vec::new();
    let mut rules = Vec::new();
    for (i, f) in b.flows.iter().enumerate() {
        match f.parse::<FlowRule>() {
            Ok(r) => rules.push(r),
            Err(e) => errs.push(ConfigError {
                object: format!("bridge {:?} flow {}", b.name, i + 1),
                message: e.to_string(),
            }),
        }
    }
    // Flows name port numbers: check they are ports of this bridge.
    for (i, r) in rules.iter().enumerate() {
        for p in r.referenced_ports() {
            if !mine.contains(&p) {
                errs.push(ConfigError {
                    object: format!("bridge {:?} flow {}", b.name, i + 1),
                    message: format!("port {p} is not a port of this bridge"),
                });
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let prev_table = prev
        .filter(|pb| pb.flows.rules() == rules.as_slice())
        .map(|pb| Arc::clone(&pb.flows));
    match prev_table {
        Some(t) => Ok(t),
        None => FlowTable::build(rules, generation)
            .map(Arc::new)
            .map_err(|e| {
                vec![ConfigError {
                    object: format!("bridge {:?} flows", b.name),
                    message: e.to_string(),
                }]
            }),
    }
}

/// `items` by their name.
fn by_name<T>(items: &[T], name: fn(&T) -> &String) -> HashMap<&str, &T> {
    items.iter().map(|x| (name(x).as_str(), x)).collect()
}

/// Each bridge of `config` with its entry in `snap`, compiled from it.
fn bridges_by_name<'a>(
    config: &'a Config,
    snap: &'a Snapshot,
) -> HashMap<&'a str, (&'a BridgeConfig, &'a BridgeEntry)> {
    config
        .bridges
        .iter()
        .zip(snap.bridges.iter())
        .filter(|(c, e)| c.name == e.name)
        .map(|(c, e)| (c.name.as_str(), (c, e)))
        .collect()
}

/// The config's overlay addresses, by bridge: (VLAN, IP, MAC).
fn addrs_by_bridge(config: &Config) -> HashMap<&str, Vec<(u16, IpAddr, MacAddr)>> {
    let mut m: HashMap<&str, Vec<(u16, IpAddr, MacAddr)>> = HashMap::new();
    for a in &config.addrs {
        m.entry(a.bridge.as_str())
            .or_default()
            .push((a.vlan, a.ip, a.mac));
    }
    m
}

/// A bridge's address table: what lookup installed, then the configured
/// addresses (which win where both have one).
fn addr_table(
    looked_up: Option<&LookedUpAddrs>,
    configured: impl Iterator<Item = (u16, IpAddr, MacAddr)>,
) -> AddrTable {
    let looked_up = looked_up
        .into_iter()
        .flatten()
        .map(|(&(vlan, ip), &(mac, _))| (vlan, crate::types::u128_to_ip(ip), mac));
    AddrTable::build(looked_up.chain(configured))
}

/// Do ports `a` (of `a_snap`) and `b` (numbered as in `b_ports`) hold the
/// same ports: the same numbers, each with the same name?
fn same_members(a_snap: &Snapshot, a: &[PortNo], b: &[PortNo], b_ports: &[PortEntry]) -> bool {
    a == b
        && a.iter().all(|n| {
            a_snap.port(*n).map(|p| p.name.as_str())
                == b_ports.get(usize::from(*n)).map(|p| p.name.as_str())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::route::Route;
    use crate::testkit::{self, UPLINK_MAC};

    const VTEP: &str = "192.0.2.2";
    const KNOWN: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x22]);
    const SPOOF: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x66]);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// An ARP reply: `sender` is at `mac`, sent to `dst`.
    fn reply(dst: MacAddr, sender: &str, mac: MacAddr) -> Vec<u8> {
        let IpAddr::V4(a) = ip(sender) else {
            panic!("IPv4 only")
        };
        let mut v = vec![0u8; 42];
        v[..6].copy_from_slice(&dst.0);
        v[6..12].copy_from_slice(&mac.0);
        v[12..14].copy_from_slice(&[0x08, 0x06]);
        v[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
        v[22..28].copy_from_slice(&mac.0);
        v[28..32].copy_from_slice(&a.octets());
        v[32..38].copy_from_slice(&UPLINK_MAC.0);
        v[38..42].copy_from_slice(&[192, 0, 2, 1]);
        v
    }

    /// The testbed with the VTEP 192.0.2.2 learned from the kernel (not
    /// static) at `KNOWN`, and 10.0.0.0/8 on-link on the uplink too.
    fn bed() -> Control {
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
    fn vtep_mac(ctl: &Control) -> Option<MacAddr> {
        let snap = ctl.snapshot();
        let t = snap.tunnels.ports()[0].template(0).ok()?;
        MacAddr::from_slice(&t.bytes()[..6])
    }

    #[test]
    fn snooped_replies_are_taken_only_as_the_kernel_would() {
        let mut ctl = bed();
        // Outside the uplink's subnets (no route, or only via a gateway).
        let off = reply(UPLINK_MAC, "198.51.100.7", SPOOF);
        assert_eq!(ctl.snoop(&off, 1), Some(NeighChange::Ignored));
        assert_eq!(ctl.underlay.neigh.state(ip("198.51.100.7")), None);
        // To another host's MAC: the kernel drops it as PACKET_OTHERHOST.
        let other = reply(MacAddr([2, 0, 0, 0, 0, 0x99]), VTEP, SPOOF);
        assert_eq!(ctl.snoop(&other, 2), Some(NeighChange::Ignored));
        // To us, for the VTEP, from another MAC: a spoof; the MAC stays.
        let spoof = reply(UPLINK_MAC, VTEP, SPOOF);
        assert_eq!(
            ctl.snoop(&spoof, 3),
            Some(NeighChange::Conflict { kept: KNOWN })
        );
        assert_eq!(vtep_mac(&ctl), Some(KNOWN));
        // Broadcast, same MAC: a confirmation.
        let confirm = reply(MacAddr::BROADCAST, VTEP, KNOWN);
        assert_eq!(ctl.snoop(&confirm, 4), Some(NeighChange::Refreshed));
        // On the subnet but nobody asked.
        let unsolicited = reply(UPLINK_MAC, "192.0.2.77", SPOOF);
        assert_eq!(ctl.snoop(&unsolicited, 5), Some(NeighChange::Unsolicited));
        assert_eq!(ctl.underlay.neigh.state(ip("192.0.2.77")), None);
        assert_eq!(
            ctl.snoop_counters(),
            SnoopCounters {
                learned: 0,
                confirmed: 1,
                not_for_us: 1,
                off_subnet: 1,
                unsolicited: 1,
                conflicting: 1,
                ignored: 0,
            }
        );
        // The kernel's table decides a move.
        let moved = kernel::KernelNeigh {
            ip: ip(VTEP),
            mac: SPOOF,
            ifindex: 2,
            confirmed: true,
        };
        ctl.apply_kernel_events(&[kernel::KernelEvent::NeighUpdated(moved)], 6);
        assert_eq!(vtep_mac(&ctl), Some(SPOOF));
    }

    #[test]
    fn a_flood_of_unsolicited_replies_publishes_nothing() {
        let mut ctl = bed();
        let generation = ctl.snapshot().generation;
        for n in 0..20_000u32 {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + n + 1).to_string();
            let f = reply(
                UPLINK_MAC,
                &a,
                MacAddr([2, 0, 0, 1, (n >> 8) as u8, n as u8]),
            );
            assert_eq!(
                ctl.snoop(&f, u64::from(n) * 50_000),
                Some(NeighChange::Unsolicited)
            );
        }
        assert_eq!(ctl.snoop_counters().unsolicited, 20_000);
        assert_eq!(ctl.snapshot().generation, generation);
        assert_eq!(vtep_mac(&ctl), Some(KNOWN));
    }

    #[test]
    fn an_in_use_next_hop_survives_the_kernels_garbage_collection() {
        let mut ctl = bed();
        assert!(ctl.underlay.neigh.is_in_use(ip(VTEP)));
        // Refreshed every interval while in use, through the kernel.
        let s = 1_000_000_000;
        assert_eq!(ctl.due_refreshes(s), vec![(ip(VTEP), 2)]);
        assert!(ctl.due_refreshes(s + 1).is_empty());
        // Stale in the kernel: refreshed at once, still usable.
        let stale = kernel::KernelNeigh {
            ip: ip(VTEP),
            mac: KNOWN,
            ifindex: 2,
            confirmed: false,
        };
        let confirmed = kernel::KernelNeigh {
            confirmed: true,
            ..stale
        };
        ctl.apply_kernel_events(&[kernel::KernelEvent::NeighUpdated(stale)], s + 2);
        assert_eq!(ctl.due_refreshes(s + 3), vec![(ip(VTEP), 2)]);
        // Collected by the kernel: usable while it is resolved again.
        ctl.apply_kernel_events(&[kernel::KernelEvent::NeighRemoved(ip(VTEP))], s + 4);
        assert_eq!(vtep_mac(&ctl), Some(KNOWN));
        assert_eq!(ctl.due_refreshes(s + 5), vec![(ip(VTEP), 2)]);
        ctl.kernel_neigh(ip(VTEP), kernel::NeighLookup::Resolving, s + 6);
        assert_eq!(vtep_mac(&ctl), Some(KNOWN));
        ctl.tick(30 * s);
        assert_eq!(vtep_mac(&ctl), Some(KNOWN));
        // Confirmed again, then failed (as `ip neigh del` does first):
        // kept while resolved again.
        ctl.apply_kernel_events(&[kernel::KernelEvent::NeighUpdated(confirmed)], 30 * s);
        ctl.apply_kernel_events(&[kernel::KernelEvent::NeighFailed(ip(VTEP))], 30 * s + 1);
        assert_eq!(vtep_mac(&ctl), Some(KNOWN));
        // The kernel gave up: the next hop does not answer.
        ctl.apply_kernel_events(&[kernel::KernelEvent::NeighFailed(ip(VTEP))], 31 * s);
        assert_eq!(vtep_mac(&ctl), None);
        assert!(ctl.unresolved().any(|a| *a == ip(VTEP)));
    }
}
