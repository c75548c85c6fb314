//! `xvs-pktgen`: an AF_XDP packet generator (`tx`) and receiver (`rx`),
//! to measure what xvsd forwards (`bench/encap_decap.sh` drives it).
//!
//! `tx` builds one frame per flow (Ethernet/IPv4/UDP with valid IPv4 and
//! UDP checksums; with `--encap` a whole VXLAN (RFC 7348, UDP 4789) or
//! Geneve (RFC 8926, UDP 6081, protocol 0x6558, no options) packet
//! around such a frame), writes every frame into UMEM chunks once, and
//! then only moves descriptors: 32 per kick (the copy-mode batch on
//! veth), completed chunks going straight back into the send queue. A
//! token bucket (`--rate`) releases whole batches. `rx` binds every rx
//! queue of the interface, counts frames and bytes, optionally checks
//! each one (`--expect-vni`, `--expect-udp-dport`), and gives the chunks
//! back to the fill ring.
//!
//! Both attach xvs's `xvs_port` XDP program (every frame on the
//! interface goes to our socket: the kernel behind it sees nothing while
//! we run) and detach it on exit, sockets first. Every loop ends at
//! `--duration`/`--count`, on SIGINT or SIGTERM, or (tx) when the kernel
//! stops completing frames for 2 s.
//!
//! `tx --engine xdp` sends without a socket: xvs-bpf's `pktgen` program,
//! run by BPF_PROG_RUN in live-frames mode (kernel 5.18+), writes each
//! flow's varying words into flow 0's frame and the kernel transmits it
//! (the same frames, checksums included, as the AF_XDP engine's), at full
//! speed only; several times the AF_XDP engine's rate on veth. Nothing is
//! attached to the sending interface (the program sits on `lo`, passing
//! everything, only to keep it in the kernel's XDP dispatcher). A veth
//! transmits these frames only when its peer has NAPI: an XDP program
//! there, or GRO on (`ethtool -K PEER gro on`); the engine fails with that
//! advice when the interface sent nothing. Frames are counted by the
//! interface (`tx_packets`), the kernel does not report them. Frames
//! longer than about 3 KB are refused (a page holds them with headroom).
//! Before it sends, the engine asks the kernel once with a throwaway run
//! (xvs-bpf's `probe_live_frames`); if the kernel refuses live frames, it
//! exits 1 with one line: what the kernel refused, why (the check in
//! Linux) and to use `--engine afxdp` instead. `probe` asks the same
//! question alone (exit 0 and one line on stdout if the kernel takes a
//! frame of `--frame-len` bytes, 1 and the refusal on stderr if not), for
//! scripts that pick an engine (`bench/compare.sh`).
//!
//! Sizes: `--size` is the Ethernet frame without FCS; with `--encap` it is
//! the inner frame's and the frame sent is 50 bytes longer. A frame must
//! fit one 4096-byte UMEM chunk (xvs-bpf's `XskSet` has no multi-buffer
//! support) and the interface MTU. "Gbps" counts bytes on the wire: the
//! frame plus 24 bytes per packet (FCS, preamble, inter-frame gap).
//!
//! `--json` prints one JSON object on stdout and nothing else there (a
//! progress bar goes to stderr only when it is a terminal). Fields:
//!
//! tx: `mode` ("tx"), `engine` ("afxdp"|"xdp"), `iface`, `queue`,
//! `xdp_mode` ("native"|"generic"; "live-frames" for the xdp engine),
//! `zero_copy` (bool), `encap` ("none"|"vxlan"|"geneve"), `vni` (number
//! or null), `size` (inner frame bytes), `frame_len` (bytes sent per
//! frame), `flows`, `rate_pps` (0: unlimited), `packets` (frames the
//! kernel completed), `queued` (frames put on the TX ring), `bytes`
//! (`packets * frame_len`), `wire_bytes` (`bytes + 24 * packets`),
//! `duration_secs` (first send to last completion), `mpps`, `gbps` (from
//! `wire_bytes`), `xsk_tx_invalid_descs`, `dropped`, `stalled` (bool).
//! With the xdp engine `packets` is the interface's `tx_packets` over the
//! run (for a veth: what its peer took in), `queued` the program runs,
//! `dropped` the interface's `tx_dropped` (frames its peer had no room
//! for), `zero_copy` false.
//!
//! rx: `mode` ("rx"), `iface`, `queues`, `xdp_mode`, `zero_copy`,
//! `expect` ("any", "vni N" or "udp-dport N"), `packets`, `bytes`,
//! `wire_bytes`, `invalid` (frames that failed the check), `duration_secs`
//! (wall time listening), `active_secs` (first to last valid frame),
//! `mpps` and `gbps` (all frames, over `active_secs`), and the sockets'
//! kernel counters summed:
//! `xsk_rx_dropped`, `xsk_rx_ring_full`, `xsk_rx_fill_ring_empty`,
//! `xsk_rx_invalid_descs`.
//!
//! Exit codes: 0 done, 1 an error (or a stalled tx, after its report),
//! 2 bad command line.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IsTerminal};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use xvs_bench::pktgen_xdp::{
    probe_live_frames, FlowPatch, LiveFramesRefused, PktgenError as XdpSendError, ProbeError,
    XdpSender,
};
use xvs_bpf::xsk::{XskConfig, XskError, XskSet, CHUNK};
use xvs_bpf::{AttachFlags, Mode, XdpProgram, MAX_QUEUES};

/// Descriptors per TX kick: what one wakeup sends in copy mode.
const TX_KICK: usize = 32;
/// Size of the rings of a tx socket.
const RING: u32 = 2048;
/// Size of the rings of an rx socket: 5-6 ms of frames at 1.5 Mpps, so
/// that a receiver descheduled for a moment (it shares a core with the
/// generator) does not let the fill ring run dry.
const RX_RING: u32 = 8192;
/// Chunks lent to the fill ring of a tx socket: frames arriving on a
/// sending interface are drained and ignored, they need little room.
const TX_RX_FRAMES: u32 = 64;
/// FCS, preamble and inter-frame gap: what a frame costs on a wire beyond
/// its bytes.
const WIRE_OVERHEAD: u64 = 24;
/// Flows are one prebuilt frame each (at least one chunk each).
const MAX_FLOWS: u32 = 16384;
const ETH: usize = 14;
const IPV4: usize = 20;
const UDP: usize = 8;
/// VXLAN header, and a Geneve header without options: both 8 bytes.
const TUNNEL_HDR: usize = 8;
/// Outer Ethernet, IPv4, UDP and tunnel header.
const ENCAP_OVERHEAD: usize = ETH + IPV4 + UDP + TUNNEL_HDR;
const VXLAN_PORT: u16 = 4789;
const GENEVE_PORT: u16 = 6081;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_TEB: u16 = 0x6558;
/// A tx that got no completion for this long while frames were queued
/// gives up: the interface is down or the kernel stopped sending.
const STALL: Duration = Duration::from_secs(2);
/// How long an adaptive receiver naps after a small batch.
const RX_NAP: Duration = Duration::from_micros(500);
/// How often the progress bar is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// An AF_XDP packet generator and receiver (see the crate docs for the
/// JSON fields).
#[derive(Debug, Parser)]
#[command(name = "xvs-pktgen", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
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
struct ProbeArgs {
    /// Length of the frames to send, Ethernet header to payload (for tx:
    /// --size, plus 50 with --encap).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(14..))]
    frame_len: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Encap {
    Vxlan,
    Geneve,
}

impl Encap {
    fn port(self) -> u16 {
        match self {
            Encap::Vxlan => VXLAN_PORT,
            Encap::Geneve => GENEVE_PORT,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Encap::Vxlan => "vxlan",
            Encap::Geneve => "geneve",
        }
    }
}

/// How `tx` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Engine {
    /// An AF_XDP socket (copy mode on veth): paced or not.
    Afxdp,
    /// BPF_PROG_RUN in live-frames mode: the kernel sends from an XDP
    /// program, several times faster, at full speed only; the peer of a
    /// veth needs NAPI (an XDP program, or GRO on).
    Xdp,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Afxdp => "afxdp",
            Engine::Xdp => "xdp",
        }
    }
}

/// What differs between flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Vary {
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
enum XdpMode {
    /// Native (driver) mode, generic if the driver refuses.
    Auto,
    Native,
    Generic,
}

impl XdpMode {
    fn flags(self) -> AttachFlags {
        match self {
            XdpMode::Auto => AttachFlags::Auto,
            XdpMode::Native => AttachFlags::NativeOnly,
            XdpMode::Generic => AttachFlags::GenericOnly,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Poll {
    /// Spin without pause.
    Busy,
    /// Nap 500 µs after a round that found less than an eighth of a
    /// ring, sleep in poll(2) when there is nothing: leaves the core to
    /// a generator sharing it (the rings hold several milliseconds).
    Adaptive,
}

/// A MAC address, `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mac([u8; 6]);

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
fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v > 0.0 && v <= 86_400.0) {
        return Err(format!("{s}: between 0 (excluded) and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

#[derive(Debug, Args)]
struct TxArgs {
    /// Interface to send on.
    #[arg(long)]
    iface: String,
    /// Send engine: an AF_XDP socket, or an XDP program run by the kernel
    /// (BPF_PROG_RUN live frames; --rate 0 and --queue 0 only, no
    /// --xdp-mode: nothing is attached).
    #[arg(long, value_enum, default_value_t = Engine::Afxdp)]
    engine: Engine,
    /// Queue to bind (one is enough to send).
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// Frame length in bytes, Ethernet header to payload, without FCS;
    /// with --encap, of the inner frame (the frame sent is 50 bytes
    /// longer). At most one 4096-byte UMEM chunk and the MTU.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(60..=9000))]
    size: u16,
    /// Distinct flows, one prebuilt frame each, sent round robin.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_FLOWS as i64))]
    flows: u32,
    /// What differs between flows.
    #[arg(long, value_enum, default_value_t = Vary::Port)]
    vary: Vary,
    /// Send every frame inside a tunnel packet.
    #[arg(long, value_enum, requires_all = ["vni", "outer_src", "outer_dst", "outer_dst_mac"])]
    encap: Option<Encap>,
    /// Tunnel VNI (24 bits).
    #[arg(long, requires = "encap", value_parser = clap::value_parser!(u32).range(0..=0xff_ffff))]
    vni: Option<u32>,
    /// Outer source IPv4 address (the sending VTEP).
    #[arg(long, requires = "encap")]
    outer_src: Option<Ipv4Addr>,
    /// Outer destination IPv4 address (the receiving VTEP).
    #[arg(long, requires = "encap")]
    outer_dst: Option<Ipv4Addr>,
    /// Outer destination MAC (the receiving VTEP's next hop).
    #[arg(long, requires = "encap")]
    outer_dst_mac: Option<Mac>,
    /// Outer source MAC [default: the interface's].
    #[arg(long, requires = "encap")]
    outer_src_mac: Option<Mac>,
    /// Compute the outer UDP checksum (by default it is zero, as RFC 7348
    /// and RFC 8926 allow over IPv4).
    #[arg(long, requires = "encap")]
    outer_udp_csum: bool,
    /// Source MAC of the (inner) frame [default: the interface's].
    #[arg(long)]
    src_mac: Option<Mac>,
    /// Destination MAC of the (inner) frame.
    #[arg(long)]
    dst_mac: Mac,
    /// Source IPv4 address of the (inner) frame.
    #[arg(long, default_value = "10.0.0.1")]
    src_ip: Ipv4Addr,
    /// Destination IPv4 address of the (inner) frame.
    #[arg(long, default_value = "10.0.0.2")]
    dst_ip: Ipv4Addr,
    /// UDP source port of flow 0.
    #[arg(long, default_value_t = 1024)]
    src_port: u16,
    /// UDP destination port.
    #[arg(long, default_value_t = 5001)]
    dst_port: u16,
    /// Packets per second; 0: as fast as the kernel takes them.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds to send [default: 10 unless --count is given].
    #[arg(long, value_parser = parse_secs)]
    duration: Option<Duration>,
    /// Frames to send (stops at whichever of --count and --duration comes
    /// first).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Print one JSON object on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    xdp_mode: XdpMode,
}

#[derive(Debug, Args)]
struct RxArgs {
    /// Interface to receive on (every rx queue is bound).
    #[arg(long)]
    iface: String,
    /// Seconds to listen.
    #[arg(long, value_parser = parse_secs, default_value = "10")]
    duration: Duration,
    /// Count a frame as valid only if it is VXLAN (UDP 4789) or Geneve
    /// (UDP 6081) over IPv4 or IPv6 with this VNI.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=0xff_ffff))]
    expect_vni: Option<u32>,
    /// Count a frame as valid only if it is UDP to this port (over IPv4
    /// or IPv6).
    #[arg(long, conflicts_with = "expect_vni")]
    expect_udp_dport: Option<u16>,
    /// How to wait for frames.
    #[arg(long, value_enum, default_value_t = Poll::Adaptive)]
    poll: Poll,
    /// Print one JSON object on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    xdp_mode: XdpMode,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
enum PktgenError {
    #[error(transparent)]
    Bpf(#[from] xvs_bpf::Error),
    #[error(transparent)]
    Xsk(#[from] XskError),
    #[error(transparent)]
    XdpSend(#[from] XdpSendError),
    #[error("{0}; send with --engine afxdp instead")]
    LiveFrames(LiveFramesRefused),
    #[error(transparent)]
    Probe(ProbeError),
    #[error("interface {iface}: {reason}")]
    Iface { iface: String, reason: String },
    #[error("{0}")]
    Frame(String),
    #[error("installing the signal handlers: {0}")]
    Signal(io::Error),
    #[error("writing the report: {0}")]
    Report(String),
}

impl From<ProbeError> for PktgenError {
    fn from(e: ProbeError) -> Self {
        match e {
            ProbeError::Refused(r) => PktgenError::LiveFrames(r),
            e => PktgenError::Probe(e),
        }
    }
}

impl TxArgs {
    /// What clap cannot say: options the xdp engine has no use for.
    fn check(&self) -> Result<(), String> {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::Tx(a) = &cli.cmd {
        if let Err(msg) = a.check() {
            use clap::CommandFactory;
            Cli::command()
                .error(clap::error::ErrorKind::ArgumentConflict, msg)
                .exit();
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("xvs-pktgen: {}", PktgenError::Signal(e));
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.cmd {
        Cmd::Tx(a) => tx(&a, &stop),
        Cmd::Rx(a) => rx(&a, &stop),
        Cmd::Probe(a) => probe(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xvs-pktgen: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------
// Frames

/// One's-complement sum of `data` as 16-bit big-endian words, added to
/// `acc` (RFC 1071); an odd last byte is padded with zero.
fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = words.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

/// Folds a sum into its 16-bit one's complement: the checksum field.
fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The addresses of one Ethernet/IPv4/UDP frame.
#[derive(Debug, Clone, Copy)]
struct Udp4 {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    ip_id: u16,
    /// Don't fragment: set on tunnel packets, as tunnel endpoints do.
    df: bool,
    /// Compute the UDP checksum (zero otherwise).
    udp_csum: bool,
}

impl Udp4 {
    /// The frame carrying `payload`.
    fn frame(&self, payload: &[u8]) -> Vec<u8> {
        let udp_len = UDP + payload.len();
        let ip_len = IPV4 + udp_len;
        let mut f = Vec::with_capacity(ETH + ip_len);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = ETH;
        f.extend_from_slice(&[0x45, 0]);
        // Bounded by the callers: frames fit a 4096-byte chunk.
        f.extend_from_slice(&(ip_len as u16).to_be_bytes());
        f.extend_from_slice(&self.ip_id.to_be_bytes());
        f.extend_from_slice(&(if self.df { 0x4000u16 } else { 0 }).to_be_bytes());
        f.extend_from_slice(&[64, 17, 0, 0]);
        f.extend_from_slice(&self.src_ip.octets());
        f.extend_from_slice(&self.dst_ip.octets());
        let ip_csum = fold(sum16(&f[ip..ip + IPV4], 0));
        f[ip + 10..ip + 12].copy_from_slice(&ip_csum.to_be_bytes());
        let udp = f.len();
        f.extend_from_slice(&self.src_port.to_be_bytes());
        f.extend_from_slice(&self.dst_port.to_be_bytes());
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        if self.udp_csum {
            // Pseudo-header (RFC 768): addresses, protocol, UDP length.
            let mut acc = sum16(&self.src_ip.octets(), 0);
            acc = sum16(&self.dst_ip.octets(), acc);
            acc += 17 + udp_len as u64;
            let c = match fold(sum16(&f[udp..], acc)) {
                // Zero means "no checksum"; its one's-complement twin
                // says the same sum.
                0 => 0xffff,
                c => c,
            };
            f[udp + 6..udp + 8].copy_from_slice(&c.to_be_bytes());
        }
        f
    }
}

/// The outer headers of a tunnel packet.
#[derive(Debug, Clone, Copy)]
struct TunnelSpec {
    kind: Encap,
    vni: u32,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    udp_csum: bool,
}

/// Everything that makes the frames of a tx run.
#[derive(Debug, Clone)]
struct FrameSpec {
    /// Length of the (inner) frame.
    size: usize,
    inner: Udp4,
    vary: Vary,
    tunnel: Option<TunnelSpec>,
}

impl FrameSpec {
    /// Bytes of each frame sent.
    fn frame_len(&self) -> usize {
        self.size + self.tunnel.map_or(0, |_| ENCAP_OVERHEAD)
    }

    /// The frame of flow `flow`.
    fn build(&self, flow: u32) -> Vec<u8> {
        let mut inner = self.inner;
        if matches!(self.vary, Vary::Port | Vary::Both) {
            inner.src_port = inner.src_port.wrapping_add(flow as u16);
        }
        if matches!(self.vary, Vary::Ip | Vary::Both) {
            inner.src_ip = Ipv4Addr::from(u32::from(inner.src_ip).wrapping_add(flow));
        }
        if matches!(self.vary, Vary::DstMac) {
            let m = &mut inner.dst_mac;
            let low = u32::from_be_bytes([m[2], m[3], m[4], m[5]]).wrapping_add(flow);
            m[2..6].copy_from_slice(&low.to_be_bytes());
        }
        inner.ip_id = flow as u16;
        // A recognisable payload: a tag, the flow, then a byte pattern.
        let mut payload = vec![0u8; self.size - ETH - IPV4 - UDP];
        for (i, b) in payload.iter_mut().enumerate() {
            *b = i as u8;
        }
        let tag = b"xvs-pktgen";
        let flow_be = flow.to_be_bytes();
        for (dst, src) in payload.iter_mut().zip(tag.iter().chain(&flow_be)) {
            *dst = *src;
        }
        let frame = inner.frame(&payload);
        let Some(t) = self.tunnel else {
            return frame;
        };
        let mut body = Vec::with_capacity(TUNNEL_HDR + frame.len());
        let vni = t.vni.to_be_bytes();
        match t.kind {
            // RFC 7348: flags with the I bit, 24 reserved bits, VNI,
            // 8 reserved bits.
            Encap::Vxlan => body.extend_from_slice(&[0x08, 0, 0, 0]),
            // RFC 8926: version 0, no options, O and C clear, protocol
            // Transparent Ethernet Bridging.
            Encap::Geneve => {
                body.extend_from_slice(&[0, 0]);
                body.extend_from_slice(&ETHERTYPE_TEB.to_be_bytes());
            }
        }
        body.extend_from_slice(&[vni[1], vni[2], vni[3], 0]);
        body.extend_from_slice(&frame);
        let outer = Udp4 {
            src_mac: t.src_mac,
            dst_mac: t.dst_mac,
            src_ip: t.src_ip,
            dst_ip: t.dst_ip,
            // Per-flow entropy in the ephemeral range, as a VTEP hashes
            // the inner flow into the source port (RFC 7348 §5).
            src_port: 49152 + (flow % 16384) as u16,
            dst_port: t.kind.port(),
            ip_id: 0,
            df: true,
            udp_csum: t.udp_csum,
        };
        outer.frame(&body)
    }
}

// ---------------------------------------------------------------------
// Checking received frames

/// What `rx` counts as a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Any,
    Vni(u32),
    UdpDport(u16),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Any => f.write_str("any"),
            Expect::Vni(v) => write!(f, "vni {v}"),
            Expect::UdpDport(p) => write!(f, "udp-dport {p}"),
        }
    }
}

/// The UDP header and what follows it, if `f` is an unfragmented
/// Ethernet (optionally one VLAN tag) / IPv4 or IPv6 / UDP frame whose
/// lengths are consistent.
fn udp_of(f: &[u8]) -> Option<&[u8]> {
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes(f.get(off..off + 2)?.try_into().ok()?);
    if ethertype == ETHERTYPE_VLAN {
        off += 4;
        ethertype = u16::from_be_bytes(f.get(off..off + 2)?.try_into().ok()?);
    }
    let l3 = f.get(off + 2..)?;
    let l4 = match ethertype {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(*l3.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes(l3.get(2..4)?.try_into().ok()?));
            let frag = u16::from_be_bytes(l3.get(6..8)?.try_into().ok()?) & 0x3fff;
            if l3[0] >> 4 != 4 || ihl < IPV4 || l3.get(9) != Some(&17) || frag != 0 {
                return None;
            }
            l3.get(ihl..total)?
        }
        ETHERTYPE_IPV6 => {
            let payload = usize::from(u16::from_be_bytes(l3.get(4..6)?.try_into().ok()?));
            if *l3.first()? >> 4 != 6 || l3.get(6) != Some(&17) {
                return None;
            }
            l3.get(40..40 + payload)?
        }
        _ => return None,
    };
    let udp_len = usize::from(u16::from_be_bytes(l4.get(4..6)?.try_into().ok()?));
    (udp_len >= UDP).then(|| l4.get(..udp_len)).flatten()
}

/// Whether `f` is what `expect` asks for.
fn frame_matches(f: &[u8], expect: Expect) -> bool {
    let udp = match expect {
        Expect::Any => return true,
        _ => match udp_of(f) {
            Some(u) => u,
            None => return false,
        },
    };
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    match expect {
        Expect::Any => true,
        Expect::UdpDport(p) => dport == p,
        Expect::Vni(vni) => {
            let Some(h) = udp.get(UDP..UDP + TUNNEL_HDR) else {
                return false;
            };
            let got = u32::from_be_bytes([0, h[4], h[5], h[6]]);
            let (hdr_len, ok) = match dport {
                VXLAN_PORT => (TUNNEL_HDR, h[0] & 0x08 != 0),
                GENEVE_PORT => (
                    TUNNEL_HDR + usize::from(h[0] & 0x3f) * 4,
                    h[0] >> 6 == 0 && u16::from_be_bytes([h[2], h[3]]) == ETHERTYPE_TEB,
                ),
                _ => return false,
            };
            // An inner Ethernet header must follow.
            ok && got == vni && udp.len() >= UDP + hdr_len + ETH
        }
    }
}

// ---------------------------------------------------------------------
// Interfaces and sockets

fn iface_err(iface: &str, reason: impl Into<String>) -> PktgenError {
    PktgenError::Iface {
        iface: iface.to_owned(),
        reason: reason.into(),
    }
}

fn sysfs(iface: &str, file: &str) -> Result<String, PktgenError> {
    let path = format!("/sys/class/net/{iface}/{file}");
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| iface_err(iface, format!("reading {path}: {e}")))
}

fn iface_mac(iface: &str) -> Result<Mac, PktgenError> {
    sysfs(iface, "address")?
        .parse()
        .map_err(|e: String| iface_err(iface, e))
}

fn iface_mtu(iface: &str) -> Result<usize, PktgenError> {
    let m = sysfs(iface, "mtu")?;
    m.parse()
        .map_err(|_| iface_err(iface, format!("MTU {m:?} is not a number")))
}

/// The queues of `iface` of one kind (`queues/rx-N` or `queues/tx-N` in
/// sysfs, `kind` "rx-" or "tx-"), at least 1.
fn queues(iface: &str, kind: &str) -> Result<u32, PktgenError> {
    let dir = format!("/sys/class/net/{iface}/queues");
    let n = std::fs::read_dir(&dir)
        .map_err(|e| iface_err(iface, format!("reading {dir}: {e}")))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(kind))
        .count() as u32;
    Ok(n.max(1))
}

/// `struct xdp_statistics` (linux/if_xdp.h).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct XdpStats {
    rx_dropped: u64,
    rx_invalid_descs: u64,
    tx_invalid_descs: u64,
    rx_ring_full: u64,
    rx_fill_ring_empty_descs: u64,
    tx_ring_empty_descs: u64,
}

/// The kernel's counters of one AF_XDP socket; zeros if it has none to
/// give (they only explain losses, they never fail a run).
fn xsk_stats(fd: BorrowedFd<'_>) -> XdpStats {
    const SOL_XDP: libc::c_int = 283;
    const XDP_STATISTICS: libc::c_int = 7;
    let mut st = XdpStats::default();
    let mut len = std::mem::size_of::<XdpStats>() as libc::socklen_t;
    // SAFETY: `st` is a writable `struct xdp_statistics` of `len` bytes
    // that outlives the call, and `fd` is open for the borrow's duration.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            XDP_STATISTICS,
            (&mut st as *mut XdpStats).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        st
    } else {
        XdpStats::default()
    }
}

/// The progress bar (hidden unless stderr is a terminal), redrawn at most
/// every [`PROGRESS_EVERY`] with the packets so far and the rate since the
/// previous redraw.
struct Progress {
    pb: ProgressBar,
    last_drawn: Instant,
    drawn: u64,
}

impl Progress {
    fn new(length: u64, what: &str, start: Instant) -> Progress {
        let pb = if io::stderr().is_terminal() {
            let pb = ProgressBar::new(length);
            let template = format!("{{spinner}} {what} {{elapsed_precise}} [{{bar:30}}] {{msg}}");
            if let Ok(style) = ProgressStyle::with_template(&template) {
                pb.set_style(style.progress_chars("=> "));
            }
            pb
        } else {
            ProgressBar::hidden()
        };
        Progress {
            pb,
            last_drawn: start,
            drawn: 0,
        }
    }

    /// A sender's bar: its length is the count, or the duration in ms.
    fn tx(count: Option<u64>, duration: Option<Duration>, start: Instant) -> Progress {
        let length = match (count, duration) {
            (Some(c), None) => c,
            (_, Some(d)) => d.as_millis() as u64,
            (None, None) => 0,
        };
        Progress::new(length, "tx", start)
    }

    /// Redraws if it is time: `packets` so far (`invalid` of them, for a
    /// receiver), the bar at `position`.
    fn update(&mut self, now: Instant, packets: u64, invalid: Option<u64>, position: u64) {
        if now.duration_since(self.last_drawn) < PROGRESS_EVERY {
            return;
        }
        let secs = now.duration_since(self.last_drawn).as_secs_f64();
        let mpps = rate(packets - self.drawn, secs, 1e6);
        self.pb.set_message(match invalid {
            Some(i) => format!("{packets} packets ({i} invalid), {mpps:.3} Mpps"),
            None => format!("{packets} packets, {mpps:.3} Mpps"),
        });
        self.pb.set_position(position);
        self.last_drawn = now;
        self.drawn = packets;
    }

    fn finish(&self) {
        self.pb.finish_and_clear();
    }
}

fn print_json(report: &impl Serialize) -> Result<(), PktgenError> {
    let s = serde_json::to_string(report).map_err(|e| PktgenError::Report(e.to_string()))?;
    println!("{s}");
    Ok(())
}

fn rate(n: u64, secs: f64, scale: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs / scale
    } else {
        0.0
    }
}

// ---------------------------------------------------------------------
// tx

/// Releases whole batches at `rate` packets per second.
#[derive(Debug)]
struct Bucket {
    /// 0: unlimited.
    rate: u64,
    tokens: f64,
    /// Credit is capped at 200 µs of packets (at least two batches): a
    /// sender held up for a moment (a preemption, a slow kick) makes up
    /// for it, so the average rate holds (with a 2-batch cap, 700 kpps
    /// came out 3% short on veth), while a sender that fell far behind
    /// does not catch up with a long burst.
    cap: f64,
    batch: usize,
    last: Instant,
}

impl Bucket {
    fn new(rate: u64, now: Instant) -> Bucket {
        // Small batches at low rates, so packets are not bunched into
        // bursts milliseconds apart: at most 10,000 batches a second.
        let batch = if rate == 0 {
            TX_KICK
        } else {
            (rate / 10_000).clamp(1, TX_KICK as u64) as usize
        };
        Bucket {
            rate,
            tokens: batch as f64,
            cap: (2.0 * batch as f64).max(rate as f64 / 5_000.0),
            batch,
            last: now,
        }
    }

    /// How many of `want` packets may go now (0 until a whole batch, or
    /// all of `want` if smaller, is due).
    fn allow(&mut self, now: Instant, want: usize) -> usize {
        if self.rate == 0 {
            return want;
        }
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate as f64).min(self.cap);
        if self.tokens < self.batch.min(want) as f64 {
            return 0;
        }
        want.min(self.tokens as usize)
    }

    fn spend(&mut self, n: usize) {
        if self.rate != 0 {
            self.tokens -= n as f64;
        }
    }

    /// Time until the next batch is due.
    fn wait(&self) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let missing = (self.batch as f64 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.rate as f64)
    }
}

#[derive(Debug, Serialize)]
struct TxReport {
    mode: &'static str,
    engine: &'static str,
    iface: String,
    queue: u32,
    xdp_mode: String,
    zero_copy: bool,
    encap: &'static str,
    vni: Option<u32>,
    size: usize,
    frame_len: usize,
    flows: u32,
    rate_pps: u64,
    packets: u64,
    queued: u64,
    bytes: u64,
    wire_bytes: u64,
    duration_secs: f64,
    mpps: f64,
    gbps: f64,
    xsk_tx_invalid_descs: u64,
    /// xdp engine: frames the interface dropped on transmit; afxdp: 0.
    dropped: u64,
    stalled: bool,
}

impl TxReport {
    fn print(&self, a: &TxArgs) -> Result<(), PktgenError> {
        if a.json {
            return print_json(self);
        }
        let encap = match (a.encap, a.vni) {
            (Some(e), Some(v)) => format!(", {} VNI {v}", e.name()),
            _ => String::new(),
        };
        let how = match a.engine {
            Engine::Afxdp => format!(
                "{} XDP, {}",
                self.xdp_mode,
                if self.zero_copy {
                    "zero-copy"
                } else {
                    "copy mode"
                }
            ),
            Engine::Xdp => format!(
                "xdp engine, {} runs, {} dropped on transmit",
                self.queued, self.dropped
            ),
        };
        println!(
            "tx {} queue {} ({how}): {} packets in {:.3} s: {:.3} Mpps, {:.3} Gbps on the wire \
             ({} B frames, {} flow(s){encap})",
            self.iface,
            self.queue,
            self.packets,
            self.duration_secs,
            self.mpps,
            self.gbps,
            self.frame_len,
            self.flows,
        );
        Ok(())
    }
}

fn frame_spec(a: &TxArgs) -> Result<FrameSpec, PktgenError> {
    let own = iface_mac(&a.iface)?;
    let tunnel = match (a.encap, a.vni, a.outer_src, a.outer_dst, a.outer_dst_mac) {
        (Some(kind), Some(vni), Some(src_ip), Some(dst_ip), Some(dst_mac)) => Some(TunnelSpec {
            kind,
            vni,
            src_mac: a.outer_src_mac.unwrap_or(own).0,
            dst_mac: dst_mac.0,
            src_ip,
            dst_ip,
            udp_csum: a.outer_udp_csum,
        }),
        (None, ..) => None,
        // clap's `requires_all` rules this out; say so rather than panic.
        _ => {
            return Err(PktgenError::Frame(
                "--encap needs --vni, --outer-src, --outer-dst and --outer-dst-mac".into(),
            ))
        }
    };
    let spec = FrameSpec {
        size: usize::from(a.size),
        inner: Udp4 {
            src_mac: a.src_mac.unwrap_or(own).0,
            dst_mac: a.dst_mac.0,
            src_ip: a.src_ip,
            dst_ip: a.dst_ip,
            src_port: a.src_port,
            dst_port: a.dst_port,
            ip_id: 0,
            df: false,
            udp_csum: true,
        },
        vary: a.vary,
        tunnel,
    };
    let len = spec.frame_len();
    if len as u64 > CHUNK {
        return Err(PktgenError::Frame(format!(
            "a frame of {len} bytes does not fit one {CHUNK}-byte UMEM chunk (no AF_XDP \
             multi-buffer support); the largest --size is {}",
            CHUNK as usize - (len - spec.size)
        )));
    }
    let mtu = iface_mtu(&a.iface)?;
    if len > mtu + ETH {
        return Err(iface_err(
            &a.iface,
            format!(
                "a frame of {len} bytes exceeds the MTU ({mtu}) plus the Ethernet header: \
                 every frame would be dropped; raise it (ip link set {} mtu {})",
                a.iface,
                len - ETH
            ),
        ));
    }
    Ok(spec)
}

/// Chunks holding frames to send: a multiple of the flow count, so each
/// flow gets the same share, and enough to keep the TX ring full.
fn tx_chunks(flows: u32) -> u32 {
    RING.div_ceil(flows) * flows
}

fn tx(a: &TxArgs, stop: &AtomicBool) -> Result<ExitCode, PktgenError> {
    // Fail on a missing interface before reading its sysfs files.
    xvs_bpf::ifindex(&a.iface)?;
    if a.engine == Engine::Xdp {
        return tx_xdp(a, stop);
    }
    let spec = frame_spec(a)?;
    let frame_len = spec.frame_len();
    // The kernel accepts a queue id below either count; say which
    // there are rather than let the bind fail with a bare errno.
    let have = queues(&a.iface, "rx-")?.max(queues(&a.iface, "tx-")?);
    if a.queue >= have {
        return Err(iface_err(
            &a.iface,
            format!("--queue {}: it has {have} queue(s)", a.queue),
        ));
    }
    let duration = match (a.duration, a.count) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };

    let prog = XdpProgram::attach(&a.iface, Mode::Port, a.xdp_mode.flags())?;
    let chunks = tx_chunks(a.flows);
    let mut set = XskSet::new(XskConfig {
        frames: TX_RX_FRAMES + chunks,
        rx_frames: TX_RX_FRAMES,
        ring: RING,
        frame_headroom: 0,
    })?;
    let s = set.bind(&a.iface, a.queue, &prog)?;
    let zero_copy = set.zero_copy(s);

    // Every chunk left after the fill ring's share carries one frame,
    // written here once; from now on only descriptors move.
    let mut addrs = Vec::with_capacity(chunks as usize);
    while let Some(c) = set.alloc() {
        addrs.push(c);
    }
    {
        let frames: Vec<Vec<u8>> = (0..a.flows).map(|f| spec.build(f)).collect();
        let mut bufs = Vec::with_capacity(addrs.len());
        set.chunks_mut(&addrs, &mut bufs)?;
        for (i, buf) in bufs.iter_mut().enumerate() {
            let f = &frames[i % frames.len()];
            buf[..f.len()].copy_from_slice(f);
        }
    }
    let mut free: VecDeque<u64> = addrs.into();

    let frame_len32 = frame_len as u32;
    let mut batch: Vec<(u64, u32)> = Vec::with_capacity(TX_KICK);
    let mut comp: Vec<u64> = Vec::with_capacity(RING as usize);
    let mut rxbuf: Vec<(u64, u32)> = Vec::with_capacity(TX_RX_FRAMES as usize);
    let mut rx_addrs: Vec<u64> = Vec::with_capacity(TX_RX_FRAMES as usize);
    let (mut queued, mut completed, mut in_flight) = (0u64, 0u64, 0usize);
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    let mut bucket = Bucket::new(a.rate, start);
    let mut progress = Progress::tx(a.count, duration, start);
    let mut last_completion = start;
    let mut stalled = false;
    let mut round: u64 = 0;

    // Reaps completions: their chunks go to the back of the queue, so
    // the flows keep their round-robin order.
    let reap = |set: &mut XskSet, comp: &mut Vec<u64>, free: &mut VecDeque<u64>| {
        comp.clear();
        let n = set.complete(s, comp);
        free.extend(comp.iter().copied());
        n
    };

    loop {
        round += 1;
        let now = Instant::now();
        if stop.load(Ordering::Relaxed)
            || deadline.is_some_and(|d| now >= d)
            || a.count.is_some_and(|c| queued >= c)
        {
            break;
        }
        let n = reap(&mut set, &mut comp, &mut free);
        if n > 0 {
            completed += n as u64;
            in_flight -= n;
            last_completion = now;
        } else if in_flight > 0 && now.duration_since(last_completion) >= STALL {
            stalled = true;
            break;
        }
        if round & 1023 == 0 {
            // Frames arriving on the sending interface come to our
            // socket (the port program takes everything): give their
            // chunks back so the fill ring never runs dry.
            rxbuf.clear();
            set.rx(s, &mut rxbuf, TX_RX_FRAMES as usize, 0)?;
            rx_addrs.extend(rxbuf.iter().map(|&(addr, _)| addr));
            // What the fill ring does not take now (it publishes its
            // consumer lazily) is offered again next time.
            let lent = set.fill(s, &rx_addrs)?;
            rx_addrs.drain(..lent);
        }
        let position = match duration {
            Some(_) => now.duration_since(start).as_millis() as u64,
            None => completed,
        };
        progress.update(now, completed, None, position);
        let mut want = TX_KICK.min(free.len());
        if let Some(c) = a.count {
            want = want.min((c - queued) as usize);
        }
        let want = bucket.allow(now, want);
        if want == 0 {
            // Nothing to send now: keep copy mode draining what is
            // queued, and do not spin through a long rate-limit wait.
            if in_flight > 0 {
                set.kick(s)?;
            }
            let wait = bucket.wait();
            if wait > Duration::from_micros(200) {
                std::thread::sleep((wait - Duration::from_micros(100)).min(PROGRESS_EVERY));
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        batch.clear();
        batch.extend(free.drain(..want).map(|addr| (addr, frame_len32)));
        let sent = set.tx_send(s, &batch)?;
        bucket.spend(sent);
        queued += sent as u64;
        in_flight += sent;
        // The ring was full: the rest stay ours, first in line.
        for &(addr, _) in batch[sent..].iter().rev() {
            free.push_front(addr);
        }
    }

    // Let what is queued go out (bounded: a second, or a stall).
    let drain_until = Instant::now() + Duration::from_secs(1);
    while in_flight > 0 && Instant::now() < drain_until {
        set.kick(s)?;
        let n = reap(&mut set, &mut comp, &mut free);
        completed += n as u64;
        in_flight -= n;
        if n == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    progress.finish();
    let stats = xsk_stats(set.fd(s));
    let xdp_mode = prog.attach_mode().to_string();
    // Sockets before the program: the program's map must not outlive
    // them pointing at closed sockets, and detaching while bound would
    // cut the socket off.
    drop(set);
    drop(prog);

    let bytes = completed * frame_len as u64;
    let wire_bytes = bytes + completed * WIRE_OVERHEAD;
    let report = TxReport {
        mode: "tx",
        engine: a.engine.name(),
        iface: a.iface.clone(),
        queue: a.queue,
        xdp_mode,
        zero_copy,
        encap: a.encap.map_or("none", Encap::name),
        vni: a.encap.and(a.vni),
        size: spec.size,
        frame_len,
        flows: a.flows,
        rate_pps: a.rate,
        packets: completed,
        queued,
        bytes,
        wire_bytes,
        duration_secs: secs,
        mpps: rate(completed, secs, 1e6),
        gbps: rate(wire_bytes * 8, secs, 1e9),
        xsk_tx_invalid_descs: stats.tx_invalid_descs,
        dropped: 0,
        stalled,
    };
    report.print(a)?;
    if stalled {
        eprintln!(
            "xvs-pktgen: tx stalled: no frame completed for {} s with {in_flight} queued",
            STALL.as_secs()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------
// tx, XDP engine

/// Program runs in the first BPF_PROG_RUN call of each thread: few, so
/// that an interface that transmits nothing is reported at once.
const XDP_FIRST_RUNS: u32 = 4096;
/// What one later call should last: `--duration` is looked at between
/// calls only (a stop signal interrupts a call).
const XDP_CALL: Duration = Duration::from_millis(50);
const XDP_MAX_RUNS: u32 = 1 << 24;
/// How long the first frames get to show in the interface's counter: the
/// peer takes them in its NAPI poll, normally right after each batch of
/// 64 on the sending core, later when that runs elsewhere.
const XDP_SETTLE: Duration = Duration::from_millis(500);
/// How often the main thread reads the interface's counters.
const XDP_WATCH: Duration = Duration::from_millis(10);

/// The counters of the sending interface that say what left it.
///
/// For a veth, `tx_packets` counts the frames its peer took in (the
/// kernel adds the peer's receive counters to it, XDP-transmitted frames
/// included) and `tx_dropped` the XDP-transmitted frames the peer's ring
/// had no room for. A frame the peer took in is counted even if the
/// peer's XDP program or AF_XDP socket drops it later: it was sent.
/// What the host's own stack sends on the interface is counted too (the
/// benchmarks turn IPv6 off on their links, so there is next to none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TxCounters {
    packets: u64,
    dropped: u64,
}

fn tx_counters(iface: &str) -> Result<TxCounters, PktgenError> {
    let num = |file: &str| -> Result<u64, PktgenError> {
        let v = sysfs(iface, &format!("statistics/{file}"))?;
        v.parse()
            .map_err(|_| iface_err(iface, format!("statistics/{file}: {v:?} is not a number")))
    };
    Ok(TxCounters {
        packets: num("tx_packets")?,
        dropped: num("tx_dropped")?,
    })
}

/// What the sender threads share: the run's limits and what they did.
#[derive(Debug)]
struct XdpRun {
    deadline: Option<Instant>,
    count: Option<u64>,
    /// Runs handed out to calls (against `count`).
    claimed: AtomicU64,
    /// Runs of the calls that completed.
    done: AtomicU64,
    /// Set by the main thread (stall, nothing sent): the sender ends after
    /// its current call.
    halt: AtomicBool,
}

impl XdpRun {
    /// Up to `want` runs for the next call; 0 when `--count` is used up.
    fn claim(&self, want: u32) -> u32 {
        let Some(count) = self.count else {
            self.claimed.fetch_add(u64::from(want), Ordering::Relaxed);
            return want;
        };
        let mut got = 0;
        let _ = self
            .claimed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                got = (count.saturating_sub(c)).min(u64::from(want)) as u32;
                Some(c + u64::from(got))
            });
        got
    }

    fn over(&self, stop: &AtomicBool) -> bool {
        stop.load(Ordering::Relaxed)
            || self.halt.load(Ordering::Relaxed)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// The sender thread: calls until the run is over. Returns the runs the
/// program aborted.
fn xdp_sender(mut sender: XdpSender, run: &XdpRun, stop: &AtomicBool) -> Result<u64, PktgenError> {
    let mut per_call = XDP_FIRST_RUNS;
    while !run.over(stop) {
        let n = run.claim(per_call);
        if n == 0 {
            break;
        }
        let t0 = Instant::now();
        match sender.send(n) {
            Ok(()) => {
                run.done.fetch_add(u64::from(n), Ordering::Relaxed);
            }
            // A stop signal interrupts the call (EINTR).
            Err(_) if stop.load(Ordering::Relaxed) => break,
            Err(e) => return Err(e.into()),
        }
        // Aim the next call at XDP_CALL from this one's pace, and not
        // far past the deadline.
        let per_run = (t0.elapsed().as_secs_f64() / f64::from(n)).max(1e-9);
        let mut want = XDP_CALL.as_secs_f64() / per_run;
        if let Some(d) = run.deadline {
            want = want.min(d.saturating_duration_since(Instant::now()).as_secs_f64() / per_run);
        }
        per_call = want.clamp(f64::from(XDP_FIRST_RUNS), f64::from(XDP_MAX_RUNS)) as u32;
    }
    Ok(sender.aborted()?)
}

/// `tx --engine xdp`: flow 0's frame goes to the kernel once, and an XDP
/// program run by BPF_PROG_RUN in live-frames mode writes each flow's
/// varying words (see xvs-bpf's `pktgen` module) and transmits it, from
/// a thread of its own (this one watches the interface's counters), until
/// `--duration` or `--count`. One thread: a second one's calls would each
/// wait for an RCU grace period holding the kernel's XDP dispatcher lock,
/// stalling the first (see `XdpSender::hold` in xvs-bpf).
///
/// What the report's fields mean here: `queued` is the program runs of
/// the calls that completed (frames offered to the interface), `packets`
/// the interface's `tx_packets` over the run (see [`TxCounters`]: frames
/// that left), `dropped` its `tx_dropped`. `duration_secs` runs from the
/// start of the first call to the end of the last.
fn tx_xdp(a: &TxArgs, stop: &AtomicBool) -> Result<ExitCode, PktgenError> {
    let spec = frame_spec(a)?;
    let frame_len = spec.frame_len();
    // Once, before anything is loaded for the run: a refusal is then one
    // line naming the kernel's check, not a failed send call mid-run.
    probe_live_frames(frame_len)?;
    let patch = {
        let frames: Vec<Vec<u8>> = (0..a.flows).map(|f| spec.build(f)).collect();
        FlowPatch::new(&frames)?
    };
    let duration = match (a.duration, a.count) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let sender = XdpSender::load(&a.iface, &patch)?;
    if !sender.holds_dispatcher() {
        eprintln!(
            "xvs-pktgen: could not attach the send program to lo (has it an XDP program?): \
             every call waits for an RCU grace period, and the rate suffers"
        );
    }
    let before = tx_counters(&a.iface)?;
    let start = Instant::now();
    let run = XdpRun {
        deadline: duration.map(|d| start + d),
        count: a.count,
        claimed: AtomicU64::new(0),
        done: AtomicU64::new(0),
        halt: AtomicBool::new(false),
    };
    let (mut stalled, mut silent) = (false, None::<u64>);
    let mut progress = Progress::tx(a.count, duration, start);
    let (result, secs) = std::thread::scope(|sc| {
        let thread = sc.spawn(|| xdp_sender(sender, &run, stop));
        // Watch the interface: it must start sending, and keep at it.
        let (mut last, mut last_sent) = (before, Instant::now());
        let mut first_done = None::<Instant>;
        while !thread.is_finished() {
            std::thread::sleep(XDP_WATCH);
            let now = Instant::now();
            let c = match tx_counters(&a.iface) {
                Ok(c) => c,
                Err(_) => continue,
            };
            let done = run.done.load(Ordering::Relaxed);
            if c.packets > last.packets {
                last_sent = now;
            } else if done > 0 && c.packets == before.packets {
                if now.duration_since(*first_done.get_or_insert(now)) >= XDP_SETTLE {
                    silent = Some(done);
                    run.halt.store(true, Ordering::Relaxed);
                }
            } else if now.duration_since(last_sent) >= STALL {
                stalled = true;
                run.halt.store(true, Ordering::Relaxed);
            }
            last = c;
            let position = match duration {
                Some(_) => now.duration_since(start).as_millis() as u64,
                None => done,
            };
            progress.update(now, c.packets - before.packets, None, position);
        }
        let secs = start.elapsed().as_secs_f64();
        let result = thread
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (result, secs)
    });
    progress.finish();
    let aborted = result?;
    // The last frames reach the counter moments after the last call.
    let mut after = tx_counters(&a.iface)?;
    let settle_until = Instant::now() + XDP_SETTLE;
    while Instant::now() < settle_until {
        std::thread::sleep(XDP_WATCH);
        let c = tx_counters(&a.iface)?;
        if c == after {
            break;
        }
        after = c;
    }
    let done = run.done.load(Ordering::Relaxed);
    // A short run may end before the watch above could tell.
    if after.packets == before.packets && done > 0 {
        silent = Some(done);
    }
    if let Some(done) = silent {
        return Err(iface_err(
            &a.iface,
            format!(
                "the kernel ran the XDP program {done} times and the interface sent none of \
                 the frames ({} dropped on transmit). A veth transmits XDP frames only when \
                 its peer has NAPI: attach an XDP program to the peer, or turn GRO on there \
                 (ethtool -K PEER gro on, kernel 5.13 and later); other drivers need \
                 ndo_xdp_xmit support",
                after.dropped - before.dropped
            ),
        ));
    }
    if aborted > 0 {
        eprintln!("xvs-pktgen: the XDP program aborted {aborted} runs (nothing sent for them)");
    }

    let packets = after.packets - before.packets;
    let bytes = packets * frame_len as u64;
    let wire_bytes = bytes + packets * WIRE_OVERHEAD;
    let report = TxReport {
        mode: "tx",
        engine: a.engine.name(),
        iface: a.iface.clone(),
        queue: a.queue,
        xdp_mode: "live-frames".to_string(),
        zero_copy: false,
        encap: a.encap.map_or("none", Encap::name),
        vni: a.encap.and(a.vni),
        size: spec.size,
        frame_len,
        flows: a.flows,
        rate_pps: 0,
        packets,
        queued: done,
        bytes,
        wire_bytes,
        duration_secs: secs,
        mpps: rate(packets, secs, 1e6),
        gbps: rate(wire_bytes * 8, secs, 1e9),
        xsk_tx_invalid_descs: 0,
        dropped: after.dropped - before.dropped,
        stalled,
    };
    report.print(a)?;
    if stalled {
        eprintln!(
            "xvs-pktgen: tx stalled: the interface sent nothing for {} s",
            STALL.as_secs()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `probe`: whether `tx --engine xdp` can send frames of this length here.
fn probe(a: &ProbeArgs) -> Result<ExitCode, PktgenError> {
    probe_live_frames(usize::from(a.frame_len))?;
    println!(
        "the kernel runs BPF_PROG_TEST_RUN with live frames (BPF_F_TEST_XDP_LIVE_FRAMES) for a \
         {}-byte frame: --engine xdp can send",
        a.frame_len
    );
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------
// rx

#[derive(Debug, Serialize)]
struct RxReport {
    mode: &'static str,
    iface: String,
    queues: u32,
    xdp_mode: String,
    zero_copy: bool,
    expect: String,
    packets: u64,
    bytes: u64,
    wire_bytes: u64,
    invalid: u64,
    duration_secs: f64,
    active_secs: f64,
    mpps: f64,
    gbps: f64,
    xsk_rx_dropped: u64,
    xsk_rx_ring_full: u64,
    xsk_rx_fill_ring_empty: u64,
    xsk_rx_invalid_descs: u64,
}

fn rx(a: &RxArgs, stop: &AtomicBool) -> Result<ExitCode, PktgenError> {
    xvs_bpf::ifindex(&a.iface)?;
    let expect = match (a.expect_vni, a.expect_udp_dport) {
        (Some(v), _) => Expect::Vni(v),
        (None, Some(p)) => Expect::UdpDport(p),
        (None, None) => Expect::Any,
    };
    let queues = queues(&a.iface, "rx-")?;
    if queues > MAX_QUEUES {
        return Err(iface_err(
            &a.iface,
            format!("{queues} rx queues; the XDP program serves at most {MAX_QUEUES}"),
        ));
    }
    let prog = XdpProgram::attach(&a.iface, Mode::Port, a.xdp_mode.flags())?;
    // Rings shrink as queues grow, so the UMEM stays at most 32 MiB
    // per queue and 256 MiB in all.
    let ring = (RX_RING / queues.next_power_of_two()).max(512);
    // Twice the fill ring per queue: the spare half absorbs what the
    // fill ring cannot take back at once (see the refill below).
    let mut set = XskSet::new(XskConfig {
        frames: queues * 2 * ring,
        rx_frames: ring,
        ring,
        frame_headroom: 0,
    })?;
    for q in 0..queues {
        set.bind(&a.iface, q, &prog)?;
    }
    let zero_copy = set.zero_copy(0);
    // Scripts wait for this line before they start sending.
    eprintln!(
        "xvs-pktgen: rx ready on {}: {queues} queue(s), {} XDP",
        a.iface,
        prog.attach_mode()
    );

    let mut buf: Vec<(u64, u32)> = Vec::with_capacity(ring as usize);
    let mut addrs: Vec<u64> = Vec::with_capacity(2 * ring as usize);
    let mut pollfds: Vec<libc::pollfd> = Vec::with_capacity(queues as usize);
    let (mut packets, mut bytes, mut invalid) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let deadline = start + a.duration;
    let (mut first, mut last) = (None::<Instant>, start);
    let mut idle_since = None::<Instant>;
    let mut progress = Progress::new(a.duration.as_millis() as u64, "rx", start);
    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) || now >= deadline {
            break;
        }
        let (mut got, mut valid) = (0, 0);
        for s in 0..set.sockets() {
            buf.clear();
            let n = set.rx(s, &mut buf, ring as usize, 0)?;
            if n == 0 {
                continue;
            }
            got += n;
            valid += n;
            for &(addr, len) in &buf {
                bytes += u64::from(len);
                if expect != Expect::Any && !frame_matches(set.frame(addr, len)?, expect) {
                    invalid += 1;
                    valid -= 1;
                }
            }
            addrs.clear();
            addrs.extend(buf.iter().map(|&(addr, _)| addr));
            // The kernel publishes what it took from the fill ring
            // lazily, so the ring may look fuller than it is and take
            // fewer than we received: those wait in the pool, and the
            // next batch tops the ring up from there, or the chunks
            // would drop out of circulation and the fill ring run dry.
            let want = (ring as usize).saturating_sub(set.in_fill(s));
            while addrs.len() < want {
                match set.alloc() {
                    Some(addr) => addrs.push(addr),
                    None => break,
                }
            }
            let lent = set.fill(s, &addrs)?;
            for &addr in &addrs[lent..] {
                set.release(addr)?;
            }
        }
        if got > 0 {
            packets += got as u64;
            // The traffic window is that of the frames we expect: a
            // stray frame long before or after must not stretch it.
            if valid > 0 {
                first.get_or_insert(now);
                last = now;
            }
            idle_since = None;
            if a.poll == Poll::Adaptive && got < ring as usize / 8 {
                // Spinning here would take half the core from a
                // generator on it (the scheduler shares it out), for
                // nothing: the ring holds milliseconds of frames.
                std::thread::sleep(RX_NAP);
            }
        } else if a.poll == Poll::Adaptive
            && now.duration_since(*idle_since.get_or_insert(now)) >= Duration::from_micros(100)
        {
            pollfds.clear();
            for s in 0..set.sockets() {
                pollfds.push(libc::pollfd {
                    fd: set.fd(s).as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            // SAFETY: `pollfds` is an array of `len` pollfd structs that
            // outlives the call; the fds belong to `set`, which stays
            // alive and untouched during the call. An error (EINTR from a
            // stop signal) only ends the wait early.
            unsafe {
                libc::poll(
                    pollfds.as_mut_ptr(),
                    pollfds.len() as libc::nfds_t,
                    PROGRESS_EVERY.as_millis() as i32,
                )
            };
        }
        let position = now.duration_since(start).as_millis() as u64;
        progress.update(now, packets, Some(invalid), position);
    }
    let duration_secs = start.elapsed().as_secs_f64();
    progress.finish();
    let mut st = XdpStats::default();
    for s in 0..set.sockets() {
        let k = xsk_stats(set.fd(s));
        st.rx_dropped += k.rx_dropped;
        st.rx_ring_full += k.rx_ring_full;
        st.rx_fill_ring_empty_descs += k.rx_fill_ring_empty_descs;
        st.rx_invalid_descs += k.rx_invalid_descs;
    }
    let xdp_mode = prog.attach_mode().to_string();
    // Sockets before the program (see tx).
    drop(set);
    drop(prog);

    let active_secs = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let wire_bytes = bytes + packets * WIRE_OVERHEAD;
    let report = RxReport {
        mode: "rx",
        iface: a.iface.clone(),
        queues,
        xdp_mode,
        zero_copy,
        expect: expect.to_string(),
        packets,
        bytes,
        wire_bytes,
        invalid,
        duration_secs,
        active_secs,
        mpps: rate(packets, active_secs, 1e6),
        gbps: rate(wire_bytes * 8, active_secs, 1e9),
        xsk_rx_dropped: st.rx_dropped,
        xsk_rx_ring_full: st.rx_ring_full,
        xsk_rx_fill_ring_empty: st.rx_fill_ring_empty_descs,
        xsk_rx_invalid_descs: st.rx_invalid_descs,
    };
    if a.json {
        print_json(&report)?;
    } else {
        println!(
            "rx {} ({} queue(s), {} XDP, {}): {} packets, {} invalid (expect {}), {} bytes in \
             {:.3} s; over the {:.3} s with traffic: {:.3} Mpps, {:.3} Gbps on the wire; socket \
             drops: {} (ring full {}, fill ring empty {})",
            report.iface,
            report.queues,
            report.xdp_mode,
            if zero_copy { "zero-copy" } else { "copy mode" },
            report.packets,
            report.invalid,
            report.expect,
            report.bytes,
            report.duration_secs,
            report.active_secs,
            report.mpps,
            report.gbps,
            report.xsk_rx_dropped,
            report.xsk_rx_ring_full,
            report.xsk_rx_fill_ring_empty,
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Ipv4Header, SlicedPacket, TransportSlice, UdpHeader};

    const GEN: [u8; 6] = [2, 0, 0, 0, 0x0a, 1];
    const VM: [u8; 6] = [2, 0, 0, 0, 0x0b, 1];

    fn spec(size: usize, vary: Vary, tunnel: Option<Encap>) -> FrameSpec {
        FrameSpec {
            size,
            inner: Udp4 {
                src_mac: GEN,
                dst_mac: VM,
                src_ip: Ipv4Addr::new(10, 0, 0, 1),
                dst_ip: Ipv4Addr::new(10, 0, 0, 2),
                src_port: 1024,
                dst_port: 5001,
                ip_id: 0,
                df: false,
                udp_csum: true,
            },
            vary,
            tunnel: tunnel.map(|kind| TunnelSpec {
                kind,
                vni: 0x12_3456,
                src_mac: [2, 0, 0, 0, 0, 2],
                dst_mac: [2, 0, 0, 0, 0, 1],
                src_ip: Ipv4Addr::new(192, 0, 2, 2),
                dst_ip: Ipv4Addr::new(192, 0, 2, 1),
                udp_csum: true,
            }),
        }
    }

    /// Checks the Ethernet/IPv4/UDP frame `f` with etherparse (an
    /// independent parser): lengths and both checksums; returns the UDP
    /// header and payload.
    fn check_udp4(f: &[u8]) -> (UdpHeader, Vec<u8>) {
        let p = SlicedPacket::from_ethernet(f).expect("parses");
        let ip = match p.net {
            Some(etherparse::NetSlice::Ipv4(ip)) => ip,
            other => panic!("not IPv4: {other:?}"),
        };
        let h: Ipv4Header = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 checksum");
        assert_eq!(usize::from(h.total_len), f.len() - ETH);
        let Some(TransportSlice::Udp(u)) = p.transport else {
            panic!("not UDP");
        };
        let uh = u.to_header();
        let payload = u.payload().to_vec();
        assert_eq!(usize::from(uh.length), UDP + payload.len());
        if uh.checksum != 0 {
            let want = uh.calc_checksum_ipv4(&h, &payload).expect("payload fits");
            assert_eq!(uh.checksum, want, "UDP checksum");
        }
        (uh, payload)
    }

    #[test]
    fn plain_frames_have_the_size_and_valid_checksums() {
        for size in [60, 64, 65, 1400, 4096] {
            for flow in [0, 1, 1023] {
                let s = spec(size, Vary::Both, None);
                let f = s.build(flow);
                assert_eq!(f.len(), size);
                assert_eq!(f[..6], VM);
                let (uh, payload) = check_udp4(&f);
                assert_ne!(uh.checksum, 0);
                assert_eq!(uh.source_port, 1024 + flow as u16);
                assert_eq!(&payload[..10], b"xvs-pktgen");
                let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
                assert_eq!(u32::from(src), u32::from(Ipv4Addr::new(10, 0, 0, 1)) + flow);
            }
        }
    }

    #[test]
    fn vary_dst_mac_counts_up_the_low_32_bits() {
        let s = spec(64, Vary::DstMac, None);
        let base = s.build(0);
        let f = s.build(0x1_0001);
        assert_eq!(f[..2], base[..2]);
        let low = |b: &[u8]| u32::from_be_bytes([b[2], b[3], b[4], b[5]]);
        assert_eq!(low(&f).wrapping_sub(low(&base)), 0x1_0001);
        // Source MAC, addresses and ports stay.
        assert_eq!(f[6..12], base[6..12]);
        assert_eq!(f[26..38], base[26..38]);
    }

    #[test]
    fn vary_port_keeps_the_ip_and_vary_ip_keeps_the_port() {
        let p = spec(64, Vary::Port, None).build(7);
        let i = spec(64, Vary::Ip, None).build(7);
        assert_eq!(p[26..30], [10, 0, 0, 1]);
        assert_eq!(u16::from_be_bytes([p[34], p[35]]), 1031);
        assert_eq!(i[26..30], [10, 0, 0, 8]);
        assert_eq!(u16::from_be_bytes([i[34], i[35]]), 1024);
    }

    #[test]
    fn tunnel_frames_are_rfc_vxlan_and_geneve_around_a_valid_frame() {
        for kind in [Encap::Vxlan, Encap::Geneve] {
            let s = spec(64, Vary::Port, Some(kind));
            let f = s.build(5);
            assert_eq!(f.len(), 64 + ENCAP_OVERHEAD);
            assert_eq!(s.frame_len(), f.len());
            let (uh, payload) = check_udp4(&f);
            assert_eq!(uh.destination_port, kind.port());
            assert_eq!(uh.source_port, 49152 + 5);
            // DF set on the outer header.
            assert_eq!(f[ETH + 6] & 0x40, 0x40);
            let h = &payload[..TUNNEL_HDR];
            match kind {
                Encap::Vxlan => assert_eq!(h[..4], [0x08, 0, 0, 0]),
                Encap::Geneve => assert_eq!(h[..4], [0, 0, 0x65, 0x58]),
            }
            assert_eq!(h[4..8], [0x12, 0x34, 0x56, 0]);
            let (inner_udp, _) = check_udp4(&payload[TUNNEL_HDR..]);
            assert_eq!(inner_udp.source_port, 1029);
            assert!(frame_matches(&f, Expect::Vni(0x12_3456)));
            assert!(!frame_matches(&f, Expect::Vni(7)));
            assert!(frame_matches(&f, Expect::UdpDport(kind.port())));
        }
    }

    #[test]
    fn zero_outer_checksum_when_not_asked() {
        let mut s = spec(100, Vary::Port, Some(Encap::Vxlan));
        if let Some(t) = s.tunnel.as_mut() {
            t.udp_csum = false;
        }
        let f = s.build(0);
        assert_eq!(f[ETH + IPV4 + 6..ETH + IPV4 + 8], [0, 0]);
        check_udp4(&f);
    }

    #[test]
    fn checks_reject_garbage_without_panicking() {
        let good = spec(64, Vary::Port, Some(Encap::Geneve)).build(0);
        let e = Expect::Vni(0x12_3456);
        for n in 0..good.len() {
            assert!(!frame_matches(&good[..n], e), "truncated at {n}");
        }
        let mut bad = good.clone();
        bad[ETH + IPV4 + UDP] = 0x40; // Geneve version 1
        assert!(!frame_matches(&bad, e));
        let plain = spec(64, Vary::Port, None).build(0);
        assert!(!frame_matches(&plain, e));
        assert!(frame_matches(&plain, Expect::UdpDport(5001)));
        assert!(!frame_matches(&plain, Expect::UdpDport(5002)));
        assert!(frame_matches(&[], Expect::Any));
    }

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
    fn the_bucket_paces_batches() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1_000_000, t0);
        assert_eq!(b.batch, 32);
        assert_eq!(b.allow(t0, 32), 32);
        b.spend(32);
        assert_eq!(b.allow(t0, 32), 0, "no credit left");
        // 32 µs at 1 Mpps is one batch.
        assert_eq!(b.allow(t0 + Duration::from_micros(33), 32), 32);
        b.spend(32);
        // Credit is capped at 200 µs.
        assert_eq!(b.allow(t0 + Duration::from_secs(1), 1000), 200);
        let mut b = Bucket::new(100_000, t0);
        assert_eq!(
            b.allow(t0 + Duration::from_secs(1), 1000),
            20,
            "two batches"
        );
        let mut slow = Bucket::new(100, t0);
        assert_eq!(slow.batch, 1);
        assert_eq!(slow.allow(t0, 32), 1);
        slow.spend(1);
        assert!(slow.wait() > Duration::from_millis(9));
        let mut free = Bucket::new(0, t0);
        assert_eq!(free.allow(t0, 32), 32);
    }

    #[test]
    fn tx_chunks_share_evenly_and_fill_the_ring() {
        for flows in [1, 3, 1000, 1024, 4096, MAX_FLOWS] {
            let c = tx_chunks(flows);
            assert_eq!(c % flows, 0);
            assert!(c >= RING);
        }
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
