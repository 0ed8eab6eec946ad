/* db/conn.h — where tsi's database is and how each process connects to it.
 *
 * Resolution, for every role:
 *   1. DATABASE_URL (any libpq conninfo or URL) when set; the API's reads use
 *      DATABASE_READ_URL when that is set (a streaming replica).
 *   2. libpq's own PG* environment (PGHOST, PGSERVICE, ...) when any is set.
 *   3. the embedded cluster under $TSI_HOME/pg: TCP on 127.0.0.1:TSI_PG_PORT with TLS
 *      (sslmode=verify-full against the cluster's CA) and a client certificate whose CN
 *      is the role: no password exists anywhere. The admin role (the cluster's
 *      superuser) uses the cluster's Unix socket instead, reachable only by its owner:
 *      pg_hba.conf admits over TCP only the four tsi roles (and tsi_replication for
 *      replication), so a certificate made for `postgres` is refused there.
 *      The files: ca.crt, <role>.crt and <role>.key in tsi_db_certs_dir().
 *   When an HA formation exists (db/ha.h: its `formation` file under TSI_HA_DIR, default
 *   $TSI_HOME/ha), the same with both data nodes in one multi-host conninfo
 *   (host='127.0.0.1,127.0.0.1' port='N1,N2'): target_session_attrs=read-write for the
 *   owner, writer, jobs and admin roles (libpq tries each node and keeps the primary, so a
 *   reconnect after a failover finds the new one), prefer-standby for the reader.
 * TSI_DB_NAME (default "tsi") names the database of the embedded cluster.
 *
 * Ownership: returned PGconn belongs to the caller (PQfinish). */
#ifndef TSI_DB_CONN_H
#define TSI_DB_CONN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

typedef enum {
    TSI_ROLE_OWNER = 0,   /* tsi_owner: owns the schema, runs migrations */
    TSI_ROLE_WRITER,      /* tsi_writer: collector */
    TSI_ROLE_JOBS,        /* tsi_jobs: rollups, retention, constants */
    TSI_ROLE_READER,      /* tsi_reader: API */
    TSI_ROLE_ADMIN,       /* the cluster superuser: bootstrap only, local socket only */
    TSI_ROLE_REPLICATION, /* tsi_replication: streaming replicas (pg_basebackup), no SQL */
    TSI_ROLE__COUNT
} tsi_db_role;

const char *tsi_db_role_name(tsi_db_role role); /* "tsi_owner", ..., "postgres", ... */

/* True when DATABASE_URL or PG* variables point at an external database. */
bool tsi_db_external(void);

/* The libpq conninfo for a role, into buf. dbname NULL = the configured database. */
int tsi_db_conninfo(tsi_db_role role, const char *dbname, char *buf, size_t len, tsi_error *err);

/* Connects; on failure returns NULL with err set (never a half-open PGconn). */
PGconn *tsi_db_connect(tsi_db_role role, const char *dbname, tsi_error *err);

/* Runs one or more statements without parameters (SQL text only from the program, never
 * from input). Returns 0 or TSI_E_DB with the server's message and SQLSTATE in err. */
int tsi_db_exec(PGconn *c, const char *sql, tsi_error *err);

/* Fills err from a failed result (message, SQLSTATE) and returns TSI_E_DB. */
int tsi_db_result_error(const PGresult *r, const char *what, tsi_error *err);

/* The embedded cluster's facts. */
int tsi_db_port(void);         /* TSI_PG_PORT, default 55432 */
const char *tsi_db_name(void); /* TSI_DB_NAME, default "tsi" */
/* Where a process finds the CA certificate and its role's certificate and key
 * (ca.crt, <role>.crt, <role>.key): TSI_CERTS_DIR when set (e.g. a directory of mounted
 * per-service secrets), else $TSI_HOME/certs. It never holds the CA's key: that stays in
 * $TSI_HOME/ca, which only `tsi db` reads (tsi_db_ca_dir). */
void tsi_db_certs_dir(char *buf, size_t len);
/* $TSI_HOME/ca: the CA key and serial, read by `tsi db start` alone (mode 0700). */
void tsi_db_ca_dir(char *buf, size_t len);

#endif
