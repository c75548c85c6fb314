//! Lookup on miss (illumos varpd): the providers that answer a bridge's
//! misses, and the questions and answers between them and the control
//! plane.
//!
//! Workers report misses as [`Upcall`](crate::events::Upcall)s on
//! bounded queues (one per worker); the control thread drains them
//! ([`super::Control::process_upcalls`]), asks the bridge's provider and
//! installs what it answers: an L2 answer as an FDB entry (aging like a
//! learned one, shown with origin "lookup"), an L3 answer in the bridge's
//! address table (aging with the FDB's aging time), each published by one
//! snapshot swap. A provider answers at once or not at all; the external
//! one never does: its misses go to control-socket clients, which answer
//! with ordinary transactions.

use std::net::IpAddr;

use crate::events::MissKind;
use xvs_config::{LookupConfig, LookupProviderConfig};
use xvs_types::MacAddr;

/// A miss, as a provider sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub vlan: u16,
    pub kind: MissKind,
    /// The VTEP the frame came from, if it was decapsulated.
    pub src_vtep: Option<IpAddr>,
}

/// What a provider knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The MAC is behind this VTEP.
    L2 { vtep: IpAddr },
    /// The address has this MAC.
    L3 { mac: MacAddr },
}

/// Something that answers misses (varpd's plugin).
pub trait LookupProvider {
    fn lookup(&self, q: &Query) -> Option<Answer>;
}

impl LookupProvider for LookupConfig {
    fn lookup(&self, q: &Query) -> Option<Answer> {
        match (&self.provider, q.kind) {
            (LookupProviderConfig::Direct { vtep }, MissKind::Mac(_)) => {
                Some(Answer::L2 { vtep: *vtep })
            }
            (LookupProviderConfig::Multicast { group }, MissKind::Mac(_)) => {
                Some(Answer::L2 { vtep: *group })
            }
            (LookupProviderConfig::Static { entries }, MissKind::Mac(m)) => entries
                .iter()
                .find(|e| e.vlan == q.vlan && e.mac == m)
                .and_then(|e| e.vtep)
                .map(|vtep| Answer::L2 { vtep }),
            (LookupProviderConfig::Static { entries }, MissKind::Ip(ip)) => entries
                .iter()
                .find(|e| e.vlan == q.vlan && e.ip.map(xvs_types::ip_to_u128) == Some(ip))
                .map(|e| Answer::L3 { mac: e.mac }),
            // Direct and multicast know VTEPs, not addresses; external
            // answers through transactions.
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvs_config::{LookupEntryConfig, MissAction};
    use xvs_types::ip_to_u128;

    #[test]
    fn providers_answer_what_they_know() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let m = MacAddr([2, 0, 0, 0, 0, 7]);
        let q = |kind| Query {
            vlan: 0,
            kind,
            src_vtep: None,
        };
        let direct = LookupConfig {
            provider: LookupProviderConfig::Direct {
                vtep: ip("192.0.2.2"),
            },
            miss: MissAction::Drop,
            hold_ms: 100,
        };
        assert_eq!(
            direct.lookup(&q(MissKind::Mac(m))),
            Some(Answer::L2 {
                vtep: ip("192.0.2.2")
            })
        );
        assert_eq!(direct.lookup(&q(MissKind::Ip(1))), None);
        let stat = LookupConfig {
            provider: LookupProviderConfig::Static {
                entries: vec![LookupEntryConfig {
                    vlan: 0,
                    mac: m,
                    vtep: Some(ip("192.0.2.3")),
                    ip: Some(ip("10.0.0.7")),
                }],
            },
            miss: MissAction::Flood,
            hold_ms: 100,
        };
        assert_eq!(
            stat.lookup(&q(MissKind::Mac(m))),
            Some(Answer::L2 {
                vtep: ip("192.0.2.3")
            })
        );
        assert_eq!(
            stat.lookup(&q(MissKind::Ip(ip_to_u128(ip("10.0.0.7"))))),
            Some(Answer::L3 { mac: m })
        );
        assert_eq!(stat.lookup(&q(MissKind::Mac(MacAddr([2; 6])))), None);
        let ext = LookupConfig {
            provider: LookupProviderConfig::External,
            miss: MissAction::Flood,
            hold_ms: 100,
        };
        assert_eq!(ext.lookup(&q(MissKind::Mac(m))), None);
    }
}
