//! Whole-config validation: [`Config::validate`] checks, one kind of
//! object at a time and always in this order, the bridges, the one
//! namespace of ports, tunnels and the uplink, the uplink, ports, tunnels,
//! static FDB entries, ACLs, policers, routes, bridge lookups, overlay
//! addresses and static neighbors, and returns every problem at once as
//! [`ConfigErrors`] (messages and their order are part of the interface:
//! xvsctl shows them and tests assert them). [`ValidConfig`] is a config
//! it accepted.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

// Fx, not SipHash: the sets hold every object's name, built on every
// transaction, and the input is the operator's own config.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::checks::{check_name, is_unicast_ip, is_unicast_mac, remote_vtep, vlan_ok};
use super::{
    Config, LookupProviderConfig, PortConfig, TunnelConfig, TunnelKind, VlanMode, MAX_VNI,
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

/// A config [`Config::validate`] accepted, its port numbers assigned: what
/// the control plane compiles. Only [`Config::validated`] makes one, so a
/// config is validated once on its way from a transaction to a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidConfig(Config);

impl ValidConfig {
    pub fn config(&self) -> &Config {
        &self.0
    }

    pub fn into_config(self) -> Config {
        self.0
    }

    /// Sets the uplink's MAC (the daemon reads it from the kernel when
    /// the config has none), refused as [`Config::validate`] would.
    pub fn set_uplink_mac(&mut self, mac: MacAddr) -> Result<(), ConfigErrors> {
        let Some(u) = self.0.uplink.as_mut() else {
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
type Report<'r> = dyn FnMut(String, String) + 'r;

impl Config {
    /// Assigns port numbers and validates: the config the control plane
    /// takes, or every problem.
    pub fn validated(mut self) -> Result<ValidConfig, ConfigErrors> {
        self.assign_port_numbers();
        self.validate()?;
        Ok(ValidConfig(self))
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
            let o = || format!("bridge {:?}", b.name);
            if let Err(m) = check_name(&b.name) {
                e(o(), m);
            }
            if !bridges.insert(b.name.as_str()) {
                e(o(), "defined twice".into());
            }
            if b.fdb_max_entries == 0 {
                e(o(), "fdb_max_entries must be at least 1".into());
            }
            if b.fdb_aging_secs == 0 {
                e(o(), "fdb_aging_secs must be at least 1".into());
            }
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
            let o = || format!("port {name:?}");
            if let Err(m) = check_name(name) {
                e(o(), m);
            }
            if !names.insert(name) {
                let uplink = self.uplink.as_ref().is_some_and(|u| u.iface == name);
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
                Some(n) if n == 0 || n == PortNo::MAX => {
                    e(o(), format!("port number {n} is reserved"));
                }
                Some(n) => {
                    if let Some(other) = numbers.insert(n, name) {
                        e(o(), format!("port number {n} already used by {other:?}"));
                    }
                }
                None => {}
            }
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
            let o = || format!("port {:?}", p.name);
            if !bridges.contains(p.bridge.as_str()) {
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
    }

    /// What holds between tunnels (their bridge, one VNI per bridge, no
    /// two alike on the wire), then each tunnel's own remotes, encapsulation
    /// and VLAN mode.
    fn check_tunnels(&self, bridges: &HashSet<&str>, own: &HashSet<IpAddr>, e: &mut Report) {
        let mut bridge_vni: BTreeMap<&str, (u32, &str)> = BTreeMap::new();
        let mut tunnel_keys: BTreeMap<(TunnelKind, u16, Option<IpAddr>, u32), &str> =
            BTreeMap::new();
        for t in &self.tunnels {
            let o = || format!("tunnel {:?}", t.name);
            if !bridges.contains(t.bridge.as_str()) {
                e(o(), format!("unknown bridge {:?}", t.bridge));
            }
            if t.vni > MAX_VNI {
                e(o(), format!("VNI {} out of range 0..={MAX_VNI}", t.vni));
            }
            // One bridge is one L2 domain: bridging two VNIs would leak
            // frames from one virtual network into another.
            if let Some((vni, other)) = bridge_vni.get(t.bridge.as_str()) {
                if *vni != t.vni {
                    e(
                        o(),
                        format!(
                            "VNI {} differs from VNI {vni} of tunnel {other:?} in the same bridge {:?}",
                            t.vni, t.bridge
                        ),
                    );
                }
            } else {
                bridge_vni.insert(&t.bridge, (t.vni, &t.name));
            }
            if let Some(other) = tunnel_keys.insert((t.kind, t.udp_port(), t.local, t.vni), &t.name)
            {
                e(
                    o(),
                    format!(
                        "same type, UDP port, local IP and VNI {} as tunnel {other:?}",
                        t.vni
                    ),
                );
            }
            self.check_tunnel_ends(t, own, &o, e);
            check_tunnel_encap(t, &o, e);
            check_vlan_mode(&o, &t.vlan, e);
        }
    }

    /// A tunnel's remotes (other VTEPs, or one multicast group) and its
    /// local address (given, or one of the uplink's of the remotes'
    /// family).
    fn check_tunnel_ends(
        &self,
        t: &TunnelConfig,
        own: &HashSet<IpAddr>,
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
                if let Err(m) = remote_vtep(r, own) {
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
        let port_of: HashMap<&str, (&String, Option<&TunnelConfig>)> = self
            .tunnels
            .iter()
            .map(|t| (t.name.as_str(), (&t.bridge, Some(&**t))))
            .chain(
                self.ports
                    .iter()
                    .map(|p| (p.name.as_str(), (&p.bridge, None))),
            )
            .collect();
        for f in &self.fdb {
            let o = || format!("fdb {} vlan {} in bridge {:?}", f.mac, f.vlan, f.bridge);
            if !bridges.contains(f.bridge.as_str()) {
                e(o(), format!("unknown bridge {:?}", f.bridge));
            }
            if !is_unicast_mac(&f.mac) {
                e(o(), "not a unicast MAC".into());
            }
            if !vlan_ok(f.vlan) {
                e(o(), format!("VLAN {} out of range 0..=4094", f.vlan));
            }
            if !fdb_seen.insert((&f.bridge, f.vlan, f.mac)) {
                e(o(), "defined twice".into());
            }
            match port_of.get(f.port.as_str()).copied() {
                None => e(o(), format!("unknown port {:?}", f.port)),
                Some((b, tun)) => {
                    if *b != f.bridge {
                        e(o(), format!("port {:?} is in bridge {b:?}", f.port));
                    }
                    match (tun, f.remote) {
                        // Any unicast VTEP: one beyond the configured
                        // remotes becomes a dynamic (never flooded) remote.
                        (Some(_), Some(r)) if remote_vtep(&r, own).is_err() => e(
                            o(),
                            format!(
                                "remote {r} {}",
                                remote_vtep(&r, own).err().unwrap_or_default()
                            ),
                        ),
                        (Some(t), Some(r))
                            if t.remotes
                                .first()
                                .is_some_and(|f| f.is_ipv4() != r.is_ipv4()) =>
                        {
                            e(
                                o(),
                                format!("remote {r} and tunnel {:?} differ in family", t.name),
                            )
                        }
                        (Some(t), None) if t.group().is_some() => e(
                            o(),
                            format!(
                                "tunnel {:?} is a multicast tunnel: say which VTEP with `remote`",
                                t.name
                            ),
                        ),
                        (Some(t), None) if t.remotes.len() > 1 => e(
                            o(),
                            format!(
                                "tunnel {:?} has several remotes: say which with `remote`",
                                t.name
                            ),
                        ),
                        (None, Some(r)) => e(o(), format!("remote {r} given for a local port")),
                        _ => {}
                    }
                }
            }
        }
    }

    /// Firewall rule sets: on a known port, one per port and direction.
    fn check_acls(&self, ports: &HashSet<&str>, e: &mut Report) {
        let mut acl_seen = HashSet::default();
        for a in &self.acls {
            let o = || format!("acl {:?} {}", a.port, a.dir);
            if !ports.contains(a.port.as_str()) {
                e(o(), format!("unknown port {:?}", a.port));
            }
            if !acl_seen.insert((&a.port, a.dir)) {
                e(o(), "rules for this port and direction given twice".into());
            }
        }
    }

    /// Policers: on a known port, one per port and direction.
    fn check_qos(&self, ports: &HashSet<&str>, e: &mut Report) {
        let mut qos_seen = HashSet::default();
        for q in &self.qos {
            let o = || format!("qos {:?} {}", q.port, q.dir);
            if !ports.contains(q.port.as_str()) {
                e(o(), format!("unknown port {:?}", q.port));
            }
            if !qos_seen.insert((&q.port, q.dir)) {
                e(
                    o(),
                    "policer for this port and direction given twice".into(),
                );
            }
        }
    }

    fn check_routes(&self, e: &mut Report) {
        let mut route_seen = HashSet::default();
        for r in &self.routes {
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
            if !route_seen.insert((r.prefix, r.metric)) {
                e(o(), format!("given twice with metric {}", r.metric));
            }
        }
    }

    /// Each bridge's lookup on miss: its hold time, its provider, and that
    /// every VTEP it can answer is reachable by a tunnel port of the bridge.
    fn check_lookups(&self, e: &mut Report) {
        for b in &self.bridges {
            let Some(l) = &b.lookup else { continue };
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
            // A group must be one of the bridge's tunnel groups; a unicast
            // VTEP may be any (it becomes a dynamic remote of the bridge's
            // tunnel port of its family), but there must be one.
            for v in l.vteps() {
                let mut tunnels = self.tunnels.iter().filter(|t| t.bridge == b.name);
                let ok = if v.is_multicast() {
                    tunnels.any(|t| t.remotes.contains(&v))
                } else {
                    is_unicast_ip(&v)
                        && tunnels.any(|t| {
                            t.remotes
                                .first()
                                .is_some_and(|r| r.is_ipv4() == v.is_ipv4())
                        })
                };
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
    }

    /// Overlay addresses (for ARP/ND suppression): unicast, in a known
    /// bridge, one MAC per IP.
    fn check_addrs(&self, bridges: &HashSet<&str>, e: &mut Report) {
        let mut addr_seen: HashMap<(&str, u16, IpAddr), MacAddr> = HashMap::default();
        for a in &self.addrs {
            let o = || format!("address {} vlan {} in bridge {:?}", a.ip, a.vlan, a.bridge);
            if !bridges.contains(a.bridge.as_str()) {
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
            match addr_seen.insert((&a.bridge, a.vlan, a.ip), a.mac) {
                Some(m) if m != a.mac => e(o(), format!("given twice: at {m} and at {}", a.mac)),
                _ => {}
            }
        }
    }

    /// Static underlay neighbors.
    fn check_neighbors(&self, e: &mut Report) {
        let mut neigh_seen = HashSet::default();
        for n in &self.neighbors {
            let o = || format!("neighbor {}", n.ip);
            if n.mac.is_zero() || n.mac.is_multicast() {
                e(o(), format!("{} is not a unicast MAC", n.mac));
            }
            if n.ip.is_unspecified() || n.ip.is_multicast() {
                e(o(), "not a unicast address".into());
            }
            if !neigh_seen.insert(n.ip) {
                e(o(), "given twice".into());
            }
        }
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
