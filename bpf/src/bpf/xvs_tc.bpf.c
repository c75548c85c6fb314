// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
//
// The GSO-preserving fast path's executor (docs/design.md, "A
// GSO-preserving fast path"): a TC (sched_cls) program on a guest port's
// ingress that carries out, for a flow the AF_XDP pipeline has already
// decided, the decision it made, on the whole skb: a TSO super-packet
// keeps its size, and the kernel segments it late (the veth's peer, a
// NIC's tunnel TSO) or never (GRO on the far side).
//
// xvs_tc_port looks the frame's flow up in `flows` (struct xvs_tc_key,
// the pipeline's flow key fields) and, on a hit, counts it, stamps its
// last use and either sends it out of another port (XVS_TC_OUTPUT) or
// pushes the flow's outer header (XVS_TC_PUSH) and sends it out of the
// uplink. The push is `tunnel::Template::push` in C: the same template
// bytes, then the per-packet fields patched as it patches them (outer
// lengths, the IPv4 checksum by RFC 1624 from the template's base, the
// TOS inherited or the inner ECN copied; the UDP source port is the
// flow's, which userspace computed from the pipeline's flow hash).
// bpf_skb_adjust_room's ENCAP flags make a GSO skb a UDP-tunnel one.
//
// xvs_tc_uplink, on the uplink's ingress, decapsulates a tunnel packet
// whose flow (struct xvs_tc_tunnel_key: outer addresses, UDP port, the
// tunnel header's 8 bytes, the inner flow) has a decision in
// `tunnel_flows`, and sends the inner frame out of its port
// (XVS_TC_OUTPUT only). It takes only what the pipeline's pop accepts
// with the same result: an IPv4 outer header without options or
// fragmentation whose checksum verifies, or an IPv6 one with UDP next;
// no Geneve options; no CE mark on the outer header (ECN decapsulation
// is the pipeline's). The rest misses. The UDP checksum is ignored, as
// pop ignores it on a tunnel port without `csum`, the only ports whose
// flows userspace may install here.
//
// A miss, a frame this program cannot describe (tagged, not IP, IPv6
// with an extension header, a fragment) or a failed helper goes to the
// path behind: on a port with an entry in `ports` (a guest port with no
// XDP program of its own, so that its peer keeps GSO), the frame is
// tagged with an 802.1ad tag carrying the port's number and redirected
// to the miss pair, whose far end's XDP program hands it to the workers
// (the kernel segments a super-packet there, since that pair's peer has
// XDP, and inserts the tag into each segment's data, the pair having
// tx-vlan-stag-hw-insert off); elsewhere TC_ACT_OK, as if the program
// were not there. Templates with an outer UDP checksum (IPv6 underlays)
// or without DF (their IPv4 id is per-worker state) are never installed:
// a GSO skb cannot have its outer checksum computed here.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xvs.h"
#include "xvs_tc.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_TC_MAX_FLOWS);
	__type(key, struct xvs_tc_key);
	__type(value, struct xvs_tc_action);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_TC_MAX_FLOWS);
	__type(key, struct xvs_tc_tunnel_key);
	__type(value, struct xvs_tc_action);
} tunnel_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct xvs_tc_port);
} ports SEC(".maps");

#define ETH_P_8021AD_ 0x88a8

/* The uplink's maps, shared with the uplink's XDP object: the daemon's
 * object reuses these (reuse_fd), so that what it writes (VTEPs, tunnel
 * ports) and reads (snooped replies, counters) is what xvs_tc_uplink
 * uses when the uplink has no XDP program. */
#include "xvs_uplink_maps.h"

/* As xvs.bpf.c's snoop_frame: up to XVS_SNOOP_MAX bytes of the frame into
 * the ring buffer, for the control thread's neighbour snooping. */
static __always_inline void snoop_frame(struct __sk_buff *skb, __u32 kind)
{
	__u32 len = skb->len;
	struct xvs_snoop *rec;

	if (len > XVS_SNOOP_MAX)
		len = XVS_SNOOP_MAX;
	if (len == 0)
		return;
	rec = bpf_ringbuf_reserve(&snoop, sizeof(*rec), 0);
	if (!rec) {
		count(XVS_CNT_SNOOP_LOST);
		return;
	}
	rec->ifindex = skb->ingress_ifindex;
	rec->kind = kind;
	rec->len = len;
	if (bpf_skb_load_bytes(skb, 0, rec->data, len & 0xff)) {
		bpf_ringbuf_discard(rec, 0);
		count(XVS_CNT_SNOOP_LOST);
		return;
	}
	bpf_ringbuf_submit(rec, 0);
	count(kind == XVS_SNOOP_ARP ? XVS_CNT_SNOOP_ARP : XVS_CNT_SNOOP_ND);
}

/* Linux 6.3's flags for a decapsulation, which the build host's uapi
 * headers (an enum, so no #ifdef) may predate. */
#define XVS_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define XVS_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)

#define ETH_LEN 14
#define IPV4_MIN (ETH_LEN + 20 + 8)

/* RFC 1624 eqn. 3, as wire::checksum::update16. */
static __always_inline __u16 update16(__u16 csum, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~csum + (__u32)(__u16)~old + new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/* Fills the key from the frame's headers and `*l4_at` with where its L4
 * header starts; returns the inner TOS (IPv4 TOS, IPv6 traffic class),
 * or -1 when the frame is not one we describe. */
static __always_inline int flow_key(struct __sk_buff *skb, struct xvs_tc_key *k, __u32 at,
				    __u32 *l4_at)
{
	__u8 l3[40];
	__u32 l4;

	if (skb->vlan_present || bpf_skb_load_bytes(skb, at, k->dl_dst, 12) ||
	    bpf_skb_load_bytes(skb, at + 12, &k->eth_type, 2))
		return -1;
	if (k->eth_type == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, at + ETH_LEN, l3, 20))
			return -1;
		/* No options, no fragment: what the pipeline's key and the
		 * offloaded decision were made for. */
		if (l3[0] != 0x45 || (l3[6] & 0x3f) || l3[7])
			return -1;
		k->ip_proto = l3[9];
		k->ip_tos = l3[1];
		__builtin_memset(k->nw_src, 0, 10);
		k->nw_src[10] = k->nw_src[11] = 0xff;
		__builtin_memcpy(&k->nw_src[12], &l3[12], 4);
		__builtin_memset(k->nw_dst, 0, 10);
		k->nw_dst[10] = k->nw_dst[11] = 0xff;
		__builtin_memcpy(&k->nw_dst[12], &l3[16], 4);
		l4 = at + ETH_LEN + 20;
	} else if (k->eth_type == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, at + ETH_LEN, l3, 40))
			return -1;
		k->ip_proto = l3[6];
		k->ip_tos = (l3[0] << 4) | (l3[1] >> 4);
		__builtin_memcpy(k->nw_src, &l3[8], 16);
		__builtin_memcpy(k->nw_dst, &l3[24], 16);
		l4 = at + ETH_LEN + 40;
	} else {
		return -1;
	}
	if (k->ip_proto != IPPROTO_TCP && k->ip_proto != IPPROTO_UDP)
		return -1;
	if (bpf_skb_load_bytes(skb, l4, &k->tp_src, 4))
		return -1;
	*l4_at = l4;
	return k->ip_tos;
}

/* Whether the frame, once `a`'s header is in front, fits the uplink: a
 * plain frame by its length, a super-packet by its segments' (the L2 to
 * L4 headers each segment repeats, plus gso_size), which the kernel's
 * UDP-tunnel GSO will cut after the push. A segment the uplink's MTU
 * does not take would be dropped there unseen; the pipeline answers it
 * with ICMP instead (RFC 7348 forbids fragmenting the outer packet). */
static __always_inline int fits(struct __sk_buff *skb, struct xvs_tc_action *a, __u8 proto,
				__u32 l4)
{
	__u32 len = skb->len;

	if (skb->gso_size) {
		__u8 doff = 0;

		if (proto == IPPROTO_TCP) {
			if (bpf_skb_load_bytes(skb, l4 + 12, &doff, 1))
				return 0;
			len = l4 + (doff >> 4) * 4 + skb->gso_size;
		} else {
			len = l4 + 8 + skb->gso_size;
		}
	}
	return a->hdr_len - ETH_LEN + len <= a->max_ip_len;
}

static __always_inline int push(struct __sk_buff *skb, struct xvs_tc_action *a, __u8 inner_tos)
{
	__u32 inner_len = skb->len;
	__u32 hdr_len = a->hdr_len;
	__u32 udp_off = a->udp_off;
	__u8 inner_eth[ETH_LEN];
	/* FIXED_GSO: the segments keep the guest's size (`fits` has checked
	 * that they fit once encapsulated) rather than losing the header's
	 * length of payload each; and a UDP super-packet, whose gso_size
	 * delimits datagrams, may be encapsulated only so. */
	__u64 flags = BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
		      BPF_F_ADJ_ROOM_ENCAP_L2(ETH_LEN) | BPF_F_ADJ_ROOM_FIXED_GSO;
	__u32 total, udp_len;
	__u8 tos;

	if (hdr_len > XVS_TC_MAX_HDR || hdr_len < IPV4_MIN || udp_off + 8 > hdr_len ||
	    udp_off < ETH_LEN + 20)
		return -1;
	flags |= a->v6 ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 : BPF_F_ADJ_ROOM_ENCAP_L3_IPV4;
	if (bpf_skb_load_bytes(skb, 0, inner_eth, ETH_LEN))
		return -1;
	/* Room for the template after the frame's Ethernet header, which
	 * the template's own outer Ethernet header then overwrites: the
	 * inner Ethernet header is written back behind the template. */
	if (bpf_skb_adjust_room(skb, hdr_len, BPF_ADJ_ROOM_MAC, flags))
		return -1;
	if (bpf_skb_store_bytes(skb, 0, a->hdr, hdr_len, 0) ||
	    bpf_skb_store_bytes(skb, hdr_len, inner_eth, ETH_LEN, 0))
		return -1;
	total = hdr_len - ETH_LEN + inner_len;
	udp_len = total - (udp_off - ETH_LEN);
	tos = a->tos_inherit ? inner_tos : (a->base_tos | (inner_tos & 3));
	if (a->v6) {
		__be16 plen = bpf_htons(udp_len);
		__u8 w[2];

		if (bpf_skb_load_bytes(skb, ETH_LEN, w, 2))
			return -1;
		w[0] = (w[0] & 0xf0) | (tos >> 4);
		w[1] = (w[1] & 0x0f) | (tos << 4);
		if (bpf_skb_store_bytes(skb, ETH_LEN, w, 2, 0) ||
		    bpf_skb_store_bytes(skb, ETH_LEN + 4, &plen, 2, 0))
			return -1;
	} else {
		__u16 csum = update16(a->base_csum, 0, total);
		__be16 tl = bpf_htons(total);

		if (tos != a->base_tos) {
			csum = update16(csum, a->base_tos, tos);
			if (bpf_skb_store_bytes(skb, ETH_LEN + 1, &tos, 1, 0))
				return -1;
		}
		csum = bpf_htons(csum);
		if (bpf_skb_store_bytes(skb, ETH_LEN + 2, &tl, 2, 0) ||
		    bpf_skb_store_bytes(skb, ETH_LEN + 10, &csum, 2, 0))
			return -1;
	}
	__be16 ul = bpf_htons(udp_len);
	if (bpf_skb_store_bytes(skb, udp_off, &a->src_port, 2, 0) ||
	    bpf_skb_store_bytes(skb, udp_off + 4, &ul, 2, 0))
		return -1;
	return 0;
}

/* Counts and stamps the flow (`segs` and `len` as the frame arrived:
 * adjust_room zeroes gso_segs for the kernel to recount), and sends the
 * frame out of its port. */
static __always_inline int sent(struct xvs_tc_action *a, __u32 segs, __u32 len)
{
	__sync_fetch_and_add(&a->packets, segs ? segs : 1);
	__sync_fetch_and_add(&a->bytes, len);
	a->last_used_ns = bpf_ktime_get_ns();
	return bpf_redirect(a->out_ifindex, 0);
}

/* The path behind for a frame this program does not take: the miss pair
 * with the port's tag on a port that has one, else the stack's. */
static __always_inline int to_pipeline(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ingress_ifindex;
	struct xvs_tc_port *p = bpf_map_lookup_elem(&ports, &ifindex);

	if (!p)
		return TC_ACT_OK;
	if (bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021AD_), p->port_no & 0xfff)) {
		__sync_fetch_and_add(&p->miss_errors, 1);
		return TC_ACT_SHOT;
	}
	__sync_fetch_and_add(&p->misses, 1);
	return bpf_redirect(p->miss_ifindex, 0);
}

SEC("tc")
int xvs_tc_port(struct __sk_buff *skb)
{
	struct xvs_tc_key k = {};
	struct xvs_tc_action *a;
	__u32 segs = skb->gso_segs, len = skb->len, l4 = 0;
	int tos = flow_key(skb, &k, 0, &l4);

	if (tos < 0)
		return to_pipeline(skb);
	k.ifindex = skb->ingress_ifindex;
	a = bpf_map_lookup_elem(&flows, &k);
	if (!a)
		return to_pipeline(skb);
	if (a->kind == XVS_TC_PUSH) {
		if (!fits(skb, a, k.ip_proto, l4))
			return to_pipeline(skb);
		/* A failure after adjust_room has left the frame half built:
		 * it cannot go on to the path behind. */
		if (push(skb, a, tos))
			return TC_ACT_SHOT;
	} else if (a->kind != XVS_TC_OUTPUT) {
		return to_pipeline(skb);
	}
	return sent(a, segs, len);
}

/* The decapsulation of a tunnel packet whose flow has a decision, or -1
 * when it is not taken (nothing changed then). */
static __always_inline int decap(struct __sk_buff *skb, __be16 et)
{
	struct xvs_tc_tunnel_key k = {};
	struct xvs_tc_action *a;
	__u32 segs = skb->gso_segs, len = skb->len;
	__u8 ip[40], udp[8], ecn;
	__u32 l4, inner, inner_l4;
	__u64 flags;

	if (et == bpf_htons(ETH_P_IP)) {
		__u32 sum = 0;

		if (bpf_skb_load_bytes(skb, ETH_LEN, ip, 20))
			return -1;
		if (ip[0] != 0x45 || (ip[6] & 0x3f) || ip[7] || ip[9] != IPPROTO_UDP)
			return -1;
#pragma unroll
		for (int i = 0; i < 20; i += 2)
			sum += ((__u32)ip[i] << 8) | ip[i + 1];
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		if (sum != 0xffff)
			return -1;
		ecn = ip[1] & 3;
		k.outer_src[10] = k.outer_src[11] = 0xff;
		__builtin_memcpy(&k.outer_src[12], &ip[12], 4);
		k.outer_dst[10] = k.outer_dst[11] = 0xff;
		__builtin_memcpy(&k.outer_dst[12], &ip[16], 4);
		l4 = ETH_LEN + 20;
	} else if (et == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, ETH_LEN, ip, 40) || ip[6] != IPPROTO_UDP)
			return -1;
		ecn = (ip[1] >> 4) & 3;
		__builtin_memcpy(k.outer_src, &ip[8], 16);
		__builtin_memcpy(k.outer_dst, &ip[24], 16);
		l4 = ETH_LEN + 40;
	} else {
		return -1;
	}
	/* The UDP checksum is not looked at: decisions are installed only for
	 * tunnel ports that do not verify it (pop accepts any there). */
	if (ecn == 3 || bpf_skb_load_bytes(skb, l4, udp, 8) ||
	    bpf_skb_load_bytes(skb, l4 + 8, k.tun_hdr, 8))
		return -1;
	__builtin_memcpy(&k.udp_dst, &udp[2], 2);
	inner = l4 + 16;
	if (flow_key(skb, &k.inner, inner, &inner_l4) < 0)
		return -1;
	a = bpf_map_lookup_elem(&tunnel_flows, &k);
	if (!a || a->kind != XVS_TC_OUTPUT)
		return -1;
	/* The pop: everything between the outer Ethernet header and the
	 * inner IP header goes (outer IP, UDP, tunnel header, inner
	 * Ethernet), and the inner Ethernet header takes the outer's place. */
	__u8 inner_eth[ETH_LEN];
	if (bpf_skb_load_bytes(skb, inner, inner_eth, ETH_LEN))
		return -1;
	/* FIXED_GSO: a super-packet's inner segments keep the size the
	 * sender cut them to, not that plus the header taken away. */
	flags = (k.inner.eth_type == bpf_htons(ETH_P_IPV6) ? XVS_ADJ_ROOM_DECAP_L3_IPV6
							    : XVS_ADJ_ROOM_DECAP_L3_IPV4) |
		BPF_F_ADJ_ROOM_FIXED_GSO;
	if (bpf_skb_adjust_room(skb, -(__s32)inner, BPF_ADJ_ROOM_MAC, flags))
		return -1;
	if (bpf_skb_store_bytes(skb, 0, inner_eth, ETH_LEN, 0))
		return TC_ACT_SHOT;
	return sent(a, segs, len);
}

/* Whether the frame (of ethertype `et`) is UDP to one of our VTEPs and
 * tunnel ports, as xvs.bpf.c's xvs_uplink decides what is the switch's:
 * IPv4 without fragmentation, IPv6 with UDP next. */
static __always_inline int ours(struct __sk_buff *skb, __be16 et)
{
	__u16 dport;
	__u32 l4;

	if (et == bpf_htons(ETH_P_IP)) {
		__u8 ip[20];
		__u32 daddr;

		if (bpf_skb_load_bytes(skb, ETH_LEN, ip, 20))
			return 0;
		if ((ip[0] & 0x0f) < 5 || ip[9] != IPPROTO_UDP || (ip[6] & 0x3f) || ip[7])
			return 0;
		__builtin_memcpy(&daddr, &ip[16], 4);
		if (!bpf_map_lookup_elem(&vtep4, &daddr))
			return 0;
		l4 = ETH_LEN + (ip[0] & 0x0f) * 4;
	} else if (et == bpf_htons(ETH_P_IPV6)) {
		__u8 ip[40];

		if (bpf_skb_load_bytes(skb, ETH_LEN, ip, 40) || ip[6] != IPPROTO_UDP)
			return 0;
		if (!bpf_map_lookup_elem(&vtep6, &ip[24]))
			return 0;
		l4 = ETH_LEN + 40;
	} else {
		return 0;
	}
	if (bpf_skb_load_bytes(skb, l4 + 2, &dport, 2))
		return 0;
	return bpf_map_lookup_elem(&tunnel_ports, &dport) != 0;
}

/* On the uplink's ingress. With an entry in `ports` (xvsd --fastpath: the
 * uplink has no XDP program, so a veth's peer keeps GSO) it is the
 * uplink's whole switch side: ARP replies and neighbour advertisements
 * snooped on their way to the stack, tunnel traffic to us decapsulated
 * when its flow is decided or sent to the pipeline tagged with the
 * uplink's port, the rest the host's. Without one (the tests' test runs,
 * an uplink with its XDP program) only the decapsulation. */
SEC("tc")
int xvs_tc_uplink(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ingress_ifindex;
	int switch_side = bpf_map_lookup_elem(&ports, &ifindex) != 0;
	__be16 et;
	int r;

	if (skb->vlan_present || bpf_skb_load_bytes(skb, 12, &et, 2))
		return TC_ACT_OK;
	if (!switch_side) {
		r = decap(skb, et);
		return r < 0 ? TC_ACT_OK : r;
	}
	if (et == bpf_htons(ETH_P_ARP)) {
		__be16 op;

		if (!bpf_skb_load_bytes(skb, ETH_LEN + 6, &op, 2) &&
		    op == bpf_htons(XVS_ARP_REPLY))
			snoop_frame(skb, XVS_SNOOP_ARP);
		goto pass;
	}
	if (et == bpf_htons(ETH_P_IPV6)) {
		__u8 nh, type;

		if (!bpf_skb_load_bytes(skb, ETH_LEN + 6, &nh, 1) && nh == IPPROTO_ICMPV6 &&
		    !bpf_skb_load_bytes(skb, ETH_LEN + 40, &type, 1) &&
		    type == XVS_ND_NEIGHBOR_ADVERT) {
			snoop_frame(skb, XVS_SNOOP_ND);
			goto pass;
		}
	}
	if (!ours(skb, et))
		goto pass;
	r = decap(skb, et);
	if (r >= 0)
		return r;
	count(XVS_CNT_UPLINK_REDIRECTED);
	return to_pipeline(skb);
pass:
	count(XVS_CNT_UPLINK_PASSED);
	return TC_ACT_OK;
}
