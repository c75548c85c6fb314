//! Verbs of port mirrors (mirror-add, mirror-del), and what deleting a
//! port does to the mirrors that name it.

use super::edit::need_port;
use super::{invalid, CommandError, MirrorAdd, MirrorDel, MAY_EXIST};
use xvs_config::{check_name, Config, MirrorConfig};

pub(super) fn mirror_add(config: &mut Config, c: &MirrorAdd) -> Result<(), CommandError> {
    check_name(&c.name).map_err(|r| invalid("name", &c.name, r))?;
    if config.mirrors.iter().any(|m| m.name == c.name) {
        if c.may_exist {
            return Ok(());
        }
        return Err(CommandError::Exists {
            what: "mirror",
            name: c.name.clone(),
            hint: MAY_EXIST,
        });
    }
    if c.src.is_empty() {
        return Err(invalid("src", "(none)", "a mirror needs a source port"));
    }
    for s in &c.src {
        need_port(config, s)?;
    }
    need_port(config, &c.to)?;
    config.mirrors.push(
        MirrorConfig {
            name: c.name.clone(),
            src: c.src.clone(),
            dir: c.dir,
            to: c.to.clone(),
        }
        .into(),
    );
    Ok(())
}

pub(super) fn mirror_del(config: &mut Config, c: &MirrorDel) -> Result<(), CommandError> {
    let before = config.mirrors.len();
    config.mirrors.retain(|m| m.name != c.name);
    if config.mirrors.len() == before && !c.if_exists {
        return Err(CommandError::NotFound {
            what: format!("mirror {:?}", c.name),
        });
    }
    Ok(())
}

/// Ports `gone` leave the sources of every mirror; a mirror left with
/// none, or whose output is gone, goes too (Open vSwitch deletes a mirror
/// whose output port is removed).
pub(super) fn drop_mirror_refs(config: &mut Config, gone: &dyn Fn(&String) -> bool) {
    if !config
        .mirrors
        .iter()
        .any(|m| gone(&m.to) || m.src.iter().any(gone))
    {
        return;
    }
    config.mirrors.retain_mut(|m| {
        if gone(&m.to) {
            return false;
        }
        if m.src.iter().any(gone) {
            m.src.retain(|s| !gone(s));
        }
        !m.src.is_empty()
    });
}
