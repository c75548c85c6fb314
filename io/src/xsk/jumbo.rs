//! Frames longer than a chunk (jumbo frames) over 4 KiB chunks.
//!
//! A socket bound with `XDP_USE_SG` receives a frame that does not fit
//! one chunk as a chain of descriptors, each but the last flagged
//! `XDP_PKT_CONTD`. The pipeline wants one contiguous buffer, so a chain
//! is copied into a *jumbo slot*: [`SLOT_CHUNKS`] consecutive chunks at
//! the top of the UMEM, set aside at creation and never given to a fill
//! ring or the pool. The chain's own chunks go back to the pool at once.
//! A frame of a single descriptor is not touched (no cost for normal
//! frames).
//!
//! On TX a frame in a slot is cut at chunk boundaries into a chain of
//! descriptors over the same memory (each inside one chunk, as aligned
//! mode requires). A slot is lent and returned whole: it is free again
//! when the last of its descriptors completes, or when the frame in it
//! is dropped.
//!
//! Here: the pure part (slot bookkeeping, chain assembly, splitting),
//! with no memory access of its own (the copy is the caller's), so it is
//! tested without sockets.

use super::CHUNK;

/// Chunks per jumbo slot: 16 KiB, room for a 9000-byte underlay frame
/// behind any headroom we use.
pub const SLOT_CHUNKS: usize = 4;
/// Bytes of one jumbo slot.
pub const SLOT_BYTES: u64 = SLOT_CHUNKS as u64 * CHUNK;
/// `XDP_PKT_CONTD`: more descriptors of this frame follow.
pub const XDP_PKT_CONTD: u32 = 1;

/// What happened to jumbo frames (per UMEM, so per worker).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JumboCounters {
    /// Chains received and assembled into a slot.
    pub rx_chains: u64,
    /// Frames sent as a chain of descriptors.
    pub tx_chains: u64,
    /// Chains dropped because every slot was in use.
    pub no_slot: u64,
    /// Chains dropped as malformed: a zero-length fragment, longer than a
    /// slot, or cut off by the socket's removal.
    pub bad_chain: u64,
}

/// The jumbo slots of a UMEM: chunks `first..first + count * SLOT_CHUNKS`.
#[derive(Debug)]
pub(crate) struct Slots {
    first: usize,
    count: usize,
    /// Free slots (a stack; capacity `count`, so pushing never allocates).
    free: Vec<u32>,
    /// `is_free[k]`: slot `k` is on `free` (refuses a double free).
    is_free: Vec<bool>,
    /// Descriptors of slot `k` the kernel holds (on a TX ring).
    out: Vec<u8>,
}

impl Slots {
    /// `count` slots starting at chunk `first`, all free.
    pub(crate) fn new(first: usize, count: usize) -> Self {
        Self {
            first,
            count,
            free: (0..count as u32).rev().collect(),
            is_free: vec![true; count],
            out: vec![0; count],
        }
    }

    /// Slots restored from a handoff (`handoff.rs`, which checked the
    /// numbers): `out[k]` descriptors of slot `k` on TX rings, the
    /// slots in `held` in hand (a chain being received), every other
    /// one free.
    pub(crate) fn restore(first: usize, out: &[u8], held: &[usize]) -> Self {
        let count = out.len();
        let mut is_free: Vec<bool> = out.iter().map(|&o| o == 0).collect();
        for &k in held {
            is_free[k] = false;
        }
        // Capacity `count`, as `new` makes it: pushing never allocates.
        let mut free = Vec::with_capacity(count);
        free.extend((0..count as u32).rev().filter(|&k| is_free[k as usize]));
        Self {
            first,
            count,
            free,
            is_free,
            out: out.to_vec(),
        }
    }

    /// Whether slot `k` is free.
    pub(crate) fn is_free(&self, k: usize) -> bool {
        self.is_free[k]
    }

    /// Descriptors of each slot on a TX ring (for a handoff).
    pub(crate) fn out_counts(&self) -> &[u8] {
        &self.out
    }

    /// Chunks set aside for slots.
    pub(crate) fn chunks(&self) -> usize {
        self.count * SLOT_CHUNKS
    }

    /// Chunks of free slots.
    pub(crate) fn free_chunks(&self) -> usize {
        self.free.len() * SLOT_CHUNKS
    }

    /// The slot chunk `i` belongs to, if any.
    #[inline]
    pub(crate) fn slot_of(&self, chunk: usize) -> Option<usize> {
        let k = chunk.checked_sub(self.first)? / SLOT_CHUNKS;
        (k < self.count).then_some(k)
    }

    /// Whether `addr` is the first byte of a slot.
    #[inline]
    pub(crate) fn is_slot_start(&self, addr: u64) -> bool {
        addr % SLOT_BYTES == (self.first as u64 * CHUNK) % SLOT_BYTES
            && self.slot_of((addr / CHUNK) as usize).is_some()
    }

    /// Whether `addr` lies in a slot.
    #[inline]
    pub(crate) fn contains(&self, addr: u64) -> bool {
        self.slot_of((addr / CHUNK) as usize).is_some()
    }

    /// The UMEM address of slot `k`.
    pub(crate) fn base(&self, k: usize) -> u64 {
        (self.first + k * SLOT_CHUNKS) as u64 * CHUNK
    }

    /// Whether slot `k` is in use (neither free nor held by the kernel).
    pub(crate) fn in_hand(&self, k: usize) -> bool {
        !self.is_free[k] && self.out[k] == 0
    }

    pub(crate) fn take(&mut self) -> Option<usize> {
        let k = self.free.pop()? as usize;
        self.is_free[k] = false;
        Some(k)
    }

    /// Frees slot `k`; `false` if it was free already or is on a ring.
    pub(crate) fn put(&mut self, k: usize) -> bool {
        if self.is_free[k] || self.out[k] != 0 {
            return false;
        }
        self.is_free[k] = true;
        self.free.push(k as u32);
        true
    }

    /// Slot `k` handed to a TX ring as `descs` descriptors.
    pub(crate) fn lend(&mut self, k: usize, descs: u8) {
        self.out[k] = descs;
    }

    /// Slot `k` taken back from the kernel without completion (its
    /// socket went, or the batch handing it over failed).
    pub(crate) fn unlend(&mut self, k: usize) {
        self.out[k] = 0;
    }

    /// One descriptor of slot `k` completed; `true` when it was the last
    /// (the slot is free again).
    pub(crate) fn completed(&mut self, k: usize) -> bool {
        self.out[k] = self.out[k].saturating_sub(1);
        self.out[k] == 0 && self.put(k)
    }
}

/// A chain being received on one socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chain {
    /// Its slot; `None` when none was free (the chain is skipped).
    slot: Option<usize>,
    /// Where in the slot the frame starts (the first descriptor's
    /// offset in its chunk: the same headroom as a normal frame).
    head: u64,
    len: u64,
    bad: bool,
}

impl Chain {
    /// Its state, for a handoff: (slot, head, length so far, bad).
    pub(crate) fn parts(&self) -> (Option<usize>, u64, u64, bool) {
        (self.slot, self.head, self.len, self.bad)
    }

    /// A chain taken over in a handoff (checked there: the slot is in
    /// hand, `head` inside a chunk, `len` inside a slot).
    pub(crate) fn from_parts(slot: Option<usize>, head: u64, len: u64, bad: bool) -> Self {
        Self {
            slot,
            head,
            len,
            bad,
        }
    }
}

/// What one received descriptor of a chain led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fed {
    /// The chain is complete: the frame `(addr, len)` in a slot.
    Frame(u64, u32),
    /// More descriptors to come.
    Pending,
    /// The chain ended and was dropped (counted).
    Dropped,
}

/// Feeds the received descriptor `(addr, len)` (`contd`: more follow) to
/// the socket's chain, copying its bytes into the slot with `copy(from,
/// to, len)` (UMEM addresses, both in chunks the caller owns). The
/// descriptor's chunk is the caller's to recycle whatever the result.
pub(crate) fn feed(
    chain: &mut Option<Chain>,
    slots: &mut Slots,
    counters: &mut JumboCounters,
    (addr, len, contd): (u64, u32, bool),
    mut copy: impl FnMut(u64, u64, u32),
) -> Fed {
    let c = chain.get_or_insert_with(|| Chain {
        slot: slots.take(),
        head: addr % CHUNK,
        len: 0,
        bad: false,
    });
    if len == 0 {
        c.bad = true;
    }
    if let (Some(k), false) = (c.slot, c.bad) {
        let off = c.head + c.len;
        if off + u64::from(len) <= SLOT_BYTES {
            copy(addr, slots.base(k) + off, len);
            c.len += u64::from(len);
        } else {
            c.bad = true;
        }
    }
    if contd {
        return Fed::Pending;
    }
    let Some(c) = chain.take() else {
        // Never: the chain was made above if there was none.
        return Fed::Dropped;
    };
    match c.slot {
        None => {
            counters.no_slot += 1;
            Fed::Dropped
        }
        Some(k) if c.bad => {
            slots.put(k);
            counters.bad_chain += 1;
            Fed::Dropped
        }
        Some(k) => {
            counters.rx_chains += 1;
            Fed::Frame(slots.base(k) + c.head, c.len as u32)
        }
    }
}

/// Drops a chain cut off before its end (its socket is going).
pub(crate) fn abort(chain: &mut Option<Chain>, slots: &mut Slots, counters: &mut JumboCounters) {
    if let Some(c) = chain.take() {
        if let Some(k) = c.slot {
            slots.put(k);
        }
        counters.bad_chain += 1;
    }
}

/// The descriptors `(addr, len, contd)` of the frame `(addr, len)` cut at
/// chunk boundaries, in order.
pub(crate) fn split(addr: u64, len: u32) -> impl Iterator<Item = (u64, u32, bool)> {
    let end = addr + u64::from(len);
    let mut at = addr;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let stop = ((at / CHUNK + 1) * CHUNK).min(end);
        let d = (at, (stop - at) as u32, stop < end);
        at = stop;
        Some(d)
    })
}

/// How many descriptors [`split`] cuts `(addr, len)` into.
pub(crate) fn pieces(addr: u64, len: u32) -> usize {
    if len == 0 {
        return 0;
    }
    let last = addr + u64::from(len) - 1;
    (last / CHUNK - addr / CHUNK + 1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A UMEM of `chunks` chunks with `slots` slots at the top.
    struct Mem {
        bytes: Vec<u8>,
        slots: Slots,
        counters: JumboCounters,
        chain: Option<Chain>,
    }

    impl Mem {
        fn new(chunks: usize, slots: usize) -> Self {
            Self {
                bytes: vec![0; chunks * CHUNK as usize],
                slots: Slots::new(chunks - slots * SLOT_CHUNKS, slots),
                counters: JumboCounters::default(),
                chain: None,
            }
        }

        fn feed(&mut self, addr: u64, len: u32, contd: bool) -> Fed {
            let bytes = &mut self.bytes;
            feed(
                &mut self.chain,
                &mut self.slots,
                &mut self.counters,
                (addr, len, contd),
                |from, to, n| {
                    let (from, to, n) = (from as usize, to as usize, n as usize);
                    bytes.copy_within(from..from + n, to);
                },
            )
        }
    }

    const HEAD: u64 = 256;

    #[test]
    fn split_cuts_at_chunk_boundaries_and_only_there() {
        let d: Vec<_> = split(CHUNK * 8 + HEAD, 9000).collect();
        assert_eq!(
            d,
            vec![
                (CHUNK * 8 + HEAD, (CHUNK - HEAD) as u32, true),
                (CHUNK * 9, CHUNK as u32, true),
                (CHUNK * 10, 9000 - (2 * CHUNK - HEAD) as u32, false),
            ]
        );
        assert_eq!(pieces(CHUNK * 8 + HEAD, 9000), 3);
        // A frame inside one chunk is one descriptor, without CONTD.
        assert_eq!(
            split(HEAD, 100).collect::<Vec<_>>(),
            vec![(HEAD, 100, false)]
        );
        assert_eq!(pieces(HEAD, 100), 1);
        // Exactly to the end of a chunk.
        assert_eq!(pieces(HEAD, (CHUNK - HEAD) as u32), 1);
        assert_eq!(pieces(HEAD, (CHUNK - HEAD) as u32 + 1), 2);
        assert_eq!(split(0, 0).count(), 0);
    }

    #[test]
    fn restored_slots_are_free_unless_on_a_ring_or_a_chains() {
        // Slot 0 on a TX ring as 2 descriptors, slot 2 a chain's.
        let mut s = Slots::restore(12, &[2, 0, 0, 0], &[2]);
        assert_eq!(s.free_chunks(), 2 * SLOT_CHUNKS);
        assert!(!s.in_hand(0) && s.in_hand(2) && !s.is_free(2));
        assert!(!s.put(0), "on a ring: not freed by hand");
        assert!(!s.completed(0) && s.completed(0), "free with its last");
        assert!(s.put(2));
        assert_eq!(s.free_chunks(), 4 * SLOT_CHUNKS);
        // Every slot comes out of the free list once.
        let mut taken: Vec<_> = std::iter::from_fn(|| s.take()).collect();
        taken.sort_unstable();
        assert_eq!(taken, [0, 1, 2, 3]);
        assert_eq!(s.out_counts(), [0, 0, 0, 0]);
    }

    #[test]
    fn a_chain_is_assembled_into_a_slot_behind_the_same_headroom() {
        let mut m = Mem::new(16, 2);
        m.bytes[(CHUNK + HEAD) as usize..(2 * CHUNK) as usize].fill(1);
        m.bytes[(2 * CHUNK + HEAD) as usize..(2 * CHUNK + HEAD + 100) as usize].fill(2);
        assert_eq!(
            m.feed(CHUNK + HEAD, (CHUNK - HEAD) as u32, true),
            Fed::Pending
        );
        let got = m.feed(2 * CHUNK + HEAD, 100, false);
        let len = (CHUNK - HEAD) as u32 + 100;
        let Fed::Frame(addr, l) = got else {
            panic!("{got:?}")
        };
        assert_eq!(l, len);
        assert_eq!(addr % CHUNK, HEAD);
        assert!(m.slots.is_slot_start(addr - HEAD));
        let f = &m.bytes[addr as usize..(addr + u64::from(l)) as usize];
        assert!(f[..(CHUNK - HEAD) as usize].iter().all(|&b| b == 1));
        assert!(f[(CHUNK - HEAD) as usize..].iter().all(|&b| b == 2));
        assert_eq!(m.counters.rx_chains, 1);
        assert_eq!(m.slots.free_chunks(), SLOT_CHUNKS);
    }

    #[test]
    fn chains_beyond_the_free_slots_are_dropped_and_counted() {
        let mut m = Mem::new(16, 1);
        assert_eq!(m.feed(HEAD, 10, true), Fed::Pending);
        assert!(matches!(m.feed(CHUNK, 10, false), Fed::Frame(..)));
        // The only slot is in hand: the next chain has none.
        assert_eq!(m.feed(HEAD, 10, true), Fed::Pending);
        assert_eq!(m.feed(CHUNK, 10, false), Fed::Dropped);
        assert_eq!(m.counters.no_slot, 1);
        // Freed, it serves again.
        let k = m.slots.slot_of(12).unwrap();
        assert!(m.slots.put(k));
        assert!(!m.slots.put(k), "a double free is refused");
        assert_eq!(m.feed(HEAD, 10, true), Fed::Pending);
        assert!(matches!(m.feed(CHUNK, 10, false), Fed::Frame(..)));
    }

    #[test]
    fn bad_chains_are_dropped_counted_and_give_their_slot_back() {
        let mut m = Mem::new(16, 1);
        // A zero-length fragment.
        assert_eq!(m.feed(HEAD, 100, true), Fed::Pending);
        assert_eq!(m.feed(CHUNK, 0, true), Fed::Pending);
        assert_eq!(m.feed(2 * CHUNK, 100, false), Fed::Dropped);
        // Longer than a slot.
        for i in 0..SLOT_CHUNKS as u64 {
            assert_eq!(m.feed(i * CHUNK, CHUNK as u32 - 1, true), Fed::Pending);
        }
        assert_eq!(m.feed(0, 1000, false), Fed::Dropped);
        // A CONTD descriptor followed by nothing: the socket goes.
        assert_eq!(m.feed(HEAD, 100, true), Fed::Pending);
        abort(&mut m.chain, &mut m.slots, &mut m.counters);
        abort(&mut m.chain, &mut m.slots, &mut m.counters);
        assert_eq!(m.counters.bad_chain, 3);
        assert_eq!(m.counters.rx_chains, 0);
        assert_eq!(m.slots.free_chunks(), SLOT_CHUNKS, "the slot is back");
    }

    #[test]
    fn a_slot_lent_to_tx_comes_back_with_its_last_completion() {
        let mut s = Slots::new(8, 2);
        let k = s.take().unwrap();
        s.lend(k, 3);
        assert!(!s.put(k), "on a ring: not freed by a drop");
        assert!(!s.completed(k));
        assert!(!s.completed(k));
        assert!(s.completed(k));
        assert_eq!(s.free_chunks(), 2 * SLOT_CHUNKS);
        assert_eq!(s.slot_of(7), None);
        assert_eq!(s.slot_of(8), Some(0));
        assert_eq!(s.slot_of(15), Some(1));
        assert_eq!(s.slot_of(16), None);
        assert!(s.is_slot_start(12 * CHUNK));
        assert!(!s.is_slot_start(13 * CHUNK));
    }

    proptest! {
        /// Split a frame in a slot as TX does, receive the pieces as a
        /// chain (each at its own chunk's headroom, as the kernel
        /// delivers them): the same bytes come out.
        #[test]
        fn split_then_assemble_round_trips(len in 1u32..(SLOT_BYTES - HEAD) as u32, seed: u8) {
            let mut m = Mem::new(32, 2);
            let src = 4 * CHUNK + HEAD;
            for i in 0..len as u64 {
                m.bytes[(src + i) as usize] = (i as u8).wrapping_mul(31) ^ seed;
            }
            let want = m.bytes[src as usize..(src + u64::from(len)) as usize].to_vec();
            let pieces_n = pieces(src, len);
            let mut got = None;
            for (n, (a, l, contd)) in split(src, len).enumerate() {
                prop_assert!(a / CHUNK == (a + u64::from(l) - 1) / CHUNK, "inside one chunk");
                prop_assert_eq!(contd, n + 1 < pieces_n);
                // Delivered in chunk 16 + n behind the headroom.
                let rx = (16 + n as u64) * CHUNK + HEAD;
                m.bytes.copy_within(a as usize..(a + u64::from(l)) as usize, rx as usize);
                got = Some(m.feed(rx, l, contd));
            }
            let Some(Fed::Frame(addr, l)) = got else {
                return Err(TestCaseError::fail(format!("{got:?}")));
            };
            prop_assert_eq!(l, len);
            prop_assert_eq!(&m.bytes[addr as usize..(addr + u64::from(l)) as usize], &want[..]);
        }
    }
}
