#!/usr/bin/env bash
# The etcd discovery demo: an underlay segment (a bridge in namespace
# "net", etcd on its management address 192.0.2.254 only) and hypervisor
# namespaces with xvsd and xvs-agent each. The xvsd configs hold only the
# uplink, a bridge (with ARP suppression) and the VM's port: tunnel
# remotes, static MACs and overlay addresses all come from the agents. Three hosts find each
# other; a fourth joins by starting its agent; killing that agent makes
# it disappear from the others when its lease (3 s) expires. Everything
# is torn down at the end (also on failure or Ctrl-C).
#
#   vmN 10.1.0.N ─ pN ─ hvN: xvsd + xvs-agent ─ uN ═ br0 (net: etcd 192.0.2.254)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
[ "$(id -u)" = 0 ] || { echo "the demo creates network namespaces: run it as root" >&2; exit 1; }
ensure_packages "${BUILD_PACKAGES[@]}" iproute2 iputils-ping ethtool etcd-server etcd-client

# DEBUG=1: a debug build (quicker to build, enough for the demo).
if [ "${DEBUG:-0}" = 1 ]; then profile=dev dir=debug; else profile=release dir=release; fi
echo "== building xvsd, xvsctl and xvs-agent ($dir)"
cargo build --profile $profile --locked -q -p xvsd -p xvs-ctl -p xvs-agent
XVSD=$PWD/target/$dir/xvsd
XVSCTL=$PWD/target/$dir/xvsctl
AGENT=$PWD/target/$dir/xvs-agent

P=xvsetcd$$
tmp=$(mktemp -d)
pids=()
agent_pid=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in net hv1 hv2 hv3 hv4 vm1 vm2 vm3 vm4; do ip netns del "$P-$ns" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
x() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }

ip netns add "$P-net"
x net ip link set lo up
x net ip link add br0 type bridge
x net ip link set br0 up
x net ip addr add 192.0.2.254/24 dev br0
ETCD=http://192.0.2.254:2379
x net etcd --name demo --data-dir "$tmp/etcd" \
  --listen-client-urls $ETCD --advertise-client-urls $ETCD \
  --listen-peer-urls http://192.0.2.254:2380 --initial-advertise-peer-urls http://192.0.2.254:2380 \
  --initial-cluster demo=http://192.0.2.254:2380 2>"$tmp/etcd.log" &
pids+=($!)
for _ in $(seq 100); do
  x net etcdctl --endpoints $ETCD endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done
echo "== etcd $(etcd --version | head -1 | cut -d' ' -f3) on $ETCD (namespace net)"

hypervisor() { # hypervisor N: namespaces, underlay, VM, xvsd
  local n=$1
  ip netns add "$P-hv$n"; ip netns add "$P-vm$n"
  x "hv$n" ip link set lo up; x "vm$n" ip link set lo up
  ip link add "u$n" netns "$P-hv$n" type veth peer name "b$n" netns "$P-net"
  x net ip link set "b$n" master br0 up
  x "hv$n" ip addr add "192.0.2.$n/24" dev "u$n"
  x "hv$n" ip link set "u$n" up
  ip link add eth0 netns "$P-vm$n" address "02:00:00:0$n:0a:01" type veth peer name "p$n" netns "$P-hv$n"
  x "vm$n" ip link set eth0 mtu 1400 up
  x "vm$n" ip addr add "10.1.0.$n/24" dev eth0
  x "hv$n" ip link set "p$n" up
  cat >"$tmp/hv$n.toml" <<TOML
[uplink]
iface = "u$n"
local_ips = ["192.0.2.$n"]
[[bridges]]
name = "blue"
arp_suppress = true   # ARP for a registered virt is answered by xvsd
[[ports]]
name = "p$n"
bridge = "blue"
TOML
  NO_COLOR=1 ip netns exec "$P-hv$n" "$XVSD" --config "$tmp/hv$n.toml" \
    --socket "$tmp/xvsd$n.sock" --state "$tmp/state$n.json" 2>"$tmp/xvsd$n.log" &
  pids+=($!)
  for _ in $(seq 100); do grep -q "xvsd running" "$tmp/xvsd$n.log" && break; sleep 0.1; done
  grep -q "xvsd running" "$tmp/xvsd$n.log" || { cat "$tmp/xvsd$n.log"; exit 1; }
}

agent() { # agent N: write its config (see examples/xvs-agent.toml) and start it
  local n=$1
  cat >"$tmp/agent$n.toml" <<TOML
etcd_endpoints = ["$ETCD"]
name = "hv$n"
underlay_ip = "192.0.2.$n"
subnet = "10.1.0.$n/32"
lease_ttl_secs = 3
xvsd_socket = "$tmp/xvsd$n.sock"
[[nets]]
name = "blue"
vni = 100
bridge = "blue"
tunnel = "vx"
[[nets.virts]]
mac = "02:00:00:0$n:0a:01"
ip = "10.1.0.$n"
port = "p$n"
TOML
  NO_COLOR=1 ip netns exec "$P-hv$n" "$AGENT" --config "$tmp/agent$n.toml" 2>"$tmp/agent$n.log" &
  pids+=($!)
  agent_pid[$n]=$!
}

for n in 1 2 3; do hypervisor "$n"; agent "$n"; done
echo "== three hosts registered:"
sleep 1
x net etcdctl --endpoints $ETCD get --prefix /xvs/hosts/ | sed 's/^/   /'
echo "== vm1 -> vm2, vm3"
x vm1 ping -c 2 -i 0.2 -W 2 10.1.0.2 | tail -2
x vm1 ping -c 2 -i 0.2 -W 2 10.1.0.3 | tail -2

echo "== hv4 joins (its xvsd, then its agent; nobody else's config touched)"
hypervisor 4
start=$(date +%s%N)
agent 4
for _ in $(seq 100); do x vm1 ping -c 1 -W 0.3 10.1.0.4 >/dev/null 2>&1 && break; sleep 0.05; done
x vm1 ping -c 1 -W 1 10.1.0.4 >/dev/null || { cat "$tmp/agent1.log" "$tmp/agent4.log"; exit 1; }
echo "   vm1 reaches vm4 $(( ($(date +%s%N) - start) / 1000000 )) ms after hv4's agent started"
echo "== hv1's xvsd now (static MACs and overlay addresses from etcd):"
"$XVSCTL" --socket "$tmp/xvsd1.sock" fdb-show blue | sed 's/^/   /'
"$XVSCTL" --socket "$tmp/xvsd1.sock" arp-show blue | sed 's/^/   /'

echo "== hv4's agent killed (SIGKILL): its lease expires after 3 s"
kill -KILL "${agent_pid[4]}"
start=$(date +%s%N)
for _ in $(seq 100); do
  "$XVSCTL" --socket "$tmp/xvsd1.sock" --format json show | grep -q 192.0.2.4 || break
  sleep 0.1
done
echo "   hv4 gone from hv1 $(( ($(date +%s%N) - start) / 1000000 )) ms after the kill"
"$XVSCTL" --socket "$tmp/xvsd1.sock" fdb-show blue | sed 's/^/   /'
echo "== hv1's agent log:"
sed 's/^/   /' "$tmp/agent1.log"
echo "== done"
