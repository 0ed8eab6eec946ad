#!/usr/bin/env bash
# bench/api.sh — `tsi serve` under load (issue 13), each figure beside its ceiling measured
# in the same run on the same data (wrk, 50 connections, keep-alive):
#   index    GET /api/v1/safety/index/ (plain, gzip)   vs nginx serving the identical bytes
#            as a static file (gzip_static for the gzip row)                goal >= 0.8x
#   db       history (7 d hourly), stats (7 d), nearby (2 km)               vs pgbench running
#            the handler's own SQL (tsi serve --print-sql) as tsi_reader, prepared, same
#            concurrency (tsi --threads 50: one connection per client, as pgbench)  goal >= 0.7x
#   parquet  history of one intersection's 48 h of 1-minute rows: PostgreSQL path vs the
#            Parquet path (a second server with --source parquet)           goal >= 10x
#   mixed    a mix of endpoints, 50 connections paced to ~1,000 req/s       goal p99 <= 50 ms,
#            zero errors
# Data: `tsi seed` (48 h realtime, 90 d hourly, 730 d daily) at each size of
# BENCH_API_SIZES (default "100 1000"). A private cluster in a temporary TSI_HOME on a
# random port. BENCH_BUILD=dir picks the build (default build); BENCH_SECONDS per run (8).
# Installs wrk and nginx-light from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
BIN=$root/${BENCH_BUILD:-build}/tsi
SIZES=${BENCH_API_SIZES:-100 1000}
SECS=${BENCH_SECONDS:-8}
CONN=50
[ -x "$BIN" ] || { echo "bench/api: $BIN is missing: run make first" >&2; exit 1; }
for tool in wrk nginx pgbench; do
  if ! command -v $tool >/dev/null; then
    pkg=$tool; [ $tool = nginx ] && pkg=nginx-light; [ $tool = pgbench ] && pkg=postgresql-client
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkg >/dev/null
  fi
done

tmp=$(mktemp -d /tmp/tsi-bench-api.XXXXXX)
export TSI_HOME=$tmp/home
unset DATABASE_URL DATABASE_READ_URL DATABASE_ADMIN_URL PGHOST PGHOSTADDR PGSERVICE PGDATABASE PGUSER PGPORT
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
  done
  exit 1
}
export TSI_PG_PORT=$(free_port)
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  sleep 0.5
  "$BIN" db stop >/dev/null 2>&1 || true
  local real
  real=$(readlink "$TSI_HOME/pg" 2>/dev/null || true)
  case "$real" in /var/lib/tsi/pg-*) rm -rf "$real" ;; esac
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT INT TERM

"$BIN" db start --log-level warn >/dev/null
"$BIN" migrate --log-level warn
READER=$("$BIN" db url --role tsi_reader)

# wrk reports: requests/s, p50, p95, p99 (ms), errors
cat >"$tmp/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local errs = summary.errors.connect + summary.errors.read + summary.errors.write
             + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT %.0f %.2f %.2f %.2f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, errs))
end
EOF
cat >"$tmp/mixed.lua" <<'EOF'
local paths = {"/api/v1/safety/index/", "/api/v1/safety/index/1", "/api/v1/safety/history/2?days=7",
  "/api/v1/safety/history/3/stats?days=7", "/api/v1/intersections/nearby?lat=38.87&lon=-77.27&radius=2000",
  "/api/v1/safety/history/4?days=1", "/health"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], {["Accept-Encoding"] = "gzip"})
end
delay = function() return 50 end
EOF
cat "$tmp/report.lua" >>"$tmp/mixed.lua"

run_wrk() { # url [header] [script]
  local url=$1 hdr=${2:-} script=${3:-$tmp/report.lua} out
  if [ -n "$hdr" ]; then
    out=$(wrk -t2 -c$CONN -d${SECS}s -H "$hdr" -s "$script" "$url" 2>&1)
  else
    out=$(wrk -t2 -c$CONN -d${SECS}s -s "$script" "$url" 2>&1)
  fi
  echo "$out" | awk '/^RESULT/ {print $2, $3, $4, $5, $6}'
}
run_pgbench() { # statement-name var=value...
  local name=$1; shift
  "$BIN" serve --print-sql "$name" |
    sed -e 's/\$1/:p1/g' -e 's/\$2/:p2/g' -e 's/\$3/:p3/g' -e 's/\$4/:p4/g' >"$tmp/$name.sql"
  local defs=() v
  for v in "$@"; do defs+=(-D "$v"); done
  PGOPTIONS="-c plan_cache_mode=force_generic_plan -c TimeZone=UTC" pgbench -n -M prepared -c $CONN -j 2 -T "$SECS" "${defs[@]}" -f "$tmp/$name.sql" "$READER" 2>&1 |
    awk '/^tps/ {print int($3)} /^latency average/ {}'
}
row() { # label tsi-result ref-result ref-label goal
  local label=$1 t=$2 r=$3 ref=$4 goal=$5
  set -- $t; local trps=$1 p50=$2 p95=$3 p99=$4 terr=$5
  local rrps=${r%% *}
  local ratio
  ratio=$(awk -v a="$trps" -v b="$rrps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
  printf "%-28s tsi %7s req/s p50 %6s p95 %6s p99 %6s ms err %s | %-22s %7s | ratio %5s (goal %s)\n" \
    "$label" "$trps" "$p50" "$p95" "$p99" "$terr" "$ref" "$rrps" "$ratio" "$goal"
}

day() { date -u -d "@$(( $(date -u +%s) - $1 * 86400 ))" +%Y-%m-%d; }
for N in $SIZES; do
  echo "--- $N intersections: seeding (48 h realtime, 90 d hourly, 730 d daily)"
  t0=$(date +%s.%N)
  "$BIN" seed --intersections "$N" --days 730 --log-level warn
  t1=$(date +%s.%N)
  rows=$(psql "$READER" -Atc "SELECT count(*) FROM safety_indices_realtime")
  awk -v a="$t0" -v b="$t1" -v r="$rows" 'BEGIN { printf "seed: %.1f s, %d realtime rows (%.0f rows/s)\n", b - a, r, r / (b - a) }'

  P1=$(free_port); P2=$(free_port); P3=$(free_port)
  "$BIN" serve --port "$P1" --bind 127.0.0.1 --threads $CONN --access-log off --log-level warn &
  pids+=($!)
  "$BIN" serve --port "$P2" --bind 127.0.0.1 --threads 8 --access-log off --source parquet --log-level warn &
  pids+=($!)
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$P1/health" >/dev/null && curl -sf "http://127.0.0.1:$P2/health" >/dev/null && break; sleep 0.1; done

  mkdir -p "$tmp/www"
  curl -sf "http://127.0.0.1:$P1/api/v1/safety/index/" -o "$tmp/www/index.json"
  gzip -6 -k -f "$tmp/www/index.json"
  cat >"$tmp/nginx.conf" <<EOF
user root;
worker_processes 2;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 2048; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  types { application/json json; }
  server { listen 127.0.0.1:$P3; root $tmp/www; gzip_static on; location / { } }
}
EOF
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null && sleep 0.5
  nginx -c "$tmp/nginx.conf"
  sleep 0.3
  size=$(stat -c %s "$tmp/www/index.json"); gz=$(stat -c %s "$tmp/www/index.json.gz")
  echo "index body: $size bytes plain, $gz gzip"

  row "index plain" "$(run_wrk "http://127.0.0.1:$P1/api/v1/safety/index/")" \
      "$(run_wrk "http://127.0.0.1:$P3/index.json")" "nginx static" ">= 0.8"
  row "index gzip" "$(run_wrk "http://127.0.0.1:$P1/api/v1/safety/index/" "Accept-Encoding: gzip")" \
      "$(run_wrk "http://127.0.0.1:$P3/index.json" "Accept-Encoding: gzip")" "nginx gzip_static" ">= 0.8"

  s7=$(day 6); e=$(day 0)
  t0s="${s7}T00:00:00Z"; t1s="$(date -u -d "$e + 1 day" +%Y-%m-%d)T00:00:00Z"
  row "history 7d hourly" "$(run_wrk "http://127.0.0.1:$P1/api/v1/safety/history/2?start_date=$s7&end_date=$e&aggregation=1hour")" \
      "$(run_pgbench series_hour "p1={2}" "p2=$t0s" "p3=$t1s")" "pgbench same SQL" ">= 0.7"
  row "stats 7d" "$(run_wrk "http://127.0.0.1:$P1/api/v1/safety/history/3/stats?start_date=$s7&end_date=$e")" \
      "$(run_pgbench stats "p1={3}" "p2=$t0s" "p3=$t1s")" "pgbench same SQL" ">= 0.7"
  row "nearby 2 km" "$(run_wrk "http://127.0.0.1:$P1/api/v1/intersections/nearby?lat=38.87&lon=-77.27&radius=2000")" \
      "$(run_pgbench nearby "p1=38.87" "p2=-77.27" "p3=2000")" "pgbench same SQL" ">= 0.7"

  s2=$(day 1)
  row "history 48h 1min: pg/pq" "$(run_wrk "http://127.0.0.1:$P1/api/v1/safety/history/5?start_date=$s2&end_date=$e&aggregation=1min")" \
      "$(run_wrk "http://127.0.0.1:$P2/api/v1/safety/history/5?start_date=$s2&end_date=$e&aggregation=1min")" "parquet path (tsi)" ">= 10"

  m=$(run_wrk "http://127.0.0.1:$P1/" "" "$tmp/mixed.lua")
  set -- $m
  printf "%-28s tsi %7s req/s p50 %6s p95 %6s p99 %6s ms err %s | goal ~1000 req/s, p99 <= 50 ms, 0 errors\n" \
    "mixed, 50 clients paced" "$1" "$2" "$3" "$4" "$5"

  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pids=()
  kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  rm -f "$tmp/nginx.pid"
  sleep 1
done
