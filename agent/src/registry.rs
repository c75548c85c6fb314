//! What a host publishes in etcd (one JSON value per host key) and the
//! agent's picture of every registered host, rebuilt from a full read and
//! kept current from watch events.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use xvs_dataplane::tables::route::Prefix;
use xvs_dataplane::types::MacAddr;

use crate::config::AgentConfig;

/// The value under `<prefix>hosts/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub underlay_ip: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtep_mac: Option<MacAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<Prefix>,
    #[serde(default)]
    pub nets: Vec<NetRecord>,
}

/// One net a host takes part in, with its virts there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetRecord {
    pub name: String,
    pub vni: u32,
    #[serde(default)]
    pub virts: Vec<VirtRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtRecord {
    pub mac: MacAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
}

impl HostRecord {
    /// What this host publishes, from its config.
    pub fn from_config(c: &AgentConfig) -> HostRecord {
        HostRecord {
            underlay_ip: c.underlay_ip,
            vtep_mac: c.vtep_mac,
            subnet: c.subnet,
            nets: c
                .nets
                .iter()
                .map(|n| NetRecord {
                    name: n.name.clone(),
                    vni: n.vni,
                    virts: n
                        .virts
                        .iter()
                        .map(|v| VirtRecord {
                            mac: v.mac,
                            ip: v.ip,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a HostRecord always serializes")
    }
}

/// A registered host as last read: its record and the etcd revision that
/// last wrote it (the newer registration wins when two hosts claim one
/// MAC, which is what a virt moving between hosts looks like).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub record: HostRecord,
    pub mod_revision: i64,
}

/// Every registered host, by name.
pub type Registry = BTreeMap<String, Host>;

/// The host name in a key under `hosts_prefix`, if it is one.
pub fn host_name<'a>(hosts_prefix: &str, key: &'a [u8]) -> Option<&'a str> {
    let key = std::str::from_utf8(key).ok()?;
    let name = key.strip_prefix(hosts_prefix)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// Records a put; a value that does not parse is logged and the host
/// treated as absent (a host with a newer, incompatible agent must not
/// take the others down).
pub fn put(reg: &mut Registry, name: &str, value: &[u8], mod_revision: i64) {
    match serde_json::from_slice::<HostRecord>(value) {
        Ok(record) => {
            reg.insert(
                name.to_string(),
                Host {
                    record,
                    mod_revision,
                },
            );
        }
        Err(e) => {
            tracing::warn!(host = name, error = %e, "ignoring an unreadable host registration");
            reg.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_are_recognised() {
        let p = "/xvs/hosts/";
        assert_eq!(host_name(p, b"/xvs/hosts/hv1"), Some("hv1"));
        assert_eq!(host_name(p, b"/xvs/hosts/"), None);
        assert_eq!(host_name(p, b"/xvs/hosts/a/b"), None);
        assert_eq!(host_name(p, b"/xvs/other/hv1"), None);
    }

    #[test]
    fn record_round_trips_and_bad_values_are_dropped() {
        let r = HostRecord {
            underlay_ip: "192.0.2.1".parse().unwrap(),
            vtep_mac: None,
            subnet: Some("10.244.1.0/24".parse().unwrap()),
            nets: vec![NetRecord {
                name: "blue".into(),
                vni: 100,
                virts: vec![VirtRecord {
                    mac: "02:00:00:00:00:01".parse().unwrap(),
                    ip: Some("10.1.0.1".parse().unwrap()),
                }],
            }],
        };
        let mut reg = Registry::new();
        put(&mut reg, "hv1", r.to_json().as_bytes(), 7);
        assert_eq!(reg["hv1"].record, r);
        assert_eq!(reg["hv1"].mod_revision, 7);
        put(&mut reg, "hv1", b"{not json", 8);
        assert!(reg.is_empty());
    }
}
