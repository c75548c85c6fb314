//! The rings of the packet path: chunks to a socket's fill ring, frames
//! off its rx ring, onto its TX ring and back from its completion ring,
//! and the wakeups (a TX kick, a fill-ring wakeup when idle), the only
//! syscalls of the packet path, made only when the kernel asks for one.

use super::{XskError, XskSet, CHUNK};

impl XskSet {
    /// Gives owned chunks (any address inside each) to socket `s`'s fill
    /// ring for the kernel to receive into. Returns how many were lent
    /// (fewer when the ring is full); lends none if one is not ours or
    /// comes twice.
    pub fn fill(&mut self, s: usize, addrs: &[u64]) -> Result<usize, XskError> {
        let room = self.sock(s)?.fq.nb_free(addrs.len() as u32) as usize;
        let n = addrs.len().min(room).min(self.scratch.len());
        let got = self.take_batch(s, addrs[..n].iter().map(|&a| (a / CHUNK * CHUNK, 1)))?;
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

    /// At most `max` frames received on socket `s`, appended to `out` as
    /// `(addr, len)`; waits up to `timeout_ms` for the first. The frames'
    /// chunks are ours until given to [`Self::fill`] or [`Self::tx_send`].
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
        for d in &self.scratch[..n] {
            let addr = d.addr() as u64;
            self.owned[(addr / CHUNK) as usize] = true;
            out.push((addr, d.lengths().data() as u32));
        }
        sock.in_fill = sock.in_fill.saturating_sub(n);
        Ok(n)
    }

    /// Queues owned frames for transmission on socket `s`, each from its
    /// own address: the start may sit anywhere in its chunk, and the chunk
    /// may have been received on any socket of this set. Returns how many
    /// were queued (fewer when the ring is full) after kicking the kernel
    /// if it asked for a wakeup. Nothing is queued if any descriptor is
    /// not an owned frame inside one chunk, or two share a chunk.
    pub fn tx_send(&mut self, s: usize, descs: &[(u64, u32)]) -> Result<usize, XskError> {
        let room = self.sock(s)?.tx.nb_free(descs.len() as u32) as usize;
        let n = descs.len().min(room).min(self.scratch.len());
        let got = self.take_batch(s, descs[..n].iter().copied())?;
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
        Ok(sent)
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
    pub fn complete(&mut self, s: usize, out: &mut Vec<u64>) -> usize {
        let Some(sock) = self.socks.get_mut(s).and_then(Option::as_mut) else {
            return 0;
        };
        // SAFETY: the completion ring only returns chunks of this UMEM
        // queued by `tx_send`; the scratch descriptors are overwritten.
        let n = unsafe { sock.cq.consume(&mut self.scratch) };
        for d in &self.scratch[..n] {
            let addr = d.addr() as u64;
            self.owned[(addr / CHUNK) as usize] = true;
            out.push(addr);
        }
        n
    }
}
