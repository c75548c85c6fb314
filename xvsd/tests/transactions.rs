//! What a one-line transaction costs on the control thread, stage by
//! stage, at 100, 1,000 and 10,000 tunnels (one bridge each, as in
//! `hardening.rs`): the copy of the running config, the edit
//! (`command::edit_all`), the one validation (`ValidConfig::revalidate`
//! against the running config, as xvsd does; beside it, untimed in the
//! total, the whole `Config::validated` it replaced, on the same config in
//! the same run), the
//! control plane's compile and snapshot swap (`Control::apply_valid`),
//! and the journal (`state::Store::commit`). No daemon, no root: the
//! stages xvsd runs between reading a call and answering it, minus the
//! interfaces (none change in these transactions).
//!
//! Run the measurement (ignored: speed is judged by measurements, not
//! timed tests):
//!
//! ```text
//! cargo test --release -p xvsd --test transactions -- --ignored --nocapture
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use serde_json::json;
use xvs_config::{Config, Revalidation};
use xvs_ctl::command::{self, Command};
use xvs_dataplane::control::{ApplyWork, Control};
use xvs_types::MacAddr;

fn cmd(v: serde_json::Value) -> Command {
    Command::from_value(&v).unwrap()
}

/// An uplink with a default route through a resolved gateway (so every
/// tunnel gets a real template), bridge `br0` with port `pa1`, and `n`
/// bridges `b{i}` each with one VXLAN tunnel `t{i}`.
fn config(n: usize) -> Config {
    let mut cmds = vec![
        cmd(json!({"op": "set-uplink", "iface": "u0", "local_ips": ["192.0.2.1"]})),
        cmd(json!({"op": "route-add", "prefix": "0.0.0.0/0", "gateway": "192.0.2.2", "dev": "u0"})),
        cmd(json!({"op": "neigh-set", "ip": "192.0.2.2", "mac": "02:00:00:00:00:02"})),
        cmd(json!({"op": "add-br", "name": "br0"})),
        cmd(json!({"op": "add-port", "bridge": "br0", "name": "pa1"})),
    ];
    for i in 0..n {
        let remote = Ipv4Addr::from(0x0a80_0000 + i as u32 + 2);
        cmds.push(cmd(json!({"op": "add-br", "name": format!("b{i}")})));
        cmds.push(cmd(json!({"op": "add-tunnel", "bridge": format!("b{i}"),
            "name": format!("t{i}"), "kind": "vxlan", "vni": i + 1, "remotes": [remote]})));
    }
    command::apply_all(&cmds, &Config::default()).unwrap()
}

/// A running control plane with `config` applied.
fn control(config: &Config) -> Control {
    let mut ctl = Control::new();
    ctl.underlay.uplink_mac = Some(MacAddr([2, 0, 0, 0, 0, 1]));
    ctl.apply(config.clone()).unwrap();
    ctl
}

/// One-line transactions of each kind, against a config from [`config`].
fn one_liners(n: usize) -> Vec<(&'static str, Vec<Command>)> {
    let k = n / 2;
    let remote: IpAddr = Ipv4Addr::new(10, 200, 0, 9).into();
    vec![
        (
            "set-tunnel --ttl",
            vec![cmd(
                json!({"op": "set-tunnel", "name": format!("t{k}"), "ttl": 33}),
            )],
        ),
        (
            "add-port",
            vec![cmd(
                json!({"op": "add-port", "bridge": format!("b{k}"), "name": "pz9"}),
            )],
        ),
        (
            "add-tunnel",
            vec![cmd(
                json!({"op": "add-tunnel", "bridge": "br0", "name": "tz9",
                "kind": "vxlan", "vni": n + 7, "remotes": [remote]}),
            )],
        ),
        (
            "del-port (tunnel)",
            vec![cmd(json!({"op": "del-port", "name": format!("t{k}")}))],
        ),
        (
            "fdb-add",
            vec![cmd(json!({"op": "fdb-add", "bridge": format!("b{k}"),
                "mac": "02:00:00:00:77:01", "port": format!("t{k}")}))],
        ),
    ]
}

/// Median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut v: Vec<Duration> = (0..runs).map(|_| f()).collect();
    v.sort();
    v[runs / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// One transaction as xvsd makes it, timed stage by stage: copy, edit,
/// validate once, compile that, journal. Not inlined, so that callgrind
/// can count it alone (`--toggle-collect='*transact*'`, see the bench
/// README), without the set-up and the untimed undo.
#[inline(never)]
fn transact(
    ctl: &mut Control,
    store: &mut xvsd::state::Store,
    cmds: &[Command],
    what: &str,
) -> ([Duration; 6], Revalidation) {
    let mut stage = [Duration::ZERO; 6];
    let t = Instant::now();
    let current = ctl.config().clone();
    stage[0] = t.elapsed();
    let t = Instant::now();
    let (new, problems) = command::edit_all(cmds, &current);
    assert!(problems.is_empty(), "{what}: {problems:?}");
    stage[1] = t.elapsed();
    let t = Instant::now();
    let (valid, how) = ctl.valid().revalidate_traced(new);
    let valid = valid.unwrap();
    stage[2] = t.elapsed();
    assert!(how.fast, "{what}: {how:?}");
    let t = Instant::now();
    ctl.apply_valid(valid).unwrap();
    stage[3] = t.elapsed();
    let t = Instant::now();
    store.commit(ctl.config()).unwrap();
    stage[4] = t.elapsed();
    stage[5] = stage[0] + stage[1] + stage[2] + stage[3] + stage[4];
    (stage, how)
}

/// The whole validation a transaction's revalidation replaced, timed on
/// the same config (edited again, untimed).
fn whole_validation(current: &Config, cmds: &[Command]) -> Duration {
    let (new, _) = command::edit_all(cmds, current);
    let t = Instant::now();
    let valid = new.validated().unwrap();
    let d = t.elapsed();
    drop(valid);
    d
}

#[test]
#[ignore = "a measurement: run with --release -- --ignored --nocapture"]
fn transaction_cost_by_stage() {
    let dir = std::env::temp_dir().join(format!("xvs-txcost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "| tunnels | transaction | clone ms | edit ms | validate ms | compile+swap ms | \
         journal ms | total ms | built: tunnels, templates, tables, FDBs | \
         whole validate ms | revalidated: fast, objects |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    // XVS_TX_TUNNELS=10000 measures one size only (for a profiler).
    let sizes: Vec<usize> = std::env::var("XVS_TX_TUNNELS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or_else(|| vec![100, 1_000, 10_000], |n| vec![n]);
    for n in sizes {
        let base = config(n);
        let mut ctl = control(&base);
        let mut store = xvsd::state::Store::new(dir.join(format!("state-{n}.json")));
        store.commit(&base).unwrap();
        // The first revalidation against a config builds its index whole
        // (after that each index is derived from the previous one): once
        // after xvsd starts, not per transaction.
        let t = Instant::now();
        let (_, how) = ctl.valid().revalidate_traced(ctl.config().clone());
        assert!(how.index_built, "{how:?}");
        println!(
            "| {n} | (index built) | | | {} | | | | | | |",
            ms(t.elapsed())
        );
        let runs = if n >= 10_000 { 5 } else { 11 };
        for (what, cmds) in one_liners(n) {
            let mut work = ApplyWork::default();
            let mut checked = Revalidation::default();
            let mut samples: Vec<[Duration; 7]> = Vec::new();
            for run in 0..runs {
                // Each run applies the change, then takes it back
                // (untimed).
                let current = ctl.config().clone();
                // The whole validation by turns before and after the
                // transaction, so neither has the warmer cache every time.
                let mut whole = Duration::ZERO;
                if run % 2 == 0 {
                    whole = whole_validation(&current, &cmds);
                }
                let (stage, how) = transact(&mut ctl, &mut store, &cmds, what);
                if run % 2 == 1 {
                    whole = whole_validation(&current, &cmds);
                }
                checked = how;
                work = ctl.last_apply();
                let mut all = [whole; 7];
                all[..6].copy_from_slice(&stage);
                samples.push(all);
                ctl.apply(current).unwrap();
                store.commit(ctl.config()).unwrap();
            }
            let cols: Vec<String> = (0..7)
                .map(|i| {
                    let mut s = samples.clone();
                    ms(median(runs, || s.pop().map_or(Duration::ZERO, |x| x[i])))
                })
                .collect();
            let built = format!(
                "{}, {}, {}, {}",
                work.tunnels_compiled,
                work.templates_built,
                work.bridge_tables_built,
                work.fdbs_rederived
            );
            println!(
                "| {n} | {what} | {} | {built} | {} | {}, {} |",
                cols[..6].join(" | "),
                cols[6],
                checked.fast,
                checked.objects
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
