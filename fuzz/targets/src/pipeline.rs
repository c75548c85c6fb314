//! The whole pipeline: any frame on any port of the testkit topology. Never
//! panics, never loses a buffer (the testkit pool asserts it).
//!
//! Input: a selector byte, a spare-buffer byte, then the frame bytes.
//! - selector, low 6 bits: the receiving port, modulo the port count plus
//!   one (so an unknown port is tried too);
//! - selector, top 2 bits: how the bytes become the frame
//!   (`common::uplink_frame`: as is, with a valid outer IPv4 checksum, or
//!   encapsulated for one of the snapshot's tunnels; else uplink frames
//!   rarely get past pop);
//! - spare byte: 0..=4 spare buffers offered for replicas (too few must
//!   drop replicas, not lose buffers).

use std::cell::RefCell;

use xvs_dataplane::pipeline::WorkerState;
use xvs_dataplane::testkit::Pool;

use crate::common;

thread_local! {
    // One worker for all inputs: a fresh one allocates its 8192-entry
    // exact-match cache every time (~1k exec/s instead of tens of
    // thousands). Nothing in it changes what the pipeline does with the
    // testkit topology: it has no flow rules or firewalls (the cache is
    // never probed), no policers, and learning is off (no channel); only
    // counters and the outer IPv4 ident move, so a crash still replays from
    // its input alone.
    static WS: RefCell<WorkerState> = RefCell::new(WorkerState::new(0, None));
}

pub fn pipeline(data: &[u8]) {
    let [sel, spare, rest @ ..] = data else {
        return;
    };
    let snap = common::testbed();
    let port = u16::from(sel & 0x3f) % (snap.ports.len() as u16 + 1);
    let frame = common::uplink_frame(sel >> 6, &snap.tunnels, rest);
    let spare = usize::from(*spare % 5);
    let mut pool = Pool::new(1 + spare);
    WS.with_borrow_mut(|ws| {
        let _ = pool.run(snap, ws, port, 1, &[&frame], spare);
    });
}
