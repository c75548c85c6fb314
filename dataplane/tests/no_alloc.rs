//! The per-packet path allocates nothing: `process_batch`, at steady state,
//! over a mix of frames that takes every stage (local switching, VXLAN and
//! Geneve encapsulation and decapsulation over IPv4 and IPv6, flooding
//! with replicas, ARP suppression, flow rules, firewall and policer,
//! malformed and refused frames), makes no allocation and frees nothing.
//!
//! Its own test binary, so that the counting `#[global_allocator]` is only
//! this one's; it counts only while a thread-local flag is up, on the
//! thread running the batch, so the harness's other threads cannot disturb
//! it. Buffers circulate as in the daemon's UMEM: every buffer a batch gives
//! back (sent, dropped, held or an unused spare) is the next batch's input.

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::thread::LocalKey;

use xvs_config::{AclConfig, Config, Direction, OverlayAddrConfig, QosConfig};
use xvs_dataplane::control::Control;
use xvs_dataplane::frame::Frame;
use xvs_dataplane::pipeline::{process_batch, BatchIo, SpareSource, WorkerState};
use xvs_dataplane::snapshot::Snapshot;
use xvs_dataplane::stats::DropReason;
use xvs_dataplane::testkit::{self, CHUNK, HEADROOM, PEER2_MAC, UPLINK_MAC};
use xvs_dataplane::wire::WireError;
use xvs_types::{MacAddr, PortNo};

#[path = "common/frames.rs"]
mod frames;
use frames::*;

struct Counting;

thread_local! {
    /// Up only around `process_batch` on the measuring thread.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// What this thread allocated and freed while counting. Per thread, so
    /// tests running beside each other in this binary do not add up.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static DEALLOCS: Cell<usize> = const { Cell::new(0) };
    /// Where the first counted allocation came from, to say what to fix.
    static FIRST: RefCell<Option<String>> = const { RefCell::new(None) };
}

impl Counting {
    fn counted(n: &'static LocalKey<Cell<usize>>) {
        // `try_with`: the allocator also runs while thread-locals are torn down.
        if !COUNTING.try_with(Cell::get).unwrap_or(false) {
            return;
        }
        n.with(|n| n.set(n.get() + 1));
        // Down while the trace is taken, so that its own allocations are
        // not counted and do not recurse.
        COUNTING.with(|c| c.set(false));
        FIRST.with(|f| {
            f.borrow_mut()
                .get_or_insert_with(|| Backtrace::force_capture().to_string());
        });
        COUNTING.with(|c| c.set(true));
    }

    /// Runs `f` counting; returns its result and what it allocated and freed.
    fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
        let before = (ALLOCS.with(Cell::get), DEALLOCS.with(Cell::get));
        COUNTING.with(|c| c.set(true));
        let r = f();
        COUNTING.with(|c| c.set(false));
        (
            r,
            ALLOCS.with(Cell::get) - before.0,
            DEALLOCS.with(Cell::get) - before.1,
        )
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counting beside it neither touches the memory nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Counting::counted(&ALLOCS);
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Counting::counted(&ALLOCS);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Counting::counted(&ALLOCS);
        // SAFETY: `ptr` came from this allocator, which is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Counting::counted(&DEALLOCS);
        // SAFETY: `ptr` came from this allocator, which is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const C: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 3];
const D: [u8; 6] = [0x02, 0xdd, 0, 0, 0, 4];
const E: [u8; 6] = [0x02, 0xee, 0, 0, 0, 5];
const F: [u8; 6] = [0x02, 0xff, 0, 0, 0, 6];
/// Destination IP that vm1's ingress firewall drops.
const BLOCKED_IP: [u8; 4] = [10, 0, 0, 99];
/// Destination port br6's flow table drops.
const BLOCKED_PORT: u16 = 9999;

/// The testkit topology, plus what makes the other stages run: ARP
/// suppression on br0, an ingress firewall on vm1, a policer on vm2's
/// egress (generous: it must pass), flow rules on br6.
fn control() -> Control {
    let mut ctl = testkit::testbed();
    let mut c: Config = ctl.config().clone();
    c.bridges[0].arp_suppress = true;
    c.addrs.push(
        OverlayAddrConfig {
            bridge: "br0".into(),
            vlan: 0,
            ip: "10.0.0.2".parse().unwrap(),
            mac: MacAddr(B),
            owner: None,
        }
        .into(),
    );
    c.acls.push(
        AclConfig {
            port: "vm1".into(),
            dir: Direction::In,
            rules: vec!["priority=10,ip,nw_dst=10.0.0.99,action=drop".into()],
        }
        .into(),
    );
    c.qos.push(
        QosConfig {
            port: "vm2".into(),
            dir: Direction::Out,
            rate_bps: 100_000_000_000,
            burst_bytes: 100_000_000,
            peak_bps: None,
        }
        .into(),
    );
    c.bridges[2].flows = vec![
        format!("priority=20,udp,tp_dst={BLOCKED_PORT},actions=drop"),
        "priority=10,actions=normal".into(),
    ];
    ctl.apply(c).expect("valid config");
    ctl
}

/// `f` with its IPv4 destination replaced (the inner checksum is the
/// endpoints' business, never checked by the switch).
fn to_ip(mut f: Vec<u8>, ip: [u8; 4]) -> Vec<u8> {
    f[30..34].copy_from_slice(&ip);
    f
}

/// `f` with its UDP destination port replaced.
fn to_port(mut f: Vec<u8>, port: u16) -> Vec<u8> {
    f[36..38].copy_from_slice(&port.to_be_bytes());
    f
}

/// A batch received on one port.
struct Batch {
    port: PortNo,
    frames: Vec<Vec<u8>>,
}

fn port(snap: &Snapshot, name: &str) -> PortNo {
    snap.port_by_name(name).expect("fixture port")
}

/// The mix, one batch per receiving port, each frame repeated so that
/// batches are of a realistic size.
fn batches(snap: &Snapshot) -> Vec<Batch> {
    let (vm1, vm2, vm3, vm4, eth0) = (
        port(snap, "vm1"),
        port(snap, "vm2"),
        port(snap, "vm3"),
        port(snap, "vm4"),
        port(snap, "eth0"),
    );
    let udp = |s, d| udp_frame(s, d, 64);
    let truncated = udp(A, B)[..10].to_vec();
    let mut qinq = udp(A, B);
    qinq[12..14].copy_from_slice(&[0x88, 0xa8]);
    let mut bad_csum = vxlan([192, 0, 2, 2], 42, &udp(C, A));
    bad_csum[24] ^= 0xff;
    let mixes: [(PortNo, Vec<Vec<u8>>); 5] = [
        (
            vm1,
            vec![
                udp(A, B),                                            // local unicast
                udp(A, C),                                            // VXLAN encap
                udp(A, BCAST),                                        // flood: vm2 + 2 VTEPs
                arp(A, BCAST, None, 1, [10, 0, 0, 1], [10, 0, 0, 2]), // suppressed
                to_ip(udp(A, B), BLOCKED_IP),                         // firewall drop
                truncated,                                            // malformed
                qinq,                                                 // malformed
            ],
        ),
        (vm2, vec![udp(B, A), tagged_frame(B, A, 10)]), // tag refused on access
        (
            eth0,
            vec![
                vxlan([192, 0, 2, 2], 42, &udp(C, A)),     // VXLAN decap
                vxlan([192, 0, 2, 2], 42, &udp(C, BCAST)), // decap + flood
                geneve(43, 0, &known_opt(), &udp(E, D)),   // Geneve decap
                vxlan([192, 0, 2, 9], 42, &udp(C, A)),     // unknown remote
                bad_csum,                                  // outer checksum
                vxlan([192, 0, 2, 2], 42, &[0; 8]),        // inner truncated
            ],
        ),
        (vm3, vec![udp(D, E), udp(D, BCAST)]), // Geneve encap, flood
        (
            vm4,
            vec![
                udp(F, BCAST),                        // VXLAN over IPv6, by flow
                to_port(udp(F, BCAST), BLOCKED_PORT), // flow drop
            ],
        ),
    ];
    mixes
        .into_iter()
        .map(|(port, mix)| Batch {
            port,
            frames: mix.iter().cycle().take(48).cloned().collect(),
        })
        .collect()
}

/// Spares a batch may take, on demand as the daemon's worker lends them.
const SPARES: usize = 8;

/// Lends spares one at a time from a list the harness refills between
/// batches (the worker lends from its UMEM's pool the same way).
struct OnDemand<'s, 'a>(&'s RefCell<Vec<&'a mut [u8]>>);

impl<'a> SpareSource<'a> for OnDemand<'_, 'a> {
    fn take(&mut self) -> Option<&'a mut [u8]> {
        self.0.borrow_mut().pop()
    }
}

/// Runs one batch with buffers from `pool` and gives every buffer back to
/// it. Returns the allocations and frees `process_batch` made.
#[allow(clippy::too_many_arguments)]
fn run<'a>(
    snap: &Snapshot,
    ws: &mut WorkerState,
    now: u64,
    batch: &Batch,
    pool: &mut Vec<&'a mut [u8]>,
    rx: &mut Vec<Frame<'a>>,
    io: &mut BatchIo<'a>,
    lend: &RefCell<Vec<&'a mut [u8]>>,
) -> (usize, usize) {
    for f in &batch.frames {
        let buf = pool.pop().expect("pool sized for a batch");
        buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
        rx.push(Frame::new(buf, HEADROOM, f.len()).expect("frame fits"));
    }
    for _ in 0..SPARES {
        let buf = pool.pop().expect("pool sized for spares");
        lend.borrow_mut().push(buf);
    }
    let ((), allocs, frees) =
        Counting::measure(|| process_batch(snap, ws, batch.port, now, rx.drain(..), io));
    pool.extend(io.tx.drain(..).map(|t| t.frame.into_buf()));
    pool.extend(io.held.drain(..).map(|(_, f)| f.into_buf()));
    pool.append(&mut io.free);
    pool.append(&mut io.spare);
    pool.append(&mut lend.borrow_mut());
    (allocs, frees)
}

#[test]
fn process_batch_at_steady_state_allocates_nothing() {
    let mut ctl = control();
    let mut ws = WorkerState::new(0, Some(ctl.learn_sender()));
    let per_batch = 48 + SPARES;
    let mut chunks = vec![vec![0u8; CHUNK]; per_batch];
    let mut pool: Vec<&mut [u8]> = chunks.iter_mut().map(|c| &mut c[..]).collect();
    let mut rx = Vec::with_capacity(per_batch);
    let lend = RefCell::new(Vec::with_capacity(SPARES));
    let mut on_demand = OnDemand(&lend);
    let mut io = BatchIo {
        spare: Vec::with_capacity(per_batch),
        more: Some(&mut on_demand),
        tx: Vec::with_capacity(per_batch),
        free: Vec::with_capacity(per_batch),
        held: Vec::with_capacity(per_batch),
    };
    let mut now = 1_000_000_000;

    // Warm-up: sources learned (and installed by the control plane), the
    // exact-match cache filled, every one-time growth done.
    let mut snap = ctl.snapshot();
    let batches = batches(&snap);
    for _ in 0..4 {
        for b in &batches {
            now += 1_000;
            run(&snap, &mut ws, now, b, &mut pool, &mut rx, &mut io, &lend);
        }
        ctl.process_learning(now);
        snap = ctl.snapshot();
    }
    for (mac, bridge) in [(A, "br0"), (B, "br0"), (C, "br0"), (D, "br1"), (E, "br1")] {
        assert!(
            ctl.fdb(bridge)
                .unwrap()
                .iter(0)
                .any(|e| e.mac == MacAddr(mac)),
            "{mac:02x?} learned in {bridge}"
        );
    }

    let drops = ws.drops.clone();
    let (replicas, arp, plan_hits) = (ws.replicas, ws.arp_suppressed, ws.plan_hits);
    let tx: Vec<u64> = ws.ports.iter().map(|p| p.tx_packets).collect();
    const ROUNDS: usize = 50;
    let (mut allocs, mut frees) = (0, 0);
    let learn_sent = ws.learn_sent;
    // Time runs fast enough that active MACs are reported again (the
    // learning refresh) on the measured path.
    let step = snap.bridges[0].learn_refresh_ns / 10;
    for _ in 0..ROUNDS {
        for b in &batches {
            now += step;
            let (a, f) = run(&snap, &mut ws, now, b, &mut pool, &mut rx, &mut io, &lend);
            allocs += a;
            frees += f;
        }
    }
    let first = FIRST.with(|f| f.borrow_mut().take());
    assert_eq!(
        (allocs, frees),
        (0, 0),
        "allocations and frees in {ROUNDS} rounds; the first from:\n{}",
        first.unwrap_or_default()
    );
    assert_eq!(pool.len(), per_batch, "every buffer came back");

    // The window really took every path it is meant to prove.
    let n = |per_round: u64| per_round * ROUNDS as u64;
    let dropped = |r: DropReason| ws.drops.get(r) - drops.get(r);
    // 48 frames cycle over each mix: 7 frames from vm1 repeat 7 times (one
    // of them 6), 6 from eth0 and 2 from vm4 evenly.
    assert_eq!(dropped(DropReason::FirewallIn), n(7));
    assert_eq!(dropped(WireError::Truncated.into()), n(7 + 8));
    assert_eq!(dropped(WireError::TooManyVlanTags.into()), n(6));
    assert_eq!(dropped(DropReason::UnknownRemote), n(8));
    assert_eq!(dropped(WireError::BadIpChecksum.into()), n(8));
    assert_eq!(dropped(DropReason::FlowDrop), n(24));
    assert_eq!(dropped(DropReason::VlanNotAllowed), n(24));
    assert_eq!(ws.arp_suppressed - arp, n(7));
    assert!(ws.replicas > replicas, "floods were replicated");
    assert!(ws.plan_hits > plan_hits, "cached decisions were replayed");
    assert!(ws.learn_sent > learn_sent, "learning refreshed");
    for name in ["vm1", "vm2", "vm3", "eth0", "vx1", "gn1", "vx6"] {
        let p = usize::from(port(&snap, name));
        assert!(ws.ports[p].tx_packets > tx[p], "{name} sent in the window");
    }
}

/// The counter is not blind: an allocation in the window is seen, and
/// where it came from is kept.
#[test]
fn the_counter_sees_an_allocation_and_where() {
    let (v, allocs, frees) = Counting::measure(|| {
        let v = std::hint::black_box(vec![1u8; 3]);
        drop(std::hint::black_box(vec![2u8; 5]));
        v
    });
    assert_eq!((v.len(), allocs, frees), (3, 2, 1));
    let first = FIRST.with(|f| f.borrow_mut().take()).unwrap_or_default();
    assert!(first.contains("the_counter_sees"), "{first}");
}
