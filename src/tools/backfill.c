/* tools/backfill.c — `tsi backfill`: indices Parquet (both layouts) → PostgreSQL
 * (FR-6). docs/backfill.md explains the design; in short:
 *
 *   1. DuckDB reads every file into one table and classifies each row (parquet_read.h):
 *      unknown intersection, out-of-range value, duplicate (intersection, minute) ...
 *      Each rejected row is reported with its file and row number, and counted.
 *   2. Rows from the first whole hour of the realtime window on (48 h) are COPYed into a
 *      temporary table and upserted into safety_indices_realtime; the jobs' hourly
 *      rollup (tsi_rollup_hourly, migration 010) then rolls their hours from the
 *      realtime table, exactly as it does for live rows.
 *   3. Older hours cannot come from the realtime table (it keeps 48 h): their hourly
 *      rollups are computed in DuckDB from the Parquet rows with the arithmetic of
 *      domain.md §5 (pq_hourly, with the VRU and vehicle sub-indices and the model
 *      provenance of migration 060), COPYed and upserted into safety_indices_hourly; the
 *      constants' features store (safety_features_hourly) of those hours too, from the
 *      1-minute rows (tsi_pqr_features_to_pg).
 *   4. The daily rollups come from the jobs' daily rollup (tsi_job_run('daily')),
 *      which re-rolls every day whose hourly rows changed (rollup_dirty marks).
 *   All of it in one transaction; every upsert changes a row only when a value differs,
 *   so a second run changes nothing. Then `tsi validate` over the same range. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/options.h"
#include "db/columns.h"
#include "db/conn.h"
#include "db/result.h"
#include "tools/pqr_pg.h"
#include "tools/validate.h"

#define US_HOUR 3600000000LL
#define US_DAY  (24 * US_HOUR)

/* ------------------------------------------------------------------ progress -- */

typedef struct progress {
    int mode; /* 0 off, 1 bar, 2 log */
    struct timespec t0, last;
    const char *phase;
    bool open_line;
} progress;

static double elapsed(const struct timespec *a)
{
    struct timespec n;
    clock_gettime(CLOCK_MONOTONIC, &n);
    return (double)(n.tv_sec - a->tv_sec) + (double)(n.tv_nsec - a->tv_nsec) / 1e9;
}

static void progress_cb(void *ud, const char *phase, int64_t done, int64_t total, int64_t rows)
{
    progress *pg = ud;
    if (pg->mode == 0)
        return;
    double t = elapsed(&pg->t0);
    double rate = t > 0 ? (double)rows / t : 0;
    bool final = total >= 0 && done >= total;
    if (pg->mode == 2) {
        if (!final && elapsed(&pg->last) < 5.0)
            return;
        clock_gettime(CLOCK_MONOTONIC, &pg->last);
        if (total > 0)
            tsi_info("backfill", "%s %" PRId64 "/%" PRId64 " rows=%" PRId64 " rate=%.0f/s", phase,
                     done, total, rows, rate);
        else
            tsi_info("backfill", "%s rows=%" PRId64 " rate=%.0f/s", phase, rows, rate);
        return;
    }
    char bar[31];
    double frac = total > 0 ? (double)done / (double)total : 0;
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[30] = '\0';
    double eta = frac > 0 ? t / frac - t : 0;
    if (total > 0)
        fprintf(stderr,
                "\r%-5s [%s] %s %" PRId64 "/%" PRId64 "  rows %" PRId64
                "  %.0f rows/s  ETA %d:%02d ",
                phase, bar, strcmp(phase, "read") == 0 ? "files" : "rows", done, total, rows, rate,
                (int)eta / 60, (int)eta % 60);
    else
        fprintf(stderr, "\r%-5s rows %" PRId64 "  %.0f rows/s          ", phase, rows, rate);
    pg->open_line = true;
    if (final) {
        fputc('\n', stderr);
        pg->open_line = false;
    }
}

static void progress_end(progress *pg)
{
    if (pg->open_line)
        fputc('\n', stderr);
    pg->open_line = false;
}

/* --------------------------------------------------------------------- report -- */

static const char SQL_BAD[] =
    "SELECT f.path, CAST(c.row_no AS VARCHAR), c.reason FROM pq_class c JOIN pq_files f USING "
    "(file_id) WHERE c.reason IS NOT NULL\n"
    "UNION ALL SELECT path, '*', 'file unreadable (' || CASE WHEN nrows < 0 THEN 'unknown number "
    "of'"
    " ELSE CAST(nrows AS VARCHAR) END || ' rows): ' || error FROM pq_files WHERE error IS NOT "
    "NULL\n"
    "ORDER BY 1, 2";

static const char SQL_CATEGORIES[] =
    "SELECT category, count(*) FROM (SELECT CASE\n"
    "  WHEN reason LIKE 'duplicate of %' THEN 'duplicate'\n"
    "  WHEN reason LIKE 'unknown intersection%' OR reason LIKE 'intersection id %'\n"
    "    THEN 'unknown_intersection'\n"
    "  WHEN reason LIKE '% missing%' THEN 'missing_value'\n"
    "  WHEN reason LIKE '%in the future' THEN 'future_timestamp'\n"
    "  WHEN reason LIKE 'timestamp %' THEN 'bad_timestamp'\n"
    "  ELSE 'out_of_range' END AS category FROM pq_class WHERE reason IS NOT NULL) GROUP BY 1\n"
    "UNION ALL SELECT 'unreadable_file', CAST(coalesce(sum(greatest(nrows, 0)), 0) AS BIGINT)\n"
    " FROM pq_files\n"
    " WHERE error IS NOT NULL HAVING count(*) > 0 ORDER BY 1";

static void csv_field(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int report_bad(tsi_pqr *p, const char *report_path, int64_t max_log, tsi_buf *cats,
                      tsi_error *err)
{
    FILE *csv = NULL;
    int rc = 0;
    if (report_path) {
        if (!(csv = fopen(report_path, "w")))
            return tsi_error_set(err, TSI_E_IO, "cannot write the report", "%s: %s", report_path,
                                 strerror(errno));
        fputs("file,row,reason\n", csv);
    }
    duckdb_result r;
    if ((rc = tsi_pqr_query(p, SQL_BAD, &r, err)) < 0)
        goto done;
    int64_t n = 0;
    duckdb_data_chunk ch;
    while ((ch = duckdb_fetch_chunk(r)) != NULL) {
        idx_t m = duckdb_data_chunk_get_size(ch);
        duckdb_string_t *col[3];
        for (int j = 0; j < 3; j++)
            col[j] = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, (idx_t)j));
        for (idx_t i = 0; i < m; i++, n++) {
            tsi_buf v[3] = {TSI_BUF_INIT, TSI_BUF_INIT, TSI_BUF_INIT};
            for (int j = 0; j < 3; j++)
                tsi_buf_append(&v[j], duckdb_string_t_data(&col[j][i]),
                               duckdb_string_t_length(col[j][i]));
            if (n < max_log)
                tsi_warn("backfill", "rejected row file=%s row=%s reason=\"%s\"",
                         tsi_buf_cstr(&v[0]), tsi_buf_cstr(&v[1]), tsi_buf_cstr(&v[2]));
            if (csv) {
                csv_field(csv, tsi_buf_cstr(&v[0]));
                fprintf(csv, ",%s,", tsi_buf_cstr(&v[1]));
                csv_field(csv, tsi_buf_cstr(&v[2]));
                fputc('\n', csv);
            }
            for (int j = 0; j < 3; j++)
                tsi_buf_free(&v[j]);
        }
        duckdb_destroy_data_chunk(&ch);
    }
    duckdb_destroy_result(&r);
    if (n > max_log)
        tsi_warn("backfill", "%" PRId64 " more rejected rows not logged (see --report)",
                 n - max_log);
    if ((rc = tsi_pqr_query(p, SQL_CATEGORIES, &r, err)) < 0)
        goto done;
    while ((ch = duckdb_fetch_chunk(r)) != NULL) {
        idx_t m = duckdb_data_chunk_get_size(ch);
        duckdb_string_t *c0 = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 0));
        int64_t *c1 = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 1));
        for (idx_t i = 0; i < m; i++)
            tsi_buf_printf(cats, " %.*s=%" PRId64, (int)duckdb_string_t_length(c0[i]),
                           duckdb_string_t_data(&c0[i]), c1[i]);
        duckdb_destroy_data_chunk(&ch);
    }
done:
    duckdb_destroy_result(&r);
    if (csv && fclose(csv) != 0 && rc == 0)
        rc = tsi_error_set(err, TSI_E_IO, "cannot write the report", "%s", report_path);
    return rc;
}

/* ---------------------------------------------------------------------- load -- */

static const char SQL_RT_STAGE[] =
    "CREATE TEMP TABLE tsi_bf_rt (intersection_id bigint, ts_us bigint, " TSI_RT_COLS_DDL
    ") ON COMMIT DROP";
#define RT_COLS TSI_RT_COLS

static const char SQL_RT_UPSERT[] =
    "WITH up AS (\n"
    "  INSERT INTO safety_indices_realtime AS r (intersection_id, \"timestamp\", " RT_COLS ")\n"
    "  SELECT intersection_id, timestamptz 'epoch' + ts_us * interval '1 microsecond', " RT_COLS
    "\n"
    "    FROM tsi_bf_rt\n"
    "  ON CONFLICT (intersection_id, \"timestamp\") DO UPDATE SET\n"
    "    combined_index = EXCLUDED.combined_index, combined_index_eb = "
    "EXCLUDED.combined_index_eb,\n"
    "    vru_index = EXCLUDED.vru_index, vru_index_eb = EXCLUDED.vru_index_eb,\n"
    "    vehicle_index = EXCLUDED.vehicle_index, vehicle_index_eb = EXCLUDED.vehicle_index_eb,\n"
    "    traffic_volume = EXCLUDED.traffic_volume, vru_count = EXCLUDED.vru_count,\n"
    "    vehicle_event_count = EXCLUDED.vehicle_event_count,\n"
    "    vru_event_count = EXCLUDED.vru_event_count, hour_of_day = EXCLUDED.hour_of_day,\n"
    "    day_of_week = EXCLUDED.day_of_week, avg_speed = EXCLUDED.avg_speed,\n"
    "    speed_stddev = EXCLUDED.speed_stddev, hard_braking_count = EXCLUDED.hard_braking_count,\n"
    "    constants_id = EXCLUDED.constants_id, algorithm_version = EXCLUDED.algorithm_version\n"
    "  WHERE (r.combined_index, r.combined_index_eb, r.vru_index, r.vru_index_eb, "
    "r.vehicle_index,\n"
    "         r.vehicle_index_eb, r.traffic_volume, r.vru_count, r.vehicle_event_count,\n"
    "         r.vru_event_count, r.hour_of_day, r.day_of_week, r.avg_speed, r.speed_stddev,\n"
    "         r.hard_braking_count, r.constants_id, r.algorithm_version)\n"
    "        IS DISTINCT FROM\n"
    "        (EXCLUDED.combined_index, EXCLUDED.combined_index_eb, EXCLUDED.vru_index,\n"
    "         EXCLUDED.vru_index_eb, EXCLUDED.vehicle_index, EXCLUDED.vehicle_index_eb,\n"
    "         EXCLUDED.traffic_volume, EXCLUDED.vru_count, EXCLUDED.vehicle_event_count,\n"
    "         EXCLUDED.vru_event_count, EXCLUDED.hour_of_day, EXCLUDED.day_of_week,\n"
    "         EXCLUDED.avg_speed, EXCLUDED.speed_stddev, EXCLUDED.hard_braking_count,\n"
    "         EXCLUDED.constants_id, EXCLUDED.algorithm_version)\n"
    "  RETURNING 1)\n"
    "SELECT (SELECT count(*) FROM tsi_bf_rt s WHERE NOT EXISTS (SELECT 1 FROM\n"
    "          safety_indices_realtime r WHERE r.intersection_id = s.intersection_id AND\n"
    "          r.\"timestamp\" = timestamptz 'epoch' + s.ts_us * interval '1 microsecond'))\n"
    "       AS new_rows, (SELECT count(*) FROM up) AS written";

static const char SQL_HR_STAGE[] =
    "CREATE TEMP TABLE tsi_bf_hr (intersection_id bigint, hour_us bigint, " TSI_HR_COLS_DDL
    ") ON COMMIT DROP";
#define HR_COLS TSI_HR_COLS

#define DIFFERS(col)                                                                               \
    "     OR (h." col " IS NULL) <> (EXCLUDED." col " IS NULL)\n"                                  \
    "     OR abs(h." col " - EXCLUDED." col ") > 1e-12 * greatest(1, abs(h." col "))\n"

static const char SQL_HR_UPSERT[] =
    "WITH up AS (\n"
    "  INSERT INTO safety_indices_hourly AS h (intersection_id, hour_timestamp, " HR_COLS ")\n"
    "  SELECT intersection_id, timestamptz 'epoch' + hour_us * interval '1 microsecond', " HR_COLS
    "\n"
    "    FROM tsi_bf_hr\n"
    "  ON CONFLICT (intersection_id, hour_timestamp) DO UPDATE SET\n"
    "    avg_si = EXCLUDED.avg_si, min_si = EXCLUDED.min_si, max_si = EXCLUDED.max_si,\n"
    "    std_si = EXCLUDED.std_si, total_volume = EXCLUDED.total_volume,\n"
    "    avg_volume = EXCLUDED.avg_volume, high_risk_minutes = EXCLUDED.high_risk_minutes,\n"
    "    data_quality_score = EXCLUDED.data_quality_score" TSI_HR_SUB_SET "\n"
    /* DuckDB's parallel sums may differ in the last bit between runs: a value counts
     * as changed beyond 1e-12 (relative), so a re-run rewrites nothing */
    "  WHERE h.total_volume <> EXCLUDED.total_volume\n"
    "     OR h.high_risk_minutes <> EXCLUDED.high_risk_minutes\n" DIFFERS("avg_si")
        DIFFERS("min_si") DIFFERS("max_si") DIFFERS("std_si") DIFFERS("avg_volume")
            DIFFERS("data_quality_score") TSI_HR_SUB_CHANGED
    "\n  RETURNING 1)\n"
    "SELECT (SELECT count(*) FROM tsi_bf_hr s WHERE NOT "
    "EXISTS (SELECT 1 FROM\n"
    "          safety_indices_hourly h WHERE "
    "h.intersection_id = s.intersection_id AND\n"
    "          h.hour_timestamp = timestamptz 'epoch' + "
    "s.hour_us * interval '1 microsecond'))\n"
    "       AS new_rows, (SELECT count(*) FROM up) AS written";

/* sql gives (rows not there before, rows written); a CTE's snapshot is the one before
 * the statement, so the first count sees the table as it was. Returns inserted (a) and
 * updated (b). (RETURNING xmax is refused on partitioned tables.) */
static int two_counts(PGconn *c, const char *sql, int64_t *a, int64_t *b, tsi_error *err)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = tsi_db_result_error(r, "upsert failed", err);
        PQclear(r);
        return rc;
    }
    *a = strtoll(tsi_pq_get(r, 0, "new_rows"), NULL, 10);
    *b = strtoll(tsi_pq_get(r, 0, "written"), NULL, 10) - *a;
    PQclear(r);
    return 0;
}

typedef struct load_stats {
    int64_t rt_rows, rt_inserted, rt_updated;
    int64_t hr_rows, hr_inserted, hr_updated;
    int64_t daily_buckets, daily_rows;
} load_stats;

static void mark(const char *what, struct timespec *t)
{
    tsi_debug("backfill", "step=%s seconds=%.3f", what, elapsed(t));
    clock_gettime(CLOCK_MONOTONIC, t);
}

static int load(tsi_pqr *p, PGconn *c, int64_t rt_cut, progress *pg, load_stats *st, tsi_error *err)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    char q[2048];
    int rc;
    PGresult *r = NULL;
    if ((rc = tsi_db_exec(c, "BEGIN", err)) < 0)
        return rc;
    /* the daily rollup is the jobs' (migration 010): refuse to half-load without it */
    r = PQexec(c, "SELECT to_regprocedure('tsi_job_run(text,timestamptz,jsonb)') IS NOT NULL"
                  " AS has_jobs");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(tsi_pq_get(r, 0, "has_jobs"), "t") != 0) {
        rc = tsi_error_set(err, TSI_E_DB, "the jobs' rollup functions are missing",
                           "tsi_job_run() not found: run `tsi migrate` first");
        goto fail;
    }
    PQclear(r);
    r = NULL;
    if ((rc = tsi_db_exec(c, SQL_RT_STAGE, err)) < 0 ||
        (rc = tsi_db_exec(c, SQL_HR_STAGE, err)) < 0)
        goto fail;
    pg->phase = "copy";
    snprintf(q, sizeof q,
             "SELECT iid, ts_us, " RT_COLS " FROM pq_valid WHERE ts_us >= %" PRId64
             " ORDER BY iid, ts_us",
             rt_cut);
    int64_t n = tsi_pqr_copy_to_pg(p, q, c, "COPY tsi_bf_rt FROM STDIN", progress_cb, pg, err);
    if (n < 0) {
        rc = (int)n;
        goto fail;
    }
    st->rt_rows = n;
    mark("realtime_copy", &t);
    if ((rc = two_counts(c, SQL_RT_UPSERT, &st->rt_inserted, &st->rt_updated, err)) < 0)
        goto fail;
    mark("realtime_upsert", &t);
    snprintf(q, sizeof q,
             "SELECT iid, hour_us, " HR_COLS " FROM pq_hourly WHERE hour_us < %" PRId64
             " ORDER BY iid, hour_us",
             rt_cut);
    n = tsi_pqr_copy_to_pg(p, q, c, "COPY tsi_bf_hr FROM STDIN", NULL, NULL, err);
    if (n < 0) {
        rc = (int)n;
        goto fail;
    }
    st->hr_rows = n;
    mark("hourly_compute_copy", &t);
    if ((rc = two_counts(c, SQL_HR_UPSERT, &st->hr_inserted, &st->hr_updated, err)) < 0)
        goto fail;
    mark("hourly_upsert", &t);
    /* the constants' features store of the hours before the window (window hours: the
     * jobs' rollup below, from the realtime rows) */
    if ((n = tsi_pqr_features_to_pg(p, c, INT64_MIN, rt_cut, err)) < 0) {
        rc = (int)n;
        goto fail;
    }
    mark("features", &t);
    /* hourly of the realtime rows, then daily of every day whose hours changed */
    r = PQexec(c, "SELECT status, coalesce(error, '') AS error, buckets, n_rows FROM "
                  "tsi_job_run('daily', NULL, '{\"source\": \"backfill\"}')");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = tsi_db_result_error(r, "the daily rollup failed", err);
        goto fail;
    }
    if (strcmp(tsi_pq_get(r, 0, "status"), "ok") != 0) {
        rc = tsi_error_set(err, TSI_E_DB, "the daily rollup failed", "%s",
                           tsi_pq_get(r, 0, "error"));
        goto fail;
    }
    st->daily_buckets = strtoll(tsi_pq_get(r, 0, "buckets"), NULL, 10);
    st->daily_rows = strtoll(tsi_pq_get(r, 0, "n_rows"), NULL, 10);
    PQclear(r);
    r = NULL;
    mark("jobs_daily", &t);
    if ((rc = tsi_db_exec(c, "COMMIT", err)) < 0)
        goto fail;
    mark("commit", &t);
    return 0;
fail:
    PQclear(r);
    tsi_db_exec(c, "ROLLBACK", NULL);
    return rc;
}

/* ------------------------------------------------------------------- command -- */

int tsi_backfill_run(const tsi_opts *o)
{
    tsi_error e = {0};
    PGconn *c = NULL;
    tsi_pqr p = {0};
    int status = 1;
    int64_t since = 0, until = INT64_MAX;
    const char *from = tsi_opts_str(o, "from");
    if (!from) {
        fprintf(stderr, "tsi backfill: --from DIR is required\n");
        return 2;
    }
    if ((tsi_opts_str(o, "since") &&
         tsi_pqr_parse_time(tsi_opts_str(o, "since"), &since, &e) < 0) ||
        (tsi_opts_str(o, "until") &&
         tsi_pqr_parse_time(tsi_opts_str(o, "until"), &until, &e) < 0)) {
        fprintf(stderr, "tsi backfill: %s: %s\n", e.message, e.detail);
        return 2;
    }
    since = since / US_DAY * US_DAY;
    if (tsi_opts_str(o, "until"))
        until = until / US_DAY * US_DAY + US_DAY;
    if (until <= since) {
        fprintf(stderr, "tsi backfill: --until is before --since\n");
        return 2;
    }
    const char *pm = tsi_opts_str(o, "progress");
    progress pg = {.mode = strcmp(pm, "off") == 0   ? 0
                           : strcmp(pm, "bar") == 0 ? 1
                           : strcmp(pm, "log") == 0 ? 2
                           : isatty(2)              ? 1
                                                    : 2};
    clock_gettime(CLOCK_MONOTONIC, &pg.t0);
    pg.last = pg.t0;
    const char *bins = tsi_opts_str(o, "bin-minutes");
    int bin = strcmp(bins, "auto") == 0 ? 0 : atoi(bins);
    bool dry = tsi_opts_bool(o, "dry-run");
    int64_t now_us, rt_cut, hr_cut;
    tsi_pqr_summary sum;
    tsi_buf cats = TSI_BUF_INIT;

    if (!(c = tsi_db_connect(TSI_ROLE_JOBS, NULL, &e)))
        goto fail;
    if (tsi_validate_clock(c, (int)tsi_opts_int(o, "realtime-hours"),
                           (int)tsi_opts_int(o, "hourly-days"), &now_us, &rt_cut, &hr_cut, &e) < 0)
        goto fail;
    if (until == INT64_MAX)
        until = (now_us / US_DAY + 2) * US_DAY;
    if (tsi_pqr_open(&p, &e) < 0)
        goto fail;
    tsi_info("backfill", "reading dir=%s", from);
    if (tsi_pqr_prepare(&p, from, since, until, now_us, bin, c, progress_cb, &pg, &sum, &e) < 0)
        goto fail;
    progress_end(&pg);
    if (report_bad(&p, tsi_opts_str(o, "report"), tsi_opts_int(o, "max-report"), &cats, &e) < 0)
        goto fail;
    int64_t rt_want = 0, hr_want = 0, first_us = 0, last_us = 0;
    char q[256];
    snprintf(q, sizeof q, "SELECT count(*) FROM pq_valid WHERE ts_us >= %" PRId64, rt_cut);
    tsi_pqr_int(&p, q, 0, &rt_want, NULL);
    snprintf(q, sizeof q, "SELECT count(*) FROM pq_hourly WHERE hour_us < %" PRId64, rt_cut);
    tsi_pqr_int(&p, q, 0, &hr_want, NULL);
    tsi_pqr_int(&p, "SELECT min(ts_us) FROM pq_valid", 0, &first_us, NULL);
    tsi_pqr_int(&p, "SELECT max(ts_us) FROM pq_valid", 0, &last_us, NULL);
    tsi_info("backfill",
             "read files=%" PRId64 " unreadable=%" PRId64 " rows=%" PRId64 " valid=%" PRId64
             " rejected=%" PRId64 " outside_range=%" PRId64 "%s%s",
             sum.files, sum.files_bad, sum.rows_read, sum.rows_valid, sum.rows_bad,
             sum.rows_outside, sum.rows_bad ? " reasons:" : "", tsi_buf_cstr(&cats));
    if (dry) {
        tsi_info("backfill",
                 "dry run: would load realtime_rows=%" PRId64 " hourly_rows_from_parquet=%" PRId64
                 "; nothing written",
                 rt_want, hr_want);
        status = 0;
        goto done;
    }
    load_stats st = {0};
    if (load(&p, c, rt_cut, &pg, &st, &e) < 0)
        goto fail;
    progress_end(&pg);
    double secs = elapsed(&pg.t0);
    tsi_info("backfill",
             "loaded realtime_rows=%" PRId64 " inserted=%" PRId64 " updated=%" PRId64
             " hourly_rows=%" PRId64 " inserted=%" PRId64 " updated=%" PRId64 " daily_days=%" PRId64
             " daily_rows_changed=%" PRId64 " seconds=%.2f rate=%.0f rows/s",
             st.rt_rows, st.rt_inserted, st.rt_updated, st.hr_rows, st.hr_inserted, st.hr_updated,
             st.daily_buckets, st.daily_rows, secs, secs > 0 ? (double)sum.rows_read / secs : 0);
    if (tsi_opts_bool(o, "no-validate") || sum.rows_valid == 0) {
        status = 0;
        goto done;
    }
    tsi_validate_cfg cfg = {
        .from = from,
        .since_us = first_us / US_DAY * US_DAY,
        .until_us = last_us / US_DAY * US_DAY + US_DAY,
        .now_us = now_us,
        .rt_cut_us = rt_cut,
        .hourly_cut_us = hr_cut,
        .sample = (int)tsi_opts_int(o, "sample"),
        .seed = (uint32_t)time(NULL),
        .tolerance = tsi_opts_double(o, "tolerance"),
        .max_issues = 50,
        .format = TSI_VFMT_TEXT,
        .summary = &sum,
    };
    /* the database clock moved while loading: validate against the clock of the load */
    tsi_validate_result res;
    if (tsi_validate_run(&p, c, &cfg, stdout, &res, &e) < 0)
        goto fail;
    tsi_info("backfill", "validated compared=%" PRId64 " differences=%" PRId64, res.compared,
             res.mismatches);
    status = res.mismatches ? 1 : 0;
    goto done;
fail:
    progress_end(&pg);
    fprintf(stderr, "tsi backfill: %s: %s\n", e.message, e.detail);
    status = 1;
done:
    tsi_buf_free(&cats);
    tsi_pqr_close(&p);
    if (c)
        PQfinish(c);
    return status;
}
