#!/usr/bin/env bash
# Throughput against latency for each acceptor storage mode (thesis Fig. 5.1: in-memory against
# Recoverable Ring Paxos; 3.5.5: the cost of disk writes): `ringsmr local` (3-node U-Ring Paxos,
# 1 KB values, 32 KB batches) with the load raised step by step (values each proposer keeps
# outstanding), each step run in every mode one after the other so that the modes share the
# machine's noise. Writes one CSV row per run and, where matplotlib is installed, a plot.
#
#   scripts/storage-bench.sh [OUT_DIR] [REPETITIONS] [SECONDS]   (defaults: bench/storage, 2, 4)
#
# The acceptors' logs go to a directory under $TMPDIR (or /tmp), which must be on the disk to
# measure: a tmpfs there would measure memory.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-bench/storage}
reps=${2:-2}
secs=${3:-4}
mkdir -p "$out"
cargo build --release --locked --quiet
bin=${CARGO_TARGET_DIR:-target}/release/ringsmr
csv=$out/storage.csv

echo "mode,outstanding_per_proposer,rep,mbit_per_s,msgs_per_s,latency_us_p50,latency_us_p99,latency_us_p999,orders_agree" >"$csv"
for ((rep = 1; rep <= reps; rep++)); do
  for outstanding in 32 64 128 256 512 1024 2048; do
    for mode in memory async sync; do
      "$bin" local --storage "$mode" --outstanding "$outstanding" --duration "$secs" --json 2>/dev/null |
        python3 -c '
import json, sys
d = json.load(sys.stdin)
l = d["latency_us"]
print(",".join(str(x) for x in [sys.argv[1], sys.argv[2], sys.argv[3], round(d["mbit_per_s"]),
      round(d["msgs_per_s"]), l["p50"], l["p99"], l["p999"], d["orders_agree"]]))
' "$mode" "$outstanding" "$rep" | tee -a "$csv"
    done
  done
done

if python3 -c 'import matplotlib' 2>/dev/null; then
  python3 scripts/plot-storage.py "$csv" "$out/storage.png"
else
  echo "matplotlib not installed: no plot (pip install matplotlib)"
fi
