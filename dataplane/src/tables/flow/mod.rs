//! The compiled flow table and the per-worker exact-match cache (EMC).
//!
//! Who writes, who reads:
//! - The rules and their text syntax ([`FlowMatch`], [`FlowRule`],
//!   [`Action`]) are `xvs_types::flow`'s: the control plane, xvsctl and
//!   persistence share them. They are re-exported here so the table and
//!   the rules it is built from are named together.
//! - [`FlowTable`] is built once by the control plane from a rule list and a
//!   generation number, then published in a snapshot; workers only read it.
//!   Its actions live in one contiguous array, so a hit costs one range load
//!   and no pointer chase.
//! - [`ExactMatchCache`] is owned by one worker and written only by it. It
//!   remembers full-key results (including misses) tagged with the table's
//!   generation; a snapshot swap with a new generation invalidates every entry
//!   at once without touching them.
//!
//! Semantics the pipeline relies on:
//! - A table with **no rules** forwards everything with [`Action::Normal`]
//!   (like the default `NORMAL` flow of a fresh OVS bridge); a table **with**
//!   rules drops what no rule matches (OpenFlow 1.3 table-miss). Use
//!   [`FlowTable::actions_or_default`] to get that right in one place.
//! - An empty action list drops.
//! - The control plane must give every table it publishes a generation that
//!   differs from the previous one, or EMC entries survive the swap.
//!
//! Parts: this file holds the compiled [`FlowTable`]; `emc.rs` the
//! [`ExactMatchCache`].

mod emc;

pub use emc::{
    EmcHit, ExactMatchCache, EMC_DEFAULT_ENTRIES, EMC_DEFAULT_INSERT_INV_PROB, EMC_HASH_SEED,
};
pub use xvs_types::flow::{
    Action, FlowError, FlowMatch, FlowRule, IpPrefix, Masked, VlanMatch, DEFAULT_PRIORITY,
    ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6,
};

use crate::tables::classifier::{Classifier, Rule};
use xvs_types::FlowKey;

/// Where one rule's actions sit in [`FlowTable::actions`]' backing array.
#[derive(Debug, Clone, Copy)]
struct ActionRange {
    start: u32,
    len: u32,
}

/// An immutable flow table. See the module documentation for the miss and
/// empty-table semantics.
#[derive(Debug)]
pub struct FlowTable {
    classifier: Classifier<()>,
    /// Indexed by rule index.
    ranges: Box<[ActionRange]>,
    actions: Box<[Action]>,
    rules: Vec<FlowRule>,
    generation: u64,
}

static NORMAL_ACTIONS: [Action; 1] = [Action::Normal];

impl Default for FlowTable {
    /// The empty table: every frame takes the NORMAL path.
    fn default() -> Self {
        FlowTable {
            classifier: Classifier::build(Vec::new()),
            ranges: Box::new([]),
            actions: Box::new([]),
            rules: Vec::new(),
            generation: 0,
        }
    }
}

impl FlowTable {
    /// Validates and compiles `rules`; rule indices are positions in
    /// `rules`. `generation` must differ from the previously published
    /// table's (it is what invalidates the workers' exact-match caches).
    pub fn build(rules: Vec<FlowRule>, generation: u64) -> Result<FlowTable, FlowError> {
        let mut crules = Vec::with_capacity(rules.len());
        let mut ranges = Vec::with_capacity(rules.len());
        let mut actions = Vec::new();
        for (index, r) in rules.iter().enumerate() {
            let (key, mask) = r.matches.to_key_mask().map_err(|e| FlowError::InRule {
                index,
                priority: r.priority,
                source: Box::new(e),
            })?;
            crules.push(Rule::new(r.priority, key, mask, ()));
            let start = u32::try_from(actions.len()).map_err(|_| FlowError::InRule {
                index,
                priority: r.priority,
                source: Box::new(FlowError::BadAction {
                    token: format!("{} actions so far", actions.len()),
                    reason: "more than u32::MAX actions in one table",
                }),
            })?;
            actions.extend_from_slice(&r.actions);
            ranges.push(ActionRange {
                start,
                len: r.actions.len() as u32,
            });
        }
        Ok(FlowTable {
            classifier: Classifier::build(crules),
            ranges: ranges.into_boxed_slice(),
            actions: actions.into_boxed_slice(),
            rules,
            generation,
        })
    }

    /// The best matching rule's index.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<u32> {
        self.classifier.lookup(key).map(|(i, _)| i)
    }

    /// The actions of rule `idx`; empty (drop) for an unknown index.
    #[inline]
    pub fn actions(&self, idx: u32) -> &[Action] {
        let Some(r) = self.ranges.get(idx as usize) else {
            return &[];
        };
        let start = r.start as usize;
        self.actions
            .get(start..start + r.len as usize)
            .unwrap_or(&[])
    }

    /// The actions for a lookup result, applying the table-miss rules:
    /// an empty table acts as `normal`, a miss in a non-empty one drops.
    #[inline]
    pub fn actions_or_default(&self, hit: Option<u32>) -> &[Action] {
        match hit {
            Some(i) => self.actions(i),
            None if self.ranges.is_empty() => &NORMAL_ACTIONS,
            None => &[],
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn rule(&self, idx: u32) -> Option<&FlowRule> {
        self.rules.get(idx as usize)
    }

    pub fn rules(&self) -> &[FlowRule] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Keys, addresses and tables the tests of every part build.
#[cfg(test)]
mod testutil {
    use std::net::{IpAddr, Ipv4Addr};

    use super::{FlowTable, ETH_TYPE_IPV4, ETH_TYPE_IPV6};
    use xvs_types::{ip_to_u128, FlowKey};

    pub fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    pub fn tcp_key(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> FlowKey {
        let mut k = FlowKey::default();
        k.set_in_port(3);
        k.set_eth_type(if src.is_ipv4() {
            ETH_TYPE_IPV4
        } else {
            ETH_TYPE_IPV6
        });
        k.set_ip_proto(6);
        k.set_nw_src(ip_to_u128(src));
        k.set_nw_dst(ip_to_u128(dst));
        k.set_tp_src(sport);
        k.set_tp_dst(dport);
        k
    }

    pub fn table(rules: &[&str], generation: u64) -> FlowTable {
        let rules = rules.iter().map(|s| s.parse().unwrap()).collect();
        FlowTable::build(rules, generation).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{table, tcp_key, v4};
    use super::*;

    #[test]
    fn table_lookup_actions_and_defaults() {
        let t = table(
            &[
                "priority=10,tcp,nw_dst=10.0.0.0/8,actions=output:1",
                "priority=20,tcp,nw_dst=10.0.0.0/8,tp_dst=443,actions=output:2,output:3",
                "priority=5,actions=drop",
            ],
            1,
        );
        let k = tcp_key(v4(1, 2, 3, 4), v4(10, 9, 9, 9), 1000, 443);
        assert_eq!(t.lookup(&k), Some(1));
        assert_eq!(t.actions(1), &[Action::Output(2), Action::Output(3)]);
        let k80 = tcp_key(v4(1, 2, 3, 4), v4(10, 9, 9, 9), 1000, 80);
        assert_eq!(t.actions_or_default(t.lookup(&k80)), &[Action::Output(1)]);
        assert_eq!(t.actions(99), &[] as &[Action]);

        let empty = FlowTable::build(vec![], 1).unwrap();
        assert_eq!(
            empty.actions_or_default(empty.lookup(&k)),
            &[Action::Normal]
        );
        let miss = table(&["priority=1,in_port=9,actions=normal"], 1);
        assert_eq!(miss.actions_or_default(miss.lookup(&k)), &[] as &[Action]);
    }

    #[test]
    fn build_rejects_invalid_builder_values_naming_the_rule() {
        let bad = FlowRule {
            priority: 7,
            matches: FlowMatch::new().dl_vlan(5000),
            actions: vec![],
            cookie: 0,
        };
        let e = FlowTable::build(vec![bad], 1).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("rule 0") && msg.contains("priority 7") && msg.contains("5000"),
            "{msg}"
        );
    }
}
