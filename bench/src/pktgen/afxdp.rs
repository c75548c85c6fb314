//! The AF_XDP send engine (`tx --engine afxdp`): every flow's frame is
//! written into UMEM chunks once, then only descriptors move, 32 per kick,
//! completed chunks going straight back into the send queue; a token
//! bucket ([`Bucket`]) releases whole batches at `--rate`.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xvs_bpf::{Mode, XdpProgram};
use xvs_io::xsk::{XskConfig, XskSet};

use super::args::TxArgs;
use super::frames::frame_spec;
use super::report::{Progress, TxReport};
use super::sys::{iface_err, queues, xsk_stats};
use super::{PktgenError, PROGRESS_EVERY, STALL};

/// Descriptors per TX kick: what one wakeup sends in copy mode.
const TX_KICK: usize = 32;
/// Size of the rings of a tx socket.
const RING: u32 = 2048;
/// Chunks lent to the fill ring of a tx socket: frames arriving on a
/// sending interface are drained and ignored, they need little room.
const TX_RX_FRAMES: u32 = 64;

/// Releases whole batches at `rate` packets per second.
#[derive(Debug)]
pub(super) struct Bucket {
    /// 0: unlimited.
    rate: u64,
    tokens: f64,
    /// Credit is capped at 200 µs of packets (at least two batches): a
    /// sender held up for a moment (a preemption, a slow kick) makes up
    /// for it, so the average rate holds (with a 2-batch cap, 700 kpps
    /// came out 3% short on veth), while a sender that fell far behind
    /// does not catch up with a long burst.
    cap: f64,
    batch: usize,
    last: Instant,
}

impl Bucket {
    fn new(rate: u64, now: Instant) -> Bucket {
        // Small batches at low rates, so packets are not bunched into
        // bursts milliseconds apart: at most 10,000 batches a second.
        let batch = if rate == 0 {
            TX_KICK
        } else {
            (rate / 10_000).clamp(1, TX_KICK as u64) as usize
        };
        Bucket {
            rate,
            tokens: batch as f64,
            cap: (2.0 * batch as f64).max(rate as f64 / 5_000.0),
            batch,
            last: now,
        }
    }

    /// How many of `want` packets may go now (0 until a whole batch, or
    /// all of `want` if smaller, is due).
    fn allow(&mut self, now: Instant, want: usize) -> usize {
        if self.rate == 0 {
            return want;
        }
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate as f64).min(self.cap);
        if self.tokens < self.batch.min(want) as f64 {
            return 0;
        }
        want.min(self.tokens as usize)
    }

    fn spend(&mut self, n: usize) {
        if self.rate != 0 {
            self.tokens -= n as f64;
        }
    }

    /// Time until the next batch is due.
    fn wait(&self) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let missing = (self.batch as f64 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.rate as f64)
    }
}

/// Chunks holding frames to send: a multiple of the flow count, so each
/// flow gets the same share, and enough to keep the TX ring full.
fn tx_chunks(flows: u32) -> u32 {
    RING.div_ceil(flows) * flows
}

/// `tx --engine afxdp` on an interface that exists.
pub(super) fn tx(a: &TxArgs, stop: &AtomicBool) -> Result<ExitCode, PktgenError> {
    let spec = frame_spec(a)?;
    let frame_len = spec.frame_len();
    // The kernel accepts a queue id below either count; say which
    // there are rather than let the bind fail with a bare errno.
    let have = queues(&a.iface, "rx-")?.max(queues(&a.iface, "tx-")?);
    if a.queue >= have {
        return Err(iface_err(
            &a.iface,
            format!("--queue {}: it has {have} queue(s)", a.queue),
        ));
    }
    let duration = match (a.duration, a.count) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };

    let prog = XdpProgram::attach(&a.iface, Mode::Port, a.xdp_mode.flags())?;
    let chunks = tx_chunks(a.flows);
    let mut set = XskSet::new(XskConfig {
        frames: TX_RX_FRAMES + chunks,
        rx_frames: TX_RX_FRAMES,
        ring: RING,
        frame_headroom: 0,
        jumbo_slots: 0,
    })?;
    let s = set.bind(&a.iface, a.queue, &prog)?;
    let zero_copy = set.zero_copy(s);

    // Every chunk left after the fill ring's share carries one frame,
    // written here once; from now on only descriptors move.
    let mut addrs = Vec::with_capacity(chunks as usize);
    while let Some(c) = set.alloc() {
        addrs.push(c);
    }
    {
        let frames: Vec<Vec<u8>> = (0..a.flows).map(|f| spec.build(f)).collect();
        let mut bufs = Vec::with_capacity(addrs.len());
        set.chunks_mut(&addrs, &mut bufs)?;
        for (i, buf) in bufs.iter_mut().enumerate() {
            let f = &frames[i % frames.len()];
            buf[..f.len()].copy_from_slice(f);
        }
    }
    let mut free: VecDeque<u64> = addrs.into();

    let frame_len32 = frame_len as u32;
    let mut batch: Vec<(u64, u32)> = Vec::with_capacity(TX_KICK);
    let mut comp: Vec<u64> = Vec::with_capacity(RING as usize);
    let mut rxbuf: Vec<(u64, u32)> = Vec::with_capacity(TX_RX_FRAMES as usize);
    let mut rx_addrs: Vec<u64> = Vec::with_capacity(TX_RX_FRAMES as usize);
    let (mut queued, mut completed, mut in_flight) = (0u64, 0u64, 0usize);
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    let mut bucket = Bucket::new(a.rate, start);
    let mut progress = Progress::tx(a.count, duration, start);
    let mut last_completion = start;
    let mut stalled = false;
    let mut round: u64 = 0;

    // Reaps completions: their chunks go to the back of the queue, so
    // the flows keep their round-robin order.
    let reap = |set: &mut XskSet, comp: &mut Vec<u64>, free: &mut VecDeque<u64>| {
        comp.clear();
        let n = set.complete(s, comp);
        free.extend(comp.iter().copied());
        n
    };

    loop {
        round += 1;
        let now = Instant::now();
        if stop.load(Ordering::Relaxed)
            || deadline.is_some_and(|d| now >= d)
            || a.count.is_some_and(|c| queued >= c)
        {
            break;
        }
        let n = reap(&mut set, &mut comp, &mut free);
        if n > 0 {
            completed += n as u64;
            in_flight -= n;
            last_completion = now;
        } else if in_flight > 0 && now.duration_since(last_completion) >= STALL {
            stalled = true;
            break;
        }
        if round & 1023 == 0 {
            // Frames arriving on the sending interface come to our
            // socket (the port program takes everything): give their
            // chunks back so the fill ring never runs dry.
            rxbuf.clear();
            set.rx(s, &mut rxbuf, TX_RX_FRAMES as usize, 0)?;
            rx_addrs.extend(rxbuf.iter().map(|&(addr, _)| addr));
            // What the fill ring does not take now (it publishes its
            // consumer lazily) is offered again next time.
            let lent = set.fill(s, &rx_addrs)?;
            rx_addrs.drain(..lent);
        }
        let position = match duration {
            Some(_) => now.duration_since(start).as_millis() as u64,
            None => completed,
        };
        progress.update(now, completed, None, position);
        let mut want = TX_KICK.min(free.len());
        if let Some(c) = a.count {
            want = want.min((c - queued) as usize);
        }
        let want = bucket.allow(now, want);
        if want == 0 {
            // Nothing to send now: keep copy mode draining what is
            // queued, and do not spin through a long rate-limit wait.
            if in_flight > 0 {
                set.kick(s)?;
            }
            let wait = bucket.wait();
            if wait > Duration::from_micros(200) {
                std::thread::sleep((wait - Duration::from_micros(100)).min(PROGRESS_EVERY));
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        batch.clear();
        batch.extend(free.drain(..want).map(|addr| (addr, frame_len32)));
        let sent = set.tx_send(s, &batch)?;
        bucket.spend(sent);
        queued += sent as u64;
        in_flight += sent;
        // The ring was full: the rest stay ours, first in line.
        for &(addr, _) in batch[sent..].iter().rev() {
            free.push_front(addr);
        }
    }

    // Let what is queued go out (bounded: a second, or a stall).
    let drain_until = Instant::now() + Duration::from_secs(1);
    while in_flight > 0 && Instant::now() < drain_until {
        set.kick(s)?;
        let n = reap(&mut set, &mut comp, &mut free);
        completed += n as u64;
        in_flight -= n;
        if n == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    progress.finish();
    let stats = xsk_stats(set.fd(s));
    let xdp_mode = prog.attach_mode().to_string();
    // Sockets before the program: the program's map must not outlive
    // them pointing at closed sockets, and detaching while bound would
    // cut the socket off.
    drop(set);
    drop(prog);

    let report = TxReport {
        xdp_mode,
        zero_copy,
        queued,
        xsk_tx_invalid_descs: stats.tx_invalid_descs,
        stalled,
        ..TxReport::new(a, spec.size, frame_len, completed, secs)
    };
    report.print(a)?;
    if stalled {
        eprintln!(
            "xvs-pktgen: tx stalled: no frame completed for {} s with {in_flight} queued",
            STALL.as_secs()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::super::MAX_FLOWS;
    use super::*;

    #[test]
    fn the_bucket_paces_batches() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1_000_000, t0);
        assert_eq!(b.batch, 32);
        assert_eq!(b.allow(t0, 32), 32);
        b.spend(32);
        assert_eq!(b.allow(t0, 32), 0, "no credit left");
        // 32 µs at 1 Mpps is one batch.
        assert_eq!(b.allow(t0 + Duration::from_micros(33), 32), 32);
        b.spend(32);
        // Credit is capped at 200 µs.
        assert_eq!(b.allow(t0 + Duration::from_secs(1), 1000), 200);
        let mut b = Bucket::new(100_000, t0);
        assert_eq!(
            b.allow(t0 + Duration::from_secs(1), 1000),
            20,
            "two batches"
        );
        let mut slow = Bucket::new(100, t0);
        assert_eq!(slow.batch, 1);
        assert_eq!(slow.allow(t0, 32), 1);
        slow.spend(1);
        assert!(slow.wait() > Duration::from_millis(9));
        let mut free = Bucket::new(0, t0);
        assert_eq!(free.allow(t0, 32), 32);
    }

    #[test]
    fn tx_chunks_share_evenly_and_fill_the_ring() {
        for flows in [1, 3, 1000, 1024, 4096, MAX_FLOWS] {
            let c = tx_chunks(flows);
            assert_eq!(c % flows, 0);
            assert!(c >= RING);
        }
    }
}
