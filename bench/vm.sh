#!/usr/bin/env bash
# Issue 18's benchmark: a guest on a vhost-user port of xvs against the
# contenders a hypervisor would otherwise run, in ONE run, the contenders
# alternating from round to round (RUNS rounds), on the two-core layout of
# the other benchmarks (the guest side on core 0, the switch on core 1).
#
#   ns sw:     the switch under test; u0 192.0.2.1 (VTEP) ── veth ──┐
#   ns remote: s0 192.0.2.2, the remote VTEP                        ┘
#
# Part `pps`: DPDK's dpdk-testpmd in txonly mode is the guest (its
# virtio-user driver on the switch's vhost-user socket, memfd memory, no
# VM: a TCG guest could not load a switch), SIZE-byte UDP frames to the
# static MAC of a guest behind the tunnel; the switch encapsulates them
# (VXLAN, VNI 100) to 192.0.2.2, where xvs-pktgen rx counts them on s0
# (XDP, as bench/vhost.sh). testpmd's two lcores and the sink on core 0.
# Rate = frames the switch transmitted on u0 (its sysfs tx_packets, the
# same counter for every contender) over DURATION s, measured from 2 s
# after testpmd starts.
#   xvs  xvsd, one worker pinned to core 1, busy polling; br0 = {vu1
#        (vhost-user, xvsd the server), tun (VXLAN to 192.0.2.2)}, static
#        MACs (bench/vhost.sh's setup).
#   ovs  Open vSwitch 3.1 with DPDK (Debian's openvswitch-switch-dpdk,
#        /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk; the system's
#        ovs-vswitchd alternative is left alone), netdev datapath, laid
#        out as its userspace-tunneling guide says: br-int = {vu1
#        (dpdkvhostuser: OVS the server, as xvsd), tun0 (vxlan, key 100,
#        remote 192.0.2.2)}, br-phy = {u0} with 192.0.2.1 on br-phy, a
#        static tunnel ARP entry and route; u0 an OVS afxdp port
#        (OVS_UPLINK=afxdp, native XDP, as compare.sh; OVS_UPLINK=system:
#        a plain AF_PACKET netdev port), static MACs (fdb/add). DPDK on
#        2 MiB hugepages: the script reserves OVS_HUGEPAGES (600) in
#        /proc/sys/vm/nr_hugepages for the run and puts the old count back
#        on exit; dpdk-socket-mem=1024, dpdk-extra "--no-pci
#        --file-prefix=..." (OVS adds --in-memory: memfd hugepages, no
#        hugetlbfs mount needed). One PMD on core 1 (pmd-cpu-mask=0x2),
#        the whole ovs-vswitchd on core 1.
#   ovsnh  the same without hugepages (how DPDK runs where none can be
#        reserved): dpdk-extra "--no-huge -m 1024 --no-pci --legacy-mem
#        --file-prefix=..." (--legacy-mem keeps OVS from adding
#        --in-memory, which DPDK refuses next to --no-huge).
#
# Part `tcp`: a real guest, QEMU 10 under TCG (no usable KVM here), one
# vCPU, Debian's kernel and a busybox initramfs with iperf3
# (scripts/guest.sh), eth0 10.0.0.1/24 MTU 1450, its virtio-net offloads
# on; the remote guest is the kernel's vxlan device vx0 in ns remote
# (10.0.0.2/24, MTU 1450, VNI 100, over s0; underlay MTU 1500). QEMU (all
# its threads) is pinned to core 0; the switch to core 1; iperf3 on the
# remote side and the kernel's softirqs unpinned. iperf3 -c from ns
# remote to the guest's iperf3 server: remote2guest (the remote sends)
# and guest2remote (-R: the guest sends), one stream, TCP_DURATION s.
#   xvs  as above, vu1 with QEMU's vhost-user netdev (memfd, share=on);
#        xvsd polls TCP_POLL (adaptive, xvsd's default: a busy-polling
#        switch would bill a whole core to every Gbit/s; or busy).
#   tap  QEMU's own virtio-net (-netdev tap, vhost=off: this machine has
#        no /dev/vhost-net) on a tap in ns sw, Linux bridge br0 = {tap,
#        vx0 (kernel vxlan over u0, local 192.0.2.1)}, static FDB entries.
#   ovs  as above, QEMU's vhost-user netdev on vu1; with TCP_POLL=adaptive
#        the PMD may sleep when idle (other_config:pmd-maxsleep=50, OVS
#        3.1's experimental load-based sleep, the nearest to xvsd's
#        adaptive polling).
# Each TCP row: Gbit/s (iperf3 -J, end.sum_received), retransmits, and
# over the window from when the stream is established for TCP_DURATION s:
# CPU of both cores from /proc/stat (user+nice+system+irq+softirq+steal,
# softirq included) as cores busy and per Gbit/s, each core's busy share,
# QEMU's CPU and its busiest thread (the vCPU, "CPU 0/TCG"), the switch's
# process CPU, and other processes' CPU (top, mid-row: other engineers'
# builds show there).
#
# Usage (root): bench/vm.sh
# Knobs: RUNS=3, PARTS="pps tcp",
#   PPS_CONTENDERS="xvs ovs ovsnh", TCP_CONTENDERS="xvs tap ovs", SIZES="64 1400", DURATION=5 (pps, s per
#   row), TCP_DURATION=10, TCP_DIRS="guest2remote remote2guest",
#   TCP_POLL=adaptive (or busy), OVS_UPLINK=afxdp (or system),
#   OVS_HUGEPAGES=600 (2 MiB pages reserved while the run lasts),
#   GUEST_DIR (scripts/guest.sh's output; default /var/tmp/xvs-bench-guest,
#   built if missing), XVSD_BIN/XVSCTL_BIN/PKTGEN_BIN (another build; no
#   cargo build then), OUT=bench/results/vm-<UTC date-time>.
# Output in OUT: pps.jsonl, tcp.jsonl (a row per measurement), table.md
# (medians and ratios), meta.txt, logs/ (xvsd, OVS, QEMU consoles, testpmd,
# iperf3). Every wait is bounded; on exit (also on error or Ctrl-C) every
# process it started is stopped and the namespaces deleted.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
source bench/procs.sh
[ "$(id -u)" = 0 ] || { echo "creates namespaces, taps and XDP programs: run as root" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "needs 2 cores (the guest side on 0, the switch on 1)" >&2; exit 1; }

RUNS=${RUNS:-3}
PARTS=${PARTS:-pps tcp}
PPS_CONTENDERS=${PPS_CONTENDERS:-xvs ovs ovsnh}
OVS_HUGEPAGES=${OVS_HUGEPAGES:-600}
TCP_CONTENDERS=${TCP_CONTENDERS:-xvs tap ovs}
SIZES=${SIZES:-64 1400}
DURATION=${DURATION:-5}
TCP_DURATION=${TCP_DURATION:-10}
TCP_DIRS=${TCP_DIRS:-guest2remote remote2guest}
TCP_POLL=${TCP_POLL:-adaptive}
OVS_UPLINK=${OVS_UPLINK:-afxdp}
GUEST_DIR=${GUEST_DIR:-/var/tmp/xvs-bench-guest}
OUT=${OUT:-bench/results/vm-$(date -u +%Y-%m-%d-%H%M)}
OVS_DPDK=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
OVS_SCHEMA=/usr/share/openvswitch/vswitch.ovsschema
VNI=100
GUEST_MAC=02:00:00:00:0c:01   # the local guest (testpmd or QEMU)
REMOTE_MAC=02:00:00:00:0c:02  # the remote guest behind the tunnel (vx0)
U0_MAC=02:00:00:00:00:01
S0_MAC=02:00:00:00:00:02
HZ=$(getconf CLK_TCK)
export HZ

case $TCP_POLL in busy|adaptive) ;; *) echo "TCP_POLL=$TCP_POLL: busy or adaptive" >&2; exit 1 ;; esac
case $OVS_UPLINK in afxdp|system) ;; *) echo "OVS_UPLINK=$OVS_UPLINK: afxdp or system" >&2; exit 1 ;; esac
want_ovs=0
[[ " $PARTS " == *" pps "* && " $PPS_CONTENDERS " == *" ovs"* ]] && want_ovs=1
[[ " $PARTS " == *" tcp "* && " $TCP_CONTENDERS " == *" ovs "* ]] && want_ovs=1

ensure_packages "${BUILD_PACKAGES[@]}" iproute2 python3 procps util-linux iperf3 dpdk
[ "$want_ovs" = 1 ] && ensure_packages openvswitch-switch openvswitch-switch-dpdk
if [[ " $PARTS " == *" tcp "* ]]; then
  ensure_backports qemu-system-x86
  bash scripts/guest.sh "$GUEST_DIR"
fi

if [ -z "${XVSD_BIN:-}" ] || [ -z "${XVSCTL_BIN:-}" ] || [ -z "${PKTGEN_BIN:-}" ]; then
  echo "== building (release)" >&2
  cargo build --release --locked -q -p xvsd -p xvs-ctl -p xvs-bench --bin xvsd --bin xvsctl --bin xvs-pktgen
fi
TD=${CARGO_TARGET_DIR:-$PWD/target}
XVSD=${XVSD_BIN:-$TD/release/xvsd}
# XVSD_OLD_BIN: another xvsd, the `xvsold` contender (a before/after in one run).
XVSD_OLD=${XVSD_OLD_BIN:-$XVSD}
XVSCTL=${XVSCTL_BIN:-$TD/release/xvsctl}
PG=${PKTGEN_BIN:-$TD/release/xvs-pktgen}

mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
: >"$OUT/pps.jsonl"
: >"$OUT/tcp.jsonl"
P=xvsvm$$
tmp=$(mktemp -d)
PIDS=()
xvsd_pid= ovsdb_pid= vswitchd_pid= qemu_pid=
cleanup() {
  local pid ns
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do stop_wait "$pid"; done
  for ns in sw remote; do ip netns del "$P-$ns" 2>/dev/null || true; done
  if [ -d "$tmp" ]; then cp -r "$tmp"/logs/. "$OUT/logs/" 2>/dev/null || true; fi
  rm -rf "$tmp" /var/run/dpdk/"$P"*
  if [ -n "$HUGE_BEFORE" ]; then echo "$HUGE_BEFORE" >/proc/sys/vm/nr_hugepages || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "vm.sh: line $LINENO: $BASH_COMMAND failed" >&2' ERR
mkdir -p "$tmp/logs"
x() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }
log() { echo "$*" >&2; }

{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (+ uncommitted changes)')"
  echo "kernel: $(uname -r); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-); nproc: $(nproc)"
  echo "RUNS=$RUNS PARTS=\"$PARTS\" PPS_CONTENDERS=\"$PPS_CONTENDERS\" TCP_CONTENDERS=\"$TCP_CONTENDERS\" SIZES=\"$SIZES\" DURATION=$DURATION TCP_DURATION=$TCP_DURATION TCP_DIRS=\"$TCP_DIRS\" TCP_POLL=$TCP_POLL OVS_UPLINK=$OVS_UPLINK"
  echo "testpmd: $(dpkg-query -W -f='${Version}' dpdk 2>/dev/null)"
  echo "qemu: $(qemu-system-x86_64 --version 2>/dev/null | head -n 1)"
  echo "ovs-dpdk: $(dpkg-query -W -f='${Version}' openvswitch-switch-dpdk 2>/dev/null || echo -)"
  echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/meta.txt"

# ---------------------------------------------------------------------
# The topology, once for the whole run.
for ns in sw remote; do ip netns add "$P-$ns"; x "$ns" ip link set lo up; done
x sw sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
x remote sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip link add u0 netns "$P-sw" address $U0_MAC numtxqueues 1 numrxqueues 1 \
  type veth peer name s0 netns "$P-remote" address $S0_MAC numtxqueues 1 numrxqueues 1
x sw ip addr add 192.0.2.1/24 dev u0
x remote ip addr add 192.0.2.2/24 dev s0
x sw ip link set u0 up
x remote ip link set s0 up
x sw ip neigh replace 192.0.2.2 lladdr $S0_MAC dev u0 nud permanent
x remote ip neigh replace 192.0.2.1 lladdr $U0_MAC dev s0 nud permanent

# ---------------------------------------------------------------------
# xvs
xvsctl() { timeout 10 "$XVSCTL" --socket "$tmp/xvsd.sock" --format json "$@"; }
xvs_starts=0
xvs_up() { # xvs_up POLL: vu1 on $tmp/vu1.sock
  xvs_starts=$((xvs_starts + 1))
  local poll=$1 log=$tmp/logs/xvsd-$xvs_starts.log i flags=(--workers 1 --cores 1)
  [ "$poll" = busy ] && flags+=(--poll busy)
  cat >"$tmp/xvsd.toml" <<TOML
[uplink]
iface = "u0"
local_ips = ["192.0.2.1"]

[[bridges]]
name = "br0"

[[ports]]
name = "vu1"
bridge = "br0"
kind = { type = "vhost-user", socket = "$tmp/vu1.sock" }

[[tunnels]]
name = "tun"
bridge = "br0"
kind = "vxlan"
vni = $VNI
remotes = ["192.0.2.2"]

[[fdb]]
bridge = "br0"
mac = "$REMOTE_MAC"
port = "tun"
remote = "192.0.2.2"

[[fdb]]
bridge = "br0"
mac = "$GUEST_MAC"
port = "vu1"
TOML
  rm -f "$tmp/xvsd.sock" "$tmp/xvsd-state.json" "$tmp/vu1.sock"
  NO_COLOR=1 RUST_LOG=info ip netns exec "$P-sw" "$XVSD" --config "$tmp/xvsd.toml" "${flags[@]}" \
    --socket "$tmp/xvsd.sock" --state "$tmp/xvsd-state.json" 2>"$log" &
  xvsd_pid=$!
  PIDS+=("$xvsd_pid")
  for i in $(seq 150); do
    grep -q "xvsd running" "$log" && break
    kill -0 "$xvsd_pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q "xvsd running" "$log" || { tail -n 5 "$log" >&2; log "xvsd did not start"; return 1; }
  SOCK=$tmp/vu1.sock
}
xvs_down() {
  [ -n "$xvsd_pid" ] && stop_pid "$xvsd_pid"
  xvsd_pid=
  x sw ip link set dev u0 xdp off 2>/dev/null || true
  x sw ip link set dev u0 xdpgeneric off 2>/dev/null || true
}

# ---------------------------------------------------------------------
# Open vSwitch with DPDK
ovs_env() { env OVS_RUNDIR="$tmp/ovs" OVS_DBDIR="$tmp/ovs" OVS_LOGDIR="$tmp/ovs" OVS_SYSCONFDIR="$tmp/ovs" "$@"; }
vsctl() { ovs_env timeout 20 ovs-vsctl --db="unix:$tmp/ovs/db.sock" --timeout=15 "$@"; }
appctl() { ovs_env timeout 10 ovs-appctl --timeout=5 -t "$tmp/ovs/vswitchd.ctl" "$@"; }
ovs_starts=0
OVS_UPLINK_USED=
HUGE_BEFORE=
ovs_up() { # ovs_up POLL [nohuge]: vu1 on $tmp/ovs/vu1
  ovs_starts=$((ovs_starts + 1))
  local poll=$1 mem=${2:-huge} i
  rm -rf "$tmp/ovs"; mkdir -p "$tmp/ovs"
  ovs_env ovsdb-tool create "$tmp/ovs/conf.db" "$OVS_SCHEMA"
  env OVS_RUNDIR="$tmp/ovs" OVS_DBDIR="$tmp/ovs" OVS_LOGDIR="$tmp/ovs" OVS_SYSCONFDIR="$tmp/ovs" \
    taskset -c 0 ovsdb-server "$tmp/ovs/conf.db" --remote="punix:$tmp/ovs/db.sock" \
    --unixctl="$tmp/ovs/ovsdb-server.ctl" --pidfile="$tmp/ovs/ovsdb-server.pid" \
    --log-file="$tmp/ovs/ovsdb-server.log" -vconsole:off -vsyslog:off >/dev/null 2>&1 &
  ovsdb_pid=$!
  PIDS+=("$ovsdb_pid")
  for i in $(seq 150); do vsctl --no-wait init 2>/dev/null && break; sleep 0.1; done
  vsctl --no-wait init
  vsctl --no-wait set Open_vSwitch . other_config:dpdk-init=true \
    other_config:pmd-cpu-mask=0x2 other_config:dpdk-lcore-mask=0x2
  if [ "$mem" = nohuge ]; then
    vsctl --no-wait set Open_vSwitch . \
      "other_config:dpdk-extra=\"--no-huge -m 1024 --no-pci --legacy-mem --file-prefix=$P-ovs$ovs_starts\""
  else
    if [ -z "$HUGE_BEFORE" ]; then
      HUGE_BEFORE=$(cat /proc/sys/vm/nr_hugepages)
      echo "$OVS_HUGEPAGES" >/proc/sys/vm/nr_hugepages || true
    fi
    vsctl --no-wait set Open_vSwitch . other_config:dpdk-socket-mem=1024 \
      "other_config:dpdk-extra=\"--no-pci --file-prefix=$P-ovs$ovs_starts\""
  fi
  [ "$poll" = adaptive ] && vsctl --no-wait set Open_vSwitch . other_config:pmd-maxsleep=50
  # env(1) itself, not the function: $! must be the daemon (env, ip netns
  # exec and taskset exec it).
  env OVS_RUNDIR="$tmp/ovs" OVS_DBDIR="$tmp/ovs" OVS_LOGDIR="$tmp/ovs" OVS_SYSCONFDIR="$tmp/ovs" \
    ip netns exec "$P-sw" taskset -c 1 "$OVS_DPDK" "unix:$tmp/ovs/db.sock" \
    --unixctl="$tmp/ovs/vswitchd.ctl" --pidfile="$tmp/ovs/ovs-vswitchd.pid" \
    --log-file="$tmp/ovs/ovs-vswitchd.log" -vconsole:off -vsyslog:off >"$tmp/ovs/stderr" 2>&1 &
  vswitchd_pid=$!
  PIDS+=("$vswitchd_pid")
  # The unixctl socket answers before DPDK is up: wait for the database
  # to say it is.
  for i in $(seq 300); do
    appctl version >/dev/null 2>&1 && [ "$(vsctl get Open_vSwitch . dpdk_initialized)" = true ] && break
    kill -0 "$vswitchd_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! appctl version >/dev/null 2>&1 || [ "$(vsctl get Open_vSwitch . dpdk_initialized)" != true ]; then
    log "OVS-DPDK did not start:"
    grep -E "EAL|dpdk|EMER|ERR" "$tmp/ovs/ovs-vswitchd.log" | tail -n 8 >&2 || true
    tail -n 5 "$tmp/ovs/stderr" >&2 || true
    return 1
  fi
  local utype=(type=afxdp options:xdp-mode=native options:n_rxq=1)
  [ "$OVS_UPLINK" = system ] && utype=()
  vsctl add-br br-int -- set bridge br-int datapath_type=netdev \
    -- add-port br-int vu1 -- set interface vu1 type=dpdkvhostuser \
    -- add-port br-int tun0 -- set interface tun0 type=vxlan \
       options:remote_ip=192.0.2.2 options:key=$VNI \
    -- add-br br-phy -- set bridge br-phy datapath_type=netdev other_config:hwaddr=$U0_MAC \
    -- add-port br-phy u0 ${utype[@]:+-- set interface u0 "${utype[@]}"} || true
  local err
  err=$(for i in vu1 u0; do vsctl --bare get interface $i error 2>/dev/null || echo "$i: no such interface"; done |
    grep -v '^\[\]$' | grep -v '^$' || true)
  if [ -n "$err" ] && [ "$OVS_UPLINK" = afxdp ]; then
    log "   OVS afxdp uplink failed: $err; the rest of the run uses a plain (AF_PACKET) port"
    echo "OVS afxdp uplink failed: $err" >>"$OUT/ovs-errors.txt"
    OVS_UPLINK=system
    ovs_down
    ovs_up "$poll" "$mem"
    return
  elif [ -n "$err" ]; then
    log "OVS ports failed: $err"
    echo "OVS ports failed: $err" >>"$OUT/ovs-errors.txt"
    return 1
  fi
  OVS_UPLINK_USED=$OVS_UPLINK
  x sw ip addr add 192.0.2.1/24 dev br-phy
  x sw ip link set br-phy up
  for i in $(seq 150); do
    appctl ovs/route/show | grep -q "192.0.2.0/24 dev br-phy" && break
    sleep 0.1
  done
  appctl ovs/route/add 192.0.2.0/24 br-phy >/dev/null 2>&1 || true
  appctl tnl/arp/set br-phy 192.0.2.2 $S0_MAC >/dev/null
  appctl fdb/add br-int tun0 0 $REMOTE_MAC >/dev/null
  appctl fdb/add br-int vu1 0 $GUEST_MAC >/dev/null
  appctl fdb/add br-phy u0 0 $S0_MAC >/dev/null
  SOCK=$tmp/ovs/vu1
  [ -S "$SOCK" ] || { log "OVS made no vhost-user socket $SOCK"; return 1; }
}
ovs_down() {
  [ -n "$vswitchd_pid" ] && stop_pid "$vswitchd_pid"
  [ -n "$ovsdb_pid" ] && stop_pid "$ovsdb_pid"
  vswitchd_pid= ovsdb_pid=
  [ -f "$tmp/ovs/ovs-vswitchd.log" ] && cp "$tmp/ovs/ovs-vswitchd.log" "$tmp/logs/ovs-vswitchd-$ovs_starts.log"
  rm -rf "$tmp/ovs" /var/run/dpdk/"$P-ovs"*
  # A killed vswitchd leaves br-phy's tap and u0's XDP program.
  x sw ip link del br-phy 2>/dev/null || true
  x sw ip link del br-int 2>/dev/null || true
  x sw ip link del ovs-netdev 2>/dev/null || true
  x sw ip link set dev u0 xdp off 2>/dev/null || true
  x sw ip link set dev u0 xdpgeneric off 2>/dev/null || true
}

# ---------------------------------------------------------------------
# tap + Linux bridge + kernel vxlan (the TCP part only)
tap_up() {
  x sw ip tuntap add dev tapg mode tap vnet_hdr || return 1
  x sw ip link set tapg mtu 1450 || return 1
  x sw ip link add vx0 mtu 1450 type vxlan id $VNI local 192.0.2.1 remote 192.0.2.2 \
    dstport 4789 dev u0 nolearning || return 1
  x sw ip link add br0 type bridge || return 1
  x sw ip link set tapg master br0 || return 1
  x sw ip link set vx0 master br0 || return 1
  x sw ip link set tapg up || return 1
  x sw ip link set vx0 up || return 1
  x sw ip link set br0 up || return 1
  x sw bridge fdb replace $REMOTE_MAC dev vx0 master static || return 1
  x sw bridge fdb replace $GUEST_MAC dev tapg master static || return 1
}
tap_down() {
  x sw ip link del br0 2>/dev/null || true
  x sw ip link del vx0 2>/dev/null || true
  x sw ip link del tapg 2>/dev/null || true
}

# ---------------------------------------------------------------------
# Counters
cpu_lines() { awk '$1 ~ /^cpu[0-9]*$/ { print $1, $2 + $3 + $4 + $7 + $8 + $9, $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
threads() { # threads PID: "tid comm-with-underscores jiffies" per thread
  local t
  [ -n "$1" ] && [ -d "/proc/$1/task" ] || return 0
  for t in /proc/"$1"/task/*; do
    [ -r "$t/stat" ] || continue
    awk -v tid="${t##*/}" '{ s = $0; sub(/^[^(]*\(/, "", s); c = s; sub(/\).*/, "", c); sub(/^.*\) /, "", s);
      split(s, f, " "); gsub(/ /, "_", c); print tid, c, f[12] + f[13] }' "$t/stat"
  done
}
sysctr() { x "$1" cat "/sys/class/net/$2/statistics/$3"; }
foreign_load() { # foreign_load OUTFILE: other processes' %CPU (200 = both cores), mid-row
  top -b -n 2 -d 1 -w 200 | awk '/^top -/ { n++ } n == 2 && /^ *[0-9]+ / {
      if ($12 ~ /^(iperf3|xvsd|xvs-worker|xvs-pktgen|ksoftirqd|top|napi|kworker|vm\.sh|ss|sleep|qemu-system|dpdk-testpmd|ovs-vswitchd|pmd|ovsdb-server|vhost|lcore|ping|awk|cat)/) next
      if ($9 + 0 >= 2) { sum += $9; names = names (names ? "," : "") $12 }
    } END { printf "%d %s\n", sum, (names ? names : "-") }' >"$1"
}

# ---------------------------------------------------------------------
# Part pps: one row (contender up).
pps_row() { # pps_row C SIZE RUN
  local c=$1 size=$2 run=$3 d=$tmp/pps/$1-$2-$3 i
  mkdir -p "$d"
  x remote taskset -c 0 "$PG" rx --iface s0 --expect-vni $VNI \
    --duration $((DURATION + 8)) --json >"$d/rx.json" 2>"$d/rx.err" &
  local rx_pid=$!
  PIDS+=("$rx_pid")
  for i in $(seq 100); do grep -q "rx ready" "$d/rx.err" && break; sleep 0.1; done
  timeout -k 2 $((DURATION + 30)) dpdk-testpmd --lcores "0@0,1@0" --no-huge -m 512 --no-pci \
    --file-prefix "$P-tp$run$size$c" \
    --vdev "net_virtio_user0,path=$SOCK,queues=1,queue_size=1024,mac=$GUEST_MAC" -- \
    --forward-mode=txonly --eth-peer=0,$REMOTE_MAC --txpkts=$((size - 4)) --nb-cores=1 \
    --rxd=1024 --txd=1024 --total-num-mbufs=8192 --stats-period=1 \
    </dev/null >"$d/testpmd.out" 2>"$d/testpmd.err" &
  local tp_pid=$!
  PIDS+=("$tp_pid")
  sleep 2
  (sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')"; foreign_load "$d/load") &
  local load=$!
  PIDS+=("$load")
  snap_pps "$c" "$d/pre"
  sleep "$DURATION"
  snap_pps "$c" "$d/post"
  kill -INT "$tp_pid" 2>/dev/null || true
  stop_wait "$tp_pid"; forget "$tp_pid"
  stop_pid "$load"
  sleep 1
  for i in $(seq 100); do kill -0 "$rx_pid" 2>/dev/null || break; sleep 0.1; done
  stop_pid "$rx_pid"
  mkdir -p "$tmp/logs/pps-$c-$size-$run"
  cp "$d"/* "$tmp/logs/pps-$c-$size-$run/" 2>/dev/null || true
  python3 "$tmp/report.py" pps "$d" "$c" "$size" "$run" "$DURATION" "${OVS_UPLINK_USED:--}" >>"$OUT/pps.jsonl"
  log "   $(tail -n 1 "$OUT/pps.jsonl")"
}
snap_pps() { # snap_pps C FILE-PREFIX
  local c=$1 f=$2
  date +%s.%N >"$f.time"
  sysctr sw u0 tx_packets >"$f.u0_tx"
  sysctr remote s0 rx_packets >"$f.s0_rx"
  cpu_lines >"$f.cpu"
  case $c in
    xvs|xvsold)
      xvsctl stats >"$f.xvs.json" 2>/dev/null || echo null >"$f.xvs.json"
      xvsctl worker-stats >"$f.xvsw.json" 2>/dev/null || echo null >"$f.xvsw.json" ;;
    ovs*)
      vsctl get interface vu1 statistics >"$f.ovs_vu1" 2>/dev/null || true
      if [ "${f##*/}" = pre ]; then
        appctl dpif-netdev/pmd-stats-clear >/dev/null 2>&1 || true
      else
        appctl dpif-netdev/pmd-stats-show >"$f.ovs_pmd" 2>&1 || true
      fi ;;
  esac
}

# ---------------------------------------------------------------------
# Part tcp: the guest, then one row per direction.
qemu_up() { # qemu_up C
  local c=$1 net i
  if [ "$c" = tap ]; then
    net=(-netdev tap,id=n0,ifname=tapg,script=no,downscript=no,vhost=off)
  else
    net=(-chardev "socket,id=c0,path=$SOCK,reconnect-ms=500" -netdev vhost-user,id=n0,chardev=c0)
  fi
  CONSOLE=$tmp/logs/console-$c-$run.txt
  rm -f "$CONSOLE"
  ip netns exec "$P-sw" taskset -c 0 qemu-system-x86_64 \
    -machine q35,accel=tcg -cpu max -m 256 -smp 1 -display none -no-user-config -name vmbench,debug-threads=on \
    -kernel "$GUEST_DIR/vmlinuz" -initrd "$GUEST_DIR/initrd.gz" \
    -append "console=ttyS0 panic=0 xvs.ip=10.0.0.1/24 xvs.mtu=1450" \
    -serial "file:$CONSOLE" \
    -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
    "${net[@]}" -device "virtio-net-pci,netdev=n0,mac=$GUEST_MAC" \
    </dev/null >"$tmp/logs/qemu-$c-$run.err" 2>&1 &
  qemu_pid=$!
  PIDS+=("$qemu_pid")
  for i in $(seq 900); do
    grep -q XVS-GUEST-READY "$CONSOLE" 2>/dev/null && break
    kill -0 "$qemu_pid" 2>/dev/null || break
    sleep 0.2
  done
  grep -q XVS-GUEST-READY "$CONSOLE" 2>/dev/null || {
    log "the guest did not come up ($c):"; tail -n 5 "$CONSOLE" "$tmp/logs/qemu-$c-$run.err" >&2 || true; return 1; }
  # The path works end to end (ARP through the switch included).
  for i in $(seq 30); do
    x remote ping -c 1 -W 1 -q 10.0.0.1 >/dev/null 2>&1 && return 0
  done
  log "no ping through $c to the guest in 30 s"
  return 1
}
qemu_down() {
  [ -n "$qemu_pid" ] && stop_pid "$qemu_pid"
  qemu_pid=
}
switch_pid() { case $1 in xvs|xvsold) echo "$xvsd_pid" ;; ovs*) echo "$vswitchd_pid" ;; *) echo ;; esac; }
tcp_row() { # tcp_row C DIR RUN
  local c=$1 dir=$2 run=$3 d=$tmp/tcp/$1-$2-$3 i rev=()
  mkdir -p "$d"
  [ "$dir" = guest2remote ] && rev=(-R)
  local sp
  sp=$(switch_pid "$c")
  timeout -k 2 $((TCP_DURATION + 30)) ip netns exec "$P-remote" iperf3 -c 10.0.0.1 -t "$TCP_DURATION" \
    "${rev[@]}" -J --connect-timeout 5000 >"$d/client.json" 2>"$d/client.err" &
  local cli=$!
  PIDS+=("$cli")
  local est=0
  for i in $(seq 200); do
    est=$(x remote ss -Htn state established "dport = :5201" | wc -l)
    [ "$est" -ge 2 ] && break
    kill -0 "$cli" 2>/dev/null || break
    sleep 0.05
  done
  (sleep "$(awk -v d="$TCP_DURATION" 'BEGIN { print d / 2 }')"; foreign_load "$d/load") &
  local load=$!
  PIDS+=("$load")
  date +%s.%N >"$d/t0"
  cpu_lines >"$d/cpu.pre"; threads "$qemu_pid" >"$d/qemu.pre"; threads "$sp" >"$d/switch.pre"
  if [ "$c" = xvs ]; then xvsctl stats >"$d/pre.xvs.json" 2>/dev/null || echo null >"$d/pre.xvs.json"; fi
  local t0
  t0=$(cat "$d/t0")
  while kill -0 "$cli" 2>/dev/null &&
    awk -v t0="$t0" -v d="$TCP_DURATION" -v now="$(date +%s.%N)" 'BEGIN { exit !(now - t0 < d) }'; do
    sleep 0.05
  done
  date +%s.%N >"$d/t1"
  cpu_lines >"$d/cpu.post"; threads "$qemu_pid" >"$d/qemu.post"; threads "$sp" >"$d/switch.post"
  if [ "$c" = xvs ]; then xvsctl stats >"$d/post.xvs.json" 2>/dev/null || echo null >"$d/post.xvs.json"; fi
  local rc=0
  wait "$cli" || rc=$?
  forget "$cli"
  echo "$rc $est" >"$d/client.rc"
  stop_pid "$load"
  cat "$d/client.json" "$d/client.err" >"$tmp/logs/iperf3-$c-$dir-$run.log" 2>/dev/null || true
  if [ "$c" = xvs ]; then cat "$d/pre.xvs.json" "$d/post.xvs.json" >"$tmp/logs/xvs-stats-$dir-$run.json" 2>/dev/null || true; fi
  python3 "$tmp/report.py" tcp "$d" "$c" "$dir" "$run" "$TCP_POLL" "${OVS_UPLINK_USED:--}" >>"$OUT/tcp.jsonl"
  log "   $(tail -n 1 "$OUT/tcp.jsonl")"
}
row_failed() { # row_failed PART C KEY RUN REASON
  python3 "$tmp/report.py" failed "$@" >>"$OUT/$1.jsonl"
  log "   $(tail -n 1 "$OUT/$1.jsonl")"
}

# ---------------------------------------------------------------------
cat >"$tmp/report.py" <<'PY'
import json, os, re, sys

HZ = int(os.environ["HZ"])

def text(p, default=""):
    try:
        with open(p, errors="replace") as f:
            return f.read().strip()
    except OSError:
        return default

def load(p):
    try:
        return json.loads(text(p, "null"))
    except ValueError:
        return None

def cpu(p):  # name -> (busy, softirq, total) jiffies
    out = {}
    for line in text(p).splitlines():
        n, b, s, t = line.split()
        out[n] = (int(b), int(s), int(t))
    return out

def threads(p):
    out = {}
    for line in text(p).splitlines():
        tid, comm, j = line.split()
        out[tid] = (comm, int(j))
    return out

def load_other(d):
    t = text(os.path.join(d, "load"), "")
    if not t:
        return None, None
    pct, names = (t.split(None, 1) + ["-"])[:2]
    return int(pct), names

def cpu_fields(d, pre, post, secs):
    a, b = cpu(os.path.join(d, pre)), cpu(os.path.join(d, post))
    r = {}
    if "cpu" in a and "cpu" in b:
        r["cores_busy"] = round((b["cpu"][0] - a["cpu"][0]) / HZ / secs, 3)
        r["cores_softirq"] = round((b["cpu"][1] - a["cpu"][1]) / HZ / secs, 3)
    for n in sorted(k for k in b if k != "cpu"):
        if n in a and b[n][2] > a[n][2]:
            r[f"{n}_busy_pct"] = round(100 * (b[n][0] - a[n][0]) / (b[n][2] - a[n][2]), 1)
    return r

def pps(d, c, size, run, dur, uplink):
    t0, t1 = float(text(f"{d}/pre.time")), float(text(f"{d}/post.time"))
    secs = t1 - t0
    r = {"part": "pps", "contender": c, "size": int(size), "run": int(run), "window_s": round(secs, 3)}
    if c.startswith("ovs"):
        r["ovs_uplink"] = uplink
    u0 = int(text(f"{d}/post.u0_tx", "0")) - int(text(f"{d}/pre.u0_tx", "0"))
    s0 = int(text(f"{d}/post.s0_rx", "0")) - int(text(f"{d}/pre.s0_rx", "0"))
    r["u0_tx"], r["s0_rx"] = u0, s0
    r["mpps"] = round(u0 / secs / 1e6, 4)
    out = text(f"{d}/testpmd.out")
    tx = [int(m) for m in re.findall(r"TX-packets:\s+(\d+)", out)]
    r["testpmd_tx_total"] = tx[-1] if tx else None
    rx = load(f"{d}/rx.json") or {}
    r["sink_total"] = rx.get("packets")
    r["sink_invalid"] = rx.get("invalid")
    if c == "xvs":
        w0, w1 = load(f"{d}/pre.xvsw.json"), load(f"{d}/post.xvsw.json")
        if w0 and w1:
            b = w1[0]["busy_ns"] - w0[0]["busy_ns"]
            i = w1[0]["idle_ns"] - w0[0]["idle_ns"]
            r["switch_busy_pct"] = round(100 * b / max(1, b + i), 1)
            r["switch_busy_ns_per_pkt"] = round(b / max(1, u0), 1)
        s0_, s1_ = load(f"{d}/pre.xvs.json") or [], load(f"{d}/post.xvs.json") or []
        pre = {p["name"]: p for p in s0_}
        for p in s1_:
            q = pre.get(p["name"], {})
            if p["name"] == "vu1":
                r["switch_in"] = p.get("rx_packets", 0) - q.get("rx_packets", 0)
            drops = {k: v - q.get("drops", {}).get(k, 0) for k, v in p.get("drops", {}).items()}
            drops = {k: v for k, v in drops.items() if v}
            if drops:
                r.setdefault("switch_drops", {})[p["name"]] = drops
    if c.startswith("ovs"):
        def st(p):
            m = dict(re.findall(r"(\w+)=(\d+)", text(p)))
            return {k: int(v) for k, v in m.items()}
        a, b = st(f"{d}/pre.ovs_vu1"), st(f"{d}/post.ovs_vu1")
        if "rx_packets" in b:
            r["switch_in"] = b["rx_packets"] - a.get("rx_packets", 0)
        pm = text(f"{d}/post.ovs_pmd")
        m = re.search(r"processing cycles:\s+\d+\s+\(([\d.]+)\s*%\)", pm)
        if m:
            r["switch_busy_pct"] = float(m.group(1))
        m = re.search(r"avg processing cycles per packet:\s+([\d.]+)", pm)
        if m:
            r["ovs_cycles_per_pkt"] = float(m.group(1))
    r.update(cpu_fields(d, "pre.cpu", "post.cpu", secs))
    r["other_load_pct"], r["other_load"] = load_other(d)
    r["status"] = "ok" if u0 > 0 else "nothing forwarded"
    # testpmd stopped sending after its first bursts: the switch took a
    # few frames off the guest's queue, then none (counted apart, out of
    # the medians; a switch's bug, not a rate).
    if r["testpmd_tx_total"] is not None and r["testpmd_tx_total"] < 10000:
        r["status"] = "stalled"
        r["reason"] = (f"stalled: testpmd sent {r['testpmd_tx_total']} frames in all, "
                       f"the switch took {r.get('switch_in')} in the window")
    return r

def tcp(d, c, dr, run, poll, uplink):
    t0, t1 = float(text(f"{d}/t0")), float(text(f"{d}/t1"))
    secs = t1 - t0
    rc, est = (text(f"{d}/client.rc", "1 0").split() + ["0"])[:2]
    j = load(f"{d}/client.json") or {}
    end = j.get("end", {})
    r = {"part": "tcp", "contender": c, "direction": dr, "run": int(run), "window_s": round(secs, 3),
         "switch_poll": poll if c in ("xvs", "ovs", "ovsnh") else None}
    if c.startswith("ovs"):
        r["ovs_uplink"] = uplink
    r["gbps"] = round(end.get("sum_received", {}).get("bits_per_second", 0) / 1e9, 4)
    r["retransmits"] = end.get("sum_sent", {}).get("retransmits")
    r["status"] = "ok" if rc == "0" and not j.get("error") and r["gbps"] > 0 else "error"
    if r["status"] != "ok":
        r["reason"] = j.get("error") or text(f"{d}/client.err")[-300:] or f"iperf3 exited with {rc}"
    if int(est) < 2:
        r["note"] = "stream not seen established: the window is the client's life"
    r.update(cpu_fields(d, "cpu.pre", "cpu.post", secs))
    if r.get("cores_busy") is not None and r["gbps"] > 0:
        r["cores_per_gbps"] = round(r["cores_busy"] / r["gbps"], 3)
    for who in ("qemu", "switch"):
        a, b = threads(f"{d}/{who}.pre"), threads(f"{d}/{who}.post")
        if not b:
            continue
        per = {tid: (b[tid][0], b[tid][1] - a.get(tid, (None, 0))[1]) for tid in b}
        r[f"{who}_cpu_pct"] = round(100 * sum(j for _, j in per.values()) / HZ / secs, 1)
        top = max(per.values(), key=lambda v: v[1])
        r[f"{who}_top_thread"] = top[0]
        r[f"{who}_top_thread_pct"] = round(100 * top[1] / HZ / secs, 1)
        # Every thread above 5% (QEMU: the vCPU "CPU_0/TCG", the main loop
        # "qemu-system-x86" where the tap backend runs).
        by = {}
        for n, j in per.values():
            by[n] = by.get(n, 0) + j
        r[f"{who}_threads"] = {n: round(100 * j / HZ / secs, 1)
                               for n, j in sorted(by.items(), key=lambda v: -v[1]) if 100 * j / HZ / secs >= 5}
    # The host's CPU for this traffic: QEMU (guest and its device), the
    # switch's process, and softirq (the kernel's bridge and vxlan, veth
    # receive; both ends), without other processes' load.
    if r["gbps"] > 0 and "qemu_cpu_pct" in r:
        host = (r["qemu_cpu_pct"] + r.get("switch_cpu_pct", 0)) / 100 + r.get("cores_softirq", 0)
        r["host_cores"] = round(host, 3)
        r["host_cores_per_gbps"] = round(host / r["gbps"], 3)
    if c == "xvs":
        drops_into(r, d)
    r["other_load_pct"], r["other_load"] = load_other(d)
    return r

def drops_into(r, d):
    pre = {p["name"]: p for p in load(f"{d}/pre.xvs.json") or []}
    for p in load(f"{d}/post.xvs.json") or []:
        q = pre.get(p["name"], {})
        drops = {k: v - q.get("drops", {}).get(k, 0) for k, v in p.get("drops", {}).items()}
        drops = {k: v for k, v in drops.items() if v}
        if drops:
            r.setdefault("switch_drops", {})[p["name"]] = drops

def failed(part, c, key, run, reason):
    r = {"part": part, "contender": c, "run": int(run), "status": "failed", "reason": reason}
    r["size" if part == "pps" else "direction"] = int(key) if part == "pps" else key
    return r

cmd = sys.argv[1]
if cmd == "pps":
    print(json.dumps(pps(*sys.argv[2:8])))
elif cmd == "tcp":
    print(json.dumps(tcp(*sys.argv[2:8])))
elif cmd == "failed":
    print(json.dumps(failed(*sys.argv[2:7])))
PY

# ---------------------------------------------------------------------
# The run: round r puts the contenders in order rotated by r.
rotate() { # rotate R WORDS...: the words rotated left by R
  local r=$1; shift
  local a=("$@") n=$# i
  for ((i = 0; i < n; i++)); do printf '%s ' "${a[$(((i + r) % n))]}"; done
}
up() { # up C POLL
  case $1 in xvs) xvs_up "$2" ;; xvsold) XVSD=$XVSD_OLD xvs_up "$2" ;; ovs) ovs_up "$2" ;; ovsnh) ovs_up "$2" nohuge ;; tap) tap_up ;; esac
}
down() {
  case $1 in xvs|xvsold) xvs_down ;; ovs|ovsnh) ovs_down ;; tap) tap_down ;; esac
}
uperr() { echo "$1 did not start: $(tail -n 3 "$tmp/up.err" 2>/dev/null | tr '\n' ' ')"; }

# The remote guest for the TCP part: kernel vxlan in ns remote.
if [[ " $PARTS " == *" tcp "* ]]; then
  x remote ip link add vx0 address $REMOTE_MAC mtu 1450 type vxlan id $VNI \
    local 192.0.2.2 remote 192.0.2.1 dstport 4789 dev s0
  # s0 computes its checksums in software. Offloaded, they cross the veth
  # into u0's XDP program unfinished (no NIC finishes them): the outer
  # UDP checksum (vxlan's default udpcsum), or with noudpcsum the inner
  # TCP one. xvs ignores the outer one; OVS checks it when it pops the
  # tunnel and dropped every packet (coverage
  # datapath_drop_tunnel_pop_error); with noudpcsum the guest dropped the
  # TCP segments. Software checksums for every contender.
  x remote ethtool -K s0 tx off >/dev/null
  x remote ip addr add 10.0.0.2/24 dev vx0
  x remote ip link set vx0 up
fi

t_start=$(date +%s)
for run in $(seq "$RUNS"); do
  if [[ " $PARTS " == *" pps "* ]]; then
    # The sink's XDP program and the kernel's vxlan device would both
    # want s0's VXLAN packets: vx0 goes down while pps rows run.
    x remote ip link set vx0 down 2>/dev/null || true
    for c in $(rotate $((run - 1)) $PPS_CONTENDERS); do
      log "== run $run pps $c"
      if ! up "$c" busy 2>"$tmp/up.err"; then
        cat "$tmp/up.err" >&2
        for size in $SIZES; do row_failed pps "$c" "$size" "$run" "$(uperr "$c")"; done
        down "$c"; continue
      fi
      for size in $SIZES; do pps_row "$c" "$size" "$run"; done
      down "$c"
    done
    x remote ip link set vx0 up 2>/dev/null || true
  fi
  if [[ " $PARTS " == *" tcp "* ]]; then
    for c in $(rotate $((run - 1)) $TCP_CONTENDERS); do
      log "== run $run tcp $c"
      if ! up "$c" "$TCP_POLL" 2>"$tmp/up.err"; then
        cat "$tmp/up.err" >&2
        for dir in $TCP_DIRS; do row_failed tcp "$c" "$dir" "$run" "$(uperr "$c")"; done
        down "$c"; continue
      fi
      qrc=0
      qemu_up "$c" 2>"$tmp/up.err" || qrc=$?
      # DEBUG_HOLD=SECONDS (debugging): the topology held with the guest up.
      [ -n "${DEBUG_HOLD:-}" ] && { log "holding: P=$P tmp=$tmp"; sleep "$DEBUG_HOLD"; }
      if [ "$qrc" != 0 ]; then
        cat "$tmp/up.err" >&2
        for dir in $TCP_DIRS; do row_failed tcp "$c" "$dir" "$run" "guest: $(tail -n 2 "$tmp/up.err" | tr '\n' ' ')"; done
        qemu_down; down "$c"; continue
      fi
      for dir in $TCP_DIRS; do tcp_row "$c" "$dir" "$run"; done
      qemu_down
      down "$c"
    done
  fi
done
echo "elapsed: $(($(date +%s) - t_start)) s" >>"$OUT/meta.txt"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"

python3 bench/vm_table.py "$OUT" >"$OUT/table.md"
cat "$OUT/table.md"
