//! Descriptor control through [`XskPort`] on real packets: a veth pair
//! between two network namespaces, our port program on one end, the
//! kernel on the other as the independent peer (see `afxdp.rs`).
//!
//! Needs root (namespaces, BPF) (`xvs_tests::require`: fails without it
//! under XVS_REQUIRE_ALL=1, skips loudly by hand). Every wait is bounded.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{require_root, udp4, MAC_A, MAC_A_S, MAC_B, MAC_B_S, VXLAN4_HEADER, VXLAN_PORT, WAIT};
use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, PacketBuilder, UdpHeader};
use xvs_bpf::{AttachFlags, Mode, XdpProgram};
use xvs_io::xsk::{self, XskConfig, XskPort};
use xvs_tests::{on_thread, veth, Netns};

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
            jumbo_slots: 0,
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
        let mut offsets = BTreeSet::new();
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
