/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The uplink's maps and their counter helper, in one place for both
 * objects that declare them: xvs.bpf.c's xvs_uplink (XDP) and
 * xvs_tc.bpf.c's xvs_tc_uplink (TC, xvsd --fastpath), whose loader makes
 * the XDP object reuse the TC object's maps (libbpf checks that their
 * type, sizes and flags agree: one declaration keeps them agreeing).
 * Include after xvs.h and the BPF helpers. */
#ifndef XVS_UPLINK_MAPS_H
#define XVS_UPLINK_MAPS_H

/* Destination addresses we terminate: local VTEPs and the groups of
 * multicast tunnels. Network byte order. Value unused (1). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_VTEPS);
	__type(key, __u32);
	__type(value, __u8);
} vtep4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_VTEPS);
	__type(key, struct in6_addr);
	__type(value, __u8);
} vtep6 SEC(".maps");

/* UDP destination ports we terminate, network byte order. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_TUNNEL_PORTS);
	__type(key, __u16);
	__type(value, __u8);
} tunnel_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, XVS_SNOOP_RING_BYTES);
} snoop SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);

	if (c)
		*c += 1;
}

#endif
