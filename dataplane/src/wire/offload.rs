//! Finishing the TCP and UDP checksums a sender left to checksum offload.
//!
//! A guest whose interface offers checksum offload (a veth's default, a
//! virtio NIC with VIRTIO_NET_F_CSUM) hands its stack's frames over with the
//! L4 checksum field holding only the folded pseudo-header sum, and a note
//! in the skb (CHECKSUM_PARTIAL, csum_start, csum_offset) telling whoever
//! sends it on to finish the job. AF_XDP carries the bytes without the note,
//! and a kernel sending to a veth with our XDP program on it never finishes
//! it, so such frames reach the pipeline unfinished: forwarded as they are,
//! every receiver drops them (why guest veths once needed `ethtool -K tx
//! off`). The same holds for tunnel packets a kernel VTEP on this host sends
//! over a veth: their inner checksum is partial too.
//!
//! No flag survives to say which frames these are, so [`finish_l4`] tells
//! them by their bytes. Offload leaves the field holding exactly the folded
//! pseudo-header sum, which costs a few additions to compute and compare;
//! only a frame whose field matches pays a pass over its bytes, which
//! completes it, unless it verifies as it is (a full checksum that happens
//! to equal its pseudo-header sum, one frame in 65,535). Any other field is
//! left unread beyond the compare: a switch forwards a wrong checksum for
//! the endpoint to drop, it neither repairs nor hides corruption, and not
//! verifying every frame keeps the cost of a frame with a full checksum at
//! the compare (the pass would be ~50 ns at 1,400 bytes).

use super::checksum::{fold, ones_sum, pseudo_header_v6};
use super::ethernet::ethertype;
use super::flow::PacketInfo;
use super::ip::proto;
use std::net::Ipv6Addr;
use xvs_types::FlowKey;

/// Where the checksum field sits in a TCP and a UDP header.
const TCP_CSUM: usize = 16;
const UDP_CSUM: usize = 6;
/// The shortest header the field fits in.
const TCP_MIN: usize = 20;
const UDP_MIN: usize = 8;

/// What [`finish_l4`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Checksum {
    /// Not TCP or UDP over IP, a fragment, or an IPv4 UDP datagram sent
    /// without a checksum (zero): nothing to check.
    None,
    /// Not left to offload, or left and already right: unchanged.
    Kept,
    /// It held the pseudo-header sum offload leaves; it is complete now.
    Completed,
}

/// Completes the TCP or UDP checksum of `frame`, parsed into `key` and
/// `info` by [`extract`](super::flow::extract), if its sender left it to
/// offload (see the module doc). Reads the L4 bytes only then, once, and
/// writes two bytes. Never panics: lengths come from `info`, checked
/// against `frame` here again.
///
/// Runs on every frame the pipeline stages, so the common case, a frame
/// whose field is not in the partial form, is kept to the compare: the
/// pseudo-header sum straight from the flow key's words (no address
/// conversions), the pass out of line. The instruction gate
/// (bench/instructions.sh) measured the first version, with them, at
/// +116 instructions per packet on the pipeline ops (+12%).
#[inline]
pub fn finish_l4(frame: &mut [u8], key: &FlowKey, info: &PacketInfo) -> L4Checksum {
    let proto = key.ip_proto();
    let field = match proto {
        proto::TCP => TCP_CSUM,
        proto::UDP => UDP_CSUM,
        _ => return L4Checksum::None,
    };
    if info.is_fragment {
        return L4Checksum::None;
    }
    let start = usize::from(info.l4_offset);
    let len = usize::from(info.l4_len);
    let Some(&[hi, lo]) = frame.get(start + field..start + field + 2) else {
        return L4Checksum::None;
    };
    let stored = u16::from_be_bytes([hi, lo]);
    let pseudo = match key.eth_type() {
        ethertype::IPV4 => {
            if stored == 0 && field == UDP_CSUM {
                return L4Checksum::None;
            }
            // The low 32 bits of the mapped addresses are the IPv4 ones.
            (key.nw_src() as u32 as u64)
                + (key.nw_dst() as u32 as u64)
                + u64::from(proto)
                + len as u64
        }
        ethertype::IPV6 => pseudo_header_v6(
            &Ipv6Addr::from(key.nw_src()),
            &Ipv6Addr::from(key.nw_dst()),
            proto,
            len as u32,
        ),
        _ => return L4Checksum::None,
    };
    // The folded sum of a pseudo header is never zero (its protocol is
    // not), and neither is the field offload leaves (Linux folds with an
    // end-around carry too): one compare, no +0/-0 to reconcile.
    if stored != fold(pseudo) {
        return L4Checksum::Kept;
    }
    complete(frame, start, len, field, pseudo)
}

/// The pass [`finish_l4`] leaves out of line: verify (a full checksum can
/// be in the partial form too), else complete.
#[cold]
#[inline(never)]
fn complete(frame: &mut [u8], start: usize, len: usize, field: usize, pseudo: u64) -> L4Checksum {
    let min = if field == TCP_CSUM { TCP_MIN } else { UDP_MIN };
    let Some(l4) = frame.get_mut(start..start + len) else {
        return L4Checksum::None;
    };
    if len < min {
        return L4Checksum::None;
    }
    // The bytes alone, field included: with the pseudo header added they
    // verify a full checksum; for a partial one the field already holds
    // the pseudo header's part.
    let bytes = ones_sum(0, l4);
    if fold(fold_u64(bytes) + fold_u64(pseudo)) == 0xffff {
        return L4Checksum::Kept;
    }
    let mut c = !fold(bytes);
    if c == 0 && field == UDP_CSUM {
        // RFC 768: a computed zero is sent as all ones (zero means none).
        c = 0xffff;
    }
    l4[field..field + 2].copy_from_slice(&c.to_be_bytes());
    L4Checksum::Completed
}

/// A sum folded to 16 bits, so two of them add without a carry out.
#[inline]
fn fold_u64(s: u64) -> u64 {
    u64::from(fold(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::pseudo_header_v4;
    use crate::wire::flow::extract;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn tcp4(payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 5201, 7, 65535)
            .ack(9)
            .write(&mut v, payload)
            .unwrap();
        v
    }

    fn udp6(payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv6([0xfd; 16], [0xfe; 16], 64)
            .udp(5000, 5001)
            .write(&mut v, payload)
            .unwrap();
        v
    }

    fn udp4(payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(5000, 5001)
            .write(&mut v, payload)
            .unwrap();
        v
    }

    /// What a kernel with checksum offload hands over: the field holds the
    /// folded pseudo-header sum.
    fn make_partial(f: &mut [u8]) -> (FlowKey, PacketInfo) {
        let mut key = FlowKey::default();
        let info = extract(f, &mut key).unwrap();
        let at = usize::from(info.l4_offset)
            + if key.ip_proto() == proto::TCP {
                TCP_CSUM
            } else {
                UDP_CSUM
            };
        let len = u32::from(info.l4_len);
        let ph = if key.eth_type() == ethertype::IPV4 {
            pseudo_header_v4(
                Ipv4Addr::from(key.nw_src() as u32),
                Ipv4Addr::from(key.nw_dst() as u32),
                key.ip_proto(),
                len,
            )
        } else {
            pseudo_header_v6(
                &Ipv6Addr::from(key.nw_src()),
                &Ipv6Addr::from(key.nw_dst()),
                key.ip_proto(),
                len,
            )
        };
        f[at..at + 2].copy_from_slice(&fold(ph).to_be_bytes());
        (key, info)
    }

    fn parse(f: &[u8]) -> (FlowKey, PacketInfo) {
        let mut key = FlowKey::default();
        let info = extract(f, &mut key).unwrap();
        (key, info)
    }

    #[test]
    fn valid_checksums_are_left_alone() {
        for mut f in [tcp4(b"hello"), udp6(b"world!"), udp4(&[0u8; 1400])] {
            let before = f.clone();
            let (k, i) = parse(&f);
            assert_eq!(finish_l4(&mut f, &k, &i), L4Checksum::Kept);
            assert_eq!(f, before);
        }
    }

    #[test]
    fn partial_checksums_are_completed_to_what_the_sender_would_compute() {
        for good in [tcp4(&[7u8; 1448]), udp6(&[1u8; 33]), udp4(b"x")] {
            let mut f = good.clone();
            let (k, i) = make_partial(&mut f);
            assert_ne!(f, good);
            assert_eq!(finish_l4(&mut f, &k, &i), L4Checksum::Completed);
            assert_eq!(f, good);
            assert_eq!(finish_l4(&mut f, &k, &i), L4Checksum::Kept);
        }
    }

    #[test]
    fn wrong_checksums_are_not_repaired() {
        let mut f = tcp4(b"payload");
        let (k, i) = parse(&f);
        let at = usize::from(i.l4_offset) + TCP_CSUM;
        f[at] ^= 0x5a;
        let before = f.clone();
        assert_eq!(finish_l4(&mut f, &k, &i), L4Checksum::Kept);
        assert_eq!(f, before);
    }

    /// The one frame in 65,535 whose full checksum equals its pseudo-header
    /// sum looks partial, is verified, and is kept as it is.
    #[test]
    fn a_full_checksum_in_the_partial_form_is_kept() {
        let found = (0..=u16::MAX).find_map(|w| {
            let good = tcp4(&w.to_be_bytes());
            let mut partial = good.clone();
            make_partial(&mut partial);
            (partial == good).then_some(good)
        });
        let mut f = found.expect("some payload word gives it");
        let before = f.clone();
        let (k, i) = parse(&f);
        assert_eq!(finish_l4(&mut f, &k, &i), L4Checksum::Kept);
        assert_eq!(f, before);
    }

    #[test]
    fn udp4_without_checksum_and_non_l4_are_none() {
        let mut f = udp4(b"abc");
        let (k, i) = parse(&f);
        let at = usize::from(i.l4_offset) + UDP_CSUM;
        f[at..at + 2].copy_from_slice(&[0, 0]);
        assert_eq!(finish_l4(&mut f, &k, &i), L4Checksum::None);
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&A);
        arp.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&[0u8; 20]);
        let (k, i) = parse(&arp);
        assert_eq!(finish_l4(&mut arp, &k, &i), L4Checksum::None);
    }

    proptest! {
        /// Whatever the payload: a full checksum verifies and is kept; the
        /// partial form is completed to the full one; both in place.
        #[test]
        fn partial_always_completes(payload in proptest::collection::vec(any::<u8>(), 0..1500), v6 in any::<bool>()) {
            let good = if v6 { udp6(&payload) } else { tcp4(&payload) };
            let mut f = good.clone();
            let (k, i) = parse(&f);
            prop_assert_eq!(finish_l4(&mut f, &k, &i), L4Checksum::Kept);
            let (k, i) = make_partial(&mut f);
            let r = finish_l4(&mut f, &k, &i);
            // A partial field that happens to verify (one in 65,535) is
            // indistinguishable from a full one, and correct either way.
            prop_assert!(r == L4Checksum::Completed || r == L4Checksum::Kept);
            prop_assert_eq!(f, good);
        }

        /// Arbitrary bytes with a lying `info` never panic.
        #[test]
        fn never_panics(mut f in proptest::collection::vec(any::<u8>(), 0..200), off in any::<u16>(), len in any::<u16>(), tcp in any::<bool>()) {
            let mut key = FlowKey::default();
            key.set_eth_type(ethertype::IPV6);
            key.set_ip_proto(if tcp { proto::TCP } else { proto::UDP });
            let info = PacketInfo { l3_offset: 14, l4_offset: off, vlan_offset: 0, l4_len: len, is_fragment: false };
            let _ = finish_l4(&mut f, &key, &info);
        }
    }
}
