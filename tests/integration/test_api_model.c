/* Integration: the sub-indices and the model provenance through the API (issue 26).
 * Two days of minutes (test_jobs_util.h jt_two_days: constants set 7, then set 9 from 30 h
 * in), rolled up by the jobs; then `tsi serve` over HTTP:
 *   - v2 and v1 history at 1hour and 1day: vru_index / vehicle_index of every point equal
 *     the mean of its minutes (1e-9), from the hourly and daily rollups;
 *   - v2 points carry constants_set_ids / algorithm_versions: the hours of set 7 say [7],
 *     those of set 9 say [9]; the day across the boundary says [7, 9];
 *   - v2 stats (and compare) carry the sub-indices' mean/min/max over the range and the
 *     provenance of its minutes; v1 stats keep the original contract's fields only;
 *   - the Parquet path (--source parquet) answers the provenance from files that have its
 *     columns, null for bins with a minute from an older file;
 *   - a bin with a part rolled before migration 060 (sub-index counts NULL) answers null,
 *     never a mean over part of it. */
#include "test_jobs_util.h"

#include "test_api_util.h"

#include "duck_util.h"

static jt_mrow mrows[6000];
static size_t nm;
static api_srv srv;
static PGconn *owner;
static char db[64];
static long long day; /* the first of the two days (UTC midnight, epoch seconds) */
static char tmpdir[512];

static int setup(void **state)
{
    (void)state;
    th_db_create(db);
    owner = th_connect("tsi_owner");
    jt_intersections(owner, 2);
    PGconn *w = th_connect("tsi_writer");
    day = ((long long)time(NULL) / 86400) * 86400 - 2 * 86400;
    jt_seed = 4242;
    nm = jt_two_days(mrows, sizeof mrows / sizeof mrows[0], day);
    jt_insert_m(w, mrows, nm);
    PQfinish(w);
    char at[64];
    jt_run_ok("daily", jt_at(at, sizeof at, day + 2 * 86400), NULL, NULL);
    const char *tmp = getenv("TSI_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/api-model.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmpdir))
        fail_msg("mkdtemp: %s", strerror(errno));
    static char env1[600];
    snprintf(env1, sizeof env1, "TSI_ARCHIVE_DIR=%s/archive", tmpdir);
    const char *env[] = {env1, NULL};
    const char *args[] = {"--threads", "2", NULL};
    srv_start(&srv, args, env);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    api_teardown(&srv, owner, db, tmpdir);
    return 0;
}

/* the text of a JSON array of integers at key, e.g. "7,9"; "null" for null */
static void jlist(jdoc *j, int obj, const char *key, char *out, size_t len)
{
    int t = tsi_json_get(&j->d, obj, key);
    if (t < 0)
        fail_msg("key %s missing", key);
    if (tsi_json_is_null(&j->d, t)) {
        snprintf(out, len, "null");
        return;
    }
    out[0] = '\0';
    int n = jcount(j, t);
    for (int k = 0; k < n; k++) {
        double v;
        if (tsi_json_num(&j->d, jat(j, t, k), &v) < 0)
            fail_msg("%s[%d] is not a number", key, k);
        size_t l = strlen(out);
        snprintf(out + l, len - l, "%s%lld", k ? "," : "", (long long)v);
    }
}

/* every point of one intersection's history at agg (1hour or 1day) against its minutes */
static void check_history(const char *version, long long iid, const char *agg)
{
    char path[256], a[16], b[16];
    day_str(a, sizeof a, day / 86400);
    day_str(b, sizeof b, day / 86400 + 1);
    snprintf(path, sizeof path,
             "/api/%s/safety/history/%lld?start_date=%s&end_date=%s"
             "&aggregation=%s",
             version, iid, a, b, agg);
    resp r;
    jdoc j;
    get_json(srv.port, path, &r, &j);
    int arr = tsi_json_get(&j.d, 0, "data_points");
    int n = jcount(&j, arr);
    long long step = strcmp(agg, "1hour") == 0 ? 3600 : 86400;
    assert_int_equal(n, (int)(2 * 86400 / step));
    bool v2 = strcmp(version, "v2") == 0;
    for (int k = 0; k < n; k++) {
        int pt = jat(&j, arr, k);
        long long lo = day + k * step, hi = lo + step;
        jt_stats vru = jt_sub_stats(mrows, nm, iid, 0, lo, hi);
        jt_stats veh = jt_sub_stats(mrows, nm, iid, 1, lo, hi);
        assert_near(jnum(&j, pt, "vru_index"), vru.mean, 1e-9, path);
        assert_near(jnum(&j, pt, "vehicle_index"), veh.mean, 1e-9, path);
        char ids[64], vers[64];
        if (!v2) {
            assert_true(tsi_json_get(&j.d, pt, "constants_set_ids") < 0);
            continue;
        }
        jlist(&j, pt, "constants_set_ids", ids, sizeof ids);
        jlist(&j, pt, "algorithm_versions", vers, sizeof vers);
        const char *want = hi <= day + 30 * 3600 ? "7" : lo >= day + 30 * 3600 ? "9" : "7,9";
        if (strcmp(ids, want) != 0)
            fail_msg("%s point %d: constants_set_ids [%s], expected [%s]", path, k, ids, want);
        assert_string_equal(vers, "1");
    }
    resp_free(&r);
    jfree(&j);
}

static void test_history_subindices_and_provenance(void **state)
{
    (void)state;
    for (long long iid = 1; iid <= 2; iid++) {
        check_history("v2", iid, "1hour");
        check_history("v2", iid, "1day");
        check_history("v1", iid, "1hour");
        check_history("v1", iid, "1day");
    }
}

static void test_stats_and_compare(void **state)
{
    (void)state;
    char path[256], a[16], b[16], ids[64];
    day_str(a, sizeof a, day / 86400);
    day_str(b, sizeof b, day / 86400 + 1);
    snprintf(path, sizeof path, "/api/v2/safety/history/1/stats?start_date=%s&end_date=%s", a, b);
    resp r;
    jdoc j;
    get_json(srv.port, path, &r, &j);
    jt_stats vru = jt_sub_stats(mrows, nm, 1, 0, day, day + 2 * 86400);
    jt_stats veh = jt_sub_stats(mrows, nm, 1, 1, day, day + 2 * 86400);
    assert_near(jnum(&j, 0, "avg_vru_index"), vru.mean, 1e-9, path);
    assert_near(jnum(&j, 0, "min_vru_index"), vru.min, 1e-9, path);
    assert_near(jnum(&j, 0, "max_vru_index"), vru.max, 1e-9, path);
    assert_near(jnum(&j, 0, "avg_vehicle_index"), veh.mean, 1e-9, path);
    assert_near(jnum(&j, 0, "min_vehicle_index"), veh.min, 1e-9, path);
    assert_near(jnum(&j, 0, "max_vehicle_index"), veh.max, 1e-9, path);
    jlist(&j, 0, "constants_set_ids", ids, sizeof ids);
    assert_string_equal(ids, "7,9");
    jlist(&j, 0, "algorithm_versions", ids, sizeof ids);
    assert_string_equal(ids, "1");
    resp_free(&r);
    jfree(&j);

    /* v1 stats: the original contract's fields only */
    snprintf(path, sizeof path, "/api/v1/safety/history/1/stats?start_date=%s&end_date=%s", a, b);
    get_json(srv.port, path, &r, &j);
    assert_true(tsi_json_get(&j.d, 0, "avg_vru_index") < 0);
    assert_true(tsi_json_get(&j.d, 0, "constants_set_ids") < 0);
    resp_free(&r);
    jfree(&j);

    /* compare: the same statistics side by side */
    snprintf(path, sizeof path, "/api/v2/safety/compare?ids=1,2&start_date=%s&end_date=%s", a, b);
    get_json(srv.port, path, &r, &j);
    int found = 0;
    for (int t = 1; t < j.d.ntok; t++) {
        int k = tsi_json_get(&j.d, t, "avg_vehicle_index");
        if (k < 0 || j.d.tok[t].type != TSI_JSON_OBJECT)
            continue;
        long long iid = (long long)jnum(&j, t, "intersection_id");
        jt_stats want = jt_sub_stats(mrows, nm, iid, 1, day, day + 2 * 86400);
        assert_near(jnum(&j, t, "avg_vehicle_index"), want.mean, 1e-9, path);
        found++;
    }
    assert_int_equal(found, 2);
    resp_free(&r);
    jfree(&j);
}

static void test_bins_rolled_before_060_have_none(void **state)
{
    (void)state;
    /* intersection 2's hourly rows of the first day as a rollup from before migration 060
     * left them: sub-index counts unknown; its daily row of that day too */
    th_sqlf(owner,
            "UPDATE safety_indices_hourly SET n_vru_si = NULL, n_vehicle_si = NULL,"
            " avg_vru_si = NULL, avg_vehicle_si = NULL WHERE intersection_id = 2 AND"
            " hour_timestamp < to_timestamp(%lld) + interval '6 hours'",
            day);
    th_sqlf(owner,
            "UPDATE safety_indices_daily SET n_vru_si = NULL, n_vehicle_si = NULL,"
            " avg_vru_si = NULL, avg_vehicle_si = NULL WHERE intersection_id = 2 AND"
            " date = (to_timestamp(%lld) AT TIME ZONE 'UTC')::date",
            day);
    char path[256], a[16];
    day_str(a, sizeof a, day / 86400);
    snprintf(path, sizeof path,
             "/api/v2/safety/history/2?start_date=%s&end_date=%s&aggregation=1hour", a, a);
    resp r;
    jdoc j;
    get_json(srv.port, path, &r, &j);
    int arr = tsi_json_get(&j.d, 0, "data_points");
    assert_true(isnan(jnum(&j, jat(&j, arr, 0), "vru_index")));
    assert_false(isnan(jnum(&j, jat(&j, arr, 0), "safety_index")));
    jt_stats later = jt_sub_stats(mrows, nm, 2, 0, day + 6 * 3600, day + 7 * 3600);
    assert_near(jnum(&j, jat(&j, arr, 6), "vru_index"), later.mean, 1e-9, path);
    resp_free(&r);
    jfree(&j);
    /* a month bin over that day: null sub-indices, not a mean over part of it */
    snprintf(path, sizeof path,
             "/api/v2/safety/history/2?start_date=%s&end_date=%s&aggregation=1month", a, a);
    get_json(srv.port, path, &r, &j);
    arr = tsi_json_get(&j.d, 0, "data_points");
    assert_true(isnan(jnum(&j, jat(&j, arr, 0), "vehicle_index")));
    resp_free(&r);
    jfree(&j);
    snprintf(path, sizeof path, "/api/v2/safety/history/2/stats?start_date=%s&end_date=%s", a, a);
    get_json(srv.port, path, &r, &j);
    assert_true(isnan(jnum(&j, 0, "avg_vru_index")));
    assert_false(isnan(jnum(&j, 0, "avg_safety_index")));
    resp_free(&r);
    jfree(&j);
}

/* the archive's day file of `d` (UTC midnight) for --source parquet: the minutes of mrows
 * in [d, d + 1 day), with the provenance columns (as written since migration 060; those of
 * intersection 2 NULL: the built-in defaults) or without them (an older file) */
static void write_day_file(duckdb_connection con, long long d, bool prov)
{
    char dir[700], cmd[800];
    time_t t = (time_t)d;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(dir, sizeof dir, "%s/archive/indices/%04d/%02d/%02d", tmpdir, tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    duck_query(con,
               "CREATE OR REPLACE TABLE m (intersection_id BIGINT, \"timestamp\" TIMESTAMPTZ,"
               " combined_index DOUBLE, combined_index_eb DOUBLE, vru_index DOUBLE,"
               " vru_index_eb DOUBLE, vehicle_index DOUBLE, vehicle_index_eb DOUBLE,"
               " traffic_volume INTEGER, vru_count INTEGER, constants_id BIGINT,"
               " algorithm_version SMALLINT)",
               NULL);
    tsi_buf b = TSI_BUF_INIT;
    size_t k = 0;
    for (size_t i = 0; i < nm; i++) {
        const jt_mrow *r = &mrows[i];
        if (r->ts < d || r->ts >= d + 86400)
            continue;
        if (k % 400 == 0) {
            if (k)
                duck_query(con, tsi_buf_cstr(&b), NULL);
            tsi_buf_reset(&b);
            tsi_buf_puts(&b, "INSERT INTO m VALUES ");
        } else {
            tsi_buf_putc(&b, ',');
        }
        k++;
        tsi_buf_printf(&b, "(%lld, to_timestamp(%lld)", r->iid, r->ts);
        const double v[6] = {r->raw, r->eb, r->vru, r->vru_eb, r->veh, r->veh_eb};
        for (int x = 0; x < 6; x++) {
            tsi_buf_puts(&b, ", ");
            jt_num(&b, v[x]);
        }
        if (r->iid == 2)
            tsi_buf_printf(&b, ", %d, 0, NULL, %d)", r->vol, r->ver);
        else
            tsi_buf_printf(&b, ", %d, 0, %lld, %d)", r->vol, r->cid, r->ver);
    }
    assert_true(k > 0);
    duck_query(con, tsi_buf_cstr(&b), NULL);
    tsi_buf_reset(&b);
    tsi_buf_printf(&b,
                   "COPY (SELECT * %s FROM m) TO '%s/indices_20260101T000000Z_0.parquet'"
                   " (FORMAT parquet)",
                   prov ? "" : "EXCLUDE (constants_id, algorithm_version)", dir);
    duck_query(con, tsi_buf_cstr(&b), NULL);
    tsi_buf_free(&b);
}

/* The Parquet path (--source parquet) answers the model provenance from the files that
 * have its columns, and null (not known) only for bins with a minute from an older file:
 * the first day's file has them, the second day's does not. */
static void test_parquet_provenance(void **state)
{
    (void)state;
    duckdb_database ddb;
    duckdb_connection con;
    assert_int_equal(duckdb_open(NULL, &ddb), DuckDBSuccess);
    assert_int_equal(duckdb_connect(ddb, &con), DuckDBSuccess);
    write_day_file(con, day, true);
    write_day_file(con, day + 86400, false);
    /* the intersections the server knows without PostgreSQL (api/names.c) */
    PGresult *q = PQexec(owner, "SELECT string_agg(format('(%s, %L, %s, %s)', id, name,"
                                " latitude, longitude), ',') FROM intersections");
    assert_int_equal(PQresultStatus(q), PGRES_TUPLES_OK);
    tsi_buf sql = TSI_BUF_INIT;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/archive/intersections'", tmpdir);
    assert_int_equal(system(cmd), 0);
    tsi_buf_printf(&sql,
                   "COPY (SELECT * FROM (VALUES %s) v(id, name, latitude, longitude)) TO"
                   " '%s/archive/intersections/intersections.parquet' (FORMAT parquet)",
                   PQgetvalue(q, 0, 0), tmpdir);
    PQclear(q);
    duck_query(con, tsi_buf_cstr(&sql), NULL);
    tsi_buf_free(&sql);
    duckdb_disconnect(&con);
    duckdb_close(&ddb);
    static char env1[600];
    snprintf(env1, sizeof env1, "TSI_ARCHIVE_DIR=%s/archive", tmpdir);
    const char *env[] = {env1, NULL};
    const char *args[] = {"--threads", "2", "--source", "parquet", NULL};
    api_srv ps;
    srv_start(&ps, args, env);

    char path[256], a[16], b[16], ids[64], vers[64];
    day_str(a, sizeof a, day / 86400);
    day_str(b, sizeof b, day / 86400 + 1);
    static const char *const aggs[] = {"1hour", "1day"};
    for (long long iid = 1; iid <= 2; iid++)
        for (int g = 0; g < 2; g++) {
            snprintf(path, sizeof path,
                     "/api/v2/safety/history/%lld?start_date=%s&end_date=%s&aggregation=%s", iid, a,
                     b, aggs[g]);
            resp r;
            jdoc j;
            get_json(ps.port, path, &r, &j);
            char src[32] = "";
            resp_header(&r, "X-Data-Source", src, sizeof src);
            assert_string_equal(src, "parquet");
            int arr = tsi_json_get(&j.d, 0, "data_points");
            long long step = g == 0 ? 3600 : 86400;
            int n = jcount(&j, arr);
            assert_int_equal(n, (int)(2 * 86400 / step));
            for (int k = 0; k < n; k++) {
                int pt = jat(&j, arr, k);
                long long lo = day + k * step, hi = lo + step;
                jt_stats vru = jt_sub_stats(mrows, nm, iid, 0, lo, hi);
                assert_near(jnum(&j, pt, "vru_index"), vru.mean, 1e-9, path);
                jlist(&j, pt, "constants_set_ids", ids, sizeof ids);
                jlist(&j, pt, "algorithm_versions", vers, sizeof vers);
                bool old = lo >= day + 86400; /* the second day: the file without columns */
                const char *want = old ? "null" : iid == 2 ? "" : "7";
                if (strcmp(ids, want) != 0)
                    fail_msg("%s point %d: constants_set_ids [%s], expected [%s]", path, k, ids,
                             want);
                assert_string_equal(vers, old ? "null" : "1");
            }
            resp_free(&r);
            jfree(&j);
        }
    /* stats: over the first day, its minutes' provenance; over both, not known */
    for (int both = 0; both < 2; both++) {
        snprintf(path, sizeof path, "/api/v2/safety/history/1/stats?start_date=%s&end_date=%s", a,
                 both ? b : a);
        resp r;
        jdoc j;
        get_json(ps.port, path, &r, &j);
        jlist(&j, 0, "constants_set_ids", ids, sizeof ids);
        jlist(&j, 0, "algorithm_versions", vers, sizeof vers);
        assert_string_equal(ids, both ? "null" : "7");
        assert_string_equal(vers, both ? "null" : "1");
        jt_stats vru = jt_sub_stats(mrows, nm, 1, 0, day, day + (both ? 2 : 1) * 86400);
        assert_near(jnum(&j, 0, "avg_vru_index"), vru.mean, 1e-9, path);
        resp_free(&r);
        jfree(&j);
    }
    assert_int_equal(srv_stop_clean(&ps), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_subindices_and_provenance),
        cmocka_unit_test(test_stats_and_compare),
        cmocka_unit_test(test_parquet_provenance),
        cmocka_unit_test(test_bins_rolled_before_060_have_none),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
