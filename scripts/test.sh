#!/usr/bin/env bash
# Runs every gate CI runs: format, lints, and the whole test suite.
# Installs the system packages the tests need on a fresh Debian 12 (as root).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: none are needed by the pure dataplane tests yet; the
# namespace tests (issue 3 on) add theirs here.
need=()
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
