//! Port mirrors: a copy of what a source port receives and sends, out of
//! a local port as it is or through a tunnel port to a remote VTEP; the
//! output carries nothing else; copies counted, and lost ones too, never
//! at the cost of the frame they copy.

use super::*;
use xvs_config::{BridgeConfig, MirrorConfig, MirrorDir, PortConfig, TunnelConfig, TunnelKind};

fn mirror(src: &[&str], dir: MirrorDir, to: &str) -> MirrorConfig {
    MirrorConfig {
        name: format!("m-{to}"),
        src: src.iter().map(|s| s.to_string()).collect(),
        dir,
        to: to.into(),
    }
}

fn port_no(bed: &Bed, name: &str) -> PortNo {
    bed.ctl
        .snapshot()
        .port_by_name(name)
        .expect("a port of the snapshot")
}

/// The testbed with a port "span" in br0, vm1 mirrored to it in `dir`,
/// and B learned on vm2.
fn spanned(dir: MirrorDir) -> (Bed, PortNo) {
    let mut bed = Bed::new();
    bed.apply(|c| {
        c.ports.push(PortConfig::new("span", "br0").into());
        c.mirrors.push(mirror(&["vm1"], dir, "span").into());
    });
    let span = port_no(&bed, "span");
    bed.send(VM2, &[&udp_frame(B, A, 16)]);
    (bed, span)
}

fn to(out: &testkit::BatchOut, port: PortNo) -> Vec<&Vec<u8>> {
    out.tx
        .iter()
        .filter(|(p, _)| *p == port)
        .map(|(_, f)| f)
        .collect()
}

#[test]
fn a_local_mirror_copies_what_its_source_receives_and_sends_as_it_is() {
    let (mut bed, span) = spanned(MirrorDir::Both);
    let to_b = udp_frame(A, B, 64);
    // Received on vm1, unicast to vm2: the frame to vm2, a copy to span;
    // again, answered from the exact-match cache: mirrored all the same.
    for round in 0..3 {
        let out = bed.send(VM1, &[&to_b]);
        assert_eq!(to(&out, VM2), [&to_b], "round {round}");
        assert_eq!(to(&out, span), [&to_b], "round {round}");
        assert_eq!(out.tx.len(), 2);
    }
    assert!(bed.ws.plan_hits > 0);
    // Sent by vm1 (from vm2, to A learned on vm1): copied as it leaves.
    bed.send(VM1, &[&udp_frame(A, BCAST, 16)]);
    let to_a = udp_frame(B, A, 80);
    let out = bed.send(VM2, &[&to_a]);
    assert_eq!(to(&out, VM1), [&to_a]);
    assert_eq!(to(&out, span), [&to_a]);
    let c = bed.ws.mirrors[0];
    // The set-up's frame to A, flooded out of vm1, was copied too.
    let setup = udp_frame(B, A, 16).len() as u64;
    assert_eq!(
        c.packets,
        1 + 3 + 1 + 1,
        "set-up, three unicast, the broadcast, one sent"
    );
    assert_eq!(
        c.bytes,
        setup + 3 * to_b.len() as u64 + udp_frame(A, BCAST, 16).len() as u64 + to_a.len() as u64
    );
    assert_eq!(c.dropped, 0);
}

#[test]
fn a_mirror_copies_only_its_direction() {
    let (mut bed, span) = spanned(MirrorDir::In);
    bed.send(VM1, &[&udp_frame(A, BCAST, 16)]);
    let out = bed.send(VM2, &[&udp_frame(B, A, 16)]);
    assert!(to(&out, span).is_empty(), "what vm1 sends is not copied");
    let out = bed.send(VM1, &[&udp_frame(A, B, 16)]);
    assert_eq!(to(&out, span).len(), 1);

    let (mut bed, span) = spanned(MirrorDir::Out);
    let out = bed.send(VM1, &[&udp_frame(A, B, 16)]);
    assert!(to(&out, span).is_empty(), "what vm1 receives is not copied");
    let out = bed.send(VM2, &[&udp_frame(B, A, 16)]);
    assert_eq!(to(&out, span).len(), 1);
}

#[test]
fn a_mirrors_output_carries_nothing_but_its_copies() {
    let (mut bed, span) = spanned(MirrorDir::In);
    // A broadcast from vm2 floods br0 but not span.
    let out = bed.send(VM2, &[&udp_frame(B, BCAST, 16)]);
    assert!(to(&out, span).is_empty());
    assert!(!to(&out, VM1).is_empty());
    // What arrives on span is dropped, and never learned.
    let c = [0x02, 0xcc, 0, 0, 0, 3];
    let out = bed.send(span, &[&udp_frame(c, BCAST, 16)]);
    assert!(out.tx.is_empty());
    assert_eq!(bed.drops(DropReason::MirrorOutput), 1);
    assert_eq!(fdb_dest(&bed, c), None);
    // A MAC learned on span before it became an output is not sent to.
    let mut bed = Bed::new();
    bed.apply(|c| c.ports.push(PortConfig::new("span", "br0").into()));
    let span = port_no(&bed, "span");
    bed.send(span, &[&udp_frame(c, BCAST, 16)]);
    assert_eq!(fdb_dest(&bed, c), Some((span, NO_REMOTE)));
    bed.apply(|cfg| {
        cfg.mirrors
            .push(mirror(&["vm1"], MirrorDir::Out, "span").into())
    });
    let out = bed.send(VM2, &[&udp_frame(B, c, 16)]);
    assert!(out.tx.is_empty());
    assert_eq!(bed.drops(DropReason::MirrorOutput), 1);
}

#[test]
fn a_mirror_to_a_tunnel_port_encapsulates_its_copies_to_the_remote_vtep() {
    let mut bed = Bed::new();
    bed.apply(|c| {
        c.bridges.push(BridgeConfig::new("mon").into());
        c.tunnels.push(
            TunnelConfig::new(
                "vxm",
                "mon",
                TunnelKind::Vxlan,
                99,
                vec!["192.0.2.3".parse().unwrap()],
            )
            .into(),
        );
        c.mirrors
            .push(mirror(&["vm3"], MirrorDir::Both, "vxm").into());
    });
    // vm3 is alone in br1 with gn1: its broadcast goes out by Geneve,
    // and its copy by VXLAN VNI 99 to 192.0.2.3.
    let f = udp_frame(A, BCAST, 100);
    let out = bed.send(VM3, &[&f]);
    assert_eq!(
        out.tx.len(),
        2,
        "{:?}",
        bed.ws.drops.nonzero().collect::<Vec<_>>()
    );
    let vxlan_copies: Vec<_> = out
        .tx
        .iter()
        .map(|(_, b)| dissect(b))
        .filter(|d| d.4 == 4789)
        .collect();
    assert_eq!(vxlan_copies.len(), 1);
    let (dmac, src, dst, _, _, payload) = &vxlan_copies[0];
    assert_eq!(*dmac, PEER3_MAC);
    assert_eq!(*src, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(*dst, Ipv4Addr::new(192, 0, 2, 3));
    assert_eq!(payload[4..7], [0, 0, 99], "VNI 99");
    assert_eq!(&payload[8..], &f[..], "the frame as it came in");
    assert_eq!(bed.ws.mirrors[0].packets, 1);
    // The monitoring tunnel's own traffic is dropped.
    let vxm = port_no(&bed, "vxm");
    let out = bed.send(
        ETH0,
        &[&vxlan([192, 0, 2, 3], 99, &udp_frame(B, BCAST, 16))],
    );
    assert!(out.tx.is_empty());
    assert_eq!(bed.drops(DropReason::MirrorOutput), 1);
    assert_eq!(bed.ws.ports[usize::from(vxm)].rx_packets, 1);
}

#[test]
fn a_copy_without_a_buffer_is_lost_and_counted_and_the_frame_goes_on() {
    let (mut bed, span) = spanned(MirrorDir::In);
    let snap = bed.ctl.snapshot();
    bed.now += 1_000;
    let f = udp_frame(A, B, 16);
    let out = bed.pool.run(&snap, &mut bed.ws, VM1, bed.now, &[&f], 0);
    assert_eq!(to(&out, VM2), [&f]);
    assert!(to(&out, span).is_empty());
    assert_eq!(bed.ws.mirrors[0].dropped, 1);
    assert_eq!(bed.ws.mirrors[0].packets, 0);
}

#[test]
fn a_mirrored_port_is_never_offered_to_the_fast_path() {
    let (bed, _) = spanned(MirrorDir::Out);
    let snap = bed.ctl.snapshot();
    let pe = snap.port(VM1).unwrap();
    assert!(pe.mirror[1].is_some());
    let st = Staged {
        port: VM2,
        ..Staged::default()
    };
    let out = Out {
        port: VM1,
        remote: NO_REMOTE,
        tag: Tag::Untagged,
    };
    assert!(!offerable(&snap, snap.port(VM2).unwrap(), &st, out));
}
