#!/usr/bin/env bash
# Builds the xvs Debian package (xvsd, xvsctl, xvs-agent, the systemd unit,
# /etc/default/xvsd, man pages, shell completions) with cargo-deb into
# target/debian/, and prints its path. Installs what it needs on Debian
# (cargo-deb from the crate registry, dpkg-dev for the library
# dependencies), so run it as root on a fresh machine.
#
#   packaging/build-deb.sh && dpkg -i target/debian/xvs_*.deb
#
# The package's layout is xvsd/Cargo.toml's [package.metadata.deb];
# packaging/check-deb.sh checks a built one and installs it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
ensure_packages "${BUILD_PACKAGES[@]}" dpkg-dev
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb@3.8.0

target=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --locked -p xvsd -p xvs-ctl -p xvs-agent \
  --bin xvsd --bin xvsctl --bin xvs-agent >&2
pkg=$target/release/xvs-pkg
rm -rf "$pkg"
mkdir -p "$pkg"
"$target/release/xvsd" --man | gzip -9n >"$pkg/xvsd.8.gz"
"$target/release/xvsctl" man | gzip -9n >"$pkg/xvsctl.1.gz"
"$target/release/xvsctl" completions bash >"$pkg/xvsctl.bash"
"$target/release/xvsctl" completions zsh >"$pkg/_xvsctl"
"$target/release/xvsctl" completions fish >"$pkg/xvsctl.fish"
cargo deb --locked -p xvsd --no-build --output "$target/debian/" >&2
ls -t "$target"/debian/xvs_*.deb | head -n 1
