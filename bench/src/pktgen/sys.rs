//! What a run reads from the kernel outside its sockets' rings: an
//! interface's sysfs files (address, MTU, queues) and an AF_XDP socket's
//! counters.

use std::os::fd::{AsRawFd, BorrowedFd};

use super::args::Mac;
use super::PktgenError;

pub(super) fn iface_err(iface: &str, reason: impl Into<String>) -> PktgenError {
    PktgenError::Iface {
        iface: iface.to_owned(),
        reason: reason.into(),
    }
}

pub(super) fn sysfs(iface: &str, file: &str) -> Result<String, PktgenError> {
    let path = format!("/sys/class/net/{iface}/{file}");
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| iface_err(iface, format!("reading {path}: {e}")))
}

pub(super) fn iface_mac(iface: &str) -> Result<Mac, PktgenError> {
    sysfs(iface, "address")?
        .parse()
        .map_err(|e: String| iface_err(iface, e))
}

pub(super) fn iface_mtu(iface: &str) -> Result<usize, PktgenError> {
    let m = sysfs(iface, "mtu")?;
    m.parse()
        .map_err(|_| iface_err(iface, format!("MTU {m:?} is not a number")))
}

/// The queues of `iface` of one kind (`queues/rx-N` or `queues/tx-N` in
/// sysfs, `kind` "rx-" or "tx-"), at least 1.
pub(super) fn queues(iface: &str, kind: &str) -> Result<u32, PktgenError> {
    let dir = format!("/sys/class/net/{iface}/queues");
    let n = std::fs::read_dir(&dir)
        .map_err(|e| iface_err(iface, format!("reading {dir}: {e}")))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(kind))
        .count() as u32;
    Ok(n.max(1))
}

/// `struct xdp_statistics` (linux/if_xdp.h).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct XdpStats {
    pub(super) rx_dropped: u64,
    pub(super) rx_invalid_descs: u64,
    pub(super) tx_invalid_descs: u64,
    pub(super) rx_ring_full: u64,
    pub(super) rx_fill_ring_empty_descs: u64,
    pub(super) tx_ring_empty_descs: u64,
}

/// The kernel's counters of one AF_XDP socket; zeros if it has none to
/// give (they only explain losses, they never fail a run).
pub(super) fn xsk_stats(fd: BorrowedFd<'_>) -> XdpStats {
    const SOL_XDP: libc::c_int = 283;
    const XDP_STATISTICS: libc::c_int = 7;
    let mut st = XdpStats::default();
    let mut len = std::mem::size_of::<XdpStats>() as libc::socklen_t;
    // SAFETY: `st` is a writable `struct xdp_statistics` of `len` bytes
    // that outlives the call, and `fd` is open for the borrow's duration.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            XDP_STATISTICS,
            (&mut st as *mut XdpStats).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        st
    } else {
        XdpStats::default()
    }
}
