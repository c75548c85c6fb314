//! Push/pop properties across random tunnel configs and inner frames.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::control::{tunnel_encap, tunnel_spec};
use crate::frame::Frame;
use crate::wire::ipv4::Ipv4Packet;
use xvs_config::{GeneveOptConfig, TosConfig, TunnelConfig};
use xvs_types::MacAddr;

const SRC_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const DST_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

#[derive(Debug, Clone)]
struct Case {
    cfg: TunnelConfig,
    local: IpAddr,
    remote: IpAddr,
    inner: Vec<u8>,
    meta: PushMeta,
}

fn arb_case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        any::<bool>(),
        0u32..=xvs_config::MAX_VNI,
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<u8>(),
            1u8..=255,
        ),
        (1u16..=65535, 0u16..=65535),
        prop::collection::vec((any::<u16>(), any::<u8>(), 0usize..=8), 0..4),
        prop::collection::vec(any::<u8>(), 14..1600),
        (any::<u64>(), any::<u8>(), any::<u16>()),
    )
        .prop_map(
            |(
                geneve,
                v6,
                vni,
                (csum, df, inherit, tos, ttl),
                (lo, span),
                opts,
                inner,
                (h, itos, id),
            )| {
                let (local, remote): (IpAddr, IpAddr) = if v6 {
                    (
                        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
                        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).into(),
                    )
                } else {
                    (
                        Ipv4Addr::new(192, 0, 2, 1).into(),
                        Ipv4Addr::new(198, 51, 100, 7).into(),
                    )
                };
                let kind = if geneve {
                    TunnelKind::Geneve
                } else {
                    TunnelKind::Vxlan
                };
                let mut cfg = TunnelConfig::new("t", "br", kind, vni, vec![remote]);
                cfg.local = Some(local);
                cfg.csum = csum;
                cfg.df = df;
                cfg.ttl = ttl;
                cfg.tos = if inherit {
                    TosConfig::Inherit
                } else {
                    TosConfig::Fixed(tos)
                };
                cfg.src_port_range = (lo, lo.saturating_add(span.min(u16::MAX - lo)));
                if geneve {
                    cfg.geneve_opts = opts
                        .into_iter()
                        .map(|(class, typ, words)| GeneveOptConfig {
                            class,
                            typ,
                            data: vec![0x5a; words * 4],
                        })
                        .collect();
                }
                // An outer CE over a Not-ECT inner packet is dropped on pop by
                // design (RFC 6040); keep the inner ECN out of CE for identity.
                let meta = PushMeta {
                    flow_hash: h,
                    inner_tos: itos & !0x01,
                    ip_id: id,
                };
                Case {
                    cfg,
                    local,
                    remote,
                    inner,
                    meta,
                }
            },
        )
}

/// The receiving side's table: the same tunnel seen from the remote.
fn reverse_table(c: &Case) -> TunnelTable {
    let mut cfg = c.cfg.clone();
    cfg.local = Some(c.remote);
    cfg.remotes = vec![c.local];
    TunnelTable::build(vec![TunnelPort::new(&tunnel_spec(&cfg), 9, c.remote)]).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn push_then_pop_is_identity(c in arb_case()) {
        let tpl = Template::build(&tunnel_encap(&c.cfg), c.local, c.remote, SRC_MAC, DST_MAC).unwrap();
        let mut buf = vec![0u8; MAX_HEADER_LEN + c.inner.len() + 16];
        buf[MAX_HEADER_LEN..MAX_HEADER_LEN + c.inner.len()].copy_from_slice(&c.inner);
        let mut f = Frame::new(&mut buf, MAX_HEADER_LEN, c.inner.len()).unwrap();
        let n = tpl.push(&mut f, &c.meta).unwrap();
        prop_assert_eq!(n, tpl.len());
        prop_assert_eq!(f.len(), c.inner.len() + n);

        // Incremental IPv4 checksum equals a full recomputation.
        if c.remote.is_ipv4() {
            let ip = Ipv4Packet::new_checked(&f.data()[14..]).unwrap();
            prop_assert!(ip.verify_checksum());
            prop_assert_eq!(usize::from(ip.total_len()), f.len() - 14);
        }
        let sp = u16::from_be_bytes([f.data()[tpl.len() - tunnel_len(&c) - 8], f.data()[tpl.len() - tunnel_len(&c) - 7]]);
        prop_assert!(sp >= c.cfg.src_port_range.0 && sp <= c.cfg.src_port_range.1);

        let table = reverse_table(&c);
        let d = pop(&table, &mut f).unwrap();
        prop_assert_eq!(d.vni, c.cfg.vni);
        prop_assert_eq!(d.remote, 0);
        prop_assert_eq!(d.port, 9);
        prop_assert_eq!(f.data(), &c.inner[..]);
    }

    #[test]
    fn pop_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300), c in arb_case()) {
        let table = reverse_table(&c);
        let mut buf = bytes.clone();
        let len = buf.len();
        let mut f = Frame::new(&mut buf, 0, len).unwrap();
        let _ = pop(&table, &mut f);
    }

    #[test]
    fn pop_rejects_any_truncation_of_a_valid_packet(c in arb_case(), cut in 0usize..1000) {
        let tpl = Template::build(&tunnel_encap(&c.cfg), c.local, c.remote, SRC_MAC, DST_MAC).unwrap();
        let mut buf = vec![0u8; MAX_HEADER_LEN + c.inner.len()];
        buf[MAX_HEADER_LEN..].copy_from_slice(&c.inner);
        let len = c.inner.len();
        let mut f = Frame::new(&mut buf, MAX_HEADER_LEN, len).unwrap();
        tpl.push(&mut f, &c.meta).unwrap();
        let full = f.data().to_vec();
        let cut = cut % full.len();
        let mut b2 = full[..cut].to_vec();
        let mut g = Frame::new(&mut b2, 0, cut).unwrap();
        prop_assert!(pop(&reverse_table(&c), &mut g).is_err());
    }
}

fn tunnel_len(c: &Case) -> usize {
    match c.cfg.kind {
        TunnelKind::Vxlan => 8,
        TunnelKind::Geneve => {
            8 + c
                .cfg
                .geneve_opts
                .iter()
                .map(|o| 4 + o.data.len())
                .sum::<usize>()
        }
    }
}

#[test]
fn vxlan_header_is_sent_with_reserved_bits_zero() {
    let cfg = TunnelConfig::new(
        "t",
        "br",
        TunnelKind::Vxlan,
        0xabcdef,
        vec!["192.0.2.2".parse().unwrap()],
    );
    let tpl = Template::build(
        &tunnel_encap(&cfg),
        "192.0.2.1".parse().unwrap(),
        "192.0.2.2".parse().unwrap(),
        SRC_MAC,
        DST_MAC,
    )
    .unwrap();
    let b = tpl.bytes();
    assert_eq!(b.len(), 14 + 20 + 8 + 8);
    assert_eq!(&b[42..], &[0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
}

#[test]
fn tos_inherit_and_ecn_are_applied_per_packet() {
    let mut cfg = TunnelConfig::new(
        "t",
        "br",
        TunnelKind::Vxlan,
        1,
        vec!["192.0.2.2".parse().unwrap()],
    );
    cfg.tos = TosConfig::Fixed(0xb8);
    let local: IpAddr = "192.0.2.1".parse().unwrap();
    let remote: IpAddr = "192.0.2.2".parse().unwrap();
    let tpl = Template::build(&tunnel_encap(&cfg), local, remote, SRC_MAC, DST_MAC).unwrap();
    let mut buf = vec![0u8; 200];
    let mut f = Frame::new(&mut buf, 100, 60).unwrap();
    // ECT(0) inner: the fixed DSCP keeps, the ECN bits follow the inner.
    tpl.push(
        &mut f,
        &PushMeta {
            flow_hash: 1,
            inner_tos: 0x02,
            ip_id: 0,
        },
    )
    .unwrap();
    let ip = Ipv4Packet::new_checked(&f.data()[14..]).unwrap();
    assert_eq!(ip.tos(), 0xba);
    assert!(ip.verify_checksum());

    cfg.tos = TosConfig::Inherit;
    cfg.df = false;
    let tpl = Template::build(&tunnel_encap(&cfg), local, remote, SRC_MAC, DST_MAC).unwrap();
    let mut buf = vec![0u8; 200];
    let mut f = Frame::new(&mut buf, 100, 60).unwrap();
    tpl.push(
        &mut f,
        &PushMeta {
            flow_hash: 1,
            inner_tos: 0x28,
            ip_id: 7,
        },
    )
    .unwrap();
    let ip = Ipv4Packet::new_checked(&f.data()[14..]).unwrap();
    assert_eq!(ip.tos(), 0x28);
    assert_eq!(ip.ident(), 7, "DF off: the ident varies");
    assert!(ip.verify_checksum());
}

#[test]
fn push_without_headroom_changes_nothing() {
    let cfg = TunnelConfig::new(
        "t",
        "br",
        TunnelKind::Vxlan,
        1,
        vec!["192.0.2.2".parse().unwrap()],
    );
    let tpl = Template::build(
        &tunnel_encap(&cfg),
        "192.0.2.1".parse().unwrap(),
        "192.0.2.2".parse().unwrap(),
        SRC_MAC,
        DST_MAC,
    )
    .unwrap();
    let mut buf = vec![7u8; 100];
    let mut f = Frame::new(&mut buf, 10, 60).unwrap();
    assert_eq!(
        tpl.push(&mut f, &PushMeta::default()),
        Err(crate::stats::DropReason::NoHeadroom)
    );
    assert_eq!((f.head(), f.len()), (10, 60));
}

#[test]
fn mixed_families_are_refused() {
    let cfg = TunnelConfig::new(
        "t",
        "br",
        TunnelKind::Vxlan,
        1,
        vec!["192.0.2.2".parse().unwrap()],
    );
    assert!(Template::build(
        &tunnel_encap(&cfg),
        "2001:db8::1".parse().unwrap(),
        "192.0.2.2".parse().unwrap(),
        SRC_MAC,
        DST_MAC
    )
    .is_err());
}

#[test]
fn large_tables_use_the_hashed_path_with_the_same_answers() {
    // 20 tunnel ports of 20 remotes each: past the linear-scan threshold.
    let ports: Vec<TunnelPort> = (0..20u32)
        .map(|t| {
            let remotes: Vec<IpAddr> = (0..20u8)
                .map(|r| IpAddr::V4(Ipv4Addr::new(10, t as u8, 0, r + 1)))
                .collect();
            let mut cfg =
                TunnelConfig::new(format!("t{t}"), "br", TunnelKind::Vxlan, 100 + t, remotes);
            cfg.local = Some("192.0.2.1".parse().unwrap());
            TunnelPort::new(
                &tunnel_spec(&cfg),
                10 + t as u16,
                "192.0.2.1".parse().unwrap(),
            )
        })
        .collect();
    let table = TunnelTable::build(ports).unwrap();
    let local = xvs_types::ip_to_u128("192.0.2.1".parse().unwrap());
    for t in 0..20u32 {
        let idx = table
            .lookup(TunnelKind::Vxlan, local, 4789, 100 + t)
            .unwrap();
        let tp = table.get(idx).unwrap();
        assert_eq!(tp.port, 10 + t as u16);
        for r in 0..20u8 {
            let ip = xvs_types::ip_to_u128(IpAddr::V4(Ipv4Addr::new(10, t as u8, 0, r + 1)));
            assert_eq!(tp.remote_index(ip), Some(u16::from(r)));
        }
        assert_eq!(tp.remote_index(0), None);
    }
    assert_eq!(table.lookup(TunnelKind::Vxlan, local, 4789, 99), None);
    assert_eq!(table.lookup(TunnelKind::Geneve, local, 4789, 100), None);
}

#[test]
fn multicast_groups_map_to_their_ethernet_addresses() {
    let m = |s: &str| multicast_mac(s.parse().unwrap());
    // RFC 1112 §6.4: the high bit of the low 24 is dropped.
    assert_eq!(m("239.1.1.1"), Some(MacAddr([1, 0, 0x5e, 1, 1, 1])));
    assert_eq!(m("224.129.2.3"), Some(MacAddr([1, 0, 0x5e, 1, 2, 3])));
    // RFC 2464 §7: 33:33 and the low 32 bits.
    assert_eq!(m("ff0e::1:2:3"), Some(MacAddr([0x33, 0x33, 0, 2, 0, 3])));
    assert_eq!(m("192.0.2.1"), None);
    assert_eq!(m("2001:db8::1"), None);
}

/// A VXLAN tunnel port with local 192.0.2.1 and the given remotes.
fn port_with(remotes: &[&str], learn: bool) -> TunnelPort {
    let mut cfg = TunnelConfig::new(
        "t",
        "br",
        TunnelKind::Vxlan,
        42,
        remotes.iter().map(|r| r.parse().unwrap()).collect(),
    );
    cfg.learn_remotes = learn;
    TunnelPort::new(&tunnel_spec(&cfg), 9, "192.0.2.1".parse().unwrap())
}

/// A VXLAN packet (VNI 42) from `src` to `dst`, as a peer sends it.
fn vxlan_packet(src: &str, dst: &str) -> Vec<u8> {
    let mut cfg = TunnelConfig::new("p", "br", TunnelKind::Vxlan, 42, vec![dst.parse().unwrap()]);
    cfg.local = Some(src.parse().unwrap());
    let tpl = Template::build(
        &tunnel_encap(&cfg),
        src.parse().unwrap(),
        dst.parse().unwrap(),
        SRC_MAC,
        multicast_mac(dst.parse().unwrap()).unwrap_or(DST_MAC),
    )
    .unwrap();
    let inner = [
        0x02u8, 0, 0, 0, 0, 0xb, 0x02, 0, 0, 0, 0, 0xa, 0x08, 0x00, 0, 0,
    ];
    let mut buf = vec![0u8; 256];
    buf[128..128 + inner.len()].copy_from_slice(&inner);
    let mut f = Frame::new(&mut buf, 128, inner.len()).unwrap();
    tpl.push(&mut f, &PushMeta::default()).unwrap();
    f.data().to_vec()
}

fn pop_bytes(table: &TunnelTable, bytes: &[u8]) -> Result<Decap, crate::stats::DropReason> {
    let mut b = bytes.to_vec();
    let len = b.len();
    let mut f = Frame::new(&mut b, 0, len).unwrap();
    pop(table, &mut f)
}

#[test]
fn a_multicast_tunnel_accepts_its_group_and_any_unicast_vtep() {
    let tp = port_with(&["239.1.1.1"], false);
    assert_eq!(tp.group, Some("239.1.1.1".parse().unwrap()));
    assert!(tp.learn, "implied by the group");
    assert_eq!(tp.flood_len(), 1);
    let table = TunnelTable::build(vec![tp]).unwrap();
    // To the group from an unknown VTEP: accepted, the VTEP reported.
    let d = pop_bytes(&table, &vxlan_packet("192.0.2.7", "239.1.1.1")).unwrap();
    assert_eq!(d.remote, UNKNOWN_REMOTE);
    assert_eq!(d.vtep, "192.0.2.7".parse::<IpAddr>().unwrap());
    assert_eq!(d.port, 9);
    // Unicast to our VTEP (a learned peer's reply): accepted too.
    let d = pop_bytes(&table, &vxlan_packet("192.0.2.8", "192.0.2.1")).unwrap();
    assert_eq!(d.remote, UNKNOWN_REMOTE);
    // Another group, or the group as a source: not ours / never a VTEP.
    assert_eq!(
        pop_bytes(&table, &vxlan_packet("192.0.2.7", "239.1.1.2")),
        Err(crate::stats::DropReason::NoTunnelPort)
    );
    assert_eq!(
        pop_bytes(&table, &vxlan_packet("239.1.1.1", "192.0.2.1")),
        Err(crate::stats::DropReason::UnknownRemote)
    );
    // Our own flood echoed back by the network is no peer.
    assert_eq!(
        pop_bytes(&table, &vxlan_packet("192.0.2.1", "239.1.1.1")),
        Err(crate::stats::DropReason::UnknownRemote)
    );
}

#[test]
fn unknown_vteps_are_accepted_only_by_ports_that_learn_remotes() {
    let pkt = vxlan_packet("192.0.2.7", "192.0.2.1");
    let strict = TunnelTable::build(vec![port_with(&["192.0.2.2"], false)]).unwrap();
    assert_eq!(
        pop_bytes(&strict, &pkt),
        Err(crate::stats::DropReason::UnknownRemote)
    );
    let learning = TunnelTable::build(vec![port_with(&["192.0.2.2"], true)]).unwrap();
    let d = pop_bytes(&learning, &pkt).unwrap();
    assert_eq!(
        (d.remote, d.vtep),
        (UNKNOWN_REMOTE, "192.0.2.7".parse().unwrap())
    );
    // A configured remote keeps its index.
    let d = pop_bytes(&learning, &vxlan_packet("192.0.2.2", "192.0.2.1")).unwrap();
    assert_eq!(d.remote, 0);
}

#[test]
fn dynamic_remotes_follow_the_flood_set_and_are_found_by_address() {
    let mut cfg = TunnelConfig::new(
        "t",
        "br",
        TunnelKind::Vxlan,
        42,
        vec!["192.0.2.2".parse().unwrap(), "192.0.2.3".parse().unwrap()],
    );
    cfg.learn_remotes = true;
    // One dynamic remote duplicates a configured one: left out.
    let dynamic: Vec<IpAddr> = (0..20u8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)))
        .chain(["192.0.2.3".parse().unwrap()])
        .collect();
    let tp = TunnelPort::with_dynamic(
        &tunnel_spec(&cfg),
        9,
        "192.0.2.1".parse().unwrap(),
        &dynamic,
    );
    assert_eq!(tp.flood_len(), 2);
    assert_eq!(tp.remotes.len(), 22);
    assert_eq!(tp.dynamic_remotes(), &dynamic[..20]);
    // Past the linear-scan threshold: the hash answers the same.
    for (i, r) in tp.remotes.iter().enumerate() {
        assert_eq!(tp.remote_index(xvs_types::ip_to_u128(*r)), Some(i as u16));
    }
}

#[test]
fn two_tunnels_on_one_group_and_vni_clash() {
    let mut a = port_with(&["239.1.1.1"], false);
    let mut b = port_with(&["239.1.1.1"], false);
    a.local = "192.0.2.1".parse().unwrap();
    b.local = "192.0.2.5".parse().unwrap();
    b.name = "u".into();
    assert!(matches!(
        TunnelTable::build(vec![a, b]),
        Err(TunnelTableError::Duplicate { .. })
    ));
}

/// A tunnel port with the given VNI on local 192.0.2.`local`, port 4789
/// or 6081 (`geneve`), named after all three.
fn keyed(vni: u32, local: u8, geneve: bool) -> TunnelPort {
    let kind = if geneve {
        TunnelKind::Geneve
    } else {
        TunnelKind::Vxlan
    };
    let mut cfg = TunnelConfig::new(
        format!("t{vni}-{local}-{geneve}"),
        "br",
        kind,
        vni,
        vec!["198.51.100.1".parse().unwrap()],
    );
    cfg.local = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, local)));
    TunnelPort::new(&tunnel_spec(&cfg), 10, cfg.local.unwrap())
}

proptest! {
    /// Built after another table (whose index it may reuse), a table
    /// answers exactly as one built from scratch: the same keys, the same
    /// lookups, the same first problem.
    #[test]
    fn built_after_a_table_as_from_scratch(
        before in proptest::collection::vec((0..12u32, 1..3u8, any::<bool>()), 0..24),
        after in proptest::collection::vec((0..12u32, 1..3u8, any::<bool>()), 0..6),
        keep in 0..24usize,
    ) {
        let make = |v: &[(u32, u8, bool)]| -> Vec<TunnelPort> {
            v.iter().map(|&(vni, l, g)| keyed(vni, l, g)).collect()
        };
        // Distinct keys, so that the previous table builds.
        let mut seen = std::collections::HashSet::new();
        let before: Vec<_> = before.into_iter().filter(|x| seen.insert(*x)).collect();
        let prev = TunnelTable::build(make(&before)).unwrap();
        // Often the previous ports with some appended (the index is
        // reused), else anything.
        let mut next = before[..keep.min(before.len())].to_vec();
        next.extend(&after);
        let fresh = TunnelTable::build(make(&next));
        let reused = TunnelTable::build_after(&prev, make(&next));
        match (fresh, reused) {
            (Ok(f), Ok(r)) => {
                prop_assert_eq!(&f.keys, &r.keys);
                // The hashed index too: small tables answer from `keys`.
                prop_assert_eq!(&f.by_key, &r.by_key);
                prop_assert_eq!(&f.udp_ports, &r.udp_ports);
                for vni in 0..12u32 {
                    for l in 1..3u8 {
                        let local = xvs_types::ip_to_u128(IpAddr::V4(Ipv4Addr::new(192, 0, 2, l)));
                        for (kind, port) in [(TunnelKind::Vxlan, 4789), (TunnelKind::Geneve, 6081)] {
                            prop_assert_eq!(
                                f.lookup(kind, local, port, vni),
                                r.lookup(kind, local, port, vni)
                            );
                        }
                    }
                }
            }
            (f, r) => prop_assert_eq!(f.err(), r.err()),
        }
    }
}
