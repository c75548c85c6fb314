//! xvs patch: sockets whose rings are mapped here rather than by
//! libxdp: a bound socket taken over from another process
//! ([`Socket::adopt`]), and a socket sharing an adopted UMEM
//! ([`Socket::new`] on a UMEM from [`Umem::adopt`]), which libxdp
//! cannot make since it never saw that UMEM.
//!
//! The kernel lets a bound socket's four rings be mapped again (Linux
//! 6.5+: `xsk_mmap` accepts `XSK_BOUND`, and maps the fill and
//! completion rings of the socket's own buffer pool), so a second
//! process sees the same rings. The ring positions are the shared
//! producer and consumer words; the `cached_*` values libxdp keeps
//! are per process and are set here from the shared ones.

use std::{
    io, mem,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    ptr::NonNull,
    sync::Arc,
};

use libxdp_sys::{xdp_desc, xdp_mmap_offsets, xdp_ring_offset, xsk_ring_cons, xsk_ring_prod};

use super::{Fd, Owner, RxQueue, Socket, TxQueue};
use crate::{
    config::{Interface, SocketConfig},
    ring::{XskRingCons, XskRingProd},
    umem::{CompQueue, FillQueue, Umem},
};

/// The sizes (entries, powers of two) of a socket's four rings: what
/// they were made with, which the kernel does not report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingSizes {
    /// The rx ring.
    pub rx: u32,
    /// The TX ring.
    pub tx: u32,
    /// The socket's fill ring.
    pub fill: u32,
    /// The socket's completion ring.
    pub comp: u32,
}

/// A socket whose rings this process mapped: unmapped and closed when
/// the last queue holding it goes.
#[derive(Debug)]
pub(crate) struct MappedSocket {
    /// Closed after the rings are unmapped.
    _fd: OwnedFd,
    maps: Vec<(NonNull<libc::c_void>, usize)>,
    _umem: Umem,
}

// SAFETY: the struct only remembers the mappings to unmap them on
// drop; the rings in them are reached through the queues, each of
// which is used by one thread at a time (`&mut self`).
unsafe impl Send for MappedSocket {}
// SAFETY: as above: nothing is read or written through `&self`.
unsafe impl Sync for MappedSocket {}

impl Drop for MappedSocket {
    fn drop(&mut self) {
        for &(addr, len) in &self.maps {
            // SAFETY: each was mapped by `map_ring` with this length and
            // is unmapped once, here; the queues whose rings point into
            // it hold this struct, so none is left.
            unsafe { libc::munmap(addr.as_ptr(), len) };
        }
    }
}

const SOL_XDP: libc::c_int = 283;

fn setsockopt_u32(fd: BorrowedFd<'_>, opt: u32, val: u32) -> io::Result<()> {
    // SAFETY: `val` is valid for reads of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            opt as libc::c_int,
            (&raw const val).cast(),
            mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The rings' offsets in their mappings; fails unless `fd` is an
/// AF_XDP socket.
fn mmap_offsets(fd: BorrowedFd<'_>) -> io::Result<xdp_mmap_offsets> {
    let zero = xdp_ring_offset {
        producer: 0,
        consumer: 0,
        desc: 0,
        flags: 0,
    };
    let mut off = xdp_mmap_offsets {
        rx: zero,
        tx: zero,
        fr: zero,
        cr: zero,
    };
    let mut len = mem::size_of::<xdp_mmap_offsets>() as libc::socklen_t;
    // SAFETY: `off` and `len` are valid for writes of the size passed.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            libxdp_sys::XDP_MMAP_OFFSETS as libc::c_int,
            (&raw mut off).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != mem::size_of::<xdp_mmap_offsets>() {
        // Kernels before 5.4 report no flags offset (no need_wakeup).
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "XDP_MMAP_OFFSETS without ring flags (kernel older than 5.4)",
        ));
    }
    Ok(off)
}

/// One ring's mapping: its base and the pointers into it.
struct Ring {
    producer: *mut u32,
    consumer: *mut u32,
    flags: *mut u32,
    desc: *mut libc::c_void,
    size: u32,
}

impl Ring {
    /// Producer minus consumer, checked against the size: a ring whose
    /// positions do not fit the size we were told is not the ring we
    /// think it is.
    fn positions(&self) -> io::Result<(u32, u32)> {
        // SAFETY: both words lie in the ring's mapping (checked against
        // its length in `map_ring`), which lives at least as long as
        // `self` is used; the kernel and the other process update them
        // concurrently, so they are read volatile, once each.
        let (prod, cons) = unsafe {
            (
                std::ptr::read_volatile(self.producer),
                std::ptr::read_volatile(self.consumer),
            )
        };
        if prod.wrapping_sub(cons) > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "ring positions {prod}/{cons} do not fit a ring of {}",
                    self.size
                ),
            ));
        }
        Ok((prod, cons))
    }
}

/// Maps one ring of `fd` at page offset `pgoff`.
fn map_ring(
    fd: BorrowedFd<'_>,
    off: &xdp_ring_offset,
    size: u32,
    entry: usize,
    pgoff: u64,
    maps: &mut Vec<(NonNull<libc::c_void>, usize)>,
) -> io::Result<Ring> {
    if !size.is_power_of_two() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("ring size {size} is not a power of two"),
        ));
    }
    let len = (off.desc as usize)
        .checked_add(size as usize * entry)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let words = [off.producer, off.consumer, off.flags];
    if words.iter().any(|&w| w as usize + 4 > len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "ring offsets outside the ring",
        ));
    }
    // SAFETY: a fresh shared mapping of the socket's ring, at an
    // address the kernel picks; the kernel refuses a length beyond the
    // ring's memory.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            pgoff as libc::off_t,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let base = NonNull::new(addr).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
    maps.push((base, len));
    // The kernel refuses a mapping longer than the ring's memory (its
    // length rounded up to pages), so the map above showed the ring
    // holds at least `size` entries; a map one page longer must fail,
    // or the ring is larger than we were told and our mask would put
    // entries where the kernel does not look. (A ring of fewer entries
    // than a page holds can still be larger within its last page: 256
    // rx/TX or 512 fill/completion entries and below.)
    let page = 4096;
    let more = len.div_ceil(page) * page + page;
    // SAFETY: as above: a fresh shared mapping the kernel places.
    let probe = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            more,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            pgoff as libc::off_t,
        )
    };
    if probe != libc::MAP_FAILED {
        // SAFETY: the probe mapping just made, used by nothing.
        unsafe { libc::munmap(probe, more) };
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the ring holds more than the {size} entries it was said to"),
        ));
    }
    let at = |o: u64| addr.cast::<u8>().wrapping_add(o as usize);
    Ok(Ring {
        producer: at(off.producer).cast(),
        consumer: at(off.consumer).cast(),
        flags: at(off.flags).cast(),
        desc: at(off.desc).cast(),
        size,
    })
}

/// A producer ring's state for this process: libxdp keeps the cached
/// consumer a ring ahead of the real one.
fn prod(r: &Ring) -> io::Result<xsk_ring_prod> {
    let (prod, cons) = r.positions()?;
    Ok(xsk_ring_prod {
        cached_prod: prod,
        cached_cons: cons.wrapping_add(r.size),
        mask: r.size - 1,
        size: r.size,
        producer: r.producer,
        consumer: r.consumer,
        ring: r.desc,
        flags: r.flags,
    })
}

fn cons(r: &Ring) -> io::Result<xsk_ring_cons> {
    let (prod, cons) = r.positions()?;
    Ok(xsk_ring_cons {
        cached_prod: prod,
        cached_cons: cons,
        mask: r.size - 1,
        size: r.size,
        producer: r.producer,
        consumer: r.consumer,
        ring: r.desc,
        flags: r.flags,
    })
}

/// Maps `fd`'s four rings and wraps them as queues over `umem`.
fn queues(
    fd: OwnedFd,
    umem: &Umem,
    sizes: RingSizes,
) -> io::Result<(TxQueue, RxQueue, FillQueue, CompQueue)> {
    let off = mmap_offsets(fd.as_fd())?;
    let mut maps = Vec::with_capacity(4);
    let desc = mem::size_of::<xdp_desc>();
    let addr = mem::size_of::<u64>();
    let rings = (|| {
        let b = fd.as_fd();
        Ok::<_, io::Error>((
            map_ring(
                b,
                &off.rx,
                sizes.rx,
                desc,
                libxdp_sys::XDP_PGOFF_RX_RING.into(),
                &mut maps,
            )?,
            map_ring(
                b,
                &off.tx,
                sizes.tx,
                desc,
                libxdp_sys::XDP_PGOFF_TX_RING.into(),
                &mut maps,
            )?,
            map_ring(
                b,
                &off.fr,
                sizes.fill,
                addr,
                libxdp_sys::XDP_UMEM_PGOFF_FILL_RING,
                &mut maps,
            )?,
            map_ring(
                b,
                &off.cr,
                sizes.comp,
                addr,
                libxdp_sys::XDP_UMEM_PGOFF_COMPLETION_RING,
                &mut maps,
            )?,
        ))
    })();
    let raw = fd.as_raw_fd();
    // Owns the mappings from here: unmapped on any error below.
    let owner = MappedSocket {
        _fd: fd,
        maps,
        _umem: umem.clone(),
    };
    let (rx, tx, fr, cr) = rings?;
    let (rx, tx, fr, cr) = (cons(&rx)?, prod(&tx)?, prod(&fr)?, cons(&cr)?);
    let socket = Socket {
        fd: Fd::new(raw),
        _inner: Owner::Mapped(Arc::new(owner)),
    };
    Ok((
        TxQueue::new(XskRingProd::from_raw(tx), socket.clone()),
        RxQueue::new(XskRingCons::from_raw(rx), socket.clone()),
        FillQueue::new(XskRingProd::from_raw(fr), socket.clone()),
        CompQueue::new(XskRingCons::from_raw(cr), socket),
    ))
}

impl Socket {
    /// xvs patch: takes over a bound AF_XDP socket from another process
    /// (its fd passed over a Unix socket): maps its four rings again
    /// and returns its queues, their positions read from the rings
    /// themselves. `sizes` are what the rings were made with; a ring
    /// whose positions do not fit its size, or an fd that is not an
    /// AF_XDP socket, is refused.
    ///
    /// # Safety
    ///
    /// `fd` must be bound to `umem` (its own socket or one sharing it),
    /// and nothing else may use its rings from now on: the process that
    /// handed it over must have stopped touching them. The descriptors
    /// the rings then hold are trusted as the kernel's are (see each
    /// queue's `produce` and `consume`).
    pub unsafe fn adopt(
        fd: OwnedFd,
        umem: &Umem,
        sizes: RingSizes,
    ) -> io::Result<(TxQueue, RxQueue, FillQueue, CompQueue)> {
        queues(fd, umem, sizes)
    }

    /// A socket sharing an adopted UMEM, bound to `(if_name, queue_id)`
    /// as libxdp would: its own fill and completion rings, the
    /// `XDP_SHARED_UMEM` bind (no other bind flags: the kernel gives a
    /// sharing socket the UMEM's).
    pub(super) fn new_on_adopted(
        config: &SocketConfig,
        umem: &Umem,
        if_name: &Interface,
        queue_id: u32,
        (umem_fd, fill, comp): (io::Result<OwnedFd>, u32, u32),
    ) -> io::Result<(TxQueue, RxQueue, FillQueue, CompQueue)> {
        let umem_fd = umem_fd?;
        // SAFETY: plain socket creation; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` was just created and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sizes = RingSizes {
            rx: config.rx_queue_size().get(),
            tx: config.tx_queue_size().get(),
            fill,
            comp,
        };
        setsockopt_u32(fd.as_fd(), libxdp_sys::XDP_RX_RING, sizes.rx)?;
        setsockopt_u32(fd.as_fd(), libxdp_sys::XDP_TX_RING, sizes.tx)?;
        setsockopt_u32(fd.as_fd(), libxdp_sys::XDP_UMEM_FILL_RING, fill)?;
        setsockopt_u32(fd.as_fd(), libxdp_sys::XDP_UMEM_COMPLETION_RING, comp)?;
        // SAFETY: `if_nametoindex` reads the NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(if_name.as_cstr().as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let dup = fd.try_clone()?;
        let queues = queues(dup, umem, sizes)?;
        let sxdp = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: libxdp_sys::XDP_SHARED_UMEM as u16,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue_id,
            sxdp_shared_umem_fd: umem_fd.as_raw_fd() as u32,
        };
        // SAFETY: `sxdp` is valid for reads of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sxdp).cast(),
                mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(queues)
    }
}
