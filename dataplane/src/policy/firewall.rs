//! Per-port, per-direction ACL with LSDN's rule model: the compiled
//! firewall a worker checks. The rules, their text and the model's
//! restrictions are `xvs_types::acl`'s (re-exported here).
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

use xvs_types::acl;
pub use xvs_types::acl::{AclAction, AclMatch, AclParseError, AclRule, FirewallError};
use xvs_types::FlowKey;

use crate::tables::classifier::{Classifier, Rule};

/// One compiled ACL. Immutable once built.
#[derive(Debug)]
pub struct Firewall {
    classifier: Classifier<AclAction>,
    rules: Vec<AclRule>,
}

impl Firewall {
    /// Refuses a list LSDN's model forbids (see [`acl::key_masks`]), so a
    /// packet never depends on rule order.
    pub fn build(rules: Vec<AclRule>) -> Result<Firewall, FirewallError> {
        let crules = acl::key_masks(&rules)?
            .into_iter()
            .zip(&rules)
            .map(|((key, mask), r)| Rule::new(r.priority, key, mask, r.action))
            .collect();
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
    use crate::tables::flow::{IpPrefix, Masked, ETH_TYPE_IPV4, ETH_TYPE_IPV6};
    use std::net::IpAddr;
    use xvs_types::ip_to_u128;

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
