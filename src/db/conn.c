/* db/conn.c — see conn.h */
#include "db/conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/options.h"
#include "db/place.h"

static const char *const role_names[TSI_ROLE__COUNT] = {
    "tsi_owner", "tsi_writer", "tsi_jobs", "tsi_reader", "postgres", "tsi_replication"};

const char *tsi_db_role_name(tsi_db_role role)
{
    return (role >= 0 && role < TSI_ROLE__COUNT) ? role_names[role] : "?";
}

bool tsi_db_external(void)
{
    static const char *const vars[] = {"DATABASE_URL", "PGHOST", "PGHOSTADDR", "PGSERVICE",
                                       "PGDATABASE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (tsi_env(vars[i]))
            return true;
    return false;
}

int tsi_db_port(void)
{
    const char *p = tsi_env("TSI_PG_PORT");
    int port = p ? atoi(p) : 55432;
    return (port > 0 && port < 65536) ? port : 55432;
}

const char *tsi_db_name(void)
{
    const char *n = tsi_env("TSI_DB_NAME");
    return n ? n : "tsi";
}

void tsi_db_certs_dir(char *buf, size_t len)
{
    const char *d = tsi_env("TSI_CERTS_DIR");
    if (d)
        snprintf(buf, len, "%s", d);
    else
        snprintf(buf, len, "%s/certs", tsi_home());
}

void tsi_db_ca_dir(char *buf, size_t len)
{
    snprintf(buf, len, "%s/ca", tsi_home());
}

/* libpq conninfo values are quoted with '...' and backslash escapes */
static void append_kv(char *buf, size_t len, const char *key, const char *val)
{
    size_t n = strlen(buf);
    if (n + 4 >= len)
        return;
    n += (size_t)snprintf(buf + n, len - n, "%s%s='", n ? " " : "", key);
    for (const char *c = val; *c && n + 3 < len; c++) {
        if (*c == '\'' || *c == '\\')
            buf[n++] = '\\';
        buf[n++] = *c;
    }
    if (n + 1 < len)
        buf[n++] = '\'';
    buf[n < len ? n : len - 1] = '\0';
}

int tsi_db_conninfo(tsi_db_role role, const char *dbname, char *buf, size_t len, tsi_error *err)
{
    buf[0] = '\0';
    const char *url = NULL;
    if (role == TSI_ROLE_READER)
        url = tsi_env("DATABASE_READ_URL");
    if (!url)
        url = tsi_env("DATABASE_URL");
    if (role == TSI_ROLE_ADMIN && tsi_env("DATABASE_ADMIN_URL"))
        url = tsi_env("DATABASE_ADMIN_URL");
    if (url) {
        if (strlen(url) >= len)
            return tsi_error_set(err, TSI_E_INVALID, "DATABASE_URL is too long", NULL);
        snprintf(buf, len, "%s", url);
        return 0;
    }
    if (tsi_db_external())
        return 0; /* libpq reads PG* itself */

    char port[16];
    snprintf(port, sizeof port, "%d", tsi_db_port());
    const char *db = dbname ? dbname : tsi_db_name();
    /* the HA formation (db/ha.h): both nodes, libpq picks by target_session_attrs */
    tsi_ha_formation ha;
    bool formation = tsi_ha_formation_read(&ha) == 1;
    char hosts[600] = "";
    if (formation) {
        snprintf(port, sizeof port, "%d,%d", ha.node_port[0], ha.node_port[1]);
        if (role == TSI_ROLE_ADMIN) {
            snprintf(hosts, sizeof hosts, "%s,%s", ha.socket_dir, ha.socket_dir);
            append_kv(buf, len, "host", hosts);
            append_kv(buf, len, "port", port);
            append_kv(buf, len, "dbname", db);
            append_kv(buf, len, "user", "postgres");
            append_kv(buf, len, "target_session_attrs", "read-write");
            return 0;
        }
    }
    if (role == TSI_ROLE_ADMIN) {
        char sock[4096];
        if (tsi_cluster_socket_dir(sock, sizeof sock, err) < 0)
            return err ? err->code : TSI_E_INVALID;
        append_kv(buf, len, "host", sock);
        append_kv(buf, len, "port", port);
        append_kv(buf, len, "dbname", db);
        append_kv(buf, len, "user", "postgres");
        return 0;
    }
    char certs[4096], path[4200];
    tsi_db_certs_dir(certs, sizeof certs);
    append_kv(buf, len, "host", formation ? "127.0.0.1,127.0.0.1" : "127.0.0.1");
    append_kv(buf, len, "port", port);
    if (formation) /* writers need the primary; the API's reads prefer a standby */
        append_kv(buf, len, "target_session_attrs",
                  role == TSI_ROLE_READER ? "prefer-standby" : "read-write");
    append_kv(buf, len, "dbname", db);
    append_kv(buf, len, "user", role_names[role]);
    append_kv(buf, len, "sslmode", "verify-full");
    snprintf(path, sizeof path, "%s/ca.crt", certs);
    append_kv(buf, len, "sslrootcert", path);
    snprintf(path, sizeof path, "%s/%s.crt", certs, role_names[role]);
    append_kv(buf, len, "sslcert", path);
    snprintf(path, sizeof path, "%s/%s.key", certs, role_names[role]);
    append_kv(buf, len, "sslkey", path);
    append_kv(buf, len, "application_name", "tsi");
    return 0;
}

PGconn *tsi_db_connect(tsi_db_role role, const char *dbname, tsi_error *err)
{
    char ci[8192];
    if (tsi_db_conninfo(role, dbname, ci, sizeof ci, err) < 0)
        return NULL;
    /* A dead network path (packets dropped, not refused) must fail fast, so that the API
     * falls back to Parquet and the collector spools instead of waiting: connect_timeout
     * bounds the whole opening (TCP, TLS, startup), tcp_user_timeout a query whose packets
     * go unacknowledged, keepalives an idle connection whose peer vanished. They come
     * before the conninfo (expanded as dbname), so a DATABASE_URL that names any of them
     * wins. Values are ours (options), never request input. */
    char cto[16], tcp[16], idle[16], intv[16];
    int tms = tsi_db_tcp_timeout_ms();
    snprintf(cto, sizeof cto, "%d", tsi_db_connect_timeout_s());
    snprintf(tcp, sizeof tcp, "%d", tms);
    snprintf(idle, sizeof idle, "%d", tms > 0 ? (tms + 1999) / 2000 : 60);
    snprintf(intv, sizeof intv, "%d", tms > 0 ? (tms + 3999) / 4000 : 10);
    const char *const keys[] = {
        "connect_timeout",     "tcp_user_timeout", "keepalives", "keepalives_idle",
        "keepalives_interval", "keepalives_count", "dbname",     NULL};
    const char *const vals[] = {cto, tcp, "1", idle, intv, "2", ci, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL) {
        tsi_error_set(err, TSI_E_NOMEM, "cannot allocate a database connection", NULL);
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        size_t n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
            msg[--n] = '\0';
        tsi_error_set(err, TSI_E_UNAVAILABLE, "cannot connect to the database", "as %s: %s",
                      role_names[role], msg);
        PQfinish(c);
        return NULL;
    }
    return c;
}

int tsi_db_result_error(const PGresult *r, const char *what, tsi_error *err)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorMessage(r) : "no result";
    char m[400];
    snprintf(m, sizeof m, "%s", msg ? msg : "");
    size_t n = strlen(m);
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
        m[--n] = '\0';
    return tsi_error_set(err, TSI_E_DB, what, "SQLSTATE %s: %s", state ? state : "-", m);
}

int tsi_db_exec(PGconn *c, const char *sql, tsi_error *err)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        if (r)
            rc = tsi_db_result_error(r, "database statement failed", err);
        else
            rc = tsi_error_set(err, TSI_E_DB, "database statement failed", "%s", PQerrorMessage(c));
    }
    PQclear(r);
    return rc;
}
