//! What a host publishes in etcd (one JSON value per host key) and the
//! agent's picture of every registered host, rebuilt from a full read and
//! kept current from watch events.
//!
//! A record is checked as it arrives against the rules xvsd applies to
//! what the agent would install from it ([`problems`]): xvsd validates a
//! transaction whole, so one host publishing, say, a loopback underlay
//! address would otherwise cut every host off. A refused record is
//! logged and counted once per version, and left out.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use xvs_config::{is_unicast_ip, is_unicast_mac, remote_vtep};
use xvs_types::MacAddr;
use xvs_types::Prefix;

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

/// What [`put`] made of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Recorded, and usable as it is.
    Taken,
    /// Not a record: logged, and the host treated as absent (a host with a
    /// newer, incompatible agent must not take the others down).
    Unreadable,
    /// Recorded, but with something xvsd would refuse ([`problems`]):
    /// logged and counted here, once per version of the record, and left
    /// out by [`crate::state::desired`] for as long as it stays so.
    Refused,
}

/// Records refused by [`put`] since the agent started.
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// How many host records [`put`] refused so far (every version counts).
pub fn refused_total() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// Records the value etcd holds for host `name` (at `mod_revision`), as
/// seen by the agent of `local`, and says what it made of it.
pub fn put(
    reg: &mut Registry,
    name: &str,
    value: &[u8],
    mod_revision: i64,
    local: &AgentConfig,
) -> Put {
    let record = match serde_json::from_slice::<HostRecord>(value) {
        Ok(record) => record,
        Err(e) => {
            tracing::warn!(host = name, error = %e, "ignoring an unreadable host registration");
            reg.remove(name);
            return Put::Unreadable;
        }
    };
    // Our own record is never installed here.
    let bad = if name == local.name {
        Vec::new()
    } else {
        problems(&record, local)
    };
    reg.insert(
        name.to_string(),
        Host {
            record,
            mod_revision,
        },
    );
    if bad.is_empty() {
        return Put::Taken;
    }
    let total = REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::warn!(
        host = name,
        revision = mod_revision,
        problems = %bad.join("; "),
        refused_total = total,
        "host registration left out: xvsd would refuse it (and with it every other host's entries)"
    );
    Put::Refused
}

/// What in `record` the local host's xvsd would refuse, by xvsd's own
/// rules (`xvs_config`, which validates every transaction):
/// the underlay IP as a remote VTEP of `local`'s tunnels (of their
/// family, not ours, loopback, multicast, unspecified or broadcast), and
/// in the nets `local` shares (same name and VNI) each virt's MAC as a
/// static FDB entry and IP as an overlay address. Nets `local` does not
/// share are not looked at, and a host that shares none has no problem:
/// nothing of it is installed here. Empty when the record can be applied.
pub fn problems(record: &HostRecord, local: &AgentConfig) -> Vec<String> {
    let mut out = Vec::new();
    let shared = || {
        record.nets.iter().filter(|net| {
            local
                .nets
                .iter()
                .any(|n| n.name == net.name && n.vni == net.vni)
        })
    };
    if shared().next().is_none() {
        // Nothing of it is installed here, not even its underlay IP.
        return out;
    }
    let ip = record.underlay_ip;
    match remote_vtep(&ip, &HashSet::from([local.underlay_ip])) {
        Err(why) => out.push(format!("underlay_ip {ip} {why}")),
        Ok(()) if ip.is_ipv4() != local.underlay_ip.is_ipv4() => out.push(format!(
            "underlay_ip {ip} is not of our underlay's family ({})",
            local.underlay_ip
        )),
        Ok(()) => {}
    }
    for net in shared() {
        for v in &net.virts {
            if !is_unicast_mac(&v.mac) {
                out.push(format!(
                    "net {:?}: virt MAC {} is not a unicast MAC",
                    net.name, v.mac
                ));
            }
            if let Some(vip) = v.ip.filter(|a| !is_unicast_ip(a)) {
                out.push(format!(
                    "net {:?}: virt IP {vip} is not a unicast address",
                    net.name
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::host;

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
        let local = host(9, &[]);
        let mut reg = Registry::new();
        assert_eq!(
            put(&mut reg, "hv1", r.to_json().as_bytes(), 7, &local),
            Put::Taken
        );
        assert_eq!(reg["hv1"].record, r);
        assert_eq!(reg["hv1"].mod_revision, 7);
        assert_eq!(
            put(&mut reg, "hv1", b"{not json", 8, &local),
            Put::Unreadable
        );
        assert!(reg.is_empty());
    }

    /// hv2's record as hv1 (192.0.2.1, net blue VNI 100) would read it,
    /// spoiled by `spoil`.
    fn spoilt(spoil: impl FnOnce(&mut HostRecord)) -> HostRecord {
        let mut r = HostRecord::from_config(&host(2, &[21]));
        spoil(&mut r);
        r
    }

    #[test]
    fn records_xvsd_would_refuse_are_refused_with_every_reason() {
        let local = host(1, &[11]);
        let ip = |r: &mut HostRecord, a: &str| r.underlay_ip = a.parse().unwrap();
        let cases: Vec<(HostRecord, &str)> = vec![
            (
                spoilt(|r| ip(r, "2001:db8::2")),
                "not of our underlay's family",
            ),
            (spoilt(|r| ip(r, "239.1.1.1")), "multicast"),
            (spoilt(|r| ip(r, "0.0.0.0")), "unspecified"),
            (spoilt(|r| ip(r, "127.0.0.2")), "loopback"),
            (spoilt(|r| ip(r, "255.255.255.255")), "broadcast"),
            (spoilt(|r| ip(r, "192.0.2.1")), "own VTEP address"),
            (
                spoilt(|r| r.nets[0].virts[0].mac = MacAddr([1, 0, 0x5e, 0, 0, 1])),
                "virt MAC 01:00:5e:00:00:01 is not a unicast MAC",
            ),
            (
                spoilt(|r| r.nets[0].virts[0].mac = MacAddr([0; 6])),
                "virt MAC 00:00:00:00:00:00",
            ),
            (
                spoilt(|r| r.nets[0].virts[0].ip = Some("224.0.0.1".parse().unwrap())),
                "virt IP 224.0.0.1 is not a unicast address",
            ),
        ];
        for (r, why) in cases {
            let p = problems(&r, &local);
            assert!(
                p.len() == 1 && p[0].contains(why),
                "{why}: {p:?} for {}",
                r.to_json()
            );
            let mut reg = Registry::new();
            let before = refused_total();
            assert_eq!(
                put(&mut reg, "hv2", r.to_json().as_bytes(), 3, &local),
                Put::Refused,
                "{why}"
            );
            assert!(refused_total() > before);
            // Kept as read (a later version may mend it), left out of
            // what is installed.
            assert_eq!(reg["hv2"].record, r);
        }
        // Two problems at once: both said.
        let r = spoilt(|r| {
            ip(r, "127.0.0.2");
            r.nets[0].virts[0].mac = MacAddr([0xff; 6]);
        });
        assert_eq!(problems(&r, &local).len(), 2);
    }

    #[test]
    fn only_what_would_be_installed_is_checked() {
        let local = host(1, &[11]);
        // A net we do not share, or share under another VNI, installs
        // nothing here: its virts are not ours to judge.
        for (name, vni) in [("green", 100), ("blue", 101)] {
            let r = spoilt(|r| {
                r.nets[0].name = name.into();
                r.nets[0].vni = vni;
                r.nets[0].virts[0].mac = MacAddr([0xff; 6]);
            });
            assert!(problems(&r, &local).is_empty(), "{name} {vni}");
        }
        // Nor is a host that shares no net with us: an IPv6 underlay
        // there is none of our business.
        let r = spoilt(|r| {
            r.underlay_ip = "2001:db8::2".parse().unwrap();
            r.nets[0].vni = 101;
        });
        assert!(problems(&r, &local).is_empty());
        // Our own record carries our own address: never refused.
        let own = HostRecord::from_config(&local);
        let mut reg = Registry::new();
        assert_eq!(
            put(&mut reg, "hv1", own.to_json().as_bytes(), 1, &local),
            Put::Taken
        );
        // The good record is taken.
        let good = spoilt(|_| {});
        assert!(problems(&good, &local).is_empty());
        assert_eq!(
            put(&mut reg, "hv2", good.to_json().as_bytes(), 2, &local),
            Put::Taken
        );
    }
}
