//! IP protocol numbers (IANA "Assigned Internet Protocol Numbers"), shared by
//! IPv4's protocol field and IPv6's next header. Re-exported as
//! `wire::ip_proto`.

/// Protocol / next-header numbers.
pub mod proto {
    /// IPv6 hop-by-hop options (only valid first after the IPv6 header).
    pub const HOPOPT: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IGMP: u8 = 2;
    /// IPv4 in IP (IP-in-IP).
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    /// IPv6 encapsulated in IP.
    pub const IPV6: u8 = 41;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const GRE: u8 = 47;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const IPV6_NONXT: u8 = 59;
    pub const IPV6_OPTS: u8 = 60;
    pub const SCTP: u8 = 132;
    pub const MOBILITY: u8 = 135;
}
