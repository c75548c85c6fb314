//! A frame in a buffer with headroom: the unit the pipeline edits in place.
//!
//! The buffer is a whole UMEM chunk (or any byte slice in tests and
//! benchmarks); the frame's bytes are `buf[head..head + len]`. Tunnel push
//! grows the frame into the headroom, pop shrinks it from the front, so
//! neither moves the payload. Invariant: `head + len <= buf.len()`.

/// A frame being processed, borrowing its buffer.
#[derive(Debug)]
pub struct Frame<'a> {
    buf: &'a mut [u8],
    head: usize,
    len: usize,
}

impl<'a> Frame<'a> {
    /// Wraps `buf[head..head + len]`; `None` if that range is out of `buf`.
    pub fn new(buf: &'a mut [u8], head: usize, len: usize) -> Option<Frame<'a>> {
        (head.checked_add(len)? <= buf.len()).then_some(Frame { buf, head, len })
    }

    /// Gives the whole buffer back (to recycle it).
    pub fn into_buf(self) -> &'a mut [u8] {
        self.buf
    }

    /// Makes a copy of this frame in `buf`, at the same headroom when the
    /// buffer allows (else at the largest headroom that fits). If the frame
    /// does not fit at all, `buf` comes back untouched: it is a buffer the
    /// caller must still recycle.
    pub fn copy_into<'b>(&self, buf: &'b mut [u8]) -> Result<Frame<'b>, &'b mut [u8]> {
        if self.len > buf.len() {
            return Err(buf);
        }
        let head = self.head.min(buf.len() - self.len);
        buf[head..head + self.len].copy_from_slice(self.data());
        Ok(Frame {
            buf,
            head,
            len: self.len,
        })
    }

    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.head..self.head + self.len]
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..self.head + self.len]
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Offset of the first frame byte in the buffer.
    #[inline]
    pub fn head(&self) -> usize {
        self.head
    }

    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }

    #[inline]
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.head - self.len
    }

    /// Grows the frame by `n` bytes at the front (into the headroom) and
    /// returns the new front bytes. `None`, with nothing changed, if the
    /// headroom is short.
    #[inline]
    pub fn push_front(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.head {
            return None;
        }
        self.head -= n;
        self.len += n;
        Some(&mut self.buf[self.head..self.head + n])
    }

    /// Grows the frame by `n <= N` bytes at the front and returns the `N`
    /// bytes that end where the frame used to start: the caller writes a
    /// right-aligned `N`-byte block, of which the last `n` bytes become the
    /// new front and the rest lands in headroom that stays headroom. A fixed
    /// size lets the copy compile to a few vector moves instead of a memcpy
    /// call. `None`, with nothing changed, unless `N` bytes of headroom exist.
    #[inline(always)]
    pub fn push_front_fixed<const N: usize>(&mut self, n: usize) -> Option<&mut [u8; N]> {
        if n > N || N > self.head {
            return None;
        }
        let end = self.head;
        self.head -= n;
        self.len += n;
        // In bounds: N <= end <= buf.len(), checked above; the slice is
        // exactly N long, so the conversion cannot fail either.
        let block: &mut [u8; N] = (&mut self.buf[end - N..end]).try_into().ok()?;
        Some(block)
    }

    /// Removes `n` bytes from the front. `false`, with nothing changed, if
    /// the frame is shorter than `n`.
    #[inline]
    pub fn pull_front(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.head += n;
        self.len -= n;
        true
    }

    /// Lengthens the frame by `n` bytes of tailroom (their content is
    /// whatever the buffer held: the caller writes them). `false` if the
    /// buffer has no room.
    #[inline]
    pub fn extend(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        self.len += n;
        true
    }

    /// Shortens the frame to `len` bytes (no-op if already shorter).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Makes at least `n` bytes of headroom by moving the frame towards the
    /// end of the buffer. Returns `false` if the buffer is too small. This
    /// copies the whole frame: callers count it, as it should be rare.
    pub fn make_headroom(&mut self, n: usize) -> bool {
        if self.head >= n {
            return true;
        }
        if n + self.len > self.buf.len() {
            return false;
        }
        self.buf.copy_within(self.head..self.head + self.len, n);
        self.head = n;
        true
    }

    /// Inserts `n` bytes at offset `at` of the frame by moving the bytes
    /// before `at` towards the front (used to insert a VLAN tag after the
    /// MAC addresses, moving 12 bytes instead of the payload).
    pub fn insert_gap(&mut self, at: usize, n: usize) -> Option<&mut [u8]> {
        if at > self.len || n > self.head {
            return None;
        }
        let old = self.head;
        self.head -= n;
        self.len += n;
        self.buf.copy_within(old..old + at, self.head);
        let s = self.head + at;
        Some(&mut self.buf[s..s + n])
    }

    /// Removes `n` bytes at offset `at` of the frame by moving the bytes
    /// before `at` towards the back (the inverse of [`Frame::insert_gap`]).
    pub fn remove_gap(&mut self, at: usize, n: usize) -> bool {
        if at.checked_add(n).is_none_or(|e| e > self.len) {
            return false;
        }
        let old = self.head;
        self.buf.copy_within(old..old + at, old + n);
        self.head += n;
        self.len -= n;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_pull_stay_in_bounds() {
        let mut b = [0u8; 32];
        let mut f = Frame::new(&mut b, 8, 10).unwrap();
        assert!(f.push_front(9).is_none());
        assert_eq!(f.len(), 10);
        f.push_front(8).unwrap().copy_from_slice(&[1; 8]);
        assert_eq!(f.len(), 18);
        assert_eq!(f.headroom(), 0);
        assert!(!f.pull_front(19));
        assert!(f.pull_front(18));
        assert!(f.is_empty());
        assert!(Frame::new(&mut b, 30, 3).is_none());
        assert!(Frame::new(&mut b, usize::MAX, 3).is_none());
    }

    #[test]
    fn gap_insert_and_remove_are_inverse() {
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8;
        }
        let orig: Vec<u8> = b[8..24].to_vec();
        let mut f = Frame::new(&mut b, 8, 16).unwrap();
        f.insert_gap(12, 4).unwrap().copy_from_slice(&[0xaa; 4]);
        assert_eq!(&f.data()[..12], &orig[..12]);
        assert_eq!(&f.data()[12..16], &[0xaa; 4]);
        assert_eq!(&f.data()[16..], &orig[12..]);
        assert!(f.remove_gap(12, 4));
        assert_eq!(f.data(), &orig[..]);
        assert!(!f.remove_gap(10, 7));
    }

    #[test]
    fn fixed_push_writes_the_block_ending_at_the_old_start() {
        let mut b = [0u8; 64];
        let mut f = Frame::new(&mut b, 40, 8).unwrap();
        assert!(f.push_front_fixed::<32>(12).is_some_and(|blk| {
            blk.copy_from_slice(&[7u8; 32]);
            true
        }));
        assert_eq!((f.head(), f.len()), (28, 20));
        assert_eq!(&f.data()[..12], &[7u8; 12]);
        assert!(f.push_front_fixed::<32>(33).is_none());
        let mut f2 = Frame::new(&mut b, 16, 8).unwrap();
        assert!(f2.push_front_fixed::<32>(4).is_none(), "headroom below N");
        assert_eq!((f2.head(), f2.len()), (16, 8));
    }

    #[test]
    fn make_headroom_moves_once() {
        let mut b = [0u8; 32];
        b[0..4].copy_from_slice(&[1, 2, 3, 4]);
        let mut f = Frame::new(&mut b, 0, 4).unwrap();
        assert!(f.make_headroom(20));
        assert_eq!(f.headroom(), 20);
        assert_eq!(f.data(), &[1, 2, 3, 4]);
        assert!(!f.make_headroom(30));
    }
}
