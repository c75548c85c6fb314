//! BUM replication at width: one xvsd, one bridge with 32 local ports and
//! a VXLAN tunnel port of 64 remote VTEPs, all on one worker (33 AF_XDP
//! sockets sharing one UMEM). One broadcast ARP request from one port
//! must reach each of the 64 remotes and each of the 31 other ports
//! exactly once, with no `no_buffer` drop (issue 15, defect 2: a batch
//! was offered 8 spare buffers, and a worker with a dozen sockets lent
//! its whole UMEM to fill rings, leaving none for replicas).
//!
//! ```text
//! vm: eth0..eth31 ─ p0..p31 ┐
//!                           hv: xvsd ═ u0 ═ n0 (peer: counts VXLAN by
//!                                            outer destination)
//! ```
//!
//! The remotes are 192.0.2.64-127, all reached through the peer's one
//! interface (permanent neighbour entries in the hypervisor): the peer
//! needs no address, and counting the encapsulated frames by outer
//! destination on its interface is the proof. Frames are counted with an
//! AF_PACKET socket in each namespace (ingress only), matched by the
//! request's target address so nothing else on the wire is counted.
//!
//! Needs root (`xvs_tests::require_root`); namespaces and the daemon go
//! away on drop, panics included; every wait is bounded.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use xvs_tests::{on_thread, require_root, veth, workspace_bin, Netns, Xvsd};

const PORTS: usize = 32;
const REMOTES: usize = 64;
/// The address the one ARP request asks for (nobody has it).
const TARGET: [u8; 4] = [10, 77, 0, 99];
const PEER_MAC: &str = "02:00:00:00:00:09";

/// An AF_PACKET socket on every interface of a namespace, made there.
struct Tap(OwnedFd);

impl Tap {
    fn open(ns: &Netns) -> Tap {
        on_thread(|| {
            ns.enter();
            let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
            // SAFETY: plain socket(2); the fd is owned below.
            let fd = unsafe {
                libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, proto)
            };
            assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
            // SAFETY: `fd` was just made and is owned by nothing else.
            let tap = Tap(unsafe { OwnedFd::from_raw_fd(fd) });
            let size: libc::c_int = 8 << 20;
            // SAFETY: the option value is a c_int that outlives the call.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&size as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            tap
        })
    }

    /// Every frame received (not sent) until `quiet` passes without one,
    /// at most `max` in all: (ifindex, bytes).
    fn drain(&self, quiet: Duration, max: Duration) -> Vec<(i32, Vec<u8>)> {
        let mut out = Vec::new();
        let end = Instant::now() + max;
        let mut last = Instant::now();
        let mut buf = vec![0u8; 65536];
        while Instant::now() < end && last.elapsed() < quiet {
            // SAFETY: an all-zero sockaddr_ll is valid.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` and `sll` outlive the call; their sizes are given.
            let n = unsafe {
                libc::recvfrom(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut sll as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            last = Instant::now();
            if sll.sll_pkttype != libc::PACKET_OUTGOING {
                out.push((sll.sll_ifindex, buf[..n as usize].to_vec()));
            }
        }
        out
    }
}

/// Whether `f` (from its Ethernet header) is an ARP request for TARGET.
fn is_our_request(f: &[u8]) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 1] && f[38..42] == TARGET
}

/// The outer IPv4 destination of a VXLAN frame carrying our request.
fn vxlan_dst(f: &[u8]) -> Option<[u8; 4]> {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] || f[23] != 17 {
        return None;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let udp = 14 + ihl;
    let port = u16::from_be_bytes([*f.get(udp + 2)?, *f.get(udp + 3)?]);
    let inner = f.get(udp + 16..)?;
    (port == 4789 && is_our_request(inner)).then(|| [f[30], f[31], f[32], f[33]])
}

fn remote(i: usize) -> String {
    format!("192.0.2.{}", 64 + i)
}

fn ifindex(ns: &Netns, iface: &str) -> i32 {
    ns.run("cat", &[&format!("/sys/class/net/{iface}/ifindex")])
        .trim()
        .parse()
        .expect("ifindex")
}

/// The daemon (dropped first), the VM namespace with eth0..eth31 and the
/// peer behind the uplink.
struct Bed {
    xvsd: Xvsd,
    vm: Netns,
    peer: Netns,
    _hv: Netns,
}

/// The bed; the ports are in the starting config when `ports_in_config`,
/// else added afterwards one transaction each (`xvsctl add-port`).
fn bed(tag: &str, ports_in_config: bool) -> Bed {
    let hv = Netns::new(&format!("{tag}h"));
    let vm = Netns::new(&format!("{tag}v"));
    let peer = Netns::new(&format!("{tag}p"));
    for ns in [&hv, &vm, &peer] {
        ns.no_ipv6_on_new_interfaces();
    }
    veth(&hv, "u0", "02:00:00:00:00:01", &peer, "n0", PEER_MAC);
    hv.ip(&["addr", "add", "192.0.2.1/24", "dev", "u0"]);
    for i in 0..REMOTES {
        #[rustfmt::skip]
        hv.ip(&["neigh", "replace", &remote(i), "lladdr", PEER_MAC, "dev", "u0", "nud", "permanent"]);
    }
    for p in 0..PORTS {
        veth(
            &vm,
            &format!("eth{p}"),
            &format!("02:00:00:01:00:{p:02x}"),
            &hv,
            &format!("p{p}"),
            &format!("02:00:00:02:00:{p:02x}"),
        );
        vm.ip(&[
            "addr",
            "add",
            &format!("10.77.0.{}/24", 100 + p),
            "dev",
            &format!("eth{p}"),
        ]);
    }

    let remotes: Vec<String> = (0..REMOTES).map(|i| format!("\"{}\"", remote(i))).collect();
    let mut config = format!(
        r#"
[uplink]
iface = "u0"
local_ips = ["192.0.2.1"]

[[bridges]]
name = "blue"

[[tunnels]]
name = "vx"
bridge = "blue"
kind = "vxlan"
vni = 100
remotes = [{}]
"#,
        remotes.join(", ")
    );
    if ports_in_config {
        for p in 0..PORTS {
            config += &format!("\n[[ports]]\nname = \"p{p}\"\nbridge = \"blue\"\n");
        }
    }
    let xvsd = Xvsd::start(
        Path::new(env!("CARGO_BIN_EXE_xvsd")),
        &hv,
        &config,
        &["--workers", "1"],
    );
    if !ports_in_config {
        for p in 0..PORTS {
            let name = format!("p{p}");
            let (code, out, err) = xvsd.ctl(&workspace_bin("xvsctl"), &["add-port", "blue", &name]);
            assert_eq!(code, 0, "add-port {name}: {out}{err}\n{}", xvsd.log());
        }
    }
    Bed {
        xvsd,
        vm,
        peer,
        _hv: hv,
    }
}

/// One broadcast ARP request from `eth{from}` reaches every other port
/// and every remote exactly once, with no `no_buffer` drop.
fn one_broadcast_reaches_everyone(b: &Bed, from: usize) {
    let vm_tap = Tap::open(&b.vm);
    let peer_tap = Tap::open(&b.peer);
    // Whatever the interfaces said while coming up is not counted.
    vm_tap.drain(Duration::from_millis(300), Duration::from_secs(3));
    peer_tap.drain(Duration::from_millis(300), Duration::from_secs(3));

    let src = format!("eth{from}");
    let out =
        b.vm.exec("arping", &["-c", "1", "-w", "1", "-I", &src, "10.77.0.99"]);
    eprintln!("arping: {}", String::from_utf8_lossy(&out.stdout));

    let quiet = Duration::from_secs(1);
    let mut at_port: BTreeMap<i32, usize> = BTreeMap::new();
    for (ifi, f) in vm_tap.drain(quiet, Duration::from_secs(10)) {
        if is_our_request(&f) {
            *at_port.entry(ifi).or_default() += 1;
        }
    }
    let mut at_remote: BTreeMap<[u8; 4], usize> = BTreeMap::new();
    for (_, f) in peer_tap.drain(quiet, Duration::from_secs(10)) {
        if let Some(d) = vxlan_dst(&f) {
            *at_remote.entry(d).or_default() += 1;
        }
    }

    let xvsctl = workspace_bin("xvsctl");
    let (_, stats, _) = b.xvsd.ctl(&xvsctl, &["stats"]);
    let (_, workers, _) = b.xvsd.ctl(&xvsctl, &["worker-stats"]);
    let ctx = format!("stats:\n{stats}\nworker-stats:\n{workers}");
    let no_buffer = b.xvsd.drops("no_buffer");
    assert_eq!(no_buffer, 0, "no_buffer drops\n{ctx}");

    let sender = ifindex(&b.vm, &src);
    assert_eq!(at_port.get(&sender), None, "not back to the sender\n{ctx}");
    let mut missing = Vec::new();
    for p in (0..PORTS).filter(|&p| p != from) {
        let name = format!("eth{p}");
        let n = at_port.get(&ifindex(&b.vm, &name)).copied().unwrap_or(0);
        if n != 1 {
            missing.push(format!("{name}: {n}"));
        }
    }
    assert!(
        missing.is_empty(),
        "ports not reached exactly once: {missing:?}\n{ctx}"
    );
    let mut missing = Vec::new();
    for i in 0..REMOTES {
        let r = remote(i);
        let ip: std::net::Ipv4Addr = r.parse().expect("address");
        let n = at_remote.get(&ip.octets()).copied().unwrap_or(0);
        if n != 1 {
            missing.push(format!("{r}: {n}"));
        }
    }
    assert!(
        missing.is_empty(),
        "remotes not reached exactly once: {missing:?}\n{ctx}"
    );
    assert_eq!(
        at_remote.len(),
        REMOTES,
        "only the configured remotes: {at_remote:?}"
    );
    eprintln!("{ctx}");
}

#[test]
fn one_broadcast_reaches_64_remotes_and_31_ports_once_each() {
    if !require_root() {
        return;
    }
    let b = bed("fl", true);
    one_broadcast_reaches_everyone(&b, 0);
    let (status, log) = b.xvsd.stop();
    assert!(status.success(), "xvsd exit: {status}\n{log}");
}

/// Sockets bound one transaction at a time: the first ones filled their
/// rings under the targets of their time, which later sockets cannot
/// take back. Replicas still find their reserve, and the last port bound
/// still has a fill ring to send from.
#[test]
fn ports_added_one_at_a_time_still_flood_from_the_last() {
    if !require_root() {
        return;
    }
    let b = bed("fi", false);
    one_broadcast_reaches_everyone(&b, PORTS - 1);
    let (status, log) = b.xvsd.stop();
    assert!(status.success(), "xvsd exit: {status}\n{log}");
}
