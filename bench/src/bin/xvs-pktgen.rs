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
//! `tx --engine xdp` sends without a socket: the `pktgen` XDP program,
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
//! (`pktgen::xdp::probe_live_frames`); if the kernel refuses live frames, it
//! exits 1 with one line: what the kernel refused, why (the check in
//! Linux) and to use `--engine afxdp` instead. `probe` asks the same
//! question alone (exit 0 and one line on stdout if the kernel takes a
//! frame of `--frame-len` bytes, 1 and the refusal on stderr if not), for
//! scripts that pick an engine (`bench/compare.sh`).
//!
//! Sizes: `--size` is the Ethernet frame without FCS; with `--encap` it is
//! the inner frame's and the frame sent is 50 bytes longer. A frame must
//! fit one 4096-byte UMEM chunk (xvs-io's `XskSet` has no multi-buffer
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
//!
//! The parts live in the bench library, [`xvs_bench::pktgen`]; this file
//! parses the command line, installs the signal handlers and dispatches.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;
use xvs_bench::pktgen::args::{Cli, Cmd};
use xvs_bench::pktgen::{probe, rx, tx, PktgenError};

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
