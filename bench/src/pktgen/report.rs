//! What a run shows: the progress bar on a terminal's stderr, and the
//! report at the end, one summary line or one JSON object on stdout.

use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::args::{Encap, Engine, RxArgs, TxArgs};
use super::{PktgenError, PROGRESS_EVERY, WIRE_OVERHEAD};

/// The progress bar (hidden unless stderr is a terminal), redrawn at most
/// every [`PROGRESS_EVERY`] with the packets so far and the rate since the
/// previous redraw.
pub(super) struct Progress {
    pb: ProgressBar,
    last_drawn: Instant,
    drawn: u64,
}

impl Progress {
    pub(super) fn new(length: u64, what: &str, start: Instant) -> Progress {
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
    pub(super) fn tx(count: Option<u64>, duration: Option<Duration>, start: Instant) -> Progress {
        let length = match (count, duration) {
            (Some(c), None) => c,
            (_, Some(d)) => d.as_millis() as u64,
            (None, None) => 0,
        };
        Progress::new(length, "tx", start)
    }

    /// Redraws if it is time: `packets` so far (`invalid` of them, for a
    /// receiver), the bar at `position`.
    pub(super) fn update(
        &mut self,
        now: Instant,
        packets: u64,
        invalid: Option<u64>,
        position: u64,
    ) {
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

    pub(super) fn finish(&self) {
        self.pb.finish_and_clear();
    }
}

fn print_json(report: &impl Serialize) -> Result<(), PktgenError> {
    let s = serde_json::to_string(report).map_err(|e| PktgenError::Report(e.to_string()))?;
    println!("{s}");
    Ok(())
}

pub(super) fn rate(n: u64, secs: f64, scale: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs / scale
    } else {
        0.0
    }
}

#[derive(Debug, Serialize)]
pub(super) struct TxReport {
    pub(super) mode: &'static str,
    pub(super) engine: &'static str,
    pub(super) iface: String,
    pub(super) queue: u32,
    pub(super) xdp_mode: String,
    pub(super) zero_copy: bool,
    pub(super) encap: &'static str,
    pub(super) vni: Option<u32>,
    pub(super) size: usize,
    pub(super) frame_len: usize,
    pub(super) flows: u32,
    pub(super) rate_pps: u64,
    pub(super) packets: u64,
    pub(super) queued: u64,
    pub(super) bytes: u64,
    pub(super) wire_bytes: u64,
    pub(super) duration_secs: f64,
    pub(super) mpps: f64,
    pub(super) gbps: f64,
    pub(super) xsk_tx_invalid_descs: u64,
    /// xdp engine: frames the interface dropped on transmit; afxdp: 0.
    pub(super) dropped: u64,
    pub(super) stalled: bool,
}

impl TxReport {
    /// What both engines fill alike: the run's options, and the byte and
    /// rate figures of `packets` frames of `frame_len` bytes in `secs`.
    /// The engine's own fields start at zero and false.
    pub(super) fn new(
        a: &TxArgs,
        size: usize,
        frame_len: usize,
        packets: u64,
        secs: f64,
    ) -> TxReport {
        let bytes = packets * frame_len as u64;
        let wire_bytes = bytes + packets * WIRE_OVERHEAD;
        TxReport {
            mode: "tx",
            engine: a.engine.name(),
            iface: a.iface.clone(),
            queue: a.queue,
            xdp_mode: String::new(),
            zero_copy: false,
            encap: a.encap.map_or("none", Encap::name),
            vni: a.encap.and(a.vni),
            size,
            frame_len,
            flows: a.flows,
            rate_pps: a.rate,
            packets,
            queued: 0,
            bytes,
            wire_bytes,
            duration_secs: secs,
            mpps: rate(packets, secs, 1e6),
            gbps: rate(wire_bytes * 8, secs, 1e9),
            xsk_tx_invalid_descs: 0,
            dropped: 0,
            stalled: false,
        }
    }

    pub(super) fn print(&self, a: &TxArgs) -> Result<(), PktgenError> {
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

#[derive(Debug, Serialize)]
pub(super) struct RxReport {
    pub(super) mode: &'static str,
    pub(super) iface: String,
    pub(super) queues: u32,
    pub(super) xdp_mode: String,
    pub(super) zero_copy: bool,
    pub(super) expect: String,
    pub(super) packets: u64,
    pub(super) bytes: u64,
    pub(super) wire_bytes: u64,
    pub(super) invalid: u64,
    pub(super) duration_secs: f64,
    pub(super) active_secs: f64,
    pub(super) mpps: f64,
    pub(super) gbps: f64,
    pub(super) xsk_rx_dropped: u64,
    pub(super) xsk_rx_ring_full: u64,
    pub(super) xsk_rx_fill_ring_empty: u64,
    pub(super) xsk_rx_invalid_descs: u64,
}

impl RxReport {
    pub(super) fn print(&self, a: &RxArgs) -> Result<(), PktgenError> {
        if a.json {
            return print_json(self);
        }
        println!(
            "rx {} ({} queue(s), {} XDP, {}): {} packets, {} invalid (expect {}), {} bytes in \
             {:.3} s; over the {:.3} s with traffic: {:.3} Mpps, {:.3} Gbps on the wire; socket \
             drops: {} (ring full {}, fill ring empty {})",
            self.iface,
            self.queues,
            self.xdp_mode,
            if self.zero_copy {
                "zero-copy"
            } else {
                "copy mode"
            },
            self.packets,
            self.invalid,
            self.expect,
            self.bytes,
            self.duration_secs,
            self.active_secs,
            self.mpps,
            self.gbps,
            self.xsk_rx_dropped,
            self.xsk_rx_ring_full,
            self.xsk_rx_fill_ring_empty,
        );
        Ok(())
    }
}
