//! xvsd driven only through xvsctl and its control socket: every verb
//! against the running daemon, the rejections the issue lists (each with a
//! clear message, the daemon forwarding throughout), abuse of the socket
//! (a request cut in half, 10 MB of garbage, a client that never writes),
//! atomic transactions, persistence across SIGKILL, and reconfiguration of
//! one bridge under traffic on another without loss.
//!
//! ```text
//! vma1 10.1.0.1 ─ pa1 ┐
//! vma2 10.1.0.2 ─ pa2 ┴ bridge a   [hv: xvsd]   bridge b: pb1, pb2 (veths to vmb)
//!                                   u0 192.0.2.1 (uplink) ── veth ── peer
//! ```
//!
//! Needs root (`xvs_tests::require`: fails without it
//! under XVS_REQUIRE_ALL=1, skips loudly by hand). Namespaces and the daemon
//! go away on drop, panics included; every wait is bounded.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use xvs_ctl::client::Client;
use xvs_ctl::command::Command;
use xvs_tests::{require_root, underlay, veth, workspace_bin, Netns, Xvsd};

struct Bed {
    vma1: Netns,
    _vma2: Netns,
    _vmb: Netns,
    _peer: Netns,
    hv: Netns,
    d: Xvsd,
    xvsctl: PathBuf,
}

impl Bed {
    fn client(&self) -> Client {
        Client::connect(&self.d.socket, Duration::from_secs(10)).expect("connect")
    }
}

/// xvsd started empty, with bridge a = {pa1, pa2} set up through xvsctl.
fn bed(tag: &str) -> Bed {
    let hv = Netns::new(&format!("{tag}hv"));
    hv.no_ipv6_on_new_interfaces();
    let mk_vm = |n: &str, ip: &str, port: &str, mac: &str| {
        let vm = Netns::new(&format!("{tag}{n}"));
        vm.no_ipv6_on_new_interfaces();
        veth(
            &vm,
            "eth0",
            mac,
            &hv,
            port,
            &format!("{}2", &mac[..mac.len() - 1]),
        );
        vm.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        vm
    };
    let vma1 = mk_vm("a1", "10.1.0.1", "pa1", "02:00:00:00:a1:01");
    let vma2 = mk_vm("a2", "10.1.0.2", "pa2", "02:00:00:00:a2:01");
    let vmb = Netns::new(&format!("{tag}b"));
    veth(
        &vmb,
        "eb1",
        "02:00:00:00:b1:01",
        &hv,
        "pb1",
        "02:00:00:00:b1:02",
    );
    veth(
        &vmb,
        "eb2",
        "02:00:00:00:b2:01",
        &hv,
        "pb2",
        "02:00:00:00:b2:02",
    );
    let peer = Netns::new(&format!("{tag}pe"));
    underlay(&hv, &peer);
    let d = Xvsd::start_empty(&workspace_bin("xvsd"), &hv, &[]);
    let b = Bed {
        vma1,
        _vma2: vma2,
        _vmb: vmb,
        _peer: peer,
        hv,
        d,
        xvsctl: workspace_bin("xvsctl"),
    };
    b.d.ok(&[
        "add-br", "a", "--", "add-port", "a", "pa1", "--", "add-port", "a", "pa2",
    ]);
    b
}

fn skip() -> bool {
    !require_root()
}

#[test]
fn every_verb_and_every_rejection_through_xvsctl() {
    if skip() {
        return;
    }
    let b = bed("cv");
    b.vma1.ping("10.1.0.2", 1);
    assert_eq!(b.vma1.ping("10.1.0.2", 3), 3, "{}", b.d.log());

    // The uplink and a tunnel; the underlay verbs.
    b.d.ok(&["set-uplink", "u0", "--local-ip", "192.0.2.1"]);
    b.d.ok(&[
        "add-br",
        "b",
        "--",
        "add-tunnel",
        "b",
        "vx1",
        "--type",
        "vxlan",
        "--vni",
        "100",
        "--remote",
        "192.0.2.2",
        "--csum",
    ]);
    assert!(b.d.ok(&["tunnel-ports"]).contains("vx1"));
    b.d.ok(&["neigh-set", "192.0.2.9", "02:00:00:00:09:09"]);
    assert!(b.d.ok(&["neigh-show"]).contains("02:00:00:00:09:09"));
    b.d.ok(&["neigh-flush", "192.0.2.9"]);
    assert!(!b.d.ok(&["neigh-show"]).contains("02:00:00:00:09:09"));
    b.d.ok(&["route-add", "198.51.100.0/24", "192.0.2.254", "--dev", "u0"]);
    assert!(b.d.ok(&["route-show"]).contains("198.51.100.0/24"));
    b.d.ok(&["route-del", "198.51.100.0/24"]);
    assert!(!b.d.ok(&["route-show"]).contains("198.51.100.0/24"));

    // FDB, flows, ACLs, QoS on bridge a.
    b.d.ok(&["fdb-add", "a", "02:00:00:00:0f:01", "pa2"]);
    let fdb = b.d.ok(&["fdb-show", "a"]);
    assert!(
        fdb.contains("02:00:00:00:0f:01") && fdb.contains("static"),
        "{fdb}"
    );
    b.d.ok(&["fdb-del", "a", "02:00:00:00:0f:01"]);
    assert!(!b.d.ok(&["fdb-show", "a"]).contains("02:00:00:00:0f:01"));
    b.d.ok(&[
        "add-flow",
        "a",
        "priority=100,in_port=pa1,actions=output:pa2",
    ]);
    b.d.ok(&[
        "add-flow",
        "a",
        "priority=100,in_port=pa2,actions=output:pa1",
    ]);
    assert!(b.d.ok(&["dump-flows", "a"]).contains("in_port=pa1"));
    assert_eq!(
        b.vma1.ping("10.1.0.2", 3),
        3,
        "flows forward\n{}",
        b.d.log()
    );
    // Each rule counts what it matched (the workers report every 100 ms
    // or so: wait for it), and how long ago it last did.
    let counted = |rule: usize| -> (u64, u64, Option<u64>) {
        let rows: serde_json::Value =
            serde_json::from_str(&b.d.ok(&["--format", "json", "dump-flows", "a"])).unwrap();
        let r = &rows[rule];
        (
            r["n_packets"].as_u64().unwrap(),
            r["n_bytes"].as_u64().unwrap(),
            r["idle_age_secs"].as_u64(),
        )
    };
    assert!(
        xvs_tests::wait_for(Duration::from_secs(3), || counted(0).0 >= 3
            && counted(1).0 >= 3)
        .is_some(),
        "three echo requests in on pa1, three replies on pa2: {:?} {:?}",
        counted(0),
        counted(1)
    );
    let (packets, bytes, idle) = counted(0);
    assert!(bytes >= packets * 98, "{packets} frames, {bytes} bytes");
    assert!(idle.is_some_and(|s| s <= 5), "{idle:?}");
    let text = b.d.ok(&["dump-flows", "a"]);
    assert!(
        text.contains("n_packets=") && text.contains("idle_age="),
        "{text}"
    );
    // A changed table counts from zero, as a re-added flow does in OVS.
    b.d.ok(&["add-flow", "a", "priority=1,actions=drop"]);
    assert_eq!(counted(0), (0, 0, None));
    b.d.ok(&["del-flows", "a"]);
    b.d.ok(&[
        "acl-add", "pa1", "--dir", "in", "--prio", "10", "icmp", "--action", "drop",
    ]);
    let acl = b.d.ok(&["acl-show", "pa1"]);
    assert!(acl.contains("icmp") || acl.contains("nw_proto=1"), "{acl}");
    assert_eq!(b.vma1.ping("10.1.0.2", 2), 0, "the ACL drops ICMP");
    // The rule counts what it dropped (reports come every 100 ms or so).
    let hits = || -> u64 {
        let rows: serde_json::Value =
            serde_json::from_str(&b.d.ok(&["--format", "json", "acl-show", "pa1"])).unwrap();
        rows[0]["hits"].as_u64().unwrap()
    };
    assert!(
        xvs_tests::wait_for(Duration::from_secs(3), || hits() >= 2).is_some(),
        "two echo requests dropped: {}",
        hits()
    );
    // Exactly those two, their bytes, and when.
    let rows: serde_json::Value =
        serde_json::from_str(&b.d.ok(&["--format", "json", "acl-show", "pa1"])).unwrap();
    assert_eq!(rows[0]["hits"], 2, "{rows}");
    assert_eq!(rows[0]["n_bytes"], 2 * 98, "{rows}");
    assert!(
        rows[0]["idle_age_secs"].as_u64().is_some_and(|s| s <= 5),
        "{rows}"
    );
    b.d.ok(&["acl-del", "pa1", "--dir", "in", "--prio", "10"]);
    b.d.ok(&[
        "qos-set", "pa1", "--dir", "in", "--rate", "100mbit", "--burst", "64kb",
    ]);
    assert!(b.d.ok(&["show"]).contains("100"));
    // The policer counts what it let through (the echo requests, and any
    // ARP the VM sends meanwhile) and drops nothing at this rate.
    assert_eq!(b.vma1.ping("10.1.0.2", 3), 3, "{}", b.d.log());
    let policed = || -> serde_json::Value {
        let rows: serde_json::Value =
            serde_json::from_str(&b.d.ok(&["--format", "json", "stats", "pa1"])).unwrap();
        rows[0]["policers"]["in"].clone()
    };
    assert!(
        xvs_tests::wait_for(Duration::from_secs(3), || {
            policed()["conform_packets"].as_u64() >= Some(3)
        })
        .is_some(),
        "{}",
        policed()
    );
    let p = policed();
    assert!(p["conform_bytes"].as_u64() >= Some(3 * 98), "{p}");
    assert_eq!(p["exceed_packets"], 0, "{p}");
    b.d.ok(&["qos-clear", "pa1"]);
    assert_eq!(b.vma1.ping("10.1.0.2", 3), 3, "{}", b.d.log());
    let stats = b.d.ok(&["--format", "json", "stats", "pa1"]);
    let rows: serde_json::Value = serde_json::from_str(&stats).expect("stats JSON");
    assert!(rows[0]["rx_packets"].as_u64().unwrap_or(0) > 0, "{stats}");
    assert!(b.d.ok(&["worker-stats"]).contains("BUSY"));

    // Rejections, each with a message that says what and where.
    b.d.rejected(&["add-port", "nosuch", "pb1"], "nosuch");
    b.d.rejected(&["add-port", "a", "pa1"], "pa1");
    b.d.rejected(
        &[
            "add-tunnel",
            "b",
            "vx9",
            "--type",
            "vxlan",
            "--vni",
            "16777216",
            "--remote",
            "192.0.2.2",
        ],
        "16777216",
    );
    b.d.rejected(
        &["fdb-add", "a", "02:00:00:zz:00:01", "pa1"],
        "02:00:00:zz:00:01",
    );
    b.d.rejected(
        &["neigh-set", "192.0.2.300", "02:00:00:00:09:09"],
        "192.0.2.300",
    );
    b.d.rejected(
        &["route-add", "198.51.100.0/33", "192.0.2.254", "--dev", "u0"],
        "/33",
    );
    b.d.rejected(
        &[
            "qos-set", "pa1", "--dir", "in", "--rate", "0", "--burst", "64kb",
        ],
        "rate",
    );
    b.d.ok(&[
        "acl-add",
        "pa1",
        "--dir",
        "in",
        "--prio",
        "20",
        "tcp",
        "tp_dst=22",
        "--action",
        "drop",
    ]);
    b.d.rejected(
        &[
            "acl-add", "pa1", "--dir", "in", "--prio", "20", "udp", "--action", "drop",
        ],
        "20",
    );
    b.d.rejected(&["add-port", "a", "xvs-no-such-if"], "xvs-no-such-if");

    // Abuse of the socket itself; the daemon answers others meanwhile.
    let mut idle = UnixStream::connect(&b.d.socket).expect("connect");
    let mut half = UnixStream::connect(&b.d.socket).expect("connect");
    half.write_all(br#"{"jsonrpc":"2.0","id":1,"method":"sh"#)
        .expect("write");
    drop(half);
    let mut garbage = UnixStream::connect(&b.d.socket).expect("connect");
    garbage
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let junk = vec![b'x'; 10 << 20];
    // The server stops reading at its limit and closes: the write may
    // fail half-way, which is the point.
    let _ = garbage.write_all(&junk);
    let mut answer = String::new();
    let _ = garbage.read_to_string(&mut answer);
    assert!(answer.contains("-32001") || answer.is_empty(), "{answer}");
    assert!(b.d.ok(&["show"]).contains("pa2"));
    idle.set_read_timeout(Some(Duration::from_millis(10)))
        .expect("t");
    let mut buf = [0u8; 16];
    assert!(
        idle.read(&mut buf).is_err(),
        "an idle client is just waited for"
    );
    assert_eq!(b.vma1.ping("10.1.0.2", 3), 3, "{}", b.d.log());

    // No daemon: exit 2.
    let out = std::process::Command::new(&b.xvsctl)
        .args(["--socket", "/nonexistent/xvsd.sock", "show"])
        .output()
        .expect("xvsctl");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_transaction_whose_third_command_is_invalid_changes_nothing() {
    if skip() {
        return;
    }
    let b = bed("ct");
    let before = b.d.ok(&["--format", "json", "show"]);
    b.d.rejected(
        &[
            "add-br",
            "c",
            "--",
            "add-port",
            "c",
            "pb1",
            "--",
            "add-tunnel",
            "c",
            "vx2",
            "--type",
            "vxlan",
            "--vni",
            "99999999",
            "--remote",
            "192.0.2.2",
        ],
        "99999999",
    );
    assert_eq!(before, b.d.ok(&["--format", "json", "show"]));
    // pb1 was not attached either.
    let link = b.hv.run("ip", &["link", "show", "pb1"]);
    assert!(!link.contains("xdp"), "{link}");
}

fn fdb_add(bridge: &str, mac: &str, port: &str) -> Command {
    Command::from_value(&json!({"op": "fdb-add", "bridge": bridge, "mac": mac, "port": port}))
        .expect("fdb-add command")
}

#[test]
fn sigkill_during_transactions_loses_nothing_acknowledged() {
    if skip() {
        return;
    }
    let mut b = bed("ck");
    let socket = b.d.socket.clone();
    let pid = b.d.pid().expect("running");
    // Commit transactions as fast as possible; the daemon dies under them.
    let acked = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut acked = Vec::new();
            let Ok(mut c) = Client::connect(&socket, Duration::from_secs(5)) else {
                return acked;
            };
            for i in 0..5000u32 {
                let mac = format!("02:00:00:aa:{:02x}:{:02x}", i >> 8, i & 0xff);
                match c.transact(vec![fdb_add("a", &mac, "pa2")]) {
                    Ok(_) => acked.push(mac),
                    Err(_) => break,
                }
            }
            acked
        });
        std::thread::sleep(Duration::from_millis(700));
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        writer.join().expect("writer")
    });
    assert!(
        acked.len() > 10,
        "only {} transactions before the kill",
        acked.len()
    );
    b.d.restart_from_state();
    let rows = b.client().fdb_show(Some("a".into())).expect("fdb_show");
    let have: std::collections::BTreeSet<String> = rows.iter().map(|r| r.mac.to_string()).collect();
    let lost: Vec<&String> = acked.iter().filter(|m| !have.contains(*m)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged entries lost: {lost:?}",
        lost.len(),
        acked.len()
    );
    eprintln!(
        "{} transactions acknowledged before SIGKILL, all restored",
        acked.len()
    );
    b.vma1.ping("10.1.0.2", 1);
    assert_eq!(b.vma1.ping("10.1.0.2", 3), 3, "{}", b.d.log());
}

#[test]
fn a_thousand_transactions_on_one_bridge_lose_nothing_on_another() {
    if skip() {
        return;
    }
    let b = bed("cr");
    b.d.ok(&["add-br", "b", "--", "add-port", "b", "pb1"]);
    b.vma1.ping("10.1.0.2", 1);
    let mut c = b.client();
    let (got, done) = std::thread::scope(|s| {
        // 3,000 pings 5 ms apart (15 s) across bridge a.
        let ping = s.spawn(|| b.vma1.ping_every("10.1.0.2", 3000, "0.005", 2));
        let t0 = Instant::now();
        let mut done = 0;
        for i in 0..1000u32 {
            let cmds = match i % 50 {
                // Ports come and go on bridge b: sockets bound and closed.
                10 => vec![Command::from_value(
                    &json!({"op": "add-port", "bridge": "b", "name": "pb2"}),
                )
                .expect("add-port")],
                35 => vec![
                    Command::from_value(&json!({"op": "del-port", "name": "pb2"}))
                        .expect("del-port"),
                ],
                n if n % 2 == 0 => vec![fdb_add("b", &format!("02:00:00:bb:00:{:02x}", n), "pb1")],
                n => vec![Command::from_value(&json!({
                    "op": "fdb-del", "bridge": "b", "if_exists": true,
                    "mac": format!("02:00:00:bb:00:{:02x}", n - 1)
                }))
                .expect("fdb-del")],
            };
            c.transact(cmds).expect("transaction on bridge b");
            done += 1;
        }
        let took = t0.elapsed();
        let got = ping.join().expect("ping");
        eprintln!("1000 transactions in {took:?}; ping: {got}/3000 answered");
        (got, (done, took))
    });
    assert_eq!(done.0, 1000);
    assert!(
        done.1 < Duration::from_secs(15),
        "the transactions outlasted the ping: {:?}",
        done.1
    );
    assert_eq!(got, 3000, "pings lost on bridge a\n{}", b.d.log());
}

#[test]
fn ten_thousand_fdb_entries_through_one_xvsctl_call() {
    if skip() {
        return;
    }
    let b = bed("cf");
    let file = std::env::temp_dir().join(format!("xvs-fdb-{}.txt", std::process::id()));
    let lines: String = (0..10_000u32)
        .map(|i| {
            format!(
                "02:00:01:{:02x}:{:02x}:{:02x} pa2\n",
                i >> 16,
                (i >> 8) & 0xff,
                i & 0xff
            )
        })
        .collect();
    std::fs::write(&file, lines).expect("write entries");
    let t0 = Instant::now();
    b.d.ok(&["fdb-add", "a", "--file", file.to_str().expect("utf-8 path")]);
    let took = t0.elapsed();
    let _ = std::fs::remove_file(&file);
    let n = b
        .client()
        .fdb_show(Some("a".into()))
        .expect("fdb_show")
        .len();
    assert!(n >= 10_000, "{n} entries");
    eprintln!(
        "10,000 static FDB entries in one xvsctl call: {took:?} ({:.0} entries/s, debug build)",
        10_000.0 / took.as_secs_f64()
    );
}
