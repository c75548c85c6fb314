//! Helpers shared by the fuzz targets (not a target of its own): the
//! testkit snapshot, a small config for control inputs, and the uplink
//! frame builder.
//!
//! A random frame almost never gets through pop's checks (IPv4 header
//! checksum, one of our UDP ports, one of our local addresses, a known VNI
//! and remote), so the tunnel and overlay paths would stay unexplored. Two
//! mode bits let the fuzzer choose how its bytes become an uplink frame:
//! - [`FIX_CSUM`]: the bytes are the frame, with the IPv4 header checksum
//!   made valid afterwards;
//! - [`ENCAP`]: the bytes pick one of the snapshot's tunnels and remotes
//!   and fill an outer header for it (Geneve option area, ECN bits, UDP
//!   source port, one corrupted byte); the rest is the inner frame.
//!
//! With neither bit the bytes are the frame, as received.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use xvs_config::{Config, TunnelKind};
use xvs_dataplane::snapshot::Snapshot;
use xvs_dataplane::testkit;
use xvs_dataplane::tunnel::TunnelTable;

/// Make the outer IPv4 header checksum valid.
pub const FIX_CSUM: u8 = 1;
/// Build a valid outer header for one of the snapshot's tunnels.
pub const ENCAP: u8 = 2;

const ETH_LEN: usize = 14;
const UDP_LEN: usize = 8;
/// Source MAC of built frames (the testkit's first peer; pop ignores it).
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
/// Destination MAC of built frames (the testkit's uplink).
const UPLINK_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

/// The testkit topology's snapshot, compiled once: building it per input
/// would dominate the run time.
pub fn testbed() -> &'static Arc<Snapshot> {
    static S: OnceLock<Arc<Snapshot>> = OnceLock::new();
    S.get_or_init(|| testkit::testbed().snapshot())
}

/// A small config for control inputs to refer to: a bridge with lookup on
/// miss, a local port, a VXLAN tunnel with two remotes and a static entry
/// behind one of them.
pub fn small_config() -> Config {
    Config::from_toml(
        r#"
[uplink]
iface = "eth0"
local_ips = ["192.0.2.1"]
[[bridges]]
name = "br0"
lookup = { provider = { kind = "direct", vtep = "192.0.2.2" }, miss = "flood" }
[[ports]]
name = "vm1"
bridge = "br0"
[[tunnels]]
name = "vx1"
bridge = "br0"
kind = "vxlan"
vni = 100
remotes = ["192.0.2.2", "192.0.2.3"]
[[fdb]]
bridge = "br0"
mac = "02:00:00:00:00:02"
port = "vx1"
remote = "192.0.2.2"
"#,
        "fuzz",
    )
    .expect("the fuzz config is valid")
}

/// The uplink frame for `data` under `mode` (see the module doc).
pub fn uplink_frame(mode: u8, tunnels: &TunnelTable, data: &[u8]) -> Vec<u8> {
    if mode & ENCAP != 0 && !tunnels.is_empty() {
        let mut f = encap(tunnels, data);
        fill_ipv4_checksum(&mut f);
        return f;
    }
    let mut f = data.to_vec();
    if mode & FIX_CSUM != 0 {
        fill_ipv4_checksum(&mut f);
    }
    f
}

/// Takes bytes from the front of the input; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

/// Input layout: tunnel selector, remote selector, outer TOS / traffic
/// class, UDP source port (2), corrupt position, corrupt xor, Geneve flags
/// and option length in words, option bytes (Geneve only), inner frame.
fn encap(tunnels: &TunnelTable, data: &[u8]) -> Vec<u8> {
    let mut inp = Input(data);
    let tp = &tunnels.ports()[usize::from(inp.u8()) % tunnels.len()];
    let rsel = usize::from(inp.u8());
    let remote = match tp.remotes.len() {
        0 => tp.local,
        n => tp.remotes[rsel % n],
    };
    let tos = inp.u8();
    let sport = inp.u16();
    let corrupt_at = usize::from(inp.u8());
    let corrupt_xor = inp.u8();
    let gflags = inp.u8();
    let opt_words = usize::from(inp.u8() & 0x3f);
    let opts = match tp.kind {
        TunnelKind::Geneve => inp.take(opt_words * 4),
        TunnelKind::Vxlan => &[],
    };
    let inner = inp.0;

    let mut tun = Vec::with_capacity(8 + opts.len());
    let vni = tp.vni.to_be_bytes();
    match tp.kind {
        TunnelKind::Vxlan => {
            tun.extend_from_slice(&[0x08, 0, 0, 0, vni[1], vni[2], vni[3], 0]);
        }
        TunnelKind::Geneve => {
            // Version 0, option length from the options actually taken;
            // the fuzzer drives O (0x80) and C (0x40) and the reserved bits.
            tun.push((opts.len() / 4) as u8);
            tun.push(gflags);
            tun.extend_from_slice(&[0x65, 0x58, vni[1], vni[2], vni[3], 0]);
            tun.extend_from_slice(opts);
        }
    }
    let udp_len = UDP_LEN + tun.len() + inner.len();

    let mut f = Vec::with_capacity(ETH_LEN + 40 + udp_len);
    f.extend_from_slice(&UPLINK_MAC);
    f.extend_from_slice(&PEER_MAC);
    match (remote, tp.local) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let total = (20 + udp_len).min(usize::from(u16::MAX)) as u16;
            f.extend_from_slice(&[0x45, tos]);
            f.extend_from_slice(&total.to_be_bytes());
            f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
            f.extend_from_slice(&src.octets());
            f.extend_from_slice(&dst.octets());
        }
        (src, dst) => {
            f.extend_from_slice(&[0x86, 0xdd]);
            let plen = udp_len.min(usize::from(u16::MAX)) as u16;
            f.extend_from_slice(&[0x60 | (tos >> 4), tos << 4, 0, 0]);
            f.extend_from_slice(&plen.to_be_bytes());
            f.extend_from_slice(&[17, 64]);
            f.extend_from_slice(&v6_octets(src));
            f.extend_from_slice(&v6_octets(dst));
        }
    }
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&tp.dst_port.to_be_bytes());
    f.extend_from_slice(&(udp_len.min(usize::from(u16::MAX)) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum: always accepted
    f.extend_from_slice(&tun);
    if corrupt_xor != 0 {
        let at = corrupt_at % f.len();
        f[at] ^= corrupt_xor;
    }
    f.extend_from_slice(inner);
    f
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// Makes the IPv4 header checksum of an untagged Ethernet + IPv4 frame
/// valid, when the header is within the frame; anything else is left as is.
/// Computed here, not with the dataplane's checksum code, so it also
/// cross-checks `Ipv4Packet::verify_checksum`.
pub fn fill_ipv4_checksum(frame: &mut [u8]) {
    if frame.len() < ETH_LEN + 20 || frame[12..14] != [0x08, 0x00] {
        return;
    }
    let ihl = usize::from(frame[ETH_LEN] & 0x0f) * 4;
    let Some(hdr) = frame.get_mut(ETH_LEN..ETH_LEN + ihl) else {
        return;
    };
    if ihl < 20 {
        return;
    }
    hdr[10] = 0;
    hdr[11] = 0;
    let mut sum: u32 = hdr
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    hdr[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}
