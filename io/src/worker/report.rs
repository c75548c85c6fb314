//! What a worker tells the control thread about itself: its I/O
//! counters, where its time went, where its UMEM's chunks are, and the
//! report it publishes every `REPORT_EVERY` (`xvsctl stats`,
//! `worker-stats`).

use xvs_dataplane::pipeline::PortCounters;
use xvs_dataplane::stats::DropCounters;
use xvs_types::PortNo;

use super::Worker;

/// Counters of one worker (I/O events; per-port pipeline counters live
/// in its [`WorkerState`](xvs_dataplane::pipeline::WorkerState)).
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
    /// Frames a demux socket received without an 802.1ad tag, too short
    /// for one, or whose tag names a port the snapshot does not have:
    /// dropped before the pipeline (which counts drops by ingress port,
    /// and these have none).
    pub demux_bad: u64,
    /// Chunks whose transmission completed.
    pub completions: u64,
    /// Rounds that moved frames and left a fill ring short of its target
    /// because the pool was empty or down to its reserve for replicas.
    pub fill_short: u64,
    /// Sockets closed because they failed ([`SocketLost`](super::SocketLost)).
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
pub(super) fn cycles() -> u64 {
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
    /// The pipeline's other counters ([`WorkerState::events`](xvs_dataplane::pipeline::WorkerState::events)).
    pub events: Vec<(&'static str, u64)>,
    pub umem: UmemUse,
    /// Frames longer than a chunk: assembled, sent, dropped.
    pub jumbo: crate::xsk::JumboCounters,
    /// Flow rule counters per bridge number.
    pub flows: Vec<xvs_dataplane::pipeline::FlowHits>,
    /// ACL rule hits per firewall, per rule, for the policy generation
    /// `policy_generation` (a policy change starts them from zero).
    pub fw_hits: Vec<Vec<xvs_dataplane::pipeline::RuleCount>>,
    /// Policer counters per policer, for the same generation.
    pub policed: Vec<xvs_dataplane::pipeline::PolicerCount>,
    /// Mirror counters per mirror, for the same generation.
    pub mirrors: Vec<xvs_dataplane::pipeline::MirrorCount>,
    pub policy_generation: u64,
    /// What the kernel dropped on this worker's sockets of each port (by
    /// port number), and on its demux socket.
    pub kernel: Vec<crate::xsk::KernelCounters>,
    pub kernel_demux: crate::xsk::KernelCounters,
    /// The vhost-user ports this worker serves: port number, what their
    /// guest queues counted, frames dropped with no driver connected.
    pub vhost: Vec<(PortNo, xvs_vhost::QueueCounters, u64)>,
}

impl Worker {
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
            jumbo: self.set.jumbo_counters(),
            flows: self.ws.flow_hits.clone(),
            fw_hits: self.ws.fw_hits.clone(),
            policed: self.ws.policed(),
            mirrors: self.ws.mirrors.clone(),
            policy_generation: self.ws.policy_generation(),
            kernel: self.kernel.clone(),
            kernel_demux: self.kernel_demux,
            vhost: self.vhost_ports().collect(),
        }
    }

    /// Adds what the kernel counted on each socket since the last read
    /// (a getsockopt per socket: once per report, never per batch).
    pub(super) fn read_kernel(&mut self) {
        for p in self.ports.iter_mut().flatten() {
            let Some(now) = self.set.kernel_counters(p.sock) else {
                continue;
            };
            let grew = now.since(&p.kernel_seen);
            p.kernel_seen = now;
            if p.kind == super::SocketKind::Demux {
                self.kernel_demux.add(&grew);
                continue;
            }
            let no = usize::from(p.no);
            if self.kernel.len() <= no {
                self.kernel
                    .resize_with(no + 1, crate::xsk::KernelCounters::default);
            }
            self.kernel[no].add(&grew);
        }
    }

    /// Where the UMEM's chunks are (between rounds).
    pub fn umem_use(&self) -> UmemUse {
        let slots = 0..self.ports.len();
        UmemUse {
            chunks: self.set.chunks(),
            // A free jumbo slot's chunks are free; a held frame in a slot
            // holds all of its chunks.
            free: self.set.pool_len() + self.set.slot_chunks().1,
            held: self
                .held
                .iter()
                .map(|h| {
                    if self.set.is_slot(h.chunk()) {
                        crate::xsk::SLOT_CHUNKS
                    } else {
                        1
                    }
                })
                .sum(),
            kernel: self.set.kernel_chunks(),
            fill: slots.clone().map(|s| self.set.in_fill(s)).sum(),
            tx: self.ports().map(|p| p.in_flight).sum(),
        }
    }

    pub(super) fn publish(&self) {
        if let Some(r) = &self.report {
            // The control thread holds the lock only to copy the report
            // out; if it does right now, publish next time.
            if let Ok(mut g) = r.try_lock() {
                *g = self.report();
            }
        }
    }
}
