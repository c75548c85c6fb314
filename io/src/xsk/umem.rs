//! Chunk ownership in a UMEM: which chunks userspace holds, lending
//! them to the pipeline as slices ([`XskSet::chunks_mut`], with a
//! [`PoolLender`] for replicas taken on demand), frames read and written
//! in place, the TX pool. Every check here is what makes the xsk-rs
//! calls of the whole set sound (the safety model of the [`xsk`](super)
//! module doc); none allocates.

use std::fmt;
use std::marker::PhantomData;

use xsk_rs::FrameDesc;

use super::jumbo::{self, SLOT_BYTES, XDP_PKT_CONTD};
use super::{XskError, XskSet, CHUNK};

/// Where a UMEM lies in memory: maps a pointer into a chunk lent by
/// [`XskSet::chunks_mut`] back to its UMEM address. Plain numbers, so
/// it can be used while the chunks are borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    base: usize,
    len: usize,
}

impl Region {
    /// The UMEM address of `p`, if it points into this UMEM.
    pub fn addr_of(&self, p: *const u8) -> Option<u64> {
        let off = (p as usize).checked_sub(self.base)?;
        (off < self.len).then_some(off as u64)
    }
}

/// Lends chunks from an [`XskSet`]'s pool as writable slices, one at a
/// time, while the set is borrowed ([`XskSet::chunks_mut_lending`]). A
/// chunk taken leaves the pool as [`XskSet::alloc`] takes it: the borrower
/// gives it back by address ([`XskSet::release`], `fill`, `tx_send`) once
/// the slices are gone.
pub struct PoolLender<'a> {
    base: *mut u8,
    pool: &'a mut Vec<u64>,
    pooled: &'a mut Vec<bool>,
    left: usize,
    _chunks: PhantomData<&'a mut [u8]>,
}

impl<'a> PoolLender<'a> {
    /// A free chunk, or `None` when the pool is empty or the limit is
    /// reached.
    pub fn take(&mut self) -> Option<&'a mut [u8]> {
        if self.left == 0 {
            return None;
        }
        let a = self.pool.pop()?;
        let i = (a / CHUNK) as usize;
        self.pooled[i] = false;
        self.left -= 1;
        // SAFETY: `base` is the UMEM's first byte and chunk `i` lies in
        // the mapping, which outlives the `'a` borrow of the set. A
        // pooled chunk is owned by userspace (no ring holds it), appears
        // once in the pool (`release` refuses a pooled chunk) and is not
        // among the slices `chunks_mut_lending` lent (it refuses pooled
        // chunks); popped and unmarked, it is lent once. The set stays
        // borrowed for `'a`, so nothing else reaches the chunk meanwhile.
        Some(unsafe { std::slice::from_raw_parts_mut(base_add(self.base, i), CHUNK as usize) })
    }
}

/// Chunk `i`'s first byte.
fn base_add(base: *mut u8, i: usize) -> *mut u8 {
    base.wrapping_add(i * CHUNK as usize)
}

impl fmt::Debug for PoolLender<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolLender")
            .field("pool", &self.pool.len())
            .field("left", &self.left)
            .finish()
    }
}
impl XskSet {
    /// Where the UMEM lies, to map lent chunks back to addresses.
    pub fn region(&self) -> Region {
        Region {
            base: self.base,
            len: self.owned.len() * CHUNK as usize,
        }
    }

    /// Chunks left in the TX pool.
    pub fn pool_len(&self) -> usize {
        self.pool.len()
    }

    /// Chunks the kernel holds now (lent to a fill ring or queued for
    /// transmission on some socket, not yet received or completed). With
    /// [`Self::pool_len`] and whatever the caller holds it accounts for
    /// every chunk: a count for reports, not for the packet path (it
    /// reads the whole ownership table).
    pub fn kernel_chunks(&self) -> usize {
        self.owned.iter().filter(|o| !**o).count()
    }

    /// Puts an owned chunk (any address inside it) back into the TX pool.
    /// The chunk must not be borrowed or queued anywhere else afterwards
    /// except through [`Self::alloc`]. Giving a chunk already in the pool
    /// is refused.
    pub fn release(&mut self, addr: u64) -> Result<(), XskError> {
        let base = addr / CHUNK * CHUNK;
        let i = self.check(base, 1)?;
        if let Some(k) = self.slots.slot_of(i) {
            // A jumbo slot (any address in its first chunk) is freed
            // whole; it never joins the pool.
            if !self.slots.is_slot_start(base) || !self.slots.put(k) {
                return Err(XskError::BadDesc { addr, len: 0 });
            }
            return Ok(());
        }
        if self.pooled[i] {
            return Err(XskError::BadDesc { addr, len: 0 });
        }
        self.pooled[i] = true;
        self.pool.push(base);
        Ok(())
    }

    /// Whether `addr` lies in a jumbo slot (a frame longer than a chunk,
    /// freed whole by [`Self::release`], never given to a fill ring).
    #[inline]
    pub fn is_slot(&self, addr: u64) -> bool {
        self.slots.contains(addr)
    }

    /// Lends whole owned chunks as disjoint writable slices of [`CHUNK`]
    /// bytes (a jumbo slot's first chunk: the whole slot, [`SLOT_BYTES`]),
    /// one per address, in order, appended to `out`. Every address
    /// must be the start of a chunk userspace owns, and none may repeat;
    /// then no two slices overlap, and the kernel touches none of them
    /// until the chunk is given back through [`Self::fill`] or
    /// [`Self::tx_send`], which the `&mut self` borrow prevents while the
    /// slices live. Map a pointer into a slice back to its address with
    /// [`Self::region`]. Lends nothing on error.
    pub fn chunks_mut<'a>(
        &'a mut self,
        addrs: &[u64],
        out: &mut Vec<&'a mut [u8]>,
    ) -> Result<(), XskError> {
        self.lend_chunks(addrs, out)
    }

    /// Like [`Self::chunks_mut`], and lends chunks from the pool one at a
    /// time besides, at most `limit`, for as long as the slices live: a
    /// batch takes buffers for flood replicas as it finds it needs them.
    pub fn chunks_mut_lending<'a>(
        &'a mut self,
        addrs: &[u64],
        out: &mut Vec<&'a mut [u8]>,
        limit: usize,
    ) -> Result<PoolLender<'a>, XskError> {
        self.lend_chunks(addrs, out)?;
        Ok(PoolLender {
            base: self.base as *mut u8,
            pooled: &mut self.pooled,
            pool: &mut self.pool,
            left: limit,
            _chunks: PhantomData,
        })
    }

    /// [`Self::chunks_mut`]'s body: the slices' lifetime is the caller's
    /// to tie to a borrow of `self` covering their whole life.
    fn lend_chunks(&mut self, addrs: &[u64], out: &mut Vec<&mut [u8]>) -> Result<(), XskError> {
        // Mark each chunk as lent while checking, so a repeat fails the
        // ownership check; then restore the marks.
        let mut bad = None;
        self.taken.clear();
        for &a in addrs {
            match self.check(a, CHUNK as u32) {
                Ok(i)
                    if a % CHUNK == 0
                        && !self.pooled[i]
                        && self.slots.slot_of(i).is_none_or(|k| {
                            self.slots.is_slot_start(a) && self.slots.in_hand(k)
                        }) =>
                {
                    self.owned[i] = false;
                    self.taken.push(i);
                }
                _ => {
                    bad = Some(a);
                    break;
                }
            }
        }
        for &i in &self.taken {
            self.owned[i] = true;
        }
        if let Some(addr) = bad {
            return Err(XskError::BadDesc { addr, len: 0 });
        }
        let base = self.base as *mut u8;
        let slots = &self.slots;
        out.extend(self.taken.iter().map(|&i| {
            let len = if slots.slot_of(i).is_some() {
                SLOT_BYTES
            } else {
                CHUNK
            } as usize;
            // SAFETY: `base` is the UMEM's first byte (taken from
            // xsk-rs's own view of chunk 0), the mapping spans every
            // chunk and chunk `i` lies inside it; the mapping lives as
            // long as `self`, which the slices borrow mutably. The
            // indices are distinct (checked above), so the slices are
            // disjoint, and none is in the pool (a `PoolLender` lends
            // only pooled chunks); the chunks are ours (no ring holds
            // them, the kernel does not write them) and the callers'
            // `&'a mut self` borrow keeps every other accessor (frame,
            // frame_mut, fill, tx_send) away while they live. A slot's
            // slice covers its chunks, which lie inside the mapping
            // (`Slots` holds the top chunks), are owned by userspace
            // (never pooled, filled, nor on a ring while in hand:
            // `in_hand`) and are lent by their first chunk only.
            unsafe { std::slice::from_raw_parts_mut(base.add(i * CHUNK as usize), len) }
        }));
        Ok(())
    }

    /// The chunk index of `(addr, len)` if it lies inside one chunk that
    /// we own.
    fn check(&self, addr: u64, len: u32) -> Result<usize, XskError> {
        let i = (addr / CHUNK) as usize;
        let end = addr.checked_add(u64::from(len));
        match end {
            Some(end)
                if len > 0 && end <= (i as u64 + 1) * CHUNK && self.owned.get(i) == Some(&true) =>
            {
                Ok(i)
            }
            _ => Err(XskError::BadDesc { addr, len }),
        }
    }

    /// A fresh descriptor for `(addr, len)`, already checked. Takes
    /// `&mut self` so that no frame borrowed from the set is alive.
    pub(super) fn desc(&mut self, addr: u64, len: u32) -> FrameDesc {
        let mut d = FrameDesc::default();
        d.set_addr(addr as usize);
        // SAFETY: `check` put `addr` inside a chunk of this UMEM that we
        // own (no ring holds it), and `&mut self` means no slice of it
        // handed out by `frame`/`frame_mut` is alive: this short-lived
        // mutable view is the only access.
        let mut data = unsafe { self.umem.data_mut(&mut d) };
        // Bounded by the room to the end of the chunk, which `check`
        // already showed to be at least `len`.
        data.cursor().set_pos(len as usize);
        d
    }

    /// Takes a chunk from the TX pool: returns its base address. The
    /// frame may start anywhere inside it.
    pub fn alloc(&mut self) -> Option<u64> {
        let a = self.pool.pop()?;
        self.pooled[(a / CHUNK) as usize] = false;
        Some(a)
    }

    /// Checks `(addr, len)` pairs for a batch to give to the kernel,
    /// marks their chunks the kernel's and writes their descriptors into
    /// `scratch`, at most `max` of them; on error nothing stays marked. A
    /// chunk given twice fails the second check (it is already marked).
    /// With `chains` (TX), a frame in a jumbo slot becomes a chain of
    /// descriptors cut at chunk boundaries (all but the last flagged
    /// `XDP_PKT_CONTD`), the slot lent whole; without (fill), a slot's
    /// chunk is refused. Returns (items taken, descriptors written).
    pub(super) fn take_batch(
        &mut self,
        s: usize,
        items: impl Iterator<Item = (u64, u32)>,
        max: usize,
        chains: bool,
    ) -> Result<(usize, usize), XskError> {
        self.taken.clear();
        let (mut items_n, mut n) = (0, 0);
        let mut failed = None;
        for (addr, len) in items {
            let i = (addr / CHUNK) as usize;
            let Some(k) = self.slots.slot_of(i) else {
                if n == max {
                    break;
                }
                match self.check(addr, len) {
                    Ok(i) => {
                        self.scratch[n] = self.desc(addr, len);
                        self.owned[i] = false;
                        self.lent_to[i] = s as u16;
                        self.taken.push(i);
                        n += 1;
                        items_n += 1;
                        continue;
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            };
            let start = self.slots.base(k);
            let end = addr.checked_add(u64::from(len));
            let fits = end.is_some_and(|end| end <= start + SLOT_BYTES) && len > 0;
            if !chains || !fits || !self.slots.in_hand(k) || !self.owned[i] {
                failed = Some(XskError::BadDesc { addr, len });
                break;
            }
            let pieces = jumbo::pieces(addr, len);
            if n + pieces > max {
                break;
            }
            for (a, l, contd) in jumbo::split(addr, len) {
                let c = (a / CHUNK) as usize;
                self.scratch[n] = self.desc(a, l);
                self.scratch[n].set_options(if contd { XDP_PKT_CONTD } else { 0 });
                self.owned[c] = false;
                self.lent_to[c] = s as u16;
                self.taken.push(c);
                n += 1;
            }
            self.slots.lend(k, pieces as u8);
            if pieces > 1 {
                self.jumbo.tx_chains += 1;
            }
            items_n += 1;
        }
        if let Some(e) = failed {
            for &i in &self.taken {
                self.owned[i] = true;
                if let Some(k) = self.slots.slot_of(i) {
                    self.slots.unlend(k);
                }
            }
            return Err(e);
        }
        Ok((items_n, n))
    }

    /// The bytes of an owned frame.
    pub fn frame(&mut self, addr: u64, len: u32) -> Result<&[u8], XskError> {
        self.check(addr, len)?;
        let d = self.desc(addr, len);
        // SAFETY: checked to be ours and inside one chunk of this UMEM;
        // the returned slice borrows `self`, so nothing can write the
        // chunk or give it to the kernel while it lives.
        let data = unsafe { self.umem.data(&d) };
        Ok(data.contents())
    }

    /// The bytes of an owned frame, writable. To push a header of `h`
    /// bytes in place, call this with `(addr - h, len + h)` and write
    /// the first `h` bytes; to pop one, use `(addr + h, len - h)`.
    pub fn frame_mut(&mut self, addr: u64, len: u32) -> Result<FrameMut<'_>, XskError> {
        let i = self.check(addr, len)?;
        self.descs[i] = self.desc(addr, len);
        // SAFETY: checked to be ours and inside chunk `i` of this UMEM;
        // the result borrows `self` mutably, so it is the only access to
        // the chunk while it lives and the chunk cannot be given to the
        // kernel meanwhile.
        let data = unsafe { self.umem.data_mut(&mut self.descs[i]) };
        Ok(FrameMut(data))
    }
}

/// A writable frame of an [`XskSet`] (dereferences to its bytes).
#[derive(Debug)]
pub struct FrameMut<'a>(xsk_rs::umem::frame::DataMut<'a>);

impl std::ops::Deref for FrameMut<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.contents()
    }
}

impl std::ops::DerefMut for FrameMut<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.contents_mut()
    }
}
