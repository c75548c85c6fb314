//! The Prometheus endpoint (`xvsd --metrics`) against a real scraper's
//! parser: xvsd between a VM namespace and the kernel's vxlan, pings
//! across, then `GET /metrics` from inside xvsd's namespace, parsed by
//! the Prometheus project's own Python client (its strict OpenMetrics
//! parser). The counters it shows are the ones `xvsctl stats` shows, they
//! grow with the traffic, the workers go on forwarding while it is
//! scraped over and over, other paths get 404, and a taken address stops
//! xvsd at start with a message naming it.
//!
//! Needs root, Debian's python3 and python3-prometheus-client (scripts/test.sh
//! installs them).

use std::path::Path;

use serde_json::Value;
use xvs_tests::kvxlan::{xvsd_config, Topology};
use xvs_tests::{require_file, require_root, Netns, Xvsd};

const PARSER: &str = "/usr/lib/python3/dist-packages/prometheus_client/openmetrics/parser.py";
/// Debian's Python, whose packages hold the parser (a `python3` first on
/// PATH may be another one).
const PYTHON: &str = "/usr/bin/python3";

/// Fetches `url` from inside `ns` and parses it: `{"status", "content_type",
/// "families": {name: {"type", "samples": [[name, labels, value]]}}}`.
const SCRAPE: &str = r#"
import json, sys, urllib.error, urllib.request
from prometheus_client.openmetrics.parser import text_string_to_metric_families
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=10)
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code}))
    sys.exit(0)
body = r.read().decode()
fams = {}
for f in text_string_to_metric_families(body):
    fams[f.name] = {"type": f.type,
                    "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps({"status": r.status, "content_type": r.headers["Content-Type"],
                  "families": fams}))
"#;

fn scrape(ns: &Netns, url: &str) -> Value {
    let out = ns.run(PYTHON, &["-c", SCRAPE, url]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("scraper output {out:?}: {e}"))
}

/// The value of `family`'s sample `sample` whose labels include `want`.
fn sample(m: &Value, family: &str, sample: &str, want: &[(&str, &str)]) -> Option<f64> {
    m["families"][family]["samples"]
        .as_array()?
        .iter()
        .find(|s| s[0] == sample && want.iter().all(|(k, v)| s[1][*k].as_str() == Some(*v)))
        .and_then(|s| s[2].as_f64())
}

fn ready() -> bool {
    require_root()
        && require_file(PYTHON, "the Debian package python3")
        && require_file(PARSER, "the Debian package python3-prometheus-client")
}

#[test]
fn the_endpoint_shows_what_stats_shows_and_a_parser_takes_it() {
    if !ready() {
        return;
    }
    let Topology {
        vm,
        hv,
        peer: _peer,
    } = Topology::new("mt");
    let config = xvsd_config("192.0.2.1", "192.0.2.2");
    let d = Xvsd::start(
        Path::new(env!("CARGO_BIN_EXE_xvsd")),
        &hv,
        &config,
        &["--metrics"],
    );
    assert!(
        d.log().contains("127.0.0.1:9477"),
        "--metrics alone listens on loopback's 9477: {}",
        d.log()
    );
    assert_eq!(vm.ping("10.0.0.2", 5), 5, "{}", d.log());
    let url = "http://127.0.0.1:9477/metrics";

    let stats: Value =
        serde_json::from_str(&d.ok(&["--format", "json", "stats"])).expect("stats JSON");
    let m = scrape(&hv, url);
    assert_eq!(m["status"], 200);
    assert!(
        m["content_type"]
            .as_str()
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{}",
        m["content_type"]
    );
    assert_eq!(m["families"]["xvs_port_rx_packets"]["type"], "counter");
    for row in stats.as_array().expect("rows") {
        let name = row["name"].as_str().unwrap();
        let kind = row["kind"].as_str().unwrap();
        for (field, family) in [
            ("rx_packets", "xvs_port_rx_packets"),
            ("tx_packets", "xvs_port_tx_packets"),
            ("rx_bytes", "xvs_port_rx_bytes"),
        ] {
            let got = sample(
                &m,
                family,
                &format!("{family}_total"),
                &[("port", name), ("kind", kind)],
            )
            .unwrap_or_else(|| panic!("{family} for {name}: {}", m["families"][family]));
            let before = row[field].as_u64().unwrap() as f64;
            // Scraped after `stats`: as much or more (ARP refreshes may
            // have crossed since), never less.
            assert!(got >= before, "{name} {field}: {got} < {before}");
        }
    }
    let p0_rx = sample(
        &m,
        "xvs_port_rx_packets",
        "xvs_port_rx_packets_total",
        &[("port", "p0")],
    )
    .unwrap();
    assert!(p0_rx >= 5.0, "five pings at least: {p0_rx}");
    assert_eq!(
        sample(
            &m,
            "xvs_port_state",
            "xvs_port_state",
            &[("port", "p0"), ("state", "up")]
        ),
        Some(1.0)
    );
    let ratio = sample(
        &m,
        "xvs_worker_busy_ratio",
        "xvs_worker_busy_ratio",
        &[("worker", "0")],
    )
    .expect("worker 0's busy ratio");
    assert!((0.0..=1.0).contains(&ratio), "{ratio}");
    assert!(sample(
        &m,
        "xvs_worker_idle_seconds",
        "xvs_worker_idle_seconds_total",
        &[("worker", "0")]
    )
    .is_some_and(|s| s > 0.0));

    // The counters grow with the traffic, and scrapes while it flows
    // cost it nothing.
    let pings = std::thread::scope(|s| {
        let pinger = s.spawn(|| vm.ping_every("10.0.0.2", 200, "0.01", 2));
        for _ in 0..20 {
            assert_eq!(scrape(&hv, url)["status"], 200);
        }
        pinger.join().expect("pinger")
    });
    assert_eq!(pings, 200, "no ping lost while scraped: {}", d.log());
    let after = scrape(&hv, url);
    let p0_rx_after = sample(
        &after,
        "xvs_port_rx_packets",
        "xvs_port_rx_packets_total",
        &[("port", "p0")],
    )
    .unwrap();
    assert!(p0_rx_after >= p0_rx + 200.0, "{p0_rx} then {p0_rx_after}");

    assert_eq!(scrape(&hv, "http://127.0.0.1:9477/nothing")["status"], 404);

    // A second xvsd cannot have the same address: it says so and stops.
    let other = hv.exec(
        env!("CARGO_BIN_EXE_xvsd"),
        &[
            "--no-socket",
            "--start-empty",
            "--state",
            "/nonexistent/xvs-metrics-test-state.json",
            "--metrics",
            "127.0.0.1:9477",
        ],
    );
    let err = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--metrics 127.0.0.1:9477: cannot listen there"),
        "{err}"
    );
}
