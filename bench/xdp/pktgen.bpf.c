// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
//
// xvs_pktgen: the send program of xvs-pktgen's XDP engine. Userspace runs
// it with BPF_PROG_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES):
// the kernel copies flow 0's frame into page-pool pages once, runs this
// program `repeat` times over them, and transmits every frame it returns
// XDP_TX for out of the ingress interface given in the context.
//
// The kernel initialises a page only when it first hands it out; after
// that the page keeps whatever the last run wrote. So every run writes all
// the words in which flows differ (ports, addresses, IPv4 id, checksums,
// the flow number in the payload: whatever the loader found differing),
// whole, from the flow's table entry: the frame then equals the one the
// AF_XDP engine would send for that flow, checksums included, whatever the
// page held before. Flows go round robin, as in the AF_XDP engine.
//
// The loader also attaches this program to `lo` (generic mode), where it
// passes every frame: BPF_PROG_RUN puts a program into the kernel's XDP
// dispatcher for the length of a call and takes it out at the end, which
// waits for an RCU grace period (about 25 ms here, CPU idle) unless the
// program is attached somewhere and so stays in. Frames whose ingress
// interface is not the configured one are therefore left alone.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "pktgen.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_pktgen_cfg);
} cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_PKTGEN_MAX_FLOWS);
	__type(key, __u32);
	__type(value, struct xvs_pktgen_flow);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_pktgen_state);
} state SEC(".maps");

SEC("xdp")
int xvs_pktgen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct xvs_pktgen_state *st = bpf_map_lookup_elem(&state, &zero);
	struct xvs_pktgen_cfg *c = bpf_map_lookup_elem(&cfg, &zero);
	if (!c || ctx->ingress_ifindex != c->ifindex)
		return XDP_PASS;
	if (!st)
		return XDP_ABORTED;
	if (c->flows == 0)
		goto abort;
	__u32 flow = st->next;
	if (flow >= c->flows)
		flow = 0;
	st->next = flow + 1 < c->flows ? flow + 1 : 0;
	struct xvs_pktgen_flow *f = bpf_map_lookup_elem(&flows, &flow);
	if (!f)
		goto abort;
	__u32 n = c->nwords;
	for (__u32 i = 0; i < XVS_PKTGEN_MAX_WORDS; i++) {
		if (i >= n)
			break;
		__u32 off = c->off[i];
		if (off > XVS_PKTGEN_MAX_OFF)
			goto abort;
		void *p = data + off;
		if (p + 2 > data_end)
			goto abort;
		*(__u16 *)p = f->w[i];
	}
	return XDP_TX;
abort:
	__sync_fetch_and_add(&st->aborted, 1);
	return XDP_ABORTED;
}
