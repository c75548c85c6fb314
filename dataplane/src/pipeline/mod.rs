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

mod state;
mod suppress;

use std::net::IpAddr;

use arrayvec::ArrayVec;

use crate::events::{MissKind, Upcall};
use crate::frame::Frame;
use crate::policy::firewall::AclAction;
use crate::policy::port_security::Violation;
use crate::snapshot::{BridgeEntry, PortEntry, PortKind, PortVlan, Snapshot};
use crate::stats::DropReason;
use crate::tables::flow::{Action, EMC_HASH_SEED};
use crate::tunnel::{pop, PushMeta, RemoteIdx, NO_REMOTE};
use crate::wire::ethernet::{self, ethertype, EthernetFrame};
use crate::wire::flow::{extract, PacketInfo};
use crate::wire::vlan::{self, VlanTag};
use crate::wire::WireError;
use xvs_types::MissAction;
use xvs_types::{BridgeNo, FlowKey, PortNo};

pub use state::{PortCounters, WorkerState};

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
enum Tag {
    Untagged,
    /// TCI (PCP + VID).
    Tagged(u16),
}

/// One output of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Out {
    port: PortNo,
    remote: RemoteIdx,
    tag: Tag,
}

/// Per-frame facts every stage needs.
#[derive(Debug)]
struct Ctx<'k> {
    key: &'k FlowKey,
    hash: u64,
    in_port: PortNo,
    bridge: BridgeNo,
    /// VLAN of the frame inside its bridge.
    vlan: u16,
    /// Tag the frame arrived with (None = untagged).
    rx_tag: Option<u16>,
    /// The VTEP a decapsulated frame came from; `None` from a local port.
    vtep: Option<IpAddr>,
    now: u64,
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
        .filter(|p| p.kind == PortKind::Local)
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
                st.port = d.port;
                st.remote = d.remote;
                st.tun_id = d.vni;
                st.vtep = Some(d.vtep);
                ing
            } else {
                drop_frame(ws, in_port, frame, DropReason::UnknownPort, io);
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
                Some((pe, bridge)) => process_frame(snap, ws, pe, bridge, now, st, frame, io),
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
    frame: Frame<'a>,
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
    let fw = hit.aux;
    if fw != FW_NO_HIT {
        if let Some(f) = fw_in {
            ws.count_fw_hit(f, (fw & !FW_DROP) - 1);
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
                return reply_in_place(ws, in_port, frame, io);
            }
            suppress::Verdict::NdReply => {
                ws.nd_suppressed += 1;
                return reply_in_place(ws, in_port, frame, io);
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
fn reply_in_place<'a>(ws: &mut WorkerState, port: PortNo, frame: Frame<'a>, io: &mut BatchIo<'a>) {
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

fn firewall_drops(snap: &Snapshot, ws: &mut WorkerState, fw: u16, key: &FlowKey) -> bool {
    let Some(f) = snap.firewalls.get(usize::from(fw)) else {
        return false;
    };
    let (action, rule) = f.check(key);
    if let Some(r) = rule {
        ws.count_fw_hit(fw, r);
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
#[allow(clippy::too_many_arguments)]
fn normal<'a>(
    snap: &Snapshot,
    ws: &mut WorkerState,
    bridge: &BridgeEntry,
    ctx: &Ctx,
    remote: RemoteIdx,
    frame: &Frame<'a>,
    em: &mut Emitter,
    io: &mut BatchIo<'a>,
) {
    em.learned |= learn_src(ws, bridge, ctx, remote);
    let dst = ctx.key.dl_dst();
    if !dst.is_multicast() {
        if let Some(d) = bridge.fdb.lookup(ctx.vlan, dst) {
            // Decapsulated, for a MAC that is not local here: the sender
            // should look it up again.
            if bridge.lookup.is_some()
                && remote != NO_REMOTE
                && matches!(snap.port(d.port).map(|p| p.kind), Some(PortKind::Tunnel(_)))
            {
                ws.upcall(Upcall {
                    bridge: ctx.bridge,
                    vlan: ctx.vlan,
                    kind: MissKind::NotHere(dst),
                    port: ctx.in_port,
                    remote,
                    now: ctx.now,
                });
            }
            // Never back out of the port it came in on, whichever remote
            // VTEP: remotes of one tunnel port are a full mesh (split horizon).
            if d.port == ctx.in_port {
                em.drop_output(ws, ctx, DropReason::SamePort);
                return;
            }
            match snap.port(d.port) {
                Some(p) if p.vlan.carries(ctx.vlan) && p.bridge == ctx.bridge => {
                    let tag = egress_tag(&p.vlan, ctx.vlan);
                    em.emit(
                        snap,
                        ws,
                        ctx,
                        Out {
                            port: d.port,
                            remote: d.remote,
                            tag,
                        },
                        frame,
                        io,
                    );
                }
                _ => em.drop_output(ws, ctx, DropReason::VlanNotAllowed),
            }
            return;
        }
        if let Some(miss) = bridge.lookup {
            ws.upcall(Upcall {
                bridge: ctx.bridge,
                vlan: ctx.vlan,
                kind: MissKind::Mac(dst),
                port: ctx.in_port,
                remote,
                now: ctx.now,
            });
            match miss {
                MissAction::Drop => {
                    em.drop_output(ws, ctx, DropReason::LookupMiss);
                    return;
                }
                MissAction::Hold => {
                    em.hold = true;
                    return;
                }
                MissAction::Flood => {}
            }
        }
    }
    flood(snap, ws, bridge, ctx, frame, em, io);
}

/// Broadcast, unknown unicast and multicast: every other port of the bridge
/// that carries the VLAN, and every configured remote VTEP of its tunnel
/// ports (head-end replication; a multicast tunnel's one remote is its
/// group; dynamic remotes only get unicast). Never back to the ingress port, never into another bridge
/// (hence never into another VNI).
fn flood<'a>(
    snap: &Snapshot,
    ws: &mut WorkerState,
    bridge: &BridgeEntry,
    ctx: &Ctx,
    frame: &Frame<'a>,
    em: &mut Emitter,
    io: &mut BatchIo<'a>,
) {
    // Here rather than where the frame is classified: this is where
    // every frame that floods (NORMAL's broadcast, multicast and misses,
    // a flow's flood action) passes, and nothing else does.
    if let Some(storm) = snap.port(ctx.in_port).and_then(|p| p.storm) {
        // A flood to one output must not become a cached plan that skips
        // the policer next time.
        ws.side_effects += 1;
        if !ws.police(snap, storm, ctx.now, 1) {
            em.drop_output(ws, ctx, DropReason::StormControl);
            return;
        }
    }
    for &p in bridge.ports.iter() {
        if p == ctx.in_port {
            continue;
        }
        let Some(pe) = snap.port(p) else { continue };
        if !pe.vlan.carries(ctx.vlan) {
            continue;
        }
        let tag = egress_tag(&pe.vlan, ctx.vlan);
        emit_all_remotes(snap, ws, ctx, p, pe.kind, tag, frame, em, io);
    }
}

/// Emits to a port; for a tunnel port, to each of its configured remote
/// VTEPs (its flood set).
#[allow(clippy::too_many_arguments)]
fn emit_all_remotes<'a>(
    snap: &Snapshot,
    ws: &mut WorkerState,
    ctx: &Ctx,
    port: PortNo,
    kind: PortKind,
    tag: Tag,
    frame: &Frame<'a>,
    em: &mut Emitter,
    io: &mut BatchIo<'a>,
) {
    match kind {
        PortKind::Tunnel(t) => {
            let n = snap.tunnels.get(t).map_or(0, |tp| tp.flood_len());
            for r in 0..n {
                em.emit(
                    snap,
                    ws,
                    ctx,
                    Out {
                        port,
                        remote: r as RemoteIdx,
                        tag,
                    },
                    frame,
                    io,
                );
            }
        }
        _ => em.emit(
            snap,
            ws,
            ctx,
            Out {
                port,
                remote: NO_REMOTE,
                tag,
            },
            frame,
            io,
        ),
    }
}

fn egress_tag(vlan: &PortVlan, v: u16) -> Tag {
    match vlan.egress(v) {
        Some(vid) => Tag::Tagged(vid),
        None => Tag::Untagged,
    }
}

/// Executes a flow's action list in order.
#[allow(clippy::too_many_arguments)]
fn run_actions<'a>(
    snap: &Snapshot,
    ws: &mut WorkerState,
    bridge: &BridgeEntry,
    ctx: &Ctx,
    remote: RemoteIdx,
    actions: &[Action],
    frame: &Frame<'a>,
    em: &mut Emitter,
    io: &mut BatchIo<'a>,
) {
    // Explicit outputs send the frame as received unless a VLAN action
    // changed it, as OpenFlow's output action does.
    let mut tag = match ctx.rx_tag {
        Some(_) => Tag::Tagged(ctx.key.vlan_tci() & 0x7fff),
        None => Tag::Untagged,
    };
    for a in actions {
        match *a {
            Action::Output(p) | Action::Tunnel { port: p, .. } if p == ctx.in_port => {
                em.drop_output(ws, ctx, DropReason::SamePort);
            }
            Action::Output(p) => match snap.port(p) {
                Some(pe) if pe.bridge == ctx.bridge && pe.kind != PortKind::Uplink => {
                    emit_all_remotes(snap, ws, ctx, p, pe.kind, tag, frame, em, io)
                }
                _ => em.drop_output(ws, ctx, DropReason::UnknownPort),
            },
            Action::Tunnel { port, remote } => match snap.port(port) {
                Some(pe) if pe.bridge == ctx.bridge && matches!(pe.kind, PortKind::Tunnel(_)) => {
                    em.emit(snap, ws, ctx, Out { port, remote, tag }, frame, io)
                }
                _ => em.drop_output(ws, ctx, DropReason::UnknownPort),
            },
            Action::Normal => normal(snap, ws, bridge, ctx, remote, frame, em, io),
            Action::Flood => flood(snap, ws, bridge, ctx, frame, em, io),
            Action::Drop => break,
            Action::PushVlan(vid) => tag = Tag::Tagged(vid & 0x0fff),
            Action::StripVlan => tag = Tag::Untagged,
        }
    }
}

/// Sends outputs one behind: an output is emitted as a copy only once a
/// later one is known, so the last (usually the only) output takes the
/// received frame itself and unicast never copies.
#[derive(Debug)]
struct Emitter {
    pending: Option<Out>,
    outputs: u32,
    /// A drop was counted for the frame on the way (see
    /// [`Emitter::drop_output`]).
    counted: bool,
    /// The destination missed and the bridge holds such frames.
    hold: bool,
    /// NORMAL learned the source.
    learned: bool,
}

impl Emitter {
    /// Counts the drop of an output decided for the frame (or of the
    /// frame, where it is the only decision): then the frame has had its
    /// reason, and [`Emitter::finish`] must not count it again as having
    /// no output.
    fn drop_output(&mut self, ws: &mut WorkerState, ctx: &Ctx, r: DropReason) {
        self.counted = true;
        ws.count_drop(ctx.in_port, r);
    }

    fn emit<'a>(
        &mut self,
        snap: &Snapshot,
        ws: &mut WorkerState,
        ctx: &Ctx,
        out: Out,
        frame: &Frame<'a>,
        io: &mut BatchIo<'a>,
    ) {
        self.outputs += 1;
        if let Some(prev) = self.pending.replace(out) {
            let more = || io.more.as_mut().and_then(|m| m.take());
            let Some(buf) = io.spare.pop().or_else(more) else {
                ws.count_drop(ctx.in_port, DropReason::NoBuffer);
                return;
            };
            match frame.copy_into(buf) {
                Ok(copy) => {
                    ws.replicas += 1;
                    send(snap, ws, ctx, prev, copy, io);
                }
                Err(buf) => {
                    ws.count_drop(ctx.in_port, DropReason::NoBuffer);
                    io.free.push(buf);
                }
            }
        }
    }

    fn finish<'a>(
        self,
        snap: &Snapshot,
        ws: &mut WorkerState,
        ctx: &Ctx,
        frame: Frame<'a>,
        no_output: DropReason,
        io: &mut BatchIo<'a>,
    ) {
        match self.pending {
            Some(last) => send(snap, ws, ctx, last, frame, io),
            None => {
                // Drops of individual outputs were counted where they
                // happened; count the frame once more only if it had none.
                if self.outputs == 0 && !self.counted {
                    ws.count_drop(ctx.in_port, no_output);
                }
                io.free.push(frame.into_buf());
            }
        }
    }
}

/// Egress stages for one output, then onto the tx list.
fn send<'a>(
    snap: &Snapshot,
    ws: &mut WorkerState,
    ctx: &Ctx,
    out: Out,
    mut frame: Frame<'a>,
    io: &mut BatchIo<'a>,
) {
    let Some(pe) = snap.port(out.port) else {
        return drop_frame(ws, out.port, frame, DropReason::UnknownPort, io);
    };
    if let Some(fw) = pe.firewall[1] {
        if firewall_drops(snap, ws, fw, ctx.key) {
            return drop_frame(ws, out.port, frame, DropReason::FirewallOut, io);
        }
    }
    if let Err(r) = retag(&mut frame, ctx.rx_tag.is_some(), out.tag) {
        return drop_frame(ws, out.port, frame, r, io);
    }
    if let Some(p) = pe.policer[1] {
        if !ws.police(snap, p, ctx.now, frame.len()) {
            return drop_frame(ws, out.port, frame, DropReason::PolicerOut, io);
        }
    }
    let tagged = out.tag != Tag::Untagged;
    let tx_port = match pe.kind {
        PortKind::Local => {
            let max =
                usize::from(pe.mtu) + ethernet::HEADER_LEN + if tagged { vlan::TAG_LEN } else { 0 };
            if frame.len() > max {
                return drop_frame(ws, out.port, frame, DropReason::TooBig, io);
            }
            out.port
        }
        PortKind::Tunnel(t) => {
            let (Some(tp), Some(uplink)) = (snap.tunnels.get(t), snap.uplink) else {
                return drop_frame(ws, out.port, frame, DropReason::NoRoute, io);
            };
            let tpl = match tp.template(out.remote) {
                Ok(t) => t,
                Err(r) => return drop_frame(ws, out.port, frame, r, io),
            };
            if frame.headroom() < tpl.len() {
                if !frame.make_headroom(tpl.len()) {
                    return drop_frame(ws, out.port, frame, DropReason::NoHeadroom, io);
                }
                ws.copies += 1;
            }
            let meta = PushMeta {
                flow_hash: ctx.hash,
                inner_tos: ctx.key.ip_tos(),
                ip_id: ws.next_ip_id(),
            };
            if let Err(r) = tpl.push(&mut frame, &meta) {
                return drop_frame(ws, out.port, frame, r, io);
            }
            if frame.len() > usize::from(snap.uplink_mtu) + ethernet::HEADER_LEN {
                return drop_frame(ws, out.port, frame, DropReason::TooBig, io);
            }
            ws.count_tx(out.port, frame.len());
            uplink
        }
        PortKind::Uplink | PortKind::Absent => {
            return drop_frame(ws, out.port, frame, DropReason::UnknownPort, io)
        }
    };
    ws.count_tx(tx_port, frame.len());
    io.tx.push(TxFrame {
        frame,
        port: tx_port,
    });
}

/// Makes the frame's 802.1Q tag what the output wants, moving only the 12
/// MAC-address bytes (never the payload).
fn retag(frame: &mut Frame<'_>, has_tag: bool, want: Tag) -> Result<(), DropReason> {
    match (has_tag, want) {
        (false, Tag::Untagged) => Ok(()),
        (true, Tag::Untagged) => {
            if frame.remove_gap(12, vlan::TAG_LEN) {
                Ok(())
            } else {
                Err(WireError::Truncated.into())
            }
        }
        (true, Tag::Tagged(tci)) => {
            let tag = frame.data_mut().get_mut(14..).ok_or(WireError::Truncated)?;
            VlanTag::new_checked(tag)?.set_tci(tci);
            Ok(())
        }
        (false, Tag::Tagged(tci)) => {
            // The gap opens at offset 12; the old ethertype slides to 16.
            if frame.insert_gap(12, vlan::TAG_LEN).is_none() {
                return Err(DropReason::NoHeadroom);
            }
            let data = frame.data_mut();
            EthernetFrame::new_checked(&mut *data)?.set_ethertype(ethertype::VLAN);
            let tag = data.get_mut(14..).ok_or(WireError::Truncated)?;
            VlanTag::new_checked(tag)?.set_tci(tci);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
