//! Every drop counter can count: for each [`DropReason`] (each parser
//! error of `Malformed` included), a frame or situation that the pipeline
//! drops for exactly that reason and no other. [`trigger`] matches every
//! variant, so a new reason does not compile until it has its case.

use super::*;
use crate::wire::checksum::checksum;
use xvs_config::{LookupConfig, LookupProviderConfig, MissAction};

/// How to make one drop happen, on a fresh testbed.
enum Trigger {
    /// `frames` received on `port` once `config` changed the testbed's
    /// configuration.
    Frames {
        config: fn(&mut Config),
        port: PortNo,
        frames: Vec<Vec<u8>>,
    },
    /// A situation more than frames make (the underlay, buffers).
    Run(fn(&mut Bed)),
}

fn unchanged(_: &mut Config) {}

/// `frames` received on `port` of the unchanged testbed.
fn frames(port: PortNo, frames: Vec<Vec<u8>>) -> Trigger {
    Trigger::Frames {
        config: unchanged,
        port,
        frames,
    }
}

/// A frame from vm1 (broadcast, so it has every output of br0).
fn from_vm1() -> Vec<u8> {
    udp_frame(A, BCAST, 16)
}

/// `f` edited by `edit`.
fn with(mut f: Vec<u8>, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    edit(&mut f);
    f
}

/// A VXLAN packet from remote 192.0.2.2 to br0 carrying `inner`, with
/// its outer IPv4 header edited by `edit` and its checksum made right.
fn vxlan_outer_ip(inner: &[u8], edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    with(vxlan([192, 0, 2, 2], 42, inner), |f| {
        edit(&mut f[14..34]);
        f[24..26].fill(0);
        let c = checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    })
}

/// A Geneve packet to br1 with its Geneve header (at 42) edited.
fn geneve_edited(flags: u8, opts: &[u8], edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    with(geneve(43, flags, opts, &udp_frame(B, BCAST, 16)), |f| {
        edit(&mut f[42..])
    })
}

/// An ICMPv6 message of `msg_type` and `code` from vm1 to all nodes, 24
/// bytes long (a neighbor solicitation's fixed part).
fn icmpv6_from_vm1(msg_type: u8, code: u8) -> Vec<u8> {
    let icmp = etherparse::Icmpv6Type::Unknown {
        type_u8: msg_type,
        code_u8: code,
        bytes5to8: [0; 4],
    };
    let b = PacketBuilder::ethernet2(A, [0x33, 0x33, 0, 0, 0, 1])
        .ipv6([0xfe; 16], [0xff; 16], 255)
        .icmpv6(icmp);
    let mut v = Vec::new();
    b.write(&mut v, &[0; 16]).unwrap();
    v
}

fn tcp_frame() -> Vec<u8> {
    let b = PacketBuilder::ethernet2(A, BCAST)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1000, 2000, 1, 1024);
    let mut v = Vec::new();
    b.write(&mut v, &[7; 8]).unwrap();
    v
}

fn trigger_malformed(e: WireError) -> Trigger {
    match e {
        WireError::Truncated => frames(VM1, vec![from_vm1()[..10].to_vec()]),
        WireError::TooManyVlanTags => frames(
            VM1,
            vec![with(from_vm1(), |f| {
                f[12..14].copy_from_slice(&[0x88, 0xa8])
            })],
        ),
        WireError::BadArp => frames(
            VM1,
            vec![with(
                arp(A, BCAST, None, 1, [10, 0, 0, 1], [10, 0, 0, 2]),
                |f| {
                    f[15] = 2 // hardware type 2
                },
            )],
        ),
        WireError::BadIpVersion => frames(VM1, vec![with(from_vm1(), |f| f[14] = 0x65)]),
        WireError::BadIhl => frames(VM1, vec![with(from_vm1(), |f| f[14] = 0x44)]),
        WireError::BadIpLength => frames(VM1, vec![with(from_vm1(), |f| f[16] = 0x40)]),
        WireError::BadIpChecksum => frames(
            ETH0,
            vec![with(vxlan([192, 0, 2, 2], 42, &from_vm1()), |f| {
                f[24] ^= 0xff
            })],
        ),
        WireError::Fragment => frames(
            ETH0,
            vec![vxlan_outer_ip(&from_vm1(), |ip| ip[6] |= 0x20)], // MF
        ),
        WireError::BadIpv6ExtHeader => frames(
            VM1,
            // The hop-by-hop header claims 8 * (1 + 200) bytes.
            vec![with(super::ipv6_with_ext_headers(), |f| f[55] = 200)],
        ),
        WireError::BadUdpLength => frames(VM1, vec![with(from_vm1(), |f| f[38] = 0x40)]),
        WireError::BadUdpChecksum => Trigger::Frames {
            config: |c| c.tunnels[0].csum = true,
            port: ETH0,
            frames: vec![with(vxlan([192, 0, 2, 2], 42, &from_vm1()), |f| {
                // etherparse wrote a valid one; keep it non-zero (zero is
                // always accepted).
                f[40] = f[40].wrapping_add(1).max(1);
            })],
        },
        WireError::BadTcpOffset => frames(VM1, vec![with(tcp_frame(), |f| f[46] = 0x40)]),
        WireError::VxlanNoIFlag => frames(
            ETH0,
            vec![with(vxlan([192, 0, 2, 2], 42, &from_vm1()), |f| f[42] = 0)],
        ),
        WireError::GeneveBadVersion => {
            frames(ETH0, vec![geneve_edited(0, &known_opt(), |g| g[0] |= 0x40)])
        }
        WireError::GeneveBadProtocol => {
            frames(ETH0, vec![geneve_edited(0, &known_opt(), |g| g[2] = 0x08)])
        }
        WireError::GeneveBadOptions => {
            // Options longer than the packet.
            frames(ETH0, vec![geneve_edited(0, &known_opt(), |g| g[0] = 0x3f)])
        }
        WireError::GeneveCriticalOption => {
            // C bit, and an option of an unknown class with the critical
            // type bit.
            frames(ETH0, vec![geneve_edited(0x40, &[9, 9, 0x81, 0], |_| {})])
        }
        // A solicitation with code 1 (RFC 4861 §7.1.1: must be 0).
        WireError::BadNdp => frames(VM1, vec![icmpv6_from_vm1(135, 1)]),
    }
}

fn trigger(r: DropReason) -> Trigger {
    match r {
        DropReason::Malformed(e) => trigger_malformed(e),
        // Nothing is received "on" a tunnel port.
        DropReason::UnknownPort => frames(VX1, vec![from_vm1()]),
        DropReason::VlanNotAllowed => frames(VM1, vec![tagged_frame(A, BCAST, 10)]),
        DropReason::NotTunnel => frames(ETH0, vec![from_vm1()]),
        DropReason::NoTunnelPort => frames(ETH0, vec![vxlan([192, 0, 2, 2], 99, &from_vm1())]),
        DropReason::UnknownRemote => frames(ETH0, vec![vxlan([192, 0, 2, 9], 42, &from_vm1())]),
        DropReason::GeneveControl => frames(ETH0, vec![geneve_edited(0x80, &known_opt(), |_| {})]),
        DropReason::InnerVlan => frames(
            ETH0,
            vec![vxlan([192, 0, 2, 2], 42, &tagged_frame(B, A, 10))],
        ),
        DropReason::FirewallIn => Trigger::Frames {
            config: |c| c.acls.push(acl("vm1", Direction::In).into()),
            port: VM1,
            frames: vec![from_vm1()],
        },
        DropReason::FirewallOut => Trigger::Frames {
            config: |c| c.acls.push(acl("vm2", Direction::Out).into()),
            port: VM1,
            frames: vec![from_vm1()],
        },
        DropReason::PolicerIn => Trigger::Frames {
            config: |c| c.qos.push(policer("vm1", Direction::In).into()),
            port: VM1,
            frames: vec![udp_frame(A, BCAST, 1400); 10],
        },
        DropReason::PolicerOut => Trigger::Frames {
            config: |c| c.qos.push(policer("vm2", Direction::Out).into()),
            // From a tunnel: one replica each (for vm1), within the spares.
            port: ETH0,
            frames: vec![vxlan([192, 0, 2, 2], 42, &udp_frame(B, BCAST, 1400)); 10],
        },
        DropReason::FlowDrop => Trigger::Frames {
            config: |c| c.bridges[0].flows = vec!["priority=1,actions=drop".into()],
            port: VM1,
            frames: vec![from_vm1()],
        },
        DropReason::SamePort => Trigger::Run(|bed| {
            bed.send(VM1, &[&from_vm1()]); // A learned on vm1
            bed.send(VM1, &[&udp_frame(B, A, 16)]);
        }),
        // Tagged 10 on a trunk of 10 only: no other port of br0 carries 10.
        DropReason::NoOutput => Trigger::Frames {
            config: |c| {
                c.ports[0].vlan = VlanMode::Trunk {
                    trunks: vec![10],
                    native: None,
                }
            },
            port: VM1,
            frames: vec![tagged_frame(A, BCAST, 10)],
        },
        DropReason::NoRoute => Trigger::Frames {
            config: |c| c.tunnels[2].remotes = vec!["2001:db9::2".parse().unwrap()],
            port: VM4,
            frames: vec![from_vm1()],
        },
        DropReason::NeighUnresolved => Trigger::Run(|bed| {
            bed.ctl
                .underlay
                .neigh
                .remove("2001:db8::2".parse().unwrap());
            bed.ctl.underlay_updated();
            bed.send(VM4, &[&from_vm1()]);
        }),
        DropReason::NoHeadroom => Trigger::Run(|bed| {
            // A frame at the very start of a buffer just its size: no room
            // for the tunnel header in front, nor to move it.
            let f = from_vm1();
            let mut buf = f.clone();
            let frame = Frame::new(&mut buf, 0, f.len()).unwrap();
            run_one(bed, VM4, frame, Vec::new());
        }),
        // Three outputs (vm2, two VTEPs), no spare for the two replicas.
        DropReason::NoBuffer => Trigger::Run(|bed| {
            let snap = bed.ctl.snapshot();
            let out = bed
                .pool
                .run(&snap, &mut bed.ws, VM1, bed.now, &[&from_vm1()], 0);
            assert_eq!(out.tx.len(), 1);
        }),
        DropReason::TooBig => frames(VM1, vec![udp_frame(A, BCAST, 1500)]),
        DropReason::EcnNotEct => frames(
            ETH0,
            // Outer CE over an inner IPv4 packet that is not ECN-capable.
            vec![vxlan_outer_ip(&from_vm1(), |ip| ip[1] |= 0x03)],
        ),
        DropReason::BadSrcMac => frames(VM1, vec![udp_frame(BCAST, A, 16)]),
        DropReason::SpoofedMac => Trigger::Frames {
            config: |c| c.ports[0].allowed_macs = vec![MacAddr(B)],
            port: VM1,
            frames: vec![from_vm1()],
        },
        DropReason::SpoofedIp => Trigger::Frames {
            config: |c| {
                c.ports[0].allowed_macs = vec![MacAddr(A)];
                c.ports[0].allowed_ips = vec!["10.0.0.9".parse().unwrap()];
            },
            port: VM1,
            frames: vec![from_vm1()],
        },
        DropReason::StormControl => Trigger::Frames {
            config: |c| c.ports[0].storm_pps = Some(1),
            port: VM1,
            frames: vec![from_vm1(), from_vm1()],
        },
        DropReason::MirrorOutput => Trigger::Frames {
            // vm2 made a mirror's output: what it sends is dropped.
            config: |c| {
                c.mirrors.push(
                    xvs_config::MirrorConfig {
                        name: "m1".into(),
                        src: vec!["vm1".into()],
                        dir: xvs_config::MirrorDir::Both,
                        to: "vm2".into(),
                    }
                    .into(),
                )
            },
            port: VM2,
            frames: vec![udp_frame(B, BCAST, 16)],
        },
        DropReason::LookupMiss => Trigger::Frames {
            config: |c| {
                let direct = LookupProviderConfig::Direct {
                    vtep: "192.0.2.3".parse().unwrap(),
                };
                c.bridges[0].lookup = Some(LookupConfig::new(direct, MissAction::Drop));
            },
            port: VM1,
            frames: vec![udp_frame(A, B, 16)],
        },
    }
}

fn acl(port: &str, dir: Direction) -> AclConfig {
    AclConfig {
        port: port.into(),
        dir,
        rules: vec!["priority=10,udp,action=drop".into()],
    }
}

/// A policer whose burst (the smallest allowed: the uplink's MTU) holds
/// six frames of 1400 bytes.
fn policer(port: &str, dir: Direction) -> QosConfig {
    QosConfig {
        port: port.into(),
        dir,
        rate_bps: 8_000,
        burst_bytes: 9000,
        peak_bps: None,
    }
}

/// Runs one frame in a buffer of the test's own, with `spare` buffers,
/// and checks that every buffer came back.
fn run_one<'a>(bed: &mut Bed, port: PortNo, frame: Frame<'a>, spare: Vec<&'a mut [u8]>) {
    let n = 1 + spare.len();
    let mut io = BatchIo {
        spare,
        ..BatchIo::default()
    };
    let snap = bed.ctl.snapshot();
    process_batch(&snap, &mut bed.ws, port, bed.now, [frame], &mut io);
    assert_eq!(
        io.tx.len() + io.free.len() + io.spare.len() + io.held.len(),
        n,
        "a buffer was lost"
    );
}

#[test]
fn every_drop_reason_has_a_frame_that_makes_it_and_no_other() {
    // Every reason, every parser error included: a counter nobody can
    // increment is a bug (house rule 5).
    for r in DropReason::all() {
        let mut bed = Bed::new();
        let before = bed.ws.drops.clone();
        match trigger(r) {
            Trigger::Frames {
                config,
                port,
                frames,
            } => {
                bed.apply(config);
                let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
                bed.send(port, &refs);
            }
            Trigger::Run(run) => run(&mut bed),
        }
        let counted: Vec<(&str, u64)> = DropReason::all()
            .filter(|&o| bed.ws.drops.get(o) != before.get(o))
            .map(|o| (o.name(), bed.ws.drops.get(o) - before.get(o)))
            .collect();
        assert!(
            counted.len() == 1 && counted[0].0 == r.name(),
            "{}: counted {counted:?}",
            r.name()
        );
        assert!(
            bed.ws.ports.iter().any(|p| p.drops.get(r) > 0),
            "{}: counted against a port",
            r.name()
        );
    }
}

#[test]
fn a_spare_too_small_for_a_replica_is_given_back_and_counted() {
    let mut bed = Bed::new();
    let f = from_vm1();
    let mut buf = vec![0u8; testkit::CHUNK];
    buf[testkit::HEADROOM..testkit::HEADROOM + f.len()].copy_from_slice(&f);
    let frame = Frame::new(&mut buf, testkit::HEADROOM, f.len()).unwrap();
    let mut small = [0u8; 16];
    run_one(&mut bed, VM1, frame, vec![&mut small[..]]);
    // Three outputs: the one spare was unusable, the last took the frame.
    assert_eq!(bed.drops(DropReason::NoBuffer), 2);
}
