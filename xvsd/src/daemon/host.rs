//! What a config may not ask of this host, which [`Config::validate`]
//! cannot know without it: the loopback interface as a port (xvs would
//! take every frame the host sends to itself, and its own addresses
//! would stop answering), and a tunnel remote that is the broadcast
//! address of one of the host's IPv4 subnets.
//!
//! Checked on every config xvsd applies, before anything is touched; a
//! port whose interface is not there (yet) is not this module's matter.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use rustc_hash::FxHashSet;
use xvs_config::{Config, ConfigError, ConfigErrors, Shared};

/// `IFF_LOOPBACK` in `/sys/class/net/NAME/flags`.
const IFF_LOOPBACK: u32 = 0x8;

/// Every problem `config` has with this host, each naming its object.
/// What runs (`running`) was checked when it was applied: only the ports
/// and tunnels that are new or changed are checked again, so that a
/// transaction does not cost a sysfs read per guest.
pub(super) fn check(config: &Config, running: &Config) -> Result<(), ConfigErrors> {
    let mut errs = Vec::new();
    let old_ports = addresses(&running.ports);
    for p in config
        .ports
        .iter()
        .filter(|p| !old_ports.contains(&addr(p)))
    {
        if is_loopback(&p.name) {
            errs.push(ConfigError {
                object: format!("port {:?}", p.name),
                message: format!(
                    "{:?} is the host's loopback interface: it cannot be a port (the host's own \
                     traffic would go to the switch)",
                    p.name
                ),
            });
        }
    }
    let old_tunnels = addresses(&running.tunnels);
    let mut broadcasts = None;
    for t in config
        .tunnels
        .iter()
        .filter(|t| !old_tunnels.contains(&addr(t)))
    {
        let broadcasts = broadcasts.get_or_insert_with(subnet_broadcasts);
        for r in &t.remotes {
            if let IpAddr::V4(a) = r {
                if broadcasts.contains(a) {
                    errs.push(ConfigError {
                        object: format!("tunnel {:?}", t.name),
                        message: format!(
                            "remote {r} is the broadcast address of a subnet of this host, not a VTEP"
                        ),
                    });
                }
            }
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errs))
    }
}

/// Where a config object lives: an unchanged one is at the same address in
/// every copy of the config.
fn addr<T>(x: &Shared<T>) -> usize {
    Shared::as_ptr(x) as usize
}

fn addresses<T>(list: &[Shared<T>]) -> FxHashSet<usize> {
    list.iter().map(addr).collect()
}

/// Whether interface `name` is there and is a loopback device.
fn is_loopback(name: &str) -> bool {
    // A name with a '/' would walk out of the directory; the name rule
    // refuses those before this runs.
    if name.contains('/') {
        return false;
    }
    let flags = Path::new("/sys/class/net").join(name).join("flags");
    std::fs::read_to_string(flags)
        .ok()
        .and_then(|t| u32::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|f| f & IFF_LOOPBACK != 0)
}

/// The broadcast address of every IPv4 subnet on this host's interfaces
/// (prefixes of /30 and shorter: /31 and /32 have none).
fn subnet_broadcasts() -> BTreeSet<Ipv4Addr> {
    let mut out = BTreeSet::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head to `head`, which we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs made, not freed yet.
        let ifa = unsafe { &*cur };
        if let (Some(addr), Some(mask)) = (v4(ifa.ifa_addr), v4(ifa.ifa_netmask)) {
            let (a, m) = (u32::from(addr), u32::from(mask));
            if m.leading_ones() <= 30 {
                out.insert(Ipv4Addr::from(a | !m));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// The IPv4 address in `sa`, if it is one.
fn v4(sa: *const libc::sockaddr) -> Option<Ipv4Addr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: a non-null sockaddr from getifaddrs; its family says which
    // struct it is, and AF_INET ones are sockaddr_in.
    unsafe {
        if i32::from((*sa).sa_family) != libc::AF_INET {
            return None;
        }
        let sin = &*(sa.cast::<libc::sockaddr_in>());
        Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvs_config::{BridgeConfig, PortConfig};

    #[test]
    fn the_loopback_interface_is_no_port() {
        let c = Config {
            bridges: vec![BridgeConfig::new("br0").into()],
            ports: vec![PortConfig::new("lo", "br0").into()],
            ..Default::default()
        };
        let e = check(&c, &Config::default()).unwrap_err().to_string();
        assert!(e.contains("port \"lo\"") && e.contains("loopback"), "{e}");
        assert!(!is_loopback("no-such-iface0"));
        // Checked when it was applied: a copy of what runs is not checked
        // again, a changed port is.
        let mut again = c.clone();
        assert_eq!(check(&again, &c), Ok(()));
        again.ports[0].mtu = 1400;
        assert!(check(&again, &c).is_err());
    }
}
