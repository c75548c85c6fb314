//! The client side of the control socket: connect (with a timeout), send a
//! request line, read the answer line, and tell apart "the daemon could not
//! be reached" (exit 2 in xvsctl) from "the daemon refused" (exit 1).

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;
use xvs_config::{Config, Direction};

use crate::command::Command;
use crate::protocol::{
    codes, AclRow, AclShowParams, AddrRow, ArpShowParams, DumpFlowsParams, FdbRow, FdbShowParams,
    FlowRow, HelloResult, Id, Method, NeighRow, Request, Response, RouteRow, RpcError, StatsParams,
    StatsRow, TransactParams, TransactResult, TunnelPortRow, WorkerStatsRow, MAX_REQUEST_BYTES,
    MAX_RESPONSE_BYTES,
};

/// Why a call failed. [`ClientError::exit_code`] maps it to xvsctl's exit
/// status.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach xvsd at {path}: {source}{hint}")]
    Connect {
        path: String,
        source: io::Error,
        /// What to check, by errno.
        hint: &'static str,
    },
    #[error("lost the connection to xvsd at {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("xvsd at {path} did not answer within {secs:.1} s")]
    Timeout { path: String, secs: f64 },
    #[error("xvsd at {path} closed the connection without answering")]
    Closed { path: String },
    #[error("unexpected answer from xvsd at {path}: {message}")]
    Protocol { path: String, message: String },
    /// Refused before sending: the request is over the size limit.
    #[error("request of {size} bytes is over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    /// The daemon answered with an error.
    #[error("{0}")]
    Rejected(RpcError),
}

impl ClientError {
    /// 1 for a request the daemon (or the size limit) refused; 2 when the
    /// request did not get through or got no usable answer, including a
    /// daemon that refuses the connection itself (permission, too busy,
    /// no answer in time): those are about reaching it, not about the
    /// request.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Rejected(e) if is_reach_code(e.code) => 2,
            ClientError::Rejected(_) | ClientError::TooLarge { .. } => 1,
            _ => 2,
        }
    }

    /// Whether the daemon could not be reached (see [`Self::exit_code`]).
    pub fn is_unreachable(&self) -> bool {
        self.exit_code() == 2
    }
}

fn is_reach_code(code: i64) -> bool {
    matches!(
        code,
        codes::PERMISSION_DENIED | codes::BUSY | codes::TIMEOUT | codes::IDLE
    )
}

/// One connection to xvsd. Requests on it are sequential.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    timeout: Duration,
    next_id: i64,
}

impl Client {
    /// Connects within `timeout`; every later read and write has the same
    /// timeout.
    pub fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<Client, ClientError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let stream = connect_timeout(&path, timeout).map_err(|source| {
            let hint = match source.raw_os_error() {
                Some(libc::ENOENT) => " (is xvsd running? is --socket right?)",
                Some(libc::ECONNREFUSED) => " (a stale socket: xvsd is not running)",
                Some(libc::EACCES) | Some(libc::EPERM) => {
                    " (run as root or as a member of the socket's group)"
                }
                Some(libc::EAGAIN) | Some(libc::ETIMEDOUT) => {
                    " (xvsd is not accepting connections)"
                }
                _ => "",
            };
            ClientError::Connect {
                path: shown.clone(),
                source,
                hint,
            }
        })?;
        let io_err = |source| ClientError::Io {
            path: shown.clone(),
            source,
        };
        // A zero timeout would mean "block forever" to the socket calls.
        let t = Some(timeout.max(Duration::from_millis(1)));
        stream.set_read_timeout(t).map_err(io_err)?;
        stream.set_write_timeout(t).map_err(io_err)?;
        let reader = BufReader::new(stream.try_clone().map_err(io_err)?);
        Ok(Client {
            path,
            writer: stream,
            reader,
            timeout,
            next_id: 1,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one request and returns its result, or the daemon's error as
    /// [`ClientError::Rejected`].
    pub fn call(&mut self, method: &Method) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let req = Request::new(Id::Number(id), method);
        let mut line = serde_json::to_vec(&req).map_err(|e| self.protocol(e.to_string()))?;
        if line.len() > MAX_REQUEST_BYTES {
            return Err(ClientError::TooLarge {
                size: line.len(),
                limit: MAX_REQUEST_BYTES,
            });
        }
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .and_then(|()| self.writer.flush())
            .map_err(|e| self.io(e))?;
        let answer = self.read_line()?;
        let resp: Response = serde_json::from_slice(&answer)
            .map_err(|e| self.protocol(format!("not a JSON-RPC response: {e}")))?;
        // A null id comes with errors about a request the server could not
        // read: still the answer to ours.
        if resp.id != Id::Number(id) && resp.id != Id::Null {
            return Err(self.protocol(format!(
                "answer to request {} while waiting for {id}",
                resp.id
            )));
        }
        resp.into_result().map_err(ClientError::Rejected)
    }

    /// [`Self::call`], with the result read as `T`.
    pub fn call_as<T: DeserializeOwned>(&mut self, method: &Method) -> Result<T, ClientError> {
        let v = self.call(method)?;
        serde_json::from_value(v).map_err(|e| {
            self.protocol(format!(
                "result of {} does not have the expected shape ({e}); is xvsd of another protocol version?",
                method.name()
            ))
        })
    }

    pub fn hello(&mut self) -> Result<HelloResult, ClientError> {
        self.call_as(&Method::Hello)
    }

    /// One atomic transaction.
    pub fn transact(&mut self, commands: Vec<Command>) -> Result<TransactResult, ClientError> {
        self.call_as(&Method::Transact(TransactParams { commands }))
    }

    pub fn show(&mut self) -> Result<Config, ClientError> {
        self.call_as(&Method::Show)
    }

    pub fn fdb_show(&mut self, bridge: Option<String>) -> Result<Vec<FdbRow>, ClientError> {
        self.call_as(&Method::FdbShow(FdbShowParams { bridge }))
    }

    pub fn arp_show(&mut self, bridge: Option<String>) -> Result<Vec<AddrRow>, ClientError> {
        self.call_as(&Method::ArpShow(ArpShowParams { bridge }))
    }

    pub fn neigh_show(&mut self) -> Result<Vec<NeighRow>, ClientError> {
        self.call_as(&Method::NeighShow)
    }

    pub fn route_show(&mut self) -> Result<Vec<RouteRow>, ClientError> {
        self.call_as(&Method::RouteShow)
    }

    pub fn dump_flows(&mut self, bridge: Option<String>) -> Result<Vec<FlowRow>, ClientError> {
        self.call_as(&Method::DumpFlows(DumpFlowsParams { bridge }))
    }

    pub fn acl_show(
        &mut self,
        port: String,
        dir: Option<Direction>,
    ) -> Result<Vec<AclRow>, ClientError> {
        self.call_as(&Method::AclShow(AclShowParams { port, dir }))
    }

    pub fn stats(
        &mut self,
        target: Option<String>,
        per_worker: bool,
    ) -> Result<Vec<StatsRow>, ClientError> {
        self.call_as(&Method::Stats(StatsParams { target, per_worker }))
    }

    pub fn worker_stats(&mut self) -> Result<Vec<WorkerStatsRow>, ClientError> {
        self.call_as(&Method::WorkerStats)
    }

    pub fn tunnel_ports(&mut self) -> Result<Vec<TunnelPortRow>, ClientError> {
        self.call_as(&Method::TunnelPorts)
    }

    fn read_line(&mut self) -> Result<Vec<u8>, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let mut line = Vec::new();
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(self.timed_out())
                }
                Err(e) => return Err(self.io(e)),
            };
            if buf.is_empty() {
                return Err(ClientError::Closed {
                    path: self.path.display().to_string(),
                });
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            line.extend_from_slice(&buf[..take]);
            self.reader.consume(take);
            if done {
                line.pop();
                return Ok(line);
            }
            if line.len() > MAX_RESPONSE_BYTES {
                return Err(self.protocol(format!("answer longer than {MAX_RESPONSE_BYTES} bytes")));
            }
            // The socket timeout bounds each read; this bounds the whole
            // answer, so a daemon trickling bytes cannot stall us forever.
            if Instant::now() > deadline {
                return Err(self.timed_out());
            }
        }
    }

    fn io(&self, source: io::Error) -> ClientError {
        if matches!(
            source.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            return self.timed_out();
        }
        ClientError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn timed_out(&self) -> ClientError {
        ClientError::Timeout {
            path: self.path.display().to_string(),
            secs: self.timeout.as_secs_f64(),
        }
    }

    fn protocol(&self, message: String) -> ClientError {
        ClientError::Protocol {
            path: self.path.display().to_string(),
            message,
        }
    }
}

/// `connect(2)` on a Unix socket, bounded in time. std has no connect
/// timeout for Unix sockets, and a blocking connect waits as long as the
/// listener's backlog is full (a wedged daemon); non-blocking, a full
/// backlog gives EAGAIN at once, and we retry until the deadline.
fn connect_timeout(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain old data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long (at most 107 bytes) or contains a NUL",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: socket(2) takes no pointers; the result is checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own; OwnedFd closes it on every
    // path out of this function.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let deadline = Instant::now() + timeout;
    loop {
        use std::os::fd::AsRawFd;
        // SAFETY: addr is a valid sockaddr_un that outlives the call, and
        // the length passed is its size.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if r == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::EINPROGRESS) => {
                if Instant::now() >= deadline {
                    return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => return Err(e),
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(stream)
}
