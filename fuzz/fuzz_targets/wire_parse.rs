//! Every wire parser on arbitrary bytes: no panic, no out-of-bounds read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs_dataplane::types::FlowKey;
use xvs_dataplane::wire::{arp, flow, geneve, ipv4, ipv6, udp, vxlan};

fuzz_target!(|data: &[u8]| {
    let mut key = FlowKey::default();
    let _ = flow::extract(data, &mut key);
    if let Ok(p) = ipv4::Ipv4Packet::new_checked(data) {
        let _ = (p.verify_checksum(), p.payload().len(), p.options().len());
    }
    if let Ok(p) = ipv6::Ipv6Packet::new_checked(data) {
        let _ = p.upper_layer();
    }
    if let Ok(p) = udp::UdpPacket::new_checked(data) {
        let _ = p.payload().len();
    }
    let _ = vxlan::VxlanPacket::new_checked(data).map(|v| v.vni());
    if let Ok(g) = geneve::GenevePacket::new_checked(data) {
        for o in g.option_iter() {
            if o.is_err() {
                break;
            }
        }
        let _ = g.check_options(|_, _| false);
    }
    let _ = arp::ArpPacket::new_checked(data).map(|a| a.operation());
});
