//! Lookups in large tables: the FDB at 1M MACs and the flow classifier at
//! 100k rules (setup takes seconds, hence a bench of its own).
//!
//! Run: `cargo bench -p xvs-bench --bench tables`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use xvs_dataplane::tables::fdb::{Fdb, FdbConfig, FdbDest};
use xvs_types::{MacAddr, PortNo};

fn bench_fdb(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let mut fdb = Fdb::new(FdbConfig {
        max_entries: N as usize + 1,
        aging_ns: u64::MAX / 4,
        ..FdbConfig::default()
    })
    .unwrap();
    let mac =
        |i: u64| MacAddr::from_u64(0x0200_0000_0000 | (i.wrapping_mul(0x9e37_79b9) & 0xffff_ffff));
    for i in 0..N {
        let _ = fdb.learn(0, mac(i), FdbDest::local((i % 64) as PortNo + 1), 0);
    }
    let view = fdb.view();
    let probes: Vec<MacAddr> = (0..4096u64)
        .map(|i| mac(i.wrapping_mul(7919) % N))
        .collect();
    let mut g = c.benchmark_group("fdb");
    g.throughput(Throughput::Elements(probes.len() as u64));
    g.bench_function("lookup_1M_random", |b| {
        b.iter(|| {
            let mut hits = 0u32;
            for m in &probes {
                hits += view.lookup(0, *m).is_some() as u32;
            }
            black_box(hits)
        })
    });
    g.finish();
    println!(
        "fdb: {} entries, {} bytes per entry",
        fdb.len(),
        fdb.memory_bytes() / fdb.len().max(1)
    );
}

/// A flow table of 100k rules: 100k exact 5-tuples plus a handful of
/// wildcard rules, looked up with the classifier alone (no EMC) on 4096
/// random keys that hit.
fn bench_flows_100k(c: &mut Criterion) {
    use xvs_dataplane::tables::flow::{FlowRule, FlowTable};
    use xvs_types::{ipv4_to_u128, FlowKey};
    let n = 100_000u32;
    let addr = |i: u32| std::net::Ipv4Addr::from(0x0a00_0000 | i);
    let mut rules: Vec<FlowRule> = (0..n)
        .map(|i| {
            format!(
                "priority=100,tcp,nw_src={},nw_dst=10.255.0.1,tp_src={},tp_dst=80,actions=output:2",
                addr(i),
                1024 + (i % 50_000)
            )
            .parse()
            .unwrap()
        })
        .collect();
    for r in [
        "priority=50,ip,nw_dst=10.0.0.0/8,actions=output:3",
        "priority=10,udp,actions=normal",
        "priority=1,actions=drop",
    ] {
        rules.push(r.parse().unwrap());
    }
    let t0 = std::time::Instant::now();
    let table = FlowTable::build(rules, 1).unwrap();
    println!("flows: built {} rules in {:?}", table.len(), t0.elapsed());
    let keys: Vec<FlowKey> = (0..4096u32)
        .map(|j| {
            let i = j.wrapping_mul(2_654_435_761) % n;
            let mut k = FlowKey::default();
            k.set_eth_type(0x0800);
            k.set_ip_proto(6);
            k.set_nw_src(ipv4_to_u128(addr(i)));
            k.set_nw_dst(ipv4_to_u128(std::net::Ipv4Addr::new(10, 255, 0, 1)));
            k.set_tp_src((1024 + (i % 50_000)) as u16);
            k.set_tp_dst(80);
            k
        })
        .collect();
    let mut g = c.benchmark_group("flows");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("classify_100k_rules", |b| {
        b.iter(|| {
            let mut hits = 0u32;
            for k in &keys {
                hits += table.lookup(k).is_some() as u32;
            }
            assert_eq!(hits, keys.len() as u32);
            black_box(hits)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_fdb, bench_flows_100k);
criterion_main!(benches);
