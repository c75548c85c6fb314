#!/usr/bin/env bash
# Bulk TCP and packet rate in ONE run (issue 17, "How we will know"): the
# rounds of bench/tcp.sh (xvs against the kernel's vxlan + bridge, iperf3)
# and of bench/compare.sh (xvs against Open vSwitch and the kernel,
# xvs-pktgen) alternate, one round of each at a time, so both tables come
# from the same stretch of the same machine. Each script keeps its own
# topology, contenders and columns (their headers); this one only
# schedules them and puts their tables together.
#
# Round r runs tcp.sh then compare.sh when r is odd, compare.sh then
# tcp.sh when it is even (neither always runs on a cold machine); inside
# each, the contender order rotates with r as it does in their own
# multi-run loops (RUN0).
#
# Usage (root):  bench/bulk.sh
# Knobs: RUNS=5 (rounds),
#   TCP_CONTENDERS="kernel xvsfast", TCP_DURATION=8, TCP_KINDS=vxlan,
#   MTUS="1450 8950", STREAMS="1 4", XVS_POLL=adaptive,
#   PPS_CONTENDERS="xvs xvsfast ovs kernel", PPS_DURATION=4, PPS_KINDS=vxlan,
#   SIZES="64 1400", FLOWS=1,
#   OUT=bench/results/bulk-<UTC date-time>.
# Output in OUT: table.md (both tables), meta.json; tcp/ and pps/ with
#   each script's runs.jsonl, table.md and meta.json over all rounds;
#   rounds/ with each call's own output (logs).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "creates network namespaces and attaches XDP: run as root" >&2; exit 1; }

RUNS=${RUNS:-5}
TCP_CONTENDERS=${TCP_CONTENDERS:-kernel xvsfast}
TCP_DURATION=${TCP_DURATION:-8}
TCP_KINDS=${TCP_KINDS:-vxlan}
MTUS=${MTUS:-1450 8950}
STREAMS=${STREAMS:-1 4}
XVS_POLL=${XVS_POLL:-adaptive}
PPS_CONTENDERS=${PPS_CONTENDERS:-xvs xvsfast ovs kernel}
PPS_DURATION=${PPS_DURATION:-4}
PPS_KINDS=${PPS_KINDS:-vxlan}
SIZES=${SIZES:-64 1400}
FLOWS=${FLOWS:-1}
OUT=${OUT:-bench/results/bulk-$(date -u +%Y-%m-%d-%H%M)}

mkdir -p "$OUT/rounds" "$OUT/tcp" "$OUT/pps"
OUT=$(cd "$OUT" && pwd)

echo "== building (release)" >&2
cargo build --release --locked -q -p xvsd -p xvs-ctl -p xvs-bench \
  --bin xvsd --bin xvsctl --bin xvs-pktgen
export XVSD_BIN=$PWD/target/release/xvsd XVSCTL_BIN=$PWD/target/release/xvsctl SKIP_BUILD=1

tcp_round() { # tcp_round R
  RUNS=1 RUN0=$(($1 - 1)) DURATION=$TCP_DURATION CONTENDERS=$TCP_CONTENDERS KINDS=$TCP_KINDS \
    MTUS=$MTUS STREAMS=$STREAMS XVS_POLL=$XVS_POLL OUT="$OUT/rounds/tcp-$1" bench/tcp.sh
}
pps_round() { # pps_round R
  RUNS=1 RUN0=$(($1 - 1)) DURATION=$PPS_DURATION CONTENDERS=$PPS_CONTENDERS KINDS=$PPS_KINDS \
    SIZES=$SIZES FLOWS=$FLOWS OUT="$OUT/rounds/pps-$1" bench/compare.sh
}

for r in $(seq "$RUNS"); do
  if ((r % 2)); then order=(tcp pps); else order=(pps tcp); fi
  for b in "${order[@]}"; do
    echo "== round $r/$RUNS: $b" >&2
    "${b}_round" "$r"
  done
done

# Each script's table over every round: its rows put together, its meta
# with the command that made them, then its own report.
cmd="RUNS=$RUNS TCP_CONTENDERS=\"$TCP_CONTENDERS\" TCP_DURATION=$TCP_DURATION TCP_KINDS=\"$TCP_KINDS\""
cmd+=" MTUS=\"$MTUS\" STREAMS=\"$STREAMS\" XVS_POLL=$XVS_POLL PPS_CONTENDERS=\"$PPS_CONTENDERS\""
cmd+=" PPS_DURATION=$PPS_DURATION PPS_KINDS=\"$PPS_KINDS\" SIZES=\"$SIZES\" FLOWS=\"$FLOWS\" bench/bulk.sh"
for b in tcp pps; do
  cat "$OUT/rounds/$b"-*/runs.jsonl >"$OUT/$b/runs.jsonl"
  python3 -c '
import json, sys
meta = json.load(open(sys.argv[1]))
meta["command"] = sys.argv[3]
json.dump(meta, open(sys.argv[2], "w"))
' "$OUT/rounds/$b-1/meta.json" "$OUT/$b/meta.json" "$cmd"
done
# (OUT is a scratch directory: the scripts start their own runs.jsonl empty.)
# (Prefix assignments expand in order: REPORT_ONLY before OUT changes.)
REPORT_ONLY="$OUT/tcp" OUT="$OUT/rounds/report" bench/tcp.sh
REPORT_ONLY="$OUT/pps" OUT="$OUT/rounds/report" bench/compare.sh
rm -rf "$OUT/rounds/report"
cp "$OUT/tcp/meta.json" "$OUT/meta.json"
{
  echo "# Bulk TCP and packet rate, one run ($RUNS rounds, alternated)"
  echo
  echo "\`$cmd\`"
  echo
  sed 's/^# /## /' "$OUT/tcp/table.md"
  echo
  sed 's/^# /## /' "$OUT/pps/table.md"
} >"$OUT/table.md"
cat "$OUT/table.md"
echo "== written: $OUT/{table.md,meta.json,tcp/,pps/,rounds/}" >&2
