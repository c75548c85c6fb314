//! xvs-agent: distributed host discovery for xvs on etcd (the seed VTEP
//! agent / flannel pattern). Each host registers its VTEP and virts under
//! a lease; every host watches the others and keeps its own xvsd's tunnel
//! flood lists and static FDB entries in step, through xvsd's control
//! socket only (no etcd, gRPC or async runtime inside xvsd).
//!
//! `config` is the agent's file, `registry` what hosts publish, `state`
//! the pure registry -> desired entries -> diff logic, `xvsd` the
//! translation into one transaction, `agent` the event loop.

pub mod agent;
pub mod config;
pub mod registry;
pub mod state;
pub mod xvsd;

/// Test helpers shared by the modules' unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    use crate::config::{AgentConfig, NetConfig, VirtConfig};
    use xvs_config::TunnelKind;
    use xvs_types::MacAddr;

    /// Host `hvN` (underlay 192.0.2.N) in net blue (VNI 100, bridge
    /// blue, tunnel vx) with virts 02:00:00:00:00:V / 10.1.0.V.
    pub(crate) fn host(n: u8, virts: &[u8]) -> AgentConfig {
        AgentConfig {
            etcd_endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/xvs/".into(),
            name: format!("hv{n}"),
            underlay_ip: format!("192.0.2.{n}").parse().unwrap(),
            vtep_mac: None,
            subnet: None,
            lease_ttl_secs: 10,
            xvsd_socket: "/tmp/none".into(),
            resync_secs: 5,
            nets: vec![NetConfig {
                name: "blue".into(),
                vni: 100,
                bridge: "blue".into(),
                tunnel: "vx".into(),
                kind: TunnelKind::Vxlan,
                lookup: false,
                virts: virts
                    .iter()
                    .map(|&v| VirtConfig {
                        mac: MacAddr([2, 0, 0, 0, 0, v]),
                        ip: Some(format!("10.1.0.{v}").parse().unwrap()),
                        port: None,
                    })
                    .collect(),
            }],
        }
    }
}
