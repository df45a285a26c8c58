#!/usr/bin/env python3
"""Plots of scripts/service-bench.sh (the shapes of thesis Figs. 6.3-6.7, and opt-PSMR).

    python3 scripts/plot-service.py independent|dependent|mixed|threads|dist|opt|models CSV PNG

Every point is the median over the CSV's rounds; bars and bands span the rounds' minimum to
maximum. The thesis plots CPU and a latency CDF too; the runs report latency percentiles, so
those stand in for both latency graphs.
"""
import csv
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

what, path, png = sys.argv[1:4]
with open(path) as f:
    rows = list(csv.DictReader(f))
if not rows:
    sys.exit(f"{path}: no rows")
med = statistics.median

NAMES = {"smr": "SMR", "spsmr": "sP-SMR", "psmr": "P-SMR", "opt-psmr": "opt-PSMR"}
COLORS = {"smr": "tab:grey", "spsmr": "tab:orange", "psmr": "tab:blue", "opt-psmr": "tab:green"}
WORKLOADS = {"Read": "read", "Update": "update", "ReadUpdate": "50% read, 50% update",
             "Insert": "insert/delete"}
CORES = 2


def workload(r):
    w = r["workload"]
    if w in WORKLOADS:
        return WORKLOADS[w]
    kind = "reads" if w.startswith("Mixed") else "reads/updates"
    return f"{float(r['dependent_pct']):g}% inserts/deletes, {kind}"


def lanes(r):
    return [float(x) for x in r["per_thread_kcps"].split("/")]


def group(key):
    """Rows by key(row), keys in the order they first ran."""
    by = defaultdict(list)
    for r in rows:
        by[key(r)].append(r)
    return by


def stat(rs, col, f=float):
    """Median, min and max of a column over a configuration's rounds."""
    xs = [f(r[col]) for r in rs]
    return med(xs), min(xs), max(xs)


def band(ax, xs, groups, col, scale=1.0, **kw):
    """A median line over xs with a min-max band."""
    s = [stat(g, col) for g in groups]
    line, = ax.plot(xs, [m * scale for m, _, _ in s], marker="o", **kw)
    ax.fill_between(xs, [lo * scale for _, lo, _ in s], [hi * scale for _, _, hi in s],
                    color=line.get_color(), alpha=0.15, linewidth=0)
    return line


def series_name(e, w):
    return NAMES[e] if e == "smr" else f"{NAMES[e]}, {w} worker{'s' if w != '1' else ''}"


def bars(title):
    """Figs. 6.3 and 6.4: one bar per configuration, grouped by workload."""
    by = group(lambda r: (workload(r), r["exec"], r["workers"]))
    loads = list(dict.fromkeys(k[0] for k in by))
    series = list(dict.fromkeys(k[1:] for k in by))
    fig, (thr, lat, per) = plt.subplots(1, 3, figsize=(15, 4.5))
    width = 0.8 / len(series)
    # An exec's first worker count in full colour, its others paler.
    counts = defaultdict(list)
    for e, w in series:
        counts[e].append(w)
    for gi, load in enumerate(loads):
        for si, (e, w) in enumerate(series):
            rs = by.get((load, e, w))
            if not rs:
                continue
            x = gi + (si - (len(series) - 1) / 2) * width
            m, lo, hi = stat(rs, "kcps")
            shade = 1 - 0.45 * min(counts[e].index(w), 1)
            thr.bar(x, m, width, yerr=[[m - lo], [hi - m]], color=COLORS[e], alpha=shade,
                    label=series_name(e, w) if gi == 0 else None)
            for col, mark in [("p50_us", "o"), ("p99_us", "^"), ("p999_us", "s")]:
                lat.scatter(x, stat(rs, col)[0] / 1000, color=COLORS[e], marker=mark,
                            label=col[:-3] if gi == 0 and si == 0 else None)
            # What each worker lane executed (median over rounds, lane by lane), stacked.
            bottom = 0
            for li, k in enumerate(med(v) for v in zip(*[lanes(r) for r in rs])):
                per.bar(x, k, width, bottom=bottom, color=COLORS[e], alpha=shade,
                        edgecolor="black", linewidth=0.5)
                if k > 0:
                    per.text(x, bottom + k / 2, str(li), ha="center", va="center", fontsize=7)
                bottom += k
    for ax in (thr, lat, per):
        ax.set_xticks(range(len(loads)), loads)
    thr.set_ylabel("Kcps (median)")
    thr.set_title("throughput")
    thr.set_ylim(top=thr.get_ylim()[1] * 1.3)
    thr.legend(fontsize=7, ncol=2, loc="upper left")
    lat.set_ylabel("latency (ms)")
    lat.set_yscale("log")
    lat.set_title("latency percentiles (each the median over rounds)")
    lat.legend(fontsize=7, title="marker", title_fontsize=7)
    per.set_ylabel("Kcps executed per worker lane (stacked)")
    per.set_title("replica 0's worker lanes (lane number inside)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def break_even(pcts, psmr, smr):
    """The first dependent percentage at which P-SMR's median falls to SMR's, interpolated."""
    ratio = [p / s for p, s in zip(psmr, smr)]
    if ratio[0] < 1:
        return None, f"P-SMR below SMR already at {pcts[0]:g}% dependent"
    for (x0, r0), (x1, r1) in zip(zip(pcts, ratio), zip(pcts[1:], ratio[1:])):
        if r1 < 1 <= r0:
            return x0 + (r0 - 1) * (x1 - x0) / (r0 - r1), None
    return None, f"P-SMR at or above SMR up to {pcts[-1]:g}% dependent"


def mixed():
    """Fig. 6.5: throughput and latency against the percentage of dependent commands."""
    by = group(lambda r: (r["exec"], float(r["dependent_pct"])))
    execs = list(dict.fromkeys(e for e, _ in by))
    fig, (thr, lat) = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax in (thr, lat):  # before anything is drawn, so autoscaling's margins are symlog's
        ax.set_xscale("symlog", linthresh=1)
    for e in execs:
        pcts = sorted(p for x, p in by if x == e)
        gs = [by[(e, p)] for p in pcts]
        w = gs[0][0]["workers"]
        band(thr, pcts, gs, "kcps", color=COLORS[e], label=series_name(e, w))
        band(lat, pcts, gs, "p50_us", 1e-3, color=COLORS[e], label=f"{NAMES[e]} p50")
        lat.plot(pcts, [stat(g, "p99_us")[0] / 1000 for g in gs], color=COLORS[e],
                 linestyle=":", label=f"{NAMES[e]} p99")
    if "psmr" in execs and "smr" in execs:
        pcts = sorted(p for e, p in by if e == "psmr" and ("smr", p) in by)
        x, note = break_even(pcts, [stat(by[("psmr", p)], "kcps")[0] for p in pcts],
                             [stat(by[("smr", p)], "kcps")[0] for p in pcts])
        if x is not None:
            thr.axvline(x, color="black", linestyle="--", linewidth=1)
            thr.annotate(f"{x:.1f}%", (x, 0), xycoords=("data", "axes fraction"),
                         xytext=(3, 3), textcoords="offset points", fontsize=8)
            note = f"P-SMR falls to SMR at ~{x:.1f}% dependent"
        thr.set_title(note, fontsize=10)
        print(note)
    ticks = sorted({p for _, p in by})
    for ax in (thr, lat):
        ax.set_xticks(ticks, [f"{p:g}" for p in ticks])
        ax.set_xlabel("dependent commands (inserts and deletes), % of all; the rest reads")
        ax.legend(fontsize=7)
    thr.set_ylabel("Kcps (median)")
    thr.set_ylim(bottom=0)
    lat.set_ylabel("latency (ms)")
    lat.set_yscale("log")
    fig.suptitle("Mixed workloads (6.5.5): where P-SMR's parallelism stops paying")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def scaling(ax_thr, ax_norm, by, line_style, suffix_of):
    """Throughput and normalized per-thread throughput against workers, per (exec, keys)."""
    for ax in (ax_thr, ax_norm):
        ax.set_xscale("log", base=2)
    for e, k in dict.fromkeys((e, k) for e, k, _ in by):
        ws = sorted({int(w) for x, y, w in by if (x, y) == (e, k)})
        gs = [by[(e, k, str(w))] for w in ws]
        style = {"color": COLORS[e], "linestyle": line_style(k)}
        if e == "smr":
            ax_thr.axhline(stat(gs[0], "kcps")[0], label=f"SMR{suffix_of(k)}", **style)
            continue
        band(ax_thr, ws, gs, "kcps", label=f"{NAMES[e]}{suffix_of(k)}", **style)
        if 1 in ws:
            one = stat(gs[0], "kcps")[0]
            ax_norm.plot(ws, [stat(g, "kcps")[0] / w / one for g, w in zip(gs, ws)], marker="o",
                         label=f"{NAMES[e]}{suffix_of(k)}", **style)
    ax_norm.axhline(1, color="black", linewidth=0.8, linestyle=":")
    for ax in (ax_thr, ax_norm):
        ax.axvline(CORES, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xticks([1, 2, 4], ["1", "2", "4"])
        ax.set_xlabel(f"worker threads (sP-SMR: besides its scheduler; {CORES} cores)")
        ax.legend(fontsize=7)
    ax_thr.set_ylabel("Kcps (median)")
    ax_thr.set_ylim(0, ax_thr.get_ylim()[1] * 1.3)  # room for the legend
    ax_norm.set_ylabel("per-thread Kcps / 1 thread's Kcps")
    ax_norm.set_ylim(bottom=0)


def threads():
    """Fig. 6.6: scaling with threads, independent (top) and dependent (bottom) commands."""
    by_load = defaultdict(dict)
    for key, rs in group(lambda r: (workload(r), r["exec"], r["keys"], r["workers"])).items():
        by_load[key[0]][key[1:]] = rs
    fig, axes = plt.subplots(len(by_load), 2, figsize=(12, 4 * len(by_load)), squeeze=False)
    for (load, by), (thr, norm) in zip(by_load.items(), axes):
        scaling(thr, norm, by, lambda k: "-", lambda k: "")
        thr.set_title(f"{load}: throughput")
        norm.set_title(f"{load}: normalized per-thread throughput")
    fig.suptitle("Scalability (6.5.6)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def style_of(keys):
    return "-" if keys == "uniform" else "--"


def dist():
    """Fig. 6.7: uniform against Zipfian keys as threads are added; and the lanes' imbalance."""
    by = group(lambda r: (r["exec"], r["keys"], r["workers"]))
    fig, (thr, norm, imb) = plt.subplots(1, 3, figsize=(16, 4.5))
    scaling(thr, norm, by, style_of, lambda k: f", {k}")
    for (e, k) in dict.fromkeys((e, k) for e, k, _ in by):
        ws = sorted({int(w) for x, y, w in by if (x, y) == (e, k)})
        if e == "smr":
            continue
        ratio = []
        for w in ws:
            ls = [med(v) for v in zip(*[lanes(r) for r in by[(e, k, str(w))]])]
            ratio.append(max(ls) / statistics.mean(ls) if sum(ls) else 0)
        imb.plot(ws, ratio, marker="o", color=COLORS[e], linestyle=style_of(k),
                 label=f"{NAMES[e]}, {k}")
    imb.axhline(1, color="black", linewidth=0.8, linestyle=":")
    imb.set_xscale("log", base=2)
    imb.set_xticks([1, 2, 4], ["1", "2", "4"])
    imb.set_xlabel("worker threads")
    imb.set_ylabel("busiest lane's Kcps / mean lane's (1 = even)")
    imb.legend(fontsize=7)
    thr.set_title("throughput")
    norm.set_title("normalized per-thread throughput")
    imb.set_title("load balance over the worker lanes")
    loads = ", ".join(dict.fromkeys(workload(r) for r in rows))
    fig.suptitle(f"Skewed workloads (6.5.7): {loads}; solid uniform keys, dashed Zipfian")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def opt():
    """opt-PSMR against P-SMR and SMR as inserts and deletes grow, with opt-PSMR's conflicts."""
    by = group(lambda r: (r["exec"], float(r["dependent_pct"])))
    fig, (thr, lat, conf) = plt.subplots(1, 3, figsize=(16, 4.5))
    for e in dict.fromkeys(e for e, _ in by):
        pcts = sorted(p for x, p in by if x == e)
        gs = [by[(e, p)] for p in pcts]
        label = series_name(e, gs[0][0]["workers"])
        band(thr, pcts, gs, "kcps", color=COLORS[e], label=label)
        band(lat, pcts, gs, "p50_us", 1e-3, color=COLORS[e], label=f"{NAMES[e]} p50")
        if e == "opt-psmr":
            # Conflicts count the warm-up as well, completed only the measured seconds: scale
            # completed up to the whole run.
            def share(r):
                total = float(r["completed"]) * (float(r["secs"]) + float(r["warmup_s"]))
                return 100 * float(r["conflicts"]) / (total / float(r["secs"]))
            s = [[share(r) for r in g] for g in gs]
            conf.plot(pcts, [med(x) for x in s], marker="o", color=COLORS[e],
                      label="of all commands")
            conf.fill_between(pcts, [min(x) for x in s], [max(x) for x in s], color=COLORS[e],
                              alpha=0.15, linewidth=0)
            of_dependent = [100 * med(x) / p if p else float("nan") for x, p in zip(s, pcts)]
            conf.plot(pcts, of_dependent, marker="s", color=COLORS[e], linestyle="--",
                      label="of inserts and deletes")
    for ax in (thr, lat, conf):
        ax.set_xlabel("inserts and deletes, % of all commands; the rest reads")
        ax.legend(fontsize=7)
    thr.set_ylabel("Kcps (median)")
    thr.set_ylim(bottom=0)
    lat.set_ylabel("latency p50 (ms)")
    lat.set_yscale("log")
    conf.set_ylabel("opt-PSMR conflicts, % (approx.)")
    conf.set_title("opt-PSMR's conflicts: re-multicast to every lane")
    conf.set_ylim(bottom=0)
    fig.suptitle("Optimistic P-SMR on insert-heavy workloads: inserts and deletes run in their "
                 "key's lane unless they conflict")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if what == "independent":
    bars("Independent commands (6.5.3, Fig. 6.3): one executing replica, MPL 2 on 2 cores")
elif what == "dependent":
    bars("Dependent commands (6.5.4, Fig. 6.4): inserts and deletes, which depend on all")
elif what == "models":
    bars("SMR against P-SMR, read-only")
elif what == "mixed":
    mixed()
elif what == "threads":
    threads()
elif what == "dist":
    dist()
elif what == "opt":
    opt()
else:
    sys.exit(f"unknown experiment {what}")
print(f"wrote {png}")
