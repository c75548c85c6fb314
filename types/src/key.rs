//! The flow key that parsing fills and classification reads.
//!
//! The flow key is a fixed array of 64-bit words so that masking and hashing
//! are a handful of word operations with no branches on the field layout.

use std::fmt;

use crate::addr::{u128_to_ip, MacAddr, PortNo};
use crate::hash::{mum, SECRETS};

/// Number of 64-bit words in a [`FlowKey`].
pub const FLOW_WORDS: usize = 8;

/// The packed header fields a packet is classified on.
///
/// Word layout (all big-endian values in the low bits):
/// - w0: in_port (bits 48..64), vlan vid + present flag (bits 32..48: bit 47 =
///   tag present, 44..47 = PCP, 32..44 = VID), tunnel id / VNI (bits 0..32)
/// - w1: dl_src (bits 0..48), eth_type (bits 48..64)
/// - w2: dl_dst (bits 0..48), ip_proto (bits 48..56), ip tos (bits 56..64)
/// - w3, w4: nw_src as u128 (w3 high, w4 low; IPv4 mapped)
/// - w5, w6: nw_dst as u128
/// - w7: tp_src (bits 48..64), tp_dst (bits 32..48), reserved (bits 0..32)
///
/// ICMP type/code are carried in tp_src/tp_dst, as OpenFlow does.
#[derive(Clone, Copy, Default)]
pub struct FlowKey(pub [u64; FLOW_WORDS]);

impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl PartialEq for FlowKey {
    /// Branch-free word compare: the derived one calls memcmp, which costs
    /// more than the 8 XORs on the per-packet path.
    #[inline]
    fn eq(&self, other: &FlowKey) -> bool {
        let mut d = 0u64;
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            d |= a ^ b;
        }
        d == 0
    }
}

impl Eq for FlowKey {}

impl FlowKey {
    #[inline]
    pub fn in_port(&self) -> PortNo {
        (self.0[0] >> 48) as PortNo
    }
    #[inline]
    pub fn set_in_port(&mut self, p: PortNo) {
        self.0[0] = (self.0[0] & !(0xffff << 48)) | (u64::from(p) << 48);
    }
    /// VLAN TCI bits as stored: bit 15 = tag present, 12..15 PCP, 0..12 VID.
    #[inline]
    pub fn vlan_tci(&self) -> u16 {
        (self.0[0] >> 32) as u16
    }
    #[inline]
    pub fn set_vlan_tci(&mut self, tci: u16) {
        self.0[0] = (self.0[0] & !(0xffff << 32)) | (u64::from(tci) << 32);
    }
    /// The VLAN ID, or `None` for an untagged frame.
    #[inline]
    pub fn vlan_vid(&self) -> Option<u16> {
        let t = self.vlan_tci();
        (t & 0x8000 != 0).then_some(t & 0x0fff)
    }
    #[inline]
    pub fn tun_id(&self) -> u32 {
        self.0[0] as u32
    }
    #[inline]
    pub fn set_tun_id(&mut self, id: u32) {
        self.0[0] = (self.0[0] & !0xffff_ffff) | u64::from(id);
    }
    #[inline]
    pub fn dl_src(&self) -> MacAddr {
        MacAddr::from_u64(self.0[1] & 0xffff_ffff_ffff)
    }
    #[inline]
    pub fn set_dl_src(&mut self, m: MacAddr) {
        self.0[1] = (self.0[1] & !0xffff_ffff_ffff) | m.to_u64();
    }
    #[inline]
    pub fn eth_type(&self) -> u16 {
        (self.0[1] >> 48) as u16
    }
    #[inline]
    pub fn set_eth_type(&mut self, t: u16) {
        self.0[1] = (self.0[1] & 0xffff_ffff_ffff) | (u64::from(t) << 48);
    }
    #[inline]
    pub fn dl_dst(&self) -> MacAddr {
        MacAddr::from_u64(self.0[2] & 0xffff_ffff_ffff)
    }
    #[inline]
    pub fn set_dl_dst(&mut self, m: MacAddr) {
        self.0[2] = (self.0[2] & !0xffff_ffff_ffff) | m.to_u64();
    }
    #[inline]
    pub fn ip_proto(&self) -> u8 {
        (self.0[2] >> 48) as u8
    }
    #[inline]
    pub fn set_ip_proto(&mut self, p: u8) {
        self.0[2] = (self.0[2] & !(0xff << 48)) | (u64::from(p) << 48);
    }
    #[inline]
    pub fn ip_tos(&self) -> u8 {
        (self.0[2] >> 56) as u8
    }
    #[inline]
    pub fn set_ip_tos(&mut self, t: u8) {
        self.0[2] = (self.0[2] & !(0xff << 56)) | (u64::from(t) << 56);
    }
    #[inline]
    pub fn nw_src(&self) -> u128 {
        (u128::from(self.0[3]) << 64) | u128::from(self.0[4])
    }
    #[inline]
    pub fn set_nw_src(&mut self, a: u128) {
        self.0[3] = (a >> 64) as u64;
        self.0[4] = a as u64;
    }
    #[inline]
    pub fn nw_dst(&self) -> u128 {
        (u128::from(self.0[5]) << 64) | u128::from(self.0[6])
    }
    #[inline]
    pub fn set_nw_dst(&mut self, a: u128) {
        self.0[5] = (a >> 64) as u64;
        self.0[6] = a as u64;
    }
    #[inline]
    pub fn tp_src(&self) -> u16 {
        (self.0[7] >> 48) as u16
    }
    #[inline]
    pub fn set_tp_src(&mut self, p: u16) {
        self.0[7] = (self.0[7] & !(0xffff << 48)) | (u64::from(p) << 48);
    }
    #[inline]
    pub fn tp_dst(&self) -> u16 {
        (self.0[7] >> 32) as u16
    }
    #[inline]
    pub fn set_tp_dst(&mut self, p: u16) {
        self.0[7] = (self.0[7] & !(0xffff << 32)) | (u64::from(p) << 32);
    }

    /// Word-wise AND with a mask of the same layout.
    #[inline]
    pub fn masked(&self, mask: &FlowKey) -> FlowKey {
        let mut out = [0u64; FLOW_WORDS];
        for (o, (k, m)) in out.iter_mut().zip(self.0.iter().zip(mask.0.iter())) {
            *o = k & m;
        }
        FlowKey(out)
    }

    /// A fast, well-mixed 64-bit hash of the key (used by the exact-match
    /// cache, the classifier's subtables and the tunnel source-port entropy).
    /// Pairs of words go through a folded 64x64->128 multiply, so a
    /// difference in any bit reaches the low bits too (a plain multiply only
    /// carries upwards: keys differing in the L4 ports alone once landed in
    /// a handful of cache sets). Not DoS-resistant by itself.
    #[inline]
    pub fn hash_with(&self, seed: u64) -> u64 {
        // Two words per folded multiply (the wyhash "mum"), each half salted
        // with a distinct odd constant so a zero word cannot cancel the other.
        let w = &self.0;
        let mut h = seed;
        for i in 0..FLOW_WORDS / 2 {
            h = mum(
                w[2 * i] ^ SECRETS[2 * i] ^ h,
                w[2 * i + 1] ^ SECRETS[2 * i + 1],
            );
        }
        mum(h ^ SECRETS[0], SECRETS[1])
    }
}

impl fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowKey")
            .field("in_port", &self.in_port())
            .field("tun_id", &self.tun_id())
            .field("vlan_tci", &format_args!("{:#06x}", self.vlan_tci()))
            .field("dl_src", &self.dl_src())
            .field("dl_dst", &self.dl_dst())
            .field("eth_type", &format_args!("{:#06x}", self.eth_type()))
            .field("nw_src", &u128_to_ip(self.nw_src()))
            .field("nw_dst", &u128_to_ip(self.nw_dst()))
            .field("ip_proto", &self.ip_proto())
            .field("ip_tos", &self.ip_tos())
            .field("tp_src", &self.tp_src())
            .field("tp_dst", &self.tp_dst())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::addr::ipv4_to_u128;

    #[test]
    fn mac_parse_display_roundtrip() {
        let m: MacAddr = "02:00:0a:ff:00:01".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0x0a, 0xff, 0, 1]);
        assert_eq!(m.to_string(), "02:00:0a:ff:00:01");
        assert_eq!(MacAddr::from_u64(m.to_u64()), m);
        assert!("02:00:0a:ff:00".parse::<MacAddr>().is_err());
        assert!("02:00:0a:ff:00:01:02".parse::<MacAddr>().is_err());
        assert!("02:00:0a:ff:00:zz".parse::<MacAddr>().is_err());
        assert!("020:00:0a:ff:00:01".parse::<MacAddr>().is_err());
    }

    #[test]
    fn hash_spreads_keys_that_differ_in_one_field_over_low_bits() {
        // 1024 keys differing only in tp_src (the top of the last word)
        // must spread over the low 12 bits (an EMC of 4096 sets).
        let mut sets = std::collections::HashSet::new();
        for p in 0..1024u16 {
            let mut k = FlowKey::default();
            k.set_tp_src(p);
            sets.insert(k.hash_with(1) & 0xfff);
        }
        assert!(sets.len() > 800, "{} distinct sets", sets.len());
    }

    #[test]
    fn flow_key_fields_do_not_overlap() {
        let mut k = FlowKey::default();
        k.set_in_port(0xabcd);
        k.set_vlan_tci(0x8123);
        k.set_tun_id(0x00ff_eedd);
        k.set_dl_src(MacAddr([1, 2, 3, 4, 5, 6]));
        k.set_eth_type(0x0800);
        k.set_dl_dst(MacAddr([7, 8, 9, 10, 11, 12]));
        k.set_ip_proto(17);
        k.set_ip_tos(0xb8);
        k.set_nw_src(ipv4_to_u128(Ipv4Addr::new(10, 0, 0, 1)));
        k.set_nw_dst(u128::MAX - 5);
        k.set_tp_src(4789);
        k.set_tp_dst(6081);
        assert_eq!(k.in_port(), 0xabcd);
        assert_eq!(k.vlan_tci(), 0x8123);
        assert_eq!(k.vlan_vid(), Some(0x123));
        assert_eq!(k.tun_id(), 0x00ff_eedd);
        assert_eq!(k.dl_src(), MacAddr([1, 2, 3, 4, 5, 6]));
        assert_eq!(k.eth_type(), 0x0800);
        assert_eq!(k.dl_dst(), MacAddr([7, 8, 9, 10, 11, 12]));
        assert_eq!(k.ip_proto(), 17);
        assert_eq!(k.ip_tos(), 0xb8);
        assert_eq!(
            u128_to_ip(k.nw_src()),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(k.nw_dst(), u128::MAX - 5);
        assert_eq!(k.tp_src(), 4789);
        assert_eq!(k.tp_dst(), 6081);
    }
}
