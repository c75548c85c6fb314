//! The small rules objects of a config are held to, shared with other
//! modules: the one name rule ([`check_name`]), what a unicast address or
//! MAC is, which addresses can be a remote VTEP, and the VLAN ID range.
//! Each answers for one value; [`Config::validate`](super::Config::validate)
//! applies them to whole configs.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::net::IpAddr;

pub use xvs_types::{is_unicast_ip, is_unicast_mac};

/// Most MACs or IPs a port may list: the dataplane checks each frame
/// against them with a scan or a search.
pub const MAX_ADDRS: usize = 64;

/// Whether `ip` can be a unicast remote VTEP of this host, whose own VTEP
/// addresses are `own`; `Err` says why not, after the address. Multicast
/// groups are the caller's matter (a group is a tunnel's only remote).
/// A subnet's broadcast address takes the host's interfaces to know:
/// xvsd checks it when it applies a config.
pub fn remote_vtep<S: BuildHasher>(ip: &IpAddr, own: &HashSet<IpAddr, S>) -> Result<(), String> {
    remote_vtep_by(ip, &|a| own.contains(a))
}

/// [`remote_vtep`], this host's own addresses given as a predicate (the
/// incremental validation counts them in a persistent map, not a set).
pub(crate) fn remote_vtep_by(ip: &IpAddr, is_own: &dyn Fn(&IpAddr) -> bool) -> Result<(), String> {
    if ip.is_unspecified() {
        Err("is the unspecified address, not a VTEP".into())
    } else if ip.is_loopback() {
        Err("is a loopback address: the tunnel would never leave this host".into())
    } else if ip.is_multicast() {
        Err("is a multicast address, not a unicast VTEP (a group can only be a multicast tunnel's single remote)".into())
    } else if matches!(ip, IpAddr::V4(a) if a.is_broadcast()) {
        Err("is the limited broadcast address, not a VTEP".into())
    } else if is_own(ip) {
        Err("is this host's own VTEP address (the uplink's or a tunnel's local)".into())
    } else {
        Ok(())
    }
}

/// Longest name of a bridge, port, tunnel or uplink: IFNAMSIZ - 1 bytes,
/// what a Linux interface name can be (ports and the uplink are
/// interfaces; bridges and tunnels are held to the same rule so any
/// object name can become one).
pub const MAX_NAME_LEN: usize = 15;

/// The one name rule of xvs, applied by xvsd to configs and persisted
/// state and by the control commands xvsctl sends (they run the same
/// code): `Err` says what is wrong with the name, in words that follow
/// the name in a message.
///
/// Names end up in flow text (`in_port=NAME,...`), interface lookups,
/// paths under /sys and on xvsctl's command line, so beyond what the
/// kernel refuses for interfaces (empty, too long, `.`/`..`, `/`, `:`,
/// whitespace) a name may not start with `-` (it would be read as an
/// option and could not be addressed) nor hold control characters or the
/// flow syntax's separators.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "name longer than {MAX_NAME_LEN} bytes (IFNAMSIZ - 1): {} bytes",
            name.len()
        ));
    }
    if name.starts_with('-') {
        return Err("name starts with '-' (it would read as a command-line option)".into());
    }
    if name == "." || name == ".." {
        return Err("name is a directory entry, not an interface name".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | ',' | '=' | ':' | '"'))
    {
        return Err(format!(
            "name contains {c:?} (no whitespace, control characters or / , = : \")"
        ));
    }
    Ok(())
}

/// A VLAN ID a frame can carry: 0 (untagged or priority-tagged) to 4094;
/// 4095 is reserved.
pub(super) fn vlan_ok(v: u16) -> bool {
    v < 4095
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_one_rule_everywhere_a_config_holds_one() {
        for ok in ["br0", "vm-1", "a", "eth0.100", "x_y", "vxlan1234567890"] {
            assert_eq!(check_name(ok), Ok(()), "{ok:?}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("-rf", "starts with '-'"),
            ("--", "starts with '-'"),
            ("a b", "' '"),
            ("a\tb", "'\\t'"),
            ("a\u{7}", "'\\u{7}'"),
            ("a/b", "'/'"),
            ("a:1", "':'"),
            ("in_port=1", "'='"),
            ("a,b", "','"),
            (".", "directory entry"),
            ("..", "directory entry"),
            ("vxlan12345678901", "longer than 15 bytes"),
        ] {
            let e = check_name(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
