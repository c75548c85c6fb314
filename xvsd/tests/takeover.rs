//! An upgrade that drops nothing: `xvsctl restart` under a steady stream
//! of 100,000 UDP datagrams a second from one VM namespace to another
//! through xvsd. The running daemon starts its binary again, the new one
//! takes its AF_XDP sockets and UMEM over and swaps its XDP programs in;
//! every datagram sent arrives, once, and the old daemon exits 0. Then
//! the new daemon forwards on its own (through the tunnel too), and a
//! takeover the sets do not fit is refused by the new process, which
//! says why, while the running daemon takes its sets back and forwards.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xvs_tests::require::require_root;
use xvs_tests::{on_thread, veth, Netns, Xvsd};

const CONFIG: &str = r#"
[[bridges]]
name = "br0"

[[ports]]
name = "p1"
bridge = "br0"

[[ports]]
name = "p2"
bridge = "br0"

[uplink]
iface = "u0"
local_ips = ["192.0.2.1"]

[[tunnels]]
name = "vx1"
bridge = "br0"
kind = "vxlan"
vni = 42
remotes = ["192.0.2.2"]
"#;

/// Datagrams in the stream, and how many a millisecond (100,000/s).
const TOTAL: u64 = 400_000;
const PER_MS: u64 = 100;

/// The id of the XDP program on `iface` in `ns`.
fn xdp_prog(ns: &Netns, iface: &str) -> String {
    let out = ns.run("ip", &["-d", "link", "show", iface]);
    out.split_whitespace()
        .skip_while(|w| *w != "prog/xdp")
        .nth(2)
        .unwrap_or_default()
        .to_owned()
}

/// `xvsctl hello`'s pid.
fn daemon_pid(d: &Xvsd) -> u32 {
    let v: serde_json::Value =
        serde_json::from_str(&d.ok(&["--format", "json", "version"])).expect("hello JSON");
    v["pid"].as_u64().expect("a pid") as u32
}

#[test]
fn a_restart_under_a_steady_stream_loses_no_datagram() {
    if !require_root() {
        return;
    }
    let hv = Netns::new("tohv");
    let (vm1, vm2, peer) = (Netns::new("tov1"), Netns::new("tov2"), Netns::new("tope"));
    veth(
        &vm1,
        "vm0",
        "02:00:00:00:1e:01",
        &hv,
        "p1",
        "02:00:00:00:1e:11",
    );
    veth(
        &vm2,
        "vm0",
        "02:00:00:00:1e:02",
        &hv,
        "p2",
        "02:00:00:00:1e:12",
    );
    xvs_tests::underlay(&hv, &peer);
    xvs_tests::kvxlan::kernel_vxlan(
        &peer,
        "pu0",
        "02:00:00:00:1e:03",
        "192.0.2.2",
        "192.0.2.1",
        "10.0.0.3/24",
    );
    vm1.ip(&["addr", "add", "10.0.0.1/24", "dev", "vm0"]);
    vm2.ip(&["addr", "add", "10.0.0.2/24", "dev", "vm0"]);
    let mut d = Xvsd::start(Path::new(env!("CARGO_BIN_EXE_xvsd")), &hv, CONFIG, &[]);
    assert_eq!(vm1.ping("10.0.0.2", 1), 1, "{}", d.log());
    let old_pid = daemon_pid(&d);
    let old_prog = xdp_prog(&hv, "p1");

    // The sink, in vm2: a socket buffer deep enough that the stream's
    // losses can only be the switch's.
    let rx = on_thread(|| {
        vm2.enter();
        UdpSocket::bind("10.0.0.2:5001").expect("bind the sink")
    });
    let rcvbuf: libc::c_int = 32 << 20;
    // SAFETY: setsockopt reads `rcvbuf` (an int, its size given) for the
    // duration of the call on a socket we own.
    unsafe {
        libc::setsockopt(
            rx.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const rcvbuf).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let tx = on_thread(|| {
        vm1.enter();
        UdpSocket::bind("10.0.0.1:0").expect("bind the source")
    });
    let sending = Arc::new(AtomicBool::new(true));
    let sink = {
        let sending = Arc::clone(&sending);
        std::thread::spawn(move || {
            let mut seen = vec![false; TOTAL as usize];
            let (mut got, mut dup) = (0u64, 0u64);
            let mut buf = [0u8; 64];
            let mut idle_since = None;
            loop {
                match rx.recv(&mut buf) {
                    Ok(n) if n >= 8 => {
                        let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
                        match seen.get_mut(seq as usize) {
                            Some(s) if !*s => {
                                *s = true;
                                got += 1;
                            }
                            _ => dup += 1,
                        }
                        idle_since = None;
                    }
                    _ => {
                        // Done 2 s after the last datagram once the
                        // source stopped (bounded).
                        if !sending.load(Ordering::Relaxed) {
                            let t = *idle_since.get_or_insert_with(Instant::now);
                            if t.elapsed() > Duration::from_secs(2) || got == TOTAL {
                                break;
                            }
                        }
                    }
                }
                if got == TOTAL && !sending.load(Ordering::Relaxed) {
                    break;
                }
            }
            (got, dup)
        })
    };
    let source = std::thread::spawn(move || {
        let start = Instant::now();
        let mut seq = 0u64;
        let mut payload = [0u8; 32];
        while seq < TOTAL {
            // Paced by the clock: PER_MS a millisecond on average.
            let due = start.elapsed().as_micros() as u64 * PER_MS / 1000 + 1;
            while seq < due.min(TOTAL) {
                payload[..8].copy_from_slice(&seq.to_be_bytes());
                if tx.send_to(&payload, "10.0.0.2:5001").is_ok() {
                    seq += 1;
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        start.elapsed()
    });

    // A second into the stream, the restart.
    std::thread::sleep(Duration::from_secs(1));
    let said = d.ok(&["restart"]);
    let took = source.join().expect("the source");
    sending.store(false, Ordering::Relaxed);
    let (got, dup) = sink.join().expect("the sink");
    let new_pid = daemon_pid(&d);
    d.follow(new_pid);
    let status = d.wait_exit(Duration::from_secs(10));
    eprintln!(
        "[takeover] {TOTAL} datagrams in {:.2} s ({:.0}/s): {got} received, {dup} duplicates; {said}",
        took.as_secs_f64(),
        TOTAL as f64 / took.as_secs_f64(),
    );
    for l in d
        .log()
        .lines()
        .filter(|l| l.contains("took over") || l.contains("handed"))
    {
        eprintln!("[takeover] {l}");
    }
    assert_ne!(new_pid, old_pid);
    assert!(
        said.contains(&format!("xvsd {new_pid} took over from {old_pid}")),
        "{said}"
    );
    assert_eq!(
        status.map(|s| s.success()),
        Some(true),
        "the old daemon exits 0 once it handed over:\n{}",
        d.log()
    );
    assert_eq!(
        (got, dup),
        (TOTAL, 0),
        "every datagram once across the restart:\n{}",
        d.log()
    );
    let new_prog = xdp_prog(&hv, "p1");
    assert!(
        !new_prog.is_empty() && new_prog != old_prog,
        "the new daemon's program replaced the old one on p1 ({old_prog} -> {new_prog})"
    );

    // The new daemon on its own: local and through the tunnel, and it
    // changes config as any daemon does.
    assert_eq!(vm1.ping("10.0.0.2", 2), 2, "{}", d.log());
    assert_eq!(vm1.ping("10.0.0.3", 2), 2, "{}", d.log());
    d.ok(&["mirror-add", "m1", "--src", "p1", "--to", "p2"]);
    d.ok(&["mirror-del", "m1"]);

    // A takeover refused by the new process once the sets came (as one
    // whose sets do not fit would be), before it touched a ring: it exits
    // 1 saying why, and the running daemon takes its sets back and
    // forwards as before.
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &hv.name])
        .arg(env!("CARGO_BIN_EXE_xvsd"))
        .arg("--socket")
        .arg(&d.socket)
        .arg("--state")
        .arg(&d.state)
        .arg("--takeover")
        .env("XVSD_TAKEOVER_REFUSE", "test")
        .output()
        .expect("run xvsd --takeover");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refused on request"), "{err}");
    assert_eq!(daemon_pid(&d), new_pid);
    assert_eq!(vm1.ping("10.0.0.2", 2), 2, "{}", d.log());
    assert!(
        d.log().contains("the new daemon refused the takeover"),
        "{}",
        d.log()
    );
    let (exited, log) = d.stop_successor();
    assert!(exited, "the new daemon stops on SIGTERM:\n{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
}
