#!/usr/bin/env bash
# bench/drill_pg_outage.sh — the combined fault drill "PostgreSQL gone for 5 minutes"
# (issue 17) in real time, outside the suite: tests/integration/test_ops_drills with
# TSI_DRILL_REALTIME=1 runs sim + collect + serve on a private cluster at simulator speed
# 1 and stops PostgreSQL for 5 wall-clock minutes, then checks what the suite's drill (e)
# checks at speed 4: every API answer from the Parquet meanwhile and from PostgreSQL
# after, the collector's spool grown (/metrics spool depth > 0, DB-error counter rising)
# and drained to 0, every intersection-minute of the outage in PostgreSQL exactly as in
# the indices Parquet and as the simulator's truth. Takes ~10 minutes.
# Env: DRILL_BUILD (default build-asan: the sanitizer build with the test executables).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${DRILL_BUILD:-build-asan}
[ -x "$BUILD/integration_test_ops_drills" ] ||
  { echo "bench/drill_pg_outage.sh: $BUILD/integration_test_ops_drills missing (make asan)" >&2; exit 1; }
log=$(mktemp /tmp/tsi-drill-pg-outage.XXXXXX.log)
echo "real-time drill: PostgreSQL gone 5 wall-clock minutes (log $log); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(date +%s)
rc=0
TSI_DRILL_REALTIME=1 ASAN=$BUILD TEST_TIMEOUT=1800 \
  CTEST_ARGS="-R ^integration/test_ops_drills\$ --output-on-failure -V" scripts/test >"$log" 2>&1 || rc=$?
t1=$(date +%s)
grep -E "drill e:|drills done|tests passed|tests failed|FAILED|\[  (PASSED|FAILED) \]" "$log" | sed 's/^[0-9]*: //' || true
echo "wall time $((t1 - t0)) s, load after: $(cut -d' ' -f1-3 /proc/loadavg), result: $([ $rc = 0 ] && echo PASSED || echo "FAILED (rc $rc, see $log)")"
exit $rc
