//! Learning: the workers' learn events folded into the FDBs in batches
//! (one snapshot per batch), the refusals counted per port
//! ([`LearnRefusals`]), and the dynamic remotes of tunnel ports: VTEPs
//! added as learned or looked-up entries point at them, dropped once no
//! entry does, the entries of later ones moved to their new indices.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::{remap, Control, Remaps};
use crate::events::LEARN_QUEUE;
use crate::snapshot::PortKind;
use crate::tables::fdb::{FdbDest, LearnOutcome};
use crate::tunnel::{RemoteIdx, MAX_REMOTES};
use xvs_types::{ip_to_u128, PortNo};

/// Learn events of one port that the FDB refused. A refused MAC is not
/// learned but its frames are still forwarded (as by Linux's bridge over
/// its `max_learned`): dropping them would turn a limit meant to protect
/// the table into an outage for the VM's extra addresses, and port
/// security is the tool that drops. Frames to it are flooded, as to any
/// unknown MAC. Workers send an event per MAC once per refresh interval,
/// so these count MACs turned away per interval, not frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LearnRefusals {
    /// The port had its `max_macs` learned MACs.
    pub port_limit: u64,
    /// The bridge's FDB had `fdb_max_entries` entries.
    pub fdb_full: u64,
}

impl Control {
    /// Learn events refused for the port or tunnel `name`.
    pub fn learn_refusals(&self, name: &str) -> LearnRefusals {
        self.learn_refused.get(name).copied().unwrap_or_default()
    }

    /// Folds pending learn events into the FDBs; publishes one snapshot if
    /// any changed. Returns the number of events processed.
    pub fn process_learning(&mut self, now: u64) -> usize {
        let mut n = 0;
        let mut changed = false;
        let snap = Arc::clone(&self.current);
        // Bounded: workers may refill the queue while it is drained, and the
        // control thread has other work (a later call takes the rest).
        while n < LEARN_QUEUE {
            let Ok(ev) = self.learn_rx.try_recv() else {
                break;
            };
            n += 1;
            // Events are numbered by the snapshot the worker had: drop those
            // a reconfiguration made stale (port gone or moved bridges).
            let Some(pe) = snap.port(ev.port) else {
                continue;
            };
            if pe.bridge != ev.bridge {
                continue;
            }
            let remote = match (pe.kind, ev.vtep) {
                (PortKind::Tunnel(t), Some(vtep)) => match self.remote_for(t, vtep) {
                    Some(r) => r,
                    None => continue,
                },
                _ => ev.remote,
            };
            // Events sent before learning was turned off are stale too.
            let Some(b) = snap
                .bridges
                .get(usize::from(ev.bridge))
                .filter(|b| b.learning)
            else {
                continue;
            };
            let Some(fdb) = self.fdbs.get_mut(&*b.name) else {
                continue;
            };
            let dest = FdbDest {
                port: ev.port,
                remote,
            };
            let max = pe.max_macs.map(|m| m as usize);
            let outcome = fdb.learn_limited(ev.vlan, ev.mac, dest, now, max);
            changed |= outcome.changed();
            let table_full = match outcome {
                LearnOutcome::PortLimit => false,
                LearnOutcome::TableFull => true,
                _ => continue,
            };
            if !self.learn_refused.contains_key(&*pe.name) {
                self.learn_refused
                    .insert(pe.name.to_string(), LearnRefusals::default());
            }
            if let Some(r) = self.learn_refused.get_mut(&*pe.name) {
                if table_full {
                    r.fdb_full += 1;
                } else {
                    r.port_limit += 1;
                }
            }
        }
        if changed || self.tunnels_dirty {
            // A move may have left a dynamic remote unreferenced.
            self.remotes_gc_due = true;
            self.republish();
        }
        n
    }

    /// The index of `vtep` among tunnel `t`'s remotes, adding it as a
    /// dynamic remote when the port learns remotes. `None`: the port
    /// does not take it (it does not learn, the VTEP is not unicast, or
    /// the port is full).
    fn remote_for(&mut self, t: u16, vtep: IpAddr) -> Option<RemoteIdx> {
        let tp = self.current.tunnels.get(t)?;
        if let Some(r) = tp.remote_index(ip_to_u128(vtep)) {
            // Never the group: pop refuses it as a source.
            return (tp.group.is_none() || r != 0).then_some(r);
        }
        if !tp.learn {
            return None;
        }
        self.add_dynamic_remote(t, vtep)
    }

    /// Adds `vtep` to tunnel `t`'s dynamic remotes (or finds it among
    /// those added since the last publish). `None` if it is not a unicast
    /// address of the port's family or the port is full.
    pub(super) fn add_dynamic_remote(&mut self, t: u16, vtep: IpAddr) -> Option<RemoteIdx> {
        let tp = self.current.tunnels.get(t)?;
        if !xvs_config::is_unicast_ip(&vtep) || vtep.is_ipv4() != tp.local.is_ipv4() {
            return None;
        }
        let flood = tp.flood_len();
        let list = self.dyn_remotes.entry(tp.name.to_string()).or_default();
        // Added earlier in this batch, not yet in the snapshot.
        if let Some(k) = list.iter().position(|r| *r == vtep) {
            return Some((flood + k) as RemoteIdx);
        }
        if flood + list.len() >= MAX_REMOTES {
            return None;
        }
        list.push(vtep);
        self.tunnels_dirty = true;
        Some((flood + list.len() - 1) as RemoteIdx)
    }

    /// Drops dynamic remotes no FDB entry points at any more, moving the
    /// entries of later remotes down to their new indices.
    pub(super) fn collect_remotes(&mut self) {
        self.remotes_gc_due = false;
        let mut used: HashMap<PortNo, Vec<bool>> = HashMap::new();
        for tp in self.current.tunnels.ports() {
            let dynamic = self
                .dyn_remotes
                .get(&*tp.name)
                .map_or(&[][..], Vec::as_slice);
            // Only when the snapshot agrees with the lists (it does after
            // every publish).
            if !dynamic.is_empty() && tp.dynamic_remotes() == dynamic {
                used.insert(tp.port, vec![false; tp.remotes.len()]);
            }
        }
        if used.is_empty() {
            return;
        }
        for fdb in self.fdbs.values() {
            for e in fdb.iter(0) {
                if let Some(u) = used.get_mut(&e.dest.port) {
                    if let Some(x) = u.get_mut(usize::from(e.dest.remote)) {
                        *x = true;
                    }
                }
            }
        }
        let mut remaps = Remaps::new();
        for tp in self.current.tunnels.ports() {
            let Some(u) = used.get(&tp.port) else {
                continue;
            };
            let flood = tp.flood_len();
            if u[flood..].iter().all(|x| *x) {
                continue;
            }
            let mut next = 0;
            let map = u
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    (i < flood || *x).then(|| {
                        next += 1;
                        (next - 1) as RemoteIdx
                    })
                })
                .collect();
            let kept: Vec<IpAddr> = tp.remotes[flood..]
                .iter()
                .zip(&u[flood..])
                .filter(|(_, x)| **x)
                .map(|(r, _)| *r)
                .collect();
            self.dyn_remotes.insert(tp.name.to_string(), kept);
            remaps.insert(tp.port, map);
        }
        if remaps.is_empty() {
            return;
        }
        for fdb in self.fdbs.values_mut() {
            fdb.retain_map(|e| remap(&remaps, e.dest));
        }
        self.tunnels_dirty = true;
        self.republish();
    }
}

#[cfg(test)]
mod tests {
    use crate::events::LearnEvent;
    use crate::testkit;
    use xvs_types::MacAddr;

    #[test]
    fn a_port_over_its_limit_has_its_refusals_counted_not_learned() {
        let mut ctl = testkit::control();
        let mut config = testkit::config();
        config.ports[0].max_macs = Some(1);
        ctl.apply(config).expect("vm1 holds one MAC");
        let port = ctl.snapshot().bridges[0].ports[0];
        assert_eq!(&*ctl.snapshot().port(port).unwrap().name, "vm1");
        let tx = ctl.learn_sender();
        for last in [1, 2, 3] {
            tx.send(LearnEvent {
                bridge: 0,
                vlan: 0,
                mac: MacAddr([2, 0, 0, 0, 1, last]),
                port,
                remote: 0,
                vtep: None,
                now: 1,
            })
            .unwrap();
        }
        assert_eq!(ctl.process_learning(1), 3);
        let fdb = ctl.fdb("br0").unwrap();
        assert!(fdb.get(0, MacAddr([2, 0, 0, 0, 1, 1]), 1).is_some());
        assert!(fdb.get(0, MacAddr([2, 0, 0, 0, 1, 2]), 1).is_none());
        let refused = ctl.learn_refusals("vm1");
        assert_eq!((refused.port_limit, refused.fdb_full), (2, 0));
    }
}
