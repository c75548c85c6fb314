//! xvs-agent against a real etcd (Debian's etcd-server on 127.0.0.1, free
//! ports, temp data dir): registration under a lease, updates when the
//! config file changes, revoke on SIGTERM, expiry after SIGKILL, and
//! etcd restarts (with its data, and wiped) after which every agent is
//! registered again. No xvsd here (the agents log that they cannot reach
//! it and retry); xvsd's side is in `discovery.rs`. Every wait is bounded;
//! etcd and the agents are killed on drop.

use std::path::Path;
use std::time::Duration;

use xvs_tests::etcd::{require_etcd, wait_for, Agent, Etcd};

const BIN: &str = env!("CARGO_BIN_EXE_xvs-agent");
const TTL: u64 = 2;

fn config(etcd: &Etcd, name: &str, n: u8, virts: &[u8]) -> String {
    let mut s = format!(
        r#"
etcd_endpoints = ["{}"]
prefix = "/t{}/"
name = "{name}"
underlay_ip = "192.0.2.{n}"
subnet = "10.244.{n}.0/24"
lease_ttl_secs = {TTL}
xvsd_socket = "/nonexistent/xvsd.sock"

[[nets]]
name = "blue"
vni = 100
bridge = "blue"
tunnel = "vx"
"#,
        etcd.endpoint(),
        etcd.client_port
    );
    for v in virts {
        s += &format!(
            "[[nets.virts]]\nmac = \"02:00:00:00:{n:02x}:{v:02x}\"\nip = \"10.1.{n}.{v}\"\n"
        );
    }
    s
}

fn key(etcd: &Etcd, name: &str) -> String {
    format!("/t{}/hosts/{name}", etcd.client_port)
}

fn hosts(etcd: &Etcd) -> Vec<String> {
    etcd.keys(&format!("/t{}/hosts/", etcd.client_port))
}

fn skip() -> bool {
    !require_etcd()
}

#[test]
fn registration_appears_with_a_lease_follows_the_config_and_goes_on_sigterm() {
    if skip() {
        return;
    }
    let etcd = Etcd::start();
    let mut a = Agent::start(Path::new(BIN), None, &config(&etcd, "hv1", 1, &[1]));
    let k = key(&etcd, "hv1");
    let t = wait_for(Duration::from_secs(10), || etcd.get(&k).is_some());
    assert!(t.is_some(), "no registration in 10 s\n{}", a.log());
    let lease = etcd.lease_of(&k).expect("key");
    assert_ne!(lease, 0, "the key must be attached to a lease");
    let v: serde_json::Value = serde_json::from_str(&etcd.get(&k).unwrap()).unwrap();
    assert_eq!(v["underlay_ip"], "192.0.2.1");
    assert_eq!(v["subnet"], "10.244.1.0/24");
    assert_eq!(v["nets"][0]["vni"], 100);
    assert_eq!(v["nets"][0]["virts"][0]["mac"], "02:00:00:00:01:01");

    // The lease is kept alive well past its TTL.
    std::thread::sleep(Duration::from_secs(TTL * 2 + 1));
    assert_eq!(etcd.lease_of(&k), Some(lease), "{}", a.log());

    // A second virt in the file shows up in the registration.
    a.rewrite(&config(&etcd, "hv1", 1, &[1, 2]));
    let t = wait_for(Duration::from_secs(5), || {
        etcd.get(&k).is_some_and(|v| v.contains("10.1.1.2"))
    });
    assert!(t.is_some(), "config change not published\n{}", a.log());
    eprintln!("config change published after {t:?}");

    // SIGTERM revokes the lease: the key goes at once, not after the TTL.
    let status = a.stop().expect("running");
    assert!(status.success(), "{status}\n{}", a.log());
    assert!(
        etcd.get(&k).is_none(),
        "key left after SIGTERM\n{}",
        a.log()
    );
    assert!(a.log().contains("lease revoked"), "{}", a.log());
}

#[test]
fn a_killed_agent_disappears_when_its_lease_expires() {
    if skip() {
        return;
    }
    let etcd = Etcd::start();
    let mut a = Agent::start(Path::new(BIN), None, &config(&etcd, "hv1", 1, &[1]));
    let b = Agent::start(Path::new(BIN), None, &config(&etcd, "hv2", 2, &[1]));
    let both = vec![key(&etcd, "hv1"), key(&etcd, "hv2")];
    assert!(
        wait_for(Duration::from_secs(10), || hosts(&etcd) == both).is_some(),
        "{:?}\n{}\n{}",
        hosts(&etcd),
        a.log(),
        b.log()
    );
    a.kill9();
    let t = wait_for(Duration::from_secs(TTL + 5), || {
        hosts(&etcd) == vec![key(&etcd, "hv2")]
    });
    let t = t.unwrap_or_else(|| panic!("hv1 still there: {:?}", hosts(&etcd)));
    eprintln!("hv1 gone {t:?} after SIGKILL (lease TTL {TTL} s)");
    assert!(
        t >= Duration::from_millis(TTL * 1000 / 2),
        "gone too early: {t:?}"
    );
    // hv2 saw it leave.
    assert!(
        wait_for(Duration::from_secs(2), || b.log().contains("host left")).is_some(),
        "{}",
        b.log()
    );
}

#[test]
fn an_etcd_restart_loses_nothing() {
    if skip() {
        return;
    }
    let mut etcd = Etcd::start();
    let a = Agent::start(Path::new(BIN), None, &config(&etcd, "hv1", 1, &[1]));
    let b = Agent::start(Path::new(BIN), None, &config(&etcd, "hv2", 2, &[1]));
    let both = vec![key(&etcd, "hv1"), key(&etcd, "hv2")];
    let logs = |e: &Etcd| format!("{}\n---\n{}\n---\n{}", a.log(), b.log(), e.log());
    assert!(
        wait_for(Duration::from_secs(10), || hosts(&etcd) == both).is_some(),
        "{}",
        logs(&etcd)
    );

    // Killed and restarted with its data: the agents reconnect and keep
    // their registrations alive past several TTLs.
    etcd.restart(false);
    std::thread::sleep(Duration::from_secs(TTL * 3));
    assert_eq!(hosts(&etcd), both, "{}", logs(&etcd));

    // Restarted from nothing: every key and lease is gone; the agents
    // notice, grant new leases and register again.
    etcd.restart(true);
    let t = wait_for(Duration::from_secs(15), || hosts(&etcd) == both);
    let t = t.unwrap_or_else(|| panic!("{:?}\n{}", hosts(&etcd), logs(&etcd)));
    eprintln!("both registered again {t:?} after etcd came back empty");
    for k in &both {
        assert_ne!(etcd.lease_of(k), Some(0), "{k} without a lease");
    }
    // And they stay (the new leases are kept alive).
    std::thread::sleep(Duration::from_secs(TTL * 2));
    assert_eq!(hosts(&etcd), both, "{}", logs(&etcd));
}

#[test]
fn an_agent_started_before_etcd_registers_once_it_is_up() {
    if skip() {
        return;
    }
    // The agent's endpoint has nothing behind it yet: it retries with
    // backoff (at most 5 s apart).
    let (client, peer) = (xvs_tests::etcd::free_port(), xvs_tests::etcd::free_port());
    let planned = format!("http://127.0.0.1:{client}");
    let cfg = format!(
        "etcd_endpoints = [\"{planned}\"]\nprefix = \"/late/\"\nname = \"hv1\"\nunderlay_ip = \"192.0.2.1\"\nlease_ttl_secs = {TTL}\nxvsd_socket = \"/nonexistent/xvsd.sock\"\n"
    );
    let a = Agent::start(Path::new(BIN), None, &cfg);
    std::thread::sleep(Duration::from_secs(2));
    assert!(a.log().contains("etcd session ended"), "{}", a.log());
    let etcd = Etcd::start_at(None, "127.0.0.1", client, peer);
    let t = wait_for(Duration::from_secs(10), || {
        etcd.get("/late/hosts/hv1").is_some()
    });
    eprintln!("registered {t:?} after etcd came up");
    assert!(t.is_some(), "{}", a.log());
}
