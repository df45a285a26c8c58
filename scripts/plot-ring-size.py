"""Plots scripts/ring-size-bench.sh's CSV like thesis Fig. 3.9: p50 and p99 latency against the
number of processes, one line per protocol and storage mode, medians over repetitions.

    plot-ring-size.py CSV PNG
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
    runs[(r["protocol"], r["mode"], int(r["processes"]))].append(r)

fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharex=True)
styles = {("uring", "memory"): "o--", ("uring", "sync"): "o-",
          ("mring", "memory"): "s--", ("mring", "sync"): "s-"}
for (protocol, mode), style in styles.items():
    sizes = sorted(k[2] for k in runs if k[:2] == (protocol, mode))
    if not sizes:
        continue
    med = lambda key, n: statistics.median(float(r[key]) for r in runs[(protocol, mode, n)])  # noqa: E731
    label = f"{'U-Ring' if protocol == 'uring' else 'M-Ring'} {mode}"
    axes[0].plot(sizes, [med("mbit_per_s", n) for n in sizes], style, label=label)
    for ax, key in zip(axes[1:], ["latency_us_p50", "latency_us_p99"]):
        ax.plot(sizes, [med(key, n) / 1000 for n in sizes], style, label=label)
for ax, ylabel in zip(axes, ["delivered throughput (Mbit/s)", "p50 latency (ms)", "p99 latency (ms)"]):
    ax.set_xlabel("processes (all acceptors; rings of f+1)")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend()
axes[1].set_yscale("log")
axes[2].set_yscale("log")
fig.suptitle("Synchronous disk writes as the ring grows: 1 KB values, fixed values outstanding per proposer")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print(f"wrote {sys.argv[2]}")
