//! The agent's config file (TOML): where etcd is, who this host is, and
//! which nets it takes part in with which local virts. Loaded whole and
//! checked whole (every problem listed), so a bad edit while running is
//! reported and the last good config stays in force.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use xvs_config::{TunnelKind, MAX_VNI};
use xvs_types::MacAddr;
use xvs_types::Prefix;

/// Default key prefix under which hosts register.
pub const DEFAULT_PREFIX: &str = "/xvs/";
/// Default lease TTL: a dead host disappears from the others after this.
pub const DEFAULT_LEASE_TTL_SECS: u64 = 10;

fn default_endpoints() -> Vec<String> {
    vec!["http://127.0.0.1:2379".into()]
}
fn default_prefix() -> String {
    DEFAULT_PREFIX.into()
}
fn default_ttl() -> u64 {
    DEFAULT_LEASE_TTL_SECS
}
fn default_socket() -> PathBuf {
    PathBuf::from(xvs_ctl::protocol::DEFAULT_SOCKET)
}
fn default_resync() -> u64 {
    5
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// etcd client URLs (`http://HOST:PORT`).
    #[serde(default = "default_endpoints")]
    pub etcd_endpoints: Vec<String>,
    /// Key prefix; hosts register at `<prefix>hosts/<name>`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// This host's name, unique among the hosts sharing the prefix.
    pub name: String,
    /// This host's VTEP address: what the others send tunnel packets to.
    pub underlay_ip: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtep_mac: Option<MacAddr>,
    /// The overlay subnet this host's virts live in (flannel style);
    /// published for the others, and used for nothing else yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<Prefix>,
    #[serde(default = "default_ttl")]
    pub lease_ttl_secs: u64,
    /// xvsd's control socket.
    #[serde(default = "default_socket")]
    pub xvsd_socket: PathBuf,
    /// How often the agent checks xvsd against what it should hold
    /// (repairs a restarted or hand-edited xvsd).
    #[serde(default = "default_resync")]
    pub resync_secs: u64,
    #[serde(default)]
    pub nets: Vec<NetConfig>,
}

/// One virtual network this host takes part in, and where it lives in the
/// local xvsd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    pub name: String,
    pub vni: u32,
    /// The xvsd bridge of this net (must exist in xvsd).
    pub bridge: String,
    /// The xvsd tunnel port of this net; the agent creates it when
    /// missing and owns its flood list and its static FDB entries.
    pub tunnel: String,
    /// Tunnel type when the agent creates the port.
    #[serde(default = "default_kind")]
    pub kind: TunnelKind,
    /// Lazy mode (varpd's etcd provider): install the static MACs and
    /// overlay addresses of remote virts only once xvsd asks for them
    /// (the bridge's lookup provider must be `external`), then keep them
    /// current like the others. The flood list is always installed.
    #[serde(default)]
    pub lookup: bool,
    #[serde(default)]
    pub virts: Vec<VirtConfig>,
}

fn default_kind() -> TunnelKind {
    TunnelKind::Vxlan
}

/// A local virtual machine (or container) on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtConfig {
    pub mac: MacAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Its xvsd port (informational: published, not acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {}", .problems.join("; "))]
    Invalid { path: String, problems: Vec<String> },
}

impl AgentConfig {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let cfg = AgentConfig::parse(&text).map_err(|message| ConfigError::Parse {
            path: shown.clone(),
            message,
        })?;
        cfg.validate().map_err(|problems| ConfigError::Invalid {
            path: shown,
            problems,
        })?;
        Ok(cfg)
    }

    /// Parses TOML text (no validation).
    pub fn parse(text: &str) -> Result<AgentConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Every problem at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut p = Vec::new();
        if self.etcd_endpoints.is_empty() {
            p.push("etcd_endpoints: at least one endpoint is required".into());
        }
        if self.prefix.is_empty() || !self.prefix.ends_with('/') {
            p.push(format!("prefix {:?}: must end with '/'", self.prefix));
        }
        if self.name.is_empty() || self.name.contains('/') {
            p.push(format!(
                "name {:?}: must be non-empty, without '/'",
                self.name
            ));
        }
        if self.underlay_ip.is_unspecified() || self.underlay_ip.is_multicast() {
            p.push(format!(
                "underlay_ip {}: not a unicast address",
                self.underlay_ip
            ));
        }
        if !(2..=3600).contains(&self.lease_ttl_secs) {
            p.push(format!(
                "lease_ttl_secs {}: must be 2..=3600 (etcd's minimum is about 2 s)",
                self.lease_ttl_secs
            ));
        }
        if self.resync_secs == 0 {
            p.push("resync_secs: must be at least 1".into());
        }
        let mut names = BTreeSet::new();
        let mut vnis = BTreeSet::new();
        let mut bridges = BTreeSet::new();
        let mut tunnels = BTreeSet::new();
        for n in &self.nets {
            let o = format!("net {:?}", n.name);
            if !names.insert(&n.name) {
                p.push(format!("{o}: listed twice"));
            }
            if n.vni > MAX_VNI {
                p.push(format!("{o}: VNI {} out of range 0..={MAX_VNI}", n.vni));
            }
            if !vnis.insert(n.vni) {
                p.push(format!("{o}: VNI {} used by another net", n.vni));
            }
            if !bridges.insert(&n.bridge) {
                p.push(format!("{o}: bridge {:?} used by another net", n.bridge));
            }
            if !tunnels.insert(&n.tunnel) {
                p.push(format!("{o}: tunnel {:?} used by another net", n.tunnel));
            }
            let mut macs = BTreeSet::new();
            let mut ips = BTreeSet::new();
            for v in &n.virts {
                if v.mac.is_multicast() || v.mac.is_zero() {
                    p.push(format!("{o}: virt MAC {} is not unicast", v.mac));
                }
                if !macs.insert(v.mac) {
                    p.push(format!("{o}: virt MAC {} listed twice", v.mac));
                }
                if let Some(ip) = v.ip {
                    if !ips.insert(ip) {
                        p.push(format!("{o}: virt IP {ip} listed twice"));
                    }
                }
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(p)
        }
    }

    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_secs)
    }

    /// This host's key.
    pub fn host_key(&self) -> String {
        format!("{}hosts/{}", self.prefix, self.name)
    }

    /// The prefix every host key starts with.
    pub fn hosts_prefix(&self) -> String {
        format!("{}hosts/", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
etcd_endpoints = ["http://192.0.2.254:2379"]
name = "hv1"
underlay_ip = "192.0.2.1"
subnet = "10.244.1.0/24"
lease_ttl_secs = 3

[[nets]]
name = "blue"
vni = 100
bridge = "blue"
tunnel = "vx-blue"

[[nets.virts]]
mac = "02:00:00:00:01:01"
ip = "10.1.0.1"
port = "vm1"
"#;

    #[test]
    fn example_parses_with_defaults() {
        let c = AgentConfig::parse(EXAMPLE).unwrap();
        c.validate().unwrap();
        assert_eq!(c.prefix, "/xvs/");
        assert_eq!(c.host_key(), "/xvs/hosts/hv1");
        assert_eq!(c.nets[0].kind, TunnelKind::Vxlan);
        assert_eq!(c.nets[0].virts[0].port.as_deref(), Some("vm1"));
        assert_eq!(c.xvsd_socket, PathBuf::from("/run/xvs/xvsd.sock"));
    }

    #[test]
    fn every_problem_is_listed() {
        let mut c = AgentConfig::parse(EXAMPLE).unwrap();
        c.prefix = "/xvs".into();
        c.lease_ttl_secs = 1;
        let mut n = c.nets[0].clone();
        n.vni = 1 << 24;
        n.virts.push(n.virts[0].clone());
        c.nets.push(n);
        let p = c.validate().unwrap_err();
        let all = p.join("\n");
        for want in [
            "prefix",
            "lease_ttl_secs",
            "listed twice",
            "VNI 16777216 out of range",
            "bridge \"blue\" used by another net",
            "virt MAC 02:00:00:00:01:01 listed twice",
        ] {
            assert!(all.contains(want), "{want:?} missing in:\n{all}");
        }
    }

    #[test]
    fn the_documented_example_is_valid() {
        let text = include_str!("../../examples/xvs-agent.toml");
        let c = AgentConfig::parse(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.nets[0].virts.len(), 1);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = AgentConfig::parse(&format!("{EXAMPLE}\nbogus = 1\n")).unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }
}
