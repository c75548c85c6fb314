/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared between xvs.bpf.c and the Rust loader (src/lib.rs mirrors every
 * constant and struct here; a test there checks the sizes). */
#ifndef XVS_H
#define XVS_H

#define XVS_MAX_QUEUES 64
#define XVS_MAX_VTEPS 16
#define XVS_MAX_TUNNEL_PORTS 16
#define XVS_SNOOP_RING_BYTES (256 * 1024)
#define XVS_SNOOP_MAX 128
/* The frame may move back at most 255 - 32 (struct xdp_frame) bytes; the
 * mask keeps the verifier's view bounded too. */
#define XVS_MAX_PORT_HEADROOM_MASK 0x7f

#define XVS_ARP_REPLY 2
#define XVS_ND_NEIGHBOR_ADVERT 136

enum xvs_snoop_kind {
	XVS_SNOOP_ARP = 1,
	XVS_SNOOP_ND = 2,
};

enum xvs_counter {
	XVS_CNT_PORT_REDIRECTED = 0,
	XVS_CNT_PORT_NO_SOCKET = 1,
	XVS_CNT_PORT_HEADROOM_FAILED = 2,
	XVS_CNT_UPLINK_REDIRECTED = 3,
	XVS_CNT_UPLINK_NO_SOCKET = 4,
	XVS_CNT_UPLINK_PASSED = 5,
	XVS_CNT_SNOOP_ARP = 6,
	XVS_CNT_SNOOP_ND = 7,
	XVS_CNT_SNOOP_LOST = 8,
	XVS_CNT_MAX = 9,
};

struct xvs_cfg {
	__u32 port_headroom;
};

struct xvs_snoop {
	__u32 ifindex;
	__u16 kind;
	__u16 len;
	__u8 data[XVS_SNOOP_MAX];
};

#endif
