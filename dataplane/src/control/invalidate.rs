//! Invalidation of a sender's stale FDB entry (lookup on miss): a VTEP that
//! receives a frame for a MAC that is not on one of its local ports tells
//! the sending VTEP, so the sender drops its entry and looks the MAC up
//! again on its next frame.
//!
//! The message is one UDP datagram from the receiving daemon to the
//! sender's underlay address, port [`PORT`]:
//!
//! ```text
//! 0      4    5    6      8            12              18     20
//! | "XVSi" | v=1 | 0 | VLAN | VNI (u32, BE) | MAC (6) | 0 0 |
//! ```
//!
//! It is authenticated by nothing but its source address: a receiver
//! acts on it only if that address is a remote (configured or dynamic)
//! of its tunnel port with that VNI, and only drops a learned or looked-up
//! entry that points at a tunnel (never a static one, never a local MAC).
//! Anyone who can send from a remote's address can make us look a MAC up
//! again, nothing more.

use xvs_types::MacAddr;

/// The UDP port invalidations are sent to and received on.
pub const PORT: u16 = 4799;
/// Length of a message.
pub const LEN: usize = 20;
const MAGIC: &[u8; 4] = b"XVSi";
const VERSION: u8 = 1;

/// What one message says: drop `mac` in `vlan` of the bridge of VNI `vni`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Invalidation {
    pub vni: u32,
    pub vlan: u16,
    pub mac: MacAddr,
}

impl Invalidation {
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0..4].copy_from_slice(MAGIC);
        b[4] = VERSION;
        b[6..8].copy_from_slice(&self.vlan.to_be_bytes());
        b[8..12].copy_from_slice(&self.vni.to_be_bytes());
        b[12..18].copy_from_slice(&self.mac.0);
        b
    }

    /// `None` for anything that is not exactly a version-1 message.
    pub fn decode(b: &[u8]) -> Option<Invalidation> {
        let b: &[u8; LEN] = b.try_into().ok()?;
        if &b[0..4] != MAGIC || b[4] != VERSION {
            return None;
        }
        Some(Invalidation {
            vlan: u16::from_be_bytes([b[6], b[7]]),
            vni: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            mac: MacAddr::from_slice(&b[12..18])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let i = Invalidation {
            vni: 0x12_3456,
            vlan: 10,
            mac: MacAddr([2, 0, 0, 0, 0, 7]),
        };
        let b = i.encode();
        assert_eq!(&b[..8], b"XVSi\x01\x00\x00\x0a");
        assert_eq!(Invalidation::decode(&b), Some(i));
        assert_eq!(Invalidation::decode(&b[..19]), None);
        let mut v2 = b;
        v2[4] = 2;
        assert_eq!(Invalidation::decode(&v2), None);
        let mut bad = b;
        bad[0] = b'Y';
        assert_eq!(Invalidation::decode(&bad), None);
    }
}
