#!/usr/bin/env bash
# Runs every gate CI runs: format, lints, and the whole test suite.
# Installs the system packages the tests need on a fresh Debian 12 (as root).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/packages.sh
# Besides the build: the namespace tests drive iproute2's `ip`, ping, arping,
# iperf3 and ethtool, and check our packets against tshark's dissectors
# and Open vSwitch 3.1 (started by the tests themselves); the discovery
# tests run etcd (etcd-server, etcdctl from etcd-client) on test addresses.
ensure_packages "${BUILD_PACKAGES[@]}" iproute2 iputils-ping iputils-arping iperf3 ethtool tshark openvswitch-switch etcd-server etcd-client

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
