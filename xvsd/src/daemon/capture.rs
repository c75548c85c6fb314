//! `xvsctl capture`: one capture at a time, its copies taken by every
//! worker's tap (`xvs_io::worker::Tap`, off the packet path) and drained
//! here when the client reads them; a capture nobody has read for
//! [`IDLE`] (its xvsctl killed) is stopped, so that no worker keeps
//! copying for nobody.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xvs_ctl::protocol::{
    CaptureBatch, CaptureDirection, CaptureParams, CaptureStartParams, CaptureStarted,
    CapturedPacket, RpcError,
};
use xvs_io::worker::{CaptureSpec, DIR_IN, DIR_OUT};
use xvs_types::PortNo;

use super::Daemon;

/// A capture not read for this long is stopped.
pub(super) const IDLE: Duration = Duration::from_secs(5);

/// The most a capture copies of one frame (and its default).
const MAX_SNAPLEN: u32 = 65535;

/// The capture running.
#[derive(Debug)]
pub(super) struct Capture {
    id: u64,
    port: String,
    last_read: Instant,
}

impl Daemon {
    /// `capture_start`: every worker's tap set to take `port`'s frames.
    pub(super) fn capture_start(
        &mut self,
        p: &CaptureStartParams,
    ) -> Result<CaptureStarted, RpcError> {
        let bad = |field: &str, why: String| RpcError::invalid_params("capture_start", field, why);
        if let Some(c) = &self.capture {
            return Err(RpcError::rejected(vec![format!(
                "a capture of {:?} runs already (one at a time)",
                c.port
            )]));
        }
        let config = self.ctl.config();
        if config.tunnels.iter().any(|t| t.name == p.port) {
            return Err(bad(
                "params.port",
                format!(
                    "{:?} is a tunnel: its packets cross the uplink; capture the uplink",
                    p.port
                ),
            ));
        }
        let no: PortNo = *config.port_numbers().get(p.port.as_str()).ok_or_else(|| {
            bad(
                "params.port",
                format!("no port or uplink named {:?}", p.port),
            )
        })?;
        let snaplen = p.snaplen.unwrap_or(MAX_SNAPLEN);
        if !(14..=MAX_SNAPLEN).contains(&snaplen) {
            return Err(bad(
                "params.snaplen",
                format!("{snaplen}: from 14 (an Ethernet header) to {MAX_SNAPLEN}"),
            ));
        }
        let dirs = match p.direction {
            CaptureDirection::In => DIR_IN,
            CaptureDirection::Out => DIR_OUT,
            CaptureDirection::Both => DIR_IN | DIR_OUT,
        };
        let spec = CaptureSpec {
            port: no,
            dirs,
            snaplen,
        };
        for w in &self.workers {
            w.tap.start(spec);
        }
        self.next_capture += 1;
        self.capture = Some(Capture {
            id: self.next_capture,
            port: p.port.clone(),
            last_read: Instant::now(),
        });
        tracing::info!(port = %p.port, ?p.direction, snaplen, "capture started");
        Ok(CaptureStarted {
            id: self.next_capture,
            port: p.port.clone(),
            snaplen,
        })
    }

    /// `capture_read` (`stop`: `capture_stop`): the frames every worker
    /// took since the last read, in time order; a stop ends the capture.
    pub(super) fn capture_read(
        &mut self,
        p: &CaptureParams,
        stop: bool,
    ) -> Result<CaptureBatch, RpcError> {
        let method = if stop { "capture_stop" } else { "capture_read" };
        match &mut self.capture {
            Some(c) if c.id == p.id => c.last_read = Instant::now(),
            _ => {
                return Err(RpcError::invalid_params(
                    method,
                    "params.id",
                    format!(
                        "no capture {} runs (stopped, or not read for {} s)",
                        p.id,
                        IDLE.as_secs()
                    ),
                ))
            }
        }
        // The workers' epoch in Unix time: their timestamps count from it.
        let epoch_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .saturating_sub(self.epoch.elapsed().as_nanos()) as u64;
        let mut batch = CaptureBatch::default();
        for w in &self.workers {
            w.tap.drain(|c| {
                batch.packets.push(CapturedPacket {
                    ts_ns: epoch_ns + c.ts_ns,
                    dir: if c.dir == DIR_IN {
                        CaptureDirection::In
                    } else {
                        CaptureDirection::Out
                    },
                    len: c.len,
                    data: c.data.iter().map(|b| format!("{b:02x}")).collect(),
                });
            });
            batch.dropped += w.tap.dropped();
        }
        // Stable: one worker's frames stay in the order it took them.
        batch.packets.sort_by_key(|p| p.ts_ns);
        if stop {
            self.capture_end("stopped");
        }
        Ok(batch)
    }

    /// Stops a capture nobody reads any more.
    pub(super) fn capture_tick(&mut self) {
        if self
            .capture
            .as_ref()
            .is_some_and(|c| c.last_read.elapsed() >= IDLE)
        {
            self.capture_end("not read for 5 s");
        }
    }

    fn capture_end(&mut self, why: &str) {
        for w in &self.workers {
            w.tap.stop();
        }
        if let Some(c) = self.capture.take() {
            tracing::info!(port = %c.port, why, "capture ended");
        }
    }
}
