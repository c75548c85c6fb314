//! Per-bridge MAC table (FDB): which port, and behind a tunnel port which
//! remote VTEP, a (VLAN, MAC) lives at.
//!
//! # Who writes, who reads
//! - [`Fdb`] is owned by the control thread, the only writer. It holds the
//!   authoritative map, takes learn events (sent by workers over a channel),
//!   static entries from config, deletions, aging and flushes.
//! - [`FdbView`] is what workers read, on every packet. It is immutable and
//!   reached through an `Arc` inside the snapshot; workers never lock and never
//!   see a half-done update, because a change is a new view swapped in whole.
//!
//! # Why base + delta (LSM-style)
//! Rebuilding a 1M-entry table after every batch of learn events would cost
//! tens of milliseconds per publish. So a view is a large immutable *base*
//! table, shared by every view built since the last merge (`Arc<Table>`), plus
//! a small immutable *delta* table holding every key whose state differs from
//! the base: new or moved entries, and tombstones for entries deleted, aged
//! or flushed since the base was built. Publishing copies only the delta
//! (O(delta)). Once the delta holds more than `max(merge_min_delta,
//! base_len / 8)` keys, the publish merges instead: it builds a fresh base from
//! the authoritative map (O(n), amortised over at least n/8 changes) and the
//! delta starts empty again. Lookup asks the delta first (a hit there, live
//! or tombstone, is final), then the base.
//!
//! # Table layout
//! Both tables are open addressing with linear probing over 16-byte slots
//! (four to a cache line, 16-aligned so none straddles two): the key is
//! `VLAN << 48 | MAC` with bit 63 set as the "occupied" marker (an all-zero
//! key word is an empty slot; VLAN ids are 12 bits so bit 63 is free), the
//! value packs [`FdbDest`] in the low 32 bits plus a static and a tombstone
//! flag. Load is at most 3/4, so probe runs are short and a probe always ends
//! at an empty slot. The home slot comes from Lemire's multiply-shift
//! reduction rather than a power-of-two mask: capacity is then `~4n/3`
//! instead of up to `8n/3`, which is what keeps an entry under 64 bytes in
//! total at 1M entries (a power-of-two base would need 2^21 slots, 32 B per
//! entry, on top of the control map's ~36 B). The hash is one folded 64x64
//! multiply of the key with a seed that is random per base, so tables from
//! different merges and different daemons disagree on collisions and MACs
//! picked by an attacker cannot be aimed at one probe run for long.
//!
//! # Invariants
//! - Every key in the delta differs from the base (by value or by absence),
//!   so `delta ∘ base` answers exactly like the authoritative map at the time
//!   of the publish.
//! - Static entries are never aged, flushed by learning-related flushes, nor
//!   replaced by learning; only `add_static` and `del` change them.
//! - Multicast, broadcast and all-zero MACs are never stored.
//! - Remote indices are positions in a tunnel port's remote-VTEP list: when
//!   that list is reordered, the control plane rewrites the entries by the
//!   remote's address ([`Fdb::retain_map`]).

use std::collections::hash_map::{Entry, HashMap, RandomState};
use std::hash::BuildHasher;
use std::mem::size_of;
use std::sync::Arc;

use xvs_types::{MacAddr, PortNo, NO_PORT};

/// `FdbDest::remote` for a local (non-tunnel) port.
pub const NO_REMOTE: u16 = u16::MAX;

/// Highest valid VLAN id (12 bits); untagged traffic uses VLAN 0.
pub const MAX_VLAN: u16 = 0x0fff;

/// Upper bound on `FdbConfig::max_entries`: beyond this one bridge would need
/// gigabytes, which is a configuration mistake rather than a wish.
pub const MAX_FDB_ENTRIES: usize = 1 << 26;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Why an FDB operation or configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FdbError {
    #[error("FDB entry {mac} in VLAN {vlan}: multicast, broadcast and all-zero MACs cannot be FDB entries")]
    InvalidMac { vlan: u16, mac: MacAddr },
    #[error("FDB entry {mac} in VLAN {vlan}: VLAN id must be 0..=4095")]
    InvalidVlan { vlan: u16, mac: MacAddr },
    #[error("FDB entry {mac} in VLAN {vlan}: port {port} is the 'no port' marker")]
    InvalidPort {
        vlan: u16,
        mac: MacAddr,
        port: PortNo,
    },
    #[error("FDB full ({max} entries): cannot add {mac} in VLAN {vlan}")]
    Full { vlan: u16, mac: MacAddr, max: usize },
    #[error("FDB config: max_entries {0} must be 1..={MAX_FDB_ENTRIES}")]
    BadMaxEntries(usize),
    #[error("FDB config: aging_ns {0} is below the one-second aging resolution")]
    BadAging(u64),
}

/// Where frames to a MAC go: a port and, for a tunnel port, which remote VTEP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FdbDest {
    pub port: PortNo,
    /// Index into the tunnel port's remote-VTEP list; [`NO_REMOTE`] for local ports.
    pub remote: u16,
}

impl FdbDest {
    /// A local (AF_XDP) port.
    pub const fn local(port: PortNo) -> Self {
        FdbDest {
            port,
            remote: NO_REMOTE,
        }
    }

    /// Remote VTEP number `remote` behind tunnel port `port`.
    pub const fn tunnel(port: PortNo, remote: u16) -> Self {
        FdbDest { port, remote }
    }

    #[inline]
    pub fn is_tunnel(&self) -> bool {
        self.remote != NO_REMOTE
    }

    #[inline]
    fn pack(self) -> u32 {
        u32::from(self.port) | (u32::from(self.remote) << 16)
    }

    #[inline]
    fn unpack(v: u32) -> Self {
        FdbDest {
            port: v as u16,
            remote: (v >> 16) as u16,
        }
    }
}

/// FDB limits. `merge_min_delta` only tunes publishing cost; tests lower it
/// to force frequent merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbConfig {
    /// Learning stops (TableFull) at this many entries, static ones included.
    pub max_entries: usize,
    /// A learned entry idle longer than this is removed by [`Fdb::age`].
    /// Resolution is one second.
    pub aging_ns: u64,
    /// The delta is merged into a new base once it exceeds
    /// `max(merge_min_delta, base_len / 8)` keys.
    pub merge_min_delta: usize,
}

impl Default for FdbConfig {
    fn default() -> Self {
        FdbConfig {
            max_entries: 65_536,
            aging_ns: 300 * NS_PER_SEC,
            merge_min_delta: 4096,
        }
    }
}

/// What [`Fdb::learn`] did with a learn event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnOutcome {
    /// First time this (VLAN, MAC) was seen.
    New,
    /// Same place as before; only the idle timer was reset.
    Refreshed,
    /// The MAC now sits behind another port or remote VTEP.
    Moved { from: FdbDest },
    /// A static entry exists for this MAC; learning never overrides it.
    StaticIgnored,
    /// New MAC but the table is at `max_entries`.
    TableFull,
    /// New MAC, or a move, onto a port that already has its limit of
    /// learned MACs (see [`Fdb::learn_limited`]); a moving entry stays
    /// where it was.
    PortLimit,
    /// Multicast/zero source MAC, VLAN over 4095 or `NO_PORT`: never learned.
    Invalid,
}

impl LearnOutcome {
    /// Did the event change what workers must see?
    pub fn changed(self) -> bool {
        matches!(self, LearnOutcome::New | LearnOutcome::Moved { .. })
    }
}

/// One entry as `fdb-show` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntryInfo {
    pub vlan: u16,
    pub mac: MacAddr,
    pub dest: FdbDest,
    pub is_static: bool,
    /// Time since last seen (second resolution); 0 for static entries.
    pub age_ns: u64,
}

/// Event counters, monotonic over the life of the bridge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FdbCounters {
    /// New entries created by learning.
    pub learned: u64,
    /// Learned entries that moved to another port or remote.
    pub moved: u64,
    /// Entries removed by aging.
    pub aged: u64,
    /// Learn events refused because the table was full.
    pub full: u64,
    /// Learn events refused because their port had its limit of MACs.
    pub port_limit: u64,
    /// Learn events with an invalid MAC, VLAN or port.
    pub invalid: u64,
    /// Views published (calls to `view` that found changes).
    pub publishes: u64,
    /// Publishes that rebuilt the base.
    pub merges: u64,
}

// ---- packed key and slot value ------------------------------------------------

const OCCUPIED: u64 = 1 << 63;
const MAC_MASK: u64 = 0xffff_ffff_ffff;
const VAL_STATIC: u64 = 1 << 32;
const VAL_TOMBSTONE: u64 = 1 << 33;
/// Arbitrary odd constant (from the golden ratio) mixed with the seed so that a
/// zero seed still multiplies by something with bits everywhere.
const HASH_MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// The key word, without the occupied marker. The VLAN is masked to 12 bits so
/// no caller can reach the marker bit.
#[inline]
fn pack_key(vlan: u16, mac: MacAddr) -> u64 {
    (u64::from(vlan & MAX_VLAN) << 48) | mac.to_u64()
}

#[inline]
fn unpack_key(k: u64) -> (u16, MacAddr) {
    (
        ((k >> 48) as u16) & MAX_VLAN,
        MacAddr::from_u64(k & MAC_MASK),
    )
}

/// Folded multiply: the 128-bit product's halves XORed. One multiply, and every
/// key bit reaches the high bits that the multiply-shift reduction uses.
#[inline]
fn hash(key: u64, seed: u64) -> u64 {
    let p = u128::from(key ^ seed) * u128::from(HASH_MUL ^ (seed >> 1) | 1);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Slots per bucket: one 64-byte cache line holds four keys and four values.
const BUCKET: usize = 4;

/// Base tables from this many buckets (1 MiB) on are prefetched before
/// lookups: they no longer fit a core's L1/L2 next to everything else.
const PREFETCH_MIN_BUCKETS: usize = 16 * 1024;

/// Four slots: `key[i]` is `key | OCCUPIED` or 0 when empty, `val[i]` its value.
/// Keys first so a miss reads 32 contiguous bytes.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket {
    key: [u64; BUCKET],
    val: [u64; BUCKET],
}

impl Bucket {
    /// Bit i set where `key[i] == k`; branch-free so a hit costs one
    /// predictable branch whatever slot it is in.
    #[inline]
    fn matches(&self, k: u64) -> u32 {
        u32::from(self.key[0] == k)
            | (u32::from(self.key[1] == k) << 1)
            | (u32::from(self.key[2] == k) << 2)
            | (u32::from(self.key[3] == k) << 3)
    }

    /// No free slot: every occupied key has bit 63 set and a free one is 0,
    /// so one AND answers for all four without a branch each.
    #[inline]
    fn full(&self) -> bool {
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
struct Table {
    buckets: Box<[Bucket]>,
    len: usize,
    seed: u64,
}

impl Table {
    /// An empty table with room for `n` keys at load <= 3/4.
    fn with_room(n: usize, seed: u64) -> Self {
        let slots = if n == 0 { 0 } else { n + n / 3 + 1 };
        let nb = slots.div_ceil(BUCKET);
        Table {
            buckets: vec![Bucket::default(); nb].into_boxed_slice(),
            len: 0,
            seed,
        }
    }

    #[inline]
    fn home(&self, h: u64) -> usize {
        // Lemire's reduction: result < buckets.len() for any h.
        ((u128::from(h) * self.buckets.len() as u128) >> 64) as usize
    }

    /// Inserts a key not yet present. Refuses (false) a duplicate, and a key
    /// that would leave no free slot: lookups of absent keys stop only at one.
    fn insert_new(&mut self, key: u64, val: u64) -> bool {
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
    fn get(&self, h: u64, key: u64) -> Option<u64> {
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

    fn bytes(&self) -> usize {
        self.buckets.len() * size_of::<Bucket>()
    }
}

/// The immutable FDB a worker reads. Cheap to clone via its `Arc`.
#[derive(Debug)]
pub struct FdbView {
    /// Copy of `base.seed`, one pointer hop closer to the worker.
    seed: u64,
    base: Arc<Table>,
    /// Built with the base's seed, so one hash serves both probes.
    delta: Table,
    generation: u64,
}

impl Default for FdbView {
    /// An empty view (what a bridge has before its FDB is published).
    fn default() -> Self {
        FdbView::empty(0)
    }
}

impl FdbView {
    fn empty(seed: u64) -> Self {
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

    /// Publish counter of the [`Fdb`] that built this view; equal generations
    /// mean equal contents.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Keys in the delta (live and tombstones): how far the view is from its base.
    pub fn delta_len(&self) -> usize {
        self.delta.len
    }
}

/// Control-side value: 8 bytes so that the map costs 17 B per bucket.
#[derive(Debug, Clone, Copy)]
struct Ctl {
    dest: u32,
    /// Last-seen time in whole seconds, or `STATIC_SEEN` for a static entry.
    seen: u32,
}

const STATIC_SEEN: u32 = u32::MAX;

impl Ctl {
    #[inline]
    fn is_static(self) -> bool {
        self.seen == STATIC_SEEN
    }

    /// The slot value this entry has in a table.
    #[inline]
    fn slot_val(self) -> u64 {
        let flags = if self.is_static() { VAL_STATIC } else { 0 };
        u64::from(self.dest) | flags
    }
}

/// `now` in whole seconds, kept below `STATIC_SEEN` (saturates after 136 years
/// of uptime rather than wrapping).
#[inline]
fn secs(now: u64) -> u32 {
    (now / NS_PER_SEC).min(u64::from(STATIC_SEEN - 1)) as u32
}

/// The control-side FDB of one bridge. See the module doc.
#[derive(Debug)]
pub struct Fdb {
    cfg: FdbConfig,
    /// Authoritative contents.
    map: HashMap<u64, Ctl>,
    /// The base every view since the last merge shares.
    base: Arc<Table>,
    /// Keys that may differ from `base` since the last merge. May hold
    /// duplicates between publishes; a publish sorts, dedups and drops keys that
    /// turned out equal to the base, so afterwards it is exactly the delta.
    changed: Vec<u64>,
    /// The last published view.
    view: Arc<FdbView>,
    /// Something changed since `view` was built.
    dirty: bool,
    seeds: RandomState,
    counters: FdbCounters,
    /// Learned (not static) entries per destination port, kept with `map`
    /// so that a per-port limit costs a lookup, not a scan, per event.
    learned_on: HashMap<PortNo, usize>,
}

/// Keeps [`Fdb::learned_on`] in step as `c` enters (`add`) or leaves the map.
fn tally(per_port: &mut HashMap<PortNo, usize>, c: Ctl, add: bool) {
    if c.is_static() {
        return;
    }
    let port = FdbDest::unpack(c.dest).port;
    if add {
        *per_port.entry(port).or_default() += 1;
    } else if let Some(n) = per_port.get_mut(&port) {
        *n -= 1;
        if *n == 0 {
            per_port.remove(&port);
        }
    }
}

impl Fdb {
    pub fn new(cfg: FdbConfig) -> Result<Self, FdbError> {
        if cfg.max_entries == 0 || cfg.max_entries > MAX_FDB_ENTRIES {
            return Err(FdbError::BadMaxEntries(cfg.max_entries));
        }
        if cfg.aging_ns < NS_PER_SEC {
            return Err(FdbError::BadAging(cfg.aging_ns));
        }
        let seeds = RandomState::new();
        let view = Arc::new(FdbView::empty(seeds.hash_one(0u64)));
        Ok(Fdb {
            cfg,
            map: HashMap::new(),
            base: view.base.clone(),
            changed: Vec::new(),
            view,
            dirty: false,
            seeds,
            counters: FdbCounters::default(),
            learned_on: HashMap::new(),
        })
    }

    pub fn config(&self) -> &FdbConfig {
        &self.cfg
    }

    /// Changes the limits (a bridge reconfigured). Entries over a lowered
    /// `max_entries` stay until they age out; learning resumes below it.
    pub fn set_config(&mut self, cfg: FdbConfig) -> Result<(), FdbError> {
        Fdb::new(cfg)?;
        self.cfg = cfg;
        Ok(())
    }

    /// Removes every entry `pred` selects; returns how many.
    pub fn remove_if(&mut self, mut pred: impl FnMut(&FdbEntryInfo) -> bool) -> usize {
        self.remove_where(|k, c| pred(&info(k, c, 0))).unwrap_or(0)
    }

    /// Rewrites or removes entries: `f` returns the entry's new
    /// destination (its idle time and static flag stay), or `None` to
    /// remove it. Returns how many changed or went.
    pub fn retain_map(&mut self, mut f: impl FnMut(&FdbEntryInfo) -> Option<FdbDest>) -> usize {
        let before = self.changed.len();
        let changed = &mut self.changed;
        let per_port = &mut self.learned_on;
        self.map.retain(|&k, c| match f(&info(k, *c, 0)) {
            None => {
                changed.push(k);
                tally(per_port, *c, false);
                false
            }
            Some(d) => {
                if d.pack() != c.dest {
                    tally(per_port, *c, false);
                    c.dest = d.pack();
                    tally(per_port, *c, true);
                    changed.push(k);
                }
                true
            }
        });
        let n = self.changed.len() - before;
        if n > 0 {
            self.dirty = true;
            if self.changed.len() > 2 * self.cfg.max_entries.max(self.cfg.merge_min_delta) {
                self.publish();
            }
        }
        n
    }

    fn validate(&self, vlan: u16, mac: MacAddr, dest: FdbDest) -> Result<(), FdbError> {
        if vlan > MAX_VLAN {
            return Err(FdbError::InvalidVlan { vlan, mac });
        }
        if mac.is_multicast() || mac.is_zero() {
            return Err(FdbError::InvalidMac { vlan, mac });
        }
        if dest.port == NO_PORT {
            return Err(FdbError::InvalidPort {
                vlan,
                mac,
                port: dest.port,
            });
        }
        Ok(())
    }

    fn mark(&mut self, key: u64) {
        self.changed.push(key);
        self.dirty = true;
        // A flapping MAC pushes its key on every move; if nobody calls `view`
        // for a long time, compact rather than grow without bound.
        if self.changed.len() > 2 * self.cfg.max_entries.max(self.cfg.merge_min_delta) {
            self.publish();
        }
    }

    /// Adds or replaces a static entry (replacing a learned one is allowed:
    /// config wins over learning).
    pub fn add_static(&mut self, vlan: u16, mac: MacAddr, dest: FdbDest) -> Result<(), FdbError> {
        self.validate(vlan, mac, dest)?;
        let key = pack_key(vlan, mac);
        if !self.map.contains_key(&key) && self.map.len() >= self.cfg.max_entries {
            return Err(FdbError::Full {
                vlan,
                mac,
                max: self.cfg.max_entries,
            });
        }
        let replaced = self.map.insert(
            key,
            Ctl {
                dest: dest.pack(),
                seen: STATIC_SEEN,
            },
        );
        if let Some(c) = replaced {
            tally(&mut self.learned_on, c, false);
        }
        self.mark(key);
        Ok(())
    }

    /// Removes an entry, static or learned. False if there was none.
    pub fn del(&mut self, vlan: u16, mac: MacAddr) -> bool {
        if vlan > MAX_VLAN {
            return false;
        }
        let key = pack_key(vlan, mac);
        let Some(c) = self.map.remove(&key) else {
            return false;
        };
        tally(&mut self.learned_on, c, false);
        self.mark(key);
        true
    }

    /// Takes one learn event: `mac` was the source of a frame in `vlan` that
    /// arrived at `dest` at time `now`.
    pub fn learn(&mut self, vlan: u16, mac: MacAddr, dest: FdbDest, now: u64) -> LearnOutcome {
        self.learn_limited(vlan, mac, dest, now, None)
    }

    /// [`Fdb::learn`], with at most `port_max` learned entries on
    /// `dest.port` (static ones do not count: they are config). A MAC
    /// already there only refreshes, so the limit never evicts.
    pub fn learn_limited(
        &mut self,
        vlan: u16,
        mac: MacAddr,
        dest: FdbDest,
        now: u64,
        port_max: Option<usize>,
    ) -> LearnOutcome {
        if self.validate(vlan, mac, dest).is_err() {
            self.counters.invalid += 1;
            return LearnOutcome::Invalid;
        }
        let key = pack_key(vlan, mac);
        let full = self.map.len() >= self.cfg.max_entries;
        let at_limit =
            port_max.is_some_and(|m| self.learned_on.get(&dest.port).copied().unwrap_or(0) >= m);
        let packed = dest.pack();
        let outcome = match self.map.entry(key) {
            Entry::Occupied(mut e) => {
                let c = e.get_mut();
                if c.is_static() {
                    return LearnOutcome::StaticIgnored;
                }
                if c.dest == packed {
                    c.seen = secs(now);
                    // The view does not carry timestamps: nothing to publish.
                    return LearnOutcome::Refreshed;
                }
                let from = FdbDest::unpack(c.dest);
                // A move between remotes of one tunnel port adds nothing
                // to the port's count.
                if at_limit && from.port != dest.port {
                    self.counters.port_limit += 1;
                    return LearnOutcome::PortLimit;
                }
                c.seen = secs(now);
                tally(&mut self.learned_on, *c, false);
                c.dest = packed;
                tally(&mut self.learned_on, *c, true);
                self.counters.moved += 1;
                LearnOutcome::Moved { from }
            }
            Entry::Vacant(e) => {
                if full {
                    self.counters.full += 1;
                    return LearnOutcome::TableFull;
                }
                if at_limit {
                    self.counters.port_limit += 1;
                    return LearnOutcome::PortLimit;
                }
                let c = e.insert(Ctl {
                    dest: packed,
                    seen: secs(now),
                });
                tally(&mut self.learned_on, *c, true);
                self.counters.learned += 1;
                LearnOutcome::New
            }
        };
        self.mark(key);
        outcome
    }

    /// Removes learned entries idle for longer than `aging_ns`. O(len): call it
    /// about once a second, not per event. Returns how many were removed.
    pub fn age(&mut self, now: u64) -> usize {
        let aging = self.cfg.aging_ns;
        self.remove_where(|_, c| {
            !c.is_static() && now.saturating_sub(u64::from(c.seen) * NS_PER_SEC) > aging
        })
        .inspect(|&n| self.counters.aged += n as u64)
        .unwrap_or(0)
    }

    /// Removes the learned entries behind `port` (static ones are config and
    /// stay). Returns how many were removed.
    pub fn flush_port(&mut self, port: PortNo) -> usize {
        self.remove_where(|_, c| !c.is_static() && FdbDest::unpack(c.dest).port == port)
            .unwrap_or(0)
    }

    /// Removes every learned entry; static ones stay. Returns how many.
    pub fn flush(&mut self) -> usize {
        self.remove_where(|_, c| !c.is_static()).unwrap_or(0)
    }

    /// Shared body of the bulk removals; `None` when nothing matched.
    fn remove_where(&mut self, mut pred: impl FnMut(u64, Ctl) -> bool) -> Option<usize> {
        let before = self.changed.len();
        let changed = &mut self.changed;
        let per_port = &mut self.learned_on;
        self.map.retain(|&k, c| {
            if pred(k, *c) {
                changed.push(k);
                tally(per_port, *c, false);
                false
            } else {
                true
            }
        });
        let n = self.changed.len() - before;
        if n == 0 {
            return None;
        }
        self.dirty = true;
        if self.changed.len() > 2 * self.cfg.max_entries.max(self.cfg.merge_min_delta) {
            self.publish();
        }
        Some(n)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The authoritative entry for (`vlan`, `mac`), if any.
    pub fn get(&self, vlan: u16, mac: MacAddr, now: u64) -> Option<FdbEntryInfo> {
        if vlan > MAX_VLAN {
            return None;
        }
        let key = pack_key(vlan, mac);
        self.map.get(&key).map(|&c| info(key, c, now))
    }

    /// Every entry, in no particular order (`fdb-show` sorts).
    pub fn iter(&self, now: u64) -> impl Iterator<Item = FdbEntryInfo> + '_ {
        self.map.iter().map(move |(&k, &c)| info(k, c, now))
    }

    pub fn counters(&self) -> FdbCounters {
        self.counters
    }

    /// Learned entries behind `port` (static ones not counted).
    pub fn learned_on(&self, port: PortNo) -> usize {
        self.learned_on.get(&port).copied().unwrap_or(0)
    }

    /// The current immutable view for workers. Returns the same `Arc` when
    /// nothing changed since the last call; otherwise publishes the delta, or
    /// merges it into a new base when it has grown too large.
    pub fn view(&mut self) -> Arc<FdbView> {
        if self.dirty {
            self.publish();
        }
        self.view.clone()
    }

    fn publish(&mut self) {
        self.dirty = false;
        self.counters.publishes += 1;
        let generation = self.view.generation + 1;
        let limit = self.cfg.merge_min_delta.max(self.base.len / 8);
        // Every key counted in the size difference is in the delta, so a
        // large difference (bulk learning, a flush) means merge without first
        // sorting the change list.
        if self.map.len().abs_diff(self.base.len) > limit {
            self.merge(generation);
            return;
        }

        self.changed.sort_unstable();
        self.changed.dedup();
        let (map, base) = (&self.map, &self.base);
        let mut delta: Vec<(u64, u64)> = Vec::with_capacity(self.changed.len());
        self.changed.retain(|&k| {
            let now_val = map.get(&k).map(|c| c.slot_val());
            let base_val = base.get(hash(k, base.seed), k);
            match (now_val, base_val) {
                (None, None) => false,
                (None, Some(_)) => {
                    delta.push((k, VAL_TOMBSTONE));
                    true
                }
                (Some(v), b) if Some(v) == b => false,
                (Some(v), _) => {
                    delta.push((k, v));
                    true
                }
            }
        });

        if delta.len() > limit {
            self.merge(generation);
            return;
        }
        let mut table = Table::with_room(delta.len(), self.base.seed);
        for (k, v) in delta {
            // Keys are unique after dedup and the table has room for all of them.
            let inserted = table.insert_new(k, v);
            debug_assert!(inserted);
        }
        self.view = Arc::new(FdbView {
            seed: self.base.seed,
            base: self.base.clone(),
            delta: table,
            generation,
        });
    }

    fn merge(&mut self, generation: u64) {
        self.counters.merges += 1;
        let seed = self.seeds.hash_one(self.counters.merges);
        let mut table = Table::with_room(self.map.len(), seed);
        for (&k, &c) in &self.map {
            let inserted = table.insert_new(k, c.slot_val());
            debug_assert!(inserted);
        }
        self.base = Arc::new(table);
        self.changed.clear();
        // The old base may still be read by workers through older views; the
        // last Arc to go frees it, so `changed` need not keep its capacity.
        self.changed.shrink_to(self.cfg.merge_min_delta);
        self.view = Arc::new(FdbView {
            seed,
            base: self.base.clone(),
            delta: Table::with_room(0, seed),
            generation,
        });
    }

    /// Estimated heap bytes held by this FDB and its current view (the control
    /// map, the base, the delta, the change list). Older views still held by
    /// workers are not counted.
    pub fn memory_bytes(&self) -> usize {
        hashmap_bytes(self.map.capacity(), size_of::<(u64, Ctl)>())
            + self.base.bytes()
            + self.view.delta.bytes()
            + self.changed.capacity() * size_of::<u64>()
            + size_of::<Self>()
    }
}

fn info(key: u64, c: Ctl, now: u64) -> FdbEntryInfo {
    let (vlan, mac) = unpack_key(key);
    let is_static = c.is_static();
    FdbEntryInfo {
        vlan,
        mac,
        dest: FdbDest::unpack(c.dest),
        is_static,
        age_ns: if is_static {
            0
        } else {
            now.saturating_sub(u64::from(c.seen) * NS_PER_SEC)
        },
    }
}

/// Bytes of a std (SwissTable) `HashMap` with the given `capacity()`: buckets
/// are a power of two at most 7/8 full, each one `entry` bytes plus a control
/// byte, and one extra group of control bytes.
fn hashmap_bytes(capacity: usize, entry: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    buckets * (entry + 1) + 16
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = NS_PER_SEC;

    fn mac(n: u64) -> MacAddr {
        // Locally administered unicast: 02:xx:...
        MacAddr::from_u64(0x0200_0000_0000 | n)
    }

    fn fdb(max: usize) -> Fdb {
        Fdb::new(FdbConfig {
            max_entries: max,
            ..FdbConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn learn_refresh_move() {
        let mut f = fdb(16);
        let a = FdbDest::local(1);
        let b = FdbDest::tunnel(2, 0);
        assert_eq!(f.learn(10, mac(1), a, 0), LearnOutcome::New);
        assert_eq!(f.learn(10, mac(1), a, S), LearnOutcome::Refreshed);
        assert_eq!(
            f.learn(10, mac(1), b, 2 * S),
            LearnOutcome::Moved { from: a }
        );
        assert_eq!(
            f.learn(10, mac(1), FdbDest::tunnel(2, 1), 2 * S),
            LearnOutcome::Moved { from: b }
        );
        // Same MAC in another VLAN is another entry.
        assert_eq!(f.learn(11, mac(1), a, 0), LearnOutcome::New);
        let v = f.view();
        assert_eq!(v.lookup(10, mac(1)), Some(FdbDest::tunnel(2, 1)));
        assert_eq!(v.lookup(11, mac(1)), Some(a));
        assert_eq!(v.lookup(12, mac(1)), None);
        let c = f.counters();
        assert_eq!((c.learned, c.moved), (2, 2));
    }

    #[test]
    fn invalid_sources_are_not_learned() {
        let mut f = fdb(16);
        let d = FdbDest::local(1);
        assert_eq!(f.learn(1, MacAddr::BROADCAST, d, 0), LearnOutcome::Invalid);
        assert_eq!(
            f.learn(1, MacAddr([1, 0, 0x5e, 0, 0, 1]), d, 0),
            LearnOutcome::Invalid
        );
        assert_eq!(f.learn(1, MacAddr::ZERO, d, 0), LearnOutcome::Invalid);
        assert_eq!(f.learn(4096, mac(1), d, 0), LearnOutcome::Invalid);
        assert_eq!(
            f.learn(1, mac(1), FdbDest::local(NO_PORT), 0),
            LearnOutcome::Invalid
        );
        assert!(f.is_empty());
        assert_eq!(f.counters().invalid, 5);
        assert!(matches!(
            f.add_static(1, MacAddr::BROADCAST, d),
            Err(FdbError::InvalidMac { .. })
        ));
        assert!(matches!(
            f.add_static(5000, mac(1), d),
            Err(FdbError::InvalidVlan { vlan: 5000, .. })
        ));
    }

    #[test]
    fn static_wins_over_learning_and_never_ages() {
        let mut f = fdb(16);
        let s = FdbDest::local(3);
        f.learn(1, mac(7), FdbDest::local(1), 0);
        f.add_static(1, mac(7), s).unwrap();
        assert_eq!(
            f.learn(1, mac(7), FdbDest::local(1), S),
            LearnOutcome::StaticIgnored
        );
        assert_eq!(f.age(10_000 * S), 0);
        assert_eq!(f.flush(), 0);
        assert_eq!(f.flush_port(3), 0);
        assert_eq!(f.view().lookup(1, mac(7)), Some(s));
        let e = f.get(1, mac(7), 99 * S).unwrap();
        assert!(e.is_static);
        assert_eq!(e.age_ns, 0);
        assert!(f.del(1, mac(7)));
        assert!(!f.del(1, mac(7)));
        assert_eq!(f.view().lookup(1, mac(7)), None);
    }

    #[test]
    fn aging_follows_now() {
        let mut f = fdb(16);
        let d = FdbDest::local(1);
        f.learn(0, mac(1), d, 0);
        f.learn(0, mac(2), d, 100 * S);
        assert_eq!(f.age(300 * S), 0);
        assert_eq!(f.age(301 * S), 1);
        assert_eq!(f.get(0, mac(2), 150 * S).unwrap().age_ns, 50 * S);
        // A refresh restarts the idle timer.
        assert_eq!(f.learn(0, mac(2), d, 350 * S), LearnOutcome::Refreshed);
        assert_eq!(f.age(500 * S), 0);
        assert_eq!(f.age(651 * S), 1);
        assert!(f.is_empty());
        assert_eq!(f.counters().aged, 2);
        assert_eq!(f.view().lookup(0, mac(2)), None);
    }

    #[test]
    fn a_port_limit_refuses_new_and_moving_macs_but_never_evicts() {
        let mut f = fdb(16);
        let (p1, p2) = (FdbDest::local(1), FdbDest::local(2));
        let lim = Some(2);
        assert_eq!(f.learn_limited(0, mac(1), p1, 0, lim), LearnOutcome::New);
        // Static entries are config, not counted against the limit.
        f.add_static(0, mac(9), p1).unwrap();
        assert_eq!(f.learn_limited(0, mac(2), p1, 0, lim), LearnOutcome::New);
        assert_eq!(
            f.learn_limited(0, mac(3), p1, 0, lim),
            LearnOutcome::PortLimit
        );
        assert_eq!(
            f.learn_limited(0, mac(2), p1, S, lim),
            LearnOutcome::Refreshed
        );
        // Full port 1 takes no MAC from port 2 either.
        assert_eq!(f.learn(0, mac(4), p2, 0), LearnOutcome::New);
        assert_eq!(
            f.learn_limited(0, mac(4), p1, 0, lim),
            LearnOutcome::PortLimit
        );
        assert_eq!(f.view().lookup(0, mac(4)), Some(p2));
        // Moves between remotes of one tunnel port add nothing.
        let (t0, t1) = (FdbDest::tunnel(5, 0), FdbDest::tunnel(5, 1));
        assert_eq!(
            f.learn_limited(0, mac(5), t0, 0, Some(1)),
            LearnOutcome::New
        );
        assert!(matches!(
            f.learn_limited(0, mac(5), t1, 0, Some(1)),
            LearnOutcome::Moved { .. }
        ));
        assert_eq!(f.counters().port_limit, 2);
        assert_eq!(
            (f.learned_on(1), f.learned_on(2), f.learned_on(5)),
            (2, 1, 1)
        );
        // Room again once one leaves.
        assert!(f.del(0, mac(1)));
        assert_eq!(f.learn_limited(0, mac(3), p1, 0, lim), LearnOutcome::New);
    }

    #[test]
    fn size_limit() {
        let mut f = fdb(2);
        let d = FdbDest::local(1);
        assert_eq!(f.learn(0, mac(1), d, 0), LearnOutcome::New);
        assert_eq!(f.learn(0, mac(2), d, 0), LearnOutcome::New);
        assert_eq!(f.learn(0, mac(3), d, 0), LearnOutcome::TableFull);
        // Existing entries still refresh and move when full.
        assert_eq!(f.learn(0, mac(2), d, 0), LearnOutcome::Refreshed);
        assert!(matches!(
            f.learn(0, mac(2), FdbDest::local(2), 0),
            LearnOutcome::Moved { .. }
        ));
        assert_eq!(
            f.add_static(0, mac(3), d),
            Err(FdbError::Full {
                vlan: 0,
                mac: mac(3),
                max: 2
            })
        );
        assert_eq!(f.counters().full, 1);
        assert!(matches!(
            Fdb::new(FdbConfig {
                max_entries: 0,
                ..FdbConfig::default()
            }),
            Err(FdbError::BadMaxEntries(0))
        ));
    }

    #[test]
    fn flush_port_and_flush() {
        let mut f = fdb(16);
        f.learn(0, mac(1), FdbDest::local(1), 0);
        f.learn(0, mac(2), FdbDest::tunnel(2, 0), 0);
        f.learn(0, mac(3), FdbDest::tunnel(2, 1), 0);
        f.add_static(0, mac(4), FdbDest::local(2)).unwrap();
        assert_eq!(f.flush_port(2), 2);
        assert_eq!(f.len(), 2);
        assert_eq!(f.flush(), 1);
        let v = f.view();
        assert_eq!(v.lookup(0, mac(1)), None);
        assert_eq!(v.lookup(0, mac(4)), Some(FdbDest::local(2)));
    }

    #[test]
    fn view_is_same_arc_when_unchanged() {
        let mut f = fdb(16);
        f.learn(0, mac(1), FdbDest::local(1), 0);
        let v1 = f.view();
        let v2 = f.view();
        assert!(Arc::ptr_eq(&v1, &v2));
        // Refresh does not change what workers see.
        f.learn(0, mac(1), FdbDest::local(1), S);
        assert!(Arc::ptr_eq(&v1, &f.view()));
        // Learn then delete again: a new view, same answers.
        f.learn(0, mac(2), FdbDest::local(1), S);
        f.del(0, mac(2));
        let v3 = f.view();
        assert!(!Arc::ptr_eq(&v1, &v3));
        assert_eq!(v3.lookup(0, mac(1)), Some(FdbDest::local(1)));
        // The old view is untouched by later changes.
        f.del(0, mac(1));
        assert_eq!(f.view().lookup(0, mac(1)), None);
        assert_eq!(v1.lookup(0, mac(1)), Some(FdbDest::local(1)));
    }

    #[test]
    fn flapping_mac_does_not_grow_the_change_list() {
        let mut f = fdb(4);
        for i in 0..10_000u64 {
            f.learn(0, mac(1), FdbDest::local((i % 2) as u16), i * S);
        }
        let limit = 2 * FdbConfig::default().merge_min_delta;
        assert!(f.changed.len() <= limit + 1);
        assert!(f.changed.capacity() <= 2 * limit);
        assert_eq!(f.view().lookup(0, mac(1)), Some(FdbDest::local(1)));
        assert_eq!(f.counters().moved, 9_999);
    }

    #[test]
    fn tombstones_hide_base_entries() {
        let mut f = Fdb::new(FdbConfig {
            max_entries: 100,
            merge_min_delta: 2,
            ..FdbConfig::default()
        })
        .unwrap();
        for i in 1..=3 {
            f.learn(0, mac(i), FdbDest::local(1), 0);
        }
        let v = f.view();
        assert_eq!(f.counters().merges, 1);
        assert_eq!(v.delta_len(), 0);
        assert!(f.del(0, mac(2)));
        f.learn(0, mac(3), FdbDest::local(9), 0);
        let v = f.view();
        assert_eq!(f.counters().merges, 1);
        assert_eq!(v.delta_len(), 2);
        let k = pack_key(0, mac(2));
        assert!(v.base.get(hash(k, v.base.seed), k).is_some());
        assert_eq!(v.lookup(0, mac(2)), None);
        assert_eq!(v.lookup(0, mac(3)), Some(FdbDest::local(9)));
        assert_eq!(v.lookup(0, mac(1)), Some(FdbDest::local(1)));
        // Re-learning the deleted MAC at its base position leaves no delta key.
        f.learn(0, mac(2), FdbDest::local(1), 0);
        assert_eq!(f.view().delta_len(), 1);
    }

    #[test]
    fn table_probing_wraps_and_misses_terminate() {
        // A tiny table filled to its limit (one free slot left): every probe,
        // hit or miss, must still end, wrapping past the last bucket.
        let mut t = Table::with_room(6, 1);
        let cap = t.buckets.len() * BUCKET;
        let mut n = 0;
        for i in 0..100u64 {
            if t.insert_new(i, i) {
                n += 1;
            }
        }
        assert_eq!(n, cap - 1);
        for i in 0..100u64 {
            let got = t.get(hash(i, 1), i);
            assert!(got.is_none() || got == Some(i));
        }
    }

    #[test]
    fn one_million_entries_fit_64_bytes_each() {
        let n: u64 = 1_000_000;
        let mut f = Fdb::new(FdbConfig {
            max_entries: 1 << 21,
            ..FdbConfig::default()
        })
        .unwrap();
        for i in 0..n {
            let vlan = (i % 7) as u16;
            let out = f.learn(vlan, mac(i), FdbDest::tunnel(1, (i % 5) as u16), 0);
            assert_eq!(out, LearnOutcome::New);
            if i == n / 2 {
                f.view();
            }
        }
        let v = f.view();
        let per_entry = f.memory_bytes() / f.len();
        assert!(per_entry <= 64, "{per_entry} bytes per entry");
        for i in (0..n).step_by(997) {
            assert_eq!(
                v.lookup((i % 7) as u16, mac(i)),
                Some(FdbDest::tunnel(1, (i % 5) as u16))
            );
        }
        assert_eq!(v.lookup(0, mac(n + 1)), None);
    }

    // ---- model check ------------------------------------------------------------

    #[derive(Debug, Clone)]
    enum Op {
        Learn(u16, u64, FdbDest),
        Static(u16, u64, FdbDest),
        Del(u16, u64),
        Age(u64),
        FlushPort(PortNo),
        Flush,
        View,
    }

    fn dest() -> impl Strategy<Value = FdbDest> {
        (0u16..3, prop_oneof![Just(NO_REMOTE), 0u16..2])
            .prop_map(|(port, remote)| FdbDest { port, remote })
    }

    fn op() -> impl Strategy<Value = Op> {
        let vlan = 0u16..2;
        let m = 1u64..12;
        prop_oneof![
            6 => (vlan.clone(), m.clone(), dest()).prop_map(|(v, m, d)| Op::Learn(v, m, d)),
            1 => (vlan.clone(), m.clone(), dest()).prop_map(|(v, m, d)| Op::Static(v, m, d)),
            2 => (vlan, m).prop_map(|(v, m)| Op::Del(v, m)),
            1 => (0u64..200).prop_map(Op::Age),
            1 => (0u16..3).prop_map(Op::FlushPort),
            1 => Just(Op::Flush),
            3 => Just(Op::View),
        ]
    }

    /// The reference: what the FDB should contain, kept as naively as possible.
    #[derive(Default)]
    struct Model {
        m: HashMap<(u16, u64), (FdbDest, bool, u64)>,
    }

    const MAX: usize = 14;
    const AGING: u64 = 300 * S;

    impl Model {
        fn learn(&mut self, v: u16, m: u64, d: FdbDest, now: u64) -> LearnOutcome {
            let full = self.m.len() >= MAX;
            match self.m.get_mut(&(v, m)) {
                Some((_, true, _)) => LearnOutcome::StaticIgnored,
                Some((old, false, seen)) => {
                    *seen = now;
                    if *old == d {
                        LearnOutcome::Refreshed
                    } else {
                        let from = *old;
                        *old = d;
                        LearnOutcome::Moved { from }
                    }
                }
                None if full => LearnOutcome::TableFull,
                None => {
                    self.m.insert((v, m), (d, false, now));
                    LearnOutcome::New
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn view_matches_reference(ops in proptest::collection::vec(op(), 1..120)) {
            let mut f = Fdb::new(FdbConfig {
                max_entries: MAX,
                aging_ns: AGING,
                merge_min_delta: 3,
            }).unwrap();
            let mut model = Model::default();
            // Whole seconds, so the FDB's one-second resolution is exact here.
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Learn(v, m, d) => {
                        now += S;
                        prop_assert_eq!(f.learn(v, mac(m), d, now), model.learn(v, m, d, now));
                    }
                    Op::Static(v, m, d) => {
                        let r = f.add_static(v, mac(m), d);
                        if model.m.contains_key(&(v, m)) || model.m.len() < MAX {
                            prop_assert!(r.is_ok());
                            model.m.insert((v, m), (d, true, 0));
                        } else {
                            prop_assert!(r.is_err());
                        }
                    }
                    Op::Del(v, m) => {
                        prop_assert_eq!(f.del(v, mac(m)), model.m.remove(&(v, m)).is_some());
                    }
                    Op::Age(secs) => {
                        now += secs * S;
                        let before = model.m.len();
                        model.m.retain(|_, (_, st, seen)| *st || now - *seen <= AGING);
                        prop_assert_eq!(f.age(now), before - model.m.len());
                    }
                    Op::FlushPort(p) => {
                        let before = model.m.len();
                        model.m.retain(|_, (d, st, _)| *st || d.port != p);
                        prop_assert_eq!(f.flush_port(p), before - model.m.len());
                    }
                    Op::Flush => {
                        let before = model.m.len();
                        model.m.retain(|_, (_, st, _)| *st);
                        prop_assert_eq!(f.flush(), before - model.m.len());
                    }
                    Op::View => {
                        let view = f.view();
                        for v in 0u16..2 {
                            for m in 0u64..13 {
                                let want = model.m.get(&(v, m)).map(|e| e.0);
                                prop_assert_eq!(view.lookup(v, mac(m)), want, "vlan {} mac {}", v, m);
                            }
                        }
                    }
                }
                prop_assert_eq!(f.len(), model.m.len());
                for p in 0u16..3 {
                    let n = model.m.values().filter(|(d, st, _)| !st && d.port == p).count();
                    prop_assert_eq!(f.learned_on(p), n, "learned on port {}", p);
                }
            }
            let mut shown: Vec<_> = f.iter(now).map(|e| (e.vlan, e.mac, e.dest, e.is_static)).collect();
            shown.sort_by_key(|e| (e.0, e.1));
            let mut want: Vec<_> = model.m.iter().map(|(&(v, m), &(d, st, _))| (v, mac(m), d, st)).collect();
            want.sort_by_key(|e| (e.0, e.1));
            prop_assert_eq!(shown, want);
        }
    }
}
