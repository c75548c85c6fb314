//! The daemon: from a config to running workers, and the control thread.
//!
//! [`Daemon::start`] checks everything that can be wrong before touching
//! an interface (config, interfaces present, queue counts against the
//! worker count), then loads the kernel's routes and neighbors, attaches
//! our XDP program to every port and the uplink, binds one AF_XDP socket
//! per (interface, queue) and starts one pinned worker per core.
//!
//! Queues and workers: worker `w` of `W` serves queue `q` of every
//! interface when `q % W == w`, so every worker has a socket on every
//! port and can transmit anywhere without sharing a TX ring (AF_XDP rings
//! are single-producer). Hence `W` may not exceed the smallest queue
//! count; with more cores than queues the extra cores stay idle, as a
//! NIC's RSS would leave them.
//!
//! [`Daemon::run`] is the control thread's loop: snooped ARP replies and
//! neighbor advertisements from the uplink program, route and neighbor
//! notifications from the kernel, learn events from workers, aging, and
//! the tunnels' next hops, all through the kernel's neighbor table: those
//! without a MAC are resolved, those with one are marked used every
//! refresh interval (so the kernel re-validates them by unicast probes
//! instead of letting them go stale and collecting them) and read back.
//! Each change is published as one new snapshot; workers never wait for it.
//!
//! Interfaces come and go under a running daemon (a guest destroyed,
//! recreated, its tap renamed or moved): see `links.rs`. A configured
//! interface that is not there is `missing`, waits, and is bound again
//! when it returns; the persisted state is restored whatever is missing.
//!
//! [`Daemon::shutdown`] stops the workers, closes the sockets, then
//! detaches the programs; dropping a `Daemon` does the same.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use tracing::{debug, error, info, warn};
use xvs_bpf::{AttachFlags, Mode, SnoopPoller, XdpProgram};
use xvs_config::{Config, ConfigErrors, TunnelConfig};
use xvs_dataplane::control::Control;
use xvs_dataplane::pipeline::PortCounters;
use xvs_dataplane::stats::DropCounters;
use xvs_dataplane::wire;
use xvs_io::worker::{PollMode, SocketLost, Worker, WorkerCmd, WorkerReport};
use xvs_io::xsk::{XskConfig, XskError, XskSet};
use xvs_types::{MacAddr, PortNo};

use crate::netlink::{KernelError, Monitor, NeighClient};

mod host;
mod links;
mod mcast;
mod rpc;
mod view;

pub use mcast::Membership;

/// How the daemon runs (the command line), apart from the config.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker threads.
    pub workers: usize,
    /// Core of each worker, in order; `None`: worker `i` on core `i`
    /// modulo the cores there are.
    pub cores: Option<Vec<usize>>,
    pub poll: PollMode,
    /// UMEM chunks (4 KiB) per worker, shared by its sockets (a power of
    /// two); half are lent to the sockets' fill rings, the rest carry
    /// frames in flight.
    pub umem_frames: u32,
    /// UMEM headroom in front of every received frame beyond the
    /// kernel's 256 bytes (fixed for the daemon's life: the UMEM is made
    /// once); [`Daemon::start`] raises it to what the config's longest
    /// tunnel header needs, then to where its most common one, pushed,
    /// starts a cache line ([`aligned_headroom`]).
    pub frame_headroom: u32,
    pub attach: AttachFlags,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers: 1,
            cores: None,
            poll: PollMode::default(),
            umem_frames: 16384,
            frame_headroom: 0,
            attach: AttachFlags::Auto,
        }
    }
}

/// Why the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("invalid config:\n{0}")]
    Config(ConfigErrors),
    #[error("{role} interface {iface:?} does not exist in this network namespace")]
    NoInterface { iface: String, role: &'static str },
    #[error("{role} interface {iface:?} is in {netns}, not in xvsd's ({ours})")]
    OtherNamespace {
        iface: String,
        role: &'static str,
        netns: String,
        ours: String,
    },
    #[error("interface {iface:?}: {reason}")]
    Interface { iface: String, reason: String },
    #[error("--workers {workers}: {iface} has {queues} queue(s) to serve; every worker needs one queue of every interface")]
    TooManyWorkers {
        workers: usize,
        iface: String,
        queues: u32,
    },
    #[error("options: {0}")]
    Options(String),
    #[error(transparent)]
    Bpf(#[from] xvs_bpf::Error),
    #[error(transparent)]
    Xsk(#[from] XskError),
    #[error("reading the kernel's routes and neighbors: {0}")]
    Kernel(#[from] KernelError),
    #[error("worker {id} stopped: {reason}")]
    Worker { id: usize, reason: String },
}

/// One running worker thread.
#[derive(Debug)]
struct WorkerThread {
    id: usize,
    thread: Option<JoinHandle<Result<XskSet, XskError>>>,
    report: Arc<Mutex<WorkerReport>>,
    cmds: Sender<WorkerCmd>,
}

/// An interface xvsd serves: its program and what it was set up with.
#[derive(Debug)]
struct Attached {
    prog: XdpProgram,
    no: PortNo,
    mode: Mode,
    queues: u32,
    /// The queues the config asked for (0: all).
    want: u16,
    /// Names this binding to the workers (unique for the daemon's life).
    key: u64,
    /// Uplink only: VTEP addresses (and multicast tunnels' groups) and
    /// tunnel UDP ports in its maps.
    vteps: BTreeSet<IpAddr>,
    tunnel_ports: BTreeSet<u16>,
    /// Uplink only: the groups of multicast tunnels it joined.
    groups: BTreeMap<IpAddr, Membership>,
}

/// How long the control thread waits for a worker to bind or close a
/// socket (workers look for requests between rounds, at least every
/// 20 ms when asleep).
const WORKER_REPLY: Duration = Duration::from_secs(5);

/// How long a queue whose previous socket the kernel is still releasing
/// is asked for again (it takes an RCU grace period and a work queue:
/// milliseconds).
const BUSY_WAIT: Duration = Duration::from_secs(2);

/// A running xvsd.
#[derive(Debug)]
pub struct Daemon {
    ctl: Control,
    opts: Options,
    /// By interface name.
    ifaces: BTreeMap<String, Attached>,
    /// Interfaces of the running config that are not there (yet), by
    /// name: bound when they appear.
    missing: BTreeMap<String, links::Wanted>,
    /// The next [`Attached::key`].
    next_key: u64,
    /// Sockets the workers closed because they failed.
    lost: Receiver<SocketLost>,
    /// Link changes; followed by looking interfaces up again.
    links: links::Links,
    snoop: Option<SnoopPoller>,
    monitor: Monitor,
    /// Resolves and refreshes next hops in the kernel's table.
    neigh: NeighClient,
    /// Snooped replies refused, as last logged.
    snoop_refused_logged: u64,
    workers: Vec<WorkerThread>,
    stop_workers: Arc<AtomicBool>,
    epoch: Instant,
    /// Names of port numbers, for reports.
    names: Vec<(PortNo, String)>,
    /// Sockets each worker serves under the config being applied (see
    /// [`WorkerCmd::Add`]'s `sockets`).
    planned: Vec<usize>,
    /// The core each worker is pinned to.
    cores: Vec<Option<usize>>,
    /// The control socket, and the calls it hands over.
    server: Option<(
        xvs_ctl::server::ServerHandle,
        Receiver<xvs_ctl::server::Call>,
    )>,
    /// Where committed configs are persisted (journaled).
    state: Option<crate::state::Store>,
    /// An eventfd the control socket writes when it hands over a call.
    wake: Arc<std::os::fd::OwnedFd>,
    /// Misses for external lookup providers, until `lookup_misses` takes
    /// them (the oldest go first past [`MAX_LOOKUP_MISSES`]).
    lookup_misses: std::collections::VecDeque<xvs_dataplane::control::Miss>,
    /// Sends and receives invalidations (lookup on miss); none if the
    /// port could not be bound (logged).
    invalidate: Option<std::net::UdpSocket>,
}

/// The invalidation socket: UDP [`invalidate::PORT`] on every address
/// (dual-stack where the kernel allows), non-blocking.
fn invalidate_socket() -> Option<std::net::UdpSocket> {
    use xvs_dataplane::control::invalidate;
    let s = std::net::UdpSocket::bind(("::", invalidate::PORT))
        .or_else(|_| std::net::UdpSocket::bind(("0.0.0.0", invalidate::PORT)));
    match s.and_then(|s| s.set_nonblocking(true).map(|()| s)) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(port = invalidate::PORT, "no invalidation socket (lookup on miss will not tell senders about stale entries): {e}");
            None
        }
    }
}

/// Misses kept for `lookup_misses` callers.
const MAX_LOOKUP_MISSES: usize = 4096;

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
fn outer_header_len(t: &TunnelConfig) -> u32 {
    let v6 = t.remotes.iter().any(IpAddr::is_ipv6);
    xvs_dataplane::tunnel::template::outer_header_len(t, v6) as u32
}

/// The outer header of VXLAN, or of Geneve without options, over IPv4.
const PLAIN_HEADER_LEN: u32 = (wire::ethernet::HEADER_LEN
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
        .map(outer_header_len)
        .max()
        .unwrap_or(0);
    longest.saturating_sub(xvs_io::xsk::XDP_HEADROOM as u32)
}

/// The outer header most of `config`'s tunnels push (the plain IPv4 one
/// when it has none yet: tunnels added later over the control socket
/// are usually that).
fn common_header_len(config: &Config) -> u32 {
    let mut lens: Vec<u32> = config.tunnels.iter().map(outer_header_len).collect();
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
struct Iface {
    name: String,
    no: PortNo,
    mode: Mode,
    queues: u32,
    want: u16,
}

/// The interfaces `config` names, uplink last.
fn wanted(config: &Config) -> Result<Vec<links::Wanted>, DaemonError> {
    let numbers = config.port_numbers();
    let mut wanted: Vec<(&str, Mode, u16)> = config
        .ports
        .iter()
        .map(|p| (p.name.as_str(), Mode::Port, p.queues))
        .collect();
    if let Some(u) = &config.uplink {
        wanted.push((u.iface.as_str(), Mode::Uplink, 0));
    }
    wanted
        .into_iter()
        .map(|(name, mode, want)| {
            let no = *numbers.get(name).ok_or_else(|| DaemonError::Interface {
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
fn check(w: &links::Wanted, opts: &Options) -> Result<Iface, DaemonError> {
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
fn plan(config: &Config, opts: &Options) -> Result<(Vec<Iface>, Vec<links::Wanted>), DaemonError> {
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
fn sockets_per_worker(plan: &[Iface], workers: usize) -> Vec<usize> {
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
fn umem_serves(planned: &[usize], opts: &Options) -> Result<(), DaemonError> {
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

impl Daemon {
    /// Validates `config`, sets everything up and starts the workers. On
    /// error nothing stays attached or bound.
    pub fn start(config: Config, opts: &Options) -> Result<Daemon, DaemonError> {
        let mut opts = opts.clone();
        opts.frame_headroom = aligned_headroom(
            opts.frame_headroom.max(extra_headroom(&config)),
            common_header_len(&config),
        );
        info!(
            frame_headroom = opts.frame_headroom,
            "UMEM headroom beyond the kernel's 256 bytes (encapsulated frames start on a cache line)"
        );
        let mut d = Daemon::start_empty(&opts)?;
        d.apply(config)?;
        Ok(d)
    }

    /// Like [`Daemon::start`] for a config the daemon itself persisted:
    /// an interface it names that is not there does not stop the start
    /// (it is reported missing and bound when it appears). A guest's
    /// interface may well be gone across a restart; refusing the state
    /// would cut every other guest off.
    pub fn restore(config: Config, opts: &Options) -> Result<Daemon, DaemonError> {
        let mut opts = opts.clone();
        opts.frame_headroom = aligned_headroom(
            opts.frame_headroom.max(extra_headroom(&config)),
            common_header_len(&config),
        );
        let mut d = Daemon::start_empty(&opts)?;
        d.apply_with(config, true)?;
        for name in d.missing.keys() {
            match links::elsewhere(name) {
                Some(e) => warn!(iface = %name, "configured interface missing: waiting for it \
                    (one of that name is in {}, not in xvsd's ({}))", e.theirs_text(), e.ours),
                None => warn!(iface = %name, "configured interface missing: waiting for it"),
            }
        }
        Ok(d)
    }

    /// Starts the workers with no port, the kernel's underlay loaded.
    pub fn start_empty(opts: &Options) -> Result<Daemon, DaemonError> {
        if opts.workers == 0 {
            return Err(DaemonError::Options("--workers must be at least 1".into()));
        }
        if !opts.umem_frames.is_power_of_two() || opts.umem_frames < 256 {
            return Err(DaemonError::Options(format!(
                "--umem-frames {}: a power of two, at least 256",
                opts.umem_frames
            )));
        }
        if let Some(cores) = &opts.cores {
            if cores.len() < opts.workers {
                return Err(DaemonError::Options(format!(
                    "--cores lists {} core(s) for {} worker(s)",
                    cores.len(),
                    opts.workers
                )));
            }
        }
        // Subscribe before the dump so no change falls between the two.
        let mut monitor = Monitor::new()?;
        let state = crate::netlink::dump()?;
        let neigh = NeighClient::new()?;
        monitor.set_link_names(state.links.clone());
        let epoch = Instant::now();
        let mut ctl = Control::new();
        ctl.load_kernel(&state, 0);
        info!(
            routes = state.routes.len(),
            neighbors = state.neighbors.len(),
            "underlay loaded from the kernel"
        );

        // One UMEM per worker, shared by all its sockets: a frame goes
        // from any of its ports to any other by descriptor, no copy.
        let xsk_cfg = XskConfig {
            frames: opts.umem_frames,
            rx_frames: 0,
            ring: 2048.min(opts.umem_frames / 2),
            frame_headroom: opts.frame_headroom,
        };
        let stop_workers = Arc::new(AtomicBool::new(false));
        let (lost_tx, lost) = crossbeam_channel::bounded(1024);
        let links = links::Links::new()?;
        let core_ids = core_affinity::get_core_ids().unwrap_or_default();
        let mut workers = Vec::new();
        let mut cores = Vec::new();
        for id in 0..opts.workers {
            let set = XskSet::new_anchored(xsk_cfg)?;
            let core = match &opts.cores {
                Some(c) => Some(c[id]),
                None if !core_ids.is_empty() => Some(core_ids[id % core_ids.len()].id),
                None => None,
            };
            cores.push(core);
            let report = Arc::new(Mutex::new(WorkerReport {
                id,
                ..Default::default()
            }));
            let (cmds, cmd_rx) = crossbeam_channel::bounded(64);
            let upcalls = ctl.upcall_sender();
            let worker = Worker::new(id, set, Vec::new(), ctl.handle(), Some(ctl.learn_sender()))
                .with_upcalls(upcalls)
                .with_mode(opts.poll)
                .with_epoch(epoch)
                .with_report(Arc::clone(&report))
                .with_commands(cmd_rx)
                .with_lost(lost_tx.clone());
            let stop = Arc::clone(&stop_workers);
            let thread = std::thread::Builder::new()
                .name(format!("xvs-worker-{id}"))
                .spawn(move || {
                    if let Some(core) = core {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                            warn!(worker = id, core, "could not pin the worker");
                        }
                    }
                    info!(worker = id, core = ?core, "worker running");
                    let mut worker = worker;
                    worker.run(&stop)?;
                    Ok(worker.into_set())
                })
                .map_err(|e| DaemonError::Worker {
                    id,
                    reason: format!("spawning the thread: {e}"),
                })?;
            workers.push(WorkerThread {
                id,
                thread: Some(thread),
                report,
                cmds,
            });
        }
        Ok(Daemon {
            ctl,
            opts: opts.clone(),
            ifaces: BTreeMap::new(),
            missing: BTreeMap::new(),
            next_key: 1,
            lost,
            links,
            snoop: None,
            monitor,
            neigh,
            snoop_refused_logged: 0,
            workers,
            stop_workers,
            epoch,
            names: Vec::new(),
            planned: Vec::new(),
            cores,
            server: None,
            state: None,
            wake: Arc::new(eventfd()?),
            lookup_misses: std::collections::VecDeque::new(),
            invalidate: invalidate_socket(),
        })
    }

    /// Serves the control socket at `path` (mode 0660, group `group`):
    /// calls are answered by [`Daemon::run`]'s loop.
    pub fn listen(&mut self, path: &Path, group: Option<u32>) -> Result<(), DaemonError> {
        let (tx, rx) = crossbeam_channel::bounded(64);
        let wake = Arc::clone(&self.wake);
        let waker = xvs_ctl::server::Waker(Arc::new(move || {
            use std::os::fd::AsRawFd;
            let one = 1u64.to_ne_bytes();
            // SAFETY: writes 8 bytes from `one` to the eventfd the
            // closure keeps alive.
            unsafe { libc::write(wake.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        }));
        let handle = xvs_ctl::server::Server::bind(path, group)
            .map(|s| {
                s.with_options(xvs_ctl::server::ServerOptions {
                    waker: Some(waker),
                    ..Default::default()
                })
            })
            .and_then(|s| s.spawn(tx))
            .map_err(|e| DaemonError::Options(e.to_string()))?;
        info!(socket = %path.display(), "control socket listening");
        self.server = Some((handle, rx));
        Ok(())
    }

    /// Sleeps until a snooped frame, a kernel notification or a control
    /// call arrives, or `ms` milliseconds pass (the bound on how late
    /// learn events and aging are handled).
    fn sleep(&self, ms: i32) {
        use std::os::fd::AsRawFd;
        let mut fds = vec![libc::pollfd {
            fd: self.wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        fds.push(libc::pollfd {
            fd: self.monitor.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        fds.push(libc::pollfd {
            fd: self.links.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        if let Some(p) = &self.snoop {
            fds.push(libc::pollfd {
                fd: p.fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: `fds` is a valid array of `len` pollfds for the call; the
        // fds are owned by `self`, which outlives it. A failure (EINTR from
        // the stop signal) just ends the wait early.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `buf` from our own eventfd
        // (non-blocking: EAGAIN when nothing was signalled).
        unsafe { libc::read(self.wake.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    }

    /// Persists every committed transaction to `path`.
    pub fn persist_to(&mut self, path: &Path) {
        self.state = Some(crate::state::Store::new(path));
    }

    /// Makes `config` the running configuration, or changes nothing:
    /// validates it whole, checks its interfaces, attaches programs and
    /// binds sockets for new interfaces (workers keep forwarding on the
    /// others meanwhile), publishes the new snapshot in one swap, then
    /// closes what the old config had and the new one has not. An
    /// interface the running config does not name yet must be there (a
    /// typo is refused); one it names may be missing (it waits).
    pub fn apply(&mut self, config: Config) -> Result<(), DaemonError> {
        self.apply_with(config, false)
    }

    /// [`Self::apply`]; `lenient`: any interface may be missing (the
    /// persisted state, a rollback). On failure the previous running
    /// state is restored exactly (interfaces, sockets, uplink maps,
    /// snapshot) by applying the previous config again.
    fn apply_with(&mut self, config: Config, lenient: bool) -> Result<(), DaemonError> {
        // Validated here, once: the control plane takes it as it is.
        let mut valid = config.validated().map_err(DaemonError::Config)?;
        let config = valid.config();
        host::check(config).map_err(DaemonError::Config)?;
        let (plan, absent) = plan(config, &self.opts)?;
        self.planned = sockets_per_worker(&plan, self.workers.len());
        umem_serves(&self.planned, &self.opts)?;
        if !lenient {
            if let Some(w) = absent
                .iter()
                .find(|w| !self.ifaces.contains_key(&w.name) && !self.missing.contains_key(&w.name))
            {
                // The error names it the way `check` does.
                check(w, &self.opts)?;
            }
        }
        if let Some(u) = &config.uplink {
            if u.mac.is_none() && !absent.iter().any(|w| w.name == u.iface) {
                let mac = interface_mac(&u.iface)?;
                valid.set_uplink_mac(mac).map_err(DaemonError::Config)?;
            }
        }
        let config = valid.config();
        let need = extra_headroom(config);
        if need > self.opts.frame_headroom {
            return Err(DaemonError::Options(format!(
                "the longest tunnel header needs {need} bytes of UMEM headroom beyond the \
                 kernel's 256; start xvsd with --frame-headroom {need} or more"
            )));
        }
        self.links.fault.begin(lenient);

        // What goes, what comes: an interface whose role, number or
        // queues changed is closed and set up again.
        let same = |a: &Attached, i: &Iface| {
            a.mode == i.mode && a.no == i.no && a.queues == i.queues && a.want == i.want
        };
        let gone: Vec<String> = self
            .ifaces
            .iter()
            .filter(|(name, a)| !plan.iter().any(|i| &i.name == *name && same(a, i)))
            .map(|(name, _)| name.clone())
            .collect();
        let new: Vec<&Iface> = plan
            .iter()
            .filter(|i| !self.ifaces.get(&i.name).is_some_and(|a| same(a, i)))
            .collect();
        // A changed interface must be closed before it is set up again.
        let changed: Vec<String> = gone
            .iter()
            .filter(|g| new.iter().any(|i| &i.name == *g))
            .cloned()
            .collect();
        for name in &changed {
            self.close(name);
        }

        let mut added: Vec<String> = Vec::new();
        let result = (|| {
            for i in &new {
                self.open(i)?;
                added.push(i.name.clone());
            }
            self.links.fault.step("uplink maps")?;
            self.sync_uplink_maps(config)?;
            self.links.fault.step("snapshot")?;
            if self.ctl.config() != config {
                self.ctl.underlay.uplink_mac = config.uplink.as_ref().and_then(|u| u.mac);
                self.ctl
                    .apply_valid(valid.clone())
                    .map_err(DaemonError::Config)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            for name in &added {
                self.close(name);
            }
            if !lenient {
                // Whatever was closed or changed on the way goes back to
                // what the running config says.
                let previous = self.ctl.config().clone();
                if let Err(back) = self.apply_with(previous, true) {
                    error!("restoring the running config after a failed change: {back}");
                }
            }
            return Err(e);
        }
        for name in gone.iter().filter(|g| !changed.contains(g)) {
            self.close(name);
        }
        self.missing = absent.into_iter().map(|w| (w.name.clone(), w)).collect();
        let names = config.port_numbers();
        self.names = names.into_iter().map(|(n, p)| (p, n.to_owned())).collect();
        Ok(())
    }

    /// Attaches the program to `i` and has the workers bind its queues.
    fn open(&mut self, i: &Iface) -> Result<(), DaemonError> {
        self.links.fault.step("attach")?;
        let prog = XdpProgram::attach(&i.name, i.mode, self.opts.attach)?;
        if let Some(id) = prog.replaced_stale() {
            warn!(iface = %i.name, id, "removed a stale xvs XDP program (a previous xvsd did not exit cleanly)");
        }
        info!(iface = %i.name, program = ?i.mode, mode = %prog.attach_mode(), queues = i.queues, "XDP attached");
        let snoop = match i.mode {
            Mode::Uplink => Some(prog.snoop_poller()?),
            Mode::Port => None,
        };
        let key = self.next_key;
        self.next_key += 1;
        self.ifaces.insert(
            i.name.clone(),
            Attached {
                prog,
                no: i.no,
                mode: i.mode,
                queues: i.queues,
                want: i.want,
                key,
                vteps: BTreeSet::new(),
                tunnel_ports: BTreeSet::new(),
                groups: BTreeMap::new(),
            },
        );
        for q in 0..i.queues {
            let w = q as usize % self.workers.len();
            let answer = match self.links.fault.step("bind") {
                Ok(()) => self.bind_queue(w, &i.name, i.no, q, key),
                Err(e) => Err(e.to_string()),
            };
            if let Err(reason) = answer {
                self.close(&i.name);
                return Err(DaemonError::Interface {
                    iface: i.name.clone(),
                    reason: format!("binding queue {q} (worker {w}): {reason}"),
                });
            }
            debug!(iface = %i.name, queue = q, worker = w, "socket bound");
        }
        if snoop.is_some() {
            self.snoop = snoop;
        }
        Ok(())
    }

    /// Has worker `w` bind queue `q` of `name` (attached) as port `no`,
    /// binding `key`. The queue's previous socket, closed a moment ago
    /// (a port deleted and added again, an interface back), may still be
    /// being released by the kernel: asked again for a bounded time.
    fn bind_queue(&self, w: usize, name: &str, no: PortNo, q: u32, key: u64) -> Result<(), String> {
        let deadline = Instant::now() + BUSY_WAIT;
        loop {
            let reg = self.ifaces[name]
                .prog
                .registrar()
                .map_err(|e| e.to_string())?;
            let (reply, done) = crossbeam_channel::bounded(1);
            self.workers[w]
                .cmds
                .send(WorkerCmd::Add {
                    no,
                    queue: q,
                    key,
                    reg,
                    sockets: self.planned.get(w).copied().unwrap_or(0),
                    reply,
                })
                .map_err(|_| "the worker is gone".to_string())?;
            match done.recv_timeout(WORKER_REPLY) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) if e.busy && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(Err(e)) => return Err(e.reason),
                Err(_) => return Err("no answer from the worker".into()),
            }
        }
    }

    /// Has the workers close `name`'s sockets and returns its program,
    /// which detaches when dropped: callers drop it at once; the
    /// lifecycle ([`links`]) may keep it to detach it in the namespace
    /// the interface went to.
    fn close(&mut self, name: &str) -> Option<XdpProgram> {
        let a = self.ifaces.remove(name)?;
        for w in &self.workers {
            let (reply, done) = crossbeam_channel::bounded(1);
            if w.cmds.send(WorkerCmd::Remove { key: a.key, reply }).is_ok() {
                match done.recv_timeout(WORKER_REPLY) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => warn!(iface = name, worker = w.id, "closing sockets: {e}"),
                    Err(_) => warn!(iface = name, worker = w.id, "no answer closing sockets"),
                }
            }
        }
        if a.mode == Mode::Uplink {
            self.snoop = None;
        }
        info!(iface = name, "XDP detached");
        Some(a.prog)
    }

    /// Makes the uplink program's VTEP and tunnel-port maps, and the
    /// uplink's group memberships, match `config`. Groups are joined
    /// before anything else changes, so a failed join leaves all as it was.
    fn sync_uplink_maps(&mut self, config: &Config) -> Result<(), DaemonError> {
        let Some(u) = &config.uplink else {
            return Ok(());
        };
        let Some(a) = self.ifaces.get_mut(&u.iface) else {
            return Ok(());
        };
        let groups: BTreeSet<IpAddr> = config.tunnels.iter().filter_map(|t| t.group()).collect();
        let mut joined = Vec::new();
        for g in groups.iter().filter(|g| !a.groups.contains_key(g)) {
            let ifindex = a.prog.ifindex() as u32;
            let m = Membership::join(*g, ifindex).map_err(|e| DaemonError::Interface {
                iface: u.iface.clone(),
                reason: format!("joining multicast group {g}: {e}"),
            })?;
            info!(iface = %u.iface, group = %g, "joined multicast group");
            joined.push(m);
        }
        a.groups.retain(|g, _| {
            let keep = groups.contains(g);
            if !keep {
                info!(group = %g, "left multicast group");
            }
            keep
        });
        a.groups.extend(joined.into_iter().map(|m| (m.group(), m)));
        // Packets to a group are terminated like those to a local VTEP.
        let vteps: BTreeSet<IpAddr> = u.local_ips.iter().copied().chain(groups).collect();
        let ports: BTreeSet<u16> = config.tunnels.iter().map(|t| t.udp_port()).collect();
        for ip in vteps.difference(&a.vteps) {
            a.prog.add_vtep(*ip)?;
        }
        for ip in a.vteps.difference(&vteps) {
            a.prog.remove_vtep(*ip)?;
        }
        for p in ports.difference(&a.tunnel_ports) {
            a.prog.add_tunnel_port(*p)?;
        }
        for p in a.tunnel_ports.difference(&ports) {
            a.prog.remove_tunnel_port(*p)?;
        }
        a.vteps = vteps;
        a.tunnel_ports = ports;
        Ok(())
    }

    /// The control plane (tests and the control socket read it).
    pub fn control(&mut self) -> &mut Control {
        &mut self.ctl
    }

    /// Nanoseconds since the daemon started (the clock of learn events,
    /// aging and policers).
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// The control loop; returns when `stop` is set (a signal) or a
    /// worker failed.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), DaemonError> {
        let mut last_tick = 0;
        let mut snooped = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            self.step(&mut snooped, &mut last_tick)?;
        }
        Ok(())
    }

    /// One round of control work, waiting up to 10 ms for snooped frames.
    fn step(
        &mut self,
        snooped: &mut Vec<xvs_bpf::SnoopedFrame>,
        last_tick: &mut u64,
    ) -> Result<(), DaemonError> {
        for w in &mut self.workers {
            if let Some(t) = w.thread.take_if(|t| t.is_finished()) {
                let reason = match t.join() {
                    Ok(Ok(_)) => "stopped early".to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "panicked".to_string(),
                };
                return Err(DaemonError::Worker { id: w.id, reason });
            }
        }
        self.sleep(10);
        if let Some(p) = &mut self.snoop {
            snooped.clear();
            match p.poll(Duration::ZERO, snooped) {
                Ok(_) => {}
                // A signal (the stop request) woke the wait.
                Err(xvs_bpf::Error::Poll { source, .. })
                    if source.kind() == libbpf_rs::ErrorKind::Interrupted => {}
                Err(e) => warn!("snoop ring: {e}"),
            }
            for f in snooped.iter() {
                let now = self.now();
                // Confirmations and refusals are counted, not logged: a
                // flood would be one line per frame.
                use xvs_dataplane::tables::neigh::NeighChange;
                if let Some(change @ (NeighChange::New | NeighChange::MacChanged { .. })) =
                    self.ctl.snoop(f.frame(), now)
                {
                    debug!(?change, "snooped neighbor");
                }
            }
        }
        let calls: Vec<_> = self
            .server
            .as_ref()
            .map(|(_, rx)| rx.try_iter().collect())
            .unwrap_or_default();
        for call in calls {
            self.handle(call);
        }
        self.lifecycle();
        let now = self.now();
        match self.monitor.poll() {
            Ok(events) if !events.is_empty() => {
                debug!(n = events.len(), "kernel events");
                self.ctl.apply_kernel_events(&events, now);
            }
            Ok(_) => {}
            Err(e) => warn!("kernel notifications: {e}"),
        }
        self.ctl.process_learning(now);
        let work = self.ctl.process_upcalls(now);
        for m in work.misses {
            if self.lookup_misses.len() >= MAX_LOOKUP_MISSES {
                self.lookup_misses.pop_front();
            }
            self.lookup_misses.push_back(m);
        }
        self.invalidations(&work.invalidations);
        if now - *last_tick >= 1_000_000_000 {
            *last_tick = now;
            self.ctl.tick(now);
            self.log_snoop_refusals();
        }
        for (ip, ifindex) in self.ctl.due_resolutions(now) {
            debug!(%ip, ifindex, "asking the kernel to resolve the next hop");
            self.use_next_hop(ip, ifindex, now);
        }
        for (ip, ifindex) in self.ctl.due_refreshes(now) {
            self.use_next_hop(ip, ifindex, now);
        }
        Ok(())
    }

    /// Marks next hop `ip` used in the kernel's table (which creates and
    /// resolves it if missing, probes it if stale, re-validates it before
    /// it goes stale) and takes what the table holds now: a transition
    /// such as STALE to DELAY, usable all along, is never notified.
    fn use_next_hop(&mut self, ip: IpAddr, ifindex: u32, now: u64) {
        if let Err(e) = self.neigh.mark_used(ip, ifindex) {
            warn!(%ip, ifindex, "marking the next hop used in the kernel's table: {e}");
            return;
        }
        match self.neigh.get(ip, ifindex) {
            Ok(found) => self.ctl.kernel_neigh(ip, found, now),
            Err(e) => warn!(%ip, ifindex, "reading the next hop from the kernel's table: {e}"),
        }
    }

    /// Says how many snooped replies were refused since it last said so
    /// (at most once per tick): a flood of unsolicited or spoofed replies
    /// on the underlay is worth knowing about, not one line per frame.
    fn log_snoop_refusals(&mut self) {
        let c = self.ctl.snoop_counters();
        if c.refused() == self.snoop_refused_logged {
            return;
        }
        self.snoop_refused_logged = c.refused();
        info!(
            not_for_us = c.not_for_us,
            off_subnet = c.off_subnet,
            unsolicited = c.unsolicited,
            conflicting = c.conflicting,
            ignored = c.ignored,
            "snooped neighbor replies refused (totals)"
        );
    }

    /// Sends `out` (rate-limited by the control plane) and takes the
    /// invalidations other VTEPs sent us (a bounded number per round).
    fn invalidations(
        &mut self,
        out: &[(IpAddr, xvs_dataplane::control::invalidate::Invalidation)],
    ) {
        use xvs_dataplane::control::invalidate;
        let Some(sock) = &self.invalidate else { return };
        for (vtep, inv) in out {
            match sock.send_to(&inv.encode(), (*vtep, invalidate::PORT)) {
                Ok(_) => {
                    info!(%vtep, mac = %inv.mac, vni = inv.vni, "told the VTEP its entry is stale")
                }
                Err(e) => debug!(%vtep, "sending an invalidation: {e}"),
            }
        }
        let mut buf = [0u8; 64];
        for _ in 0..64 {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                break;
            };
            let ip = match from.ip() {
                IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
                v4 => v4,
            };
            if let Some((bridge, mac)) = self.ctl.invalidation_received(ip, &buf[..n]) {
                info!(%bridge, %mac, from = %ip, "stale entry dropped on invalidation");
            }
        }
    }

    /// The latest report of every worker.
    pub fn reports(&self) -> Vec<WorkerReport> {
        self.workers
            .iter()
            .map(|w| w.report.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    /// Logs every port's counters, all workers together.
    pub fn log_counters(&self) {
        let reports = self.reports();
        let mut drops = DropCounters::default();
        for r in &reports {
            drops.merge(&r.drops);
            info!(
                worker = r.id,
                rx = r.counters.rx_frames,
                tx = r.counters.tx_frames,
                other_port = r.counters.tx_other_port,
                busy_ms = r.load.busy_ns / 1_000_000,
                sleeps = r.load.sleeps,
                "worker"
            );
        }
        for (no, name) in &self.names {
            let mut c = PortCounters::default();
            for r in &reports {
                if let Some(p) = r.ports.get(usize::from(*no)) {
                    c.merge(p);
                }
            }
            info!(
                port = %name,
                rx = c.rx_packets,
                tx = c.tx_packets,
                dropped = c.drops.total(),
                "port"
            );
        }
        let reasons: Vec<String> = drops.nonzero().map(|(n, c)| format!("{n}={c}")).collect();
        if !reasons.is_empty() {
            info!(drops = %reasons.join(" "), "drops by reason");
        }
    }

    /// Stops the workers, closes their sockets, detaches the programs.
    pub fn shutdown(mut self) -> Result<(), DaemonError> {
        self.stop_threads()
    }

    fn stop_threads(&mut self) -> Result<(), DaemonError> {
        if let Some((handle, _)) = self.server.take() {
            handle.shutdown();
        }
        self.stop_workers.store(true, Ordering::Relaxed);
        let mut first_err = None;
        for w in &mut self.workers {
            let Some(t) = w.thread.take() else { continue };
            match t.join() {
                // The sockets close here, before the programs detach.
                Ok(Ok(set)) => drop(set),
                Ok(Err(e)) => {
                    error!(worker = w.id, "worker failed: {e}");
                    first_err.get_or_insert(DaemonError::Worker {
                        id: w.id,
                        reason: e.to_string(),
                    });
                }
                Err(_) => {
                    first_err.get_or_insert(DaemonError::Worker {
                        id: w.id,
                        reason: "panicked".into(),
                    });
                }
            }
        }
        self.snoop = None;
        // The sockets closed with the workers' sets; now detach
        // (XdpProgram's drop).
        self.ifaces.clear();
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.stop_threads();
    }
}

fn eventfd() -> Result<std::os::fd::OwnedFd, DaemonError> {
    use std::os::fd::FromRawFd;
    // SAFETY: eventfd has no memory-safety preconditions.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(DaemonError::Options(format!(
            "eventfd: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
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
        c.tunnels = vec![tunnel("192.0.2.1", 1)];
        assert_eq!(extra_headroom(&c), 0, "110 bytes fit");
        // 14 + 40 + 16 + 4 * 60 = 310: 54 more.
        c.tunnels = vec![tunnel("2001:db8::1", 4)];
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
            tunnel("2001:db8::1", 0),
            tunnel("192.0.2.1", 0),
            tunnel("192.0.2.2", 0),
        ];
        assert_eq!(common_header_len(&c), 50, "two of three over IPv4");
        c.tunnels.truncate(1);
        assert_eq!(common_header_len(&c), 70);
    }
}
