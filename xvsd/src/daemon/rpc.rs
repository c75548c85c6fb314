//! Serves the control socket and the metrics endpoint, whose calls reach
//! the control thread on one channel, and answers them there: transactions
//! (applied whole through [`Daemon::apply`], persisted before they are
//! acknowledged) and the read-only views (config, FDB, neighbors, routes,
//! flows, ACLs, counters, workers, tunnel ports).
//!
//! The server (`xvs_ctl::server`) has already rejected everything that is
//! not a well-formed, typed call; what reaches here is a [`Call`] to
//! answer exactly once.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use xvs_ctl::command;
use xvs_ctl::protocol::{
    codes, AclRow, FastPathRow, FdbKind, FdbRow, FlowRow, Method, MirrorRow, MissRow, PortKindName,
    RestartResult, RouteRow, RpcError, StatsParams, StatsRow, TakeoverResult, TraceOutput,
    TraceParams, TraceResult, TransactResult, UmemRow, WorkerPortStats, WorkerStatsRow,
};
use xvs_ctl::server::Call;
use xvs_ctl::view;
use xvs_dataplane::control::LearnRefusals;
use xvs_dataplane::events::MissKind;
use xvs_dataplane::pipeline::{MirrorCount, PortCounters, RuleCount};
use xvs_dataplane::snapshot::PortKind;
use xvs_dataplane::stats::DropCounters;
use xvs_dataplane::tunnel::NO_REMOTE;
use xvs_types::{u128_to_ip, PortNo};

use tracing::info;

use super::{Daemon, DaemonError};

fn drops_map(d: &DropCounters) -> BTreeMap<String, u64> {
    d.nonzero().map(|(n, c)| (n.to_owned(), c)).collect()
}

fn learn_refused_map(r: LearnRefusals) -> BTreeMap<String, u64> {
    view::nonzero_map([
        ("learn_refused_port_limit", r.port_limit),
        ("learn_refused_fdb_full", r.fdb_full),
    ])
}

impl Daemon {
    /// Serves the control socket at `path` (mode 0660, group `group`):
    /// calls are answered by [`Daemon::run`]'s loop.
    pub fn listen(&mut self, path: &Path, group: Option<u32>) -> Result<(), DaemonError> {
        let handle = xvs_ctl::server::Server::bind(path, group)
            .map(|s| {
                s.with_options(xvs_ctl::server::ServerOptions {
                    waker: Some(self.waker()),
                    ..Default::default()
                })
            })
            .and_then(|s| s.spawn(self.calls.0.clone()))
            .map_err(|e| DaemonError::Options(e.to_string()))?;
        info!(socket = %path.display(), "control socket listening");
        self.server = Some(handle);
        Ok(())
    }

    /// Serves the Prometheus endpoint on `addr` (`crate::metrics`); returns
    /// the address it listens on (port 0 picks one).
    pub fn serve_metrics(
        &mut self,
        addr: std::net::SocketAddr,
    ) -> Result<std::net::SocketAddr, DaemonError> {
        let m = crate::metrics::MetricsServer::spawn(addr, self.calls.0.clone(), self.waker())
            .map_err(|e| DaemonError::Options(e.to_string()))?;
        let addr = m.addr();
        self.metrics = Some(m);
        Ok(addr)
    }

    /// What rouses [`Daemon::run`]'s loop when a call is handed over.
    fn waker(&self) -> xvs_ctl::server::Waker {
        let wake = Arc::clone(&self.wake);
        xvs_ctl::server::Waker(Arc::new(move || {
            use std::os::fd::AsRawFd;
            let one = 1u64.to_ne_bytes();
            // SAFETY: writes 8 bytes from `one` to the eventfd the
            // closure keeps alive.
            unsafe { libc::write(wake.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        }))
    }

    /// Answers one call.
    pub(super) fn handle(&mut self, call: Call) {
        let method = call.method.clone();
        match method {
            Method::Transact(p) => {
                let r = self.transact(&p.commands);
                call.respond(r)
            }
            Method::Show => call.respond(Ok(self.ctl.config().clone())),
            Method::FdbShow(p) => {
                let r = self.fdb_rows(p.bridge.as_deref());
                call.respond(r)
            }
            Method::NeighShow => {
                let rows = super::view::neigh_rows(&self.ctl.underlay.neigh, self.now());
                call.respond(Ok(rows))
            }
            Method::RouteShow => {
                let rows: Vec<RouteRow> = self
                    .ctl
                    .underlay
                    .routes
                    .iter()
                    .map(super::view::route_row)
                    .collect();
                call.respond(Ok(rows))
            }
            Method::DumpFlows(p) => {
                let rows = view::flow_rows(self.ctl.config(), p.bridge.as_deref()).map(|mut r| {
                    self.count_flows(&mut r);
                    r
                });
                call.respond(rows)
            }
            Method::AclShow(p) => {
                let rows = view::acl_rows(self.ctl.config(), &p.port, p.dir).map(|mut r| {
                    self.count_acl_hits(&mut r);
                    r
                });
                call.respond(rows)
            }
            Method::Stats(p) => {
                let r = self.stats_rows(&p);
                call.respond(r)
            }
            Method::WorkerStats => {
                let rows = self.worker_rows();
                call.respond(Ok(rows))
            }
            Method::TunnelPorts => {
                let mut rows = view::tunnel_port_rows(self.ctl.config());
                for r in &mut rows {
                    r.dynamic_remotes = self.ctl.dynamic_remotes(&r.name).to_vec();
                }
                call.respond(Ok(rows))
            }
            Method::LookupMisses => {
                let rows: Vec<MissRow> = self
                    .lookup_misses
                    .drain(..)
                    .map(|m| MissRow {
                        bridge: m.bridge,
                        vlan: m.vlan,
                        mac: match m.kind {
                            MissKind::Mac(mac) | MissKind::NotHere(mac) => Some(mac),
                            MissKind::Ip(_) => None,
                        },
                        ip: match m.kind {
                            MissKind::Ip(ip) => Some(u128_to_ip(ip)),
                            MissKind::Mac(_) | MissKind::NotHere(_) => None,
                        },
                        port: m.port,
                        src_vtep: m.src_vtep,
                    })
                    .collect();
                call.respond(Ok(rows))
            }
            Method::ArpShow(p) => {
                call.respond(view::addr_rows(self.ctl.config(), p.bridge.as_deref()))
            }
            Method::Trace(p) => {
                let r = self.trace(&p);
                call.respond(r)
            }
            Method::CaptureStart(p) => {
                let r = self.capture_start(&p);
                call.respond(r)
            }
            Method::CaptureRead(p) => {
                let r = self.capture_read(&p, false);
                call.respond(r)
            }
            Method::CaptureStop(p) => {
                let r = self.capture_read(&p, true);
                call.respond(r)
            }
            Method::MirrorList => {
                let rows = self.mirror_rows();
                call.respond(Ok(rows))
            }
            Method::Takeover(p) => {
                let r = self
                    .hand_over(Path::new(&p.path))
                    .map(|to| TakeoverResult {
                        from_pid: std::process::id(),
                        to_pid: to,
                    })
                    .map_err(|e| RpcError::new(codes::REJECTED, format!("takeover: {e}")));
                call.respond(r)
            }
            Method::Restart => {
                let r = self
                    .restart()
                    .map(|pid| RestartResult { pid })
                    .map_err(|e| RpcError::new(codes::REJECTED, format!("restart: {e}")));
                call.respond(r)
            }
            // The server answers `hello` itself; answer it anyway.
            Method::Hello => call.fail(RpcError::internal("hello is answered by the server")),
        }
    }

    /// Applies `cmds` as one transaction: all of them to a copy of the
    /// running config, validated once (what it changes), made running, then persisted; or
    /// nothing, with every problem listed.
    fn transact(&mut self, cmds: &[command::Command]) -> Result<TransactResult, RpcError> {
        let current = self.ctl.config().clone();
        // Validated once, by `apply`, before it touches anything.
        let (new, problems) = command::edit_all(cmds, &current);
        if !problems.is_empty() {
            // With the config's other problems, as xvsctl lists them.
            let all = command::apply_all(cmds, &current).err();
            return Err(RpcError::rejected(all.unwrap_or(problems)));
        }
        let changed = new != current;
        if changed {
            match self.apply(new) {
                Ok(()) => {}
                Err(DaemonError::Config(errs)) => {
                    return Err(RpcError::rejected(command::attribute(cmds, &errs)))
                }
                Err(e) => return Err(RpcError::rejected(vec![e.to_string()])),
            }
            if let Some(store) = self.state.as_mut() {
                if let Err(e) = store.commit(self.ctl.config()) {
                    // Not durable: not acknowledged. Go back to what is on
                    // disk (the previous config, which applied before;
                    // an interface of it gone meanwhile waits, missing).
                    let back = self.apply_with(current, true);
                    return Err(RpcError::internal(format!(
                        "{e}; the change was rolled back{}",
                        back.err().map_or(String::new(), |b| format!(
                            " (rolling back failed too: {b})"
                        ))
                    )));
                }
            }
        }
        Ok(TransactResult {
            applied: cmds.len(),
            changed,
        })
    }

    fn port_name(&self, no: PortNo) -> String {
        self.ctl
            .snapshot()
            .port(no)
            .map_or_else(|| format!("#{no}"), |e| e.name.to_string())
    }

    fn fdb_rows(&self, bridge: Option<&str>) -> Result<Vec<FdbRow>, RpcError> {
        let config = self.ctl.config();
        view::check_bridge_param(config, "fdb_show", bridge)?;
        let snap = self.ctl.snapshot();
        let now = self.now();
        let mut rows = Vec::new();
        for b in config
            .bridges
            .iter()
            .filter(|b| bridge.is_none_or(|x| x == b.name))
        {
            let Some(fdb) = self.ctl.fdb(&b.name) else {
                continue;
            };
            for e in fdb.iter(now) {
                let remote = match snap.port(e.dest.port).map(|p| p.kind) {
                    Some(PortKind::Tunnel(t)) if e.dest.remote != NO_REMOTE => snap
                        .tunnels
                        .ports()
                        .get(usize::from(t))
                        .and_then(|tp| tp.remotes.get(usize::from(e.dest.remote)).copied()),
                    _ => None,
                };
                rows.push(FdbRow {
                    bridge: b.name.clone(),
                    vlan: e.vlan,
                    mac: e.mac,
                    port: self.port_name(e.dest.port),
                    remote,
                    kind: if e.is_static {
                        FdbKind::Static
                    } else if self.ctl.is_lookup_entry(&b.name, e.vlan, e.mac) {
                        FdbKind::Lookup
                    } else {
                        FdbKind::Learned
                    },
                    age_secs: (!e.is_static).then_some(e.age_ns / 1_000_000_000),
                });
            }
        }
        Ok(rows)
    }

    /// `trace`: the frame run through the workers' pipeline against the
    /// running snapshot (`pipeline::trace`), its decisions named as the
    /// views name them.
    fn trace(&self, p: &TraceParams) -> Result<TraceResult, RpcError> {
        let bad = |field: &str, why: String| RpcError::invalid_params("trace", field, why);
        let config = self.ctl.config();
        if config.tunnels.iter().any(|t| t.name == p.port) {
            return Err(bad(
                "params.port",
                format!(
                    "{:?} is a tunnel: its frames arrive on the uplink; trace the whole tunnel packet there",
                    p.port
                ),
            ));
        }
        let numbers = config.port_numbers();
        let no = *numbers.get(p.port.as_str()).ok_or_else(|| {
            bad(
                "params.port",
                format!("no port or uplink named {:?}", p.port),
            )
        })?;
        let text: String = p
            .frame
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ':')
            .collect();
        let frame = xvs_config::parse_hex(&text).map_err(|e| bad("params.frame", e))?;
        if !(14..=9216).contains(&frame.len()) {
            return Err(bad(
                "params.frame",
                format!("{} bytes: a frame is 14 to 9,216", frame.len()),
            ));
        }
        let snap = self.ctl.snapshot();
        let t = xvs_dataplane::pipeline::trace::trace(&snap, no, &frame, self.now());
        let name = |n: PortNo| {
            numbers
                .iter()
                .find(|(_, v)| **v == n)
                .map_or_else(|| format!("port {n}"), |(k, _)| (*k).to_owned())
        };
        let bridge = config
            .ports
            .iter()
            .find(|x| x.name == p.port)
            .map(|x| x.bridge.clone());
        let mut acl = Vec::new();
        for (fw, rule) in &t.acl_hits {
            for (port, n) in &numbers {
                let Some(pe) = snap.port(*n) else { continue };
                for (side, dir) in [xvs_config::Direction::In, xvs_config::Direction::Out]
                    .into_iter()
                    .enumerate()
                {
                    if pe.firewall[side] != Some(*fw) {
                        continue;
                    }
                    let text = config
                        .acls
                        .iter()
                        .find(|a| a.port == *port && a.dir == dir)
                        .and_then(|a| a.rules.get(*rule as usize));
                    if let Some(r) = text.and_then(|t| t.parse::<xvs_types::acl::AclRule>().ok()) {
                        acl.push(AclRow {
                            port: (*port).to_owned(),
                            dir,
                            priority: r.priority,
                            matches: r.matches.to_string(),
                            action: r.action,
                            hits: None,
                            n_bytes: None,
                            idle_age_secs: None,
                        });
                    }
                }
            }
        }
        let flow = t.flow_rule.and_then(|(b, rule)| {
            let b = snap.bridges.get(usize::from(b))?;
            view::flow_rows(config, Some(&b.name))
                .ok()?
                .get(rule as usize)
                .cloned()
        });
        let normal = bridge.as_ref().is_some_and(|b| {
            config
                .bridges
                .iter()
                .any(|x| x.name == *b && x.flows.is_empty())
        });
        Ok(TraceResult {
            port: p.port.clone(),
            bridge,
            frame_len: frame.len(),
            acl,
            flow,
            normal,
            drops: t.drops.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            events: t
                .events
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            held: t.held,
            mirrors: t
                .mirrored
                .iter()
                .filter_map(|(m, n)| Some((config.mirrors.get(usize::from(*m))?.name.clone(), *n)))
                .collect(),
            outputs: t
                .outputs
                .iter()
                .map(|(port, bytes)| TraceOutput {
                    port: name(*port),
                    len: bytes.len(),
                    hex: bytes.iter().map(|b| format!("{b:02x}")).collect(),
                })
                .collect(),
        })
    }

    /// Fills `rows` (a bridge's flows in table order, as
    /// `view::flow_rows` lists them) with what the workers counted for
    /// the running table: packets, bytes, and the age of the last match.
    fn count_flows(&self, rows: &mut [FlowRow]) {
        let snap = self.ctl.snapshot();
        let reports = self.reports();
        let now = self.now();
        let mut next: BTreeMap<String, usize> = BTreeMap::new();
        for row in rows {
            let pos = next.entry(row.bridge.clone()).or_default();
            let rule = *pos;
            *pos += 1;
            let Some((no, b)) = snap
                .bridges
                .iter()
                .enumerate()
                .find(|(_, b)| *b.name == *row.bridge)
            else {
                continue;
            };
            let generation = b.flows.generation();
            let mut sum = RuleCount::default();
            for c in reports
                .iter()
                .filter_map(|r| r.flows.get(no))
                .filter(|h| h.generation == generation)
                .filter_map(|h| h.rules.get(rule))
            {
                sum.merge(c);
            }
            row.n_packets = Some(sum.packets);
            row.n_bytes = Some(sum.bytes);
            row.idle_age_secs = (sum.last_used_ns > 0)
                .then(|| now.saturating_sub(sum.last_used_ns) / 1_000_000_000);
        }
    }

    /// The mirrors, in the config's order, each with what every worker
    /// counted for it under the running policy (the snapshot's mirror
    /// indices are the config's).
    fn mirror_rows(&self) -> Vec<MirrorRow> {
        let snap = self.ctl.snapshot();
        let config = self.ctl.config();
        let reports = self.reports();
        let current = || {
            reports
                .iter()
                .filter(|r| r.policy_generation == snap.policy_generation)
        };
        config
            .mirrors
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut sum = MirrorCount::default();
                for c in current().filter_map(|r| r.mirrors.get(i)) {
                    sum.merge(c);
                }
                MirrorRow {
                    name: m.name.clone(),
                    src: m.src.clone(),
                    dir: m.dir,
                    to: m.to.clone(),
                    remote: config.tunnels.iter().any(|t| t.name == m.to),
                    packets: sum.packets,
                    bytes: sum.bytes,
                    dropped: sum.dropped,
                }
            })
            .collect()
    }

    /// Fills `rows` (ACL rules as `view::acl_rows` lists them) with the
    /// frames each matched on every worker under the running policy.
    fn count_acl_hits(&self, rows: &mut [AclRow]) {
        let now = self.now();
        let snap = self.ctl.snapshot();
        let config = self.ctl.config();
        let numbers = config.port_numbers();
        let reports = self.reports();
        for row in rows {
            let Some(pe) = numbers.get(row.port.as_str()).and_then(|n| snap.port(*n)) else {
                continue;
            };
            let side = match row.dir {
                xvs_config::Direction::In => 0,
                xvs_config::Direction::Out => 1,
            };
            let Some(fw) = pe.firewall[side] else {
                continue;
            };
            // The compiled firewall's rules are the ACL's, in config order;
            // a priority names one rule of a port's direction.
            let Some(rule) = config
                .acls
                .iter()
                .find(|a| a.port == row.port && a.dir == row.dir)
                .and_then(|a| {
                    a.rules.iter().position(|t| {
                        t.parse::<xvs_types::acl::AclRule>()
                            .is_ok_and(|r| r.priority == row.priority)
                    })
                })
            else {
                continue;
            };
            let mut sum = RuleCount::default();
            for c in reports
                .iter()
                .filter(|r| r.policy_generation == snap.policy_generation)
                .filter_map(|r| r.fw_hits.get(usize::from(fw))?.get(rule))
            {
                sum.merge(c);
            }
            row.hits = Some(sum.packets);
            row.n_bytes = Some(sum.bytes);
            row.idle_age_secs = (sum.last_used_ns > 0)
                .then(|| now.saturating_sub(sum.last_used_ns) / 1_000_000_000);
        }
    }

    fn stats_rows(&self, p: &StatsParams) -> Result<Vec<StatsRow>, RpcError> {
        let snap = self.ctl.snapshot();
        let names = self.port_names();
        if let Some(t) = &p.target {
            if !names.iter().any(|(_, n)| **n == **t) {
                return Err(RpcError::invalid_params(
                    "stats",
                    "params.target",
                    format!("no port, tunnel or uplink named {t:?}"),
                ));
            }
        }
        let reports = self.reports();
        let mut rows = Vec::new();
        for (no, name) in &names {
            if p.target.as_ref().is_some_and(|t| **t != **name) {
                continue;
            }
            let kind = match snap.port(*no).map(|e| e.kind) {
                Some(PortKind::Tunnel(_)) => PortKindName::Tunnel,
                Some(PortKind::Uplink) => PortKindName::Uplink,
                _ => PortKindName::Port,
            };
            let mut sum = PortCounters::default();
            let mut per = Vec::new();
            for r in &reports {
                let c = r.ports.get(usize::from(*no)).cloned().unwrap_or_default();
                sum.merge(&c);
                per.push(WorkerPortStats {
                    worker: r.id,
                    rx_packets: c.rx_packets,
                    rx_bytes: c.rx_bytes,
                    tx_packets: c.tx_packets,
                    tx_bytes: c.tx_bytes,
                    drops: drops_map(&c.drops),
                });
            }
            let mut drops = drops_map(&sum.drops);
            // Frames the kernel dropped on the port's sockets never
            // reached a worker either.
            for k in reports
                .iter()
                .filter_map(|r| r.kernel.get(usize::from(*no)))
            {
                for (reason, n) in k.drops().into_iter().filter(|(_, n)| *n > 0) {
                    *drops.entry(reason.to_owned()).or_default() += n;
                }
            }
            // A vhost-user port's guest queues: malformed descriptor
            // chains, frames the guest had no buffer for, frames with no
            // guest connected.
            let (mut guest_csums, mut tso) = (0, (0, 0));
            for (_, q, no_driver) in reports.iter().flat_map(|r| &r.vhost).filter(|v| v.0 == *no) {
                guest_csums += q.checksums_completed;
                tso = (tso.0 + q.segmented, tso.1 + q.segments);
                for (reason, n) in [
                    ("guest_bad_descriptor", q.bad_chains + q.bad_rx_chains),
                    ("guest_rx_full", q.no_buffers),
                    ("guest_not_connected", *no_driver),
                ] {
                    if n > 0 {
                        *drops.entry(reason.to_owned()).or_default() += n;
                    }
                }
            }
            // Frames our XDP program dropped never reached a worker.
            if let Some(c) = self
                .ifaces
                .get(&**name)
                .and_then(|a| a.prog.counters().ok())
            {
                for (reason, n) in c.drops().into_iter().filter(|(_, n)| *n > 0) {
                    *drops.entry(reason.to_owned()).or_default() += n;
                }
            }
            rows.push(StatsRow {
                name: name.to_string(),
                kind,
                rx_packets: sum.rx_packets,
                rx_bytes: sum.rx_bytes,
                tx_packets: sum.tx_packets,
                tx_bytes: sum.tx_bytes,
                drops,
                per_worker: p.per_worker.then_some(per),
                state: match kind {
                    PortKindName::Tunnel => None,
                    PortKindName::Port | PortKindName::Uplink => {
                        self.vhost_state(name).or_else(|| self.iface_state(name))
                    }
                },
                learn_refused: learn_refused_map(self.ctl.learn_refusals(name)),
                // Replies are snooped on the uplink only.
                snooped: match kind {
                    PortKindName::Uplink => super::view::snooped_map(&self.ctl.snoop_counters()),
                    PortKindName::Port | PortKindName::Tunnel => BTreeMap::new(),
                },
                csum_completed: sum.csum_completed + guest_csums,
                icmp_too_big: sum.icmp_too_big,
                tso_frames: tso.0,
                tso_segments: tso.1,
                policers: policer_rows(&snap, *no, &reports),
                xdp_generic: self
                    .ifaces
                    .get(&**name)
                    .and_then(|a| {
                        a.prog
                            .native_refused()
                            .map(|r| (r, a.prog.refused_for_mtu()))
                    })
                    .map(|(reason, mtu)| super::apply::generic_xdp_note(reason, mtu)),
                fastpath: self
                    .fastpath
                    .as_ref()
                    .zip(self.ifaces.get(&**name))
                    .and_then(|(fp, a)| fp.port_stats(a.prog.ifindex() as u32))
                    .map(|f| FastPathRow {
                        flows: f.flows,
                        packets: f.packets,
                        bytes: f.bytes,
                        misses: f.misses,
                        miss_errors: f.miss_errors,
                    }),
            });
        }
        Ok(rows)
    }

    fn worker_rows(&self) -> Vec<WorkerStatsRow> {
        self.reports()
            .into_iter()
            .map(|r| {
                let total = r.load.busy_ns + r.load.idle_ns;
                let packets = r.counters.rx_frames;
                WorkerStatsRow {
                    id: r.id,
                    core: self.cores.get(r.id).copied().flatten(),
                    busy_pct: if total == 0 {
                        0.0
                    } else {
                        100.0 * r.load.busy_ns as f64 / total as f64
                    },
                    busy_ns: r.load.busy_ns,
                    idle_ns: r.load.idle_ns,
                    packets,
                    cycles_per_packet: (packets > 0 && r.load.busy_cycles > 0)
                        .then(|| r.load.busy_cycles as f64 / packets as f64),
                    send_cycles_per_packet: (packets > 0 && r.load.busy_cycles > 0)
                        .then(|| r.load.send_cycles as f64 / packets as f64),
                    batches: r.counters.batches,
                    empty_polls: r.load.empty_polls,
                    sleeps: r.load.sleeps,
                    ring_full: r.counters.tx_ring_full,
                    // A fill ring left short (the pool at its reserve
                    // for replicas) is a shortage to see, not to guess.
                    events: r
                        .events
                        .iter()
                        .chain(&[
                            ("fill_short", r.counters.fill_short),
                            // Frames from the miss pair without a port's
                            // tag (the fast path's).
                            ("demux_bad", r.counters.demux_bad),
                            // Frames longer than a chunk (multi-buffer).
                            ("jumbo_rx", r.jumbo.rx_chains),
                            ("jumbo_tx", r.jumbo.tx_chains),
                            ("jumbo_drop_no_slot", r.jumbo.no_slot),
                            ("jumbo_drop_bad_chain", r.jumbo.bad_chain),
                            // Frames that found a fill ring empty (each is
                            // an xsk_rx_dropped on its port).
                            (
                                "xsk_fill_empty",
                                r.kernel.iter().map(|k| k.fill_empty).sum::<u64>()
                                    + r.kernel_demux.fill_empty,
                            ),
                            // What the kernel dropped on the miss pair's
                            // socket: misses of the fast path lost.
                            (
                                "miss_pair_xsk_dropped",
                                r.kernel_demux.drops().iter().map(|(_, n)| n).sum(),
                            ),
                        ])
                        .filter(|(_, v)| *v > 0)
                        .map(|(k, v)| ((*k).to_owned(), *v))
                        .collect(),
                    umem: Some(UmemRow {
                        chunks: r.umem.chunks as u64,
                        free: r.umem.free as u64,
                        held: r.umem.held as u64,
                        kernel: r.umem.kernel as u64,
                        fill: r.umem.fill as u64,
                        tx: r.umem.tx as u64,
                    }),
                }
            })
            .collect()
    }
}

/// Port `no`'s policers (in, out, storm control) with what every worker
/// counted for the running policy.
fn policer_rows(
    snap: &xvs_dataplane::snapshot::Snapshot,
    no: xvs_types::PortNo,
    reports: &[xvs_io::worker::WorkerReport],
) -> BTreeMap<String, xvs_ctl::protocol::PolicerRow> {
    let Some(pe) = snap.port(no) else {
        return BTreeMap::new();
    };
    [
        ("in", pe.policer[0]),
        ("out", pe.policer[1]),
        ("storm", pe.storm),
    ]
    .into_iter()
    .filter_map(|(name, p)| Some((name, usize::from(p?))))
    .map(|(name, p)| {
        let mut row = xvs_ctl::protocol::PolicerRow::default();
        for c in reports
            .iter()
            .filter(|r| r.policy_generation == snap.policy_generation)
            .filter_map(|r| r.policed.get(p))
        {
            row.conform_packets += c.conform_packets;
            row.conform_bytes += c.conform_bytes;
            row.exceed_packets += c.exceed_packets;
            row.exceed_bytes += c.exceed_bytes;
        }
        (name.to_owned(), row)
    })
    .collect()
}
