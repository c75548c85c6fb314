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
//! Linux that refuses it when it does not ([`LiveFramesRefused`];
//! `probe.rs`). On Linux 6.18 nothing on that path checks a capability:
//! `__sys_bpf` (kernel/bpf/syscall.c) calls the `security_bpf` LSM hook,
//! then `bpf_prog_test_run` only checks the attribute layout, and
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
use std::os::fd::AsFd;

use libbpf_rs::{MapCore, MapFlags, MapHandle, Object, ObjectBuilder, Xdp, XdpFlags};

mod probe;

pub use probe::{probe_live_frames, LiveFramesRefused, ProbeError, Refusal};

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
pub enum XdpSendError {
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
    pub fn new(frames: &[Vec<u8>]) -> Result<Self, XdpSendError> {
        let base = frames.first().ok_or(XdpSendError::NoFrames)?;
        if frames.len() > MAX_FLOWS as usize {
            return Err(XdpSendError::Flows {
                flows: frames.len(),
            });
        }
        let len = base.len();
        if len < ETH_HLEN {
            return Err(XdpSendError::Short { len });
        }
        let mut differs = vec![false; len.div_ceil(2)];
        for (flow, f) in frames.iter().enumerate() {
            if f.len() != len {
                return Err(XdpSendError::Length {
                    flow,
                    len: f.len(),
                    want: len,
                });
            }
            for (at, (a, b)) in base.iter().zip(f).enumerate() {
                if a != b {
                    if at + 1 == len && len % 2 == 1 {
                        return Err(XdpSendError::OddTail { at, len });
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
            return Err(XdpSendError::Words {
                words: offsets.len(),
            });
        }
        if let Some(&o) = offsets.last() {
            if usize::from(o) > MAX_OFF {
                return Err(XdpSendError::OddTail {
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
    pub fn load(ifname: &str, patch: &FlowPatch) -> Result<Self, XdpSendError> {
        let name = || ifname.to_string();
        let ifindex =
            xvs_bpf::ifindex(ifname).map_err(|_| XdpSendError::NoInterface { ifname: name() })?;
        let open = ObjectBuilder::default()
            .open_memory(OBJECT)
            .map_err(|source| XdpSendError::Open {
                ifname: name(),
                source,
            })?;
        let object = open.load().map_err(|source| XdpSendError::Load {
            ifname: name(),
            source,
        })?;
        if !object.progs().any(|p| p.name() == OsStr::new(PROG)) {
            return Err(XdpSendError::Missing {
                ifname: name(),
                what: PROG,
            });
        }
        let handle = |map: &'static str| -> Result<MapHandle, XdpSendError> {
            let m = object.maps().find(|m| m.name() == OsStr::new(map)).ok_or(
                XdpSendError::Missing {
                    ifname: name(),
                    what: map,
                },
            )?;
            MapHandle::try_from(&m).map_err(|source| XdpSendError::Map {
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
                .map_err(|source| XdpSendError::Map {
                    ifname: name(),
                    map: "flows",
                    op: format!("writing flow {flow}"),
                    source,
                })?;
        }
        // The configuration last: until it is in, the program aborts.
        cfg.update(&zero, &patch.cfg_value(ifindex), MapFlags::ANY)
            .map_err(|source| XdpSendError::Map {
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
    ) -> Result<u32, XdpSendError> {
        let mut ctx = self.context();
        let (ifname, len) = (&self.ifname, self.frame.len());
        let prog = self
            .object
            .progs_mut()
            .find(|p| p.name() == OsStr::new(PROG))
            .ok_or_else(|| XdpSendError::Missing {
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
        let out = prog.test_run(input).map_err(|source| XdpSendError::Run {
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
    pub fn send(&mut self, repeat: u32) -> Result<(), XdpSendError> {
        self.test_run(repeat, LIVE_FRAMES, None).map(|_| ())
    }

    /// Runs the program once outside live-frames mode (nothing is sent)
    /// and returns its verdict and the frame it made: the next flow's.
    pub fn dry_run(&mut self) -> Result<(u32, Vec<u8>), XdpSendError> {
        let mut out = vec![0u8; self.frame.len()];
        let verdict = self.test_run(1, 0, Some(&mut out))?;
        Ok((verdict, out))
    }

    /// Runs that returned XDP_ABORTED (nothing sent for them): a frame
    /// shorter than the patch, which [`FlowPatch::new`] rules out.
    pub fn aborted(&self) -> Result<u64, XdpSendError> {
        let v = self
            .state
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| XdpSendError::Map {
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
        assert!(matches!(FlowPatch::new(&[]), Err(XdpSendError::NoFrames)));
        let mut fr = frames(3, 64);
        fr[2].push(0);
        assert!(matches!(
            FlowPatch::new(&fr),
            Err(XdpSendError::Length { flow: 2, .. })
        ));
        let many: Vec<Vec<u8>> = (0..2u8)
            .map(|f| (0..64u8).map(|i| i.wrapping_mul(f)).collect())
            .collect();
        assert!(matches!(
            FlowPatch::new(&many),
            Err(XdpSendError::Words { .. })
        ));
        let odd = vec![vec![0u8; 61], {
            let mut v = vec![0u8; 61];
            v[60] = 1;
            v
        }];
        assert!(matches!(
            FlowPatch::new(&odd),
            Err(XdpSendError::OddTail { at: 60, len: 61 })
        ));
        assert!(matches!(
            FlowPatch::new(&[vec![0u8; 10]]),
            Err(XdpSendError::Short { len: 10 })
        ));
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
