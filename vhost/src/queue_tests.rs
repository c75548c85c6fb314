//! GuestQueues against virtqueues laid out in memory by virtio-queue's
//! mock driver: the header read and written, checksums completed,
//! mergeable buffers, and every malformed chain counted, handed back and
//! survived.

use super::*;
use virtio_bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::split::Descriptor as SplitDescriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;
use vm_memory::GuestAddress;

const SIZE: u16 = 16;
/// Where the queues' rings sit, and where buffers start.
const RX_RING: u64 = 0;
const TX_RING: u64 = 0x8000;
const BUFS: u64 = 0x10_0000;
const MEM_END: u64 = 0x20_0000;

const MODERN: u64 = (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_NET_F_MRG_RXBUF);

struct Rig {
    /// Leaked: the mock driver's rings borrow it for the test's length
    /// (making a mock again would reset the rings it lays out).
    mem: &'static Mem,
    rxm: MockSplitQueue<'static, Mem>,
    txm: MockSplitQueue<'static, Mem>,
    q: GuestQueues,
    /// The next free slot of each descriptor table.
    rx_next: u16,
    tx_next: u16,
}

fn vring(mem: &GuestMemoryAtomic<Mem>, mq: &MockSplitQueue<Mem>) -> VringRwLock {
    let v = VringRwLock::new(mem.clone(), 256).unwrap();
    v.set_queue_size(SIZE);
    v.set_queue_info(mq.desc_table_addr().0, mq.avail_addr().0, mq.used_addr().0)
        .unwrap();
    v.set_queue_ready(true);
    v.set_enabled(true);
    v
}

fn rig(features: u64) -> Rig {
    let mem: &'static Mem = Box::leak(Box::new(
        Mem::from_ranges(&[(GuestAddress(0), MEM_END as usize)]).unwrap(),
    ));
    let atomic = GuestMemoryAtomic::new(mem.clone());
    let rxm = MockSplitQueue::create(mem, GuestAddress(RX_RING), SIZE);
    let txm = MockSplitQueue::create(mem, GuestAddress(TX_RING), SIZE);
    let (rx, tx) = (vring(&atomic, &rxm), vring(&atomic, &txm));
    Rig {
        q: GuestQueues::new(rx, tx, atomic, features, 1),
        mem,
        rxm,
        txm,
        rx_next: 0,
        tx_next: 0,
    }
}

fn desc(addr: u64, len: u32, flags: u32) -> RawDescriptor {
    RawDescriptor::from(SplitDescriptor::new(addr, len, flags as u16, 0))
}

impl Rig {
    /// Posts one chain of `descs` (linked here) on a queue.
    fn post(&mut self, tx: bool, descs: &[RawDescriptor]) -> u16 {
        let (mock, next) = if tx {
            (&self.txm, &mut self.tx_next)
        } else {
            (&self.rxm, &mut self.rx_next)
        };
        let head = *next;
        let linked: Vec<RawDescriptor> = descs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let d = SplitDescriptor::from(*d);
                let (flags, nx) = if i + 1 < descs.len() {
                    (d.flags() | VRING_DESC_F_NEXT as u16, head + i as u16 + 1)
                } else {
                    (d.flags(), d.next())
                };
                RawDescriptor::from(SplitDescriptor::new(d.addr().0, d.len(), flags, nx))
            })
            .collect();
        *next += descs.len() as u16;
        mock.add_desc_chains(&linked, head).unwrap();
        head
    }

    /// The used ring's entries so far: (head, length).
    fn used(&self, tx: bool) -> Vec<(u32, u32)> {
        let at = if tx {
            self.txm.used_addr()
        } else {
            self.rxm.used_addr()
        };
        let idx: u16 = self.mem.read_obj(at.unchecked_add(2)).unwrap();
        (0..u64::from(idx))
            .map(|i| {
                let e = at.unchecked_add(4 + 8 * i);
                (
                    self.mem.read_obj(e).unwrap(),
                    self.mem.read_obj(e.unchecked_add(4)).unwrap(),
                )
            })
            .collect()
    }

    fn write(&self, addr: u64, bytes: &[u8]) {
        self.mem.write_slice(bytes, GuestAddress(addr)).unwrap();
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }

    /// One recv of up to `max` frames into 2 KiB buffers.
    fn recv(&mut self, max: usize) -> Vec<Result<Vec<u8>, GuestFrameError>> {
        let mut out = Vec::new();
        self.q.recv(
            max,
            || Some(vec![0u8; 2048]),
            |mut b, r| match r {
                Ok(0) => {}
                Ok(n) => {
                    b.truncate(n);
                    out.push(Ok(b));
                }
                Err(e) => out.push(Err(e)),
            },
        );
        out
    }
}

/// An IPv4 UDP frame whose checksum field holds the pseudo-header sum,
/// as a guest leaving the checksum to the device hands it over.
fn partial_udp() -> Vec<u8> {
    let payload = b"xvs vhost-user checksum offload";
    let udp_len = 8 + payload.len();
    let mut f = vec![0u8; 14 + 20 + udp_len];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let c = xvs_dataplane::wire::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&4000u16.to_be_bytes());
    f[36..38].copy_from_slice(&5000u16.to_be_bytes());
    f[38..40].copy_from_slice(&(udp_len as u16).to_be_bytes());
    f[42..].copy_from_slice(payload);
    let pseudo = xvs_dataplane::wire::checksum::pseudo_header_v4(
        [10, 0, 0, 1].into(),
        [10, 0, 0, 2].into(),
        17,
        udp_len as u32,
    );
    f[40..42].copy_from_slice(&fold(pseudo).to_be_bytes());
    f
}

fn needs_csum_header(start: u16, offset: u16) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM as u8;
    h[6..8].copy_from_slice(&start.to_le_bytes());
    h[8..10].copy_from_slice(&offset.to_le_bytes());
    h
}

#[test]
fn a_partial_checksum_is_completed_across_descriptors() {
    let mut r = rig(MODERN);
    let f = partial_udp();
    r.write(BUFS, &needs_csum_header(34, 6));
    r.write(BUFS + 0x1000, &f);
    // The header alone in one descriptor, the frame in a second.
    let head = r.post(
        true,
        &[desc(BUFS, 12, 0), desc(BUFS + 0x1000, f.len() as u32, 0)],
    );
    let got = r.recv(8);
    let frame = got[0].clone().unwrap();
    assert_eq!(frame.len(), f.len());
    assert_eq!(frame[..40], f[..40], "only the checksum changes");
    let pseudo = xvs_dataplane::wire::checksum::pseudo_header_v4(
        [10, 0, 0, 1].into(),
        [10, 0, 0, 2].into(),
        17,
        (f.len() - 34) as u32,
    );
    assert_eq!(
        fold(ones_sum(pseudo, &frame[34..])),
        0xffff,
        "the UDP checksum verifies"
    );
    assert_eq!(r.q.counters.checksums_completed, 1);
    assert_eq!(r.used(true), vec![(u32::from(head), 0)]);
}

#[test]
fn malformed_transmit_chains_are_counted_and_handed_back() {
    let mut r = rig(MODERN);
    let hdr = [0u8; 12];
    r.write(BUFS, &hdr);
    let cases: Vec<(Vec<RawDescriptor>, GuestFrameError)> = vec![
        (
            vec![desc(BUFS, 12, 0), desc(MEM_END + 0x1000, 100, 0)],
            GuestFrameError::BadAddress,
        ),
        (
            vec![
                desc(BUFS, 12, 0),
                desc(BUFS + 0x100, 100, VRING_DESC_F_WRITE),
            ],
            GuestFrameError::WrongDirection,
        ),
        (vec![desc(BUFS, 0, 0)], GuestFrameError::Short),
        (
            vec![desc(BUFS, 12, 0), desc(BUFS + 0x100, 4000, 0)],
            GuestFrameError::TooLong,
        ),
        (
            vec![desc(BUFS, 12, 0), desc(BUFS + 0x100, 60, 0)],
            GuestFrameError::BadChecksumOffset,
        ),
    ];
    r.write(BUFS + 0x2000, &needs_csum_header(58, 6));
    let mut heads = Vec::new();
    for (i, (d, _)) in cases.iter().enumerate() {
        let mut d = d.clone();
        if i == 4 {
            d[0] = desc(BUFS + 0x2000, 12, 0);
        }
        heads.push(r.post(true, &d));
    }
    // A chain that loops: its one descriptor names itself as next.
    let head = r.tx_next;
    r.post(
        true,
        &[RawDescriptor::from(SplitDescriptor::new(
            BUFS,
            12,
            VRING_DESC_F_NEXT as u16,
            head,
        ))],
    );
    heads.push(head);
    // An indirect table of a length no table can have.
    heads.push(r.post(true, &[desc(BUFS + 0x3000, 15, VRING_DESC_F_INDIRECT)]));
    // A well-formed frame after all of them still goes through.
    r.write(BUFS + 0x4000, &[0u8; 12]);
    r.write(BUFS + 0x4100, &[0xab; 60]);
    heads.push(r.post(
        true,
        &[desc(BUFS + 0x4000, 12, 0), desc(BUFS + 0x4100, 60, 0)],
    ));

    let got = r.recv(16);
    let mut want: Vec<Result<Vec<u8>, GuestFrameError>> =
        cases.iter().map(|(_, e)| Err(*e)).collect();
    want.push(Err(GuestFrameError::BrokenChain));
    want.push(Err(GuestFrameError::BrokenChain));
    want.push(Ok(vec![0xab; 60]));
    assert_eq!(got, want);
    assert_eq!(r.q.counters.bad_chains, 7);
    assert_eq!(r.q.counters.from_guest, 1);
    let used: Vec<u32> = r.used(true).iter().map(|u| u.0).collect();
    assert_eq!(
        used,
        heads.iter().map(|&h| u32::from(h)).collect::<Vec<_>>(),
        "every chain is handed back"
    );
}

#[test]
fn a_frame_goes_to_the_guest_behind_its_header() {
    let mut r = rig(MODERN);
    let head = r.post(false, &[desc(BUFS, 2048, VRING_DESC_F_WRITE)]);
    let f: Vec<u8> = (0..100u8).collect();
    assert_eq!(r.q.send([f.as_slice()]), 1);
    let mut want = vec![0u8; 12];
    want[10] = 1; // num_buffers
    want.extend_from_slice(&f);
    assert_eq!(r.read(BUFS, 112), want);
    assert_eq!(r.used(false), vec![(u32::from(head), 112)]);
    assert_eq!(r.q.counters.to_guest, 1);
}

#[test]
fn a_long_frame_spreads_over_mergeable_buffers() {
    let mut r = rig(MODERN);
    let heads: Vec<u16> = (0..4)
        .map(|i| r.post(false, &[desc(BUFS + i * 0x1000, 1024, VRING_DESC_F_WRITE)]))
        .collect();
    let f: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(r.q.send([f.as_slice()]), 1);
    assert_eq!(r.read(BUFS + 10, 2), vec![3, 0], "num_buffers = 3");
    let mut got = r.read(BUFS + 12, 1012);
    got.extend(r.read(BUFS + 0x1000, 1024));
    got.extend(r.read(BUFS + 0x2000, 964));
    assert_eq!(got, f);
    let h = |i: usize| u32::from(heads[i]);
    assert_eq!(r.used(false), vec![(h(0), 1024), (h(1), 1024), (h(2), 964)]);
    // The fourth buffer is still the guest's to fill: a small frame takes it.
    assert_eq!(r.q.send([&[1u8; 60][..]]), 1);
    assert_eq!(r.used(false)[3], (h(3), 72));
}

#[test]
fn without_room_a_frame_is_dropped_and_the_buffers_stay_posted() {
    let mut r = rig(1 << VIRTIO_F_VERSION_1); // no MRG_RXBUF: one chain per frame
    let head = r.post(false, &[desc(BUFS, 1024, VRING_DESC_F_WRITE)]);
    let long = vec![7u8; 1500];
    assert_eq!(r.q.send([long.as_slice()]), 0);
    assert_eq!(r.q.counters.no_buffers, 1);
    assert!(r.used(false).is_empty(), "nothing consumed");
    assert_eq!(r.q.send([&[1u8; 100][..]]), 1, "the buffer is still there");
    assert_eq!(r.used(false), vec![(u32::from(head), 112)]);
    assert_eq!(r.q.send([&[1u8; 100][..]]), 0, "and now there is none");
    assert_eq!(r.q.counters.no_buffers, 2);
}

#[test]
fn a_malformed_receive_chain_is_handed_back_empty() {
    let mut r = rig(MODERN);
    let bad = r.post(false, &[desc(BUFS, 1024, 0)]); // not device-writable
    let outside = r.post(false, &[desc(MEM_END - 16, 1024, VRING_DESC_F_WRITE)]);
    let good = r.post(false, &[desc(BUFS + 0x1000, 1024, VRING_DESC_F_WRITE)]);
    let f = [5u8; 200];
    assert_eq!(r.q.send([&f[..], &f[..], &f[..]]), 1);
    assert_eq!(r.q.counters.bad_rx_chains, 2);
    assert_eq!(
        r.used(false),
        vec![
            (u32::from(bad), 0),
            (u32::from(outside), 0),
            (u32::from(good), 212)
        ]
    );
}

#[test]
fn a_queue_the_driver_has_not_enabled_is_left_alone() {
    let mut r = rig(MODERN);
    r.q.tx.set_enabled(false);
    r.q.rx.set_enabled(false);
    r.write(BUFS, &[0u8; 72]);
    r.post(true, &[desc(BUFS, 72, 0)]);
    assert!(r.recv(8).is_empty());
    assert_eq!(r.q.send([&[1u8; 60][..]]), 0);
    assert!(r.used(true).is_empty());
}

const TSO: u64 = MODERN
    | (1 << virtio_bindings::virtio_net::VIRTIO_NET_F_HOST_TSO4)
    | (1 << virtio_bindings::virtio_net::VIRTIO_NET_F_HOST_TSO6);

/// A TSO frame as a Linux guest hands one over: IPv4 TCP with `payload`
/// bytes, the checksum field holding the pseudo-header sum, behind a
/// virtio-net header asking for segments of `mss`.
fn tso_frame(payload: usize, mss: u16) -> ([u8; 12], Vec<u8>) {
    let data: Vec<u8> = (0..payload).map(|i| (i % 253) as u8).collect();
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 5201, 1, 1000)
        .ack(1)
        .psh()
        .write(&mut f, &data)
        .unwrap();
    let mut h = needs_csum_header(34, 16);
    h[1] = virtio_bindings::virtio_net::VIRTIO_NET_HDR_GSO_TCPV4 as u8;
    h[2..4].copy_from_slice(&66u16.to_le_bytes());
    h[4..6].copy_from_slice(&mss.to_le_bytes());
    (h, f)
}

/// Posts a frame behind its header, the frame cut over three descriptors
/// at odd places, as a guest's linear part and page fragments.
fn post_frame(r: &mut Rig, at: u64, h: &[u8; 12], f: &[u8]) -> u16 {
    r.write(at, h);
    r.write(at + 0x100, &f[..100]);
    r.write(at + 0x1000, &f[100..5000]);
    r.write(at + 0x3000, &f[5000..]);
    r.post(
        true,
        &[
            desc(at, 12, 0),
            desc(at + 0x100, 100, 0),
            desc(at + 0x1000, 4900, 0),
            desc(at + 0x3000, (f.len() - 5000) as u32, 0),
        ],
    )
}

#[test]
fn a_tso_frame_is_cut_into_segments_each_with_its_checksum() {
    let mut r = rig(TSO);
    let (h, f) = tso_frame(10_000, 1398);
    let head = post_frame(&mut r, BUFS, &h, &f);
    let got = r.recv(16);
    assert_eq!(got.len(), 8);
    let mut payload = Vec::new();
    for (k, s) in got.iter().enumerate() {
        let s = s.as_ref().unwrap();
        let p = etherparse::SlicedPacket::from_ethernet(s).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4")
        };
        assert_eq!(usize::from(ip.header().total_len()), s.len() - 14);
        let Some(etherparse::TransportSlice::Tcp(tcp)) = &p.transport else {
            panic!("not TCP")
        };
        let want = tcp
            .to_header()
            .calc_checksum_ipv4(&ip.header().to_header(), tcp.payload())
            .unwrap();
        assert_eq!(tcp.checksum(), want, "segment {k}");
        assert_eq!(tcp.sequence_number(), 1 + 1398 * k as u32);
        assert_eq!(tcp.psh(), k == 7);
        payload.extend_from_slice(tcp.payload());
    }
    assert_eq!(payload, f[54..]);
    assert_eq!(r.used(true), vec![(u32::from(head), 0)], "one chain used");
    assert_eq!((r.q.counters.segmented, r.q.counters.segments), (1, 8));
    assert_eq!(r.q.counters.from_guest, 8);
}

#[test]
fn a_tso_frame_waits_for_a_batch_with_room_and_one_too_big_for_any_is_dropped() {
    let mut r = rig(TSO);
    r.write(BUFS, &[0u8; 12]);
    r.write(BUFS + 0x100, &[0xab; 60]);
    r.post(true, &[desc(BUFS, 12, 0), desc(BUFS + 0x100, 60, 0)]);
    let (h, f) = tso_frame(10_000, 1398);
    post_frame(&mut r, BUFS + 0x1_0000, &h, &f);
    // One frame and then no room left for eight segments: the TSO frame
    // stays queued, whole.
    let got = r.recv(8);
    assert_eq!(got, vec![Ok(vec![0xab; 60])]);
    assert_eq!(r.used(true).len(), 1);
    assert_eq!(r.recv(8).len(), 8, "the next batch takes it");
    // Segments of 100 bytes: 100 of them, more than any batch.
    let (h, f) = tso_frame(10_000, 100);
    post_frame(&mut r, BUFS + 0x2_0000, &h, &f);
    assert_eq!(r.recv(64), vec![Err(GuestFrameError::TooManySegments)]);
    assert_eq!(r.used(true).len(), 3, "and handed back");
    // Not negotiated: refused as such.
    let mut r = rig(MODERN);
    let (h, f) = tso_frame(6000, 1398);
    post_frame(&mut r, BUFS, &h, &f);
    assert_eq!(r.recv(8), vec![Err(GuestFrameError::GsoNotNegotiated)]);
}

/// A range across two memory regions (a guest's memory is often split
/// at the PCI hole) is copied whole both ways, by the fallback; one
/// outside memory is refused.
#[test]
fn copies_span_memory_regions() {
    let mem = Mem::from_ranges(&[
        (GuestAddress(0), 0x1_0000),
        (GuestAddress(0x1_0000), 0x1_0000),
    ])
    .unwrap();
    let data: Vec<u8> = (0..512u32).map(|i| (i * 3) as u8).collect();
    assert!(copy_to_guest(&mem, GuestAddress(0xff00), &data));
    let mut back = vec![0u8; 512];
    assert!(copy_from_guest(&mem, GuestAddress(0xff00), &mut back));
    assert_eq!(back, data);
    // Within one region: the memcpy path.
    assert!(copy_to_guest(&mem, GuestAddress(0x100), &data));
    assert!(copy_from_guest(&mem, GuestAddress(0x100), &mut back));
    assert_eq!(back, data);
    assert!(!copy_from_guest(&mem, GuestAddress(0x1_ff00), &mut back));
    assert!(!copy_to_guest(&mem, GuestAddress(0x2_0000), &data));
}

/// What does not fit waits: `send_until_full` stops at the first frame
/// the guest has no buffer for, counts no drop, and takes the rest once
/// the guest posts buffers.
#[test]
fn send_until_full_stops_where_the_guest_has_no_room() {
    let mut r = rig(1 << VIRTIO_F_VERSION_1); // one chain per frame
    r.post(false, &[desc(BUFS, 1024, VRING_DESC_F_WRITE)]);
    let f = [1u8; 100];
    assert_eq!(r.q.send_until_full([&f[..], &f[..], &f[..]]), 1);
    assert_eq!(r.q.counters.no_buffers, 0, "nothing dropped");
    r.post(false, &[desc(BUFS + 0x1000, 1024, VRING_DESC_F_WRITE)]);
    r.post(false, &[desc(BUFS + 0x2000, 1024, VRING_DESC_F_WRITE)]);
    assert_eq!(r.q.send_until_full([&f[..], &f[..]]), 2);
    assert_eq!(r.used(false).len(), 3);
    assert_eq!(r.q.counters.to_guest, 3);
}
