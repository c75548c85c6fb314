//! Lookup misses from the workers (upcalls) and what answers them: each
//! bridge's provider is asked, and its answers installed (an aging FDB
//! entry behind a VTEP, an overlay address); misses for the external
//! provider are left to its clients. A decapsulated frame for a MAC that is
//! not local here has its sender told its entry is stale (an invalidation
//! datagram, rate-limited), and such a datagram received drops ours.

use std::net::IpAddr;
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::{invalidate, lookup, Control, INVALIDATE_EVERY_NS};
use crate::events::{self, MissKind, Upcall, UPCALL_QUEUE};
use crate::snapshot::PortKind;
use crate::tables::fdb::FdbDest;
use crate::tunnel::RemoteIdx;
use xvs_types::{ip_to_u128, MacAddr, PortNo};

/// What [`Control::process_upcalls`] leaves to the daemon.
#[derive(Debug, Default)]
pub struct UpcallWork {
    /// Misses for the external provider's clients.
    pub misses: Vec<Miss>,
    /// Invalidations to send: to this VTEP, this message.
    pub invalidations: Vec<(IpAddr, invalidate::Invalidation)>,
}

/// A miss no provider answered at once, for an external control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    pub bridge: String,
    pub vlan: u16,
    pub kind: MissKind,
    /// Name of the port the frame came in on.
    pub port: String,
    pub src_vtep: Option<IpAddr>,
}

impl Control {
    /// A new upcall queue, for one worker's lookup misses.
    pub fn upcall_sender(&mut self) -> Sender<Upcall> {
        let (tx, rx) = events::upcall_channel();
        self.upcall_rx.push(rx);
        tx
    }

    /// Did lookup install this FDB entry?
    pub fn is_lookup_entry(&self, bridge: &str, vlan: u16, mac: MacAddr) -> bool {
        self.lookup_fdb
            .get(bridge)
            .is_some_and(|s| s.contains(&(vlan, mac)))
    }

    /// Drains the workers' upcall queues, asks each bridge's provider and
    /// installs its answers (one snapshot for all of them). Returns the
    /// misses of bridges with the external provider, for its clients.
    pub fn process_upcalls(&mut self, now: u64) -> UpcallWork {
        let mut ups = Vec::new();
        for rx in &self.upcall_rx {
            // Bounded per call, as learning is.
            ups.extend(rx.try_iter().take(UPCALL_QUEUE));
        }
        let mut work = UpcallWork::default();
        let mut changed = false;
        for u in ups {
            // A decapsulated frame for a MAC that is not local here: its
            // sender's entry is stale.
            if let MissKind::Mac(mac) | MissKind::NotHere(mac) = u.kind {
                if let Some(inv) = self.invalidation_for(u.port, u.remote, u.vlan, mac, now) {
                    work.invalidations.push(inv);
                }
            }
            if matches!(u.kind, MissKind::NotHere(_)) {
                continue;
            }
            let Some(b) = self.current.bridges.get(usize::from(u.bridge)) else {
                continue;
            };
            let Some(cfg) = self
                .config
                .bridges
                .iter()
                .find(|c| *c.name == *b.name)
                .and_then(|c| c.lookup.clone())
            else {
                continue;
            };
            let src_vtep = self.remote_ip(u.port, u.remote);
            let q = lookup::Query {
                vlan: u.vlan,
                kind: u.kind,
                src_vtep,
            };
            if cfg.provider == xvs_config::LookupProviderConfig::External {
                work.misses.push(Miss {
                    bridge: b.name.to_string(),
                    vlan: u.vlan,
                    kind: u.kind,
                    port: self
                        .current
                        .port(u.port)
                        .map_or_else(String::new, |p| p.name.to_string()),
                    src_vtep,
                });
                continue;
            }
            let name = b.name.to_string();
            changed |= match (lookup::LookupProvider::lookup(&cfg, &q), u.kind) {
                (Some(lookup::Answer::L2 { vtep }), MissKind::Mac(mac)) => {
                    self.install_l2(&name, u.vlan, mac, vtep, now)
                }
                (Some(lookup::Answer::L3 { mac }), MissKind::Ip(ip)) => {
                    let t = self.lookup_addrs.entry(name).or_default();
                    let old = t.insert((u.vlan, ip), (mac, now));
                    self.addrs_dirty |= old.map(|o| o.0) != Some(mac);
                    self.addrs_dirty
                }
                _ => false,
            };
        }
        if changed {
            self.republish();
        }
        work
    }

    /// The invalidation to send for `mac` to the VTEP behind (`port`,
    /// `remote`), unless it was sent within [`INVALIDATE_EVERY_NS`].
    fn invalidation_for(
        &mut self,
        port: PortNo,
        remote: RemoteIdx,
        vlan: u16,
        mac: MacAddr,
        now: u64,
    ) -> Option<(IpAddr, invalidate::Invalidation)> {
        let vtep = self.remote_ip(port, remote)?;
        let PortKind::Tunnel(t) = self.current.port(port)?.kind else {
            return None;
        };
        let vni = self.current.tunnels.get(t)?.vni;
        let inv = invalidate::Invalidation { vni, vlan, mac };
        let last = self.invalidated_at.entry((vtep, inv)).or_insert(0);
        if *last != 0 && now.saturating_sub(*last) < INVALIDATE_EVERY_NS {
            return None;
        }
        *last = now.max(1);
        Some((vtep, inv))
    }

    /// Takes an invalidation datagram from `from`: if `from` is a remote of
    /// a tunnel port with its VNI, drops the learned or looked-up entry of
    /// its MAC that points at a tunnel (never a static or a local one).
    /// Returns the bridge and MAC dropped.
    pub fn invalidation_received(&mut self, from: IpAddr, msg: &[u8]) -> Option<(String, MacAddr)> {
        let inv = invalidate::Invalidation::decode(msg)?;
        let key = ip_to_u128(from);
        let tp = self
            .current
            .tunnels
            .ports()
            .iter()
            .find(|tp| tp.vni == inv.vni && tp.remote_index(key).is_some())?;
        let bridge = self.current.port(tp.port)?.bridge;
        let name = self
            .current
            .bridges
            .get(usize::from(bridge))?
            .name
            .to_string();
        let fdb = self.fdbs.get_mut(&name)?;
        let e = fdb.get(inv.vlan, inv.mac, 0)?;
        let behind_tunnel = matches!(
            self.current.port(e.dest.port).map(|p| p.kind),
            Some(PortKind::Tunnel(_))
        );
        if e.is_static || !behind_tunnel || !fdb.del(inv.vlan, inv.mac) {
            return None;
        }
        if let Some(s) = self.lookup_fdb.get_mut(&name) {
            s.remove(&(inv.vlan, inv.mac));
        }
        self.remotes_gc_due = true;
        self.republish();
        Some((name, inv.mac))
    }

    /// The address of remote `r` of tunnel port `port`, if it is one.
    fn remote_ip(&self, port: PortNo, r: RemoteIdx) -> Option<IpAddr> {
        match self.current.port(port)?.kind {
            PortKind::Tunnel(t) => self
                .current
                .tunnels
                .ports()
                .get(usize::from(t))?
                .remotes
                .get(usize::from(r))
                .copied(),
            _ => None,
        }
    }

    /// Installs `mac` behind `vtep` as an aging FDB entry: on the bridge's
    /// tunnel port that has the VTEP among its remotes, else on its first
    /// tunnel port of the VTEP's family, as a dynamic remote (unicast
    /// only: never flooded to). True if anything changed.
    fn install_l2(
        &mut self,
        bridge: &str,
        vlan: u16,
        mac: MacAddr,
        vtep: IpAddr,
        now: u64,
    ) -> bool {
        let snap = Arc::clone(&self.current);
        let Some(b) = snap.bridges.iter().find(|b| &*b.name == bridge) else {
            return false;
        };
        let tunnels: Vec<(PortNo, u16)> = b
            .ports
            .iter()
            .filter_map(|&p| match snap.port(p)?.kind {
                PortKind::Tunnel(t) => Some((p, t)),
                _ => None,
            })
            .collect();
        let key = ip_to_u128(vtep);
        let known = tunnels.iter().find_map(|&(p, t)| {
            let r = snap.tunnels.get(t)?.remote_index(key)?;
            Some(FdbDest { port: p, remote: r })
        });
        let dest = known.or_else(|| {
            tunnels.iter().find_map(|&(p, t)| {
                let r = self.add_dynamic_remote(t, vtep)?;
                Some(FdbDest { port: p, remote: r })
            })
        });
        let (Some(dest), Some(fdb)) = (dest, self.fdbs.get_mut(bridge)) else {
            return false;
        };
        let changed = fdb.learn(vlan, mac, dest, now).changed();
        self.lookup_fdb
            .entry(bridge.to_string())
            .or_default()
            .insert((vlan, mac));
        // A move may have left a dynamic remote unreferenced.
        self.remotes_gc_due |= changed;
        changed || self.tunnels_dirty
    }

    /// Addresses lookup installed in `bridge`: (VLAN, IP, MAC).
    pub fn lookup_addrs(&self, bridge: &str) -> Vec<(u16, IpAddr, MacAddr)> {
        let mut v: Vec<_> = self
            .lookup_addrs
            .get(bridge)
            .into_iter()
            .flatten()
            .map(|(&(vlan, ip), &(mac, _))| (vlan, xvs_types::u128_to_ip(ip), mac))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::LearnEvent;
    use crate::testkit;

    #[test]
    fn an_invalidation_from_a_remote_drops_the_entry_behind_it_only() {
        let mut ctl = testkit::testbed();
        let snap = ctl.snapshot();
        let vx1 = snap.tunnels.ports()[0].port;
        let vm1 = snap.bridges[0].ports[0];
        let (behind, local) = (MacAddr([2, 0, 0, 0, 2, 1]), MacAddr([2, 0, 0, 0, 2, 2]));
        let vtep: IpAddr = "192.0.2.2".parse().unwrap();
        let tx = ctl.learn_sender();
        for (mac, port, from) in [(behind, vx1, Some(vtep)), (local, vm1, None)] {
            let ev = LearnEvent {
                bridge: 0,
                vlan: 0,
                mac,
                port,
                remote: 0,
                vtep: from,
                now: 1,
            };
            tx.send(ev).unwrap();
        }
        assert_eq!(ctl.process_learning(1), 2);
        let inv = |mac| {
            invalidate::Invalidation {
                vni: 42,
                vlan: 0,
                mac,
            }
            .encode()
        };
        // Not a remote of the VNI's tunnel, or an entry not behind a tunnel:
        // nothing dropped.
        let stranger: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(ctl.invalidation_received(stranger, &inv(behind)), None);
        assert_eq!(ctl.invalidation_received(vtep, &inv(local)), None);
        assert_eq!(
            ctl.invalidation_received(vtep, &inv(behind)),
            Some(("br0".to_string(), behind))
        );
        let fdb = ctl.fdb("br0").unwrap();
        assert!(fdb.get(0, behind, 1).is_none());
        assert!(fdb.get(0, local, 1).is_some());
    }
}
