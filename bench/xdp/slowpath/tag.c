// bench/xdp/slowpath/run.sh's TC program on the guest port's ingress:
// every frame gets an 802.1ad tag whose VID is the port's number (PORT)
// and goes out of the slow-path veth (SLOW_IFINDEX), super-packets whole.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#define SEC(s) __attribute__((section(s), used))
#define htons(x) __builtin_bswap16(x)
static long (*const bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)BPF_FUNC_redirect;
static long (*const bpf_skb_vlan_push)(struct __sk_buff *skb, __be16 proto, __u16 tci) = (void *)BPF_FUNC_skb_vlan_push;
char LICENSE[] SEC("license") = "GPL";

SEC("tc/tag")
int tag(struct __sk_buff *skb)
{
	if (bpf_skb_vlan_push(skb, htons(0x88a8), PORT))
		return TC_ACT_SHOT;
	return bpf_redirect(SLOW_IFINDEX, 0);
}
