#!/usr/bin/env bash
# bench/core.sh — the domain core (issue 10): decode + assign + window + featurize a
# realistic stream (1,000 intersections, 20 vehicles + 2 pedestrians each, 2 Hz) on one
# core, and peak RSS over a simulated hour; beside it, in the same run, Python's
# json.loads (the earlier system's parser) over the very same BSM lines.
# Figures are CPU time of the one thread doing the work (time.process_time for Python),
# so a busy machine slows both sides alike.
#   BENCH_CORE_MINUTES=60 BENCH_CORE_INTERSECTIONS=1000 BENCH_CORE_SAMPLE=200000
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BENCH_BUILD:-build}
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" --target bench_core -j "$(nproc)" >/dev/null
tmp=$(mktemp -d /tmp/tsi-bench-core.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
minutes=${BENCH_CORE_MINUTES:-60}
n=${BENCH_CORE_INTERSECTIONS:-1000}
echo "core: $n intersections x (20 vehicles + 2 pedestrians) at 2 Hz, $minutes simulated minutes"
"$BUILD/bench_core" --sample "$tmp/bsm.jsonl" --minutes "$minutes" --intersections "$n" \
  --sample-count "${BENCH_CORE_SAMPLE:-200000}" > "$tmp/c.txt"
python3 - "$tmp/bsm.jsonl" > "$tmp/py.txt" <<'PY'
import json, sys, time
lines = open(sys.argv[1], 'rb').read().split(b'\n')[:-1]
best = float('inf')
for _ in range(3):
    t0 = time.process_time()
    for l in lines:
        json.loads(l)
    best = min(best, time.process_time() - t0)
print("python_json_loads_msgs_per_s=%.0f" % (len(lines) / best))
print("python_version=%s" % sys.version.split()[0])
PY
cat "$tmp/c.txt" "$tmp/py.txt" > "$tmp/all.txt"
get() { sed -n "s/^$1=//p" "$tmp/all.txt"; }
py=$(get python_json_loads_msgs_per_s)
dec=$(get decode_only_msgs_per_s)
pipe=$(get pipeline_msgs_per_s)
bsm=$(get pipeline_bsm_per_s)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "core: sample: $(get sample_messages) BSMs of $(get sample_avg_bytes) bytes on average"
echo "core: reference  Python $(get python_version) json.loads (bare parse): $py msg/s"
echo "core: tsi_bsm_decode (parse + checks + fields):       $dec msg/s = $(ratio "$dec" "$py") x Python"
echo "core: pipeline decode+assign+window+featurize:        $pipe msg/s ($bsm BSM/s) = $(ratio "$pipe" "$py") x Python"
echo "core:   $(get pipeline_messages) messages, $(get windows) intersection-minutes, conflicts $(get conflicts) (vru $(get vru_events), vehicle $(get vehicle_events)), hard braking $(get hard_braking), mean traffic_volume $(get mean_traffic_volume), rejected $(get pipeline_rejected), push errors $(get pipeline_push_errors)"
echo "core:   CPU $(get pipeline_seconds) s, wall $(get pipeline_wall_seconds) s"
echo "core: RSS (kB) after minute 1: $(get rss_kb_first_minute), minute 5: $(get rss_kb_minute_5), last minute: $(get rss_kb_last_minute); peak (VmHWM): $(get peak_rss_kb)"
echo "core: RSS by simulated minute (kB): $(get rss_kb_by_minute)"
echo "core: goals: >= 500000 BSM/s decode+featurize on one core; >= 3x Python's bare parse"
