//! The agent's side of xvsd's control socket: read back what of the
//! etcd-owned [`State`] xvsd holds now, and turn a [`Diff`] into one
//! transaction of xvsctl commands.
//!
//! Ownership. The agent owns, per net of its config, the tunnel port's
//! flood list, every static FDB entry on that tunnel port that names a
//! remote VTEP, and in lazy nets the static entries pinning its local
//! virts to their ports (recorded in the config meta key [`PINS_META`]);
//! nothing else in xvsd is touched. Reading the owned part
//! back from xvsd (instead of trusting a record of what was sent) makes a
//! restarted xvsd, an agent restart and a hand edit all heal the same
//! way: the next reconcile diffs what is there against what should be.
//!
//! Overlay addresses (virt IP -> MAC, for xvsd's ARP suppression) are
//! installed with owner [`OWNER`]; only entries with that owner are read
//! back as ours, and an address someone else installed is left alone.
//!
//! A flood list changes in place with `set-tunnel` ([`set_tunnel`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use xvs_config::{Config, TunnelConfig, TunnelKind};
use xvs_ctl::client::{Client, ClientError};
use xvs_ctl::command::{AddTunnel, ArpAdd, ArpDel, Command, FdbAdd, FdbDel, MetaSet, SetTunnel};
use xvs_ctl::protocol::{Method, MissRow};

use crate::config::AgentConfig;
use crate::state::{self, AddrKey, Asked, Diff, FdbKey, FdbTarget, State, TunnelState};

/// The owner tag of the overlay addresses the agent installs.
pub const OWNER: &str = "etcd";

/// How long one call to xvsd may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The etcd-owned part of `cfg` for the nets of `local`. A net whose
/// bridge xvsd does not have is skipped (and named in the result's
/// second member), so one missing bridge does not block the others.
pub fn installed(cfg: &Config, local: &AgentConfig) -> (State, Vec<String>) {
    let pins = recorded_pins(cfg);
    let mut st = State::default();
    let mut missing = Vec::new();
    for net in &local.nets {
        if !cfg.bridges.iter().any(|b| b.name == net.bridge) {
            missing.push(net.bridge.clone());
            continue;
        }
        if let Some(t) = cfg.tunnels.iter().find(|t| t.name == net.tunnel) {
            st.tunnels.insert(
                t.name.clone(),
                TunnelState {
                    bridge: net.bridge.clone(),
                    vni: net.vni,
                    remotes: t.remotes.iter().copied().collect(),
                },
            );
        }
        for a in &cfg.addrs {
            if a.bridge == net.bridge && a.owner.as_deref() == Some(OWNER) {
                st.addrs.insert(
                    AddrKey {
                        bridge: a.bridge.clone(),
                        vlan: a.vlan,
                        ip: a.ip,
                    },
                    a.mac,
                );
            }
        }
        for f in &cfg.fdb {
            if f.bridge != net.bridge {
                continue;
            }
            let on_tunnel = f.port == net.tunnel && f.remote.is_some();
            let local_pin = f.remote.is_none() && pins.contains(&pin_of(f));
            if on_tunnel || local_pin {
                st.fdb.insert(
                    FdbKey {
                        bridge: f.bridge.clone(),
                        vlan: f.vlan,
                        mac: f.mac,
                    },
                    FdbTarget {
                        port: f.port.clone(),
                        remote: f.remote,
                    },
                );
            }
        }
    }
    (st, missing)
}

/// The config meta key under which the agent records the local pins it
/// installed (static entries on local ports look like the operator's
/// otherwise), written in the same transaction as the pins.
pub const PINS_META: &str = "etcd.pins";

/// A static entry pinning a local virt to its port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Pin {
    pub bridge: String,
    pub vlan: u16,
    pub mac: xvs_types::MacAddr,
    pub port: String,
}

fn pin_of(f: &xvs_config::StaticFdbConfig) -> Pin {
    Pin {
        bridge: f.bridge.clone(),
        vlan: f.vlan,
        mac: f.mac,
        port: f.port.clone(),
    }
}

/// The pins recorded in `cfg` (none if the record is missing or not ours).
fn recorded_pins(cfg: &Config) -> BTreeSet<Pin> {
    cfg.meta
        .get(PINS_META)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// The pins in `target`.
fn target_pins(target: &State) -> BTreeSet<Pin> {
    target
        .fdb
        .iter()
        .filter(|(_, t)| t.remote.is_none())
        .map(|(k, t)| Pin {
            bridge: k.bridge.clone(),
            vlan: k.vlan,
            mac: k.mac,
            port: t.port.clone(),
        })
        .collect()
}

/// `desired` restricted to the nets whose bridge exists in xvsd, less
/// the addresses another owner (the operator, the model) holds in `cfg`.
pub fn installable(desired: &State, missing_bridges: &[String], cfg: &Config) -> State {
    let ok = |b: &String| !missing_bridges.contains(b);
    let foreign = |k: &AddrKey| {
        cfg.addrs.iter().any(|a| {
            a.bridge == k.bridge
                && a.vlan == k.vlan
                && a.ip == k.ip
                && a.owner.as_deref() != Some(OWNER)
        })
    };
    State {
        tunnels: desired
            .tunnels
            .iter()
            .filter(|(_, t)| ok(&t.bridge))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        fdb: desired
            .fdb
            .iter()
            .filter(|(k, _)| ok(&k.bridge))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        addrs: desired
            .addrs
            .iter()
            .filter(|(k, _)| ok(&k.bridge) && !foreign(k))
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    }
}

/// The commands that take xvsd from `cfg` (whose owned part diffs to `d`)
/// to `target`, in one transaction: removals, then tunnels, then
/// additions. A tunnel that is no longer wanted keeps its last flood list
/// (xvsd requires at least one remote); its FDB entries go. A missing
/// tunnel port is created with the net's type and VNI, from our underlay IP.
pub fn commands(d: &Diff, cfg: &Config, target: &State, local: &AgentConfig) -> Vec<Command> {
    let mut out = Vec::new();
    for k in &d.fdb_del {
        out.push(Command::FdbDel(FdbDel {
            bridge: k.bridge.clone(),
            mac: k.mac,
            vlan: k.vlan,
            if_exists: true,
        }));
    }
    for k in &d.addrs_del {
        out.push(Command::ArpDel(ArpDel {
            bridge: k.bridge.clone(),
            ip: k.ip,
            vlan: k.vlan,
            if_exists: true,
        }));
    }
    let mut adds: BTreeMap<FdbKey, FdbTarget> = d.fdb_set.clone();
    for (name, t) in &d.tunnels_set {
        match cfg.tunnels.iter().find(|x| &x.name == name) {
            Some(existing) => {
                if set_tunnel(existing, &t.remotes, &mut out) {
                    // The old port took its static entries with it.
                    for (k, v) in target.fdb.iter().filter(|(_, v)| &v.port == name) {
                        adds.insert(k.clone(), v.clone());
                    }
                }
            }
            None => {
                let kind = local
                    .nets
                    .iter()
                    .find(|n| &n.tunnel == name)
                    .map(|n| n.kind)
                    .unwrap_or(TunnelKind::Vxlan);
                let mut tunnel = TunnelConfig::new(
                    name.clone(),
                    t.bridge.clone(),
                    kind,
                    t.vni,
                    t.remotes.iter().copied().collect(),
                );
                // What the others were told to send to.
                tunnel.local = Some(local.underlay_ip);
                out.push(Command::AddTunnel(AddTunnel::from_config(&tunnel)));
            }
        }
    }
    for (k, v) in adds {
        out.push(Command::FdbAdd(FdbAdd {
            bridge: k.bridge,
            mac: k.mac,
            port: v.port,
            vlan: k.vlan,
            remote: v.remote,
        }));
    }
    let pins = target_pins(target);
    if pins != recorded_pins(cfg) {
        out.push(Command::MetaSet(MetaSet {
            key: PINS_META.into(),
            value: (!pins.is_empty()).then(|| serde_json::to_value(&pins).expect("pins serialize")),
        }));
    }
    for (k, mac) in &d.addrs_set {
        out.push(Command::ArpAdd(ArpAdd {
            bridge: k.bridge.clone(),
            ip: k.ip,
            mac: *mac,
            vlan: k.vlan,
            owner: Some(OWNER.into()),
        }));
    }
    out
}

/// Replaces the flood list of an existing tunnel port in place
/// (`set-tunnel`: same port number, its static and learned MACs kept).
/// Returns whether the port was replaced instead, in which case its
/// static FDB entries must be added again (kept for a verb that cannot
/// edit in place; `set-tunnel` can).
pub fn set_tunnel(
    existing: &TunnelConfig,
    remotes: &BTreeSet<std::net::IpAddr>,
    out: &mut Vec<Command>,
) -> bool {
    out.push(Command::SetTunnel(SetTunnel {
        name: existing.name.clone(),
        remotes: Some(remotes.iter().copied().collect()),
        ..SetTunnel::default()
    }));
    false
}

/// Drains xvsd's lookup misses (bridges whose provider is `external`)
/// and returns what they ask for, in `bridges` only. Blocking.
pub fn poll_misses(socket: &Path, bridges: &[String]) -> Result<Vec<Asked>, ReconcileError> {
    let mut client = Client::connect(socket, CALL_TIMEOUT)?;
    let rows: Vec<MissRow> = client.call_as(&Method::LookupMisses)?;
    Ok(asked_of(&rows, bridges))
}

/// The questions in `rows` about `bridges`.
pub fn asked_of(rows: &[MissRow], bridges: &[String]) -> Vec<Asked> {
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| bridges.contains(&r.bridge)) {
        if let Some(mac) = r.mac {
            out.push(Asked::Mac(FdbKey {
                bridge: r.bridge.clone(),
                vlan: r.vlan,
                mac,
            }));
        }
        if let Some(ip) = r.ip {
            out.push(Asked::Ip(AddrKey {
                bridge: r.bridge.clone(),
                vlan: r.vlan,
                ip,
            }));
        }
    }
    out
}

/// What one reconcile did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The diff between what xvsd held and what it should hold.
    pub diff: Diff,
    /// Commands sent in the one transaction (0: nothing to do).
    pub commands: usize,
}

/// Why a reconcile did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Reads xvsd's config, diffs its etcd-owned part against `desired`
/// (cut down to what xvsd `asked` for on lazy nets) and applies the
/// difference as one transaction. Blocking.
pub fn reconcile(
    socket: &Path,
    local: &AgentConfig,
    desired: &State,
    asked: &BTreeSet<Asked>,
) -> Result<Applied, ReconcileError> {
    let desired = &state::restrict(desired, local, asked);
    let mut client = Client::connect(socket, CALL_TIMEOUT)?;
    let cfg = client.show()?;
    let (have, missing) = installed(&cfg, local);
    for b in &missing {
        tracing::warn!(bridge = %b, "xvsd has no such bridge: its net is not installed");
    }
    let target = installable(desired, &missing, &cfg);
    let d = state::diff(&have, &target);
    let cmds = commands(&d, &cfg, &target, local);
    let n = cmds.len();
    if n > 0 {
        client.transact(cmds)?;
    }
    Ok(Applied {
        diff: d,
        commands: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Host, HostRecord, Registry};
    use xvs_ctl::command::apply_all;
    use xvs_types::MacAddr;

    use crate::testutil::host;

    fn reg(hosts: &[&AgentConfig]) -> Registry {
        hosts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    c.name.clone(),
                    Host {
                        record: HostRecord::from_config(c),
                        mod_revision: i as i64 + 1,
                    },
                )
            })
            .collect()
    }

    /// hv1's xvsd as an operator sets it up: a bridge with a VM port, an
    /// uplink, an ACL elsewhere; no tunnel (the agent adds it).
    fn base() -> Config {
        toml::from_str(
            r#"
[uplink]
iface = "u1"
local_ips = ["192.0.2.1"]
[[bridges]]
name = "blue"
[[ports]]
name = "p1"
bridge = "blue"
[[fdb]]
bridge = "blue"
mac = "02:00:00:00:00:63"
port = "p1"
[[addrs]]
bridge = "blue"
ip = "10.1.0.32"
mac = "02:00:00:00:00:63"
"#,
        )
        .unwrap()
    }

    /// One reconcile against a config held in memory, through the same
    /// transaction code xvsd runs; returns the new config.
    fn step(cfg: &Config, local: &AgentConfig, desired: &State) -> (Config, usize) {
        let (have, missing) = installed(cfg, local);
        let target = installable(desired, &missing, cfg);
        let d = state::diff(&have, &target);
        let cmds = commands(&d, cfg, &target, local);
        let n = cmds.len();
        let new = apply_all(&cmds, cfg).unwrap_or_else(|e| panic!("{cmds:?}: {e:?}"));
        let (mut now, _) = installed(&new, local);
        // A tunnel nobody is left to flood to keeps its last remote.
        now.tunnels.retain(|k, _| target.tunnels.contains_key(k));
        assert_eq!(now, target, "after {cmds:?}");
        (new, n)
    }

    #[test]
    fn hosts_coming_changing_and_going_converge_in_one_transaction_each() {
        let h1 = host(1, &[11]);
        let (h2, h3) = (host(2, &[21]), host(3, &[31, 32]));
        // Alone: only the own virt's address.
        let (cfg, n) = step(&base(), &h1, &state::desired(&h1, &reg(&[&h1])));
        assert_eq!(n, 1);
        // hv2 joins: the tunnel is created, its virt pointed at it.
        let (cfg, n) = step(&cfg, &h1, &state::desired(&h1, &reg(&[&h1, &h2])));
        assert!(n > 0);
        assert_eq!(cfg.tunnels[0].vni, 100);
        // hv3 joins: the flood list grows, the operator's entry survives.
        let (cfg, _) = step(&cfg, &h1, &state::desired(&h1, &reg(&[&h1, &h2, &h3])));
        assert_eq!(cfg.tunnels[0].remotes.len(), 2);
        assert_eq!(cfg.fdb.len(), 4);
        assert!(cfg.fdb.iter().any(|f| f.port == "p1"));
        // Every virt's address but the one the operator set by hand.
        let etcd = |c: &Config| {
            c.addrs
                .iter()
                .filter(|a| a.owner.as_deref() == Some(OWNER))
                .count()
        };
        assert_eq!(etcd(&cfg), 3);
        assert_eq!(cfg.addrs.len(), 4);
        assert!(cfg
            .addrs
            .iter()
            .any(|a| a.owner.is_none() && a.mac.0[5] == 0x63));
        // Same input again: nothing.
        let (cfg, n) = step(&cfg, &h1, &state::desired(&h1, &reg(&[&h1, &h2, &h3])));
        assert_eq!(n, 0);
        // hv3 leaves.
        let (cfg, _) = step(&cfg, &h1, &state::desired(&h1, &reg(&[&h1, &h2])));
        assert_eq!(
            cfg.tunnels[0].remotes,
            vec!["192.0.2.2".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(cfg.fdb.len(), 2);
        // hv2 leaves too: its entry goes, the tunnel keeps a remote.
        let (cfg, _) = step(&cfg, &h1, &state::desired(&h1, &reg(&[&h1])));
        assert_eq!(cfg.fdb.len(), 1);
        assert_eq!(cfg.tunnels.len(), 1);
        assert_eq!(etcd(&cfg), 1, "only the local virt's address is left");
    }

    #[test]
    fn a_host_xvsd_would_refuse_is_left_out_and_the_others_are_applied() {
        let h1 = host(1, &[11]);
        let h2 = host(2, &[21]);
        for (what, underlay, mac) in [
            ("other family", "2001:db8::3", 31),
            ("loopback", "127.0.0.3", 31),
            ("unspecified", "0.0.0.0", 31),
            ("multicast", "239.0.0.3", 31),
            ("group virt MAC", "192.0.2.3", 0x01),
        ] {
            let mut h3 = host(3, &[mac]);
            h3.underlay_ip = underlay.parse().unwrap();
            h3.nets[0].virts[0].mac.0[0] = if mac == 0x01 { 1 } else { 2 };
            let r = reg(&[&h1, &h2, &h3]);
            let (cfg, _) = step(&base(), &h1, &state::desired(&h1, &r));
            assert_eq!(
                cfg.tunnels[0].remotes,
                vec!["192.0.2.2".parse::<std::net::IpAddr>().unwrap()],
                "{what}"
            );
            assert!(
                cfg.fdb.iter().all(|f| f.mac.0[5] != mac),
                "{what}: {:?}",
                cfg.fdb
            );
            // What xvsd does with the transaction's result: takes it.
            xvs_dataplane::control::Control::new()
                .apply(cfg)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }

    #[test]
    fn a_missing_bridge_skips_its_net_only() {
        let mut h1 = host(1, &[11]);
        let mut other = h1.nets[0].clone();
        other.name = "red".into();
        other.bridge = "red".into();
        other.tunnel = "vx-red".into();
        other.vni = 200;
        h1.nets.push(other);
        let mut h2 = host(2, &[21]);
        h2.nets = h1.nets.clone();
        h2.nets[0].virts[0].mac = MacAddr([2, 0, 0, 0, 0, 21]);
        h2.nets[1].virts[0].mac = MacAddr([2, 0, 0, 0, 0, 22]);
        let (cfg, _) = step(&base(), &h1, &state::desired(&h1, &reg(&[&h1, &h2])));
        assert_eq!(cfg.tunnels.len(), 1);
        assert_eq!(cfg.tunnels[0].name, "vx");
    }

    #[test]
    fn an_operators_tunnel_keeps_its_settings_when_its_flood_list_changes() {
        let h1 = host(1, &[11]);
        let (h2, h3) = (host(2, &[21]), host(3, &[31]));
        let mut cfg = base();
        let mut t = TunnelConfig::new(
            "vx",
            "blue",
            TunnelKind::Geneve,
            100,
            vec!["192.0.2.2".parse().unwrap()],
        );
        t.dst_port = Some(7000);
        t.ttl = 9;
        t.csum = true;
        t.df = false;
        cfg.tunnels.push(t.clone().into());
        let (cfg, _) = step(&cfg, &h1, &state::desired(&h1, &reg(&[&h1, &h2, &h3])));
        let now = &cfg.tunnels[0];
        assert_eq!(now.remotes.len(), 2);
        assert_eq!(
            (now.kind, now.vni, now.dst_port, now.ttl, now.csum, now.df),
            (t.kind, t.vni, t.dst_port, t.ttl, t.csum, t.df)
        );
    }

    #[test]
    fn lazy_pins_are_recorded_and_removed_with_their_virt() {
        let mut h1 = host(1, &[11]);
        h1.nets[0].lookup = true;
        h1.nets[0].virts[0].port = Some("p1".into());
        let h2 = host(2, &[21]);
        // Nothing asked for yet.
        let lazy = |h: &AgentConfig, r: &Registry| {
            state::restrict(&state::desired(h, r), h, &BTreeSet::new())
        };
        let (cfg, _) = step(&base(), &h1, &lazy(&h1, &reg(&[&h1, &h2])));
        let pinned = |c: &Config| c.fdb.iter().any(|f| f.port == "p1" && f.mac.0[5] == 11);
        assert!(pinned(&cfg));
        assert!(cfg.meta.contains_key(PINS_META));
        // Nothing was asked for: no remote entry.
        assert!(!cfg.fdb.iter().any(|f| f.port == "vx"));
        // Same input: nothing to do.
        let (cfg, n) = step(&cfg, &h1, &lazy(&h1, &reg(&[&h1, &h2])));
        assert_eq!(n, 0);
        // The virt leaves the file: its pin goes, the operator's entry
        // on the same port stays.
        h1.nets[0].virts.clear();
        let (cfg, _) = step(&cfg, &h1, &lazy(&h1, &reg(&[&h1, &h2])));
        assert!(!pinned(&cfg));
        assert!(!cfg.meta.contains_key(PINS_META));
        assert!(cfg.fdb.iter().any(|f| f.port == "p1" && f.mac.0[5] == 0x63));
    }
}
