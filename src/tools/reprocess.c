/* tools/reprocess.c — `tsi reprocess`: recompute features and indices of a time range from
 * the raw archive with today's algorithm and constants, then replace the range (US-6).
 *
 *   1. The raw BSM/PSM messages of [since, until) are read through DuckDB from tsi's raw
 *      layout (raw/{bsm|psm}/YYYY/MM/DD/HH/ files, the original JSON in `json`) and the
 *      earlier system's (raw/{bsm|psm}/{bsm|psm}_<date>_<stamp>.parquet, one row per
 *      message with bsmJson/psmJson as nested structs: each row is turned back into the
 *      message's JSON by DuckDB's to_json, so a schema that differs from file to file does
 *      not matter), in time order.
 *   2. They go through the collector's own processing (pipeline/pipeline.h: decode, assign,
 *      dedupe — repeated polling delivers duplicates —, 1-minute windows, features, index)
 *      with the constants and EB priors valid now, the intersections of PostgreSQL as its
 *      registry, and a scratch directory as its archive: the new indices Parquet land
 *      there (its raw copy is thrown away).
 *   3. Before anything is replaced, what was read is set against what would be replaced
 *      (raw messages per hour, rows per hour and per intersection-day before and after,
 *      raw files DuckDB cannot open): a day whose input is empty or unreadable, or that
 *      shrinks by more than --max-shrink, refuses the whole run (exit 3, the table on
 *      stdout, nothing changed) unless --force; --dry-run prints the table and stops.
 *   4. Per UTC day of the range: the day's new indices Parquet generation is staged
 *      (tools/reprocess_gen.h); then in one transaction the realtime rows of the range
 *      (inside the 48 h window) are deleted and the new ones COPYed, the hourly rollups of
 *      the range are deleted and rebuilt (older hours from the new rows, as backfill does;
 *      window hours by the jobs' rollup), the jobs' daily rollup re-rolls the day, and the
 *      generation's reprocess_generations row is inserted: that commit decides; then the
 *      staged directory is swapped in. Every run first finishes or rolls back what a
 *      crashed run left (--recover: only that).
 *   Low priority (nice 10), statement and lock timeouts (a day's transaction that times out
 *   is retried), one day per transaction, one run at a time (an advisory lock).
 *   --since/--until must be whole hours and the range must be closed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "archive/pqfile.h"
#include "archive/raw.h"
#include "base/buf.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/options.h"
#include "base/proc.h"
#include "pipeline/pipeline.h"
#include "core/index.h"
#include "db/columns.h"
#include "db/conn.h"
#include "db/result.h"
#include "db/constants.h"
#include "tools/pqr_pg.h"
#include "tools/reprocess.h"
#include "tools/reprocess_gen.h"
#include "tools/validate.h"

#define US_HOUR 3600000000LL
#define US_DAY  (24 * US_HOUR)

/* ------------------------------------------------------------- raw messages -- */

/* Calls fn for every raw file of one kind ("bsm"/"psm") of both layouts overlapping
 * [lo, hi), with the UTC day its path names; returns the count. */
typedef void (*raw_fn)(void *ud, const char *path, bool legacy, int64_t day_us);

static int raw_each(const char *raw, const char *kind, int64_t lo, int64_t hi, raw_fn fn, void *ud)
{
    int n = 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/raw/%s", raw, kind);
    /* tsi: one directory per hour */
    for (int64_t h = lo / US_HOUR * US_HOUR; h < hi; h += US_HOUR) {
        time_t t = (time_t)(h / 1000000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char hd[4200];
        snprintf(hd, sizeof hd, "%s/%04d/%02d/%02d/%02d", dir, tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour);
        DIR *d = opendir(hd);
        if (!d)
            continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            size_t l = strlen(e->d_name);
            if (e->d_name[0] == '.' || l < 8 || strcmp(e->d_name + l - 8, ".parquet") != 0)
                continue;
            char f[4500];
            snprintf(f, sizeof f, "%s/%s", hd, e->d_name);
            fn(ud, f, false, h / US_DAY * US_DAY);
            n++;
        }
        closedir(d);
    }
    /* legacy: <kind>_<date>_<stamp>.parquet, the day before to the day after */
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        size_t kl = strlen(kind);
        while ((e = readdir(d)) != NULL) {
            int y, m, dd;
            size_t l = strlen(e->d_name);
            if (strncmp(e->d_name, kind, kl) != 0 || e->d_name[kl] != '_' || l < 8 ||
                strcmp(e->d_name + l - 8, ".parquet") != 0 ||
                sscanf(e->d_name + kl + 1, "%4d-%2d-%2d", &y, &m, &dd) != 3)
                continue;
            char ds[16];
            snprintf(ds, sizeof ds, "%04d-%02d-%02d", y, m, dd);
            int64_t day;
            if (tsi_pqr_parse_time(ds, &day, NULL) < 0 || day + 2 * US_DAY <= lo ||
                day - US_DAY >= hi)
                continue;
            char f[4500];
            snprintf(f, sizeof f, "%s/%s", dir, e->d_name);
            fn(ud, f, true, day);
            n++;
        }
        closedir(d);
    }
    return n;
}

typedef struct raw_lists {
    tsi_buf *tsi_list, *legacy_list;
    const tsi_rpgen_names *skip; /* files found unreadable: never read */
} raw_lists;

static void raw_list_one(void *ud, const char *path, bool legacy, int64_t day_us)
{
    (void)day_us;
    raw_lists *l = ud;
    if (l->skip && tsi_rpgen_names_has(l->skip, path))
        return;
    tsi_buf *b = legacy ? l->legacy_list : l->tsi_list;
    tsi_buf_puts(b, b->len ? ", " : "");
    tsi_pqr_quote(b, path);
}

/* Lists raw files of one kind of both layouts overlapping [lo, hi), except those in
 * skip, into DuckDB list literals; returns the count found. */
static int raw_files(const char *raw, const char *kind, int64_t lo, int64_t hi,
                     const tsi_rpgen_names *skip, tsi_buf *tsi_list, tsi_buf *legacy_list)
{
    raw_lists l = {tsi_list, legacy_list, skip};
    return raw_each(raw, kind, lo, hi, raw_list_one, &l);
}

/* Fills DuckDB table rp_msgs(kind, ts_ms, json, ref_ms) with the messages of [lo, hi).
 * ref_ms is the receiver's clock when the message arrived (the raw archive's received_at;
 * a file without it, like the earlier system's, gives the message's own time): the
 * pipeline's clock sanity compares the two, as the live collector does, so a message dated
 * far from its receipt is clock_skew here too and never enters a window. */
static int read_raw(tsi_pqr *p, const char *raw, int64_t lo, int64_t hi,
                    const tsi_rpgen_names *skip, int64_t *nmsg, tsi_error *err)
{
    int rc = tsi_pqr_exec(p,
                          "CREATE OR REPLACE TABLE rp_msgs (kind INTEGER, ts_ms BIGINT,"
                          " json VARCHAR, ref_ms BIGINT)",
                          err);
    const char *kinds[2] = {"bsm", "psm"};
    for (int k = 0; k < 2 && rc == 0; k++) {
        tsi_buf tl = TSI_BUF_INIT, ll = TSI_BUF_INIT, q = TSI_BUF_INIT;
        raw_files(raw, kinds[k], lo, hi, skip, &tl, &ll);
        if (tl.len) {
            /* received_at where the files have it (tsi's raw archive always writes it) */
            tsi_buf probe = TSI_BUF_INIT;
            int64_t has_recv = 0;
            tsi_buf_printf(&probe,
                           "SELECT count(*) FROM (DESCRIBE SELECT * FROM read_parquet([%s],"
                           " union_by_name = true)) WHERE column_name = 'received_at'",
                           tsi_buf_cstr(&tl));
            if (tsi_pqr_int(p, tsi_buf_cstr(&probe), 0, &has_recv, err) < 0)
                has_recv = 0;
            tsi_buf_free(&probe);
            tsi_buf_printf(
                &q,
                "INSERT INTO rp_msgs SELECT %d, timestamp_ms, json, %s FROM"
                " read_parquet([%s], union_by_name = true)"
                " WHERE reject_reason IS NULL AND timestamp_ms >= %" PRId64
                " AND timestamp_ms < %" PRId64,
                k, has_recv ? "coalesce(epoch_ms(received_at), timestamp_ms)" : "timestamp_ms",
                tsi_buf_cstr(&tl), lo / 1000, hi / 1000);
            rc = tsi_pqr_exec(p, tsi_buf_cstr(&q), err);
        }
        if (rc == 0 && ll.len) {
            /* one legacy file at a time: the nested schema may differ between files */
            const char *s = tsi_buf_cstr(&ll);
            while (rc == 0 && *s) {
                const char *start = s;
                bool in = false;
                for (; *s; s++) { /* split the quoted list on ", " outside quotes */
                    if (*s == '\'')
                        in = !in;
                    else if (!in && *s == ',')
                        break;
                }
                tsi_buf one = TSI_BUF_INIT;
                tsi_buf_append(&one, start, (size_t)(s - start));
                if (*s == ',')
                    s += 2;
                tsi_buf_reset(&q);
                tsi_buf_printf(&q,
                               "INSERT INTO rp_msgs SELECT %d, CAST(t.\"timestamp\" AS BIGINT),"
                               " CAST(to_json(t) AS VARCHAR), CAST(t.\"timestamp\" AS BIGINT)"
                               " FROM read_parquet(%s) t"
                               " WHERE TRY_CAST(t.\"timestamp\" AS BIGINT) >= %" PRId64
                               " AND TRY_CAST(t.\"timestamp\" AS BIGINT) < %" PRId64,
                               k, tsi_buf_cstr(&one), lo / 1000, hi / 1000);
                tsi_error e2 = {0};
                if (tsi_pqr_exec(p, tsi_buf_cstr(&q), &e2) < 0)
                    tsi_warn("reprocess", "raw file skipped file=%s reason=\"%s\"",
                             tsi_buf_cstr(&one), e2.detail);
                tsi_buf_free(&one);
            }
        }
        tsi_buf_free(&tl);
        tsi_buf_free(&ll);
        tsi_buf_free(&q);
    }
    if (rc == 0)
        rc = tsi_pqr_int(p, "SELECT count(*) FROM rp_msgs", 0, nmsg, err);
    return rc;
}

/* ---------------------------------------------------- constants and registry -- */

/* The intersections of PostgreSQL as one MapData document for the pipeline's registry. */
static int registry_mapdata(PGconn *c, tsi_buf *out, int *n, tsi_error *err)
{
    PGresult *r =
        PQexec(c, "SELECT id, name, latitude, longitude, coalesce(revision, 0) AS revision"
                  " FROM intersections ORDER BY id");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = tsi_db_result_error(r, "cannot read the intersections", err);
        PQclear(r);
        return rc;
    }
    tsi_jsonw w;
    tsi_jsonw_init(&w, out);
    tsi_jsonw_object(&w);
    tsi_jsonw_key(&w, "intersections");
    tsi_jsonw_array(&w);
    *n = PQntuples(r);
    int c_id = tsi_pq_col(r, "id"), c_name = tsi_pq_col(r, "name"),
        c_lat = tsi_pq_col(r, "latitude"), c_lon = tsi_pq_col(r, "longitude"),
        c_rev = tsi_pq_col(r, "revision");
    for (int i = 0; i < *n; i++) {
        long long id = atoll(tsi_pq_at(r, i, c_id));
        tsi_jsonw_object(&w);
        tsi_jsonw_key(&w, "id");
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_int(&w, "region", id / 65536);
        tsi_jsonw_kv_int(&w, "id", id % 65536);
        tsi_jsonw_end(&w);
        tsi_jsonw_kv_str(&w, "name", tsi_pq_at(r, i, c_name));
        tsi_jsonw_kv_int(&w, "revision", atoll(tsi_pq_at(r, i, c_rev)));
        tsi_jsonw_key(&w, "refPoint");
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_double(&w, "lat", strtod(tsi_pq_at(r, i, c_lat), NULL));
        tsi_jsonw_kv_double(&w, "lon", strtod(tsi_pq_at(r, i, c_lon), NULL));
        tsi_jsonw_end(&w);
        tsi_jsonw_end(&w);
    }
    tsi_jsonw_end(&w);
    tsi_jsonw_end(&w);
    PQclear(r);
    return 0;
}

/* Today's constants and EB priors (the set valid now; defaults when none). */
static int load_constants(PGconn *c, tsi_constants *k, tsi_priors **pri, tsi_error *err)
{
    int rc = tsi_db_constants_now(c, k, pri, err);
    if (rc == 0)
        tsi_info("reprocess", "no normalisation constants yet: configured defaults apply");
    return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------- the database -- */

static const char SQL_RT_STAGE[] =
    "CREATE TEMP TABLE tsi_rp_rt (intersection_id bigint, ts_us bigint, " TSI_RT_COLS_DDL
    ") ON COMMIT DROP";
#define RT_COLS TSI_RT_COLS
#define HR_COLS TSI_HR_COLS
#define TS(x)   "(timestamptz 'epoch' + " x " * interval '1 microsecond')"

/* $1 = the day's first µs, $2 = the hourly retention's cut */
static const char SQL_STALE_DAILY[] =
    "DELETE FROM safety_indices_daily d"
    " WHERE d.date = (" TS(
        "$1::bigint") " AT TIME ZONE 'UTC')::date"
                      "   AND (d.date::timestamp AT TIME ZONE 'UTC') >= " TS(
                          "$2::bigint") "   AND NOT EXISTS (SELECT 1 FROM safety_indices_hourly h"
                                        "                    WHERE h.intersection_id = "
                                        "d.intersection_id"
                                        "                      AND h.hour_timestamp >= "
                                        "(d.date::timestamp AT TIME ZONE 'UTC')"
                                        "                      AND h.hour_timestamp < ((d.date + "
                                        "1)::timestamp AT TIME ZONE 'UTC'))";

static int q1(PGconn *c, const char *sql, int n, const char *const *pv, tsi_error *err)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, pv, NULL, NULL, 0);
    int st = PQresultStatus(r);
    int rc = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
                 ? 0
                 : tsi_db_result_error(r, "reprocess statement failed", err);
    PQclear(r);
    return rc;
}

/* One day's replacement, one transaction: the realtime rows and hourly rollups of
 * [lo, hi), the daily rollup of the day, and the generation record (record_sql) that makes
 * the staged indices Parquet live. Every statement waits at most lock_ms for a lock. */
static int replace_day(tsi_pqr *p, PGconn *c, int64_t lo, int64_t hi, int64_t rt_cut,
                       int64_t hr_cut, int timeout_ms, int lock_ms, const char *record_sql,
                       int64_t *rt_rows, int64_t *hr_rows, tsi_error *err)
{
    char s_lo[32], s_hi[32], s_cut[32], s_hcut[32], q[1024];
    snprintf(s_lo, sizeof s_lo, "%" PRId64, lo);
    snprintf(s_hi, sizeof s_hi, "%" PRId64, hi);
    snprintf(s_cut, sizeof s_cut, "%" PRId64, rt_cut);
    snprintf(s_hcut, sizeof s_hcut, "%" PRId64, hr_cut);
    const char *pv[3] = {s_lo, s_hi, s_cut};
    int rc;
    if ((rc = tsi_db_exec(c, "BEGIN", err)) < 0)
        return rc;
    snprintf(q, sizeof q, "SET LOCAL statement_timeout = %d", timeout_ms);
    if ((rc = tsi_db_exec(c, q, err)) < 0)
        goto fail;
    snprintf(q, sizeof q, "SET LOCAL lock_timeout = %d", lock_ms);
    if ((rc = tsi_db_exec(c, q, err)) < 0 || (rc = tsi_db_exec(c, SQL_RT_STAGE, err)) < 0)
        goto fail;
    /* realtime: the range inside the window */
    if ((rc = q1(c,
                 "DELETE FROM safety_indices_realtime WHERE \"timestamp\" >= " TS(
                     "greatest($1::bigint, $3::bigint)") " AND \"timestamp\" < " TS("$2::bigint"),
                 3, pv, err)) < 0)
        goto fail;
    snprintf(q, sizeof q,
             "SELECT iid, ts_us, " RT_COLS " FROM pq_valid WHERE ts_us >= %" PRId64
             " AND ts_us >= %" PRId64 " AND ts_us < %" PRId64 " ORDER BY iid, ts_us",
             lo, rt_cut, hi);
    int64_t n = tsi_pqr_copy_to_pg(p, q, c, "COPY tsi_rp_rt FROM STDIN", NULL, NULL, err);
    if (n < 0) {
        rc = (int)n;
        goto fail;
    }
    *rt_rows = n;
    if ((rc = tsi_db_exec(
             c,
             "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", " RT_COLS
             ") SELECT intersection_id, " TS("ts_us") ", " RT_COLS " FROM tsi_rp_rt",
             err)) < 0)
        goto fail;
    /* hourly: every hour of the range goes; older hours come back from the new rows,
     * window hours from the jobs' rollup (their realtime rows were marked dirty) */
    if ((rc = q1(c,
                 "DELETE FROM safety_indices_hourly WHERE hour_timestamp >= " TS(
                     "$1::bigint") " AND hour_timestamp < " TS("$2::bigint"),
                 2, pv, err)) < 0)
        goto fail;
    if ((rc = q1(
             c,
             "INSERT INTO rollup_dirty (kind, bucket) SELECT 'daily', date_trunc('day', " TS(
                 "$1::bigint") ", 'UTC') UNION SELECT 'hourly', g FROM generate_series(" TS("$1::"
                                                                                            "bigin"
                                                                                            "t") ","
                                                                                                 " " TS(
                                                                                                     "$2::bigint") " - interval '1 hour', interval '1 hour') g",
             2, pv, err)) < 0)
        goto fail;
    if ((rc = tsi_db_exec(
             c,
             "CREATE TEMP TABLE tsi_rp_hr (intersection_id bigint, hour_us bigint, " TSI_HR_COLS_DDL
             ") ON COMMIT DROP",
             err)) < 0)
        goto fail;
    snprintf(q, sizeof q,
             "SELECT iid, hour_us, " HR_COLS " FROM pq_hourly WHERE hour_us >= %" PRId64
             " AND hour_us < %" PRId64 " AND hour_us < %" PRId64 " ORDER BY iid, hour_us",
             lo, hi, rt_cut);
    n = tsi_pqr_copy_to_pg(p, q, c, "COPY tsi_rp_hr FROM STDIN", NULL, NULL, err);
    if (n < 0) {
        rc = (int)n;
        goto fail;
    }
    *hr_rows = n;
    /* the constants' features store of those hours (window hours: the jobs' rollup) */
    if ((n = tsi_pqr_features_to_pg(p, c, lo, hi < rt_cut ? hi : rt_cut, err)) < 0) {
        rc = (int)n;
        goto fail;
    }
    if ((rc = tsi_db_exec(
             c,
             "INSERT INTO safety_indices_hourly (intersection_id, hour_timestamp, " HR_COLS
             ") SELECT intersection_id, " TS("hour_us") ", " HR_COLS " FROM tsi_rp_hr",
             err)) < 0)
        goto fail;
    PGresult *r = PQexec(c, "SELECT status, coalesce(error, '') AS error FROM "
                            "tsi_job_run('daily', NULL, '{\"source\": \"reprocess\"}')");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(tsi_pq_get(r, 0, "status"), "ok") != 0) {
        rc = PQresultStatus(r) != PGRES_TUPLES_OK
                 ? tsi_db_result_error(r, "the jobs' rollups failed", err)
                 : tsi_error_set(err, TSI_E_DB, "the jobs' rollups failed", "%s",
                                 tsi_pq_get(r, 0, "error"));
        PQclear(r);
        goto fail;
    }
    PQclear(r);
    /* a daily row of an intersection left without any hourly row that day is stale (the
     * rollup only rewrites days that still have hours); days past the hourly retention
     * keep theirs */
    const char *pd[2] = {s_lo, s_hcut};
    if ((rc = q1(c, SQL_STALE_DAILY, 2, pd, err)) < 0)
        goto fail;
    if ((rc = tsi_db_exec(c, record_sql, err)) < 0)
        goto fail;
    if ((rc = tsi_db_exec(c, "COMMIT", err)) < 0)
        goto fail;
    return 0;
fail:
    tsi_db_exec(c, "ROLLBACK", NULL);
    return rc;
}

/* --------------------------------------------- before and after: the refusal -- */

/* Probes every raw file of the range before reading it: one DuckDB cannot open (or
 * without the layout's columns) is skipped by read_raw, listed in rp_bad with the days
 * it may hold, and refuses those days unless --force. */
typedef struct probe_ud {
    tsi_pqr *p;
    tsi_rpgen_names *bad;
} probe_ud;

static void probe_one(void *ud, const char *path, bool legacy, int64_t day_us)
{
    probe_ud *u = ud;
    tsi_buf q = TSI_BUF_INIT;
    tsi_buf_puts(&q, legacy ? "SELECT \"timestamp\" FROM read_parquet("
                            : "SELECT timestamp_ms, reject_reason, json FROM read_parquet(");
    tsi_pqr_quote(&q, path);
    tsi_buf_puts(&q, ") LIMIT 0");
    tsi_error e = {0};
    if (tsi_pqr_exec(u->p, tsi_buf_cstr(&q), &e) < 0) {
        tsi_rpgen_names_add(u->bad, path);
        /* a legacy file may hold messages of the day before and after its date */
        int64_t dlo = legacy ? day_us - US_DAY : day_us;
        int64_t dhi = legacy ? day_us + 2 * US_DAY : day_us + US_DAY;
        tsi_buf_reset(&q);
        tsi_buf_puts(&q, "INSERT INTO rp_bad VALUES (");
        tsi_pqr_quote(&q, path);
        tsi_buf_printf(&q, ", %" PRId64 ", %" PRId64 ", ", dlo, dhi);
        tsi_pqr_quote(&q, e.detail);
        tsi_buf_puts(&q, ")");
        tsi_pqr_exec(u->p, tsi_buf_cstr(&q), NULL);
        tsi_warn("reprocess", "raw file unreadable file=%s reason=\"%s\"", path, e.detail);
    }
    tsi_buf_free(&q);
}

static int probe_raw(tsi_pqr *p, const char *raw, int64_t lo, int64_t hi, tsi_rpgen_names *bad,
                     tsi_error *err)
{
    int rc = tsi_pqr_exec(p,
                          "CREATE OR REPLACE TABLE rp_bad (path VARCHAR, day_lo BIGINT,"
                          " day_hi BIGINT, reason VARCHAR)",
                          err);
    probe_ud u = {p, bad};
    const char *kinds[2] = {"bsm", "psm"};
    for (int k = 0; k < 2 && rc == 0; k++)
        raw_each(raw, kinds[k], lo, hi, probe_one, &u);
    return rc;
}

typedef struct rp_day {
    int64_t lo, hi;             /* the part of the range in this UTC day */
    int64_t raw, before, after; /* raw messages read, rows before and after */
    int64_t bad_files, reasons; /* unreadable raw files, reasons to refuse */
} rp_day;

/* rows per intersection-hour now: realtime rows inside the window, the minutes of the
 * hourly rollups before it ($1 since, $2 until, $3 the realtime cut, epoch µs) */
static const char SQL_BEFORE[] =
    "SELECT intersection_id, (floor(extract(epoch FROM \"timestamp\") / 3600) * "
    "3600000000)::bigint,"
    "       count(*)"
    "  FROM safety_indices_realtime"
    " WHERE \"timestamp\" >= " TS("greatest($1::bigint, $3::bigint)") " AND \"timestamp\" < " TS(
        "$2::bigint") " GROUP BY 1, 2"
                      " UNION ALL "
                      "SELECT intersection_id, (extract(epoch FROM hour_timestamp) * "
                      "1000000)::bigint,"
                      "       round(data_quality_score * 60)::bigint"
                      "  FROM safety_indices_hourly"
                      " WHERE hour_timestamp >= " TS("$1::bigint") " AND hour_timestamp < " TS(
                          "least($2::bigint, $3::bigint)");

static void pct(char *buf, size_t len, int64_t before, int64_t after)
{
    if (before == 0)
        snprintf(buf, len, "%s", after ? "new" : "-");
    else
        snprintf(buf, len, "%+.1f%%", 100.0 * (double)(after - before) / (double)before);
}

/* Compares what was read and recomputed with what is being replaced, prints the table
 * (stdout) and counts the reasons to refuse each day into days[]. */
static int check_range(tsi_pqr *p, PGconn *c, int64_t since, int64_t until, int64_t rt_cut,
                       double max_shrink, rp_day *days, int ndays, int64_t *reasons, tsi_error *err)
{
    char s_lo[32], s_hi[32], s_cut[32], a[32], b[32], ch[32];
    snprintf(s_lo, sizeof s_lo, "%" PRId64, since);
    snprintf(s_hi, sizeof s_hi, "%" PRId64, until);
    snprintf(s_cut, sizeof s_cut, "%" PRId64, rt_cut);
    const char *pv[3] = {s_lo, s_hi, s_cut};
    *reasons = 0;
    if (tsi_pqr_from_pg(p, c, SQL_BEFORE, 3, pv, "rp_before",
                        "iid BIGINT, hour_us BIGINT, n BIGINT", err) < 0)
        return err ? err->code : TSI_E_DB;
    tsi_buf q = TSI_BUF_INIT;
    tsi_buf_printf(
        &q,
        "CREATE OR REPLACE TABLE rp_after AS SELECT iid, ts_us // %lld * %lld AS hour_us,"
        " count(*) AS n FROM pq_valid WHERE ts_us >= %" PRId64 " AND ts_us < %" PRId64
        " GROUP BY ALL",
        US_HOUR, US_HOUR, since, until);
    int rc = tsi_pqr_exec(p, tsi_buf_cstr(&q), err);
    duckdb_result res;
    bool have = false;
    if (rc == 0) {
        tsi_buf_reset(&q);
        tsi_buf_printf(
            &q,
            "WITH h AS (SELECT range AS hour_us FROM range(%" PRId64 ", %" PRId64 ", %lld)),"
            " r AS (SELECT ts_ms // 3600000 * %lld AS hour_us,"
            "   count(*) FILTER (WHERE kind = 0) AS bsm, count(*) FILTER (WHERE kind = 1) AS psm"
            "   FROM rp_msgs GROUP BY 1),"
            " b AS (SELECT hour_us, sum(n) AS n, count(DISTINCT iid) AS ni FROM rp_before GROUP BY "
            "1),"
            " a AS (SELECT hour_us, sum(n) AS n, count(DISTINCT iid) AS ni FROM rp_after GROUP BY "
            "1)"
            " SELECT h.hour_us, coalesce(r.bsm, 0), coalesce(r.psm, 0), CAST(coalesce(b.n, 0) AS"
            " BIGINT), coalesce(b.ni, 0), CAST(coalesce(a.n, 0) AS BIGINT), coalesce(a.ni, 0)"
            " FROM h LEFT JOIN r USING (hour_us) LEFT JOIN b USING (hour_us)"
            " LEFT JOIN a USING (hour_us) ORDER BY 1",
            since, until, US_HOUR, US_HOUR);
        rc = tsi_pqr_query(p, tsi_buf_cstr(&q), &res, err);
        have = true;
    }
    if (rc < 0)
        goto done;
    printf("reprocess check since=%s until=%s max_shrink=%.2f\n",
           tsi_pqr_fmt_time(since, a, sizeof a), tsi_pqr_fmt_time(until, b, sizeof b), max_shrink);
    printf("%-19s %9s %9s %12s %11s %13s %12s %8s\n", "hour (UTC)", "raw_bsm", "raw_psm",
           "rows_before", "rows_after", "isect_before", "isect_after", "change");
    tsi_buf why = TSI_BUF_INIT;
    for (idx_t i = 0; i < duckdb_row_count(&res); i++) {
        int64_t h = duckdb_value_int64(&res, 0, i), bsm = duckdb_value_int64(&res, 1, i),
                psm = duckdb_value_int64(&res, 2, i), nb = duckdb_value_int64(&res, 3, i),
                ib = duckdb_value_int64(&res, 4, i), na = duckdb_value_int64(&res, 5, i),
                ia = duckdb_value_int64(&res, 6, i);
        pct(ch, sizeof ch, nb, na);
        printf("%-19s %9" PRId64 " %9" PRId64 " %12" PRId64 " %11" PRId64 " %13" PRId64
               " %12" PRId64 " %8s\n",
               tsi_pqr_fmt_time(h, a, sizeof a), bsm, psm, nb, na, ib, ia, ch);
        int64_t di = (h / US_DAY * US_DAY - since / US_DAY * US_DAY) / US_DAY;
        if (di < 0 || di >= ndays)
            continue;
        rp_day *d = &days[di];
        d->raw += bsm + psm;
        d->before += nb;
        d->after += na;
        if ((double)na < (1.0 - max_shrink) * (double)nb) {
            tsi_buf_printf(&why, "  refused: hour %s rows %" PRId64 " -> %" PRId64 " (%s)\n", a, nb,
                           na, ch);
            d->reasons++;
        }
    }
    /* intersections that lose too much of a day */
    duckdb_result r2;
    tsi_buf_reset(&q);
    tsi_buf_printf(&q,
                   "WITH b AS (SELECT iid, hour_us // %lld * %lld AS day_us, sum(n) AS n"
                   "   FROM rp_before GROUP BY ALL),"
                   " a AS (SELECT iid, hour_us // %lld * %lld AS day_us, sum(n) AS n"
                   "   FROM rp_after GROUP BY ALL)"
                   " SELECT b.day_us, b.iid, CAST(b.n AS BIGINT), CAST(coalesce(a.n, 0) AS BIGINT)"
                   " FROM b LEFT JOIN a USING (iid, day_us)"
                   " WHERE coalesce(a.n, 0) < (1 - %.17g) * b.n ORDER BY 1, 2",
                   US_DAY, US_DAY, US_DAY, US_DAY, max_shrink);
    if ((rc = tsi_pqr_query(p, tsi_buf_cstr(&q), &r2, err)) == 0) {
        for (idx_t i = 0; i < duckdb_row_count(&r2); i++) {
            int64_t dy = duckdb_value_int64(&r2, 0, i), iid = duckdb_value_int64(&r2, 1, i),
                    nb = duckdb_value_int64(&r2, 2, i), na = duckdb_value_int64(&r2, 3, i);
            int64_t k = (dy - since / US_DAY * US_DAY) / US_DAY;
            if (k < 0 || k >= ndays)
                continue;
            pct(ch, sizeof ch, nb, na);
            tsi_buf_printf(&why,
                           "  refused: intersection %" PRId64 " on %.10s rows %" PRId64
                           " -> %" PRId64 " (%s)\n",
                           iid, tsi_pqr_fmt_time(dy, a, sizeof a), nb, na, ch);
            days[k].reasons++;
        }
    }
    duckdb_destroy_result(&r2);
    /* unreadable raw files, per day they may hold */
    duckdb_result r3;
    if (rc == 0 &&
        (rc = tsi_pqr_query(p, "SELECT path, day_lo, day_hi, reason FROM rp_bad ORDER BY path", &r3,
                            err)) == 0) {
        for (idx_t i = 0; i < duckdb_row_count(&r3); i++) {
            char *path = duckdb_value_varchar(&r3, 0, i), *reason = duckdb_value_varchar(&r3, 3, i);
            int64_t dlo = duckdb_value_int64(&r3, 1, i), dhi = duckdb_value_int64(&r3, 2, i);
            for (int k = 0; k < ndays; k++)
                if (days[k].lo < dhi && days[k].hi > dlo) {
                    tsi_buf_printf(&why, "  refused: %.10s unreadable raw file %s (%s)\n",
                                   tsi_pqr_fmt_time(days[k].lo, a, sizeof a), path ? path : "?",
                                   reason ? reason : "?");
                    days[k].bad_files++;
                    days[k].reasons++;
                }
            duckdb_free(path);
            duckdb_free(reason);
        }
    }
    duckdb_destroy_result(&r3);
    for (int k = 0; k < ndays; k++) {
        rp_day *d = &days[k];
        if (d->raw == 0) {
            tsi_buf_printf(&why, "  refused: %.10s no raw message in the range's hours\n",
                           tsi_pqr_fmt_time(d->lo, a, sizeof a));
            d->reasons++;
        }
        pct(ch, sizeof ch, d->before, d->after);
        printf("day %.10s raw=%" PRId64 " rows_before=%" PRId64 " rows_after=%" PRId64
               " (%s) unreadable_files=%" PRId64 " verdict=%s\n",
               tsi_pqr_fmt_time(d->lo, a, sizeof a), d->raw, d->before, d->after, ch, d->bad_files,
               d->reasons ? "refuse" : "ok");
        *reasons += d->reasons;
    }
    fputs(tsi_buf_cstr(&why), stdout);
    fflush(stdout);
    tsi_buf_free(&why);
done:
    if (have)
        duckdb_destroy_result(&res);
    tsi_buf_free(&q);
    return rc;
}

/* For tests only: TSI_REPROCESS_CRASH_AT=staged (after a day's Parquet generation is
 * staged, before its database transaction) or =committed (after the commit, before the
 * swap) ends the process there as a crash would, to show that the next run heals. */
static void crash_point(const char *where)
{
    const char *at = getenv("TSI_REPROCESS_CRASH_AT");
    if (at && strcmp(at, where) == 0) {
        fprintf(stderr, "tsi reprocess: TSI_REPROCESS_CRASH_AT=%s: exiting as a crash would\n",
                where);
        fflush(NULL);
        _exit(70);
    }
}

/* Stages day d as generation N, replaces its rows with the generation record in one
 * transaction (retried after a lock or statement timeout), then swaps the Parquet in. */
static int replace_one_day(tsi_pqr *p, PGconn *c, const char *archive, const char *scratch,
                           const rp_day *d, int64_t rt_cut, int64_t hr_cut, int timeout_ms,
                           int lock_ms, int retries, bool forced, tsi_error *err)
{
    int64_t gen = 0;
    int rc = 0;
    PGresult *r = PQexec(c, "SELECT nextval('reprocess_generation_seq') AS generation");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = tsi_db_result_error(r, "cannot number the generation (tsi migrate first?)", err);
        PQclear(r);
        return rc;
    }
    gen = strtoll(tsi_pq_get(r, 0, "generation"), NULL, 10);
    PQclear(r);
    tsi_rpgen g;
    if ((rc = tsi_rpgen_stage(p, archive, scratch, gen, d->lo / US_DAY * US_DAY, d->lo, d->hi, &g,
                              err)) < 0)
        return rc;
    crash_point("staged");
    tsi_buf rec = TSI_BUF_INIT;
    tsi_rpgen_record_sql(&rec, &g, d->lo, d->hi, d->raw, d->before, d->after, forced);
    int64_t rt = 0, hr = 0;
    for (int attempt = 0;; attempt++) {
        rc = replace_day(p, c, d->lo, d->hi, rt_cut, hr_cut, timeout_ms, lock_ms,
                         tsi_buf_cstr(&rec), &rt, &hr, err);
        bool timeout = rc < 0 && err &&
                       (strncmp(err->detail, "SQLSTATE 55P03", 14) == 0 ||
                        strncmp(err->detail, "SQLSTATE 57014", 14) == 0);
        if (rc == 0 || !timeout || attempt >= retries)
            break;
        unsigned wait_ms = 200u << (attempt < 6 ? attempt : 6);
        tsi_warn("reprocess", "day transaction gave way attempt=%d wait_ms=%u reason=\"%s\"",
                 attempt + 1, wait_ms, err->detail);
        struct timespec ts = {wait_ms / 1000, (long)(wait_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    tsi_buf_free(&rec);
    if (rc < 0) {
        tsi_rpgen_discard(&g); /* never committed: never live */
        tsi_rpgen_free(&g);
        return rc;
    }
    crash_point("committed");
    char a[32], b[32];
    tsi_info("reprocess",
             "replaced from=%s until=%s generation=%" PRId64 " realtime_rows=%" PRId64
             " hourly_rows_from_parquet=%" PRId64,
             tsi_pqr_fmt_time(d->lo, a, sizeof a), tsi_pqr_fmt_time(d->hi, b, sizeof b), gen, rt,
             hr);
    rc = tsi_rpgen_finish(c, archive, gen, err);
    tsi_rpgen_free(&g);
    return rc;
}

/* ----------------------------------------------------------------- command -- */

static int rm_rf(const char *path)
{
    char *argv[] = {"rm", "-rf", (char *)path, NULL};
    return tsi_proc_run(argv, NULL, NULL, 0, NULL);
}

int tsi_reprocess_run(const tsi_opts *o)
{
    tsi_error e = {0};
    int64_t since = 0, until = 0;
    bool recover_only = tsi_opts_bool(o, "recover"), dry = tsi_opts_bool(o, "dry-run"),
         force = tsi_opts_bool(o, "force");
    if (recover_only && (tsi_opts_str(o, "since") || tsi_opts_str(o, "until") || dry)) {
        fprintf(stderr, "tsi reprocess: --recover takes no range and no --dry-run\n");
        return 2;
    }
    if (!recover_only &&
        (!tsi_opts_str(o, "since") || !tsi_opts_str(o, "until") ||
         tsi_pqr_parse_time(tsi_opts_str(o, "since"), &since, &e) < 0 ||
         tsi_pqr_parse_time(tsi_opts_str(o, "until"), &until, &e) < 0 || since % US_HOUR ||
         until % US_HOUR || until <= since || until - since > 31 * US_DAY)) {
        fprintf(stderr, "tsi reprocess: --since and --until must be whole UTC hours, since <"
                        " until, at most 31 days apart\n");
        return 2;
    }
    int status = 1;
    PGconn *c = NULL;
    tsi_pqr p = {0};
    tsi_pipeline *pl = NULL;
    tsi_priors *pri = NULL;
    char archive[4096], raw[4096], scratch[4200] = "";
    tsi_buf md = TSI_BUF_INIT;
    tsi_rpgen_names bad = {0};
    rp_day *days = NULL;
    if (tsi_opts_str(o, "archive"))
        snprintf(archive, sizeof archive, "%s", tsi_opts_str(o, "archive"));
    else
        tsi_archive_root(archive, sizeof archive);
    snprintf(raw, sizeof raw, "%s", tsi_opts_str(o, "raw") ? tsi_opts_str(o, "raw") : archive);
    int timeout_ms = (int)tsi_opts_int(o, "statement-timeout-ms");
    if (setpriority(PRIO_PROCESS, 0, (int)tsi_opts_int(o, "nice")) < 0)
        tsi_warn("reprocess", "cannot lower the priority err=%s", strerror(errno));

    if (!(c = tsi_db_connect(TSI_ROLE_JOBS, NULL, &e)))
        goto fail;
    char tq[64];
    snprintf(tq, sizeof tq, "SET statement_timeout = %d", timeout_ms);
    if (tsi_db_exec(c, tq, &e) < 0)
        goto fail;
    /* one reprocess at a time: a staging directory is then never one still being built */
    PGresult *lr = PQexec(c, TSI_RPGEN_LOCK_SQL);
    bool locked =
        PQresultStatus(lr) == PGRES_TUPLES_OK && strcmp(tsi_pq_get(lr, 0, "locked"), "t") == 0;
    if (PQresultStatus(lr) != PGRES_TUPLES_OK)
        tsi_db_result_error(lr, "cannot take the reprocess lock", &e);
    else if (!locked)
        tsi_error_set(&e, TSI_E_EXISTS, "another tsi reprocess is running on this database",
                      "advisory lock hashtext('tsi_reprocess') is held");
    PQclear(lr);
    if (!locked)
        goto fail;
    int finished = 0, rolled_back = 0;
    if (tsi_rpgen_recover(c, archive, dry, &finished, &rolled_back, &e) < 0)
        goto fail;
    if (finished || rolled_back || recover_only)
        tsi_info("reprocess", "recovery%s finished=%d rolled_back=%d", dry ? " (dry run)" : "",
                 finished, rolled_back);
    if (recover_only) {
        printf("recovered: finished=%d rolled_back=%d\n", finished, rolled_back);
        status = 0;
        goto done;
    }
    int64_t now_us, rt_cut, hr_cut;
    if (tsi_validate_clock(c, (int)tsi_opts_int(o, "realtime-hours"), 90, &now_us, &rt_cut, &hr_cut,
                           &e) < 0)
        goto fail;
    if (until > now_us / US_HOUR * US_HOUR) {
        fprintf(stderr, "tsi reprocess: the range must end at or before the current hour\n");
        status = 2;
        goto done;
    }
    /* scratch archive for the pipeline */
    snprintf(scratch, sizeof scratch, "%s/tmp", tsi_home());
    if (tsi_mkdirs(scratch, &e) < 0) {
        scratch[0] = '\0';
        goto fail;
    }
    snprintf(scratch, sizeof scratch, "%s/tmp/reprocess.XXXXXX", tsi_home());
    if (!mkdtemp(scratch)) {
        tsi_error_set(&e, TSI_E_IO, "cannot create a scratch directory", "%s: %s", scratch,
                      strerror(errno));
        scratch[0] = '\0';
        goto fail;
    }
    tsi_constants k;
    if (load_constants(c, &k, &pri, &e) < 0)
        goto fail;
    int nisect = 0;
    if (registry_mapdata(c, &md, &nisect, &e) < 0)
        goto fail;
    tsi_pipeline_config pc = {.archive_root = scratch};
    if (tsi_pipeline_new(&pl, &pc, NULL, &e) < 0)
        goto fail;
    tsi_pipeline_set_constants(pl, &k, pri);
    pri = NULL; /* taken */
    tsi_pipeline_mapdata(pl, md.data, md.len, since / 1000);

    if (tsi_pqr_open(&p, &e) < 0)
        goto fail;
    int64_t nmsg = 0;
    if (probe_raw(&p, raw, since, until, &bad, &e) < 0 ||
        read_raw(&p, raw, since, until, &bad, &nmsg, &e) < 0)
        goto fail;
    tsi_info("reprocess", "raw messages=%" PRId64 " intersections=%d constants_k=%g", nmsg, nisect,
             k.k);
    duckdb_result res;
    if (tsi_pqr_query(&p, "SELECT kind, ts_ms, json, ref_ms FROM rp_msgs ORDER BY ts_ms, kind",
                      &res, &e) < 0) {
        duckdb_destroy_result(&res);
        goto fail;
    }
    duckdb_data_chunk ch;
    while ((ch = duckdb_fetch_chunk(res)) != NULL) {
        idx_t n = duckdb_data_chunk_get_size(ch);
        int32_t *kind = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 0));
        int64_t *ts = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 1));
        duckdb_string_t *js = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 2));
        int64_t *ref = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 3));
        (void)ts; /* the order; the pipeline reads the message's own time from its JSON */
        for (idx_t i = 0; i < n; i++)
            tsi_pipeline_frame(pl, kind[i] == 0 ? TSI_RAW_BSM : TSI_RAW_PSM,
                               duckdb_string_t_data(&js[i]), duckdb_string_t_length(js[i]), ref[i]);
        duckdb_destroy_data_chunk(&ch);
    }
    duckdb_destroy_result(&res);
    tsi_collect_counters cc;
    tsi_pipeline_counters(pl, &cc);
    tsi_pipeline_free(pl, true);
    pl = NULL;
    tsi_info("reprocess",
             "recomputed accepted=%lld deduped=%lld unmatched=%lld rejected=%lld late=%lld "
             "clock_skew=%lld windows=%lld",
             cc.accepted, cc.deduped, cc.unmatched, cc.rejected, cc.late, cc.skewed, cc.windows);

    /* the new rows, classified like a backfill */
    tsi_pqr_summary sum;
    if (tsi_pqr_prepare(&p, scratch, since, until, now_us, 1, c, NULL, NULL, &sum, &e) < 0)
        goto fail;
    if (sum.rows_bad)
        tsi_warn("reprocess", "recomputed rows refused rows=%" PRId64, sum.rows_bad);

    /* what was read against what is being replaced */
    int ndays = (int)((until - 1) / US_DAY - since / US_DAY + 1);
    days = calloc((size_t)ndays, sizeof *days);
    if (!days) {
        tsi_error_set(&e, TSI_E_NOMEM, "out of memory", NULL);
        goto fail;
    }
    for (int i = 0; i < ndays; i++) {
        int64_t day = since / US_DAY * US_DAY + i * US_DAY;
        days[i].lo = since > day ? since : day;
        days[i].hi = until < day + US_DAY ? until : day + US_DAY;
    }
    int64_t reasons = 0;
    if (check_range(&p, c, since, until, rt_cut, tsi_opts_double(o, "max-shrink"), days, ndays,
                    &reasons, &e) < 0)
        goto fail;
    if (dry) {
        printf("dry run: nothing was changed (%s)\n",
               reasons ? "a real run would refuse" : "a real run would replace the range");
        status = reasons ? 3 : 0;
        goto done;
    }
    if (reasons && !force) {
        fprintf(stderr,
                "tsi reprocess: refused: %" PRId64 " reason(s) above; nothing was changed"
                " (fix --raw or the raw archive, or replace anyway with --force)\n",
                reasons);
        status = 3;
        goto done;
    }
    if (reasons)
        tsi_warn("reprocess", "replacing despite the refusal reasons=%" PRId64 " (--force)",
                 reasons);
    for (int i = 0; i < ndays; i++)
        if (replace_one_day(&p, c, archive, scratch, &days[i], rt_cut, hr_cut, timeout_ms,
                            (int)tsi_opts_int(o, "lock-timeout-ms"),
                            (int)tsi_opts_int(o, "lock-retries"), reasons > 0, &e) < 0)
            goto fail;
    status = 0;
    goto done;
fail:
    fprintf(stderr, "tsi reprocess: %s: %s\n", e.message, e.detail);
    status = 1;
done:
    if (pl)
        tsi_pipeline_free(pl, false);
    tsi_priors_free(pri);
    tsi_pqr_close(&p);
    if (c)
        PQfinish(c);
    if (scratch[0])
        rm_rf(scratch);
    tsi_buf_free(&md);
    tsi_rpgen_names_free(&bad);
    free(days);
    return status;
}
