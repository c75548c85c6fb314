//! Port mirrors (Open vSwitch's `Mirror`, a switch's SPAN and remote
//! SPAN): which ports' frames are copied, in which direction, and to which
//! port or tunnel; and the checks of the mirrors of a whole config.
//!
//! A mirror's output is given over to it, as in Open vSwitch: the switch
//! forwards nothing else to it (floods skip it, no static MAC may point
//! at it) and drops what arrives on it, so an analyzer's own traffic never
//! reaches the bridge. That is why an output may not also be a source.

use std::fmt;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde::{Deserialize, Serialize};

use super::checks::check_name;
use super::validate::Report;
use super::Config;

/// Mirrors a config may hold: each is a copy per frame on its sources'
/// packet path, and the worker keeps a counter per mirror.
pub const MAX_MIRRORS: usize = 64;

/// Which frames of a source port a mirror copies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MirrorDir {
    /// Frames the port receives, as they enter the bridge.
    In,
    /// Frames the port sends, as they leave it (before any tunnel header).
    Out,
    #[default]
    Both,
}

impl MirrorDir {
    pub fn ingress(self) -> bool {
        self != MirrorDir::Out
    }

    pub fn egress(self) -> bool {
        self != MirrorDir::In
    }
}

impl fmt::Display for MirrorDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MirrorDir::In => "in",
            MirrorDir::Out => "out",
            MirrorDir::Both => "both",
        })
    }
}

/// One mirror: the frames `src` ports receive and/or send, copied out of
/// `to`: raw out of a local port, or encapsulated by a tunnel port to
/// each of its remote VTEPs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    pub name: String,
    /// Ports and tunnels whose frames are copied.
    pub src: Vec<String>,
    #[serde(default)]
    pub dir: MirrorDir,
    /// The port or tunnel the copies leave by.
    pub to: String,
}

impl Config {
    /// The names of the ports and tunnels that are some mirror's output.
    pub fn mirror_outputs(&self) -> HashSet<&str> {
        self.mirrors.iter().map(|m| m.to.as_str()).collect()
    }

    /// Mirrors: a valid name, unique; sources and output known ports or
    /// tunnels; no source twice; an output that is no mirror's source and
    /// that no static MAC points at. `ports` holds every port and tunnel
    /// name.
    pub(super) fn check_mirrors(&self, ports: &HashSet<&str>, e: &mut Report) {
        if self.mirrors.len() > MAX_MIRRORS {
            e(
                "mirrors".into(),
                format!(
                    "{} mirrors, at most {MAX_MIRRORS} are allowed",
                    self.mirrors.len()
                ),
            );
        }
        let sources: HashSet<&str> = self
            .mirrors
            .iter()
            .flat_map(|m| m.src.iter().map(String::as_str))
            .collect();
        let static_macs: HashMap<&str, usize> =
            self.fdb.iter().fold(HashMap::default(), |mut n, f| {
                *n.entry(f.port.as_str()).or_default() += 1;
                n
            });
        let mut names = HashSet::default();
        for m in &self.mirrors {
            let o = || format!("mirror {:?}", m.name);
            if let Err(r) = check_name(&m.name) {
                e(o(), r);
            }
            if !names.insert(m.name.as_str()) {
                e(o(), "defined twice".into());
            }
            if m.src.is_empty() {
                e(o(), "has no source port".into());
            }
            let mut seen = HashSet::default();
            for s in &m.src {
                if !ports.contains(s.as_str()) {
                    e(o(), format!("source {s:?} is not a port or tunnel"));
                } else if !seen.insert(s.as_str()) {
                    e(o(), format!("source {s:?} is given twice"));
                }
            }
            if !ports.contains(m.to.as_str()) {
                e(o(), format!("output {:?} is not a port or tunnel", m.to));
                continue;
            }
            if sources.contains(m.to.as_str()) {
                e(
                    o(),
                    format!(
                        "output {:?} is a mirror's source: a mirror's output carries nothing \
                         but its copies",
                        m.to
                    ),
                );
            }
            if let Some(n) = static_macs.get(m.to.as_str()) {
                e(
                    o(),
                    format!(
                        "output {:?} has {n} static MAC(s) pointing at it: a mirror's output \
                         carries nothing but its copies",
                        m.to
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::base;
    use super::super::{PortConfig, StaticFdbConfig};
    use super::*;

    fn problems(c: &Config) -> Vec<String> {
        match c.validate() {
            Ok(()) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    fn mirror(name: &str, src: &[&str], to: &str) -> MirrorConfig {
        MirrorConfig {
            name: name.into(),
            src: src.iter().map(|s| s.to_string()).collect(),
            dir: MirrorDir::Both,
            to: to.into(),
        }
    }

    #[test]
    fn a_mirror_of_known_ports_to_a_port_or_tunnel_is_valid() {
        let mut c = base();
        c.ports.push(PortConfig::new("span", "br0").into());
        c.mirrors.push(mirror("m1", &["vm1"], "span").into());
        c.mirrors.push(mirror("m2", &["vm1"], "vx1").into());
        assert_eq!(problems(&c), Vec::<String>::new());
        // And through TOML, as a config file states it.
        let text = toml::to_string(&c).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.mirrors, c.mirrors);
    }

    #[test]
    fn every_mirror_problem_is_named() {
        let mut c = base();
        c.ports.push(PortConfig::new("span", "br0").into());
        c.fdb.push(
            StaticFdbConfig {
                bridge: "br0".into(),
                vlan: 0,
                mac: "02:00:00:00:00:09".parse().unwrap(),
                port: "span".into(),
                remote: None,
            }
            .into(),
        );
        c.mirrors.push(mirror("m1", &[], "nope").into());
        c.mirrors
            .push(mirror("m1", &["vm1", "vm1", "ghost"], "span").into());
        c.mirrors.push(mirror("bad name!", &["span"], "vm1").into());
        assert_eq!(
            problems(&c),
            [
                "mirror \"m1\": has no source port",
                "mirror \"m1\": output \"nope\" is not a port or tunnel",
                "mirror \"m1\": defined twice",
                "mirror \"m1\": source \"vm1\" is given twice",
                "mirror \"m1\": source \"ghost\" is not a port or tunnel",
                "mirror \"m1\": output \"span\" is a mirror's source: a mirror's output carries \
                 nothing but its copies",
                "mirror \"m1\": output \"span\" has 1 static MAC(s) pointing at it: a mirror's \
                 output carries nothing but its copies",
                "mirror \"bad name!\": name contains ' ' (no whitespace, control characters or \
                 / , = : \")",
                "mirror \"bad name!\": output \"vm1\" is a mirror's source: a mirror's output \
                 carries nothing but its copies",
            ]
        );
    }

    #[test]
    fn a_config_with_mirrors_is_revalidated_whole_and_agrees() {
        let mut c = base();
        c.ports.push(PortConfig::new("span", "br0").into());
        let valid = c.clone().validated().unwrap();
        // Adding a mirror, then removing the port it names: the second
        // is refused, as the whole validation refuses it.
        let mut with = c.clone();
        with.mirrors.push(mirror("m1", &["vm1"], "span").into());
        let valid = valid.revalidate(with.clone()).unwrap();
        let mut without_port = with.clone();
        without_port.ports.retain(|p| p.name != "span");
        let err = valid.revalidate(without_port.clone()).unwrap_err();
        assert_eq!(Err(err), without_port.validate());
    }
}
