# Sourced by demo.sh and test.sh: installs Debian packages that are missing
# (a fresh Debian 12 has no apt lists and none of them).
#   ensure_packages PKG...
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || { echo "missing packages (install as root): ${missing[*]}" >&2; return 1; }
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# What building xvs needs: bpf/ compiles its XDP program with clang (llvm
# for the BPF target; libbpf's build wants m4, libelf, zlib, pkg-config);
# xsk-rs builds libxdp, whose configure requires libpcap headers;
# xvs-agent's etcd client compiles etcd's gRPC protos with protoc.
# The agent's etcd client compiles etcd's gRPC protos at build time: protoc,
# and the well-known google/protobuf/*.proto it imports (libprotobuf-dev; not
# pulled in by protobuf-compiler without recommends).
BUILD_PACKAGES=(make clang llvm m4 libelf-dev zlib1g-dev pkg-config libpcap-dev protobuf-compiler libprotobuf-dev)
