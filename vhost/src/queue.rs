//! A guest's virtqueues, polled: frames out of its transmit queue into
//! buffers of ours, and frames of ours into its receive queue, each
//! copied once, with the virtio-net header read and written here.
//!
//! Everything the guest hands over is untrusted: a descriptor chain that
//! points outside its memory, loops, is empty, has the wrong direction,
//! or carries a frame longer than the buffer it is copied into is
//! counted in [`QueueCounters`] and given back to the guest as used
//! (length 0), so a broken driver stalls nothing but its own frames; the
//! chain walk itself (loops, indirect tables, the ring's indices) is
//! `virtio-queue`'s.
//!
//! A batch takes the vring's lock once: the protocol thread takes it to
//! change the ring (the driver stopping or restarting the queue), so
//! between two batches the queue may be stopped, never during one.

use super::gso::{Tso, MAX_HEADERS};
use std::sync::atomic::Ordering;
use std::sync::RwLockWriteGuard;
use vhost_user_backend::{VringRwLock, VringState, VringT};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_net::{VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_HDR_F_NEEDS_CSUM};
use virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use virtio_queue::{DescriptorChain, QueueOwnedT, QueueT};
use vm_memory::{
    Address, Bytes, GuestAddress, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryBackend,
    GuestMemoryLoadGuard, GuestMemoryMmap,
};
use xvs_dataplane::wire::checksum::{fold, ones_sum};

type Mem = GuestMemoryMmap<()>;

/// The virtio-net header's length: 12 bytes under VIRTIO_F_VERSION_1 or
/// MRG_RXBUF (`num_buffers` included), 10 for a legacy driver without.
pub fn header_len(features: u64) -> usize {
    if features & ((1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_NET_F_MRG_RXBUF)) != 0 {
        12
    } else {
        10
    }
}

/// Why a frame from the guest was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GuestFrameError {
    #[error("a descriptor points outside the guest's memory")]
    BadAddress,
    #[error("the chain loops, names a descriptor beyond the table, or has a bad indirect table")]
    BrokenChain,
    #[error("a transmit chain has a device-writable descriptor")]
    WrongDirection,
    #[error("the chain is shorter than the virtio-net header and an Ethernet header")]
    Short,
    #[error("the frame is longer than the buffer it is copied into")]
    TooLong,
    #[error("the header asks for segmentation, which was not negotiated")]
    GsoNotNegotiated,
    #[error("the header's checksum start or offset lies outside the frame")]
    BadChecksumOffset,
    #[error("the header asks for TCP segmentation of a frame that is not the TCP segment it says, or gives no segment size")]
    BadGso,
    #[error("a TSO frame would take more segments than a batch holds")]
    TooManySegments,
}

/// Why a frame was not handed to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GuestRxError {
    #[error("the guest has posted no receive buffer it fits in")]
    NoBuffers,
    #[error("a receive descriptor points outside the guest's memory, or is not writable")]
    BadDescriptor,
}

/// What a port's queues counted; the poller reads them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounters {
    /// Frames and bytes taken from the guest (its transmit queue).
    pub from_guest: u64,
    pub from_guest_bytes: u64,
    /// Frames and bytes handed to the guest (its receive queue).
    pub to_guest: u64,
    pub to_guest_bytes: u64,
    /// Checksums the guest left to us, completed.
    pub checksums_completed: u64,
    /// Chains from the guest dropped as malformed (`GuestFrameError`).
    pub bad_chains: u64,
    /// Frames for the guest dropped: no receive buffer posted.
    pub no_buffers: u64,
    /// Frames for the guest dropped: a malformed receive chain.
    pub bad_rx_chains: u64,
    /// Interrupts (call eventfd writes) sent to the guest.
    pub notifications: u64,
    /// TSO frames from the guest cut into segments here, and the
    /// segments they made (each also counted in `from_guest`).
    pub segmented: u64,
    pub segments: u64,
}

/// One connection's queue pair, held by its poller.
pub struct GuestQueues {
    rx: VringRwLock,
    tx: VringRwLock,
    mem: GuestMemoryAtomic<Mem>,
    features: u64,
    hdr_len: usize,
    generation: u64,
    pub counters: QueueCounters,
}

impl std::fmt::Debug for GuestQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestQueues")
            .field("features", &format_args!("{:#x}", self.features))
            .field("generation", &self.generation)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// Where a driver put one virtqueue: its descriptor table, available and
/// used rings (guest addresses), and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingAddrs {
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub size: u16,
}

/// Why queues could not be laid over a memory image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("guest memory of {0} bytes cannot be made")]
    Memory(usize),
    #[error("ring addresses or size refused: {0}")]
    Ring(String),
}

impl GuestQueues {
    /// Queues over a guest memory of `len` bytes at guest address 0
    /// holding `image`, with the rings where `rx` and `tx` say, enabled,
    /// as a driver would have set them up: what the fuzz target and
    /// tests drive without a vhost-user connection.
    pub fn over_image(
        image: &[u8],
        len: usize,
        rx: RingAddrs,
        tx: RingAddrs,
        features: u64,
    ) -> Result<GuestQueues, ImageError> {
        let mem =
            Mem::from_ranges(&[(GuestAddress(0), len)]).map_err(|_| ImageError::Memory(len))?;
        let n = image.len().min(len);
        mem.write_slice(&image[..n], GuestAddress(0))
            .map_err(|_| ImageError::Memory(len))?;
        let atomic = GuestMemoryAtomic::new(mem);
        let ring = |r: RingAddrs| -> Result<VringRwLock, ImageError> {
            let v = VringRwLock::new(atomic.clone(), r.size)
                .map_err(|e| ImageError::Ring(e.to_string()))?;
            v.set_queue_size(r.size);
            v.set_queue_info(r.desc, r.avail, r.used)
                .map_err(|e| ImageError::Ring(e.to_string()))?;
            v.set_queue_event_idx(features & (1 << VIRTIO_RING_F_EVENT_IDX) != 0);
            v.set_queue_ready(true);
            v.set_enabled(true);
            Ok(v)
        };
        Ok(GuestQueues::new(
            ring(rx)?,
            ring(tx)?,
            atomic.clone(),
            features,
            0,
        ))
    }

    pub(crate) fn new(
        rx: VringRwLock,
        tx: VringRwLock,
        mem: GuestMemoryAtomic<Mem>,
        features: u64,
        generation: u64,
    ) -> Self {
        Self {
            rx,
            tx,
            mem,
            features,
            hdr_len: header_len(features),
            generation,
            counters: QueueCounters::default(),
        }
    }

    /// The connection generation these queues belong to (see `Shared`).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The features the driver acknowledged.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// Whether the driver has enabled the receive queue (a guest uses as
    /// many queue pairs as it chooses).
    pub fn rx_ready(&self) -> bool {
        let s = self.rx.get_ref();
        s.is_enabled() && s.get_queue().ready()
    }

    /// Whether the guest has queued frames to send: one look at its
    /// available ring, so that an idle guest costs its poller no buffers.
    pub fn tx_pending(&mut self) -> bool {
        let Some(b) = Batch::open(&self.tx, &self.mem) else {
            return false;
        };
        let q = b.state.get_queue();
        q.avail_idx(&*b.mem, Ordering::Acquire)
            .is_ok_and(|i| i.0 != q.next_avail())
    }

    /// Asks the guest to kick on its next frame, before the poller
    /// sleeps (with EVENT_IDX, avail_event moves up to where we are;
    /// without, the ring's no-notify flag is cleared). While the poller
    /// polls, the guest is not asked: its kicks are exits a polled queue
    /// does not need. Returns whether frames are queued already, in
    /// which case the poller should not sleep.
    pub fn arm(&mut self) -> bool {
        let Some(mut b) = Batch::open(&self.tx, &self.mem) else {
            return false;
        };
        b.state
            .get_queue_mut()
            .enable_notification(&*b.mem)
            .unwrap_or(true)
    }

    /// The poller is awake again: a driver without EVENT_IDX is told not
    /// to kick (with it, not moving avail_event is what tells it).
    pub fn disarm(&mut self) {
        if let Some(mut b) = Batch::open(&self.tx, &self.mem) {
            let _ = b.state.get_queue_mut().disable_notification(&*b.mem);
        }
    }

    /// Takes up to `max` frames out of the guest's transmit queue: for
    /// each, `buf` gives the buffer to copy it into (`None`: no buffer,
    /// the batch ends there and the frame stays queued) and `done` gets
    /// the buffer back with the frame's length (`Ok(0)`: no frame was
    /// queued, the buffer is unused), or the error that dropped it. A
    /// TSO frame becomes several frames, its segments, each in a buffer
    /// of its own: `buf` must be able to give `max` buffers, and a TSO
    /// frame with more segments than the batch has room left for waits
    /// for the next batch (one with more than `max` is dropped).
    /// Returns the number of chains consumed.
    pub fn recv<B: AsMut<[u8]>>(
        &mut self,
        max: usize,
        mut buf: impl FnMut() -> Option<B>,
        mut done: impl FnMut(B, Result<usize, GuestFrameError>),
    ) -> usize {
        let Some(mut batch) = Batch::open(&self.tx, &self.mem) else {
            return 0;
        };
        let (mut n, mut out) = (0, 0);
        while out < max {
            let Some(mut dst) = buf() else { break };
            let Some(chain) = batch
                .state
                .get_queue_mut()
                .pop_descriptor_chain(&*batch.mem)
            else {
                // Nothing queued: the buffer goes back unused.
                done(dst, Ok(0));
                break;
            };
            let head = chain.head_index();
            let frame = Frame::read(chain, &batch.mem, self.hdr_len, self.features);
            let r = match frame {
                Ok(Kind::Whole(mut f)) => f.copy(dst.as_mut()),
                Ok(Kind::Tso(f, tso, headers)) => {
                    let segs = tso.segments(f.len);
                    let longest = tso.headers + tso.payload(f.len, 0);
                    if longest > dst.as_mut().len() {
                        Err(GuestFrameError::TooLong)
                    } else if segs > max {
                        Err(GuestFrameError::TooManySegments)
                    } else if segs > max - out {
                        // It waits, whole, for a batch with room for it.
                        done(dst, Ok(0));
                        batch.state.get_queue_mut().go_to_previous_position();
                        break;
                    } else {
                        out += segs - 1;
                        self.counters.segmented += 1;
                        self.counters.segments += segs as u64;
                        f.segment(tso, &headers, dst, &mut buf, &mut done, &mut self.counters);
                        batch.used(head, 0);
                        n += 1;
                        out += 1;
                        continue;
                    }
                }
                Err(e) => Err(e),
            };
            match r {
                Ok((len, completed)) => {
                    self.counters.from_guest += 1;
                    self.counters.from_guest_bytes += len as u64;
                    self.counters.checksums_completed += u64::from(completed);
                    done(dst, Ok(len));
                }
                Err(e) => {
                    self.counters.bad_chains += 1;
                    done(dst, Err(e));
                }
            }
            batch.used(head, 0);
            n += 1;
            out += 1;
        }
        self.counters.notifications += u64::from(batch.finish());
        n
    }

    /// Hands `frames` to the guest, each behind a virtio-net header (no
    /// offload asked of the guest: the checksums are complete), one frame
    /// per receive chain, or spread over several when MRG_RXBUF was
    /// negotiated. A frame that does not fit what the guest posted is
    /// dropped and counted; the rest go on. Returns how many were handed
    /// over.
    pub fn send<'f>(&mut self, frames: impl IntoIterator<Item = &'f [u8]>) -> usize {
        let Some(mut batch) = Batch::open(&self.rx, &self.mem) else {
            let mut dropped = 0;
            for _ in frames {
                dropped += 1;
            }
            self.counters.no_buffers += dropped;
            return 0;
        };
        let mergeable = self.features & (1 << VIRTIO_NET_F_MRG_RXBUF) != 0;
        let mut n = 0;
        for frame in frames {
            match write_frame(&mut batch, frame, self.hdr_len, mergeable) {
                Ok(()) => {
                    self.counters.to_guest += 1;
                    self.counters.to_guest_bytes += frame.len() as u64;
                    n += 1;
                }
                Err(GuestRxError::NoBuffers) => self.counters.no_buffers += 1,
                Err(GuestRxError::BadDescriptor) => self.counters.bad_rx_chains += 1,
            }
        }
        self.counters.notifications += u64::from(batch.finish());
        n
    }

    /// Hands `frames` to the guest as [`Self::send`] does, but stops at
    /// the first one the guest has no room for, which is not counted:
    /// the caller keeps it and those after it for a later try. Returns
    /// how many frames were taken from the front (handed over, or dropped
    /// for a malformed receive chain).
    pub fn send_until_full<'f>(&mut self, frames: impl IntoIterator<Item = &'f [u8]>) -> usize {
        let Some(mut batch) = Batch::open(&self.rx, &self.mem) else {
            return 0;
        };
        let mergeable = self.features & (1 << VIRTIO_NET_F_MRG_RXBUF) != 0;
        let mut taken = 0;
        for frame in frames {
            match write_frame(&mut batch, frame, self.hdr_len, mergeable) {
                Ok(()) => {
                    self.counters.to_guest += 1;
                    self.counters.to_guest_bytes += frame.len() as u64;
                }
                Err(GuestRxError::NoBuffers) => break,
                Err(GuestRxError::BadDescriptor) => self.counters.bad_rx_chains += 1,
            }
            taken += 1;
        }
        self.counters.notifications += u64::from(batch.finish());
        taken
    }
}

/// One batch on one vring: its lock held, the guest memory loaded once.
struct Batch<'a> {
    state: RwLockWriteGuard<'a, VringState<GuestMemoryAtomic<Mem>>>,
    mem: GuestMemoryLoadGuard<Mem>,
    used: bool,
}

impl<'a> Batch<'a> {
    /// `None` while the driver has not enabled the queue (or has stopped it).
    fn open(vring: &'a VringRwLock, mem: &GuestMemoryAtomic<Mem>) -> Option<Self> {
        let state = vring.get_mut();
        if !state.is_enabled() || !state.get_queue().ready() {
            return None;
        }
        Some(Self {
            state,
            mem: mem.memory(),
            used: false,
        })
    }

    fn used(&mut self, head: u16, len: u32) {
        // Fails only for a head index beyond the ring, which the chain
        // walk never returns.
        let _ = self.state.get_queue_mut().add_used(&*self.mem, head, len);
        self.used = true;
    }

    /// Interrupts the guest if anything was used and the guest asked for
    /// it (EVENT_IDX's used_event, or no NO_INTERRUPT flag). Whether it did.
    fn finish(mut self) -> bool {
        if !self.used {
            return false;
        }
        let q = self.state.get_queue_mut();
        if q.needs_notification(&*self.mem).unwrap_or(true) {
            return self.state.signal_used_queue().is_ok();
        }
        false
    }
}

/// Descriptors one transmit chain may have: a Linux guest's largest
/// frame takes the header, the linear part and 17 page fragments; a
/// chain with more is refused.
const MAX_TX_DESCS: usize = 64;

/// One transmit chain, checked whole before a byte of it is used: every
/// descriptor readable and inside the guest's memory, the chain ended
/// where it says, the virtio-net header read. What it holds is then
/// copied out by a cursor over the descriptors.
struct Frame<'m> {
    mem: &'m Mem,
    descs: [(GuestAddress, usize); MAX_TX_DESCS],
    ndescs: usize,
    /// The descriptor and the offset in it the cursor is at.
    at: (usize, usize),
    /// The frame's length, the header not included.
    len: usize,
    /// `csum_start` and `csum_offset` when the checksum is left to us.
    csum: Option<(u16, u16)>,
}

/// A chain read: a frame to copy as it is, or a TSO frame to cut.
// On the stack once per chain, never moved around: boxing the headers
// would allocate per TSO frame.
#[allow(clippy::large_enum_variant)]
enum Kind<'m> {
    Whole(Frame<'m>),
    /// The frame's cursor at the payload, and its headers as read.
    Tso(Frame<'m>, Tso, [u8; MAX_HEADERS]),
}

impl<'m> Frame<'m> {
    /// Walks `chain`, reads its virtio-net header and tells a frame to
    /// copy from a TSO frame to cut.
    fn read(
        chain: DescriptorChain<&'m Mem>,
        mem: &'m Mem,
        hdr_len: usize,
        features: u64,
    ) -> Result<Kind<'m>, GuestFrameError> {
        let mut f = Frame {
            mem,
            descs: [(GuestAddress(0), 0); MAX_TX_DESCS],
            ndescs: 0,
            at: (0, 0),
            len: 0,
            csum: None,
        };
        // virtio-queue's walk ends quietly where a chain is broken (a
        // loop outlives its budget of one pass over the table, a next
        // index past it, an unreadable or nested indirect table): a chain
        // whose last descriptor still says "next" ended that way.
        let mut last_has_next = true;
        let mut total = 0usize;
        for d in chain {
            last_has_next = d.has_next();
            if d.is_write_only() {
                return Err(GuestFrameError::WrongDirection);
            }
            if f.ndescs == MAX_TX_DESCS {
                return Err(GuestFrameError::TooLong);
            }
            let len = d.len() as usize;
            if !GuestMemoryBackend::check_range(mem, d.addr(), len) {
                return Err(GuestFrameError::BadAddress);
            }
            f.descs[f.ndescs] = (d.addr(), len);
            f.ndescs += 1;
            total += len;
        }
        if last_has_next {
            return Err(GuestFrameError::BrokenChain);
        }
        if total < hdr_len + 14 {
            // Not even an Ethernet header (and `Ok(0)` means "no frame").
            return Err(GuestFrameError::Short);
        }
        f.len = total - hdr_len;
        let mut hdr = [0u8; 12];
        f.take(&mut hdr[..hdr_len]);
        let field = |at: usize| u16::from_le_bytes([hdr[at], hdr[at + 1]]);
        if hdr[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM as u8 != 0 {
            let (start, offset) = (field(6), field(8));
            if usize::from(start) + usize::from(offset) + 2 > f.len {
                return Err(GuestFrameError::BadChecksumOffset);
            }
            f.csum = Some((start, offset));
        }
        if hdr[1] == 0 {
            return Ok(Kind::Whole(f));
        }
        let mut head = [0u8; MAX_HEADERS];
        let n = f.len.min(MAX_HEADERS);
        let mark = f.at;
        f.take(&mut head[..n]);
        f.at = mark;
        let tso = Tso::parse(&head[..n], f.len, features, hdr[1], f.csum, field(4))?;
        f.skip(tso.headers);
        Ok(Kind::Tso(f, tso, head))
    }

    /// Copies the next `dst.len()` bytes of the chain into `dst` (the
    /// chain was checked to hold them, and to lie in guest memory).
    fn take(&mut self, dst: &mut [u8]) {
        let mut done = 0;
        while done < dst.len() && self.at.0 < self.ndescs {
            let (addr, len) = self.descs[self.at.0];
            let n = (len - self.at.1).min(dst.len() - done);
            // Checked in `read`, under the same memory guard.
            copy_from_guest(
                self.mem,
                addr.unchecked_add(self.at.1 as u64),
                &mut dst[done..done + n],
            );
            done += n;
            self.at.1 += n;
            if self.at.1 == len {
                self.at = (self.at.0 + 1, 0);
            }
        }
    }

    /// Skips `n` bytes of the chain.
    fn skip(&mut self, mut n: usize) {
        while n > 0 && self.at.0 < self.ndescs {
            let left = self.descs[self.at.0].1 - self.at.1;
            if n < left {
                self.at.1 += n;
                return;
            }
            n -= left;
            self.at = (self.at.0 + 1, 0);
        }
    }

    /// Copies the frame into `dst` and completes its checksum if the
    /// header asks. The frame's length and whether a checksum was
    /// completed.
    fn copy(&mut self, dst: &mut [u8]) -> Result<(usize, bool), GuestFrameError> {
        let len = self.len;
        let frame = dst.get_mut(..len).ok_or(GuestFrameError::TooLong)?;
        self.take(frame);
        let Some((start, offset)) = self.csum else {
            return Ok((len, false));
        };
        let (start, field) = (usize::from(start), usize::from(start) + usize::from(offset));
        // The field holds the pseudo-header sum the guest put there: the
        // one's-complement sum from csum_start on covers it (as the
        // kernel's skb_checksum_help, a zero result is sent as 0xffff).
        let sum = !fold(ones_sum(0, &frame[start..]));
        let sum = if sum == 0 { 0xffff } else { sum };
        frame[field..field + 2].copy_from_slice(&sum.to_be_bytes());
        Ok((len, true))
    }

    /// Cuts a TSO frame into its segments, the first into `first`, the
    /// others into buffers from `buf`, each handed to `done`: `headers`
    /// (as read once) copied into each, the payload from the chain, once.
    fn segment<B: AsMut<[u8]>>(
        mut self,
        tso: Tso,
        headers: &[u8; MAX_HEADERS],
        first: B,
        buf: &mut impl FnMut() -> Option<B>,
        done: &mut impl FnMut(B, Result<usize, GuestFrameError>),
        counters: &mut QueueCounters,
    ) {
        let segs = tso.segments(self.len);
        let mut dst = Some(first);
        for k in 0..segs {
            let Some(mut b) = dst.take().or_else(&mut *buf) else {
                // The caller gave fewer buffers than it promised: the
                // rest of the frame is lost, and said so.
                counters.bad_chains += 1;
                return;
            };
            let payload = tso.payload(self.len, k);
            let seg_len = tso.headers + payload;
            let Some(seg) = b.as_mut().get_mut(..seg_len) else {
                // A buffer shorter than the first (checked to fit): this
                // segment is lost, the next ones are not.
                counters.bad_chains += 1;
                self.skip(payload);
                done(b, Err(GuestFrameError::TooLong));
                continue;
            };
            seg[..tso.headers].copy_from_slice(&headers[..tso.headers]);
            self.take(&mut seg[tso.headers..]);
            tso.finish(seg, k, k + 1 == segs);
            counters.from_guest += 1;
            counters.from_guest_bytes += seg_len as u64;
            done(b, Ok(seg_len));
        }
    }
}

/// Copies guest memory at `addr` into `dst`; whether it could. One
/// `memcpy` when the range lies in one region, as every vhost backend
/// copies (DPDK's `rte_memcpy`, the kernel's `copy_from_user`); else
/// vm-memory's volatile copy. Hand-written because that copy, eight
/// bytes at a time, and its iteration were a third of a worker's time
/// at 1400 B (bench/README.md, "A guest on vhost-user").
#[inline]
fn copy_from_guest(mem: &Mem, addr: GuestAddress, dst: &mut [u8]) -> bool {
    if let Ok(s) = GuestMemoryBackend::get_slice(mem, addr, dst.len()) {
        let g = s.ptr_guard();
        // SAFETY: `s` is `dst.len()` bytes of a mapping the caller's
        // memory guard keeps mapped, and cannot overlap `dst` (our own
        // buffer). The guest may write those bytes meanwhile: then the
        // copy holds some mix of them, which is the guest's own frame
        // torn by the guest, as with any device; u8 has no invalid value.
        unsafe { std::ptr::copy_nonoverlapping(g.as_ptr(), dst.as_mut_ptr(), dst.len()) };
        return true;
    }
    mem.read_slice(dst, addr).is_ok()
}

/// Copies `src` into guest memory at `addr`; whether it could. As
/// [`copy_from_guest`], the other way.
#[inline]
fn copy_to_guest(mem: &Mem, addr: GuestAddress, src: &[u8]) -> bool {
    if let Ok(s) = GuestMemoryBackend::get_slice(mem, addr, src.len()) {
        let g = s.ptr_guard_mut();
        // SAFETY: `s` is `src.len()` bytes of a mapping the caller's
        // memory guard keeps mapped, in a buffer the guest handed over
        // for writing (a receive descriptor), not overlapping `src`;
        // with no dirty bitmap (`Mem` has none) nothing else tracks it.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), g.as_ptr(), src.len()) };
        return true;
    }
    mem.write_slice(src, addr).is_ok()
}

/// Receive descriptors one frame may be spread over: a frame spans a
/// handful of chains at most; a driver posting buffers so small that it
/// needs more gets the frame dropped as not fitting.
const MAX_SEGS: usize = 64;

/// Writes one frame into the guest's receive queue: plans the chains it
/// takes (their writable descriptors), then writes the header (with
/// `num_buffers`, known once planned) and the frame across them.
fn write_frame(
    batch: &mut Batch<'_>,
    frame: &[u8],
    hdr_len: usize,
    mergeable: bool,
) -> Result<(), GuestRxError> {
    let total = hdr_len + frame.len();
    let mut segs = [(GuestAddress(0), 0usize, 0usize); MAX_SEGS]; // (addr, len, chain)
    let mut heads = [0u16; MAX_SEGS];
    let (mut nsegs, mut chains, mut room) = (0usize, 0usize, 0usize);
    while room < total {
        if chains == MAX_SEGS || (chains == 1 && !mergeable) {
            return give_back(batch, chains, GuestRxError::NoBuffers);
        }
        let Some(chain) = batch
            .state
            .get_queue_mut()
            .pop_descriptor_chain(&*batch.mem)
        else {
            return give_back(batch, chains, GuestRxError::NoBuffers);
        };
        heads[chains] = chain.head_index();
        chains += 1;
        let mut last_has_next = true; // as in read_frame: a broken chain
        for d in chain {
            last_has_next = d.has_next();
            if !d.is_write_only() || nsegs == MAX_SEGS {
                return malformed(batch, &heads[..chains]);
            }
            segs[nsegs] = (d.addr(), d.len() as usize, chains - 1);
            nsegs += 1;
            room += d.len() as usize;
        }
        if last_has_next {
            return malformed(batch, &heads[..chains]);
        }
    }
    let mut hdr = [0u8; 12];
    hdr[10..12].copy_from_slice(&(chains as u16).to_le_bytes());
    let mut lens = [0u32; MAX_SEGS];
    let (mut at, mut written) = (0usize, 0usize);
    for &(addr, len, chain) in &segs[..nsegs] {
        if written == total {
            break;
        }
        let take = len.min(total - written);
        // Header bytes first, then the frame: at most two writes per
        // descriptor, straight from the source slices.
        let mut off = 0;
        while off < take {
            let (part, from) = if at < hdr_len {
                (&hdr[..hdr_len], at)
            } else {
                (frame, at - hdr_len)
            };
            let n = (take - off).min(part.len() - from);
            if !copy_to_guest(
                &batch.mem,
                addr.unchecked_add(off as u64),
                &part[from..from + n],
            ) {
                return malformed(batch, &heads[..chains]);
            }
            off += n;
            at += n;
        }
        lens[chain] += take as u32;
        written += take;
    }
    for (&head, &len) in heads[..chains].iter().zip(&lens[..chains]) {
        batch.used(head, len);
    }
    Ok(())
}

/// A receive chain is malformed: every chain the frame took goes back to
/// the guest used and empty (requeued, it would fail again).
fn malformed(batch: &mut Batch<'_>, heads: &[u16]) -> Result<(), GuestRxError> {
    for &head in heads {
        batch.used(head, 0);
    }
    Err(GuestRxError::BadDescriptor)
}

/// Gives back the chains a frame took before it found no room: they
/// return to the ring's available side, as if never popped.
fn give_back(batch: &mut Batch<'_>, chains: usize, e: GuestRxError) -> Result<(), GuestRxError> {
    for _ in 0..chains {
        batch.state.get_queue_mut().go_to_previous_position();
    }
    Err(e)
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
