//! The daemon as a process: a clear error and exit status 1 for an
//! invalid config, a missing interface and an XDP program that cannot be
//! attached; a clean SIGTERM shutdown that leaves no program attached;
//! and two workers serving two-queue interfaces (every queue bound).
//!
//! The error cases that fail before touching any interface run without
//! root; the rest need root (`xvs_tests::require`).

use std::path::Path;
use std::process::Command;

use xvs_tests::kvxlan::{kernel_vxlan, xvsd_config};
use xvs_tests::{iperf3, require_root, veth, veth_queues, Netns, Xvsd};

const XVSD: &str = env!("CARGO_BIN_EXE_xvsd");

/// Runs xvsd with `config` and `args` (in namespace `ns` if given) and
/// returns (exit code, stderr).
fn run_xvsd(ns: Option<&Netns>, config: &str, args: &[&str]) -> (Option<i32>, String) {
    let path = std::env::temp_dir().join(format!(
        "xvsd-daemon-test-{}-{}.toml",
        std::process::id(),
        config.len() + args.len()
    ));
    std::fs::write(&path, config).expect("write config");
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name, XVSD]);
            c
        }
        None => Command::new(XVSD),
    };
    // Every case here fails at start; still, never touch the default
    // socket or state file.
    let state = path.with_extension("state.json");
    let out = cmd
        .arg("--config")
        .arg(&path)
        .arg("--no-socket")
        .arg("--state")
        .arg(&state)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run xvsd");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&state);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_invalid_config_is_rejected_whole_with_every_problem_named() {
    let config = r#"
[[bridges]]
name = "br0"

[[ports]]
name = "p0"
bridge = "nosuch"

[[tunnels]]
name = "vx"
bridge = "br0"
kind = "vxlan"
vni = 16777216
remotes = ["192.0.2.2"]
"#;
    let (code, err) = run_xvsd(None, config, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("3 problem(s)"), "{err}");
    assert!(err.contains("nosuch"), "unknown bridge named: {err}");
    assert!(err.contains("16777216"), "VNI out of range named: {err}");
    let (code, err) = run_xvsd(None, config, &["--check"]);
    assert_eq!(code, Some(1), "{err}");
    let (code, err) = run_xvsd(None, "bridges = 3", &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bridges"), "TOML error says where: {err}");
}

#[test]
fn a_missing_interface_is_named_and_nothing_starts() {
    let config = r#"
[[bridges]]
name = "br0"

[[ports]]
name = "xvs-no-such-if"
bridge = "br0"
"#;
    let (code, err) = run_xvsd(None, config, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("\"xvs-no-such-if\" does not exist"),
        "the interface is named: {err}"
    );
}

#[test]
fn too_many_workers_for_the_queues_is_an_error() {
    if !require_root() {
        return;
    }
    let a = Netns::new("dqa");
    let b = Netns::new("dqb");
    veth(&a, "p0", "02:00:00:00:0c:01", &b, "v0", "02:00:00:00:0c:02");
    let config = "[[bridges]]\nname = \"br0\"\n\n[[ports]]\nname = \"p0\"\nbridge = \"br0\"\n";
    let (code, err) = run_xvsd(Some(&a), config, &["--workers", "2"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("p0 has 1 queue"), "{err}");
}

#[test]
fn xdp_that_cannot_attach_is_a_clear_error() {
    if !require_root() {
        return;
    }
    // A Linux bridge device has no native XDP: native mode fails.
    let ns = Netns::new("dxdp");
    ns.ip(&["link", "add", "d0", "type", "bridge"]);
    ns.ip(&["link", "set", "d0", "up"]);
    let config = "[[bridges]]\nname = \"br0\"\n\n[[ports]]\nname = \"d0\"\nbridge = \"br0\"\n";
    let (code, err) = run_xvsd(Some(&ns), config, &["--xdp-mode", "native"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("d0") && err.contains("attach"), "{err}");
    let link = ns.run("ip", &["link", "show", "d0"]);
    assert!(!link.contains("xdp"), "nothing left attached: {link}");
}

#[test]
fn two_workers_serve_every_queue_and_sigterm_detaches_everything() {
    if !require_root() {
        return;
    }
    // vm ── p0 [hv: xvsd, 2 workers] u0 ══ u1 [peer: kernel vxlan]
    let vm = Netns::new("dwvm");
    let hv = Netns::new("dwhv");
    let peer = Netns::new("dwpe");
    veth_queues(&vm, "eth0", &hv, "p0", 2);
    veth_queues(&hv, "u0", &peer, "u1", 2);
    vm.ip(&["link", "set", "eth0", "mtu", "1400"]);
    vm.ip(&["addr", "add", "10.0.0.1/24", "dev", "eth0"]);
    hv.ip(&["addr", "add", "192.0.2.1/24", "dev", "u0"]);
    peer.ip(&["addr", "add", "192.0.2.2/24", "dev", "u1"]);
    kernel_vxlan(
        &peer,
        "u1",
        "02:00:00:00:0b:01",
        "192.0.2.2",
        "192.0.2.1",
        "10.0.0.2/24",
    );
    let config = xvsd_config("192.0.2.1", "192.0.2.2");
    let d = Xvsd::start(Path::new(XVSD), &hv, &config, &["--workers", "2"]);
    let log = d.log();
    for (iface, q) in [("p0", 0), ("p0", 1), ("u0", 0), ("u0", 1)] {
        assert!(
            log.contains(&format!("socket bound iface={iface} queue={q}")),
            "{iface} queue {q} bound: {log}"
        );
    }
    vm.ping("10.0.0.2", 1);
    assert_eq!(vm.ping("10.0.0.2", 5), 5, "{}", d.log());
    let mbps = iperf3(&peer, &vm, "10.0.0.2", 2);
    assert!(mbps > 20.0, "{mbps}\n{}", d.log());
    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
    for w in 0..2 {
        assert!(log.contains(&format!("worker={w}")), "{log}");
    }
    for (ns, iface) in [(&hv, "p0"), (&hv, "u0")] {
        let link = ns.run("ip", &["link", "show", iface]);
        assert!(!link.contains("xdp"), "{iface} still has a program: {link}");
    }
}
