//! First end-to-end path: a VM namespace pings a namespace behind the
//! Linux kernel's own vxlan device, through a [`Worker`] moving frames
//! between two AF_XDP sockets that share one UMEM.
//!
//! ```text
//! ns vm: vm0 10.0.0.1/24 ── veth ── ns hv: hvp0 (xvs_port, AF_XDP)
//!                                          worker: br0 = {hvp0, vx1 VNI 42}
//!                                   ns hv: hvu0 192.0.2.1/24 (xvs_uplink, AF_XDP)
//!                                     └── veth ── ns peer: pu0 192.0.2.2/24
//!                                                 vx0 vxlan 42 → 192.0.2.1:4789, 10.0.0.2/24
//! ```
//!
//! Needs root (namespaces, BPF) (`xvs_tests::require`: fails without it
//! under XVS_REQUIRE_ALL=1, skips loudly by hand). The
//! namespaces are deleted on drop (panics included) and every wait is
//! bounded.

use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use xvs_bpf::{AttachFlags, Mode, XdpProgram};
use xvs_config::{BridgeConfig, Config, PortConfig, TunnelConfig, TunnelKind, UplinkConfig};
use xvs_dataplane::control::Control;
use xvs_dataplane::tables::neigh::NeighSource;
use xvs_dataplane::tables::route::{Route, RouteOrigin};
use xvs_io::xsk::{XskConfig, XskSet};
use xvs_io::{Worker, WorkerCounters, WorkerPort};
use xvs_tests::{enter_netns, require_root, veth, Netns};
use xvs_types::MacAddr;

const UPLINK_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const UPLINK_MAC_S: &str = "02:00:00:00:00:01";
const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const PEER_MAC_S: &str = "02:00:00:00:00:02";

fn addr(s: &str) -> IpAddr {
    s.parse().expect("literal address")
}

/// br0 = {hvp0, vx1 (VNI 42, 192.0.2.1 → 192.0.2.2)}, uplink hvu0, with
/// the underlay (on-link route, the peer's MAC) set statically.
fn control() -> Control {
    let mut ctl = Control::new();
    ctl.underlay.uplink_mac = Some(UPLINK_MAC);
    ctl.underlay
        .routes
        .insert(Route {
            prefix: "192.0.2.0/24".parse().expect("literal prefix"),
            gateway: None,
            dev: "hvu0".into(),
            ifindex: 0,
            src: None,
            metric: 0,
            origin: RouteOrigin::User,
        })
        .expect("route");
    ctl.underlay
        .neigh
        .learn(addr("192.0.2.2"), PEER_MAC, 0, NeighSource::Static);
    let mut vx = TunnelConfig::new("vx1", "br0", TunnelKind::Vxlan, 42, vec![addr("192.0.2.2")]);
    vx.local = Some(addr("192.0.2.1"));
    let mut cfg = Config {
        bridges: vec![BridgeConfig::new("br0").into()],
        uplink: Some(UplinkConfig {
            iface: "hvu0".into(),
            number: None,
            mac: Some(UPLINK_MAC),
            local_ips: vec![addr("192.0.2.1")],
            mtu: 1500,
        }),
        ports: vec![PortConfig::new("hvp0", "br0").into()],
        tunnels: vec![vx.into()],
        ..Default::default()
    };
    cfg.assign_port_numbers();
    ctl.apply(cfg).expect("valid config");
    ctl
}

#[test]
fn vm_pings_a_kernel_vxlan_peer_through_the_worker() {
    if !require_root() {
        return;
    }
    let vm = Netns::new("wvm");
    let hv = Netns::new("whv");
    let peer = Netns::new("wpeer");
    veth(
        &vm,
        "vm0",
        "02:00:00:00:0a:01",
        &hv,
        "hvp0",
        "02:00:00:00:0a:02",
    );
    veth(&hv, "hvu0", UPLINK_MAC_S, &peer, "pu0", PEER_MAC_S);
    vm.ip(&["addr", "add", "10.0.0.1/24", "dev", "vm0"]);
    // The uplink's IP stays with the kernel (it answers ARP for the VTEP).
    hv.ip(&["addr", "add", "192.0.2.1/24", "dev", "hvu0"]);
    peer.ip(&["addr", "add", "192.0.2.2/24", "dev", "pu0"]);
    #[rustfmt::skip]
    peer.ip(&[
        "link", "add", "vx0", "address", "02:00:00:00:0b:01", "type", "vxlan", "id", "42",
        "local", "192.0.2.2", "remote", "192.0.2.1", "dstport", "4789", "dev", "pu0",
    ]);
    peer.ip(&["addr", "add", "10.0.0.2/24", "dev", "vx0"]);
    peer.ip(&["link", "set", "vx0", "up"]);

    let mut ctl = control();
    let snap = ctl.snapshot();
    let vm_port = snap.port_by_name("hvp0").expect("hvp0");
    let uplink_port = snap.port_by_name("hvu0").expect("uplink");
    let handle = ctl.handle();
    let learn = ctl.learn_sender();
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();

    let worker = {
        let stop = Arc::clone(&stop);
        let hv_name = hv.name.clone();
        std::thread::spawn(move || {
            enter_netns(&hv_name);
            let port_prog =
                XdpProgram::attach("hvp0", Mode::Port, AttachFlags::Auto).expect("attach xvs_port");
            let up_prog = XdpProgram::attach("hvu0", Mode::Uplink, AttachFlags::Auto)
                .expect("attach xvs_uplink");
            up_prog.add_vtep(addr("192.0.2.1")).expect("vtep");
            up_prog.add_tunnel_port(4789).expect("tunnel port");
            let cfg = XskConfig {
                frames: 1024,
                rx_frames: 256,
                ring: 512,
                frame_headroom: 0,
                jumbo_slots: 0,
            };
            // One UMEM for both sockets.
            let mut set = XskSet::new(XskConfig {
                frames: 2 * cfg.frames,
                ..cfg
            })
            .expect("UMEM");
            let p = set.bind("hvp0", 0, &port_prog).expect("bind hvp0");
            let u = set.bind("hvu0", 0, &up_prog).expect("bind hvu0");
            eprintln!(
                "worker: xvs_port {} mode, xvs_uplink {} mode, sockets {}/{}",
                port_prog.attach_mode(),
                up_prog.attach_mode(),
                if set.zero_copy(p) {
                    "zero-copy"
                } else {
                    "copy"
                },
                if set.zero_copy(u) {
                    "zero-copy"
                } else {
                    "copy"
                },
            );
            let ports = vec![
                WorkerPort::new(vm_port, 0, p, cfg.rx_frames as usize),
                WorkerPort::new(uplink_port, 0, u, cfg.rx_frames as usize),
            ];
            let mut w = Worker::new(0, set, ports, handle, Some(learn));
            ready_tx.send(()).expect("ready");
            let counters = w.run(&stop).expect("worker loop");
            let vm_c = w.port_counters(vm_port);
            let up_c = w.port_counters(uplink_port);
            let drops = format!("{:?}", w.state().drops);
            drop(w);
            drop(port_prog);
            drop(up_prog);
            (counters, vm_c, up_c, drops)
        })
    };
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("worker started");

    // The control loop runs here: learned MACs reach the worker through
    // new snapshots while ping runs.
    let mut child = Command::new("ip")
        .args(["netns", "exec", &vm.name])
        .args(["ping", "-c", "3", "-i", "0.3", "-W", "2", "10.0.0.2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ping (is iputils-ping installed?)");
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(15);
    let status = loop {
        ctl.process_learning(t0.elapsed().as_nanos() as u64);
        if let Some(s) = child.try_wait().expect("wait ping") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().expect("ping output");
    stop.store(true, Ordering::Relaxed);
    let (counters, vm_c, up_c, drops) = match worker.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "ping: {}\n{stdout}{}",
        status.map_or("timed out".into(), |s| s.to_string()),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("worker counters: {counters:?}");
    eprintln!("port hvp0: {vm_c:?}");
    eprintln!("uplink: {up_c:?}");
    eprintln!("drops: {drops}");
    let fdb: Vec<String> = ctl
        .fdb("br0")
        .map(|f| format!("{f:?}"))
        .into_iter()
        .collect();
    eprintln!(
        "br0 fdb: {}",
        fdb.join(" ").chars().take(600).collect::<String>()
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "ping through xvs failed"
    );
    assert!(stdout.contains("3 received"), "{stdout}");
    check_counters(&counters);
}

fn check_counters(c: &WorkerCounters) {
    // Every request and reply crossed from one socket to the other, by
    // descriptor within the shared UMEM.
    assert!(c.tx_other_port >= 6, "{c:?}");
    assert_eq!(c.tx_ring_full + c.unknown_port, 0, "{c:?}");
}
