//! Underlay state from the kernel over rtnetlink, the Open vSwitch
//! userspace-tunneling way: the main table's IPv4 and IPv6 unicast routes
//! and the neighbor table are dumped at start ([`dump`]) and followed by
//! notifications ([`Monitor`]); the control plane folds both, as data
//! ([`xvs_dataplane::control::kernel`]), into its
//! [`Underlay`](xvs_dataplane::control::Underlay), which rebuilds tunnel
//! templates.
//!
//! Next hops are resolved and kept confirmed through the kernel's table
//! ([`NeighClient`]): RTM_NEWNEIGH with NTF_USE marks an entry used (and
//! creates and resolves a missing one), which is what keeps the kernel
//! re-validating it by unicast probes rather than letting it go stale and
//! collecting it; RTM_GETNEIGH then reads the entry, because a change of
//! state such as STALE to DELAY is never notified.
//!
//! Control path only: a plain blocking (dump, requests) or non-blocking
//! (monitor) netlink socket on the control thread; workers never see any
//! of it. The sockets live here, in the daemon, so that `xvs-dataplane`
//! makes no syscall of its own: it is handed what they read.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use xvs_dataplane::control::kernel::{KernelEvent, KernelNeigh, KernelState, NeighLookup};
use xvs_dataplane::tables::route::{Prefix, Route, RouteOrigin};
use xvs_types::MacAddr;

/// The kernel's main routing table (RT_TABLE_MAIN).
const MAIN_TABLE: u32 = 254;
/// rtnetlink multicast groups (RTNLGRP_*).
const GROUP_NEIGH: u32 = 3;
const GROUP_IPV4_ROUTE: u32 = 7;
const GROUP_IPV6_ROUTE: u32 = 11;

/// Why talking to the kernel failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("netlink {what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("netlink {what}: the kernel answered error {code}")]
    Kernel { what: &'static str, code: i32 },
    #[error("netlink {what}: undecodable message: {reason}")]
    Decode { what: &'static str, reason: String },
}

fn socket() -> Result<Socket, KernelError> {
    let mut s = Socket::new(NETLINK_ROUTE).map_err(KernelError::Socket)?;
    s.bind_auto().map_err(KernelError::Socket)?;
    s.connect(&SocketAddr::new(0, 0))
        .map_err(KernelError::Socket)?;
    Ok(s)
}

/// Sends one dump request and collects every answer until `Done`.
fn dump_one(
    s: &Socket,
    what: &'static str,
    req: RouteNetlinkMessage,
) -> Result<Vec<RouteNetlinkMessage>, KernelError> {
    let mut hdr = NetlinkHeader::default();
    hdr.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut packet = NetlinkMessage::new(hdr, NetlinkPayload::from(req));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf[..]);
    s.send(&buf[..], 0)
        .map_err(|source| KernelError::Io { what, source })?;
    let mut out = Vec::new();
    let mut rx = vec![0u8; 1 << 16];
    loop {
        let n = s
            .recv(&mut &mut rx[..], 0)
            .map_err(|source| KernelError::Io { what, source })?;
        let mut off = 0;
        while off < n {
            let msg =
                NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[off..n]).map_err(|e| {
                    KernelError::Decode {
                        what,
                        reason: e.to_string(),
                    }
                })?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    return Err(KernelError::Kernel {
                        what,
                        code: e.code.map_or(0, |c| c.get()),
                    })
                }
                NetlinkPayload::InnerMessage(m) => out.push(m),
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += len;
        }
    }
}

/// Reads the main table's unicast routes and the usable neighbor entries.
pub fn dump() -> Result<KernelState, KernelError> {
    let s = socket()?;
    let links: HashMap<u32, String> = dump_one(
        &s,
        "link dump",
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
    )?
    .into_iter()
    .filter_map(|m| match m {
        RouteNetlinkMessage::NewLink(l) => {
            let name = l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })?;
            Some((l.header.index, name))
        }
        _ => None,
    })
    .collect();
    let mut state = KernelState {
        links,
        ..KernelState::default()
    };
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut req = RouteMessage::default();
        req.header.address_family = family;
        for m in dump_one(&s, "route dump", RouteNetlinkMessage::GetRoute(req))? {
            if let RouteNetlinkMessage::NewRoute(r) = m {
                if let Some(route) = route_from(&r, &state.links) {
                    state.routes.push(route);
                }
            }
        }
    }
    for m in dump_one(
        &s,
        "neighbor dump",
        RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
    )? {
        if let RouteNetlinkMessage::NewNeighbour(n) = m {
            if let Some(n) = neigh_from(&n) {
                state.neighbors.push(n);
            }
        }
    }
    Ok(state)
}

/// Asks the kernel to resolve `ip` on interface `ifindex` (an ARP request
/// or neighbor solicitation, with the kernel's own retries), through a
/// socket of its own; see [`NeighClient::mark_used`]. The answer arrives as
/// a neighbor notification ([`Monitor`]); meanwhile frames to the tunnel
/// are dropped and counted (`neigh_unresolved`), never held.
pub fn resolve(ip: IpAddr, ifindex: u32) -> Result<(), KernelError> {
    NeighClient::new()?.mark_used(ip, ifindex)
}

/// Requests about single neighbor entries, on one socket kept open.
#[derive(Debug)]
pub struct NeighClient {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl NeighClient {
    pub fn new() -> Result<NeighClient, KernelError> {
        Ok(NeighClient {
            sock: socket()?,
            seq: 0,
            buf: vec![0u8; 8192],
        })
    }

    /// RTM_NEWNEIGH with NTF_USE (and NLM_F_CREATE) for `ip` on `ifindex`:
    /// the kernel marks its entry used, as its own users do on every
    /// packet. A missing or failed entry is created and resolved; a stale
    /// one goes to DELAY and is probed; a reachable one about to expire is
    /// re-validated by a unicast probe instead of going stale.
    pub fn mark_used(&mut self, ip: IpAddr, ifindex: u32) -> Result<(), KernelError> {
        let what = "neighbor use";
        let mut msg = neigh_request(ip, ifindex);
        msg.header.flags = NeighbourFlags::Use;
        let answer = self.request(
            what,
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
        )?;
        match answer {
            NetlinkPayload::Error(e) if e.code.is_some() => Err(KernelError::Kernel {
                what,
                code: e.code.map_or(0, |c| c.get()),
            }),
            _ => Ok(()),
        }
    }

    /// RTM_GETNEIGH for `ip` on `ifindex`: the kernel's entry as it is now.
    pub fn get(&mut self, ip: IpAddr, ifindex: u32) -> Result<NeighLookup, KernelError> {
        let what = "neighbor get";
        let msg = neigh_request(ip, ifindex);
        let answer = self.request(what, RouteNetlinkMessage::GetNeighbour(msg), NLM_F_REQUEST)?;
        match answer {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n)) => {
                Ok(lookup_from(&n))
            }
            NetlinkPayload::Error(e) => match e.code.map_or(0, |c| c.get()) {
                c if c == -ENOENT => Ok(NeighLookup::Absent),
                code => Err(KernelError::Kernel { what, code }),
            },
            other => Err(KernelError::Decode {
                what,
                reason: format!("unexpected answer {other:?}"),
            }),
        }
    }

    /// Sends one request and returns the answer carrying its sequence
    /// number (skipping any left over from an earlier request).
    fn request(
        &mut self,
        what: &'static str,
        req: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<NetlinkPayload<RouteNetlinkMessage>, KernelError> {
        self.seq = self.seq.wrapping_add(1);
        request_on(&self.sock, self.seq, &mut self.buf, what, req, flags)
    }
}

/// Sends `req` as request `seq` on `sock` and returns the answer carrying
/// that sequence number (skipping any left over from an earlier request).
fn request_on(
    sock: &Socket,
    seq: u32,
    buf: &mut [u8],
    what: &'static str,
    req: RouteNetlinkMessage,
    flags: u16,
) -> Result<NetlinkPayload<RouteNetlinkMessage>, KernelError> {
    let mut hdr = NetlinkHeader::default();
    hdr.flags = flags;
    hdr.sequence_number = seq;
    let mut packet = NetlinkMessage::new(hdr, NetlinkPayload::from(req));
    packet.finalize();
    let mut out = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut out[..]);
    sock.send(&out[..], 0)
        .map_err(|source| KernelError::Io { what, source })?;
    // The kernel answers an rtnetlink request before send returns, so
    // this never waits for long.
    loop {
        let n = sock
            .recv(&mut &mut buf[..], 0)
            .map_err(|source| KernelError::Io { what, source })?;
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..n]).map_err(|e| {
            KernelError::Decode {
                what,
                reason: e.to_string(),
            }
        })?;
        if msg.header.sequence_number == seq {
            return Ok(msg.payload);
        }
    }
}

/// One acknowledged link request on a socket of its own (rare: the
/// fast path's miss pair at start and stop).
fn link_request(
    what: &'static str,
    req: RouteNetlinkMessage,
    flags: u16,
) -> Result<(), KernelError> {
    let sock = socket()?;
    let mut buf = vec![0u8; 8192];
    match request_on(
        &sock,
        1,
        &mut buf,
        what,
        req,
        flags | NLM_F_REQUEST | NLM_F_ACK,
    )? {
        NetlinkPayload::Error(e) if e.code.is_some() => Err(KernelError::Kernel {
            what,
            code: e.code.map_or(0, |c| c.get()),
        }),
        _ => Ok(()),
    }
}

/// RTM_NEWLINK creating the link `msg` describes (NLM_F_EXCL: an
/// existing one of that name is an error).
pub fn new_link(msg: LinkMessage) -> Result<(), KernelError> {
    link_request(
        "link create",
        RouteNetlinkMessage::NewLink(msg),
        NLM_F_CREATE | netlink_packet_core::NLM_F_EXCL,
    )
}

/// RTM_NEWLINK changing the existing link `msg.header.index`.
pub fn set_link(msg: LinkMessage) -> Result<(), KernelError> {
    link_request("link set", RouteNetlinkMessage::SetLink(msg), 0)
}

/// RTM_DELLINK of the link named `name`.
pub fn delete_link(name: &str) -> Result<(), KernelError> {
    let mut msg = LinkMessage::default();
    msg.attributes = vec![LinkAttribute::IfName(name.to_string())];
    link_request("link delete", RouteNetlinkMessage::DelLink(msg), 0)
}

/// ENOENT, as a netlink error code (negative errno).
const ENOENT: i32 = 2;

/// A neighbor message naming `ip` on `ifindex`, for a request.
fn neigh_request(ip: IpAddr, ifindex: u32) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    msg.header.ifindex = ifindex;
    msg.attributes
        .push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
    msg
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn table_of(h: &RouteHeader, attrs: &[RouteAttribute]) -> u32 {
    attrs
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(h.table))
}

/// A main-table unicast route, or `None` for everything we do not route
/// tunnels by (local, broadcast, other tables, multipath without a single
/// next hop).
fn route_from(r: &RouteMessage, links: &HashMap<u32, String>) -> Option<Route> {
    let h = &r.header;
    if h.kind != RouteType::Unicast || table_of(h, &r.attributes) != MAIN_TABLE {
        return None;
    }
    let any: IpAddr = match h.address_family {
        AddressFamily::Inet => Ipv4Addr::UNSPECIFIED.into(),
        AddressFamily::Inet6 => Ipv6Addr::UNSPECIFIED.into(),
        _ => return None,
    };
    let (mut dst, mut gateway, mut src, mut oif, mut metric) = (any, None, None, 0, 0);
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = route_addr(d)?,
            RouteAttribute::Gateway(g) => gateway = route_addr(g),
            RouteAttribute::PrefSource(p) => src = route_addr(p),
            RouteAttribute::Oif(i) => oif = *i,
            RouteAttribute::Priority(p) => metric = *p,
            _ => {}
        }
    }
    if oif == 0 {
        return None;
    }
    Some(Route {
        prefix: Prefix::new(dst, h.destination_prefix_length).ok()?,
        gateway,
        dev: links.get(&oif).cloned().unwrap_or_else(|| oif.to_string()),
        ifindex: oif,
        src,
        metric,
        origin: RouteOrigin::Kernel,
    })
}

fn neigh_ip(n: &NeighbourMessage) -> Option<IpAddr> {
    n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    })
}

/// What a kernel neighbor message says about its address.
fn lookup_from(n: &NeighbourMessage) -> NeighLookup {
    if let Some(k) = neigh_from(n) {
        return NeighLookup::Usable(k);
    }
    match n.header.state {
        NeighbourState::Failed => NeighLookup::Failed,
        _ => NeighLookup::Resolving,
    }
}

/// A neighbor with a usable MAC (the kernel's reachable, stale, delay,
/// probe, permanent and noarp states), or `None`.
fn neigh_from(n: &NeighbourMessage) -> Option<KernelNeigh> {
    let confirmed = match n.header.state {
        NeighbourState::Reachable | NeighbourState::Permanent | NeighbourState::Noarp => true,
        NeighbourState::Stale | NeighbourState::Delay | NeighbourState::Probe => false,
        _ => return None,
    };
    let mac = n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(b) if b.len() == 6 => MacAddr::from_slice(b),
        _ => None,
    })?;
    if mac.is_zero() || mac.is_multicast() {
        return None;
    }
    Some(KernelNeigh {
        ip: neigh_ip(n)?,
        mac,
        ifindex: n.header.ifindex,
        confirmed,
        permanent: matches!(
            n.header.state,
            NeighbourState::Permanent | NeighbourState::Noarp
        ),
    })
}

/// Route and neighbor notifications, read without blocking.
#[derive(Debug)]
pub struct Monitor {
    sock: Socket,
    buf: Vec<u8>,
    links: HashMap<u32, String>,
}

impl Monitor {
    /// Subscribes to IPv4/IPv6 route and neighbor changes. Start it before
    /// [`dump`] so nothing between the two is missed (replaying a change
    /// the dump already had is harmless).
    pub fn new() -> Result<Monitor, KernelError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(KernelError::Socket)?;
        sock.bind_auto().map_err(KernelError::Socket)?;
        for g in [GROUP_NEIGH, GROUP_IPV4_ROUTE, GROUP_IPV6_ROUTE] {
            sock.add_membership(g).map_err(KernelError::Socket)?;
        }
        sock.set_non_blocking(true).map_err(KernelError::Socket)?;
        Ok(Monitor {
            sock,
            buf: vec![0u8; 1 << 16],
            links: HashMap::new(),
        })
    }

    /// The netlink socket's fd, to sleep on it together with other fds.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.sock.as_fd()
    }

    /// Names for interface indices in the routes reported (from a dump).
    pub fn set_link_names(&mut self, links: HashMap<u32, String>) {
        self.links = links;
    }

    /// Every event queued now; empty when there is none.
    pub fn poll(&mut self) -> Result<Vec<KernelEvent>, KernelError> {
        let mut out = Vec::new();
        loop {
            let n = match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(out),
                Err(source) => {
                    return Err(KernelError::Io {
                        what: "monitor",
                        source,
                    })
                }
            };
            let mut off = 0;
            while off < n {
                let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n])
                else {
                    // One undecodable notification must not stop the rest.
                    break;
                };
                let len = msg.header.length as usize;
                if let NetlinkPayload::InnerMessage(m) = msg.payload {
                    if let Some(ev) = self.event(m) {
                        out.push(ev);
                    }
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }

    fn event(&self, m: RouteNetlinkMessage) -> Option<KernelEvent> {
        match m {
            RouteNetlinkMessage::NewRoute(r) => {
                route_from(&r, &self.links).map(KernelEvent::RouteAdded)
            }
            RouteNetlinkMessage::DelRoute(r) => {
                route_from(&r, &self.links).map(|r| KernelEvent::RouteRemoved {
                    prefix: r.prefix,
                    metric: r.metric,
                })
            }
            // An entry being resolved has nothing to tell until it is
            // answered or fails.
            RouteNetlinkMessage::NewNeighbour(n) => match lookup_from(&n) {
                NeighLookup::Usable(k) => Some(KernelEvent::NeighUpdated(k)),
                NeighLookup::Failed => Some(KernelEvent::NeighFailed(neigh_ip(&n)?)),
                NeighLookup::Resolving | NeighLookup::Absent => None,
            },
            RouteNetlinkMessage::DelNeighbour(n) => Some(KernelEvent::NeighRemoved(neigh_ip(&n)?)),
            _ => None,
        }
    }
}

/// rtnetlink group of link changes (RTNLGRP_LINK).
const GROUP_LINK: u32 = 1;

/// Link notifications (RTM_NEWLINK, RTM_DELLINK: an interface created,
/// deleted, renamed, moved to or from another namespace, up or down, its
/// MTU changed), read without blocking. The daemon looks its interfaces
/// up by name again on any of them, the kernel being the truth about
/// names, so only whether something happened is kept: no message is
/// decoded, and an overrun (ENOBUFS) counts as a change too.
#[derive(Debug)]
pub struct LinkMonitor {
    sock: Socket,
    buf: Vec<u8>,
}

impl LinkMonitor {
    /// Subscribes to link changes in the calling thread's namespace.
    pub fn new() -> Result<LinkMonitor, KernelError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(KernelError::Socket)?;
        sock.bind_auto().map_err(KernelError::Socket)?;
        sock.add_membership(GROUP_LINK)
            .map_err(KernelError::Socket)?;
        sock.set_non_blocking(true).map_err(KernelError::Socket)?;
        Ok(LinkMonitor {
            sock,
            buf: vec![0u8; 1 << 16],
        })
    }

    /// The netlink socket's fd, to sleep on it together with other fds.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.sock.as_fd()
    }

    /// Drains every notification queued now; returns whether there was
    /// any (or some were lost).
    pub fn changed(&mut self) -> Result<bool, KernelError> {
        let mut any = false;
        loop {
            match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(_) => any = true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(any),
                Err(e) if e.raw_os_error() == Some(ENOBUFS) => any = true,
                Err(source) => {
                    return Err(KernelError::Io {
                        what: "link monitor",
                        source,
                    })
                }
            }
        }
    }
}

/// ENOBUFS: the kernel dropped notifications the socket had no room for.
const ENOBUFS: i32 = 105;
