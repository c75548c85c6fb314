//! The fast path's TC executor writes the bytes the pipeline writes. On
//! the way out (`xvs_tc_port`), for random inner frames (TCP and UDP over IPv4 and IPv6, any
//! length up to 1,400 bytes, any TOS/ECN), VXLAN and Geneve templates over
//! IPv4 and IPv6 underlays (fixed and inherited TOS), and random flow
//! hashes, the frame `tunnel::Template::push` builds and the frame
//! `xvs_tc_port` returns from `BPF_PROG_TEST_RUN` are equal byte for byte,
//! and the program counts what it sent. Frames it cannot describe, and
//! flows it has no decision for, go on untouched. On the way in
//! (`xvs_tc_uplink`), for valid and mutated tunnel packets: whatever the
//! program decapsulates, the pipeline's pop accepts, with the same
//! bytes; and every valid packet of an installed flow is taken.
//!
//! Needs root (BPF); `xvs_tests::require_root` fails without it under
//! XVS_REQUIRE_ALL=1.

use std::net::IpAddr;

use etherparse::PacketBuilder;
use proptest::prelude::*;
use xvs_bpf::tc::{TcAction, TcFlows, TcKey, TcProgram, TcTunnelKey, TC_ACT_OK, TC_ACT_REDIRECT};
use xvs_dataplane::frame::Frame;
use xvs_dataplane::tunnel::{pop, Encap, PushMeta, Template, TunnelPort, TunnelSpec, TunnelTable};
use xvs_dataplane::wire::GeneveOptionRepr;
use xvs_tests::require_root;
use xvs_types::{MacAddr, TunnelKind};

const IFINDEX: u32 = 1;
const UPLINK: u32 = 1;
const VM: u32 = 2;
const SRC: [u8; 6] = [2, 0, 0, 0, 0x0a, 1];
const DST: [u8; 6] = [2, 0, 0, 0, 0x0b, 1];

fn encap(kind: TunnelKind, tos: Option<u8>, opts: bool) -> Encap {
    Encap {
        kind,
        vni: 0x12_3456,
        dst_port: if kind == TunnelKind::Vxlan {
            4789
        } else {
            6081
        },
        ttl: 64,
        tos,
        df: true,
        csum: false,
        zero_csum6: true,
        src_port_range: (49152, 65535),
        geneve_opts: if opts {
            vec![GeneveOptionRepr {
                class: 0x0102,
                typ: 0x80,
                data: vec![1, 2, 3, 4, 5, 6, 7, 8],
            }]
        } else {
            Vec::new()
        },
    }
}

fn template(e: &Encap, v6: bool) -> Template {
    let (local, remote): (IpAddr, IpAddr) = if v6 {
        (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        )
    } else {
        ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap())
    };
    Template::build(
        e,
        local,
        remote,
        MacAddr([2, 0, 0, 0, 0, 1]),
        MacAddr([2, 0, 0, 0, 0, 2]),
    )
    .expect("template")
}

/// An inner frame: TCP or UDP over IPv4 or IPv6 with `tos`.
fn inner(v6: bool, tcp: bool, tos: u8, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(SRC, DST);
    let b = if v6 {
        let mut h = etherparse::Ipv6Header {
            source: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            destination: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            hop_limit: 64,
            ..Default::default()
        };
        h.traffic_class = tos;
        b.ip(etherparse::IpHeaders::Ipv6(h, Default::default()))
    } else {
        let mut h = etherparse::Ipv4Header::new(
            0,
            64,
            etherparse::IpNumber::UDP,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
        )
        .unwrap();
        h.dscp = etherparse::IpDscp::try_new(tos >> 2).unwrap();
        h.ecn = etherparse::IpEcn::try_new(tos & 3).unwrap();
        b.ip(etherparse::IpHeaders::Ipv4(h, Default::default()))
    };
    let mut v = Vec::new();
    if tcp {
        b.tcp(40000, 5201, 7, 65535)
            .ack(9)
            .write(&mut v, payload)
            .unwrap();
    } else {
        b.udp(5000, 5001).write(&mut v, payload).unwrap();
    }
    v
}

/// The key the program must compute for `f` (an independent reading of
/// the same headers).
fn key(f: &[u8]) -> TcKey {
    let mut k = TcKey {
        ifindex: IFINDEX,
        dl_dst: f[0..6].try_into().unwrap(),
        dl_src: f[6..12].try_into().unwrap(),
        eth_type: [f[12], f[13]],
        ..TcKey::default()
    };
    let l4 = if f[12..14] == [0x08, 0x00] {
        k.ip_proto = f[14 + 9];
        k.ip_tos = f[15];
        k.nw_src[10..12].copy_from_slice(&[0xff, 0xff]);
        k.nw_src[12..].copy_from_slice(&f[26..30]);
        k.nw_dst[10..12].copy_from_slice(&[0xff, 0xff]);
        k.nw_dst[12..].copy_from_slice(&f[30..34]);
        34
    } else {
        k.ip_proto = f[14 + 6];
        k.ip_tos = (f[14] << 4) | (f[15] >> 4);
        k.nw_src.copy_from_slice(&f[22..38]);
        k.nw_dst.copy_from_slice(&f[38..54]);
        54
    };
    k.tp_src = [f[l4], f[l4 + 1]];
    k.tp_dst = [f[l4 + 2], f[l4 + 3]];
    k
}

/// What the pipeline's push makes of `f`.
fn reference(t: &Template, f: &[u8], tos: u8, hash: u64) -> Vec<u8> {
    let mut buf = vec![0u8; 256 + f.len()];
    buf[256..].copy_from_slice(f);
    let mut frame = Frame::new(&mut buf, 256, f.len()).unwrap();
    t.push(
        &mut frame,
        &PushMeta {
            flow_hash: hash,
            inner_tos: tos,
            ip_id: 0,
        },
    )
    .unwrap();
    frame.data().to_vec()
}

fn action(t: &Template, hash: u64) -> TcAction {
    let o = t.offload().expect("offloadable template");
    // A jumbo underlay: every frame here fits (xvsd's tests/fastpath.rs
    // checks the MTU).
    TcAction::push(UPLINK, &o, t.src_port(hash), 9000).unwrap()
}

#[test]
fn tc_push_is_byte_identical_to_the_pipelines() {
    if !require_root() {
        return;
    }
    // The runner takes an Fn; test_run needs the program mutably.
    let flows = std::cell::RefCell::new(TcFlows::load().expect("load the TC program"));
    let templates: Vec<Template> = [
        (TunnelKind::Vxlan, None, false),
        (TunnelKind::Vxlan, Some(0x28), false),
        (TunnelKind::Geneve, None, false),
        (TunnelKind::Geneve, Some(0xb8), true),
    ]
    .into_iter()
    .flat_map(|(k, tos, opts)| {
        let e = encap(k, tos, opts);
        [template(&e, false), template(&e, true)]
    })
    .collect();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(
                0..templates.len(),
                any::<bool>(),
                any::<bool>(),
                any::<u8>(),
                proptest::collection::vec(any::<u8>(), 0..1400),
                any::<u64>(),
            ),
            |(ti, v6, tcp, tos, payload, hash)| {
                let t = &templates[ti];
                let f = inner(v6, tcp, tos, &payload);
                let k = key(&f);
                let mut flows = flows.borrow_mut();
                flows.insert(&k, &action(t, hash)).unwrap();
                let (ret, out) = flows.test_run(TcProgram::Port, &f, IFINDEX).unwrap();
                prop_assert_eq!(ret, TC_ACT_REDIRECT);
                prop_assert_eq!(out, reference(t, &f, tos, hash));
                let a = flows.get(&k).unwrap().expect("still installed");
                prop_assert_eq!(a.packets, 1);
                prop_assert!(flows.remove(&k).unwrap());
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn misses_and_frames_it_cannot_describe_go_on_untouched() {
    if !require_root() {
        return;
    }
    let mut flows = TcFlows::load().expect("load the TC program");
    let t = template(&encap(TunnelKind::Vxlan, None, false), false);
    let f = inner(false, true, 0, b"payload");
    let (ret, out) = flows.test_run(TcProgram::Port, &f, IFINDEX).unwrap();
    assert_eq!((ret, &out), (TC_ACT_OK, &f), "no decision: a miss");
    let k = key(&f);
    flows.insert(&k, &action(&t, 7)).unwrap();
    let mut other_port = k;
    other_port.tp_dst = [0, 80];
    flows.remove(&k).unwrap();
    flows.insert(&other_port, &action(&t, 7)).unwrap();
    let (ret, out) = flows.test_run(TcProgram::Port, &f, IFINDEX).unwrap();
    assert_eq!((ret, &out), (TC_ACT_OK, &f), "another flow's decision");
    // ARP, and an IPv4 fragment of an installed flow: not described.
    let mut frag = f.clone();
    frag[20] = 0x20;
    flows.insert(&k, &action(&t, 7)).unwrap();
    let (ret, _) = flows.test_run(TcProgram::Port, &frag, IFINDEX).unwrap();
    assert_eq!(ret, TC_ACT_OK, "a fragment");
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&SRC);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    let (ret, out) = flows.test_run(TcProgram::Port, &arp, IFINDEX).unwrap();
    assert_eq!((ret, &out), (TC_ACT_OK, &arp));
}

/// On a guest port with a miss pair, what the program does not take goes
/// to the pipeline: redirected (the tag is pushed as the skb's VLAN tag,
/// which `BPF_PROG_TEST_RUN` does not hand back, so the live tests check
/// it in the frames) and counted; a port without an entry keeps the
/// stack's path.
#[test]
fn misses_of_a_port_with_a_miss_pair_are_redirected_and_counted() {
    if !require_root() {
        return;
    }
    let mut flows = TcFlows::load().expect("load the TC program");
    flows.set_port(IFINDEX, 42, 99).unwrap();
    let f = inner(false, true, 0, b"payload");
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&SRC);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    for frame in [&f, &arp] {
        let (ret, out) = flows.test_run(TcProgram::Port, frame, IFINDEX).unwrap();
        assert_eq!((ret, &out), (TC_ACT_REDIRECT, frame));
    }
    let p = flows.port(IFINDEX).unwrap().unwrap();
    assert_eq!((p.port_no, p.miss_ifindex), (42, 99));
    assert_eq!((p.misses, p.miss_errors), (2, 0));
    let (ret, _) = flows.test_run(TcProgram::Port, &f, IFINDEX + 1).unwrap();
    assert_eq!(ret, TC_ACT_OK, "another port, without a miss pair");
    // A decided flow is still the fast path's.
    let t = template(&encap(TunnelKind::Vxlan, None, false), false);
    flows.insert(&key(&f), &action(&t, 7)).unwrap();
    let (ret, out) = flows.test_run(TcProgram::Port, &f, IFINDEX).unwrap();
    assert_eq!(ret, TC_ACT_REDIRECT);
    assert_eq!(out, reference(&t, &f, 0, 7));
    assert_eq!(flows.port(IFINDEX).unwrap().unwrap().misses, 2);
    assert_eq!(flows.entries::<TcKey>().len(), 1);
    assert_eq!(flows.flush(), 1);
    assert!(flows.entries::<TcKey>().is_empty());
    assert!(flows.unset_port(IFINDEX).unwrap());
    assert!(!flows.unset_port(IFINDEX).unwrap());
    let (ret, _) = flows.test_run(TcProgram::Port, &f, IFINDEX).unwrap();
    assert_eq!(ret, TC_ACT_OK);
}

/// On a real interface: the program goes on the ingress in a clsact
/// qdisc, is gone when its attachment is dropped, and goes on again.
#[test]
fn attaches_on_ingress_and_detaches_on_drop() {
    if !require_root() {
        return;
    }
    let ns = xvs_tests::Netns::new("tcat");
    ns.ip(&["link", "add", "a0", "type", "veth", "peer", "name", "b0"]);
    ns.ip(&["link", "set", "a0", "up"]);
    let tc = |args: &[&str]| String::from_utf8_lossy(&ns.exec("tc", args).stdout).into_owned();
    xvs_tests::on_thread(|| {
        ns.enter();
        let flows = TcFlows::load().expect("load the TC program");
        let a0 = xvs_bpf::ifindex("a0").expect("a0");
        let att = flows.attach(TcProgram::Port, a0).expect("attach");
        let shown = tc(&["filter", "show", "dev", "a0", "ingress"]);
        assert!(shown.contains("xvs_tc_port"), "{shown}");
        drop(att);
        let shown = tc(&["filter", "show", "dev", "a0", "ingress"]);
        assert!(!shown.contains("xvs_tc_port"), "{shown}");
        let _again = flows
            .attach(TcProgram::Port, a0)
            .expect("attach again, the qdisc there");
        let shown = tc(&["filter", "show", "dev", "a0", "ingress"]);
        assert!(shown.contains("xvs_tc_port"), "{shown}");
    });
}

/// The outer packet's decapsulation key, as the pipeline would install it
/// for the flow of `pkt` (a valid tunnel packet; `inner_at` where its inner
/// frame starts).
fn tunnel_key(pkt: &[u8], v6: bool) -> TcTunnelKey {
    let (udp, src, dst) = if v6 {
        (54, &pkt[22..38], &pkt[38..54])
    } else {
        (34, &pkt[26..30], &pkt[30..34])
    };
    let mut k = TcTunnelKey::default();
    let put = |out: &mut [u8; 16], a: &[u8]| {
        if a.len() == 4 {
            out[10..12].copy_from_slice(&[0xff, 0xff]);
            out[12..].copy_from_slice(a);
        } else {
            out.copy_from_slice(a);
        }
    };
    put(&mut k.outer_src, src);
    put(&mut k.outer_dst, dst);
    k.udp_dst = [pkt[udp + 2], pkt[udp + 3]];
    k.tun_hdr.copy_from_slice(&pkt[udp + 8..udp + 16]);
    k.inner = key(&pkt[udp + 16..]);
    k.inner.ifindex = 0;
    k
}

/// What a frame can have done to it on the way; each but `Keep` is
/// something the pipeline's pop rejects or treats in a way the TC pop
/// must not copy (so it must miss), or a tunnel header it must match as
/// it is.
#[derive(Debug, Clone, Copy)]
enum Mutation {
    Keep,
    /// A VXLAN reserved bit (ignored by pop: a different flow key here).
    Reserved,
    /// The VNI.
    Vni,
    /// The outer IPv4 header checksum.
    IpChecksum,
    /// CE on the outer header (ECN decapsulation is the pipeline's).
    Ce,
    /// A non-zero UDP checksum (the tunnel port does not verify it: pop
    /// and the TC program both ignore it).
    UdpChecksum,
    /// Another UDP destination port.
    Port,
    /// Another outer destination (not our VTEP).
    Dst,
}

const MUTATIONS: [Mutation; 8] = [
    Mutation::Keep,
    Mutation::Reserved,
    Mutation::Vni,
    Mutation::IpChecksum,
    Mutation::Ce,
    Mutation::UdpChecksum,
    Mutation::Port,
    Mutation::Dst,
];

fn mutate(pkt: &mut [u8], v6: bool, m: Mutation) {
    let udp = if v6 { 54 } else { 34 };
    match m {
        Mutation::Keep => {}
        Mutation::Reserved => pkt[udp + 8 + 1] ^= 0x01,
        Mutation::Vni => pkt[udp + 8 + 6] ^= 0x01,
        Mutation::IpChecksum if !v6 => pkt[24] ^= 0x01,
        Mutation::IpChecksum => pkt[22] ^= 0x01,
        Mutation::Ce if v6 => pkt[15] |= 0x30,
        Mutation::Ce => {
            // CE with the checksum kept right: only the ECN is wrong here.
            let old = u16::from_be_bytes([pkt[14], pkt[15]]);
            pkt[15] |= 0x03;
            let new = u16::from_be_bytes([pkt[14], pkt[15]]);
            let c = !u16::from_be_bytes([pkt[24], pkt[25]]);
            let s = u32::from(c) + u32::from(!old) + u32::from(new);
            let s = (s & 0xffff) + (s >> 16);
            let s = (s & 0xffff) + (s >> 16);
            pkt[24..26].copy_from_slice(&(!(s as u16)).to_be_bytes());
        }
        Mutation::UdpChecksum => pkt[udp + 7] = 0x5a,
        Mutation::Port => pkt[udp + 3] ^= 0x10,
        Mutation::Dst if v6 => pkt[53] ^= 0x01,
        Mutation::Dst => pkt[33] ^= 0x01,
    }
}

#[test]
fn tc_pop_takes_only_what_the_pipelines_pop_takes_and_gives_the_same_frame() {
    if !require_root() {
        return;
    }
    let flows = std::cell::RefCell::new(TcFlows::load().expect("load the TC programs"));
    // Remote VTEP to us: the tunnel packets the uplink receives.
    let cases: Vec<(Template, TunnelTable, bool)> = [
        (TunnelKind::Vxlan, false),
        (TunnelKind::Vxlan, true),
        (TunnelKind::Geneve, false),
        (TunnelKind::Geneve, true),
    ]
    .into_iter()
    .map(|(kind, v6)| {
        let e = encap(kind, None, false);
        let (us, them): (IpAddr, IpAddr) = if v6 {
            (
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            )
        } else {
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap())
        };
        let spec = TunnelSpec {
            name: "t".into(),
            remotes: vec![them],
            learn_remotes: false,
            accept_inner_vlan: false,
            encap: e.clone(),
        };
        let table = TunnelTable::build(vec![TunnelPort::new(&spec, 6, us)]).unwrap();
        let t = Template::build(
            &e,
            them,
            us,
            MacAddr([2, 0, 0, 0, 0, 2]),
            MacAddr([2, 0, 0, 0, 0, 1]),
        )
        .unwrap();
        (t, table, v6)
    })
    .collect();
    let hits = std::cell::Cell::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(
                0..cases.len(),
                0..MUTATIONS.len(),
                any::<bool>(),
                any::<bool>(),
                any::<u8>(),
                proptest::collection::vec(any::<u8>(), 0..1400),
                any::<u64>(),
            ),
            |(ci, mi, v6_inner, tcp, tos, payload, hash)| {
                let (t, table, v6) = &cases[ci];
                let f = inner(v6_inner, tcp, tos & !3, &payload);
                let mut pkt = reference(t, &f, tos & !3, hash);
                let k = tunnel_key(&pkt, *v6);
                let m = MUTATIONS[mi];
                mutate(&mut pkt, *v6, m);
                let mut flows = flows.borrow_mut();
                flows.insert(&k, &TcAction::output(VM)).unwrap();
                let (ret, out) = flows.test_run(TcProgram::Uplink, &pkt, UPLINK).unwrap();
                flows.remove(&k).unwrap();
                let mut buf = vec![0u8; pkt.len() + 256];
                buf[256..].copy_from_slice(&pkt);
                let mut frame = Frame::new(&mut buf, 256, pkt.len()).unwrap();
                let popped = pop(table, &mut frame).map(|_| frame.data().to_vec());
                if ret == TC_ACT_REDIRECT {
                    hits.set(hits.get() + 1);
                    prop_assert!(popped.is_ok(), "{m:?}: TC took what pop refuses");
                    prop_assert_eq!(&out, popped.as_ref().unwrap(), "{:?}", m);
                    prop_assert_eq!(&out, &f);
                } else {
                    prop_assert_eq!(ret, TC_ACT_OK);
                    prop_assert_eq!(&out, &pkt, "a miss leaves the frame as it was");
                    prop_assert!(
                        !matches!(m, Mutation::Keep | Mutation::UdpChecksum),
                        "a valid packet of an installed flow missed: {:?}",
                        m
                    );
                }
                Ok(())
            },
        )
        .unwrap();
    assert!(hits.get() > 20, "{} hits", hits.get());
}

/// `xvs_tc_uplink` on an uplink with a ports entry (xvsd --fastpath, no
/// XDP program there) does the uplink XDP program's job: tunnel traffic
/// to our VTEP and port goes to the pipeline through the miss pair
/// (redirected, counted as the XDP program counts it), a decided flow is
/// decapsulated, ARP replies are snooped into the shared ring and passed,
/// and the host's traffic is left to the host. The maps it reads are the
/// XDP object's, shared as xvsd shares them.
#[test]
fn the_uplink_program_sorts_what_arrives_as_the_xdp_program_does() {
    use xvs_bpf::{Mode, XdpProgram};
    if !require_root() {
        return;
    }
    let mut flows = TcFlows::load().expect("load the TC program");
    // Any interface will do for the object: it is never attached.
    let xdp = XdpProgram::load_unattached_sharing("lo", Mode::Uplink, &flows.uplink_maps())
        .expect("the uplink's object, sharing the TC program's maps");
    xdp.add_vtep("192.0.2.1".parse().unwrap()).unwrap();
    xdp.add_tunnel_port(4789).unwrap();
    let mut poller = xdp.snoop_poller().unwrap();
    flows.set_port(UPLINK, 1, 99).unwrap();

    let outer = |dst: [u8; 4], port: u16, payload: &[u8]| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(DST, SRC)
            .ipv4([192, 0, 2, 2], dst, 64)
            .udp(50000, port)
            .write(&mut v, payload)
            .unwrap();
        v
    };
    let mut vx = vec![0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0];
    vx.extend_from_slice(&inner(false, true, 0, b"payload"));
    let tunnel = outer([192, 0, 2, 1], 4789, &vx);
    let (ret, out) = flows.test_run(TcProgram::Uplink, &tunnel, UPLINK).unwrap();
    assert_eq!(
        (ret, &out),
        (TC_ACT_REDIRECT, &tunnel),
        "undecided: to the pipeline"
    );
    assert_eq!(flows.port(UPLINK).unwrap().unwrap().misses, 1);
    assert_eq!(xdp.counters().unwrap().uplink_redirected, 1);

    // Not ours: another address, another port. The host's.
    for host in [
        outer([192, 0, 2, 9], 4789, &vx),
        outer([192, 0, 2, 1], 53, b"dns"),
    ] {
        let (ret, out) = flows.test_run(TcProgram::Uplink, &host, UPLINK).unwrap();
        assert_eq!((ret, &out), (TC_ACT_OK, &host));
    }
    assert_eq!(xdp.counters().unwrap().uplink_passed, 2);
    assert_eq!(flows.port(UPLINK).unwrap().unwrap().misses, 1);

    // An ARP reply: snooped (the control thread's neighbour learning) and
    // passed to the host.
    let mut arp = DST.to_vec();
    arp.extend_from_slice(&SRC);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    arp.extend_from_slice(&SRC);
    arp.extend_from_slice(&[192, 0, 2, 2]);
    arp.extend_from_slice(&DST);
    arp.extend_from_slice(&[192, 0, 2, 1]);
    let (ret, _) = flows.test_run(TcProgram::Uplink, &arp, UPLINK).unwrap();
    assert_eq!(ret, TC_ACT_OK);
    let mut seen = Vec::new();
    poller
        .poll(std::time::Duration::from_millis(100), &mut seen)
        .unwrap();
    assert_eq!(seen.len(), 1, "the reply was snooped");
    assert_eq!(seen[0].frame(), &arp[..]);
    assert_eq!(xdp.counters().unwrap().snoop_arp, 1);
}
