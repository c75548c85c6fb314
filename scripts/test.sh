#!/usr/bin/env bash
# Runs every gate CI runs: format, lints, the API docs, the whole test
# suite, the instruction-count gate and the fuzz targets. Installs the system packages the tests need on a fresh
# Debian 12, so it must run as root; the namespace tests need root anyway.
#
# XVS_REQUIRE_ALL=1 makes every test whose requirement is missing (root, a
# tool, a file) fail with its reason: this script installed them all. Only
# a kernel feature this machine's kernel refuses (probed) may skip a test;
# each skip is listed at the end, as is the fuzz step's outcome.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh must run as root: it installs packages with apt-get, and the" >&2
  echo "namespace, XDP and AF_XDP tests need root (run it with sudo, or as root)." >&2
  exit 1
fi

source scripts/packages.sh
# Besides the build: the namespace tests drive iproute2's `ip`, ping, arping,
# iperf3 and ethtool, and check our packets against tshark's dissectors
# and Open vSwitch 3.1 (started by the tests themselves); the discovery
# tests run etcd (etcd-server, etcdctl from etcd-client) on test addresses;
# the metrics test parses xvsd's endpoint with the Prometheus project's
# Python client; the instruction-count gate runs under valgrind's callgrind;
# the vhost-user tests drive a port from DPDK's virtio-user driver in
# dpdk-testpmd (Debian ships it in dpdk-dev).
ensure_packages "${BUILD_PACKAGES[@]}" iproute2 iputils-ping iputils-arping iperf3 ethtool tshark openvswitch-switch etcd-server etcd-client valgrind python3-prometheus-client dpdk-dev
# The VM tests boot a QEMU guest on a vhost-user port: QEMU 10 from
# bookworm-backports (bookworm's 7.2 crashes when a TCG guest loads a
# vhost-user NIC's driver), and a guest image built from Debian's kernel
# and busybox-static (scripts/guest.sh; kept between runs).
ensure_backports qemu-system-x86
export XVS_GUEST_DIR="${XVS_GUEST_DIR:-/var/tmp/xvs-guest}"
scripts/guest.sh "$XVS_GUEST_DIR"

export XVS_REQUIRE_ALL=1
XVS_SKIP_LOG="$(mktemp /tmp/xvs-skips.XXXXXX)"
export XVS_SKIP_LOG
fuzz_summary="fuzz: not reached"

summary() {
  local rc=$?
  echo
  echo "== scripts/test.sh summary =="
  local n
  n=$(grep -c . "$XVS_SKIP_LOG" || true)
  if [ "$n" -gt 0 ]; then
    echo "$n skipped:"
    sed 's/^/  /' "$XVS_SKIP_LOG"
  else
    echo "0 skipped"
  fi
  echo "$fuzz_summary"
  rm -f "$XVS_SKIP_LOG"
  [ "$rc" = 0 ] && echo "result: pass" || echo "result: FAIL (exit $rc)"
}
trap summary EXIT

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The API documentation builds clean: a broken or private link is an error.
RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps --locked
cargo test --workspace --locked
# The Debian package: built with cargo-deb, its contents checked,
# installed with dpkg, run and purged (docs/operating.md, "As a service").
packaging/check-deb.sh
# Per-packet cost, gated on instruction counts (callgrind is deterministic
# where timings on a shared machine are not): fails with a before/after
# table when an op grows past its threshold (bench/README.md).
bench/instructions.sh

# Exit 0: every target ran clean; 2: no nightly toolchain (said in the
# summary, not a failure); anything else: a crash or a build failure.
# (Its output goes through tee to a file of its own: `tee /dev/stderr`
# would reopen, and so truncate, a log file that stderr points to.)
fuzz_rc=0
fuzz_log="$(mktemp /tmp/xvs-fuzz.XXXXXX)"
scripts/fuzz.sh | tee "$fuzz_log" || fuzz_rc=$?
fuzz_summary=$(tail -n 1 "$fuzz_log")
rm -f "$fuzz_log"
case "$fuzz_rc" in
  0|2) ;;
  *) exit "$fuzz_rc" ;;
esac
