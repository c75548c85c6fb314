//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums are carried in a `u64` accumulator with end-around carry, so callers
//! can chain partial sums (pseudo header, then header, then payload) and fold
//! once at the end. Because 2^16 ≡ 1 (mod 0xffff), adding big-endian 32- or
//! 64-bit words with end-around carry gives the same folded result as adding
//! the 16-bit words they contain; that is what makes the 8-byte loop valid.
//!
//! Invariant: every chunk but the last passed to [`ones_sum`] in a chain must
//! have even length (an odd tail is padded with a zero byte, as RFC 1071 says
//! for the end of the data only).

use std::net::{Ipv4Addr, Ipv6Addr};

/// `a + b` with the carry out of bit 63 added back in (one's complement
/// addition). Cannot overflow: when it carries, the wrapped sum is at most
/// 2^64 - 2.
#[inline(always)]
fn add(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s + u64::from(carry)
}

/// One's complement sum of `data` taken as big-endian 16-bit words, added to
/// `initial`. An odd final byte is treated as if followed by a zero byte.
/// The result is unfolded: pass it to [`fold`] or chain it as `initial`.
///
/// The bulk is summed as little-endian 16-bit words into sixteen 32-bit
/// lanes: no carry to propagate (a block of 2,048 words cannot overflow
/// a lane), no byte swap per word, and LLVM turns the lanes into SSE2
/// vector adds (the build targets baseline x86-64; an AVX2 build would do
/// twice the bytes per add). RFC 1071 §2(B): a sum taken in the other byte order is the
/// byte-swapped sum, so the folded lanes are swapped once at the end. It
/// matters since the pipeline verifies (or completes) the L4 checksum of
/// every TCP and UDP frame a guest sends (`wire::offload`): measured with
/// `cargo bench -p xvs-bench --bench parse -- ones_sum`, 1,400 bytes take
/// 51 ns against 118 ns for the one-lane big-endian loop this replaced
/// (medians of one interleaved run on the shared dev VM); below 256 bytes
/// that loop alone runs.
#[inline]
pub fn ones_sum(initial: u64, data: &[u8]) -> u64 {
    // Short data takes the 8-byte loop alone: folding sixteen lanes costs
    // more than it saves below a few hundred bytes.
    let (bulk, mut rest) = data.split_at(if data.len() >= 256 {
        data.len() & !31
    } else {
        0
    });
    let mut le = 0u64;
    let mut chunks = bulk.chunks_exact(32);
    // Blocks of at most 2,048 chunks: a lane holds 2,048 words of 0xffff
    // without overflowing 32 bits.
    let mut left = chunks.len();
    while left > 0 {
        let n = left.min(2048);
        left -= n;
        let mut lanes = [0u32; 16];
        for c in chunks.by_ref().take(n) {
            for (l, w) in lanes.iter_mut().zip(c.chunks_exact(2)) {
                // Cannot fail (chunks_exact); map_or keeps the loop free of panics.
                *l += u32::from(<[u8; 2]>::try_from(w).map_or(0, u16::from_le_bytes));
            }
        }
        for l in lanes {
            le += u64::from(l);
        }
    }
    let mut acc = if le == 0 {
        initial
    } else {
        add(initial, u64::from(fold(le).swap_bytes()))
    };
    let mut words = rest.chunks_exact(8);
    for w in &mut words {
        // Cannot fail (chunks_exact); map_or keeps the loop free of panics.
        acc = add(acc, <[u8; 8]>::try_from(w).map_or(0, u64::from_be_bytes));
    }
    rest = words.remainder();
    if let Some((w, tail)) = rest.split_first_chunk::<4>() {
        acc = add(acc, u64::from(u32::from_be_bytes(*w)));
        rest = tail;
    }
    if let Some((w, tail)) = rest.split_first_chunk::<2>() {
        acc = add(acc, u64::from(u16::from_be_bytes(*w)));
        rest = tail;
    }
    if let Some(&b) = rest.first() {
        acc = add(acc, u64::from(b) << 8);
    }
    acc
}

/// Folds a one's complement accumulator to 16 bits. Not complemented: the
/// value to store in a checksum field is `!fold(..)`.
#[inline]
pub fn fold(sum: u64) -> u16 {
    // Each step halves the width; the bounds in the comments show the last
    // step cannot carry again.
    let s = (sum & 0xffff_ffff) + (sum >> 32); // <= 0x1_ffff_fffe
    let s = (s & 0xffff_ffff) + (s >> 32); // <= 0xffff_ffff
    let s = (s & 0xffff) + (s >> 16); // <= 0x1_fffe
    let s = (s & 0xffff) + (s >> 16); // <= 0xffff
    s as u16
}

/// The Internet checksum of `data`, ready to store in a header.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(ones_sum(0, data))
}

/// Updates a stored checksum field after a 16-bit word of the covered data
/// changed from `old` to `new` (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
/// Eqn. 3 rather than RFC 1141's `HC + m + ~m'`, which can store 0xffff
/// where a full recomputation gives 0x0000 (RFC 1624 §3); eqn. 3 agrees with
/// the full computation for any covered data that is not all zeros.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let sum = u64::from(!csum) + u64::from(!old) + u64::from(new);
    !fold(sum)
}

/// Like [`update16`] for a 32-bit field (an IPv4 address, a sequence
/// number): both halves in one fold.
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let sum = u64::from(!csum)
        + u64::from(!(old >> 16) as u16)
        + u64::from(!(old as u16))
        + u64::from((new >> 16) as u16)
        + u64::from(new as u16);
    !fold(sum)
}

/// Partial sum of the IPv4 pseudo header (RFC 768 / RFC 793): source,
/// destination, protocol and the upper-layer length. Pass it as `initial`
/// to [`ones_sum`] over the upper-layer header and payload.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u32) -> u64 {
    u64::from(u32::from(src)) + u64::from(u32::from(dst)) + u64::from(proto) + u64::from(len)
}

/// Partial sum of the IPv6 pseudo header (RFC 8200 §8.1).
#[inline]
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, proto: u8, len: u32) -> u64 {
    let s = u128::from(*src);
    let d = u128::from(*dst);
    let mut acc = add(s as u64, (s >> 64) as u64);
    acc = add(acc, d as u64);
    acc = add(acc, (d >> 64) as u64);
    add(acc, u64::from(proto) + u64::from(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The RFC 1071 reference: 16-bit words, 32-bit accumulator.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from(c[0]) << 8
            };
            sum += u32::from(w);
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(ones_sum(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn ipv4_header_fixture() {
        // A real IPv4 header (Wikipedia's example), checksum 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn fold_extremes() {
        assert_eq!(fold(0), 0);
        assert_eq!(fold(u64::MAX), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
    }

    #[test]
    fn pseudo_headers_match_byte_layout() {
        let s4 = Ipv4Addr::new(10, 1, 2, 3);
        let d4 = Ipv4Addr::new(192, 168, 255, 254);
        let mut ph = Vec::new();
        ph.extend_from_slice(&s4.octets());
        ph.extend_from_slice(&d4.octets());
        ph.extend_from_slice(&[0, 17, 0x12, 0x34]);
        assert_eq!(
            fold(pseudo_header_v4(s4, d4, 17, 0x1234)),
            fold(ones_sum(0, &ph))
        );

        let s6: Ipv6Addr = "fe80::ffff:1:2:3".parse().unwrap();
        let d6: Ipv6Addr = "ff02::1:ff00:ffff".parse().unwrap();
        let mut ph = Vec::new();
        ph.extend_from_slice(&s6.octets());
        ph.extend_from_slice(&d6.octets());
        ph.extend_from_slice(&0x0001_2345u32.to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(
            fold(pseudo_header_v6(&s6, &d6, 58, 0x0001_2345)),
            fold(ones_sum(0, &ph))
        );
    }

    proptest! {
        #[test]
        fn matches_reference(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(checksum(&data), reference(&data));
        }

        /// Long enough for the lanes, whatever the alignment of the start.
        #[test]
        fn lanes_match_reference(data in proptest::collection::vec(any::<u8>(), 0..3000), skip in 0usize..8) {
            let data = &data[skip.min(data.len())..];
            prop_assert_eq!(checksum(data), reference(data));
        }

        #[test]
        fn all_ones_matches_reference(len in 0usize..2000) {
            let data = vec![0xffu8; len];
            prop_assert_eq!(checksum(&data), reference(&data));
        }

        #[test]
        fn chained_equals_whole(data in proptest::collection::vec(any::<u8>(), 0..200), cut in 0usize..100) {
            let cut = (cut * 2).min(data.len() & !1);
            let whole = fold(ones_sum(0, &data));
            let chained = fold(ones_sum(ones_sum(0, &data[..cut]), &data[cut..]));
            prop_assert_eq!(whole, chained);
        }

        /// A random IPv4-like header (version/IHL byte fixed so the data is
        /// never all zero, where +0 and -0 would legitimately differ).
        #[test]
        fn update16_equals_recompute(mut h in proptest::array::uniform20(any::<u8>()), word in 0usize..10, new in any::<u16>()) {
            h[0] = 0x45;
            h[10] = 0;
            h[11] = 0;
            let word = if word == 5 || word == 0 { 4 } else { word };
            let c = checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            let old = u16::from_be_bytes([h[word * 2], h[word * 2 + 1]]);
            h[word * 2..word * 2 + 2].copy_from_slice(&new.to_be_bytes());
            let inc = update16(c, old, new);
            h[10] = 0;
            h[11] = 0;
            prop_assert_eq!(inc, checksum(&h));
        }

        #[test]
        fn update32_equals_recompute(mut h in proptest::array::uniform20(any::<u8>()), src in any::<bool>(), new in any::<u32>()) {
            h[0] = 0x45;
            h[10] = 0;
            h[11] = 0;
            let at = if src { 12 } else { 16 };
            let c = checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            let old = u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
            h[at..at + 4].copy_from_slice(&new.to_be_bytes());
            let inc = update32(c, old, new);
            h[10] = 0;
            h[11] = 0;
            prop_assert_eq!(inc, checksum(&h));
        }
    }
}
