//! The receiver (`rx`): binds every rx queue of the interface, counts
//! frames and bytes, optionally checks each one ([`Expect`]), and gives the
//! chunks back to the fill ring.

use std::fmt;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xvs_bpf::{Mode, XdpProgram, MAX_QUEUES};
use xvs_io::xsk::{XskConfig, XskSet};

use super::args::{Poll, RxArgs};
use super::frames::{
    ETH, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_TEB, ETHERTYPE_VLAN, GENEVE_PORT, IPV4,
    TUNNEL_HDR, UDP, VXLAN_PORT,
};
use super::report::{rate, Progress, RxReport};
use super::sys::{iface_err, queues, xsk_stats, XdpStats};
use super::{PktgenError, PROGRESS_EVERY, WIRE_OVERHEAD};

/// Size of the rings of an rx socket: 5-6 ms of frames at 1.5 Mpps, so
/// that a receiver descheduled for a moment (it shares a core with the
/// generator) does not let the fill ring run dry.
const RX_RING: u32 = 8192;
/// How long an adaptive receiver naps after a small batch.
const RX_NAP: Duration = Duration::from_micros(500);

/// What `rx` counts as a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    Any,
    Vni(u32),
    UdpDport(u16),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Any => f.write_str("any"),
            Expect::Vni(v) => write!(f, "vni {v}"),
            Expect::UdpDport(p) => write!(f, "udp-dport {p}"),
        }
    }
}

/// The UDP header and what follows it, if `f` is an unfragmented
/// Ethernet (optionally one VLAN tag) / IPv4 or IPv6 / UDP frame whose
/// lengths are consistent.
fn udp_of(f: &[u8]) -> Option<&[u8]> {
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes(f.get(off..off + 2)?.try_into().ok()?);
    if ethertype == ETHERTYPE_VLAN {
        off += 4;
        ethertype = u16::from_be_bytes(f.get(off..off + 2)?.try_into().ok()?);
    }
    let l3 = f.get(off + 2..)?;
    let l4 = match ethertype {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(*l3.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes(l3.get(2..4)?.try_into().ok()?));
            let frag = u16::from_be_bytes(l3.get(6..8)?.try_into().ok()?) & 0x3fff;
            if l3[0] >> 4 != 4 || ihl < IPV4 || l3.get(9) != Some(&17) || frag != 0 {
                return None;
            }
            l3.get(ihl..total)?
        }
        ETHERTYPE_IPV6 => {
            let payload = usize::from(u16::from_be_bytes(l3.get(4..6)?.try_into().ok()?));
            if *l3.first()? >> 4 != 6 || l3.get(6) != Some(&17) {
                return None;
            }
            l3.get(40..40 + payload)?
        }
        _ => return None,
    };
    let udp_len = usize::from(u16::from_be_bytes(l4.get(4..6)?.try_into().ok()?));
    (udp_len >= UDP).then(|| l4.get(..udp_len)).flatten()
}

/// Whether `f` is what `expect` asks for.
pub(super) fn frame_matches(f: &[u8], expect: Expect) -> bool {
    let udp = match expect {
        Expect::Any => return true,
        _ => match udp_of(f) {
            Some(u) => u,
            None => return false,
        },
    };
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    match expect {
        Expect::Any => true,
        Expect::UdpDport(p) => dport == p,
        Expect::Vni(vni) => {
            let Some(h) = udp.get(UDP..UDP + TUNNEL_HDR) else {
                return false;
            };
            let got = u32::from_be_bytes([0, h[4], h[5], h[6]]);
            let (hdr_len, ok) = match dport {
                VXLAN_PORT => (TUNNEL_HDR, h[0] & 0x08 != 0),
                GENEVE_PORT => (
                    TUNNEL_HDR + usize::from(h[0] & 0x3f) * 4,
                    h[0] >> 6 == 0 && u16::from_be_bytes([h[2], h[3]]) == ETHERTYPE_TEB,
                ),
                _ => return false,
            };
            // An inner Ethernet header must follow.
            ok && got == vni && udp.len() >= UDP + hdr_len + ETH
        }
    }
}

/// `rx`: listens for `--duration`, then reports.
pub fn rx(a: &RxArgs, stop: &AtomicBool) -> Result<ExitCode, PktgenError> {
    xvs_bpf::ifindex(&a.iface)?;
    let expect = match (a.expect_vni, a.expect_udp_dport) {
        (Some(v), _) => Expect::Vni(v),
        (None, Some(p)) => Expect::UdpDport(p),
        (None, None) => Expect::Any,
    };
    let queues = queues(&a.iface, "rx-")?;
    if queues > MAX_QUEUES {
        return Err(iface_err(
            &a.iface,
            format!("{queues} rx queues; the XDP program serves at most {MAX_QUEUES}"),
        ));
    }
    let prog = XdpProgram::attach(&a.iface, Mode::Port, a.xdp_mode.flags())?;
    // Rings shrink as queues grow, so the UMEM stays at most 32 MiB
    // per queue and 256 MiB in all.
    let ring = (RX_RING / queues.next_power_of_two()).max(512);
    // Twice the fill ring per queue: the spare half absorbs what the
    // fill ring cannot take back at once (see the refill below).
    let mut set = XskSet::new(XskConfig {
        frames: queues * 2 * ring,
        rx_frames: ring,
        ring,
        frame_headroom: 0,
        jumbo_slots: 0,
    })?;
    for q in 0..queues {
        set.bind(&a.iface, q, &prog)?;
    }
    let zero_copy = set.zero_copy(0);
    // Scripts wait for this line before they start sending.
    eprintln!(
        "xvs-pktgen: rx ready on {}: {queues} queue(s), {} XDP",
        a.iface,
        prog.attach_mode()
    );

    let mut buf: Vec<(u64, u32)> = Vec::with_capacity(ring as usize);
    let mut addrs: Vec<u64> = Vec::with_capacity(2 * ring as usize);
    let mut pollfds: Vec<libc::pollfd> = Vec::with_capacity(queues as usize);
    let (mut packets, mut bytes, mut invalid) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let deadline = start + a.duration;
    let (mut first, mut last) = (None::<Instant>, start);
    let mut idle_since = None::<Instant>;
    let mut progress = Progress::new(a.duration.as_millis() as u64, "rx", start);
    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) || now >= deadline {
            break;
        }
        let (mut got, mut valid) = (0, 0);
        for s in 0..set.sockets() {
            buf.clear();
            let n = set.rx(s, &mut buf, ring as usize, 0)?;
            if n == 0 {
                continue;
            }
            got += n;
            valid += n;
            for &(addr, len) in &buf {
                bytes += u64::from(len);
                if expect != Expect::Any && !frame_matches(set.frame(addr, len)?, expect) {
                    invalid += 1;
                    valid -= 1;
                }
            }
            addrs.clear();
            addrs.extend(buf.iter().map(|&(addr, _)| addr));
            // The kernel publishes what it took from the fill ring
            // lazily, so the ring may look fuller than it is and take
            // fewer than we received: those wait in the pool, and the
            // next batch tops the ring up from there, or the chunks
            // would drop out of circulation and the fill ring run dry.
            let want = (ring as usize).saturating_sub(set.in_fill(s));
            while addrs.len() < want {
                match set.alloc() {
                    Some(addr) => addrs.push(addr),
                    None => break,
                }
            }
            let lent = set.fill(s, &addrs)?;
            for &addr in &addrs[lent..] {
                set.release(addr)?;
            }
        }
        if got > 0 {
            packets += got as u64;
            // The traffic window is that of the frames we expect: a
            // stray frame long before or after must not stretch it.
            if valid > 0 {
                first.get_or_insert(now);
                last = now;
            }
            idle_since = None;
            if a.poll == Poll::Adaptive && got < ring as usize / 8 {
                // Spinning here would take half the core from a
                // generator on it (the scheduler shares it out), for
                // nothing: the ring holds milliseconds of frames.
                std::thread::sleep(RX_NAP);
            }
        } else if a.poll == Poll::Adaptive
            && now.duration_since(*idle_since.get_or_insert(now)) >= Duration::from_micros(100)
        {
            pollfds.clear();
            for s in 0..set.sockets() {
                pollfds.push(libc::pollfd {
                    fd: set.fd(s).as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            // SAFETY: `pollfds` is an array of `len` pollfd structs that
            // outlives the call; the fds belong to `set`, which stays
            // alive and untouched during the call. An error (EINTR from a
            // stop signal) only ends the wait early.
            unsafe {
                libc::poll(
                    pollfds.as_mut_ptr(),
                    pollfds.len() as libc::nfds_t,
                    PROGRESS_EVERY.as_millis() as i32,
                )
            };
        }
        let position = now.duration_since(start).as_millis() as u64;
        progress.update(now, packets, Some(invalid), position);
    }
    let duration_secs = start.elapsed().as_secs_f64();
    progress.finish();
    let mut st = XdpStats::default();
    for s in 0..set.sockets() {
        let k = xsk_stats(set.fd(s));
        st.rx_dropped += k.rx_dropped;
        st.rx_ring_full += k.rx_ring_full;
        st.rx_fill_ring_empty_descs += k.rx_fill_ring_empty_descs;
        st.rx_invalid_descs += k.rx_invalid_descs;
    }
    let xdp_mode = prog.attach_mode().to_string();
    // Sockets before the program (see tx).
    drop(set);
    drop(prog);

    let active_secs = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let wire_bytes = bytes + packets * WIRE_OVERHEAD;
    let report = RxReport {
        mode: "rx",
        iface: a.iface.clone(),
        queues,
        xdp_mode,
        zero_copy,
        expect: expect.to_string(),
        packets,
        bytes,
        wire_bytes,
        invalid,
        duration_secs,
        active_secs,
        mpps: rate(packets, active_secs, 1e6),
        gbps: rate(wire_bytes * 8, active_secs, 1e9),
        xsk_rx_dropped: st.rx_dropped,
        xsk_rx_ring_full: st.rx_ring_full,
        xsk_rx_fill_ring_empty: st.rx_fill_ring_empty_descs,
        xsk_rx_invalid_descs: st.rx_invalid_descs,
    };
    report.print(a)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::super::args::{Encap, Vary};
    use super::super::frames::testutil::spec;
    use super::*;

    #[test]
    fn checks_reject_garbage_without_panicking() {
        let good = spec(64, Vary::Port, Some(Encap::Geneve)).build(0);
        let e = Expect::Vni(0x12_3456);
        for n in 0..good.len() {
            assert!(!frame_matches(&good[..n], e), "truncated at {n}");
        }
        let mut bad = good.clone();
        bad[ETH + IPV4 + UDP] = 0x40; // Geneve version 1
        assert!(!frame_matches(&bad, e));
        let plain = spec(64, Vary::Port, None).build(0);
        assert!(!frame_matches(&plain, e));
        assert!(frame_matches(&plain, Expect::UdpDport(5001)));
        assert!(!frame_matches(&plain, Expect::UdpDport(5002)));
        assert!(frame_matches(&[], Expect::Any));
    }
}
