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

# Installs PKG... from bookworm-backports (adding that suite to apt's
# sources if none names it) unless a backports build is installed already.
#   ensure_backports PKG...
ensure_backports() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Version}' "$p" 2>/dev/null | grep -q 'bpo' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || { echo "missing backports packages (install as root): ${missing[*]}" >&2; return 1; }
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat >/etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  echo "installing from bookworm-backports: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports "${missing[@]}" >/dev/null
}
