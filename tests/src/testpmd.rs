//! DPDK's `dpdk-testpmd` as a guest's virtio-net driver on a vhost-user
//! socket (its virtio-user PMD, `--no-huge`: memfd-backed memory shared
//! over the socket as a VM's is), killed and its runtime files removed
//! on drop. Two lcores: the main one and one forwarding.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running testpmd.
#[derive(Debug)]
pub struct Testpmd {
    pub child: Child,
    prefix: String,
    log: std::path::PathBuf,
}

impl Testpmd {
    /// Starts testpmd on `sock` forwarding in `mode` (`io` loops every
    /// frame back; `icmpecho` answers ARP requests and pings for any
    /// address, as a guest owning them would); `server`: testpmd listens
    /// on the socket (QEMU's `server=on`) and the switch connects. `tag`
    /// keeps two instances of one test apart.
    pub fn start(sock: &Path, tag: &str, mode: &str, server: bool) -> Testpmd {
        Self::start_queues(sock, tag, mode, server, 1)
    }

    /// [`Self::start`] with `queues` queue pairs (multiqueue: testpmd
    /// answers on the pair a frame came in on).
    pub fn start_queues(sock: &Path, tag: &str, mode: &str, server: bool, queues: u32) -> Testpmd {
        let prefix = format!("xvstp{}{tag}", std::process::id());
        let log = std::env::temp_dir().join(format!("{prefix}.log"));
        let out = std::fs::File::create(&log).expect("testpmd log file");
        let child = Command::new("dpdk-testpmd")
            .args([
                "-l",
                "0,1",
                "--no-huge",
                "-m",
                "256",
                "--no-pci",
                "--file-prefix",
                &prefix,
            ])
            .arg(format!(
                "--vdev=net_virtio_user0,path={},queues={queues},queue_size=256,server={}",
                sock.display(),
                u8::from(server)
            ))
            .args([
                "--",
                "--port-topology=loop",
                "--stats-period=1",
                "--nb-cores=1",
            ])
            .arg(format!("--forward-mode={mode}"))
            .arg(format!("--rxq={queues}"))
            .arg(format!("--txq={queues}"))
            .args(["--rxd=256", "--txd=256", "--total-num-mbufs=4096"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("dpdk-testpmd starts");
        Testpmd { child, prefix, log }
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it at once (a guest's driver dying with its VM).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
        let _ = std::fs::remove_file(&self.log);
    }
}
