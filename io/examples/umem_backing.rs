//! What a UMEM's backing costs a worker that reads frames all over it:
//! the same UMEM (4,096 chunks, 16 MiB) in private memory (the default),
//! in a file on a huge-page tmpfs and in a memfd (both handable to
//! another process, `XskSet::new_shareable_on`), and for each the
//! nanoseconds per frame of a loop that reads and writes a 64-byte
//! header in a random chunk, as a batch's parse and push do: the
//! difference is the TLB (a 16 MiB UMEM on 4 KiB pages is 4,096 pages,
//! more than the TLB holds).
//!
//! ```sh
//! cargo run --release -p xvs-io --example umem_backing
//! ```
//!
//! Root (the UMEM's anchor namespace, the tmpfs mount). Prints, per
//! backing, the bytes on huge pages and the best of `ROUNDS` rounds.

use std::time::Instant;

use xvs_io::xsk::{Backing, XskConfig, XskSet, CHUNK};

const TOUCHES: usize = 4 << 20;
/// Makes the set under test.
type Make = fn() -> XskSet;
const ROUNDS: usize = 5;

fn cfg() -> XskConfig {
    XskConfig {
        frames: 4096,
        rx_frames: 2048,
        ring: 2048,
        frame_headroom: 0,
        jumbo_slots: 16,
    }
}

/// Best ns per touched frame over `ROUNDS` rounds.
fn touch(set: &mut XskSet) -> f64 {
    let mut addrs = Vec::new();
    while let Some(a) = set.alloc() {
        addrs.push(a);
    }
    // A fixed pseudo-random walk (xorshift): every backing sees the same.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let order: Vec<usize> = (0..TOUCHES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % addrs.len() as u64) as usize
        })
        .collect();
    let mut best = f64::MAX;
    let mut sum = 0u64;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for &i in &order {
            let mut f = set.frame_mut(addrs[i] + 256, 64).expect("owned");
            sum = sum.wrapping_add(u64::from(f[12]) ^ u64::from(f[23]));
            f[0] = f[0].wrapping_add(1);
        }
        best = best.min(t.elapsed().as_nanos() as f64 / TOUCHES as f64);
    }
    std::hint::black_box(sum);
    for a in addrs {
        set.release(a).expect("ours");
    }
    best
}

fn main() {
    let made: [(&str, Make); 3] = [
        ("private (XskSet::new_anchored)", || {
            XskSet::new_anchored(cfg()).expect("private UMEM")
        }),
        ("huge tmpfs (new_shareable_on)", || {
            XskSet::new_shareable_on(cfg(), Backing::HugeTmpfs).expect("tmpfs UMEM")
        }),
        ("memfd (new_shareable_on)", || {
            XskSet::new_shareable_on(cfg(), Backing::Memfd).expect("memfd UMEM")
        }),
    ];
    // Twice through, interleaved, so a noisy neighbour shows as a
    // disagreement between the passes rather than as a difference.
    for pass in 1..=2 {
        for (name, make) in &made {
            let mut set = make();
            let huge = set.huge_page_bytes().unwrap_or(0);
            let ns = touch(&mut set);
            println!(
                "pass {pass}: {name:32} {:>5} of {} MiB on huge pages, {ns:.2} ns per frame touched",
                huge >> 20,
                (set.chunks() as u64 * CHUNK) >> 20,
            );
        }
    }
}
