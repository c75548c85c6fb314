//! Bridge verbs: add-br, set-br, del-br (with what refers to its ports),
//! overlay addresses (arp-add, arp-del) and meta-set.

use super::edit::*;
use super::*;

pub(super) fn meta_set(config: &mut Config, c: &MetaSet) -> Result<(), CommandError> {
    if c.key.is_empty() || c.key.len() > 64 {
        return Err(invalid("meta key", format!("{:?}", c.key), "1 to 64 bytes"));
    }
    match &c.value {
        Some(v) => {
            config.meta.insert(c.key.clone(), v.clone());
        }
        None => {
            config.meta.remove(&c.key);
        }
    }
    Ok(())
}

pub(super) fn add_br(config: &mut Config, c: &AddBr) -> Result<(), CommandError> {
    check_name("bridge name", &c.name)?;
    if config.bridges.iter().any(|b| b.name == c.name) {
        if c.may_exist {
            return Ok(());
        }
        return Err(CommandError::Exists {
            what: "bridge",
            name: c.name.clone(),
            hint: MAY_EXIST,
        });
    }
    if c.fdb_max_entries == Some(0) {
        return Err(invalid("fdb_max_entries", 0, "must be at least 1"));
    }
    if c.fdb_aging_secs == Some(0) {
        return Err(invalid("fdb_aging_secs", 0, "must be at least 1"));
    }
    let mut b = BridgeConfig::new(c.name.clone());
    if let Some(n) = c.fdb_max_entries {
        b.fdb_max_entries = n;
    }
    if let Some(s) = c.fdb_aging_secs {
        b.fdb_aging_secs = s;
    }
    if let Some(l) = c.learning {
        b.learning = l;
    }
    if let Some(a) = c.arp_suppress {
        b.arp_suppress = a;
    }
    config.bridges.push(b.into());
    Ok(())
}

pub(super) fn arp_add(config: &mut Config, c: &ArpAdd) -> Result<(), CommandError> {
    need_bridge(config, &c.bridge)?;
    unicast_mac("mac", c.mac)?;
    unicast_ip("ip", c.ip)?;
    vlan_in_range("vlan", c.vlan, 0)?;
    if c.owner.as_deref() == Some("") {
        return Err(invalid("owner", "\"\"", "empty name"));
    }
    let entry = OverlayAddrConfig {
        bridge: c.bridge.clone(),
        vlan: c.vlan,
        ip: c.ip,
        mac: c.mac,
        owner: c.owner.clone(),
    };
    match config
        .addrs
        .iter_mut()
        .find(|a| a.bridge == c.bridge && a.vlan == c.vlan && a.ip == c.ip)
    {
        Some(a) => *a = entry.into(),
        None => config.addrs.push(entry.into()),
    }
    Ok(())
}

pub(super) fn arp_del(config: &mut Config, c: &ArpDel) -> Result<(), CommandError> {
    need_bridge(config, &c.bridge)?;
    let before = config.addrs.len();
    config
        .addrs
        .retain(|a| !(a.bridge == c.bridge && a.vlan == c.vlan && a.ip == c.ip));
    if config.addrs.len() == before && !c.if_exists {
        return Err(CommandError::NotFound {
            what: format!("address {} vlan {} in bridge {:?}", c.ip, c.vlan, c.bridge),
        });
    }
    Ok(())
}

pub(super) fn set_br(config: &mut Config, c: &SetBr) -> Result<(), CommandError> {
    let b = config
        .bridges
        .iter_mut()
        .find(|b| b.name == c.name)
        .ok_or_else(|| CommandError::NoBridge(c.name.clone()))?;
    if c.no_lookup && (c.lookup.is_some() || c.lookup_miss.is_some() || c.lookup_hold_ms.is_some())
    {
        return Err(CommandError::Refused(
            "no-lookup excludes lookup and lookup-miss".into(),
        ));
    }
    let tuning = c.lookup_miss.is_some() || c.lookup_hold_ms.is_some();
    let lookup = match (&c.lookup, &b.lookup) {
        _ if c.no_lookup => None,
        (Some(p), old) => Some(LookupConfig {
            provider: p.clone(),
            miss: c
                .lookup_miss
                .or(old.as_ref().map(|o| o.miss))
                .unwrap_or_default(),
            hold_ms: c
                .lookup_hold_ms
                .or(old.as_ref().map(|o| o.hold_ms))
                .unwrap_or(100),
        }),
        (None, Some(old)) if tuning => Some(LookupConfig {
            provider: old.provider.clone(),
            miss: c.lookup_miss.unwrap_or(old.miss),
            hold_ms: c.lookup_hold_ms.unwrap_or(old.hold_ms),
        }),
        (None, None) if tuning => {
            return Err(CommandError::Refused(format!(
                "bridge {:?} has no lookup: give lookup=PROVIDER too",
                c.name
            )))
        }
        (None, old) => old.clone(),
    };
    b.lookup = lookup;
    if let Some(l) = c.learning {
        b.learning = l;
    }
    if let Some(a) = c.arp_suppress {
        b.arp_suppress = a;
    }
    Ok(())
}

/// Removes what refers to the named ports: static MACs, ACLs, policers,
/// and their places in mirrors.
pub(super) fn drop_port_refs(config: &mut Config, names: &[String]) {
    let gone = |n: &String| names.contains(n);
    config.fdb.retain(|f| !gone(&f.port));
    config.acls.retain(|a| !gone(&a.port));
    config.qos.retain(|q| !gone(&q.port));
    super::mirrors::drop_mirror_refs(config, &gone);
}

pub(super) fn del_br(config: &mut Config, c: &DelBr) -> Result<(), CommandError> {
    if !config.bridges.iter().any(|b| b.name == c.name) {
        if c.if_exists {
            return Ok(());
        }
        return Err(CommandError::NotFound {
            what: format!("bridge {:?}", c.name),
        });
    }
    let names: Vec<String> = config
        .ports
        .iter()
        .filter(|p| p.bridge == c.name)
        .map(|p| p.name.clone())
        .chain(
            config
                .tunnels
                .iter()
                .filter(|t| t.bridge == c.name)
                .map(|t| t.name.clone()),
        )
        .collect();
    config.bridges.retain(|b| b.name != c.name);
    config.ports.retain(|p| p.bridge != c.name);
    config.tunnels.retain(|t| t.bridge != c.name);
    config.fdb.retain(|f| f.bridge != c.name);
    config.addrs.retain(|a| a.bridge != c.name);
    drop_port_refs(config, &names);
    Ok(())
}
