//! From a parsed verb to what goes to xvsd: the config commands a
//! config-changing verb stands for ([`Verb::commands`]), the protocol call
//! a read-only verb makes ([`Verb::method`]), and the parsing of the
//! arguments clap leaves as text (`set-br KEY=VALUE`, address lists).

use std::io::Read;
use std::net::IpAddr;

use xvs_config::{LookupProviderConfig, MissAction};

use super::input::read_fdb_file;
use super::Verb;
use crate::command::{self as cmd, Command};
use crate::protocol::{
    AclShowParams, ArpShowParams, DumpFlowsParams, FdbShowParams, Method, StatsParams, TraceParams,
};

impl Verb {
    /// The commands a config-changing verb stands for; `None` for the
    /// others. `input` is stdin, for `fdb-add --file -`.
    pub fn commands(&self, input: &mut dyn Read) -> Option<Result<Vec<Command>, String>> {
        let one = |c: Command| Some(Ok(vec![c]));
        let join = |m: &[String]| m.join(",");
        match self {
            Verb::AddBr {
                bridge,
                may_exist,
                fdb_max_entries,
                fdb_aging,
                no_learning,
                arp_suppress,
            } => one(Command::AddBr(cmd::AddBr {
                name: bridge.clone(),
                may_exist: *may_exist,
                fdb_max_entries: *fdb_max_entries,
                fdb_aging_secs: *fdb_aging,
                learning: no_learning.then_some(false),
                arp_suppress: arp_suppress.then_some(true),
            })),
            Verb::SetBr { bridge, options } => {
                Some(parse_set_br(bridge, options).map(|c| vec![Command::SetBr(c)]))
            }
            Verb::DelBr { bridge, if_exists } => one(Command::DelBr(cmd::DelBr {
                name: bridge.clone(),
                if_exists: *if_exists,
            })),
            Verb::AddPort {
                bridge,
                iface,
                queues,
                tag,
                trunks,
                native,
                mtu,
                max_macs,
                allowed_macs,
                allowed_ips,
                storm_pps,
                port_type,
                socket,
                client,
                may_exist,
            } => one(Command::AddPort(cmd::AddPort {
                bridge: bridge.clone(),
                name: iface.clone(),
                queues: *queues,
                tag: *tag,
                trunks: trunks.as_ref().map(|t| t.0.clone()),
                native: *native,
                mtu: *mtu,
                max_macs: *max_macs,
                allowed_macs: allowed_macs.clone(),
                allowed_ips: allowed_ips.clone(),
                storm_pps: *storm_pps,
                kind: match (port_type.as_str(), socket) {
                    ("vhost-user", Some(socket)) => xvs_config::PortKind::VhostUser {
                        socket: socket.clone(),
                        client: *client,
                    },
                    ("tap", _) => xvs_config::PortKind::Tap,
                    _ => xvs_config::PortKind::Afxdp,
                },
                may_exist: *may_exist,
            })),
            Verb::AddTunnel {
                bridge,
                name,
                kind,
                vni,
                remote,
                local,
                dst_port,
                ttl,
                tos,
                df,
                no_df,
                csum,
                geneve_opt,
                learn_remotes,
                may_exist,
            } => one(Command::AddTunnel(cmd::AddTunnel {
                bridge: bridge.clone(),
                name: name.clone(),
                kind: *kind,
                vni: *vni,
                remotes: remote.clone(),
                local: *local,
                dst_port: *dst_port,
                ttl: *ttl,
                tos: *tos,
                df: if *no_df {
                    Some(false)
                } else if *df {
                    Some(true)
                } else {
                    None
                },
                csum: *csum,
                geneve_opts: geneve_opt.clone(),
                learn_remotes: *learn_remotes,
                may_exist: *may_exist,
            })),
            Verb::SetPort {
                name,
                max_macs,
                allowed_macs,
                allowed_ips,
                storm_pps,
            } => Some((|| {
                Ok(vec![Command::SetPort(cmd::SetPort {
                    name: name.clone(),
                    max_macs: *max_macs,
                    allowed_macs: addr_list(allowed_macs.as_deref(), "allowed-macs")?,
                    allowed_ips: addr_list(allowed_ips.as_deref(), "allowed-ips")?,
                    storm_pps: *storm_pps,
                })])
            })()),
            Verb::SetTunnel {
                name,
                remote,
                vni,
                local,
                dst_port,
                ttl,
                tos,
                df,
                csum,
                learn_remotes,
            } => one(Command::SetTunnel(cmd::SetTunnel {
                name: name.clone(),
                remotes: (!remote.is_empty()).then(|| remote.clone()),
                vni: *vni,
                local: *local,
                dst_port: *dst_port,
                ttl: *ttl,
                tos: *tos,
                df: *df,
                csum: *csum,
                learn_remotes: *learn_remotes,
            })),
            Verb::DelPort { name, if_exists } => one(Command::DelPort(cmd::DelPort {
                name: name.clone(),
                if_exists: *if_exists,
            })),
            Verb::SetUplink {
                iface,
                local_ip,
                mac,
                mtu,
            } => one(Command::SetUplink(cmd::SetUplink {
                iface: iface.clone(),
                local_ips: local_ip.clone(),
                mac: *mac,
                mtu: *mtu,
            })),
            Verb::FdbAdd {
                bridge,
                mac,
                port,
                vlan,
                remote,
                file,
                ..
            } => match (file, mac, port) {
                (Some(f), _, _) => Some(read_fdb_file(bridge, f, input)),
                (None, Some(mac), Some(port)) => one(Command::FdbAdd(cmd::FdbAdd {
                    bridge: bridge.clone(),
                    mac: *mac,
                    port: port.clone(),
                    vlan: *vlan,
                    remote: *remote,
                })),
                _ => Some(Err("fdb-add needs MAC and PORT, or --file".into())),
            },
            Verb::ArpAdd {
                bridge,
                ip,
                mac,
                vlan,
                owner,
            } => one(Command::ArpAdd(cmd::ArpAdd {
                bridge: bridge.clone(),
                ip: *ip,
                mac: *mac,
                vlan: *vlan,
                owner: owner.clone(),
            })),
            Verb::ArpDel {
                bridge,
                ip,
                vlan,
                if_exists,
            } => one(Command::ArpDel(cmd::ArpDel {
                bridge: bridge.clone(),
                ip: *ip,
                vlan: *vlan,
                if_exists: *if_exists,
            })),
            Verb::FdbDel {
                bridge,
                mac,
                vlan,
                if_exists,
            } => one(Command::FdbDel(cmd::FdbDel {
                bridge: bridge.clone(),
                mac: *mac,
                vlan: *vlan,
                if_exists: *if_exists,
            })),
            Verb::NeighSet { ip, mac } => {
                one(Command::NeighSet(cmd::NeighSet { ip: *ip, mac: *mac }))
            }
            Verb::NeighFlush { ip, if_exists } => one(Command::NeighFlush(cmd::NeighFlush {
                ip: *ip,
                if_exists: *if_exists,
            })),
            Verb::RouteAdd {
                prefix,
                gateway,
                dev,
                metric,
                may_exist,
            } => one(Command::RouteAdd(cmd::RouteAdd {
                prefix: *prefix,
                gateway: *gateway,
                dev: dev.clone(),
                metric: *metric,
                may_exist: *may_exist,
            })),
            Verb::RouteDel {
                prefix,
                metric,
                if_exists,
            } => one(Command::RouteDel(cmd::RouteDel {
                prefix: *prefix,
                metric: *metric,
                if_exists: *if_exists,
            })),
            Verb::AddFlow { bridge, flow } => one(Command::AddFlow(cmd::AddFlow {
                bridge: bridge.clone(),
                flow: flow.clone(),
            })),
            Verb::DelFlows {
                bridge,
                matches,
                strict,
            } => one(Command::DelFlows(cmd::DelFlows {
                bridge: bridge.clone(),
                matches: matches.clone(),
                strict: *strict,
            })),
            Verb::AclAdd {
                port,
                dir,
                prio,
                matches,
                action,
            } => one(Command::AclAdd(cmd::AclAdd {
                port: port.clone(),
                dir: *dir,
                priority: *prio,
                matches: join(matches),
                action: *action,
            })),
            Verb::AclDel {
                port,
                dir,
                prio,
                matches,
                if_exists,
            } => one(Command::AclDel(cmd::AclDel {
                port: port.clone(),
                dir: *dir,
                priority: *prio,
                matches: if matches.is_empty() {
                    None
                } else {
                    Some(join(matches))
                },
                if_exists: *if_exists,
            })),
            Verb::QosSet {
                port,
                dir,
                rate,
                burst,
                peak,
            } => one(Command::QosSet(cmd::QosSet {
                port: port.clone(),
                dir: *dir,
                rate_bps: *rate,
                burst_bytes: *burst,
                peak_bps: *peak,
            })),
            Verb::QosClear {
                port,
                dir,
                if_exists,
            } => one(Command::QosClear(cmd::QosClear {
                port: port.clone(),
                dir: *dir,
                if_exists: *if_exists,
            })),
            Verb::MirrorAdd {
                name,
                src,
                dir,
                to,
                may_exist,
            } => one(Command::MirrorAdd(cmd::MirrorAdd {
                name: name.clone(),
                src: src.clone(),
                dir: *dir,
                to: to.clone(),
                may_exist: *may_exist,
            })),
            Verb::MirrorDel { name, if_exists } => one(Command::MirrorDel(cmd::MirrorDel {
                name: name.clone(),
                if_exists: *if_exists,
            })),
            _ => None,
        }
    }

    /// The protocol call a read-only verb makes; `None` for the others
    /// (config-changing verbs, and those xvsctl answers by itself).
    pub fn method(&self) -> Option<Method> {
        Some(match self {
            Verb::Show => Method::Show,
            Verb::FdbShow { bridge } => Method::FdbShow(FdbShowParams {
                bridge: bridge.clone(),
            }),
            Verb::ArpShow { bridge } => Method::ArpShow(ArpShowParams {
                bridge: bridge.clone(),
            }),
            Verb::LookupMisses => Method::LookupMisses,
            Verb::NeighShow => Method::NeighShow,
            Verb::RouteShow => Method::RouteShow,
            Verb::DumpFlows { bridge } => Method::DumpFlows(DumpFlowsParams {
                bridge: bridge.clone(),
            }),
            Verb::Trace { port, spec } => match super::trace::frame_hex(spec) {
                Ok(frame) => Method::Trace(TraceParams {
                    port: port.clone(),
                    frame,
                }),
                Err(_) => return None,
            },
            Verb::AclShow { port, dir } => Method::AclShow(AclShowParams {
                port: port.clone(),
                dir: *dir,
            }),
            Verb::Stats { target, per_worker } => Method::Stats(StatsParams {
                target: target.clone(),
                per_worker: *per_worker,
            }),
            Verb::WorkerStats => Method::WorkerStats,
            Verb::TunnelPorts => Method::TunnelPorts,
            Verb::MirrorList => Method::MirrorList,
            Verb::Version => Method::Hello,
            _ => return None,
        })
    }
}

/// A comma-separated address list of set-port, `none` for the empty one.
fn addr_list<T: std::str::FromStr>(s: Option<&str>, opt: &str) -> Result<Option<Vec<T>>, String> {
    let Some(s) = s else { return Ok(None) };
    if s == "none" {
        return Ok(Some(Vec::new()));
    }
    s.split(',')
        .map(|a| {
            a.trim()
                .parse()
                .map_err(|_| format!("set-port: --{opt} {a:?} is not an address"))
        })
        .collect::<Result<Vec<T>, String>>()
        .map(Some)
}

/// `set-br BR KEY=VALUE...`: the keys are the bridge options, with `-`
/// or `_` between words.
fn parse_set_br(bridge: &str, options: &[String]) -> Result<cmd::SetBr, String> {
    let mut c = cmd::SetBr {
        name: bridge.to_string(),
        ..Default::default()
    };
    for o in options {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| format!("set-br: {o:?} is not KEY=VALUE"))?;
        let slot = match k.replace('_', "-").as_str() {
            "learning" => &mut c.learning,
            "arp-suppress" => &mut c.arp_suppress,
            "lookup" => {
                match parse_lookup_provider(v)? {
                    Some(p) => c.lookup = Some(p),
                    None => c.no_lookup = true,
                }
                continue;
            }
            "lookup-miss" => {
                c.lookup_miss = Some(match v {
                    "flood" => MissAction::Flood,
                    "drop" => MissAction::Drop,
                    "hold" => MissAction::Hold,
                    _ => return Err(format!("set-br: lookup-miss={v:?}: flood, drop or hold")),
                });
                continue;
            }
            "lookup-hold-ms" => {
                c.lookup_hold_ms = Some(
                    v.parse()
                        .map_err(|_| format!("set-br: lookup-hold-ms={v:?}: a number of ms"))?,
                );
                continue;
            }
            _ => {
                return Err(format!(
                    "set-br: unknown option {k:?} (learning, arp-suppress, lookup, lookup-miss, lookup-hold-ms)"
                ))
            }
        };
        *slot = Some(match v {
            "true" | "on" | "yes" | "1" => true,
            "false" | "off" | "no" | "0" => false,
            _ => return Err(format!("set-br: {k}={v:?}: expected true or false")),
        });
    }
    Ok(c)
}

/// `lookup=direct:IP | multicast:GROUP | static | external | none`.
fn parse_lookup_provider(v: &str) -> Result<Option<LookupProviderConfig>, String> {
    let (kind, arg) = v.split_once(':').unwrap_or((v, ""));
    let ip = |what: &str| {
        arg.parse::<IpAddr>()
            .map_err(|_| format!("set-br: lookup={kind}:{arg:?}: {what} must be an IP address"))
    };
    Ok(Some(match (kind, arg.is_empty()) {
        ("none", true) => return Ok(None),
        ("direct", false) => LookupProviderConfig::Direct {
            vtep: ip("the VTEP")?,
        },
        ("multicast", false) => LookupProviderConfig::Multicast {
            group: ip("the group")?,
        },
        ("static", true) => LookupProviderConfig::Static {
            entries: Vec::new(),
        },
        ("external", true) => LookupProviderConfig::External,
        _ => {
            return Err(format!(
                "set-br: lookup={v:?}: one of direct:IP, multicast:GROUP, static, external, none"
            ))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::parse;
    use super::*;
    use xvs_config::{Direction, TosConfig};

    fn commands(args: &[&str]) -> Vec<Command> {
        parse(args)
            .unwrap()
            .commands(&mut std::io::empty())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn verbs_map_to_commands() {
        let c = commands(&[
            "add-tunnel",
            "br0",
            "gn",
            "--type",
            "geneve",
            "--vni",
            "7",
            "--remote",
            "192.0.2.2",
            "--remote",
            "192.0.2.3,192.0.2.4",
            "--tos",
            "0x10",
            "--dst-port",
            "6082",
            "--geneve-opt",
            "258:1:0a0b0c0d",
        ]);
        let Command::AddTunnel(t) = &c[0] else {
            panic!("{c:?}")
        };
        assert_eq!(t.remotes.len(), 3);
        assert_eq!(
            (t.tos, t.dst_port, t.df),
            (Some(TosConfig::Fixed(16)), Some(6082), None)
        );
        assert_eq!((t.geneve_opts[0].class, t.geneve_opts[0].typ), (258, 1));
        let c = commands(&["add-port", "br0", "vm1", "--trunks", "10,20-22"]);
        let Command::AddPort(p) = &c[0] else { panic!() };
        assert_eq!(p.trunks, Some(vec![10, 20, 21, 22]));
        let c = commands(&["add-port", "br0", "vm1", "--max-macs", "4"]);
        let Command::AddPort(p) = &c[0] else { panic!() };
        assert_eq!(p.max_macs, Some(4));
        let c = commands(&[
            "add-port",
            "br0",
            "vu1",
            "--type",
            "vhost-user",
            "--socket",
            "/run/vu1.sock",
        ]);
        let Command::AddPort(p) = &c[0] else { panic!() };
        assert_eq!(
            p.kind,
            xvs_config::PortKind::VhostUser {
                socket: "/run/vu1.sock".into(),
                client: false
            }
        );
        let c = commands(&[
            "add-port",
            "br0",
            "vu1",
            "--type",
            "vhost-user",
            "--socket",
            "/q.sock",
            "--client",
        ]);
        let Command::AddPort(p) = &c[0] else { panic!() };
        assert!(matches!(
            p.kind,
            xvs_config::PortKind::VhostUser { client: true, .. }
        ));
        let c = commands(&["add-port", "br0", "vm1"]);
        let Command::AddPort(p) = &c[0] else { panic!() };
        assert!(p.kind.is_afxdp(), "an interface unless told otherwise");
        let c = commands(&["add-port", "br0", "tap1", "--type", "tap"]);
        let Command::AddPort(p) = &c[0] else { panic!() };
        assert_eq!(p.kind, xvs_config::PortKind::Tap);
        let c = commands(&[
            "add-port",
            "br0",
            "vm1",
            "--allowed-macs",
            "02:00:00:00:00:01",
            "--allowed-ips",
            "10.0.0.1,fd00::1",
        ]);
        let Command::AddPort(p) = &c[0] else { panic!() };
        assert_eq!(p.allowed_macs, ["02:00:00:00:00:01".parse().unwrap()]);
        assert_eq!(p.allowed_ips.len(), 2);
        let c = commands(&[
            "set-port",
            "vm1",
            "--max-macs",
            "0",
            "--allowed-macs",
            "none",
            "--allowed-ips",
            "10.0.0.1,10.0.0.2",
        ]);
        let Command::SetPort(p) = &c[0] else { panic!() };
        assert_eq!(
            (
                p.max_macs,
                p.allowed_macs.as_deref(),
                p.allowed_ips.as_ref().map(Vec::len)
            ),
            (Some(0), Some(&[][..]), Some(2))
        );
        let e = parse(&["set-port", "vm1", "--allowed-macs", "02:00:00:00:00:01,x"])
            .unwrap()
            .commands(&mut std::io::empty())
            .unwrap()
            .unwrap_err();
        assert!(e.contains("\"x\" is not an address"), "{e}");
        let c = commands(&[
            "qos-set", "vm1", "--dir", "out", "--rate", "1.5gbit", "--burst", "1mb",
        ]);
        let Command::QosSet(q) = &c[0] else { panic!() };
        assert_eq!(
            (q.rate_bps, q.burst_bytes, q.dir),
            (1_500_000_000, 1 << 20, Direction::Out)
        );
        let c = commands(&[
            "acl-add",
            "vm1",
            "--dir",
            "in",
            "--prio",
            "3",
            "tcp",
            "tp_dst=22",
            "--action",
            "allow",
        ]);
        let Command::AclAdd(a) = &c[0] else { panic!() };
        assert_eq!(a.matches, "tcp,tp_dst=22");
        assert!(parse(&["show"])
            .unwrap()
            .commands(&mut std::io::empty())
            .is_none());
        assert_eq!(parse(&["add-br", "x"]).unwrap().name(), "add-br");
        assert_eq!(parse(&["worker-stats"]).unwrap().name(), "worker-stats");
    }

    #[test]
    fn set_tunnel_takes_only_what_is_given() {
        let c = commands(&[
            "set-tunnel",
            "vx1",
            "--remote",
            "192.0.2.3,192.0.2.4",
            "--ttl",
            "5",
            "--learn-remotes",
            "true",
        ]);
        let Command::SetTunnel(t) = &c[0] else {
            panic!("{c:?}")
        };
        assert_eq!(t.remotes.as_ref().map(Vec::len), Some(2));
        assert_eq!(
            (t.ttl, t.learn_remotes, t.vni, t.df),
            (Some(5), Some(true), None, None)
        );
        let c = commands(&["set-tunnel", "vx1", "--df", "false"]);
        let Command::SetTunnel(t) = &c[0] else {
            panic!("{c:?}")
        };
        assert_eq!((t.remotes.clone(), t.df), (None, Some(false)));
    }

    #[test]
    fn bridge_options_on_add_br_and_set_br() {
        let c = commands(&["add-br", "br0", "--no-learning", "--arp-suppress"]);
        let Command::AddBr(b) = &c[0] else { panic!() };
        assert_eq!((b.learning, b.arp_suppress), (Some(false), Some(true)));
        let c = commands(&["add-br", "br0"]);
        let Command::AddBr(b) = &c[0] else { panic!() };
        assert_eq!((b.learning, b.arp_suppress), (None, None));
        let c = commands(&["set-br", "br0", "learning=false", "arp_suppress=on"]);
        let Command::SetBr(b) = &c[0] else { panic!() };
        assert_eq!((b.learning, b.arp_suppress), (Some(false), Some(true)));
        let bad = |args: &[&str]| {
            parse(args)
                .unwrap()
                .commands(&mut std::io::empty())
                .unwrap()
                .unwrap_err()
        };
        assert!(bad(&["set-br", "br0", "learning"]).contains("KEY=VALUE"));
        assert!(bad(&["set-br", "br0", "learning=maybe"]).contains("true or false"));
        assert!(bad(&["set-br", "br0", "colour=red"]).contains("unknown option"));
        let c = commands(&[
            "set-br",
            "br0",
            "lookup=direct:192.0.2.2",
            "lookup-miss=drop",
        ]);
        let Command::SetBr(b) = &c[0] else { panic!() };
        assert_eq!(
            (&b.lookup, b.lookup_miss, b.no_lookup),
            (
                &Some(LookupProviderConfig::Direct {
                    vtep: "192.0.2.2".parse().unwrap()
                }),
                Some(MissAction::Drop),
                false
            )
        );
        let c = commands(&["set-br", "br0", "lookup=none"]);
        let Command::SetBr(b) = &c[0] else { panic!() };
        assert!(b.no_lookup && b.lookup.is_none());
        let c = commands(&["set-br", "br0", "lookup=external"]);
        let Command::SetBr(b) = &c[0] else { panic!() };
        assert_eq!(b.lookup, Some(LookupProviderConfig::External));
        assert!(bad(&["set-br", "br0", "lookup=direct:nowhere"]).contains("IP address"));
        assert!(bad(&["set-br", "br0", "lookup=magic"]).contains("one of"));
        assert!(bad(&["set-br", "br0", "lookup-miss=wait"]).contains("flood, drop or hold"));
    }
}
