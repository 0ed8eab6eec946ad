/* api/fallback.c — answers from the indices Parquet archive through DuckDB (FR-3's
 * graceful degradation, MR-1's --source parquet); see fallback.h.
 *
 * Files read: $archive/indices/YYYY/MM/DD/<file>.parquet of the days the request covers (the
 * realtime columns by name; other columns are ignored, so any writer's files work); names
 * come from the server's cache of intersections (names.h). Only paths found by listing our
 * own archive go into DuckDB's SQL text (quoted); request values are bound as
 * prepared-statement parameters. Each worker thread owns one DuckDB connection to the
 * server's in-memory database. Rows repeated across files (a minute flushed twice) count
 * once. Model provenance (v2's constants_set_ids / algorithm_versions) comes from the
 * files whose schema has its columns (written since migration 060); a bin with a minute
 * from an older file answers null (not known) for it. */
#include "api/fallback.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <duckdb.h>

#include "api/names.h"
#include "api/pool.h"
#include "api/state.h"
#include "base/tz.h"
#include "archive/indices.h"
#include "archive/pqfile.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "core/index.h"

static duckdb_connection *duck_conn(void)
{
    tsi_api *a = tsi_api_g;
    if (!a->duck_ok)
        return NULL;
    tsi_worker *w = tsi_api_worker();
    if (!w->dc_ok) {
        if (duckdb_connect(a->duck, &w->dc) == DuckDBError)
            return NULL;
        duckdb_result r;
        duckdb_query(w->dc, "SET TimeZone = 'UTC'", &r);
        duckdb_destroy_result(&r);
        w->dc_ok = true;
    }
    return &w->dc;
}

static int cmp_name(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    return strcmp(x ? x : "", y ? y : "");
}

/* "[...]": the quoted paths of the index rows files of [t0, t1), sorted per day; returns
 * their number */
static int files_list(tsi_buf *b, int64_t t0, int64_t t1)
{
    tsi_api *a = tsi_api_g;
    int n = 0;
    tsi_buf_putc(b, '[');
    for (int64_t day = t0 - t0 % 86400; day < t1; day += 86400) {
        char dir[4200];
        tsi_indices_day_dir(dir, sizeof dir, a->archive_dir, day);
        DIR *d = opendir(dir);
        struct dirent *e;
        char **names = NULL;
        size_t nn = 0, cap = 0;
        while (d && (e = readdir(d)) != NULL) { /* the index rows files only, sorted */
            if (!tsi_indices_rows_file(e->d_name))
                continue;
            if (nn == cap) {
                char **g = realloc(names, sizeof *g * (cap = cap ? cap * 2 : 16));
                if (!g)
                    break;
                names = g;
            }
            names[nn++] = strdup(e->d_name);
        }
        if (d)
            closedir(d);
        if (nn > 1)
            qsort(names, nn, sizeof *names, cmp_name);
        for (size_t i = 0; i < nn; i++) {
            if (names[i]) {
                char path[4500];
                snprintf(path, sizeof path, "%s/%s", dir, names[i]);
                if (n++)
                    tsi_buf_putc(b, ',');
                tsi_sql_quote(b, path);
            }
            free(names[i]);
        }
        free(names);
    }
    tsi_buf_putc(b, ']');
    return n;
}

/* Of the files of list (files_list's text), those whose schema has the model provenance
 * columns (constants_id and algorithm_version: files written since migration 060; older
 * ones lack them), as a quoted SQL list "'a','b'" into in; returns their number, or -1
 * when DuckDB cannot read the schemas. */
static int prov_files(duckdb_connection con, const char *list, tsi_buf *in)
{
    tsi_buf q = TSI_BUF_INIT;
    tsi_buf_printf(&q,
                   "SELECT file_name FROM parquet_schema(%s) WHERE name IN ('constants_id',"
                   " 'algorithm_version') GROUP BY file_name HAVING count(DISTINCT name) = 2"
                   " ORDER BY file_name",
                   list);
    duckdb_result res;
    int n = -1;
    if (duckdb_query(con, q.data, &res) == DuckDBSuccess) {
        idx_t k = duckdb_row_count(&res);
        for (idx_t i = 0; i < k; i++) {
            char *f = duckdb_value_varchar(&res, 0, i);
            if (i)
                tsi_buf_putc(in, ',');
            tsi_sql_quote(in, f ? f : "");
            duckdb_free(f);
        }
        n = (int)k;
    }
    duckdb_destroy_result(&res);
    tsi_buf_free(&q);
    return n;
}

static int duck_fail(tsi_req *r, const char *what, const char *msg)
{
    tsi_err("api", "req=%s parquet %s failed: %s", r->id, what, msg ? msg : "?");
    tsi_api_error(r, 503, "archive_unavailable", NULL,
                  "the Parquet archive could not be read (request %s)", r->id);
    return -1;
}

/* the deduplicated minutes of [t0, t1) as a subquery text, or 0 files (-1: the files'
 * schemas could not be read). Besides the indices it has constants_id, algorithm_version
 * and has_prov: whether the row's file has the provenance columns (a NULL constants_id
 * there means the built-in defaults; in an older file, not known). */
static int minutes_sql(duckdb_connection con, tsi_buf *sql, int64_t t0, int64_t t1, bool one)
{
    tsi_buf list = TSI_BUF_INIT, files = TSI_BUF_INIT, in = TSI_BUF_INIT;
    int n = files_list(&list, t0, t1);
    int np = n > 0 ? prov_files(con, list.data, &in) : 0;
    if (np < 0)
        n = -1;
    tsi_buf_printf(&files, "read_parquet(%s, union_by_name = true, filename = true)", list.data);
    /* a minute in several files (flushed twice, reprocessed): the newest file's row wins —
     * the one whose name carries the latest flush stamp (<kind>_<YYYYMMDDTHHMMSSZ>_<seq>,
     * archive/pqfile.h), then the greatest name; a file without a stamp (tsi seed's) is
     * the oldest */
    tsi_buf_puts(sql, "(SELECT intersection_id, \"timestamp\", combined_index, combined_index_eb,"
                      " vru_index, vru_index_eb, vehicle_index, vehicle_index_eb, traffic_volume,"
                      " vru_count, ");
    if (np > 0)
        tsi_buf_printf(sql, "constants_id, algorithm_version, filename IN (%s) AS has_prov FROM ",
                       in.data);
    else
        tsi_buf_puts(sql, "CAST(NULL AS BIGINT) AS constants_id, CAST(NULL AS SMALLINT) AS"
                          " algorithm_version, false AS has_prov FROM ");
    tsi_buf_append(sql, files.data, files.len);
    tsi_buf_puts(sql,
                 " WHERE \"timestamp\" >= to_timestamp($1) AND \"timestamp\" < to_timestamp($2)");
    if (one)
        tsi_buf_puts(sql, " AND intersection_id = $3");
    tsi_buf_puts(sql, " QUALIFY row_number() OVER (PARTITION BY intersection_id, \"timestamp\""
                      " ORDER BY regexp_extract(filename, '_([0-9]{8}T[0-9]{6}Z)_', 1) DESC,"
                      " filename DESC) = 1) m");
    tsi_buf_free(&files);
    tsi_buf_free(&list);
    tsi_buf_free(&in);
    return n;
}

static duckdb_result *prep_run(tsi_req *r, duckdb_connection con, const char *sql, int64_t t0,
                               int64_t t1, int64_t iid, duckdb_result *res)
{
    duckdb_prepared_statement ps;
    if (duckdb_prepare(con, sql, &ps) == DuckDBError) {
        duck_fail(r, "prepare", duckdb_prepare_error(ps));
        duckdb_destroy_prepare(&ps);
        return NULL;
    }
    duckdb_bind_int64(ps, 1, t0);
    duckdb_bind_int64(ps, 2, t1);
    if (iid >= 0)
        duckdb_bind_int64(ps, 3, iid);
    if (duckdb_execute_prepared(ps, res) == DuckDBError) {
        duck_fail(r, "query", duckdb_result_error(res));
        duckdb_destroy_result(res);
        duckdb_destroy_prepare(&ps);
        return NULL;
    }
    duckdb_destroy_prepare(&ps);
    return res;
}

/* The model provenance of a bin's minutes as tsi_point's comma-separated text: the sorted
 * distinct non-NULL values ("" = none recorded), or NULL (not known) when a minute of the
 * bin comes from a file older than the provenance columns (minutes_sql's has_prov). */
#define PROV_LIST(col)                                                                             \
    "CASE WHEN bool_and(has_prov) THEN coalesce(array_to_string(list_sort(list_distinct("          \
    "list(" col "))), ','), '') END"

/* a PROV_LIST value: the text in the request's arena, or NULL */
static const char *prov_value(tsi_req *r, duckdb_result *res, idx_t c, idx_t i)
{
    if (duckdb_value_is_null(res, c, i))
        return NULL;
    char *v = duckdb_value_varchar(res, c, i);
    const char *s = tsi_arena_strdup(r->arena, v ? v : "");
    duckdb_free(v);
    return s;
}

static double dv(duckdb_result *res, idx_t c, idx_t i, bool *isnull)
{
    bool nul = duckdb_value_is_null(res, c, i);
    if (isnull)
        *isnull = nul;
    return nul ? NAN : duckdb_value_double(res, c, i);
}

int tsi_fb_latest(tsi_req *r, int64_t one, tsi_fb_cur **out, int *n)
{
    duckdb_connection *con = duck_conn();
    *out = NULL;
    *n = 0;
    r->data_source = "parquet";
    if (!con)
        return duck_fail(r, "open", "no DuckDB");
    /* the newest day with files, looking back a week */
    int64_t now = (int64_t)time(NULL);
    int64_t t1 = now - now % 86400 + 86400, t0 = t1 - 86400;
    tsi_buf sql = TSI_BUF_INIT;
    int found = 0;
    for (int back = 0; back < 7 && !found; back++) {
        tsi_buf_reset(&sql);
        tsi_buf_puts(&sql, "SELECT intersection_id, epoch(\"timestamp\")::DOUBLE, combined_index,"
                           " combined_index_eb, vru_index, vru_index_eb, vehicle_index,"
                           " vehicle_index_eb, traffic_volume, vru_count FROM ");
        found = minutes_sql(*con, &sql, t0 - 86400, t1, one >= 0);
        if (found < 0) {
            tsi_buf_free(&sql);
            return duck_fail(r, "schema", "the files' schemas could not be read");
        }
        if (!found) {
            t1 -= 86400;
            t0 -= 86400;
        }
    }
    if (!found) {
        tsi_buf_free(&sql);
        return 0;
    }
    tsi_buf_puts(&sql, " QUALIFY row_number() OVER (PARTITION BY intersection_id ORDER BY"
                       " \"timestamp\" DESC) = 1 ORDER BY intersection_id");
    duckdb_result res;
    if (!prep_run(r, *con, sql.data, t0 - 86400, t1, one, &res)) {
        tsi_buf_free(&sql);
        return -1;
    }
    tsi_buf_free(&sql);
    idx_t k = duckdb_row_count(&res);
    tsi_fb_cur *c = tsi_arena_calloc(r->arena, sizeof *c * (size_t)(k ? k : 1));
    for (idx_t i = 0; i < k; i++) {
        c[i].iid = duckdb_value_int64(&res, 0, i);
        c[i].ts = dv(&res, 1, i, NULL);
        c[i].comb = dv(&res, 2, i, NULL);
        c[i].eb = dv(&res, 3, i, NULL);
        c[i].vru = dv(&res, 4, i, NULL);
        c[i].vru_eb = dv(&res, 5, i, NULL);
        c[i].veh = dv(&res, 6, i, NULL);
        c[i].veh_eb = dv(&res, 7, i, NULL);
        c[i].vol = duckdb_value_int64(&res, 8, i);
        c[i].vru_count = duckdb_value_int64(&res, 9, i);
    }
    duckdb_destroy_result(&res);
    *out = c;
    *n = (int)k;
    return 0;
}

void tsi_fb_write_item(tsi_jsonw *w, const tsi_dialect *dl, int64_t iid, const tsi_fb_cur *c,
                       const char *name, double lat, double lon)
{
    static const tsi_fb_cur none = {
        .ts = NAN, .comb = NAN, .eb = NAN, .vru = NAN, .vru_eb = NAN, .veh = NAN, .veh_eb = NAN};
    bool has = c != NULL;
    if (!c)
        c = &none;
    double si = isnan(c->eb) ? c->comb : c->eb;
    tsi_jsonw_kv_int(w, "intersection_id", iid);
    tsi_jsonw_kv_str(w, "intersection_name", name);
    tsi_dialect_kv_float(dl, w, "safety_index", si);
    tsi_jsonw_key(w, "traffic_volume");
    if (has)
        tsi_jsonw_int(w, c->vol);
    else
        tsi_jsonw_null(w);
    tsi_dialect_kv_float(dl, w, "latitude", lat);
    tsi_dialect_kv_float(dl, w, "longitude", lon);
    char ts[TSI_DIALECT_TIME_MAX];
    if (has) {
        tsi_dialect_time(dl, ts, (int64_t)c->ts);
        tsi_jsonw_kv_str(w, "timestamp", ts);
        tsi_jsonw_kv_str(w, "risk_level", tsi_risk_level(si));
    } else {
        tsi_jsonw_kv_null(w, "timestamp");
        tsi_jsonw_kv_null(w, "risk_level");
    }
    tsi_dialect_kv_float(dl, w, "combined_index", c->comb);
    tsi_dialect_kv_float(dl, w, "combined_index_eb", c->eb);
    tsi_dialect_kv_float(dl, w, "vru_index", c->vru);
    tsi_dialect_kv_float(dl, w, "vru_index_eb", c->vru_eb);
    tsi_dialect_kv_float(dl, w, "vehicle_index", c->veh);
    tsi_dialect_kv_float(dl, w, "vehicle_index_eb", c->veh_eb);
    tsi_jsonw_key(w, "vru_count");
    if (has)
        tsi_jsonw_int(w, c->vru_count);
    else
        tsi_jsonw_null(w);
    tsi_dialect_age(dl, w, has, has ? (int64_t)c->ts : 0, (int64_t)time(NULL),
                    tsi_api_g->stale_seconds);
}

int tsi_fb_index(tsi_req *r, int64_t one)
{
    tsi_fb_cur *c;
    int n;
    if (tsi_fb_latest(r, one, &c, &n) < 0)
        return 503;
    if (one >= 0 && n == 0)
        return 404;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    if (one < 0)
        tsi_jsonw_array(&w);
    for (int i = 0; i < n; i++) {
        char name[256];
        double lat = NAN, lon = NAN;
        if (!tsi_api_int_info(c[i].iid, name, sizeof name, &lat, &lon))
            snprintf(name, sizeof name, "Intersection %lld", (long long)c[i].iid);
        double si = isnan(c[i].eb) ? c[i].comb : c[i].eb;
        if (r->dl->index_complete && (isnan(si) || isnan(lat) || isnan(lon))) {
            if (one >= 0) /* v1's item has no Optional field */
                return 404;
            continue;
        }
        tsi_jsonw_object(&w);
        tsi_fb_write_item(&w, r->dl, c[i].iid, &c[i], name, lat, lon);
        tsi_jsonw_end(&w);
    }
    if (one < 0)
        tsi_jsonw_end(&w);
    r->status = 200;
    return 200;
}

int tsi_fb_series(tsi_req *r, int64_t iid, int64_t t0, int64_t t1, const char *agg, tsi_point **out,
                  int *n)
{
    duckdb_connection *con = duck_conn();
    *out = NULL;
    *n = 0;
    if (!con)
        return duck_fail(r, "open", "no DuckDB");
    const char *unit = strcmp(agg, "1min") == 0    ? "minute"
                       : strcmp(agg, "1hour") == 0 ? "hour"
                       : strcmp(agg, "1day") == 0  ? "day"
                       : strcmp(agg, "1week") == 0 ? "week"
                                                   : "month";
    tsi_buf sql = TSI_BUF_INIT;
    /* unit is one of our constants, never request text. Minutes and hours are UTC ones
     * (as on the PostgreSQL path); days, weeks and months are TSI_TIMEZONE's: truncated
     * in local wall time, then turned back into the instant of that local midnight. The
     * zone name is the validated configuration value, quoted. */
    bool local = !tsi_tz_utc() && unit[0] != 'm' && unit[0] != 'h';
    if (local) {
        tsi_buf q = TSI_BUF_INIT;
        tsi_sql_quote(&q, tsi_tz_name());
        tsi_buf_printf(&sql,
                       "SELECT epoch(timezone(%s, date_trunc('%s', timezone(%s,"
                       " \"timestamp\"))))::BIGINT AS b,",
                       q.data, unit, q.data);
        tsi_buf_free(&q);
    } else {
        tsi_buf_printf(&sql, "SELECT epoch(date_trunc('%s', \"timestamp\"))::BIGINT AS b,", unit);
    }
    tsi_buf_puts(&sql,
                 " avg(coalesce(combined_index_eb, combined_index)),"
                 " avg(coalesce(vru_index_eb, vru_index)),"
                 " avg(coalesce(vehicle_index_eb, vehicle_index)), sum(traffic_volume)::BIGINT,"
                 " epoch(min(\"timestamp\"))::BIGINT, intersection_id, " PROV_LIST(
                     "constants_id") ", " PROV_LIST("algorithm_version") " FROM ");
    int files = minutes_sql(*con, &sql, t0, t1, iid >= 0);
    if (files < 0) {
        tsi_buf_free(&sql);
        return duck_fail(r, "schema", "the files' schemas could not be read");
    }
    if (!files) {
        tsi_buf_free(&sql);
        return 0; /* nothing archived: a gap */
    }
    tsi_buf_puts(&sql, " GROUP BY intersection_id, 1 ORDER BY intersection_id, 1");
    duckdb_result res;
    if (!prep_run(r, *con, sql.data, t0, t1, iid, &res)) {
        tsi_buf_free(&sql);
        return -1;
    }
    tsi_buf_free(&sql);
    idx_t k = duckdb_row_count(&res);
    tsi_point *p = tsi_arena_calloc(r->arena, sizeof *p * (size_t)(k ? k : 1));
    for (idx_t i = 0; i < k; i++) {
        p[i].iid = duckdb_value_int64(&res, 6, i);
        p[i].ts = duckdb_value_int64(&res, 0, i);
        p[i].si = dv(&res, 1, i, NULL);
        p[i].vru = dv(&res, 2, i, NULL);
        p[i].veh = dv(&res, 3, i, NULL);
        p[i].vol = duckdb_value_int64(&res, 4, i);
        p[i].first = duckdb_value_int64(&res, 5, i);
        p[i].cids = prov_value(r, &res, 7, i);
        p[i].avers = prov_value(r, &res, 8, i);
    }
    duckdb_destroy_result(&res);
    *out = p;
    *n = (int)k;
    return 0;
}

int tsi_fb_stats_many(tsi_req *r, int64_t iid, int64_t t0, int64_t t1, tsi_stats **out, int *n)
{
    duckdb_connection *con = duck_conn();
    *out = NULL;
    *n = 0;
    if (!con)
        return duck_fail(r, "open", "no DuckDB");
    tsi_buf sql = TSI_BUF_INIT;
    tsi_buf_puts(
        &sql, "SELECT intersection_id, count(*)::DOUBLE, avg(si), min(si), max(si),"
              " stddev_samp(si), coalesce(sum(traffic_volume), 0)::DOUBLE,"
              " count(*) FILTER (WHERE si > " TSI_RISK_HIGH_SQL ")::DOUBLE, epoch(min(ts))::DOUBLE,"
              " epoch(max(ts))::DOUBLE, avg(vru), min(vru), max(vru), avg(veh),"
              " min(veh), max(veh), " PROV_LIST("constants_id") ", " PROV_LIST(
                  "algorithm_version") " FROM (SELECT intersection_id,"
                                       " \"timestamp\" AS ts,"
                                       " coalesce(combined_index_eb, combined_index) AS si,"
                                       " traffic_volume,"
                                       " coalesce(vru_index_eb, vru_index) AS vru,"
                                       " coalesce(vehicle_index_eb, vehicle_index) AS veh,"
                                       " constants_id, algorithm_version, has_prov FROM ");
    int files = minutes_sql(*con, &sql, t0, t1, iid >= 0);
    tsi_buf_puts(&sql, ") q GROUP BY intersection_id ORDER BY intersection_id");
    if (files < 0) {
        tsi_buf_free(&sql);
        return duck_fail(r, "schema", "the files' schemas could not be read");
    }
    if (!files) {
        tsi_buf_free(&sql);
        return 0; /* nothing archived in the window: no data */
    }
    duckdb_result res;
    if (!prep_run(r, *con, sql.data, t0, t1, iid, &res)) {
        tsi_buf_free(&sql);
        return -1;
    }
    tsi_buf_free(&sql);
    idx_t k = duckdb_row_count(&res);
    tsi_stats *s = tsi_arena_calloc(r->arena, sizeof *s * (size_t)(k ? k : 1));
    for (idx_t i = 0; i < k; i++) {
        s[i].iid = duckdb_value_int64(&res, 0, i);
        s[i].n = dv(&res, 1, i, NULL);
        s[i].avg = dv(&res, 2, i, NULL);
        s[i].min = dv(&res, 3, i, NULL);
        s[i].max = dv(&res, 4, i, NULL);
        s[i].std = dv(&res, 5, i, NULL);
        s[i].vol = dv(&res, 6, i, NULL);
        s[i].hr = dv(&res, 7, i, NULL);
        s[i].first = dv(&res, 8, i, NULL);
        s[i].last = dv(&res, 9, i, NULL);
        /* the sub-indices from the minutes; the provenance where every minute's file has
         * its columns, else not known (null) */
        s[i].has_sub = true;
        s[i].cids = prov_value(r, &res, 16, i);
        s[i].avers = prov_value(r, &res, 17, i);
        double *sub[6] = {&s[i].vru_avg, &s[i].vru_min, &s[i].vru_max,
                          &s[i].veh_avg, &s[i].veh_min, &s[i].veh_max};
        for (int j = 0; j < 6; j++)
            *sub[j] = dv(&res, 10 + (idx_t)j, i, NULL);
    }
    duckdb_destroy_result(&res);
    *out = s;
    *n = (int)k;
    return 0;
}

int tsi_fb_stats(tsi_req *r, int64_t iid, int64_t t0, int64_t t1, tsi_stats *s)
{
    memset(s, 0, sizeof *s);
    s->iid = iid;
    s->first = s->last = NAN;
    tsi_stats *all;
    int n;
    if (tsi_fb_stats_many(r, iid, t0, t1, &all, &n) < 0)
        return -1;
    if (n == 1)
        *s = all[0];
    return 0;
}
