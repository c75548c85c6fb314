//! The declarative network model (LSDN's netmodel): settings, nets,
//! physes (hypervisors) and virts (VM interfaces), read from a TOML or JSON
//! file that every host can be given unchanged.
//!
//! [`validate`](validate::validate) lists every violation of the model at
//! once; [`compile`](compile::compile) turns a valid model, seen from one
//! phys (`--local`), into the xvs objects that host needs (bridges, ports,
//! tunnel ports, static MACs, firewall rules, policers, the uplink);
//! [`diff`](diff::diff) turns the change from what the model installed last
//! time into the smallest list of ordinary [`Command`](crate::command::Command)s,
//! applied as one transaction. The model that was applied is recorded in
//! the config's `meta` (key [`META_KEY`]), so `model show` can print it and
//! the next apply knows which objects are the model's to change or delete:
//! objects added by hand or by another control plane are left alone.
//!
//! Example (docs/network-model.md has the full reference):
//!
//! ```toml
//! [settings.vx]
//! type = "vxlan/e2e"
//! port = 4789
//!
//! [[net]]
//! name = "blue"
//! vni = 100
//! settings = "vx"
//!
//! [[phys]]
//! name = "hv1"
//! iface = "eth0"
//! ip = "192.0.2.1"
//! nets = ["blue"]
//!
//! [[virt]]
//! name = "web1"
//! net = "blue"
//! phys = "hv1"
//! iface = "tap-web1"
//! mac = "02:00:00:00:01:01"
//! ip = "10.1.0.1"
//! ```

pub mod cli;
pub mod compile;
pub mod diff;
pub mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use xvs_types::MacAddr;

pub use compile::compile;
pub use diff::diff;
pub use validate::{validate, Violation};

/// Key of the applied model in the config's `meta`, and the owner tag of
/// the overlay addresses it installs.
pub const META_KEY: &str = "model";

/// The whole model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Named settings nets refer to.
    #[serde(default)]
    pub settings: BTreeMap<String, Settings>,
    #[serde(default, rename = "net", skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<Net>,
    #[serde(default, rename = "phys", skip_serializing_if = "Vec::is_empty")]
    pub physes: Vec<Phys>,
    #[serde(default, rename = "virt", skip_serializing_if = "Vec::is_empty")]
    pub virts: Vec<Virt>,
}

/// How a net is carried between physes (LSDN's settings types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NetType {
    /// VXLAN, MACs and VTEPs all from the model, no learning; broadcast and
    /// unknown unicast replicated to every phys of the net.
    #[serde(rename = "vxlan/static")]
    VxlanStatic,
    /// VXLAN end to end: head-end replication to every phys of the net plus
    /// MAC learning.
    #[serde(rename = "vxlan/e2e")]
    VxlanE2e,
    /// VXLAN with flooding to a multicast group (RFC 7348 §4.2) plus
    /// learning.
    #[serde(rename = "vxlan/mcast")]
    VxlanMcast,
    /// Geneve, static like `vxlan/static`.
    #[serde(rename = "geneve")]
    Geneve,
    /// 802.1Q: the net is a VLAN (VID = the net's `vni`) on the phys
    /// interface itself, no tunnel.
    #[serde(rename = "vlan")]
    Vlan,
    /// The phys interface carries the net untagged: no isolation, one such
    /// net per phys.
    #[serde(rename = "direct")]
    Direct,
}

impl NetType {
    /// Carried in a UDP tunnel between physes (needs phys IPs, a VNI, a port).
    pub fn is_tunnel(self) -> bool {
        !matches!(self, NetType::Vlan | NetType::Direct)
    }

    pub fn is_vxlan(self) -> bool {
        matches!(
            self,
            NetType::VxlanStatic | NetType::VxlanE2e | NetType::VxlanMcast
        )
    }

    /// MACs and VTEPs come from the model only (no learning).
    pub fn is_static(self) -> bool {
        matches!(self, NetType::VxlanStatic | NetType::Geneve)
    }

    /// Default UDP destination port.
    pub fn default_port(self) -> Option<u16> {
        match self {
            t if t.is_vxlan() => Some(4789),
            NetType::Geneve => Some(6081),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            NetType::VxlanStatic => "vxlan/static",
            NetType::VxlanE2e => "vxlan/e2e",
            NetType::VxlanMcast => "vxlan/mcast",
            NetType::Geneve => "geneve",
            NetType::Vlan => "vlan",
            NetType::Direct => "direct",
        }
    }
}

impl fmt::Display for NetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One settings entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(rename = "type")]
    pub kind: NetType,
    /// UDP destination port (tunnel types; default 4789 / 6081).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Multicast group (`vxlan/mcast` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<IpAddr>,
    /// Answer ARP requests and neighbor solicitations for the virts' IPs
    /// on the local host instead of flooding them (default on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arp_suppress: Option<bool>,
}

impl Settings {
    pub fn udp_port(&self) -> Option<u16> {
        self.port.or(self.kind.default_port())
    }

    pub fn suppresses_arp(&self) -> bool {
        self.arp_suppress.unwrap_or(true)
    }
}

/// A virtual network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Net {
    pub name: String,
    /// VNI (tunnel types) or VLAN ID (`vlan`); absent for `direct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    pub settings: String,
}

/// A physical host (hypervisor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phys {
    pub name: String,
    /// The underlay interface (tunnel nets) or the interface that carries
    /// `vlan` / `direct` nets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    /// Underlay address (the VTEP), mandatory for tunnel nets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Nets this phys is attached to (LSDN's `lsdn_phys_attach`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<String>,
}

/// A VM interface in a net, optionally connected to a phys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Virt {
    pub name: String,
    pub net: String,
    /// Where the VM runs; absent = not connected anywhere (yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phys: Option<String>,
    /// The VM's interface on that phys (a tap or veth the switch owns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// The VM's overlay address (for ARP/ND answered by the switch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Firewall rules, switch view: `ingress` = what the VM sends,
    /// `egress` = what is delivered to it. xvs ACL syntax, e.g.
    /// `priority=10,tcp,tp_dst=22,action=drop`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<String>,
    /// Policer on what the VM sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_ingress: Option<Rate>,
    /// Policer on what is delivered to the VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_egress: Option<Rate>,
}

/// A policer in tc units (`100mbit`, `64kb`), LSDN's avg/burst/peak.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub avg: String,
    pub burst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak: Option<String>,
}

/// Why a model file could not be read (before any validation).
#[derive(Debug, thiserror::Error)]
pub enum ModelLoadError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
}

impl Model {
    /// Reads a model: JSON if the file name ends in `.json`, TOML otherwise.
    pub fn load(path: &Path) -> Result<Model, ModelLoadError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ModelLoadError::Io {
            path: p.clone(),
            source,
        })?;
        let json = path.extension().is_some_and(|e| e == "json");
        Model::parse(&text, json).map_err(|message| ModelLoadError::Parse { path: p, message })
    }

    /// Parses model text; the error says where (line and column for TOML,
    /// the field path for JSON).
    pub fn parse(text: &str, json: bool) -> Result<Model, String> {
        if json {
            let de = &mut serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = e.path().to_string();
                format!("{}: {}", path, e.into_inner())
            })
        } else {
            toml::from_str(text).map_err(|e| e.to_string())
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    pub fn net(&self, name: &str) -> Option<&Net> {
        self.nets.iter().find(|n| n.name == name)
    }

    pub fn phys(&self, name: &str) -> Option<&Phys> {
        self.physes.iter().find(|p| p.name == name)
    }

    /// The settings of a net, if both exist.
    pub fn net_settings(&self, net: &str) -> Option<&Settings> {
        self.net(net).and_then(|n| self.settings.get(&n.settings))
    }
}

/// What `model apply` records in the config (`meta.model`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub local: String,
    pub model: Model,
}

impl Record {
    /// The record in a config, if it has one that parses.
    pub fn of(config: &xvs_config::Config) -> Option<Record> {
        config
            .meta
            .get(META_KEY)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

#[cfg(test)]
pub(crate) mod tests;
