//! Model validation: every violation at once, each naming its object.
//!
//! LSDN's restrictions (duplicate MAC within a net, duplicate VNI per
//! type, VNI out of range, missing mandatory IP/MAC/interface for the
//! chosen type, mixed IPv4/IPv6 physes in a net, static and learning VXLAN
//! on one UDP port of one phys, a virt on a phys not attached to its net,
//! duplicate or conflicting firewall rules, invalid rates) plus what xvs
//! itself needs: names short enough to become bridge and port names, one
//! interface per role, a multicast group that is one.
//!
//! The static/learning port rule is LSDN's (its kernel tunnels are keyed
//! by UDP port); xvs keys tunnel ports by (local IP, UDP port, VNI) and
//! could mix them, but a model that passes here also runs on LSDN-style
//! hosts, and a VNI answering static on one host and learning on another
//! is almost always a mistake.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use xvs_config::MAX_VNI;
use xvs_types::acl::{self, AclRule};
use xvs_types::qos::{parse_rate, parse_size};

use super::{Model, NetType, Rate, Virt};
use crate::command::MAX_VLAN;

/// Net names become bridge names and, with a 2-byte prefix, tunnel port
/// names; both are limited to 15 bytes (IFNAMSIZ - 1).
pub const MAX_NET_NAME: usize = 13;
/// The bridge that carries every `vlan` net of a phys (one trunk port can
/// be in one bridge only); no net may be called this.
pub const VLAN_BRIDGE: &str = "vlans";

/// One problem: the object (`virt "web1"`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub object: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

/// Where to check that interfaces exist (the local phys only: other
/// hosts' interfaces are not visible from here).
pub trait Interfaces {
    fn exists(&self, name: &str) -> bool;
}

/// The interfaces of this network namespace.
#[derive(Debug)]
pub struct SysInterfaces;

impl Interfaces for SysInterfaces {
    fn exists(&self, name: &str) -> bool {
        !name.is_empty()
            && !name.contains('/')
            && std::path::Path::new("/sys/class/net").join(name).exists()
    }
}

/// Validates `model`; with `local`, also what that phys needs (its
/// interfaces exist in `ifaces`). Returns every violation, sorted.
pub fn validate(
    model: &Model,
    local: Option<&str>,
    ifaces: &dyn Interfaces,
) -> Result<(), Vec<Violation>> {
    let mut v = Vec::new();
    let mut bad = |object: String, message: String| v.push(Violation { object, message });
    let q = |kind: &str, name: &str| format!("{kind} {name:?}");

    // Settings.
    for (name, s) in &model.settings {
        let o = q("settings", name);
        if name.is_empty() {
            bad(o.clone(), "empty name".into());
        }
        match (s.kind, s.group) {
            (NetType::VxlanMcast, None) => {
                bad(o.clone(), "vxlan/mcast needs a multicast group".into())
            }
            (NetType::VxlanMcast, Some(g)) if !g.is_multicast() => {
                bad(o.clone(), format!("group {g} is not a multicast address"))
            }
            (NetType::VxlanMcast, Some(_)) | (_, None) => {}
            (k, Some(_)) => bad(o.clone(), format!("group is only for vxlan/mcast, not {k}")),
        }
        if !s.kind.is_tunnel() && s.port.is_some() {
            bad(o.clone(), format!("{} has no UDP port", s.kind));
        }
        if s.port == Some(0) {
            bad(o, "UDP port 0".into());
        }
    }

    // Nets.
    let mut net_names = HashSet::new();
    let mut vnis: HashMap<(&str, Option<u16>, u32), &str> = HashMap::new();
    for n in &model.nets {
        let o = q("net", &n.name);
        check_name(&mut bad, &o, &n.name, MAX_NET_NAME);
        if n.name == VLAN_BRIDGE {
            bad(
                o.clone(),
                format!("the name {VLAN_BRIDGE:?} is reserved (the bridge of vlan nets)"),
            );
        }
        if !net_names.insert(n.name.as_str()) {
            bad(o.clone(), "defined twice".into());
        }
        let Some(s) = model.settings.get(&n.settings) else {
            bad(o, format!("no settings {:?}", n.settings));
            continue;
        };
        let vni = match (s.kind, n.vni) {
            (NetType::Direct, Some(_)) => {
                bad(o.clone(), "a direct net has no VNI".into());
                continue;
            }
            (NetType::Direct, None) => continue,
            (k, None) => {
                bad(o.clone(), format!("{k} needs a vni"));
                continue;
            }
            (NetType::Vlan, Some(id)) if id == 0 || id > u32::from(MAX_VLAN) => {
                bad(
                    o.clone(),
                    format!("VLAN ID {id} out of range 1..={MAX_VLAN}"),
                );
                continue;
            }
            (_, Some(id)) if id > MAX_VNI => {
                bad(o.clone(), format!("VNI {id} out of range 0..={MAX_VNI}"));
                continue;
            }
            (_, Some(id)) => id,
        };
        // One VNI space per encapsulation and UDP port: two nets there
        // would be one L2 domain on the wire.
        let family = match s.kind {
            k if k.is_vxlan() => "vxlan",
            NetType::Geneve => "geneve",
            _ => "vlan",
        };
        if let Some(other) = vnis.insert((family, s.udp_port(), vni), &n.name) {
            bad(
                o,
                format!("duplicate {family} VNI {vni} (also net {other:?})"),
            );
        }
    }

    // Physes.
    let mut phys_names = HashSet::new();
    for p in &model.physes {
        let o = q("phys", &p.name);
        if p.name.is_empty() {
            bad(o.clone(), "empty name".into());
        }
        if !phys_names.insert(p.name.as_str()) {
            bad(o.clone(), "defined twice".into());
        }
        let mut attached = HashSet::new();
        let mut tunnel_nets = Vec::new();
        let mut plain_nets = Vec::new();
        let mut directs = Vec::new();
        // (udp port) -> (static net, learning net) seen on this phys.
        let mut ports: BTreeMap<u16, (Option<&str>, Option<&str>)> = BTreeMap::new();
        for net in &p.nets {
            if !attached.insert(net.as_str()) {
                bad(o.clone(), format!("attached to net {net:?} twice"));
            }
            let Some(s) = model.net_settings(net) else {
                if model.net(net).is_none() {
                    bad(o.clone(), format!("attached to unknown net {net:?}"));
                }
                continue;
            };
            if s.kind.is_tunnel() {
                tunnel_nets.push(net.as_str());
                if s.kind.is_vxlan() {
                    let e = ports.entry(s.udp_port().unwrap_or(0)).or_default();
                    if s.kind == NetType::VxlanStatic {
                        e.0.get_or_insert(net);
                    } else {
                        e.1.get_or_insert(net);
                    }
                }
                match p.ip {
                    None => bad(o.clone(), format!("needs an ip: net {net:?} is {}", s.kind)),
                    Some(ip) => {
                        if let Some(g) = s.group {
                            if g.is_ipv4() != ip.is_ipv4() {
                                bad(
                                    o.clone(),
                                    format!("ip {ip} and the group {g} of net {net:?} are of different families"),
                                );
                            }
                        }
                    }
                }
            } else {
                plain_nets.push(net.as_str());
                if s.kind == NetType::Direct {
                    directs.push(net.as_str());
                }
            }
        }
        if let Some(ip) = p.ip {
            if ip.is_multicast() || ip.is_unspecified() || ip.is_loopback() {
                bad(o.clone(), format!("ip {ip} cannot be a VTEP address"));
            }
        }
        for (port, (st, learn)) in &ports {
            if let (Some(st), Some(learn)) = (st, learn) {
                bad(
                    o.clone(),
                    format!(
                        "static VXLAN net {st:?} and learning VXLAN net {learn:?} share UDP port {port}"
                    ),
                );
            }
        }
        if p.iface.is_none() && !p.nets.is_empty() {
            bad(o.clone(), "needs an iface (it is attached to nets)".into());
        }
        if !tunnel_nets.is_empty() && !plain_nets.is_empty() {
            bad(
                o.clone(),
                format!(
                    "iface {:?} would be both the tunnel uplink (nets {}) and a switch port (nets {}): one XDP program per interface",
                    p.iface.as_deref().unwrap_or(""),
                    tunnel_nets.join(", "),
                    plain_nets.join(", ")
                ),
            );
        }
        if directs.len() > 1 {
            bad(
                o.clone(),
                format!("more than one direct net: {}", directs.join(", ")),
            );
        }
        if directs.len() == 1 && plain_nets.len() > 1 {
            bad(
                o,
                format!(
                    "direct net {:?} cannot share the interface with vlan nets",
                    directs[0]
                ),
            );
        }
    }

    // Mixed families per net.
    for n in &model.nets {
        let fams: HashSet<bool> = model
            .physes
            .iter()
            .filter(|p| p.nets.contains(&n.name))
            .filter_map(|p| p.ip.map(|ip| ip.is_ipv4()))
            .collect();
        if fams.len() > 1 {
            bad(
                q("net", &n.name),
                "physes with IPv4 and IPv6 addresses (one underlay family per net)".into(),
            );
        }
    }

    // Virts.
    let mut virt_names = HashSet::new();
    let mut macs: HashMap<(&str, xvs_types::MacAddr), &str> = HashMap::new();
    let mut ips: HashMap<(&str, IpAddr), &str> = HashMap::new();
    let mut ifaces_used: HashMap<(&str, &str), &str> = HashMap::new();
    for virt in &model.virts {
        let o = q("virt", &virt.name);
        if virt.name.is_empty() {
            bad(o.clone(), "empty name".into());
        }
        if !virt_names.insert(virt.name.as_str()) {
            bad(o.clone(), "defined twice".into());
        }
        let settings = model.net_settings(&virt.net);
        if model.net(&virt.net).is_none() {
            bad(o.clone(), format!("unknown net {:?}", virt.net));
        }
        if let Some(mac) = virt.mac {
            if mac.is_multicast() || mac.is_zero() {
                bad(o.clone(), format!("mac {mac} is not a unicast address"));
            } else if let Some(other) = macs.insert((&virt.net, mac), &virt.name) {
                bad(
                    o.clone(),
                    format!(
                        "duplicate MAC {mac} in net {:?} (also virt {other:?})",
                        virt.net
                    ),
                );
            }
        } else if let Some(s) = settings {
            if s.kind.is_static() {
                bad(
                    o.clone(),
                    format!(
                        "needs a mac: net {:?} is {} (no learning)",
                        virt.net, s.kind
                    ),
                );
            }
        }
        if let Some(ip) = virt.ip {
            if virt.mac.is_none() {
                bad(o.clone(), format!("ip {ip} without a mac"));
            }
            if let Some(other) = ips.insert((&virt.net, ip), &virt.name) {
                bad(
                    o.clone(),
                    format!(
                        "duplicate IP {ip} in net {:?} (also virt {other:?})",
                        virt.net
                    ),
                );
            }
        }
        match (&virt.phys, &virt.iface) {
            (None, Some(_)) => bad(o.clone(), "iface without a phys".into()),
            (None, None) => {}
            (Some(pn), iface) => {
                match model.phys(pn) {
                    None => bad(o.clone(), format!("unknown phys {pn:?}")),
                    Some(p) => {
                        if !p.nets.contains(&virt.net) {
                            bad(
                                o.clone(),
                                format!("phys {pn:?} is not attached to its net {:?}", virt.net),
                            );
                        }
                        match iface {
                            None => bad(
                                o.clone(),
                                format!("connected to phys {pn:?} without an iface"),
                            ),
                            Some(i) => {
                                check_name(&mut bad, &o, i, xvs_config::MAX_NAME_LEN);
                                if p.iface.as_deref() == Some(i.as_str()) {
                                    bad(
                                        o.clone(),
                                        format!("iface {i:?} is phys {pn:?}'s own interface"),
                                    );
                                }
                                if let Some(other) = ifaces_used.insert((pn, i), &virt.name) {
                                    bad(
                                    o.clone(),
                                    format!("iface {i:?} on phys {pn:?} also used by virt {other:?}"),
                                );
                                }
                            }
                        }
                    }
                }
            }
        }
        check_rules(&mut bad, &o, virt);
        for (dir, rate) in [
            ("rate_ingress", &virt.rate_ingress),
            ("rate_egress", &virt.rate_egress),
        ] {
            if let Some(r) = rate {
                if let Err(m) = check_rate(r) {
                    bad(o.clone(), format!("{dir}: {m}"));
                }
            }
        }
    }

    // What the local phys needs on this host.
    if let Some(local) = local {
        match model.phys(local) {
            None => bad(
                "local".into(),
                format!("no phys {local:?} in the model (--local names this host's phys)"),
            ),
            Some(p) => {
                if let Some(i) = &p.iface {
                    if !p.nets.is_empty() && !ifaces.exists(i) {
                        bad(
                            q("phys", local),
                            format!("iface {i:?} does not exist on this host"),
                        );
                    }
                }
                for virt in model
                    .virts
                    .iter()
                    .filter(|v| v.phys.as_deref() == Some(local))
                {
                    if let Some(i) = &virt.iface {
                        if !ifaces.exists(i) {
                            bad(
                                q("virt", &virt.name),
                                format!("iface {i:?} does not exist on this host"),
                            );
                        }
                    }
                }
            }
        }
    }

    if v.is_empty() {
        Ok(())
    } else {
        v.sort();
        v.dedup();
        Err(v)
    }
}

/// The shared name rule, and `max` where the model's names grow a prefix
/// on the way to becoming xvs names.
fn check_name(bad: &mut impl FnMut(String, String), o: &str, name: &str, max: usize) {
    if name.len() > max {
        bad(o.into(), format!("name {name:?} longer than {max} bytes"));
    } else if let Err(m) = xvs_config::check_name(name) {
        bad(o.into(), m);
    }
}

fn check_rules(bad: &mut impl FnMut(String, String), o: &str, virt: &Virt) {
    for (dir, rules) in [("ingress", &virt.ingress), ("egress", &virt.egress)] {
        let mut parsed = Vec::new();
        for text in rules {
            match text.parse::<AclRule>() {
                Ok(r) => parsed.push(r),
                Err(e) => bad(o.into(), format!("{dir} rule: {e}")),
            }
        }
        if parsed.len() == rules.len() {
            // Duplicates, same priority with different match shapes, and
            // the same match at one priority with different actions (a
            // conflict) all fail the build the dataplane does.
            if let Err(e) = acl::key_masks(&parsed) {
                bad(o.into(), format!("{dir} rules: {e}"));
            }
        }
    }
}

fn check_rate(r: &Rate) -> Result<(u64, u64, Option<u64>), String> {
    let avg = parse_rate(&r.avg).map_err(|e| format!("avg: {e}"))?;
    let burst = parse_size(&r.burst).map_err(|e| format!("burst: {e}"))?;
    let peak = r
        .peak
        .as_deref()
        .map(parse_rate)
        .transpose()
        .map_err(|e| format!("peak: {e}"))?;
    if avg == 0 {
        return Err("avg rate must be above 0".into());
    }
    if burst == 0 {
        return Err("burst must be above 0".into());
    }
    if let Some(p) = peak {
        if p < avg {
            return Err(format!(
                "peak {} below avg {}",
                r.peak.as_deref().unwrap_or(""),
                r.avg
            ));
        }
    }
    Ok((avg, burst, peak))
}

/// A validated rate in bits/s and bytes (for the compiler).
pub(crate) fn rate_values(r: &Rate) -> Option<(u64, u64, Option<u64>)> {
    check_rate(r).ok()
}
