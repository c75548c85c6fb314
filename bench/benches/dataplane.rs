//! Per-packet cost of the dataplane core: tunnel push and pop, and the
//! whole pipeline on batches of 64 frames. (Large tables: benches/tables.rs.)
//!
//! Run: `cargo bench -p xvs-bench --bench dataplane`. Frames are built with
//! etherparse (independent of our emitters).

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use xvs_bench::{udp_frame, A, B};
use xvs_dataplane::config::{GeneveOptConfig, TunnelConfig, TunnelKind};
use xvs_dataplane::frame::Frame;
use xvs_dataplane::tunnel::{pop, PushMeta, Template, TunnelPort, TunnelTable, MAX_HEADER_LEN};
use xvs_dataplane::types::MacAddr;

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
/// with 100 rules, ingress policer, FDB lookup, VXLAN push; 64 frames per
/// batch over 64 or 1024 distinct flows, 64-byte frames.
fn bench_pipeline(c: &mut Criterion) {
    let ctl = xvs_bench::encap_control();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(64));
    for flows in [64usize, 1024] {
        let mut l = xvs_bench::EncapLoop::new(&ctl, flows, 64 - 42);
        let mut round = 0;
        g.bench_function(format!("batch64_vxlan_encap_{flows}flows"), |b| {
            b.iter(|| {
                round += 1;
                let sent = l.batch(round);
                assert_eq!(sent, 64, "{:?}", l.ws.drops.nonzero().collect::<Vec<_>>());
                black_box(sent)
            })
        });
        assert_eq!(l.ws.drops.total(), 0);
        // What the same loop (same buffers: the copy's cost depends on
        // where they landed) costs without the pipeline: subtract it to
        // get the pipeline's own cost.
        g.bench_function(format!("batch64_harness_only_{flows}flows"), |b| {
            b.iter(|| {
                round += 1;
                black_box(l.harness_only(round))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_tunnel, bench_pipeline);
criterion_main!(benches);
