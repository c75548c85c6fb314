//! Per-packet cost of the dataplane core: tunnel push and pop, and the
//! whole pipeline on batches of 64 frames. (Large tables: benches/tables.rs.)
//!
//! Run: `cargo bench -p xvs-bench --bench dataplane`. Frames are built with
//! etherparse (independent of our emitters).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use xvs_config::TunnelKind;
use xvs_dataplane::frame::Frame;
use xvs_dataplane::tunnel::{pop, MAX_HEADER_LEN};

mod common;
use common::{tunnel_fixture, PUSH_META};

fn bench_tunnel(c: &mut Criterion) {
    let mut g = c.benchmark_group("tunnel");
    g.throughput(Throughput::Elements(1));
    for kind in [TunnelKind::Vxlan, TunnelKind::Geneve] {
        let mut t = tunnel_fixture(kind);
        let inner_len = t.inner_len;
        g.bench_function(format!("push_{kind}"), |b| {
            b.iter(|| {
                let mut f = Frame::new(&mut t.buf, MAX_HEADER_LEN, inner_len).unwrap();
                black_box(t.tpl.push(&mut f, black_box(&PUSH_META)).unwrap());
            })
        });
        let (head, len) = t.pushed;
        g.bench_function(format!("pop_{kind}"), |b| {
            b.iter(|| {
                let mut f = Frame::new(&mut t.buf, head, len).unwrap();
                black_box(pop(black_box(&t.table), &mut f).unwrap());
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
