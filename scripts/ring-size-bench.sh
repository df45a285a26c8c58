#!/usr/bin/env bash
# The cost of synchronous disk writes as the ring grows (thesis 3.5.5, Fig. 3.9): `ringsmr local`
# with 3, 5 and 7 processes (f = 1, 2, 3: every process an acceptor, rings of f+1 of them), U-Ring
# and M-Ring Paxos, `memory` and `sync` storage one after the other at each size, 1 KB values,
# 32 KB batches (M-Ring: 8 KB, one datagram), a fixed load per proposer. In U-Ring Paxos the f+1
# acceptors of the ring write one after the other; in M-Ring Paxos they all receive the batch by
# multicast and write it at once, and only their votes travel the ring.
#
#   sudo scripts/ring-size-bench.sh [OUT_DIR] [REPETITIONS] [SECONDS] [OUTSTANDING]
#                                    (defaults: bench/storage, 2, 4, 64)
#
# M-Ring runs inside a network namespace this script creates (rsmr-rs-mring, loopback with
# multicast on, deleted on exit, also on failure), so it needs root; the host's loopback is not
# touched. Writes OUT_DIR/ring-size.csv and, with matplotlib, OUT_DIR/ring-size.png. The logs go
# under $TMPDIR (or /tmp), which must be on the disk to measure.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-bench/storage}
reps=${2:-2}
secs=${3:-4}
outstanding=${4:-64}
if [[ $(id -u) -ne 0 ]]; then
  echo "ring-size-bench: needs root for the M-Ring namespace (ip netns); run it with sudo" >&2
  exit 2
fi
mkdir -p "$out"
cargo build --release --locked --quiet
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/ringsmr")
csv=$out/ring-size.csv
ns=rsmr-rs-mring
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link set lo multicast on

echo "protocol,processes,mode,rep,mbit_per_s,msgs_per_s,latency_us_p50,latency_us_p99,latency_us_p999,orders_agree" >"$csv"
for ((rep = 1; rep <= reps; rep++)); do
  for n in 3 5 7; do
    for protocol in uring mring; do
      for mode in memory sync; do
        run=("$bin" local --protocol "$protocol" --nodes "$n" --f $(((n - 1) / 2)) --storage "$mode"
          --outstanding "$outstanding" --duration "$secs" --json)
        if [[ $protocol == mring ]]; then
          run=(ip netns exec "$ns" "${run[@]}")
        fi
        "${run[@]}" 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
l = d["latency_us"]
print(",".join(str(x) for x in sys.argv[1:] + [round(d["mbit_per_s"]), round(d["msgs_per_s"]),
      l["p50"], l["p99"], l["p999"], d["orders_agree"]]))
' "$protocol" "$n" "$mode" "$rep" | tee -a "$csv"
      done
    done
  done
done

if python3 -c 'import matplotlib' 2>/dev/null; then
  python3 scripts/plot-ring-size.py "$csv" "$out/ring-size.png"
else
  echo "matplotlib not installed: no plot (pip install matplotlib)"
fi
