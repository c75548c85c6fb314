//! A guest on a vhost-user port, through the whole daemon: xvsd's bridge
//! holds a veth port and a vhost-user port whose guest is DPDK's
//! virtio-user driver in dpdk-testpmd's icmpecho mode (it answers ARP
//! requests and pings for any address, as the guest owning them would).
//! The veth namespace pings it; the driver is killed (the port goes
//! down, frames flooded to it are counted as `guest_not_connected`) and
//! a new one is served on the same socket, pings answered again.
//!
//! Needs root and dpdk-testpmd (Debian's dpdk-dev; scripts/test.sh
//! installs it).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use xvs_tests::guest::{port_stats, wait_port_state, VhostBridge};
use xvs_tests::require::{require_root, require_tool};
use xvs_tests::testpmd::Testpmd;
use xvs_tests::Xvsd;

fn stats(d: &Xvsd, port: &str) -> Value {
    port_stats(d, port)
}

fn wait_state(d: &Xvsd, port: &str, want: &str) {
    wait_port_state(d, port, want, 20, &String::new);
}

#[test]
fn a_guest_on_a_vhost_user_port_answers_pings_and_comes_back_after_its_driver_dies() {
    if !require_root() || !require_tool("dpdk-testpmd") {
        return;
    }
    let h = VhostBridge::new("vu");
    let (vm, sock) = (&h.vm, &h.sock);
    let d = Xvsd::start(
        Path::new(env!("CARGO_BIN_EXE_xvsd")),
        &h.hv,
        &h.config(),
        &[],
    );
    assert!(sock.exists(), "xvsd listens on the socket:\n{}", d.log());
    assert_eq!(stats(&d, "vu1")["state"], "down", "no guest yet");

    let mut pmd = Testpmd::start(sock, "a", "icmpecho", false);
    wait_state(&d, "vu1", "up");
    let got = vm.ping("10.0.0.2", 5);
    assert!(
        got >= 4,
        "{got} of 5 pings answered by the guest\n{}\n{}",
        d.log(),
        pmd.log()
    );
    // Counters are published every 100 ms: waited for, bounded.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = stats(&d, "vu1");
        if s["rx_packets"].as_u64() >= Some(5) && s["tx_packets"].as_u64() >= Some(5) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "frames to and from the guest not counted: {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The guest's driver dies: the port is down, what is flooded to it
    // is counted, the daemon serves the socket on.
    pmd.kill9();
    wait_state(&d, "vu1", "down");
    assert_eq!(
        vm.ping("10.0.0.3", 1),
        0,
        "nobody answers with the driver gone"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.drops("guest_not_connected") == 0 {
        assert!(
            Instant::now() < deadline,
            "ARP floods to the driverless port not counted: {}",
            stats(&d, "vu1")
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let pmd2 = Testpmd::start(sock, "b", "icmpecho", false);
    wait_state(&d, "vu1", "up");
    let got = vm.ping("10.0.0.4", 5);
    assert!(
        got >= 4,
        "{got} of 5 pings answered after the driver came back\n{}",
        pmd2.log()
    );
    drop(pmd2);
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(!sock.exists(), "a stopped xvsd removes its socket");
}
