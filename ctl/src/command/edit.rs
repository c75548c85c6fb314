//! The transaction: [`apply`] (one command), [`apply_all`] and
//! [`edit_all`] (every command on a copy, then validation), [`attribute`]
//! (whole-config problems named by the command that caused them), the
//! editor that dispatches each command to its verb, and the checks verbs
//! share (names, addresses, VLANs, tunnel fields).

use super::bridges::*;
use super::flows::*;
use super::mirrors::*;
use super::policy::*;
use super::ports::*;
use super::underlay::*;
use super::*;

/// Applies one command to `config`. On error the config is unchanged.
pub fn apply(cmd: &Command, config: &mut Config) -> Result<(), CommandError> {
    let mut ed = Editor::new(config);
    let r = ed.apply(cmd);
    ed.finish();
    r
}

/// A transaction: applies `cmds` in order to a copy of `config`, then
/// validates the copy whole. Returns the new config, or every problem,
/// each with the 1-based index and label of the command it comes from
/// (`command 3 (add-tunnel vx1): VNI 16777216 out of range 0..=16777215`).
/// A failing command is skipped and the others still run, so independent
/// mistakes are all reported at once; `config` itself is never touched.
pub fn apply_all(cmds: &[Command], config: &Config) -> Result<Config, Vec<String>> {
    let (new, mut problems) = edit_all(cmds, config);
    if let Err(errs) = new.validate() {
        problems.extend(attribute(cmds, &errs));
    }
    if problems.is_empty() {
        Ok(new)
    } else {
        Err(problems)
    }
}

/// [`apply_all`] without the whole-config validation, for a caller that
/// validates the result itself (xvsd, once, before applying it): `cmds`
/// applied to a copy of `config`, port numbers assigned, and the problems
/// of the commands that could not be applied.
pub fn edit_all(cmds: &[Command], config: &Config) -> (Config, Vec<String>) {
    let mut new = config.clone();
    let mut problems = Vec::new();
    {
        let mut ed = Editor::new(&mut new);
        for (i, c) in cmds.iter().enumerate() {
            if let Err(e) = ed.apply(c) {
                problems.push(format!("command {} ({}): {e}", i + 1, c.label()));
            }
        }
        ed.finish();
    }
    new.assign_port_numbers();
    (new, problems)
}

/// Formats whole-config problems (from [`Config::validate`], or from the
/// daemon compiling the config) with the command that most likely caused
/// each: the last one naming the object. The daemon should format the
/// errors of its own compile step with this too.
pub fn attribute(cmds: &[Command], errs: &ConfigErrors) -> Vec<String> {
    let subjects: Vec<Vec<String>> = cmds.iter().map(Command::subjects).collect();
    errs.0
        .iter()
        .map(|e| {
            let text = e.to_string();
            let who = subjects
                .iter()
                .enumerate()
                .rev()
                .find(|(_, subj)| subj.iter().any(|s| e.object.contains(s.as_str())));
            match who {
                Some((i, _)) => format!("command {} ({}): {text}", i + 1, cmds[i].label()),
                None => format!("config: {text}"),
            }
        })
        .collect()
}

type FdbKey = (String, u16, MacAddr);

/// Static MACs opened for fast edits: a transaction of 100,000 `fdb-add`s
/// must not scan the list once per entry. Deleted slots are `None` until
/// the list is written back.
#[derive(Debug)]
pub(super) struct FdbEdit {
    slots: Vec<Option<Shared<StaticFdbConfig>>>,
    index: HashMap<FdbKey, usize>,
}

/// Applies commands to a config. Holds the FDB index between consecutive
/// FDB commands; any other command writes it back first.
#[derive(Debug)]
pub(super) struct Editor<'a> {
    config: &'a mut Config,
    fdb: Option<FdbEdit>,
}

impl<'a> Editor<'a> {
    fn new(config: &'a mut Config) -> Self {
        Editor { config, fdb: None }
    }

    fn finish(&mut self) {
        if let Some(f) = self.fdb.take() {
            self.config.fdb = f.slots.into_iter().flatten().collect();
        }
    }

    fn fdb_edit(&mut self) -> &mut FdbEdit {
        let config = &mut *self.config;
        self.fdb.get_or_insert_with(|| {
            let slots: Vec<Option<Shared<StaticFdbConfig>>> = std::mem::take(&mut config.fdb)
                .into_iter()
                .map(Some)
                .collect();
            let index = slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.as_ref().map(|f| ((f.bridge.clone(), f.vlan, f.mac), i)))
                .collect();
            FdbEdit { slots, index }
        })
    }

    fn apply(&mut self, cmd: &Command) -> Result<(), CommandError> {
        match cmd {
            Command::FdbAdd(c) => return self.fdb_add(c),
            Command::FdbDel(c) => return self.fdb_del(c),
            _ => self.finish(),
        }
        let config = &mut *self.config;
        match cmd {
            Command::AddBr(c) => add_br(config, c),
            Command::DelBr(c) => del_br(config, c),
            Command::SetBr(c) => set_br(config, c),
            Command::AddPort(c) => add_port(config, c),
            Command::AddTunnel(c) => add_tunnel(config, c),
            Command::SetTunnel(c) => set_tunnel(config, c),
            Command::SetPort(c) => set_port(config, c),
            Command::DelPort(c) => del_port(config, c),
            Command::SetUplink(c) => set_uplink(config, c),
            Command::ArpAdd(c) => arp_add(config, c),
            Command::ArpDel(c) => arp_del(config, c),
            Command::NeighSet(c) => neigh_set(config, c),
            Command::NeighFlush(c) => neigh_flush(config, c),
            Command::RouteAdd(c) => route_add(config, c),
            Command::RouteDel(c) => route_del(config, c),
            Command::AddFlow(c) => add_flow(config, c),
            Command::DelFlows(c) => del_flows(config, c),
            Command::AclAdd(c) => acl_add(config, c),
            Command::AclDel(c) => acl_del(config, c),
            Command::QosSet(c) => qos_set(config, c),
            Command::QosClear(c) => qos_clear(config, c),
            Command::MirrorAdd(c) => mirror_add(config, c),
            Command::MirrorDel(c) => mirror_del(config, c),
            Command::MetaSet(c) => meta_set(config, c),
            Command::FdbAdd(_) | Command::FdbDel(_) => Ok(()),
        }
    }

    fn fdb_add(&mut self, c: &FdbAdd) -> Result<(), CommandError> {
        let config = &*self.config;
        need_bridge(config, &c.bridge)?;
        unicast_mac("mac", c.mac)?;
        vlan_in_range("vlan", c.vlan, 0)?;
        match find_port(config, &c.port) {
            None => return Err(CommandError::NoPort(c.port.clone())),
            Some(p) if p.bridge != c.bridge => {
                return Err(CommandError::Refused(format!(
                    "port {:?} is in bridge {:?}, not {:?}",
                    c.port, p.bridge, c.bridge
                )))
            }
            Some(PortRef {
                tunnel: Some(t), ..
            }) => match c.remote {
                // Any unicast VTEP: beyond the tunnel's remotes it becomes
                // a dynamic remote (unicast only, never flooded to).
                Some(r) => {
                    unicast_ip("remote", r)?;
                    if t.remotes
                        .first()
                        .is_some_and(|f| f.is_ipv4() != r.is_ipv4())
                    {
                        return Err(invalid(
                            "remote",
                            r,
                            format!("not of the address family of tunnel {:?}", t.name),
                        ));
                    }
                }
                None if t.group().is_some() => {
                    return Err(CommandError::Refused(format!(
                        "tunnel {:?} is a multicast tunnel: say which VTEP with --remote",
                        t.name
                    )))
                }
                None if t.remotes.len() > 1 => {
                    return Err(CommandError::Refused(format!(
                        "tunnel {:?} has {} remotes: say which with --remote",
                        t.name,
                        t.remotes.len()
                    )))
                }
                _ => {}
            },
            Some(PortRef { tunnel: None, .. }) => {
                if let Some(r) = c.remote {
                    return Err(invalid(
                        "remote",
                        r,
                        format!("{:?} is a local port, not a tunnel", c.port),
                    ));
                }
            }
        }
        let entry = StaticFdbConfig {
            bridge: c.bridge.clone(),
            vlan: c.vlan,
            mac: c.mac,
            port: c.port.clone(),
            remote: c.remote,
        };
        let f = self.fdb_edit();
        match f.index.get(&(c.bridge.clone(), c.vlan, c.mac)) {
            Some(&i) => f.slots[i] = Some(entry.into()),
            None => {
                f.index
                    .insert((c.bridge.clone(), c.vlan, c.mac), f.slots.len());
                f.slots.push(Some(entry.into()));
            }
        }
        Ok(())
    }

    fn fdb_del(&mut self, c: &FdbDel) -> Result<(), CommandError> {
        need_bridge(self.config, &c.bridge)?;
        let f = self.fdb_edit();
        match f.index.remove(&(c.bridge.clone(), c.vlan, c.mac)) {
            Some(i) => {
                f.slots[i] = None;
                Ok(())
            }
            None if c.if_exists => Ok(()),
            None => Err(CommandError::NotFound {
                what: format!(
                    "static MAC {} vlan {} in bridge {:?}",
                    c.mac, c.vlan, c.bridge
                ),
            }),
        }
    }
}

/// A port or tunnel found by name.
pub(super) struct PortRef<'c> {
    pub(super) bridge: &'c str,
    pub(super) number: Option<PortNo>,
    pub(super) tunnel: Option<&'c TunnelConfig>,
}

pub(super) fn find_port<'c>(config: &'c Config, name: &str) -> Option<PortRef<'c>> {
    if let Some(p) = config.ports.iter().find(|p| p.name == name) {
        return Some(PortRef {
            bridge: &p.bridge,
            number: p.number,
            tunnel: None,
        });
    }
    config
        .tunnels
        .iter()
        .find(|t| t.name == name)
        .map(|t| PortRef {
            bridge: &t.bridge,
            number: t.number,
            tunnel: Some(t),
        })
}

/// What a name is already used for, if anything (one namespace across
/// ports, tunnels and the uplink).
pub(super) fn name_used(config: &Config, name: &str) -> Option<(&'static str, String)> {
    if let Some(p) = config.ports.iter().find(|p| p.name == name) {
        return Some(("port", p.bridge.clone()));
    }
    if let Some(t) = config.tunnels.iter().find(|t| t.name == name) {
        return Some(("tunnel", t.bridge.clone()));
    }
    if config.uplink.as_ref().is_some_and(|u| u.iface == name) {
        return Some(("uplink", String::new()));
    }
    None
}

pub(super) fn need_bridge(config: &Config, name: &str) -> Result<(), CommandError> {
    if config.bridges.iter().any(|b| b.name == name) {
        Ok(())
    } else {
        Err(CommandError::NoBridge(name.to_string()))
    }
}

pub(super) fn need_port(config: &Config, name: &str) -> Result<(), CommandError> {
    if find_port(config, name).is_some() {
        Ok(())
    } else {
        Err(CommandError::NoPort(name.to_string()))
    }
}

pub(super) fn unicast_mac(field: &'static str, mac: MacAddr) -> Result<(), CommandError> {
    if mac.is_multicast() || mac.is_zero() {
        Err(invalid(field, mac, "not a unicast MAC address"))
    } else {
        Ok(())
    }
}

/// The scalar fields add-tunnel and set-tunnel share, when given.
pub(super) fn check_tunnel_fields(
    vni: Option<u32>,
    local: Option<IpAddr>,
    dst_port: Option<u16>,
    ttl: Option<u8>,
) -> Result<(), CommandError> {
    if let Some(vni) = vni.filter(|v| *v > MAX_VNI) {
        return Err(invalid("VNI", vni, format!("out of range 0..={MAX_VNI}")));
    }
    if let Some(l) = local {
        unicast_ip("local", l)?;
    }
    if dst_port == Some(0) {
        return Err(invalid("dst_port", 0, "UDP port 0"));
    }
    if ttl == Some(0) {
        return Err(invalid("ttl", 0, "a TTL of 0 is never forwarded"));
    }
    Ok(())
}

/// A tunnel's remotes: unicast VTEPs, or one multicast group alone.
pub(super) fn check_remotes(remotes: &[IpAddr]) -> Result<(), CommandError> {
    match remotes {
        [] => Err(invalid(
            "remote",
            "(none)",
            "at least one remote VTEP is required",
        )),
        [g] if g.is_multicast() => Ok(()),
        rs => {
            for r in rs {
                if r.is_multicast() {
                    return Err(invalid(
                        "remote",
                        r,
                        "a multicast group must be the tunnel's only remote",
                    ));
                }
                unicast_ip("remote", *r)?;
            }
            Ok(())
        }
    }
}

pub(super) fn unicast_ip(field: &'static str, ip: IpAddr) -> Result<(), CommandError> {
    if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
        Err(invalid(field, ip, "not a unicast address"))
    } else {
        Ok(())
    }
}

pub(super) fn vlan_in_range(field: &'static str, v: u16, min: u16) -> Result<(), CommandError> {
    if v < min || v > MAX_VLAN {
        Err(invalid(
            field,
            v,
            format!("VLAN out of range {min}..={MAX_VLAN}"),
        ))
    } else {
        Ok(())
    }
}

/// The shared name rule ([`xvs_config::check_name`]): xvsd
/// applies the same one to whole configs, so what a command may create is
/// exactly what a config file or the persisted state may hold.
pub(super) fn check_name(field: &'static str, name: &str) -> Result<(), CommandError> {
    xvs_config::check_name(name).map_err(|m| invalid(field, format!("{name:?}"), m))
}
