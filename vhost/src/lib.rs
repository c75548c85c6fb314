//! vhost-user ports: a virtual machine's virtio-net device served by xvs,
//! its virtqueues in the guest's shared memory, polled like AF_XDP rings.
//!
//! [`VhostUserPort`] owns one port's socket (xvs listening, or
//! connecting to QEMU's in its `server=on` mode) and a thread that runs
//! one connection at a time through rust-vmm's `vhost-user-backend`
//! (the protocol: features, memory table, vrings, eventfds). A new
//! connection starts from a new device; when one ends (the guest shut
//! down, QEMU killed) the queues are withdrawn from the poller, the guest
//! memory is unmapped with the last of them, and the port waits for (or
//! reconnects to) the next. The packets themselves move only in
//! [`GuestQueues`], on the poller's thread.

mod backend;
mod gso;
mod queue;

pub use backend::{offered_features, Shared, MAX_QUEUE_PAIRS, MAX_QUEUE_SIZE};
pub use queue::{
    header_len, GuestFrameError, GuestQueues, GuestRxError, ImageError, QueueCounters, RingAddrs,
};

use backend::NetBackend;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use vhost::vhost_user::Listener;
use vhost_user_backend::{ShutdownHandle, VhostUserDaemon};
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};

/// Who opens the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// xvs listens on the path; QEMU connects (`-chardev socket,path=..`).
    Server,
    /// QEMU listens (`server=on`); xvs connects, and reconnects after
    /// QEMU restarts.
    Client,
}

/// Why a port could not be started.
#[derive(Debug, thiserror::Error)]
pub enum VhostError {
    #[error("vhost-user socket {path}: cannot listen there: {source}")]
    Listen {
        path: PathBuf,
        source: vhost::vhost_user::Error,
    },
    #[error("vhost-user port {name}: cannot start its thread or eventfd: {source}")]
    Thread {
        name: String,
        source: std::io::Error,
    },
}

/// How often a waiting port looks at its stop flag, and how long a
/// client waits before connecting again.
const TICK: Duration = Duration::from_millis(200);

/// One vhost-user port's socket and protocol thread.
pub struct VhostUserPort {
    name: String,
    path: PathBuf,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    current: Arc<Mutex<Option<ShutdownHandle>>>,
    thread: Option<JoinHandle<()>>,
}

impl VhostUserPort {
    /// Starts serving `path` in `mode`. Once the driver has kicked a queue
    /// the queues are in [`shared`](Self::shared), whose kick eventfd a
    /// sleeping poller waits on. In server mode the socket exists when
    /// this returns (a stale one at the path is replaced).
    /// The device has `pairs` queue pairs (1 to [`MAX_QUEUE_PAIRS`]).
    pub fn start(name: &str, path: &Path, mode: Mode, pairs: usize) -> Result<Self, VhostError> {
        let listener = match mode {
            Mode::Server => {
                Some(
                    Listener::new(path, true).map_err(|source| VhostError::Listen {
                        path: path.into(),
                        source,
                    })?,
                )
            }
            Mode::Client => None,
        };
        let shared = Arc::new(Shared::new(pairs).map_err(|source| VhostError::Thread {
            name: name.into(),
            source,
        })?);
        let stop = Arc::new(AtomicBool::new(false));
        let current = Arc::new(Mutex::new(None));
        let run = Run {
            name: name.to_owned(),
            path: path.to_owned(),
            shared: shared.clone(),
            stop: stop.clone(),
            current: current.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("vhost-{name}"))
            .spawn(move || run.serve(listener))
            .map_err(|source| VhostError::Thread {
                name: name.into(),
                source,
            })?;
        Ok(Self {
            name: name.into(),
            path: path.into(),
            shared,
            stop,
            current,
            thread: Some(thread),
        })
    }

    /// What the protocol thread shares with the poller.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::fmt::Debug for VhostUserPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostUserPort")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Drop for VhostUserPort {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            h.shutdown();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.disconnected();
    }
}

/// The protocol thread's state.
struct Run {
    name: String,
    path: PathBuf,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    current: Arc<Mutex<Option<ShutdownHandle>>>,
}

impl Run {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// One connection after another until the port is dropped.
    fn serve(self, mut listener: Option<Listener>) {
        while !self.stopped() {
            // Wait for a peer before making a device (a device is a thread).
            let ready = match listener.as_ref() {
                Some(l) => self.readable(l),
                None => {
                    self.path.exists() || {
                        std::thread::sleep(TICK);
                        false
                    }
                }
            };
            if !ready {
                continue;
            }
            let daemon = match NetBackend::new(self.shared.clone())
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    VhostUserDaemon::new(
                        self.name.clone(),
                        b,
                        GuestMemoryAtomic::new(GuestMemoryMmap::new()),
                    )
                    .map_err(|e| e.to_string())
                }) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(port = %self.name, "vhost-user: cannot create the device: {e}");
                    std::thread::sleep(TICK);
                    continue;
                }
            };
            let mut daemon = daemon;
            let started = match listener.as_mut() {
                Some(l) => daemon.start(l).map_err(|e| e.to_string()),
                None => daemon
                    .start_client(&self.path.to_string_lossy())
                    .map_err(|e| e.to_string()),
            };
            if let Err(e) = started {
                if listener.is_some() {
                    tracing::warn!(port = %self.name, "vhost-user: accepting a connection: {e}");
                }
                // A client retries until QEMU's socket is there.
                std::thread::sleep(TICK);
                Self::end(&daemon);
                continue;
            }
            tracing::info!(port = %self.name, path = %self.path.display(), "vhost-user: connected");
            *self.current.lock().unwrap_or_else(|e| e.into_inner()) = daemon.shutdown_handle();
            if self.stopped() {
                daemon.request_shutdown();
            }
            let r = daemon.wait();
            self.current
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            self.shared.disconnected();
            Self::end(&daemon);
            match r {
                Ok(()) => tracing::info!(port = %self.name, "vhost-user: disconnected"),
                Err(e) => tracing::warn!(port = %self.name, "vhost-user: connection ended: {e}"),
            }
        }
        if listener.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Waits up to a tick for a connection to accept; false if none came
    /// (or the port is stopping).
    fn readable(&self, l: &Listener) -> bool {
        let mut pfd = libc::pollfd {
            fd: l.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, TICK.as_millis() as i32) };
        n > 0 && !self.stopped()
    }

    /// Stops the library's epoll thread of a finished connection.
    fn end(daemon: &VhostUserDaemon<NetBackend>) {
        for h in daemon.get_epoll_handlers() {
            h.send_exit_event();
        }
    }
}
