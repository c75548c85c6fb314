//! Multicast group membership of the uplink for multicast tunnels
//! (RFC 7348 §4.2, the kernel vxlan's `group`).
//!
//! The XDP program takes the group's tunnel packets off the uplink, but a
//! real NIC only hands up multicast frames it was told to accept, and the
//! routers and snooping switches on the path only forward a group to a
//! port whose host announced it (IGMP / MLD). Both follow the kernel's
//! membership, so the daemon holds one UDP socket per group that joined it
//! on the uplink's ifindex: the kernel then programs the NIC's filter and
//! answers queries. Dropping the [`Membership`] closes the socket, which
//! leaves the group.
//!
//! The socket is bound to an ephemeral port and never read: nothing for
//! the group reaches it (tunnel packets go to AF_XDP, and it listens on no
//! tunnel port).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::AsRawFd;

/// The uplink's membership of one group; leaves it when dropped.
#[derive(Debug)]
pub struct Membership {
    group: IpAddr,
    ifindex: u32,
    _sock: UdpSocket,
}

impl Membership {
    /// Joins `group` on interface `ifindex`.
    pub fn join(group: IpAddr, ifindex: u32) -> io::Result<Membership> {
        let sock = match group {
            IpAddr::V4(g) => {
                let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
                join_v4(&s, g, ifindex)?;
                s
            }
            IpAddr::V6(g) => {
                let s = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?;
                s.join_multicast_v6(&g, ifindex)?;
                s
            }
        };
        Ok(Membership {
            group,
            ifindex,
            _sock: sock,
        })
    }

    pub fn group(&self) -> IpAddr {
        self.group
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

/// IP_ADD_MEMBERSHIP with an `ip_mreqn`, which names the interface by
/// index (std's `join_multicast_v4` only takes an interface address).
fn join_v4(s: &UdpSocket, group: Ipv4Addr, ifindex: u32) -> io::Result<()> {
    let mreq = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from_ne_bytes(group.octets()),
        },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: ifindex as libc::c_int,
    };
    // SAFETY: `s` is an open IPv4 UDP socket for the duration of the call;
    // `mreq` is a fully initialised ip_mreqn and the length passed is its
    // size, which is what the kernel reads for IP_ADD_MEMBERSHIP.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_ADD_MEMBERSHIP,
            (&mreq as *const libc::ip_mreqn).cast(),
            std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Membership shows in the kernel's IGMP table while held and goes
    /// with it. Runs in a namespace of its own, on its loopback with
    /// multicast turned on, so a join must succeed: a `join` that fails
    /// fails the test.
    #[test]
    fn joining_and_dropping_a_group_shows_in_the_kernel() {
        if !xvs_tests::require_root() {
            return;
        }
        let ns = xvs_tests::Netns::new("mcast");
        ns.ip(&["link", "set", "lo", "multicast", "on"]);
        xvs_tests::on_thread(|| {
            ns.enter();
            let listed = || {
                // thread-self: /proc/net follows the process's first
                // thread, which stays in the test's own namespace.
                std::fs::read_to_string("/proc/thread-self/net/igmp")
                    .expect("the kernel's IGMP table")
                    // 239.1.2.3 as the kernel prints it: little-endian hex.
                    .contains("030201EF")
            };
            assert!(!listed(), "a fresh namespace has no member");
            let m = Membership::join("239.1.2.3".parse().unwrap(), 1)
                .expect("joining on loopback with multicast on");
            assert_eq!(m.group(), "239.1.2.3".parse::<IpAddr>().unwrap());
            assert!(listed(), "joined");
            drop(m);
            assert!(!listed(), "left");
            assert!(Membership::join("ff05::1:3".parse().unwrap(), 1).is_ok());
        });
        assert!(Membership::join("239.1.2.3".parse().unwrap(), 999_999).is_err());
    }
}
