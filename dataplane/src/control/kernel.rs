//! The underlay as the kernel's tables report it, as data: routes,
//! neighbor entries and their changes. xvsd reads them over rtnetlink
//! (its `netlink` module: the sockets, the dump, the notifications) and
//! hands them to [`Control`](super::Control), which makes no syscall for
//! them.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::tables::route::{Prefix, Route};
use xvs_types::MacAddr;

/// A neighbor entry the kernel holds with a usable MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelNeigh {
    pub ip: IpAddr,
    pub mac: MacAddr,
    pub ifindex: u32,
    /// Confirmed lately (REACHABLE, PERMANENT, NOARP); false while usable
    /// but unconfirmed (STALE, DELAY, PROBE).
    pub confirmed: bool,
    /// Set by an administrator (PERMANENT, NOARP): it never needs
    /// re-confirming, and must not be marked used (NTF_USE clears
    /// PERMANENT, Linux 5.16+, turning it into an entry that ages).
    pub permanent: bool,
}

/// What the kernel's table holds for one address (xvsd's `NeighClient::get`
/// reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighLookup {
    Usable(KernelNeigh),
    /// Being resolved, no MAC yet (INCOMPLETE, NONE).
    Resolving,
    /// Resolution failed: the neighbor does not answer.
    Failed,
    /// No entry.
    Absent,
}

/// One change the kernel announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    RouteAdded(Route),
    RouteRemoved {
        prefix: Prefix,
        metric: u32,
    },
    NeighUpdated(KernelNeigh),
    /// The entry was deleted (garbage collection, `ip neigh del`, the
    /// interface going down).
    NeighRemoved(IpAddr),
    /// Resolution failed: the neighbor does not answer.
    NeighFailed(IpAddr),
}

/// What a dump of the kernel's tables read (xvsd's `netlink::dump`).
#[derive(Debug, Default, Clone)]
pub struct KernelState {
    pub routes: Vec<Route>,
    pub neighbors: Vec<KernelNeigh>,
    /// Interface names by index (for naming the devices of routes
    /// notified later).
    pub links: HashMap<u32, String>,
}
