//! The vocabulary every part of xvs shares: addresses and port numbers
//! ([`MacAddr`], [`PortNo`]), IP prefixes, the flow key the packet path
//! fills, the rule languages with their text syntax ([`flow`] rules,
//! [`acl`] rules, [`qos`] policers), and the kinds the config chooses
//! ([`TunnelKind`], [`MissAction`]).
//!
//! It sits below everything else: the config model (`xvs-config`), the
//! dataplane, the daemon and xvsctl build on it, and it depends on no other
//! xvs crate, no socket and no syscall. What it defines is part of the
//! control protocol and the state file, so a change to a serde form here is
//! a change of those contracts.

pub mod acl;
mod addr;
pub mod flow;
pub mod hash;
mod key;
mod kinds;
pub mod qos;
pub mod route;

pub use addr::{
    ip_to_u128, ipv4_to_u128, is_unicast_ip, is_unicast_mac, u128_to_ip, BridgeNo, MacAddr,
    MacParseError, PortNo, NO_PORT,
};
pub use key::{FlowKey, FLOW_WORDS};
pub use kinds::{MissAction, TunnelKind, TunnelOffload};
pub use route::Prefix;
