#!/usr/bin/env bash
# A simulation soak: many more seeds than `cargo test` runs, for every protocol and f and for
# Multi-Ring Paxos, split over all cores. Prints one line per configuration and, for every failing
# seed, the command that replays it.
#
#   scripts/sim-soak.sh [SEEDS_PER_CONFIG] [FIRST_SEED]      (defaults: 10000 seeds from seed 1000)
#
# `cargo test` runs seeds 0..300 (single-ring: each in memory and recoverable); starting above them
# makes a soak explore runs the suite does not.
# Exits 1 if any seed failed. Each simulated run is bounded (the simulator stops a message storm and
# reports it), so the soak's memory stays small and its time is proportional to the seeds.
set -euo pipefail
cd "$(dirname "$0")/.."

seeds=${1:-10000}
first=${2:-1000}
jobs=$(nproc)

cargo build --release --locked --quiet
bin=${CARGO_TARGET_DIR:-target}/release/ringsmr
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

failed_any=0
# soak NAME FINISHED_LINE SIM_ARGS...: runs the seeds in one slice per core, then reports.
soak() {
  local name=$1 finished=$2 tag=${1//[ =]/-}
  shift 2
  local started=$SECONDS per_job=$(((seeds + jobs - 1) / jobs)) pids=() j from count
  for ((j = 0; j < jobs; j++)); do
    from=$((first + j * per_job))
    count=$((per_job < first + seeds - from ? per_job : first + seeds - from))
    ((count > 0)) || continue
    "$bin" sim "$@" --first-seed "$from" --seeds "$count" >"$out/$tag-$j.txt" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || true
  done
  local failing
  failing=$(cat "$out/$tag-"*.txt | sed -n 's/.*failing seeds: \[\(.*\)\]/\1/p' | tr -d ' ' |
    paste -sd, -)
  echo "$name: $seeds seeds from $first in $((SECONDS - started)) s, failing: ${failing:-none}"
  if [ -n "$failing" ]; then
    failed_any=1
    for seed in ${failing//,/ }; do
      echo "  replay: cargo run --release -- sim $* --seed $seed"
    done
  fi
  # Every slice ends with its "N seeds ..., M failed" line; one without it died before finishing.
  local slice
  for slice in "$out/$tag-"*.txt; do
    if ! grep -q "$finished" "$slice"; then
      failed_any=1
      echo "  a slice died before finishing its seeds; its last output:"
      tail -n 5 "$slice" | sed 's/^/    /'
    fi
  done
}

for protocol in uring mring; do
  for f in 1 2; do
    soak "$protocol f=$f" '^[0-9]* seeds (each in-memory and recoverable), [0-9]* failed' \
      --protocol "$protocol" --f "$f"
  done
done
soak multiring '^[0-9]* multiring seeds, [0-9]* failed' --protocol multiring
exit "$failed_any"
