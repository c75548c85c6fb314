//! Planning a start or an apply before anything is touched: which
//! interfaces a config names and whether each can be served (present,
//! in this namespace, queue counts against the workers), how many sockets
//! each worker binds and whether the UMEM holds them, and the headroom in
//! front of every frame that lets the longest outer header be pushed in
//! place.

use std::net::IpAddr;
use std::path::Path;

use tracing::warn;
use xvs_bpf::Mode;
use xvs_config::{Config, TunnelConfig};
use xvs_dataplane::wire;
use xvs_types::{MacAddr, PortNo};

use super::{links, DaemonError, Options};

/// The receive queues the kernel gives `iface` (`rx-N` in sysfs); 1 when
/// sysfs does not say.
pub fn queue_count(iface: &str) -> u32 {
    let dir = Path::new("/sys/class/net").join(iface).join("queues");
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1)
        .max(1)
}

/// The MAC address of `iface`, from sysfs.
pub fn interface_mac(iface: &str) -> Result<MacAddr, DaemonError> {
    let path = Path::new("/sys/class/net").join(iface).join("address");
    let text = std::fs::read_to_string(&path).map_err(|e| DaemonError::Interface {
        iface: iface.into(),
        reason: format!("reading {}: {e}", path.display()),
    })?;
    text.trim().parse().map_err(|e| DaemonError::Interface {
        iface: iface.into(),
        reason: format!("MAC {:?}: {e}", text.trim()),
    })
}

/// The outer header tunnel `t` pushes: over IPv6 if any remote is (its
/// longest).
pub(super) fn outer_header_len(t: &TunnelConfig) -> u32 {
    let v6 = t.remotes.iter().any(IpAddr::is_ipv6);
    let encap = xvs_dataplane::control::tunnel_encap(t);
    xvs_dataplane::tunnel::template::outer_header_len(&encap, v6) as u32
}

/// The outer header of VXLAN, or of Geneve without options, over IPv4.
pub(super) const PLAIN_HEADER_LEN: u32 = (wire::ethernet::HEADER_LEN
    + wire::ipv4::HEADER_LEN
    + wire::udp::HEADER_LEN
    + wire::vxlan::HEADER_LEN) as u32;

/// UMEM headroom `config` needs beyond the kernel's 256 bytes in front of
/// every received frame, so that its longest outer header is pushed in
/// place (a Geneve header with many options over IPv6 exceeds 256).
pub fn extra_headroom(config: &Config) -> u32 {
    let longest = config
        .tunnels
        .iter()
        .map(|t| outer_header_len(t))
        .max()
        .unwrap_or(0);
    longest.saturating_sub(xvs_io::xsk::XDP_HEADROOM as u32)
}

/// The outer header most of `config`'s tunnels push (the plain IPv4 one
/// when it has none yet: tunnels added later over the control socket
/// are usually that).
pub(super) fn common_header_len(config: &Config) -> u32 {
    let mut lens: Vec<u32> = config.tunnels.iter().map(|t| outer_header_len(t)).collect();
    lens.sort_unstable();
    lens.chunk_by(|a, b| a == b)
        .max_by_key(|run| run.len())
        .map_or(PLAIN_HEADER_LEN, |run| run[0])
}

/// The smallest UMEM headroom of at least `min` bytes (beyond the
/// kernel's 256) at which a received frame, once an outer header of
/// `header_len` bytes is pushed in front of it, starts on a 64-byte cache
/// line.
///
/// Why: the kernel copies every transmitted frame in copy mode (and a
/// NIC reads it by DMA in zero-copy mode). From a frame starting 14 bytes
/// into a line (256 - 50 with no extra headroom), the copy ran 6% slower
/// per packet than from an aligned start, and the pushed header took a
/// line of its own: A/B on VXLAN encap, three alternating runs each,
/// 1400 B 3,540-3,655 against 3,343-3,419 cycles per packet, 64 B
/// 2,279-2,338 against 2,182-2,197. Decapsulated frames start where the
/// inner frame was, off a line either way (1400 B decap measured the
/// same); received tunnel packets now start off a line, which the
/// worker's prefetch covers (`prefetch_frame`).
pub fn aligned_headroom(min: u32, header_len: u32) -> u32 {
    let kernel = xvs_io::xsk::XDP_HEADROOM as u32;
    // (kernel + h - header_len) % 64 == 0  <=>  h = header_len - kernel (mod 64)
    let want = (header_len % 64 + 64 - kernel % 64) % 64;
    min + (want + 64 - min % 64) % 64
}

/// An interface to serve: its name, port number, program mode, queues.
pub(super) struct Iface {
    pub(super) name: String,
    pub(super) no: PortNo,
    pub(super) mode: Mode,
    pub(super) queues: u32,
    pub(super) want: u16,
}

/// The interfaces `config` names, uplink last.
pub(super) fn wanted(config: &Config) -> Result<Vec<links::Wanted>, DaemonError> {
    // Each object's own number: a validated config has them all, and a
    // map of every name would cost each transaction a walk and a hash per
    // port and tunnel.
    // vhost-user ports are sockets, not interfaces (`vhost.rs`).
    let mut wanted: Vec<(&str, Option<PortNo>, Mode, u16)> = config
        .ports
        .iter()
        .filter(|p| p.kind.is_interface())
        .map(|p| (p.name.as_str(), p.number, Mode::Port, p.queues))
        .collect();
    if let Some(u) = &config.uplink {
        wanted.push((u.iface.as_str(), u.number, Mode::Uplink, 0));
    }
    wanted
        .into_iter()
        .map(|(name, no, mode, want)| {
            let no = no.ok_or_else(|| DaemonError::Interface {
                iface: name.into(),
                reason: "no port number (a config bug)".into(),
            })?;
            Ok(links::Wanted {
                name: name.into(),
                no,
                mode,
                want,
            })
        })
        .collect()
}

/// Checks an interface that is there against the kernel and the worker
/// count: what to attach and bind.
pub(super) fn check(w: &links::Wanted, opts: &Options) -> Result<Iface, DaemonError> {
    let name = w.name.as_str();
    if xvs_bpf::ifindex(name).is_err() {
        let role = match w.mode {
            Mode::Port => "port",
            Mode::Uplink => "uplink",
        };
        return Err(match links::elsewhere(name) {
            Some(e) => DaemonError::OtherNamespace {
                iface: name.into(),
                role,
                netns: e.theirs_text(),
                ours: e.ours,
            },
            None => DaemonError::NoInterface {
                iface: name.into(),
                role,
            },
        });
    }
    let have = queue_count(name);
    let queues = match u32::from(w.want) {
        0 => have,
        n if n > have => {
            return Err(DaemonError::Interface {
                iface: name.into(),
                reason: format!("queues = {n} but the device has {have}"),
            })
        }
        n => {
            warn!(
                iface = name,
                bound = n,
                device = have,
                "not every queue is bound: frames the device puts on the others are dropped"
            );
            n
        }
    };
    if (queues as usize) < opts.workers {
        return Err(DaemonError::TooManyWorkers {
            workers: opts.workers,
            iface: name.into(),
            queues,
        });
    }
    Ok(Iface {
        name: name.into(),
        no: w.no,
        mode: w.mode,
        queues,
        want: w.want,
    })
}

/// Checks the interfaces of `config` against the kernel and the worker
/// count: those there to attach and bind (uplink last), and those that
/// are not.
pub(super) fn plan(
    config: &Config,
    opts: &Options,
) -> Result<(Vec<Iface>, Vec<links::Wanted>), DaemonError> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for w in wanted(config)? {
        if xvs_bpf::ifindex(&w.name).is_ok() {
            present.push(check(&w, opts)?);
        } else {
            absent.push(w);
        }
    }
    Ok((present, absent))
}

/// Sockets each of `workers` workers serves for `plan` (queue `q` of
/// every interface goes to worker `q % workers`, as [`Daemon::open`] binds).
pub(super) fn sockets_per_worker(plan: &[Iface], workers: usize) -> Vec<usize> {
    let workers = workers.max(1);
    let mut n = vec![0; workers];
    for i in plan {
        for q in 0..i.queues as usize {
            n[q % workers] += 1;
        }
    }
    n
}

/// Refuses a plan whose sockets a worker's UMEM cannot serve: each fill
/// ring must get at least a batch of chunks from the half of the UMEM the
/// fill rings share (the other half carries frames in flight and flood
/// replicas; see the worker's `rebalance`).
pub(super) fn umem_serves(planned: &[usize], opts: &Options) -> Result<(), DaemonError> {
    let frames = opts.umem_frames as usize;
    let min = xvs_io::worker::BATCH;
    match planned
        .iter()
        .enumerate()
        .find(|&(_, &n)| n > 0 && frames / 2 / n < min)
    {
        Some((w, &n)) => Err(DaemonError::Options(format!(
            "worker {w} would serve {n} AF_XDP sockets: --umem-frames {frames} leaves each \
             fill ring {} chunks, fewer than a batch ({min}), once half the UMEM is kept for \
             frames in flight and flood replicas; start xvsd with --umem-frames {} or more \
             (or more --workers)",
            frames / 2 / n,
            (2 * min * n).next_power_of_two()
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvs_config::{GeneveOptConfig, TunnelKind};

    fn tunnel(remote: &str, opts: usize) -> TunnelConfig {
        let mut t = TunnelConfig::new(
            "t",
            "br0",
            TunnelKind::Geneve,
            1,
            vec![remote.parse().expect("address")],
        );
        t.geneve_opts = (0..opts)
            .map(|_| GeneveOptConfig {
                class: 1,
                typ: 1,
                data: vec![0; 56],
            })
            .collect();
        t
    }

    #[test]
    fn a_umem_too_small_for_the_sockets_is_refused_with_what_would_do() {
        let iface = |name: &str, queues| Iface {
            name: name.into(),
            no: 1,
            mode: Mode::Port,
            queues,
            want: 1,
        };
        let plan: Vec<Iface> = (0..33).map(|i| iface(&format!("p{i}"), 1)).collect();
        assert_eq!(sockets_per_worker(&plan, 1), [33]);
        assert_eq!(sockets_per_worker(&[iface("p", 3)], 2), [2, 1]);
        let opts = |umem_frames| Options {
            umem_frames,
            ..Options::default()
        };
        assert!(umem_serves(&[33], &opts(16384)).is_ok());
        let e = umem_serves(&[0, 33], &opts(1024)).expect_err("15 chunks per fill ring");
        let e = e.to_string();
        assert!(
            e.contains("worker 1 would serve 33") && e.contains("--umem-frames 8192"),
            "{e}"
        );
    }

    #[test]
    fn headroom_grows_only_past_the_kernels_256_bytes() {
        let mut c = Config::default();
        assert_eq!(extra_headroom(&c), 0);
        c.tunnels = vec![tunnel("192.0.2.1", 1).into()];
        assert_eq!(extra_headroom(&c), 0, "110 bytes fit");
        // 14 + 40 + 16 + 4 * 60 = 310: 54 more.
        c.tunnels = vec![tunnel("2001:db8::1", 4).into()];
        assert_eq!(extra_headroom(&c), 54);
    }

    #[test]
    fn headroom_puts_the_common_outer_header_on_a_line_start() {
        let kernel = xvs_io::xsk::XDP_HEADROOM as u32;
        for min in [0, 1, 50, 54, 63, 64, 200] {
            for len in [50, 70, 110, 310] {
                let h = aligned_headroom(min, len);
                assert!(h >= min && h < min + 64, "min {min} len {len}: {h}");
                assert_eq!((kernel + h - len) % 64, 0, "min {min} len {len}: {h}");
            }
        }
        assert_eq!(aligned_headroom(0, 50), 50);
        let mut c = Config::default();
        assert_eq!(common_header_len(&c), 50, "no tunnel yet: plain IPv4");
        c.tunnels = vec![
            tunnel("2001:db8::1", 0).into(),
            tunnel("192.0.2.1", 0).into(),
            tunnel("192.0.2.2", 0).into(),
        ];
        assert_eq!(common_header_len(&c), 50, "two of three over IPv4");
        c.tunnels.truncate(1);
        assert_eq!(common_header_len(&c), 70);
    }
}
