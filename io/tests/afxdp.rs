//! AF_XDP spike on real packets: two network namespaces joined by a veth
//! pair, our XDP program on one end, an xsk-rs socket bound to it, and the
//! kernel on the other end as the independent peer. Frames are built and
//! re-parsed with etherparse. What the two programs send to a socket and
//! what they leave to the kernel, seen from the socket; the same through
//! our own [`XskPort`](xvs_io::xsk::XskPort) is `port.rs`, the loader alone
//! `bpf/tests/attach.rs`.
//!
//! Needs root (namespaces, BPF) (`xvs_tests::require`: fails without it
//! under XVS_REQUIRE_ALL=1, skips loudly by hand). Each
//! test owns its namespaces through [`Netns`], which deletes them on drop,
//! panics included. Every wait is bounded by a deadline.
//!
//! The veth pairs are created with one queue pair: veth otherwise has one
//! rx queue per CPU, and frames on a queue with no bound socket would be
//! dropped (counted as `port_no_socket`).

mod common;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use common::{require_root, udp4, MAC_A, MAC_A_S, MAC_B, MAC_B_S, VXLAN4_HEADER, VXLAN_PORT, WAIT};
use etherparse::{
    EtherType, Ethernet2Header, IpNumber, Ipv4Header, NetSlice, PacketBuilder, SlicedPacket,
    TransportSlice, UdpHeader,
};
use xsk_rs::config::{BindFlags, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};
use xvs_bpf::{AttachFlags, Mode, SnoopKind, XdpProgram};
use xvs_io::xsk::xsk_zero_copy;
use xvs_tests::{ip_out, on_thread, veth, Netns};

/// Room kept in every UMEM frame ahead of the kernel's XDP headroom
/// (xsk-rs `frame_headroom`): the largest outer header we push.
const UMEM_HEADROOM: u32 = 128;
const FRAMES: u32 = 256;
const RX_FRAMES: usize = 128;
const RING: u32 = 128;

/// One AF_XDP socket on queue 0 with its UMEM and rings.
struct Xsk {
    umem: Umem,
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    /// Frames owned by userspace, free for TX.
    free: Vec<FrameDesc>,
    zero_copy: bool,
}

impl Xsk {
    fn bind(ifname: &str, prog: &XdpProgram) -> Self {
        let umem_cfg = UmemConfig::builder()
            .frame_headroom(UMEM_HEADROOM)
            .fill_queue_size(QueueSize::new(RING).unwrap())
            .comp_queue_size(QueueSize::new(RING).unwrap())
            .build()
            .unwrap();
        let (umem, mut descs) =
            Umem::new(umem_cfg, NonZeroU32::new(FRAMES).unwrap(), false).expect("UMEM");
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(QueueSize::new(RING).unwrap())
            .tx_queue_size(QueueSize::new(RING).unwrap())
            // We load our own program: keep libxdp from loading its own.
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        // SAFETY: the UMEM outlives the socket's queues (both live in the
        // returned struct, and xsk-rs reference-counts the UMEM region).
        let (tx, rx, fqcq) = unsafe { Socket::new(sock_cfg, &umem, &ifname.parse().unwrap(), 0) }
            .unwrap_or_else(|e| panic!("AF_XDP socket on {ifname} queue 0: {e}"));
        let (mut fq, cq) =
            fqcq.expect("first socket on a UMEM owns its fill and completion queues");
        let rx_fd = rx.fd().as_raw_fd();
        // SAFETY: the fd belongs to `rx`, open for this whole call.
        let fd = unsafe { BorrowedFd::borrow_raw(rx_fd) };
        let zero_copy = xsk_zero_copy(fd).expect("XDP_OPTIONS");
        prog.register_xsk(0, fd).expect("register xsk");
        let free = descs.split_off(RX_FRAMES);
        // SAFETY: these frames belong to this UMEM and are not in any ring.
        let filled = unsafe { fq.produce(&descs) };
        assert_eq!(filled, RX_FRAMES, "fill ring accepts every rx frame");
        Self {
            umem,
            tx,
            rx,
            fq,
            cq,
            free,
            zero_copy,
        }
    }

    /// Receives until `n` frames that `keep` accepts arrived or the
    /// deadline passed. Other frames (the peer's own IPv6 router
    /// solicitations and MLD reports also reach a port socket) go straight
    /// back to the fill ring.
    fn recv(&mut self, n: usize, keep: impl Fn(&[u8]) -> bool) -> Vec<FrameDesc> {
        let mut got = Vec::new();
        let mut batch = vec![FrameDesc::default(); 64];
        let deadline = Instant::now() + WAIT;
        while got.len() < n && Instant::now() < deadline {
            // SAFETY: the descriptors come from this socket's rx ring and
            // describe frames of this UMEM.
            let k = unsafe { self.rx.poll_and_consume(&mut batch, 100) }.expect("rx poll");
            let (mine, other): (Vec<FrameDesc>, Vec<FrameDesc>) =
                batch[..k].iter().partition(|d| keep(self.data(d)));
            got.extend_from_slice(&mine);
            self.refill(&other);
        }
        got
    }

    /// Frame bytes.
    fn data(&self, d: &FrameDesc) -> &[u8] {
        // SAFETY: `d` came from this UMEM's rings and is owned by us (not in
        // any ring) while we look at it.
        unsafe { self.umem.data(d) }.contents()
    }

    /// Overwrites a frame's data with `bytes`.
    fn write(&self, d: &mut FrameDesc, bytes: &[u8]) {
        // SAFETY: as in `data`; nothing else refers to the frame.
        let mut data = unsafe { self.umem.data_mut(d) };
        let mut cur = data.cursor();
        cur.set_pos(0);
        cur.write_all(bytes).expect("frame fits");
    }

    /// Transmits `descs`, kicking the kernel until every one completed
    /// (copy mode sends a bounded number per kick); returns the number
    /// of kicks.
    fn send_all(&mut self, descs: &[FrameDesc]) -> usize {
        let mut queued = 0;
        let mut done = 0;
        let mut kicks = 0;
        let mut comp = vec![FrameDesc::default(); 64];
        let deadline = Instant::now() + WAIT;
        while done < descs.len() {
            assert!(
                Instant::now() < deadline,
                "tx: {done} of {} completed after {kicks} kicks",
                descs.len()
            );
            if queued < descs.len() {
                // SAFETY: the frames are ours (taken from rx or `free`) and
                // belong to this UMEM.
                queued += unsafe { self.tx.produce(&descs[queued..]) };
            }
            if self.tx.needs_wakeup() {
                self.tx.wakeup().expect("tx kick");
                kicks += 1;
            }
            // SAFETY: the completion ring returns frames of this UMEM.
            let k = unsafe { self.cq.consume(&mut comp) };
            done += k;
            self.free.extend_from_slice(&comp[..k]);
            if k == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        kicks
    }

    /// Gives received frames back to the fill ring.
    fn refill(&mut self, descs: &[FrameDesc]) {
        // SAFETY: the frames are ours and belong to this UMEM.
        let n = unsafe { self.fq.produce(descs) };
        assert_eq!(n, descs.len(), "fill ring has room for what it lent us");
    }
}

/// xvs_port: every frame reaches the socket; userspace echoes with swapped
/// addresses and the peer's kernel receives the echoes; then, with 50 bytes
/// reserved by the XDP program, userspace prepends a VXLAN/UDP/IPv4
/// header in place and the peer's kernel receives the VXLAN datagram.
#[test]
fn port_redirects_every_frame_and_transmits_from_userspace() {
    require_root!();
    let a = Netns::new("pa");
    let b = Netns::new("pb");
    veth(&a, "xp0", MAC_A_S, &b, "xp1", MAC_B_S);
    b.ip(&["addr", "add", "198.18.0.2/24", "dev", "xp1"]);
    // The switch side has no IP stack: tell the peer where 198.18.0.1 is.
    b.ip(&[
        "neigh",
        "add",
        "198.18.0.1",
        "lladdr",
        MAC_A_S,
        "dev",
        "xp1",
        "nud",
        "permanent",
    ]);
    let a_ip = Ipv4Addr::new(198, 18, 0, 1);
    let b_ip = Ipv4Addr::new(198, 18, 0, 2);
    // More than one copy-mode TX batch (32 frames per kick on this kernel).
    const N: usize = 40;

    on_thread(|| {
        a.enter();
        let prog = XdpProgram::attach("xp0", Mode::Port, AttachFlags::Auto).expect("attach");
        let mut xsk = Xsk::bind("xp0", &prog);
        eprintln!(
            "port: xvs_port attached in {} mode on veth (prog id {}), AF_XDP socket in {} mode",
            prog.attach_mode(),
            prog.prog_id(),
            if xsk.zero_copy { "zero-copy" } else { "copy" }
        );
        let shown = ip_out(&["link", "show", "xp0"]);
        assert!(shown.contains("xdp"), "ip link shows the program: {shown}");

        b.enter();
        let peer = UdpSocket::bind((b_ip, 0)).unwrap();
        peer.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let vxlan_sink = UdpSocket::bind((b_ip, VXLAN_PORT)).unwrap();
        vxlan_sink
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        for i in 0..N {
            peer.send_to(format!("xvs-{i}").as_bytes(), (a_ip, 9000))
                .unwrap();
        }

        // --- receive every frame through AF_XDP
        let to_us = |f: &[u8]| udp4(f).is_some_and(|u| u.2 == 9000);
        let mut got = xsk.recv(N, to_us);
        assert_eq!(got.len(), N, "frames seen through AF_XDP");
        let first_off = got[0].addr() % 4096;
        let mut csum_ok = 0;
        let mut replies = Vec::new();
        for d in &mut got {
            let (ip_h, sport, dport, payload, ok) =
                udp4(xsk.data(d)).expect("received frame is IPv4/UDP");
            assert_eq!(
                (ip_h.source, ip_h.destination, dport),
                (b_ip.octets(), a_ip.octets(), 9000)
            );
            assert!(payload.starts_with(b"xvs-"), "payload {payload:?}");
            csum_ok += usize::from(ok);
            // Echo: swapped addresses, fresh checksums (the peer's veth
            // sent a CHECKSUM_PARTIAL checksum, invalid on the wire).
            let mut reply = Vec::new();
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv4(a_ip.octets(), b_ip.octets(), 64)
                .udp(9000, sport)
                .write(&mut reply, &payload)
                .unwrap();
            xsk.write(d, &reply);
            replies.push(payload);
        }
        eprintln!(
            "port: {N} frames received, first at UMEM offset {first_off} within its 4096-byte \
             frame, {csum_ok} of {N} with a complete UDP checksum (the rest CHECKSUM_PARTIAL)"
        );
        let c = prog.counters().unwrap();
        assert!(c.port_redirected >= N as u64, "{c:?}");

        // --- transmit the echoes from userspace, in place (same frames)
        let kicks = xsk.send_all(&got);
        let mut echoed = Vec::new();
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 2048];
        while echoed.len() < N && Instant::now() < deadline {
            if let Ok((n, from)) = peer.recv_from(&mut buf) {
                assert_eq!(from, SocketAddr::from((a_ip, 9000)));
                echoed.push(buf[..n].to_vec());
            }
        }
        eprintln!(
            "port: {N} echoes sent with {kicks} tx kicks, peer kernel received {}",
            echoed.len()
        );
        echoed.sort();
        replies.sort();
        assert_eq!(
            echoed, replies,
            "every echo reaches the peer's UDP socket intact"
        );
        xsk.refill(&got);

        // --- headroom reserved by the XDP program, header pushed in place
        prog.set_port_headroom(VXLAN4_HEADER as u32).unwrap();
        const H: usize = 4;
        for i in 0..H {
            peer.send_to(format!("xvs-h-{i}").as_bytes(), (a_ip, 9000))
                .unwrap();
        }
        let mut got = xsk.recv(H, |f| f.len() > VXLAN4_HEADER && to_us(&f[VXLAN4_HEADER..]));
        assert_eq!(got.len(), H, "frames with reserved headroom");
        let mut inner_frames = Vec::new();
        for d in &mut got {
            let off = d.addr() % 4096;
            let len = d.lengths().data();
            let data = xsk.data(d).to_vec();
            let inner = &data[VXLAN4_HEADER..];
            let (_, _, _, payload, _) = udp4(inner).expect("frame starts after the reserve");
            eprintln!(
                "port: headroom {VXLAN4_HEADER}: descriptor at offset {off} (was {first_off}), \
                 len {len} = {VXLAN4_HEADER} reserved + {} frame; payload {:?}",
                inner.len(),
                String::from_utf8_lossy(&payload)
            );
            // Outer header into the reserved bytes; the inner frame is not
            // moved or copied.
            let udp_len = 8 + 8 + inner.len();
            let mut outer = Vec::with_capacity(VXLAN4_HEADER);
            Ethernet2Header {
                source: MAC_A,
                destination: MAC_B,
                ether_type: EtherType::IPV4,
            }
            .write(&mut outer)
            .unwrap();
            let mut ip_h = Ipv4Header::new(
                udp_len as u16,
                64,
                IpNumber::UDP,
                a_ip.octets(),
                b_ip.octets(),
            )
            .unwrap();
            ip_h.header_checksum = ip_h.calc_header_checksum();
            ip_h.write(&mut outer).unwrap();
            UdpHeader::without_ipv4_checksum(49152, VXLAN_PORT, 8 + inner.len())
                .unwrap()
                .write(&mut outer)
                .unwrap();
            outer.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 42, 0]); // VNI 42
            assert_eq!(outer.len(), VXLAN4_HEADER);
            let mut full = outer;
            full.extend_from_slice(inner);
            // Writing `full` rewrites the inner bytes with themselves; the
            // descriptor (address, length) is the one the kernel gave us.
            xsk.write(d, &full);
            assert_eq!(d.lengths().data(), len, "same descriptor length");
            inner_frames.push(inner.to_vec());
        }
        xsk.send_all(&got);
        let mut seen = Vec::new();
        let deadline = Instant::now() + WAIT;
        while seen.len() < H && Instant::now() < deadline {
            if let Ok((n, _)) = vxlan_sink.recv_from(&mut buf) {
                assert_eq!(
                    &buf[..8],
                    &[0x08, 0, 0, 0, 0, 0, 42, 0],
                    "VXLAN header, VNI 42"
                );
                seen.push(buf[8..n].to_vec());
            }
        }
        eprintln!(
            "port: {} VXLAN datagrams received by the peer kernel",
            seen.len()
        );
        seen.sort();
        inner_frames.sort();
        assert_eq!(
            seen, inner_frames,
            "each inner frame arrives whole inside VXLAN"
        );

        let c = prog.counters().unwrap();
        eprintln!("port: counters {c:?}");
        // `port_no_socket` may count the peer's IPv6 router solicitation or
        // MLD report sent before the socket was registered.
        assert_eq!(c.port_headroom_failed, 0);
        assert!(c.port_redirected >= (N + H) as u64, "{c:?}");
        a.enter();
        drop(xsk);
        drop(prog);
        let shown = ip_out(&["link", "show", "xp0"]);
        assert!(!shown.contains("xdp"), "detached on drop: {shown}");
    });
}

/// xvs_uplink: the host keeps its traffic, tunnel UDP goes to the socket
/// (IPv4 and IPv6), ARP replies and neighbor advertisements are snooped.
#[test]
fn uplink_redirects_only_tunnel_traffic_and_snoops_neighbors() {
    require_root!();
    let a = Netns::new("ua");
    let b = Netns::new("ub");
    veth(&a, "xu0", MAC_A_S, &b, "xu1", MAC_B_S);
    a.ip(&["addr", "add", "198.18.1.1/24", "dev", "xu0"]);
    a.ip(&["addr", "add", "2001:db8:1::1/64", "dev", "xu0", "nodad"]);
    b.ip(&["addr", "add", "198.18.1.2/24", "dev", "xu1"]);
    b.ip(&["addr", "add", "2001:db8:1::2/64", "dev", "xu1", "nodad"]);
    let a4 = Ipv4Addr::new(198, 18, 1, 1);
    let b4 = Ipv4Addr::new(198, 18, 1, 2);
    let a6: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
    let b6: Ipv6Addr = "2001:db8:1::2".parse().unwrap();

    on_thread(|| {
        a.enter();
        let prog = XdpProgram::attach("xu0", Mode::Uplink, AttachFlags::Auto).expect("attach");
        prog.add_vtep(IpAddr::V4(a4)).unwrap();
        prog.add_vtep(IpAddr::V6(a6)).unwrap();
        prog.add_tunnel_port(VXLAN_PORT).unwrap();
        let mut xsk = Xsk::bind("xu0", &prog);
        eprintln!(
            "uplink: xvs_uplink attached in {} mode, AF_XDP socket in {} mode",
            prog.attach_mode(),
            if xsk.zero_copy { "zero-copy" } else { "copy" }
        );
        let mut snoop = prog.snoop_poller().unwrap();
        let host = UdpSocket::bind((a4, 5555)).unwrap();
        host.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let host_tunnel = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, VXLAN_PORT)).unwrap();
        host_tunnel
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        // The host talks first: its ARP request and neighbor solicitation
        // draw an ARP reply and a neighbor advertisement from the peer.
        let host_out4 = UdpSocket::bind((a4, 0)).unwrap();
        let host_out6 = UdpSocket::bind((a6, 0)).unwrap();
        host_out4.send_to(b"hello", (b4, 7777)).unwrap();
        host_out6.send_to(b"hello", (b6, 7777)).unwrap();
        let mut snooped = Vec::new();
        let deadline = Instant::now() + WAIT;
        while !(snooped
            .iter()
            .any(|f: &xvs_bpf::SnoopedFrame| f.kind == SnoopKind::Arp)
            && snooped.iter().any(|f| f.kind == SnoopKind::NeighborAdvert))
            && Instant::now() < deadline
        {
            snoop
                .poll(Duration::from_millis(100), &mut snooped)
                .unwrap();
        }
        let arp = snooped
            .iter()
            .find(|f| f.kind == SnoopKind::Arp)
            .expect("ARP reply snooped");
        let p = SlicedPacket::from_ethernet(arp.frame()).expect("snooped ARP parses");
        let Some(NetSlice::Arp(arp_p)) = p.net else {
            panic!("snooped frame is ARP: {p:?}");
        };
        assert_eq!(
            arp_p.sender_hw_addr(),
            MAC_B,
            "reply carries the peer's MAC"
        );
        assert_eq!(arp_p.sender_protocol_addr(), b4.octets());
        let na = snooped
            .iter()
            .find(|f| f.kind == SnoopKind::NeighborAdvert)
            .expect("neighbor advertisement snooped");
        let p = SlicedPacket::from_ethernet(na.frame()).expect("snooped NA parses");
        let Some(TransportSlice::Icmpv6(icmp)) = p.transport else {
            panic!("snooped frame is ICMPv6: {p:?}");
        };
        assert_eq!(icmp.type_u8(), 136, "neighbor advertisement");
        eprintln!(
            "uplink: snooped {} frames: ARP reply {} bytes, NA {} bytes, ifindex {}",
            snooped.len(),
            arp.frame().len(),
            na.frame().len(),
            arp.ifindex
        );
        assert_eq!(arp.ifindex as i32, prog.ifindex());

        b.enter();
        let peer4 = UdpSocket::bind((b4, 0)).unwrap();
        let peer6 = UdpSocket::bind((b6, 0)).unwrap();
        // Not ours: to the host's socket on another port.
        peer4.send_to(b"for-the-host", (a4, 5555)).unwrap();
        let mut buf = [0u8; 2048];
        let (n, _) = host
            .recv_from(&mut buf)
            .expect("non-tunnel UDP reaches the kernel");
        assert_eq!(&buf[..n], b"for-the-host");
        // Ours: UDP to the VTEP and tunnel port, IPv4 and IPv6.
        for i in 0..3 {
            peer4
                .send_to(format!("tun4-{i}").as_bytes(), (a4, VXLAN_PORT))
                .unwrap();
        }
        peer6.send_to(b"tun6", (a6, VXLAN_PORT)).unwrap();
        let got = xsk.recv(4, |_| true);
        let mut payloads: Vec<String> = got
            .iter()
            .map(|d| {
                let p = SlicedPacket::from_ethernet(xsk.data(d)).expect("tunnel frame parses");
                let Some(TransportSlice::Udp(u)) = p.transport else {
                    panic!("redirected frame is UDP");
                };
                assert_eq!(u.destination_port(), VXLAN_PORT);
                String::from_utf8_lossy(u.payload()).into_owned()
            })
            .collect();
        payloads.sort();
        assert_eq!(payloads, ["tun4-0", "tun4-1", "tun4-2", "tun6"]);
        assert!(
            host_tunnel.recv_from(&mut buf).is_err(),
            "the kernel's socket on the tunnel port saw none of it"
        );
        xsk.refill(&got);
        let c = prog.counters().unwrap();
        eprintln!("uplink: counters {c:?}");
        assert_eq!(c.uplink_redirected, 4, "{c:?}");
        assert_eq!(c.uplink_no_socket, 0, "{c:?}");
        assert!(
            c.uplink_passed >= 2 && c.snoop_arp >= 1 && c.snoop_nd >= 1,
            "{c:?}"
        );
        assert_eq!(snoop.malformed(), 0);
        a.enter();
        drop(snoop);
        drop(xsk);
        drop(prog);
    });
}
