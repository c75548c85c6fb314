//! Port mirrors on the packet path: a copy of a frame a source port
//! receives (as it entered the bridge) or sends (after its egress stages,
//! before any tunnel header), made in a spare buffer and sent out of the
//! mirror's output: a local port as it is, or a tunnel port encapsulated
//! to each of its remote VTEPs from the port's templates (remote SPAN).
//! Copies are counted per mirror; one that finds no buffer or does not
//! fit its output is lost and counted, never the frame it copies.

use super::egress::push_outer;
use super::*;

/// Copies `frame` (whose flow key and hash are `key` and `hash`) for
/// each mirror of the snapshot's mirror set `set`. Out of line: a port
/// with no mirror pays the test of its slot only.
#[cold]
#[inline(never)]
pub(super) fn copy<'a>(
    snap: &Snapshot,
    ws: &mut WorkerState,
    set: u16,
    key: &FlowKey,
    hash: u64,
    frame: &Frame<'a>,
    io: &mut BatchIo<'a>,
) {
    let Some(ids) = snap.mirror_sets.get(usize::from(set)) else {
        return;
    };
    for &m in ids.iter() {
        let out = snap
            .mirrors
            .get(usize::from(m))
            .and_then(|e| Some((e.to, snap.port(e.to)?)));
        match out {
            Some((to, pe)) => match pe.kind {
                PortKind::Local => one(snap, ws, m, to, pe, NO_REMOTE, key, hash, frame, io),
                PortKind::Tunnel(t) => {
                    let n = snap.tunnels.get(t).map_or(0, |tp| tp.flood_len());
                    for r in 0..n {
                        one(snap, ws, m, to, pe, r as RemoteIdx, key, hash, frame, io);
                    }
                }
                PortKind::Uplink | PortKind::Absent => lost(ws, m),
            },
            None => lost(ws, m),
        }
    }
}

/// One copy of `frame` out of port `to` (for a tunnel port, to its remote
/// `remote`).
#[allow(clippy::too_many_arguments)]
fn one<'a>(
    snap: &Snapshot,
    ws: &mut WorkerState,
    m: u16,
    to: PortNo,
    pe: &PortEntry,
    remote: RemoteIdx,
    key: &FlowKey,
    hash: u64,
    frame: &Frame<'a>,
    io: &mut BatchIo<'a>,
) {
    let more = || io.more.as_mut().and_then(|s| s.take());
    let Some(buf) = io.spare.pop().or_else(more) else {
        return lost(ws, m);
    };
    let mut copy = match frame.copy_into(buf) {
        Ok(c) => c,
        Err(buf) => {
            io.free.push(buf);
            return lost(ws, m);
        }
    };
    let len = copy.len();
    let tx_port = match pe.kind {
        PortKind::Tunnel(t) => match push_outer(snap, ws, t, remote, key, hash, &mut copy) {
            // RFC 7348 forbids fragmenting the outer packet, and a copy
            // has no sender to tell: it is lost.
            Ok((_, uplink))
                if copy.len() <= usize::from(snap.uplink_mtu) + ethernet::HEADER_LEN =>
            {
                ws.count_tx(to, copy.len());
                uplink
            }
            _ => {
                io.free.push(copy.into_buf());
                return lost(ws, m);
            }
        },
        _ => {
            // The copy keeps the tags it had: room for two.
            if len > usize::from(pe.mtu) + ethernet::HEADER_LEN + 2 * vlan::TAG_LEN {
                io.free.push(copy.into_buf());
                return lost(ws, m);
            }
            to
        }
    };
    ws.count_tx(tx_port, copy.len());
    if let Some(c) = ws.mirrors.get_mut(usize::from(m)) {
        c.packets += 1;
        c.bytes += len as u64;
    }
    io.tx.push(TxFrame {
        frame: copy,
        port: tx_port,
    });
}

fn lost(ws: &mut WorkerState, m: u16) {
    if let Some(c) = ws.mirrors.get_mut(usize::from(m)) {
        c.dropped += 1;
    }
}
