#!/usr/bin/env bash
# The demo. Today it runs two hypervisors' dataplanes back to back in one
# process (VXLAN and Geneve, flooding then learned unicast); the namespace
# demo with xvsd on AF_XDP replaces it when the daemon lands (issue 3).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --locked -q -p xvs-dataplane --example two_hypervisors
