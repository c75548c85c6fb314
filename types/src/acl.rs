//! The ACL language of LSDN's firewall model: rules (priority, match,
//! allow or drop), their text syntax
//! (`priority=10,tcp,nw_src=10.0.0.0/8,tp_dst=22,action=drop`), and the
//! restrictions a rule list must meet, checked by [`key_masks`]: all rules
//! of one priority match the same fields and masks, and no two rules of a
//! priority match the same masked key. With that, at most one rule per
//! priority can match a packet, so the outcome never depends on rule order.
//! `xvs_dataplane::policy::firewall` compiles a checked list for workers.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::flow::{FlowError, FlowMatch, IpPrefix, Masked, DEFAULT_PRIORITY};
use crate::{FlowKey, MacAddr};

/// Why a rule list was rejected. Rule numbers are positions in the list
/// given to [`key_masks`].
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

/// What a matching rule does; `allow` and `drop` in the rule text, the
/// protocol and the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AclAction {
    Allow,
    Drop,
}

impl fmt::Display for AclAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AclAction::Allow => "allow",
            AclAction::Drop => "drop",
        })
    }
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
        let mut priority = DEFAULT_PRIORITY;
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

/// Checks a rule list against LSDN's model (one match shape per priority,
/// no two rules alike, prefixes of one family, ports only with a protocol)
/// and returns each rule's classifier key and mask, in list order. Rule
/// numbers in errors are positions in `rules`.
pub fn key_masks(rules: &[AclRule]) -> Result<Vec<(FlowKey, FlowKey)>, FirewallError> {
    let mut out = Vec::with_capacity(rules.len());
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
        out.push((key, mask));
    }
    Ok(out)
}
