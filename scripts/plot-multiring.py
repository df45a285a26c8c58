#!/usr/bin/env python3
"""Plots of scripts/multiring-bench.sh (thesis Figs. 5.4-5.11).

    python3 scripts/plot-multiring.py scaling|delta|m|lambda|halt CSV PNG
"""
import csv
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

what, path, png = sys.argv[1:4]
rows = list(csv.DictReader(open(path)))
med = statistics.median


def scaling():
    by = defaultdict(lambda: ([], []))
    for r in rows:
        key = "one ring" if r["config"] == "one-ring" else f"{r['rings']} rings\n{r['subscribe']}"
        by[key][0].append(float(r["aggregate_mbit_per_s"]))
        by[key][1].append(float(r["merged_mbit_per_s"]))
    keys = list(by)
    fig, ax = plt.subplots(figsize=(9, 4))
    x = range(len(keys))
    ax.bar([i - 0.2 for i in x], [med(by[k][0]) for k in keys], 0.4, label="aggregate")
    ax.bar([i + 0.2 for i in x], [med(by[k][1]) for k in keys], 0.4, label="merged (one learner)")
    ax.set_xticks(list(x), keys)
    ax.set_ylabel("Mbit/s (median)")
    ax.set_title("Multi-Ring Paxos over loopback, 2 cores (5.4.3): 'one' = each learner one group")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def sweep(param, label):
    curves = defaultdict(lambda: defaultdict(list))
    for r in rows:
        curves[r[param]][float(r["rate_per_group"])].append(r)
    fig, (lat, cpu) = plt.subplots(1, 2, figsize=(11, 4))
    for value, by_rate in curves.items():
        rates = sorted(by_rate)
        thr = [med(float(r["merged_mbit_per_s"]) for r in by_rate[x]) for x in rates]
        p50 = [med(float(r["latency_us_p50"]) for r in by_rate[x]) / 1000 for x in rates]
        c = [med(float(r["busiest_ring_thread_cpu_pct"] or 0) for r in by_rate[x]) for x in rates]
        lat.plot(thr, p50, marker="o", label=f"{label} = {value}")
        cpu.plot([2 * x for x in rates], c, marker="o", label=f"{label} = {value}")
    lat.set_xlabel("merged throughput at the learner (Mbit/s)")
    lat.set_ylabel("latency p50 (ms)")
    lat.set_yscale("log")
    lat.legend()
    cpu.set_xlabel("offered load (messages/s, both groups)")
    cpu.set_ylabel("busiest ring thread CPU (%)")
    cpu.legend()
    fig.suptitle(f"Impact of {label} on Multi-Ring Paxos (2 rings, one learner of both)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def series(cases, title):
    fig, axes = plt.subplots(len(cases), 3, figsize=(14, 3.2 * len(cases)), squeeze=False)
    for row, case in zip(axes, cases):
        by = defaultdict(list)
        for r in rows:
            if r["case"] == case:
                by[r["lambda_per_s"]].append(r)
        for lam, rs in by.items():
            t = [int(r["t_ms"]) / 1000 for r in rs]
            label = f"lambda {lam}/s" if what == "lambda" else case
            row[0].plot(t, [int(r["delivered_msgs"]) * 10 for r in rs], label=label)
            row[1].plot(t, [max(int(r["latency_p50_us"]), 1) / 1000 for r in rs], label=label)
            q = [sum(int(x) for x in r["queued_instances"].split(";") if x) for r in rs]
            row[2].plot(t, q, label=label)
        offered = [r for r in rows if r["case"] == case and r["lambda_per_s"] == next(iter(by))]
        if offered:
            per_group = list(zip(*[[int(x) * 10 for x in r["offered_msgs"].split(";")] for r in offered]))
            tt = [int(r["t_ms"]) / 1000 for r in offered]
            for g, v in enumerate(per_group):
                row[0].plot(tt, v, linestyle=":", color="grey", label=f"offered, group {g}")
        row[0].set_ylabel(f"{case}\nmessages/s")
        row[1].set_ylabel("latency p50 (ms)")
        row[1].set_yscale("log")
        row[2].set_ylabel("instances queued for the merge")
        for ax in row:
            ax.set_xlabel("time (s)")
        row[0].legend(fontsize=7)
    axes[0][0].set_title("merged delivery")
    axes[0][1].set_title("latency")
    axes[0][2].set_title("learner buffer")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if what == "scaling":
    scaling()
elif what == "delta":
    sweep("delta", "Delta (us)")
elif what == "m":
    sweep("m", "M")
elif what == "lambda":
    series(["equal", "double", "oscillating"],
           "Impact of lambda (2 rings, one learner; rates raised every step)")
elif what == "halt":
    series(["ring-halted", "coordinator-stopped"],
           "Discontinued communication (5.4.7): ring 1 stopped for 3 s")
else:
    sys.exit(f"unknown experiment {what}")
print(f"wrote {png}")
