//! The control socket server xvsd embeds.
//!
//! It owns everything about the socket that is not the daemon's business:
//! the file (parent directory, stale socket, mode 0660 and group), the
//! peer-credential check, framing and its limits, timeouts, JSON and
//! JSON-RPC errors, and `hello`. The daemon sees only well-formed typed
//! calls ([`Call`]) on a channel and answers each on the call's own reply
//! channel, from whatever thread owns the running config; so a client that
//! misbehaves costs one connection thread, never the daemon's control loop.
//!
//! Threads: one accepting, one per connection (at most
//! [`ServerOptions::max_connections`]). At the limit, a new connection
//! takes the place of the one idle longest, which gets a [`codes::IDLE`](crate::protocol::codes::IDLE)
//! error and is closed within a [`POLL_SLICE`]: otherwise a handful of
//! clients that connect and say nothing would lock every other client out
//! for the whole idle timeout. Only when every connection is in the middle
//! of a call does a new one get a [`codes::BUSY`](crate::protocol::codes::BUSY) error and is closed.
//! Every blocking call has a bound:
//! reads wake every [`POLL_SLICE`] to check the idle deadline and the stop
//! flag, writes time out, waiting for the daemon times out.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use serde::Serialize;

use crate::protocol::{
    parse_request, HelloResult, Id, Method, Request, Response, RpcError, IDLE_TIMEOUT,
    MAX_REQUEST_BYTES, PROTOCOL_VERSION,
};

/// How often blocked reads and the accept loop look at the clock and the
/// stop flag.
pub const POLL_SLICE: Duration = Duration::from_millis(100);

/// One request for the daemon: typed and already checked. Answer it with
/// [`Call::respond`] (or send a [`Response`] on `reply`) exactly once; a
/// call dropped unanswered gets an internal error.
#[derive(Debug)]
pub struct Call {
    pub request: Request,
    pub method: Method,
    pub reply: Sender<Response>,
}

impl Call {
    /// Answers with `result` or the error. The reply channel has room for
    /// the answer, so this never blocks; if the client is gone (timed out
    /// and closed), the answer is dropped.
    pub fn respond<T: Serialize>(self, result: Result<T, RpcError>) {
        let id = self.request.id.clone();
        let resp = match result {
            Ok(v) => Response::ok(id, &v),
            Err(e) => Response::error(id, e),
        };
        let _ = self.reply.try_send(resp);
    }

    /// Answers with an error.
    pub fn fail(self, error: RpcError) {
        self.respond::<()>(Err(error));
    }
}

/// Limits and identity; the defaults are the protocol's constants.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// How long a connection waits for the daemon to take and answer a call.
    pub reply_timeout: Duration,
    /// How long writing an answer may block on a client that does not read.
    pub write_timeout: Duration,
    pub max_request_bytes: usize,
    /// Reported by `hello`.
    pub daemon_version: String,
    /// Called after each call is handed to the daemon, so a daemon that
    /// sleeps in poll(2) on other fds can wake up for it (e.g. by writing
    /// an eventfd) instead of finding it on its next round.
    pub waker: Option<Waker>,
}

/// A wake-up callback for the daemon's loop (see [`ServerOptions::waker`]).
#[derive(Clone)]
pub struct Waker(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waker")
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 32,
            idle_timeout: IDLE_TIMEOUT,
            reply_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            max_request_bytes: MAX_REQUEST_BYTES,
            daemon_version: env!("CARGO_PKG_VERSION").to_string(),
            waker: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("control socket {path}: cannot create directory {dir}: {source}")]
    Dir {
        path: String,
        dir: String,
        source: io::Error,
    },
    #[error("control socket {path}: another process is listening on it (another xvsd?)")]
    InUse { path: String },
    #[error("control socket {path}: exists and is not a socket; not removing it")]
    NotASocket { path: String },
    #[error("control socket {path}: {what}: {source}")]
    Io {
        path: String,
        what: &'static str,
        source: io::Error,
    },
}

/// A bound, not yet serving, control socket.
#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    group: Option<u32>,
    options: ServerOptions,
}

impl Server {
    /// Creates the parent directory, removes a stale socket (one nobody
    /// listens on), binds, and sets mode 0660 and, if given, the group.
    /// Refuses to take over a socket another process listens on, or to
    /// remove a file that is not a socket.
    pub fn bind(path: impl AsRef<Path>, group: Option<u32>) -> Result<Server, ServerError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let io_err = |what: &'static str| {
            let shown = shown.clone();
            move |source| ServerError::Io {
                path: shown,
                what,
                source,
            }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|source| ServerError::Dir {
                path: shown.clone(),
                dir: dir.display().to_string(),
                source,
            })?;
        }
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_socket() => match UnixStream::connect(&path) {
                Ok(_) => return Err(ServerError::InUse { path: shown }),
                Err(_) => fs::remove_file(&path).map_err(io_err("removing the stale socket"))?,
            },
            Ok(_) => return Err(ServerError::NotASocket { path: shown }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("stat")(e)),
        }
        let listener = UnixListener::bind(&path).map_err(io_err("bind"))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o660))
            .map_err(io_err("chmod 0660"))?;
        if let Some(gid) = group {
            std::os::unix::fs::chown(&path, None, Some(gid)).map_err(io_err("chgrp"))?;
        }
        Ok(Server {
            listener,
            path,
            group,
            options: ServerOptions::default(),
        })
    }

    pub fn with_options(mut self, options: ServerOptions) -> Server {
        self.options = options;
        self
    }

    pub fn options_mut(&mut self) -> &mut ServerOptions {
        &mut self.options
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts serving: calls go to `tx`. The daemon keeps the receiver and
    /// answers every [`Call`]. Stop with [`ServerHandle::shutdown`] (or by
    /// dropping the handle), which also removes the socket file.
    pub fn spawn(self, tx: Sender<Call>) -> Result<ServerHandle, ServerError> {
        let shown = self.path.display().to_string();
        self.listener
            .set_nonblocking(true)
            .map_err(|source| ServerError::Io {
                path: shown.clone(),
                what: "set_nonblocking",
                source,
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            options: self.options,
            group: self.group,
            own_uid: current_uid(),
            stop: Arc::clone(&stop),
            active: AtomicUsize::new(0),
            conns: Mutex::new(Vec::new()),
            epoch: Instant::now(),
        });
        let listener = self.listener;
        let thread = std::thread::Builder::new()
            .name("xvs-ctl-accept".into())
            .spawn(move || accept_loop(listener, shared, tx))
            .map_err(|source| ServerError::Io {
                path: shown,
                what: "spawning the accept thread",
                source,
            })?;
        Ok(ServerHandle {
            path: self.path,
            stop,
            thread: Some(thread),
        })
    }
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, removes the socket file and waits for the accept
    /// thread (at most about one [`POLL_SLICE`]). Open connections end
    /// within a slice too; the answers they were waiting for are lost.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

#[derive(Debug)]
struct Shared {
    options: ServerOptions,
    group: Option<u32>,
    own_uid: u32,
    stop: Arc<AtomicBool>,
    active: AtomicUsize,
    /// The open connections, for choosing one to close at the limit.
    conns: Mutex<Vec<Arc<Conn>>>,
    /// The clock of [`Conn::last`].
    epoch: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Marks the connection idle longest (not in a call, not already
    /// closing) to close, to make room for a new one; false if there is
    /// none.
    fn evict_idlest(&self) -> bool {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let victim = conns
            .iter()
            .filter(|c| !c.in_call.load(Ordering::SeqCst) && !c.evict.load(Ordering::SeqCst))
            .min_by_key(|c| c.last.load(Ordering::SeqCst));
        match victim {
            Some(c) => {
                c.evict.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

/// What the accept thread knows of a connection.
#[derive(Debug, Default)]
struct Conn {
    /// When it last sent bytes or got an answer ([`Shared::now_ms`]).
    last: AtomicU64,
    /// Waiting for the daemon's answer: never closed to make room.
    in_call: AtomicBool,
    /// Close at the next look: room is needed.
    evict: AtomicBool,
}

/// Gives back a connection slot when its thread ends, however it ends.
struct Slot<'a> {
    shared: &'a Shared,
    conn: Arc<Conn>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.shared
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|c| !Arc::ptr_eq(c, &self.conn));
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>, tx: Sender<Call>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, POLL_SLICE.as_millis() as libc::c_int) };
        if n <= 0 {
            continue;
        }
        loop {
            match listener.accept() {
                Ok((stream, _)) => admit(stream, &shared, &tx),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EMFILE and the like: back off rather than spin.
                Err(_) => {
                    std::thread::sleep(POLL_SLICE);
                    break;
                }
            }
        }
    }
}

fn admit(stream: UnixStream, shared: &Arc<Shared>, tx: &Sender<Call>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(shared.options.write_timeout));
    let n = shared.active.fetch_add(1, Ordering::SeqCst);
    let max = shared.options.max_connections;
    // Over the limit, the idlest connection makes room; it leaves within a
    // poll slice, so the threads stay bounded (twice the limit at most,
    // however fast clients connect).
    let room = n < max || (n < 2 * max && shared.evict_idlest());
    if !room {
        shared.active.fetch_sub(1, Ordering::SeqCst);
        let max = shared.options.max_connections;
        // Answered from the accept thread: bounded by the write timeout,
        // and a single short line fits the socket buffer anyway.
        let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
        send(
            &stream,
            &Response::error(
                Id::Null,
                RpcError::busy(format!("{max} connections open, the limit; try again")),
            ),
        );
        return;
    }
    let conn = Arc::new(Conn::default());
    conn.last.store(shared.now_ms(), Ordering::SeqCst);
    shared
        .conns
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Arc::clone(&conn));
    let shared2 = Arc::clone(shared);
    let tx = tx.clone();
    let conn2 = Arc::clone(&conn);
    let spawned = std::thread::Builder::new()
        .name("xvs-ctl-conn".into())
        .spawn(move || {
            let _slot = Slot {
                shared: &shared2,
                conn: Arc::clone(&conn2),
            };
            serve(stream, &shared2, &conn2, &tx);
        });
    if spawned.is_err() {
        // The closure (and its slot guard) never ran.
        drop(Slot { shared, conn });
    }
}

fn send(mut stream: &UnixStream, resp: &Response) -> bool {
    let mut line = resp.to_line();
    line.push(b'\n');
    stream
        .write_all(&line)
        .and_then(|()| stream.flush())
        .is_ok()
}

/// What the kernel says about the peer (SO_PEERCRED, taken at connect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// The peer's credentials.
pub fn peer_cred(stream: &UnixStream) -> io::Result<PeerCred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are valid for writes of the sizes given, for the
    // duration of the call; the fd is open (borrowed from the stream).
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// The supplementary groups in a `/proc/PID/status` text (`Groups:` line).
pub fn parse_status_groups(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Who may use the socket: root, the daemon's own user, or a member of
/// `group` (primary or supplementary). Without a group, only the first two.
pub fn peer_allowed(
    cred: &PeerCred,
    own_uid: u32,
    group: Option<u32>,
    supplementary: &[u32],
) -> bool {
    if cred.uid == 0 || cred.uid == own_uid {
        return true;
    }
    match group {
        Some(g) => cred.gid == g || supplementary.contains(&g),
        None => false,
    }
}

/// The gid of a group given by name or number (for a daemon option like
/// `--socket-group xvs`), from /etc/group. `Ok(None)` if there is no such
/// group.
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(Some(gid));
    }
    let text = fs::read_to_string("/etc/group")?;
    Ok(parse_group_file(&text, name))
}

fn parse_group_file(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        if f.next()? != name {
            return None;
        }
        f.nth(1)?.parse().ok()
    })
}

fn current_uid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// The credential check for one connection. Supplementary groups are read
/// only when they decide it. (The pid could be reused between connect and
/// the read; the window is tiny and a reused pid belongs to a process that
/// could have connected itself.)
fn check_peer(stream: &UnixStream, shared: &Shared) -> Result<(), RpcError> {
    let cred = peer_cred(stream).map_err(|e| RpcError::internal(format!("SO_PEERCRED: {e}")))?;
    if peer_allowed(&cred, shared.own_uid, shared.group, &[]) {
        return Ok(());
    }
    let groups = match shared.group {
        Some(_) => fs::read_to_string(format!("/proc/{}/status", cred.pid))
            .map(|s| parse_status_groups(&s))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    if peer_allowed(&cred, shared.own_uid, shared.group, &groups) {
        Ok(())
    } else {
        Err(RpcError::permission_denied(cred.uid, cred.gid))
    }
}

fn serve(stream: UnixStream, shared: &Shared, conn: &Conn, tx: &Sender<Call>) {
    if let Err(e) = check_peer(&stream, shared) {
        send(&stream, &Response::error(Id::Null, e));
        return;
    }
    if stream.set_read_timeout(Some(POLL_SLICE)).is_err() {
        return;
    }
    let opts = &shared.options;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    // Bytes of `buf` already searched for a newline, so a long line that
    // arrives in many pieces is scanned once, not once per piece.
    let mut scanned = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut deadline = Instant::now() + opts.idle_timeout;
    let mut reader = &stream;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        if conn.evict.load(Ordering::SeqCst) {
            let e = RpcError::new(
                crate::protocol::codes::IDLE,
                format!(
                    "{} connections open, the limit, and this one idle longest: closing it to \
                     make room for a new one",
                    opts.max_connections
                ),
            );
            send(&stream, &Response::error(Id::Null, e));
            return;
        }
        let n = match reader.read(&mut chunk) {
            Ok(0) => {
                if buf.iter().any(|b| !b.is_ascii_whitespace()) {
                    let e = RpcError::parse_error_text(format!(
                        "incomplete request: the connection was closed after {} bytes without a newline",
                        buf.len()
                    ));
                    send(&stream, &Response::error(Id::Null, e));
                }
                return;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if Instant::now() >= deadline {
                    send(
                        &stream,
                        &Response::error(Id::Null, RpcError::idle(opts.idle_timeout)),
                    );
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        conn.last.store(shared.now_ms(), Ordering::SeqCst);
        buf.extend_from_slice(&chunk[..n]);
        // Every complete line in the buffer, in order.
        let mut start = 0;
        while let Some(off) = buf[scanned..].iter().position(|&b| b == b'\n') {
            let end = scanned + off;
            if end - start > opts.max_request_bytes {
                send(
                    &stream,
                    &Response::error(Id::Null, RpcError::too_large(opts.max_request_bytes)),
                );
                return;
            }
            let line = &buf[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().any(|b| !b.is_ascii_whitespace()) {
                conn.in_call.store(true, Ordering::SeqCst);
                let resp = handle_line(line, shared, tx);
                let sent = send(&stream, &resp);
                conn.last.store(shared.now_ms(), Ordering::SeqCst);
                conn.in_call.store(false, Ordering::SeqCst);
                if !sent {
                    return;
                }
                deadline = Instant::now() + opts.idle_timeout;
            }
            start = end + 1;
            scanned = start;
        }
        buf.drain(..start);
        scanned = buf.len();
        if buf.len() > opts.max_request_bytes {
            send(
                &stream,
                &Response::error(Id::Null, RpcError::too_large(opts.max_request_bytes)),
            );
            return;
        }
    }
}

fn handle_line(line: &[u8], shared: &Shared, tx: &Sender<Call>) -> Response {
    let request = match parse_request(line) {
        Ok(r) => r,
        Err((id, e)) => return Response::error(id, e),
    };
    let id = request.id.clone();
    let method = match request.method() {
        Ok(m) => m,
        Err(e) => return Response::error(id, e),
    };
    if method == Method::Hello {
        return Response::ok(
            id,
            &HelloResult {
                daemon: "xvsd".into(),
                daemon_version: shared.options.daemon_version.clone(),
                protocol_version: PROTOCOL_VERSION,
                methods: Method::NAMES.iter().map(|s| s.to_string()).collect(),
                pid: Some(std::process::id()),
            },
        );
    }
    let timeout = shared.options.reply_timeout;
    let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
    let call = Call {
        request,
        method,
        reply: reply_tx,
    };
    match tx.send_timeout(call, timeout) {
        Ok(()) => {
            if let Some(w) = &shared.options.waker {
                (w.0)();
            }
        }
        Err(crossbeam_channel::SendTimeoutError::Timeout(_)) => {
            return Response::error(id, RpcError::busy("the daemon's request queue stayed full"))
        }
        Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => {
            return Response::error(id, RpcError::busy("the daemon is shutting down"))
        }
    }
    match reply_rx.recv_timeout(timeout) {
        Ok(mut resp) => {
            // The id is ours to get right, whatever the handler put there.
            resp.id = id;
            resp
        }
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
            Response::error(id, RpcError::timeout(timeout))
        }
        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Response::error(
            id,
            RpcError::internal("the daemon dropped the request without answering"),
        ),
    }
}

/// Sends `resp` on a reply channel without blocking (for daemons that keep
/// the [`Call`]'s parts apart).
pub fn reply(tx: &Sender<Response>, resp: Response) {
    // Full: already answered; disconnected: the connection gave up.
    let _ = tx.try_send(resp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_read_from_proc_status() {
        let status = "Name:\tbash\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 27 1000 \nNgid:\t0\n";
        assert_eq!(parse_status_groups(status), vec![4, 24, 27, 1000]);
        assert_eq!(parse_status_groups("Groups:\t\n"), Vec::<u32>::new());
        assert_eq!(parse_status_groups("Name: x\n"), Vec::<u32>::new());
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(own.contains("Groups:"));
    }

    #[test]
    fn groups_by_name() {
        let file = "root:x:0:\nadm:x:4:syslog\nxvs:x:990:alice,bob\n";
        assert_eq!(parse_group_file(file, "xvs"), Some(990));
        assert_eq!(parse_group_file(file, "xv"), None);
        assert_eq!(group_id("1234").unwrap(), Some(1234));
        assert_eq!(group_id("root").unwrap(), Some(0));
    }

    #[test]
    fn only_root_the_owner_or_the_group_get_in() {
        let user = PeerCred {
            pid: 1,
            uid: 1000,
            gid: 1000,
        };
        let root = PeerCred {
            pid: 1,
            uid: 0,
            gid: 0,
        };
        assert!(peer_allowed(&root, 0, None, &[]));
        assert!(!peer_allowed(&user, 0, None, &[]));
        assert!(!peer_allowed(&user, 0, None, &[1000, 4]));
        assert!(
            peer_allowed(&user, 1000, None, &[]),
            "the daemon's own user"
        );
        assert!(!peer_allowed(&user, 0, Some(990), &[4, 27]));
        assert!(
            peer_allowed(&user, 0, Some(990), &[4, 990]),
            "supplementary group"
        );
        let primary = PeerCred {
            pid: 1,
            uid: 1000,
            gid: 990,
        };
        assert!(peer_allowed(&primary, 0, Some(990), &[]), "primary group");
    }
}
