// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
//
// xvs XDP programs.
//
// xvs_port   attaches to a VM-facing port: every frame goes to the AF_XDP
//            socket bound to its rx queue. A frame arriving on a queue with
//            no socket is dropped and counted (XVS_CNT_PORT_NO_SOCKET): a
//            VM-facing port belongs to the switch, and passing its frames to
//            the host stack would let a VM talk to the host behind the
//            switch's back.
// xvs_uplink attaches to the underlay uplink: only UDP to a local VTEP
//            address or a multicast tunnel's group (both in vtep4/vtep6)
//            and a tunnel port (tunnel_ports) goes to
//            the AF_XDP socket; everything else is the host's and is passed.
//            ARP replies and ICMPv6 neighbor advertisements are also copied
//            into the `snoop` ring buffer before being passed. A tunnel
//            frame on a queue with no socket is dropped and counted
//            (XVS_CNT_UPLINK_NO_SOCKET) rather than passed: the kernel has
//            no listener there and would only answer port-unreachable.
//
// Headroom: when cfg.port_headroom is non-zero, xvs_port moves the frame
// start back by that many bytes (bpf_xdp_adjust_head) before redirecting,
// so the frame reaches the UMEM with that many spare bytes in front of the
// Ethernet header, inside the descriptor. See the crate docs for what this
// does and does not buy userspace.
//
// Not handled: VLAN-tagged uplink frames, IPv6 extension headers before the
// UDP or ICMPv6 header, IPv4 fragments (all passed to the kernel).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xvs.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XVS_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_cfg);
} cfg SEC(".maps");

#include "xvs_uplink_maps.h"

static __always_inline int to_socket(struct xdp_md *ctx, __u32 ok, __u32 no_socket)
{
	int ret = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_DROP);

	count(ret == XDP_REDIRECT ? ok : no_socket);
	return ret;
}

SEC("xdp.frags")
int xvs_port(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct xvs_cfg *c = bpf_map_lookup_elem(&cfg, &zero);

	if (c && c->port_headroom) {
		/* Bounded so the verifier (and the 256-byte XDP headroom less
		 * struct xdp_frame) can never be exceeded by a bad config. */
		int room = c->port_headroom & XVS_MAX_PORT_HEADROOM_MASK;

		if (bpf_xdp_adjust_head(ctx, -room) != 0) {
			count(XVS_CNT_PORT_HEADROOM_FAILED);
			return XDP_DROP;
		}
	}
	return to_socket(ctx, XVS_CNT_PORT_REDIRECTED, XVS_CNT_PORT_NO_SOCKET);
}

/* Copies up to XVS_SNOOP_MAX bytes of the frame into the ring buffer. */
static __always_inline void snoop_frame(struct xdp_md *ctx, __u32 kind)
{
	__u64 len = ctx->data_end - ctx->data;
	struct xvs_snoop *rec;

	if (len > XVS_SNOOP_MAX)
		len = XVS_SNOOP_MAX;
	rec = bpf_ringbuf_reserve(&snoop, sizeof(*rec), 0);
	if (!rec) {
		count(XVS_CNT_SNOOP_LOST);
		return;
	}
	rec->ifindex = ctx->ingress_ifindex;
	rec->kind = kind;
	rec->len = len;
	if (len == 0 || bpf_xdp_load_bytes(ctx, 0, rec->data, len) != 0) {
		bpf_ringbuf_discard(rec, 0);
		count(XVS_CNT_SNOOP_LOST);
		return;
	}
	bpf_ringbuf_submit(rec, 0);
	count(kind == XVS_SNOOP_ARP ? XVS_CNT_SNOOP_ARP : XVS_CNT_SNOOP_ND);
}

/* ARP header fields we read: Ethernet/IPv4 ARP, operation at offset 6. */
struct arp_head {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
};

static __always_inline int uplink_udp(struct xdp_md *ctx, struct udphdr *udp, void *end)
{
	__u16 dport;

	if ((void *)(udp + 1) > end)
		return -1;
	dport = udp->dest;
	return bpf_map_lookup_elem(&tunnel_ports, &dport) ? 0 : -1;
}

SEC("xdp.frags")
int xvs_uplink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u16 proto;

	if ((void *)(eth + 1) > end)
		goto pass;
	proto = eth->h_proto;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 daddr;

		if ((void *)(ip + 1) > end || ip->ihl < 5)
			goto pass;
		if (ip->protocol != IPPROTO_UDP)
			goto pass;
		/* Fragments: the kernel reassembles; MF or offset set. */
		if (ip->frag_off & bpf_htons(0x3fff))
			goto pass;
		daddr = ip->daddr;
		if (!bpf_map_lookup_elem(&vtep4, &daddr))
			goto pass;
		if (uplink_udp(ctx, (void *)ip + ip->ihl * 4, end) != 0)
			goto pass;
		return to_socket(ctx, XVS_CNT_UPLINK_REDIRECTED, XVS_CNT_UPLINK_NO_SOCKET);
	}

	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			goto pass;
		if (ip6->nexthdr == IPPROTO_ICMPV6) {
			struct icmp6hdr *icmp = (void *)(ip6 + 1);

			if ((void *)(icmp + 1) <= end &&
			    icmp->icmp6_type == XVS_ND_NEIGHBOR_ADVERT)
				snoop_frame(ctx, XVS_SNOOP_ND);
			goto pass;
		}
		if (ip6->nexthdr != IPPROTO_UDP)
			goto pass;
		if (!bpf_map_lookup_elem(&vtep6, &ip6->daddr))
			goto pass;
		if (uplink_udp(ctx, (void *)(ip6 + 1), end) != 0)
			goto pass;
		return to_socket(ctx, XVS_CNT_UPLINK_REDIRECTED, XVS_CNT_UPLINK_NO_SOCKET);
	}

	if (proto == bpf_htons(ETH_P_ARP)) {
		struct arp_head *arp = (void *)(eth + 1);

		if ((void *)(arp + 1) <= end && arp->op == bpf_htons(XVS_ARP_REPLY))
			snoop_frame(ctx, XVS_SNOOP_ARP);
	}

pass:
	count(XVS_CNT_UPLINK_PASSED);
	return XDP_PASS;
}
