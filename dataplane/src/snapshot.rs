//! The immutable snapshot of every table a worker reads, and its atomic
//! handle.
//!
//! Writers: only the control thread builds snapshots and stores them in the
//! [`SnapshotHandle`]. Readers: workers load the current one once per batch
//! and never write to it. A snapshot is never changed after publication; a
//! change builds a new one that shares (by `Arc`) every part it did not
//! touch, so publishing learned MACs does not copy the port or tunnel
//! tables. The old snapshot is freed when the last worker drops its guard
//! (arc-swap plays the role of Open vSwitch's RCU here).

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::policy::firewall::Firewall;
use crate::policy::port_security::PortSecurity;
use crate::policy::qos::PolicerConfig;
use crate::tables::addr::AddrTable;
use crate::tables::fdb::FdbView;
use crate::tables::flow::FlowTable;
use crate::tunnel::TunnelTable;
use xvs_types::{BridgeNo, PortNo};

/// What a port number refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    /// No port with this number.
    Absent,
    /// A VM-facing AF_XDP port.
    Local,
    /// A tunnel port: index into the snapshot's tunnel table.
    Tunnel(u16),
    /// The underlay uplink: frames received here are popped.
    Uplink,
}

/// 802.1Q membership, compiled for the per-packet path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortVlan {
    /// Untagged frames belong to this VLAN; tagged ones are refused.
    Access(u16),
    /// Tagged frames of the allowed VIDs; untagged ones go to `native`.
    Trunk {
        allowed: Box<[u64; 64]>,
        native: Option<u16>,
    },
}

impl PortVlan {
    /// Builds a trunk from a VID list (empty = every VID).
    pub fn trunk(vids: &[u16], native: Option<u16>) -> PortVlan {
        let mut allowed = Box::new([0u64; 64]);
        if vids.is_empty() {
            allowed.fill(u64::MAX);
        } else {
            for v in vids {
                let v = usize::from(*v & 0x0fff);
                allowed[v / 64] |= 1 << (v % 64);
            }
        }
        if let Some(n) = native {
            let v = usize::from(n & 0x0fff);
            allowed[v / 64] |= 1 << (v % 64);
        }
        PortVlan::Trunk { allowed, native }
    }

    /// VLAN a received frame belongs to, from its tag (`None` = untagged).
    #[inline]
    pub fn ingress(&self, tag: Option<u16>) -> Option<u16> {
        match (self, tag) {
            (PortVlan::Access(v), None) => Some(*v),
            (PortVlan::Access(_), Some(_)) => None,
            (PortVlan::Trunk { native, .. }, None) => *native,
            // The native VLAN is in `allowed` (see `trunk`), so a frame
            // tagged with it is accepted too, as in Open vSwitch.
            (PortVlan::Trunk { .. }, Some(t)) => self.carries(t).then_some(t),
        }
    }

    /// Does this port carry VLAN `v`?
    #[inline]
    pub fn carries(&self, v: u16) -> bool {
        match self {
            PortVlan::Access(a) => *a == v,
            PortVlan::Trunk { allowed, .. } => {
                let v = usize::from(v & 0x0fff);
                allowed[v / 64] & (1 << (v % 64)) != 0
            }
        }
    }

    /// The tag a frame of VLAN `v` leaves this port with (`None` = untagged).
    #[inline]
    pub fn egress(&self, v: u16) -> Option<u16> {
        match self {
            PortVlan::Access(_) => None,
            PortVlan::Trunk { native, .. } if *native == Some(v) => None,
            PortVlan::Trunk { .. } => Some(v),
        }
    }
}

/// One port of the snapshot. Its name is shared (`Arc`) with the
/// previous snapshot's entry, so rebuilding the port table for a one-port
/// change copies entries, not strings.
#[derive(Debug, Clone)]
pub struct PortEntry {
    pub name: Arc<str>,
    pub kind: PortKind,
    pub bridge: BridgeNo,
    pub vlan: PortVlan,
    pub mtu: u16,
    /// Firewall index (into [`Snapshot::firewalls`]) for [in, out].
    pub firewall: [Option<u16>; 2],
    /// Policer index (into [`Snapshot::policers`]) for [in, out].
    pub policer: [Option<u16>; 2],
    /// Learned MACs allowed behind the port (control side only: the
    /// limit is applied where learn events are folded in).
    pub max_macs: Option<u32>,
    /// Port security: the addresses a local port may send from.
    pub security: Option<Arc<PortSecurity>>,
    /// Storm control: index into [`Snapshot::policers`] of the policer
    /// that counts the port's flooded frames (one token a frame).
    pub storm: Option<u16>,
    /// The mirrors that copy the frames the port [receives, sends]: an
    /// index into [`Snapshot::mirror_sets`].
    pub mirror: [Option<u16>; 2],
    /// The port is a mirror's output: it carries the mirror's copies and
    /// nothing else (floods skip it, what arrives on it is dropped).
    pub mirror_output: bool,
}

impl PortEntry {
    /// This entry for a new snapshot, before the new config's ACLs,
    /// policers and storm control are laid over it: the same port with
    /// its policy slots empty.
    pub fn without_policies(&self) -> PortEntry {
        PortEntry {
            firewall: [None; 2],
            policer: [None; 2],
            storm: None,
            mirror: [None; 2],
            mirror_output: false,
            ..self.clone()
        }
    }

    pub fn absent() -> PortEntry {
        PortEntry {
            name: Arc::from(""),
            kind: PortKind::Absent,
            bridge: 0,
            vlan: PortVlan::Access(0),
            mtu: 0,
            firewall: [None; 2],
            policer: [None; 2],
            max_macs: None,
            security: None,
            storm: None,
            mirror: [None; 2],
            mirror_output: false,
        }
    }
}

/// One mirror as workers run it: where its copies go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorEntry {
    /// A local port (the copy leaves as it is) or a tunnel port (the copy
    /// is encapsulated to each of its remote VTEPs).
    pub to: PortNo,
}

/// One bridge of the snapshot. Name and port list are shared (`Arc`) with
/// the previous snapshot's entry when they did not change.
#[derive(Debug, Clone)]
pub struct BridgeEntry {
    pub name: Arc<str>,
    /// Its ports (local and tunnel), in port-number order: the flood list.
    pub ports: Arc<[PortNo]>,
    pub fdb: Arc<FdbView>,
    pub flows: Arc<FlowTable>,
    /// Workers re-send a learn event for a MAC they already reported after
    /// this long, which keeps active MACs from aging out.
    pub learn_refresh_ns: u64,
    /// Source MACs are learned (off: LSDN's static mode).
    pub learning: bool,
    /// ARP requests and neighbor solicitations for known addresses are
    /// answered in place.
    pub arp_suppress: bool,
    /// Overlay addresses (IP -> MAC per VLAN), answered by suppression.
    pub addrs: Arc<AddrTable>,
    /// Lookup on miss: what happens to the frame that missed (`None`: no
    /// lookup, unknown unicast floods).
    pub lookup: Option<xvs_types::MissAction>,
    /// With [`xvs_types::MissAction::Hold`]: how long a frame waits.
    pub lookup_hold_ns: u64,
}

/// Everything a worker reads.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Bumped on every publication.
    pub generation: u64,
    /// Bumped only when firewalls, policers or mirrors change: workers keep their
    /// token buckets and hit counters across other swaps.
    pub policy_generation: u64,
    /// Bumped when a port's learning limit changes: workers then forget
    /// which MACs they already reported, so a MAC refused under the old
    /// limit is reported again at once, not a refresh interval later.
    pub learn_generation: u64,
    pub ports: Arc<[PortEntry]>,
    pub bridges: Arc<[BridgeEntry]>,
    pub tunnels: Arc<TunnelTable>,
    pub uplink: Option<PortNo>,
    /// The uplink's MTU (0 without an uplink), read per encapsulated frame.
    pub uplink_mtu: u16,
    pub firewalls: Arc<[Firewall]>,
    pub policers: Arc<[PolicerConfig]>,
    /// Mirrors, in the config's order (workers count per index).
    pub mirrors: Arc<[MirrorEntry]>,
    /// The distinct lists of mirrors ports name in [`PortEntry::mirror`].
    pub mirror_sets: Arc<[Box<[u16]>]>,
}

impl Snapshot {
    /// The empty snapshot a daemon starts with: every frame is dropped as
    /// `UnknownPort`.
    pub fn empty() -> Snapshot {
        Snapshot {
            generation: 0,
            policy_generation: 0,
            learn_generation: 0,
            ports: Arc::from(Vec::new()),
            bridges: Arc::from(Vec::new()),
            tunnels: Arc::new(TunnelTable::default()),
            uplink: None,
            uplink_mtu: 0,
            firewalls: Arc::from(Vec::new()),
            policers: Arc::from(Vec::new()),
            mirrors: Arc::from(Vec::new()),
            mirror_sets: Arc::from(Vec::new()),
        }
    }

    #[inline]
    pub fn port(&self, p: PortNo) -> Option<&PortEntry> {
        self.ports
            .get(usize::from(p))
            .filter(|e| e.kind != PortKind::Absent)
    }

    /// Port number by name (control path).
    pub fn port_by_name(&self, name: &str) -> Option<PortNo> {
        self.ports
            .iter()
            .position(|p| p.kind != PortKind::Absent && &*p.name == name)
            .map(|i| i as PortNo)
    }
}

/// The atomically swappable current snapshot.
#[derive(Debug)]
pub struct SnapshotHandle(ArcSwap<Snapshot>);

impl SnapshotHandle {
    pub fn new(s: Snapshot) -> SnapshotHandle {
        SnapshotHandle(ArcSwap::from_pointee(s))
    }

    /// What a worker calls once per batch: no lock, no refcount traffic in
    /// the common case.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.0.load()
    }

    pub fn load_full(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Publishes `s`. Workers see it from their next batch on.
    pub fn store(&self, s: Arc<Snapshot>) {
        self.0.store(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_access_and_trunk_rules() {
        let a = PortVlan::Access(10);
        assert_eq!(a.ingress(None), Some(10));
        assert_eq!(a.ingress(Some(10)), None);
        assert!(a.carries(10) && !a.carries(11));
        assert_eq!(a.egress(10), None);

        let t = PortVlan::trunk(&[10, 20], Some(5));
        assert_eq!(t.ingress(None), Some(5));
        assert_eq!(t.ingress(Some(20)), Some(20));
        assert_eq!(t.ingress(Some(30)), None);
        assert_eq!(t.egress(20), Some(20));
        assert_eq!(t.egress(5), None);
        assert!(t.carries(5) && t.carries(10) && !t.carries(4094));

        let all = PortVlan::trunk(&[], None);
        assert_eq!(all.ingress(None), None);
        assert_eq!(all.ingress(Some(4094)), Some(4094));
    }
}
