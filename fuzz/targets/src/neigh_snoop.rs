//! Underlay neighbor snooping: the ARP replies and IPv6 neighbor
//! advertisements the XDP program hands up from the uplink, which anyone
//! on the underlay can send. A sequence of such frames is snooped into
//! the testkit control plane (each learn may rebuild the tunnel templates
//! and publish a snapshot). No panic, and a snooped frame never changes a
//! static neighbor (the testkit's resolved VTEPs are static).
//!
//! The cache takes only solicited replies, so a few addresses on the
//! uplink's subnets are being resolved when the frames arrive
//! ([`SOLICITED`]); replies for any other address exercise the refusals.
//!
//! Input: records of one length byte and that many frame bytes (the last
//! record takes what is left), so one input can teach, move and refresh
//! an entry. The control plane is built afresh per input: learning changes
//! it, and a crash must replay from its input alone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xvs_dataplane::tables::neigh::NeighState;
use xvs_dataplane::testkit;

/// Addresses with a resolution in progress.
pub const SOLICITED: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)),
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9)),
];

pub fn neigh_snoop(data: &[u8]) {
    let mut c = testkit::testbed();
    for ip in SOLICITED {
        c.underlay.neigh.request(ip, 0);
    }
    let statics: Vec<(IpAddr, _)> = c
        .underlay
        .neigh
        .iter()
        .filter(|e| matches!(e.state, NeighState::Static))
        .map(|e| (e.ip, e.mac))
        .collect();
    let mut rest = data;
    let mut now = 0;
    while let Some((&len, tail)) = rest.split_first() {
        let (frame, next) = tail.split_at(usize::from(len).min(tail.len()));
        rest = next;
        now += 1_000;
        let _ = c.snoop(frame, now);
    }
    for (ip, mac) in statics {
        assert_eq!(
            c.underlay.neigh.lookup(ip),
            mac,
            "static neighbor {ip} changed"
        );
    }
}
