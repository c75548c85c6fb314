// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
//
// The GSO ceiling of bench/tcp.sh: what a fast path that keeps the
// guests' 64 KiB TSO/GRO super-packets whole could reach at most. Two TC
// (sched_cls) programs with one fixed VXLAN template and no lookup:
//
//   tc_encap on p0's ingress: every IPv4/IPv6 frame from the VM gets the
//     outer Ethernet/IPv4/UDP/VXLAN header (bpf_skb_adjust_room with the
//     ENCAP flags, so the kernel marks a GSO skb SKB_GSO_UDP_TUNNEL and
//     its UDP-tunnel GSO or the receiver's GRO handle it later) and is
//     redirected out of u0.
//   tc_decap on u0's ingress: VXLAN to our VTEP on port 4789 loses its
//     outer headers (adjust_room with the DECAP flag, which clears the
//     tunnel GSO bits) and is redirected out of p0.
//
// No XDP program is on p0 or u0, so the kernel leaves the peers' TSO on
// (an XDP program on a veth clears its peer's GSO features). It is the
// shape Cilium's datapath has; it is not xvs: there is no bridge, no
// table, no learning, no counters. bench/tcp.sh compiles it with the
// addresses as -D macros (OUTER_*, U0_IFINDEX, P0_IFINDEX, VNI).

// No libbpf headers needed (Debian's iproute2 loads it:
// `tc filter add dev p0 ingress bpf da obj tc_vxlan.o sec tc/encap`).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>

#ifndef U0_IFINDEX
#error "compile with -DU0_IFINDEX, -DP0_IFINDEX, -DOUTER_{SRC,DST}_{MAC,IP}, -DVNI"
#endif

/* Linux 6.3's decap flags; the build host's uapi headers may predate them. */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#endif

#define SEC(s) __attribute__((section(s), used))
#define htons(x) __builtin_bswap16(x)
#define htonl(x) __builtin_bswap32(x)

static long (*const bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)BPF_FUNC_redirect;
static long (*const bpf_skb_adjust_room)(struct __sk_buff *skb, __s32 len_diff, __u32 mode,
					 __u64 flags) = (void *)BPF_FUNC_skb_adjust_room;
static long (*const bpf_skb_store_bytes)(struct __sk_buff *skb, __u32 offset, const void *from,
					 __u32 len, __u64 flags) = (void *)BPF_FUNC_skb_store_bytes;
static long (*const bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to,
					__u32 len) = (void *)BPF_FUNC_skb_load_bytes;
static __u32 (*const bpf_get_hash_recalc)(struct __sk_buff *skb) =
	(void *)BPF_FUNC_get_hash_recalc;

char LICENSE[] SEC("license") = "GPL";

#define OUTER (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr) + 8)
#define VXLAN_PORT 4789

struct outer {
	struct ethhdr eth;
	struct iphdr ip;
	struct udphdr udp;
	__be32 vx_flags;
	__be32 vx_vni;
} __attribute__((packed));

static __always_inline __u16 ip_csum(struct iphdr *ip)
{
	__u32 sum = 0;
	__u16 *w = (__u16 *)ip;

#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

SEC("tc/encap")
int tc_encap(struct __sk_buff *skb)
{
	__u32 inner_len = skb->len;
	__u64 flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
		      BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
		      BPF_F_ADJ_ROOM_ENCAP_L2(sizeof(struct ethhdr));
	struct outer o = {};
	__u32 hash = bpf_get_hash_recalc(skb);

	if (skb->protocol != htons(ETH_P_IP) && skb->protocol != htons(ETH_P_IPV6))
		return TC_ACT_OK;
	/* Room for outer IP + UDP + VXLAN + the inner Ethernet header, which
	 * is the current one: adjust_room inserts after it, so the frame's
	 * own Ethernet header becomes the outer one and a copy of it is
	 * written back as the inner. */
	if (bpf_skb_adjust_room(skb, OUTER, BPF_ADJ_ROOM_MAC, flags))
		return TC_ACT_SHOT;
	struct ethhdr inner_eth;
	if (bpf_skb_load_bytes(skb, 0, &inner_eth, sizeof(inner_eth)))
		return TC_ACT_SHOT;
	__builtin_memcpy(o.eth.h_dest, (__u8[])OUTER_DST_MAC, ETH_ALEN);
	__builtin_memcpy(o.eth.h_source, (__u8[])OUTER_SRC_MAC, ETH_ALEN);
	o.eth.h_proto = htons(ETH_P_IP);
	struct iphdr ip = {
		.version = 4,
		.ihl = 5,
		.tot_len = htons(inner_len + OUTER - sizeof(struct ethhdr)),
		.frag_off = htons(0x4000),
		.ttl = 64,
		.protocol = IPPROTO_UDP,
		.saddr = htonl(OUTER_SRC_IP),
		.daddr = htonl(OUTER_DST_IP),
	};
	ip.check = ip_csum(&ip);
	o.ip = ip;
	o.udp.source = htons(49152 | (hash & 0x3fff));
	o.udp.dest = htons(VXLAN_PORT);
	o.udp.len = htons(inner_len + OUTER - sizeof(struct ethhdr) - sizeof(struct iphdr));
	o.vx_flags = htonl(0x08000000);
	o.vx_vni = htonl(VNI << 8);
	if (bpf_skb_store_bytes(skb, 0, &o, sizeof(o), 0))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, sizeof(o), &inner_eth, sizeof(inner_eth), 0))
		return TC_ACT_SHOT;
	return bpf_redirect(U0_IFINDEX, 0);
}

SEC("tc/decap")
int tc_decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct outer *o = data;
	struct ethhdr inner_eth;
	__u64 flags;

	if ((void *)(o + 1) + sizeof(struct ethhdr) > end)
		return TC_ACT_OK;
	if (o->eth.h_proto != htons(ETH_P_IP) || o->ip.ihl != 5 ||
	    o->ip.protocol != IPPROTO_UDP || o->udp.dest != htons(VXLAN_PORT) ||
	    o->ip.daddr != htonl(OUTER_SRC_IP))
		return TC_ACT_OK;
	__builtin_memcpy(&inner_eth, (void *)(o + 1), sizeof(inner_eth));
	flags = inner_eth.h_proto == htons(ETH_P_IPV6) ? BPF_F_ADJ_ROOM_DECAP_L3_IPV6
							  : BPF_F_ADJ_ROOM_DECAP_L3_IPV4;
	if (bpf_skb_adjust_room(skb, -(int)(OUTER), BPF_ADJ_ROOM_MAC, flags))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, 0, &inner_eth, sizeof(inner_eth), 0))
		return TC_ACT_SHOT;
	return bpf_redirect(P0_IFINDEX, 0);
}
