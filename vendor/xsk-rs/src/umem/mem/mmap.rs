pub use inner::Mmap;

use std::{io, ptr::NonNull};

#[cfg(not(test))]
mod inner {
    use libc::{
        MAP_ANONYMOUS, MAP_FAILED, MAP_FIXED, MAP_HUGETLB, MAP_POPULATE, MAP_PRIVATE,
        MAP_SHARED, PROT_READ, PROT_WRITE,
    };
    use log::error;
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::ptr;

    use super::*;

    /// An anonymous memory mapped region.
    #[derive(Debug)]
    pub struct Mmap {
        addr: NonNull<libc::c_void>,
        len: usize,
    }

    unsafe impl Send for Mmap {}

    impl Mmap {
        /// xvs patch: without `use_huge_pages` (hugetlbfs pages, which
        /// must be reserved beforehand), the region is private anonymous
        /// memory, 2 MiB aligned and advised `MADV_HUGEPAGE`, so it gets
        /// transparent huge pages wherever THP is `always` or `madvise`
        /// (the Debian default) and 4 KiB pages otherwise. Upstream maps
        /// `MAP_SHARED` anonymous memory, i.e. shmem, which THP leaves on
        /// 4 KiB pages by default: then every frame a worker touches is
        /// a TLB miss (a two-level walk in a VM), about 100 cycles per
        /// packet on this machine's VXLAN encap. AF_XDP needs neither
        /// sharing nor a file: the kernel pins the pages at registration.
        pub fn new(len: usize, use_huge_pages: bool) -> io::Result<Self> {
            if use_huge_pages {
                Self::map(len, MAP_ANONYMOUS | MAP_SHARED | MAP_POPULATE | MAP_HUGETLB)
            } else {
                Self::map_thp(len)
            }
        }

        fn map(len: usize, flags: libc::c_int) -> io::Result<Self> {
            let addr = unsafe {
                libc::mmap(ptr::null_mut(), len, PROT_READ | PROT_WRITE, flags, -1, 0)
            };
            if addr == MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            let addr =
                NonNull::new(addr).expect("ptr non-null since we confirmed `mmap()` succeeded");
            Ok(Mmap { addr, len })
        }

        /// xvs patch: the region mapped from a file (a memfd, or a file
        /// on a tmpfs mounted `huge=always`), shared, so that another
        /// process given the fd maps the same memory: what lets a new
        /// xvsd take a running one's UMEM over. 2 MiB aligned and advised
        /// `MADV_HUGEPAGE` as [`Self::map_thp`] is, so a tmpfs that
        /// allows huge pages backs it with them. `fresh`: the file is
        /// new and may be zeroed to populate it; an adopted file holds
        /// frames in flight and is only faulted in.
        pub fn from_file(file: BorrowedFd<'_>, len: usize, fresh: bool) -> io::Result<Self> {
            const HUGE: usize = 2 << 20;
            const MADV_POPULATE_WRITE: libc::c_int = 23;
            // Reserve an aligned range, then put the file over it.
            let over = Self::map(len + HUGE, MAP_ANONYMOUS | MAP_PRIVATE)?;
            let base = over.addr.as_ptr() as usize;
            let start = (base + HUGE - 1) & !(HUGE - 1);
            // SAFETY: `start..start + len` lies inside the reservation
            // `over` owns and nothing else uses; MAP_FIXED replaces only
            // that range. On failure `over` is dropped whole.
            let addr = unsafe {
                libc::mmap(
                    start as *mut libc::c_void,
                    len,
                    PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_FIXED,
                    file.as_raw_fd(),
                    0,
                )
            };
            if addr == MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            std::mem::forget(over);
            let page = 4096;
            let end = (base + len + HUGE + page - 1) & !(page - 1);
            let used_end = (start + len + page - 1) & !(page - 1);
            // SAFETY: both ranges are parts of the reservation outside
            // the file mapping, used by nothing; a failed trim only
            // leaves unused address space mapped.
            unsafe {
                if start > base {
                    libc::munmap(base as *mut libc::c_void, start - base);
                }
                if end > used_end {
                    libc::munmap(used_end as *mut libc::c_void, end - used_end);
                }
            }
            let addr = NonNull::new(start as *mut libc::c_void)
                .expect("inside a successful mapping, so non-null");
            let mmap = Mmap { addr, len };
            // SAFETY: advice on the mapping just made; the fallback
            // zeroing writes only a fresh file's memory, which nothing
            // else has seen yet.
            unsafe {
                libc::madvise(addr.as_ptr(), len, libc::MADV_HUGEPAGE);
                if libc::madvise(addr.as_ptr(), len, MADV_POPULATE_WRITE) != 0 && fresh {
                    ptr::write_bytes(addr.as_ptr() as *mut u8, 0, len);
                }
            }
            Ok(mmap)
        }

        fn map_thp(len: usize) -> io::Result<Self> {
            const HUGE: usize = 2 << 20;
            // Not in libc 0.2.191; Linux 5.14+. Older kernels get the
            // memset fallback below.
            const MADV_POPULATE_WRITE: libc::c_int = 23;
            // Over-allocate by one huge page and trim, so the region
            // starts on a 2 MiB boundary and every full 2 MiB of it can
            // be one huge page.
            let over = Self::map(len + HUGE, MAP_ANONYMOUS | MAP_PRIVATE)?;
            let base = over.addr.as_ptr() as usize;
            std::mem::forget(over);
            let page = 4096;
            let end = (base + len + HUGE + page - 1) & !(page - 1);
            let start = (base + HUGE - 1) & !(HUGE - 1);
            let used_end = (start + len + page - 1) & !(page - 1);
            // A failed trim only leaves unused address space mapped.
            unsafe {
                if start > base {
                    libc::munmap(base as *mut libc::c_void, start - base);
                }
                if end > used_end {
                    libc::munmap(used_end as *mut libc::c_void, end - used_end);
                }
            }
            let addr = NonNull::new(start as *mut libc::c_void)
                .expect("inside a successful mapping, so non-null");
            let mmap = Mmap { addr, len };
            // Both advisory: without THP the region stays on 4 KiB pages;
            // populating up front (what MAP_POPULATE did) keeps page
            // faults out of the data path.
            unsafe {
                libc::madvise(addr.as_ptr(), len, libc::MADV_HUGEPAGE);
                if libc::madvise(addr.as_ptr(), len, MADV_POPULATE_WRITE) != 0 {
                    ptr::write_bytes(addr.as_ptr() as *mut u8, 0, len);
                }
            }
            Ok(mmap)
        }

        /// Returns a pointer to the start of the mmap'd region.
        #[inline]
        pub fn addr(&self) -> NonNull<libc::c_void> {
            self.addr
        }
    }

    impl Drop for Mmap {
        fn drop(&mut self) {
            let err = unsafe { libc::munmap(self.addr.as_ptr(), self.len) };

            if err != 0 {
                error!(
                    "`munmap()` failed with error: {}",
                    io::Error::last_os_error()
                );
            }
        }
    }
}

#[cfg(test)]
mod inner {
    use std::mem::ManuallyDrop;

    use super::*;

    #[derive(Debug)]
    struct VecParts<T> {
        ptr: NonNull<T>,
        len: usize,
        capacity: usize,
    }

    unsafe impl<T> Send for VecParts<T> {}

    impl<T> VecParts<T> {
        fn new(v: Vec<T>) -> Self {
            let mut v = ManuallyDrop::new(v);

            Self {
                ptr: NonNull::new(v.as_mut_ptr()).expect("obtained pointer from Vec"),
                len: v.len(),
                capacity: v.capacity(),
            }
        }
    }

    impl<T> Drop for VecParts<T> {
        fn drop(&mut self) {
            unsafe { Vec::from_raw_parts(self.ptr.as_ptr(), self.len, self.capacity) };
        }
    }

    /// A mocked [`Mmap`] that uses the heap for memory.
    #[derive(Debug)]
    pub struct Mmap(VecParts<u8>);

    impl Mmap {
        pub fn new(len: usize, _use_huge_pages: bool) -> io::Result<Self> {
            Ok(Self(VecParts::new(vec![0; len])))
        }

        /// Files are not mapped in unit tests.
        pub fn from_file(
            _file: std::os::fd::BorrowedFd<'_>,
            _len: usize,
            _fresh: bool,
        ) -> io::Result<Self> {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        }

        /// Returns a pointer to the start of the mmap'd region.
        #[inline]
        pub fn addr(&self) -> NonNull<libc::c_void> {
            NonNull::new(self.0.ptr.as_ptr() as *mut libc::c_void).unwrap()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn confirm_pointer_offset_is_a_single_byte() {
        assert_eq!(std::mem::size_of::<libc::c_void>(), 1);
    }
}
