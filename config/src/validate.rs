//! Whole-config validation: [`Config::validate`] checks, one kind of
//! object at a time and always in this order, the bridges, the one
//! namespace of ports, tunnels and the uplink, the uplink, ports, tunnels,
//! static FDB entries, ACLs, policers, mirrors, routes, bridge lookups, overlay
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

use super::checks::{is_unicast_ip, remote_vtep_by};
use super::incremental::ValidConfig;
use super::objects::{
    check_acl, check_addr, check_bridge, check_fdb_entry, check_lookup, check_neighbor, check_port,
    check_port_name, check_qos, check_route, check_tunnel_encap, check_vlan_mode, reserved,
    wire_key, Clashes, TunnelShape, WireKey,
};
use super::{Config, TunnelConfig, MAX_VNI};
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
        self.check_mirrors(&ports, e);
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
        let mut sockets: BTreeMap<&std::path::Path, &str> = BTreeMap::new();
        for p in &self.ports {
            check_port(p, bridges.contains(p.bridge.as_str()), e);
            if let crate::PortKind::VhostUser { socket, .. } = &p.kind {
                if let Some(other) = sockets.insert(socket, &p.name) {
                    e(
                        format!("port {:?}", p.name),
                        format!("vhost-user socket {socket:?} already used by port {other:?}"),
                    );
                }
            }
        }
    }

    /// What holds between tunnels (their bridge, one VNI per bridge, no
    /// two alike on the wire), then each tunnel's own remotes, encapsulation
    /// and VLAN mode.
    fn check_tunnels(&self, bridges: &HashSet<&str>, own: &HashSet<IpAddr>, e: &mut Report) {
        let mut bridge_vni: BTreeMap<&str, (u32, &str)> = BTreeMap::new();
        let mut tunnel_keys: BTreeMap<WireKey, &str> = BTreeMap::new();
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

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
