#!/usr/bin/env bash
# Multi-Ring Paxos experiments of thesis 5.4 on this machine, over loopback (U-Ring rings of 3
# processes, 1 KB messages):
#
#   scaling  5.4.3: 1, 2 and 4 rings; each learner subscribing to one group (aggregate throughput)
#            and every learner subscribing to all (merged throughput), next to one plain ring;
#            rounds alternate the configurations so they share the machine's noise.
#   delta    5.4.4: Delta = 0.1, 1, 10, 100 ms at the same lambda rate; one learner of both of 2
#            rings; offered load stepped up: latency against throughput, CPU of the coordinators.
#   m        5.4.5: M = 1, 10, 100, 1000, otherwise as delta.
#   lambda   5.4.6: lambda = 0 and larger, 2 rings, one learner; rates equal, 2:1, and 2:1
#            oscillating, raised every few seconds: time series of the merged delivery.
#   halt     5.4.7: 2 rings, one learner of both, 4,000 messages/s to each; ring 1 halted for 3 s
#            (all but one acceptor stopped), then its coordinator alone stopped for 3 s (failover):
#            time series of the merged delivery. Separate processes (`ringsmr node`), SIGSTOP/CONT.
#
#   scripts/multiring-bench.sh EXPERIMENT [OUT_DIR] [REPETITIONS] [SECONDS]
#                  (defaults: bench/multiring, 3, 5)
#
# Writes OUT_DIR/<experiment>.csv and, with matplotlib, OUT_DIR/<experiment>.png.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:?usage: multiring-bench.sh scaling|delta|m|lambda|halt [OUT_DIR] [REPETITIONS] [SECONDS]}
out=${2:-bench/multiring}
reps=${3:-3}
secs=${4:-5}
mkdir -p "$out"
cargo build --release --locked --quiet
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/ringsmr")
csv=$out/$what.csv
work=$(mktemp -d "${TMPDIR:-/tmp}/rsmr-multiring.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -CONT "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# One `local` run as a CSV row: the leading columns given, then the run's figures.
local_row() { # leading-columns -- local options...
  local lead=$1
  shift
  "$bin" local "$@" --json 2>"$work/local.err" | python3 -c '
import json, sys
d = json.load(sys.stdin)
l = d["latency_us"]
cpu = [c for p in d.get("per_process", []) for c in p.get("cpu_per_ring", []) if c is not None]
agg = d.get("aggregate_mbit_per_s", d["mbit_per_s"])
print(",".join(str(x) for x in [sys.argv[1], round(agg), round(d["mbit_per_s"]), round(d["msgs_per_s"]),
      l["p50"], l["p99"], round(max(cpu) * 100) if cpu else "", d.get("orders_agree"),
      d.get("positions_skipped", 0)]))
' "$lead" || {
    echo "run failed: $bin local $*" >&2
    cat "$work/local.err" >&2
    exit 1
  }
}

figures="aggregate_mbit_per_s,merged_mbit_per_s,merged_msgs_per_s,latency_us_p50,latency_us_p99,busiest_ring_thread_cpu_pct,orders_agree,positions_skipped"

case $what in
scaling)
  echo "round,config,rings,subscribe,$figures" >"$csv"
  for ((rep = 1; rep <= reps; rep++)); do
    local_row "$rep,one-ring,1,all" --protocol uring --duration "$secs" | tee -a "$csv"
    for rings in 1 2 4; do
      for sub in one all; do
        local_row "$rep,multiring,$rings,$sub" --protocol multiring --rings "$rings" \
          --subscribe "$sub" --duration "$secs" | tee -a "$csv"
      done
    done
  done
  ;;
delta | m)
  # The same lambda rate (100,000 instances/s) whatever Delta; M = 1 unless varied.
  echo "round,$what,rate_per_group,$figures" >"$csv"
  for ((rep = 1; rep <= reps; rep++)); do
    for rate in 2000 8000 20000 40000; do
      if [[ $what == delta ]]; then
        for delta_us in 100 1000 10000 100000; do
          local_row "$rep,$delta_us,$rate" --protocol multiring --rings 2 --subscribe first \
            --proposers first --rate "$rate" --delta-us "$delta_us" \
            --lambda $((delta_us / 10)) --duration "$secs" | tee -a "$csv"
        done
      else
        for m in 1 10 100 1000; do
          local_row "$rep,$m,$rate" --protocol multiring --rings 2 --subscribe first \
            --proposers first --rate "$rate" --m "$m" --duration "$secs" | tee -a "$csv"
        done
      fi
    done
  done
  ;;
lambda)
  # Rates raised by their base every step; lambda per Delta = 1 ms.
  step=$((secs > 2 ? secs : 2))
  echo "case,lambda_per_s,t_ms,process,offered_msgs,delivered_msgs,delivered_per_group,delivered_mbit_per_s,latency_p50_us,latency_p99_us,queued_instances" >"$csv"
  for case in equal double oscillating; do
    case $case in
    equal) rates=(--rate 2000,2000) ;;
    double) rates=(--rate 4000,2000) ;;
    oscillating) rates=(--rate 4000,2000 --oscillate-secs "$step") ;;
    esac
    for lambda in 0 2 20; do
      "$bin" local --protocol multiring --rings 2 --subscribe first --proposers first \
        "${rates[@]}" --rate-step-secs "$step" --lambda "$lambda" --delta-us 1000 \
        --duration $((5 * step)) --series "$work/series.csv" --series-ms 100 --json \
        >"$work/run.json" 2>"$work/local.err" || {
        cat "$work/local.err" >&2
        exit 1
      }
      echo "$case lambda $((lambda * 1000))/s: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(round(d["mbit_per_s"]), "Mbit/s merged, p50", d["latency_us"]["p50"], "us, p99", d["latency_us"]["p99"], "us")' "$work/run.json")"
      tail -n +2 "$work/series.csv" | awk -F, '$2 == 0' | sed "s/^/$case,$((lambda * 1000)),/" >>"$csv"
    done
  done
  ;;
halt)
  ports=($(python3 -c '
import socket
ss = [socket.socket() for _ in range(8)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'))
  for ring in 0 1; do
    {
      echo "cluster_id = $((90 + ring))"
      echo 'protocol = "uring"'
      echo "f = 1"
      echo "ring = [0, 1, 2]"
      for i in 0 1 2; do
        echo "[[node]]"
        echo "id = $i"
        echo "address = \"127.0.0.1:${ports[$((4 * ring + i))]}\""
        echo 'roles = ["acceptor", "proposer", "learner"]'
      done
    } >"$work/ring-$ring.toml"
  done
  # Ring 0: processes 0-2; ring 1: processes 3 (its coordinator), 4 and 0. Process 0 alone
  # delivers both groups and multicasts 4,000 messages/s to each; lambda 20 per ms.
  cat >"$work/multi.toml" <<EOF
lambda_instances = 20
delta_us = 1000
[[ring]]
id = 0
cluster = "ring-0.toml"
[[ring]]
id = 1
cluster = "ring-1.toml"
processes = [3, 4, 0]
[[learner]]
process = 1
groups = []
[[learner]]
process = 2
groups = []
[[learner]]
process = 3
groups = []
[[learner]]
process = 4
groups = []
EOF
  echo "case,lambda_per_s,t_ms,process,offered_msgs,delivered_msgs,delivered_per_group,delivered_mbit_per_s,latency_p50_us,latency_p99_us,queued_instances" >"$csv"
  for case in ring-halted coordinator-stopped; do
    pids=()
    for p in 1 2 3 4; do
      "$bin" node --config "$work/multi.toml" --id "$p" >"$work/p$p.log" 2>&1 &
      pids+=($!)
    done
    "$bin" node --config "$work/multi.toml" --id 0 --load-secs 16 --propose-rate 8000 --payload 8192 \
      --series "$work/series.csv" --series-ms 100 >"$work/p0.json" 2>"$work/p0.log" &
    learner=$!
    pids+=($learner)
    sleep 7 # about 5 s into the measured run (after start-up and the probes)
    if [[ $case == ring-halted ]]; then
      stopped=("${pids[2]}" "${pids[3]}") # processes 3 and 4: ring 1 has no majority
    else
      stopped=("${pids[2]}") # process 3, ring 1's coordinator: process 4 takes over
    fi
    kill -STOP "${stopped[@]}"
    sleep 3
    kill -CONT "${stopped[@]}"
    while [[ ! -s $work/p0.json ]]; do sleep 0.5; done
    sleep 0.5
    for pid in "${pids[@]}"; do
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
    pids=()
    echo "$case: $(cat "$work/p0.json")"
    tail -n +2 "$work/series.csv" | sed "s/^/$case,20000,/" >>"$csv"
  done
  ;;
*)
  echo "unknown experiment $what" >&2
  exit 2
  ;;
esac

if python3 -c 'import matplotlib' 2>/dev/null; then
  python3 scripts/plot-multiring.py "$what" "$csv" "$out/$what.png"
else
  echo "matplotlib not installed: no plot (pip install matplotlib)"
fi
