//! Interfaces that come and go under a running daemon: a guest destroyed
//! (its tap deleted), recreated with the same name, renamed, moved to
//! another namespace, set down and up, its MTU changed.
//!
//! The control thread follows rtnetlink link notifications (RTM_NEWLINK,
//! RTM_DELLINK) and, on any of them, on a socket a worker closed because
//! it failed ([`SocketLost`]), and once a second anyway (a notification
//! can be lost), looks every configured interface up by name again: the
//! kernel is the truth about names. An attached interface whose name now
//! finds nothing, or another interface, is closed (workers take its
//! sockets' chunks back, the program goes with the interface) and waits
//! as `missing`; a missing one that is there again is attached and bound
//! like a new one, the uplink's maps and group memberships restored from
//! the running config. Down/up and MTU changes keep the sockets (the
//! kernel keeps them bound); only the state shown changes. No other port
//! notices any of it.
//!
//! Also here: the fault injection the rollback test uses
//! ([`Fault`], `XVSD_FAULT_FILE`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use xvs_bpf::Mode;
use xvs_ctl::protocol::PortState;
use xvs_dataplane::control::kernel::LinkMonitor;
use xvs_dataplane::types::PortNo;

use super::{check, Daemon, DaemonError};

/// An interface the config names, as it asks for it: what to attach and
/// bind once it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wanted {
    pub name: String,
    pub no: PortNo,
    pub mode: Mode,
    /// Queues asked for (0: all the device has).
    pub want: u16,
}

/// How often configured interfaces are looked up without a notification.
const RESCAN_EVERY: Duration = Duration::from_secs(1);

/// Link notifications and what the lifecycle keeps between rounds.
#[derive(Debug)]
pub(super) struct Links {
    monitor: LinkMonitor,
    last_scan: Instant,
    /// The last error binding a missing interface again, by name, so it
    /// is logged when it changes rather than every second.
    logged: std::collections::BTreeMap<String, String>,
    pub fault: Fault,
}

impl Links {
    pub fn new() -> Result<Links, DaemonError> {
        Ok(Links {
            monitor: LinkMonitor::new()?,
            last_scan: Instant::now(),
            logged: Default::default(),
            fault: Fault::from_env(),
        })
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.monitor.fd()
    }
}

impl Daemon {
    /// One round of lifecycle work (see the module doc).
    pub(super) fn lifecycle(&mut self) {
        let mut due = self.links.last_scan.elapsed() >= RESCAN_EVERY;
        match self.links.monitor.changed() {
            Ok(changed) => due |= changed,
            Err(e) => {
                warn!("link notifications: {e}");
                due = true;
            }
        }
        let lost: Vec<_> = self.lost.try_iter().collect();
        for l in lost {
            let Some(name) = self
                .ifaces
                .iter()
                .find(|(_, a)| a.key == l.key)
                .map(|(n, _)| n.clone())
            else {
                continue;
            };
            warn!(iface = %name, worker = l.worker, queue = l.queue, error = %l.error,
                "socket failed: the port waits for its interface");
            self.mark_missing(&name);
            due = true;
        }
        if due {
            self.rescan();
        }
    }

    /// Closes attached interface `name` and lists it missing.
    fn mark_missing(&mut self, name: &str) {
        let Some(a) = self.ifaces.get(name) else {
            return;
        };
        let w = Wanted {
            name: name.to_owned(),
            no: a.no,
            mode: a.mode,
            want: a.want,
        };
        self.close(name);
        self.missing.insert(name.to_owned(), w);
    }

    /// Looks every configured interface up again: closes those gone,
    /// binds those back.
    fn rescan(&mut self) {
        self.links.last_scan = Instant::now();
        let gone: Vec<String> = self
            .ifaces
            .iter()
            .filter(|(name, a)| xvs_bpf::ifindex(name).ok() != Some(a.prog.ifindex()))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            warn!(iface = %name, "interface gone (deleted, renamed or moved): port missing");
            self.mark_missing(&name);
        }
        let back: Vec<Wanted> = self
            .missing
            .values()
            .filter(|w| xvs_bpf::ifindex(&w.name).is_ok())
            .cloned()
            .collect();
        for w in back {
            let opened = check(&w, &self.opts).and_then(|i| self.open(&i));
            match opened {
                Ok(()) => {
                    self.missing.remove(&w.name);
                    self.links.logged.remove(&w.name);
                    if w.mode == Mode::Uplink {
                        let config = self.ctl.config().clone();
                        if let Err(e) = self.sync_uplink_maps(&config) {
                            warn!(iface = %w.name, "restoring the uplink's maps: {e}");
                        }
                    }
                    info!(iface = %w.name, "interface back: bound again");
                }
                Err(e) => {
                    let e = e.to_string();
                    if self.links.logged.get(&w.name) != Some(&e) {
                        warn!(iface = %w.name, "interface there but not bound yet: {e}");
                        self.links.logged.insert(w.name.clone(), e);
                    }
                }
            }
        }
    }

    /// The state of configured interface `name` (`None`: not a local
    /// port nor the uplink).
    pub(super) fn iface_state(&self, name: &str) -> Option<PortState> {
        if self.missing.contains_key(name) {
            return Some(PortState::Missing);
        }
        self.ifaces.get(name)?;
        let flags = std::fs::read_to_string(format!("/sys/class/net/{name}/flags")).ok();
        let up = flags
            .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
            .map(|f| f & libc::IFF_UP as u32 != 0);
        Some(match up {
            Some(true) => PortState::Up,
            Some(false) => PortState::Down,
            None => PortState::Missing,
        })
    }
}

/// Test-only fault injection: with `XVSD_FAULT_FILE` set, a transaction
/// reads a number N from that file when it begins (and deletes the file)
/// and fails its Nth fallible step (attaching a program, binding a queue,
/// the uplink's maps, the snapshot), so a test can fail every step of a
/// change in turn and check that nothing of it stays. Never armed in a
/// rollback, nor without the variable.
#[derive(Debug, Default)]
pub(super) struct Fault {
    path: Option<PathBuf>,
    /// The step to fail, and the steps taken so far.
    armed: Option<u32>,
    steps: u32,
}

impl Fault {
    fn from_env() -> Fault {
        Fault {
            path: std::env::var_os("XVSD_FAULT_FILE").map(PathBuf::from),
            ..Fault::default()
        }
    }

    /// A change begins (`rollback`: a restore, never failed on purpose).
    pub fn begin(&mut self, rollback: bool) {
        self.steps = 0;
        self.armed = None;
        if rollback {
            return;
        }
        let Some(path) = &self.path else { return };
        if let Ok(text) = std::fs::read_to_string(path) {
            let _ = std::fs::remove_file(path);
            self.armed = text.trim().parse().ok();
        }
    }

    /// One fallible step: fails it if it is the armed one.
    pub fn step(&mut self, what: &str) -> Result<(), DaemonError> {
        self.steps += 1;
        if self.armed == Some(self.steps) {
            self.armed = None;
            return Err(DaemonError::Options(format!(
                "injected failure at step {} ({what})",
                self.steps
            )));
        }
        Ok(())
    }
}
