//! A safe AF_XDP port with descriptor control: frames are `(addr, len)`
//! pairs, `addr` anywhere inside its UMEM chunk.
//!
//! The pipeline edits frames in place: tunnel push moves the frame start
//! back into the headroom by the outer header length, pop moves it
//! forward. A frame leaving on TX is therefore `(chunk base + head, len)`
//! with any head. xsk-rs 0.11 cannot transmit such a frame (its
//! `FrameDesc` address is `pub(crate)`), so we use it through a
//! `[patch.crates-io]` copy that adds one method, `FrameDesc::set_addr`
//! (see `vendor/README.md`). That was chosen over driving libxdp-sys's
//! ring functions ourselves because xsk-rs keeps the socket's rings
//! private: reaching them would mean mapping the TX ring a second time or
//! creating the socket ourselves, both much more unsafe code than a
//! one-line setter, while every descriptor access here goes through
//! xsk-rs's existing functions.
//!
//! Safety model: [`XskPort`] tracks which chunks userspace owns. A chunk
//! is ours after [`XskPort::bind`] (the TX pool), after [`XskPort::rx`]
//! returned it or [`XskPort::complete`] gave it back; it is the kernel's
//! from [`XskPort::fill`] or [`XskPort::tx_send`] on. Every access and
//! every descriptor handed to the kernel is checked against that state
//! and against the chunk's bounds, which is what makes the xsk-rs calls
//! (all `unsafe`: they trust a descriptor to be ours and of this UMEM)
//! sound here.

use std::fmt;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd};

use xsk_rs::config::{BindFlags, FrameSize, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use crate::{xsk_zero_copy, XdpProgram};

/// UMEM chunk size (aligned mode): one frame per chunk.
pub const CHUNK: u64 = 4096;
/// Bytes in front of every received frame that the kernel leaves free
/// (`XDP_PACKET_HEADROOM`), on top of the UMEM `frame_headroom`.
pub const XDP_HEADROOM: u64 = 256;

/// Sizes of one port.
#[derive(Debug, Clone, Copy)]
pub struct XskConfig {
    /// UMEM chunks in all.
    pub frames: u32,
    /// Chunks lent to the fill ring at bind; the rest are the TX pool.
    pub rx_frames: u32,
    /// Size of each of the four rings (a power of two).
    pub ring: u32,
    /// UMEM `frame_headroom`: extra room in front of received frames.
    pub frame_headroom: u32,
}

impl Default for XskConfig {
    fn default() -> Self {
        Self {
            frames: 4096,
            rx_frames: 2048,
            ring: 2048,
            frame_headroom: 0,
        }
    }
}

/// Errors of [`XskPort`].
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("{ifname}: {what}: {reason}")]
    Setup {
        ifname: String,
        what: &'static str,
        reason: String,
    },
    #[error("{ifname}: registering the socket in the XSKMAP: {source}")]
    Register {
        ifname: String,
        source: crate::Error,
    },
    /// A descriptor outside its chunk, or on a chunk the kernel owns.
    #[error("descriptor (addr {addr:#x}, len {len}) is not a frame we own inside one chunk")]
    BadDesc { addr: u64, len: u32 },
    #[error("AF_XDP ring: {0}")]
    Io(#[from] io::Error),
}

/// One AF_XDP socket on one queue with its own UMEM and the four rings.
pub struct XskPort {
    umem: Umem,
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    /// `owned[i]`: chunk `i` belongs to userspace.
    owned: Vec<bool>,
    /// Chunks of the TX pool not yet handed out by [`Self::alloc`].
    pool: Vec<u64>,
    /// One descriptor per chunk, borrowed by [`FrameMut`].
    descs: Vec<FrameDesc>,
    /// Scratch descriptors for ring batches.
    scratch: Vec<FrameDesc>,
    /// Chunks lent to the fill ring and not yet received.
    in_fill: usize,
    /// Address of the UMEM's first byte, as an integer: only compared
    /// with pointers into chunks lent by [`XskPort::chunks_mut`], never
    /// dereferenced.
    base: usize,
    zero_copy: bool,
}

/// Where a port's UMEM lies in memory: maps a pointer into a chunk lent
/// by [`XskPort::chunks_mut`] back to its UMEM address. Plain numbers, so
/// it can be used while the chunks are borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    base: usize,
    len: usize,
}

impl Region {
    /// The UMEM address of `p`, if it points into this UMEM.
    pub fn addr_of(&self, p: *const u8) -> Option<u64> {
        let off = (p as usize).checked_sub(self.base)?;
        (off < self.len).then_some(off as u64)
    }
}

impl fmt::Debug for XskPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XskPort")
            .field("chunks", &self.owned.len())
            .field("owned", &self.owned.iter().filter(|o| **o).count())
            .field("zero_copy", &self.zero_copy)
            .finish()
    }
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
        let setup = |what: &'static str, reason: String| XskError::Setup {
            ifname: ifname.to_owned(),
            what,
            reason,
        };
        let q = |n| QueueSize::new(n).map_err(|e| setup("ring size", e.to_string()));
        let umem_cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(CHUNK as u32).map_err(|e| setup("chunk", e.to_string()))?)
            .frame_headroom(cfg.frame_headroom)
            .fill_queue_size(q(cfg.ring)?)
            .comp_queue_size(q(cfg.ring)?)
            .build()
            .map_err(|e| setup("UMEM config", e.to_string()))?;
        let frames = NonZeroU32::new(cfg.frames).ok_or_else(|| setup("UMEM", "0 frames".into()))?;
        if cfg.rx_frames > cfg.frames || cfg.rx_frames > cfg.ring {
            return Err(setup("rx frames", "more than frames or the ring".into()));
        }
        let (umem, descs) =
            Umem::new(umem_cfg, frames, false).map_err(|e| setup("UMEM", e.to_string()))?;
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(q(cfg.ring)?)
            .tx_queue_size(q(cfg.ring)?)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        let name = ifname
            .parse()
            .map_err(|e: std::ffi::NulError| setup("name", e.to_string()))?;
        // SAFETY: the UMEM lives in the returned struct next to the queues
        // (and xsk-rs reference-counts its region), so it outlives them.
        let (tx, rx, fqcq) = unsafe { Socket::new(sock_cfg, &umem, &name, queue) }
            .map_err(|e| setup("AF_XDP socket", e.to_string()))?;
        let (fq, cq) = fqcq.ok_or_else(|| setup("rings", "UMEM already shared".into()))?;
        // SAFETY: the fd belongs to `rx`, open for as long as this borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(rx.fd().as_raw_fd()) };
        let zero_copy = xsk_zero_copy(fd)?;
        prog.register_xsk(queue, fd)
            .map_err(|source| XskError::Register {
                ifname: ifname.to_owned(),
                source,
            })?;
        let chunks: Vec<u64> = descs
            .iter()
            .map(|d| d.addr() as u64 / CHUNK * CHUNK)
            .collect();
        let mut port = Self {
            umem,
            tx,
            rx,
            fq,
            cq,
            owned: vec![true; chunks.len()],
            descs: vec![FrameDesc::default(); chunks.len()],
            pool: chunks[cfg.rx_frames as usize..]
                .iter()
                .rev()
                .copied()
                .collect(),
            scratch: vec![FrameDesc::default(); cfg.ring as usize],
            in_fill: 0,
            base: 0,
            zero_copy,
        };
        // Chunk 0 is ours until the fill below: its first byte is the
        // UMEM's first byte.
        let mut d0 = port.desc(0, 1);
        // SAFETY: chunk 0 is owned by userspace (nothing was lent yet)
        // and `port` is borrowed mutably: the view is the only access,
        // and only its address is kept.
        port.base = unsafe { port.umem.data_mut(&mut d0) }
            .contents_mut()
            .as_mut_ptr() as usize;
        let lent = port.fill(&chunks[..cfg.rx_frames as usize])?;
        debug_assert_eq!(lent, cfg.rx_frames as usize);
        Ok(port)
    }

    /// Where the UMEM lies, to map lent chunks back to addresses.
    pub fn region(&self) -> Region {
        Region {
            base: self.base,
            len: self.owned.len() * CHUNK as usize,
        }
    }

    /// Chunks currently lent to the fill ring (not yet received).
    pub fn in_fill(&self) -> usize {
        self.in_fill
    }

    /// Chunks left in the TX pool.
    pub fn pool_len(&self) -> usize {
        self.pool.len()
    }

    /// Puts an owned chunk (any address inside it) back into the TX pool.
    /// The chunk must not be borrowed or queued anywhere else afterwards
    /// except through [`Self::alloc`]; giving the same chunk twice is
    /// refused.
    pub fn release(&mut self, addr: u64) -> Result<(), XskError> {
        let base = addr / CHUNK * CHUNK;
        self.check(base, 1)?;
        if self.pool.contains(&base) {
            return Err(XskError::BadDesc { addr, len: 0 });
        }
        self.pool.push(base);
        Ok(())
    }

    /// Lends whole owned chunks as disjoint writable slices of
    /// [`CHUNK`] bytes, one per address, in order. Every address must be
    /// the start of a chunk userspace owns, and none may repeat; then no
    /// two slices overlap, and the kernel touches none of them until the
    /// chunk is given back through [`Self::fill`] or [`Self::tx_send`],
    /// which the `&mut self` borrow prevents while the slices live. Map a
    /// pointer into a slice back to its address with [`Self::region`].
    pub fn chunks_mut(&mut self, addrs: &[u64]) -> Result<Vec<&mut [u8]>, XskError> {
        let mut idx = Vec::with_capacity(addrs.len());
        for &a in addrs {
            if a % CHUNK != 0 {
                return Err(XskError::BadDesc { addr: a, len: 0 });
            }
            let i = self.check(a, CHUNK as u32)?;
            if idx.contains(&i) {
                return Err(XskError::BadDesc { addr: a, len: 0 });
            }
            idx.push(i);
        }
        Ok(idx
            .into_iter()
            .map(|i| {
                let mut d = self.desc(i as u64 * CHUNK, CHUNK as u32);
                // SAFETY: chunk `i` is owned by userspace (`check`), so no
                // ring holds it and the kernel does not write it; this
                // view is used only to take the chunk's pointer.
                let p = unsafe { self.umem.data_mut(&mut d) }
                    .contents_mut()
                    .as_mut_ptr();
                // SAFETY: `p` points at the start of chunk `i` with
                // `CHUNK` bytes behind it (the view above covered them),
                // inside the UMEM mapping, which lives as long as `self`
                // (the slices borrow `self` mutably, so the mapping
                // outlives them); the indices are distinct, so the
                // slices are disjoint; the chunks are ours and the
                // `&mut self` borrow keeps every other accessor of this
                // port (frame, frame_mut, fill, tx_send) away while they
                // live, so nothing else reads or writes them.
                unsafe { std::slice::from_raw_parts_mut(p, CHUNK as usize) }
            })
            .collect())
    }

    /// The socket's file descriptor, to wait for frames with poll(2).
    pub fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd belongs to `self.rx`, open for as long as `self`
        // is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.rx.fd().as_raw_fd()) }
    }

    /// Whether the kernel runs this socket in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// The chunk index of `(addr, len)` if it lies inside one chunk that
    /// we own.
    fn check(&self, addr: u64, len: u32) -> Result<usize, XskError> {
        let i = (addr / CHUNK) as usize;
        let end = addr.checked_add(u64::from(len));
        match end {
            Some(end)
                if len > 0 && end <= (i as u64 + 1) * CHUNK && self.owned.get(i) == Some(&true) =>
            {
                Ok(i)
            }
            _ => Err(XskError::BadDesc { addr, len }),
        }
    }

    /// A fresh descriptor for `(addr, len)`, already checked. Takes
    /// `&mut self` so that no frame borrowed from the port is alive.
    fn desc(&mut self, addr: u64, len: u32) -> FrameDesc {
        let mut d = FrameDesc::default();
        d.set_addr(addr as usize);
        // SAFETY: `check` put `addr` inside a chunk of this UMEM that we
        // own (no ring holds it), and `&mut self` means no slice of it
        // handed out by `frame`/`frame_mut` is alive: this short-lived
        // mutable view is the only access.
        let mut data = unsafe { self.umem.data_mut(&mut d) };
        // Bounded by the room to the end of the chunk, which `check`
        // already showed to be at least `len`.
        data.cursor().set_pos(len as usize);
        d
    }

    /// Takes a chunk from the TX pool: returns its base address. The
    /// frame may start anywhere inside it.
    pub fn alloc(&mut self) -> Option<u64> {
        self.pool.pop()
    }

    /// Gives owned chunks (any address inside each) to the fill ring for
    /// the kernel to receive into. Returns how many were lent (fewer when
    /// the ring is full); lends none if one is not ours or comes twice.
    pub fn fill(&mut self, addrs: &[u64]) -> Result<usize, XskError> {
        let room = self.fq.nb_free(addrs.len() as u32) as usize;
        let n = addrs.len().min(room);
        let mut descs = Vec::with_capacity(n);
        let mut taken = Vec::with_capacity(n);
        for &a in &addrs[..n] {
            let base = a / CHUNK * CHUNK;
            match self.check(base, 1) {
                Ok(i) => {
                    self.owned[i] = false;
                    taken.push(i);
                }
                Err(e) => {
                    for i in taken {
                        self.owned[i] = true;
                    }
                    return Err(e);
                }
            }
            let mut d = FrameDesc::default();
            d.set_addr(base as usize);
            descs.push(d);
        }
        // SAFETY: each chunk was ours and is now marked the kernel's, so
        // nothing in userspace touches it until `rx` hands it back; all
        // belong to this UMEM (`check`).
        let lent = unsafe { self.fq.produce(&descs) };
        debug_assert_eq!(lent, n, "nb_free promised the room");
        self.in_fill += lent;
        Ok(lent)
    }

    /// Received frames, appended to `out` as `(addr, len)`; waits up to
    /// `timeout_ms` for the first. The frames' chunks are ours until given
    /// to [`Self::fill`] or [`Self::tx_send`].
    pub fn rx(&mut self, out: &mut Vec<(u64, u32)>, timeout_ms: i32) -> Result<usize, XskError> {
        // SAFETY: the rx ring only returns chunks of this UMEM that were
        // lent through `fill`; the scratch descriptors are overwritten.
        let n = unsafe { self.rx.poll_and_consume(&mut self.scratch, timeout_ms) }?;
        for d in &self.scratch[..n] {
            let addr = d.addr() as u64;
            self.owned[(addr / CHUNK) as usize] = true;
            out.push((addr, d.lengths().data() as u32));
        }
        self.in_fill = self.in_fill.saturating_sub(n);
        Ok(n)
    }

    /// The bytes of an owned frame.
    pub fn frame(&mut self, addr: u64, len: u32) -> Result<&[u8], XskError> {
        self.check(addr, len)?;
        let d = self.desc(addr, len);
        // SAFETY: checked to be ours and inside one chunk of this UMEM;
        // the returned slice borrows `self`, so nothing can write the
        // chunk or give it to the kernel while it lives.
        let data = unsafe { self.umem.data(&d) };
        Ok(data.contents())
    }

    /// The bytes of an owned frame, writable. To push a header of `h`
    /// bytes in place, call this with `(addr - h, len + h)` and write
    /// the first `h` bytes; to pop one, use `(addr + h, len - h)`.
    pub fn frame_mut(&mut self, addr: u64, len: u32) -> Result<FrameMut<'_>, XskError> {
        let i = self.check(addr, len)?;
        self.descs[i] = self.desc(addr, len);
        // SAFETY: checked to be ours and inside chunk `i` of this UMEM;
        // the result borrows `self` mutably, so it is the only access to
        // the chunk while it lives and the chunk cannot be given to the
        // kernel meanwhile.
        let data = unsafe { self.umem.data_mut(&mut self.descs[i]) };
        Ok(FrameMut(data))
    }

    /// Queues owned frames for transmission, each from its own address:
    /// the start may sit anywhere in its chunk. Returns how many were
    /// queued (fewer when the ring is full) after kicking the kernel if
    /// it asked for a wakeup. Nothing is queued if any descriptor is not
    /// an owned frame inside one chunk, or two share a chunk.
    pub fn tx_send(&mut self, descs: &[(u64, u32)]) -> Result<usize, XskError> {
        let room = self.tx.nb_free(descs.len() as u32) as usize;
        let n = descs.len().min(room);
        let mut batch = Vec::with_capacity(n);
        let mut taken = Vec::with_capacity(n);
        for &(addr, len) in &descs[..n] {
            match self.check(addr, len) {
                Ok(i) => {
                    batch.push(self.desc(addr, len));
                    self.owned[i] = false;
                    taken.push(i);
                }
                Err(e) => {
                    for i in taken {
                        self.owned[i] = true;
                    }
                    return Err(e);
                }
            }
        }
        // SAFETY: every frame was ours, lies inside one chunk of this
        // UMEM, and is now marked the kernel's (so no chunk is queued
        // twice and userspace no longer touches it) until `complete`
        // hands it back.
        let sent = unsafe { self.tx.produce(&batch) };
        debug_assert_eq!(sent, n, "nb_free promised the room");
        if self.tx.needs_wakeup() {
            self.tx.wakeup()?;
        }
        Ok(sent)
    }

    /// Kicks the kernel's TX if it asked for it (copy mode sends a bounded
    /// number of frames per kick).
    pub fn kick(&mut self) -> Result<(), XskError> {
        if self.tx.needs_wakeup() {
            self.tx.wakeup()?;
        }
        Ok(())
    }

    /// Chunks whose transmission completed, appended to `out` as the
    /// addresses they were sent from; they are ours again.
    pub fn complete(&mut self, out: &mut Vec<u64>) -> usize {
        // SAFETY: the completion ring only returns chunks of this UMEM
        // queued by `tx_send`; the scratch descriptors are overwritten.
        let n = unsafe { self.cq.consume(&mut self.scratch) };
        for d in &self.scratch[..n] {
            let addr = d.addr() as u64;
            self.owned[(addr / CHUNK) as usize] = true;
            out.push(addr);
        }
        n
    }
}

/// A writable frame of an [`XskPort`] (dereferences to its bytes).
#[derive(Debug)]
pub struct FrameMut<'a>(xsk_rs::umem::frame::DataMut<'a>);

impl std::ops::Deref for FrameMut<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.contents()
    }
}

impl std::ops::DerefMut for FrameMut<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.contents_mut()
    }
}
