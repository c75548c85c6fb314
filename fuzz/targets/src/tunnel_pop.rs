//! Parse + pop: any bytes received on the uplink, against the testkit's
//! tunnel table; whatever pop accepts must then parse as an inner frame or
//! be rejected with a typed error. A rejected frame must be left unchanged
//! (pop's contract), an accepted one must name a tunnel port of the table.
//!
//! Input: one mode byte, then the frame, or what `common::uplink_frame`
//! builds an encapsulated frame from (its low bits: see `common`).

use xvs_dataplane::frame::Frame;
use xvs_dataplane::stats::DropReason;
use xvs_dataplane::tunnel::pop;
use xvs_dataplane::wire::flow::extract;
use xvs_dataplane::wire::WireError;
use xvs_types::FlowKey;

use crate::common;

pub fn tunnel_pop(input: &[u8]) {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    let tunnels = &common::testbed().tunnels;
    let mut buf = common::uplink_frame(mode, tunnels, data);
    let sent = buf.clone();
    let len = buf.len();
    let Some(mut f) = Frame::new(&mut buf, 0, len) else {
        return;
    };
    match pop(tunnels, &mut f) {
        Ok(d) => {
            assert_eq!(f.head(), d.outer_len, "pop moved the frame start");
            assert!(f.len() + d.outer_len <= len);
            let tp = tunnels.get(d.tunnel).expect("pop named a tunnel index");
            assert_eq!(tp.port, d.port);
            assert_eq!(tp.vni, d.vni);
            assert!(usize::from(d.remote) < tp.remotes.len());
            let mut key = FlowKey::default();
            let _ = extract(f.data(), &mut key);
        }
        Err(r) => {
            if mode & (common::FIX_CSUM | common::ENCAP) != 0 {
                assert_ne!(
                    r,
                    DropReason::Malformed(WireError::BadIpChecksum),
                    "a valid IPv4 header checksum was rejected"
                );
            }
            assert_eq!(f.head(), 0, "a rejected frame was moved");
            assert_eq!(f.data(), &sent[..], "a rejected frame was changed");
        }
    }
}
