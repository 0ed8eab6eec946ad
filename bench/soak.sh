#!/usr/bin/env bash
# bench/soak.sh — the collector's soak (issue 12, the requirement's "no errors in dual-write
# mode for 48 hours" gate): `tsi sim` at 100 intersections, accelerated, through
# `tsi collect` into PostgreSQL and the Parquet archive, on a private cluster and TSI_HOME
# in a fresh /tmp/tsi-soak.* directory (its own PostgreSQL port, the simulator on a port
# the kernel picks). Long: scripts/bench runs it only with TSI_BENCH_SOAK=1.
#
#   bench/soak.sh [--hours 48] [--intersections 100] [--speed 40] [--max-wall-minutes 0]
#                 [--grace-seconds 10*speed] [--build build] [--keep]
#
# --hours is simulated time. The simulator runs at --speed simulated seconds per second at
# most; its backpressure holds its clock back while the collector is behind, so the speed
# reached is what the collector sustains (reported). --max-wall-minutes (0: none) ends the
# soak early at that wall time; the report then states the simulated hours covered.
# --grace-seconds (simulated seconds) defaults to 10 x the speed cap: the collector's own
# default of 10 s, as wall time. What turns a message late is a wall-time skew (one stream's
# frames waiting in the queue behind the other's); at an accelerated clock the same skew
# spans speed-times more simulated seconds, so a grace in simulated seconds that does not
# scale tolerates only 1/speed of the skew production tolerates.
#
# No retention job runs during the soak (no `tsi jobs` at all): every realtime row written
# is kept, so ALL of them are compared with the indices Parquet, whatever the run's length
# (the 48 h realtime retention is not exercised here; tests/integration/test_jobs_retention
# covers it).
#
# Reported at the end (the gate passes when all hold):
#  - per intersection-minute, indices Parquet rows == safety_indices_realtime rows: no key
#    on one side only, no key twice, equal counts and combined index (bench_soak_check);
#  - zero collector errors: no ERROR line in its log; db_errors, archive_errors,
#    rows_rejected_by_db and the spool depth at the end all 0 (run/collect.json);
#  - every raw and indices archive file opens in DuckDB, and the raw rows in the files
#    equal the collector's raw_rows_archived counter;
#  - at most 1 % of the messages late (a windows-closed-without-their-traffic check);
#  - the collector's resident memory (VmRSS, sampled every 10 s): its floor at the start
#    (after 2 minutes of wall time), middle and end, beside its peak: the leak check.
set -euo pipefail
cd "$(dirname "$0")/.."
hours=${TSI_SOAK_HOURS:-48}
nis=${TSI_SOAK_INTERSECTIONS:-100}
speed=${TSI_SOAK_SPEED:-40}
maxwall=${TSI_SOAK_MAX_WALL_MINUTES:-0}
grace=${TSI_SOAK_GRACE_SECONDS:-}
BUILD=${BENCH_BUILD:-build}
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
  --hours) hours=$2; shift 2 ;;
  --intersections) nis=$2; shift 2 ;;
  --speed) speed=$2; shift 2 ;;
  --max-wall-minutes) maxwall=$2; shift 2 ;;
  --grace-seconds) grace=$2; shift 2 ;;
  --build) BUILD=$2; shift 2 ;;
  --keep) keep=1; shift ;;
  *) echo "usage: bench/soak.sh [--hours H] [--intersections N] [--speed X] [--max-wall-minutes M] [--grace-seconds G] [--build DIR] [--keep]" >&2; exit 2 ;;
  esac
done
[ -n "$grace" ] || grace=$(awk -v s="$speed" 'BEGIN { printf "%.0f", 10 * s }')
case "$grace" in '' | *[!0-9]*) echo "bench/soak: --grace-seconds wants whole seconds, got '$grace'" >&2; exit 2 ;; esac
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" --target tsi bench_soak_check -j "$(nproc)" >/dev/null
tmp=$(mktemp -d /tmp/tsi-soak.XXXXXX)
# private copies: a rebuild of $BUILD during a long soak does not change what runs
mkdir -p "$tmp/bin"
cp "$BUILD/tsi" "$BUILD/bench_soak_check" "$tmp/bin/"
BIN=$tmp/bin/tsi
export TSI_HOME=$tmp/home
. scripts/lib/ports.sh
TSI_PG_PORT=$(tsi_free_port)
export TSI_PG_PORT
unset DATABASE_URL PGHOST PGSERVICE PGDATABASE PGUSER PGPORT
simpid= cpid=
cleanup() {
  [ -n "$cpid" ] && kill "$cpid" 2>/dev/null || true
  [ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true
  "$BIN" db stop >/dev/null 2>&1 || true
  real=$(readlink "$TSI_HOME/pg" 2>/dev/null || true)
  case "$real" in /var/lib/tsi/pg-*) rm -rf "$real" ;; esac
  if [ "$keep" = 1 ]; then echo "soak: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "soak: $hours simulated hours at $nis intersections, speed <= $speed, grace $grace simulated s, dir $tmp, PostgreSQL port $TSI_PG_PORT"
"$BIN" db start --log-level warn >/dev/null
"$BIN" migrate --log-level warn
"$BIN" sim --port 0 --port-file "$tmp/sim.port" --intersections "$nis" --speed "$speed" \
  --log-level warn >"$tmp/sim.log" 2>&1 &
simpid=$!
for _ in $(seq 1 150); do [ -s "$tmp/sim.port" ] && break; sleep 0.2; done
port=$(cat "$tmp/sim.port")
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
simnow() { curl -sf "http://127.0.0.1:$port/sim/status" | sed -n 's/.*"now":\([0-9]*\).*/\1/p'; }
s0=$(simnow)
target=$(awk -v a="$s0" -v h="$hours" 'BEGIN { printf "%.0f", a + h * 3600000 }')
# the raw archive flushes every 60 s of wall time (TSI_FLUSH_SECONDS), a status line every 60 s
VCC_BASE_URL=http://127.0.0.1:$port VCC_CLIENT_ID=tsi-sim VCC_CLIENT_SECRET=tsi-sim-secret \
  "$BIN" collect --grace-seconds "$grace" --max-skew-seconds 0 --status-seconds 60 --log-level info >"$tmp/collect.log" 2>&1 &
cpid=$!
w0=$(date +%s)
hz=$(getconf CLK_TCK)
rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$cpid/status" 2>/dev/null; }
: >"$tmp/trace.txt" # wall s, simulated h, collector RSS kB, collector CPU ticks
last_print=0
while :; do
  sleep 10
  kill -0 "$cpid" 2>/dev/null || { echo "soak: the collector died"; tail -30 "$tmp/collect.log"; exit 1; }
  kill -0 "$simpid" 2>/dev/null || { echo "soak: the simulator died"; tail -30 "$tmp/sim.log"; exit 1; }
  now=$(simnow || echo "")
  [ -n "$now" ] || continue
  w=$(($(date +%s) - w0))
  cpu=$(awk '{print $14 + $15}' "/proc/$cpid/stat")
  echo "$w $(awk -v a="$now" -v b="$s0" 'BEGIN { printf "%.3f", (a - b) / 3600000 }') $(rss) $cpu" >>"$tmp/trace.txt"
  if [ $((w - last_print)) -ge 600 ]; then
    last_print=$w
    tail -1 "$tmp/trace.txt" | awk '{ printf "soak: %5d s wall, %6.2f simulated h, collector RSS %d kB\n", $1, $2, $3 }'
  fi
  [ "$now" -ge $((target + grace * 1000 + 30000)) ] && break # the last minute closed (grace) and flushed
  if [ "$maxwall" -gt 0 ] && [ "$w" -ge $((maxwall * 60)) ]; then
    echo "soak: wall limit of $maxwall min reached before $hours simulated hours"
    break
  fi
done
kill -TERM "$cpid"
wend=$(($(date +%s) - w0))
# the collector closes its streams at once; the simulator then stops so the collector's
# final flush has the CPU (its clock would otherwise run on with nobody reading)
sleep 3
kill "$simpid" 2>/dev/null || true
wait "$simpid" 2>/dev/null || true
simpid=
crc=0
wait "$cpid" || crc=$?
cpid=
json=$TSI_HOME/run/collect.json
get() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$json"; }
"$tmp/bin/bench_soak_check" --archive "$TSI_HOME/archive" >"$tmp/check.txt" 2>"$tmp/check.err" || true
cget() { sed -n "s/^$1=\(.*\)$/\1/p" "$tmp/check.txt"; }
errors=$(grep -c ' ERROR ' "$tmp/collect.log" || true)
warns=$(grep -c ' WARN ' "$tmp/collect.log" || true)
raw_files=$(( $(cget raw_bsm_rows) + $(cget raw_psm_rows) + $(cget raw_mapdata_rows) + $(cget raw_spat_rows) ))
simh=$(tail -1 "$tmp/trace.txt" | awk '{print $2}')
dq=$(psql "$("$BIN" db url --role tsi_reader)" -XAtq -c \
  "SELECT issue_type || ' rows ' || count(*) || ' messages ' || coalesce(sum((metadata->>'count')::bigint), 0) FROM data_quality_log GROUP BY issue_type ORDER BY 1" 2>/dev/null | tr '\n' ';' || true)
echo "soak: ran $wend s wall, $simh simulated hours (asked $hours) at $nis intersections:" \
  "$(awk -v h="$simh" -v w="$wend" 'BEGIN { printf "%.1f", h * 3600 / w }')x real time (speed cap $speed)"
echo "soak: collector exit status $crc; messages in $(get messages_in), deduped $(get deduped)," \
  "unmatched $(get unmatched), late $(get late), rejected $(get rejected), stream reconnects $(get stream_reconnects)"
echo "soak: realtime rows: PostgreSQL $(cget pg_rows) ($(cget pg_intersections) intersections)," \
  "indices Parquet $(cget parquet_rows) in $(cget indices_files) files; keys only in Parquet $(cget only_parquet)," \
  "only in PostgreSQL $(cget only_pg), written twice in Parquet $(cget parquet_dup_keys), values differing $(cget values_differ)"
echo "soak: collector errors: $errors ERROR log lines ($warns WARN), db_errors $(get db_errors)," \
  "archive_errors $(get archive_errors), rows_rejected_by_db $(get rows_rejected_by_db), spool depth at end $(get spool_depth), vcc_errors $(get vcc_errors), poll_errors $(get poll_errors)"
echo "soak: archive: raw files bsm $(cget raw_bsm_files) psm $(cget raw_psm_files) mapdata $(cget raw_mapdata_files) spat $(cget raw_spat_files)," \
  "indices+conflicts $(($(cget indices_files) + $(cget conflicts_files))); files that do not open in DuckDB: $(cget files_failed);" \
  "raw rows in the files $raw_files, raw_rows_archived counter $(get raw_rows_archived)"
echo "soak: data_quality_log: ${dq:-none}"
# RSS swings with each raw archive flush (DuckDB buffers a minute of messages): the leak
# check compares the floor (the lowest sample) of a 10-minute window at the start (after
# 2 minutes of warm-up), in the middle and at the end; a leak raises the floor
awk -v hz="$hz" '{ w[NR] = $1; r[NR] = $3; c[NR] = $4 } END {
  s = 1; while (s < NR && w[s] < 120) s++;
  span = w[NR] - w[s]; win = span < 1800 ? span / 3 : 600;
  mid = w[s] + span / 2;
  a = -1; m = -1; e = -1; peak = 0;
  for (i = s; i <= NR; i++) {
    if (r[i] > peak) peak = r[i];
    if (w[i] <= w[s] + win && (a < 0 || r[i] < a)) a = r[i];
    if (w[i] >= mid - win / 2 && w[i] <= mid + win / 2 && (m < 0 || r[i] < m)) m = r[i];
    if (w[i] >= w[NR] - win && (e < 0 || r[i] < e)) e = r[i];
  }
  printf "soak: collector RSS floor (lowest of a %.0f s window): start %d kB, middle %d kB, end %d kB (end/start %.2f); peak %d kB\n",
    win, a, m, e, (a > 0 ? e / a : 0), peak;
  if (NR > s) printf "soak: collector CPU %.1f %% of one core over the run\n", 100 * (c[NR] - c[s]) / hz / (w[NR] - w[s]);
}' "$tmp/trace.txt"
[ -s "$tmp/check.err" ] && sed 's/^/soak: check: /' "$tmp/check.err" | head -20
fail=0
[ "$crc" = 0 ] || fail=1
[ "$(cget check)" = pass ] || fail=1
[ "$errors" = 0 ] || fail=1
for k in db_errors archive_errors rows_rejected_by_db spool_depth; do [ "$(get "$k")" = 0 ] || fail=1; done
[ "$raw_files" = "$(get raw_rows_archived)" ] || fail=1
# late messages are data quality, not errors, but more than 1 % of them means the run's
# windows closed without their traffic: the indices would be wrong on both sides alike
[ $(( $(get late) * 100 )) -le "$(get messages_in)" ] || { echo "soak: more than 1 % of the messages late"; fail=1; }
if [ "$fail" = 0 ]; then echo "soak: PASS"; else
  echo "soak: FAIL"; grep ' ERROR ' "$tmp/collect.log" | head -10; exit 1
fi
