//! The second half of a frame's way: NORMAL forwarding (learning, the
//! FDB, flooding to every port and every remote), a flow rule's actions,
//! and per output the VLAN egress, firewall and policer out, tunnel push,
//! MTU check and the frame handed to a port's transmit ring
//! ([`Emitter`] makes the replicas a flood needs; a port's egress mirrors
//! copy the frame after its egress stages, before the tunnel header).

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn normal<'a>(
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
                Some(p) if p.mirror_output => em.drop_output(ws, ctx, DropReason::MirrorOutput),
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
pub(super) fn flood<'a>(
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
        if !pe.vlan.carries(ctx.vlan) || pe.mirror_output {
            continue;
        }
        let tag = egress_tag(&pe.vlan, ctx.vlan);
        emit_all_remotes(snap, ws, ctx, p, pe.kind, tag, frame, em, io);
    }
}

/// Emits to a port; for a tunnel port, to each of its configured remote
/// VTEPs (its flood set).
#[allow(clippy::too_many_arguments)]
pub(super) fn emit_all_remotes<'a>(
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

pub(super) fn egress_tag(vlan: &PortVlan, v: u16) -> Tag {
    match vlan.egress(v) {
        Some(vid) => Tag::Tagged(vid),
        None => Tag::Untagged,
    }
}

/// Executes a flow's action list in order.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_actions<'a>(
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
pub(super) struct Emitter {
    pub(super) pending: Option<Out>,
    pub(super) outputs: u32,
    /// A drop was counted for the frame on the way (see
    /// [`Emitter::drop_output`]).
    pub(super) counted: bool,
    /// The destination missed and the bridge holds such frames.
    pub(super) hold: bool,
    /// NORMAL learned the source.
    pub(super) learned: bool,
}

impl Emitter {
    /// Counts the drop of an output decided for the frame (or of the
    /// frame, where it is the only decision): then the frame has had its
    /// reason, and [`Emitter::finish`] must not count it again as having
    /// no output.
    pub(super) fn drop_output(&mut self, ws: &mut WorkerState, ctx: &Ctx, r: DropReason) {
        self.counted = true;
        ws.count_drop(ctx.in_port, r);
    }

    pub(super) fn emit<'a>(
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

    pub(super) fn finish<'a>(
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
pub(super) fn send<'a>(
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
        if firewall_drops(snap, ws, fw, ctx.key, frame.len(), ctx.now) {
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
    if let Some(m) = pe.mirror[1] {
        mirror::copy(snap, ws, m, ctx.key, ctx.hash, &frame, io);
    }
    let tagged = out.tag != Tag::Untagged;
    let tx_port = match pe.kind {
        PortKind::Local => {
            let max =
                usize::from(pe.mtu) + ethernet::HEADER_LEN + if tagged { vlan::TAG_LEN } else { 0 };
            if frame.len() > max {
                return too_big(snap, ws, ctx, out, pe.mtu, frame, io);
            }
            out.port
        }
        PortKind::Tunnel(t) => {
            let (pushed, uplink) =
                match push_outer(snap, ws, t, out.remote, ctx.key, ctx.hash, &mut frame) {
                    Ok(p) => p,
                    Err(r) => return drop_frame(ws, out.port, frame, r, io),
                };
            if frame.len() > usize::from(snap.uplink_mtu) + ethernet::HEADER_LEN {
                // The push only prepended: taking the header off again
                // gives back the frame as it came, for the ICMP error,
                // which tells the MTU that fits: the uplink's, less the
                // outer header and the inner tag. Checked after the push,
                // not before, to keep the frames that fit (all but a few)
                // at one compare.
                frame.pull_front(pushed);
                let overhead = pushed + if tagged { vlan::TAG_LEN } else { 0 };
                let mtu = usize::from(snap.uplink_mtu).saturating_sub(overhead);
                return too_big(snap, ws, ctx, out, mtu as u16, frame, io);
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

/// Pushes the outer header of tunnel port `t` for its remote `remote`
/// onto `frame`, making headroom where the frame has too little: the
/// bytes pushed and the uplink the frame now leaves by. `key` and `hash`
/// are the inner frame's (the outer TOS and UDP source port come from
/// them).
#[inline(always)]
pub(super) fn push_outer(
    snap: &Snapshot,
    ws: &mut WorkerState,
    t: u16,
    remote: RemoteIdx,
    key: &FlowKey,
    hash: u64,
    frame: &mut Frame<'_>,
) -> Result<(usize, PortNo), DropReason> {
    let (Some(tp), Some(uplink)) = (snap.tunnels.get(t), snap.uplink) else {
        return Err(DropReason::NoRoute);
    };
    let tpl = tp.template(remote)?;
    if frame.headroom() < tpl.len() {
        if !frame.make_headroom(tpl.len()) {
            return Err(DropReason::NoHeadroom);
        }
        ws.copies += 1;
    }
    let meta = PushMeta {
        flow_hash: hash,
        inner_tos: key.ip_tos(),
        ip_id: ws.next_ip_id(),
    };
    Ok((tpl.push(frame, &meta)?, uplink))
}

/// A frame too big for `out`, whose IP MTU is `mtu`: dropped (counted on
/// `out`), and if it came from a local port, turned into the ICMP error
/// its sender is due and sent back to it (`pmtu`), within the worker's
/// budget. A decapsulated frame's sender is behind another switch, which
/// let it through: it is only dropped.
#[allow(clippy::too_many_arguments)]
fn too_big<'a>(
    snap: &Snapshot,
    ws: &mut WorkerState,
    ctx: &Ctx,
    out: Out,
    mtu: u16,
    mut frame: Frame<'a>,
    io: &mut BatchIo<'a>,
) {
    ws.count_drop(out.port, DropReason::TooBig);
    let back = snap.port(ctx.in_port).filter(|p| p.kind == PortKind::Local);
    if let Some(in_pe) = back {
        if !ctx.key.dl_dst().is_multicast()
            && ws.icmp_budget(ctx.now)
            && retag(&mut frame, out.tag != Tag::Untagged, Tag::Untagged).is_ok()
            && pmtu::too_big_reply(&mut frame, mtu)
            && retag(&mut frame, false, egress_tag(&in_pe.vlan, ctx.vlan)).is_ok()
        {
            if let Some(m) = in_pe.mirror[1] {
                mirror::copy(snap, ws, m, ctx.key, ctx.hash, &frame, io);
            }
            ws.count_icmp_too_big(ctx.in_port);
            ws.count_tx(ctx.in_port, frame.len());
            io.tx.push(TxFrame {
                frame,
                port: ctx.in_port,
            });
            return;
        }
    }
    io.free.push(frame.into_buf());
}

/// Makes the frame's 802.1Q tag what the output wants, moving only the 12
/// MAC-address bytes (never the payload).
pub(super) fn retag(frame: &mut Frame<'_>, has_tag: bool, want: Tag) -> Result<(), DropReason> {
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
