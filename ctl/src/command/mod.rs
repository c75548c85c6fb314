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
//!
//! Parts: this file holds the wire form (the params structs, [`Command`],
//! [`CommandError`]) and the tunnel options' translation to and from the
//! model; `edit.rs` the transaction and the checks verbs share; one file
//! per kind of verb: `bridges.rs`, `ports.rs`, `underlay.rs`, `flows.rs`,
//! `policy.rs`, `mirrors.rs`; `tests.rs` the tests.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use xvs_config::{
    AclConfig, BridgeConfig, Config, ConfigErrors, Direction, GeneveOptConfig, LookupConfig,
    LookupProviderConfig, MirrorDir, MissAction, NeighborConfig, OverlayAddrConfig, PortConfig,
    PortKind, QosConfig, RouteConfig, Shared, StaticFdbConfig, TosConfig, TunnelConfig, TunnelKind,
    UplinkConfig, VlanMode, MAX_VNI,
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
    /// What the port is (absent: an interface, by AF_XDP).
    #[serde(default, skip_serializing_if = "PortKind::is_afxdp")]
    pub kind: PortKind,
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

/// `mirror-add NAME --src PORT[,PORT] [--dir in|out|both] --to
/// PORT|TUNNEL`: copies of what the sources receive and/or send, out of
/// a local port (SPAN) or a tunnel port (to its remote VTEPs). The
/// output then carries nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorAdd {
    pub name: String,
    pub src: Vec<String>,
    #[serde(default)]
    pub dir: MirrorDir,
    pub to: String,
    /// An existing mirror of that name is not an error (nothing changes).
    #[serde(default)]
    pub may_exist: bool,
}

/// `mirror-del NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorDel {
    pub name: String,
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
    MirrorAdd(MirrorAdd) = "mirror-add",
    MirrorDel(MirrorDel) = "mirror-del",
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
            Command::MirrorAdd(c) => c.name.clone(),
            Command::MirrorDel(c) => c.name.clone(),
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
            Command::MirrorAdd(c) => vec![format!("mirror {:?}", c.name)],
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

mod bridges;
mod edit;
mod flows;
mod mirrors;
mod policy;
mod ports;
mod underlay;

pub use edit::{apply, apply_all, attribute, edit_all};
pub use flows::resolve_port_names;

#[cfg(test)]
mod tests;
