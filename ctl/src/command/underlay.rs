//! Underlay verbs: static neighbours (neigh-set, neigh-flush) and routes
//! (route-add, route-del).

use super::edit::*;
use super::*;

pub(super) fn neigh_set(config: &mut Config, c: &NeighSet) -> Result<(), CommandError> {
    unicast_ip("ip", c.ip)?;
    unicast_mac("mac", c.mac)?;
    match config.neighbors.iter_mut().find(|n| n.ip == c.ip) {
        Some(n) => n.mac = c.mac,
        None => config.neighbors.push(
            NeighborConfig {
                ip: c.ip,
                mac: c.mac,
            }
            .into(),
        ),
    }
    Ok(())
}

pub(super) fn neigh_flush(config: &mut Config, c: &NeighFlush) -> Result<(), CommandError> {
    match c.ip {
        None => config.neighbors.clear(),
        Some(ip) => {
            let before = config.neighbors.len();
            config.neighbors.retain(|n| n.ip != ip);
            if config.neighbors.len() == before && !c.if_exists {
                return Err(CommandError::NotFound {
                    what: format!("static neighbor {ip}"),
                });
            }
        }
    }
    Ok(())
}

pub(super) fn route_add(config: &mut Config, c: &RouteAdd) -> Result<(), CommandError> {
    let dev = match (&c.dev, &config.uplink) {
        (Some(d), _) => d.clone(),
        (None, Some(u)) => u.iface.clone(),
        (None, None) => {
            return Err(CommandError::Refused(
                "no --dev given and no uplink set (set-uplink first)".into(),
            ))
        }
    };
    if dev.is_empty() {
        return Err(invalid("dev", "\"\"", "empty interface name"));
    }
    if let Some(g) = c.gateway {
        unicast_ip("gateway", g)?;
        if g.is_ipv4() != c.prefix.is_ipv4() {
            return Err(invalid(
                "gateway",
                g,
                format!("not of the family of prefix {}", c.prefix),
            ));
        }
    }
    let route = RouteConfig {
        prefix: c.prefix,
        gateway: c.gateway,
        dev,
        metric: c.metric,
    };
    match config
        .routes
        .iter_mut()
        .find(|r| r.prefix == c.prefix && r.metric == c.metric)
    {
        Some(r) if c.may_exist => *r = route.into(),
        Some(_) => {
            return Err(CommandError::Exists {
                what: "route",
                name: format!("{} metric {}", c.prefix, c.metric),
                hint: " (use --may-exist to replace it)",
            })
        }
        None => config.routes.push(route.into()),
    }
    Ok(())
}

pub(super) fn route_del(config: &mut Config, c: &RouteDel) -> Result<(), CommandError> {
    let before = config.routes.len();
    config
        .routes
        .retain(|r| !(r.prefix == c.prefix && c.metric.is_none_or(|m| m == r.metric)));
    if config.routes.len() == before && !c.if_exists {
        let metric = c.metric.map(|m| format!(" metric {m}")).unwrap_or_default();
        return Err(CommandError::NotFound {
            what: format!("route {}{metric}", c.prefix),
        });
    }
    Ok(())
}
