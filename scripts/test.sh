#!/usr/bin/env bash
# Runs every gate CI runs: format, lints, and the whole test suite.
# Installs the system packages the tests need on a fresh Debian 12 (as root).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages. bpf/ compiles its XDP program with clang (llvm for the
# BPF target, libbpf's build wants m4, libelf, zlib, pkg-config); xsk-rs
# builds libxdp, whose configure requires libpcap headers; the namespace
# tests drive iproute2's `ip` and iputils' `ping`.
need=(make clang llvm m4 libelf-dev zlib1g-dev pkg-config libpcap-dev iproute2 iputils-ping)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "missing packages (install as root): ${missing[*]}" >&2; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
