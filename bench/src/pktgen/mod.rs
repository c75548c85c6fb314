//! The parts of `xvs-pktgen` (`src/bin/xvs-pktgen.rs` is only its `main`;
//! its documentation describes the tool: options, JSON fields, exit codes).
//!
//! - [`args`]: the command line (clap), and what clap cannot check.
//! - `frames`: the frames a tx run sends, built once per flow.
//! - `afxdp`: the AF_XDP send engine (`tx --engine afxdp`) and its pacing.
//! - `xdp_tx`: the XDP live-frames send engine's run (`tx --engine xdp`)
//!   and `probe`; [`xdp`]: its loader (the BPF program, its maps,
//!   `BPF_PROG_RUN`).
//! - `rx`: the receiver and its frame check.
//! - `report`: the progress bar and the reports (text or JSON).
//! - `sys`: what a run reads from the kernel: an interface's sysfs files,
//!   an AF_XDP socket's counters.
//!
//! Every run ends at `--duration`/`--count` or when `stop` is set (the
//! binary sets it on SIGINT and SIGTERM).

pub mod args;
pub mod xdp;

mod afxdp;
mod frames;
mod report;
mod rx;
mod sys;
mod xdp_tx;

use std::io;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use xvs_io::xsk::XskError;

use args::{Engine, TxArgs};
use xdp::{LiveFramesRefused, ProbeError, XdpSendError};

pub use rx::rx;
pub use xdp_tx::probe;

/// FCS, preamble and inter-frame gap: what a frame costs on a wire beyond
/// its bytes.
const WIRE_OVERHEAD: u64 = 24;
/// Flows are one prebuilt frame each (at least one chunk each).
const MAX_FLOWS: u32 = 16384;
/// A tx that got no completion for this long while frames were queued
/// gives up: the interface is down or the kernel stopped sending.
const STALL: Duration = Duration::from_secs(2);
/// How often the progress bar is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum PktgenError {
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

/// `tx`: sends with the engine `--engine` names.
pub fn tx(a: &TxArgs, stop: &AtomicBool) -> Result<ExitCode, PktgenError> {
    // Fail on a missing interface before reading its sysfs files.
    xvs_bpf::ifindex(&a.iface)?;
    match a.engine {
        Engine::Xdp => xdp_tx::tx(a, stop),
        Engine::Afxdp => afxdp::tx(a, stop),
    }
}
