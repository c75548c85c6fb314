//! A few-second smoke run of `xvs-pktgen` in network namespaces: `tx`
//! sends 1,000 frames of 64 B over a veth pair, `rx` in the peer
//! namespace counts and checks them; every frame must arrive and pass the
//! check (UDP destination port and consistent lengths, or the VNI of the
//! tunnel packet), none may fail it. Once plain, once pre-encapsulated in
//! VXLAN and in Geneve. The same with `--engine xdp` (BPF_PROG_RUN live
//! frames; the receiver's XDP program gives the peer veth the NAPI it
//! needs), and once for a second at full speed, where the receiver sharing
//! the core loses frames: then every frame the interface counted as sent
//! must be either received or in the receiver's socket drop counter. The
//! full benchmarks (`bench/encap_decap.sh`, `bench/compare.sh`) stay out of
//! the test suite.
//!
//! Needs root (namespaces, XDP, AF_XDP); skipped with a message otherwise.
//! Namespaces go away on drop; every wait is bounded.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use xvs_tests::{is_root, veth, Netns};

const PKTGEN: &str = env!("CARGO_BIN_EXE_xvs-pktgen");
const TX_MAC: &str = "02:00:00:00:0c:01";
const RX_MAC: &str = "02:00:00:00:0c:02";
const FRAMES: u64 = 1000;

/// A JSON number field of pktgen's report.
fn field(json: &serde_json::Value, name: &str) -> u64 {
    json[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in {json}"))
}

/// SIGTERM, then SIGKILL after 10 s; returns stdout.
fn stop(mut child: Child) -> String {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("rx output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends frames (`tx_extra`: pktgen's options beyond the addresses, size
/// and flows: --count and/or --duration, --encap, --engine) from one
/// namespace to the other and returns (tx report, rx report).
fn run(tag: &str, tx_extra: &[&str], expect: &[&str]) -> (serde_json::Value, serde_json::Value) {
    let a = Netns::new(&format!("{tag}a"));
    let b = Netns::new(&format!("{tag}b"));
    for ns in [&a, &b] {
        // No IPv6 neighbour discovery frames on the link.
        ns.exec(
            "sysctl",
            &[
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
    }
    veth(&a, "t0", TX_MAC, &b, "r0", RX_MAC);

    let mut rx = Command::new("ip")
        .args(["netns", "exec", &b.name, PKTGEN, "rx", "--iface", "r0"])
        .args(expect)
        .args(["--duration", "30", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn xvs-pktgen rx");
    // Wait (bounded) until the receiver's socket is bound.
    let stderr = rx.stderr.take().expect("rx stderr");
    let (ready_tx, ready_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("rx ready") {
                let _ = ready_tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    if ready_rx.recv_timeout(Duration::from_secs(15)).is_err() {
        stop(rx);
        panic!("rx not ready in 15 s: {:?}", reader.join());
    }

    let tx = Command::new("timeout")
        .args([
            "30", "ip", "netns", "exec", &a.name, PKTGEN, "tx", "--iface", "t0",
        ])
        .args(["--dst-mac", RX_MAC, "--size", "64", "--flows", "16"])
        .arg("--json")
        .args(tx_extra)
        .output()
        .expect("run xvs-pktgen tx");
    // The last frames are in flight for a moment.
    std::thread::sleep(Duration::from_millis(300));
    let rx_out = stop(rx);
    let rx_err = reader.join().unwrap_or_default();
    assert!(
        tx.status.success(),
        "tx failed ({}): {}",
        tx.status,
        String::from_utf8_lossy(&tx.stderr)
    );
    let tx_json: serde_json::Value = serde_json::from_slice(&tx.stdout)
        .unwrap_or_else(|e| panic!("tx JSON: {e}: {}", String::from_utf8_lossy(&tx.stdout)));
    let rx_json: serde_json::Value = serde_json::from_str(&rx_out)
        .unwrap_or_else(|e| panic!("rx JSON: {e}: {rx_out:?} {rx_err:?}"));
    (tx_json, rx_json)
}

fn check(tx: &serde_json::Value, rx: &serde_json::Value, frame_len: u64) {
    eprintln!("tx {tx}\nrx {rx}");
    assert_eq!(field(tx, "packets"), FRAMES, "{tx}");
    assert_eq!(field(tx, "frame_len"), frame_len, "{tx}");
    let (packets, invalid) = (field(rx, "packets"), field(rx, "invalid"));
    assert_eq!(invalid, 0, "frames that failed the check: {rx}");
    assert_eq!(packets, FRAMES, "every frame must arrive, once: {rx}");
    assert_eq!(field(rx, "bytes"), FRAMES * frame_len, "{rx}");
}

/// FRAMES frames, bounded in time too.
const COUNT: [&str; 4] = ["--count", "1000", "--duration", "10"];

#[test]
fn pktgen_sends_1000_frames_that_arrive_intact() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces, XDP, AF_XDP)");
        return;
    }
    let (tx, rx) = run("pgs", &COUNT, &["--expect-udp-dport", "5001"]);
    check(&tx, &rx, 64);
}

#[test]
fn xdp_engine_sends_1000_frames_that_arrive_intact() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces, XDP, BPF_PROG_RUN)");
        return;
    }
    let xdp = ["--engine", "xdp", "--count", "1000", "--duration", "10"];
    let (tx, rx) = run("pxs", &xdp, &["--expect-udp-dport", "5001"]);
    assert_eq!(tx["engine"], "xdp", "{tx}");
    assert_eq!(field(&tx, "queued"), FRAMES, "program runs: {tx}");
    check(&tx, &rx, 64);
    for (tag, kind) in [("pxv", "vxlan"), ("pxg", "geneve")] {
        #[rustfmt::skip]
        let encap = [
            "--engine", "xdp", "--count", "1000", "--duration", "10", "--encap", kind, "--vni", "4242",
            "--outer-src", "192.0.2.1", "--outer-dst", "192.0.2.2", "--outer-dst-mac", RX_MAC,
        ];
        let (tx, rx) = run(tag, &encap, &["--expect-vni", "4242"]);
        check(&tx, &rx, 64 + 50);
    }
}

#[test]
fn xdp_engine_at_full_speed_accounts_for_every_frame() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces, XDP, BPF_PROG_RUN)");
        return;
    }
    let xdp = ["--engine", "xdp", "--duration", "1"];
    let (tx, rx) = run("pxf", &xdp, &["--expect-udp-dport", "5001"]);
    eprintln!("tx {tx}\nrx {rx}");
    let sent = field(&tx, "packets");
    assert!(sent > 0, "{tx}");
    assert_eq!(field(&tx, "dropped"), 0, "{tx}");
    assert!(field(&tx, "queued") >= sent, "{tx}");
    assert_eq!(
        field(&rx, "invalid"),
        0,
        "frames that failed the check: {rx}"
    );
    let (got, lost) = (field(&rx, "packets"), field(&rx, "xsk_rx_dropped"));
    assert_eq!(got + lost, sent, "received + socket drops = sent: {rx}");
    assert!(got > 0, "{rx}");
}

#[test]
fn pktgen_sends_1000_tunnel_packets_that_arrive_intact() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces, XDP, AF_XDP)");
        return;
    }
    for (tag, kind) in [("pgv", "vxlan"), ("pgg", "geneve")] {
        #[rustfmt::skip]
        let encap = [
            "--count", "1000", "--duration", "10", "--encap", kind, "--vni", "4242", "--outer-src", "192.0.2.1",
            "--outer-dst", "192.0.2.2", "--outer-dst-mac", RX_MAC,
        ];
        let (tx, rx) = run(tag, &encap, &["--expect-vni", "4242"]);
        check(&tx, &rx, 64 + 50);
    }
}
