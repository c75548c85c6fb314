//! A fake xvsd for the tests: the real server from `xvs_ctl::server` in
//! front of a handler thread that holds a `Config` and runs transactions
//! with `command::apply_all`, answering reads from the config (`view`), as
//! the daemon's control thread will with the running config.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use xvs_config::Config;
use xvs_ctl::command::apply_all;
use xvs_ctl::protocol::{
    Method, PortKindName, RpcError, StatsRow, TransactResult, WorkerPortStats, WorkerStatsRow,
};
use xvs_ctl::server::{Server, ServerHandle, ServerOptions};
use xvs_ctl::view;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory for one test's socket (removed by [`FakeDaemon`]'s
/// drop, best effort).
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("xvs-ctl-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub struct FakeDaemon {
    pub path: PathBuf,
    pub config: Arc<Mutex<Config>>,
    /// Milliseconds the handler sleeps before answering.
    pub delay_ms: Arc<AtomicU64>,
    /// Transactions committed.
    pub commits: Arc<AtomicU64>,
    server: Option<ServerHandle>,
    handler: Option<JoinHandle<()>>,
    dir: PathBuf,
}

impl FakeDaemon {
    pub fn start(tag: &str) -> FakeDaemon {
        Self::start_with(tag, ServerOptions::default(), None, Config::default())
    }

    pub fn start_with(
        tag: &str,
        options: ServerOptions,
        group: Option<u32>,
        config: Config,
    ) -> FakeDaemon {
        let dir = temp_dir(tag);
        // A directory that does not exist yet: bind creates it.
        let path = dir.join("run/xvsd.sock");
        let server = Server::bind(&path, group).unwrap().with_options(options);
        let (tx, rx) = crossbeam_channel::bounded::<xvs_ctl::server::Call>(16);
        let handle = server.spawn(tx).unwrap();
        let config = Arc::new(Mutex::new(config));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let commits = Arc::new(AtomicU64::new(0));
        let (cfg, delay, n) = (
            Arc::clone(&config),
            Arc::clone(&delay_ms),
            Arc::clone(&commits),
        );
        let handler = std::thread::spawn(move || {
            for call in rx {
                let d = delay.load(Ordering::SeqCst);
                if d > 0 {
                    std::thread::sleep(Duration::from_millis(d));
                }
                let mut config = cfg.lock().unwrap();
                answer(call, &mut config, &n);
            }
        });
        FakeDaemon {
            path,
            config,
            delay_ms,
            commits,
            server: Some(handle),
            handler: Some(handler),
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> Config {
        self.config.lock().unwrap().clone()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        // The handler ends when the last connection thread drops its sender.
        if let Some(h) = self.handler.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn answer(call: xvs_ctl::server::Call, config: &mut Config, commits: &AtomicU64) {
    match call.method.clone() {
        Method::Transact(p) => match apply_all(&p.commands, config) {
            Ok(new) => {
                let changed = new != *config;
                *config = new;
                commits.fetch_add(1, Ordering::SeqCst);
                call.respond(Ok(TransactResult {
                    applied: p.commands.len(),
                    changed,
                }));
            }
            Err(problems) => call.fail(RpcError::rejected(problems)),
        },
        Method::Show => call.respond(Ok(config.clone())),
        Method::FdbShow(p) => call.respond(view::static_fdb_rows(config, p.bridge.as_deref())),
        Method::NeighShow => call.respond(Ok(view::static_neigh_rows(config))),
        Method::RouteShow => call.respond(Ok(view::config_route_rows(config))),
        Method::DumpFlows(p) => call.respond(view::flow_rows(config, p.bridge.as_deref())),
        Method::AclShow(p) => call.respond(view::acl_rows(config, &p.port, p.dir)),
        Method::TunnelPorts => call.respond(Ok(view::tunnel_port_rows(config))),
        Method::ArpShow(p) => call.respond(view::addr_rows(config, p.bridge.as_deref())),
        Method::LookupMisses => call.respond(Ok(Vec::<xvs_ctl::protocol::MissRow>::new())),
        Method::Takeover(_) | Method::Restart => call.fail(RpcError::new(
            xvs_ctl::protocol::codes::REJECTED,
            "the fake daemon does not restart",
        )),
        Method::MirrorList => call.respond(Ok(config
            .mirrors
            .iter()
            .map(|m| xvs_ctl::protocol::MirrorRow {
                name: m.name.clone(),
                src: m.src.clone(),
                dir: m.dir,
                to: m.to.clone(),
                remote: config.tunnels.iter().any(|t| t.name == m.to),
                packets: 7,
                bytes: 700,
                dropped: 0,
            })
            .collect::<Vec<_>>())),
        Method::WorkerStats => call.respond(Ok(vec![WorkerStatsRow {
            id: 0,
            core: Some(1),
            busy_pct: 12.5,
            busy_ns: 125_000_000,
            idle_ns: 875_000_000,
            packets: 1000,
            cycles_per_packet: Some(210.0),
            send_cycles_per_packet: Some(150.0),
            batches: 40,
            empty_polls: 5,
            sleeps: 2,
            ring_full: 0,
            events: [("arp_suppressed".to_string(), 3)].into(),
            umem: None,
        }])),
        Method::Stats(p) => {
            let rows: Vec<StatsRow> = config
                .ports
                .iter()
                .map(|x| (x.name.clone(), PortKindName::Port))
                .chain(
                    config
                        .tunnels
                        .iter()
                        .map(|t| (t.name.clone(), PortKindName::Tunnel)),
                )
                .filter(|(n, _)| p.target.as_ref().is_none_or(|t| t == n))
                .map(|(name, kind)| StatsRow {
                    name,
                    kind,
                    rx_packets: 10,
                    rx_bytes: 640,
                    tx_packets: 9,
                    tx_bytes: 576,
                    drops: BTreeMap::from([("neigh_unresolved".to_string(), 1)]),
                    per_worker: p.per_worker.then(|| {
                        vec![WorkerPortStats {
                            worker: 0,
                            rx_packets: 10,
                            rx_bytes: 640,
                            tx_packets: 9,
                            tx_bytes: 576,
                            drops: BTreeMap::new(),
                        }]
                    }),
                    state: None,
                    learn_refused: BTreeMap::new(),
                    snooped: BTreeMap::new(),
                    csum_completed: 0,
                    icmp_too_big: 0,
                    tso_frames: 0,
                    tso_segments: 0,
                    policers: BTreeMap::new(),
                    xdp_generic: None,
                    fastpath: None,
                })
                .collect();
            if rows.is_empty() {
                if let Some(t) = p.target {
                    return call.fail(RpcError::rejected(vec![format!("no port or tunnel {t:?}")]));
                }
            }
            call.respond(Ok(rows))
        }
        Method::Hello => call.fail(RpcError::internal("hello is the server's")),
        // The fake has no pipeline: xvsd's tests trace.
        Method::Trace(_) => call.fail(RpcError::internal("the fake daemon does not trace")),
        Method::CaptureStart(_) | Method::CaptureRead(_) | Method::CaptureStop(_) => {
            call.fail(RpcError::internal("the fake daemon does not capture"))
        }
    }
}
