//! The checks of one object: a bridge, a name and number of the ports'
//! namespace, a port, a tunnel, a static MAC, an ACL, a policer, a route, a
//! bridge's lookup, an overlay address, a static neighbor. The whole-config
//! walk (`validate.rs`) and the incremental one (`incremental.rs`) both
//! call these, so a message is written once; what depends on other objects
//! comes in as an argument: the whole walk learns it from its sets, the
//! incremental one from its index (and passes "no clash", checking those
//! against the index itself).

use std::net::IpAddr;

use super::checks::{check_name, is_unicast_ip, is_unicast_mac, remote_vtep_by, vlan_ok};
use super::validate::Report;
use super::{
    AclConfig, BridgeConfig, LookupConfig, LookupProviderConfig, NeighborConfig, OverlayAddrConfig,
    PortConfig, PortKind, QosConfig, RouteConfig, StaticFdbConfig, TunnelConfig, TunnelKind,
    VlanMode, MAX_VHOST_QUEUE_PAIRS,
};
use xvs_types::{MacAddr, PortNo};

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
    if let PortKind::VhostUser { socket, .. } = &p.kind {
        // sun_path holds 108 bytes, the terminating NUL included.
        let bytes = socket.as_os_str().as_encoded_bytes();
        if !socket.is_absolute() {
            e(
                o(),
                format!("vhost-user socket {socket:?} is not an absolute path"),
            );
        } else if bytes.len() > 107 || bytes.contains(&0) {
            e(
                o(),
                format!("vhost-user socket {socket:?}: longer than 107 bytes or holds a NUL"),
            );
        }
        if usize::from(p.queues) > MAX_VHOST_QUEUE_PAIRS {
            e(
                o(),
                format!(
                    "queues {}: a vhost-user port offers at most {MAX_VHOST_QUEUE_PAIRS} queue pairs",
                    p.queues
                ),
            );
        }
    }
    // QEMU opens a tap multi-queue only with queues=N, and the tap's
    // IFF_MULTI_QUEUE must match it; xvsd creates it single-queue.
    if p.kind == PortKind::Tap && p.queues > 1 {
        e(
            o(),
            format!("queues {}: a tap port has one queue pair", p.queues),
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
pub(super) fn check_tunnel_encap(t: &TunnelConfig, o: &dyn Fn() -> String, e: &mut Report) {
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
pub(super) fn check_port_security(o: &dyn Fn() -> String, p: &PortConfig, e: &mut Report) {
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

pub(super) fn check_vlan_mode(o: &dyn Fn() -> String, m: &VlanMode, e: &mut Report) {
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
