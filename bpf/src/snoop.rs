//! Neighbor replies snooped by the uplink program: the ring buffer's
//! records decoded into [`SnoopedFrame`]s and read on the control thread
//! by a [`SnoopPoller`].

use std::fmt;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libbpf_rs::{RingBuffer, RingBufferBuilder};

use crate::{Error, XdpProgram, SNOOP_MAX};

/// What a snooped frame is (`enum xvs_snoop_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnoopKind {
    /// An ARP reply.
    Arp,
    /// An ICMPv6 neighbor advertisement.
    NeighborAdvert,
}

/// One frame copied by the uplink program: the first [`SNOOP_MAX`] bytes,
/// starting at the Ethernet header. Parse it with the dataplane's wire views.
#[derive(Clone, Copy)]
pub struct SnoopedFrame {
    /// Interface the frame arrived on.
    pub ifindex: u32,
    /// What the program matched.
    pub kind: SnoopKind,
    len: u16,
    data: [u8; SNOOP_MAX],
}

impl SnoopedFrame {
    /// The copied bytes.
    pub fn frame(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }

    /// Decodes one ring-buffer record (`struct xvs_snoop`); `None` if it is
    /// malformed, which only a mismatched object could produce.
    fn decode(rec: &[u8]) -> Option<Self> {
        // struct xvs_snoop { u32 ifindex; u16 kind; u16 len; u8 data[128]; }
        let ifindex = u32::from_ne_bytes(rec.get(0..4)?.try_into().ok()?);
        let kind = match u16::from_ne_bytes(rec.get(4..6)?.try_into().ok()?) {
            1 => SnoopKind::Arp,
            2 => SnoopKind::NeighborAdvert,
            _ => return None,
        };
        let len = u16::from_ne_bytes(rec.get(6..8)?.try_into().ok()?);
        let body = rec.get(8..8 + SNOOP_MAX)?;
        if usize::from(len) > SNOOP_MAX {
            return None;
        }
        let mut data = [0; SNOOP_MAX];
        data.copy_from_slice(body);
        Some(Self {
            ifindex,
            kind,
            len,
            data,
        })
    }
}

impl fmt::Debug for SnoopedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnoopedFrame")
            .field("ifindex", &self.ifindex)
            .field("kind", &self.kind)
            .field("len", &self.len)
            .finish()
    }
}

/// Reads snooped frames from one program's ring buffer. Owned by the one
/// control-path thread that polls it.
pub struct SnoopPoller {
    ifname: String,
    ring: RingBuffer<'static>,
    /// Filled by the ring callback during `poll`, drained by `poll`.
    seen: Arc<Mutex<Vec<SnoopedFrame>>>,
    /// Records that did not decode (a mismatched object); never expected.
    malformed: Arc<Mutex<u64>>,
}

impl fmt::Debug for SnoopPoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnoopPoller")
            .field("ifname", &self.ifname)
            .finish_non_exhaustive()
    }
}

impl SnoopPoller {
    /// Waits up to `timeout` for snooped frames and appends every one
    /// available to `out`; returns how many were appended.
    pub fn poll(&mut self, timeout: Duration, out: &mut Vec<SnoopedFrame>) -> Result<usize, Error> {
        self.ring.poll(timeout).map_err(|source| Error::Poll {
            ifname: self.ifname.clone(),
            source,
        })?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let n = seen.len();
        out.append(&mut seen);
        Ok(n)
    }

    /// An fd that polls readable when records wait (the ring's epoll fd),
    /// to sleep on it together with other fds.
    pub fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the epoll fd belongs to `self.ring` and stays open as
        // long as `self` is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.ring.epoll_fd()) }
    }

    /// Records that did not decode as `struct xvs_snoop`.
    pub fn malformed(&self) -> u64 {
        *self.malformed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl XdpProgram {
    /// A poller for the frames this program snoops (uplink mode).
    pub fn snoop_poller(&self) -> Result<SnoopPoller, Error> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let malformed = Arc::new(Mutex::new(0u64));
        let (s, m) = (Arc::clone(&seen), Arc::clone(&malformed));
        let mut builder = RingBufferBuilder::new();
        builder
            .add(&self.snoop, move |rec: &[u8]| {
                match SnoopedFrame::decode(rec) {
                    Some(f) => s.lock().unwrap_or_else(|p| p.into_inner()).push(f),
                    None => *m.lock().unwrap_or_else(|p| p.into_inner()) += 1,
                }
                0
            })
            .map_err(self.map_err("snoop", "adding the ring buffer".to_string()))?;
        let ring = builder
            .build()
            .map_err(self.map_err("snoop", "mapping the ring buffer".to_string()))?;
        Ok(SnoopPoller {
            ifname: self.ifname.clone(),
            ring,
            seen,
            malformed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snoop_record_decodes_and_rejects_garbage() {
        let mut rec = vec![0u8; 8 + SNOOP_MAX];
        rec[0..4].copy_from_slice(&7u32.to_ne_bytes());
        rec[4..6].copy_from_slice(&1u16.to_ne_bytes());
        rec[6..8].copy_from_slice(&42u16.to_ne_bytes());
        rec[8] = 0xff;
        let f = SnoopedFrame::decode(&rec).unwrap();
        assert_eq!(
            (f.ifindex, f.kind, f.frame().len()),
            (7, SnoopKind::Arp, 42)
        );
        assert_eq!(f.frame()[0], 0xff);
        rec[4..6].copy_from_slice(&9u16.to_ne_bytes());
        assert!(SnoopedFrame::decode(&rec).is_none(), "unknown kind");
        rec[4..6].copy_from_slice(&2u16.to_ne_bytes());
        rec[6..8].copy_from_slice(&200u16.to_ne_bytes());
        assert!(SnoopedFrame::decode(&rec).is_none(), "len beyond data");
        assert!(SnoopedFrame::decode(&rec[..20]).is_none(), "short record");
    }
}
