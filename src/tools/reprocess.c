/* tools/reprocess.c — `tsi reprocess`: recompute features and indices of a time range from
 * the raw archive with today's algorithm and constants, then replace the range (US-6).
 *
 *   1. The raw BSM/PSM messages of [since, until) are read through DuckDB from tsi's raw
 *      layout (raw/{bsm|psm}/YYYY/MM/DD/HH/ files, the original JSON in `json`) and the
 *      earlier system's (raw/{bsm|psm}/{bsm|psm}_<date>_<stamp>.parquet, one row per
 *      message with bsmJson/psmJson as nested structs: each row is turned back into the
 *      message's JSON by DuckDB's to_json, so a schema that differs from file to file does
 *      not matter), in time order.
 *   2. They go through the collector's own processing (collect/pipeline.h: decode, assign,
 *      dedupe — repeated polling delivers duplicates —, 1-minute windows, features, index)
 *      with the constants and EB priors valid now, the intersections of PostgreSQL as its
 *      registry, and a scratch directory as its archive: the new indices Parquet land
 *      there (its raw copy is thrown away).
 *   3. Per UTC day of the range, atomically: the day's indices Parquet directory is
 *      replaced by a new generation (old rows outside the range + the new rows) with one
 *      renameat2(RENAME_EXCHANGE); then in one transaction the realtime rows of the range
 *      (inside the 48 h window) are deleted and the new ones COPYed, the hourly rollups of
 *      the range are deleted and rebuilt (older hours from the new rows, as backfill does;
 *      window hours by the jobs' rollup), and the jobs' daily rollup re-rolls the day.
 *   Low priority (nice 10), a statement timeout on every statement, one day per
 *   transaction. --since/--until must be whole hours and the range must be closed. */
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

#include "archive/raw.h"
#include "base/buf.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/options.h"
#include "base/proc.h"
#include "collect/pipeline.h"
#include "commands.h"
#include "core/index.h"
#include "db/conn.h"
#include "db/constants.h"
#include "tools/parquet_read.h"
#include "tools/reprocess.h"
#include "tools/validate.h"

#define US_HOUR 3600000000LL
#define US_DAY  (24 * US_HOUR)

const tsi_option tsi_reprocess_options[] = {
    {"since", TSI_OPT_STRING, NULL, NULL, "start of the range, a whole UTC hour (required)", NULL},
    {"until", TSI_OPT_STRING, NULL, NULL, "end of the range (exclusive), a whole UTC hour", NULL},
    {"raw", TSI_OPT_PATH, NULL, NULL,
     "directory holding raw/ (tsi or legacy layout; default: the archive)", NULL},
    {"archive", TSI_OPT_PATH, NULL, "TSI_ARCHIVE_DIR",
     "archive whose indices/ get the new generation (default $TSI_HOME/archive)", NULL},
    {"realtime-hours", TSI_OPT_INT, "48", "TSI_REALTIME_HOURS",
     "hours of 1-minute rows the realtime table keeps", "1..8760"},
    {"statement-timeout-ms", TSI_OPT_INT, "60000", NULL,
     "statement timeout of every database statement", "100..3600000"},
    {"nice", TSI_OPT_INT, "10", NULL, "scheduling priority (nice value) of the process", "0..19"},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

/* ------------------------------------------------------------- raw messages -- */

/* Lists raw files of one kind ("bsm"/"psm") of both layouts overlapping [lo, hi) into a
 * DuckDB list literal; returns the count. */
static int raw_files(const char *raw, const char *kind, int64_t lo, int64_t hi, tsi_buf *tsi_list,
                     tsi_buf *legacy_list)
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
            tsi_buf_puts(tsi_list, tsi_list->len ? ", " : "");
            tsi_pqr_quote(tsi_list, f);
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
            tsi_buf_puts(legacy_list, legacy_list->len ? ", " : "");
            tsi_pqr_quote(legacy_list, f);
            n++;
        }
        closedir(d);
    }
    return n;
}

/* Fills DuckDB table rp_msgs(kind, ts_ms, json) with the messages of [lo, hi). */
static int read_raw(tsi_pqr *p, const char *raw, int64_t lo, int64_t hi, int64_t *nmsg,
                    tsi_error *err)
{
    int rc = tsi_pqr_exec(p,
                          "CREATE OR REPLACE TABLE rp_msgs (kind INTEGER, ts_ms BIGINT,"
                          " json VARCHAR)",
                          err);
    const char *kinds[2] = {"bsm", "psm"};
    for (int k = 0; k < 2 && rc == 0; k++) {
        tsi_buf tl = TSI_BUF_INIT, ll = TSI_BUF_INIT, q = TSI_BUF_INIT;
        raw_files(raw, kinds[k], lo, hi, &tl, &ll);
        if (tl.len) {
            tsi_buf_printf(&q,
                           "INSERT INTO rp_msgs SELECT %d, timestamp_ms, json FROM"
                           " read_parquet([%s], union_by_name = true)"
                           " WHERE reject_reason IS NULL AND timestamp_ms >= %" PRId64
                           " AND timestamp_ms < %" PRId64,
                           k, tsi_buf_cstr(&tl), lo / 1000, hi / 1000);
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
                               " CAST(to_json(t) AS VARCHAR) FROM read_parquet(%s) t"
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
    PGresult *r = PQexec(c, "SELECT id, name, latitude, longitude, coalesce(revision, 0)"
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
    for (int i = 0; i < *n; i++) {
        long long id = atoll(PQgetvalue(r, i, 0));
        tsi_jsonw_object(&w);
        tsi_jsonw_key(&w, "id");
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_int(&w, "region", id / 65536);
        tsi_jsonw_kv_int(&w, "id", id % 65536);
        tsi_jsonw_end(&w);
        tsi_jsonw_kv_str(&w, "name", PQgetvalue(r, i, 1));
        tsi_jsonw_kv_int(&w, "revision", atoll(PQgetvalue(r, i, 4)));
        tsi_jsonw_key(&w, "refPoint");
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_double(&w, "lat", strtod(PQgetvalue(r, i, 2), NULL));
        tsi_jsonw_kv_double(&w, "lon", strtod(PQgetvalue(r, i, 3), NULL));
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

/* ---------------------------------------------------- the new Parquet generation -- */

static int exchange(const char *a, const char *b)
{
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

static void mkdirs(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *q = tmp + 1; *q; q++)
        if (*q == '/') {
            *q = '\0';
            mkdir(tmp, 0755);
            *q = '/';
        }
    mkdir(tmp, 0755);
}

/* Replaces archive/indices/YYYY/MM/DD with: its rows outside [lo, hi) + the scratch
 * day's rows. The old generation moves to archive/indices/.superseded/. */
static int new_generation(tsi_pqr *p, const char *archive, const char *scratch, int64_t day,
                          int64_t lo, int64_t hi, tsi_error *err)
{
    time_t t = (time_t)(day / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char rel[32], live[4200], gen[4300], newd[4200], sup[4400];
    snprintf(rel, sizeof rel, "%04d/%02d/%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    snprintf(live, sizeof live, "%s/indices/%s", archive, rel);
    snprintf(newd, sizeof newd, "%s/indices/%s", scratch, rel);
    long long stamp = (long long)time(NULL);
    snprintf(gen, sizeof gen, "%s.gen-%lld", live, stamp);
    mkdirs(gen);
    int rc = 0;
    const char *kinds[2] = {"indices", "conflicts"};
    for (int k = 0; k < 2 && rc == 0; k++) {
        tsi_buf q = TSI_BUF_INIT, parts = TSI_BUF_INIT;
        char glob_old[4400], glob_new[4400];
        snprintf(glob_old, sizeof glob_old, "%s/%s_*.parquet", live, kinds[k]);
        snprintf(glob_new, sizeof glob_new, "%s/%s_*.parquet", newd, kinds[k]);
        int64_t nold = 0, nnew = 0;
        tsi_buf_puts(&q, "SELECT count(*) FROM glob(");
        tsi_pqr_quote(&q, glob_old);
        tsi_buf_puts(&q, ")");
        tsi_pqr_int(p, tsi_buf_cstr(&q), 0, &nold, NULL);
        tsi_buf_reset(&q);
        tsi_buf_puts(&q, "SELECT count(*) FROM glob(");
        tsi_pqr_quote(&q, glob_new);
        tsi_buf_puts(&q, ")");
        tsi_pqr_int(p, tsi_buf_cstr(&q), 0, &nnew, NULL);
        if (nold) {
            tsi_buf_puts(&parts, "SELECT * FROM read_parquet(");
            tsi_pqr_quote(&parts, glob_old);
            tsi_buf_printf(&parts,
                           ", union_by_name = true) WHERE epoch_us(\"timestamp\") < %" PRId64
                           " OR epoch_us(\"timestamp\") >= %" PRId64,
                           lo, hi);
        }
        if (nnew) {
            tsi_buf_puts(&parts, nold ? " UNION ALL BY NAME " : "");
            tsi_buf_puts(&parts, "SELECT * FROM read_parquet(");
            tsi_pqr_quote(&parts, glob_new);
            tsi_buf_puts(&parts, ", union_by_name = true)");
        }
        if (parts.len) {
            char out[4500];
            snprintf(out, sizeof out, "%s/%s_%lld_reprocess.parquet", gen, kinds[k], stamp);
            tsi_buf_reset(&q);
            tsi_buf_printf(&q, "COPY (SELECT * FROM (%s) ORDER BY \"timestamp\") TO ",
                           tsi_buf_cstr(&parts));
            tsi_pqr_quote(&q, out);
            tsi_buf_puts(&q, " (FORMAT parquet, COMPRESSION zstd)");
            rc = tsi_pqr_exec(p, tsi_buf_cstr(&q), err);
        }
        tsi_buf_free(&q);
        tsi_buf_free(&parts);
    }
    if (rc < 0)
        return rc;
    struct stat st;
    if (stat(live, &st) == 0) {
        if (exchange(gen, live) < 0)
            return tsi_error_set(err, TSI_E_IO, "cannot swap in the new indices generation",
                                 "%s: %s", live, strerror(errno));
        /* gen now holds the old generation */
        snprintf(sup, sizeof sup, "%s/indices/.superseded/%04d-%02d-%02d.%lld", archive,
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, stamp);
        char supdir[4400];
        snprintf(supdir, sizeof supdir, "%s/indices/.superseded", archive);
        mkdirs(supdir);
        if (rename(gen, sup) < 0)
            tsi_warn("reprocess", "old generation left in place dir=%s err=%s", gen,
                     strerror(errno));
        else
            tsi_info("reprocess", "indices generation replaced day=%s old=%s", rel, sup);
    } else {
        char parent[4200];
        snprintf(parent, sizeof parent, "%s", live);
        *strrchr(parent, '/') = '\0';
        mkdirs(parent);
        if (rename(gen, live) < 0)
            return tsi_error_set(err, TSI_E_IO, "cannot publish the indices generation", "%s: %s",
                                 live, strerror(errno));
    }
    return 0;
}

/* ------------------------------------------------------------- the database -- */

static const char SQL_RT_STAGE[] =
    "CREATE TEMP TABLE tsi_rp_rt (intersection_id bigint, ts_us bigint,"
    " combined_index double precision, combined_index_eb double precision,"
    " vru_index double precision, vru_index_eb double precision,"
    " vehicle_index double precision, vehicle_index_eb double precision,"
    " traffic_volume integer, vru_count integer, vehicle_event_count integer,"
    " vru_event_count integer, hour_of_day smallint, day_of_week smallint,"
    " avg_speed double precision, speed_stddev double precision, hard_braking_count integer)"
    " ON COMMIT DROP";
#define RT_COLS                                                                                    \
    "combined_index, combined_index_eb, vru_index, vru_index_eb, vehicle_index, "                  \
    "vehicle_index_eb, traffic_volume, vru_count, vehicle_event_count, vru_event_count, "          \
    "hour_of_day, day_of_week, avg_speed, speed_stddev, hard_braking_count"
#define HR_COLS                                                                                    \
    "avg_si, min_si, max_si, std_si, total_volume, avg_volume, high_risk_minutes, "                \
    "data_quality_score"
#define TS(x) "(timestamptz 'epoch' + " x " * interval '1 microsecond')"

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

static int replace_day(tsi_pqr *p, PGconn *c, int64_t lo, int64_t hi, int64_t rt_cut,
                       int timeout_ms, int64_t *rt_rows, int64_t *hr_rows, tsi_error *err)
{
    char s_lo[32], s_hi[32], s_cut[32], q[1024];
    snprintf(s_lo, sizeof s_lo, "%" PRId64, lo);
    snprintf(s_hi, sizeof s_hi, "%" PRId64, hi);
    snprintf(s_cut, sizeof s_cut, "%" PRId64, rt_cut);
    const char *pv[3] = {s_lo, s_hi, s_cut};
    int rc;
    if ((rc = tsi_db_exec(c, "BEGIN", err)) < 0)
        return rc;
    snprintf(q, sizeof q, "SET LOCAL statement_timeout = %d", timeout_ms);
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
    if ((rc = tsi_db_exec(c,
                          "CREATE TEMP TABLE tsi_rp_hr (intersection_id bigint, hour_us bigint,"
                          " avg_si float8, min_si float8, max_si float8, std_si float8,"
                          " total_volume bigint, avg_volume float8, high_risk_minutes integer,"
                          " data_quality_score float8) ON COMMIT DROP",
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
    if ((rc = tsi_db_exec(
             c,
             "INSERT INTO safety_indices_hourly (intersection_id, hour_timestamp, " HR_COLS
             ") SELECT intersection_id, " TS("hour_us") ", " HR_COLS " FROM tsi_rp_hr",
             err)) < 0)
        goto fail;
    PGresult *r = PQexec(c, "SELECT status, coalesce(error, '') FROM "
                            "tsi_job_run('daily', NULL, '{\"source\": \"reprocess\"}')");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(PQgetvalue(r, 0, 0), "ok") != 0) {
        rc = PQresultStatus(r) != PGRES_TUPLES_OK
                 ? tsi_db_result_error(r, "the jobs' rollups failed", err)
                 : tsi_error_set(err, TSI_E_DB, "the jobs' rollups failed", "%s",
                                 PQgetvalue(r, 0, 1));
        PQclear(r);
        goto fail;
    }
    PQclear(r);
    if ((rc = tsi_db_exec(c, "COMMIT", err)) < 0)
        goto fail;
    return 0;
fail:
    tsi_db_exec(c, "ROLLBACK", NULL);
    return rc;
}

/* ----------------------------------------------------------------- command -- */

static int rm_rf(const char *path)
{
    char *argv[] = {"rm", "-rf", (char *)path, NULL};
    return tsi_proc_run(argv, NULL, NULL, 0, NULL);
}

int tsi_cmd_reprocess(int argc, char **argv)
{
    tsi_opts o;
    int rc = tsi_opts_parse(
        &o, "tsi reprocess",
        "usage: tsi reprocess --since TIME --until TIME [--raw DIR]\n\n"
        "Recomputes features and indices of [since, until) from the raw archive with\n"
        "today's algorithm and constants, and replaces that range, one UTC day at a time:\n"
        "a new indices Parquet generation, the realtime rows inside the 48 h window, the\n"
        "hourly and daily rollups. Times are whole UTC hours (YYYY-MM-DDTHH:00Z).",
        tsi_reprocess_options, 0, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    tsi_error e = {0};
    int64_t since, until;
    if (!tsi_opts_str(&o, "since") || !tsi_opts_str(&o, "until") ||
        tsi_pqr_parse_time(tsi_opts_str(&o, "since"), &since, &e) < 0 ||
        tsi_pqr_parse_time(tsi_opts_str(&o, "until"), &until, &e) < 0 || since % US_HOUR ||
        until % US_HOUR || until <= since || until - since > 31 * US_DAY) {
        fprintf(stderr, "tsi reprocess: --since and --until must be whole UTC hours, since <"
                        " until, at most 31 days apart\n");
        tsi_opts_free(&o);
        return 2;
    }
    int status = 1;
    PGconn *c = NULL;
    tsi_pqr p = {0};
    tsi_pipeline *pl = NULL;
    tsi_priors *pri = NULL;
    char archive[4096], raw[4096], scratch[4200] = "";
    tsi_buf md = TSI_BUF_INIT;
    if (tsi_opts_str(&o, "archive"))
        snprintf(archive, sizeof archive, "%s", tsi_opts_str(&o, "archive"));
    else
        tsi_archive_root(archive, sizeof archive);
    snprintf(raw, sizeof raw, "%s", tsi_opts_str(&o, "raw") ? tsi_opts_str(&o, "raw") : archive);
    int timeout_ms = (int)tsi_opts_int(&o, "statement-timeout-ms");
    if (setpriority(PRIO_PROCESS, 0, (int)tsi_opts_int(&o, "nice")) < 0)
        tsi_warn("reprocess", "cannot lower the priority err=%s", strerror(errno));

    if (!(c = tsi_db_connect(TSI_ROLE_OWNER, NULL, &e)))
        goto fail;
    char tq[64];
    snprintf(tq, sizeof tq, "SET statement_timeout = %d", timeout_ms);
    if (tsi_db_exec(c, tq, &e) < 0)
        goto fail;
    int64_t now_us, rt_cut, hr_cut;
    if (tsi_validate_clock(c, (int)tsi_opts_int(&o, "realtime-hours"), 90, &now_us, &rt_cut,
                           &hr_cut, &e) < 0)
        goto fail;
    if (until > now_us / US_HOUR * US_HOUR) {
        fprintf(stderr, "tsi reprocess: the range must end at or before the current hour\n");
        status = 2;
        goto done;
    }
    /* scratch archive for the pipeline */
    snprintf(scratch, sizeof scratch, "%s/tmp", tsi_home());
    mkdirs(scratch);
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
    if (read_raw(&p, raw, since, until, &nmsg, &e) < 0)
        goto fail;
    tsi_info("reprocess", "raw messages=%" PRId64 " intersections=%d constants_k=%g", nmsg, nisect,
             k.k);
    duckdb_result res;
    if (tsi_pqr_query(&p, "SELECT kind, ts_ms, json FROM rp_msgs ORDER BY ts_ms, kind", &res, &e) <
        0) {
        duckdb_destroy_result(&res);
        goto fail;
    }
    duckdb_data_chunk ch;
    while ((ch = duckdb_fetch_chunk(res)) != NULL) {
        idx_t n = duckdb_data_chunk_get_size(ch);
        int32_t *kind = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 0));
        int64_t *ts = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 1));
        duckdb_string_t *js = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 2));
        for (idx_t i = 0; i < n; i++)
            tsi_pipeline_frame(pl, kind[i] == 0 ? TSI_RAW_BSM : TSI_RAW_PSM,
                               duckdb_string_t_data(&js[i]), duckdb_string_t_length(js[i]), ts[i]);
        duckdb_destroy_data_chunk(&ch);
    }
    duckdb_destroy_result(&res);
    tsi_collect_counters cc;
    tsi_pipeline_counters(pl, &cc);
    tsi_pipeline_free(pl, true);
    pl = NULL;
    tsi_info("reprocess",
             "recomputed accepted=%lld deduped=%lld unmatched=%lld rejected=%lld late=%lld "
             "windows=%lld",
             cc.accepted, cc.deduped, cc.unmatched, cc.rejected, cc.late, cc.windows);

    /* the new rows, classified like a backfill */
    tsi_pqr_summary sum;
    if (tsi_pqr_prepare(&p, scratch, since, until, now_us, 1, c, NULL, NULL, &sum, &e) < 0)
        goto fail;
    if (sum.rows_bad)
        tsi_warn("reprocess", "recomputed rows refused rows=%" PRId64, sum.rows_bad);
    for (int64_t day = since / US_DAY * US_DAY; day < until; day += US_DAY) {
        int64_t lo = since > day ? since : day, hi = until < day + US_DAY ? until : day + US_DAY;
        if (new_generation(&p, archive, scratch, day, lo, hi, &e) < 0)
            goto fail;
        int64_t rt = 0, hr = 0;
        if (replace_day(&p, c, lo, hi, rt_cut, timeout_ms, &rt, &hr, &e) < 0)
            goto fail;
        char a[32], b[32];
        tsi_info("reprocess",
                 "replaced from=%s until=%s realtime_rows=%" PRId64
                 " hourly_rows_from_parquet=%" PRId64,
                 tsi_pqr_fmt_time(lo, a, sizeof a), tsi_pqr_fmt_time(hi, b, sizeof b), rt, hr);
    }
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
    tsi_opts_free(&o);
    return status;
}
