/* db/status.c — see status.h */
#include "db/status.h"

#include <dirent.h>
#include <stdarg.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

#include "db/conn.h"
#include "db/result.h"

static const char SQL_OVERVIEW[] =
    "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS collected_at,\n"
    "       current_database() AS database, pg_database_size(current_database()) AS bytes,\n"
    "       pg_is_in_recovery() AS in_recovery,\n"
    "       CASE WHEN NOT pg_is_in_recovery() THEN -1\n"
    "            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0\n"
    "            ELSE COALESCE(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), -1)\n"
    "       END AS standby_delay,\n"
    "       a.archived_count, a.failed_count,\n"
    "       COALESCE(extract(epoch FROM now() - a.last_archived_time), -1) AS last_archived_age,\n"
    "       current_setting('archive_mode') <> 'off' AS archiving\n"
    "  FROM pg_stat_archiver a";

/* Tables and partitions of the application (not of extensions, not catalogs); a
 * partitioned table reports the sums of its leaves. */
static const char SQL_TABLES[] =
    "WITH t AS (\n"
    "  SELECT c.oid, c.relkind,\n"
    "         CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname "
    "END AS name,\n"
    "         (SELECT CASE WHEN pn.nspname = 'public' THEN p.relname\n"
    "                      ELSE pn.nspname || '.' || p.relname END\n"
    "            FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent\n"
    "            JOIN pg_namespace pn ON pn.oid = p.relnamespace\n"
    "           WHERE i.inhrelid = c.oid LIMIT 1) AS parent\n"
    "    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace\n"
    "   WHERE c.relkind IN ('r', 'p')\n"
    "     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'partman', "
    "'cron')\n"
    "     AND n.nspname NOT LIKE 'pg\\_temp%'\n"
    "     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass\n"
    "                      AND d.objid = c.oid AND d.deptype = 'e'))\n"
    "SELECT t.name, COALESCE(t.parent, '') AS parent,\n"
    "       CASE WHEN t.relkind = 'p' THEN\n"
    "         (SELECT COALESCE(sum(pg_total_relation_size(relid)), 0) FROM "
    "pg_partition_tree(t.oid))\n"
    "       ELSE pg_total_relation_size(t.oid) END::bigint AS total_bytes,\n"
    "       CASE WHEN t.relkind = 'p' THEN\n"
    "         (SELECT COALESCE(sum(pg_relation_size(relid)), 0) FROM pg_partition_tree(t.oid))\n"
    "       ELSE pg_relation_size(t.oid) END::bigint AS heap_bytes,\n"
    "       CASE WHEN t.relkind = 'p' THEN\n"
    "         (SELECT COALESCE(sum(pg_indexes_size(relid)), 0) FROM pg_partition_tree(t.oid)\n"
    "           WHERE isleaf)\n"
    "       ELSE pg_indexes_size(t.oid) END::bigint AS index_bytes,\n"
    "       CASE WHEN t.relkind = 'p' THEN\n"
    "         (SELECT COALESCE(sum(s.n_live_tup), 0) FROM pg_partition_tree(t.oid) pt\n"
    "            JOIN pg_stat_all_tables s ON s.relid = pt.relid)\n"
    "       ELSE (SELECT COALESCE(max(s.n_live_tup), 0) FROM pg_stat_all_tables s\n"
    "              WHERE s.relid = t.oid) END::bigint AS n_rows\n"
    "  FROM t\n"
    " ORDER BY COALESCE(t.parent, t.name), t.parent IS NOT NULL, t.name";

/* Range partitions by their bounds as PostgreSQL prints them: FROM ('...') TO ('...'). */
static const char SQL_AHEAD[] =
    "WITH b AS (\n"
    "  SELECT i.inhparent AS parent,\n"
    "         substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \\(''([^'']+)''\\)') AS "
    "lo,\n"
    "         substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']+)''\\)') AS hi\n"
    "    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid\n"
    "    JOIN pg_class p ON p.oid = i.inhparent\n"
    "   WHERE p.relkind = 'p' AND c.relpartbound IS NOT NULL)\n"
    "SELECT CASE WHEN n.nspname = 'public' THEN p.relname ELSE n.nspname || '.' || p.relname "
    "END AS parent,\n"
    "       count(*) AS partitions,\n"
    "       count(*) FILTER (WHERE b.lo ~ '^\\d{4}-\\d{2}-\\d{2}' AND b.lo::timestamptz > now())\n"
    "         AS ahead,\n"
    "       COALESCE(to_char(max(CASE WHEN b.hi ~ '^\\d{4}-\\d{2}-\\d{2}' THEN b.hi::timestamptz "
    "END)\n"
    "                AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') AS newest_end\n"
    "  FROM b JOIN pg_class p ON p.oid = b.parent JOIN pg_namespace n ON n.oid = p.relnamespace\n"
    " WHERE n.nspname NOT IN ('partman', 'cron')\n"
    " GROUP BY 1 ORDER BY 1";

static const char SQL_HAS_PGSS[] =
    "SELECT to_regclass('pg_stat_statements') IS NOT NULL\n"
    "   AND has_table_privilege(to_regclass('pg_stat_statements'), 'SELECT') AS yes";

static const char SQL_STATEMENTS[] =
    "SELECT COALESCE(queryid::text, '') AS queryid, calls, mean_exec_time, max_exec_time, "
    "total_exec_time,\n"
    "       left(regexp_replace(COALESCE(query, ''), '\\s+', ' ', 'g'), 250) AS query\n"
    "  FROM pg_stat_statements\n"
    " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())\n"
    " ORDER BY mean_exec_time DESC LIMIT 10";

static const char SQL_CONNS[] =
    "SELECT COALESCE(usename, '(background)') AS role, COALESCE(state, '') AS state,\n"
    "       count(*) AS n\n"
    "  FROM pg_stat_activity WHERE datname = current_database()\n"
    " GROUP BY 1, 2 ORDER BY 1, 2";

static const char SQL_REPLICAS[] =
    "SELECT COALESCE(application_name, '') AS name, COALESCE(host(client_addr), 'local') AS "
    "client,\n"
    "       COALESCE(state, '') AS state, COALESCE(extract(epoch FROM replay_lag), -1) AS "
    "replay_lag,\n"
    "       COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint AS lag_bytes\n"
    "  FROM pg_stat_replication ORDER BY 1, 2";

static const char SQL_HAS_CRON[] = "SELECT to_regclass('cron.job_run_details') IS NOT NULL\n"
                                   "   AND has_schema_privilege('cron', 'USAGE')\n"
                                   "   AND has_table_privilege('cron.job_run_details', 'SELECT')\n"
                                   "   AND has_table_privilege('cron.job', 'SELECT') AS yes";

static const char SQL_CRON_JOBS[] =
    "SELECT COALESCE(j.jobname, j.jobid::text) AS job,\n"
    "       COALESCE(extract(epoch FROM now() - max(d.end_time) FILTER (WHERE d.status = "
    "'succeeded')), -1) AS success_age\n"
    "  FROM cron.job j LEFT JOIN cron.job_run_details d ON d.jobid = j.jobid\n"
    " GROUP BY 1 ORDER BY 1";

/* job_runs as migration 010 (issue 14) made it: one row per run, status 'ok'|'failed' */
static const char SQL_HAS_JOB_RUNS[] =
    "SELECT to_regclass('job_runs') IS NOT NULL\n"
    "   AND has_table_privilege(to_regclass('job_runs'), 'SELECT')\n"
    "   AND (SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass('job_runs')\n"
    "         AND NOT attisdropped AND attname IN ('job', 'finished', 'status')) = 3 AS yes";

static const char SQL_HAS_BACKUP_INFO[] =
    "SELECT to_regclass('tsi_ops.backup_info') IS NOT NULL\n"
    "   AND has_table_privilege(to_regclass('tsi_ops.backup_info'), 'SELECT') AS yes";

/* whole seconds: the exposition prints non-integers with 6 significant digits */
static const char SQL_BACKUP_INFO[] =
    "SELECT COALESCE(floor(extract(epoch FROM last_full)), -1) AS last_full,\n"
    "       COALESCE(floor(extract(epoch FROM last_diff)), -1) AS last_diff,\n"
    "       COALESCE(floor(extract(epoch FROM now() - oldest_recoverable)), -1) AS "
    "recovery_window,\n"
    "       COALESCE(extract(epoch FROM now() - refreshed_at), -1) AS refreshed_age,\n"
    "       COALESCE(floor(extract(epoch FROM refreshed_at)), -1) AS refreshed_at,\n"
    "       COALESCE(backups, 0) AS backups, COALESCE(error, '') AS error\n"
    "  FROM tsi_ops.backup_info";

static const char SQL_JOB_RUNS[] =
    "SELECT job::text AS job,\n"
    "       COALESCE(extract(epoch FROM now() - max(finished) FILTER (WHERE status = 'ok')), -1)\n"
    "         AS success_age\n"
    "  FROM job_runs GROUP BY 1 ORDER BY 1";

static void cpy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

/* a value of the column called name (db/result.h: a missing column ends the process) */
static long long ll(const PGresult *r, int row, const char *name)
{
    const char *v = tsi_pq_get(r, row, name);
    return PQgetisnull(r, row, tsi_pq_col(r, name)) ? 0 : strtoll(v, NULL, 10);
}

static double dbl(const PGresult *r, int row, const char *name)
{
    const char *v = tsi_pq_get(r, row, name);
    return PQgetisnull(r, row, tsi_pq_col(r, name)) ? -1 : strtod(v, NULL);
}

static bool tf(const PGresult *r, int row, const char *name)
{
    const char *v = tsi_pq_get(r, row, name);
    return !PQgetisnull(r, row, tsi_pq_col(r, name)) && strcmp(v, "t") == 0;
}

/* Runs a query; on failure sets err (when required) and returns NULL. */
static PGresult *query(PGconn *c, const char *sql, const char *what, bool required, tsi_error *err)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        return r;
    if (required)
        tsi_db_result_error(r, what, err);
    PQclear(r);
    return NULL;
}

static bool ask(PGconn *c, const char *sql)
{
    PGresult *r = query(c, sql, NULL, false, NULL);
    bool yes = r && PQntuples(r) == 1 && tf(r, 0, "yes");
    PQclear(r);
    return yes;
}

static void *alloc_rows(PGresult *r, size_t size, size_t *n)
{
    *n = 0;
    int rows = PQntuples(r);
    if (rows <= 0)
        return NULL;
    void *p = calloc((size_t)rows, size);
    if (p)
        *n = (size_t)rows;
    return p;
}

static void spool_walk(const char *dir, int depth, tsi_status *s)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) < 0)
            continue;
        if (S_ISREG(st.st_mode)) {
            s->spool_files++;
            s->spool_bytes += (long long)st.st_size;
        } else if (S_ISDIR(st.st_mode) && depth < 4) {
            spool_walk(path, depth + 1, s);
        }
    }
    closedir(d);
}

int tsi_status_collect(PGconn *c, const char *spool_dir, tsi_status *s, tsi_error *err)
{
    memset(s, 0, sizeof *s);
    s->standby_delay_s = -1;
    s->wal_last_archived_age_s = -1;
    int rc = 0;
    PGresult *r = query(c, SQL_OVERVIEW, "cannot read the database overview", true, err);
    if (!r)
        return TSI_E_DB;
    cpy(s->collected_at, sizeof s->collected_at, tsi_pq_get(r, 0, "collected_at"));
    cpy(s->database, sizeof s->database, tsi_pq_get(r, 0, "database"));
    s->database_bytes = ll(r, 0, "bytes");
    s->in_recovery = tf(r, 0, "in_recovery");
    s->standby_delay_s = dbl(r, 0, "standby_delay");
    s->wal_archived = ll(r, 0, "archived_count");
    s->wal_archive_failed = ll(r, 0, "failed_count");
    s->wal_last_archived_age_s = dbl(r, 0, "last_archived_age");
    s->archiving = tf(r, 0, "archiving");
    PQclear(r);

    if (!(r = query(c, SQL_TABLES, "cannot read table sizes", true, err))) {
        rc = TSI_E_DB;
        goto done;
    }
    s->tables = alloc_rows(r, sizeof *s->tables, &s->ntables);
    for (size_t i = 0; i < s->ntables; i++) {
        tsi_status_table *t = &s->tables[i];
        cpy(t->name, sizeof t->name, tsi_pq_get(r, (int)i, "name"));
        cpy(t->parent, sizeof t->parent, tsi_pq_get(r, (int)i, "parent"));
        t->total_bytes = ll(r, (int)i, "total_bytes");
        t->heap_bytes = ll(r, (int)i, "heap_bytes");
        t->index_bytes = ll(r, (int)i, "index_bytes");
        t->rows = ll(r, (int)i, "n_rows");
    }
    PQclear(r);

    if (!(r = query(c, SQL_AHEAD, "cannot read partitions", true, err))) {
        rc = TSI_E_DB;
        goto done;
    }
    s->ahead = alloc_rows(r, sizeof *s->ahead, &s->nahead);
    for (size_t i = 0; i < s->nahead; i++) {
        tsi_status_ahead *a = &s->ahead[i];
        cpy(a->parent, sizeof a->parent, tsi_pq_get(r, (int)i, "parent"));
        a->partitions = (int)ll(r, (int)i, "partitions");
        a->ahead = (int)ll(r, (int)i, "ahead");
        cpy(a->newest_end, sizeof a->newest_end, tsi_pq_get(r, (int)i, "newest_end"));
    }
    PQclear(r);

    if (ask(c, SQL_HAS_PGSS) && (r = query(c, SQL_STATEMENTS, NULL, false, NULL))) {
        s->stmts = alloc_rows(r, sizeof *s->stmts, &s->nstmts);
        for (size_t i = 0; i < s->nstmts; i++) {
            tsi_status_stmt *q = &s->stmts[i];
            cpy(q->queryid, sizeof q->queryid, tsi_pq_get(r, (int)i, "queryid"));
            q->calls = ll(r, (int)i, "calls");
            q->mean_ms = dbl(r, (int)i, "mean_exec_time");
            q->max_ms = dbl(r, (int)i, "max_exec_time");
            q->total_ms = dbl(r, (int)i, "total_exec_time");
            cpy(q->query, sizeof q->query, tsi_pq_get(r, (int)i, "query"));
        }
        PQclear(r);
    }

    if (!(r = query(c, SQL_CONNS, "cannot read connections", true, err))) {
        rc = TSI_E_DB;
        goto done;
    }
    s->conns = alloc_rows(r, sizeof *s->conns, &s->nconns);
    for (size_t i = 0; i < s->nconns; i++) {
        cpy(s->conns[i].role, sizeof s->conns[i].role, tsi_pq_get(r, (int)i, "role"));
        cpy(s->conns[i].state, sizeof s->conns[i].state, tsi_pq_get(r, (int)i, "state"));
        s->conns[i].count = (int)ll(r, (int)i, "n");
    }
    PQclear(r);

    if (!s->in_recovery) {
        if (!(r = query(c, SQL_REPLICAS, "cannot read replication state", true, err))) {
            rc = TSI_E_DB;
            goto done;
        }
        s->replicas = alloc_rows(r, sizeof *s->replicas, &s->nreplicas);
        for (size_t i = 0; i < s->nreplicas; i++) {
            tsi_status_replica *p = &s->replicas[i];
            cpy(p->name, sizeof p->name, tsi_pq_get(r, (int)i, "name"));
            cpy(p->client, sizeof p->client, tsi_pq_get(r, (int)i, "client"));
            cpy(p->state, sizeof p->state, tsi_pq_get(r, (int)i, "state"));
            p->replay_lag_s = dbl(r, (int)i, "replay_lag");
            p->lag_bytes = ll(r, (int)i, "lag_bytes");
        }
        PQclear(r);
    }

    /* jobs: pg_cron's history, then a job_runs table; both optional */
    PGresult *cr = ask(c, SQL_HAS_CRON) ? query(c, SQL_CRON_JOBS, NULL, false, NULL) : NULL;
    PGresult *jr = ask(c, SQL_HAS_JOB_RUNS) ? query(c, SQL_JOB_RUNS, NULL, false, NULL) : NULL;
    size_t nj = (size_t)(cr ? PQntuples(cr) : 0) + (size_t)(jr ? PQntuples(jr) : 0);
    if (nj > 0 && (s->jobs = calloc(nj, sizeof *s->jobs)) != NULL) {
        PGresult *srcs[2] = {cr, jr};
        const char *names[2] = {"pg_cron", "job_runs"};
        for (int k = 0; k < 2; k++) {
            for (int i = 0; srcs[k] && i < PQntuples(srcs[k]); i++) {
                tsi_status_job *j = &s->jobs[s->njobs++];
                cpy(j->name, sizeof j->name, tsi_pq_get(srcs[k], i, "job"));
                j->last_success_age_s = dbl(srcs[k], i, "success_age");
                cpy(j->source, sizeof j->source, names[k]);
            }
        }
    }
    PQclear(cr);
    PQclear(jr);

    if (ask(c, SQL_HAS_BACKUP_INFO) && (r = query(c, SQL_BACKUP_INFO, NULL, false, NULL))) {
        if (PQntuples(r) == 1) {
            tsi_status_backup *b = &s->backup;
            b->present = true;
            b->last_full = dbl(r, 0, "last_full");
            b->last_diff = dbl(r, 0, "last_diff");
            b->recovery_window_s = dbl(r, 0, "recovery_window");
            b->refreshed_age_s = dbl(r, 0, "refreshed_age");
            b->refreshed_at = dbl(r, 0, "refreshed_at");
            b->backups = ll(r, 0, "backups");
            cpy(b->error, sizeof b->error, tsi_pq_get(r, 0, "error"));
        }
        PQclear(r);
    }

    if (spool_dir) {
        struct stat st;
        if (stat(spool_dir, &st) == 0 && S_ISDIR(st.st_mode)) {
            s->spool_present = true;
            spool_walk(spool_dir, 0, s);
        }
    }
    /* only a process that may enter the sockets' directory (root, postgres) reads the
     * monitor: another would report a healthy monitor as down */
    tsi_ha_formation f;
    if (tsi_ha_formation_read(&f) && access(f.socket_dir, X_OK) == 0) {
        s->ha_formation = true;
        s->ha_monitor_up = tsi_ha_state_read(&s->ha, NULL) == 0;
    }
    return 0;
done:
    return rc;
}

void tsi_status_free(tsi_status *s)
{
    if (!s)
        return;
    free(s->tables);
    free(s->ahead);
    free(s->stmts);
    free(s->conns);
    free(s->replicas);
    free(s->jobs);
    memset(s, 0, sizeof *s);
}

/* ---- Prometheus ----------------------------------------------------------------------- */

void tsi_status_label_escape(tsi_buf *out, const char *v)
{
    for (; v && *v; v++) {
        if (*v == '\\')
            tsi_buf_puts(out, "\\\\");
        else if (*v == '"')
            tsi_buf_puts(out, "\\\"");
        else if (*v == '\n')
            tsi_buf_puts(out, "\\n");
        else
            tsi_buf_putc(out, *v);
    }
}

static void family(tsi_buf *b, const char *name, const char *type, const char *help)
{
    tsi_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{k1="v1",k2="v2"} value — labels as NULL-terminated key, value pairs */
static void sample(tsi_buf *b, const char *name, double value, ...)
{
    tsi_buf_puts(b, name);
    va_list ap;
    va_start(ap, value);
    const char *k = va_arg(ap, const char *);
    if (k) {
        tsi_buf_putc(b, '{');
        bool first = true;
        while (k) {
            const char *v = va_arg(ap, const char *);
            tsi_buf_printf(b, "%s%s=\"", first ? "" : ",", k);
            tsi_status_label_escape(b, v);
            tsi_buf_putc(b, '"');
            first = false;
            k = va_arg(ap, const char *);
        }
        tsi_buf_putc(b, '}');
    }
    va_end(ap);
    if (value == (double)(long long)value && value < 9e15 && value > -9e15)
        tsi_buf_printf(b, " %lld\n", (long long)value);
    else
        tsi_buf_printf(b, " %.6g\n", value);
}

/* Absent until `tsi backup setup` made tsi_ops.backup_info: an alert on absent() sees it. */
static void backup_prometheus(const tsi_status_backup *k, tsi_buf *b)
{
    if (!k->present)
        return;
    family(b, "tsi_backup_last_success_timestamp_seconds", "gauge",
           "End of the newest backup of each type in the pgBackRest repository (Unix time).");
    if (k->last_full >= 0)
        sample(b, "tsi_backup_last_success_timestamp_seconds", k->last_full, "type", "full", NULL);
    if (k->last_diff >= 0)
        sample(b, "tsi_backup_last_success_timestamp_seconds", k->last_diff, "type", "diff", NULL);
    family(b, "tsi_backup_recovery_window_seconds", "gauge",
           "How far back point-in-time recovery reaches: now minus the oldest recoverable "
           "point (0 when there is no backup).");
    sample(b, "tsi_backup_recovery_window_seconds",
           k->recovery_window_s >= 0 ? k->recovery_window_s : 0, NULL);
    family(b, "tsi_backup_sets", "gauge", "Backups in the pgBackRest repository.");
    sample(b, "tsi_backup_sets", (double)k->backups, NULL);
    family(b, "tsi_backup_info_refreshed_timestamp_seconds", "gauge",
           "When the backup facts were last read from pgBackRest (Unix time; 0: never).");
    sample(b, "tsi_backup_info_refreshed_timestamp_seconds",
           k->refreshed_at >= 0 ? k->refreshed_at : 0, NULL);
    family(b, "tsi_backup_info_refresh_failed", "gauge",
           "1 when the last refresh of the backup facts failed (see tsi status).");
    sample(b, "tsi_backup_info_refresh_failed", k->error[0] ? 1 : 0, NULL);
}

void tsi_status_prometheus(const tsi_status *s, tsi_buf *b)
{
    family(b, "tsi_db_size_bytes", "gauge", "Size of the database on disk.");
    sample(b, "tsi_db_size_bytes", (double)s->database_bytes, "database", s->database, NULL);

    family(b, "tsi_db_table_bytes", "gauge",
           "Bytes of a table or partition (kind: heap, index, total; a partitioned table "
           "sums its partitions).");
    for (size_t i = 0; i < s->ntables; i++) {
        const tsi_status_table *t = &s->tables[i];
        sample(b, "tsi_db_table_bytes", (double)t->heap_bytes, "table", t->name, "parent",
               t->parent, "kind", "heap", NULL);
        sample(b, "tsi_db_table_bytes", (double)t->index_bytes, "table", t->name, "parent",
               t->parent, "kind", "index", NULL);
        sample(b, "tsi_db_table_bytes", (double)t->total_bytes, "table", t->name, "parent",
               t->parent, "kind", "total", NULL);
    }
    family(b, "tsi_db_table_rows", "gauge",
           "Live rows of a table or partition (statistics estimate, n_live_tup).");
    for (size_t i = 0; i < s->ntables; i++)
        sample(b, "tsi_db_table_rows", (double)s->tables[i].rows, "table", s->tables[i].name,
               "parent", s->tables[i].parent, NULL);

    family(b, "tsi_db_partitions", "gauge", "Partitions of a partitioned table.");
    for (size_t i = 0; i < s->nahead; i++)
        sample(b, "tsi_db_partitions", s->ahead[i].partitions, "table", s->ahead[i].parent, NULL);
    family(b, "tsi_db_partitions_ahead", "gauge",
           "Partitions whose range starts in the future (made ahead by pg_partman).");
    for (size_t i = 0; i < s->nahead; i++)
        sample(b, "tsi_db_partitions_ahead", s->ahead[i].ahead, "table", s->ahead[i].parent, NULL);

    family(b, "tsi_db_statement_mean_seconds", "gauge",
           "Mean execution time of the slowest statements (pg_stat_statements).");
    for (size_t i = 0; i < s->nstmts; i++)
        sample(b, "tsi_db_statement_mean_seconds", s->stmts[i].mean_ms / 1000.0, "queryid",
               s->stmts[i].queryid, NULL);
    family(b, "tsi_db_statement_max_seconds", "gauge",
           "Longest execution time of the slowest statements (pg_stat_statements).");
    for (size_t i = 0; i < s->nstmts; i++)
        sample(b, "tsi_db_statement_max_seconds", s->stmts[i].max_ms / 1000.0, "queryid",
               s->stmts[i].queryid, NULL);
    family(b, "tsi_db_statement_calls_total", "counter",
           "Calls of the slowest statements (pg_stat_statements).");
    for (size_t i = 0; i < s->nstmts; i++)
        sample(b, "tsi_db_statement_calls_total", (double)s->stmts[i].calls, "queryid",
               s->stmts[i].queryid, NULL);

    family(b, "tsi_db_connections", "gauge", "Connections to the database by role and state.");
    for (size_t i = 0; i < s->nconns; i++)
        sample(b, "tsi_db_connections", s->conns[i].count, "role", s->conns[i].role, "state",
               s->conns[i].state, NULL);

    family(b, "tsi_db_in_recovery", "gauge", "1 when this server is a standby (read replica).");
    sample(b, "tsi_db_in_recovery", s->in_recovery ? 1 : 0, NULL);
    family(b, "tsi_db_replicas", "gauge", "Streaming replicas connected to this primary.");
    sample(b, "tsi_db_replicas", (double)s->nreplicas, NULL);
    family(b, "tsi_db_replication_lag_seconds", "gauge",
           "Replay lag of a streaming replica as the primary sees it (0 when idle).");
    for (size_t i = 0; i < s->nreplicas; i++)
        sample(b, "tsi_db_replication_lag_seconds",
               s->replicas[i].replay_lag_s < 0 ? 0 : s->replicas[i].replay_lag_s, "replica",
               s->replicas[i].name, "client", s->replicas[i].client, NULL);
    family(b, "tsi_db_replication_lag_bytes", "gauge",
           "WAL bytes written on the primary and not yet replayed by a replica.");
    for (size_t i = 0; i < s->nreplicas; i++)
        sample(b, "tsi_db_replication_lag_bytes", (double)s->replicas[i].lag_bytes, "replica",
               s->replicas[i].name, "client", s->replicas[i].client, NULL);
    if (s->in_recovery) {
        family(b, "tsi_db_standby_delay_seconds", "gauge",
               "On a standby: time since the last replayed transaction (0 when caught up).");
        sample(b, "tsi_db_standby_delay_seconds", s->standby_delay_s < 0 ? 0 : s->standby_delay_s,
               NULL);
    }

    family(b, "tsi_wal_archiving", "gauge", "1 when WAL archiving (backups) is on.");
    sample(b, "tsi_wal_archiving", s->archiving ? 1 : 0, NULL);
    family(b, "tsi_wal_archived_total", "counter", "WAL segments archived since the stats reset.");
    sample(b, "tsi_wal_archived_total", (double)s->wal_archived, NULL);
    family(b, "tsi_wal_archive_failed_total", "counter",
           "Failed WAL archive attempts since the stats reset.");
    sample(b, "tsi_wal_archive_failed_total", (double)s->wal_archive_failed, NULL);
    if (s->wal_last_archived_age_s >= 0) {
        family(b, "tsi_wal_last_archived_age_seconds", "gauge",
               "Seconds since the last WAL segment was archived.");
        sample(b, "tsi_wal_last_archived_age_seconds", s->wal_last_archived_age_s, NULL);
    }
    backup_prometheus(&s->backup, b);

    family(b, "tsi_job_succeeded", "gauge", "1 when the job has succeeded at least once.");
    for (size_t i = 0; i < s->njobs; i++)
        sample(b, "tsi_job_succeeded", s->jobs[i].last_success_age_s >= 0 ? 1 : 0, "job",
               s->jobs[i].name, "source", s->jobs[i].source, NULL);
    family(b, "tsi_job_last_success_age_seconds", "gauge",
           "Seconds since the job last succeeded (absent when it never did).");
    for (size_t i = 0; i < s->njobs; i++)
        if (s->jobs[i].last_success_age_s >= 0)
            sample(b, "tsi_job_last_success_age_seconds", s->jobs[i].last_success_age_s, "job",
                   s->jobs[i].name, "source", s->jobs[i].source, NULL);

    if (s->ha_formation) {
        const tsi_ha_state *h = &s->ha;
        family(b, "tsi_ha_monitor_up", "gauge", "1 when the HA formation's monitor answered.");
        sample(b, "tsi_ha_monitor_up", s->ha_monitor_up ? 1 : 0, NULL);
        int secondaries = 0;
        for (int i = 0; i < h->nnodes; i++)
            secondaries += h->nodes[i].healthy && strcmp(h->nodes[i].reported, "secondary") == 0 &&
                           strcmp(h->nodes[i].assigned, "secondary") == 0;
        if (s->ha_monitor_up) {
            family(b, "tsi_ha_primary", "gauge",
                   "Data nodes serving as primary (1 when healthy; 0 during a failover).");
            sample(b, "tsi_ha_primary", h->primary >= 0 ? 1 : 0, NULL);
            family(b, "tsi_ha_secondaries", "gauge",
                   "Healthy secondaries ready to be promoted (0: the next failure loses the "
                   "database).");
            sample(b, "tsi_ha_secondaries", secondaries, NULL);
            family(b, "tsi_ha_node_state", "gauge",
                   "Each data node's reported and assigned state (value 1), health, and whether "
                   "it is primary.");
            for (int i = 0; i < h->nnodes; i++)
                sample(b, "tsi_ha_node_state", 1, "node", h->nodes[i].name, "reported",
                       h->nodes[i].reported, "assigned", h->nodes[i].assigned, "healthy",
                       h->nodes[i].healthy ? "1" : "0", "primary", h->nodes[i].primary ? "1" : "0",
                       NULL);
            family(b, "tsi_ha_replication_lag_bytes", "gauge",
                   "WAL bytes a node's last report is behind the primary's (monitor's view).");
            for (int i = 0; i < h->nnodes; i++)
                sample(b, "tsi_ha_replication_lag_bytes", (double)h->nodes[i].lag_bytes, "node",
                       h->nodes[i].name, NULL);
            family(b, "tsi_ha_failovers_total", "counter",
                   "Promotions (failovers and switchovers) since the formation was made.");
            sample(b, "tsi_ha_failovers_total", h->failovers, NULL);
            if (h->last_failover > 0) {
                family(b, "tsi_ha_last_failover_timestamp_seconds", "gauge",
                       "When the last promotion began (Unix time).");
                sample(b, "tsi_ha_last_failover_timestamp_seconds", h->last_failover, NULL);
            }
        }
    }

    if (s->spool_present) {
        family(b, "tsi_spool_files", "gauge", "Files waiting in the collector's spool.");
        sample(b, "tsi_spool_files", (double)s->spool_files, NULL);
        family(b, "tsi_spool_bytes", "gauge", "Bytes waiting in the collector's spool.");
        sample(b, "tsi_spool_bytes", (double)s->spool_bytes, NULL);
    }
}

/* ---- for a person ---------------------------------------------------------------------- */

static const char *human(long long b, char *buf, size_t len)
{
    const char *u[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
    return buf;
}

static const char *epoch_text(double t, char *buf, size_t len)
{
    if (t < 0) {
        snprintf(buf, len, "none");
        return buf;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

static const char *age(double s, char *buf, size_t len)
{
    if (s < 0)
        snprintf(buf, len, "never");
    else if (s < 120)
        snprintf(buf, len, "%.1f s", s);
    else if (s < 7200)
        snprintf(buf, len, "%.0f min", s / 60);
    else if (s < 172800)
        snprintf(buf, len, "%.1f h", s / 3600);
    else
        snprintf(buf, len, "%.1f days", s / 86400);
    return buf;
}

void tsi_status_print(FILE *out, const tsi_status *s)
{
    char a[32], b[32], c[32];
    fprintf(out, "database %s at %s: %s, %s\n", s->database, s->collected_at,
            human(s->database_bytes, a, sizeof a),
            s->in_recovery ? "standby (read replica)" : "primary");
    if (s->in_recovery)
        fprintf(out, "  replay delay: %s\n", age(s->standby_delay_s, a, sizeof a));

    fprintf(out, "\ntables (rows are estimates)\n  %-44s %12s %10s %10s %10s\n", "table", "rows",
            "heap", "indexes", "total");
    for (size_t i = 0; i < s->ntables; i++) {
        const tsi_status_table *t = &s->tables[i];
        char name[160];
        snprintf(name, sizeof name, "%s%s", t->parent[0] ? "  " : "", t->name);
        fprintf(out, "  %-44s %12lld %10s %10s %10s\n", name, t->rows,
                human(t->heap_bytes, a, sizeof a), human(t->index_bytes, b, sizeof b),
                human(t->total_bytes, c, sizeof c));
    }

    fprintf(out, "\npartitions\n");
    if (s->nahead == 0)
        fprintf(out, "  (no partitioned tables)\n");
    for (size_t i = 0; i < s->nahead; i++)
        fprintf(out, "  %-40s %4d partitions, %3d ready ahead, newest ends %s\n",
                s->ahead[i].parent, s->ahead[i].partitions, s->ahead[i].ahead,
                s->ahead[i].newest_end[0] ? s->ahead[i].newest_end : "-");

    fprintf(out, "\nslowest statements (pg_stat_statements, by mean time)\n");
    if (s->nstmts == 0)
        fprintf(out, "  (none recorded, or pg_stat_statements is not readable)\n");
    for (size_t i = 0; i < s->nstmts; i++)
        fprintf(out, "  %9.2f ms mean %9.2f ms max %8lld calls  %.90s\n", s->stmts[i].mean_ms,
                s->stmts[i].max_ms, s->stmts[i].calls, s->stmts[i].query);

    fprintf(out, "\nconnections\n");
    for (size_t i = 0; i < s->nconns; i++)
        fprintf(out, "  %-20s %-24s %4d\n", s->conns[i].role,
                s->conns[i].state[0] ? s->conns[i].state : "-", s->conns[i].count);

    if (!s->in_recovery) {
        fprintf(out, "\nreplication\n");
        if (s->nreplicas == 0)
            fprintf(out, "  (no streaming replica)\n");
        for (size_t i = 0; i < s->nreplicas; i++)
            fprintf(out, "  %-20s %-16s %-10s lag %s, %lld bytes\n", s->replicas[i].name,
                    s->replicas[i].client, s->replicas[i].state,
                    s->replicas[i].replay_lag_s < 0 ? "0 s (idle)"
                                                    : age(s->replicas[i].replay_lag_s, a, sizeof a),
                    s->replicas[i].lag_bytes);
    }

    fprintf(out, "\nWAL archiving: %s; %lld archived, %lld failed, last %s ago\n",
            s->archiving ? "on" : "off (run `tsi backup setup`)", s->wal_archived,
            s->wal_archive_failed, age(s->wal_last_archived_age_s, a, sizeof a));

    const tsi_status_backup *k = &s->backup;
    if (!k->present) {
        fprintf(out, "\nbackups: unknown (run `tsi backup setup`)\n");
    } else {
        char t[32], w[32], f[32];
        fprintf(out, "\nbackups: %lld in the repository; point-in-time window %s\n", k->backups,
                age(k->recovery_window_s, w, sizeof w));
        fprintf(out, "  newest full %s, newest differential %s (UTC)\n",
                epoch_text(k->last_full, t, sizeof t), epoch_text(k->last_diff, f, sizeof f));
        fprintf(out, "  read from pgBackRest %s ago%s%s\n", age(k->refreshed_age_s, a, sizeof a),
                k->error[0] ? "; last refresh FAILED: " : "", k->error);
    }

    fprintf(out, "\njobs\n");
    if (s->njobs == 0)
        fprintf(out, "  (no job history readable by this role)\n");
    for (size_t i = 0; i < s->njobs; i++)
        fprintf(out, "  %-32s last success %s ago (%s)\n", s->jobs[i].name,
                age(s->jobs[i].last_success_age_s, a, sizeof a), s->jobs[i].source);

    if (s->ha_formation && !s->ha_monitor_up)
        fprintf(out, "\nHA formation: the monitor does not answer\n");
    if (s->ha_formation && s->ha_monitor_up) {
        const tsi_ha_state *h = &s->ha;
        fprintf(out, "\nHA formation: primary %s; %d promotion(s)",
                h->primary >= 0 ? h->nodes[h->primary].name : "NONE", h->failovers);
        if (h->last_failover > 0)
            fprintf(out, ", the last at %s (UTC)", epoch_text(h->last_failover, a, sizeof a));
        fprintf(out, "\n");
        for (int i = 0; i < h->nnodes; i++)
            fprintf(out, "  %-10s port %-6d %-14s (assigned %s) %s, %lld bytes behind\n",
                    h->nodes[i].name, h->nodes[i].port, h->nodes[i].reported, h->nodes[i].assigned,
                    h->nodes[i].healthy ? "healthy" : "UNHEALTHY", h->nodes[i].lag_bytes);
    }

    if (s->spool_present)
        fprintf(out, "\nspool: %lld file(s), %s\n", s->spool_files,
                human(s->spool_bytes, a, sizeof a));
    else
        fprintf(out, "\nspool: none\n");
}
