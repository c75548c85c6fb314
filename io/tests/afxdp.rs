//! AF_XDP spike on real packets: two network namespaces joined by a veth
//! pair, our XDP program on one end, an xsk-rs socket bound to it, and the
//! kernel on the other end as the independent peer. Frames are built and
//! re-parsed with etherparse.
//!
//! Needs root (namespaces, BPF) (`xvs_tests::require`: fails without it
//! under XVS_REQUIRE_ALL=1, skips loudly by hand). Each
//! test owns its namespaces through [`Netns`], which deletes them on drop,
//! panics included. Every wait is bounded by a deadline.
//!
//! The veth pairs are created with one queue pair: veth otherwise has one
//! rx queue per CPU, and frames on a queue with no bound socket would be
//! dropped (counted as `port_no_socket`).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use etherparse::{
    EtherType, Ethernet2Header, IpNumber, Ipv4Header, NetSlice, PacketBuilder, SlicedPacket,
    TransportSlice, UdpHeader,
};
use xsk_rs::config::{BindFlags, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};
use xvs_bpf::{xsk_zero_copy, AttachFlags, Mode, SnoopKind, XdpProgram};
use xvs_io::xsk::{self, XskConfig, XskPort};
use xvs_tests::{ip_out, on_thread, require_root, veth, Netns};

/// Room kept in every UMEM frame ahead of the kernel's XDP headroom
/// (xsk-rs `frame_headroom`): the largest outer header we push.
const UMEM_HEADROOM: u32 = 128;
const FRAMES: u32 = 256;
const RX_FRAMES: usize = 128;
const RING: u32 = 128;
/// VXLAN over IPv4: Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8.
const VXLAN4_HEADER: usize = 50;
const VXLAN_PORT: u16 = 4789;
const WAIT: Duration = Duration::from_secs(5);

macro_rules! require_root {
    () => {
        if !require_root() {
            return;
        }
    };
}

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

/// Parsed UDP view of an Ethernet frame: (ipv4 header, udp src, udp dst,
/// payload, whether the UDP checksum verifies).
fn udp4(frame: &[u8]) -> Option<(Ipv4Header, u16, u16, Vec<u8>, bool)> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(udp))) = (p.net, p.transport) else {
        return None;
    };
    let ip_h = ip.header().to_header();
    let payload = udp.payload().to_vec();
    let csum_ok = udp
        .to_header()
        .calc_checksum_ipv4(&ip_h, &payload)
        .map(|c| c == udp.checksum())
        .unwrap_or(false);
    Some((
        ip_h,
        udp.source_port(),
        udp.destination_port(),
        payload,
        csum_ok,
    ))
}

const MAC_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x0a, 0x01];
const MAC_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x0b, 0x01];
const MAC_A_S: &str = "02:00:00:00:0a:01";
const MAC_B_S: &str = "02:00:00:00:0b:01";

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

/// A program left attached by a crashed process is replaced on the next
/// attach; a foreign program is refused.
#[test]
fn stale_program_is_replaced_and_drop_detaches() {
    require_root!();
    let a = Netns::new("sa");
    let b = Netns::new("sb");
    veth(&a, "xs0", MAC_A_S, &b, "xs1", MAC_B_S);
    on_thread(|| {
        a.enter();
        let first = XdpProgram::attach("xs0", Mode::Uplink, AttachFlags::GenericOnly).unwrap();
        assert_eq!(first.attach_mode(), xvs_bpf::AttachMode::Generic);
        let stale_id = first.prog_id();
        // Crash: nothing detaches.
        std::mem::forget(first);
        let second = XdpProgram::attach("xs0", Mode::Port, AttachFlags::Auto).unwrap();
        assert_ne!(second.prog_id(), stale_id);
        let shown = ip_out(&["link", "show", "xs0"]);
        assert!(
            shown.contains(&format!("id {}", second.prog_id())),
            "the new program is attached: {shown}"
        );
        drop(second);
        let shown = ip_out(&["link", "show", "xs0"]);
        assert!(!shown.contains("xdp"), "detached on drop: {shown}");
    });
}

/// The outer Ethernet/IPv4/UDP/VXLAN header (VNI 42) for an inner frame
/// of `inner_len` bytes, from `MAC_A`/`src` to `MAC_B`/`dst`.
fn vxlan4_header(src: Ipv4Addr, dst: Ipv4Addr, inner_len: usize) -> Vec<u8> {
    let mut outer = Vec::with_capacity(VXLAN4_HEADER);
    Ethernet2Header {
        source: MAC_A,
        destination: MAC_B,
        ether_type: EtherType::IPV4,
    }
    .write(&mut outer)
    .unwrap();
    let mut ip_h = Ipv4Header::new(
        (8 + 8 + inner_len) as u16,
        64,
        IpNumber::UDP,
        src.octets(),
        dst.octets(),
    )
    .unwrap();
    ip_h.header_checksum = ip_h.calc_header_checksum();
    ip_h.write(&mut outer).unwrap();
    UdpHeader::without_ipv4_checksum(49152, VXLAN_PORT, 8 + inner_len)
        .unwrap()
        .write(&mut outer)
        .unwrap();
    outer.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 42, 0]);
    assert_eq!(outer.len(), VXLAN4_HEADER);
    outer
}

/// Receives through an [`XskPort`] until `n` frames that `keep` accepts
/// arrived (others go back to the fill ring) or the deadline passed.
fn port_recv(port: &mut XskPort, n: usize, keep: impl Fn(&[u8]) -> bool) -> Vec<(u64, u32)> {
    let mut got = Vec::new();
    let mut batch = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < n && Instant::now() < deadline {
        batch.clear();
        port.rx(&mut batch, 100).expect("rx");
        for &(addr, len) in &batch {
            if keep(port.frame(addr, len).unwrap()) {
                got.push((addr, len));
            } else {
                port.fill(&[addr]).unwrap();
            }
        }
    }
    got
}

/// Sends every frame, kicking and reaping completions until all
/// completed; the completed chunks go back to the fill ring. Returns the
/// addresses the completion ring reported.
fn port_send_all(port: &mut XskPort, descs: &[(u64, u32)]) -> Vec<u64> {
    let mut queued = 0;
    let mut done = Vec::new();
    let deadline = Instant::now() + WAIT;
    while done.len() < descs.len() {
        assert!(
            Instant::now() < deadline,
            "tx: {} of {} completed",
            done.len(),
            descs.len()
        );
        if queued < descs.len() {
            queued += port.tx_send(&descs[queued..]).expect("tx_send");
        }
        port.kick().expect("kick");
        let before = done.len();
        if port.complete(&mut done) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let n = port.fill(&done[before..]).unwrap();
        assert_eq!(n, done.len() - before, "fill ring has room");
    }
    done
}

/// Descriptor control through [`XskPort`] (xsk-rs patched with
/// `FrameDesc::set_addr`): frames received on a port get a VXLAN/IPv4
/// header pushed by moving their start back into the headroom (the
/// inner bytes are neither copied nor moved) and the peer kernel's UDP
/// socket on 4789 receives them as VXLAN datagrams; VXLAN datagrams from
/// the peer get their outer header popped by moving the start forward
/// and the peer kernel receives the inner UDP datagrams.
#[test]
fn port_pushes_and_pops_headers_by_moving_the_descriptor_address() {
    require_root!();
    let a = Netns::new("da");
    let b = Netns::new("db");
    veth(&a, "xd0", MAC_A_S, &b, "xd1", MAC_B_S);
    b.ip(&["addr", "add", "198.18.2.2/24", "dev", "xd1"]);
    b.ip(&[
        "neigh",
        "add",
        "198.18.2.1",
        "lladdr",
        MAC_A_S,
        "dev",
        "xd1",
        "nud",
        "permanent",
    ]);
    let a_ip = Ipv4Addr::new(198, 18, 2, 1);
    let b_ip = Ipv4Addr::new(198, 18, 2, 2);
    // Several copy-mode TX batches.
    const N: usize = 100;

    on_thread(|| {
        a.enter();
        let prog = XdpProgram::attach("xd0", Mode::Port, AttachFlags::Auto).expect("attach");
        let cfg = XskConfig {
            frames: 512,
            rx_frames: 256,
            ring: 256,
            frame_headroom: 0,
        };
        let mut port = XskPort::bind("xd0", 0, &prog, cfg).expect("bind");
        eprintln!(
            "desc: XskPort in {} mode, program in {} mode",
            if port.zero_copy() {
                "zero-copy"
            } else {
                "copy"
            },
            prog.attach_mode()
        );

        b.enter();
        let peer = UdpSocket::bind((b_ip, 0)).unwrap();
        peer.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let vxlan_sink = UdpSocket::bind((b_ip, VXLAN_PORT)).unwrap();
        vxlan_sink
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();

        // --- push: move the start back by 50 bytes, write only the header
        for i in 0..N {
            // Sizes from a few bytes to ~1400 (frames of 46 to 1442 bytes).
            let payload = format!("push-{i:03}-{}", "x".repeat(i * 14));
            peer.send_to(payload.as_bytes(), (a_ip, 9000)).unwrap();
        }
        let to_us = |f: &[u8]| udp4(f).is_some_and(|u| u.2 == 9000);
        let got = port_recv(&mut port, N, to_us);
        assert_eq!(got.len(), N, "frames received through AF_XDP");
        let mut inner_frames = Vec::new();
        let mut pushed = Vec::new();
        let mut offsets = std::collections::BTreeSet::new();
        for &(addr, len) in &got {
            offsets.insert(addr % xsk::CHUNK);
            let inner = port.frame(addr, len).unwrap().to_vec();
            let new = addr - VXLAN4_HEADER as u64;
            let new_len = len + VXLAN4_HEADER as u32;
            let mut f = port.frame_mut(new, new_len).unwrap();
            f[..VXLAN4_HEADER].copy_from_slice(&vxlan4_header(a_ip, b_ip, inner.len()));
            assert_eq!(&f[VXLAN4_HEADER..], &inner[..], "inner frame untouched");
            pushed.push((new, new_len));
            inner_frames.push(inner);
        }
        let done = port_send_all(&mut port, &pushed);
        let mut sent_from: Vec<u64> = done;
        sent_from.sort();
        let mut expect: Vec<u64> = pushed.iter().map(|d| d.0).collect();
        expect.sort();
        assert_eq!(
            sent_from, expect,
            "completions report the moved addresses the frames left from"
        );
        let mut seen = Vec::new();
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + WAIT;
        while seen.len() < N && Instant::now() < deadline {
            if let Ok((n, from)) = vxlan_sink.recv_from(&mut buf) {
                assert_eq!(from, SocketAddr::from((a_ip, 49152)));
                assert_eq!(&buf[..8], &[0x08, 0, 0, 0, 0, 0, 42, 0], "VXLAN, VNI 42");
                seen.push(buf[8..n].to_vec());
            }
        }
        eprintln!(
            "desc: push: {N} frames received at chunk offsets {offsets:?}, sent from 50 bytes \
             earlier; the peer kernel received {} VXLAN datagrams",
            seen.len()
        );
        seen.sort();
        inner_frames.sort();
        assert_eq!(seen, inner_frames, "each frame arrives whole inside VXLAN");

        // --- pop: VXLAN datagrams in, move the start forward by 50 bytes
        let tunnel = UdpSocket::bind((b_ip, 0)).unwrap();
        let mut inner_payloads = Vec::new();
        for i in 0..N {
            let payload = format!("pop-{i:03}-{}", "y".repeat(i * 14));
            let mut inner = Vec::new();
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv4(a_ip.octets(), b_ip.octets(), 64)
                .udp(7000, peer.local_addr().unwrap().port())
                .write(&mut inner, payload.as_bytes())
                .unwrap();
            let mut dgram = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
            dgram.extend_from_slice(&inner);
            tunnel.send_to(&dgram, (a_ip, VXLAN_PORT)).unwrap();
            inner_payloads.push(payload.into_bytes());
        }
        let is_vxlan = |f: &[u8]| udp4(f).is_some_and(|u| u.2 == VXLAN_PORT);
        let got = port_recv(&mut port, N, is_vxlan);
        assert_eq!(got.len(), N, "VXLAN datagrams received through AF_XDP");
        let popped: Vec<(u64, u32)> = got
            .iter()
            .map(|&(addr, len)| (addr + VXLAN4_HEADER as u64, len - VXLAN4_HEADER as u32))
            .collect();
        port_send_all(&mut port, &popped);
        let mut echoed = Vec::new();
        let deadline = Instant::now() + WAIT;
        while echoed.len() < N && Instant::now() < deadline {
            if let Ok((n, from)) = peer.recv_from(&mut buf) {
                assert_eq!(from, SocketAddr::from((a_ip, 7000)));
                echoed.push(buf[..n].to_vec());
            }
        }
        eprintln!(
            "desc: pop: {N} VXLAN datagrams received, sent from 50 bytes later; the peer \
             kernel received {} inner UDP datagrams",
            echoed.len()
        );
        echoed.sort();
        inner_payloads.sort();
        assert_eq!(echoed, inner_payloads, "each inner datagram arrives intact");

        // --- the checks: nothing outside an owned chunk is accepted
        let (addr, len) = got[0];
        assert!(
            port.frame(addr, len).is_err(),
            "a chunk back in the fill ring is the kernel's"
        );
        let base = port.alloc().expect("TX pool chunk");
        assert!(port.frame_mut(base, xsk::CHUNK as u32).is_ok());
        assert!(
            port.frame_mut(base + 1, xsk::CHUNK as u32).is_err(),
            "crosses the chunk"
        );
        assert!(
            port.tx_send(&[(base, 60), (base + 100, 60)]).is_err(),
            "one chunk twice"
        );
        assert!(
            port.frame_mut(base, 60).is_ok(),
            "a refused batch keeps its chunks ours"
        );
        // chunks_mut: whole owned chunks, by base address, no repeats.
        let other = port.alloc().expect("TX pool chunk");
        assert!(port.chunks_mut(&[base + 1]).is_err(), "not a chunk start");
        assert!(port.chunks_mut(&[base, base]).is_err(), "a chunk twice");
        assert!(
            port.chunks_mut(&[got[0].0 / xsk::CHUNK * xsk::CHUNK])
                .is_err(),
            "a chunk in the fill ring"
        );
        let region = port.region();
        let mut lent = port.chunks_mut(&[base, other]).expect("two owned chunks");
        assert_eq!(lent[0].len(), xsk::CHUNK as usize);
        lent[1][300] = 0x5a;
        let addrs: Vec<Option<u64>> = lent.iter().map(|c| region.addr_of(c.as_ptr())).collect();
        assert_eq!(addrs, vec![Some(base), Some(other)]);
        assert_eq!(port.frame(other + 300, 1).unwrap(), &[0x5a]);

        let c = prog.counters().unwrap();
        eprintln!("desc: counters {c:?}");
        assert!(c.port_redirected >= 2 * N as u64, "{c:?}");
        a.enter();
        drop(port);
        drop(prog);
    });
}
