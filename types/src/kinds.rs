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
