//! `xvsctl trace PORT SPEC`: the frame to trace, from a hex dump or built
//! from a flow match in the flows' own syntax (`udp,dl_src=...,dl_dst=...,
//! nw_src=...,nw_dst=...,tp_dst=53`, as ovs-appctl ofproto/trace takes
//! one), and the daemon's answer as text.

use std::fmt::Write as _;
use std::net::IpAddr;

use etherparse::PacketBuilder;
use xvs_types::flow::{FlowMatch, VlanMatch};

use crate::protocol::TraceResult;

/// The frame `spec` describes, as hex for the `trace` call: `spec` itself
/// when it is hex (an even number of hex digits, colons and spaces
/// allowed), else a frame built from it as a flow match. Fields the match
/// leaves out are zero; a match with no `dl_type` gives an Ethernet frame
/// of the local experimental type 0x88b5.
pub fn frame_hex(spec: &str) -> Result<String, String> {
    let digits: String = spec
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if digits.len() >= 28 && digits.len() % 2 == 0 && digits.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Ok(digits);
    }
    let m: FlowMatch = spec
        .parse()
        .map_err(|e| format!("{spec:?} is neither hex nor a flow match: {e}"))?;
    let frame = build(&m)?;
    Ok(frame.iter().map(|b| format!("{b:02x}")).collect())
}

fn build(m: &FlowMatch) -> Result<Vec<u8>, String> {
    let src = m.dl_src.map_or([0; 6], |x| x.value.0);
    let dst = m.dl_dst.map_or([0; 6], |x| x.value.0);
    let vid = match m.dl_vlan {
        Some(VlanMatch::Vid(v)) => Some(v),
        _ => None,
    };
    let (nw_src, nw_dst) = (m.nw_src.map(|p| p.addr()), m.nw_dst.map(|p| p.addr()));
    // The Ethernet header (and tag) by hand, so that every network layer
    // below goes through one builder type.
    let ethertype = m.dl_type.unwrap_or(0x88b5);
    let mut out = Vec::new();
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    if let Some(v) = vid {
        out.extend_from_slice(&[0x81, 0x00]);
        out.extend_from_slice(&(v & 0x0fff).to_be_bytes());
    }
    out.extend_from_slice(&ethertype.to_be_bytes());
    let ip = match ethertype {
        0x0800 => {
            let v4 = |a: Option<IpAddr>| match a {
                Some(IpAddr::V4(a)) => Ok(a.octets()),
                None => Ok([0; 4]),
                Some(IpAddr::V6(a)) => Err(format!("{a} in an IPv4 frame")),
            };
            PacketBuilder::ipv4(v4(nw_src)?, v4(nw_dst)?, 64)
        }
        0x86dd => {
            let v6 = |a: Option<IpAddr>| match a {
                Some(IpAddr::V6(a)) => Ok(a.octets()),
                None => Ok([0; 16]),
                Some(IpAddr::V4(a)) => Err(format!("{a} in an IPv6 frame")),
            };
            PacketBuilder::ipv6(v6(nw_src)?, v6(nw_dst)?, 64)
        }
        0x0806 => {
            // A request: who has nw_dst, tell nw_src (dl_src).
            let v4 = |a: Option<IpAddr>| match a {
                Some(IpAddr::V4(a)) => a.octets(),
                _ => [0; 4],
            };
            out.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
            out.extend_from_slice(&src);
            out.extend_from_slice(&v4(nw_src));
            out.extend_from_slice(&[0; 6]);
            out.extend_from_slice(&v4(nw_dst));
            return Ok(out);
        }
        _ => {
            out.extend_from_slice(&[0; 46]);
            return Ok(out);
        }
    };
    let (tp_src, tp_dst) = (
        m.tp_src.map_or(0, |x| x.value),
        m.tp_dst.map_or(0, |x| x.value),
    );
    let payload = [0u8; 18];
    match m.nw_proto {
        Some(6) => ip.tcp(tp_src, tp_dst, 1, 65535).write(&mut out, &payload),
        Some(17) | None => ip.udp(tp_src, tp_dst).write(&mut out, &payload),
        Some(1) => ip.icmpv4_echo_request(1, 1).write(&mut out, &payload),
        Some(58) => ip.icmpv6_echo_request(1, 1).write(&mut out, &payload),
        Some(p) => {
            return Err(format!(
                "nw_proto={p}: trace builds tcp, udp and icmp frames; give the frame in hex"
            ))
        }
    }
    .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The daemon's answer as the stages the frame went through.
pub fn render(t: &TraceResult) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "frame: {} bytes in on {}{}",
        t.frame_len,
        t.port,
        t.bridge
            .as_ref()
            .map_or(String::new(), |b| format!(" (bridge {b})"))
    );
    if t.acl.is_empty() {
        let _ = writeln!(s, "acl: no rule matched");
    }
    for a in &t.acl {
        let _ = writeln!(
            s,
            "acl: {} {} priority={} {} -> {}",
            a.port,
            a.dir,
            a.priority,
            if a.matches.is_empty() {
                "*"
            } else {
                &a.matches
            },
            a.action
        );
    }
    match (&t.flow, t.normal) {
        (Some(f), _) => {
            let _ = writeln!(
                s,
                "flow: priority={}{} actions={}",
                f.priority,
                if f.matches.is_empty() {
                    String::new()
                } else {
                    format!(",{}", f.matches)
                },
                f.actions
            );
        }
        (None, true) => {
            let _ = writeln!(s, "flow: NORMAL (the bridge has no flows)");
        }
        (None, false) => {
            let _ = writeln!(s, "flow: no rule matched (a table miss drops)");
        }
    }
    for (k, v) in &t.events {
        let _ = writeln!(s, "event: {k} x{v}");
    }
    if t.held {
        let _ = writeln!(
            s,
            "held: its destination missed; the bridge's lookup is asked"
        );
    }
    for (k, v) in &t.drops {
        let _ = writeln!(s, "dropped: {k} x{v}");
    }
    for (m, n) in &t.mirrors {
        let _ = writeln!(s, "mirror: {m} x{n} (its copies are among the outputs)");
    }
    let outs = t.outputs.len();
    if outs > 1 {
        let _ = writeln!(s, "output: {outs} frames (flooded or several outputs)");
    }
    for o in &t.outputs {
        let _ = writeln!(s, "output: {} ({} bytes)\n  {}", o.port, o.len, o.hex);
    }
    if outs == 0 && t.drops.is_empty() && !t.held {
        let _ = writeln!(s, "output: none");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_passes_and_a_flow_match_becomes_a_frame() {
        let h = "0200000000010200000000020800".repeat(2);
        assert_eq!(frame_hex(&h).unwrap(), h);
        let f = frame_hex(
            "udp,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_dst=53",
        )
        .unwrap();
        // Ethernet, IPv4 (protocol 17), UDP to port 53.
        assert_eq!(&f[..24], "020000000002020000000001");
        assert_eq!(&f[24..28], "0800");
        assert_eq!(&f[46..48], "11");
        assert_eq!(&f[72..76], "0035");
        let arp = frame_hex(
            "arp,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,nw_src=10.0.0.1,nw_dst=10.0.0.2",
        )
        .unwrap();
        assert_eq!(arp.len(), 84, "42 bytes");
        assert!(frame_hex("nw_proto=47,ip").is_err());
        assert!(frame_hex("not a match").is_err());
    }
}
