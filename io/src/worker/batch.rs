//! One batch through the pipeline: frames received on a socket lent to
//! `process_batch` as [`Frame`]s over their UMEM chunks (the batch
//! vectors' allocations kept from batch to batch, so none is made here),
//! prefetched ahead of the pipeline, and what it decided sorted out:
//! frames queued for the sockets they leave by, frames held for a
//! lookup (run again once a newer snapshot is out), chunks to recycle.
//! A demux socket's batch is untagged first and run as one
//! `process_batch` per run of frames of one ingress port, in order.

use std::mem::ManuallyDrop;

use xvs_dataplane::frame::Frame;
use xvs_dataplane::pipeline::{
    process_batch, process_held, BatchIo, HeldMeta, SpareSource, TxFrame,
};

use xvs_types::PortNo;

use super::vhost::{self, VhostSlot};
use super::{chunk_of, demux, SocketKind, Worker, WorkerCounters, WorkerPort};
use super::{BATCH, HOLD_MAX, LEND_MAX};
use crate::xsk::{self, Region, XskError};

/// A frame held for a lookup: its chunk, where in it the frame is, and
/// until when it may wait.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeldFrame {
    chunk: u64,
    head: usize,
    len: usize,
    meta: HeldMeta,
    deadline: u64,
}

impl HeldFrame {
    /// The chunk (or jumbo slot) the frame is in.
    pub(super) fn chunk(&self) -> u64 {
        self.chunk
    }
}

/// The pipeline's on-demand spares: chunks from the worker's pool.
struct Lend<'a>(xsk::PoolLender<'a>);

impl<'a> SpareSource<'a> for Lend<'a> {
    fn take(&mut self) -> Option<&'a mut [u8]> {
        self.0.take()
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

/// Hands a run of a batch's frames to the pipeline in order (the next
/// `left` frames of the batch's drain: the whole batch, or one port's
/// run of a demux batch), prefetching the frame [`PREFETCH_AHEAD`]
/// places ahead as each one is taken, so its cache misses overlap the
/// work on the frames before it. Runs are taken off one drain, so no
/// frame moves in the vector; the look-ahead crosses into the next run,
/// whose frames come next anyway.
struct Prefetching<'r, 'd, 'a> {
    inner: &'r mut std::vec::Drain<'d, Frame<'a>>,
    left: usize,
}

impl<'a> Iterator for Prefetching<'_, '_, 'a> {
    type Item = Frame<'a>;

    #[inline]
    fn next(&mut self) -> Option<Frame<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        if let Some(f) = self.inner.as_slice().get(PREFETCH_AHEAD) {
            prefetch_frame(f);
        }
        self.inner.next()
    }
}

/// The batch vectors, kept empty between batches.
#[derive(Debug, Default)]
pub(super) struct Store {
    pub(super) chunks: Vec<&'static mut [u8]>,
    pub(super) spare: Vec<&'static mut [u8]>,
    pub(super) free: Vec<&'static mut [u8]>,
    pub(super) frames: Vec<Frame<'static>>,
    pub(super) tx: Vec<TxFrame<'static>>,
    pub(super) held: Vec<(HeldMeta, Frame<'static>)>,
}

/// The vectors of one batch, borrowing chunks for `'a`.
pub(super) struct Batch<'a> {
    pub(super) chunks: Vec<&'a mut [u8]>,
    frames: Vec<Frame<'a>>,
    io: BatchIo<'a>,
}

impl Store {
    /// The stored allocations, empty, typed for a batch.
    pub(super) fn lend<'a>(&mut self) -> Batch<'a> {
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
    pub(super) fn keep(&mut self, b: Batch<'_>) {
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

/// Where a batch's transmitted frames go: the sockets' pending queues,
/// or (no socket, a full queue) back to the pool. The worker's fields
/// it needs, borrowed apart from the UMEM the batch's chunks borrow.
struct Outputs<'w> {
    region: Region,
    counters: &'w mut WorkerCounters,
    tx_of: &'w [Option<usize>],
    ports: &'w mut [Option<WorkerPort>],
    vhost: &'w mut [Option<VhostSlot>],
    /// Chunks to recycle (the worker's `addrs`).
    recycle: &'w mut Vec<u64>,
}

impl Outputs<'_> {
    /// Queues the frames in `tx`, received on `in_port`: those going
    /// back out of `in_port` by socket `back`, the others by their
    /// port's first socket. Inlined: its loop is the batch's per-frame
    /// transmit loop, as it was before it moved here.
    #[inline(always)]
    fn queue(&mut self, tx: &mut Vec<TxFrame<'_>>, in_port: PortNo, back: Option<usize>) {
        for TxFrame { frame, port: out } in tx.drain(..) {
            let len = frame.len() as u32;
            let head = frame.head() as u64;
            let Some(base) = self.region.addr_of(frame.into_buf().as_ptr()) else {
                continue;
            };
            let d = if out == in_port {
                back
            } else {
                self.counters.tx_other_port += 1;
                self.tx_of.get(usize::from(out)).copied().flatten()
            };
            match d
                .and_then(|d| self.ports.get_mut(d))
                .and_then(Option::as_mut)
            {
                Some(p) if p.pending.len() < p.pending.capacity() => {
                    p.pending.push((base + head, len))
                }
                Some(_) => {
                    // More than its TX ring holds, queued in one round.
                    self.counters.tx_ring_full += 1;
                    self.recycle.push(base);
                }
                // Not a socket: a vhost-user port's, or none.
                None => {
                    vhost::queue_out(self.vhost, d, base, head, len, self.counters, self.recycle)
                }
            }
        }
    }
}

impl Worker {
    /// Receives one batch on socket `s` and runs it through the pipeline.
    pub(super) fn batch(&mut self, s: usize) -> Result<usize, XskError> {
        self.rx.clear();
        let n = self.set.rx(s, &mut self.rx, BATCH, 0)?;
        if n == 0 {
            return Ok(0);
        }
        let (in_port, kind) = {
            let p = self.port(s);
            (p.no, p.kind)
        };
        if let Err(e) = self.run_rx(in_port, kind, Some(s)) {
            // Not expected (the addresses came from rx); give the
            // received chunks back to the fill ring.
            let _ = self.recycle(s);
            return Err(e);
        }
        self.recycle(s)?;
        Ok(n)
    }

    /// Runs the frames `rx` names (chunks the worker holds) through the
    /// pipeline as received on `in_port`, frames back out of `in_port`
    /// leaving by `back`; leaves in `addrs` the chunks to recycle.
    /// Inlined into both callers: the socket batch's code stays what it
    /// was before vhost-user ports shared it (the instruction gate).
    #[inline(always)]
    pub(super) fn run_rx(
        &mut self,
        in_port: PortNo,
        kind: SocketKind,
        back: Option<usize>,
    ) -> Result<(), XskError> {
        let n = self.rx.len();
        self.counters.batches += 1;
        self.counters.rx_frames += n as u64;
        let now = self.epoch.elapsed().as_nanos() as u64;
        // A guard, not a clone: no shared reference count touched per batch.
        let snap = self.handle.load();

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
            Err(e) => return Err(e),
        };
        let Batch { chunks, frames, io } = &mut b;
        let demux = kind == SocketKind::Demux;
        if let Some(spec) = self.tap.spec() {
            // A demux socket's frames name their port in a tag: what the
            // fast path's miss pair carries is not captured.
            if !demux && spec.takes(in_port, super::DIR_IN) {
                capture_rx(&self.tap, spec, now, in_port, chunks, &self.rx);
            }
        }
        io.more = Some(&mut spares);
        let mut out = Outputs {
            region,
            counters: &mut self.counters,
            tx_of: &self.tx_of,
            ports: &mut self.ports,
            vhost: &mut self.vhost,
            recycle: &mut self.addrs,
        };
        if !demux {
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
        } else {
            // Tags off, in place; a frame without one, or naming a port
            // the snapshot does not have, goes back through `free`.
            self.demux_in.clear();
            for (c, &(addr, len)) in chunks.drain(..).zip(&self.rx) {
                let head = (addr - chunk_of(addr)) as usize;
                if head + len as usize > c.len() {
                    io.free.push(c);
                    continue;
                }
                // Always a frame: its bounds were just checked.
                let Some(mut f) = Frame::new(c, head, len as usize) else {
                    continue;
                };
                match demux::strip(&mut f).filter(|&p| snap.port(p).is_some()) {
                    Some(p) => {
                        self.demux_in.push(p);
                        frames.push(f);
                    }
                    None => {
                        out.counters.demux_bad += 1;
                        io.free.push(f.into_buf());
                    }
                }
            }
        }
        for f in frames.iter().take(PREFETCH_AHEAD) {
            prefetch_frame(f);
        }
        // One call of the pipeline per run of one ingress port (the whole
        // batch, unless it came by a demux socket). One call site for
        // both: a second one changed what the compiler inlined into the
        // ordinary batch, 4% more instructions per frame
        // (io/examples/batch_instructions.rs).
        let total = frames.len();
        let mut all = frames.drain(..);
        let mut at = 0;
        while at < total {
            let (port, run, back) = if demux {
                let port = self.demux_in[at];
                let run = self.demux_in[at..]
                    .iter()
                    .take_while(|&&p| p == port)
                    .count();
                // Back out of the ingress port: by that port's own
                // socket, never the demux one.
                let back = out.tx_of.get(usize::from(port)).copied().flatten();
                (port, run, back)
            } else {
                (in_port, total, back)
            };
            at += run;
            let batch = Prefetching {
                inner: &mut all,
                left: run,
            };
            process_batch(&snap, &mut self.ws, port, now, batch, io);
            out.queue(&mut io.tx, port, back);
        }
        // Every run taken: the vector is the batch's again, for `keep`.
        drop(all);
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
        Ok(())
    }

    /// Runs the held frames again once a newer snapshot is out (its
    /// answer may be in it), and drops those past their deadline
    /// (`hold_expired`). Nothing to do, and no clock read, when none are
    /// held.
    pub(super) fn run_held(&mut self) -> Result<(), XskError> {
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
                match d
                    .and_then(|d| self.ports.get_mut(d))
                    .and_then(Option::as_mut)
                {
                    Some(p) if p.pending.len() < p.pending.capacity() => {
                        p.pending.push((base + head, len))
                    }
                    Some(_) => {
                        self.counters.tx_ring_full += 1;
                        self.comp.push(base);
                    }
                    None => vhost::queue_out(
                        &mut self.vhost,
                        d,
                        base,
                        head,
                        len,
                        &mut self.counters,
                        &mut self.comp,
                    ),
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
}

/// Copies the frames a batch received on `port` to the capture. Out of
/// line: only while a capture of this port runs.
#[cold]
#[inline(never)]
fn capture_rx(
    tap: &super::Tap,
    spec: super::CaptureSpec,
    now: u64,
    port: PortNo,
    chunks: &[&mut [u8]],
    rx: &[(u64, u32)],
) {
    for (c, &(addr, len)) in chunks.iter().zip(rx) {
        let head = (addr - chunk_of(addr)) as usize;
        if let Some(f) = c.get(head..head + len as usize) {
            tap.offer(spec, now, port, super::DIR_IN, f);
        }
    }
}
