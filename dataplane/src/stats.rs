//! Drop reasons and per-worker counters.
//!
//! Every frame the pipeline does not send ends here with exactly one
//! [`DropReason`]. Counters are plain `u64`s owned by one worker (no atomics
//! on the per-packet path); the control plane sums them across workers on
//! demand.

use crate::wire::WireError;

/// Why a frame was dropped. `Malformed` carries the parser's reason so one
/// flat counter array covers both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The frame failed to parse.
    Malformed(WireError),
    /// Arrived on a port the snapshot does not know (or that is in no bridge).
    UnknownPort,
    /// VLAN tag not allowed on this port (802.1Q access/trunk rules).
    VlanNotAllowed,
    /// On the uplink, but not UDP to one of our tunnel endpoints.
    NotTunnel,
    /// Tunnel packet for which no tunnel port matches (local IP, type, dst port, VNI).
    NoTunnelPort,
    /// Tunnel packet from a VTEP that is not among the tunnel port's remotes.
    UnknownRemote,
    /// Geneve control packet (O bit): never forwarded to a port.
    GeneveControl,
    /// Decapsulated frame carries a VLAN tag and the tunnel port does not accept tagged frames.
    InnerVlan,
    /// Dropped by an ingress firewall rule.
    FirewallIn,
    /// Dropped by an egress firewall rule.
    FirewallOut,
    /// Over the ingress policer's rate.
    PolicerIn,
    /// Over the egress policer's rate.
    PolicerOut,
    /// A flow's action list drops it (explicit drop, or no actions).
    FlowDrop,
    /// Destination is the port the frame came from.
    SamePort,
    /// Nowhere to flood to (no other port in the bridge/VLAN).
    NoOutput,
    /// No underlay route to the remote VTEP.
    NoRoute,
    /// The next hop's MAC is not resolved yet.
    NeighUnresolved,
    /// The encapsulated frame would not fit in the buffer.
    NoHeadroom,
    /// No free buffer for a replica of a frame with several outputs: the
    /// batch's spare buffers ran out (a flood to more outputs than the
    /// worker offers spares for, or the buffer pool ran dry), or a spare
    /// was too small for the frame. One per output not sent.
    NoBuffer,
    /// The frame exceeds the output port's MTU.
    TooBig,
    /// Outer CE mark on a Not-ECT inner packet (RFC 6040 §4.2 says drop).
    EcnNotEct,
    /// Unknown unicast in a bridge whose lookup on miss says drop.
    LookupMiss,
    /// Broadcast, multicast or all-zero source MAC: no station sends from
    /// one (IEEE 802.1Q §8.6.3; Linux's bridge and Open vSwitch drop them),
    /// and forwarding it would let one frame poison receivers' caches.
    BadSrcMac,
    /// Port security: a source MAC (Ethernet, ARP sender, ND option) the
    /// port was not given.
    SpoofedMac,
    /// Port security: a source IP (IP header, ARP sender, ND target) the
    /// port was not given.
    SpoofedIp,
    /// Storm control: a broadcast, multicast or unknown unicast frame over
    /// its ingress port's `storm_pps`.
    StormControl,
    /// Received on a mirror's output port, which carries nothing but the
    /// mirror's copies; or forwarded to it by a MAC learned before it
    /// became one.
    MirrorOutput,
}

impl DropReason {
    const OWN: usize = 26;
    /// Number of distinct counters.
    pub const COUNT: usize = WireError::COUNT + Self::OWN;

    /// Dense index for counter arrays.
    #[inline]
    pub fn index(self) -> usize {
        match self {
            DropReason::Malformed(e) => e as usize,
            other => WireError::COUNT + other.own_index(),
        }
    }

    fn own_index(self) -> usize {
        match self {
            DropReason::Malformed(_) => unreachable!("handled by index()"),
            DropReason::UnknownPort => 0,
            DropReason::VlanNotAllowed => 1,
            DropReason::NotTunnel => 2,
            DropReason::NoTunnelPort => 3,
            DropReason::UnknownRemote => 4,
            DropReason::GeneveControl => 5,
            DropReason::InnerVlan => 6,
            DropReason::FirewallIn => 7,
            DropReason::FirewallOut => 8,
            DropReason::PolicerIn => 9,
            DropReason::PolicerOut => 10,
            DropReason::FlowDrop => 11,
            DropReason::SamePort => 12,
            DropReason::NoOutput => 13,
            DropReason::NoRoute => 14,
            DropReason::NeighUnresolved => 15,
            DropReason::NoHeadroom => 16,
            DropReason::NoBuffer => 17,
            DropReason::TooBig => 18,
            DropReason::EcnNotEct => 19,
            DropReason::LookupMiss => 20,
            DropReason::BadSrcMac => 21,
            DropReason::SpoofedMac => 22,
            DropReason::SpoofedIp => 23,
            DropReason::StormControl => 24,
            DropReason::MirrorOutput => 25,
        }
    }

    /// Every reason, in index order.
    pub fn all() -> impl Iterator<Item = DropReason> {
        const OWN: [DropReason; DropReason::OWN] = [
            DropReason::UnknownPort,
            DropReason::VlanNotAllowed,
            DropReason::NotTunnel,
            DropReason::NoTunnelPort,
            DropReason::UnknownRemote,
            DropReason::GeneveControl,
            DropReason::InnerVlan,
            DropReason::FirewallIn,
            DropReason::FirewallOut,
            DropReason::PolicerIn,
            DropReason::PolicerOut,
            DropReason::FlowDrop,
            DropReason::SamePort,
            DropReason::NoOutput,
            DropReason::NoRoute,
            DropReason::NeighUnresolved,
            DropReason::NoHeadroom,
            DropReason::NoBuffer,
            DropReason::TooBig,
            DropReason::EcnNotEct,
            DropReason::LookupMiss,
            DropReason::BadSrcMac,
            DropReason::SpoofedMac,
            DropReason::SpoofedIp,
            DropReason::StormControl,
            DropReason::MirrorOutput,
        ];
        WireError::ALL
            .into_iter()
            .map(DropReason::Malformed)
            .chain(OWN)
    }

    /// Stable snake_case name for counters and JSON output.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed(e) => e.name(),
            DropReason::UnknownPort => "unknown_port",
            DropReason::VlanNotAllowed => "vlan_not_allowed",
            DropReason::NotTunnel => "not_tunnel",
            DropReason::NoTunnelPort => "no_tunnel_port",
            DropReason::UnknownRemote => "unknown_remote",
            DropReason::GeneveControl => "geneve_control",
            DropReason::InnerVlan => "inner_vlan",
            DropReason::FirewallIn => "firewall_in",
            DropReason::FirewallOut => "firewall_out",
            DropReason::PolicerIn => "policer_in",
            DropReason::PolicerOut => "policer_out",
            DropReason::FlowDrop => "flow_drop",
            DropReason::SamePort => "same_port",
            DropReason::NoOutput => "no_output",
            DropReason::NoRoute => "no_route",
            DropReason::NeighUnresolved => "neigh_unresolved",
            DropReason::NoHeadroom => "no_headroom",
            DropReason::NoBuffer => "no_buffer",
            DropReason::TooBig => "too_big",
            DropReason::EcnNotEct => "ecn_not_ect",
            DropReason::LookupMiss => "lookup_miss",
            DropReason::BadSrcMac => "bad_src_mac",
            DropReason::SpoofedMac => "spoofed_mac",
            DropReason::SpoofedIp => "spoofed_ip",
            DropReason::StormControl => "storm_control",
            DropReason::MirrorOutput => "mirror_output",
        }
    }
}

impl From<WireError> for DropReason {
    fn from(e: WireError) -> Self {
        DropReason::Malformed(e)
    }
}

/// Drop counters by reason, owned by one worker.
#[derive(Debug, Clone)]
pub struct DropCounters(pub [u64; DropReason::COUNT]);

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters([0; DropReason::COUNT])
    }
}

impl DropCounters {
    #[inline]
    pub fn count(&mut self, r: DropReason) {
        self.0[r.index()] += 1;
    }
    #[inline]
    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r.index()]
    }
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    /// Adds another worker's counters into this one.
    pub fn merge(&mut self, other: &DropCounters) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }
    /// Non-zero counters by name.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::all()
            .map(|r| (r.name(), self.get(r)))
            .filter(|(_, n)| *n != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_and_unique() {
        let v: Vec<usize> = DropReason::all().map(DropReason::index).collect();
        assert_eq!(v.len(), DropReason::COUNT);
        for (i, x) in v.iter().enumerate() {
            assert_eq!(*x, i);
        }
        let mut names: Vec<_> = DropReason::all().map(DropReason::name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
