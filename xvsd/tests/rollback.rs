//! A failed transaction leaves nothing of itself behind: one transaction
//! that deletes a port, adds one and swaps the uplink is failed at its
//! 1st, 2nd, ... fallible step in turn (xvsd's test-only hook,
//! `XVSD_FAULT_FILE`: the number written there is the step the next
//! transaction fails at) until it goes through. After each failure
//! `xvsctl show` and the state file are what they were before, and the
//! ports the transaction touched nothing of still forward (a ping).
//!
//! ```text
//! vm1 10.0.0.1 ─ p1 ┐
//! vm2 10.0.0.2 ─ p2 ├ br0 [hv: xvsd]  vx1 VNI 42 ─ u0 192.0.2.1    ── peer pu0
//! vm3 10.0.0.3 ─ p3 ┘   (p3 deleted,               u1 198.51.100.1 ── peer pu1
//! vm4 10.0.0.4 ─ p4     p4 added,                  (u0 swapped for u1)
//! ```
//!
//! Needs root (`xvs_tests::require_root`); namespaces and the daemon go
//! away on drop, panics included; every wait is bounded.

use std::path::Path;

use xvs_tests::{require_root, veth, workspace_bin, Netns, Xvsd};

/// Enough for any transaction's steps; reaching it is a failure.
const MAX_STEPS: u32 = 40;

fn ok(d: &Xvsd, args: &[&str]) -> String {
    let (code, out, err) = d.ctl(&workspace_bin("xvsctl"), args);
    assert_eq!(code, 0, "xvsctl {args:?}: {out}{err}\n{}", d.log());
    out
}

/// The state file's journal (see xvsd's `state` module): with the
/// snapshot, what a restart would apply.
fn journal(d: &Xvsd) -> std::path::PathBuf {
    let mut j = d.state.clone().into_os_string();
    j.push(".journal");
    j.into()
}

/// What must not change when a transaction fails: `xvsctl show`, and the
/// persisted state (snapshot and journal).
fn observed(d: &Xvsd) -> (String, String) {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let state = read(&d.state) + "\n--- journal\n" + &read(&journal(d));
    (ok(d, &["show"]), state)
}

#[test]
fn a_transaction_failed_at_any_step_leaves_nothing_behind() {
    if !require_root() {
        return;
    }
    let hv = Netns::new("rbh");
    hv.no_ipv6_on_new_interfaces();
    let vms: Vec<Netns> = (1..=4u8)
        .map(|n| {
            let vm = Netns::new(&format!("rbv{n}"));
            vm.no_ipv6_on_new_interfaces();
            veth(
                &vm,
                "eth0",
                &format!("02:00:00:00:0{n}:01"),
                &hv,
                &format!("p{n}"),
                &format!("02:00:00:00:0{n}:02"),
            );
            vm.ip(&["addr", "add", &format!("10.0.0.{n}/24"), "dev", "eth0"]);
            vm
        })
        .collect();
    let peer = Netns::new("rbp");
    peer.no_ipv6_on_new_interfaces();
    for (u, net, mac) in [("u0", "192.0.2", "01"), ("u1", "198.51.100", "03")] {
        let pu = format!("p{u}");
        veth(
            &hv,
            u,
            &format!("02:00:00:00:00:{mac}"),
            &peer,
            &pu,
            &format!("02:00:00:00:01:{mac}"),
        );
        hv.ip(&["addr", "add", &format!("{net}.1/24"), "dev", u]);
        peer.ip(&["addr", "add", &format!("{net}.2/24"), "dev", &pu]);
    }

    let fault = std::env::temp_dir().join(format!("xvsd-fault-{}", std::process::id()));
    let _ = std::fs::remove_file(&fault);
    // Read by xvsd (`ip netns exec` passes the environment on); this
    // binary runs this one test, so no other thread reads the variable.
    std::env::set_var("XVSD_FAULT_FILE", &fault);
    let d = Xvsd::start_empty(Path::new(env!("CARGO_BIN_EXE_xvsd")), &hv, &[]);
    ok(&d, &["set-uplink", "u0", "--local-ip", "192.0.2.1"]);
    #[rustfmt::skip]
    ok(&d, &[
        "add-br", "br0",
        "--", "add-port", "br0", "p1",
        "--", "add-port", "br0", "p2",
        "--", "add-port", "br0", "p3",
        "--", "add-tunnel", "br0", "vx1", "--type", "vxlan", "--vni", "42",
        "--remote", "192.0.2.2", "--remote", "198.51.100.2",
    ]);
    assert_eq!(
        vms[0].ping("10.0.0.2", 2),
        2,
        "p1 -> p2 before\n{}",
        d.log()
    );
    let before = observed(&d);
    assert!(
        before.1.contains("p3"),
        "the state file holds the config: {}",
        before.1
    );

    #[rustfmt::skip]
    let change = [
        "del-port", "p3",
        "--", "add-port", "br0", "p4",
        "--", "set-uplink", "u1", "--local-ip", "198.51.100.1",
    ];
    let mut failed = 0;
    for n in 1..=MAX_STEPS {
        std::fs::write(&fault, n.to_string()).expect("fault file");
        let (code, out, err) = d.ctl(&workspace_bin("xvsctl"), &change);
        if code == 0 {
            break;
        }
        failed += 1;
        assert!(
            err.contains(&format!("injected failure at step {n}")) || out.contains("injected"),
            "step {n} failed for another reason: {out}{err}\n{}",
            d.log()
        );
        assert!(!fault.exists(), "the transaction took the fault");
        let after = observed(&d);
        assert_eq!(after.0, before.0, "xvsctl show after a failure at step {n}");
        assert_eq!(
            after.1, before.1,
            "the state file after a failure at step {n}"
        );
        assert_eq!(
            vms[0].ping("10.0.0.2", 1),
            1,
            "p1 -> p2 after a failure at step {n}\n{}",
            d.log()
        );
        assert_eq!(vms[0].ping("10.0.0.3", 1), 1, "p1 -> p3 after step {n}");
        assert!(n < MAX_STEPS, "the transaction never went through");
    }
    eprintln!("the transaction failed at each of its {failed} steps, then went through");
    assert!(
        failed >= 4,
        "attach and bind of p4 and u1, maps, snapshot: {failed} steps"
    );
    // Then it took effect: p4 forwards, p3 is gone, the uplink is u1.
    let _ = std::fs::remove_file(&fault);
    let shown = ok(&d, &["show"]);
    assert!(shown.contains("u1") && shown.contains("p4"), "{shown}");
    assert_ne!(
        observed(&d).1,
        before.1,
        "the state file follows a committed change"
    );
    assert_eq!(vms[0].ping("10.0.0.4", 2), 2, "p1 -> p4 after\n{}", d.log());
    assert_eq!(vms[0].ping("10.0.0.3", 1), 0, "p3 is gone");
    let journal = journal(&d);
    let (status, log) = d.stop();
    let _ = std::fs::remove_file(journal);
    assert!(status.success(), "xvsd exit: {status}\n{log}");
}
