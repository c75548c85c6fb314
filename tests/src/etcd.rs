//! A throwaway etcd (Debian's `etcd-server`, `/usr/bin/etcd`) for tests of
//! the discovery agent: a single member on one address (loopback, or an
//! address inside a test namespace), free ports, a temporary data dir;
//! killed and its data dir removed on drop, panics included. Plus a
//! running-`xvs-agent` guard and `etcdctl` helpers to look at keys.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::unique;

/// The test needs etcd and etcdctl (Debian's etcd-server and
/// etcd-client); see [`crate::require`] for what happens without them.
#[must_use = "return from the test when this is false"]
pub fn require_etcd() -> bool {
    crate::require_file("/usr/bin/etcd", "Debian's etcd-server")
        && crate::require_file("/usr/bin/etcdctl", "Debian's etcd-client")
}

/// A free TCP port on 127.0.0.1 (asked of the kernel, then released; a
/// race with another process taking it is possible but unlikely).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One etcd member.
#[derive(Debug)]
pub struct Etcd {
    child: Option<Child>,
    /// `ip netns exec NS` prefix, if it runs in a namespace.
    netns: Option<String>,
    pub ip: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl Etcd {
    /// On 127.0.0.1, free ports.
    pub fn start() -> Etcd {
        Etcd::start_at(None, "127.0.0.1", free_port(), free_port())
    }

    /// In namespace `netns` (or here), listening on `ip` only; returns
    /// once it answers (at most 15 s).
    pub fn start_at(netns: Option<&str>, ip: &str, client_port: u16, peer_port: u16) -> Etcd {
        let tag = format!("{}-{}", std::process::id(), unique());
        let dir = std::env::temp_dir();
        let mut e = Etcd {
            child: None,
            netns: netns.map(str::to_owned),
            ip: ip.to_owned(),
            client_port,
            peer_port,
            data_dir: dir.join(format!("xvs-etcd-{tag}")),
            log: dir.join(format!("xvs-etcd-{tag}.log")),
        };
        e.spawn();
        e
    }

    /// `http://IP:PORT`, for the agent's `etcd_endpoints`.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.ip, self.client_port)
    }

    fn command(&self, prog: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, prog]);
                c
            }
            None => Command::new(prog),
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log).expect("create etcd log");
        let client = self.endpoint();
        let peer = format!("http://{}:{}", self.ip, self.peer_port);
        let child = self
            .command("etcd")
            .arg("--name")
            .arg("t")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")])
            // Fast elections: a restarted single member leads sooner.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd (is etcd-server installed?)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.ctl(&["endpoint", "health"]).0 {
                return;
            }
            if let Some(s) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("etcd exited ({s}) while starting:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "etcd not healthy in 15 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it and starts it again on the same ports; with `wipe`, from
    /// an empty data dir (every key and lease lost).
    pub fn restart(&mut self, wipe: bool) {
        self.kill9();
        if wipe {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
        self.spawn();
    }

    /// Runs `etcdctl --endpoints E ARGS...`: (success, stdout).
    pub fn ctl(&self, args: &[&str]) -> (bool, String) {
        let out = self
            .command("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint(), "--dial-timeout", "1s"])
            .args(["--command-timeout", "2s"])
            .args(args)
            .output()
            .expect("run etcdctl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The keys under `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let (_, out) = self.ctl(&["get", "--prefix", "--keys-only", prefix]);
        let mut k: Vec<String> = out
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        k.sort();
        k
    }

    /// The value of `key`, if it exists.
    pub fn get(&self, key: &str) -> Option<String> {
        let (_, out) = self.ctl(&["get", "--print-value-only", key]);
        let v = out.trim_end_matches('\n');
        (!v.is_empty()).then(|| v.to_owned())
    }

    /// The lease id `key` is attached to (0: none); None if no such key.
    pub fn lease_of(&self, key: &str) -> Option<i64> {
        let (_, out) = self.ctl(&["get", "-w", "fields", key]);
        out.lines()
            .find_map(|l| l.strip_prefix("\"Lease\" : "))
            .and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A running `xvs-agent` (in a namespace or here), killed on drop.
#[derive(Debug)]
pub struct Agent {
    child: Option<Child>,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Agent {
    /// Writes `config` (TOML) to a file and starts `bin --config FILE`
    /// (inside `netns` when given), with debug logs.
    pub fn start(bin: &Path, netns: Option<&str>, config: &str) -> Agent {
        let tag = format!("{}-{}", std::process::id(), unique());
        let dir = std::env::temp_dir();
        let cfg = dir.join(format!("xvs-agent-{tag}.toml"));
        std::fs::write(&cfg, config).expect("write agent config");
        let log = dir.join(format!("xvs-agent-{tag}.log"));
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "info,xvs_agent=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create agent log"))
            .spawn()
            .expect("spawn xvs-agent");
        Agent {
            child: Some(child),
            config: cfg,
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Rewrites its config file (the agent notices within a second).
    pub fn rewrite(&self, config: &str) {
        // A coarse-mtime filesystem could miss a rewrite within the same
        // tick; a fresh file via rename always gets a new mtime.
        let tmp = self.config.with_extension("new");
        std::fs::write(&tmp, config).expect("write agent config");
        std::fs::rename(&tmp, &self.config).expect("replace agent config");
    }

    /// SIGKILL: no lease revoke, the key lives until the lease expires.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then its exit status (killed after 10 s).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return c.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(&self.config);
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Polls `cond` every 50 ms until it holds or `limit` passes; returns the
/// time it took, or None.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
