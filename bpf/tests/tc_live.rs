//! The fast path's TC executors on live traffic: a guest namespace's TCP
//! (iperf3, default offloads) to a kernel vxlan device behind the
//! underlay, through `xvs_tc_port` on the guest's port and `xvs_tc_uplink`
//! on the uplink with decisions installed for exactly its flows, no xvsd
//! and no XDP. What the differential test cannot show: real GSO skbs.
//! The guest keeps TSO, its super-packets reach the port whole (p0's
//! average received frame is far above the MTU), cross the tunnel, and
//! the receiver counts no checksum error.
//!
//! ```text
//! ns vm: vm0 10.0.0.1 ── veth ── ns sw: p0 (xvs_tc_port)
//!                                ns sw: u0 192.0.2.1 (xvs_tc_uplink)
//!                                  └── veth ── ns pe: pu0 192.0.2.2, vx0 VNI 42 10.0.0.2
//! ```
//! The guest's ports are pinned (control connection 40000, data 40001)
//! so that every flow is known before it starts. Needs root and iperf3
//! (`xvs_tests::require_*` fail without them under XVS_REQUIRE_ALL=1).

use std::net::IpAddr;
use std::process::Command;

use xvs_bpf::tc::{TcAction, TcFlows, TcKey, TcProgram, TcTunnelKey};
use xvs_dataplane::tunnel::{Encap, Template};
use xvs_tests::kvxlan::{kernel_vxlan, VNI};
use xvs_tests::{on_thread, require_root, require_tool, underlay, veth, Netns};
use xvs_types::{MacAddr, TunnelKind};

const VM_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 1];
const VX_MAC: [u8; 6] = [2, 0, 0, 0, 0x0b, 1];
const U0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PU0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn mapped(a: [u8; 4]) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[10] = 0xff;
    m[11] = 0xff;
    m[12..].copy_from_slice(&a);
    m
}

/// TCP between 10.0.0.1:`vm_port` and 10.0.0.2:5201, as seen by `ifindex`
/// in the direction `from_vm`.
fn tcp_key(from_vm: bool, vm_port: u16) -> TcKey {
    let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let (dl_src, dl_dst, src, dst, sp, dp) = if from_vm {
        (VM_MAC, VX_MAC, a, b, vm_port, 5201)
    } else {
        (VX_MAC, VM_MAC, b, a, 5201, vm_port)
    };
    TcKey {
        ifindex: 0,
        dl_dst,
        dl_src,
        eth_type: [0x08, 0x00],
        ip_proto: 6,
        ip_tos: 0,
        nw_src: mapped(src),
        nw_dst: mapped(dst),
        tp_src: sp.to_be_bytes(),
        tp_dst: dp.to_be_bytes(),
    }
}

fn ifindex(ns: &Netns, ifname: &str) -> u32 {
    ns.run("cat", &[&format!("/sys/class/net/{ifname}/ifindex")])
        .trim()
        .parse()
        .expect("ifindex")
}

fn rx(ns: &Netns, ifname: &str, what: &str) -> u64 {
    ns.run(
        "cat",
        &[&format!("/sys/class/net/{ifname}/statistics/{what}")],
    )
    .trim()
    .parse()
    .expect("counter")
}

#[test]
fn guest_tso_super_packets_cross_the_tunnel_whole() {
    if !require_root() || !require_tool("iperf3") {
        return;
    }
    let vm = Netns::new("tlvm");
    let sw = Netns::new("tlsw");
    let pe = Netns::new("tlpe");
    veth(
        &vm,
        "vm0",
        "02:00:00:00:0a:01",
        &sw,
        "p0",
        "02:00:00:00:0a:02",
    );
    underlay(&sw, &pe);
    kernel_vxlan(
        &pe,
        "pu0",
        "02:00:00:00:0b:01",
        "192.0.2.2",
        "192.0.2.1",
        "10.0.0.2/24",
    );
    vm.ip(&["addr", "add", "10.0.0.1/24", "dev", "vm0"]);
    vm.ip(&["link", "set", "vm0", "mtu", "1400"]);
    vm.ip(&[
        "neigh",
        "replace",
        "10.0.0.2",
        "lladdr",
        "02:00:00:00:0b:01",
        "dev",
        "vm0",
    ]);
    pe.ip(&[
        "neigh",
        "replace",
        "10.0.0.1",
        "lladdr",
        "02:00:00:00:0a:01",
        "dev",
        "vx0",
    ]);
    pe.ip(&[
        "neigh",
        "replace",
        "192.0.2.1",
        "lladdr",
        "02:00:00:00:00:01",
        "dev",
        "pu0",
    ]);
    vm.run(
        "sysctl",
        &["-qw", "net.ipv4.ip_local_port_range=40000 40000"],
    );
    let (p0, u0) = (ifindex(&sw, "p0"), ifindex(&sw, "u0"));

    let e = Encap {
        kind: TunnelKind::Vxlan,
        vni: VNI,
        dst_port: 4789,
        ttl: 64,
        tos: None,
        df: true,
        csum: false,
        zero_csum6: false,
        src_port_range: (49152, 65535),
        geneve_opts: Vec::new(),
    };
    let us: IpAddr = "192.0.2.1".parse().unwrap();
    let them: IpAddr = "192.0.2.2".parse().unwrap();
    let t = Template::build(&e, us, them, MacAddr(U0_MAC), MacAddr(PU0_MAC)).unwrap();
    let o = t.offload().expect("offloadable");
    let mut vxlan_hdr = [0x08, 0, 0, 0, 0, 0, 0, 0];
    vxlan_hdr[4..7].copy_from_slice(&VNI.to_be_bytes()[1..]);

    let (flows, _attached) = on_thread(|| {
        sw.enter();
        let flows = TcFlows::load().expect("load the TC programs");
        for port in [40000, 40001] {
            let mut out = tcp_key(true, port);
            out.ifindex = p0;
            // The pipeline would take the UDP source port from its flow
            // hash; any value exercises the executor.
            let push = TcAction::push(u0, &o, t.src_port(u64::from(port)), 1500).unwrap();
            flows.insert(&out, &push).unwrap();
            let back = TcTunnelKey {
                outer_src: mapped([192, 0, 2, 2]),
                outer_dst: mapped([192, 0, 2, 1]),
                tun_hdr: vxlan_hdr,
                udp_dst: 4789u16.to_be_bytes(),
                pad: 0,
                inner: tcp_key(false, port),
            };
            flows.insert(&back, &TcAction::output(p0)).unwrap();
        }
        let a = flows
            .attach(TcProgram::Port, p0 as i32)
            .expect("attach on p0");
        let b = flows
            .attach(TcProgram::Uplink, u0 as i32)
            .expect("attach on u0");
        (flows, (a, b))
    });

    let (rx_packets, rx_bytes) = (rx(&sw, "p0", "rx_packets"), rx(&sw, "p0", "rx_bytes"));
    pe.run("iperf3", &["-s", "-1", "-D", "-B", "10.0.0.2"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = Command::new("ip")
        .args([
            "netns", "exec", &vm.name, "timeout", "30", "iperf3", "-c", "10.0.0.2",
        ])
        .args(["--cport", "40001", "-t", "2", "-J"])
        .output()
        .expect("iperf3");
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    let gbps = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
        / 1e9;
    let frames = rx(&sw, "p0", "rx_packets") - rx_packets;
    let bytes = rx(&sw, "p0", "rx_bytes") - rx_bytes;
    let csum_errors = pe.run(
        "sh",
        &[
            "-c",
            "nstat -az TcpInCsumErrors | awk '/TcpInCsumErrors/ {print $2}'",
        ],
    );
    let data = flows.get(&{
        let mut k = tcp_key(true, 40001);
        k.ifindex = p0;
        k
    });
    eprintln!(
        "{gbps:.2} Gbit/s; p0 received {frames} frames, {} bytes each on average; \
         data flow: {:?} segments; receiver's checksum errors: {csum_errors}",
        bytes / frames.max(1),
        data.as_ref().ok().and_then(|d| d.map(|d| d.packets)),
    );
    assert!(
        out.status.success(),
        "iperf3: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(gbps > 0.1, "{gbps} Gbit/s");
    assert!(
        bytes / frames.max(1) > 4000,
        "the guest's super-packets reached p0 whole: {} bytes per frame",
        bytes / frames.max(1)
    );
    assert_eq!(csum_errors.trim(), "0");
    let d = data.unwrap().expect("the data flow's decision");
    assert!(
        d.packets > frames,
        "counted as segments: {} for {frames} frames",
        d.packets
    );
}
