//! The OpenFlow-like rule language: what a flow rule matches, what it does,
//! and its text syntax. The control plane compiles rules into
//! `xvs_dataplane::tables::flow::FlowTable`; xvsctl and the state file
//! speak the text.
//!
//! Semantics every user relies on:
//! - An IPv4 or IPv6 prefix on `nw_src`/`nw_dst` implies `dl_type` (0x0800 or
//!   0x86dd) when none is given, so an IPv4 rule never matches an IPv6 packet
//!   that carries an IPv4-mapped address.
//!
//! Text syntax (ovs-ofctl style; separators are commas or spaces, `actions=`
//! is last and takes the rest):
//! `priority=100,in_port=3,tun_id=42,dl_src=02:00:00:00:00:01/ff:ff:ff:00:00:00,
//! dl_vlan=10,dl_type=0x0800,nw_src=10.0.0.0/24,nw_proto=6,tp_dst=443/0xfff0,
//! actions=output:4,tunnel:5:0,mod_vlan_vid:7,strip_vlan,normal,flood,drop`.
//! Shorthands: `ip`, `ipv6`, `arp`, `tcp`, `udp`, `icmp`, `tcp6`, `udp6`,
//! `icmp6`. `dl_vlan=none` (or `0xffff`) matches untagged frames.
//!
//! Parts: this file holds the module's one error type, [`FlowError`];
//! `matching.rs` the match half of a rule ([`FlowMatch`]) and its fields;
//! `rule.rs` actions and whole rules ([`Action`], [`FlowRule`]). Everything
//! is re-exported here, so users name `flow::X` only.

mod matching;
mod rule;

pub use matching::{
    FlowMatch, IpPrefix, Masked, VlanMatch, ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6,
};
pub use rule::{Action, FlowRule, DEFAULT_PRIORITY};

/// Errors from flow parsing, validation and table building. Every message
/// names the offending token or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("unknown match field {0:?}")]
    UnknownField(String),
    #[error("field {0:?} needs a value (write {0}=VALUE)")]
    MissingValue(String),
    #[error("field {field} set twice with different values (second: {token:?})")]
    Duplicate { field: &'static str, token: String },
    #[error("bad value {value:?} for {field}: {reason}")]
    BadValue {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    #[error("bad action {token:?}: {reason}")]
    BadAction { token: String, reason: &'static str },
    #[error("flow {0:?} has no actions= clause (use actions=drop to drop)")]
    MissingActions(String),
    #[error("{field}={value} does not fit dl_type={dl_type:#06x}")]
    Conflict {
        field: &'static str,
        value: String,
        dl_type: u16,
    },
    #[error("flow rule {index} (priority {priority}): {source}")]
    InRule {
        index: usize,
        priority: u32,
        source: Box<FlowError>,
    },
}

fn bad(field: &'static str, value: &str, reason: &'static str) -> FlowError {
    FlowError::BadValue {
        field,
        value: value.to_string(),
        reason,
    }
}

/// Decimal or `0x` hex.
fn parse_uint(field: &'static str, s: &str, max: u64) -> Result<u64, FlowError> {
    let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        s.parse::<u64>()
    }
    .map_err(|_| bad(field, s, "not a decimal or 0x-hex number"))?;
    if v > max {
        return Err(bad(field, s, "out of range"));
    }
    Ok(v)
}
