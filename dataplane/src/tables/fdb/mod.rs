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
//!
//! Parts: this file holds the writer ([`Fdb`]) and the types it speaks;
//! `table.rs` the packed open-addressing table and the [`FdbView`] built
//! from two of them; `tests.rs` the tests of both.

use std::collections::hash_map::{Entry, HashMap, RandomState};
use std::hash::BuildHasher;
use std::mem::size_of;
use std::sync::Arc;

use xvs_types::{MacAddr, PortNo, NO_PORT};

mod table;

pub use table::FdbView;
use table::{hash, pack_key, unpack_key, Table, VAL_STATIC, VAL_TOMBSTONE};

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
    seeds: Seeds,
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

/// Where each table's hash seed comes from: at random per process (an
/// attacker who cannot predict the seed cannot choose MACs that all collide),
/// or fixed, for benchmarks that must repeat.
#[derive(Debug)]
enum Seeds {
    Random(RandomState),
    Fixed(u64),
}

impl Seeds {
    /// The seed of the `n`th table built (each merge builds one).
    fn nth(&self, n: u64) -> u64 {
        match self {
            Seeds::Random(r) => r.hash_one(n),
            Seeds::Fixed(s) => xvs_types::hash::mum(s ^ n, xvs_types::hash::SECRETS[0]),
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
        let seeds = Seeds::Random(RandomState::new());
        let view = Arc::new(FdbView::empty(seeds.nth(0)));
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

    /// Draws every table's seed from `seed` instead of at random, so that
    /// a benchmark's probe lengths and cache misses repeat from run to run
    /// (the instruction-count gate). Only for an empty FDB: a seed known in
    /// advance gives up the resistance to chosen-MAC floods that the random
    /// one buys, which a benchmark does not need.
    pub fn fix_seed(&mut self, seed: u64) {
        assert!(self.map.is_empty(), "fix_seed on an FDB that has entries");
        self.seeds = Seeds::Fixed(seed);
        self.view = Arc::new(FdbView::empty(self.seeds.nth(0)));
        self.base = self.view.base.clone();
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

    /// Changed since the last [`Fdb::view`]: the next one publishes.
    pub fn has_unpublished(&self) -> bool {
        self.dirty
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
        let seed = self.seeds.nth(self.counters.merges);
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
mod tests;
