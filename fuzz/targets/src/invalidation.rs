//! The invalidation datagram xvsd reads on UDP port 4799 (lookup on
//! miss): any bytes from any source address, against a control plane with
//! a lookup bridge, a tunnel and learned entries. No panic; a datagram
//! that is not a valid invalidation from a remote of the tunnel changes
//! nothing, and a valid one never drops a static entry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, OnceLock};

use xvs_dataplane::control::Control;

use crate::common;

fn control() -> Control {
    let mut c = Control::new();
    c.apply(common::small_config()).expect("apply");
    c
}

pub fn invalidation(data: &[u8]) {
    // First byte: the source address (one of the remotes, a stranger, or
    // an IPv6 address); the rest is the datagram.
    let Some((&sel, msg)) = data.split_first() else {
        return;
    };
    let from = match sel % 4 {
        0 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        1 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3)),
        2 => IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)),
        _ => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    // Built once: nothing a run does may change it (asserted below).
    static C: OnceLock<Mutex<Control>> = OnceLock::new();
    let mut c = C
        .get_or_init(|| Mutex::new(control()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let before = c.fdb("br0").map(|f| f.len());
    let dropped = c.invalidation_received(from, msg);
    // The only entry is static: it must survive whatever arrives.
    assert!(dropped.is_none());
    assert_eq!(c.fdb("br0").map(|f| f.len()), before);
}
