//! What the kernel counts on each AF_XDP socket (getsockopt
//! `XDP_STATISTICS`): frames it dropped before they reached the socket's
//! RX ring, and descriptors it refused. They never reach a worker, so only
//! the kernel can say; the worker reads them between batches, once per
//! report, and adds what grew to the port's counters.

use super::XskSet;

/// One socket's kernel counters, since it was bound.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KernelCounters {
    /// Frames dropped on the way in: no chunk on the fill ring, or longer
    /// than a chunk on a socket without multi-buffer (`rx_dropped`).
    pub rx_dropped: u64,
    /// Frames dropped because the RX ring was full: the worker fell
    /// behind (`rx_ring_full`).
    pub rx_ring_full: u64,
    /// Descriptors the kernel refused on the RX and TX paths.
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    /// Times a frame found the fill ring empty (its drop is in
    /// `rx_dropped`): a shortage of chunks, not a drop of its own.
    pub fill_empty: u64,
}

impl KernelCounters {
    /// What grew since `before` (a counter that went back, a socket
    /// bound again, counts from zero).
    pub fn since(&self, before: &KernelCounters) -> KernelCounters {
        let d = |now: u64, then: u64| now.checked_sub(then).unwrap_or(now);
        KernelCounters {
            rx_dropped: d(self.rx_dropped, before.rx_dropped),
            rx_ring_full: d(self.rx_ring_full, before.rx_ring_full),
            rx_invalid_descs: d(self.rx_invalid_descs, before.rx_invalid_descs),
            tx_invalid_descs: d(self.tx_invalid_descs, before.tx_invalid_descs),
            fill_empty: d(self.fill_empty, before.fill_empty),
        }
    }

    pub fn add(&mut self, o: &KernelCounters) {
        self.rx_dropped += o.rx_dropped;
        self.rx_ring_full += o.rx_ring_full;
        self.rx_invalid_descs += o.rx_invalid_descs;
        self.tx_invalid_descs += o.tx_invalid_descs;
        self.fill_empty += o.fill_empty;
    }

    /// The drops by the names `xvsctl stats` shows them under.
    pub fn drops(&self) -> [(&'static str, u64); 4] {
        [
            ("xsk_rx_dropped", self.rx_dropped),
            ("xsk_rx_ring_full", self.rx_ring_full),
            ("xsk_rx_invalid_descs", self.rx_invalid_descs),
            ("xsk_tx_invalid_descs", self.tx_invalid_descs),
        ]
    }
}

impl XskSet {
    /// Socket `s`'s kernel counters; none for an empty slot or when the
    /// kernel does not answer (a syscall: between batches only).
    pub fn kernel_counters(&self, s: usize) -> Option<KernelCounters> {
        let k = self.socks.get(s)?.as_ref()?;
        let st = k.rx.fd().xdp_statistics().ok()?;
        Some(KernelCounters {
            rx_dropped: st.rx_dropped(),
            rx_ring_full: st.rx_ring_full(),
            rx_invalid_descs: st.rx_invalid_descs(),
            tx_invalid_descs: st.tx_invalid_descs(),
            fill_empty: st.rx_fill_ring_empty_descs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_counted_once_and_a_socket_bound_again_from_zero() {
        let a = KernelCounters {
            rx_dropped: 5,
            rx_ring_full: 2,
            ..Default::default()
        };
        let b = KernelCounters {
            rx_dropped: 7,
            rx_ring_full: 2,
            fill_empty: 1,
            ..Default::default()
        };
        let d = b.since(&a);
        assert_eq!((d.rx_dropped, d.rx_ring_full, d.fill_empty), (2, 0, 1));
        // A new socket's counters start below the old one's.
        let fresh = KernelCounters {
            rx_dropped: 1,
            ..Default::default()
        };
        assert_eq!(fresh.since(&b).rx_dropped, 1);
        let mut sum = a;
        sum.add(&d);
        assert_eq!(sum.drops()[0], ("xsk_rx_dropped", 7));
    }
}
