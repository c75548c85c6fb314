// bench/xdp/slowpath/run.sh's XDP program on the slow path's far end,
// standing in for the one that would redirect to an AF_XDP socket:
// counts frames tagged with port 7 (stats[0]), the longest (stats[1]),
// untagged ones (stats[2]) and other ports (stats[3]); strips the tag.
#include <linux/bpf.h>
#define SEC(s) __attribute__((section(s), used))
#define htons(x) __builtin_bswap16(x)
static long (*const bpf_xdp_adjust_head)(struct xdp_md *ctx, int delta) = (void *)BPF_FUNC_xdp_adjust_head;
static void *(*const bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
char LICENSE[] SEC("license") = "GPL";
/* 0: tagged frames, 1: max length, 2: untagged, 3: wrong port */
struct { int (*type)[BPF_MAP_TYPE_ARRAY]; int (*key_size)[4]; int (*value_size)[8]; int (*max_entries)[4]; } stats SEC(".maps");
SEC("xdp")
int strip(struct xdp_md *ctx)
{
	unsigned char *d = (void *)(long)ctx->data, *e = (void *)(long)ctx->data_end;
	__u32 k;
	__u64 *v;
	if (d + 18 > e) return XDP_PASS;
	if (*(__u16 *)(d + 12) != htons(0x88a8)) { k = 2; v = bpf_map_lookup_elem(&stats, &k); if (v) __sync_fetch_and_add(v, 1); return XDP_PASS; }
	k = *(__u16 *)(d + 14) == htons(7) ? 0 : 3;
	v = bpf_map_lookup_elem(&stats, &k); if (v) __sync_fetch_and_add(v, 1);
	k = 1; v = bpf_map_lookup_elem(&stats, &k);
	if (v && (__u64)(e - d) > *v) *v = e - d;
	#pragma unroll
	for (int i = 11; i >= 0; i--) d[i + 4] = d[i];
	if (bpf_xdp_adjust_head(ctx, 4)) return XDP_DROP;
	return XDP_PASS;
}
