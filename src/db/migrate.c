/* db/migrate.c — see migrate.h */
#include "db/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "db/conn.h"
#include "db/result.h"

static const char SQL_TABLE[] = "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
                                "  version    integer PRIMARY KEY,\n"
                                "  name       text NOT NULL,\n"
                                "  checksum   text NOT NULL,\n"
                                "  applied_at timestamptz NOT NULL DEFAULT now())";
static const char SQL_LOCK[] = "SELECT pg_advisory_lock(hashtext('tsi_migrate'))";
static const char SQL_UNLOCK[] = "SELECT pg_advisory_unlock(hashtext('tsi_migrate'))";
static const char SQL_APPLIED[] =
    "SELECT checksum, encode(sha256(convert_to($2, 'UTF8')), 'hex') AS file_checksum\n"
    "  FROM (SELECT 1) one LEFT JOIN schema_migrations ON version = $1";
static const char SQL_RECORD[] = "INSERT INTO schema_migrations (version, name, checksum)\n"
                                 "VALUES ($1, $2, encode(sha256(convert_to($3, 'UTF8')), 'hex'))";

int tsi_migrate_apply_list(PGconn *c, const tsi_migration *list, int count, tsi_error *err)
{
    int rc = 0, applied = 0;
    PGresult *r = NULL;
    /* Migrations are evaluated in UTC whatever the client's PGTZ: the daily partitions
     * pg_partman makes here are UTC days (their names say so, retention and the jobs, which
     * run with TimeZone = 'UTC', assume it); in the session's zone they would be local days. */
    if ((rc = tsi_db_exec(c, "SET client_min_messages = warning; SET TimeZone = 'UTC'", err)) < 0 ||
        (rc = tsi_db_exec(c, SQL_LOCK, err)) < 0)
        return rc;
    if ((rc = tsi_db_exec(c, SQL_TABLE, err)) < 0)
        goto done;
    for (int i = 0; i < count; i++) {
        const tsi_migration *m = &list[i];
        char ver[16];
        snprintf(ver, sizeof ver, "%d", m->version);
        const char *p[3] = {ver, m->name, m->sql};
        r = PQexecParams(c, SQL_APPLIED, 2, NULL, (const char *[]){ver, m->sql}, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = tsi_db_result_error(r, "cannot read schema_migrations", err);
            goto done;
        }
        int applied_col = tsi_pq_col(r, "checksum");
        const char *now_sum = tsi_pq_get(r, 0, "file_checksum");
        if (!PQgetisnull(r, 0, applied_col)) {
            const char *was_sum = tsi_pq_at(r, 0, applied_col);
            if (strcmp(was_sum, now_sum) != 0) {
                rc = tsi_error_set(err, TSI_E_CHECKSUM,
                                   "an applied migration was changed; add a new migration instead",
                                   "%03d_%s.sql: applied sha256 %.12s…, file now %.12s…",
                                   m->version, m->name, was_sum, now_sum);
                goto done;
            }
            PQclear(r);
            r = NULL;
            continue;
        }
        PQclear(r);
        r = NULL;
        tsi_info("migrate", "applying %03d_%s", m->version, m->name);
        if ((rc = tsi_db_exec(c, "BEGIN", err)) < 0)
            goto done;
        if ((rc = tsi_db_exec(c, m->sql, err)) < 0) {
            char d[sizeof err->detail];
            if (err) {
                snprintf(d, sizeof d, "%03d_%s.sql: %s", m->version, m->name, err->detail);
                snprintf(err->detail, sizeof err->detail, "%s", d);
            }
            tsi_db_exec(c, "ROLLBACK", NULL);
            goto done;
        }
        r = PQexecParams(c, SQL_RECORD, 3, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            rc = tsi_db_result_error(r, "cannot record the migration", err);
            tsi_db_exec(c, "ROLLBACK", NULL);
            goto done;
        }
        PQclear(r);
        r = NULL;
        if ((rc = tsi_db_exec(c, "COMMIT", err)) < 0)
            goto done;
        applied++;
    }
    rc = applied;
done:
    PQclear(r);
    tsi_db_exec(c, SQL_UNLOCK, NULL);
    return rc;
}

int tsi_migrate_apply(PGconn *c, tsi_error *err)
{
    return tsi_migrate_apply_list(c, tsi_migrations, tsi_migrations_count, err);
}

int tsi_migrate_print_status(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT to_regclass('schema_migrations') IS NOT NULL AS have");
    int have = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(tsi_pq_get(r, 0, "have"), "t") == 0;
    PQclear(r);
    for (int i = 0; i < tsi_migrations_count; i++) {
        const tsi_migration *m = &tsi_migrations[i];
        const char *state = "pending";
        char when[64] = "";
        if (have) {
            char ver[16];
            snprintf(ver, sizeof ver, "%d", m->version);
            const char *p[2] = {ver, m->sql};
            r = PQexecParams(c,
                             "SELECT applied_at::text AS applied_at, checksum = encode(sha256("
                             "convert_to($2, 'UTF8')), 'hex') AS same FROM schema_migrations"
                             " WHERE version = $1",
                             2, NULL, p, NULL, NULL, 0);
            if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
                state = strcmp(tsi_pq_get(r, 0, "same"), "t") == 0 ? "applied" : "CHANGED";
                snprintf(when, sizeof when, "%s", tsi_pq_get(r, 0, "applied_at"));
            }
            PQclear(r);
        }
        printf("%03d  %-32s %-8s %s\n", m->version, m->name, state, when);
    }
    return 0;
}
