//! xvs-pktgen's command line: the clap structs of `tx`, `rx` and `probe`,
//! the value types they parse (MAC addresses, seconds), and the checks clap
//! cannot express ([`TxArgs::check`]).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use xvs_bpf::AttachFlags;

use super::frames::{GENEVE_PORT, VXLAN_PORT};
use super::MAX_FLOWS;

/// An AF_XDP packet generator and receiver (see the crate docs for the
/// JSON fields).
#[derive(Debug, Parser)]
#[command(name = "xvs-pktgen", version)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Send prebuilt frames as fast as allowed.
    Tx(TxArgs),
    /// Count (and optionally check) the frames arriving on an interface.
    Rx(RxArgs),
    /// Ask the kernel whether it runs the xdp engine (BPF_PROG_RUN with
    /// live frames) for frames of --frame-len bytes: exit 0 if it does, 1
    /// with what it refused and why if not (one line either way).
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Length of the frames to send, Ethernet header to payload (for tx:
    /// --size, plus 50 with --encap).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(14..))]
    pub frame_len: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Encap {
    Vxlan,
    Geneve,
}

impl Encap {
    pub(crate) fn port(self) -> u16 {
        match self {
            Encap::Vxlan => VXLAN_PORT,
            Encap::Geneve => GENEVE_PORT,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Encap::Vxlan => "vxlan",
            Encap::Geneve => "geneve",
        }
    }
}

/// How `tx` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// An AF_XDP socket (copy mode on veth): paced or not.
    Afxdp,
    /// BPF_PROG_RUN in live-frames mode: the kernel sends from an XDP
    /// program, several times faster, at full speed only; the peer of a
    /// veth needs NAPI (an XDP program, or GRO on).
    Xdp,
}

impl Engine {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Engine::Afxdp => "afxdp",
            Engine::Xdp => "xdp",
        }
    }
}

/// What differs between flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Vary {
    /// The UDP source port: `--src-port + flow`.
    Port,
    /// The source IP: `--src-ip + flow`.
    Ip,
    /// Both.
    Both,
    /// The destination MAC: `--dst-mac + flow` (its low 32 bits), so the
    /// flows spread over that many FDB entries (and, behind them, tunnel
    /// remotes): what the scaling benchmark needs.
    DstMac,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum XdpMode {
    /// Native (driver) mode, generic if the driver refuses.
    Auto,
    Native,
    Generic,
}

impl XdpMode {
    pub(crate) fn flags(self) -> AttachFlags {
        match self {
            XdpMode::Auto => AttachFlags::Auto,
            XdpMode::Native => AttachFlags::NativeOnly,
            XdpMode::Generic => AttachFlags::GenericOnly,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Poll {
    /// Spin without pause.
    Busy,
    /// Nap 500 µs after a round that found less than an eighth of a
    /// ring, sleep in poll(2) when there is nothing: leaves the core to
    /// a generator sharing it (the rings hold several milliseconds).
    Adaptive,
}

/// A MAC address, `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)");
        let mut out = [0u8; 6];
        let mut parts = s.trim().split(':');
        for b in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.is_empty() || p.len() > 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Seconds, fractions allowed, above 0 and at most a day.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v > 0.0 && v <= 86_400.0) {
        return Err(format!("{s}: between 0 (excluded) and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

#[derive(Debug, Args)]
pub struct TxArgs {
    /// Interface to send on.
    #[arg(long)]
    pub iface: String,
    /// Send engine: an AF_XDP socket, or an XDP program run by the kernel
    /// (BPF_PROG_RUN live frames; --rate 0 and --queue 0 only, no
    /// --xdp-mode: nothing is attached).
    #[arg(long, value_enum, default_value_t = Engine::Afxdp)]
    pub engine: Engine,
    /// Queue to bind (one is enough to send).
    #[arg(long, default_value_t = 0)]
    pub queue: u32,
    /// Frame length in bytes, Ethernet header to payload, without FCS;
    /// with --encap, of the inner frame (the frame sent is 50 bytes
    /// longer). At most one 4096-byte UMEM chunk and the MTU.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(60..=9000))]
    pub size: u16,
    /// Distinct flows, one prebuilt frame each, sent round robin.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_FLOWS as i64))]
    pub flows: u32,
    /// What differs between flows.
    #[arg(long, value_enum, default_value_t = Vary::Port)]
    pub vary: Vary,
    /// Send every frame inside a tunnel packet.
    #[arg(long, value_enum, requires_all = ["vni", "outer_src", "outer_dst", "outer_dst_mac"])]
    pub encap: Option<Encap>,
    /// Tunnel VNI (24 bits).
    #[arg(long, requires = "encap", value_parser = clap::value_parser!(u32).range(0..=0xff_ffff))]
    pub vni: Option<u32>,
    /// Outer source IPv4 address (the sending VTEP).
    #[arg(long, requires = "encap")]
    pub outer_src: Option<Ipv4Addr>,
    /// Outer destination IPv4 address (the receiving VTEP).
    #[arg(long, requires = "encap")]
    pub outer_dst: Option<Ipv4Addr>,
    /// Outer destination MAC (the receiving VTEP's next hop).
    #[arg(long, requires = "encap")]
    pub outer_dst_mac: Option<Mac>,
    /// Outer source MAC [default: the interface's].
    #[arg(long, requires = "encap")]
    pub outer_src_mac: Option<Mac>,
    /// Compute the outer UDP checksum (by default it is zero, as RFC 7348
    /// and RFC 8926 allow over IPv4).
    #[arg(long, requires = "encap")]
    pub outer_udp_csum: bool,
    /// Source MAC of the (inner) frame [default: the interface's].
    #[arg(long)]
    pub src_mac: Option<Mac>,
    /// Destination MAC of the (inner) frame.
    #[arg(long)]
    pub dst_mac: Mac,
    /// Source IPv4 address of the (inner) frame.
    #[arg(long, default_value = "10.0.0.1")]
    pub src_ip: Ipv4Addr,
    /// Destination IPv4 address of the (inner) frame.
    #[arg(long, default_value = "10.0.0.2")]
    pub dst_ip: Ipv4Addr,
    /// UDP source port of flow 0.
    #[arg(long, default_value_t = 1024)]
    pub src_port: u16,
    /// UDP destination port.
    #[arg(long, default_value_t = 5001)]
    pub dst_port: u16,
    /// Packets per second; 0: as fast as the kernel takes them.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seconds to send [default: 10 unless --count is given].
    #[arg(long, value_parser = parse_secs)]
    pub duration: Option<Duration>,
    /// Frames to send (stops at whichever of --count and --duration comes
    /// first).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Print one JSON object on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    pub xdp_mode: XdpMode,
}

#[derive(Debug, Args)]
pub struct RxArgs {
    /// Interface to receive on (every rx queue is bound).
    #[arg(long)]
    pub iface: String,
    /// Seconds to listen.
    #[arg(long, value_parser = parse_secs, default_value = "10")]
    pub duration: Duration,
    /// Count a frame as valid only if it is VXLAN (UDP 4789) or Geneve
    /// (UDP 6081) over IPv4 or IPv6 with this VNI.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=0xff_ffff))]
    pub expect_vni: Option<u32>,
    /// Count a frame as valid only if it is UDP to this port (over IPv4
    /// or IPv6).
    #[arg(long, conflicts_with = "expect_vni")]
    pub expect_udp_dport: Option<u16>,
    /// How to wait for frames.
    #[arg(long, value_enum, default_value_t = Poll::Adaptive)]
    pub poll: Poll,
    /// Print one JSON object on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    pub xdp_mode: XdpMode,
}

impl TxArgs {
    /// What clap cannot say: options the xdp engine has no use for.
    pub fn check(&self) -> Result<(), String> {
        if self.engine != Engine::Xdp {
            return Ok(());
        }
        if self.rate != 0 {
            return Err(format!(
                "--rate {}: the xdp engine sends at full speed only (--rate 0); pace with \
                 --engine afxdp",
                self.rate
            ));
        }
        if self.queue != 0 {
            return Err(format!(
                "--queue {}: the xdp engine sends as rx queue 0",
                self.queue
            ));
        }
        if !matches!(self.xdp_mode, XdpMode::Auto) {
            return Err("--xdp-mode: the xdp engine attaches no program".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parsing_is_strict() {
        assert_eq!(
            "02:00:00:0a:0B:ff".parse::<Mac>(),
            Ok(Mac([2, 0, 0, 0x0a, 0x0b, 0xff]))
        );
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "02:00:00:00:00:zz",
            "2:::::",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
        assert_eq!(
            Mac([2, 0, 0, 0x0a, 0x0b, 0xff]).to_string(),
            "02:00:00:0a:0b:ff"
        );
    }

    #[test]
    fn bad_command_lines_are_clap_errors() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let parse = |args: &[&str]| Cli::try_parse_from(["xvs-pktgen"].iter().chain(args));
        let base = ["tx", "--iface", "x", "--dst-mac", "02:00:00:00:00:01"];
        assert!(parse(&base).is_ok());
        for (extra, why) in [
            (&["--size", "59"][..], "size too small"),
            (&["--size", "9001"], "size too large"),
            (&["--flows", "0"], "no flow"),
            (&["--duration", "-1"], "negative duration"),
            (&["--duration", "nan"], "nan"),
            (&["--count", "0"], "count 0"),
            (&["--encap", "vxlan"], "encap without its addresses"),
            (&["--vni", "5"], "vni without encap"),
            (&["--src-mac", "zz"], "bad MAC"),
        ] {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            assert!(parse(&args).is_err(), "{why}");
        }
        assert!(parse(&["rx", "--iface", "x", "--expect-vni", "16777216"]).is_err());
        assert!(parse(&["probe"]).is_ok());
        assert!(
            parse(&["probe", "--frame-len", "13"]).is_err(),
            "no Ethernet header"
        );
        assert!(parse(&["probe", "--frame-len", "65536"]).is_err());
        // What the xdp engine cannot do is refused after parsing.
        let tx = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            match parse(&args).expect("parses").cmd {
                Cmd::Tx(t) => t.check(),
                Cmd::Rx(_) | Cmd::Probe(_) => unreachable!(),
            }
        };
        assert!(tx(&["--engine", "xdp"]).is_ok());
        assert!(tx(&["--engine", "xdp", "--rate", "0"]).is_ok());
        assert!(tx(&["--rate", "1000"]).is_ok(), "afxdp paces");
        let e = tx(&["--engine", "xdp", "--rate", "1000"]).unwrap_err();
        assert!(e.contains("--rate 1000") && e.contains("full speed"), "{e}");
        assert!(tx(&["--engine", "xdp", "--queue", "1"]).is_err());
        assert!(tx(&["--engine", "xdp", "--xdp-mode", "native"]).is_err());
        assert!(parse(&[
            "rx",
            "--iface",
            "x",
            "--expect-vni",
            "1",
            "--expect-udp-dport",
            "2"
        ])
        .is_err());
    }
}
