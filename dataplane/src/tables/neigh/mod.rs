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
//! # Who may change what
//! The kernel's neighbor table is authoritative: a kernel entry sets or
//! moves a MAC. A snooped reply, which anyone on the underlay can send, is
//! only taken when it is solicited — for an address being resolved (an
//! incomplete entry, or a next hop in use without one) — and it confirms a
//! known entry with the same MAC, but never creates an entry for an address
//! nobody asked about nor moves a known MAC (a move the kernel accepts
//! reaches us as a kernel entry).
//!
//! # In use
//! The control thread names the next hops of its tunnel templates
//! ([`NeighCache::set_in_use`]). Those are never evicted for an entry not in
//! use, and [`NeighCache::due_refresh`] says when to re-confirm each one
//! (every `refresh_ns`) while its MAC is usable, so that it is confirmed
//! again before it goes stale and stays usable, stale or not, while that
//! happens.
//!
//! # States (kernel-like, simplified)
//! - `Incomplete`: resolution requested, no MAC yet. [`NeighCache::request`]
//!   allows one request per `retry_interval_ns` and turns the entry `Failed`
//!   once `max_retries` requests went unanswered (throttling as in smoltcp's
//!   neighbor cache: the caller asks on every packet, the cache says when to
//!   actually send).
//! - `Reachable` until `now + reachable_ns` after the last confirmation, then
//!   `Stale` (still used, as the kernel does, while it is re-confirmed); a
//!   stale entry is removed `stale_gc_ns` after it went stale (in use or
//!   not: by then it went unconfirmed through many refreshes).
//! - `Failed`: no answer. Not used; a new resolution may start after one full
//!   retry cycle (`retry_interval_ns * max_retries`), and the entry is removed
//!   after `stale_gc_ns`.
//! - `Static`: from config; never expires, never replaced by snooped or kernel
//!   data, never evicted.
//!
//! # Invariants
//! - Entries never exceed `capacity`; a new entry evicts the least recently
//!   updated one that is neither static nor in use, or is refused if there
//!   is none.
//! - Multicast, broadcast and all-zero MACs are never stored.
//! - Time is only ever the `now` argument (nanoseconds, monotonic).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use xvs_types::MacAddr;

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
    /// How often an entry in use is re-confirmed. The daemon marks it used
    /// in the kernel's table each time: this must stay below the kernel's
    /// `delay_first_probe_time` (5 s by default) for the kernel to find it
    /// used when its reachable time runs out, and to re-validate it by a
    /// unicast probe (DELAY, PROBE) instead of letting it go STALE and
    /// later collecting it.
    pub refresh_ns: u64,
}

impl Default for NeighConfig {
    fn default() -> Self {
        NeighConfig {
            capacity: 1024,
            reachable_ns: 30 * NS_PER_SEC,
            stale_gc_ns: 60 * NS_PER_SEC,
            retry_interval_ns: NS_PER_SEC,
            max_retries: 3,
            refresh_ns: NS_PER_SEC,
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
    /// Nothing changed: a static entry, an invalid MAC, a cache full of
    /// entries static or in use, or a kernel entry that only repeats what
    /// the cache has.
    Ignored,
    /// A snooped reply for an address nobody is resolving: not stored.
    Unsolicited,
    /// A snooped reply that would move a known MAC: the known one stays
    /// (only the kernel's table moves it).
    Conflict { kept: MacAddr },
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
    /// Times it was due for re-confirmation through the kernel while in
    /// use ([`NeighCache::due_refresh`]), since it was created.
    pub refreshes: u64,
    /// Times the kernel or a snooped reply confirmed it (made it
    /// reachable), since it was created.
    pub confirmations: u64,
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
    /// For `neigh-show`: see [`NeighEntryInfo`].
    refreshes: u64,
    confirmations: u64,
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
    /// Next hops of tunnel templates, with an entry or not.
    in_use: BTreeSet<IpAddr>,
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
            ("refresh_ns", cfg.refresh_ns),
        ] {
            if value == 0 {
                return Err(NeighError::ZeroInterval { field, value });
            }
        }
        Ok(NeighCache {
            cfg,
            entries: BTreeMap::new(),
            in_use: BTreeSet::new(),
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

    /// Records that `ip` is at `mac`, as seen at `now`: from config
    /// (static), confirmed by the kernel, or snooped (taken only when
    /// solicited, see the module doc).
    pub fn learn(
        &mut self,
        ip: IpAddr,
        mac: MacAddr,
        now: u64,
        source: NeighSource,
    ) -> NeighChange {
        match source {
            NeighSource::Static => self.put(ip, mac, NeighState::Static, source, now),
            NeighSource::Kernel => self.learn_kernel(ip, mac, true, now),
            NeighSource::Snooped => self.learn_snooped(ip, mac, now),
        }
    }

    /// Records the kernel's entry for `ip`. `confirmed`: the kernel
    /// confirmed it lately (REACHABLE, PERMANENT, NOARP); otherwise it is
    /// usable but unconfirmed (STALE, DELAY, PROBE), which keeps our timers
    /// as they are unless the MAC is new to us. The kernel's MAC wins.
    pub fn learn_kernel(
        &mut self,
        ip: IpAddr,
        mac: MacAddr,
        confirmed: bool,
        now: u64,
    ) -> NeighChange {
        let known = self.entries.get(&ip).map(|e| (e.state, e.usable_mac()));
        if matches!(known, Some((NeighState::Static, _))) {
            return NeighChange::Ignored;
        }
        if confirmed {
            let until_ns = now.saturating_add(self.cfg.reachable_ns);
            return self.put(
                ip,
                mac,
                NeighState::Reachable { until_ns },
                NeighSource::Kernel,
                now,
            );
        }
        match known {
            Some((_, Some(old))) if old == mac => NeighChange::Ignored,
            _ => self.put(
                ip,
                mac,
                NeighState::Stale { since_ns: now },
                NeighSource::Kernel,
                now,
            ),
        }
    }

    /// A snooped reply: stored only for an address being resolved (an
    /// incomplete or failed entry, or a next hop in use without one);
    /// confirms a known entry only if the MAC is the same.
    fn learn_snooped(&mut self, ip: IpAddr, mac: MacAddr, now: u64) -> NeighChange {
        let known = self.entries.get(&ip).map(|e| (e.state, e.usable_mac()));
        let reachable = NeighState::Reachable {
            until_ns: now.saturating_add(self.cfg.reachable_ns),
        };
        match known {
            None if !self.in_use.contains(&ip) => NeighChange::Unsolicited,
            Some((NeighState::Static, _)) => NeighChange::Ignored,
            Some((_, Some(old))) if old != mac => NeighChange::Conflict { kept: old },
            _ => self.put(ip, mac, reachable, NeighSource::Snooped, now),
        }
    }

    /// Sets `ip`'s entry, creating it if there is room. Never replaces a
    /// static entry with anything but another static one.
    fn put(
        &mut self,
        ip: IpAddr,
        mac: MacAddr,
        state: NeighState,
        source: NeighSource,
        now: u64,
    ) -> NeighChange {
        if mac.is_multicast() || mac.is_zero() {
            return NeighChange::Ignored;
        }
        // Just confirmed: the first refresh is one interval away; an
        // unconfirmed one is due at once.
        let first_probe = match state {
            NeighState::Reachable { .. } | NeighState::Static => {
                now.saturating_add(self.cfg.refresh_ns)
            }
            _ => now,
        };
        let confirmed = u64::from(matches!(state, NeighState::Reachable { .. }));
        let fresh = Entry {
            state,
            mac,
            source,
            updated: now,
            next_probe: first_probe,
            refreshes: 0,
            confirmations: confirmed,
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
        // A refresh already scheduled stays as it was: a confirmation must
        // not postpone the next one.
        let next_probe = if old.is_some() {
            e.next_probe
        } else {
            first_probe
        };
        *e = Entry {
            next_probe,
            refreshes: e.refreshes,
            confirmations: e.confirmations.saturating_add(confirmed),
            ..fresh
        };
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

    /// Names the next hops in use (those of tunnel templates), replacing
    /// the previous set. One newly in use is due for a refresh at once: it
    /// may not have been confirmed for a while.
    pub fn set_in_use(&mut self, ips: impl IntoIterator<Item = IpAddr>) {
        let new: BTreeSet<IpAddr> = ips.into_iter().collect();
        for ip in new.difference(&self.in_use) {
            if let Some(e) = self.entries.get_mut(ip) {
                e.next_probe = 0;
            }
        }
        self.in_use = new;
    }

    pub fn is_in_use(&self, ip: IpAddr) -> bool {
        self.in_use.contains(&ip)
    }

    /// The in-use entries with a usable MAC (not static) to re-confirm now:
    /// each at most once per `refresh_ns`, so one is re-confirmed many
    /// times before its reachable time runs out.
    pub fn due_refresh(&mut self, now: u64) -> Vec<IpAddr> {
        let mut due = Vec::new();
        for ip in &self.in_use {
            let Some(e) = self.entries.get_mut(ip) else {
                continue;
            };
            if e.state.is_usable() && e.state != NeighState::Static && now >= e.next_probe {
                e.next_probe = now.saturating_add(self.cfg.refresh_ns);
                e.refreshes = e.refreshes.saturating_add(1);
                due.push(*ip);
            }
        }
        due
    }

    /// Makes `ip`'s refresh due now (if it is in use): the kernel said its
    /// entry went unconfirmed.
    pub fn refresh_soon(&mut self, ip: IpAddr) {
        if let Some(e) = self.entries.get_mut(&ip) {
            e.next_probe = 0;
        }
    }

    /// The kernel's entry for `ip` failed. Deleting an entry by hand
    /// (`ip neigh del`) fails it first, so one in use that was confirmed
    /// lately is treated as deleted: kept, stale, and resolved again. A
    /// second failure finds it stale and removes it: the next hop does not
    /// answer. True if it was removed.
    pub fn kernel_failed(&mut self, ip: IpAddr, now: u64) -> bool {
        match self.entries.get(&ip).map(|e| e.state) {
            Some(NeighState::Reachable { .. }) if self.in_use.contains(&ip) => {
                self.kernel_deleted(ip, now)
            }
            Some(NeighState::Static) | None => false,
            Some(_) => self.remove(ip),
        }
    }

    /// The kernel deleted its entry for `ip`. One in use with a usable MAC
    /// stays usable, stale, with its refresh due now (which re-creates the
    /// kernel's entry): a next hop that still answers must not lose packets
    /// to a garbage collection. Any other is removed, static ones excepted.
    /// True if it was removed.
    pub fn kernel_deleted(&mut self, ip: IpAddr, now: u64) -> bool {
        let in_use = self.in_use.contains(&ip);
        let Some(e) = self.entries.get_mut(&ip) else {
            return false;
        };
        match e.state {
            NeighState::Static => false,
            NeighState::Reachable { .. } if in_use => {
                e.state = NeighState::Stale { since_ns: now };
                e.updated = now;
                e.next_probe = 0;
                false
            }
            NeighState::Stale { .. } if in_use => {
                e.next_probe = 0;
                false
            }
            _ => self.remove(ip),
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
                    refreshes: 0,
                    confirmations: 0,
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
            refreshes: e.refreshes,
            confirmations: e.confirmations,
        })
    }

    /// Makes room for one more entry: evicts the least recently updated
    /// entry neither static nor in use if full. False if there is none: a
    /// flood of new addresses must not push out a tunnel's next hop.
    fn make_room(&mut self) -> bool {
        if self.entries.len() < self.cfg.capacity {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(ip, e)| e.state != NeighState::Static && !self.in_use.contains(ip))
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
mod tests;
