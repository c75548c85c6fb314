//! `xvsctl trace`: one frame through the pipeline the workers run
//! ([`process_batch`]), against a snapshot, with a worker state of its own,
//! so that nothing it does reaches the running switch: no frame is sent,
//! no MAC learned, no lookup asked, no counter of a worker's moved.
//!
//! What the pipeline decided is read back from that private state, which
//! counted each decision as a worker's would: the ACL rule and the flow
//! rule the frame matched, the drop and its reason, the ARP/ND answer,
//! a lookup miss, a hold, the mirrors that copied it, and every frame it
//! sent with the port it went out of (outer header included). Policers start with full buckets, and
//! the exact-match cache empty, so what is traced is what the classifier
//! decides, as for a flow's first frame.

use super::{process_batch, BatchIo, WorkerState};
use crate::frame::Frame;
use crate::snapshot::Snapshot;
use xvs_types::PortNo;

/// Room in front of the frame: the kernel's 256 bytes plus the longest
/// outer header (Geneve options over IPv6), as a worker's UMEM has.
const HEADROOM: usize = 512;
/// A jumbo slot's size: the longest frame a worker takes.
const CHUNK: usize = 16384;
/// Replicas a flood may make (one per bridge port, at most).
const SPARES: usize = 64;

/// What the pipeline did with the frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// Every frame sent, with the port it left by, as it left.
    pub outputs: Vec<(PortNo, Vec<u8>)>,
    /// Drops by reason (`stats::DropReason::name`).
    pub drops: Vec<(&'static str, u64)>,
    /// The ACL rules hit: (firewall, rule index).
    pub acl_hits: Vec<(u16, u32)>,
    /// The flow rule matched: (bridge number, rule index).
    pub flow_rule: Option<(u16, u32)>,
    /// The pipeline's other counters that moved (`arp_suppressed`,
    /// `upcalls`, `held`, `copies`, ...).
    pub events: Vec<(&'static str, u64)>,
    /// Held for a lookup (its bridge's lookup answers misses).
    pub held: bool,
    /// Mirrors that copied it (snapshot index), and how many copies.
    pub mirrored: Vec<(u16, u64)>,
}

/// Runs `frame` as received on `in_port` at `now` through the pipeline
/// against `snap`. Allocates (it is the control thread's, not a worker's).
pub fn trace(snap: &Snapshot, in_port: PortNo, frame: &[u8], now: u64) -> Trace {
    let mut ws = WorkerState::new(0, None);
    ws.sync(snap);
    let mut chunks = vec![vec![0u8; CHUNK]; 1 + SPARES];
    let (rx_chunk, spares) = chunks.split_at_mut(1);
    let len = frame.len().min(CHUNK - HEADROOM);
    rx_chunk[0][HEADROOM..HEADROOM + len].copy_from_slice(&frame[..len]);
    let rx: Vec<Frame<'_>> = Frame::new(&mut rx_chunk[0][..], HEADROOM, len)
        .into_iter()
        .collect();
    let mut io = BatchIo {
        spare: spares.iter_mut().map(|c| &mut c[..]).collect(),
        more: None,
        tx: Vec::with_capacity(1 + SPARES),
        free: Vec::with_capacity(1 + SPARES),
        held: Vec::with_capacity(1),
    };
    process_batch(snap, &mut ws, in_port, now, rx, &mut io);
    let acl_hits = ws
        .fw_hits
        .iter()
        .enumerate()
        .flat_map(|(f, rules)| {
            rules
                .iter()
                .enumerate()
                .filter(|(_, n)| n.packets > 0)
                .map(move |(r, _)| (f as u16, r as u32))
        })
        .collect();
    let flow_rule = ws.flow_hits.iter().enumerate().find_map(|(b, h)| {
        h.rules
            .iter()
            .position(|c| c.packets > 0)
            .map(|r| (b as u16, r as u32))
    });
    Trace {
        outputs: io
            .tx
            .iter()
            .map(|t| (t.port, t.frame.data().to_vec()))
            .collect(),
        drops: ws.drops.nonzero().collect(),
        acl_hits,
        flow_rule,
        events: ws.events().into_iter().filter(|(_, n)| *n > 0).collect(),
        held: !io.held.is_empty(),
        mirrored: ws
            .mirrors
            .iter()
            .enumerate()
            .filter(|(_, c)| c.packets > 0)
            .map(|(m, c)| (m as u16, c.packets))
            .collect(),
    }
}
