//! Whole-config validation: [`Config::validate`] checks, one kind of
//! object at a time and always in this order, the bridges, the one
//! namespace of ports, tunnels and the uplink, the uplink, ports, tunnels,
//! static FDB entries, ACLs, policers, routes, bridge lookups, overlay
//! addresses and static neighbors, and returns every problem at once as
//! [`ConfigErrors`] (messages and their order are part of the interface:
//! xvsctl shows them and tests assert them). [`ValidConfig`]
//! (`incremental.rs`) is a config it accepted.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

// Fx, not SipHash: the sets hold every object's name, built on every
// transaction, and the input is the operator's own config.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::checks::{check_name, is_unicast_ip, is_unicast_mac, remote_vtep_by, vlan_ok};
use super::incremental::ValidConfig;
use super::{
    AclConfig, BridgeConfig, Config, LookupConfig, LookupProviderConfig, NeighborConfig,
    OverlayAddrConfig, PortConfig, QosConfig, RouteConfig, StaticFdbConfig, TunnelConfig,
    TunnelKind, VlanMode, MAX_VNI,
};
use xvs_types::{MacAddr, PortNo};

/// One problem found by [`Config::validate`], naming the object it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {message}")]
pub struct ConfigError {
    /// e.g. `tunnel "vx1"` or `port "vm1"`.
    pub object: String,
    pub message: String,
}

impl ConfigError {
    fn new(object: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            object: object.into(),
            message: message.into(),
        }
    }
}

/// All problems of a config, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s):", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ValidConfig {
    /// Sets the uplink's MAC (the daemon reads it from the kernel when
    /// the config has none), refused as [`Config::validate`] would.
    pub fn set_uplink_mac(&mut self, mac: MacAddr) -> Result<(), ConfigErrors> {
        // The index of a revalidation does not hold the MAC.
        let Some(u) = self.config_mut().uplink.as_mut() else {
            return Ok(());
        };
        if mac.is_multicast() || mac.is_zero() {
            return Err(ConfigErrors(vec![ConfigError::new(
                format!("uplink {:?}", u.iface),
                format!("MAC {mac} is not a unicast address"),
            )]));
        }
        u.mac = Some(mac);
        Ok(())
    }
}

/// Where a check reports a problem: the object it is about (formatted only
/// when there is one) and what is wrong with it.
pub(super) type Report<'r> = dyn FnMut(String, String) + 'r;

impl Config {
    /// Assigns port numbers and validates: the config the control plane
    /// takes, or every problem.
    pub fn validated(mut self) -> Result<ValidConfig, ConfigErrors> {
        self.assign_port_numbers();
        self.validate()?;
        Ok(ValidConfig::new(self))
    }

    /// Checks everything that can be checked without the kernel and
    /// returns every problem found. Rules that need other modules (flow
    /// syntax, ACL shapes, policer parameters) are checked when the
    /// snapshot is compiled, which reports in the same form.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = Vec::new();
        let e: &mut Report = &mut |o, m| errs.push(ConfigError::new(o, m));

        let bridges = self.check_bridges(e);
        self.check_port_names(e);
        self.check_uplink(e);
        self.check_ports(&bridges, e);
        // This host's VTEP addresses: a remote among them would send the
        // tunnel's traffic to ourselves.
        let own: HashSet<IpAddr> = self
            .uplink
            .iter()
            .flat_map(|u| u.local_ips.iter().copied())
            .chain(self.tunnels.iter().filter_map(|t| t.local))
            .collect();
        self.check_tunnels(&bridges, &own, e);
        self.check_fdb(&bridges, &own, e);
        let ports: HashSet<&str> = self
            .ports
            .iter()
            .map(|p| p.name.as_str())
            .chain(self.tunnels.iter().map(|t| t.name.as_str()))
            .collect();
        self.check_acls(&ports, e);
        self.check_qos(&ports, e);
        self.check_routes(e);
        self.check_lookups(e);
        self.check_addrs(&bridges, e);
        self.check_neighbors(e);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errs))
        }
    }

    /// Bridge names and FDB limits; returns the set of bridge names the
    /// other objects must refer to.
    fn check_bridges(&self, e: &mut Report) -> HashSet<&str> {
        let mut bridges = HashSet::default();
        for b in &self.bridges {
            let dup = !bridges.insert(b.name.as_str());
            check_bridge(b, dup, e);
        }
        bridges
    }

    /// Names and numbers are one namespace across ports, tunnels and the
    /// uplink.
    fn check_port_names(&self, e: &mut Report) {
        let all = self
            .uplink
            .iter()
            .map(|u| (u.iface.as_str(), u.number))
            .chain(self.ports.iter().map(|p| (p.name.as_str(), p.number)))
            .chain(self.tunnels.iter().map(|t| (t.name.as_str(), t.number)));
        let mut names: HashSet<&str> = HashSet::default();
        let mut numbers: BTreeMap<PortNo, &str> = BTreeMap::new();
        for (name, number) in all {
            let name_clash = (!names.insert(name))
                .then(|| self.uplink.as_ref().is_some_and(|u| u.iface == name));
            let number_clash = match number {
                Some(n) if !reserved(n) => numbers.insert(n, name),
                _ => None,
            };
            check_port_name(name, number, name_clash, number_clash, e);
        }
    }

    fn check_uplink(&self, e: &mut Report) {
        let Some(u) = &self.uplink else { return };
        let o = || format!("uplink {:?}", u.iface);
        if u.mtu < 576 {
            e(o(), format!("mtu {} below 576", u.mtu));
        }
        if let Some(m) = u.mac {
            if m.is_multicast() || m.is_zero() {
                e(o(), format!("MAC {m} is not a unicast address"));
            }
        }
        for ip in &u.local_ips {
            if !is_unicast_ip(ip) {
                e(o(), format!("local IP {ip} is not a unicast address"));
            }
        }
    }

    fn check_ports(&self, bridges: &HashSet<&str>, e: &mut Report) {
        for p in &self.ports {
            check_port(p, bridges.contains(p.bridge.as_str()), e);
        }
    }

    /// What holds between tunnels (their bridge, one VNI per bridge, no
    /// two alike on the wire), then each tunnel's own remotes, encapsulation
    /// and VLAN mode.
    fn check_tunnels(&self, bridges: &HashSet<&str>, own: &HashSet<IpAddr>, e: &mut Report) {
        let mut bridge_vni: BTreeMap<&str, (u32, &str)> = BTreeMap::new();
        let mut tunnel_keys: BTreeMap<(TunnelKind, u16, Option<IpAddr>, u32), &str> =
            BTreeMap::new();
        for t in &self.tunnels {
            // One bridge is one L2 domain: bridging two VNIs would leak
            // frames from one virtual network into another.
            let vni_clash = match bridge_vni.get(t.bridge.as_str()) {
                Some(&(vni, other)) => (vni != t.vni).then_some((vni, other)),
                None => {
                    bridge_vni.insert(&t.bridge, (t.vni, &t.name));
                    None
                }
            };
            let wire_clash = tunnel_keys.insert(wire_key(t), &t.name);
            let clash = Clashes {
                vni: vni_clash,
                wire: wire_clash,
            };
            let is_own = |ip: &IpAddr| own.contains(ip);
            self.check_tunnel(t, bridges.contains(t.bridge.as_str()), clash, &is_own, e);
        }
    }

    /// One tunnel: what the whole-config walk found about it (`bridge_known`,
    /// `clash`) and, given which addresses are this host's own, everything
    /// else about it. Reads the uplink for a default local address.
    pub(super) fn check_tunnel(
        &self,
        t: &TunnelConfig,
        bridge_known: bool,
        clash: Clashes,
        is_own: &dyn Fn(&IpAddr) -> bool,
        e: &mut Report,
    ) {
        let o = || format!("tunnel {:?}", t.name);
        if !bridge_known {
            e(o(), format!("unknown bridge {:?}", t.bridge));
        }
        if t.vni > MAX_VNI {
            e(o(), format!("VNI {} out of range 0..={MAX_VNI}", t.vni));
        }
        if let Some((vni, other)) = clash.vni {
            e(
                o(),
                format!(
                    "VNI {} differs from VNI {vni} of tunnel {other:?} in the same bridge {:?}",
                    t.vni, t.bridge
                ),
            );
        }
        if let Some(other) = clash.wire {
            e(
                o(),
                format!(
                    "same type, UDP port, local IP and VNI {} as tunnel {other:?}",
                    t.vni
                ),
            );
        }
        self.check_tunnel_ends(t, is_own, &o, e);
        check_tunnel_encap(t, &o, e);
        check_vlan_mode(&o, &t.vlan, e);
    }

    /// A tunnel's remotes (other VTEPs, or one multicast group) and its
    /// local address (given, or one of the uplink's of the remotes'
    /// family).
    fn check_tunnel_ends(
        &self,
        t: &TunnelConfig,
        is_own: &dyn Fn(&IpAddr) -> bool,
        o: &dyn Fn() -> String,
        e: &mut Report,
    ) {
        if t.remotes.is_empty() {
            e(o(), "at least one remote VTEP is required".into());
        }
        let mut seen = HashSet::default();
        let fam = t.local.map(|l| l.is_ipv4());
        for r in &t.remotes {
            if !seen.insert(r) {
                e(o(), format!("remote {r} listed twice"));
            }
            if r.is_multicast() && t.remotes.len() > 1 {
                e(
                    o(),
                    format!(
                        "remote {r} is a multicast group: a group must be the tunnel's only remote"
                    ),
                );
            } else if !r.is_multicast() {
                if let Err(m) = remote_vtep_by(r, is_own) {
                    e(o(), format!("remote {r} {m}"));
                }
            }
            if fam.is_some_and(|v4| v4 != r.is_ipv4()) {
                e(
                    o(),
                    format!(
                        "remote {r} and local {} differ in family",
                        t.local.unwrap_or(*r)
                    ),
                );
            }
        }
        if t.remotes.len() > usize::from(u16::MAX - 1) {
            e(o(), format!("{} remotes, at most 65534", t.remotes.len()));
        }
        if let Some(l) = t.local {
            if l.is_unspecified() || l.is_multicast() {
                e(o(), format!("local {l} is not a unicast address"));
            }
        } else {
            let v4 = t.remotes.first().is_none_or(|r| r.is_ipv4());
            let has = self
                .uplink
                .as_ref()
                .is_some_and(|u| u.local_ips.iter().any(|a| a.is_ipv4() == v4));
            if !has {
                e(
                    o(),
                    format!(
                        "no local IP: set `local` or give the uplink an {} address",
                        if v4 { "IPv4" } else { "IPv6" }
                    ),
                );
            }
        }
    }

    /// Static MACs: their bridge, their port (in that bridge) and, on a
    /// tunnel port, which remote VTEP they are behind.
    fn check_fdb(&self, bridges: &HashSet<&str>, own: &HashSet<IpAddr>, e: &mut Report) {
        // Fx, not SipHash: the keys are our own config, and a million of
        // them are hashed on every validation.
        let mut fdb_seen: HashSet<_> = HashSet::default();
        // A million static MACs are validated in well under a second: the
        // port is found by hash, and the object's name is only formatted
        // for an entry that has a problem.
        let port_of: HashMap<&str, (&str, Option<TunnelShape>)> = self
            .tunnels
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    (t.bridge.as_str(), Some(TunnelShape::of(t))),
                )
            })
            .chain(
                self.ports
                    .iter()
                    .map(|p| (p.name.as_str(), (p.bridge.as_str(), None))),
            )
            .collect();
        let is_own = |ip: &IpAddr| own.contains(ip);
        for f in &self.fdb {
            let dup = !fdb_seen.insert((&f.bridge, f.vlan, f.mac));
            let port = port_of.get(f.port.as_str()).copied();
            check_fdb_entry(
                f,
                bridges.contains(f.bridge.as_str()),
                dup,
                port,
                &is_own,
                e,
            );
        }
    }

    /// Firewall rule sets: on a known port, one per port and direction.
    fn check_acls(&self, ports: &HashSet<&str>, e: &mut Report) {
        let mut acl_seen = HashSet::default();
        for a in &self.acls {
            let dup = !acl_seen.insert((&a.port, a.dir));
            check_acl(a, ports.contains(a.port.as_str()), dup, e);
        }
    }

    /// Policers: on a known port, one per port and direction.
    fn check_qos(&self, ports: &HashSet<&str>, e: &mut Report) {
        let mut qos_seen = HashSet::default();
        for q in &self.qos {
            let dup = !qos_seen.insert((&q.port, q.dir));
            check_qos(q, ports.contains(q.port.as_str()), dup, e);
        }
    }

    fn check_routes(&self, e: &mut Report) {
        let mut route_seen = HashSet::default();
        for r in &self.routes {
            let dup = !route_seen.insert((r.prefix, r.metric));
            check_route(r, dup, e);
        }
    }

    /// Each bridge's lookup on miss: its hold time, its provider, and that
    /// every VTEP it can answer is reachable by a tunnel port of the bridge.
    fn check_lookups(&self, e: &mut Report) {
        for b in &self.bridges {
            let Some(l) = &b.lookup else { continue };
            let tunnels = || self.tunnels.iter().filter(|t| t.bridge == b.name);
            let has_group = |v: &IpAddr| tunnels().any(|t| t.remotes.contains(v));
            let has_family =
                |v4: bool| tunnels().any(|t| t.remotes.first().is_some_and(|r| r.is_ipv4() == v4));
            check_lookup(b, l, &has_group, &has_family, e);
        }
    }

    /// Overlay addresses (for ARP/ND suppression): unicast, in a known
    /// bridge, one MAC per IP.
    fn check_addrs(&self, bridges: &HashSet<&str>, e: &mut Report) {
        let mut addr_seen: HashMap<(&str, u16, IpAddr), MacAddr> = HashMap::default();
        for a in &self.addrs {
            let clash = match addr_seen.insert((&a.bridge, a.vlan, a.ip), a.mac) {
                Some(m) if m != a.mac => Some(m),
                _ => None,
            };
            check_addr(a, bridges.contains(a.bridge.as_str()), clash, e);
        }
    }

    /// Static underlay neighbors.
    fn check_neighbors(&self, e: &mut Report) {
        let mut neigh_seen = HashSet::default();
        for n in &self.neighbors {
            let dup = !neigh_seen.insert(n.ip);
            check_neighbor(n, dup, e);
        }
    }
}

// The checks of one object. The whole-config walk and the incremental one
// (`incremental.rs`) both call these, so a message is written once; what
// depends on other objects comes in as an argument: the whole walk learns
// it from its sets, the incremental one from its index (and passes "no
// clash", checking those against the index itself).

/// What the whole-config walk found a tunnel clashing with: the VNI and
/// name of the bridge's first tunnel when they differ, the tunnel with the
/// same wire key.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Clashes<'a> {
    pub vni: Option<(u32, &'a str)>,
    pub wire: Option<&'a str>,
}

/// What a static FDB entry's checks need of the tunnel it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TunnelShape {
    /// Family of the first remote (none without remotes).
    pub first_v4: Option<bool>,
    /// Its only remote is a multicast group.
    pub group: bool,
    /// More than one remote.
    pub several: bool,
}

impl TunnelShape {
    pub(super) fn of(t: &TunnelConfig) -> TunnelShape {
        TunnelShape {
            first_v4: t.remotes.first().map(|r| r.is_ipv4()),
            group: t.group().is_some(),
            several: t.remotes.len() > 1,
        }
    }
}

/// The key no two tunnels may share: what tells their packets apart on
/// the wire.
pub(super) type WireKey = (TunnelKind, u16, Option<IpAddr>, u32);

pub(super) fn wire_key(t: &TunnelConfig) -> WireKey {
    (t.kind, t.udp_port(), t.local, t.vni)
}

/// Port numbers no port may have.
pub(super) fn reserved(n: PortNo) -> bool {
    n == 0 || n == PortNo::MAX
}

/// A bridge's own fields; `dup`: another bridge has its name.
pub(super) fn check_bridge(b: &BridgeConfig, dup: bool, e: &mut Report) {
    let o = || format!("bridge {:?}", b.name);
    if let Err(m) = check_name(&b.name) {
        e(o(), m);
    }
    if dup {
        e(o(), "defined twice".into());
    }
    if b.fdb_max_entries == 0 {
        e(o(), "fdb_max_entries must be at least 1".into());
    }
    if b.fdb_aging_secs == 0 {
        e(o(), "fdb_aging_secs must be at least 1".into());
    }
}

/// A name and number of the ports' namespace. `name_clash`: the name is
/// taken (true: by the uplink); `number_clash`: who has the number.
pub(super) fn check_port_name(
    name: &str,
    number: Option<PortNo>,
    name_clash: Option<bool>,
    number_clash: Option<&str>,
    e: &mut Report,
) {
    let o = || format!("port {name:?}");
    if let Err(m) = check_name(name) {
        e(o(), m);
    }
    if let Some(uplink) = name_clash {
        e(
            o(),
            if uplink {
                "is the uplink interface: it cannot also be a port or a tunnel".into()
            } else {
                "name already used".into()
            },
        );
    }
    match number {
        Some(n) if reserved(n) => {
            e(o(), format!("port number {n} is reserved"));
        }
        Some(n) => {
            if let Some(other) = number_clash {
                e(o(), format!("port number {n} already used by {other:?}"));
            }
        }
        None => {}
    }
}

pub(super) fn check_port(p: &PortConfig, bridge_known: bool, e: &mut Report) {
    let o = || format!("port {:?}", p.name);
    if !bridge_known {
        e(o(), format!("unknown bridge {:?}", p.bridge));
    }
    check_vlan_mode(&o, &p.vlan, e);
    if p.mtu < 68 {
        e(o(), format!("mtu {} below 68", p.mtu));
    }
    check_port_security(&o, p, e);
    if p.storm_pps == Some(0) {
        e(
            o(),
            "storm_pps 0 would drop every broadcast (ARP included): at least 1".into(),
        );
    }
    if p.max_macs == Some(0) {
        e(
            o(),
            "max_macs 0 would learn nothing: at least 1 (a bridge without learning is `learning = false`)"
                .into(),
        );
    }
}

/// A static MAC; `port`: the bridge of the port it names and, for a
/// tunnel port, the tunnel's shape (none: no such port).
pub(super) fn check_fdb_entry(
    f: &StaticFdbConfig,
    bridge_known: bool,
    dup: bool,
    port: Option<(&str, Option<TunnelShape>)>,
    is_own: &dyn Fn(&IpAddr) -> bool,
    e: &mut Report,
) {
    let o = || format!("fdb {} vlan {} in bridge {:?}", f.mac, f.vlan, f.bridge);
    if !bridge_known {
        e(o(), format!("unknown bridge {:?}", f.bridge));
    }
    if !is_unicast_mac(&f.mac) {
        e(o(), "not a unicast MAC".into());
    }
    if !vlan_ok(f.vlan) {
        e(o(), format!("VLAN {} out of range 0..=4094", f.vlan));
    }
    if dup {
        e(o(), "defined twice".into());
    }
    match port {
        None => e(o(), format!("unknown port {:?}", f.port)),
        Some((b, tun)) => {
            if b != f.bridge {
                e(o(), format!("port {:?} is in bridge {b:?}", f.port));
            }
            match (tun, f.remote) {
                // Any unicast VTEP: one beyond the configured remotes
                // becomes a dynamic (never flooded) remote.
                (Some(_), Some(r)) if remote_vtep_by(&r, is_own).is_err() => e(
                    o(),
                    format!(
                        "remote {r} {}",
                        remote_vtep_by(&r, is_own).err().unwrap_or_default()
                    ),
                ),
                (Some(t), Some(r)) if t.first_v4.is_some_and(|v4| v4 != r.is_ipv4()) => e(
                    o(),
                    format!("remote {r} and tunnel {:?} differ in family", f.port),
                ),
                (Some(t), None) if t.group => e(
                    o(),
                    format!(
                        "tunnel {:?} is a multicast tunnel: say which VTEP with `remote`",
                        f.port
                    ),
                ),
                (Some(t), None) if t.several => e(
                    o(),
                    format!(
                        "tunnel {:?} has several remotes: say which with `remote`",
                        f.port
                    ),
                ),
                (None, Some(r)) => e(o(), format!("remote {r} given for a local port")),
                _ => {}
            }
        }
    }
}

pub(super) fn check_acl(a: &AclConfig, port_known: bool, dup: bool, e: &mut Report) {
    let o = || format!("acl {:?} {}", a.port, a.dir);
    if !port_known {
        e(o(), format!("unknown port {:?}", a.port));
    }
    if dup {
        e(o(), "rules for this port and direction given twice".into());
    }
}

pub(super) fn check_qos(q: &QosConfig, port_known: bool, dup: bool, e: &mut Report) {
    let o = || format!("qos {:?} {}", q.port, q.dir);
    if !port_known {
        e(o(), format!("unknown port {:?}", q.port));
    }
    if dup {
        e(
            o(),
            "policer for this port and direction given twice".into(),
        );
    }
}

pub(super) fn check_route(r: &RouteConfig, dup: bool, e: &mut Report) {
    let o = || format!("route {}", r.prefix);
    if let Some(g) = r.gateway {
        if g.is_ipv4() != r.prefix.is_ipv4() {
            e(o(), format!("gateway {g} is not of the prefix's family"));
        }
    }
    if r.dev.is_empty() {
        e(o(), "no output interface (dev)".into());
    } else if let Err(m) = check_name(&r.dev) {
        e(o(), format!("dev {:?}: {m}", r.dev));
    }
    if dup {
        e(o(), format!("given twice with metric {}", r.metric));
    }
}

/// Whether a bridge whose tunnels are described by `has_group` (a tunnel
/// of the bridge lists this group) and `has_family` (a tunnel's first
/// remote is of this family, true for IPv4) can reach VTEP `v`: a group
/// must be one of the bridge's tunnel groups; a unicast VTEP may be any
/// (it becomes a dynamic remote of the bridge's tunnel port of its
/// family), but there must be one.
pub(super) fn lookup_reaches(
    v: &IpAddr,
    has_group: &dyn Fn(&IpAddr) -> bool,
    has_family: &dyn Fn(bool) -> bool,
) -> bool {
    if v.is_multicast() {
        has_group(v)
    } else {
        is_unicast_ip(v) && has_family(v.is_ipv4())
    }
}

/// A bridge's lookup on miss: its hold time, its provider, and that every
/// VTEP it can answer is reachable by a tunnel port of the bridge.
pub(super) fn check_lookup(
    b: &BridgeConfig,
    l: &LookupConfig,
    has_group: &dyn Fn(&IpAddr) -> bool,
    has_family: &dyn Fn(bool) -> bool,
    e: &mut Report,
) {
    let o = || format!("bridge {:?} lookup", b.name);
    if !(1..=1000).contains(&l.hold_ms) {
        e(o(), format!("hold_ms {} out of range 1..=1000", l.hold_ms));
    }
    if let LookupProviderConfig::Multicast { group } = &l.provider {
        if !group.is_multicast() {
            e(o(), format!("group {group} is not a multicast address"));
        }
    }
    if let LookupProviderConfig::Static { entries } = &l.provider {
        for x in entries {
            if x.mac.is_multicast() || x.mac.is_zero() {
                e(o(), format!("{} is not a unicast MAC", x.mac));
            }
            if !vlan_ok(x.vlan) {
                e(o(), format!("VLAN {} out of range 0..=4094", x.vlan));
            }
        }
    }
    for v in l.vteps() {
        let ok = lookup_reaches(&v, has_group, has_family);
        if !ok && v.is_multicast() {
            e(
                o(),
                format!("group {v} is not the group of a tunnel port of the bridge"),
            );
        } else if !ok {
            e(
                o(),
                format!("{v}: the bridge has no tunnel port to reach this VTEP by"),
            );
        }
    }
}

/// An overlay address; `clash`: the other MAC the same address was given.
pub(super) fn check_addr(
    a: &OverlayAddrConfig,
    bridge_known: bool,
    clash: Option<MacAddr>,
    e: &mut Report,
) {
    let o = || format!("address {} vlan {} in bridge {:?}", a.ip, a.vlan, a.bridge);
    if !bridge_known {
        e(o(), format!("unknown bridge {:?}", a.bridge));
    }
    if !is_unicast_mac(&a.mac) {
        e(o(), format!("{} is not a unicast MAC", a.mac));
    }
    if a.ip.is_unspecified() || a.ip.is_multicast() {
        e(o(), "not a unicast address".into());
    }
    if !vlan_ok(a.vlan) {
        e(o(), format!("VLAN {} out of range 0..=4094", a.vlan));
    }
    if let Some(m) = clash {
        e(o(), format!("given twice: at {m} and at {}", a.mac));
    }
}

pub(super) fn check_neighbor(n: &NeighborConfig, dup: bool, e: &mut Report) {
    let o = || format!("neighbor {}", n.ip);
    if n.mac.is_zero() || n.mac.is_multicast() {
        e(o(), format!("{} is not a unicast MAC", n.mac));
    }
    if n.ip.is_unspecified() || n.ip.is_multicast() {
        e(o(), "not a unicast address".into());
    }
    if dup {
        e(o(), "given twice".into());
    }
}

/// A tunnel's encapsulation: UDP port, TTL, source port range and Geneve
/// options that fit the header.
fn check_tunnel_encap(t: &TunnelConfig, o: &dyn Fn() -> String, e: &mut Report) {
    if t.udp_port() == 0 {
        e(o(), "UDP port 0".into());
    }
    if t.ttl == 0 {
        e(o(), "TTL 0".into());
    }
    let (lo, hi) = t.src_port_range;
    if lo == 0 || lo > hi {
        e(
            o(),
            format!("source port range {lo}-{hi} is empty or starts at 0"),
        );
    }
    if t.kind == TunnelKind::Vxlan && !t.geneve_opts.is_empty() {
        e(o(), "Geneve options on a VXLAN tunnel".into());
    }
    let mut optlen = 0;
    for opt in &t.geneve_opts {
        if opt.data.len() % 4 != 0 || opt.data.len() > 124 {
            e(
                o(),
                format!(
                    "Geneve option {:#06x}:{:#04x}: data length {} is not a multiple of 4 up to 124",
                    opt.class,
                    opt.typ,
                    opt.data.len()
                ),
            );
        }
        optlen += 4 + opt.data.len();
    }
    if optlen > 252 {
        e(
            o(),
            format!("Geneve options take {optlen} bytes, at most 252"),
        );
    }
}

/// Port security lists: unicast addresses, few enough to check per frame,
/// IPs only beside MACs.
fn check_port_security(o: &dyn Fn() -> String, p: &PortConfig, e: &mut Report) {
    use crate::checks::MAX_ADDRS;
    for m in &p.allowed_macs {
        if m.is_multicast() || m.is_zero() {
            e(o(), format!("allowed MAC {m} is not a unicast address"));
        }
    }
    for ip in &p.allowed_ips {
        if !is_unicast_ip(ip) {
            e(o(), format!("allowed IP {ip} is not a unicast address"));
        }
    }
    if p.allowed_macs.len() > MAX_ADDRS || p.allowed_ips.len() > MAX_ADDRS {
        e(
            o(),
            format!(
                "{} allowed MACs and {} allowed IPs: at most {MAX_ADDRS} of each",
                p.allowed_macs.len(),
                p.allowed_ips.len()
            ),
        );
    }
    if p.allowed_macs.is_empty() && !p.allowed_ips.is_empty() {
        e(
            o(),
            "allowed_ips needs allowed_macs: port security starts with the MACs".into(),
        );
    }
}

fn check_vlan_mode(o: &dyn Fn() -> String, m: &VlanMode, e: &mut Report) {
    match m {
        VlanMode::Access { tag } => {
            if !vlan_ok(*tag) {
                e(o(), format!("VLAN tag {tag} out of range 0..=4094"));
            }
        }
        VlanMode::Trunk { trunks, native } => {
            for v in trunks.iter().chain(native.iter()) {
                if *v == 0 || !vlan_ok(*v) {
                    e(o(), format!("VLAN {v} out of range 1..=4094"));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
