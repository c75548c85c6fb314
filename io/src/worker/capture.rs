//! Packet capture off the packet path (`xvsctl capture`): while a capture
//! runs, a worker copies the frames entering or leaving the captured
//! port, up to the snap length, into records it takes from a bounded
//! pool and hands them to the control thread; with none running, the
//! cost is one relaxed load per batch and per flush.
//!
//! The records are allocated by the control thread when a capture
//! starts and travel between two bounded channels (free, full), so the
//! worker never allocates: a capture faster than the control thread
//! drains loses frames, counted in [`Tap::dropped`], never the switch's
//! time.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender};
use xvs_types::PortNo;

/// Directions a capture takes (bits of its spec).
pub const DIR_IN: u8 = 1;
pub const DIR_OUT: u8 = 2;

/// Records one worker's capture holds: what it can copy before the
/// control thread takes them (every 50 ms by `xvsctl capture`).
pub const RECORDS: usize = 1024;

/// One frame captured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// Nanoseconds since the worker's epoch (the control thread's).
    pub ts_ns: u64,
    pub port: PortNo,
    /// [`DIR_IN`] or [`DIR_OUT`].
    pub dir: u8,
    /// The frame's length on the wire; `data` holds at most the snap
    /// length of it.
    pub len: u32,
    pub data: Vec<u8>,
}

/// What a worker captures, read once per batch: the port, the
/// directions and the snap length packed in one word (0: nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub port: PortNo,
    pub dirs: u8,
    pub snaplen: u32,
}

const ON: u64 = 1 << 63;

impl Spec {
    fn pack(self) -> u64 {
        ON | u64::from(self.snaplen) << 24 | u64::from(self.dirs) << 16 | u64::from(self.port)
    }

    fn unpack(v: u64) -> Option<Spec> {
        (v & ON != 0).then_some(Spec {
            port: v as u16,
            dirs: (v >> 16) as u8,
            snaplen: (v >> 24) as u32,
        })
    }

    /// Whether a frame of `port` going `dir` is taken.
    #[inline]
    pub fn takes(&self, port: PortNo, dir: u8) -> bool {
        self.port == port && self.dirs & dir != 0
    }
}

/// One worker's capture point, shared with the control thread.
#[derive(Debug)]
pub struct Tap {
    spec: AtomicU64,
    free: (Sender<Box<Captured>>, Receiver<Box<Captured>>),
    full: (Sender<Box<Captured>>, Receiver<Box<Captured>>),
    dropped: AtomicU64,
}

impl Default for Tap {
    fn default() -> Self {
        Tap {
            spec: AtomicU64::new(0),
            free: crossbeam_channel::bounded(RECORDS),
            full: crossbeam_channel::bounded(RECORDS),
            dropped: AtomicU64::new(0),
        }
    }
}

impl Tap {
    /// Starts capturing `spec` (replacing any capture): the records are
    /// made here, on the caller's thread.
    pub fn start(&self, spec: Spec) {
        self.stop();
        self.dropped.store(0, Ordering::Relaxed);
        for _ in 0..RECORDS {
            let r = Box::new(Captured {
                data: Vec::with_capacity(spec.snaplen as usize),
                ..Captured::default()
            });
            if self.free.0.try_send(r).is_err() {
                break;
            }
        }
        self.spec.store(spec.pack(), Ordering::Release);
    }

    /// Stops the capture; its records are freed.
    pub fn stop(&self) {
        self.spec.store(0, Ordering::Release);
        while self.free.1.try_recv().is_ok() {}
        while self.full.1.try_recv().is_ok() {}
    }

    /// Hands each frame captured so far to `f` (oldest first); their
    /// records go back to the worker.
    pub fn drain(&self, mut f: impl FnMut(&Captured)) {
        while let Ok(r) = self.full.1.try_recv() {
            f(&r);
            let _ = self.free.0.try_send(r);
        }
    }

    /// Frames the capture lost: no record was free.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// What is captured now, if anything: the one load a worker makes.
    #[inline(always)]
    pub fn spec(&self) -> Option<Spec> {
        Spec::unpack(self.spec.load(Ordering::Relaxed))
    }

    /// Copies a frame into a free record (up to the snap length) and
    /// hands it over; counted as dropped when no record is free.
    pub fn offer(&self, spec: Spec, ts_ns: u64, port: PortNo, dir: u8, frame: &[u8]) {
        let Ok(mut r) = self.free.1.try_recv() else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        r.ts_ns = ts_ns;
        r.port = port;
        r.dir = dir;
        r.len = frame.len() as u32;
        r.data.clear();
        // Within the capacity the record was made with: no allocation.
        let n = frame
            .len()
            .min(spec.snaplen as usize)
            .min(r.data.capacity());
        r.data.extend_from_slice(&frame[..n]);
        if self.full.0.try_send(r).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_copies_up_to_the_snap_length_and_counts_what_it_loses() {
        let t = Tap::default();
        assert_eq!(t.spec(), None, "nothing captured before a start");
        let spec = Spec {
            port: 3,
            dirs: DIR_IN,
            snaplen: 8,
        };
        t.start(spec);
        assert_eq!(t.spec(), Some(spec));
        assert!(spec.takes(3, DIR_IN) && !spec.takes(3, DIR_OUT) && !spec.takes(4, DIR_IN));
        for i in 0..RECORDS + 5 {
            t.offer(spec, i as u64, 3, DIR_IN, &[i as u8; 20]);
        }
        assert_eq!(t.dropped(), 5);
        let mut got = Vec::new();
        t.drain(|c| got.push((c.ts_ns, c.len, c.data.clone())));
        assert_eq!(got.len(), RECORDS);
        assert_eq!(got[1], (1, 20, vec![1u8; 8]));
        // The records came back: the next frames find one.
        t.offer(spec, 9, 3, DIR_IN, &[1; 4]);
        let mut n = 0;
        t.drain(|_| n += 1);
        assert_eq!(n, 1);
        t.stop();
        assert_eq!(t.spec(), None);
        t.offer(spec, 9, 3, DIR_IN, &[1; 4]);
        t.drain(|_| panic!("a stopped capture hands nothing over"));
    }
}
