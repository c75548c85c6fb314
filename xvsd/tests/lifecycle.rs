//! Interfaces coming and going under a running xvsd (issue 15, defects 1,
//! 5 and 6): a port's interface deleted while others forward, and
//! recreated; xvsd restarted while one is missing; the first port a
//! worker bound deleted and added again, many times; the uplink swapped
//! back and forth; a port's veth deleted and recreated 100 times under
//! traffic, with the UMEM accounting exact afterwards; a port's interface
//! renamed, moved to another namespace, set down and up, its MTU changed,
//! each under traffic, each leaving the other ports lossless and the UMEM
//! accounting as it was.
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

use std::time::{Duration, Instant};

use xvs_ctl::client::Client;
use xvs_ctl::protocol::{PortState, UmemRow};
use xvs_tests::kvxlan::kernel_vxlan;
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
        self.d.ok(args)
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
    std::thread::scope(|s| {
        let h = s.spawn(|| b.vm(1).ping_every(&vm_ip(4), 300, "0.01", 1));
        std::thread::sleep(Duration::from_millis(500));
        b.delete_port_if(4);
        h.join().expect("ping thread")
    });
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

/// (b2) The same with p4 moved to another namespace while xvsd was
/// down: xvsd starts, p4 waits as missing and the log says where an
/// interface of that name is; moved back, p4 is bound and forwards.
#[test]
fn a_restart_with_an_interface_in_another_namespace_waits_and_says_where() {
    if skip() {
        return;
    }
    let mut b = bed("lcb2", Some(PORTS));
    let other = Netns::new("lcb2o");
    assert!(b.reaches(1, 2), "{}", b.d.log());
    b.d.kill9();
    b.hv.ip(&["link", "set", "p4", "netns", &other.name]);
    b.d.restart_from_state();
    b.wait_state("p4", PortState::Missing);
    let log = b.d.log();
    assert!(
        log.contains(
            "configured interface missing: waiting for it (one of that name is in \
             network namespace"
        ) && log.contains(&format!("not in xvsd's ({:?})", b.hv.name)),
        "{log}"
    );
    assert!(b.reaches(1, 2), "{}", b.d.log());
    other.ip(&["link", "set", "p4", "netns", &b.hv.name]);
    b.hv.ip(&["link", "set", "p4", "up"]);
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
        kernel_vxlan(
            &peer,
            "pu",
            &format!("02:00:00:00:0b:{mac}"),
            &format!("{net}.2"),
            &format!("{net}.1"),
            &format!("{inner}/24"),
        );
        (peer, u, net, inner, mac)
    })
    .collect();
    b.vm(1).ip(&["link", "set", "eth0", "mtu", "1400"]);
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
    let before = b.settled();
    let started = Instant::now();
    std::thread::scope(|s| {
        let traffic = s.spawn(|| b.vm(1).ping_every(&vm_ip(2), 2000, "0.005", 1));
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
    b.umem_back_to(before);
}

/// Pings from vm 1 to vm 2 every 10 ms (`count` of them) while `event`
/// runs on this thread; returns how many were answered.
fn under_traffic(b: &Bed, count: u32, event: impl FnOnce()) -> u32 {
    std::thread::scope(|s| {
        let traffic = s.spawn(|| b.vm(1).ping_every(&vm_ip(2), count, "0.01", 1));
        // Let the stream start before the event.
        std::thread::sleep(Duration::from_millis(300));
        event();
        traffic.join().expect("traffic")
    })
}

impl Bed {
    /// Waits (at most 10 s) until the worker is idle again and its UMEM
    /// accounting is what it was in `before`: every chunk that p4's
    /// sockets held (fill and TX rings, frames in flight) is back.
    fn umem_back_to(&self, before: UmemRow) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut after = self.umem();
        while after != before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            after = self.umem();
        }
        assert_eq!(
            after.free + after.held + after.kernel,
            after.chunks,
            "{after:?}"
        );
        assert_eq!(after.kernel, after.fill + after.tx, "{after:?}");
        assert_eq!(after, before, "UMEM before and after");
    }

    /// Every port answers (after p4 came back) and the UMEM is idle.
    fn settled(&self) -> UmemRow {
        for (x, y) in [(1, 2), (1, 4), (2, 4)] {
            assert!(self.reaches(x, y), "{x} -> {y}: {}", self.d.log());
        }
        // Idle: completions reaped, fill rings topped up.
        std::thread::sleep(Duration::from_millis(500));
        let u = self.umem();
        assert_eq!(u.free + u.held + u.kernel, u.chunks, "{u:?}");
        u
    }

    /// While vm 1 pings vm 2 (500 pings, 10 ms apart) and vm 4 floods
    /// p4, `go` takes p4's interface away: p4 goes missing, xvsd stays
    /// up, p1 and p2 lose nothing; `back` returns it: p4 is up and
    /// forwards again by itself, and every UMEM chunk is accounted as
    /// before. `what` names the event in messages.
    fn away_and_back(&self, what: &str, go: impl FnOnce(), back: impl FnOnce()) {
        let before = self.settled();
        // `ip link` shows our program (which `back` may look for).
        let link = self.hv.run("ip", &["link", "show", "p4"]);
        assert!(link.contains("xdp"), "{link}");
        let answered = std::thread::scope(|s| {
            // Keeps p4's rings busy as it goes (frames on its TX ring and
            // in flight when its sockets are closed).
            let flood = s.spawn(|| self.vm(4).ping_every(&vm_ip(1), 200, "0.005", 1));
            let n = under_traffic(self, 500, || {
                go();
                self.wait_state("p4", PortState::Missing);
            });
            let _ = flood.join().expect("flood");
            n
        });
        assert_eq!(
            answered,
            500,
            "{what}: p1 -> p2 lost pings\n{}",
            self.d.log()
        );
        self.assert_alive();
        assert_eq!(self.state("p1"), Some(PortState::Up));
        assert_eq!(self.state("p2"), Some(PortState::Up));
        assert_eq!(self.vm(1).ping(&vm_ip(4), 2), 0, "{what}: p4 is gone");
        back();
        self.wait_state("p4", PortState::Up);
        assert!(self.reaches(4, 1), "{what}, then back: {}", self.d.log());
        assert_eq!(self.vm(4).ping_every(&vm_ip(2), 20, "0.05", 1), 20);
        self.umem_back_to(before);
    }
}

/// (f) p4 renamed under traffic: it is configured by name, so it is
/// missing while its interface has another name (and that interface is
/// no port); named p4 again, it is bound again and forwards.
#[test]
fn a_renamed_interface_is_missing_until_it_has_its_name_again() {
    if skip() {
        return;
    }
    let b = bed("lcf", Some(PORTS));
    // The kernel renames only interfaces that are down.
    let rename = |from: &str, to: &str| {
        b.hv.ip(&["link", "set", from, "down"]);
        b.hv.ip(&["link", "set", from, "name", to]);
        b.hv.ip(&["link", "set", to, "up"]);
    };
    b.away_and_back(
        "p4 renamed p4x",
        || rename("p4", "p4x"),
        || {
            // Nothing of ours stayed on it while it was p4x.
            let link = b.hv.run("ip", &["link", "show", "p4x"]);
            assert!(!link.contains("xdp"), "p4x kept a program: {link}");
            rename("p4x", "p4");
        },
    );
    let log = b.d.log();
    assert!(
        log.contains("interface renamed: port missing iface=p4 now=p4x"),
        "{log}"
    );
    assert!(log.contains("interface back"), "{log}");
    // Nothing of ours stayed on it while it was p4x: the way back found
    // no program to replace.
    assert!(!log.contains("stale"), "{log}");
}

/// (g) p4 moved to another namespace under traffic (the guest's tap
/// handed to a container, say): missing, the others undisturbed; moved
/// back, bound again and forwarding.
#[test]
fn an_interface_moved_to_another_namespace_is_missing_until_it_is_back() {
    if skip() {
        return;
    }
    let b = bed("lcg", Some(PORTS));
    let other = Netns::new("lcgo");
    b.away_and_back(
        "p4 moved to another namespace",
        || b.hv.ip(&["link", "set", "p4", "netns", &other.name]),
        || {
            // Our program left it over there (it would drop every frame).
            let link = other.run("ip", &["link", "show", "p4"]);
            assert!(!link.contains("xdp"), "p4 kept a program there: {link}");
            other.ip(&["link", "set", "p4", "netns", &b.hv.name]);
            b.hv.ip(&["link", "set", "p4", "up"]);
        },
    );
    let log = b.d.log();
    assert!(
        log.contains("interface moved to another network namespace")
            && log.contains(&format!("netns={}", other.name)),
        "{log}"
    );
    // Our program did not stay on it over there (it would have dropped
    // every frame there): the way back found none to replace.
    assert!(!log.contains("stale"), "{log}");
}

/// (h) p4 set down and up, and its MTU changed, under traffic: the
/// sockets stay bound (nothing to rebind), `stats` shows down while it
/// is, p1 and p2 lose nothing, and p4 forwards once up again, at its new
/// MTU too; every UMEM chunk accounted afterwards.
#[test]
fn down_up_and_an_mtu_change_keep_the_port_and_disturb_no_other() {
    if skip() {
        return;
    }
    let b = bed("lch", Some(PORTS));
    let before = b.settled();
    let answered = under_traffic(&b, 300, || {
        b.hv.ip(&["link", "set", "p4", "down"]);
        b.wait_state("p4", PortState::Down);
        assert_eq!(b.vm(1).ping(&vm_ip(4), 1), 0, "p4 is down");
        b.hv.ip(&["link", "set", "p4", "up"]);
        b.wait_state("p4", PortState::Up);
    });
    assert_eq!(answered, 300, "down/up: p1 -> p2 lost pings\n{}", b.d.log());
    assert!(b.reaches(1, 4), "p4 up again: {}", b.d.log());
    // MTU down to 1400 on both ends of p4's veth, then back to 1500,
    // each time with full-size pings to vm 4 (don't fragment).
    let answered = under_traffic(&b, 300, || {
        for mtu in ["1400", "1500"] {
            b.vm(4).ip(&["link", "set", "eth0", "mtu", mtu]);
            b.hv.ip(&["link", "set", "p4", "mtu", mtu]);
            let size = (mtu.parse::<u32>().unwrap() - 28).to_string();
            let out = b.vm(1).exec(
                "ping",
                &[
                    "-q",
                    "-c",
                    "5",
                    "-i",
                    "0.05",
                    "-W",
                    "1",
                    "-s",
                    &size,
                    "-M",
                    "do",
                    &vm_ip(4),
                ],
            );
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                text.contains(" 5 received"),
                "full-size pings at MTU {mtu}: {text}\n{}",
                b.d.log()
            );
        }
    });
    assert_eq!(
        answered,
        300,
        "MTU change: p1 -> p2 lost pings\n{}",
        b.d.log()
    );
    assert!(b.reaches(4, 1), "{}", b.d.log());
    let log = b.d.log();
    assert!(!log.contains("port missing"), "nothing was rebound: {log}");
    b.assert_alive();
    b.umem_back_to(before);
}
