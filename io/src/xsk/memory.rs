//! Where a handable UMEM's frames live: a file another process can map
//! once given its fd, on huge pages where the kernel lets us.
//!
//! A UMEM in private memory (the default, `XskSet::new`) cannot be
//! reached by a new process, so an upgrade that takes the running
//! daemon's sockets over needs the frames in a file. A plain memfd is
//! shmem, which follows `/sys/kernel/mm/transparent_hugepage/shmem_enabled`
//! (`never` by default): 4 KiB pages, and a TLB miss per frame touched,
//! about 100 cycles a packet on this machine (vendor/README.md). A tmpfs
//! mounted `huge=always` gets huge pages whatever that knob says, so the
//! file is made on such a tmpfs, mounted for the purpose in a mount
//! namespace of a short-lived thread's own: nothing appears in the
//! host's mount table, and the mount goes away with the last fd of the
//! file (the process's and, after a handoff, its successor's). Where
//! that is refused (no `CAP_SYS_ADMIN`), a memfd is used, on whatever
//! pages shmem gets. [`huge_bytes`] says what was obtained.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::fd::{FromRawFd, OwnedFd};

/// What backs a UMEM's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Backing {
    /// Private anonymous memory: transparent huge pages where THP
    /// allows, not handable to another process.
    Private,
    /// A file on a private tmpfs mounted `huge=always`.
    HugeTmpfs,
    /// A memfd (shmem: huge pages only if `shmem_enabled` allows).
    Memfd,
}

/// The tmpfs is mounted over this directory, in the thread's own mount
/// namespace only; any directory that exists will do.
const MOUNT_POINTS: [&str; 3] = ["/tmp", "/mnt", "/run"];

/// A new, empty, unlinked file of `len` bytes for a UMEM, and what it
/// is on: `want`, or with `None` a huge-page tmpfs where the kernel
/// lets us mount one, else a memfd.
pub fn umem_file(len: u64, want: Option<Backing>) -> io::Result<(OwnedFd, Backing)> {
    match want {
        Some(Backing::Private) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "private memory is not in a file",
        )),
        Some(Backing::HugeTmpfs) => Ok((huge_tmpfs_file(len)?, Backing::HugeTmpfs)),
        Some(Backing::Memfd) => Ok((memfd(len)?, Backing::Memfd)),
        None => match huge_tmpfs_file(len) {
            Ok(fd) => Ok((fd, Backing::HugeTmpfs)),
            Err(_) => Ok((memfd(len)?, Backing::Memfd)),
        },
    }
}

/// A file on a tmpfs of its own mounted `huge=always`, made on a thread
/// that moves to a mount namespace of its own first.
fn huge_tmpfs_file(len: u64) -> io::Result<OwnedFd> {
    std::thread::Builder::new()
        .name("xvs-umem-tmpfs".into())
        .spawn(move || -> io::Result<OwnedFd> {
            // SAFETY: unshare has no memory-safety preconditions; it moves
            // only this thread (CLONE_NEWNS implies CLONE_FS), which ends
            // right after, into a mount namespace of its own.
            if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // Nothing mounted here may propagate back to the host.
            let root = c"/";
            // SAFETY: NUL-terminated strings; no data argument.
            let rc = unsafe {
                libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            let dir = MOUNT_POINTS
                .iter()
                .find(|d| std::path::Path::new(d).is_dir())
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            let dir = CString::new(*dir).map_err(io::Error::other)?;
            let opts = c"huge=always,mode=0700";
            // SAFETY: NUL-terminated strings; the data argument is the
            // tmpfs option string the kernel parses.
            let rc = unsafe {
                libc::mount(
                    c"xvs-umem".as_ptr(),
                    dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    opts.as_ptr().cast(),
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `dir` is NUL-terminated; O_TMPFILE makes a file
            // with no name, so nothing is left to unlink.
            let fd = unsafe {
                libc::open(
                    dir.as_ptr(),
                    libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
                    0o600,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` was just opened and is owned by nothing else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            sized(fd, len)
        })?
        .join()
        .map_err(|_| io::Error::other("the tmpfs thread panicked"))?
}

fn memfd(len: u64) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name; the result is checked.
    let fd = unsafe { libc::memfd_create(c"xvs-umem".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    sized(unsafe { OwnedFd::from_raw_fd(fd) }, len)
}

/// `fd` grown to `len` rounded up to 2 MiB, so its last huge page is
/// whole.
fn sized(fd: OwnedFd, len: u64) -> io::Result<OwnedFd> {
    const HUGE: u64 = 2 << 20;
    let file = File::from(fd);
    file.set_len(len.div_ceil(HUGE) * HUGE)?;
    Ok(file.into())
}

/// Bytes of `[addr, addr + len)` this process maps with huge pages
/// (`AnonHugePages`, `ShmemPmdMapped` and `FilePmdMapped` of the mappings
/// inside it, from `/proc/self/smaps`): a report, not for the packet
/// path.
pub fn huge_bytes(addr: usize, len: usize) -> io::Result<u64> {
    let smaps = BufReader::new(File::open("/proc/self/smaps")?);
    let end = addr + len;
    let (mut inside, mut kib) = (false, 0u64);
    for line in smaps.lines() {
        let line = line?;
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some((lo, hi)) = first.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = lo >= addr && hi <= end;
                continue;
            }
        }
        if inside
            && matches!(
                first,
                "AnonHugePages:" | "ShmemPmdMapped:" | "FilePmdMapped:"
            )
        {
            kib += words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        }
    }
    Ok(kib * 1024)
}
