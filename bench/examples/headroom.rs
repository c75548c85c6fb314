//! Tunnel push into the headroom (move the frame start back, write the
//! outer header) against the alternative when the start cannot move
//! (memmove the frame forward by the header length, then write the
//! header), over many frames laid out as in a UMEM: one 4096-byte chunk
//! each, the frame at offset 256 (`XDP_PACKET_HEADROOM`).
//!
//! Run: `nice -n 19 cargo run --release -p xvs-bench --example headroom`
//! Prints ns per frame (best of several runs) for 64- and 1400-byte
//! frames, with a cache-resident set of chunks and one far larger than
//! the caches.

use std::hint::black_box;
use std::time::{Duration, Instant};

const CHUNK: usize = 4096;
const HEAD: usize = 256;
/// VXLAN over IPv4: Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8.
const OUTER: usize = 50;

/// Push in place: the outer header goes in front of the frame; the frame
/// itself is not touched. Returns the new descriptors' checksum so the
/// work is not optimised away.
fn push_in_place(umem: &mut [u8], descs: &mut [(usize, usize)], hdr: &[u8; OUTER]) -> usize {
    let mut acc = 0;
    for d in descs.iter_mut() {
        let (addr, len) = *d;
        let new = addr - OUTER;
        umem[new..addr].copy_from_slice(hdr);
        // Patch the outer lengths as a real push does.
        let ip_len = (len + 36) as u16;
        umem[new + 16..new + 18].copy_from_slice(&ip_len.to_be_bytes());
        umem[new + 38..new + 40].copy_from_slice(&(ip_len - 20).to_be_bytes());
        acc += new + len + OUTER;
        // The next round pushes at the same place again (same cost).
        *d = (addr, len);
    }
    acc
}

/// Push with a fixed start: move the frame forward, then write the header
/// where the frame started.
fn push_memmove(umem: &mut [u8], descs: &mut [(usize, usize)], hdr: &[u8; OUTER]) -> usize {
    let mut acc = 0;
    for d in descs.iter_mut() {
        let (addr, len) = *d;
        umem.copy_within(addr..addr + len, addr + OUTER);
        umem[addr..addr + OUTER].copy_from_slice(hdr);
        let ip_len = (len + 36) as u16;
        umem[addr + 16..addr + 18].copy_from_slice(&ip_len.to_be_bytes());
        umem[addr + 38..addr + 40].copy_from_slice(&(ip_len - 20).to_be_bytes());
        acc += addr + len + OUTER;
        *d = (addr, len);
    }
    acc
}

type Push = fn(&mut [u8], &mut [(usize, usize)], &[u8; OUTER]) -> usize;

/// Best ns per frame over `runs` runs of at least `min` each.
fn measure(f: Push, frames: usize, len: usize, runs: usize, min: Duration) -> f64 {
    let mut umem = vec![0u8; frames * CHUNK];
    for (i, b) in umem.iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut descs: Vec<(usize, usize)> = (0..frames).map(|i| (i * CHUNK + HEAD, len)).collect();
    let hdr = [0x5au8; OUTER];
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let start = Instant::now();
        let mut rounds = 0u64;
        while start.elapsed() < min {
            black_box(f(black_box(&mut umem), &mut descs, &hdr));
            rounds += 1;
        }
        let ns = start.elapsed().as_nanos() as f64 / (rounds as f64 * frames as f64);
        best = best.min(ns);
    }
    best
}

fn main() {
    let runs = 5;
    let min = Duration::from_millis(300);
    println!(
        "{:>6} {:>9} {:>12} {:>12} {:>8}",
        "frame", "chunks", "in place", "memmove", "ratio"
    );
    for frames in [64usize, 8192] {
        for len in [64usize, 1400] {
            let a = measure(push_in_place, frames, len, runs, min);
            let b = measure(push_memmove, frames, len, runs, min);
            println!(
                "{len:>5}B {frames:>5} ({:>5} KiB) {a:>8.2} ns {b:>8.2} ns {:>7.1}x",
                (frames * CHUNK) >> 10,
                b / a
            );
        }
    }
}
