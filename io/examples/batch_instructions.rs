//! A worker's ordinary batches, for counting their instructions under
//! callgrind (`bench/instructions.sh` counts the pipeline, not the
//! worker around it): 64-byte frames written into `g0` arrive on `p0`
//! (xvs_port, an ordinary socket) and leave by `p1`, a static MAC's
//! port, `ROUNDS` batches of `BURST` frames, each burst on the rx ring
//! whole before the worker polls, so every build sees the same batches.
//!
//! ```sh
//! cargo build --release -p xvs-io --example batch_instructions
//! valgrind --tool=callgrind --toggle-collect='*measured*' \
//!     target/release/examples/batch_instructions
//! ```
//!
//! Root (namespaces, BPF). Prints the worker's counters: compare builds
//! only when their batches and frames are equal. Counts of one build
//! are identical from run to run (the kernel's share, in the syscalls,
//! is not counted). Two builds sharing a target directory share the
//! example's file name: copy each binary away before building the next.
//!
//! 2026-12-07, demux sockets (branch io-demux) against its base 2ec72ba:
//! 2,147,097 instructions for the 50 rounds before, 2,177,369 after
//! (+1.4%; 1,342 to 1,361 per frame). With a second `process_batch` call
//! site for demux batches it was 2,236,394 (+4.2%: `stage_frame` was no
//! longer inlined into the ordinary batch).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use xvs_bpf::{AttachFlags, Mode, XdpProgram};
use xvs_config::{BridgeConfig, Config, PortConfig, StaticFdbConfig};
use xvs_dataplane::control::Control;
use xvs_io::xsk::{XskConfig, XskSet};
use xvs_io::{Worker, WorkerPort};
use xvs_tests::{on_thread, veth, Netns};
use xvs_types::MacAddr;

const ROUNDS: usize = 50;
const BURST: usize = 32;
const SRC: [u8; 6] = [2, 0, 0, 0, 0xa, 1];
const DST: [u8; 6] = [2, 0, 0, 0, 0xb, 1];

fn packet_socket(ifname: &str) -> OwnedFd {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket creation; the fd is owned right below.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
    assert!(raw >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
    // SAFETY: `raw` is a new fd nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let name = CString::new(ifname).expect("name");
    // SAFETY: `name` is a valid C string for the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as i32;
    // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "bind {ifname}");
    fd
}

/// A UDP/IPv4 frame of 64 bytes (FCS excluded: 60), numbered `seq`.
fn frame(seq: u16) -> Vec<u8> {
    let mut f = [DST, SRC].concat();
    f.extend_from_slice(&[0x08, 0x00]);
    #[rustfmt::skip]
    f.extend_from_slice(&[
        0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0,
        10, 0, 0, 1, 10, 0, 0, 2,
        0x30, 0x39, 0x30, 0x39, 0, 26, 0, 0,
    ]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.resize(60, 0);
    f
}

/// The round counted (`--toggle-collect='*measured*'`): the burst's
/// batch, its transmission and whatever else one round does.
#[inline(never)]
fn measured(w: &mut Worker) {
    w.poll_once().expect("poll");
}

fn main() {
    let hv = Netns::new("bi-hv");
    let g = Netns::new("bi-g");
    for ns in [&hv, &g] {
        ns.no_ipv6_on_new_interfaces();
    }
    veth(
        &g,
        "g0",
        "02:00:00:00:0c:01",
        &hv,
        "p0",
        "02:00:00:00:0c:02",
    );
    veth(
        &g,
        "g1",
        "02:00:00:00:0c:03",
        &hv,
        "p1",
        "02:00:00:00:0c:04",
    );
    let mut br = BridgeConfig::new("br0");
    br.learning = false;
    let mut cfg = Config {
        bridges: vec![br.into()],
        ports: vec![
            PortConfig::new("p0", "br0").into(),
            PortConfig::new("p1", "br0").into(),
        ],
        fdb: vec![StaticFdbConfig::new("br0", MacAddr(DST), "p1", None).into()],
        ..Default::default()
    };
    cfg.assign_port_numbers();
    let mut ctl = Control::new();
    ctl.apply(cfg).expect("valid config");
    let snap = ctl.snapshot();
    let (n0, n1) = (
        snap.port_by_name("p0").expect("p0"),
        snap.port_by_name("p1").expect("p1"),
    );
    let tx = on_thread(|| {
        g.enter();
        packet_socket("g0")
    });
    let frames: Vec<Vec<u8>> = (0..BURST as u16).map(frame).collect();
    on_thread(|| {
        hv.enter();
        let p0 = XdpProgram::attach("p0", Mode::Port, AttachFlags::Auto).expect("attach");
        let p1 = XdpProgram::attach("p1", Mode::Port, AttachFlags::Auto).expect("attach");
        let xcfg = XskConfig {
            frames: 2048,
            rx_frames: 256,
            ring: 512,
            frame_headroom: 0,
            jumbo_slots: 0,
        };
        let mut set = XskSet::new(xcfg).expect("UMEM");
        let s0 = set.bind("p0", 0, &p0).expect("bind p0");
        let s1 = set.bind("p1", 0, &p1).expect("bind p1");
        let ports = vec![
            WorkerPort::new(n0, 0, s0, 256),
            WorkerPort::new(n1, 0, s1, 256),
        ];
        let mut w = Worker::new(0, set, ports, ctl.handle(), None);
        for _ in 0..ROUNDS {
            for f in &frames {
                // SAFETY: `f` is valid for reads of its length.
                let n = unsafe { libc::send(tx.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
                assert_eq!(n, f.len() as isize);
            }
            std::thread::sleep(Duration::from_millis(20));
            measured(&mut w);
            let deadline = Instant::now() + Duration::from_secs(2);
            while w.umem_use().tx > 0 && Instant::now() < deadline {
                w.poll_once().expect("poll");
            }
        }
        println!("{:?}", w.counters);
        drop(w);
        drop((p0, p1));
    });
}
