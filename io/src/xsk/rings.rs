//! The rings of the packet path: chunks to a socket's fill ring, frames
//! off its rx ring, onto its TX ring and back from its completion ring,
//! and the wakeups (a TX kick, a fill-ring wakeup when idle), the only
//! syscalls of the packet path, made only when the kernel asks for one.

use super::jumbo::{self, Fed, XDP_PKT_CONTD};
use super::{XskError, XskSet, CHUNK};

impl XskSet {
    /// Gives owned chunks (any address inside each) to socket `s`'s fill
    /// ring for the kernel to receive into. Returns how many were lent
    /// (fewer when the ring is full); lends none if one is not ours or
    /// comes twice or is a jumbo slot's.
    pub fn fill(&mut self, s: usize, addrs: &[u64]) -> Result<usize, XskError> {
        let room = self.sock(s)?.fq.nb_free(addrs.len() as u32) as usize;
        let n = addrs.len().min(room).min(self.scratch.len());
        let (_, got) = self.take_batch(
            s,
            addrs[..n].iter().map(|&a| (a / CHUNK * CHUNK, 1)),
            n,
            false,
        )?;
        let Some(sock) = self.socks[s].as_mut() else {
            unreachable!("checked by sock()")
        };
        // SAFETY: each chunk was ours and is now marked the kernel's, so
        // nothing in userspace touches it until `rx` hands it back; all
        // belong to this UMEM (`check`), which this socket shares.
        let lent = unsafe { sock.fq.produce(&self.scratch[..got]) };
        debug_assert_eq!(lent, got, "nb_free promised the room");
        sock.in_fill += lent;
        Ok(lent)
    }

    /// At most `max` descriptors received on socket `s`, their frames
    /// appended to `out` as `(addr, len)` (returns how many frames); waits
    /// up to `timeout_ms` for the first. The frames' chunks are ours until
    /// given to [`Self::fill`] or [`Self::tx_send`]. A frame that came as
    /// a chain of descriptors (longer than a chunk) is copied into a
    /// jumbo slot, its chunks going back to the pool: its address is the
    /// slot's ([`Self::is_slot`]). A chain may span calls.
    pub fn rx(
        &mut self,
        s: usize,
        out: &mut Vec<(u64, u32)>,
        max: usize,
        timeout_ms: i32,
    ) -> Result<usize, XskError> {
        let Some(sock) = self.socks.get_mut(s).and_then(Option::as_mut) else {
            return Err(XskError::NoSocket(s));
        };
        let max = max.min(self.scratch.len());
        let n = if timeout_ms == 0 {
            // The poll loop's path: read the ring, no syscall (xsk-rs's
            // `poll_and_consume` would poll(2) even with a zero timeout).
            // SAFETY: the rx ring only returns chunks of this UMEM that
            // were lent through `fill`; the scratch descriptors are
            // overwritten.
            let n = unsafe { sock.rx.consume(&mut self.scratch[..max]) };
            if n == 0 && sock.fq.needs_wakeup() {
                // need_wakeup: the kernel waits for a syscall before it
                // takes more fill-ring entries (zero-copy drivers); only
                // when idle, so a busy ring costs nothing.
                sock.fq.wakeup(sock.rx.fd_mut(), 0)?;
            }
            n
        } else {
            // SAFETY: as above.
            unsafe {
                sock.rx
                    .poll_and_consume(&mut self.scratch[..max], timeout_ms)
            }?
        };
        let mut frames = 0;
        let base = self.base as *mut u8;
        for d in &self.scratch[..n] {
            let addr = d.addr() as u64;
            let len = d.lengths().data() as u32;
            let i = (addr / CHUNK) as usize;
            self.owned[i] = true;
            let contd = d.options() & XDP_PKT_CONTD != 0;
            if sock.chain.is_none() && !contd {
                out.push((addr, len));
                frames += 1;
                continue;
            }
            // Kernel-given lengths are bounded by the chunk; `feed`
            // checks the destination against its slot.
            let len = len.min((CHUNK - addr % CHUNK) as u32);
            let fed = jumbo::feed(
                &mut sock.chain,
                &mut self.slots,
                &mut self.jumbo,
                (addr, len, contd),
                |from, to, n| {
                    // SAFETY: `from..from + n` lies in chunk `i`, which
                    // the rx ring just returned to us (clamped above);
                    // `to..to + n` lies in a slot taken for this chain
                    // (`feed` checks the bound), which only userspace
                    // touches and nothing borrows while `&mut self` is
                    // held; a slot is never a received chunk, so the two
                    // do not overlap. Both are inside the UMEM mapping.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            base.add(from as usize),
                            base.add(to as usize),
                            n as usize,
                        );
                    }
                },
            );
            // The chain's chunk is copied out (or skipped): back to the pool.
            self.pooled[i] = true;
            self.pool.push(i as u64 * CHUNK);
            if let Fed::Frame(a, l) = fed {
                out.push((a, l));
                frames += 1;
            }
        }
        sock.in_fill = sock.in_fill.saturating_sub(n);
        Ok(frames)
    }

    /// Queues owned frames for transmission on socket `s`, each from its
    /// own address: the start may sit anywhere in its chunk, and the chunk
    /// may have been received on any socket of this set. Returns how many
    /// were queued (fewer when the ring is full) after kicking the kernel
    /// if it asked for a wakeup. Nothing is queued if any descriptor is
    /// not an owned frame inside one chunk, or two share a chunk.
    ///
    /// A frame in a jumbo slot goes as a chain of descriptors (see
    /// `jumbo.rs`), so fewer frames than the ring's free entries may fit.
    pub fn tx_send(&mut self, s: usize, descs: &[(u64, u32)]) -> Result<usize, XskError> {
        let want = (descs.len() * jumbo::SLOT_CHUNKS) as u32;
        let room = self.sock(s)?.tx.nb_free(want) as usize;
        let max = room.min(self.scratch.len());
        let (frames, got) = self.take_batch(s, descs.iter().copied(), max, true)?;
        let Some(sock) = self.socks[s].as_mut() else {
            unreachable!("checked by sock()")
        };
        // SAFETY: every frame was ours, lies inside one chunk of this
        // UMEM (shared by this socket), and is now marked the kernel's
        // (so no chunk is queued twice and userspace no longer touches
        // it) until `complete` hands it back.
        let sent = unsafe { sock.tx.produce(&self.scratch[..got]) };
        debug_assert_eq!(sent, got, "nb_free promised the room");
        if sock.tx.needs_wakeup() {
            sock.tx.wakeup()?;
        }
        Ok(frames)
    }

    /// Kicks socket `s`'s TX if descriptors are still waiting on its ring
    /// and the kernel asked for a wakeup (copy mode sends a bounded number
    /// of frames per kick). Frames the kernel has taken off the ring but
    /// not completed need no kick: in copy mode they complete when the
    /// receiving end frees them, which may run on another core (a
    /// threaded NAPI) long after the send. Kicking for those cost a
    /// syscall per round, about one per packet at 0.8 Mpps.
    pub fn kick(&mut self, s: usize) -> Result<(), XskError> {
        let ring = self.cfg.ring;
        let sock = self.sock(s)?;
        if sock.tx.nb_free_exact() < ring && sock.tx.needs_wakeup() {
            sock.tx.wakeup()?;
        }
        Ok(())
    }

    /// Chunks whose transmission on socket `s` completed, appended to
    /// `out` as the addresses they were sent from; they are ours again.
    /// A jumbo slot is not listed: it is free again with its last
    /// descriptor. Returns how many frames completed.
    pub fn complete(&mut self, s: usize, out: &mut Vec<u64>) -> usize {
        let Some(sock) = self.socks.get_mut(s).and_then(Option::as_mut) else {
            return 0;
        };
        // SAFETY: the completion ring only returns chunks of this UMEM
        // queued by `tx_send`; the scratch descriptors are overwritten.
        let n = unsafe { sock.cq.consume(&mut self.scratch) };
        let mut frames = 0;
        for d in &self.scratch[..n] {
            let addr = d.addr() as u64;
            let i = (addr / CHUNK) as usize;
            self.owned[i] = true;
            match self.slots.slot_of(i) {
                Some(k) => frames += usize::from(self.slots.completed(k)),
                None => {
                    out.push(addr);
                    frames += 1;
                }
            }
        }
        frames
    }
}
