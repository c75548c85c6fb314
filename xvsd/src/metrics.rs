//! The opt-in Prometheus endpoint (`xvsd --metrics ADDR`): an HTTP server
//! on a thread of its own that answers `GET /metrics` with every counter
//! `xvsctl stats` and `xvsctl worker-stats` show, in the OpenMetrics text
//! format Prometheus scrapes.
//!
//! A scrape asks the control thread for the same rows the control socket
//! gets (`stats`, `worker_stats`), as two calls on the daemon's call
//! channel, and renders them here. So the endpoint reads nothing the
//! control socket does not, and never touches a worker: the rows come from
//! the reports the workers publish between batches. A control thread busy
//! with a transaction makes a scrape wait, at most [`SCRAPE_TIMEOUT`],
//! then answer 503.
//!
//! Names follow Prometheus' conventions: the `xvs_` prefix, base units,
//! counters ending `_total`, one metric per quantity with labels for the
//! port, the worker and the reason rather than a metric per port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use tracing::{debug, info};
use xvs_ctl::protocol::{
    Id, Method, MirrorRow, PortKindName, PortState, Request, StatsParams, StatsRow, WorkerStatsRow,
};
use xvs_ctl::server::{Call, Waker};

/// Where `--metrics` without an address listens: loopback only, so that
/// exposing the counters beyond the host is a choice someone made.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9477";

/// How long a scrape waits for the control thread's answer.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// The content type of the OpenMetrics text format.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why the endpoint did not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("--metrics {addr}: cannot listen there: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("the metrics endpoint's content type is not a valid header")]
    Header,
}

/// The running endpoint; dropping it stops the server and joins its
/// thread.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Listens on `addr` and serves scrapes from the control thread's
    /// answers to calls sent on `calls` (`wake` rouses the control
    /// thread when one is sent).
    pub fn spawn(
        addr: SocketAddr,
        calls: Sender<Call>,
        wake: Waker,
    ) -> Result<MetricsServer, MetricsError> {
        let server = tiny_http::Server::http(addr).map_err(|e| MetricsError::Bind {
            addr,
            reason: e.to_string(),
        })?;
        // Port 0 asks for any port: say which one it is.
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| MetricsError::Bind {
                addr,
                reason: "not an IP listener".to_owned(),
            })?;
        let content_type = format!("Content-Type: {CONTENT_TYPE}")
            .parse::<tiny_http::Header>()
            .map_err(|()| MetricsError::Header)?;
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("xvs-metrics".into())
            .spawn(move || {
                let mut scraper = Scraper {
                    calls,
                    wake,
                    next_id: 0,
                };
                for req in serving.incoming_requests() {
                    answer(&mut scraper, req, &content_type);
                }
            })
            .map_err(|e| MetricsError::Bind {
                addr,
                reason: format!("starting its thread: {e}"),
            })?;
        info!(%addr, "metrics endpoint listening (GET /metrics)");
        Ok(MetricsServer {
            server,
            thread: Some(thread),
            addr,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Asks the control thread for rows, as a control-socket client would.
struct Scraper {
    calls: Sender<Call>,
    wake: Waker,
    next_id: i64,
}

impl Scraper {
    fn call<T: DeserializeOwned>(&mut self, method: Method) -> Result<T, String> {
        self.next_id += 1;
        let (reply, answer) = crossbeam_channel::bounded(1);
        let call = Call {
            request: Request::new(Id::Number(self.next_id), &method),
            method,
            reply,
        };
        self.calls
            .try_send(call)
            .map_err(|e| format!("the control thread takes no call: {e}"))?;
        (self.wake.0)();
        let resp = answer
            .recv_timeout(SCRAPE_TIMEOUT)
            .map_err(|_| format!("no answer within {SCRAPE_TIMEOUT:?}"))?;
        if let Some(e) = resp.error {
            return Err(e.message);
        }
        serde_json::from_value(resp.result.unwrap_or_default()).map_err(|e| e.to_string())
    }

    fn scrape(&mut self) -> Result<String, String> {
        let stats: Vec<StatsRow> = self.call(Method::Stats(StatsParams {
            target: None,
            per_worker: false,
        }))?;
        let workers: Vec<WorkerStatsRow> = self.call(Method::WorkerStats)?;
        let mirrors: Vec<MirrorRow> = self.call(Method::MirrorList)?;
        render(&stats, &workers, &mirrors).map_err(|e| format!("rendering: {e}"))
    }
}

fn answer(scraper: &mut Scraper, req: tiny_http::Request, content_type: &tiny_http::Header) {
    use tiny_http::{Method as Http, Response};
    let path = req.url().split('?').next().unwrap_or_default();
    let reply = match (req.method(), path) {
        (Http::Get | Http::Head, "/metrics") => match scraper.scrape() {
            Ok(body) => Response::from_string(body)
                .with_header(content_type.clone())
                .with_status_code(200),
            Err(e) => Response::from_string(format!("xvsd: {e}\n")).with_status_code(503),
        },
        (Http::Get | Http::Head, "/") => {
            Response::from_string("xvsd: the metrics are at /metrics\n").with_status_code(200)
        }
        (Http::Get | Http::Head, _) => Response::from_string("not found\n").with_status_code(404),
        _ => Response::from_string("only GET\n").with_status_code(405),
    };
    if let Err(e) = req.respond(reply) {
        debug!("metrics: answering a scrape: {e}");
    }
}

type Labels = Vec<(String, String)>;

/// A family of counters or gauges registered under `name`.
fn family<M: prometheus_client::metrics::TypedMetric + Default + Clone>(
    reg: &mut Registry,
    name: &str,
    help: &str,
) -> Family<Labels, M>
where
    Family<Labels, M>: prometheus_client::registry::Metric,
{
    let f = Family::<Labels, M>::default();
    reg.register(name, help, f.clone());
    f
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

type Count = Counter<u64, AtomicU64>;
type Level = Gauge<i64, AtomicI64>;
type Ratio = Gauge<f64, AtomicU64>;
type Seconds = Counter<f64, AtomicU64>;

/// The OpenMetrics text of the `stats`, `worker_stats` and `mirror_list`
/// rows.
pub fn render(
    stats: &[StatsRow],
    workers: &[WorkerStatsRow],
    mirrors: &[MirrorRow],
) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::with_prefix("xvs");
    let rx_packets: Family<_, Count> = family(
        &mut reg,
        "port_rx_packets",
        "Frames the workers received on a port, tunnel or the uplink",
    );
    let rx_bytes: Family<_, Count> = family(&mut reg, "port_rx_bytes", "Bytes of those frames");
    let tx_packets: Family<_, Count> = family(
        &mut reg,
        "port_tx_packets",
        "Frames the workers sent out of a port, tunnel or the uplink",
    );
    let tx_bytes: Family<_, Count> = family(&mut reg, "port_tx_bytes", "Bytes of those frames");
    let drops: Family<_, Count> = family(
        &mut reg,
        "port_drops",
        "Frames dropped, by the port they came in on or were going out of, and why",
    );
    let csum: Family<_, Count> = family(
        &mut reg,
        "port_checksums_completed",
        "Frames whose TCP or UDP checksum the sender left to offload, completed by the switch",
    );
    let too_big: Family<_, Count> = family(
        &mut reg,
        "port_icmp_too_big_sent",
        "ICMP fragmentation-needed and ICMPv6 packet-too-big errors sent back to a port",
    );
    let tso_frames: Family<_, Count> = family(
        &mut reg,
        "port_tso_frames",
        "TCP frames a guest handed over for segmentation, cut into segments by the switch",
    );
    let tso_segments: Family<_, Count> = family(
        &mut reg,
        "port_tso_segments",
        "Segments the switch cut a guest's TSO frames into",
    );
    let policed: Family<_, Count> = family(
        &mut reg,
        "port_policer_packets",
        "Frames a port's policer (in, out, storm) let through (conform) or dropped (exceed)",
    );
    let policed_bytes: Family<_, Count> = family(
        &mut reg,
        "port_policer_bytes",
        "Bytes a port's policer let through (conform) or dropped (exceed)",
    );
    let state: Family<_, Level> = family(
        &mut reg,
        "port_state",
        "1 for the state a port's interface is in (up, down, missing), 0 for the others",
    );
    let refused: Family<_, Count> = family(
        &mut reg,
        "port_learn_refused",
        "MACs seen behind a port that were not learned (their frames were forwarded), by reason",
    );
    let snooped: Family<_, Count> = family(
        &mut reg,
        "uplink_snooped",
        "ARP replies and neighbour advertisements snooped on the uplink, by outcome",
    );
    let fp_flows: Family<_, Level> = family(
        &mut reg,
        "fastpath_flows",
        "Decisions the TC fast path holds for flows entering a port (--fastpath)",
    );
    let fp_packets: Family<_, Count> = family(
        &mut reg,
        "fastpath_packets",
        "Packets (segments on the wire) the TC fast path carried for a port",
    );
    let fp_bytes: Family<_, Count> = family(
        &mut reg,
        "fastpath_bytes",
        "Bytes the TC fast path carried for a port",
    );
    let fp_misses: Family<_, Count> = family(
        &mut reg,
        "fastpath_misses",
        "Frames the TC fast path sent to the workers through the miss pair",
    );
    let fp_miss_errors: Family<_, Count> = family(
        &mut reg,
        "fastpath_miss_errors",
        "Frames lost on their way to the workers through the miss pair",
    );
    for r in stats {
        let kind = match r.kind {
            PortKindName::Port => "port",
            PortKindName::Tunnel => "tunnel",
            PortKindName::Uplink => "uplink",
        };
        let port = labels(&[("port", &r.name), ("kind", kind)]);
        rx_packets.get_or_create(&port).inc_by(r.rx_packets);
        rx_bytes.get_or_create(&port).inc_by(r.rx_bytes);
        tx_packets.get_or_create(&port).inc_by(r.tx_packets);
        tx_bytes.get_or_create(&port).inc_by(r.tx_bytes);
        csum.get_or_create(&port).inc_by(r.csum_completed);
        too_big.get_or_create(&port).inc_by(r.icmp_too_big);
        for (which, p) in &r.policers {
            for (verdict, n, b) in [
                ("conform", p.conform_packets, p.conform_bytes),
                ("exceed", p.exceed_packets, p.exceed_bytes),
            ] {
                let mut l = port.clone();
                l.push(("policer".to_owned(), which.clone()));
                l.push(("verdict".to_owned(), verdict.to_owned()));
                policed.get_or_create(&l).inc_by(n);
                policed_bytes.get_or_create(&l).inc_by(b);
            }
        }
        if r.tso_frames > 0 {
            tso_frames.get_or_create(&port).inc_by(r.tso_frames);
            tso_segments.get_or_create(&port).inc_by(r.tso_segments);
        }
        for (reason, n) in &r.drops {
            let mut l = port.clone();
            l.push(("reason".to_owned(), reason.clone()));
            drops.get_or_create(&l).inc_by(*n);
        }
        for (reason, n) in &r.learn_refused {
            let mut l = port.clone();
            l.push(("reason".to_owned(), reason.clone()));
            refused.get_or_create(&l).inc_by(*n);
        }
        for (outcome, n) in &r.snooped {
            snooped
                .get_or_create(&labels(&[("outcome", outcome)]))
                .inc_by(*n);
        }
        if let Some(s) = r.state {
            for each in [PortState::Up, PortState::Down, PortState::Missing] {
                let mut l = port.clone();
                l.push(("state".to_owned(), each.to_string()));
                state.get_or_create(&l).set(i64::from(each == s));
            }
        }
        if let Some(f) = &r.fastpath {
            fp_flows
                .get_or_create(&port)
                .set(i64::try_from(f.flows).unwrap_or(i64::MAX));
            fp_packets.get_or_create(&port).inc_by(f.packets);
            fp_bytes.get_or_create(&port).inc_by(f.bytes);
            fp_misses.get_or_create(&port).inc_by(f.misses);
            fp_miss_errors.get_or_create(&port).inc_by(f.miss_errors);
        }
    }

    let m_packets: Family<_, Count> = family(
        &mut reg,
        "mirror_packets",
        "Copies a port mirror sent out of its output",
    );
    let m_bytes: Family<_, Count> = family(
        &mut reg,
        "mirror_bytes",
        "Bytes of those copies, as mirrored (without a tunnel header)",
    );
    let m_lost: Family<_, Count> = family(
        &mut reg,
        "mirror_lost",
        "Copies a port mirror lost (no free buffer, too big for its output)",
    );
    for m in mirrors {
        let l = labels(&[("mirror", &m.name), ("output", &m.to)]);
        m_packets.get_or_create(&l).inc_by(m.packets);
        m_bytes.get_or_create(&l).inc_by(m.bytes);
        m_lost.get_or_create(&l).inc_by(m.dropped);
    }

    let w_packets: Family<_, Count> =
        family(&mut reg, "worker_packets", "Frames a worker received");
    let w_busy: Family<_, Seconds> = family(
        &mut reg,
        "worker_busy_seconds",
        "Time a worker spent on batches that had frames (rate() of it is the busy ratio)",
    );
    let w_idle: Family<_, Seconds> = family(
        &mut reg,
        "worker_idle_seconds",
        "Time a worker spent polling or sleeping with nothing to do",
    );
    let w_ratio: Family<_, Ratio> = family(
        &mut reg,
        "worker_busy_ratio",
        "Share of a worker's time spent on batches that had frames, since it started",
    );
    let w_batches: Family<_, Count> = family(
        &mut reg,
        "worker_batches",
        "Non-empty batches a worker processed",
    );
    let w_empty: Family<_, Count> =
        family(&mut reg, "worker_empty_polls", "Polls that found no frame");
    let w_sleeps: Family<_, Count> = family(
        &mut reg,
        "worker_sleeps",
        "Times a worker slept in poll(2) (adaptive polling)",
    );
    let w_ring_full: Family<_, Count> = family(
        &mut reg,
        "worker_tx_ring_full",
        "Frames that found a transmit ring full",
    );
    let w_events: Family<_, Count> = family(
        &mut reg,
        "worker_events",
        "What a worker's pipeline did besides forwarding, by event",
    );
    let w_umem: Family<_, Level> = family(
        &mut reg,
        "worker_umem_chunks",
        "A worker's UMEM chunks by where they are (free, held, fill, tx)",
    );
    for w in workers {
        let id = w.id.to_string();
        let l = labels(&[("worker", &id)]);
        w_packets.get_or_create(&l).inc_by(w.packets);
        w_busy.get_or_create(&l).inc_by(w.busy_ns as f64 / 1e9);
        w_idle.get_or_create(&l).inc_by(w.idle_ns as f64 / 1e9);
        w_ratio.get_or_create(&l).set(w.busy_pct / 100.0);
        w_batches.get_or_create(&l).inc_by(w.batches);
        w_empty.get_or_create(&l).inc_by(w.empty_polls);
        w_sleeps.get_or_create(&l).inc_by(w.sleeps);
        w_ring_full.get_or_create(&l).inc_by(w.ring_full);
        for (event, n) in &w.events {
            w_events
                .get_or_create(&labels(&[("worker", &id), ("event", event)]))
                .inc_by(*n);
        }
        if let Some(u) = &w.umem {
            for (place, n) in [
                ("free", u.free),
                ("held", u.held),
                ("fill", u.fill),
                ("tx", u.tx),
            ] {
                w_umem
                    .get_or_create(&labels(&[("worker", &id), ("where", place)]))
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }
    let mut out = String::new();
    encode(&mut out, &reg)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use xvs_ctl::protocol::{FastPathRow, UmemRow};

    use super::*;

    fn row(name: &str, kind: PortKindName) -> StatsRow {
        StatsRow {
            name: name.to_owned(),
            kind,
            rx_packets: 10,
            rx_bytes: 1000,
            tx_packets: 9,
            tx_bytes: 900,
            drops: BTreeMap::from([("no_route".to_owned(), 1)]),
            per_worker: None,
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
        }
    }

    /// Every row becomes labelled samples under one metric per quantity,
    /// counters with `_total`, in text a scraper takes (the live test
    /// parses it with Prometheus' own parser).
    #[test]
    fn rows_become_labelled_samples() {
        let mut p0 = row("p0", PortKindName::Port);
        p0.state = Some(PortState::Up);
        p0.fastpath = Some(FastPathRow {
            flows: 2,
            packets: 100,
            bytes: 150_000,
            misses: 3,
            miss_errors: 0,
        });
        let mut u0 = row("u0", PortKindName::Uplink);
        u0.snooped = BTreeMap::from([("learned".to_owned(), 4)]);
        let w = WorkerStatsRow {
            id: 0,
            core: Some(1),
            busy_pct: 25.0,
            busy_ns: 1_500_000_000,
            idle_ns: 4_500_000_000,
            packets: 19,
            cycles_per_packet: None,
            send_cycles_per_packet: None,
            batches: 5,
            empty_polls: 7,
            sleeps: 1,
            ring_full: 0,
            events: BTreeMap::from([("arp_suppressed".to_owned(), 2)]),
            umem: Some(UmemRow {
                chunks: 8,
                free: 4,
                held: 1,
                kernel: 3,
                fill: 2,
                tx: 1,
            }),
        };
        let m = MirrorRow {
            name: "m1".into(),
            src: vec!["p0".into()],
            dir: xvs_config::MirrorDir::Both,
            to: "vx1".into(),
            remote: true,
            packets: 6,
            bytes: 600,
            dropped: 1,
        };
        let text = render(&[p0, row("vx1", PortKindName::Tunnel), u0], &[w], &[m]).unwrap();
        for line in [
            "# TYPE xvs_port_rx_packets counter",
            r#"xvs_port_rx_packets_total{port="p0",kind="port"} 10"#,
            r#"xvs_port_tx_bytes_total{port="vx1",kind="tunnel"} 900"#,
            r#"xvs_port_drops_total{port="u0",kind="uplink",reason="no_route"} 1"#,
            r#"xvs_port_state{port="p0",kind="port",state="up"} 1"#,
            r#"xvs_port_state{port="p0",kind="port",state="missing"} 0"#,
            r#"xvs_uplink_snooped_total{outcome="learned"} 4"#,
            r#"xvs_fastpath_flows{port="p0",kind="port"} 2"#,
            r#"xvs_fastpath_bytes_total{port="p0",kind="port"} 150000"#,
            r#"xvs_worker_busy_seconds_total{worker="0"} 1.5"#,
            r#"xvs_worker_busy_ratio{worker="0"} 0.25"#,
            r#"xvs_worker_events_total{worker="0",event="arp_suppressed"} 2"#,
            r#"xvs_worker_umem_chunks{worker="0",where="free"} 4"#,
            r#"xvs_mirror_packets_total{mirror="m1",output="vx1"} 6"#,
            r#"xvs_mirror_lost_total{mirror="m1",output="vx1"} 1"#,
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
        }
        // No state for a tunnel, no fast path where none ran.
        assert!(!text.contains(r#"xvs_port_state{port="vx1""#));
        assert!(!text.contains(r#"xvs_fastpath_flows{port="u0""#));
    }

    /// A taken address is refused with the address and the reason.
    #[test]
    fn a_taken_address_is_refused_saying_which() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let (calls, _rx) = crossbeam_channel::bounded(1);
        let err = MetricsServer::spawn(addr, calls, Waker(Arc::new(|| {}))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("--metrics {addr}: cannot listen there")),
            "{err}"
        );
    }
}
