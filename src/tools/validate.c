/* tools/validate.c — see validate.h; `tsi validate`. */
#include "tools/validate.h"
#include "core/index.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/raw.h"
#include "base/buf.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "db/conn.h"
#include "db/result.h"

#define US_HOUR 3600000000LL
#define US_DAY  (24 * US_HOUR)

/* ------------------------------------------------------------------ the clock -- */

int tsi_validate_clock(PGconn *c, int realtime_hours, int hourly_days, int64_t *now_us,
                       int64_t *rt_cut_us, int64_t *hourly_cut_us, tsi_error *err)
{
    char h[32], d[32];
    snprintf(h, sizeof h, "%d", realtime_hours);
    snprintf(d, sizeof d, "%d", hourly_days);
    const char *pv[2] = {h, d};
    PGresult *r = PQexecParams(
        c,
        "SELECT (extract(epoch FROM now()) * 1000000)::bigint AS now_us,\n"
        "       (extract(epoch FROM date_trunc('hour', now() - $1::int * interval '1 hour')\n"
        "                         + interval '1 hour') * 1000000)::bigint AS rt_cut_us,\n"
        "       (extract(epoch FROM date_trunc('hour', now() - $2::int * interval '1 day')\n"
        "                         + interval '1 hour') * 1000000)::bigint AS hourly_cut_us",
        2, NULL, pv, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = tsi_db_result_error(r, "cannot read the database clock", err);
        PQclear(r);
        return rc;
    }
    *now_us = strtoll(tsi_pq_get(r, 0, "now_us"), NULL, 10);
    *rt_cut_us = strtoll(tsi_pq_get(r, 0, "rt_cut_us"), NULL, 10);
    *hourly_cut_us = strtoll(tsi_pq_get(r, 0, "hourly_cut_us"), NULL, 10);
    PQclear(r);
    return 0;
}

/* ------------------------------------------------------------------ the checks -- */

#define TS(n)       "(timestamptz 'epoch' + $" #n "::bigint * interval '1 microsecond')"
#define EPOCH_US(x) "(extract(epoch FROM " x ") * 1000000)::bigint"

static const char PG_RT_DAYS[] = "SELECT intersection_id, " EPOCH_US(
    "date_trunc('day', \"timestamp\", 'UTC')") ",\n"
                                               "       count(*), sum(coalesce(combined_index_eb, "
                                               "combined_index)),\n"
                                               "       min(coalesce(combined_index_eb, "
                                               "combined_index)),\n"
                                               "       max(coalesce(combined_index_eb, "
                                               "combined_index))\n"
                                               "  FROM safety_indices_realtime\n"
                                               " WHERE \"timestamp\" >= " TS(
                                                   1) " AND \"timestamp\" < " TS(2) "\n"
                                                                                    " GROUP BY 1, "
                                                                                    "2";

/* The sub-index columns of migration 060, the same on the hourly and daily tables, in the
 * order of SUBINDEX_FIELDS and of the Parquet side's pq_hourly (archive/parquet_read.c). */
#define PG_SUBINDEX                                                                                \
    "avg_vru_index, n_vru_index, avg_vru_index_eb, n_vru_index_eb, avg_vru_si, min_vru_si,"        \
    " max_vru_si, n_vru_si, avg_vehicle_index, n_vehicle_index, avg_vehicle_index_eb,"             \
    " n_vehicle_index_eb, avg_vehicle_si, min_vehicle_si, max_vehicle_si, n_vehicle_si"
#define SUBINDEX_DDL                                                                               \
    ", avg_vru_index DOUBLE, n_vru_index INTEGER, avg_vru_index_eb DOUBLE,"                        \
    " n_vru_index_eb INTEGER, avg_vru_si DOUBLE, min_vru_si DOUBLE, max_vru_si DOUBLE,"            \
    " n_vru_si INTEGER, avg_vehicle_index DOUBLE, n_vehicle_index INTEGER,"                        \
    " avg_vehicle_index_eb DOUBLE, n_vehicle_index_eb INTEGER, avg_vehicle_si DOUBLE,"             \
    " min_vehicle_si DOUBLE, max_vehicle_si DOUBLE, n_vehicle_si INTEGER,"                         \
    " constants_ids VARCHAR, algorithm_versions VARCHAR"
#define SUBINDEX_FIELDS                                                                            \
    "avg_vru_index", "n_vru_index", "avg_vru_index_eb", "n_vru_index_eb", "avg_vru_si",            \
        "min_vru_si", "max_vru_si", "n_vru_si", "avg_vehicle_index", "n_vehicle_index",            \
        "avg_vehicle_index_eb", "n_vehicle_index_eb", "avg_vehicle_si", "min_vehicle_si",          \
        "max_vehicle_si", "n_vehicle_si", "constants_ids", "algorithm_versions"

static const char PG_HOURLY[] = "SELECT intersection_id, " EPOCH_US(
    "hour_timestamp") ", avg_si, min_si, max_si, std_si,\n"
                      "       total_volume, avg_volume, high_risk_minutes, data_quality_score,\n"
                      "       " PG_SUBINDEX ",\n"
                      "       constants_ids::text, algorithm_versions::text\n"
                      "  FROM safety_indices_hourly\n"
                      " WHERE hour_timestamp >= " TS(1) " AND hour_timestamp < " TS(2);

static const char PG_DAILY[] = "SELECT intersection_id, " EPOCH_US(
    "date::timestamp AT TIME ZONE 'UTC'") ", avg_si, min_si,\n"
                                          "       max_si, total_volume, avg_volume, "
                                          "high_risk_hours, peak_hour, peak_si,\n"
                                          "       " PG_SUBINDEX ",\n"
                                          "       constants_ids::text, algorithm_versions::text\n"
                                          "  FROM safety_indices_daily\n"
                                          " WHERE date >= (" TS(
                                              1) " AT TIME ZONE 'UTC')::date\n"
                                                 "   AND date < (" TS(
                                                     2) " AT TIME ZONE 'UTC')::date";

static const char PG_SAMPLE[] = "SELECT r.intersection_id, " EPOCH_US(
    "r.\"timestamp\"") ", r.combined_index,\n"
                       "       r.combined_index_eb, r.vru_index, r.vru_index_eb, r.vehicle_index,\n"
                       "       r.vehicle_index_eb, r.traffic_volume, r.vru_count, "
                       "r.vehicle_event_count,\n"
                       "       r.vru_event_count, r.hour_of_day, r.day_of_week, r.avg_speed, "
                       "r.speed_stddev,\n"
                       "       r.hard_braking_count\n"
                       "  FROM unnest($1::bigint[], $2::bigint[]) AS k(iid, us)\n"
                       "  JOIN safety_indices_realtime r\n"
                       "    ON r.intersection_id = k.iid\n"
                       "   AND r.\"timestamp\" = timestamptz 'epoch' + k.us * interval '1 "
                       "microsecond'";

static const char *const RT_FIELDS[] = {
    "combined_index",      "combined_index_eb", "vru_index",          "vru_index_eb",
    "vehicle_index",       "vehicle_index_eb",  "traffic_volume",     "vru_count",
    "vehicle_event_count", "vru_event_count",   "hour_of_day",        "day_of_week",
    "avg_speed",           "speed_stddev",      "hard_braking_count", NULL};
static const char *const HOURLY_FIELDS[] = {"avg_si",
                                            "min_si",
                                            "max_si",
                                            "std_si",
                                            "total_volume",
                                            "avg_volume",
                                            "high_risk_minutes",
                                            "data_quality_score",
                                            SUBINDEX_FIELDS,
                                            NULL};
static const char *const DAILY_FIELDS[] = {
    "avg_si",          "min_si",    "max_si",  "total_volume",  "avg_volume",
    "high_risk_hours", "peak_hour", "peak_si", SUBINDEX_FIELDS, NULL};

/* The provenance arrays are compared as their PostgreSQL text ("{1,2}"), exactly. */
static bool is_text_field(const char *f)
{
    return strcmp(f, "constants_ids") == 0 || strcmp(f, "algorithm_versions") == 0;
}

/* Joins relation `pq` (Parquet side) with `pg` (PostgreSQL side) on (iid, b) and records
 * the compared count and every difference. bucket: how to print b ("day", "hour",
 * "minute" or NULL for none). */
static int compare(tsi_pqr *p, const char *chk, const char *pq, const char *pg, const char *bucket,
                   const char *const *fields, tsi_error *err)
{
    tsi_buf q = TSI_BUF_INIT;
    int rc;
    const char *fmt = !bucket                      ? "CAST(NULL AS VARCHAR)"
                      : strcmp(bucket, "day") == 0 ? "strftime(make_timestamp(b), '%Y-%m-%d')"
                      : strcmp(bucket, "hour") == 0
                          ? "strftime(make_timestamp(b), '%Y-%m-%d %H:00')"
                          : "strftime(make_timestamp(b), '%Y-%m-%d %H:%M')";
    tsi_buf_puts(&q, "CREATE OR REPLACE TEMP TABLE v_j AS SELECT p.iid AS p_iid, g.iid AS g_iid,"
                     " coalesce(p.iid, g.iid) AS iid, coalesce(p.b, g.b) AS b");
    for (const char *const *f = fields; *f; f++)
        tsi_buf_printf(&q, ", p.%s AS p_%s, g.%s AS g_%s", *f, *f, *f, *f);
    tsi_buf_printf(&q,
                   " FROM (%s) p FULL OUTER JOIN (%s) g ON p.iid = g.iid AND"
                   " p.b IS NOT DISTINCT FROM g.b",
                   pq, pg);
    if ((rc = tsi_pqr_exec(p, tsi_buf_cstr(&q), err)) < 0)
        goto done;
    tsi_buf_reset(&q);
    tsi_buf_printf(&q, "INSERT INTO v_check SELECT '%s', count(*) FROM v_j", chk);
    if ((rc = tsi_pqr_exec(p, tsi_buf_cstr(&q), err)) < 0)
        goto done;
    tsi_buf_reset(&q);
    tsi_buf_printf(&q,
                   "INSERT INTO v_issue SELECT '%s', %s, b, iid, '(row)',"
                   " CASE WHEN p_iid IS NULL THEN 'absent' ELSE 'present' END,"
                   " CASE WHEN g_iid IS NULL THEN 'absent' ELSE 'present' END"
                   " FROM v_j WHERE p_iid IS NULL OR g_iid IS NULL",
                   chk, fmt);
    if ((rc = tsi_pqr_exec(p, tsi_buf_cstr(&q), err)) < 0)
        goto done;
    for (const char *const *f = fields; *f; f++) {
        tsi_buf_reset(&q);
        tsi_buf_printf(&q,
                       "INSERT INTO v_issue SELECT '%s', %s, b, iid, '%s',"
                       " CAST(p_%s AS VARCHAR), CAST(g_%s AS VARCHAR) FROM v_j"
                       " WHERE p_iid IS NOT NULL AND g_iid IS NOT NULL AND %s(p_%s, g_%s)",
                       chk, fmt, *f, *f, *f, is_text_field(*f) ? "v_tneq" : "v_neq", *f, *f);
        if ((rc = tsi_pqr_exec(p, tsi_buf_cstr(&q), err)) < 0)
            goto done;
    }
done:
    tsi_buf_free(&q);
    return rc;
}

/* a sub-index of a day from its hours: the mean weighted by the hours' minute counts */
#define PQ_DAY_MEAN(x)                                                                             \
    "sum(avg_" x " * n_" x ") / nullif(sum(n_" x "), 0) AS avg_" x ","                             \
    " CAST(sum(n_" x ") AS INTEGER) AS n_" x

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}
static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int fetch(tsi_pqr *p, PGconn *c, const char *sql, int64_t a, int64_t b, const char *table,
                 const char *ddl, tsi_error *err)
{
    char sa[32], sb[32];
    snprintf(sa, sizeof sa, "%" PRId64, a);
    snprintf(sb, sizeof sb, "%" PRId64, b);
    const char *pv[2] = {sa, sb};
    int64_t n = tsi_pqr_from_pg(p, c, sql, 2, pv, table, ddl, err);
    return n < 0 ? (int)n : 0;
}

static int sample_rows(tsi_pqr *p, PGconn *c, const tsi_validate_cfg *cfg, int64_t lo, int64_t hi,
                       tsi_error *err)
{
    char q[1024];
    snprintf(q, sizeof q,
             "CREATE OR REPLACE TEMP TABLE v_sample AS SELECT iid, ts_us AS b, * EXCLUDE (iid)"
             " FROM pq_valid WHERE ts_us >= %" PRId64 " AND ts_us < %" PRId64
             " ORDER BY hash(iid, ts_us, %u), iid, ts_us LIMIT %d",
             lo, hi, cfg->seed, cfg->sample);
    int rc = tsi_pqr_exec(p, q, err);
    if (rc < 0)
        return rc;
    duckdb_result r;
    if ((rc = tsi_pqr_query(
             p,
             "SELECT '{' || coalesce(string_agg(CAST(iid AS VARCHAR), ','), '') || '}',"
             " '{' || coalesce(string_agg(CAST(b AS VARCHAR), ','), '') || '}'"
             " FROM v_sample",
             &r, err)) < 0) {
        duckdb_destroy_result(&r);
        return rc;
    }
    tsi_buf ids = TSI_BUF_INIT, tss = TSI_BUF_INIT;
    duckdb_data_chunk ch = duckdb_fetch_chunk(r);
    if (ch) {
        duckdb_vector v0 = duckdb_data_chunk_get_vector(ch, 0),
                      v1 = duckdb_data_chunk_get_vector(ch, 1);
        duckdb_string_t *s0 = duckdb_vector_get_data(v0), *s1 = duckdb_vector_get_data(v1);
        tsi_buf_append(&ids, duckdb_string_t_data(&s0[0]), duckdb_string_t_length(s0[0]));
        tsi_buf_append(&tss, duckdb_string_t_data(&s1[0]), duckdb_string_t_length(s1[0]));
        duckdb_destroy_data_chunk(&ch);
    }
    duckdb_destroy_result(&r);
    const char *pv[2] = {tsi_buf_cstr(&ids), tsi_buf_cstr(&tss)};
    int64_t n = tsi_pqr_from_pg(
        p, c, PG_SAMPLE, 2, pv, "v_pg_sample",
        "iid BIGINT, b BIGINT, combined_index DOUBLE, combined_index_eb DOUBLE, vru_index DOUBLE,"
        " vru_index_eb DOUBLE, vehicle_index DOUBLE, vehicle_index_eb DOUBLE,"
        " traffic_volume INTEGER, vru_count INTEGER, vehicle_event_count INTEGER,"
        " vru_event_count INTEGER, hour_of_day SMALLINT, day_of_week SMALLINT,"
        " avg_speed DOUBLE, speed_stddev DOUBLE, hard_braking_count INTEGER",
        err);
    tsi_buf_free(&ids);
    tsi_buf_free(&tss);
    return n < 0 ? (int)n : 0;
}

/* ----------------------------------------------------------------- reporting -- */

typedef struct check_row {
    char name[64];
    int64_t compared, mismatches;
} check_row;

static const char *const CHECK_ORDER[] = {"realtime_rows_per_day",
                                          "realtime_stats",
                                          "realtime_sample",
                                          "minutes_per_day",
                                          "hourly",
                                          "intersection_stats",
                                          "daily",
                                          NULL};
static const char *const CHECK_DESC[] = {
    "rows per UTC day and intersection in the realtime window",
    "mean/min/max of the index per intersection in the realtime window",
    "random realtime rows compared field by field",
    "minutes covered per UTC day and intersection (hourly rollups)",
    "hourly rollups field by field",
    "minute-weighted mean/min/max per intersection (hourly rollups)",
    "daily rollups field by field",
};

static void html_esc(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '&':
            fputs("&amp;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        default:
            fputc(*s, out);
        }
    }
}

/* Reads issues: chk, bucket, iid, field, parquet, postgres (text, "" for NULL). */
typedef void (*issue_cb)(void *ud, const char *const *v);

static int each_issue(tsi_pqr *p, int limit, issue_cb cb, void *ud, tsi_error *err)
{
    char q[512], lim[32] = "";
    if (limit >= 0)
        snprintf(lim, sizeof lim, " LIMIT %d", limit);
    snprintf(q, sizeof q,
             "SELECT chk, coalesce(bucket, '-'), CAST(iid AS VARCHAR), field,"
             " coalesce(parquet, 'NULL'), coalesce(postgres, 'NULL') FROM v_issue"
             " ORDER BY ord, b NULLS FIRST, iid, field%s",
             lim);
    duckdb_result r;
    int rc = tsi_pqr_query(p, q, &r, err);
    if (rc == 0) {
        duckdb_data_chunk ch;
        while ((ch = duckdb_fetch_chunk(r)) != NULL) {
            idx_t n = duckdb_data_chunk_get_size(ch);
            duckdb_string_t *cols[6];
            for (int j = 0; j < 6; j++)
                cols[j] = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, (idx_t)j));
            for (idx_t i = 0; i < n; i++) {
                tsi_buf b[6];
                const char *v[6];
                for (int j = 0; j < 6; j++) {
                    b[j] = (tsi_buf)TSI_BUF_INIT;
                    tsi_buf_append(&b[j], duckdb_string_t_data(&cols[j][i]),
                                   duckdb_string_t_length(cols[j][i]));
                    v[j] = tsi_buf_cstr(&b[j]);
                }
                cb(ud, v);
                for (int j = 0; j < 6; j++)
                    tsi_buf_free(&b[j]);
            }
            duckdb_destroy_data_chunk(&ch);
        }
    }
    duckdb_destroy_result(&r);
    return rc;
}

static void text_issue(void *ud, const char *const *v)
{
    fprintf((FILE *)ud, "  %-22s %-16s intersection=%-8s %-20s parquet=%s postgres=%s\n", v[0],
            v[1], v[2], v[3], v[4], v[5]);
}

static void html_issue(void *ud, const char *const *v)
{
    FILE *out = ud;
    fputs("<tr>", out);
    for (int j = 0; j < 6; j++) {
        fputs("<td>", out);
        html_esc(out, v[j]);
        fputs("</td>", out);
    }
    fputs("</tr>\n", out);
}

static void json_issue(void *ud, const char *const *v)
{
    tsi_jsonw *w = ud;
    tsi_jsonw_object(w);
    tsi_jsonw_kv_str(w, "check", v[0]);
    tsi_jsonw_kv_str(w, "bucket", strcmp(v[1], "-") == 0 ? NULL : v[1]);
    tsi_jsonw_kv_int(w, "intersection_id", strtoll(v[2], NULL, 10));
    tsi_jsonw_kv_str(w, "field", v[3]);
    tsi_jsonw_kv_str(w, "parquet", strcmp(v[4], "NULL") == 0 ? NULL : v[4]);
    tsi_jsonw_kv_str(w, "postgres", strcmp(v[5], "NULL") == 0 ? NULL : v[5]);
    tsi_jsonw_end(w);
}

static int load_checks(tsi_pqr *p, check_row *rows, int *n, tsi_error *err)
{
    *n = 0;
    for (int i = 0; CHECK_ORDER[i]; i++) {
        char q[512];
        int64_t a = 0, b = 0;
        snprintf(q, sizeof q, "SELECT coalesce(sum(compared), 0) FROM v_check WHERE chk = '%s'",
                 CHECK_ORDER[i]);
        if (tsi_pqr_int(p, q, 0, &a, err) < 0)
            return TSI_E_PARQUET;
        snprintf(q, sizeof q, "SELECT count(*) FROM v_issue WHERE chk = '%s'", CHECK_ORDER[i]);
        if (tsi_pqr_int(p, q, 0, &b, err) < 0)
            return TSI_E_PARQUET;
        snprintf(rows[*n].name, sizeof rows[*n].name, "%s", CHECK_ORDER[i]);
        rows[*n].compared = a;
        rows[*n].mismatches = b;
        (*n)++;
    }
    return 0;
}

static void write_report(tsi_pqr *p, const tsi_validate_cfg *cfg, FILE *out, const check_row *rows,
                         int n, const tsi_validate_result *res)
{
    char since[32], until[32], now[32], cut[32];
    tsi_pqr_fmt_time(cfg->since_us, since, sizeof since);
    tsi_pqr_fmt_time(cfg->until_us, until, sizeof until);
    tsi_pqr_fmt_time(cfg->now_us, now, sizeof now);
    tsi_pqr_fmt_time(cfg->rt_cut_us, cut, sizeof cut);
    const tsi_pqr_summary *s = cfg->summary;
    bool ok = res->mismatches == 0;
    if (cfg->format == TSI_VFMT_JSON) {
        tsi_buf b = TSI_BUF_INIT;
        tsi_jsonw w;
        tsi_jsonw_init(&w, &b);
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_str(&w, "result", ok ? "ok" : "mismatch");
        tsi_jsonw_kv_str(&w, "from", cfg->from);
        tsi_jsonw_kv_str(&w, "since", since);
        tsi_jsonw_kv_str(&w, "until", until);
        tsi_jsonw_kv_str(&w, "database_now", now);
        tsi_jsonw_kv_str(&w, "realtime_from", cut);
        tsi_jsonw_kv_double(&w, "tolerance", cfg->tolerance);
        tsi_jsonw_kv_int(&w, "seed", cfg->seed);
        if (s) {
            tsi_jsonw_key(&w, "parquet");
            tsi_jsonw_object(&w);
            tsi_jsonw_kv_int(&w, "files", s->files);
            tsi_jsonw_kv_int(&w, "files_unreadable", s->files_bad);
            tsi_jsonw_kv_int(&w, "rows_read", s->rows_read);
            tsi_jsonw_kv_int(&w, "rows_valid", s->rows_valid);
            tsi_jsonw_kv_int(&w, "rows_rejected", s->rows_bad);
            tsi_jsonw_kv_int(&w, "rows_outside_range", s->rows_outside);
            tsi_jsonw_end(&w);
        }
        tsi_jsonw_kv_int(&w, "compared", res->compared);
        tsi_jsonw_kv_int(&w, "mismatches", res->mismatches);
        tsi_jsonw_key(&w, "checks");
        tsi_jsonw_array(&w);
        for (int i = 0; i < n; i++) {
            tsi_jsonw_object(&w);
            tsi_jsonw_kv_str(&w, "check", rows[i].name);
            tsi_jsonw_kv_str(&w, "description", CHECK_DESC[i]);
            tsi_jsonw_kv_int(&w, "compared", rows[i].compared);
            tsi_jsonw_kv_int(&w, "mismatches", rows[i].mismatches);
            tsi_jsonw_end(&w);
        }
        tsi_jsonw_end(&w);
        tsi_jsonw_key(&w, "issues");
        tsi_jsonw_array(&w);
        each_issue(p, -1, json_issue, &w, NULL);
        tsi_jsonw_end(&w);
        tsi_jsonw_end(&w);
        fprintf(out, "%s\n", tsi_buf_cstr(&b));
        tsi_buf_free(&b);
        return;
    }
    if (cfg->format == TSI_VFMT_HTML) {
        fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
              "<title>tsi validate</title>\n<style>\n"
              "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;"
              "color:#222;padding:0 1em}\n"
              "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
              "padding:.3em .6em;text-align:left}th{background:#f4f4f4}\n"
              "td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
              ".ok{color:#1e8449;font-weight:bold}.bad{color:#c0392b;font-weight:bold}\n"
              "</style></head><body>\n<h1>Parquet ⇄ PostgreSQL validation</h1>\n",
              out);
        fprintf(out, "<p class=\"%s\">%s: %" PRId64 " items compared, %" PRId64 " differ.</p>\n",
                ok ? "ok" : "bad", ok ? "Everything matches" : "Differences found", res->compared,
                res->mismatches);
        fputs("<table><tr><th>archive</th><td>", out);
        html_esc(out, cfg->from);
        fprintf(out,
                "</td></tr><tr><th>range (UTC)</th><td>%s to %s</td></tr>"
                "<tr><th>database clock</th><td>%s</td></tr>"
                "<tr><th>realtime rows from</th><td>%s</td></tr>"
                "<tr><th>tolerance</th><td>%g (relative)</td></tr>"
                "<tr><th>sample seed</th><td>%u</td></tr></table>\n",
                since, until, now, cut, cfg->tolerance, cfg->seed);
        if (s)
            fprintf(out,
                    "<h2>Parquet read</h2><table><tr><th>files</th><td class=n>%" PRId64
                    "</td></tr><tr><th>unreadable files</th><td class=n>%" PRId64
                    "</td></tr><tr><th>rows read</th><td class=n>%" PRId64
                    "</td></tr><tr><th>valid rows</th><td class=n>%" PRId64
                    "</td></tr><tr><th>rejected rows</th><td class=n>%" PRId64
                    "</td></tr><tr><th>outside the range</th><td class=n>%" PRId64
                    "</td></tr></table>\n",
                    s->files, s->files_bad, s->rows_read, s->rows_valid, s->rows_bad,
                    s->rows_outside);
        fputs("<h2>Checks</h2><table><tr><th>check</th><th>what</th><th>compared</th>"
              "<th>differences</th></tr>\n",
              out);
        for (int i = 0; i < n; i++)
            fprintf(out,
                    "<tr><td>%s</td><td>%s</td><td class=n>%" PRId64
                    "</td><td class=\"n %s\">%" PRId64 "</td></tr>\n",
                    rows[i].name, CHECK_DESC[i], rows[i].compared,
                    rows[i].mismatches ? "bad" : "ok", rows[i].mismatches);
        fputs("</table>\n", out);
        if (!ok) {
            fprintf(out,
                    "<h2>Differences (first %d)</h2><table><tr><th>check</th>"
                    "<th>bucket (UTC)</th><th>intersection</th><th>field</th>"
                    "<th>Parquet</th><th>PostgreSQL</th></tr>\n",
                    cfg->max_issues);
            each_issue(p, cfg->max_issues, html_issue, out, NULL);
            fputs("</table>\n", out);
        }
        fputs("</body></html>\n", out);
        return;
    }
    fprintf(out, "validate %s .. %s (UTC) from %s\n", since, until, cfg->from);
    fprintf(out, "database clock %s; realtime rows from %s; tolerance %g; seed %u\n", now, cut,
            cfg->tolerance, cfg->seed);
    if (s)
        fprintf(out,
                "parquet: files=%" PRId64 " unreadable=%" PRId64 " rows_read=%" PRId64
                " valid=%" PRId64 " rejected=%" PRId64 " outside_range=%" PRId64 "\n",
                s->files, s->files_bad, s->rows_read, s->rows_valid, s->rows_bad, s->rows_outside);
    fprintf(out, "%-24s %12s %12s\n", "check", "compared", "differences");
    for (int i = 0; i < n; i++)
        fprintf(out, "%-24s %12" PRId64 " %12" PRId64 "\n", rows[i].name, rows[i].compared,
                rows[i].mismatches);
    if (!ok) {
        fprintf(out, "differences (first %d of %" PRId64 "):\n", cfg->max_issues, res->mismatches);
        each_issue(p, cfg->max_issues, text_issue, out, NULL);
    }
    fprintf(out, "RESULT: %s\n", ok ? "OK" : "MISMATCH");
}

int tsi_validate_run(tsi_pqr *p, PGconn *c, const tsi_validate_cfg *cfg, FILE *out,
                     tsi_validate_result *res, tsi_error *err)
{
    int rc;
    char q[8192], pqs[4096];
    memset(res, 0, sizeof *res);
    int64_t cur_hour = cfg->now_us / US_HOUR * US_HOUR;
    int64_t today = cfg->now_us / US_DAY * US_DAY;
    /* realtime: [max(since, cut), until) ; hourly: [max(since, hourly_cut), min(until, hour))
     * ; daily: [since, min(until, today)) */
    int64_t rt_lo = max64(cfg->since_us, cfg->rt_cut_us), rt_hi = cfg->until_us;
    int64_t hr_lo = max64(cfg->since_us, cfg->hourly_cut_us),
            hr_hi = min64(cfg->until_us, cur_hour);
    int64_t dy_lo = cfg->since_us, dy_hi = min64(cfg->until_us, today);

    snprintf(q, sizeof q,
             "CREATE OR REPLACE TEMP TABLE v_check (chk VARCHAR, compared BIGINT);"
             "CREATE OR REPLACE TEMP TABLE v_issue (chk VARCHAR, bucket VARCHAR, b BIGINT,"
             " iid BIGINT, field VARCHAR, parquet VARCHAR, postgres VARCHAR);"
             "CREATE OR REPLACE MACRO v_neq(a, b) AS (CASE WHEN a IS NULL AND b IS NULL THEN false"
             " WHEN a IS NULL OR b IS NULL THEN true"
             " ELSE abs(CAST(a AS DOUBLE) - CAST(b AS DOUBLE)) > %.17g * greatest(1.0,"
             " abs(CAST(a AS DOUBLE)), abs(CAST(b AS DOUBLE))) END);"
             "CREATE OR REPLACE MACRO v_tneq(a, b) AS (a IS DISTINCT FROM b)",
             cfg->tolerance);
    if ((rc = tsi_pqr_exec(p, q, err)) < 0)
        return rc;

    /* PostgreSQL side */
    if ((rc = fetch(p, c, PG_RT_DAYS, rt_lo, rt_hi, "v_pg_rt",
                    "iid BIGINT, b BIGINT, nrows BIGINT, s DOUBLE, mn DOUBLE, mx DOUBLE", err)) <
            0 ||
        (rc = fetch(p, c, PG_HOURLY, hr_lo, hr_hi, "v_pg_hourly",
                    "iid BIGINT, b BIGINT, avg_si DOUBLE, min_si DOUBLE, max_si DOUBLE,"
                    " std_si DOUBLE, total_volume BIGINT, avg_volume DOUBLE,"
                    " high_risk_minutes INTEGER, data_quality_score DOUBLE" SUBINDEX_DDL,
                    err)) < 0 ||
        (rc = fetch(p, c, PG_DAILY, dy_lo, dy_hi, "v_pg_daily",
                    "iid BIGINT, b BIGINT, avg_si DOUBLE, min_si DOUBLE, max_si DOUBLE,"
                    " total_volume BIGINT, avg_volume DOUBLE, high_risk_hours INTEGER,"
                    " peak_hour INTEGER, peak_si DOUBLE" SUBINDEX_DDL,
                    err)) < 0)
        return rc;

    /* 1. realtime rows per day */
    snprintf(pqs, sizeof pqs,
             "SELECT iid, epoch_us(date_trunc('day', ts)) AS b, count(*) AS nrows FROM pq_valid"
             " WHERE ts_us >= %" PRId64 " AND ts_us < %" PRId64 " GROUP BY ALL",
             rt_lo, rt_hi);
    if ((rc = compare(p, "realtime_rows_per_day", pqs, "SELECT iid, b, nrows FROM v_pg_rt", "day",
                      (const char *const[]){"nrows", NULL}, err)) < 0)
        return rc;
    /* 2. realtime stats per intersection */
    snprintf(pqs, sizeof pqs,
             "SELECT iid, CAST(NULL AS BIGINT) AS b, avg(si) AS mean_si, min(si) AS min_si,"
             " max(si) AS max_si FROM pq_valid WHERE ts_us >= %" PRId64 " AND ts_us < %" PRId64
             " GROUP BY iid",
             rt_lo, rt_hi);
    if ((rc = compare(p, "realtime_stats", pqs,
                      "SELECT iid, CAST(NULL AS BIGINT) AS b, sum(s) / sum(nrows) AS mean_si,"
                      " min(mn) AS min_si, max(mx) AS max_si FROM v_pg_rt GROUP BY iid",
                      NULL, (const char *const[]){"mean_si", "min_si", "max_si", NULL}, err)) < 0)
        return rc;
    /* 3. realtime sample */
    if (cfg->sample > 0) {
        if ((rc = sample_rows(p, c, cfg, rt_lo, rt_hi, err)) < 0)
            return rc;
        if ((rc = compare(p, "realtime_sample", "SELECT * FROM v_sample",
                          "SELECT * FROM v_pg_sample", "minute", RT_FIELDS, err)) < 0)
            return rc;
    }
    /* 4. minutes per day (row counts of the hourly rollups) */
    snprintf(pqs, sizeof pqs,
             "SELECT iid, epoch_us(date_trunc('day', make_timestamp(hour_us))) AS b,"
             " CAST(sum(least(minutes, 60)) AS BIGINT) AS minutes FROM pq_hourly"
             " WHERE hour_us >= %" PRId64 " AND hour_us < %" PRId64 " GROUP BY ALL",
             hr_lo, hr_hi);
    if ((rc = compare(p, "minutes_per_day", pqs,
                      "SELECT iid, epoch_us(date_trunc('day', make_timestamp(b))) AS b,"
                      " CAST(sum(round(data_quality_score * 60)) AS BIGINT) AS minutes"
                      " FROM v_pg_hourly GROUP BY ALL",
                      "day", (const char *const[]){"minutes", NULL}, err)) < 0)
        return rc;
    /* 5. hourly rows */
    snprintf(pqs, sizeof pqs,
             "SELECT iid, hour_us AS b, avg_si, min_si, max_si, std_si, total_volume, avg_volume,"
             " high_risk_minutes, data_quality_score, " PG_SUBINDEX ", constants_ids,"
             " algorithm_versions FROM pq_hourly WHERE hour_us >= %" PRId64
             " AND hour_us < %" PRId64,
             hr_lo, hr_hi);
    if ((rc = compare(p, "hourly", pqs, "SELECT * FROM v_pg_hourly", "hour", HOURLY_FIELDS, err)) <
        0)
        return rc;
    /* 6. per intersection over the hourly range, minute-weighted */
    snprintf(pqs, sizeof pqs,
             "SELECT iid, CAST(NULL AS BIGINT) AS b, sum(si * bin_minutes) / sum(bin_minutes)"
             " AS mean_si, min(si) AS min_si, max(si) AS max_si FROM pq_valid"
             " WHERE epoch_us(date_trunc('hour', ts)) >= %" PRId64
             " AND epoch_us(date_trunc('hour', ts)) < %" PRId64 " GROUP BY iid",
             hr_lo, hr_hi);
    if ((rc = compare(p, "intersection_stats", pqs,
                      "SELECT iid, CAST(NULL AS BIGINT) AS b,"
                      " sum(avg_si * round(data_quality_score * 60))"
                      " / sum(round(data_quality_score * 60)) AS mean_si, min(min_si) AS min_si,"
                      " max(max_si) AS max_si FROM v_pg_hourly GROUP BY iid",
                      NULL, (const char *const[]){"mean_si", "min_si", "max_si", NULL}, err)) < 0)
        return rc;
    /* 7. daily rows, from the Parquet hourly aggregates (domain.md §5) */
    snprintf(
        pqs, sizeof pqs,
        "SELECT iid, epoch_us(date_trunc('day', make_timestamp(hour_us))) AS b,"
        " sum(avg_si * least(minutes, 60)) / sum(least(minutes, 60)) AS avg_si,"
        " min(min_si) AS min_si, max(max_si) AS max_si,"
        " CAST(sum(total_volume) AS BIGINT) AS total_volume,"
        " sum(total_volume) / sum(least(minutes, 60)) AS avg_volume,"
        " CAST(count(*) FILTER (WHERE avg_si > " TSI_RISK_HIGH_SQL
        ") AS INTEGER) AS high_risk_hours,"
        " CAST(first(hour(make_timestamp(hour_us)) ORDER BY avg_si DESC,"
        " hour(make_timestamp(hour_us))) AS INTEGER) AS peak_hour, max(avg_si) AS peak_si,"
        /* each sub-index weighted by its own minute count (tsi_rollup_days) */
        " " PQ_DAY_MEAN("vru_index") ", " PQ_DAY_MEAN(
            "vru_index_eb") ","
                            " " PQ_DAY_MEAN(
                                "vru_si") ", min(min_vru_si) AS min_vru_si,"
                                          " max(max_vru_si) AS max_vru_si, " PQ_DAY_MEAN(
                                              "vehicle_index") ","
                                                               " " PQ_DAY_MEAN("vehicle_index_eb") ", " PQ_DAY_MEAN(
                                                                   "vehicle_si") ","
                                                                                 " min(min_vehicle_"
                                                                                 "si) AS "
                                                                                 "min_vehicle_si, "
                                                                                 "max(max_vehicle_"
                                                                                 "si) AS "
                                                                                 "max_vehicle_si"
                                                                                 " FROM pq_hourly "
                                                                                 "WHERE hour_us >= "
                                                                                 "%" PRId64
                                                                                 " AND hour_us < "
                                                                                 "%" PRId64
                                                                                 " GROUP BY ALL",
        dy_lo, dy_hi);
    /* the day's provenance: the union of its minutes' (as the union of its hours') */
    snprintf(q, sizeof q,
             "SELECT d.*, coalesce(v.constants_ids, '{}') AS constants_ids,"
             " coalesce(v.algorithm_versions, '{}') AS algorithm_versions FROM (%s) d LEFT JOIN ("
             "SELECT iid, epoch_us(date_trunc('day', ts)) AS b,"
             " '{' || coalesce(array_to_string(list_sort(list_distinct(list(constants_id))),"
             " ','), '') || '}' AS constants_ids,"
             " '{' || coalesce(array_to_string(list_sort(list_distinct("
             "list(algorithm_version))), ','), '') || '}' AS algorithm_versions"
             " FROM pq_valid WHERE ts_us >= %" PRId64 " AND ts_us < %" PRId64
             " GROUP BY ALL) v USING (iid, b)",
             pqs, dy_lo, dy_hi);
    if ((rc = compare(p, "daily", q, "SELECT * FROM v_pg_daily", "day", DAILY_FIELDS, err)) < 0)
        return rc;

    /* order of the report */
    tsi_buf o = TSI_BUF_INIT;
    tsi_buf_puts(&o,
                 "ALTER TABLE v_issue ADD COLUMN ord INTEGER; UPDATE v_issue SET ord = CASE chk");
    for (int i = 0; CHECK_ORDER[i]; i++)
        tsi_buf_printf(&o, " WHEN '%s' THEN %d", CHECK_ORDER[i], i);
    tsi_buf_puts(&o, " END");
    rc = tsi_pqr_exec(p, tsi_buf_cstr(&o), err);
    tsi_buf_free(&o);
    if (rc < 0)
        return rc;

    check_row rows[16];
    int n = 0;
    if ((rc = load_checks(p, rows, &n, err)) < 0)
        return rc;
    for (int i = 0; i < n; i++) {
        res->compared += rows[i].compared;
        res->mismatches += rows[i].mismatches;
    }
    write_report(p, cfg, out, rows, n, res);
    fflush(out);
    return 0;
}

/* --------------------------------------------------------------- the command -- */

int tsi_validate_check(const tsi_opts *o)
{
    tsi_error e = {0};
    PGconn *c = NULL;
    tsi_pqr p = {0};
    FILE *out = stdout;
    int status = 1;
    int64_t since, until;
    const char *s_since = tsi_opts_str(o, "since"), *s_until = tsi_opts_str(o, "until");
    if (!s_since || !s_until) {
        fprintf(stderr, "tsi validate: --since and --until are required (UTC dates)\n");
        return 2;
    }
    if (tsi_pqr_parse_time(s_since, &since, &e) < 0 ||
        tsi_pqr_parse_time(s_until, &until, &e) < 0) {
        fprintf(stderr, "tsi validate: %s: %s\n", e.message, e.detail);
        return 2;
    }
    until = until / US_DAY * US_DAY + US_DAY; /* inclusive date */
    if (until <= since) {
        fprintf(stderr, "tsi validate: --until is before --since\n");
        return 2;
    }
    char from[4096];
    if (tsi_opts_str(o, "from"))
        snprintf(from, sizeof from, "%s", tsi_opts_str(o, "from"));
    else
        tsi_archive_root(from, sizeof from);
    const char *fmt = tsi_opts_str(o, "format");
    tsi_validate_cfg cfg = {
        .from = from,
        .since_us = since,
        .until_us = until,
        .sample = (int)tsi_opts_int(o, "sample"),
        .seed =
            tsi_opts_isset(o, "seed") ? (uint32_t)tsi_opts_int(o, "seed") : (uint32_t)time(NULL),
        .tolerance = tsi_opts_double(o, "tolerance"),
        .max_issues = (int)tsi_opts_int(o, "max-issues"),
        .format = strcmp(fmt, "json") == 0   ? TSI_VFMT_JSON
                  : strcmp(fmt, "html") == 0 ? TSI_VFMT_HTML
                                             : TSI_VFMT_TEXT,
    };
    const char *bins = tsi_opts_str(o, "bin-minutes");
    int bin = strcmp(bins, "auto") == 0 ? 0 : atoi(bins);
    tsi_pqr_summary sum;
    if (!(c = tsi_db_connect(TSI_ROLE_READER, NULL, &e)))
        goto fail;
    if (tsi_validate_clock(c, (int)tsi_opts_int(o, "realtime-hours"),
                           (int)tsi_opts_int(o, "hourly-days"), &cfg.now_us, &cfg.rt_cut_us,
                           &cfg.hourly_cut_us, &e) < 0)
        goto fail;
    if (tsi_pqr_open(&p, &e) < 0 ||
        tsi_pqr_prepare(&p, from, since, until, cfg.now_us, bin, c, NULL, NULL, &sum, &e) < 0)
        goto fail;
    cfg.summary = &sum;
    if (tsi_opts_str(o, "output") && !(out = fopen(tsi_opts_str(o, "output"), "w"))) {
        tsi_error_set(&e, TSI_E_IO, "cannot write the report", "%s", tsi_opts_str(o, "output"));
        out = stdout;
        goto fail;
    }
    tsi_validate_result res;
    if (tsi_validate_run(&p, c, &cfg, out, &res, &e) < 0)
        goto fail;
    tsi_info("validate", "done compared=%" PRId64 " differences=%" PRId64 " result=%s",
             res.compared, res.mismatches, res.mismatches ? "mismatch" : "ok");
    status = res.mismatches ? 1 : 0;
    goto done;
fail:
    fprintf(stderr, "tsi validate: %s: %s\n", e.message, e.detail);
    status = 1;
done:
    if (out != stdout)
        fclose(out);
    tsi_pqr_close(&p);
    if (c)
        PQfinish(c);
    return status;
}
