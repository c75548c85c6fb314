//! The exact-match cache is a fast path: a frame whose flow key hits it
//! replays a decision (flow rule, firewall verdict, and for one output the
//! output itself) instead of consulting the tables. This test proves that
//! replay byte-identical to the reference, the pipeline deciding every
//! frame from the tables alone.
//!
//! Two identical systems (control plane, worker state, buffers) take the
//! same random batches of frames from VM ports and from remote VTEPs. The
//! fast one runs each batch as the daemon does: whole, cache warm. The
//! reference runs each frame alone with the cache emptied first
//! ([`WorkerState::forget_cache`]). Learning is applied to both at the
//! same batch boundaries, so their tables evolve alike. Every batch must
//! send the same bytes out of the same ports, in the same order, and give
//! back as many buffers; at the end every counter must agree.

use etherparse::PacketBuilder;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

use xvs_config::{AclConfig, Config, Direction};
use xvs_dataplane::control::Control;
use xvs_dataplane::pipeline::WorkerState;
use xvs_dataplane::testkit::{self, Pool, PEER2_MAC, UPLINK_MAC};
use xvs_types::PortNo;

#[path = "common/frames.rs"]
mod frames;

const ETH0: PortNo = 1;
/// vm1, vm2 (bridge br0), vm3 (br1).
const LOCAL: [PortNo; 3] = [2, 3, 4];
/// Two MACs that start on vm1/vm2's side, two behind the tunnels, and
/// broadcast: small enough that flows repeat within a batch.
const MACS: [[u8; 6]; 5] = [
    [0x02, 0xaa, 0, 0, 0, 1],
    [0x02, 0xaa, 0, 0, 0, 2],
    [0x02, 0xbb, 0, 0, 0, 3],
    [0x02, 0xbb, 0, 0, 0, 4],
    [0xff; 6],
];
const DPORTS: [u16; 4] = [22, 53, 80, 2000];

/// One inner frame.
#[derive(Debug, Clone)]
struct Inner {
    src: usize,
    dst: usize,
    /// 0 UDP, 1 TCP, 2 ARP request.
    l4: u8,
    sport: u16,
    dport: usize,
    len: usize,
}

/// One batch: from a local port, or from a remote VTEP through the uplink.
#[derive(Debug, Clone)]
struct Batch {
    /// Index into [`LOCAL`], or 3: the uplink.
    port: usize,
    /// For the uplink: 0 VXLAN from 192.0.2.2, 1 from 192.0.2.3, 2 Geneve.
    tunnel: u8,
    /// Time since the previous batch: 1 µs, or long enough for a learned
    /// MAC's refresh to be due (1 s at the fixture's aging).
    gap_ns: u64,
    frames: Vec<Inner>,
}

fn inner() -> impl Strategy<Value = Inner> {
    (
        0..4usize,
        0..5usize,
        0..3u8,
        1000..1003u16,
        0..4usize,
        0..200usize,
    )
        .prop_map(|(src, dst, l4, sport, dport, len)| Inner {
            src,
            dst,
            l4,
            sport,
            dport,
            len,
        })
}

/// Batches of a few flows, repeated within and across batches as real
/// traffic repeats them, so that the cache has something to replay (and
/// learned MACs come due for refresh while their decisions are cached).
fn batches() -> impl Strategy<Value = Vec<Batch>> {
    let shape = (
        0..4usize,
        0..3u8,
        prop::sample::select(vec![1_000u64, 600_000_000, 1_500_000_000]),
        prop::collection::vec(0..6usize, 1..32),
    );
    (
        prop::collection::vec(inner(), 1..6),
        prop::collection::vec(shape, 1..12),
    )
        .prop_map(|(flows, shapes)| {
            shapes
                .into_iter()
                .map(|(port, tunnel, gap_ns, picks)| Batch {
                    port,
                    tunnel,
                    gap_ns,
                    frames: picks
                        .iter()
                        .map(|i| flows[i % flows.len()].clone())
                        .collect(),
                })
                .collect()
        })
}

fn ip_of(mac: usize) -> [u8; 4] {
    [10, 0, 0, 1 + mac as u8]
}

fn build(f: &Inner) -> Vec<u8> {
    let (src, dst) = (MACS[f.src], MACS[f.dst]);
    let dip = if f.dst == 4 {
        [10, 0, 0, 255]
    } else {
        ip_of(f.dst)
    };
    let payload = vec![0x5a; f.len];
    let mut v = Vec::new();
    match f.l4 {
        0 => {
            let b = PacketBuilder::ethernet2(src, dst)
                .ipv4(ip_of(f.src), dip, 64)
                .udp(f.sport, DPORTS[f.dport]);
            b.write(&mut v, &payload).expect("udp frame");
        }
        1 => {
            let b = PacketBuilder::ethernet2(src, dst)
                .ipv4(ip_of(f.src), dip, 64)
                .tcp(f.sport, DPORTS[f.dport], 1, 65535);
            b.write(&mut v, &payload).expect("tcp frame");
        }
        _ => v = frames::arp(src, [0xff; 6], None, 1, ip_of(f.src), dip),
    }
    v
}

fn wire(b: &Batch) -> (PortNo, Vec<Vec<u8>>) {
    if b.port < LOCAL.len() {
        return (LOCAL[b.port], b.frames.iter().map(build).collect());
    }
    let frames = b
        .frames
        .iter()
        .map(|f| {
            let inner = build(f);
            match b.tunnel {
                0 => frames::vxlan([192, 0, 2, 2], 42, &inner),
                1 => frames::vxlan([192, 0, 2, 3], 42, &inner),
                _ => frames::geneve(43, 0, &frames::known_opt(), &inner),
            }
        })
        .collect();
    (ETH0, frames)
}

/// The fixture alone (a learning bridge), or with flow rules and
/// firewalls on br0 that the cache must replay.
fn system(policy: bool) -> (Control, WorkerState, Pool) {
    let mut ctl = testkit::testbed();
    if policy {
        let mut c: Config = ctl.config().clone();
        c.bridges[0].flows = vec![
            "priority=100,tcp,tp_dst=22,actions=drop".into(),
            "priority=90,in_port=2,udp,tp_dst=2000,actions=output:3".into(),
            "priority=80,in_port=3,udp,actions=mod_vlan_vid:7,output:2".into(),
            "priority=10,actions=NORMAL".into(),
        ];
        c.acls.push(
            AclConfig {
                port: "vm1".into(),
                dir: Direction::In,
                rules: vec!["priority=10,udp,tp_dst=53,action=drop".into()],
            }
            .into(),
        );
        c.acls.push(
            AclConfig {
                port: "vm2".into(),
                dir: Direction::Out,
                rules: vec!["priority=10,tcp,tp_dst=80,action=drop".into()],
            }
            .into(),
        );
        ctl.apply(c).expect("the differential config is valid");
    }
    let ws = WorkerState::new(0, Some(ctl.learn_sender()));
    (ctl, ws, Pool::new(64))
}

/// Runs `batches` through both systems; returns the fast one's cache
/// replays (plan hits).
fn differential(policy: bool, batches: &[Batch]) -> Result<u64, TestCaseError> {
    let (mut fctl, mut fws, mut fpool) = system(policy);
    let (mut rctl, mut rws, mut rpool) = system(policy);
    let mut now = 1_000_000_000u64;
    for (i, b) in batches.iter().enumerate() {
        let (port, frames) = wire(b);
        let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        now += b.gap_ns;
        // Enough spare buffers for every copy a flood makes: a shortage
        // would be counted at different frames in the two runs.
        let fast = fpool.run(&fctl.snapshot(), &mut fws, port, now, &refs, 4 * refs.len());
        fctl.process_learning(now);

        let snap = rctl.snapshot();
        let (mut tx, mut freed) = (Vec::new(), 0);
        for f in &refs {
            rws.forget_cache();
            let one = rpool.run(&snap, &mut rws, port, now, &[f], 4);
            tx.extend(one.tx);
            freed += one.freed;
        }
        rctl.process_learning(now);

        prop_assert_eq!(&fast.tx, &tx, "batch {}: {:?}", i, b);
        prop_assert_eq!(fast.freed, freed, "batch {}: buffers given back", i);
    }
    prop_assert_eq!(fws.drops.0, rws.drops.0, "drops by reason");
    prop_assert_eq!(fws.ports.len(), rws.ports.len());
    for (p, (f, r)) in fws.ports.iter().zip(&rws.ports).enumerate() {
        prop_assert_eq!(
            (
                f.rx_packets,
                f.rx_bytes,
                f.tx_packets,
                f.tx_bytes,
                f.drops.0
            ),
            (
                r.rx_packets,
                r.rx_bytes,
                r.tx_packets,
                r.tx_bytes,
                r.drops.0
            ),
            "port {}",
            p
        );
    }
    prop_assert_eq!(&fws.fw_hits, &rws.fw_hits, "firewall rule hits");
    prop_assert_eq!(
        (fws.learn_sent, fws.learn_lost, fws.replicas, fws.copies),
        (rws.learn_sent, rws.learn_lost, rws.replicas, rws.copies)
    );
    prop_assert_eq!(
        (fws.arp_suppressed, fws.nd_suppressed, fws.upcalls, fws.held),
        (rws.arp_suppressed, rws.nd_suppressed, rws.upcalls, rws.held)
    );
    prop_assert_eq!(rws.plan_hits, 0, "the reference replayed a decision");
    Ok(fws.plan_hits)
}

fn run(policy: bool) {
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 256,
        ..RunnerConfig::default()
    });
    let replays = std::cell::Cell::new(0u64);
    runner
        .run(&batches(), |batches| {
            replays.set(replays.get() + differential(policy, &batches)?);
            Ok(())
        })
        .unwrap();
    // Proof that the fast path was taken, not only the tables.
    println!("{} decisions replayed from the cache", replays.get());
    assert!(replays.get() > 1000, "only {} replays", replays.get());
}

#[test]
fn cached_decisions_are_the_tables_decisions_on_a_learning_bridge() {
    run(false);
}

#[test]
fn cached_decisions_are_the_tables_decisions_with_flows_and_firewalls() {
    run(true);
}
