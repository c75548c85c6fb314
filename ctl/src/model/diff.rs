//! The smallest list of commands that takes the running config from what
//! the model installed last time to what it asks for now.
//!
//! Three inputs: the running config `R`, the fragment the previously
//! applied model compiled to `O` (what the model owns today), and the new
//! fragment `N`. An object of `N` is added when `R` lacks it and replaced
//! when `R` has it different; an object of `O` that `N` no longer has is
//! deleted if it is still in `R`. Objects in `R` that neither fragment
//! names (added by hand, by the etcd agent, ...) are never touched; an
//! object of `N` already in `R` with the same value is adopted silently.
//!
//! A tunnel is changed in place with `set-tunnel` (its learned MACs and
//! remotes stay); a port, or a tunnel whose bridge or type changes, is
//! replaced with `del-port` + add, and `del-port` takes the object's static
//! MACs, ACLs and policers with it, so those of `N` are re-added whatever
//! `R` said. Deletions come first (they free names and interfaces the
//! additions may reuse), then additions, then `meta-set` with the new
//! record: one transaction, all or nothing.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;
use xvs_config::{
    AclConfig, Config, Direction, OverlayAddrConfig, PortConfig, QosConfig, Shared,
    StaticFdbConfig, TunnelConfig,
};
use xvs_types::acl::AclRule;
use xvs_types::MacAddr;

use super::compile::rule_matches;
use super::META_KEY;
use crate::command::{self as cmd, Command};

/// Commands taking `running` from `old` (the fragment the model owns now)
/// to `new`, ending with the record. Empty when nothing changes, record
/// included.
pub fn diff(running: &Config, old: &Config, new: &Config, record: &Value) -> Vec<Command> {
    let mut dels = Vec::new();
    let mut adds = Vec::new();

    // Bridges.
    let new_bridges: HashSet<&str> = new.bridges.iter().map(|b| b.name.as_str()).collect();
    let run_bridges: HashSet<&str> = running.bridges.iter().map(|b| b.name.as_str()).collect();
    let dropped_bridges: HashSet<&str> = old
        .bridges
        .iter()
        .map(|b| b.name.as_str())
        .filter(|b| !new_bridges.contains(b) && run_bridges.contains(b))
        .collect();
    for b in &old.bridges {
        if dropped_bridges.contains(b.name.as_str()) {
            dels.push(Command::DelBr(cmd::DelBr {
                name: b.name.clone(),
                if_exists: true,
            }));
        }
    }
    for b in &new.bridges {
        match running.bridges.iter().find(|r| r.name == b.name) {
            None => adds.push(Command::AddBr(cmd::AddBr {
                name: b.name.clone(),
                may_exist: true,
                fdb_max_entries: None,
                fdb_aging_secs: None,
                learning: Some(b.learning),
                arp_suppress: Some(b.arp_suppress),
            })),
            Some(r) if r.learning != b.learning || r.arp_suppress != b.arp_suppress => {
                adds.push(Command::SetBr(cmd::SetBr {
                    name: b.name.clone(),
                    learning: (r.learning != b.learning).then_some(b.learning),
                    arp_suppress: (r.arp_suppress != b.arp_suppress).then_some(b.arp_suppress),
                    ..Default::default()
                }))
            }
            Some(_) => {}
        }
    }
    // Inside a bridge `del-br` removes, nothing needs deleting one by one.
    let gone_with_bridge = |bridge: &str| dropped_bridges.contains(bridge);

    // Uplink: the model sets the interface and makes sure its VTEP
    // address is among the local ones; other local addresses stay.
    if let Some(u) = &new.uplink {
        let same = running.uplink.as_ref().filter(|r| r.iface == u.iface);
        let have = same.is_some_and(|r| u.local_ips.iter().all(|ip| r.local_ips.contains(ip)));
        if !have {
            let mut ips = same.map(|r| r.local_ips.clone()).unwrap_or_default();
            for ip in &u.local_ips {
                if !ips.contains(ip) {
                    ips.push(*ip);
                }
            }
            adds.push(Command::SetUplink(cmd::SetUplink {
                iface: u.iface.clone(),
                local_ips: ips,
                mac: None,
                mtu: None,
            }));
        }
    }

    // Ports and tunnels: one namespace.
    let mut recreated: HashSet<String> = HashSet::new();
    let run_ports: HashMap<&str, &Shared<PortConfig>> =
        running.ports.iter().map(|p| (p.name.as_str(), p)).collect();
    let run_tunnels: HashMap<&str, &Shared<TunnelConfig>> = running
        .tunnels
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let new_names: HashSet<&str> = new
        .ports
        .iter()
        .map(|p| p.name.as_str())
        .chain(new.tunnels.iter().map(|t| t.name.as_str()))
        .collect();
    let old_named = old
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.bridge.as_str()))
        .chain(
            old.tunnels
                .iter()
                .map(|t| (t.name.as_str(), t.bridge.as_str())),
        );
    for (name, bridge) in old_named {
        let present = run_ports.contains_key(name) || run_tunnels.contains_key(name);
        if !new_names.contains(name) && present && !gone_with_bridge(bridge) {
            dels.push(del_port(name));
        }
    }
    for p in &new.ports {
        match run_ports.get(p.name.as_str()) {
            Some(r) if same_port(r, p) => {}
            Some(_) => {
                dels.push(del_port(&p.name));
                recreated.insert(p.name.clone());
                adds.push(add_port(p));
            }
            None => {
                if run_tunnels.contains_key(p.name.as_str()) {
                    dels.push(del_port(&p.name));
                }
                recreated.insert(p.name.clone());
                adds.push(add_port(p));
            }
        }
    }
    for t in &new.tunnels {
        match run_tunnels.get(t.name.as_str()) {
            Some(r) if same_tunnel(r, t) => {}
            other => {
                if let Some(set) = other.and_then(|r| cmd::SetTunnel::between(r, t)) {
                    adds.push(Command::SetTunnel(set));
                    continue;
                }
                if other.is_some() || run_ports.contains_key(t.name.as_str()) {
                    dels.push(del_port(&t.name));
                }
                recreated.insert(t.name.clone());
                adds.push(Command::AddTunnel(cmd::AddTunnel::from_config(t)));
            }
        }
    }

    // A `del-port` takes the port's MACs, ACLs and policers with it.
    let port_deleted: HashSet<String> = dels
        .iter()
        .filter_map(|c| match c {
            Command::DelPort(d) => Some(d.name.clone()),
            _ => None,
        })
        .collect();

    // Static MACs.
    type Key<'a> = (&'a str, u16, MacAddr);
    fn key(f: &StaticFdbConfig) -> Key<'_> {
        (f.bridge.as_str(), f.vlan, f.mac)
    }
    let run_fdb: HashMap<Key, &Shared<StaticFdbConfig>> =
        running.fdb.iter().map(|f| (key(f), f)).collect();
    let new_fdb: HashSet<Key> = new.fdb.iter().map(|f| key(f)).collect();
    for f in &old.fdb {
        let k = key(f);
        if !new_fdb.contains(&k)
            && run_fdb.get(&k).is_some_and(|r| r == &f)
            && !gone_with_bridge(&f.bridge)
            && !port_deleted.contains(&f.port)
        {
            dels.push(Command::FdbDel(cmd::FdbDel {
                bridge: f.bridge.clone(),
                mac: f.mac,
                vlan: f.vlan,
                if_exists: true,
            }));
        }
    }
    for f in &new.fdb {
        let unchanged = run_fdb.get(&key(f)).is_some_and(|r| *r == f);
        if !unchanged || recreated.contains(&f.port) {
            adds.push(Command::FdbAdd(cmd::FdbAdd {
                bridge: f.bridge.clone(),
                mac: f.mac,
                port: f.port.clone(),
                vlan: f.vlan,
                remote: f.remote,
            }));
        }
    }

    // Firewall rules, per (port, direction) as a whole list.
    let acl_key = |a: &AclConfig| (a.port.clone(), a.dir);
    let run_acls: HashMap<(String, Direction), &Shared<AclConfig>> =
        running.acls.iter().map(|a| (acl_key(a), a)).collect();
    let new_acls: HashSet<(String, Direction)> = new.acls.iter().map(|a| acl_key(a)).collect();
    for a in &old.acls {
        let k = acl_key(a);
        if !new_acls.contains(&k)
            && run_acls.contains_key(&k)
            && !recreated.contains(&a.port)
            && !port_deleted.contains(&a.port)
        {
            dels.push(acl_del(&a.port, a.dir));
        }
    }
    for a in &new.acls {
        let run = run_acls.get(&acl_key(a));
        if !recreated.contains(&a.port) && run.is_some_and(|r| same_rules(&r.rules, &a.rules)) {
            continue;
        }
        if run.is_some() && !recreated.contains(&a.port) {
            adds.push(acl_del(&a.port, a.dir));
        }
        for text in &a.rules {
            if let Ok(r) = text.parse::<AclRule>() {
                adds.push(Command::AclAdd(cmd::AclAdd {
                    port: a.port.clone(),
                    dir: a.dir,
                    priority: r.priority,
                    matches: rule_matches(text),
                    action: r.action,
                }));
            }
        }
    }

    // Policers.
    let q_key = |q: &QosConfig| (q.port.clone(), q.dir);
    let run_qos: HashMap<(String, Direction), &Shared<QosConfig>> =
        running.qos.iter().map(|q| (q_key(q), q)).collect();
    let new_qos: HashSet<(String, Direction)> = new.qos.iter().map(|q| q_key(q)).collect();
    for q in &old.qos {
        let k = q_key(q);
        if !new_qos.contains(&k)
            && run_qos.contains_key(&k)
            && !recreated.contains(&q.port)
            && !port_deleted.contains(&q.port)
        {
            dels.push(Command::QosClear(cmd::QosClear {
                port: q.port.clone(),
                dir: Some(q.dir),
                if_exists: true,
            }));
        }
    }
    for q in &new.qos {
        let same = run_qos.get(&q_key(q)).is_some_and(|r| *r == q);
        if !same || recreated.contains(&q.port) {
            adds.push(Command::QosSet(cmd::QosSet {
                port: q.port.clone(),
                dir: q.dir,
                rate_bps: q.rate_bps,
                burst_bytes: q.burst_bytes,
                peak_bps: q.peak_bps,
            }));
        }
    }

    // Overlay addresses: only those the model installed are its to
    // replace or delete (the etcd agent may hold others).
    type AddrKey<'a> = (&'a str, u16, std::net::IpAddr);
    fn akey(a: &OverlayAddrConfig) -> AddrKey<'_> {
        (a.bridge.as_str(), a.vlan, a.ip)
    }
    let run_addrs: HashMap<AddrKey, &Shared<OverlayAddrConfig>> =
        running.addrs.iter().map(|a| (akey(a), a)).collect();
    let new_addrs: HashSet<AddrKey> = new.addrs.iter().map(|a| akey(a)).collect();
    for a in &old.addrs {
        let k = akey(a);
        if !new_addrs.contains(&k)
            && run_addrs.get(&k).is_some_and(|r| r.owner == a.owner)
            && !gone_with_bridge(&a.bridge)
        {
            dels.push(Command::ArpDel(cmd::ArpDel {
                bridge: a.bridge.clone(),
                ip: a.ip,
                vlan: a.vlan,
                if_exists: true,
            }));
        }
    }
    for a in &new.addrs {
        if run_addrs.get(&akey(a)).is_some_and(|r| *r == a) {
            continue;
        }
        adds.push(Command::ArpAdd(cmd::ArpAdd {
            bridge: a.bridge.clone(),
            ip: a.ip,
            mac: a.mac,
            vlan: a.vlan,
            owner: a.owner.clone(),
        }));
    }

    let mut out = dels;
    out.extend(adds);
    if !out.is_empty() || running.meta.get(META_KEY) != Some(record) {
        out.push(Command::MetaSet(cmd::MetaSet {
            key: META_KEY.into(),
            value: Some(record.clone()),
        }));
    }
    out
}

fn del_port(name: &str) -> Command {
    Command::DelPort(cmd::DelPort {
        name: name.to_string(),
        if_exists: true,
    })
}

fn acl_del(port: &str, dir: Direction) -> Command {
    Command::AclDel(cmd::AclDel {
        port: port.to_string(),
        dir,
        priority: None,
        matches: None,
        if_exists: true,
    })
}

fn same_port(a: &PortConfig, b: &PortConfig) -> bool {
    a.bridge == b.bridge
        && a.vlan == b.vlan
        && a.mtu == b.mtu
        && a.queues == b.queues
        && a.max_macs == b.max_macs
        && a.allowed_macs == b.allowed_macs
        && a.allowed_ips == b.allowed_ips
        && a.storm_pps == b.storm_pps
}

/// Equal in what the model sets (the port number is the daemon's).
fn same_tunnel(a: &TunnelConfig, b: &TunnelConfig) -> bool {
    let mut a = a.clone();
    a.number = b.number;
    a == *b
}

/// The same rules in any order (the firewall orders by priority).
fn same_rules(a: &[String], b: &[String]) -> bool {
    let parse = |v: &[String]| -> Option<BTreeSet<String>> {
        v.iter()
            .map(|t| t.parse::<AclRule>().ok().map(|r| format!("{r:?}")))
            .collect()
    };
    a.len() == b.len() && parse(a).is_some() && parse(a) == parse(b)
}

fn add_port(p: &PortConfig) -> Command {
    let (tag, trunks, native) = match &p.vlan {
        xvs_config::VlanMode::Access { tag } => (Some(*tag), None, None),
        xvs_config::VlanMode::Trunk { trunks, native } => (None, Some(trunks.clone()), *native),
    };
    Command::AddPort(cmd::AddPort {
        bridge: p.bridge.clone(),
        name: p.name.clone(),
        queues: (p.queues != 0).then_some(p.queues),
        tag: tag.filter(|t| *t != 0),
        trunks,
        native,
        mtu: (p.mtu != 1500).then_some(p.mtu),
        max_macs: p.max_macs,
        allowed_macs: p.allowed_macs.clone(),
        allowed_ips: p.allowed_ips.clone(),
        storm_pps: p.storm_pps,
        kind: p.kind.clone(),
        may_exist: false,
    })
}
