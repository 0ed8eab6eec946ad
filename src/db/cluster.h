/* db/cluster.h — the embedded PostgreSQL cluster under $TSI_HOME/pg (its command line,
 * `tsi db`, is cli/cmd_db.c).
 *
 * start: initdb on first use (UTF-8, C locale, superuser `postgres`), a CA (its key in
 * $TSI_HOME/ca, read by `tsi db start` alone; its certificate in the certificates
 * directory, tsi_db_certs_dir), a server certificate (localhost, 127.0.0.1, ::1) and a
 * client certificate per login role (the four tsi roles and tsi_replication) in the
 * certificates directory; missing ones are made with the existing CA key. pg_hba.conf
 * (rewritten and reloaded at every start) admits over TCP only those roles by
 * certificate; the superuser only through the socket. shared_preload_libraries pg_cron,
 * pgaudit, pg_stat_statements;
 * listens on 127.0.0.1:TSI_PG_PORT (TLS + client certificates only) and on a Unix socket
 * in the data directory (mode 0700: only its owner and root). Then the bootstrap:
 * roles, the database, PostGIS, pg_partman, pg_cron, pg_stat_statements, pgaudit DDL
 * logging. Idempotent: start on a running cluster only checks the bootstrap.
 *
 * As root the server runs as the `postgres` system user. When that user cannot reach
 * $TSI_HOME (a checkout under a 0700 home), the data directory lives in
 * /var/lib/tsi/pg-<hash of $TSI_HOME> and $TSI_HOME/pg is a symbolic link to it. */
#ifndef TSI_DB_CLUSTER_H
#define TSI_DB_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

/* Directory of the server's Unix socket (the data directory, or /tmp when that path is
 * too long for a socket). Fails when the cluster was never initialised. */
int tsi_cluster_socket_dir(char *buf, size_t len, tsi_error *err);

/* The real data directory (the target of $TSI_HOME/pg when it is a link). */
void tsi_cluster_data_dir(char *buf, size_t len);
/* Directory of the PostgreSQL server programs (default /usr/lib/postgresql/15/bin). */
void tsi_cluster_set_pg_bin(const char *dir);
/* --pg-listen / TSI_PG_LISTEN: "*" or numeric IPv4/IPv6 addresses, separated by commas;
 * --pg-hostname / TSI_PG_HOSTNAME: empty or a DNS name. Both go into configuration files,
 * so `tsi db` refuses anything else (exit 2) and the cluster code checks them again. */
bool tsi_cluster_listen_ok(const char *listen);
bool tsi_cluster_hostname_ok(const char *hostname);
const char *tsi_cluster_pg_bin(void);

int tsi_cluster_start(tsi_error *err); /* idempotent */
int tsi_cluster_stop(tsi_error *err);  /* idempotent */
/* Makes the running cluster reread its configuration files (pg_reload_conf, as superuser). */
int tsi_cluster_reload(tsi_error *err);
int tsi_cluster_running(void); /* 1 running, 0 not */
/* Runs the bootstrap SQL as the superuser (also for an external DATABASE_ADMIN_URL). */
int tsi_cluster_bootstrap(tsi_error *err);

#endif
