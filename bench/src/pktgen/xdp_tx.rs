//! The XDP live-frames send engine's run (`tx --engine xdp`) and `probe`:
//! a thread calls the `pktgen` XDP program through [`XdpSender`] while
//! this one watches the interface's counters, the only place that says
//! what left.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::args::{ProbeArgs, TxArgs};
use super::frames::frame_spec;
use super::report::{Progress, TxReport};
use super::sys::{iface_err, sysfs};
use super::xdp::{probe_live_frames, FlowPatch, XdpSender};
use super::{PktgenError, STALL};

/// Program runs in the first BPF_PROG_RUN call of each thread: few, so
/// that an interface that transmits nothing is reported at once.
const XDP_FIRST_RUNS: u32 = 4096;
/// What one later call should last: `--duration` is looked at between
/// calls only (a stop signal interrupts a call).
const XDP_CALL: Duration = Duration::from_millis(50);
const XDP_MAX_RUNS: u32 = 1 << 24;
/// How long the first frames get to show in the interface's counter: the
/// peer takes them in its NAPI poll, normally right after each batch of
/// 64 on the sending core, later when that runs elsewhere.
const XDP_SETTLE: Duration = Duration::from_millis(500);
/// How often the main thread reads the interface's counters.
const XDP_WATCH: Duration = Duration::from_millis(10);

/// The counters of the sending interface that say what left it.
///
/// For a veth, `tx_packets` counts the frames its peer took in (the
/// kernel adds the peer's receive counters to it, XDP-transmitted frames
/// included) and `tx_dropped` the XDP-transmitted frames the peer's ring
/// had no room for. A frame the peer took in is counted even if the
/// peer's XDP program or AF_XDP socket drops it later: it was sent.
/// What the host's own stack sends on the interface is counted too (the
/// benchmarks turn IPv6 off on their links, so there is next to none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TxCounters {
    packets: u64,
    dropped: u64,
}

fn tx_counters(iface: &str) -> Result<TxCounters, PktgenError> {
    let num = |file: &str| -> Result<u64, PktgenError> {
        let v = sysfs(iface, &format!("statistics/{file}"))?;
        v.parse()
            .map_err(|_| iface_err(iface, format!("statistics/{file}: {v:?} is not a number")))
    };
    Ok(TxCounters {
        packets: num("tx_packets")?,
        dropped: num("tx_dropped")?,
    })
}

/// What the sender threads share: the run's limits and what they did.
#[derive(Debug)]
struct XdpRun {
    deadline: Option<Instant>,
    count: Option<u64>,
    /// Runs handed out to calls (against `count`).
    claimed: AtomicU64,
    /// Runs of the calls that completed.
    done: AtomicU64,
    /// Set by the main thread (stall, nothing sent): the sender ends after
    /// its current call.
    halt: AtomicBool,
}

impl XdpRun {
    /// Up to `want` runs for the next call; 0 when `--count` is used up.
    fn claim(&self, want: u32) -> u32 {
        let Some(count) = self.count else {
            self.claimed.fetch_add(u64::from(want), Ordering::Relaxed);
            return want;
        };
        let mut got = 0;
        let _ = self
            .claimed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                got = (count.saturating_sub(c)).min(u64::from(want)) as u32;
                Some(c + u64::from(got))
            });
        got
    }

    fn over(&self, stop: &AtomicBool) -> bool {
        stop.load(Ordering::Relaxed)
            || self.halt.load(Ordering::Relaxed)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// The sender thread: calls until the run is over. Returns the runs the
/// program aborted.
fn xdp_sender(mut sender: XdpSender, run: &XdpRun, stop: &AtomicBool) -> Result<u64, PktgenError> {
    let mut per_call = XDP_FIRST_RUNS;
    while !run.over(stop) {
        let n = run.claim(per_call);
        if n == 0 {
            break;
        }
        let t0 = Instant::now();
        match sender.send(n) {
            Ok(()) => {
                run.done.fetch_add(u64::from(n), Ordering::Relaxed);
            }
            // A stop signal interrupts the call (EINTR).
            Err(_) if stop.load(Ordering::Relaxed) => break,
            Err(e) => return Err(e.into()),
        }
        // Aim the next call at XDP_CALL from this one's pace, and not
        // far past the deadline.
        let per_run = (t0.elapsed().as_secs_f64() / f64::from(n)).max(1e-9);
        let mut want = XDP_CALL.as_secs_f64() / per_run;
        if let Some(d) = run.deadline {
            want = want.min(d.saturating_duration_since(Instant::now()).as_secs_f64() / per_run);
        }
        per_call = want.clamp(f64::from(XDP_FIRST_RUNS), f64::from(XDP_MAX_RUNS)) as u32;
    }
    Ok(sender.aborted()?)
}

/// `tx --engine xdp`: flow 0's frame goes to the kernel once, and an XDP
/// program run by BPF_PROG_RUN in live-frames mode writes each flow's
/// varying words (see the [`xdp`](super::xdp) module) and transmits it, from
/// a thread of its own (this one watches the interface's counters), until
/// `--duration` or `--count`. One thread: a second one's calls would each
/// wait for an RCU grace period holding the kernel's XDP dispatcher lock,
/// stalling the first (see `XdpSender::hold` in the xdp module).
///
/// What the report's fields mean here: `queued` is the program runs of
/// the calls that completed (frames offered to the interface), `packets`
/// the interface's `tx_packets` over the run (see [`TxCounters`]: frames
/// that left), `dropped` its `tx_dropped`. `duration_secs` runs from the
/// start of the first call to the end of the last.
pub(super) fn tx(a: &TxArgs, stop: &AtomicBool) -> Result<ExitCode, PktgenError> {
    let spec = frame_spec(a)?;
    let frame_len = spec.frame_len();
    // Once, before anything is loaded for the run: a refusal is then one
    // line naming the kernel's check, not a failed send call mid-run.
    probe_live_frames(frame_len)?;
    let patch = {
        let frames: Vec<Vec<u8>> = (0..a.flows).map(|f| spec.build(f)).collect();
        FlowPatch::new(&frames)?
    };
    let duration = match (a.duration, a.count) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let sender = XdpSender::load(&a.iface, &patch)?;
    if !sender.holds_dispatcher() {
        eprintln!(
            "xvs-pktgen: could not attach the send program to lo (has it an XDP program?): \
             every call waits for an RCU grace period, and the rate suffers"
        );
    }
    let before = tx_counters(&a.iface)?;
    let start = Instant::now();
    let run = XdpRun {
        deadline: duration.map(|d| start + d),
        count: a.count,
        claimed: AtomicU64::new(0),
        done: AtomicU64::new(0),
        halt: AtomicBool::new(false),
    };
    let (mut stalled, mut silent) = (false, None::<u64>);
    let mut progress = Progress::tx(a.count, duration, start);
    let (result, secs) = std::thread::scope(|sc| {
        let thread = sc.spawn(|| xdp_sender(sender, &run, stop));
        // Watch the interface: it must start sending, and keep at it.
        let (mut last, mut last_sent) = (before, Instant::now());
        let mut first_done = None::<Instant>;
        while !thread.is_finished() {
            std::thread::sleep(XDP_WATCH);
            let now = Instant::now();
            let c = match tx_counters(&a.iface) {
                Ok(c) => c,
                Err(_) => continue,
            };
            let done = run.done.load(Ordering::Relaxed);
            if c.packets > last.packets {
                last_sent = now;
            } else if done > 0 && c.packets == before.packets {
                if now.duration_since(*first_done.get_or_insert(now)) >= XDP_SETTLE {
                    silent = Some(done);
                    run.halt.store(true, Ordering::Relaxed);
                }
            } else if now.duration_since(last_sent) >= STALL {
                stalled = true;
                run.halt.store(true, Ordering::Relaxed);
            }
            last = c;
            let position = match duration {
                Some(_) => now.duration_since(start).as_millis() as u64,
                None => done,
            };
            progress.update(now, c.packets - before.packets, None, position);
        }
        let secs = start.elapsed().as_secs_f64();
        let result = thread
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (result, secs)
    });
    progress.finish();
    let aborted = result?;
    // The last frames reach the counter moments after the last call.
    let mut after = tx_counters(&a.iface)?;
    let settle_until = Instant::now() + XDP_SETTLE;
    while Instant::now() < settle_until {
        std::thread::sleep(XDP_WATCH);
        let c = tx_counters(&a.iface)?;
        if c == after {
            break;
        }
        after = c;
    }
    let done = run.done.load(Ordering::Relaxed);
    // A short run may end before the watch above could tell.
    if after.packets == before.packets && done > 0 {
        silent = Some(done);
    }
    if let Some(done) = silent {
        return Err(iface_err(
            &a.iface,
            format!(
                "the kernel ran the XDP program {done} times and the interface sent none of \
                 the frames ({} dropped on transmit). A veth transmits XDP frames only when \
                 its peer has NAPI: attach an XDP program to the peer, or turn GRO on there \
                 (ethtool -K PEER gro on, kernel 5.13 and later); other drivers need \
                 ndo_xdp_xmit support",
                after.dropped - before.dropped
            ),
        ));
    }
    if aborted > 0 {
        eprintln!("xvs-pktgen: the XDP program aborted {aborted} runs (nothing sent for them)");
    }

    let packets = after.packets - before.packets;
    let report = TxReport {
        xdp_mode: "live-frames".to_string(),
        rate_pps: 0,
        queued: done,
        dropped: after.dropped - before.dropped,
        stalled,
        ..TxReport::new(a, spec.size, frame_len, packets, secs)
    };
    report.print(a)?;
    if stalled {
        eprintln!(
            "xvs-pktgen: tx stalled: the interface sent nothing for {} s",
            STALL.as_secs()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `probe`: whether `tx --engine xdp` can send frames of this length here.
pub fn probe(a: &ProbeArgs) -> Result<ExitCode, PktgenError> {
    probe_live_frames(usize::from(a.frame_len))?;
    println!(
        "the kernel runs BPF_PROG_TEST_RUN with live frames (BPF_F_TEST_XDP_LIVE_FRAMES) for a \
         {}-byte frame: --engine xdp can send",
        a.frame_len
    );
    Ok(ExitCode::SUCCESS)
}
