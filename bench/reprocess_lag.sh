#!/usr/bin/env bash
# bench/reprocess_lag.sh — the live collector's row lag beside `tsi reprocess` (issue 24),
# on a private cluster, in one run:
#   `tsi sim` (BENCH_RP_SIM_INTERSECTIONS, real time) and `tsi collect` against it for
#   BENCH_RP_SECONDS; the lag from a minute's close (minute end + grace) to its row being
#   queryable, measured as bench/collect.sh does (polling as tsi_reader, each row counted at
#   the first poll statement that shows it). After BENCH_RP_BASELINE_SECONDS, `tsi reprocess`
#   (its defaults: nice 10, lock timeout 2 s) replaces a closed hour 3 h ago, again and again
#   until the collector stops; its raw input is BENCH_RP_RAW_MINUTES minutes of generated
#   BSMs (bench/backfill_gen.c raw: BENCH_RP_RAW_INTERSECTIONS other intersections near
#   38.8 N, -77.2 E, 5 vehicles each, one message per vehicle-second).
# Rows seen before the first reprocess starts are the baseline, rows seen while one runs are
# "during"; both from the same run. Two lags per row: from the minute's close (end + grace; the
# collector's own bound, p99 <= 2 s, bench/collect.sh) and from the minute's end (what a user
# waits for a minute to appear: grace + processing). Goal (issue 24): the live collector's row
# lag p99 during a reprocess <= 2 x its baseline p99, taken on the lag from the minute's end:
# the lag after the close is at the poll's resolution (0.2 s) and near zero or negative (the
# collector may close a minute a little before end + grace by the simulator's clock), so a
# ratio of it says nothing; it is reported beside the 2 s bound.
#   BENCH_BUILD=build BENCH_RP_SECONDS=420 BENCH_RP_BASELINE_SECONDS=180
#   BENCH_RP_SIM_INTERSECTIONS=25 BENCH_RP_RAW_INTERSECTIONS=100 BENCH_RP_RAW_MINUTES=60
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
BUILD=${BENCH_BUILD:-build}
BIN=$root/$BUILD/tsi
[ -x "$BIN" ] || { echo "bench/reprocess_lag: $BIN is missing: build it first" >&2; exit 1; }
DUCK=${DUCKDB_PREFIX:-$root/third_party/duckdb}
secs=${BENCH_RP_SECONDS:-420}
base=${BENCH_RP_BASELINE_SECONDS:-180}
nsim=${BENCH_RP_SIM_INTERSECTIONS:-25}
nraw=${BENCH_RP_RAW_INTERSECTIONS:-100}
rawmin=${BENCH_RP_RAW_MINUTES:-60}
grace=10
tmp=$(mktemp -d /tmp/tsi-bench-rplag.XXXXXX)
export TSI_HOME=$tmp/home
unset DATABASE_URL DATABASE_READ_URL DATABASE_ADMIN_URL PGHOST PGHOSTADDR PGSERVICE PGDATABASE PGUSER PGPORT
. scripts/lib/ports.sh
export TSI_PG_PORT=$(tsi_free_port)
simpid=
cpid=
cleanup() {
  [ -n "$cpid" ] && kill "$cpid" 2>/dev/null || true
  [ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true
  "$BIN" db stop >/dev/null 2>&1 || true
  real=$(readlink "$TSI_HOME/pg" 2>/dev/null || true)
  case "$real" in /var/lib/tsi/pg-*) rm -rf "$real" ;; esac
  rm -rf "$tmp"
}
trap cleanup EXIT
cc -O2 -o "$tmp/gen" bench/backfill_gen.c -I"$DUCK/include" -L"$DUCK/lib" -lduckdb \
  -Wl,-rpath,"$DUCK/lib"
"$BIN" db start --log-level warn >/dev/null
"$BIN" migrate --log-level warn
OWNER=$("$BIN" db url --role tsi_owner)
psql "$OWNER" -X -q -v ON_ERROR_STOP=1 -c \
  "INSERT INTO intersections (id, name, latitude, longitude)
   SELECT i, 'bench ' || i, 38.8 + i * 0.001, -77.2 FROM generate_series(1, $nraw) i"
hour_us=$(( ($(date +%s) / 3600 - 3) * 3600 * 1000000 ))
"$tmp/gen" raw "$tmp/raw" "$hour_us" "$rawmin" "$nraw" 5
since=$(date -u -d "@$(( hour_us / 1000000 ))" +%Y-%m-%dT%H:00Z)
until=$(date -u -d "@$(( hour_us / 1000000 + 3600 ))" +%Y-%m-%dT%H:00Z)

port=$(tsi_free_port)
"$BIN" sim --port "$port" --intersections "$nsim" --speed 1 --start now --log-level warn \
  >"$tmp/sim.log" 2>&1 &
simpid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
simnow=$(curl -sf "http://127.0.0.1:$port/sim/status" | sed -n 's/.*"now":\([0-9]*\).*/\1/p')
off=$((simnow - $(date +%s%3N)))
tstop=$(( $(date +%s%3N) + secs * 1000 ))
VCC_BASE_URL=http://127.0.0.1:$port VCC_CLIENT_ID=tsi-sim VCC_CLIENT_SECRET=tsi-sim-secret \
  "$BIN" collect --duration-seconds "$secs" --grace-seconds "$grace" --log-level warn \
  >"$tmp/collect.log" 2>&1 &
cpid=$!
url=$("$BIN" db url --role tsi_reader)
# the poller: statement start (ms), minute (ms), rows of that minute visible now
(
  while kill -0 "$cpid" 2>/dev/null; do
    psql "$url" -XAtq -F ' ' -c "SELECT (extract(epoch FROM statement_timestamp()) * 1000)::bigint,
        (extract(epoch FROM \"timestamp\") * 1000)::bigint, count(*) FROM safety_indices_realtime
        WHERE \"timestamp\" > now() - interval '1 hour' GROUP BY 2 ORDER BY 2" 2>/dev/null || true
    sleep 0.2
  done
) >"$tmp/polls.txt" &
poller=$!
sleep "$base"
: >"$tmp/windows.txt"
runs=0
refused=0
while kill -0 "$cpid" 2>/dev/null; do
  a=$(date +%s%3N)
  rc=0
  "$BIN" reprocess --since "$since" --until "$until" --raw "$tmp/raw" \
    --log-level warn >"$tmp/rp.out" 2>&1 || rc=$?
  b=$(date +%s%3N)
  [ "$rc" = 0 ] || { refused=$((refused + 1)); tail -3 "$tmp/rp.out"; }
  echo "$a $b" >>"$tmp/windows.txt"
  runs=$((runs + 1))
done
wait "$cpid" || { echo "collect failed:"; tail -20 "$tmp/collect.log"; exit 1; }
cpid=
wait "$poller" || true
first=$(head -1 "$tmp/windows.txt" | cut -d' ' -f1)
# lag per row, tagged with the phase of the poll that first showed it
awk -v off="$off" -v g="$grace" -v tstop="$tstop" -v first="$first" -v W="$tmp/windows.txt" '
  BEGIN { while ((getline l < W) > 0) { split(l, x, " "); n++; wa[n] = x[1]; wb[n] = x[2] } }
  {
    if ($3 > seen[$2]) {
      k = $3 - seen[$2]; seen[$2] = $3; close_ms = $2 + 60000 + g * 1000;
      if (close_ms > tstop + off) next;
      t = $1; phase = "";
      if (t < first) phase = "baseline";
      else for (i = 1; i <= n; i++) if (t >= wa[i] && t < wb[i]) { phase = "during"; break }
      if (phase != "") for (j = 0; j < k; j++) print phase, t + off - close_ms
    }
  }' "$tmp/polls.txt" >"$tmp/lag.txt"
stats() { # phase -> "p50 p99 max n" (s)
  awk -v p="$1" '$1 == p { print $2 }' "$tmp/lag.txt" | sort -n |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "- - - 0"; exit }
      printf "%.2f %.2f %.2f %d\n", v[int((NR - 1) * 0.5) + 1] / 1000,
             v[int((NR - 1) * 0.99) + 1] / 1000, v[NR] / 1000, NR }'
}
read -r b50 b99 bmax bn < <(stats baseline)
read -r d50 d99 dmax dn < <(stats during)
rmsgs=$(( nraw * 5 * rawmin * 60 ))
echo "collector: $nsim simulated intersections in real time for $secs s, grace $grace s"
echo "reprocess: $runs run(s) of $since..$until ($rmsgs raw messages, $nraw intersections)," \
     "$refused not exit 0; wall time per run:" \
     "$(awk '{ s += $2 - $1 } END { if (NR) printf "%.1f s", s / NR / 1000 }' "$tmp/windows.txt")"
echo "lag after the close, baseline (before any reprocess): p50 ${b50} s p99 ${b99} s max ${bmax} s ($bn rows)"
echo "lag after the close, during reprocess:                p50 ${d50} s p99 ${d99} s max ${dmax} s ($dn rows)"
awk -v b="$b99" -v d="$d99" -v g="$grace" 'BEGIN {
  if (b == "-" || d == "-") { print "goal p99 during <= 2 x baseline: not measured (no rows in a phase)"; exit }
  printf "lag from the minute end (grace %d s + the above): p99 baseline %.2f s, during %.2f s (%.2fx)\n", g, b + g, d + g, (d + g) / (b + g);
  printf "goal p99 during <= 2 x baseline, from the minute end (%.2f s): %s\n", 2 * (b + g), (d + g <= 2 * (b + g) ? "met" : "NOT met");
  printf "bound p99 during <= 2 s after the close: %s; reprocess adds %.2f s at p99\n", (d <= 2 ? "met" : "NOT met"), d - b }'
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
