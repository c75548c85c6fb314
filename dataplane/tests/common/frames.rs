//! Test frames built with etherparse (an independent implementation), over
//! the testkit topology: shared by the pipeline's unit tests and the
//! integration tests, which include this file by path (a library's unit
//! tests cannot use a dev-dependency from an integration test, nor the
//! other way round).
//!
//! The including module must have `PEER2_MAC` and `UPLINK_MAC` (from
//! `testkit`) in scope.

// Each test binary that includes this file uses a different subset.
#![allow(dead_code)]

use etherparse::PacketBuilder;

use super::{PEER2_MAC, UPLINK_MAC};

pub const A: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
pub const B: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 2];
pub const BCAST: [u8; 6] = [0xff; 6];

pub fn udp_frame(src: [u8; 6], dst: [u8; 6], n: usize) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1000, 2000);
    let payload = vec![0xab; n];
    let mut v = Vec::with_capacity(b.size(n));
    b.write(&mut v, &payload).unwrap();
    v
}

pub fn tagged_frame(src: [u8; 6], dst: [u8; 6], vid: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .single_vlan(vid.try_into().unwrap())
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1000, 2000);
    let mut v = Vec::new();
    b.write(&mut v, &[1, 2, 3, 4]).unwrap();
    v
}

/// An outer IPv4/UDP packet from `src` to our VTEP carrying `payload`.
pub fn outer(src: [u8; 4], dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(PEER2_MAC.0, UPLINK_MAC.0)
        .ipv4(src, [192, 0, 2, 1], 64)
        .udp(50000, dst_port);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

pub fn vxlan(src: [u8; 4], vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut p = vec![0x08, 0, 0, 0];
    p.extend_from_slice(&(vni << 8).to_be_bytes());
    p.extend_from_slice(inner);
    outer(src, 4789, &p)
}

/// Geneve header with `opts` (already TLV-encoded) and flags byte `flags`.
pub fn geneve(vni: u32, flags: u8, opts: &[u8], inner: &[u8]) -> Vec<u8> {
    let mut p = vec![(opts.len() / 4) as u8, flags, 0x65, 0x58];
    p.extend_from_slice(&(vni << 8).to_be_bytes());
    p.extend_from_slice(opts);
    p.extend_from_slice(inner);
    outer([192, 0, 2, 2], 6081, &p)
}

/// The fixture's known option (class 0x0102, type 0x83, 8 bytes).
pub fn known_opt() -> Vec<u8> {
    vec![0x01, 0x02, 0x83, 2, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]
}

/// An Ethernet/IPv4 ARP packet, optionally behind an 802.1Q tag.
pub fn arp(
    src: [u8; 6],
    dst: [u8; 6],
    tag: Option<u16>,
    op: u16,
    spa: [u8; 4],
    tpa: [u8; 4],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(t) = tag {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&t.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&src);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    f
}
