//! Offers to the GSO-preserving fast path (`events::Offer`): a flow whose
//! decision the exact-match cache replays and the TC executor can carry
//! out is offered once per snapshot, with what the control thread needs
//! to build its TC decision; what it cannot carry out is never offered.

use crossbeam_channel::Receiver;

use super::*;
use crate::events::{offer_channel, Offer};

/// A bed whose worker offers flows, B static behind vx1's first remote.
fn bed() -> (Bed, Receiver<Offer>) {
    let mut bed = Bed::new();
    bed.apply(|c| {
        let remote = Some("192.0.2.2".parse().unwrap());
        c.fdb
            .push(xvs_config::StaticFdbConfig::new("br0", MacAddr(B), "vx1", remote).into());
    });
    let (tx, rx) = offer_channel();
    bed.ws.set_offers(tx);
    (bed, rx)
}

#[test]
fn a_cached_unicast_flow_is_offered_once_per_snapshot() {
    let (mut bed, rx) = bed();
    let f = udp_frame(A, B, 100);
    bed.send(VM1, &[&f]);
    assert!(
        rx.try_recv().is_err(),
        "the first frame decides, nothing is cached yet"
    );
    bed.send(VM1, &[&f, &f, &f]);
    let o = rx.try_recv().expect("offered");
    assert!(rx.try_recv().is_err(), "once, not per packet");
    assert_eq!((o.in_port, o.out_port, o.out_remote), (VM1, VX1, 0));
    assert_eq!(o.generation, bed.ctl.snapshot().generation);
    assert_eq!(o.key.dl_dst(), MacAddr(B));
    assert_eq!(o.key.in_port(), VM1);
    assert_eq!((o.key.tp_src(), o.key.tp_dst()), (1000, 2000));
    assert_eq!(bed.ws.offers_sent, 1);

    // A new snapshot: the offer may be stale, so it comes again.
    bed.apply(|c| c.ports[1].allowed_macs = vec![MacAddr(A)]);
    bed.send(VM1, &[&f, &f]);
    bed.send(VM1, &[&f]);
    let again = rx.try_recv().expect("offered again");
    assert!(again.generation > o.generation);
}

/// A flow that still reaches the pipeline (its decision evicted while it
/// was idle, or not installed) is offered again in the next period of
/// the same snapshot, not before.
#[test]
fn a_flow_still_reaching_the_pipeline_is_offered_again_each_period() {
    use crate::pipeline::state::OFFER_PERIOD_NS;
    let (mut bed, rx) = bed();
    let f = udp_frame(A, B, 100);
    // The first frame learns A, which publishes a new snapshot.
    bed.send(VM1, &[&f]);
    bed.send(VM1, &[&f, &f, &f]);
    let o = rx.try_recv().expect("offered");
    assert!(rx.try_recv().is_err());
    bed.now += OFFER_PERIOD_NS / 4;
    bed.send(VM1, &[&f, &f]);
    assert!(rx.try_recv().is_err(), "not again within the period");
    bed.now += OFFER_PERIOD_NS;
    bed.send(VM1, &[&f]);
    let again = rx.try_recv().expect("offered again in the next period");
    assert_eq!((again.generation, again.key), (o.generation, o.key));
    assert!(rx.try_recv().is_err());
}

#[test]
fn decapsulated_flows_to_a_local_port_are_offered() {
    let (mut bed, rx) = bed();
    bed.apply(|c| {
        c.fdb
            .push(xvs_config::StaticFdbConfig::new("br0", MacAddr(A), "vm1", None).into());
    });
    let pkt = vxlan([192, 0, 2, 2], 42, &udp_frame(B, A, 100));
    bed.send(ETH0, &[&pkt, &pkt]);
    bed.send(ETH0, &[&pkt]);
    let o = rx.try_recv().expect("offered");
    assert_eq!((o.in_port, o.in_remote, o.out_port), (VX1, 0, VM1));
    assert_eq!(o.vtep, Some("192.0.2.2".parse().unwrap()));
    assert_eq!(o.key.tun_id(), 42);
}

#[test]
fn what_the_fast_path_cannot_carry_out_is_never_offered() {
    let (mut bed, rx) = bed();
    let plain = udp_frame(A, B, 100);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("IPv4 options", ipv4_with_options(&plain)),
        ("a broadcast", udp_frame(A, BCAST, 100)),
    ];
    for (what, f) in &cases {
        bed.send(VM1, &[f, f, f]);
        bed.send(VM1, &[f]);
        assert!(rx.try_recv().is_err(), "{what} was offered");
    }
    // A firewall on the way in: every frame is the pipeline's.
    bed.apply(|c| {
        c.acls.push(
            AclConfig {
                port: "vm1".into(),
                dir: Direction::In,
                rules: vec!["priority=10,tcp,tp_dst=22,action=drop".into()],
            }
            .into(),
        );
    });
    bed.send(VM1, &[&plain, &plain]);
    bed.send(VM1, &[&plain]);
    assert!(rx.try_recv().is_err(), "offered past a firewall");
}

#[test]
fn nothing_is_offered_unless_asked() {
    let mut bed = Bed::new();
    let f = udp_frame(A, B, 100);
    bed.send(VM1, &[&f, &f, &f]);
    assert_eq!(bed.ws.offers_sent + bed.ws.offers_lost, 0);
}
