//! Two hypervisors' dataplanes wired back to back in one process: a VM on
//! each side talks over a VXLAN bridge (VNI 100) and a Geneve bridge (VNI
//! 200). Every frame hv1 puts on its uplink is handed to hv2's uplink and
//! the other way round, so what is shown is exactly what the pipeline
//! would send on the wire. (The namespace demo with xvsd and AF_XDP builds
//! on this; see the README.)

use std::net::IpAddr;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

use xvs_config::{
    BridgeConfig, Config, GeneveOptConfig, PortConfig, TunnelConfig, TunnelKind, UplinkConfig,
};
use xvs_dataplane::control::Control;
use xvs_dataplane::pipeline::WorkerState;
use xvs_dataplane::tables::neigh::NeighSource;
use xvs_dataplane::tables::route::{Route, RouteOrigin};
use xvs_dataplane::testkit::Pool;
use xvs_types::{MacAddr, PortNo};

struct Hv {
    name: &'static str,
    ctl: Control,
    ws: WorkerState,
    pool: Pool,
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("literal address")
}

fn hypervisor(name: &'static str, me: u8, peer: u8) -> Hv {
    let local = ip(&format!("192.0.2.{me}"));
    let remote = ip(&format!("192.0.2.{peer}"));
    let mut gn = TunnelConfig::new("gn0", "br-geneve", TunnelKind::Geneve, 200, vec![remote]);
    gn.geneve_opts.push(GeneveOptConfig {
        class: 0x0102,
        typ: 0x01,
        data: vec![0, 0, 0, me],
    });
    let config = Config {
        bridges: vec![
            BridgeConfig::new("br-vxlan").into(),
            BridgeConfig::new("br-geneve").into(),
        ],
        uplink: Some(UplinkConfig {
            iface: "uplink".into(),
            number: None,
            mac: Some(MacAddr([2, 0, 0, 0, 0, me])),
            local_ips: vec![local],
            mtu: 1500,
        }),
        ports: vec![
            PortConfig::new("vm-vx", "br-vxlan").into(),
            PortConfig::new("vm-gn", "br-geneve").into(),
        ],
        tunnels: vec![
            TunnelConfig::new("vx0", "br-vxlan", TunnelKind::Vxlan, 100, vec![remote]).into(),
            gn.into(),
        ],
        ..Default::default()
    };
    let mut ctl = Control::new();
    ctl.underlay.uplink_mac = Some(MacAddr([2, 0, 0, 0, 0, me]));
    ctl.underlay
        .routes
        .insert(Route {
            prefix: "192.0.2.0/24".parse().expect("literal prefix"),
            gateway: None,
            dev: "uplink".into(),
            ifindex: 2,
            src: Some(local),
            metric: 0,
            origin: RouteOrigin::User,
        })
        .expect("valid route");
    ctl.underlay.neigh.learn(
        remote,
        MacAddr([2, 0, 0, 0, 0, peer]),
        0,
        NeighSource::Static,
    );
    ctl.apply(config).expect("valid config");
    let ws = WorkerState::new(0, Some(ctl.learn_sender()));
    Hv {
        name,
        ctl,
        ws,
        pool: Pool::new(16),
    }
}

impl Hv {
    fn port(&self, name: &str) -> PortNo {
        self.ctl.snapshot().port_by_name(name).expect("port exists")
    }

    fn port_name(&self, p: PortNo) -> String {
        self.ctl.snapshot().ports[usize::from(p)].name.to_string()
    }

    /// Receives `frame` on `port`; returns what left, by port name.
    fn rx(&mut self, port: &str, frame: &[u8], now: u64) -> Vec<(String, Vec<u8>)> {
        let p = self.port(port);
        let snap = self.ctl.snapshot();
        let out = self.pool.run(&snap, &mut self.ws, p, now, &[frame], 8);
        self.ctl.process_learning(now);
        out.tx
            .into_iter()
            .map(|(p, f)| (self.port_name(p), f))
            .collect()
    }
}

fn describe(f: &[u8]) -> String {
    let Ok(p) = SlicedPacket::from_ethernet(f) else {
        return format!("{} bytes (unparsed)", f.len());
    };
    let mut s = String::new();
    if let Some(NetSlice::Ipv4(ip)) = &p.net {
        let h = ip.header();
        s += &format!("IPv4 {} > {}", h.source_addr(), h.destination_addr());
    }
    if let Some(TransportSlice::Udp(u)) = &p.transport {
        s += &format!(" UDP {} > {}", u.source_port(), u.destination_port());
        let pl = u.payload();
        match u.destination_port() {
            4789 if pl.len() >= 8 => {
                let vni = u32::from_be_bytes([0, pl[4], pl[5], pl[6]]);
                s += &format!(" VXLAN vni {vni} | inner {}", describe(&pl[8..]));
            }
            6081 if pl.len() >= 8 => {
                let vni = u32::from_be_bytes([0, pl[4], pl[5], pl[6]]);
                let opt = usize::from(pl[0] & 0x3f) * 4;
                s += &format!(
                    " Geneve vni {vni} options {opt} B | inner {}",
                    describe(&pl[8 + opt.min(pl.len() - 8)..])
                );
            }
            _ => {}
        }
    }
    if let Some(TransportSlice::Icmpv4(i)) = &p.transport {
        s += &format!(" ICMP {:?}", i.icmp_type());
    }
    format!("{} bytes: {s}", f.len())
}

fn ping(src: [u8; 6], dst: [u8; 6], a: [u8; 4], b: [u8; 4], reply: bool) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(src, dst).ipv4(a, b, 64);
    let builder = if reply {
        builder.icmpv4_echo_reply(7, 1)
    } else {
        builder.icmpv4_echo_request(7, 1)
    };
    let payload = *b"xvs demo payload";
    let mut v = Vec::new();
    builder.write(&mut v, &payload).expect("write to a Vec");
    v
}

fn main() {
    let mut hv1 = hypervisor("hv1", 1, 2);
    let mut hv2 = hypervisor("hv2", 2, 1);
    let vm_a = [0x02, 0xaa, 0, 0, 0, 1];
    let vm_b = [0x02, 0xbb, 0, 0, 0, 2];
    let mut now = 1_000_000_000;
    for (bridge_port, label) in [("vm-vx", "VXLAN"), ("vm-gn", "Geneve")] {
        println!("== {label}: vm-a (hv1) <-> vm-b (hv2)");
        // The first frame's destination is unknown: flooded to the remote
        // VTEP; the reply is unicast because both sides learned.
        let mut dst = [0xff; 6];
        for round in 0..2 {
            now += 1_000_000;
            let req = ping(vm_a, dst, [10, 0, 0, 1], [10, 0, 0, 2], false);
            let wire: Vec<_> = hv1.rx(bridge_port, &req, now);
            for (port, f) in &wire {
                println!("  {} {port} -> {}", hv1.name, describe(f));
                assert_eq!(port, "uplink");
                for (p2, g) in hv2.rx("uplink", f, now) {
                    println!("  {} {p2} <- {}", hv2.name, describe(&g));
                    assert_eq!(g, req, "inner frame delivered unchanged");
                }
            }
            let rep = ping(vm_b, vm_a, [10, 0, 0, 2], [10, 0, 0, 1], true);
            for (port, f) in hv2.rx(bridge_port, &rep, now) {
                println!("  {} {port} -> {}", hv2.name, describe(&f));
                for (p1, g) in hv1.rx("uplink", &f, now) {
                    println!("  {} {p1} <- {}", hv1.name, describe(&g));
                    assert_eq!(g, rep);
                }
            }
            dst = vm_b;
            if round == 0 {
                println!("  (learned: vm-b behind 192.0.2.2 on hv1, vm-a behind 192.0.2.1 on hv2)");
            }
        }
    }
    for hv in [&hv1, &hv2] {
        println!(
            "{}: drops {:?}, replicas {}, copies {}",
            hv.name,
            hv.ws.drops.nonzero().collect::<Vec<_>>(),
            hv.ws.replicas,
            hv.ws.copies
        );
    }
}
