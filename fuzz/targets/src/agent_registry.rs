//! xvs-agent's side of etcd: the host records every other host publishes
//! (JSON under `<prefix>hosts/<name>`), which a buggy or hostile host can
//! fill with anything. They go through what one reconcile does with them:
//! the registry, the desired state, the diff against what xvsd holds, the
//! transaction of xvsctl commands, and that transaction applied to xvsd's
//! config by the same code xvsd runs. No panic anywhere on the way.
//!
//! Asserted: xvsd takes the transaction (the commands apply and the
//! config they give validates and compiles), whatever the records say.
//! One host's record that xvsd would refuse (an underlay IP of the other
//! family, multicast, unspecified or loopback; a group virt MAC) used to
//! poison the whole transaction, cutting every host off; the agent now
//! leaves such records out (`registry::problems`).
//!
//! Input: records separated by 0xff (never a byte of UTF-8, so never part
//! of a JSON value); each is a selector byte, then the value. The selector
//! picks the host name (the local host's own name included: a remote may
//! claim it) and the etcd revision, so records can replace each other and
//! compete for a MAC.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use xvs_agent::config::AgentConfig;
use xvs_agent::registry::{self, Registry};
use xvs_agent::state;
use xvs_agent::xvsd;
use xvs_config::Config;
use xvs_ctl::command::apply_all;
use xvs_dataplane::control::Control;

const SEPARATOR: u8 = 0xff;

/// The local agent: an eager VXLAN net and a lazy Geneve one.
pub(crate) fn local() -> &'static AgentConfig {
    static L: OnceLock<AgentConfig> = OnceLock::new();
    L.get_or_init(|| {
        AgentConfig::parse(
            r#"
name = "hv1"
underlay_ip = "192.0.2.1"
[[nets]]
name = "blue"
vni = 100
bridge = "blue"
tunnel = "vx"
[[nets.virts]]
mac = "02:00:00:00:01:01"
ip = "10.1.0.1"
[[nets]]
name = "red"
vni = 200
bridge = "red"
tunnel = "gn"
kind = "geneve"
lookup = true
[[nets.virts]]
mac = "02:00:00:00:02:01"
ip = "10.2.0.1"
port = "p2"
"#,
        )
        .expect("agent config")
    })
}

/// The local xvsd as an operator set it up: the nets' bridges and ports,
/// an address someone else owns; no tunnels yet.
fn xvsd_config() -> Config {
    Config::from_toml(
        r#"
[uplink]
iface = "u1"
local_ips = ["192.0.2.1"]
[[bridges]]
name = "blue"
[[bridges]]
name = "red"
lookup = { provider = { kind = "external" } }
[[ports]]
name = "p1"
bridge = "blue"
[[ports]]
name = "p2"
bridge = "red"
[[addrs]]
bridge = "blue"
ip = "10.1.0.9"
mac = "02:00:00:00:01:09"
"#,
        "fuzz",
    )
    .expect("xvsd config")
}

pub fn agent_registry(data: &[u8]) {
    let local = local();
    let mut reg = Registry::new();
    for rec in data.split(|&b| b == SEPARATOR) {
        let Some((&sel, value)) = rec.split_first() else {
            continue;
        };
        let name = format!("hv{}", 1 + sel % 4);
        registry::put(&mut reg, &name, value, i64::from(sel >> 2), local);
    }
    let desired = state::desired(local, &reg);
    let desired = state::restrict(&desired, local, &BTreeSet::new());
    let cfg = xvsd_config();
    let (have, missing) = xvsd::installed(&cfg, local);
    let target = xvsd::installable(&desired, &missing, &cfg);
    let d = state::diff(&have, &target);
    assert_eq!(state::apply(&d, &have), target, "the diff does not replay");
    let cmds = xvsd::commands(&d, &cfg, &target, local);
    if cmds.is_empty() {
        // Nothing would be sent; compiling the unchanged config again
        // would only slow the fuzzer down.
        return;
    }
    let new = apply_all(&cmds, &cfg).unwrap_or_else(|e| panic!("{cmds:?}: {e:?}"));
    if let Err(e) = Control::new().apply(new) {
        panic!("xvsd refuses the transaction {cmds:?}: {e}");
    }
}
