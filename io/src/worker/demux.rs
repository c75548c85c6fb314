//! The miss pair's frames: each carries its ingress port in an 802.1ad
//! tag (TPID 0x88a8 after the MAC addresses, VID = the xvs port number)
//! that the guest ports' TC program pushed before redirecting it to the
//! one veth pair whose far end is a demux socket. The tag is taken off
//! in place, by moving the 12 MAC bytes forward over it (the payload
//! stays where the kernel wrote it), and the frame then goes through the
//! pipeline as received on the port the tag named.

use xvs_dataplane::frame::Frame;
use xvs_dataplane::wire::ethernet::ethertype;
use xvs_types::PortNo;

/// Bytes of the MAC addresses in front of the tag.
const MACS: usize = 12;
/// Bytes of the tag: TPID and TCI.
const TAG: usize = 4;
/// A tagged frame must still be an Ethernet header once untagged (its
/// own ethertype after the tag); shorter ones are refused here rather
/// than handed to the pipeline as something it never sees from a port.
const MIN_TAGGED: usize = MACS + TAG + 2;

/// The port number an S-tagged frame's bytes name (the TCI's VID; its
/// priority and DEI bits are not ours to read), if the frame is long
/// enough and its TPID is 0x88a8.
#[inline]
pub(super) fn tagged_port(data: &[u8]) -> Option<PortNo> {
    let tag: &[u8; TAG] = data.get(MACS..MACS + TAG)?.try_into().ok()?;
    if data.len() < MIN_TAGGED || u16::from_be_bytes([tag[0], tag[1]]) != ethertype::QINQ {
        return None;
    }
    Some(u16::from_be_bytes([tag[2], tag[3]]) & 0x0fff)
}

/// Takes the S-tag off `frame` in place and returns the port it named;
/// `None`, with the frame unchanged, when it has none (see
/// [`tagged_port`]).
#[inline]
pub(super) fn strip(frame: &mut Frame<'_>) -> Option<PortNo> {
    let port = tagged_port(frame.data())?;
    // Moves the 12 MAC bytes, not the payload; cannot fail on a frame
    // `tagged_port` accepted (at least 18 bytes).
    frame.remove_gap(MACS, TAG).then_some(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DST: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    const SRC: [u8; 6] = [2, 0, 0, 0, 0, 0xa];

    /// An untagged frame: MACs, ethertype 0x0800, `payload` bytes.
    fn plain(payload: usize) -> Vec<u8> {
        let mut f = [DST, SRC].concat();
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend((0..payload).map(|i| i as u8));
        f
    }

    /// `plain` with a tag of `tpid` and `tci` after the MACs.
    fn tagged(tpid: u16, tci: u16, payload: usize) -> Vec<u8> {
        let mut f = plain(payload);
        let tag = [tpid.to_be_bytes(), tci.to_be_bytes()].concat();
        f.splice(MACS..MACS, tag);
        f
    }

    /// Strips the frame's tag at headroom 64 in a 256-byte buffer;
    /// returns the port, the bytes after and the head.
    fn run(bytes: &[u8]) -> (Option<PortNo>, Vec<u8>, usize) {
        let mut buf = [0u8; 256];
        buf[64..64 + bytes.len()].copy_from_slice(bytes);
        let mut f = Frame::new(&mut buf, 64, bytes.len()).unwrap();
        let port = strip(&mut f);
        (port, f.data().to_vec(), f.head())
    }

    #[test]
    fn the_tag_comes_off_and_leaves_the_untagged_frame_four_bytes_later() {
        for payload in [0, 46, 150] {
            let (port, data, head) = run(&tagged(0x88a8, 7, payload));
            assert_eq!(port, Some(7));
            assert_eq!(data, plain(payload));
            assert_eq!(head, 64 + 4, "the frame starts later, not copied back");
        }
    }

    #[test]
    fn the_vid_is_the_low_twelve_bits_whatever_the_priority() {
        assert_eq!(run(&tagged(0x88a8, 0xf000 | 0x0abc, 46)).0, Some(0x0abc));
        assert_eq!(run(&tagged(0x88a8, 0x0fff, 46)).0, Some(0x0fff));
        assert_eq!(run(&tagged(0x88a8, 0, 46)).0, Some(0));
    }

    #[test]
    fn frames_without_the_s_tag_or_too_short_are_left_alone() {
        let cases = [
            plain(46),
            // A C-tag is not ours: the guest's own VLAN.
            tagged(0x8100, 7, 46),
            // Tagged but no ethertype after the tag.
            tagged(0x88a8, 7, 0)[..MIN_TAGGED - 1].to_vec(),
            tagged(0x88a8, 7, 0)[..MACS + 2].to_vec(),
            Vec::new(),
        ];
        for bytes in cases {
            let (port, data, head) = run(&bytes);
            assert_eq!(port, None, "{bytes:02x?}");
            assert_eq!(data, bytes);
            assert_eq!(head, 64);
        }
        // The shortest accepted: MACs, tag, ethertype.
        let (port, data, _) = run(&tagged(0x88a8, 3, 0));
        assert_eq!((port, data.len()), (Some(3), 14));
    }

    proptest::proptest! {
        /// Any bytes: no panic, and either nothing changed or exactly the
        /// four tag bytes went.
        #[test]
        fn any_bytes_strip_exactly_the_tag_or_nothing(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let (port, data, head) = run(&bytes);
            match port {
                None => {
                    proptest::prop_assert_eq!(&data, &bytes);
                    proptest::prop_assert_eq!(head, 64);
                }
                Some(p) => {
                    proptest::prop_assert_eq!(&data[..MACS], &bytes[..MACS]);
                    proptest::prop_assert_eq!(&data[MACS..], &bytes[MACS + TAG..]);
                    proptest::prop_assert_eq!(p, u16::from_be_bytes([bytes[14], bytes[15]]) & 0xfff);
                }
            }
        }
    }
}
