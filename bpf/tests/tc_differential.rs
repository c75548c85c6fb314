//! The fast path's TC executor writes the bytes the pipeline's push
//! writes: for random inner frames (TCP and UDP over IPv4 and IPv6, any
//! length up to 1,400 bytes, any TOS/ECN), VXLAN and Geneve templates over
//! IPv4 and IPv6 underlays (fixed and inherited TOS), and random flow
//! hashes, the frame `tunnel::Template::push` builds and the frame
//! `xvs_tc_port` returns from `BPF_PROG_TEST_RUN` are equal byte for byte,
//! and the program counts what it sent. Frames it cannot describe, and
//! flows it has no decision for, go on untouched.
//!
//! Needs root (BPF); `xvs_tests::require_root` fails without it under
//! XVS_REQUIRE_ALL=1.

use std::net::IpAddr;

use etherparse::PacketBuilder;
use proptest::prelude::*;
use xvs_bpf::tc::{TcAction, TcFlows, TcKey, TC_ACT_OK, TC_ACT_REDIRECT};
use xvs_dataplane::frame::Frame;
use xvs_dataplane::tunnel::{Encap, PushMeta, Template};
use xvs_dataplane::wire::GeneveOptionRepr;
use xvs_tests::require_root;
use xvs_types::{MacAddr, TunnelKind};

const IFINDEX: u32 = 1;
const UPLINK: u32 = 1;
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
    TcAction::push(UPLINK, &o, t.src_port(hash)).unwrap()
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
                let (ret, out) = flows.test_run(&f, IFINDEX).unwrap();
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
    let (ret, out) = flows.test_run(&f, IFINDEX).unwrap();
    assert_eq!((ret, &out), (TC_ACT_OK, &f), "no decision: a miss");
    let k = key(&f);
    flows.insert(&k, &action(&t, 7)).unwrap();
    let mut other_port = k;
    other_port.tp_dst = [0, 80];
    flows.remove(&k).unwrap();
    flows.insert(&other_port, &action(&t, 7)).unwrap();
    let (ret, out) = flows.test_run(&f, IFINDEX).unwrap();
    assert_eq!((ret, &out), (TC_ACT_OK, &f), "another flow's decision");
    // ARP, and an IPv4 fragment of an installed flow: not described.
    let mut frag = f.clone();
    frag[20] = 0x20;
    flows.insert(&k, &action(&t, 7)).unwrap();
    let (ret, _) = flows.test_run(&frag, IFINDEX).unwrap();
    assert_eq!(ret, TC_ACT_OK, "a fragment");
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&SRC);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    let (ret, out) = flows.test_run(&arp, IFINDEX).unwrap();
    assert_eq!((ret, &out), (TC_ACT_OK, &arp));
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
        let att = flows.attach(a0).expect("attach");
        let shown = tc(&["filter", "show", "dev", "a0", "ingress"]);
        assert!(shown.contains("xvs_tc_port"), "{shown}");
        drop(att);
        let shown = tc(&["filter", "show", "dev", "a0", "ingress"]);
        assert!(!shown.contains("xvs_tc_port"), "{shown}");
        let _again = flows.attach(a0).expect("attach again, the qdisc there");
        let shown = tc(&["filter", "show", "dev", "a0", "ingress"]);
        assert!(shown.contains("xvs_tc_port"), "{shown}");
    });
}
