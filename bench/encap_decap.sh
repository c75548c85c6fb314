#!/usr/bin/env bash
# Measures xvsd's encapsulation and decapsulation rate with xvs-pktgen
# (AF_XDP generator and receiver) on veth, and prints a Markdown table.
#
#   ns gen: g0 ── veth ── ns hv: p0 (xvsd port)       xvsd: br0 = {p0, tun (VNI 100)}
#                         ns hv: u0 192.0.2.1 (uplink)  one worker, --poll busy, core 1
#                           └── veth ── ns sink: s0 (the remote VTEP 192.0.2.2)
#
# Every veth has one queue pair. Encap: pktgen tx on g0 sends plain UDP
# frames to a MAC that sits behind the tunnel (static FDB entry), xvsd
# pushes VXLAN/Geneve, pktgen rx on s0 counts tunnel frames with the VNI.
# Decap: pktgen tx on s0 sends tunnel packets from 192.0.2.2 to xvsd's
# VTEP, xvsd pops them, pktgen rx on g0 counts the inner UDP frames. The
# sink's kernel never sees ARP (AF_XDP takes every frame), so the hv has
# a permanent neighbor entry for 192.0.2.2. Generator and receiver share
# core 0 (taskset), xvsd has core 1.
#
# "tx Mpps" is what the generator got out (frames the kernel completed);
# "rx Mpps" is what arrived at the receiver, over the same send window:
# xvsd's forwarding rate. Loss counts every frame sent but not received,
# wherever it was lost; "of which at xvsd's rx" is the part the hv's
# veth could not hand to xvsd's socket (its ring was full: xvsd was
# saturated), "receiver socket drops" what the receiver's socket lost.
# Stray frames the receiver sees (IPv6 neighbor discovery from a kernel)
# fail its check and are not counted. "other load" is the CPU other
# processes used mid-row (top; 200 = both cores): rows with much of it
# are not to be trusted.
#
# Usage (root):  bench/encap_decap.sh
# Knobs (environment): DURATION=5 (seconds per measurement), RUNS=1,
#   KINDS="vxlan geneve", SIZES="64 1400", FLOWS="1 1024",
#   RATE=0 (generator packets per second; 0: as fast as it goes),
#   DIRS="encap decap", VARY=port (what differs between flows: port, ip,
#   both, or dst-mac: encap frames to 02:10:00:00:00:00 + flow, the MACs
#   FDB_SIZE installs; see bench/xvsd_config.sh for REMOTES, FDB_SIZE and
#   ACL_RULES), TABLE=FILE (also write the table there).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
source bench/xvsd_config.sh
[ "$(id -u)" = 0 ] || { echo "creates network namespaces and attaches XDP: run as root" >&2; exit 1; }
ensure_packages "${BUILD_PACKAGES[@]}" iproute2

DURATION=${DURATION:-5}
RUNS=${RUNS:-1}
KINDS=${KINDS:-vxlan geneve}
SIZES=${SIZES:-64 1400}
FLOWS=${FLOWS:-1 1024}
RATE=${RATE:-0}
DIRS=${DIRS:-encap decap}
VARY=${VARY:-port}
VNI=100

echo "== building (release)" >&2
cargo build --release --locked -q -p xvsd -p xvs-bench --bin xvsd --bin xvs-pktgen
XVSD=$PWD/target/release/xvsd
PG=$PWD/target/release/xvs-pktgen

# Generator and receiver on core 0, xvsd on core 1 (util-linux's taskset;
# unpinned without it or with one core).
pin0=() pin1=() XCORE=0
if command -v taskset >/dev/null && [ "$(nproc)" -gt 1 ]; then
  pin0=(taskset -c 0) pin1=(taskset -c 1) XCORE=1
fi

P=xvsbench$$
tmp=$(mktemp -d)
xvsd_pid=
bg=()
cleanup() {
  for pid in "${bg[@]}" $xvsd_pid; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${bg[@]}" $xvsd_pid; do wait "$pid" 2>/dev/null || true; done
  for ns in gen hv sink; do ip netns del "$P-$ns" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

x() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }

GEN_MAC=02:00:00:00:0a:01   # the local "VM" (gen's g0)
P0_MAC=02:00:00:00:0a:02
U0_MAC=02:00:00:00:00:01    # xvsd's uplink, VTEP 192.0.2.1
S0_MAC=02:00:00:00:00:02    # the remote VTEP 192.0.2.2
VM_B=02:00:00:00:0b:01      # a remote VM behind the tunnel

for ns in gen hv sink; do
  ip netns add "$P-$ns"
  x "$ns" ip link set lo up
done
ip link add g0 netns "$P-gen" address $GEN_MAC numtxqueues 1 numrxqueues 1 \
  type veth peer name p0 netns "$P-hv" address $P0_MAC numtxqueues 1 numrxqueues 1
ip link add u0 netns "$P-hv" address $U0_MAC numtxqueues 1 numrxqueues 1 \
  type veth peer name s0 netns "$P-sink" address $S0_MAC numtxqueues 1 numrxqueues 1
x hv ip addr add 192.0.2.1/24 dev u0
x sink ip addr add 192.0.2.2/24 dev s0
for l in "gen g0" "hv p0" "hv u0" "sink s0"; do
  set -- $l
  x "$1" ip link set "$2" up
done
x hv ip neigh replace 192.0.2.2 lladdr $S0_MAC dev u0 nud permanent

config() { # config KIND
  xvsd_bench_config "$1" >"$tmp/xvsd-$1.toml"
}

start_xvsd() { # start_xvsd KIND
  config "$1"
  # Exec'd by ip netns exec, so $! is xvsd itself and SIGTERM reaches it.
  NO_COLOR=1 RUST_LOG=info ip netns exec "$P-hv" "${pin1[@]}" "$XVSD" \
    --config "$tmp/xvsd-$1.toml" --workers 1 --cores $XCORE --poll busy \
    2>"$tmp/xvsd-$1.log" &
  xvsd_pid=$!
  # A million static MACs take a while to parse and build (bench/scaling.sh).
  for _ in $(seq 1800); do
    grep -q "xvsd running" "$tmp/xvsd-$1.log" && return 0
    kill -0 "$xvsd_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$tmp/xvsd-$1.log" >&2
  echo "xvsd did not start in 180 s" >&2
  exit 1
}

stop_xvsd() { # stop_xvsd KIND: SIGTERM, then its counters
  kill -TERM "$xvsd_pid"
  wait "$xvsd_pid" || echo "xvsd exited with status $?" >&2
  xvsd_pid=
  echo "-- xvsd ($1) counters:" >&2
  grep -E 'daemon: (worker worker=|port port=|drops by reason)' "$tmp/xvsd-$1.log" \
    | sed 's/^.*INFO //; s/^/   /' >&2 || true
}

rx_dropped() { # rx_dropped IFACE: frames the hv's veth could not hand to xvsd
  x hv ip -s link show dev "$1" | awk '/RX:/ { getline; print $4; exit }'
}

# Other processes' CPU share (sum of %CPU over 1 s) and names, sampled
# while a row runs: the machine may be shared, and a compile running
# next to a measurement skews it.
foreign_load() { # foreign_load OUTFILE
  command -v top >/dev/null || { echo "- (no top)" >"$1"; return; }
  top -b -n 2 -d 1 -w 200 | awk '/^top -/ { n++ } n == 2 && /^ *[0-9]+ / {
      if ($12 ~ /^(xvs-pktgen|xvsd|xvs-worker|ksoftirqd|top|napi)/) next
      if ($9 + 0 >= 2) { sum += $9; names = names (names ? "," : "") $12 }
    } END { printf "%d %s\n", sum, (names ? names : "-") }' >"$1"
}

field() { # field FILE NAME: a number from a flat JSON object
  sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1"
}

# measure DIR KIND SIZE FLOWS RUN: one row of the table.
measure() {
  local dir=$1 kind=$2 size=$3 flows=$4 run=$5
  local tag="$dir-$kind-$size-$flows-$run"
  local rx_ns rx_if rx_args tx_ns tx_args in_if
  if [ "$dir" = encap ]; then
    in_if=p0 rx_ns=sink rx_if=s0 rx_args=(--expect-vni $VNI)
    tx_ns=gen
    if [ "$VARY" = dst-mac ]; then
      tx_args=(--iface g0 --src-mac $GEN_MAC --dst-mac 02:10:00:00:00:00)
    else
      tx_args=(--iface g0 --src-mac $GEN_MAC --dst-mac $VM_B)
    fi
  else
    in_if=u0 rx_ns=gen rx_if=g0 rx_args=(--expect-udp-dport 5001)
    tx_ns=sink
    tx_args=(--iface s0 --encap "$kind" --vni $VNI --outer-src 192.0.2.2 --outer-dst 192.0.2.1
      --outer-dst-mac $U0_MAC --src-mac $VM_B --dst-mac $GEN_MAC)
  fi
  # The receiver listens longer than the sender sends; it is stopped
  # (SIGTERM) once the sender is done and the last frames are in. Not
  # through x(): $! must be xvs-pktgen itself (ip netns exec and taskset
  # exec it), not a subshell, so that the signal reaches it.
  ip netns exec "$P-$rx_ns" "${pin0[@]}" "$PG" rx --iface $rx_if "${rx_args[@]}" \
    --duration $((DURATION + 30)) --json >"$tmp/rx-$tag.json" 2>"$tmp/rx-$tag.err" &
  local rx_pid=$!
  bg=("$rx_pid")
  for _ in $(seq 100); do
    grep -q "rx ready" "$tmp/rx-$tag.err" && break
    kill -0 "$rx_pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q "rx ready" "$tmp/rx-$tag.err" || { cat "$tmp/rx-$tag.err" >&2; exit 1; }
  local in_drops
  in_drops=$(rx_dropped $in_if)
  (sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')"; foreign_load "$tmp/load-$tag") &
  local load_pid=$!
  x $tx_ns "${pin0[@]}" "$PG" tx "${tx_args[@]}" --size "$size" --flows "$flows" --vary "$VARY" \
    --rate "$RATE" --duration "$DURATION" --json >"$tmp/tx-$tag.json"
  wait "$load_pid" || true
  sleep 0.5
  kill -TERM "$rx_pid"
  wait "$rx_pid"
  bg=()
  in_drops=$(( $(rx_dropped $in_if) - in_drops ))
  local txp txs rxp inval drops load
  txp=$(field "$tmp/tx-$tag.json" packets)
  txs=$(field "$tmp/tx-$tag.json" duration_secs)
  rxp=$(field "$tmp/rx-$tag.json" packets)
  inval=$(field "$tmp/rx-$tag.json" invalid)
  drops=$(field "$tmp/rx-$tag.json" xsk_rx_dropped)
  load=$(cat "$tmp/load-$tag" 2>/dev/null || echo "0 -")
  if [ -z "$txp" ] || [ -z "$rxp" ]; then
    echo "no report from xvs-pktgen:" >&2
    cat "$tmp/tx-$tag.json" "$tmp/rx-$tag.json" "$tmp/rx-$tag.err" >&2
    exit 1
  fi
  echo "   sent $txp in $txs s; received $rxp ($inval failed the check);" \
    "$in_drops not taken by xvsd; other load: ${load#* } (${load%% *}% CPU)" >&2
  if [ $((rxp - inval)) -lt $((txp / 100)) ]; then
    echo "   almost nothing arrived; the receiver said:" >&2
    cat "$tmp/rx-$tag.json" "$tmp/rx-$tag.err" >&2
  fi
  # Stray frames (IPv6 neighbor discovery from a kernel) are not ours.
  rxp=$((rxp - inval))
  awk -v d="$dir" -v k="$kind" -v s="$size" -v f="$flows" -v r="$run" \
    -v tp="$txp" -v ts="$txs" -v rp="$rxp" -v dr="$drops" -v id="$in_drops" \
    -v ol="${load%% *}" 'BEGIN {
      loss = tp > 0 ? 100 * (tp - rp) / tp : 0
      if (loss < 0) loss = 0
      at_in = tp > 0 ? 100 * id / tp : 0
      printf "| %s | %s | %d | %d | %d | %.3f | %.3f | %.2f | %.2f | %d | %d |\n",
        d, k, s, f, r, tp / ts / 1e6, rp / ts / 1e6, loss, at_in, dr, ol
    }'
}

table="$tmp/table.md"
{
  echo "| direction | tunnel | size (B) | flows | run | tx Mpps | rx Mpps (forwarded) | loss % | of which at xvsd's rx % | receiver socket drops | other load % |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
} >"$table"
for kind in $KINDS; do
  start_xvsd "$kind"
  for dir in $DIRS; do
    for size in $SIZES; do
      for flows in $FLOWS; do
        for run in $(seq "$RUNS"); do
          echo "== $dir $kind ${size} B, $flows flow(s), run $run (${DURATION} s)" >&2
          measure "$dir" "$kind" "$size" "$flows" "$run" | tee -a "$table" >&2
        done
      done
    done
  done
  stop_xvsd "$kind"
done

echo
echo "xvsd encap/decap on veth (copy-mode AF_XDP), $(uname -r), $(nproc) cores, ${DURATION} s per row, $(date -u +%Y-%m-%d):"
echo
cat "$table"
if [ "$RUNS" -gt 1 ]; then
  # Medians over the runs, and the spread of the forwarded rate.
  echo
  echo "Medians of $RUNS runs:"
  echo
  echo "| direction | tunnel | size (B) | flows | tx Mpps | rx Mpps (forwarded) | rx min-max | loss % |"
  echo "|---|---|---|---|---|---|---|---|"
  awk -F'|' 'NR > 2 {
      k = $2 "|" $3 "|" $4 "|" $5; if (!(k in n)) order[++m] = k
      i = ++n[k]; tx[k, i] = $7 + 0; rx[k, i] = $8 + 0; loss[k, i] = $9 + 0
    }
    function median(a, k, c,   i, j, t, v) {
      for (i = 1; i <= c; i++) v[i] = a[k, i]
      for (i = 2; i <= c; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
      return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
    }
    END {
      for (o = 1; o <= m; o++) {
        k = order[o]; c = n[k]; lo = rx[k, 1]; hi = lo
        for (i = 2; i <= c; i++) { if (rx[k, i] < lo) lo = rx[k, i]; if (rx[k, i] > hi) hi = rx[k, i] }
        printf "|%s| %.3f | %.3f | %.3f-%.3f | %.1f |\n", k, median(tx, k, c), median(rx, k, c), lo, hi, median(loss, k, c)
      }
    }' "$table"
fi
if [ -n "${TABLE:-}" ]; then cp "$table" "$TABLE"; fi
