//! The Linux kernel's own vxlan device as xvsd's tunnel peer, shared by
//! the tests that put one across the underlay from xvsd: the VM behind
//! xvsd's port, the kernel's vxlan device, and the xvsd config with one
//! VXLAN tunnel to it.
//!
//! ```text
//! ns vm: vm0 10.0.0.1/24 ── veth ── ns hv: p0 (xvsd port)   xvsd: br0 = {p0, vx1 VNI 42}
//!                                   ns hv: u0 (xvsd uplink) ── underlay ── peer
//!                                   peer: vx0 vxlan 42 → xvsd's VTEP, 10.0.0.2/24
//! ```

use crate::{veth, Netns};

/// The VNI of the tunnel between xvsd and the kernel.
pub const VNI: u32 = 42;
/// The VM's address behind xvsd, and the kernel vxlan's inner address.
pub const VM_IP: &str = "10.0.0.1";
pub const PEER_IP: &str = "10.0.0.2";

/// xvsd's config: uplink `u0` with VTEP address `local`, bridge `br0`
/// with port `p0` and tunnel `vx1` (VXLAN, [`VNI`]) to `remote`.
pub fn xvsd_config(local: &str, remote: &str) -> String {
    format!(
        r#"
[uplink]
iface = "u0"
local_ips = ["{local}"]

[[bridges]]
name = "br0"

[[ports]]
name = "p0"
bridge = "br0"

[[tunnels]]
name = "vx1"
bridge = "br0"
kind = "vxlan"
vni = {VNI}
remotes = ["{remote}"]
"#
    )
}

/// The VM behind xvsd's port: `vm0` in `vm` (10.0.0.1/24, MTU 1400 so
/// that it fits in the tunnel, TX checksum offload off: README "TCP and
/// checksums"), its peer `p0` in `hv`.
pub fn vm_on_p0(vm: &Netns, hv: &Netns) {
    veth(
        vm,
        "vm0",
        "02:00:00:00:0a:01",
        hv,
        "p0",
        "02:00:00:00:0a:02",
    );
    vm.ip(&["addr", "add", &format!("{VM_IP}/24"), "dev", "vm0"]);
    vm.ip(&["link", "set", "vm0", "mtu", "1400"]);
}

/// The kernel's vxlan in `ns`: `vx0` (MAC `mac`, MTU 1400), [`VNI`] on
/// UDP 4789 from `local` to `remote` over `dev`, with `inner` (an address
/// with its prefix) on it, up, its offloads as the kernel sets them: it
/// leaves inner checksums partial for the outer device to finish, and on
/// a veth nothing finishes them before xvsd, which completes them.
pub fn kernel_vxlan(ns: &Netns, dev: &str, mac: &str, local: &str, remote: &str, inner: &str) {
    let vni = VNI.to_string();
    #[rustfmt::skip]
    ns.ip(&[
        "link", "add", "vx0", "address", mac, "mtu", "1400", "type", "vxlan",
        "id", &vni, "local", local, "remote", remote, "dstport", "4789", "dev", dev,
    ]);
    ns.ip(&["addr", "add", inner, "dev", "vx0"]);
    ns.ip(&["link", "set", "vx0", "up"]);
}

/// The three namespaces of the tests that put the kernel's vxlan across
/// the underlay from xvsd: `vm` ([`vm_on_p0`]), `hv` (xvsd's, with `u0`)
/// and `peer` (`pu0`, the kernel's `vx0` at [`PEER_IP`], VTEP 192.0.2.2
/// to xvsd's 192.0.2.1); start xvsd in `hv` with
/// `xvsd_config("192.0.2.1", "192.0.2.2")`.
#[derive(Debug)]
pub struct Topology {
    pub vm: crate::Netns,
    pub hv: crate::Netns,
    pub peer: crate::Netns,
}

impl Topology {
    /// Namespaces `TAGvm`, `TAGhv`, `TAGpe`.
    pub fn new(tag: &str) -> Topology {
        let vm = crate::Netns::new(&format!("{tag}vm"));
        let hv = crate::Netns::new(&format!("{tag}hv"));
        let peer = crate::Netns::new(&format!("{tag}pe"));
        vm_on_p0(&vm, &hv);
        crate::underlay(&hv, &peer);
        #[rustfmt::skip]
        kernel_vxlan(&peer, "pu0", "02:00:00:00:0b:01", "192.0.2.2", "192.0.2.1", "10.0.0.2/24");
        Topology { vm, hv, peer }
    }
}
