//! Choices the configuration makes and the packet path acts on, named
//! once for both: a tunnel's encapsulation and what a lookup miss does.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A tunnel's encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TunnelKind {
    Vxlan,
    Geneve,
}

impl TunnelKind {
    pub fn default_port(self) -> u16 {
        match self {
            TunnelKind::Vxlan => 4789,
            TunnelKind::Geneve => 6081,
        }
    }
}

impl fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
        })
    }
}

/// The fate of a frame whose destination missed, while the lookup runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissAction {
    /// Flood it as a learning switch would.
    #[default]
    Flood,
    /// Drop it (counted `lookup_miss`); the sender's retry finds the entry.
    Drop,
    /// Keep it (a few dozen frames per worker, in their receive buffers)
    /// until a new snapshot may hold the answer, then forward it; drop it
    /// after `hold_ms` (`hold_expired`).
    Hold,
}

/// An outer tunnel header as a fast path outside the pipeline needs it to
/// push the header exactly as the pipeline's push does: the bytes, and
/// the base values the push patches per packet from. The dataplane's
/// templates give it (`Template::offload`), the TC executor
/// (`xvs_bpf::tc`) takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelOffload<'a> {
    /// Outer Ethernet, IP, UDP and tunnel header, lengths and checksums
    /// zero.
    pub hdr: &'a [u8],
    pub v6: bool,
    /// Where the outer UDP header starts.
    pub udp_off: usize,
    /// The outer IPv4 checksum with a zero total length.
    pub base_csum: u16,
    /// Outer TOS copied from the inner packet, else `base_tos` with the
    /// inner ECN bits.
    pub tos_inherit: bool,
    pub base_tos: u8,
}
