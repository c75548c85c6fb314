//! Flow rule counters (`xvsctl dump-flows`' n_packets, n_bytes,
//! idle_age): each frame counts against the rule it matched, through the
//! exact-match cache too; a bridge's counters last as long as its table,
//! and start from zero when it is rebuilt.

use super::*;

#[test]
fn each_rule_counts_its_frames_cached_or_not_until_its_table_changes() {
    let mut bed = Bed::new();
    bed.apply(|c| {
        c.bridges[0].flows = vec![
            format!("priority=100,in_port={VM1},actions=output:{VM2}"),
            format!("priority=90,in_port={VM2},actions=drop"),
        ];
    });
    let f = udp_frame(A, BCAST, 16);
    for _ in 0..5 {
        bed.send(VM1, &[&f]);
    }
    let last = bed.now;
    bed.send(VM2, &[&f, &f]);
    let hits = |bed: &Bed, rule: usize| bed.ws.flow_hits[0].rules[rule];
    let to_vm2 = hits(&bed, 0);
    assert_eq!(to_vm2.packets, 5, "four of them from the cache");
    assert!(bed.ws.emc.hits() >= 4);
    assert_eq!(to_vm2.bytes, 5 * f.len() as u64);
    assert_eq!(to_vm2.last_used_ns, last);
    assert_eq!(hits(&bed, 1).packets, 2, "a drop rule counts too");

    // Another bridge's change keeps this table, and its counts.
    bed.apply(|c| c.bridges[1].flows = vec!["priority=1,actions=drop".into()]);
    bed.send(VM1, &[&f]);
    assert_eq!(hits(&bed, 0).packets, 6);
    // Its own change rebuilds it: counted from zero.
    bed.apply(|c| c.bridges[0].flows.push("priority=1,actions=drop".into()));
    bed.send(VM1, &[&f]);
    assert_eq!(bed.ws.flow_hits[0].rules.len(), 3);
    assert_eq!(hits(&bed, 0).packets, 1);
    assert_eq!(hits(&bed, 1).packets, 0);
}

#[test]
fn a_bridge_without_flows_counts_nothing() {
    let mut bed = Bed::new();
    let f = udp_frame(A, BCAST, 16);
    bed.send(VM1, &[&f]);
    assert!(bed.ws.flow_hits.iter().all(|h| h.rules.is_empty()));
}
