#!/usr/bin/env bash
# deploy/entrypoint.sh — the container's entry point.
#   db       start the embedded cluster (initdb, TLS, roles, migrations, backups), then
#            stay in the foreground until SIGTERM, which stops PostgreSQL cleanly
#   wait-db  wait until the cluster answers, then exec the rest of the arguments
#   anything else: exec tsi with these arguments (serve, collect, sim, jobs ...)
set -euo pipefail
export TSI_HOME=${TSI_HOME:-/var/lib/tsi-home}
mkdir -p "$TSI_HOME"
chmod 755 "$TSI_HOME"

case "${1:-serve}" in
db)
  tsi db start
  tsi migrate
  if [ "${TSI_BACKUPS:-on}" = on ]; then tsi backup setup; fi
  tsi jobs install || echo "entrypoint: could not install the job schedule" >&2
  stop() { tsi db stop; exit 0; }
  trap stop TERM INT
  while tsi db status >/dev/null; do sleep 5 & wait $!; done
  echo "entrypoint: PostgreSQL stopped on its own" >&2
  exit 1
  ;;
wait-db)
  shift
  for _ in $(seq 1 120); do
    if [ -f "$TSI_HOME/certs/tsi_reader.crt" ] && tsi db psql --role tsi_reader -- -Atc 'SELECT 1' >/dev/null 2>&1; then
      exec tsi "$@"
    fi
    sleep 1
  done
  echo "entrypoint: the database did not come up in 120 s" >&2
  exit 1
  ;;
*)
  exec tsi "$@"
  ;;
esac
