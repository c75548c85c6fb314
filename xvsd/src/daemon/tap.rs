//! Tap ports (`PortKind::Tap`): the tap device a QEMU guest's
//! `-netdev tap,ifname=NAME,script=no` opens. xvsd creates it before the
//! guest starts and deletes it with the port; in between it is an
//! ordinary interface port (our XDP program natively on the tap, one
//! AF_XDP socket on its queue), so `links.rs` attaches and re-attaches it
//! as it does a veth.
//!
//! The tap is made persistent, as Open vSwitch makes its `type=tap`
//! ports (TUNSETPERSIST, cleared when the port is deleted), so it
//! outlives a QEMU that dies (the next one opens the same tap, the
//! program and socket still on it) and an xvsd restarted under a running
//! guest. Unlike Open vSwitch, which reads its taps through their
//! descriptor, xvsd keeps none: a single-queue tap takes one, and it
//! must be QEMU's. It is created with a virtio-net header (QEMU asks for
//! one anyway when it attaches) and up; the carrier comes with QEMU.

use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tracing::{info, warn};

use xvs_config::{Config, PortKind};

use super::DaemonError;
use crate::netlink;

/// The tap ports of `config`, by name.
pub(super) fn names(config: &Config) -> impl Iterator<Item = &str> {
    config
        .ports
        .iter()
        .filter(|p| p.kind == PortKind::Tap)
        .map(|p| p.name.as_str())
}

/// The taps of `old`'s tap ports that `new` has no port for: deleted
/// once `new` is running. (A port that stays but is no longer a tap keeps
/// its device: an interface port wants one of its name.)
pub(super) fn gone(old: &Config, new: &Config) -> Vec<String> {
    let mut taps = names(old).peekable();
    if taps.peek().is_none() {
        return Vec::new();
    }
    let kept: HashSet<&str> = new.ports.iter().map(|p| p.name.as_str()).collect();
    taps.filter(|n| !kept.contains(n))
        .map(String::from)
        .collect()
}

/// `struct ifreq` with its `ifr_flags` member (the rest of the union
/// padding).
#[repr(C)]
struct IfreqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl IfreqFlags {
    fn new(name: &str, flags: libc::c_int) -> IfreqFlags {
        let mut req = IfreqFlags {
            name: [0; libc::IFNAMSIZ],
            // The kernel reads ifr_flags as a short: IFF_VNET_HDR
            // (0x4000) is its highest bit used here.
            flags: flags as libc::c_short,
            _pad: [0; 22],
        };
        for (d, s) in req
            .name
            .iter_mut()
            .zip(name.bytes().take(libc::IFNAMSIZ - 1))
        {
            *d = s as libc::c_char;
        }
        req
    }
}

/// The tun driver's flags of interface `name` (`IFF_TAP`, `IFF_PERSIST`,
/// ...); `None` if it is no tun or tap device (or not there).
fn tun_flags(name: &str) -> Option<u32> {
    // tun_flags exists for tun and tap devices only.
    let path = std::path::Path::new("/sys/class/net")
        .join(name)
        .join("tun_flags");
    let s = std::fs::read_to_string(path).ok()?;
    u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// What is in the way of serving `name` as a tap port, or `None`: it is a
/// tap (an operator's, one a previous xvsd created, or one QEMU made),
/// or it is not there (`ensure` creates it).
fn not_a_tap(name: &str) -> Option<String> {
    if !std::path::Path::new("/sys/class/net").join(name).exists() {
        return None;
    }
    match tun_flags(name) {
        Some(f) if f & libc::IFF_TAP as u32 != 0 => None,
        Some(_) => Some("a tun device, not a tap".into()),
        None => Some("an interface that is not a tap".into()),
    }
}

/// Creates tap `name` (persistent, with a virtio-net header, no packet
/// information, up) unless it is there; `Ok(true)` if it was created.
pub(super) fn ensure(name: &str) -> Result<bool, DaemonError> {
    let fail = |reason: String| DaemonError::Interface {
        iface: name.into(),
        reason,
    };
    if let Some(what) = not_a_tap(name) {
        return Err(fail(format!("a tap port, but {name} is {what}")));
    }
    if xvs_bpf::ifindex(name).is_ok() {
        return Ok(false);
    }
    create(name).map_err(|e| fail(format!("creating the tap: {e}")))?;
    set_up(name).map_err(|e| fail(format!("setting the tap up: {e}")))?;
    info!(iface = name, "tap created");
    Ok(true)
}

fn create(name: &str) -> io::Result<()> {
    let path = CString::new("/dev/net/tun").expect("no NUL");
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor no one else owns; closing it at
    // the end leaves the persistent device without a queue for QEMU.
    let tun = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfreqFlags::new(name, libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR);
    // SAFETY: `req` is an ifreq with the kernel's layout (name, then
    // flags) that outlives the call; TUNSETIFF reads and writes only it.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: TUNSETPERSIST takes its argument by value.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_up(name: &str) -> io::Result<()> {
    // SAFETY: plain socket(2); the fd is owned from here on.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor no one else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfreqFlags::new(name, 0);
    // SAFETY: `req` is an ifreq the kernel fills (flags), outliving the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    req.flags |= libc::IFF_UP as libc::c_short;
    // SAFETY: as above; the kernel only reads it.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Deletes tap `name` (a port gone, or one created for a change that
/// failed). A QEMU still attached loses its device: what deleting the
/// port asks. Only a persistent tap: one QEMU made itself (no tap was
/// there when it started) is QEMU's and goes with it. Nothing to do if
/// it is gone already.
pub(super) fn remove(name: &str) {
    let persist = libc::IFF_TAP as u32 | libc::IFF_PERSIST as u32;
    if tun_flags(name).is_none_or(|f| f & persist != persist) {
        return;
    }
    match netlink::delete_link(name) {
        Ok(()) => info!(iface = name, "tap deleted"),
        Err(e) => warn!(iface = name, "deleting the tap: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_the_kernels_layout() {
        assert_eq!(std::mem::size_of::<IfreqFlags>(), 40);
        let r = IfreqFlags::new("tap-with-a-very-long-name", libc::IFF_TAP);
        // IFNAMSIZ - 1 bytes and the NUL.
        assert_eq!(r.name[libc::IFNAMSIZ - 1], 0);
        assert_eq!(r.flags, libc::IFF_TAP as libc::c_short);
    }

    fn config(ports: &[(&str, PortKind)]) -> Config {
        let mut c = Config::default();
        for (name, kind) in ports {
            let mut p = xvs_config::PortConfig::new(*name, "br0");
            p.kind = kind.clone();
            c.ports.push(p.into());
        }
        c
    }

    #[test]
    fn a_tap_goes_with_its_port_not_with_its_kind() {
        let old = config(&[
            ("tap1", PortKind::Tap),
            ("tap2", PortKind::Tap),
            ("tap3", PortKind::Tap),
            ("p0", PortKind::Afxdp),
        ]);
        let new = config(&[("tap1", PortKind::Tap), ("tap3", PortKind::Afxdp)]);
        assert_eq!(gone(&old, &new), ["tap2"]);
        assert!(gone(&new, &old).is_empty(), "p0 was never a tap");
    }
}
