#!/usr/bin/env bash
# A soak of xvsd (issue 15): a long-lived VXLAN tunnel to the kernel's
# vxlan under steady load both ways, with config churn beside it, for
# DURATION seconds (default 30 minutes). It counts every packet sent and
# received, attributes every lost one (a drop xvsd counted, and why, or a
# loss elsewhere), counts the transactions and samples xvsd's RSS.
#
#   ns vm:   vm0 10.0.0.1/24 ── veth ── ns hv: p0 ┐ br0 (VNI 42)   xvsd, release
#   ns hv:   u0 192.0.2.1/24 (uplink) ── veth ── ns peer: pu0 192.0.2.2/24
#   ns peer: vx0 vxlan 42 → 192.0.2.1, 10.0.0.2/24 (the kernel's vxlan)
#   ns churn: the VM ends of c1 (created and deleted) and c2 (down/up),
#            whose hv ends are ports of br1, a bridge the load never uses
#
# Load, at fixed rates so that it measures xvs and not the CPU (2 shared
# cores here): iperf3 UDP vm -> peer and peer -> vm (RATE_PPS datagrams
# of 1,000 bytes a second each way) and ping at PING_HZ, for the whole
# run. The underlay keeps the kernel's default neighbour timers: the
# VTEP's entry's reachable time (15-45 s) runs out over and over, and
# xvsd must keep it in use (NTF_USE) or it goes STALE and, once
# collected, tunnel frames drop until it is resolved again.
#
# Churn, one step every CHURN_PERIOD seconds, in a cycle: c1's veth
# created, `add-port br1 c1`; c1's veth deleted (an interface vanishing
# under a configured port); `del-port c1`; `add-tunnel br1 vx9` to an
# unrelated remote; `set-tunnel vx1 --ttl` (the loaded tunnel, 64 <-> 63);
# `del-port vx9`; c2 down; c2 up. Every xvsctl call is one transaction.
#
# Loss attribution: xvsd's drops by reason on the loaded path (rows p0,
# vx1 and the uplink; drops are counted on the ingress port, so churn on
# br1 cannot land there), the frames the hv's veths could not hand to
# xvsd's sockets (rx_dropped: its rings were full, i.e. it was not
# scheduled), the receivers' UDP buffer overflows (RcvbufErrors: iperf3
# not scheduled), every veth's and the vxlan device's drops, and the
# frames counted at each hop of each direction (where two hops differ,
# that is where frames went).
#
# Exit status: 0 pass; 1 xvsd dropped loaded traffic for a reason of its
# own (XVS_REASONS), a transaction failed, xvsd died, or its RSS grew
# by more than RSS_BOUND_KB between the first sample under load and the
# end; 2 setup failed.
#
# Results (OUT): summary.json (every figure above, and the verdict),
# rss.tsv (a sample a minute), churn.log (each step: time, seconds taken,
# outcome), sched.tsv (the worker's CPU time and wait, each second),
# top.tsv (the busiest processes, each minute), ping-slow.txt (pings
# answered late or not before the next), neigh-events.txt (the kernel's
# changes of the VTEP's entry), iperf3's reports, xvsd's counters at
# start and end, its warnings.
#
# Usage (root):  bench/soak.sh
# Knobs (environment): DURATION=1800 (seconds of load), RATE_PPS=500,
#   PING_HZ=20, CHURN_PERIOD=1, RSS_BOUND_KB=8192, RSS_EVERY=60,
#   BIN_DIR=DIR (xvsd and xvsctl from there, no build; e.g. a build of a
#   clean checkout while the working tree is being edited) with
#   BIN_COMMIT=HASH (what they were built from, for the record),
#   OUT=DIR (results; default bench/results/soak-DATE).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
[ "$(id -u)" = 0 ] || { echo "creates network namespaces and attaches XDP: run as root" >&2; exit 2; }
ensure_packages "${BUILD_PACKAGES[@]}" iproute2 iputils-ping iperf3 ethtool jq

DURATION=${DURATION:-1800}
RATE_PPS=${RATE_PPS:-500}
PING_HZ=${PING_HZ:-20}
CHURN_PERIOD=${CHURN_PERIOD:-1}
RSS_BOUND_KB=${RSS_BOUND_KB:-8192}
RSS_EVERY=${RSS_EVERY:-60}
OUT=${OUT:-bench/results/soak-$(date -u +%Y-%m-%d-%H%M)}
# Drops that are xvs's own doing on a path whose neighbour answers and
# whose config is valid: any of them on the loaded path fails the soak.
XVS_REASONS="neigh_unresolved no_buffer no_headroom no_route no_output no_tunnel_port unknown_remote unknown_port too_big lookup_miss xdp_no_socket xdp_headroom_failed"

if [ -n "${BIN_DIR:-}" ]; then
  XVSD=$BIN_DIR/xvsd XVSCTL=$BIN_DIR/xvsctl COMMIT=${BIN_COMMIT:-unknown}
else
  echo "== building xvsd and xvsctl (release)" >&2
  cargo build --release --locked -q -p xvsd -p xvs-ctl --bin xvsd --bin xvsctl
  XVSD=$PWD/target/release/xvsd XVSCTL=$PWD/target/release/xvsctl
  COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- || echo +changes)
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

P=xvssoak$$
tmp=$(mktemp -d)
pids=()
xvsd_pid=
cleanup() {
  touch "$tmp/stop"
  for pid in "${pids[@]}" $xvsd_pid; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}" $xvsd_pid; do wait "$pid" 2>/dev/null || true; done
  for ns in vm hv peer churn; do ip netns del "$P-$ns" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

x() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }
ctl() { "$XVSCTL" --socket "$tmp/xvsd.sock" --timeout 10 "$@"; }
now() { date +%s.%N; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# ---- topology -------------------------------------------------------------
for ns in vm hv peer churn; do
  ip netns add "$P-$ns"
  x "$ns" ip link set lo up
  # No IPv6: its router and neighbour solicitations are traffic nobody
  # counts.
  x "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add vm0 netns "$P-vm" address 02:00:00:00:0a:01 type veth \
  peer name p0 netns "$P-hv" address 02:00:00:00:0a:02
ip link add u0 netns "$P-hv" address 02:00:00:00:00:01 type veth \
  peer name pu0 netns "$P-peer" address 02:00:00:00:00:02
ip link add c2 netns "$P-hv" type veth peer name e2 netns "$P-churn"
x vm ip addr add 10.0.0.1/24 dev vm0
x hv ip addr add 192.0.2.1/24 dev u0
x peer ip addr add 192.0.2.2/24 dev pu0
x peer ip link add vx0 address 02:00:00:00:0b:01 mtu 1400 type vxlan id 42 \
  local 192.0.2.2 remote 192.0.2.1 dstport 4789 dev pu0
x peer ip addr add 10.0.0.2/24 dev vx0
x vm ip link set vm0 mtu 1400
# Partial checksums do not survive AF_XDP (docs/operating.md, "TCP and
# checksums").
for l in "vm vm0" "hv p0" "hv u0" "hv c2" "churn e2" "peer pu0" "peer vx0"; do
  set -- $l
  x "$1" ip link set "$2" up
done

cat >"$tmp/xvsd.toml" <<'TOML'
[uplink]
iface = "u0"
local_ips = ["192.0.2.1"]

[[bridges]]
name = "br0"

[[bridges]]
name = "br1"

[[ports]]
name = "p0"
bridge = "br0"

[[ports]]
name = "c2"
bridge = "br1"

[[tunnels]]
name = "vx1"
bridge = "br0"
kind = "vxlan"
vni = 42
remotes = ["192.0.2.2"]
TOML

# Not through x(): $! must be xvsd itself (ip netns exec execs it).
NO_COLOR=1 RUST_LOG=${RUST_LOG:-info} ip netns exec "$P-hv" "$XVSD" --config "$tmp/xvsd.toml" \
  --socket "$tmp/xvsd.sock" --state "$tmp/state.json" 2>"$tmp/xvsd.log" &
xvsd_pid=$!
for _ in $(seq 100); do
  grep -q "xvsd running" "$tmp/xvsd.log" && break
  kill -0 "$xvsd_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q "xvsd running" "$tmp/xvsd.log" || { cat "$tmp/xvsd.log" >&2; exit 2; }
up=0
for _ in $(seq 20); do
  if x vm ping -c 1 -W 1 10.0.0.2 >/dev/null; then up=1; break; fi
done
[ $up = 1 ] || { echo "no ping through the tunnel" >&2; cat "$tmp/xvsd.log" >&2; exit 2; }

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$xvsd_pid/status" 2>/dev/null || echo 0; }

# snapshot TAG: the counters the attribution is made of.
snapshot() {
  ctl --format json stats >"$OUT/stats-$1.json"
  ctl --format json worker-stats >"$OUT/worker-stats-$1.json"
  for ns in vm hv peer; do
    x $ns ip -s -j link show >"$tmp/links-$ns-$1.json"
    # Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors ...
    x $ns awk '/^Udp:/ && !h { split($0, k); h = 1; next }
      /^Udp:/ { for (i = 2; i <= NF; i++) printf "%s %s\n", k[i], $i }' /proc/net/snmp \
      >"$tmp/udp-$ns-$1.txt"
  done
}

# ---- load -----------------------------------------------------------------
log "xvsd up (pid $xvsd_pid), RSS $(rss_kb) kB; load for $DURATION s, results in $OUT"
rss_start=$(rss_kb)
# Workers publish their counters every 100 ms: the setup's pings in first.
sleep 0.5
snapshot start
printf 'elapsed_s\trss_kb\tload1\n0\t%s\t%s\n' "$rss_start" "$(cut -d' ' -f1 /proc/loadavg)" >"$OUT/rss.tsv"

x hv ip monitor neigh >"$tmp/neigh-events.txt" 2>/dev/null &
pids+=($!)
for port in 5201 5202; do
  x peer iperf3 -s -p $port -D --pidfile "$tmp/iperf-s$port.pid"
done
sleep 0.5
for port in 5201 5202; do pids+=("$(cat "$tmp/iperf-s$port.pid")"); done
bitrate=$((RATE_PPS * 1000 * 8))
# -w: a receiver that waits a few hundred ms for a core keeps its datagrams.
x vm iperf3 -c 10.0.0.2 -p 5201 -u -l 1000 -b $bitrate -w 4M -t "$DURATION" \
  --interval 10 -J >"$OUT/iperf-vm-to-peer.json" 2>"$tmp/iperf-fwd.err" &
pids+=($!)
x vm iperf3 -c 10.0.0.2 -p 5202 -u -l 1000 -b $bitrate -w 4M -t "$DURATION" -R \
  --interval 10 -J >"$OUT/iperf-peer-to-vm.json" 2>"$tmp/iperf-rev.err" &
pids+=($!)
# -D -O: every reply and every request not answered before the next is
# sent, with its time.
x vm ping -D -O -i "$(awk -v h="$PING_HZ" 'BEGIN { print 1 / h }')" -W 1 \
  -c $((DURATION * PING_HZ)) 10.0.0.2 >"$tmp/ping.txt" 2>&1 &
ping_pid=$!
pids+=($ping_pid)
t0=$(now)

# ---- churn ----------------------------------------------------------------
# One step per CHURN_PERIOD; a line per transaction and link event to
# churn.log: start time, seconds taken, ok|fail, kind, command.
new_c1() {
  ip link add c1 netns "$P-hv" type veth peer name e1 netns "$P-churn" \
    && x hv ip link set c1 up && x churn ip link set e1 up
}
churn() {
  local step=0 ttl=63 c0
  c0=$(now)
  step_run() { # step_run KIND CMD...
    local kind=$1 t out r=ok; shift
    t=$(now)
    out=$("$@" 2>&1) || r=fail
    printf '%s %s %s %s %s%s\n' "$t" "$(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')" \
      $r "$kind" "$*" "$([ $r = ok ] || echo " :: $out")"
  }
  while [ ! -e "$tmp/stop" ]; do
    case $((step % 8)) in
      0) step_run link new_c1
         step_run txn ctl add-port br1 c1 ;;
      1) step_run link x hv ip link del c1 ;;
      2) step_run txn ctl del-port c1 ;;
      3) step_run txn ctl add-tunnel br1 vx9 --type vxlan --vni 99 --remote 192.0.2.99 ;;
      4) step_run txn ctl set-tunnel vx1 --ttl $ttl; ttl=$((127 - ttl)) ;;
      5) step_run txn ctl del-port vx9 ;;
      6) step_run link x hv ip link set c2 down ;;
      7) step_run link x hv ip link set c2 up ;;
    esac
    step=$((step + 1))
    # Steps start at fixed times, c0 + n × CHURN_PERIOD, however long
    # one took.
    awk -v t0="$c0" -v n="$step" -v p="$CHURN_PERIOD" -v t="$(now)" \
      'BEGIN { d = t0 + n * p - t; if (d > 0) printf "%.3f\n", d; else print 0 }' \
      | xargs sleep
  done
}
churn >"$OUT/churn.log" 2>&1 &
pids+=($!)

# ---- RSS samples, until the load ends --------------------------------------
# Every second, whether xvsd's worker got the CPU: its time on a CPU and
# waiting for one (schedstat, ns, cumulative), and the machine's CPU
# pressure (PSI "some" total, µs): a stall in the answers that comes with
# a long wait is CPU starvation, one without is xvsd's own.
worker_task=$(grep -l '^xvs-worker' /proc/$xvsd_pid/task/*/comm | head -n 1)
worker_task=${worker_task%/comm}
printf 'time\tworker_run_ns\tworker_wait_ns\tcpu_some_us\n' >"$OUT/sched.tsv"
rss_max=$rss_start rss_first=
next=$RSS_EVERY
while kill -0 "$ping_pid" 2>/dev/null; do
  sleep 1
  kill -0 "$xvsd_pid" 2>/dev/null || { log "xvsd died"; break; }
  printf '%s\t%s\t%s\n' "$(now)" "$(cut -d' ' -f1,2 --output-delimiter=$'\t' "$worker_task/schedstat")" \
    "$(sed -n 's/^some .*total=//p' /proc/pressure/cpu 2>/dev/null || echo 0)" >>"$OUT/sched.tsv"
  el=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%d", b - a }')
  if [ "$el" -ge "$next" ]; then
    r=$(rss_kb)
    printf '%s\t%s\t%s\n' "$el" "$r" "$(cut -d' ' -f1 /proc/loadavg)" >>"$OUT/rss.tsv"
    [ -n "$rss_first" ] || rss_first=$r
    [ "$r" -le "$rss_max" ] || rss_max=$r
    log "$el s: RSS $r kB, $(grep -c ' ok txn ' "$OUT/churn.log") transactions, load $(cut -d' ' -f1 /proc/loadavg)"
    # What else the machine runs: the busiest processes over a second.
    (top -b -n 2 -d 1 -w 200 | awk -v t="$el" '/^top -/ { n++ } n == 2 && /^ *[0-9]+ / && k++ < 8 {
       print t "\t" $9 "\t" $12 }' >>"$OUT/top.tsv") &
    next=$((next + RSS_EVERY))
  fi
done
wait "$ping_pid" || true
# The iperf3 clients ran DURATION s, the ping its count, which takes at
# least as long: their reports are in or about to be.
for f in vm-to-peer peer-to-vm; do
  for _ in $(seq 30); do
    [ -s "$OUT/iperf-$f.json" ] && break
    sleep 1
  done
done
touch "$tmp/stop"
sleep "$(awk -v p="$CHURN_PERIOD" 'BEGIN { print p + 1 }')"
xvsd_alive=1
kill -0 "$xvsd_pid" 2>/dev/null || xvsd_alive=0
elapsed=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%d", b - a }')
rss_end=$(rss_kb)
[ "$rss_end" -le "$rss_max" ] || rss_max=$rss_end
[ -n "$rss_first" ] || rss_first=$rss_start
printf '%s\t%s\t%s\n' "$elapsed" "$rss_end" "$(cut -d' ' -f1 /proc/loadavg)" >>"$OUT/rss.tsv"
if [ $xvsd_alive = 1 ]; then snapshot end; fi

# ---- figures --------------------------------------------------------------
# iperf_fig FILE: sent, received, lost (gaps in the sequence numbers the
# receiver saw) and tail: datagrams sent after the receiver's last count
# (it stops counting at the end of the test, the sender a moment later).
iperf_fig() {
  jq -r '.end | (.sum_sent.packets // 0) as $s | (.sum_received.packets // 0) as $r
    | (.sum_received.lost_packets // 0) as $l | "\($s) \($r - $l) \($l) \($s - $r)"' "$1" 2>/dev/null \
    || echo "0 0 0 0"
}
read -r fwd_sent fwd_recv fwd_lost fwd_tail < <(iperf_fig "$OUT/iperf-vm-to-peer.json")
read -r rev_sent rev_recv rev_lost rev_tail < <(iperf_fig "$OUT/iperf-peer-to-vm.json")
tail -n 4 "$tmp/ping.txt" >"$OUT/ping.txt"
ping_sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$OUT/ping.txt")
ping_recv=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$OUT/ping.txt")
ping_sent=${ping_sent:-0} ping_recv=${ping_recv:-0}
sent=$((fwd_sent + rev_sent + ping_sent))
received=$((fwd_recv + rev_recv + ping_recv))
tail_n=$((fwd_tail + rev_tail))
lost=$((sent - received - tail_n))
txn_ok=$(grep -c ' ok txn ' "$OUT/churn.log" || true)
txn_fail=$(grep -c ' fail txn ' "$OUT/churn.log" || true)
link_ok=$(grep -c ' ok link ' "$OUT/churn.log" || true)
link_fail=$(grep -c ' fail link ' "$OUT/churn.log" || true)
# The kernel's changes of the VTEP's entry: the stale/delay/probe cycle.
grep -E '^(Deleted )?192\.0\.2\.2 ' "$tmp/neigh-events.txt" >"$OUT/neigh-events.txt" || true
# xvsd's refresh (NTF_USE) keeps the entry in use: at the end of each
# reachable time it goes DELAY (not notified), PROBE, REACHABLE; STALE,
# FAILED or a deletion would mean it was let go.
neigh_states=$(awk '{ print (/^Deleted/ ? "DELETED" : $NF) }' "$OUT/neigh-events.txt" \
  | sort | uniq -c | jq -Rn '[inputs | capture("(?<n>[0-9]+) (?<s>.+)") | {(.s): (.n | tonumber)}] | add // {}')
# Pings not answered before the next was sent (-O) and answers slower than
# 100 ms, with their times: a blackout or a stall shows as a run of them
# (a late answer still counts as answered).
awk '/no answer yet/ || (/time=/ && $0 ~ /time=[0-9][0-9][0-9]/)' "$tmp/ping.txt" >"$OUT/ping-slow.txt"
ping_slow=$(grep -c 'time=' "$OUT/ping-slow.txt" || true)
ping_max_ms=$(sed -n 's|^rtt .* = [^/]*/[^/]*/\([^/]*\)/.*|\1|p' "$OUT/ping.txt")
ping_longest_run=$(sed -n 's/.*no answer yet for icmp_seq=\([0-9]*\).*/\1/p' "$OUT/ping-slow.txt" \
  | awk 'NR > 1 && $1 == prev + 1 { run++ } NR == 1 || $1 != prev + 1 { run = 1 }
         run > max { max = run } { prev = $1 } END { print max + 0 }')

# Drops by reason on the loaded path (start -> end), as JSON.
drops_json='{}'
if [ $xvsd_alive = 1 ]; then
  drops_json=$(jq -n --slurpfile a "$OUT/stats-start.json" --slurpfile b "$OUT/stats-end.json" '
    def path_drops(rows): [rows[] | select(.name == "p0" or .name == "vx1" or .kind == "uplink")
      | (.drops // {}) | to_entries[]] | group_by(.key)
      | map({key: .[0].key, value: (map(.value) | add)}) | from_entries;
    (path_drops($a[0])) as $s | path_drops($b[0])
      | with_entries(.value -= ($s[.key] // 0)) | with_entries(select(.value > 0))')
fi
xvs_lost=$(jq -r --arg r "$XVS_REASONS" '[to_entries[] | select(.key as $k | ($r | split(" ") | index($k)))
  | .value] | add // 0' <<<"$drops_json")
# Kernel-side counters (start -> end): veth/vxlan drops, UDP buffer drops.
link_drops() { # link_drops NS: "IF rx_dropped tx_dropped" deltas
  [ -e "$tmp/links-$1-end.json" ] || return 0
  jq -r --slurpfile a "$tmp/links-$1-start.json" '.[] | .ifname as $i
    | ($a[0][] | select(.ifname == $i) | .stats64) as $s
    | "\($i) \(.stats64.rx.dropped - $s.rx.dropped) \(.stats64.tx.dropped - $s.tx.dropped)"' \
    "$tmp/links-$1-end.json"
}
udp_delta() { # udp_delta NS FIELD
  [ -e "$tmp/udp-$1-end.txt" ] || { echo 0; return; }
  echo $(( $(awk -v f="$2" '$1 == f { print $2 }' "$tmp/udp-$1-end.txt") \
    - $(awk -v f="$2" '$1 == f { print $2 }' "$tmp/udp-$1-start.txt") ))
}
kernel_json=$(for ns in vm hv peer; do
  link_drops $ns | while read -r i rx tx; do
    printf '{"ns":"%s","if":"%s","rx_dropped":%s,"tx_dropped":%s}\n' "$ns" "$i" "$rx" "$tx"
  done
done | jq -s 'map(select(.rx_dropped > 0 or .tx_dropped > 0))')
rcvbuf_vm=$(udp_delta vm RcvbufErrors)
rcvbuf_peer=$(udp_delta peer RcvbufErrors)
# Frames the hv's veths could not hand to xvsd's sockets (rings full).
xsk_full=$(jq '[.[] | select(.ns == "hv" and (.if == "p0" or .if == "u0")) | .rx_dropped] | add // 0' <<<"$kernel_json")
ring_full=0
if [ $xvsd_alive = 1 ]; then
  ring_full=$(jq -n --slurpfile a "$OUT/worker-stats-start.json" --slurpfile b "$OUT/worker-stats-end.json" \
    '($b[0] | map(.ring_full) | add) - ($a[0] | map(.ring_full) | add)')
fi

# Frames counted at each hop of each direction (start -> end; every frame,
# not only the load's): where two neighbouring hops differ, frames were
# lost between them. pu0 also sends and receives the two kernels' own
# ARP, which xvsd passes by.
link_delta() { # link_delta NS IF rx|tx
  [ -e "$tmp/links-$1-end.json" ] || { echo 0; return; }
  jq --slurpfile a "$tmp/links-$1-start.json" --arg i "$2" --arg d "$3" \
    '(.[] | select(.ifname == $i) | .stats64[$d].packets)
     - ($a[0][] | select(.ifname == $i) | .stats64[$d].packets)' "$tmp/links-$1-end.json"
}
xvsd_delta() { # xvsd_delta ROW FIELD
  [ $xvsd_alive = 1 ] || { echo 0; return; }
  jq -n --slurpfile a "$OUT/stats-start.json" --slurpfile b "$OUT/stats-end.json" --arg r "$1" --arg f "$2" \
    '($b[0][] | select(.name == $r) | .[$f]) - ($a[0][] | select(.name == $r) | .[$f])'
}
hops_json=$(jq -n \
  --argjson a "[$(link_delta vm vm0 tx), $(xvsd_delta p0 rx_packets), $(xvsd_delta vx1 tx_packets), $(link_delta peer pu0 rx), $(link_delta peer vx0 rx)]" \
  --argjson b "[$(link_delta peer vx0 tx), $(link_delta peer pu0 tx), $(xvsd_delta vx1 rx_packets), $(xvsd_delta p0 tx_packets), $(link_delta vm vm0 rx)]" \
  '{vm_to_peer: {vm0_tx: $a[0], xvsd_p0_rx: $a[1], xvsd_vx1_tx: $a[2], peer_pu0_rx: $a[3], peer_vx0_rx: $a[4]},
    peer_to_vm: {peer_vx0_tx: $b[0], peer_pu0_tx: $b[1], xvsd_vx1_rx: $b[2], xvsd_p0_tx: $b[3], vm0_rx: $b[4]}}')

# The worst second for the worker: the most it waited for a CPU.
worker_wait_max_ms=$(awk -F'\t' 'NR > 2 { d = ($3 - w) / 1e6; if (d > m) m = d } NR > 1 { w = $3 }
  END { printf "%.0f", m }' "$OUT/sched.tsv")
# Each second in which a ping went unanswered past the next one, and
# whether xvsd's worker spent over a quarter of a sample in it or the
# next waiting for a CPU (then the stall is the machine's, not xvsd's;
# schedstat adds a wait up when the wait ends, hence the next).
read -r stall_s starved_s < <(awk -F'\t' '
  FNR == NR { if (FNR > 2) { a[++n] = t; b[n] = $1; f[n] = ($3 - w) / 1e9 / ($1 - t) }
              if (FNR > 1) { t = $1; w = $3 } next }
  /no answer yet/ { s = int(substr($1, 2)); if (s in seen) next; seen[s] = 1; stalls++
    for (i = 1; i <= n; i++) if (a[i] < s + 2 && b[i] > s && f[i] > 0.25) { starved++; break } }
  END { print stalls + 0, starved + 0 }' "$OUT/sched.tsv" "$OUT/ping-slow.txt")
rss_growth=$((rss_end - rss_first))
verdict=pass reasons=()
[ $xvsd_alive = 1 ] || reasons+=("xvsd died")
[ "$xvs_lost" = 0 ] || reasons+=("xvsd dropped $xvs_lost loaded frames for reasons of its own")
[ "$txn_fail" = 0 ] || reasons+=("$txn_fail transactions failed")
[ "$link_fail" = 0 ] || reasons+=("$link_fail link events failed")
[ "$rss_growth" -le "$RSS_BOUND_KB" ] || reasons+=("RSS grew by $rss_growth kB (bound $RSS_BOUND_KB)")
[ ${#reasons[@]} = 0 ] || verdict=fail

jq -n --arg verdict "$verdict" --arg why "$(IFS=';'; echo "${reasons[*]:-}")" \
  --arg commit "$COMMIT" \
  --arg xvsd "$XVSD" --arg started "$(date -u -d "@${t0%.*}" +%FT%TZ)" \
  --argjson duration "$DURATION" --argjson elapsed "$elapsed" \
  --argjson rate_pps "$RATE_PPS" --argjson ping_hz "$PING_HZ" --argjson churn_period "$CHURN_PERIOD" \
  --argjson fwd "[$fwd_sent, $fwd_recv, $fwd_lost, $fwd_tail]" \
  --argjson rev "[$rev_sent, $rev_recv, $rev_lost, $rev_tail]" \
  --argjson ping "[$ping_sent, $ping_recv, $ping_longest_run, $ping_slow, ${ping_max_ms:-0}]" \
  --argjson sent "$sent" --argjson received "$received" --argjson lost "$lost" --argjson tail "$tail_n" \
  --argjson drops "$drops_json" --argjson xvs_lost "$xvs_lost" --argjson ring_full "$ring_full" \
  --argjson wait_max "$worker_wait_max_ms" --argjson stall_s "$stall_s" --argjson starved_s "$starved_s" \
  --argjson xsk_full "$xsk_full" --argjson rcvbuf_vm "$rcvbuf_vm" --argjson rcvbuf_peer "$rcvbuf_peer" \
  --argjson kernel "$kernel_json" --argjson hops "$hops_json" \
  --argjson txn_ok "$txn_ok" --argjson txn_fail "$txn_fail" \
  --argjson link_ok "$link_ok" --argjson link_fail "$link_fail" \
  --argjson neigh "$neigh_states" \
  --argjson rss_start "$rss_start" --argjson rss_first "$rss_first" \
  --argjson rss_end "$rss_end" --argjson rss_max "$rss_max" --argjson rss_bound "$RSS_BOUND_KB" \
  --arg nproc "$(nproc)" --arg kernel_release "$(uname -r)" '
  def iperf(f): {sent: f[0], received: f[1], lost: f[2], after_last_count: f[3]};
  {
    verdict: $verdict, failures: $why, commit: $commit, xvsd: $xvsd, started: $started,
    duration_s: $duration, elapsed_s: $elapsed,
    load: {iperf_udp_pps_each_way: $rate_pps, datagram_bytes: 1000, ping_hz: $ping_hz},
    packets: {
      vm_to_peer: iperf($fwd), peer_to_vm: iperf($rev),
      ping: {sent: $ping[0], answered: $ping[1], longest_run_unanswered_in_time: $ping[2],
        answers_over_100ms: $ping[3], max_rtt_ms: $ping[4]},
      sent: $sent, received: $received, lost: $lost, after_last_count: $tail
    },
    loss_attribution: {
      xvsd_drops_on_loaded_path: $drops, xvsd_own_reasons: $xvs_lost,
      xvsd_tx_ring_full: $ring_full, xsk_rx_rings_full_at_hv_veths: $xsk_full,
      udp_rcvbuf_errors: {vm: $rcvbuf_vm, peer: $rcvbuf_peer},
      kernel_interface_drops: $kernel, worker_longest_cpu_wait_in_a_second_ms: $wait_max,
      seconds_with_a_ping_stall: $stall_s, of_which_worker_waiting_for_a_cpu: $starved_s,
      frames_per_hop: $hops
    },
    churn: {period_s: $churn_period, transactions: $txn_ok, transactions_failed: $txn_fail,
      link_events: $link_ok, link_events_failed: $link_fail},
    underlay_neighbour_events: $neigh,
    rss_kb: {start: $rss_start, first_sample_under_load: $rss_first, end: $rss_end, max: $rss_max,
      bound_growth: $rss_bound},
    machine: {cpus: $nproc, kernel: $kernel_release}
  }' >"$OUT/summary.json"
cp "$tmp/xvsd.toml" "$OUT/xvsd.toml"
tail -n 40 "$tmp/xvsd.log" >"$OUT/xvsd-log-tail.txt"
grep -E ' (WARN|ERROR) ' "$tmp/xvsd.log" >"$OUT/xvsd-warnings.txt" || true

hops_line() { jq -r ".$1 | to_entries | map(\"\\(.key) \\(.value)\") | join(\" > \")" <<<"$hops_json"; }
cat >&2 <<EOF
== soak: $elapsed s under load, churn every $CHURN_PERIOD s
   packets sent $sent, received $received, lost $lost, sent after the receiver's last count $tail_n
     vm -> peer (iperf3 UDP): $fwd_sent sent, $fwd_recv received, $fwd_lost lost, $fwd_tail after
     peer -> vm (iperf3 UDP): $rev_sent sent, $rev_recv received, $rev_lost lost, $rev_tail after
     ping: $ping_sent sent, $ping_recv answered; $ping_slow answers over 100 ms (max $ping_max_ms ms),
       longest run not answered before the next was sent: $ping_longest_run
   xvsd drops on the loaded path: $(jq -c . <<<"$drops_json") ($xvs_lost for reasons of its own)
   xvsd tx ring full: $ring_full; frames the hv's veths could not hand to xvsd's sockets: $xsk_full
   receivers' UDP buffer overflows: vm $rcvbuf_vm, peer $rcvbuf_peer
   xvsd's worker waited for a CPU at most $worker_wait_max_ms ms in one second (sched.tsv);
     seconds with a ping stall: $stall_s, in $starved_s of them the worker was waiting for a CPU
   other interface drops: $(jq -c . <<<"$kernel_json")
   frames per hop: $(hops_line vm_to_peer)
                   $(hops_line peer_to_vm)
   transactions $txn_ok ($txn_fail failed), link events $link_ok ($link_fail failed)
   the kernel's VTEP entry, changes by state: $(jq -c . <<<"$neigh_states")
   RSS kB: start $rss_start, first sample under load $rss_first, end $rss_end, max $rss_max (bound +$RSS_BOUND_KB)
   verdict: $verdict ${reasons[*]:-}
   results: $OUT
EOF
[ $verdict = pass ]
