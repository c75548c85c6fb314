//! What the methods answer: the typed results and rows. Their field names
//! are the `xvsctl --format json` contract (see the module above).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use xvs_config::{Direction, TunnelKind};
use xvs_types::acl::AclAction;
use xvs_types::route::{Prefix, RouteOrigin};
use xvs_types::MacAddr;

/// `hello`: who answers and which protocol it speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloResult {
    /// `"xvsd"`.
    pub daemon: String,
    pub daemon_version: String,
    pub protocol_version: u32,
    /// The methods this daemon answers.
    pub methods: Vec<String>,
    /// The daemon's process id (`xvsctl restart` watches it change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// `takeover`: the daemon that handed its sockets over (this one, about
/// to exit) and the one that took them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverResult {
    pub from_pid: u32,
    pub to_pid: u32,
}

/// `restart`: the new daemon started (the same binary path and arguments,
/// with `--takeover`); it takes over within seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartResult {
    pub pid: u32,
}

/// `transact`: how many commands were applied, and whether the config
/// changed (a transaction of `--may-exist` adds may change nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactResult {
    pub applied: usize,
    pub changed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FdbKind {
    Static,
    Learned,
    /// Installed by lookup on miss (ages like a learned entry).
    Lookup,
}

/// One MAC table entry (`fdb_show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbRow {
    pub bridge: String,
    pub vlan: u16,
    pub mac: MacAddr,
    /// Port or tunnel name.
    pub port: String,
    /// For a tunnel port: the remote VTEP the MAC is behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<IpAddr>,
    pub kind: FdbKind,
    /// Seconds since last seen; absent for static entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_secs: Option<u64>,
}

/// One overlay address (`arp_show`). The fields of
/// `xvs_config::OverlayAddrConfig`, but not that type: a row must take
/// fields a newer daemon adds (clients ignore what they do not know), while
/// the config refuses unknown fields so that a typo in a file is caught.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrRow {
    pub bridge: String,
    pub vlan: u16,
    pub ip: IpAddr,
    pub mac: MacAddr,
    /// The control plane that installed it; absent: the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// One lookup miss (`lookup_misses`): a MAC whose VTEP, or an address
/// whose MAC, the bridge does not know. Answer with `fdb-add` / `arp-add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissRow {
    pub bridge: String,
    pub vlan: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The port the frame that missed came in on.
    pub port: String,
    /// The VTEP it came from, if it was decapsulated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_vtep: Option<IpAddr>,
}

/// Resolution state of an underlay neighbor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeighStateName {
    Incomplete,
    Reachable,
    Stale,
    Failed,
    Static,
}

/// Where a neighbor's MAC came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeighSourceName {
    /// An ARP reply or neighbor advertisement seen on the uplink.
    Snooped,
    /// The kernel's neighbor table.
    Kernel,
    /// `neigh-set` (the config).
    Static,
}

/// One underlay neighbor (`neigh_show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighRow {
    pub ip: IpAddr,
    /// Absent while incomplete or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    pub state: NeighStateName,
    pub source: NeighSourceName,
    /// A next hop of a tunnel: re-confirmed through the kernel's table
    /// before it goes stale, never evicted for another entry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_use: bool,
    /// Seconds since it was created, confirmed or changed state (the
    /// daemon's cache; static neighbors from the config have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_secs: Option<u64>,
    /// Times xvsd asked the kernel to re-confirm it (a next hop in use,
    /// NTF_USE), and times the kernel or a snooped reply confirmed it,
    /// since the entry was created (the daemon's cache only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<u64>,
}

/// One underlay route (`route_show`). `origin` is `kernel`, `user` or
/// `config` (added with `route-add`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRow {
    pub prefix: Prefix,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    pub dev: String,
    pub metric: u32,
    pub origin: RouteOrigin,
    /// Preferred source address, when the kernel gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
}

/// One flow of a bridge (`dump_flows`). `matches` and `actions` are in the
/// flow text syntax with port names where the port is known (what
/// `add-flow` accepts back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRow {
    pub bridge: String,
    pub priority: u32,
    pub cookie: u64,
    pub matches: String,
    pub actions: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_packets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_bytes: Option<u64>,
    /// Seconds since a frame last matched it (none yet: absent). The
    /// counters count since the bridge's flow table last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_age_secs: Option<u64>,
}

/// One firewall rule (`acl_show`), in priority order (highest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclRow {
    pub port: String,
    pub dir: Direction,
    pub priority: u32,
    /// The match in flow syntax; empty matches everything.
    pub matches: String,
    pub action: AclAction,
    /// Frames the rule matched on every worker since the port's policy
    /// last changed, their bytes, and the seconds since the last one
    /// (none yet: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hits: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_age_secs: Option<u64>,
}

/// One port mirror (`mirror_list`), in the config's order, with what the
/// workers did for it since mirrors or policies last changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorRow {
    pub name: String,
    pub src: Vec<String>,
    pub dir: xvs_config::MirrorDir,
    pub to: String,
    /// Whether `to` is a tunnel port (copies encapsulated to its remote
    /// VTEPs) rather than a local port.
    pub remote: bool,
    /// Copies sent and their bytes (the frames as mirrored, without the
    /// tunnel header), and copies lost (no free buffer, too big for the
    /// output).
    pub packets: u64,
    pub bytes: u64,
    pub dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortKindName {
    /// A local (VM-facing) AF_XDP port.
    Port,
    Tunnel,
    Uplink,
}

/// Counters of one port on one worker (`stats` with `per_worker`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerPortStats {
    pub worker: usize,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: BTreeMap<String, u64>,
}

/// Whether a local port's or the uplink's interface is there and up
/// (`stats`). A configured interface that does not exist, was renamed or
/// moved to another namespace is `missing`: it stays in the config, and
/// the daemon binds it again by itself when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortState {
    Up,
    /// Present, administratively down.
    Down,
    Missing,
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortState::Up => "up",
            PortState::Down => "down",
            PortState::Missing => "missing",
        })
    }
}

/// Where a worker's UMEM chunks are (`worker_stats`): `free + held +
/// kernel == chunks` unless one was lost, `kernel == fill + tx`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UmemRow {
    pub chunks: u64,
    pub free: u64,
    pub held: u64,
    pub kernel: u64,
    pub fill: u64,
    pub tx: u64,
}

/// Counters of one port, tunnel or the uplink (`stats`), summed over the
/// workers. `drops` maps a drop reason (`stats::DropReason::name`, e.g.
/// `neigh_unresolved`) to its count; zero counts may be left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsRow {
    pub name: String,
    pub kind: PortKindName,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: BTreeMap<String, u64>,
    /// Only when asked for (`per_worker`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_worker: Option<Vec<WorkerPortStats>>,
    /// Local ports and the uplink: their interface's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<PortState>,
    /// MACs seen behind the port that were not learned, by reason
    /// (`learn_refused_port_limit`, `learn_refused_fdb_full`); their
    /// frames were forwarded, not dropped. Only the non-zero ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub learn_refused: BTreeMap<String, u64>,
    /// The uplink: what became of the ARP replies and neighbor
    /// advertisements snooped on it, by outcome (`learned`, `confirmed`,
    /// and the refusals `not_for_us`, `off_subnet`, `unsolicited`,
    /// `conflicting`, `ignored`). The frames themselves went on to the
    /// kernel: none of these is a drop. Only the non-zero ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub snooped: BTreeMap<String, u64>,
    /// Frames received whose TCP or UDP checksum the sender had left to
    /// checksum offload (the field held only the pseudo-header sum), which
    /// the switch completed before forwarding them (`wire::offload`). A
    /// guest whose interface offers checksum offload sends them; on a
    /// tunnel, a kernel VTEP on the same host. Not an error.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub csum_completed: u64,
    /// Local ports: ICMP "fragmentation needed" (IPv4, DF set) and ICMPv6
    /// "packet too big" errors sent back to the port for its frames that
    /// did not fit their egress's MTU (each also counted as a `too_big`
    /// drop where it was going). Rate limited per worker.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub icmp_too_big: u64,
    /// vhost-user ports: TCP frames of up to 64 KiB the guest handed over
    /// for segmentation (TSO), and the segments the switch cut them into
    /// (each counted in `rx_packets`). Not an error.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tso_frames: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tso_segments: u64,
    /// Local ports and the uplink: set when the interface's driver refused
    /// native XDP and the program runs in generic mode, with why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_generic: Option<String>,
    /// Local ports with a policer: what each let through and dropped
    /// (`in`, `out`: the port's policers; `storm`: storm control, which
    /// counts frames, its bytes being frames too), on every worker since
    /// the policy last changed. Only the policers the port has.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policers: BTreeMap<String, PolicerRow>,
    /// Local ports under `xvsd --fastpath`: what the TC fast path carried
    /// (not in `rx_packets`, which counts what the workers received).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fastpath: Option<FastPathRow>,
}

/// One policer's counters: frames (and bytes) within its rate, and
/// beyond it (dropped, also counted as `policer_in`/`policer_out`/
/// `storm_control` drops).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicerRow {
    pub conform_packets: u64,
    pub conform_bytes: u64,
    pub exceed_packets: u64,
    pub exceed_bytes: u64,
}

/// A guest port's share of the GSO-preserving fast path: decisions
/// installed for flows entering it, the packets (segments on the wire)
/// and bytes the TC executor carried for them, and the frames it sent
/// to the workers through the miss pair (and lost on the way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FastPathRow {
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
    pub misses: u64,
    pub miss_errors: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One worker's load (`worker_stats`), as `ovs-appctl
/// dpif-netdev/pmd-stats-show` gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatsRow {
    pub id: usize,
    /// The CPU it is pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<usize>,
    /// Share of time spent on batches that had packets, 0 to 100.
    pub busy_pct: f64,
    /// The time behind `busy_pct`: on batches that had packets, and the
    /// rest (polling, sleeping), since the worker started, in ns. For a
    /// rate over any window (the metrics endpoint's busy seconds).
    #[serde(default)]
    pub busy_ns: u64,
    #[serde(default)]
    pub idle_ns: u64,
    pub packets: u64,
    /// Busy cycles (or nanoseconds × clock) per packet, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycles_per_packet: Option<f64>,
    /// The part of `cycles_per_packet` spent handing frames to the kernel
    /// (TX rings and kicks, where copy mode transmits; completions; fill
    /// rings); the rest is receive and pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_cycles_per_packet: Option<f64>,
    /// Non-empty batches processed.
    pub batches: u64,
    pub empty_polls: u64,
    /// Times the worker slept in poll(2) (adaptive mode).
    pub sleeps: u64,
    /// Frames that found a TX ring full.
    pub ring_full: u64,
    /// What the pipeline did besides forwarding, by name: ARP/ND requests
    /// answered (`arp_suppressed`, `nd_suppressed`), ...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub events: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umem: Option<UmemRow>,
}

/// One tunnel port (`tunnel_ports`, OVS `tnl/ports/show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelPortRow {
    pub name: String,
    pub bridge: String,
    /// OpenFlow-style port number flows use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u16>,
    pub kind: TunnelKind,
    pub vni: u32,
    /// UDP destination port (4789 VXLAN, 6081 Geneve by default).
    pub dst_port: u16,
    /// Local VTEP address when set on the tunnel (else the uplink's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<IpAddr>,
    pub remotes: Vec<IpAddr>,
    pub ttl: u8,
    /// A number (outer TOS byte) or `"inherit"`.
    pub tos: String,
    pub df: bool,
    pub csum: bool,
    /// `CLASS:TYPE:HEX` each, as `add-tunnel --geneve-opt` takes them.
    pub geneve_opts: Vec<String>,
    pub src_port_range: (u16, u16),
    /// Packets from VTEPs not in `remotes` are accepted and learned
    /// (`learn_remotes`, or implied by a multicast group).
    #[serde(default)]
    pub learn_remotes: bool,
    /// VTEPs beyond `remotes` that FDB entries point at (learned, or named
    /// by static entries): unicast only, never flooded to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dynamic_remotes: Vec<IpAddr>,
}

/// What `trace` found the pipeline decide for one frame (read back from a
/// worker state of its own: nothing was sent, learned or counted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceResult {
    /// The port it arrived on, and its bridge (none for the uplink).
    pub port: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    pub frame_len: usize,
    /// ACL rules it matched, as `acl_show` shows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acl: Vec<AclRow>,
    /// The flow rule it matched, as `dump_flows` shows it; none: the
    /// bridge has no flows (NORMAL switching) or no rule matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowRow>,
    /// Whether its bridge switches by NORMAL (no flow table).
    pub normal: bool,
    /// Dropped, by reason (`stats`' names).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub drops: BTreeMap<String, u64>,
    /// What else the pipeline did (`arp_suppressed`, `upcalls`, `held`,
    /// `replicas`, `copies`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub events: BTreeMap<String, u64>,
    /// Held for a lookup on miss (its bridge's lookup would be asked).
    pub held: bool,
    /// Mirrors that copied it, and how many copies each made (its copies
    /// are among `outputs`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mirrors: BTreeMap<String, u64>,
    /// Every frame that would leave, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<TraceOutput>,
}

/// One frame `trace` would send: the port it leaves by (the uplink for a
/// tunnel's), and its bytes as they would go on the wire, outer header
/// included (hex: `xxd -r -p | text2pcap` or tshark can read it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceOutput {
    pub port: String,
    pub len: usize,
    pub hex: String,
}

/// `capture_start`'s answer: the capture's id, for `capture_read` and
/// `capture_stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStarted {
    pub id: u64,
    pub port: String,
    pub snaplen: u32,
}

/// Frames a capture took since the last read, oldest first, and how many
/// it lost since it started (no room left to copy them: read more often).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureBatch {
    pub packets: Vec<CapturedPacket>,
    pub dropped: u64,
}

/// One frame a capture took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedPacket {
    /// When a worker took it, in nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// `in` (entering the switch by the port) or `out`.
    pub dir: super::CaptureDirection,
    /// The frame's length; `data` (hex) holds at most the snap length.
    pub len: u32,
    pub data: String,
}
