//! The etcd-owned part of a host's xvsd state as plain data: per tunnel
//! port the flood list, the static FDB entries for remote virts, and the
//! overlay addresses (virt IP -> MAC). [`desired`] computes it from the
//! registry, [`diff`] compares two of them, [`apply`] replays a diff; all
//! pure, so the whole decision is unit- and property-tested without etcd
//! or xvsd.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use xvs_types::MacAddr;

use crate::config::AgentConfig;
use crate::registry::{problems, Registry};

/// A tunnel port the agent manages, and the remote VTEPs it floods to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TunnelState {
    pub bridge: String,
    pub vni: u32,
    pub remotes: BTreeSet<IpAddr>,
}

/// (bridge, VLAN, MAC): the key of a static FDB entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdbKey {
    pub bridge: String,
    pub vlan: u16,
    pub mac: MacAddr,
}

/// Where a virt's MAC points: a remote virt's at the net's tunnel port
/// and its host; a local virt's (lazy nets only) at its own port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdbTarget {
    pub port: String,
    pub remote: Option<IpAddr>,
}

/// (bridge, VLAN, IP): the key of an overlay address entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddrKey {
    pub bridge: String,
    pub vlan: u16,
    pub ip: IpAddr,
}

/// The etcd-owned state of one host's xvsd. Tunnels with nobody to flood
/// to are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub tunnels: BTreeMap<String, TunnelState>,
    pub fdb: BTreeMap<FdbKey, FdbTarget>,
    pub addrs: BTreeMap<AddrKey, MacAddr>,
}

/// What turns one [`State`] into another: entries to set (added or
/// changed) and keys to remove, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub tunnels_set: BTreeMap<String, TunnelState>,
    pub tunnels_del: BTreeSet<String>,
    pub fdb_set: BTreeMap<FdbKey, FdbTarget>,
    pub fdb_del: BTreeSet<FdbKey>,
    pub addrs_set: BTreeMap<AddrKey, MacAddr>,
    pub addrs_del: BTreeSet<AddrKey>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.tunnels_set.is_empty()
            && self.tunnels_del.is_empty()
            && self.fdb_set.is_empty()
            && self.fdb_del.is_empty()
            && self.addrs_set.is_empty()
            && self.addrs_del.is_empty()
    }

    /// `+2 fdb -1 fdb ...` for logs.
    pub fn summary(&self) -> String {
        format!(
            "tunnels +{} -{}, fdb +{} -{}, addrs +{} -{}",
            self.tunnels_set.len(),
            self.tunnels_del.len(),
            self.fdb_set.len(),
            self.fdb_del.len(),
            self.addrs_set.len(),
            self.addrs_del.len()
        )
    }
}

/// What `local` should hold given every registered host. Per local net:
/// the other hosts registered in a net of the same name and VNI (a VNI
/// mismatch is logged and that host left out of the net), their underlay
/// IPs as the tunnel's flood list, their virts' MACs as static entries to
/// (tunnel, host), and every virt's IP -> MAC, the local ones included.
/// A MAC claimed by several hosts (a virt moving) goes to the newest
/// registration; a MAC that is also local is left to the local port. A
/// host whose record xvsd would refuse ([`problems`]: our own underlay IP,
/// another family, a group MAC...) is left out whole.
pub fn desired(local: &AgentConfig, reg: &Registry) -> State {
    let mut st = State::default();
    // Hosts whose record xvsd would refuse (logged when it arrived).
    let refused: BTreeSet<&str> = reg
        .iter()
        .filter(|(name, h)| *name != &local.name && !problems(&h.record, local).is_empty())
        .map(|(name, _)| name.as_str())
        .collect();
    for net in &local.nets {
        let mut remotes = BTreeSet::new();
        // MAC -> (mod revision, host name, host IP): ties go to the
        // greater name so every host decides the same way.
        let mut owners: BTreeMap<MacAddr, (i64, &str, IpAddr)> = BTreeMap::new();
        let mut ips: BTreeMap<IpAddr, (i64, &str, MacAddr)> = BTreeMap::new();
        for (name, host) in reg {
            if name == &local.name || refused.contains(name.as_str()) {
                continue;
            }
            let Some(hn) = host.record.nets.iter().find(|n| n.name == net.name) else {
                continue;
            };
            if hn.vni != net.vni {
                tracing::warn!(
                    host = %name, net = %net.name, theirs = hn.vni, ours = net.vni,
                    "host registered the net with another VNI: left out"
                );
                continue;
            }
            let ip = host.record.underlay_ip;
            remotes.insert(ip);
            let rank = (host.mod_revision, name.as_str());
            for v in &hn.virts {
                let e = owners.entry(v.mac).or_insert((rank.0, rank.1, ip));
                if (e.0, e.1) < rank {
                    *e = (rank.0, rank.1, ip);
                }
                if let Some(vip) = v.ip {
                    let e = ips.entry(vip).or_insert((rank.0, rank.1, v.mac));
                    if (e.0, e.1) < rank {
                        *e = (rank.0, rank.1, v.mac);
                    }
                }
            }
        }
        for v in &net.virts {
            owners.remove(&v.mac);
            if let Some(vip) = v.ip {
                ips.insert(vip, (i64::MAX, "", v.mac));
            }
        }
        for (mac, (_, _, remote)) in owners {
            st.fdb.insert(
                FdbKey {
                    bridge: net.bridge.clone(),
                    vlan: 0,
                    mac,
                },
                FdbTarget {
                    port: net.tunnel.clone(),
                    remote: Some(remote),
                },
            );
        }
        // A lazy net's bridge answers misses only through us, and a
        // silent local virt is never learned: pin it to its port.
        for v in net.virts.iter().filter(|_| net.lookup) {
            if let Some(port) = &v.port {
                st.fdb.insert(
                    FdbKey {
                        bridge: net.bridge.clone(),
                        vlan: 0,
                        mac: v.mac,
                    },
                    FdbTarget {
                        port: port.clone(),
                        remote: None,
                    },
                );
            }
        }
        for (ip, (_, _, mac)) in ips {
            st.addrs.insert(
                AddrKey {
                    bridge: net.bridge.clone(),
                    vlan: 0,
                    ip,
                },
                mac,
            );
        }
        if !remotes.is_empty() {
            st.tunnels.insert(
                net.tunnel.clone(),
                TunnelState {
                    bridge: net.bridge.clone(),
                    vni: net.vni,
                    remotes,
                },
            );
        }
    }
    st
}

/// What xvsd asked for (a lookup miss): a MAC's VTEP or an address's
/// MAC, in a bridge and VLAN.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Asked {
    Mac(FdbKey),
    Ip(AddrKey),
}

/// `desired` with the static MACs and addresses of lazy nets (those with
/// `lookup`) cut down to what xvsd asked for; other nets and every flood
/// list untouched.
pub fn restrict(desired: &State, local: &AgentConfig, asked: &BTreeSet<Asked>) -> State {
    let lazy: BTreeSet<&str> = local
        .nets
        .iter()
        .filter(|n| n.lookup)
        .map(|n| n.bridge.as_str())
        .collect();
    if lazy.is_empty() {
        return desired.clone();
    }
    State {
        tunnels: desired.tunnels.clone(),
        fdb: desired
            .fdb
            .iter()
            .filter(|(k, v)| {
                // Local pins are always there: a miss about a local MAC
                // would cost the first frame to it.
                !lazy.contains(k.bridge.as_str())
                    || v.remote.is_none()
                    || asked.contains(&Asked::Mac((*k).clone()))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        addrs: desired
            .addrs
            .iter()
            .filter(|(k, _)| {
                !lazy.contains(k.bridge.as_str()) || asked.contains(&Asked::Ip((*k).clone()))
            })
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    }
}

fn diff_map<K: Ord + Clone, V: Eq + Clone>(
    a: &BTreeMap<K, V>,
    b: &BTreeMap<K, V>,
) -> (BTreeMap<K, V>, BTreeSet<K>) {
    let set = b
        .iter()
        .filter(|(k, v)| a.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let del = a.keys().filter(|k| !b.contains_key(*k)).cloned().collect();
    (set, del)
}

fn apply_map<K: Ord + Clone, V: Clone>(
    m: &mut BTreeMap<K, V>,
    set: &BTreeMap<K, V>,
    del: &BTreeSet<K>,
) {
    for k in del {
        m.remove(k);
    }
    for (k, v) in set {
        m.insert(k.clone(), v.clone());
    }
}

/// The smallest change from `a` to `b`: `apply(&diff(a, b), a) == b`.
pub fn diff(a: &State, b: &State) -> Diff {
    let (tunnels_set, tunnels_del) = diff_map(&a.tunnels, &b.tunnels);
    let (fdb_set, fdb_del) = diff_map(&a.fdb, &b.fdb);
    let (addrs_set, addrs_del) = diff_map(&a.addrs, &b.addrs);
    Diff {
        tunnels_set,
        tunnels_del,
        fdb_set,
        fdb_del,
        addrs_set,
        addrs_del,
    }
}

/// `a` with `d` applied.
pub fn apply(d: &Diff, a: &State) -> State {
    let mut s = a.clone();
    apply_map(&mut s.tunnels, &d.tunnels_set, &d.tunnels_del);
    apply_map(&mut s.fdb, &d.fdb_set, &d.fdb_del);
    apply_map(&mut s.addrs, &d.addrs_set, &d.addrs_del);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Host, HostRecord};
    use proptest::prelude::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    use crate::testutil::host;

    fn registry(hosts: &[(&AgentConfig, i64)]) -> Registry {
        hosts
            .iter()
            .map(|(c, rev)| {
                (
                    c.name.clone(),
                    Host {
                        record: HostRecord::from_config(c),
                        mod_revision: *rev,
                    },
                )
            })
            .collect()
    }

    fn fdb_of(st: &State) -> Vec<(MacAddr, IpAddr)> {
        st.fdb
            .iter()
            .filter_map(|(k, t)| Some((k.mac, t.remote?)))
            .collect()
    }

    #[test]
    fn remote_virts_point_at_their_host_and_the_flood_list_is_the_others() {
        let (h1, h2, h3) = (host(1, &[11]), host(2, &[21, 22]), host(3, &[31]));
        let st = desired(&h1, &registry(&[(&h1, 1), (&h2, 2), (&h3, 3)]));
        assert_eq!(
            st.tunnels["vx"].remotes,
            [ip("192.0.2.2"), ip("192.0.2.3")].into()
        );
        assert_eq!(
            fdb_of(&st),
            vec![
                (mac(21), ip("192.0.2.2")),
                (mac(22), ip("192.0.2.2")),
                (mac(31), ip("192.0.2.3"))
            ]
        );
        assert!(st.fdb.values().all(|t| t.port == "vx"));
        // Every virt's address, the local one too.
        assert_eq!(st.addrs.len(), 4);
        assert_eq!(
            st.addrs[&AddrKey {
                bridge: "blue".into(),
                vlan: 0,
                ip: ip("10.1.0.11")
            }],
            mac(11)
        );
    }

    #[test]
    fn alone_there_is_no_tunnel_and_no_entry_but_the_own_addresses() {
        let h1 = host(1, &[11]);
        let st = desired(&h1, &registry(&[(&h1, 1)]));
        assert!(st.tunnels.is_empty() && st.fdb.is_empty());
        assert_eq!(st.addrs.len(), 1);
    }

    #[test]
    fn a_moved_virt_follows_the_newest_registration_and_local_wins() {
        let (h1, h2, h3) = (host(1, &[11]), host(2, &[7]), host(3, &[7, 11]));
        // hv3 registered later: MAC 7 is there now.
        let st = desired(&h1, &registry(&[(&h1, 1), (&h2, 2), (&h3, 3)]));
        assert_eq!(
            fdb_of(&st),
            vec![(mac(7), ip("192.0.2.3"))],
            "MAC 11 is local to hv1, MAC 7 follows the newer hv3"
        );
        let st = desired(&h1, &registry(&[(&h1, 1), (&h2, 5), (&h3, 3)]));
        assert_eq!(fdb_of(&st), vec![(mac(7), ip("192.0.2.2"))]);
    }

    #[test]
    fn hosts_of_another_vni_or_net_are_left_out() {
        let h1 = host(1, &[11]);
        let mut h2 = host(2, &[21]);
        h2.nets[0].vni = 200;
        let mut h3 = host(3, &[31]);
        h3.nets[0].name = "red".into();
        let st = desired(&h1, &registry(&[(&h1, 1), (&h2, 2), (&h3, 3)]));
        assert!(st.tunnels.is_empty() && st.fdb.is_empty());
    }

    #[test]
    fn a_host_leaving_takes_its_entries_with_it() {
        let (h1, h2, h3) = (host(1, &[11]), host(2, &[21]), host(3, &[31]));
        let before = desired(&h1, &registry(&[(&h1, 1), (&h2, 2), (&h3, 3)]));
        let after = desired(&h1, &registry(&[(&h1, 1), (&h2, 2)]));
        let d = diff(&before, &after);
        assert_eq!(d.tunnels_set["vx"].remotes, [ip("192.0.2.2")].into());
        assert_eq!(
            d.fdb_del.iter().map(|k| k.mac).collect::<Vec<_>>(),
            [mac(31)]
        );
        assert!(d.fdb_set.is_empty());
        assert_eq!(d.addrs_del.len(), 1);
        assert_eq!(apply(&d, &before), after);
        assert!(diff(&after, &after).is_empty());
    }

    #[test]
    fn a_lazy_net_holds_only_what_was_asked_for() {
        let (mut h1, h2) = (host(1, &[11]), host(2, &[21, 22]));
        let full = desired(&h1, &registry(&[(&h1, 1), (&h2, 2)]));
        assert_eq!(restrict(&full, &h1, &BTreeSet::new()), full, "push mode");
        h1.nets[0].lookup = true;
        let asked: BTreeSet<Asked> = [
            Asked::Mac(FdbKey {
                bridge: "blue".into(),
                vlan: 0,
                mac: mac(22),
            }),
            Asked::Ip(AddrKey {
                bridge: "blue".into(),
                vlan: 0,
                ip: ip("10.1.0.21"),
            }),
        ]
        .into();
        let lazy = restrict(&full, &h1, &asked);
        assert_eq!(lazy.tunnels, full.tunnels, "the flood list is always there");
        assert_eq!(fdb_of(&lazy), vec![(mac(22), ip("192.0.2.2"))]);
        assert_eq!(lazy.addrs.len(), 1);
        assert_eq!(restrict(&full, &h1, &BTreeSet::new()).fdb.len(), 0);
    }

    fn arb_state() -> impl Strategy<Value = State> {
        let tun =
            (0u8..3, 0u32..3, prop::collection::btree_set(1u8..5, 1..3)).prop_map(|(b, vni, r)| {
                TunnelState {
                    bridge: format!("b{b}"),
                    vni,
                    remotes: r
                        .into_iter()
                        .map(|x| IpAddr::from([192, 0, 2, x]))
                        .collect(),
                }
            });
        let tunnels =
            prop::collection::btree_map((0u8..4).prop_map(|t| format!("t{t}")), tun, 0..4);
        let fdb = prop::collection::btree_map(
            (0u8..2, 0u16..2, 0u8..8).prop_map(|(b, vlan, m)| FdbKey {
                bridge: format!("b{b}"),
                vlan,
                mac: mac(m),
            }),
            (0u8..2, 1u8..4).prop_map(|(t, r)| FdbTarget {
                port: format!("t{t}"),
                remote: Some(IpAddr::from([192, 0, 2, r])),
            }),
            0..8,
        );
        let addrs = prop::collection::btree_map(
            (0u8..2, 0u8..8).prop_map(|(b, i)| AddrKey {
                bridge: format!("b{b}"),
                vlan: 0,
                ip: IpAddr::from([10, 0, 0, i]),
            }),
            (0u8..4).prop_map(mac),
            0..8,
        );
        (tunnels, fdb, addrs).prop_map(|(tunnels, fdb, addrs)| State {
            tunnels,
            fdb,
            addrs,
        })
    }

    proptest! {
        #[test]
        fn applying_the_diff_gives_the_target(a in arb_state(), b in arb_state()) {
            let d = diff(&a, &b);
            prop_assert_eq!(apply(&d, &a), b.clone());
            // Smallest: nothing set that is already there, nothing removed
            // that stays.
            for (k, v) in &d.fdb_set {
                prop_assert_ne!(a.fdb.get(k), Some(v));
            }
            for k in &d.fdb_del {
                prop_assert!(!b.fdb.contains_key(k));
            }
            prop_assert!(diff(&b, &b).is_empty());
        }
    }
}
