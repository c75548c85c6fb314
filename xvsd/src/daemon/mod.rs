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
//!
//! Parts: this file holds the daemon, its start and the control loop;
//! `plan.rs` what is checked before anything is touched (interfaces,
//! queues, sockets per worker, UMEM headroom); `apply.rs` a config made
//! the running one or nothing changed; `links.rs` interfaces that come
//! and go; `rpc.rs` the control socket's calls and `view.rs` their rows
//! from live tables; `host.rs` what a config may not ask of this host;
//! `mcast.rs` multicast group membership; `workers.rs` a worker built
//! and started on its thread; `takeover.rs` the upgrade that drops
//! nothing.

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
use xvs_config::{Config, ConfigErrors};
use xvs_dataplane::control::kernel::{KernelNeigh, NeighLookup};
use xvs_dataplane::control::Control;
use xvs_dataplane::pipeline::PortCounters;
use xvs_dataplane::stats::DropCounters;
use xvs_io::worker::{PollMode, SocketLost, WorkerCmd, WorkerReport};
use xvs_io::xsk::{XskConfig, XskError, XskSet};
use xvs_types::PortNo;

use crate::fastpath::{FastPath, FastPathError};
use crate::netlink::{KernelError, Monitor, NeighClient};

mod apply;
mod capture;
mod fastpath;
mod host;
mod links;
mod mcast;
mod plan;
mod rpc;
mod takeover;
mod tap;
mod vhost;
mod view;
mod workers;

use plan::common_header_len;
pub use plan::{aligned_headroom, extra_headroom, interface_mac, queue_count};

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
    /// Guest ports through the GSO-preserving fast path ([`FastPath`]):
    /// a TC program on each, no XDP program, misses to the workers
    /// through the miss pair.
    pub fastpath: bool,
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
            fastpath: false,
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
    #[error("the fast path: {0}")]
    FastPath(#[from] FastPathError),
    #[error("takeover: {0}")]
    Takeover(String),
}

/// One running worker thread.
#[derive(Debug)]
struct WorkerThread {
    id: usize,
    thread: Option<JoinHandle<Result<XskSet, XskError>>>,
    report: Arc<Mutex<WorkerReport>>,
    cmds: Sender<WorkerCmd>,
    /// Where the worker copies what a capture takes.
    tap: Arc<xvs_io::worker::Tap>,
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
    /// Sockets the workers closed because they failed, and where the
    /// workers say so.
    lost: Receiver<SocketLost>,
    lost_tx: Sender<SocketLost>,
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
    /// Sockets each worker serves under the config being applied (see
    /// [`WorkerCmd::Add`]'s `sockets`).
    planned: Vec<usize>,
    /// The core each worker is pinned to.
    cores: Vec<Option<usize>>,
    /// The control socket, when it serves.
    server: Option<xvs_ctl::server::ServerHandle>,
    /// The metrics endpoint, when it serves.
    metrics: Option<crate::metrics::MetricsServer>,
    /// The calls the control socket and the metrics endpoint hand over,
    /// answered by [`Daemon::run`]'s loop.
    calls: (
        Sender<xvs_ctl::server::Call>,
        Receiver<xvs_ctl::server::Call>,
    ),
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
    /// The GSO-preserving fast path (`--fastpath`).
    fastpath: Option<FastPath>,
    /// vhost-user ports, by port name.
    vhost: BTreeMap<String, vhost::VhostAttached>,
    /// The capture running (`xvsctl capture`), and the last one's id.
    capture: Option<capture::Capture>,
    next_capture: u64,
    /// Taking over a running daemon (`takeover.rs`): the sockets its
    /// config needs, to be claimed from the handed-over sets.
    takeover: Option<Vec<takeover::Pending>>,
    /// This daemon handed its sockets over: it exits without touching
    /// them or the programs.
    handed_over: bool,
    /// Why it must stop although the handoff did not complete.
    handoff_lost: Option<String>,
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

/// Why [`Daemon::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// `stop` was set (SIGINT, SIGTERM).
    Stop,
    /// `reload` was set (SIGHUP): the config file is to be read again.
    Reload,
    /// The sockets went to a new daemon (`takeover`): exit now, touching
    /// nothing.
    HandedOver,
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
        d.ctl.valid().prepare();
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
        // The whole validation ran: what the next transaction is checked
        // against is built now, not on its time.
        d.ctl.valid().prepare();
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
        Self::start_with(opts, false)
    }

    /// [`Self::start_empty`]; `deferred`: no worker yet (a takeover's,
    /// whose workers come with the running daemon's sets).
    fn start_with(opts: &Options, deferred: bool) -> Result<Daemon, DaemonError> {
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
            // Frames longer than a chunk: a sixteenth of the UMEM in
            // jumbo slots (256 of 16 KiB by default). A slot stays out
            // until its transmission completes, which in copy mode is
            // when the receiver frees the frame: 16 slots dropped a
            // sixth of a bulk TCP transfer's frames (bench/tcp.sh).
            jumbo_slots: opts.umem_frames / 64,
        };
        let stop_workers = Arc::new(AtomicBool::new(false));
        let (lost_tx, lost) = crossbeam_channel::bounded(1024);
        let links = links::Links::new()?;
        let fastpath = fastpath::start(opts)?;
        let core_ids = core_affinity::get_core_ids().unwrap_or_default();
        let cores = (0..opts.workers)
            .map(|id| match &opts.cores {
                Some(c) => Some(c[id]),
                None if !core_ids.is_empty() => Some(core_ids[id % core_ids.len()].id),
                None => None,
            })
            .collect();
        let mut d = Daemon {
            ctl,
            opts: opts.clone(),
            ifaces: BTreeMap::new(),
            missing: BTreeMap::new(),
            next_key: 1,
            lost,
            lost_tx,
            links,
            snoop: None,
            monitor,
            neigh,
            snoop_refused_logged: 0,
            workers: Vec::new(),
            stop_workers,
            epoch,
            planned: Vec::new(),
            cores,
            server: None,
            metrics: None,
            calls: crossbeam_channel::bounded(64),
            state: None,
            wake: Arc::new(eventfd()?),
            lookup_misses: std::collections::VecDeque::new(),
            invalidate: None,
            fastpath,
            vhost: BTreeMap::new(),
            capture: None,
            next_capture: 0,
            takeover: None,
            handed_over: false,
            handoff_lost: None,
        };
        if deferred {
            // The sets, the invalidation port and the workers come with the
            // running daemon's handoff (`takeover.rs`).
            d.takeover = Some(Vec::new());
            return Ok(d);
        }
        d.invalidate = invalidate_socket();
        for id in 0..opts.workers {
            // In a file another process can map: what lets `xvsctl
            // restart` hand the sets over (`takeover.rs`).
            let set = XskSet::new_shareable(xsk_cfg)?;
            info!(worker = id, backing = ?set.backing(), "UMEM (a file a new daemon can take over)");
            let (worker, parts) = d.new_worker(id, set);
            d.spawn_worker(worker, parts)?;
        }
        d.bind_miss_pair()?;
        Ok(d)
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

    /// The control plane (tests and the control socket read it).
    pub fn control(&mut self) -> &mut Control {
        &mut self.ctl
    }

    /// Nanoseconds since the daemon started (the clock of learn events,
    /// aging and policers).
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// The control loop; returns when `stop` or `reload` is set (a
    /// signal; `reload` is cleared), or with the error when a worker
    /// failed. Called again after a reload, it goes on where it was.
    pub fn run(&mut self, stop: &AtomicBool, reload: &AtomicBool) -> Result<Wake, DaemonError> {
        let mut last_tick = 0;
        let mut snooped = Vec::new();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(Wake::Stop);
            }
            if reload.swap(false, Ordering::Relaxed) {
                return Ok(Wake::Reload);
            }
            self.step(&mut snooped, &mut last_tick)?;
            if self.handed_over {
                self.leave_programs();
                return match self.handoff_lost.take() {
                    Some(why) => Err(DaemonError::Takeover(why)),
                    None => Ok(Wake::HandedOver),
                };
            }
        }
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
        let calls: Vec<_> = self.calls.1.try_iter().collect();
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
        let tick = now - *last_tick >= 1_000_000_000;
        self.fastpath_round(tick, now);
        if tick {
            *last_tick = now;
            self.ctl.tick(now);
            self.log_snoop_refusals();
            self.capture_tick();
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
        // An administrator's entry is confirmed as it is, and marking it
        // used would strip its PERMANENT state (NTF_USE, Linux 5.16+):
        // it would age and need ARP, which a next hop set by hand may
        // not answer.
        if let Ok(
            found @ NeighLookup::Usable(KernelNeigh {
                permanent: true, ..
            }),
        ) = self.neigh.get(ip, ifindex)
        {
            self.ctl.kernel_neigh(ip, found, now);
            return;
        }
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

    /// Every port, tunnel and the uplink by number, sorted by name (as
    /// reports list them): read from the running snapshot when asked, so a
    /// transaction does not rebuild a list of every name.
    pub(super) fn port_names(&self) -> Vec<(PortNo, Arc<str>)> {
        let snap = self.ctl.snapshot();
        let mut names: Vec<(PortNo, Arc<str>)> = snap
            .ports
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind != xvs_dataplane::snapshot::PortKind::Absent)
            .map(|(n, e)| (n as PortNo, Arc::clone(&e.name)))
            .collect();
        names.sort_by(|a, b| a.1.cmp(&b.1));
        names
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
        for (no, name) in &self.port_names() {
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
        self.metrics = None;
        if let Some(handle) = self.server.take() {
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
