//! Open vSwitch interop: xvsd and Open vSwitch's userspace (netdev)
//! datapath, an independent implementation, as the two VTEPs of one
//! virtual network. A VM namespace behind xvsd and one behind OVS ping
//! each other and run iperf3 TCP both ways, over Geneve (without and with
//! a Geneve option OVS has no tlv-map for) and over VXLAN; tshark on OVS's
//! underlay port checks that what xvsd puts on the wire is what the
//! protocol says.
//!
//! ```text
//! ns vmx: eth0 10.6N.0.1/24 ── veth ── ns hvx: px (xvsd port)
//!                                      xvsd: br = {px, tunnel VNI → 192.0.2.2}
//!                                      ux 192.0.2.1/24 (xvsd uplink; the kernel keeps the IP)
//!                                       └── veth ── ns hvo: uo ∈ br-phy (netdev bridge)
//!                                                   br-phy (internal tap) 192.0.2.2/24
//!                                                   br-int (netdev) = {po, tun0: geneve|vxlan
//!                                                           key=VNI remote_ip=192.0.2.1}
//! ns vmo: eth0 10.6N.0.2/24 ── veth ── ns hvo: po
//! ```
//!
//! OVS is set up as its userspace-tunneling guide says: the VTEP address
//! lives on the internal port of a second netdev bridge that holds the
//! underlay interface, so OVS's own route table (learned from the kernel
//! in hvo) and its ARP snooping on br-phy resolve the tunnel's next hop.
//! Every OVS port is a plain netdev-linux (AF_PACKET) port, not afxdp, so
//! nothing of xvsd's XDP machinery is on the OVS side.
//!
//! Each test runs its own ovsdb-server and ovs-vswitchd with their own
//! run, db and log directory, so the tests are independent and run in
//! parallel; only the throughput measurements take turns (two cores).
//! Needs root and Open vSwitch (`xvs_tests::require`: fails without it
//! under XVS_REQUIRE_ALL=1, skips loudly by hand). The
//! namespaces and daemons go away on drop (panics included) and every
//! wait is bounded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xvs_tests::{iperf3, require_file, require_root, require_tool, tshark, veth, Netns, Xvsd};

const OVS_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const XVSD_VTEP: &str = "192.0.2.1";
const OVS_VTEP: &str = "192.0.2.2";
const UX_MAC: &str = "02:00:00:00:01:01";
const UO_MAC: &str = "02:00:00:00:01:02";
const VM_MTU: &str = "1400";
/// Mbit/s each iperf3 direction must exceed: far below what the path does
/// (hundreds of Mbit/s in a debug build on a quiet machine; 42 was seen
/// with a CI run, two builds and a benchmark sharing the two cores), far
/// above a path that loses or corrupts most segments (a few Mbit/s).
/// Speed is the benchmarks' to judge, not this test's.
const MIN_MBPS: f64 = 10.0;

/// Two cores, shared: one iperf3 at a time measures the path, not the
/// other tests.
static THROUGHPUT: Mutex<()> = Mutex::new(());

/// Whether this machine can run the tests; says why not when it cannot.
fn can_run() -> bool {
    require_root()
        && [
            "ovs-vswitchd",
            "ovsdb-server",
            "ovsdb-tool",
            "ovs-vsctl",
            "ovs-appctl",
        ]
        .into_iter()
        .all(require_tool)
        && require_file(OVS_SCHEMA, "Debian's openvswitch-common")
}

/// One Open vSwitch: ovsdb-server (in the test's own namespace: it only
/// serves a unix socket) and ovs-vswitchd (in the OVS hypervisor
/// namespace), with every file under one directory. Drop kills both and
/// removes the directory.
#[derive(Debug)]
struct Ovs {
    dir: PathBuf,
    db: Option<Child>,
    vswitchd: Option<Child>,
}

impl Ovs {
    fn start(tag: &str, ns: &Netns) -> Ovs {
        // Short: the unix socket paths under it must fit in 108 bytes.
        let dir = std::env::temp_dir().join(format!("xvs-ovs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the OVS directory");
        let mut ovs = Ovs {
            dir,
            db: None,
            vswitchd: None,
        };
        let db = ovs.path("conf.db");
        let out = ovs
            .cmd("ovsdb-tool")
            .args(["create", &db, OVS_SCHEMA])
            .output()
            .expect("ovsdb-tool");
        assert!(
            out.status.success(),
            "ovsdb-tool create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let remote = format!("--remote=punix:{}", ovs.path("db.sock"));
        let ctl = format!("--unixctl={}", ovs.path("ovsdb-server.ctl"));
        let pid = format!("--pidfile={}", ovs.path("ovsdb-server.pid"));
        let log = format!("--log-file={}", ovs.path("ovsdb-server.log"));
        let child = ovs
            .cmd("ovsdb-server")
            .args([
                &db,
                &remote,
                &ctl,
                &pid,
                &log,
                "-vconsole:off",
                "-vsyslog:off",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ovsdb-server");
        ovs.db = Some(child);
        // The socket appears some time after the process does.
        ovs.wait_for("ovsdb-server", |o| {
            o.try_vsctl(&["--no-wait", "init"]).is_ok()
        });

        let ctl = format!("--unixctl={}", ovs.path("vswitchd.ctl"));
        let pid = format!("--pidfile={}", ovs.path("ovs-vswitchd.pid"));
        let log = format!("--log-file={}", ovs.path("ovs-vswitchd.log"));
        // `ip netns exec` execs ovs-vswitchd itself, so the child is the
        // daemon and killing it needs no pidfile.
        let child = ovs
            .cmd("ip")
            .args(["netns", "exec", &ns.name, "ovs-vswitchd"])
            .arg(format!("unix:{}", ovs.path("db.sock")))
            .args([&ctl, &pid, &log, "-vconsole:off", "-vsyslog:off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ovs-vswitchd");
        ovs.vswitchd = Some(child);
        ovs.wait_for("ovs-vswitchd", |o| o.try_appctl(&["version"]).is_ok());
        ovs
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    /// `program` with OVS's default directories pointed at ours, so
    /// nothing reads or writes the system's /var/run/openvswitch.
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            c.env(var, &self.dir);
        }
        c
    }

    /// Polls `ready` every 50 ms for up to 15 s; panics with the logs if a
    /// daemon exits or it never gets ready.
    fn wait_for(&mut self, what: &str, ready: impl Fn(&Ovs) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if ready(self) {
                return;
            }
            let exited =
                |c: &mut Option<Child>| c.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(s) = exited(&mut self.db) {
                panic!("ovsdb-server exited ({s}) while starting");
            }
            if let Some(s) = exited(&mut self.vswitchd) {
                panic!("ovs-vswitchd exited ({s}) while starting:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "{what} not ready in 15 s:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_vsctl(&self, args: &[&str]) -> Result<String, String> {
        // Without --no-wait, ovs-vsctl waits until ovs-vswitchd applied
        // the change; --timeout bounds that wait.
        let out = self
            .cmd("ovs-vsctl")
            .arg(format!("--db=unix:{}", self.path("db.sock")))
            .arg("--timeout=15")
            .args(args)
            .output()
            .expect("ovs-vsctl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn vsctl(&self, args: &[&str]) -> String {
        self.try_vsctl(args).unwrap_or_else(|e| {
            panic!("ovs-vsctl {args:?}: {e}\n{}", self.logs());
        })
    }

    fn try_appctl(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .cmd("ovs-appctl")
            .args(["--timeout=5", "-t", &self.path("vswitchd.ctl")])
            .args(args)
            .output()
            .expect("ovs-appctl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn appctl(&self, args: &[&str]) -> String {
        self.try_appctl(args)
            .unwrap_or_else(|e| panic!("ovs-appctl {args:?}: {e}"))
    }

    /// The last lines of ovs-vswitchd's log, for failure messages.
    fn logs(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("ovs-vswitchd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("--- ovs-vswitchd.log (tail) ---\n{tail}")
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        // ovs-vswitchd first: it would otherwise keep reconnecting to a
        // database that is gone.
        for child in [self.vswitchd.take(), self.db.take()].into_iter().flatten() {
            stop(child);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGTERM (OVS exits cleanly on it), SIGKILL after 5 s, then reap.
fn stop(mut child: Child) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Geneve,
    Vxlan,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Geneve => "geneve",
            Kind::Vxlan => "vxlan",
        }
    }

    fn udp_port(self) -> u64 {
        match self {
            Kind::Geneve => 6081,
            Kind::Vxlan => 4789,
        }
    }
}

/// One interop scenario: tunnel kind, VNI, xvsd's Geneve option (class,
/// type, data) if any, and the VM subnet `10.{net}.0.0/24`.
#[derive(Debug)]
struct Case {
    tag: &'static str,
    kind: Kind,
    vni: u32,
    option: Option<(u16, u8, &'static str)>,
    net: u8,
}

fn xvsd_config(c: &Case) -> String {
    let opts = match c.option {
        Some((class, typ, data)) => {
            format!("geneve_opts = [{{ class = {class:#06x}, type = {typ}, data = \"{data}\" }}]\n")
        }
        None => String::new(),
    };
    format!(
        r#"[uplink]
iface = "ux"
local_ips = ["{XVSD_VTEP}"]

[[bridges]]
name = "br"

[[ports]]
name = "px"
bridge = "br"

[[tunnels]]
name = "tun"
bridge = "br"
kind = "{kind}"
vni = {vni}
remotes = ["{OVS_VTEP}"]
{opts}"#,
        kind = c.kind.name(),
        vni = c.vni,
    )
}

/// A tshark field as a number: decimal, or hex with 0x.
fn num(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The `packets:N` of a datapath flow line.
fn flow_packets(flow: &str) -> u64 {
    flow.split("packets:")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Pings `dst` until one ping is answered, for up to 15 s: the first
/// packets wait for ARP on the overlay and on both VTEPs' underlay (OVS
/// drops a packet whose next hop it has not resolved yet).
fn warm_up(vm: &Netns, dst: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while vm.ping(dst, 1) == 0 {
        assert!(
            Instant::now() < deadline,
            "no ping from {} to {dst} answered in 15 s",
            vm.name
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn run(c: &Case) {
    if !can_run() {
        return;
    }
    let t0 = Instant::now();
    let vmx = Netns::new(&format!("{}-vmx", c.tag));
    let hvx = Netns::new(&format!("{}-hvx", c.tag));
    let hvo = Netns::new(&format!("{}-hvo", c.tag));
    let vmo = Netns::new(&format!("{}-vmo", c.tag));
    veth(
        &vmx,
        "eth0",
        "02:00:00:00:0a:01",
        &hvx,
        "px",
        "02:00:00:00:0a:02",
    );
    veth(
        &vmo,
        "eth0",
        "02:00:00:00:0b:01",
        &hvo,
        "po",
        "02:00:00:00:0b:02",
    );
    veth(&hvx, "ux", UX_MAC, &hvo, "uo", UO_MAC);
    let vmx_ip = format!("10.{}.0.1", c.net);
    let vmo_ip = format!("10.{}.0.2", c.net);
    for (vm, ip) in [(&vmx, &vmx_ip), (&vmo, &vmo_ip)] {
        vm.ip(&["link", "set", "eth0", "mtu", VM_MTU]);
        vm.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
    }
    // Open vSwitch 3.1's userspace datapath reads its ports with AF_PACKET
    // and no vnet header: a TSO frame from its VM (64 KiB, one skb) would
    // not fit its buffers, and it cannot segment into a tunnel (3.5 can).
    // So its VM sends MTU-sized segments; checksum offload stays on, and
    // OVS forwards those checksums as the VM left them: xvsd completes
    // them on decapsulation.
    vmo.no_segmentation_offload("eth0");
    // The kernel keeps xvsd's VTEP address: it answers ARP for it.
    hvx.ip(&["addr", "add", &format!("{XVSD_VTEP}/24"), "dev", "ux"]);

    let ovs = Ovs::start(c.tag, &hvo);
    #[rustfmt::skip]
    ovs.vsctl(&[
        "add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
        "--", "add-port", "br-phy", "uo",
        "--", "add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev",
        "--", "add-port", "br-int", "po",
        "--", "add-port", "br-int", "tun0", "--", "set", "interface", "tun0",
        &format!("type={}", c.kind.name()),
        &format!("options:remote_ip={XVSD_VTEP}"),
        &format!("options:key={}", c.vni),
    ]);
    hvo.ip(&["addr", "add", &format!("{OVS_VTEP}/24"), "dev", "br-phy"]);
    hvo.ip(&["link", "set", "br-phy", "up"]);
    // OVS routes tunnel packets with its own table, which it fills from
    // the kernel's notifications: wait until it knows the underlay.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ovs
        .appctl(&["ovs/route/show"])
        .contains("192.0.2.0/24 dev br-phy")
    {
        assert!(
            Instant::now() < deadline,
            "OVS did not learn the underlay route in 15 s:\n{}",
            ovs.appctl(&["ovs/route/show"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ovs_mac = hvo
        .run("cat", &["/sys/class/net/br-phy/address"])
        .trim()
        .to_owned();
    eprintln!(
        "[{}] OVS up ({:.1} s): tunnel ports {}",
        c.tag,
        t0.elapsed().as_secs_f64(),
        ovs.appctl(&["tnl/ports/show"]).replace('\n', " ")
    );

    let xvsd = Xvsd::start(
        Path::new(env!("CARGO_BIN_EXE_xvsd")),
        &hvx,
        &xvsd_config(c),
        &[],
    );

    warm_up(&vmx, &vmo_ip);
    let (lines, answered) = tshark(&hvo, "uo", c.kind.name(), &FIELDS, || {
        // tshark announces the capture a little before it sees packets:
        // without the pause the first echo request is sometimes missing.
        std::thread::sleep(Duration::from_millis(500));
        vmx.ping(&vmo_ip, 5)
    });
    eprintln!("[{}] ping {vmx_ip} -> {vmo_ip}: {answered}/5", c.tag);
    assert!(answered >= 4, "only {answered} of 5 pings answered");
    check_wire(c, &lines, &ovs_mac, answered);

    let (to_ovs, from_ovs) = {
        let _turn = THROUGHPUT.lock().unwrap_or_else(|p| p.into_inner());
        (
            iperf3(&vmo, &vmx, &vmo_ip, 3),
            iperf3(&vmx, &vmo, &vmx_ip, 3),
        )
    };
    eprintln!(
        "[{}] iperf3 TCP 3 s: xvsd -> OVS {to_ovs:.0} Mbit/s, OVS -> xvsd {from_ovs:.0} Mbit/s",
        c.tag
    );
    // How OVS matched what xvsd sent: with an option it has no tlv-map
    // for, `geneve({})` (options present, none it knows of).
    let flows = ovs.appctl(&["dpctl/dump-flows"]);
    let busiest = flows
        .lines()
        .filter(|l| l.starts_with("tunnel("))
        .max_by_key(|l| flow_packets(l));
    eprintln!("[{}] OVS's busiest tunnel flow: {busiest:?}", c.tag);
    assert!(to_ovs > MIN_MBPS, "xvsd -> OVS: {to_ovs:.1} Mbit/s");
    assert!(from_ovs > MIN_MBPS, "OVS -> xvsd: {from_ovs:.1} Mbit/s");

    let (status, log) = xvsd.stop();
    for l in log
        .lines()
        .filter(|l| l.contains("port=") && l.contains("rx=") || l.contains("drops by reason"))
    {
        eprintln!("[{}] xvsd: {l}", c.tag);
    }
    assert!(status.success(), "xvsd exited with {status}:\n{log}");
    eprintln!("[{}] done in {:.1} s", c.tag, t0.elapsed().as_secs_f64());
}

/// What tshark reports of each tunnel packet on OVS's underlay port.
#[rustfmt::skip]
const FIELDS: [&str; 15] = [
    "eth.src", "eth.dst", "ip.src", "ip.dst", "ip.checksum.status",
    "udp.dstport", "udp.checksum.status",
    "geneve.vni", "geneve.option.class", "geneve.option.type", "geneve.option.length",
    "geneve.option.unknown.data",
    "vxlan.vni", "vxlan.flag_i", "icmp.type",
];

/// One line of tshark output as field name -> first value. tshark
/// separates fields by tab or by the separator the helper asks for, and
/// repeated fields (outer and inner Ethernet and IP) by commas: the first
/// value is the outer header's.
fn fields(line: &str) -> HashMap<&'static str, &str> {
    let sep = if line.contains('\t') { '\t' } else { '|' };
    let values: Vec<&str> = line
        .split(sep)
        .map(|v| v.split(',').next().unwrap_or(""))
        .collect();
    assert_eq!(values.len(), FIELDS.len(), "tshark line {line:?}");
    FIELDS.into_iter().zip(values).collect()
}

/// Checks the encapsulated pings tshark saw on OVS's underlay port: every
/// packet xvsd sent has the protocol's UDP port, the VNI, the configured
/// Geneve option (or none), sound checksums and OVS's VTEP MAC, and OVS
/// sent its replies with the same VNI.
fn check_wire(c: &Case, lines: &[String], ovs_mac: &str, answered: u32) {
    let (mut requests, mut replies) = (0, 0);
    for line in lines {
        let p = fields(line);
        let vni = match c.kind {
            Kind::Geneve => p["geneve.vni"],
            Kind::Vxlan => p["vxlan.vni"],
        };
        assert_eq!(num(vni), Some(u64::from(c.vni)), "VNI of {line:?}");
        assert_eq!(
            num(p["udp.dstport"]),
            Some(c.kind.udp_port()),
            "UDP port of {line:?}"
        );
        // Echo requests and replies, but also whatever else the VMs send
        // (ARP, IPv6 neighbor discovery and MLD): every packet counts
        // for the format, only the pings for the numbers.
        let icmp = p["icmp.type"];
        if p["ip.src"] == OVS_VTEP {
            replies += u32::from(icmp == "0");
            continue;
        }
        assert_eq!(p["ip.src"], XVSD_VTEP, "{line:?}");
        assert_eq!(p["ip.dst"], OVS_VTEP, "{line:?}");
        requests += u32::from(icmp == "8");
        assert_eq!(p["eth.src"], UX_MAC, "outer source MAC of {line:?}");
        assert_eq!(p["eth.dst"], ovs_mac, "outer destination MAC of {line:?}");
        // 0 is "bad"; 1 (good) and 2 (not checked, or no UDP checksum
        // sent) are fine. OVS would drop a bad one without a word.
        assert_ne!(p["ip.checksum.status"], "0", "IP checksum of {line:?}");
        assert_ne!(p["udp.checksum.status"], "0", "UDP checksum of {line:?}");
        match (c.kind, c.option) {
            (Kind::Geneve, Some((class, typ, data))) => {
                let class_seen = num(p["geneve.option.class"]);
                assert_eq!(
                    class_seen,
                    Some(u64::from(class)),
                    "option class of {line:?}"
                );
                let type_seen = num(p["geneve.option.type"]);
                assert_eq!(type_seen, Some(u64::from(typ)), "option type of {line:?}");
                // tshark counts the option's own 4-byte header.
                let len = 4 + data.len() as u64 / 2;
                let len_seen = num(p["geneve.option.length"]);
                assert_eq!(len_seen, Some(len), "option length of {line:?}");
                let data_seen = p["geneve.option.unknown.data"].replace(':', "");
                assert_eq!(data_seen, data, "option data of {line:?}");
            }
            (Kind::Geneve, None) => {
                assert_eq!(p["geneve.option.class"], "", "an option in {line:?}");
            }
            (Kind::Vxlan, _) => {
                let i = p["vxlan.flag_i"];
                assert!(
                    i == "1" || i.eq_ignore_ascii_case("true"),
                    "I flag of {line:?}"
                );
            }
        }
    }
    eprintln!(
        "[{}] on the wire: {} {} packets, {requests} echo requests from xvsd, {replies} replies from OVS",
        c.tag,
        lines.len(),
        c.kind.name(),
    );
    let all = lines.join("\n");
    assert!(
        requests >= answered,
        "{requests} echo requests from xvsd:\n{all}"
    );
    assert!(
        replies >= answered,
        "{replies} echo replies from OVS:\n{all}"
    );
}

#[test]
fn geneve_without_options_interoperates_with_ovs() {
    run(&Case {
        tag: "ogn",
        kind: Kind::Geneve,
        vni: 200,
        option: None,
        net: 61,
    });
}

/// OVS has no tlv-map for class 0x0102 type 1; the option is not
/// critical, so OVS must ignore it and still deliver.
#[test]
fn geneve_with_a_non_critical_option_interoperates_with_ovs() {
    run(&Case {
        tag: "ogo",
        kind: Kind::Geneve,
        vni: 201,
        option: Some((0x0102, 1, "00000001")),
        net: 62,
    });
}

#[test]
fn vxlan_interoperates_with_ovs() {
    run(&Case {
        tag: "ovx",
        kind: Kind::Vxlan,
        vni: 100,
        option: None,
        net: 63,
    });
}
