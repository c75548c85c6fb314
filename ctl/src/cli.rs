//! xvsctl: the command line (clap), its translation into protocol calls,
//! and the human output. The binary is a thin wrapper around [`run`], so
//! tests can drive the whole tool in-process; completions and the man page
//! are generated from [`Cli`].
//!
//! Chaining: `xvsctl [OPTIONS] VERB ARGS -- VERB ARGS -- ...` sends every
//! config-changing verb of the call as one `transact` (as ovs-vsctl does).
//! The `--` separators are split off before clap sees the arguments, so a
//! verb cannot take a literal `--` argument.
//!
//! Exit codes: 0 ok; 1 the request was refused (by xvsd, or by xvsctl
//! itself: bad arguments, over the size limit); 2 xvsd could not be reached
//! or did not answer usably.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use serde_json::Value;
use xvs_dataplane::config::{
    Config, Direction, GeneveOptConfig, LookupProviderConfig, MissAction, TosConfig, TunnelKind,
    VlanMode,
};
use xvs_dataplane::tables::route::Prefix;
use xvs_dataplane::types::MacAddr;

use crate::client::{Client, ClientError};
use crate::command::{self as cmd, Command};
use crate::protocol::{
    AclRow, AclShowParams, AclVerdict, AddrRow, ArpShowParams, DumpFlowsParams, FdbKind, FdbRow,
    FdbShowParams, FlowRow, HelloResult, Id, Method, MissRow, NeighRow, PortState, Request,
    RouteRow, StatsParams, StatsRow, TransactParams, TransactResult, TunnelPortRow, WorkerStatsRow,
    DEFAULT_SOCKET, MAX_REQUEST_BYTES,
};
use crate::units::{format_rate, format_size, parse_rate, parse_size};

const CHAIN_HELP: &str = "\
Config-changing commands can be chained with `--` and are then applied as one
atomic transaction, validated together, or rejected whole with every problem
listed:

  xvsctl add-br br0 -- add-port br0 vm1 -- add-tunnel br0 vx1 --type vxlan --vni 100 --remote 192.0.2.2

Many commands at once: `xvsctl batch FILE` (one command per line) or
`xvsctl fdb-add BR --file FILE` (one `MAC PORT [VLAN [REMOTE]]` per line).

Exit status: 0 ok, 1 request rejected (every problem printed), 2 cannot reach xvsd.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable tables and trees.
    Table,
    /// The typed result rows as JSON (stable snake_case field names).
    Json,
}

/// Control the xvs switch daemon (xvsd) through its control socket.
#[derive(Debug, Parser)]
#[command(name = "xvsctl", version, after_long_help = CHAIN_HELP)]
pub struct Cli {
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Seconds to wait for the connection and for each answer.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_timeout)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub verb: Verb,
}

/// A verb after a `--` in a chain (no global options there).
#[derive(Debug, Parser)]
#[command(name = "xvsctl", no_binary_name = true)]
pub struct Chained {
    #[command(subcommand)]
    pub verb: Verb,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v > 0.0 && v <= 86_400.0) {
        return Err(format!(
            "{s}: the timeout must be above 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

fn kind_parser() -> impl clap::builder::TypedValueParser<Value = TunnelKind> {
    PossibleValuesParser::new(["vxlan", "geneve"]).map(|s| {
        if s == "vxlan" {
            TunnelKind::Vxlan
        } else {
            TunnelKind::Geneve
        }
    })
}

fn dir_parser() -> impl clap::builder::TypedValueParser<Value = Direction> {
    PossibleValuesParser::new(["in", "out"]).map(|s| {
        if s == "in" {
            Direction::In
        } else {
            Direction::Out
        }
    })
}

fn verdict_parser() -> impl clap::builder::TypedValueParser<Value = AclVerdict> {
    PossibleValuesParser::new(["allow", "drop"]).map(|s| {
        if s == "allow" {
            AclVerdict::Allow
        } else {
            AclVerdict::Drop
        }
    })
}

/// `--trunks 10,20,30-40` or `--trunks all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanList(pub Vec<u16>);

fn parse_vlan_list(s: &str) -> Result<VlanList, String> {
    if s == "all" {
        return Ok(VlanList(Vec::new()));
    }
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let num = |x: &str| -> Result<u16, String> {
            x.parse::<u16>()
                .map_err(|_| format!("{x:?} in {s:?} is not a VLAN number"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b || b > cmd::MAX_VLAN {
                    return Err(format!(
                        "range {part:?} is empty or beyond {}",
                        cmd::MAX_VLAN
                    ));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    Ok(VlanList(out))
}

fn parse_tos(s: &str) -> Result<TosConfig, String> {
    if s == "inherit" {
        return Ok(TosConfig::Inherit);
    }
    let v = match s.strip_prefix("0x") {
        Some(h) => u8::from_str_radix(h, 16),
        None => s.parse::<u8>(),
    };
    v.map(TosConfig::Fixed)
        .map_err(|_| format!("{s:?}: expected a number 0-255 or \"inherit\""))
}

/// `CLASS:TYPE:HEX`, e.g. `0x0102:0x80:00000001`.
fn parse_geneve_opt(s: &str) -> Result<GeneveOptConfig, String> {
    let mut it = s.splitn(3, ':');
    let (Some(c), Some(t), Some(d)) = (it.next(), it.next(), it.next()) else {
        return Err(format!(
            "{s:?}: expected CLASS:TYPE:HEX, e.g. 0x0102:0x80:00000001"
        ));
    };
    let num = |x: &str, max: u32, what: &str| -> Result<u32, String> {
        let v = match x.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16),
            None => x.parse::<u32>(),
        }
        .map_err(|_| format!("{s:?}: {what} {x:?} is not a number"))?;
        if v > max {
            return Err(format!("{s:?}: {what} {x} is above {max:#x}"));
        }
        Ok(v)
    };
    let class = num(c, 0xffff, "class")? as u16;
    let typ = num(t, 0xff, "type")? as u8;
    let data = xvs_dataplane::config::parse_hex(d).map_err(|e| format!("{s:?}: {e}"))?;
    Ok(GeneveOptConfig { class, typ, data })
}

fn parse_rate_arg(s: &str) -> Result<u64, String> {
    parse_rate(s).map_err(|e| format!("{e} (e.g. 100mbit, 1gbit, 10kbit)"))
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| format!("{e} (e.g. 64kb, 1500b, 1mb)"))
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Add a bridge.
    AddBr {
        bridge: String,
        /// Not an error if the bridge exists (nothing changes).
        #[arg(long)]
        may_exist: bool,
        /// Most MACs the bridge holds (default 65536).
        #[arg(long, value_name = "N")]
        fdb_max_entries: Option<usize>,
        /// Seconds after which an idle learned MAC is forgotten (default 300).
        #[arg(long, value_name = "SECS")]
        fdb_aging: Option<u64>,
        /// Learn no MACs: the FDB holds only static and installed entries.
        #[arg(long)]
        no_learning: bool,
        /// Answer ARP/ND for addresses of the bridge's table (arp-add).
        #[arg(long)]
        arp_suppress: bool,
    },
    /// Change options of a bridge: learning=BOOL, arp-suppress=BOOL,
    /// lookup=direct:IP|multicast:GROUP|static|external|none,
    /// lookup-miss=flood|drop|hold, lookup-hold-ms=MS.
    SetBr {
        bridge: String,
        /// KEY=VALUE pairs.
        #[arg(required = true, value_name = "KEY=VALUE")]
        options: Vec<String>,
    },
    /// Delete a bridge with its ports, tunnels, MACs, ACLs and policers.
    DelBr {
        bridge: String,
        #[arg(long)]
        if_exists: bool,
    },
    /// Add a local AF_XDP port (a VM-facing interface) to a bridge.
    AddPort {
        bridge: String,
        iface: String,
        /// Queues to bind (default: all the device has).
        #[arg(long, value_name = "N")]
        queues: Option<u16>,
        /// Access port in this VLAN (0-4094; 0 is the untagged domain).
        #[arg(long, value_name = "VLAN", conflicts_with = "trunks")]
        tag: Option<u16>,
        /// Trunk port for these VLANs: 10,20,30-40 or all.
        #[arg(long, value_name = "LIST", value_parser = parse_vlan_list)]
        trunks: Option<VlanList>,
        /// On a trunk: the VLAN of untagged frames.
        #[arg(long, value_name = "VLAN", requires = "trunks")]
        native: Option<u16>,
        #[arg(long)]
        mtu: Option<u16>,
        /// Learn at most N MACs behind the port (frames from others are
        /// still forwarded, their replies flooded).
        #[arg(long, value_name = "N")]
        max_macs: Option<u32>,
        /// Port security: the only source MACs the port may send from.
        #[arg(long, value_name = "MAC", value_delimiter = ',')]
        allowed_macs: Vec<MacAddr>,
        /// With --allowed-macs: the only source IPs (ARP and ND claims
        /// included).
        #[arg(
            long,
            value_name = "IP",
            value_delimiter = ',',
            requires = "allowed_macs"
        )]
        allowed_ips: Vec<IpAddr>,
        /// Storm control: broadcast, multicast and unknown unicast frames
        /// per second the port may send.
        #[arg(long, value_name = "PPS")]
        storm_pps: Option<u32>,
        #[arg(long)]
        may_exist: bool,
    },
    /// Add a VXLAN or Geneve tunnel port to a bridge.
    AddTunnel {
        bridge: String,
        name: String,
        #[arg(long = "type", value_name = "TYPE", value_parser = kind_parser())]
        kind: TunnelKind,
        /// Virtual network identifier, 0-16777215.
        #[arg(long)]
        vni: u32,
        /// Remote VTEP address(es), comma-separated or repeated.
        #[arg(long, value_name = "IP", value_delimiter = ',', required = true)]
        remote: Vec<IpAddr>,
        /// Local VTEP address (default: the uplink's of the same family).
        #[arg(long, value_name = "IP")]
        local: Option<IpAddr>,
        /// UDP destination port (default 4789 VXLAN, 6081 Geneve).
        #[arg(long, value_name = "PORT")]
        dst_port: Option<u16>,
        #[arg(long)]
        ttl: Option<u8>,
        /// Outer TOS: a number or `inherit` (copied from the inner header).
        #[arg(long, value_name = "N|inherit", value_parser = parse_tos)]
        tos: Option<TosConfig>,
        /// Set DF on the outer IPv4 header (the default).
        #[arg(long, overrides_with = "no_df")]
        df: bool,
        /// Do not set DF.
        #[arg(long)]
        no_df: bool,
        /// Send UDP checksums and verify non-zero ones.
        #[arg(long)]
        csum: bool,
        /// A Geneve option sent on every packet: CLASS:TYPE:HEX (repeatable).
        #[arg(long = "geneve-opt", value_name = "CLASS:TYPE:HEX", value_parser = parse_geneve_opt)]
        geneve_opt: Vec<GeneveOptConfig>,
        /// Accept packets from VTEPs not listed and learn MACs behind them
        /// (unicast only; implied when the remote is a multicast group).
        #[arg(long)]
        learn_remotes: bool,
        #[arg(long)]
        may_exist: bool,
    },
    /// Change a local port's learning limit and port security in place:
    /// options not given keep their value.
    SetPort {
        name: String,
        /// Learn at most N MACs behind the port (0: no limit).
        #[arg(long, value_name = "N")]
        max_macs: Option<u32>,
        /// The only source MACs the port may send from, comma-separated
        /// (`none`: port security off).
        #[arg(long, value_name = "LIST|none")]
        allowed_macs: Option<String>,
        /// The only source IPs, comma-separated (`none`: IPs not checked).
        #[arg(long, value_name = "LIST|none")]
        allowed_ips: Option<String>,
        /// Storm control: flooded frames per second (0: off).
        #[arg(long, value_name = "PPS")]
        storm_pps: Option<u32>,
    },
    /// Change a tunnel port in place (same port number): options not given
    /// keep their value; FDB entries follow their VTEP.
    SetTunnel {
        name: String,
        /// New remote VTEP list (the flood set), comma-separated or repeated.
        #[arg(long, value_name = "IP", value_delimiter = ',')]
        remote: Vec<IpAddr>,
        #[arg(long)]
        vni: Option<u32>,
        #[arg(long, value_name = "IP")]
        local: Option<IpAddr>,
        #[arg(long, value_name = "PORT")]
        dst_port: Option<u16>,
        #[arg(long)]
        ttl: Option<u8>,
        /// Outer TOS: a number or `inherit`.
        #[arg(long, value_name = "N|inherit", value_parser = parse_tos)]
        tos: Option<TosConfig>,
        /// Set DF on the outer IPv4 header.
        #[arg(long, value_name = "BOOL")]
        df: Option<bool>,
        /// Send UDP checksums and verify non-zero ones.
        #[arg(long, value_name = "BOOL")]
        csum: Option<bool>,
        /// Accept and learn VTEPs not listed.
        #[arg(long, value_name = "BOOL")]
        learn_remotes: Option<bool>,
    },
    /// Delete a port or tunnel (with its MACs, ACLs and policers).
    DelPort {
        name: String,
        #[arg(long)]
        if_exists: bool,
    },
    /// Set the underlay uplink interface.
    SetUplink {
        iface: String,
        /// Local VTEP address(es) (comma-separated or repeated).
        #[arg(long = "local-ip", value_name = "IP", value_delimiter = ',')]
        local_ip: Vec<IpAddr>,
        /// The uplink's MAC (default: read from the interface).
        #[arg(long)]
        mac: Option<MacAddr>,
        #[arg(long)]
        mtu: Option<u16>,
    },
    /// Add a static MAC (or many with --file).
    FdbAdd {
        bridge: String,
        #[arg(required_unless_present = "file")]
        mac: Option<MacAddr>,
        /// Port or tunnel name.
        #[arg(required_unless_present = "file")]
        port: Option<String>,
        #[arg(long, default_value_t = 0)]
        vlan: u16,
        /// For a tunnel: the VTEP the MAC is behind (needed with several
        /// remotes or a group); any unicast VTEP, listed or not.
        #[arg(long, value_name = "IP")]
        remote: Option<IpAddr>,
        /// Read entries from FILE (`-`: stdin), one `MAC PORT [VLAN [REMOTE]]`
        /// per line, all in one transaction.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["mac", "port", "remote"])]
        file: Option<PathBuf>,
        /// With --file: if the entries exceed the request size limit, send
        /// them as several transactions (each atomic) instead of failing.
        #[arg(long, requires = "file")]
        chunked: bool,
    },
    /// Delete a static MAC.
    FdbDel {
        bridge: String,
        mac: MacAddr,
        #[arg(long, default_value_t = 0)]
        vlan: u16,
        #[arg(long)]
        if_exists: bool,
    },
    /// Show the MAC table (static and learned).
    FdbShow { bridge: Option<String> },
    /// Add an overlay address (IP at MAC) to a bridge's table, what ARP/ND
    /// suppression answers.
    ArpAdd {
        bridge: String,
        ip: IpAddr,
        mac: MacAddr,
        #[arg(long, default_value_t = 0)]
        vlan: u16,
        /// The control plane that owns the entry (e.g. model, etcd).
        #[arg(long)]
        owner: Option<String>,
    },
    /// Delete an overlay address.
    ArpDel {
        bridge: String,
        ip: IpAddr,
        #[arg(long, default_value_t = 0)]
        vlan: u16,
        #[arg(long)]
        if_exists: bool,
    },
    /// Show the overlay address table.
    ArpShow { bridge: Option<String> },
    /// Take the lookup misses of bridges with the external provider.
    LookupMisses,
    /// Show the underlay neighbors (ARP/ND): state, source, whether a
    /// tunnel uses it (kept confirmed through the kernel), age, and how
    /// often it was refreshed and confirmed.
    NeighShow,
    /// Set a static underlay neighbor.
    NeighSet { ip: IpAddr, mac: MacAddr },
    /// Remove one static neighbor, or all of them.
    NeighFlush {
        ip: Option<IpAddr>,
        #[arg(long)]
        if_exists: bool,
    },
    /// Show the underlay routes.
    RouteShow,
    /// Add an underlay route.
    RouteAdd {
        prefix: Prefix,
        gateway: Option<IpAddr>,
        /// Output interface (default: the uplink).
        #[arg(long)]
        dev: Option<String>,
        #[arg(long, default_value_t = 0)]
        metric: u32,
        /// Replace a route with the same prefix and metric.
        #[arg(long)]
        may_exist: bool,
    },
    /// Delete underlay routes of a prefix.
    RouteDel {
        prefix: Prefix,
        #[arg(long)]
        metric: Option<u32>,
        #[arg(long)]
        if_exists: bool,
    },
    /// Add a flow: priority=100,in_port=vm1,dl_dst=...,actions=output:vx1
    AddFlow { bridge: String, flow: String },
    /// Delete all flows of a bridge, or those matching.
    DelFlows {
        bridge: String,
        matches: Option<String>,
        /// Only flows with exactly this match (and priority, if given).
        #[arg(long)]
        strict: bool,
    },
    /// Show the flows of a bridge (or of all).
    DumpFlows { bridge: Option<String> },
    /// Add a firewall rule: PORT --dir in|out --prio N MATCH... --action allow|drop
    AclAdd {
        port: String,
        #[arg(long, value_parser = dir_parser())]
        dir: Direction,
        #[arg(long)]
        prio: u32,
        /// Flow match syntax, e.g. tcp,tp_dst=22 (several words are joined).
        matches: Vec<String>,
        #[arg(long, value_parser = verdict_parser())]
        action: AclVerdict,
    },
    /// Delete firewall rules (of a priority and match, or all of the port and direction).
    AclDel {
        port: String,
        #[arg(long, value_parser = dir_parser())]
        dir: Direction,
        #[arg(long)]
        prio: Option<u32>,
        matches: Vec<String>,
        #[arg(long)]
        if_exists: bool,
    },
    /// Show the firewall rules of a port.
    AclShow {
        port: String,
        #[arg(long, value_parser = dir_parser())]
        dir: Option<Direction>,
    },
    /// Set a policer: PORT --dir in|out --rate 100mbit --burst 64kb [--peak 1gbit]
    QosSet {
        port: String,
        #[arg(long, value_parser = dir_parser())]
        dir: Direction,
        #[arg(long, value_parser = parse_rate_arg)]
        rate: u64,
        #[arg(long, value_parser = parse_size_arg)]
        burst: u64,
        #[arg(long, value_parser = parse_rate_arg)]
        peak: Option<u64>,
    },
    /// Remove a port's policer (one direction, or both).
    QosClear {
        port: String,
        #[arg(long, value_parser = dir_parser())]
        dir: Option<Direction>,
        #[arg(long)]
        if_exists: bool,
    },
    /// Show the whole configuration as a tree.
    Show,
    /// Show port, tunnel and uplink counters (rx/tx, drops by reason, MACs
    /// not learned, and on the uplink the snooped ARP/ND replies by outcome).
    Stats {
        /// One port, tunnel or the uplink.
        target: Option<String>,
        /// Break the counters down per worker.
        #[arg(long)]
        per_worker: bool,
    },
    /// Show per-worker load: busy %, packets, cycles per packet, polls.
    WorkerStats,
    /// Show the tunnel ports.
    TunnelPorts,
    /// Apply many commands (one per line, xvsctl syntax without `xvsctl`)
    /// from FILE or stdin as one transaction.
    Batch {
        /// Default or `-`: stdin.
        file: Option<PathBuf>,
        /// If the commands exceed the request size limit, send them as
        /// several transactions (each atomic) instead of failing.
        #[arg(long)]
        chunked: bool,
    },
    /// The declarative network model: validate, apply, show.
    Model {
        #[command(subcommand)]
        verb: crate::model::cli::ModelVerb,
    },
    /// Show the versions of xvsctl, xvsd and the protocol.
    Version,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

impl Verb {
    /// The verb's name on the command line.
    pub fn name(&self) -> String {
        // The derive names subcommands after the variants in kebab-case.
        let dbg = format!("{self:?}");
        let variant = dbg.split([' ', '{', '(']).next().unwrap_or("");
        let mut out = String::new();
        for (i, c) in variant.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    out.push('-');
                }
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The commands a config-changing verb stands for; `None` for the
    /// others. `input` is stdin, for `fdb-add --file -`.
    pub fn commands(&self, input: &mut dyn Read) -> Option<Result<Vec<Command>, String>> {
        let one = |c: Command| Some(Ok(vec![c]));
        let join = |m: &[String]| m.join(",");
        match self {
            Verb::AddBr {
                bridge,
                may_exist,
                fdb_max_entries,
                fdb_aging,
                no_learning,
                arp_suppress,
            } => one(Command::AddBr(cmd::AddBr {
                name: bridge.clone(),
                may_exist: *may_exist,
                fdb_max_entries: *fdb_max_entries,
                fdb_aging_secs: *fdb_aging,
                learning: no_learning.then_some(false),
                arp_suppress: arp_suppress.then_some(true),
            })),
            Verb::SetBr { bridge, options } => {
                Some(parse_set_br(bridge, options).map(|c| vec![Command::SetBr(c)]))
            }
            Verb::DelBr { bridge, if_exists } => one(Command::DelBr(cmd::DelBr {
                name: bridge.clone(),
                if_exists: *if_exists,
            })),
            Verb::AddPort {
                bridge,
                iface,
                queues,
                tag,
                trunks,
                native,
                mtu,
                max_macs,
                allowed_macs,
                allowed_ips,
                storm_pps,
                may_exist,
            } => one(Command::AddPort(cmd::AddPort {
                bridge: bridge.clone(),
                name: iface.clone(),
                queues: *queues,
                tag: *tag,
                trunks: trunks.as_ref().map(|t| t.0.clone()),
                native: *native,
                mtu: *mtu,
                max_macs: *max_macs,
                allowed_macs: allowed_macs.clone(),
                allowed_ips: allowed_ips.clone(),
                storm_pps: *storm_pps,
                may_exist: *may_exist,
            })),
            Verb::AddTunnel {
                bridge,
                name,
                kind,
                vni,
                remote,
                local,
                dst_port,
                ttl,
                tos,
                df,
                no_df,
                csum,
                geneve_opt,
                learn_remotes,
                may_exist,
            } => one(Command::AddTunnel(cmd::AddTunnel {
                bridge: bridge.clone(),
                name: name.clone(),
                kind: *kind,
                vni: *vni,
                remotes: remote.clone(),
                local: *local,
                dst_port: *dst_port,
                ttl: *ttl,
                tos: *tos,
                df: if *no_df {
                    Some(false)
                } else if *df {
                    Some(true)
                } else {
                    None
                },
                csum: *csum,
                geneve_opts: geneve_opt.clone(),
                learn_remotes: *learn_remotes,
                may_exist: *may_exist,
            })),
            Verb::SetPort {
                name,
                max_macs,
                allowed_macs,
                allowed_ips,
                storm_pps,
            } => Some((|| {
                Ok(vec![Command::SetPort(cmd::SetPort {
                    name: name.clone(),
                    max_macs: *max_macs,
                    allowed_macs: addr_list(allowed_macs.as_deref(), "allowed-macs")?,
                    allowed_ips: addr_list(allowed_ips.as_deref(), "allowed-ips")?,
                    storm_pps: *storm_pps,
                })])
            })()),
            Verb::SetTunnel {
                name,
                remote,
                vni,
                local,
                dst_port,
                ttl,
                tos,
                df,
                csum,
                learn_remotes,
            } => one(Command::SetTunnel(cmd::SetTunnel {
                name: name.clone(),
                remotes: (!remote.is_empty()).then(|| remote.clone()),
                vni: *vni,
                local: *local,
                dst_port: *dst_port,
                ttl: *ttl,
                tos: *tos,
                df: *df,
                csum: *csum,
                learn_remotes: *learn_remotes,
            })),
            Verb::DelPort { name, if_exists } => one(Command::DelPort(cmd::DelPort {
                name: name.clone(),
                if_exists: *if_exists,
            })),
            Verb::SetUplink {
                iface,
                local_ip,
                mac,
                mtu,
            } => one(Command::SetUplink(cmd::SetUplink {
                iface: iface.clone(),
                local_ips: local_ip.clone(),
                mac: *mac,
                mtu: *mtu,
            })),
            Verb::FdbAdd {
                bridge,
                mac,
                port,
                vlan,
                remote,
                file,
                ..
            } => match (file, mac, port) {
                (Some(f), _, _) => Some(read_fdb_file(bridge, f, input)),
                (None, Some(mac), Some(port)) => one(Command::FdbAdd(cmd::FdbAdd {
                    bridge: bridge.clone(),
                    mac: *mac,
                    port: port.clone(),
                    vlan: *vlan,
                    remote: *remote,
                })),
                _ => Some(Err("fdb-add needs MAC and PORT, or --file".into())),
            },
            Verb::ArpAdd {
                bridge,
                ip,
                mac,
                vlan,
                owner,
            } => one(Command::ArpAdd(cmd::ArpAdd {
                bridge: bridge.clone(),
                ip: *ip,
                mac: *mac,
                vlan: *vlan,
                owner: owner.clone(),
            })),
            Verb::ArpDel {
                bridge,
                ip,
                vlan,
                if_exists,
            } => one(Command::ArpDel(cmd::ArpDel {
                bridge: bridge.clone(),
                ip: *ip,
                vlan: *vlan,
                if_exists: *if_exists,
            })),
            Verb::FdbDel {
                bridge,
                mac,
                vlan,
                if_exists,
            } => one(Command::FdbDel(cmd::FdbDel {
                bridge: bridge.clone(),
                mac: *mac,
                vlan: *vlan,
                if_exists: *if_exists,
            })),
            Verb::NeighSet { ip, mac } => {
                one(Command::NeighSet(cmd::NeighSet { ip: *ip, mac: *mac }))
            }
            Verb::NeighFlush { ip, if_exists } => one(Command::NeighFlush(cmd::NeighFlush {
                ip: *ip,
                if_exists: *if_exists,
            })),
            Verb::RouteAdd {
                prefix,
                gateway,
                dev,
                metric,
                may_exist,
            } => one(Command::RouteAdd(cmd::RouteAdd {
                prefix: *prefix,
                gateway: *gateway,
                dev: dev.clone(),
                metric: *metric,
                may_exist: *may_exist,
            })),
            Verb::RouteDel {
                prefix,
                metric,
                if_exists,
            } => one(Command::RouteDel(cmd::RouteDel {
                prefix: *prefix,
                metric: *metric,
                if_exists: *if_exists,
            })),
            Verb::AddFlow { bridge, flow } => one(Command::AddFlow(cmd::AddFlow {
                bridge: bridge.clone(),
                flow: flow.clone(),
            })),
            Verb::DelFlows {
                bridge,
                matches,
                strict,
            } => one(Command::DelFlows(cmd::DelFlows {
                bridge: bridge.clone(),
                matches: matches.clone(),
                strict: *strict,
            })),
            Verb::AclAdd {
                port,
                dir,
                prio,
                matches,
                action,
            } => one(Command::AclAdd(cmd::AclAdd {
                port: port.clone(),
                dir: *dir,
                priority: *prio,
                matches: join(matches),
                action: *action,
            })),
            Verb::AclDel {
                port,
                dir,
                prio,
                matches,
                if_exists,
            } => one(Command::AclDel(cmd::AclDel {
                port: port.clone(),
                dir: *dir,
                priority: *prio,
                matches: if matches.is_empty() {
                    None
                } else {
                    Some(join(matches))
                },
                if_exists: *if_exists,
            })),
            Verb::QosSet {
                port,
                dir,
                rate,
                burst,
                peak,
            } => one(Command::QosSet(cmd::QosSet {
                port: port.clone(),
                dir: *dir,
                rate_bps: *rate,
                burst_bytes: *burst,
                peak_bps: *peak,
            })),
            Verb::QosClear {
                port,
                dir,
                if_exists,
            } => one(Command::QosClear(cmd::QosClear {
                port: port.clone(),
                dir: *dir,
                if_exists: *if_exists,
            })),
            _ => None,
        }
    }
}

/// `set-br BR KEY=VALUE...`: the keys are the bridge options, with `-`
/// or `_` between words.
/// A comma-separated address list of set-port, `none` for the empty one.
fn addr_list<T: std::str::FromStr>(s: Option<&str>, opt: &str) -> Result<Option<Vec<T>>, String> {
    let Some(s) = s else { return Ok(None) };
    if s == "none" {
        return Ok(Some(Vec::new()));
    }
    s.split(',')
        .map(|a| {
            a.trim()
                .parse()
                .map_err(|_| format!("set-port: --{opt} {a:?} is not an address"))
        })
        .collect::<Result<Vec<T>, String>>()
        .map(Some)
}

fn parse_set_br(bridge: &str, options: &[String]) -> Result<cmd::SetBr, String> {
    let mut c = cmd::SetBr {
        name: bridge.to_string(),
        ..Default::default()
    };
    for o in options {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| format!("set-br: {o:?} is not KEY=VALUE"))?;
        let slot = match k.replace('_', "-").as_str() {
            "learning" => &mut c.learning,
            "arp-suppress" => &mut c.arp_suppress,
            "lookup" => {
                match parse_lookup_provider(v)? {
                    Some(p) => c.lookup = Some(p),
                    None => c.no_lookup = true,
                }
                continue;
            }
            "lookup-miss" => {
                c.lookup_miss = Some(match v {
                    "flood" => MissAction::Flood,
                    "drop" => MissAction::Drop,
                    "hold" => MissAction::Hold,
                    _ => return Err(format!("set-br: lookup-miss={v:?}: flood, drop or hold")),
                });
                continue;
            }
            "lookup-hold-ms" => {
                c.lookup_hold_ms = Some(
                    v.parse()
                        .map_err(|_| format!("set-br: lookup-hold-ms={v:?}: a number of ms"))?,
                );
                continue;
            }
            _ => {
                return Err(format!(
                    "set-br: unknown option {k:?} (learning, arp-suppress, lookup, lookup-miss, lookup-hold-ms)"
                ))
            }
        };
        *slot = Some(match v {
            "true" | "on" | "yes" | "1" => true,
            "false" | "off" | "no" | "0" => false,
            _ => return Err(format!("set-br: {k}={v:?}: expected true or false")),
        });
    }
    Ok(c)
}

/// `lookup=direct:IP | multicast:GROUP | static | external | none`.
fn parse_lookup_provider(v: &str) -> Result<Option<LookupProviderConfig>, String> {
    let (kind, arg) = v.split_once(':').unwrap_or((v, ""));
    let ip = |what: &str| {
        arg.parse::<IpAddr>()
            .map_err(|_| format!("set-br: lookup={kind}:{arg:?}: {what} must be an IP address"))
    };
    Ok(Some(match (kind, arg.is_empty()) {
        ("none", true) => return Ok(None),
        ("direct", false) => LookupProviderConfig::Direct {
            vtep: ip("the VTEP")?,
        },
        ("multicast", false) => LookupProviderConfig::Multicast {
            group: ip("the group")?,
        },
        ("static", true) => LookupProviderConfig::Static {
            entries: Vec::new(),
        },
        ("external", true) => LookupProviderConfig::External,
        _ => {
            return Err(format!(
                "set-br: lookup={v:?}: one of direct:IP, multicast:GROUP, static, external, none"
            ))
        }
    }))
}

fn read_input(file: &std::path::Path, stdin: &mut dyn Read) -> Result<String, String> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        stdin
            .read_to_string(&mut s)
            .map_err(|e| format!("reading stdin: {e}"))?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
    }
}

/// `fdb-add BR --file FILE`: `MAC PORT [VLAN [REMOTE]]` per line; `#`
/// starts a comment.
fn read_fdb_file(
    bridge: &str,
    file: &std::path::Path,
    stdin: &mut dyn Read,
) -> Result<Vec<Command>, String> {
    let text = read_input(file, stdin)?;
    let name = if file.as_os_str() == "-" {
        "stdin".to_string()
    } else {
        file.display().to_string()
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = |m: String| format!("{name} line {}: {m}", i + 1);
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 2 || f.len() > 4 {
            return Err(at(format!(
                "expected MAC PORT [VLAN [REMOTE]], got {line:?}"
            )));
        }
        let mac: MacAddr = f[0].parse().map_err(|e| at(format!("{e}")))?;
        let vlan = match f.get(2) {
            Some(v) => v
                .parse::<u16>()
                .map_err(|_| at(format!("VLAN {v:?} is not a number")))?,
            None => 0,
        };
        let remote = match f.get(3) {
            Some(r) => Some(
                r.parse::<IpAddr>()
                    .map_err(|_| at(format!("remote {r:?} is not an IP address")))?,
            ),
            None => None,
        };
        out.push(Command::FdbAdd(cmd::FdbAdd {
            bridge: bridge.to_string(),
            mac,
            port: f[1].to_string(),
            vlan,
            remote,
        }));
    }
    Ok(out)
}

/// Splits a line into words as a shell would for simple cases: blanks
/// separate, '...' and "..." quote (backslash escapes inside "..."), `#`
/// at the start of a word begins a comment.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err("unterminated '".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x) => cur.push(x),
                            None => return Err("unterminated \"".into()),
                        },
                        Some(x) => cur.push(x),
                        None => return Err("unterminated \"".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `batch`: every line one or more chained (`--`) config-changing verbs.
fn read_batch(
    file: Option<&std::path::Path>,
    stdin: &mut dyn Read,
) -> Result<Vec<Command>, String> {
    let dash = PathBuf::from("-");
    let file = file.unwrap_or(&dash);
    let text = read_input(file, stdin)?;
    let mut out = Vec::new();
    let mut no_input = std::io::empty();
    // Built once: clap builds the whole command tree on every
    // `try_parse_from`, which would dominate a batch of 100,000 lines.
    let mut app = Chained::command();
    for (i, line) in text.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}", i + 1);
        let words = split_words(line).map_err(at)?;
        for group in words.split(|w| w == "--").filter(|g| !g.is_empty()) {
            let verb = app
                .try_get_matches_from_mut(group)
                .and_then(|m| Chained::from_arg_matches(&m))
                .map_err(|e| at(first_line(&e.to_string())))?
                .verb;
            if matches!(
                verb,
                Verb::FdbAdd { file: Some(_), .. } | Verb::Batch { .. }
            ) {
                return Err(at(format!(
                    "{} cannot read another file inside a batch",
                    verb.name()
                )));
            }
            match verb.commands(&mut no_input) {
                Some(Ok(cmds)) => out.extend(cmds),
                Some(Err(e)) => return Err(at(e)),
                None => {
                    return Err(at(format!(
                        "{} does not change the config: a batch holds only config commands",
                        verb.name()
                    )))
                }
            }
        }
    }
    Ok(out)
}

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_string()
}

/// Where the output goes; a struct so tests can capture it.
struct Io<'a> {
    stdin: &'a mut dyn Read,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

/// Runs xvsctl with `args` (the program name first) and returns the exit
/// status.
pub fn run(
    args: Vec<OsString>,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let mut io = Io { stdin, out, err };
    let prog = args.first().cloned().unwrap_or_else(|| "xvsctl".into());
    let rest = args.get(1..).unwrap_or(&[]);
    let mut groups = rest.split(|a| a == "--").map(ovs_style_flags);
    let first: Vec<OsString> = std::iter::once(prog)
        .chain(groups.next().unwrap_or_default())
        .collect();
    let cli = match Cli::try_parse_from(first) {
        Ok(c) => c,
        Err(e) => return clap_exit(e, &mut io),
    };
    let mut verbs = vec![cli.verb];
    for g in groups {
        if g.is_empty() {
            let _ = writeln!(io.err, "xvsctl: empty command between `--` separators");
            return 1;
        }
        match Chained::try_parse_from(&g) {
            Ok(c) => verbs.push(c.verb),
            Err(e) => return clap_exit(e, &mut io),
        }
    }
    let opts = Opts {
        socket: cli.socket,
        format: cli.format,
        timeout: cli.timeout,
    };
    if verbs.len() > 1 {
        let mut cmds = Vec::new();
        for v in &verbs {
            if matches!(v, Verb::Batch { .. }) {
                let _ = writeln!(io.err, "xvsctl: batch cannot be chained");
                return 1;
            }
            match v.commands(io.stdin) {
                Some(Ok(c)) => cmds.extend(c),
                Some(Err(e)) => {
                    let _ = writeln!(io.err, "xvsctl: {e}");
                    return 1;
                }
                None => {
                    let _ = writeln!(
                        io.err,
                        "xvsctl: {} cannot be chained: only config-changing commands go in a transaction",
                        v.name()
                    );
                    return 1;
                }
            }
        }
        return transact(&opts, cmds, false, &mut io);
    }
    let verb = verbs.remove(0);
    single(&opts, verb, &mut io)
}

/// ovs-vsctl puts `--may-exist` and `--if-exists` before the verb
/// (`--may-exist add-br br0`); clap wants them after it. Moves them there.
fn ovs_style_flags(group: &[OsString]) -> Vec<OsString> {
    let with_value = ["--socket", "--format", "--timeout"];
    let mut moved = Vec::new();
    let mut out = Vec::with_capacity(group.len());
    let mut i = 0;
    while i < group.len() {
        let a = &group[i];
        let s = a.to_string_lossy();
        if s == "--may-exist" || s == "--if-exists" {
            moved.push(a.clone());
        } else if with_value.contains(&s.as_ref()) {
            out.extend(group[i..(i + 2).min(group.len())].iter().cloned());
            i += 2;
            continue;
        } else if !s.starts_with('-') {
            // The verb: the rest is its own.
            out.extend(group[i..].iter().cloned());
            out.extend(moved);
            return out;
        } else {
            out.push(a.clone());
        }
        i += 1;
    }
    out.extend(moved);
    out
}

struct Opts {
    socket: PathBuf,
    format: Format,
    timeout: Duration,
}

fn clap_exit(e: clap::Error, io: &mut Io<'_>) -> i32 {
    use clap::error::ErrorKind;
    let text = e.render().to_string();
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = write!(io.out, "{}", e.render());
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                1
            } else {
                0
            }
        }
        // A usage error is a refused request (1), not an unreachable
        // daemon (2, clap's own default).
        _ => {
            let _ = write!(io.err, "{text}");
            1
        }
    }
}

fn single(opts: &Opts, verb: Verb, io: &mut Io<'_>) -> i32 {
    match &verb {
        Verb::Completions { shell } => {
            let mut c = Cli::command();
            clap_complete::generate(*shell, &mut c, "xvsctl", io.out);
            return 0;
        }
        Verb::Man => {
            let man = clap_mangen::Man::new(Cli::command());
            return match man.render(io.out) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = writeln!(io.err, "xvsctl: {e}");
                    1
                }
            };
        }
        Verb::Model { verb } => {
            let mut cx = crate::model::cli::Ctx {
                socket: &opts.socket,
                timeout: opts.timeout,
                json: opts.format == Format::Json,
                out: io.out,
                err: io.err,
            };
            return crate::model::cli::run(verb, &mut cx);
        }
        Verb::Batch { file, chunked } => {
            return match read_batch(file.as_deref(), io.stdin) {
                Ok(cmds) if cmds.is_empty() => {
                    let _ = writeln!(io.err, "xvsctl: the batch holds no command");
                    1
                }
                Ok(cmds) => transact(opts, cmds, *chunked, io),
                Err(e) => {
                    let _ = writeln!(io.err, "xvsctl: batch: {e}");
                    1
                }
            };
        }
        _ => {}
    }
    if let Some(cmds) = verb.commands(io.stdin) {
        let chunked = matches!(verb, Verb::FdbAdd { chunked: true, .. });
        return match cmds {
            Ok(c) if c.is_empty() => {
                let _ = writeln!(io.err, "xvsctl: nothing to do (no entry read)");
                1
            }
            Ok(c) => transact(opts, c, chunked, io),
            Err(e) => {
                let _ = writeln!(io.err, "xvsctl: {e}");
                1
            }
        };
    }
    let method = match &verb {
        Verb::Show => Method::Show,
        Verb::FdbShow { bridge } => Method::FdbShow(FdbShowParams {
            bridge: bridge.clone(),
        }),
        Verb::ArpShow { bridge } => Method::ArpShow(ArpShowParams {
            bridge: bridge.clone(),
        }),
        Verb::LookupMisses => Method::LookupMisses,
        Verb::NeighShow => Method::NeighShow,
        Verb::RouteShow => Method::RouteShow,
        Verb::DumpFlows { bridge } => Method::DumpFlows(DumpFlowsParams {
            bridge: bridge.clone(),
        }),
        Verb::AclShow { port, dir } => Method::AclShow(AclShowParams {
            port: port.clone(),
            dir: *dir,
        }),
        Verb::Stats { target, per_worker } => Method::Stats(StatsParams {
            target: target.clone(),
            per_worker: *per_worker,
        }),
        Verb::WorkerStats => Method::WorkerStats,
        Verb::TunnelPorts => Method::TunnelPorts,
        Verb::Version => Method::Hello,
        other => {
            let _ = writeln!(
                io.err,
                "xvsctl: {} is not handled here (a bug)",
                other.name()
            );
            return 1;
        }
    };
    let result = Client::connect(&opts.socket, opts.timeout).and_then(|mut c| c.call(&method));
    let value = match result {
        Ok(v) => v,
        Err(e) => return report(&e, io),
    };
    let text = match opts.format {
        Format::Json => serde_json::to_string_pretty(&value)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Format::Table => render(&method, value),
    };
    match text {
        Ok(t) => {
            let _ = io.out.write_all(t.as_bytes());
            0
        }
        Err(e) => {
            let _ = writeln!(
                io.err,
                "xvsctl: unexpected answer to {}: {e} (is xvsd of another protocol version?)",
                method.name()
            );
            2
        }
    }
}

fn report(e: &ClientError, io: &mut Io<'_>) -> i32 {
    match e {
        ClientError::Rejected(r) if e.exit_code() == 1 => {
            let problems = r.problems();
            if problems.len() == 1 && problems[0] == r.message {
                let _ = writeln!(io.err, "xvsctl: {}", r.message);
            } else {
                let _ = writeln!(io.err, "xvsctl: rejected, {} problem(s):", problems.len());
                for p in problems {
                    let _ = writeln!(io.err, "  - {p}");
                }
            }
        }
        other => {
            let _ = writeln!(io.err, "xvsctl: {other}");
        }
    }
    e.exit_code()
}

/// Splits commands into transactions that each fit the request limit.
fn chunks(cmds: Vec<Command>) -> Vec<Vec<Command>> {
    // The envelope around the commands is well under this.
    let budget = MAX_REQUEST_BYTES - 512;
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut size = 0;
    for c in cmds {
        let n = serde_json::to_vec(&c)
            .map(|v| v.len() + 1)
            .unwrap_or(budget);
        if !cur.is_empty() && size + n > budget {
            out.push(std::mem::take(&mut cur));
            size = 0;
        }
        size += n;
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn request_size(cmds: &[Command]) -> usize {
    let req = Request::new(
        Id::Number(1),
        &Method::Transact(TransactParams {
            commands: cmds.to_vec(),
        }),
    );
    serde_json::to_vec(&req)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

fn transact(opts: &Opts, cmds: Vec<Command>, chunked: bool, io: &mut Io<'_>) -> i32 {
    let n = cmds.len();
    let size = request_size(&cmds);
    let parts = if size <= MAX_REQUEST_BYTES {
        vec![cmds]
    } else if chunked {
        chunks(cmds)
    } else {
        let _ = writeln!(
            io.err,
            "xvsctl: {n} commands make a {size}-byte request, over the {MAX_REQUEST_BYTES}-byte limit: \
             split them, or pass --chunked to send several transactions (each atomic, not all together)"
        );
        return 1;
    };
    let mut client = match Client::connect(&opts.socket, opts.timeout) {
        Ok(c) => c,
        Err(e) => return report(&e, io),
    };
    let total = parts.len();
    let mut applied = 0;
    let mut changed = false;
    for (i, part) in parts.into_iter().enumerate() {
        let len = part.len();
        match client.transact(part) {
            Ok(r) => {
                applied += r.applied;
                changed |= r.changed;
            }
            Err(e) => {
                if total > 1 {
                    let _ = writeln!(
                        io.err,
                        "xvsctl: transaction {} of {total} (commands {}..{}) failed; the {applied} commands before it were committed",
                        i + 1,
                        applied + 1,
                        applied + len
                    );
                }
                return report(&e, io);
            }
        }
    }
    if opts.format == Format::Json {
        let r = TransactResult { applied, changed };
        let _ = writeln!(
            io.out,
            "{}",
            serde_json::to_string_pretty(&r).unwrap_or_default()
        );
    }
    0
}

/// Human output of a result.
pub fn render(method: &Method, v: Value) -> Result<String, String> {
    fn de<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }
    Ok(match method {
        Method::Hello => {
            let h: HelloResult = de(v)?;
            format!(
                "xvsctl {}\n{} {} (protocol {}; xvsctl speaks {})\n",
                env!("CARGO_PKG_VERSION"),
                h.daemon,
                h.daemon_version,
                h.protocol_version,
                crate::protocol::PROTOCOL_VERSION
            )
        }
        Method::Show => show_tree(&de::<Config>(v)?),
        Method::FdbShow(_) => fdb_table(&de::<Vec<FdbRow>>(v)?),
        Method::LookupMisses => {
            let rows: Vec<MissRow> = de(v)?;
            let opt = |o: Option<String>| o.unwrap_or_else(|| "-".into());
            table(
                &["BRIDGE", "VLAN", "MAC", "IP", "PORT", "FROM_VTEP"],
                rows.iter()
                    .map(|r| {
                        vec![
                            r.bridge.clone(),
                            r.vlan.to_string(),
                            opt(r.mac.map(|m| m.to_string())),
                            opt(r.ip.map(|i| i.to_string())),
                            r.port.clone(),
                            opt(r.src_vtep.map(|i| i.to_string())),
                        ]
                    })
                    .collect(),
            )
        }
        Method::ArpShow(_) => {
            let rows: Vec<AddrRow> = de(v)?;
            table(
                &["BRIDGE", "VLAN", "IP", "MAC", "OWNER"],
                rows.iter()
                    .map(|r| {
                        vec![
                            r.bridge.clone(),
                            r.vlan.to_string(),
                            r.ip.to_string(),
                            r.mac.to_string(),
                            r.owner.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect(),
            )
        }
        Method::NeighShow => {
            let rows: Vec<NeighRow> = de(v)?;
            table(
                &[
                    "IP",
                    "MAC",
                    "STATE",
                    "SOURCE",
                    "IN_USE",
                    "AGE",
                    "REFRESHES",
                    "CONFIRMED",
                ],
                rows.iter()
                    .map(|r| {
                        vec![
                            r.ip.to_string(),
                            r.mac.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
                            snake(&r.state),
                            snake(&r.source),
                            (if r.in_use { "yes" } else { "no" }).into(),
                            r.age_secs
                                .map(|a| format!("{a}s"))
                                .unwrap_or_else(|| "-".into()),
                            opt_count(r.refreshes),
                            opt_count(r.confirmations),
                        ]
                    })
                    .collect(),
            )
        }
        Method::RouteShow => {
            let rows: Vec<RouteRow> = de(v)?;
            table(
                &["PREFIX", "GATEWAY", "DEV", "METRIC", "ORIGIN"],
                rows.iter()
                    .map(|r| {
                        vec![
                            r.prefix.to_string(),
                            r.gateway
                                .map(|g| g.to_string())
                                .unwrap_or_else(|| "-".into()),
                            r.dev.clone(),
                            r.metric.to_string(),
                            snake(&r.origin),
                        ]
                    })
                    .collect(),
            )
        }
        Method::DumpFlows(_) => {
            let rows: Vec<FlowRow> = de(v)?;
            let mut s = String::new();
            for r in rows {
                let counters = match (r.n_packets, r.n_bytes) {
                    (Some(p), Some(b)) => format!(" n_packets={p}, n_bytes={b},"),
                    _ => String::new(),
                };
                let cookie = if r.cookie != 0 {
                    format!(" cookie={:#x},", r.cookie)
                } else {
                    String::new()
                };
                let m = if r.matches.is_empty() {
                    String::new()
                } else {
                    format!(",{}", r.matches)
                };
                s.push_str(&format!(
                    " bridge={},{cookie}{counters} priority={}{m} actions={}\n",
                    r.bridge, r.priority, r.actions
                ));
            }
            s
        }
        Method::AclShow(_) => {
            let rows: Vec<AclRow> = de(v)?;
            table(
                &["PORT", "DIR", "PRIORITY", "MATCH", "ACTION", "HITS"],
                rows.iter()
                    .map(|r| {
                        vec![
                            r.port.clone(),
                            r.dir.to_string(),
                            r.priority.to_string(),
                            if r.matches.is_empty() {
                                "*".into()
                            } else {
                                r.matches.clone()
                            },
                            r.action.to_string(),
                            r.hits.map(|h| h.to_string()).unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect(),
            )
        }
        Method::Stats(_) => stats_table(&de::<Vec<StatsRow>>(v)?),
        Method::WorkerStats => {
            let rows: Vec<WorkerStatsRow> = de(v)?;
            let mut out = table(
                &[
                    "WORKER",
                    "CORE",
                    "BUSY%",
                    "PACKETS",
                    "CYC/PKT",
                    "SEND_CYC/PKT",
                    "BATCHES",
                    "EMPTY_POLLS",
                    "SLEEPS",
                    "RING_FULL",
                    "EVENTS",
                ],
                rows.iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.core.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                            format!("{:.1}", r.busy_pct),
                            r.packets.to_string(),
                            r.cycles_per_packet
                                .map(|c| format!("{c:.1}"))
                                .unwrap_or_else(|| "-".into()),
                            r.send_cycles_per_packet
                                .map(|c| format!("{c:.1}"))
                                .unwrap_or_else(|| "-".into()),
                            r.batches.to_string(),
                            r.empty_polls.to_string(),
                            r.sleeps.to_string(),
                            r.ring_full.to_string(),
                            drops_text(&r.events),
                        ]
                    })
                    .collect(),
            );
            for r in &rows {
                if let Some(u) = r.umem {
                    out.push_str(&format!(
                        "worker {} umem: {} chunks, {} free, {} in fill rings, {} in flight, {} held\n",
                        r.id, u.chunks, u.free, u.fill, u.tx, u.held
                    ));
                }
            }
            out
        }
        Method::TunnelPorts => {
            let rows: Vec<TunnelPortRow> = de(v)?;
            table(
                &[
                    "NAME", "BRIDGE", "TYPE", "VNI", "DST_PORT", "LOCAL", "REMOTES", "TTL", "TOS",
                    "OPTIONS",
                ],
                rows.iter()
                    .map(|r| {
                        let mut o = Vec::new();
                        if r.df {
                            o.push("df".to_string());
                        }
                        if r.csum {
                            o.push("csum".into());
                        }
                        o.extend(r.geneve_opts.iter().map(|g| format!("opt={g}")));
                        if r.learn_remotes {
                            o.push("learn".into());
                        }
                        if !r.dynamic_remotes.is_empty() {
                            let d: Vec<String> =
                                r.dynamic_remotes.iter().map(|x| x.to_string()).collect();
                            o.push(format!("dynamic={}", d.join(",")));
                        }
                        vec![
                            r.name.clone(),
                            r.bridge.clone(),
                            r.kind.to_string(),
                            r.vni.to_string(),
                            r.dst_port.to_string(),
                            r.local.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
                            r.remotes
                                .iter()
                                .map(|x| x.to_string())
                                .collect::<Vec<_>>()
                                .join(","),
                            r.ttl.to_string(),
                            r.tos.clone(),
                            o.join(","),
                        ]
                    })
                    .collect(),
            )
        }
        Method::Transact(_) => {
            let r: TransactResult = de(v)?;
            format!("applied {} command(s)\n", r.applied)
        }
    })
}

/// An enum's serde name (`reachable`), for table cells.
fn snake<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// Left-aligned columns, two spaces apart, a header line first.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

fn fdb_table(rows: &[FdbRow]) -> String {
    table(
        &["BRIDGE", "VLAN", "MAC", "PORT", "REMOTE", "TYPE", "AGE"],
        rows.iter()
            .map(|r| {
                vec![
                    r.bridge.clone(),
                    r.vlan.to_string(),
                    r.mac.to_string(),
                    r.port.clone(),
                    r.remote
                        .map(|x| x.to_string())
                        .unwrap_or_else(|| "-".into()),
                    match r.kind {
                        FdbKind::Static => "static".into(),
                        FdbKind::Learned => "learned".into(),
                        FdbKind::Lookup => "lookup".into(),
                    },
                    r.age_secs
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect(),
    )
}

fn drops_text(d: &BTreeMap<String, u64>) -> String {
    d.iter()
        .filter(|(_, n)| **n != 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A count the daemon may not have (`-`).
fn opt_count(n: Option<u64>) -> String {
    n.map_or_else(|| "-".into(), |n| n.to_string())
}

fn stats_table(rows: &[StatsRow]) -> String {
    let mut out = table(
        &[
            "NAME",
            "KIND",
            "RX_PACKETS",
            "RX_BYTES",
            "TX_PACKETS",
            "TX_BYTES",
            "DROPS",
        ],
        rows.iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    snake(&r.kind),
                    r.rx_packets.to_string(),
                    r.rx_bytes.to_string(),
                    r.tx_packets.to_string(),
                    r.tx_bytes.to_string(),
                    r.drops.values().sum::<u64>().to_string(),
                ]
            })
            .collect(),
    );
    for r in rows {
        if let Some(state) = r.state.filter(|s| *s != PortState::Up) {
            out.push_str(&format!("{} state: {state}\n", r.name));
        }
        let d = drops_text(&r.drops);
        if !d.is_empty() {
            out.push_str(&format!("{} drops: {d}\n", r.name));
        }
        let l = drops_text(&r.learn_refused);
        if !l.is_empty() {
            out.push_str(&format!("{} not learned: {l}\n", r.name));
        }
        let s = drops_text(&r.snooped);
        if !s.is_empty() {
            out.push_str(&format!("{} snooped ARP/ND replies: {s}\n", r.name));
        }
        for w in r.per_worker.iter().flatten() {
            let d = drops_text(&w.drops);
            out.push_str(&format!(
                "{} worker {}: rx {} pkts {} bytes, tx {} pkts {} bytes{}\n",
                r.name,
                w.worker,
                w.rx_packets,
                w.rx_bytes,
                w.tx_packets,
                w.tx_bytes,
                if d.is_empty() {
                    String::new()
                } else {
                    format!(", drops: {d}")
                }
            ));
        }
    }
    out
}

fn vlan_text(v: &VlanMode) -> String {
    match v {
        VlanMode::Access { tag: 0 } => "untagged".into(),
        VlanMode::Access { tag } => format!("tag {tag}"),
        VlanMode::Trunk { trunks, native } => {
            let list = if trunks.is_empty() {
                "all".to_string()
            } else {
                trunks
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            match native {
                Some(n) => format!("trunks {list} native {n}"),
                None => format!("trunks {list}"),
            }
        }
    }
}

/// `show`: the config as a tree, bridges with their ports, tunnels, flows
/// and MACs; per-port ACLs and policers under the port.
pub fn show_tree(c: &Config) -> String {
    let mut s = String::new();
    let num = |n: Option<u16>| n.map(|n| format!(" #{n}")).unwrap_or_default();
    if let Some(u) = &c.uplink {
        s.push_str(&format!(
            "uplink {}{} mtu {}",
            u.iface,
            num(u.number),
            u.mtu
        ));
        if !u.local_ips.is_empty() {
            let ips: Vec<String> = u.local_ips.iter().map(|i| i.to_string()).collect();
            s.push_str(&format!(" local {}", ips.join(",")));
        }
        if let Some(m) = u.mac {
            s.push_str(&format!(" mac {m}"));
        }
        s.push('\n');
    }
    let policies = |s: &mut String, name: &str| {
        for a in c.acls.iter().filter(|a| a.port == name) {
            for r in &a.rules {
                s.push_str(&format!("        acl {}: {r}\n", a.dir));
            }
        }
        for q in c.qos.iter().filter(|q| q.port == name) {
            s.push_str(&format!(
                "        qos {}: rate {} burst {}{}\n",
                q.dir,
                format_rate(q.rate_bps),
                format_size(q.burst_bytes),
                q.peak_bps
                    .map(|p| format!(" peak {}", format_rate(p)))
                    .unwrap_or_default()
            ));
        }
    };
    for b in &c.bridges {
        s.push_str(&format!(
            "bridge {} (fdb max {}, aging {}s{}{})\n",
            b.name,
            b.fdb_max_entries,
            b.fdb_aging_secs,
            if b.learning { "" } else { ", no learning" },
            if b.arp_suppress { ", arp-suppress" } else { "" },
        ));
        if let Some(l) = &b.lookup {
            let p = match &l.provider {
                LookupProviderConfig::Direct { vtep } => format!("direct {vtep}"),
                LookupProviderConfig::Multicast { group } => format!("multicast {group}"),
                LookupProviderConfig::Static { entries } => {
                    format!("static ({} entries)", entries.len())
                }
                LookupProviderConfig::External => "external".into(),
            };
            s.push_str(&format!("    lookup {p}, miss {}\n", snake(&l.miss)));
        }
        for p in c.ports.iter().filter(|p| p.bridge == b.name) {
            let q = if p.queues == 0 {
                String::new()
            } else {
                format!(" queues {}", p.queues)
            };
            s.push_str(&format!(
                "    port {}{} {} mtu {}{q}\n",
                p.name,
                num(p.number),
                vlan_text(&p.vlan),
                p.mtu
            ));
            policies(&mut s, &p.name);
        }
        for t in c.tunnels.iter().filter(|t| t.bridge == b.name) {
            let remotes: Vec<String> = t.remotes.iter().map(|r| r.to_string()).collect();
            s.push_str(&format!(
                "    tunnel {}{} {} vni {} remote {} dst_port {}",
                t.name,
                num(t.number),
                t.kind,
                t.vni,
                remotes.join(","),
                t.udp_port()
            ));
            if let Some(l) = t.local {
                s.push_str(&format!(" local {l}"));
            }
            s.push_str(&format!(" ttl {}", t.ttl));
            match t.tos {
                TosConfig::Inherit => s.push_str(" tos inherit"),
                TosConfig::Fixed(0) => {}
                TosConfig::Fixed(v) => s.push_str(&format!(" tos {v}")),
            }
            if t.df {
                s.push_str(" df");
            }
            if t.csum {
                s.push_str(" csum");
            }
            for o in &t.geneve_opts {
                let hex: String = o.data.iter().map(|b| format!("{b:02x}")).collect();
                s.push_str(&format!(" opt {:#06x}:{:#04x}:{hex}", o.class, o.typ));
            }
            s.push('\n');
            policies(&mut s, &t.name);
        }
        if let Ok(rows) = crate::view::flow_rows(c, Some(&b.name)) {
            for r in rows {
                let m = if r.matches.is_empty() {
                    String::new()
                } else {
                    format!(",{}", r.matches)
                };
                s.push_str(&format!(
                    "    flow priority={}{m},actions={}\n",
                    r.priority, r.actions
                ));
            }
        }
        for f in c.fdb.iter().filter(|f| f.bridge == b.name) {
            let r = f.remote.map(|r| format!(" via {r}")).unwrap_or_default();
            s.push_str(&format!(
                "    fdb {} vlan {} -> {}{r}\n",
                f.mac, f.vlan, f.port
            ));
        }
    }
    for r in &c.routes {
        let g = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        s.push_str(&format!(
            "route {}{g} dev {} metric {}\n",
            r.prefix, r.dev, r.metric
        ));
    }
    for n in &c.neighbors {
        s.push_str(&format!("neighbor {} lladdr {}\n", n.ip, n.mac));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Verb, String> {
        let mut all = vec!["xvsctl"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)
            .map(|c| c.verb)
            .map_err(|e| e.to_string())
    }

    fn commands(args: &[&str]) -> Vec<Command> {
        parse(args)
            .unwrap()
            .commands(&mut std::io::empty())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn verbs_map_to_commands() {
        let c = commands(&[
            "add-tunnel",
            "br0",
            "gn",
            "--type",
            "geneve",
            "--vni",
            "7",
            "--remote",
            "192.0.2.2",
            "--remote",
            "192.0.2.3,192.0.2.4",
            "--tos",
            "0x10",
            "--dst-port",
            "6082",
            "--geneve-opt",
            "258:1:0a0b0c0d",
        ]);
        let Command::AddTunnel(t) = &c[0] else {
            panic!("{c:?}")
        };
        assert_eq!(t.remotes.len(), 3);
        assert_eq!(
            (t.tos, t.dst_port, t.df),
            (Some(TosConfig::Fixed(16)), Some(6082), None)
        );
        assert_eq!((t.geneve_opts[0].class, t.geneve_opts[0].typ), (258, 1));
        let c = commands(&["add-port", "br0", "vm1", "--trunks", "10,20-22"]);
        let Command::AddPort(p) = &c[0] else { panic!() };
        assert_eq!(p.trunks, Some(vec![10, 20, 21, 22]));
        let c = commands(&["add-port", "br0", "vm1", "--max-macs", "4"]);
        let Command::AddPort(p) = &c[0] else { panic!() };
        assert_eq!(p.max_macs, Some(4));
        let c = commands(&[
            "add-port",
            "br0",
            "vm1",
            "--allowed-macs",
            "02:00:00:00:00:01",
            "--allowed-ips",
            "10.0.0.1,fd00::1",
        ]);
        let Command::AddPort(p) = &c[0] else { panic!() };
        assert_eq!(p.allowed_macs, ["02:00:00:00:00:01".parse().unwrap()]);
        assert_eq!(p.allowed_ips.len(), 2);
        let c = commands(&[
            "set-port",
            "vm1",
            "--max-macs",
            "0",
            "--allowed-macs",
            "none",
            "--allowed-ips",
            "10.0.0.1,10.0.0.2",
        ]);
        let Command::SetPort(p) = &c[0] else { panic!() };
        assert_eq!(
            (
                p.max_macs,
                p.allowed_macs.as_deref(),
                p.allowed_ips.as_ref().map(Vec::len)
            ),
            (Some(0), Some(&[][..]), Some(2))
        );
        let e = parse(&["set-port", "vm1", "--allowed-macs", "02:00:00:00:00:01,x"])
            .unwrap()
            .commands(&mut std::io::empty())
            .unwrap()
            .unwrap_err();
        assert!(e.contains("\"x\" is not an address"), "{e}");
        let c = commands(&[
            "qos-set", "vm1", "--dir", "out", "--rate", "1.5gbit", "--burst", "1mb",
        ]);
        let Command::QosSet(q) = &c[0] else { panic!() };
        assert_eq!(
            (q.rate_bps, q.burst_bytes, q.dir),
            (1_500_000_000, 1 << 20, Direction::Out)
        );
        let c = commands(&[
            "acl-add",
            "vm1",
            "--dir",
            "in",
            "--prio",
            "3",
            "tcp",
            "tp_dst=22",
            "--action",
            "allow",
        ]);
        let Command::AclAdd(a) = &c[0] else { panic!() };
        assert_eq!(a.matches, "tcp,tp_dst=22");
        assert!(parse(&["show"])
            .unwrap()
            .commands(&mut std::io::empty())
            .is_none());
        assert_eq!(parse(&["add-br", "x"]).unwrap().name(), "add-br");
        assert_eq!(parse(&["worker-stats"]).unwrap().name(), "worker-stats");
    }

    #[test]
    fn set_tunnel_takes_only_what_is_given() {
        let c = commands(&[
            "set-tunnel",
            "vx1",
            "--remote",
            "192.0.2.3,192.0.2.4",
            "--ttl",
            "5",
            "--learn-remotes",
            "true",
        ]);
        let Command::SetTunnel(t) = &c[0] else {
            panic!("{c:?}")
        };
        assert_eq!(t.remotes.as_ref().map(Vec::len), Some(2));
        assert_eq!(
            (t.ttl, t.learn_remotes, t.vni, t.df),
            (Some(5), Some(true), None, None)
        );
        let c = commands(&["set-tunnel", "vx1", "--df", "false"]);
        let Command::SetTunnel(t) = &c[0] else {
            panic!("{c:?}")
        };
        assert_eq!((t.remotes.clone(), t.df), (None, Some(false)));
    }

    #[test]
    fn bridge_options_on_add_br_and_set_br() {
        let c = commands(&["add-br", "br0", "--no-learning", "--arp-suppress"]);
        let Command::AddBr(b) = &c[0] else { panic!() };
        assert_eq!((b.learning, b.arp_suppress), (Some(false), Some(true)));
        let c = commands(&["add-br", "br0"]);
        let Command::AddBr(b) = &c[0] else { panic!() };
        assert_eq!((b.learning, b.arp_suppress), (None, None));
        let c = commands(&["set-br", "br0", "learning=false", "arp_suppress=on"]);
        let Command::SetBr(b) = &c[0] else { panic!() };
        assert_eq!((b.learning, b.arp_suppress), (Some(false), Some(true)));
        let bad = |args: &[&str]| {
            parse(args)
                .unwrap()
                .commands(&mut std::io::empty())
                .unwrap()
                .unwrap_err()
        };
        assert!(bad(&["set-br", "br0", "learning"]).contains("KEY=VALUE"));
        assert!(bad(&["set-br", "br0", "learning=maybe"]).contains("true or false"));
        assert!(bad(&["set-br", "br0", "colour=red"]).contains("unknown option"));
        let c = commands(&[
            "set-br",
            "br0",
            "lookup=direct:192.0.2.2",
            "lookup-miss=drop",
        ]);
        let Command::SetBr(b) = &c[0] else { panic!() };
        assert_eq!(
            (&b.lookup, b.lookup_miss, b.no_lookup),
            (
                &Some(LookupProviderConfig::Direct {
                    vtep: "192.0.2.2".parse().unwrap()
                }),
                Some(MissAction::Drop),
                false
            )
        );
        let c = commands(&["set-br", "br0", "lookup=none"]);
        let Command::SetBr(b) = &c[0] else { panic!() };
        assert!(b.no_lookup && b.lookup.is_none());
        let c = commands(&["set-br", "br0", "lookup=external"]);
        let Command::SetBr(b) = &c[0] else { panic!() };
        assert_eq!(b.lookup, Some(LookupProviderConfig::External));
        assert!(bad(&["set-br", "br0", "lookup=direct:nowhere"]).contains("IP address"));
        assert!(bad(&["set-br", "br0", "lookup=magic"]).contains("one of"));
        assert!(bad(&["set-br", "br0", "lookup-miss=wait"]).contains("flood, drop or hold"));
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        let e = parse(&[
            "add-tunnel",
            "b",
            "t",
            "--type",
            "gre",
            "--vni",
            "1",
            "--remote",
            "192.0.2.1",
        ])
        .unwrap_err();
        assert!(e.contains("gre") && e.contains("vxlan"), "{e}");
        let e = parse(&["add-port", "b", "p", "--trunks", "10-5"]).unwrap_err();
        assert!(e.contains("10-5"), "{e}");
        let e = parse(&[
            "add-tunnel",
            "b",
            "t",
            "--type",
            "geneve",
            "--vni",
            "1",
            "--remote",
            "192.0.2.1",
            "--geneve-opt",
            "1:2",
        ])
        .unwrap_err();
        assert!(e.contains("CLASS:TYPE:HEX"), "{e}");
        let e = parse(&[
            "add-tunnel",
            "b",
            "t",
            "--type",
            "geneve",
            "--vni",
            "1",
            "--remote",
            "192.0.2.1",
            "--tos",
            "300",
        ])
        .unwrap_err();
        assert!(e.contains("inherit"), "{e}");
        let e = parse(&["--timeout", "0", "show"]).unwrap_err();
        assert!(e.contains("above 0"), "{e}");
    }

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words(r#"acl-add vm1 --prio 3 'udp,tp_dst=53' "a b\"c" x\ y # comment"#).unwrap(),
            vec![
                "acl-add",
                "vm1",
                "--prio",
                "3",
                "udp,tp_dst=53",
                "a b\"c",
                "x y"
            ]
        );
        assert_eq!(
            split_words("  # only a comment").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(split_words("''").unwrap(), vec![""]);
        assert!(split_words("'open").is_err());
        assert!(split_words("\"open").is_err());
    }

    #[test]
    fn big_transactions_are_split_under_the_limit() {
        let cmds: Vec<Command> = (0..30_000u64)
            .map(|i| {
                Command::FdbAdd(cmd::FdbAdd {
                    bridge: "br0".into(),
                    mac: MacAddr::from_u64(0x0200_0000_0000 | i),
                    port: "vm1".into(),
                    vlan: 0,
                    remote: None,
                })
            })
            .collect();
        assert!(request_size(&cmds) > MAX_REQUEST_BYTES);
        let parts = chunks(cmds.clone());
        assert!(parts.len() >= 2);
        assert!(parts.iter().all(|p| request_size(p) <= MAX_REQUEST_BYTES));
        assert_eq!(parts.concat(), cmds, "nothing lost or reordered");
    }

    #[test]
    fn ovs_vsctl_style_flags_before_the_verb() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            ovs_style_flags(&os(&["--socket", "/x", "--may-exist", "add-br", "br0"])),
            os(&["--socket", "/x", "add-br", "br0", "--may-exist"])
        );
        assert_eq!(
            ovs_style_flags(&os(&["--if-exists", "del-port", "vm1"])),
            os(&["del-port", "vm1", "--if-exists"])
        );
        let same = os(&["add-flow", "br0", "--may-exist"]);
        assert_eq!(ovs_style_flags(&same), same);
    }

    #[test]
    fn tables_align() {
        let t = table(&["A", "BB"], vec![vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }
}
