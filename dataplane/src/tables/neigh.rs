//! Neighbor cache (IPv4 ARP and IPv6 ND) for underlay next hops.
//!
//! # Who writes, who reads
//! Control thread only. It feeds the cache from three sources — replies
//! snooped on the uplink, the kernel's neighbor table (rtnetlink) and static
//! config — and rebuilds tunnel header templates from it. Workers never read
//! it: they see resolved MACs only inside templates. [`NeighCache::generation`]
//! changes whenever a usable MAC appears, changes or disappears, so the
//! template builder knows when to rebuild.
//!
//! # States (kernel-like, simplified)
//! - `Incomplete`: resolution requested, no MAC yet. [`NeighCache::request`]
//!   allows one request per `retry_interval_ns` and turns the entry `Failed`
//!   once `max_retries` requests went unanswered (throttling as in smoltcp's
//!   neighbor cache: the caller asks on every packet, the cache says when to
//!   actually send).
//! - `Reachable` until `now + reachable_ns` after the last confirmation, then
//!   `Stale` (still used, as the kernel does, while it is re-confirmed); a
//!   stale entry is removed `stale_gc_ns` after it went stale.
//! - `Failed`: no answer. Not used; a new resolution may start after one full
//!   retry cycle (`retry_interval_ns * max_retries`), and the entry is removed
//!   after `stale_gc_ns`.
//! - `Static`: from config; never expires, never replaced by snooped or kernel
//!   data, never evicted.
//!
//! # Invariants
//! - Entries never exceed `capacity`; a new entry evicts the least recently
//!   updated non-static one, or is refused if all are static.
//! - Multicast, broadcast and all-zero MACs are never stored.
//! - Time is only ever the `now` argument (nanoseconds, monotonic).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::types::MacAddr;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Why a neighbor cache configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NeighError {
    #[error("neighbor cache config: capacity {0} must be at least 1")]
    BadCapacity(usize),
    #[error("neighbor cache config: max_retries {0} must be at least 1")]
    BadMaxRetries(u8),
    #[error("neighbor cache config: {field} = {value} ns must be non-zero")]
    ZeroInterval { field: &'static str, value: u64 },
}

/// Neighbor cache limits and timers, all in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighConfig {
    pub capacity: usize,
    /// How long a confirmed entry stays `Reachable`.
    pub reachable_ns: u64,
    /// How long a `Stale` or `Failed` entry is kept before removal.
    pub stale_gc_ns: u64,
    /// Minimum spacing of resolution requests for one IP.
    pub retry_interval_ns: u64,
    /// Requests sent before an `Incomplete` entry becomes `Failed`.
    pub max_retries: u8,
}

impl Default for NeighConfig {
    fn default() -> Self {
        NeighConfig {
            capacity: 1024,
            reachable_ns: 30 * NS_PER_SEC,
            stale_gc_ns: 60 * NS_PER_SEC,
            retry_interval_ns: NS_PER_SEC,
            max_retries: 3,
        }
    }
}

/// Where a MAC binding came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighSource {
    /// An ARP reply or neighbor advertisement seen on the uplink.
    Snooped,
    /// The kernel's neighbor table (rtnetlink).
    Kernel,
    /// Configuration: permanent.
    Static,
}

/// The resolution state of one IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighState {
    /// `retries` requests sent so far; the next one is allowed at `next_retry_ns`.
    Incomplete { retries: u8, next_retry_ns: u64 },
    /// Confirmed; becomes `Stale` at `until_ns`.
    Reachable { until_ns: u64 },
    /// Unconfirmed since `since_ns` but still used.
    Stale { since_ns: u64 },
    /// Gave up at `since_ns`.
    Failed { since_ns: u64 },
    /// From config; permanent.
    Static,
}

impl NeighState {
    /// Whether the entry's MAC may be used to send.
    pub fn is_usable(&self) -> bool {
        matches!(
            self,
            NeighState::Reachable { .. } | NeighState::Stale { .. } | NeighState::Static
        )
    }
}

/// What [`NeighCache::learn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighChange {
    /// The IP had no usable MAC before (absent, incomplete or failed).
    New,
    /// The IP was usable with another MAC.
    MacChanged { old: MacAddr },
    /// Same MAC; timers restarted.
    Refreshed,
    /// Not applied: a static entry, an invalid MAC, or a full cache of static entries.
    Ignored,
}

/// One entry as `neigh-show` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighEntryInfo {
    pub ip: IpAddr,
    /// `None` while incomplete or failed.
    pub mac: Option<MacAddr>,
    pub state: NeighState,
    pub source: NeighSource,
    /// Last time the entry was created, confirmed or changed state.
    pub updated_ns: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: NeighState,
    /// Meaningful only while `state.is_usable()`.
    mac: MacAddr,
    source: NeighSource,
    /// Drives eviction (least recently updated goes first).
    updated: u64,
    /// Throttles re-confirmation requests for a `Stale` entry.
    next_probe: u64,
}

impl Entry {
    fn usable_mac(&self) -> Option<MacAddr> {
        self.state.is_usable().then_some(self.mac)
    }
}

/// The neighbor cache. Ordered by IP so `iter` is already sorted for display.
#[derive(Debug)]
pub struct NeighCache {
    cfg: NeighConfig,
    entries: BTreeMap<IpAddr, Entry>,
    generation: u64,
}

impl NeighCache {
    pub fn new(cfg: NeighConfig) -> Result<Self, NeighError> {
        if cfg.capacity == 0 {
            return Err(NeighError::BadCapacity(cfg.capacity));
        }
        if cfg.max_retries == 0 {
            return Err(NeighError::BadMaxRetries(cfg.max_retries));
        }
        for (field, value) in [
            ("reachable_ns", cfg.reachable_ns),
            ("stale_gc_ns", cfg.stale_gc_ns),
            ("retry_interval_ns", cfg.retry_interval_ns),
        ] {
            if value == 0 {
                return Err(NeighError::ZeroInterval { field, value });
            }
        }
        Ok(NeighCache {
            cfg,
            entries: BTreeMap::new(),
            generation: 0,
        })
    }

    pub fn config(&self) -> &NeighConfig {
        &self.cfg
    }

    /// Bumped whenever any IP's usable MAC appears, changes or disappears.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records that `ip` is at `mac`, as seen at `now`.
    pub fn learn(
        &mut self,
        ip: IpAddr,
        mac: MacAddr,
        now: u64,
        source: NeighSource,
    ) -> NeighChange {
        if mac.is_multicast() || mac.is_zero() {
            return NeighChange::Ignored;
        }
        let state = match source {
            NeighSource::Static => NeighState::Static,
            NeighSource::Snooped | NeighSource::Kernel => NeighState::Reachable {
                until_ns: now.saturating_add(self.cfg.reachable_ns),
            },
        };
        let fresh = Entry {
            state,
            mac,
            source,
            updated: now,
            next_probe: now,
        };
        let Some(e) = self.entries.get_mut(&ip) else {
            if !self.make_room() {
                return NeighChange::Ignored;
            }
            self.entries.insert(ip, fresh);
            self.generation += 1;
            return NeighChange::New;
        };
        if e.state == NeighState::Static && source != NeighSource::Static {
            return NeighChange::Ignored;
        }
        let old = e.usable_mac();
        *e = fresh;
        match old {
            None => {
                self.generation += 1;
                NeighChange::New
            }
            Some(old) if old != mac => {
                self.generation += 1;
                NeighChange::MacChanged { old }
            }
            Some(_) => NeighChange::Refreshed,
        }
    }

    /// The MAC to send to `ip`, if one is usable (reachable, stale or static).
    pub fn lookup(&self, ip: IpAddr) -> Option<MacAddr> {
        self.entries.get(&ip).and_then(Entry::usable_mac)
    }

    pub fn state(&self, ip: IpAddr) -> Option<NeighState> {
        self.entries.get(&ip).map(|e| e.state)
    }

    /// Asks to resolve `ip`; true when the caller should send an ARP request or
    /// neighbor solicitation now. Call it as often as traffic needs the MAC: the
    /// cache spaces requests `retry_interval_ns` apart and gives up after
    /// `max_retries`.
    pub fn request(&mut self, ip: IpAddr, now: u64) -> bool {
        let cfg = self.cfg;
        let incomplete = NeighState::Incomplete {
            retries: 1,
            next_retry_ns: now.saturating_add(cfg.retry_interval_ns),
        };
        let Some(e) = self.entries.get_mut(&ip) else {
            if !self.make_room() {
                return false;
            }
            self.entries.insert(
                ip,
                Entry {
                    state: incomplete,
                    mac: MacAddr::ZERO,
                    source: NeighSource::Snooped,
                    updated: now,
                    next_probe: now,
                },
            );
            return true;
        };
        match e.state {
            NeighState::Static => false,
            NeighState::Reachable { until_ns } if now < until_ns => false,
            // Reachable past its time is stale in all but name: re-confirm it
            // while still using the MAC, at most once per retry interval.
            NeighState::Reachable { .. } | NeighState::Stale { .. } => {
                if now < e.next_probe {
                    return false;
                }
                e.next_probe = now.saturating_add(cfg.retry_interval_ns);
                true
            }
            NeighState::Incomplete {
                retries,
                next_retry_ns,
            } => {
                if now < next_retry_ns {
                    false
                } else if retries >= cfg.max_retries {
                    e.state = NeighState::Failed { since_ns: now };
                    e.updated = now;
                    false
                } else {
                    e.state = NeighState::Incomplete {
                        retries: retries + 1,
                        next_retry_ns: now.saturating_add(cfg.retry_interval_ns),
                    };
                    true
                }
            }
            NeighState::Failed { since_ns } => {
                let hold = cfg
                    .retry_interval_ns
                    .saturating_mul(u64::from(cfg.max_retries));
                if now < since_ns.saturating_add(hold) {
                    return false;
                }
                e.state = incomplete;
                e.updated = now;
                true
            }
        }
    }

    /// Runs the timers: reachable entries go stale, unanswered ones fail, old
    /// stale and failed ones go. Returns the IPs whose entry changed state or
    /// was removed, in IP order.
    pub fn expire(&mut self, now: u64) -> Vec<IpAddr> {
        let cfg = self.cfg;
        let mut touched = Vec::new();
        let mut usable_lost = false;
        self.entries.retain(|&ip, e| {
            let keep = match e.state {
                NeighState::Reachable { until_ns } if now >= until_ns => {
                    e.state = NeighState::Stale { since_ns: until_ns };
                    touched.push(ip);
                    // May already be past its GC time if expire ran late.
                    now < until_ns.saturating_add(cfg.stale_gc_ns)
                }
                NeighState::Stale { since_ns } => now < since_ns.saturating_add(cfg.stale_gc_ns),
                NeighState::Incomplete {
                    retries,
                    next_retry_ns,
                } if now >= next_retry_ns && retries >= cfg.max_retries => {
                    e.state = NeighState::Failed { since_ns: now };
                    e.updated = now;
                    touched.push(ip);
                    true
                }
                // Nobody asked again for a long time: the traffic is gone.
                NeighState::Incomplete { next_retry_ns, .. } => {
                    now < next_retry_ns.saturating_add(cfg.stale_gc_ns)
                }
                NeighState::Failed { since_ns } => now < since_ns.saturating_add(cfg.stale_gc_ns),
                NeighState::Reachable { .. } | NeighState::Static => true,
            };
            if !keep {
                usable_lost |= e.state.is_usable();
                if touched.last() != Some(&ip) {
                    touched.push(ip);
                }
            }
            keep
        });
        if usable_lost {
            self.generation += 1;
        }
        touched
    }

    /// Removes `ip`'s entry, static or not. False if there was none.
    pub fn remove(&mut self, ip: IpAddr) -> bool {
        match self.entries.remove(&ip) {
            Some(e) => {
                if e.state.is_usable() {
                    self.generation += 1;
                }
                true
            }
            None => false,
        }
    }

    /// Removes every non-static entry (static ones are config). Returns how many.
    pub fn flush(&mut self) -> usize {
        let before = self.entries.len();
        let mut usable_lost = false;
        self.entries.retain(|_, e| {
            let keep = e.state == NeighState::Static;
            usable_lost |= !keep && e.state.is_usable();
            keep
        });
        if usable_lost {
            self.generation += 1;
        }
        before - self.entries.len()
    }

    /// Every entry, in IP order (IPv4 before IPv6).
    pub fn iter(&self) -> impl Iterator<Item = NeighEntryInfo> + '_ {
        self.entries.iter().map(|(&ip, e)| NeighEntryInfo {
            ip,
            mac: e.usable_mac(),
            state: e.state,
            source: e.source,
            updated_ns: e.updated,
        })
    }

    /// Makes room for one more entry: evicts the least recently updated
    /// non-static entry if full. False if every entry is static.
    fn make_room(&mut self) -> bool {
        if self.entries.len() < self.cfg.capacity {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| e.state != NeighState::Static)
            .min_by_key(|(_, e)| e.updated)
            .map(|(&ip, _)| ip);
        match victim {
            Some(ip) => {
                self.remove(ip);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const S: u64 = NS_PER_SEC;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
    }

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    fn cache(capacity: usize) -> NeighCache {
        NeighCache::new(NeighConfig {
            capacity,
            ..NeighConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn learn_lookup_and_changes() {
        let mut c = cache(8);
        let g0 = c.generation();
        assert_eq!(
            c.learn(ip(1), mac(1), 0, NeighSource::Snooped),
            NeighChange::New
        );
        assert_eq!(c.lookup(ip(1)), Some(mac(1)));
        let g1 = c.generation();
        assert!(g1 > g0);
        assert_eq!(
            c.learn(ip(1), mac(1), S, NeighSource::Kernel),
            NeighChange::Refreshed
        );
        assert_eq!(c.generation(), g1);
        assert_eq!(
            c.learn(ip(1), mac(2), 2 * S, NeighSource::Snooped),
            NeighChange::MacChanged { old: mac(1) }
        );
        assert!(c.generation() > g1);
        assert_eq!(
            c.state(ip(1)),
            Some(NeighState::Reachable { until_ns: 32 * S })
        );
        assert_eq!(
            c.learn(ip(2), MacAddr::BROADCAST, 0, NeighSource::Snooped),
            NeighChange::Ignored
        );
        assert_eq!(c.lookup(ip(2)), None);
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_eq!(
            c.learn(v6, mac(6), 0, NeighSource::Snooped),
            NeighChange::New
        );
        assert_eq!(c.lookup(v6), Some(mac(6)));
        assert_eq!(c.lookup(IpAddr::V6(Ipv6Addr::LOCALHOST)), None);
    }

    #[test]
    fn static_is_not_overridden_by_snooping() {
        let mut c = cache(8);
        assert_eq!(
            c.learn(ip(1), mac(1), 0, NeighSource::Snooped),
            NeighChange::New
        );
        assert_eq!(
            c.learn(ip(1), mac(9), 0, NeighSource::Static),
            NeighChange::MacChanged { old: mac(1) }
        );
        assert_eq!(
            c.learn(ip(1), mac(2), 0, NeighSource::Snooped),
            NeighChange::Ignored
        );
        assert_eq!(
            c.learn(ip(1), mac(2), 0, NeighSource::Kernel),
            NeighChange::Ignored
        );
        assert_eq!(c.lookup(ip(1)), Some(mac(9)));
        assert!(!c.request(ip(1), 0));
        assert!(c.expire(1_000_000 * S).is_empty());
        assert_eq!(c.flush(), 0);
        assert_eq!(c.state(ip(1)), Some(NeighState::Static));
        assert!(c.remove(ip(1)));
        assert_eq!(c.lookup(ip(1)), None);
    }

    #[test]
    fn request_is_throttled_then_fails() {
        let mut c = cache(8);
        assert!(c.request(ip(1), 0));
        assert!(!c.request(ip(1), S / 2));
        assert!(c.request(ip(1), S));
        assert!(!c.request(ip(1), S + 1));
        assert!(c.request(ip(1), 2 * S));
        assert_eq!(
            c.state(ip(1)),
            Some(NeighState::Incomplete {
                retries: 3,
                next_retry_ns: 3 * S
            })
        );
        // Third request unanswered: give up.
        assert!(!c.request(ip(1), 3 * S));
        assert_eq!(c.state(ip(1)), Some(NeighState::Failed { since_ns: 3 * S }));
        assert_eq!(c.lookup(ip(1)), None);
        // Held down for one full retry cycle, then resolution starts again.
        assert!(!c.request(ip(1), 5 * S));
        assert!(c.request(ip(1), 6 * S));
        // An answer completes it.
        assert_eq!(
            c.learn(ip(1), mac(1), 6 * S + 1, NeighSource::Snooped),
            NeighChange::New
        );
        assert!(!c.request(ip(1), 7 * S));
    }

    #[test]
    fn expire_moves_through_states() {
        let mut c = cache(8);
        c.learn(ip(1), mac(1), 0, NeighSource::Snooped);
        c.learn(ip(2), mac(2), 0, NeighSource::Static);
        assert!(c.request(ip(3), 0));
        let g = c.generation();
        assert!(c.expire(29 * S).is_empty());
        // Reachable -> Stale at 30 s, still usable, generation unchanged.
        assert_eq!(c.expire(30 * S), vec![ip(1)]);
        assert_eq!(c.state(ip(1)), Some(NeighState::Stale { since_ns: 30 * S }));
        assert_eq!(c.lookup(ip(1)), Some(mac(1)));
        assert_eq!(c.generation(), g);
        // A stale entry asks for re-confirmation, throttled.
        assert!(c.request(ip(1), 31 * S));
        assert!(!c.request(ip(1), 31 * S + 1));
        // Confirmed again.
        assert_eq!(
            c.learn(ip(1), mac(1), 40 * S, NeighSource::Snooped),
            NeighChange::Refreshed
        );
        // ip(3) was requested once at 0 and never again: dropped 60 s after
        // its retry time; ip(1) goes stale again.
        assert_eq!(c.expire(70 * S), vec![ip(1), ip(3)]);
        // Stale GC after 60 s more: removed, generation bumps.
        assert!(c.expire(129 * S).is_empty());
        assert_eq!(c.expire(130 * S), vec![ip(1)]);
        assert_eq!(c.state(ip(1)), None);
        assert!(c.generation() > g);
        // The static one survives everything.
        assert_eq!(c.lookup(ip(2)), Some(mac(2)));
    }

    #[test]
    fn expire_fails_unanswered_and_collects_failed() {
        let mut c = cache(8);
        assert!(c.request(ip(1), 0));
        assert!(c.request(ip(1), S));
        assert!(c.request(ip(1), 2 * S));
        assert!(c.expire(2 * S + 1).is_empty());
        assert_eq!(c.expire(3 * S), vec![ip(1)]);
        assert_eq!(c.state(ip(1)), Some(NeighState::Failed { since_ns: 3 * S }));
        assert_eq!(c.expire(63 * S), vec![ip(1)]);
        assert!(c.is_empty());
        // An incomplete entry nobody asks about again is dropped too.
        assert!(c.request(ip(2), 100 * S));
        assert!(c.expire(160 * S).is_empty());
        assert_eq!(c.expire(161 * S), vec![ip(2)]);
    }

    #[test]
    fn capacity_evicts_oldest_non_static() {
        let mut c = cache(3);
        c.learn(ip(1), mac(1), 0, NeighSource::Static);
        c.learn(ip(2), mac(2), 10, NeighSource::Snooped);
        c.learn(ip(3), mac(3), 5, NeighSource::Snooped);
        let g = c.generation();
        assert_eq!(
            c.learn(ip(4), mac(4), 20, NeighSource::Snooped),
            NeighChange::New
        );
        assert_eq!(c.len(), 3);
        assert_eq!(c.lookup(ip(3)), None);
        assert_eq!(c.lookup(ip(1)), Some(mac(1)));
        assert!(c.generation() > g);
        let ips: Vec<IpAddr> = c.iter().map(|e| e.ip).collect();
        assert_eq!(ips, vec![ip(1), ip(2), ip(4)]);

        let mut full = cache(1);
        full.learn(ip(1), mac(1), 0, NeighSource::Static);
        assert_eq!(
            full.learn(ip(2), mac(2), 0, NeighSource::Snooped),
            NeighChange::Ignored
        );
        assert!(!full.request(ip(2), 0));
    }

    #[test]
    fn flush_keeps_static() {
        let mut c = cache(8);
        c.learn(ip(1), mac(1), 0, NeighSource::Static);
        c.learn(ip(2), mac(2), 0, NeighSource::Kernel);
        c.request(ip(3), 0);
        let g = c.generation();
        assert_eq!(c.flush(), 2);
        assert!(c.generation() > g);
        let shown: Vec<_> = c.iter().collect();
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].mac, Some(mac(1)));
        assert_eq!(shown[0].source, NeighSource::Static);
    }

    #[test]
    fn bad_config_is_named() {
        let e = NeighCache::new(NeighConfig {
            retry_interval_ns: 0,
            ..NeighConfig::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("retry_interval_ns"));
        assert_eq!(
            NeighCache::new(NeighConfig {
                capacity: 0,
                ..NeighConfig::default()
            })
            .unwrap_err(),
            NeighError::BadCapacity(0)
        );
    }
}
