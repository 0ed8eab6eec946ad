#!/usr/bin/env bash
# bench/collect.sh — the collector (issue 12), on a private cluster:
#  1. throughput: `tsi sim` at BENCH_COLLECT_INTERSECTIONS intersections in real time and
#     `tsi collect` against it for BENCH_COLLECT_SECONDS: the collector's CPU share of one
#     core, messages/s archived, rows upserted, beside the simulator's own CPU share in the
#     same run (the reference: the cost of producing what is consumed);
#     and the lag from a minute's close (minute end + grace, the earliest moment the
#     collector may write its row) to the row being queryable in PostgreSQL, p50/p99, from
#     polling the table as tsi_reader (each row first seen at the poll statement's start),
#     beside the same run's references: the grace period, the collector's 1-second
#     row-flush cadence and the measured poll period (the resolution);
#  2. spool: rows spooled while the writer waits, then replayed (bench_spool) at 1, 2 and 3
#     writer connections (the same rows each time; the collector's default is 2), beside a
#     bare INSERT ... SELECT of as many rows in the same database, with the load average.
# Goals (issue 12): <= 50 % of one core at 1,000 intersections; replay >= 50,000 rows/s;
# lag p99 <= 2 s after the minute closes. Issue 27: peak resident memory (VmHWM, the final
# flush included) <= 1 GB at 1,000 intersections at rush hour, printed with the RSS of
# every second of the run; <= 6 us of collector CPU a message.
#   BENCH_COLLECT_INTERSECTIONS=1000 BENCH_COLLECT_SECONDS=150 BENCH_SPOOL_ROWS=200000
#   BENCH_SPOOL_CONNECTIONS=1,2,3 BENCH_SPOOL_REPEAT=1 BENCH_SPOOL_ONLY=1 (skip part 1)
#   BENCH_COLLECT_START=2026-11-25T13:00:00Z (the simulator's clock at start: 13:00Z is its
#   rush hour, 08:00 local; default now) BENCH_COLLECT_ONLY=1 (skip part 2)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BENCH_BUILD:-build}
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" --target tsi bench_spool -j "$(nproc)" >/dev/null
BUILD=$(cd "$BUILD" && pwd)
BIN=$BUILD/tsi
tmp=$(mktemp -d /tmp/tsi-bench-collect.XXXXXX)
export TSI_HOME=$tmp/home
. scripts/lib/ports.sh
export TSI_PG_PORT=$(tsi_free_port)
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
spool_bench() {
  local load0 load1
  load0=$(cut -d' ' -f1-3 /proc/loadavg)
  "$BUILD/bench_spool" --rows "${BENCH_SPOOL_ROWS:-200000}" --intersections 1000 \
    --spool "$tmp/spool" --connections "${BENCH_SPOOL_CONNECTIONS:-1,2,3}" \
    --repeat "${BENCH_SPOOL_REPEAT:-1}" >"$tmp/spool.txt" ||
    { echo "spool: bench_spool failed:"; cat "$tmp/spool.txt"; return 1; }
  load1=$(cut -d' ' -f1-3 /proc/loadavg)
  sget() { sed -n "s/^$1=\([0-9]*\).*/\1/p" "$tmp/spool.txt"; }
  local k per=
  for k in $(echo "${BENCH_SPOOL_CONNECTIONS:-1,2,3}" | tr ',' ' '); do
    per="$per, $k: $(sget "replay_rows_per_s_$k")"
  done
  echo "spool: $(sget rows) rows: append $(sget spool_append_rows_per_s) rows/s (fsync per 1,000)," \
    "replay rows/s by writer connections${per} (goal >= 50,000; default 2)," \
    "bare INSERT ... SELECT $(sget reference_insert_select_rows_per_s) rows/s (reference)"
  sed -n 's/^replay_run /spool: run: /p' "$tmp/spool.txt"
  echo "spool: load average before ${load0}, after ${load1} ($(nproc) cores)"
}
"$BIN" db start --log-level warn >/dev/null
"$BIN" migrate --log-level warn
if [ "${BENCH_SPOOL_ONLY:-0}" = 1 ]; then
  spool_bench
  exit 0
fi
n=${BENCH_COLLECT_INTERSECTIONS:-1000}
secs=${BENCH_COLLECT_SECONDS:-150}
port=$(tsi_free_port)
"$BIN" sim --port "$port" --intersections "$n" --speed 1 --start "${BENCH_COLLECT_START:-now}" \
  --log-level warn >"$tmp/sim.log" 2>&1 &
simpid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
grace=${BENCH_COLLECT_GRACE:-10}
url=$("$BIN" db url --role tsi_reader)
# the simulator's clock against the wall clock (speed 1: a constant offset)
simnow=$(curl -sf "http://127.0.0.1:$port/sim/status" | sed -n 's/.*"now":\([0-9]*\).*/\1/p')
off=$((simnow - $(date +%s%3N)))
# the simulator's clock now (ms; empty when it does not answer within a few tries)
simclock() {
  local v
  for _ in 1 2 3 4 5; do
    v=$(curl -sf --max-time 5 "http://127.0.0.1:$port/sim/status" | sed -n 's/.*"now":\([0-9]*\).*/\1/p')
    [ -n "$v" ] && { echo "$v"; return; }
    sleep 0.5
  done
}
sim0=$(awk '{print $14 + $15}' /proc/$simpid/stat)
simclock0=$(simclock)
t0=$(date +%s.%N)
tstop=$(( $(date +%s%3N) + secs * 1000 )) # when the collector begins its shutdown
VCC_BASE_URL=http://127.0.0.1:$port VCC_CLIENT_ID=tsi-sim VCC_CLIENT_SECRET=tsi-sim-secret \
  "$BIN" collect --duration-seconds "$secs" --status-seconds 1 --grace-seconds "$grace" \
  --max-skew-seconds 0 \
  --log-level warn \
  >"$tmp/collect.log" 2>&1 &
cpid=$!
# resident memory once a second (VmRSS, kB), beside the run's peak (VmHWM) that the
# collector writes into collect.json after its final flush
( while kill -0 "$cpid" 2>/dev/null; do
    r=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' /proc/$cpid/status 2>/dev/null || true)
    q=$(sed -n 's/.*"queue_bytes":\([0-9]*\).*/\1/p' "$TSI_HOME/run/collect.json" 2>/dev/null || true)
    [ -n "$r" ] && echo "$r ${q:-0}"
    sleep 1
  done ) >"$tmp/rss.txt" &
cpu=0
polls=0
: >"$tmp/polls.txt"
while kill -0 "$cpid" 2>/dev/null; do
  c=$(awk '{print $14 + $15}' /proc/$cpid/stat 2>/dev/null || echo "")
  [ -n "$c" ] && cpu=$c
  # poll: statement start (ms), minute (ms), rows of that minute visible now
  psql "$url" -XAtq -F ' ' -c "SELECT (extract(epoch FROM statement_timestamp()) * 1000)::bigint,
      (extract(epoch FROM \"timestamp\") * 1000)::bigint, count(*) FROM safety_indices_realtime
      GROUP BY 2 ORDER BY 2" >>"$tmp/polls.txt" 2>/dev/null || true
  polls=$((polls + 1))
  sleep 0.2
done
wait "$cpid" || { echo "collect failed:"; tail -20 "$tmp/collect.log"; exit 1; }
t1=$(date +%s.%N)
sim1=$(awk '{print $14 + $15}' /proc/$simpid/stat)
simclock1=$(simclock)
hz=$(getconf CLK_TCK)
json=$TSI_HOME/run/collect.json
get() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$json"; }
awk -v c="$cpu" -v s0="$sim0" -v s1="$sim1" -v hz="$hz" -v a="$t0" -v b="$t1" \
    -v msgs="$(get messages_in)" -v raw="$(get raw_rows_archived)" -v rows="$(get rows_written)" \
    -v n="$n" -v sc0="$simclock0" -v sc1="$simclock1" 'BEGIN {
  w = b - a; simw = (sc1 - sc0) / 1000;
  printf "collect: %d intersections in real time for %.0f s\n", n, w;
  printf "collect: collector CPU %.1f %% of one core (goal <= 50 %% at 1,000)\n", 100 * c / hz / w;
  # on a loaded machine the simulator may fall behind the wall clock (its clock waits for
  # its readers): the collector CPU per simulated second is the share of one core that
  # real time at this size needs, whatever the machine gave the run
  if (sc0 > 0 && sc1 > 0 && simw > 0)
    printf "collect: simulated clock ran %.0f s (%.2fx real time); collector CPU per simulated second %.1f %% of one core; %.1f us per message\n",
      simw, simw / w, 100 * c / hz / simw, (msgs > 0 ? 1e6 * c / hz / msgs : 0);
  printf "collect: simulator CPU %.1f %% of one core (reference, same run)\n", 100 * (s1 - s0) / hz / w;
  printf "collect: messages in %.0f/s, raw rows archived %.0f/s, realtime rows upserted %d\n", msgs / w, raw / w, rows;
}'
# the queue's bytes (network threads -> pipeline, bounded at 1 GiB) beside each RSS sample:
# a collector that falls behind (a loaded machine) holds its backlog there
awk -v hwm="$(get rss_peak_kb)" '{ v[NR] = $1; if ($1 > m) { m = $1; mq = $2 } if ($2 > q) q = $2
  s = s (NR > 1 ? " " : "") int($1 / 1024); sq = sq (NR > 1 ? " " : "") int($2 / 1048576) }
  END {
  printf "memory: collector peak RSS (VmHWM, final flush included) %.0f MB (goal <= 1,024 MB at 1,000 intersections); highest 1-second sample %.0f MB with %.0f MB queued; queue at most %.0f MB; last %.0f MB\n", hwm / 1024, m / 1024, mq / 1048576, q / 1048576, v[NR] / 1024;
  printf "memory: RSS every second (MB): %s\n", s;
  printf "memory: queued bytes every second (MB, from collect.json): %s\n", sq;
}' "$tmp/rss.txt"
# lag: each row counted at the first poll that shows it; minutes whose close falls after the
# collector's shutdown are left out (its final flush writes open windows before they close)
awk -v off="$off" -v g="$grace" -v tstop="$tstop" '{
  if ($3 > seen[$2]) { n = $3 - seen[$2]; seen[$2] = $3; close_ms = $2 + 60000 + g * 1000;
    if (close_ms <= tstop + off) for (i = 0; i < n; i++) print $1 + off - close_ms }
}' "$tmp/polls.txt" | sort -n >"$tmp/lag.txt"
awk -v polls="$polls" -v a="$t0" -v b="$t1" -v g="$grace" '{ v[NR] = $1 } END {
  if (NR == 0) { print "lag: no minute closed during the run (raise BENCH_COLLECT_SECONDS)"; exit }
  p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1];
  printf "lag: minute close (end + %d s grace) to queryable row: p50 %.2f s, p99 %.2f s, max %.2f s over %d rows (goal p99 <= 2 s)\n", g, p50 / 1000, p99 / 1000, v[NR] / 1000, NR;
  printf "lag: references (same run): grace %d s, row flush every 1 s, poll period %.2f s (resolution)\n", g, (b - a) / polls;
}' "$tmp/lag.txt"
echo "collect: load average at the end $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
[ "${BENCH_COLLECT_ONLY:-0}" = 1 ] || spool_bench
