//! The packed open-addressing table behind every FDB view (layout and
//! hashing in the module above), and [`FdbView`], a base table plus a
//! delta, which is what workers read.

use std::mem::size_of;
use std::sync::Arc;

use xvs_types::MacAddr;

use super::{FdbDest, MAX_VLAN};

// ---- packed key and slot value ------------------------------------------------

pub(super) const OCCUPIED: u64 = 1 << 63;
pub(super) const MAC_MASK: u64 = 0xffff_ffff_ffff;
pub(super) const VAL_STATIC: u64 = 1 << 32;
pub(super) const VAL_TOMBSTONE: u64 = 1 << 33;
/// Arbitrary odd constant (from the golden ratio) mixed with the seed so that a
/// zero seed still multiplies by something with bits everywhere.
pub(super) const HASH_MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// The key word, without the occupied marker. The VLAN is masked to 12 bits so
/// no caller can reach the marker bit.
#[inline]
pub(super) fn pack_key(vlan: u16, mac: MacAddr) -> u64 {
    (u64::from(vlan & MAX_VLAN) << 48) | mac.to_u64()
}

#[inline]
pub(super) fn unpack_key(k: u64) -> (u16, MacAddr) {
    (
        ((k >> 48) as u16) & MAX_VLAN,
        MacAddr::from_u64(k & MAC_MASK),
    )
}

/// Folded multiply: the 128-bit product's halves XORed. One multiply, and every
/// key bit reaches the high bits that the multiply-shift reduction uses.
#[inline]
pub(super) fn hash(key: u64, seed: u64) -> u64 {
    let p = u128::from(key ^ seed) * u128::from(HASH_MUL ^ (seed >> 1) | 1);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Slots per bucket: one 64-byte cache line holds four keys and four values.
pub(super) const BUCKET: usize = 4;

/// Base tables from this many buckets (1 MiB) on are prefetched before
/// lookups: they no longer fit a core's L1/L2 next to everything else.
pub(super) const PREFETCH_MIN_BUCKETS: usize = 16 * 1024;

/// Four slots: `key[i]` is `key | OCCUPIED` or 0 when empty, `val[i]` its value.
/// Keys first so a miss reads 32 contiguous bytes.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
pub(super) struct Bucket {
    pub(super) key: [u64; BUCKET],
    pub(super) val: [u64; BUCKET],
}

impl Bucket {
    /// Bit i set where `key[i] == k`; branch-free so a hit costs one
    /// predictable branch whatever slot it is in.
    #[inline]
    pub(super) fn matches(&self, k: u64) -> u32 {
        u32::from(self.key[0] == k)
            | (u32::from(self.key[1] == k) << 1)
            | (u32::from(self.key[2] == k) << 2)
            | (u32::from(self.key[3] == k) << 3)
    }

    /// No free slot: every occupied key has bit 63 set and a free one is 0,
    /// so one AND answers for all four without a branch each.
    #[inline]
    pub(super) fn full(&self) -> bool {
        self.key[0] & self.key[1] & self.key[2] & self.key[3] & OCCUPIED != 0
    }
}

/// An open-addressing table filled once and then only read. Building takes
/// `&mut self`; once inside an `Arc` nothing can change it.
///
/// Linear probing by bucket: a key lives in the first bucket, from its home,
/// that had a free slot when it was inserted. Nothing is ever removed, so a
/// bucket with a free slot ends every probe: the key is there or nowhere.
#[derive(Debug)]
pub(super) struct Table {
    pub(super) buckets: Box<[Bucket]>,
    pub(super) len: usize,
    pub(super) seed: u64,
}

impl Table {
    /// An empty table with room for `n` keys at load <= 3/4.
    pub(super) fn with_room(n: usize, seed: u64) -> Self {
        let slots = if n == 0 { 0 } else { n + n / 3 + 1 };
        let nb = slots.div_ceil(BUCKET);
        Table {
            buckets: vec![Bucket::default(); nb].into_boxed_slice(),
            len: 0,
            seed,
        }
    }

    #[inline]
    pub(super) fn home(&self, h: u64) -> usize {
        // Lemire's reduction: result < buckets.len() for any h.
        ((u128::from(h) * self.buckets.len() as u128) >> 64) as usize
    }

    /// Inserts a key not yet present. Refuses (false) a duplicate, and a key
    /// that would leave no free slot: lookups of absent keys stop only at one.
    pub(super) fn insert_new(&mut self, key: u64, val: u64) -> bool {
        if self.len + 1 >= self.buckets.len() * BUCKET {
            return false;
        }
        let tagged = key | OCCUPIED;
        let mut b = self.home(hash(key, self.seed));
        loop {
            let bucket = &mut self.buckets[b];
            if bucket.matches(tagged) != 0 {
                return false;
            }
            if !bucket.full() {
                let free = bucket.matches(0);
                let i = free.trailing_zeros() as usize;
                bucket.key[i] = tagged;
                bucket.val[i] = val;
                self.len += 1;
                return true;
            }
            b += 1;
            if b == self.buckets.len() {
                b = 0;
            }
        }
    }

    /// Probe for `key` (hash `h` already computed with this table's seed).
    /// Terminates because `insert_new` always leaves a free slot.
    #[inline]
    pub(super) fn get(&self, h: u64, key: u64) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let tagged = key | OCCUPIED;
        let mut b = self.home(h);
        loop {
            let bucket = &self.buckets[b];
            let hit = bucket.matches(tagged);
            if hit != 0 {
                return Some(bucket.val[hit.trailing_zeros() as usize & (BUCKET - 1)]);
            }
            if !bucket.full() {
                return None;
            }
            b += 1;
            if b == self.buckets.len() {
                b = 0;
            }
        }
    }

    pub(super) fn bytes(&self) -> usize {
        self.buckets.len() * size_of::<Bucket>()
    }
}

/// The immutable FDB a worker reads. Cheap to clone via its `Arc`.
#[derive(Debug)]
pub struct FdbView {
    /// Copy of `base.seed`, one pointer hop closer to the worker.
    pub(super) seed: u64,
    pub(super) base: Arc<Table>,
    /// Built with the base's seed, so one hash serves both probes.
    pub(super) delta: Table,
    pub(super) generation: u64,
}

impl Default for FdbView {
    /// An empty view (what a bridge has before its FDB is published).
    fn default() -> Self {
        FdbView::empty(0)
    }
}

impl FdbView {
    pub(super) fn empty(seed: u64) -> Self {
        FdbView {
            seed,
            base: Arc::new(Table::with_room(0, seed)),
            delta: Table::with_room(0, seed),
            generation: 0,
        }
    }

    /// Starts loading the bucket a lookup of (`vlan`, `mac`) reads first,
    /// when the table is too large to stay in cache (a hint; a small table
    /// is left alone, where the prefetch would only cost). The pipeline
    /// calls it a batch ahead of the lookups.
    #[inline]
    pub fn prefetch(&self, vlan: u16, mac: MacAddr) {
        if self.base.buckets.len() < PREFETCH_MIN_BUCKETS {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let h = hash(pack_key(vlan, mac), self.seed);
            if let Some(b) = self.base.buckets.get(self.base.home(h)) {
                use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                let p: *const Bucket = b;
                // SAFETY: prefetch is only a hint: it never faults and reads
                // nothing the program sees; the address is a live bucket.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
            }
        }
    }

    /// Where `mac` in `vlan` lives, if known. Only the low 12 bits of `vlan`
    /// are used.
    #[inline]
    pub fn lookup(&self, vlan: u16, mac: MacAddr) -> Option<FdbDest> {
        let key = pack_key(vlan, mac);
        let h = hash(key, self.seed);
        if let Some(v) = self.delta.get(h, key) {
            if v & VAL_TOMBSTONE != 0 {
                return None;
            }
            return Some(FdbDest::unpack(v as u32));
        }
        self.base.get(h, key).map(|v| FdbDest::unpack(v as u32))
    }

    /// Publish counter of the [`Fdb`](super::Fdb) that built this view; equal generations
    /// mean equal contents.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Keys in the delta (live and tombstones): how far the view is from its base.
    pub fn delta_len(&self) -> usize {
        self.delta.len
    }
}
