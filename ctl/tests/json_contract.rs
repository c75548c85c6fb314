//! Pins the JSON contract: what xvsd answers (`xvsctl --format json`), the
//! requests it takes and the config it shows and persists, as the text of
//! `json_contract.json` beside this file. Each type is serialized from a
//! sample with every optional field present, so every field name shows.
//!
//! The contract's rule (`protocol` module): within one PROTOCOL_VERSION,
//! fields are only ever added. A diff here that only adds is fine: rewrite
//! the file with `XVS_WRITE_CONTRACT=1 cargo test -p xvs-ctl --test
//! json_contract` and commit it with the change. A diff that renames,
//! removes or changes a field's form breaks every client: it needs a
//! PROTOCOL_VERSION bump, or another way. Types from `xvs-types` and
//! `xvs-config` (MACs, prefixes, tunnel kinds, directions, the config
//! model) are part of it, which is why this test lives here and not there.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};
use xvs_config::{Config, Direction, TunnelKind};
use xvs_ctl::command::{self, Command};
use xvs_ctl::protocol::*;
use xvs_types::acl::AclAction;
use xvs_types::route::RouteOrigin;

fn v<T: Serialize>(t: T) -> Value {
    serde_json::to_value(t).expect("serializable")
}

/// A transaction touching every kind of object, as xvsctl sends it.
fn commands() -> Vec<Command> {
    let cmds = json!([
        {"op": "add-br", "name": "br0", "fdb_max_entries": 1000, "fdb_aging_secs": 300,
         "learning": true, "arp_suppress": true},
        {"op": "set-uplink", "iface": "eth0", "local_ips": ["192.0.2.1"],
         "mac": "02:00:00:00:00:fe", "mtu": 1500},
        {"op": "add-port", "bridge": "br0", "name": "vm1", "queues": 1, "tag": 10,
         "mtu": 1450, "max_macs": 4, "allowed_macs": ["02:00:00:00:00:01"],
         "allowed_ips": ["10.0.0.1"], "storm_pps": 1000},
        {"op": "add-tunnel", "bridge": "br0", "name": "vx1", "kind": "geneve", "vni": 42,
         "remotes": ["192.0.2.2"], "local": "192.0.2.1", "dst_port": 6081, "ttl": 9,
         "tos": "inherit", "df": false, "csum": true,
         "geneve_opts": [{"class": 258, "type": 3, "data": "00000001"}],
         "learn_remotes": true},
        {"op": "fdb-add", "bridge": "br0", "mac": "02:00:00:00:00:02", "port": "vx1",
         "vlan": 0, "remote": "192.0.2.2"},
        {"op": "arp-add", "bridge": "br0", "ip": "10.0.0.2", "mac": "02:00:00:00:00:02",
         "vlan": 0, "owner": "model"},
        {"op": "add-flow", "bridge": "br0", "flow": "priority=10,in_port=vm1,actions=normal"},
        {"op": "acl-add", "port": "vm1", "dir": "in", "priority": 10,
         "matches": "tcp,tp_dst=22", "action": "drop"},
        {"op": "qos-set", "port": "vm1", "dir": "out", "rate_bps": 100000000,
         "burst_bytes": 65536, "peak_bps": 200000000},
        {"op": "route-add", "prefix": "198.51.100.0/24", "gateway": "192.0.2.254",
         "dev": "eth0", "metric": 5},
        {"op": "add-port", "bridge": "br0", "name": "mon"},
        {"op": "mirror-add", "name": "m1", "src": ["vm1"], "dir": "in", "to": "mon"},
        {"op": "meta-set", "key": "owner", "value": {"etcd": 1}},
    ]);
    serde_json::from_value(cmds).expect("the sample commands parse")
}

fn config() -> Config {
    command::apply_all(&commands(), &Config::default()).expect("the sample transaction applies")
}

fn requests() -> BTreeMap<&'static str, Value> {
    let methods = [
        Method::Hello,
        Method::Transact(TransactParams {
            commands: commands(),
        }),
        Method::Show,
        Method::FdbShow(FdbShowParams {
            bridge: Some("br0".into()),
        }),
        Method::NeighShow,
        Method::RouteShow,
        Method::DumpFlows(DumpFlowsParams {
            bridge: Some("br0".into()),
        }),
        Method::AclShow(AclShowParams {
            port: "vm1".into(),
            dir: Some(Direction::In),
        }),
        Method::Stats(StatsParams {
            target: Some("vm1".into()),
            per_worker: true,
        }),
        Method::WorkerStats,
        Method::TunnelPorts,
        Method::ArpShow(ArpShowParams {
            bridge: Some("br0".into()),
        }),
        Method::LookupMisses,
        Method::Trace(TraceParams {
            port: "vm1".into(),
            frame: "02000000000102000000000208060001".into(),
        }),
        Method::MirrorList,
        Method::Takeover(TakeoverParams {
            path: "/run/xvs/xvsd.sock.takeover-4242".into(),
        }),
        Method::Restart,
    ];
    methods
        .iter()
        .map(|m| (m.name(), v(Request::new(Id::Number(1), m))))
        .collect()
}

fn rows() -> BTreeMap<&'static str, Value> {
    let ip = |s: &str| s.parse().unwrap();
    let mac = |s: &str| s.parse().unwrap();
    let drops = BTreeMap::from([("neigh_unresolved".to_string(), 3)]);
    let mut r = BTreeMap::new();
    r.insert(
        "HelloResult",
        v(HelloResult {
            daemon: "xvsd".into(),
            daemon_version: "0.1.0".into(),
            protocol_version: PROTOCOL_VERSION,
            methods: vec!["hello".into()],
            pid: Some(4241),
        }),
    );
    r.insert(
        "TakeoverResult",
        v(TakeoverResult {
            from_pid: 4241,
            to_pid: 4242,
        }),
    );
    r.insert("RestartResult", v(RestartResult { pid: 4242 }));
    r.insert(
        "TransactResult",
        v(TransactResult {
            applied: 2,
            changed: true,
        }),
    );
    r.insert(
        "FdbRow",
        v(FdbRow {
            bridge: "br0".into(),
            vlan: 0,
            mac: mac("02:00:00:00:00:02"),
            port: "vx1".into(),
            remote: Some(ip("192.0.2.2")),
            kind: FdbKind::Learned,
            age_secs: Some(7),
        }),
    );
    r.insert(
        "AddrRow",
        v(AddrRow {
            bridge: "br0".into(),
            vlan: 0,
            ip: ip("10.0.0.2"),
            mac: mac("02:00:00:00:00:02"),
            owner: Some("model".into()),
        }),
    );
    r.insert(
        "MissRow",
        v(MissRow {
            bridge: "br0".into(),
            vlan: 0,
            mac: Some(mac("02:00:00:00:00:09")),
            ip: Some(ip("10.0.0.9")),
            port: "vx1".into(),
            src_vtep: Some(ip("192.0.2.2")),
        }),
    );
    r.insert(
        "NeighRow",
        v(NeighRow {
            ip: ip("192.0.2.254"),
            mac: Some(mac("02:00:00:00:00:fe")),
            state: NeighStateName::Reachable,
            source: NeighSourceName::Kernel,
            in_use: true,
            age_secs: Some(12),
            refreshes: Some(2),
            confirmations: Some(1),
        }),
    );
    r.insert(
        "RouteRow",
        v(RouteRow {
            prefix: "198.51.100.0/24".parse().unwrap(),
            gateway: Some(ip("192.0.2.254")),
            dev: "eth0".into(),
            metric: 5,
            origin: RouteOrigin::User,
            src: Some(ip("192.0.2.1")),
        }),
    );
    r.insert(
        "FlowRow",
        v(FlowRow {
            bridge: "br0".into(),
            priority: 10,
            cookie: 0,
            matches: "in_port=vm1".into(),
            actions: "normal".into(),
            n_packets: Some(1),
            n_bytes: Some(64),
            idle_age_secs: Some(3),
        }),
    );
    r.insert(
        "TraceResult",
        v(TraceResult {
            port: "vm1".into(),
            bridge: Some("br0".into()),
            frame_len: 60,
            acl: vec![AclRow {
                port: "vm1".into(),
                dir: Direction::In,
                priority: 10,
                matches: "udp".into(),
                action: AclAction::Allow,
                hits: None,
                n_bytes: None,
                idle_age_secs: None,
            }],
            flow: Some(FlowRow {
                bridge: "br0".into(),
                priority: 10,
                cookie: 0,
                matches: "in_port=vm1".into(),
                actions: "normal".into(),
                n_packets: None,
                n_bytes: None,
                idle_age_secs: None,
            }),
            normal: false,
            drops: BTreeMap::from([("flow_drop".to_owned(), 1)]),
            events: BTreeMap::from([("replicas".to_owned(), 1)]),
            held: false,
            mirrors: BTreeMap::from([("m1".to_owned(), 1)]),
            outputs: vec![TraceOutput {
                port: "vm2".into(),
                len: 60,
                hex: "02".into(),
            }],
        }),
    );
    r.insert(
        "MirrorRow",
        v(MirrorRow {
            name: "m1".into(),
            src: vec!["vm1".into()],
            dir: xvs_config::MirrorDir::In,
            to: "mon".into(),
            remote: false,
            packets: 3,
            bytes: 192,
            dropped: 0,
        }),
    );
    r.insert(
        "AclRow",
        v(AclRow {
            port: "vm1".into(),
            dir: Direction::In,
            priority: 10,
            matches: "tcp,tp_dst=22".into(),
            action: AclAction::Drop,
            hits: Some(4),
            n_bytes: Some(400),
            idle_age_secs: Some(1),
        }),
    );
    let per_worker = WorkerPortStats {
        worker: 0,
        rx_packets: 1,
        rx_bytes: 64,
        tx_packets: 1,
        tx_bytes: 64,
        drops: drops.clone(),
    };
    r.insert(
        "StatsRow",
        v(StatsRow {
            name: "vm1".into(),
            kind: PortKindName::Port,
            rx_packets: 1,
            rx_bytes: 64,
            tx_packets: 1,
            tx_bytes: 64,
            drops: drops.clone(),
            per_worker: Some(vec![per_worker]),
            state: Some(PortState::Up),
            learn_refused: BTreeMap::from([("port_limit".to_string(), 1)]),
            snooped: BTreeMap::from([("learned".to_string(), 1)]),
            csum_completed: 1,
            icmp_too_big: 1,
            tso_frames: 1,
            tso_segments: 2,
            policers: BTreeMap::from([(
                "in".to_string(),
                PolicerRow {
                    conform_packets: 1,
                    conform_bytes: 64,
                    exceed_packets: 2,
                    exceed_bytes: 128,
                },
            )]),
            xdp_generic: Some("generic XDP: native refused (why)".into()),
            fastpath: Some(FastPathRow {
                flows: 2,
                packets: 3,
                bytes: 4,
                misses: 5,
                miss_errors: 6,
            }),
        }),
    );
    r.insert(
        "WorkerStatsRow",
        v(WorkerStatsRow {
            id: 0,
            core: Some(1),
            busy_pct: 12.5,
            busy_ns: 125_000_000,
            idle_ns: 875_000_000,
            packets: 1000,
            cycles_per_packet: Some(250.0),
            send_cycles_per_packet: Some(90.0),
            batches: 10,
            empty_polls: 5,
            sleeps: 1,
            ring_full: 0,
            events: BTreeMap::from([("socket_lost".to_string(), 1)]),
            umem: Some(UmemRow {
                chunks: 16384,
                free: 8000,
                held: 100,
                kernel: 8284,
                fill: 8000,
                tx: 284,
            }),
        }),
    );
    r.insert(
        "TunnelPortRow",
        v(TunnelPortRow {
            name: "vx1".into(),
            bridge: "br0".into(),
            number: Some(2),
            kind: TunnelKind::Geneve,
            vni: 42,
            dst_port: 6081,
            local: Some(ip("192.0.2.1")),
            remotes: vec![ip("192.0.2.2")],
            ttl: 9,
            tos: "inherit".into(),
            df: false,
            csum: true,
            geneve_opts: vec!["0x0102:0x03:00000001".into()],
            src_port_range: (49152, 65535),
            learn_remotes: true,
            dynamic_remotes: vec![ip("192.0.2.3")],
        }),
    );
    r.insert(
        "RpcError",
        v(Response::error(
            Id::Number(1),
            RpcError::new(codes::INVALID_PARAMS, "bad"),
        )),
    );
    r
}

#[test]
fn the_json_contract_is_what_it_was() {
    let now = serde_json::to_string_pretty(&json!({
        "requests": requests(),
        "results": rows(),
        "show (the config, as persisted)": config(),
    }))
    .unwrap()
        + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/json_contract.json");
    if std::env::var_os("XVS_WRITE_CONTRACT").is_some() {
        std::fs::write(&path, &now).unwrap();
        return;
    }
    let pinned = std::fs::read_to_string(&path).unwrap_or_default();
    if pinned != now {
        let first = pinned
            .lines()
            .zip(now.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(pinned.lines().count().min(now.lines().count()));
        panic!(
            "the JSON contract changed ({}), first at line {}:\n  pinned: {:?}\n  now:    {:?}\n\
             Additions are fine: rewrite it with XVS_WRITE_CONTRACT=1 and commit it. \
             A rename, removal or changed form breaks clients (see the test's doc).",
            path.display(),
            first + 1,
            pinned.lines().nth(first).unwrap_or("<end>"),
            now.lines().nth(first).unwrap_or("<end>"),
        );
    }
}
