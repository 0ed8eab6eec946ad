#!/usr/bin/env bash
# bench/ops.sh — operations figures (issue 17) on a private embedded cluster:
#   1. bytes per intersection-day of every table and index, from `tsi seed` history of
#      OPS_DAYS days x OPS_INTERSECTIONS intersections (1-minute rows are kept 2 days,
#      hourly 90, daily forever: each table is divided by the days it actually holds);
#   2. wall time of `tsi backup run --type full` beside pg_basebackup of the same cluster
#      (the reference: a plain physical copy), and of `tsi backup restore --to TIME` into a
#      fresh directory plus recovery to promotion, beside `cp -a` of that copy;
#   3. replica lag: a streaming replica (pg_basebackup) while the primary takes the
#      collector's write pattern at OPS_LAG_INTERSECTIONS intersections (one batch of one
#      row per intersection per "minute", OPS_LAG_BATCHES batches as fast as they commit:
#      60x and more faster than real time), time from each commit until the replica shows
#      it; the reference is the commit time of the same batch on the primary.
#   4. raw archive bytes per intersection-day: `tsi sim` (OPS_RAW_INTERSECTIONS, at
#      OPS_RAW_SPEED x real time, from OPS_RAW_START_HOUR local time of yesterday for
#      OPS_RAW_HOURS simulated hours) and `tsi collect --no-db` with its flush, SPaT and
#      MapData intervals divided by the speed (the same simulated cadence as in real
#      time), then `tsi archive compact`; the complete hours' raw/{bsm,psm,spat,mapdata}
#      bytes, scaled to a day: BSM and PSM by the share of the simulator's daily profile
#      (src/sim/model.c) that the hours hold, SPaT and MapData by time;
#   5. replica lag under the real collector: `tsi sim` at OPS_LAG_INTERSECTIONS in real
#      time and `tsi collect` writing to the primary for OPS_LAG_SECONDS, a pg_basebackup
#      streaming replica; every 0.5 s pg_stat_replication's replay_lag and bytes behind,
#      p50/p99/max, beside the write rate (rows and WAL bytes per second) and the load.
# Env: BIN (default build/tsi), OPS_SECTIONS="sizes backup lag raw lagcollect" (which to
#      run), OPS_INTERSECTIONS=100, OPS_DAYS=30, OPS_LAG_INTERSECTIONS=1000,
#      OPS_LAG_BATCHES=60, OPS_RAW_INTERSECTIONS=10, OPS_RAW_HOURS=3, OPS_RAW_SPEED=30,
#      OPS_RAW_START_HOUR=12, OPS_LAG_SECONDS=300.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/build/tsi}
N=${OPS_INTERSECTIONS:-100}
DAYS=${OPS_DAYS:-30}
LAG_N=${OPS_LAG_INTERSECTIONS:-1000}
LAG_BATCHES=${OPS_LAG_BATCHES:-60}
SECTIONS=" ${OPS_SECTIONS:-sizes backup lag raw lagcollect} "
want() { [[ "$SECTIONS" == *" $1 "* ]]; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$BIN" ] || { echo "bench/ops.sh: $BIN missing (make build)" >&2; exit 1; }

unset DATABASE_URL DATABASE_READ_URL DATABASE_ADMIN_URL PGHOST PGHOSTADDR PGSERVICE PGDATABASE PGUSER PGPORT
tmp=$(mktemp -d /tmp/tsi-bench-ops.XXXXXX)
chmod 755 "$tmp"
export TSI_HOME=$tmp/home TSI_LOG_LEVEL=warn TSI_DB_NAME=tsi
. scripts/lib/ports.sh
export TSI_PG_PORT=$(tsi_free_port)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir_pg() { mkdir -p "$1"; chmod 700 "$1"; [ "$(id -u)" = 0 ] && chown postgres: "$1" || true; }
restored=$tmp/restored ref=$tmp/ref ref2=$tmp/ref-copy replica=$tmp/replica
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for d in "$restored" "$replica"; do
    [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
  done
  "$BIN" db stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

"$BIN" db start >/dev/null
"$BIN" migrate >/dev/null
"$BIN" backup setup >/dev/null 2>&1
ADMIN=$("$BIN" db url --role postgres)
q() { psql -X -q -At "$ADMIN" -c "$1"; }

if want sizes || want backup; then
echo "seeding $N intersections x $DAYS days (tsi seed) ..."
"$BIN" seed --intersections "$N" --days "$DAYS" --no-parquet >/dev/null 2>&1
q "VACUUM ANALYZE" >/dev/null

echo
echo "== bytes per intersection-day ($N intersections; days held: realtime min($DAYS,2), hourly min($DAYS,90), daily $DAYS)"
rt_days=$(( DAYS < 2 ? DAYS : 2 )); hr_days=$(( DAYS < 90 ? DAYS : 90 ))
q "WITH t(name, days) AS (VALUES ('safety_indices_realtime', $rt_days), ('safety_indices_hourly', $hr_days),
        ('safety_indices_daily', $DAYS), ('intersections', 1)),
   s AS (SELECT t.name, t.days,
          (SELECT COALESCE(sum(pg_relation_size(relid) + COALESCE(pg_relation_size(reltoastrelid), 0)), 0)
             FROM (SELECT relid FROM pg_partition_tree(t.name::regclass) UNION SELECT t.name::regclass) p JOIN pg_class c ON c.oid = p.relid) AS heap,
          (SELECT COALESCE(sum(pg_indexes_size(relid)), 0) FROM (SELECT relid FROM pg_partition_tree(t.name::regclass) UNION SELECT t.name::regclass) p) AS idx,
          (SELECT COALESCE(sum(n_live_tup), 0) FROM (SELECT relid FROM pg_partition_tree(t.name::regclass) UNION SELECT t.name::regclass) p
             JOIN pg_stat_all_tables s ON s.relid = p.relid) AS nrows
     FROM t)
 SELECT format('%-26s rows %9s  heap %10s B  indexes %10s B  per intersection-day: heap %8s B, indexes %8s B, %6s rows',
               name, nrows, heap, idx,
               round(heap::numeric / ($N * days)), round(idx::numeric / ($N * days)),
               round(nrows::numeric / ($N * days), 1))
   FROM s ORDER BY name"
echo "per index (summed over partitions):"
q "WITH x AS (
   SELECT COALESCE(pi.inhparent, i.indexrelid)::regclass::text AS idx, pg_relation_size(i.indexrelid) AS size
     FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
     LEFT JOIN pg_inherits pi ON pi.inhrelid = i.indexrelid
    WHERE c.relnamespace = 'public'::regnamespace
      AND (c.relname LIKE 'safety\_indices\_%' OR c.relname = 'intersections'))
 SELECT format('  %-48s %11s B  %8s B per intersection-day', idx, sum(size),
          round(sum(size)::numeric / ($N * CASE WHEN idx LIKE 'safety_indices_realtime%' THEN $rt_days
                 WHEN idx LIKE 'safety_indices_hourly%' THEN $hr_days
                 WHEN idx LIKE 'safety_indices_daily%' THEN $DAYS ELSE 1 END)))
   FROM x GROUP BY idx ORDER BY sum(size) DESC"
echo "database: $(q "SELECT pg_size_pretty(pg_database_size('tsi'))")"

fi

if want backup; then
echo
echo "== backup (full) and point-in-time restore"
t0=$(now); "$BIN" backup run --type full >/dev/null 2>&1; t1=$(now)
b_tsi=$(secs "$t0" "$t1")
mkdir_pg "$ref"
t0=$(now); as_pg pg_basebackup -d "$ADMIN" -D "$ref" -X stream -c fast >/dev/null 2>&1; t1=$(now)
b_ref=$(secs "$t0" "$t1")
q "CREATE TABLE bench_marker (a int)"
T=$(q "SELECT clock_timestamp()")
sleep 1
q "INSERT INTO bench_marker VALUES (1)"
seg=$(q "SELECT pg_walfile_name(pg_switch_wal())")
for _ in $(seq 1 600); do
  [ "$(q "SELECT COALESCE(last_archived_wal >= '$seg', false) FROM pg_stat_archiver")" = t ] && break
  sleep 0.1
done
t0=$(now); "$BIN" backup restore --to "$T" --target-dir "$restored" >/dev/null 2>&1; t1=$(now)
r_tsi=$(secs "$t0" "$t1")
port2=$(tsi_free_port)
t2=$(now)
as_pg "$PGBIN/pg_ctl" -D "$restored" -o "-p $port2 -k $restored" -l "$restored/bench.log" -w start >/dev/null
for _ in $(seq 1 3000); do
  [ "$(psql -X -At "host=$restored port=$port2 user=postgres dbname=tsi" -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && break
  sleep 0.1
done
t3=$(now)
r_rec=$(secs "$t2" "$t3")
rows=$(psql -X -At "host=$restored port=$port2 user=postgres dbname=tsi" -c "SELECT count(*) FROM bench_marker")
as_pg "$PGBIN/pg_ctl" -D "$restored" -m fast -w stop >/dev/null
mkdir_pg "$ref2"
t0=$(now); as_pg cp -a "$ref/." "$ref2/"; t1=$(now)
r_ref=$(secs "$t0" "$t1")
repo=$(du -sb "$TSI_HOME/backup" | cut -f1)
dbsize=$(q "SELECT pg_database_size('tsi')")
echo "tsi backup run --type full:        ${b_tsi} s   (reference pg_basebackup: ${b_ref} s; ratio $(awk -v a="$b_tsi" -v b="$b_ref" 'BEGIN{printf "%.2f", a/b}'))"
echo "tsi backup restore --to TIME:      ${r_tsi} s   + recovery to promotion ${r_rec} s   (reference cp -a of the copy: ${r_ref} s)"
echo "restored to the noted time:        bench_marker rows = $rows (want 0)"
echo "repository: $repo B (zstd) for a database of $dbsize B"

rm -rf "$ref" "$ref2"
fi

# a pg_basebackup streaming replica of the primary (once, for the lag sections)
replica_up() {
  [ -f "$replica/postmaster.pid" ] && return 0
  mkdir_pg "$replica"
  as_pg pg_basebackup -d "$ADMIN application_name=bench_replica" -D "$replica" -R -X stream -c fast >/dev/null 2>&1
  port3=$(tsi_free_port)
  as_pg "$PGBIN/pg_ctl" -D "$replica" -o "-p $port3 -k $replica" -l "$replica/bench.log" -w start >/dev/null
  RCI="host=$replica port=$port3 user=postgres dbname=tsi"
}

if want lag; then
echo
echo "== replica lag under the collector's write pattern, synthetic ($LAG_N intersections, $LAG_BATCHES batches; load $(load))"
replica_up
q "INSERT INTO intersections (id, name, latitude, longitude)
   SELECT i, 'lag ' || i, 38 + i * 0.0001, -77 FROM generate_series(100001, 100000 + $LAG_N) i" >/dev/null
lags=$tmp/lags commits=$tmp/commits
epoch=$(q "SELECT date_trunc('minute', now()) - interval '3 hours'")
: >"$lags"; : >"$commits"
for b in $(seq 1 "$LAG_BATCHES"); do
  c0=$(now)
  q "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", combined_index, traffic_volume,
       vru_count, vehicle_event_count, vru_event_count, hour_of_day, day_of_week)
     SELECT i, '$epoch'::timestamptz - $b * interval '1 minute', 50, 10, 0, 0, 0, 0, 0
       FROM generate_series(100001, 100000 + $LAG_N) i" >/dev/null
  c1=$(now)
  want=$((b * LAG_N))
  until [ "$(psql -X -At "$RCI" -c "SELECT count(*) FROM safety_indices_realtime WHERE intersection_id > 100000")" -ge "$want" ]; do :; done
  c2=$(now)
  secs "$c0" "$c1" >>"$commits"; echo >>"$commits"
  secs "$c1" "$c2" >>"$lags"; echo >>"$lags"
done
stat() { sort -n "$1" | awk '{a[NR]=$1} END {printf "median %.3f s, p90 %.3f s, max %.3f s", a[int((NR+1)/2)], a[int(NR*0.9)], a[NR]}'; }
echo "replica visible after commit: $(stat "$lags")   (includes one psql poll round trip)"
echo "reference, commit on primary: $(stat "$commits")"
echo "pg_stat_replication now: $(q "SELECT format('state %s, replay_lag %s, bytes behind %s', state, COALESCE(replay_lag::text, '0'), pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)) FROM pg_stat_replication")"
fi

# the simulator in the background (port speed intersections start log); simnow port
sim_start() {
  "$BIN" sim --port "$1" --speed "$2" --intersections "$3" --start "$4" --seed 1 --log-level warn >"$5" 2>&1 &
  simpid=$!
  pids+=("$simpid")
  for _ in $(seq 1 900); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0; sleep 0.2; done
  echo "bench/ops.sh: the simulator did not start" >&2; tail -5 "$5" >&2; exit 1
}
simnow() { curl -sf "http://127.0.0.1:$1/sim/status" | sed -n 's/.*"now":\([0-9]*\).*/\1/p'; }
vcc_env() { echo "VCC_BASE_URL=http://127.0.0.1:$1 VCC_CLIENT_ID=tsi-sim VCC_CLIENT_SECRET=tsi-sim-secret"; }
collect_counter() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$TSI_HOME/run/collect.json"; }

if want raw; then
RN=${OPS_RAW_INTERSECTIONS:-10} RH=${OPS_RAW_HOURS:-3} RS=${OPS_RAW_SPEED:-30} RSH=${OPS_RAW_START_HOUR:-12}
TZO=-300 # the simulator's default --tz-offset (minutes east of UTC) of its daily profile
day=$(date -u -d yesterday +%F)
start_ms=$(( ($(date -u -d "$day 00:00:00" +%s) + (RSH * 60 - TZO) * 60) * 1000 ))
end_ms=$(( start_ms + RH * 3600000 ))
echo
echo "== raw archive bytes per intersection-day: $RN intersections, $RH simulated hours from $RSH:00 local ($(date -u -d @$((start_ms / 1000)) +%FT%H:%MZ)) at ${RS}x (load $(load))"
arch=$tmp/raw-archive
rport=$(tsi_free_port)
w0=$(date +%s)
sim_start "$rport" "$RS" "$RN" "$start_ms" "$tmp/raw-sim.log"
fl=$(( 60 / RS > 0 ? 60 / RS : 1 )) md=$(( 300 / RS > 0 ? 300 / RS : 1 ))
env $(vcc_env "$rport") "$BIN" collect --no-db --archive-dir "$arch" --spool-dir "$tmp/raw-spool" \
  --flush-seconds "$fl" --spat-seconds 1 --mapdata-seconds "$md" --status-seconds 5 --max-skew-seconds 0 >"$tmp/raw-collect.log" 2>&1 &
cpid=$!
pids+=("$cpid")
# past the last hour plus a minute, so that every message of it is flushed
until [ "$(simnow "$rport")" -ge $((end_ms + 60000)) ]; do sleep 2; done
kill -TERM "$cpid"; wait "$cpid" || true
w1=$(date +%s)
spat_in=$(collect_counter spat_in) frames=$(collect_counter accepted)
kill "$simpid" 2>/dev/null || true; wait "$simpid" 2>/dev/null || true
hours_of() { for h in $(seq 0 $((RH - 1))); do date -u -d @$((start_ms / 1000 + h * 3600)) +%Y/%m/%d/%H; done; }
kind_bytes() { local t=0 b; for hp in $(hours_of); do b=$(du -sb "$arch/raw/$1/$hp" 2>/dev/null | cut -f1); t=$((t + ${b:-0})); done; echo $t; }
kind_files() { local t=0 b; for hp in $(hours_of); do b=$(ls "$arch/raw/$1/$hp" 2>/dev/null | wc -l); t=$((t + b)); done; echo $t; }
declare -A flushed files
for k in bsm psm spat mapdata; do flushed[$k]=$(kind_bytes $k); files[$k]=$(kind_files $k); done
"$BIN" archive compact --archive-dir "$arch" --min-age-hours 1 >"$tmp/raw-compact.log" 2>&1 ||
  { echo "tsi archive compact failed:"; tail -5 "$tmp/raw-compact.log"; }
spat_all=$(du -sb "$arch/raw/spat" | cut -f1)
# the share of a day's traffic (the simulator's daily profile, hourly points joined by
# straight lines) that the measured hours hold
profile=$(sed -n '/^double tsi_sim_profile/,/^}/p' src/sim/model.c | sed -n '/h\[25\]/,/};/p' | grep -oE '[0-9]+\.[0-9]+' | tr '\n' ' ')
share=$(echo "$profile" | awk -v a="$RSH" -v n="$RH" '{ for (i = 0; i < 24; i++) { s = ($(i + 1) + $(i + 2)) / 2; d += s; if (i >= a && i < a + n) w += s } printf "%.4f", w / d }')
echo "run: $((w1 - w0)) s wall for $RH simulated hours (+ warm-up and the last minute); $frames messages accepted, $spat_in SPaT messages; load after $(load)"
echo "profile share of the day in these hours: $share (BSM and PSM are scaled by 1/share, SPaT and MapData by time)"
# BSM and PSM files are partitioned by the messages' (simulated) time: the complete hours
# are measured. SPaT and MapData go by the wall-clock time they were received: all of
# them are measured, SPaT per message (real time: one per intersection per 10 s poll, 8,640
# a day), MapData per intersection (fetched with changed_since: stored again only when
# an intersection changes, which the simulator never does: a one-off, not per day).
all_bytes() { du -sb "$arch/raw/$1" 2>/dev/null | cut -f1; }
mapdata_in=$(collect_counter mapdata_in)
for k in bsm psm; do
  compacted=$(kind_bytes $k)
  perday=$(awk -v b="$compacted" -v n="$RN" -v s="$share" 'BEGIN { printf "%.0f", b / n / s }')
  printf "raw/%-8s %3s files %11s B as flushed, %11s B compacted (the %d complete hours) -> %10s B per intersection-day\n" \
    "$k" "${files[$k]}" "${flushed[$k]}" "$compacted" "$RH" "$perday"
  eval "pd_$k=$perday"
done
spat_all=$(all_bytes spat) md_all=$(all_bytes mapdata)
pd_spat=$(awk -v b="$spat_all" -v m="$spat_in" 'BEGIN { printf "%.0f", m ? b / m * 8640 : 0 }')
printf "raw/spat     %11s B compacted for %s messages (%s B each) -> %10s B per intersection-day\n" \
  "$spat_all" "$spat_in" "$(awk -v b="$spat_all" -v m="$spat_in" 'BEGIN { printf "%.0f", m ? b / m : 0 }')" "$pd_spat"
printf "raw/mapdata  %11s B for %s messages -> %s B per intersection, once (0 per day while nothing changes)\n" \
  "$md_all" "$mapdata_in" "$(awk -v b="$md_all" -v n="$RN" 'BEGIN { printf "%.0f", b / n }')"
pd_mapdata=0
bp=$(( $(all_bytes bsm) + $(all_bytes psm) ))
echo "BSM + PSM: $(awk -v b="$bp" -v m="$frames" 'BEGIN { printf "%.1f", b / m }') B per message archived (all hours, $frames messages); messages per intersection-day at this profile: $(awk -v m="$frames" -v b="$bp" -v t="$((pd_bsm + pd_psm))" 'BEGIN { printf "%.0f", t / (b / m) }')"
tot=$((pd_bsm + pd_psm + pd_spat + pd_mapdata))
echo "raw archive total: $tot B per intersection-day (compacted, zstd); a year: $(awk -v t="$tot" 'BEGIN { printf "%.1f GB at 100, %.0f GB at 1,000 intersections", t * 365 * 100 / 1e9, t * 365 * 1000 / 1e9 }')"
fi

if want lagcollect; then
LS=${OPS_LAG_SECONDS:-300}
echo
echo "== replica lag under tsi collect: $LAG_N intersections in real time for $LS s (load before $(load))"
replica_up
lport=$(tsi_free_port)
sim_start "$lport" 1 "$LAG_N" now "$tmp/lag-sim.log"
lsn0=$(q "SELECT pg_current_wal_lsn()")
xact0=$(q "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = 'tsi'")
env $(vcc_env "$lport") "$BIN" collect --archive-dir "$tmp/lag-archive" --spool-dir "$tmp/lag-spool" \
  --status-seconds 5 --duration-seconds "$LS" >"$tmp/lag-collect.log" 2>&1 &
cpid=$!
pids+=("$cpid")
samples=$tmp/lag-samples
: >"$samples"
# every 0.5 s: replay_lag (s, -1 when PostgreSQL reports none: nothing in flight), bytes
# behind, and the replica's now() - pg_last_xact_replay_timestamp() (s)
while kill -0 "$cpid" 2>/dev/null; do
  p=$(q "SELECT COALESCE(extract(epoch FROM replay_lag), -1) || ' ' || pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)
         FROM pg_stat_replication WHERE application_name = 'bench_replica'")
  r=$(psql -X -At "$RCI" -c "SELECT COALESCE(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), -1)" 2>/dev/null)
  [ -n "$p" ] && echo "$p ${r:--1} $(cut -d' ' -f1 /proc/loadavg)" >>"$samples"
  sleep 0.5
done
wait "$cpid" || { echo "collect failed:"; tail -5 "$tmp/lag-collect.log"; }
kill "$simpid" 2>/dev/null || true; wait "$simpid" 2>/dev/null || true
wal=$(q "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0')")
xacts=$(( $(q "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = 'tsi'") - xact0 ))
rows=$(collect_counter rows_written) msgs=$(collect_counter accepted)
pct() { # column of the samples file (only values >= 0), label, unit scale
  awk -v c="$1" '$c >= 0 { print $c }' "$samples" | sort -g |
    awk -v l="$2" -v u="$3" -v f="$4" '{ a[NR] = $1 } END { if (!NR) { printf "%s: no samples\n", l; exit }
      i99 = int(NR * 0.99 + 0.999); if (i99 > NR) i99 = NR
      printf "%s: p50 " f ", p99 " f ", max " f " %s (%d samples)\n", l, a[int((NR + 1) / 2)], a[i99], a[NR], u, NR }'
}
echo "write load: $(awk -v r="$rows" -v s="$LS" 'BEGIN { printf "%.1f", r / s }') rows/s upserted ($rows in $LS s), $(awk -v m="$msgs" -v s="$LS" 'BEGIN { printf "%.0f", m / s }') messages/s collected, WAL $(awk -v w="$wal" -v s="$LS" 'BEGIN { printf "%.0f", w / s / 1024 }') kB/s, $xacts rows inserted, updated or deleted in the tsi database (pg_stat_database)"
pct 1 "replay_lag (pg_stat_replication, samples with a value)" s "%.3f"
pct 2 "bytes behind (pg_wal_lsn_diff current - replay)" B "%.0f"
pct 3 "replica now() - pg_last_xact_replay_timestamp() (includes the time since the last commit)" s "%.2f"
pct 4 "load average (1 min) during the samples" "" "%.2f"
echo "samples where replay_lag was NULL (nothing in flight): $(awk '$1 < 0' "$samples" | wc -l) of $(wc -l <"$samples")"
fi
