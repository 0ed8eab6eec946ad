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
# Env: BIN (default build/tsi), OPS_INTERSECTIONS=100, OPS_DAYS=30,
#      OPS_LAG_INTERSECTIONS=1000, OPS_LAG_BATCHES=60.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/build/tsi}
N=${OPS_INTERSECTIONS:-100}
DAYS=${OPS_DAYS:-30}
LAG_N=${OPS_LAG_INTERSECTIONS:-1000}
LAG_BATCHES=${OPS_LAG_BATCHES:-60}
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$BIN" ] || { echo "bench/ops.sh: $BIN missing (make build)" >&2; exit 1; }

unset DATABASE_URL DATABASE_READ_URL DATABASE_ADMIN_URL PGHOST PGHOSTADDR PGSERVICE PGDATABASE PGUSER PGPORT
tmp=$(mktemp -d /tmp/tsi-bench-ops.XXXXXX)
chmod 755 "$tmp"
export TSI_HOME=$tmp/home TSI_LOG_LEVEL=warn TSI_DB_NAME=tsi
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
  done
  exit 1
}
export TSI_PG_PORT=$(free_port)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir_pg() { mkdir -p "$1"; chmod 700 "$1"; [ "$(id -u)" = 0 ] && chown postgres: "$1" || true; }
restored=$tmp/restored ref=$tmp/ref ref2=$tmp/ref-copy replica=$tmp/replica
cleanup() {
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
port2=$(free_port)
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

echo
echo "== replica lag under the collector's write pattern ($LAG_N intersections, $LAG_BATCHES batches)"
rm -rf "$ref" "$ref2"
mkdir_pg "$replica"
as_pg pg_basebackup -d "$ADMIN application_name=bench_replica" -D "$replica" -R -X stream -c fast >/dev/null 2>&1
port3=$(free_port)
as_pg "$PGBIN/pg_ctl" -D "$replica" -o "-p $port3 -k $replica" -l "$replica/bench.log" -w start >/dev/null
RCI="host=$replica port=$port3 user=postgres dbname=tsi"
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
