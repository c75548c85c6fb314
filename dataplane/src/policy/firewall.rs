//! Per-port, per-direction ACL with LSDN's rule model.
//!
//! One [`Firewall`] is the rule list of one (port, direction); the snapshot
//! holds one per port and direction that has rules (a port without one
//! allows everything). Rules are evaluated in priority order, the first
//! match wins, and a packet no rule matches is allowed.
//!
//! LSDN's restriction is enforced at build time: all rules of one priority
//! must have the same match shape (the same mask), and no two rules may have
//! the same priority and the same masked key. With that, at most one rule
//! per priority can match a packet, so the outcome never depends on rule
//! order — and it is what lets LSDN offload a priority level as one hash
//! table (tc flower), which we may want later.
//!
//! Who writes, who reads: the control plane builds a [`Firewall`] and
//! publishes it in a snapshot; workers call [`Firewall::check`] and keep
//! their own [`FirewallCounters`].

use std::collections::HashMap;
use std::fmt;

use crate::tables::classifier::{Classifier, Rule};
use crate::tables::flow::{FlowError, FlowMatch, IpPrefix, Masked};
use crate::types::{FlowKey, MacAddr};

/// Why a rule list was rejected. Rule numbers are positions in the list
/// given to [`Firewall::build`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirewallError {
    #[error(
        "ACL rules {first} and {second} share priority {priority} but match different fields: \
         rule {first} matches [{first_shape}], rule {second} matches [{second_shape}] \
         (all rules of one priority must match on the same fields and masks)"
    )]
    ShapeMismatch {
        priority: u32,
        first: usize,
        first_shape: String,
        second: usize,
        second_shape: String,
    },
    #[error("ACL rules {first} and {second} are duplicates: both priority {priority} matching [{matches}]")]
    Duplicate {
        priority: u32,
        first: usize,
        second: usize,
        matches: String,
    },
    #[error("ACL rule {index} (priority {priority}): nw_src {src} and nw_dst {dst} are of different IP families")]
    FamilyConflict {
        index: usize,
        priority: u32,
        src: IpPrefix,
        dst: IpPrefix,
    },
    #[error("ACL rule {index} (priority {priority}) matches tp_src/tp_dst without ip_proto")]
    PortsWithoutProto { index: usize, priority: u32 },
    #[error("ACL rule {index} (priority {priority}): {source}")]
    InvalidMatch {
        index: usize,
        priority: u32,
        source: FlowError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclAction {
    Allow,
    Drop,
}

/// What an ACL rule matches. `None` is a wildcard. An IP prefix implies the
/// eth_type of its family; `ip_proto` alone matches both families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AclMatch {
    pub dl_src: Option<Masked<MacAddr>>,
    pub dl_dst: Option<Masked<MacAddr>>,
    pub nw_src: Option<IpPrefix>,
    pub nw_dst: Option<IpPrefix>,
    pub ip_proto: Option<u8>,
    pub tp_src: Option<Masked<u16>>,
    pub tp_dst: Option<Masked<u16>>,
}

impl AclMatch {
    fn to_flow_match(self) -> FlowMatch {
        FlowMatch {
            dl_src: self.dl_src,
            dl_dst: self.dl_dst,
            nw_src: self.nw_src,
            nw_dst: self.nw_dst,
            nw_proto: self.ip_proto,
            tp_src: self.tp_src,
            tp_dst: self.tp_dst,
            ..FlowMatch::default()
        }
    }

    /// The fields and masks, without values: what must agree per priority.
    pub fn shape(&self) -> String {
        let mut parts = Vec::new();
        let full = MacAddr([0xff; 6]);
        for (name, m) in [("dl_src", self.dl_src), ("dl_dst", self.dl_dst)] {
            if let Some(m) = m {
                if m.mask == full {
                    parts.push(name.to_string());
                } else {
                    parts.push(format!("{name}/{}", m.mask));
                }
            }
        }
        for (name, p) in [("nw_src", self.nw_src), ("nw_dst", self.nw_dst)] {
            if let Some(p) = p {
                let fam = if p.is_ipv4() { "ipv4" } else { "ipv6" };
                parts.push(format!("{name}={fam}/{}", p.prefix_len()));
            }
        }
        if self.ip_proto.is_some() {
            parts.push("ip_proto".into());
        }
        for (name, m) in [("tp_src", self.tp_src), ("tp_dst", self.tp_dst)] {
            if let Some(m) = m {
                if m.mask == 0xffff {
                    parts.push(name.to_string());
                } else {
                    parts.push(format!("{name}/{:#x}", m.mask));
                }
            }
        }
        parts.join(",")
    }
}

impl fmt::Display for AclMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut fm = self.to_flow_match();
        // Display the ACL's own view: no implied dl_type, proto as a number.
        fm.dl_type = None;
        f.write_str(&fm.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclRule {
    pub priority: u32,
    pub matches: AclMatch,
    pub action: AclAction,
}

/// Why an ACL rule's text did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclParseError {
    #[error("ACL rule {0:?}: missing action=allow|drop")]
    MissingAction(String),
    #[error("ACL rule {rule:?}: unknown action {action:?} (expected allow or drop)")]
    BadAction { rule: String, action: String },
    #[error("ACL rule {rule:?}: bad priority {value:?}")]
    BadPriority { rule: String, value: String },
    #[error("ACL rule {rule:?}: field {field} cannot be matched by an ACL (only MACs, IP prefixes, protocol and ports)")]
    Unsupported { rule: String, field: &'static str },
    #[error("ACL rule {rule:?}: {source}")]
    Match { rule: String, source: FlowError },
}

impl std::str::FromStr for AclRule {
    type Err = AclParseError;

    /// The flow match syntax plus `priority=N` and `action=allow|drop`,
    /// e.g. `priority=10,tcp,nw_src=10.0.0.0/8,tp_dst=22,action=drop`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rule = || s.to_string();
        let mut priority = crate::tables::flow::DEFAULT_PRIORITY;
        let mut action = None;
        let mut rest = Vec::new();
        for tok in s.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
            match tok.split_once('=') {
                Some(("priority", v)) => {
                    priority = v.trim().parse().map_err(|_| AclParseError::BadPriority {
                        rule: rule(),
                        value: v.to_string(),
                    })?
                }
                Some(("action" | "actions", v)) => {
                    action = Some(match v.trim() {
                        "allow" | "accept" => AclAction::Allow,
                        "drop" | "deny" => AclAction::Drop,
                        other => {
                            return Err(AclParseError::BadAction {
                                rule: rule(),
                                action: other.to_string(),
                            })
                        }
                    })
                }
                _ => rest.push(tok),
            }
        }
        let action = action.ok_or_else(|| AclParseError::MissingAction(rule()))?;
        let m: FlowMatch = rest
            .join(",")
            .parse()
            .map_err(|source| AclParseError::Match {
                rule: rule(),
                source,
            })?;
        let unsupported = |field| AclParseError::Unsupported {
            rule: rule(),
            field,
        };
        if m.in_port.is_some() {
            return Err(unsupported("in_port"));
        }
        if m.tun_id.is_some() {
            return Err(unsupported("tun_id"));
        }
        if m.dl_vlan.is_some() {
            return Err(unsupported("dl_vlan"));
        }
        Ok(AclRule {
            priority,
            matches: AclMatch {
                dl_src: m.dl_src,
                dl_dst: m.dl_dst,
                nw_src: m.nw_src,
                nw_dst: m.nw_dst,
                ip_proto: m.nw_proto,
                tp_src: m.tp_src,
                tp_dst: m.tp_dst,
            },
            action,
        })
    }
}

/// One compiled ACL. Immutable once built.
#[derive(Debug)]
pub struct Firewall {
    classifier: Classifier<AclAction>,
    rules: Vec<AclRule>,
}

impl Firewall {
    pub fn build(rules: Vec<AclRule>) -> Result<Firewall, FirewallError> {
        let mut crules = Vec::with_capacity(rules.len());
        // priority -> (first rule index, its mask)
        let mut shapes: HashMap<u32, (usize, FlowKey)> = HashMap::new();
        let mut keys: HashMap<(u32, FlowKey), usize> = HashMap::new();
        for (index, r) in rules.iter().enumerate() {
            let m = &r.matches;
            if let (Some(src), Some(dst)) = (m.nw_src, m.nw_dst) {
                if src.is_ipv4() != dst.is_ipv4() {
                    return Err(FirewallError::FamilyConflict {
                        index,
                        priority: r.priority,
                        src,
                        dst,
                    });
                }
            }
            if m.ip_proto.is_none() && (m.tp_src.is_some() || m.tp_dst.is_some()) {
                return Err(FirewallError::PortsWithoutProto {
                    index,
                    priority: r.priority,
                });
            }
            let (key, mask) =
                m.to_flow_match()
                    .to_key_mask()
                    .map_err(|source| FirewallError::InvalidMatch {
                        index,
                        priority: r.priority,
                        source,
                    })?;
            match shapes.get(&r.priority) {
                Some(&(first, first_mask)) if first_mask != mask => {
                    return Err(FirewallError::ShapeMismatch {
                        priority: r.priority,
                        first,
                        first_shape: rules[first].matches.shape(),
                        second: index,
                        second_shape: m.shape(),
                    });
                }
                Some(_) => {}
                None => {
                    shapes.insert(r.priority, (index, mask));
                }
            }
            if let Some(&first) = keys.get(&(r.priority, key)) {
                return Err(FirewallError::Duplicate {
                    priority: r.priority,
                    first,
                    second: index,
                    matches: m.to_string(),
                });
            }
            keys.insert((r.priority, key), index);
            crules.push(Rule::new(r.priority, key, mask, r.action));
        }
        Ok(Firewall {
            classifier: Classifier::build(crules),
            rules,
        })
    }

    /// The verdict for `key` and the rule that gave it (`None`: no rule
    /// matched, default allow).
    #[inline]
    pub fn check(&self, key: &FlowKey) -> (AclAction, Option<u32>) {
        match self.classifier.lookup(key) {
            Some((idx, action)) => (*action, Some(idx)),
            None => (AclAction::Allow, None),
        }
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub fn rules(&self) -> &[AclRule] {
        &self.rules
    }
}

/// Per-worker hit counters for one [`Firewall`], indexed by rule index.
/// Owned and written by one worker; the control plane sums across workers.
/// Rule indices are only meaningful for the firewall the counters were
/// sized for: on a snapshot swap the worker calls [`FirewallCounters::reset_for`]
/// (outside the per-packet path; it may allocate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallCounters {
    pub hits: Vec<u64>,
    /// Packets no rule matched (allowed by default).
    pub default_allowed: u64,
}

impl FirewallCounters {
    pub fn new(fw: &Firewall) -> FirewallCounters {
        FirewallCounters {
            hits: vec![0; fw.rule_count()],
            default_allowed: 0,
        }
    }

    pub fn reset_for(&mut self, fw: &Firewall) {
        self.hits.clear();
        self.hits.resize(fw.rule_count(), 0);
        self.default_allowed = 0;
    }

    /// Counts one verdict from [`Firewall::check`]. An index beyond the
    /// sized range (counters not reset after a swap) is ignored rather than
    /// panicking on the packet path.
    #[inline]
    pub fn record(&mut self, rule: Option<u32>) {
        match rule {
            Some(i) => {
                if let Some(c) = self.hits.get_mut(i as usize) {
                    *c += 1;
                }
            }
            None => self.default_allowed += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::flow::{ETH_TYPE_IPV4, ETH_TYPE_IPV6};
    use crate::types::ip_to_u128;
    use std::net::IpAddr;

    fn pfx(s: &str) -> IpPrefix {
        s.parse().unwrap()
    }

    fn port(p: u16) -> Option<Masked<u16>> {
        Some(Masked {
            value: p,
            mask: 0xffff,
        })
    }

    fn key(src: &str, dst: &str, proto: u8, dport: u16) -> FlowKey {
        let src: IpAddr = src.parse().unwrap();
        let dst: IpAddr = dst.parse().unwrap();
        let mut k = FlowKey::default();
        k.set_eth_type(if src.is_ipv4() {
            ETH_TYPE_IPV4
        } else {
            ETH_TYPE_IPV6
        });
        k.set_nw_src(ip_to_u128(src));
        k.set_nw_dst(ip_to_u128(dst));
        k.set_ip_proto(proto);
        k.set_tp_dst(dport);
        k
    }

    fn rule(priority: u32, matches: AclMatch, action: AclAction) -> AclRule {
        AclRule {
            priority,
            matches,
            action,
        }
    }

    #[test]
    fn priority_order_first_match_default_allow() {
        let fw = Firewall::build(vec![
            rule(
                10,
                AclMatch {
                    nw_src: Some(pfx("10.0.0.0/8")),
                    ..Default::default()
                },
                AclAction::Drop,
            ),
            rule(
                20,
                AclMatch {
                    nw_src: Some(pfx("10.1.0.0/16")),
                    ip_proto: Some(6),
                    tp_dst: port(22),
                    ..Default::default()
                },
                AclAction::Allow,
            ),
        ])
        .unwrap();
        assert_eq!(
            fw.check(&key("10.1.2.3", "1.1.1.1", 6, 22)),
            (AclAction::Allow, Some(1))
        );
        assert_eq!(
            fw.check(&key("10.1.2.3", "1.1.1.1", 6, 23)),
            (AclAction::Drop, Some(0))
        );
        assert_eq!(
            fw.check(&key("11.0.0.1", "1.1.1.1", 6, 22)),
            (AclAction::Allow, None)
        );
        // An IPv4 prefix does not match IPv6 traffic with a mapped address.
        assert_eq!(fw.check(&key("::ffff:10.0.0.1", "::1", 6, 22)).1, None);

        let mut c = FirewallCounters::new(&fw);
        c.record(Some(1));
        c.record(None);
        c.record(Some(99));
        assert_eq!(c.hits, vec![0, 1]);
        assert_eq!(c.default_allowed, 1);
    }

    #[test]
    fn same_priority_needs_same_shape() {
        let e = Firewall::build(vec![
            rule(
                5,
                AclMatch {
                    nw_src: Some(pfx("10.0.0.0/24")),
                    ..Default::default()
                },
                AclAction::Drop,
            ),
            rule(
                5,
                AclMatch {
                    ip_proto: Some(17),
                    tp_dst: port(53),
                    ..Default::default()
                },
                AclAction::Drop,
            ),
        ])
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("priority 5"), "{msg}");
        assert!(msg.contains("nw_src=ipv4/24"), "{msg}");
        assert!(msg.contains("ip_proto,tp_dst"), "{msg}");

        // Same fields but another prefix length is another shape too.
        let e = Firewall::build(vec![
            rule(
                5,
                AclMatch {
                    nw_src: Some(pfx("10.0.0.0/24")),
                    ..Default::default()
                },
                AclAction::Drop,
            ),
            rule(
                5,
                AclMatch {
                    nw_src: Some(pfx("10.0.0.0/16")),
                    ..Default::default()
                },
                AclAction::Drop,
            ),
        ]);
        assert!(matches!(e, Err(FirewallError::ShapeMismatch { .. })));

        // Same shape, different keys: fine.
        let ok = Firewall::build(vec![
            rule(
                5,
                AclMatch {
                    nw_src: Some(pfx("10.0.0.0/24")),
                    ..Default::default()
                },
                AclAction::Drop,
            ),
            rule(
                5,
                AclMatch {
                    nw_src: Some(pfx("10.0.1.0/24")),
                    ..Default::default()
                },
                AclAction::Allow,
            ),
        ]);
        assert!(ok.is_ok());
    }

    #[test]
    fn duplicates_and_bad_rules_rejected() {
        let m = AclMatch {
            nw_dst: Some(pfx("192.168.0.0/16")),
            ..Default::default()
        };
        // Host bits differ but the masked key is the same.
        let m2 = AclMatch {
            nw_dst: Some(pfx("192.168.7.7/16")),
            ..Default::default()
        };
        let e = Firewall::build(vec![
            rule(1, m, AclAction::Drop),
            rule(1, m2, AclAction::Allow),
        ])
        .unwrap_err();
        assert!(matches!(
            e,
            FirewallError::Duplicate {
                priority: 1,
                first: 0,
                second: 1,
                ..
            }
        ));
        assert!(e.to_string().contains("192.168.0.0/16"), "{e}");
        // Same match at another priority is not a duplicate.
        assert!(Firewall::build(vec![
            rule(1, m, AclAction::Drop),
            rule(2, m2, AclAction::Allow)
        ])
        .is_ok());

        let e = Firewall::build(vec![rule(
            3,
            AclMatch {
                nw_src: Some(pfx("10.0.0.0/8")),
                nw_dst: Some(pfx("2001:db8::/32")),
                ..Default::default()
            },
            AclAction::Drop,
        )])
        .unwrap_err();
        assert!(e.to_string().contains("2001:db8::/32"), "{e}");
        let e = Firewall::build(vec![rule(
            4,
            AclMatch {
                tp_dst: port(80),
                ..Default::default()
            },
            AclAction::Drop,
        )])
        .unwrap_err();
        assert_eq!(
            e,
            FirewallError::PortsWithoutProto {
                index: 0,
                priority: 4
            }
        );
    }

    #[test]
    fn empty_firewall_allows() {
        let fw = Firewall::build(vec![]).unwrap();
        assert_eq!(fw.check(&FlowKey::default()), (AclAction::Allow, None));
        assert_eq!(FirewallCounters::new(&fw).hits.len(), 0);
    }
}
