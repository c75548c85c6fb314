#!/usr/bin/env bash
# Scaling figures (issue 5): xvsd's VXLAN encapsulation rate and cost per
# packet as its tables grow, against the 1-tunnel point, in one run.
#
#   point            tunnel remotes   static MACs   ingress ACL rules   flows (dst MACs)
#   base                   1            16,384             0              16,384
#   tunnels 100          100            16,384             0              16,384
#   tunnels 10k       10,000            16,384             0              16,384
#   fdb 1k                 1             1,024             0               1,024
#   fdb 1M                 1         1,000,000             0              16,384
#   acl 1k                 1            16,384         1,000              16,384
#
# Each point starts xvsd with that config (bench/xvsd_config.sh) in the
# encap_decap.sh topology and sends 64 B frames from xvs-pktgen to
# 02:10:00:00:00:00 + flow, so every flow hits its own FDB entry and, with
# many remotes, its own tunnel template (MAC k sits at remote k mod N).
# Reported: forwarded Mpps (median of RUNS), and the worker's busy
# nanoseconds per forwarded packet (busy time from xvsd's counters over
# every packet of the point): the cost figure that still means something
# when the generator, not xvsd, is the bottleneck.
#
# Usage (root):  bench/scaling.sh     Knobs: RUNS=3 DURATION=5 POINTS="base ..."
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
POINTS=${POINTS:-base tunnels-100 tunnels-10k fdb-1k fdb-1M acl-1k}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

point_env() { # point_env NAME: REMOTES FDB_SIZE ACL_RULES FLOWS
  case $1 in
    base) echo "1 16384 0 16384" ;;
    tunnels-100) echo "100 16384 0 16384" ;;
    tunnels-10k) echo "10000 16384 0 16384" ;;
    fdb-1k) echo "1 1024 0 1024" ;;
    fdb-1M) echo "1 1000000 0 16384" ;;
    acl-1k) echo "1 16384 1000 16384" ;;
    *) echo "unknown point $1" >&2; exit 1 ;;
  esac
}

rows=()
for p in $POINTS; do
  read -r remotes fdb acl flows <<<"$(point_env "$p")"
  echo "== point $p: $remotes remotes, $fdb MACs, $acl ACL rules, $flows flows" >&2
  REMOTES=$remotes FDB_SIZE=$fdb ACL_RULES=$acl DIRS=encap KINDS=vxlan SIZES=64 \
    FLOWS=$flows VARY=dst-mac RUNS=$RUNS DURATION=$DURATION TABLE="$out/$p.md" \
    bench/encap_decap.sh >/dev/null 2>"$out/$p.err" || { cat "$out/$p.err" >&2; exit 1; }
  # Forwarded Mpps of each run (column 8 of encap_decap's raw table).
  mpps=$(awk -F'|' 'NR > 2 { print $8 + 0 }' "$out/$p.md" | sort -n | awk '
    { v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%.3f %.3f %.3f", m, v[1], v[NR] }')
  # The worker's busy time and packets over the whole point.
  ns=$(grep -E 'daemon: worker worker=' "$out/$p.err" | tail -1 | awk '{
      for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
      if (f["rx"] > 0) printf "%.1f", f["busy_ms"] * 1e6 / f["rx"]; else printf "-" }')
  rows+=("$p $remotes $fdb $acl $flows $mpps $ns")
  echo "   $p: $mpps Mpps (median min max), $ns busy ns/packet" >&2
done

echo
echo "xvsd VXLAN encap scaling, 64 B, one busy worker (core 1), xvs-pktgen on core 0, $(uname -r), $(nproc) cores, $RUNS x ${DURATION} s per point, $(date -u +%Y-%m-%d):"
echo
echo "| point | remotes | static MACs | ACL rules | flows | Mpps median [min-max] | vs base | busy ns/packet | vs base |"
echo "|---|---|---|---|---|---|---|---|---|"
base_m= base_ns=
for r in "${rows[@]}"; do
  set -- $r
  [ "$1" = base ] && base_m=$6 base_ns=${9}
done
for r in "${rows[@]}"; do
  set -- $r
  awk -v p="$1" -v re="$2" -v f="$3" -v a="$4" -v fl="$5" -v m="$6" -v lo="$7" -v hi="$8" -v ns="$9" \
    -v bm="${base_m:-0}" -v bns="${base_ns:-0}" 'BEGIN {
      rm = bm > 0 ? sprintf("%.2f", m / bm) : "-"
      rn = (bns > 0 && ns != "-") ? sprintf("%.2f", ns / bns) : "-"
      printf "| %s | %d | %d | %d | %d | %.3f [%.3f-%.3f] | %s | %s | %s |\n", p, re, f, a, fl, m, lo, hi, rm, ns, rn
    }'
done
