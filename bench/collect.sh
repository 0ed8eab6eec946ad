#!/usr/bin/env bash
# bench/collect.sh — the collector (issue 12), on a private cluster:
#  1. throughput: `tsi sim` at BENCH_COLLECT_INTERSECTIONS intersections in real time and
#     `tsi collect` against it for BENCH_COLLECT_SECONDS: the collector's CPU share of one
#     core, messages/s archived, rows upserted, beside the simulator's own CPU share in the
#     same run (the reference: the cost of producing what is consumed);
#  2. spool: rows spooled while the writer waits, then replayed (bench_spool), beside a
#     bare INSERT ... SELECT of as many rows in the same database.
# Goals (issue 12): <= 50 % of one core at 1,000 intersections; replay >= 50,000 rows/s.
#   BENCH_COLLECT_INTERSECTIONS=1000 BENCH_COLLECT_SECONDS=150 BENCH_SPOOL_ROWS=200000
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BENCH_BUILD:-build}
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" --target tsi bench_spool -j "$(nproc)" >/dev/null
BIN=$PWD/$BUILD/tsi
tmp=$(mktemp -d /tmp/tsi-bench-collect.XXXXXX)
export TSI_HOME=$tmp/home
export TSI_PG_PORT=$((40000 + RANDOM % 9000))
unset DATABASE_URL PGHOST PGSERVICE PGDATABASE PGUSER PGPORT
simpid=
cleanup() {
  [ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true
  "$BIN" db stop >/dev/null 2>&1 || true
  real=$(readlink "$TSI_HOME/pg" 2>/dev/null || true)
  case "$real" in /var/lib/tsi/pg-*) rm -rf "$real" ;; esac
  rm -rf "$tmp"
}
trap cleanup EXIT
"$BIN" db start --log-level warn >/dev/null
"$BIN" migrate --log-level warn
n=${BENCH_COLLECT_INTERSECTIONS:-1000}
secs=${BENCH_COLLECT_SECONDS:-150}
port=$((49100 + RANDOM % 800))
"$BIN" sim --port "$port" --intersections "$n" --speed 1 --log-level warn >"$tmp/sim.log" 2>&1 &
simpid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
sim0=$(awk '{print $14 + $15}' /proc/$simpid/stat)
t0=$(date +%s.%N)
VCC_BASE_URL=http://127.0.0.1:$port VCC_CLIENT_ID=tsi-sim VCC_CLIENT_SECRET=tsi-sim-secret \
  "$BIN" collect --duration-seconds "$secs" --status-seconds 30 --log-level warn \
  >"$tmp/collect.log" 2>&1 &
cpid=$!
cpu=0
while kill -0 "$cpid" 2>/dev/null; do
  c=$(awk '{print $14 + $15}' /proc/$cpid/stat 2>/dev/null || echo "")
  [ -n "$c" ] && cpu=$c
  sleep 1
done
wait "$cpid" || { echo "collect failed:"; tail -20 "$tmp/collect.log"; exit 1; }
t1=$(date +%s.%N)
sim1=$(awk '{print $14 + $15}' /proc/$simpid/stat)
hz=$(getconf CLK_TCK)
json=$TSI_HOME/run/collect.json
get() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$json"; }
awk -v c="$cpu" -v s0="$sim0" -v s1="$sim1" -v hz="$hz" -v a="$t0" -v b="$t1" \
    -v msgs="$(get messages_in)" -v raw="$(get raw_rows_archived)" -v rows="$(get rows_written)" \
    -v n="$n" 'BEGIN {
  w = b - a;
  printf "collect: %d intersections in real time for %.0f s\n", n, w;
  printf "collect: collector CPU %.1f %% of one core (goal <= 50 %% at 1,000)\n", 100 * c / hz / w;
  printf "collect: simulator CPU %.1f %% of one core (reference, same run)\n", 100 * (s1 - s0) / hz / w;
  printf "collect: messages in %.0f/s, raw rows archived %.0f/s, realtime rows upserted %d\n", msgs / w, raw / w, rows;
}'
"$BUILD/bench_spool" --rows "${BENCH_SPOOL_ROWS:-200000}" --intersections 1000 --spool "$tmp/spool" >"$tmp/spool.txt"
sget() { sed -n "s/^$1=\([0-9]*\).*/\1/p" "$tmp/spool.txt"; }
echo "spool: $(sget rows) rows: append $(sget spool_append_rows_per_s) rows/s (fsync per 1,000)," \
  "replay $(sget replay_rows_per_s) rows/s (goal >= 50,000)," \
  "bare INSERT ... SELECT $(sget reference_insert_select_rows_per_s) rows/s (reference)"
echo "not measured here: lag from message to queryable row (p50/p99)"
