//! [`XskPort`]: one socket with a UMEM of its own, for tests and tools
//! that drive a single queue.

use std::os::fd::BorrowedFd;

use xvs_bpf::XdpProgram;

use super::{FrameMut, Region, XskConfig, XskError, XskSet};

/// One AF_XDP socket on one queue with its own UMEM: an [`XskSet`] with a
/// single socket.
#[derive(Debug)]
pub struct XskPort {
    set: XskSet,
}

impl XskPort {
    /// Creates the UMEM and socket on `ifname` queue `queue`, registers
    /// the socket in `prog`'s XSKMAP (libxdp's own program is inhibited),
    /// and lends `cfg.rx_frames` chunks to the fill ring.
    pub fn bind(
        ifname: &str,
        queue: u32,
        prog: &XdpProgram,
        cfg: XskConfig,
    ) -> Result<Self, XskError> {
        let mut set = XskSet::new(cfg)?;
        set.bind(ifname, queue, prog)?;
        Ok(Self { set })
    }

    /// The set underneath (one socket, index 0).
    pub fn set(&mut self) -> &mut XskSet {
        &mut self.set
    }

    /// See [`XskSet::region`].
    pub fn region(&self) -> Region {
        self.set.region()
    }

    /// Chunks currently lent to the fill ring (not yet received).
    pub fn in_fill(&self) -> usize {
        self.set.in_fill(0)
    }

    /// Chunks left in the TX pool.
    pub fn pool_len(&self) -> usize {
        self.set.pool_len()
    }

    /// See [`XskSet::release`].
    pub fn release(&mut self, addr: u64) -> Result<(), XskError> {
        self.set.release(addr)
    }

    /// See [`XskSet::chunks_mut`]; returns the slices.
    pub fn chunks_mut(&mut self, addrs: &[u64]) -> Result<Vec<&mut [u8]>, XskError> {
        let mut out = Vec::with_capacity(addrs.len());
        self.set.chunks_mut(addrs, &mut out)?;
        Ok(out)
    }

    /// The socket's file descriptor, to wait for frames with poll(2).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.set.fd(0)
    }

    /// Whether the kernel runs this socket in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.set.zero_copy(0)
    }

    /// See [`XskSet::alloc`].
    pub fn alloc(&mut self) -> Option<u64> {
        self.set.alloc()
    }

    /// See [`XskSet::fill`].
    pub fn fill(&mut self, addrs: &[u64]) -> Result<usize, XskError> {
        self.set.fill(0, addrs)
    }

    /// See [`XskSet::rx`].
    pub fn rx(&mut self, out: &mut Vec<(u64, u32)>, timeout_ms: i32) -> Result<usize, XskError> {
        self.set.rx(0, out, usize::MAX, timeout_ms)
    }

    /// See [`XskSet::frame`].
    pub fn frame(&mut self, addr: u64, len: u32) -> Result<&[u8], XskError> {
        self.set.frame(addr, len)
    }

    /// See [`XskSet::frame_mut`].
    pub fn frame_mut(&mut self, addr: u64, len: u32) -> Result<FrameMut<'_>, XskError> {
        self.set.frame_mut(addr, len)
    }

    /// See [`XskSet::tx_send`].
    pub fn tx_send(&mut self, descs: &[(u64, u32)]) -> Result<usize, XskError> {
        self.set.tx_send(0, descs)
    }

    /// See [`XskSet::kick`].
    pub fn kick(&mut self) -> Result<(), XskError> {
        self.set.kick(0)
    }

    /// See [`XskSet::complete`].
    pub fn complete(&mut self, out: &mut Vec<u64>) -> usize {
        self.set.complete(0, out)
    }
}
