//! Per-worker mutable state: counters, the exact-match cache, policer
//! buckets, firewall hit counters and the learning filter.
//!
//! Owned and written by exactly one worker thread; the control plane reads
//! copies of the counters on demand (the worker hands them over, e.g. by
//! a periodic snapshot), never the live struct.

use crossbeam_channel::{Sender, TrySendError};

use crate::policy::qos::PolicerState;
use crate::snapshot::{BridgeEntry, Snapshot};
use crate::stats::{DropCounters, DropReason};
use crate::tables::flow::{ExactMatchCache, EMC_DEFAULT_ENTRIES};
use std::net::IpAddr;

use crate::events::{LearnEvent, MissKind, Offer, Upcall};
use crate::tunnel::{RemoteIdx, UNKNOWN_REMOTE};
use xvs_types::{BridgeNo, MacAddr, PortNo};

/// Slots of the upcall filter (direct-mapped), and how long a key stays
/// in it: a burst of frames to one unknown MAC makes one upcall.
const UPCALL_FILTER_SLOTS: usize = 1024;
const UPCALL_REPEAT_NS: u64 = 100_000_000;

/// Counters of one port, as seen by one worker.
#[derive(Debug, Clone, Default)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: DropCounters,
    /// Frames whose L4 checksum the sender left to offload, completed here
    /// (`wire::offload`).
    pub csum_completed: u64,
    /// ICMP "fragmentation needed" / "packet too big" errors sent to this
    /// port for its frames that did not fit their egress (`pipeline::pmtu`).
    pub icmp_too_big: u64,
}

impl PortCounters {
    pub fn merge(&mut self, o: &PortCounters) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.drops.merge(&o.drops);
        self.csum_completed += o.csum_completed;
        self.icmp_too_big += o.icmp_too_big;
    }
}

/// Slots of the offer filter (direct-mapped).
const OFFER_FILTER_SLOTS: usize = 4096;
/// How often a flow still reaching the pipeline is offered again.
pub const OFFER_PERIOD_NS: u64 = 2_000_000_000;

/// Slots of the learning filter (direct-mapped).
const LEARN_FILTER_SLOTS: usize = 4096;

#[derive(Debug, Clone, Copy, Default)]
struct LearnSlot {
    /// VLAN << 48 | MAC, plus 1 << 63 so an empty slot never matches.
    key: u64,
    /// bridge << 32 | port << 16 | remote.
    dest: u64,
    sent_at: u64,
}

/// What one flow rule matched on one worker (`xvsctl dump-flows`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleCount {
    pub packets: u64,
    pub bytes: u64,
    /// The worker's clock (ns since the daemon's epoch) at the last match;
    /// 0: never.
    pub last_used_ns: u64,
}

impl RuleCount {
    /// Adds another worker's count of the same rule.
    pub fn merge(&mut self, other: &RuleCount) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.last_used_ns = self.last_used_ns.max(other.last_used_ns);
    }
}

/// What one policer passed and dropped on one worker (`xvsctl stats`):
/// frames and bytes within the rate (conform) and beyond it (exceed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicerCount {
    pub conform_packets: u64,
    pub conform_bytes: u64,
    pub exceed_packets: u64,
    pub exceed_bytes: u64,
}

/// What one mirror did on one worker (`xvsctl mirror-list`): copies sent
/// and their bytes (the frame as mirrored, before any tunnel header), and
/// copies lost (no free buffer, or too big for the output).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorCount {
    pub packets: u64,
    pub bytes: u64,
    pub dropped: u64,
}

impl MirrorCount {
    /// Adds another worker's count of the same mirror.
    pub fn merge(&mut self, other: &MirrorCount) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.dropped += other.dropped;
    }
}

/// One bridge's flow rule counters on one worker, for the table of
/// generation `generation` (a table rebuilt starts from zero, as a flow
/// re-added does in Open vSwitch): indexed by rule index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowHits {
    pub generation: u64,
    pub rules: Vec<RuleCount>,
}

/// Everything a worker owns.
#[derive(Debug)]
pub struct WorkerState {
    pub id: usize,
    /// Drops by reason, all ports together.
    pub drops: DropCounters,
    /// Per port number.
    pub ports: Vec<PortCounters>,
    /// Hit counters per firewall, per rule.
    pub fw_hits: Vec<Vec<RuleCount>>,
    /// Per mirror (the snapshot's index): copies made and lost.
    pub mirrors: Vec<MirrorCount>,
    /// Flow rule counters per bridge number.
    pub flow_hits: Vec<FlowHits>,
    /// The snapshot `flow_hits` was last matched against.
    flows_synced: u64,
    /// Frames copied because they lacked headroom for a tunnel header.
    pub copies: u64,
    /// Replicas made for flooding / multiple outputs.
    pub replicas: u64,
    /// Learn events sent, and lost to a full channel.
    pub learn_sent: u64,
    pub learn_lost: u64,
    /// ARP requests and neighbor solicitations answered from the overlay
    /// address table instead of being flooded.
    pub arp_suppressed: u64,
    pub nd_suppressed: u64,
    /// Misses sent to the lookup, and lost to a full queue.
    pub upcalls: u64,
    pub upcall_dropped: u64,
    /// Frames held for a lookup (each time), dropped at their deadline,
    /// and dropped because the caller's hold ring was full.
    pub held: u64,
    pub hold_expired: u64,
    pub hold_full: u64,
    pub(crate) emc: ExactMatchCache,
    policers: Vec<PolicerState>,
    learn_filter: Box<[LearnSlot]>,
    learn_tx: Option<Sender<LearnEvent>>,
    upcall_tx: Option<Sender<Upcall>>,
    offer_tx: Option<Sender<Offer>>,
    /// (hash of flow and generation) per slot: an offer goes out once per
    /// flow per snapshot, not per packet.
    offer_filter: Box<[u64]>,
    /// (key, sent at) per slot; key 0 is empty.
    upcall_filter: Box<[(u64, u64)]>,
    policy_generation: u64,
    learn_generation: u64,
    ip_id: u16,
    /// ICMP errors sent in the window that started at `icmp_window`.
    icmp_sent: u32,
    icmp_window: u64,
    /// Counts every drop and upcall: a forwarding decision made while it
    /// did not move had no side effect, so the exact-match cache may replay
    /// it.
    pub(crate) side_effects: u64,
    /// The first pass's per-frame slots (see [`super::Staged`]).
    pub(crate) stage: Box<[super::Staged]>,
    /// Frames forwarded by a decision the exact-match cache kept (no
    /// flow actions, no FDB lookup).
    pub plan_hits: u64,
    /// Flows offered to the fast path, and offers lost to a full channel.
    pub offers_sent: u64,
    pub offers_lost: u64,
}

impl WorkerState {
    /// State for worker `id`; learn events go to `learn_tx` (none: learning
    /// off, as in benchmarks of the static path).
    pub fn new(id: usize, learn_tx: Option<Sender<LearnEvent>>) -> WorkerState {
        WorkerState {
            id,
            drops: DropCounters::default(),
            ports: Vec::new(),
            fw_hits: Vec::new(),
            mirrors: Vec::new(),
            flow_hits: Vec::new(),
            flows_synced: u64::MAX,
            copies: 0,
            replicas: 0,
            learn_sent: 0,
            learn_lost: 0,
            arp_suppressed: 0,
            nd_suppressed: 0,
            upcalls: 0,
            upcall_dropped: 0,
            held: 0,
            hold_expired: 0,
            hold_full: 0,
            emc: ExactMatchCache::new(EMC_DEFAULT_ENTRIES),
            policers: Vec::new(),
            learn_filter: vec![LearnSlot::default(); LEARN_FILTER_SLOTS].into_boxed_slice(),
            learn_tx,
            upcall_tx: None,
            offer_tx: None,
            offer_filter: Vec::new().into_boxed_slice(),
            upcall_filter: Vec::new().into_boxed_slice(),
            policy_generation: u64::MAX,
            learn_generation: 0,
            ip_id: (id as u16).wrapping_mul(0x4000),
            icmp_sent: 0,
            icmp_window: 0,
            side_effects: 0,
            plan_hits: 0,
            offers_sent: 0,
            offers_lost: 0,
            stage: vec![super::Staged::default(); super::STAGE_FRAMES].into_boxed_slice(),
        }
    }

    /// Adapts to a new snapshot: grows counters, and resets policers and
    /// firewall hit counters only when the policy itself changed. Runs once
    /// per batch; allocates only when the snapshot grew.
    pub fn sync(&mut self, snap: &Snapshot) {
        if self.ports.len() < snap.ports.len() {
            self.ports
                .resize_with(snap.ports.len(), PortCounters::default);
        }
        if self.policy_generation != snap.policy_generation {
            self.sync_policy(snap);
        }
        if self.learn_generation != snap.learn_generation {
            self.learn_generation = snap.learn_generation;
            self.learn_filter.fill(LearnSlot::default());
        }
        if self.flows_synced != snap.generation {
            self.flows_synced = snap.generation;
            self.sync_flow_hits(snap);
        }
    }

    /// A new policy: policers start full, ACL and policer counters from
    /// zero. Out of line: `sync` runs every batch, this once per policy.
    #[cold]
    #[inline(never)]
    fn sync_policy(&mut self, snap: &Snapshot) {
        self.policy_generation = snap.policy_generation;
        self.policers = snap
            .policers
            .iter()
            .map(|c| PolicerState::new(c, 0))
            .collect();
        self.fw_hits = snap
            .firewalls
            .iter()
            .map(|f| vec![RuleCount::default(); f.rule_count()])
            .collect();
        self.mirrors = vec![MirrorCount::default(); snap.mirrors.len()];
    }

    /// Keeps each bridge's flow counters while its table is the same one,
    /// and starts a rebuilt (or new) table's from zero.
    #[cold]
    fn sync_flow_hits(&mut self, snap: &Snapshot) {
        self.flow_hits
            .resize_with(snap.bridges.len(), FlowHits::default);
        for (h, b) in self.flow_hits.iter_mut().zip(snap.bridges.iter()) {
            let g = b.flows.generation();
            if h.generation != g || h.rules.len() != b.flows.len() {
                *h = FlowHits {
                    generation: g,
                    rules: vec![RuleCount::default(); b.flows.len()],
                };
            }
        }
    }

    /// The policy (ACLs, QoS) generation `fw_hits` count for.
    pub fn policy_generation(&self) -> u64 {
        self.policy_generation
    }

    /// Counts a frame of `bytes` matching rule `rule` of bridge `bridge`.
    #[inline]
    pub(crate) fn count_flow_hit(&mut self, bridge: BridgeNo, rule: u32, bytes: usize, now: u64) {
        if let Some(c) = self
            .flow_hits
            .get_mut(usize::from(bridge))
            .and_then(|h| h.rules.get_mut(rule as usize))
        {
            c.packets += 1;
            c.bytes += bytes as u64;
            c.last_used_ns = now;
        }
    }

    /// Sends lookup misses to `tx` (none: bridges with lookup only flood
    /// or drop, as their miss action says).
    /// Offers flows to the fast path on `tx` (off until called).
    pub fn set_offers(&mut self, tx: Sender<Offer>) {
        self.offer_tx = Some(tx);
        self.offer_filter = vec![0; OFFER_FILTER_SLOTS].into_boxed_slice();
    }

    /// Whether flows are offered: the pipeline's one check per cached
    /// decision when they are not.
    #[inline]
    pub(crate) fn offers_on(&self) -> bool {
        self.offer_tx.is_some()
    }

    /// Sends `o` unless this flow was offered already in its snapshot
    /// and the same period of [`OFFER_PERIOD_NS`] (`now`): a flow still
    /// reaching the pipeline is offered again that often, so one whose
    /// decision the control thread evicted while it was idle, or could
    /// not install, goes back to the fast path by itself.
    pub(crate) fn offer(&mut self, now: u64, o: Offer) {
        let Some(tx) = &self.offer_tx else { return };
        let period = (now / OFFER_PERIOD_NS).rotate_left(16);
        let mark = (o.hash ^ o.generation.rotate_left(32) ^ period) | 1;
        let slot = (o.hash as usize) & (OFFER_FILTER_SLOTS - 1);
        let Some(s) = self.offer_filter.get_mut(slot) else {
            return;
        };
        if *s == mark {
            return;
        }
        *s = mark;
        match tx.try_send(o) {
            Ok(()) => self.offers_sent += 1,
            Err(_) => self.offers_lost += 1,
        }
    }

    pub fn set_upcalls(&mut self, tx: Sender<Upcall>) {
        self.upcall_tx = Some(tx);
        self.upcall_filter = vec![(0, 0); UPCALL_FILTER_SLOTS].into_boxed_slice();
    }

    /// Counters of what the pipeline did besides forwarding, by name,
    /// for worker stats (zero ones included).
    pub fn events(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("arp_suppressed", self.arp_suppressed),
            ("nd_suppressed", self.nd_suppressed),
            ("upcalls", self.upcalls),
            ("upcall_dropped", self.upcall_dropped),
            ("held", self.held),
            ("hold_expired", self.hold_expired),
            ("hold_full", self.hold_full),
            ("emc_plan_hits", self.plan_hits),
            ("emc_hits", self.emc.hits()),
            ("emc_misses", self.emc.misses()),
            ("copies", self.copies),
            ("replicas", self.replicas),
        ]
    }

    /// Reports a miss unless this worker reported the same one within
    /// [`UPCALL_REPEAT_NS`]; never waits (a full queue is counted).
    #[inline]
    pub(crate) fn upcall(&mut self, u: Upcall) {
        self.side_effects += 1;
        let Some(tx) = &self.upcall_tx else { return };
        let what = match u.kind {
            MissKind::Mac(m) => m.to_u64(),
            MissKind::NotHere(m) => m.to_u64() ^ 1 << 61,
            MissKind::Ip(ip) => (ip as u64) ^ ((ip >> 64) as u64).rotate_left(17) ^ 1 << 62,
        };
        let key = (what ^ u64::from(u.vlan) << 48 ^ u64::from(u.bridge) << 32)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            | 1;
        let n = self.upcall_filter.len();
        let Some(slot) = self.upcall_filter.get_mut((key >> 40) as usize % n.max(1)) else {
            return;
        };
        if slot.0 == key && u.now.saturating_sub(slot.1) < UPCALL_REPEAT_NS {
            return;
        }
        match tx.try_send(u) {
            Ok(()) => {
                self.upcalls += 1;
                *slot = (key, u.now);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.upcall_dropped += 1
            }
        }
    }

    /// Empties the exact-match cache, so that the next frames are decided
    /// from the tables alone. The differential test runs its reference
    /// worker this way, one frame at a time: what the cache replays must
    /// be exactly what the tables decide. Allocates: never per packet.
    pub fn forget_cache(&mut self) {
        self.emc = ExactMatchCache::new(self.emc.capacity());
    }

    /// Exact-match cache hits and misses, for stats.
    pub fn emc_hits(&self) -> u64 {
        self.emc.hits()
    }

    pub fn emc_misses(&self) -> u64 {
        self.emc.misses()
    }

    #[inline]
    pub(crate) fn count_rx(&mut self, port: PortNo, bytes: usize) {
        if let Some(c) = self.ports.get_mut(usize::from(port)) {
            c.rx_packets += 1;
            c.rx_bytes += bytes as u64;
        }
    }

    #[inline]
    pub(crate) fn count_csum_completed(&mut self, port: PortNo) {
        if let Some(c) = self.ports.get_mut(usize::from(port)) {
            c.csum_completed += 1;
        }
    }

    pub(crate) fn count_icmp_too_big(&mut self, port: PortNo) {
        if let Some(c) = self.ports.get_mut(usize::from(port)) {
            c.icmp_too_big += 1;
        }
    }

    /// Whether another ICMP error may go out now: at most
    /// [`pmtu::BUDGET`](super::pmtu::BUDGET) per window per worker.
    pub(crate) fn icmp_budget(&mut self, now: u64) -> bool {
        if now.wrapping_sub(self.icmp_window) >= super::pmtu::WINDOW_NS {
            self.icmp_window = now;
            self.icmp_sent = 0;
        }
        self.icmp_sent = self.icmp_sent.saturating_add(1);
        self.icmp_sent <= super::pmtu::BUDGET
    }

    #[inline]
    pub(crate) fn count_tx(&mut self, port: PortNo, bytes: usize) {
        if let Some(c) = self.ports.get_mut(usize::from(port)) {
            c.tx_packets += 1;
            c.tx_bytes += bytes as u64;
        }
    }

    #[inline]
    pub(crate) fn count_drop(&mut self, port: PortNo, r: DropReason) {
        self.side_effects += 1;
        self.drops.count(r);
        if let Some(c) = self.ports.get_mut(usize::from(port)) {
            c.drops.count(r);
        }
    }

    /// Counts a frame of `bytes` matching rule `rule` of firewall `fw`.
    #[inline]
    pub(crate) fn count_fw_hit(&mut self, fw: u16, rule: u32, bytes: usize, now: u64) {
        if let Some(h) = self
            .fw_hits
            .get_mut(usize::from(fw))
            .and_then(|v| v.get_mut(rule as usize))
        {
            h.packets += 1;
            h.bytes += bytes as u64;
            h.last_used_ns = now;
        }
    }

    /// Does a frame of `bytes` (storm control: 1, a frame) conform to
    /// policer `p`? Counted either way, in the policer's state. Always
    /// inlined: with its counting the compiler kept it out of line, a call
    /// per policed frame (+3% on `bench/instructions.sh`'s encapsulation,
    /// whose port has a policer).
    #[inline(always)]
    pub(crate) fn police(&mut self, snap: &Snapshot, p: u16, now: u64, bytes: usize) -> bool {
        match (
            self.policers.get_mut(usize::from(p)),
            snap.policers.get(usize::from(p)),
        ) {
            (Some(st), Some(cfg)) => {
                let ok = st.conform(cfg, now, bytes as u32);
                st.frames[usize::from(ok)] += 1;
                st.bytes[usize::from(ok)] += bytes as u64;
                ok
            }
            _ => true,
        }
    }

    /// What each policer passed and dropped, for the policy generation.
    pub fn policed(&self) -> Vec<PolicerCount> {
        self.policers
            .iter()
            .map(|s| PolicerCount {
                conform_packets: s.frames[1],
                conform_bytes: s.bytes[1],
                exceed_packets: s.frames[0],
                exceed_bytes: s.bytes[0],
            })
            .collect()
    }

    #[inline]
    pub(crate) fn next_ip_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }

    /// Reports `mac` behind (`port`, `remote`) to the control plane unless
    /// this worker reported exactly that within the bridge's refresh
    /// interval. The report is sent even when the FDB already says the same:
    /// it is also what keeps an active MAC from aging out. A move (another
    /// port or remote) misses the filter and is reported at once.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn learn(
        &mut self,
        bridge: &BridgeEntry,
        bridge_no: BridgeNo,
        vlan: u16,
        mac: MacAddr,
        port: PortNo,
        remote: RemoteIdx,
        vtep: Option<IpAddr>,
        now: u64,
    ) {
        let Some(tx) = &self.learn_tx else { return };
        let key = 1 << 63 | u64::from(vlan) << 48 | mac.to_u64();
        let mut dest = u64::from(bridge_no) << 32 | u64::from(port) << 16 | u64::from(remote);
        if remote == UNKNOWN_REMOTE {
            // Unknown VTEPs share one index: tell them apart by address, so
            // a MAC moving between two of them is reported at once.
            let a = match vtep {
                Some(IpAddr::V4(a)) => u64::from(u32::from(a)),
                Some(IpAddr::V6(a)) => u128::from(a) as u64,
                None => 0,
            };
            dest ^= a.wrapping_mul(0x9e37_79b9_7f4a_7c15) & 0xffff_0000_0000_0000;
        }
        let h = (key ^ dest).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let slot = &mut self.learn_filter[(h >> 52) as usize & (LEARN_FILTER_SLOTS - 1)];
        if slot.key == key
            && slot.dest == dest
            && now.saturating_sub(slot.sent_at) < bridge.learn_refresh_ns
        {
            return;
        }
        let ev = LearnEvent {
            bridge: bridge_no,
            vlan,
            mac,
            port,
            remote,
            vtep,
            now,
        };
        match tx.try_send(ev) {
            Ok(()) => {
                self.learn_sent += 1;
                *slot = LearnSlot {
                    key,
                    dest,
                    sent_at: now,
                };
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.learn_lost += 1,
        }
    }
}
