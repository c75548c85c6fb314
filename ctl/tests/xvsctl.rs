//! xvsctl end to end: the real binary against the real server with a fake
//! daemon behind it. Every verb, the error cases of the issue, output
//! formats, exit codes, completions and the man page.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use common::FakeDaemon;
use xvs_config::Config;
use xvs_ctl::protocol::{
    AclRow, FdbRow, FlowRow, NeighRow, RouteRow, StatsRow, TunnelPortRow, WorkerStatsRow,
};

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn xvsctl(d: &FakeDaemon, args: &[&str]) -> Run {
    xvsctl_in(d, args, "")
}

fn xvsctl_in(d: &FakeDaemon, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xvsctl"))
        .arg("--socket")
        .arg(d.path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.as_bytes().to_vec();
    let w = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let o: Output = child.wait_with_output().unwrap();
    w.join().unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into(),
        err: String::from_utf8_lossy(&o.stderr).into(),
    }
}

fn ok(d: &FakeDaemon, args: &[&str]) -> String {
    let r = xvsctl(d, args);
    assert_eq!(r.code, 0, "xvsctl {args:?}: {}", r.err);
    r.out
}

/// Rejected (exit 1), the config unchanged; returns stderr.
fn rejected(d: &FakeDaemon, args: &[&str]) -> String {
    let before = d.config();
    let r = xvsctl(d, args);
    assert_eq!(
        r.code, 1,
        "xvsctl {args:?} should be rejected: out {} err {}",
        r.out, r.err
    );
    assert_eq!(d.config(), before, "a rejected request changed the config");
    r.err
}

fn json<T: serde::de::DeserializeOwned>(d: &FakeDaemon, args: &[&str]) -> T {
    let mut a = vec!["--format", "json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(d, &a)).unwrap()
}

fn setup(d: &FakeDaemon) {
    ok(
        d,
        &[
            "set-uplink",
            "eth0",
            "--local-ip",
            "192.0.2.1",
            "--",
            "add-br",
            "br0",
            "--",
            "add-port",
            "br0",
            "vm1",
            "--",
            "add-tunnel",
            "br0",
            "vx1",
            "--type",
            "vxlan",
            "--vni",
            "100",
            "--remote",
            "192.0.2.2",
        ],
    );
}

#[test]
fn chained_commands_are_one_transaction() {
    let d = FakeDaemon::start("chain");
    setup(&d);
    assert_eq!(d.commits.load(std::sync::atomic::Ordering::SeqCst), 1);
    let c: Config = json(&d, &["show"]);
    assert_eq!((c.bridges.len(), c.ports.len(), c.tunnels.len()), (1, 1, 1));
    let tree = ok(&d, &["show"]);
    assert!(
        tree.contains("uplink eth0 #1 mtu 1500 local 192.0.2.1"),
        "{tree}"
    );
    assert!(tree.contains("bridge br0"), "{tree}");
    assert!(tree.contains("    port vm1 #2 untagged mtu 1500"), "{tree}");
    assert!(
        tree.contains("    tunnel vx1 #3 vxlan vni 100 remote 192.0.2.2 dst_port 4789"),
        "{tree}"
    );

    // Three commands, the third invalid: rejected whole, `show` identical.
    let before = ok(&d, &["show"]);
    let err = rejected(
        &d,
        &[
            "add-br",
            "br1",
            "--",
            "add-port",
            "br1",
            "vm2",
            "--",
            "add-tunnel",
            "br1",
            "vx2",
            "--type",
            "vxlan",
            "--vni",
            "16777216",
            "--remote",
            "192.0.2.3",
        ],
    );
    assert!(
        err.contains("command 3 (add-tunnel vx2): VNI 16777216: out of range"),
        "{err}"
    );
    assert_eq!(ok(&d, &["show"]), before);

    // Read verbs cannot be chained.
    let r = xvsctl(&d, &["add-br", "br2", "--", "show"]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("show cannot be chained"), "{}", r.err);
    // JSON output of a transaction.
    let r = ok(&d, &["--format", "json", "add-br", "br2"]);
    let v: serde_json::Value = serde_json::from_str(&r).unwrap();
    assert_eq!(v["applied"], 1);
}

#[test]
fn every_verb_through_xvsctl() {
    let d = FakeDaemon::start("verbs");
    setup(&d);
    ok(&d, &["add-br", "br0", "--may-exist"]);
    ok(
        &d,
        &[
            "add-br",
            "br9",
            "--fdb-max-entries",
            "10",
            "--fdb-aging",
            "60",
        ],
    );
    ok(
        &d,
        &[
            "add-port", "br9", "vm9", "--queues", "2", "--trunks", "10,20-22", "--native", "10",
        ],
    );
    ok(
        &d,
        &["add-port", "br0", "vm2", "--tag", "5", "--mtu", "9000"],
    );
    ok(
        &d,
        &[
            "add-tunnel",
            "br9",
            "gn1",
            "--type",
            "geneve",
            "--vni",
            "200",
            "--remote",
            "192.0.2.7,192.0.2.8",
            "--local",
            "192.0.2.1",
            "--ttl",
            "32",
            "--tos",
            "inherit",
            "--no-df",
            "--csum",
            "--geneve-opt",
            "0x0102:0x80:00000001",
        ],
    );
    ok(&d, &["fdb-add", "br0", "02:00:00:00:00:01", "vx1"]);
    ok(
        &d,
        &[
            "fdb-add",
            "br9",
            "02:00:00:00:00:02",
            "gn1",
            "--remote",
            "192.0.2.8",
            "--vlan",
            "20",
        ],
    );
    ok(&d, &["neigh-set", "192.0.2.254", "02:00:00:00:fe:01"]);
    ok(
        &d,
        &[
            "route-add",
            "198.51.100.0/24",
            "192.0.2.254",
            "--metric",
            "5",
        ],
    );
    ok(
        &d,
        &[
            "add-flow",
            "br0",
            "priority=100,in_port=vm1,dl_dst=02:00:00:00:00:01,actions=output:vx1",
        ],
    );
    ok(&d, &["add-flow", "br0", "priority=10,actions=normal"]);
    ok(
        &d,
        &[
            "acl-add",
            "vm1",
            "--dir",
            "in",
            "--prio",
            "10",
            "tcp,tp_dst=22",
            "--action",
            "drop",
        ],
    );
    ok(
        &d,
        &[
            "acl-add", "vm1", "--dir", "in", "--prio", "5", "--action", "allow",
        ],
    );
    ok(
        &d,
        &[
            "qos-set", "vm1", "--dir", "in", "--rate", "100mbit", "--burst", "64kb", "--peak",
            "1gbit",
        ],
    );

    let c = d.config();
    let q = &c.qos[0];
    assert_eq!(
        (q.rate_bps, q.burst_bytes, q.peak_bps),
        (100_000_000, 65_536, Some(1_000_000_000))
    );
    let gn1 = c.tunnels.iter().find(|t| t.name == "gn1").unwrap();
    assert!(!gn1.df && gn1.csum && gn1.geneve_opts[0].data == [0, 0, 0, 1]);
    assert_eq!(
        c.bridges[0].flows[0],
        "priority=100,in_port=2,dl_dst=02:00:00:00:00:01,actions=output:3"
    );

    // Reads, as tables and as typed JSON rows.
    let fdb: Vec<FdbRow> = json(&d, &["fdb-show", "br9"]);
    assert_eq!(fdb.len(), 1);
    assert_eq!(
        (fdb[0].vlan, fdb[0].remote.unwrap().to_string()),
        (20, "192.0.2.8".to_string())
    );
    assert!(ok(&d, &["fdb-show"]).starts_with("BRIDGE  VLAN  MAC"));
    let flows: Vec<FlowRow> = json(&d, &["dump-flows", "br0"]);
    assert_eq!(flows[0].matches, "in_port=vm1,dl_dst=02:00:00:00:00:01");
    assert_eq!(flows[0].actions, "output:vx1");
    let text = ok(&d, &["dump-flows"]);
    assert!(
        text.contains(
            "bridge=br0, priority=100,in_port=vm1,dl_dst=02:00:00:00:00:01 actions=output:vx1"
        ),
        "{text}"
    );
    let acls: Vec<AclRow> = json(&d, &["acl-show", "vm1", "--dir", "in"]);
    // ACLs show their own view: ip_proto as a number, either IP family.
    assert_eq!(
        (acls[0].priority, acls[0].matches.as_str()),
        (10, "nw_proto=6,tp_dst=22")
    );
    assert!(ok(&d, &["acl-show", "vm1"]).contains("nw_proto=6,tp_dst=22"));
    let neigh: Vec<NeighRow> = json(&d, &["neigh-show"]);
    assert_eq!(neigh[0].ip.to_string(), "192.0.2.254");
    assert!(ok(&d, &["neigh-show"]).contains("static"));
    let routes: Vec<RouteRow> = json(&d, &["route-show"]);
    assert_eq!((routes[0].metric, routes[0].dev.as_str()), (5, "eth0"));
    assert!(ok(&d, &["route-show"]).contains("198.51.100.0/24  192.0.2.254"));
    let tunnels: Vec<TunnelPortRow> = json(&d, &["tunnel-ports"]);
    assert_eq!(tunnels.len(), 2);
    assert_eq!(tunnels[1].geneve_opts, vec!["0x0102:0x80:00000001"]);
    assert!(ok(&d, &["tunnel-ports"]).contains("gn1   br9     geneve  200"));
    let stats: Vec<StatsRow> = json(&d, &["stats", "vm1", "--per-worker"]);
    assert_eq!(stats.len(), 1);
    assert!(stats[0].per_worker.is_some());
    let t = ok(&d, &["stats"]);
    assert!(
        t.contains("NAME") && t.contains("vm1 drops: neigh_unresolved=1"),
        "{t}"
    );
    let w: Vec<WorkerStatsRow> = json(&d, &["worker-stats"]);
    assert_eq!(w[0].packets, 1000);
    assert_eq!(w[0].events["arp_suppressed"], 3);
    let t = ok(&d, &["worker-stats"]);
    assert!(t.contains("BUSY%") && t.contains("arp_suppressed=3"), "{t}");
    let v = ok(&d, &["version"]);
    assert!(v.contains("xvsd") && v.contains("protocol 1"), "{v}");
    let tree = ok(&d, &["show"]);
    assert!(
        tree.contains("        qos in: rate 100mbit burst 64kb peak 1gbit"),
        "{tree}"
    );
    assert!(
        tree.contains("        acl in: priority=10,tcp,tp_dst=22,action=drop"),
        "{tree}"
    );
    assert!(tree.contains("    flow priority=100,in_port=vm1"), "{tree}");

    // And the deletes.
    ok(&d, &["qos-clear", "vm1"]);
    ok(
        &d,
        &[
            "acl-del",
            "vm1",
            "--dir",
            "in",
            "--prio",
            "10",
            "tcp,tp_dst=22",
        ],
    );
    ok(&d, &["acl-del", "vm1", "--dir", "in"]);
    ok(&d, &["del-flows", "br0", "in_port=vm1"]);
    assert_eq!(d.config().bridges[0].flows.len(), 1);
    ok(&d, &["del-flows", "br0"]);
    ok(&d, &["route-del", "198.51.100.0/24"]);
    ok(&d, &["neigh-flush"]);
    ok(&d, &["fdb-del", "br0", "02:00:00:00:00:01"]);
    ok(&d, &["del-port", "vm2"]);
    ok(&d, &["del-br", "br9"]);
    ok(&d, &["del-br", "br9", "--if-exists"]);
    let c = d.config();
    assert!(
        c.qos.is_empty()
            && c.acls.is_empty()
            && c.routes.is_empty()
            && c.neighbors.is_empty()
            && c.fdb.is_empty()
    );
    assert_eq!((c.bridges.len(), c.ports.len(), c.tunnels.len()), (1, 1, 1));
}

#[test]
fn the_error_cases_of_the_issue() {
    let d = FakeDaemon::start("errors");
    setup(&d);
    let e = rejected(&d, &["add-port", "nope", "vm5"]);
    assert!(e.contains("no bridge \"nope\""), "{e}");
    let e = rejected(&d, &["add-port", "br0", "vm1"]);
    assert!(e.contains("port \"vm1\" already exists"), "{e}");
    let e = rejected(
        &d,
        &[
            "add-tunnel",
            "br0",
            "vx9",
            "--type",
            "vxlan",
            "--vni",
            "99999999",
            "--remote",
            "192.0.2.9",
        ],
    );
    assert!(e.contains("VNI 99999999: out of range"), "{e}");
    // Bad MAC, IP and CIDR are refused by xvsctl before anything is sent.
    let e = rejected(&d, &["fdb-add", "br0", "02:00:00:00:00:zz", "vm1"]);
    assert!(e.contains("invalid MAC address"), "{e}");
    let e = rejected(&d, &["fdb-add", "br0", "01:00:5e:00:00:01", "vm1"]);
    assert!(e.contains("not a unicast MAC"), "{e}");
    let e = rejected(&d, &["neigh-set", "192.0.2.300", "02:00:00:00:00:01"]);
    assert!(e.contains("192.0.2.300"), "{e}");
    let e = rejected(&d, &["route-add", "198.51.100.1/24"]);
    assert!(e.contains("198.51.100.1/24"), "{e}");
    let e = rejected(&d, &["route-add", "198.51.100.0/33"]);
    assert!(e.contains("198.51.100.0/33"), "{e}");
    let e = rejected(
        &d,
        &[
            "qos-set", "vm1", "--dir", "in", "--rate", "0", "--burst", "64kb",
        ],
    );
    assert!(e.contains("a rate of zero"), "{e}");
    let e = rejected(
        &d,
        &[
            "qos-set", "vm1", "--dir", "in", "--rate", "fast", "--burst", "64kb",
        ],
    );
    assert!(e.contains("\"fast\""), "{e}");
    ok(
        &d,
        &[
            "acl-add",
            "vm1",
            "--dir",
            "in",
            "--prio",
            "10",
            "tcp,tp_dst=22",
            "--action",
            "drop",
        ],
    );
    let e = rejected(
        &d,
        &[
            "acl-add",
            "vm1",
            "--dir",
            "in",
            "--prio",
            "10",
            "nw_src=10.0.0.0/8",
            "--action",
            "drop",
        ],
    );
    assert!(
        e.contains("share priority 10 but match different fields"),
        "{e}"
    );
    let e = rejected(
        &d,
        &[
            "add-flow",
            "br0",
            "priority=1,in_port=vm1,nw_dst=10.0.0.0/8,actions=output:ghost",
        ],
    );
    assert!(e.contains("no port \"ghost\""), "{e}");
    let e = rejected(&d, &["add-port", "br0", "vm5", "--tag", "4095"]);
    assert!(e.contains("tag 4095"), "{e}");
    let e = rejected(
        &d,
        &["add-port", "br0", "vm5", "--tag", "5", "--trunks", "6"],
    );
    assert!(e.contains("cannot be used with"), "{e}");
    let e = rejected(&d, &["del-br", "br7"]);
    assert!(e.contains("bridge \"br7\" not found"), "{e}");
    let e = rejected(&d, &["stats", "ghost"]);
    assert!(e.contains("no port or tunnel \"ghost\""), "{e}");
    let e = rejected(&d, &["frobnicate"]);
    assert!(e.contains("unrecognized subcommand"), "{e}");
    // Several problems at once, one line each.
    let e = rejected(
        &d,
        &["add-port", "nope", "a", "--", "add-port", "br0", "vm1"],
    );
    assert!(e.contains("rejected, 2 problem(s):\n  - command 1"), "{e}");
}

#[test]
fn exit_code_2_when_xvsd_cannot_be_reached() {
    let d = FakeDaemon::start("unreachable");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xvsctl"));
    let o = cmd
        .args([
            "--socket",
            &format!("{}.missing", d.path().display()),
            "show",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot reach xvsd") && err.contains("is xvsd running"),
        "{err}"
    );

    d.delay_ms.store(3000, std::sync::atomic::Ordering::SeqCst);
    let r = xvsctl(&d, &["--timeout", "0.3", "show"]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("did not answer within 0.3 s"), "{}", r.err);
}

#[test]
fn completions_and_man_page() {
    let d = FakeDaemon::start("gen");
    for shell in ["bash", "zsh", "fish"] {
        let out = ok(&d, &["completions", shell]);
        assert!(
            out.contains("add-tunnel") && out.contains("geneve-opt"),
            "{shell}"
        );
    }
    let man = ok(&d, &["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH xvsctl"),
        "{}",
        &man[..200.min(man.len())]
    );
    assert!(man.contains("add\\-tunnel"), "man page lists the verbs");
    let help = ok(&d, &["--help"]);
    assert!(help.contains("Exit status: 0 ok, 1 request rejected"));
}

#[test]
fn fdb_batches_are_fast_and_atomic() {
    let d = FakeDaemon::start("batch");
    setup(&d);
    let n = 10_000u64;
    let mut file = String::from("# MAC PORT [VLAN [REMOTE]]\n");
    for i in 0..n {
        let m = 0x0200_0000_0000u64 | i;
        let b = m.to_be_bytes();
        file.push_str(&format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} {}\n",
            b[2],
            b[3],
            b[4],
            b[5],
            b[6],
            b[7],
            if i % 2 == 0 { "vm1" } else { "vx1" }
        ));
    }
    let t = Instant::now();
    let r = xvsctl_in(&d, &["fdb-add", "br0", "--file", "-"], &file);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(d.config().fdb.len(), n as usize);
    eprintln!(
        "{n} FDB entries in one xvsctl call: {secs:.2} s, {:.0} entries/s",
        n as f64 / secs
    );
    assert_eq!(
        d.commits.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one transaction"
    );

    // A bad line names itself and nothing is sent.
    let r = xvsctl_in(
        &d,
        &["fdb-add", "br0", "--file", "-"],
        "02:00:00:00:00:01 vm1\nzz vm1\n",
    );
    assert_eq!(r.code, 1);
    assert!(r.err.contains("stdin line 2"), "{}", r.err);
    // An entry the daemon refuses rejects the whole batch.
    let before = d.config();
    let r = xvsctl_in(
        &d,
        &["fdb-add", "br0", "--file", "-"],
        "06:00:00:00:00:01 vm1\n06:00:00:00:00:02 ghost\n",
    );
    assert_eq!(r.code, 1);
    assert!(
        r.err
            .contains("command 2 (fdb-add br0 06:00:00:00:00:02 ghost)"),
        "{}",
        r.err
    );
    assert_eq!(d.config(), before);

    // `batch`: any config commands, one transaction; too big needs --chunked.
    let script = "add-br br5  # a comment\nadd-port br5 vm5 -- acl-add vm5 --dir out --prio 3 'udp,tp_dst=53' --action drop\n\n";
    let r = xvsctl_in(&d, &["batch"], script);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(d.config().acls.len(), 1);
    let r = xvsctl_in(&d, &["batch"], "add-br br6\nfdb-show\n");
    assert_eq!(r.code, 1);
    assert!(
        r.err
            .contains("line 2: fdb-show does not change the config"),
        "{}",
        r.err
    );

    let mut big = String::new();
    for i in 0..20_000u64 {
        let b = (0x0a00_0000_0000u64 | i).to_be_bytes();
        big.push_str(&format!(
            "fdb-add br0 {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} vm1\n",
            b[2], b[3], b[4], b[5], b[6], b[7]
        ));
    }
    let r = xvsctl_in(&d, &["batch"], &big);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("--chunked"), "{}", r.err);
    let t = Instant::now();
    let r = xvsctl_in(&d, &["batch", "--chunked"], &big);
    assert_eq!(r.code, 0, "{}", r.err);
    eprintln!(
        "20000 FDB entries through `batch --chunked`: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(d.config().fdb.len(), 30_000);
}

#[test]
fn mirrors_are_added_listed_shown_and_go_with_their_ports() {
    let d = FakeDaemon::start("mirrors");
    setup(&d);
    ok(
        &d,
        &["add-port", "br0", "vm2", "--", "add-port", "br0", "span"],
    );
    ok(
        &d,
        &[
            "mirror-add",
            "m1",
            "--src",
            "vm1,vm2",
            "--dir",
            "in",
            "--to",
            "span",
        ],
    );
    ok(&d, &["mirror-add", "m2", "--src", "vm1", "--to", "vx1"]);
    let c = d.config();
    assert_eq!(c.mirrors.len(), 2);
    assert_eq!(c.mirrors[0].src, ["vm1", "vm2"]);
    assert_eq!(c.mirrors[0].dir, xvs_config::MirrorDir::In);
    assert_eq!(c.mirrors[1].dir, xvs_config::MirrorDir::Both);

    let rows: Vec<xvs_ctl::protocol::MirrorRow> = json(&d, &["mirror-list"]);
    assert_eq!(rows.len(), 2);
    assert!(rows[1].remote && !rows[0].remote);
    let table = ok(&d, &["mirror-list"]);
    assert!(table.starts_with("MIRROR"), "{table}");
    assert!(table.contains("vx1 (tunnel)"), "{table}");
    assert!(ok(&d, &["show"]).contains("mirror m1: vm1,vm2 in -> span"));

    // Refused whole, naming what is wrong.
    let e = rejected(&d, &["mirror-add", "m1", "--src", "vm1", "--to", "span"]);
    assert!(e.contains("mirror \"m1\" already exists"), "{e}");
    let e = rejected(&d, &["mirror-add", "m3", "--src", "ghost", "--to", "span"]);
    assert!(e.contains("no port or tunnel \"ghost\""), "{e}");
    let e = rejected(&d, &["mirror-add", "m3", "--src", "span", "--to", "vm2"]);
    assert!(e.contains("is a mirror's source"), "{e}");
    ok(
        &d,
        &[
            "mirror-add",
            "m1",
            "--src",
            "vm1",
            "--to",
            "span",
            "--may-exist",
        ],
    );

    // A source deleted leaves the mirror; its last source or its output
    // deleted takes the mirror with it.
    ok(&d, &["del-port", "vm2"]);
    assert_eq!(d.config().mirrors[0].src, ["vm1"]);
    ok(&d, &["del-port", "span"]);
    let c = d.config();
    assert_eq!(c.mirrors.len(), 1);
    assert_eq!(c.mirrors[0].name, "m2");
    ok(&d, &["mirror-del", "m2"]);
    rejected(&d, &["mirror-del", "m2"]);
    ok(&d, &["mirror-del", "m2", "--if-exists"]);
    assert!(d.config().mirrors.is_empty());
}
