#!/usr/bin/env bash
# bench/dashboard.sh — the dashboard in headless chromium with 1,000 intersections:
# time to first marker, time to interactive and history chart render time (Performance
# API marks), beside references measured in the same run (bench/dashboard.mjs).
# Serves seeded data through `tsi serve` (build/tsi, BENCH_BUILD=dir for another), or the
# fixture server where this tsi has no serve/seed yet (said in the report).
#   BENCH_INTERSECTIONS=1000 BENCH_RUNS=7 BENCH_FIXTURE=1
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
E2E_NAME=bench-dashboard
. tests/e2e/stack.sh
BIN=$root/${BENCH_BUILD:-build}/tsi
e2e_tools
scripts/web
trap 'rc=$?; e2e_stack_stop; exit $rc' EXIT INT TERM
E2E_DAYS=2 e2e_stack_start "${BENCH_INTERSECTIONS:-1000}" "${BENCH_FIXTURE:-0}"
say "server: $E2E_KIND at $E2E_URL"
BENCH_URL=$E2E_URL node bench/dashboard.mjs
