//! The underlay as the control plane sees it: the routes and neighbor
//! cache templates are built from ([`Underlay`]), what the kernel's tables
//! hold taken into them (a dump at start, then its events), and the next
//! hops to resolve or re-confirm through the kernel
//! ([`Control::due_resolutions`], [`Control::due_refreshes`]). In-use next
//! hops stay usable while the kernel resolves them again.

use std::net::IpAddr;

use super::{kernel, Control};
use crate::tables::neigh::{NeighCache, NeighConfig};
use crate::tables::route::{RouteOrigin, RouteTable};
use xvs_types::MacAddr;

/// Underlay facts templates are built from.
#[derive(Debug)]
pub struct Underlay {
    pub routes: RouteTable,
    pub neigh: NeighCache,
    /// MAC of the uplink (outer source MAC).
    pub uplink_mac: Option<MacAddr>,
}

impl Default for Underlay {
    fn default() -> Self {
        Underlay {
            routes: RouteTable::default(),
            neigh: NeighCache::new(NeighConfig::default())
                .expect("default neighbor config is valid"),
            uplink_mac: None,
        }
    }
}

impl Underlay {
    /// The next hop towards a remote VTEP: the route's gateway, or the
    /// remote itself on a directly connected route; `None` without a route.
    pub fn next_hop(&self, remote: IpAddr) -> Option<IpAddr> {
        let route = self.routes.lookup(remote)?;
        Some(route.gateway.unwrap_or(remote))
    }
}

impl Control {
    /// Next hops waiting for resolution.
    pub fn unresolved(&self) -> impl Iterator<Item = &IpAddr> {
        self.unresolved.iter()
    }

    /// Next hops to send a resolution request for now, each with the
    /// interface its route leaves by; throttled per address by the
    /// neighbor cache (one request per retry interval, a few retries).
    pub fn due_resolutions(&mut self, now: u64) -> Vec<(IpAddr, u32)> {
        let mut due = Vec::new();
        for ip in &self.unresolved {
            if self.underlay.neigh.request(*ip, now) {
                due.push((*ip, self.ifindex_towards(*ip)));
            }
        }
        due
    }

    /// Next hops in use, with a MAC, to re-confirm now (each once per
    /// refresh interval), with the interface their route leaves by. The
    /// daemon marks each used in the kernel's table and reads it back
    /// ([`Control::kernel_neigh`]).
    pub fn due_refreshes(&mut self, now: u64) -> Vec<(IpAddr, u32)> {
        let due = self.underlay.neigh.due_refresh(now);
        due.into_iter()
            .map(|ip| (ip, self.ifindex_towards(ip)))
            .collect()
    }

    fn ifindex_towards(&self, ip: IpAddr) -> u32 {
        self.underlay.routes.lookup(ip).map_or(0, |r| r.ifindex)
    }

    /// Takes what the kernel's table holds for `ip` (read after a
    /// resolution or a refresh): a MAC it has is used at once (a state such
    /// as DELAY is never notified), a failure removes ours; an entry being
    /// resolved or absent changes nothing (the answer will be notified).
    pub fn kernel_neigh(&mut self, ip: IpAddr, found: kernel::NeighLookup, now: u64) {
        match found {
            kernel::NeighLookup::Usable(n) if n.ip == ip => {
                self.underlay
                    .neigh
                    .learn_kernel(n.ip, n.mac, n.confirmed, now);
            }
            kernel::NeighLookup::Failed => self.neigh_failed(ip, now),
            _ => {}
        }
        self.underlay_updated();
    }

    /// The kernel's entry for `ip` failed: it does not answer, or it was
    /// deleted by hand (see [`NeighCache::kernel_failed`]).
    fn neigh_failed(&mut self, ip: IpAddr, now: u64) {
        self.underlay.neigh.kernel_failed(ip, now);
    }

    /// Call after changing `underlay` (routes, neighbors, uplink MAC):
    /// rebuilds templates and publishes if anything they depend on moved.
    pub fn underlay_updated(&mut self) {
        if self.underlay_changed() {
            self.republish();
        }
    }

    /// Replaces the kernel-learned routes with `state`'s and learns its
    /// neighbors (static and snooped entries stay); rebuilds templates.
    pub fn load_kernel(&mut self, state: &kernel::KernelState, now: u64) {
        self.underlay.routes.remove_origin(RouteOrigin::Kernel);
        for r in &state.routes {
            // A route the table refuses (e.g. a family mismatch) is one we
            // could not use anyway.
            let _ = self.underlay.routes.insert(r.clone());
        }
        for n in &state.neighbors {
            self.underlay
                .neigh
                .learn_kernel(n.ip, n.mac, n.confirmed, now);
        }
        self.underlay_updated();
    }

    /// Applies route and neighbor notifications from the kernel.
    pub fn apply_kernel_events(&mut self, events: &[kernel::KernelEvent], now: u64) {
        for ev in events {
            match ev {
                kernel::KernelEvent::RouteAdded(r) => {
                    let _ = self.underlay.routes.insert(r.clone());
                }
                kernel::KernelEvent::RouteRemoved { prefix, metric } => {
                    self.underlay.routes.remove(prefix, Some(*metric));
                }
                kernel::KernelEvent::NeighUpdated(n) => {
                    self.underlay
                        .neigh
                        .learn_kernel(n.ip, n.mac, n.confirmed, now);
                    // Gone stale (the kernel notifies that, not DELAY):
                    // mark it used now, so the kernel probes it while we
                    // keep sending to its MAC.
                    if !n.confirmed {
                        self.underlay.neigh.refresh_soon(n.ip);
                    }
                }
                kernel::KernelEvent::NeighRemoved(ip) => {
                    self.underlay.neigh.kernel_deleted(*ip, now);
                }
                kernel::KernelEvent::NeighFailed(ip) => self.neigh_failed(*ip, now),
            }
        }
        self.underlay_updated();
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{bed, ip, vtep_mac, KNOWN, VTEP};
    use super::*;

    #[test]
    fn an_in_use_next_hop_survives_the_kernels_garbage_collection() {
        let mut ctl = bed();
        assert!(ctl.underlay.neigh.is_in_use(ip(VTEP)));
        // Refreshed every interval while in use, through the kernel.
        let s = 1_000_000_000;
        assert_eq!(ctl.due_refreshes(s), vec![(ip(VTEP), 2)]);
        assert!(ctl.due_refreshes(s + 1).is_empty());
        // Stale in the kernel: refreshed at once, still usable.
        let stale = kernel::KernelNeigh {
            ip: ip(VTEP),
            mac: KNOWN,
            ifindex: 2,
            confirmed: false,
            permanent: false,
        };
        let confirmed = kernel::KernelNeigh {
            confirmed: true,
            ..stale
        };
        ctl.apply_kernel_events(&[kernel::KernelEvent::NeighUpdated(stale)], s + 2);
        assert_eq!(ctl.due_refreshes(s + 3), vec![(ip(VTEP), 2)]);
        // Collected by the kernel: usable while it is resolved again.
        ctl.apply_kernel_events(&[kernel::KernelEvent::NeighRemoved(ip(VTEP))], s + 4);
        assert_eq!(vtep_mac(&ctl), Some(KNOWN));
        assert_eq!(ctl.due_refreshes(s + 5), vec![(ip(VTEP), 2)]);
        ctl.kernel_neigh(ip(VTEP), kernel::NeighLookup::Resolving, s + 6);
        assert_eq!(vtep_mac(&ctl), Some(KNOWN));
        ctl.tick(30 * s);
        assert_eq!(vtep_mac(&ctl), Some(KNOWN));
        // Confirmed again, then failed (as `ip neigh del` does first):
        // kept while resolved again.
        ctl.apply_kernel_events(&[kernel::KernelEvent::NeighUpdated(confirmed)], 30 * s);
        ctl.apply_kernel_events(&[kernel::KernelEvent::NeighFailed(ip(VTEP))], 30 * s + 1);
        assert_eq!(vtep_mac(&ctl), Some(KNOWN));
        // The kernel gave up: the next hop does not answer.
        ctl.apply_kernel_events(&[kernel::KernelEvent::NeighFailed(ip(VTEP))], 31 * s);
        assert_eq!(vtep_mac(&ctl), None);
        assert!(ctl.unresolved().any(|a| *a == ip(VTEP)));
    }

    #[test]
    fn the_example_config_file_compiles() {
        let text = include_str!("../../../examples/xvsd.toml");
        let c = xvs_config::Config::from_toml(text, "examples/xvsd.toml").unwrap();
        // Its flows, ACLs and policers compile.
        Control::new().apply(c).unwrap();
    }

    #[test]
    fn config_routes_and_static_neighbors_are_installed_and_withdrawn() {
        let mut ctl = Control::new();
        let mut c = xvs_config::Config::default();
        c.routes.push(
            xvs_config::RouteConfig {
                prefix: "198.51.100.0/24".parse().unwrap(),
                gateway: Some("192.0.2.254".parse().unwrap()),
                dev: "eth0".into(),
                metric: 0,
            }
            .into(),
        );
        c.neighbors.push(
            xvs_config::NeighborConfig {
                ip: "192.0.2.254".parse().unwrap(),
                mac: "02:00:00:00:fe:01".parse().unwrap(),
            }
            .into(),
        );
        ctl.apply(c.clone()).unwrap();
        let hop = ctl.underlay.next_hop("198.51.100.7".parse().unwrap());
        assert_eq!(hop, Some("192.0.2.254".parse().unwrap()));
        assert_eq!(
            ctl.underlay.neigh.state("192.0.2.254".parse().unwrap()),
            Some(crate::tables::neigh::NeighState::Static)
        );
        ctl.apply(xvs_config::Config::default()).unwrap();
        assert_eq!(ctl.underlay.next_hop("198.51.100.7".parse().unwrap()), None);
        assert_eq!(
            ctl.underlay.neigh.state("192.0.2.254".parse().unwrap()),
            None
        );
    }
}
