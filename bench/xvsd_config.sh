# Sourced by encap_decap.sh and compare.sh: the xvsd config both
# benchmarks run, so the two measure the same switch setup.
#   xvsd_bench_config KIND > FILE   (uses $VNI, $VM_B, $GEN_MAC)
# One bridge: the VM port p0 and a tunnel to 192.0.2.2 over the uplink u0.
# Both MACs are known up front: every frame is forwarded as unicast, never
# flooded, from the first one on.
#
# Scaling knobs (environment; bench/scaling.sh sets them):
#   REMOTES=N    the tunnel has N remote VTEPs: 192.0.2.2 and 10.200.x.y,
#                all routed via 192.0.2.2 (one next hop, N templates)
#   FDB_SIZE=N   N more static MACs 02:10:00:00:00:00 + k behind the
#                tunnel, MAC k at remote k mod REMOTES (pktgen --vary
#                dst-mac --dst-mac 02:10:00:00:00:00 walks them)
#   ACL_RULES=N  N firewall rules on p0's ingress that the benchmark
#                traffic (UDP) never matches, spread over 10 priorities
#                (the firewall probes one hash table per priority)
xvsd_bench_config() {
  local remotes=${REMOTES:-1} fdb=${FDB_SIZE:-0} acl=${ACL_RULES:-0}
  cat <<TOML
[uplink]
iface = "u0"
local_ips = ["192.0.2.1"]

[[bridges]]
name = "br0"
fdb_max_entries = $((fdb + 1024))

[[ports]]
name = "p0"
bridge = "br0"

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
  # awk, not bash loops: a million entries are written in a second.
  awk -v kind="$1" -v vni="$VNI" -v n="$remotes" -v fdb="$fdb" -v acl="$acl" '
    function remote(i) { return i == 0 ? "192.0.2.2" : sprintf("10.200.%d.%d", int(i / 256), i % 256) }
    BEGIN {
      printf "\n[[tunnels]]\nname = \"tun\"\nbridge = \"br0\"\nkind = \"%s\"\nvni = %d\nremotes = [", kind, vni
      for (i = 0; i < n; i++) printf "%s\"%s\"", (i ? ", " : ""), remote(i)
      print "]"
      if (n > 1) print "\n[[routes]]\nprefix = \"10.200.0.0/16\"\ngateway = \"192.0.2.2\"\ndev = \"u0\""
      for (k = 0; k < fdb; k++)
        printf "\n[[fdb]]\nbridge = \"br0\"\nmac = \"02:10:%02x:%02x:%02x:%02x\"\nport = \"tun\"\nremote = \"%s\"\n",
          int(k / 16777216) % 256, int(k / 65536) % 256, int(k / 256) % 256, k % 256, remote(k % n)
      if (acl > 0) {
        printf "\n[[acls]]\nport = \"p0\"\ndir = \"in\"\nrules = ["
        for (k = 0; k < acl; k++) {
          p = k % 10
          printf "%s\"priority=%d,tcp,nw_src=10.%d.%d.%d/32,tp_dst=%d,action=drop\"", (k ? ", " : ""),
            100 + p, p, int(k / 256) % 256, k % 256, 1000 + p
        }
        print "]"
      }
    }'
}
