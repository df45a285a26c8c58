#!/usr/bin/env bash
# In-memory against Recoverable Ring Paxos where the network, not this host's one disk, is the
# bottleneck (thesis Fig. 5.1 ran on 1 Gbit/s Ethernet): three `ringsmr node` processes, each in a
# network namespace of its own ("host"), joined by a bridge in a fourth namespace over veth links
# shaped with `tc ... tbf rate 1gbit` in both directions. `ringsmr bench` (run in host 0) drives
# the same cluster with `storage = "memory"` and with `storage = "sync"`, alternating, so the two
# modes share the machine's noise, at each load step (values each proposer keeps outstanding).
# 3-node U-Ring Paxos, 1 KB values, 32 KB batches.
#
#   sudo scripts/netns-storage-bench.sh [OUT_DIR] [REPETITIONS] [SECONDS] [RATE] [STEPS]
#                  (defaults: bench/storage, 3, 5, 1gbit, "256 1024 2048 4096")
#
# Writes OUT_DIR/netns-<RATE>.csv (one row per run) and, with matplotlib, OUT_DIR/netns-<RATE>.png. Needs root (namespaces, tc); creates only
# namespaces named rsmr-tb-*, and deletes them on exit, also on failure. The acceptors' logs go
# under $TMPDIR (or /tmp), which must be on the disk to measure.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-bench/storage}
reps=${2:-3}
secs=${3:-5}
rate=${4:-1gbit}
steps=${5:-256 1024 2048 4096}
if [[ $(id -u) -ne 0 ]]; then
  echo "netns-storage-bench: needs root (ip netns, tc); run it with sudo" >&2
  exit 2
fi
mkdir -p "$out"
cargo build --release --locked --quiet
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/ringsmr")
csv=$out/netns-$rate.csv
work=$(mktemp -d "${TMPDIR:-/tmp}/rsmr-testbed.XXXXXX")
bridge=rsmr-tb-br
hosts=(rsmr-tb-h0 rsmr-tb-h1 rsmr-tb-h2)
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
for i in 0 1 2; do
  ns=${hosts[$i]}
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "tb$i" netns "$ns" type veth peer name "tb$i-br" netns "$bridge"
  ip -n "$ns" addr add "10.77.0.$((i + 1))/24" dev "tb$i"
  ip -n "$ns" link set "tb$i" up
  ip -n "$bridge" link set "tb$i-br" master br0
  ip -n "$bridge" link set "tb$i-br" up
  # Both directions of the host's link: its egress, and the bridge's egress towards it.
  tc -n "$ns" qdisc add dev "tb$i" root tbf rate "$rate" burst 256kb latency 10ms
  tc -n "$bridge" qdisc add dev "tb$i-br" root tbf rate "$rate" burst 256kb latency 10ms
done

cluster_file() { # mode -> path of a cluster file for it
  local mode=$1 file=$work/cluster-$1.toml
  cat >"$file" <<EOF
cluster_id = 77
protocol = "uring"
f = 1
ring = [0, 1, 2]
storage = "$mode"
data_dir = "$work/data-$mode"
EOF
  for i in 0 1 2; do
    cat >>"$file" <<EOF

[[node]]
id = $i
address = "10.77.0.$((i + 1)):7000"
roles = ["acceptor", "proposer", "learner"]
EOF
  done
  echo "$file"
}

run_once() { # mode outstanding rep
  local mode=$1 outstanding=$2 rep=$3 file
  file=$(cluster_file "$mode")
  rm -rf "$work/data-$mode"
  pids=()
  for i in 0 1 2; do
    ip netns exec "${hosts[$i]}" "$bin" node --config "$file" --id "$i" \
      >"$work/node-$i.log" 2>&1 &
    pids+=($!)
  done
  ip netns exec "${hosts[0]}" "$bin" bench --config "$file" --duration "$secs" --json \
    --outstanding "$outstanding" 2>"$work/bench.err" |
    python3 -c '
import json, sys
d = json.load(sys.stdin)
l = d["latency_us"]
print(",".join(str(x) for x in sys.argv[1:] + [round(d["mbit_per_s"]),
      round(d["msgs_per_s"]), l["p50"], l["p99"], l["p999"], d["orders_agree"]]))
' "$rate" "$mode" "$outstanding" "$rep" | tee -a "$csv" || {
    echo "run failed; bench said:" >&2
    cat "$work/bench.err" >&2
    exit 1
  }
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}

echo "link,mode,outstanding_per_proposer,rep,mbit_per_s,msgs_per_s,latency_us_p50,latency_us_p99,latency_us_p999,orders_agree" >"$csv"
for ((rep = 1; rep <= reps; rep++)); do
  for outstanding in $steps; do
    for mode in memory sync; do
      run_once "$mode" "$outstanding" "$rep"
    done
  done
done

# Per step: each mode's median, and the median of the ratios of runs made one after the other;
# then each mode at its best step (the peak, as in Fig. 5.1).
python3 - "$csv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
med = statistics.median
peak = {}
for step in dict.fromkeys(r["outstanding_per_proposer"] for r in rows):
    by = lambda m: [float(r["mbit_per_s"]) for r in rows
                    if r["mode"] == m and r["outstanding_per_proposer"] == step]
    mem, syn = by("memory"), by("sync")
    ratios = [s / m for s, m in zip(syn, mem)]
    print(f"outstanding {step}: median Mbit/s memory {med(mem):.0f}, sync {med(syn):.0f}; "
          f"sync/memory per pair {', '.join(f'{r:.2f}' for r in ratios)} (median {med(ratios):.2f})")
    for mode, v in (("memory", med(mem)), ("sync", med(syn))):
        peak[mode] = max(peak.get(mode, 0), v)
print(f"peaks: memory {peak['memory']:.0f}, sync {peak['sync']:.0f} Mbit/s: "
      f"sync/memory {peak['sync'] / peak['memory']:.2f}")
EOF

if python3 -c 'import matplotlib' 2>/dev/null; then
  python3 scripts/plot-storage.py "$csv" "$out/netns-$rate.png" \
    "3 hosts (namespaces), $rate links, U-Ring Paxos, 1 KB values, 32 KB batches"
else
  echo "matplotlib not installed: no plot (pip install matplotlib)"
fi
