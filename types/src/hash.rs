//! The multiply-fold hash (wyhash's "mum") that every hash of flow keys is
//! built from, and its secrets, in one place: the flow key's own hash
//! (exact-match cache, tunnel source-port entropy) and the classifier's
//! subtable hash chain them differently, but from the same parts.

/// Arbitrary odd constants, one per key word plus one for the final fold.
pub const SECRETS: [u64; 9] = [
    0xa076_1d64_78bd_642f,
    0xe703_7ed1_a0b4_28db,
    0x8ebc_6af0_9c88_c6e3,
    0x5899_65cc_7537_4cc3,
    0x1d8e_4e27_c47d_124f,
    0x9e37_79b9_7f4a_7c15,
    0xbf58_476d_1ce4_e5b9,
    0x94d0_49bb_1331_11eb,
    0x2545_f491_4f6c_dd1d,
];

/// One 64x64->128 multiply folded to 64 bits: a difference in any input
/// bit reaches the low bits too (a plain multiply only carries upwards).
#[inline(always)]
pub fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}
