/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared between pktgen.bpf.c and the Rust loader (src/pktgen.rs mirrors
 * every constant and struct here; a test there checks the sizes). */
#ifndef XVS_PKTGEN_H
#define XVS_PKTGEN_H

/* Flows: as many as xvs-pktgen's AF_XDP engine builds frames for. */
#define XVS_PKTGEN_MAX_FLOWS 16384
/* 16-bit words in which flows may differ from flow 0 (a VXLAN frame that
 * varies everything xvs-pktgen can vary differs in 10). */
#define XVS_PKTGEN_MAX_WORDS 16
/* Bound on a word's offset, for the verifier: the frame lives in one page. */
#define XVS_PKTGEN_MAX_OFF 4094

/* Written by the loader before the first run, read by the program. */
struct xvs_pktgen_cfg {
	/* The interface the frames leave by: runs with another ingress
	 * interface pass the frame untouched (see pktgen.bpf.c). */
	__u32 ifindex;
	__u32 flows;
	__u32 nwords;
	__u32 pad;
	/* Byte offsets (even) of the words that differ between flows. */
	__u16 off[XVS_PKTGEN_MAX_WORDS];
};

/* The words of one flow, in network byte order, in cfg.off's order. */
struct xvs_pktgen_flow {
	__u16 w[XVS_PKTGEN_MAX_WORDS];
};

/* Written by the program only (one caller at a time: the loader runs
 * BPF_PROG_RUN from one thread, and the kernel runs the repeats of one
 * call on one CPU); read by the loader. */
struct xvs_pktgen_state {
	/* The flow the next run writes. */
	__u32 next;
	__u32 pad;
	/* Runs that returned XDP_ABORTED (a frame shorter than a word's
	 * offset, or no configuration): nothing was sent for them. */
	__u64 aborted;
};

#endif
