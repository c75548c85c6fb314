//! The miss pair: the veth pair through which guest ports without an XDP
//! program of their own hand the workers what the TC fast path does not
//! take (docs/design.md, "A GSO-preserving fast path", step 4).
//!
//! `xvs_tc_port` tags such a frame with an 802.1ad tag carrying the
//! ingress port's number and redirects it to the pair's near end
//! ([`NEAR`]); the far end ([`FAR`]) has the port XDP program and one
//! AF_XDP socket per worker, which strips the tag. Two settings make
//! that work, both measured by `bench/xdp/slowpath/run.sh`:
//!
//! - the near end's `tx-vlan-stag-hw-insert` is off, so the kernel writes
//!   the tag into the frame's data before it leaves (a veth carries a
//!   hardware-accelerated tag beside the data, where the far end's XDP
//!   program would not see it);
//! - the far end has an XDP program, so the near end has no software GSO:
//!   a guest's TSO super-packet is cut into MTU-sized segments on its way
//!   in, each tagged, which is what the pipeline takes.
//!
//! Control path only: netlink and one ethtool ioctl at start.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};

use crate::netlink::{self, KernelError};

/// The end `xvs_tc_port` redirects misses to.
pub const NEAR: &str = "xvs-miss";
/// The end the workers' sockets are bound on.
pub const FAR: &str = "xvs-miss-rx";

/// Room for a guest's jumbo frame with an 802.1Q tag of its own (the
/// 802.1ad tag is the one veth allows beyond the MTU).
pub const MTU: u32 = 9216;

/// The pair, deleted when dropped.
#[derive(Debug)]
pub struct MissPair {
    near_ifindex: u32,
}

/// Why the pair could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("creating the miss pair {NEAR}/{FAR}: {0}")]
    Create(#[source] KernelError),
    #[error("the miss pair's {0} is not there after creating it")]
    Gone(&'static str),
    #[error("turning off {feature} on {iface}: {source}")]
    Feature {
        iface: &'static str,
        feature: &'static str,
        #[source]
        source: io::Error,
    },
}

impl MissPair {
    /// Creates the pair with `queues` queues each (one per worker), up,
    /// with [`MTU`], the near end's S-tag insertion off. A pair left by
    /// an xvsd that did not exit cleanly is deleted first.
    pub fn create(queues: u32) -> Result<MissPair, PairError> {
        let _ = netlink::delete_link(NEAR);
        let mut peer = LinkMessage::default();
        peer.attributes = vec![
            LinkAttribute::IfName(FAR.to_string()),
            LinkAttribute::NumTxQueues(queues),
            LinkAttribute::NumRxQueues(queues),
            LinkAttribute::Mtu(MTU),
        ];
        let mut msg = LinkMessage::default();
        msg.attributes = vec![
            LinkAttribute::IfName(NEAR.to_string()),
            LinkAttribute::NumTxQueues(queues),
            LinkAttribute::NumRxQueues(queues),
            LinkAttribute::Mtu(MTU),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]),
        ];
        netlink::new_link(msg).map_err(PairError::Create)?;
        let pair = MissPair {
            near_ifindex: index_of(NEAR).ok_or(PairError::Gone(NEAR))?,
        };
        set_feature_off(NEAR, "tx-vlan-stag-hw-insert").map_err(|source| PairError::Feature {
            iface: NEAR,
            feature: "tx-vlan-stag-hw-insert",
            source,
        })?;
        for name in [FAR, NEAR] {
            let ifindex = index_of(name).ok_or(PairError::Gone(name))?;
            let mut up = LinkMessage::default();
            up.header.index = ifindex;
            up.header.flags = LinkFlags::Up;
            up.header.change_mask = LinkFlags::Up;
            netlink::set_link(up).map_err(PairError::Create)?;
        }
        Ok(pair)
    }

    /// The near end's ifindex: where misses are redirected.
    pub fn near_ifindex(&self) -> u32 {
        self.near_ifindex
    }
}

impl Drop for MissPair {
    fn drop(&mut self) {
        // Deleting one end deletes both; nothing to do if it is gone.
        let _ = netlink::delete_link(NEAR);
    }
}

fn index_of(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

/// `struct ifreq` with its `ifr_data` member.
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// Issues SIOCETHTOOL on `iface` with the command buffer `buf` (which
/// begins with the command's number).
fn ethtool(sock: &OwnedFd, iface: &str, buf: &mut [u32]) -> io::Result<()> {
    let mut req = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: buf.as_mut_ptr().cast(),
        _pad: [0; 16],
    };
    for (d, s) in req
        .name
        .iter_mut()
        .zip(iface.bytes().take(libc::IFNAMSIZ - 1))
    {
        *d = s as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq whose data points at `buf`, which is
    // as long as the command's reply (sized by the caller from the
    // kernel's own count) and outlives the call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Turns off the feature the kernel names `feature` on `iface`, as
/// `ethtool -K IFACE FEATURE off` does: the feature's bit is found by
/// name (the bit numbers are not ABI), then ETHTOOL_SFEATURES.
fn set_feature_off(iface: &str, feature: &str) -> io::Result<()> {
    // SAFETY: plain socket(2); the fd is owned from here on.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor no one else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // struct ethtool_sset_info: cmd, reserved, sset_mask (u64), data[1].
    let mut info = [ETHTOOL_GSSET_INFO, 0, 1 << ETH_SS_FEATURES, 0, 0];
    ethtool(&sock, iface, &mut info)?;
    let count = info[4] as usize;
    // struct ethtool_gstrings: cmd, string_set, len, then the names.
    let mut strings = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
    strings[..3].copy_from_slice(&[ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count as u32]);
    ethtool(&sock, iface, &mut strings)?;
    let names: Vec<u8> = strings[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
    let bit = names
        .chunks(ETH_GSTRING_LEN)
        .position(|n| n.split(|&b| b == 0).next() == Some(feature.as_bytes()))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("the kernel has no feature {feature}"),
            )
        })?;
    // struct ethtool_sfeatures: cmd, size, then {valid, requested} per 32
    // features: only this bit valid, requested off.
    let blocks = count.div_ceil(32);
    let mut set = vec![0u32; 2 + 2 * blocks];
    set[0] = ETHTOOL_SFEATURES;
    set[1] = blocks as u32;
    set[2 + 2 * (bit / 32)] = 1 << (bit % 32);
    ethtool(&sock, iface, &mut set)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout the kernel reads: the name, then the data pointer.
    #[test]
    fn ifreq_has_the_kernels_layout() {
        assert_eq!(std::mem::offset_of!(IfreqData, data), libc::IFNAMSIZ);
        assert_eq!(size_of::<IfreqData>(), 40);
    }
}
