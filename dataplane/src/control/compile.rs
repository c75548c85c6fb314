//! Compilation: a validated config, against the running one and its
//! snapshot, into a new [`Snapshot`] (FDB views and templates still to be
//! filled by the control plane) plus the static FDB entries to install.
//! Every problem the lower layers find is reported; a part whose inputs did
//! not change is taken from the running snapshot, not built again.

use std::cell::{Cell, OnceCell};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::mirrors::mirrors;
use super::tunnels::{dynamic_remotes, tunnel_ports, TemplateFn};
use super::{ApplyWork, LookedUpAddrs};
use crate::policy::firewall::{AclRule, Firewall};
use crate::policy::port_security::PortSecurity;
use crate::policy::qos::PolicerConfig;
use crate::snapshot::{BridgeEntry, PortEntry, PortKind, PortVlan, Snapshot};
use crate::tables::addr::AddrTable;
use crate::tables::fdb::{Fdb, FdbConfig, FdbDest, FdbView};
use crate::tables::flow::{FlowRule, FlowTable};
use crate::tunnel::{TunnelTable, NO_REMOTE};
use xvs_config::{BridgeConfig, Config, ConfigError, ConfigErrors, Direction, Shared, VlanMode};
use xvs_types::{ip_to_u128, MacAddr, PortNo};

/// A config compiled into a snapshot (FDB views and templates still to be
/// filled), plus the static FDB entries to install.
pub(super) struct Compiled {
    pub(super) snapshot: Snapshot,
    pub(super) statics: Vec<(String, u16, MacAddr, FdbDest)>,
    /// The dynamic remotes the snapshot's tunnel ports were built with
    /// (tunnels without any have no entry).
    pub(super) dyn_remotes: HashMap<String, Vec<IpAddr>>,
    /// Per bridge of the config: the index of the running config's
    /// bridge of the same name.
    pub(super) prev_bridge: Vec<Option<usize>>,
    /// The running config's tunnels the new config no longer has.
    pub(super) removed_tunnels: Vec<usize>,
    /// The bridges (by position) whose entry is new, its FDB view empty:
    /// the others carry the running entry's, to be replaced only if that
    /// FDB changed.
    pub(super) unfilled: Vec<usize>,
    /// The port numbers whose port is another than in the running
    /// snapshot (see `renamed_ports`).
    pub(super) renamed: FxHashSet<PortNo>,
}

/// For each item of `new`, the index of the item of `prev` with the same
/// name, and the indices of `prev`'s items that are in `new` no more.
/// Names are unique in each list (both are validated configs). A
/// transaction changes a few items and keeps the order of the others, so
/// the two lists are walked side by side and an item is looked for only
/// among the few `prev` skipped: linear with no hashing, where a name map
/// of each list would cost an allocation and a hash per item. An item
/// `same` as the one in its place (shared by both configs, so of the same
/// name) matches without its name being read.
pub(super) fn align<T>(
    prev: &[T],
    new: &[T],
    name: impl Fn(&T) -> &str,
    same: impl Fn(&T, &T) -> bool,
) -> (Vec<Option<usize>>, Vec<usize>) {
    /// How far ahead in `prev` an item is looked for (deleted items).
    const AHEAD: usize = 4;
    let mut out = Vec::with_capacity(new.len());
    let mut skipped = Vec::new();
    let mut unmatched = Vec::new();
    let mut i = 0;
    for (j, x) in new.iter().enumerate() {
        if prev.get(i).is_some_and(|p| same(p, x)) {
            out.push(Some(i));
            i += 1;
            continue;
        }
        let n = name(x);
        match (0..=AHEAD).find(|d| prev.get(i + d).is_some_and(|p| name(p) == n)) {
            Some(d) => {
                skipped.extend(i..i + d);
                out.push(Some(i + d));
                i += d + 1;
            }
            None => {
                out.push(None);
                unmatched.push(j);
            }
        }
    }
    skipped.extend(i..prev.len());
    // Every item of `prev` was matched once or skipped; a name matched
    // already is not another item's of `new`. So an unmatched item is
    // either among the skipped or new.
    if !unmatched.is_empty() && !skipped.is_empty() {
        let by_name: FxHashMap<&str, usize> =
            skipped.iter().map(|&k| (name(&prev[k]), k)).collect();
        let mut taken = FxHashSet::default();
        for j in unmatched {
            if let Some(&k) = by_name.get(name(&new[j])) {
                out[j] = Some(k);
                taken.insert(k);
            }
        }
        skipped.retain(|k| !taken.contains(k));
    }
    (out, skipped)
}

pub(super) fn fdb_config(b: &BridgeConfig) -> FdbConfig {
    FdbConfig {
        max_entries: b.fdb_max_entries,
        aging_ns: b.fdb_aging_secs.saturating_mul(1_000_000_000),
        ..FdbConfig::default()
    }
}

pub(super) fn vlan_of(m: &VlanMode) -> PortVlan {
    match m {
        VlanMode::Access { tag } => PortVlan::Access(*tag),
        VlanMode::Trunk { trunks, native } => PortVlan::trunk(trunks, *native),
    }
}

/// What a config is compiled against: the running one, its snapshot and
/// the control plane's state that goes into compiled tables. A part of
/// the snapshot whose inputs did not change is taken from here as it is
/// (same `Arc`, or a copy with its templates), not built again.
pub(super) struct Previous<'a> {
    pub(super) config: &'a Config,
    pub(super) snapshot: &'a Snapshot,
    pub(super) dyn_remotes: &'a HashMap<String, Vec<IpAddr>>,
    pub(super) lookup_addrs: &'a HashMap<String, LookedUpAddrs>,
    /// Lookup changed addresses since the address tables were built:
    /// none of them may be taken as they are.
    pub(super) addrs_dirty: bool,
}

impl Previous<'_> {
    /// The running snapshot's name for port `n` if it is `name`: shared,
    /// not allocated again.
    pub(super) fn port_name(&self, n: PortNo, name: &str) -> Arc<str> {
        match self.snapshot.port(n) {
            Some(e) if &*e.name == name => Arc::clone(&e.name),
            _ => Arc::from(name),
        }
    }
}

/// Compiles a validated config. Reports every problem the lower layers find
/// (flow syntax, ACL shapes, policer parameters, tunnel key clashes).
/// Tunnel ports, flow tables and address tables whose inputs are those of
/// `prev` are taken from it; the others are built, tunnel templates with
/// `template`. `work` counts what was built.
pub(super) fn compile(
    config: &Config,
    prev: &Previous,
    generation: u64,
    template: &mut TemplateFn,
    work: &mut ApplyWork,
) -> Result<Compiled, ConfigErrors> {
    let mut errs = Vec::new();
    let mut layout = Layout::of(config, prev);
    let dyn_remotes = dynamic_remotes(config, prev.dyn_remotes, &mut errs);
    let (prev_tunnel, removed_tunnels) = align(
        &prev.config.tunnels,
        &config.tunnels,
        |t| &t.name,
        Shared::same,
    );
    let tunnels = tunnel_ports(
        config,
        prev,
        &prev_tunnel,
        &mut layout,
        &dyn_remotes,
        template,
        work,
    );
    let tunnels = match tunnels {
        Ok(t) => t,
        Err(e) => {
            errs.push(ConfigError {
                object: "tunnels".into(),
                message: e.to_string(),
            });
            Arc::new(TunnelTable::default())
        }
    };
    let firewalls = firewalls(config, &mut layout, &mut errs);
    let policers = policers(config, &mut layout, &mut errs);
    let (mirrors, mirror_sets) = mirrors(config, &mut layout);
    let (prev_bridge, _) = align(
        &prev.config.bridges,
        &config.bridges,
        |b| &b.name,
        Shared::same,
    );
    layout.renamed = renamed_ports(&prev.snapshot.ports, &layout.ports);
    let (bridges, unfilled) = bridges(
        config,
        prev,
        &prev_bridge,
        &layout,
        generation,
        work,
        &mut errs,
    );
    let statics = static_entries(config, &layout, &tunnels, &mut errs);

    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    let uplink = config
        .uplink
        .as_ref()
        .and_then(|u| u.number.or_else(|| layout.number(&u.iface)));
    let Layout { ports, renamed, .. } = layout;
    // Workers cache firewall verdicts and keep policer buckets per policy
    // generation: it must change when rules, policers or their assignment
    // to ports change, and only then.
    let policy_changed = prev.snapshot.firewalls.len() != firewalls.len()
        || prev.snapshot.policers.as_ref() != policers.as_slice()
        || config_acls_changed(prev.snapshot, &firewalls)
        || !policy_slots(&prev.snapshot.ports).eq(policy_slots(&ports))
        || *prev.snapshot.mirrors != *mirrors
        || *prev.snapshot.mirror_sets != *mirror_sets;
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
            tunnels,
            uplink,
            uplink_mtu: config.uplink.as_ref().map_or(0, |u| u.mtu),
            firewalls: Arc::from(firewalls),
            policers: Arc::from(policers),
            mirrors: Arc::from(mirrors),
            mirror_sets: Arc::from(mirror_sets),
        },
        statics,
        dyn_remotes,
        prev_bridge,
        removed_tunnels,
        unfilled,
        renamed,
    })
}

/// The ports of the config being compiled, as far as they are built: their
/// entries (filled in by each part in turn) and each bridge's members, and
/// lookups of ports and bridges by name.
pub(super) struct Layout<'c> {
    config: &'c Config,
    /// Name -> number and bridge name -> index, built on the first lookup
    /// past `LINEAR_LOOKUPS`: a transaction that changes one object looks
    /// up one or two names, and a scan of the config costs less than
    /// hashing every name of it into a map.
    numbers: OnceCell<FxHashMap<&'c str, PortNo>>,
    bridge_no: OnceCell<FxHashMap<&'c str, u16>>,
    scans: Cell<u32>,
    /// Every bridge is the running config's, in the same place: an object
    /// that is too keeps the running entry's bridge index.
    pub(super) bridges_same: bool,
    pub(super) ports: Vec<PortEntry>,
    /// (bridge number, port number) of every port, in the order ports
    /// join their bridge: sorted by bridge (stably) into the bridges' port
    /// lists, one allocation for all.
    pub(super) members: Vec<(u16, PortNo)>,
    /// Once every port is laid out: the numbers whose port is another
    /// than in the running snapshot (`renamed_ports`).
    pub(super) renamed: FxHashSet<PortNo>,
}

/// Lookups by name answered by a scan of the config before a map is built.
const LINEAR_LOOKUPS: u32 = 4;

impl<'c> Layout<'c> {
    /// The uplink's and the local ports' entries; tunnel ports come later.
    fn of(config: &'c Config, prev: &Previous) -> Layout<'c> {
        let max_no = config
            .uplink
            .iter()
            .filter_map(|u| u.number)
            .chain(config.ports.iter().filter_map(|p| p.number))
            .chain(config.tunnels.iter().filter_map(|t| t.number))
            .max()
            .unwrap_or(0);
        let mut layout = Layout {
            config,
            numbers: OnceCell::new(),
            bridge_no: OnceCell::new(),
            scans: Cell::new(0),
            bridges_same: Shared::all_same(&config.bridges, &prev.config.bridges),
            ports: vec![PortEntry::absent(); usize::from(max_no) + 1],
            members: Vec::with_capacity(config.ports.len() + config.tunnels.len()),
            renamed: FxHashSet::default(),
        };
        if let Some(u) = &config.uplink {
            if let Some(n) = u.number.or_else(|| layout.number(&u.iface)) {
                layout.ports[usize::from(n)] = PortEntry {
                    name: prev.port_name(n, &u.iface),
                    kind: PortKind::Uplink,
                    bridge: 0,
                    vlan: PortVlan::Access(0),
                    mtu: u.mtu,
                    firewall: [None; 2],
                    policer: [None; 2],
                    max_macs: None,
                    security: None,
                    storm: None,
                    mirror: [None; 2],
                    mirror_output: false,
                };
            }
        }
        let (prev_port, _) = align(&prev.config.ports, &config.ports, |p| &p.name, Shared::same);
        for (p, prev_p) in config.ports.iter().zip(prev_port) {
            let Some(n) = p.number.or_else(|| layout.number(&p.name)) else {
                continue;
            };
            // The running config's port, unchanged, in unchanged bridges:
            // its running entry, with the slots the new config's policies
            // fill cleared.
            let running = prev_p
                .filter(|&k| layout.bridges_same && Shared::same(&prev.config.ports[k], p))
                .and_then(|_| prev.snapshot.port(n))
                .filter(|e| e.kind == PortKind::Local);
            let entry = match running {
                Some(e) => e.without_policies(),
                None => {
                    let Some(b) = layout.bridge(&p.bridge) else {
                        continue;
                    };
                    PortEntry {
                        name: prev.port_name(n, &p.name),
                        kind: PortKind::Local,
                        bridge: b,
                        vlan: vlan_of(&p.vlan),
                        mtu: p.mtu,
                        firewall: [None; 2],
                        policer: [None; 2],
                        max_macs: p.max_macs,
                        security: PortSecurity::new(&p.allowed_macs, &p.allowed_ips).map(Arc::new),
                        storm: None,
                        mirror: [None; 2],
                        mirror_output: false,
                    }
                }
            };
            layout.members.push((entry.bridge, n));
            layout.ports[usize::from(n)] = entry;
        }
        layout
    }

    /// Counts a lookup; true while a scan should answer it.
    fn scan(&self) -> bool {
        let n = self.scans.get();
        self.scans.set(n.saturating_add(1));
        n < LINEAR_LOOKUPS
    }

    /// The number of the port, tunnel or uplink named `name`.
    pub(super) fn number(&self, name: &str) -> Option<PortNo> {
        let c = self.config;
        let named = || {
            c.uplink
                .iter()
                .map(|u| (u.iface.as_str(), u.number))
                .chain(c.ports.iter().map(|p| (p.name.as_str(), p.number)))
                .chain(c.tunnels.iter().map(|t| (t.name.as_str(), t.number)))
        };
        if self.numbers.get().is_none() && self.scan() {
            return named().find(|(n, _)| *n == name).and_then(|(_, no)| no);
        }
        let map = self
            .numbers
            .get_or_init(|| named().filter_map(|(n, no)| Some((n, no?))).collect());
        map.get(name).copied()
    }

    /// The index of the bridge named `name`.
    pub(super) fn bridge(&self, name: &str) -> Option<u16> {
        let c = self.config;
        if self.bridge_no.get().is_none() && self.scan() {
            return c
                .bridges
                .iter()
                .position(|b| b.name == name)
                .map(|i| i as u16);
        }
        let map = self.bridge_no.get_or_init(|| {
            c.bridges
                .iter()
                .enumerate()
                .map(|(i, b)| (b.name.as_str(), i as u16))
                .collect()
        });
        map.get(name).copied()
    }
}

/// The config's ACLs compiled, each port's firewall slots set in `layout`.
fn firewalls(config: &Config, layout: &mut Layout, errs: &mut Vec<ConfigError>) -> Vec<Firewall> {
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
                if let Some(n) = layout.number(&a.port) {
                    layout.ports[usize::from(n)].firewall[dir_index(a.dir)] = Some(idx);
                }
            }
            Err(e) => errs.push(ConfigError {
                object: o,
                message: e.to_string(),
            }),
        }
    }
    firewalls
}

/// The config's policers (QoS, then storm control), each port's policer
/// and storm slots set in `layout`.
fn policers(
    config: &Config,
    layout: &mut Layout,
    errs: &mut Vec<ConfigError>,
) -> Vec<PolicerConfig> {
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
                if let Some(n) = layout.number(&q.port) {
                    layout.ports[usize::from(n)].policer[dir_index(q.dir)] = Some(idx);
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
                if let Some(n) = p.number.or_else(|| layout.number(&p.name)) {
                    layout.ports[usize::from(n)].storm = Some(idx);
                }
            }
            Err(e) => errs.push(ConfigError {
                object: format!("port {:?}", p.name),
                message: format!("storm_pps {pps}: {e}"),
            }),
        }
    }
    policers
}

/// Each bridge's entry: flow and address tables, name and port list taken
/// from `prev` when their inputs are the same, else built; the FDB view is
/// the running entry's, or empty for a bridge that had none (those are
/// listed, second, for the control plane to fill). `prev_bridge` is
/// [`align`]'s of the two configs' bridges.
fn bridges(
    config: &Config,
    prev: &Previous,
    prev_bridge: &[Option<usize>],
    layout: &Layout,
    generation: u64,
    work: &mut ApplyWork,
    errs: &mut Vec<ConfigError>,
) -> (Vec<BridgeEntry>, Vec<usize>) {
    // One empty view for every new entry: no allocation per bridge.
    let no_fdb: Arc<FdbView> = Arc::default();
    let mut unfilled = Vec::new();
    let addrs_of = addrs_by_bridge(config);
    let prev_addrs_of = addrs_by_bridge(prev.config);
    let mut members = layout.members.clone();
    members.sort_by_key(|(b, _)| *b);
    let mut members = members.as_slice();
    let mut bridges = Vec::with_capacity(config.bridges.len());
    for ((i, b), prev_b) in config.bridges.iter().enumerate().zip(prev_bridge) {
        let split = members.partition_point(|(mb, _)| usize::from(*mb) == i);
        let (these, rest) = members.split_at(split);
        members = rest;
        // The port list is collected only where it is not the running
        // entry's: no allocation for an untouched bridge.
        let mine = || -> Vec<PortNo> { these.iter().map(|(_, n)| *n).collect() };
        let kept = prev_b.and_then(|k| {
            let c = &prev.config.bridges[k];
            let e = prev
                .snapshot
                .bridges
                .get(k)
                .filter(|e| Shared::same(c, b) || *e.name == *b.name)?;
            Some((c, e))
        });
        let same_ports =
            kept.is_some_and(|(_, e)| e.ports.iter().copied().eq(these.iter().map(|(_, n)| *n)));
        let same = same_ports
            && kept
                .is_some_and(|(c, e)| c == b && same_members(&e.ports, &e.ports, &layout.renamed));
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
                match compile_flows(b, &mine(), kept.map(|(_, e)| e), generation) {
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
        let (name, ports) = match kept {
            Some((_, e)) if same_ports => (Arc::clone(&e.name), Arc::clone(&e.ports)),
            Some((_, e)) => (Arc::clone(&e.name), Arc::from(mine())),
            None => (Arc::from(b.name.as_str()), Arc::from(mine())),
        };
        let aging_ns = b.fdb_aging_secs.saturating_mul(1_000_000_000);
        let fdb = match kept {
            Some((_, e)) => Arc::clone(&e.fdb),
            None => {
                unfilled.push(i);
                Arc::clone(&no_fdb)
            }
        };
        bridges.push(BridgeEntry {
            name,
            ports,
            fdb,
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
    (bridges, unfilled)
}

/// The config's static FDB entries, by bridge, with their destinations;
/// a bridge given more than its FDB holds is an error.
fn static_entries(
    config: &Config,
    layout: &Layout,
    tunnels: &TunnelTable,
    errs: &mut Vec<ConfigError>,
) -> Vec<(String, u16, MacAddr, FdbDest)> {
    let mut statics = Vec::new();
    // By bridge number: errors come in config order, and only bridges
    // with entries are looked at.
    let mut per_bridge: BTreeMap<u16, usize> = BTreeMap::new();
    for f in &config.fdb {
        let Some(n) = layout.number(&f.port) else {
            continue;
        };
        let tunnel = match layout.ports.get(usize::from(n)).map(|p| p.kind) {
            Some(PortKind::Tunnel(t)) => tunnels.get(t),
            _ => None,
        };
        let remote = match (f.remote, tunnel) {
            (Some(r), Some(tp)) => tp.remote_index(ip_to_u128(r)).unwrap_or(NO_REMOTE),
            (None, Some(_)) => 0,
            _ => NO_REMOTE,
        };
        if let Some(b) = layout.bridge(&f.bridge) {
            *per_bridge.entry(b).or_default() += 1;
        }
        statics.push((f.bridge.clone(), f.vlan, f.mac, FdbDest { port: n, remote }));
    }
    for (i, n) in per_bridge {
        let b = &config.bridges[usize::from(i)];
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
    statics
}

/// Each port's firewall and policer slots, by port name.
type PolicySlots<'a> = (
    &'a Arc<str>,
    [Option<u16>; 2],
    [Option<u16>; 2],
    [Option<u16>; 2],
    bool,
);

fn policy_slots(ports: &[PortEntry]) -> impl Iterator<Item = PolicySlots<'_>> + '_ {
    // The Arc, not the str: equal names shared with the running snapshot
    // compare by pointer.
    ports
        .iter()
        .filter(|e| e.kind != PortKind::Absent)
        .map(|e| (&e.name, e.firewall, e.policer, e.mirror, e.mirror_output))
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
pub(super) fn by_name<T>(items: &[T], name: fn(&T) -> &String) -> HashMap<&str, &T> {
    items.iter().map(|x| (name(x).as_str(), x)).collect()
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
pub(super) fn addr_table(
    looked_up: Option<&LookedUpAddrs>,
    configured: impl Iterator<Item = (u16, IpAddr, MacAddr)>,
) -> AddrTable {
    let looked_up = looked_up
        .into_iter()
        .flatten()
        .map(|(&(vlan, ip), &(mac, _))| (vlan, xvs_types::u128_to_ip(ip), mac));
    AddrTable::build(looked_up.chain(configured))
}

/// Do port lists `a` (of the running snapshot) and `b` (of the new one)
/// hold the same ports: the same numbers, none of them `renamed`?
pub(super) fn same_members(a: &[PortNo], b: &[PortNo], renamed: &FxHashSet<PortNo>) -> bool {
    a == b && (renamed.is_empty() || !a.iter().any(|n| renamed.contains(n)))
}

/// The port numbers whose port is another in `new` than in `prev` (another
/// name, or there in one only): one pass over both tables side by side,
/// comparing names by pointer first, where checking each bridge's members
/// would jump around both tables.
fn renamed_ports(prev: &[PortEntry], new: &[PortEntry]) -> FxHashSet<PortNo> {
    let absent = PortEntry::absent();
    (0..prev.len().max(new.len()))
        .filter(|&n| {
            let a = prev.get(n).unwrap_or(&absent);
            let b = new.get(n).unwrap_or(&absent);
            match (a.kind == PortKind::Absent, b.kind == PortKind::Absent) {
                (true, true) => false,
                (false, false) => a.name != b.name,
                _ => true,
            }
        })
        .map(|n| n as PortNo)
        .collect()
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
