#!/usr/bin/env bash
# bench/capacity.sh — whole-system capacity on this machine (issue 27): the simulator, the
# collector, PostgreSQL, the jobs and the API under 50 dashboard clients, all in real time
# at the simulator's rush hour, at a rising number of intersections N, until the system
# falls behind. A step passes when, over its run:
#   late messages <= 0.1 % of the messages in (collect.json);
#   row lag p99 <= 2 s after the minute closes (minute end + grace; rows polled as
#     tsi_reader, as bench/collect.sh does);
#   API p99 <= 50 ms with no error (wrk, 50 keep-alive connections, each paced to one
#     request every BENCH_CAPACITY_PACE_MS, default 1000 ms: 50 req/s over index, one
#     intersection's index, the 1-minute history of yesterday..today (what the dashboard's
#     default "24h" period asks), 7-day stats, nearby and /health; the dashboard itself
#     refreshes every 60 s, so this is a busy room of 50 users), from the first closed
#     minute on (before it an intersection's index is 404);
#   no error: db_errors, archive_errors, rows_rejected_by_db 0, wrk errors 0, no ERROR
#     line in the collector's or the server's log;
#   the simulator's clock kept real time (>= 0.97x: it waits for readers that fall behind).
# Each step prints each process's CPU share of one core (collector, simulator, PostgreSQL
# cluster, tsi serve, wrk, the jobs), their sum against the machine's cores, the
# collector's pipeline thread and busiest other thread, the load average, and the first
# failing check ("limit"). The jobs: `tsi jobs run hourly` every
# 60 s (more often than production's hourly schedule). A fresh private cluster per step.
#   BENCH_CAPACITY_STEPS="1000 2000 3000 4000 5000 6000" BENCH_CAPACITY_SECONDS=180
#   BENCH_CAPACITY_PACE_MS=1000 BENCH_CAPACITY_ALL=1 (go on after a failing step)
#   BENCH_CAPACITY_THREADS=8 (tsi serve --threads)
#   BENCH_CAPACITY_START (default: the latest 13:00Z before now, the simulator's rush hour)
# The simulated minutes must lie within the last 48 h: the 1-minute history of older
# minutes is answered from the indices Parquet archive through DuckDB (h_history.c), not
# from PostgreSQL, and a live dashboard reads today's. (The first runs' fixed date, 12 days
# back, made every history request a Parquet read: 28-270 ms inside the server, their API
# p99.) Each step checks that the history's range is one PostgreSQL answers; an older
# BENCH_CAPACITY_START fails it ("history-from-parquet").
#   BENCH_BUILD=build
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
BUILD=${BENCH_BUILD:-build}
BIN=$root/$BUILD/tsi
STEPS=${BENCH_CAPACITY_STEPS:-1000 2000 3000 4000 5000 6000}
SECS=${BENCH_CAPACITY_SECONDS:-180}
PACE=${BENCH_CAPACITY_PACE_MS:-1000}
THREADS=${BENCH_CAPACITY_THREADS:-8} # tsi serve --threads
if [ -n "${BENCH_CAPACITY_START:-}" ]; then
  START=$BENCH_CAPACITY_START
else
  t13=$(date -u -d "$(date -u +%F) 13:00:00" +%s)
  [ "$t13" -gt "$(date -u +%s)" ] && t13=$((t13 - 86400))
  START=$(date -u -d "@$t13" +%FT%TZ)
fi
GRACE=10
CONN=50
[ -x "$BIN" ] || { echo "bench/capacity: $BIN is missing: run make first" >&2; exit 1; }
if ! command -v wrk >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "bench/capacity: wrk is missing (apt-get install wrk)" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
tmp=$(mktemp -d /tmp/tsi-bench-capacity.XXXXXX)
unset DATABASE_URL DATABASE_READ_URL DATABASE_ADMIN_URL PGHOST PGHOSTADDR PGSERVICE PGDATABASE PGUSER PGPORT
. scripts/lib/ports.sh
pids=()
stop_step() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  if [ -n "${TSI_HOME:-}" ]; then
    "$BIN" db stop >/dev/null 2>&1 || true
    local real
    real=$(readlink "$TSI_HOME/pg" 2>/dev/null || true)
    case "$real" in /var/lib/tsi/pg-*) rm -rf "$real" ;; esac
    rm -rf "$TSI_HOME"
  fi
}
cleanup() {
  local rc=$?
  stop_step
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT INT TERM

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
cticks() { awk '{print $16 + $17}' "/proc/$1/stat" 2>/dev/null || echo 0; } # reaped children
pgticks() {
  local pm t p
  pm=$(head -1 "$(readlink -f "$TSI_HOME/pg")/postmaster.pid")
  t=$(($(ticks "$pm") + $(cticks "$pm")))
  for p in $(pgrep -P "$pm"); do t=$((t + $(ticks "$p"))); done
  echo "$t"
}
hz=$(getconf CLK_TCK)
# "tid ticks" of each thread of a process (the comm field, which may hold spaces, cut out)
tsnap() { cat /proc/"$1"/task/*/stat 2>/dev/null | sed 's/^\([0-9]*\) (.*) /\1 /' | awk '{print $1, $13 + $14}'; }

cat >"$tmp/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local errs = summary.errors.connect + summary.errors.read + summary.errors.write
             + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT %.0f %.2f %.2f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errs, summary.requests))
end
EOF

best=0
limit=
echo "capacity: steps N = $STEPS; ${SECS} s each in real time from $START (rush hour); $CONN API clients, one request every $PACE ms each; $(nproc) cores"
for n in $STEPS; do
  export TSI_HOME=$tmp/home-$n
  export TSI_PG_PORT=$(tsi_free_port)
  mkdir -p "$TSI_HOME"
  load0=$(cut -d' ' -f1-3 /proc/loadavg)
  "$BIN" db start --log-level warn >/dev/null
  "$BIN" migrate --log-level warn
  url=$("$BIN" db url --role tsi_reader)
  simport=$(tsi_free_port)
  "$BIN" sim --port "$simport" --intersections "$n" --speed 1 --start "$START" --log-level warn \
    >"$TSI_HOME/sim.log" 2>&1 &
  simpid=$!
  pids+=("$simpid")
  for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$simport/healthz" >/dev/null && break; sleep 0.2; done
  simnow() { curl -sf --max-time 5 "http://127.0.0.1:$simport/sim/status" | sed -n 's/.*"now":\([0-9]*\).*/\1/p'; }
  off=$(($(simnow) - $(date +%s%3N)))
  tstop=$(($(date +%s%3N) + SECS * 1000))
  VCC_BASE_URL=http://127.0.0.1:$simport VCC_CLIENT_ID=tsi-sim VCC_CLIENT_SECRET=tsi-sim-secret \
    "$BIN" collect --duration-seconds "$SECS" --status-seconds 5 --grace-seconds "$GRACE" \
    --max-skew-seconds 0 --log-level warn >"$TSI_HOME/collect.log" 2>&1 &
  cpid=$!
  pids+=("$cpid")
  # rows as tsi_reader sees them, from the start (each counted at the first poll showing it)
  (while kill -0 "$cpid" 2>/dev/null; do
    psql "$url" -XAtq -F ' ' -c "SELECT (extract(epoch FROM statement_timestamp()) * 1000)::bigint,
        (extract(epoch FROM \"timestamp\") * 1000)::bigint, count(*) FROM safety_indices_realtime
        GROUP BY 2 ORDER BY 2" 2>/dev/null || true
    sleep 0.3
  done) >"$TSI_HOME/polls.txt" &
  pollpid=$!
  pids+=("$pollpid")
  # the API once the collector has registered the intersections
  for _ in $(seq 1 150); do
    ids=$(psql "$url" -XAtq -c "SELECT id FROM intersections ORDER BY id LIMIT 3" 2>/dev/null | tr '\n' ' ')
    [ "$(echo "$ids" | wc -w)" = 3 ] && break
    sleep 0.2
  done
  set -- $ids
  ll=$(psql "$url" -XAtq -F ' ' -c "SELECT latitude, longitude FROM intersections WHERE id = $1")
  apiport=$(tsi_free_port)
  "$BIN" serve --port "$apiport" --bind 127.0.0.1 --threads "$THREADS" --access-log off --log-level warn \
    >"$TSI_HOME/serve.log" 2>&1 &
  apipid=$!
  pids+=("$apipid")
  for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$apiport/health" >/dev/null && break; sleep 0.2; done
  # the dashboard's clients from the first closed minute on (rows of the three ids)
  for _ in $(seq 1 600); do
    [ "$(psql "$url" -XAtq -c "SELECT count(DISTINCT intersection_id) FROM safety_indices_realtime
         WHERE intersection_id IN ($1, $2, $3)" 2>/dev/null)" = 3 ] && break
    sleep 0.2
  done
  # the history as the dashboard's default period ("24h", web/src/period.ts) asks for it:
  # 1-minute rows of yesterday..today by the wall clock's UTC dates (they hold START's); a
  # BENCH_CAPACITY_START before yesterday asks for its own day (as the first runs did)
  h0=$(date -u -d '-24 hours' +%F); h1=$(date -u +%F)
  [[ "${START:0:10}" < "$h0" ]] && h0=${START:0:10} h1=${START:0:10}
  hist="/api/v2/safety/history/$2?start_date=$h0&end_date=$h1&aggregation=1min"
  cat >"$tmp/mixed.lua" <<EOF
local paths = {"/api/v2/safety/index/", "/api/v2/safety/index/$1", "$hist",
  "/api/v2/safety/history/$3/stats?days=7",
  "/api/v2/intersections/nearby?lat=${ll% *}&lon=${ll#* }&radius=2000", "/health"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], {["Accept-Encoding"] = "gzip"})
end
delay = function() return $PACE end
EOF
  cat "$tmp/report.lua" >>"$tmp/mixed.lua"
  # where the history's minutes come from: PostgreSQL from 48 h back, the Parquet archive
  # before (h_history.c; X-Data-Source says postgres either way: it names the fallback)
  hsrc=postgres
  [ "$(date -u -d "$h0" +%s)" -lt $(($(date -u +%s) - 48 * 3600)) ] && hsrc=parquet
  # the jobs, every 60 s
  (while :; do "$BIN" jobs run hourly --log-level warn >>"$TSI_HOME/jobs.log" 2>&1 || true; sleep 60; done) &
  jobspid=$!
  pids+=("$jobspid")
  left=$(((tstop - $(date +%s%3N)) / 1000 - 2))
  [ "$left" -lt 10 ] && left=10
  wrk -t2 -c$CONN -d"${left}s" --latency -s "$tmp/mixed.lua" "http://127.0.0.1:$apiport/" >"$TSI_HOME/wrk.txt" 2>&1 &
  wrkpid=$!
  pids+=("$wrkpid")
  curl -s "http://127.0.0.1:$apiport/metrics" | grep '^tsi_http_request_duration_seconds_\(sum\|count\|bucket.*le="0.05"\)' >"$TSI_HOME/m0"
  c0=$(ticks "$cpid"); s0=$(ticks "$simpid"); a0=$(ticks "$apipid"); p0=$(pgticks)
  tsnap "$cpid" >"$TSI_HOME/threads0"; cp "$TSI_HOME/threads0" "$TSI_HOME/threads1"
  sc0=$(simnow); t0=$(date +%s.%N)
  ccpu=0; wcpu=0; jcpu=0
  while kill -0 "$cpid" 2>/dev/null; do
    c=$(ticks "$cpid"); [ "$c" -gt 0 ] && ccpu=$c
    tsnap "$cpid" >>"$TSI_HOME/threads1" # every sample: a thread that ends keeps its last
    w=$(ticks "$wrkpid"); [ "$w" -gt 0 ] && wcpu=$w
    j=$(cticks "$jobspid"); [ "$j" -gt 0 ] && jcpu=$j
    sleep 0.5
  done
  wait "$cpid" || true
  wait "$pollpid" 2>/dev/null || true
  t1=$(date +%s.%N); sc1=$(simnow)
  s1=$(ticks "$simpid"); a1=$(ticks "$apipid"); p1=$(pgticks)
  wait "$wrkpid" 2>/dev/null || true
  curl -s "http://127.0.0.1:$apiport/metrics" | grep '^tsi_http_request_duration_seconds_\(sum\|count\|bucket.*le="0.05"\)' >"$TSI_HOME/m1"
  # each route's requests, mean time inside the server and requests over 50 ms inside it
  # during the API run
  routes=$(awk 'FNR == NR { v0[$1] = $2; next } { d = $2 - v0[$1]; match($1, /route="[a-z_]+"/);
         r = substr($1, RSTART + 7, RLENGTH - 8);
         if ($1 ~ /_sum/) s[r] = d; else if ($1 ~ /_bucket/) b[r] = d; else c[r] = d }
       END { for (r in c) if (c[r] > 0)
         printf " %s %d x %.1f ms (%d over 50 ms);", r, c[r], 1000 * s[r] / c[r], c[r] - b[r] }' \
       "$TSI_HOME/m0" "$TSI_HOME/m1")
  json=$TSI_HOME/run/collect.json
  get() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$json"; }
  # row lag after the close, each row at the first poll that shows it (bench/collect.sh)
  lagp99=$(awk -v off="$off" -v g="$GRACE" -v tstop="$tstop" '{
      if ($3 > seen[$2]) { k = $3 - seen[$2]; seen[$2] = $3; close_ms = $2 + 60000 + g * 1000;
        if (close_ms <= tstop + off) for (i = 0; i < k; i++) print $1 + off - close_ms }
    }' "$TSI_HOME/polls.txt" | sort -n | awk '{ v[NR] = $1 } END {
      if (NR == 0) print "none"; else printf "%.2f", v[int((NR - 1) * 0.99) + 1] / 1000 }')
  set -- $(sed -n 's/^RESULT //p' "$TSI_HOME/wrk.txt") 0 0 0 0 0
  rps=$1 p50=$2 p99=$3 werr=$4
  errs=$(cat "$TSI_HOME/collect.log" "$TSI_HOME/serve.log" | grep -c ' ERROR ' || true)
  msgs=$(get messages_in); late=$(get late)
  dberr=$(get db_errors); aerr=$(get archive_errors); rej=$(get rows_rejected_by_db)
  load1=$(cut -d' ' -f1-3 /proc/loadavg)
  # the collector's threads: the pipeline (the main thread) and the busiest other one
  # (the raw archive's writer, a stream, DuckDB's), % of one core over the same window
  cthreads=$(awk -v main="$cpid" -v hz="$hz" -v w="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" '
    FNR == NR { t0[$1] = $2; next }
    { if ($2 > t1[$1]) t1[$1] = $2 }
    END { for (k in t1) { d = t1[k] - t0[k]; if (k == main) m = d; else if (d > o) o = d }
      printf "pipeline thread %.1f%%, busiest other %.1f%%", 100 * m / hz / w, 100 * o / hz / w }' \
    "$TSI_HOME/threads0" "$TSI_HOME/threads1")
  line=$(awk -v n="$n" -v w0="$t0" -v w1="$t1" -v hz="$hz" -v c="$((ccpu - c0))" -v s="$((s1 - s0))" \
    -v p="$((p1 - p0))" -v a="$((a1 - a0))" -v wr="$wcpu" -v j="$jcpu" -v msgs="$msgs" -v late="$late" \
    -v lag="$lagp99" -v rps="$rps" -v p99="$p99" -v werr="$werr" -v errs="$errs" -v dberr="$dberr" \
    -v aerr="$aerr" -v rej="$rej" -v hsrc="${hsrc:-none}" -v sc0="$sc0" -v sc1="$sc1" -v cores="$(nproc)" -v secs="$SECS" 'BEGIN {
    w = w1 - w0; pace = (sc1 - sc0) / 1000 / w; latep = msgs > 0 ? 100 * late / msgs : 0;
    # messages over the whole run of the collector; CPU over the API window
    tot = 0;
    split("collector simulator postgres serve wrk jobs", nm, " ");
    v[1] = c; v[2] = s; v[3] = p; v[4] = a; v[5] = wr; v[6] = j;
    out = "";
    for (i = 1; i <= 6; i++) { x = 100 * v[i] / hz / w; tot += x; out = out sprintf(" %s %.1f%%", nm[i], x) }
    fail = "";
    # the window opens at the first closed minute: a starved system leaves it too short
    if (w < 60) fail = fail sprintf(" window-short(%.0f s)", w);
    if (pace < 0.97) fail = fail sprintf(" simulator-behind(%.2fx)", pace);
    if (latep > 0.1) fail = fail sprintf(" late(%.2f%%)", latep);
    if (lag == "none" || lag + 0 > 2) fail = fail " row-lag(" lag ")";
    if (p99 + 0 > 50) fail = fail sprintf(" api-p99(%s ms)", p99);
    if (hsrc != "postgres") fail = fail " history-from-" hsrc;
    if (werr + errs + dberr + aerr + rej > 0) fail = fail sprintf(" errors(wrk %d, log %d, db %d, archive %d, refused %d)", werr, errs, dberr, aerr, rej);
    printf "%d|%s|%.0f msg/s, late %.3f %%, row lag p99 %s s, API %s req/s p99 %s ms, errors %d; sim %.2fx real time; CPU (one core = 100 %%):%s; sum %.0f %% of %d00 %%\n",
      n, fail == "" ? "PASS" : "FAIL" fail, msgs / secs, latep, lag, rps, p99, werr + errs + dberr + aerr + rej, pace, out, tot, cores;
  }')
  res=${line#*|}; verdict=${res%%|*}; detail=${res#*|}
  echo "capacity: N=$n $verdict: $detail (load $load0 -> $load1)"
  echo "capacity: N=$n collector: $cthreads"
  echo "capacity: N=$n API latency (wrk):$(awk '/Latency Distribution/ { on = 1; next } on && /%/ { printf " p%s %s", $1, $2 } on && !/%/ { on = 0 }' "$TSI_HOME/wrk.txt" | sed 's/%//g')"
  echo "capacity: N=$n server time per route:$routes"
  stop_step
  if [ "$verdict" = PASS ]; then
    best=$n
  else
    limit="N=$n: ${verdict#FAIL }"
    [ "${BENCH_CAPACITY_ALL:-0}" = 1 ] || break
  fi
done
echo "capacity: largest N passing: $best (goal >= 5,000)${limit:+; first failure $limit}"
