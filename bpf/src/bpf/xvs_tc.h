/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared between xvs_tc.bpf.c and the Rust loader (src/tc.rs mirrors
 * every constant and struct here; a test there checks the sizes). */
#ifndef XVS_TC_H
#define XVS_TC_H

#define XVS_TC_MAX_FLOWS 65536
/* The longest outer header a flow may push: Ethernet, IPv6, UDP and a
 * Geneve header with options. */
#define XVS_TC_MAX_HDR 128

enum xvs_tc_kind {
	/* Out of another port as it is. */
	XVS_TC_OUTPUT = 1,
	/* The template in front, then out of the uplink. */
	XVS_TC_PUSH = 2,
};

/* A flow as the pipeline's flow key has it, for the fields a frame of a
 * plain (untagged, Ethernet + IPv4/IPv6 + TCP/UDP) flow fills: an entry
 * holds the decision the pipeline made for exactly this key. Addresses
 * are 16 bytes (IPv4 as ::ffff:a.b.c.d), everything in network order. */
struct xvs_tc_key {
	__u32 ifindex;
	__u8 dl_dst[6];
	__u8 dl_src[6];
	__be16 eth_type;
	__u8 ip_proto;
	__u8 ip_tos;
	__u8 nw_src[16];
	__u8 nw_dst[16];
	__be16 tp_src;
	__be16 tp_dst;
};

/* A tunnel packet's flow, for decapsulation on the uplink: the outer
 * addresses (remote VTEP, ours; IPv4 as ::ffff:a.b.c.d), the UDP
 * destination port, the tunnel header's 8 bytes as they are (VXLAN flags
 * and VNI, reserved bits included; Geneve's base header, no options),
 * and the inner frame's flow (`inner.ifindex` 0). */
struct xvs_tc_tunnel_key {
	__u8 outer_src[16];
	__u8 outer_dst[16];
	__u8 tun_hdr[8];
	__be16 udp_dst;
	__u16 pad;
	struct xvs_tc_key inner;
};

/* What to do with it, written by userspace; the counters at the end by
 * the program. Multi-byte numbers in host order unless they say be. */
struct xvs_tc_action {
	__u32 out_ifindex;
	__u8 kind;
	__u8 v6;
	__u8 tos_inherit;
	__u8 base_tos;
	__u16 hdr_len;
	__u16 udp_off;
	/* The outer IPv4 checksum with a zero total length (the template's
	 * base, as `Template::push` updates it). */
	__u16 base_csum;
	__be16 src_port;
	/* XVS_TC_PUSH: the longest outer IP packet the uplink takes (its
	 * MTU). A frame (or a super-packet's segment) that would exceed it
	 * goes to the pipeline, which answers it with ICMP. */
	__u16 max_ip_len;
	__u16 pad[3];
	__u64 packets;
	__u64 bytes;
	__u64 last_used_ns;
	__u8 hdr[XVS_TC_MAX_HDR];
};

/* A guest port whose misses go to the AF_XDP pipeline (`ports`, by the
 * port's ifindex): a frame the program does not take is tagged with an
 * 802.1ad tag whose VID is the port's number and sent to the miss pair's
 * near end, whose far end has the port XDP program and the workers'
 * sockets. Written by userspace; the counters by the program. */
struct xvs_tc_port {
	__u32 miss_ifindex;
	__u16 port_no;
	__u16 pad;
	/* Frames sent to the pipeline, and frames lost on the way (a failed
	 * tag push or redirect). */
	__u64 misses;
	__u64 miss_errors;
};

#endif
