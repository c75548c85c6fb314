//! The per-packet pipeline: everything a worker does to a batch of frames
//! received on one port, with no I/O in it.
//!
//! ```text
//! pass 1, per frame: rx ─► (uplink: tunnel pop) ─► parse ─► VLAN ingress ─► hash, prefetch
//! pass 2, per frame: EMC (flow rule, firewall in verdict, cached decision) ─► policer in
//!    ─► cached decision, or flow actions / NORMAL (learn, FDB, flood)
//!    ─► per output: VLAN egress ─► firewall out ─► policer out ─► (tunnel push) ─► tx
//! ```
//!
//! Invariants (Quilkin's and OVS's): every frame that comes in leaves either
//! in `io.tx` or as a buffer in `io.free`, on every path; every drop has one
//! counted [`DropReason`]; nothing here allocates, locks or blocks. Replicas
//! of a flooded frame are built in spare buffers the caller provides (up
//! front, or on demand through a [`SpareSource`]); the
//! last output reuses the received frame, so a unicast frame is edited in
//! place and never copied. Workers never write shared state: learned MACs
//! leave as [`LearnEvent`](crate::events::LearnEvent)s on a bounded channel (counted when full) and come
//! back in a later snapshot.

#![forbid(unsafe_code)]

mod egress;
mod mirror;
mod pmtu;
mod state;
mod suppress;
pub mod trace;

use std::net::IpAddr;

use arrayvec::ArrayVec;

use crate::events::{MissKind, Offer, Upcall};
use crate::frame::Frame;
use crate::policy::firewall::AclAction;
use crate::policy::port_security::Violation;
use crate::snapshot::{BridgeEntry, PortEntry, PortKind, PortVlan, Snapshot};
use crate::stats::DropReason;
use crate::tables::flow::{Action, EMC_HASH_SEED};
use crate::tunnel::{pop, PushMeta, RemoteIdx, NO_REMOTE};
use crate::wire::ethernet::{self, ethertype, EthernetFrame};
use crate::wire::flow::{extract, PacketInfo};
use crate::wire::offload::{finish_l4, L4Checksum};
use crate::wire::vlan::{self, VlanTag};
use crate::wire::WireError;
use xvs_types::MissAction;
use xvs_types::{BridgeNo, FlowKey, PortNo};

use egress::{normal, run_actions, send, Emitter};
pub use state::{FlowHits, MirrorCount, PolicerCount, PortCounters, RuleCount, WorkerState};

/// A frame to transmit and the port it leaves by.
///
/// `repr(C)` with the frame first, rather than a `(PortNo, Frame)` tuple:
/// rustc laid the tuple out port first, and LLVM built each pushed element
/// on the stack and copied it into the vector with loads that straddled
/// the stores that had just filled it, a failed store-to-load forward on
/// every packet (65% of `send`'s samples in perf on a saturated 64 B
/// encap run). Frame first, the copy is two 16-byte moves; xvsd's own
/// cycles per packet fell by about 20 (A/B, three alternating runs each,
/// 337 to 315).
#[repr(C)]
#[derive(Debug)]
pub struct TxFrame<'a> {
    /// The frame, ready to go.
    pub frame: Frame<'a>,
    /// The port it goes out of.
    pub port: PortNo,
}

/// More free buffers for replicas, taken one at a time once
/// [`BatchIo::spare`] is empty. A batch's floods need up to a batch times
/// a bridge's outputs (64 remote VTEPs, 32 ports: thousands), which no
/// fixed number offered up front covers; a source lends them on demand
/// from the caller's pool (the worker's UMEM), so a batch that floods
/// nothing costs nothing.
pub trait SpareSource<'a> {
    /// A free buffer, or `None` when the pool is dry (the replica is then
    /// dropped as `NoBuffer`). Every buffer taken comes back through the
    /// batch's `tx` or `free`.
    fn take(&mut self) -> Option<&'a mut [u8]>;
}

/// Buffers a batch moves through. The caller (the AF_XDP worker, a test or
/// a benchmark) owns the vectors and reuses them across batches; their
/// capacity must cover the frames received, the spares offered and any
/// `more` may lend, so pushes never allocate.
#[derive(Default)]
pub struct BatchIo<'a> {
    /// Free buffers the pipeline may take for replicas of flooded frames.
    pub spare: Vec<&'a mut [u8]>,
    /// Where more come from once `spare` is empty (none: `spare` is all).
    pub more: Option<&'a mut dyn SpareSource<'a>>,
    /// Frames to transmit, with the port each goes out of (a local port or
    /// the uplink, never a tunnel port).
    pub tx: Vec<TxFrame<'a>>,
    /// Buffers to recycle: dropped frames.
    pub free: Vec<&'a mut [u8]>,
    /// Frames whose destination missed in a bridge whose lookup holds
    /// them: the caller keeps each (its buffer untouched) and runs it
    /// again with [`process_held`] once a newer snapshot is out, or drops
    /// it at its deadline.
    pub held: Vec<(HeldMeta, Frame<'a>)>,
}

impl std::fmt::Debug for BatchIo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchIo")
            .field("spare", &self.spare.len())
            .field("more", &self.more.is_some())
            .field("tx", &self.tx)
            .field("free", &self.free.len())
            .field("held", &self.held)
            .finish()
    }
}

/// Where a held frame entered its bridge, and for how long it may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldMeta {
    pub port: PortNo,
    pub remote: RemoteIdx,
    /// The outer source, for a decapsulated frame.
    pub vtep: Option<IpAddr>,
    pub tun_id: u32,
    pub hold_ns: u64,
}

/// How a frame's 802.1Q tag must look when it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tag {
    Untagged,
    /// TCI (PCP + VID).
    Tagged(u16),
}

/// One output of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Out {
    pub(super) port: PortNo,
    pub(super) remote: RemoteIdx,
    pub(super) tag: Tag,
}

/// Per-frame facts every stage needs.
#[derive(Debug)]
pub(super) struct Ctx<'k> {
    pub(super) key: &'k FlowKey,
    pub(super) hash: u64,
    pub(super) in_port: PortNo,
    pub(super) bridge: BridgeNo,
    /// VLAN of the frame inside its bridge.
    pub(super) vlan: u16,
    /// Tag the frame arrived with (None = untagged).
    pub(super) rx_tag: Option<u16>,
    /// The VTEP a decapsulated frame came from; `None` from a local port.
    pub(super) vtep: Option<IpAddr>,
    pub(super) now: u64,
}

/// Frames one pass of [`process_batch`] takes at most: a worker's rx batch.
pub const STAGE_FRAMES: usize = 64;

/// What the first pass over a batch finds out about a frame, for the
/// second: where it entered its bridge, its flow key and hash, its VLAN.
///
/// Why two passes: the key is written word by word as the headers are
/// parsed, and the exact-match compare reads it back 16 bytes at a time; a
/// wide load of words still in the store buffer cannot be forwarded and
/// stalls until they drain (about a fifth of the per-frame time when both
/// happened in one pass). Parsed a batch ahead, the stores are long
/// committed, and the first pass can prefetch each frame's cache set.
/// The slots live in the worker state and are written in place: moving
/// staged entries around (an earlier staged design) cost more than it saved.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Staged {
    key: FlowKey,
    hash: u64,
    info: PacketInfo,
    vlan: u16,
    rx_tag: Option<u16>,
    /// The logical ingress port (a tunnel port for decapsulated frames),
    /// the remote VTEP's index and address, and the VNI.
    port: PortNo,
    remote: RemoteIdx,
    tun_id: u32,
    vtep: Option<IpAddr>,
}

/// Processes a batch of frames received on `in_port`.
///
/// `snap` is the snapshot the worker loaded for this batch; `now` is the
/// worker's monotonic clock in nanoseconds (policers, learning refresh).
pub fn process_batch<'a, I>(
    snap: &Snapshot,
    ws: &mut WorkerState,
    in_port: PortNo,
    now: u64,
    rx: I,
    io: &mut BatchIo<'a>,
) where
    I: IntoIterator<Item = Frame<'a>>,
{
    ws.sync(snap);
    // Everything about the receiving port is looked up once per batch.
    let rx_pe = snap.port(in_port);
    let local = rx_pe
        .filter(|p| p.kind == PortKind::Local && !p.mirror_output)
        .and_then(|pe| Some((pe, snap.bridges.get(usize::from(pe.bridge))?)));
    let uplink = rx_pe.is_some_and(|p| p.kind == PortKind::Uplink);
    let mut stage = std::mem::take(&mut ws.stage);
    if stage.len() < STAGE_FRAMES {
        // Only a state built without its stage (never on the hot path).
        stage = vec![Staged::default(); STAGE_FRAMES].into_boxed_slice();
    }
    let mut frames: ArrayVec<Frame<'a>, STAGE_FRAMES> = ArrayVec::new();
    let mut rx = rx.into_iter();
    loop {
        for mut frame in rx.by_ref() {
            ws.count_rx(in_port, frame.len());
            let Some(st) = stage.get_mut(frames.len()) else {
                // Never: the pass ends when `frames` is full.
                drop_frame(ws, in_port, frame, DropReason::NoBuffer, io);
                continue;
            };
            let (pe, bridge) = if let Some(l) = local {
                st.port = in_port;
                st.remote = NO_REMOTE;
                st.tun_id = 0;
                st.vtep = None;
                l
            } else if uplink {
                // Tunnel traffic arrives on the uplink and is attributed to
                // its tunnel port by pop; nothing is received "on" a tunnel
                // port.
                let d = match pop(&snap.tunnels, &mut frame) {
                    Ok(d) => d,
                    Err(r) => {
                        drop_frame(ws, in_port, frame, r, io);
                        continue;
                    }
                };
                let Some(ing) = ingress_of(snap, d.port) else {
                    drop_frame(ws, in_port, frame, DropReason::UnknownPort, io);
                    continue;
                };
                ws.count_rx(d.port, frame.len());
                if ing.0.mirror_output {
                    drop_frame(ws, d.port, frame, DropReason::MirrorOutput, io);
                    continue;
                }
                st.port = d.port;
                st.remote = d.remote;
                st.tun_id = d.vni;
                st.vtep = Some(d.vtep);
                ing
            } else {
                let r = if rx_pe.is_some_and(|p| p.mirror_output) {
                    DropReason::MirrorOutput
                } else {
                    DropReason::UnknownPort
                };
                drop_frame(ws, in_port, frame, r, io);
                continue;
            };
            if let Some(frame) = stage_frame(ws, pe, frame, st, io) {
                ws.emc.prefetch(st.hash);
                let dst = st.key.dl_dst();
                if !dst.is_multicast() {
                    bridge.fdb.prefetch(st.vlan, dst);
                }
                frames.push(frame);
                if frames.is_full() {
                    break;
                }
            }
        }
        if frames.is_empty() {
            break;
        }
        for (st, frame) in stage.iter().zip(frames.drain(..)) {
            // The first pass resolved the port; the lookup is repeated
            // rather than carried so that nothing built per frame is copied
            // here (see `Staged`).
            match local.or_else(|| ingress_of(snap, st.port)) {
                Some((pe, bridge)) => {
                    // Here, not in `process_frame`: a held frame run
                    // again was mirrored when it came in.
                    if let Some(m) = pe.mirror[0] {
                        mirror::copy(snap, ws, m, &st.key, st.hash, &frame, io);
                    }
                    process_frame(snap, ws, pe, bridge, now, st, frame, io)
                }
                None => drop_frame(ws, st.port, frame, DropReason::UnknownPort, io),
            }
        }
    }
    ws.stage = stage;
}

/// The port entry and bridge of a port that is in a bridge.
fn ingress_of(snap: &Snapshot, port: PortNo) -> Option<(&PortEntry, &BridgeEntry)> {
    let pe = snap.port(port)?;
    Some((pe, snap.bridges.get(usize::from(pe.bridge))?))
}

/// First pass over a frame that entered its bridge by `pe`: flow key,
/// hash and VLAN into `st`. A frame that fails here is dropped (counted).
#[inline]
fn stage_frame<'a>(
    ws: &mut WorkerState,
    pe: &PortEntry,
    mut frame: Frame<'a>,
    st: &mut Staged,
    io: &mut BatchIo<'a>,
) -> Option<Frame<'a>> {
    st.info = match extract(frame.data(), &mut st.key) {
        Ok(i) => i,
        Err(e) => {
            drop_frame(ws, st.port, frame, e.into(), io);
            return None;
        }
    };
    // Here, where local and decapsulated frames meet: both may carry a
    // checksum left to offload, and every output must get it complete.
    if finish_l4(frame.data_mut(), &st.key, &st.info) == L4Checksum::Completed {
        ws.count_csum_completed(st.port);
    }
    // Checked here, where local and decapsulated frames meet, before
    // anything (learning above all) reads the source.
    let src = st.key.dl_src();
    if src.is_multicast() || src.is_zero() {
        drop_frame(ws, st.port, frame, DropReason::BadSrcMac, io);
        return None;
    }
    if let Some(sec) = &pe.security {
        if let Err(v) = sec.check(&st.key, &st.info, frame.data()) {
            let r = match v {
                Violation::Mac => DropReason::SpoofedMac,
                Violation::Ip => DropReason::SpoofedIp,
            };
            drop_frame(ws, st.port, frame, r, io);
            return None;
        }
    }
    st.key.set_in_port(st.port);
    st.key.set_tun_id(st.tun_id);
    st.rx_tag = st.key.vlan_vid();
    st.vlan = match pe.vlan.ingress(st.rx_tag) {
        Some(v) => v,
        None => {
            let r = if matches!(pe.kind, PortKind::Tunnel(_)) && st.rx_tag.is_some() {
                DropReason::InnerVlan
            } else {
                DropReason::VlanNotAllowed
            };
            drop_frame(ws, st.port, frame, r, io);
            return None;
        }
    };
    st.hash = st.key.hash_with(EMC_HASH_SEED);
    Some(frame)
}

/// Runs a frame held earlier (see [`BatchIo::held`]) through the pipeline
/// again, from where it entered its bridge: forwarded if `snap` now knows
/// its destination, else held again.
pub fn process_held<'a>(
    snap: &Snapshot,
    ws: &mut WorkerState,
    meta: HeldMeta,
    now: u64,
    frame: Frame<'a>,
    io: &mut BatchIo<'a>,
) {
    ws.sync(snap);
    let Some((pe, bridge)) = ingress_of(snap, meta.port) else {
        return drop_frame(ws, meta.port, frame, DropReason::UnknownPort, io);
    };
    let mut st = Staged {
        port: meta.port,
        remote: meta.remote,
        tun_id: meta.tun_id,
        vtep: meta.vtep,
        ..Staged::default()
    };
    if let Some(frame) = stage_frame(ws, pe, frame, &mut st, io) {
        process_frame(snap, ws, pe, bridge, now, &st, frame, io);
    }
}

fn drop_frame<'a>(
    ws: &mut WorkerState,
    port: PortNo,
    frame: Frame<'a>,
    r: DropReason,
    io: &mut BatchIo<'a>,
) {
    ws.count_drop(port, r);
    io.free.push(frame.into_buf());
}

/// Runs one frame, already attributed to its ingress port and staged,
/// through the rest of the pipeline.
#[allow(clippy::too_many_arguments)]
fn process_frame<'a>(
    snap: &Snapshot,
    ws: &mut WorkerState,
    pe: &PortEntry,
    bridge: &BridgeEntry,
    now: u64,
    st: &Staged,
    mut frame: Frame<'a>,
    io: &mut BatchIo<'a>,
) {
    let in_port = st.port;
    let ctx = Ctx {
        key: &st.key,
        hash: st.hash,
        in_port,
        bridge: pe.bridge,
        vlan: st.vlan,
        rx_tag: st.rx_tag,
        vtep: st.vtep,
        now,
    };
    let info = st.info;
    let fw_in = pe.firewall[0];
    let hit = ws
        .emc
        .lookup_with_aux(&bridge.flows, ctx.key, ctx.hash, snap.generation, |k| {
            firewall_verdict(snap, fw_in, k)
        });
    if let Some(rule) = hit.rule {
        ws.count_flow_hit(pe.bridge, rule, frame.len(), now);
    }
    let fw = hit.aux;
    if fw != FW_NO_HIT {
        if let Some(f) = fw_in {
            ws.count_fw_hit(f, (fw & !FW_DROP) - 1, frame.len(), now);
        }
        if fw & FW_DROP != 0 {
            return drop_frame(ws, in_port, frame, DropReason::FirewallIn, io);
        }
    }
    if let Some(p) = pe.policer[0] {
        if !ws.police(snap, p, now, frame.len()) {
            return drop_frame(ws, in_port, frame, DropReason::PolicerIn, io);
        }
    }
    // Requests from a local port for a known address are answered here;
    // from a tunnel they were the sender's switch's to answer.
    if bridge.arp_suppress && pe.kind == PortKind::Local && suppress::candidate(ctx.key) {
        match suppress::answer(&mut frame, ctx.key, &info, &bridge.addrs, ctx.vlan) {
            suppress::Verdict::ArpReply => {
                ws.arp_suppressed += 1;
                return reply_in_place(snap, ws, pe, &ctx, frame, io);
            }
            suppress::Verdict::NdReply => {
                ws.nd_suppressed += 1;
                return reply_in_place(snap, ws, pe, &ctx, frame, io);
            }
            suppress::Verdict::Miss(ip) => {
                if bridge.lookup.is_some() {
                    ws.upcall(Upcall {
                        bridge: ctx.bridge,
                        vlan: ctx.vlan,
                        kind: MissKind::Ip(ip),
                        port: in_port,
                        remote: st.remote,
                        now,
                    });
                }
            }
            suppress::Verdict::Pass => {}
        }
    }
    let remote = st.remote;
    if let Some(plan) = Plan::decode(hit.plan) {
        ws.plan_hits += 1;
        if plan.learn {
            learn_src(ws, bridge, &ctx, remote);
        }
        if ws.offers_on() {
            offer(snap, ws, pe, st, plan, ctx.now);
        }
        return send(snap, ws, &ctx, plan.out, frame, io);
    }
    let side_effects = ws.side_effects;
    let mut em = Emitter {
        pending: None,
        outputs: 0,
        counted: false,
        hold: false,
        learned: false,
    };
    let rule = hit.rule;
    let no_output = if bridge.flows.is_empty() {
        // A bridge without flows is a learning switch, as Open vSwitch is
        // with its default NORMAL flow.
        normal(snap, ws, bridge, &ctx, remote, &frame, &mut em, io);
        DropReason::NoOutput
    } else {
        // A table miss drops (rule None): there is no controller to ask.
        if let Some(rule) = rule {
            run_actions(
                snap,
                ws,
                bridge,
                &ctx,
                remote,
                bridge.flows.actions(rule),
                &frame,
                &mut em,
                io,
            );
        }
        DropReason::FlowDrop
    };
    if em.hold && em.pending.is_none() && em.outputs == 0 {
        ws.held += 1;
        let meta = HeldMeta {
            port: in_port,
            remote: st.remote,
            vtep: st.vtep,
            tun_id: st.tun_id,
            hold_ns: bridge.lookup_hold_ns,
        };
        io.held.push((meta, frame));
        return;
    }
    // One output reached without a drop or an upcall on the way: the same
    // key finds the same output in this snapshot, so the cache may answer
    // it next time without running the actions (learning is replayed).
    if let (1, Some(out), false) = (em.outputs, em.pending, em.hold) {
        if ws.side_effects == side_effects {
            let plan = Plan {
                out,
                learn: em.learned,
            };
            ws.emc.set_plan(&hit, plan.encode());
        }
    }
    em.finish(snap, ws, &ctx, frame, no_output, io);
}

/// Offers the flow staged in `st`, decided `out`, to the fast path if it
/// can take it. Out of line: with offers off (the default, and every
/// benchmark) the cached-decision path pays one test for it.
#[cold]
#[inline(never)]
fn offer(snap: &Snapshot, ws: &mut WorkerState, pe: &PortEntry, st: &Staged, plan: Plan, now: u64) {
    let out = plan.out;
    if offerable(snap, pe, st, out) {
        ws.offer(
            now,
            Offer {
                key: st.key,
                hash: st.hash,
                bridge: pe.bridge,
                in_port: st.port,
                in_remote: st.remote,
                vtep: st.vtep,
                out_port: out.port,
                out_remote: out.remote,
                generation: snap.generation,
                vlan: st.vlan,
                learn: plan.learn,
            },
        );
    }
}

/// Whether the fast path's TC executor can carry out the cached decision
/// `out` for the frame staged in `st` exactly as the pipeline does: an
/// untagged frame it describes (TCP/UDP over IPv4 without options or
/// fragments, or IPv6 without extension headers: `xvs_tc.bpf.c`'s
/// `flow_key`), to one untagged output, with nothing per packet on the
/// way (firewall, policer, mirror, port security on either port; a decapsulated
/// frame's remote must be a known one). Whether the output's template can
/// be pushed there is the control thread's to check.
fn offerable(snap: &Snapshot, pe: &PortEntry, st: &Staged, out: Out) -> bool {
    let plain = match st.key.eth_type() {
        ethertype::IPV4 => st.info.l4_offset == 34 && !st.info.is_fragment,
        ethertype::IPV6 => st.info.l4_offset == 54,
        _ => false,
    };
    let l4 = matches!(st.key.ip_proto(), 6 | 17);
    let quiet = |p: &PortEntry| {
        p.firewall == [None, None] && p.policer == [None, None] && p.mirror == [None, None]
    };
    plain
        && l4
        && st.rx_tag.is_none()
        && out.tag == Tag::Untagged
        && st.remote != crate::tunnel::UNKNOWN_REMOTE
        && quiet(pe)
        && pe.security.is_none()
        && snap
            .port(out.port)
            .is_some_and(|o| quiet(o) && o.kind != PortKind::Uplink)
}

/// A forwarding decision as the exact-match cache keeps it: the one output
/// and whether NORMAL learned the source on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    out: Out,
    learn: bool,
}

impl Plan {
    const VALID: u64 = 1 << 63;
    const LEARN: u64 = 1 << 49;
    const TAGGED: u64 = 1 << 48;

    fn encode(self) -> u64 {
        let tag = match self.out.tag {
            Tag::Untagged => 0,
            Tag::Tagged(tci) => Self::TAGGED | u64::from(tci) << 32,
        };
        Self::VALID
            | if self.learn { Self::LEARN } else { 0 }
            | tag
            | u64::from(self.out.remote) << 16
            | u64::from(self.out.port)
    }

    #[inline]
    fn decode(v: u64) -> Option<Plan> {
        if v & Self::VALID == 0 {
            return None;
        }
        Some(Plan {
            out: Out {
                port: v as u16,
                remote: (v >> 16) as u16,
                tag: if v & Self::TAGGED != 0 {
                    Tag::Tagged((v >> 32) as u16)
                } else {
                    Tag::Untagged
                },
            },
            learn: v & Self::LEARN != 0,
        })
    }
}

/// Sends a frame the switch rewrote into its own answer back out of the
/// port it came in on, as it is (tag included). It is the switch speaking
/// for the table, not a forwarded frame: the request already passed the
/// port's ingress firewall and policer, and no egress stage applies.
fn reply_in_place<'a>(
    snap: &Snapshot,
    ws: &mut WorkerState,
    pe: &PortEntry,
    ctx: &Ctx,
    frame: Frame<'a>,
    io: &mut BatchIo<'a>,
) {
    // It leaves by the port all the same: its egress mirrors see it.
    if let Some(m) = pe.mirror[1] {
        mirror::copy(snap, ws, m, ctx.key, ctx.hash, &frame, io);
    }
    let port = ctx.in_port;
    ws.count_tx(port, frame.len());
    io.tx.push(TxFrame { frame, port });
}

/// Ingress firewall verdict as cached in the exact-match cache: no rule hit,
/// or the rule index + 1, with [`FW_DROP`] set when that rule drops.
const FW_NO_HIT: u32 = 0;
const FW_DROP: u32 = 1 << 31;

fn firewall_verdict(snap: &Snapshot, fw: Option<u16>, key: &FlowKey) -> u32 {
    let Some(f) = fw.and_then(|f| snap.firewalls.get(usize::from(f))) else {
        return FW_NO_HIT;
    };
    match f.check(key) {
        (_, None) => FW_NO_HIT,
        (AclAction::Allow, Some(r)) => (r + 1) & !FW_DROP,
        (AclAction::Drop, Some(r)) => ((r + 1) & !FW_DROP) | FW_DROP,
    }
}

fn firewall_drops(
    snap: &Snapshot,
    ws: &mut WorkerState,
    fw: u16,
    key: &FlowKey,
    bytes: usize,
    now: u64,
) -> bool {
    let Some(f) = snap.firewalls.get(usize::from(fw)) else {
        return false;
    };
    let (action, rule) = f.check(key);
    if let Some(r) = rule {
        ws.count_fw_hit(fw, r, bytes, now);
    }
    action == AclAction::Drop
}

/// NORMAL's learning step; returns whether the source was learnable.
#[inline]
fn learn_src(ws: &mut WorkerState, bridge: &BridgeEntry, ctx: &Ctx, remote: RemoteIdx) -> bool {
    let src = ctx.key.dl_src();
    if !bridge.learning || src.is_multicast() || src.is_zero() {
        return false;
    }
    ws.learn(
        bridge,
        ctx.bridge,
        ctx.vlan,
        src,
        ctx.in_port,
        remote,
        ctx.vtep,
        ctx.now,
    );
    true
}

/// The L2 learning switch (OpenFlow NORMAL).
#[cfg(test)]
mod tests;
