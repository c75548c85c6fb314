//! Chunks back to the kernel after a batch: to the fill rings up to
//! their targets (keeping a reserve in the pool for flood replicas),
//! frames queued on the TX rings a kick's worth at a time, completions
//! reaped and recycled.

use super::{chunk_of, Worker, BATCH, TX_KICK};
use crate::xsk::XskError;

impl Worker {
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
    pub(super) fn recycle(&mut self, s: usize) -> Result<(), XskError> {
        // Jumbo slots are freed whole, never filled (the test is a range
        // compare per chunk).
        let mut first_err = None;
        let set = &mut self.set;
        self.addrs.retain(|&a| {
            if !set.is_slot(a) {
                return true;
            }
            if let Err(e) = set.release(a) {
                first_err.get_or_insert(e);
            }
            false
        });
        let want = self.port(s).fill_target.saturating_sub(self.set.in_fill(s));
        let n = want
            .min(self.addrs.len())
            .min(self.lendable(s, self.addrs.len()));
        // A fill that fails lends nothing: every chunk goes to the pool.
        let (lent, failed) = match self.set.fill(s, &self.addrs[..n]) {
            Ok(lent) => (lent, None),
            Err(e) => (0, Some(e)),
        };
        let mut first_err = failed.or(first_err);
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
    pub(super) fn top_up(&mut self, s: usize, min: usize, busy: bool) -> Result<(), XskError> {
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
    pub(super) fn flush(&mut self, s: usize) -> Result<(), XskError> {
        let mut pending = std::mem::take(&mut self.port(s).pending);
        if let Some(spec) = self.tap.spec() {
            self.capture_tx(spec, s, &pending);
        }
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

    /// Copies the frames about to leave by socket `s` to the capture, if
    /// it takes its port's. Out of line: only while a capture runs.
    #[cold]
    #[inline(never)]
    fn capture_tx(&mut self, spec: super::CaptureSpec, s: usize, pending: &[(u64, u32)]) {
        let no = self.port(s).no;
        if !spec.takes(no, super::DIR_OUT) {
            return;
        }
        let now = self.epoch.elapsed().as_nanos() as u64;
        for &(a, len) in pending {
            if let Ok(f) = self.set.frame(a, len) {
                self.tap.offer(spec, now, no, super::DIR_OUT, f);
            }
        }
    }

    /// Reaps socket `s`'s completions into its fill ring (or the pool),
    /// then kicks TX if frames are still waiting on the ring, so copy mode
    /// keeps draining (and not otherwise: an idle round makes no syscall).
    pub(super) fn reap(&mut self, s: usize) -> Result<(), XskError> {
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
}
