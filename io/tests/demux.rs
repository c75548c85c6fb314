//! Guest ports with no XDP program: frames reach the worker tagged with
//! their ingress port through one demux socket, and leave by transmit-only
//! sockets on interfaces that have no program at all.
//!
//! ```text
//! ns hv: mn ──veth── mf (xvs_port, demux socket)      the miss pair
//!        ga (no XDP, TX-only socket) ──veth── va (ns dmx-a)   guest A
//!        gb (no XDP, TX-only socket) ──veth── vb (ns dmx-b)   guest B
//! worker: br0 = {ga, gb}, static MACs A on ga, B on gb; ARP suppression
//!         of 10.0.0.2 (at B's MAC)
//! ```
//!
//! S-tagged frames are written into `mn` by an AF_PACKET socket (what the
//! guest ports' TC program will do) and read at `va`, `vb` and `mn` by
//! AF_PACKET sockets. The sockets are bound through `WorkerCmd::Add` with
//! the worker's own loop running, as the daemon does; the traffic is then
//! driven one `poll_once` at a time, so that a burst is one batch.
//!
//! Needs root (namespaces, BPF) (`xvs_tests::require`). The namespaces
//! are deleted on drop (panics included); every wait is bounded.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xvs_bpf::{AttachFlags, Mode, XdpProgram};
use xvs_config::{
    BridgeConfig, Config, LookupConfig, LookupProviderConfig, OverlayAddrConfig, PortConfig,
    StaticFdbConfig,
};
use xvs_dataplane::control::Control;
use xvs_io::worker::{SocketKind, SocketRole, WorkerCmd};
use xvs_io::xsk::{XskConfig, XskSet};
use xvs_io::Worker;
use xvs_tests::{enter_netns, on_thread, require_root, veth, Netns};
use xvs_types::{MacAddr, MissAction, PortNo};

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0xa, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0xb, 1];
/// Known to the bridge only once the lookup is answered.
const MAC_C: [u8; 6] = [2, 0, 0, 0, 0xc, 1];
/// The test frames' ethertype (IEEE local experimental): nothing else
/// sends it.
const ETH_TEST: u16 = 0x88b5;
const MARK: &[u8; 8] = b"xvsdemux";

/// br0 = {ga, gb}, learning off (only the static MACs), answering ARP
/// for 10.0.0.2 (B's address) itself, holding frames to unknown MACs for
/// a lookup; with `c_on_gb`, MAC C is on gb too (the lookup's answer).
fn config(c_on_gb: bool) -> Config {
    let mut br = BridgeConfig::new("br0");
    br.learning = false;
    br.arp_suppress = true;
    let mut lookup = LookupConfig::new(LookupProviderConfig::External, MissAction::Hold);
    lookup.hold_ms = 1000;
    br.lookup = Some(lookup);
    let mut fdb = vec![
        StaticFdbConfig::new("br0", MacAddr(MAC_A), "ga", None).into(),
        StaticFdbConfig::new("br0", MacAddr(MAC_B), "gb", None).into(),
    ];
    if c_on_gb {
        fdb.push(StaticFdbConfig::new("br0", MacAddr(MAC_C), "gb", None).into());
    }
    let mut cfg = Config {
        bridges: vec![br.into()],
        ports: vec![
            PortConfig::new("ga", "br0").into(),
            PortConfig::new("gb", "br0").into(),
        ],
        fdb,
        addrs: vec![OverlayAddrConfig {
            bridge: "br0".into(),
            vlan: 0,
            ip: "10.0.0.2".parse().expect("literal"),
            mac: MacAddr(MAC_B),
            owner: None,
        }
        .into()],
        ..Default::default()
    };
    cfg.assign_port_numbers();
    cfg
}

fn control() -> Control {
    let mut ctl = Control::new();
    ctl.apply(config(false)).expect("valid config");
    ctl
}

/// An untagged test frame `dst` ← `src` numbered `seq`, 60 bytes.
fn frame(dst: [u8; 6], src: [u8; 6], seq: u32) -> Vec<u8> {
    let mut f = [dst, src].concat();
    f.extend_from_slice(&ETH_TEST.to_be_bytes());
    f.extend_from_slice(MARK);
    f.extend_from_slice(&seq.to_be_bytes());
    f.resize(60, 0x5a);
    f
}

/// `f` with an 802.1ad tag of VID `vid` after the MAC addresses.
fn stag(f: &[u8], vid: u16) -> Vec<u8> {
    let mut t = f.to_vec();
    t.splice(12..12, [0x88, 0xa8, (vid >> 8) as u8, vid as u8]);
    t
}

/// An ARP request from A (10.0.0.1) for 10.0.0.2, broadcast.
fn arp_request() -> Vec<u8> {
    let mut f = [[0xff; 6], MAC_A].concat();
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&[10, 0, 0, 1]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[10, 0, 0, 2]);
    f.resize(60, 0);
    f
}

/// An AF_PACKET socket on `ifname` (of the calling thread's namespace)
/// seeing every frame, with a short receive timeout.
fn packet_socket(ifname: &str) -> OwnedFd {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket creation; the fd is owned right below.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
    assert!(raw >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
    // SAFETY: `raw` is a new fd nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let name = CString::new(ifname).expect("name");
    // SAFETY: `name` is a valid C string for the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert!(index != 0, "{ifname}: no such interface");
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as i32;
    // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "bind {ifname}: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 20_000,
    };
    // SAFETY: `tv` is a valid timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    fd
}

/// An AF_PACKET socket on `ifname` in namespace `ns`.
fn packet_socket_in(ns: &Netns, ifname: &str) -> OwnedFd {
    on_thread(|| {
        ns.enter();
        packet_socket(ifname)
    })
}

fn send(fd: &OwnedFd, f: &[u8]) {
    // SAFETY: `f` is valid for reads of its length; the socket is bound
    // to its interface.
    let n = unsafe { libc::send(fd.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
    assert_eq!(
        n,
        f.len() as isize,
        "send: {}",
        std::io::Error::last_os_error()
    );
}

/// Frames that arrived on `fd`'s interface (not those it sent) until none
/// came for a while, bounded.
fn received(fd: &OwnedFd) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut quiet = 0;
    let mut buf = [0u8; 2048];
    while quiet < 5 && Instant::now() < deadline {
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf` and `from` are valid for writes of the sizes passed.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&raw mut from).cast(),
                &mut len,
            )
        };
        if n < 0 {
            quiet += 1;
            continue;
        }
        quiet = 0;
        if from.sll_pkttype != libc::PACKET_OUTGOING {
            out.push(buf[..n as usize].to_vec());
        }
    }
    out
}

/// Only the frames of this test.
fn ours(frames: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    frames
        .into_iter()
        .filter(|f| f.len() >= 22 && f[12..14] == ETH_TEST.to_be_bytes() && &f[14..22] == MARK)
        .collect()
}

/// Rounds of the worker until nothing is in flight on any TX ring
/// (completions reaped), bounded.
fn settle(w: &mut Worker) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        w.poll_once().expect("poll");
        if w.umem_use().tx == 0 || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Every chunk accounted for: `free + held + kernel == chunks`, the
/// kernel's all in fill rings or on TX rings, and no TX-only socket's
/// fill ring holding any.
fn check_umem(w: &Worker) {
    let u = w.umem_use();
    assert_eq!(u.free + u.held + u.kernel, u.chunks, "{u:?}");
    assert_eq!(u.kernel, u.fill + u.tx, "{u:?}");
    for p in w.ports().filter(|p| p.kind == SocketKind::TxOnly) {
        assert_eq!(w.set().in_fill(p.sock), 0, "TX-only socket {p:?}");
        assert_eq!(p.fill_target, 0, "{p:?}");
    }
}

#[test]
fn demux_and_tx_only_sockets_carry_tagged_frames_to_their_ports() {
    if !require_root() {
        return;
    }
    let hv = Netns::new("dmx-hv");
    let gna = Netns::new("dmx-a");
    let gnb = Netns::new("dmx-b");
    // Nothing but the test's frames on the miss pair: an IPv6 router
    // solicitation into `mf` would be an untagged frame there.
    for ns in [&hv, &gna, &gnb] {
        ns.no_ipv6_on_new_interfaces();
    }
    veth(
        &hv,
        "mn",
        "02:00:00:00:0e:01",
        &hv,
        "mf",
        "02:00:00:00:0e:02",
    );
    veth(
        &gna,
        "va",
        "02:00:00:00:0a:02",
        &hv,
        "ga",
        "02:00:00:00:0a:03",
    );
    veth(
        &gnb,
        "vb",
        "02:00:00:00:0b:02",
        &hv,
        "gb",
        "02:00:00:00:0b:03",
    );

    let mut ctl = control();
    let snap = ctl.snapshot();
    let port_a = snap.port_by_name("ga").expect("ga");
    let port_b = snap.port_by_name("gb").expect("gb");
    let unknown: PortNo = 999;
    assert!(snap.port(unknown).is_none());
    let at_va = packet_socket_in(&gna, "va");
    let at_vb = packet_socket_in(&gnb, "vb");

    on_thread(|| {
        hv.enter();
        let prog = XdpProgram::attach("mf", Mode::Port, AttachFlags::Auto).expect("attach");
        let set = XskSet::new_anchored(XskConfig {
            frames: 1024,
            rx_frames: 256,
            ring: 512,
            frame_headroom: 0,
            jumbo_slots: 0,
        })
        .expect("UMEM");
        let (cmds, cmd_rx) = crossbeam_channel::bounded(8);
        let mut w = Worker::new(0, set, Vec::new(), ctl.handle(), None).with_commands(cmd_rx);

        // The sockets, bound by the worker's own loop as the daemon has it do.
        let stop = AtomicBool::new(false);
        std::thread::scope(|sc| {
            let hv_name = hv.name.clone();
            let (w, stop) = (&mut w, &stop);
            let looping = sc.spawn(move || {
                enter_netns(&hv_name);
                w.run(stop).expect("worker loop")
            });
            let add = |no, key, role| {
                let (reply, done) = crossbeam_channel::bounded(1);
                cmds.send(WorkerCmd::Add {
                    no,
                    queue: 0,
                    key,
                    role,
                    // Only the demux socket receives.
                    sockets: 1,
                    reply,
                })
                .expect("worker");
                done.recv_timeout(Duration::from_secs(5))
                    .expect("an answer")
                    .unwrap_or_else(|e| panic!("bind {key}: {e}"));
            };
            add(
                xvs_types::NO_PORT,
                1,
                SocketRole::Demux(prog.registrar().expect("registrar")),
            );
            add(
                port_a,
                2,
                SocketRole::TxOnly {
                    ifname: "ga".into(),
                },
            );
            add(
                port_b,
                3,
                SocketRole::TxOnly {
                    ifname: "gb".into(),
                },
            );
            stop.store(true, Ordering::Relaxed);
            looping.join().expect("worker thread");
        });
        let kinds: Vec<_> = w.ports().map(|p| (p.kind, p.no)).collect();
        assert_eq!(
            kinds,
            [
                (SocketKind::Demux, xvs_types::NO_PORT),
                (SocketKind::TxOnly, port_a),
                (SocketKind::TxOnly, port_b)
            ]
        );
        let demux = w.ports().next().expect("demux").sock;
        assert!(w.set().in_fill(demux) > 0, "the demux socket receives");
        check_umem(&w);

        let at_mn = packet_socket("mn");
        // Whatever arrived while binding is not this test's.
        let _ = (received(&at_va), received(&at_vb), received(&at_mn));

        // 1. One burst, ports interleaved in runs, bad frames among them.
        let order = [
            port_a, port_a, port_b, port_a, port_b, port_b, port_b, port_a, port_a, port_a, port_b,
            port_a, port_b, port_b, port_a, port_b,
        ];
        let mut to_va = Vec::new();
        let mut to_vb = Vec::new();
        let mut burst = Vec::new();
        for (i, &p) in order.iter().enumerate() {
            let seq = i as u32;
            let f = if p == port_a {
                frame(MAC_B, MAC_A, seq)
            } else {
                frame(MAC_A, MAC_B, seq)
            };
            burst.push(stag(&f, p));
            if p == port_a {
                to_vb.push(f);
            } else {
                to_va.push(f);
            }
            // Bad ones in between: untagged, a C-tag, cut short, a port
            // the snapshot does not have.
            match i {
                2 => burst.push(frame(MAC_B, MAC_A, 100)),
                5 => {
                    let mut c = stag(&frame(MAC_B, MAC_A, 101), port_a);
                    c[12..14].copy_from_slice(&[0x81, 0x00]);
                    burst.push(c);
                }
                8 => burst.push(stag(&frame(MAC_B, MAC_A, 102), port_a)[..17].to_vec()),
                11 => burst.push(stag(&frame(MAC_B, MAC_A, 103), unknown)),
                _ => {}
            }
        }
        let before = w.counters;
        for f in &burst {
            send(&at_mn, f);
        }
        // All of it on the demux socket's rx ring before the worker looks.
        std::thread::sleep(Duration::from_millis(200));
        w.poll_once().expect("poll");
        settle(&mut w);
        let c = w.counters;
        assert_eq!(c.batches - before.batches, 1, "one burst, one batch: {c:?}");
        assert_eq!(c.rx_frames - before.rx_frames, burst.len() as u64, "{c:?}");
        assert_eq!(c.demux_bad - before.demux_bad, 4, "{c:?}");
        assert_eq!(c.tx_frames - before.tx_frames, order.len() as u64, "{c:?}");
        assert_eq!(c.unknown_port + c.tx_ring_full, 0, "{c:?}");
        let got_va = ours(received(&at_va));
        let got_vb = ours(received(&at_vb));
        assert_eq!(got_va, to_va, "guest A: B's frames, untagged, in order");
        assert_eq!(got_vb, to_vb, "guest B: A's frames, untagged, in order");
        assert!(
            ours(received(&at_mn)).is_empty(),
            "nothing back into the miss pair"
        );
        check_umem(&w);

        // 2. Out of its own ingress port: an ARP request from A answered
        // by the pipeline goes back by ga's TX-only socket, not the demux
        // socket it came in by.
        let before = w.counters;
        let suppressed = w.state().arp_suppressed;
        send(&at_mn, &stag(&arp_request(), port_a));
        let deadline = Instant::now() + Duration::from_secs(2);
        while w.counters.rx_frames == before.rx_frames && Instant::now() < deadline {
            w.poll_once().expect("poll");
            std::thread::sleep(Duration::from_millis(1));
        }
        settle(&mut w);
        assert_eq!(w.state().arp_suppressed, suppressed + 1);
        let replies: Vec<_> = received(&at_va)
            .into_iter()
            .filter(|f| f.len() >= 42 && f[12..14] == [0x08, 0x06])
            .collect();
        assert_eq!(replies.len(), 1, "one ARP reply at guest A: {replies:02x?}");
        let r = &replies[0];
        assert_eq!(&r[..6], &MAC_A, "to A");
        assert_eq!(&r[20..22], &[0, 2], "a reply");
        assert_eq!((&r[22..28], &r[28..32]), (&MAC_B[..], &[10, 0, 0, 2][..]));
        assert!(received(&at_vb).iter().all(|f| f[12..14] != [0x08, 0x06]));
        assert!(
            received(&at_mn).is_empty(),
            "nothing back into the miss pair"
        );
        assert_eq!(w.counters.demux_bad, before.demux_bad);
        assert_eq!(w.counters.unknown_port, 0);

        // 3. Held for a lookup: a frame from A to C, unknown, waits in
        // its chunk; once a snapshot knows C is on gb it leaves by gb's
        // TX-only socket, untagged, as it came.
        let held = w.state().held;
        let to_c = frame(MAC_C, MAC_A, 200);
        send(&at_mn, &stag(&to_c, port_a));
        let deadline = Instant::now() + Duration::from_secs(2);
        while w.state().held == held && Instant::now() < deadline {
            w.poll_once().expect("poll");
            std::thread::sleep(Duration::from_millis(1));
        }
        // (Counted again each time it is run and still misses.)
        assert!(w.state().held > held, "held for the lookup");
        assert_eq!(w.umem_use().held, 1);
        assert!(ours(received(&at_vb)).is_empty(), "not before the answer");
        ctl.apply(config(true)).expect("C on gb");
        w.poll_once().expect("poll");
        settle(&mut w);
        assert_eq!(w.umem_use().held, 0, "{:?}", w.state().drops);
        assert_eq!(ours(received(&at_vb)), [to_c], "the held frame, untagged");
        assert!(ours(received(&at_va)).is_empty());

        // Idle rounds top fill rings up: still nothing for the TX-only ones.
        for _ in 0..10 {
            w.poll_once().expect("poll");
        }
        check_umem(&w);
        let report = w.report();
        assert_eq!(report.counters.demux_bad, 4, "reported");
        drop(w);
        drop(prog);
    });
}
