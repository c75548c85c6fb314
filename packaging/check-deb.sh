#!/usr/bin/env bash
# Builds the xvs Debian package (packaging/build-deb.sh), checks that it
# holds what it must (the three binaries, the systemd unit, the defaults
# file, man pages, completions) with the fields it must have, then
# installs it on this machine with dpkg, runs what it installed, and
# purges it again (also when a check fails). Run as root; scripts/test.sh
# runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

deb=$(packaging/build-deb.sh)
echo "== checking $deb"
fail() { echo "check-deb: $*" >&2; exit 1; }

contents=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|')
for f in /usr/sbin/xvsd /usr/bin/xvsctl /usr/bin/xvs-agent \
  /usr/lib/systemd/system/xvsd.service /etc/default/xvsd \
  /usr/share/man/man8/xvsd.8.gz /usr/share/man/man1/xvsctl.1.gz \
  /usr/share/bash-completion/completions/xvsctl \
  /usr/share/zsh/vendor-completions/_xvsctl \
  /usr/share/fish/vendor_completions.d/xvsctl.fish \
  /usr/share/doc/xvs/examples/xvsd.toml /usr/share/doc/xvs/copyright; do
  grep -qx "$f" <<<"$contents" || fail "$f is not in the package:"$'\n'"$contents"
done
[ "$(dpkg-deb -f "$deb" Package)" = xvs ] || fail "Package is not xvs"
depends=$(dpkg-deb -f "$deb" Depends)
grep -q libc6 <<<"$depends" || fail "Depends ($depends) misses the shared libraries"
# Whole listings into variables: `grep -q` ending a pipe early would fail
# it under pipefail.
control=$(dpkg-deb --ctrl-tarfile "$deb" | tar -t)
grep -qx './conffiles' <<<"$control" || fail "no conffiles"
postinst=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst)
grep -q 'deb-systemd-helper enable xvsd.service' <<<"$postinst" ||
  fail "postinst does not enable xvsd.service"

# A run killed between install and purge leaves our package behind: take
# it away. Someone else's package of that name is not ours to touch.
ours="$(dpkg-deb -f "$deb" Maintainer)"
if dpkg -s xvs >/dev/null 2>&1; then
  if [ "$(dpkg-query -W -f='${Maintainer}' xvs)" = "$ours" ]; then
    echo "check-deb: purging the xvs package an earlier run left installed"
    dpkg --purge xvs
  else
    fail "a package named xvs from someone else is installed: not touching it"
  fi
fi
trap 'dpkg --purge xvs >/dev/null 2>&1 || true' EXIT
dpkg -i "$deb"
/usr/sbin/xvsd --version
/usr/bin/xvsctl --version
/usr/bin/xvs-agent --version
/usr/sbin/xvsd --help | grep -q -- --metrics || fail "xvsd --help"
zcat /usr/share/man/man8/xvsd.8.gz | grep -q '^\.TH xvsd 8' || fail "xvsd.8 is not a man page"
grep -q "^Type=notify" /usr/lib/systemd/system/xvsd.service || fail "the unit is not Type=notify"
# With no NOTIFY_SOCKET and an empty state, the installed daemon checks a
# config and exits: it runs on this machine, its libraries found.
/usr/sbin/xvsd --check --config /usr/share/doc/xvs/examples/xvsd.toml
dpkg --purge xvs
trap - EXIT
[ ! -e /usr/sbin/xvsd ] || fail "purge left /usr/sbin/xvsd"
echo "check-deb: ok ($(basename "$deb"))"
