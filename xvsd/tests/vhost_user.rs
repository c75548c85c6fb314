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

/// Sends every frame `ns`'s `iface` transmits on its queue `q` (XPS: the
/// queue is picked per CPU, and every CPU picks `q`), so that the veth
/// peer receives them on its queue `q`, the one worker `q` serves.
fn transmit_on(ns: &xvs_tests::Netns, iface: &str, q: usize) {
    for k in 0..2 {
        let mask = if k == q { "3" } else { "0" };
        ns.run(
            "sh",
            &[
                "-c",
                &format!("echo {mask} > /sys/class/net/{iface}/queues/tx-{k}/xps_cpus"),
            ],
        );
    }
}

/// What each worker received from and sent to `port`.
fn per_worker(d: &Xvsd, port: &str) -> Vec<(u64, u64)> {
    let out = d.ok(&["--format", "json", "stats", port, "--per-worker"]);
    let rows: Value = serde_json::from_str(&out).expect("stats JSON");
    let mut w = vec![(0, 0); 2];
    for r in rows[0]["per_worker"].as_array().into_iter().flatten() {
        let i = r["worker"].as_u64().unwrap_or(0) as usize;
        if let Some(slot) = w.get_mut(i) {
            *slot = (
                r["rx_packets"].as_u64().unwrap_or(0),
                r["tx_packets"].as_u64().unwrap_or(0),
            );
        }
    }
    w
}

/// Two workers and a port with two queue pairs: frames reaching either
/// worker go to the guest, into the worker's own pair, and the guest's
/// answers come back through both pairs (each polled by its worker).
/// Then a guest driving one pair only: both workers still reach it (the
/// worker whose pair the guest left off sends into pair 0).
#[test]
fn two_workers_serve_a_vhost_user_ports_queue_pairs() {
    if !require_root() || !require_tool("dpdk-testpmd") {
        return;
    }
    let hv = xvs_tests::Netns::new("vqhv");
    let vm = xvs_tests::Netns::new("vqvm");
    xvs_tests::veth_queues(&vm, "vm0", &hv, "p0", 2);
    vm.ip(&["addr", "add", "10.0.0.1/24", "dev", "vm0"]);
    let dir = std::env::temp_dir().join(format!("xvs-vq-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("socket directory");
    let sock = dir.join("vu1.sock");
    let config = format!(
        r#"
[[bridges]]
name = "br0"

[[ports]]
name = "p0"
bridge = "br0"

[[ports]]
name = "vu1"
bridge = "br0"
queues = 2
kind = {{ type = "vhost-user", socket = "{}" }}
"#,
        sock.display()
    );
    let d = Xvsd::start(
        Path::new(env!("CARGO_BIN_EXE_xvsd")),
        &hv,
        &config,
        &["--workers", "2"],
    );
    for (pairs, tag) in [(2, "m"), (1, "s")] {
        let pmd = Testpmd::start_queues(&sock, tag, "icmpecho", false, pairs);
        wait_state(&d, "vu1", "up");
        let before = per_worker(&d, "vu1");
        for q in [0, 1] {
            transmit_on(&vm, "vm0", q);
            // A new address each time: its ARP exchange goes the same way.
            let ip = format!("10.0.0.{}", 10 + 2 * pairs + q as u32);
            let got = vm.ping(&ip, 5);
            assert!(
                got >= 4,
                "{pairs} pair(s), through worker {q}: {got} of 5 pings answered\n{}\n{}",
                d.log(),
                pmd.log()
            );
        }
        // Counters are published every 100 ms: waited for, bounded.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = per_worker(&d, "vu1");
            let sent = (0..2).all(|w| now[w].1 > before[w].1);
            let polled = (0..2).filter(|&w| now[w].0 > before[w].0).count();
            // Each worker sent to the guest; with two pairs each worker
            // also took the answers from its own.
            if sent && polled >= pairs as usize {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{pairs} pair(s): per worker (rx, tx) {before:?} -> {now:?}\n{}",
                pmd.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(pmd);
        wait_state(&d, "vu1", "down");
    }
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
