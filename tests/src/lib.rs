//! Network-namespace test support shared by the integration tests of every
//! crate: a namespace guard that always cleans up (also when the test
//! panics), veth pairs, the `ip` helpers, bounded ping and iperf3 runs, a
//! running-`xvsd` guard, and tshark captures. Tests state what they need
//! with the [`require`] functions (root, tools, kernel features), which
//! fail or skip them by one rule.

pub mod etcd;
pub mod guest;
pub mod kvxlan;
pub mod require;
pub mod testpmd;

pub use etcd::wait_for;
pub use require::{is_root, require_file, require_kernel_feature, require_root, require_tool};

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

/// The underlay most tests put behind xvsd: `u0` in `hv` (xvsd's uplink,
/// 02:00:00:00:00:01, 192.0.2.1/24) to `pu0` in `peer` (02:00:00:00:00:02,
/// 192.0.2.2/24).
pub fn underlay(hv: &Netns, peer: &Netns) {
    veth(
        hv,
        "u0",
        "02:00:00:00:00:01",
        peer,
        "pu0",
        "02:00:00:00:00:02",
    );
    hv.ip(&["addr", "add", "192.0.2.1/24", "dev", "u0"]);
    peer.ip(&["addr", "add", "192.0.2.2/24", "dev", "pu0"]);
}

/// Runs `f` on a fresh thread (whose namespace changes stay on it) and
/// returns its result, re-raising its panic.
pub fn on_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    })
}

impl Netns {
    /// Runs `cmd args...` inside this namespace (`ip netns exec`) and
    /// returns its output, whatever the exit status.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, cmd])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {cmd} in {}: {e}", self.name))
    }

    /// Like [`Netns::exec`], panicking with stderr unless it succeeds;
    /// returns stdout.
    pub fn run(&self, cmd: &str, args: &[&str]) -> String {
        let out = self.exec(cmd, args);
        assert!(
            out.status.success(),
            "{cmd} {args:?} in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Turns TCP segmentation offload and GSO off on `iface`, checksum
    /// offload staying on: for a peer that cannot take 64 KiB TSO frames
    /// from it (Open vSwitch 3.1's userspace datapath). xvs needs no such
    /// thing.
    pub fn no_segmentation_offload(&self, iface: &str) {
        self.run("ethtool", &["-K", iface, "tso", "off", "gso", "off"]);
    }

    /// New interfaces in this namespace get no IPv6 (no autoconf, MLD or
    /// router solicitations): tests that count frames see only their own.
    pub fn no_ipv6_on_new_interfaces(&self) {
        self.run(
            "sh",
            &[
                "-c",
                "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
            ],
        );
    }

    /// Frames received on `iface` (its kernel counter).
    pub fn rx_packets(&self, iface: &str) -> u64 {
        self.run(
            "cat",
            &[&format!("/sys/class/net/{iface}/statistics/rx_packets")],
        )
        .trim()
        .parse()
        .expect("rx_packets")
    }

    /// Sends `count` pings to `dst` (0.2 s apart, 2 s deadline each);
    /// returns how many were answered.
    pub fn ping(&self, dst: &str, count: u32) -> u32 {
        self.ping_every(dst, count, "0.2", 2)
    }

    /// Sends `count` pings to `dst`, `interval` seconds apart (ping's
    /// syntax: `"0.01"`), each answered within `wait` seconds or lost;
    /// returns how many were answered. Bounded by count × interval plus
    /// the last wait.
    pub fn ping_every(&self, dst: &str, count: u32, interval: &str, wait: u32) -> u32 {
        let (c, w) = (count.to_string(), wait.to_string());
        let out = self.exec("ping", &["-q", "-c", &c, "-i", interval, "-W", &w, dst]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.split(',')
            .find_map(|p| p.trim().strip_suffix(" received"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// A veth pair with `queues` queue pairs each, both ends up.
pub fn veth_queues(a: &Netns, a_if: &str, b: &Netns, b_if: &str, queues: u32) {
    let q = queues.to_string();
    #[rustfmt::skip]
    ip(&[
        "link", "add", a_if, "netns", &a.name, "numtxqueues", &q, "numrxqueues", &q,
        "type", "veth", "peer", "name", b_if, "netns", &b.name,
        "numtxqueues", &q, "numrxqueues", &q,
    ]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// A bounded iperf3 TCP transfer from `client` to `server_ip` (an iperf3
/// server started in `server` for this one test); returns the received
/// Mbit/s. Panics if the transfer fails or takes more than 30 s.
pub fn iperf3(server: &Netns, client: &Netns, server_ip: &str, secs: u32) -> f64 {
    let pidfile = std::env::temp_dir().join(format!("xvs-iperf-{}-{}", server.name, secs));
    let pid = pidfile.to_string_lossy().into_owned();
    server.run("iperf3", &["-s", "-1", "-D", "--pidfile", &pid]);
    // The daemonized server needs a moment to listen.
    std::thread::sleep(Duration::from_millis(300));
    let t = secs.to_string();
    let out = client.exec(
        "timeout",
        &["30", "iperf3", "-c", server_ip, "-t", &t, "-J"],
    );
    if let Ok(p) = std::fs::read_to_string(&pidfile) {
        if let Ok(p) = p.trim().parse::<i32>() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
    let _ = std::fs::remove_file(&pidfile);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "iperf3 to {server_ip} failed: {json}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "sum_received": { ..., "bits_per_second": N, ... }
    let rx = json
        .find("\"sum_received\"")
        .expect("iperf3 JSON has sum_received");
    let bps = json[rx..]
        .split("\"bits_per_second\":")
        .nth(1)
        .and_then(|s| s.split([',', '\n', '}']).next())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .expect("bits_per_second");
    bps / 1e6
}

/// A running `xvsd` in a namespace, killed on drop (panics included).
#[derive(Debug)]
pub struct Xvsd {
    child: Option<Child>,
    /// The config file it starts from; none: from its state file.
    pub config: Option<PathBuf>,
    pub log: PathBuf,
    /// Its control socket and state file (private to this instance).
    pub socket: PathBuf,
    pub state: PathBuf,
    bin: PathBuf,
    ns: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// A daemon this one handed over to (`xvsctl restart`): not our
    /// child, stopped and killed with it.
    successor: Option<u32>,
}

impl Xvsd {
    /// Writes `config` (TOML) to a file and starts `bin --config FILE
    /// ARGS...` in `ns`; returns once it logged that it runs (at most
    /// 15 s), panicking with its log if it exits or does not get there.
    pub fn start(bin: &Path, ns: &Netns, config: &str, args: &[&str]) -> Xvsd {
        Xvsd::launch(bin, ns, Some(config), args)
    }

    /// Starts `bin ARGS...` in `ns` with no config file: empty, or what
    /// its state file holds (see [`Xvsd::restart_from_state`]).
    pub fn start_empty(bin: &Path, ns: &Netns, args: &[&str]) -> Xvsd {
        Xvsd::launch(bin, ns, None, args)
    }

    /// [`Xvsd::start`] with `env` added to its environment.
    pub fn start_with_env(
        bin: &Path,
        ns: &Netns,
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Xvsd {
        Xvsd::launch_env(bin, ns, Some(config), args, env)
    }

    fn launch(bin: &Path, ns: &Netns, config: Option<&str>, args: &[&str]) -> Xvsd {
        Xvsd::launch_env(bin, ns, config, args, &[])
    }

    fn launch_env(
        bin: &Path,
        ns: &Netns,
        config: Option<&str>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Xvsd {
        let dir = std::env::temp_dir();
        let tag = format!("{}-{}", ns.name, unique());
        let config = config.map(|text| {
            let cfg = dir.join(format!("xvsd-{tag}.toml"));
            std::fs::write(&cfg, text).expect("write config");
            cfg
        });
        let mut d = Xvsd {
            child: None,
            config,
            log: dir.join(format!("xvsd-{tag}.log")),
            socket: dir.join(format!("xvsd-{tag}.sock")),
            state: dir.join(format!("xvsd-{tag}.state.json")),
            bin: bin.to_owned(),
            ns: ns.name.clone(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            successor: None,
        };
        d.spawn();
        d
    }

    /// Waits at most `within` for the daemon (our child) to exit; its
    /// status, or `None` if it still runs.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            let c = self.child.as_mut()?;
            if let Ok(Some(s)) = c.try_wait() {
                self.child = None;
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// From now on this is the daemon `pid`, which took over from ours
    /// (not our child: its exit status is not ours to read).
    pub fn follow(&mut self, pid: u32) {
        self.successor = Some(pid);
    }

    /// Stops the daemon [`Self::follow`] named with SIGTERM (SIGKILL
    /// after 10 s); whether it exited by itself, and the log.
    pub fn stop_successor(mut self) -> (bool, String) {
        let Some(pid) = self.successor.take() else {
            return (false, self.log());
        };
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let gone = wait_gone(pid, Duration::from_secs(10));
        if !gone {
            // SAFETY: as above.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            wait_gone(pid, Duration::from_secs(5));
        }
        (gone, self.log())
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log).expect("create log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]).arg(&self.bin);
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        let child = cmd
            .arg("--socket")
            .arg(&self.socket)
            .arg("--state")
            .arg(&self.state)
            .args(&self.args)
            .env("RUST_LOG", "info,xvsd=debug")
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn xvsd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.log().contains("xvsd running") {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(s) = exited {
                panic!("xvsd exited ({s}) while starting:\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!("xvsd did not start in 15 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills it with SIGKILL (no cleanup of its own) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(pid) = self.successor.take() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            wait_gone(pid, Duration::from_secs(5));
        }
    }

    /// Starts it again with the same config and arguments.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Kills it and starts it again without the config file: it restores
    /// what its state file holds.
    pub fn restart_from_state(&mut self) {
        self.kill9();
        if let Some(c) = self.config.take() {
            let _ = std::fs::remove_file(c);
        }
        self.spawn();
    }

    /// Runs `xvsctl --socket SOCKET ARGS...` (the binary at `xvsctl`)
    /// against this daemon; returns (exit code, stdout, stderr).
    pub fn ctl(&self, xvsctl: &Path, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(xvsctl)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run xvsctl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The journal the daemon keeps beside its state file.
    pub fn journal(&self) -> PathBuf {
        let mut p = self.state.clone().into_os_string();
        p.push(".journal");
        PathBuf::from(p)
    }

    /// Runs this workspace's `xvsctl` against this daemon and insists on
    /// success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.ctl(&workspace_bin("xvsctl"), args);
        assert_eq!(code, 0, "xvsctl {args:?}: {out}{err}\n{}", self.log());
        out
    }

    /// Runs this workspace's `xvsctl` and insists on a rejection (exit 1)
    /// whose message contains `want`.
    pub fn rejected(&self, args: &[&str], want: &str) {
        let (code, out, err) = self.ctl(&workspace_bin("xvsctl"), args);
        assert_eq!(code, 1, "xvsctl {args:?} should be rejected: {out}{err}");
        assert!(
            err.contains(want) || out.contains(want),
            "xvsctl {args:?}: message should mention {want:?}: {out}{err}"
        );
    }

    /// Frames dropped as `reason` (`xvsctl stats`' names, e.g.
    /// `no_buffer`), summed over every port, tunnel and uplink.
    pub fn drops(&self, reason: &str) -> u64 {
        let out = self.ok(&["--format", "json", "stats"]);
        let rows: serde_json::Value = serde_json::from_str(&out).expect("stats JSON");
        rows.as_array()
            .expect("stats rows")
            .iter()
            .map(|r| r["drops"][reason].as_u64().unwrap_or(0))
            .sum()
    }

    /// Stops it with SIGTERM and returns its exit status and log; kills it
    /// if it has not exited after 10 s.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let mut c = self.child.take().expect("running");
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Ok(Some(s)) = c.try_wait() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                break c.wait().expect("reap xvsd");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, self.log())
    }
}

impl Drop for Xvsd {
    fn drop(&mut self) {
        self.kill9();
        if let Some(c) = &self.config {
            let _ = std::fs::remove_file(c);
        }
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.state);
        // The daemon journals transactions beside its state file
        // (`xvsd::state::journal_path`).
        let _ = std::fs::remove_file(self.journal());
        // And a snapshot's temporary file, if it was killed writing one.
        if let (Some(dir), Some(name)) = (self.state.parent(), self.state.file_name()) {
            let tmp = format!(".{}.tmp.", name.to_string_lossy());
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().starts_with(&tmp) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Waits at most `within` until process `pid` is gone (another's child:
/// its zombie is reaped by init).
fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let path = format!("/proc/{pid}/stat");
    loop {
        // A zombie still has a stat file: its state letter is Z.
        let alive = std::fs::read_to_string(&path).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        });
        if !alive {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A number unique within this process (file names of parallel tests).
fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Captures on `iface` in `ns` with tshark while `during` runs, and
/// returns the `-T fields` lines (values separated by `|`, first
/// occurrence of each: the outer header in a tunnel packet) for `fields`
/// of the packets matching the display filter. The capture stops 1 s after `during` returns (at most
/// `during`'s time + 20 s in all).
pub fn tshark<T>(
    ns: &Netns,
    iface: &str,
    filter: &str,
    fields: &[&str],
    during: impl FnOnce() -> T,
) -> (Vec<String>, T) {
    let pcap = std::env::temp_dir().join(format!("xvs-{}-{}.pcap", ns.name, unique()));
    let p = pcap.to_string_lossy().into_owned();
    let mut cap = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "tshark", "-q", "-i", iface, "-w", &p,
        ])
        .args(["-a", "duration:60"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tshark (is it installed?)");
    // tshark says "Capturing on" once the capture is live.
    let mut err = cap.stderr.take().expect("stderr");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen).contains("Capturing on") && Instant::now() < deadline {
        let mut b = [0u8; 256];
        match std::io::Read::read(&mut err, &mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&b[..n]),
        }
    }
    // "Capturing on" comes a moment before the capture is live: a frame
    // sent at once was missed (seen with one capture started inside
    // another's `during`).
    std::thread::sleep(Duration::from_millis(300));
    let result = during();
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(cap.id() as i32, libc::SIGINT) };
    let _ = cap.wait();
    // Have tshark verify every checksum it can (reported as
    // `*.checksum.status`: 1 good, 0 bad, 2 not verified).
    #[rustfmt::skip]
    let mut args = vec![
        "-r", &p, "-Y", filter, "-T", "fields", "-E", "separator=|", "-E", "occurrence=f",
        "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
        "-o", "tcp.check_checksum:TRUE",
    ];
    for f in fields {
        args.extend(["-e", f]);
    }
    let out = Command::new("tshark")
        .args(&args)
        .output()
        .expect("tshark -r");
    let _ = std::fs::remove_file(&pcap);
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    (lines, result)
}

/// A binary of this workspace (`xvsd`, `xvsctl`, ...), from the target
/// directory the running test was built into. `cargo test --workspace`
/// builds every package's binaries first; running one package's tests
/// alone may need `cargo build --workspace` before.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable in target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is not built: run `cargo build --workspace` (or the whole suite with `cargo test --workspace`)",
        bin.display()
    );
    bin
}
