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
//! batch vectors are kept between batches (empty, see `relife`). The
//! dataplane crate stays free of I/O: this crate is the only place the
//! two meet.
//!
//! A socket that fails (its interface deleted or moved to another
//! namespace: the kernel unbinds it and the next kick says `ENXIO`) is
//! that port's problem, not the worker's: the worker closes it, takes
//! back every chunk its rings held and its pending frames, tells the
//! control thread ([`SocketLost`]) and goes on with the other sockets.
//! The control thread binds it again when the interface returns.

use std::mem::ManuallyDrop;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::xsk::{self, XskError, XskSet};
use crossbeam_channel::{Receiver, Sender};
use xvs_dataplane::events::LearnEvent;
use xvs_dataplane::frame::Frame;
use xvs_dataplane::pipeline::{
    process_batch, process_held, BatchIo, HeldMeta, PortCounters, SpareSource, TxFrame, WorkerState,
};
use xvs_dataplane::snapshot::SnapshotHandle;
use xvs_dataplane::stats::DropCounters;
use xvs_types::PortNo;

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

/// A frame held for a lookup: its chunk, where in it the frame is, and
/// until when it may wait.
#[derive(Debug, Clone, Copy)]
struct HeldFrame {
    chunk: u64,
    head: usize,
    len: usize,
    meta: HeldMeta,
    deadline: u64,
}

/// The pipeline's on-demand spares: chunks from the worker's pool.
struct Lend<'a>(xsk::PoolLender<'a>);

impl<'a> SpareSource<'a> for Lend<'a> {
    fn take(&mut self) -> Option<&'a mut [u8]> {
        self.0.take()
    }
}

/// Counters of one worker (I/O events; per-port pipeline counters live
/// in its [`WorkerState`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerCounters {
    pub batches: u64,
    pub rx_frames: u64,
    /// Frames queued on a TX ring, all by descriptor (no copy).
    pub tx_frames: u64,
    /// Frames sent out of another port than they arrived on.
    pub tx_other_port: u64,
    /// Frames dropped because a TX ring was full.
    pub tx_ring_full: u64,
    /// Frames the pipeline sent to a port this worker has no socket on.
    pub unknown_port: u64,
    /// Chunks whose transmission completed.
    pub completions: u64,
    /// Rounds that moved frames and left a fill ring short of its target
    /// because the pool was empty or down to its reserve for replicas.
    pub fill_short: u64,
    /// Sockets closed because they failed ([`SocketLost`]).
    pub sockets_lost: u64,
}

/// Where a worker's UMEM chunks are, as of its last report (between
/// rounds, when no batch holds any): `free + held + kernel == chunks`
/// unless a chunk was lost, and `kernel == fill + tx`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UmemUse {
    pub chunks: usize,
    /// In the pool.
    pub free: usize,
    /// Frames held for lookups.
    pub held: usize,
    /// Owned by the kernel (the I/O layer's own count).
    pub kernel: usize,
    /// Lent to fill rings, by the sockets' counts.
    pub fill: usize,
    /// On TX rings, not yet completed, by the sockets' counts.
    pub tx: usize,
}

/// A socket the worker closed because it failed; the control thread
/// binds the port again when it can.
#[derive(Debug, Clone)]
pub struct SocketLost {
    pub worker: usize,
    /// The binding it belonged to ([`WorkerCmd::Add`]'s `key`).
    pub key: u64,
    pub no: PortNo,
    pub queue: u32,
    pub error: String,
}

/// Why a worker could not carry out a [`WorkerCmd`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdError {
    /// The queue still has a socket being released: ask again shortly.
    pub busy: bool,
    pub reason: String,
}

impl std::fmt::Display for CmdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl From<XskError> for CmdError {
    fn from(e: XskError) -> Self {
        CmdError {
            busy: matches!(e, XskError::Busy { .. }),
            reason: e.to_string(),
        }
    }
}

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
    /// Frames waiting for this socket's TX ring.
    pending: Vec<(u64, u32)>,
    /// Frames on the TX ring not yet completed.
    in_flight: usize,
}

impl WorkerPort {
    pub fn new(no: PortNo, queue: u32, sock: usize, fill_target: usize) -> WorkerPort {
        WorkerPort {
            no,
            queue,
            sock,
            key: 0,
            fill_target,
            pending: Vec::with_capacity(4 * BATCH),
            in_flight: 0,
        }
    }
}

/// Reuses an empty vector's allocation for the same element type with
/// other lifetimes: the batch vectors hold borrows of UMEM chunks that
/// must end with each batch, while their allocations should live on.
///
/// # Safety
/// `A` and `B` must be the same type except for lifetimes.
unsafe fn relife<A, B>(mut v: Vec<A>) -> Vec<B> {
    const { assert!(size_of::<A>() == size_of::<B>() && align_of::<A>() == align_of::<B>()) };
    v.clear();
    let mut v = ManuallyDrop::new(v);
    // SAFETY: the vector is empty, so no value is reinterpreted; the
    // allocation was made for `A`, which has `B`'s layout (the caller
    // guarantees the same type, and the assertion checks the layout),
    // and `v` is never used or dropped again.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<B>(), 0, v.capacity()) }
}

/// How many frames ahead of the one being processed are prefetched.
const PREFETCH_AHEAD: usize = 4;

/// Bytes of a frame prefetched at most (jumbo frames: the first 4 KiB).
const PREFETCH_MAX_BYTES: usize = 4096;

/// Asks the CPU to bring a frame's first bytes and the line in front of
/// it (where push writes the outer header) into the cache. The kernel
/// wrote the frame into the UMEM from another core (in copy mode, in the
/// sender's context), so without this the first read of every frame is a
/// cache miss, taken one frame after the other; measured with perf on a
/// saturated 64 B encap run, 87% of `process_frame`'s samples sat on that
/// first load.
#[inline]
fn prefetch_frame(f: &Frame<'_>) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
        let p = f.data().as_ptr();
        // The first 128 bytes hold the outer and inner headers; unless the
        // frame starts on a line (a received tunnel packet does not: the
        // headroom aligns the encapsulated start instead) they can span
        // three lines, so the line of the last of them is asked for too
        // (only if it is part of the frame). Measured: without it, 64 B
        // decap cost about 220 more cycles per packet.
        let last = f.len().clamp(1, 128) as isize - 1;
        for off in [-64isize, 0, 64, last] {
            // SAFETY: prefetch is only a hint: it never faults, reads
            // nothing the program sees and is valid on any address (the
            // pointer is not dereferenced; wrapping_offset keeps its
            // computation defined).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_offset(off).cast()) };
        }
        // The rest of the frame into L2: the kernel's copy-mode transmit
        // copies the whole frame on this core, and reading it cold from
        // the core that received it made that copy a fifth of a 1400 B
        // packet's cost.
        let len = f.len().min(PREFETCH_MAX_BYTES) as isize;
        let mut off = 128;
        while off < len {
            // SAFETY: as above.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.wrapping_offset(off).cast()) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = f;
}

/// Hands a batch's frames to the pipeline in order, prefetching the
/// frame [`PREFETCH_AHEAD`] places ahead as each one is taken, so its
/// cache misses overlap the work on the frames before it.
struct Prefetching<'d, 'a> {
    inner: std::vec::Drain<'d, Frame<'a>>,
}

impl<'a> Iterator for Prefetching<'_, 'a> {
    type Item = Frame<'a>;

    #[inline]
    fn next(&mut self) -> Option<Frame<'a>> {
        if let Some(f) = self.inner.as_slice().get(PREFETCH_AHEAD) {
            prefetch_frame(f);
        }
        self.inner.next()
    }
}

/// A reconfiguration request from the control thread, answered on
/// `reply` once done.
#[derive(Debug)]
pub enum WorkerCmd {
    /// Bind a socket on `queue` of the interface `reg` registers for, as
    /// port `no`, part of binding `key`.
    Add {
        no: PortNo,
        queue: u32,
        key: u64,
        reg: xvs_bpf::XskRegistrar,
        /// Sockets the worker will serve once the change this is part of
        /// is done: fill rings are sized for them from the first bind,
        /// since chunks lent to a fill ring cannot be taken back.
        sockets: usize,
        reply: Sender<Result<(), CmdError>>,
    },
    /// Close every socket of binding `key` (none left is fine: a socket
    /// that failed is already closed).
    Remove {
        key: u64,
        reply: Sender<Result<(), CmdError>>,
    },
}

/// The batch vectors, kept empty between batches.
#[derive(Debug, Default)]
struct Store {
    chunks: Vec<&'static mut [u8]>,
    spare: Vec<&'static mut [u8]>,
    free: Vec<&'static mut [u8]>,
    frames: Vec<Frame<'static>>,
    tx: Vec<TxFrame<'static>>,
    held: Vec<(HeldMeta, Frame<'static>)>,
}

/// The vectors of one batch, borrowing chunks for `'a`.
struct Batch<'a> {
    chunks: Vec<&'a mut [u8]>,
    frames: Vec<Frame<'a>>,
    io: BatchIo<'a>,
}

impl Store {
    /// The stored allocations, empty, typed for a batch.
    fn lend<'a>(&mut self) -> Batch<'a> {
        use std::mem::take;
        // SAFETY: every vector becomes the same type with `'a` in place
        // of `'static`.
        unsafe {
            Batch {
                chunks: relife(take(&mut self.chunks)),
                frames: relife(take(&mut self.frames)),
                io: BatchIo {
                    spare: relife(take(&mut self.spare)),
                    more: None,
                    tx: relife(take(&mut self.tx)),
                    free: relife(take(&mut self.free)),
                    held: relife(take(&mut self.held)),
                },
            }
        }
    }

    /// Takes the allocations back once the batch is done (`relife`
    /// empties them, so no borrow of the batch survives).
    fn keep(&mut self, b: Batch<'_>) {
        // SAFETY: every vector becomes the same type with `'static` in
        // place of the batch's lifetime, and is emptied first.
        unsafe {
            self.chunks = relife(b.chunks);
            self.frames = relife(b.frames);
            self.spare = relife(b.io.spare);
            self.tx = relife(b.io.tx);
            self.free = relife(b.io.free);
            self.held = relife(b.io.held);
        }
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
    /// CPU cycles (time-stamp counter) in rounds that moved frames: with
    /// the frames received, the cycles per packet of
    /// `ovs-appctl dpif-netdev/pmd-stats-show`.
    pub busy_cycles: u64,
    /// The part of `busy_cycles` spent handing frames to the kernel:
    /// queuing them on TX rings and kicking (in copy mode the kernel's
    /// whole transmit, skb and copy included, runs inside the kick),
    /// reaping completions, refilling fill rings. The rest is our own
    /// receive and pipeline; on veth the send part is most of a packet's
    /// cost and the same for any AF_XDP switch.
    pub send_cycles: u64,
}

/// The CPU's time-stamp counter (0 where there is none).
#[inline]
fn cycles() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions; every x86_64 CPU has it.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// What a worker publishes for the control thread, refreshed every
/// `REPORT_EVERY` and when it stops.
#[derive(Debug, Default, Clone)]
pub struct WorkerReport {
    pub id: usize,
    pub counters: WorkerCounters,
    pub load: Load,
    /// Pipeline counters per port number.
    pub ports: Vec<PortCounters>,
    pub drops: DropCounters,
    /// The pipeline's other counters ([`WorkerState::events`]).
    pub events: Vec<(&'static str, u64)>,
    pub umem: UmemUse,
}

/// A poll-mode worker over a set of sockets sharing one UMEM.
#[derive(Debug)]
pub struct Worker {
    set: XskSet,
    /// By socket slot of `set` (empty where no socket is).
    ports: Vec<Option<WorkerPort>>,
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
    mode: PollMode,
    report: Option<Arc<Mutex<WorkerReport>>>,
    // Scratch, reused across batches.
    rx: Vec<(u64, u32)>,
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
}

/// The chunk base of a UMEM address.
fn chunk_of(addr: u64) -> u64 {
    addr / xsk::CHUNK * xsk::CHUNK
}

impl Worker {
    /// A worker over the sockets of `set`, described by `ports` (one per
    /// socket, in socket order); the first socket of each port number is
    /// the one it transmits by.
    pub fn new(
        id: usize,
        set: XskSet,
        ports: Vec<WorkerPort>,
        handle: Arc<SnapshotHandle>,
        learn_tx: Option<Sender<LearnEvent>>,
    ) -> Worker {
        assert!(
            ports.iter().enumerate().all(|(i, p)| p.sock == i) && ports.len() == set.slots(),
            "one WorkerPort per socket, in order"
        );
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
            ports: ports.into_iter().map(Some).collect(),
            cmds: None,
            lost: None,
            tx_of: Vec::new(),
            handle,
            ws: WorkerState::new(id, learn_tx),
            counters: WorkerCounters::default(),
            load: Load::default(),
            send_from: 0,
            epoch: Instant::now(),
            mode: PollMode::default(),
            report: None,
            rx: Vec::with_capacity(BATCH),
            addrs: Vec::with_capacity(4 * BATCH),
            comp: Vec::with_capacity(4 * BATCH),
            pollfds: Vec::new(),
            store,
            held: Vec::with_capacity(HOLD_MAX),
            held_swap: Vec::with_capacity(HOLD_MAX),
            held_gen: 0,
            expect: 0,
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

    fn rebuild_tx_of(&mut self) {
        self.tx_of.clear();
        for (i, p) in self.ports.iter().enumerate() {
            let Some(p) = p else { continue };
            let n = usize::from(p.no);
            if self.tx_of.len() <= n {
                self.tx_of.resize(n + 1, None);
            }
            self.tx_of[n].get_or_insert(i);
        }
    }

    /// The bound socket in slot `s`; only called for slots known bound.
    fn port(&mut self, s: usize) -> &mut WorkerPort {
        self.ports[s].as_mut().expect("slot holds a socket")
    }

    /// Carries out pending reconfiguration requests (off the packet path:
    /// between rounds, rarely).
    fn commands(&mut self) {
        let Some(rx) = &self.cmds else { return };
        let Ok(cmd) = rx.try_recv() else { return };
        match cmd {
            WorkerCmd::Add {
                no,
                queue,
                key,
                reg,
                sockets,
                reply,
            } => {
                self.expect = sockets;
                let r = self.add_socket(no, queue, reg).map(|s| {
                    self.port(s).key = key;
                });
                let _ = reply.send(r.map_err(CmdError::from));
            }
            WorkerCmd::Remove { key, reply } => {
                let r = self.remove_binding(key);
                let _ = reply.send(r.map_err(CmdError::from));
            }
        }
    }

    /// Binds a socket for port `no` on `queue` of `reg`'s interface;
    /// returns its slot.
    pub fn add_socket(
        &mut self,
        no: PortNo,
        queue: u32,
        reg: xvs_bpf::XskRegistrar,
    ) -> Result<usize, XskError> {
        let s = self.set.bind_with(queue, reg)?;
        if self.ports.len() <= s {
            self.ports.resize_with(s + 1, || None);
        }
        let mut p = WorkerPort::new(no, queue, s, 0);
        // Room for what one round can queue for the port, replicas
        // included, so that a flood never grows it on the packet path.
        p.pending.reserve_exact(self.set.ring_size());
        self.ports[s] = Some(p);
        self.rebalance();
        Ok(s)
    }

    /// Closes every socket of port `no`; frames still queued for it are
    /// dropped (the snapshot no longer names the port by then).
    pub fn remove_port(&mut self, no: PortNo) -> Result<(), XskError> {
        self.remove_where(|p| p.no == no)
    }

    /// Closes every socket of binding `key`.
    pub fn remove_binding(&mut self, key: u64) -> Result<(), XskError> {
        self.remove_where(|p| p.key == key)
    }

    fn remove_where(&mut self, f: impl Fn(&WorkerPort) -> bool) -> Result<(), XskError> {
        let mut first_err = None;
        for s in 0..self.ports.len() {
            if self.ports[s].as_ref().is_some_and(&f) {
                if let Err(e) = self.close(s) {
                    first_err.get_or_insert(e);
                }
            }
        }
        self.rebalance();
        first_err.map_or(Ok(()), Err)
    }

    /// Closes socket `s`: its pending frames go back to the pool, the
    /// chunks its rings held are taken back (the I/O layer's `remove`).
    /// Every chunk comes back even when unregistering it fails.
    fn close(&mut self, s: usize) -> Result<(), XskError> {
        let Some(p) = self.ports[s].take() else {
            return Ok(());
        };
        for &(a, _) in &p.pending {
            // A frame the failed `tx_send` already queued is the
            // kernel's: `remove` takes it back, not this.
            let _ = self.set.release(chunk_of(a));
        }
        self.set.remove(s).map(|_| ())
    }

    /// Socket `s` failed: closes it (see [`Self::close`]) and says so;
    /// the worker goes on with the others.
    fn lose(&mut self, s: usize, e: XskError) {
        let Some((no, queue, key)) = self.ports[s].as_ref().map(|p| (p.no, p.queue, p.key)) else {
            return;
        };
        self.counters.sockets_lost += 1;
        // The interface is usually gone: unregistering may fail too.
        let _ = self.close(s);
        self.rebalance();
        if let Some(tx) = &self.lost {
            let _ = tx.try_send(SocketLost {
                worker: self.ws.id,
                key,
                no,
                queue,
                error: e.to_string(),
            });
        }
    }

    /// Shares the UMEM's chunks out between the fill rings: half for
    /// receiving, the rest for frames in flight and replicas. Sized for
    /// the sockets the worker was told it will have: a fill ring keeps
    /// what it was lent until frames arrive on it, so targets computed
    /// one socket at a time (2,048 each for the first four, then less)
    /// left an idle worker with nothing for replicas from its 12th
    /// socket on.
    fn rebalance(&mut self) {
        self.rebuild_tx_of();
        let n = self.set.sockets().max(self.expect).max(1);
        let per = (self.set.chunks() / 2 / n).clamp(BATCH, self.set.ring_size());
        for p in self.ports.iter_mut().flatten() {
            p.fill_target = per;
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

    /// The sockets this worker serves.
    pub fn ports(&self) -> impl Iterator<Item = &WorkerPort> {
        self.ports.iter().flatten()
    }

    /// The sockets and their UMEM.
    pub fn set(&self) -> &XskSet {
        &self.set
    }

    /// What this worker has done so far.
    pub fn report(&self) -> WorkerReport {
        WorkerReport {
            id: self.ws.id,
            counters: self.counters,
            load: self.load,
            ports: self.ws.ports.clone(),
            drops: self.ws.drops.clone(),
            events: self.ws.events(),
            umem: self.umem_use(),
        }
    }

    /// Where the UMEM's chunks are (between rounds).
    pub fn umem_use(&self) -> UmemUse {
        let slots = 0..self.ports.len();
        UmemUse {
            chunks: self.set.chunks(),
            free: self.set.pool_len(),
            held: self.held.len(),
            kernel: self.set.kernel_chunks(),
            fill: slots.clone().map(|s| self.set.in_fill(s)).sum(),
            tx: self.ports().map(|p| p.in_flight).sum(),
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
        for s in (0..self.set.slots()).filter(|&s| self.set.is_bound(s)) {
            self.pollfds.push(libc::pollfd {
                fd: self.set.fd(s).as_raw_fd(),
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
        Ok(())
    }

    /// One round over every socket; returns the frames received. A
    /// socket that fails is closed (`lose`), the round goes on.
    pub fn poll_once(&mut self) -> Result<usize, XskError> {
        let mut got = 0;
        for s in 0..self.ports.len() {
            if self.ports[s].is_some() {
                match self.batch(s) {
                    Ok(n) => got += n,
                    Err(e) => self.lose(s, e),
                }
            }
        }
        self.run_held()?;
        self.send_from = cycles();
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

    /// Receives one batch on socket `s` and runs it through the pipeline.
    fn batch(&mut self, s: usize) -> Result<usize, XskError> {
        self.rx.clear();
        let n = self.set.rx(s, &mut self.rx, BATCH, 0)?;
        if n == 0 {
            return Ok(0);
        }
        self.counters.batches += 1;
        self.counters.rx_frames += n as u64;
        let now = self.epoch.elapsed().as_nanos() as u64;
        // A guard, not a clone: no shared reference count touched per batch.
        let snap = self.handle.load();
        let in_port = self.port(s).no;

        self.addrs.clear();
        self.addrs.extend(self.rx.iter().map(|&(a, _)| chunk_of(a)));
        // `addrs[..lent]`: the received chunks lent to this batch.
        let lent = self.addrs.len();
        let region = self.set.region();
        let mut b = self.store.lend();
        // Replicas take chunks from the pool as the pipeline needs them;
        // those come back through `tx` or `free` like the received ones.
        let mut spares = match self
            .set
            .chunks_mut_lending(&self.addrs, &mut b.chunks, LEND_MAX)
        {
            Ok(l) => Lend(l),
            Err(e) => {
                // Not expected (the addresses came from rx); give the
                // received chunks back to the fill ring.
                let _ = self.set.fill(s, &self.addrs[..n]);
                return Err(e);
            }
        };
        let Batch { chunks, frames, io } = &mut b;
        io.more = Some(&mut spares);
        // Chunks that cannot hold their frame (never, from the kernel)
        // go back through `free`.
        for (c, &(addr, len)) in chunks.drain(..).zip(&self.rx) {
            let head = (addr - chunk_of(addr)) as usize;
            if head + len as usize <= c.len() {
                frames.extend(Frame::new(c, head, len as usize));
            } else {
                io.free.push(c);
            }
        }
        for f in frames.iter().take(PREFETCH_AHEAD) {
            prefetch_frame(f);
        }
        let batch = Prefetching {
            inner: frames.drain(..),
        };
        process_batch(&snap, &mut self.ws, in_port, now, batch, io);

        for TxFrame { frame, port: out } in io.tx.drain(..) {
            let len = frame.len() as u32;
            let head = frame.head() as u64;
            let Some(base) = region.addr_of(frame.into_buf().as_ptr()) else {
                continue;
            };
            let d = if out == in_port {
                Some(s)
            } else {
                self.counters.tx_other_port += 1;
                self.tx_of.get(usize::from(out)).copied().flatten()
            };
            match d.and_then(|d| self.ports[d].as_mut()) {
                Some(p) if p.pending.len() < p.pending.capacity() => {
                    p.pending.push((base + head, len))
                }
                Some(_) => {
                    // More than its TX ring holds, queued in one round.
                    self.counters.tx_ring_full += 1;
                    self.addrs.push(base);
                }
                None => {
                    self.counters.unknown_port += 1;
                    self.addrs.push(base);
                }
            }
        }
        for (meta, frame) in io.held.drain(..) {
            let (head, len) = (frame.head(), frame.len());
            let Some(chunk) = region.addr_of(frame.into_buf().as_ptr()) else {
                continue;
            };
            if self.held.len() < HOLD_MAX {
                self.held.push(HeldFrame {
                    chunk,
                    head,
                    len,
                    meta,
                    deadline: now.saturating_add(meta.hold_ns),
                });
            } else {
                self.ws.hold_full += 1;
                self.addrs.push(chunk);
            }
        }
        // From here on `addrs` holds only chunks to recycle: dropped
        // frames.
        self.addrs.drain(..lent);
        io.more = None;
        for buf in io.free.drain(..).chain(io.spare.drain(..)) {
            self.addrs.extend(region.addr_of(buf.as_ptr()));
        }
        // The batch's borrows end here; keep the allocations.
        self.store.keep(b);
        self.recycle(s)?;
        Ok(n)
    }

    /// Runs the held frames again once a newer snapshot is out (its
    /// answer may be in it), and drops those past their deadline
    /// (`hold_expired`). Nothing to do, and no clock read, when none are
    /// held.
    fn run_held(&mut self) -> Result<(), XskError> {
        if self.held.is_empty() {
            return Ok(());
        }
        let now = self.epoch.elapsed().as_nanos() as u64;
        let snap = self.handle.load();
        let fresh = snap.generation != self.held_gen;
        if !fresh && self.held.iter().all(|h| h.deadline > now) {
            return Ok(());
        }
        self.held_gen = snap.generation;
        let mut list = std::mem::replace(&mut self.held, std::mem::take(&mut self.held_swap));
        let region = self.set.region();
        // Chunks to give back once the batch's borrows end.
        self.comp.clear();
        for h in list.drain(..) {
            if now >= h.deadline {
                self.ws.hold_expired += 1;
                self.comp.push(h.chunk);
                continue;
            }
            if !fresh {
                self.held.push(h);
                continue;
            }
            self.addrs.clear();
            self.addrs.push(h.chunk);
            let mut b = self.store.lend();
            let Ok(l) = self
                .set
                .chunks_mut_lending(&self.addrs, &mut b.chunks, LEND_MAX)
            else {
                // Not expected: the chunk was ours. Keep it out of use.
                self.store.keep(b);
                continue;
            };
            let mut spares = Lend(l);
            let Batch { chunks, io, .. } = &mut b;
            io.more = Some(&mut spares);
            let Some(frame) = chunks.pop().and_then(|c| Frame::new(c, h.head, h.len)) else {
                self.comp.push(h.chunk);
                self.store.keep(b);
                continue;
            };
            process_held(&snap, &mut self.ws, h.meta, now, frame, io);
            for TxFrame { frame, port: out } in io.tx.drain(..) {
                let len = frame.len() as u32;
                let head = frame.head() as u64;
                let Some(base) = region.addr_of(frame.into_buf().as_ptr()) else {
                    continue;
                };
                self.counters.tx_other_port += 1;
                let d = self.tx_of.get(usize::from(out)).copied().flatten();
                match d.and_then(|d| self.ports[d].as_mut()) {
                    Some(p) if p.pending.len() < p.pending.capacity() => {
                        p.pending.push((base + head, len))
                    }
                    Some(_) => {
                        self.counters.tx_ring_full += 1;
                        self.comp.push(base);
                    }
                    None => {
                        self.counters.unknown_port += 1;
                        self.comp.push(base);
                    }
                }
            }
            for (meta, frame) in io.held.drain(..) {
                let (head, len) = (frame.head(), frame.len());
                if let Some(chunk) = region.addr_of(frame.into_buf().as_ptr()) {
                    self.held.push(HeldFrame {
                        chunk,
                        head,
                        len,
                        meta,
                        deadline: h.deadline,
                    });
                }
            }
            io.more = None;
            for buf in io.free.drain(..).chain(io.spare.drain(..)) {
                self.comp.extend(region.addr_of(buf.as_ptr()));
            }
            self.store.keep(b);
        }
        self.held_swap = list;
        self.addrs.clear();
        for i in 0..self.comp.len() {
            self.set.release(self.comp[i])?;
        }
        self.comp.clear();
        Ok(())
    }

    /// Chunks the fill rings never get: a batch's flood replicas come
    /// from them, whatever the rings hold (after a change that added
    /// sockets, rings lent more under the old targets keep it until they
    /// receive).
    fn reserve(&self) -> usize {
        self.set.chunks() / 4
    }

    /// Of `in_hand` chunks more than the pool's, how many socket `s`'s
    /// fill ring may take: what keeps the reserve, but at least enough
    /// to hold a batch. A socket bound after others took their fill under
    /// older targets would otherwise get nothing and never receive; the
    /// daemon refuses configs where a batch per socket does not fit in
    /// half the UMEM, so the reserve yields at most that much.
    fn lendable(&self, s: usize, in_hand: usize) -> usize {
        let floor = BATCH.saturating_sub(self.set.in_fill(s));
        (self.set.pool_len() + in_hand)
            .saturating_sub(self.reserve())
            .max(floor)
    }

    /// Gives the chunks in `addrs` back: to socket `s`'s fill ring while
    /// it is below its target and the pool keeps its reserve, to the
    /// pool otherwise.
    fn recycle(&mut self, s: usize) -> Result<(), XskError> {
        let want = self.port(s).fill_target.saturating_sub(self.set.in_fill(s));
        let n = want
            .min(self.addrs.len())
            .min(self.lendable(s, self.addrs.len()));
        // A fill that fails lends nothing: every chunk goes to the pool.
        let (lent, failed) = match self.set.fill(s, &self.addrs[..n]) {
            Ok(lent) => (lent, None),
            Err(e) => (0, Some(e)),
        };
        let mut first_err = failed;
        for i in lent..self.addrs.len() {
            if let Err(e) = self.set.release(self.addrs[i]) {
                first_err.get_or_insert(e);
            }
        }
        self.addrs.clear();
        first_err.map_or(Ok(()), Err)
    }

    /// Tops socket `s`'s fill ring up from the pool when it is at least
    /// `min` short (a socket that only
    /// receives gets its chunks back through other sockets' completions,
    /// which land in the pool); a ring left short counts as `fill_short`
    /// when `busy`.
    fn top_up(&mut self, s: usize, min: usize, busy: bool) -> Result<(), XskError> {
        let want = self.port(s).fill_target.saturating_sub(self.set.in_fill(s));
        // An idle top-up with nothing in the pool is not a shortage worth
        // counting on every empty round.
        let avail = self.lendable(s, 0).min(self.set.pool_len());
        if want < min.max(1) || (min < BATCH && avail == 0) {
            return Ok(());
        }
        // Counted in busy rounds only: an idle worker tops up on every
        // empty round, and one shortage is not thousands a second.
        if avail < want && busy {
            self.counters.fill_short += 1;
        }
        self.addrs.clear();
        while self.addrs.len() < want.min(avail) {
            match self.set.alloc() {
                Some(a) => self.addrs.push(a),
                None => break,
            }
        }
        self.recycle(s)
    }

    /// Queues socket `s`'s pending frames, `TX_KICK` at a time (each
    /// `tx_send` kicks when the kernel asks); frames the ring cannot take
    /// are dropped (counted) and their chunks pooled.
    fn flush(&mut self, s: usize) -> Result<(), XskError> {
        let mut pending = std::mem::take(&mut self.port(s).pending);
        let mut done = 0;
        while done < pending.len() {
            let end = (done + TX_KICK).min(pending.len());
            let k = match self.set.tx_send(s, &pending[done..end]) {
                Ok(k) => k,
                Err(e) => {
                    // The socket failed: `lose` takes the frames still
                    // pending back (and `remove` those it had queued).
                    pending.drain(..done);
                    self.port(s).pending = pending;
                    return Err(e);
                }
            };
            self.counters.tx_frames += k as u64;
            self.port(s).in_flight += k;
            done += k;
            if k < end - (done - k) {
                break;
            }
        }
        if done < pending.len() {
            self.counters.tx_ring_full += (pending.len() - done) as u64;
            for &(a, _) in &pending[done..] {
                self.set.release(chunk_of(a))?;
            }
        }
        pending.clear();
        self.port(s).pending = pending;
        Ok(())
    }

    /// Reaps socket `s`'s completions into its fill ring (or the pool),
    /// then kicks TX if frames are still waiting on the ring, so copy mode
    /// keeps draining (and not otherwise: an idle round makes no syscall).
    fn reap(&mut self, s: usize) -> Result<(), XskError> {
        if self.port(s).in_flight == 0 {
            return Ok(());
        }
        self.comp.clear();
        let n = self.set.complete(s, &mut self.comp);
        let p = self.port(s);
        p.in_flight = p.in_flight.saturating_sub(n);
        let left = p.in_flight;
        if n > 0 {
            self.counters.completions += n as u64;
            self.addrs.clear();
            self.addrs.extend(self.comp.iter().map(|&a| chunk_of(a)));
            self.recycle(s)?;
        }
        // Copy mode sends during the kick `tx_send` already made; kick
        // again only for frames still on the ring (a syscall per socket
        // per round otherwise).
        if left > 0 {
            self.set.kick(s)?;
        }
        Ok(())
    }

    /// Gives the sockets back (to drop them before the XDP programs).
    pub fn into_set(self) -> XskSet {
        self.set
    }
}
