#!/usr/bin/env bash
# Side by side: xvs, the Linux kernel's vxlan/geneve behind a Linux bridge,
# Open vSwitch 3.1's userspace datapath with afxdp ports, and the ceiling
# (a bare XDP redirect), on the SAME namespace topology, interleaved in one
# run (issue 5, items 2 and 3).
#
#   ns gen: g0 ── veth ── ns sw: p0   (the switch's VM port)
#                         ns sw: u0   (its underlay port, VTEP 192.0.2.1)
#                           └── veth ── ns sink: s0 (the remote VTEP 192.0.2.2)
#
# Contenders, in the switch namespace, each on core 1:
#   xvs      xvsd, one worker, --poll busy, --cores 1, a control socket in
#            the temp dir (xvsctl worker-stats: cycles per packet).
#   kernel   br0 = {p0, vx0}, vx0 a vxlan (or geneve) device, VNI 100 to
#            192.0.2.2, static FDB entries; RPS puts p0's and u0's receive
#            processing on core 1.
#   ovs      Open vSwitch 3.1, netdev datapath, as its userspace-tunneling
#            guide says: br-int = {p0, tun0 (vxlan|geneve, key 100)},
#            br-phy = {u0} with the VTEP IP on br-phy's internal port,
#            static ARP (tnl/arp/set) and route (ovs/route/add); p0 and u0
#            are afxdp ports (OVS_PORT_TYPE, OVS_XDP_MODE); one PMD on
#            core 1 (pmd-cpu-mask=0x2), ovs-vswitchd's other threads on
#            core 1 too. pmd-stats-show gives its cycles per packet.
#   xvsfast  xvsd --fastpath --poll adaptive: no XDP on p0 or u0, the TC
#            executor carries the decided flow (docs/operating.md, "The
#            fast path"); RPS puts p0's and u0's receive processing (the
#            TC programs) on core 1, as for the kernel, where the worker
#            polls adaptively beside it for what the executor misses.
#   ceiling  bench/xdp/redirect.c on p0 (→ u0) and on u0 (→ p0): XDP
#            redirect, no tunnel.
# Where the veth work runs: a veth delivers in the sender's context. For
# the XDP-based contenders (xvs, ovs, ceiling) the receive processing of
# p0 and u0 (their XDP program, the copy into the AF_XDP socket; for the
# ceiling, the whole redirect) runs in xvs-pktgen's send call on core 0;
# the sink's veth receive (s0, g0: pktgen's XDP and socket copy) runs in
# the switch's send call on core 1. So the ceiling does its work on core
# 0 (core 1 stays idle). NAPI_THREADED=1 moves p0's and u0's NAPI into
# kthreads pinned to core 1 instead; measured here, that starves them
# next to a busy-polling switch on the same core (xvs and OVS fall to
# about 0.12 Mpps with 75% loss), so it is off by default.
# SINK_NAPI=core0 moves the sink's receive (s0, g0) to core 0 instead
# (see sink_napi), so core 1 runs the switch alone as in the issue's
# layout. Then core 0 (generator, the switches' port receive, the sink)
# bounds the rate and the switches are not saturated; it is the mode
# that compares CPU per packet without the sink's share in it.
#
# Generator engine (GEN): afxdp (default) sends from an AF_XDP socket in
# copy mode, about 1.0-1.3 Mpps on this topology, which is below what the
# ceiling forwards; xdp sends with xvs-pktgen's XDP engine (BPF_PROG_RUN
# live frames, several times faster; unpaced only, so RATE must be 0).
# Frames from the xdp engine reach p0 (encap) or u0 (decap) through the
# veth's ndo_xdp_xmit, which needs NAPI on the receiving end: xvs, OVS
# (afxdp ports) and the ceiling have an XDP program there; for the kernel
# (and OVS on plain netdev ports) GEN=xdp turns GRO on on p0 and u0, which
# gives them NAPI (kernel 5.13+). UDP is not aggregated by it (no UDP GRO
# forwarding), but their receive runs as a NAPI poll instead of the
# backlog; GEN=afxdp leaves GRO off as before. GEN=xdp first asks the
# kernel (xvs-pktgen probe, with the longest frame the run sends); if it
# refuses live frames, the run falls back to GEN=afxdp and says why in
# table.md and meta.json (`notice`) instead of failing mid-run.
#
# Directions: encap (pktgen tx on g0: plain UDP to a MAC behind the
# tunnel; pktgen rx on s0 counts tunnel packets with VNI 100) and decap
# (pktgen tx on s0: VXLAN/Geneve packets to 192.0.2.1; pktgen rx on g0
# counts the inner UDP frames). The ceiling sends the plain frames both
# ways (tunnel "none"). Generator and receiver on core 0 (taskset).
#
# Each row records what pktgen sent, what the switch counted on p0 and u0
# (xvsctl stats / ovs dpctl/show -s / ip -s link), what the sink received,
# the switch's own cycles per packet (xvs worker-stats, OVS PMD processing
# cycles) and core 1's CPU time (/proc/stat) per packet received.
#
# Usage (root):  bench/compare.sh
# Knobs: RUNS=3, DURATION=5 (s per row), CONTENDERS="xvs kernel ovs ceiling",
#   KINDS="vxlan geneve", SIZES="64 1400", FLOWS="1 1024", DIRS="encap decap",
#   RATE=0 (pps, 0: unpaced), GEN=afxdp (or xdp: see above),
#   OVS_PORT_TYPE=afxdp (or netdev),
#   OVS_XDP_MODE=native, NAPI_THREADED=0, SINK_NAPI=off (or core0: the
#   sink's veth receive on core 0, see sink_napi),
#   OUT=bench/results/<UTC date-time>.
# Output in OUT: runs.jsonl (one JSON object per row), table.md, plot.svg,
#   logs/. Every wait is bounded; on exit (also on error or Ctrl-C) every
#   process it started is stopped and the namespaces (with every XDP
#   program on their interfaces) deleted.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
source bench/xvsd_config.sh
source bench/procs.sh
[ "$(id -u)" = 0 ] || { echo "creates network namespaces and attaches XDP: run as root" >&2; exit 1; }
ensure_packages "${BUILD_PACKAGES[@]}" iproute2 openvswitch-switch python3 procps util-linux

RUNS=${RUNS:-3}
RUN0=${RUN0:-0}   # runs are numbered RUN0+1..RUN0+RUNS (bench/bulk.sh: one run per call)
DURATION=${DURATION:-5}
CONTENDERS=${CONTENDERS:-xvs kernel ovs ceiling}
KINDS=${KINDS:-vxlan geneve}
SIZES=${SIZES:-64 1400}
FLOWS=${FLOWS:-1 1024}
DIRS=${DIRS:-encap decap}
RATE=${RATE:-0}
GEN=${GEN:-afxdp}
OVS_PORT_TYPE=${OVS_PORT_TYPE:-afxdp}
OVS_XDP_MODE=${OVS_XDP_MODE:-native}
NAPI_THREADED=${NAPI_THREADED:-0}
SINK_NAPI=${SINK_NAPI:-off}
OUT=${OUT:-bench/results/$(date -u +%Y-%m-%d-%H%M)}
VNI=100
OVS_SCHEMA=/usr/share/openvswitch/vswitch.ovsschema

[ "$(nproc)" -ge 2 ] || { echo "needs 2 cores (generator on 0, switch on 1)" >&2; exit 1; }
case $SINK_NAPI in
  off|core0) ;;
  *) echo "SINK_NAPI=$SINK_NAPI: off or core0" >&2; exit 1 ;;
esac
case $GEN in
  afxdp) ;;
  xdp) [ "$RATE" = 0 ] || { echo "GEN=xdp sends unpaced only: RATE=$RATE must be 0" >&2; exit 1; } ;;
  *) echo "GEN=$GEN: afxdp or xdp" >&2; exit 1 ;;
esac

if [ -z "${SKIP_BUILD:-}" ]; then   # bench/bulk.sh builds once
  echo "== building (release)" >&2
  cargo build --release --locked -q -p xvsd -p xvs-ctl -p xvs-bench \
    --bin xvsd --bin xvsctl --bin xvs-pktgen
fi
XVSD=${XVSD_BIN:-$PWD/target/release/xvsd}   # XVSD_BIN: another build, for A/B runs
XVSCTL=$PWD/target/release/xvsctl
PG=$PWD/target/release/xvs-pktgen

GEN_ASKED=$GEN
GEN_NOTICE=
if [ "$GEN" = xdp ]; then
  # Decap rows send the tunnel packets: the inner frame plus 50 bytes.
  longest=$(($(printf '%s\n' $SIZES | sort -n | tail -n 1) + 50))
  if ! probe=$("$PG" probe --frame-len "$longest" 2>&1); then
    GEN=afxdp
    GEN_NOTICE="GEN=xdp fell back to the AF_XDP engine (GEN=afxdp): $probe"
    echo "== $GEN_NOTICE" >&2
  fi
fi

mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
JSONL=$OUT/runs.jsonl
: >"$JSONL"

P=xvscmp$$
tmp=$(mktemp -d)
chmod 755 "$tmp"
PIDS=()          # every background process we started, stopped on exit
xvsd_pid= ovsdb_pid= vswitchd_pid=
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do stop_wait "$pid"; done
  for ns in gen sw sink; do ip netns del "$P-$ns" 2>/dev/null || true; done
  [ -d "$tmp" ] && cp -r "$tmp"/*.log "$OUT/logs/" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

x() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }
pin0=(taskset -c 0)
pin1=(taskset -c 1)

GEN_MAC=02:00:00:00:0a:01   # the local "VM" (g0)
P0_MAC=02:00:00:00:0a:02
U0_MAC=02:00:00:00:00:01    # the switch's underlay port, VTEP 192.0.2.1
S0_MAC=02:00:00:00:00:02    # the remote VTEP 192.0.2.2 (s0)
VM_B=02:00:00:00:0b:01      # a remote VM behind the tunnel

# ---------------------------------------------------------------------
# The topology: fresh for every contender block.
topo_up() {
  local ns l
  for ns in gen sw sink; do
    ip netns add "$P-$ns"
    x "$ns" ip link set lo up
    # No IPv6 neighbour discovery noise on the measured links.
    x "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  done
  ip link add g0 netns "$P-gen" address $GEN_MAC numtxqueues 1 numrxqueues 1 \
    type veth peer name p0 netns "$P-sw" address $P0_MAC numtxqueues 1 numrxqueues 1
  ip link add u0 netns "$P-sw" address $U0_MAC numtxqueues 1 numrxqueues 1 \
    type veth peer name s0 netns "$P-sink" address $S0_MAC numtxqueues 1 numrxqueues 1
  x sink ip addr add 192.0.2.2/24 dev s0
  for l in "gen g0" "sw p0" "sw u0" "sink s0"; do
    set -- $l
    x "$1" ip link set "$2" up
  done
}
topo_down() {
  local ns
  for ns in gen sw sink; do ip netns del "$P-$ns" 2>/dev/null || true; done
}

# napi_core1 IF...: threaded NAPI for the switch's veths (they have a NAPI
# once an XDP program is attached), the new kthreads pinned to core 1.
napi_threads() { ps -eo pid=,comm= | awk '$2 ~ /^napi\// { print $1 }' | sort; }
napi_core1() {
  [ "$NAPI_THREADED" = 1 ] || return 0
  local before after pid i
  before=$(napi_threads)
  for i in "$@"; do x sw sh -c "echo 1 > /sys/class/net/$i/threaded"; done
  sleep 0.2
  after=$(napi_threads)
  for pid in $(comm -13 <(echo "$before") <(echo "$after")); do
    taskset -pc 1 "$pid" >/dev/null
    echo "   napi kthread $pid ($(cat /proc/$pid/comm)) on core 1" >&2
  done
}

# sink_napi NS IF BEFORE: with SINK_NAPI=core0, the receiving end's veth
# (s0 or g0; it has a NAPI once xvs-pktgen rx attached its XDP program)
# gets a threaded NAPI, its kthread pinned to core 0 at SCHED_FIFO 50. A
# veth schedules its peer's NAPI on the sending CPU, so by default the
# sink's receive (its XDP program, the copy into pktgen's socket) runs
# inside the switch's transmit call on core 1 and is billed to the
# switch. core0 is the issue's layout ("the switch alone on one core, the
# generator plus sinks on the other"); FIFO so the sink keeps up with what
# the switch sends and the generator gets what is left of core 0 (under
# plain CFS the two took turns and the switch's TX ring overflowed).
# BEFORE: the napi kthreads before rx started (its XDP attach makes the
# kthread when the flag is already set).
sink_napi() {
  [ "$SINK_NAPI" = core0 ] || return 0
  local pid
  x "$1" sh -c "echo 1 > /sys/class/net/$2/threaded"
  sleep 0.2
  for pid in $(comm -13 <(echo "$3") <(napi_threads)); do
    taskset -pc 0 "$pid" >/dev/null
    chrt -f -p 50 "$pid"
  done
}

# gen_napi IF...: with GEN=xdp, GRO on on the switch's veths that have no
# XDP program, so the generator's XDP-transmitted frames are taken in (a
# veth's ndo_xdp_xmit needs NAPI on the peer; GRO gives it one).
gen_napi() {
  [ "$GEN" = xdp ] || return 0
  local i
  for i in "$@"; do x sw ethtool -K "$i" gro on >/dev/null; done
}

# ---------------------------------------------------------------------
# (a) xvs
xvs_up() { # xvs_up KIND [POLL [XVSD FLAG...]]
  local kind=$1 poll=${2:-busy}
  shift $(($# < 2 ? $# : 2))
  x sw ip addr add 192.0.2.1/24 dev u0
  x sw ip neigh replace 192.0.2.2 lladdr $S0_MAC dev u0 nud permanent
  xvsd_bench_config "$kind" >"$tmp/xvsd-$kind.toml"
  rm -f "$tmp/xvsd.sock" "$tmp/xvsd-state.json"
  local flags=(--poll "$poll" "$@")
  NO_COLOR=1 RUST_LOG=info ip netns exec "$P-sw" "${pin1[@]}" "$XVSD" \
    --config "$tmp/xvsd-$kind.toml" --workers 1 --cores 1 "${flags[@]}" \
    --socket "$tmp/xvsd.sock" --state "$tmp/xvsd-state.json" \
    2>"$tmp/xvsd-$kind.log" &
  xvsd_pid=$!
  PIDS+=("$xvsd_pid")
  local i
  for i in $(seq 150); do
    grep -q "xvsd running" "$tmp/xvsd-$kind.log" && break
    kill -0 "$xvsd_pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q "xvsd running" "$tmp/xvsd-$kind.log" || { cat "$tmp/xvsd-$kind.log" >&2; echo "xvsd did not start" >&2; exit 1; }
  XVS_T0=$(date +%s.%N)
  napi_core1 p0 u0
}
xvs_down() {
  stop_pid "$xvsd_pid"
  xvsd_pid=
}
# xvsfast: RPS as for the kernel; without it the TC programs would run in
# the sender's softirq on core 0.
xvsfast_up() { # xvsfast_up KIND
  xvs_up "$1" adaptive --fastpath
  local i
  for i in p0 u0; do x sw sh -c "echo 2 > /sys/class/net/$i/queues/rx-0/rps_cpus"; done
}
xvsfast_down() { xvs_down; }
xvsctl() { timeout 10 "$XVSCTL" --socket "$tmp/xvsd.sock" --format json "$@"; }

# ---------------------------------------------------------------------
# (b) the kernel: vxlan/geneve device behind a Linux bridge
kernel_up() { # kernel_up KIND
  x sw ip addr add 192.0.2.1/24 dev u0
  x sw ip neigh replace 192.0.2.2 lladdr $S0_MAC dev u0 nud permanent
  if [ "$1" = vxlan ]; then
    x sw ip link add vx0 type vxlan id $VNI local 192.0.2.1 remote 192.0.2.2 \
      dstport 4789 dev u0 nolearning noudpcsum
  else
    x sw ip link add vx0 type geneve id $VNI remote 192.0.2.2 dstport 6081 noudpcsum
  fi
  x sw ip link add br0 type bridge
  x sw ip link set p0 master br0
  x sw ip link set vx0 master br0
  x sw ip link set vx0 up
  x sw ip link set br0 up
  x sw bridge fdb replace $VM_B dev vx0 master static
  x sw bridge fdb replace $GEN_MAC dev p0 master static
  # Receive processing (bridge, vxlan, routing) on core 1: without RPS it
  # would run in the sender's softirq on core 0.
  local i
  for i in p0 u0; do x sw sh -c "echo 2 > /sys/class/net/$i/queues/rx-0/rps_cpus"; done
  gen_napi p0 u0
}
kernel_down() { :; }

# ---------------------------------------------------------------------
# (c) Open vSwitch 3.1, userspace datapath
# env(1), not a function: `ovs_env ip netns exec ... ovs-vswitchd &` must
# leave $! the daemon itself (env and ip netns exec exec it).
ovs_env() { env OVS_RUNDIR="$tmp/ovs" OVS_DBDIR="$tmp/ovs" OVS_LOGDIR="$tmp/ovs" OVS_SYSCONFDIR="$tmp/ovs" "$@"; }
vsctl() { ovs_env timeout 20 ovs-vsctl --db="unix:$tmp/ovs/db.sock" --timeout=15 "$@"; }
appctl() { ovs_env timeout 10 ovs-appctl --timeout=5 -t "$tmp/ovs/vswitchd.ctl" "$@"; }
OVS_MODE_USED=
ovs_up() { # ovs_up KIND
  local kind=$1 i
  rm -rf "$tmp/ovs"; mkdir -p "$tmp/ovs"
  ovs_env ovsdb-tool create "$tmp/ovs/conf.db" "$OVS_SCHEMA"
  env OVS_RUNDIR="$tmp/ovs" OVS_DBDIR="$tmp/ovs" OVS_LOGDIR="$tmp/ovs" OVS_SYSCONFDIR="$tmp/ovs" \
    "${pin0[@]}" ovsdb-server "$tmp/ovs/conf.db" --remote="punix:$tmp/ovs/db.sock" \
    --unixctl="$tmp/ovs/ovsdb-server.ctl" --pidfile="$tmp/ovs/ovsdb-server.pid" \
    --log-file="$tmp/ovs/ovsdb-server.log" -vconsole:off -vsyslog:off >/dev/null 2>&1 &
  ovsdb_pid=$!
  PIDS+=("$ovsdb_pid")
  for i in $(seq 150); do vsctl --no-wait init 2>/dev/null && break; sleep 0.1; done
  vsctl --no-wait init
  vsctl --no-wait set Open_vSwitch . other_config:pmd-cpu-mask=0x2
  env OVS_RUNDIR="$tmp/ovs" OVS_DBDIR="$tmp/ovs" OVS_LOGDIR="$tmp/ovs" OVS_SYSCONFDIR="$tmp/ovs" \
    ip netns exec "$P-sw" "${pin1[@]}" ovs-vswitchd "unix:$tmp/ovs/db.sock" \
    --unixctl="$tmp/ovs/vswitchd.ctl" --pidfile="$tmp/ovs/ovs-vswitchd.pid" \
    --log-file="$tmp/ovs/ovs-vswitchd.log" -vconsole:off -vsyslog:off >/dev/null 2>&1 &
  vswitchd_pid=$!
  PIDS+=("$vswitchd_pid")
  for i in $(seq 150); do appctl version >/dev/null 2>&1 && break; sleep 0.1; done
  appctl version >/dev/null
  local type=$OVS_PORT_TYPE
  local popts=()
  [ "$type" = afxdp ] && popts=(options:xdp-mode="$OVS_XDP_MODE" options:n_rxq=1)
  local ptype=()
  [ "$type" = afxdp ] && ptype=(type=afxdp)
  vsctl add-br br-int -- set bridge br-int datapath_type=netdev \
    -- add-port br-int p0 -- set interface p0 "${ptype[@]}" "${popts[@]}" \
    -- add-port br-int tun0 -- set interface tun0 type="$kind" \
       options:remote_ip=192.0.2.2 options:key=$VNI \
    -- add-br br-phy -- set bridge br-phy datapath_type=netdev \
       other_config:hwaddr=$U0_MAC \
    -- add-port br-phy u0 -- set interface u0 "${ptype[@]}" "${popts[@]}" \
    || true
  local err
  err=$(vsctl --bare get interface p0 error 2>&1; vsctl --bare get interface u0 error 2>&1)
  err=$(echo "$err" | grep -v '^\[\]$' | grep -v '^$' || true)
  if [ -n "$err" ] && [ "$type" = afxdp ]; then
    echo "   OVS afxdp ports failed: $err" >&2
    echo "   $(grep -iE 'afxdp|xdp' "$tmp/ovs/ovs-vswitchd.log" | tail -5)" >&2
    echo "OVS afxdp failed ($OVS_XDP_MODE): $err" >>"$OUT/ovs-afxdp-error.txt"
    grep -iE 'afxdp|xdp' "$tmp/ovs/ovs-vswitchd.log" | tail -20 >>"$OUT/ovs-afxdp-error.txt" || true
    echo "   falling back to plain netdev (AF_PACKET) ports for the rest of the run" >&2
    OVS_PORT_TYPE=netdev
    ovs_down
    ovs_up "$kind"
    return
  elif [ -n "$err" ]; then
    echo "OVS ports failed: $err" >&2; exit 1
  fi
  OVS_MODE_USED=$type
  [ "$type" = afxdp ] || gen_napi p0 u0
  x sw ip addr add 192.0.2.1/24 dev br-phy
  x sw ip link set br-phy up
  for i in $(seq 150); do
    appctl ovs/route/show | grep -q "192.0.2.0/24 dev br-phy" && break
    sleep 0.1
  done
  appctl ovs/route/add 192.0.2.0/24 br-phy >/dev/null 2>&1 || true
  appctl tnl/arp/set br-phy 192.0.2.2 $S0_MAC >/dev/null
  # Static MACs as for the others: no flooding.
  appctl fdb/add br-int tun0 0 $VM_B >/dev/null 2>&1 || echo "   (fdb/add not supported: NORMAL floods)" >&2
  appctl fdb/add br-int p0 0 $GEN_MAC >/dev/null 2>&1 || true
  appctl fdb/add br-phy u0 0 $S0_MAC >/dev/null 2>&1 || true
  echo "   OVS ports: $(vsctl --bare --columns=name,type list interface | tr '\n' ' ')" >&2
  echo "   OVS PMD: $(appctl dpif-netdev/pmd-rxq-show | tr -s ' \n' ' ')" >&2
  [ "$type" = afxdp ] && napi_core1 p0 u0
  return 0
}
ovs_down() {
  [ -n "$vswitchd_pid" ] && { cp "$tmp/ovs/ovs-vswitchd.log" "$tmp/ovs-vswitchd-$(date +%s).log" 2>/dev/null || true; stop_pid "$vswitchd_pid"; }
  [ -n "$ovsdb_pid" ] && stop_pid "$ovsdb_pid"
  vswitchd_pid= ovsdb_pid=
  rm -rf "$tmp/ovs"
}

# ---------------------------------------------------------------------
# (d) the ceiling: XDP redirect p0 <-> u0
ceiling_up() {
  local p0i u0i arch
  arch=$(uname -m)-linux-gnu
  p0i=$(x sw cat /sys/class/net/p0/ifindex)
  u0i=$(x sw cat /sys/class/net/u0/ifindex)
  clang -O2 -g -target bpf -I"/usr/include/$arch" -DOUT_IFINDEX="$u0i" \
    -c bench/xdp/redirect.c -o "$tmp/redirect-to-u0.o"
  clang -O2 -g -target bpf -I"/usr/include/$arch" -DOUT_IFINDEX="$p0i" \
    -c bench/xdp/redirect.c -o "$tmp/redirect-to-p0.o"
  x sw ip link set dev p0 xdpdrv obj "$tmp/redirect-to-u0.o" sec xdp
  x sw ip link set dev u0 xdpdrv obj "$tmp/redirect-to-p0.o" sec xdp
  napi_core1 p0 u0
}
ceiling_down() {
  x sw ip link set dev p0 xdpdrv off || true
  x sw ip link set dev u0 xdpdrv off || true
}

# ---------------------------------------------------------------------
# Counters
snapshot() { # snapshot CONTENDER DIR: the switch's counters into DIR
  local c=$1 d=$2
  mkdir -p "$d"
  x sw ip -j -s link show >"$d/links.json"
  case $c in
    xvs|xvsfast)
      xvsctl stats >"$d/xvs_stats.json" || echo null >"$d/xvs_stats.json"
      xvsctl worker-stats >"$d/xvs_workers.json" || echo null >"$d/xvs_workers.json"
      date +%s.%N >"$d/time"
      echo "$XVS_T0" >"$d/xvs_t0" ;;
    ovs)
      appctl dpctl/show -s >"$d/ovs_dpctl.txt" || true
      appctl dpif-netdev/pmd-stats-show >"$d/ovs_pmd.txt" || true ;;
  esac
}
# foreign_load OUTFILE: other processes' CPU share (sum of %CPU over 1 s,
# 200 = both cores) and names, mid-row: a compile next to a measurement
# skews it (as in encap_decap.sh).
foreign_load() {
  top -b -n 2 -d 1 -w 200 | awk '/^top -/ { n++ } n == 2 && /^ *[0-9]+ / {
      if ($12 ~ /^(xvs-pktgen|xvsd|xvs-worker|ksoftirqd|top|napi|ovs-vswitchd|pmd|ovsdb-server|kworker)/) next
      if ($9 + 0 >= 2) { sum += $9; names = names (names ? "," : "") $12 }
    } END { printf "%d %s\n", sum, (names ? names : "-") }' >"$1"
}
cpu1() { awk '$1 == "cpu1" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6; exit }' /proc/stat; }

# measure CONTENDER DIR KIND SIZE FLOWS RUN: one row.
measure() {
  local c=$1 dir=$2 kind=$3 size=$4 flows=$5 run=$6
  local tag="$c-$dir-$kind-$size-$flows-$run" d
  d=$tmp/row/$tag
  mkdir -p "$d"
  local rx_ns rx_if rx_args tx_ns tx_args
  if [ "$c" = ceiling ]; then
    if [ "$dir" = encap ]; then
      tx_ns=gen rx_ns=sink rx_if=s0 tx_args=(--iface g0 --src-mac $GEN_MAC --dst-mac $S0_MAC)
    else
      tx_ns=sink rx_ns=gen rx_if=g0 tx_args=(--iface s0 --src-mac $S0_MAC --dst-mac $GEN_MAC)
    fi
    rx_args=(--expect-udp-dport 5001)
  elif [ "$dir" = encap ]; then
    tx_ns=gen rx_ns=sink rx_if=s0 rx_args=(--expect-vni $VNI)
    tx_args=(--iface g0 --src-mac $GEN_MAC --dst-mac $VM_B)
  else
    tx_ns=sink rx_ns=gen rx_if=g0 rx_args=(--expect-udp-dport 5001)
    tx_args=(--iface s0 --encap "$kind" --vni $VNI --outer-src 192.0.2.2 --outer-dst 192.0.2.1
      --outer-dst-mac $U0_MAC --src-mac $VM_B --dst-mac $GEN_MAC)
  fi
  local napi_before
  napi_before=$(napi_threads)
  ip netns exec "$P-$rx_ns" "${pin0[@]}" "$PG" rx --iface $rx_if "${rx_args[@]}" \
    --duration $((DURATION + 30)) --json >"$d/rx.json" 2>"$d/rx.err" &
  local rx_pid=$! i
  PIDS+=("$rx_pid")
  for i in $(seq 100); do
    grep -q "rx ready" "$d/rx.err" && break
    kill -0 "$rx_pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q "rx ready" "$d/rx.err" || { cat "$d/rx.err" >&2; exit 1; }
  sink_napi "$rx_ns" "$rx_if" "$napi_before"
  [ "$c" = ovs ] && { appctl dpif-netdev/pmd-stats-clear >/dev/null || true; }
  snapshot "$c" "$d/pre"
  cpu1 >"$d/cpu.pre"
  (sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')"; foreign_load "$d/load") &
  local load_pid=$!
  PIDS+=("$load_pid")
  local txrc=0
  ip netns exec "$P-$tx_ns" "${pin0[@]}" timeout $((DURATION + 20)) "$PG" tx "${tx_args[@]}" \
    --engine "$GEN" --size "$size" --flows "$flows" --rate "$RATE" --duration "$DURATION" --json \
    >"$d/tx.json" 2>"$d/tx.err" || txrc=$?
  cpu1 >"$d/cpu.post"
  stop_pid "$load_pid"
  sleep 0.5
  snapshot "$c" "$d/post"
  stop_pid "$rx_pid"
  [ "$txrc" = 0 ] || echo "   xvs-pktgen tx exited with $txrc: $(cat "$d/tx.err")" >&2
  python3 "$tmp/report.py" row "$d" "$c" "$dir" "$kind" "$size" "$flows" "$run" \
    "$([ "$c" = ovs ] && echo "$OVS_MODE_USED" || echo -)" >>"$JSONL"
  python3 "$tmp/report.py" line "$(tail -n 1 "$JSONL")" >&2
}

# ---------------------------------------------------------------------
# The report: rows from the raw files, the table, the plot.
cat >"$tmp/report.py" <<'PY'
import json, os, re, statistics, sys

def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default

def text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""

def links(d):
    out = {}
    for l in load(os.path.join(d, "links.json"), []) or []:
        s = l.get("stats64") or l.get("stats") or {}
        rx, tx = s.get("rx", {}), s.get("tx", {})
        out[l["ifname"]] = {"rx": rx.get("packets", 0), "tx": tx.get("packets", 0),
                            "drop": rx.get("dropped", 0) + tx.get("dropped", 0)}
    return out

def xvs_ports(d):
    out = {}
    for r in load(os.path.join(d, "xvs_stats.json"), []) or []:
        out[r["name"]] = {"rx": r["rx_packets"], "tx": r["tx_packets"],
                          "drop": sum(r.get("drops", {}).values())}
    return out

def ovs_ports(d):
    out, cur = {}, None
    for line in text(os.path.join(d, "ovs_dpctl.txt")).splitlines():
        m = re.match(r"\s*port \d+: (\S+)", line)
        if m:
            cur = m.group(1); out[cur] = {"rx": 0, "tx": 0, "drop": 0}; continue
        m = re.match(r"\s*(RX|TX) packets:(\d+)", line)
        if m and cur:
            out[cur][m.group(1).lower()] = int(m.group(2))
            dm = re.search(r"dropped:(\d+)", line)
            if dm:
                out[cur]["drop"] += int(dm.group(1))
    return out

def delta(pre, post):
    return {k: {f: post[k][f] - pre.get(k, {}).get(f, 0) for f in post[k]} for k in post}

def ovs_pmd(d):
    t = text(os.path.join(d, "ovs_pmd.txt"))
    def num(pat):
        m = re.search(pat, t)
        return float(m.group(1)) if m else None
    return {"packets": num(r"packets received:\s*(\d+)"),
            "cycles_per_packet_total": num(r"avg cycles per packet:\s*([\d.]+)"),
            "cycles_per_packet": num(r"avg processing cycles per packet:\s*([\d.]+)"),
            "busy_pct": num(r"processing cycles:\s*\d+\s*\(([\d.]+)%\)"),
            "recirculations": num(r"packet recirculations:\s*(\d+)")}

def xvs_workers(d):
    w = load(os.path.join(d, "xvs_workers.json"), []) or []
    pk = sum(r["packets"] for r in w)
    cyc = sum(r["packets"] * (r.get("cycles_per_packet") or 0) for r in w)
    # Of those, the cycles spent handing frames to the kernel (in copy
    # mode: its whole transmit, inside the kick).
    send = sum(r["packets"] * (r.get("send_cycles_per_packet") or 0) for r in w)
    busy = statistics.mean([r["busy_pct"] for r in w]) if w else 0
    t = float(text(os.path.join(d, "time")) or 0) - float(text(os.path.join(d, "xvs_t0")) or 0)
    # Frames the pipeline copied to make headroom for a tunnel header: the
    # issue's "no payload copy on the encap path" check.
    copies = sum((r.get("events") or {}).get("copies", 0) for r in w)
    return pk, cyc, busy, t, copies, send

def row(d, c, dr, kind, size, flows, run, ovs_mode):
    tx, rx = load(os.path.join(d, "tx.json"), {}), load(os.path.join(d, "rx.json"), {})
    txp, secs = tx.get("packets", 0), tx.get("duration_secs") or 1e-9
    rxp = rx.get("packets", 0) - rx.get("invalid", 0)
    b0, i0 = map(int, text(os.path.join(d, "cpu.pre")).split())
    b1, i1 = map(int, text(os.path.join(d, "cpu.post")).split())
    hz = os.sysconf("SC_CLK_TCK")
    cpu_s = (b1 - b0) / hz
    r = {"contender": c, "direction": dr, "tunnel": "none" if c == "ceiling" else kind,
         "size": int(size), "flows": int(flows), "run": int(run),
         "tx_packets": txp, "tx_secs": secs, "tx_mpps": txp / secs / 1e6,
         "rx_packets": rxp, "rx_invalid": rx.get("invalid", 0),
         "rx_socket_drops": rx.get("xsk_rx_dropped", 0),
         "mpps": rxp / secs / 1e6,
         "loss_pct": max(0.0, 100.0 * (txp - rxp) / txp) if txp else None,
         "core1_busy_pct": 100.0 * (b1 - b0) / max(1, (b1 - b0) + (i1 - i0)),
         "core1_cpu_ns_per_packet": cpu_s * 1e9 / rxp if rxp else None,
         "cycles_per_packet": None, "switch_busy_pct": None}
    fl = (text(os.path.join(d, "load")).split(None, 1) + ["0", "-"])[:2]
    r["other_load_pct"], r["other_load_procs"] = int(fl[0] or 0), fl[1].strip()
    if c == "ovs":
        r["ovs_port_type"] = ovs_mode
        ports = delta(ovs_ports(os.path.join(d, "pre")), ovs_ports(os.path.join(d, "post")))
        pmd = ovs_pmd(os.path.join(d, "post"))
        r["ovs_pmd"] = pmd
        r["cycles_per_packet"] = pmd["cycles_per_packet"]
        r["switch_busy_pct"] = pmd["busy_pct"]
    elif c in ("xvs", "xvsfast"):
        ports = delta(xvs_ports(os.path.join(d, "pre")), xvs_ports(os.path.join(d, "post")))
        p0, c0, bz0, t0, cp0, s0 = xvs_workers(os.path.join(d, "pre"))
        p1, c1, bz1, t1, cp1, s1 = xvs_workers(os.path.join(d, "post"))
        r["xvs_copies"] = cp1 - cp0
        if p1 > p0:
            r["cycles_per_packet"] = (c1 - c0) / (p1 - p0)
            r["xvs_send_cycles_per_packet"] = (s1 - s0) / (p1 - p0)
        if t1 > t0:  # busy_pct is since xvsd started: the window's share
            r["switch_busy_pct"] = (bz1 * t1 - bz0 * t0) / (t1 - t0)
        r["xvs_worker_packets"] = p1 - p0
        if c == "xvsfast":
            # Its worker sees only the executor's misses: cycles over a
            # handful of packets say nothing of the switch's cost.
            r["cycles_per_packet"] = r["xvs_send_cycles_per_packet"] = None
    else:
        ports = {}
    ln = delta(links(os.path.join(d, "pre")), links(os.path.join(d, "post")))
    r["switch_ports"] = ports
    r["veth"] = {k: v for k, v in ln.items() if k in ("p0", "u0", "vx0", "br0", "br-phy")}
    inp, outp = ("p0", "u0") if dr == "encap" else ("u0", "p0")
    # The fast path's frames pass no port counter of xvsd's (its executor
    # counts them by flow): the veths' counters say what crossed.
    sp = ports if c in ("xvs", "ovs") else ln
    if c == "xvs" and dr == "encap":
        r["switch_in"] = sp.get("p0", {}).get("rx"); r["switch_out"] = sp.get("tun", {}).get("tx")
    elif c == "xvs":
        r["switch_in"] = sp.get("tun", {}).get("rx"); r["switch_out"] = sp.get("p0", {}).get("tx")
    else:
        r["switch_in"] = sp.get(inp, {}).get("rx"); r["switch_out"] = sp.get(outp, {}).get("tx")
    return r

def fmt(v, f="{:.0f}"):
    return "-" if v is None else f.format(v)

def line(r):
    return (f"   {r['contender']:8} {r['direction']} {r['tunnel']} {r['size']} B {r['flows']} fl run {r['run']}: "
            f"sent {r['tx_packets']} ({r['tx_mpps']:.3f} Mpps), switch in/out {r['switch_in']}/{r['switch_out']}, "
            f"received {r['rx_packets']} = {r['mpps']:.3f} Mpps, loss {fmt(r['loss_pct'], '{:.1f}')}%, "
            f"cycles/pkt {fmt(r['cycles_per_packet'])}, busy {fmt(r['switch_busy_pct'], '{:.0f}')}%, "
            f"core1 {r['core1_busy_pct']:.0f}% {fmt(r['core1_cpu_ns_per_packet'])} ns/pkt; "
            f"other load {r.get('other_load_pct')}% ({r.get('other_load_procs')})")

ORDER = ["xvs", "xvsfast", "ovs", "kernel", "ceiling"]

def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None

def report(out):
    rows = [json.loads(l) for l in open(os.path.join(out, "runs.jsonl")) if l.strip()]
    groups = {}
    for r in rows:
        groups.setdefault((r["contender"], r["direction"], r["tunnel"], r["size"], r["flows"]), []).append(r)
    def key(k):
        return (k[1], k[2] if k[2] != "none" else "~", k[3], k[4], ORDER.index(k[0]) if k[0] in ORDER else 9)
    meta = json.load(open(os.path.join(out, "meta.json")))
    md = [f"# xvs vs Open vSwitch vs the kernel vs XDP redirect ({meta['date']})", "",
          f"`{meta['command']}` on {meta['machine']}. {meta['layout']}", ""]
    if meta.get("notice"):
        md += [f"**Notice:** {meta['notice']}", ""]
    md += [
          "| contender | direction | tunnel | size (B) | flows | Mpps median [min-max] | runs | switch cycles/packet | core 1 CPU-ns/packet | core 1 busy % | loss % (median) | sent / switch in / switch out / received (median run) | other load % (max) |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    summary = {}
    for k in sorted(groups, key=key):
        g = groups[k]
        mp = [r["mpps"] for r in g]
        m = med(mp)
        summary[k] = {"mpps": m, "cyc": med([r["cycles_per_packet"] for r in g]),
                      "send": med([r.get("xvs_send_cycles_per_packet") for r in g]),
                      "ns": med([r["core1_cpu_ns_per_packet"] for r in g])}
        mr = sorted(g, key=lambda r: r["mpps"])[len(g) // 2]
        name = k[0] + (f" ({g[0].get('ovs_port_type')})" if k[0] == "ovs" else "")
        md.append(f"| {name} | {k[1]} | {k[2]} | {k[3]} | {k[4]} | {m:.3f} [{min(mp):.3f}-{max(mp):.3f}] | {len(g)} | "
                  f"{fmt(summary[k]['cyc'])}{'' if summary[k]['send'] is None else ' (send ' + fmt(summary[k]['send']) + ')'} | {fmt(summary[k]['ns'])} | {fmt(med([r['core1_busy_pct'] for r in g]))} | "
                  f"{fmt(med([r['loss_pct'] for r in g]), '{:.1f}')} | "
                  f"{mr['tx_packets']} / {fmt(mr['switch_in'])} / {fmt(mr['switch_out'])} / {mr['rx_packets']} | "
                  f"{max(r.get('other_load_pct', 0) for r in g)} |")
    xr = [r for r in rows if r["contender"] == "xvs" and "xvs_copies" in r]
    fast = any(k[0] == "xvsfast" for k in groups)
    if xr:
        enc = [r for r in xr if r["direction"] == "encap"]
        md += ["", f"xvs payload copies (frames copied to make room for the tunnel header, xvsctl worker-stats "
               f"`copies`): {sum(r['xvs_copies'] for r in enc)} in {len(enc)} encap runs "
               f"({sum(r.get('xvs_worker_packets', 0) for r in enc)} packets), "
               f"{sum(r['xvs_copies'] for r in xr if r['direction'] == 'decap')} in decap runs."]
    md += ["", "Ratios of medians (Mpps; for cycles, xvs's cycles per packet over OVS's PMD processing cycles per packet; "
           "for CPU, core-1 CPU-ns per packet):", "",
           "| direction | tunnel | size (B) | flows | xvs Mpps | xvs/OVS | xvs/kernel | xvs/ceiling | cycles xvs/OVS | CPU-ns xvs/kernel |"
           + (" xvsfast Mpps | xvsfast/OVS | xvsfast/kernel | CPU-ns xvsfast/kernel |" if fast else ""),
           "|---|---|---|---|---|---|---|---|---|---|" + ("---|---|---|---|" if fast else "")]
    def ratio(a, b):
        return f"{a / b:.2f}" if a is not None and b else "-"
    scen = sorted({k[1:] for k in groups if k[0] != "ceiling"}, key=lambda s: (s[0], s[1], s[2], s[3]))
    for s in scen:
        xv = summary.get(("xvs",) + s, {})
        xf = summary.get(("xvsfast",) + s, {})
        ov = summary.get(("ovs",) + s, {})
        kn = summary.get(("kernel",) + s, {})
        ce = summary.get(("ceiling", s[0], "none", s[2], s[3]), {})
        md.append(f"| {s[0]} | {s[1]} | {s[2]} | {s[3]} | {fmt(xv.get('mpps'), '{:.3f}')} | {ratio(xv.get('mpps'), ov.get('mpps'))} | "
                  f"{ratio(xv.get('mpps'), kn.get('mpps'))} | {ratio(xv.get('mpps'), ce.get('mpps'))} | "
                  f"{ratio(xv.get('cyc'), ov.get('cyc'))} | {ratio(xv.get('ns'), kn.get('ns'))} |"
                  + (f" {fmt(xf.get('mpps'), '{:.3f}')} | {ratio(xf.get('mpps'), ov.get('mpps'))} | "
                     f"{ratio(xf.get('mpps'), kn.get('mpps'))} | {ratio(xf.get('ns'), kn.get('ns'))} |" if fast else ""))
    md += ["", "Columns: Mpps is what the sink received over the generator's send window. Switch cycles/packet: "
           "xvs = busy cycles / packets (xvsctl worker-stats), OVS = avg processing cycles per packet "
           "(dpif-netdev/pmd-stats-show); both exclude idle polling. For xvs, (send N) is the part spent handing "
           "frames to the kernel (TX rings and kicks, where copy mode runs the kernel's whole transmit; completions; "
           "fill rings: xvsctl worker-stats send_cycles_per_packet); the rest is its own receive and pipeline. Core 1 CPU-ns/packet = CPU time of core 1 "
           "(/proc/stat, user+system+irq+softirq) over the send window / packets received; for busy-polling "
           "switches (xvs, OVS) core 1 is 100% busy by design, so only the kernel's and the ceiling's are a cost. "
           "Switch in/out: xvs = p0 rx / tunnel tx (encap), tunnel rx / p0 tx (decap) from xvsctl stats; "
           "OVS = dpctl/show -s port counters; kernel and ceiling = ip -s link of p0/u0. Other load: CPU % of "
           "processes other than the benchmark's (top, mid-row; 200 = both cores); rows with much of it are not to be trusted."]
    open(os.path.join(out, "table.md"), "w").write("\n".join(md) + "\n")
    svg(out, scen, summary)
    print("\n".join(md))

def svg(out, scen, summary):
    cols = {"xvs": "#1f77b4", "xvsfast": "#17becf", "ovs": "#ff7f0e", "kernel": "#2ca02c", "ceiling": "#999999"}
    bw, gap, left, top, h = 12, 18, 60, 40, 300
    n = len(scen)
    width = left + n * (len(ORDER) * bw + gap) + 140
    vals = [v["mpps"] for v in summary.values() if v["mpps"]]
    ymax = max(vals + [0.1]) * 1.1
    e = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + h + 120}" font-family="sans-serif" font-size="10">',
         f'<text x="{left}" y="20" font-size="14">Mpps (median) per scenario: xvs, OVS, kernel, XDP redirect ceiling</text>']
    for t in range(6):
        y = top + h - h * t / 5
        e.append(f'<line x1="{left}" x2="{width - 140}" y1="{y:.0f}" y2="{y:.0f}" stroke="#ddd"/>'
                 f'<text x="{left - 5}" y="{y + 3:.0f}" text-anchor="end">{ymax * t / 5:.2f}</text>')
    for i, s in enumerate(scen):
        x0 = left + i * (len(ORDER) * bw + gap) + gap / 2
        for j, c in enumerate(ORDER):
            k = ("ceiling", s[0], "none", s[2], s[3]) if c == "ceiling" else (c,) + s
            v = summary.get(k, {}).get("mpps")
            if v:
                bh = h * v / ymax
                e.append(f'<rect x="{x0 + j * bw:.0f}" y="{top + h - bh:.1f}" width="{bw - 1}" height="{bh:.1f}" fill="{cols[c]}"><title>{c} {" ".join(map(str, s))}: {v:.3f} Mpps</title></rect>')
        lab = f"{s[0]} {s[1]} {s[2]}B {s[3]}fl"
        xl = x0 + 2 * bw
        e.append(f'<text transform="translate({xl:.0f},{top + h + 8}) rotate(60)">{lab}</text>')
    for j, c in enumerate(ORDER):
        y = top + 10 + j * 16
        e.append(f'<rect x="{width - 130}" y="{y}" width="10" height="10" fill="{cols[c]}"/><text x="{width - 115}" y="{y + 9}">{c}</text>')
    e.append("</svg>")
    open(os.path.join(out, "plot.svg"), "w").write("\n".join(e) + "\n")

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "row":
        print(json.dumps(row(*sys.argv[2:10])))
    elif cmd == "line":
        print(line(json.loads(sys.argv[2])))
    elif cmd == "report":
        report(sys.argv[2])
PY
# REPORT_ONLY=DIR: the table from DIR's runs.jsonl and meta.json, measuring nothing (bench/bulk.sh).
if [ -n "${REPORT_ONLY:-}" ]; then python3 "$tmp/report.py" report "$REPORT_ONLY" >/dev/null; exit 0; fi

cat >"$OUT/meta.json" <<JSON
{"date": "$(date -u +%Y-%m-%dT%H:%MZ)",
 "command": "RUNS=$RUNS DURATION=$DURATION GEN=$GEN_ASKED bench/compare.sh",
 "notice": $(python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$GEN_NOTICE"),
 "machine": "$(uname -r), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//; s/"//g')), $(ovs-vswitchd --version | head -1)",
 "layout": "Generator and receiver (xvs-pktgen) on core 0; the switch on core 1 (xvsd worker / OVS PMD + ovs-vswitchd / kernel bridge+vxlan via RPS); veth receive in the sender's context (p0/u0 XDP and socket copy on core 0, s0/g0 on core 1), so the XDP-redirect ceiling runs on core 0 (NAPI_THREADED=$NAPI_THREADED)$([ "$SINK_NAPI" = core0 ] && echo "; SINK_NAPI=core0: s0's and g0's receive in a threaded NAPI pinned to core 0 at SCHED_FIFO 50, so core 1 runs the switch alone"); generator engine $GEN$([ "$GEN" = xdp ] && echo " (BPF_PROG_RUN live frames; GRO on on p0/u0 for the kernel and OVS netdev ports, which have no XDP program)"); unpaced generator (RATE=$RATE); $DURATION s per row."}
JSON

echo "== results in $OUT" >&2
# Each run starts with a different contender (run r begins r-1 places
# into CONTENDERS): a contender's points take a minute or more, and the
# machine's speed drifts on that scale, so a fixed order would hand the
# same contender the same slot of every run.
read -r -a contenders <<<"$CONTENDERS"
for run in $(seq $((RUN0 + 1)) $((RUN0 + RUNS))); do
  shift_by=$(((run - 1) % ${#contenders[@]}))
  order=("${contenders[@]:shift_by}" "${contenders[@]:0:shift_by}")
  for kind in $KINDS; do
    for c in "${order[@]}"; do
      # The ceiling has no tunnel: measured once per run, with the first kind.
      [ "$c" = ceiling ] && [ "$kind" != "${KINDS%% *}" ] && continue
      echo "== run $run/$((RUN0 + RUNS)): $c ($kind)" >&2
      topo_up
      # Not every kernel has geneve (this one: no module, not built in).
      if [ "$c" = kernel ] && [ "$kind" = geneve ]; then
        if ! x sw ip link add gprobe type geneve id 1 remote 192.0.2.2 2>"$tmp/geneve.err"; then
          echo "   skipped: the kernel has no geneve device: $(cat "$tmp/geneve.err")" >&2
          grep -q geneve "$OUT/skipped.txt" 2>/dev/null ||
            echo "kernel geneve: ip link add ... type geneve: $(cat "$tmp/geneve.err") ($(uname -r))" >>"$OUT/skipped.txt"
          topo_down
          continue
        fi
        x sw ip link del gprobe
      fi
      "${c}_up" "$kind"
      for dir in $DIRS; do
        for size in $SIZES; do
          for flows in $FLOWS; do
            measure "$c" "$dir" "$kind" "$size" "$flows" "$run"
          done
        done
      done
      "${c}_down"
      topo_down
    done
  done
done

python3 "$tmp/report.py" report "$OUT"
echo >&2
echo "== written: $OUT/{runs.jsonl,table.md,plot.svg,meta.json}" >&2
