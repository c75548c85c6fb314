//! Routes' vocabulary: IP prefixes (`10.0.0.0/8`, `2001:db8::/32`) with
//! no host bits set, who owns a route, and the errors of a prefix or route
//! that does not hold together. The route table is the dataplane's.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a prefix or a route was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("invalid prefix {0:?}: expected ADDRESS or ADDRESS/LENGTH")]
    Parse(String),
    #[error("invalid prefix {input:?}: length {len} exceeds {max} for this address family")]
    BadLength { input: String, len: u32, max: u8 },
    #[error(
        "invalid prefix {input:?}: host bits are set beyond /{len} (did you mean {canonical}?)"
    )]
    HostBits {
        input: String,
        len: u8,
        canonical: String,
    },
    #[error("route {prefix}: gateway {gateway} is not of the prefix's address family")]
    GatewayFamily { prefix: Prefix, gateway: IpAddr },
    #[error("route {prefix}: preferred source {src} is not of the prefix's address family")]
    SrcFamily { prefix: Prefix, src: IpAddr },
}

/// An IP prefix with no host bits set. Serialized as "addr/len".
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// The IPv4 netmask of a prefix length (0..=32).
pub fn mask_v4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

/// The IPv6 netmask of a prefix length (0..=128).
pub fn mask_v6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl Prefix {
    /// `addr/len`; refuses a length over 32 (IPv4) or 128 (IPv6) and host bits.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, RouteError> {
        Self::checked(addr, u32::from(len), || format!("{addr}/{len}"))
    }

    /// The host route for `addr` (/32 or /128).
    pub fn host(addr: IpAddr) -> Self {
        let len = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        Prefix { addr, len }
    }

    fn checked(addr: IpAddr, len: u32, input: impl Fn() -> String) -> Result<Self, RouteError> {
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        if len > u32::from(max) {
            return Err(RouteError::BadLength {
                input: input(),
                len,
                max,
            });
        }
        let len = len as u8;
        let canonical = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(len))),
        };
        if canonical != addr {
            return Err(RouteError::HostBits {
                input: input(),
                len,
                canonical: format!("{canonical}/{len}"),
            });
        }
        Ok(Prefix { addr, len })
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// True for the default route (`0.0.0.0/0`, `::/0`).
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether `ip` falls inside this prefix (never across families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => u32::from(a) & mask_v4(self.len) == u32::from(p),
            (IpAddr::V6(p), IpAddr::V6(a)) => u128::from(a) & mask_v6(self.len) == u128::from(p),
            _ => false,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Prefix {
    type Err = RouteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RouteError::Parse(s.to_string());
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let Some(len) = len else {
            return Ok(Prefix::host(addr));
        };
        // u32::from_str would take "+8"; a length is plain digits.
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let len: u32 = len.parse().map_err(|_| bad())?;
        Self::checked(addr, len, || s.to_string())
    }
}

impl Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Who owns a route: kernel routes are replaced wholesale on resync, user
/// routes only by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteOrigin {
    Kernel,
    User,
    /// From the config's `routes` (replaced whole on every apply).
    Config,
}
