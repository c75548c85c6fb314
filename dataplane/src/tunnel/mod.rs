//! Tunnel ports: the table the pipeline looks them up in, header templates
//! and push ([`template`]), and validation + strip of received tunnel
//! packets ([`mod@pop`]).
//!
//! The table is built by the control plane into each snapshot and is
//! immutable afterwards; workers only read it.
//!
//! Remotes of a tunnel port: the configured ones come first, in config
//! order (indices `0..flood_len`, the flood set for head-end replication,
//! which flow actions `tunnel:PORT:N` number), then dynamic ones the
//! control plane added (learned VTEPs, VTEPs named by static FDB entries),
//! which FDB entries point at but which are never flooded to. A multicast
//! tunnel (RFC 7348 §4.2) has its group as the single configured remote:
//! flooding sends one copy to the group, and packets to the group are
//! accepted as if addressed to the local VTEP.

pub mod pop;
pub mod template;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use crate::stats::DropReason;
use xvs_types::TunnelKind;
use xvs_types::{ip_to_u128, PortNo};

pub use pop::{pop, Decap};
pub use template::{multicast_mac, Encap, PushMeta, Template, TemplateError, MAX_HEADER_LEN};

/// Index of a remote VTEP in its tunnel port's remote list.
pub type RemoteIdx = u16;
/// A VTEP that is not (yet) among the tunnel port's remotes, accepted
/// because the port learns remotes; [`Decap::vtep`] says which it was.
pub const UNKNOWN_REMOTE: RemoteIdx = u16::MAX - 1;
/// Most remotes (configured and dynamic) one tunnel port holds: indices
/// below [`UNKNOWN_REMOTE`].
pub const MAX_REMOTES: usize = UNKNOWN_REMOTE as usize;
/// "Not a tunnel remote": local ports in FDB entries.
pub use crate::tables::fdb::NO_REMOTE;

/// Exact key a received tunnel packet is matched on: what RFC 7348 §4 and
/// RFC 8926 §4 say identifies the overlay (VNI) at a given endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PortKey {
    local: u128,
    vni: u32,
    dst_port: u16,
    kind: TunnelKind,
}

/// One tunnel port as the dataplane sees it.
///
/// Its variable-size parts are behind `Arc`s rather than `Vec`s: the same
/// one pointer to follow per packet, but a clone (every unchanged port,
/// each time a snapshot's tunnel table is rebuilt) copies no heap data.
#[derive(Debug, Clone)]
pub struct TunnelPort {
    pub port: PortNo,
    pub name: Arc<str>,
    pub kind: TunnelKind,
    pub vni: u32,
    pub local: IpAddr,
    pub dst_port: u16,
    /// Configured remotes (the flood set) first, then dynamic ones.
    pub remotes: Arc<[IpAddr]>,
    /// How many of `remotes` are configured: BUM traffic goes to these.
    flood: usize,
    /// Accept packets from VTEPs outside `remotes` (learned by the
    /// control plane from the learn event); implied by a group.
    pub learn: bool,
    /// The multicast group when the tunnel is in multicast mode (it is
    /// then `remotes[0]`, the only configured remote).
    pub group: Option<IpAddr>,
    /// Verify non-zero UDP checksums on receipt.
    pub verify_csum: bool,
    /// Accept decapsulated frames that carry a VLAN tag (trunk mode).
    pub accept_inner_vlan: bool,
    /// Geneve options we understand: a critical option outside this list
    /// drops the packet (RFC 8926 §3.5.1).
    pub known_opts: Arc<[(u16, u8)]>,
    /// One template per remote, or why it cannot be built yet.
    pub templates: Arc<[Result<Template, DropReason>]>,
    /// Remotes as u128, for the linear scan that beats hashing when few.
    remote_keys: Arc<[u128]>,
    remote_index: HashMap<u128, RemoteIdx, FxBuildHasher>,
}

/// A tunnel port as the control plane compiled it from its config
/// (`control::tunnel_spec`): what [`TunnelPort`] and its templates are
/// built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelSpec {
    pub name: String,
    /// The configured remotes (the flood list), or one multicast group.
    pub remotes: Vec<IpAddr>,
    /// Accept and learn VTEPs beyond `remotes`.
    pub learn_remotes: bool,
    /// Decapsulated frames may carry a VLAN tag (a trunk tunnel).
    pub accept_inner_vlan: bool,
    pub encap: Encap,
}

/// Up to this many entries a linear scan is faster than a hash lookup.
const LINEAR_MAX: usize = 8;

impl TunnelPort {
    /// A tunnel port whose templates are still to be resolved
    /// (`NeighUnresolved` until [`TunnelPort::set_template`]).
    pub fn new(cfg: &TunnelSpec, port: PortNo, local: IpAddr) -> TunnelPort {
        TunnelPort::with_dynamic(cfg, port, local, &[])
    }

    /// Like [`TunnelPort::new`], with dynamic remotes after the configured
    /// ones (those among them that are configured, and any beyond
    /// [`MAX_REMOTES`], are left out).
    pub fn with_dynamic(
        cfg: &TunnelSpec,
        port: PortNo,
        local: IpAddr,
        dynamic: &[IpAddr],
    ) -> TunnelPort {
        let mut remotes = cfg.remotes.clone();
        remotes.extend(dynamic.iter().filter(|r| !cfg.remotes.contains(r)));
        remotes.truncate(MAX_REMOTES);
        let group = match cfg.remotes.as_slice() {
            [g] if g.is_multicast() => Some(*g),
            _ => None,
        };
        let remote_keys: Vec<u128> = remotes.iter().map(|r| ip_to_u128(*r)).collect();
        let remote_index = if remote_keys.len() > LINEAR_MAX {
            remote_keys
                .iter()
                .enumerate()
                .map(|(i, r)| (*r, i as RemoteIdx))
                .collect()
        } else {
            HashMap::default()
        };
        TunnelPort {
            port,
            name: Arc::from(cfg.name.as_str()),
            kind: cfg.encap.kind,
            vni: cfg.encap.vni,
            local,
            dst_port: cfg.encap.dst_port,
            flood: cfg.remotes.len().min(remotes.len()),
            learn: cfg.learn_remotes || group.is_some(),
            group,
            templates: vec![Err(DropReason::NeighUnresolved); remotes.len()].into(),
            remotes: remotes.into(),
            verify_csum: cfg.encap.csum,
            accept_inner_vlan: cfg.accept_inner_vlan,
            known_opts: cfg
                .encap
                .geneve_opts
                .iter()
                .map(|o| (o.class, o.typ))
                .collect(),
            remote_keys: remote_keys.into(),
            remote_index,
        }
    }

    /// Number of configured remotes: indices `0..flood_len()` are the
    /// flood set.
    #[inline]
    pub fn flood_len(&self) -> usize {
        self.flood
    }

    /// Remotes beyond the configured ones.
    pub fn dynamic_remotes(&self) -> &[IpAddr] {
        &self.remotes[self.flood..]
    }

    pub fn set_template(&mut self, remote: RemoteIdx, t: Result<Template, DropReason>) {
        // Copies the list only if a snapshot still shares it.
        if let Some(slot) = Arc::make_mut(&mut self.templates).get_mut(usize::from(remote)) {
            *slot = t;
        }
    }

    /// Index of a remote VTEP address, if it is one of ours.
    #[inline]
    pub fn remote_index(&self, ip: u128) -> Option<RemoteIdx> {
        if self.remote_keys.len() <= LINEAR_MAX {
            return self
                .remote_keys
                .iter()
                .position(|r| *r == ip)
                .map(|i| i as RemoteIdx);
        }
        self.remote_index.get(&ip).copied()
    }

    #[inline]
    pub fn template(&self, remote: RemoteIdx) -> Result<&Template, DropReason> {
        match self.templates.get(usize::from(remote)) {
            Some(Ok(t)) => Ok(t),
            Some(Err(r)) => Err(*r),
            None => Err(DropReason::UnknownRemote),
        }
    }

    /// Is a Geneve option (class, type) one we understand?
    #[inline]
    pub fn knows_option(&self, class: u16, typ: u8) -> bool {
        self.known_opts.iter().any(|&(c, t)| c == class && t == typ)
    }
}

/// All tunnel ports of a snapshot, indexed for the receive path.
#[derive(Debug, Clone, Default)]
pub struct TunnelTable {
    ports: Vec<TunnelPort>,
    /// Every key with its port index (a multicast tunnel has two: its
    /// local VTEP and its group), for the linear scan when few.
    keys: Vec<(PortKey, u16)>,
    by_key: HashMap<PortKey, u16, FxBuildHasher>,
    /// UDP destination ports we terminate, and their protocol. Tiny: a
    /// linear scan beats hashing.
    udp_ports: Vec<(u16, TunnelKind)>,
}

/// Why a tunnel table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TunnelTableError {
    #[error("tunnel {a:?} and tunnel {b:?} both match {kind} VNI {vni} on address {local} UDP port {port}")]
    Duplicate {
        a: String,
        b: String,
        kind: TunnelKind,
        vni: u32,
        local: IpAddr,
        port: u16,
    },
    #[error("UDP port {port} is used for both VXLAN and Geneve (tunnels {a:?} and {b:?})")]
    PortProtocolClash { port: u16, a: String, b: String },
}

impl TunnelTable {
    pub fn build(ports: Vec<TunnelPort>) -> Result<TunnelTable, TunnelTableError> {
        Self::build_after(&TunnelTable::default(), ports)
    }

    /// [`TunnelTable::build`], taking `prev`'s key index as it is when
    /// the new ports' keys begin with `prev`'s (same tunnels in the same
    /// places, others only appended): then only the appended keys are
    /// hashed. A transaction that changes no tunnel key, or adds a tunnel,
    /// copies the index instead of inserting every key again.
    pub fn build_after(
        prev: &TunnelTable,
        ports: Vec<TunnelPort>,
    ) -> Result<TunnelTable, TunnelTableError> {
        let addrs = |p: &TunnelPort| std::iter::once(p.local).chain(p.group);
        let mut keys = Vec::with_capacity(ports.len());
        for (i, p) in ports.iter().enumerate() {
            // Packets to the group are this port's as much as packets to
            // its local VTEP (RFC 7348 §4.2).
            for addr in addrs(p) {
                let key = PortKey {
                    local: ip_to_u128(addr),
                    vni: p.vni,
                    dst_port: p.dst_port,
                    kind: p.kind,
                };
                keys.push((key, i as u16));
            }
        }
        // `prev` was built by this function, so its keys are unique: a
        // clash can only involve a key past them, and the problems are
        // found in the order a build from scratch finds them.
        let (mut by_key, from) = if keys.starts_with(&prev.keys) {
            (prev.by_key.clone(), prev.keys.len())
        } else {
            (HashMap::with_hasher(FxBuildHasher), 0)
        };
        by_key.reserve(keys.len() - from);
        let mut udp_ports: Vec<(u16, TunnelKind, usize)> = Vec::new();
        let mut k = 0;
        for (i, p) in ports.iter().enumerate() {
            for addr in addrs(p) {
                let (key, _) = keys[k];
                if k >= from {
                    if let Some(j) = by_key.insert(key, i as u16) {
                        let o = &ports[usize::from(j)];
                        return Err(TunnelTableError::Duplicate {
                            a: o.name.to_string(),
                            b: p.name.to_string(),
                            kind: p.kind,
                            vni: p.vni,
                            local: addr,
                            port: p.dst_port,
                        });
                    }
                }
                k += 1;
            }
            match udp_ports.iter().find(|(port, _, _)| *port == p.dst_port) {
                Some((_, kind, j)) if *kind != p.kind => {
                    return Err(TunnelTableError::PortProtocolClash {
                        port: p.dst_port,
                        a: ports[*j].name.to_string(),
                        b: p.name.to_string(),
                    })
                }
                Some(_) => {}
                None => udp_ports.push((p.dst_port, p.kind, i)),
            }
        }
        Ok(TunnelTable {
            ports,
            keys,
            by_key,
            udp_ports: udp_ports.into_iter().map(|(p, k, _)| (p, k)).collect(),
        })
    }

    /// Protocol terminated on a UDP destination port, if any.
    #[inline]
    pub fn kind_for_port(&self, dst_port: u16) -> Option<TunnelKind> {
        self.udp_ports
            .iter()
            .find(|(p, _)| *p == dst_port)
            .map(|(_, k)| *k)
    }

    /// The tunnel port for a received packet's (protocol, destination IP:
    /// a local VTEP or a group, UDP port, VNI), as an index into
    /// [`TunnelTable::ports`].
    #[inline]
    pub fn lookup(&self, kind: TunnelKind, local: u128, dst_port: u16, vni: u32) -> Option<u16> {
        let key = PortKey {
            local,
            vni,
            dst_port,
            kind,
        };
        if self.keys.len() <= LINEAR_MAX {
            return self.keys.iter().find(|(k, _)| *k == key).map(|(_, i)| *i);
        }
        self.by_key.get(&key).copied()
    }

    #[inline]
    pub fn get(&self, idx: u16) -> Option<&TunnelPort> {
        self.ports.get(usize::from(idx))
    }

    pub fn ports(&self) -> &[TunnelPort] {
        &self.ports
    }

    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

#[cfg(test)]
mod tests;
