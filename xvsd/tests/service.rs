//! xvsd as a systemd service runs it (packaging/xvsd.service): readiness
//! told on NOTIFY_SOCKET (`Type=notify`) once the sockets are bound, and
//! SIGHUP (`ExecReload`) reading the config file again, applied whole or
//! not at all, persisted, with running objects keeping their numbers.
//! No systemd needed: the test plays its part (a datagram socket at
//! NOTIFY_SOCKET, `kill -HUP`).
//!
//! Needs root (namespaces, XDP, AF_XDP).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use xvs_tests::kvxlan::{xvsd_config, Topology};
use xvs_tests::{require_root, veth, wait_for, Netns, Xvsd};

/// What systemd would read: the next notification, within 15 s.
fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification within 15 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn hup(d: &Xvsd) {
    let pid = d.pid().expect("running") as i32;
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
}

fn show(d: &Xvsd) -> Value {
    serde_json::from_str(&d.ok(&["--format", "json", "show"])).expect("show JSON")
}

fn number(cfg: &Value, port: &str) -> Option<u64> {
    cfg["ports"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == port)
        .and_then(|p| p["number"].as_u64())
}

#[test]
fn ready_reload_and_stop_are_told_and_a_reload_applies_whole_or_not_at_all() {
    if !require_root() {
        return;
    }
    let Topology {
        vm,
        hv,
        peer: _peer,
    } = Topology::new("sv");
    let vm2 = Netns::new("svv2");
    veth(
        &vm2,
        "vm0",
        "02:00:00:00:0a:11",
        &hv,
        "p1",
        "02:00:00:00:0a:12",
    );
    vm2.ip(&["addr", "add", "10.0.0.3/24", "dev", "vm0"]);
    vm2.ip(&["link", "set", "vm0", "mtu", "1400"]);

    let notify = std::env::temp_dir().join(format!("xvs-notify-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&notify);
    let sock = UnixDatagram::bind(&notify).expect("bind NOTIFY_SOCKET");
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let config = xvsd_config("192.0.2.1", "192.0.2.2");
    let d = Xvsd::start_with_env(
        Path::new(env!("CARGO_BIN_EXE_xvsd")),
        &hv,
        &config,
        &[],
        &[("NOTIFY_SOCKET", notify.to_str().unwrap())],
    );
    let ready = next(&sock);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(d.log().contains("xvsd running"), "ready after it runs");
    assert_eq!(vm.ping("10.0.0.2", 3), 3, "{}", d.log());
    let p0 = number(&show(&d), "p0").expect("p0 numbered");
    let file = d.config.clone().expect("started from a file");

    // A new port in the file: applied and persisted on SIGHUP; p0 keeps
    // its number, though the file lists p1 first.
    let with_p1 = config.replace(
        "[[ports]]\nname = \"p0\"",
        "[[ports]]\nname = \"p1\"\nbridge = \"br0\"\n\n[[ports]]\nname = \"p0\"",
    );
    assert_ne!(with_p1, config);
    std::fs::write(&file, &with_p1).unwrap();
    hup(&d);
    assert!(next(&sock).lines().any(|l| l == "RELOADING=1"));
    let after = next(&sock);
    assert!(after.lines().any(|l| l == "READY=1"), "{after:?}");
    let cfg = show(&d);
    assert_eq!(number(&cfg, "p0"), Some(p0), "{cfg}");
    assert!(number(&cfg, "p1").is_some(), "{cfg}\n{}", d.log());
    let state = std::fs::read_to_string(&d.state).expect("state file");
    assert!(state.contains("\"p1\""), "persisted: {state}");
    assert!(
        wait_for(Duration::from_secs(5), || vm2.ping("10.0.0.2", 1) == 1).is_some(),
        "p1 forwards: {}",
        d.log()
    );

    // A file that does not parse, and one naming an interface that is not
    // there: each refused whole, the running config as it was.
    for (bad, why) in [
        ("[[ports]\nname = ", "expected"),
        (
            &*with_p1.replace("name = \"p1\"", "name = \"svnope0\""),
            "port interface \"svnope0\"",
        ),
    ] {
        std::fs::write(&file, bad).unwrap();
        hup(&d);
        assert!(next(&sock).lines().any(|l| l == "RELOADING=1"));
        let back = next(&sock);
        assert!(
            back.contains("READY=1") && back.contains("refused"),
            "{back:?}"
        );
        assert!(
            wait_for(Duration::from_secs(5), || d.log().contains(why)).is_some(),
            "the log says why ({why}): {}",
            d.log()
        );
        assert_eq!(show(&d), cfg, "unchanged");
    }
    assert!(d
        .log()
        .contains("reload refused, the running config is unchanged"));
    assert_eq!(vm.ping("10.0.0.2", 3), 3, "still forwarding: {}", d.log());

    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    let bye = next(&sock);
    assert!(bye.lines().any(|l| l == "STOPPING=1"), "{bye:?}");
    let _ = std::fs::remove_file(&notify);
}

/// The capabilities packaging/xvsd.service leaves xvsd
/// (`CapabilityBoundingSet`), in setpriv's spelling: `+net_admin,...`.
fn unit_capabilities() -> String {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/xvsd.service"
    ))
    .expect("packaging/xvsd.service");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit bounds the capabilities");
    line.split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The capability numbers (linux/capability.h) of setpriv's `+name,...`.
fn cap_mask(caps: &str) -> u64 {
    caps.split(',')
        .map(|c| match c.trim_start_matches('+') {
            "net_admin" => 12,
            "net_raw" => 13,
            "ipc_lock" => 14,
            "sys_admin" => 21,
            "sys_nice" => 23,
            "sys_resource" => 24,
            "perfmon" => 38,
            "bpf" => 39,
            other => panic!("cap_mask: add CAP_{}'s number", other.to_uppercase()),
        })
        .fold(0, |m, bit| m | 1 << bit)
}

/// The CapBnd of a /proc/PID/status.
fn bounding(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|h| u64::from_str_radix(h.trim(), 16).expect("hex"))
        .expect("CapBnd")
}

/// xvsd under the unit's capability bounding set and NoNewPrivileges
/// (setpriv, as systemd would set them) attaches its programs, binds its
/// sockets and forwards, on the AF_XDP path and on the fast path: the
/// hardening leaves it what it needs.
#[test]
fn the_units_capabilities_are_enough_to_forward() {
    if !require_root() || !xvs_tests::require_tool("setpriv") {
        return;
    }
    let Topology {
        vm,
        hv,
        peer: _peer,
    } = Topology::new("sc");
    let caps = unit_capabilities();
    let wrapper = std::env::temp_dir().join(format!("xvsd-caps-{}.sh", std::process::id()));
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec setpriv --bounding-set -all,{caps} --inh-caps -all --no-new-privs -- {} \"$@\"\n",
            env!("CARGO_BIN_EXE_xvsd")
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for args in [&[][..], &["--fastpath"]] {
        let d = Xvsd::start(&wrapper, &hv, &xvsd_config("192.0.2.1", "192.0.2.2"), args);
        let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid().unwrap()))
            .expect("its /proc status");
        let ours = std::fs::read_to_string("/proc/self/status").unwrap();
        // What a bounding set can hold is at most what its parent has:
        // some machines of this kind run us without CAP_SYS_RESOURCE.
        let want = cap_mask(&caps) & bounding(&ours);
        assert_eq!(bounding(&status), want, "bounded to {caps}: {status}");
        assert_eq!(vm.ping("10.0.0.2", 3), 3, "{args:?}: {}", d.log());
        let (exit, log) = d.stop();
        assert!(exit.success(), "{args:?}: {log}");
    }
    let _ = std::fs::remove_file(&wrapper);
}
