#!/usr/bin/env bash
# Bulk TCP (iperf3) through a VXLAN/Geneve switch: xvs and the Linux
# kernel's vxlan/geneve behind a Linux bridge, side by side on the SAME
# namespace topology, interleaved in one run (issue 17, item 3).
#
#   ns vm:     vm0 10.0.0.1/24 fd00::1/64 (the guest; iperf3 client)
#                └── veth ── ns sw: p0        (the switch's VM port)
#                            ns sw: u0        (its underlay port, VTEP 192.0.2.1)
#                              └── veth ── ns remote: s0 (VTEP 192.0.2.2)
#              ns remote:  vx0, the kernel's vxlan (dstport 4789) or geneve
#                          (6081) device, VNI 100, remote 192.0.2.1, over s0,
#                          10.0.0.2/24 fd00::2/64 (the remote guest; iperf3 server)
#
# The guests keep the kernel's DEFAULT OFFLOADS (checksum offload, TSO,
# GSO, GRO): TCP's segments leave vm0 and vx0 with their checksums
# partial (CHECKSUM_PARTIAL) and, where the path allows it, as 64 KiB
# super-packets; what a switch does with them is what this measures.
# GUEST_TX_CSUM=off (a diagnostic, not a benchmark setting) turns TX
# checksum offload (and with it TSO) off on vm0 and vx0.
#
# Contenders, in ns sw, one at a time on p0 and u0:
#   kernel   br0 = {p0, vx0}, vx0 a vxlan (or geneve) device, VNI 100 to
#            192.0.2.2, static FDB entries for both guests (as compare.sh).
#   xvs      xvsd (XVSD_BIN), one worker on core 1 (--workers 1 --cores 1,
#            as compare.sh) polling XVS_POLL (busy as compare.sh, or
#            adaptive, xvsd's default), a bridge br0 = {p0, tunnel to
#            192.0.2.2}, both guests' MACs static; port and uplink MTUs
#            from the point (xvsd_bench_config knows no MTU, so the config
#            is written here).
#   xvsfast  xvsd as `xvs`, with --fastpath: p0 gets the TC executor and
#            no XDP program (vm0 keeps GSO), established flows are carried
#            whole, the rest reaches the worker through the miss pair.
# REMOTE=xvsd (a knob): the remote guest is a namespace of its own (rg:
# rg0, the same addresses and MAC) behind an xvsd --fastpath in ns remote
# (uplink s0, port rp0, unpinned, adaptive polling) instead of the
# kernel's tunnel device: Geneve can then be measured where the kernel
# has no geneve module, xvs's VXLAN against its Geneve.
# Nothing is pinned but xvsd's worker: both TCP endpoints, their softirqs
# and the kernel's bridge share the machine's cores, as guests on a host.
#
# A point is (tunnel, overlay MTU, address family, streams, direction).
# The overlay MTU is on vm0, p0, vx0 (both ends); the underlay (u0, s0)
# has 50 bytes more. Directions: vm2remote (vm0 sends) and remote2vm
# (iperf3 -R: vx0's end sends). The namespaces are made once per (run,
# tunnel, MTU); inside, each point's contender rows follow each other,
# each contender set up for its row and taken down after, the first
# contender alternating from point to point and run to run, so both
# see the same machine. A contender that cannot be set up for a point
# (xvsd refusing the MTU, an XDP attach the veth refuses, a kernel
# without geneve) gives a `failed` row with the reason (stderr's tail);
# the run goes on.
#
# Each row: Gbit/s (iperf3 -J, end.sum_received), retransmits
# (end.sum_sent), and the CPU it cost: non-idle jiffies of all cores
# (/proc/stat: user+nice+system+irq+softirq+steal) over the measured
# interval (from the moment every stream is established, DURATION
# seconds), as cores busy, and that per Gbit/s ("cores per Gbit/s":
# CPU-seconds per second per Gbit/s); the softirq share of it; xvsd's own
# CPU (its threads' utime+stime). Sanity: the TCP checksum errors
# (/proc/net/snmp Tcp InCsumErrors, IPv4 and IPv6 alike) counted in the
# receiving guest's namespace, and in the sending one (the ACKs; in
# remote2vm also the client's SYNs, as the sender is iperf3's server);
# nonzero means frames arrived with a bad checksum. Other load: CPU % of
# processes not the benchmark's (top, mid-row; 200 = both cores busy), a
# build beside the run shows there.
#
# Usage (root):  bench/tcp.sh
# Knobs: RUNS=3, DURATION=6 (s per iperf3 run), CONTENDERS="kernel xvs",
#   KINDS="vxlan geneve", MTUS="1450 8950", FAMILIES=4 (or "4 6": inner
#   IPv6 too), STREAMS="1 4", DIRS="vm2remote remote2vm",
#   XVS_POLL=busy (or adaptive), GUEST_TX_CSUM=on (off: diagnostic),
#   KERNEL_GRO=on (off: diagnostic, the kernel contender's vx0 without GRO),
#   XVSD_BIN / XVSCTL_BIN (another build; no cargo build then),
#   REMOTE=kernel (or xvsd: see above),
#   OUT=bench/results/tcp-<UTC date-time>.
# Output in OUT: runs.jsonl (one JSON object per row), table.md (medians
#   per point), meta.json, logs/ (xvsd's and iperf3's). Every wait is
#   bounded; on exit (also on error or Ctrl-C) every process it started
#   is stopped and the namespaces (with any XDP program on their
#   interfaces) deleted.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
source bench/procs.sh
[ "$(id -u)" = 0 ] || { echo "creates network namespaces and attaches XDP: run as root" >&2; exit 1; }
ensure_packages "${BUILD_PACKAGES[@]}" iproute2 iperf3 procps util-linux ethtool python3

RUNS=${RUNS:-3}
RUN0=${RUN0:-0}   # runs are numbered RUN0+1..RUN0+RUNS (bench/bulk.sh: one run per call)
REMOTE=${REMOTE:-kernel}
case $REMOTE in kernel) RG=remote RG_IF=vx0 ;; xvsd) RG=rg RG_IF=rg0 ;; *) echo "REMOTE=$REMOTE: kernel or xvsd" >&2; exit 1 ;; esac
DURATION=${DURATION:-6}
CONTENDERS=${CONTENDERS:-kernel xvs}
KINDS=${KINDS:-vxlan geneve}
MTUS=${MTUS:-1450 8950}
FAMILIES=${FAMILIES:-4}
STREAMS=${STREAMS:-1 4}
DIRS=${DIRS:-vm2remote remote2vm}
XVS_POLL=${XVS_POLL:-busy}
GUEST_TX_CSUM=${GUEST_TX_CSUM:-on}
OUT=${OUT:-bench/results/tcp-$(date -u +%Y-%m-%d-%H%M)}
VNI=100
PORT=5201

case $XVS_POLL in busy|adaptive) ;; *) echo "XVS_POLL=$XVS_POLL: busy or adaptive" >&2; exit 1 ;; esac
case $GUEST_TX_CSUM in on|off) ;; *) echo "GUEST_TX_CSUM=$GUEST_TX_CSUM: on or off" >&2; exit 1 ;; esac
for c in $CONTENDERS; do
  case $c in kernel|xvs|xvsfast|gso) ;; *) echo "contender $c: kernel, xvs, xvsfast or gso" >&2; exit 1 ;; esac
done
for f in $FAMILIES; do
  case $f in 4|6) ;; *) echo "family $f: 4 or 6" >&2; exit 1 ;; esac
done
[ "$(nproc)" -ge 2 ] || { echo "needs 2 cores (xvsd's worker goes on core 1)" >&2; exit 1; }

if [[ " $CONTENDERS " == *" xvs"* ]] || [ "$REMOTE" = xvsd ]; then
  if [ -z "${XVSD_BIN:-}" ] || [ -z "${XVSCTL_BIN:-}" ]; then
    echo "== building (release)" >&2
    cargo build --release --locked -q -p xvsd -p xvs-ctl --bin xvsd --bin xvsctl
  fi
fi
XVSD=${XVSD_BIN:-$PWD/target/release/xvsd}
XVSCTL=${XVSCTL_BIN:-$PWD/target/release/xvsctl}
HZ=$(getconf CLK_TCK)

mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
JSONL=$OUT/runs.jsonl
: >"$JSONL"

P=xvstcp$$
tmp=$(mktemp -d)
PIDS=()          # every background process we started, stopped on exit
xvsd_pid=
cleanup() {
  local pid ns
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do stop_wait "$pid"; done
  # Deleting a namespace deletes its veths and with them any XDP program.
  for ns in vm sw remote; do ip netns del "$P-$ns" 2>/dev/null || true; done
  if [ -d "$tmp" ]; then cp "$tmp"/*.log "$OUT/logs/" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

x() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }

VM_MAC=02:00:00:00:0a:01    # vm0, the local guest
P0_MAC=02:00:00:00:0a:02
U0_MAC=02:00:00:00:00:01    # the switch's underlay port, VTEP 192.0.2.1
S0_MAC=02:00:00:00:00:02    # the remote VTEP 192.0.2.2
VX_MAC=02:00:00:00:0b:01    # vx0, the remote guest behind the tunnel

# ---------------------------------------------------------------------
# The topology, per (run, tunnel, MTU).
topo_up() { # topo_up MTU
  local mtu=$1 umtu=$(($1 + 50)) ns
  for ns in vm sw remote; do
    ip netns add "$P-$ns"
    x "$ns" ip link set lo up
  done
  # The switch and the underlay carry no IPv6 of their own: no router
  # solicitations or MLD reports in the measured path. The guests keep
  # it for FAMILIES=6.
  x sw sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip link add vm0 netns "$P-vm" address $VM_MAC numtxqueues 1 numrxqueues 1 mtu "$mtu" \
    type veth peer name p0 netns "$P-sw" address $P0_MAC numtxqueues 1 numrxqueues 1 mtu "$mtu"
  ip link add u0 netns "$P-sw" address $U0_MAC numtxqueues 1 numrxqueues 1 mtu "$umtu" \
    type veth peer name s0 netns "$P-remote" address $S0_MAC numtxqueues 1 numrxqueues 1 mtu "$umtu"
  x remote sysctl -qw net.ipv6.conf.s0.disable_ipv6=1
  x sw ip addr add 192.0.2.1/24 dev u0
  x remote ip addr add 192.0.2.2/24 dev s0
  # Static neighbours everywhere: what is measured is forwarding, not
  # ARP/ND through a switch that might suppress or flood it.
  x sw ip neigh replace 192.0.2.2 lladdr $S0_MAC dev u0 nud permanent
  x remote ip neigh replace 192.0.2.1 lladdr $U0_MAC dev s0 nud permanent
  x vm ip addr add 10.0.0.1/24 dev vm0
  x vm ip addr add fd00::1/64 dev vm0 nodad
  x vm ip link set vm0 up
  x vm ip neigh replace 10.0.0.2 lladdr $VX_MAC dev vm0 nud permanent
  x vm ip neigh replace fd00::2 lladdr $VX_MAC dev vm0 nud permanent
  x sw ip link set p0 up
  x sw ip link set u0 up
  x remote ip link set s0 up
}
# remote_up KIND MTU: the remote guest's tunnel device; fails (stderr
# says why) where the kernel has no such device.
remote_up() {
  local mtu=$2
  if [ "$REMOTE" = xvsd ]; then
    remote_xvsd_up "$@"
    return
  fi
  if [ "$1" = vxlan ]; then
    x remote ip link add vx0 address $VX_MAC mtu "$mtu" type vxlan id $VNI \
      local 192.0.2.2 remote 192.0.2.1 dstport 4789 dev s0 || return 1
  else
    x remote ip link add vx0 address $VX_MAC mtu "$mtu" type geneve id $VNI \
      remote 192.0.2.1 dstport 6081 || return 1
  fi
  x remote ip addr add 10.0.0.2/24 dev vx0 || return 1
  x remote ip addr add fd00::2/64 dev vx0 nodad || return 1
  x remote ip link set vx0 up || return 1
  x remote ip neigh replace 10.0.0.1 lladdr $VM_MAC dev vx0 nud permanent || return 1
  x remote ip neigh replace fd00::1 lladdr $VM_MAC dev vx0 nud permanent || return 1
  if [ "$GUEST_TX_CSUM" = off ]; then
    x vm ethtool -K vm0 tx off >/dev/null || return 1
    x remote ethtool -K vx0 tx off >/dev/null || return 1
  fi
}
# remote_xvsd_up KIND MTU: REMOTE=xvsd's remote guest, rg0 in ns rg
# behind an xvsd --fastpath in ns remote.
remote_xvsd_up() {
  local kind=$1 mtu=$2 log=$tmp/remote-xvsd-$1-$2.log i
  ip netns add "$P-rg" || return 1
  x rg ip link set lo up || return 1
  ip link add rg0 netns "$P-rg" address $VX_MAC numtxqueues 1 numrxqueues 1 mtu "$mtu" \
    type veth peer name rp0 netns "$P-remote" numtxqueues 1 numrxqueues 1 mtu "$mtu" || return 1
  x rg ip addr add 10.0.0.2/24 dev rg0 || return 1
  x rg ip addr add fd00::2/64 dev rg0 nodad || return 1
  x rg ip link set rg0 up || return 1
  x rg ip neigh replace 10.0.0.1 lladdr $VM_MAC dev rg0 nud permanent || return 1
  x rg ip neigh replace fd00::1 lladdr $VM_MAC dev rg0 nud permanent || return 1
  x remote ip link set rp0 up || return 1
  cat >"$tmp/remote-xvsd.toml" <<TOML
[uplink]
iface = "s0"
local_ips = ["192.0.2.2"]
mtu = $((mtu + 50))

[[bridges]]
name = "br0"

[[ports]]
name = "rp0"
bridge = "br0"
mtu = $mtu

[[tunnels]]
name = "tun"
bridge = "br0"
kind = "$kind"
vni = $VNI
remotes = ["192.0.2.1"]

[[fdb]]
bridge = "br0"
mac = "$VM_MAC"
port = "tun"
remote = "192.0.2.1"

[[fdb]]
bridge = "br0"
mac = "$VX_MAC"
port = "rp0"
TOML
  rm -f "$tmp/remote-xvsd.sock" "$tmp/remote-xvsd-state.json"
  NO_COLOR=1 RUST_LOG=info ip netns exec "$P-remote" "$XVSD" --config "$tmp/remote-xvsd.toml" \
    --fastpath --socket "$tmp/remote-xvsd.sock" --state "$tmp/remote-xvsd-state.json" 2>"$log" &
  remote_xvsd_pid=$!
  PIDS+=("$remote_xvsd_pid")
  for i in $(seq 150); do
    grep -q "xvsd running" "$log" && return 0
    kill -0 "$remote_xvsd_pid" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 3 "$log" >&2
  echo "the remote xvsd did not start" >&2
  return 1
}
remote_xvsd_pid=
topo_down() {
  local ns
  if [ -n "$remote_xvsd_pid" ]; then
    stop_pid "$remote_xvsd_pid"
    remote_xvsd_pid=
  fi
  for ns in vm sw remote rg; do ip netns del "$P-$ns" 2>/dev/null || true; done
}

# The up functions run in an `if` (a failure is a row, not the end of
# the run), where bash ignores `set -e`: every step says `|| return 1`.
# ---------------------------------------------------------------------
# (a) the kernel: vxlan/geneve device behind a Linux bridge
kernel_up() { # kernel_up KIND MTU
  if [ "$1" = vxlan ]; then
    x sw ip link add vx0 mtu "$2" type vxlan id $VNI local 192.0.2.1 remote 192.0.2.2 \
      dstport 4789 dev u0 nolearning || return 1
  else
    x sw ip link add vx0 mtu "$2" type geneve id $VNI remote 192.0.2.2 dstport 6081 || return 1
  fi
  x sw ip link add br0 type bridge || return 1
  x sw ip link set p0 master br0 || return 1
  x sw ip link set vx0 master br0 || return 1
  x sw ip link set vx0 up || return 1
  # KERNEL_GRO=off (a diagnostic): the tunnel device's GRO cells off, so
  # the decapsulated segments reach the bridge and the guest one by one.
  [ "${KERNEL_GRO:-on}" = on ] || x sw ethtool -K vx0 gro off >/dev/null || return 1
  x sw ip link set br0 up || return 1
  x sw bridge fdb replace $VX_MAC dev vx0 master static || return 1
  x sw bridge fdb replace $VM_MAC dev p0 master static || return 1
}
kernel_down() {
  x sw ip link del br0 2>/dev/null || true
  x sw ip link del vx0 2>/dev/null || true
}

# ---------------------------------------------------------------------
# (b) xvs
xvs_config() { # xvs_config KIND MTU: as xvsd_bench_config, with MTUs
  cat <<TOML
[uplink]
iface = "u0"
local_ips = ["192.0.2.1"]
mtu = $(($2 + 50))

[[bridges]]
name = "br0"

[[ports]]
name = "p0"
bridge = "br0"
mtu = $2

[[tunnels]]
name = "tun"
bridge = "br0"
kind = "$1"
vni = $VNI
remotes = ["192.0.2.2"]

[[fdb]]
bridge = "br0"
mac = "$VX_MAC"
port = "tun"
remote = "192.0.2.2"

[[fdb]]
bridge = "br0"
mac = "$VM_MAC"
port = "p0"
TOML
}
XVSD_FLAGS=(--workers 1 --cores 1)
[ "$XVS_POLL" = busy ] && XVSD_FLAGS+=(--poll busy)
xvs_starts=0
xvs_up() { # xvs_up KIND MTU
  xvs_starts=$((xvs_starts + 1))
  local log=$tmp/xvsd-$xvs_starts-$1-$2.log i
  xvs_config "$1" "$2" >"$tmp/xvsd.toml"
  rm -f "$tmp/xvsd.sock" "$tmp/xvsd-state.json"
  NO_COLOR=1 RUST_LOG=info ip netns exec "$P-sw" taskset -c 1 "$XVSD" \
    --config "$tmp/xvsd.toml" "${XVSD_FLAGS[@]}" \
    --socket "$tmp/xvsd.sock" --state "$tmp/xvsd-state.json" 2>"$log" &
  xvsd_pid=$!
  PIDS+=("$xvsd_pid")
  for i in $(seq 150); do
    grep -q "xvsd running" "$log" && break
    kill -0 "$xvsd_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q "xvsd running" "$log"; then
    tail -n 3 "$log" >&2
    echo "xvsd did not start" >&2
    xvs_down
    return 1
  fi
  # Where the veth refuses native XDP (its peer's MTU above a page),
  # --xdp-mode auto falls back to generic: the row says which ran.
  sed -n 's/.*XDP attached iface=\([^ ]*\) .*mode=\([^ ]*\).*/\1=\2/p' "$log" | paste -sd, >"$tmp/xdp_modes"
}
# The fast path: xvsd --fastpath, its own bookkeeping as xvs's.
xvsfast_up() { # xvsfast_up KIND MTU
  XVSD_FLAGS+=(--fastpath)
  local rc=0
  xvs_up "$@" || rc=$?
  unset 'XVSD_FLAGS[${#XVSD_FLAGS[@]}-1]'
  return $rc
}
xvsfast_down() {
  xvs_down
  # A killed xvsd leaves its miss pair and p0's TC filter.
  x sw ip link del xvs-miss 2>/dev/null || true
  x sw tc qdisc del dev p0 clsact 2>/dev/null || true
}
xvs_down() {
  [ -n "$xvsd_pid" ] && stop_pid "$xvsd_pid"
  xvsd_pid=
  # A killed xvsd leaves its XDP programs: the next contender must find
  # p0 and u0 bare.
  local i
  for i in p0 u0; do
    x sw ip link set dev "$i" xdp off 2>/dev/null || true
    x sw ip link set dev "$i" xdpgeneric off 2>/dev/null || true
  done
}
# ---------------------------------------------------------------------
# (c) gso: the GSO ceiling, bench/xdp/tc_vxlan.c's two TC programs with
# one fixed VXLAN template (no XDP anywhere, so the guests keep TSO):
# what a fast path that keeps 64 KiB super-packets whole reaches at most.
gso_up() { # gso_up KIND MTU
  [ "$1" = vxlan ] || { echo "the GSO ceiling is VXLAN only" >&2; return 1; }
  local arch p0i u0i
  arch=$(uname -m)-linux-gnu
  p0i=$(x sw cat /sys/class/net/p0/ifindex) || return 1
  u0i=$(x sw cat /sys/class/net/u0/ifindex) || return 1
  clang -O2 -g -target bpf -I"/usr/include/$arch" -DU0_IFINDEX="$u0i" -DP0_IFINDEX="$p0i" \
    -DOUTER_SRC_MAC="{$(mac_c $U0_MAC)}" -DOUTER_DST_MAC="{$(mac_c $S0_MAC)}" \
    -DOUTER_SRC_IP=0xc0000201 -DOUTER_DST_IP=0xc0000202 -DVNI=$VNI \
    -c bench/xdp/tc_vxlan.c -o "$tmp/tc_vxlan.o" || return 1
  local i
  for i in p0 u0; do
    x sw tc qdisc add dev $i clsact || return 1
  done
  x sw tc filter add dev p0 ingress bpf da obj "$tmp/tc_vxlan.o" sec tc/encap || return 1
  x sw tc filter add dev u0 ingress bpf da obj "$tmp/tc_vxlan.o" sec tc/decap || return 1
}
gso_down() {
  local i
  for i in p0 u0; do x sw tc qdisc del dev $i clsact 2>/dev/null || true; done
}
mac_c() { echo "0x${1//:/,0x}"; }

xvsctl() { timeout 10 "$XVSCTL" --socket "$tmp/xvsd.sock" --format json "$@"; }

# ---------------------------------------------------------------------
# Counters
cpu_all() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $8; exit }' /proc/stat; }
csum_errors() { # csum_errors NS: TCP segments the namespace refused for their checksum
  # shellcheck disable=SC2016  # awk's $, run in the namespace
  x "$1" awk '$1 == "Tcp:" { if (!n++) for (i = 2; i <= NF; i++) col[$i] = i; else print $col["InCsumErrors"] }' /proc/net/snmp
}
proc_jiffies() { # proc_jiffies PID: utime+stime of all its threads
  if [ -z "$1" ] || [ ! -r "/proc/$1/stat" ]; then echo 0; return; fi
  sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
offloads() { # offloads NS IF: what the guest's device does, as "tx-checksumming=on,..."
  x "$1" ethtool -k "$2" 2>/dev/null | awk -F': ' '
    /^(tx-checksumming|tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload):/ {
      split($2, v, " "); printf "%s%s=%s", (n++ ? "," : ""), $1, v[1] }'
}
# foreign_load OUTFILE: other processes' CPU share (sum of %CPU over 1 s,
# 200 = both cores) and names, mid-row: a build next to a measurement
# skews every CPU figure of it (as in compare.sh).
foreign_load() {
  top -b -n 2 -d 1 -w 200 | awk '/^top -/ { n++ } n == 2 && /^ *[0-9]+ / {
      if ($12 ~ /^(iperf3|xvsd|xvs-worker|ksoftirqd|top|napi|kworker|tcp\.sh|ss|sleep)/) next
      if ($9 + 0 >= 2) { sum += $9; names = names (names ? "," : "") $12 }
    } END { printf "%d %s\n", sum, (names ? names : "-") }' >"$1"
}

# row_failed C KIND MTU FAM STREAMS DIR RUN REASON
row_failed() {
  python3 "$tmp/report.py" failed "$@" >>"$JSONL"
  python3 "$tmp/report.py" line "$(tail -n 1 "$JSONL")" >&2
}

# measure C KIND MTU FAM STREAMS DIR RUN: one row with the contender up.
measure() {
  local c=$1 kind=$2 mtu=$3 fam=$4 streams=$5 dir=$6 run=$7
  local d=$tmp/row/$c-$kind-$mtu-$fam-$streams-$dir-$run
  mkdir -p "$d"
  local addr=10.0.0.2 rx_ns=$RG tx_ns=vm rev=()
  [ "$fam" = 6 ] && addr=fd00::2
  if [ "$dir" = remote2vm ]; then rx_ns=vm; tx_ns=$RG; rev=(-R); fi
  ip netns exec "$P-$RG" iperf3 -s -1 -B "$addr" -p $PORT >"$d/server.log" 2>&1 &
  local srv=$! i
  PIDS+=("$srv")
  for i in $(seq 50); do
    [ -n "$(x $RG ss -Htln "sport = :$PORT")" ] && break
    kill -0 "$srv" 2>/dev/null || break
    sleep 0.1
  done
  offloads vm vm0 >"$d/vm0.offloads"
  offloads $RG $RG_IF >"$d/vx0.offloads"
  echo "$(csum_errors "$rx_ns") $(csum_errors "$tx_ns")" >"$d/csum.pre"
  if [[ $c == xvs* ]]; then
    xvsctl stats >"$d/xvs.pre.json" 2>/dev/null || echo null >"$d/xvs.pre.json"
    cp "$tmp/xdp_modes" "$d/xdp_modes"
  fi
  # Should no stream ever be established (iperf3 failed), the window is
  # the client's whole life.
  local t0 t1
  t0=$(date +%s.%N)
  cpu_all >"$d/cpu.pre"
  proc_jiffies "$xvsd_pid" >"$d/xvsd.pre"
  # --connect-timeout: a SYN the switch corrupts is never answered, and
  # the kernel's own connect timeout is two minutes.
  timeout -k 2 $((DURATION + 20)) ip netns exec "$P-vm" iperf3 -c "$addr" -p $PORT \
    -t "$DURATION" -P "$streams" "${rev[@]}" -J --connect-timeout 3000 \
    >"$d/client.json" 2>"$d/client.err" &
  local cli=$!
  PIDS+=("$cli")
  (sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')"; foreign_load "$d/load") &
  local load=$!
  PIDS+=("$load")
  # The measured interval starts when every stream (and the control
  # connection) is established, as iperf3's own clock does.
  local est=0
  for i in $(seq 100); do
    est=$(x vm ss -Htn state established "dport = :$PORT" | wc -l)
    [ "$est" -gt "$streams" ] && break
    kill -0 "$cli" 2>/dev/null || break
    sleep 0.05
  done
  echo "$est" >"$d/established"
  if [ "$est" -gt "$streams" ]; then
    t0=$(date +%s.%N)
    cpu_all >"$d/cpu.pre"
    proc_jiffies "$xvsd_pid" >"$d/xvsd.pre"
  fi
  while kill -0 "$cli" 2>/dev/null &&
    awk -v t0="$t0" -v d="$DURATION" -v now="$(date +%s.%N)" 'BEGIN { exit !(now - t0 < d) }'; do
    sleep 0.05
  done
  t1=$(date +%s.%N)
  cpu_all >"$d/cpu.post"
  proc_jiffies "$xvsd_pid" >"$d/xvsd.post"
  echo "$t0 $t1" >"$d/window"
  local rc=0
  wait "$cli" || rc=$?
  forget "$cli"
  echo "$rc" >"$d/client.rc"
  stop_pid "$load"
  echo "$(csum_errors "$rx_ns") $(csum_errors "$tx_ns")" >"$d/csum.post"
  if [[ $c == xvs* ]]; then xvsctl stats >"$d/xvs.post.json" 2>/dev/null || echo null >"$d/xvs.post.json"; fi
  stop_pid "$srv"
  local tag=$c-$kind-$mtu-$fam-$streams-$dir-$run
  cp "$d/server.log" "$tmp/iperf3-server-$tag.log"
  cat "$d/client.json" "$d/client.err" >"$tmp/iperf3-client-$tag.log" 2>/dev/null || true
  python3 "$tmp/report.py" row "$d" "$c" "$kind" "$mtu" "$fam" "$streams" "$dir" "$run" >>"$JSONL"
  python3 "$tmp/report.py" line "$(tail -n 1 "$JSONL")" >&2
}

# ---------------------------------------------------------------------
# The report: rows from the raw files, the table.
cat >"$tmp/report.py" <<'PY'
import json, os, statistics, sys

HZ = int(os.environ["HZ"])

def text(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def nums(path):
    return [float(v) for v in text(path).split()]

def base(c, kind, mtu, fam, streams, dr, run):
    return {"run": int(run), "contender": c, "tunnel": kind, "mtu": int(mtu), "family": int(fam),
            "streams": int(streams), "direction": dr,
            "xvs_poll": os.environ["XVS_POLL"] if c.startswith("xvs") else None,
            "guest_tx_csum": os.environ["GUEST_TX_CSUM"]}

def failed(c, kind, mtu, fam, streams, dr, run, reason):
    r = base(c, kind, mtu, fam, streams, dr, run)
    r.update(status="failed", reason=reason, gbps=None)
    return r

def xvs_drops(d):
    pre, post = load(os.path.join(d, "xvs.pre.json")) or [], load(os.path.join(d, "xvs.post.json")) or []
    before = {(p["name"], k): v for p in pre for k, v in p.get("drops", {}).items()}
    out = {}
    for p in post:
        for k, v in p.get("drops", {}).items():
            n = v - before.get((p["name"], k), 0)
            if n:
                out[f"{p['name']}.{k}"] = n
    return out

def xvs_packets(d):
    pre = {p["name"]: p for p in load(os.path.join(d, "xvs.pre.json")) or []}
    return {p["name"]: {k: p[k] - pre.get(p["name"], {}).get(k, 0) for k in ("rx_packets", "tx_packets")}
            for p in load(os.path.join(d, "xvs.post.json")) or []}

def row(d, c, kind, mtu, fam, streams, dr, run):
    r = base(c, kind, mtu, fam, streams, dr, run)
    j = load(os.path.join(d, "client.json")) or {}
    end = j.get("end", {})
    rc = int(text(os.path.join(d, "client.rc"), "1"))
    err = j.get("error") or text(os.path.join(d, "client.err"))
    if rc == 124 or rc == 137:
        err = f"iperf3 killed after {int(os.environ['DURATION']) + 20} s" + (f": {err}" if err else "")
    r["status"] = "ok" if rc == 0 and not j.get("error") else "error"
    if r["status"] != "ok":
        r["reason"] = err or f"iperf3 exited with {rc}"
    r["gbps"] = end.get("sum_received", {}).get("bits_per_second", 0) / 1e9
    r["retransmits"] = end.get("sum_sent", {}).get("retransmits")
    t0, t1 = nums(os.path.join(d, "window"))
    busy0, soft0 = nums(os.path.join(d, "cpu.pre"))
    busy1, soft1 = nums(os.path.join(d, "cpu.post"))
    win = t1 - t0
    r["window_s"] = round(win, 3)
    r["established"] = int(text(os.path.join(d, "established"), "0"))
    r["cores_busy"] = (busy1 - busy0) / HZ / win
    r["softirq_share"] = (soft1 - soft0) / (busy1 - busy0) if busy1 > busy0 else None
    r["cores_per_gbps"] = r["cores_busy"] / r["gbps"] if r["gbps"] > 0 else None
    if c.startswith("xvs"):
        r["xvsd_cores"] = (nums(os.path.join(d, "xvsd.post"))[0] - nums(os.path.join(d, "xvsd.pre"))[0]) / HZ / win
        r["xvs_drops"] = xvs_drops(d)
        r["xvs_packets"] = xvs_packets(d)
        r["xvs_xdp_modes"] = text(os.path.join(d, "xdp_modes"))
    rx0, tx0 = nums(os.path.join(d, "csum.pre"))
    rx1, tx1 = nums(os.path.join(d, "csum.post"))
    r["csum_errors_receiver"] = int(rx1 - rx0)
    r["csum_errors_sender"] = int(tx1 - tx0)
    # No sample when iperf3 ended before mid-row (it failed).
    ld = text(os.path.join(d, "load")).split(" ", 1)
    r["other_load_pct"] = int(ld[0]) if ld[0] else None
    r["other_load_procs"] = ld[1] if len(ld) > 1 else None
    r["vm0_offloads"] = text(os.path.join(d, "vm0.offloads"))
    r["vx0_offloads"] = text(os.path.join(d, "vx0.offloads"))
    return r

def fmt(v, f="{:.2f}"):
    return "-" if v is None else f.format(v)

def line(r):
    head = (f"   {r['contender']:6} {r['tunnel']} mtu {r['mtu']} v{r['family']} {r['streams']} st "
            f"{r['direction']} run {r['run']}: ")
    if r["status"] == "failed":
        return head + "FAILED: " + r["reason"]
    return head + (f"{r['gbps']:.2f} Gbit/s, retrans {r['retransmits']}, {r['cores_busy']:.2f} cores busy "
                   f"({fmt(r['cores_per_gbps'])}/Gbit/s, softirq {fmt(r['softirq_share'] and 100 * r['softirq_share'], '{:.0f}')}%)"
                   + (f", xvsd {r['xvsd_cores']:.2f} cores, drops {r['xvs_drops'] or '-'}" if r["contender"].startswith("xvs") else "")
                   + (f", XDP {r['xvs_xdp_modes']}" if r["contender"].startswith("xvs") else "")
                   + f", csum errors rx/tx {r['csum_errors_receiver']}/{r['csum_errors_sender']}, "
                   f"other load {fmt(r['other_load_pct'], '{}')}% ({r['other_load_procs'] or '-'})"
                   + ("" if r["status"] == "ok" else f"; ERROR: {r['reason']}"))

def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None

ORDER = ["kernel", "xvs", "xvsfast", "gso"]

def report(out):
    meta = json.load(open(os.path.join(out, "meta.json")))
    rows = [json.loads(l) for l in open(os.path.join(out, "runs.jsonl")) if l.strip()]
    groups, points = {}, []
    for r in rows:
        p = (r["tunnel"], r["mtu"], r["family"], r["streams"], r["direction"])
        if p not in points:
            points.append(p)
        groups.setdefault(p, {}).setdefault(r["contender"], []).append(r)
    cs = [c for c in ORDER if any(c in g for g in groups.values())]
    md = [f"# Bulk TCP through the switch: {' vs '.join(cs)} ({meta['date']})", "",
          f"`{meta['command']}` on {meta['machine']}, {meta['commit']}. {meta['layout']}", ""]
    hdr = "| tunnel | MTU | inner | streams | direction |"
    sep = "|---|---|---|---|---|"
    for c in cs:
        hdr += f" {c} Gbit/s median [min-max] | {c} cores/Gbit/s (softirq %) | {c} retrans | {c} csum err |"
        sep += "---|---|---|---|"
    vs = [c for c in cs if c != "kernel"] if "kernel" in cs else []
    for c in vs:
        hdr += f" {c}/kernel Gbit/s | {c}/kernel cores/Gbit/s |"
        sep += "---|---|"
    hdr += " other load % (max) |"
    sep += "---|"
    md += [hdr, sep]
    reasons = []
    def note(c, p, rs):
        for r in rs:
            if r.get("reason"):
                key = (c, r["status"], r["reason"])
                if key not in [k for k, _ in reasons]:
                    reasons.append((key, p))
        return f"{rs[0]['status']} [{[k for k, _ in reasons].index((c, rs[0]['status'], rs[0]['reason'])) + 1}]"
    for p in points:
        g = groups[p]
        cells = f"| {p[0]} | {p[1]} | IPv{p[2]} | {p[3]} | {p[4]} |"
        m = {}
        for c in cs:
            rs = g.get(c, [])
            meas = [r for r in rs if r["gbps"] is not None]
            if not rs:
                cells += " - | - | - | - |"
                continue
            if not meas:
                cells += f" {note(c, p, rs)} | - | - | - |"
                continue
            gb = [r["gbps"] for r in meas]
            m[c] = (med(gb), med([r["cores_per_gbps"] for r in meas]))
            bad = [r for r in meas if r["status"] != "ok"]
            flag = f" ({len(bad)} of {len(meas)} {note(c, p, bad)})" if bad else ""
            fail = [r for r in rs if r["gbps"] is None]
            flag += f" ({len(fail)} {note(c, p, fail)})" if fail else ""
            cells += (f" {m[c][0]:.2f} [{min(gb):.2f}-{max(gb):.2f}]{flag} | {fmt(m[c][1])} "
                      f"({fmt(med([r['softirq_share'] for r in meas]) and 100 * med([r['softirq_share'] for r in meas]), '{:.0f}')}) | "
                      f"{fmt(med([r['retransmits'] for r in meas]), '{:.0f}')} | "
                      f"{sum(r['csum_errors_receiver'] for r in meas)} / {sum(r['csum_errors_sender'] for r in meas)} |")
        for c in vs:
            def ratio(i):
                a, b = m.get(c, (None, None))[i], m.get("kernel", (None, None))[i]
                return f"{a / b:.2f}" if a is not None and b else "-"
            cells += f" {ratio(0)} | {ratio(1)} |"
        ol = [r["other_load_pct"] for rs in g.values() for r in rs if r.get("other_load_pct") is not None]
        cells += f" {max(ol) if ol else '-'} |"
        md.append(cells)
    if reasons:
        md += ["", "Failures and errors (first occurrence):", ""]
        for i, ((c, st, reason), p) in enumerate(reasons, 1):
            md.append(f"{i}. {c} {st} ({p[0]}, MTU {p[1]}, IPv{p[2]}, {p[3]} streams, {p[4]}): "
                      + " ".join(reason.split())[:400])
    md += ["", "Gbit/s: iperf3's end.sum_received over the test (median of the runs; error rows count, with "
           "what iperf3 measured before it failed). cores/Gbit/s: non-idle CPU time of all cores "
           "(/proc/stat user+nice+system+irq+softirq+steal) over the measured interval, in cores busy, divided "
           "by the row's Gbit/s; both TCP endpoints and everything else on the machine are in it (a busy-polling "
           "xvsd worker is a whole core, busy or not); softirq %: its softirq part. retrans: iperf3's sender "
           "retransmits (median). csum err: TCP segments with a bad checksum counted by the receiving guest's "
           "namespace / the sending guest's (ACKs; in remote2vm the client's SYNs too), summed over the runs; nonzero means the switch delivered "
           "bad checksums. Other load: CPU % of processes other than the benchmark's (top, mid-row; 200 = both "
           "cores), whose rows' CPU figures include it."]
    open(os.path.join(out, "table.md"), "w").write("\n".join(md) + "\n")
    print("\n".join(md))

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "row":
        print(json.dumps(row(*sys.argv[2:10])))
    elif cmd == "failed":
        print(json.dumps(failed(*sys.argv[2:10])))
    elif cmd == "line":
        print(line(json.loads(sys.argv[2])))
    elif cmd == "report":
        report(sys.argv[2])
PY
export HZ XVS_POLL GUEST_TX_CSUM DURATION
# REPORT_ONLY=DIR: the table from DIR's runs.jsonl and meta.json, measuring nothing (bench/bulk.sh).
if [ -n "${REPORT_ONLY:-}" ]; then python3 "$tmp/report.py" report "$REPORT_ONLY" >/dev/null; exit 0; fi

cmd="RUNS=$RUNS DURATION=$DURATION CONTENDERS=\"$CONTENDERS\" KINDS=\"$KINDS\" MTUS=\"$MTUS\""
cmd+=" FAMILIES=\"$FAMILIES\" STREAMS=\"$STREAMS\" DIRS=\"$DIRS\" XVS_POLL=$XVS_POLL"
[ "$GUEST_TX_CSUM" = on ] || cmd+=" GUEST_TX_CSUM=$GUEST_TX_CSUM"
[ "${KERNEL_GRO:-on}" = on ] || cmd+=" KERNEL_GRO=$KERNEL_GRO"
[ "$REMOTE" = kernel ] || cmd+=" REMOTE=$REMOTE"
cmd+=" bench/tcp.sh"
python3 -c '
import json, sys
out, cmd, commit, machine, layout = sys.argv[1:6]
json.dump({"date": __import__("time").strftime("%Y-%m-%dT%H:%MZ", __import__("time").gmtime()),
           "command": cmd, "commit": commit, "machine": machine, "layout": layout}, open(out, "w"))
' "$OUT/meta.json" "$cmd" \
  "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo '+dirty')" \
  "$(uname -r), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(iperf3 --version | head -n 1 | cut -d' ' -f1-2)" \
  "Guests with the kernel's default offloads$([ "$GUEST_TX_CSUM" = off ] && echo ' except TX checksum offload, off on vm0 and vx0 (GUEST_TX_CSUM=off, a diagnostic)'); xvsd ${XVSD_FLAGS[*]} (XVS_POLL=$XVS_POLL), its worker on core 1; nothing else pinned; $DURATION s per row."

echo "== results in $OUT" >&2
read -r -a contenders <<<"$CONTENDERS"
nc=${#contenders[@]}
for run in $(seq $((RUN0 + 1)) $((RUN0 + RUNS))); do
  point=0
  for kind in $KINDS; do
    for mtu in $MTUS; do
      echo "== run $run/$((RUN0 + RUNS)): $kind, overlay MTU $mtu" >&2
      topo_up "$mtu"
      remote_err=
      if ! remote_up "$kind" "$mtu" 2>"$tmp/remote.err"; then
        remote_err="the remote guest's $kind device (ns remote): $(tail -n 3 "$tmp/remote.err" | tr '\n' ' ')"
      fi
      for fam in $FAMILIES; do
        for streams in $STREAMS; do
          for dir in $DIRS; do
            # Each point starts with the next contender: neither always
            # runs first (on a cold or a warm machine).
            shift_by=$(((run - 1 + point) % nc))
            point=$((point + 1))
            for c in "${contenders[@]:shift_by}" "${contenders[@]:0:shift_by}"; do
              if [ -n "$remote_err" ]; then
                row_failed "$c" "$kind" "$mtu" "$fam" "$streams" "$dir" "$run" "$remote_err"
              elif ! "${c}_up" "$kind" "$mtu" "$fam" 2>"$tmp/up.err"; then
                "${c}_down"
                row_failed "$c" "$kind" "$mtu" "$fam" "$streams" "$dir" "$run" \
                  "$c set-up: $(tail -n 4 "$tmp/up.err" | tr '\n' ' ')"
              else
                measure "$c" "$kind" "$mtu" "$fam" "$streams" "$dir" "$run"
                "${c}_down"
              fi
            done
          done
        done
      done
      topo_down
    done
  done
done

python3 "$tmp/report.py" report "$OUT"
echo >&2
echo "== written: $OUT/{runs.jsonl,table.md,meta.json,logs/}" >&2
