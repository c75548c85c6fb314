//! Compilation: a validated config, against the running one and its
//! snapshot, into a new [`Snapshot`] (FDB views and templates still to be
//! filled by the control plane) plus the static FDB entries to install.
//! Every problem the lower layers find is reported; a part whose inputs did
//! not change is taken from the running snapshot, not built again.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use super::{ApplyWork, LookedUpAddrs};
use crate::policy::firewall::{AclRule, Firewall};
use crate::policy::port_security::PortSecurity;
use crate::policy::qos::PolicerConfig;
use crate::snapshot::{BridgeEntry, PortEntry, PortKind, PortVlan, Snapshot};
use crate::stats::DropReason;
use crate::tables::addr::AddrTable;
use crate::tables::fdb::{Fdb, FdbConfig, FdbDest};
use crate::tables::flow::{FlowRule, FlowTable};
use crate::tunnel::{
    RemoteIdx, Template, TunnelPort, TunnelTable, TunnelTableError, MAX_REMOTES, NO_REMOTE,
};
use xvs_config::{
    BridgeConfig, Config, ConfigError, ConfigErrors, Direction, TunnelConfig, VlanMode,
};
use xvs_types::{ip_to_u128, MacAddr, PortNo};

/// A config compiled into a snapshot (FDB views and templates still to be
/// filled), plus the static FDB entries to install.
pub(super) struct Compiled {
    pub(super) snapshot: Snapshot,
    pub(super) statics: Vec<(String, u16, MacAddr, FdbDest)>,
    bridge_ports: HashMap<String, Vec<PortNo>>,
    /// The dynamic remotes the snapshot's tunnel ports were built with.
    pub(super) dyn_remotes: HashMap<String, Vec<IpAddr>>,
}

impl Compiled {
    pub(super) fn bridge_has_port(&self, bridge: &str, port: PortNo) -> bool {
        self.bridge_ports
            .get(bridge)
            .is_some_and(|v| v.contains(&port))
    }
}

pub(super) fn fdb_config(b: &BridgeConfig) -> FdbConfig {
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
pub(super) struct Previous<'a> {
    pub(super) config: &'a Config,
    pub(super) snapshot: &'a Snapshot,
    pub(super) dyn_remotes: &'a HashMap<String, Vec<IpAddr>>,
    pub(super) lookup_addrs: &'a HashMap<String, LookedUpAddrs>,
    /// Lookup changed addresses since the address tables were built:
    /// none of them may be taken as they are.
    pub(super) addrs_dirty: bool,
}

/// Builds tunnel `cfg`'s template from `local` to a remote.
pub(super) type TemplateFn<'a> =
    dyn FnMut(&TunnelConfig, IpAddr, IpAddr) -> Result<Template, DropReason> + 'a;

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
    let mut layout = Layout::of(config);
    let dyn_remotes = dynamic_remotes(config, prev.dyn_remotes, &mut errs);
    let tunnels = tunnel_ports(config, prev, &mut layout, &dyn_remotes, template, work);
    let tunnels = match tunnels {
        Ok(t) => t,
        Err(e) => {
            errs.push(ConfigError {
                object: "tunnels".into(),
                message: e.to_string(),
            });
            TunnelTable::default()
        }
    };
    let firewalls = firewalls(config, &mut layout, &mut errs);
    let policers = policers(config, &mut layout, &mut errs);
    let bridges = bridges(config, prev, &layout, generation, work, &mut errs);
    let statics = static_entries(config, &layout, &tunnels, &mut errs);

    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    let Layout {
        numbers,
        ports,
        bridge_ports,
        ..
    } = layout;
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

/// The ports of the config being compiled, as far as they are built: their
/// numbers, their entries (filled in by each part in turn) and each
/// bridge's members.
struct Layout<'c> {
    numbers: BTreeMap<&'c str, PortNo>,
    bridge_no: HashMap<&'c str, u16>,
    ports: Vec<PortEntry>,
    bridge_ports: HashMap<String, Vec<PortNo>>,
}

impl<'c> Layout<'c> {
    /// The uplink's and the local ports' entries; tunnel ports come later.
    fn of(config: &'c Config) -> Layout<'c> {
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
        Layout {
            numbers,
            bridge_no,
            ports,
            bridge_ports,
        }
    }
}

/// Each tunnel's dynamic remotes: those the tunnel had (learned ones among
/// them, the tick drops the unused), then VTEPs static entries name beyond
/// the configured remotes.
fn dynamic_remotes(
    config: &Config,
    prev_dyn: &HashMap<String, Vec<IpAddr>>,
    errs: &mut Vec<ConfigError>,
) -> HashMap<String, Vec<IpAddr>> {
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
    dyn_remotes
}

/// The tunnel ports, each taken from `prev` or built with `template`;
/// their entries and bridge memberships go into `layout`.
fn tunnel_ports(
    config: &Config,
    prev: &Previous,
    layout: &mut Layout,
    dyn_remotes: &HashMap<String, Vec<IpAddr>>,
    template: &mut TemplateFn,
    work: &mut ApplyWork,
) -> Result<TunnelTable, TunnelTableError> {
    let prev_tunnels = by_name(&prev.config.tunnels, |t| &t.name);
    let prev_tunnel_ports: HashMap<&str, &TunnelPort> = prev
        .snapshot
        .tunnels
        .ports()
        .iter()
        .map(|tp| (tp.name.as_str(), tp))
        .collect();
    let mut tunnel_ports = Vec::new();
    for t in &config.tunnels {
        let n = layout.numbers[t.name.as_str()];
        let b = layout.bridge_no[t.bridge.as_str()];
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
        layout.ports[usize::from(n)] = PortEntry {
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
        layout
            .bridge_ports
            .entry(t.bridge.clone())
            .or_default()
            .push(n);
    }
    TunnelTable::build(tunnel_ports)
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
                if let Some(&n) = layout.numbers.get(a.port.as_str()) {
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
                if let Some(&n) = layout.numbers.get(q.port.as_str()) {
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
                if let Some(&n) = layout.numbers.get(p.name.as_str()) {
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

/// Each bridge's entry (its FDB view still to be filled): flow and address
/// tables taken from `prev` when their inputs are the same, else built.
fn bridges(
    config: &Config,
    prev: &Previous,
    layout: &Layout,
    generation: u64,
    work: &mut ApplyWork,
    errs: &mut Vec<ConfigError>,
) -> Vec<BridgeEntry> {
    let prev_bridges = bridges_by_name(prev.config, prev.snapshot);
    let addrs_of = addrs_by_bridge(config);
    let prev_addrs_of = addrs_by_bridge(prev.config);
    let mut bridges = Vec::new();
    for b in &config.bridges {
        let mine = layout
            .bridge_ports
            .get(&b.name)
            .cloned()
            .unwrap_or_default();
        let kept = prev_bridges.get(b.name.as_str()).copied();
        let same = kept.is_some_and(|(c, e)| {
            c == b && same_members(prev.snapshot, &e.ports, &mine, &layout.ports)
        });
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
    bridges
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
    let mut per_bridge: HashMap<&str, usize> = HashMap::new();
    for f in &config.fdb {
        let Some(&n) = layout.numbers.get(f.port.as_str()) else {
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
    statics
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
pub(super) fn by_name<T>(items: &[T], name: fn(&T) -> &String) -> HashMap<&str, &T> {
    items.iter().map(|x| (name(x).as_str(), x)).collect()
}

/// Each bridge of `config` with its entry in `snap`, compiled from it.
pub(super) fn bridges_by_name<'a>(
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

/// Do ports `a` (of `a_snap`) and `b` (numbered as in `b_ports`) hold the
/// same ports: the same numbers, each with the same name?
pub(super) fn same_members(
    a_snap: &Snapshot,
    a: &[PortNo],
    b: &[PortNo],
    b_ports: &[PortEntry],
) -> bool {
    a == b
        && a.iter().all(|n| {
            a_snap.port(*n).map(|p| p.name.as_str())
                == b_ports.get(usize::from(*n)).map(|p| p.name.as_str())
        })
}

#[cfg(test)]
mod tests {
    use crate::testkit;
    use xvs_config::{AclConfig, Direction};

    #[test]
    fn every_problem_is_reported_in_table_order_and_nothing_changes() {
        let mut ctl = testkit::testbed();
        let before = ctl.snapshot();
        let mut config = testkit::config();
        config.bridges[0].flows = vec!["priority=1,no_such_field=1,actions=drop".into()];
        config.acls = vec![AclConfig {
            port: "vm1".into(),
            dir: Direction::In,
            rules: vec!["not a rule".into()],
        }];
        let errs = ctl
            .apply(config)
            .expect_err("a bad flow and a bad ACL rule");
        let objects: Vec<&str> = errs.0.iter().map(|e| e.object.as_str()).collect();
        // Policies are compiled before bridges: the ACL comes first.
        assert_eq!(objects, ["acl \"vm1\" in rule 1", "bridge \"br0\" flow 1"]);
        assert!(std::sync::Arc::ptr_eq(&ctl.snapshot(), &before));
        assert_eq!(*ctl.config(), testkit::config());
    }

    #[test]
    fn a_changed_tunnel_is_built_and_the_others_are_taken() {
        let mut ctl = testkit::testbed();
        let mut config = testkit::config();
        config.tunnels[2]
            .remotes
            .push("2001:db8::3".parse().unwrap());
        ctl.apply(config).expect("one more remote");
        let work = ctl.last_apply();
        // vx6 alone, with its two remotes' templates; no bridge's tables
        // (same config, same members), and only vx6's bridge's FDB, whose
        // remote list was rebuilt.
        assert_eq!(work.tunnels_compiled, 1);
        assert_eq!(work.templates_built, 2);
        assert_eq!(work.bridge_tables_built, 0);
        assert_eq!(work.fdbs_rederived, 1);
        assert_eq!(ctl.snapshot().tunnels.ports()[2].remotes.len(), 2);
    }
}
