// The ceiling of bench/compare.sh: every frame arriving on the interface
// this program is attached to leaves by the interface OUT_IFINDEX
// (bpf_redirect, native XDP), untouched: no tunnel, no lookup.
// Compiled at run time by compare.sh, once per direction:
//   clang -O2 -g -target bpf -I/usr/include/$(uname -m)-linux-gnu \
//         -DOUT_IFINDEX=N -c redirect.c -o redirect-N.o
// No libbpf headers needed (Debian's iproute2 loads it: `ip link set dev X
// xdp obj redirect-N.o sec xdp`).
#include <linux/bpf.h>

#ifndef OUT_IFINDEX
#error "compile with -DOUT_IFINDEX=<ifindex of the output interface>"
#endif

static long (*const bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)BPF_FUNC_redirect;

__attribute__((section("xdp"), used)) int xdp_redirect_out(struct xdp_md *ctx)
{
	(void)ctx;
	return bpf_redirect(OUT_IFINDEX, 0);
}

char _license[] __attribute__((section("license"), used)) = "GPL";
