//! Frames the kernel drops before they reach a worker (AF_XDP's own
//! counters, getsockopt XDP_STATISTICS) show in `xvsctl stats` on the port
//! they came in on, as `xsk_rx_dropped` and `xsk_rx_ring_full`. A UDP
//! burst from the VM into an xvsd with the smallest UMEM and a worker
//! that sleeps when idle outruns its fill ring: iperf3 says how many
//! datagrams were lost, and xvsd must account for them.
//!
//! Needs root and iperf3.

use std::path::Path;

use serde_json::Value;
use xvs_tests::kvxlan::{xvsd_config, Topology};
use xvs_tests::{require_root, require_tool, Xvsd};

#[test]
fn what_the_kernel_drops_on_a_port_shows_in_its_stats() {
    if !require_root() || !require_tool("iperf3") {
        return;
    }
    let Topology { vm, hv, peer } = Topology::new("kd");
    let d = Xvsd::start(
        Path::new(env!("CARGO_BIN_EXE_xvsd")),
        &hv,
        &xvsd_config("192.0.2.1", "192.0.2.2"),
        &["--umem-frames", "256", "--poll", "adaptive"],
    );
    assert_eq!(vm.ping("10.0.0.2", 2), 2, "{}", d.log());
    let mut server = std::process::Command::new("ip")
        .args([
            "netns", "exec", &peer.name, "iperf3", "-s", "-1", "-B", "10.0.0.2",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 server");
    std::thread::sleep(std::time::Duration::from_millis(500));
    // Bounded: 2 s at 3 Gbit/s of 1,200-byte datagrams, in bursts.
    #[rustfmt::skip]
    let out = vm.exec("timeout", &[
        "20", "iperf3", "-c", "10.0.0.2", "-u", "-b", "3G", "-l", "1200", "-t", "2", "-J",
    ]);
    let _ = server.kill();
    let _ = server.wait();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "iperf3 JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let lost = report["end"]["sum"]["lost_packets"].as_u64().unwrap_or(0);
    let stats: Value =
        serde_json::from_str(&d.ok(&["--format", "json", "stats", "p0"])).expect("stats JSON");
    let drops = &stats[0]["drops"];
    let kernel = drops["xsk_rx_dropped"].as_u64().unwrap_or(0)
        + drops["xsk_rx_ring_full"].as_u64().unwrap_or(0);
    assert!(
        lost > 0,
        "the burst should outrun 256 chunks (iperf3 lost none): {report}"
    );
    assert!(
        kernel > 0,
        "iperf3 lost {lost} datagrams; p0's drops say none were the kernel's: {drops}\n{}",
        d.log()
    );
    let workers: Value =
        serde_json::from_str(&d.ok(&["--format", "json", "worker-stats"])).expect("JSON");
    assert!(
        workers[0]["events"]["xsk_fill_empty"].as_u64().unwrap_or(0) > 0
            || drops["xsk_rx_ring_full"].as_u64().unwrap_or(0) > 0,
        "a fill ring found empty or an RX ring full: {workers}"
    );
}
