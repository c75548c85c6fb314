//! Classification benchmarks: flow table lookups (10k rules over ~15 masks),
//! exact-match cache hits, a 100-rule firewall, and the subtable hash
//! against a `std::HashMap` with the same hash function.
//!
//! Each iteration looks up a stream of 1024 distinct keys, so the reported
//! time divided by 1024 is the cost of one lookup (criterion's throughput
//! line shows lookups per second directly).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xvs_dataplane::policy::firewall::{AclAction, AclMatch, AclRule, Firewall};
use xvs_dataplane::tables::classifier::{Classifier, Rule};
use xvs_dataplane::tables::flow::{
    Action, ExactMatchCache, FlowMatch, FlowRule, FlowTable, IpPrefix, Masked, EMC_HASH_SEED,
    ETH_TYPE_IPV4,
};
use xvs_types::{ip_to_u128, FlowKey, MacAddr};

const KEYS: usize = 1024;

/// Deterministic xorshift so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn v4(x: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(x))
}

fn mac(x: u64) -> MacAddr {
    MacAddr::from_u64(0x0200_0000_0000 | (x & 0xffff_ffff))
}

fn rule(priority: u32, matches: FlowMatch, out: u16) -> FlowRule {
    FlowRule {
        priority,
        matches,
        actions: vec![Action::Output(out)],
        cookie: 0,
    }
}

/// 10k rules over 14 masks, plus 1024 keys that hit a mix of them.
fn flow_rules() -> (Vec<FlowRule>, Vec<FlowKey>) {
    let mut rng = Rng(0x1234_5678);
    let mut rules = Vec::new();
    let mut keys = Vec::new();
    let p = |a, b| IpPrefix::new(a, b).expect("valid prefix");
    // 5000 exact TCP 5-tuples (1 mask) and 1000 exact UDP ones (same mask).
    for i in 0..6000u32 {
        let (src, dst) = (0x0a00_0000 | i, 0x0b00_0000 | (rng.next() as u32 & 0xffff));
        let (sp, dp) = (1024 + (i as u16 % 5000), [80, 443, 8080][i as usize % 3]);
        let proto = if i < 5000 { 6 } else { 17 };
        let m = FlowMatch::new()
            .nw_src(IpPrefix::host(v4(src)))
            .nw_dst(IpPrefix::host(v4(dst)))
            .nw_proto(proto)
            .tp_src(sp)
            .tp_dst(dp);
        rules.push(rule(1000, m, 1));
        if i % 12 == 0 {
            let mut k = FlowKey::default();
            k.set_in_port(1);
            k.set_eth_type(ETH_TYPE_IPV4);
            k.set_nw_src(ip_to_u128(v4(src)));
            k.set_nw_dst(ip_to_u128(v4(dst)));
            k.set_ip_proto(proto);
            k.set_tp_src(sp);
            k.set_tp_dst(dp);
            keys.push(k);
        }
    }
    // 2000 /24 destination prefixes, 500 src /16 + dst /24 pairs.
    for i in 0..2000u32 {
        rules.push(rule(
            500,
            FlowMatch::new().nw_dst(p(v4(0x1400_0000 | (i << 8)), 24)),
            2,
        ));
    }
    for i in 0..500u32 {
        let m = FlowMatch::new()
            .nw_src(p(v4(0x1e00_0000 | (i << 16)), 16))
            .nw_dst(p(v4(0x1400_0000 | (i << 8)), 24));
        rules.push(rule(600, m, 3));
    }
    // 1000 per-MAC rules (in_port + dl_dst), 500 per-VNI MACs, 300 dl_src.
    for i in 0..1000u64 {
        rules.push(rule(
            300,
            FlowMatch::new().in_port((i % 8) as u16).dl_dst(mac(i)),
            4,
        ));
    }
    for i in 0..500u64 {
        let m = FlowMatch::new()
            .tun_id(100 + (i % 10) as u32)
            .dl_dst(mac(10_000 + i));
        rules.push(rule(310, m, 5));
    }
    for i in 0..300u64 {
        rules.push(rule(200, FlowMatch::new().dl_src(mac(20_000 + i)), 6));
    }
    // Per-VLAN, per-service-port and masked-port rules.
    for i in 0..400u16 {
        rules.push(rule(150, FlowMatch::new().in_port(i % 16).dl_vlan(i), 7));
    }
    for i in 0..250u16 {
        rules.push(rule(
            140,
            FlowMatch::new()
                .dl_type(ETH_TYPE_IPV4)
                .nw_proto(17)
                .tp_dst(5000 + i),
            8,
        ));
    }
    for i in 0..30u16 {
        rules.push(rule(
            130,
            FlowMatch::new().nw_proto(6).tp_dst_masked(i << 4, 0xfff0),
            9,
        ));
    }
    // A few low-priority wildcards: per in_port, ip, arp, catch-all.
    for i in 0..16u16 {
        rules.push(rule(10, FlowMatch::new().in_port(i), 10));
    }
    rules.push(rule(5, FlowMatch::new().dl_type(ETH_TYPE_IPV4), 11));
    rules.push(rule(5, FlowMatch::new().dl_type(0x0806), 12));
    rules.push(rule(0, FlowMatch::new(), 13));
    assert!(rules.len() >= 10_000);

    // Fill the key stream with keys for the other rule kinds.
    while keys.len() < KEYS {
        let r = rng.next();
        let mut k = FlowKey::default();
        k.set_in_port((r % 20) as u16);
        match keys.len() % 4 {
            0 => {
                k.set_eth_type(ETH_TYPE_IPV4);
                k.set_nw_dst(ip_to_u128(v4(0x1400_0000 | (r as u32 & 0x7ffff))));
                k.set_nw_src(ip_to_u128(v4(r as u32 >> 8)));
                k.set_ip_proto(6);
                k.set_tp_dst((r >> 40) as u16);
            }
            1 => k.set_dl_dst(mac(r % 1100)),
            2 => {
                k.set_tun_id(100 + (r % 10) as u32);
                k.set_dl_dst(mac(10_000 + r % 600));
            }
            _ => {
                k.set_vlan_tci(0x8000 | (r % 500) as u16);
                k.set_dl_src(mac(r));
            }
        }
        keys.push(k);
    }
    (rules, keys)
}

fn firewall() -> Firewall {
    let mut rules = Vec::new();
    let pfx = |x: u32, l| IpPrefix::new(v4(x), l).expect("valid prefix");
    let port = |p| {
        Some(Masked {
            value: p,
            mask: 0xffff,
        })
    };
    // 5 priorities x 20 rules, one shape each.
    for i in 0..20u32 {
        rules.push(AclRule {
            priority: 500,
            matches: AclMatch {
                nw_src: Some(pfx(0x0a00_0000 | (i << 8), 24)),
                ip_proto: Some(6),
                tp_dst: port(22),
                ..Default::default()
            },
            action: AclAction::Allow,
        });
        rules.push(AclRule {
            priority: 400,
            matches: AclMatch {
                nw_dst: Some(pfx(0x0b00_0000 | (i << 16), 16)),
                ..Default::default()
            },
            action: AclAction::Drop,
        });
        rules.push(AclRule {
            priority: 300,
            matches: AclMatch {
                ip_proto: Some(17),
                tp_dst: port(5000 + i as u16),
                ..Default::default()
            },
            action: AclAction::Drop,
        });
        rules.push(AclRule {
            priority: 200,
            matches: AclMatch {
                dl_src: Some(Masked {
                    value: mac(u64::from(i)),
                    mask: MacAddr::BROADCAST,
                }),
                ..Default::default()
            },
            action: AclAction::Drop,
        });
        rules.push(AclRule {
            priority: 100,
            matches: AclMatch {
                nw_src: Some(pfx(0x0c00_0000 | (i << 24), 8)),
                nw_dst: Some(pfx(0x0d00_0000 | (i << 8), 24)),
                ..Default::default()
            },
            action: AclAction::Drop,
        });
    }
    Firewall::build(rules).expect("valid ACL")
}

#[derive(Clone, Default)]
struct KeyHasher(u64);
impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only write_u64 is used by FlowKeyHashed")
    }
    fn write_u64(&mut self, h: u64) {
        self.0 = h;
    }
}
#[derive(Clone, Default)]
struct KeyBuild;
impl BuildHasher for KeyBuild {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher::default()
    }
}
/// A FlowKey whose `Hash` is one `hash_with` call: the best case for a
/// std `HashMap`.
#[derive(PartialEq, Eq)]
struct FlowKeyHashed(FlowKey);
impl std::hash::Hash for FlowKeyHashed {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.0.hash_with(7));
    }
}

fn benches(c: &mut Criterion) {
    let (rules, keys) = flow_rules();
    let nrules = rules.len();
    let table = FlowTable::build(rules, 1).expect("valid rules");
    let hits = keys.iter().filter(|k| table.lookup(k).is_some()).count();
    eprintln!("flow table: {nrules} rules, {KEYS} keys, {hits} hit");

    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(KEYS as u64));
    g.bench_function("flow_10k_rules_1024_keys", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(table.lookup(black_box(k)));
            }
        })
    });

    let hashes: Vec<u64> = keys.iter().map(|k| k.hash_with(EMC_HASH_SEED)).collect();
    let mut emc = ExactMatchCache::default();
    for (k, h) in keys.iter().zip(&hashes) {
        emc.lookup_or_classify(&table, k, *h);
    }
    g.bench_function("emc_hit_1024_keys", |b| {
        b.iter(|| {
            for (k, h) in keys.iter().zip(&hashes) {
                black_box(emc.lookup_or_classify(&table, black_box(k), *h));
            }
        })
    });
    g.bench_function("emc_hit_with_hash_1024_keys", |b| {
        b.iter(|| {
            for k in &keys {
                let k = black_box(k);
                black_box(emc.lookup_or_classify(&table, k, k.hash_with(EMC_HASH_SEED)));
            }
        })
    });
    eprintln!("emc: {} hits, {} misses", emc.hits(), emc.misses());

    let fw = firewall();
    g.bench_function("firewall_100_rules_1024_keys", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(fw.check(black_box(k)));
            }
        })
    });

    // One exact-match subtable vs std HashMap keyed the same way.
    let exact: Vec<FlowKey> = (0..10_000u64)
        .map(|i| {
            let mut k = FlowKey::default();
            k.set_nw_src(u128::from(i) * 7919);
            k.set_tp_dst(i as u16);
            k
        })
        .collect();
    let full = FlowKey([u64::MAX; 8]);
    let cls = Classifier::build(
        exact
            .iter()
            .enumerate()
            .map(|(i, k)| Rule::new(1, *k, full, i as u32))
            .collect(),
    );
    let map: HashMap<FlowKeyHashed, u32, KeyBuild> = exact
        .iter()
        .enumerate()
        .map(|(i, k)| (FlowKeyHashed(*k), i as u32))
        .collect();
    let probe: Vec<FlowKey> = exact.iter().step_by(9).take(KEYS).copied().collect();
    g.throughput(Throughput::Elements(probe.len() as u64));
    g.bench_function("subtable_open_addressing_10k_exact", |b| {
        b.iter(|| {
            for k in &probe {
                black_box(cls.lookup(black_box(k)));
            }
        })
    });
    g.bench_function("subtable_std_hashmap_10k_exact", |b| {
        b.iter(|| {
            for k in &probe {
                let k = black_box(k).masked(&full);
                black_box(map.get(&FlowKeyHashed(k)));
            }
        })
    });
    g.finish();
}

criterion_group!(classify, benches);
criterion_main!(classify);
