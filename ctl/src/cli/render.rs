//! The human output (`--format table`): result rows as aligned text
//! tables, and the config as the `show` tree. `--format json` needs
//! nothing from here: it prints the typed rows as they come.

use std::collections::BTreeMap;

use serde_json::Value;
use xvs_config::{Config, LookupProviderConfig, TosConfig, VlanMode};

use crate::protocol::{
    AclRow, AddrRow, FdbKind, FdbRow, FlowRow, HelloResult, Method, MirrorRow, MissRow, NeighRow,
    PortState, RouteRow, StatsRow, TransactResult, TunnelPortRow, WorkerStatsRow,
};
use crate::units::{format_rate, format_size};

pub fn render(method: &Method, v: Value) -> Result<String, String> {
    fn de<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }
    Ok(match method {
        Method::Hello => {
            let h: HelloResult = de(v)?;
            format!(
                "xvsctl {}\n{} {} (protocol {}; xvsctl speaks {})\n",
                env!("CARGO_PKG_VERSION"),
                h.daemon,
                h.daemon_version,
                h.protocol_version,
                crate::protocol::PROTOCOL_VERSION
            )
        }
        Method::Show => show_tree(&de::<Config>(v)?),
        Method::FdbShow(_) => fdb_table(&de::<Vec<FdbRow>>(v)?),
        Method::LookupMisses => {
            let rows: Vec<MissRow> = de(v)?;
            let opt = |o: Option<String>| o.unwrap_or_else(|| "-".into());
            table(
                &["BRIDGE", "VLAN", "MAC", "IP", "PORT", "FROM_VTEP"],
                rows.iter()
                    .map(|r| {
                        vec![
                            r.bridge.clone(),
                            r.vlan.to_string(),
                            opt(r.mac.map(|m| m.to_string())),
                            opt(r.ip.map(|i| i.to_string())),
                            r.port.clone(),
                            opt(r.src_vtep.map(|i| i.to_string())),
                        ]
                    })
                    .collect(),
            )
        }
        Method::ArpShow(_) => {
            let rows: Vec<AddrRow> = de(v)?;
            table(
                &["BRIDGE", "VLAN", "IP", "MAC", "OWNER"],
                rows.iter()
                    .map(|r| {
                        vec![
                            r.bridge.clone(),
                            r.vlan.to_string(),
                            r.ip.to_string(),
                            r.mac.to_string(),
                            r.owner.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect(),
            )
        }
        Method::NeighShow => {
            let rows: Vec<NeighRow> = de(v)?;
            table(
                &[
                    "IP",
                    "MAC",
                    "STATE",
                    "SOURCE",
                    "IN_USE",
                    "AGE",
                    "REFRESHES",
                    "CONFIRMED",
                ],
                rows.iter()
                    .map(|r| {
                        vec![
                            r.ip.to_string(),
                            r.mac.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
                            snake(&r.state),
                            snake(&r.source),
                            (if r.in_use { "yes" } else { "no" }).into(),
                            r.age_secs
                                .map(|a| format!("{a}s"))
                                .unwrap_or_else(|| "-".into()),
                            opt_count(r.refreshes),
                            opt_count(r.confirmations),
                        ]
                    })
                    .collect(),
            )
        }
        Method::RouteShow => {
            let rows: Vec<RouteRow> = de(v)?;
            table(
                &["PREFIX", "GATEWAY", "DEV", "METRIC", "ORIGIN"],
                rows.iter()
                    .map(|r| {
                        vec![
                            r.prefix.to_string(),
                            r.gateway
                                .map(|g| g.to_string())
                                .unwrap_or_else(|| "-".into()),
                            r.dev.clone(),
                            r.metric.to_string(),
                            snake(&r.origin),
                        ]
                    })
                    .collect(),
            )
        }
        Method::DumpFlows(_) => {
            let rows: Vec<FlowRow> = de(v)?;
            let mut s = String::new();
            for r in rows {
                let counters = match (r.n_packets, r.n_bytes) {
                    (Some(p), Some(b)) => format!(" n_packets={p}, n_bytes={b},"),
                    _ => String::new(),
                };
                let idle = r
                    .idle_age_secs
                    .map_or(String::new(), |s| format!(" idle_age={s},"));
                let cookie = if r.cookie != 0 {
                    format!(" cookie={:#x},", r.cookie)
                } else {
                    String::new()
                };
                let m = if r.matches.is_empty() {
                    String::new()
                } else {
                    format!(",{}", r.matches)
                };
                s.push_str(&format!(
                    " bridge={},{cookie}{counters}{idle} priority={}{m} actions={}\n",
                    r.bridge, r.priority, r.actions
                ));
            }
            s
        }
        Method::AclShow(_) => {
            let rows: Vec<AclRow> = de(v)?;
            table(
                &[
                    "PORT", "DIR", "PRIORITY", "MATCH", "ACTION", "HITS", "BYTES", "IDLE",
                ],
                rows.iter()
                    .map(|r| {
                        vec![
                            r.port.clone(),
                            r.dir.to_string(),
                            r.priority.to_string(),
                            if r.matches.is_empty() {
                                "*".into()
                            } else {
                                r.matches.clone()
                            },
                            r.action.to_string(),
                            r.hits.map(|h| h.to_string()).unwrap_or_else(|| "-".into()),
                            r.n_bytes
                                .map(|b| b.to_string())
                                .unwrap_or_else(|| "-".into()),
                            r.idle_age_secs
                                .map(|s| format!("{s}s"))
                                .unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect(),
            )
        }
        Method::MirrorList => {
            let rows: Vec<MirrorRow> = de(v)?;
            table(
                &[
                    "MIRROR", "SOURCES", "DIR", "OUTPUT", "PACKETS", "BYTES", "LOST",
                ],
                rows.iter()
                    .map(|r| {
                        vec![
                            r.name.clone(),
                            r.src.join(","),
                            r.dir.to_string(),
                            if r.remote {
                                format!("{} (tunnel)", r.to)
                            } else {
                                r.to.clone()
                            },
                            r.packets.to_string(),
                            r.bytes.to_string(),
                            r.dropped.to_string(),
                        ]
                    })
                    .collect(),
            )
        }
        Method::Trace(_) => super::trace::render(&de(v)?),
        Method::Takeover(_) => {
            let r: crate::protocol::TakeoverResult = de(v)?;
            format!("xvsd {} took over from {}\n", r.to_pid, r.from_pid)
        }
        Method::Restart => {
            let r: crate::protocol::RestartResult = de(v)?;
            format!("xvsd {} started: it takes over\n", r.pid)
        }
        // `xvsctl capture` writes pcapng itself; a bare call shows JSON.
        Method::CaptureStart(_) | Method::CaptureRead(_) | Method::CaptureStop(_) => {
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())? + "\n"
        }
        Method::Stats(_) => stats_table(&de::<Vec<StatsRow>>(v)?),
        Method::WorkerStats => {
            let rows: Vec<WorkerStatsRow> = de(v)?;
            let mut out = table(
                &[
                    "WORKER",
                    "CORE",
                    "BUSY%",
                    "PACKETS",
                    "CYC/PKT",
                    "SEND_CYC/PKT",
                    "BATCHES",
                    "EMPTY_POLLS",
                    "SLEEPS",
                    "RING_FULL",
                    "EVENTS",
                ],
                rows.iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.core.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                            format!("{:.1}", r.busy_pct),
                            r.packets.to_string(),
                            r.cycles_per_packet
                                .map(|c| format!("{c:.1}"))
                                .unwrap_or_else(|| "-".into()),
                            r.send_cycles_per_packet
                                .map(|c| format!("{c:.1}"))
                                .unwrap_or_else(|| "-".into()),
                            r.batches.to_string(),
                            r.empty_polls.to_string(),
                            r.sleeps.to_string(),
                            r.ring_full.to_string(),
                            drops_text(&r.events),
                        ]
                    })
                    .collect(),
            );
            for r in &rows {
                if let Some(u) = r.umem {
                    out.push_str(&format!(
                        "worker {} umem: {} chunks, {} free, {} in fill rings, {} in flight, {} held\n",
                        r.id, u.chunks, u.free, u.fill, u.tx, u.held
                    ));
                }
            }
            out
        }
        Method::TunnelPorts => {
            let rows: Vec<TunnelPortRow> = de(v)?;
            table(
                &[
                    "NAME", "BRIDGE", "TYPE", "VNI", "DST_PORT", "LOCAL", "REMOTES", "TTL", "TOS",
                    "OPTIONS",
                ],
                rows.iter()
                    .map(|r| {
                        let mut o = Vec::new();
                        if r.df {
                            o.push("df".to_string());
                        }
                        if r.csum {
                            o.push("csum".into());
                        }
                        o.extend(r.geneve_opts.iter().map(|g| format!("opt={g}")));
                        if r.learn_remotes {
                            o.push("learn".into());
                        }
                        if !r.dynamic_remotes.is_empty() {
                            let d: Vec<String> =
                                r.dynamic_remotes.iter().map(|x| x.to_string()).collect();
                            o.push(format!("dynamic={}", d.join(",")));
                        }
                        vec![
                            r.name.clone(),
                            r.bridge.clone(),
                            r.kind.to_string(),
                            r.vni.to_string(),
                            r.dst_port.to_string(),
                            r.local.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
                            r.remotes
                                .iter()
                                .map(|x| x.to_string())
                                .collect::<Vec<_>>()
                                .join(","),
                            r.ttl.to_string(),
                            r.tos.clone(),
                            o.join(","),
                        ]
                    })
                    .collect(),
            )
        }
        Method::Transact(_) => {
            let r: TransactResult = de(v)?;
            format!("applied {} command(s)\n", r.applied)
        }
    })
}

/// An enum's serde name (`reachable`), for table cells.
fn snake<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// Left-aligned columns, two spaces apart, a header line first.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

fn fdb_table(rows: &[FdbRow]) -> String {
    table(
        &["BRIDGE", "VLAN", "MAC", "PORT", "REMOTE", "TYPE", "AGE"],
        rows.iter()
            .map(|r| {
                vec![
                    r.bridge.clone(),
                    r.vlan.to_string(),
                    r.mac.to_string(),
                    r.port.clone(),
                    r.remote
                        .map(|x| x.to_string())
                        .unwrap_or_else(|| "-".into()),
                    match r.kind {
                        FdbKind::Static => "static".into(),
                        FdbKind::Learned => "learned".into(),
                        FdbKind::Lookup => "lookup".into(),
                    },
                    r.age_secs
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect(),
    )
}

fn drops_text(d: &BTreeMap<String, u64>) -> String {
    d.iter()
        .filter(|(_, n)| **n != 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A count the daemon may not have (`-`).
fn opt_count(n: Option<u64>) -> String {
    n.map_or_else(|| "-".into(), |n| n.to_string())
}

fn stats_table(rows: &[StatsRow]) -> String {
    let mut out = table(
        &[
            "NAME",
            "KIND",
            "RX_PACKETS",
            "RX_BYTES",
            "TX_PACKETS",
            "TX_BYTES",
            "DROPS",
        ],
        rows.iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    snake(&r.kind),
                    r.rx_packets.to_string(),
                    r.rx_bytes.to_string(),
                    r.tx_packets.to_string(),
                    r.tx_bytes.to_string(),
                    r.drops.values().sum::<u64>().to_string(),
                ]
            })
            .collect(),
    );
    for r in rows {
        if let Some(state) = r.state.filter(|s| *s != PortState::Up) {
            out.push_str(&format!("{} state: {state}\n", r.name));
        }
        if let Some(note) = &r.xdp_generic {
            out.push_str(&format!("{} {note}\n", r.name));
        }
        if let Some(f) = &r.fastpath {
            out.push_str(&format!(
                "{} fast path: {} flows, {} packets, {} bytes; {} to the workers ({} lost)\n",
                r.name, f.flows, f.packets, f.bytes, f.misses, f.miss_errors
            ));
        }
        let d = drops_text(&r.drops);
        if !d.is_empty() {
            out.push_str(&format!("{} drops: {d}\n", r.name));
        }
        let l = drops_text(&r.learn_refused);
        if !l.is_empty() {
            out.push_str(&format!("{} not learned: {l}\n", r.name));
        }
        let s = drops_text(&r.snooped);
        if !s.is_empty() {
            out.push_str(&format!("{} snooped ARP/ND replies: {s}\n", r.name));
        }
        if r.icmp_too_big > 0 {
            out.push_str(&format!(
                "{} ICMP too-big errors sent back: {}\n",
                r.name, r.icmp_too_big
            ));
        }
        for (which, p) in &r.policers {
            out.push_str(&format!(
                "{} policer {which}: {} frames ({} bytes) passed, {} ({} bytes) dropped\n",
                r.name, p.conform_packets, p.conform_bytes, p.exceed_packets, p.exceed_bytes
            ));
        }
        if r.tso_frames > 0 {
            out.push_str(&format!(
                "{} TSO frames from the guest cut into segments: {} into {}\n",
                r.name, r.tso_frames, r.tso_segments
            ));
        }
        if r.csum_completed > 0 {
            out.push_str(&format!(
                "{} checksums completed (left to offload by the sender): {}\n",
                r.name, r.csum_completed
            ));
        }
        for w in r.per_worker.iter().flatten() {
            let d = drops_text(&w.drops);
            out.push_str(&format!(
                "{} worker {}: rx {} pkts {} bytes, tx {} pkts {} bytes{}\n",
                r.name,
                w.worker,
                w.rx_packets,
                w.rx_bytes,
                w.tx_packets,
                w.tx_bytes,
                if d.is_empty() {
                    String::new()
                } else {
                    format!(", drops: {d}")
                }
            ));
        }
    }
    out
}

fn vlan_text(v: &VlanMode) -> String {
    match v {
        VlanMode::Access { tag: 0 } => "untagged".into(),
        VlanMode::Access { tag } => format!("tag {tag}"),
        VlanMode::Trunk { trunks, native } => {
            let list = if trunks.is_empty() {
                "all".to_string()
            } else {
                trunks
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            match native {
                Some(n) => format!("trunks {list} native {n}"),
                None => format!("trunks {list}"),
            }
        }
    }
}

/// `show`: the config as a tree, bridges with their ports, tunnels, flows
/// and MACs; per-port ACLs and policers under the port.
pub fn show_tree(c: &Config) -> String {
    let mut s = String::new();
    let num = |n: Option<u16>| n.map(|n| format!(" #{n}")).unwrap_or_default();
    if let Some(u) = &c.uplink {
        s.push_str(&format!(
            "uplink {}{} mtu {}",
            u.iface,
            num(u.number),
            u.mtu
        ));
        if !u.local_ips.is_empty() {
            let ips: Vec<String> = u.local_ips.iter().map(|i| i.to_string()).collect();
            s.push_str(&format!(" local {}", ips.join(",")));
        }
        if let Some(m) = u.mac {
            s.push_str(&format!(" mac {m}"));
        }
        s.push('\n');
    }
    let policies = |s: &mut String, name: &str| {
        for a in c.acls.iter().filter(|a| a.port == name) {
            for r in &a.rules {
                s.push_str(&format!("        acl {}: {r}\n", a.dir));
            }
        }
        for q in c.qos.iter().filter(|q| q.port == name) {
            s.push_str(&format!(
                "        qos {}: rate {} burst {}{}\n",
                q.dir,
                format_rate(q.rate_bps),
                format_size(q.burst_bytes),
                q.peak_bps
                    .map(|p| format!(" peak {}", format_rate(p)))
                    .unwrap_or_default()
            ));
        }
    };
    for b in &c.bridges {
        s.push_str(&format!(
            "bridge {} (fdb max {}, aging {}s{}{})\n",
            b.name,
            b.fdb_max_entries,
            b.fdb_aging_secs,
            if b.learning { "" } else { ", no learning" },
            if b.arp_suppress { ", arp-suppress" } else { "" },
        ));
        if let Some(l) = &b.lookup {
            let p = match &l.provider {
                LookupProviderConfig::Direct { vtep } => format!("direct {vtep}"),
                LookupProviderConfig::Multicast { group } => format!("multicast {group}"),
                LookupProviderConfig::Static { entries } => {
                    format!("static ({} entries)", entries.len())
                }
                LookupProviderConfig::External => "external".into(),
            };
            s.push_str(&format!("    lookup {p}, miss {}\n", snake(&l.miss)));
        }
        for p in c.ports.iter().filter(|p| p.bridge == b.name) {
            let q = if p.queues == 0 {
                String::new()
            } else {
                format!(" queues {}", p.queues)
            };
            let kind = match &p.kind {
                xvs_config::PortKind::Afxdp => String::new(),
                xvs_config::PortKind::Tap => " type tap".into(),
                xvs_config::PortKind::VhostUser { socket, client } => format!(
                    " type vhost-user socket {}{}",
                    socket.display(),
                    if *client { " client" } else { "" }
                ),
            };
            s.push_str(&format!(
                "    port {}{} {} mtu {}{q}{kind}\n",
                p.name,
                num(p.number),
                vlan_text(&p.vlan),
                p.mtu
            ));
            policies(&mut s, &p.name);
        }
        for t in c.tunnels.iter().filter(|t| t.bridge == b.name) {
            let remotes: Vec<String> = t.remotes.iter().map(|r| r.to_string()).collect();
            s.push_str(&format!(
                "    tunnel {}{} {} vni {} remote {} dst_port {}",
                t.name,
                num(t.number),
                t.kind,
                t.vni,
                remotes.join(","),
                t.udp_port()
            ));
            if let Some(l) = t.local {
                s.push_str(&format!(" local {l}"));
            }
            s.push_str(&format!(" ttl {}", t.ttl));
            match t.tos {
                TosConfig::Inherit => s.push_str(" tos inherit"),
                TosConfig::Fixed(0) => {}
                TosConfig::Fixed(v) => s.push_str(&format!(" tos {v}")),
            }
            if t.df {
                s.push_str(" df");
            }
            if t.csum {
                s.push_str(" csum");
            }
            for o in &t.geneve_opts {
                let hex: String = o.data.iter().map(|b| format!("{b:02x}")).collect();
                s.push_str(&format!(" opt {:#06x}:{:#04x}:{hex}", o.class, o.typ));
            }
            s.push('\n');
            policies(&mut s, &t.name);
        }
        if let Ok(rows) = crate::view::flow_rows(c, Some(&b.name)) {
            for r in rows {
                let m = if r.matches.is_empty() {
                    String::new()
                } else {
                    format!(",{}", r.matches)
                };
                s.push_str(&format!(
                    "    flow priority={}{m},actions={}\n",
                    r.priority, r.actions
                ));
            }
        }
        for f in c.fdb.iter().filter(|f| f.bridge == b.name) {
            let r = f.remote.map(|r| format!(" via {r}")).unwrap_or_default();
            s.push_str(&format!(
                "    fdb {} vlan {} -> {}{r}\n",
                f.mac, f.vlan, f.port
            ));
        }
    }
    for m in c.mirrors.iter() {
        s.push_str(&format!(
            "mirror {}: {} {} -> {}\n",
            m.name,
            m.src.join(","),
            m.dir,
            m.to
        ));
    }
    for r in &c.routes {
        let g = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        s.push_str(&format!(
            "route {}{g} dev {} metric {}\n",
            r.prefix, r.dev, r.metric
        ));
    }
    for n in &c.neighbors {
        s.push_str(&format!("neighbor {} lladdr {}\n", n.ip, n.mac));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(&["A", "BB"], vec![vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }

    #[test]
    fn show_names_a_port_that_is_not_an_interface_of_its_own() {
        let mut c = Config::default();
        c.bridges.push(xvs_config::BridgeConfig::new("br0").into());
        let mut tap = xvs_config::PortConfig::new("tap1", "br0");
        tap.kind = xvs_config::PortKind::Tap;
        c.ports.push(tap.into());
        c.ports
            .push(xvs_config::PortConfig::new("p0", "br0").into());
        let tree = show_tree(&c);
        assert!(
            tree.contains("port tap1 untagged mtu 1500 type tap\n"),
            "{tree}"
        );
        assert!(tree.contains("port p0 untagged mtu 1500\n"), "{tree}");
    }
}
