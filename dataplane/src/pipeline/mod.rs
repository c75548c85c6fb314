//! The per-packet pipeline: everything a worker does to a batch of frames
//! received on one port, with no I/O in it.
//!
//! ```text
//! rx ─► (uplink: tunnel pop) ─► parse ─► VLAN ingress ─► firewall in ─► policer in
//!    ─► flow table (EMC, classifier) or NORMAL (learn, FDB, flood)
//!    ─► per output: VLAN egress ─► firewall out ─► policer out ─► (tunnel push) ─► tx
//! ```
//!
//! Invariants (Quilkin's and OVS's): every frame that comes in leaves either
//! in `io.tx` or as a buffer in `io.free`, on every path; every drop has one
//! counted [`DropReason`]; nothing here allocates, locks or blocks. Replicas
//! of a flooded frame are built in spare buffers the caller provides; the
//! last output reuses the received frame, so a unicast frame is edited in
//! place and never copied. Workers never write shared state: learned MACs
//! leave as [`LearnEvent`]s on a bounded channel (counted when full) and come
//! back in a later snapshot.

mod state;
mod suppress;

use std::net::IpAddr;

use crate::config::MissAction;
use crate::frame::Frame;
use crate::policy::firewall::AclAction;
use crate::snapshot::{BridgeEntry, PortEntry, PortKind, PortVlan, Snapshot};
use crate::stats::DropReason;
use crate::tables::flow::{Action, EMC_HASH_SEED};
use crate::tunnel::{pop, PushMeta, RemoteIdx, NO_REMOTE};
use crate::types::{BridgeNo, FlowKey, PortNo};
use crate::wire::ethernet::{ethertype, EthernetFrame};
use crate::wire::flow::extract;
use crate::wire::vlan::{self, VlanTag};
use crate::wire::WireError;

pub use state::{LearnEvent, MissKind, PortCounters, Upcall, WorkerState};

/// Buffers a batch moves through. The caller (the AF_XDP worker, a test or
/// a benchmark) owns the vectors and reuses them across batches; their
/// capacity must cover `rx.len() + spare.len()` so pushes never allocate.
#[derive(Debug, Default)]
pub struct BatchIo<'a> {
    /// Free buffers the pipeline may take for replicas of flooded frames.
    pub spare: Vec<&'a mut [u8]>,
    /// Frames to transmit, with the port each goes out of (a local port or
    /// the uplink, never a tunnel port).
    pub tx: Vec<(PortNo, Frame<'a>)>,
    /// Buffers to recycle: dropped frames.
    pub free: Vec<&'a mut [u8]>,
    /// Frames whose destination missed in a bridge whose lookup holds
    /// them: the caller keeps each (its buffer untouched) and runs it
    /// again with [`process_held`] once a newer snapshot is out, or drops
    /// it at its deadline.
    pub held: Vec<(HeldMeta, Frame<'a>)>,
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
struct Ctx {
    key: FlowKey,
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
    let local = rx_pe.filter(|p| p.kind == PortKind::Local).and_then(|pe| {
        let bridge = snap.bridges.get(usize::from(pe.bridge))?;
        Some(Ingress {
            port: in_port,
            pe,
            bridge,
            remote: NO_REMOTE,
            vtep: None,
            tun_id: 0,
        })
    });
    let uplink = rx_pe.is_some_and(|p| p.kind == PortKind::Uplink);
    for mut frame in rx {
        ws.count_rx(in_port, frame.len());
        if let Some(ing) = &local {
            process_frame(snap, ws, ing, now, frame, io);
        } else if uplink {
            // Tunnel traffic arrives on the uplink and is attributed to its
            // tunnel port by pop; nothing is received "on" a tunnel port.
            let d = match pop(&snap.tunnels, &mut frame) {
                Ok(d) => d,
                Err(r) => {
                    drop_frame(ws, in_port, frame, r, io);
                    continue;
                }
            };
            let ing = snap.port(d.port).and_then(|pe| {
                let bridge = snap.bridges.get(usize::from(pe.bridge))?;
                Some(Ingress {
                    port: d.port,
                    pe,
                    bridge,
                    remote: d.remote,
                    vtep: Some(d.vtep),
                    tun_id: d.vni,
                })
            });
            match ing {
                Some(ing) => {
                    ws.count_rx(d.port, frame.len());
                    process_frame(snap, ws, &ing, now, frame, io);
                }
                None => drop_frame(ws, in_port, frame, DropReason::UnknownPort, io),
            }
        } else {
            drop_frame(ws, in_port, frame, DropReason::UnknownPort, io);
        }
    }
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
    let ing = snap.port(meta.port).and_then(|pe| {
        let bridge = snap.bridges.get(usize::from(pe.bridge))?;
        Some(Ingress {
            port: meta.port,
            pe,
            bridge,
            remote: meta.remote,
            vtep: meta.vtep,
            tun_id: meta.tun_id,
        })
    });
    match ing {
        Some(ing) => process_frame(snap, ws, &ing, now, frame, io),
        None => drop_frame(ws, meta.port, frame, DropReason::UnknownPort, io),
    }
}

/// The logical port a frame entered its bridge by: a local port, or the
/// tunnel port (and remote VTEP) pop attributed it to.
#[derive(Debug)]
struct Ingress<'s> {
    port: PortNo,
    pe: &'s PortEntry,
    bridge: &'s BridgeEntry,
    remote: RemoteIdx,
    vtep: Option<IpAddr>,
    tun_id: u32,
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

/// Runs one frame, already attributed to its ingress port, through the rest
/// of the pipeline.
fn process_frame<'a>(
    snap: &Snapshot,
    ws: &mut WorkerState,
    ing: &Ingress<'_>,
    now: u64,
    mut frame: Frame<'a>,
    io: &mut BatchIo<'a>,
) {
    let (in_port, pe, bridge) = (ing.port, ing.pe, ing.bridge);
    // The key is built in place inside the context and never copied: a wide
    // copy of words just written one by one stalls on store forwarding.
    let mut ctx = Ctx {
        key: FlowKey::default(),
        hash: 0,
        in_port,
        bridge: pe.bridge,
        vlan: 0,
        rx_tag: None,
        vtep: ing.vtep,
        now,
    };
    let info = match extract(frame.data(), &mut ctx.key) {
        Ok(i) => i,
        Err(e) => return drop_frame(ws, in_port, frame, e.into(), io),
    };
    ctx.key.set_in_port(in_port);
    ctx.key.set_tun_id(ing.tun_id);
    ctx.rx_tag = ctx.key.vlan_vid();
    ctx.vlan = match pe.vlan.ingress(ctx.rx_tag) {
        Some(v) => v,
        None => {
            let r = if matches!(pe.kind, PortKind::Tunnel(_)) && ctx.rx_tag.is_some() {
                DropReason::InnerVlan
            } else {
                DropReason::VlanNotAllowed
            };
            return drop_frame(ws, in_port, frame, r, io);
        }
    };
    ctx.hash = ctx.key.hash_with(EMC_HASH_SEED);
    // One exact-match probe answers the flow rule, the ingress firewall
    // verdict and, once the frame's key has been forwarded in this
    // snapshot, where it goes (the plan). Even a bridge with neither flows
    // nor firewall probes: a hit skips NORMAL's FDB lookup, which in a
    // large FDB is a miss to memory, while the cache holds only this
    // worker's active flows. The firewall verdict and the plan are stamped
    // with the snapshot's generation: both are pure functions of the key
    // and the snapshot.
    let fw_in = pe.firewall[0];
    let hit = ws
        .emc
        .lookup_with_aux(&bridge.flows, &ctx.key, ctx.hash, snap.generation, |k| {
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
    if bridge.arp_suppress && pe.kind == PortKind::Local && suppress::candidate(&ctx.key) {
        match suppress::answer(&mut frame, &ctx.key, &info, &bridge.addrs, ctx.vlan) {
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
                        remote: ing.remote,
                        now,
                    });
                }
            }
            suppress::Verdict::Pass => {}
        }
    }
    let remote = ing.remote;
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
            remote: ing.remote,
            vtep: ing.vtep,
            tun_id: ing.tun_id,
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
    io.tx.push((port, frame));
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
                ws.count_drop(ctx.in_port, DropReason::SamePort);
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
                _ => ws.count_drop(ctx.in_port, DropReason::VlanNotAllowed),
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
                    ws.count_drop(ctx.in_port, DropReason::LookupMiss);
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
    for &p in &bridge.ports {
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
                ws.count_drop(ctx.in_port, DropReason::SamePort);
            }
            Action::Output(p) => match snap.port(p) {
                Some(pe) if pe.bridge == ctx.bridge && pe.kind != PortKind::Uplink => {
                    emit_all_remotes(snap, ws, ctx, p, pe.kind, tag, frame, em, io)
                }
                _ => ws.count_drop(ctx.in_port, DropReason::UnknownPort),
            },
            Action::Tunnel { port, remote } => match snap.port(port) {
                Some(pe) if pe.bridge == ctx.bridge && matches!(pe.kind, PortKind::Tunnel(_)) => {
                    em.emit(snap, ws, ctx, Out { port, remote, tag }, frame, io)
                }
                _ => ws.count_drop(ctx.in_port, DropReason::UnknownPort),
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
    /// The destination missed and the bridge holds such frames.
    hold: bool,
    /// NORMAL learned the source.
    learned: bool,
}

impl Emitter {
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
            let Some(buf) = io.spare.pop() else {
                ws.count_drop(ctx.in_port, DropReason::NoBuffer);
                return;
            };
            match frame.copy_into(buf) {
                Some(copy) => {
                    ws.replicas += 1;
                    send(snap, ws, ctx, prev, copy, io);
                }
                None => ws.count_drop(ctx.in_port, DropReason::NoBuffer),
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
                if self.outputs == 0 {
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
        if firewall_drops(snap, ws, fw, &ctx.key) {
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
            let max = usize::from(pe.mtu) + 14 + if tagged { vlan::TAG_LEN } else { 0 };
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
            if frame.len() > usize::from(snap.uplink_mtu) + 14 {
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
    io.tx.push((tx_port, frame));
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
