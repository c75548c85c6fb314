//! The whole pipeline: the first byte picks the receiving port of the
//! testkit topology, the rest is a frame. Never panics, never loses a
//! buffer (the testkit pool asserts it).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use xvs_dataplane::pipeline::WorkerState;
use xvs_dataplane::snapshot::Snapshot;
use xvs_dataplane::testkit::{self, Pool};

fn snap() -> &'static Arc<Snapshot> {
    static S: OnceLock<Arc<Snapshot>> = OnceLock::new();
    S.get_or_init(|| testkit::testbed().snapshot())
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else { return };
    let snap = snap();
    let port = u16::from(sel) % (snap.ports.len() as u16 + 1);
    let mut ws = WorkerState::new(0, None);
    let mut pool = Pool::new(8);
    let _ = pool.run(snap, &mut ws, port, 1, &[frame], 4);
});
