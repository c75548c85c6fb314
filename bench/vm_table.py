#!/usr/bin/env python3
"""bench/vm.sh's table: medians per point over the runs, and ratios.

Usage: bench/vm_table.py OUT   (OUT holds pps.jsonl, tcp.jsonl, meta.txt)
"""
import json
import os
import statistics
import sys

out = sys.argv[1]


def rows(name):
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return []
    return [json.loads(l) for l in open(p) if l.strip()]


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def rng(vals):
    vals = [v for v in vals if v is not None]
    return f"{min(vals):.3f}-{max(vals):.3f}" if vals else "-"


def f(v, fmt="{:.3f}"):
    return "-" if v is None else fmt.format(v)


def ratio(a, b):
    return None if a is None or not b else a / b


meta = open(os.path.join(out, "meta.txt")).read() if os.path.exists(os.path.join(out, "meta.txt")) else ""
print("# Guest on a vhost-user port: xvs against OVS-DPDK and QEMU tap + bridge + kernel vxlan (bench/vm.sh)\n")
print("```\n" + meta.strip() + "\n```\n")

pps = rows("pps.jsonl")
if pps:
    print("## Packets per second: testpmd virtio-user (txonly) → switch → VXLAN → sink\n")
    print("Mpps = frames the switch sent on u0 over the window; median [min-max] over the runs; "
          "switch busy: xvsd worker busy share / OVS PMD processing-cycles share.\n")
    print("| contender | size (B) | Mpps median [min-max] | runs ok | switch busy % | ns (xvs) or cycles (OVS) per packet | other load % (median) |")
    print("|---|---|---|---|---|---|---|")
    summ = {}
    for c in ["xvs", "xvsold", "ovs", "ovsnh"]:
        for size in sorted({r["size"] for r in pps}):
            g = [r for r in pps if r["contender"] == c and r["size"] == size]
            if not g:
                continue
            ok = [r for r in g if r.get("status") == "ok"]
            m = med([r["mpps"] for r in ok])
            summ[(c, size)] = m
            per = med([r.get("switch_busy_ns_per_pkt") or r.get("ovs_cycles_per_pkt") for r in ok])
            name = {"ovs": "OVS-DPDK, hugepages", "ovsnh": "OVS-DPDK, no hugepages",
                    "xvsold": "xvs, XVSD_OLD_BIN"}.get(c, c)
            name += f" ({ok[0].get('ovs_uplink')} uplink)" if c.startswith("ovs") and ok else ""
            fails = [r.get("reason") for r in g if r.get("status") != "ok"]
            print(f"| {name} | {size} | {f(m)} [{rng([r['mpps'] for r in ok])}] | {len(ok)}/{len(g)} "
                  f"| {f(med([r.get('switch_busy_pct') for r in ok]), '{:.0f}')} | {f(per, '{:.0f}')} "
                  f"| {f(med([r.get('other_load_pct') for r in g]), '{:.0f}')} |")
            for reason in sorted(set(x for x in fails if x)):
                print(f"|  | | not counted: {reason} | | | | |")
    print()
    others = [o for o in ("ovs", "ovsnh", "xvsold") if any(r["contender"] == o for r in pps)]
    print("| size (B) | " + " | ".join(f"xvs/{o} Mpps | per round" for o in others) + " |")
    print("|---|" + "---|---|" * len(others))
    for size in sorted({r["size"] for r in pps}):
        cells = []
        for o in others:
            per_run = []
            for run in sorted({r["run"] for r in pps}):
                a = [r["mpps"] for r in pps if r["contender"] == "xvs" and r["size"] == size and r["run"] == run and r.get("status") == "ok"]
                b = [r["mpps"] for r in pps if r["contender"] == o and r["size"] == size and r["run"] == run and r.get("status") == "ok"]
                if a and b and b[0]:
                    per_run.append(f"{a[0] / b[0]:.2f}")
            cells += [f(ratio(summ.get(("xvs", size)), summ.get((o, size))), "{:.2f}"), ", ".join(per_run) or "-"]
        print(f"| {size} | " + " | ".join(cells) + " |")
    print()

tcp = rows("tcp.jsonl")
for r in tcp:
    # Host CPU for the traffic: QEMU + the switch's process + softirq
    # (older rows lack the field; computed the same way as vm.sh does).
    if r.get("gbps") and "qemu_cpu_pct" in r and "host_cores_per_gbps" not in r:
        host = (r["qemu_cpu_pct"] + r.get("switch_cpu_pct", 0)) / 100 + r.get("cores_softirq", 0)
        r["host_cores"], r["host_cores_per_gbps"] = host, host / r["gbps"]
if tcp:
    print("## TCP: a TCG guest (QEMU, 1 vCPU, pinned to core 0) ↔ kernel vxlan remote, iperf3, 1 stream\n")
    print("Medians over the runs. cores/Gbit/s = both cores' busy time (/proc/stat, softirq included) "
          "per second, per Gbit/s (other processes' load included: see its column); host cores = "
          "QEMU + the switch's process + softirq, without other processes. vCPU = QEMU's busiest thread's CPU share.\n")
    print("| contender | direction | Gbit/s median [min-max] | runs ok | retrans | cores busy | cores/Gbit/s | host cores | host cores/Gbit/s | core0 % | core1 % | QEMU % (vCPU thread %) | switch process % | other load % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    summ = {}
    for c in ["xvs", "tap", "ovs"]:
        for dr in ["guest2remote", "remote2guest"]:
            g = [r for r in tcp if r["contender"] == c and r["direction"] == dr]
            if not g:
                continue
            ok = [r for r in g if r.get("status") == "ok"]
            gb = med([r["gbps"] for r in ok])
            cpg = med([r.get("host_cores_per_gbps") for r in ok])
            summ[(c, dr)] = (gb, cpg)
            name = c + (f" ({ok[0].get('switch_poll')})" if c in ("xvs", "ovs") and ok else "")
            top = med([r.get("qemu_top_thread_pct") for r in ok])
            topname = next((r.get("qemu_top_thread") for r in ok if r.get("qemu_top_thread")), "")
            print(f"| {name} | {dr} | {f(gb)} [{rng([r['gbps'] for r in ok])}] | {len(ok)}/{len(g)} "
                  f"| {f(med([r.get('retransmits') for r in ok]), '{:.0f}')} | {f(med([r.get('cores_busy') for r in ok]), '{:.2f}')} "
                  f"| {f(med([r.get('cores_per_gbps') for r in ok]), '{:.2f}')} "
                  f"| {f(med([r.get('host_cores') for r in ok]), '{:.2f}')} | {f(cpg, '{:.2f}')} "
                  f"| {f(med([r.get('cpu0_busy_pct') for r in ok]), '{:.0f}')} "
                  f"| {f(med([r.get('cpu1_busy_pct') for r in ok]), '{:.0f}')} "
                  f"| {f(med([r.get('qemu_cpu_pct') for r in ok]), '{:.0f}')} ({f(top, '{:.0f}')} {topname}) "
                  f"| {f(med([r.get('switch_cpu_pct') for r in ok]), '{:.0f}')} "
                  f"| {f(med([r.get('other_load_pct') for r in g]), '{:.0f}')} |")
            for reason in sorted(set(str(r.get("reason"))[:200] for r in g if r.get("status") != "ok")):
                print(f"|  | | failed: {reason} | | | | | | | | | | | |")
    print()
    print("| direction | xvs/tap Gbit/s | xvs/OVS Gbit/s | host cores/Gbit/s xvs/tap (lower: xvs cheaper) | host cores/Gbit/s xvs/OVS |")
    print("|---|---|---|---|---|")
    for dr in ["guest2remote", "remote2guest"]:
        x = summ.get(("xvs", dr), (None, None))
        t = summ.get(("tap", dr), (None, None))
        o = summ.get(("ovs", dr), (None, None))
        print(f"| {dr} | {f(ratio(x[0], t[0]), '{:.2f}')} | {f(ratio(x[0], o[0]), '{:.2f}')} "
              f"| {f(ratio(x[1], t[1]), '{:.2f}')} | {f(ratio(x[1], o[1]), '{:.2f}')} |")
