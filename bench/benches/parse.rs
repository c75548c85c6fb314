//! Per-packet parse cost: `wire::flow::extract` against etherparse's
//! `SlicedPacket::from_ethernet` plus reading the same fields, on a 64-byte
//! UDP/IPv4 frame, a TCP/IPv6 frame and a VXLAN frame (outer headers only).
//! The figures and the decision they support are in `wire/flow.rs`.
//!
//! Also the Internet checksum over the bytes of a 1,400-byte and a
//! 64-byte L4 payload: `wire::checksum::ones_sum` (eight little-endian
//! lanes) against the one-lane big-endian loop it replaced, kept here as
//! `one_lane` so the comparison can be rerun; the figures are in
//! `wire/checksum.rs`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::{LinkExtSlice, LinkSlice, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use xvs_dataplane::wire::checksum::{fold as ones_fold, ones_sum};
use xvs_dataplane::wire::flow::extract;
use xvs_types::FlowKey;

const SRC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const DST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn udp4_64() -> Vec<u8> {
    // 14 + 20 + 8 + 22 = 64 bytes (minimum Ethernet frame without FCS + 4).
    let b = PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(12345, 53);
    let mut v = Vec::new();
    b.write(&mut v, &[0u8; 22]).expect("build udp4");
    v
}

fn tcp6() -> Vec<u8> {
    let b = PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv6(
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        )
        .tcp(40000, 443, 1, 65535)
        .ack(1);
    let mut v = Vec::new();
    b.write(&mut v, &[0u8; 32]).expect("build tcp6");
    v
}

fn vxlan4() -> Vec<u8> {
    // VXLAN header (I flag, VNI 42) + an inner 64-byte UDP/IPv4 frame.
    let mut payload = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    payload.extend_from_slice(&udp4_64());
    let b = PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
        .udp(49152, 4789);
    let mut v = Vec::new();
    b.write(&mut v, &payload).expect("build vxlan");
    v
}

/// dl_src, dl_dst, eth_type, nw_src, nw_dst, ip_proto, tp_src, tp_dst.
type Fields = (u64, u64, u16, u128, u128, u8, u16, u16);

/// etherparse, reading the fields `extract` puts in a flow key.
#[inline(never)]
fn etherparse_fields(frame: &[u8]) -> Option<Fields> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst, mut et) = match &p.link {
        Some(LinkSlice::Ethernet2(e)) => (e.source(), e.destination(), e.ether_type().0),
        _ => return None,
    };
    let mac = |m: [u8; 6]| u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]);
    if let Some(LinkExtSlice::Vlan(v)) = p.link_exts.first() {
        et = v.ether_type().0;
    }
    let (nw_src, nw_dst, proto) = match &p.net {
        Some(NetSlice::Ipv4(s)) => {
            let h = s.header();
            (
                u128::from(h.source_addr().to_ipv6_mapped()),
                u128::from(h.destination_addr().to_ipv6_mapped()),
                h.protocol().0,
            )
        }
        Some(NetSlice::Ipv6(s)) => {
            let h = s.header();
            (
                u128::from(h.source_addr()),
                u128::from(h.destination_addr()),
                s.payload().ip_number.0,
            )
        }
        _ => (0, 0, 0),
    };
    let (sp, dp) = match &p.transport {
        Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
        Some(TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port()),
        _ => (0, 0),
    };
    Some((mac(src), mac(dst), et, nw_src, nw_dst, proto, sp, dp))
}

#[inline(never)]
fn xvs_fields(frame: &[u8], key: &mut FlowKey) -> bool {
    extract(frame, key).is_ok()
}

fn bench(c: &mut Criterion) {
    for (name, frame) in [
        ("udp4_64", udp4_64()),
        ("tcp6", tcp6()),
        ("vxlan4_outer", vxlan4()),
    ] {
        let mut key = FlowKey::default();
        assert!(xvs_fields(&frame, &mut key), "{name}");
        let ep = etherparse_fields(&frame).expect(name);
        assert_eq!((ep.6, ep.7), (key.tp_src(), key.tp_dst()), "{name}");
        assert_eq!((ep.3, ep.4), (key.nw_src(), key.nw_dst()), "{name}");

        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        g.bench_function("xvs_extract", |b| {
            b.iter(|| {
                let ok = xvs_fields(black_box(&frame), &mut key);
                black_box((ok, &key));
            })
        });
        g.bench_function("etherparse", |b| {
            b.iter(|| black_box(etherparse_fields(black_box(&frame))))
        });
        g.finish();
    }
}

/// The loop `ones_sum` had before it summed in lanes: 8-byte big-endian
/// words, one end-around-carry accumulator.
#[inline(never)]
fn one_lane(data: &[u8]) -> u64 {
    let mut acc = 0u64;
    let add = |a: u64, b: u64| {
        let (s, c) = a.overflowing_add(b);
        s + u64::from(c)
    };
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        acc = add(acc, u64::from_be_bytes(c.try_into().unwrap_or([0; 8])));
    }
    for (i, b) in chunks.remainder().iter().enumerate() {
        acc = add(acc, u64::from(*b) << if i % 2 == 0 { 8 } else { 0 });
    }
    acc
}

fn checksum(c: &mut Criterion) {
    for len in [64usize, 1400] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(
            ones_fold(ones_sum(0, &data)),
            ones_fold(one_lane(&data)),
            "{len}"
        );
        let mut g = c.benchmark_group(format!("ones_sum_{len}"));
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function("lanes", |b| {
            b.iter(|| black_box(ones_sum(0, black_box(&data))))
        });
        g.bench_function("one_lane", |b| {
            b.iter(|| black_box(one_lane(black_box(&data))))
        });
        g.finish();
    }
}

criterion_group!(benches, bench, checksum);
criterion_main!(benches);
