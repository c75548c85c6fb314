//! Workers: AF_XDP sockets driven through the dataplane pipeline.
//!
//! A [`Worker`] owns one [`XskSet`]: a UMEM shared by the sockets of
//! every (interface, queue) it serves (VM-facing ports and the uplink),
//! and runs one poll loop:
//!
//! ```text
//! for each socket: rx (batch 64) ─► lend the chunks as Frames ─► process_batch
//!   ─► tx out of any port: the descriptor, in place (shared UMEM: no copy)
//!   ─► dropped frames and unused spares recycled
//! then: send (kick per 32 in copy mode), reap completions, refill fill rings
//! ```
//!
//! Invariants: every chunk a batch received or borrowed comes back (sent,
//! lent to a fill ring or pooled), on every path, a failing socket's
//! included; a chunk is lent to the
//! pipeline only through [`XskSet::chunks_mut`], so the I/O layer's
//! ownership checks hold. The loop allocates nothing once running: the
//! batch vectors are kept between batches (empty, see `relife` in
//! `batch.rs`). The
//! dataplane crate stays free of I/O: this crate is the only place the
//! two meet.
//!
//! A socket that fails (its interface deleted or moved to another
//! namespace: the kernel unbinds it and the next kick says `ENXIO`) is
//! that port's problem, not the worker's: the worker closes it, takes
//! back every chunk its rings held and its pending frames, tells the
//! control thread ([`SocketLost`]) and goes on with the other sockets.
//! The control thread binds it again when the interface returns.
//!
//! Guest ports with no XDP program reach the worker another way: their
//! TC program sends every frame it does not handle itself to one veth
//! pair, tagged with its ingress port; the pair's far end has a demux
//! socket ([`SocketKind::Demux`]), whose batches are cut into runs of one
//! port each, and the guest ports have transmit-only sockets
//! ([`SocketKind::TxOnly`]) that frames to them leave by.
//!
//! Here: the worker, its sockets' table and its loop (`run`, one round
//! in `poll_once`). `batch.rs` runs one batch through the pipeline,
//! `demux.rs` reads and strips the demux socket's tags,
//! `rings.rs` gives chunks back to the kernel (fill, TX, completions),
//! `sockets.rs` carries out the control thread's requests and closes
//! failed sockets, `report.rs` holds the counters a worker publishes.

mod batch;
mod capture;
mod demux;
mod report;
mod rings;
mod sockets;
mod vhost;

pub use capture::{Captured, Spec as CaptureSpec, Tap, DIR_IN, DIR_OUT};
pub use report::{Load, UmemUse, WorkerCounters, WorkerReport};
pub use sockets::{CmdError, SocketKind, SocketLost, SocketRole, WorkerCmd};

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use xvs_dataplane::events::LearnEvent;
use xvs_dataplane::pipeline::{PortCounters, WorkerState};
use xvs_dataplane::snapshot::SnapshotHandle;
use xvs_types::PortNo;

use crate::xsk::{self, XskError, XskSet};
use batch::{HeldFrame, Store};
use report::cycles;

/// Frames taken from an rx ring per batch.
pub const BATCH: usize = 64;
/// Frames queued per TX kick: copy mode sends a bounded number per
/// wakeup (16 in the kernel's copy path; 32 with need_wakeup re-kicks).
pub const TX_KICK: usize = 32;
/// Chunks a batch may take from the pool for flood replicas at most (on
/// demand, as the pipeline finds it needs them): a batch of broadcasts
/// into a bridge of 128 outputs. The batch vectors are sized for it, so
/// that a wide flood never grows them on the packet path.
pub const LEND_MAX: usize = BATCH * 128;
/// Frames a worker holds for lookups at most (in their UMEM chunks).
pub const HOLD_MAX: usize = 32;

/// One socket of a worker: the port it belongs to (its number in the
/// snapshot), its queue and its index in the worker's [`XskSet`].
#[derive(Debug)]
pub struct WorkerPort {
    pub no: PortNo,
    pub queue: u32,
    pub sock: usize,
    /// The binding this socket belongs to (one per interface attached,
    /// so two interfaces with one port number, an uplink being swapped,
    /// are told apart).
    pub key: u64,
    /// Chunks the socket should keep lent to its fill ring.
    pub fill_target: usize,
    /// What the socket is for.
    pub kind: SocketKind,
    /// Frames waiting for this socket's TX ring.
    pending: Vec<(u64, u32)>,
    /// Frames on the TX ring not yet completed.
    in_flight: usize,
    /// The socket's kernel counters as last read (`Worker::read_kernel`).
    kernel_seen: xsk::KernelCounters,
}

impl WorkerPort {
    pub fn new(no: PortNo, queue: u32, sock: usize, fill_target: usize) -> WorkerPort {
        WorkerPort {
            no,
            queue,
            sock,
            key: 0,
            fill_target,
            kind: SocketKind::Ordinary,
            pending: Vec::with_capacity(4 * BATCH),
            in_flight: 0,
            kernel_seen: xsk::KernelCounters::default(),
        }
    }

    /// The same socket, for `kind`'s purpose (a transmit-only one is
    /// never lent fill-ring chunks: its target becomes 0).
    pub fn with_kind(mut self, kind: SocketKind) -> WorkerPort {
        self.kind = kind;
        if kind == SocketKind::TxOnly {
            self.fill_target = 0;
        }
        self
    }

    /// Whether frames arrive on this socket (its rx ring is read, its
    /// fill ring lent chunks).
    pub fn receives(&self) -> bool {
        self.kind != SocketKind::TxOnly
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

/// A poll-mode worker over a set of sockets sharing one UMEM.
#[derive(Debug)]
pub struct Worker {
    set: XskSet,
    /// By socket slot of `set` (empty where no socket is).
    ports: Vec<Option<WorkerPort>>,
    /// vhost-user ports (guests' virtqueues), polled beside the sockets.
    vhost: Vec<Option<vhost::VhostSlot>>,
    /// Reconfiguration requests from the control thread.
    cmds: Option<Receiver<WorkerCmd>>,
    /// Where failed sockets are reported.
    lost: Option<Sender<SocketLost>>,
    /// By port number: the socket frames to that port leave by, when they
    /// did not arrive on that port.
    tx_of: Vec<Option<usize>>,
    handle: Arc<SnapshotHandle>,
    ws: WorkerState,
    pub counters: WorkerCounters,
    pub load: Load,
    /// When the current round's send phase began (cycles), for
    /// [`Load::send_cycles`].
    send_from: u64,
    epoch: Instant,
    /// Where a capture takes its copies (`xvsctl capture`).
    tap: Arc<Tap>,
    mode: PollMode,
    report: Option<Arc<Mutex<WorkerReport>>>,
    // Scratch, reused across batches.
    rx: Vec<(u64, u32)>,
    /// A demux batch's ingress ports, one per frame kept.
    demux_in: Vec<PortNo>,
    addrs: Vec<u64>,
    comp: Vec<u64>,
    pollfds: Vec<libc::pollfd>,
    store: Store,
    /// Frames held for lookups, and the snapshot generation they last ran
    /// against; `held_swap` is the second list a re-run fills.
    held: Vec<HeldFrame>,
    held_swap: Vec<HeldFrame>,
    held_gen: u64,
    /// Sockets the last bind request said the worker will serve.
    expect: usize,
    /// What the kernel dropped on each port's sockets, by port number,
    /// and on the demux sockets (the miss pair's, which name no port).
    kernel: Vec<xsk::KernelCounters>,
    kernel_demux: xsk::KernelCounters,
}

/// The chunk base of a UMEM address.
fn chunk_of(addr: u64) -> u64 {
    addr / xsk::CHUNK * xsk::CHUNK
}

impl Worker {
    /// A worker over the sockets of `set`, described by `ports` (one per
    /// socket, in socket order); the first socket of each port number is
    /// the one it transmits by. With no `ports`, the set's sockets are
    /// served once claimed ([`Worker::adopt_socket`]: a set adopted from
    /// a running daemon).
    pub fn new(
        id: usize,
        set: XskSet,
        ports: Vec<WorkerPort>,
        handle: Arc<SnapshotHandle>,
        learn_tx: Option<Sender<LearnEvent>>,
    ) -> Worker {
        assert!(
            ports.is_empty()
                || ports.iter().enumerate().all(|(i, p)| p.sock == i) && ports.len() == set.slots(),
            "one WorkerPort per socket, in order"
        );
        let mut ports: Vec<Option<WorkerPort>> = ports.into_iter().map(Some).collect();
        if ports.is_empty() {
            ports.resize_with(set.slots(), || None);
        }
        let store = Store {
            chunks: Vec::with_capacity(BATCH),
            spare: Vec::new(),
            free: Vec::with_capacity(BATCH + LEND_MAX),
            frames: Vec::with_capacity(BATCH),
            tx: Vec::with_capacity(BATCH + LEND_MAX),
            held: Vec::with_capacity(BATCH),
        };
        let mut w = Worker {
            set,
            ports,
            vhost: Vec::new(),
            cmds: None,
            lost: None,
            tx_of: Vec::new(),
            handle,
            ws: WorkerState::new(id, learn_tx),
            counters: WorkerCounters::default(),
            load: Load::default(),
            send_from: 0,
            epoch: Instant::now(),
            tap: Arc::default(),
            mode: PollMode::default(),
            report: None,
            rx: Vec::with_capacity(BATCH),
            demux_in: Vec::with_capacity(BATCH),
            addrs: Vec::with_capacity(4 * BATCH),
            comp: Vec::with_capacity(4 * BATCH),
            pollfds: Vec::new(),
            store,
            held: Vec::with_capacity(HOLD_MAX),
            held_swap: Vec::with_capacity(HOLD_MAX),
            held_gen: 0,
            expect: 0,
            kernel: Vec::new(),
            kernel_demux: xsk::KernelCounters::default(),
        };
        w.rebuild_tx_of();
        w
    }

    /// Reports lookup misses on `tx`.
    pub fn with_upcalls(mut self, tx: Sender<xvs_dataplane::events::Upcall>) -> Worker {
        self.ws.set_upcalls(tx);
        self
    }

    /// Takes reconfiguration requests from `cmds` between rounds.
    pub fn with_commands(mut self, cmds: Receiver<WorkerCmd>) -> Worker {
        self.cmds = Some(cmds);
        self
    }

    /// Reports sockets closed on failure on `lost`.
    pub fn with_lost(mut self, lost: Sender<SocketLost>) -> Worker {
        self.lost = Some(lost);
        self
    }

    /// Offers the flows the fast path may take over on `tx`
    /// ([`WorkerState::set_offers`]).
    pub fn with_offers(mut self, tx: Sender<xvs_dataplane::events::Offer>) -> Worker {
        self.ws.set_offers(tx);
        self
    }

    /// A demux socket is no port's way out: what it receives came from
    /// the ports its tags name, and goes back out of theirs.
    fn rebuild_tx_of(&mut self) {
        self.tx_of.clear();
        for (i, p) in self.ports.iter().enumerate() {
            let Some(p) = p.as_ref().filter(|p| p.kind != SocketKind::Demux) else {
                continue;
            };
            let n = usize::from(p.no);
            if self.tx_of.len() <= n {
                self.tx_of.resize(n + 1, None);
            }
            self.tx_of[n].get_or_insert(i);
        }
        for (i, v) in self.vhost.iter().enumerate() {
            let Some(v) = v else { continue };
            let n = usize::from(v.no);
            if self.tx_of.len() <= n {
                self.tx_of.resize(n + 1, None);
            }
            self.tx_of[n].get_or_insert(vhost::VHOST_BASE + i);
        }
    }

    /// The bound socket in slot `s`; only called for slots known bound.
    fn port(&mut self, s: usize) -> &mut WorkerPort {
        self.ports[s].as_mut().expect("slot holds a socket")
    }

    /// Sets how the worker waits when idle.
    pub fn with_mode(mut self, mode: PollMode) -> Worker {
        self.mode = mode;
        self
    }

    /// Uses `epoch` as time zero for policers (the control thread's).
    /// Captures into `tap` (the control thread starts and drains it).
    pub fn with_tap(mut self, tap: Arc<Tap>) -> Worker {
        self.tap = tap;
        self
    }

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

    /// The sockets this worker serves.
    pub fn ports(&self) -> impl Iterator<Item = &WorkerPort> {
        self.ports.iter().flatten()
    }

    /// The sockets and their UMEM.
    pub fn set(&self) -> &XskSet {
        &self.set
    }

    /// Runs until `stop` is set; returns the counters.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<WorkerCounters, XskError> {
        let mut last = Instant::now();
        let mut idle_since: Option<Instant> = None;
        let mut last_report = last;
        while !stop.load(Ordering::Relaxed) {
            self.commands();
            let c0 = cycles();
            let got = self.poll_once()?;
            let c1 = cycles();
            let now = Instant::now();
            let spent = now.duration_since(last).as_nanos() as u64;
            last = now;
            if got > 0 {
                self.load.busy_cycles += c1.wrapping_sub(c0);
                self.load.send_cycles += c1.wrapping_sub(self.send_from);
                self.load.busy_ns += spent;
                idle_since = None;
            } else {
                self.load.idle_ns += spent;
                self.load.empty_polls += 1;
                // Idle: fill rings all the way (busy rounds top up a batch
                // at a time), so an idle worker's chunks are where they
                // were after binding, whatever the traffic before.
                self.top_up_all(1);
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
                self.read_kernel();
                self.publish();
            }
        }
        self.read_kernel();
        self.publish();
        Ok(self.counters)
    }

    /// Sleeps in poll(2) until a socket has a frame or [`SLEEP_MS`] pass.
    fn sleep(&mut self) -> Result<(), XskError> {
        // Guests are asked to kick only now; one that queued a frame in
        // the meantime is polled instead.
        let mut queued = false;
        for v in self.vhost.iter_mut().flatten() {
            queued |= v.arm();
        }
        if queued {
            return Ok(());
        }
        self.load.sleeps += 1;
        self.pollfds.clear();
        // Transmit-only sockets never have a frame to wait for.
        for s in (0..self.ports.len())
            .filter(|&s| self.ports[s].as_ref().is_some_and(WorkerPort::receives))
        {
            self.pollfds.push(libc::pollfd {
                fd: self.set.fd(s).as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // A guest kicking a queue wakes the worker as a frame on a socket does.
        for fd in self
            .vhost
            .iter()
            .flatten()
            .flat_map(vhost::VhostSlot::kick_fds)
        {
            self.pollfds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: `pollfds` is a valid array of `len` pollfd structs that
        // outlives the call; the fds stay open (the sockets are owned by
        // `self.set`, which is not touched during the call).
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
        for v in self.vhost.iter_mut().flatten() {
            v.take_kicks();
            v.disarm();
        }
        Ok(())
    }

    /// One round over every socket; returns the frames received. A
    /// socket that fails is closed (`lose`), the round goes on.
    pub fn poll_once(&mut self) -> Result<usize, XskError> {
        let mut got = 0;
        for s in 0..self.ports.len() {
            if self.ports[s].as_ref().is_some_and(WorkerPort::receives) {
                match self.batch(s) {
                    Ok(n) => got += n,
                    Err(e) => self.lose(s, e),
                }
            }
        }
        for i in 0..self.vhost.len() {
            // A guest's queues failing is the guest's problem (counted in
            // its port's counters); a UMEM error is the worker's.
            got += self.vhost_batch(i)?;
        }
        self.run_held()?;
        self.send_from = cycles();
        for i in 0..self.vhost.len() {
            self.vhost_flush(i)?;
        }
        for s in 0..self.ports.len() {
            if self.ports[s].is_none() {
                continue;
            }
            let r = self
                .flush(s)
                .and_then(|()| self.reap(s))
                .and_then(|()| self.top_up(s, BATCH, got > 0));
            if let Err(e) = r {
                self.lose(s, e);
            }
        }
        Ok(got)
    }

    /// Tops every fill ring up when it is at least `min` short.
    fn top_up_all(&mut self, min: usize) {
        for s in 0..self.ports.len() {
            if self.ports[s].is_some() {
                if let Err(e) = self.top_up(s, min, false) {
                    self.lose(s, e);
                }
            }
        }
    }

    /// Gives the sockets back (to drop them before the XDP programs).
    pub fn into_set(self) -> XskSet {
        self.set
    }
}
