//! Interfaces coming and going under a running xvsd (issue 15, defects 1,
//! 5 and 6): a port's interface deleted while others forward, and
//! recreated; xvsd restarted while one is missing; the first port a
//! worker bound deleted and added again, many times; the uplink swapped
//! back and forth; a port's veth deleted and recreated 100 times under
//! traffic, with the UMEM accounting exact afterwards.
//!
//! ```text
//! vm1 10.0.0.1 ─ p1 ┐
//! vm2 10.0.0.2 ─ p2 ├ br0   [hv: xvsd, one worker]   vx1 VNI 42 over the uplink
//! vm4 10.0.0.4 ─ p4 ┘        u0 192.0.2.1 ── peer pu0 192.0.2.2 (kernel vxlan 10.0.0.9)
//!                            u1 192.0.2.1 ── peer pu1 (the other uplink)
//! ```
//!
//! Needs root (`xvs_tests::require`). Namespaces and the daemon go away
//! on drop, panics included; every wait and traffic loop is bounded.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use xvs_ctl::client::Client;
use xvs_ctl::protocol::{PortState, UmemRow};
use xvs_tests::{require_root, veth, workspace_bin, Netns, Xvsd};

const PORTS: &str = r#"
[[bridges]]
name = "br0"

[[ports]]
name = "p1"
bridge = "br0"

[[ports]]
name = "p2"
bridge = "br0"

[[ports]]
name = "p4"
bridge = "br0"
"#;

struct Bed {
    tag: String,
    hv: Netns,
    vms: Vec<Netns>,
    d: Xvsd,
    xvsctl: PathBuf,
}

/// The VM namespace of port `n` (1, 2 or 4) and its address.
fn vm_ip(n: u8) -> String {
    format!("10.0.0.{n}")
}

/// (Re)creates port `p{n}`'s veth: `eth0` in `vm`, `p{n}` in `hv`.
fn port_veth(vm: &Netns, hv: &Netns, n: u8) {
    veth(
        vm,
        "eth0",
        &format!("02:00:00:00:0{n}:01"),
        hv,
        &format!("p{n}"),
        &format!("02:00:00:00:0{n}:02"),
    );
    vm.ip(&["addr", "add", &format!("{}/24", vm_ip(n)), "dev", "eth0"]);
}

fn bed(tag: &str, config: Option<&str>) -> Bed {
    let hv = Netns::new(&format!("{tag}hv"));
    hv.no_ipv6_on_new_interfaces();
    let vms: Vec<Netns> = [1u8, 2, 4]
        .iter()
        .map(|n| {
            let vm = Netns::new(&format!("{tag}v{n}"));
            vm.no_ipv6_on_new_interfaces();
            port_veth(&vm, &hv, *n);
            vm
        })
        .collect();
    let bin = workspace_bin("xvsd");
    let d = match config {
        Some(c) => Xvsd::start(&bin, &hv, c, &[]),
        None => Xvsd::start_empty(&bin, &hv, &[]),
    };
    Bed {
        tag: tag.into(),
        hv,
        vms,
        d,
        xvsctl: workspace_bin("xvsctl"),
    }
}

impl Bed {
    fn vm(&self, n: u8) -> &Netns {
        &self.vms[match n {
            1 => 0,
            2 => 1,
            _ => 2,
        }]
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.d.ctl(&self.xvsctl, args);
        assert_eq!(code, 0, "xvsctl {args:?}: {out}{err}\n{}", self.d.log());
        out
    }

    fn client(&self) -> Client {
        Client::connect(&self.d.socket, Duration::from_secs(10)).expect("connect")
    }

    fn state(&self, port: &str) -> Option<PortState> {
        let rows = self
            .client()
            .stats(Some(port.into()), false)
            .expect("stats");
        rows.first().and_then(|r| r.state)
    }

    /// Waits (at most 10 s) until `port` is in `want`.
    fn wait_state(&self, port: &str, want: PortState) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.state(port) != Some(want) {
            assert!(
                Instant::now() < deadline,
                "{port} not {want} in 10 s (is {:?}):\n{}",
                self.state(port),
                self.d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pings from vm `a` to vm `b` until one is answered (at most 10 s).
    fn reaches(&self, a: u8, b: u8) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.vm(a).ping(&vm_ip(b), 1) == 1 {
                return true;
            }
        }
        false
    }

    fn assert_alive(&self) {
        assert!(
            self.d.log().lines().all(|l| !l.contains("stopped:")),
            "xvsd stopped:\n{}",
            self.d.log()
        );
        self.ok(&["show"]);
    }

    /// Deletes port `n`'s veth (its VM loses it too).
    fn delete_port_if(&self, n: u8) {
        self.hv.ip(&["link", "del", &format!("p{n}")]);
    }

    fn umem(&self) -> UmemRow {
        let rows = self.client().worker_stats().expect("worker stats");
        rows[0].umem.expect("umem accounting")
    }
}

fn skip() -> bool {
    !require_root()
}

/// (a) Defect 1: a port's interface deleted while two others ping: they
/// keep forwarding, xvsd keeps running, the port shows missing; its
/// interface recreated, traffic resumes on it by itself.
#[test]
fn a_deleted_interface_is_that_ports_problem_and_comes_back_by_itself() {
    if skip() {
        return;
    }
    let b = bed("lca", Some(PORTS));
    assert!(b.reaches(1, 2), "{}", b.d.log());
    assert!(b.reaches(1, 4), "{}", b.d.log());
    // Traffic through every port while p4 goes: a flood ping to p4's VM
    // keeps p4's TX ring busy, which is what made the kick fail (ENXIO).
    let flood = std::thread::scope(|s| {
        let h = s.spawn(|| {
            b.vm(1)
                .exec("ping", &["-c", "300", "-i", "0.01", "-W", "1", &vm_ip(4)])
        });
        std::thread::sleep(Duration::from_millis(500));
        b.delete_port_if(4);
        h.join().expect("ping thread")
    });
    let _ = flood;
    b.wait_state("p4", PortState::Missing);
    b.assert_alive();
    assert!(b.reaches(1, 2), "{}", b.d.log());
    assert!(b.reaches(2, 1), "{}", b.d.log());
    assert_eq!(b.state("p1"), Some(PortState::Up));
    port_veth(b.vm(4), &b.hv, 4);
    b.wait_state("p4", PortState::Up);
    assert!(b.reaches(1, 4), "p4 back: {}", b.d.log());
    assert!(b.reaches(2, 1), "{}", b.d.log());
    assert!(b.d.log().contains("interface back"), "{}", b.d.log());
    let _ = b.tag;
}

/// (b) xvsd restarted from its state while a port's interface is
/// missing: it starts, reports it missing, binds it when it appears.
#[test]
fn a_restart_with_an_interface_missing_waits_for_it() {
    if skip() {
        return;
    }
    let mut b = bed("lcb", Some(PORTS));
    assert!(b.reaches(1, 2), "{}", b.d.log());
    b.d.kill9();
    b.delete_port_if(4);
    b.d.restart_from_state();
    b.wait_state("p4", PortState::Missing);
    assert!(b.reaches(1, 2), "{}", b.d.log());
    port_veth(b.vm(4), &b.hv, 4);
    b.wait_state("p4", PortState::Up);
    assert!(b.reaches(4, 1), "{}", b.d.log());
}

/// (c) Defect 5: the first port a worker bound, deleted and added again
/// 20 times (with del-port and with del-br), then traffic through it.
#[test]
fn the_first_port_bound_is_deleted_and_added_again_20_times() {
    if skip() {
        return;
    }
    let b = bed("lcc", None);
    b.ok(&[
        "add-br", "br0", "--", "add-port", "br0", "p1", "--", "add-port", "br0", "p2",
    ]);
    assert!(b.reaches(1, 2), "{}", b.d.log());
    for i in 0..20 {
        if i % 2 == 0 {
            b.ok(&["del-port", "p1"]);
            b.ok(&["add-port", "br0", "p1"]);
        } else {
            b.ok(&["del-br", "br0"]);
            b.ok(&[
                "add-br", "br0", "--", "add-port", "br0", "p1", "--", "add-port", "br0", "p2",
            ]);
        }
    }
    assert!(b.reaches(1, 2), "{}", b.d.log());
    assert!(b.reaches(2, 1), "{}", b.d.log());
    b.assert_alive();
}

/// (d) Defect 6: set-uplink A, B, A: tunnel receive works each time. A
/// kernel vxlan peer behind each uplink, on its own underlay subnet; the
/// tunnel lists both as remotes, and the uplink's local IP follows it.
#[test]
fn the_uplink_is_swapped_back_and_forth() {
    if skip() {
        return;
    }
    let b = bed("lcd", None);
    let peers: Vec<(Netns, &str, &str, &str, &str)> = [
        ("u0", "192.0.2", "10.0.0.9", "01"),
        ("u1", "198.51.100", "10.0.0.8", "03"),
    ]
    .into_iter()
    .map(|(u, net, inner, mac)| {
        let peer = Netns::new(&format!("lcdp{mac}"));
        peer.no_ipv6_on_new_interfaces();
        veth(
            &b.hv,
            u,
            &format!("02:00:00:00:00:{mac}"),
            &peer,
            "pu",
            &format!("02:00:00:00:01:{mac}"),
        );
        b.hv.ip(&["addr", "add", &format!("{net}.1/24"), "dev", u]);
        peer.ip(&["addr", "add", &format!("{net}.2/24"), "dev", "pu"]);
        #[rustfmt::skip]
        peer.ip(&[
            "link", "add", "vx0", "address", &format!("02:00:00:00:0b:{mac}"), "mtu", "1400",
            "type", "vxlan", "id", "42", "local", &format!("{net}.2"),
            "remote", &format!("{net}.1"), "dstport", "4789", "dev", "pu",
        ]);
        peer.ip(&["addr", "add", &format!("{inner}/24"), "dev", "vx0"]);
        peer.ip(&["link", "set", "vx0", "up"]);
        (peer, u, net, inner, mac)
    })
    .collect();
    b.vm(1).ip(&["link", "set", "eth0", "mtu", "1400"]);
    b.vm(1).no_tx_offload("eth0");
    b.ok(&["set-uplink", "u0", "--local-ip", "192.0.2.1"]);
    b.ok(&[
        "add-br",
        "br0",
        "--",
        "add-port",
        "br0",
        "p1",
        "--",
        "add-tunnel",
        "br0",
        "vx1",
        "--type",
        "vxlan",
        "--vni",
        "42",
        "--remote",
        "192.0.2.2",
        "--remote",
        "198.51.100.2",
    ]);
    for i in [0, 1, 0] {
        let (peer, u, net, inner, _) = &peers[i];
        b.ok(&["set-uplink", u, "--local-ip", &format!("{net}.1")]);
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut ok = false;
        while Instant::now() < deadline && !ok {
            ok = peer.ping("10.0.0.1", 1) == 1;
        }
        assert!(ok, "tunnel from {inner} through uplink {u}: {}", b.d.log());
    }
}

/// (e) A port's veth deleted and recreated 100 times under bounded
/// traffic on the others; afterwards every port forwards and every UMEM
/// chunk is back where it was.
#[test]
fn a_lifecycle_loop_leaves_every_port_forwarding_and_every_chunk_accounted() {
    if skip() {
        return;
    }
    let b = bed("lce", Some(PORTS));
    for (x, y) in [(1, 2), (1, 4), (2, 4)] {
        assert!(b.reaches(x, y), "{}", b.d.log());
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = b.umem();
    assert_eq!(
        before.free + before.held + before.kernel,
        before.chunks,
        "{before:?}"
    );
    let started = Instant::now();
    std::thread::scope(|s| {
        let traffic = s.spawn(|| {
            b.vm(1)
                .exec("ping", &["-c", "2000", "-i", "0.005", "-W", "1", &vm_ip(2)])
        });
        for _ in 0..100 {
            b.delete_port_if(4);
            port_veth(b.vm(4), &b.hv, 4);
        }
        traffic.join().expect("traffic");
    });
    assert!(started.elapsed() < Duration::from_secs(50), "loop too slow");
    b.assert_alive();
    b.wait_state("p4", PortState::Up);
    for (x, y) in [(1, 2), (1, 4), (2, 4), (4, 1)] {
        assert!(b.reaches(x, y), "{x} -> {y}: {}", b.d.log());
    }
    // Idle again: completions reaped, held frames expired, fill rings
    // topped up all the way.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = b.umem();
    while after != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = b.umem();
    }
    assert_eq!(
        after.free + after.held + after.kernel,
        after.chunks,
        "{after:?}"
    );
    assert_eq!(after.kernel, after.fill + after.tx, "{after:?}");
    assert_eq!(
        after.free, before.free,
        "before {before:?}, after {after:?}"
    );
}
