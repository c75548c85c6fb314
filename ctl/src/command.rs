//! Config-changing commands (the verbs of `xvsctl` that go into a
//! transaction) and their effect on the desired config.
//!
//! [`Command`] is the wire form (`{"op": "add-br", "name": "br0"}`), one
//! variant per verb, each wrapping a params struct. [`apply`] is a pure
//! edit of a [`Config`]: it checks what only the command can know (the
//! bridge to add to exists, the name is free, the MAC is unicast, the VLAN
//! and VNI are in range, the flow and ACL text parse) and leaves
//! whole-config consistency to [`Config::validate`]. [`apply_all`] is the
//! transaction: every command on a copy, then validation, all or nothing.
//!
//! Flows name ports by number in the config (that is what the dataplane
//! compiles), but `add-flow` accepts names (`in_port=vm1,actions=output:vx1`)
//! and resolves them here, against the config as it stands at that point in
//! the transaction; so `add-port br0 vm1 -- add-flow br0 in_port=vm1,...`
//! works in one call. Port numbers are assigned as ports are added, for the
//! same reason.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use xvs_config::{
    AclConfig, BridgeConfig, Config, ConfigErrors, Direction, GeneveOptConfig, LookupConfig,
    LookupProviderConfig, MissAction, NeighborConfig, OverlayAddrConfig, PortConfig, QosConfig,
    RouteConfig, StaticFdbConfig, TosConfig, TunnelConfig, TunnelKind, UplinkConfig, VlanMode,
    MAX_VNI,
};
use xvs_types::acl::{self, AclAction, AclRule};
use xvs_types::flow::{FlowMatch, FlowRule};
use xvs_types::qos::PolicerConfig;
use xvs_types::Prefix;
use xvs_types::{MacAddr, PortNo};

/// Largest 802.1Q VID a port may use (4095 is reserved).
pub const MAX_VLAN: u16 = 4094;

/// `add-br NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBr {
    pub name: String,
    /// An existing bridge of that name is not an error (nothing changes).
    #[serde(default)]
    pub may_exist: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fdb_max_entries: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fdb_aging_secs: Option<u64>,
    /// Absent: on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning: Option<bool>,
    /// Absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arp_suppress: Option<bool>,
}

/// `set-br BR [learning=BOOL] [arp-suppress=BOOL] [lookup=PROVIDER]
/// [lookup-miss=flood|drop] [lookup=none]`: changes options of an existing
/// bridge; options not given keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetBr {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arp_suppress: Option<bool>,
    /// Turns lookup on miss on with this provider (or changes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<LookupProviderConfig>,
    /// What a miss does to its frame (needs a lookup, given or existing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_miss: Option<MissAction>,
    /// With lookup-miss=hold: how long a frame waits, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_hold_ms: Option<u64>,
    /// Turns lookup on miss off.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_lookup: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `del-br NAME`: the bridge, its ports and tunnels, and everything that
/// refers to them (static MACs, ACLs, policers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelBr {
    pub name: String,
    #[serde(default)]
    pub if_exists: bool,
}

/// `add-port BR IFACE`: a local AF_XDP port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPort {
    pub bridge: String,
    pub name: String,
    /// Queues to bind (absent or 0: every queue the device has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u16>,
    /// Access port in this VLAN (0: the untagged domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<u16>,
    /// Trunk port carrying these VLANs (empty list: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunks: Option<Vec<u16>>,
    /// On a trunk: the VLAN untagged frames belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// At most this many MACs learned behind the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_macs: Option<u32>,
    /// Port security: the only source MACs the port may send from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_macs: Vec<MacAddr>,
    /// With `allowed_macs`: the only source IPs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_ips: Vec<IpAddr>,
    /// Storm control: flooded frames per second the port may send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_pps: Option<u32>,
    #[serde(default)]
    pub may_exist: bool,
}

/// `add-tunnel BR NAME --type vxlan|geneve --vni N --remote IP[,IP...]`.
/// A single multicast remote makes a multicast tunnel (RFC 7348 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddTunnel {
    pub bridge: String,
    pub name: String,
    pub kind: TunnelKind,
    pub vni: u32,
    pub remotes: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos: Option<TosConfig>,
    /// Absent: the default (on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub df: Option<bool>,
    #[serde(default)]
    pub csum: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub geneve_opts: Vec<GeneveOptConfig>,
    /// Accept and learn VTEPs beyond `remotes` (implied by a group).
    #[serde(default)]
    pub learn_remotes: bool,
    #[serde(default)]
    pub may_exist: bool,
}

/// `set-tunnel NAME [--remote IP,...] [--vni N] ...`: changes a tunnel
/// port in place (same port number, same bridge); fields not given keep
/// their value. FDB entries towards remotes that stay keep working (they
/// follow their VTEP by address). The etcd agent keeps a tunnel's flood
/// list in sync with the hosts it discovers this way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTunnel {
    pub name: String,
    /// The new flood list (configured remotes), replacing the old one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remotes: Option<Vec<IpAddr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos: Option<TosConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub df: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csum: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learn_remotes: Option<bool>,
}

// A tunnel's options are declared by TunnelConfig (the model), and on the
// wire by AddTunnel (all of a new tunnel's) and SetTunnel (the ones an
// in-place change may touch), which cannot share a struct: both refuse
// unknown fields, and serde cannot flatten into such a struct. These four
// functions are the only places that translate between them.
impl AddTunnel {
    /// The tunnel this command adds (the editor checks the values).
    pub fn to_config(&self) -> TunnelConfig {
        let mut t = TunnelConfig::new(
            self.name.clone(),
            self.bridge.clone(),
            self.kind,
            self.vni,
            self.remotes.clone(),
        );
        t.geneve_opts = self.geneve_opts.clone();
        self.options().apply_to(&mut t);
        t
    }

    /// The command that adds `t` again: every option that differs from
    /// `add-tunnel`'s default. `vlan`, `zero_csum6` and `src_port_range`
    /// have no `add-tunnel` option and stay at their defaults.
    pub fn from_config(t: &TunnelConfig) -> AddTunnel {
        let d = TunnelConfig::new("", "", t.kind, t.vni, Vec::new());
        fn unless<T: PartialEq>(default: T, v: T) -> Option<T> {
            (v != default).then_some(v)
        }
        AddTunnel {
            bridge: t.bridge.clone(),
            name: t.name.clone(),
            kind: t.kind,
            vni: t.vni,
            remotes: t.remotes.clone(),
            local: t.local,
            dst_port: t.dst_port,
            ttl: unless(d.ttl, t.ttl),
            tos: unless(d.tos, t.tos),
            df: unless(d.df, t.df),
            csum: t.csum,
            geneve_opts: t.geneve_opts.clone(),
            learn_remotes: t.learn_remotes,
            may_exist: false,
        }
    }

    /// Its options as the in-place change that sets them on a default
    /// tunnel.
    fn options(&self) -> SetTunnel {
        SetTunnel {
            name: self.name.clone(),
            remotes: None,
            vni: None,
            local: self.local,
            dst_port: self.dst_port,
            ttl: self.ttl,
            tos: self.tos,
            df: self.df,
            csum: Some(self.csum),
            learn_remotes: Some(self.learn_remotes),
        }
    }
}

impl SetTunnel {
    /// Sets every option given on `t`; the others keep their value.
    pub fn apply_to(&self, t: &mut TunnelConfig) {
        if let Some(rs) = &self.remotes {
            t.remotes = rs.clone();
        }
        if let Some(v) = self.vni {
            t.vni = v;
        }
        if self.local.is_some() {
            t.local = self.local;
        }
        if self.dst_port.is_some() {
            t.dst_port = self.dst_port;
        }
        if let Some(v) = self.ttl {
            t.ttl = v;
        }
        if let Some(v) = self.tos {
            t.tos = v;
        }
        if let Some(v) = self.df {
            t.df = v;
        }
        if let Some(v) = self.csum {
            t.csum = v;
        }
        if let Some(v) = self.learn_remotes {
            t.learn_remotes = v;
        }
    }

    /// The in-place change that turns `r` into `t` (same port number,
    /// learned MACs and remotes kept), if `set-tunnel` can express every
    /// difference: not a new bridge, kind, Geneve options, VLAN mode,
    /// IPv6 checksum mode or source port range, and not a local address or
    /// destination port taken back to its default.
    pub fn between(r: &TunnelConfig, t: &TunnelConfig) -> Option<SetTunnel> {
        let fixed = r.bridge == t.bridge
            && r.kind == t.kind
            && r.geneve_opts == t.geneve_opts
            && r.vlan == t.vlan
            && r.zero_csum6 == t.zero_csum6
            && r.src_port_range == t.src_port_range
            && (t.local.is_some() || r.local.is_none())
            && (t.dst_port.is_some() || r.dst_port.is_none());
        if !fixed {
            return None;
        }
        fn diff<T: PartialEq>(a: T, b: T) -> Option<T> {
            (a != b).then_some(b)
        }
        Some(SetTunnel {
            name: t.name.clone(),
            remotes: diff(&r.remotes, &t.remotes).cloned(),
            vni: diff(r.vni, t.vni),
            local: diff(r.local, t.local).flatten(),
            dst_port: diff(r.dst_port, t.dst_port).flatten(),
            ttl: diff(r.ttl, t.ttl),
            tos: diff(r.tos, t.tos),
            df: diff(r.df, t.df),
            csum: diff(r.csum, t.csum),
            learn_remotes: diff(r.learn_remotes, t.learn_remotes),
        })
    }
}

/// `set-port NAME [--max-macs N] [--allowed-macs LIST] [--allowed-ips
/// LIST]`: changes a local port's learning limit and port security in
/// place; options not given keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPort {
    pub name: String,
    /// The learned-MAC limit; 0 removes it (a limit of 0 is refused as
    /// config, so the value is free to mean none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_macs: Option<u32>,
    /// Replaces the allowed MACs; empty turns port security off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_macs: Option<Vec<MacAddr>>,
    /// Replaces the allowed IPs; empty stops checking IPs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<Vec<IpAddr>>,
    /// Storm control in flooded frames per second; 0 turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_pps: Option<u32>,
}

/// `del-port NAME`: a port or a tunnel, with its static MACs, ACLs and
/// policers. Refused while a flow refers to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelPort {
    pub name: String,
    #[serde(default)]
    pub if_exists: bool,
}

/// `set-uplink IFACE`: creates or replaces the uplink. With the same
/// interface, fields not given keep their value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetUplink {
    pub iface: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_ips: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
}

/// `fdb-add BR MAC PORT`: a static MAC; replaces an entry with the same
/// bridge, VLAN and MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FdbAdd {
    pub bridge: String,
    pub mac: MacAddr,
    pub port: String,
    #[serde(default)]
    pub vlan: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<IpAddr>,
}

/// `meta-set KEY [VALUE]`: a higher control plane's record in the config
/// (the applied network model, ...), written in the same transaction as
/// the objects it describes. Without a value the key is removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaSet {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// `fdb-del BR MAC`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FdbDel {
    pub bridge: String,
    pub mac: MacAddr,
    #[serde(default)]
    pub vlan: u16,
    #[serde(default)]
    pub if_exists: bool,
}

/// `arp-add BR IP MAC [--vlan V] [--owner O]`: an overlay address (what
/// ARP/ND suppression answers); replaces the entry for the same bridge,
/// VLAN and IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArpAdd {
    pub bridge: String,
    pub ip: IpAddr,
    pub mac: MacAddr,
    #[serde(default)]
    pub vlan: u16,
    /// The control plane installing it ("model", "etcd"); none: the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// `arp-del BR IP [--vlan V]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArpDel {
    pub bridge: String,
    pub ip: IpAddr,
    #[serde(default)]
    pub vlan: u16,
    #[serde(default)]
    pub if_exists: bool,
}

/// `neigh-set IP MAC`: a static underlay neighbor (OVS `tnl/arp/set`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighSet {
    pub ip: IpAddr,
    pub mac: MacAddr,
}

/// `neigh-flush [IP]`: removes one static neighbor, or all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighFlush {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(default)]
    pub if_exists: bool,
}

/// `route-add PREFIX [GW]`: an operator route (OVS `ovs/route/add`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteAdd {
    pub prefix: Prefix,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Absent: the uplink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default)]
    pub metric: u32,
    /// Replace a route with the same prefix and metric instead of failing.
    #[serde(default)]
    pub may_exist: bool,
}

/// `route-del PREFIX`: every operator route of that prefix (and metric).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDel {
    pub prefix: Prefix,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    #[serde(default)]
    pub if_exists: bool,
}

/// `add-flow BR FLOW`: flow text, port names allowed. A flow with the same
/// priority and match replaces the old one (OpenFlow add semantics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddFlow {
    pub bridge: String,
    pub flow: String,
}

/// `del-flows BR [MATCH]`: all flows, or those whose match is at least as
/// specific as MATCH (ovs-ofctl's non-strict delete); with `strict`, those
/// with exactly this match (and priority, if given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelFlows {
    pub bridge: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    #[serde(default)]
    pub strict: bool,
}

/// `acl-add PORT --dir D --prio N [MATCHES] --action allow|drop`. A rule
/// with the same priority and match is replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclAdd {
    pub port: String,
    pub dir: Direction,
    pub priority: u32,
    /// Flow match syntax (`tcp,tp_dst=22`); empty matches everything.
    #[serde(default)]
    pub matches: String,
    pub action: AclAction,
}

/// `acl-del PORT --dir D [--prio N] [MATCHES]`: the rules of that priority
/// (and match), or all rules of the port and direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclDel {
    pub port: String,
    pub dir: Direction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    #[serde(default)]
    pub if_exists: bool,
}

/// `qos-set PORT --dir D --rate R --burst B [--peak P]`; the CLI turns the
/// human units into these numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QosSet {
    pub port: String,
    pub dir: Direction,
    pub rate_bps: u64,
    pub burst_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_bps: Option<u64>,
}

/// `qos-clear PORT [--dir D]` (both directions without `dir`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QosClear {
    pub port: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<Direction>,
    #[serde(default)]
    pub if_exists: bool,
}

macro_rules! commands {
    ($($variant:ident($ty:ident) = $op:literal,)*) => {
        /// One config-changing command. On the wire: an object whose `op`
        /// is the xvsctl verb and whose other members are the fields of the
        /// wrapped struct, e.g. `{"op":"fdb-add","bridge":"br0",
        /// "mac":"02:00:00:00:00:01","port":"vx1"}`.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "op")]
        pub enum Command {
            $(#[serde(rename = $op)] $variant($ty),)*
        }

        impl Command {
            /// Every op, as on the wire and on the xvsctl command line.
            pub const OPS: &'static [&'static str] = &[$($op),*];

            pub fn op(&self) -> &'static str {
                match self {
                    $(Command::$variant(_) => $op,)*
                }
            }

            /// Reads one command, naming the failing field. serde's own
            /// internally tagged enums lose the path inside the variant,
            /// so the op is dispatched here and the rest deserialized
            /// with the path tracked. Errors are `(path, message)`.
            pub fn from_value(v: &Value) -> Result<Command, (String, String)> {
                let Value::Object(obj) = v else {
                    return Err((String::new(), "a command must be an object with an \"op\"".into()));
                };
                let op = match obj.get("op") {
                    Some(Value::String(s)) => s.as_str(),
                    Some(_) => return Err(("op".into(), "must be a string".into())),
                    None => return Err((String::new(), format!(
                        "missing \"op\" (one of: {})", Command::OPS.join(", ")))),
                };
                let mut rest = obj.clone();
                rest.remove("op");
                let rest = Value::Object(rest);
                match op {
                    $($op => serde_path_to_error::deserialize::<_, $ty>(rest)
                        .map(Command::$variant)
                        .map_err(|e| {
                            let p = e.path().to_string();
                            (if p == "." { String::new() } else { p }, e.into_inner().to_string())
                        }),)*
                    other => Err(("op".into(), format!(
                        "unknown op {other:?} (one of: {})", Command::OPS.join(", ")))),
                }
            }
        }
    };
}

commands! {
    AddBr(AddBr) = "add-br",
    DelBr(DelBr) = "del-br",
    SetBr(SetBr) = "set-br",
    AddPort(AddPort) = "add-port",
    AddTunnel(AddTunnel) = "add-tunnel",
    SetTunnel(SetTunnel) = "set-tunnel",
    SetPort(SetPort) = "set-port",
    DelPort(DelPort) = "del-port",
    SetUplink(SetUplink) = "set-uplink",
    FdbAdd(FdbAdd) = "fdb-add",
    FdbDel(FdbDel) = "fdb-del",
    ArpAdd(ArpAdd) = "arp-add",
    ArpDel(ArpDel) = "arp-del",
    NeighSet(NeighSet) = "neigh-set",
    NeighFlush(NeighFlush) = "neigh-flush",
    RouteAdd(RouteAdd) = "route-add",
    RouteDel(RouteDel) = "route-del",
    AddFlow(AddFlow) = "add-flow",
    DelFlows(DelFlows) = "del-flows",
    AclAdd(AclAdd) = "acl-add",
    AclDel(AclDel) = "acl-del",
    QosSet(QosSet) = "qos-set",
    QosClear(QosClear) = "qos-clear",
    MetaSet(MetaSet) = "meta-set",
}

impl Command {
    /// The op and what it is about, for messages: `add-tunnel vx1`.
    pub fn label(&self) -> String {
        let what = match self {
            Command::AddBr(c) => c.name.clone(),
            Command::DelBr(c) => c.name.clone(),
            Command::SetBr(c) => c.name.clone(),
            Command::AddPort(c) => format!("{} {}", c.bridge, c.name),
            Command::AddTunnel(c) => c.name.clone(),
            Command::SetTunnel(c) => c.name.clone(),
            Command::SetPort(c) => c.name.clone(),
            Command::DelPort(c) => c.name.clone(),
            Command::SetUplink(c) => c.iface.clone(),
            Command::FdbAdd(c) => format!("{} {} {}", c.bridge, c.mac, c.port),
            Command::FdbDel(c) => format!("{} {}", c.bridge, c.mac),
            Command::ArpAdd(c) => format!("{} {} {}", c.bridge, c.ip, c.mac),
            Command::ArpDel(c) => format!("{} {}", c.bridge, c.ip),
            Command::NeighSet(c) => c.ip.to_string(),
            Command::NeighFlush(c) => c.ip.map(|i| i.to_string()).unwrap_or_default(),
            Command::RouteAdd(c) => c.prefix.to_string(),
            Command::RouteDel(c) => c.prefix.to_string(),
            Command::AddFlow(c) => c.bridge.clone(),
            Command::DelFlows(c) => c.bridge.clone(),
            Command::AclAdd(c) => format!("{} {}", c.port, c.dir),
            Command::AclDel(c) => format!("{} {}", c.port, c.dir),
            Command::QosSet(c) => format!("{} {}", c.port, c.dir),
            Command::QosClear(c) => c.port.clone(),
            Command::MetaSet(c) => c.key.clone(),
        };
        if what.is_empty() {
            self.op().to_string()
        } else {
            format!("{} {what}", self.op())
        }
    }

    /// Strings a validation problem about this command's objects contains
    /// (`"vx1"` quoted as the config's messages quote names, addresses
    /// bare), to say which command caused it.
    fn subjects(&self) -> Vec<String> {
        let q = |s: &str| format!("{s:?}");
        match self {
            Command::AddBr(c) => vec![q(&c.name)],
            Command::SetBr(c) => vec![q(&c.name)],
            Command::AddPort(c) => vec![q(&c.name)],
            Command::AddTunnel(c) => vec![q(&c.name)],
            Command::SetTunnel(c) => vec![q(&c.name)],
            Command::SetPort(c) => vec![q(&c.name)],
            Command::SetUplink(c) => vec![q(&c.iface)],
            Command::FdbAdd(c) => vec![format!(
                "fdb {} vlan {} in bridge {:?}",
                c.mac, c.vlan, c.bridge
            )],
            Command::NeighSet(c) => vec![format!("neighbor {}", c.ip)],
            Command::ArpAdd(c) => vec![format!(
                "address {} vlan {} in bridge {:?}",
                c.ip, c.vlan, c.bridge
            )],
            Command::RouteAdd(c) => vec![format!("route {}", c.prefix)],
            Command::AclAdd(c) => vec![format!("acl {:?} {}", c.port, c.dir)],
            Command::QosSet(c) => vec![format!("qos {:?} {}", c.port, c.dir)],
            Command::AddFlow(c) => vec![q(&c.bridge)],
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// Why a command cannot apply. Messages name the object and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("no bridge {0:?}")]
    NoBridge(String),
    #[error("no port or tunnel {0:?}")]
    NoPort(String),
    #[error("{what} {name:?} already exists{hint}")]
    Exists {
        what: &'static str,
        name: String,
        /// e.g. " (use --may-exist to accept an existing one)".
        hint: &'static str,
    },
    #[error("{what} not found (use --if-exists to accept that)")]
    NotFound { what: String },
    #[error("{field} {value}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Refused(String),
    #[error("flow {text:?}: {reason}")]
    Flow { text: String, reason: String },
    #[error("ACL rule {text:?}: {reason}")]
    Acl { text: String, reason: String },
}

fn invalid(
    field: &'static str,
    value: impl fmt::Display,
    reason: impl Into<String>,
) -> CommandError {
    CommandError::Invalid {
        field,
        value: value.to_string(),
        reason: reason.into(),
    }
}

const MAY_EXIST: &str = " (use --may-exist to accept an existing one)";

/// Applies one command to `config`. On error the config is unchanged.
pub fn apply(cmd: &Command, config: &mut Config) -> Result<(), CommandError> {
    let mut ed = Editor::new(config);
    let r = ed.apply(cmd);
    ed.finish();
    r
}

/// A transaction: applies `cmds` in order to a copy of `config`, then
/// validates the copy whole. Returns the new config, or every problem,
/// each with the 1-based index and label of the command it comes from
/// (`command 3 (add-tunnel vx1): VNI 16777216 out of range 0..=16777215`).
/// A failing command is skipped and the others still run, so independent
/// mistakes are all reported at once; `config` itself is never touched.
pub fn apply_all(cmds: &[Command], config: &Config) -> Result<Config, Vec<String>> {
    let (new, mut problems) = edit_all(cmds, config);
    if let Err(errs) = new.validate() {
        problems.extend(attribute(cmds, &errs));
    }
    if problems.is_empty() {
        Ok(new)
    } else {
        Err(problems)
    }
}

/// [`apply_all`] without the whole-config validation, for a caller that
/// validates the result itself (xvsd, once, before applying it): `cmds`
/// applied to a copy of `config`, port numbers assigned, and the problems
/// of the commands that could not be applied.
pub fn edit_all(cmds: &[Command], config: &Config) -> (Config, Vec<String>) {
    let mut new = config.clone();
    let mut problems = Vec::new();
    {
        let mut ed = Editor::new(&mut new);
        for (i, c) in cmds.iter().enumerate() {
            if let Err(e) = ed.apply(c) {
                problems.push(format!("command {} ({}): {e}", i + 1, c.label()));
            }
        }
        ed.finish();
    }
    new.assign_port_numbers();
    (new, problems)
}

/// Formats whole-config problems (from [`Config::validate`], or from the
/// daemon compiling the config) with the command that most likely caused
/// each: the last one naming the object. The daemon should format the
/// errors of its own compile step with this too.
pub fn attribute(cmds: &[Command], errs: &ConfigErrors) -> Vec<String> {
    let subjects: Vec<Vec<String>> = cmds.iter().map(Command::subjects).collect();
    errs.0
        .iter()
        .map(|e| {
            let text = e.to_string();
            let who = subjects
                .iter()
                .enumerate()
                .rev()
                .find(|(_, subj)| subj.iter().any(|s| e.object.contains(s.as_str())));
            match who {
                Some((i, _)) => format!("command {} ({}): {text}", i + 1, cmds[i].label()),
                None => format!("config: {text}"),
            }
        })
        .collect()
}

type FdbKey = (String, u16, MacAddr);

/// Static MACs opened for fast edits: a transaction of 100,000 `fdb-add`s
/// must not scan the list once per entry. Deleted slots are `None` until
/// the list is written back.
#[derive(Debug)]
struct FdbEdit {
    slots: Vec<Option<StaticFdbConfig>>,
    index: HashMap<FdbKey, usize>,
}

/// Applies commands to a config. Holds the FDB index between consecutive
/// FDB commands; any other command writes it back first.
#[derive(Debug)]
struct Editor<'a> {
    config: &'a mut Config,
    fdb: Option<FdbEdit>,
}

impl<'a> Editor<'a> {
    fn new(config: &'a mut Config) -> Self {
        Editor { config, fdb: None }
    }

    fn finish(&mut self) {
        if let Some(f) = self.fdb.take() {
            self.config.fdb = f.slots.into_iter().flatten().collect();
        }
    }

    fn fdb_edit(&mut self) -> &mut FdbEdit {
        let config = &mut *self.config;
        self.fdb.get_or_insert_with(|| {
            let slots: Vec<Option<StaticFdbConfig>> = std::mem::take(&mut config.fdb)
                .into_iter()
                .map(Some)
                .collect();
            let index = slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.as_ref().map(|f| ((f.bridge.clone(), f.vlan, f.mac), i)))
                .collect();
            FdbEdit { slots, index }
        })
    }

    fn apply(&mut self, cmd: &Command) -> Result<(), CommandError> {
        match cmd {
            Command::FdbAdd(c) => return self.fdb_add(c),
            Command::FdbDel(c) => return self.fdb_del(c),
            _ => self.finish(),
        }
        let config = &mut *self.config;
        match cmd {
            Command::AddBr(c) => add_br(config, c),
            Command::DelBr(c) => del_br(config, c),
            Command::SetBr(c) => set_br(config, c),
            Command::AddPort(c) => add_port(config, c),
            Command::AddTunnel(c) => add_tunnel(config, c),
            Command::SetTunnel(c) => set_tunnel(config, c),
            Command::SetPort(c) => set_port(config, c),
            Command::DelPort(c) => del_port(config, c),
            Command::SetUplink(c) => set_uplink(config, c),
            Command::ArpAdd(c) => arp_add(config, c),
            Command::ArpDel(c) => arp_del(config, c),
            Command::NeighSet(c) => neigh_set(config, c),
            Command::NeighFlush(c) => neigh_flush(config, c),
            Command::RouteAdd(c) => route_add(config, c),
            Command::RouteDel(c) => route_del(config, c),
            Command::AddFlow(c) => add_flow(config, c),
            Command::DelFlows(c) => del_flows(config, c),
            Command::AclAdd(c) => acl_add(config, c),
            Command::AclDel(c) => acl_del(config, c),
            Command::QosSet(c) => qos_set(config, c),
            Command::QosClear(c) => qos_clear(config, c),
            Command::MetaSet(c) => meta_set(config, c),
            Command::FdbAdd(_) | Command::FdbDel(_) => Ok(()),
        }
    }

    fn fdb_add(&mut self, c: &FdbAdd) -> Result<(), CommandError> {
        let config = &*self.config;
        need_bridge(config, &c.bridge)?;
        unicast_mac("mac", c.mac)?;
        vlan_in_range("vlan", c.vlan, 0)?;
        match find_port(config, &c.port) {
            None => return Err(CommandError::NoPort(c.port.clone())),
            Some(p) if p.bridge != c.bridge => {
                return Err(CommandError::Refused(format!(
                    "port {:?} is in bridge {:?}, not {:?}",
                    c.port, p.bridge, c.bridge
                )))
            }
            Some(PortRef {
                tunnel: Some(t), ..
            }) => match c.remote {
                // Any unicast VTEP: beyond the tunnel's remotes it becomes
                // a dynamic remote (unicast only, never flooded to).
                Some(r) => {
                    unicast_ip("remote", r)?;
                    if t.remotes
                        .first()
                        .is_some_and(|f| f.is_ipv4() != r.is_ipv4())
                    {
                        return Err(invalid(
                            "remote",
                            r,
                            format!("not of the address family of tunnel {:?}", t.name),
                        ));
                    }
                }
                None if t.group().is_some() => {
                    return Err(CommandError::Refused(format!(
                        "tunnel {:?} is a multicast tunnel: say which VTEP with --remote",
                        t.name
                    )))
                }
                None if t.remotes.len() > 1 => {
                    return Err(CommandError::Refused(format!(
                        "tunnel {:?} has {} remotes: say which with --remote",
                        t.name,
                        t.remotes.len()
                    )))
                }
                _ => {}
            },
            Some(PortRef { tunnel: None, .. }) => {
                if let Some(r) = c.remote {
                    return Err(invalid(
                        "remote",
                        r,
                        format!("{:?} is a local port, not a tunnel", c.port),
                    ));
                }
            }
        }
        let entry = StaticFdbConfig {
            bridge: c.bridge.clone(),
            vlan: c.vlan,
            mac: c.mac,
            port: c.port.clone(),
            remote: c.remote,
        };
        let f = self.fdb_edit();
        match f.index.get(&(c.bridge.clone(), c.vlan, c.mac)) {
            Some(&i) => f.slots[i] = Some(entry),
            None => {
                f.index
                    .insert((c.bridge.clone(), c.vlan, c.mac), f.slots.len());
                f.slots.push(Some(entry));
            }
        }
        Ok(())
    }

    fn fdb_del(&mut self, c: &FdbDel) -> Result<(), CommandError> {
        need_bridge(self.config, &c.bridge)?;
        let f = self.fdb_edit();
        match f.index.remove(&(c.bridge.clone(), c.vlan, c.mac)) {
            Some(i) => {
                f.slots[i] = None;
                Ok(())
            }
            None if c.if_exists => Ok(()),
            None => Err(CommandError::NotFound {
                what: format!(
                    "static MAC {} vlan {} in bridge {:?}",
                    c.mac, c.vlan, c.bridge
                ),
            }),
        }
    }
}

/// A port or tunnel found by name.
struct PortRef<'c> {
    bridge: &'c str,
    number: Option<PortNo>,
    tunnel: Option<&'c TunnelConfig>,
}

fn find_port<'c>(config: &'c Config, name: &str) -> Option<PortRef<'c>> {
    if let Some(p) = config.ports.iter().find(|p| p.name == name) {
        return Some(PortRef {
            bridge: &p.bridge,
            number: p.number,
            tunnel: None,
        });
    }
    config
        .tunnels
        .iter()
        .find(|t| t.name == name)
        .map(|t| PortRef {
            bridge: &t.bridge,
            number: t.number,
            tunnel: Some(t),
        })
}

/// What a name is already used for, if anything (one namespace across
/// ports, tunnels and the uplink).
fn name_used(config: &Config, name: &str) -> Option<(&'static str, String)> {
    if let Some(p) = config.ports.iter().find(|p| p.name == name) {
        return Some(("port", p.bridge.clone()));
    }
    if let Some(t) = config.tunnels.iter().find(|t| t.name == name) {
        return Some(("tunnel", t.bridge.clone()));
    }
    if config.uplink.as_ref().is_some_and(|u| u.iface == name) {
        return Some(("uplink", String::new()));
    }
    None
}

fn need_bridge(config: &Config, name: &str) -> Result<(), CommandError> {
    if config.bridges.iter().any(|b| b.name == name) {
        Ok(())
    } else {
        Err(CommandError::NoBridge(name.to_string()))
    }
}

fn need_port(config: &Config, name: &str) -> Result<(), CommandError> {
    if find_port(config, name).is_some() {
        Ok(())
    } else {
        Err(CommandError::NoPort(name.to_string()))
    }
}

fn unicast_mac(field: &'static str, mac: MacAddr) -> Result<(), CommandError> {
    if mac.is_multicast() || mac.is_zero() {
        Err(invalid(field, mac, "not a unicast MAC address"))
    } else {
        Ok(())
    }
}

/// The scalar fields add-tunnel and set-tunnel share, when given.
fn check_tunnel_fields(
    vni: Option<u32>,
    local: Option<IpAddr>,
    dst_port: Option<u16>,
    ttl: Option<u8>,
) -> Result<(), CommandError> {
    if let Some(vni) = vni.filter(|v| *v > MAX_VNI) {
        return Err(invalid("VNI", vni, format!("out of range 0..={MAX_VNI}")));
    }
    if let Some(l) = local {
        unicast_ip("local", l)?;
    }
    if dst_port == Some(0) {
        return Err(invalid("dst_port", 0, "UDP port 0"));
    }
    if ttl == Some(0) {
        return Err(invalid("ttl", 0, "a TTL of 0 is never forwarded"));
    }
    Ok(())
}

/// A tunnel's remotes: unicast VTEPs, or one multicast group alone.
fn check_remotes(remotes: &[IpAddr]) -> Result<(), CommandError> {
    match remotes {
        [] => Err(invalid(
            "remote",
            "(none)",
            "at least one remote VTEP is required",
        )),
        [g] if g.is_multicast() => Ok(()),
        rs => {
            for r in rs {
                if r.is_multicast() {
                    return Err(invalid(
                        "remote",
                        r,
                        "a multicast group must be the tunnel's only remote",
                    ));
                }
                unicast_ip("remote", *r)?;
            }
            Ok(())
        }
    }
}

fn unicast_ip(field: &'static str, ip: IpAddr) -> Result<(), CommandError> {
    if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
        Err(invalid(field, ip, "not a unicast address"))
    } else {
        Ok(())
    }
}

fn vlan_in_range(field: &'static str, v: u16, min: u16) -> Result<(), CommandError> {
    if v < min || v > MAX_VLAN {
        Err(invalid(
            field,
            v,
            format!("VLAN out of range {min}..={MAX_VLAN}"),
        ))
    } else {
        Ok(())
    }
}

/// The shared name rule ([`xvs_config::check_name`]): xvsd
/// applies the same one to whole configs, so what a command may create is
/// exactly what a config file or the persisted state may hold.
fn check_name(field: &'static str, name: &str) -> Result<(), CommandError> {
    xvs_config::check_name(name).map_err(|m| invalid(field, format!("{name:?}"), m))
}

fn meta_set(config: &mut Config, c: &MetaSet) -> Result<(), CommandError> {
    if c.key.is_empty() || c.key.len() > 64 {
        return Err(invalid("meta key", format!("{:?}", c.key), "1 to 64 bytes"));
    }
    match &c.value {
        Some(v) => {
            config.meta.insert(c.key.clone(), v.clone());
        }
        None => {
            config.meta.remove(&c.key);
        }
    }
    Ok(())
}

fn add_br(config: &mut Config, c: &AddBr) -> Result<(), CommandError> {
    check_name("bridge name", &c.name)?;
    if config.bridges.iter().any(|b| b.name == c.name) {
        if c.may_exist {
            return Ok(());
        }
        return Err(CommandError::Exists {
            what: "bridge",
            name: c.name.clone(),
            hint: MAY_EXIST,
        });
    }
    if c.fdb_max_entries == Some(0) {
        return Err(invalid("fdb_max_entries", 0, "must be at least 1"));
    }
    if c.fdb_aging_secs == Some(0) {
        return Err(invalid("fdb_aging_secs", 0, "must be at least 1"));
    }
    let mut b = BridgeConfig::new(c.name.clone());
    if let Some(n) = c.fdb_max_entries {
        b.fdb_max_entries = n;
    }
    if let Some(s) = c.fdb_aging_secs {
        b.fdb_aging_secs = s;
    }
    if let Some(l) = c.learning {
        b.learning = l;
    }
    if let Some(a) = c.arp_suppress {
        b.arp_suppress = a;
    }
    config.bridges.push(b);
    Ok(())
}

fn arp_add(config: &mut Config, c: &ArpAdd) -> Result<(), CommandError> {
    need_bridge(config, &c.bridge)?;
    unicast_mac("mac", c.mac)?;
    unicast_ip("ip", c.ip)?;
    vlan_in_range("vlan", c.vlan, 0)?;
    if c.owner.as_deref() == Some("") {
        return Err(invalid("owner", "\"\"", "empty name"));
    }
    let entry = OverlayAddrConfig {
        bridge: c.bridge.clone(),
        vlan: c.vlan,
        ip: c.ip,
        mac: c.mac,
        owner: c.owner.clone(),
    };
    match config
        .addrs
        .iter_mut()
        .find(|a| a.bridge == c.bridge && a.vlan == c.vlan && a.ip == c.ip)
    {
        Some(a) => *a = entry,
        None => config.addrs.push(entry),
    }
    Ok(())
}

fn arp_del(config: &mut Config, c: &ArpDel) -> Result<(), CommandError> {
    need_bridge(config, &c.bridge)?;
    let before = config.addrs.len();
    config
        .addrs
        .retain(|a| !(a.bridge == c.bridge && a.vlan == c.vlan && a.ip == c.ip));
    if config.addrs.len() == before && !c.if_exists {
        return Err(CommandError::NotFound {
            what: format!("address {} vlan {} in bridge {:?}", c.ip, c.vlan, c.bridge),
        });
    }
    Ok(())
}

fn set_br(config: &mut Config, c: &SetBr) -> Result<(), CommandError> {
    let b = config
        .bridges
        .iter_mut()
        .find(|b| b.name == c.name)
        .ok_or_else(|| CommandError::NoBridge(c.name.clone()))?;
    if c.no_lookup && (c.lookup.is_some() || c.lookup_miss.is_some() || c.lookup_hold_ms.is_some())
    {
        return Err(CommandError::Refused(
            "no-lookup excludes lookup and lookup-miss".into(),
        ));
    }
    let tuning = c.lookup_miss.is_some() || c.lookup_hold_ms.is_some();
    let lookup = match (&c.lookup, &b.lookup) {
        _ if c.no_lookup => None,
        (Some(p), old) => Some(LookupConfig {
            provider: p.clone(),
            miss: c
                .lookup_miss
                .or(old.as_ref().map(|o| o.miss))
                .unwrap_or_default(),
            hold_ms: c
                .lookup_hold_ms
                .or(old.as_ref().map(|o| o.hold_ms))
                .unwrap_or(100),
        }),
        (None, Some(old)) if tuning => Some(LookupConfig {
            provider: old.provider.clone(),
            miss: c.lookup_miss.unwrap_or(old.miss),
            hold_ms: c.lookup_hold_ms.unwrap_or(old.hold_ms),
        }),
        (None, None) if tuning => {
            return Err(CommandError::Refused(format!(
                "bridge {:?} has no lookup: give lookup=PROVIDER too",
                c.name
            )))
        }
        (None, old) => old.clone(),
    };
    b.lookup = lookup;
    if let Some(l) = c.learning {
        b.learning = l;
    }
    if let Some(a) = c.arp_suppress {
        b.arp_suppress = a;
    }
    Ok(())
}

/// Removes what refers to the named ports: static MACs, ACLs, policers.
fn drop_port_refs(config: &mut Config, names: &[String]) {
    let gone = |n: &String| names.contains(n);
    config.fdb.retain(|f| !gone(&f.port));
    config.acls.retain(|a| !gone(&a.port));
    config.qos.retain(|q| !gone(&q.port));
}

fn del_br(config: &mut Config, c: &DelBr) -> Result<(), CommandError> {
    if !config.bridges.iter().any(|b| b.name == c.name) {
        if c.if_exists {
            return Ok(());
        }
        return Err(CommandError::NotFound {
            what: format!("bridge {:?}", c.name),
        });
    }
    let names: Vec<String> = config
        .ports
        .iter()
        .filter(|p| p.bridge == c.name)
        .map(|p| p.name.clone())
        .chain(
            config
                .tunnels
                .iter()
                .filter(|t| t.bridge == c.name)
                .map(|t| t.name.clone()),
        )
        .collect();
    config.bridges.retain(|b| b.name != c.name);
    config.ports.retain(|p| p.bridge != c.name);
    config.tunnels.retain(|t| t.bridge != c.name);
    config.fdb.retain(|f| f.bridge != c.name);
    config.addrs.retain(|a| a.bridge != c.name);
    drop_port_refs(config, &names);
    Ok(())
}

fn exists_error(what: &'static str, name: &str, bridge: &str, want_bridge: &str) -> CommandError {
    if what == "uplink" {
        CommandError::Refused(format!("{name:?} is the uplink"))
    } else if bridge != want_bridge {
        CommandError::Refused(format!(
            "{what} {name:?} already exists in bridge {bridge:?}"
        ))
    } else {
        CommandError::Exists {
            what,
            name: name.to_string(),
            hint: MAY_EXIST,
        }
    }
}

fn add_port(config: &mut Config, c: &AddPort) -> Result<(), CommandError> {
    need_bridge(config, &c.bridge)?;
    check_name("port name", &c.name)?;
    if let Some((what, bridge)) = name_used(config, &c.name) {
        if c.may_exist && what == "port" && bridge == c.bridge {
            return Ok(());
        }
        return Err(exists_error(what, &c.name, &bridge, &c.bridge));
    }
    let vlan = vlan_mode(c.tag, c.trunks.as_deref(), c.native)?;
    let mut p = PortConfig {
        vlan,
        queues: c.queues.unwrap_or(0),
        max_macs: c.max_macs,
        allowed_macs: c.allowed_macs.clone(),
        allowed_ips: c.allowed_ips.clone(),
        storm_pps: c.storm_pps,
        ..PortConfig::new(c.name.clone(), c.bridge.clone())
    };
    if let Some(m) = c.mtu {
        p.mtu = m;
    }
    config.ports.push(p);
    // Numbered now, so a later add-flow in the same transaction can name it.
    config.assign_port_numbers();
    Ok(())
}

fn vlan_mode(
    tag: Option<u16>,
    trunks: Option<&[u16]>,
    native: Option<u16>,
) -> Result<VlanMode, CommandError> {
    match (tag, trunks) {
        (Some(_), Some(_)) => Err(CommandError::Refused(
            "--tag and --trunks exclude each other (an access port or a trunk)".into(),
        )),
        (Some(t), None) => {
            if native.is_some() {
                return Err(CommandError::Refused(
                    "--native applies to a trunk (--trunks)".into(),
                ));
            }
            vlan_in_range("tag", t, 0)?;
            Ok(VlanMode::Access { tag: t })
        }
        (None, Some(list)) => {
            let mut trunks = Vec::with_capacity(list.len());
            for &v in list {
                vlan_in_range("trunk", v, 1)?;
                if !trunks.contains(&v) {
                    trunks.push(v);
                }
            }
            trunks.sort_unstable();
            if let Some(n) = native {
                vlan_in_range("native", n, 1)?;
            }
            Ok(VlanMode::Trunk { trunks, native })
        }
        (None, None) => {
            if native.is_some() {
                return Err(CommandError::Refused(
                    "--native applies to a trunk (--trunks)".into(),
                ));
            }
            Ok(VlanMode::default())
        }
    }
}

fn add_tunnel(config: &mut Config, c: &AddTunnel) -> Result<(), CommandError> {
    need_bridge(config, &c.bridge)?;
    check_name("tunnel name", &c.name)?;
    if let Some((what, bridge)) = name_used(config, &c.name) {
        if c.may_exist && what == "tunnel" && bridge == c.bridge {
            return Ok(());
        }
        return Err(exists_error(what, &c.name, &bridge, &c.bridge));
    }
    check_remotes(&c.remotes)?;
    check_tunnel_fields(Some(c.vni), c.local, c.dst_port, c.ttl)?;
    if c.kind == TunnelKind::Vxlan && !c.geneve_opts.is_empty() {
        return Err(CommandError::Refused(
            "Geneve options (--geneve-opt) on a VXLAN tunnel".into(),
        ));
    }
    for o in &c.geneve_opts {
        if o.data.len() % 4 != 0 || o.data.len() > 124 {
            return Err(invalid(
                "geneve option data",
                format!("{:#06x}:{:#04x} ({} bytes)", o.class, o.typ, o.data.len()),
                "length must be a multiple of 4 bytes, at most 124",
            ));
        }
    }
    let t = c.to_config();
    config.tunnels.push(t);
    config.assign_port_numbers();
    Ok(())
}

fn set_port(config: &mut Config, c: &SetPort) -> Result<(), CommandError> {
    let Some(p) = config.ports.iter_mut().find(|p| p.name == c.name) else {
        if config.tunnels.iter().any(|t| t.name == c.name) {
            return Err(CommandError::Refused(format!(
                "{:?} is a tunnel: set-port changes local ports (set-tunnel changes tunnels)",
                c.name
            )));
        }
        return Err(CommandError::NoPort(c.name.clone()));
    };
    if let Some(m) = c.max_macs {
        p.max_macs = (m != 0).then_some(m);
    }
    if let Some(m) = &c.allowed_macs {
        p.allowed_macs = m.clone();
    }
    if let Some(ips) = &c.allowed_ips {
        p.allowed_ips = ips.clone();
    }
    if let Some(n) = c.storm_pps {
        p.storm_pps = (n != 0).then_some(n);
    }
    Ok(())
}

fn set_tunnel(config: &mut Config, c: &SetTunnel) -> Result<(), CommandError> {
    let Some(i) = config.tunnels.iter().position(|t| t.name == c.name) else {
        return Err(CommandError::NoPort(c.name.clone()));
    };
    if let Some(rs) = &c.remotes {
        check_remotes(rs)?;
    }
    check_tunnel_fields(c.vni, c.local, c.dst_port, c.ttl)?;
    let mut t = config.tunnels[i].clone();
    c.apply_to(&mut t);
    // Flow actions name configured remotes by position: none may point
    // past the new list.
    let (bridge, n) = (t.bridge.clone(), t.remotes.len());
    let no = config.port_numbers().get(c.name.as_str()).copied();
    if let Some(b) = config.bridges.iter().find(|b| b.name == bridge) {
        for f in &b.flows {
            let Ok(rule) = f.parse::<FlowRule>() else {
                continue;
            };
            for a in &rule.actions {
                if let xvs_types::flow::Action::Tunnel { port, remote } = a {
                    if Some(*port) == no && usize::from(*remote) >= n {
                        return Err(CommandError::Refused(format!(
                            "flow {f:?} sends to remote {remote} of tunnel {:?}, which would have {n} remote(s)",
                            c.name
                        )));
                    }
                }
            }
        }
    }
    config.tunnels[i] = t;
    Ok(())
}

fn del_port(config: &mut Config, c: &DelPort) -> Result<(), CommandError> {
    let Some(p) = find_port(config, &c.name) else {
        if config.uplink.as_ref().is_some_and(|u| u.iface == c.name) {
            return Err(CommandError::Refused(format!(
                "{:?} is the uplink, not a port (set-uplink replaces it)",
                c.name
            )));
        }
        if c.if_exists {
            return Ok(());
        }
        return Err(CommandError::NotFound {
            what: format!("port or tunnel {:?}", c.name),
        });
    };
    // A flow naming the port would no longer compile; say so here, with the
    // flow, rather than deleting rules the operator wrote.
    if let Some(n) = p.number {
        let bridge = p.bridge.to_string();
        if let Some(b) = config.bridges.iter().find(|b| b.name == bridge) {
            for (i, text) in b.flows.iter().enumerate() {
                if let Ok(rule) = text.parse::<FlowRule>() {
                    if rule.referenced_ports().any(|x| x == n) {
                        return Err(CommandError::Refused(format!(
                            "port {:?} (number {n}) is used by flow {} of bridge {bridge:?} ({text}): delete that flow first",
                            c.name,
                            i + 1
                        )));
                    }
                }
            }
        }
    }
    config.ports.retain(|x| x.name != c.name);
    config.tunnels.retain(|x| x.name != c.name);
    drop_port_refs(config, std::slice::from_ref(&c.name));
    Ok(())
}

fn set_uplink(config: &mut Config, c: &SetUplink) -> Result<(), CommandError> {
    check_name("uplink", &c.iface)?;
    if let Some((what, _)) = name_used(config, &c.iface) {
        if what != "uplink" {
            return Err(CommandError::Refused(format!(
                "{:?} is a {what}, it cannot also be the uplink",
                c.iface
            )));
        }
    }
    if let Some(m) = c.mac {
        unicast_mac("mac", m)?;
    }
    for ip in &c.local_ips {
        unicast_ip("local IP", *ip)?;
    }
    let mut seen = Vec::new();
    for ip in &c.local_ips {
        if seen.contains(ip) {
            return Err(invalid("local IP", ip, "listed twice"));
        }
        seen.push(*ip);
    }
    let old = config.uplink.take().filter(|u| u.iface == c.iface);
    let mut u = old.unwrap_or(UplinkConfig {
        iface: c.iface.clone(),
        number: None,
        mac: None,
        local_ips: Vec::new(),
        mtu: 1500,
    });
    if !c.local_ips.is_empty() {
        u.local_ips = c.local_ips.clone();
    }
    if c.mac.is_some() {
        u.mac = c.mac;
    }
    if let Some(m) = c.mtu {
        u.mtu = m;
    }
    config.uplink = Some(u);
    config.assign_port_numbers();
    Ok(())
}

fn neigh_set(config: &mut Config, c: &NeighSet) -> Result<(), CommandError> {
    unicast_ip("ip", c.ip)?;
    unicast_mac("mac", c.mac)?;
    match config.neighbors.iter_mut().find(|n| n.ip == c.ip) {
        Some(n) => n.mac = c.mac,
        None => config.neighbors.push(NeighborConfig {
            ip: c.ip,
            mac: c.mac,
        }),
    }
    Ok(())
}

fn neigh_flush(config: &mut Config, c: &NeighFlush) -> Result<(), CommandError> {
    match c.ip {
        None => config.neighbors.clear(),
        Some(ip) => {
            let before = config.neighbors.len();
            config.neighbors.retain(|n| n.ip != ip);
            if config.neighbors.len() == before && !c.if_exists {
                return Err(CommandError::NotFound {
                    what: format!("static neighbor {ip}"),
                });
            }
        }
    }
    Ok(())
}

fn route_add(config: &mut Config, c: &RouteAdd) -> Result<(), CommandError> {
    let dev = match (&c.dev, &config.uplink) {
        (Some(d), _) => d.clone(),
        (None, Some(u)) => u.iface.clone(),
        (None, None) => {
            return Err(CommandError::Refused(
                "no --dev given and no uplink set (set-uplink first)".into(),
            ))
        }
    };
    if dev.is_empty() {
        return Err(invalid("dev", "\"\"", "empty interface name"));
    }
    if let Some(g) = c.gateway {
        unicast_ip("gateway", g)?;
        if g.is_ipv4() != c.prefix.is_ipv4() {
            return Err(invalid(
                "gateway",
                g,
                format!("not of the family of prefix {}", c.prefix),
            ));
        }
    }
    let route = RouteConfig {
        prefix: c.prefix,
        gateway: c.gateway,
        dev,
        metric: c.metric,
    };
    match config
        .routes
        .iter_mut()
        .find(|r| r.prefix == c.prefix && r.metric == c.metric)
    {
        Some(r) if c.may_exist => *r = route,
        Some(_) => {
            return Err(CommandError::Exists {
                what: "route",
                name: format!("{} metric {}", c.prefix, c.metric),
                hint: " (use --may-exist to replace it)",
            })
        }
        None => config.routes.push(route),
    }
    Ok(())
}

fn route_del(config: &mut Config, c: &RouteDel) -> Result<(), CommandError> {
    let before = config.routes.len();
    config
        .routes
        .retain(|r| !(r.prefix == c.prefix && c.metric.is_none_or(|m| m == r.metric)));
    if config.routes.len() == before && !c.if_exists {
        let metric = c.metric.map(|m| format!(" metric {m}")).unwrap_or_default();
        return Err(CommandError::NotFound {
            what: format!("route {}{metric}", c.prefix),
        });
    }
    Ok(())
}

/// Ports of one bridge: name, number, and the tunnel's remotes if a tunnel.
fn bridge_ports<'c>(
    config: &'c Config,
    bridge: &str,
) -> Vec<(&'c str, PortNo, Option<&'c [IpAddr]>)> {
    let ports = config
        .ports
        .iter()
        .filter(|p| p.bridge == bridge)
        .filter_map(|p| p.number.map(|n| (p.name.as_str(), n, None)));
    let tunnels = config
        .tunnels
        .iter()
        .filter(|t| t.bridge == bridge)
        .filter_map(|t| {
            t.number
                .map(|n| (t.name.as_str(), n, Some(t.remotes.as_slice())))
        });
    ports.chain(tunnels).collect()
}

fn is_number(s: &str) -> bool {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"));
    match h {
        Some(h) => !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// Rewrites port names in flow text (`in_port=vm1`, `output:vx1`, a bare
/// `vx1` action, `tunnel:vx1:192.0.2.2`) into the numbers the dataplane's
/// parser takes. Unknown names are left for the parser to reject, except
/// where a port is clearly meant (`in_port=`, `output:`, `tunnel:`).
pub fn resolve_port_names(
    text: &str,
    config: &Config,
    bridge: &str,
) -> Result<String, CommandError> {
    let ports = bridge_ports(config, bridge);
    let lookup = |name: &str, what: &str| -> Result<(PortNo, Option<&[IpAddr]>), CommandError> {
        ports
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, no, r)| (*no, *r))
            .ok_or_else(|| CommandError::Flow {
                text: text.to_string(),
                reason: format!("{what}: no port {name:?} in bridge {bridge:?}"),
            })
    };
    let (head, acts) = match text.find("actions=") {
        Some(pos) => (&text[..pos], Some(&text[pos + "actions=".len()..])),
        None => (text, None),
    };
    let mut out = Vec::new();
    for tok in head.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
        match tok.split_once('=') {
            Some(("in_port", v)) if !is_number(v.trim()) => {
                let (n, _) = lookup(v.trim(), tok)?;
                out.push(format!("in_port={n}"));
            }
            _ => out.push(tok.to_string()),
        }
    }
    let mut text_out = out.join(",");
    if let Some(acts) = acts {
        let mut list = Vec::new();
        for a in acts.split(',').map(str::trim) {
            let lower = a.to_ascii_lowercase();
            let resolved = if let Some(p) =
                lower.strip_prefix("output:").map(|_| &a["output:".len()..])
            {
                if is_number(p) {
                    a.to_string()
                } else {
                    format!("output:{}", lookup(p, a)?.0)
                }
            } else if let Some(rest) = lower.strip_prefix("tunnel:").map(|_| &a["tunnel:".len()..])
            {
                let (p, r) = rest.split_once(':').unwrap_or((rest, ""));
                let (no, remotes) = if is_number(p) {
                    (
                        p.to_string(),
                        ports
                            .iter()
                            .find(|(_, n, _)| n.to_string() == p)
                            .and_then(|x| x.2),
                    )
                } else {
                    let (n, rem) = lookup(p, a)?;
                    (n.to_string(), rem)
                };
                let idx = match r.parse::<IpAddr>() {
                    Ok(ip) => {
                        let i = remotes
                            .and_then(|rs| rs.iter().position(|x| *x == ip))
                            .ok_or_else(|| CommandError::Flow {
                                text: text.to_string(),
                                reason: format!("{a}: {ip} is not a remote of tunnel {p:?}"),
                            })?;
                        i.to_string()
                    }
                    Err(_) => r.to_string(),
                };
                format!("tunnel:{no}:{idx}")
            } else if !a.contains(':')
                && !is_number(a)
                && !matches!(lower.as_str(), "normal" | "drop" | "flood" | "strip_vlan")
                && ports.iter().any(|(n, _, _)| *n == a)
            {
                format!("output:{}", lookup(a, a)?.0)
            } else {
                a.to_string()
            };
            list.push(resolved);
        }
        if !text_out.is_empty() {
            text_out.push(',');
        }
        text_out.push_str("actions=");
        text_out.push_str(&list.join(","));
    }
    Ok(text_out)
}

fn parse_flow(text: &str, config: &Config, bridge: &str) -> Result<FlowRule, CommandError> {
    let resolved = resolve_port_names(text, config, bridge)?;
    resolved
        .parse::<FlowRule>()
        .map_err(|e| CommandError::Flow {
            text: text.to_string(),
            reason: e.to_string(),
        })
}

fn add_flow(config: &mut Config, c: &AddFlow) -> Result<(), CommandError> {
    need_bridge(config, &c.bridge)?;
    let rule = parse_flow(&c.flow, config, &c.bridge)?;
    rule.matches.to_key_mask().map_err(|e| CommandError::Flow {
        text: c.flow.clone(),
        reason: e.to_string(),
    })?;
    let ports = bridge_ports(config, &c.bridge);
    for p in rule.referenced_ports() {
        if !ports.iter().any(|(_, n, _)| *n == p) {
            return Err(CommandError::Flow {
                text: c.flow.clone(),
                reason: format!("port {p} is not a port of bridge {:?}", c.bridge),
            });
        }
    }
    for a in &rule.actions {
        if let xvs_types::flow::Action::Tunnel { port, remote } = a {
            let remotes = ports.iter().find(|(_, n, _)| n == port).and_then(|x| x.2);
            match remotes {
                None => {
                    return Err(CommandError::Flow {
                        text: c.flow.clone(),
                        reason: format!("tunnel:{port}:{remote}: port {port} is not a tunnel"),
                    })
                }
                Some(rs) if usize::from(*remote) >= rs.len() => {
                    return Err(CommandError::Flow {
                        text: c.flow.clone(),
                        reason: format!(
                            "tunnel:{port}:{remote}: the tunnel has {} remote(s), numbered from 0",
                            rs.len()
                        ),
                    })
                }
                _ => {}
            }
        }
    }
    let text = rule.to_string();
    let Some(b) = config.bridges.iter_mut().find(|b| b.name == c.bridge) else {
        return Err(CommandError::NoBridge(c.bridge.clone()));
    };
    let same = b.flows.iter().position(|f| {
        f.parse::<FlowRule>()
            .is_ok_and(|r| r.priority == rule.priority && r.matches == rule.matches)
    });
    match same {
        Some(i) => b.flows[i] = text,
        None => b.flows.push(text),
    }
    Ok(())
}

/// Whether `rule` matches only packets `filter` matches: every field the
/// filter sets, the rule sets at least as precisely, to the same value.
fn covers(filter: &FlowMatch, rule: &FlowMatch) -> bool {
    let (Ok((fk, fm)), Ok((rk, rm))) = (filter.to_key_mask(), rule.to_key_mask()) else {
        return false;
    };
    fk.0.iter()
        .zip(fm.0.iter())
        .zip(rk.0.iter().zip(rm.0.iter()))
        .all(|((fk, fm), (rk, rm))| rm & fm == *fm && rk & fm == *fk)
}

fn del_flows(config: &mut Config, c: &DelFlows) -> Result<(), CommandError> {
    need_bridge(config, &c.bridge)?;
    let filter = match &c.matches {
        None => None,
        Some(m) if m.trim().is_empty() => None,
        Some(m) => {
            let resolved = resolve_port_names(m, config, &c.bridge)?;
            let mut priority = None;
            let mut rest = Vec::new();
            for tok in resolved.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
                match tok.split_once('=') {
                    Some(("priority", v)) => {
                        priority =
                            Some(v.trim().parse::<u32>().map_err(|_| CommandError::Flow {
                                text: m.clone(),
                                reason: format!("bad priority {v:?}"),
                            })?)
                    }
                    Some(("actions", _)) => {
                        return Err(CommandError::Flow {
                            text: m.clone(),
                            reason: "del-flows takes a match, not actions".into(),
                        })
                    }
                    _ => rest.push(tok),
                }
            }
            let fm: FlowMatch =
                rest.join(",")
                    .parse()
                    .map_err(|e: xvs_types::flow::FlowError| CommandError::Flow {
                        text: m.clone(),
                        reason: e.to_string(),
                    })?;
            Some((priority, fm))
        }
    };
    let Some(b) = config.bridges.iter_mut().find(|b| b.name == c.bridge) else {
        return Err(CommandError::NoBridge(c.bridge.clone()));
    };
    match filter {
        None => b.flows.clear(),
        Some((priority, fm)) => b.flows.retain(|text| {
            let Ok(r) = text.parse::<FlowRule>() else {
                return true;
            };
            let hit = if c.strict {
                priority.is_none_or(|p| p == r.priority) && r.matches == fm
            } else {
                priority.is_none_or(|p| p == r.priority) && covers(&fm, &r.matches)
            };
            !hit
        }),
    }
    Ok(())
}

fn acl_text(priority: u32, matches: &str, action: AclAction) -> String {
    let m = matches.trim().trim_matches(',');
    if m.is_empty() {
        format!("priority={priority},action={action}")
    } else {
        format!("priority={priority},{m},action={action}")
    }
}

fn acl_add(config: &mut Config, c: &AclAdd) -> Result<(), CommandError> {
    need_port(config, &c.port)?;
    if c.matches.contains("action") || c.matches.contains("priority") {
        return Err(CommandError::Acl {
            text: c.matches.clone(),
            reason: "give the priority with --prio and the action with --action, not in the match"
                .into(),
        });
    }
    let text = acl_text(c.priority, &c.matches, c.action);
    let rule: AclRule =
        text.parse()
            .map_err(|e: xvs_types::acl::AclParseError| CommandError::Acl {
                text: c.matches.clone(),
                reason: e.to_string(),
            })?;
    let idx = config
        .acls
        .iter()
        .position(|a| a.port == c.port && a.dir == c.dir);
    let mut rules: Vec<String> = idx
        .map(|i| config.acls[i].rules.clone())
        .unwrap_or_default();
    let same = rules.iter().position(|t| {
        t.parse::<AclRule>()
            .is_ok_and(|r| r.priority == rule.priority && r.matches == rule.matches)
    });
    match same {
        Some(i) => rules[i] = text.clone(),
        None => rules.push(text.clone()),
    }
    // The LSDN restriction (one match shape per priority) is a property of
    // the whole list: check it now, so the message names this command.
    let parsed: Result<Vec<AclRule>, _> = rules.iter().map(|t| t.parse::<AclRule>()).collect();
    let parsed = parsed.map_err(|e| CommandError::Acl {
        text: c.matches.clone(),
        reason: format!(
            "an existing rule of {} {} does not parse: {e}",
            c.port, c.dir
        ),
    })?;
    if let Err(e) = acl::key_masks(&parsed) {
        return Err(CommandError::Acl {
            text,
            reason: format!(
                "conflicts with the rules of port {:?} {}: {e}",
                c.port, c.dir
            ),
        });
    }
    match idx {
        Some(i) => config.acls[i].rules = rules,
        None => config.acls.push(AclConfig {
            port: c.port.clone(),
            dir: c.dir,
            rules,
        }),
    }
    Ok(())
}

fn acl_del(config: &mut Config, c: &AclDel) -> Result<(), CommandError> {
    need_port(config, &c.port)?;
    let filter = match &c.matches {
        Some(m) if !m.trim().is_empty() => {
            let text = acl_text(c.priority.unwrap_or(0), m, AclAction::Allow);
            let r: AclRule =
                text.parse()
                    .map_err(|e: xvs_types::acl::AclParseError| CommandError::Acl {
                        text: m.clone(),
                        reason: e.to_string(),
                    })?;
            Some(r.matches)
        }
        _ => None,
    };
    let not_found = || CommandError::NotFound {
        what: format!(
            "ACL rule of port {:?} {}{}{}",
            c.port,
            c.dir,
            c.priority
                .map(|p| format!(" priority {p}"))
                .unwrap_or_default(),
            c.matches
                .as_ref()
                .map(|m| format!(" matching {m:?}"))
                .unwrap_or_default()
        ),
    };
    let Some(i) = config
        .acls
        .iter()
        .position(|a| a.port == c.port && a.dir == c.dir)
    else {
        return if c.if_exists {
            Ok(())
        } else {
            Err(not_found())
        };
    };
    let acl = &mut config.acls[i];
    let before = acl.rules.len();
    acl.rules.retain(|t| {
        let Ok(r) = t.parse::<AclRule>() else {
            return true;
        };
        let hit =
            c.priority.is_none_or(|p| p == r.priority) && filter.is_none_or(|m| m == r.matches);
        !hit
    });
    if acl.rules.len() == before && !c.if_exists {
        return Err(not_found());
    }
    if acl.rules.is_empty() {
        config.acls.remove(i);
    }
    Ok(())
}

fn qos_set(config: &mut Config, c: &QosSet) -> Result<(), CommandError> {
    need_port(config, &c.port)?;
    if c.rate_bps == 0 {
        return Err(invalid(
            "rate",
            0,
            "a rate of zero passes nothing (use an ACL to drop)",
        ));
    }
    if c.burst_bytes == 0 {
        return Err(invalid("burst", 0, "a burst of zero passes nothing"));
    }
    if c.peak_bps == Some(0) {
        return Err(invalid("peak", 0, "a peak rate of zero passes nothing"));
    }
    // The same check the dataplane runs when it compiles the policer, so a
    // rate below 8 bit/s or a burst below one frame is refused here.
    PolicerConfig::new(c.rate_bps / 8, c.burst_bytes)
        .and_then(|p| match c.peak_bps {
            Some(peak) => p.with_peak(peak / 8),
            None => Ok(p),
        })
        .map_err(|e| CommandError::Refused(format!("policer for {:?} {}: {e}", c.port, c.dir)))?;
    let q = QosConfig {
        port: c.port.clone(),
        dir: c.dir,
        rate_bps: c.rate_bps,
        burst_bytes: c.burst_bytes,
        peak_bps: c.peak_bps,
    };
    match config
        .qos
        .iter_mut()
        .find(|x| x.port == c.port && x.dir == c.dir)
    {
        Some(x) => *x = q,
        None => config.qos.push(q),
    }
    Ok(())
}

fn qos_clear(config: &mut Config, c: &QosClear) -> Result<(), CommandError> {
    need_port(config, &c.port)?;
    let before = config.qos.len();
    config
        .qos
        .retain(|q| !(q.port == c.port && c.dir.is_none_or(|d| d == q.dir)));
    if config.qos.len() == before && !c.if_exists {
        return Err(CommandError::NotFound {
            what: format!(
                "policer on {:?}{}",
                c.port,
                c.dir.map(|d| format!(" {d}")).unwrap_or_default()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
