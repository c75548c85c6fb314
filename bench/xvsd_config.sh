# Sourced by encap_decap.sh and compare.sh: the xvsd config both
# benchmarks run, so the two measure the same switch setup.
#   xvsd_bench_config KIND > FILE   (uses $VNI, $VM_B, $GEN_MAC)
# One bridge: the VM port p0 and a tunnel to 192.0.2.2 over the uplink u0.
# Both MACs are known up front: every frame is forwarded as unicast, never
# flooded, from the first one on.
xvsd_bench_config() {
  cat <<TOML
[uplink]
iface = "u0"
local_ips = ["192.0.2.1"]

[[bridges]]
name = "br0"

[[ports]]
name = "p0"
bridge = "br0"

[[tunnels]]
name = "tun"
bridge = "br0"
kind = "$1"
vni = $VNI
remotes = ["192.0.2.2"]

[[fdb]]
bridge = "br0"
mac = "$VM_B"
port = "tun"
remote = "192.0.2.2"

[[fdb]]
bridge = "br0"
mac = "$GEN_MAC"
port = "p0"
TOML
}
