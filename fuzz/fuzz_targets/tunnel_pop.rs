//! Parse + pop: any bytes received on the uplink, against the testkit's
//! tunnel table; whatever pop accepts must then parse as an inner frame or
//! be rejected with a typed error.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use xvs_dataplane::frame::Frame;
use xvs_dataplane::snapshot::Snapshot;
use xvs_dataplane::testkit;
use xvs_dataplane::tunnel::pop;
use xvs_dataplane::types::FlowKey;
use xvs_dataplane::wire::flow::extract;

fn snap() -> &'static Arc<Snapshot> {
    static S: OnceLock<Arc<Snapshot>> = OnceLock::new();
    S.get_or_init(|| testkit::testbed().snapshot())
}

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    let len = buf.len();
    let Some(mut f) = Frame::new(&mut buf, 0, len) else { return };
    if let Ok(d) = pop(&snap().tunnels, &mut f) {
        assert!(f.len() + d.outer_len <= len);
        let mut key = FlowKey::default();
        let _ = extract(f.data(), &mut key);
    }
});
