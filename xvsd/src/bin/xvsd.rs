//! `xvsd`: the xvs switch daemon's command line.
//!
//! SIGHUP reads the `--config` file again (`reload_config`); with
//! NOTIFY_SOCKET set (systemd's Type=notify) xvsd says when it is ready,
//! reloading and stopping.
//!
//! Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM) or a handover
//! to a new daemon (`--takeover`, `xvsctl restart`), 1 when the
//! config is invalid or an interface, XDP program or socket cannot be set
//! up, or a worker fails.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use sd_notify::NotifyState;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;
use xvs_bpf::AttachFlags;
use xvs_config::Config;
use xvs_io::PollMode;
use xvsd::daemon::{Daemon, Options, Wake};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Poll {
    /// Spin without pause (a whole core per worker, lowest latency).
    Busy,
    /// Spin briefly, then sleep in poll() until traffic comes.
    Adaptive,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum XdpMode {
    /// Native (driver) mode, generic if the driver refuses.
    Auto,
    Native,
    Generic,
}

/// The xvs VXLAN/Geneve switch daemon.
///
/// Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=xvsd=debug) to filter.
#[derive(Debug, Parser)]
#[command(name = "xvsd", version)]
struct Args {
    /// Config file (TOML: bridges, ports, uplink, tunnels, ACLs, QoS); see
    /// examples/xvsd.toml. Without one, xvsd starts with no bridge.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Check the config (and the interfaces it names) and exit.
    #[arg(long)]
    check: bool,
    /// Worker threads (at most the queue count of every interface).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Cores to pin the workers to, in order (default: worker i on core i).
    #[arg(long, value_delimiter = ',')]
    cores: Option<Vec<usize>>,
    /// How idle workers wait.
    #[arg(long, value_enum, default_value_t = Poll::Adaptive)]
    poll: Poll,
    /// Microseconds an adaptive worker spins before it sleeps.
    #[arg(long, default_value_t = 200)]
    spin_us: u64,
    /// UMEM chunks (4 KiB) per worker, shared by its sockets; a power of
    /// two.
    #[arg(long, default_value_t = 16384)]
    umem_frames: u32,
    /// Bytes of UMEM headroom beyond the kernel's 256 in front of every
    /// frame, at least: raised to what the config file's longest tunnel
    /// header needs, then by up to 63 so that a frame with the most
    /// common tunnel header pushed starts on a cache line.
    #[arg(long, default_value_t = 0)]
    frame_headroom: u32,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    xdp_mode: XdpMode,
    /// Guest ports get the GSO-preserving fast path instead of an XDP
    /// program: established flows are carried out by a TC program on
    /// whole TSO super-packets, the rest reaches the workers through an
    /// internal veth pair (xvs-miss), tagged with the port.
    #[arg(long)]
    fastpath: bool,
    /// The control socket xvsctl talks to.
    #[arg(long, default_value = xvs_ctl::protocol::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Group (name or gid) whose members may use the control socket, besides
    /// root.
    #[arg(long)]
    socket_group: Option<String>,
    /// Run without a control socket (the config file is all there is).
    #[arg(long, conflicts_with_all = ["socket", "socket_group"])]
    no_socket: bool,
    /// Where committed configuration is persisted and restored from at
    /// start (ignored when --config is given: the file's config is applied
    /// and persisted instead).
    #[arg(long, default_value = xvsd::state::DEFAULT_STATE)]
    state: PathBuf,
    /// Serve Prometheus metrics (OpenMetrics text, GET /metrics) on this
    /// address; without one, on 127.0.0.1:9477. Off unless given.
    #[arg(long, value_name = "ADDR", num_args = 0..=1,
          default_missing_value = xvsd::metrics::DEFAULT_ADDR)]
    metrics: Option<std::net::SocketAddr>,
    /// Print the man page (roff) and exit: for the package.
    #[arg(long, hide = true)]
    man: bool,
    /// Start with no bridge even if the state file holds a config (or is
    /// corrupt); the next committed change overwrites it.
    #[arg(long)]
    start_empty: bool,
    /// Take over the xvsd running on --socket: its AF_XDP sockets, UMEMs
    /// and traffic, with the config it persisted in --state, dropping no
    /// frame; it exits once this one forwards (what `xvsctl restart`
    /// starts). --workers must be the running daemon's.
    #[arg(long, conflicts_with_all = ["no_socket", "start_empty", "check"])]
    takeover: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
    let args = Args::parse();
    if args.man {
        use clap::CommandFactory;
        return match clap_mangen::Man::new(Args::command())
            .section("8")
            .render(&mut std::io::stdout())
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("writing the man page: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let config = match &args.config {
        // The running daemon's config is what it persisted; the file is
        // for reloads.
        Some(_) if args.takeover => xvsd::state::load(&args.state)
            .map_err(|e| e.to_string())?
            .unwrap_or_default(),
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None if args.start_empty => Config::default(),
        None => match xvsd::state::load(&args.state).map_err(|e| e.to_string())? {
            Some(c) => {
                info!(state = %args.state.display(), "restoring the persisted configuration");
                c
            }
            None => Config::default(),
        },
    };
    if args.check {
        let mut c = config;
        c.assign_port_numbers();
        c.validate().map_err(|e| format!("invalid config:\n{e}"))?;
        println!("config ok");
        return Ok(());
    }
    let opts = Options {
        workers: args.workers,
        cores: args.cores.clone(),
        poll: match args.poll {
            Poll::Busy => PollMode::Busy,
            Poll::Adaptive => PollMode::Adaptive {
                spin: Duration::from_micros(args.spin_us),
            },
        },
        umem_frames: args.umem_frames,
        frame_headroom: args.frame_headroom,
        attach: match args.xdp_mode {
            XdpMode::Auto => AttachFlags::Auto,
            XdpMode::Native => AttachFlags::NativeOnly,
            XdpMode::Generic => AttachFlags::GenericOnly,
        },
        fastpath: args.fastpath,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [
        (signal_hook::consts::SIGINT, &stop),
        (signal_hook::consts::SIGTERM, &stop),
        (signal_hook::consts::SIGHUP, &reload),
    ] {
        signal_hook::flag::register(sig, Arc::clone(flag))
            .map_err(|e| format!("installing the signal handler: {e}"))?;
    }
    let from_file = args.config.is_some() && !args.takeover;
    // A config file is the operator's word: an interface it names must be
    // there (a typo fails now). The persisted state is the daemon's own:
    // an interface gone across the restart waits, reported missing.
    let started = if args.takeover {
        Daemon::take_over(config, &opts, &args.socket)
    } else if from_file {
        Daemon::start(config, &opts)
    } else {
        Daemon::restore(config, &opts)
    };
    let mut daemon = started.map_err(|e| e.to_string())?;
    daemon.persist_to(&args.state);
    if from_file {
        xvsd::state::save(&args.state, daemon.control().config()).map_err(|e| e.to_string())?;
    }
    if !args.no_socket {
        let group = match &args.socket_group {
            Some(g) => Some(
                xvs_ctl::server::group_id(g)
                    .map_err(|e| format!("--socket-group {g}: {e}"))?
                    .ok_or_else(|| format!("--socket-group {g}: no such group"))?,
            ),
            None => None,
        };
        daemon
            .listen(&args.socket, group)
            .map_err(|e| e.to_string())?;
    }
    if let Some(addr) = args.metrics {
        daemon.serve_metrics(addr).map_err(|e| e.to_string())?;
    }
    info!("xvsd running");
    if args.takeover {
        // Started by the daemon it took over: systemd is to follow this
        // process now (the unit's NotifyAccess=all lets it say so).
        notify(&[
            NotifyState::MainPid(std::process::id()),
            NotifyState::Ready,
            NotifyState::Status("forwarding (took over)"),
        ]);
    } else {
        notify(&[NotifyState::Ready, NotifyState::Status("forwarding")]);
    }
    let result = loop {
        match daemon.run(&stop, &reload) {
            Ok(Wake::Stop) => break Ok(()),
            Ok(Wake::HandedOver) => {
                // Nothing to shut down: the sockets and programs are the
                // new daemon's.
                daemon.log_counters();
                info!("handed over to the new daemon: exiting");
                return Ok(());
            }
            Ok(Wake::Reload) => {
                notify(&[NotifyState::Reloading]);
                let status = match reload_config(&mut daemon, &args) {
                    Ok(true) => {
                        info!("reloaded the config file: applied and persisted");
                        "forwarding; config file reloaded"
                    }
                    Ok(false) => {
                        info!("reloaded the config file: nothing changed");
                        "forwarding; config file reloaded, unchanged"
                    }
                    Err(e) => {
                        error!("reload refused, the running config is unchanged: {e}");
                        "forwarding; the last reload was refused (see the log)"
                    }
                };
                notify(&[NotifyState::Ready, NotifyState::Status(status)]);
            }
            Err(e) => break Err(e),
        }
    };
    notify(&[NotifyState::Stopping]);
    info!("shutting down");
    daemon.log_counters();
    let down = daemon.shutdown();
    result.map_err(|e| e.to_string())?;
    down.map_err(|e| e.to_string())?;
    info!("stopped cleanly");
    Ok(())
}

/// Tells systemd (`Type=notify`) where xvsd is: ready once its sockets are
/// bound and the control socket listens, reloading, stopping. Nothing
/// without NOTIFY_SOCKET; a failure is logged, never fatal.
fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        warn!("telling systemd (NOTIFY_SOCKET): {e}");
    }
}

/// SIGHUP (`systemctl reload xvsd`): the `--config` file read again and
/// made the running config whole, or not at all, as a transaction is
/// (objects keep the numbers they run with), then persisted. Whether it
/// changed anything.
fn reload_config(daemon: &mut Daemon, args: &Args) -> Result<bool, String> {
    let Some(path) = &args.config else {
        return Err(
            "xvsd was started without --config: there is no file to read again \
                    (xvsctl changes the running config)"
                .to_owned(),
        );
    };
    let before = daemon.control().config().clone();
    let config = Config::load_over(path, Some(&before)).map_err(|e| e.to_string())?;
    daemon.apply(config).map_err(|e| e.to_string())?;
    if *daemon.control().config() == before {
        return Ok(false);
    }
    if let Err(e) = xvsd::state::save(&args.state, daemon.control().config()) {
        // Not durable: go back to what is on disk.
        let back = daemon.apply(before).err();
        return Err(format!(
            "{e}; the change was rolled back{}",
            back.map_or(String::new(), |b| format!(
                " (rolling back failed too: {b})"
            ))
        ));
    }
    Ok(true)
}
