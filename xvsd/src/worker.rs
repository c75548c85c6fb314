//! Workers: AF_XDP sockets driven through the dataplane pipeline.
//!
//! A [`Worker`] owns a set of [`XskPort`] sockets, one per (interface,
//! queue) it serves (VM-facing ports and the uplink), each with its own
//! UMEM, and runs one poll loop:
//!
//! ```text
//! for each port: rx (batch 64) ─► lend the chunks as Frames ─► process_batch
//!   ─► tx out of the same port: the descriptor, in place (no copy)
//!   ─► tx out of another port: one memcpy into a chunk of that port's UMEM
//!      (counted), the source chunk recycled
//!   ─► dropped frames and unused spares recycled
//! then: send (kick per 32 in copy mode), reap completions, refill fill rings
//! ```
//!
//! Invariants: every chunk a batch received or borrowed comes back to its
//! port (sent, refilled or pooled), on every path; a chunk is lent to the
//! pipeline only through [`XskPort::chunks_mut`], so the I/O layer's
//! ownership checks hold; nothing here is unsafe. The dataplane crate stays
//! free of I/O: this crate is the only place the two meet.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use xvs_bpf::xsk::{self, XskError, XskPort};
use xvs_dataplane::frame::Frame;
use xvs_dataplane::pipeline::{process_batch, BatchIo, LearnEvent, PortCounters, WorkerState};
use xvs_dataplane::snapshot::SnapshotHandle;
use xvs_dataplane::stats::DropCounters;
use xvs_dataplane::types::PortNo;

/// Frames taken from an rx ring per batch.
pub const BATCH: usize = 64;
/// Frames queued per TX kick: copy mode sends a bounded number per
/// wakeup (16 in the kernel's copy path; 32 with need_wakeup re-kicks).
pub const TX_KICK: usize = 32;
/// Spare chunks offered to the pipeline per batch for flood replicas.
pub const SPARES: usize = 8;
/// Where a copied frame starts in its destination chunk: behind the
/// kernel's XDP headroom, leaving room for a later push.
const COPY_HEAD: usize = xsk::XDP_HEADROOM as usize;

/// Counters of one worker (I/O events; per-port pipeline counters live
/// in its [`WorkerState`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerCounters {
    pub batches: u64,
    pub rx_frames: u64,
    /// Frames queued on a TX ring (in place or copied).
    pub tx_frames: u64,
    /// Frames sent out of the port they arrived on, without a copy.
    pub tx_in_place: u64,
    /// Frames copied into another port's UMEM (one memcpy each).
    pub copies: u64,
    pub copy_bytes: u64,
    /// Frames dropped because the destination had no free chunk.
    pub no_chunk: u64,
    /// Frames dropped because a TX ring was full.
    pub tx_ring_full: u64,
    /// Frames the pipeline sent to a port this worker does not own.
    pub unknown_port: u64,
    /// Chunks whose transmission completed.
    pub completions: u64,
}

/// One socket of a worker: the port it belongs to (its number in the
/// snapshot), its queue and the socket.
#[derive(Debug)]
pub struct WorkerPort {
    pub no: PortNo,
    pub queue: u32,
    pub xsk: XskPort,
    /// Chunks the port should keep lent to its fill ring.
    pub fill_target: usize,
    /// Frames waiting for this port's TX ring.
    pending: Vec<(u64, u32)>,
}

impl WorkerPort {
    pub fn new(no: PortNo, queue: u32, xsk: XskPort, fill_target: usize) -> WorkerPort {
        WorkerPort {
            no,
            queue,
            xsk,
            fill_target,
            pending: Vec::with_capacity(BATCH * 2),
        }
    }

    /// Gives owned chunks back: to the fill ring while it holds fewer
    /// than `fill_target`, to the TX pool otherwise.
    fn recycle(&mut self, addrs: &[u64]) -> Result<(), XskError> {
        let want = self.fill_target.saturating_sub(self.xsk.in_fill());
        let n = want.min(addrs.len());
        let lent = self.xsk.fill(&addrs[..n])?;
        for &a in &addrs[lent..] {
            self.xsk.release(a)?;
        }
        Ok(())
    }
}

/// How a worker waits when there is no traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMode {
    /// Spin without pause: the lowest latency, a whole core.
    Busy,
    /// Spin for `spin`, then sleep in poll(2) on the sockets until a frame
    /// arrives (or a short timeout, to notice a stop request), so several
    /// daemons and a traffic generator can share a small machine.
    Adaptive { spin: Duration },
}

impl Default for PollMode {
    fn default() -> Self {
        PollMode::Adaptive {
            spin: Duration::from_micros(200),
        }
    }
}

/// The longest a sleeping worker waits before it looks at its stop flag.
const SLEEP_MS: i32 = 20;
/// How often a worker publishes its counters.
const REPORT_EVERY: Duration = Duration::from_millis(100);

/// Where the time of a worker went (for `worker-stats`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Nanoseconds in rounds that moved at least one frame.
    pub busy_ns: u64,
    /// Nanoseconds in empty rounds and asleep.
    pub idle_ns: u64,
    /// Rounds that found nothing.
    pub empty_polls: u64,
    /// Times the worker went to sleep in poll(2).
    pub sleeps: u64,
}

/// What a worker publishes for the control thread, refreshed every
/// [`REPORT_EVERY`] and when it stops.
#[derive(Debug, Default, Clone)]
pub struct WorkerReport {
    pub id: usize,
    pub counters: WorkerCounters,
    pub load: Load,
    /// Pipeline counters per port number.
    pub ports: Vec<PortCounters>,
    pub drops: DropCounters,
}

/// A poll-mode worker over a set of sockets.
#[derive(Debug)]
pub struct Worker {
    ports: Vec<WorkerPort>,
    /// By port number: the socket (index in `ports`) frames to that port
    /// leave by, when they did not arrive on that port.
    tx_of: Vec<Option<usize>>,
    handle: Arc<SnapshotHandle>,
    ws: WorkerState,
    pub counters: WorkerCounters,
    pub load: Load,
    epoch: Instant,
    mode: PollMode,
    report: Option<Arc<Mutex<WorkerReport>>>,
    // Scratch, reused across batches.
    rx: Vec<(u64, u32)>,
    addrs: Vec<u64>,
    recycle: Vec<u64>,
    comp: Vec<u64>,
    pollfds: Vec<libc::pollfd>,
}

/// The chunk base of a UMEM address.
fn chunk_of(addr: u64) -> u64 {
    addr / xsk::CHUNK * xsk::CHUNK
}

impl Worker {
    /// A worker over `ports` (sockets); the first socket of each port
    /// number is the one it transmits by. `epoch` is the daemon's clock
    /// origin, shared with the control thread.
    pub fn new(
        id: usize,
        ports: Vec<WorkerPort>,
        handle: Arc<SnapshotHandle>,
        learn_tx: Option<Sender<LearnEvent>>,
    ) -> Worker {
        let mut tx_of = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            let n = usize::from(p.no);
            if tx_of.len() <= n {
                tx_of.resize(n + 1, None);
            }
            tx_of[n].get_or_insert(i);
        }
        Worker {
            ports,
            tx_of,
            handle,
            ws: WorkerState::new(id, learn_tx),
            counters: WorkerCounters::default(),
            load: Load::default(),
            epoch: Instant::now(),
            mode: PollMode::default(),
            report: None,
            rx: Vec::with_capacity(BATCH),
            addrs: Vec::with_capacity(BATCH + SPARES),
            recycle: Vec::with_capacity(BATCH + SPARES),
            comp: Vec::with_capacity(4 * BATCH),
            pollfds: Vec::new(),
        }
    }

    /// Sets how the worker waits when idle.
    pub fn with_mode(mut self, mode: PollMode) -> Worker {
        self.mode = mode;
        self
    }

    /// Uses `epoch` as time zero for policers (the control thread's).
    pub fn with_epoch(mut self, epoch: Instant) -> Worker {
        self.epoch = epoch;
        self
    }

    /// Publishes counters into `report` while running.
    pub fn with_report(mut self, report: Arc<Mutex<WorkerReport>>) -> Worker {
        self.report = Some(report);
        self
    }

    /// Pipeline counters of a port (as this worker saw it).
    pub fn port_counters(&self, port: PortNo) -> PortCounters {
        self.ws
            .ports
            .get(usize::from(port))
            .cloned()
            .unwrap_or_default()
    }

    /// The pipeline's per-worker state (drop reasons, learning).
    pub fn state(&self) -> &WorkerState {
        &self.ws
    }

    pub fn ports(&self) -> &[WorkerPort] {
        &self.ports
    }

    /// What this worker has done so far.
    pub fn report(&self) -> WorkerReport {
        WorkerReport {
            id: self.ws.id,
            counters: self.counters,
            load: self.load,
            ports: self.ws.ports.clone(),
            drops: self.ws.drops.clone(),
        }
    }

    fn publish(&self) {
        if let Some(r) = &self.report {
            // The control thread holds the lock only to copy the report
            // out; if it does right now, publish next time.
            if let Ok(mut g) = r.try_lock() {
                *g = self.report();
            }
        }
    }

    /// Runs until `stop` is set; returns the counters.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<WorkerCounters, XskError> {
        let mut last = Instant::now();
        let mut idle_since: Option<Instant> = None;
        let mut last_report = last;
        while !stop.load(Ordering::Relaxed) {
            let got = self.poll_once()?;
            let now = Instant::now();
            let spent = now.duration_since(last).as_nanos() as u64;
            last = now;
            if got > 0 {
                self.load.busy_ns += spent;
                idle_since = None;
            } else {
                self.load.idle_ns += spent;
                self.load.empty_polls += 1;
                let since = *idle_since.get_or_insert(now);
                if let PollMode::Adaptive { spin } = self.mode {
                    if now.duration_since(since) >= spin {
                        self.sleep()?;
                        let woke = Instant::now();
                        self.load.idle_ns += woke.duration_since(last).as_nanos() as u64;
                        last = woke;
                    }
                }
            }
            if last.duration_since(last_report) >= REPORT_EVERY {
                last_report = last;
                self.publish();
            }
        }
        self.publish();
        Ok(self.counters)
    }

    /// Sleeps in poll(2) until a socket has a frame or [`SLEEP_MS`] pass.
    fn sleep(&mut self) -> Result<(), XskError> {
        self.load.sleeps += 1;
        self.pollfds.clear();
        self.pollfds.extend(self.ports.iter().map(|p| libc::pollfd {
            fd: p.xsk.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        // SAFETY: `pollfds` is a valid array of `len` pollfd structs that
        // outlives the call; the fds stay open (the sockets are owned by
        // `self.ports`, which is not touched during the call).
        let r = unsafe {
            libc::poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                SLEEP_MS,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(XskError::Io(e));
            }
        }
        Ok(())
    }

    /// One round over every socket; returns the frames received.
    pub fn poll_once(&mut self) -> Result<usize, XskError> {
        let mut got = 0;
        for i in 0..self.ports.len() {
            got += self.batch(i)?;
        }
        for p in 0..self.ports.len() {
            self.flush(p);
            self.reap(p)?;
        }
        Ok(got)
    }

    /// Receives one batch on port `i` and runs it through the pipeline.
    fn batch(&mut self, i: usize) -> Result<usize, XskError> {
        self.rx.clear();
        let n = self.ports[i].xsk.rx(&mut self.rx, 0)?;
        if n == 0 {
            return Ok(0);
        }
        self.counters.batches += 1;
        self.counters.rx_frames += n as u64;
        let now = self.epoch.elapsed().as_nanos() as u64;
        let snap = self.handle.load_full();

        let (before, rest) = self.ports.split_at_mut(i);
        let (src, after) = rest.split_first_mut().expect("port i exists");
        let in_port = src.no;
        self.addrs.clear();
        self.addrs.extend(self.rx.iter().map(|&(a, _)| chunk_of(a)));
        for _ in 0..SPARES {
            match src.xsk.alloc() {
                Some(a) => self.addrs.push(a),
                None => break,
            }
        }
        let region = src.xsk.region();
        let mut chunks = src.xsk.chunks_mut(&self.addrs)?;
        let spare_chunks = chunks.split_off(n);
        let mut lost = Vec::new();
        let frames: Vec<Frame<'_>> = chunks
            .into_iter()
            .zip(&self.rx)
            .filter_map(|(c, &(addr, len))| {
                let head = (addr - chunk_of(addr)) as usize;
                let base = c.as_ptr();
                let f = Frame::new(c, head, len as usize);
                if f.is_none() {
                    lost.extend(region.addr_of(base));
                }
                f
            })
            .collect();
        let cap = n + spare_chunks.len();
        let mut io = BatchIo {
            spare: spare_chunks,
            tx: Vec::with_capacity(cap),
            free: Vec::with_capacity(cap),
        };
        process_batch(&snap, &mut self.ws, in_port, now, frames, &mut io);

        let mut same = Vec::with_capacity(io.tx.len());
        let mut recycle = std::mem::take(&mut self.recycle);
        recycle.clear();
        recycle.extend(lost);
        for (out, frame) in io.tx.drain(..) {
            let data_len = frame.len();
            let head = frame.head();
            if out == in_port {
                let base = region
                    .addr_of(frame.into_buf().as_ptr())
                    .expect("own chunk");
                same.push((base + head as u64, data_len as u32));
                continue;
            }
            // The socket to send by, if this worker has one on `out`.
            let dst = match self.tx_of.get(usize::from(out)).copied().flatten() {
                Some(d) if d < i => before.get_mut(d),
                Some(d) if d > i => after.get_mut(d - i - 1),
                _ => None,
            };
            let Some(dst) = dst else {
                self.counters.unknown_port += 1;
                recycle.extend(region.addr_of(frame.into_buf().as_ptr()));
                continue;
            };
            match dst.xsk.alloc() {
                Some(chunk) if COPY_HEAD + data_len <= xsk::CHUNK as usize => {
                    let addr = chunk + COPY_HEAD as u64;
                    let mut to = dst.xsk.frame_mut(addr, data_len as u32)?;
                    to.copy_from_slice(frame.data());
                    dst.pending.push((addr, data_len as u32));
                    self.counters.copies += 1;
                    self.counters.copy_bytes += data_len as u64;
                }
                Some(chunk) => {
                    dst.xsk.release(chunk)?;
                    self.counters.no_chunk += 1;
                }
                None => self.counters.no_chunk += 1,
            }
            recycle.extend(region.addr_of(frame.into_buf().as_ptr()));
        }
        for buf in io.free.drain(..) {
            recycle.extend(region.addr_of(buf.as_ptr()));
        }
        let unused: Vec<u64> = io
            .spare
            .drain(..)
            .filter_map(|b| region.addr_of(b.as_ptr()))
            .collect();
        drop(io);
        // The chunks are no longer borrowed: give them back.
        for a in unused {
            src.xsk.release(a)?;
        }
        src.pending.extend_from_slice(&same);
        self.counters.tx_in_place += same.len() as u64;
        src.recycle(&recycle)?;
        self.recycle = recycle;
        Ok(n)
    }

    /// Queues a port's pending frames, `TX_KICK` at a time (each
    /// `tx_send` kicks when the kernel asks); frames the ring cannot take
    /// are dropped (counted) and their chunks recycled.
    fn flush(&mut self, p: usize) {
        let port = &mut self.ports[p];
        if port.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut port.pending);
        let mut done = 0;
        while done < pending.len() {
            let end = (done + TX_KICK).min(pending.len());
            let want = end - done;
            match port.xsk.tx_send(&pending[done..end]) {
                Ok(k) => {
                    self.counters.tx_frames += k as u64;
                    done += k;
                    if k < want {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if done < pending.len() {
            self.counters.tx_ring_full += (pending.len() - done) as u64;
            let rest: Vec<u64> = pending[done..].iter().map(|d| chunk_of(d.0)).collect();
            let _ = port.recycle(&rest);
        }
        port.pending = pending;
        port.pending.clear();
    }

    /// Reaps a port's completions into its fill ring (or pool), kicking
    /// TX so copy mode keeps draining.
    fn reap(&mut self, p: usize) -> Result<(), XskError> {
        let port = &mut self.ports[p];
        port.xsk.kick()?;
        self.comp.clear();
        let n = port.xsk.complete(&mut self.comp);
        if n > 0 {
            self.counters.completions += n as u64;
            let bases: Vec<u64> = self.comp.iter().map(|&a| chunk_of(a)).collect();
            port.recycle(&bases)?;
        }
        Ok(())
    }

    /// Gives the ports back (to drop them after the XDP programs).
    pub fn into_ports(self) -> Vec<WorkerPort> {
        self.ports
    }
}
