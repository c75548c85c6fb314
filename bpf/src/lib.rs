//! The xvs XDP programs and their loader.
//!
//! `src/bpf/xvs.bpf.c` holds two programs sharing one set of maps:
//! - `xvs_port` (VM-facing ports) redirects every frame to the AF_XDP
//!   socket of its rx queue and drops (counted) when that queue has none;
//! - `xvs_uplink` (the underlay uplink) redirects only UDP to a local VTEP
//!   address (or a multicast tunnel's group) and tunnel port, copies ARP replies and IPv6 neighbor
//!   advertisements into the `snoop` ring buffer, and passes everything
//!   else to the kernel.
//!
//! [`XdpProgram`] loads one copy of the object per interface, attaches the
//! chosen program natively where the driver allows and generically
//! otherwise (reported by [`XdpProgram::attach_mode`]), removes a stale xvs
//! program left by a crashed process first, and detaches on drop. It never
//! replaces a program that is not ours. That loader is this file;
//! `maps.rs` writes and reads the maps (sockets registered in the XSKMAP
//! through an [`XskRegistrar`], port headroom, VTEPs, tunnel ports,
//! [`Counters`]), `snoop.rs` reads the uplink's snooped replies
//! ([`SnoopPoller`]). The AF_XDP sockets themselves are `xvs-io`'s.
//!
//! Invariants: the maps belong to this loader alone (nothing else holds
//! their fds); `xsks` entries are AF_XDP socket fds that the caller keeps
//! open while registered (the kernel drops an entry when its socket
//! closes). Every item mirrored from `src/bpf/xvs.h` is named after it.
//!
//! Headroom for tunnel push (measured by `io/tests/afxdp.rs`, kernel 6.18,
//! veth in native XDP mode, AF_XDP in copy mode, xsk-rs 0.11):
//! - A received descriptor starts at frame start + UMEM `frame_headroom` +
//!   256 (`XDP_PACKET_HEADROOM`): offset 384 with a 128-byte UMEM headroom.
//! - With [`XdpProgram::set_port_headroom`]`(n)` the port program calls
//!   `bpf_xdp_adjust_head(-n)`. In copy mode the address stays at 384 and
//!   the length grows by `n`: the `n` spare bytes are inside the
//!   descriptor, in front of the Ethernet header. (In zero-copy mode the
//!   kernel reports the moved address instead, `xp_get_handle`, which
//!   gives userspace the same view.) Userspace can then push a header of
//!   exactly `n` bytes in place and transmit the descriptor unchanged: the
//!   spike pushes a 50-byte VXLAN/IPv4 header this way and the peer's
//!   kernel receives the VXLAN datagram.
//! - A header of any other length needs the descriptor address moved,
//!   which xsk-rs 0.11 cannot do (`FrameDesc::addr` is `pub(crate)`, its
//!   rings are private). The kernel accepts any TX address whose
//!   `addr + len` stays inside the chunk (aligned mode), so the general
//!   fix is descriptor control: a patched xsk-rs with a `FrameDesc` address
//!   setter (`[patch.crates-io]`), or our own rings over libxdp-sys
//!   (`xsk_ring_prod__tx_desc`). Either makes the UMEM `frame_headroom`
//!   and the 256-byte XDP headroom usable for a header of any length, with
//!   no XDP-side reserve at all; decap (moving the start forward) needs the
//!   same control. `xvs_io::xsk::XskPort` provides it, through a one-method
//!   patch of xsk-rs (`vendor/README.md`): frames are `(addr, len)`
//!   pairs with the start anywhere in the chunk.

mod maps;
mod snoop;
pub mod tc;

pub use maps::{Counters, XskRegistrar};
pub use snoop::{SnoopKind, SnoopPoller, SnoopedFrame};

use std::ffi::{CString, OsStr};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};

use libbpf_rs::{MapCore, MapHandle, Object, ObjectBuilder, Xdp, XdpFlags};

/// The compiled BPF object (built by `build.rs`).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xvs.bpf.o"));

/// `XVS_MAX_QUEUES`: capacity of the XSKMAP, so the highest rx queue index
/// we can serve is one less.
pub const MAX_QUEUES: u32 = 64;
/// `XVS_MAX_VTEPS`: local VTEP addresses per address family.
pub const MAX_VTEPS: usize = 16;
/// `XVS_MAX_TUNNEL_PORTS`: UDP ports we terminate.
pub const MAX_TUNNEL_PORTS: usize = 16;
/// `XVS_SNOOP_MAX`: bytes of a snooped frame copied into the ring buffer.
pub const SNOOP_MAX: usize = 128;
/// `XVS_MAX_PORT_HEADROOM_MASK`: the largest headroom the port program may
/// reserve (the kernel guarantees 256 bytes less a 32-byte `xdp_frame`).
pub const MAX_PORT_HEADROOM: u32 = 0x7f;

const PROG_PORT: &str = "xvs_port";
const PROG_UPLINK: &str = "xvs_uplink";

/// One loader error: each names the interface and the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("interface {ifname:?} not found in this network namespace")]
    NoInterface { ifname: String },
    #[error("{ifname}: opening the xvs BPF object: {source}")]
    Open {
        ifname: String,
        source: libbpf_rs::Error,
    },
    #[error("{ifname}: loading the xvs BPF object into the kernel (are we root?): {source}")]
    Load {
        ifname: String,
        source: libbpf_rs::Error,
    },
    #[error("{ifname}: the xvs BPF object has no {what}")]
    Missing { ifname: String, what: &'static str },
    #[error("{ifname}: querying the attached XDP program: {source}")]
    Query {
        ifname: String,
        source: libbpf_rs::Error,
    },
    #[error(
        "{ifname}: XDP program {name:?} (id {id}) is attached and is not ours; \
         refusing to replace it"
    )]
    Foreign {
        ifname: String,
        name: String,
        id: u32,
    },
    #[error("{ifname}: removing stale xvs program id {id}: {source}")]
    Stale {
        ifname: String,
        id: u32,
        source: libbpf_rs::Error,
    },
    #[error("{ifname}: attaching {program} failed: native: {native}; generic: {generic}")]
    Attach {
        ifname: String,
        program: &'static str,
        native: String,
        generic: String,
    },
    #[error("{ifname}: {op} in map {map}: {source}")]
    Map {
        ifname: String,
        map: &'static str,
        op: String,
        source: libbpf_rs::Error,
    },
    #[error("{ifname}: rx queue {queue} is beyond the XSKMAP (at most {max} queues)")]
    Queue {
        ifname: String,
        queue: u32,
        max: u32,
    },
    #[error("{ifname}: port headroom {headroom} is above the maximum {max}")]
    Headroom {
        ifname: String,
        headroom: u32,
        max: u32,
    },
    #[error("{ifname}: polling the snoop ring buffer: {source}")]
    Poll {
        ifname: String,
        source: libbpf_rs::Error,
    },
}

/// Which of the two programs to attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A VM-facing port: every frame to the AF_XDP socket of its queue.
    Port,
    /// The underlay uplink: only our tunnel traffic; ARP/ND snooped.
    Uplink,
}

impl Mode {
    fn program(self) -> &'static str {
        match self {
            Mode::Port => PROG_PORT,
            Mode::Uplink => PROG_UPLINK,
        }
    }
}

/// How the program may be attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachFlags {
    /// Native (driver) mode, and generic mode if the driver refuses.
    #[default]
    Auto,
    /// Native mode or fail.
    NativeOnly,
    /// Generic (skb) mode only.
    GenericOnly,
}

/// The mode the program was attached in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// On the skb path (`XDP_FLAGS_SKB_MODE`): slower, always available.
    Generic,
    /// Loaded but attached to nothing ([`XdpProgram::load_unattached`]):
    /// the interface's frames reach its sockets another way.
    Unattached,
}

impl AttachMode {
    fn flags(self) -> XdpFlags {
        match self {
            AttachMode::Native => XdpFlags::DRV_MODE,
            AttachMode::Generic => XdpFlags::SKB_MODE,
            AttachMode::Unattached => XdpFlags::NONE,
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
            AttachMode::Unattached => "unattached",
        })
    }
}

/// One xvs XDP program attached to one interface; detached on drop.
pub struct XdpProgram {
    ifname: String,
    ifindex: i32,
    mode: Mode,
    attached: AttachMode,
    /// Why the driver refused native mode, when `Auto` fell back to
    /// generic.
    native_refused: Option<String>,
    /// Holds the program (and the maps) alive.
    object: Object,
    prog_id: u32,
    /// Id of a stale xvs program (of a crashed process) removed at attach.
    replaced: Option<u32>,
    xsks: XskRegistrar,
    cfg: MapHandle,
    vtep4: MapHandle,
    vtep6: MapHandle,
    tunnel_ports: MapHandle,
    counters: MapHandle,
    snoop: MapHandle,
}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("attached", &self.attached)
            .field("prog_id", &self.prog_id)
            .finish_non_exhaustive()
    }
}

/// The index of `ifname` in the calling thread's network namespace.
pub fn ifindex(ifname: &str) -> Result<i32, Error> {
    let missing = || Error::NoInterface {
        ifname: ifname.to_string(),
    };
    let c = CString::new(ifname).map_err(|_| missing())?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call;
    // if_nametoindex only reads it.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    match i32::try_from(index) {
        Ok(i) if i > 0 => Ok(i),
        _ => Err(missing()),
    }
}

impl XdpProgram {
    /// Loads the xvs object and attaches `mode`'s program to `ifname` (in
    /// the calling thread's network namespace).
    ///
    /// A stale xvs program (from a crashed process) is removed first; any
    /// other program on the interface is left alone and reported as
    /// [`Error::Foreign`].
    pub fn attach(ifname: &str, mode: Mode, flags: AttachFlags) -> Result<Self, Error> {
        Self::load(ifname, mode, Some(flags), &[])
    }

    /// Loads the xvs object for `ifname` as [`Self::attach`] does (its
    /// maps, its XSKMAP for the sockets bound on the interface) but
    /// attaches no program: for a guest port whose received frames come
    /// through the TC fast path and the miss pair, and whose peer must
    /// keep GSO (a native XDP program on a veth clears it). A stale xvs
    /// program is still removed.
    pub fn load_unattached(ifname: &str, mode: Mode) -> Result<Self, Error> {
        Self::load(ifname, mode, None, &[])
    }

    /// Loads the xvs object for `ifname` as [`Self::load_unattached`]
    /// does, but leaves the xvs program attached there in place: that of
    /// the running daemon this process is taking over, which forwards
    /// until [`Self::replace_running`] swaps this one in.
    pub fn load_for_takeover(ifname: &str, mode: Mode) -> Result<Self, Error> {
        Self::load_with(ifname, mode, None, &[], false)
    }

    /// Attaches this program (loaded by [`Self::load_for_takeover`]) in
    /// place of the xvs program attached to its interface, in that
    /// program's mode, in one step: the kernel swaps the two, so no frame
    /// meets the interface without a program. With no program there, it
    /// attaches as `flags` ask; another program than xvs's is refused
    /// ([`Error::Foreign`]).
    pub fn replace_running(&mut self, flags: AttachFlags) -> Result<(), Error> {
        let prog = self.own_program()?;
        let xdp = Xdp::new(prog.as_fd());
        let opts = xdp
            .query(self.ifindex, XdpFlags::NONE)
            .map_err(|source| Error::Query {
                ifname: self.ifname.clone(),
                source,
            })?;
        let running = [
            (opts.drv_prog_id, AttachMode::Native),
            (opts.skb_prog_id, AttachMode::Generic),
        ]
        .into_iter()
        .find(|(id, _)| *id != 0);
        let Some((id, mode)) = running else {
            let (attached, refused) =
                attach_with(&xdp, &self.ifname, self.ifindex, self.mode.program(), flags)?;
            self.attached = attached;
            self.native_refused = refused;
            return Ok(());
        };
        let name = libbpf_rs::query::ProgInfoIter::default()
            .find(|p| p.id == id)
            .map(|p| p.name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name != PROG_PORT && name != PROG_UPLINK {
            return Err(Error::Foreign {
                ifname: self.ifname.clone(),
                name,
                id,
            });
        }
        // Without UPDATE_IF_NOEXIST the kernel replaces the program of
        // that mode under RCU: the old one runs until the new one does.
        xdp.attach(self.ifindex, mode.flags())
            .map_err(|e| Error::Attach {
                ifname: self.ifname.clone(),
                program: self.mode.program(),
                native: if mode == AttachMode::Native {
                    format!("replacing program {id}: {e}")
                } else {
                    "not tried".into()
                },
                generic: if mode == AttachMode::Generic {
                    format!("replacing program {id}: {e}")
                } else {
                    "not tried".into()
                },
            })?;
        self.attached = mode;
        self.replaced = Some(id);
        Ok(())
    }

    /// [`Self::load_unattached`], its maps named in `shared` being those
    /// maps (`reuse_fd`): for the uplink of a daemon running the fast
    /// path, whose TC program (`tc::TcFlows::uplink_maps`) then uses the
    /// VTEPs and tunnel ports written here, and writes the snooped
    /// replies and counters read here.
    pub fn load_unattached_sharing(
        ifname: &str,
        mode: Mode,
        shared: &[(&'static str, BorrowedFd<'_>)],
    ) -> Result<Self, Error> {
        Self::load(ifname, mode, None, shared)
    }

    fn load(
        ifname: &str,
        mode: Mode,
        flags: Option<AttachFlags>,
        shared: &[(&'static str, BorrowedFd<'_>)],
    ) -> Result<Self, Error> {
        Self::load_with(ifname, mode, flags, shared, true)
    }

    fn load_with(
        ifname: &str,
        mode: Mode,
        flags: Option<AttachFlags>,
        shared: &[(&'static str, BorrowedFd<'_>)],
        remove_stale_prog: bool,
    ) -> Result<Self, Error> {
        let ifindex = ifindex(ifname)?;
        let name = || ifname.to_string();
        let mut open = ObjectBuilder::default()
            .open_memory(OBJECT)
            .map_err(|source| Error::Open {
                ifname: name(),
                source,
            })?;
        for (map, fd) in shared {
            let mut m = open
                .maps_mut()
                .find(|m| m.name() == OsStr::new(map))
                .ok_or(Error::Missing {
                    ifname: name(),
                    what: map,
                })?;
            m.reuse_fd(*fd).map_err(|source| Error::Open {
                ifname: name(),
                source,
            })?;
        }
        let object = open.load().map_err(|source| Error::Load {
            ifname: name(),
            source,
        })?;
        let program = mode.program();
        let prog_id = {
            let prog = object
                .progs()
                .find(|p| p.name() == OsStr::new(program))
                .ok_or(Error::Missing {
                    ifname: name(),
                    what: program,
                })?;
            libbpf_rs::Program::id_from_fd(prog.as_fd()).map_err(|source| Error::Load {
                ifname: name(),
                source,
            })?
        };
        let handle = |map: &'static str| -> Result<MapHandle, Error> {
            let m = object
                .maps()
                .find(|m| m.name() == OsStr::new(map))
                .ok_or(Error::Missing {
                    ifname: name(),
                    what: map,
                })?;
            MapHandle::try_from(&m).map_err(|source| Error::Map {
                ifname: name(),
                map,
                op: "duplicating the fd".to_string(),
                source,
            })
        };
        let maps = (
            handle("xsks")?,
            handle("cfg")?,
            handle("vtep4")?,
            handle("vtep6")?,
            handle("tunnel_ports")?,
            handle("counters")?,
            handle("snoop")?,
        );
        let ((attached, native_refused), replaced) = {
            let prog = object
                .progs()
                .find(|p| p.name() == OsStr::new(program))
                .ok_or(Error::Missing {
                    ifname: name(),
                    what: program,
                })?;
            let xdp = Xdp::new(prog.as_fd());
            let replaced = if remove_stale_prog {
                remove_stale(&xdp, ifname, ifindex)?
            } else {
                None
            };
            let attached = match flags {
                Some(flags) => attach_with(&xdp, ifname, ifindex, program, flags)?,
                None => (AttachMode::Unattached, None),
            };
            (attached, replaced)
        };
        Ok(Self {
            ifname: name(),
            ifindex,
            mode,
            attached,
            native_refused,
            replaced,
            object,
            prog_id,
            xsks: XskRegistrar {
                ifname: name(),
                xsks: maps.0,
            },
            cfg: maps.1,
            vtep4: maps.2,
            vtep6: maps.3,
            tunnel_ports: maps.4,
            counters: maps.5,
            snoop: maps.6,
        })
    }

    /// The id of the stale xvs program (left by a crashed process) that
    /// [`XdpProgram::attach`] removed, if there was one.
    pub fn replaced_stale(&self) -> Option<u32> {
        self.replaced
    }

    /// The interface this program is attached to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index (in the namespace it was attached in).
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// Which program is attached.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Native or generic: what the driver accepted.
    pub fn attach_mode(&self) -> AttachMode {
        self.attached
    }

    /// Why native mode was refused, when the program fell back to generic
    /// mode (`AttachFlags::Auto`). Generic XDP loses what native would
    /// pass (on veth: frames longer than a page are not given to the
    /// program whole), so this is for the operator to see.
    pub fn native_refused(&self) -> Option<&str> {
        self.native_refused.as_deref()
    }

    /// Whether the native refusal was the driver's `ERANGE`: on veth, a
    /// peer MTU too large for native XDP (more than a page, for a driver
    /// or a program without fragments).
    pub fn refused_for_mtu(&self) -> bool {
        self.native_refused.as_deref().is_some_and(|r| {
            r.contains("out of range") || r.contains("errno: 34") || r.contains("os error 34")
        })
    }

    /// The kernel's id of the attached program.
    pub fn prog_id(&self) -> u32 {
        self.prog_id
    }

    fn map_err(&self, map: &'static str, op: String) -> impl FnOnce(libbpf_rs::Error) -> Error {
        let ifname = self.ifname.clone();
        move |source| Error::Map {
            ifname,
            map,
            op,
            source,
        }
    }

    /// Whether this program is attached at its interface index in the
    /// calling thread's network namespace (an interface moved to another
    /// namespace takes it along: a thread there can find it).
    pub fn attached_here(&self) -> bool {
        if self.attached == AttachMode::Unattached {
            return false;
        }
        let Some(prog) = self
            .object
            .progs()
            .find(|p| p.name() == OsStr::new(self.mode.program()))
        else {
            return false;
        };
        Xdp::new(prog.as_fd())
            .query_id(self.ifindex, self.attached.flags())
            .is_ok_and(|id| id == self.prog_id)
    }

    /// This object's program for its mode.
    fn own_program(&self) -> Result<libbpf_rs::Program<'_>, Error> {
        self.object
            .progs()
            .find(|p| p.name() == OsStr::new(self.mode.program()))
            .ok_or(Error::Missing {
                ifname: self.ifname.clone(),
                what: self.mode.program(),
            })
    }

    fn detach(&self) -> Result<(), Error> {
        if self.attached == AttachMode::Unattached {
            return Ok(());
        }
        let prog = self.own_program()?;
        let xdp = Xdp::new(prog.as_fd());
        let flags = self.attached.flags();
        let current = xdp
            .query_id(self.ifindex, self.attached.flags())
            .map_err(|source| Error::Query {
                ifname: self.ifname.clone(),
                source,
            })?;
        // Only ours: someone may have replaced it after a crash-restart race.
        if current == self.prog_id {
            xdp.detach(self.ifindex, flags)
                .map_err(|source| Error::Stale {
                    ifname: self.ifname.clone(),
                    id: self.prog_id,
                    source,
                })?;
        }
        Ok(())
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // The interface may be gone already (deleted, moved to another
        // namespace, its namespace deleted: the program went with it).
        // Renamed, it is still here under its index and must not keep a
        // program that sends its frames to sockets no one reads; its old
        // name may belong to another interface now, which `detach` leaves
        // alone (it removes only our program at our index). Nowhere to
        // report from drop but stderr.
        let Ok(index) = u32::try_from(self.ifindex) else {
            return;
        };
        let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
        // SAFETY: if_indextoname writes at most IF_NAMESIZE bytes to `buf`.
        let name = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
        if name.is_null() {
            return;
        }
        if let Err(e) = self.detach() {
            eprintln!("xvs-bpf: detach: {e}");
        }
    }
}

/// Detaches an xvs program left attached by a crashed process; refuses to
/// touch any other program. Returns the id of the program removed.
fn remove_stale(xdp: &Xdp<'_>, ifname: &str, ifindex: i32) -> Result<Option<u32>, Error> {
    let opts = xdp
        .query(ifindex, XdpFlags::NONE)
        .map_err(|source| Error::Query {
            ifname: ifname.to_string(),
            source,
        })?;
    let mut removed = None;
    for (id, flags) in [
        (opts.drv_prog_id, XdpFlags::DRV_MODE),
        (opts.skb_prog_id, XdpFlags::SKB_MODE),
        (opts.hw_prog_id, XdpFlags::HW_MODE),
    ] {
        if id == 0 {
            continue;
        }
        let name = libbpf_rs::query::ProgInfoIter::default()
            .find(|p| p.id == id)
            .map(|p| p.name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name != PROG_PORT && name != PROG_UPLINK {
            return Err(Error::Foreign {
                ifname: ifname.to_string(),
                name,
                id,
            });
        }
        xdp.detach(ifindex, flags).map_err(|source| Error::Stale {
            ifname: ifname.to_string(),
            id,
            source,
        })?;
        removed = Some(id);
    }
    Ok(removed)
}

/// Attaches as `flags` ask; returns the mode the driver took and, when
/// native mode was refused and generic taken instead, why.
fn attach_with(
    xdp: &Xdp<'_>,
    ifname: &str,
    ifindex: i32,
    program: &'static str,
    flags: AttachFlags,
) -> Result<(AttachMode, Option<String>), Error> {
    let try_mode = |mode: AttachMode| {
        xdp.attach(ifindex, mode.flags() | XdpFlags::UPDATE_IF_NOEXIST)
            .map(|()| mode)
            .map_err(|e| e.to_string())
    };
    let skipped = || "not tried".to_string();
    let (native, generic) = match flags {
        AttachFlags::NativeOnly => (try_mode(AttachMode::Native), Err(skipped())),
        AttachFlags::GenericOnly => (Err(skipped()), try_mode(AttachMode::Generic)),
        AttachFlags::Auto => match try_mode(AttachMode::Native) {
            Ok(m) => return Ok((m, None)),
            Err(n) => (Err(n), try_mode(AttachMode::Generic)),
        },
    };
    match (native, generic) {
        (Ok(m), _) => Ok((m, None)),
        (Err(native), Ok(m)) => Ok((m, (flags == AttachFlags::Auto).then_some(native))),
        (Err(native), Err(generic)) => Err(Error::Attach {
            ifname: ifname.to_string(),
            program,
            native,
            generic,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_has_both_programs_and_every_map() {
        let open = ObjectBuilder::default().open_memory(OBJECT).unwrap();
        let progs: Vec<_> = open.progs().map(|p| p.name().to_os_string()).collect();
        for p in [PROG_PORT, PROG_UPLINK] {
            assert!(progs.iter().any(|n| n == p), "{p} missing: {progs:?}");
        }
        let maps: Vec<_> = open.maps().map(|m| m.name().to_os_string()).collect();
        for m in [
            "xsks",
            "cfg",
            "vtep4",
            "vtep6",
            "tunnel_ports",
            "counters",
            "snoop",
        ] {
            assert!(maps.iter().any(|n| n == m), "{m} missing: {maps:?}");
        }
    }

    #[test]
    fn missing_interface_is_named() {
        let e = XdpProgram::attach("xvs-no-such0", Mode::Port, AttachFlags::Auto).unwrap_err();
        assert!(e.to_string().contains("xvs-no-such0"), "{e}");
    }
}
