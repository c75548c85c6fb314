//! xvsctl's grammar: the clap structs ([`Cli`], [`Chained`], [`Verb`]) and
//! the parsers of their values (timeouts, VLAN lists, ToS, Geneve options,
//! rates and sizes). `--help`, the completions and the man page are all
//! generated from here.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand, ValueEnum};
use xvs_config::{Direction, GeneveOptConfig, MirrorDir, TosConfig, TunnelKind};
use xvs_types::MacAddr;
use xvs_types::Prefix;

use crate::command as cmd;
use xvs_types::acl::AclAction;

use crate::protocol::DEFAULT_SOCKET;
use crate::units::{parse_rate, parse_size};

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

fn mirror_dir_parser() -> impl clap::builder::TypedValueParser<Value = MirrorDir> {
    PossibleValuesParser::new(["in", "out", "both"]).map(|s| match s.as_str() {
        "in" => MirrorDir::In,
        "out" => MirrorDir::Out,
        _ => MirrorDir::Both,
    })
}

fn verdict_parser() -> impl clap::builder::TypedValueParser<Value = AclAction> {
    PossibleValuesParser::new(["allow", "drop"]).map(|s| {
        if s == "allow" {
            AclAction::Allow
        } else {
            AclAction::Drop
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
    let data = xvs_config::parse_hex(d).map_err(|e| format!("{s:?}: {e}"))?;
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
        /// Queues to bind (default: all the device has); with --type
        /// vhost-user, the queue pairs offered to the guest (default 1,
        /// at most 8).
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
        /// What the port is: an interface of that name, by AF_XDP
        /// (afxdp, the default), a tap of that name xvsd creates for a
        /// QEMU guest's `-netdev tap,ifname=NAME` (tap; deleted with the
        /// port), or a virtual machine's vhost-user socket (vhost-user,
        /// with --socket).
        #[arg(long = "type", value_name = "TYPE", default_value = "afxdp",
              value_parser = ["afxdp", "tap", "vhost-user"])]
        port_type: String,
        /// With --type vhost-user: the socket's path (absolute).
        #[arg(long, value_name = "PATH", required_if_eq("port_type", "vhost-user"))]
        socket: Option<std::path::PathBuf>,
        /// With --type vhost-user: connect to QEMU's socket (its
        /// server=on mode) instead of listening, reconnecting after it restarts.
        #[arg(long, requires = "socket")]
        client: bool,
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
        action: AclAction,
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
    /// What the switch would do with a frame arriving on PORT, without
    /// sending it: SPEC is the frame in hex, or a flow match it is built
    /// from (`udp,dl_src=..,dl_dst=..,nw_src=..,nw_dst=..,tp_dst=53`); a
    /// tunnel's frames are traced on the uplink, whole.
    Trace { port: String, spec: String },
    /// Capture what enters and leaves PORT (a local port or the uplink;
    /// a tunnel's packets are the uplink's) as pcapng, into FILE or to
    /// stdout (`| tshark -r -`), until COUNT frames, SECS seconds, Ctrl-C
    /// or a closed pipe; then says on stderr how many were lost.
    Capture {
        port: String,
        #[arg(long, default_value = "both", value_parser = ["in", "out", "both"])]
        direction: String,
        /// Stop after this many frames.
        #[arg(long, short = 'c', value_name = "COUNT")]
        count: Option<u64>,
        /// Where the pcapng goes (`-`: stdout).
        #[arg(short = 'w', value_name = "FILE", default_value = "-")]
        write: std::path::PathBuf,
        /// Bytes kept of each frame (14-65535).
        #[arg(long, short = 's', default_value_t = 65535)]
        snaplen: u32,
        /// Stop after this many seconds.
        #[arg(long, value_name = "SECS")]
        duration: Option<f64>,
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
    /// Mirror ports: copies of what the sources receive (in), send (out)
    /// or both, out of a local port (SPAN) or a tunnel port (encapsulated
    /// to its remote VTEPs). The output then carries nothing else.
    MirrorAdd {
        name: String,
        /// Source ports and tunnels, comma-separated.
        #[arg(long, value_name = "PORT", value_delimiter = ',', required = true)]
        src: Vec<String>,
        #[arg(long, default_value = "both", value_parser = mirror_dir_parser())]
        dir: MirrorDir,
        /// The port or tunnel the copies leave by.
        #[arg(long, value_name = "PORT|TUNNEL")]
        to: String,
        #[arg(long)]
        may_exist: bool,
    },
    /// Remove a mirror.
    MirrorDel {
        name: String,
        #[arg(long)]
        if_exists: bool,
    },
    /// Show the mirrors and what each copied.
    MirrorList,
    /// Restart xvsd without dropping a frame: it starts its binary again
    /// (an upgraded one, after a package upgrade), which takes over its
    /// AF_XDP sockets and traffic; waits until the new one answers.
    Restart {
        /// Seconds to wait for the new daemon.
        #[arg(long, default_value_t = 60)]
        wait: u64,
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
}

#[cfg(test)]
mod tests {
    use super::super::testutil::parse;
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
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
}
