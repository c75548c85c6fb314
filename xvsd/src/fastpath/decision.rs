//! The GSO-preserving fast path's decisions (docs/design.md, "A
//! GSO-preserving fast path"): what a worker's [`Offer`] becomes in the TC
//! executor's tables (`xvs_bpf::tc`), or why it stays the pipeline's.
//!
//! [`decision`] is pure: given the snapshot the offer was made in and the
//! interfaces' ifindexes, it builds the exact TC key and action, so that
//! the executor carries out what the pipeline decided, byte for byte (its
//! tests in `bpf/tests/tc_differential.rs`). It refuses what the executor
//! cannot do the same way: a stale snapshot, an output whose template
//! has an outer UDP checksum or no DF, a tunnel port that verifies UDP
//! checksums, a decapsulated frame going back into a tunnel, and, from a
//! tunnel, a port whose MTU the tunnel's frames may not fit. Into a
//! tunnel, the executor checks each frame against the uplink's MTU (the
//! pipeline answers those that do not fit with ICMP; segments the kernel
//! cut would be dropped silently).

use xvs_bpf::tc::{TcAction, TcKey, TcTunnelKey};
use xvs_dataplane::events::Offer;
use xvs_dataplane::snapshot::{PortKind, Snapshot};
use xvs_types::{FlowKey, PortNo, TunnelKind};

/// Where a decision goes: the guest port program's table or the uplink's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Port(TcKey, TcAction),
    Uplink(TcTunnelKey, TcAction),
}

/// Why an offer stays the pipeline's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("made in another snapshot")]
    Stale,
    #[error("a port is gone or has no interface")]
    NoPort,
    #[error("the output's template cannot be pushed there (outer UDP checksum, no DF, too long, unresolved)")]
    Template,
    #[error("the tunnel verifies UDP checksums")]
    VerifiedCsum,
    #[error("tunnel to tunnel")]
    Hairpin,
    #[error("the port's MTU does not fit through the tunnel")]
    Mtu,
}

/// The TC key of `k`'s flow as the executor reads it from a frame.
fn tc_key(k: &FlowKey, ifindex: u32) -> TcKey {
    TcKey {
        ifindex,
        dl_dst: k.dl_dst().0,
        dl_src: k.dl_src().0,
        eth_type: k.eth_type().to_be_bytes(),
        ip_proto: k.ip_proto(),
        ip_tos: k.ip_tos(),
        nw_src: k.nw_src().to_be_bytes(),
        nw_dst: k.nw_dst().to_be_bytes(),
        tp_src: k.tp_src().to_be_bytes(),
        tp_dst: k.tp_dst().to_be_bytes(),
    }
}

/// The TC decision for `o`, made in `snap`; `ifindex` gives a port's (or
/// the uplink's) interface.
pub fn decision(
    snap: &Snapshot,
    o: &Offer,
    ifindex: impl Fn(PortNo) -> Option<u32>,
) -> Result<Decision, Refused> {
    if o.generation != snap.generation {
        return Err(Refused::Stale);
    }
    let in_pe = snap.port(o.in_port).ok_or(Refused::NoPort)?;
    let out_pe = snap.port(o.out_port).ok_or(Refused::NoPort)?;
    match (in_pe.kind, out_pe.kind) {
        (PortKind::Local, PortKind::Local) => Ok(Decision::Port(
            tc_key(&o.key, ifindex(o.in_port).ok_or(Refused::NoPort)?),
            TcAction::output(ifindex(o.out_port).ok_or(Refused::NoPort)?),
        )),
        (PortKind::Local, PortKind::Tunnel(t)) => {
            let tp = snap.tunnels.get(t).ok_or(Refused::NoPort)?;
            let tpl = tp.template(o.out_remote).map_err(|_| Refused::Template)?;
            let off = tpl.offload().ok_or(Refused::Template)?;
            // Whether a frame fits the uplink once encapsulated is the
            // executor's to check, frame by frame (a super-packet by its
            // segments): a port whose MTU does not fit the tunnel still
            // has its shorter frames carried, the rest go to the pipeline.
            let uplink = snap.uplink.and_then(&ifindex).ok_or(Refused::NoPort)?;
            let action = TcAction::push(uplink, &off, tpl.src_port(o.hash), snap.uplink_mtu)
                .map_err(|_| Refused::Template)?;
            Ok(Decision::Port(
                tc_key(&o.key, ifindex(o.in_port).ok_or(Refused::NoPort)?),
                action,
            ))
        }
        (PortKind::Tunnel(t), PortKind::Local) => {
            let tp = snap.tunnels.get(t).ok_or(Refused::NoPort)?;
            if tp.verify_csum {
                return Err(Refused::VerifiedCsum);
            }
            let vtep = o.vtep.ok_or(Refused::NoPort)?;
            // What arrives is what the remote's MTU let through: the
            // uplink's less this tunnel's outer header, which must fit the
            // port the inner frame goes out of.
            let tpl = tp.template(o.in_remote).map_err(|_| Refused::Template)?;
            if usize::from(snap.uplink_mtu) > tpl.len() + usize::from(out_pe.mtu) {
                return Err(Refused::Mtu);
            }
            let mut tun_hdr = [0u8; 8];
            let vni = (o.key.tun_id() & 0x00ff_ffff).to_be_bytes();
            match tp.kind {
                // Flags: only I (RFC 7348 §5); reserved bits zero.
                TunnelKind::Vxlan => tun_hdr[0] = 0x08,
                // Version 0, no options, O and C clear, Transparent
                // Ethernet Bridging (RFC 8926 §3.4).
                TunnelKind::Geneve => tun_hdr[2..4].copy_from_slice(&0x6558u16.to_be_bytes()),
            }
            tun_hdr[4..7].copy_from_slice(&vni[1..]);
            let mapped = |a: std::net::IpAddr| xvs_types::ip_to_u128(a).to_be_bytes();
            let inner = tc_key(&o.key, 0);
            Ok(Decision::Uplink(
                TcTunnelKey {
                    outer_src: mapped(vtep),
                    outer_dst: mapped(tp.local),
                    tun_hdr,
                    udp_dst: tp.dst_port.to_be_bytes(),
                    pad: 0,
                    inner,
                },
                TcAction::output(ifindex(o.out_port).ok_or(Refused::NoPort)?),
            ))
        }
        (PortKind::Tunnel(_), PortKind::Tunnel(_)) => Err(Refused::Hairpin),
        _ => Err(Refused::NoPort),
    }
}
