//! Fixtures the criterion benches share with `examples/instructions.rs`
//! (which includes this file by path), so that the timed and the counted
//! operations are the same work on the same packets.

use std::net::IpAddr;
use xvs_dataplane::control::{tunnel_encap, tunnel_spec};

use xvs_bench::{udp_frame, A, B};
use xvs_config::{GeneveOptConfig, TunnelConfig, TunnelKind};
use xvs_dataplane::frame::Frame;
use xvs_dataplane::tunnel::{PushMeta, Template, TunnelPort, TunnelTable, MAX_HEADER_LEN};
use xvs_types::MacAddr;

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("literal address")
}

/// What push reads from the inner frame; fixed, as in a steady flow.
pub const PUSH_META: PushMeta = PushMeta {
    flow_hash: 0x1234_5678_9abc_def0,
    inner_tos: 0,
    ip_id: 0,
};

/// A 64-byte frame from A to B, the template that encapsulates it from
/// 192.0.2.1 to 192.0.2.2 (VNI 42; Geneve with one 4-byte option), and the
/// tunnel table of the receiving end.
#[allow(missing_debug_implementations)]
pub struct TunnelFixture {
    pub tpl: Template,
    pub table: TunnelTable,
    /// The inner frame starts at `MAX_HEADER_LEN` and is this long.
    pub inner_len: usize,
    pub buf: Vec<u8>,
    /// Start and length of the encapsulated packet in `buf`.
    pub pushed: (usize, usize),
}

pub fn tunnel_fixture(kind: TunnelKind) -> TunnelFixture {
    let inner = udp_frame(A, B, 1000, 64 - 42);
    let mut cfg = TunnelConfig::new("t", "br", kind, 42, vec![ip("192.0.2.2")]);
    cfg.local = Some(ip("192.0.2.1"));
    if kind == TunnelKind::Geneve {
        cfg.geneve_opts.push(GeneveOptConfig {
            class: 0x0102,
            typ: 0x03,
            data: vec![1, 2, 3, 4],
        });
    }
    let tpl = Template::build(
        &tunnel_encap(&cfg),
        ip("192.0.2.1"),
        ip("192.0.2.2"),
        MacAddr(A),
        MacAddr(B),
    )
    .expect("template");
    let mut buf = vec![0u8; MAX_HEADER_LEN + inner.len()];
    buf[MAX_HEADER_LEN..].copy_from_slice(&inner);
    let mut f = Frame::new(&mut buf, MAX_HEADER_LEN, inner.len()).expect("frame");
    tpl.push(&mut f, &PUSH_META).expect("push");
    let pushed = (f.head(), f.len());
    // The same tunnel, seen from the other end.
    let mut rcfg = cfg;
    rcfg.local = Some(ip("192.0.2.2"));
    rcfg.remotes = vec![ip("192.0.2.1")];
    let table = TunnelTable::build(vec![TunnelPort::new(
        &tunnel_spec(&rcfg),
        9,
        ip("192.0.2.2"),
    )])
    .expect("table");
    TunnelFixture {
        tpl,
        table,
        inner_len: inner.len(),
        buf,
        pushed,
    }
}
