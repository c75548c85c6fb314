#!/usr/bin/env bash
# The demo: two hypervisors as network namespaces joined by an underlay
# veth, one xvsd in each; on each hypervisor one VM namespace sits on a
# VXLAN bridge (VNI 100) and one on a Geneve bridge (VNI 200, with a
# Geneve option). ping and an iperf3 TCP stream cross both tunnels; then
# everything is torn down (also on failure or Ctrl-C).
#
#   vm1a 10.1.0.1 ─ p1a ┐             ┌ p2a ─ vm2a 10.1.0.2   (blue,  VXLAN 100)
#                       hv1: xvsd ═ u1 ═ u2 ═ hv2: xvsd
#   vm1b 10.2.0.1 ─ p1b ┘ 192.0.2.1    192.0.2.2 └ p2b ─ vm2b 10.2.0.2 (green, Geneve 200)
#
# ./scripts/demo.sh --vm: vm1a and vm2a are virtual machines instead,
# QEMU guests (Debian's kernel and a busybox initramfs, scripts/guest.sh)
# on vhost-user ports p1a and p2a; vm1a pings vm2a across VXLAN from
# inside. QEMU runs under TCG (these machines' /dev/kvm runs only PVM
# kernels): the guests take some seconds to boot.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
[ "$(id -u)" = 0 ] || { echo "the demo creates network namespaces: run it as root" >&2; exit 1; }
ensure_packages "${BUILD_PACKAGES[@]}" iproute2 iputils-ping iperf3 ethtool
VM=0
case "${1:-}" in
  --vm) VM=1 ;;
  "") ;;
  *) echo "usage: scripts/demo.sh [--vm]" >&2; exit 1 ;;
esac
if [ "$VM" = 1 ]; then
  # QEMU 10: bookworm's 7.2 crashes when a TCG guest loads a vhost-user
  # NIC's driver.
  ensure_backports qemu-system-x86
  GUEST_DIR=${XVS_GUEST_DIR:-/var/tmp/xvs-guest}
  scripts/guest.sh "$GUEST_DIR"
fi

echo "== building xvsd and xvsctl (release)"
cargo build --release --locked -q -p xvsd -p xvs-ctl
XVSD=$PWD/target/release/xvsd
XVSCTL=$PWD/target/release/xvsctl

P=xvsdemo$$
tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in $namespaces; do ip netns del "$P-$ns" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

namespaces="hv1 hv2 vm1b vm2b"
[ "$VM" = 1 ] || namespaces+=" vm1a vm2a"
x() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }
for ns in $namespaces; do
  ip netns add "$P-$ns"
  x "$ns" ip link set lo up
done

# Underlay: u1 (hv1) <-> u2 (hv2); the kernel keeps the VTEP addresses (it
# answers ARP for them; xvsd only takes the tunnel traffic).
ip link add u1 netns "$P-hv1" type veth peer name u2 netns "$P-hv2"
x hv1 ip addr add 192.0.2.1/24 dev u1
x hv2 ip addr add 192.0.2.2/24 dev u2
x hv1 ip link set u1 up
x hv2 ip link set u2 up

# VMs: a veth each, the hypervisor end is the xvs port. MTU 1400 leaves
# room for the outer headers on the 1500-byte underlay. Offloads stay as
# the kernel sets them: xvs completes the checksums the VMs leave to
# offload (docs/operating.md, "TCP and checksums").
vm() { # vm NS IFACE HV PORT IP MAC
  ip link add "$2" netns "$P-$1" address "$6" type veth peer name "$4" netns "$P-$3"
  x "$1" ip link set "$2" mtu 1400 up
  x "$1" ip addr add "$5/24" dev "$2"
  x "$3" ip link set "$4" up
}
if [ "$VM" = 0 ]; then
  vm vm1a eth0 hv1 p1a 10.1.0.1 02:00:00:01:0a:01
  vm vm2a eth0 hv2 p2a 10.1.0.2 02:00:00:02:0a:01
fi
vm vm1b eth0 hv1 p1b 10.2.0.1 02:00:00:01:0b:01
vm vm2b eth0 hv2 p2b 10.2.0.2 02:00:00:02:0b:01

config() { # config N LOCAL REMOTE
  cat >"$tmp/hv$1.toml" <<TOML
[uplink]
iface = "u$1"
local_ips = ["$2"]

[[bridges]]
name = "blue"

[[bridges]]
name = "green"

[[ports]]
name = "p$1a"
bridge = "blue"
$([ "$VM" = 1 ] && echo "kind = { type = \"vhost-user\", socket = \"$tmp/vm$1a.sock\" }" || true)

[[ports]]
name = "p$1b"
bridge = "green"

[[tunnels]]
name = "vx"
bridge = "blue"
kind = "vxlan"
vni = 100
remotes = ["$3"]

[[tunnels]]
name = "gn"
bridge = "green"
kind = "geneve"
vni = 200
remotes = ["$3"]
geneve_opts = [{ class = 0x0102, type = 1, data = "00000001" }]
TOML
}
config 1 192.0.2.1 192.0.2.2
config 2 192.0.2.2 192.0.2.1

# One worker each, adaptive polling, pinned to different cores.
ncores=$(nproc)
for n in 1 2; do
  # Not through x(): $! must be xvsd itself (ip netns exec execs it), not a
  # subshell, so that SIGTERM reaches the daemon.
  RUST_LOG=${RUST_LOG:-info} NO_COLOR=1 ip netns exec "$P-hv$n" "$XVSD" --config "$tmp/hv$n.toml" \
    --socket "$tmp/xvsd$n.sock" --state "$tmp/state$n.json" \
    --cores $(( (n - 1) % ncores )) 2>"$tmp/xvsd$n.log" &
  pids+=($!)
done
for n in 1 2; do
  for _ in $(seq 100); do
    grep -q "xvsd running" "$tmp/xvsd$n.log" && break
    if ! kill -0 "${pids[$((n - 1))]}" 2>/dev/null; then cat "$tmp/xvsd$n.log"; exit 1; fi
    sleep 0.1
  done
  grep -q "xvsd running" "$tmp/xvsd$n.log" || { cat "$tmp/xvsd$n.log"; exit 1; }
done
echo "== xvsd on hv1:"; sed 's/^/   /' "$tmp/xvsd1.log"

if [ "$VM" = 1 ]; then
  # Each guest's virtio-net on its hypervisor's vhost-user port; memory
  # shared (memfd) as vhost-user needs. vm1a pings vm2a once up.
  guest() { # guest NAME IP [PEER]
    qemu-system-x86_64 -machine q35,accel=tcg -cpu max -m 256 -smp 1 -display none \
      -kernel "$GUEST_DIR/vmlinuz" -initrd "$GUEST_DIR/initrd.gz" \
      -append "console=ttyS0 panic=0 xvs.ip=$2/24${3:+ xvs.ping=$3}" \
      -serial "file:$tmp/$1.console" \
      -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
      -chardev "socket,id=c0,path=$tmp/$1.sock" -netdev vhost-user,id=n0,chardev=c0 \
      -device "virtio-net-pci,netdev=n0,mac=$4" </dev/null >"$tmp/$1.qemu.log" 2>&1 &
    pids+=($!)
  }
  echo "== booting two QEMU guests (TCG) on vhost-user ports p1a (hv1) and p2a (hv2)"
  guest vm2a 10.1.0.2 "" 02:00:00:02:0a:01
  guest vm1a 10.1.0.1 10.1.0.2 02:00:00:01:0a:01
  for g in vm1a vm2a; do
    for _ in $(seq 900); do grep -qs XVS-GUEST-READY "$tmp/$g.console" && break; sleep 0.2; done
    grep -qs XVS-GUEST-READY "$tmp/$g.console" ||
      { echo "$g did not come up:"; tail -n 20 "$tmp/$g.console" "$tmp/$g.qemu.log"; exit 1; }
    echo "   $g: $(grep -a XVS-GUEST-READY "$tmp/$g.console" | tr -d '\r')"
  done
  echo "== ping across VXLAN from inside vm1a (guest -> xvsd -> VXLAN -> xvsd -> guest)"
  for _ in $(seq 600); do
    [ "$(grep -ac 'XVS-GUEST-PING .*bytes from' "$tmp/vm1a.console")" -ge 4 ] && break
    sleep 0.2
  done
  grep -a 'XVS-GUEST-PING' "$tmp/vm1a.console" | head -n 5 | sed 's/^XVS-GUEST-PING /   /' | tr -d '\r'
  [ "$(grep -ac 'XVS-GUEST-PING .*bytes from' "$tmp/vm1a.console")" -ge 4 ] ||
    { echo "vm1a's pings were not answered"; exit 1; }
  echo "== ping across Geneve (vm1b -> vm2b)"
else
  echo "== ping across VXLAN (vm1a -> vm2a) and Geneve (vm1b -> vm2b)"
  x vm1a ping -c 4 -i 0.2 -W 2 10.1.0.2
fi
x vm1b ping -c 4 -i 0.2 -W 2 10.2.0.2

echo "== xvsctl on hv1: the learned MACs and the tunnel ports"
"$XVSCTL" --socket "$tmp/xvsd1.sock" fdb-show
"$XVSCTL" --socket "$tmp/xvsd1.sock" tunnel-ports

pairs=("vm2b 10.2.0.2 vm1b Geneve")
[ "$VM" = 1 ] || pairs=("vm2a 10.1.0.2 vm1a VXLAN" "${pairs[@]}")
for pair in "${pairs[@]}"; do
  set -- $pair
  echo "== iperf3 TCP, 3 s, $3 -> $1 over $4"
  x "$1" iperf3 -s -1 -D --pidfile "$tmp/iperf-$1.pid"
  sleep 0.3
  x "$3" timeout 20 iperf3 -c "$2" -t 3 -f m | grep -E "sender|receiver"
done

echo "== xvsctl on hv1: counters and worker load"
"$XVSCTL" --socket "$tmp/xvsd1.sock" stats
"$XVSCTL" --socket "$tmp/xvsd1.sock" worker-stats

echo "== stopping the daemons (SIGTERM); their counters:"
for pid in "${pids[@]}"; do kill -TERM "$pid"; done
for pid in "${pids[@]}"; do wait "$pid" || echo "xvsd (pid $pid) exited with status $?"; done
pids=()
for n in 1 2; do
  echo "-- hv$n"
  tail -n 12 "$tmp/xvsd$n.log" | sed "s/^/   /"
done
echo "== done"
