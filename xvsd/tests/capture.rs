//! `xvsctl capture` against a running xvsd: two VM namespaces on one
//! bridge; one pings the other while a capture of its port runs. The
//! pcapng file read back by tshark holds exactly the frames the ping
//! sent and got, in order, each marked in or out; a capture piped into
//! `tshark -r -` works the same; what cannot be captured is refused with
//! its reason, and a capture whose xvsctl dies is stopped by xvsd.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xvs_tests::require::{require_root, require_tool};
use xvs_tests::{veth, workspace_bin, Netns, Xvsd};

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
vni = 7
remotes = ["192.0.2.2"]
"#;

/// `xvsctl ARGS` against `d`, started (not waited for).
fn xvsctl(d: &Xvsd, args: &[&str]) -> Command {
    let mut c = Command::new(workspace_bin("xvsctl"));
    c.arg("--socket").arg(&d.socket).args(args);
    c
}

/// Waits (bounded) until xvsd logged `what` `n` times.
fn wait_log(d: &Xvsd, what: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.log().matches(what).count() < n {
        assert!(Instant::now() < deadline, "no {what:?} in:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// tshark's `type|seq|direction` lines of the ICMP echo frames in `file`.
fn echoes(file: &str) -> Vec<String> {
    let out = Command::new("tshark")
        .args([
            "-r",
            file,
            "-Y",
            "icmp",
            "-T",
            "fields",
            "-E",
            "separator=|",
        ])
        .args([
            "-e",
            "icmp.type",
            "-e",
            "icmp.seq",
            "-e",
            "frame.packet_flags_direction",
        ])
        .output()
        .expect("tshark -r");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_capture_holds_exactly_the_frames_of_a_port_in_order() {
    if !require_root() || !require_tool("tshark") {
        return;
    }
    let hv = Netns::new("cphv");
    let (vm1, vm2, peer) = (Netns::new("cpv1"), Netns::new("cpv2"), Netns::new("cppe"));
    for ns in [&vm1, &vm2] {
        // Only the test's own frames: no router solicitations or MLD.
        ns.no_ipv6_on_new_interfaces();
    }
    veth(
        &vm1,
        "vm0",
        "02:00:00:00:0e:01",
        &hv,
        "p1",
        "02:00:00:00:0e:11",
    );
    veth(
        &vm2,
        "vm0",
        "02:00:00:00:0e:02",
        &hv,
        "p2",
        "02:00:00:00:0e:12",
    );
    xvs_tests::underlay(&hv, &peer);
    vm1.ip(&["addr", "add", "10.0.0.1/24", "dev", "vm0"]);
    vm2.ip(&["addr", "add", "10.0.0.2/24", "dev", "vm0"]);
    let d = Xvsd::start(Path::new(env!("CARGO_BIN_EXE_xvsd")), &hv, CONFIG, &[]);
    assert_eq!(vm1.ping("10.0.0.2", 1), 1, "{}", d.log());

    // Into a file, both directions, four echoes: eight frames.
    let file = std::env::temp_dir().join(format!("xvs-capture-{}.pcapng", std::process::id()));
    let f = file.to_string_lossy().into_owned();
    let cap = xvsctl(&d, &["capture", "p1", "-c", "8", "-w", &f])
        .stderr(Stdio::piped())
        .spawn()
        .expect("xvsctl capture");
    wait_log(&d, "capture started", 1);
    assert_eq!(vm1.ping("10.0.0.2", 4), 4);
    let out = wait_bounded(cap, 20);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("8 frames written, 0 lost"), "{said}");
    let want: Vec<String> = (1..=4)
        .flat_map(|seq| [format!("8|{seq}|0x00000001"), format!("0|{seq}|0x00000002")])
        .collect();
    assert_eq!(echoes(&f), want, "requests in, replies out, in order");
    let _ = std::fs::remove_file(&file);

    // To stdout, through a pipe into tshark; only what leaves p1.
    let pipe = format!(
        "{} --socket {} capture p1 --direction out -c 3 -w - | tshark -r - -T fields -e icmp.type -e frame.len",
        workspace_bin("xvsctl").display(),
        d.socket.display()
    );
    let reader = Command::new("sh")
        .args(["-c", &pipe])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh");
    wait_log(&d, "capture started", 2);
    assert_eq!(vm1.ping("10.0.0.2", 3), 3);
    let out = wait_bounded(reader, 20);
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines, ["0\t98"; 3],
        "three echo replies of 98 bytes: {out:?}"
    );

    // What cannot be captured is refused, saying why.
    d.rejected(&["capture", "vx1", "-c", "1"], "capture the uplink");
    d.rejected(
        &["capture", "nope", "-c", "1"],
        "no port or uplink named \"nope\"",
    );
    // One at a time; a capture whose reader died stops by itself.
    let mut first = xvsctl(&d, &["capture", "p2", "-w", "/dev/null"])
        .spawn()
        .expect("xvsctl capture");
    wait_log(&d, "capture started", 3);
    d.rejected(&["capture", "p1", "-c", "1"], "runs already");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(first.id() as i32, libc::SIGKILL) };
    let _ = first.wait();
    wait_log(&d, "not read for 5 s", 1);
    // The uplink can be captured: a started capture there is fine.
    let up = xvsctl(
        &d,
        &["capture", "u0", "--duration", "0.3", "-w", "/dev/null"],
    )
    .stderr(Stdio::piped())
    .spawn()
    .expect("xvsctl capture");
    let out = wait_bounded(up, 20);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}

/// Waits for `child` for at most `secs` seconds (killed past that).
fn wait_bounded(mut child: std::process::Child, secs: u64) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("child output")
}
