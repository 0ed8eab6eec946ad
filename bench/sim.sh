#!/usr/bin/env bash
# bench/sim.sh — `tsi sim` (issue 11): messages per second served over WebSocket with
# 1,000 intersections at 2 Hz in real time, and the simulator's CPU share doing it; then
# the speed-up over real time at 100 intersections (--speed far above what one core
# can do: the achieved simulated seconds per wall second). The client is bench_sim (one
# /ws/bsm subscriber on vcc/ws_client); as the reference measured in the same run it
# decodes every frame with the collector's decoder and reports that cost per message.
# The first two runs measure the simulator (--backpressure off: a slow reader loses frames
# instead of slowing the clock); the third, delivery to one reader.
# Goal (issue 11): real time for 1,000 intersections on under half a core; >= 10x real
# time at 100.
#   BENCH_SIM_SECONDS=20 BENCH_SIM_START=2026-11-25T17:00:00Z (noon in UTC-5)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BENCH_BUILD:-build}
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" --target tsi bench_sim -j "$(nproc)" >/dev/null
secs=${BENCH_SIM_SECONDS:-20}
start=${BENCH_SIM_START:-2026-11-25T17:00:00Z}
tmp=$(mktemp -d /tmp/tsi-bench-sim.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

run() { # intersections speed label backpressure
  "$BUILD/tsi" sim --port 0 --port-file "$tmp/port" --intersections "$1" --speed "$2" \
    --backpressure "$4" --start "$start" --log-level warn > "$tmp/sim.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
  local port; port=$(cat "$tmp/port")
  "$BUILD/bench_sim" --url "http://127.0.0.1:$port" --pid "$pid" --seconds "$secs" \
    2>/dev/null > "$tmp/$3.txt"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  rm -f "$tmp/port"
}
get() { sed -n "s/^$2=//p" "$tmp/$1.txt"; }

echo "sim: 1000 intersections at --speed 1 from $start, ${secs}s, one /ws/bsm client, --backpressure off"
run 1000 1 rt off
echo "sim: served $(get rt msgs_per_s) msg/s ($(get rt frames_per_s) frames/s, $(get rt mbytes_per_s) MB/s)"
echo "sim: simulator CPU share $(get rt sim_cpu_share) of one core at $(get rt sim_speed)x real time (lag $(get rt sim_lag_ms) ms)"
echo "sim: reference, same run: the collector's decoder costs $(get rt decode_us_per_msg) us/msg on the client"
echo "sim: 100 intersections at --speed 100000 (as fast as it goes), ${secs}s, --backpressure off"
run 100 100000 fast off
echo "sim: achieved $(get fast sim_speed)x real time at CPU share $(get fast sim_cpu_share); served $(get fast msgs_per_s) msg/s"
echo "sim: the same with --backpressure on (the model waits for the reader: every frame delivered)"
run 100 100000 fastbp on
echo "sim: achieved $(get fastbp sim_speed)x real time at CPU share $(get fastbp sim_cpu_share); served $(get fastbp msgs_per_s) msg/s ($(get fastbp mbytes_per_s) MB/s)"
awk -v s="$(get rt sim_speed)" -v c="$(get rt sim_cpu_share)" -v f="$(get fast sim_speed)" 'BEGIN {
  printf "sim: goal real time for 1000 on < 0.5 core: %s; goal >= 10x at 100: %s\n",
    (s >= 0.98 && c < 0.5) ? "met" : "NOT met", (f >= 10) ? "met" : "NOT met" }'
