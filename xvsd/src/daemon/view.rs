//! Result rows from the dataplane's live tables (the neighbour cache, the
//! route table, the snooping counters), for the daemon's answers to
//! `neigh_show`, `route_show` and `stats`. Rows from the desired config
//! alone are xvs-ctl's (`xvs_ctl::view`), shared with the tests' fake daemon.

use std::collections::BTreeMap;

use xvs_ctl::protocol::{NeighRow, NeighSourceName, NeighStateName, RouteRow};
use xvs_ctl::view::nonzero_map;
use xvs_dataplane::control::SnoopCounters;
use xvs_dataplane::tables::neigh::{NeighCache, NeighEntryInfo, NeighSource, NeighState};
use xvs_dataplane::tables::route::Route;

/// A route table entry as a `route_show` row.
pub fn route_row(r: &Route) -> RouteRow {
    {
        RouteRow {
            prefix: r.prefix,
            gateway: r.gateway,
            dev: r.dev.clone(),
            metric: r.metric,
            origin: r.origin,
            src: r.src,
        }
    }
}

/// A neighbour cache entry as a `neigh_show` row, without its use and age.
pub fn neigh_row(n: &NeighEntryInfo) -> NeighRow {
    {
        NeighRow {
            ip: n.ip,
            mac: n.mac,
            state: match n.state {
                NeighState::Incomplete { .. } => NeighStateName::Incomplete,
                NeighState::Reachable { .. } => NeighStateName::Reachable,
                NeighState::Stale { .. } => NeighStateName::Stale,
                NeighState::Failed { .. } => NeighStateName::Failed,
                NeighState::Static => NeighStateName::Static,
            },
            source: match n.source {
                NeighSource::Snooped => NeighSourceName::Snooped,
                NeighSource::Kernel => NeighSourceName::Kernel,
                NeighSource::Static => NeighSourceName::Static,
            },
            in_use: false,
            age_secs: None,
            refreshes: None,
            confirmations: None,
        }
    }
}

/// The uplink's `snooped` counters ([`crate::protocol::StatsRow`]): the
/// non-zero ones, by outcome.
pub fn snooped_map(c: &SnoopCounters) -> BTreeMap<String, u64> {
    nonzero_map([
        ("learned", c.learned),
        ("confirmed", c.confirmed),
        ("not_for_us", c.not_for_us),
        ("off_subnet", c.off_subnet),
        ("unsolicited", c.unsolicited),
        ("conflicting", c.conflicting),
        ("ignored", c.ignored),
    ])
}

/// The daemon's neighbor cache as `neigh_show` rows: each entry, whether a
/// tunnel uses it, and its age at `now` (the cache's clock, ns).
pub fn neigh_rows(cache: &NeighCache, now: u64) -> Vec<NeighRow> {
    cache
        .iter()
        .map(|n| NeighRow {
            in_use: cache.is_in_use(n.ip),
            age_secs: Some(now.saturating_sub(n.updated_ns) / 1_000_000_000),
            refreshes: Some(n.refreshes),
            confirmations: Some(n.confirmations),
            ..neigh_row(&n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use xvs_dataplane::tables::neigh::NeighConfig;
    use xvs_types::MacAddr;

    use super::*;

    #[test]
    fn neigh_rows_say_which_entries_a_tunnel_uses_and_how_old_they_are() {
        const S: u64 = 1_000_000_000;
        let mut cache = NeighCache::new(NeighConfig::default()).unwrap();
        let (hop, other): (IpAddr, IpAddr) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.9".parse().unwrap());
        cache.learn(
            hop,
            MacAddr([2, 0, 0, 0, 0, 1]),
            10 * S,
            NeighSource::Kernel,
        );
        cache.learn(
            other,
            MacAddr([2, 0, 0, 0, 0, 9]),
            4 * S,
            NeighSource::Kernel,
        );
        cache.set_in_use([hop]);
        let rows = neigh_rows(&cache, 12 * S + S / 2);
        let got: Vec<_> = rows.iter().map(|r| (r.ip, r.in_use, r.age_secs)).collect();
        assert_eq!(got, [(hop, true, Some(2)), (other, false, Some(8))]);
        let counts: Vec<_> = rows
            .iter()
            .map(|r| (r.refreshes, r.confirmations))
            .collect();
        assert_eq!(counts, [(Some(0), Some(1)); 2]);
        assert!(rows.iter().all(|r| r.state == NeighStateName::Reachable));
        // What JSON carries: `in_use` only when true.
        let json = serde_json::to_string(&rows).unwrap();
        assert_eq!(json.matches("\"in_use\":true").count(), 1, "{json}");
        assert!(!json.contains("\"in_use\":false"), "{json}");
    }

    #[test]
    fn snooped_counters_keep_only_what_happened() {
        let c = SnoopCounters {
            confirmed: 3,
            unsolicited: 1,
            ..SnoopCounters::default()
        };
        let m = snooped_map(&c);
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            [("confirmed".into(), 3), ("unsolicited".into(), 1)]
        );
        assert!(snooped_map(&SnoopCounters::default()).is_empty());
    }
}
