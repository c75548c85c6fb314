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
//! sockets' chunks back, its program is detached: see below) and waits
//! as `missing`; a missing one that is there again is attached and bound
//! like a new one, the uplink's maps and group memberships restored from
//! the running config. Down/up and MTU changes keep the sockets (the
//! kernel keeps them bound); only the state shown changes. No other port
//! notices any of it.
//!
//! What became of an interface that went is logged: renamed (its index is
//! still here, under another name), moved to a named namespace (our
//! program found attached there within [`FOLLOW_FOR`]: to us the move is
//! a deletion first), or gone. Our XDP program does not leave with it by itself: a
//! renamed interface's is detached here when the port closes, a moved
//! one's from a thread in the namespace it went to, so the interface
//! works there as if xvs had never had it.
//!
//! Which named namespace an interface that is not ours is in
//! ([`elsewhere`]) also lets `add-port` refuse such an interface saying
//! where it is.
//!
//! Also here: the fault injection the rollback test uses
//! ([`Fault`], `XVSD_FAULT_FILE`).

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};
use xvs_bpf::{Mode, XdpProgram};
use xvs_ctl::protocol::PortState;
use xvs_types::PortNo;

use super::plan::check;
use super::{Daemon, DaemonError};
use crate::netlink::LinkMonitor;

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

/// How long an interface that went is looked for in other namespaces.
const FOLLOW_FOR: Duration = Duration::from_secs(5);

/// A port's interface that went, followed for [`FOLLOW_FOR`]: its program
/// is detached where the interface turns up, or dropped (nothing to
/// detach) when it does not.
#[derive(Debug)]
struct Went {
    prog: Box<XdpProgram>,
    since: Instant,
}

/// Link notifications and what the lifecycle keeps between rounds.
#[derive(Debug)]
pub(super) struct Links {
    monitor: LinkMonitor,
    last_scan: Instant,
    /// The last error binding a missing interface again, by name, so it
    /// is logged when it changes rather than every second.
    logged: std::collections::BTreeMap<String, String>,
    went: Vec<Went>,
    pub fault: Fault,
}

impl Links {
    pub fn new() -> Result<Links, DaemonError> {
        Ok(Links {
            monitor: LinkMonitor::new()?,
            last_scan: Instant::now(),
            logged: Default::default(),
            went: Vec::new(),
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
            if l.key == super::fastpath::MISS_PAIR_KEY {
                // Not rebound: the pair is xvsd's own, and gone only if
                // someone deleted it.
                error!(worker = l.worker, error = %l.error,
                    "the fast path's miss pair socket failed: guest ports' misses are lost until xvsd restarts");
                continue;
            }
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
            self.links.follow();
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
        let prog = self.close(name);
        self.missing.insert(name.to_owned(), w);
        let Some(prog) = prog else { return };
        // Say what became of it: the operator looks for it by name.
        match name_of(prog.ifindex()) {
            Some(now) if now != name => {
                warn!(iface = %name, now = %now, "interface renamed: port missing");
            }
            // Still here under its name (a socket failed): the program
            // goes, the next rescan attaches it again.
            Some(_) => {}
            None => {
                warn!(iface = %name, "interface gone (deleted or moved): port missing");
                self.links.went.push(Went {
                    prog: Box::new(prog),
                    since: Instant::now(),
                });
            }
        }
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

impl Links {
    /// Looks for the interfaces that went in the other namespaces: one
    /// found has its program detached there; one not found within
    /// [`FOLLOW_FOR`] was deleted (its program went with it).
    fn follow(&mut self) {
        if self.went.is_empty() {
            return;
        }
        let (moved, rest) = detach_where_attached(std::mem::take(&mut self.went));
        for (name, netns) in moved {
            warn!(iface = %name, netns = %netns,
                "interface moved to another network namespace: port missing; \
                 our XDP program detached there");
        }
        self.went = rest
            .into_iter()
            .filter(|w| w.since.elapsed() < FOLLOW_FOR)
            .collect();
    }
}

/// Finds the named namespaces where the programs of `went` are still
/// attached (their interfaces were moved there) and detaches them there,
/// from one thread of its own (`setns` moves only the calling thread)
/// that visits each namespace once. Returns (interface, namespace) for
/// those detached, and the others. Should no thread be made, or the
/// thread panic, the programs are dropped with it: nothing is detached,
/// nothing is kept.
fn detach_where_attached(went: Vec<Went>) -> (Vec<(String, String)>, Vec<Went>) {
    let Some(ours) = netns_id(Path::new("/proc/thread-self/ns/net")) else {
        return (Vec::new(), went);
    };
    let named: Vec<(String, PathBuf)> = named_netns()
        .into_iter()
        .filter(|(_, p)| netns_id(p).is_some_and(|i| i != ours))
        .collect();
    let look = move || {
        let mut rest = went;
        let mut moved = Vec::new();
        for (n, p) in named {
            if rest.is_empty() {
                break;
            }
            let Ok(f) = std::fs::File::open(&p) else {
                continue;
            };
            // SAFETY: `f` is an open namespace file for the duration of the
            // call; setns changes only this thread's namespace, and this
            // thread ends after the lookups.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                continue;
            }
            let (here, elsewhere): (Vec<Went>, Vec<Went>) =
                rest.into_iter().partition(|w| w.prog.attached_here());
            rest = elsewhere;
            // Dropped in this namespace, each detaches itself from its
            // index here (only if the program there is that one).
            moved.extend(
                here.into_iter()
                    .map(|w| (w.prog.ifname().to_owned(), n.clone())),
            );
        }
        (moved, rest)
    };
    std::thread::Builder::new()
        .name("xvsd-netns".into())
        .spawn(look)
        .ok()
        .and_then(|t| t.join().ok())
        .unwrap_or_default()
}

/// Where network namespaces made by `ip netns add` are named.
const NETNS_DIR: &str = "/run/netns";

/// The identity of a namespace file (device and inode, as `ip netns
/// identify` compares them).
fn netns_id(p: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// Every namespace named under /run/netns, by name.
fn named_netns() -> Vec<(String, PathBuf)> {
    let mut named: Vec<(String, PathBuf)> = std::fs::read_dir(NETNS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    named.sort();
    named
}

/// Where an interface is, if not in xvsd's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Elsewhere {
    /// The named namespaces (under /run/netns) that hold it, sorted.
    pub theirs: Vec<String>,
    /// xvsd's own, as a person would name it: `"sw"` (quoted), or `the
    /// host's` or `unnamed`.
    pub ours: String,
}

impl Elsewhere {
    /// `network namespace "a"`, `network namespaces "a", "b" and 3 more`.
    pub fn theirs_text(&self) -> String {
        let shown: Vec<String> = self
            .theirs
            .iter()
            .take(2)
            .map(|n| format!("{n:?}"))
            .collect();
        let more = self.theirs.len().saturating_sub(shown.len());
        match (shown.len(), more) {
            (1, _) => format!("network namespace {}", shown[0]),
            (_, 0) => format!("network namespaces {}", shown.join(" and ")),
            _ => format!("network namespaces {} and {more} more", shown.join(", ")),
        }
    }
}

/// The named network namespaces (`/run/netns/NAME`) other than xvsd's
/// that hold an interface called `name`, or `None` if none does. Looks
/// from a short-lived thread of its own (`setns` moves only the calling
/// thread), so no other thread of the daemon ever changes namespace.
/// Error paths only: it costs a thread and a few syscalls per namespace.
pub(super) fn elsewhere(name: &str) -> Option<Elsewhere> {
    let cname = CString::new(name).ok()?;
    let ours_id = netns_id(Path::new("/proc/thread-self/ns/net"))?;
    let named = named_netns();
    let ours = match named.iter().find(|(_, p)| netns_id(p) == Some(ours_id)) {
        Some((n, _)) => format!("{n:?}"),
        None if netns_id(Path::new("/proc/1/ns/net")) == Some(ours_id) => "the host's".into(),
        None => "unnamed".into(),
    };
    let others: Vec<(String, PathBuf)> = named
        .into_iter()
        .filter(|(_, p)| netns_id(p).is_some_and(|i| i != ours_id))
        .collect();
    let theirs: Vec<String> = std::thread::Builder::new()
        .name("xvsd-netns".into())
        .spawn(move || {
            others
                .into_iter()
                .filter_map(|(n, p)| {
                    let f = std::fs::File::open(&p).ok()?;
                    // SAFETY: `f` is an open namespace file for the duration
                    // of the call; setns changes only this thread's
                    // namespace, and this thread ends after the lookups.
                    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return None;
                    }
                    // SAFETY: `cname` is a valid NUL-terminated string.
                    (unsafe { libc::if_nametoindex(cname.as_ptr()) } != 0).then_some(n)
                })
                .collect()
        })
        .ok()?
        .join()
        .ok()?;
    (!theirs.is_empty()).then_some(Elsewhere { theirs, ours })
}

/// The name interface `ifindex` has in xvsd's namespace now, if it is
/// still there.
fn name_of(ifindex: i32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    let i = u32::try_from(ifindex).ok()?;
    // SAFETY: `buf` holds IF_NAMESIZE bytes, what if_indextoname writes
    // at most (NUL included).
    let p = unsafe { libc::if_indextoname(i, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success `buf` holds a NUL-terminated name.
    let c = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(c.to_string_lossy().into_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespaces_an_interface_is_in_read_as_a_sentence() {
        let e = |theirs: &[&str]| Elsewhere {
            theirs: theirs.iter().map(|s| s.to_string()).collect(),
            ours: "\"hv\"".into(),
        };
        assert_eq!(e(&["vm1"]).theirs_text(), "network namespace \"vm1\"");
        assert_eq!(
            e(&["a", "b"]).theirs_text(),
            "network namespaces \"a\" and \"b\""
        );
        assert_eq!(
            e(&["a", "b", "c", "d"]).theirs_text(),
            "network namespaces \"a\", \"b\" and 2 more"
        );
    }

    #[test]
    fn an_interface_nowhere_is_nowhere_and_loopback_has_its_name() {
        assert_eq!(elsewhere("xvs-no-such0"), None);
        assert_eq!(elsewhere("bad\0name"), None);
        // Index 1 is the loopback device in every namespace.
        assert_eq!(name_of(1).as_deref(), Some("lo"));
        assert_eq!(name_of(-1), None);
    }
}
