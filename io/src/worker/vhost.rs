//! vhost-user ports in the worker: a guest's virtqueues polled beside
//! the AF_XDP sockets, in the same rounds.
//!
//! From the guest: frames are copied once, out of the guest's memory
//! into UMEM chunks taken from the pool (at the offset the kernel writes
//! received frames at, so the pipeline finds its headroom), then run
//! through the same batch code a socket's frames are (`run_rx`). To the
//! guest: frames the pipeline queued for the port are copied once, out
//! of their chunks into the guest's receive buffers, and the chunks go
//! straight back to the pool (no TX ring, no completion). The guest's
//! queues come and go with its driver (`xvs_vhost::Shared`'s generation,
//! checked once per round); frames for a port without a driver are
//! dropped and counted.

use std::sync::Arc;

use xvs_types::PortNo;
use xvs_vhost::{GuestQueues, QueueCounters, Shared};

use super::{chunk_of, SocketKind, Worker, WorkerCounters, BATCH};
use crate::xsk::XskError;

/// Frames kept for a guest whose receive ring is full, per port and
/// worker, until it posts buffers: a few milliseconds of a TCP stream,
/// with every worker's pool able to spare them.
const BACKLOG: usize = 128;

/// `tx_of` values from here on name a vhost-user slot (the value minus
/// this), not a socket: far above any socket slot.
pub(super) const VHOST_BASE: usize = 1 << 24;

/// One vhost-user port as this worker serves it: every worker can send
/// to every vhost-user port (as it has a socket on every interface); it
/// polls the transmit queues of its share of the port's queue pairs.
#[derive(Debug)]
pub(super) struct VhostSlot {
    pub(super) no: PortNo,
    pub(super) key: u64,
    shared: Arc<Shared>,
    /// The queue pairs whose transmit queues this worker polls (none
    /// when the port has fewer pairs than there are workers).
    poll: Vec<usize>,
    /// The pair whose receive queue this worker's frames for the guest
    /// go into, if the guest enabled it (else pair 0's, which two
    /// workers may then share: the vring's lock orders them).
    send_pair: usize,
    /// The current connection's queue pairs, by pair number; empty until
    /// a driver has started them.
    queues: Vec<GuestQueues>,
    /// `shared`'s generation `queues` belong to.
    seen: u64,
    /// Frames the pipeline queued for the guest, oldest first: the
    /// first `backlog` of them are left from earlier rounds, when the
    /// guest had no receive buffer for them.
    pub(super) pending: Vec<(u64, u32)>,
    backlog: usize,
    /// Counters of the connections before the current one.
    past: QueueCounters,
    /// Frames for the guest dropped because no driver was there.
    pub(super) no_driver: u64,
}

impl VhostSlot {
    /// The eventfds a guest's kicks of the polled pairs write to.
    pub(super) fn kick_fds(&self) -> impl Iterator<Item = std::os::fd::RawFd> + '_ {
        self.poll.iter().map(|&p| self.shared.kick_fd(p))
    }

    /// Clears the kick eventfds after a sleep.
    pub(super) fn take_kicks(&self) {
        for &p in &self.poll {
            self.shared.take_kick(p);
        }
    }

    /// Asks the guest to kick before the worker sleeps; whether it has
    /// frames queued already.
    pub(super) fn arm(&mut self) -> bool {
        self.refresh();
        let mut queued = false;
        for &p in &self.poll {
            if let Some(q) = self.queues.get_mut(p) {
                queued |= q.arm();
            }
        }
        queued
    }

    /// The worker is awake: the guest need not kick.
    pub(super) fn disarm(&mut self) {
        for &p in &self.poll {
            if let Some(q) = self.queues.get_mut(p) {
                q.disarm();
            }
        }
    }

    /// What the port counted, over every connection.
    pub(super) fn counters(&self) -> QueueCounters {
        let mut c = self.past;
        for q in &self.queues {
            add(&mut c, &q.counters);
        }
        c
    }

    /// Picks up a new connection's queues, or lets a finished one's go
    /// (and with them the guest's memory): one atomic load when nothing
    /// changed.
    fn refresh(&mut self) {
        let g = self.shared.generation();
        if g == self.seen {
            return;
        }
        for old in self.queues.drain(..) {
            add(&mut self.past, &old.counters);
        }
        // A connection's pairs all come from one generation: if it
        // changed between two of them, the next round looks again.
        let pairs = self.shared.pairs();
        self.queues
            .extend((0..pairs).map_while(|p| self.shared.queues(p)));
        if self.queues.len() < pairs
            || self
                .queues
                .iter()
                .any(|q| q.generation() != self.queues[0].generation())
        {
            for old in self.queues.drain(..) {
                add(&mut self.past, &old.counters);
            }
            self.seen = g;
            return;
        }
        self.seen = self.queues.first().map_or(g, GuestQueues::generation);
    }
}

/// The pair frames for the guest go into: `send_pair` if the guest
/// enabled it, else pair 0.
fn send_queues(queues: &mut [GuestQueues], send_pair: usize) -> Option<&mut GuestQueues> {
    let p = if queues.get(send_pair).is_some_and(GuestQueues::rx_ready) {
        send_pair
    } else {
        0
    };
    queues.get_mut(p)
}

fn add(to: &mut QueueCounters, c: &QueueCounters) {
    to.from_guest += c.from_guest;
    to.from_guest_bytes += c.from_guest_bytes;
    to.to_guest += c.to_guest;
    to.to_guest_bytes += c.to_guest_bytes;
    to.checksums_completed += c.checksums_completed;
    to.bad_chains += c.bad_chains;
    to.no_buffers += c.no_buffers;
    to.bad_rx_chains += c.bad_rx_chains;
    to.notifications += c.notifications;
    to.segmented += c.segmented;
    to.segments += c.segments;
}

/// Queues a frame the pipeline sent to `d` (a `tx_of` value that named no
/// socket) for its vhost-user port, or recycles it (`unknown_port`).
/// Out of line: only frames to a guest on vhost-user come here.
#[inline(never)]
pub(super) fn queue_out(
    vhost: &mut [Option<VhostSlot>],
    d: Option<usize>,
    base: u64,
    head: u64,
    len: u32,
    counters: &mut WorkerCounters,
    recycle: &mut Vec<u64>,
) {
    let slot = d
        .and_then(|d| d.checked_sub(VHOST_BASE))
        .and_then(|i| vhost.get_mut(i))
        .and_then(Option::as_mut);
    match slot {
        Some(v) if v.pending.len() < v.pending.capacity() => v.pending.push((base + head, len)),
        Some(_) => {
            counters.tx_ring_full += 1;
            recycle.push(base);
        }
        None => {
            counters.unknown_port += 1;
            recycle.push(base);
        }
    }
}

impl Worker {
    /// Serves port `no` (binding `key`) over the guest queues `shared`
    /// will carry: polls the transmit queues of pairs `poll`, sends into
    /// pair `send_pair`'s receive queue.
    pub fn add_vhost(
        &mut self,
        no: PortNo,
        key: u64,
        shared: Arc<Shared>,
        poll: Vec<usize>,
        send_pair: usize,
    ) {
        let slot = VhostSlot {
            no,
            key,
            shared,
            poll,
            send_pair,
            queues: Vec::new(),
            seen: u64::MAX,
            // As a socket's: what one round can queue, replicas included.
            pending: Vec::with_capacity(self.set.ring_size()),
            past: QueueCounters::default(),
            no_driver: 0,
            backlog: 0,
        };
        match self.vhost.iter().position(Option::is_none) {
            Some(i) => self.vhost[i] = Some(slot),
            None => self.vhost.push(Some(slot)),
        }
        self.rebuild_tx_of();
    }

    /// Stops serving vhost-user slot `i`: frames queued for it go back to
    /// the pool, the guest's queues (and memory) are let go.
    pub(super) fn close_vhost(&mut self, i: usize) {
        if let Some(v) = self.vhost[i].take() {
            for &(a, _) in &v.pending {
                let _ = self.set.release(chunk_of(a));
            }
        }
    }

    /// The vhost-user ports served, with what each counted.
    pub fn vhost_ports(&self) -> impl Iterator<Item = (PortNo, QueueCounters, u64)> + '_ {
        self.vhost
            .iter()
            .flatten()
            .map(|v| (v.no, v.counters(), v.no_driver))
    }

    /// Takes one batch from each pair slot `i` polls and runs it through
    /// the pipeline; the frames received.
    pub(super) fn vhost_batch(&mut self, i: usize) -> Result<usize, XskError> {
        let Some(v) = self.vhost[i].as_mut() else {
            return Ok(0);
        };
        v.refresh();
        let mut got = 0;
        for k in 0..v.poll.len() {
            got += self.vhost_pair_batch(i, k)?;
        }
        Ok(got)
    }

    /// One batch from the `k`th pair slot `i` polls.
    fn vhost_pair_batch(&mut self, i: usize, k: usize) -> Result<usize, XskError> {
        let Some(v) = self.vhost[i].as_mut() else {
            return Ok(0);
        };
        let no = v.no;
        let Some(q) = v.poll.get(k).and_then(|&p| v.queues.get_mut(p)) else {
            return Ok(0);
        };
        if !q.tx_pending() {
            return Ok(0);
        }
        // Chunks for a batch, from the pool; those no frame filled go
        // back.
        self.addrs.clear();
        while self.addrs.len() < BATCH {
            match self.set.alloc() {
                Some(a) => self.addrs.push(a),
                None => break,
            }
        }
        if self.addrs.is_empty() {
            return Ok(0);
        }
        let head = self.set.rx_offset() as usize;
        let region = self.set.region();
        self.rx.clear();
        let mut b = self.store.lend();
        if let Err(e) = self.set.chunks_mut(&self.addrs, &mut b.chunks) {
            self.store.keep(b);
            for &a in &self.addrs {
                let _ = self.set.release(a);
            }
            return Err(e);
        }
        let (rx, spare) = (&mut self.rx, &mut self.comp);
        spare.clear();
        let mut taken = 0;
        let mut chunks = b.chunks.drain(..);
        // As many frames as chunks: a TSO frame's segments take one each.
        q.recv(
            self.addrs.len(),
            || {
                taken += 1;
                chunks.next().map(|c| &mut c[head..])
            },
            |buf, r| match (r, region.addr_of(buf.as_ptr())) {
                (Ok(n @ 1..), Some(a)) => rx.push((a, n as u32)),
                (_, Some(a)) => spare.push(chunk_of(a)),
                (_, None) => {}
            },
        );
        drop(chunks);
        self.store.keep(b);
        // The chunks no frame filled go back to the pool: those handed
        // back unused or with a dropped frame, and those never asked for.
        let untouched = taken.min(self.addrs.len());
        for k in untouched..self.addrs.len() {
            self.set.release(self.addrs[k])?;
        }
        for k in 0..self.comp.len() {
            self.set.release(self.comp[k])?;
        }
        self.comp.clear();
        let n = self.rx.len();
        if n == 0 {
            return Ok(0);
        }
        let back = Some(VHOST_BASE + i);
        let r = self.run_rx(no, SocketKind::Ordinary, back);
        // Whatever the pipeline dropped (or all of it, on error) goes
        // back to the pool: no fill ring to give it to.
        for k in 0..self.addrs.len() {
            let _ = self.set.release(self.addrs[k]);
        }
        self.addrs.clear();
        r.map(|()| n)
    }

    /// Hands the frames queued for slot `i`'s guest over, then gives the
    /// chunks of those handed over (or dropped) back to the pool; the
    /// rest wait in the backlog.
    pub(super) fn vhost_flush(&mut self, i: usize) -> Result<(), XskError> {
        let Some(v) = self.vhost[i].as_mut() else {
            return Ok(());
        };
        if v.pending.is_empty() {
            return Ok(());
        }
        self.comp.clear();
        match send_queues(&mut v.queues, v.send_pair) {
            None => {
                v.no_driver += v.pending.len() as u64;
                self.comp
                    .extend(v.pending.drain(..).map(|(a, _)| chunk_of(a)));
                v.backlog = 0;
            }
            Some(q) => {
                self.comp
                    .extend(v.pending.iter().map(|&(a, _)| chunk_of(a)));
                let mut b = self.store.lend();
                self.set.chunks_mut(&self.comp, &mut b.chunks)?;
                if let Some(spec) = self.tap.spec().filter(|s| s.takes(v.no, super::DIR_OUT)) {
                    // The backlog's frames were captured when first queued.
                    let now = self.epoch.elapsed().as_nanos() as u64;
                    for (c, &(a, len)) in b.chunks.iter().zip(&v.pending).skip(v.backlog) {
                        let off = (a - chunk_of(a)) as usize;
                        if let Some(f) = c.get(off..off + len as usize) {
                            self.tap.offer(spec, now, v.no, super::DIR_OUT, f);
                        }
                    }
                }
                let frames = b
                    .chunks
                    .iter()
                    .zip(&v.pending)
                    .filter_map(|(c, &(a, len))| {
                        let off = (a - chunk_of(a)) as usize;
                        c.get(off..off + len as usize)
                    });
                let done = q.send_until_full(frames);
                self.store.keep(b);
                // A guest out of receive buffers keeps the rest waiting, up
                // to BACKLOG frames (as a tap's queue holds the kernel's
                // frames), so a guest slower than its traffic for a moment
                // loses none; beyond, the newest are dropped and counted.
                let keep = (v.pending.len() - done).min(BACKLOG);
                let dropped = v.pending.len() - done - keep;
                q.counters.no_buffers += dropped as u64;
                self.comp.clear();
                self.comp.extend(
                    v.pending[..done]
                        .iter()
                        .chain(&v.pending[done + keep..])
                        .map(|&(a, _)| chunk_of(a)),
                );
                v.pending.truncate(done + keep);
                v.pending.drain(..done);
                v.backlog = v.pending.len();
            }
        }
        for k in 0..self.comp.len() {
            self.set.release(self.comp[k])?;
        }
        self.comp.clear();
        Ok(())
    }
}
