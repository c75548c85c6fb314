//! Network-namespace test support shared by the integration tests of every
//! crate: a namespace guard that always cleans up (also when the test
//! panics), veth pairs, and the `ip` helpers. Tests need root and iproute2;
//! they check [`is_root`] and skip otherwise.

use std::os::fd::AsRawFd;
use std::process::Command;

/// Whether the tests that create namespaces can run.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `ip ARGS`, panicking with its stderr if it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running ip {args:?}: {e} (is iproute2 installed?)"));
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ip ARGS` and returns its standard output.
pub fn ip_out(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("running ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace for one test, deleted on drop (panics included).
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// `xvs-TAG-PID`, with its loopback up.
    pub fn new(tag: &str) -> Self {
        let name = format!("xvs-{tag}-{}", std::process::id());
        // A leftover from a killed run of the same pid would fail `add`.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME args...`
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// Moves the calling thread into this namespace. Sockets, interface
    /// lookups and XDP attachment made afterwards happen there; sockets
    /// made earlier stay where they were made. Use [`on_thread`] so the
    /// test's own thread stays where it was.
    pub fn enter(&self) {
        enter_netns(&self.name);
    }
}

/// Moves the calling thread into the namespace `name` (for a thread that
/// does not own the [`Netns`] guard).
pub fn enter_netns(name: &str) {
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: `f` is an open namespace file for the duration of the call;
    // setns only changes the calling thread's network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A veth pair with one queue pair each (a frame on a queue with no AF_XDP
/// socket would be dropped), `a_if` in `a`, `b_if` in `b`, both up.
pub fn veth(a: &Netns, a_if: &str, a_mac: &str, b: &Netns, b_if: &str, b_mac: &str) {
    #[rustfmt::skip]
    ip(&[
        "link", "add", a_if, "netns", &a.name, "address", a_mac,
        "numtxqueues", "1", "numrxqueues", "1",
        "type", "veth", "peer", "name", b_if, "netns", &b.name, "address", b_mac,
        "numtxqueues", "1", "numrxqueues", "1",
    ]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// Runs `f` on a fresh thread (whose namespace changes stay on it) and
/// returns its result, re-raising its panic.
pub fn on_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    })
}
