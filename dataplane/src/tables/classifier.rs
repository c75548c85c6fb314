//! Generic priority classifier over [`FlowKey`]: tuple space search, the idea
//! behind Open vSwitch's `lib/classifier.c`.
//!
//! Each rule is `(priority, key, mask, value)`. Rules are grouped into one
//! subtable per distinct mask; a subtable maps the masked key to the single
//! best rule for that masked key. A lookup masks the packet key with each
//! subtable's mask and probes that subtable's hash table.
//!
//! Ordering is total and deterministic: a rule beats another if its priority
//! is higher, or, at equal priority, if its index (insertion order) is lower.
//! Both facts are folded into one `rank` per rule, so "first inserted wins"
//! needs no second comparison. Subtables are sorted by the best rank they
//! hold; a lookup stops at the first subtable whose best rank cannot beat the
//! best hit so far, which is what makes a few high-priority exact rules in
//! front of many wildcard ones cheap.
//!
//! Invariants: a [`Classifier`] is built once by [`Classifier::build`] and
//! never changes (`Send + Sync` when `T` is). The control plane builds it and
//! publishes it in a snapshot; workers only call [`Classifier::lookup`],
//! which allocates nothing and takes no lock.
//!
//! Each subtable is a hand-written open-addressing table with linear probing
//! at load factor <= 1/2. Slots are 8 bytes (a 32-bit hash tag and an entry
//! index) so a probe sequence stays inside one or two cache lines, and the
//! 64-byte key compare runs only when the tag matches. A `std::HashMap` with
//! a `FlowKey::hash_with`-based hasher was tried in the `classify` benchmark
//! and was slower: `Hash` for `[u64; 8]` feeds a length prefix plus the bytes
//! through `Hasher::write`, and its buckets store the 64-byte key inline.

use crate::types::FlowKey;

/// Seed for the subtable hashes. Fixed (not per build) so that lookups are
/// reproducible in tests and benchmarks; the keys come from the wire, but a
/// flooding attacker can only lengthen probe sequences in subtables that
/// hold rules, and those are bounded by the rule count the operator chose.
const SUBTABLE_SEED: u64 = 0x5eed_c1a5_51f1_e5ed;

/// Marks an empty slot (no rule index can be `u32::MAX`: `build` caps the
/// rule count below it).
const EMPTY: u32 = u32::MAX;

/// One classifier rule as given to [`Classifier::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule<T> {
    pub priority: u32,
    /// Need not be pre-masked: `build` masks it.
    pub key: FlowKey,
    /// A set bit means "this key bit must match".
    pub mask: FlowKey,
    pub value: T,
}

impl<T> Rule<T> {
    pub fn new(priority: u32, key: FlowKey, mask: FlowKey, value: T) -> Self {
        Rule {
            priority,
            key,
            mask,
            value,
        }
    }
}

/// Higher is better: priority first, then the lower index.
#[inline]
fn rank(priority: u32, idx: u32) -> u64 {
    (u64::from(priority) << 32) | u64::from(u32::MAX - idx)
}

#[inline]
fn idx_of_rank(rank: u64) -> u32 {
    u32::MAX - (rank as u32)
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// High 32 bits of the key hash: filters out most key compares.
    tag: u32,
    /// Index into the subtable's `entries`, or [`EMPTY`].
    entry: u32,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: FlowKey,
    /// Rank of the best rule with this masked key in this subtable.
    rank: u64,
}

#[derive(Debug)]
struct Subtable {
    mask: FlowKey,
    /// Best rank of any entry: the lookup's pruning bound.
    max_rank: u64,
    /// `slots.len() - 1`; `slots.len()` is a power of two.
    slot_mask: usize,
    slots: Box<[Slot]>,
    entries: Box<[Entry]>,
}

impl Subtable {
    fn build(mask: FlowKey, mut entries: Vec<Entry>) -> Subtable {
        // Deterministic entry order (best first) keeps builds reproducible.
        entries.sort_unstable_by_key(|e| std::cmp::Reverse(e.rank));
        let max_rank = entries.first().map_or(0, |e| e.rank);
        let nslots = (entries.len() * 2).next_power_of_two().max(2);
        let mut slots = vec![
            Slot {
                tag: 0,
                entry: EMPTY
            };
            nslots
        ]
        .into_boxed_slice();
        let slot_mask = nslots - 1;
        for (i, e) in entries.iter().enumerate() {
            let h = e.key.hash_with(SUBTABLE_SEED);
            let mut pos = (h as usize) & slot_mask;
            // Terminates: load factor <= 1/2 leaves empty slots.
            while slots[pos].entry != EMPTY {
                pos = (pos + 1) & slot_mask;
            }
            slots[pos] = Slot {
                tag: (h >> 32) as u32,
                entry: i as u32,
            };
        }
        Subtable {
            mask,
            max_rank,
            slot_mask,
            slots,
            entries: entries.into_boxed_slice(),
        }
    }

    /// Rank of the rule matching `key` in this subtable, if any.
    #[inline]
    fn find(&self, key: &FlowKey) -> Option<u64> {
        let mk = key.masked(&self.mask);
        let h = mk.hash_with(SUBTABLE_SEED);
        let tag = (h >> 32) as u32;
        let mut pos = (h as usize) & self.slot_mask;
        loop {
            let slot = self.slots[pos];
            if slot.entry == EMPTY {
                return None;
            }
            if slot.tag == tag {
                let e = &self.entries[slot.entry as usize];
                if e.key == mk {
                    return Some(e.rank);
                }
            }
            pos = (pos + 1) & self.slot_mask;
        }
    }
}

/// An immutable priority classifier. See the module documentation.
#[derive(Debug)]
pub struct Classifier<T> {
    rules: Vec<Rule<T>>,
    /// Sorted by `max_rank`, best first.
    subtables: Vec<Subtable>,
}

impl<T> Classifier<T> {
    /// Builds the classifier. Rule indices are positions in `rules`.
    ///
    /// # Panics
    /// If `rules.len() >= u32::MAX` (a control-plane bug, not input data:
    /// rule indices are `u32` and one value marks empty slots).
    pub fn build(rules: Vec<Rule<T>>) -> Classifier<T> {
        assert!(
            rules.len() < EMPTY as usize,
            "classifier: {} rules exceed the u32 index space",
            rules.len()
        );
        let mut rules = rules;
        for r in &mut rules {
            r.key = r.key.masked(&r.mask);
        }

        // Group by mask. Sorting indices by mask words is O(n log n) and
        // needs no hashing of masks.
        let mut order: Vec<u32> = (0..rules.len() as u32).collect();
        order.sort_by(|&a, &b| {
            rules[a as usize]
                .mask
                .0
                .cmp(&rules[b as usize].mask.0)
                .then(rules[a as usize].key.0.cmp(&rules[b as usize].key.0))
                .then(rank(rules[b as usize].priority, b).cmp(&rank(rules[a as usize].priority, a)))
        });

        let mut subtables = Vec::new();
        let mut i = 0;
        while i < order.len() {
            let mask = rules[order[i] as usize].mask;
            let mut entries: Vec<Entry> = Vec::new();
            while i < order.len() && rules[order[i] as usize].mask == mask {
                let r = &rules[order[i] as usize];
                // Within equal (mask, key) the best rank sorts first, so
                // only the first of a run becomes an entry.
                let dup = entries.last().is_some_and(|e| e.key == r.key);
                if !dup {
                    entries.push(Entry {
                        key: r.key,
                        rank: rank(r.priority, order[i]),
                    });
                }
                i += 1;
            }
            subtables.push(Subtable::build(mask, entries));
        }
        subtables.sort_by_key(|st| std::cmp::Reverse(st.max_rank));
        Classifier { rules, subtables }
    }

    /// The best matching rule: highest priority, ties to the lowest index.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(u32, &T)> {
        let mut best: u64 = 0;
        let mut found = false;
        for st in &self.subtables {
            // Ranks are unique per rule, so `<=` would also do; a subtable
            // whose best rank is below the best hit cannot improve on it,
            // and neither can any later one (sorted).
            if found && st.max_rank < best {
                break;
            }
            if let Some(r) = st.find(key) {
                if !found || r > best {
                    best = r;
                    found = true;
                }
            }
        }
        if !found {
            return None;
        }
        let idx = idx_of_rank(best);
        self.rules.get(idx as usize).map(|r| (idx, &r.value))
    }

    /// The rule at `idx` (as given to `build`, with its key masked).
    pub fn rule(&self, idx: u32) -> Option<&Rule<T>> {
        self.rules.get(idx as usize)
    }

    pub fn rules(&self) -> &[Rule<T>] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Number of distinct masks: the worst-case probes per lookup.
    pub fn subtable_count(&self) -> usize {
        self.subtables.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute<T>(rules: &[Rule<T>], key: &FlowKey) -> Option<u32> {
        let mut best: Option<(u32, u32)> = None;
        for (i, r) in rules.iter().enumerate() {
            if key.masked(&r.mask) == r.key.masked(&r.mask) {
                let better = match best {
                    None => true,
                    Some((p, _)) => r.priority > p,
                };
                if better {
                    best = Some((r.priority, i as u32));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    fn key(words: [u64; 8]) -> FlowKey {
        FlowKey(words)
    }

    #[test]
    fn empty_classifier_misses() {
        let c: Classifier<()> = Classifier::build(vec![]);
        assert!(c.lookup(&FlowKey::default()).is_none());
        assert!(c.is_empty());
        assert_eq!(c.subtable_count(), 0);
    }

    #[test]
    fn priority_then_first_inserted() {
        let exact = FlowKey([u64::MAX; 8]);
        let mut k = FlowKey::default();
        k.set_in_port(3);
        let mut port_mask = FlowKey::default();
        port_mask.set_in_port(0xffff);
        let rules = vec![
            Rule::new(10, FlowKey::default(), FlowKey::default(), "any"),
            Rule::new(20, k, port_mask, "port3-a"),
            Rule::new(20, k, port_mask, "port3-b"),
            Rule::new(5, k, exact, "exact-low"),
        ];
        let c = Classifier::build(rules);
        assert_eq!(c.lookup(&k), Some((1, &"port3-a")));
        let mut other = k;
        other.set_in_port(4);
        assert_eq!(c.lookup(&other), Some((0, &"any")));
        assert_eq!(c.subtable_count(), 3);
        // A key that is unmasked in the rule is masked by build.
        assert_eq!(c.rule(1).map(|r| r.key), Some(k));
    }

    #[test]
    fn equal_priority_across_subtables_prefers_lower_index() {
        let mut a_mask = FlowKey::default();
        a_mask.0[0] = u64::MAX;
        let mut b_mask = FlowKey::default();
        b_mask.0[1] = u64::MAX;
        let k = key([1, 2, 0, 0, 0, 0, 0, 0]);
        let c = Classifier::build(vec![
            Rule::new(7, k, b_mask, 'b'),
            Rule::new(7, k, a_mask, 'a'),
        ]);
        assert_eq!(c.lookup(&k), Some((0, &'b')));
    }

    #[test]
    fn many_rules_one_subtable_with_collisions_in_low_bits() {
        // Keys that differ only in one word still land in distinct slots or
        // are found by probing.
        let mut mask = FlowKey::default();
        mask.0[7] = u64::MAX;
        let rules: Vec<_> = (0..5000u64)
            .map(|i| Rule::new(1, key([0, 0, 0, 0, 0, 0, 0, i << 32]), mask, i))
            .collect();
        let c = Classifier::build(rules);
        for i in 0..5000u64 {
            let k = key([9, 9, 9, 9, 9, 9, 9, i << 32]);
            assert_eq!(c.lookup(&k).map(|(_, v)| *v), Some(i));
        }
        assert!(c.lookup(&key([0, 0, 0, 0, 0, 0, 0, 5000 << 32])).is_none());
    }

    /// Small alphabets so that rules overlap and keys hit often.
    fn arb_word() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0u64), Just(1), Just(0xff00), Just(u64::MAX), 0u64..4]
    }

    fn arb_mask_word() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0u64), Just(u64::MAX), Just(0xff00), Just(1)]
    }

    fn arb_key() -> impl Strategy<Value = FlowKey> {
        // Only three words vary; the rest stay zero to keep overlaps likely.
        (arb_word(), arb_word(), arb_word()).prop_map(|(a, b, c)| key([a, b, 0, 0, 0, 0, 0, c]))
    }

    fn arb_mask() -> impl Strategy<Value = FlowKey> {
        (arb_mask_word(), arb_mask_word(), arb_mask_word())
            .prop_map(|(a, b, c)| key([a, b, 0, 0, 0, 0, 0, c]))
    }

    proptest! {
        #[test]
        fn matches_brute_force(
            rules in prop::collection::vec((0u32..6, arb_key(), arb_mask()), 0..60),
            keys in prop::collection::vec(arb_key(), 1..40),
        ) {
            let rules: Vec<Rule<usize>> = rules
                .into_iter()
                .enumerate()
                .map(|(i, (p, k, m))| Rule::new(p, k, m, i))
                .collect();
            let c = Classifier::build(rules.clone());
            for k in &keys {
                let want = brute(&rules, k);
                let got = c.lookup(k);
                prop_assert_eq!(got.map(|(i, _)| i), want);
                if let Some((i, v)) = got {
                    prop_assert_eq!(*v, i as usize);
                }
            }
        }
    }

    #[test]
    fn classifier_is_send_sync() {
        fn check<X: Send + Sync>() {}
        check::<Classifier<u32>>();
    }
}
