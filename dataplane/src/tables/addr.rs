//! The overlay address table of one bridge: which MAC an overlay IP (v4 or
//! v6) has in a VLAN, what ARP/ND suppression answers from.
//!
//! Built by the control plane from the config (and, with lookup on miss,
//! from answers), published immutably in the snapshot and read by workers
//! with a binary search: no lock, no allocation, no hashing state. Keys are
//! (VLAN, address in the 128-bit form of [`ip_to_u128`]), so an IPv4 address
//! and its IPv4-mapped IPv6 form are one key; nobody resolves the latter
//! with ND.

use std::net::IpAddr;

use xvs_types::{ip_to_u128, u128_to_ip, MacAddr};

/// One entry: `ip` in `vlan` is at `mac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrEntry {
    pub vlan: u16,
    pub ip: u128,
    pub mac: MacAddr,
}

impl AddrEntry {
    pub fn ip_addr(&self) -> IpAddr {
        u128_to_ip(self.ip)
    }
}

/// A sorted, deduplicated table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddrTable {
    entries: Box<[AddrEntry]>,
}

impl AddrTable {
    /// Builds the table; for a key given twice the last entry wins (the
    /// config's validation refuses two MACs for one key before this).
    pub fn build(entries: impl IntoIterator<Item = (u16, IpAddr, MacAddr)>) -> AddrTable {
        let mut v: Vec<AddrEntry> = entries
            .into_iter()
            .map(|(vlan, ip, mac)| AddrEntry {
                vlan,
                ip: ip_to_u128(ip),
                mac,
            })
            .collect();
        // Stable: equal keys keep their order, so dedup keeps the last.
        v.sort_by_key(|e| (e.vlan, e.ip));
        v.reverse();
        v.dedup_by_key(|e| (e.vlan, e.ip));
        v.reverse();
        AddrTable {
            entries: v.into_boxed_slice(),
        }
    }

    /// The MAC of `ip` (128-bit form) in `vlan`.
    #[inline]
    pub fn lookup(&self, vlan: u16, ip: u128) -> Option<MacAddr> {
        self.entries
            .binary_search_by(|e| (e.vlan, e.ip).cmp(&(vlan, ip)))
            .ok()
            .map(|i| self.entries[i].mac)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &AddrEntry> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_vlan_and_family() {
        let m = |b: u8| MacAddr([2, 0, 0, 0, 0, b]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let t = AddrTable::build([
            (0, ip("10.0.0.2"), m(2)),
            (5, ip("10.0.0.2"), m(5)),
            (0, ip("2001:db8::2"), m(6)),
            (0, ip("10.0.0.1"), m(1)),
            (0, ip("10.0.0.1"), m(9)),
        ]);
        assert_eq!(t.len(), 4);
        let k = |s: &str| ip_to_u128(ip(s));
        assert_eq!(t.lookup(0, k("10.0.0.2")), Some(m(2)));
        assert_eq!(t.lookup(5, k("10.0.0.2")), Some(m(5)));
        assert_eq!(t.lookup(7, k("10.0.0.2")), None);
        assert_eq!(t.lookup(0, k("2001:db8::2")), Some(m(6)));
        assert_eq!(t.lookup(0, k("10.0.0.1")), Some(m(9)), "the last wins");
        assert_eq!(t.lookup(0, k("10.0.0.3")), None);
        assert!(AddrTable::default().lookup(0, k("10.0.0.1")).is_none());
        assert_eq!(t.iter().next().unwrap().ip_addr(), ip("10.0.0.1"));
    }
}
