//! Deterministic per-operation costs for the instruction-count gate
//! (`bench/instructions.sh`): instructions and simulated cache misses of
//! push, pop, parse, FDB and EMC lookups and the batch pipeline, counted by
//! callgrind. Cycle counters are not available on the machines we run on,
//! and timings there drift by tens of percent; instruction counts of one
//! build do not move at all, so a few percent is a real change.
//!
//! Each op is set up with callgrind's instrumentation off (so building a
//! million-entry FDB takes seconds, not minutes), run a while to warm the
//! simulated caches, and then measured: statistics are zeroed, the op runs
//! `iters` times and callgrind dumps what that cost under the op's name.
//! The script reads the dumps; this program only says how many operations
//! each one holds. Outside valgrind the client requests are no-ops and it
//! just runs the ops.
//!
//! ```sh
//! cargo build --profile bench -p xvs-bench --example instructions
//! valgrind --tool=callgrind --instr-atstart=no --cache-sim=yes \
//!     --callgrind-out-file=/tmp/cg/out target/release/examples/instructions [OP...]
//! ```

use std::hint::black_box;
use std::net::IpAddr;

use etherparse::PacketBuilder;

use xvs_bench::{udp_frame, EncapLoop, A, B};
use xvs_config::{StaticFdbConfig, TunnelKind};
use xvs_dataplane::control::Control;
use xvs_dataplane::frame::Frame;
use xvs_dataplane::tables::fdb::{Fdb, FdbConfig, FdbDest};
use xvs_dataplane::tables::flow::{ExactMatchCache, FlowTable, EMC_HASH_SEED};
use xvs_dataplane::testkit::{self, LOCAL4, PEER2_MAC, UPLINK_MAC};
use xvs_dataplane::tunnel::{pop, MAX_HEADER_LEN};
use xvs_dataplane::wire::flow::extract;
use xvs_types::{ipv4_to_u128, FlowKey, MacAddr, PortNo};

#[path = "../benches/common/mod.rs"]
mod common;
use common::{ip, tunnel_fixture, PUSH_META};

/// Callgrind's client requests (valgrind/callgrind.h), issued with the
/// magic instruction sequence valgrind.h defines for amd64.
mod callgrind {
    const BASE: u64 = ((b'C' as u64) << 24) | ((b'T' as u64) << 16);
    const ZERO_STATS: u64 = BASE + 1;
    const DUMP_STATS_AT: u64 = BASE + 3;
    const START_INSTRUMENTATION: u64 = BASE + 4;
    const STOP_INSTRUMENTATION: u64 = BASE + 5;
    /// Core request: how many valgrinds we run under (0 natively).
    const RUNNING_ON_VALGRIND: u64 = 0x1001;

    #[cfg(target_arch = "x86_64")]
    fn request(req: u64, arg: u64) -> u64 {
        let args: [u64; 6] = [req, arg, 0, 0, 0, 0];
        let mut result: u64 = 0;
        // SAFETY: the four rotations of rdi add up to 128 bits, so natively
        // the sequence leaves every register as it was and `xchg rbx, rbx`
        // does nothing; valgrind recognises it and answers the request in
        // rdx, reading only `args` (alive until the asm returns) and, for
        // DUMP_STATS_AT, the NUL-terminated string `arg` points to.
        unsafe {
            std::arch::asm!(
                "rol rdi, 3",
                "rol rdi, 13",
                "rol rdi, 61",
                "rol rdi, 51",
                "xchg rbx, rbx",
                inout("rdx") result,
                in("rax") args.as_ptr(),
                options(nostack),
            );
        }
        result
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn request(_req: u64, _arg: u64) -> u64 {
        0
    }

    pub fn running() -> bool {
        request(RUNNING_ON_VALGRIND, 0) != 0
    }

    pub fn start() {
        request(START_INSTRUMENTATION, 0);
    }

    pub fn stop() {
        request(STOP_INSTRUMENTATION, 0);
    }

    pub fn zero() {
        request(ZERO_STATS, 0);
    }

    /// Writes the costs since the last zero as a dump named `name`.
    pub fn dump(name: &std::ffi::CStr) {
        request(DUMP_STATS_AT, name.as_ptr() as u64);
    }
}

/// Every op the gate knows, in the order they run.
const OPS: &[&str] = &[
    "push_vxlan",
    "push_geneve",
    "pop_vxlan",
    "pop_geneve",
    "parse_udp4",
    "fdb_lookup_1M",
    "emc_hit_1024",
    "pipeline_encap_64flows",
    "pipeline_encap_1024flows",
    "pipeline_decap_64flows",
];

/// An op ready to run: `run(i)` performs `per_call` operations; it is
/// called `calls` times to measure, after `calls / 10` calls of warm-up.
struct Op<'a> {
    per_call: u64,
    calls: usize,
    run: Box<dyn FnMut(usize) + 'a>,
}

/// Measured calls of a single-operation op: 20,000 keeps each op's share
/// of the run to a second or two under callgrind. Batched ops make about as
/// many operations.
const CALLS: usize = 20_000;

fn push_op(kind: TunnelKind) -> Op<'static> {
    let mut t = tunnel_fixture(kind);
    Op {
        per_call: 1,
        calls: CALLS,
        run: Box::new(move |_| {
            let mut f = Frame::new(&mut t.buf, MAX_HEADER_LEN, t.inner_len).expect("frame");
            black_box(t.tpl.push(&mut f, black_box(&PUSH_META)).expect("push"));
        }),
    }
}

fn pop_op(kind: TunnelKind) -> Op<'static> {
    let mut t = tunnel_fixture(kind);
    Op {
        per_call: 1,
        calls: CALLS,
        run: Box::new(move |_| {
            let (head, len) = t.pushed;
            let mut f = Frame::new(&mut t.buf, head, len).expect("frame");
            black_box(pop(black_box(&t.table), &mut f).expect("pop"));
        }),
    }
}

fn parse_op() -> Op<'static> {
    let frame = udp_frame(A, B, 12345, 64 - 42);
    let mut key = FlowKey::default();
    Op {
        per_call: 1,
        calls: CALLS,
        run: Box::new(move |_| {
            let ok = extract(black_box(&frame), &mut key).is_ok();
            black_box((ok, &key));
        }),
    }
}

/// As bench/benches/tables.rs, 1M MACs and random probes that hit, but
/// 65,536 distinct probes, each looked up once, in an FDB whose hash seed
/// is fixed (`Fdb::fix_seed`): with the random seed xvsd uses, the probe
/// lengths and the last-level misses moved by up to 7% and 11% from run to
/// run and the gate failed on noise.
fn fdb_op() -> Op<'static> {
    const N: u64 = 1_000_000;
    const PROBES: usize = 65_536;
    const PER_CALL: usize = 64;
    let mut fdb = Fdb::new(FdbConfig {
        max_entries: N as usize + 1,
        aging_ns: u64::MAX / 4,
        ..FdbConfig::default()
    })
    .expect("fdb");
    fdb.fix_seed(0x5eed);
    let mac =
        |i: u64| MacAddr::from_u64(0x0200_0000_0000 | (i.wrapping_mul(0x9e37_79b9) & 0xffff_ffff));
    for i in 0..N {
        let _ = fdb.learn(0, mac(i), FdbDest::local((i % 64) as PortNo + 1), 0);
    }
    let view = fdb.view();
    let probes: Vec<MacAddr> = (0..PROBES as u64)
        .map(|i| mac(i.wrapping_mul(7919) % N))
        .collect();
    Op {
        per_call: PER_CALL as u64,
        calls: PROBES / PER_CALL,
        run: Box::new(move |call| {
            let start = (call * PER_CALL) % PROBES;
            let mut hits = 0u32;
            for m in &probes[start..start + PER_CALL] {
                hits += view.lookup(0, *m).is_some() as u32;
            }
            assert_eq!(hits, PER_CALL as u32, "every probe hits");
        }),
    }
}

/// EMC hits on 1024 distinct flow keys (hash included, as the pipeline
/// pays it), over a small flow table: a hit never reaches the classifier.
fn emc_op() -> Op<'static> {
    const KEYS: usize = 1024;
    const PER_CALL: usize = 64;
    let table = FlowTable::build(
        vec![
            "priority=100,tcp,actions=output:2".parse().expect("rule"),
            "priority=1,actions=drop".parse().expect("rule"),
        ],
        1,
    )
    .expect("flow table");
    let keys: Vec<FlowKey> = (0..KEYS as u32)
        .map(|i| {
            let mut k = FlowKey::default();
            k.set_in_port(1);
            k.set_eth_type(0x0800);
            k.set_ip_proto(6);
            k.set_nw_src(ipv4_to_u128(std::net::Ipv4Addr::from(0x0a00_0000 | i)));
            k.set_nw_dst(ipv4_to_u128(std::net::Ipv4Addr::new(10, 255, 0, 1)));
            k.set_tp_src(1024 + i as u16);
            k.set_tp_dst(80);
            k
        })
        .collect();
    let mut emc = ExactMatchCache::default();
    for k in &keys {
        emc.lookup_or_classify(&table, k, k.hash_with(EMC_HASH_SEED));
    }
    Op {
        per_call: PER_CALL as u64,
        calls: CALLS / PER_CALL,
        run: Box::new(move |call| {
            let start = (call * PER_CALL) % KEYS;
            for k in &keys[start..start + PER_CALL] {
                black_box(emc.lookup_or_classify(&table, k, k.hash_with(EMC_HASH_SEED)));
            }
        }),
    }
}

/// The criterion pipeline bench's loop: 64-byte frames, batches of 64,
/// the harness's copy into the buffer included (as in the bench).
fn encap_op(ctl: &Control, flows: usize) -> Op<'_> {
    let mut l = EncapLoop::new(ctl, flows, 64 - 42);
    Op {
        per_call: 64,
        calls: CALLS / 64,
        run: Box::new(move |call| {
            let sent = l.batch(call);
            assert_eq!(sent, 64, "encap: every frame goes out");
        }),
    }
}

/// The testkit topology with vm1's MAC (A) and the remote's (B, behind
/// 192.0.2.2) static, so decapsulated frames are forwarded to vm1 without
/// flooding and their source refreshes a static entry.
fn decap_control() -> Control {
    let mut ctl = testkit::control();
    let mut cfg = testkit::config();
    for (mac, port, remote) in [(A, "vm1", None), (B, "vx1", Some(ip("192.0.2.2")))] {
        cfg.fdb.push(
            StaticFdbConfig {
                bridge: "br0".into(),
                vlan: 0,
                mac: MacAddr(mac),
                port: port.into(),
                remote,
            }
            .into(),
        );
    }
    ctl.apply(cfg).expect("decap fixture config is valid");
    ctl
}

/// VXLAN packets (VNI 42) from 192.0.2.2 to the uplink, carrying 64-byte
/// frames from B to A, `flows` distinct inner flows; received on the uplink
/// and forwarded to vm1.
fn decap_op(ctl: &Control, flows: usize) -> Op<'_> {
    let mut l = EncapLoop::new(ctl, flows, 64 - 42);
    l.in_port = l.snap.port_by_name("eth0").expect("uplink exists");
    let src = ip("192.0.2.2");
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (src, ip(LOCAL4)) else {
        unreachable!("IPv4 literals")
    };
    l.frames = (0..flows)
        .map(|i| {
            let mut payload = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
            payload.extend_from_slice(&udp_frame(B, A, 1000 + i as u16, 64 - 42));
            let b = PacketBuilder::ethernet2(PEER2_MAC.0, UPLINK_MAC.0)
                .ipv4(src.octets(), dst.octets(), 64)
                .udp(49152 + i as u16, 4789);
            let mut v = Vec::new();
            b.write(&mut v, &payload).expect("write to a Vec");
            v
        })
        .collect();
    Op {
        per_call: 64,
        calls: CALLS / 64,
        run: Box::new(move |call| {
            let sent = l.batch(call);
            assert_eq!(
                sent,
                64,
                "decap: every frame goes to vm1; drops {:?}",
                l.ws.drops.nonzero().collect::<Vec<_>>()
            );
        }),
    }
}

fn build<'a>(name: &str, encap: &'a Control, decap: &'a Control) -> Op<'a> {
    match name {
        "push_vxlan" => push_op(TunnelKind::Vxlan),
        "push_geneve" => push_op(TunnelKind::Geneve),
        "pop_vxlan" => pop_op(TunnelKind::Vxlan),
        "pop_geneve" => pop_op(TunnelKind::Geneve),
        "parse_udp4" => parse_op(),
        "fdb_lookup_1M" => fdb_op(),
        "emc_hit_1024" => emc_op(),
        "pipeline_encap_64flows" => encap_op(encap, 64),
        "pipeline_encap_1024flows" => encap_op(encap, 1024),
        "pipeline_decap_64flows" => decap_op(decap, 64),
        _ => unreachable!("op names are checked in main"),
    }
}

/// The measured loop. Not inlined, so the ops' code is laid out the same
/// whichever op runs.
#[inline(never)]
fn measure(op: &mut Op<'_>, first: usize, calls: usize) {
    for i in first..first + calls {
        (op.run)(i);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for op in OPS {
            println!("{op}");
        }
        return;
    }
    let names: Vec<&str> = if args.is_empty() {
        OPS.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };
    if let Some(bad) = names.iter().find(|n| !OPS.contains(n)) {
        eprintln!("unknown op {bad:?}; ops: {}", OPS.join(" "));
        std::process::exit(2);
    }
    if !callgrind::running() {
        eprintln!("not under valgrind: running the ops without counting");
    }
    let encap = xvs_bench::encap_control();
    let decap = decap_control();
    for name in names {
        let mut op = build(name, &encap, &decap);
        let (warmup, calls) = (op.calls / 10, op.calls);
        let tag = std::ffi::CString::new(name).expect("op names have no NUL");
        callgrind::start();
        measure(&mut op, 0, warmup);
        callgrind::zero();
        measure(&mut op, warmup, calls);
        callgrind::dump(&tag);
        callgrind::stop();
        // The script divides the dump named `name` by this.
        println!("{name} {}", op.per_call * op.calls as u64);
    }
}
