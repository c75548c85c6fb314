//! Per-packet cost of the dataplane core: tunnel push and pop, and the
//! whole pipeline on batches of 64 frames. (Large tables: benches/tables.rs.)
//!
//! Run: `cargo bench -p xvs-bench --bench dataplane`. Frames are built with
//! etherparse (independent of our emitters).

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use etherparse::PacketBuilder;

use xvs_dataplane::config::{
    AclConfig, Direction, GeneveOptConfig, QosConfig, StaticFdbConfig, TunnelConfig, TunnelKind,
};
use xvs_dataplane::frame::Frame;
use xvs_dataplane::pipeline::{process_batch, BatchIo, WorkerState};
use xvs_dataplane::testkit::{self, CHUNK, HEADROOM};
use xvs_dataplane::tunnel::{pop, PushMeta, Template, TunnelPort, TunnelTable, MAX_HEADER_LEN};
use xvs_dataplane::types::{MacAddr, PortNo};

const A: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
const B: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 2];

fn udp_frame(src: [u8; 6], dst: [u8; 6], sport: u16, n: usize) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(sport, 2000);
    let mut v = Vec::new();
    b.write(&mut v, &vec![0xab; n]).unwrap();
    v
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tunnel_cfg(kind: TunnelKind) -> TunnelConfig {
    let mut c = TunnelConfig::new("t", "br", kind, 42, vec![ip("192.0.2.2")]);
    c.local = Some(ip("192.0.2.1"));
    if kind == TunnelKind::Geneve {
        c.geneve_opts.push(GeneveOptConfig {
            class: 0x0102,
            typ: 0x03,
            data: vec![1, 2, 3, 4],
        });
    }
    c
}

fn bench_tunnel(c: &mut Criterion) {
    let inner = udp_frame(A, B, 1000, 64 - 42);
    let mut g = c.benchmark_group("tunnel");
    g.throughput(Throughput::Elements(1));
    for kind in [TunnelKind::Vxlan, TunnelKind::Geneve] {
        let cfg = tunnel_cfg(kind);
        let tpl = Template::build(
            &cfg,
            ip("192.0.2.1"),
            ip("192.0.2.2"),
            MacAddr(A),
            MacAddr(B),
        )
        .unwrap();
        let mut buf = vec![0u8; MAX_HEADER_LEN + inner.len()];
        buf[MAX_HEADER_LEN..].copy_from_slice(&inner);
        let meta = PushMeta {
            flow_hash: 0x1234_5678_9abc_def0,
            inner_tos: 0,
            ip_id: 0,
        };
        g.bench_function(format!("push_{kind}"), |b| {
            b.iter(|| {
                let mut f = Frame::new(&mut buf, MAX_HEADER_LEN, inner.len()).unwrap();
                black_box(tpl.push(&mut f, black_box(&meta)).unwrap());
            })
        });
        // The pushed packet, seen from the other end.
        let mut f = Frame::new(&mut buf, MAX_HEADER_LEN, inner.len()).unwrap();
        tpl.push(&mut f, &meta).unwrap();
        let (head, len) = (f.head(), f.len());
        let mut rcfg = cfg.clone();
        rcfg.local = Some(ip("192.0.2.2"));
        rcfg.remotes = vec![ip("192.0.2.1")];
        let table = TunnelTable::build(vec![TunnelPort::new(&rcfg, 9, ip("192.0.2.2"))]).unwrap();
        g.bench_function(format!("pop_{kind}"), |b| {
            b.iter(|| {
                let mut f = Frame::new(&mut buf, head, len).unwrap();
                black_box(pop(black_box(&table), &mut f).unwrap());
            })
        });
    }
    g.finish();
}

/// The full per-packet path: parse, flow classification (EMC), firewall
/// with 100 rules, ingress policer, FDB lookup, VXLAN push; 64 frames of 64
/// distinct flows per batch. Each iteration first copies the 64 frames into
/// their buffers (what the NIC's DMA does); that copy is inside the figure.
fn bench_pipeline(c: &mut Criterion) {
    let mut ctl = testkit::control();
    let mut cfg = testkit::config();
    cfg.bridges[0].flows = vec![
        "priority=200,tcp,tp_dst=22,actions=drop".into(),
        "priority=100,ip,actions=NORMAL".into(),
        "priority=1,actions=drop".into(),
    ];
    cfg.acls.push(AclConfig {
        port: "vm1".into(),
        dir: Direction::In,
        rules: (0..100)
            .map(|i| format!("priority=10,tcp,tp_dst={},action=drop", 1000 + i))
            .collect(),
    });
    cfg.qos.push(QosConfig {
        port: "vm1".into(),
        dir: Direction::In,
        rate_bps: 100_000_000_000,
        burst_bytes: 1 << 30,
        peak_bps: None,
    });
    cfg.fdb.push(StaticFdbConfig {
        bridge: "br0".into(),
        vlan: 0,
        mac: MacAddr(B),
        port: "vx1".into(),
        remote: Some(ip("192.0.2.2")),
    });
    ctl.apply(cfg).unwrap();
    let snap = ctl.snapshot();
    let vm1: PortNo = snap.port_by_name("vm1").unwrap();
    eprintln!(
        "gens: flows {} policy {} gen {}",
        snap.bridges[0].flows.generation(),
        snap.policy_generation,
        snap.generation
    );
    let frames: Vec<Vec<u8>> = (0..64)
        .map(|i| udp_frame(A, B, 1000 + i, 64 - 42))
        .collect();
    let mut ws = WorkerState::new(0, None);
    let mut chunks = vec![vec![0u8; CHUNK]; 64];

    // The worker's clock: one microsecond per batch keeps the policer
    // refilling (12.5 kB per batch at 100 Gbit/s) as a real clock would.
    let mut now = 0u64;
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(64));
    g.bench_function("batch64_vxlan_encap", |b| {
        b.iter_batched_ref(
            || (),
            |_| {
                let rx: Vec<Frame<'_>> = chunks
                    .iter_mut()
                    .zip(&frames)
                    .map(|(c, f)| {
                        c[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                        Frame::new(&mut c[..], HEADROOM, f.len()).unwrap()
                    })
                    .collect();
                let mut io = BatchIo {
                    spare: Vec::new(),
                    tx: Vec::with_capacity(64),
                    free: Vec::with_capacity(64),
                };
                now += 1_000;
                process_batch(&snap, &mut ws, vm1, now, rx, &mut io);
                assert_eq!(
                    io.tx.len(),
                    64,
                    "{:?}",
                    ws.drops.nonzero().collect::<Vec<_>>()
                );
                black_box(io.tx.len())
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    assert_eq!(
        ws.drops.total(),
        0,
        "{:?}",
        ws.drops.nonzero().collect::<Vec<_>>()
    );
    eprintln!(
        "pipeline: EMC hits {} misses {}",
        ws.emc_hits(),
        ws.emc_misses()
    );
}

criterion_group!(benches, bench_tunnel, bench_pipeline);
criterion_main!(benches);
