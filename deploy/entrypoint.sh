#!/usr/bin/env bash
# deploy/entrypoint.sh — the container's entry point (deploy/Dockerfile, deploy/compose.yaml).
#   db       start the embedded cluster (initdb, certificates, roles, migrations, backups,
#            the job schedule), hand each client service its own files (below), then stay
#            in the foreground until SIGTERM, which stops PostgreSQL cleanly; when
#            PostgreSQL stops on its own the container exits and Compose restarts it
#   wait-db  wait for the certificate files and db's port (TSI_DB_ADDR, default db:55432),
#            then exec the rest
#   anything else: exec tsi with these arguments (serve, collect, sim ...)
# Per-service files: the CA key and every role's key stay in the db container's own
# volume ($TSI_HOME/certs). For each directory /export/<role> mounted into the db
# container (a volume shared with one client service, read-only there), the db copies in
# ca.crt and that role's certificate and key, and nothing else.
set -euo pipefail
export TSI_HOME=${TSI_HOME:-/var/lib/tsi}
mkdir -p "$TSI_HOME"
chmod 755 "$TSI_HOME"

case "${1:-serve}" in
db)
  # a container that was killed leaves postmaster.pid behind; at the container's start no
  # server of this data directory can be running (the volume is this container's alone)
  rm -f "$TSI_HOME/pg/postmaster.pid" "$TSI_HOME/ready"
  tsi db start
  tsi migrate
  if [ "${TSI_BACKUPS:-on}" = on ]; then tsi backup setup; fi
  tsi jobs install || echo "entrypoint: could not install the job schedule" >&2
  for dir in /export/*/; do
    [ -d "$dir" ] || continue
    role=$(basename "$dir")
    case "$role" in tsi_owner | tsi_writer | tsi_jobs | tsi_reader) ;; *)
      echo "entrypoint: /export/$role is not a tsi role: left empty" >&2; continue ;;
    esac
    install -m 644 "$TSI_HOME/certs/ca.crt" "$dir/ca.crt"
    install -m 644 "$TSI_HOME/certs/$role.crt" "$dir/$role.crt"
    install -m 600 "$TSI_HOME/certs/$role.key" "$dir/$role.key"
  done
  touch "$TSI_HOME/ready"
  stop() { rm -f "$TSI_HOME/ready"; tsi db stop; exit 0; }
  trap stop TERM INT
  while tsi db status >/dev/null; do sleep 5 & wait $!; done
  rm -f "$TSI_HOME/ready"
  echo "entrypoint: PostgreSQL stopped on its own" >&2
  exit 1
  ;;
wait-db)
  # collect and serve: their certificate files (written by db) and db's port answering;
  # once running they ride out any later outage themselves (spool, Parquet fallback)
  shift
  addr=${TSI_DB_ADDR:-db:55432}
  for _ in $(seq 1 180); do
    if [ -f /run/tsi/ca.crt ] && (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
      exec tsi "$@"
    fi
    sleep 1
  done
  echo "entrypoint: $addr did not answer in 180 s" >&2
  exit 1
  ;;
*)
  exec tsi "$@"
  ;;
esac
