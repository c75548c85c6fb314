//! Tunnel ports: the table the pipeline looks them up in, header templates
//! and push ([`template`]), and validation + strip of received tunnel
//! packets ([`pop`]).
//!
//! The table is built by the control plane into each snapshot and is
//! immutable afterwards; workers only read it.

pub mod pop;
pub mod template;

use std::collections::HashMap;
use std::net::IpAddr;

use rustc_hash::FxBuildHasher;

use crate::config::{TunnelConfig, TunnelKind, VlanMode};
use crate::stats::DropReason;
use crate::types::{ip_to_u128, PortNo};

pub use pop::{pop, Decap};
pub use template::{PushMeta, Template, TemplateError, MAX_HEADER_LEN};

/// Index of a remote VTEP in its tunnel port's remote list.
pub type RemoteIdx = u16;
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
#[derive(Debug, Clone)]
pub struct TunnelPort {
    pub port: PortNo,
    pub name: String,
    pub kind: TunnelKind,
    pub vni: u32,
    pub local: IpAddr,
    pub dst_port: u16,
    pub remotes: Vec<IpAddr>,
    /// Verify non-zero UDP checksums on receipt.
    pub verify_csum: bool,
    /// Accept decapsulated frames that carry a VLAN tag (trunk mode).
    pub accept_inner_vlan: bool,
    /// Geneve options we understand: a critical option outside this list
    /// drops the packet (RFC 8926 §3.5.1).
    pub known_opts: Vec<(u16, u8)>,
    /// One template per remote, or why it cannot be built yet.
    pub templates: Vec<Result<Template, DropReason>>,
    /// Remotes as u128, for the linear scan that beats hashing when few.
    remote_keys: Vec<u128>,
    remote_index: HashMap<u128, RemoteIdx, FxBuildHasher>,
}

/// Up to this many entries a linear scan is faster than a hash lookup.
const LINEAR_MAX: usize = 8;

impl TunnelPort {
    /// A tunnel port whose templates are still to be resolved
    /// (`NeighUnresolved` until [`TunnelPort::set_template`]).
    pub fn new(cfg: &TunnelConfig, port: PortNo, local: IpAddr) -> TunnelPort {
        let remote_keys: Vec<u128> = cfg.remotes.iter().map(|r| ip_to_u128(*r)).collect();
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
            name: cfg.name.clone(),
            kind: cfg.kind,
            vni: cfg.vni,
            local,
            dst_port: cfg.udp_port(),
            remotes: cfg.remotes.clone(),
            verify_csum: cfg.csum,
            accept_inner_vlan: matches!(cfg.vlan, VlanMode::Trunk { .. }),
            known_opts: cfg.geneve_opts.iter().map(|o| (o.class, o.typ)).collect(),
            templates: vec![Err(DropReason::NeighUnresolved); cfg.remotes.len()],
            remote_keys,
            remote_index,
        }
    }

    pub fn set_template(&mut self, remote: RemoteIdx, t: Result<Template, DropReason>) {
        if let Some(slot) = self.templates.get_mut(usize::from(remote)) {
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
    /// Keys of `ports`, in order, for the linear scan when few.
    keys: Vec<PortKey>,
    by_key: HashMap<PortKey, u16, FxBuildHasher>,
    /// UDP destination ports we terminate, and their protocol. Tiny: a
    /// linear scan beats hashing.
    udp_ports: Vec<(u16, TunnelKind)>,
}

/// Why a tunnel table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TunnelTableError {
    #[error("tunnel {a:?} and tunnel {b:?} both match {kind} VNI {vni} on local {local} UDP port {port}")]
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
        let mut by_key = HashMap::with_hasher(FxBuildHasher);
        let mut udp_ports: Vec<(u16, TunnelKind, usize)> = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            let key = PortKey {
                local: ip_to_u128(p.local),
                vni: p.vni,
                dst_port: p.dst_port,
                kind: p.kind,
            };
            if let Some(j) = by_key.insert(key, i as u16) {
                let o = &ports[usize::from(j)];
                return Err(TunnelTableError::Duplicate {
                    a: o.name.clone(),
                    b: p.name.clone(),
                    kind: p.kind,
                    vni: p.vni,
                    local: p.local,
                    port: p.dst_port,
                });
            }
            match udp_ports.iter().find(|(port, _, _)| *port == p.dst_port) {
                Some((_, kind, j)) if *kind != p.kind => {
                    return Err(TunnelTableError::PortProtocolClash {
                        port: p.dst_port,
                        a: ports[*j].name.clone(),
                        b: p.name.clone(),
                    })
                }
                Some(_) => {}
                None => udp_ports.push((p.dst_port, p.kind, i)),
            }
        }
        let keys = ports
            .iter()
            .map(|p| PortKey {
                local: ip_to_u128(p.local),
                vni: p.vni,
                dst_port: p.dst_port,
                kind: p.kind,
            })
            .collect();
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

    /// The tunnel port for a received packet's (protocol, local IP, UDP
    /// port, VNI), as an index into [`TunnelTable::ports`].
    #[inline]
    pub fn lookup(&self, kind: TunnelKind, local: u128, dst_port: u16, vni: u32) -> Option<u16> {
        let key = PortKey {
            local,
            vni,
            dst_port,
            kind,
        };
        if self.keys.len() <= LINEAR_MAX {
            return self.keys.iter().position(|k| *k == key).map(|i| i as u16);
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
