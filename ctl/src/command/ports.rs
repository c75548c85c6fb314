//! Port verbs: add-port (with its VLAN mode), set-port, add-tunnel,
//! set-tunnel, del-port and set-uplink.

use super::bridges::drop_port_refs;
use super::edit::*;
use super::*;

pub(super) fn exists_error(
    what: &'static str,
    name: &str,
    bridge: &str,
    want_bridge: &str,
) -> CommandError {
    if what == "uplink" {
        CommandError::Refused(format!("{name:?} is the uplink"))
    } else if bridge != want_bridge {
        CommandError::Refused(format!(
            "{what} {name:?} already exists in bridge {bridge:?}"
        ))
    } else {
        CommandError::Exists {
            what,
            name: name.to_string(),
            hint: MAY_EXIST,
        }
    }
}

pub(super) fn add_port(config: &mut Config, c: &AddPort) -> Result<(), CommandError> {
    need_bridge(config, &c.bridge)?;
    check_name("port name", &c.name)?;
    if let Some((what, bridge)) = name_used(config, &c.name) {
        if c.may_exist && what == "port" && bridge == c.bridge {
            return Ok(());
        }
        return Err(exists_error(what, &c.name, &bridge, &c.bridge));
    }
    let vlan = vlan_mode(c.tag, c.trunks.as_deref(), c.native)?;
    let mut p = PortConfig {
        vlan,
        queues: c.queues.unwrap_or(0),
        max_macs: c.max_macs,
        allowed_macs: c.allowed_macs.clone(),
        allowed_ips: c.allowed_ips.clone(),
        storm_pps: c.storm_pps,
        kind: c.kind.clone(),
        ..PortConfig::new(c.name.clone(), c.bridge.clone())
    };
    if let Some(m) = c.mtu {
        p.mtu = m;
    }
    config.ports.push(p.into());
    // Numbered now, so a later add-flow in the same transaction can name it.
    config.assign_port_numbers();
    Ok(())
}

pub(super) fn vlan_mode(
    tag: Option<u16>,
    trunks: Option<&[u16]>,
    native: Option<u16>,
) -> Result<VlanMode, CommandError> {
    match (tag, trunks) {
        (Some(_), Some(_)) => Err(CommandError::Refused(
            "--tag and --trunks exclude each other (an access port or a trunk)".into(),
        )),
        (Some(t), None) => {
            if native.is_some() {
                return Err(CommandError::Refused(
                    "--native applies to a trunk (--trunks)".into(),
                ));
            }
            vlan_in_range("tag", t, 0)?;
            Ok(VlanMode::Access { tag: t })
        }
        (None, Some(list)) => {
            let mut trunks = Vec::with_capacity(list.len());
            for &v in list {
                vlan_in_range("trunk", v, 1)?;
                if !trunks.contains(&v) {
                    trunks.push(v);
                }
            }
            trunks.sort_unstable();
            if let Some(n) = native {
                vlan_in_range("native", n, 1)?;
            }
            Ok(VlanMode::Trunk { trunks, native })
        }
        (None, None) => {
            if native.is_some() {
                return Err(CommandError::Refused(
                    "--native applies to a trunk (--trunks)".into(),
                ));
            }
            Ok(VlanMode::default())
        }
    }
}

pub(super) fn add_tunnel(config: &mut Config, c: &AddTunnel) -> Result<(), CommandError> {
    need_bridge(config, &c.bridge)?;
    check_name("tunnel name", &c.name)?;
    if let Some((what, bridge)) = name_used(config, &c.name) {
        if c.may_exist && what == "tunnel" && bridge == c.bridge {
            return Ok(());
        }
        return Err(exists_error(what, &c.name, &bridge, &c.bridge));
    }
    check_remotes(&c.remotes)?;
    check_tunnel_fields(Some(c.vni), c.local, c.dst_port, c.ttl)?;
    if c.kind == TunnelKind::Vxlan && !c.geneve_opts.is_empty() {
        return Err(CommandError::Refused(
            "Geneve options (--geneve-opt) on a VXLAN tunnel".into(),
        ));
    }
    for o in &c.geneve_opts {
        if o.data.len() % 4 != 0 || o.data.len() > 124 {
            return Err(invalid(
                "geneve option data",
                format!("{:#06x}:{:#04x} ({} bytes)", o.class, o.typ, o.data.len()),
                "length must be a multiple of 4 bytes, at most 124",
            ));
        }
    }
    let t = c.to_config();
    config.tunnels.push(t.into());
    config.assign_port_numbers();
    Ok(())
}

pub(super) fn set_port(config: &mut Config, c: &SetPort) -> Result<(), CommandError> {
    let Some(p) = config.ports.iter_mut().find(|p| p.name == c.name) else {
        if config.tunnels.iter().any(|t| t.name == c.name) {
            return Err(CommandError::Refused(format!(
                "{:?} is a tunnel: set-port changes local ports (set-tunnel changes tunnels)",
                c.name
            )));
        }
        return Err(CommandError::NoPort(c.name.clone()));
    };
    if let Some(m) = c.max_macs {
        p.max_macs = (m != 0).then_some(m);
    }
    if let Some(m) = &c.allowed_macs {
        p.allowed_macs = m.clone();
    }
    if let Some(ips) = &c.allowed_ips {
        p.allowed_ips = ips.clone();
    }
    if let Some(n) = c.storm_pps {
        p.storm_pps = (n != 0).then_some(n);
    }
    Ok(())
}

pub(super) fn set_tunnel(config: &mut Config, c: &SetTunnel) -> Result<(), CommandError> {
    let Some(i) = config.tunnels.iter().position(|t| t.name == c.name) else {
        return Err(CommandError::NoPort(c.name.clone()));
    };
    if let Some(rs) = &c.remotes {
        check_remotes(rs)?;
    }
    check_tunnel_fields(c.vni, c.local, c.dst_port, c.ttl)?;
    let mut t = config.tunnels[i].clone();
    c.apply_to(&mut t);
    // Flow actions name configured remotes by position: none may point
    // past the new list.
    let (bridge, n) = (t.bridge.clone(), t.remotes.len());
    let no = t.number;
    if let Some(b) = config.bridges.iter().find(|b| b.name == bridge) {
        for f in &b.flows {
            let Ok(rule) = f.parse::<FlowRule>() else {
                continue;
            };
            for a in &rule.actions {
                if let xvs_types::flow::Action::Tunnel { port, remote } = a {
                    if Some(*port) == no && usize::from(*remote) >= n {
                        return Err(CommandError::Refused(format!(
                            "flow {f:?} sends to remote {remote} of tunnel {:?}, which would have {n} remote(s)",
                            c.name
                        )));
                    }
                }
            }
        }
    }
    config.tunnels[i] = t;
    Ok(())
}

pub(super) fn del_port(config: &mut Config, c: &DelPort) -> Result<(), CommandError> {
    let Some(p) = find_port(config, &c.name) else {
        if config.uplink.as_ref().is_some_and(|u| u.iface == c.name) {
            return Err(CommandError::Refused(format!(
                "{:?} is the uplink, not a port (set-uplink replaces it)",
                c.name
            )));
        }
        if c.if_exists {
            return Ok(());
        }
        return Err(CommandError::NotFound {
            what: format!("port or tunnel {:?}", c.name),
        });
    };
    // A flow naming the port would no longer compile; say so here, with the
    // flow, rather than deleting rules the operator wrote.
    if let Some(n) = p.number {
        let bridge = p.bridge.to_string();
        if let Some(b) = config.bridges.iter().find(|b| b.name == bridge) {
            for (i, text) in b.flows.iter().enumerate() {
                if let Ok(rule) = text.parse::<FlowRule>() {
                    if rule.referenced_ports().any(|x| x == n) {
                        return Err(CommandError::Refused(format!(
                            "port {:?} (number {n}) is used by flow {} of bridge {bridge:?} ({text}): delete that flow first",
                            c.name,
                            i + 1
                        )));
                    }
                }
            }
        }
    }
    config.ports.retain(|x| x.name != c.name);
    config.tunnels.retain(|x| x.name != c.name);
    drop_port_refs(config, std::slice::from_ref(&c.name));
    Ok(())
}

pub(super) fn set_uplink(config: &mut Config, c: &SetUplink) -> Result<(), CommandError> {
    check_name("uplink", &c.iface)?;
    if let Some((what, _)) = name_used(config, &c.iface) {
        if what != "uplink" {
            return Err(CommandError::Refused(format!(
                "{:?} is a {what}, it cannot also be the uplink",
                c.iface
            )));
        }
    }
    if let Some(m) = c.mac {
        unicast_mac("mac", m)?;
    }
    for ip in &c.local_ips {
        unicast_ip("local IP", *ip)?;
    }
    let mut seen = Vec::new();
    for ip in &c.local_ips {
        if seen.contains(ip) {
            return Err(invalid("local IP", ip, "listed twice"));
        }
        seen.push(*ip);
    }
    let old = config.uplink.take().filter(|u| u.iface == c.iface);
    let mut u = old.unwrap_or(UplinkConfig {
        iface: c.iface.clone(),
        number: None,
        mac: None,
        local_ips: Vec::new(),
        mtu: 1500,
    });
    if !c.local_ips.is_empty() {
        u.local_ips = c.local_ips.clone();
    }
    if c.mac.is_some() {
        u.mac = c.mac;
    }
    if let Some(m) = c.mtu {
        u.mtu = m;
    }
    config.uplink = Some(u);
    config.assign_port_numbers();
    Ok(())
}
