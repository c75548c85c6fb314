#!/usr/bin/env bash
# A minimal Linux guest for QEMU, built from Debian's packages: Debian's
# kernel (the linux-image-amd64 of this release, unpacked with dpkg-deb)
# and an initramfs of busybox-static and the virtio modules its
# virtio-net needs. Its /init brings eth0 up with the address given on
# the kernel command line (`xvs.ip=10.0.0.2/24`), prints
# `XVS-GUEST-READY <mac> <ip>` on the console and waits; the kernel
# answers pings, an iperf3 server (Debian's, with the libraries it
# needs) answers TCP tests. `xvs.ip6=ADDR/PREFIX` adds an IPv6 address,
# `xvs.mtu=N` sets eth0's MTU. With `xvs.ping=ADDR` it pings ADDR (up to
# 60 times, one a second), each line on the console as
# `XVS-GUEST-PING ...`. A second serial port, if the machine has one,
# runs a shell: what a test drives the guest through (commands in,
# their output out, nothing echoed).
#
# Usage: scripts/guest.sh DIR   (as root: apt-get download needs the lists)
# Writes DIR/vmlinuz and DIR/initrd.gz; does nothing if both are there
# and newer than this script.
set -euo pipefail
dir=${1:?usage: scripts/guest.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
if [ -s "$dir/vmlinuz" ] && [ -s "$dir/initrd.gz" ] && [ "$dir/initrd.gz" -nt "$here/guest.sh" ]; then
  exit 0
fi
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# The kernel package linux-image-amd64 points at (its one dependency).
kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
[ -n "$kpkg" ] || { echo "guest.sh: no kernel package behind linux-image-amd64" >&2; exit 1; }
# iperf3 and what it links: the guest's TCP tests run Debian's own.
userland="iperf3 libiperf0 libsctp1 libssl3 libc6"
# shellcheck disable=SC2086 # the lists are words
apt-get download -q "$kpkg" busybox-static $userland >/dev/null 2>&1 ||
  { apt-get update -qq && apt-get download -q "$kpkg" busybox-static $userland >/dev/null; }
mkdir k bb root
dpkg-deb -x "$kpkg"_*.deb k
dpkg-deb -x busybox-static_*.deb bb
for p in $userland; do
  dpkg-deb -x "$p"_*.deb root
done
# Documentation, locales' converters and OpenSSL's engines: not needed.
rm -rf root/usr/share root/usr/lib/x86_64-linux-gnu/gconv \
  root/usr/lib/x86_64-linux-gnu/engines-3 root/usr/lib/x86_64-linux-gnu/ossl-modules
mkdir -p root/bin root/lib/modules root/proc root/sys root/dev root/tmp
cp bb/bin/busybox root/bin/
# In dependency order: virtio_ring exports what virtio needs.
mods="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net"
for m in $mods; do
  f=$(find k/lib/modules -name "$m.ko" | head -n 1)
  [ -n "$f" ] || { echo "guest.sh: $m.ko not in $kpkg" >&2; exit 1; }
  cp "$f" root/lib/modules/
done
cat >root/init <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $mods; do
  insmod /lib/modules/\$m.ko || echo "XVS-GUEST insmod \$m failed"
done
arg() { sed -n "s/.*xvs.\$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }
ip=\$(arg ip)
ip link set lo up
mtu=\$(arg mtu)
[ -n "\$mtu" ] && ip link set eth0 mtu "\$mtu"
ip link set eth0 up
ip addr add "\$ip" dev eth0
ip6=\$(arg ip6)
[ -n "\$ip6" ] && ip -6 addr add "\$ip6" dev eth0
/usr/bin/iperf3 -s -D >/dev/null 2>&1 || echo "XVS-GUEST iperf3 server failed"
if stty -F /dev/ttyS1 raw -echo clocal 2>/dev/null; then
  # Through a pipe, so that the shell is not interactive: no prompt,
  # no line editing echoing what it reads.
  (while true; do cat /dev/ttyS1 | sh >/dev/ttyS1 2>&1; done) &
fi
echo "XVS-GUEST-READY \$(cat /sys/class/net/eth0/address) \$ip"
# xvs.ping=ADDR: ping it (what a demo shows from inside a guest).
peer=\$(arg ping)
if [ -n "\$peer" ]; then
  ping -c 60 -W 1 -w 60 "\$peer" | while read -r line; do echo "XVS-GUEST-PING \$line"; done
fi
while true; do sleep 3600; done
EOF
chmod +x root/init
(cd root && find . | ../bb/bin/busybox cpio -o -H newc 2>/dev/null) | gzip -1 >"$dir/initrd.gz.new"
cp k/boot/vmlinuz-* "$dir/vmlinuz"
mv "$dir/initrd.gz.new" "$dir/initrd.gz"
echo "guest: $dir/vmlinuz ($kpkg), $dir/initrd.gz" >&2
