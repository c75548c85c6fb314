//! The per-worker exact-match cache ([`ExactMatchCache`]) in front of a
//! [`FlowTable`]: owned and written by one worker only, its entries stamped
//! with the table's generation so a new snapshot invalidates them all at
//! once. On the per-packet path: allocates only in `new`.

use super::FlowTable;
use xvs_types::FlowKey;

/// Seed the caller must use for the hash passed to
/// [`ExactMatchCache::lookup_or_classify`]: `key.hash_with(EMC_HASH_SEED)`.
pub const EMC_HASH_SEED: u64 = 0x0e3c_7a11_5eed_0001;

/// Default EMC size in entries (OVS uses the same).
pub const EMC_DEFAULT_ENTRIES: usize = 8192;

/// One miss in this many evicts a live entry (Open vSwitch's
/// `emc-insert-inv-prob`, same default): more flows than the cache holds
/// then keep a stable half of them cached instead of evicting each other
/// on every packet. A miss whose set has a free or stale way always
/// inserts, so a new generation refills the cache at once.
pub const EMC_DEFAULT_INSERT_INV_PROB: u32 = 100;

/// Stored in an entry for a cached miss.
const EMC_NO_MATCH: u32 = u32::MAX;

/// `slot` of a result that was not cached (see [`EmcHit`]).
const EMC_NO_SLOT: u32 = u32::MAX;

/// Two ways make a set of four cache lines; the results sit next to their
/// key, so a hit reads no other memory.
#[derive(Debug, Clone, Copy, Default)]
struct EmcWay {
    key: FlowKey,
    /// `generation + 1` of the table the result came from; 0 = empty.
    stamp: u64,
    /// Stamp of `aux` and `plan` (the caller's second generation); 0 = not
    /// computed.
    aux_stamp: u64,
    /// The high half of the key's hash (the low bits chose the set): a
    /// cheap first test before the full key compare.
    hash_hi: u32,
    /// Rule index, or [`EMC_NO_MATCH`].
    rule: u32,
    /// A second per-key result the caller caches alongside the rule (the
    /// pipeline keeps the ingress firewall verdict here).
    aux: u32,
    /// In way 0 only: the index of the way used last (LRU of two ways).
    mru: u32,
    /// A third per-key result, set by the caller after the lookup (see
    /// [`ExactMatchCache::set_plan`]); 0 = none.
    plan: u64,
}

#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct EmcSet {
    ways: [EmcWay; 2],
}

/// What one probe of an [`ExactMatchCache`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmcHit {
    /// The matching rule's index, `None` for a table miss.
    pub rule: Option<u32>,
    /// The caller's per-key value (see [`ExactMatchCache::lookup_with_aux`]).
    pub aux: u32,
    /// What the caller stored for this key with
    /// [`ExactMatchCache::set_plan`] under the same aux generation; 0 =
    /// nothing yet.
    pub plan: u64,
    /// The way that holds the entry, for `set_plan`.
    slot: u32,
}

impl EmcHit {
    /// A result that no cache entry backs (`set_plan` ignores it).
    pub const fn uncached(rule: Option<u32>, aux: u32) -> EmcHit {
        EmcHit {
            rule,
            aux,
            plan: 0,
            slot: EMC_NO_SLOT,
        }
    }
}

/// Per-worker exact-match cache in front of a [`FlowTable`].
///
/// 2-way set associative with exact LRU per set (one bit suffices for two
/// ways). Why not direct-mapped: two hot flows whose hashes share a set would
/// evict each other on every packet; with two ways they coexist, and LRU
/// keeps the hot one when a burst of one-off flows (a scan) passes through,
/// since each newcomer evicts the other newcomer before the hot entry.
/// Stale entries (older generation) are replaced first. Misses (no rule
/// matched) are cached too, so unmatched traffic does not re-run the
/// classifier either.
///
/// Besides the rule, an entry keeps two results of the caller's that are
/// pure functions of the key under the caller's generation: `aux` (computed
/// by the lookup) and `plan` (stored after it). The pipeline keeps the
/// ingress firewall verdict and the forwarding decision there, as Open
/// vSwitch's EMC keeps a datapath flow's actions with the MAC learning
/// result already resolved into them.
#[derive(Debug)]
pub struct ExactMatchCache {
    sets: Box<[EmcSet]>,
    set_mask: usize,
    hits: u64,
    misses: u64,
    /// See [`EMC_DEFAULT_INSERT_INV_PROB`]; 1 = always evict.
    insert_inv_prob: u32,
    /// xorshift state for the eviction draw (never 0).
    rng: u64,
}

impl Default for ExactMatchCache {
    fn default() -> Self {
        ExactMatchCache::new(EMC_DEFAULT_ENTRIES)
    }
}

impl ExactMatchCache {
    /// A cache of `entries` entries, rounded up to a power of two and at
    /// least 2. Allocates once, here.
    pub fn new(entries: usize) -> ExactMatchCache {
        let nsets = (entries.max(2).next_power_of_two()) / 2;
        ExactMatchCache {
            sets: vec![EmcSet::default(); nsets].into_boxed_slice(),
            set_mask: nsets - 1,
            hits: 0,
            misses: 0,
            insert_inv_prob: EMC_DEFAULT_INSERT_INV_PROB,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// One miss in `n` may evict a live entry (0 or 1: every miss).
    pub fn set_insert_inv_prob(&mut self, n: u32) {
        self.insert_inv_prob = n.max(1);
    }

    /// Capacity in entries.
    pub fn capacity(&self) -> usize {
        self.sets.len() * 2
    }

    pub fn hits(&self) -> u64 {
        self.hits
    }

    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// The rule index for `key`, from the cache if it holds a result for
    /// this table generation, else from the classifier (and then cached).
    /// `hash` should be `key.hash_with(EMC_HASH_SEED)`; results are correct
    /// for any hash (the full key is compared), only the hit rate suffers.
    #[inline]
    pub fn lookup_or_classify(
        &mut self,
        table: &FlowTable,
        key: &FlowKey,
        hash: u64,
    ) -> Option<u32> {
        self.lookup_with_aux(table, key, hash, 0, |_| 0).rule
    }

    /// As [`ExactMatchCache::lookup_or_classify`], and also caches a second
    /// per-key value `aux(key)`, valid while `aux_generation` stays the same
    /// (one probe then answers two questions, e.g. flow rule and firewall
    /// verdict), and returns the plan stored for the key under that
    /// generation. `aux` must be a pure function of the key for a given
    /// `aux_generation`.
    #[inline]
    pub fn lookup_with_aux(
        &mut self,
        table: &FlowTable,
        key: &FlowKey,
        hash: u64,
        aux_generation: u64,
        aux: impl FnOnce(&FlowKey) -> u32,
    ) -> EmcHit {
        let stamp = table.generation().wrapping_add(1);
        let aux_stamp = aux_generation.wrapping_add(1);
        if stamp == 0 || aux_stamp == 0 {
            // Generation u64::MAX has no stamp distinct from "empty": do
            // not cache, stay correct.
            self.misses += 1;
            return EmcHit::uncached(table.lookup(key), aux(key));
        }
        let set_idx = (hash as usize) & self.set_mask;
        let hash_hi = (hash >> 32) as u32;
        let set = &mut self.sets[set_idx];
        for w in 0..2 {
            let e = &mut set.ways[w];
            if e.stamp == stamp && e.hash_hi == hash_hi && e.key == *key {
                self.hits += 1;
                if e.aux_stamp != aux_stamp {
                    e.aux = aux(key);
                    e.aux_stamp = aux_stamp;
                    e.plan = 0;
                }
                let hit = EmcHit {
                    rule: (e.rule != EMC_NO_MATCH).then_some(e.rule),
                    aux: e.aux,
                    plan: e.plan,
                    slot: (set_idx * 2 + w) as u32,
                };
                set.ways[0].mru = w as u32;
                return hit;
            }
        }
        self.misses += 1;
        let result = table.lookup(key);
        let a = aux(key);
        let victim = if set.ways[0].stamp != stamp {
            0
        } else if set.ways[1].stamp != stamp {
            1
        } else {
            if self.insert_inv_prob > 1 {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                if self.rng % u64::from(self.insert_inv_prob) != 0 {
                    return EmcHit::uncached(result, a);
                }
            }
            1 - (set.ways[0].mru as usize & 1)
        };
        set.ways[victim] = EmcWay {
            key: *key,
            stamp,
            aux_stamp,
            hash_hi,
            rule: result.unwrap_or(EMC_NO_MATCH),
            aux: a,
            mru: 0,
            plan: 0,
        };
        set.ways[0].mru = victim as u32;
        EmcHit {
            rule: result,
            aux: a,
            plan: 0,
            slot: (set_idx * 2 + victim) as u32,
        }
    }

    /// Starts loading the set a key with `hash` lives in, so that a lookup
    /// a little later finds it in cache. Only a hint.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        #[cfg(target_arch = "x86_64")]
        if let Some(set) = self.sets.get((hash as usize) & self.set_mask) {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p: *const EmcSet = set;
            // SAFETY: prefetch is only a hint: it never faults and reads
            // nothing the program sees; both addresses lie inside `set`
            // (256 bytes).
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p.cast());
                _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>().wrapping_add(64));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = hash;
    }

    /// Stores `plan` with the entry `hit` came from, valid until the aux
    /// generation changes. The caller must not have probed the cache since
    /// `hit` (the way may hold another key by then).
    #[inline]
    pub fn set_plan(&mut self, hit: &EmcHit, plan: u64) {
        let s = hit.slot as usize;
        if let Some(set) = self.sets.get_mut(s / 2) {
            set.ways[s & 1].plan = plan;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{table, tcp_key, v4};
    use super::*;

    #[test]
    fn emc_hits_after_first_miss_and_caches_negative_results() {
        let t = table(&["priority=1,in_port=3,actions=output:1"], 1);
        let mut emc = ExactMatchCache::new(64);
        let k = tcp_key(v4(1, 1, 1, 1), v4(2, 2, 2, 2), 1, 2);
        let h = k.hash_with(EMC_HASH_SEED);
        assert_eq!(emc.lookup_or_classify(&t, &k, h), Some(0));
        assert_eq!(emc.lookup_or_classify(&t, &k, h), Some(0));
        assert_eq!((emc.hits(), emc.misses()), (1, 1));

        let mut other = k;
        other.set_in_port(4);
        let h2 = other.hash_with(EMC_HASH_SEED);
        assert_eq!(emc.lookup_or_classify(&t, &other, h2), None);
        assert_eq!(emc.lookup_or_classify(&t, &other, h2), None);
        assert_eq!((emc.hits(), emc.misses()), (2, 2));
    }

    #[test]
    fn emc_generation_change_invalidates_everything() {
        let t1 = table(&["priority=1,in_port=3,actions=output:1"], 1);
        let t2 = table(
            &[
                "priority=1,in_port=3,actions=output:1",
                "priority=9,in_port=3,actions=output:2",
            ],
            2,
        );
        let mut emc = ExactMatchCache::default();
        assert_eq!(emc.capacity(), EMC_DEFAULT_ENTRIES);
        let k = tcp_key(v4(1, 1, 1, 1), v4(2, 2, 2, 2), 1, 2);
        let h = k.hash_with(EMC_HASH_SEED);
        assert_eq!(emc.lookup_or_classify(&t1, &k, h), Some(0));
        assert_eq!(emc.lookup_or_classify(&t2, &k, h), Some(1));
        assert_eq!(emc.misses(), 2);
        assert_eq!(emc.lookup_or_classify(&t2, &k, h), Some(1));
        assert_eq!(emc.hits(), 1);
        // Generation u64::MAX is served correctly, just not cached.
        let tmax = table(&["priority=1,in_port=3,actions=output:1"], u64::MAX);
        assert_eq!(emc.lookup_or_classify(&tmax, &k, h), Some(0));
        assert_eq!(emc.lookup_or_classify(&tmax, &k, h), Some(0));
    }

    #[test]
    fn emc_set_is_four_cache_lines() {
        assert_eq!(std::mem::size_of::<EmcSet>(), 256);
    }

    #[test]
    fn emc_plan_lives_as_long_as_its_aux_generation() {
        let t = table(&["priority=1,in_port=3,actions=normal"], 1);
        let mut emc = ExactMatchCache::new(64);
        let k = tcp_key(v4(1, 1, 1, 1), v4(2, 2, 2, 2), 1, 2);
        let h = k.hash_with(EMC_HASH_SEED);
        let first = emc.lookup_with_aux(&t, &k, h, 7, |_| 5);
        assert_eq!((first.rule, first.aux, first.plan), (Some(0), 5, 0));
        emc.set_plan(&first, 0xabc);
        let again = emc.lookup_with_aux(&t, &k, h, 7, |_| unreachable!("aux is cached"));
        assert_eq!((again.aux, again.plan), (5, 0xabc));
        // Another key in the cache keeps its own (empty) plan.
        let mut other = k;
        other.set_tp_dst(3);
        let o = emc.lookup_with_aux(&t, &other, other.hash_with(EMC_HASH_SEED), 7, |_| 6);
        assert_eq!((o.aux, o.plan), (6, 0));
        // A new aux generation recomputes aux and forgets the plan.
        let next = emc.lookup_with_aux(&t, &k, h, 8, |_| 9);
        assert_eq!((next.rule, next.aux, next.plan), (Some(0), 9, 0));
        // A result the cache does not hold ignores set_plan.
        let tmax = table(&["priority=1,in_port=3,actions=normal"], u64::MAX);
        let u = emc.lookup_with_aux(&tmax, &k, h, 8, |_| 1);
        emc.set_plan(&u, 0x1);
        assert_eq!(emc.lookup_with_aux(&t, &k, h, 8, |_| 9).plan, 0);
    }

    #[test]
    fn emc_set_collisions_keep_two_ways_and_evict_lru() {
        let t = table(&["priority=1,actions=normal"], 1);
        // Two sets: every key lands in set (hash & 1); collect three keys in
        // the same set.
        let mut emc = ExactMatchCache::new(4);
        emc.set_insert_inv_prob(1);
        let mut keys = Vec::new();
        let mut i = 0u16;
        while keys.len() < 3 {
            let mut k = FlowKey::default();
            k.set_tp_src(i);
            if k.hash_with(EMC_HASH_SEED) & 1 == 0 {
                keys.push(k);
            }
            i += 1;
        }
        let look = |emc: &mut ExactMatchCache, k: &FlowKey| {
            emc.lookup_or_classify(&t, k, k.hash_with(EMC_HASH_SEED))
        };
        look(&mut emc, &keys[0]);
        look(&mut emc, &keys[1]);
        look(&mut emc, &keys[0]); // hit, keys[0] most recent
        assert_eq!(emc.hits(), 1);
        look(&mut emc, &keys[2]); // evicts keys[1], the LRU
        look(&mut emc, &keys[0]);
        assert_eq!(emc.hits(), 2);
        look(&mut emc, &keys[1]);
        assert_eq!((emc.hits(), emc.misses()), (2, 4));
    }

    #[test]
    fn more_flows_than_entries_keep_a_stable_part_cached() {
        let t = table(&["priority=1,actions=normal"], 1);
        let keys: Vec<FlowKey> = (0..2048u16)
            .map(|i| {
                let mut k = FlowKey::default();
                k.set_tp_src(i);
                k
            })
            .collect();
        let rounds = |emc: &mut ExactMatchCache| {
            for _ in 0..200 {
                for k in &keys {
                    emc.lookup_or_classify(&t, k, k.hash_with(EMC_HASH_SEED));
                }
            }
            emc.hits() as f64 / (emc.hits() + emc.misses()) as f64
        };
        // Round-robin over twice the capacity: with LRU alone, only keys
        // that have a set (nearly) to themselves hit.
        let mut always = ExactMatchCache::new(1024);
        always.set_insert_inv_prob(1);
        let lru = rounds(&mut always);
        let mut sampled = ExactMatchCache::new(1024);
        let rate = rounds(&mut sampled);
        eprintln!("hit rate: LRU {lru:.3}, sampled eviction {rate:.3}");
        assert!(rate > lru + 0.15, "hit rate: LRU {lru}, sampled {rate}");
        // A new generation refills at once: free and stale ways always
        // take the newcomer.
        let t2 = table(&["priority=1,actions=normal"], 2);
        let mut fresh = ExactMatchCache::new(8192);
        for k in &keys {
            fresh.lookup_or_classify(&t, k, k.hash_with(EMC_HASH_SEED));
        }
        for k in &keys {
            fresh.lookup_or_classify(&t2, k, k.hash_with(EMC_HASH_SEED));
        }
        let before = fresh.hits();
        for k in &keys {
            fresh.lookup_or_classify(&t2, k, k.hash_with(EMC_HASH_SEED));
        }
        assert!(fresh.hits() - before > 1900, "{}", fresh.hits() - before);
    }

    #[test]
    fn emc_same_hash_different_key_is_not_a_hit() {
        let t = table(&["priority=1,in_port=3,actions=output:1"], 1);
        let mut emc = ExactMatchCache::new(2);
        let mut a = FlowKey::default();
        a.set_in_port(3);
        let b = FlowKey::default();
        // One hash for both keys: a forced full-hash collision.
        assert_eq!(emc.lookup_or_classify(&t, &a, 5), Some(0));
        assert_eq!(emc.lookup_or_classify(&t, &b, 5), None);
        assert_eq!(emc.hits(), 0);
    }
}
