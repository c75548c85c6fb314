//! A real virtual machine on a vhost-user port: QEMU 10 with Linux's
//! virtio-net driver (Debian's kernel, a busybox initramfs:
//! scripts/guest.sh) on xvsd's port `vu1`, a veth namespace on the same
//! bridge. The namespace pings the guest; then the guest is reset (its
//! driver stops and restarts the device), QEMU is killed with SIGKILL and
//! booted again (the port waits for it), and xvsd is killed and started
//! again under the running guest (QEMU reconnects): after each, pings are
//! answered again. Under TCG, so the waits are long.
//!
//! Needs root, QEMU 10 (`qemu-system-x86_64` from bookworm-backports;
//! QEMU 7.2 crashes when a TCG guest loads a vhost-user NIC's driver) and
//! the guest image (`scripts/guest.sh`); scripts/test.sh provides all
//! three.

use std::path::Path;

use xvs_tests::guest::{guest_dir, port_stats, wait_port_state, Guest, VhostBridge};
use xvs_tests::require::{require_file, require_root, require_tool};
use xvs_tests::{Netns, Xvsd};

const GUEST_IP: &str = "10.0.0.2";

/// Pings the guest until `n` answers in a row come back (bounded): the
/// first after a boot waits for the guest's ARP entry and the port.
fn pings_answered(vm: &Netns, n: u32, what: &str, g: &Guest, d: &Xvsd) {
    xvs_tests::guest::pings_answered(vm, GUEST_IP, "vu1", n, what, g, d);
}

#[test]
fn a_qemu_guest_answers_through_reset_kill_and_an_xvsd_restart() {
    if !require_root()
        || !require_tool("qemu-system-x86_64")
        || !require_file(
            &guest_dir().join("vmlinuz").to_string_lossy(),
            "the guest kernel (scripts/guest.sh DIR, XVS_GUEST_DIR=DIR)",
        )
    {
        return;
    }
    eprintln!("QEMU under TCG (no KVM for a non-PVM guest kernel here)");
    let h = VhostBridge::new("vg");
    let mut d = Xvsd::start(
        Path::new(env!("CARGO_BIN_EXE_xvsd")),
        &h.hv,
        &h.config(),
        &[],
    );
    let mut g = Guest::boot(&h.sock, "52:54:00:00:0b:02", &format!("{GUEST_IP}/24"), "a");
    g.wait_ready(1, 120);
    wait_port_state(&d, "vu1", "up", 60, &|| g.console());
    pings_answered(&h.vm, 3, "after boot", &g, &d);
    let s = port_stats(&d, "vu1");
    assert_eq!(s["drops"].get("guest_bad_descriptor"), None, "{s}");

    // A hard reset: the guest's driver stops the device and starts it again.
    g.reset();
    g.wait_ready(2, 120);
    pings_answered(&h.vm, 3, "after a reset", &g, &d);

    // QEMU killed: the port goes down and waits; a new QEMU is served.
    g.kill9();
    wait_port_state(&d, "vu1", "down", 20, &String::new);
    g.boot_again();
    g.wait_ready(1, 120);
    pings_answered(&h.vm, 3, "after QEMU was killed and booted again", &g, &d);

    // xvsd killed under the running guest and started again: QEMU
    // reconnects (reconnect-ms), negotiates afresh, the guest goes on.
    d.restart();
    wait_port_state(&d, "vu1", "up", 60, &|| g.console());
    pings_answered(&h.vm, 3, "after xvsd was killed and restarted", &g, &d);

    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}
