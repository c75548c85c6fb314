//! An upgrade that drops nothing: a new xvsd takes over a running one's
//! AF_XDP sockets, UMEMs and traffic without closing a socket or leaving
//! an interface without a program (`xvsd --takeover`, which `xvsctl
//! restart` starts).
//!
//! The new daemon first does everything that does not need the sockets:
//! it reads the persisted config, the kernel's routes and neighbours,
//! compiles the snapshot and loads an XDP object per interface without
//! attaching it ([`Daemon::take_over`]). Then it listens on a Unix socket
//! of its own and asks the running daemon, by the control socket's
//! `takeover` call, to hand over there. The running daemon
//! ([`Daemon::hand_over`]) stops its workers between two rounds, exports
//! each worker's set (`XskSet::export`: the UMEM's file, every socket,
//! who owns which chunk) and sends it all, the fds as `SCM_RIGHTS`
//! (`xvs_io::handoff`). Meanwhile its XDP programs still redirect every
//! frame to the same sockets, where frames wait on the rx rings.
//!
//! The new daemon adopts each set, claims every socket for the port its
//! own config gives that (interface, queue), registers it in its own
//! program's XSKMAP and starts its workers on them: from here it
//! forwards. Then it swaps its programs in for the old ones, each in one
//! step (`XdpProgram::replace_running`), answers `Taken`, and the old
//! daemon lets go of the control socket and exits without detaching or
//! closing anything the new one uses. The gap is the old workers'
//! last round to the new workers' first: milliseconds, against the
//! 2,048 frames an rx ring holds (20 ms at 100,000 frames a second).
//!
//! If the new daemon refuses before its workers touched a ring (a
//! handoff it cannot adopt, another worker count), the old one adopts
//! its own sets again and goes on. If it vanishes after that, neither
//! can know who owns what: the old daemon stops with an error.
//!
//! Not handed over: vhost-user ports (their guest connections and
//! virtqueue state live in the daemon; refused, say why) and the TC fast
//! path (refused); learned MACs (the new daemon floods until it learns
//! them again, which drops nothing); frames held for a lookup and those
//! queued behind a full TX ring (`Handoff::reclaimed`, counted).

use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};
use xvs_config::Config;
use xvs_io::handoff;
use xvs_io::worker::SocketRole;
use xvs_io::xsk::{Handoff, XskSet};
use xvs_types::PortNo;

use super::plan::{aligned_headroom, common_header_len, extra_headroom};
use super::{invalidate_socket, Daemon, DaemonError, Options};

/// The handoff format of this build (both sides must speak it).
const VERSION: u32 = 1;

/// How long the old daemon waits for the new one's answer, and the new
/// one for the old one's sets.
const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// A socket the new daemon's config needs: queue `queue` of `iface`, as
/// port `no` of binding `key`, served by worker `worker`.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub(super) iface: String,
    pub(super) no: PortNo,
    pub(super) queue: u32,
    pub(super) key: u64,
    pub(super) worker: usize,
}

/// What the running daemon sends, beside every worker's fds in worker
/// order (each [`Handoff::fds`] of them).
#[derive(Debug, Serialize, Deserialize)]
struct Offer {
    version: u32,
    pid: u32,
    workers: Vec<Handoff>,
}

/// The new daemon's answer.
#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    /// Its workers forward on the sockets and its programs are attached:
    /// the old daemon must go without touching them.
    Taken { pid: u32 },
    /// Refused before any of its workers touched a ring: the old daemon
    /// takes its sets back.
    Refused(String),
}

/// What a takeover of this daemon would not carry, if anything.
fn not_handed_over(config: &Config, opts: &Options) -> Option<String> {
    if opts.fastpath {
        return Some("the TC fast path (--fastpath) is not handed over".into());
    }
    config
        .ports
        .iter()
        .find(|p| matches!(p.kind, xvs_config::PortKind::VhostUser { .. }))
        .map(|p| {
            format!(
                "vhost-user port {:?}: a guest's connection and virtqueues are not handed over \
                 (restart xvsd normally; guests with reconnect come back)",
                p.name
            )
        })
}

impl Daemon {
    /// Takes over the daemon whose control socket is `running`, with
    /// `config` (the state it persisted) and `opts`: see the module doc.
    /// On error the running daemon goes on, unless the error says
    /// otherwise.
    pub fn take_over(
        config: Config,
        opts: &Options,
        running: &Path,
    ) -> Result<Daemon, DaemonError> {
        if let Some(why) = not_handed_over(&config, opts) {
            return Err(DaemonError::Options(format!("--takeover: {why}")));
        }
        let mut opts = opts.clone();
        opts.frame_headroom = aligned_headroom(
            opts.frame_headroom.max(extra_headroom(&config)),
            common_header_len(&config),
        );
        let mut d = Daemon::start_with(&opts, true)?;
        d.apply_with(config, true)?;
        d.ctl.valid().prepare();

        let path = handoff_path(running);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|e| {
            DaemonError::Options(format!("--takeover: listening on {}: {e}", path.display()))
        })?;
        let asked = ask(running, &path);
        let conn = accept(&listener, ANSWER_WAIT);
        let _ = std::fs::remove_file(&path);
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                // The call's answer says why the running daemon would not.
                let said = asked.join().ok().and_then(Result::err).unwrap_or_default();
                return Err(DaemonError::Options(format!("--takeover: {e}{said}")));
            }
        };
        let started = Instant::now();
        let (offer, fds): (Offer, Vec<OwnedFd>) = handoff::recv(&conn)
            .map_err(|e| DaemonError::Options(format!("--takeover: receiving the sets: {e}")))?;
        let refuse = |why: String| {
            let _ = handoff::send(&conn, &Answer::Refused(why.clone()), &[]);
            DaemonError::Options(format!("--takeover: {why}"))
        };
        if offer.version != VERSION {
            return Err(refuse(format!(
                "the running daemon speaks handoff version {}, this one {VERSION}",
                offer.version
            )));
        }
        if offer.workers.len() != opts.workers {
            return Err(refuse(format!(
                "the running daemon has {} worker(s), this one was started with --workers {}",
                offer.workers.len(),
                opts.workers
            )));
        }
        // Test-only: a refusal after the sets came, which a real one (a
        // worker count the queues allow but the sets do not match) is
        // hard to arrange in a test (`tests/takeover.rs`).
        if let Some(why) = std::env::var_os("XVSD_TAKEOVER_REFUSE") {
            return Err(refuse(format!(
                "refused on request (XVSD_TAKEOVER_REFUSE={})",
                why.to_string_lossy()
            )));
        }
        let received = started.elapsed();
        let sets = adopt_all(offer.workers, fds).map_err(refuse)?;
        let mapped = started.elapsed();
        let adopted = d.claim(sets).map_err(refuse)?;
        let gap = started.elapsed();
        // The new workers forward; now the programs, one step each.
        for (name, a) in &mut d.ifaces {
            if let Err(e) = a.prog.replace_running(opts.attach) {
                error!(iface = %name, "taking over: the running daemon's program stays attached (it sends to the same sockets): {e}");
            }
        }
        let _ = handoff::send(
            &conn,
            &Answer::Taken {
                pid: std::process::id(),
            },
            &[],
        );
        info!(
            from = offer.pid,
            sockets = adopted,
            received_us = received.as_micros() as u64,
            adopted_us = mapped.as_micros() as u64,
            forwarding_us = gap.as_micros() as u64,
            "took over the running daemon's sockets"
        );
        // It lets go of the control socket, then of this connection.
        wait_closed(&conn, ANSWER_WAIT);
        let _ = asked.join();
        d.takeover = None;
        d.invalidate = invalidate_socket();
        Ok(d)
    }

    /// Starts a worker on each adopted set, its sockets claimed for the
    /// ports of the config just applied; returns how many sockets were
    /// claimed. Nothing runs until every claim succeeded, so an error
    /// leaves every ring untouched.
    fn claim(&mut self, sets: Vec<XskSet>) -> Result<usize, String> {
        let mut pending = self.takeover.take().unwrap_or_default();
        let mut workers = Vec::new();
        let mut claimed = 0;
        for (id, mut set) in sets.into_iter().enumerate() {
            let receiving = pending.iter().filter(|p| p.worker == id).count();
            let slots: Vec<(usize, String, u32)> = (0..set.slots())
                .filter_map(|s| Some((s, set.ifname(s)?.to_owned(), set.queue(s)?)))
                .collect();
            let mut mine = Vec::new();
            for (s, ifname, queue) in slots {
                match pending
                    .iter()
                    .position(|p| p.iface == ifname && p.queue == queue && p.worker == id)
                {
                    Some(i) => mine.push((s, pending.swap_remove(i))),
                    None => {
                        // The running daemon served it; this config does
                        // not (it changed on disk in between).
                        warn!(iface = %ifname, queue, "taking over: a socket no port of this config needs, closed");
                        set.remove(s)
                            .map_err(|e| format!("closing {ifname} queue {queue}: {e}"))?;
                    }
                }
            }
            let (mut worker, parts) = self.new_worker(id, set);
            for (s, p) in mine {
                let reg = self.ifaces[&p.iface]
                    .prog
                    .registrar()
                    .map_err(|e| format!("{}: {e}", p.iface))?;
                worker
                    .adopt_socket(s, p.no, p.key, SocketRole::Ordinary(reg), receiving)
                    .map_err(|e| format!("{} queue {}: {e}", p.iface, p.queue))?;
                claimed += 1;
            }
            workers.push((worker, parts));
        }
        for (worker, parts) in workers {
            self.spawn_worker(worker, parts)
                .map_err(|e| e.to_string())?;
        }
        // Queues the running daemon had no socket on (an interface that
        // came since): bound as usual, now that there are workers.
        for p in pending {
            if let Err(e) = self.bind_queue(p.worker, &p.iface, p.no, p.queue, p.key) {
                warn!(iface = %p.iface, queue = p.queue, "taking over: binding a queue the running daemon did not serve: {e}");
            }
        }
        Ok(claimed)
    }

    /// The `takeover` call of the daemon at `path` (see the module doc):
    /// this daemon's sets handed over. `Ok`: taken, by the process named;
    /// this daemon must go now ([`Self::handed_over`]). `Err`: refused,
    /// and this daemon forwards as before, unless it says it cannot.
    pub(super) fn hand_over(&mut self, path: &Path) -> Result<u32, String> {
        if let Some(why) = not_handed_over(self.ctl.config(), &self.opts) {
            return Err(why);
        }
        if self.takeover.is_some() || self.handed_over {
            return Err("this daemon is itself taking over or handed over".into());
        }
        let conn = UnixStream::connect(path)
            .map_err(|e| format!("connecting to {}: {e}", path.display()))?;
        let started = Instant::now();
        let sets = self.stop_workers_for_handoff()?;
        let stopped = started.elapsed();
        let mut handoffs = Vec::new();
        let mut fds = Vec::new();
        let mut counts = Vec::new();
        let mut retired = Vec::new();
        for set in sets {
            match set.export() {
                Ok((h, f, r)) => {
                    counts.push(f.len());
                    handoffs.push(h);
                    fds.extend(f);
                    retired.push(r);
                }
                Err(refused) => {
                    // This one, and those already exported, back to work.
                    let mut back = readopt(&handoffs, &mut fds, &counts)?;
                    back.push(refused.set);
                    self.restart_workers(back)?;
                    return Err(format!("exporting a worker's set: {}", refused.error));
                }
            }
        }
        let offer = Offer {
            version: VERSION,
            pid: std::process::id(),
            workers: handoffs.clone(),
        };
        let exported = started.elapsed();
        let sent = handoff::send(&conn, &offer, &fds);
        let sent_at = started.elapsed();
        // The old mappings go once the new owner has the sets, not in the
        // gap.
        drop(retired);
        let answer = sent.map_err(|e| e.to_string()).and_then(|()| {
            conn.set_read_timeout(Some(ANSWER_WAIT))
                .map_err(|e| e.to_string())?;
            handoff::recv::<Answer>(&conn)
                .map(|(a, _)| a)
                .map_err(|e| e.to_string())
        });
        match answer {
            Ok(Answer::Taken { pid }) => {
                info!(
                    to = pid,
                    stopped_us = stopped.as_micros() as u64,
                    exported_us = exported.as_micros() as u64,
                    sent_us = sent_at.as_micros() as u64,
                    answered_us = started.elapsed().as_micros() as u64,
                    "handed the sockets over; exiting"
                );
                self.handed_over = true;
                // The control socket's path is the new daemon's once this
                // one let go of it; it binds when this connection closes.
                if let Some(h) = self.server.take() {
                    h.shutdown();
                }
                self.metrics = None;
                self.invalidate = None;
                // Drop the fds (the new daemon holds its own), then the
                // connection: the new daemon's signal.
                drop(fds);
                drop(conn);
                Ok(pid)
            }
            Ok(Answer::Refused(why)) => {
                let back = readopt(&handoffs, &mut fds, &counts)?;
                self.restart_workers(back)?;
                warn!("the new daemon refused the takeover; forwarding as before: {why}");
                Err(format!("the new daemon refused: {why}"))
            }
            Err(e) if sent_nothing(&e) => {
                let back = readopt(&handoffs, &mut fds, &counts)?;
                self.restart_workers(back)?;
                Err(format!("sending the sets: {e}"))
            }
            Err(e) => {
                // It may have started on the rings: neither can go on.
                error!("the new daemon went silent after taking the sets ({e}): stopping");
                self.handed_over = true;
                self.handoff_lost = Some(format!(
                    "the new daemon went silent after taking the sets ({e})"
                ));
                Err(format!(
                    "the new daemon went silent after taking the sets ({e}); this daemon stops"
                ))
            }
        }
    }

    /// The `restart` call: starts this binary again (its path and
    /// arguments as this process was started with), with `--takeover`;
    /// the new process takes this one's sockets over by the `takeover`
    /// call. Its pid.
    pub(super) fn restart(&mut self) -> Result<u32, String> {
        if let Some(why) = not_handed_over(self.ctl.config(), &self.opts) {
            return Err(why);
        }
        let mut args = std::env::args_os();
        let bin = args.next().ok_or("no program name to start again")?;
        let args: Vec<_> = args.filter(|a| a != "--takeover").collect();
        let child = std::process::Command::new(&bin)
            .args(&args)
            .arg("--takeover")
            .stdin(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", Path::new(&bin).display()))?;
        info!(pid = child.id(), bin = %Path::new(&bin).display(), "restart: the new daemon started, it takes over");
        Ok(child.id())
    }

    /// Whether this daemon handed its sockets over and must exit.
    pub fn handed_over(&self) -> bool {
        self.handed_over
    }

    /// Leaves every XDP program where it is and its maps alive: the new
    /// daemon's, or, if replacing failed, this one's still sending to the
    /// sockets the new daemon serves. The process is about to exit.
    pub(super) fn leave_programs(&mut self) {
        for (_, a) in std::mem::take(&mut self.ifaces) {
            std::mem::forget(a);
        }
        if let Some(s) = self.snoop.take() {
            std::mem::forget(s);
        }
    }

    /// Stops every worker between two rounds and takes its set back.
    fn stop_workers_for_handoff(&mut self) -> Result<Vec<XskSet>, String> {
        self.stop_workers.store(true, Ordering::Relaxed);
        let mut sets = Vec::new();
        let mut failed = None;
        for w in std::mem::take(&mut self.workers) {
            match w.thread.map(|t| t.join()) {
                Some(Ok(Ok(set))) => sets.push(set),
                Some(Ok(Err(e))) => failed = Some(format!("worker {}: {e}", w.id)),
                _ => failed = Some(format!("worker {} panicked or was gone", w.id)),
            }
        }
        self.stop_workers.store(false, Ordering::Relaxed);
        if let Some(f) = failed {
            self.handed_over = true;
            self.handoff_lost = Some(f.clone());
            return Err(format!("{f}: stopping"));
        }
        Ok(sets)
    }

    /// Workers again on `sets` (this daemon's own, taken back), their
    /// sockets claimed for its running ports.
    fn restart_workers(&mut self, sets: Vec<XskSet>) -> Result<(), String> {
        let mut pending = Vec::new();
        for (name, a) in &self.ifaces {
            for q in 0..a.queues {
                pending.push(Pending {
                    iface: name.clone(),
                    no: a.no,
                    queue: q,
                    key: a.key,
                    worker: q as usize % self.opts.workers,
                });
            }
        }
        self.takeover = Some(pending);
        let r = self.claim(sets);
        self.takeover = None;
        r.map(|_| ()).map_err(|e| {
            let why = format!("taking the sets back: {e}");
            self.handed_over = true;
            self.handoff_lost = Some(why.clone());
            format!("{why}; stopping")
        })
    }
}

/// The sets of `handoffs` adopted again from `fds` (this process's own:
/// the new daemon refused, or never got them).
fn readopt(
    handoffs: &[Handoff],
    fds: &mut Vec<OwnedFd>,
    counts: &[usize],
) -> Result<Vec<XskSet>, String> {
    adopt_with_counts(handoffs.to_vec(), std::mem::take(fds), counts)
}

/// Every worker's set adopted from its handoff and its fds.
fn adopt_all(workers: Vec<Handoff>, fds: Vec<OwnedFd>) -> Result<Vec<XskSet>, String> {
    let counts: Vec<usize> = workers.iter().map(Handoff::fds).collect();
    adopt_with_counts(workers, fds, &counts)
}

fn adopt_with_counts(
    workers: Vec<Handoff>,
    fds: Vec<OwnedFd>,
    counts: &[usize],
) -> Result<Vec<XskSet>, String> {
    if counts.iter().sum::<usize>() != fds.len() || counts.len() != workers.len() {
        return Err(format!(
            "{} fds for {} worker(s) that need {}",
            fds.len(),
            workers.len(),
            counts.iter().sum::<usize>()
        ));
    }
    let mut fds = fds.into_iter();
    workers
        .into_iter()
        .zip(counts)
        .enumerate()
        .map(|(id, (h, &n))| {
            let mine: Vec<OwnedFd> = fds.by_ref().take(n).collect();
            XskSet::adopt(h, mine).map_err(|e| format!("worker {id}'s set: {e}"))
        })
        .collect()
}

/// Whether a failed exchange failed before the new daemon could have
/// the fds (the send itself).
fn sent_nothing(e: &str) -> bool {
    e.contains("Broken pipe") || e.contains("Connection refused")
}

/// Where a new daemon listens for the running one's sets: beside its
/// control socket, named by the new process.
fn handoff_path(running: &Path) -> PathBuf {
    let mut p = running.as_os_str().to_owned();
    p.push(format!(".takeover-{}", std::process::id()));
    PathBuf::from(p)
}

/// Calls `takeover` on the running daemon's control socket, on a thread:
/// it answers only once the handoff is over. `Err`: what it said.
fn ask(running: &Path, path: &Path) -> std::thread::JoinHandle<Result<(), String>> {
    let running = running.to_owned();
    let path = path.to_string_lossy().into_owned();
    std::thread::spawn(move || {
        let mut c = xvs_ctl::client::Client::connect(&running, Duration::from_secs(5))
            .map_err(|e| format!(" (the running daemon's control socket: {e})"))?;
        c.call(&xvs_ctl::protocol::Method::Takeover(
            xvs_ctl::protocol::TakeoverParams { path },
        ))
        .map(|_| ())
        .map_err(|e| format!(" (the running daemon said: {e})"))
    })
}

/// The running daemon's connection, waited for at most `wait`.
fn accept(listener: &UnixListener, wait: Duration) -> Result<UnixStream, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + wait;
    loop {
        match listener.accept() {
            Ok((c, _)) => {
                c.set_nonblocking(false).map_err(|e| e.to_string())?;
                return Ok(c);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err(format!(
                        "the running daemon did not connect within {wait:?}"
                    ));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Waits (bounded) until the other end closes `conn`.
fn wait_closed(conn: &UnixStream, wait: Duration) {
    let _ = conn.set_read_timeout(Some(wait));
    let mut b = [0u8; 1];
    let _ = std::io::Read::read(&mut &*conn, &mut b);
}
