#!/usr/bin/env bash
# bench/json.sh — the collector's frame parse (issue 12): a rush-hour /ws/bsm frame
# (15,500 BSMs, ~11 MB) read by tsi_json_parse (one strict pass) beside jsmn + the grammar
# check (the reference, same run), and the walk + decode of its elements; CPU µs per
# message, best of BENCH_JSON_REPEAT rounds.
#   BENCH_JSON_MESSAGES=15500 BENCH_JSON_REPEAT=7 BENCH_BUILD=build
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BENCH_BUILD:-build}
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" --target bench_json -j "$(nproc)" >/dev/null
out=$("$BUILD/bench_json" --messages "${BENCH_JSON_MESSAGES:-15500}" --repeat "${BENCH_JSON_REPEAT:-7}")
get() { echo "$out" | sed -n "s/^$1=//p"; }
echo "json: one frame of $(get messages) BSMs, $(get frame_bytes) bytes, $(get frame_tokens) tokens"
echo "json: tsi_json_parse (one strict pass):            $(get parse_us_per_msg) us/message ($(get parse_mb_per_s) MB/s)"
echo "json: reference jsmn + grammar check (same run):   $(get reference_jsmn_validate_us_per_msg) us/message ($(get reference_mb_per_s) MB/s)"
echo "json: walk + tsi_msg_from_json of every element:   $(get walk_decode_us_per_msg) us/message"
echo "json: load average $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
