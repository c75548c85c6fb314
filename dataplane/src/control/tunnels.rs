//! Compiling tunnel ports: a tunnel's config into the [`TunnelSpec`] the
//! tunnel module builds from ([`tunnel_spec`]), each tunnel's dynamic
//! remotes, and the tunnel ports of a new snapshot, each taken from the
//! running one when its inputs did not change or built with its
//! templates.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::compile::{vlan_of, Layout, Previous};
use super::ApplyWork;
use crate::snapshot::{PortEntry, PortKind};
use crate::stats::DropReason;
use crate::tunnel::{
    Encap, RemoteIdx, Template, TunnelPort, TunnelSpec, TunnelTable, TunnelTableError, MAX_REMOTES,
};
use crate::wire::geneve::GeneveOptionRepr;
use xvs_config::{Config, ConfigError, Shared, TosConfig, TunnelConfig, VlanMode};

/// Builds tunnel `spec`'s template from `local` to a remote.
pub(super) type TemplateFn<'a> =
    dyn FnMut(&TunnelSpec, IpAddr, IpAddr) -> Result<Template, DropReason> + 'a;

/// A tunnel's config compiled for the tunnel module: defaults applied
/// (the UDP port of its kind), the outer TOS and the VLAN mode resolved.
pub fn tunnel_spec(cfg: &TunnelConfig) -> TunnelSpec {
    TunnelSpec {
        name: cfg.name.clone(),
        remotes: cfg.remotes.clone(),
        learn_remotes: cfg.learn_remotes,
        accept_inner_vlan: matches!(cfg.vlan, VlanMode::Trunk { .. }),
        encap: tunnel_encap(cfg),
    }
}

/// The encapsulation alone, what a template needs: rebuilding templates
/// (on every neighbour change) or sizing headroom takes no copy of the
/// tunnel's name and remotes.
pub fn tunnel_encap(cfg: &TunnelConfig) -> Encap {
    Encap {
        kind: cfg.kind,
        vni: cfg.vni,
        dst_port: cfg.udp_port(),
        ttl: cfg.ttl,
        tos: match cfg.tos {
            TosConfig::Fixed(t) => Some(t),
            TosConfig::Inherit => None,
        },
        df: cfg.df,
        csum: cfg.csum,
        zero_csum6: cfg.zero_csum6,
        src_port_range: cfg.src_port_range,
        geneve_opts: cfg
            .geneve_opts
            .iter()
            .map(|o| GeneveOptionRepr {
                class: o.class,
                typ: o.typ,
                data: o.data.clone(),
            })
            .collect(),
    }
}

/// Each tunnel's dynamic remotes: those the tunnel had (learned ones among
/// them, the tick drops the unused), then VTEPs static entries name beyond
/// the configured remotes. A tunnel without any has no entry.
pub(super) fn dynamic_remotes(
    config: &Config,
    prev_dyn: &HashMap<String, Vec<IpAddr>>,
    errs: &mut Vec<ConfigError>,
) -> HashMap<String, Vec<IpAddr>> {
    let mut dyn_remotes: HashMap<String, Vec<IpAddr>> = HashMap::new();
    // Only tunnels that had some keep some: no pass over every tunnel.
    if !prev_dyn.is_empty() {
        for t in &config.tunnels {
            let Some(d) = prev_dyn.get(&t.name) else {
                continue;
            };
            let v4 = t.remotes.first().is_none_or(|r| r.is_ipv4());
            let kept: Vec<IpAddr> = d
                .iter()
                .filter(|r| !t.remotes.contains(r) && r.is_ipv4() == v4)
                .copied()
                .collect();
            if !kept.is_empty() {
                dyn_remotes.insert(t.name.clone(), kept);
            }
        }
    }
    if config.fdb.iter().any(|f| f.remote.is_some()) {
        let mut seen: std::collections::HashSet<(usize, IpAddr)> = std::collections::HashSet::new();
        let tunnels: FxHashMap<&str, (usize, &Shared<TunnelConfig>)> = config
            .tunnels
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), (i, t)))
            .collect();
        for (name, d) in &dyn_remotes {
            if let Some(&(i, _)) = tunnels.get(name.as_str()) {
                seen.extend(d.iter().map(|r| (i, *r)));
            }
        }
        for f in &config.fdb {
            let (Some(&(i, t)), Some(r)) = (tunnels.get(f.port.as_str()), f.remote) else {
                continue;
            };
            if t.remotes.contains(&r) || !seen.insert((i, r)) {
                continue;
            }
            let d = dyn_remotes.entry(t.name.clone()).or_default();
            if t.remotes.len() + d.len() >= MAX_REMOTES {
                errs.push(ConfigError {
                    object: format!("tunnel {:?}", t.name),
                    message: format!(
                        "static FDB entries name more VTEPs than the {MAX_REMOTES} remotes a tunnel holds"
                    ),
                });
                break;
            }
            d.push(r);
        }
    }
    dyn_remotes
}

/// The tunnel ports, each taken from `prev` or built with `template`;
/// their entries and bridge memberships go into `layout`. `prev_tunnel`
/// is [`align`]'s of the two configs' tunnels.
pub(super) fn tunnel_ports(
    config: &Config,
    prev: &Previous,
    prev_tunnel: &[Option<usize>],
    layout: &mut Layout,
    dyn_remotes: &HashMap<String, Vec<IpAddr>>,
    template: &mut TemplateFn,
    work: &mut ApplyWork,
) -> Result<Arc<TunnelTable>, TunnelTableError> {
    if let Some(t) = unchanged_tunnels(config, prev, layout, dyn_remotes) {
        return Ok(t);
    }
    let mut tunnel_ports = Vec::with_capacity(config.tunnels.len());
    for (t, prev_t) in config.tunnels.iter().zip(prev_tunnel) {
        // Numbered in a validated config; the lookup is the fallback.
        let Some(n) = t.number.or_else(|| layout.number(&t.name)) else {
            continue;
        };
        let same = prev_t.is_some_and(|k| prev.config.tunnels[k] == *t);
        // The same tunnel in unchanged bridges keeps its running bridge
        // index; another is looked up.
        let running_bridge = prev
            .snapshot
            .port(n)
            .filter(|e| same && layout.bridges_same && matches!(e.kind, PortKind::Tunnel(_)))
            .map(|e| e.bridge);
        let Some(b) = running_bridge.or_else(|| layout.bridge(&t.bridge)) else {
            continue;
        };
        let local = t.local.or_else(|| {
            let v4 = t.remotes.first().is_none_or(|r| r.is_ipv4());
            config
                .uplink
                .as_ref()
                .and_then(|u| u.local_ips.iter().find(|a| a.is_ipv4() == v4).copied())
        });
        let Some(local) = local else {
            // validate() already reported it.
            continue;
        };
        let dynamic = dyn_remotes.get(&t.name).map_or(&[][..], Vec::as_slice);
        // Same config, number, local address and dynamic remotes: the
        // same port, templates included (the caller rebuilds every
        // template when the underlay moved).
        let kept = match prev.snapshot.port(n).map(|e| e.kind) {
            Some(PortKind::Tunnel(i)) if same => prev.snapshot.tunnels.get(i),
            _ => None,
        };
        let kept = kept
            .filter(|tp| *tp.name == *t.name && tp.port == n && tp.local == local)
            .filter(|tp| tp.dynamic_remotes() == dynamic);
        let tp = match kept {
            Some(tp) => tp.clone(),
            None => {
                work.tunnels_compiled += 1;
                let spec = tunnel_spec(t);
                let mut tp = TunnelPort::with_dynamic(&spec, n, local, dynamic);
                tp.name = prev.port_name(n, &t.name);
                for (i, remote) in Arc::clone(&tp.remotes).iter().enumerate() {
                    work.templates_built += 1;
                    tp.set_template(i as RemoteIdx, template(&spec, local, *remote));
                }
                tp
            }
        };
        layout.ports[usize::from(n)] = PortEntry {
            name: Arc::clone(&tp.name),
            kind: PortKind::Tunnel(tunnel_ports.len() as u16),
            bridge: b,
            vlan: vlan_of(&t.vlan),
            mtu: config.uplink.as_ref().map_or(1500, |u| u.mtu),
            firewall: [None; 2],
            policer: [None; 2],
            max_macs: None,
            security: None,
            storm: None,
            mirror: [None; 2],
            mirror_output: false,
        };
        tunnel_ports.push(tp);
        layout.members.push((b, n));
    }
    TunnelTable::build_after(&prev.snapshot.tunnels, tunnel_ports).map(Arc::new)
}

/// The running tunnel table, when nothing it was built from changed: the
/// same tunnel objects (shared with the running config), bridges, uplink
/// (local addresses, MTU) and dynamic remotes. Then the tunnels' port
/// entries are the running ones too, with their policy slots cleared for
/// the new config's ACLs and policers to fill; and a transaction that
/// touches no tunnel walks the tunnels once, by pointer, instead of
/// compiling each.
fn unchanged_tunnels(
    config: &Config,
    prev: &Previous,
    layout: &mut Layout,
    dyn_remotes: &HashMap<String, Vec<IpAddr>>,
) -> Option<Arc<TunnelTable>> {
    let unchanged = Shared::all_same(&config.tunnels, &prev.config.tunnels)
        && Shared::all_same(&config.bridges, &prev.config.bridges)
        && config.uplink == prev.config.uplink
        && dyn_remotes == prev.dyn_remotes;
    if !unchanged {
        return None;
    }
    let table = &prev.snapshot.tunnels;
    // Checked whole before the layout is touched: the caller compiles
    // every tunnel when this says no.
    let free = table.ports().iter().all(|tp| {
        prev.snapshot.port(tp.port).is_some()
            && layout
                .ports
                .get(usize::from(tp.port))
                .is_some_and(|e| e.kind == PortKind::Absent)
    });
    if !free {
        return None;
    }
    for tp in table.ports() {
        let e = prev.snapshot.port(tp.port)?;
        layout.ports[usize::from(tp.port)] = e.without_policies();
        layout.members.push((e.bridge, tp.port));
    }
    Some(Arc::clone(table))
}
