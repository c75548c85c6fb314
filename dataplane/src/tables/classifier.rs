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
//! Each subtable is a `std::collections::HashMap` (hashbrown: SIMD group
//! probing over one control byte per slot) keyed by the masked key, hashed
//! once by `subtable_hash` and passed through a no-op hasher. A
//! hand-written open-addressing table (linear probing, 8-byte slots holding
//! a 32-bit hash tag and an entry index, keys on their own cache lines) was
//! measured first in the `classify` bench: within noise of hashbrown on 10k
//! flow rules and about 20% slower on the 100-rule firewall, so the simpler
//! code won. The gap between one subtable probe inside the classifier and a
//! bare `HashMap::get` (~17 vs ~14 ns per key, 10k exact keys) is the
//! key masking and rank bookkeeping, not the hash table.

use xvs_types::hash::{mum, SECRETS};
use xvs_types::FlowKey;

/// Seed for the subtable hashes. Fixed (not per build) so that lookups are
/// reproducible in tests and benchmarks. Keys come from the wire, but only
/// stored keys (the operator's rules) can collide with a probe, so an
/// attacker cannot grow probe sequences beyond what the rule set allows.
const SUBTABLE_SEED: u64 = 0x5eed_c1a5_51f1_e5ed;

/// Rule indices are `u32` and ranks store `u32::MAX - idx`; `build` keeps
/// the count below this so no index collides with the EMC's "no match".
const MAX_RULES: u32 = u32::MAX;

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

/// Hash of `key & mask`, computed without materialising the masked key.
///
/// wyhash-style multiply-fold: the four 64x64->128 multiplies are
/// independent, so they overlap in the pipeline, where `FlowKey::hash_with`
/// is a chain of eight dependent multiplies. This is the classifier's own
/// hash (never compared with hashes from elsewhere).
#[inline(always)]
fn subtable_hash(key: &FlowKey, mask: &FlowKey) -> u64 {
    let k = &key.0;
    let m = &mask.0;
    let w = |i: usize| (k[i] & m[i]) ^ SECRETS[i];
    let a = mum(w(0), w(1));
    let b = mum(w(2), w(3));
    let c = mum(w(4), w(5));
    let d = mum(w(6), w(7));
    mum(
        a.wrapping_add(c) ^ SECRETS[8],
        b.wrapping_add(d) ^ SUBTABLE_SEED,
    )
}

/// A masked key whose `Hash` is one [`subtable_hash`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MaskedKey(FlowKey);

impl std::hash::Hash for MaskedKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(subtable_hash(&self.0, &FULL));
    }
}

const FULL: FlowKey = FlowKey([u64::MAX; 8]);

/// Passes through the single `write_u64` of [`MaskedKey`].
#[derive(Debug, Clone, Copy, Default)]
struct PassHasher(u64);

impl std::hash::Hasher for PassHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not reached for MaskedKey; fold anything else in rather than lose it.
        for &b in bytes {
            self.0 = mum(self.0 ^ u64::from(b), SECRETS[0]);
        }
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type PassBuild = std::hash::BuildHasherDefault<PassHasher>;

#[derive(Debug)]
struct Subtable {
    mask: FlowKey,
    /// Best rank of any entry: the lookup's pruning bound.
    max_rank: u64,
    map: std::collections::HashMap<MaskedKey, u64, PassBuild>,
}

impl Subtable {
    /// `entries` are (masked key, rank), one per distinct masked key.
    fn build(mask: FlowKey, entries: Vec<(FlowKey, u64)>) -> Subtable {
        let max_rank = entries.iter().map(|e| e.1).max().unwrap_or(0);
        Subtable {
            mask,
            max_rank,
            map: entries
                .into_iter()
                .map(|(k, r)| (MaskedKey(k), r))
                .collect(),
        }
    }

    /// Rank of the rule matching `key` in this subtable, if any.
    #[inline]
    fn find(&self, key: &FlowKey) -> Option<u64> {
        self.map.get(&MaskedKey(key.masked(&self.mask))).copied()
    }
}

/// A rule's match as stored: the key is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleMatch {
    pub priority: u32,
    pub key: FlowKey,
    pub mask: FlowKey,
}

/// An immutable priority classifier. See the module documentation.
#[derive(Debug)]
pub struct Classifier<T> {
    /// Cold: only `rule()` reads these.
    matches: Vec<RuleMatch>,
    /// Apart from `matches` so a hit touches only the value it returns.
    values: Vec<T>,
    /// Sorted by `max_rank`, best first.
    subtables: Vec<Subtable>,
}

impl<T> Classifier<T> {
    /// Builds the classifier. Rule indices are positions in `rules`.
    ///
    /// # Panics
    /// If `rules.len() >= u32::MAX` (a control-plane bug, not input data:
    /// rule indices are `u32` and `u32::MAX` is reserved).
    pub fn build(rules: Vec<Rule<T>>) -> Classifier<T> {
        assert!(
            rules.len() < MAX_RULES as usize,
            "classifier: {} rules exceed the u32 index space",
            rules.len()
        );
        let mut matches = Vec::with_capacity(rules.len());
        let mut values = Vec::with_capacity(rules.len());
        for r in rules {
            matches.push(RuleMatch {
                priority: r.priority,
                key: r.key.masked(&r.mask),
                mask: r.mask,
            });
            values.push(r.value);
        }

        // Group by mask, and within a mask by key, best rank first. Sorting
        // is O(n log n) and needs no hashing of masks.
        let mut order: Vec<u32> = (0..matches.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (ra, rb) = (&matches[a as usize], &matches[b as usize]);
            ra.mask
                .0
                .cmp(&rb.mask.0)
                .then(ra.key.0.cmp(&rb.key.0))
                .then(rank(rb.priority, b).cmp(&rank(ra.priority, a)))
        });

        let mut subtables = Vec::new();
        let mut i = 0;
        while i < order.len() {
            let mask = matches[order[i] as usize].mask;
            let mut entries: Vec<(FlowKey, u64)> = Vec::new();
            while i < order.len() && matches[order[i] as usize].mask == mask {
                let r = &matches[order[i] as usize];
                // Within equal (mask, key) the best rank sorts first, so
                // only the first of a run becomes an entry.
                if entries.last().is_none_or(|e| e.0 != r.key) {
                    entries.push((r.key, rank(r.priority, order[i])));
                }
                i += 1;
            }
            subtables.push(Subtable::build(mask, entries));
        }
        subtables.sort_by_key(|st| std::cmp::Reverse(st.max_rank));
        Classifier {
            matches,
            values,
            subtables,
        }
    }

    /// The best matching rule: highest priority, ties to the lowest index.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(u32, &T)> {
        let mut best: u64 = 0;
        let mut found = false;
        for st in &self.subtables {
            // A subtable whose best rank is below the best hit cannot
            // improve on it, and neither can any later one (sorted). Ranks
            // are unique per rule, so equality cannot occur.
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
        self.values.get(idx as usize).map(|v| (idx, v))
    }

    /// The match and value of rule `idx` (as given to `build`, key masked).
    pub fn rule(&self, idx: u32) -> Option<(&RuleMatch, &T)> {
        Some((
            self.matches.get(idx as usize)?,
            self.values.get(idx as usize)?,
        ))
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
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
        assert_eq!(c.rule(1).map(|(m, _)| m.key), Some(k));
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
