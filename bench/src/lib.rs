//! xvs benchmarks and tools. The criterion benches live in benches/; this
//! library holds what they share with the instruction-count runner
//! (`examples/pipeline_instructions.rs`, run under callgrind), so both
//! measure exactly the same work, and everything of xvs-pktgen but its
//! `main` ([`pktgen`]: command line, frames, the AF_XDP and XDP send
//! engines, the receiver, reports).

pub mod pktgen;

use std::net::IpAddr;

use etherparse::PacketBuilder;

use xvs_config::{AclConfig, Direction, QosConfig, StaticFdbConfig};
use xvs_dataplane::control::Control;
use xvs_dataplane::frame::Frame;
use xvs_dataplane::pipeline::{process_batch, BatchIo, WorkerState};
use xvs_dataplane::snapshot::Snapshot;
use xvs_dataplane::testkit::{self, CHUNK, HEADROOM};
use xvs_types::{MacAddr, PortNo};

pub const A: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
pub const B: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 2];

/// An Ethernet/IPv4/UDP frame of `n` payload bytes.
pub fn udp_frame(src: [u8; 6], dst: [u8; 6], sport: u16, n: usize) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(sport, 2000);
    let mut v = Vec::new();
    b.write(&mut v, &vec![0xab; n]).expect("write to a Vec");
    v
}

/// The encapsulation fixture: the testkit topology plus three flows on br0
/// (the traffic hits a NORMAL rule), 100 firewall rules and a policer on
/// vm1's ingress, and B's MAC static behind the VXLAN tunnel.
pub fn encap_control() -> Control {
    let mut ctl = testkit::control();
    let mut cfg = testkit::config();
    cfg.bridges[0].flows = vec![
        "priority=200,tcp,tp_dst=22,actions=drop".into(),
        "priority=100,ip,actions=NORMAL".into(),
        "priority=1,actions=drop".into(),
    ];
    cfg.acls.push(
        AclConfig {
            port: "vm1".into(),
            dir: Direction::In,
            rules: (0..100)
                .map(|i| format!("priority=10,tcp,tp_dst={},action=drop", 1000 + i))
                .collect(),
        }
        .into(),
    );
    cfg.qos.push(
        QosConfig {
            port: "vm1".into(),
            dir: Direction::In,
            rate_bps: 100_000_000_000,
            burst_bytes: 1 << 30,
            peak_bps: None,
        }
        .into(),
    );
    let remote: IpAddr = "192.0.2.2".parse().expect("literal");
    cfg.fdb.push(
        StaticFdbConfig {
            bridge: "br0".into(),
            vlan: 0,
            mac: MacAddr(B),
            port: "vx1".into(),
            remote: Some(remote),
        }
        .into(),
    );
    ctl.apply(cfg).expect("fixture config is valid");
    ctl
}

/// Runs batches of frames through the pipeline the way a worker does:
/// buffers circulate between a pool and the pipeline, are filled as the
/// NIC's DMA would (that copy is part of the cost), and nothing is
/// allocated per batch.
#[allow(missing_debug_implementations)]
pub struct EncapLoop {
    pub snap: std::sync::Arc<Snapshot>,
    pub ws: WorkerState,
    pub in_port: PortNo,
    pub frames: Vec<Vec<u8>>,
    pool: Vec<&'static mut [u8]>,
    rx: Vec<Frame<'static>>,
    io: BatchIo<'static>,
    now: u64,
}

impl EncapLoop {
    /// `flows` distinct UDP flows of `payload` bytes each, 64 per batch.
    pub fn new(ctl: &Control, flows: usize, payload: usize) -> EncapLoop {
        let snap = ctl.snapshot();
        let in_port = snap.port_by_name("vm1").expect("vm1 exists");
        let frames: Vec<Vec<u8>> = (0..flows)
            .map(|i| udp_frame(A, B, 1000 + i as u16, payload))
            .collect();
        let n = 64;
        // Leaked once per loop: buffers live as long as the process, like a
        // UMEM.
        let chunks: &'static mut [u8] = Box::leak(vec![0u8; CHUNK * n].into_boxed_slice());
        EncapLoop {
            snap,
            ws: WorkerState::new(0, None),
            in_port,
            frames,
            pool: chunks.chunks_mut(CHUNK).collect(),
            rx: Vec::with_capacity(n),
            io: BatchIo {
                spare: Vec::new(),
                more: None,
                tx: Vec::with_capacity(n),
                free: Vec::with_capacity(n),
                held: Vec::new(),
            },
            now: 0,
        }
    }

    /// The harness alone: fills and recycles 64 buffers exactly as
    /// [`EncapLoop::batch`] does, without the pipeline. Its cost is what
    /// `batch` adds on top of the pipeline itself.
    pub fn harness_only(&mut self, round: usize) -> usize {
        let nf = self.frames.len();
        for i in 0..64 {
            let f = &self.frames[(round * 64 + i) % nf];
            let Some(buf) = self.pool.pop() else { break };
            buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
            if let Some(fr) = Frame::new(buf, HEADROOM, f.len()) {
                self.rx.push(fr);
            }
        }
        self.now += 1_000;
        let n = self.rx.len();
        self.pool.extend(self.rx.drain(..).map(Frame::into_buf));
        n
    }

    /// One batch of 64 frames (cycling through the flows); returns how many
    /// were sent.
    pub fn batch(&mut self, round: usize) -> usize {
        let nf = self.frames.len();
        for i in 0..64 {
            let f = &self.frames[(round * 64 + i) % nf];
            let Some(buf) = self.pool.pop() else { break };
            buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
            if let Some(fr) = Frame::new(buf, HEADROOM, f.len()) {
                self.rx.push(fr);
            }
        }
        // One microsecond per batch keeps the policer refilling (12.5 kB
        // per batch at 100 Gbit/s), as a real clock would.
        self.now += 1_000;
        process_batch(
            &self.snap,
            &mut self.ws,
            self.in_port,
            self.now,
            self.rx.drain(..),
            &mut self.io,
        );
        let sent = self.io.tx.len();
        self.pool
            .extend(self.io.tx.drain(..).map(|t| t.frame.into_buf()));
        self.pool.append(&mut self.io.free);
        sent
    }
}
