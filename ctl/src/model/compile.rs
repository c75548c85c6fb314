//! Compiles a valid model, seen from one phys, into the xvs objects that
//! host runs: a [`Config`] fragment holding only what the model owns.
//!
//! - every net the local phys is attached to becomes a bridge named after
//!   the net (`vlan` nets share the bridge [`VLAN_BRIDGE`], kept apart by
//!   802.1Q tags, because the phys interface can be a trunk port of one
//!   bridge only);
//! - a tunnel net gets one tunnel port `t-NET` whose remotes are the other
//!   physes of the net (head-end replication), or the group (`vxlan/mcast`);
//!   none while no other phys is attached;
//! - static nets (`vxlan/static`, `geneve`) get a static MAC for every virt
//!   with a MAC: on another phys pointing at that phys's VTEP, on this one
//!   at its port (these bridges do not learn);
//! - every virt with an IP and a MAC becomes an overlay address of its
//!   net's bridge (owner "model"), answered locally by ARP/ND suppression
//!   (settings `arp_suppress`, default on);
//! - every virt on the local phys becomes a port (its interface) with its
//!   firewall rules and policers;
//! - the phys interface becomes the uplink (tunnel nets) or a port
//!   (`vlan`: trunk of the nets' VIDs; `direct`: untagged).
//!
//! Everything is emitted in model order, so the same model gives the same
//! fragment on every run (diffs stay empty on a re-apply).

use std::net::IpAddr;

use xvs_config::{
    AclConfig, BridgeConfig, Config, Direction, OverlayAddrConfig, PortConfig, QosConfig,
    StaticFdbConfig, TunnelConfig, TunnelKind, UplinkConfig, VlanMode,
};
use xvs_types::acl::{AclAction, AclRule};

use super::validate::{rate_values, VLAN_BRIDGE};
use super::{Model, NetType, Virt, META_KEY};

/// Name of a net's tunnel port.
pub fn tunnel_name(net: &str) -> String {
    format!("t-{net}")
}

/// The fragment for phys `local`. The model must have passed
/// [`validate`](super::validate()); what it would have refused is skipped
/// here rather than reported twice.
pub fn compile(model: &Model, local: &str) -> Config {
    let mut out = Config::default();
    let Some(me) = model.phys(local) else {
        return out;
    };
    let mut vlan_vids: Vec<u16> = Vec::new();
    for net_name in &me.nets {
        let (Some(net), Some(s)) = (model.net(net_name), model.net_settings(net_name)) else {
            continue;
        };
        let bridge = match s.kind {
            NetType::Vlan => {
                vlan_vids.extend(net.vni.map(|v| v as u16));
                if !out.bridges.iter().any(|b| b.name == VLAN_BRIDGE) {
                    out.bridges.push(BridgeConfig::new(VLAN_BRIDGE).into());
                }
                VLAN_BRIDGE.to_string()
            }
            _ => {
                let mut b = BridgeConfig::new(net.name.clone());
                // Static nets know every MAC from the model: learning
                // would only let a spoofed source move one (LSDN's static).
                b.learning = !s.kind.is_static();
                b.arp_suppress = s.suppresses_arp();
                out.bridges.push(b.into());
                net.name.clone()
            }
        };
        if s.kind.is_tunnel() {
            let Some(ip) = me.ip else { continue };
            if let Some(iface) = &me.iface {
                out.uplink.get_or_insert_with(|| UplinkConfig {
                    iface: iface.clone(),
                    number: None,
                    mac: None,
                    local_ips: vec![ip],
                    mtu: 1500,
                });
            }
            let others: Vec<(&str, IpAddr)> = model
                .physes
                .iter()
                .filter(|p| p.name != me.name && p.nets.contains(&net.name))
                .filter_map(|p| p.ip.map(|ip| (p.name.as_str(), ip)))
                .collect();
            let remotes: Vec<IpAddr> = match (s.kind, s.group) {
                (NetType::VxlanMcast, Some(g)) => vec![g],
                _ => others.iter().map(|(_, ip)| *ip).collect(),
            };
            if remotes.is_empty() {
                continue;
            }
            let kind = if s.kind == NetType::Geneve {
                TunnelKind::Geneve
            } else {
                TunnelKind::Vxlan
            };
            let tname = tunnel_name(&net.name);
            let mut t = TunnelConfig::new(
                tname.clone(),
                bridge.clone(),
                kind,
                net.vni.unwrap_or(0),
                remotes,
            );
            t.local = Some(ip);
            // Behind a group any VTEP may speak first (RFC 7348 §4.2):
            // accept it and learn where its MACs are.
            t.learn_remotes = s.kind == NetType::VxlanMcast;
            if s.port != kind_default(kind) {
                t.dst_port = s.port;
            }
            out.tunnels.push(t.into());
            if s.kind.is_static() {
                for v in model.virts.iter().filter(|v| v.net == net.name) {
                    let (Some(mac), Some(pn)) = (v.mac, v.phys.as_deref()) else {
                        continue;
                    };
                    let Some(&(_, vtep)) = others.iter().find(|(n, _)| *n == pn) else {
                        continue;
                    };
                    out.fdb.push(
                        StaticFdbConfig {
                            bridge: bridge.clone(),
                            vlan: 0,
                            mac,
                            port: tname.clone(),
                            remote: Some(vtep),
                        }
                        .into(),
                    );
                }
            }
        } else if s.kind == NetType::Direct {
            if let Some(iface) = &me.iface {
                out.ports
                    .push(port(iface, &bridge, VlanMode::Access { tag: 0 }).into());
            }
        }
        // Every virt's address, wherever it runs: what ARP suppression
        // answers from (the vlan bridge keeps them apart by VID).
        let vid = match s.kind {
            NetType::Vlan => net.vni.unwrap_or(0) as u16,
            _ => 0,
        };
        for v in model.virts.iter().filter(|v| v.net == net.name) {
            if let (Some(ip), Some(mac), true) = (v.ip, v.mac, s.suppresses_arp()) {
                out.addrs.push(
                    OverlayAddrConfig {
                        bridge: bridge.clone(),
                        vlan: vid,
                        ip,
                        mac,
                        owner: Some(META_KEY.to_string()),
                    }
                    .into(),
                );
            }
        }
        for v in model
            .virts
            .iter()
            .filter(|v| v.net == net.name && v.phys.as_deref() == Some(local))
        {
            let Some(iface) = &v.iface else { continue };
            let tag = match s.kind {
                NetType::Vlan => net.vni.unwrap_or(0) as u16,
                _ => 0,
            };
            out.ports
                .push(port(iface, &bridge, VlanMode::Access { tag }).into());
            if let (true, Some(mac)) = (s.kind.is_static(), v.mac) {
                // Without learning, a local VM's MAC must be known too or
                // every frame to it would be flooded.
                out.fdb.push(
                    StaticFdbConfig {
                        bridge: bridge.clone(),
                        vlan: 0,
                        mac,
                        port: iface.clone(),
                        remote: None,
                    }
                    .into(),
                );
            }
            virt_policy(&mut out, iface, v);
        }
    }
    if !vlan_vids.is_empty() {
        if let Some(iface) = &me.iface {
            vlan_vids.sort_unstable();
            out.ports.push(
                port(
                    iface,
                    VLAN_BRIDGE,
                    VlanMode::Trunk {
                        trunks: vlan_vids,
                        native: None,
                    },
                )
                .into(),
            );
        }
    }
    out
}

fn kind_default(kind: TunnelKind) -> Option<u16> {
    Some(kind.default_port())
}

fn port(name: &str, bridge: &str, vlan: VlanMode) -> PortConfig {
    PortConfig {
        vlan,
        ..PortConfig::new(name, bridge)
    }
}

fn virt_policy(out: &mut Config, iface: &str, v: &Virt) {
    for (dir, rules) in [(Direction::In, &v.ingress), (Direction::Out, &v.egress)] {
        let texts: Vec<String> = rules
            .iter()
            .filter_map(|t| t.parse::<AclRule>().ok().map(|r| canonical_rule(t, &r)))
            .collect();
        if !texts.is_empty() {
            out.acls.push(
                AclConfig {
                    port: iface.to_string(),
                    dir,
                    rules: texts,
                }
                .into(),
            );
        }
    }
    for (dir, rate) in [
        (Direction::In, &v.rate_ingress),
        (Direction::Out, &v.rate_egress),
    ] {
        if let Some((rate_bps, burst_bytes, peak_bps)) = rate.as_ref().and_then(rate_values) {
            out.qos.push(
                QosConfig {
                    port: iface.to_string(),
                    dir,
                    rate_bps,
                    burst_bytes,
                    peak_bps,
                }
                .into(),
            );
        }
    }
}

/// The match part of an ACL rule's text (without `priority=` and
/// `action=`), as `acl-add` takes it.
pub fn rule_matches(text: &str) -> String {
    text.split([',', ' ', '\t'])
        .filter(|t| !t.is_empty())
        .filter(|t| {
            !matches!(
                t.split_once('='),
                Some(("priority" | "action" | "actions", _))
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A rule's text as `acl-add` stores it, so a re-apply compares equal.
fn canonical_rule(text: &str, r: &AclRule) -> String {
    let m = rule_matches(text);
    let action = match r.action {
        AclAction::Allow => "allow",
        AclAction::Drop => "drop",
    };
    if m.is_empty() {
        format!("priority={},action={action}", r.priority)
    } else {
        format!("priority={},{m},action={action}", r.priority)
    }
}
