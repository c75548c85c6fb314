//! `pipeline::trace`: a frame run through the workers' pipeline against
//! the running snapshot says what was decided (outputs with their bytes,
//! the ACL and flow rules hit, the drop and its reason), and changes
//! nothing of the switch's: no worker counter, no MAC learned.

use super::*;
use crate::pipeline::trace::trace;

#[test]
fn a_trace_shows_outputs_rules_and_drops_and_touches_nothing() {
    let mut bed = Bed::new();
    let snap = bed.ctl.snapshot();
    // Unknown unicast floods: vm2 and both remotes of vx1 over the uplink.
    let f = udp_frame(A, B, 100);
    let t = trace(&snap, VM1, &f, bed.now);
    let sent = bed.send(VM1, &[&f]);
    assert_eq!(t.outputs, sent.tx, "the bytes a worker sends");
    assert!(t.outputs.iter().any(|(p, _)| *p == ETH0));
    assert!(t.drops.is_empty() && t.flow_rule.is_none(), "{t:?}");

    // A drop rule and an ACL: each named, with the drop's reason.
    bed.apply(|c| {
        c.bridges[0].flows = vec![
            format!("priority=100,in_port={VM1},udp,tp_dst=2000,actions=drop"),
            "priority=1,actions=NORMAL".into(),
        ];
        c.acls.push(
            AclConfig {
                port: "vm1".into(),
                dir: Direction::In,
                rules: vec!["priority=10,udp,tp_dst=3000,action=drop".into()],
            }
            .into(),
        );
    });
    let snap = bed.ctl.snapshot();
    let before = bed.ws.ports[usize::from(VM1)].rx_packets;
    let t = trace(&snap, VM1, &f, bed.now);
    assert_eq!(t.flow_rule, Some((0, 0)), "{t:?}");
    assert_eq!(t.drops, vec![(DropReason::FlowDrop.name(), 1)]);
    assert!(t.outputs.is_empty());
    let mut acl = udp_frame(A, B, 100);
    acl[36..38].copy_from_slice(&3000u16.to_be_bytes());
    let t = trace(&snap, VM1, &acl, bed.now);
    assert_eq!(t.acl_hits.len(), 1, "{t:?}");
    assert_eq!(t.drops, vec![(DropReason::FirewallIn.name(), 1)]);
    assert_eq!(
        bed.ws.ports[usize::from(VM1)].rx_packets,
        before,
        "a trace is not a worker's frame"
    );
}
