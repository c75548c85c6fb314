//! What the AF_XDP tests share: the peers' MACs, the VXLAN header we
//! push, a bounded wait, a UDP parser for what the sockets receive, and
//! the root requirement.

use std::time::Duration;

use etherparse::{Ipv4Header, NetSlice, SlicedPacket, TransportSlice};

/// VXLAN over IPv4: Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8.
pub const VXLAN4_HEADER: usize = 50;
pub const VXLAN_PORT: u16 = 4789;
pub const WAIT: Duration = Duration::from_secs(5);

/// Returns from the test unless it may run as root (`xvs_tests::require`).
macro_rules! require_root {
    () => {
        if !xvs_tests::require_root() {
            return;
        }
    };
}
pub(crate) use require_root;

/// Parsed UDP view of an Ethernet frame: (ipv4 header, udp src, udp dst,
/// payload, whether the UDP checksum verifies).
pub fn udp4(frame: &[u8]) -> Option<(Ipv4Header, u16, u16, Vec<u8>, bool)> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(udp))) = (p.net, p.transport) else {
        return None;
    };
    let ip_h = ip.header().to_header();
    let payload = udp.payload().to_vec();
    let csum_ok = udp
        .to_header()
        .calc_checksum_ipv4(&ip_h, &payload)
        .map(|c| c == udp.checksum())
        .unwrap_or(false);
    Some((
        ip_h,
        udp.source_port(),
        udp.destination_port(),
        payload,
        csum_ok,
    ))
}

pub const MAC_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x0a, 0x01];
pub const MAC_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x0b, 0x01];
pub const MAC_A_S: &str = "02:00:00:00:0a:01";
pub const MAC_B_S: &str = "02:00:00:00:0b:01";
