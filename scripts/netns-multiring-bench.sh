#!/usr/bin/env bash
# Multi-Ring Paxos where the network, not this host's two cores, limits each ring (thesis 5.4.3
# ran on 1 Gbit/s Ethernet): six `ringsmr node` processes, each in a network namespace of its own
# ("host"), joined by a bridge in a seventh namespace over veth links shaped with
# `tc ... tbf rate 1gbit` in both directions. Ring 0 runs on hosts 0-2, ring 1 on hosts 3-5 (3-node
# U-Ring Paxos each, 8 KB messages, 32 KB batches); every process multicasts to its ring's group
# and delivers it (each learner subscribes to one group). Runs alternate between one ring (hosts
# 0-2 only) and two rings, so both share the machine's noise; each process measures the same
# number of seconds (`ringsmr node --load-secs`), and the aggregate is the sum over rings of the
# mean of their learners.
#
#   sudo scripts/netns-multiring-bench.sh [OUT_DIR] [REPETITIONS] [SECONDS] [RATE] [OUTSTANDING]
#                  (defaults: bench/multiring, 3, 10, 1gbit, 64)
#
# Writes OUT_DIR/netns-<RATE>.csv (one row per run). Needs root (namespaces, tc); creates only
# namespaces named rsmr-mr-*, and deletes them on exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-bench/multiring}
reps=${2:-3}
secs=${3:-10}
rate=${4:-1gbit}
# Messages each process keeps in flight: enough to fill its share of the ring's window, few enough
# that they do not queue behind the shaped links for long.
outstanding=${5:-64}
if [[ $(id -u) -ne 0 ]]; then
  echo "netns-multiring-bench: needs root (ip netns, tc); run it with sudo" >&2
  exit 2
fi
mkdir -p "$out"
cargo build --release --locked --quiet
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/ringsmr")
csv=$out/netns-$rate.csv
work=$(mktemp -d "${TMPDIR:-/tmp}/rsmr-mr-testbed.XXXXXX")
bridge=rsmr-mr-br
hosts=(rsmr-mr-h0 rsmr-mr-h1 rsmr-mr-h2 rsmr-mr-h3 rsmr-mr-h4 rsmr-mr-h5)
pids=()

cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  for ns in "${hosts[@]}" "$bridge"; do
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$bridge"
ip -n "$bridge" link add br0 type bridge
ip -n "$bridge" link set br0 up
for i in "${!hosts[@]}"; do
  ns=${hosts[$i]}
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "mr$i" netns "$ns" type veth peer name "mr$i-br" netns "$bridge"
  ip -n "$ns" addr add "10.78.0.$((i + 1))/24" dev "mr$i"
  ip -n "$ns" link set "mr$i" up
  ip -n "$bridge" link set "mr$i-br" master br0
  ip -n "$bridge" link set "mr$i-br" up
  # Both directions of the host's link: its egress, and the bridge's egress towards it.
  tc -n "$ns" qdisc add dev "mr$i" root tbf rate "$rate" burst 256kb latency 10ms
  tc -n "$bridge" qdisc add dev "mr$i-br" root tbf rate "$rate" burst 256kb latency 10ms
done

for ring in 0 1; do
  {
    echo "cluster_id = $((80 + ring))"
    echo 'protocol = "uring"'
    echo "f = 1"
    echo "ring = [0, 1, 2]"
    for i in 0 1 2; do
      echo "[[node]]"
      echo "id = $i"
      echo "address = \"10.78.0.$((3 * ring + i + 1)):7000\""
      echo 'roles = ["acceptor", "proposer", "learner"]'
    done
  } >"$work/ring-$ring.toml"
done
printf '[[ring]]\nid = 0\ncluster = "ring-0.toml"\n' >"$work/rings-1.toml"
printf '[[ring]]\nid = 0\ncluster = "ring-0.toml"\n[[ring]]\nid = 1\ncluster = "ring-1.toml"\nprocesses = [3, 4, 5]\n' \
  >"$work/rings-2.toml"

run_once() { # rings rep
  local rings=$1 rep=$2 n=$((3 * $1))
  pids=()
  for ((p = 0; p < n; p++)); do
    ip netns exec "${hosts[$p]}" "$bin" node --config "$work/rings-$rings.toml" --id "$p" \
      --load-secs "$secs" --payload 8192 --outstanding "$outstanding" >"$work/p$p.json" 2>"$work/p$p.log" &
    pids+=($!)
  done
  for ((p = 0; p < n; p++)); do
    local waited=0
    until [[ -s $work/p$p.json ]]; do
      sleep 0.5
      waited=$((waited + 1))
      if ((waited > 4 * secs + 60)); then
        echo "process $p printed no figures; its log:" >&2
        cat "$work/p$p.log" >&2
        exit 1
      fi
    done
  done
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
  python3 - "$work" "$rings" "$rep" "$rate" <<'EOF' | tee -a "$csv"
import json, statistics, sys
work, rings, rep, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
per_ring = []
p50s = []
for r in range(rings):
    runs = [json.load(open(f"{work}/p{3 * r + i}.json")) for i in range(3)]
    per_ring.append(statistics.mean(x["mbit_per_s"] for x in runs))
    p50s += [x["latency_us"]["p50"] for x in runs]
print(",".join(str(x) for x in [rate, rings, rep, round(sum(per_ring)),
      ";".join(str(round(x)) for x in per_ring), round(statistics.median(p50s))]))
EOF
  rm -f "$work"/p*.json
}

echo "link,rings,rep,aggregate_mbit_per_s,per_ring_mbit_per_s,latency_us_p50_median" >"$csv"
for ((rep = 1; rep <= reps; rep++)); do
  for rings in 1 2; do
    run_once "$rings" "$rep"
  done
done

python3 - "$csv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
one = [float(r["aggregate_mbit_per_s"]) for r in rows if r["rings"] == "1"]
two = [float(r["aggregate_mbit_per_s"]) for r in rows if r["rings"] == "2"]
ratios = [b / a for a, b in zip(one, two)]
print(f"one ring: median {statistics.median(one):.0f} Mbit/s; two rings: median "
      f"{statistics.median(two):.0f} Mbit/s; two/one per pair "
      f"{', '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f})")
EOF
