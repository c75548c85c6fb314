//! A QEMU virtual machine as a guest on a vhost-user port: Debian's
//! kernel and a busybox initramfs (`scripts/guest.sh`, which
//! `scripts/test.sh` runs into [`GUEST_DIR`]'s directory), a virtio-net
//! device on the port's socket, memory shared as vhost-user needs
//! (memfd). The guest brings eth0 up with the address it is given and
//! prints `XVS-GUEST-READY` on its serial console, which goes to a file.
//! Killed on drop.
//!
//! Under TCG (QEMU's emulation): `/dev/kvm` on these machines runs only
//! kernels built for PVM, so a guest boots in seconds, not less, and is
//! far too slow to measure a switch; fine to see one work.

use std::io::Write;

use crate::{veth, Netns, Xvsd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable naming the directory `scripts/guest.sh` built into.
pub const GUEST_DIR: &str = "XVS_GUEST_DIR";

/// The guest image's directory, from [`GUEST_DIR`] (or `/tmp/xvs-guest`).
pub fn guest_dir() -> PathBuf {
    std::env::var_os(GUEST_DIR).map_or_else(|| PathBuf::from("/tmp/xvs-guest"), PathBuf::from)
}

/// A running QEMU guest.
#[derive(Debug)]
pub struct Guest {
    child: Option<Child>,
    args: Vec<String>,
    pub serial: PathBuf,
    monitor: PathBuf,
    /// The guest's second serial port, a shell (scripts/guest.sh).
    shell: PathBuf,
    /// The namespace QEMU runs in (a tap's), or the caller's.
    netns: Option<String>,
}

impl Guest {
    /// Boots the guest with its virtio-net device (MAC `mac`) on the
    /// vhost-user socket `sock` (QEMU connects, and reconnects within a
    /// second when the switch comes back), eth0 at `ip` (with prefix).
    pub fn boot(sock: &Path, mac: &str, ip: &str, tag: &str) -> Guest {
        Self::boot_with(sock, mac, ip, tag, "", 1)
    }

    /// [`Self::boot`], with more on the kernel's command line (the
    /// guest's `xvs.mtu=`, `xvs.ip6=`: scripts/guest.sh), and `pairs`
    /// queue pairs on the NIC (more than one: multiqueue, and as many
    /// vCPUs, as Linux uses a pair per CPU).
    pub fn boot_with(
        sock: &Path,
        mac: &str,
        ip: &str,
        tag: &str,
        append: &str,
        pairs: u32,
    ) -> Guest {
        #[rustfmt::skip]
        let net = [
            "-object", "memory-backend-memfd,id=mem,size=256M,share=on",
            "-numa", "node,memdev=mem",
            "-chardev", &format!("socket,id=c0,path={},reconnect-ms=500", sock.display()),
            "-netdev", &format!("vhost-user,id=n0,chardev=c0,queues={pairs}"),
            "-device", &if pairs > 1 {
                // A vector per queue, and one each for config and control.
                format!("virtio-net-pci,netdev=n0,mac={mac},mq=on,vectors={}", 2 * pairs + 2)
            } else {
                format!("virtio-net-pci,netdev=n0,mac={mac}")
            },
        ]
        .map(String::from);
        Guest::start(&net, ip, append, tag, pairs, None)
    }

    /// Boots the guest with its virtio-net device (MAC `mac`) on the tap
    /// `tap` of namespace `ns` (QEMU opens it by name there, with its
    /// virtio-net header and the guest's offloads as QEMU offers them by
    /// default), eth0 at `ip`; `append` goes on the kernel command line
    /// (e.g. [`tcp_echo_append`]).
    pub fn boot_tap(ns: &Netns, tap: &str, mac: &str, ip: &str, append: &str, tag: &str) -> Guest {
        #[rustfmt::skip]
        let net = [
            "-netdev", &format!("tap,id=n0,ifname={tap},script=no,downscript=no,vhost=off"),
            "-device", &format!("virtio-net-pci,netdev=n0,mac={mac}"),
        ]
        .map(String::from);
        Guest::start(&net, ip, append, tag, 1, Some(ns.name.clone()))
    }

    /// The machine every guest is (`cpus` vCPUs), `net` its network
    /// device, QEMU run in namespace `netns` if given.
    fn start(
        net: &[String],
        ip: &str,
        append: &str,
        tag: &str,
        cpus: u32,
        netns: Option<String>,
    ) -> Guest {
        let dir = guest_dir();
        let base = std::env::temp_dir().join(format!("xvs-guest-{}-{tag}", std::process::id()));
        let (serial, monitor) = (base.with_extension("serial"), base.with_extension("mon"));
        let shell = base.with_extension("sh");
        #[rustfmt::skip]
        let mut args: Vec<String> = [
            "-machine", "q35,accel=tcg", "-cpu", "max", "-m", "256", "-smp", &cpus.to_string(),
            // A monitor system_reset reboots (-no-reboot would exit); a
            // guest kernel panic hangs (panic=0) with its console to read.
            "-display", "none",
            "-kernel", &dir.join("vmlinuz").to_string_lossy(),
            "-initrd", &dir.join("initrd.gz").to_string_lossy(),
            "-append", &format!("console=ttyS0 panic=0 xvs.ip={ip} {append}"),
            "-serial", &format!("file:{}", serial.display()),
            "-serial", &format!("unix:{},server=on,wait=off", shell.display()),
            "-monitor", &format!("unix:{},server=on,wait=off", monitor.display()),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend_from_slice(net);
        let mut g = Guest {
            child: None,
            args,
            serial,
            monitor,
            shell,
            netns,
        };
        g.spawn();
        g
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.serial);
        let _ = std::fs::remove_file(&self.monitor);
        let _ = std::fs::remove_file(&self.shell);
        // `ip netns exec` execs QEMU: the child's pid is QEMU's.
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "qemu-system-x86_64"]);
                c
            }
            None => Command::new("qemu-system-x86_64"),
        };
        let child = cmd
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 starts");
        self.child = Some(child);
    }

    /// What the guest printed on its console so far.
    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    /// Waits until the guest has printed `XVS-GUEST-READY` `n` times in
    /// this boot's console (a reset boots again into the same file);
    /// panics with the console after `secs` seconds or if QEMU exits.
    pub fn wait_ready(&mut self, n: usize, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let console = self.console();
            if console.matches("XVS-GUEST-READY").count() >= n {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("QEMU exited ({status}) before the guest was up:\n{console}");
            }
            assert!(
                Instant::now() < deadline,
                "the guest was not up in {secs} s:\n{console}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `cmd` in the guest's shell (its second serial port) and
    /// returns its exit status and output; panics if it has not finished
    /// in `secs` seconds.
    pub fn sh(&self, cmd: &str, secs: u64) -> (i32, String) {
        use std::io::Read;
        let mut s = UnixStream::connect(&self.shell).expect("the guest's shell socket");
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("read timeout");
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mark = format!("XVS-SH-DONE-{}-{run}", std::process::id());
        s.write_all(format!("{cmd}\necho {mark} $?\n").as_bytes())
            .expect("a command to the guest");
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => panic!(
                    "the guest's shell closed: {}",
                    String::from_utf8_lossy(&out)
                ),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                // Under TCG the guest's UART may hold what it has to send
                // until something arrives: an empty line (nothing to the
                // shell) nudges it.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    let _ = s.write_all(b"\n");
                }
                Err(e) => panic!("reading the guest's shell: {e}"),
            }
            let text = String::from_utf8_lossy(&out);
            if let Some(at) = text.find(&format!("{mark} ")) {
                let rest = &text[at + mark.len() + 1..];
                if let Some(code) = rest
                    .split_whitespace()
                    .next()
                    .filter(|_| rest.contains('\n'))
                {
                    return (code.parse().unwrap_or(-1), text[..at].to_owned());
                }
            }
            assert!(
                Instant::now() < deadline,
                "`{cmd}` in the guest did not finish in {secs} s: {text}\n{}",
                self.console()
            );
        }
    }

    /// Resets the machine through QEMU's monitor (a hard reboot: the
    /// guest's driver stops the device and starts it again).
    pub fn reset(&self) {
        let mut m = UnixStream::connect(&self.monitor).expect("QEMU's monitor socket");
        m.write_all(b"system_reset\n").expect("monitor command");
        // The monitor answers; give QEMU the command before closing.
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Kills QEMU at once (the guest and its memory gone with it).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Boots the same machine again after [`Self::kill9`].
    pub fn boot_again(&mut self) {
        self.kill9();
        self.spawn();
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(&self.serial);
        let _ = std::fs::remove_file(&self.monitor);
        let _ = std::fs::remove_file(&self.shell);
    }
}

/// The kernel command line that has the guest serve TCP on `port`,
/// echoing what it reads (busybox `nc -ll -e cat`): started before the
/// image's /init (`rdinit=` runs busybox's shell with the arguments after
/// `--`), once devtmpfs gives the background job its /dev/null.
pub fn tcp_echo_append(port: u16) -> String {
    format!(
        "rdinit=/bin/busybox -- sh -c \"/bin/busybox mount -t devtmpfs dev /dev; \
         /bin/busybox nc -ll -p {port} -e /bin/busybox cat & exec /init\""
    )
}

/// The topology the vhost-user tests share: a VM namespace on xvsd's
/// port `p0` (vm0, 10.0.0.1/24), the hypervisor namespace xvsd runs in,
/// and a directory for the vhost-user socket `vu1.sock`; [`Self::config`]
/// is xvsd's config: `br0` = {p0, vu1}, vu1 listening on that socket.
#[derive(Debug)]
pub struct VhostBridge {
    pub hv: Netns,
    pub vm: Netns,
    dir: PathBuf,
    pub sock: PathBuf,
}

impl VhostBridge {
    pub fn new(tag: &str) -> VhostBridge {
        let hv = Netns::new(&format!("{tag}hv"));
        let vm = Netns::new(&format!("{tag}vm"));
        veth(
            &vm,
            "vm0",
            "02:00:00:00:0b:01",
            &hv,
            "p0",
            "02:00:00:00:0b:02",
        );
        vm.ip(&["addr", "add", "10.0.0.1/24", "dev", "vm0"]);
        let dir = std::env::temp_dir().join(format!("xvs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("socket directory");
        let sock = dir.join("vu1.sock");
        VhostBridge { hv, vm, dir, sock }
    }

    pub fn config(&self) -> String {
        format!(
            r#"
[[bridges]]
name = "br0"

[[ports]]
name = "p0"
bridge = "br0"

[[ports]]
name = "vu1"
bridge = "br0"
kind = {{ type = "vhost-user", socket = "{}" }}
"#,
            self.sock.display()
        )
    }
}

impl Drop for VhostBridge {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `xvsctl stats PORT`'s row, as JSON.
pub fn port_stats(d: &Xvsd, port: &str) -> serde_json::Value {
    let out = d.ok(&["--format", "json", "stats", port]);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("stats JSON");
    rows[0].clone()
}

/// Waits (bounded by `secs`) for `port`'s state to be `want`; `more`
/// adds to the failure's message.
pub fn wait_port_state(d: &Xvsd, port: &str, want: &str, secs: u64, more: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = port_stats(d, port);
        if s["state"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{port} not {want} in {secs} s: {s}\n{}\n{}",
            d.log(),
            more()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Pings the guest at `ip` until `n` answers in a row come back
/// (bounded by 60 s): the first after a boot waits for the guest's ARP
/// entry and its port, `port` of `d`, whose stats a failure shows.
pub fn pings_answered(vm: &Netns, ip: &str, port: &str, n: u32, what: &str, g: &Guest, d: &Xvsd) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if vm.ping(ip, n) == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the guest does not answer {n} pings in a row\n{}\n{}\n{}",
            port_stats(d, port),
            d.log(),
            g.console()
        );
    }
}
