//! Tests of compiling a config: what a change builds, what it shares
//! with the running snapshot, and the errors it reports.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::{align, Layout, Previous};
use crate::testkit;
use xvs_config::{AclConfig, Config, Direction, Shared};

proptest! {
    /// `align` answers what a name map would: for each new item the
    /// old one of its name, and the old ones without a new namesake,
    /// whatever was deleted, inserted, moved or renamed.
    #[test]
    fn align_matches_by_name(
        prev in proptest::sample::subsequence((0..40u8).collect::<Vec<_>>(), 0..40)
            .prop_shuffle(),
        keep in proptest::collection::vec(any::<bool>(), 40),
        added in proptest::sample::subsequence((40..60u8).collect::<Vec<_>>(), 0..6),
        moves in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..3),
    ) {
        // Shared, as config objects are: a kept item is the same
        // allocation in both lists and matches by pointer.
        let prev: Vec<Shared<String>> = prev.iter().map(|i| Shared::new(format!("n{i}"))).collect();
        // Mostly the old order, some items gone, some added anywhere,
        // a few moved.
        let mut new: Vec<Shared<String>> = prev
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k || prev.len() < 4)
            .map(|(n, _)| n.clone())
            .collect();
        for (k, a) in added.iter().enumerate() {
            let at = (k * 7) % (new.len() + 1);
            new.insert(at, Shared::new(format!("n{a}")));
        }
        for (a, b) in &moves {
            if !new.is_empty() {
                let x = new.remove(a.index(new.len()));
                new.insert(b.index(new.len() + 1), x);
            }
        }
        let (found, gone) = align(&prev, &new, |s| s.as_str(), Shared::same);
        let by_name: HashMap<&str, usize> =
            prev.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let want: Vec<Option<usize>> = new.iter().map(|n| by_name.get(n.as_str()).copied()).collect();
        prop_assert_eq!(found, want);
        let names: HashSet<&str> = new.iter().map(|n| n.as_str()).collect();
        let mut gone = gone;
        gone.sort_unstable();
        let want_gone: Vec<usize> =
            (0..prev.len()).filter(|i| !names.contains(prev[*i].as_str())).collect();
        prop_assert_eq!(gone, want_gone);
    }
}

#[test]
fn every_problem_is_reported_in_table_order_and_nothing_changes() {
    let mut ctl = testkit::testbed();
    let before = ctl.snapshot();
    let mut config = testkit::config();
    config.bridges[0].flows = vec!["priority=1,no_such_field=1,actions=drop".into()];
    config.acls = vec![AclConfig {
        port: "vm1".into(),
        dir: Direction::In,
        rules: vec!["not a rule".into()],
    }
    .into()];
    let errs = ctl
        .apply(config)
        .expect_err("a bad flow and a bad ACL rule");
    let objects: Vec<&str> = errs.0.iter().map(|e| e.object.as_str()).collect();
    // Policies are compiled before bridges: the ACL comes first.
    assert_eq!(objects, ["acl \"vm1\" in rule 1", "bridge \"br0\" flow 1"]);
    assert!(std::sync::Arc::ptr_eq(&ctl.snapshot(), &before));
    assert_eq!(*ctl.config(), testkit::config());
}

#[test]
fn a_changed_tunnel_is_built_and_the_others_are_taken() {
    let mut ctl = testkit::testbed();
    let mut config = testkit::config();
    config.tunnels[2]
        .remotes
        .push("2001:db8::3".parse().unwrap());
    ctl.apply(config).expect("one more remote");
    let work = ctl.last_apply();
    // vx6 alone, with its two remotes' templates; no bridge's tables
    // (same config, same members), and only vx6's bridge's FDB, whose
    // remote list was rebuilt.
    assert_eq!(work.tunnels_compiled, 1);
    assert_eq!(work.templates_built, 2);
    assert_eq!(work.bridge_tables_built, 0);
    assert_eq!(work.fdbs_rederived, 1);
    assert_eq!(ctl.snapshot().tunnels.ports()[2].remotes.len(), 2);
}

#[test]
fn names_are_looked_up_alike_by_scan_and_by_map() {
    let mut config = testkit::config();
    config.assign_port_numbers();
    let empty = Config::default();
    let snapshot = crate::snapshot::Snapshot::empty();
    let none = Default::default();
    let prev = Previous {
        config: &empty,
        snapshot: &snapshot,
        dyn_remotes: &none,
        lookup_addrs: &Default::default(),
        addrs_dirty: false,
    };
    let layout = Layout::of(&config, &prev);
    let names: Vec<(String, Option<u16>)> = config
        .ports
        .iter()
        .map(|p| (p.name.clone(), p.number))
        .chain(config.tunnels.iter().map(|t| (t.name.clone(), t.number)))
        .chain(config.uplink.iter().map(|u| (u.iface.clone(), u.number)))
        .chain([("nonesuch".to_string(), None)])
        .collect();
    // Twice over, so that the first answers come from scans and the
    // rest from the map.
    for (name, no) in names.iter().chain(&names) {
        assert_eq!(layout.number(name), *no, "{name}");
    }
    for (i, b) in config
        .bridges
        .iter()
        .enumerate()
        .chain(config.bridges.iter().enumerate())
    {
        assert_eq!(layout.bridge(&b.name), Some(i as u16));
    }
    assert_eq!(layout.bridge("nonesuch"), None);
    assert!(layout.numbers.get().is_some());
}
