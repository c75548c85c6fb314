//! The control socket server against clients that behave and clients that
//! do not: every bad request gets a JSON-RPC error that says what is wrong,
//! and the server (and the other connections) stay healthy.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use common::{temp_dir, FakeDaemon};
use serde_json::{json, Value};
use xvs_ctl::client::Client;
use xvs_ctl::protocol::{codes, MAX_REQUEST_BYTES};
use xvs_ctl::server::{Server, ServerError, ServerOptions};

/// A client that speaks raw lines.
struct Raw {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Raw {
    fn connect(path: &std::path::Path) -> Raw {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Raw { stream, reader }
    }

    fn send(&mut self, line: &str) {
        self.stream.write_all(line.as_bytes()).unwrap();
        self.stream.write_all(b"\n").unwrap();
    }

    fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).unwrap();
        assert!(n > 0, "connection closed");
        serde_json::from_str(&line).unwrap()
    }

    fn call(&mut self, line: &str) -> Value {
        self.send(line);
        self.recv()
    }

    /// True once the server has closed the connection. (A close with our
    /// unread bytes still queued on its side shows as a reset.)
    fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        match self.reader.read(&mut buf) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    }
}

fn code(v: &Value) -> i64 {
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no error in {v}"))
}

fn message(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

const ADD_BR: &str = r#"{"jsonrpc":"2.0","id":1,"method":"transact","params":{"commands":[{"op":"add-br","name":"br0"},{"op":"add-port","bridge":"br0","name":"vm1"}]}}"#;
const SHOW: &str = r#"{"jsonrpc":"2.0","id":2,"method":"show"}"#;

#[test]
fn a_valid_transaction_commits_and_shows() {
    let d = FakeDaemon::start("valid");
    let mut c = Raw::connect(d.path());
    let r = c.call(ADD_BR);
    assert_eq!(
        r,
        json!({"jsonrpc":"2.0","id":1,"result":{"applied":2,"changed":true}})
    );
    let r = c.call(SHOW);
    assert_eq!(r["id"], 2);
    assert_eq!(r["result"]["bridges"][0]["name"], "br0");
    assert_eq!(r["result"]["ports"][0]["number"], 1);

    let r = c.call(r#"{"jsonrpc":"2.0","id":"h","method":"hello"}"#);
    assert_eq!(r["id"], "h");
    assert_eq!(r["result"]["protocol_version"], 1);
    assert_eq!(r["result"]["daemon"], "xvsd");

    // A rejected transaction lists every problem and changes nothing.
    let before = d.config();
    let r = c.call(
        r#"{"jsonrpc":"2.0","id":3,"method":"transact","params":{"commands":[
            {"op":"add-br","name":"br1"},
            {"op":"add-port","bridge":"br1","name":"vm1"},
            {"op":"add-tunnel","bridge":"br1","name":"vx1","kind":"vxlan","vni":16777216,"remotes":["192.0.2.2"]}]}}"#
            .replace('\n', "")
            .as_str(),
    );
    assert_eq!(code(&r), codes::REJECTED);
    let problems = r["error"]["data"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0]
        .as_str()
        .unwrap()
        .starts_with("command 2 (add-port br1 vm1): port \"vm1\" already exists"));
    assert!(problems[1]
        .as_str()
        .unwrap()
        .starts_with("command 3 (add-tunnel vx1): VNI 16777216"));
    assert_eq!(d.config(), before);
}

#[test]
fn a_request_cut_in_half_is_an_error_and_the_connection_goes_on() {
    let d = FakeDaemon::start("half");
    let mut c = Raw::connect(d.path());
    let r = c.call(&ADD_BR[..ADD_BR.len() / 2]);
    assert_eq!(code(&r), codes::PARSE_ERROR);
    assert!(message(&r).contains("line 1 column"), "{r}");
    assert_eq!(r["id"], Value::Null);
    // Same connection, a whole request.
    assert_eq!(c.call(ADD_BR)["result"]["applied"], 2);
    // Blank lines are ignored; CRLF is accepted.
    c.send("");
    c.stream
        .write_all(format!("{SHOW}\r\n").as_bytes())
        .unwrap();
    assert_eq!(c.recv()["id"], 2);

    // Half a request and then the end of the stream: told, then closed.
    let mut c = Raw::connect(d.path());
    c.stream.write_all(&ADD_BR.as_bytes()[..40]).unwrap();
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let r = c.recv();
    assert_eq!(code(&r), codes::PARSE_ERROR);
    assert!(message(&r).contains("incomplete request"), "{r}");
    assert!(c.closed());
    assert_eq!(d.config().bridges.len(), 1);
}

/// Deterministic noise (xorshift), newline-free unless asked.
fn garbage(n: usize, newline_every: Option<usize>) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|i| {
            if newline_every.is_some_and(|k| i % k == k - 1) {
                return b'\n';
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x as u8 {
                b'\n' => b'x',
                b => b,
            }
        })
        .collect()
}

#[test]
fn ten_megabytes_of_garbage_are_refused_and_the_server_stays_healthy() {
    let d = FakeDaemon::start("garbage");

    // One 10 MB "line": too large, answered, closed.
    let mut c = Raw::connect(d.path());
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        // The server closes once the limit is passed: the rest fails (EPIPE).
        let _ = w.write_all(&garbage(10 << 20, None));
    });
    let r = c.recv();
    assert_eq!(code(&r), codes::REQUEST_TOO_LARGE);
    assert!(message(&r).contains(&MAX_REQUEST_BYTES.to_string()), "{r}");
    assert!(c.closed());
    writer.join().unwrap();

    // 10 MB of short garbage lines: one parse error each, the connection
    // stays usable.
    let mut c = Raw::connect(d.path());
    let mut w = c.stream.try_clone().unwrap();
    let lines = 10 << 10;
    let writer = std::thread::spawn(move || {
        w.write_all(&garbage(lines * 1024, Some(1024))).unwrap();
        w.write_all(format!("{SHOW}\n").as_bytes()).unwrap();
    });
    let mut errors = 0;
    loop {
        let r = c.recv();
        if r.get("result").is_some() {
            break;
        }
        assert!(
            matches!(code(&r), codes::PARSE_ERROR | codes::INVALID_REQUEST),
            "{r}"
        );
        errors += 1;
    }
    writer.join().unwrap();
    // Lines that are only whitespace are skipped, so a few may not answer.
    assert!(errors > lines * 9 / 10, "{errors}");

    // Others were never affected.
    let mut c = Raw::connect(d.path());
    assert_eq!(c.call(ADD_BR)["result"]["applied"], 2);
}

#[test]
fn a_client_that_never_writes_is_timed_out_and_others_are_unaffected() {
    let opts = ServerOptions {
        idle_timeout: Duration::from_millis(600),
        ..Default::default()
    };
    let d = FakeDaemon::start_with("idle", opts, None, Default::default());
    let t = Instant::now();
    let mut silent = Raw::connect(d.path());
    let mut busy = Raw::connect(d.path());
    for i in 0..5 {
        let r = busy.call(&SHOW.replace("\"id\":2", &format!("\"id\":{i}")));
        assert_eq!(r["id"], i);
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = silent.recv();
    assert_eq!(code(&r), codes::IDLE);
    assert!(silent.closed());
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // The busy one kept its own deadline, renewed by each answer.
    assert_eq!(busy.call(SHOW)["id"], 2);
}

#[test]
fn unknown_methods_and_invalid_params_and_requests_are_named() {
    let d = FakeDaemon::start("invalid");
    let mut c = Raw::connect(d.path());
    let r = c.call(r#"{"jsonrpc":"2.0","id":5,"method":"reboot"}"#);
    assert_eq!(
        (code(&r), r["id"].as_i64()),
        (codes::METHOD_NOT_FOUND, Some(5))
    );
    assert!(message(&r).contains("\"reboot\"") && message(&r).contains("transact"));

    let r = c.call(r#"{"jsonrpc":"2.0","id":6,"method":"transact","params":{"commands":[{"op":"add-br","name":"br0"},{"op":"fdb-add","bridge":"br0","mac":"nope","port":"vm1"}]}}"#);
    assert_eq!(code(&r), codes::INVALID_PARAMS);
    assert!(message(&r).contains("params.commands[1].mac"), "{r}");
    assert!(message(&r).contains("invalid MAC address \"nope\""), "{r}");

    let r = c.call(r#"{"jsonrpc":"2.0","id":7,"method":"stats","params":{"target":3}}"#);
    assert_eq!(code(&r), codes::INVALID_PARAMS);
    assert!(message(&r).contains("params.target"), "{r}");

    let r = c.call(r#"{"jsonrpc":"2.0","method":"show"}"#);
    assert_eq!(code(&r), codes::INVALID_REQUEST);
    let r = c.call(r#"[{"jsonrpc":"2.0","id":1,"method":"show"}]"#);
    assert_eq!(code(&r), codes::INVALID_REQUEST);
    let r = c.call("\u{feff}{}");
    assert_eq!(code(&r), codes::PARSE_ERROR);

    // Nothing changed, and the connection still works.
    assert_eq!(d.config(), Default::default());
    assert_eq!(c.call(SHOW)["id"], 2);
}

#[test]
fn connections_are_bounded() {
    let opts = ServerOptions {
        max_connections: 2,
        ..Default::default()
    };
    let d = FakeDaemon::start_with("limit", opts, None, Default::default());
    let mut a = Raw::connect(d.path());
    let mut b = Raw::connect(d.path());
    // Each answer stamps its connection: b's first, a's a few ms later, so
    // b is idle longest whenever the server got round to accepting it.
    assert_eq!(b.call(SHOW)["id"], 2);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(a.call(SHOW)["id"], 2);
    // Full: the newcomer takes the place of b, idle longest.
    let mut c = Raw::connect(d.path());
    assert_eq!(c.call(SHOW)["id"], 2);
    assert_eq!(code(&b.recv()), codes::IDLE);
    assert!(b.closed());
    // Full of calls in progress: nobody to close, so BUSY.
    d.delay_ms.store(1500, std::sync::atomic::Ordering::SeqCst);
    a.send(SHOW);
    c.send(SHOW);
    std::thread::sleep(Duration::from_millis(300));
    let mut e = Raw::connect(d.path());
    let r = e.recv();
    assert_eq!(code(&r), codes::BUSY);
    assert!(e.closed());
    d.delay_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(a.recv()["id"], 2);
    assert_eq!(c.recv()["id"], 2);
    drop(a);
    // The slot comes back once the server sees the close.
    let t = Instant::now();
    loop {
        let mut c = Raw::connect(d.path());
        // While still full, the server answers BUSY and closes at once,
        // so our request may meet a closed socket (EPIPE): read the
        // answer either way.
        let sent = c.stream.write_all(format!("{SHOW}\n").as_bytes()).is_ok();
        let r = c.recv();
        if sent && r.get("result").is_some() {
            break;
        }
        assert_eq!(code(&r), codes::BUSY);
        assert!(t.elapsed() < Duration::from_secs(5), "slot never released");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn idle_connections_make_room_for_a_new_client() {
    let opts = ServerOptions {
        max_connections: 32,
        ..Default::default()
    };
    let d = FakeDaemon::start_with("evict", opts, None, Default::default());
    // One connection that talked once, then 40 that never say anything:
    // with the old server the last 8 got BUSY and every client after them
    // waited for the 60 s idle timeout.
    let mut talked = Raw::connect(d.path());
    assert_eq!(talked.call(SHOW)["id"], 2);
    let idle: Vec<Raw> = (0..40)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(2));
            Raw::connect(d.path())
        })
        .collect();
    let t = Instant::now();
    let mut c = Client::connect(d.path(), Duration::from_secs(5)).expect("connect");
    let r = c
        .call(&xvs_ctl::protocol::Method::Show)
        .expect("a real request gets in");
    assert!(r.is_object(), "{r}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The first to go was the one idle longest, told why.
    let r = talked.recv();
    assert_eq!(code(&r), codes::IDLE);
    assert!(message(&r).contains("idle longest"), "{r}");
    drop(idle);
}

#[test]
fn a_slow_daemon_is_a_timeout_not_a_hang() {
    let opts = ServerOptions {
        reply_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let d = FakeDaemon::start_with("slow", opts, None, Default::default());
    d.delay_ms.store(1000, std::sync::atomic::Ordering::SeqCst);
    let mut c = Raw::connect(d.path());
    let r = c.call(SHOW);
    assert_eq!((code(&r), r["id"].as_i64()), (codes::TIMEOUT, Some(2)));
    d.delay_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    // The late answer to the first call is dropped, not sent as the answer
    // to the next one.
    std::thread::sleep(Duration::from_millis(1200));
    let r = c.call(&SHOW.replace("\"id\":2", "\"id\":3"));
    assert_eq!(r["id"], 3);
    assert!(r.get("result").is_some());
}

#[test]
fn bind_sets_mode_and_group_and_handles_old_sockets() {
    let dir = temp_dir("bind");
    let path = dir.join("a/b/xvsd.sock");
    // A stale socket (its listener gone) is replaced.
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    drop(UnixListener::bind(&path).unwrap());
    // Only root may hand the socket to another group.
    let group = xvs_tests::require_root().then_some(4242);
    let s = Server::bind(&path, group).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    if let Some(g) = group {
        assert_eq!(meta.gid(), g);
    }
    // A live one is not taken over.
    match Server::bind(&path, None) {
        Err(ServerError::InUse { .. }) => {}
        other => panic!("{other:?}"),
    }
    drop(s);
    // Not a socket: left alone.
    let file = dir.join("file");
    std::fs::write(&file, "keep me").unwrap();
    assert!(matches!(
        Server::bind(&file, None),
        Err(ServerError::NotASocket { .. })
    ));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

    // Shutdown removes the socket file.
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let h = Server::bind(&path, None).unwrap().spawn(tx).unwrap();
    assert!(path.exists());
    h.shutdown();
    assert!(!path.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_client_tells_unreachable_from_rejected() {
    let dir = temp_dir("client");
    let e = Client::connect(dir.join("none.sock"), Duration::from_secs(1)).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("is xvsd running"), "{e}");

    let d = FakeDaemon::start("client");
    let mut c = Client::connect(d.path(), Duration::from_secs(5)).unwrap();
    let hello = c.hello().unwrap();
    assert_eq!(hello.protocol_version, xvs_ctl::protocol::PROTOCOL_VERSION);
    let e = c
        .transact(vec![xvs_ctl::command::Command::DelBr(
            xvs_ctl::command::DelBr {
                name: "x".into(),
                if_exists: false,
            },
        )])
        .unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(e.to_string().contains("bridge \"x\" not found"), "{e}");
    assert!(c.show().unwrap().bridges.is_empty());

    // A daemon that does not answer in time.
    d.delay_ms.store(1500, std::sync::atomic::Ordering::SeqCst);
    let mut c = Client::connect(d.path(), Duration::from_millis(300)).unwrap();
    let e = c.show().unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("did not answer"), "{e}");
    d.delay_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Run as a child process under another uid by `peers_are_checked`: says
/// hello and prints the answer line.
#[test]
#[ignore = "helper: run by peers_are_checked as another user"]
fn peer_child() {
    let Ok(path) = std::env::var("XVS_CTL_PEER_SOCKET") else {
        return;
    };
    let mut c = Raw::connect(std::path::Path::new(&path));
    let r = c.call(r#"{"jsonrpc":"2.0","id":1,"method":"hello"}"#);
    println!("ANSWER {r}");
}

/// Who may connect, with real processes of other users: a non-root peer
/// outside the group is refused; one whose primary or supplementary group
/// is the socket's group gets in.
#[test]
fn peers_are_checked() {
    // Root, to run children as other users.
    if !xvs_tests::require_root() {
        return;
    }
    let group = 4242;
    let d = FakeDaemon::start_with(
        "peer",
        ServerOptions::default(),
        Some(group),
        Default::default(),
    );
    // The file mode would already keep these users out; open it so the
    // credential check itself is what is tested.
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(
        d.path().parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    // The other user runs a copy of this binary: the build tree may sit
    // where that user cannot reach it (under /root, mode 0700).
    let copy = temp_dir("peer-exe");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = copy.join("server-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Every run must print the server's answer: a child that prints
    // nothing (the server hung up, or the child could not run) fails the
    // test, because a refusal without an answer is what is under test.
    let run_as = |gid: u32, groups: Vec<u32>| -> String {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args([
            "--exact",
            "peer_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("XVS_CTL_PEER_SOCKET", d.path());
        drop_privileges(&mut cmd, 65534, gid, groups.clone());
        let o = cmd
            .output()
            .unwrap_or_else(|e| panic!("running {} as uid 65534 gid {gid}: {e}", exe.display()));
        let out = String::from_utf8_lossy(&o.stdout);
        out.lines()
            // libtest prints `test peer_child ... ` before the line.
            .find_map(|l| l.split_once("ANSWER ").map(|(_, a)| a.to_string()))
            .unwrap_or_else(|| {
                panic!(
                    "the peer (uid 65534, gid {gid}, groups {groups:?}) got no answer ({}):\n{out}{}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr)
                )
            })
    };
    let denied = run_as(65534, vec![65534]);
    let v: Value = serde_json::from_str(&denied).unwrap();
    assert_eq!(code(&v), codes::PERMISSION_DENIED, "{v}");
    assert!(message(&v).contains("uid 65534"), "{v}");

    let v: Value = serde_json::from_str(&run_as(group, vec![group])).unwrap();
    assert_eq!(v["result"]["daemon"], "xvsd", "primary group: {v}");
    let v: Value = serde_json::from_str(&run_as(65534, vec![65534, group])).unwrap();
    assert_eq!(v["result"]["daemon"], "xvsd", "supplementary group: {v}");
    let _ = std::fs::remove_dir_all(&copy);
}

/// Sets the child's groups, gid and uid, in that order (std's own `uid`
/// and `gid` clear supplementary groups, and its `groups` is unstable).
fn drop_privileges(cmd: &mut std::process::Command, uid: u32, gid: u32, groups: Vec<u32>) {
    use std::os::unix::process::CommandExt;
    let groups: Vec<libc::gid_t> = groups.into_iter().collect();
    // SAFETY: the closure runs in the forked child before exec and calls
    // only setgroups, setgid and setuid (async-signal-safe system calls) on
    // memory allocated before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
