//! Actions and whole flow rules: [`Action`], [`FlowRule`] and their
//! ovs-ofctl-style text (`priority=..,cookie=..,MATCH,actions=..`; the
//! module documentation of `tables::flow` has the full syntax).

use std::fmt;
use std::str::FromStr;

use super::matching::{match_tokens, split_token};
use super::{parse_uint, FlowError, FlowMatch};
use crate::PortNo;

/// Priority of a rule whose text gives none (the OpenFlow default).
pub const DEFAULT_PRIORITY: u32 = 32768;

/// What to do with a frame that hit a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// To a local port; to a tunnel port means "push to all its remotes".
    Output(PortNo),
    /// Push via tunnel `port` to one remote VTEP (index into its remotes).
    Tunnel {
        port: PortNo,
        remote: u16,
    },
    /// The L2 learning switch.
    Normal,
    Drop,
    /// Set the 802.1Q VID, pushing a tag if there is none.
    PushVlan(u16),
    StripVlan,
    Flood,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Output(p) => write!(f, "output:{p}"),
            Action::Tunnel { port, remote } => write!(f, "tunnel:{port}:{remote}"),
            Action::Normal => f.write_str("normal"),
            Action::Drop => f.write_str("drop"),
            Action::PushVlan(v) => write!(f, "mod_vlan_vid:{v}"),
            Action::StripVlan => f.write_str("strip_vlan"),
            Action::Flood => f.write_str("flood"),
        }
    }
}

impl FromStr for Action {
    type Err = FlowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad_action = |reason| FlowError::BadAction {
            token: s.to_string(),
            reason,
        };
        let num = |v: &str, max: u64| -> Result<u64, FlowError> {
            parse_uint("action", v, max)
                .map_err(|_| bad_action("argument is not a number in range"))
        };
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        // ovs-ofctl takes action names in any case (NORMAL, Drop, ...).
        let name = name.to_ascii_lowercase();
        match (name.as_str(), arg) {
            ("normal", None) => Ok(Action::Normal),
            ("drop", None) => Ok(Action::Drop),
            ("flood", None) => Ok(Action::Flood),
            ("strip_vlan", None) => Ok(Action::StripVlan),
            ("output", Some(p)) => Ok(Action::Output(num(p, u64::from(PortNo::MAX))? as PortNo)),
            ("mod_vlan_vid" | "push_vlan", Some(v)) => Ok(Action::PushVlan(num(v, 0x0fff)? as u16)),
            ("tunnel", Some(a)) => {
                let (p, r) = a
                    .split_once(':')
                    .ok_or_else(|| bad_action("expected tunnel:PORT:REMOTE"))?;
                Ok(Action::Tunnel {
                    port: num(p, u64::from(PortNo::MAX))? as PortNo,
                    remote: num(r, u64::from(u16::MAX))? as u16,
                })
            }
            // ovs-ofctl accepts a bare port number as output.
            (n, None) if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => {
                Ok(Action::Output(num(n, u64::from(PortNo::MAX))? as PortNo))
            }
            ("normal" | "drop" | "flood" | "strip_vlan", Some(_)) => {
                Err(bad_action("takes no argument"))
            }
            ("output" | "mod_vlan_vid" | "push_vlan" | "tunnel", None) => {
                Err(bad_action("needs an argument after ':'"))
            }
            _ => Err(FlowError::UnknownAction(s.to_string())),
        }
    }
}

/// One flow: match, priority, actions, and an opaque cookie for the
/// controller that installed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRule {
    pub priority: u32,
    pub matches: FlowMatch,
    pub actions: Vec<Action>,
    pub cookie: u64,
}

impl FlowRule {
    /// Port numbers the rule names (match and actions), for the control
    /// plane to check they exist in the bridge.
    pub fn referenced_ports(&self) -> impl Iterator<Item = PortNo> + '_ {
        self.matches
            .in_port
            .into_iter()
            .chain(self.actions.iter().filter_map(|a| match a {
                Action::Output(p) | Action::Tunnel { port: p, .. } => Some(*p),
                _ => None,
            }))
    }
}

impl fmt::Display for FlowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "priority={}", self.priority)?;
        if self.cookie != 0 {
            write!(f, ",cookie={:#x}", self.cookie)?;
        }
        let m = self.matches.to_string();
        if !m.is_empty() {
            write!(f, ",{m}")?;
        }
        f.write_str(",actions=")?;
        if self.actions.is_empty() {
            return f.write_str("drop");
        }
        for (i, a) in self.actions.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl FromStr for FlowRule {
    type Err = FlowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some(pos) = s.find("actions=") else {
            return Err(FlowError::MissingActions(s.to_string()));
        };
        let (head, acts) = (&s[..pos], &s[pos + "actions=".len()..]);
        let mut priority = None;
        let mut cookie = None;
        let mut matches = FlowMatch::default();
        for tok in match_tokens(head) {
            match split_token(tok) {
                ("priority", Some(v)) => {
                    let p = parse_uint("priority", v, u64::from(u32::MAX))? as u32;
                    if priority.replace(p).is_some_and(|old| old != p) {
                        return Err(FlowError::Duplicate {
                            field: "priority",
                            token: tok.to_string(),
                        });
                    }
                }
                ("cookie", Some(v)) => {
                    let c = parse_uint("cookie", v, u64::MAX)?;
                    if cookie.replace(c).is_some_and(|old| old != c) {
                        return Err(FlowError::Duplicate {
                            field: "cookie",
                            token: tok.to_string(),
                        });
                    }
                }
                (f @ ("priority" | "cookie"), None) => {
                    return Err(FlowError::MissingValue(f.to_string()))
                }
                (f, v) => matches.apply(f, v)?,
            }
        }
        matches.validate()?;
        let mut actions = Vec::new();
        for tok in acts.split(',').map(str::trim) {
            if tok.is_empty() {
                return Err(FlowError::BadAction {
                    token: acts.to_string(),
                    reason: "empty action in list",
                });
            }
            actions.push(tok.parse()?);
        }
        Ok(FlowRule {
            priority: priority.unwrap_or(DEFAULT_PRIORITY),
            matches,
            actions,
            cookie: cookie.unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Masked, VlanMatch, ETH_TYPE_IPV4};
    use super::*;
    use crate::MacAddr;

    #[test]
    fn parse_full_example_and_roundtrip() {
        let s = "priority=100,in_port=3,tun_id=42,dl_src=02:00:00:00:00:01/ff:ff:ff:00:00:00,\
                 dl_dst=02:00:00:00:00:02,dl_vlan=10,dl_type=0x0800,nw_src=10.0.0.0/24,\
                 nw_dst=10.0.1.5,nw_proto=6,tp_src=80,tp_dst=443/0xfff0,actions=output:4,output:5";
        let r: FlowRule = s.parse().unwrap();
        assert_eq!(r.priority, 100);
        assert_eq!(r.matches.in_port, Some(3));
        assert_eq!(r.matches.tun_id, Some(42));
        assert_eq!(
            r.matches.dl_src,
            Some(Masked {
                value: MacAddr([2, 0, 0, 0, 0, 0]),
                mask: MacAddr([0xff, 0xff, 0xff, 0, 0, 0])
            })
        );
        assert_eq!(r.matches.dl_vlan, Some(VlanMatch::Vid(10)));
        assert_eq!(
            r.matches.tp_dst,
            Some(Masked {
                value: 432,
                mask: 0xfff0
            })
        );
        assert_eq!(r.actions, vec![Action::Output(4), Action::Output(5)]);
        let text = r.to_string();
        assert!(text.contains("tcp"), "{text}");
        let again: FlowRule = text.parse().unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn shorthands_and_all_actions_roundtrip() {
        for s in [
            "priority=1,ip,actions=normal",
            "priority=2,ipv6,nw_dst=2001:db8::/32,actions=flood",
            "priority=3,arp,actions=drop",
            "priority=4,udp,tp_dst=4789,actions=tunnel:7:2,mod_vlan_vid:100,strip_vlan",
            "priority=5,icmp6,actions=output:1",
            "priority=6,cookie=0xabc,dl_vlan=none,actions=normal",
            "priority=7,actions=drop",
        ] {
            let r: FlowRule = s.parse().unwrap();
            assert_eq!(r.to_string(), s);
        }
        let r: FlowRule = "tcp actions=3".parse().unwrap();
        assert_eq!(r.priority, DEFAULT_PRIORITY);
        assert_eq!(r.matches.dl_type, Some(ETH_TYPE_IPV4));
        assert_eq!(r.matches.nw_proto, Some(6));
        assert_eq!(r.actions, vec![Action::Output(3)]);
    }

    #[test]
    fn parse_errors_name_the_token() {
        let cases: [(&str, &str); 10] = [
            ("in_port=3,bogus=1,actions=drop", "bogus"),
            ("in_port=70000,actions=drop", "70000"),
            ("dl_src=02:00:00:00:00,actions=drop", "02:00:00:00:00"),
            ("nw_src=10.0.0.0/33,actions=drop", "10.0.0.0/33"),
            ("dl_vlan=4096,actions=drop", "4096"),
            ("in_port=3", "in_port=3"),
            ("actions=output:x", "output:x"),
            ("actions=jump", "jump"),
            ("ipv6,nw_src=10.0.0.1,actions=drop", "10.0.0.1"),
            ("tcp,nw_proto=17,actions=drop", "nw_proto=17"),
        ];
        for (s, needle) in cases {
            let e = s.parse::<FlowRule>().unwrap_err();
            assert!(e.to_string().contains(needle), "{s}: {e}");
        }
        assert_eq!(
            "in_port".parse::<FlowMatch>(),
            Err(FlowError::MissingValue("in_port".into()))
        );
    }
}
