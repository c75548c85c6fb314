//! Push/pop properties across random tunnel configs and inner frames.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::config::{GeneveOptConfig, TosConfig};
use crate::frame::Frame;
use crate::types::MacAddr;
use crate::wire::ipv4::Ipv4Packet;

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
        0u32..=crate::config::MAX_VNI,
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
    TunnelTable::build(vec![TunnelPort::new(&cfg, 9, c.remote)]).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn push_then_pop_is_identity(c in arb_case()) {
        let tpl = Template::build(&c.cfg, c.local, c.remote, SRC_MAC, DST_MAC).unwrap();
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
        let tpl = Template::build(&c.cfg, c.local, c.remote, SRC_MAC, DST_MAC).unwrap();
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
        &cfg,
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
    let tpl = Template::build(&cfg, local, remote, SRC_MAC, DST_MAC).unwrap();
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
    let tpl = Template::build(&cfg, local, remote, SRC_MAC, DST_MAC).unwrap();
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
        &cfg,
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
        &cfg,
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
            TunnelPort::new(&cfg, 10 + t as u16, "192.0.2.1".parse().unwrap())
        })
        .collect();
    let table = TunnelTable::build(ports).unwrap();
    let local = crate::types::ip_to_u128("192.0.2.1".parse().unwrap());
    for t in 0..20u32 {
        let idx = table
            .lookup(TunnelKind::Vxlan, local, 4789, 100 + t)
            .unwrap();
        let tp = table.get(idx).unwrap();
        assert_eq!(tp.port, 10 + t as u16);
        for r in 0..20u8 {
            let ip = crate::types::ip_to_u128(IpAddr::V4(Ipv4Addr::new(10, t as u8, 0, r + 1)));
            assert_eq!(tp.remote_index(ip), Some(u16::from(r)));
        }
        assert_eq!(tp.remote_index(0), None);
    }
    assert_eq!(table.lookup(TunnelKind::Vxlan, local, 4789, 99), None);
    assert_eq!(table.lookup(TunnelKind::Geneve, local, 4789, 100), None);
}
