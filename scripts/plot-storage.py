"""Plots scripts/storage-bench.sh's (or netns-storage-bench.sh's) CSV: p50 and p99 latency against
throughput, one line per acceptor storage mode, medians over repetitions (thesis Fig. 5.1).

    plot-storage.py CSV PNG [TITLE]
"""
import csv
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = list(csv.DictReader(open(sys.argv[1])))
runs = defaultdict(list)
for r in rows:
    runs[(r["mode"], int(r["outstanding_per_proposer"]))].append(r)

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
for mode, style in [("memory", "o-"), ("async", "s--"), ("sync", "^-")]:
    points = sorted(k[1] for k in runs if k[0] == mode)
    if not points:
        continue
    med = lambda key, k: statistics.median(float(r[key]) for r in runs[(mode, k)])  # noqa: E731
    x = [med("mbit_per_s", k) for k in points]
    for ax, key in zip(axes, ["latency_us_p50", "latency_us_p99"]):
        ax.plot(x, [med(key, k) / 1000 for k in points], style, label=mode)
for ax, title in zip(axes, ["p50", "p99"]):
    ax.set_xlabel("delivered throughput (Mbit/s)")
    ax.set_ylabel(f"{title} latency (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
title = "3-node U-Ring Paxos, 1 KB values, 32 KB batches: load raised by values outstanding"
fig.suptitle(sys.argv[3] if len(sys.argv) > 3 else title)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print(f"wrote {sys.argv[2]}")
