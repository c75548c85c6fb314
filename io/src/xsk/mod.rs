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
//! Shared UMEM: an [`XskSet`] is one UMEM with any number of sockets, one
//! per (interface, queue), each with its own four rings (the kernel's
//! `XDP_SHARED_UMEM` with per-socket fill and completion rings, which
//! xsk-rs sets up when a UMEM is bound to a new (interface, queue)). A
//! frame received on one socket is transmitted by another by handing its
//! descriptor over: no copy. A worker owns one set for all the queues it
//! serves. [`XskPort`] is a set with one socket.
//!
//! The UMEM's anchor ([`XskSet::new_anchored`]): with `XDP_SHARED_UMEM`
//! the first socket bound to a UMEM *is* the UMEM (libxdp binds the
//! UMEM's own fd), and the kernel lets later sockets share the UMEM only
//! while that one stays bound. Were it a port's socket, deleting the
//! port's interface would leave the UMEM unable to bind anything ever
//! again (`EBADF`), and closing and re-binding the same (interface,
//! queue) fails (`EINVAL`: the UMEM fd still holds that queue and libxdp
//! gives the new socket rings of its own). So a worker's UMEM is first
//! bound to queue 0 of the loopback of a network namespace of its own,
//! made for it and reachable by nothing else: it is never a port, never
//! goes away (the socket keeps the namespace alive) and receives nothing.
//! Every port socket is then an equal sharer that can come and go.
//!
//! Safety model: [`XskSet`] tracks which chunks userspace owns. A chunk
//! is ours after [`XskSet::new`] (the TX pool), after [`XskSet::rx`]
//! returned it or [`XskSet::complete`] gave it back; it is the kernel's
//! from [`XskSet::fill`] or [`XskSet::tx_send`] on. Every access and
//! every descriptor handed to the kernel is checked against that state
//! and against the chunk's bounds, which is what makes the xsk-rs calls
//! (all `unsafe`: they trust a descriptor to be ours and of this UMEM)
//! sound here. The checks cost no allocation: batches go through scratch
//! buffers sized at creation.
//!
//! Here: the set itself, its sizes and errors, sockets bound and removed.
//! `umem.rs` holds chunk ownership (lending, frames, the pool),
//! `rings.rs` the packet path's ring operations, `port.rs` the
//! one-socket [`XskPort`].

mod handoff;
mod jumbo;
mod memory;
mod port;
mod rings;
mod stats;
mod umem;

pub use handoff::{
    ChainHandoff, Handoff, HandoffError, Refused, Retired, SocketHandoff, HANDOFF_VERSION,
};
pub use jumbo::{JumboCounters, SLOT_BYTES, SLOT_CHUNKS};
pub use memory::Backing;
pub use port::XskPort;
pub use stats::KernelCounters;
pub use umem::{FrameMut, PoolLender, Region};

use std::fmt;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use xsk_rs::config::{BindFlags, FrameSize, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use xvs_bpf::{XdpProgram, XskRegistrar};

/// UMEM chunk size (aligned mode): one frame per chunk.
pub const CHUNK: u64 = 4096;
/// Bytes in front of every received frame that the kernel leaves free
/// (`XDP_PACKET_HEADROOM`), on top of the UMEM `frame_headroom`.
pub const XDP_HEADROOM: u64 = 256;

/// Sizes of one port (for an [`XskSet`]: `frames` is the whole UMEM,
/// `rx_frames` and `ring` apply to every socket).
#[derive(Debug, Clone, Copy)]
pub struct XskConfig {
    /// UMEM chunks in all.
    pub frames: u32,
    /// Chunks lent to each socket's fill ring at bind; the rest are the
    /// TX pool.
    pub rx_frames: u32,
    /// Size of each of the four rings (a power of two).
    pub ring: u32,
    /// UMEM `frame_headroom`: extra room in front of received frames.
    pub frame_headroom: u32,
    /// Jumbo slots ([`SLOT_CHUNKS`] chunks each, taken from `frames`):
    /// how many frames longer than a chunk may be in hand or on TX rings
    /// at once (see `jumbo.rs`).
    pub jumbo_slots: u32,
}

impl Default for XskConfig {
    fn default() -> Self {
        Self {
            frames: 4096,
            rx_frames: 2048,
            ring: 2048,
            frame_headroom: 0,
            jumbo_slots: 16,
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
        source: xvs_bpf::Error,
    },
    /// A descriptor outside its chunk, or on a chunk the kernel owns.
    #[error("descriptor (addr {addr:#x}, len {len}) is not a frame we own inside one chunk")]
    BadDesc { addr: u64, len: u32 },
    #[error("AF_XDP ring: {0}")]
    Io(#[from] io::Error),
    #[error("no socket in slot {0}")]
    NoSocket(usize),
    /// The (interface, queue) still has a socket: another process's, or
    /// our own just closed, which the kernel releases a moment later
    /// (after an RCU grace period, from a work queue). Try again shortly.
    #[error("{ifname} queue {queue}: the queue is busy (a socket on it is still being released, or another one holds it)")]
    Busy { ifname: String, queue: u32 },
    /// A set handed over from another process was refused, or this one
    /// cannot be handed over.
    #[error("handoff: {0}")]
    Handoff(#[from] HandoffError),
}

impl XskError {
    /// Whether the socket itself failed (its interface was deleted or
    /// moved away: `ENXIO`; anything else the kernel refused on its
    /// rings): that socket's problem, not its UMEM's or its worker's.
    pub fn is_socket_failure(&self) -> bool {
        matches!(self, XskError::Io(_))
    }
}

/// Whether the AF_XDP socket `fd` is bound in zero-copy mode
/// (`XDP_OPTIONS_ZEROCOPY`); `false` means copy mode.
pub fn xsk_zero_copy(fd: BorrowedFd<'_>) -> std::io::Result<bool> {
    const SOL_XDP: libc::c_int = 283;
    const XDP_OPTIONS: libc::c_int = 8;
    const XDP_OPTIONS_ZEROCOPY: u32 = 1;
    let mut opts: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: `fd` is a live socket for the duration of the call; `opts`
    // and `len` are valid for writes of the size passed in `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            XDP_OPTIONS,
            (&raw mut opts).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(opts & XDP_OPTIONS_ZEROCOPY != 0)
}

/// A socket sharing a UMEM: rx and tx rings of `ring` descriptors, our
/// program (libxdp's inhibited), need_wakeup, and with `sg` multi-buffer
/// frames (`XDP_USE_SG`: a frame longer than a chunk comes and goes as a
/// chain of descriptors; without it the kernel drops such frames).
fn socket_config(ring: u32, sg: bool) -> Result<SocketConfig, String> {
    let q = QueueSize::new(ring).map_err(|e| e.to_string())?;
    let mut flags = BindFlags::XDP_USE_NEED_WAKEUP;
    if sg {
        flags |= BindFlags::XDP_USE_SG;
    }
    Ok(SocketConfig::builder()
        .rx_queue_size(q)
        .tx_queue_size(q)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(flags)
        .build())
}

/// The xsk-rs UMEM configuration of `cfg`.
fn umem_config(cfg: &XskConfig) -> Result<UmemConfig, XskError> {
    let setup = |what: &'static str, reason: String| XskError::Setup {
        ifname: "(UMEM)".to_owned(),
        what,
        reason,
    };
    let q = |n| QueueSize::new(n).map_err(|e| setup("ring size", e.to_string()));
    UmemConfig::builder()
        .frame_size(FrameSize::new(CHUNK as u32).map_err(|e| setup("chunk", e.to_string()))?)
        .frame_headroom(cfg.frame_headroom)
        .fill_queue_size(q(cfg.ring)?)
        .comp_queue_size(q(cfg.ring)?)
        .build()
        .map_err(|e| setup("UMEM config", e.to_string()))
}

/// The errno under an xsk-rs error, if any.
fn errno(e: &dyn std::error::Error) -> Option<i32> {
    e.source()
        .and_then(|c| c.downcast_ref::<io::Error>())
        .and_then(io::Error::raw_os_error)
}

/// An error with its cause: xsk-rs's errors name the step and keep the
/// errno (what tells `EBUSY` from `EINVAL`) as their source.
fn with_source(e: &dyn std::error::Error) -> String {
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// The rings of one socket of an [`XskSet`].
struct Sock {
    ifname: String,
    queue: u32,
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    /// Chunks lent to the fill ring and not yet received.
    in_fill: usize,
    zero_copy: bool,
    /// Bound with `XDP_USE_SG` (multi-buffer frames).
    sg: bool,
    /// A multi-buffer frame being received (`jumbo.rs`).
    chain: Option<jumbo::Chain>,
    /// Where the socket is registered, when it was bound through
    /// [`XskSet::bind_with`] (unregistered on [`XskSet::remove`]).
    reg: Option<XskRegistrar>,
}

/// The rings of a UMEM's anchor socket, kept only to keep it bound;
/// `None` in a set adopted from another process, whose anchor is the
/// adopted UMEM's own fd (held by the UMEM) and whose rings are never
/// used.
struct Anchor {
    _queues: Option<(TxQueue, RxQueue, FillQueue, CompQueue)>,
}

/// Where a new socket is registered.
enum Registrar<'a> {
    Program(&'a XdpProgram),
    Owned(XskRegistrar),
    /// Nowhere: a transmit-only socket, on an interface with no program
    /// of ours ([`XskSet::bind_tx_only`]).
    None,
}

/// One UMEM shared by AF_XDP sockets on any number of (interface, queue)
/// pairs.
pub struct XskSet {
    // Field order is drop order: the sockets (their rings) go before
    // the UMEM they share.
    /// Sockets by slot; a removed socket leaves its slot empty (indices
    /// of the others stay valid).
    socks: Vec<Option<Sock>>,
    /// The UMEM's own socket, bound where no port is (see the module
    /// doc); never lent a chunk.
    anchor: Option<Anchor>,
    umem: Umem,
    cfg: XskConfig,
    /// `owned[i]`: chunk `i` belongs to userspace.
    owned: Vec<bool>,
    /// For a chunk the kernel holds: the slot of the socket whose fill or
    /// TX ring it was given to (to take it back if that socket goes).
    lent_to: Vec<u16>,
    /// Owned chunks not handed out by [`Self::alloc`] nor lent.
    pool: Vec<u64>,
    /// `pooled[i]`: chunk `i` is in `pool`. What makes lending from the
    /// pool sound while other chunks are lent ([`PoolLender`]): a pooled
    /// chunk is never lent by [`Self::chunks_mut`], and never pooled twice.
    pooled: Vec<bool>,
    /// One descriptor per chunk, borrowed by [`FrameMut`].
    descs: Vec<FrameDesc>,
    /// Scratch for ring batches (at most one ring's worth).
    scratch: Vec<FrameDesc>,
    /// Scratch: chunk indices taken by a batch being checked.
    taken: Vec<usize>,
    /// The jumbo slots: the top chunks, never pooled nor filled.
    slots: jumbo::Slots,
    /// The UMEM takes multi-buffer frames (`XDP_USE_SG` at its first
    /// bind; until then, whether to ask for it).
    sg: bool,
    jumbo: JumboCounters,
    /// What the frames live in (only a file-backed set can be
    /// exported).
    backing: Backing,
    /// Address of the UMEM's first byte, as an integer: only compared
    /// with pointers into chunks lent by [`XskSet::chunks_mut`] or
    /// turned into them there.
    base: usize,
}

impl fmt::Debug for XskSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XskSet")
            .field("chunks", &self.owned.len())
            .field("owned", &self.owned.iter().filter(|o| **o).count())
            .field("pool", &self.pool.len())
            .field(
                "sockets",
                &self
                    .socks
                    .iter()
                    .flatten()
                    .map(|s| format!("{}:{}", s.ifname, s.queue))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl XskSet {
    /// A UMEM of `cfg.frames` chunks, all in the TX pool, with no socket
    /// yet.
    pub fn new(cfg: XskConfig) -> Result<Self, XskError> {
        Self::new_in(cfg, None)
    }

    /// `new` with the frames in `file` (see `memory.rs`), or in private
    /// memory.
    fn new_in(cfg: XskConfig, file: Option<(OwnedFd, Backing)>) -> Result<Self, XskError> {
        let setup = |what: &'static str, reason: String| XskError::Setup {
            ifname: "(UMEM)".to_owned(),
            what,
            reason,
        };
        let umem_cfg = umem_config(&cfg)?;
        let frames = NonZeroU32::new(cfg.frames).ok_or_else(|| setup("UMEM", "0 frames".into()))?;
        if cfg.rx_frames > cfg.frames || cfg.rx_frames > cfg.ring {
            return Err(setup("rx frames", "more than frames or the ring".into()));
        }
        // `false`: not hugetlbfs (it needs pages reserved beforehand);
        // the vendored xsk-rs then backs the UMEM with transparent huge
        // pages where THP allows, so reading a frame is not a TLB miss
        // (vendor/README.md).
        let (backing, made) = match file {
            None => (Backing::Private, Umem::new(umem_cfg, frames, false)),
            Some((fd, backing)) => (backing, Umem::new_in_file(umem_cfg, frames, fd)),
        };
        let (umem, descs) = made.map_err(|e| setup("UMEM", with_source(&e)))?;
        let chunks: Vec<u64> = descs
            .iter()
            .map(|d| d.addr() as u64 / CHUNK * CHUNK)
            .collect();
        let slot_chunks = cfg.jumbo_slots as usize * SLOT_CHUNKS;
        if slot_chunks * 2 > chunks.len() {
            return Err(setup(
                "jumbo slots",
                format!(
                    "{} slots of {SLOT_CHUNKS} chunks take more than half of {} chunks",
                    cfg.jumbo_slots,
                    chunks.len()
                ),
            ));
        }
        let first_slot = chunks.len() - slot_chunks;
        let mut pooled = vec![true; chunks.len()];
        pooled[first_slot..].fill(false);
        let mut set = Self {
            socks: Vec::new(),
            anchor: None,
            umem,
            cfg,
            owned: vec![true; chunks.len()],
            lent_to: vec![0; chunks.len()],
            descs: vec![FrameDesc::default(); chunks.len()],
            pool: chunks[..first_slot].iter().rev().copied().collect(),
            pooled,
            scratch: vec![FrameDesc::default(); cfg.ring as usize],
            taken: Vec::with_capacity(cfg.ring as usize),
            slots: jumbo::Slots::new(first_slot, cfg.jumbo_slots as usize),
            jumbo: JumboCounters::default(),
            sg: true,
            backing,
            base: 0,
        };
        // Chunk 0 is ours (nothing was lent yet): its first byte is the
        // UMEM's first byte.
        let mut d0 = set.desc(0, 1);
        // SAFETY: chunk 0 is owned by userspace and `set` is borrowed
        // mutably: the view is the only access, and only its address is
        // kept.
        set.base = unsafe { set.umem.data_mut(&mut d0) }
            .contents_mut()
            .as_mut_ptr() as usize;
        Ok(set)
    }

    /// Like [`Self::new`], with the UMEM bound first to an anchor that is
    /// never a port (see the module doc), so that any port socket can be
    /// removed and bound again, its interface deleted and recreated. The
    /// UMEM is made on a short-lived thread in a network namespace of its
    /// own (needs `CAP_SYS_ADMIN`, as the rest of AF_XDP and BPF does);
    /// sockets bound later live in the caller's namespace as before.
    pub fn new_anchored(cfg: XskConfig) -> Result<Self, XskError> {
        Self::anchored_in(cfg, None)
    }

    /// Like [`Self::new_anchored`], with the frames in a file another
    /// process can map, so the set can be handed over
    /// ([`Self::export`], [`Self::adopt`]): on a private tmpfs with huge
    /// pages where the kernel allows the mount, else a memfd
    /// ([`Self::backing`] says which; [`Self::huge_page_bytes`] what the
    /// kernel gave).
    pub fn new_shareable(cfg: XskConfig) -> Result<Self, XskError> {
        Self::shareable_on(cfg, None)
    }

    /// Like [`Self::new_shareable`], on the backing asked for only (a
    /// file: [`Backing::HugeTmpfs`] or [`Backing::Memfd`]), to compare
    /// them.
    pub fn new_shareable_on(cfg: XskConfig, backing: Backing) -> Result<Self, XskError> {
        Self::shareable_on(cfg, Some(backing))
    }

    fn shareable_on(cfg: XskConfig, want: Option<Backing>) -> Result<Self, XskError> {
        let file = memory::umem_file(u64::from(cfg.frames) * CHUNK, want).map_err(|e| {
            XskError::Setup {
                ifname: "(UMEM)".to_owned(),
                what: "UMEM file",
                reason: e.to_string(),
            }
        })?;
        Self::anchored_in(cfg, Some(file))
    }

    fn anchored_in(cfg: XskConfig, file: Option<(OwnedFd, Backing)>) -> Result<Self, XskError> {
        let setup = |what: &'static str, reason: String| XskError::Setup {
            ifname: "(UMEM anchor)".to_owned(),
            what,
            reason,
        };
        let made = std::thread::Builder::new()
            .name("xvs-umem-anchor".into())
            .spawn(move || -> Result<Self, XskError> {
                // SAFETY: unshare has no memory-safety preconditions; it
                // moves only this thread (which ends right after) into a
                // new network namespace.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(setup(
                        "private network namespace",
                        io::Error::last_os_error().to_string(),
                    ));
                }
                // The UMEM's fd is created here, so it belongs to the
                // private namespace, and so does the anchor's bind.
                let mut set = Self::new_in(cfg, file)?;
                set.anchor()?;
                Ok(set)
            })
            .map_err(|e| setup("thread", e.to_string()))?;
        made.join()
            .map_err(|_| setup("thread", "panicked".into()))?
    }

    /// Binds the UMEM's own socket to the loopback's queue 0 of the
    /// calling thread's namespace (a private one: see `new_anchored`).
    fn anchor(&mut self) -> Result<(), XskError> {
        let setup = |what: &'static str, reason: String| XskError::Setup {
            ifname: "lo (UMEM anchor)".to_owned(),
            what,
            reason,
        };
        let name = "lo"
            .parse()
            .map_err(|e: std::ffi::NulError| setup("name", e.to_string()))?;
        // The smallest rings: nothing ever goes through them. Multi-buffer
        // is the UMEM's property, set by the bind of its own socket (the
        // kernel refuses bind flags on the sockets sharing it, which
        // libxdp therefore leaves out, and gives them the UMEM's): asked
        // for here, and done without where the kernel does not know it.
        let new_socket = |sg: bool| {
            let sock_cfg = socket_config(64, sg).map_err(|e| setup("ring size", e))?;
            // SAFETY: the UMEM lives in `self` and outlives the anchor's
            // rings (field order; xsk-rs also reference-counts it), no
            // program is loaded (inhibit flag) and no other socket of this
            // UMEM is bound to this (interface, queue).
            Ok::<_, XskError>(unsafe { Socket::new(sock_cfg, &self.umem, &name, 0) })
        };
        let mut sg = true;
        let mut made = new_socket(true)?;
        if made.as_ref().is_err_and(|e| errno(e) == Some(libc::EINVAL)) {
            sg = false;
            made = new_socket(false)?;
        }
        let (tx, rx, fqcq) = made.map_err(|e| setup("AF_XDP socket", with_source(&e)))?;
        self.sg = sg;
        let (fq, cq) =
            fqcq.ok_or_else(|| setup("rings", "the UMEM already had a socket".into()))?;
        self.anchor = Some(Anchor {
            _queues: Some((tx, rx, fq, cq)),
        });
        Ok(())
    }

    /// Creates a socket on `ifname` queue `queue` sharing this UMEM,
    /// registers it in `prog`'s XSKMAP (libxdp's own program is
    /// inhibited), and lends it `rx_frames` chunks from the pool for its
    /// fill ring. Returns the socket's slot.
    pub fn bind(&mut self, ifname: &str, queue: u32, prog: &XdpProgram) -> Result<usize, XskError> {
        self.bind_inner(ifname, queue, Registrar::Program(prog))
    }

    /// Like [`Self::bind`], registering through `reg` (a worker binding
    /// sockets for a program owned by another thread); the socket is
    /// unregistered when [`Self::remove`]d.
    pub fn bind_with(&mut self, queue: u32, reg: XskRegistrar) -> Result<usize, XskError> {
        let ifname = reg.ifname().to_owned();
        self.bind_inner(&ifname, queue, Registrar::Owned(reg))
    }

    /// Creates a socket on `ifname` queue `queue` sharing this UMEM that
    /// only transmits: it is registered nowhere (the interface has no
    /// XDP program of ours, and needs none: a copy-mode send goes out
    /// through the driver's own transmit, on a veth `veth_xmit` into the
    /// peer's receive) and is lent no chunks, so none sit in a fill ring
    /// nothing ever receives on. Returns the socket's slot.
    pub fn bind_tx_only(&mut self, ifname: &str, queue: u32) -> Result<usize, XskError> {
        self.bind_inner(ifname, queue, Registrar::None)
    }

    fn bind_inner(
        &mut self,
        ifname: &str,
        queue: u32,
        registrar: Registrar<'_>,
    ) -> Result<usize, XskError> {
        let setup = |what: &'static str, reason: String| XskError::Setup {
            ifname: ifname.to_owned(),
            what,
            reason,
        };
        let cfg = self.cfg;
        let name = ifname
            .parse()
            .map_err(|e: std::ffi::NulError| setup("name", e.to_string()))?;
        let new_socket = |sg: bool| {
            let sock_cfg = socket_config(cfg.ring, sg).map_err(|e| setup("ring size", e))?;
            // SAFETY: the UMEM lives in `self` and is dropped after the
            // queues (field order; xsk-rs also reference-counts it), and
            // the inhibit-program flag is set, as sharing requires.
            Ok::<_, XskError>(unsafe { Socket::new(sock_cfg, &self.umem, &name, queue) })
        };
        // Multi-buffer where the kernel and driver allow it (Linux 6.6+,
        // any copy-mode socket; zero-copy only on drivers with
        // multi-buffer support): otherwise without, and frames longer
        // than a chunk are the kernel's drops, as before.
        // (Only the UMEM's first socket's flags count: see `anchor`.)
        let first = self.anchor.is_none() && self.socks.iter().all(Option::is_none);
        let mut made = new_socket(self.sg)?;
        if first
            && self.sg
            && made
                .as_ref()
                .is_err_and(|e| matches!(errno(e), Some(libc::EINVAL | libc::EOPNOTSUPP)))
        {
            self.sg = false;
            made = new_socket(false)?;
        }
        let sg = self.sg;
        let (tx, rx, fqcq) = made.map_err(|e| {
            let busy = std::error::Error::source(&e)
                .and_then(|c| c.downcast_ref::<io::Error>())
                .and_then(io::Error::raw_os_error)
                == Some(libc::EBUSY);
            if busy {
                XskError::Busy {
                    ifname: ifname.to_owned(),
                    queue,
                }
            } else {
                setup("AF_XDP socket", with_source(&e))
            }
        })?;
        let (fq, cq) = fqcq.ok_or_else(|| {
            setup(
                "rings",
                format!("queue {queue} is already bound to this UMEM"),
            )
        })?;
        // SAFETY: the fd belongs to `rx`, open for as long as this borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(rx.fd().as_raw_fd()) };
        let zero_copy = xsk_zero_copy(fd)?;
        let registered = match &registrar {
            Registrar::Program(p) => p.register_xsk(queue, fd),
            Registrar::Owned(r) => r.register(queue, fd),
            Registrar::None => Ok(()),
        };
        registered.map_err(|source| XskError::Register {
            ifname: ifname.to_owned(),
            source,
        })?;
        let receives = !matches!(registrar, Registrar::None);
        let reg = match registrar {
            Registrar::Program(_) | Registrar::None => None,
            Registrar::Owned(r) => Some(r),
        };
        let sock = Sock {
            ifname: ifname.to_owned(),
            queue,
            tx,
            rx,
            fq,
            cq,
            in_fill: 0,
            zero_copy,
            sg,
            chain: None,
            reg,
        };
        let s = match self.socks.iter().position(Option::is_none) {
            Some(free) => {
                self.socks[free] = Some(sock);
                free
            }
            None => {
                self.socks.push(Some(sock));
                self.socks.len() - 1
            }
        };
        if !receives {
            return Ok(s);
        }
        let want = (cfg.rx_frames as usize).min(self.pool.len());
        let lend: Vec<u64> = (0..want).filter_map(|_| self.alloc()).collect();
        let lent = self.fill(s, &lend)?;
        debug_assert_eq!(lent, want);
        Ok(s)
    }

    /// Chunks in the UMEM.
    pub fn chunks(&self) -> usize {
        self.owned.len()
    }

    /// Size of each socket's rings.
    pub fn ring_size(&self) -> usize {
        self.cfg.ring as usize
    }

    /// Where in its chunk the kernel writes a received frame (its
    /// headroom and the UMEM's `frame_headroom`): where frames from
    /// elsewhere (a guest's queues) are put too.
    pub fn rx_offset(&self) -> u64 {
        XDP_HEADROOM + u64::from(self.cfg.frame_headroom)
    }

    /// The number of slots (bound sockets and empty slots).
    pub fn slots(&self) -> usize {
        self.socks.len()
    }

    /// The number of bound sockets.
    pub fn sockets(&self) -> usize {
        self.socks.iter().flatten().count()
    }

    /// Whether slot `s` holds a socket.
    pub fn is_bound(&self, s: usize) -> bool {
        matches!(self.socks.get(s), Some(Some(_)))
    }

    /// Closes the socket in slot `s` (unregistering it first when it was
    /// bound with [`Self::bind_with`]) and takes back every chunk its
    /// rings held: once the socket is gone the kernel no longer touches
    /// them. Returns the chunks taken back.
    pub fn remove(&mut self, s: usize) -> Result<usize, XskError> {
        let sock = self
            .socks
            .get_mut(s)
            .and_then(Option::take)
            .ok_or(XskError::NoSocket(s))?;
        let mut sock = sock;
        jumbo::abort(&mut sock.chain, &mut self.slots, &mut self.jumbo);
        let unreg = match &sock.reg {
            Some(reg) => reg
                .unregister(sock.queue)
                .map_err(|source| XskError::Register {
                    ifname: sock.ifname.clone(),
                    source,
                }),
            None => Ok(()),
        };
        drop(sock);
        let mut back = 0;
        for i in 0..self.owned.len() {
            if !self.owned[i] && usize::from(self.lent_to[i]) == s {
                self.owned[i] = true;
                back += 1;
                if let Some(k) = self.slots.slot_of(i) {
                    // A slot's descriptors all sit on this socket's TX
                    // ring: the slot is free once they are all back.
                    self.slots.unlend(k);
                    self.slots.put(k);
                    continue;
                }
                self.pooled[i] = true;
                self.pool.push(i as u64 * CHUNK);
            }
        }
        unreg.map(|()| back)
    }

    fn sock(&mut self, s: usize) -> Result<&mut Sock, XskError> {
        self.socks
            .get_mut(s)
            .and_then(Option::as_mut)
            .ok_or(XskError::NoSocket(s))
    }

    /// Chunks currently lent to socket `s`'s fill ring.
    pub fn in_fill(&self, s: usize) -> usize {
        self.socks
            .get(s)
            .and_then(Option::as_ref)
            .map_or(0, |k| k.in_fill)
    }

    /// The interface socket `s` is bound to.
    pub fn ifname(&self, s: usize) -> Option<&str> {
        self.socks
            .get(s)
            .and_then(Option::as_ref)
            .map(|k| k.ifname.as_str())
    }

    /// The queue socket `s` is bound to.
    pub fn queue(&self, s: usize) -> Option<u32> {
        self.socks.get(s).and_then(Option::as_ref).map(|k| k.queue)
    }

    /// Socket `s`'s file descriptor, to wait for frames with poll(2).
    pub fn fd(&self, s: usize) -> BorrowedFd<'_> {
        // SAFETY: the fd belongs to the socket's rx queue, open for as
        // long as `self` is borrowed.
        let raw = self.socks[s].as_ref().map_or(-1, |k| k.rx.fd().as_raw_fd());
        // SAFETY: the fd belongs to the socket's rx queue, open for as
        // long as `self` is borrowed (-1, for an empty slot, is never a
        // valid fd and poll(2) ignores it).
        unsafe { BorrowedFd::borrow_raw(raw) }
    }

    /// Whether socket `s` was bound with `XDP_USE_SG` (takes frames
    /// longer than a chunk).
    pub fn multi_buffer(&self, s: usize) -> bool {
        self.socks
            .get(s)
            .and_then(Option::as_ref)
            .is_some_and(|k| k.sg)
    }

    /// What happened to frames longer than a chunk.
    pub fn jumbo_counters(&self) -> JumboCounters {
        self.jumbo
    }

    /// Chunks of the jumbo slots, and of those the free ones (neither in
    /// hand nor on a TX ring).
    pub fn slot_chunks(&self) -> (usize, usize) {
        (self.slots.chunks(), self.slots.free_chunks())
    }

    /// What the UMEM's frames live in.
    pub fn backing(&self) -> Backing {
        self.backing
    }

    /// Bytes of the UMEM on huge pages, as `/proc/self/smaps` reports
    /// them (reads the file: not for the packet path).
    pub fn huge_page_bytes(&self) -> io::Result<u64> {
        memory::huge_bytes(self.base, self.owned.len() * CHUNK as usize)
    }

    /// Whether the kernel runs socket `s` in zero-copy mode.
    pub fn zero_copy(&self, s: usize) -> bool {
        self.socks
            .get(s)
            .and_then(Option::as_ref)
            .is_some_and(|k| k.zero_copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvs_bpf::{AttachFlags, Mode};
    use xvs_tests::{on_thread, require_root, veth, Netns};

    fn cfg() -> XskConfig {
        XskConfig {
            frames: 256,
            rx_frames: 64,
            ring: 128,
            frame_headroom: 0,
            jumbo_slots: 4,
        }
    }

    /// Every chunk is either in the pool, a free jumbo slot's, or the
    /// kernel's.
    fn exact(set: &XskSet) {
        assert_eq!(
            set.pool_len() + set.slot_chunks().1 + set.kernel_chunks(),
            set.chunks(),
            "{set:?}"
        );
    }

    /// Binds queue 0 of `prog`'s interface, retrying while the kernel
    /// still releases the queue's previous socket (bounded).
    fn bind(set: &mut XskSet, prog: &XdpProgram) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match set.bind_with(0, prog.registrar().unwrap()) {
                Err(XskError::Busy { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                r => return r.expect("bind"),
            }
        }
    }

    fn xa0(a: &Netns, b: &Netns) {
        veth(a, "xa0", "02:00:00:00:00:01", b, "xb0", "02:00:00:00:00:02");
    }

    #[test]
    fn a_tx_only_socket_needs_no_program_and_is_lent_nothing() {
        if !require_root() {
            return;
        }
        let a = Netns::new("xsk-txonly-a");
        let b = Netns::new("xsk-txonly-b");
        xa0(&a, &b);
        on_thread(|| {
            a.enter();
            let mut set = XskSet::new_anchored(cfg()).expect("anchored UMEM");
            let pool = set.pool_len();
            // No XDP program on xa0 at all.
            let s = set.bind_tx_only("xa0", 0).expect("bind");
            assert_eq!(set.in_fill(s), 0);
            assert_eq!(set.pool_len(), pool, "no chunk lent");
            exact(&set);
            // It sends: a frame goes out and completes.
            let c = set.alloc().expect("a chunk");
            let frame = [[0xff; 6], [2, 0, 0, 0, 0, 1]].concat();
            set.frame_mut(c, 60).expect("owned")[..12].copy_from_slice(&frame);
            assert_eq!(set.tx_send(s, &[(c, 60)]).expect("send"), 1);
            let mut done = Vec::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while done.is_empty() && std::time::Instant::now() < deadline {
                set.kick(s).expect("kick");
                set.complete(s, &mut done);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            assert_eq!(done, [c], "sent and completed");
            set.release(c).unwrap();
            set.remove(s).expect("remove: nothing to unregister");
            assert_eq!(set.pool_len() + set.slot_chunks().1, set.chunks());
        });
    }

    #[test]
    fn an_anchored_umem_rebinds_a_removed_socket_and_a_recreated_interface() {
        if !require_root() {
            return;
        }
        let a = Netns::new("xsk-anchor-a");
        let b = Netns::new("xsk-anchor-b");
        xa0(&a, &b);
        veth(
            &a,
            "xa1",
            "02:00:00:00:00:03",
            &b,
            "xb1",
            "02:00:00:00:00:04",
        );
        on_thread(|| {
            a.enter();
            let mut set = XskSet::new_anchored(cfg()).expect("anchored UMEM");
            let p0 = XdpProgram::attach("xa0", Mode::Port, AttachFlags::Auto).expect("attach");
            let p1 = XdpProgram::attach("xa1", Mode::Port, AttachFlags::Auto).expect("attach");
            // The first socket bound, removed and bound again, many times.
            for _ in 0..20 {
                let s0 = bind(&mut set, &p0);
                let s1 = bind(&mut set, &p1);
                exact(&set);
                set.remove(s0).expect("remove xa0");
                set.remove(s1).expect("remove xa1");
                exact(&set);
                assert_eq!(
                    set.pool_len() + set.slot_chunks().0,
                    set.chunks(),
                    "every chunk back"
                );
            }
            // The interface of a bound socket deleted, recreated, bound.
            let s1 = bind(&mut set, &p1);
            let s0 = bind(&mut set, &p0);
            drop(p0);
            a.ip(&["link", "del", "xa0"]);
            set.remove(s0).expect("remove the dead socket");
            xa0(&a, &b);
            let p0 = XdpProgram::attach("xa0", Mode::Port, AttachFlags::Auto).expect("attach");
            let s0 = bind(&mut set, &p0);
            exact(&set);
            set.remove(s0).unwrap();
            set.remove(s1).unwrap();
            assert_eq!(set.pool_len() + set.slot_chunks().1, set.chunks());
        });
    }
}
