#!/usr/bin/env bash
# Packets per second from a guest on a vhost-user port into a VXLAN
# tunnel (issue 18's packet-rate point, xvs alone so far): DPDK's
# dpdk-testpmd in txonly mode stands in for the guest (its virtio-user
# driver on xvsd's vhost-user port vu1, memfd memory, no VM: a TCG guest
# could not load a switch), xvsd encapsulates every frame to the remote
# VTEP, and xvs-pktgen counts the VXLAN packets arriving at the sink.
#
#   testpmd (txonly, lcores on core 0) ── vu1 ┐
#                                   ns sw: xvsd, one busy worker on core 1,
#                                          br0 = {vu1, tun (VXLAN 100 to 192.0.2.2)}
#                                   ns sw: u0 192.0.2.1 ── veth ── ns sink: s0 192.0.2.2
#                                          (xvs-pktgen rx, core 0)
#
# The frames are testpmd's UDP frames of SIZE bytes to the static MAC of
# the remote guest behind the tunnel; testpmd sends as fast as the
# guest's queue takes them, so what arrives is what xvsd forwarded. Each
# row: what testpmd sent (its port stats), what xvsd counted (vu1 rx,
# tunnel tx, guest drops), what the sink received, as Mpps over DURATION.
#
# Usage (root): bench/vhost.sh
# Knobs: RUNS=3, DURATION=5, SIZES="64 1400", OUT=bench/results/vhost-<date>.
# Output in OUT: runs.jsonl, table.md, stats.txt (xvsctl stats and
# worker-stats after the last row). Every process it starts is
# stopped and the namespaces deleted on exit, also on error.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
[ "$(id -u)" = 0 ] || { echo "creates namespaces and attaches XDP: run as root" >&2; exit 1; }
ensure_packages "${BUILD_PACKAGES[@]}" iproute2 python3 dpdk-dev
[ "$(nproc)" -ge 2 ] || { echo "needs 2 cores (testpmd and the sink on 0, xvsd on 1)" >&2; exit 1; }

RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
SIZES=${SIZES:-64 1400}
OUT=${OUT:-bench/results/vhost-$(date -u +%Y-%m-%d-%H%M)}
VNI=100
GUEST_MAC=02:00:00:00:0c:01
REMOTE_MAC=02:00:00:00:0c:02

echo "== building (release)" >&2
cargo build --release --locked -q -p xvsd -p xvs-ctl -p xvs-bench --bin xvsd --bin xvsctl --bin xvs-pktgen
XVSD=$PWD/target/release/xvsd
XVSCTL=$PWD/target/release/xvsctl
PG=$PWD/target/release/xvs-pktgen

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: >"$OUT/runs.jsonl"
P=xvsvh$$
tmp=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in sw sink; do ip netns del "$P-$ns" 2>/dev/null || true; done
  rm -rf "$tmp" "/var/run/dpdk/$P"*
}
trap cleanup EXIT
trap 'exit 130' INT TERM
x() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }
xvsctl() { timeout 10 "$XVSCTL" --socket "$tmp/xvsd.sock" --format json "$@"; }

for ns in sw sink; do ip netns add "$P-$ns"; x "$ns" ip link set lo up; done
ip link add u0 netns "$P-sw" type veth peer name s0 netns "$P-sink"
x sw ip addr add 192.0.2.1/24 dev u0
x sink ip addr add 192.0.2.2/24 dev s0
x sw ip link set u0 up
x sink ip link set s0 up
S0_MAC=$(x sink cat /sys/class/net/s0/address)
x sw ip neigh replace 192.0.2.2 lladdr "$S0_MAC" dev u0 nud permanent

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
ip netns exec "$P-sw" "$XVSD" --config "$tmp/xvsd.toml" --socket "$tmp/xvsd.sock" \
  --state "$tmp/state.json" --workers 1 --cores 1 --poll busy 2>"$tmp/xvsd.log" &
PIDS+=($!)
for _ in $(seq 150); do grep -q "xvsd running" "$tmp/xvsd.log" && break; sleep 0.1; done
grep -q "xvsd running" "$tmp/xvsd.log" || { cat "$tmp/xvsd.log" >&2; exit 1; }

# busy: the worker's busy and idle nanoseconds so far.
busy() { xvsctl worker-stats | python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print(r["busy_ns"], r["idle_ns"])'; }
# stats PORT FIELD: one counter of xvsctl stats.
stat() { xvsctl stats "$1" | python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print(r.get(sys.argv[1], 0) if sys.argv[1] != "drops" else sum(r["drops"].values()))' "$2"; }

for run in $(seq "$RUNS"); do
  for size in $SIZES; do
    d=$tmp/row-$run-$size
    mkdir -p "$d"
    ip netns exec "$P-sink" taskset -c 0 "$PG" rx --iface s0 --expect-vni $VNI \
      --duration $((DURATION + 8)) --json >"$d/rx.json" 2>"$d/rx.err" &
    rx_pid=$!
    PIDS+=("$rx_pid")
    for _ in $(seq 100); do grep -q "rx ready" "$d/rx.err" && break; sleep 0.1; done

    # testpmd: two lcores on core 0 (main, forwarding); frames to the
    # remote guest's MAC; SIZE bytes with the 4-byte FCS testpmd counts
    # left out (--txpkts is the frame without it).
    timeout $((DURATION + 30)) dpdk-testpmd --lcores "0@0,1@0" --no-huge -m 512 --no-pci \
      --file-prefix "$P$run$size" \
      --vdev "net_virtio_user0,path=$tmp/vu1.sock,queues=1,queue_size=1024,mac=$GUEST_MAC" -- \
      --forward-mode=txonly --eth-peer=0,$REMOTE_MAC --txpkts=$((size - 4)) --nb-cores=1 \
      --rxd=1024 --txd=1024 --total-num-mbufs=8192 --stats-period=1 \
      </dev/null >"$d/testpmd.out" 2>"$d/testpmd.err" &
    tp_pid=$!
    PIDS+=("$tp_pid")
    # Measured from when testpmd sends (it starts in about a second).
    sleep 2
    pre_in=$(stat vu1 rx_packets) pre_out=$(stat tun tx_packets) pre_busy=$(busy)
    sleep "$DURATION"
    post_in=$(stat vu1 rx_packets) post_out=$(stat tun tx_packets) post_busy=$(busy)
    kill -INT "$tp_pid" 2>/dev/null || true
    wait "$tp_pid" 2>/dev/null || true
    sleep 1
    # The sink ends on its own (its duration covers testpmd's start, the
    # run and the drain) and prints its count.
    wait "$rx_pid" 2>/dev/null || true
    python3 - "$d" "$run" "$size" "$DURATION" "$pre_in" "$post_in" "$pre_out" "$post_out" \
      "$pre_busy" "$post_busy" >>"$OUT/runs.jsonl" <<'PY'
import json, re, sys
d, run, size, dur, pre_in, post_in, pre_out, post_out, pre_busy, post_busy = sys.argv[1:11]
(b0, i0), (b1, i1) = (map(int, pre_busy.split()), map(int, post_busy.split()))
dur = float(dur)
out = open(f"{d}/testpmd.out", errors="replace").read()
# testpmd's last port stats before it stopped: TX-packets of port 0.
tx = [int(m) for m in re.findall(r"TX-packets:\s+(\d+)", out)]
try:
    rx = json.load(open(f"{d}/rx.json"))
except Exception:
    rx = {}
row = {"run": int(run), "size": int(size), "duration_s": dur,
       "testpmd_tx": tx[-1] if tx else None,
       "xvs_in": int(post_in) - int(pre_in), "xvs_out": int(post_out) - int(pre_out),
       "sink_packets": rx.get("packets"), "sink_invalid": rx.get("invalid")}
row["mpps_xvs"] = row["xvs_out"] / dur / 1e6
# The worker's busy share over the row: under 100%, the switch was not
# what bounded the rate.
row["worker_busy_pct"] = round(100 * (b1 - b0) / max(1, (b1 - b0) + (i1 - i0)), 1)
print(json.dumps(row))
PY
    echo "   $(tail -n 1 "$OUT/runs.jsonl")" >&2
    if [ "$post_out" = "$pre_out" ]; then
      echo "   nothing went out: xvsd's counters and log follow" >&2
      { "$XVSCTL" --socket "$tmp/xvsd.sock" stats; "$XVSCTL" --socket "$tmp/xvsd.sock" worker-stats; grep -iE "neigh|next.hop|resolv|unresolved|snoop" "$tmp/xvsd.log" | tail -n 40; } >&2
    fi
  done
done

# What xvsd counted in all, drops by reason and its UMEM included.
{ "$XVSCTL" --socket "$tmp/xvsd.sock" stats; "$XVSCTL" --socket "$tmp/xvsd.sock" worker-stats; } >"$OUT/stats.txt"
python3 - "$OUT" "$RUNS" "$DURATION" "$(git rev-parse --short HEAD)" >"$OUT/table.md" <<'PY'
import json, statistics, sys
out, runs, dur, commit = sys.argv[1:5]
rows = [json.loads(l) for l in open(f"{out}/runs.jsonl") if l.strip()]
print(f"# Guest (testpmd virtio-user, txonly) → xvsd vhost-user → VXLAN, commit {commit}\n")
print(f"`RUNS={runs} DURATION={dur} bench/vhost.sh`; xvsd one busy worker on core 1, testpmd and the sink on core 0.\n")
print("| size (B) | Mpps through xvsd, median [min-max] | xvsd worker busy % (median) | runs |")
print("|---|---|---|---|")
failed = [r for r in rows if r["xvs_out"] == 0]
for size in sorted({r["size"] for r in rows}):
    g = [r for r in rows if r["size"] == size and r["xvs_out"] > 0]
    if not g:
        print(f"| {size} | - | - | 0 |")
        continue
    m = [r["mpps_xvs"] for r in g]
    b = statistics.median(r["worker_busy_pct"] for r in g)
    print(f"| {size} | {statistics.median(m):.3f} [{min(m):.3f}-{max(m):.3f}] | {b:.0f} | {len(m)} |")
print("\nBusy below 100%: the generator (testpmd beside the sink on core 0) bounded the rate, not xvsd.")
if failed:
    print(f"\n**{len(failed)} row(s) forwarded nothing** (run, size: "
          + ", ".join(f"{r['run']}, {r['size']}" for r in failed)
          + "): left out of the medians; xvsd's counters at the time are in the run's log.")
PY
cat "$OUT/table.md"
