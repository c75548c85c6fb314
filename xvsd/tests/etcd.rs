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
//! expires. Needs root and etcd-server; skipped otherwise. Namespaces,
//! daemons, agents and etcd go away on drop; every wait is bounded.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xvs_tests::etcd::{etcd_available, wait_for, Agent, Etcd};
use xvs_tests::{is_root, veth, workspace_bin, Netns, Xvsd};

const TTL: u64 = 2;
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
}

fn hypervisor(net: &Netns, n: u8) -> Hv {
    let ns = Netns::new(&format!("edh{n}"));
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
    let vm = Netns::new(&format!("edv{n}"));
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
    }
}

impl Hv {
    fn agent_config(&self, etcd: &Etcd) -> String {
        format!(
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

[[nets.virts]]
mac = "{}"
ip = "{}"
port = "p{n}"
"#,
            etcd.endpoint(),
            vtep(self.n),
            self.xvsd.socket.display(),
            vm_mac(self.n),
            vm_ip(self.n),
            n = self.n,
        )
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
    if !is_root() || !etcd_available() {
        eprintln!("skipped: needs root (namespaces, BPF, AF_XDP) and etcd-server");
        return;
    }
    let agent_bin: PathBuf = workspace_bin("xvs-agent");
    let xvsctl: PathBuf = workspace_bin("xvsctl");
    // The underlay segment, with etcd on its management address.
    let net = Netns::new("ednet");
    net.ip(&["link", "add", "br0", "type", "bridge"]);
    net.ip(&["link", "set", "br0", "up"]);
    net.ip(&["addr", "add", &format!("{ETCD_IP}/24"), "dev", "br0"]);
    let etcd = Etcd::start_at(Some(&net.name), ETCD_IP, 2379, 2380);

    let mut hvs: Vec<Hv> = (1..=3).map(|n| hypervisor(&net, n)).collect();
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
    let mut hv4 = hypervisor(&net, 4);
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
