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
#   scripts/service-bench.sh EXPERIMENT [OUT_DIR] [ROUNDS] [SECONDS]
#                  (defaults: bench/service, 3, 4)
#
# Writes OUT_DIR/<experiment>.csv (one row per run, from each run's --json).
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:?usage: service-bench.sh models|e2e [OUT_DIR] [ROUNDS] [SECONDS]}
out=${2:-bench/service}
rounds=${3:-3}
secs=${4:-4}
warmup=${WARMUP:-1}
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

case $what in
  models)
    for round in $(seq 1 "$rounds"); do
      for exec in smr psmr; do
        run "$round" --exec "$exec" --workers 2 --workload read --preload 10000000 --clients 6 \
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
            --command-bytes 64 --preload 1000000 --clients 6
        done
      done
    done
    ;;
  *)
    echo "unknown experiment $what" >&2
    exit 2
    ;;
esac
cat "$csv"
