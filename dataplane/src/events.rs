//! What workers tell the control thread, and the channels it goes by:
//! [`LearnEvent`]s (a MAC seen behind a port) on one bounded channel all
//! workers share, [`Upcall`]s (a lookup miss, illumos varpd's upcall)
//! on one bounded queue per worker, and [`Offer`]s (a flow the
//! GSO-preserving fast path may take over) on one bounded channel all
//! workers share. A worker never blocks on either: a full
//! channel drops the message and counts it (the pipeline's learning and
//! upcall filters make a repeat arrive later).

use std::net::IpAddr;

use crossbeam_channel::{Receiver, Sender};
use xvs_types::{BridgeNo, FlowKey, MacAddr, PortNo};

use crate::tunnel::RemoteIdx;
#[cfg(doc)]
use crate::tunnel::UNKNOWN_REMOTE;

/// Capacity of the learn-event channel shared by all workers.
pub const LEARN_QUEUE: usize = 65_536;
/// Capacity of each worker's upcall queue.
pub const UPCALL_QUEUE: usize = 1024;

/// Capacity of the offer channel shared by all workers.
pub const OFFER_QUEUE: usize = 4096;

/// The offer channel all workers share.
pub fn offer_channel() -> (Sender<Offer>, Receiver<Offer>) {
    crossbeam_channel::bounded(OFFER_QUEUE)
}

/// The learn channel all workers share.
pub fn learn_channel() -> (Sender<LearnEvent>, Receiver<LearnEvent>) {
    crossbeam_channel::bounded(LEARN_QUEUE)
}

/// One worker's upcall queue.
pub fn upcall_channel() -> (Sender<Upcall>, Receiver<Upcall>) {
    crossbeam_channel::bounded(UPCALL_QUEUE)
}

/// A MAC seen behind a port (and remote VTEP), reported to the control
/// plane, which owns the FDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnEvent {
    pub bridge: BridgeNo,
    pub vlan: u16,
    pub mac: MacAddr,
    pub port: PortNo,
    /// The remote's index in the worker's snapshot ([`UNKNOWN_REMOTE`] for
    /// a VTEP the port does not have yet); only a hint: indices can move
    /// when the control plane rebuilds the port, so it goes by `vtep`.
    pub remote: RemoteIdx,
    /// Behind a tunnel port: the VTEP the frame came from (its outer
    /// source address); `None` for a local port.
    pub vtep: Option<IpAddr>,
    pub now: u64,
}

/// What a lookup on miss asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MissKind {
    /// Where is this MAC (L2: which VTEP)?
    Mac(MacAddr),
    /// Which MAC has this address (L3, in the 128-bit form of
    /// `ip_to_u128`)?
    Ip(u128),
    /// A decapsulated frame for a MAC the FDB puts behind a tunnel: the
    /// sender's entry for it is stale (invalidation, not a question).
    NotHere(MacAddr),
}

/// A miss reported to the control plane (illumos varpd's upcall).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upcall {
    pub bridge: BridgeNo,
    pub vlan: u16,
    pub kind: MissKind,
    /// The port the frame that missed came in on, and its remote VTEP if
    /// it was decapsulated.
    pub port: PortNo,
    pub remote: RemoteIdx,
    pub now: u64,
}

/// A flow the GSO-preserving fast path may take over (docs/design.md, "A
/// GSO-preserving fast path"): the pipeline's decision for exactly this
/// flow key, in the snapshot of `generation`, was one the exact-match
/// cache replays (one output, no drop, no upcall), the frame was one the
/// TC executor describes (untagged, TCP/UDP over IPv4 without options or
/// fragments, or IPv6 without extension headers), and no firewall, policer
/// or port security sits on its way in or out. The control thread turns
/// it into a TC decision (`xvs_bpf::tc`) if the snapshot is still the one
/// it was made in and the output can be executed there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// The whole flow key, `in_port` and `tun_id` included.
    pub key: FlowKey,
    /// Its flow hash, which picks the tunnel's UDP source port.
    pub hash: u64,
    pub bridge: BridgeNo,
    /// Where the frame entered its bridge: a local port, or a tunnel port
    /// (and which of its remotes, at which outer source) for a
    /// decapsulated frame.
    pub in_port: PortNo,
    pub in_remote: RemoteIdx,
    pub vtep: Option<IpAddr>,
    /// Where it went: a local port, or a tunnel port and remote.
    pub out_port: PortNo,
    pub out_remote: RemoteIdx,
    pub generation: u64,
    /// The VLAN the frame had in its bridge, and whether the decision
    /// learns its source: while the fast path carries the flow, the
    /// control thread learns for it (its frames no longer reach a
    /// worker).
    pub vlan: u16,
    pub learn: bool,
}
