//! Policy verbs: firewall rules (acl-add, acl-del) and policers
//! (qos-set, qos-clear).

use super::edit::*;
use super::*;

pub(super) fn acl_text(priority: u32, matches: &str, action: AclAction) -> String {
    let m = matches.trim().trim_matches(',');
    if m.is_empty() {
        format!("priority={priority},action={action}")
    } else {
        format!("priority={priority},{m},action={action}")
    }
}

pub(super) fn acl_add(config: &mut Config, c: &AclAdd) -> Result<(), CommandError> {
    need_port(config, &c.port)?;
    if c.matches.contains("action") || c.matches.contains("priority") {
        return Err(CommandError::Acl {
            text: c.matches.clone(),
            reason: "give the priority with --prio and the action with --action, not in the match"
                .into(),
        });
    }
    let text = acl_text(c.priority, &c.matches, c.action);
    let rule: AclRule =
        text.parse()
            .map_err(|e: xvs_types::acl::AclParseError| CommandError::Acl {
                text: c.matches.clone(),
                reason: e.to_string(),
            })?;
    let idx = config
        .acls
        .iter()
        .position(|a| a.port == c.port && a.dir == c.dir);
    let mut rules: Vec<String> = idx
        .map(|i| config.acls[i].rules.clone())
        .unwrap_or_default();
    let same = rules.iter().position(|t| {
        t.parse::<AclRule>()
            .is_ok_and(|r| r.priority == rule.priority && r.matches == rule.matches)
    });
    match same {
        Some(i) => rules[i] = text.clone(),
        None => rules.push(text.clone()),
    }
    // The LSDN restriction (one match shape per priority) is a property of
    // the whole list: check it now, so the message names this command.
    let parsed: Result<Vec<AclRule>, _> = rules.iter().map(|t| t.parse::<AclRule>()).collect();
    let parsed = parsed.map_err(|e| CommandError::Acl {
        text: c.matches.clone(),
        reason: format!(
            "an existing rule of {} {} does not parse: {e}",
            c.port, c.dir
        ),
    })?;
    if let Err(e) = acl::key_masks(&parsed) {
        return Err(CommandError::Acl {
            text,
            reason: format!(
                "conflicts with the rules of port {:?} {}: {e}",
                c.port, c.dir
            ),
        });
    }
    match idx {
        Some(i) => config.acls[i].rules = rules,
        None => config.acls.push(
            AclConfig {
                port: c.port.clone(),
                dir: c.dir,
                rules,
            }
            .into(),
        ),
    }
    Ok(())
}

pub(super) fn acl_del(config: &mut Config, c: &AclDel) -> Result<(), CommandError> {
    need_port(config, &c.port)?;
    let filter = match &c.matches {
        Some(m) if !m.trim().is_empty() => {
            let text = acl_text(c.priority.unwrap_or(0), m, AclAction::Allow);
            let r: AclRule =
                text.parse()
                    .map_err(|e: xvs_types::acl::AclParseError| CommandError::Acl {
                        text: m.clone(),
                        reason: e.to_string(),
                    })?;
            Some(r.matches)
        }
        _ => None,
    };
    let not_found = || CommandError::NotFound {
        what: format!(
            "ACL rule of port {:?} {}{}{}",
            c.port,
            c.dir,
            c.priority
                .map(|p| format!(" priority {p}"))
                .unwrap_or_default(),
            c.matches
                .as_ref()
                .map(|m| format!(" matching {m:?}"))
                .unwrap_or_default()
        ),
    };
    let Some(i) = config
        .acls
        .iter()
        .position(|a| a.port == c.port && a.dir == c.dir)
    else {
        return if c.if_exists {
            Ok(())
        } else {
            Err(not_found())
        };
    };
    let acl = &mut config.acls[i];
    let before = acl.rules.len();
    acl.rules.retain(|t| {
        let Ok(r) = t.parse::<AclRule>() else {
            return true;
        };
        let hit =
            c.priority.is_none_or(|p| p == r.priority) && filter.is_none_or(|m| m == r.matches);
        !hit
    });
    if acl.rules.len() == before && !c.if_exists {
        return Err(not_found());
    }
    if acl.rules.is_empty() {
        config.acls.remove(i);
    }
    Ok(())
}

pub(super) fn qos_set(config: &mut Config, c: &QosSet) -> Result<(), CommandError> {
    need_port(config, &c.port)?;
    if c.rate_bps == 0 {
        return Err(invalid(
            "rate",
            0,
            "a rate of zero passes nothing (use an ACL to drop)",
        ));
    }
    if c.burst_bytes == 0 {
        return Err(invalid("burst", 0, "a burst of zero passes nothing"));
    }
    if c.peak_bps == Some(0) {
        return Err(invalid("peak", 0, "a peak rate of zero passes nothing"));
    }
    // The same check the dataplane runs when it compiles the policer, so a
    // rate below 8 bit/s or a burst below one frame is refused here.
    PolicerConfig::new(c.rate_bps / 8, c.burst_bytes)
        .and_then(|p| match c.peak_bps {
            Some(peak) => p.with_peak(peak / 8),
            None => Ok(p),
        })
        .map_err(|e| CommandError::Refused(format!("policer for {:?} {}: {e}", c.port, c.dir)))?;
    let q = QosConfig {
        port: c.port.clone(),
        dir: c.dir,
        rate_bps: c.rate_bps,
        burst_bytes: c.burst_bytes,
        peak_bps: c.peak_bps,
    };
    match config
        .qos
        .iter_mut()
        .find(|x| x.port == c.port && x.dir == c.dir)
    {
        Some(x) => *x = q.into(),
        None => config.qos.push(q.into()),
    }
    Ok(())
}

pub(super) fn qos_clear(config: &mut Config, c: &QosClear) -> Result<(), CommandError> {
    need_port(config, &c.port)?;
    let before = config.qos.len();
    config
        .qos
        .retain(|q| !(q.port == c.port && c.dir.is_none_or(|d| d == q.dir)));
    if config.qos.len() == before && !c.if_exists {
        return Err(CommandError::NotFound {
            what: format!(
                "policer on {:?}{}",
                c.port,
                c.dir.map(|d| format!(" {d}")).unwrap_or_default()
            ),
        });
    }
    Ok(())
}
