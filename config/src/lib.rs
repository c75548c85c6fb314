//! Desired configuration: bridges, ports, the uplink, tunnel ports, static
//! FDB entries, flows, firewall rules and policers, as an operator states
//! them (names, not indices).
//!
//! This is what xvsctl edits, what a config file holds and what is persisted.
//! [`Config::validate`] checks the whole thing and returns every problem at
//! once (LSDN's validate-then-commit); only a valid config is compiled into a
//! snapshot, so a change either applies completely or not at all.
//!
//! The vocabulary it is written in (MACs, prefixes, rule languages, tunnel
//! kinds) is `xvs-types`'; this crate adds what an operator states and
//! the checks that keep a whole config consistent. It makes no syscall and
//! knows nothing of the dataplane that compiles it.
//!
//! Parts: this file holds the serde model (the types, their defaults and
//! serde forms), reading a TOML file and port numbering; `validate.rs`
//! whole-config validation ([`Config::validate`], [`ConfigErrors`]);
//! `objects.rs` the checks of one object both validations call;
//! `incremental.rs` the validation of a change against the running config
//! ([`ValidConfig::revalidate`]) and `index.rs` the index it checks
//! against; `mirror.rs` port mirrors and their checks; `shared.rs` how the config holds its objects ([`Shared`],
//! [`changed_span`]); `checks.rs` the rules single
//! values are held to ([`check_name`], [`remote_vtep`], [`is_unicast_ip`],
//! [`is_unicast_mac`]).
//! Everything is re-exported here, so users name `xvs_config::X` only.

mod checks;
mod incremental;
mod index;
mod mirror;
mod objects;
mod shared;
mod validate;

pub use checks::{check_name, is_unicast_ip, is_unicast_mac, remote_vtep, MAX_NAME_LEN};
pub use incremental::{Revalidation, ValidConfig};
pub use mirror::{MirrorConfig, MirrorDir, MAX_MIRRORS};
pub use shared::{changed_span, Shared};
pub use validate::{ConfigError, ConfigErrors};

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use xvs_types::{MacAddr, PortNo};
pub use xvs_types::{MissAction, TunnelKind};

/// Largest valid VNI (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;
/// Default ephemeral range for the outer UDP source port (RFC 7348 §5).
pub const DEFAULT_SRC_PORT_RANGE: (u16, u16) = (49152, 65535);
/// Port numbers are assigned from here up; 0 is never a port.
pub const FIRST_PORT_NO: PortNo = 1;

/// The whole desired configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub bridges: Vec<Shared<BridgeConfig>>,
    pub uplink: Option<UplinkConfig>,
    pub ports: Vec<Shared<PortConfig>>,
    pub tunnels: Vec<Shared<TunnelConfig>>,
    pub fdb: Vec<Shared<StaticFdbConfig>>,
    pub acls: Vec<Shared<AclConfig>>,
    pub qos: Vec<Shared<QosConfig>>,
    /// Underlay routes added by the operator (OVS `ovs/route/add`); they
    /// sit beside the routes read from the kernel (longest prefix, then
    /// lowest metric wins).
    pub routes: Vec<Shared<RouteConfig>>,
    /// Static underlay neighbors (OVS `tnl/arp/set`): never expire, never
    /// replaced by snooped or kernel entries.
    pub neighbors: Vec<Shared<NeighborConfig>>,
    /// Records of higher control planes (the applied network model, ...),
    /// persisted and changed in the same transactions as the objects they
    /// describe; the dataplane never reads them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, serde_json::Value>,
    /// The overlay address table: which MAC an overlay IP has, per bridge
    /// and VLAN (what ARP/ND suppression answers from).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addrs: Vec<Shared<OverlayAddrConfig>>,
    /// Port mirrors (SPAN to a local port, or to a remote VTEP through a
    /// tunnel port).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<Shared<MirrorConfig>>,
}

/// One overlay address: `ip` is at `mac` in `bridge`, VLAN `vlan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverlayAddrConfig {
    pub bridge: String,
    #[serde(default)]
    pub vlan: u16,
    pub ip: IpAddr,
    pub mac: MacAddr,
    /// The control plane that installed the entry (e.g. "model", "etcd"),
    /// so each one diffs only its own; none for the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// An operator's underlay route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub prefix: xvs_types::Prefix,
    /// Next hop; none for an on-link prefix.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// Output interface (the uplink).
    pub dev: String,
    #[serde(default)]
    pub metric: u32,
}

/// A static underlay neighbor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborConfig {
    pub ip: IpAddr,
    pub mac: MacAddr,
}

/// A bridge: one L2 domain (per VLAN), with its own FDB and flow table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    pub name: String,
    /// Most MACs the bridge learns (static entries count too).
    #[serde(default = "default_fdb_max")]
    pub fdb_max_entries: usize,
    /// Idle time after which a learned MAC is forgotten.
    #[serde(default = "default_fdb_aging")]
    pub fdb_aging_secs: u64,
    /// Flow rules in the OpenFlow-like text syntax of `tables::flow`.
    /// An empty list means the bridge is a plain learning switch (NORMAL).
    #[serde(default)]
    pub flows: Vec<String>,
    /// Learn source MACs (the default). Off: the FDB holds only static
    /// entries and those a control plane installs (LSDN's static mode);
    /// unknown destinations still flood (or go to the lookup, if any).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub learning: bool,
    /// Answer ARP requests and IPv6 neighbor solicitations for addresses
    /// in the bridge's overlay address table ([`Config::addrs`]) on the
    /// port they came in on, instead of flooding them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub arp_suppress: bool,
    /// Lookup on miss (illumos varpd): unknown unicast destinations and
    /// ARP/ND requests for unknown addresses are asked of a provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<LookupConfig>,
}

/// How a bridge looks up what it does not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupConfig {
    pub provider: LookupProviderConfig,
    /// What happens to the frame that missed meanwhile.
    #[serde(default)]
    pub miss: MissAction,
    /// With `miss = "hold"`: how long a frame waits for the answer (1 to
    /// 1000 ms) before it is dropped (`hold_expired`).
    #[serde(default = "default_hold_ms")]
    pub hold_ms: u64,
}

fn default_hold_ms() -> u64 {
    100
}

impl LookupConfig {
    pub fn new(provider: LookupProviderConfig, miss: MissAction) -> LookupConfig {
        LookupConfig {
            provider,
            miss,
            hold_ms: default_hold_ms(),
        }
    }
}

/// Who answers a bridge's misses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LookupProviderConfig {
    /// Answers from its own entries (and the bridge's static tables).
    Static {
        #[serde(default)]
        entries: Vec<LookupEntryConfig>,
    },
    /// Every MAC is behind this VTEP.
    Direct { vtep: IpAddr },
    /// Every MAC is behind this multicast group.
    Multicast { group: IpAddr },
    /// Misses are published on the control socket (`lookup-misses`) and
    /// answered by clients with ordinary transactions (fdb-add, arp-add).
    External,
}

/// One entry of a static provider: `mac` (VLAN `vlan`) is behind VTEP
/// `vtep`, and/or has the address `ip`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupEntryConfig {
    #[serde(default)]
    pub vlan: u16,
    pub mac: MacAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtep: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
}

impl LookupConfig {
    /// The VTEP addresses the provider may answer with, for validation.
    pub fn vteps(&self) -> Vec<IpAddr> {
        match &self.provider {
            LookupProviderConfig::Static { entries } => {
                entries.iter().filter_map(|e| e.vtep).collect()
            }
            LookupProviderConfig::Direct { vtep } => vec![*vtep],
            LookupProviderConfig::Multicast { group } => vec![*group],
            LookupProviderConfig::External => Vec::new(),
        }
    }
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_fdb_max() -> usize {
    65_536
}
fn default_fdb_aging() -> u64 {
    300
}

impl BridgeConfig {
    pub fn new(name: impl Into<String>) -> Self {
        BridgeConfig {
            name: name.into(),
            fdb_max_entries: default_fdb_max(),
            fdb_aging_secs: default_fdb_aging(),
            flows: Vec::new(),
            learning: true,
            arp_suppress: false,
            lookup: None,
        }
    }
}

/// 802.1Q membership of a port (the Open vSwitch model).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum VlanMode {
    /// Untagged frames belong to VLAN `tag`; tagged frames are dropped.
    /// `tag = 0` is the bridge's untagged domain.
    Access { tag: u16 },
    /// Tagged frames with a VID in `trunks` (empty = all VIDs) are accepted;
    /// untagged frames belong to `native` if set, else are dropped.
    Trunk {
        #[serde(default)]
        trunks: Vec<u16>,
        #[serde(default)]
        native: Option<u16>,
    },
}

impl Default for VlanMode {
    fn default() -> Self {
        VlanMode::Access { tag: 0 }
    }
}

/// The underlay uplink: where tunnel packets leave and arrive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    pub iface: String,
    #[serde(default)]
    pub number: Option<PortNo>,
    /// The uplink's MAC (outer source MAC). Read from the kernel by the
    /// daemon when absent.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// Local VTEP addresses (the kernel keeps them on the interface). Tunnel
    /// ports without `local` use the first of the matching family.
    #[serde(default)]
    pub local_ips: Vec<IpAddr>,
    #[serde(default = "default_mtu")]
    pub mtu: u16,
}

fn default_mtu() -> u16 {
    1500
}

impl PortConfig {
    /// A port as a config file or `add-port` gives it with nothing but
    /// its name and bridge: untagged, MTU 1500, every queue, no limits.
    pub fn new(name: impl Into<String>, bridge: impl Into<String>) -> Self {
        PortConfig {
            name: name.into(),
            bridge: bridge.into(),
            number: None,
            vlan: VlanMode::default(),
            mtu: default_mtu(),
            queues: 0,
            max_macs: None,
            allowed_macs: Vec::new(),
            allowed_ips: Vec::new(),
            storm_pps: None,
            kind: PortKind::default(),
        }
    }
}

/// The most queue pairs a vhost-user port offers its guest.
pub const MAX_VHOST_QUEUE_PAIRS: usize = 8;

/// How a local port reaches its guest.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PortKind {
    /// The kernel interface the port is named after (a veth or tap),
    /// through AF_XDP sockets and our XDP program.
    #[default]
    Afxdp,
    /// A virtual machine's virtio-net device over a vhost-user socket:
    /// xvsd listens on `socket` (QEMU connects), or with `client`
    /// connects to QEMU's (`server=on`) and reconnects when QEMU restarts.
    VhostUser {
        socket: std::path::PathBuf,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        client: bool,
    },
    /// A tap device for a QEMU guest (`-netdev tap,ifname=NAME`), served
    /// like `Afxdp`. xvsd creates it persistent with a virtio-net header
    /// (QEMU opens it by name; it outlives QEMU and xvsd, so a guest
    /// restarted or an xvsd restarted finds it) and deletes it with the
    /// port.
    Tap,
}

impl PortKind {
    pub fn is_afxdp(&self) -> bool {
        matches!(self, PortKind::Afxdp)
    }

    /// Served through a kernel interface of the port's name (AF_XDP and
    /// our XDP program), not a socket of its own.
    pub fn is_interface(&self) -> bool {
        matches!(self, PortKind::Afxdp | PortKind::Tap)
    }
}

/// A local (VM-facing) port: an interface through AF_XDP (a tap xvsd
/// creates among them), or a vhost-user socket (`kind`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    pub name: String,
    pub bridge: String,
    /// Stable port number (the OpenFlow port number flows refer to);
    /// assigned by [`Config::assign_port_numbers`] when absent.
    #[serde(default)]
    pub number: Option<PortNo>,
    #[serde(default)]
    pub vlan: VlanMode,
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Number of rx/tx queues to bind (0 = all the device has); of a
    /// vhost-user port, the queue pairs offered to the guest (0 = 1, at
    /// most [`MAX_VHOST_QUEUE_PAIRS`]).
    #[serde(default)]
    pub queues: u16,
    /// At most this many MACs are learned behind the port (absent: only
    /// the bridge's `fdb_max_entries` bounds them), so one VM cannot fill
    /// the bridge's table for all the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_macs: Option<u32>,
    /// Port security: the only source MACs the port may send from (empty:
    /// not secured). See `policy::port_security`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_macs: Vec<MacAddr>,
    /// With `allowed_macs`: the only source IPs (empty: IPs not checked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_ips: Vec<IpAddr>,
    /// Storm control: broadcast, multicast and unknown unicast frames the
    /// port may send per second (a second's worth may come at once);
    /// beyond, they are dropped as `storm_control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_pps: Option<u32>,
    /// What the port is (absent: an interface, by AF_XDP).
    #[serde(default, skip_serializing_if = "PortKind::is_afxdp")]
    pub kind: PortKind,
}

/// Outer TOS: a fixed value, or copied from the inner IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TosConfig {
    Fixed(u8),
    Inherit,
}

impl Default for TosConfig {
    fn default() -> Self {
        TosConfig::Fixed(0)
    }
}

/// One Geneve option sent on every packet (and understood on receipt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneveOptConfig {
    pub class: u16,
    #[serde(rename = "type")]
    pub typ: u8,
    /// Option data; its length must be a multiple of 4, at most 124 bytes.
    #[serde(with = "hex_bytes")]
    pub data: Vec<u8>,
}

/// A tunnel port: one VNI, one or more remote VTEPs, in one bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    pub name: String,
    pub bridge: String,
    #[serde(default)]
    pub number: Option<PortNo>,
    pub kind: TunnelKind,
    pub vni: u32,
    pub remotes: Vec<IpAddr>,
    /// Local VTEP address; defaults to the uplink's first of the family.
    #[serde(default)]
    pub local: Option<IpAddr>,
    /// UDP destination port; defaults to 4789 (VXLAN) or 6081 (Geneve).
    #[serde(default)]
    pub dst_port: Option<u16>,
    #[serde(default = "default_ttl")]
    pub ttl: u8,
    #[serde(default)]
    pub tos: TosConfig,
    /// Set DF on the outer IPv4 header. On by default, as Open vSwitch's
    /// df_default: VTEPs must not fragment (RFC 7348 §4.3), and with DF the
    /// ident need not vary per packet (RFC 6864).
    #[serde(default = "default_true")]
    pub df: bool,
    /// Send UDP checksums, and verify non-zero ones on receipt.
    #[serde(default)]
    pub csum: bool,
    /// IPv6 underlay only: send a zero UDP checksum (RFC 6935) when `csum`
    /// is off. Without it, IPv6 tunnels always checksum (RFC 8200).
    #[serde(default)]
    pub zero_csum6: bool,
    #[serde(default = "default_src_range")]
    pub src_port_range: (u16, u16),
    #[serde(default)]
    pub geneve_opts: Vec<GeneveOptConfig>,
    /// VLAN handling of inner frames. The default (access, tag 0) drops a
    /// decapsulated frame carrying a VLAN tag, as the issue asks.
    #[serde(default)]
    pub vlan: VlanMode,
    /// Accept packets from VTEPs not among `remotes` and learn their inner
    /// source MACs towards them (the kernel vxlan's behaviour); the learned
    /// VTEPs get unicast only, never floods. Implied by a multicast group.
    #[serde(default, skip_serializing_if = "is_false")]
    pub learn_remotes: bool,
}

fn default_true() -> bool {
    true
}

fn default_ttl() -> u8 {
    64
}
fn default_src_range() -> (u16, u16) {
    DEFAULT_SRC_PORT_RANGE
}

impl TunnelConfig {
    /// A tunnel with the defaults a user gets from `add-tunnel`.
    pub fn new(
        name: impl Into<String>,
        bridge: impl Into<String>,
        kind: TunnelKind,
        vni: u32,
        remotes: Vec<IpAddr>,
    ) -> Self {
        TunnelConfig {
            name: name.into(),
            bridge: bridge.into(),
            number: None,
            kind,
            vni,
            remotes,
            local: None,
            dst_port: None,
            ttl: default_ttl(),
            tos: TosConfig::default(),
            df: true,
            csum: false,
            zero_csum6: false,
            src_port_range: default_src_range(),
            geneve_opts: Vec::new(),
            vlan: VlanMode::default(),
            learn_remotes: false,
        }
    }

    pub fn udp_port(&self) -> u16 {
        self.dst_port.unwrap_or(self.kind.default_port())
    }

    /// The multicast group, when the tunnel is in multicast mode (its only
    /// remote is a group).
    pub fn group(&self) -> Option<IpAddr> {
        match self.remotes.as_slice() {
            [g] if g.is_multicast() => Some(*g),
            _ => None,
        }
    }
}

/// A static MAC entry; learning never overrides it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticFdbConfig {
    pub bridge: String,
    #[serde(default)]
    pub vlan: u16,
    pub mac: MacAddr,
    /// Port or tunnel name.
    pub port: String,
    /// For a tunnel port: which remote VTEP (must be one of its remotes).
    #[serde(default)]
    pub remote: Option<IpAddr>,
}

impl StaticFdbConfig {
    /// `mac` on `port` of `bridge` (at `remote`, a tunnel's), untagged.
    pub fn new(
        bridge: impl Into<String>,
        mac: MacAddr,
        port: impl Into<String>,
        remote: Option<IpAddr>,
    ) -> Self {
        StaticFdbConfig {
            bridge: bridge.into(),
            vlan: 0,
            mac,
            port: port.into(),
            remote,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    In,
    Out,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::In => "in",
            Direction::Out => "out",
        })
    }
}

/// Firewall rules of one port and direction. Each rule is the flow match
/// syntax plus `action=allow|drop`, e.g. `priority=10,tcp,tp_dst=22,action=drop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    pub port: String,
    pub dir: Direction,
    pub rules: Vec<String>,
}

/// A policer on one port and direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QosConfig {
    pub port: String,
    pub dir: Direction,
    /// Average rate in bits per second.
    pub rate_bps: u64,
    /// Bucket depth in bytes.
    pub burst_bytes: u64,
    /// Optional peak rate in bits per second.
    #[serde(default)]
    pub peak_bps: Option<u64>,
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigLoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The TOML itself, or a field of the wrong type or name; toml's message
    /// names the line, the column and the key.
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: {errors}")]
    Invalid { path: String, errors: ConfigErrors },
}

impl Config {
    /// Parses a TOML config (the format `xvsd --config` reads; see
    /// `examples/xvsd.toml`), assigns port numbers and validates it whole.
    /// `origin` names the source in messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigLoadError> {
        Config::from_toml_over(text, origin, None)
    }

    /// [`Config::from_toml`], the objects the file does not number taking
    /// the numbers their namesakes have in `running` first
    /// ([`Config::keep_port_numbers`]): a config file read again.
    pub fn from_toml_over(
        text: &str,
        origin: &str,
        running: Option<&Config>,
    ) -> Result<Config, ConfigLoadError> {
        let mut c: Config = toml::from_str(text).map_err(|e| ConfigLoadError::Syntax {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        if let Some(r) = running {
            c.keep_port_numbers(r);
        }
        c.assign_port_numbers();
        c.validate().map_err(|errors| ConfigLoadError::Invalid {
            path: origin.to_string(),
            errors,
        })?;
        Ok(c)
    }

    /// Reads and parses a TOML config file.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigLoadError> {
        Config::load_over(path, None)
    }

    /// [`Config::load`] for a file read again over the `running` config
    /// ([`Config::from_toml_over`]).
    pub fn load_over(
        path: &std::path::Path,
        running: Option<&Config>,
    ) -> Result<Config, ConfigLoadError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigLoadError::Read {
            path: p.clone(),
            source,
        })?;
        Config::from_toml_over(&text, &p, running)
    }

    /// Gives every port, tunnel and the uplink without a number the lowest
    /// free one, so flows can refer to stable numbers.
    pub fn assign_port_numbers(&mut self) {
        // Every transaction calls this, and most add no port: then no
        // set of the numbers in use is built.
        let numbered = self.uplink.iter().all(|u| u.number.is_some())
            && self.ports.iter().all(|p| p.number.is_some())
            && self.tunnels.iter().all(|t| t.number.is_some());
        if numbered {
            return;
        }
        // A bitmap, not a tree: the lowest free number is a short scan.
        let mut used = vec![false; usize::from(PortNo::MAX) + 1];
        let taken = self
            .ports
            .iter()
            .filter_map(|p| p.number)
            .chain(self.tunnels.iter().filter_map(|t| t.number))
            .chain(self.uplink.iter().filter_map(|u| u.number));
        for n in taken {
            used[usize::from(n)] = true;
        }
        let mut next = FIRST_PORT_NO;
        let mut take = |used: &mut Vec<bool>| {
            while used[usize::from(next)] {
                next += 1;
            }
            used[usize::from(next)] = true;
            next
        };
        if let Some(u) = self.uplink.as_mut() {
            if u.number.is_none() {
                u.number = Some(take(&mut used));
            }
        }
        for p in &mut self.ports {
            if p.number.is_none() {
                p.number = Some(take(&mut used));
            }
        }
        for t in &mut self.tunnels {
            if t.number.is_none() {
                t.number = Some(take(&mut used));
            }
        }
    }

    /// Gives every port, tunnel and the uplink without a number the one
    /// its namesake has in `running`, unless this config gives that
    /// number to another: a config file read again keeps the numbers the
    /// running objects have (flows, FDB entries and counters refer to
    /// them). [`Config::assign_port_numbers`] numbers the rest.
    pub fn keep_port_numbers(&mut self, running: &Config) {
        let before = running.port_numbers();
        let mut used: std::collections::BTreeSet<PortNo> =
            self.port_numbers().into_values().collect();
        let mut keep = |name: &str, number: &mut Option<PortNo>| {
            if number.is_none() {
                if let Some(&n) = before.get(name) {
                    if used.insert(n) {
                        *number = Some(n);
                    }
                }
            }
        };
        if let Some(u) = self.uplink.as_mut() {
            keep(&u.iface, &mut u.number);
        }
        // Through DerefMut (a copy-on-write share): borrowed whole once.
        for p in &mut self.ports {
            let p = &mut **p;
            keep(&p.name, &mut p.number);
        }
        for t in &mut self.tunnels {
            let t = &mut **t;
            keep(&t.name, &mut t.number);
        }
    }

    /// Name → number of every port, tunnel and the uplink.
    pub fn port_numbers(&self) -> BTreeMap<&str, PortNo> {
        let mut m = BTreeMap::new();
        if let Some(u) = &self.uplink {
            if let Some(n) = u.number {
                m.insert(u.iface.as_str(), n);
            }
        }
        for p in &self.ports {
            if let Some(n) = p.number {
                m.insert(p.name.as_str(), n);
            }
        }
        for t in &self.tunnels {
            if let Some(n) = t.number {
                m.insert(t.name.as_str(), n);
            }
        }
        m
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        s.serialize_str(&h)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses an even-length hex string (optional `0x`) into bytes.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let h = s.strip_prefix("0x").unwrap_or(s);
    if h.len() % 2 != 0 {
        return Err(format!("hex string {s:?} has an odd number of digits"));
    }
    (0..h.len())
        .step_by(2)
        .map(|i| {
            h.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("invalid hex string {s:?}"))
        })
        .collect()
}

/// The config the tests of every part start from: one bridge with a port,
/// a VXLAN tunnel and an uplink, port numbers assigned.
#[cfg(test)]
mod testutil {
    use super::*;

    pub fn base() -> Config {
        let mut c = Config {
            bridges: vec![BridgeConfig::new("br0").into()],
            uplink: Some(UplinkConfig {
                iface: "eth0".into(),
                number: None,
                mac: None,
                local_ips: vec!["192.0.2.1".parse().unwrap()],
                mtu: 1500,
            }),
            ports: vec![PortConfig::new("vm1", "br0").into()],
            tunnels: vec![TunnelConfig::new(
                "vx1",
                "br0",
                TunnelKind::Vxlan,
                42,
                vec!["192.0.2.2".parse().unwrap()],
            )
            .into()],
            ..Default::default()
        };
        c.assign_port_numbers();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::base;
    use super::*;

    /// A config read again keeps the running numbers by name, except one
    /// it gives to another object itself; new objects get free ones.
    #[test]
    fn a_config_read_again_keeps_the_running_numbers() {
        let mut running = base();
        running.ports.push(PortConfig::new("vm2", "br0").into());
        running.assign_port_numbers();
        let was = |n: &str| running.port_numbers()[n];
        let mut file = base();
        for p in &mut file.ports {
            p.number = None;
        }
        file.tunnels[0].number = None;
        file.uplink.as_mut().unwrap().number = None;
        // vm2 now first in the file, a new vm3, and vm1 given vm2's
        // number by the file itself.
        file.ports.insert(0, PortConfig::new("vm2", "br0").into());
        file.ports.push(PortConfig::new("vm3", "br0").into());
        file.ports[1].number = Some(was("vm2"));
        file.keep_port_numbers(&running);
        file.assign_port_numbers();
        let now = file.port_numbers();
        assert_eq!(now["eth0"], was("eth0"));
        assert_eq!(now["vx1"], was("vx1"));
        assert_eq!(now["vm1"], was("vm2"), "the file's own number wins");
        assert_ne!(now["vm2"], was("vm2"), "taken by vm1");
        let mut all: Vec<_> = now.values().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), now.len(), "no number twice: {now:?}");
        assert!(file.validate().is_ok());
    }

    #[test]
    fn valid_config_passes_and_numbers_are_stable() {
        let c = base();
        c.validate().unwrap();
        let n = c.port_numbers();
        assert_eq!(n["eth0"], 1);
        assert_eq!(n["vm1"], 2);
        assert_eq!(n["vx1"], 3);
    }

    #[test]
    fn serde_roundtrip_and_unknown_fields_rejected() {
        let c = base();
        let j = serde_json::to_string(&c).unwrap();
        let back: Config = serde_json::from_str(&j).unwrap();
        assert_eq!(back, c);
        let bad = j.replacen("\"bridges\"", "\"bridgez\"", 1);
        assert!(serde_json::from_str::<Config>(&bad).is_err());
    }

    #[test]
    fn the_example_config_file_loads() {
        let text = include_str!("../../examples/xvsd.toml");
        let c = Config::from_toml(text, "examples/xvsd.toml").unwrap();
        assert_eq!(c.bridges.len(), 2);
        assert_eq!(c.tunnels[1].kind, TunnelKind::Geneve);
        assert_eq!(c.tunnels[1].geneve_opts[0].data, vec![0, 0, 0, 1]);
        // That its flows, ACLs and policers compile is the dataplane's test
        // (control::underlay).
    }

    #[test]
    fn bad_routes_and_static_neighbors_are_named() {
        let mut c = Config::default();
        c.routes.push(
            RouteConfig {
                prefix: "198.51.100.0/24".parse().unwrap(),
                gateway: Some("2001:db8::1".parse().unwrap()),
                dev: "eth0".into(),
                metric: 0,
            }
            .into(),
        );
        c.neighbors.push(
            NeighborConfig {
                ip: "192.0.2.254".parse().unwrap(),
                mac: "01:00:5e:00:00:01".parse().unwrap(),
            }
            .into(),
        );
        let errs = c.validate().unwrap_err().to_string();
        assert!(
            errs.contains("route 198.51.100.0/24") && errs.contains("family"),
            "{errs}"
        );
        assert!(errs.contains("not a unicast MAC"), "{errs}");
    }

    #[test]
    fn toml_errors_name_the_line_and_the_key() {
        let e = Config::from_toml(
            "[[bridges]]\nname = \"br0\"\nfdb_max_entries = \"many\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("t.toml") && e.contains("line 3") && e.contains("fdb_max_entries"),
            "{e}"
        );
        let e = Config::from_toml("[[bridges]]\nname = \"br0\"\ncolour = 1\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
        let e = Config::from_toml(
            "[[bridges]]\nname = \"br0\"\n[[tunnels]]\nname = \"vx\"\nbridge = \"br0\"\nkind = \"vxlan\"\nvni = 99999999\nremotes = [\"192.0.2.2\"]\nlocal = \"192.0.2.1\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("VNI 99999999 out of range"), "{e}");
    }

    #[test]
    fn hex_parsing() {
        assert_eq!(parse_hex("0x0a0B").unwrap(), vec![0x0a, 0x0b]);
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
    }
}
