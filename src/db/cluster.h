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
#include <sys/types.h>

#include "base/error.h"
#include "db/place.h"

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

/* ---- shared with the HA formation (db/ha.c): the same configuration, certificates and
 * directories as the embedded cluster, written by one set of functions ---- */

/* Runs argv (as the server user when as_server and root) and waits; a non-zero exit is
 * TSI_E_PROC with the end of its output in err. */
int tsi_cluster_run(char *const argv[], bool as_server, tsi_error *err);
/* "postgres" when we are root (the server runs as that user), else NULL (ourselves). */
const char *tsi_cluster_server_user(void);
/* The CA and the certificates of tsi_db_certs_dir(), plus a client certificate for each
 * name of extra_roles (NULL-terminated, may be NULL). */
int tsi_cluster_make_certs(const char *const *extra_roles, tsi_error *err);
/* Creates `link` as a directory the server user owns and reaches; when that user cannot
 * reach its parent (root's 0700 home), the directory is /var/lib/tsi/<tag>-<hash> and
 * `link` points to it. The real directory into real. */
int tsi_cluster_prepare_dir(const char *link, const char *tag, char *real, size_t len,
                            tsi_error *err);
/* initdb as the server user (UTF-8, C locale, superuser postgres) with `include =
 * 'tsi.conf'` appended to postgresql.conf. */
int tsi_cluster_initdb(const char *dir, tsi_error *err);
/* tsi.conf of a server whose port, listen_addresses and TLS files another program
 * writes (pg_autoctl): the socket in sock (mode 0700), with tsi_settings the embedded
 * cluster's other settings (extensions, pg_cron, memory, logging), then `extra` (may be
 * NULL). */
int tsi_cluster_write_managed_conf(const char *dir, const char *sock, bool tsi_settings,
                                   const char *extra, tsi_error *err);
/* pg_hba.conf as the embedded cluster's, then `extra` lines; pg_ident.conf = ident when
 * non-NULL. */
int tsi_cluster_write_hba(const char *dir, const char *extra, const char *ident, tsi_error *err);
/* Copies a small file (< 16 KiB), giving it to the server user. */
int tsi_cluster_copy_file(const char *from, const char *to, mode_t mode, tsi_error *err);

#endif
