//! The loader of xvs-pktgen's XDP send engine (`xdp/pktgen.bpf.c`).
//!
//! [`FlowPatch`] reduces a run's frames (one per flow) to flow 0's frame
//! plus, per flow, the 16-bit words in which it differs: offsets shared by
//! all flows, words per flow. [`XdpSender`] loads the program with that
//! patch and runs it with `BPF_PROG_RUN` in live-frames mode
//! (`BPF_F_TEST_XDP_LIVE_FRAMES`, kernel 5.18 and later): the kernel runs
//! the program `repeat` times over page-pool copies of flow 0's frame, the
//! program writes the next flow's words into each, and the kernel
//! transmits every frame out of the interface (XDP_TX becomes a redirect
//! to the ingress interface). No frame crosses into userspace.
//!
//! What the kernel does not say: how many frames left. `BPF_PROG_RUN`
//! reports neither transmitted nor dropped frames in this mode (a failed
//! transmit is freed silently), so callers count on the interface (for a
//! veth, its `tx_packets`, which include the frames its peer took in).
//!
//! A veth transmits redirected frames only when its peer has NAPI: an XDP
//! program attached to the peer, or GRO on the peer (`ethtool -K PEER gro
//! on`, kernel 5.13 and later). Without it every frame is dropped.
//!
//! [`probe_live_frames`] asks the kernel once, cheaply, whether it takes a
//! live-frames run for a frame of a given length, and names the check in
//! Linux that refuses it when it does not ([`LiveFramesRefused`]). On
//! Linux 6.18 nothing on that path checks a capability: `__sys_bpf`
//! (kernel/bpf/syscall.c) calls the `security_bpf` LSM hook, then
//! `bpf_prog_test_run` only checks the attribute layout, and
//! `bpf_prog_test_run_xdp` (net/bpf/test_run.c) refuses unknown flags, a
//! device-bound or devmap/cpumap program, a bad context and, in live mode,
//! a frame that does not fit one page with its headroom (EINVAL).
//! Privilege is checked when the program is loaded (`bpf_prog_load`:
//! CAP_BPF, and CAP_NET_ADMIN for XDP), not when it runs.
//!
//! Invariants: the maps belong to this loader alone; the program runs
//! from one thread at a time (its flow counter is not atomic: the kernel
//! runs the repeats of one call on one CPU, and `run` takes `&mut self`).
//! Every item mirrored from `xdp/pktgen.h` is named after it.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libbpf_rs::{MapCore, MapFlags, MapHandle, Object, ObjectBuilder, Xdp, XdpFlags};

/// The compiled BPF object (built by `build.rs`).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pktgen.bpf.o"));

/// `XVS_PKTGEN_MAX_FLOWS`.
pub const MAX_FLOWS: u32 = 16384;
/// `XVS_PKTGEN_MAX_WORDS`: words in which flows may differ.
pub const MAX_WORDS: usize = 16;
/// `XVS_PKTGEN_MAX_OFF`: the largest word offset the program accepts.
const MAX_OFF: usize = 4094;
/// `BPF_F_TEST_XDP_LIVE_FRAMES` (linux/bpf.h).
const LIVE_FRAMES: u32 = 1 << 1;
/// `XDP_TX` (linux/bpf.h): what the program returns for a good frame.
pub const XDP_TX: u32 = 3;
/// Sizes of `struct xvs_pktgen_cfg`, `struct xvs_pktgen_flow` and
/// `struct xvs_pktgen_state`.
const CFG_SIZE: usize = 16 + 2 * MAX_WORDS;
const FLOW_SIZE: usize = 2 * MAX_WORDS;
const STATE_SIZE: usize = 16;
/// `struct xdp_md`: data, data_end, data_meta, ingress_ifindex,
/// rx_queue_index, egress_ifindex (all u32).
const XDP_MD_SIZE: usize = 24;
const ETH_HLEN: usize = 14;

const PROG: &str = "xvs_pktgen";

/// One error of this module; each names the bad value or the step.
#[derive(Debug, thiserror::Error)]
pub enum PktgenError {
    #[error("no frames to send")]
    NoFrames,
    #[error("{flows} flows: at most {MAX_FLOWS}")]
    Flows { flows: usize },
    #[error("a frame of {len} bytes: shorter than an Ethernet header")]
    Short { len: usize },
    #[error("flow {flow}: {len} bytes, flow 0 has {want}: flows must have one length")]
    Length {
        flow: usize,
        len: usize,
        want: usize,
    },
    #[error("flows differ in {words} 16-bit words, the program writes at most {MAX_WORDS}")]
    Words { words: usize },
    #[error("flows differ at byte {at} of {len}: beyond the last whole 16-bit word")]
    OddTail { at: usize, len: usize },
    #[error("interface {ifname:?} not found in this network namespace")]
    NoInterface { ifname: String },
    #[error("{ifname}: opening the pktgen BPF object: {source}")]
    Open {
        ifname: String,
        source: libbpf_rs::Error,
    },
    #[error("{ifname}: loading the pktgen BPF object into the kernel (are we root?): {source}")]
    Load {
        ifname: String,
        source: libbpf_rs::Error,
    },
    #[error("{ifname}: the pktgen BPF object has no {what}")]
    Missing { ifname: String, what: &'static str },
    #[error("{ifname}: {op} in map {map}: {source}")]
    Map {
        ifname: String,
        map: &'static str,
        op: String,
        source: libbpf_rs::Error,
    },
    #[error(
        "{ifname}: BPF_PROG_RUN (live frames, repeat {repeat}, {len}-byte frame) failed: \
         {source} (live-frames mode needs kernel 5.18 or later and a frame that fits a page \
         with the kernel's headroom: at most 3,408 bytes on x86-64 6.18)"
    )]
    Run {
        ifname: String,
        repeat: u32,
        len: usize,
        source: libbpf_rs::Error,
    },
}

/// The shortest Ethernet frame (without FCS): what the probe falls back on
/// to tell a frame that is too long from a kernel without live frames.
const MIN_FRAME: usize = 60;
/// `ENOTSUPP` (include/linux/errno.h): kernel-internal, but `bpf()` returns
/// it when a program type has no test run.
const ENOTSUPP: i32 = 524;

/// What the kernel answered a live-frames `BPF_PROG_TEST_RUN` with, and the
/// check in Linux that gives that answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// EINVAL for this frame while a `MIN_FRAME`-byte one runs: in live
    /// mode the frame, 256 bytes of XDP headroom, the kernel's per-page
    /// `xdp_page_head` and `skb_shared_info` must fit one page.
    FrameTooLong,
    /// EINVAL for the shortest frame too: the kernel predates live frames
    /// (Linux 5.18) and refuses a flag it does not know.
    NoLiveFrames,
    /// EPERM or EACCES: no capability is checked on this path, so a Linux
    /// security module refused the command.
    SecurityModule,
    /// ENOTSUPP: the kernel has no test run for XDP programs.
    NoTestRun,
    /// ENOMEM: the run's page pool could not be set up.
    NoMemory,
    /// Any other errno: not one the 6.18 code returns for this call.
    Other,
}

impl Refusal {
    /// The refusal behind `errno`, for a frame of `frame_len` bytes;
    /// `shortest_runs` says whether a `MIN_FRAME`-byte frame runs.
    fn from_errno(errno: i32, frame_len: usize, shortest_runs: impl FnOnce() -> bool) -> Self {
        match errno {
            libc::EINVAL if frame_len > MIN_FRAME && shortest_runs() => Refusal::FrameTooLong,
            libc::EINVAL => Refusal::NoLiveFrames,
            libc::EPERM | libc::EACCES => Refusal::SecurityModule,
            ENOTSUPP => Refusal::NoTestRun,
            libc::ENOMEM => Refusal::NoMemory,
            _ => Refusal::Other,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::FrameTooLong => {
                "the frame does not fit one page with the XDP headroom, the kernel's \
                 xdp_page_head and skb_shared_info: bpf_prog_test_run_xdp (net/bpf/test_run.c) \
                 refuses longer frames in live mode (at most 3,408 bytes on x86-64 6.18)"
            }
            Refusal::NoLiveFrames => {
                "this kernel has no live-frames mode (Linux 5.18 added it): \
                 bpf_prog_test_run_xdp (net/bpf/test_run.c) refuses flags it does not know"
            }
            Refusal::SecurityModule => {
                "no capability is checked on this path, so a Linux security module refused \
                 the command (the security_bpf hook in __sys_bpf, kernel/bpf/syscall.c)"
            }
            Refusal::NoTestRun => {
                "this kernel cannot test-run XDP programs (bpf_prog_test_run, \
                 kernel/bpf/syscall.c, finds no test_run for them)"
            }
            Refusal::NoMemory => {
                "the kernel could not set up the run's page pool (xdp_test_run_setup, \
                 net/bpf/test_run.c)"
            }
            Refusal::Other => "an answer Linux 6.18 does not give to this call",
        })
    }
}

/// The symbolic name of an errno the probe may see.
fn errno_name(errno: i32) -> String {
    match errno {
        libc::EINVAL => "EINVAL".into(),
        libc::EPERM => "EPERM".into(),
        libc::EACCES => "EACCES".into(),
        libc::ENOMEM => "ENOMEM".into(),
        libc::E2BIG => "E2BIG".into(),
        ENOTSUPP => "ENOTSUPP".into(),
        e => format!("errno {e}"),
    }
}

/// The kernel refused `BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES`
/// for a frame of `frame_len` bytes: `errno` is the syscall's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the kernel refuses BPF_PROG_TEST_RUN with live frames (BPF_F_TEST_XDP_LIVE_FRAMES) for a \
     {frame_len}-byte frame: {} ({reason})",
    errno_name(*errno)
)]
pub struct LiveFramesRefused {
    pub errno: i32,
    pub frame_len: usize,
    pub reason: Refusal,
}

/// Why [`probe_live_frames`] has no answer, or the kernel's refusal.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The kernel's own answer to the live-frames run.
    #[error(transparent)]
    Refused(#[from] LiveFramesRefused),
    #[error("a probe frame of {len} bytes: from an Ethernet header ({ETH_HLEN}) to 65,535")]
    FrameLength { len: usize },
    #[error(
        "loading the 2-instruction XDP program that probes live frames: {0} (loading an XDP \
         program needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN)"
    )]
    Load(io::Error),
}

/// Whether the kernel runs an XDP program in live-frames mode on a frame
/// of `frame_len` bytes (Ethernet header to payload). `Err(Refused)` is
/// the kernel's answer to `BPF_PROG_TEST_RUN` itself; any other error is
/// a failure to ask.
///
/// Cheap and without effect outside this call: a 2-instruction program
/// that drops every frame (nothing reaches a stack or a wire), run once
/// (a repeat of 1 never enters the XDP dispatcher, so no RCU wait) with a
/// batch of one page, on the loopback rx queue of the caller's network
/// namespace; the program goes away with its fd on return. A refused
/// frame longer than `MIN_FRAME` costs a second run, to tell its length
/// from a kernel without live frames.
pub fn probe_live_frames(frame_len: usize) -> Result<(), ProbeError> {
    if !(ETH_HLEN..=usize::from(u16::MAX)).contains(&frame_len) {
        return Err(ProbeError::FrameLength { len: frame_len });
    }
    let prog = load_drop_program().map_err(ProbeError::Load)?;
    let Err(errno) = run_live_once(prog.as_fd(), frame_len) else {
        return Ok(());
    };
    let reason = Refusal::from_errno(errno, frame_len, || {
        run_live_once(prog.as_fd(), MIN_FRAME).is_ok()
    });
    Err(LiveFramesRefused {
        errno,
        frame_len,
        reason,
    }
    .into())
}

/// Loads `r0 = XDP_DROP; exit`.
fn load_drop_program() -> io::Result<OwnedFd> {
    use libbpf_rs::libbpf_sys as sys;
    // BPF_ALU64 | BPF_MOV | BPF_K and BPF_JMP | BPF_EXIT; dst r0 is the
    // zeroed register field.
    let mov_r0 = sys::bpf_insn {
        code: 0xb7,
        imm: sys::XDP_DROP as i32,
        ..Default::default()
    };
    let exit = sys::bpf_insn {
        code: 0x95,
        ..Default::default()
    };
    let insns = [mov_r0, exit];
    // SAFETY: the name and license are NUL-terminated, `insns` holds
    // `insns.len()` instructions and outlives the call; null options are
    // the documented defaults.
    let fd = unsafe {
        sys::bpf_prog_load(
            sys::BPF_PROG_TYPE_XDP,
            c"xvs_lf_probe".as_ptr(),
            c"GPL".as_ptr(),
            insns.as_ptr(),
            insns.len() as _,
            std::ptr::null_mut(),
        )
    };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: a non-negative return is a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One live-frames run of `prog` on a zeroed frame of `len` bytes: the
/// errno of `BPF_PROG_TEST_RUN` if the kernel refuses it.
fn run_live_once(prog: BorrowedFd<'_>, len: usize) -> Result<(), i32> {
    use libbpf_rs::libbpf_sys as sys;
    let frame = vec![0u8; len];
    let mut opts = sys::bpf_test_run_opts {
        sz: std::mem::size_of::<sys::bpf_test_run_opts>() as _,
        data_in: frame.as_ptr().cast(),
        data_size_in: len as u32,
        repeat: 1,
        flags: LIVE_FRAMES,
        batch_size: 1,
        ..Default::default()
    };
    // SAFETY: `opts` is sized for this libbpf and points at `frame`, which
    // outlives the call; no output buffers are given.
    let ret = unsafe { sys::bpf_prog_test_run_opts(prog.as_raw_fd(), &mut opts) };
    if ret < 0 {
        Err(-ret)
    } else {
        Ok(())
    }
}

/// Flow 0's frame and the words in which every other flow differs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowPatch {
    base: Vec<u8>,
    /// Even byte offsets, ascending.
    offsets: Vec<u16>,
    /// `offsets.len()` words per flow, flow after flow, as on the wire.
    words: Vec<[u8; 2]>,
    flows: usize,
}

impl FlowPatch {
    /// The patch that turns `frames[0]` into `frames[f]` for every `f`.
    /// All frames must have one length.
    pub fn new(frames: &[Vec<u8>]) -> Result<Self, PktgenError> {
        let base = frames.first().ok_or(PktgenError::NoFrames)?;
        if frames.len() > MAX_FLOWS as usize {
            return Err(PktgenError::Flows {
                flows: frames.len(),
            });
        }
        let len = base.len();
        if len < ETH_HLEN {
            return Err(PktgenError::Short { len });
        }
        let mut differs = vec![false; len.div_ceil(2)];
        for (flow, f) in frames.iter().enumerate() {
            if f.len() != len {
                return Err(PktgenError::Length {
                    flow,
                    len: f.len(),
                    want: len,
                });
            }
            for (at, (a, b)) in base.iter().zip(f).enumerate() {
                if a != b {
                    if at + 1 == len && len % 2 == 1 {
                        return Err(PktgenError::OddTail { at, len });
                    }
                    differs[at / 2] = true;
                }
            }
        }
        let offsets: Vec<u16> = differs
            .iter()
            .enumerate()
            .filter(|&(_, &d)| d)
            // A whole word ends inside the frame, at most 4096 bytes.
            .map(|(w, _)| (w * 2) as u16)
            .collect();
        if offsets.len() > MAX_WORDS {
            return Err(PktgenError::Words {
                words: offsets.len(),
            });
        }
        if let Some(&o) = offsets.last() {
            if usize::from(o) > MAX_OFF {
                return Err(PktgenError::OddTail {
                    at: usize::from(o),
                    len,
                });
            }
        }
        let words = frames
            .iter()
            .flat_map(|f| {
                offsets.iter().map(|&o| {
                    let o = usize::from(o);
                    [f[o], f[o + 1]]
                })
            })
            .collect();
        Ok(Self {
            base: base.clone(),
            offsets,
            words,
            flows: frames.len(),
        })
    }

    /// Flow 0's frame: what the kernel copies into its pages.
    pub fn base(&self) -> &[u8] {
        &self.base
    }

    /// Byte offsets of the words that differ between flows.
    pub fn offsets(&self) -> &[u16] {
        &self.offsets
    }

    /// Number of flows.
    pub fn flows(&self) -> usize {
        self.flows
    }

    /// The words of `flow` (in [`FlowPatch::offsets`]' order).
    pub fn words(&self, flow: usize) -> &[[u8; 2]] {
        let n = self.offsets.len();
        &self.words[flow * n..(flow + 1) * n]
    }

    /// Writes `flow`'s words into `frame` (a frame of the base's length),
    /// as the program does.
    pub fn apply(&self, flow: usize, frame: &mut [u8]) {
        for (&o, w) in self.offsets.iter().zip(self.words(flow)) {
            let o = usize::from(o);
            frame[o..o + 2].copy_from_slice(w);
        }
    }

    fn cfg_value(&self, ifindex: i32) -> [u8; CFG_SIZE] {
        let mut v = [0u8; CFG_SIZE];
        v[0..4].copy_from_slice(&(ifindex as u32).to_ne_bytes());
        v[4..8].copy_from_slice(&(self.flows as u32).to_ne_bytes());
        v[8..12].copy_from_slice(&(self.offsets.len() as u32).to_ne_bytes());
        for (i, o) in self.offsets.iter().enumerate() {
            v[16 + 2 * i..18 + 2 * i].copy_from_slice(&o.to_ne_bytes());
        }
        v
    }

    fn flow_value(&self, flow: usize) -> [u8; FLOW_SIZE] {
        let mut v = [0u8; FLOW_SIZE];
        for (i, w) in self.words(flow).iter().enumerate() {
            v[2 * i..2 * i + 2].copy_from_slice(w);
        }
        v
    }
}

/// The pktgen program loaded for one interface, with one run's frames.
pub struct XdpSender {
    ifname: String,
    ifindex: i32,
    /// Holds the program and its maps alive.
    object: Object,
    state: MapHandle,
    frame: Vec<u8>,
    /// `lo`'s index when the program is attached there (see `hold`).
    held_on: Option<i32>,
}

impl fmt::Debug for XdpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpSender")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("frame_len", &self.frame.len())
            .finish_non_exhaustive()
    }
}

impl XdpSender {
    /// Loads the program for `ifname` (in the calling thread's network
    /// namespace) and writes `patch` into its maps. Nothing is attached.
    pub fn load(ifname: &str, patch: &FlowPatch) -> Result<Self, PktgenError> {
        let name = || ifname.to_string();
        let ifindex =
            xvs_bpf::ifindex(ifname).map_err(|_| PktgenError::NoInterface { ifname: name() })?;
        let open = ObjectBuilder::default()
            .open_memory(OBJECT)
            .map_err(|source| PktgenError::Open {
                ifname: name(),
                source,
            })?;
        let object = open.load().map_err(|source| PktgenError::Load {
            ifname: name(),
            source,
        })?;
        if !object.progs().any(|p| p.name() == OsStr::new(PROG)) {
            return Err(PktgenError::Missing {
                ifname: name(),
                what: PROG,
            });
        }
        let handle = |map: &'static str| -> Result<MapHandle, PktgenError> {
            let m = object.maps().find(|m| m.name() == OsStr::new(map)).ok_or(
                PktgenError::Missing {
                    ifname: name(),
                    what: map,
                },
            )?;
            MapHandle::try_from(&m).map_err(|source| PktgenError::Map {
                ifname: name(),
                map,
                op: "duplicating the fd".to_string(),
                source,
            })
        };
        let (cfg, flows, state) = (handle("cfg")?, handle("flows")?, handle("state")?);
        let zero = 0u32.to_ne_bytes();
        for flow in 0..patch.flows() {
            flows
                .update(
                    &(flow as u32).to_ne_bytes(),
                    &patch.flow_value(flow),
                    MapFlags::ANY,
                )
                .map_err(|source| PktgenError::Map {
                    ifname: name(),
                    map: "flows",
                    op: format!("writing flow {flow}"),
                    source,
                })?;
        }
        // The configuration last: until it is in, the program aborts.
        cfg.update(&zero, &patch.cfg_value(ifindex), MapFlags::ANY)
            .map_err(|source| PktgenError::Map {
                ifname: name(),
                map: "cfg",
                op: "writing the configuration".to_string(),
                source,
            })?;
        let mut sender = Self {
            ifname: name(),
            ifindex,
            object,
            state,
            frame: patch.base().to_vec(),
            held_on: None,
        };
        sender.held_on = sender.hold();
        Ok(sender)
    }

    /// Attaches the program to `lo` in generic mode, where it passes every
    /// frame (their ingress is not ours), so that it stays in the kernel's
    /// XDP dispatcher between calls: otherwise every `BPF_PROG_RUN` with
    /// `repeat > 1` adds it there and removes it at the end, and the
    /// removal waits for an RCU grace period (measured: 24 ms a call on
    /// kernel 6.18 on a 2-core VM, in `synchronize_rcu` under
    /// `bpf_dispatcher_change_prog`). Returns `lo`'s index if attached;
    /// `None` when `lo` already has a program (or is our interface): then
    /// calls just pay that wait.
    fn hold(&self) -> Option<i32> {
        let lo = xvs_bpf::ifindex("lo")
            .ok()
            .filter(|&lo| lo != self.ifindex)?;
        let prog = self.object.progs().find(|p| p.name() == OsStr::new(PROG))?;
        Xdp::new(prog.as_fd())
            .attach(lo, XdpFlags::SKB_MODE | XdpFlags::UPDATE_IF_NOEXIST)
            .ok()
            .map(|()| lo)
    }

    /// Whether calls skip the dispatcher's wait (see `hold`).
    pub fn holds_dispatcher(&self) -> bool {
        self.held_on.is_some()
    }

    /// The interface frames leave by.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// `struct xdp_md` for a run on our interface, rx queue 0.
    fn context(&self) -> [u8; XDP_MD_SIZE] {
        let mut ctx = [0u8; XDP_MD_SIZE];
        // data = 0, data_end = length, data_meta = 0: the kernel checks
        // they describe data_in exactly.
        ctx[4..8].copy_from_slice(&(self.frame.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&(self.ifindex as u32).to_ne_bytes());
        ctx
    }

    /// Runs the program `repeat` times, live or not, with `data_out`.
    fn test_run(
        &mut self,
        repeat: u32,
        flags: u32,
        data_out: Option<&mut [u8]>,
    ) -> Result<u32, PktgenError> {
        let mut ctx = self.context();
        let (ifname, len) = (&self.ifname, self.frame.len());
        let prog = self
            .object
            .progs_mut()
            .find(|p| p.name() == OsStr::new(PROG))
            .ok_or_else(|| PktgenError::Missing {
                ifname: ifname.clone(),
                what: PROG,
            })?;
        let input = libbpf_rs::ProgramInput {
            data_in: Some(&self.frame),
            context_in: Some(&mut ctx),
            data_out,
            flags,
            repeat,
            ..Default::default()
        };
        let out = prog.test_run(input).map_err(|source| PktgenError::Run {
            ifname: ifname.clone(),
            repeat,
            len,
            source,
        })?;
        Ok(out.return_value)
    }

    /// Runs the program `repeat` times in live-frames mode: each run sends
    /// the next flow's frame. Returns when all runs are done, or early with
    /// an error (EINTR) when a signal arrives.
    pub fn send(&mut self, repeat: u32) -> Result<(), PktgenError> {
        self.test_run(repeat, LIVE_FRAMES, None).map(|_| ())
    }

    /// Runs the program once outside live-frames mode (nothing is sent)
    /// and returns its verdict and the frame it made: the next flow's.
    pub fn dry_run(&mut self) -> Result<(u32, Vec<u8>), PktgenError> {
        let mut out = vec![0u8; self.frame.len()];
        let verdict = self.test_run(1, 0, Some(&mut out))?;
        Ok((verdict, out))
    }

    /// Runs that returned XDP_ABORTED (nothing sent for them): a frame
    /// shorter than the patch, which [`FlowPatch::new`] rules out.
    pub fn aborted(&self) -> Result<u64, PktgenError> {
        let v = self
            .state
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| PktgenError::Map {
                ifname: self.ifname.clone(),
                map: "state",
                op: "reading".to_string(),
                source,
            })?
            .unwrap_or_default();
        Ok(v.get(8..STATE_SIZE)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_ne_bytes))
    }
}

impl Drop for XdpSender {
    fn drop(&mut self) {
        let Some(lo) = self.held_on else {
            return;
        };
        let Some(prog) = self.object.progs().find(|p| p.name() == OsStr::new(PROG)) else {
            return;
        };
        let xdp = Xdp::new(prog.as_fd());
        let ours = libbpf_rs::Program::id_from_fd(prog.as_fd()).ok();
        // Only our own program: another may have replaced it meanwhile.
        if ours.is_some() && xdp.query_id(lo, XdpFlags::SKB_MODE).ok() == ours {
            if let Err(e) = xdp.detach(lo, XdpFlags::SKB_MODE) {
                eprintln!("xvs-bpf: pktgen: detaching from lo: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames of `len` bytes in which flow f has f at bytes 20-21 and
    /// f's complement at 31-32 (one word across a word boundary: two
    /// words), the rest fixed.
    fn frames(n: usize, len: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|f| {
                let mut v: Vec<u8> = (0..len).map(|i| i as u8).collect();
                v[20..22].copy_from_slice(&(f as u16).to_be_bytes());
                v[31..33].copy_from_slice(&(!(f as u16)).to_be_bytes());
                v
            })
            .collect()
    }

    #[test]
    fn patch_finds_the_differing_words_and_rebuilds_every_flow() {
        let fr = frames(300, 64);
        let p = FlowPatch::new(&fr).unwrap();
        assert_eq!(p.offsets(), &[20, 30, 32]);
        assert_eq!(p.base(), &fr[0][..]);
        for (f, want) in fr.iter().enumerate() {
            let mut got = fr[0].clone();
            p.apply(f, &mut got);
            assert_eq!(&got, want, "flow {f}");
        }
        // One flow: nothing differs, nothing to write.
        let one = FlowPatch::new(&fr[..1]).unwrap();
        assert!(one.offsets().is_empty());
        assert_eq!(one.cfg_value(7)[8..12], 0u32.to_ne_bytes());
    }

    #[test]
    fn patch_rejects_what_the_program_cannot_write() {
        assert!(matches!(FlowPatch::new(&[]), Err(PktgenError::NoFrames)));
        let mut fr = frames(3, 64);
        fr[2].push(0);
        assert!(matches!(
            FlowPatch::new(&fr),
            Err(PktgenError::Length { flow: 2, .. })
        ));
        let many: Vec<Vec<u8>> = (0..2u8)
            .map(|f| (0..64u8).map(|i| i.wrapping_mul(f)).collect())
            .collect();
        assert!(matches!(
            FlowPatch::new(&many),
            Err(PktgenError::Words { .. })
        ));
        let odd = vec![vec![0u8; 61], {
            let mut v = vec![0u8; 61];
            v[60] = 1;
            v
        }];
        assert!(matches!(
            FlowPatch::new(&odd),
            Err(PktgenError::OddTail { at: 60, len: 61 })
        ));
        assert!(matches!(
            FlowPatch::new(&[vec![0u8; 10]]),
            Err(PktgenError::Short { len: 10 })
        ));
    }

    #[test]
    fn refusals_name_the_check_behind_each_errno() {
        let never = || panic!("only an EINVAL for a long frame asks about the shortest");
        assert_eq!(
            Refusal::from_errno(libc::EINVAL, 4000, || true),
            Refusal::FrameTooLong
        );
        assert_eq!(
            Refusal::from_errno(libc::EINVAL, 4000, || false),
            Refusal::NoLiveFrames
        );
        assert_eq!(
            Refusal::from_errno(libc::EINVAL, MIN_FRAME, never),
            Refusal::NoLiveFrames
        );
        assert_eq!(
            Refusal::from_errno(libc::EPERM, 64, never),
            Refusal::SecurityModule
        );
        assert_eq!(
            Refusal::from_errno(libc::EACCES, 64, never),
            Refusal::SecurityModule
        );
        assert_eq!(Refusal::from_errno(ENOTSUPP, 64, never), Refusal::NoTestRun);
        assert_eq!(
            Refusal::from_errno(libc::ENOMEM, 64, never),
            Refusal::NoMemory
        );
        assert_eq!(Refusal::from_errno(libc::EBADF, 64, never), Refusal::Other);
        let e = LiveFramesRefused {
            errno: libc::EPERM,
            frame_len: 64,
            reason: Refusal::SecurityModule,
        }
        .to_string();
        assert!(!e.contains('\n'), "one line: {e}");
        for want in [
            "BPF_F_TEST_XDP_LIVE_FRAMES",
            "64-byte",
            "EPERM",
            "security_bpf",
        ] {
            assert!(e.contains(want), "{want} in {e}");
        }
    }

    #[test]
    fn probe_rejects_a_frame_length_before_asking_the_kernel() {
        for len in [0, ETH_HLEN - 1, 65_536] {
            assert!(
                matches!(probe_live_frames(len), Err(ProbeError::FrameLength { len: l }) if l == len),
                "{len}"
            );
        }
    }

    /// The kernel's answer for a frame that cannot fit a page is EINVAL,
    /// and the probe tells that from a kernel without live frames by the
    /// shortest frame's answer.
    #[test]
    fn probe_says_why_the_kernel_refuses_a_frame_longer_than_a_page() {
        if !xvs_tests::require_root() {
            return;
        }
        let shortest = match probe_live_frames(MIN_FRAME) {
            Ok(()) => true,
            Err(ProbeError::Refused(r)) => {
                eprintln!("this kernel refuses even the shortest frame: {r}");
                false
            }
            Err(e) => panic!("probing live frames: {e}"),
        };
        match probe_live_frames(4000) {
            Err(ProbeError::Refused(r)) => {
                assert_eq!(r.errno, libc::EINVAL, "{r}");
                assert_eq!(r.frame_len, 4000);
                let want = if shortest {
                    Refusal::FrameTooLong
                } else {
                    Refusal::NoLiveFrames
                };
                assert_eq!(r.reason, want, "{r}");
            }
            other => panic!("a 4000-byte frame in live mode: {other:?}"),
        }
    }

    /// The program itself (outside live-frames mode, on `lo`: nothing is
    /// sent) writes each flow's words in turn, round robin; its maps have
    /// the C sizes.
    #[test]
    fn program_writes_each_flow_in_turn() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root (loading BPF)");
            return;
        }
        let fr = frames(5, 64);
        let p = FlowPatch::new(&fr).unwrap();
        let mut s = XdpSender::load("lo", &p).unwrap();
        let size = |name: &str| {
            let m = s
                .object
                .maps()
                .find(|m| m.name() == OsStr::new(name))
                .unwrap_or_else(|| panic!("no map {name}"));
            (m.value_size() as usize, m.max_entries())
        };
        assert_eq!(size("cfg"), (CFG_SIZE, 1));
        assert_eq!(size("flows"), (FLOW_SIZE, MAX_FLOWS));
        assert_eq!(size("state"), (STATE_SIZE, 1));
        for round in 0..12 {
            let (verdict, out) = s.dry_run().unwrap();
            assert_eq!(verdict, XDP_TX);
            assert_eq!(out, fr[round % 5], "run {round}");
        }
        assert_eq!(s.aborted().unwrap(), 0);
    }
}
