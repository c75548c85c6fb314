//! Snooped neighbor replies: the ARP replies and IPv6 neighbor
//! advertisements the XDP program hands up from the uplink's ring, parsed
//! here and taken into the neighbor cache only when the kernel would take
//! them (addressed to us, from one of the uplink's subnets) and only as the
//! cache allows (solicited; never moving a known MAC). Every other reply is
//! counted in [`SnoopCounters`] and dropped.

use std::net::IpAddr;

use super::Control;
use crate::tables::neigh::{NeighChange, NeighSource};
use crate::wire::arp::{self, ArpPacket};
use crate::wire::ethernet::{ethertype, EthernetFrame};
use crate::wire::icmp::{parse_ndp, NdpKind};
use crate::wire::ip_proto;
use crate::wire::ipv6::Ipv6Packet;
use xvs_types::MacAddr;

/// What became of the ARP replies and neighbor advertisements snooped on
/// the uplink, by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SnoopCounters {
    /// A next hop being resolved got its MAC.
    pub learned: u64,
    /// A known entry was confirmed (same MAC).
    pub confirmed: u64,
    /// Addressed to another host's MAC: the kernel drops those.
    pub not_for_us: u64,
    /// The sender is not on one of the uplink's subnets.
    pub off_subnet: u64,
    /// For an address nobody is resolving.
    pub unsolicited: u64,
    /// Would have moved a known MAC (a spoof, or a move the kernel will
    /// report if it accepts it).
    pub conflicting: u64,
    /// Static entries, and replies the cache had no room for.
    pub ignored: u64,
}

impl SnoopCounters {
    /// Replies refused (everything but learned and confirmed).
    pub fn refused(&self) -> u64 {
        self.not_for_us + self.off_subnet + self.unsolicited + self.conflicting + self.ignored
    }
}

impl Control {
    /// What became of snooped frames so far.
    pub fn snoop_counters(&self) -> SnoopCounters {
        self.snoop_counters
    }

    /// Takes an ARP reply or IPv6 neighbor advertisement seen on the uplink
    /// (snooped by the XDP program and handed up), if the kernel would:
    /// addressed to the uplink's MAC (or broadcast, multicast), from an
    /// address on one of the uplink's subnets (its connected routes); then
    /// the neighbor cache takes it only if solicited and never lets it move
    /// a known MAC. Any other frame is ignored. Templates are rebuilt when a
    /// next hop's MAC appeared. Returns what the neighbor cache did, if it
    /// was such a frame (refusals included, and counted).
    pub fn snoop(&mut self, frame: &[u8], now: u64) -> Option<NeighChange> {
        let (dst, ip, mac) = neighbor_from_frame(frame)?;
        let c = &mut self.snoop_counters;
        let for_us = dst.is_multicast() || Some(dst) == self.underlay.uplink_mac;
        if !for_us {
            c.not_for_us += 1;
            return Some(NeighChange::Ignored);
        }
        let uplink = self.config.uplink.as_ref().map(|u| u.iface.as_str());
        let on_link = xvs_config::is_unicast_ip(&ip)
            && self
                .underlay
                .routes
                .lookup(ip)
                .is_some_and(|r| r.gateway.is_none() && Some(r.dev.as_str()) == uplink);
        if !on_link {
            c.off_subnet += 1;
            return Some(NeighChange::Ignored);
        }
        let change = self
            .underlay
            .neigh
            .learn(ip, mac, now, NeighSource::Snooped);
        let c = &mut self.snoop_counters;
        match change {
            NeighChange::New | NeighChange::MacChanged { .. } => c.learned += 1,
            NeighChange::Refreshed => c.confirmed += 1,
            NeighChange::Unsolicited => c.unsolicited += 1,
            NeighChange::Conflict { .. } => c.conflicting += 1,
            NeighChange::Ignored => c.ignored += 1,
        }
        self.underlay_updated();
        Some(change)
    }
}

/// The destination MAC of an ARP reply or a neighbor advertisement, and
/// the (IP, MAC) it announces.
fn neighbor_from_frame(frame: &[u8]) -> Option<(MacAddr, IpAddr, MacAddr)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let dst = eth.dst_addr();
    match eth.ethertype() {
        ethertype::ARP => {
            let arp = ArpPacket::new_checked(eth.payload()).ok()?;
            (arp.operation() == arp::op::REPLY).then(|| {
                (
                    dst,
                    IpAddr::V4(arp.sender_proto_addr()),
                    arp.sender_hw_addr(),
                )
            })
        }
        ethertype::IPV6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            let (proto, off) = ip.upper_layer().ok()?;
            if proto != ip_proto::ICMPV6 {
                return None;
            }
            let ndp = parse_ndp(eth.payload().get(off..)?).ok()??;
            match (ndp.kind, ndp.lladdr) {
                (NdpKind::Advert, Some(mac)) => Some((dst, IpAddr::V6(ndp.target), mac)),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{bed, ip, vtep_mac, KNOWN, SPOOF, VTEP};
    use super::*;
    use crate::control::kernel;
    use crate::testkit::UPLINK_MAC;

    /// An ARP reply: `sender` is at `mac`, sent to `dst`.
    fn reply(dst: MacAddr, sender: &str, mac: MacAddr) -> Vec<u8> {
        let IpAddr::V4(a) = ip(sender) else {
            panic!("IPv4 only")
        };
        let mut v = vec![0u8; 42];
        v[..6].copy_from_slice(&dst.0);
        v[6..12].copy_from_slice(&mac.0);
        v[12..14].copy_from_slice(&[0x08, 0x06]);
        v[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
        v[22..28].copy_from_slice(&mac.0);
        v[28..32].copy_from_slice(&a.octets());
        v[32..38].copy_from_slice(&UPLINK_MAC.0);
        v[38..42].copy_from_slice(&[192, 0, 2, 1]);
        v
    }

    #[test]
    fn snooped_replies_are_taken_only_as_the_kernel_would() {
        let mut ctl = bed();
        // Outside the uplink's subnets (no route, or only via a gateway).
        let off = reply(UPLINK_MAC, "198.51.100.7", SPOOF);
        assert_eq!(ctl.snoop(&off, 1), Some(NeighChange::Ignored));
        assert_eq!(ctl.underlay.neigh.state(ip("198.51.100.7")), None);
        // To another host's MAC: the kernel drops it as PACKET_OTHERHOST.
        let other = reply(MacAddr([2, 0, 0, 0, 0, 0x99]), VTEP, SPOOF);
        assert_eq!(ctl.snoop(&other, 2), Some(NeighChange::Ignored));
        // To us, for the VTEP, from another MAC: a spoof; the MAC stays.
        let spoof = reply(UPLINK_MAC, VTEP, SPOOF);
        assert_eq!(
            ctl.snoop(&spoof, 3),
            Some(NeighChange::Conflict { kept: KNOWN })
        );
        assert_eq!(vtep_mac(&ctl), Some(KNOWN));
        // Broadcast, same MAC: a confirmation.
        let confirm = reply(MacAddr::BROADCAST, VTEP, KNOWN);
        assert_eq!(ctl.snoop(&confirm, 4), Some(NeighChange::Refreshed));
        // On the subnet but nobody asked.
        let unsolicited = reply(UPLINK_MAC, "192.0.2.77", SPOOF);
        assert_eq!(ctl.snoop(&unsolicited, 5), Some(NeighChange::Unsolicited));
        assert_eq!(ctl.underlay.neigh.state(ip("192.0.2.77")), None);
        assert_eq!(
            ctl.snoop_counters(),
            SnoopCounters {
                learned: 0,
                confirmed: 1,
                not_for_us: 1,
                off_subnet: 1,
                unsolicited: 1,
                conflicting: 1,
                ignored: 0,
            }
        );
        // The kernel's table decides a move.
        let moved = kernel::KernelNeigh {
            ip: ip(VTEP),
            mac: SPOOF,
            ifindex: 2,
            confirmed: true,
            permanent: false,
        };
        ctl.apply_kernel_events(&[kernel::KernelEvent::NeighUpdated(moved)], 6);
        assert_eq!(vtep_mac(&ctl), Some(SPOOF));
    }

    #[test]
    fn a_flood_of_unsolicited_replies_publishes_nothing() {
        let mut ctl = bed();
        let generation = ctl.snapshot().generation;
        for n in 0..20_000u32 {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + n + 1).to_string();
            let f = reply(
                UPLINK_MAC,
                &a,
                MacAddr([2, 0, 0, 1, (n >> 8) as u8, n as u8]),
            );
            assert_eq!(
                ctl.snoop(&f, u64::from(n) * 50_000),
                Some(NeighChange::Unsolicited)
            );
        }
        assert_eq!(ctl.snoop_counters().unsolicited, 20_000);
        assert_eq!(ctl.snapshot().generation, generation);
        assert_eq!(vtep_mac(&ctl), Some(KNOWN));
    }
}
