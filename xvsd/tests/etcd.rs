//! etcd discovery end to end: hypervisor namespaces, each with xvsd and
//! xvs-agent, on one underlay segment whose management end (a namespace
//! with the segment's bridge) runs etcd on 192.0.2.254 only. The xvsd
//! configs hold just the uplink, a bridge and the VM's port: every tunnel
//! remote, static MAC and overlay address comes from the agents.
//!
//! Proven here: three hosts find each other; a fourth joins by starting
//! its agent and is pingable from the other three within 2 s, nobody
//! else's config touched; a restarted xvsd (its file config back, the
//! agent's entries gone) is repaired by its agent; killing the fourth
//! agent with SIGKILL removes its entries everywhere once its lease
//! expires. Needs root and etcd-server (`xvs_tests::require`: fails without them
//! under XVS_REQUIRE_ALL=1, skips loudly by hand). Namespaces,
//! daemons, agents and etcd go away on drop; every wait is bounded.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xvs_tests::etcd::{require_etcd, wait_for, Agent, Etcd};
use xvs_tests::{require_root, veth, workspace_bin, Netns, Xvsd};

const TTL: u64 = 2;

/// The tests here time things (a join within 2 s, a move's losses):
/// one at a time, so that seven daemons of the other do not share the
/// two cores with them.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
const ETCD_IP: &str = "192.0.2.254";

fn vtep(n: u8) -> String {
    format!("192.0.2.{n}")
}
fn vm_mac(n: u8) -> String {
    format!("02:00:00:0{n}:0a:01")
}
fn vm_ip(n: u8) -> String {
    format!("10.1.0.{n}")
}

/// One hypervisor: its namespace, VM namespace, xvsd and (once started)
/// agent.
struct Hv {
    n: u8,
    ns: Netns,
    vm: Netns,
    xvsd: Xvsd,
    agent: Option<Agent>,
    /// The virts its agent registers: (MAC, IP, port).
    virts: Vec<(String, String, String)>,
}

/// None (test skipped, by `xvs_tests::require`) without root or etcd; else this test's turn
/// (held until it ends) and the paths of xvs-agent and xvsctl.
fn setup() -> Option<(std::sync::MutexGuard<'static, ()>, PathBuf, PathBuf)> {
    if !require_root() || !require_etcd() {
        return None;
    }
    let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Some((turn, workspace_bin("xvs-agent"), workspace_bin("xvsctl")))
}

/// The underlay segment (a bridge in namespace `TAGnet`) with etcd on
/// its management address.
fn underlay(tag: &str) -> (Netns, Etcd) {
    let net = Netns::new(&format!("{tag}net"));
    net.ip(&["link", "add", "br0", "type", "bridge"]);
    net.ip(&["link", "set", "br0", "up"]);
    net.ip(&["addr", "add", &format!("{ETCD_IP}/24"), "dev", "br0"]);
    let etcd = Etcd::start_at(Some(&net.name), ETCD_IP, 2379, 2380);
    (net, etcd)
}

fn hypervisor(tag: &str, net: &Netns, n: u8) -> Hv {
    hypervisor_with(tag, net, n, "")
}

/// [`hypervisor`] whose bridge has `bridge_opts` (TOML lines).
fn hypervisor_with(tag: &str, net: &Netns, n: u8, bridge_opts: &str) -> Hv {
    let ns = Netns::new(&format!("{tag}h{n}"));
    ns.no_ipv6_on_new_interfaces();
    let (u, b) = (format!("u{n}"), format!("b{n}"));
    veth(
        &ns,
        &u,
        &format!("02:00:00:00:0{n}:01"),
        net,
        &b,
        &format!("02:00:00:00:0{n}:02"),
    );
    net.ip(&["link", "set", &b, "master", "br0"]);
    ns.ip(&["addr", "add", &format!("{}/24", vtep(n)), "dev", &u]);
    let vm = Netns::new(&format!("{tag}v{n}"));
    vm.no_ipv6_on_new_interfaces();
    let port = format!("p{n}");
    veth(
        &vm,
        "eth0",
        &vm_mac(n),
        &ns,
        &port,
        &format!("02:00:00:0{n}:0a:02"),
    );
    vm.ip(&["link", "set", "eth0", "mtu", "1400"]);
    vm.ip(&["addr", "add", &format!("{}/24", vm_ip(n)), "dev", "eth0"]);
    let config = format!(
        r#"
[uplink]
iface = "{u}"
local_ips = ["{}"]

[[bridges]]
name = "blue"
{bridge_opts}

[[ports]]
name = "{port}"
bridge = "blue"
"#,
        vtep(n)
    );
    let xvsd = Xvsd::start(Path::new(env!("CARGO_BIN_EXE_xvsd")), &ns, &config, &[]);
    Hv {
        n,
        ns,
        vm,
        xvsd,
        agent: None,
        virts: vec![(vm_mac(n), vm_ip(n), port)],
    }
}

impl Hv {
    fn agent_config(&self, etcd: &Etcd) -> String {
        self.agent_config_with(etcd, &self.virts)
    }

    fn agent_config_with(&self, etcd: &Etcd, virts: &[(String, String, String)]) -> String {
        self.agent_config_full(etcd, virts, false)
    }

    fn agent_config_full(
        &self,
        etcd: &Etcd,
        virts: &[(String, String, String)],
        lookup: bool,
    ) -> String {
        let mut c = format!(
            r#"
etcd_endpoints = ["{}"]
name = "hv{n}"
underlay_ip = "{}"
lease_ttl_secs = {TTL}
resync_secs = 1
xvsd_socket = "{}"

[[nets]]
name = "blue"
vni = 100
bridge = "blue"
tunnel = "vx"
lookup = {lookup}
"#,
            etcd.endpoint(),
            vtep(self.n),
            self.xvsd.socket.display(),
            n = self.n,
        );
        for (mac, ip, port) in virts {
            c += &format!("[[nets.virts]]\nmac = \"{mac}\"\nip = \"{ip}\"\nport = \"{port}\"\n");
        }
        c
    }

    fn start_agent(&mut self, bin: &Path, etcd: &Etcd) {
        let cfg = self.agent_config(etcd);
        self.agent = Some(Agent::start(bin, Some(&self.ns.name), &cfg));
    }

    /// xvsd's running config as JSON text.
    fn show(&self, xvsctl: &Path) -> String {
        let (code, out, err) = self.xvsd.ctl(xvsctl, &["--format", "json", "show"]);
        assert_eq!(code, 0, "xvsctl show: {err}");
        out
    }

    fn logs(&self) -> String {
        format!(
            "== hv{} xvsd\n{}\n== hv{} agent\n{}",
            self.n,
            self.xvsd.log(),
            self.n,
            self.agent.as_ref().map(Agent::log).unwrap_or_default()
        )
    }
}

/// Pings `dst` from `vm` once a 0.2 s until one is answered or `limit`
/// passes; returns when the first answer came.
fn first_answer(vm: &Netns, dst: &str, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let out = vm.exec("ping", &["-c", "1", "-W", "0.3", dst]);
        if out.status.success() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn a_host_joins_by_starting_its_agent_and_leaves_with_its_lease() {
    let Some((_serial, agent_bin, xvsctl)) = setup() else {
        return;
    };
    let (net, mut etcd) = underlay("ed");
    let mut hvs: Vec<Hv> = (1..=3).map(|n| hypervisor("ed", &net, n)).collect();
    for hv in &mut hvs {
        hv.start_agent(&agent_bin, &etcd);
    }
    let logs = |hvs: &[Hv]| hvs.iter().map(Hv::logs).collect::<Vec<_>>().join("\n");
    for (a, b) in [(0, 1), (1, 2), (2, 0)] {
        let t = first_answer(&hvs[a].vm, &vm_ip(hvs[b].n), Duration::from_secs(15));
        assert!(t.is_some(), "vm{} -> vm{}\n{}", a + 1, b + 1, logs(&hvs));
    }
    assert_eq!(hvs[0].vm.ping(&vm_ip(2), 3), 3, "{}", logs(&hvs));

    // A fourth host: its xvsd, then its agent; nobody else is touched.
    let mut hv4 = hypervisor("ed", &net, 4);
    let started = Instant::now();
    hv4.start_agent(&agent_bin, &etcd);
    let times: Vec<Option<Duration>> = std::thread::scope(|s| {
        let joins: Vec<_> = hvs
            .iter()
            .map(|hv| {
                let vm = &hv.vm;
                s.spawn(move || {
                    first_answer(vm, &vm_ip(4), Duration::from_secs(10)).map(|_| started.elapsed())
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).collect()
    });
    eprintln!("hv4 answered vm1..vm3 after {times:?} (from starting its agent)");
    for (i, t) in times.iter().enumerate() {
        let t = t.unwrap_or_else(|| {
            panic!(
                "vm{} never reached vm4\n{}\n{}",
                i + 1,
                logs(&hvs),
                hv4.logs()
            )
        });
        assert!(
            t <= Duration::from_secs(2),
            "vm{} reached vm4 only after {t:?}",
            i + 1
        );
    }
    let shown = hvs[0].show(&xvsctl);
    for want in [vtep(4), vm_mac(4), vm_ip(4)] {
        assert!(shown.contains(&want), "hv1 lacks {want}: {shown}");
    }
    assert!(
        shown.contains("\"etcd\""),
        "addresses owned by etcd: {shown}"
    );

    // etcd restarted from an empty data dir: every agent registers again;
    // meanwhile and after, the hosts keep their entries, with no
    // duplicate and nothing stale.
    etcd.restart(true);
    let back = wait_for(Duration::from_secs(15), || {
        etcd.keys("/xvs/hosts/").len() == 4
    });
    eprintln!("all four registered again {back:?} after etcd came back empty");
    assert!(
        back.is_some(),
        "{:?}\n{}",
        etcd.keys("/xvs/hosts/"),
        logs(&hvs)
    );
    assert_eq!(hvs[2].vm.ping(&vm_ip(4), 3), 3, "{}", logs(&hvs));
    let flat: String = hvs[0].show(&xvsctl).split_whitespace().collect();
    assert!(
        flat.contains("\"remotes\":[\"192.0.2.2\",\"192.0.2.3\",\"192.0.2.4\"]"),
        "{flat}"
    );
    // One static entry and one address, no more.
    assert_eq!(flat.matches(&vm_mac(4)).count(), 2, "{flat}");

    // hv1's xvsd restarted from its file: the agent's entries are gone
    // until the agent puts them back (it re-checks every second).
    hvs[0].xvsd.restart();
    let t = first_answer(&hvs[0].vm, &vm_ip(2), Duration::from_secs(10));
    let t = t.unwrap_or_else(|| panic!("hv1 not repaired\n{}", hvs[0].logs()));
    eprintln!("hv1's xvsd repaired {t:?} after its restart");

    // hv4's agent dies without a word: its lease expires, and every other
    // host drops its VTEP, MAC and address.
    hv4.agent.as_mut().unwrap().kill9();
    let killed = Instant::now();
    let gone = wait_for(Duration::from_secs(TTL + 6), || {
        hvs.iter().all(|hv| {
            let s = hv.show(&xvsctl);
            !s.contains(&vtep(4)) && !s.contains(&vm_mac(4)) && !s.contains(&vm_ip(4))
        })
    });
    assert!(
        gone.is_some(),
        "hv4 still known after {:?}\n{}",
        killed.elapsed(),
        logs(&hvs)
    );
    eprintln!("hv4's entries gone everywhere {gone:?} after SIGKILL (TTL {TTL} s)");
    // The rest still talk.
    assert_eq!(hvs[1].vm.ping(&vm_ip(3), 3), 3, "{}", logs(&hvs));
}

const MOBILE_MAC: &str = "02:00:00:00:0b:01";
const MOBILE_IP: &str = "10.1.0.100";

/// Plugs the mobile VM's `eth0` into `hv` as port `port` (xvsctl
/// add-port): a fresh veth, the VM keeping its MAC and IP.
fn plug(mobile: &Netns, hv: &Hv, port: &str, xvsctl: &Path) {
    veth(
        mobile,
        "eth0",
        MOBILE_MAC,
        &hv.ns,
        port,
        "02:00:00:00:0b:02",
    );
    mobile.ip(&["link", "set", "eth0", "mtu", "1400"]);
    mobile.ip(&["addr", "add", &format!("{MOBILE_IP}/24"), "dev", "eth0"]);
    let (code, _, err) = hv.xvsd.ctl(xvsctl, &["add-port", "blue", port]);
    assert_eq!(code, 0, "add-port {port}: {err}");
}

/// Whether `hv`'s xvsd has the mobile MAC as a static entry to `remote`.
fn points_at(hv: &Hv, xvsctl: &Path, remote: &str) -> bool {
    let shown: String = hv.show(xvsctl).split_whitespace().collect();
    shown.contains(&format!(
        "\"mac\":\"{MOBILE_MAC}\",\"port\":\"vx\",\"remote\":\"{remote}\""
    ))
}

#[test]
fn a_virt_moved_between_hosts_by_editing_two_agent_files_keeps_a_ping_stream() {
    let Some((_serial, agent_bin, xvsctl)) = setup() else {
        return;
    };
    let (net, etcd) = underlay("em");
    let mut hvs: Vec<Hv> = (1..=3).map(|n| hypervisor("em", &net, n)).collect();
    let mobile = Netns::new("emmob");
    mobile.no_ipv6_on_new_interfaces();
    plug(&mobile, &hvs[1], "m2", &xvsctl);
    hvs[1]
        .virts
        .push((MOBILE_MAC.into(), MOBILE_IP.into(), "m2".into()));
    for hv in &mut hvs {
        hv.start_agent(&agent_bin, &etcd);
    }
    let logs = |hvs: &[Hv]| hvs.iter().map(Hv::logs).collect::<Vec<_>>().join("\n");
    let t = first_answer(&hvs[0].vm, MOBILE_IP, Duration::from_secs(15));
    assert!(t.is_some(), "vm1 -> mobile on hv2\n{}", logs(&hvs));
    assert!(points_at(&hvs[0], &xvsctl, &vtep(2)));

    // The two agents' files after the move.
    let mut on3 = hvs[2].virts.clone();
    on3.push((MOBILE_MAC.into(), MOBILE_IP.into(), "m3".into()));
    let cfg3 = hvs[2].agent_config_with(&etcd, &on3);
    let cfg2 = hvs[1].agent_config_with(&etcd, &hvs[1].virts[..1]);
    // 10 pings a second for 6 s; the move starts after 2 s.
    let (sent, received, took) = std::thread::scope(|s| {
        let vm1 = &hvs[0].vm;
        let stream = s.spawn(move || {
            let out = vm1.exec("ping", &["-c", "60", "-i", "0.1", "-W", "1", MOBILE_IP]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            // "60 packets transmitted, 57 received, 5% packet loss, ..."
            let summary = text
                .lines()
                .find(|l| l.contains("packets transmitted"))
                .unwrap_or_default();
            let num = |suffix: &str| -> u32 {
                summary
                    .split(',')
                    .map(str::trim)
                    .find(|p| p.contains(suffix))
                    .and_then(|p| p.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            };
            (num("transmitted"), num("received"))
        });
        std::thread::sleep(Duration::from_secs(2));
        let start = Instant::now();
        // Out of hv2: its port goes, and the VM's cable (its veth's
        // hypervisor end) moves to hv3, where it becomes port m3...
        let (code, _, err) = hvs[1].xvsd.ctl(&xvsctl, &["del-port", "m2"]);
        assert_eq!(code, 0, "del-port m2: {err}");
        hvs[1]
            .ns
            .ip(&["link", "set", "m2", "netns", &hvs[2].ns.name]);
        hvs[2].ns.ip(&["link", "set", "m2", "name", "m3"]);
        hvs[2].ns.ip(&["link", "set", "m3", "up"]);
        let (code, _, err) = hvs[2].xvsd.ctl(&xvsctl, &["add-port", "blue", "m3"]);
        assert_eq!(code, 0, "add-port m3: {err}");
        let plugged = start.elapsed();
        // ... then the two agents' files change.
        hvs[2].agent.as_ref().unwrap().rewrite(&cfg3);
        hvs[1].agent.as_ref().unwrap().rewrite(&cfg2);
        let edited = start.elapsed();
        let repointed = wait_for(Duration::from_secs(5), || {
            points_at(&hvs[0], &xvsctl, &vtep(3)) && points_at(&hvs[1], &xvsctl, &vtep(3))
        });
        eprintln!(
            "move: the VM was unplugged for {plugged:?}, edits done after {edited:?}; hv1 and hv2 repointed {repointed:?} after the edits"
        );
        assert!(
            repointed.is_some_and(|t| t <= Duration::from_secs(1)),
            "not repointed within 1 s: {repointed:?}\n{}",
            logs(&hvs)
        );
        let (sent, received) = stream.join().unwrap();
        (sent, received, plugged)
    });
    let lost = sent.saturating_sub(received);
    eprintln!(
        "ping stream across the move: {received}/{sent} answered, {lost} lost (VM unplugged for {took:?})"
    );
    assert!(sent >= 55, "ping sent only {sent}");
    // At most 3 lost to the control plane, besides one per 100 ms the
    // VM spent unplugged (xvsctl binding its new port on a loaded machine).
    let unplugged = (took.as_millis() / 100) as u32;
    assert!(lost <= 3 + unplugged, "{lost} lost\n{}", logs(&hvs));
    // Nothing points at hv2 for the mobile MAC any more, and hv3 holds
    // no static entry for it (it is local there).
    let shown3: String = hvs[2].show(&xvsctl).split_whitespace().collect();
    assert!(
        !shown3.contains(&format!("\"mac\":\"{MOBILE_MAC}\",\"port\":\"vx\"")),
        "{shown3}"
    );
}

#[test]
fn lazy_nets_install_only_what_xvsd_asks_for() {
    let Some((_serial, agent_bin, xvsctl)) = setup() else {
        return;
    };
    let (net, etcd) = underlay("el");
    // varpd's strict mode: no learning, unknown destinations dropped
    // while the lookup runs, ARP answered from the address table; remote
    // MACs and addresses come only from the agents' answers, local ones
    // are pinned to their ports by the agents.
    let opts = "learning = false\narp_suppress = true\nlookup = { provider = { kind = \"external\" }, miss = \"drop\" }";
    let mut hvs: Vec<Hv> = (1..=3)
        .map(|n| hypervisor_with("el", &net, n, opts))
        .collect();
    for hv in &mut hvs {
        let cfg = hv.agent_config_full(&etcd, &hv.virts, true);
        hv.agent = Some(Agent::start(&agent_bin, Some(&hv.ns.name), &cfg));
    }
    let logs = |hvs: &[Hv]| hvs.iter().map(Hv::logs).collect::<Vec<_>>().join("\n");
    let t = first_answer(&hvs[0].vm, &vm_ip(2), Duration::from_secs(10));
    eprintln!("vm1 -> vm2 answered {t:?} after the first try (each miss costs one retry)");
    assert!(t.is_some(), "vm1 -> vm2\n{}", logs(&hvs));
    // hv1 was asked about vm2 only: its MAC and address are there, vm3's
    // are not, though hv3 is registered (and in the flood list).
    let shown = hvs[0].show(&xvsctl);
    assert!(
        shown.contains(&vm_mac(2)) && shown.contains(&vm_ip(2)),
        "{shown}"
    );
    assert!(
        !shown.contains(&vm_mac(3)) && !shown.contains(&vm_ip(3)),
        "{shown}"
    );
    assert!(shown.contains(&vtep(3)), "hv3 in the flood list: {shown}");
    // Asking for vm3 installs it.
    let t = first_answer(&hvs[0].vm, &vm_ip(3), Duration::from_secs(10));
    assert!(t.is_some(), "vm1 -> vm3\n{}", logs(&hvs));
    assert!(hvs[0].show(&xvsctl).contains(&vm_mac(3)));
    // What was asked for stays current: hv3 leaves (SIGTERM revokes its
    // lease) and its entries go from hv1 at once.
    let status = hvs[2].agent.as_mut().unwrap().stop();
    assert!(status.is_some_and(|s| s.success()));
    let gone = wait_for(Duration::from_secs(2), || {
        let s = hvs[0].show(&xvsctl);
        !s.contains(&vm_mac(3)) && !s.contains(&vm_ip(3))
    });
    eprintln!("hv3's entries gone from hv1 {gone:?} after its agent's SIGTERM");
    assert!(gone.is_some(), "{}", logs(&hvs));
    assert_eq!(hvs[0].vm.ping(&vm_ip(2), 3), 3, "{}", logs(&hvs));
}

/// A host record as another host's agent would publish it: in net blue
/// (VNI 100) with one virt.
fn record(underlay: &str, mac: &str, ip: &str) -> String {
    format!(
        r#"{{"underlay_ip":"{underlay}","nets":[{{"name":"blue","vni":100,"virts":[{{"mac":"{mac}","ip":"{ip}"}}]}}]}}"#
    )
}

#[test]
fn hosts_publishing_what_xvsd_refuses_are_left_out_and_the_others_still_meet() {
    let Some((_serial, agent_bin, xvsctl)) = setup() else {
        return;
    };
    let (net, etcd) = underlay("eb");
    // Three records xvsd would refuse, there before any agent starts (no
    // lease: they stay): each alone used to make every agent's whole
    // transaction fail.
    let bad = [
        ("hv7", record("127.0.0.7", "02:00:00:07:0a:01", "10.1.0.7")),
        (
            "hv8",
            record("2001:db8::8", "02:00:00:08:0a:01", "10.1.0.8"),
        ),
        ("hv9", record("192.0.2.9", "01:00:5e:00:00:09", "10.1.0.9")),
    ];
    for (name, value) in &bad {
        let (ok, out) = etcd.ctl(&["put", &format!("/xvs/hosts/{name}"), value]);
        assert!(ok, "etcdctl put {name}: {out}\n{}", etcd.log());
    }
    let mut hvs: Vec<Hv> = (1..=2).map(|n| hypervisor("eb", &net, n)).collect();
    for hv in &mut hvs {
        hv.start_agent(&agent_bin, &etcd);
    }
    let logs = |hvs: &[Hv]| hvs.iter().map(Hv::logs).collect::<Vec<_>>().join("\n");
    for (a, b) in [(0, 1), (1, 0)] {
        let t = first_answer(&hvs[a].vm, &vm_ip(hvs[b].n), Duration::from_secs(15));
        assert!(t.is_some(), "vm{} -> vm{}\n{}", a + 1, b + 1, logs(&hvs));
    }
    // Several reconciles later (every second): each bad record was said
    // and counted once, and nothing of it reached xvsd.
    std::thread::sleep(Duration::from_secs(3));
    for hv in &hvs {
        let log = hv.agent.as_ref().map(Agent::log).unwrap_or_default();
        for (name, _) in &bad {
            let said = log
                .lines()
                .filter(|l| l.contains("host registration left out") && l.contains(name))
                .count();
            assert_eq!(said, 1, "hv{}: {name} said {said} times\n{log}", hv.n);
        }
        assert!(log.contains("refused_total=3"), "{log}");
        assert!(!log.contains("refused_total=4"), "{log}");
        let shown = hv.show(&xvsctl);
        for s in ["127.0.0.7", "2001:db8::8", "01:00:5e:00:00:09", "10.1.0.9"] {
            assert!(!shown.contains(s), "hv{} holds {s}: {shown}", hv.n);
        }
        let other = vtep(3 - hv.n);
        assert!(shown.contains(&other), "hv{} lacks {other}: {shown}", hv.n);
    }
    assert_eq!(hvs[0].vm.ping(&vm_ip(2), 3), 3, "{}", logs(&hvs));

    // hv9 mends its record: taken at once.
    let good = record("192.0.2.9", "02:00:00:09:0a:01", "10.1.0.9");
    let (ok, out) = etcd.ctl(&["put", "/xvs/hosts/hv9", &good]);
    assert!(ok, "{out}");
    let taken = wait_for(Duration::from_secs(5), || {
        hvs.iter().all(|hv| {
            let s = hv.show(&xvsctl);
            s.contains("192.0.2.9") && s.contains("02:00:00:09:0a:01")
        })
    });
    assert!(taken.is_some(), "{}", logs(&hvs));
    assert_eq!(hvs[1].vm.ping(&vm_ip(1), 3), 3, "{}", logs(&hvs));
}
