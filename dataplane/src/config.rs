//! Desired configuration: bridges, ports, the uplink, tunnel ports, static
//! FDB entries, flows, firewall rules and policers, as an operator states
//! them (names, not indices).
//!
//! This is what xvsctl edits, what a config file holds and what is persisted.
//! [`Config::validate`] checks the whole thing and returns every problem at
//! once (LSDN's validate-then-commit); only a valid config is compiled into a
//! snapshot, so a change either applies completely or not at all.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::types::{MacAddr, PortNo};

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
    pub bridges: Vec<BridgeConfig>,
    pub uplink: Option<UplinkConfig>,
    pub ports: Vec<PortConfig>,
    pub tunnels: Vec<TunnelConfig>,
    pub fdb: Vec<StaticFdbConfig>,
    pub acls: Vec<AclConfig>,
    pub qos: Vec<QosConfig>,
    /// Underlay routes added by the operator (OVS `ovs/route/add`); they
    /// sit beside the routes read from the kernel (longest prefix, then
    /// lowest metric wins).
    pub routes: Vec<RouteConfig>,
    /// Static underlay neighbors (OVS `tnl/arp/set`): never expire, never
    /// replaced by snooped or kernel entries.
    pub neighbors: Vec<NeighborConfig>,
    /// Records of higher control planes (the applied network model, ...),
    /// persisted and changed in the same transactions as the objects they
    /// describe; the dataplane never reads them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, serde_json::Value>,
    /// The overlay address table: which MAC an overlay IP has, per bridge
    /// and VLAN (what ARP/ND suppression answers from).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addrs: Vec<OverlayAddrConfig>,
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
    pub prefix: crate::tables::route::Prefix,
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

/// The fate of a frame whose destination missed, while the lookup runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissAction {
    /// Flood it as a learning switch would.
    #[default]
    Flood,
    /// Drop it (counted `lookup_miss`); the sender's retry finds the entry.
    Drop,
    /// Keep it (a few dozen frames per worker, in their receive buffers)
    /// until a new snapshot may hold the answer, then forward it; drop it
    /// after `hold_ms` (`hold_expired`).
    Hold,
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

/// A local (VM-facing) AF_XDP port.
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
    /// Number of rx/tx queues to bind (0 = all the device has).
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TunnelKind {
    Vxlan,
    Geneve,
}

impl TunnelKind {
    pub fn default_port(self) -> u16 {
        match self {
            TunnelKind::Vxlan => 4789,
            TunnelKind::Geneve => 6081,
        }
    }
}

impl fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
        })
    }
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

/// A unicast host address: not multicast, unspecified or (IPv4) broadcast.
pub fn is_unicast_ip(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !(a.is_multicast() || a.is_unspecified() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
    }
}

/// A station's MAC (a static FDB entry's, an overlay address's): not a
/// group or the all-zero address.
pub fn is_unicast_mac(mac: &MacAddr) -> bool {
    !(mac.is_multicast() || mac.is_zero())
}

/// Whether `ip` can be a unicast remote VTEP of this host, whose own VTEP
/// addresses are `own`; `Err` says why not, after the address. Multicast
/// groups are the caller's matter (a group is a tunnel's only remote).
/// A subnet's broadcast address takes the host's interfaces to know:
/// xvsd checks it when it applies a config.
pub fn remote_vtep(ip: &IpAddr, own: &HashSet<IpAddr>) -> Result<(), String> {
    if ip.is_unspecified() {
        Err("is the unspecified address, not a VTEP".into())
    } else if ip.is_loopback() {
        Err("is a loopback address: the tunnel would never leave this host".into())
    } else if ip.is_multicast() {
        Err("is a multicast address, not a unicast VTEP (a group can only be a multicast tunnel's single remote)".into())
    } else if matches!(ip, IpAddr::V4(a) if a.is_broadcast()) {
        Err("is the limited broadcast address, not a VTEP".into())
    } else if own.contains(ip) {
        Err("is this host's own VTEP address (the uplink's or a tunnel's local)".into())
    } else {
        Ok(())
    }
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

/// Longest name of a bridge, port, tunnel or uplink: IFNAMSIZ - 1 bytes,
/// what a Linux interface name can be (ports and the uplink are
/// interfaces; bridges and tunnels are held to the same rule so any
/// object name can become one).
pub const MAX_NAME_LEN: usize = 15;

/// The one name rule of xvs, applied by xvsd to configs and persisted
/// state and by the control commands xvsctl sends (they run the same
/// code): `Err` says what is wrong with the name, in words that follow
/// the name in a message.
///
/// Names end up in flow text (`in_port=NAME,...`), interface lookups,
/// paths under /sys and on xvsctl's command line, so beyond what the
/// kernel refuses for interfaces (empty, too long, `.`/`..`, `/`, `:`,
/// whitespace) a name may not start with `-` (it would be read as an
/// option and could not be addressed) nor hold control characters or the
/// flow syntax's separators.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "name longer than {MAX_NAME_LEN} bytes (IFNAMSIZ - 1): {} bytes",
            name.len()
        ));
    }
    if name.starts_with('-') {
        return Err("name starts with '-' (it would read as a command-line option)".into());
    }
    if name == "." || name == ".." {
        return Err("name is a directory entry, not an interface name".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | ',' | '=' | ':' | '"'))
    {
        return Err(format!(
            "name contains {c:?} (no whitespace, control characters or / , = : \")"
        ));
    }
    Ok(())
}

fn vlan_ok(v: u16) -> bool {
    v < 4095
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
        let mut c: Config = toml::from_str(text).map_err(|e| ConfigLoadError::Syntax {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        c.assign_port_numbers();
        c.validate().map_err(|errors| ConfigLoadError::Invalid {
            path: origin.to_string(),
            errors,
        })?;
        Ok(c)
    }

    /// Reads and parses a TOML config file.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigLoadError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigLoadError::Read {
            path: p.clone(),
            source,
        })?;
        Config::from_toml(&text, &p)
    }

    /// Gives every port, tunnel and the uplink without a number the lowest
    /// free one, so flows can refer to stable numbers.
    pub fn assign_port_numbers(&mut self) {
        let mut used: BTreeSet<PortNo> = self
            .ports
            .iter()
            .filter_map(|p| p.number)
            .chain(self.tunnels.iter().filter_map(|t| t.number))
            .chain(self.uplink.iter().filter_map(|u| u.number))
            .collect();
        let mut next = FIRST_PORT_NO;
        let mut take = |used: &mut BTreeSet<PortNo>| {
            while used.contains(&next) {
                next += 1;
            }
            used.insert(next);
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

    /// Checks everything that can be checked without the kernel and
    /// returns every problem found. Rules that need other modules (flow
    /// syntax, ACL shapes, policer parameters) are checked when the
    /// snapshot is compiled, which reports in the same form.
    /// Assigns port numbers and validates: the config the control plane
    /// takes, or every problem.
    pub fn validated(mut self) -> Result<ValidConfig, ConfigErrors> {
        self.assign_port_numbers();
        self.validate()?;
        Ok(ValidConfig(self))
    }

    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = Vec::new();
        let mut e = |o: String, m: String| errs.push(ConfigError::new(o, m));

        let mut bridges = HashSet::new();
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

        // Names and numbers are one namespace across ports, tunnels and the uplink.
        let all = self
            .uplink
            .iter()
            .map(|u| (u.iface.as_str(), u.number))
            .chain(self.ports.iter().map(|p| (p.name.as_str(), p.number)))
            .chain(self.tunnels.iter().map(|t| (t.name.as_str(), t.number)));
        let mut names: HashSet<&str> = HashSet::new();
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
        if let Some(u) = &self.uplink {
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
        for p in &self.ports {
            let o = || format!("port {:?}", p.name);
            if !bridges.contains(p.bridge.as_str()) {
                e(o(), format!("unknown bridge {:?}", p.bridge));
            }
            check_vlan_mode(&o, &p.vlan, &mut e);
            if p.mtu < 68 {
                e(o(), format!("mtu {} below 68", p.mtu));
            }
            check_port_security(&o, p, &mut e);
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

        // This host's VTEP addresses: a remote among them would send the
        // tunnel's traffic to ourselves.
        let own: HashSet<IpAddr> = self
            .uplink
            .iter()
            .flat_map(|u| u.local_ips.iter().copied())
            .chain(self.tunnels.iter().filter_map(|t| t.local))
            .collect();
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
            if t.remotes.is_empty() {
                e(o(), "at least one remote VTEP is required".into());
            }
            let mut seen = HashSet::new();
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
                    if let Err(m) = remote_vtep(r, &own) {
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
            check_vlan_mode(&o, &t.vlan, &mut e);
        }

        let ports: HashSet<&str> = self
            .ports
            .iter()
            .map(|p| p.name.as_str())
            .chain(self.tunnels.iter().map(|t| t.name.as_str()))
            .collect();
        // Fx, not SipHash: the keys are our own config, and a million of
        // them are hashed on every validation.
        let mut fdb_seen: HashSet<_, rustc_hash::FxBuildHasher> = HashSet::default();
        // A million static MACs are validated in well under a second: the
        // port is found by hash, and the object's name is only formatted
        // for an entry that has a problem.
        let port_of: HashMap<&str, (&String, Option<&TunnelConfig>)> = self
            .tunnels
            .iter()
            .map(|t| (t.name.as_str(), (&t.bridge, Some(t))))
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
                        (Some(_), Some(r)) if remote_vtep(&r, &own).is_err() => e(
                            o(),
                            format!(
                                "remote {r} {}",
                                remote_vtep(&r, &own).err().unwrap_or_default()
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
        let mut acl_seen = HashSet::new();
        for a in &self.acls {
            let o = || format!("acl {:?} {}", a.port, a.dir);
            if !ports.contains(a.port.as_str()) {
                e(o(), format!("unknown port {:?}", a.port));
            }
            if !acl_seen.insert((&a.port, a.dir)) {
                e(o(), "rules for this port and direction given twice".into());
            }
        }
        let mut qos_seen = HashSet::new();
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
        let mut route_seen = HashSet::new();
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
        let mut addr_seen: HashMap<(&str, u16, IpAddr), MacAddr> = HashMap::new();
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
        let mut neigh_seen = HashSet::new();
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
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errs))
        }
    }
}

/// Port security lists: unicast addresses, few enough to check per frame,
/// IPs only beside MACs.
fn check_port_security(o: &dyn Fn() -> String, p: &PortConfig, e: &mut dyn FnMut(String, String)) {
    use crate::policy::port_security::MAX_ADDRS;
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

fn check_vlan_mode(o: &dyn Fn() -> String, m: &VlanMode, e: &mut dyn FnMut(String, String)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        let mut c = Config {
            bridges: vec![BridgeConfig::new("br0")],
            uplink: Some(UplinkConfig {
                iface: "eth0".into(),
                number: None,
                mac: None,
                local_ips: vec!["192.0.2.1".parse().unwrap()],
                mtu: 1500,
            }),
            ports: vec![PortConfig {
                name: "vm1".into(),
                bridge: "br0".into(),
                number: None,
                vlan: VlanMode::default(),
                mtu: 1500,
                queues: 0,
                max_macs: None,
                allowed_macs: Vec::new(),
                allowed_ips: Vec::new(),
                storm_pps: None,
            }],
            tunnels: vec![TunnelConfig::new(
                "vx1",
                "br0",
                TunnelKind::Vxlan,
                42,
                vec!["192.0.2.2".parse().unwrap()],
            )],
            ..Default::default()
        };
        c.assign_port_numbers();
        c
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
    fn every_problem_is_listed_at_once() {
        let mut c = base();
        c.tunnels[0].vni = MAX_VNI + 1;
        c.tunnels[0].bridge = "nope".into();
        c.ports.push(c.ports[0].clone());
        c.fdb.push(StaticFdbConfig {
            bridge: "br0".into(),
            vlan: 0,
            mac: MacAddr::BROADCAST,
            port: "ghost".into(),
            remote: None,
        });
        let errs = c.validate().unwrap_err().0;
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        let has = |s: &str| text.iter().any(|t| t.contains(s));
        assert!(has("VNI 16777216 out of range"), "{text:?}");
        assert!(has("unknown bridge \"nope\""), "{text:?}");
        assert!(has("name already used"), "{text:?}");
        assert!(has("not a unicast MAC"), "{text:?}");
        assert!(has("unknown port \"ghost\""), "{text:?}");
    }

    #[test]
    fn multicast_groups_are_single_remotes_never_fdb_remotes_or_local_ips() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let fdb = |mac: u8, remote: Option<&str>| StaticFdbConfig {
            bridge: "br0".into(),
            vlan: 0,
            mac: MacAddr([2, 0, 0, 0, 0, mac]),
            port: "vx1".into(),
            remote: remote.map(ip),
        };
        // A group as the only remote, and static entries naming any
        // unicast VTEP: valid.
        let mut c = base();
        c.tunnels[0].remotes = vec![ip("239.1.1.1")];
        c.fdb.push(fdb(1, Some("192.0.2.9")));
        c.validate().unwrap();
        let mut c = base();
        c.fdb.push(fdb(1, Some("192.0.2.9")));
        c.validate().unwrap();

        let mut c = base();
        c.tunnels[0].remotes = vec![ip("239.1.1.1"), ip("192.0.2.2")];
        c.uplink.as_mut().unwrap().local_ips.push(ip("224.0.0.5"));
        c.fdb.push(fdb(1, Some("239.1.1.1")));
        c.fdb.push(fdb(2, Some("2001:db8::9")));
        let text: Vec<String> = c
            .validate()
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.to_string())
            .collect();
        let has = |s: &str| text.iter().any(|t| t.contains(s));
        assert!(has("a group must be the tunnel's only remote"), "{text:?}");
        assert!(
            has("local IP 224.0.0.5 is not a unicast address"),
            "{text:?}"
        );
        assert!(
            has("remote 239.1.1.1 is a multicast address, not a unicast VTEP"),
            "{text:?}"
        );
        assert!(
            has("remote 2001:db8::9 and tunnel \"vx1\" differ in family"),
            "{text:?}"
        );

        let mut c = base();
        c.tunnels[0].remotes = vec![ip("239.1.1.1")];
        c.fdb.push(fdb(1, None));
        let e = c.validate().unwrap_err().0;
        assert!(
            e[0].message.contains("multicast tunnel: say which VTEP"),
            "{e:?}"
        );
    }

    #[test]
    fn two_vnis_in_one_bridge_are_rejected() {
        let mut c = base();
        let mut t = c.tunnels[0].clone();
        t.name = "vx2".into();
        t.number = None;
        t.vni = 43;
        c.tunnels.push(t);
        c.assign_port_numbers();
        let errs = c.validate().unwrap_err().0;
        assert!(errs[0].message.contains("differs from VNI 42"), "{errs:?}");
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
        // Its flows, ACLs and policers compile too.
        crate::control::Control::new().apply(c).unwrap();
    }

    #[test]
    fn config_routes_and_static_neighbors_are_installed_and_withdrawn() {
        let mut ctl = crate::control::Control::new();
        let mut c = Config::default();
        c.routes.push(RouteConfig {
            prefix: "198.51.100.0/24".parse().unwrap(),
            gateway: Some("192.0.2.254".parse().unwrap()),
            dev: "eth0".into(),
            metric: 0,
        });
        c.neighbors.push(NeighborConfig {
            ip: "192.0.2.254".parse().unwrap(),
            mac: "02:00:00:00:fe:01".parse().unwrap(),
        });
        ctl.apply(c.clone()).unwrap();
        let hop = ctl.underlay.next_hop("198.51.100.7".parse().unwrap());
        assert_eq!(hop, Some("192.0.2.254".parse().unwrap()));
        assert_eq!(
            ctl.underlay.neigh.state("192.0.2.254".parse().unwrap()),
            Some(crate::tables::neigh::NeighState::Static)
        );
        ctl.apply(Config::default()).unwrap();
        assert_eq!(ctl.underlay.next_hop("198.51.100.7".parse().unwrap()), None);
        assert_eq!(
            ctl.underlay.neigh.state("192.0.2.254".parse().unwrap()),
            None
        );

        // Bad entries are named.
        c.routes[0].gateway = Some("2001:db8::1".parse().unwrap());
        c.neighbors[0].mac = "01:00:5e:00:00:01".parse().unwrap();
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
    fn names_follow_one_rule_everywhere_a_config_holds_one() {
        for ok in ["br0", "vm-1", "a", "eth0.100", "x_y", "vxlan1234567890"] {
            assert_eq!(check_name(ok), Ok(()), "{ok:?}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("-rf", "starts with '-'"),
            ("--", "starts with '-'"),
            ("a b", "' '"),
            ("a\tb", "'\\t'"),
            ("a\u{7}", "'\\u{7}'"),
            ("a/b", "'/'"),
            ("a:1", "':'"),
            ("in_port=1", "'='"),
            ("a,b", "','"),
            (".", "directory entry"),
            ("..", "directory entry"),
            ("vxlan12345678901", "longer than 15 bytes"),
        ] {
            let e = check_name(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        // Config::validate applies it to every object that has a name.
        let mut c = base();
        c.bridges[0].name = "-rf".into();
        c.ports[0].bridge = "-rf".into();
        c.uplink.as_mut().unwrap().iface = "eth 0".into();
        c.routes.push(RouteConfig {
            prefix: "10.9.0.0/16".parse().unwrap(),
            gateway: None,
            dev: "bad/dev".into(),
            metric: 0,
        });
        let text = c.validate().unwrap_err().to_string();
        assert!(
            text.contains("bridge \"-rf\": name starts with '-'"),
            "{text}"
        );
        assert!(text.contains("port \"eth 0\": name contains ' '"), "{text}");
        assert!(
            text.contains("dev \"bad/dev\": name contains '/'"),
            "{text}"
        );
    }

    #[test]
    fn remotes_that_are_not_another_vtep_are_refused() {
        for (remote, why) in [
            ("192.0.2.1", "this host's own VTEP address"),
            ("127.0.0.1", "loopback"),
            ("127.1.2.3", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("255.255.255.255", "limited broadcast"),
        ] {
            let mut c = base();
            c.tunnels[0].remotes = vec![remote.parse().unwrap(), "192.0.2.9".parse().unwrap()];
            let text = c.validate().unwrap_err().to_string();
            assert!(
                text.contains(&format!("tunnel \"vx1\": remote {remote} ")) && text.contains(why),
                "{remote}: {text}"
            );
        }
        let mut c = base();
        c.tunnels[0].local = Some("192.0.2.7".parse().unwrap());
        c.tunnels[0].remotes = vec!["192.0.2.7".parse().unwrap()];
        assert!(c.validate().unwrap_err().to_string().contains("own VTEP"));
        // IPv6: loopback and a group among unicast remotes.
        let mut c = base();
        c.uplink
            .as_mut()
            .unwrap()
            .local_ips
            .push("2001:db8::1".parse().unwrap());
        c.tunnels[0].remotes = vec!["::1".parse().unwrap()];
        assert!(c.validate().unwrap_err().to_string().contains("loopback"));
        c.tunnels[0].remotes = vec!["ff0e::1".parse().unwrap(), "2001:db8::2".parse().unwrap()];
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("multicast group"));
        // A static FDB entry's remote is held to the same rule.
        let mut c = base();
        c.fdb.push(StaticFdbConfig {
            bridge: "br0".into(),
            vlan: 0,
            mac: "02:00:00:00:00:09".parse().unwrap(),
            port: "vx1".into(),
            remote: Some("127.0.0.1".parse().unwrap()),
        });
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("remote 127.0.0.1 is a loopback"));
        // A group alone is a multicast tunnel, and fine.
        let mut c = base();
        c.tunnels[0].remotes = vec!["239.1.1.1".parse().unwrap()];
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn the_uplink_is_no_port() {
        let mut c = base();
        c.ports[0].name = "eth0".into();
        let text = c.validate().unwrap_err().to_string();
        assert!(
            text.contains("port \"eth0\": is the uplink interface: it cannot also be a port"),
            "{text}"
        );
    }

    #[test]
    fn hex_parsing() {
        assert_eq!(parse_hex("0x0a0B").unwrap(), vec![0x0a, 0x0b]);
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
    }
}
