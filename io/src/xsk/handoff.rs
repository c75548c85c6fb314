//! Handing an [`XskSet`] over to another process: what a new xvsd needs
//! to go on forwarding on the running one's sockets without closing
//! them, so that no frame is lost across an upgrade.
//!
//! [`XskSet::export`] consumes the set: it stops touching the rings
//! from then on, and returns a [`Handoff`] (serde: it travels over a
//! Unix socket, `crate::handoff`) and the fds that must travel with it:
//! the UMEM's file, the UMEM's own (anchor) socket, and every bound
//! socket, in slot order. [`XskSet::adopt`] maps the same UMEM from its
//! file and every socket's four rings from its fd (the kernel allows
//! remapping a bound socket's rings since Linux 6.5), reads the ring
//! positions from the rings themselves, and takes over the chunk
//! ownership the handoff describes. The kernel never notices: the
//! sockets stay bound and registered, the fill rings keep their chunks,
//! frames queued on TX go out, and what arrives meanwhile waits on the
//! rx rings (a ring's worth; what comes beyond that is the kernel's
//! drop: the gap must stay shorter than a ring at the line rate).
//!
//! A handoff is untrusted input (another binary wrote it): every chunk
//! is checked to lie in the UMEM and to be listed once, the pool and
//! the kernel's chunks must account for every chunk, the jumbo slots'
//! states must agree with the chunks lent from them, every fd must be
//! of the right kind, a ring must be no larger than stated, and every
//! chunk the four rings of a socket show must be one the handoff gives
//! that socket; a refusal is a typed [`HandoffError`], never a panic.
//! What cannot be checked: chunks the kernel took off a ring and holds
//! in flight (a zero-copy driver's), a ring smaller than a page's worth
//! of entries being larger within that page, and that a socket fd
//! shares this UMEM (the kernel reports it only through sock_diag,
//! `CONFIG_XDP_SOCKETS_DIAG`, which this kernel lacks; a socket of
//! another UMEM would most likely show chunks the handoff does not give
//! it). Those are taken on the exporter's word.
//!
//! Frames the exporter held (received, not yet sent or filled again)
//! cannot be handed over as frames: their chunks go back to the pool
//! and are counted in [`Handoff::reclaimed`]. A worker drains its batch
//! before exporting, so that is 0 in practice.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use serde::{Deserialize, Serialize};
use xsk_rs::socket::RingSizes;
use xsk_rs::{FrameDesc, Socket, Umem};

use super::jumbo::{Chain, Slots, SLOT_BYTES, SLOT_CHUNKS};
use super::{
    umem_config, xsk_zero_copy, Anchor, Backing, JumboCounters, Sock, XskConfig, XskError, XskSet,
    CHUNK,
};

/// The handoff format this build writes and reads.
pub const HANDOFF_VERSION: u32 = 1;

/// Chunks a handoff may describe (64 GiB of UMEM): bounds what a forged
/// one makes the adopter allocate.
const MAX_FRAMES: u32 = 1 << 24;

/// Everything about an [`XskSet`] that is not in the kernel: its sizes
/// and who owns each chunk. Sent beside the fds [`XskSet::export`]
/// returns, which it names by position: `0` the UMEM's file, `1` the
/// UMEM's own socket, then one per bound socket in slot order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// [`HANDOFF_VERSION`] of the exporter.
    pub version: u32,
    /// The set's [`XskConfig`] (every ring has `ring` entries).
    pub frames: u32,
    pub rx_frames: u32,
    pub ring: u32,
    pub frame_headroom: u32,
    pub jumbo_slots: u32,
    /// What the frames live in (a report only).
    pub backing: Backing,
    /// The UMEM takes multi-buffer frames (`XDP_USE_SG`).
    pub sg: bool,
    /// Chunks (base addresses) userspace owns and nobody uses, in the
    /// pool's order.
    pub pool: Vec<u64>,
    /// Sockets by slot (a removed socket leaves `None`).
    pub sockets: Vec<Option<SocketHandoff>>,
    /// Per jumbo slot: its descriptors on a TX ring (0: the slot is not
    /// the kernel's).
    pub slots_out: Vec<u8>,
    /// The set's [`JumboCounters`], carried on.
    pub jumbo: [u64; 4],
    /// Chunks the exporter held as frames, put back in the pool: frames
    /// lost in the handoff.
    pub reclaimed: u32,
}

/// One socket of a [`Handoff`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketHandoff {
    pub ifname: String,
    pub queue: u32,
    /// Bound with `XDP_USE_SG`.
    pub sg: bool,
    /// Chunks lent to its fill ring and not yet received.
    pub in_fill: u32,
    /// Chunks (base addresses) the kernel holds for it: on its fill
    /// ring, its rx ring, its TX ring or its completion ring.
    pub kernel: Vec<u64>,
    /// A multi-buffer frame it was receiving.
    pub chain: Option<ChainHandoff>,
}

/// A multi-buffer frame half received: its remaining descriptors come
/// to the new owner, which goes on assembling it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHandoff {
    /// Its jumbo slot (`None`: none was free, the chain is skipped).
    pub slot: Option<u32>,
    /// Where in the slot the frame starts.
    pub head: u64,
    /// Bytes assembled so far.
    pub len: u64,
    /// Malformed: dropped when it ends.
    pub bad: bool,
}

/// Why a handoff was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    #[error("format version {0}; this build reads {HANDOFF_VERSION}")]
    Version(u32),
    #[error("sizes: {0}")]
    Config(String),
    #[error("chunk {addr:#x} is not the start of a chunk inside the UMEM")]
    ChunkOutOfRange { addr: u64 },
    #[error("chunk {addr:#x} is listed twice")]
    DuplicateChunk { addr: u64 },
    #[error("chunk {addr:#x} belongs to a jumbo slot and cannot be in the pool")]
    SlotChunkPooled { addr: u64 },
    #[error("{missing} chunks are neither in the pool nor the kernel's (first {first:#x})")]
    Unaccounted { missing: usize, first: u64 },
    #[error("jumbo slot {slot}: {reason}")]
    Slot { slot: usize, reason: String },
    #[error("socket in slot {slot}: {reason}")]
    Socket { slot: usize, reason: String },
    /// A ring of the socket holds a chunk the handoff does not say the
    /// kernel holds for that socket: the handoff and the kernel
    /// disagree, and userspace could write a buffer the kernel fills.
    #[error("socket in slot {slot}: its {ring} ring holds {addr:#x}, which the handoff does not give it")]
    RingDisagrees {
        slot: usize,
        ring: &'static str,
        addr: u64,
    },
    #[error("{got} file descriptors, expected {want}")]
    FdCount { want: usize, got: usize },
    #[error("file descriptor {index} ({what}): {reason}")]
    Fd {
        index: usize,
        what: &'static str,
        reason: String,
    },
    #[error("the set's frames are in private memory: only a set made by XskSet::new_shareable can be handed over")]
    NotShareable,
}

/// What is left of a set after [`XskSet::export`]: its mappings and
/// this process's fds of its sockets, reachable by nothing, only to be
/// dropped. Dropping it (unmapping, closing, libxdp's bookkeeping) takes
/// a few hundred microseconds that need not be in the gap: drop it once
/// the handoff is on its way.
pub struct Retired(#[allow(dead_code)] XskSet);

impl std::fmt::Debug for Retired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Retired")
    }
}

/// A set [`XskSet::export`] could not hand over, given back untouched.
#[derive(Debug)]
pub struct Refused {
    pub error: XskError,
    pub set: XskSet,
}

/// Chunk ownership as a handoff describes it, checked.
struct Plan {
    cfg: XskConfig,
    owned: Vec<bool>,
    lent_to: Vec<u16>,
    pooled: Vec<bool>,
    /// Jumbo slots held by chains.
    held: Vec<usize>,
}

impl Handoff {
    /// The set's sizes.
    pub fn config(&self) -> XskConfig {
        XskConfig {
            frames: self.frames,
            rx_frames: self.rx_frames,
            ring: self.ring,
            frame_headroom: self.frame_headroom,
            jumbo_slots: self.jumbo_slots,
        }
    }

    /// How many fds travel with it.
    pub fn fds(&self) -> usize {
        2 + self.sockets.iter().flatten().count()
    }

    /// Checks everything the handoff says that does not need its fds:
    /// what [`XskSet::adopt`] checks before touching them.
    pub fn validate(&self) -> Result<(), HandoffError> {
        self.plan().map(drop)
    }

    fn plan(&self) -> Result<Plan, HandoffError> {
        if self.version != HANDOFF_VERSION {
            return Err(HandoffError::Version(self.version));
        }
        let cfg = self.config();
        let bad = |s: String| Err(HandoffError::Config(s));
        if cfg.frames == 0 || cfg.frames > MAX_FRAMES {
            return bad(format!("{} chunks", cfg.frames));
        }
        if !cfg.ring.is_power_of_two() || cfg.ring > 1 << 16 {
            return bad(format!("ring of {}", cfg.ring));
        }
        if cfg.rx_frames > cfg.frames || cfg.rx_frames > cfg.ring {
            return bad(format!("{} rx frames", cfg.rx_frames));
        }
        if u64::from(cfg.frame_headroom) >= CHUNK / 2 {
            return bad(format!("headroom {}", cfg.frame_headroom));
        }
        let n = cfg.frames as usize;
        let slot_chunks = (cfg.jumbo_slots as usize).saturating_mul(SLOT_CHUNKS);
        if slot_chunks.saturating_mul(2) > n {
            return bad(format!("{} jumbo slots", cfg.jumbo_slots));
        }
        if self.slots_out.len() != cfg.jumbo_slots as usize {
            return bad(format!(
                "{} slot states for {} slots",
                self.slots_out.len(),
                cfg.jumbo_slots
            ));
        }
        if self.sockets.len() > usize::from(u16::MAX) {
            return bad(format!("{} socket slots", self.sockets.len()));
        }
        let first_slot = n - slot_chunks;
        let index = |addr: u64| -> Result<usize, HandoffError> {
            if addr % CHUNK != 0 || addr / CHUNK >= n as u64 {
                return Err(HandoffError::ChunkOutOfRange { addr });
            }
            Ok((addr / CHUNK) as usize)
        };
        let mut seen = vec![false; n];
        let mut owned = vec![true; n];
        let mut lent_to = vec![0u16; n];
        let mut pooled = vec![false; n];
        for &addr in &self.pool {
            let i = index(addr)?;
            if seen[i] {
                return Err(HandoffError::DuplicateChunk { addr });
            }
            if i >= first_slot {
                return Err(HandoffError::SlotChunkPooled { addr });
            }
            seen[i] = true;
            pooled[i] = true;
        }
        let mut held = Vec::new();
        for (s, sock) in self.sockets.iter().enumerate() {
            let Some(sock) = sock else { continue };
            let fail = |reason: String| HandoffError::Socket { slot: s, reason };
            let name_ok = !sock.ifname.is_empty()
                && sock.ifname.len() < libc::IFNAMSIZ
                && !sock.ifname.contains(['\0', '/']);
            if !name_ok {
                return Err(fail(format!("interface name {:?}", sock.ifname)));
            }
            for &addr in &sock.kernel {
                let i = index(addr)?;
                if seen[i] {
                    return Err(HandoffError::DuplicateChunk { addr });
                }
                seen[i] = true;
                owned[i] = false;
                lent_to[i] = s as u16;
            }
            if sock.in_fill as usize > sock.kernel.len() {
                return Err(fail(format!(
                    "{} chunks in its fill ring, {} the kernel's in all",
                    sock.in_fill,
                    sock.kernel.len()
                )));
            }
            if sock.sg && !self.sg {
                return Err(fail("multi-buffer on a UMEM without it".into()));
            }
            if let Some(c) = &sock.chain {
                if c.head >= CHUNK || c.len > SLOT_BYTES {
                    return Err(fail(format!("chain at {} of {} bytes", c.head, c.len)));
                }
                if let Some(k) = c.slot {
                    let k = k as usize;
                    if k >= self.slots_out.len() || held.contains(&k) || self.slots_out[k] != 0 {
                        return Err(HandoffError::Slot {
                            slot: k,
                            reason: "a chain's slot that is missing, shared or on a TX ring".into(),
                        });
                    }
                    held.push(k);
                }
            }
        }
        for (k, &out) in self.slots_out.iter().enumerate() {
            let chunks = first_slot + k * SLOT_CHUNKS..first_slot + (k + 1) * SLOT_CHUNKS;
            let lent = chunks.clone().filter(|&i| !owned[i]).count();
            if usize::from(out) != lent {
                return Err(HandoffError::Slot {
                    slot: k,
                    reason: format!("{out} descriptors on a TX ring, {lent} chunks lent"),
                });
            }
            // A slot's chunks are the slot's, lent or not.
            for i in chunks {
                seen[i] = true;
            }
        }
        let missing = seen.iter().filter(|s| !**s).count();
        if let Some(i) = seen.iter().position(|s| !*s) {
            return Err(HandoffError::Unaccounted {
                missing,
                first: i as u64 * CHUNK,
            });
        }
        Ok(Plan {
            cfg,
            owned,
            lent_to,
            pooled,
            held,
        })
    }
}

/// Whether `fd` is an AF_XDP socket.
fn check_xdp_socket(fd: BorrowedFd<'_>, index: usize, what: &'static str) -> Result<(), XskError> {
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `domain` and `len` are valid for writes of the size passed;
    // `fd` is open for the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&raw mut domain).cast(),
            &mut len,
        )
    };
    let reason = if rc != 0 {
        std::io::Error::last_os_error().to_string()
    } else if domain != libc::AF_XDP {
        format!("a socket of family {domain}, not AF_XDP")
    } else {
        return Ok(());
    };
    Err(HandoffError::Fd {
        index,
        what,
        reason,
    }
    .into())
}

impl XskSet {
    /// Hands the set over: stops using it and returns what another
    /// process needs to [`adopt`](Self::adopt) it, the [`Handoff`] and
    /// its fds (see there), and the rest of it as [`Retired`], to drop
    /// once they are sent (the kernel objects live on in the fds). Only
    /// a set made by [`Self::new_shareable`] can be handed over; any
    /// other, or one whose fds cannot be duplicated, is given back in
    /// [`Refused`].
    pub fn export(mut self) -> Result<(Handoff, Vec<OwnedFd>, Retired), Box<Refused>> {
        let fds = match self.export_fds() {
            Ok(fds) => fds,
            Err(error) => return Err(Box::new(Refused { error, set: self })),
        };
        let n = self.owned.len();
        let mut pool = std::mem::take(&mut self.pool);
        let mut reclaimed = 0;
        for i in 0..n {
            if self.owned[i] && !self.pooled[i] && self.slots.slot_of(i).is_none() {
                pool.push(i as u64 * CHUNK);
                reclaimed += 1;
            }
        }
        let held: Vec<usize> = self
            .socks
            .iter()
            .flatten()
            .filter_map(|k| k.chain.and_then(|c| c.parts().0))
            .collect();
        // Slots in the exporter's hand (frames it held) are freed: the
        // adopter frees every slot neither on a ring nor a chain's.
        let slots_out = self.slots.out_counts().to_vec();
        for (k, &out) in slots_out.iter().enumerate() {
            if out == 0 && !held.contains(&k) && !self.slots.is_free(k) {
                reclaimed += 1;
            }
        }
        let sockets = self
            .socks
            .iter()
            .enumerate()
            .map(|(s, k)| {
                k.as_ref().map(|k| SocketHandoff {
                    ifname: k.ifname.clone(),
                    queue: k.queue,
                    sg: k.sg,
                    in_fill: k.in_fill as u32,
                    kernel: (0..n)
                        .filter(|&i| !self.owned[i] && usize::from(self.lent_to[i]) == s)
                        .map(|i| i as u64 * CHUNK)
                        .collect(),
                    chain: k.chain.map(|c| {
                        let (slot, head, len, bad) = c.parts();
                        ChainHandoff {
                            slot: slot.map(|k| k as u32),
                            head,
                            len,
                            bad,
                        }
                    }),
                })
            })
            .collect();
        let j = self.jumbo;
        let handoff = Handoff {
            version: HANDOFF_VERSION,
            frames: self.cfg.frames,
            rx_frames: self.cfg.rx_frames,
            ring: self.cfg.ring,
            frame_headroom: self.cfg.frame_headroom,
            jumbo_slots: self.cfg.jumbo_slots,
            backing: self.backing,
            sg: self.sg,
            pool,
            sockets,
            slots_out,
            jumbo: [j.rx_chains, j.tx_chains, j.no_slot, j.bad_chain],
            reclaimed,
        };
        Ok((handoff, fds, Retired(self)))
    }

    /// The fds to hand over, duplicated: the UMEM's file, its own
    /// socket, every bound socket in slot order.
    fn export_fds(&self) -> Result<Vec<OwnedFd>, XskError> {
        let dup = |index: usize, what: &'static str, fd: BorrowedFd<'_>| {
            fd.try_clone_to_owned().map_err(|e| HandoffError::Fd {
                index,
                what,
                reason: e.to_string(),
            })
        };
        let memory = self.umem.memory_fd().ok_or(HandoffError::NotShareable)?;
        if self.anchor.is_none() {
            return Err(HandoffError::NotShareable.into());
        }
        let mut fds = vec![dup(0, "UMEM file", memory)?];
        fds.push(self.umem.fd().map_err(|e| HandoffError::Fd {
            index: 1,
            what: "UMEM socket",
            reason: e.to_string(),
        })?);
        for k in self.socks.iter().flatten() {
            // SAFETY: the fd belongs to the socket's rx queue, open for
            // as long as `self` is borrowed, which outlasts the dup.
            let fd = unsafe { BorrowedFd::borrow_raw(k.rx.fd().as_raw_fd()) };
            fds.push(dup(fds.len(), "socket", fd)?);
        }
        Ok(fds)
    }

    /// Takes over a set another process [exported](Self::export):
    /// `handoff` and the fds that came with it, in its order. Checks the
    /// handoff first (see [`Handoff::validate`]), then every fd's kind,
    /// then maps the UMEM and every socket's rings; the first problem is
    /// a typed error and nothing is kept. The sockets are registered
    /// where they were (an XSKMAP entry holds the socket, not the fd);
    /// [`Self::register`] tells the set where, so that
    /// [`Self::remove`] unregisters them.
    pub fn adopt(handoff: Handoff, fds: Vec<OwnedFd>) -> Result<Self, XskError> {
        let plan = handoff.plan()?;
        if fds.len() != handoff.fds() {
            return Err(HandoffError::FdCount {
                want: handoff.fds(),
                got: fds.len(),
            }
            .into());
        }
        let cfg = plan.cfg;
        let mut fds = fds.into_iter();
        let (Some(memory), Some(umem_sock)) = (fds.next(), fds.next()) else {
            unreachable!("counted above")
        };
        check_xdp_socket(umem_sock.as_fd(), 1, "UMEM socket")?;
        let umem_cfg = umem_config(&cfg)?;
        let frames = std::num::NonZeroU32::new(cfg.frames)
            .ok_or_else(|| HandoffError::Config("0 chunks".into()))?;
        let (umem, _) =
            Umem::adopt(umem_cfg, frames, memory, umem_sock).map_err(|e| HandoffError::Fd {
                index: 0,
                what: "UMEM file",
                reason: super::with_source(&e),
            })?;
        let sizes = RingSizes {
            rx: cfg.ring,
            tx: cfg.ring,
            fill: cfg.ring,
            comp: cfg.ring,
        };
        let mut socks = Vec::with_capacity(handoff.sockets.len());
        for (s, (sh, fd)) in handoff
            .sockets
            .iter()
            .scan(&mut fds, |fds, sh| {
                Some((sh, sh.as_ref().and_then(|_| fds.next())))
            })
            .enumerate()
        {
            let (Some(sh), Some(fd)) = (sh, fd) else {
                socks.push(None);
                continue;
            };
            check_xdp_socket(fd.as_fd(), 2 + socks.iter().flatten().count(), "socket")?;
            let zero_copy = xsk_zero_copy(fd.as_fd())?;
            // SAFETY: the fd is an AF_XDP socket (checked) that the
            // exporter bound to this UMEM (its word: see the module
            // doc), and the exporter stopped using its rings when it
            // exported the set (`export` consumes it). The chunk
            // ownership taken over below is the exporter's, checked
            // to account for every chunk exactly once.
            let (tx, rx, fq, cq) =
                unsafe { Socket::adopt(fd, &umem, sizes) }.map_err(|e| HandoffError::Socket {
                    slot: s,
                    reason: format!("mapping its rings: {e}"),
                })?;
            let (mut tx, mut rx, mut fq, mut cq) = (tx, rx, fq, cq);
            // What the rings show must be the kernel's and this
            // socket's by the handoff's account (chunks the kernel took
            // off a ring and holds in flight cannot be seen; those it
            // shows can): a chunk the handoff put in the pool while a
            // ring holds it would be written by both sides.
            let mut shown: Vec<(&'static str, u64)> = Vec::new();
            fq.pending_addrs(|a| shown.push(("fill", a)));
            rx.pending_addrs(|a| shown.push(("rx", a)));
            tx.pending_addrs(|a| shown.push(("TX", a)));
            cq.pending_addrs(|a| shown.push(("completion", a)));
            let theirs = |a: u64| {
                let i = (a / CHUNK) as usize;
                i < plan.owned.len() && !plan.owned[i] && usize::from(plan.lent_to[i]) == s
            };
            if let Some(&(ring, addr)) = shown.iter().find(|(_, a)| !theirs(*a)) {
                return Err(HandoffError::RingDisagrees {
                    slot: s,
                    ring,
                    addr,
                }
                .into());
            }
            let chain = sh
                .chain
                .as_ref()
                .map(|c| Chain::from_parts(c.slot.map(|k| k as usize), c.head, c.len, c.bad));
            socks.push(Some(Sock {
                ifname: sh.ifname.clone(),
                queue: sh.queue,
                tx,
                rx,
                fq,
                cq,
                in_fill: sh.in_fill as usize,
                zero_copy,
                sg: sh.sg,
                chain,
                reg: None,
            }));
        }
        let n = cfg.frames as usize;
        let slot_chunks = cfg.jumbo_slots as usize * SLOT_CHUNKS;
        let [rx_chains, tx_chains, no_slot, bad_chain] = handoff.jumbo;
        let mut set = Self {
            socks,
            anchor: Some(Anchor { _queues: None }),
            umem,
            cfg,
            owned: plan.owned,
            lent_to: plan.lent_to,
            pool: handoff.pool,
            pooled: plan.pooled,
            descs: vec![FrameDesc::default(); n],
            scratch: vec![FrameDesc::default(); cfg.ring as usize],
            taken: Vec::with_capacity(cfg.ring as usize),
            slots: Slots::restore(n - slot_chunks, &handoff.slots_out, &plan.held),
            sg: handoff.sg,
            jumbo: JumboCounters {
                rx_chains,
                tx_chains,
                no_slot,
                bad_chain,
            },
            backing: handoff.backing,
            base: 0,
        };
        // The pool keeps its capacity for every chunk, as `new` makes
        // it: releasing never allocates.
        set.pool.reserve(n.saturating_sub(set.pool.len()));
        // SAFETY: a view of no bytes at the UMEM's first address: only
        // its address is kept, and no byte is read or written (chunk 0
        // may be the kernel's).
        set.base = unsafe { set.umem.data(&FrameDesc::default()) }
            .contents()
            .as_ptr() as usize;
        Ok(set)
    }

    /// Tells the set that socket `s` is registered through `reg` (the
    /// XSKMAP of the program on its interface), registering it there
    /// again (harmless when the entry is already this socket): for a
    /// set taken over with [`Self::adopt`], whose sockets stayed
    /// registered where the exporter put them, or moved to a new
    /// program. [`Self::remove`] then unregisters it.
    pub fn register(&mut self, s: usize, reg: xvs_bpf::XskRegistrar) -> Result<(), XskError> {
        let sock = self.sock(s)?;
        // SAFETY: the fd belongs to the socket's rx queue, open for as
        // long as `sock` is borrowed.
        let fd = unsafe { BorrowedFd::borrow_raw(sock.rx.fd().as_raw_fd()) };
        reg.register(sock.queue, fd)
            .map_err(|source| XskError::Register {
                ifname: sock.ifname.clone(),
                source,
            })?;
        sock.reg = Some(reg);
        Ok(())
    }
}

#[cfg(test)]
#[path = "handoff_tests.rs"]
mod tests;
