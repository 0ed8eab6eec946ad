#!/usr/bin/env bash
# bench/ha.sh — the HA formation under failure (issue 30), in one run on this machine:
# a formation (`tsi db ha create --ha-timeouts tight`), a writer inserting a numbered row
# every ~0.1 s through the formation's multi-host URI (target_session_attrs=read-write; a
# row counts as acknowledged only when psql exited 0), `tsi serve` answering a curl loop
# (GET /api/v2/safety/index/, each request's status and time), then KILLS (default 5)
# times: kill -9 of the primary (its keeper's process group and its postmaster), the
# write gap measured, the dead node restarted to rejoin; then one `switchover`, measured
# the same way as the reference beside the kills.
# Prints per event: write gap (last acknowledged insert before -> first after), API
# requests during the gap, their errors (non-200) and worst latency; at the end the rows
# lost (acknowledged ids missing from the table: goal 0).
# Env: KILLS (5), HA_PORT (55640), API_PORT (18480), TSI (build/tsi).
set -euo pipefail
cd "$(dirname "$0")/.."
TSI=${TSI:-$PWD/build/tsi}
KILLS=${KILLS:-5}
HA_PORT=${HA_PORT:-55640}
API_PORT=${API_PORT:-18480}
[ -x "$TSI" ] || { echo "bench/ha.sh: $TSI missing (make build)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/tsi-bench-ha.XXXXXX)
chmod 755 "$tmp"
export TSI_HOME=$tmp/home TSI_HA_PORT=$HA_PORT TSI_HA_TIMEOUTS=tight TSI_LOG_LEVEL=warn
unset DATABASE_URL DATABASE_READ_URL PGHOST PGPORT PGDATABASE PGSERVICE
mkdir -p "$TSI_HOME"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$TSI" db ha stop >/dev/null 2>&1 || true
  for n in monitor node1 node2; do
    f=$TSI_HOME/ha/run/$n.pid
    [ -f "$f" ] && kill -9 -"$(cat "$f")" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
t0=$(now)
"$TSI" db ha create >"$tmp/create.log" 2>&1 || { cat "$tmp/create.log"; exit 1; }
echo "formation ready in $(echo "$(now) - $t0" | bc) s (load $(cut -d' ' -f1-3 /proc/loadavg))"
OWNER=$("$TSI" db url --role tsi_owner)
psql -q "$OWNER" -c "CREATE TABLE ha_bench (id int PRIMARY KEY, at timestamptz DEFAULT now())"

# the writer: id, time of acknowledgement (only when psql succeeded)
(
  i=0
  while :; do
    i=$((i + 1))
    if psql -qAt "$OWNER" -c "INSERT INTO ha_bench (id) VALUES ($i) ON CONFLICT DO NOTHING" \
      >/dev/null 2>&1; then
      echo "$i $(now)" >>"$tmp/acked"
    fi
    sleep 0.1
  done
) &
pids+=($!)

"$TSI" serve --port "$API_PORT" >"$tmp/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$API_PORT/health" >/dev/null && break; sleep 0.1; done
(
  while :; do
    s=$(now)
    r=$(curl -s -o /dev/null -m 30 -w '%{http_code} %{time_total}' \
      "http://127.0.0.1:$API_PORT/api/v2/safety/index/" || echo "000 30")
    echo "$s $r" >>"$tmp/api"
    sleep 0.05
  done
) &
pids+=($!)
sleep 3

# `tsi db ha status` exits 3 without a primary: read its output, not its status
status() { "$TSI" db ha status 2>/dev/null || true; }
settled() { status | grep -q ' primary  *primary ' && status | grep -q ' secondary  *secondary '; }
# the node serving writes (wait_primary: a primary whose secondary is away)
primary() { status | awk '$3 ~ /^(wait_)?primary$/ && $4 ~ /^(wait_)?primary$/ {print $1}'; }

# the gap after event time $2: the longest pause between acknowledged inserts, and the
# API's requests started in that pause
report() { # label, event time
  local label=$1 at=$2
  sleep 4
  # the longest pause between consecutive acknowledgements that ends after the event
  # (an insert acknowledged just after the kill may have committed just before it)
  sort -k2 -n "$tmp/acked" | awk -v at="$at" '
    prev && $2 > at && $2 - prev > best { best = $2 - prev; b = prev; a = $2 }
    { prev = $2 }
    END { printf "%.2f %.2f\n", b, a }' >"$tmp/gap"
  read -r before after <"$tmp/gap"
  awk -v b="$before" -v a="$after" -v l="$label" '
    $1 >= b && $1 <= a { n++; if ($2 != "200") e++; if ($3 > w) w = $3 }
    END { printf "%-12s write gap %5.1f s | API during it: %3d requests, %3d errors, worst %.2f s\n",
          l, a - b, n, e, w }' "$tmp/api"
}

for k in $(seq 1 "$KILLS"); do
  for _ in $(seq 1 600); do settled && break; sleep 0.2; done
  p=$(primary)
  at=$(now)
  kill -9 -"$(cat "$TSI_HOME/ha/run/$p.pid")" 2>/dev/null || true
  kill -9 "$(head -1 "$TSI_HOME/ha/$p/postmaster.pid")" 2>/dev/null || true
  for _ in $(seq 1 600); do
    q=$(primary)
    [ -n "$q" ] && [ "$q" != "$p" ] && break
    sleep 0.2
  done
  report "kill $k ($p)" "$at"
  "$TSI" db ha start >/dev/null 2>&1 || echo "kill $k: tsi db ha start failed" >&2
done
for _ in $(seq 1 600); do settled && break; sleep 0.2; done
at=$(now)
"$TSI" db ha switchover >/dev/null
report "switchover" "$at"

for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
pids=()
sleep 1
acked=$(wc -l <"$tmp/acked")
cut -d' ' -f1 "$tmp/acked" | sort -n >"$tmp/acked_ids"
psql -qAt "$OWNER" -c "SELECT id FROM ha_bench ORDER BY id" >"$tmp/have"
lost=$(comm -23 <(sort "$tmp/acked_ids") <(sort "$tmp/have") | wc -l)
echo "rows acknowledged: $acked, lost: $lost (goal 0), over $KILLS kills and 1 switchover"
echo "API: $(wc -l <"$tmp/api") requests, $(awk '$2 != "200"' "$tmp/api" | wc -l) non-200 overall"
