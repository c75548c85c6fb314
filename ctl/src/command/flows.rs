//! Flow verbs: add-flow and del-flows, and port names in flow text
//! resolved to the numbers the config stores.

use super::edit::*;
use super::*;

/// Ports of one bridge: name, number, and the tunnel's remotes if a tunnel.
pub(super) fn bridge_ports<'c>(
    config: &'c Config,
    bridge: &str,
) -> Vec<(&'c str, PortNo, Option<&'c [IpAddr]>)> {
    let ports = config
        .ports
        .iter()
        .filter(|p| p.bridge == bridge)
        .filter_map(|p| p.number.map(|n| (p.name.as_str(), n, None)));
    let tunnels = config
        .tunnels
        .iter()
        .filter(|t| t.bridge == bridge)
        .filter_map(|t| {
            t.number
                .map(|n| (t.name.as_str(), n, Some(t.remotes.as_slice())))
        });
    ports.chain(tunnels).collect()
}

pub(super) fn is_number(s: &str) -> bool {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"));
    match h {
        Some(h) => !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// Rewrites port names in flow text (`in_port=vm1`, `output:vx1`, a bare
/// `vx1` action, `tunnel:vx1:192.0.2.2`) into the numbers the dataplane's
/// parser takes. Unknown names are left for the parser to reject, except
/// where a port is clearly meant (`in_port=`, `output:`, `tunnel:`).
pub fn resolve_port_names(
    text: &str,
    config: &Config,
    bridge: &str,
) -> Result<String, CommandError> {
    let ports = bridge_ports(config, bridge);
    let lookup = |name: &str, what: &str| -> Result<(PortNo, Option<&[IpAddr]>), CommandError> {
        ports
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, no, r)| (*no, *r))
            .ok_or_else(|| CommandError::Flow {
                text: text.to_string(),
                reason: format!("{what}: no port {name:?} in bridge {bridge:?}"),
            })
    };
    let (head, acts) = match text.find("actions=") {
        Some(pos) => (&text[..pos], Some(&text[pos + "actions=".len()..])),
        None => (text, None),
    };
    let mut out = Vec::new();
    for tok in head.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
        match tok.split_once('=') {
            Some(("in_port", v)) if !is_number(v.trim()) => {
                let (n, _) = lookup(v.trim(), tok)?;
                out.push(format!("in_port={n}"));
            }
            _ => out.push(tok.to_string()),
        }
    }
    let mut text_out = out.join(",");
    if let Some(acts) = acts {
        let mut list = Vec::new();
        for a in acts.split(',').map(str::trim) {
            let lower = a.to_ascii_lowercase();
            let resolved = if let Some(p) =
                lower.strip_prefix("output:").map(|_| &a["output:".len()..])
            {
                if is_number(p) {
                    a.to_string()
                } else {
                    format!("output:{}", lookup(p, a)?.0)
                }
            } else if let Some(rest) = lower.strip_prefix("tunnel:").map(|_| &a["tunnel:".len()..])
            {
                let (p, r) = rest.split_once(':').unwrap_or((rest, ""));
                let (no, remotes) = if is_number(p) {
                    (
                        p.to_string(),
                        ports
                            .iter()
                            .find(|(_, n, _)| n.to_string() == p)
                            .and_then(|x| x.2),
                    )
                } else {
                    let (n, rem) = lookup(p, a)?;
                    (n.to_string(), rem)
                };
                let idx = match r.parse::<IpAddr>() {
                    Ok(ip) => {
                        let i = remotes
                            .and_then(|rs| rs.iter().position(|x| *x == ip))
                            .ok_or_else(|| CommandError::Flow {
                                text: text.to_string(),
                                reason: format!("{a}: {ip} is not a remote of tunnel {p:?}"),
                            })?;
                        i.to_string()
                    }
                    Err(_) => r.to_string(),
                };
                format!("tunnel:{no}:{idx}")
            } else if !a.contains(':')
                && !is_number(a)
                && !matches!(lower.as_str(), "normal" | "drop" | "flood" | "strip_vlan")
                && ports.iter().any(|(n, _, _)| *n == a)
            {
                format!("output:{}", lookup(a, a)?.0)
            } else {
                a.to_string()
            };
            list.push(resolved);
        }
        if !text_out.is_empty() {
            text_out.push(',');
        }
        text_out.push_str("actions=");
        text_out.push_str(&list.join(","));
    }
    Ok(text_out)
}

pub(super) fn parse_flow(
    text: &str,
    config: &Config,
    bridge: &str,
) -> Result<FlowRule, CommandError> {
    let resolved = resolve_port_names(text, config, bridge)?;
    resolved
        .parse::<FlowRule>()
        .map_err(|e| CommandError::Flow {
            text: text.to_string(),
            reason: e.to_string(),
        })
}

pub(super) fn add_flow(config: &mut Config, c: &AddFlow) -> Result<(), CommandError> {
    need_bridge(config, &c.bridge)?;
    let rule = parse_flow(&c.flow, config, &c.bridge)?;
    rule.matches.to_key_mask().map_err(|e| CommandError::Flow {
        text: c.flow.clone(),
        reason: e.to_string(),
    })?;
    let ports = bridge_ports(config, &c.bridge);
    for p in rule.referenced_ports() {
        if !ports.iter().any(|(_, n, _)| *n == p) {
            return Err(CommandError::Flow {
                text: c.flow.clone(),
                reason: format!("port {p} is not a port of bridge {:?}", c.bridge),
            });
        }
    }
    for a in &rule.actions {
        if let xvs_types::flow::Action::Tunnel { port, remote } = a {
            let remotes = ports.iter().find(|(_, n, _)| n == port).and_then(|x| x.2);
            match remotes {
                None => {
                    return Err(CommandError::Flow {
                        text: c.flow.clone(),
                        reason: format!("tunnel:{port}:{remote}: port {port} is not a tunnel"),
                    })
                }
                Some(rs) if usize::from(*remote) >= rs.len() => {
                    return Err(CommandError::Flow {
                        text: c.flow.clone(),
                        reason: format!(
                            "tunnel:{port}:{remote}: the tunnel has {} remote(s), numbered from 0",
                            rs.len()
                        ),
                    })
                }
                _ => {}
            }
        }
    }
    let text = rule.to_string();
    let Some(b) = config.bridges.iter_mut().find(|b| b.name == c.bridge) else {
        return Err(CommandError::NoBridge(c.bridge.clone()));
    };
    let same = b.flows.iter().position(|f| {
        f.parse::<FlowRule>()
            .is_ok_and(|r| r.priority == rule.priority && r.matches == rule.matches)
    });
    match same {
        Some(i) => b.flows[i] = text,
        None => b.flows.push(text),
    }
    Ok(())
}

/// Whether `rule` matches only packets `filter` matches: every field the
/// filter sets, the rule sets at least as precisely, to the same value.
pub(super) fn covers(filter: &FlowMatch, rule: &FlowMatch) -> bool {
    let (Ok((fk, fm)), Ok((rk, rm))) = (filter.to_key_mask(), rule.to_key_mask()) else {
        return false;
    };
    fk.0.iter()
        .zip(fm.0.iter())
        .zip(rk.0.iter().zip(rm.0.iter()))
        .all(|((fk, fm), (rk, rm))| rm & fm == *fm && rk & fm == *fk)
}

pub(super) fn del_flows(config: &mut Config, c: &DelFlows) -> Result<(), CommandError> {
    need_bridge(config, &c.bridge)?;
    let filter = match &c.matches {
        None => None,
        Some(m) if m.trim().is_empty() => None,
        Some(m) => {
            let resolved = resolve_port_names(m, config, &c.bridge)?;
            let mut priority = None;
            let mut rest = Vec::new();
            for tok in resolved.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
                match tok.split_once('=') {
                    Some(("priority", v)) => {
                        priority =
                            Some(v.trim().parse::<u32>().map_err(|_| CommandError::Flow {
                                text: m.clone(),
                                reason: format!("bad priority {v:?}"),
                            })?)
                    }
                    Some(("actions", _)) => {
                        return Err(CommandError::Flow {
                            text: m.clone(),
                            reason: "del-flows takes a match, not actions".into(),
                        })
                    }
                    _ => rest.push(tok),
                }
            }
            let fm: FlowMatch =
                rest.join(",")
                    .parse()
                    .map_err(|e: xvs_types::flow::FlowError| CommandError::Flow {
                        text: m.clone(),
                        reason: e.to_string(),
                    })?;
            Some((priority, fm))
        }
    };
    let Some(b) = config.bridges.iter_mut().find(|b| b.name == c.bridge) else {
        return Err(CommandError::NoBridge(c.bridge.clone()));
    };
    match filter {
        None => b.flows.clear(),
        Some((priority, fm)) => b.flows.retain(|text| {
            let Ok(r) = text.parse::<FlowRule>() else {
                return true;
            };
            let hit = if c.strict {
                priority.is_none_or(|p| p == r.priority) && r.matches == fm
            } else {
                priority.is_none_or(|p| p == r.priority) && covers(&fm, &r.matches)
            };
            !hit
        }),
    }
    Ok(())
}
