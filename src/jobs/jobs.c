/* jobs/jobs.c — see jobs.h */
#include "jobs/jobs.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "db/conn.h"
#include "db/result.h"

const char *const tsi_job_names[] = {"partitions", "hourly",    "daily",
                                     "constants",  "retention", NULL};

bool tsi_job_known(const char *name)
{
    for (int i = 0; name && tsi_job_names[i]; i++)
        if (strcmp(tsi_job_names[i], name) == 0)
            return true;
    return false;
}

bool tsi_jobs_schedule_valid(const char *s)
{
    if (!s)
        return false;
    int fields = 0;
    bool in_field = false;
    for (const char *p = s; *p; p++) {
        if (*p == ' ' || *p == '\t') {
            in_field = false;
            continue;
        }
        if (!isdigit((unsigned char)*p) && !strchr("*/,-", *p))
            return false;
        if (!in_field) {
            fields++;
            in_field = true;
        }
    }
    return fields == 5 && strlen(s) < 100;
}

/* libpq prints NOTICE/WARNING to stderr by default; pg_partman talks a lot */
static void notice_to_log(void *arg, const char *msg)
{
    (void)arg;
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        n--;
    tsi_debug("jobs", "server: %.*s", (int)n, msg);
}

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
/* A job statement that failed: its error, and TSI_E_INVALID for a class-22 SQLSTATE (data
 * exception: a bad --at or parameter, the caller's mistake). Clears r. */
static int job_failed(PGresult *r, const char *what, tsi_error *err)
{
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    int rc = tsi_db_result_error(r, what, err);
    if (st && strncmp(st, "22", 2) == 0) {
        rc = TSI_E_INVALID;
        if (err)
            err->code = rc;
    }
    PQclear(r);
    return rc;
}

static const char SQL_RUN[] =
    "SELECT run_id, status, buckets, n_rows, coalesce(error, '') AS error, "
    "detail::text AS detail FROM public.tsi_job_run($1, $2::timestamptz, $3::jsonb)";

int tsi_jobs_run_one(PGconn *c, const char *job, const char *at, const char *params,
                     tsi_job_result *out, tsi_error *err)
{
    memset(out, 0, sizeof *out);
    if (!tsi_job_known(job))
        return tsi_error_set(err, TSI_E_INVALID, "unknown job",
                             "'%s' (hourly|daily|retention|partitions|constants)",
                             job ? job : "(null)");
    PQsetNoticeProcessor(c, notice_to_log, NULL);
    PGresult *r = PQexec(c, "SET TimeZone = 'UTC'");
    PQclear(r);
    const char *p[3] = {job, at, params ? params : "{}"};
    double t0 = mono_seconds();
    r = PQexecParams(c, SQL_RUN, 3, NULL, p, NULL, NULL, 0);
    out->seconds = mono_seconds() - t0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        return job_failed(r, "the job could not run", err);
    out->run_id = strtoll(tsi_pq_get(r, 0, "run_id"), NULL, 10);
    snprintf(out->status, sizeof out->status, "%s", tsi_pq_get(r, 0, "status"));
    out->buckets = atoi(tsi_pq_get(r, 0, "buckets"));
    out->rows = strtoll(tsi_pq_get(r, 0, "n_rows"), NULL, 10);
    snprintf(out->error, sizeof out->error, "%s", tsi_pq_get(r, 0, "error"));
    snprintf(out->detail, sizeof out->detail, "%s", tsi_pq_get(r, 0, "detail"));
    PQclear(r);
    return 0;
}

/* The tables a retention run names, kept only when they are the rollup tables or their
 * partitions (names come back quoted by format('%I.%I')). */
static const char SQL_VACUUM_LIST[] =
    "WITH named AS (\n"
    "  SELECT DISTINCT t.name, to_regclass(t.name) AS rel\n"
    "    FROM job_runs r, jsonb_array_elements_text(r.detail -> 'vacuum') AS t(name)\n"
    "   WHERE r.id = $1 AND r.job = 'retention' AND r.status = 'ok')\n"
    "SELECT name, 'vacuum' AS how FROM named\n"
    " WHERE rel IN (SELECT inhrelid FROM pg_inherits\n"
    "                WHERE inhparent IN ('public.safety_indices_realtime'::regclass,\n"
    "                                    'public.safety_indices_hourly'::regclass))\n"
    "UNION ALL\n"
    "SELECT p.name, 'analyze' FROM (VALUES ('public.safety_indices_realtime', 'realtime'),\n"
    "                                       ('public.safety_indices_hourly', 'hourly')) p(name, "
    "k)\n"
    " WHERE EXISTS (SELECT 1 FROM job_runs r WHERE r.id = $1 AND r.job = 'retention'\n"
    "                 AND ((r.detail ->> (p.k || '_deleted'))::bigint > 0\n"
    "                   OR (r.detail ->> (p.k || '_partitions_dropped'))::int > 0))";

int tsi_jobs_vacuum(PGconn *owner, long long run_id, tsi_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%lld", run_id);
    const char *p[1] = {id};
    PQsetNoticeProcessor(owner, notice_to_log, NULL);
    PGresult *r = PQexecParams(owner, SQL_VACUUM_LIST, 1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = tsi_db_result_error(r, "cannot list the tables retention touched", err);
        PQclear(r);
        return rc;
    }
    int done = 0, rc = 0, c_name = tsi_pq_col(r, "name"), c_how = tsi_pq_col(r, "how");
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        /* the name is a regclass-validated, already-quoted identifier from the catalog */
        char sql[600];
        bool vac = strcmp(tsi_pq_at(r, i, c_how), "vacuum") == 0;
        snprintf(sql, sizeof sql, "%s %s", vac ? "VACUUM (ANALYZE)" : "ANALYZE",
                 tsi_pq_at(r, i, c_name));
        double t0 = mono_seconds();
        if ((rc = tsi_db_exec(owner, sql, err)) == 0) {
            tsi_info("jobs", "%s %s seconds=%.3f", vac ? "vacuumed" : "analyzed",
                     tsi_pq_at(r, i, c_name), mono_seconds() - t0);
            done++;
        }
    }
    PQclear(r);
    return rc < 0 ? rc : done;
}

/* Run as tsi_owner in autocommit: the procedure commits after every step (docs/jobs.md). */
static const char SQL_RETENTION_DROP[] =
    "CALL public.tsi_retention_drop($1::timestamptz, $2::jsonb, $3::bigint)";

int tsi_jobs_retention_drop(PGconn *owner, const char *at, const char *params, long long run_id,
                            tsi_buf *result, tsi_error *err)
{
    char id[32] = "";
    if (run_id > 0)
        snprintf(id, sizeof id, "%lld", run_id);
    const char *p[3] = {at, params ? params : "{}", run_id > 0 ? id : NULL};
    PQsetNoticeProcessor(owner, notice_to_log, NULL);
    PGresult *r = PQexecParams(owner, SQL_RETENTION_DROP, 3, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        return job_failed(r, "the realtime partition drop failed", err);
    if (result)
        tsi_buf_puts(result, tsi_pq_get(r, 0, "result"));
    PQclear(r);
    return 0;
}

static const char SQL_PARAMS[] =
    "SELECT jsonb_build_object(\n"
    "  'window_days', $1::int, 'k', $2::float8, 'prior_min_minutes', $3::int,\n"
    "  'realtime_retention', ($4::int || ' hours'), 'hourly_retention', ($5::int || ' days'),\n"
    "  'job_runs_retention', ($6::int || ' days'), 'lock_timeout_ms', $7::int,\n"
    "  'lock_attempts', $9::int, 'data_quality_retention', ($10::int || ' days'),\n"
    "  'min_minutes', $11::int, 'max_jump', $12::float8, 'features_retention_days', $13::int)\n"
    "  || CASE WHEN $8::jsonb IS NULL THEN '{}'::jsonb\n"
    "          ELSE jsonb_build_object('defaults', $8::jsonb) END AS params,\n"
    "  $8::jsonb IS NULL OR jsonb_typeof($8::jsonb) = 'object' AS defaults_ok,\n"
    "  $13::int >= $1::int AS retention_ok";

int tsi_jobs_params(PGconn *c, const tsi_opts *o, tsi_buf *out, tsi_error *err)
{
    const char *p[13] = {tsi_opts_str(o, "window-days"),
                         tsi_opts_str(o, "prior-k"),
                         tsi_opts_str(o, "prior-min-minutes"),
                         tsi_opts_str(o, "realtime-retention-hours"),
                         tsi_opts_str(o, "hourly-retention-days"),
                         tsi_opts_str(o, "job-runs-retention-days"),
                         tsi_opts_str(o, "lock-timeout-ms"),
                         tsi_opts_str(o, "constants-defaults"),
                         tsi_opts_str(o, "lock-attempts"),
                         tsi_opts_str(o, "data-quality-retention-days"),
                         tsi_opts_str(o, "constants-min-minutes"),
                         tsi_opts_str(o, "constants-max-jump"),
                         tsi_opts_str(o, "features-retention-days")};
    PGresult *r = PQexecParams(c, SQL_PARAMS, 13, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        tsi_db_result_error(r, "bad job parameter", err);
        PQclear(r);
        if (err)
            err->code = TSI_E_INVALID;
        return TSI_E_INVALID;
    }
    if (strcmp(tsi_pq_get(r, 0, "defaults_ok"), "t") != 0) {
        PQclear(r);
        return tsi_error_set(err, TSI_E_INVALID, "--constants-defaults must be a JSON object", "%s",
                             p[7]);
    }
    if (strcmp(tsi_pq_get(r, 0, "retention_ok"), "t") != 0) {
        PQclear(r);
        return tsi_error_set(err, TSI_E_INVALID,
                             "--features-retention-days must be at least --window-days",
                             "features-retention-days=%s window-days=%s", p[12], p[0]);
    }
    tsi_buf_puts(out, tsi_pq_get(r, 0, "params"));
    PQclear(r);
    return 0;
}

/* ---- the command ------------------------------------------------------------------ */

static int fail_msg(const char *what, const tsi_error *e)
{
    int rc = tsi_error_report(what, e);
    return e->code == TSI_E_INVALID ? 2 : rc;
}

int tsi_jobs_run_now(const tsi_opts *o)
{
    int rc;
    const char *job = o->nargs > 0 ? o->args[0] : NULL;
    bool all = job && strcmp(job, "all") == 0;
    if (!job || (!all && !tsi_job_known(job))) {
        fprintf(stderr,
                "tsi jobs run: %s job%s%s (hourly|daily|retention|partitions|constants|all)\n",
                job ? "unknown" : "missing", job ? " " : "", job ? job : "");
        return 2;
    }
    tsi_error e = {0};
    PGconn *c = tsi_db_connect(TSI_ROLE_JOBS, NULL, &e);
    if (!c) {
        return fail_msg("tsi jobs run", &e);
    }
    tsi_buf params = TSI_BUF_INIT;
    int status = 0;
    if (tsi_jobs_params(c, o, &params, &e) < 0) {
        status = fail_msg("tsi jobs run", &e);
        goto done;
    }
    for (int i = 0; tsi_job_names[i]; i++) {
        const char *name = all ? tsi_job_names[i] : job;
        tsi_job_result res;
        if ((rc = tsi_jobs_run_one(c, name, tsi_opts_str(o, "at"), tsi_buf_cstr(&params), &res,
                                   &e)) < 0) {
            status = fail_msg("tsi jobs run", &e);
            goto done;
        }
        printf("%-10s %-6s run=%lld buckets=%d rows=%lld seconds=%.3f\n", name, res.status,
               res.run_id, res.buckets, res.rows, res.seconds);
        fflush(stdout);
        if (strcmp(res.status, "ok") != 0) {
            fprintf(stderr, "tsi jobs run: %s failed: %s\n", name, res.error);
            tsi_err("jobs", "job failed job=%s run=%lld error=%s", name, res.run_id, res.error);
            status = 1;
        } else {
            tsi_info("jobs", "job done job=%s run=%lld buckets=%d rows=%lld seconds=%.3f", name,
                     res.run_id, res.buckets, res.rows, res.seconds);
            if (strcmp(name, "retention") == 0) {
                /* the steps that need the owner and their own transactions */
                PGconn *owner = tsi_db_connect(TSI_ROLE_OWNER, NULL, &e);
                tsi_buf drop = TSI_BUF_INIT;
                double t0 = mono_seconds();
                if (!owner ||
                    tsi_jobs_retention_drop(owner, tsi_opts_str(o, "at"), tsi_buf_cstr(&params),
                                            res.run_id, &drop, &e) < 0) {
                    status = fail_msg("tsi jobs run: retention drop", &e);
                } else {
                    printf("%-10s %-6s seconds=%.3f %s\n", "drop", "ok", mono_seconds() - t0,
                           tsi_buf_cstr(&drop));
                    tsi_info("jobs", "retention drop done run=%lld result=%s", res.run_id,
                             tsi_buf_cstr(&drop));
                    if (!tsi_opts_bool(o, "no-vacuum")) {
                        int n = tsi_jobs_vacuum(owner, res.run_id, &e);
                        if (n < 0)
                            status = fail_msg("tsi jobs run: vacuum after retention", &e);
                        else
                            printf("%-10s %-6s tables=%d\n", "vacuum", "ok", n);
                    }
                }
                tsi_buf_free(&drop);
                PQfinish(owner);
            }
        }
        if (!all)
            break;
    }
done:
    tsi_buf_free(&params);
    PQfinish(c);
    return status;
}

static const struct {
    const char *job;
    const char *option;
} schedule_of[] = {
    {"hourly", "schedule-hourly"},       {"daily", "schedule-daily"},
    {"retention", "schedule-retention"}, {"partitions", "schedule-partitions"},
    {"constants", "schedule-constants"},
};

static const char SQL_HAS_CRON[] =
    "SELECT to_regclass('cron.job') IS NOT NULL AS has_cron, current_database() AS db,\n"
    "       coalesce((SELECT setting FROM pg_settings WHERE name = 'cron.database_name'),\n"
    "                '(not visible to this role)') AS cron_db";

static int need_cron(PGconn *c, tsi_error *err)
{
    PGresult *r = PQexec(c, SQL_HAS_CRON);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = tsi_db_result_error(r, "cannot look for pg_cron", err);
        PQclear(r);
        return rc;
    }
    int rc = 0;
    if (strcmp(tsi_pq_get(r, 0, "has_cron"), "t") != 0)
        rc = tsi_error_set(err, TSI_E_UNAVAILABLE, "pg_cron is not installed in this database",
                           "database %s; cron.database_name = %s", tsi_pq_get(r, 0, "db"),
                           tsi_pq_get(r, 0, "cron_db"));
    PQclear(r);
    return rc;
}

static int exec_params(PGconn *c, const char *sql, int n, const char *const *p, const char *what,
                       tsi_error *err)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
    int st = PQresultStatus(r);
    int rc =
        (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) ? 0 : tsi_db_result_error(r, what, err);
    PQclear(r);
    return rc;
}

static const char SQL_SCHEDULE[] = "SELECT cron.schedule($1, $2, format('CALL "
                                   "public.tsi_job_cron(%L, %L::jsonb)', $3::text, $4::text))";
static const char SQL_SCHEDULE_DROP[] =
    "SELECT cron.schedule('tsi-retention-drop', $1,\n"
    "  format('CALL public.tsi_retention_drop(NULL, %L::jsonb, NULL)', $2::text))";
static const char SQL_SCHEDULE_VACUUM[] =
    "SELECT cron.schedule('tsi-vacuum', $1,\n"
    "  'VACUUM (ANALYZE) public.safety_indices_realtime, public.safety_indices_hourly')";
static const char SQL_UNSCHEDULE_ALL[] = "SELECT cron.unschedule(jobid) FROM cron.job WHERE "
                                         "jobname LIKE 'tsi-%' AND username = current_user";

int tsi_jobs_install(const tsi_opts *o)
{
    const char *opts_sched[] = {
        "schedule-hourly",    "schedule-daily",  "schedule-retention",     "schedule-partitions",
        "schedule-constants", "schedule-vacuum", "schedule-retention-drop"};
    for (size_t i = 0; i < sizeof opts_sched / sizeof opts_sched[0]; i++) {
        if (!tsi_jobs_schedule_valid(tsi_opts_str(o, opts_sched[i]))) {
            fprintf(stderr,
                    "tsi jobs install: --%s: '%s' is not a 5-field cron schedule "
                    "(minute hour day month weekday)\n",
                    opts_sched[i], tsi_opts_str(o, opts_sched[i]));
            return 2;
        }
    }
    tsi_error e = {0};
    int status = 0;
    tsi_buf params = TSI_BUF_INIT;
    PGconn *jobs = tsi_db_connect(TSI_ROLE_JOBS, NULL, &e);
    PGconn *owner = jobs ? tsi_db_connect(TSI_ROLE_OWNER, NULL, &e) : NULL;
    if (!jobs || !owner || need_cron(jobs, &e) < 0) {
        status = fail_msg("tsi jobs install", &e);
        goto done;
    }
    PQsetNoticeProcessor(jobs, notice_to_log, NULL);
    PQsetNoticeProcessor(owner, notice_to_log, NULL);
    if (tsi_jobs_params(jobs, o, &params, &e) < 0) {
        status = fail_msg("tsi jobs install", &e);
        goto done;
    }
    if (exec_params(jobs, SQL_UNSCHEDULE_ALL, 0, NULL, "cannot remove the old schedule", &e) < 0 ||
        exec_params(owner, SQL_UNSCHEDULE_ALL, 0, NULL, "cannot remove the old schedule", &e) < 0) {
        status = fail_msg("tsi jobs install", &e);
        goto done;
    }
    if (tsi_opts_bool(o, "remove")) {
        printf("removed tsi's pg_cron jobs\n");
        goto done;
    }
    for (size_t i = 0; i < sizeof schedule_of / sizeof schedule_of[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "tsi-%s", schedule_of[i].job);
        const char *sched = tsi_opts_str(o, schedule_of[i].option);
        const char *p[4] = {name, sched, schedule_of[i].job, tsi_buf_cstr(&params)};
        if (exec_params(jobs, SQL_SCHEDULE, 4, p, "cannot schedule a job", &e) < 0) {
            status = fail_msg("tsi jobs install", &e);
            goto done;
        }
        printf("%-16s %-14s as tsi_jobs\n", name, sched);
    }
    const char *pd[2] = {tsi_opts_str(o, "schedule-retention-drop"), tsi_buf_cstr(&params)};
    if (exec_params(owner, SQL_SCHEDULE_DROP, 2, pd, "cannot schedule the retention drop", &e) <
        0) {
        status = fail_msg("tsi jobs install", &e);
        goto done;
    }
    printf("%-16s %-14s as tsi_owner\n", "tsi-retention-drop", pd[0]);
    const char *pv[1] = {tsi_opts_str(o, "schedule-vacuum")};
    if (exec_params(owner, SQL_SCHEDULE_VACUUM, 1, pv, "cannot schedule VACUUM", &e) < 0) {
        status = fail_msg("tsi jobs install", &e);
        goto done;
    }
    printf("%-16s %-14s as tsi_owner\n", "tsi-vacuum", pv[0]);
done:
    tsi_buf_free(&params);
    PQfinish(jobs);
    PQfinish(owner);
    return status;
}

static const char SQL_LAST[] =
    "SELECT j.job, coalesce(to_char(r.started, 'YYYY-MM-DD HH24:MI:SS'), '-') AS started,\n"
    "       coalesce(to_char(r.at, 'YYYY-MM-DD HH24:MI:SS'), '-') AS clock,\n"
    "       coalesce(r.status, 'never') AS status, coalesce(r.buckets::text, '-') AS buckets,\n"
    "       coalesce(r.rows::text, '-') AS n_rows,\n"
    "       coalesce(round(extract(epoch FROM r.finished - r.started)::numeric, 3)::text, '-')\n"
    "         AS seconds,\n"
    "       coalesce(nullif(r.source, ''), '-') AS source, coalesce(r.error, '') AS error\n"
    "  FROM unnest(ARRAY['partitions','hourly','daily','constants','retention']) WITH ORDINALITY "
    "j(job, o)\n"
    "  LEFT JOIN LATERAL (SELECT * FROM job_runs WHERE job_runs.job = j.job\n"
    "                      ORDER BY started DESC, id DESC LIMIT 1) r ON true\n"
    " ORDER BY j.o";
static const char SQL_FAILURES[] =
    "SELECT to_char(started, 'YYYY-MM-DD HH24:MI:SS') AS started, job, error FROM job_runs\n"
    " WHERE status = 'failed' ORDER BY started DESC, id DESC LIMIT $1";
static const char SQL_CRON_STATUS[] =
    "SELECT j.jobname, j.schedule, j.username, j.active::text AS active,\n"
    "       coalesce(to_char(d.start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '-')\n"
    "         AS last_start,\n"
    "       coalesce(d.status, '-') AS last_status,\n"
    "       coalesce(left(replace(d.return_message, E'\\n', ' '), 120), '') AS last_message\n"
    "  FROM cron.job j\n"
    "  LEFT JOIN LATERAL (SELECT * FROM cron.job_run_details x WHERE x.jobid = j.jobid\n"
    "                      ORDER BY x.runid DESC LIMIT 1) d ON true\n"
    " WHERE j.jobname LIKE 'tsi-%' ORDER BY j.jobname";

/* the constants set in force now, its window and inputs; the last refusal */
static const char SQL_ACTIVE_SET[] =
    "SELECT id, to_char(valid_from, 'YYYY-MM-DD HH24:MI:SS') AS valid_from,\n"
    "       coalesce(to_char(valid_until, 'YYYY-MM-DD HH24:MI:SS'), 'open') AS valid_until,\n"
    "       coalesce(constants->>'window_days', '-') AS window_days,\n"
    "       coalesce(constants->>'window_start', '-') AS window_start,\n"
    "       coalesce(constants->>'window_end', '-') AS window_end,\n"
    "       coalesce(constants->>'minutes', '-') AS minutes,\n"
    "       coalesce(constants->>'source', 'safety_indices_realtime') AS source,\n"
    "       concat_ws(' ', 'I_vru_max=' || (constants->>'I_vru_max'),\n"
    "                 'I_veh_max=' || (constants->>'I_veh_max'), 'V_max=' || "
    "(constants->>'V_max'),\n"
    "                 'sigma_max=' || (constants->>'sigma_max'), 'S_ref=' || "
    "(constants->>'S_ref'),\n"
    "                 'HB_max=' || (constants->>'HB_max'), 'k=' || (constants->>'k'),\n"
    "                 'defaulted=' || coalesce(constants->'defaulted', '[]')::text) AS maxima\n"
    "  FROM normalization_constants\n"
    " WHERE valid_from <= now() AND (valid_until IS NULL OR valid_until > now())\n"
    " ORDER BY valid_from DESC LIMIT 1";
static const char SQL_LAST_REFUSAL[] =
    "SELECT to_char(\"timestamp\", 'YYYY-MM-DD HH24:MI:SS') AS at, message FROM data_quality_log\n"
    " WHERE issue_type = 'constants_refused' ORDER BY \"timestamp\" DESC, id DESC LIMIT 1";

static void print_constants(PGconn *c)
{
    PGresult *r = PQexec(c, SQL_ACTIVE_SET);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        printf("active constants set: id=%s valid=[%s, %s) window_days=%s window=[%s, %s) "
               "minutes=%s source=%s\n  %s\n",
               tsi_pq_get(r, 0, "id"), tsi_pq_get(r, 0, "valid_from"),
               tsi_pq_get(r, 0, "valid_until"), tsi_pq_get(r, 0, "window_days"),
               tsi_pq_get(r, 0, "window_start"), tsi_pq_get(r, 0, "window_end"),
               tsi_pq_get(r, 0, "minutes"), tsi_pq_get(r, 0, "source"), tsi_pq_get(r, 0, "maxima"));
    else if (PQresultStatus(r) == PGRES_TUPLES_OK)
        printf("active constants set: none (the built-in defaults apply)\n");
    PQclear(r);
    r = PQexec(c, SQL_LAST_REFUSAL);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        printf("last refused constants set: %s %s\n", tsi_pq_get(r, 0, "at"),
               tsi_pq_get(r, 0, "message"));
    PQclear(r);
}

static void print_cron(PGconn *c)
{
    PGresult *r = PQexec(c, SQL_CRON_STATUS);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(r); i++)
            printf("  %-16s %-14s %-10s active=%-5s last=%s %s %s\n", tsi_pq_get(r, i, "jobname"),
                   tsi_pq_get(r, i, "schedule"), tsi_pq_get(r, i, "username"),
                   tsi_pq_get(r, i, "active"), tsi_pq_get(r, i, "last_start"),
                   tsi_pq_get(r, i, "last_status"), tsi_pq_get(r, i, "last_message"));
    }
    PQclear(r);
}

int tsi_jobs_status(const tsi_opts *o)
{
    tsi_error e = {0};
    int status = 0;
    PGresult *r = NULL;
    PGconn *c = tsi_db_connect(TSI_ROLE_JOBS, NULL, &e);
    PGconn *owner = NULL;
    if (!c) {
        status = fail_msg("tsi jobs status", &e);
        goto done;
    }
    r = PQexec(c, "SET TimeZone = 'UTC'");
    PQclear(r);
    r = PQexec(c, SQL_LAST);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        tsi_db_result_error(r, "cannot read job_runs", &e);
        status = fail_msg("tsi jobs status", &e);
        goto done;
    }
    printf("last runs (UTC):\n  %-10s %-19s %-19s %-6s %7s %9s %8s %-10s %s\n", "job", "started",
           "clock", "status", "buckets", "rows", "seconds", "by", "error");
    for (int i = 0; i < PQntuples(r); i++) {
        printf("  %-10s %-19s %-19s %-6s %7s %9s %8s %-10s %s\n", tsi_pq_get(r, i, "job"),
               tsi_pq_get(r, i, "started"), tsi_pq_get(r, i, "clock"), tsi_pq_get(r, i, "status"),
               tsi_pq_get(r, i, "buckets"), tsi_pq_get(r, i, "n_rows"), tsi_pq_get(r, i, "seconds"),
               tsi_pq_get(r, i, "source"), tsi_pq_get(r, i, "error"));
        if (strcmp(tsi_pq_get(r, i, "status"), "failed") == 0)
            status = 1;
    }
    PQclear(r);
    print_constants(c);
    const char *lim[1] = {tsi_opts_str(o, "limit")};
    r = PQexecParams(c, SQL_FAILURES, 1, NULL, lim, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        printf("recent failures: %d\n", PQntuples(r));
        for (int i = 0; i < PQntuples(r); i++)
            printf("  %s %-10s %s\n", tsi_pq_get(r, i, "started"), tsi_pq_get(r, i, "job"),
                   tsi_pq_get(r, i, "error"));
    }
    PQclear(r);
    r = NULL;
    if (need_cron(c, &e) < 0) {
        char buf[900];
        printf("pg_cron: %s\n", tsi_error_str(&e, buf, sizeof buf));
        goto done;
    }
    printf("pg_cron schedule (last run each):\n");
    print_cron(c);
    if ((owner = tsi_db_connect(TSI_ROLE_OWNER, NULL, &e)) != NULL)
        print_cron(owner);
done:
    PQclear(r);
    PQfinish(c);
    PQfinish(owner);
    return status;
}
