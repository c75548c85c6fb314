//! A few-second smoke run of `xvs-pktgen` in network namespaces: `tx`
//! sends 1,000 frames of 64 B over a veth pair, `rx` in the peer
//! namespace counts and checks them; every frame must arrive and pass the
//! check (UDP destination port and consistent lengths, or the VNI of the
//! tunnel packet), none may fail it. Once plain, once pre-encapsulated in
//! VXLAN and in Geneve. The same with `--engine xdp` (BPF_PROG_RUN live
//! frames; the receiver's XDP program gives the peer veth the NAPI it
//! needs). Each engine also runs for a second at full speed, where the
//! receiver sharing the core loses frames: then every frame counted as
//! sent must be either received or in the receiver's socket drop counter.
//! So with the xdp engine skipped (a kernel that refuses live frames) the
//! AF_XDP engine still proves the same frames and the same accounting.
//! A frame the kernel cannot take in live mode makes `--engine xdp` exit
//! with one line naming the kernel's check and `--engine afxdp`. The full
//! benchmarks (`bench/encap_decap.sh`, `bench/compare.sh`) stay out of the
//! test suite.
//!
//! Needs root (namespaces, XDP, AF_XDP) and, for the xdp engine, a kernel
//! that takes live frames: `xvs_tests::require_*` decide what a missing
//! one means. Namespaces go away on drop; every wait is bounded.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use xvs_bench::pktgen::xdp::{probe_live_frames, ProbeError};
use xvs_tests::{require_kernel_feature, require_root, veth, Netns};

const PKTGEN: &str = env!("CARGO_BIN_EXE_xvs-pktgen");
const TX_MAC: &str = "02:00:00:00:0c:01";
const RX_MAC: &str = "02:00:00:00:0c:02";
const FRAMES: u64 = 1000;
/// The frames these tests send: 64 bytes, or 114 inside a tunnel.
const FRAME_LEN: usize = 64;
const ENCAP_LEN: usize = FRAME_LEN + 50;
const LIVE_FRAMES: &str = "BPF_PROG_TEST_RUN with live frames (BPF_F_TEST_XDP_LIVE_FRAMES)";

/// Whether the kernel runs the xdp engine for `frame_len`-byte frames:
/// `Err` only for its refusal of the live-frames run itself; a failure to
/// ask (say, loading the probe program) fails the test.
fn live_frames(frame_len: usize) -> Result<(), String> {
    match probe_live_frames(frame_len) {
        Ok(()) => Ok(()),
        Err(ProbeError::Refused(r)) => Err(r.to_string()),
        Err(e) => panic!("probing live frames: {e}"),
    }
}

/// The xdp-engine tests' requirement: live frames for every frame they send.
fn require_live_frames() -> bool {
    require_kernel_feature(LIVE_FRAMES, || live_frames(ENCAP_LEN))
}

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
    if !require_root() {
        return;
    }
    let (tx, rx) = run("pgs", &COUNT, &["--expect-udp-dport", "5001"]);
    check(&tx, &rx, 64);
}

#[test]
fn xdp_engine_sends_1000_frames_that_arrive_intact() {
    if !require_root() || !require_live_frames() {
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
    if !require_root() || !require_live_frames() {
        return;
    }
    let xdp = ["--engine", "xdp", "--duration", "1"];
    let (tx, rx) = run("pxf", &xdp, &["--expect-udp-dport", "5001"]);
    assert_eq!(tx["engine"], "xdp", "{tx}");
    accounts_for_every_frame(&tx, &rx);
}

/// The AF_XDP engine's run at full speed: what the xdp engine's proves,
/// also where the kernel refuses live frames.
#[test]
fn afxdp_engine_at_full_speed_accounts_for_every_frame() {
    if !require_root() {
        return;
    }
    let afxdp = ["--engine", "afxdp", "--duration", "1"];
    let (tx, rx) = run("paf", &afxdp, &["--expect-udp-dport", "5001"]);
    assert_eq!(tx["engine"], "afxdp", "{tx}");
    accounts_for_every_frame(&tx, &rx);
}

/// Every frame counted as sent was received or dropped by the receiver's
/// socket (the receiver shares the core and falls behind at full speed),
/// and none failed the check.
fn accounts_for_every_frame(tx: &serde_json::Value, rx: &serde_json::Value) {
    eprintln!("tx {tx}\nrx {rx}");
    let sent = field(tx, "packets");
    assert!(sent > 0, "{tx}");
    assert_eq!(field(tx, "dropped"), 0, "{tx}");
    assert!(field(tx, "queued") >= sent, "{tx}");
    assert_eq!(
        field(rx, "invalid"),
        0,
        "frames that failed the check: {rx}"
    );
    let (got, lost) = (field(rx, "packets"), field(rx, "xsk_rx_dropped"));
    assert_eq!(got + lost, sent, "received + socket drops = sent: {rx}");
    assert!(got > 0, "{rx}");
}

#[test]
fn pktgen_sends_1000_tunnel_packets_that_arrive_intact() {
    if !require_root() {
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

/// `probe` gives the in-process probe's answer as its exit status and one
/// line; and a frame no page holds in live mode (3,950 bytes, the kernel's
/// own EINVAL on 4 KiB pages) makes `tx --engine xdp` exit 1 with nothing
/// on stdout and exactly one line on stderr: what the kernel refused, why,
/// and `--engine afxdp`.
#[test]
fn xdp_engine_refusal_is_one_line_naming_the_check_and_afxdp() {
    if !require_root() {
        return;
    }
    let out = Command::new(PKTGEN)
        .args(["probe", "--frame-len", &FRAME_LEN.to_string()])
        .output()
        .expect("run xvs-pktgen probe");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    match live_frames(FRAME_LEN) {
        Ok(()) => {
            assert!(out.status.success(), "{}: {stderr}", out.status);
            assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
            assert!(stdout.contains("--engine xdp can send"), "{stdout:?}");
            assert!(stderr.is_empty(), "{stderr:?}");
        }
        Err(refused) => {
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert_eq!(
                stderr,
                format!("xvs-pktgen: {refused}; send with --engine afxdp instead\n")
            );
        }
    }

    const LONG: usize = 3950;
    let refused = match live_frames(LONG) {
        Err(refused) => refused,
        // Pages larger than 4 KiB hold it: nothing to refuse.
        Ok(()) => return,
    };
    let a = Netns::new("pxra");
    let b = Netns::new("pxrb");
    veth(&a, "t0", TX_MAC, &b, "r0", RX_MAC);
    a.ip(&["link", "set", "t0", "mtu", "4000"]);
    let tx = Command::new("timeout")
        .args([
            "30", "ip", "netns", "exec", &a.name, PKTGEN, "tx", "--iface", "t0",
        ])
        .args([
            "--engine",
            "xdp",
            "--dst-mac",
            RX_MAC,
            "--size",
            &LONG.to_string(),
        ])
        .args(["--count", "10", "--json"])
        .output()
        .expect("run xvs-pktgen tx");
    let stderr = String::from_utf8_lossy(&tx.stderr);
    assert_eq!(tx.status.code(), Some(1), "{stderr}");
    assert!(
        tx.stdout.is_empty(),
        "no report: {:?}",
        String::from_utf8_lossy(&tx.stdout)
    );
    assert_eq!(
        stderr,
        format!("xvs-pktgen: {refused}; send with --engine afxdp instead\n")
    );
    // The kernel's answer for the length: EINVAL where live frames run
    // at all; where a security module refuses them (EPERM, some machines
    // of this kind) that refusal, whatever the length.
    let errno = if live_frames(FRAME_LEN).is_ok() {
        "EINVAL"
    } else {
        "EPERM"
    };
    let source = if errno == "EINVAL" {
        "net/bpf/test_run.c"
    } else {
        "kernel/bpf/syscall.c"
    };
    for want in [
        "BPF_F_TEST_XDP_LIVE_FRAMES",
        "3950-byte",
        errno,
        source,
        "--engine afxdp",
    ] {
        assert!(stderr.contains(want), "{want} in {stderr}");
    }
}
