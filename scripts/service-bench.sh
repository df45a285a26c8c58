#!/usr/bin/env bash
# The replicated key-value store (thesis 6.5) on this machine, over loopback, with
# `ringsmr local --service kv` (clients in the same process, through the client library and TCP):
#
#   models   read-only commands on a 10-million-key tree: SMR against P-SMR (2 workers), one
#            executing replica, the groups on one ring; rounds alternate the two so they share
#            the machine's noise; the ratio is taken per round.
#   e2e      three SMR replicas, 64-byte commands, read-only and 10% inserts/deletes, with 1 and
#            50 commands outstanding per client: Kcps and latency percentiles.
#
# The shapes of the thesis' Figs. 6.3-6.7 at the scale of a 2-core machine. All of them: one
# executing replica (the ring's other two processes only order), the groups on one ring, a tree
# of PRELOAD keys (10 million, as in 6.5.2), 6 clients x 50 outstanding. MPL is 2, the cores;
# 4 shows oversubscription. Within a round every configuration runs once, in the same order, so
# the configurations share the machine's noise; plots take medians over rounds.
#
#   independent  Fig. 6.3: independent commands only, reads and (another run) updates on uniform
#                keys; SMR, sP-SMR, P-SMR and opt-PSMR at MPL 2.
#   dependent    Fig. 6.4: dependent commands only (inserts and deletes, which depend on all);
#                SMR, and sP-SMR, P-SMR, opt-PSMR with 1 worker (the thesis' best for them) and
#                with 2. opt-PSMR runs inserts and deletes optimistically in their key's lane.
#   mixed        Fig. 6.5: reads with 0, 1, 5, 10, 25, 50 and 100% inserts/deletes; SMR, sP-SMR
#                and P-SMR at MPL 2: where P-SMR falls to SMR (its break-even percentage).
#   threads      Fig. 6.6: 1, 2 and 4 workers, sP-SMR and P-SMR, independent (reads) and
#                dependent (inserts/deletes) commands, SMR as the reference; per-thread Kcps.
#   dist         Fig. 6.7: half reads, half updates, uniform and Zipfian (exponent 1) keys; SMR,
#                and sP-SMR and P-SMR with 1, 2 and 4 workers; per-thread Kcps shows the lanes'
#                imbalance. (opt-PSMR would run this workload exactly as P-SMR: only inserts and
#                deletes are optimistic; it is left out.)
#   opt          opt-PSMR against P-SMR (and SMR) on insert-heavy workloads: reads with 10, 25, 50
#                and 100% inserts/deletes at MPL 2; the rows' conflicts count the commands a lane
#                refused and the client multicast again to every lane.
#
#   scripts/service-bench.sh EXPERIMENT [OUT_DIR] [ROUNDS] [SECONDS]
#                  (defaults: bench/service, 3, 4)
#   PRELOAD=keys   the tree of every experiment but e2e (10000000; e2e: 1000000)
#   WARMUP=secs    warm-up before each run's measurement (1)
#
# Writes OUT_DIR/<experiment>.csv (one row per run, from each run's --json); plot it with
# scripts/plot-service.py.
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: service-bench.sh models|e2e|independent|dependent|mixed|threads|dist|opt [OUT_DIR] [ROUNDS] [SECONDS]"
what=${1:?$usage}
out=${2:-bench/service}
rounds=${3:-3}
secs=${4:-4}
warmup=${WARMUP:-1}
case $what in
  models | e2e | independent | dependent | mixed | threads | dist | opt) ;;
  *)
    echo "unknown experiment $what; $usage" >&2
    exit 2
    ;;
esac
mkdir -p "$out"
cargo build --release --locked --quiet
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/ringsmr")
csv=$out/$what.csv
# The first fourteen columns are those of the first version of this script; later ones follow them.
echo "round,exec,workers,replicas,workload,window,command_bytes,preload_keys,kcps,p50_us,p99_us,p999_us,\
per_thread_kcps,checksums_equal,keys,dependent_pct,clients,secs,warmup_s,completed,max_us,synchronous,\
conflicts,retries" > "$csv"

run() { # round, then ringsmr local arguments
  local round=$1
  shift
  "$bin" local --service kv --duration "$secs" --warmup "$warmup" --json "$@" | python3 -c '
import json, re, sys
r = json.loads(sys.stdin.readline())
l = r["latency_us"]
# The report names the workload and key choice as the program spells them ("Mixed { dependent_percent:
# 10.0 }", "Zipf { exponent: 1.0 }"); the extra columns give them as numbers and command-line words.
w = r["workload"]
m = re.search(r"dependent_percent: ([0-9.]+)", w)
dependent = float(m.group(1)) if m else 100.0 if w == "Insert" else 0.0
z = re.search(r"exponent: ([0-9.]+)", r["keys"])
keys = f"zipf:{float(z.group(1)):g}" if z else r["keys"].lower()
print(",".join(str(x) for x in [sys.argv[1], r["exec"], r["workers"], r["replicas"], w.replace(",", ";"),
      r["window"], r["command_bytes"], r["preload_keys"], round(r["kcps"], 1), l["p50"], l["p99"], l["p999"],
      "/".join(str(round(k, 1)) for k in r["per_thread_kcps"]), len(set(r["checksums"])) == 1,
      keys, f"{dependent:g}", r["clients"], round(r["secs"], 3), sys.argv[2], r["completed"], l["max"],
      r["synchronous"], r["conflicts"], r["retries"]]))
' "$round" "$warmup" >> "$csv"
}

# The setting of Figs. 6.3-6.7 (header).
one_replica() { # round, then more ringsmr local arguments
  local round=$1
  shift
  run "$round" --replicas 1 --service-rings 1 --clients 6 --preload "${PRELOAD:-10000000}" "$@"
}

# Medians over rounds of each configuration, in the order they ran.
summary() {
  python3 - "$csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
by = {}
for r in rows:
    by.setdefault((r["exec"], r["workers"], r["workload"], r["keys"]), []).append(r)
print(f"{'exec':9} {'workers':>7} {'workload':34} {'keys':8} {'Kcps':>8} {'p50 us':>7} {'p99 us':>7}"
      " per thread (Kcps)   conflicts")
for (e, w, wl, k), rs in by.items():
    med = lambda c: statistics.median(float(r[c]) for r in rs)
    lanes = [statistics.median(x) for x in zip(*[map(float, r["per_thread_kcps"].split("/")) for r in rs])]
    print(f"{e:9} {w:>7} {wl:34} {k:8} {med('kcps'):8.1f} {med('p50_us'):7.0f} {med('p99_us'):7.0f} "
          f"{'/'.join(f'{x:.1f}' for x in lanes):19} {med('conflicts'):.0f}")
PY
}

case $what in
  models)
    for round in $(seq 1 "$rounds"); do
      for exec in smr psmr; do
        run "$round" --exec "$exec" --workers 2 --workload read --preload "${PRELOAD:-10000000}" --clients 6 \
          --service-rings 1
      done
    done
    python3 - "$csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
by = {}
for r in rows:
    by.setdefault(r["round"], {})[r["exec"]] = float(r["kcps"])
ratios = [v["psmr"] / v["smr"] for v in by.values() if "smr" in v and "psmr" in v]
for e in ("smr", "psmr"):
    print(e, "median Kcps", statistics.median(float(r["kcps"]) for r in rows if r["exec"] == e))
print("P-SMR / SMR per round:", " ".join(f"{x:.2f}" for x in ratios), "median", f"{statistics.median(ratios):.2f}")
PY
    ;;
  e2e)
    for round in $(seq 1 "$rounds"); do
      for workload in read mixed:10; do
        for window in 1 50; do
          run "$round" --exec smr --replicas 3 --workload "$workload" --client-window "$window" \
            --command-bytes 64 --preload "${PRELOAD:-1000000}" --clients 6
        done
      done
    done
    ;;
  independent)
    for round in $(seq 1 "$rounds"); do
      for workload in read update; do
        for exec in smr spsmr psmr opt-psmr; do
          one_replica "$round" --exec "$exec" --workers 2 --workload "$workload"
        done
      done
    done
    summary
    ;;
  dependent)
    for round in $(seq 1 "$rounds"); do
      one_replica "$round" --exec smr --workers 1 --workload insert
      for exec in spsmr psmr opt-psmr; do
        for workers in 1 2; do
          one_replica "$round" --exec "$exec" --workers "$workers" --workload insert
        done
      done
    done
    summary
    ;;
  mixed)
    for round in $(seq 1 "$rounds"); do
      for percent in 0 1 5 10 25 50 100; do
        for exec in smr spsmr psmr; do
          one_replica "$round" --exec "$exec" --workers 2 --workload "mixed:$percent"
        done
      done
    done
    summary
    ;;
  threads)
    for round in $(seq 1 "$rounds"); do
      for workload in read insert; do
        one_replica "$round" --exec smr --workers 1 --workload "$workload"
        for workers in 1 2 4; do
          for exec in spsmr psmr; do
            one_replica "$round" --exec "$exec" --workers "$workers" --workload "$workload"
          done
        done
      done
    done
    summary
    ;;
  dist)
    for round in $(seq 1 "$rounds"); do
      for keys in uniform zipf; do
        one_replica "$round" --exec smr --workers 1 --workload read-update --keys "$keys"
        for workers in 1 2 4; do
          for exec in spsmr psmr; do
            one_replica "$round" --exec "$exec" --workers "$workers" --workload read-update \
              --keys "$keys"
          done
        done
      done
    done
    summary
    ;;
  opt)
    for round in $(seq 1 "$rounds"); do
      for percent in 10 25 50 100; do
        for exec in smr psmr opt-psmr; do
          one_replica "$round" --exec "$exec" --workers 2 --workload "mixed:$percent"
        done
      done
    done
    summary
    ;;
esac
cat "$csv"
