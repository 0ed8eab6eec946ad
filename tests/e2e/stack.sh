# tests/e2e/stack.sh — sourced by scripts/e2e and bench/dashboard.sh: installs what the
# browser runs need and starts a server for the dashboard.
#   e2e_tools                     chromium (Debian) + playwright-core (lockfile) + web/dist
#   e2e_stack_start N fixture     starts tsi serve on N seeded intersections (and a second
#                                 one with --source parquet), or the fixture server when
#                                 fixture=1 or this tsi has no serve/seed; exports
#                                 E2E_URL, E2E_PARQUET_URL (may be empty), E2E_KIND
#                                 With E2E_TILES=1 it also starts tests/e2e/tile-server.mjs
#                                 and one more server with TSI_TILE_URL pointing at it:
#                                 E2E_TILES_URL (that server), E2E_TILE_SERVER (the tiles);
#                                 the other servers run without TSI_TILE_URL.
#   e2e_stack_stop                stops what e2e_stack_start started (also on EXIT)
# Needs: root (repository root), BIN (tsi binary).

say() { printf '%s: %s\n' "${E2E_NAME:-e2e}" "$*" >&2; }

e2e_tools() {
  if [ ! -x /usr/bin/chromium ]; then
    local SUDO=()
    if [ "$(id -u)" != 0 ]; then
      if sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
        say "Debian chromium is missing: apt-get install -y chromium (as root)"; return 1; fi
    fi
    say "installing Debian chromium"
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
  "$root/scripts/web" --check || return 1
  local stamp=$root/tests/e2e/node_modules/.tsi-lock.sha256 want
  want=$(sha256sum "$root/tests/e2e/package-lock.json" | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing playwright-core from tests/e2e/package-lock.json (npm ci; no browser download)"
    (cd "$root/tests/e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" > "$stamp"
  fi
}

e2e_wait_http() { # url
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  say "nothing answers at $1"; e2e_logs; return 1
}

# e2e_launch NAME PATTERN CMD...: starts CMD in the background with its output in
# $E2E_TMP/NAME.log, and waits until the log shows the port it listens on (every server
# here is started on port 0 and chooses a free port itself: no port is guessed beforehand
# and then lost to another process). PATTERN is a sed -n expression that prints the port.
# Sets E2E_PORT. A server that exits or stays silent for 120 s fails the start, its log shown.
e2e_launch() {
  local name=$1 pat=$2 log pid
  shift 2
  log=$E2E_TMP/$name.log
  # the log exists before the first look at it: the child opens it only once it runs, and
  # a sed on a missing file fails the caller's pipefail (seen on a loaded machine)
  : >"$log"
  "$@" >>"$log" 2>&1 &
  pid=$!
  E2E_PIDS+=("$pid")
  E2E_PORT=
  for _ in $(seq 1 600); do
    E2E_PORT=$(sed -n "$pat" "$log" | head -n 1)
    [ -n "$E2E_PORT" ] && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      say "$name exited before listening; its log:"; tail -n 30 "$log" >&2; return 1
    fi
    sleep 0.2
  done
  say "$name did not say which port it listens on within 120 s; its log:"
  tail -n 30 "$log" >&2
  return 1
}
TSI_PORT_RE='s/.* api *listening port=\([0-9]*\) .*/\1/p'
NODE_PORT_RE='s/.* on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p'

. "$root/scripts/lib/ports.sh"

E2E_PIDS=()
E2E_DB=0
E2E_TMP=
e2e_stack_stop() {
  local p
  for p in "${E2E_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${E2E_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  E2E_PIDS=()
  if [ "$E2E_DB" = 1 ]; then
    "$BIN" db stop >/dev/null 2>&1 || true
    local real
    real=$(readlink "$TSI_HOME/pg" 2>/dev/null || true)
    case "$real" in /var/lib/tsi/pg-*) rm -rf "$real" ;; esac
    E2E_DB=0
  fi
  [ -n "$E2E_TMP" ] && rm -rf "$E2E_TMP"
  E2E_TMP=
}

e2e_logs() {
  local f
  for f in "$E2E_TMP"/*.log; do [ -f "$f" ] && { say "--- tail of $(basename "$f")"; tail -n 30 "$f" >&2; }; done
}

e2e_stack_start() { # N fixture
  local n=$1 fixture=$2
  if [ "$fixture" = 0 ] && ! { "$BIN" serve --help >/dev/null 2>&1 && "$BIN" seed --help >/dev/null 2>&1; }; then
    say "$BIN has no 'serve' and 'seed' yet: using the fixture server instead"
    fixture=1
  fi
  E2E_TMP=$(mktemp -d /tmp/tsi-e2e.XXXXXX)
  unset TSI_TILE_URL
  export E2E_TILES_URL= E2E_TILE_SERVER=
  if [ "${E2E_TILES:-0}" = 1 ]; then
    e2e_launch tiles "$NODE_PORT_RE" node "$root/tests/e2e/tile-server.mjs" --port 0
    E2E_TILE_SERVER=http://127.0.0.1:$E2E_PORT
  fi
  if [ "$fixture" = 1 ]; then
    e2e_launch fixture "$NODE_PORT_RE" node "$root/tests/e2e/fixture-server.mjs" --port 0 \
      --intersections "$n" --dist "$root/web/dist"
    export E2E_URL=http://127.0.0.1:$E2E_PORT E2E_PARQUET_URL= E2E_STALE_URL= E2E_KIND=fixture
    e2e_wait_http "$E2E_URL/api/v2/safety/index/"
    if [ -n "$E2E_TILE_SERVER" ]; then
      e2e_launch fixture-tiles "$NODE_PORT_RE" env TSI_TILE_URL="$E2E_TILE_SERVER/{z}/{x}/{y}.png" \
        node "$root/tests/e2e/fixture-server.mjs" --port 0 --intersections "$n" --dist "$root/web/dist"
      E2E_TILES_URL=http://127.0.0.1:$E2E_PORT
      e2e_wait_http "$E2E_TILES_URL/api/v2/safety/index/"
    fi
    return
  fi
  export TSI_HOME=$E2E_TMP/home
  unset DATABASE_URL DATABASE_READ_URL DATABASE_ADMIN_URL PGHOST PGHOSTADDR PGSERVICE PGDATABASE PGUSER PGPORT
  TSI_PG_PORT=$(tsi_free_port)
  export TSI_PG_PORT
  say "PostgreSQL in $TSI_HOME on port $TSI_PG_PORT; seeding $n intersections"
  E2E_DB=1
  "$BIN" db start --log-level warn >/dev/null
  "$BIN" migrate --log-level warn
  "$BIN" seed --intersections "$n" --days "${E2E_DAYS:-3}" --seed 7 --log-level warn
  if [ -n "${E2E_HOSTILE_NAME:-}" ]; then
    # one intersection gets a name that is markup, quotes and a CSV formula: the page must
    # show it as text (tests/e2e/dashboard.test.mjs looks for it)
    # (psql interpolates :'n' as a quoted literal in a script, not in -c)
    printf '%s\n' "UPDATE intersections SET name = :'n' WHERE id = 3;" |
      "$BIN" db psql -- -q -X -v ON_ERROR_STOP=1 -v "n=$E2E_HOSTILE_NAME" >/dev/null
  fi
  export TSI_WEB_DIR=$root/web/dist
  # info level: the line "listening port=N" tells the port each server chose
  e2e_launch serve "$TSI_PORT_RE" "$BIN" serve --port 0 --log-level info
  export E2E_URL=http://127.0.0.1:$E2E_PORT E2E_KIND=tsi
  e2e_launch serve-parquet "$TSI_PORT_RE" "$BIN" serve --port 0 --source parquet --log-level info
  export E2E_PARQUET_URL=http://127.0.0.1:$E2E_PORT
  # a server for which every seeded intersection is silent (stale after 1 s)
  e2e_launch serve-stale "$TSI_PORT_RE" "$BIN" serve --port 0 --stale-seconds 1 --log-level info
  export E2E_STALE_URL=http://127.0.0.1:$E2E_PORT
  if [ -n "$E2E_TILE_SERVER" ]; then
    e2e_launch serve-tiles "$TSI_PORT_RE" env TSI_TILE_URL="$E2E_TILE_SERVER/{z}/{x}/{y}.png" \
      "$BIN" serve --port 0 --log-level info
    E2E_TILES_URL=http://127.0.0.1:$E2E_PORT
  fi
  e2e_wait_http "$E2E_URL/api/v2/safety/index/"
  e2e_wait_http "$E2E_PARQUET_URL/api/v2/safety/index/"
  e2e_wait_http "$E2E_STALE_URL/api/v2/safety/index/"
  [ -z "$E2E_TILES_URL" ] || e2e_wait_http "$E2E_TILES_URL/api/v2/safety/index/"
}
