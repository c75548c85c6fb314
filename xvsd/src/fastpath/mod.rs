//! The GSO-preserving fast path (docs/design.md, "A GSO-preserving fast
//! path"), as the daemon runs it with `--fastpath`: guest ports get no XDP
//! program (which would take GSO away from their peers) but the TC
//! executor `xvs_tc_port` on their ingress, which carries out, on whole
//! super-packets, the decisions the pipeline made for established flows,
//! and sends everything else to the workers through the miss pair
//! (`pair.rs`). The workers stay the reference: they offer the flows whose
//! cached decisions the executor can carry out byte for byte
//! (`pipeline::offerable`), and this module turns those offers into TC
//! decisions ([`decision`]), installs them, flushes them all whenever a
//! new snapshot is published (a decision is only as good as the tables it
//! was read from), and learns for the flows it carries, whose frames no
//! longer reach a worker.
//!
//! Control thread only: map updates and dumps are syscalls, and none is
//! made per packet. What stays the pipeline's: every frame of a flow not
//! yet decided, every flow the executor cannot describe or carry out the
//! same way. The uplink too has no XDP program (a veth uplink's peer
//! keeps GSO, so the remote's super-packets arrive whole): `xvs_tc_uplink`
//! snoops ARP replies and neighbour advertisements for the control
//! thread, decapsulates the decided tunnel flows whole, sends the rest of
//! the tunnel traffic to us through the miss pair and leaves the host's
//! traffic to the host.

mod decision;
mod pair;

pub use decision::{decision, Decision, Refused};
pub use pair::{MissPair, PairError, FAR, MTU, NEAR};

use std::collections::HashMap;

use crossbeam_channel::{Receiver, Sender};
use tracing::{debug, warn};
use xvs_bpf::tc::{
    TcAction, TcAttachment, TcError, TcFlows, TcKey, TcProgram, TcTableKey, TcTunnelKey,
};
use xvs_dataplane::events::{offer_channel, LearnEvent, Offer};
use xvs_dataplane::snapshot::Snapshot;
use xvs_types::PortNo;

/// A decision its flow has not used for this long is evicted (the TC
/// tables are bounded; flows come and go): the flow's next frames reach
/// the pipeline, which offers it again within `OFFER_PERIOD_NS`.
pub const IDLE_NS: u64 = 10_000_000_000;

/// CLOCK_MONOTONIC in nanoseconds, the clock of the executor's
/// `last_used_ns` (bpf_ktime_get_ns).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the pointer given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Offers taken per control round at most (the channel holds more; the
/// rest wait for the next round).
const DRAIN_MAX: usize = 1024;

/// What the fast path did, for `xvsctl stats` and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FastPathCounters {
    /// Decisions installed, and installed now.
    pub installed: u64,
    pub active: u64,
    /// Offers refused, by why.
    pub stale: u64,
    pub no_port: u64,
    pub template: u64,
    pub verified_csum: u64,
    pub hairpin: u64,
    pub mtu: u64,
    /// Decapsulations offered while the uplink has no executor (it is
    /// missing).
    pub uplink: u64,
    /// Installs the kernel refused (the table full).
    pub install_failed: u64,
    /// Flushes (a snapshot published while decisions were installed),
    /// and the decisions they removed.
    pub flushes: u64,
    pub flushed: u64,
    /// Decisions evicted after [`IDLE_NS`] unused.
    pub evicted: u64,
    /// Packets and bytes the executor carried (segments on the wire),
    /// summed over the decisions installed now and those flushed.
    pub packets: u64,
    pub bytes: u64,
}

/// What the fast path did for one guest port, or for the uplink's
/// decapsulated flows (`xvsctl stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortFastPath {
    /// Decisions installed for flows entering here.
    pub flows: u64,
    /// Packets (segments on the wire) and bytes the executor carried.
    pub packets: u64,
    pub bytes: u64,
    /// Frames sent to the pipeline through the miss pair, and frames lost
    /// on the way.
    pub misses: u64,
    pub miss_errors: u64,
}

/// One decision installed: the offer it came from and what its counters
/// said when last read.
#[derive(Debug, Clone, Copy)]
struct Installed {
    offer: Offer,
    /// The interface whose row counts it: the guest port it enters by,
    /// or the uplink.
    ifindex: u32,
    /// When it was installed (CLOCK_MONOTONIC ns).
    since: u64,
    packets: u64,
    bytes: u64,
}

/// The fast path of a running daemon: the TC programs and tables, the
/// miss pair, the guest ports' attachments and the installed decisions.
pub struct FastPath {
    flows: TcFlows,
    /// The far end's XDP program, which hands misses to the workers'
    /// sockets. Declared before the pair: fields drop in order, and the
    /// program comes off the far end before the pair is deleted.
    far: xvs_bpf::XdpProgram,
    pair: MissPair,
    offers_tx: Sender<Offer>,
    offers: Receiver<Offer>,
    ports: HashMap<u32, TcAttachment>,
    installed: HashMap<TcKey, Installed>,
    installed_tun: HashMap<TcTunnelKey, Installed>,
    /// The uplink's executor, and its interface.
    uplink: Option<(u32, TcAttachment)>,
    /// Packets and bytes carried by decisions no longer installed, or
    /// folded, by the guest port's ifindex.
    carried: HashMap<u32, (u64, u64)>,
    /// The snapshot the installed decisions were made in.
    generation: u64,
    counters: FastPathCounters,
}

impl std::fmt::Debug for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPath")
            .field("pair", &self.pair)
            .field("ports", &self.ports.len())
            .field("installed", &self.installed.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// Why the fast path could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FastPathError {
    #[error(transparent)]
    Tc(#[from] TcError),
    #[error(transparent)]
    Pair(#[from] PairError),
    #[error("the miss pair's XDP program: {0}")]
    Bpf(#[from] xvs_bpf::Error),
}

impl FastPath {
    /// Loads the TC programs, creates the miss pair with a queue per
    /// worker and attaches the port XDP program (`flags`) to its far end.
    pub fn new(workers: u32, flags: xvs_bpf::AttachFlags) -> Result<FastPath, FastPathError> {
        let flows = TcFlows::load()?;
        let pair = MissPair::create(workers)?;
        let far = xvs_bpf::XdpProgram::attach(FAR, xvs_bpf::Mode::Port, flags)?;
        let (offers_tx, offers) = offer_channel();
        Ok(FastPath {
            flows,
            far,
            pair,
            offers_tx,
            offers,
            ports: HashMap::new(),
            installed: HashMap::new(),
            installed_tun: HashMap::new(),
            uplink: None,
            carried: HashMap::new(),
            generation: 0,
            counters: FastPathCounters::default(),
        })
    }

    /// The channel workers offer flows on.
    pub fn offer_sender(&self) -> Sender<Offer> {
        self.offers_tx.clone()
    }

    /// The miss pair's far end, where each worker binds its socket.
    pub fn far(&self) -> &xvs_bpf::XdpProgram {
        &self.far
    }

    /// Puts the executor on the ingress of guest port `no` (interface
    /// `ifindex`), its misses going to the pipeline tagged with `no`.
    pub fn attach_port(&mut self, ifindex: u32, no: PortNo) -> Result<(), TcError> {
        self.flows.set_port(ifindex, no, self.pair.near_ifindex())?;
        match self.flows.attach(TcProgram::Port, ifindex as i32) {
            Ok(a) => {
                self.ports.insert(ifindex, a);
                Ok(())
            }
            Err(e) => {
                let _ = self.flows.unset_port(ifindex);
                Err(e)
            }
        }
    }

    /// Takes the executor off guest port `ifindex` with its decisions.
    pub fn detach_port(&mut self, ifindex: u32) {
        self.ports.remove(&ifindex);
        if let Err(e) = self.flows.unset_port(ifindex) {
            warn!(ifindex, "fast path: removing the port's entry: {e}");
        }
        let gone: Vec<TcKey> = self
            .installed
            .keys()
            .filter(|k| k.ifindex == ifindex)
            .copied()
            .collect();
        for k in gone {
            self.uninstall(&k);
        }
        // After the decisions' last counts: an interface that comes back
        // under this index starts from zero.
        self.carried.remove(&ifindex);
    }

    fn uninstall(&mut self, k: &TcKey) {
        if let Some(i) = self.installed.remove(k) {
            if let Ok(Some(a)) = self.flows.get(k) {
                carry(&mut self.counters, &mut self.carried, &i, &a);
            }
            let _ = self.flows.remove(k);
        }
    }

    /// Puts the executor on the ingress of the uplink, port `no`
    /// (interface `ifindex`), whose XDP object was loaded unattached
    /// with [`Self::uplink_maps`].
    pub fn attach_uplink(&mut self, ifindex: u32, no: PortNo) -> Result<(), TcError> {
        self.detach_uplink();
        self.flows.set_port(ifindex, no, self.pair.near_ifindex())?;
        match self.flows.attach(TcProgram::Uplink, ifindex as i32) {
            Ok(a) => {
                self.uplink = Some((ifindex, a));
                Ok(())
            }
            Err(e) => {
                let _ = self.flows.unset_port(ifindex);
                Err(e)
            }
        }
    }

    /// Takes the executor off the uplink, with its decisions.
    pub fn detach_uplink(&mut self) {
        let Some((ifindex, _)) = self.uplink.take() else {
            return;
        };
        let _ = self.flows.unset_port(ifindex);
        self.carried.remove(&ifindex);
        let keys: Vec<TcTunnelKey> = self.installed_tun.keys().copied().collect();
        for k in keys {
            self.installed_tun.remove(&k);
            let _ = self.flows.remove(&k);
        }
    }

    /// The maps the uplink's XDP object shares with the executor.
    pub fn uplink_maps(&self) -> Vec<(&'static str, std::os::fd::BorrowedFd<'_>)> {
        self.flows.uplink_maps()
    }

    /// One control round: flushes every decision if `snap` is newer than
    /// the one they were made in, then installs what the workers offered
    /// (`ifindex` gives a port's interface).
    pub fn sync(&mut self, snap: &Snapshot, ifindex: impl Fn(PortNo) -> Option<u32>) {
        if snap.generation != self.generation {
            if !self.installed.is_empty() || !self.installed_tun.is_empty() {
                self.fold(0, |_| {});
                let n = self.flows.flush();
                self.counters.flushes += 1;
                self.counters.flushed += n as u64;
                self.installed.clear();
                self.installed_tun.clear();
                debug!(n, generation = snap.generation, "fast path flushed");
            }
            self.generation = snap.generation;
        }
        for o in self.offers.try_iter().take(DRAIN_MAX).collect::<Vec<_>>() {
            self.take(snap, &o, &ifindex);
        }
        self.counters.active = (self.installed.len() + self.installed_tun.len()) as u64;
    }

    fn take(&mut self, snap: &Snapshot, o: &Offer, ifindex: &impl Fn(PortNo) -> Option<u32>) {
        let c = &mut self.counters;
        let installed = match decision(snap, o, ifindex) {
            Ok(Decision::Port(k, a)) => {
                if self.installed.contains_key(&k) {
                    return;
                }
                self.flows.insert(&k, &a).map(|()| {
                    let i = Installed {
                        offer: *o,
                        ifindex: k.ifindex,
                        since: monotonic_ns(),
                        packets: 0,
                        bytes: 0,
                    };
                    self.installed.insert(k, i);
                })
            }
            Ok(Decision::Uplink(k, a)) => {
                let Some((up, _)) = &self.uplink else {
                    c.uplink += 1;
                    return;
                };
                if self.installed_tun.contains_key(&k) {
                    return;
                }
                let up = *up;
                self.flows.insert(&k, &a).map(|()| {
                    let i = Installed {
                        offer: *o,
                        ifindex: up,
                        since: monotonic_ns(),
                        packets: 0,
                        bytes: 0,
                    };
                    self.installed_tun.insert(k, i);
                })
            }
            Err(Refused::Stale) => return c.stale += 1,
            Err(Refused::NoPort) => return c.no_port += 1,
            Err(Refused::Template) => return c.template += 1,
            Err(Refused::VerifiedCsum) => return c.verified_csum += 1,
            Err(Refused::Hairpin) => return c.hairpin += 1,
            Err(Refused::Mtu) => return c.mtu += 1,
        };
        match installed {
            Ok(()) => self.counters.installed += 1,
            Err(e) => {
                self.counters.install_failed += 1;
                debug!("fast path: installing a decision: {e}");
            }
        }
    }

    /// Reads the installed decisions' counters, adds what they carried
    /// since the last read to the totals, evicts those idle for
    /// [`IDLE_NS`], and calls `learn` for each
    /// decision that carried frames and learns its source: the workers
    /// no longer see those frames, so the control thread keeps the
    /// source's FDB entry fresh in their place (at the rate of this call:
    /// once a second).
    pub fn fold(&mut self, now: u64, mut learn: impl FnMut(LearnEvent)) {
        let mono = monotonic_ns();
        let mut used = Vec::new();
        let (c, carried) = (&mut self.counters, &mut self.carried);
        fold_table(
            &self.flows,
            &mut self.installed,
            c,
            carried,
            mono,
            &mut used,
        );
        fold_table(
            &self.flows,
            &mut self.installed_tun,
            c,
            carried,
            mono,
            &mut used,
        );
        self.counters.active = (self.installed.len() + self.installed_tun.len()) as u64;
        for o in used.into_iter().filter(|o| o.learn) {
            learn(LearnEvent {
                bridge: o.bridge,
                vlan: o.vlan,
                mac: o.key.dl_src(),
                port: o.in_port,
                remote: o.in_remote,
                vtep: o.vtep,
                now,
            });
        }
    }

    pub fn counters(&self) -> FastPathCounters {
        self.counters
    }

    /// What the fast path did for guest port `ifindex`, up to now (the
    /// installed decisions' counters read live); `None` for a port it
    /// does not serve.
    pub fn port_stats(&self, ifindex: u32) -> Option<PortFastPath> {
        let port = self.flows.port(ifindex).ok().flatten();
        let is_uplink = self.uplink.as_ref().is_some_and(|(u, _)| *u == ifindex);
        if port.is_none() && !is_uplink {
            return None;
        }
        let (mut packets, mut bytes) = self.carried.get(&ifindex).copied().unwrap_or_default();
        let mut flows = 0;
        let live = |a: Option<TcAction>, i: &Installed| {
            a.map_or((0, 0), |a| {
                (
                    a.packets.saturating_sub(i.packets),
                    a.bytes.saturating_sub(i.bytes),
                )
            })
        };
        for (k, i) in self.installed.iter().filter(|(_, i)| i.ifindex == ifindex) {
            flows += 1;
            let (p, b) = live(self.flows.get(k).ok().flatten(), i);
            packets += p;
            bytes += b;
        }
        for (k, i) in self
            .installed_tun
            .iter()
            .filter(|(_, i)| i.ifindex == ifindex)
        {
            flows += 1;
            let (p, b) = live(self.flows.get(k).ok().flatten(), i);
            packets += p;
            bytes += b;
        }
        Some(PortFastPath {
            flows,
            packets,
            bytes,
            misses: port.map_or(0, |p| p.misses),
            miss_errors: port.map_or(0, |p| p.miss_errors),
        })
    }
}

/// What `a`'s counters say `i` carried since they were last read, added
/// to the totals and to its interface's; returns the packets.
fn carry(
    counters: &mut FastPathCounters,
    carried: &mut HashMap<u32, (u64, u64)>,
    i: &Installed,
    a: &TcAction,
) -> u64 {
    let (dp, db) = (
        a.packets.saturating_sub(i.packets),
        a.bytes.saturating_sub(i.bytes),
    );
    counters.packets += dp;
    counters.bytes += db;
    let c = carried.entry(i.ifindex).or_default();
    c.0 += dp;
    c.1 += db;
    dp
}

/// [`FastPath::fold`] for one of the executor's tables: the counters
/// carried since the last read, the offers of the decisions used (in
/// `used`), and the decisions idle for [`IDLE_NS`] evicted.
fn fold_table<K: TcTableKey + std::hash::Hash + Eq>(
    flows: &TcFlows,
    installed: &mut HashMap<K, Installed>,
    counters: &mut FastPathCounters,
    carried: &mut HashMap<u32, (u64, u64)>,
    mono: u64,
    used: &mut Vec<Offer>,
) {
    let mut evict = Vec::new();
    for (k, a) in flows.entries::<K>() {
        let Some(i) = installed.get_mut(&k) else {
            continue;
        };
        if carry(counters, carried, i, &a) > 0 {
            used.push(i.offer);
        }
        (i.packets, i.bytes) = (a.packets, a.bytes);
        if mono.saturating_sub(a.last_used_ns.max(i.since)) > IDLE_NS {
            evict.push(k);
        }
    }
    for k in evict {
        installed.remove(&k);
        let _ = flows.remove(&k);
        counters.evicted += 1;
    }
}
