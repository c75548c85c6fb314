#!/usr/bin/env bash
# Probe for docs/design.md, "A GSO-preserving fast path", step 4: can a
# guest port's misses reach an XDP program (and so an AF_XDP socket)
# without a native XDP program on the guest's veth, which would take the
# guest's TSO away? A TC program on p0's ingress pushes an 802.1ad tag
# carrying the port number (7) and redirects to an internal veth pair
# (slow0 -> slow1) whose far end has a native XDP program (strip.c): it
# counts tagged frames and the longest, strips the tag, passes the frame
# to an iperf3 server in the switch's namespace. slow0's S-tag insertion
# offload is off, so the kernel puts the tag in the data, and, slow1
# having XDP, segments the guest's super-packets at slow0's transmit.
# Needs root, clang, iproute2, ethtool, iperf3, bpftool. Cleans up on exit.
#   bench/xdp/slowpath/run.sh
set -u
cd "$(dirname "$0")"
P=prb$$
tmp=$(mktemp -d)
cleanup() { [ -f "$tmp/ip.pid" ] && kill "$(cat "$tmp/ip.pid")" 2>/dev/null; ip netns del $P-v 2>/dev/null; ip netns del $P-s 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
ip netns add $P-v; ip netns add $P-s
x() { local n=$1; shift; ip netns exec $P-$n "$@"; }
ip link add vm0 netns $P-v address 02:00:00:00:0a:01 type veth peer name p0 netns $P-s address 02:00:00:00:0a:02
x s ip link add slow0 type veth peer name slow1
x s ip link set slow1 address 02:00:00:00:0b:01
x s ethtool -K slow0 tx-vlan-stag-hw-insert off
x v ip link set lo up; x s ip link set lo up
x v ip addr add 10.9.0.1/24 dev vm0; x v ip link set vm0 mtu 1450 up
x v ip neigh replace 10.9.0.2 lladdr 02:00:00:00:0b:01 dev vm0 nud permanent
x s ip link set p0 up; x s ip link set slow0 mtu 1500 up; x s ip link set slow1 mtu 1500 up
x s ip addr add 10.9.0.2/32 dev slow1
x s ip route add 10.9.0.1/32 dev p0
x s ip neigh replace 10.9.0.1 lladdr 02:00:00:00:0a:01 dev p0 nud permanent
x s sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.slow1.rp_filter=0 net.ipv4.conf.default.rp_filter=0
clang -O2 -g -target bpf -I/usr/include/$(uname -m)-linux-gnu -c strip.c -o "$tmp/strip.o"
x s ip link set dev slow1 xdpdrv obj "$tmp/strip.o" sec xdp || { echo xdp attach failed; exit 1; }
SI=$(x s cat /sys/class/net/slow0/ifindex)
clang -O2 -target bpf -I/usr/include/$(uname -m)-linux-gnu -DPORT=7 -DSLOW_IFINDEX=$SI -c tag.c -o "$tmp/tag.o"
x s tc qdisc add dev p0 clsact
x s tc filter add dev p0 ingress bpf da obj "$tmp/tag.o" sec tc/tag
echo "vm0: $(x v ethtool -k vm0 | grep -E 'tcp-segmentation-offload|tx-checksumming')"
echo "slow0: $(x s ethtool -k slow0 | grep -E 'tcp-segmentation-offload|generic-segmentation')"
x s iperf3 -s -1 -D -B 10.9.0.2 --pidfile $tmp/ip.pid; sleep 0.3
x s tshark -q -i slow1 -w $tmp/s1.pcap -a duration:6 2>/dev/null &
sleep 1.5
x v timeout 20 iperf3 -c 10.9.0.2 -t 4 -J > $tmp/cli.json 2>&1
python3 -c "import json,sys;d=json.load(open(sys.argv[1]));print('Gbit/s', d['end']['sum_received']['bits_per_second']/1e9, 'retrans', d['end']['sum_sent'].get('retransmits'))" "$tmp/cli.json" || tail -5 "$tmp/cli.json"
x s bpftool map dump name stats 2>/dev/null | head -20 || echo "no bpftool"
x s nstat -az TcpInCsumErrors TcpInSegs IpInReceives IpInHdrErrors TcpExtTCPRcvQDrop 2>/dev/null | grep -v "^#"
