//! Result rows built from the desired config alone, so the daemon answers
//! `dump_flows`, `acl_show`, `tunnel_ports` and the static parts of
//! `fdb_show`, `neigh_show` and `route_show` the same way the tests' fake
//! daemon does. Rows from the dataplane's live tables are xvsd's
//! (`xvsd::daemon::view`): this crate does not link the dataplane.
//!
//! Flows are stored with port numbers (what the dataplane compiles); rows
//! show names where the number belongs to a port of the bridge, since that
//! is what the operator typed and what `add-flow` takes back.

use std::collections::BTreeMap;

use xvs_config::{Config, Direction, TosConfig};
use xvs_types::acl::AclRule;
use xvs_types::flow::{Action, FlowRule};
use xvs_types::route::RouteOrigin;
use xvs_types::PortNo;

use crate::protocol::{
    AclRow, AddrRow, FdbKind, FdbRow, FlowRow, NeighRow, NeighSourceName, NeighStateName, RouteRow,
    RpcError, TunnelPortRow,
};

/// Port number → name, for one bridge's ports and tunnels.
fn port_names(config: &Config, bridge: &str) -> BTreeMap<PortNo, String> {
    let ports = config
        .ports
        .iter()
        .filter(|p| p.bridge == bridge)
        .filter_map(|p| p.number.map(|n| (n, p.name.clone())));
    let tunnels = config
        .tunnels
        .iter()
        .filter(|t| t.bridge == bridge)
        .filter_map(|t| t.number.map(|n| (n, t.name.clone())));
    ports.chain(tunnels).collect()
}

/// The rows of one flow; `names` turns port numbers into names.
pub fn flow_row(bridge: &str, rule: &FlowRule, names: &BTreeMap<PortNo, String>) -> FlowRow {
    let name = |n: PortNo| names.get(&n).cloned().unwrap_or_else(|| n.to_string());
    let mut m = rule.matches;
    let in_port = m.in_port.take();
    let rest = m.to_string();
    let matches = match (in_port, rest.is_empty()) {
        (None, _) => rest,
        (Some(p), true) => format!("in_port={}", name(p)),
        (Some(p), false) => format!("in_port={},{rest}", name(p)),
    };
    let actions = if rule.actions.is_empty() {
        "drop".to_string()
    } else {
        rule.actions
            .iter()
            .map(|a| match a {
                Action::Output(p) => format!("output:{}", name(*p)),
                Action::Tunnel { port, remote } => format!("tunnel:{}:{remote}", name(*port)),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    FlowRow {
        bridge: bridge.to_string(),
        priority: rule.priority,
        cookie: rule.cookie,
        matches,
        actions,
        n_packets: None,
        n_bytes: None,
        idle_age_secs: None,
    }
}

/// `dump_flows`: the flows of one bridge or of all, in table order.
pub fn flow_rows(config: &Config, bridge: Option<&str>) -> Result<Vec<FlowRow>, RpcError> {
    if let Some(b) = bridge {
        if !config.bridges.iter().any(|x| x.name == b) {
            return Err(RpcError::rejected(vec![format!("no bridge {b:?}")]));
        }
    }
    let mut rows = Vec::new();
    for b in config
        .bridges
        .iter()
        .filter(|b| bridge.is_none_or(|n| n == b.name))
    {
        let names = port_names(config, &b.name);
        for text in &b.flows {
            // A stored flow always parses (it was validated on the way in);
            // one that does not is shown as text rather than hidden.
            match text.parse::<FlowRule>() {
                Ok(r) => rows.push(flow_row(&b.name, &r, &names)),
                Err(e) => rows.push(FlowRow {
                    bridge: b.name.clone(),
                    priority: 0,
                    cookie: 0,
                    matches: text.clone(),
                    actions: format!("(does not parse: {e})"),
                    n_packets: None,
                    n_bytes: None,
                    idle_age_secs: None,
                }),
            }
        }
    }
    Ok(rows)
}

/// `acl_show`: the rules of a port (one direction or both), highest
/// priority first.
pub fn acl_rows(
    config: &Config,
    port: &str,
    dir: Option<Direction>,
) -> Result<Vec<AclRow>, RpcError> {
    let known = config.ports.iter().any(|p| p.name == port)
        || config.tunnels.iter().any(|t| t.name == port);
    if !known {
        return Err(RpcError::rejected(vec![format!(
            "no port or tunnel {port:?}"
        )]));
    }
    let mut rows = Vec::new();
    for a in config
        .acls
        .iter()
        .filter(|a| a.port == port && dir.is_none_or(|d| d == a.dir))
    {
        for text in &a.rules {
            if let Ok(r) = text.parse::<AclRule>() {
                rows.push(AclRow {
                    port: a.port.clone(),
                    dir: a.dir,
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
    rows.sort_by(|x, y| x.dir.cmp(&y.dir).then(y.priority.cmp(&x.priority)));
    Ok(rows)
}

/// `tunnel_ports`: every tunnel port, in config order.
pub fn tunnel_port_rows(config: &Config) -> Vec<TunnelPortRow> {
    config
        .tunnels
        .iter()
        .map(|t| TunnelPortRow {
            name: t.name.clone(),
            bridge: t.bridge.clone(),
            number: t.number,
            kind: t.kind,
            vni: t.vni,
            dst_port: t.udp_port(),
            local: t.local,
            remotes: t.remotes.clone(),
            ttl: t.ttl,
            tos: match t.tos {
                TosConfig::Fixed(v) => v.to_string(),
                TosConfig::Inherit => "inherit".into(),
            },
            df: t.df,
            csum: t.csum,
            geneve_opts: t
                .geneve_opts
                .iter()
                .map(|o| {
                    let hex: String = o.data.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{:#06x}:{:#04x}:{hex}", o.class, o.typ)
                })
                .collect(),
            src_port_range: t.src_port_range,
            learn_remotes: t.learn_remotes || t.group().is_some(),
            // Running state, not config: the daemon fills them in.
            dynamic_remotes: Vec::new(),
        })
        .collect()
}

/// The static MACs of the config as `fdb_show` rows (a daemon without the
/// learned entries at hand, or a test, answers with these).
pub fn static_fdb_rows(config: &Config, bridge: Option<&str>) -> Result<Vec<FdbRow>, RpcError> {
    if let Some(b) = bridge {
        if !config.bridges.iter().any(|x| x.name == b) {
            return Err(RpcError::rejected(vec![format!("no bridge {b:?}")]));
        }
    }
    Ok(config
        .fdb
        .iter()
        .filter(|f| bridge.is_none_or(|b| b == f.bridge))
        .map(|f| FdbRow {
            bridge: f.bridge.clone(),
            vlan: f.vlan,
            mac: f.mac,
            port: f.port.clone(),
            remote: f.remote,
            kind: FdbKind::Static,
            age_secs: None,
        })
        .collect())
}

/// The operator's routes as `route_show` rows.
pub fn config_route_rows(config: &Config) -> Vec<RouteRow> {
    config
        .routes
        .iter()
        .map(|r| RouteRow {
            prefix: r.prefix,
            gateway: r.gateway,
            dev: r.dev.clone(),
            metric: r.metric,
            origin: RouteOrigin::Config,
            src: None,
        })
        .collect()
}

/// The static neighbors as `neigh_show` rows.
pub fn static_neigh_rows(config: &Config) -> Vec<NeighRow> {
    config
        .neighbors
        .iter()
        .map(|n| NeighRow {
            ip: n.ip,
            mac: Some(n.mac),
            state: NeighStateName::Static,
            source: NeighSourceName::Static,
            in_use: false,
            age_secs: None,
            refreshes: None,
            confirmations: None,
        })
        .collect()
}

/// Named counters as a row's map: the non-zero ones only, so a row shows
/// what happened and the JSON leaves out what did not.
pub fn nonzero_map<'a>(
    counters: impl IntoIterator<Item = (&'a str, u64)>,
) -> BTreeMap<String, u64> {
    counters
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|(k, n)| (k.to_owned(), n))
        .collect()
}

/// `arp_show`: the overlay addresses of `bridge` (all bridges if `None`),
/// by bridge, VLAN and address.
pub fn addr_rows(config: &Config, bridge: Option<&str>) -> Result<Vec<AddrRow>, RpcError> {
    check_bridge_param(config, "arp_show", bridge)?;
    let mut rows: Vec<AddrRow> = config
        .addrs
        .iter()
        .filter(|a| bridge.is_none_or(|b| b == a.bridge))
        .map(|a| AddrRow {
            bridge: a.bridge.clone(),
            vlan: a.vlan,
            ip: a.ip,
            mac: a.mac,
            owner: a.owner.clone(),
        })
        .collect();
    rows.sort_by(|a, b| (&a.bridge, a.vlan, a.ip).cmp(&(&b.bridge, b.vlan, b.ip)));
    Ok(rows)
}

/// A `params.bridge` that must name a bridge of `config` when given.
pub fn check_bridge_param(
    config: &Config,
    method: &str,
    bridge: Option<&str>,
) -> Result<(), RpcError> {
    match bridge {
        Some(b) if !config.bridges.iter().any(|x| x.name == b) => Err(RpcError::invalid_params(
            method,
            "params.bridge",
            format!("no bridge {b:?}"),
        )),
        _ => Ok(()),
    }
}
