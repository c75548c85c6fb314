//! The fast path end to end, short of the daemon: a frame runs through the
//! pipeline on the testkit topology until its decision is cached and
//! offered; `xvsd::fastpath::decision` turns the offer into a TC decision;
//! the TC executor, run on the same frame with that decision installed
//! (`BPF_PROG_TEST_RUN`), gives the bytes the pipeline sent. Both ways:
//! vm1 to B behind vx1 (push), and from B through vx1 to vm1 (pop).
//!
//! Needs root (BPF); `xvs_tests::require_root` fails without it under
//! XVS_REQUIRE_ALL=1.

use std::sync::Arc;

use xvs_bpf::tc::{TcFlows, TcProgram, TC_ACT_OK, TC_ACT_REDIRECT};
use xvs_dataplane::events::{offer_channel, Offer};
use xvs_dataplane::pipeline::WorkerState;
use xvs_dataplane::snapshot::Snapshot;
use xvs_dataplane::testkit::{self, Pool, PEER2_MAC, UPLINK_MAC};
use xvs_tests::require_root;
use xvs_types::{MacAddr, PortNo};
use xvsd::fastpath::{decision, Decision};

#[path = "../../dataplane/tests/common/frames.rs"]
mod frames;
use frames::*;

const VM1: PortNo = 2;
const ETH0: PortNo = 1;

/// Ifindexes for the test: any numbers, the redirect is not carried out.
fn ifindex(p: PortNo) -> Option<u32> {
    Some(100 + u32::from(p))
}

#[test]
fn the_executor_sends_what_the_pipeline_sent_both_ways() {
    if !require_root() {
        return;
    }
    let mut ctl = testkit::testbed();
    let mut cfg = ctl.config().clone();
    for (mac, port, remote) in [(B, "vx1", Some("192.0.2.2")), (A, "vm1", None)] {
        let remote = remote.map(|r| r.parse().unwrap());
        cfg.fdb
            .push(xvs_config::StaticFdbConfig::new("br0", MacAddr(mac), port, remote).into());
    }
    // MTUs the fast path can keep to: 1,450 inside a VXLAN over 1,500.
    cfg.uplink.as_mut().unwrap().mtu = 1500;
    for p in cfg.ports.iter_mut() {
        p.mtu = 1450;
    }
    ctl.apply(cfg).unwrap();
    let snap = ctl.snapshot();
    let mut ws = WorkerState::new(0, None);
    let (tx, rx) = offer_channel();
    ws.set_offers(tx);
    let mut pool = Pool::new(16);
    let mut flows = TcFlows::load().expect("load the TC programs");

    let to_b = udp_frame(A, B, 1200);
    let from_b = vxlan([192, 0, 2, 2], 42, &udp_frame(B, A, 1200));
    for (in_port, frame, prog) in [
        (VM1, &to_b, TcProgram::Port),
        (ETH0, &from_b, TcProgram::Uplink),
    ] {
        let mut now = 1_000_000_000;
        let mut sent = Vec::new();
        for _ in 0..3 {
            now += 1000;
            let out = pool.run(&snap, &mut ws, in_port, now, &[frame], 0);
            assert_eq!(out.tx.len(), 1, "forwarded");
            sent = out.tx[0].1.clone();
        }
        let offer = rx.try_recv().expect("the cached decision was offered");
        let (ret, out) = match decision(&snap, &offer, ifindex).expect("a TC decision") {
            Decision::Port(k, a) => {
                flows.insert(&k, &a).unwrap();
                flows.test_run(prog, frame, k.ifindex).unwrap()
            }
            Decision::Uplink(k, a) => {
                flows.insert(&k, &a).unwrap();
                flows.test_run(prog, frame, ifindex(ETH0).unwrap()).unwrap()
            }
        };
        assert_eq!(ret, TC_ACT_REDIRECT, "{prog:?}: the executor took it");
        assert_eq!(out, sent, "{prog:?}: the same bytes as the pipeline");
    }
}

/// An offer from an older snapshot stays the pipeline's.
#[test]
fn stale_offers_are_refused() {
    let (snap, offer) = offered(1500, 1500, 100);
    let mut old = offer;
    old.generation -= 1;
    assert_eq!(
        decision(&snap, &old, ifindex),
        Err(xvsd::fastpath::Refused::Stale)
    );
}

/// A guest port whose MTU does not fit through the tunnel still has its
/// flow decided, and the executor carries the frames that fit once
/// encapsulated; a longer one stays the pipeline's (which answers it with
/// ICMP: segments the kernel cut would vanish), and so does a
/// super-packet whose segments are a byte too long. (One whose segments
/// fit needs a real GSO skb, which BPF_PROG_TEST_RUN cannot make:
/// fastpath_live carries TCP super-packets.)
#[test]
fn frames_too_long_for_the_tunnel_stay_the_pipelines() {
    if !require_root() {
        return;
    }
    let (snap, offer) = offered(1500, 1500, 100);
    let Ok(Decision::Port(k, a)) = decision(&snap, &offer, ifindex) else {
        panic!("a port decision");
    };
    assert_eq!(a.max_ip_len, 1500);
    let mut flows = TcFlows::load().expect("load the TC programs");
    flows.insert(&k, &a).unwrap();
    // 14 + 20 + 8 + payload inside, 50 bytes of VXLAN over IPv4 outside;
    // BPF_PROG_TEST_RUN takes frames of up to a page less headroom.
    let fits = 1500 - 50 - 20 - 8;
    for (payload, gso, taken) in [
        (100, 0, true),
        (fits, 0, true),
        (fits + 1, 0, false),
        (2 * fits, fits as u32 + 1, false),
    ] {
        let f = udp_frame(A, B, payload);
        let (ret, out) = flows
            .test_run_gso(TcProgram::Port, &f, k.ifindex, gso)
            .unwrap();
        let what = format!("{payload} bytes of payload, gso_size {gso}");
        if taken {
            assert_eq!(ret, TC_ACT_REDIRECT, "{what}: carried");
            assert_eq!(out.len(), f.len() + 50, "{what}");
        } else {
            assert_eq!((ret, &out), (TC_ACT_OK, &f), "{what}: the pipeline's");
        }
    }
}

/// A snapshot with B behind vx1, the uplink's and the ports' MTUs, and
/// the offer the pipeline made for a UDP frame of `payload` bytes from
/// vm1 to B.
fn offered(uplink_mtu: u16, port_mtu: u16, payload: usize) -> (Arc<Snapshot>, Offer) {
    let mut ctl = testkit::testbed();
    let mut cfg = ctl.config().clone();
    let remote = Some("192.0.2.2".parse().unwrap());
    cfg.fdb
        .push(xvs_config::StaticFdbConfig::new("br0", MacAddr(B), "vx1", remote).into());
    cfg.uplink.as_mut().unwrap().mtu = uplink_mtu;
    for p in cfg.ports.iter_mut() {
        p.mtu = port_mtu;
    }
    ctl.apply(cfg).unwrap();
    let snap = ctl.snapshot();
    let mut ws = WorkerState::new(0, None);
    let (tx, rx) = offer_channel();
    ws.set_offers(tx);
    let mut pool = Pool::new(16);
    let f = udp_frame(A, B, payload);
    for now in [1, 2, 3] {
        pool.run(&snap, &mut ws, VM1, now * 1000, &[&f], 0);
    }
    let offer = rx.try_recv().expect("offered");
    (snap, offer)
}
