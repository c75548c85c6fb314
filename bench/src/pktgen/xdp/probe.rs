//! Whether the kernel takes a live-frames run at all ([`probe_live_frames`]),
//! and, when it does not, which check in Linux refused it ([`Refusal`]):
//! one cheap run of a 2-instruction program, before a send engine loads
//! anything.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{ETH_HLEN, LIVE_FRAMES};

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

#[cfg(test)]
mod tests {
    use super::*;

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
            Ok(()) => None,
            Err(ProbeError::Refused(r)) => {
                eprintln!("this kernel refuses even the shortest frame: {r}");
                Some(r)
            }
            Err(e) => panic!("probing live frames: {e}"),
        };
        match probe_live_frames(4000) {
            Err(ProbeError::Refused(r)) => {
                assert_eq!(r.frame_len, 4000);
                // A kernel that refuses live frames at all (EPERM from a
                // security module on some machines of this kind, EINVAL
                // before 5.18) gives this length the same answer; one
                // that takes them says EINVAL, the frame too long.
                match shortest {
                    None => {
                        assert_eq!(r.errno, libc::EINVAL, "{r}");
                        assert_eq!(r.reason, Refusal::FrameTooLong, "{r}");
                    }
                    Some(s) => assert_eq!((r.errno, r.reason), (s.errno, s.reason), "{r}"),
                }
            }
            other => panic!("a 4000-byte frame in live mode: {other:?}"),
        }
    }
}
