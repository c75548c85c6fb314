//! The network model driving real switches: three hypervisor namespaces
//! on one underlay segment, an empty xvsd in each, two tenants whose VMs
//! reuse the same MAC and IP addresses, and one model file applied with
//! `xvsctl model apply --local hvN` on every host. Each phase rewrites the
//! file with another net type (vxlan/static, vxlan/e2e, vxlan/mcast over
//! the underlay bridge, geneve) and
//! re-applies it: every VM reaches the VMs of its own tenant on the other
//! hosts, and never one of the other tenant (its counters stay still).
//! Also: a re-apply changes nothing, an invalid model changes nothing, and
//! a VM moved to another hypervisor by a model change keeps answering a
//! ping stream with at most 3 losses.
//!
//! Needs root (`xvs_tests::require`: fails without it
//! under XVS_REQUIRE_ALL=1, skips loudly by hand). Namespaces and daemons
//! go away on drop, panics included; every wait is bounded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use xvs_tests::{require_root, veth, workspace_bin, Netns, Xvsd};

const VTEPS: [&str; 3] = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];
const TENANTS: [&str; 2] = ["red", "blue"];

/// The model with both tenants on all three hosts, in mode `kind`;
/// `moved` puts red's third VM on hv2 (interface `r3b`) instead of hv3.
fn model(kind: &str, moved: bool) -> String {
    let mut m = format!("[settings.s]\ntype = \"{kind}\"\n");
    if kind == "vxlan/mcast" {
        m += "group = \"239.1.1.1\"\n";
    }
    m += "\n";
    for (i, t) in TENANTS.iter().enumerate() {
        m += &format!(
            "[[net]]\nname = \"{t}\"\nvni = {}\nsettings = \"s\"\n\n",
            100 + i
        );
    }
    for (i, ip) in VTEPS.iter().enumerate() {
        let n = i + 1;
        m += &format!(
            "[[phys]]\nname = \"hv{n}\"\niface = \"u{n}\"\nip = \"{ip}\"\nnets = [\"red\", \"blue\"]\n\n"
        );
    }
    for t in TENANTS {
        let p = &t[..1];
        for n in 1..=3 {
            let (phys, iface) = if moved && t == "red" && n == 3 {
                ("hv2".to_string(), "r3b".to_string())
            } else {
                (format!("hv{n}"), format!("{p}{n}"))
            };
            m += &format!(
                "[[virt]]\nname = \"{t}{n}\"\nnet = \"{t}\"\nphys = \"{phys}\"\niface = \"{iface}\"\n\
                 mac = \"02:00:00:00:00:0{n}\"\nip = \"10.0.0.{n}\"\n\n"
            );
        }
    }
    m
}

struct Site {
    _net: Netns,
    hvs: Vec<Netns>,
    /// vms[tenant][host]
    vms: Vec<Vec<Netns>>,
    daemons: Vec<Xvsd>,
    xvsctl: PathBuf,
    file: PathBuf,
}

impl Site {
    /// `p`: a prefix that keeps the namespaces of tests running in
    /// parallel apart.
    fn new(p: &str) -> Site {
        let net = Netns::new(&format!("{p}net"));
        net.ip(&["link", "add", "br0", "type", "bridge"]);
        net.ip(&["link", "set", "br0", "up"]);
        let mut hvs = Vec::new();
        let mut daemons = Vec::new();
        let mut vms: Vec<Vec<Netns>> = vec![Vec::new(), Vec::new()];
        for (i, ip) in VTEPS.iter().enumerate() {
            let n = i + 1;
            let hv = Netns::new(&format!("{p}h{n}"));
            hv.no_ipv6_on_new_interfaces();
            let (u, b) = (format!("u{n}"), format!("b{n}"));
            veth(
                &hv,
                &u,
                &format!("02:00:00:01:0{n}:01"),
                &net,
                &b,
                &format!("02:00:00:01:0{n}:02"),
            );
            net.ip(&["link", "set", &b, "master", "br0"]);
            hv.ip(&["addr", "add", &format!("{ip}/24"), "dev", &u]);
            for (t, tenant) in TENANTS.iter().enumerate() {
                let vm = Netns::new(&format!("{p}{}{n}", &tenant[..1]));
                vm.no_ipv6_on_new_interfaces();
                let port = format!("{}{n}", &tenant[..1]);
                veth(
                    &vm,
                    "eth0",
                    &format!("02:00:00:00:00:0{n}"),
                    &hv,
                    &port,
                    &format!("02:00:00:02:{t}{n}:02"),
                );
                vm.ip(&["link", "set", "eth0", "mtu", "1400"]);
                vm.ip(&["addr", "add", &format!("10.0.0.{n}/24"), "dev", "eth0"]);
                vms[t].push(vm);
            }
            daemons.push(Xvsd::start_empty(
                Path::new(env!("CARGO_BIN_EXE_xvsd")),
                &hv,
                &[],
            ));
            hvs.push(hv);
        }
        let file = std::env::temp_dir().join(format!("xvs-model-{p}-{}.toml", std::process::id()));
        Site {
            _net: net,
            hvs,
            vms,
            daemons,
            xvsctl: workspace_bin("xvsctl"),
            file,
        }
    }

    /// `xvsctl ARGS` inside hypervisor `i`'s namespace (so `--local`
    /// checks its interfaces): (exit code, stdout + stderr).
    fn ctl(&self, i: usize, args: &[&str]) -> (i32, String) {
        let sock = self.daemons[i].socket.to_string_lossy().into_owned();
        let xvsctl = self.xvsctl.to_string_lossy().into_owned();
        let mut all = vec!["--socket", &sock];
        all.extend_from_slice(args);
        let out = self.hvs[i].exec(&xvsctl, &all);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// Writes `text` as the model and applies it on every host.
    fn apply(&self, text: &str) {
        std::fs::write(&self.file, text).expect("write model");
        let f = self.file.to_string_lossy().into_owned();
        for i in 0..self.hvs.len() {
            let local = format!("hv{}", i + 1);
            let (code, out) = self.ctl(i, &["model", "apply", &f, "--local", &local]);
            assert_eq!(code, 0, "model apply on {local}: {out}\n{}", self.logs());
        }
    }

    fn logs(&self) -> String {
        self.daemons
            .iter()
            .map(Xvsd::log)
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    /// Every VM of tenant `t` on hv1 pings its peers on hv2 and hv3; the
    /// other tenant's VMs receive nothing meanwhile.
    fn check_tenant(&self, mode: &str, t: usize) {
        let other = 1 - t;
        std::thread::sleep(Duration::from_millis(300));
        let before: Vec<u64> = self.vms[other]
            .iter()
            .map(|v| v.rx_packets("eth0"))
            .collect();
        for n in 2..=3 {
            let dst = format!("10.0.0.{n}");
            // The first ping may be spent on ARP and template resolution.
            self.vms[t][0].ping(&dst, 1);
            let got = self.vms[t][0].ping(&dst, 3);
            assert_eq!(
                got,
                3,
                "{mode}: {} vm1 -> vm{n}\n{}",
                TENANTS[t],
                self.logs()
            );
        }
        let after: Vec<u64> = self.vms[other]
            .iter()
            .map(|v| v.rx_packets("eth0"))
            .collect();
        assert_eq!(
            before, after,
            "{mode}: tenant {} saw traffic of {}",
            TENANTS[other], TENANTS[t]
        );
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

#[test]
fn one_model_file_drives_three_hosts_in_every_mode() {
    if !require_root() {
        return;
    }
    let site = Site::new("md");
    let f = site.file.to_string_lossy().into_owned();
    for mode in ["vxlan/static", "vxlan/e2e", "vxlan/mcast", "geneve"] {
        let text = model(mode, false);
        std::fs::write(&site.file, &text).unwrap();
        let (code, out) = site.ctl(0, &["model", "validate", &f, "--local", "hv1"]);
        assert_eq!(code, 0, "{out}");
        site.apply(&text);
        // The same file again: nothing to do.
        let (code, out) = site.ctl(1, &["model", "apply", &f, "--local", "hv2"]);
        assert_eq!((code, out.trim()), (0, "model unchanged"), "{mode}");
        for t in 0..TENANTS.len() {
            site.check_tenant(mode, t);
        }
        if mode == "vxlan/mcast" {
            // Flooding went to the group; the peers were learned from it.
            let (_, ports) = site.ctl(0, &["tunnel-ports"]);
            assert!(ports.contains("239.1.1.1"), "{ports}");
            assert!(
                ports.contains("192.0.2.2"),
                "hv2 learned as a VTEP: {ports}"
            );
        }
    }

    // `model show` prints what was applied (TOML and JSON).
    let (code, out) = site.ctl(2, &["model", "show"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("type = \"geneve\"") && out.contains("hv3"),
        "{out}"
    );
    let (code, out) = site.ctl(2, &["model", "show", "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["local"], "hv3");

    // An invalid model is refused whole, every problem listed, and the
    // running config does not change.
    let (_, before) = site.ctl(0, &["--format", "json", "show"]);
    let broken = model("geneve", false).replace("vni = 101", "vni = 100")
        + "[[virt]]\nname = \"x\"\nnet = \"red\"\nphys = \"hv1\"\niface = \"nosuch0\"\n";
    std::fs::write(&site.file, broken).unwrap();
    let (code, out) = site.ctl(0, &["model", "apply", &f, "--local", "hv1"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("net \"blue\": duplicate geneve VNI 100"),
        "{out}"
    );
    assert!(
        out.contains("virt \"x\": iface \"nosuch0\" does not exist on this host"),
        "{out}"
    );
    assert!(out.contains("virt \"x\": needs a mac"), "{out}");
    let (_, after) = site.ctl(0, &["--format", "json", "show"]);
    assert_eq!(before, after);
}

#[test]
fn a_vm_moved_by_a_model_change_loses_at_most_three_pings() {
    if !require_root() {
        return;
    }
    let site = Site::new("mm");
    site.apply(&model("vxlan/static", false));
    let src = &site.vms[0][0];
    let vm = &site.vms[0][2];
    assert_eq!(src.ping("10.0.0.3", 3), 3, "{}", site.logs());

    // The VM's interface on the destination host, prepared (down) the
    // way a migration prepares the target before switching over.
    veth(
        vm,
        "eth1",
        "02:00:00:00:00:03",
        &site.hvs[1],
        "r3b",
        "02:00:00:02:09:02",
    );
    vm.ip(&["link", "set", "eth1", "down"]);
    vm.ip(&["link", "set", "eth1", "mtu", "1400"]);

    // A ping stream (10 per second, 8 s) while the VM moves.
    let pinger = {
        let name = src.name.clone();
        std::thread::spawn(move || {
            std::process::Command::new("ip")
                .args([
                    "netns", "exec", &name, "ping", "-i", "0.1", "-c", "80", "-W", "1", "10.0.0.3",
                ])
                .output()
                .expect("ping")
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    // Destination first (its port exists before the VM resumes there),
    // then the switch-over in the VM, then the other hosts.
    let moved = model("vxlan/static", true);
    std::fs::write(&site.file, &moved).unwrap();
    let f = site.file.to_string_lossy().into_owned();
    let (code, out) = site.ctl(1, &["model", "apply", &f, "--local", "hv2"]);
    assert_eq!(code, 0, "{out}");
    vm.ip(&["link", "set", "eth0", "down"]);
    vm.ip(&["addr", "add", "10.0.0.3/24", "dev", "eth1"]);
    vm.ip(&["link", "set", "eth1", "up"]);
    for i in [0, 2] {
        let local = format!("hv{}", i + 1);
        let (code, out) = site.ctl(i, &["model", "apply", &f, "--local", &local]);
        assert_eq!(code, 0, "{out}");
    }
    let out = pinger.join().expect("pinger");
    let text = String::from_utf8_lossy(&out.stdout);
    let received: u32 = text
        .split(',')
        .find_map(|p| p.trim().strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    eprintln!("migration: {received}/80 pings answered across the move");
    assert!(
        received >= 77,
        "{received}/80 answered across the move\n{text}\n{}",
        site.logs()
    );
    // And it is really on hv2 now: the old port is gone from hv3.
    let (_, cfg) = site.ctl(2, &["--format", "json", "show"]);
    assert!(!cfg.contains("\"r3\""), "{cfg}");
}
