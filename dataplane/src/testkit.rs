//! A standard topology and a buffer pool to run the pipeline without any
//! I/O: shared by unit tests, benchmarks and fuzz targets so they exercise
//! the same snapshot the daemon would build.
//!
//! Topology (what `testbed()` builds):
//! - uplink `eth0` (port 1), local VTEPs 192.0.2.1 and 2001:db8::1, MAC
//!   02:00:00:00:00:01, routes to 192.0.2.0/24 and 2001:db8::/64 on-link,
//!   neighbors .2/.3 (and ::2) resolved;
//! - bridge `br0`: local ports `vm1` (2), `vm2` (3), VXLAN tunnel `vx1`
//!   (VNI 42, remotes 192.0.2.2 and 192.0.2.3);
//! - bridge `br1`: local port `vm3` (4), Geneve tunnel `gn1` (VNI 43, remote
//!   192.0.2.2, one 8-byte option class 0x0102 type 0x80|3);
//! - bridge `br6`: local port `vm4`, VXLAN tunnel `vx6` over IPv6 (VNI 44).

use std::net::IpAddr;

use crate::control::Control;
use crate::frame::Frame;
use crate::pipeline::{process_batch, BatchIo, HeldMeta, WorkerState};
use crate::snapshot::Snapshot;
use crate::tables::neigh::NeighSource;
use crate::tables::route::{Route, RouteOrigin};
use xvs_config::{
    BridgeConfig, Config, GeneveOptConfig, PortConfig, TunnelConfig, TunnelKind, UplinkConfig,
};
use xvs_types::{MacAddr, PortNo};

/// Size of one buffer (a UMEM chunk in the daemon).
pub const CHUNK: usize = 4096;
/// Headroom every received frame starts with.
pub const HEADROOM: usize = 256;

pub const UPLINK_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
pub const PEER2_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
pub const PEER3_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 3]);
pub const LOCAL4: &str = "192.0.2.1";
pub const LOCAL6: &str = "2001:db8::1";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("fixture address")
}

/// The fixture config (see the module doc).
pub fn config() -> Config {
    let mut gn = TunnelConfig::new("gn1", "br1", TunnelKind::Geneve, 43, vec![ip("192.0.2.2")]);
    gn.geneve_opts.push(GeneveOptConfig {
        class: 0x0102,
        typ: 0x83,
        data: vec![0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4],
    });
    let mut c = Config {
        bridges: vec![
            BridgeConfig::new("br0").into(),
            BridgeConfig::new("br1").into(),
            BridgeConfig::new("br6").into(),
        ],
        uplink: Some(UplinkConfig {
            iface: "eth0".into(),
            number: None,
            mac: Some(UPLINK_MAC),
            local_ips: vec![ip(LOCAL4), ip(LOCAL6)],
            mtu: 9000,
        }),
        ports: vec![
            PortConfig::new("vm1", "br0").into(),
            PortConfig::new("vm2", "br0").into(),
            PortConfig::new("vm3", "br1").into(),
            PortConfig::new("vm4", "br6").into(),
        ],
        tunnels: vec![
            TunnelConfig::new(
                "vx1",
                "br0",
                TunnelKind::Vxlan,
                42,
                vec![ip("192.0.2.2"), ip("192.0.2.3")],
            )
            .into(),
            gn.into(),
            TunnelConfig::new("vx6", "br6", TunnelKind::Vxlan, 44, vec![ip("2001:db8::2")]).into(),
        ],
        ..Default::default()
    };
    c.assign_port_numbers();
    c
}

/// A control plane with the fixture's underlay (routes, neighbors) and no
/// config applied yet.
pub fn control() -> Control {
    let mut ctl = Control::new();
    ctl.underlay.uplink_mac = Some(UPLINK_MAC);
    for (prefix, dev) in [("192.0.2.0/24", "eth0"), ("2001:db8::/64", "eth0")] {
        ctl.underlay
            .routes
            .insert(Route {
                prefix: prefix.parse().expect("fixture prefix"),
                gateway: None,
                dev: dev.into(),
                ifindex: 2,
                src: None,
                metric: 0,
                origin: RouteOrigin::User,
            })
            .expect("fixture route");
    }
    for (a, m) in [
        ("192.0.2.2", PEER2_MAC),
        ("192.0.2.3", PEER3_MAC),
        ("2001:db8::2", PEER2_MAC),
    ] {
        ctl.underlay.neigh.learn(ip(a), m, 0, NeighSource::Static);
    }
    ctl
}

/// The fixture, applied.
pub fn testbed() -> Control {
    let mut ctl = control();
    ctl.apply(config()).expect("fixture config is valid");
    ctl
}

/// What one batch produced, as owned bytes.
#[derive(Debug, Default)]
pub struct BatchOut {
    pub tx: Vec<(PortNo, Vec<u8>)>,
    /// Buffers handed back (dropped frames and unused spares not counted).
    pub freed: usize,
    /// Frames the pipeline held for a lookup, as they were.
    pub held: Vec<(HeldMeta, Vec<u8>)>,
}

/// Owned buffers to run batches through: `frames` come in at [`HEADROOM`],
/// `spare` more buffers are offered for replicas.
#[derive(Debug)]
pub struct Pool {
    chunks: Vec<Vec<u8>>,
}

impl Pool {
    pub fn new(n: usize) -> Pool {
        Pool {
            chunks: vec![vec![0u8; CHUNK]; n],
        }
    }

    /// Runs `frames` (received on `in_port`) through the pipeline with
    /// `spare` extra buffers, and copies out what was sent. Every buffer must
    /// come back (sent, freed or unused): asserted, as it is the pipeline's
    /// first invariant.
    pub fn run(
        &mut self,
        snap: &Snapshot,
        ws: &mut WorkerState,
        in_port: PortNo,
        now: u64,
        frames: &[&[u8]],
        spare: usize,
    ) -> BatchOut {
        let need = frames.len() + spare;
        if self.chunks.len() < need {
            self.chunks.resize(need, vec![0u8; CHUNK]);
        }
        let (rx_chunks, rest) = self.chunks.split_at_mut(frames.len());
        let rx: Vec<Frame<'_>> = rx_chunks
            .iter_mut()
            .zip(frames)
            .filter_map(|(c, f)| {
                let len = f.len().min(CHUNK - HEADROOM);
                c[HEADROOM..HEADROOM + len].copy_from_slice(&f[..len]);
                Frame::new(&mut c[..], HEADROOM, len)
            })
            .collect();
        let mut io = BatchIo {
            spare: rest[..spare].iter_mut().map(|c| &mut c[..]).collect(),
            more: None,
            tx: Vec::with_capacity(need),
            free: Vec::with_capacity(need),
            held: Vec::with_capacity(need),
        };
        process_batch(snap, ws, in_port, now, rx, &mut io);
        Pool::collect(io, need)
    }

    /// Runs one held frame again (see [`crate::pipeline::process_held`]).
    pub fn rerun(
        &mut self,
        snap: &Snapshot,
        ws: &mut WorkerState,
        meta: HeldMeta,
        now: u64,
        frame: &[u8],
    ) -> BatchOut {
        let c = &mut self.chunks[0];
        let len = frame.len().min(CHUNK - HEADROOM);
        c[HEADROOM..HEADROOM + len].copy_from_slice(&frame[..len]);
        let Some(f) = Frame::new(&mut c[..], HEADROOM, len) else {
            return BatchOut::default();
        };
        let mut io = BatchIo {
            spare: Vec::new(),
            more: None,
            tx: Vec::with_capacity(1),
            free: Vec::with_capacity(1),
            held: Vec::with_capacity(1),
        };
        crate::pipeline::process_held(snap, ws, meta, now, f, &mut io);
        Pool::collect(io, 1)
    }

    /// Copies out what a batch produced, asserting every buffer came back.
    fn collect(io: BatchIo<'_>, need: usize) -> BatchOut {
        assert_eq!(
            io.tx.len() + io.free.len() + io.spare.len() + io.held.len(),
            need,
            "a buffer was lost"
        );
        BatchOut {
            tx: io
                .tx
                .iter()
                .map(|t| (t.port, t.frame.data().to_vec()))
                .collect(),
            freed: io.free.len(),
            held: io
                .held
                .iter()
                .map(|(m, f)| (*m, f.data().to_vec()))
                .collect(),
        }
    }
}
