/* Integration tests of `tsi serve` (issue 13) against the harness's PostgreSQL: every
 * endpoint checked against expectations the test computes itself from the rows it
 * inserted (minute rows kept in a side table before retention removes them, aggregated
 * by plain SQL; spatial hits by haversine), the bad-input table of every parameter,
 * gaps, date edges, gzip, CORS, request ids, static files, metrics, 50 concurrent
 * clients, SIGTERM drain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/queries.h"
#include "base/proc.h"
#include "test_api_util.h"

static char db[64];
static api_srv srv;
static PGconn *owner;
static char webdir[256];
static long long today; /* UTC day number */

static const char SETUP_SQL[] =
    "SET TIME ZONE 'UTC';"
    "INSERT INTO intersections (id, name, latitude, longitude, geometry, lane_count, metadata)"
    " VALUES (101, 'Main St & \"O''Brien\" Ave — Üñî', 38.87, -77.27,"
    "         ST_SetSRID(ST_MakePoint(-77.27, 38.87), 4326), 4, '{\"source\":\"test\"}'),"
    "        (102, 'Second & Elm', 38.88, -77.26, ST_SetSRID(ST_MakePoint(-77.26, 38.88), 4326), 2,"
    "         '{}'),"
    "        (103, 'No data yet', 38.89, -77.25, ST_SetSRID(ST_MakePoint(-77.25, 38.89), 4326), 2,"
    "         '{}'),"
    /* antimeridian and poles */
    "        (201, 'AM east', 0.0005, 179.9995, ST_SetSRID(ST_MakePoint(179.9995, 0.0005), 4326),"
    "         1, '{}'),"
    "        (202, 'AM west', 0.0005, -179.9995, ST_SetSRID(ST_MakePoint(-179.9995, 0.0005),"
    "         4326), 1, '{}'),"
    "        (203, 'AM far', 0, 179.0, ST_SetSRID(ST_MakePoint(179.0, 0), 4326), 1, '{}'),"
    "        (301, 'Pole 0', 89.99, 0, ST_SetSRID(ST_MakePoint(0, 89.99), 4326), 1, '{}'),"
    "        (302, 'Pole 180', 89.99, 180, ST_SetSRID(ST_MakePoint(180, 89.99), 4326), 1, '{}'),"
    "        (303, 'Pole 90', 89.99, 90, ST_SetSRID(ST_MakePoint(90, 89.99), 4326), 1, '{}');"
    /* 30 hours of minutes for 101 and 102 (a gap every 17th minute) */
    "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", combined_index,"
    " combined_index_eb, vru_index, vru_index_eb, vehicle_index, vehicle_index_eb, traffic_volume,"
    " vru_count, vehicle_event_count, vru_event_count, hour_of_day, day_of_week)"
    " SELECT i, t, greatest(si - 1, 0), si, si * 0.9, si * 0.8, si * 0.7, si * 0.6, m % 13, m % 3,"
    "  0, 0, extract(hour FROM t), extract(isodow FROM t) - 1"
    " FROM (SELECT i, m, date_trunc('hour', now()) - interval '30 hours' + m * interval '1 minute'"
    "        AS t, (10 + (m * 7 + i) % 80)::float8 AS si"
    "       FROM generate_series(0, 31 * 60) m, (VALUES (101), (102)) v(i)) s"
    " WHERE m % 17 <> 5 AND t < date_trunc('minute', now()) - interval '1 minute';"
    "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", combined_index,"
    " combined_index_eb, traffic_volume, vru_count, vehicle_event_count, vru_event_count,"
    " hour_of_day, day_of_week)"
    " VALUES (201, date_trunc('minute', now()) - interval '1 minute', 80, 80, 5, 0, 0, 0, 0, 0);"
    /* what the minute rows were, before retention */
    "CREATE TABLE exp_minutes AS SELECT intersection_id, \"timestamp\","
    " combined_index_eb AS si, traffic_volume AS vol FROM safety_indices_realtime;"
    /* the hourly job rolled up all but the last 3 hours */
    "INSERT INTO safety_indices_hourly (intersection_id, hour_timestamp, avg_si, min_si, max_si,"
    " std_si, total_volume, avg_volume, high_risk_minutes, data_quality_score)"
    " SELECT intersection_id, date_trunc('hour', \"timestamp\"), avg(combined_index_eb),"
    "  min(combined_index_eb), max(combined_index_eb), stddev_samp(combined_index_eb),"
    "  sum(traffic_volume), avg(traffic_volume),"
    "  count(*) FILTER (WHERE combined_index_eb > 75), count(*) / 60.0"
    " FROM safety_indices_realtime"
    " WHERE \"timestamp\" < date_trunc('hour', now()) - interval '3 hours'"
    "   AND intersection_id IN (101, 102) GROUP BY 1, 2;"
    /* retention removed the first 2 hours of minute rows: only hourly rows answer there */
    "DELETE FROM safety_indices_realtime"
    " WHERE \"timestamp\" < date_trunc('hour', now()) - interval '28 hours';"
    /* daily rows of older days (today-10 .. today-5) for 101 */
    "INSERT INTO safety_indices_daily (intersection_id, date, avg_si, min_si, max_si, std_si,"
    " total_volume, avg_volume, high_risk_hours, peak_hour, peak_si)"
    " SELECT 101, (now() AT TIME ZONE 'UTC')::date - (11 - k), 20 + k, 10, 50 + k, 3,"
    "  1000 * k, 1000 * k / 1440.0, k % 3, 8, 40 + k FROM generate_series(1, 6) k;";

static int setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    th_db_create(db);
    owner = th_connect("tsi_owner");
    char st[8];
    if (th_exec(owner, SETUP_SQL, st) != PGRES_COMMAND_OK)
        fail_msg("setup SQL failed (%s): %s", st, PQerrorMessage(owner));
    today = th_int(owner, "SELECT (now() AT TIME ZONE 'UTC')::date - date '1970-01-01'");
    /* a dashboard directory */
    snprintf(webdir, sizeof webdir, "/tmp/tsi-api-web-%d", (int)getpid());
    char p[512];
    mkdir(webdir, 0755);
    snprintf(p, sizeof p, "%s/assets", webdir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/index.html", webdir);
    FILE *f = fopen(p, "w");
    fputs("<!doctype html><title>tsi</title>", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/assets/app-4f3a9c1b.js", webdir);
    f = fopen(p, "w");
    fputs("console.log('tsi')", f);
    fclose(f);
    char env1[300], env2[300];
    snprintf(env1, sizeof env1, "TSI_WEB_DIR=%s", webdir);
    snprintf(env2, sizeof env2, "TSI_ARCHIVE_DIR=%s/archive", webdir);
    static char e1[300], e2[300];
    memcpy(e1, env1, sizeof e1);
    memcpy(e2, env2, sizeof e2);
    const char *env[] = {e1, e2, NULL};
    const char *args[] = {"--threads", "8", NULL};
    srv_start(&srv, args, env);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    api_teardown(&srv, owner, db, webdir);
    return 0;
}

/* ---- /safety/index/ --------------------------------------------------------------------- */
/* every API statement's result columns are read by name (issue 28): each has a name of its
 * own, none PostgreSQL's default for an unnamed expression, and the names the readers
 * share (an index object, the series, the statistics) are there */
static void test_statement_columns(void **state)
{
    (void)state;
    PGconn *c = th_connect("tsi_reader");
    assert_int_equal(tsi_api_prepare(c), 0);
    /* PostgreSQL's names for unnamed expressions (aggregates are left out: a CTE column
     * may be called avg or max on purpose) */
    static const char *const defaults[] = {"?column?",
                                           "coalesce",
                                           "date_part",
                                           "count",
                                           "text",
                                           "to_char",
                                           "st_astext",
                                           "int8",
                                           "float8",
                                           "int4",
                                           "bool",
                                           "case",
                                           "array_to_string",
                                           "jsonb_build_object"};
    int nstmts = 0;
    for (const tsi_api_stmt *s = tsi_api_stmts; s->name; s++, nstmts++) {
        PGresult *d = PQdescribePrepared(c, s->name);
        assert_int_equal(PQresultStatus(d), PGRES_COMMAND_OK);
        int n = PQnfields(d);
        assert_true(n > 0);
        for (int i = 0; i < n; i++) {
            const char *f = PQfname(d, i);
            for (size_t k = 0; k < sizeof defaults / sizeof *defaults; k++)
                if (strcmp(f, defaults[k]) == 0)
                    fail_msg("%s: column %d has no alias (%s)", s->name, i + 1, f);
            for (int j = 0; j < i; j++)
                if (strcmp(f, PQfname(d, j)) == 0)
                    fail_msg("%s: two columns called %s", s->name, f);
        }
        const char *want[8] = {NULL};
        if (strncmp(s->name, "series_", 7) == 0)
            memcpy(want, (const char *[]){"ts", "si", "vru", "veh", "vol", "cids", "avers"},
                   7 * sizeof *want);
        else if (strcmp(s->name, "stats") == 0)
            memcpy(want, (const char *[]){"id", "name", "n", "avg", "sd", "f", "l", "cids"},
                   8 * sizeof *want);
        else if (strncmp(s->name, "index_", 6) == 0 || strcmp(s->name, "nearby") == 0 ||
                 strcmp(s->name, "intersection") == 0)
            memcpy(want,
                   (const char *[]){"id", "name", "latitude", "longitude", "ts",
                                    "combined_index_eb", "traffic_volume", "vru_count"},
                   8 * sizeof *want);
        for (int k = 0; k < 8 && want[k]; k++)
            if (PQfnumber(d, want[k]) < 0)
                fail_msg("%s: no column %s", s->name, want[k]);
        PQclear(d);
    }
    assert_true(nstmts >= 16);
    PQfinish(c);
}

static void test_index(void **state)
{
    (void)state;
    resp r = get(srv.port, "/api/v2/safety/index/");
    assert_int_equal(r.status, 200);
    char h[128];
    assert_true(resp_header(&r, "X-Request-Id", h, sizeof h) && strlen(h) >= 8);
    assert_true(resp_header(&r, "Access-Control-Allow-Origin", h, sizeof h));
    assert_true(resp_header(&r, "X-Data-Source", h, sizeof h));
    assert_string_equal(h, "postgres");
    jdoc j;
    jparse(&j, &r);
    assert_true(tsi_json_is_array(&j.d, 0));
    /* intersections with data: 101, 102, 201 (not 103 or the others) */
    assert_int_equal(jcount(&j, 0), 3);
    for (int k = 0; k < 3; k++) {
        int o = jat(&j, 0, k);
        long long id = (long long)jnum(&j, o, "intersection_id");
        char sql[400];
        snprintf(
            sql, sizeof sql,
            "SELECT combined_index_eb FROM safety_indices_realtime WHERE intersection_id = %lld"
            " ORDER BY \"timestamp\" DESC LIMIT 1",
            id);
        double want = th_double(owner, sql);
        assert_near(jnum(&j, o, "safety_index"), want, 1e-12, "safety_index");
        snprintf(sql, sizeof sql,
                 "SELECT traffic_volume FROM safety_indices_realtime WHERE intersection_id = %lld"
                 " ORDER BY \"timestamp\" DESC LIMIT 1",
                 id);
        assert_int_equal((long long)jnum(&j, o, "traffic_volume"), th_int(owner, sql));
        char rl[16];
        jstr(&j, o, "risk_level", rl, sizeof rl);
        assert_string_equal(rl, want > 75 ? "High" : want >= 60 ? "Medium" : "Low");
        if (id == 101) {
            char name[128];
            jstr(&j, o, "intersection_name", name, sizeof name);
            assert_string_equal(name, "Main St & \"O'Brien\" Ave — Üñî");
            assert_near(jnum(&j, o, "latitude"), 38.87, 1e-12, "lat");
            assert_near(jnum(&j, o, "longitude"), -77.27, 1e-12, "lon");
        }
    }
    jfree(&j);
    resp_free(&r);

    /* one, unknown, and new data invalidates the cache */
    r = get(srv.port, "/api/v2/safety/index/102");
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    assert_int_equal((long long)jnum(&j, 0, "intersection_id"), 102);
    jfree(&j);
    resp_free(&r);
    r = get(srv.port, "/api/v2/safety/index/103");
    assert_int_equal(r.status, 404);
    jparse(&j, &r);
    char d[64];
    jstr(&j, 0, "detail", d, sizeof d);
    assert_string_equal(d, "Intersection not found");
    jfree(&j);
    resp_free(&r);

    assert_int_equal(th_exec(owner,
                             "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\","
                             " combined_index, combined_index_eb, traffic_volume, vru_count,"
                             " vehicle_event_count, vru_event_count, hour_of_day, day_of_week)"
                             " VALUES (103, date_trunc('minute', now()) - interval '1 minute', 66,"
                             " 61.5, 9, 1, 0, 0, 0, 0)",
                             NULL),
                     PGRES_COMMAND_OK);
    bool seen = false;
    for (int i = 0; i < 40 && !seen; i++) {
        r = get(srv.port, "/api/v2/safety/index/");
        jparse(&j, &r);
        for (int k = 0; k < jcount(&j, 0); k++) {
            int o = jat(&j, 0, k);
            if ((long long)jnum(&j, o, "intersection_id") == 103) {
                seen = true;
                assert_near(jnum(&j, o, "safety_index"), 61.5, 1e-12, "new row");
                char rl[16];
                jstr(&j, o, "risk_level", rl, sizeof rl);
                assert_string_equal(rl, "Medium");
            }
        }
        jfree(&j);
        resp_free(&r);
        if (!seen)
            usleep(50000);
    }
    assert_true(seen); /* NOTIFY (or the 1 s TTL) dropped the cached answer */
}

/* ---- history ---------------------------------------------------------------------------- */
/* expected buckets from the minute rows: SQL over exp_minutes */
static void check_series(long long iid, const char *q, const char *unit, long long d0, long long d1)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v2/safety/history/%lld?%s", iid, q);
    resp r = get(srv.port, path);
    if (r.status != 200)
        fail_msg("%s: %ld %s", path, r.status, r.body);
    jdoc j;
    jparse(&j, &r);
    int pts = tsi_json_get(&j.d, 0, "data_points");
    char sql[1200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM (SELECT date_trunc('%s', \"timestamp\") FROM exp_minutes"
             " WHERE intersection_id = %lld AND \"timestamp\" >= to_timestamp(%lld)"
             " AND \"timestamp\" < to_timestamp(%lld) GROUP BY 1) s",
             unit, iid, d0 * 86400, (d1 + 1) * 86400);
    long long want = th_int(owner, sql);
    assert_int_equal(jcount(&j, pts), want);
    assert_int_equal((long long)jnum(&j, 0, "total_points"), want);
    int k = 0;
    for (int p = tsi_json_first(&j.d, pts); p >= 0; p = tsi_json_next(&j.d, pts, p), k++) {
        snprintf(sql, sizeof sql,
                 "SELECT b, a, v FROM (SELECT extract(epoch FROM date_trunc('%s', \"timestamp\"))"
                 "::bigint AS b, avg(si) AS a, sum(vol) AS v FROM exp_minutes"
                 " WHERE intersection_id = %lld AND \"timestamp\" >= to_timestamp(%lld)"
                 " AND \"timestamp\" < to_timestamp(%lld) GROUP BY 1 ORDER BY 1"
                 " OFFSET %d LIMIT 1) s",
                 unit, iid, d0 * 86400, (d1 + 1) * 86400, k);
        PGresult *res = PQexec(owner, sql);
        assert_int_equal(PQntuples(res), 1);
        long long b = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        char ts[32], want_ts[32];
        jstr(&j, p, "timestamp", ts, sizeof ts);
        time_t tt = (time_t)b;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(want_ts, sizeof want_ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        assert_string_equal(ts, want_ts);
        assert_near(jnum(&j, p, "safety_index"), strtod(PQgetvalue(res, 0, 1), NULL), 1e-9,
                    "bucket average");
        assert_int_equal((long long)jnum(&j, p, "traffic_volume"),
                         strtoll(PQgetvalue(res, 0, 2), NULL, 10));
        assert_int_equal((long long)jnum(&j, p, "hour_of_day"), tm.tm_hour);
        assert_int_equal((long long)jnum(&j, p, "day_of_week"), (tm.tm_wday + 6) % 7);
        PQclear(res);
    }
    jfree(&j);
    resp_free(&r);
}

static void test_history_routing(void **state)
{
    (void)state;
    char a[16], b[16], q[200];
    day_str(a, sizeof a, today - 1);
    day_str(b, sizeof b, today);
    /* 1 minute, both days (across midnight UTC), straight from the realtime table: the
     * first 2 hours were deleted by "retention", so minutes start later */
    snprintf(q, sizeof q, "start_date=%s&end_date=%s&aggregation=1min", a, b);
    {
        char path[256];
        snprintf(path, sizeof path, "/api/v2/safety/history/101?%s", q);
        resp r;
        jdoc j;
        get_json(srv.port, path, &r, &j);
        char agg[16], sd[16], ed[16];
        jstr(&j, 0, "aggregation", agg, sizeof agg);
        jstr(&j, 0, "start_date", sd, sizeof sd);
        jstr(&j, 0, "end_date", ed, sizeof ed);
        assert_string_equal(agg, "1min");
        assert_string_equal(sd, a);
        assert_string_equal(ed, b);
        /* the rows in the range asked (before 04:00 UTC the first rows fall the day
         * before yesterday) */
        long long want =
            th_intf(owner,
                    "SELECT count(*) FROM safety_indices_realtime"
                    " WHERE intersection_id = 101"
                    " AND \"timestamp\" >= '%sT00:00:00Z'::timestamptz"
                    " AND \"timestamp\" < '%sT00:00:00Z'::timestamptz + interval '1 day'",
                    a, b);
        assert_int_equal(jcount(&j, tsi_json_get(&j.d, 0, "data_points")), want);
        jfree(&j);
        resp_free(&r);
    }
    /* hourly: rolled-up hours from the hourly table, the last 3 from minutes */
    snprintf(q, sizeof q, "start_date=%s&end_date=%s&aggregation=1hour", a, b);
    check_series(101, q, "hour", today - 1, today);
    /* the default aggregation of a 2-day range is 1hour */
    snprintf(q, sizeof q, "start_date=%s&end_date=%s", a, b);
    check_series(102, q, "hour", today - 1, today);
    /* daily over the last 3 days: no daily rows there, computed from hours + minutes */
    day_str(a, sizeof a, today - 3);
    snprintf(q, sizeof q, "start_date=%s&end_date=%s&aggregation=1day", a, b);
    check_series(101, q, "day", today - 3, today);
}

/* A 1-minute series is in time order and complete even when PostgreSQL returns its rows
 * out of order: yesterday's partition is detached, so yesterday's rows land in the default
 * partition, which the scan appends after today's. */
/* full-precision values (17 significant digits, NULLs) for every minute from yesterday
 * 00:00 UTC to now: the answer holds each minute once, in order, and every number reads
 * back as exactly the double stored (the server sends the shortest such text); the
 * server reads the range in parts, so part boundaries are crossed */
static double exact_value(int k, int which)
{
    switch (which) {
    case 0:
        return fmod(k * 61.80339887498949, 100.0);
    case 1:
        return k % 7 == 0 ? NAN : 100.0 / (k + 3);
    default:
        return k % 11 == 0 ? NAN : nextafter((double)(k % 100), 0);
    }
}

static void sql_double(FILE *f, double v)
{
    if (isnan(v))
        fputs("NULL", f);
    else
        fprintf(f, "%.17g", v);
}

/* the 1-minute history of intersection 106 since yesterday: n minutes from day0, each
 * once, in order, with exactly the stored values (exact_value) */
static void minutes_exact(long long day0, int n)
{
    resp r;
    jdoc j;
    int arr = history_get(srv.port, 106, today - 1, today, "1min", &r, &j);
    assert_int_equal(jcount(&j, arr), n);
    assert_int_equal((long long)jnum(&j, 0, "total_points"), n);
    int k = 0;
    for (int t = tsi_json_first(&j.d, arr); t >= 0; t = tsi_json_next(&j.d, arr, t), k++) {
        char ts[32], want[32];
        jstr(&j, t, "timestamp", ts, sizeof ts);
        long long sec = day0 + 60LL * k;
        day_str(want, sizeof want, sec / 86400);
        snprintf(want + 10, sizeof want - 10, "T%02lld:%02lld:00Z", sec % 86400 / 3600,
                 sec % 3600 / 60);
        assert_string_equal(ts, want);
        static const char *const keys[3] = {"safety_index", "vru_index", "vehicle_index"};
        for (int c = 0; c < 3; c++) {
            double got = jnum(&j, t, keys[c]), exp = exact_value(k, c);
            if (isnan(exp) ? !isnan(got) : got != exp)
                fail_msg("minute %d %s: got %.17g, stored %.17g", k, keys[c], got, exp);
        }
        assert_int_equal((long long)jnum(&j, t, "traffic_volume"), k % 50);
    }
    jfree(&j);
    resp_free(&r);
}

static void test_history_minutes_exact(void **state)
{
    (void)state;
    long long day0 = (today - 1) * 86400;
    long long now = th_int(owner, "SELECT extract(epoch FROM now())::bigint");
    int n = (int)((now - day0) / 60);
    char *sql = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&sql, &len);
    fputs("INSERT INTO intersections (id, name, latitude, longitude, geometry) VALUES (106,"
          " 'Exact values', 38.9, -77.2, ST_SetSRID(ST_MakePoint(-77.2, 38.9), 4326));"
          "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", combined_index,"
          " combined_index_eb, vru_index, vehicle_index_eb, traffic_volume, vru_count,"
          " vehicle_event_count, vru_event_count, hour_of_day, day_of_week) VALUES",
          f);
    for (int k = 0; k < n; k++) {
        fprintf(f, "%s(106, to_timestamp(%lld), 50, ", k ? "," : "", day0 + 60LL * k);
        sql_double(f, exact_value(k, 0));
        fputc(',', f);
        sql_double(f, exact_value(k, 1));
        fputc(',', f);
        sql_double(f, exact_value(k, 2));
        fprintf(f, ", %d, 0, 0, 0, 0, 0)", k % 50);
    }
    fclose(f);
    th_sqlf(owner, "%s", sql);
    free(sql);
    minutes_exact(day0, n);
    /* alone on the server, the request read its later parts on a helper connection (one
     * per two cores) */
    PGconn *adm = th_connect("postgres");
    const char *helpers = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'tsi_reader'"
                          " AND application_name = 'tsi serve helper'";
    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
        assert_true(th_intf(adm, "%s", helpers) >= 1);
    /* the helper's backend gone: its parts are read again on the worker's connection */
    int killed = th_intf(adm, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                              " WHERE application_name = 'tsi serve helper'");
    minutes_exact(day0, n);
    if (killed)
        assert_true(log_has(srv.log, "helper connection failed"));
    /* every backend of the server's workers and helpers gone (not its monitor's, which
     * would switch the server to Parquet for a moment): the worker's connection is
     * replaced, the helper reopened */
    th_sqlf(adm, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                 " WHERE usename = 'tsi_reader' AND application_name <> 'tsi serve monitor'");
    minutes_exact(day0, n);
    minutes_exact(day0, n);
    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
        assert_true(th_intf(adm, "%s", helpers) >= 1);
    PQfinish(adm);
    th_sqlf(owner, "DELETE FROM safety_indices_realtime WHERE intersection_id = 106;"
                   "DELETE FROM safety_indices_latest WHERE intersection_id = 106;"
                   "DELETE FROM intersections WHERE id = 106;");
}

static void test_history_minutes_order(void **state)
{
    (void)state;
    char *part = th_value(owner, "SELECT format('safety_indices_realtime_p%s',"
                                 " to_char((now() AT TIME ZONE 'UTC')::date - 1, 'YYYY_MM_DD'))");
    char *bound = th_value(owner, "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c"
                                  " WHERE c.relname = format('safety_indices_realtime_p%s',"
                                  " to_char((now() AT TIME ZONE 'UTC')::date - 1, 'YYYY_MM_DD'))");
    assert_non_null(bound);
    assert_true(strncmp(bound, "FOR VALUES FROM", 15) == 0);
    th_sqlf(owner, "ALTER TABLE safety_indices_realtime DETACH PARTITION %s", part);
    th_sqlf(
        owner,
        "INSERT INTO intersections (id, name, latitude, longitude, geometry)"
        " VALUES (104, 'Order check', 38.9, -77.2, ST_SetSRID(ST_MakePoint(-77.2, 38.9), 4326));"
        "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", combined_index,"
        " combined_index_eb, traffic_volume, vru_count, vehicle_event_count, vru_event_count,"
        " hour_of_day, day_of_week)"
        " SELECT 104, t, 30 + k, 40 + k, k, 0, 0, 0, 0, 0 FROM ("
        "  SELECT k, date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        "   - interval '12 hours' + k * interval '1 minute' AS t FROM generate_series(0, 9) k"
        "  UNION ALL"
        "  SELECT 10 + k, date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        "   + k * interval '1 minute' FROM generate_series(0, 4) k) s");
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM ONLY safety_indices_realtime_default"
                                    " WHERE intersection_id = 104"),
                     10);
    resp r;
    jdoc j;
    int arr = history_get(srv.port, 104, today - 1, today, "1min", &r, &j);
    assert_int_equal(jcount(&j, arr), 15);
    /* expected, in order: yesterday 12:00..12:09 (k = 0..9), then today 00:00..00:04 */
    int k = 0;
    for (int t = tsi_json_first(&j.d, arr); t >= 0; t = tsi_json_next(&j.d, arr, t), k++) {
        char ts[32], want[32];
        jstr(&j, t, "timestamp", ts, sizeof ts);
        long long day = k < 10 ? today - 1 : today;
        day_str(want, sizeof want, day);
        snprintf(want + 10, sizeof want - 10, "T%02d:%02d:00Z", k < 10 ? 12 : 0,
                 k < 10 ? k : k - 10);
        assert_string_equal(ts, want);
        assert_true(jnum(&j, t, "safety_index") == 40 + k);
        assert_true(jnum(&j, t, "traffic_volume") == k);
    }
    jfree(&j);
    resp_free(&r);
    th_sqlf(owner,
            "DELETE FROM safety_indices_realtime WHERE intersection_id = 104;"
            "DELETE FROM safety_indices_latest WHERE intersection_id = 104;"
            "DELETE FROM intersections WHERE id = 104;"
            "ALTER TABLE safety_indices_realtime ATTACH PARTITION %s %s",
            part, bound);
    free(part);
    free(bound);
}

static void test_history_daily_table(void **state)
{
    (void)state;
    char a[16], b[16], path[256];
    day_str(a, sizeof a, today - 10);
    day_str(b, sizeof b, today);
    snprintf(path, sizeof path, "/api/v2/safety/history/101?start_date=%s&end_date=%s", a, b);
    resp r;
    jdoc j;
    get_json(srv.port, path, &r, &j);
    char agg[16];
    jstr(&j, 0, "aggregation", agg, sizeof agg);
    assert_string_equal(agg, "1day"); /* 11 days → 1day */
    int pts = tsi_json_get(&j.d, 0, "data_points");
    long long recent = th_int(owner, "SELECT count(DISTINCT date_trunc('day', \"timestamp\"))"
                                     " FROM exp_minutes WHERE intersection_id = 101");
    /* 6 daily rows + the days of minute data; the days between are gaps (omitted) */
    assert_int_equal(jcount(&j, pts), 6 + recent);
    for (int k = 0; k < 6; k++) {
        int p = jat(&j, pts, k);
        char ts[32], want[32];
        jstr(&j, p, "timestamp", ts, sizeof ts);
        day_str(want, sizeof want, today - 10 + k);
        strcat(want, "T00:00:00Z");
        assert_string_equal(ts, want);
        assert_near(jnum(&j, p, "safety_index"), 21 + k, 1e-12, "daily avg_si");
        assert_int_equal((long long)jnum(&j, p, "traffic_volume"), 1000 * (k + 1));
    }
    jfree(&j);
    resp_free(&r);

    /* weekly buckets start on Monday and are labelled by their start */
    snprintf(path, sizeof path,
             "/api/v2/safety/history/101?start_date=%s&end_date=%s&aggregation=1week", a, b);
    r = get(srv.port, path);
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    pts = tsi_json_get(&j.d, 0, "data_points");
    assert_true(jcount(&j, pts) >= 2);
    for (int p = tsi_json_first(&j.d, pts); p >= 0; p = tsi_json_next(&j.d, pts, p))
        assert_int_equal((long long)jnum(&j, p, "day_of_week"), 0);
    jfree(&j);
    resp_free(&r);

    /* a 365-day range is allowed (monthly); an empty range is not an error */
    day_str(a, sizeof a, today - 364);
    snprintf(path, sizeof path, "/api/v2/safety/history/101?start_date=%s&end_date=%s", a, b);
    r = get(srv.port, path);
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    jstr(&j, 0, "aggregation", agg, sizeof agg);
    assert_string_equal(agg, "1month");
    jfree(&j);
    resp_free(&r);
    r = get(srv.port, "/api/v2/safety/history/101?start_date=2001-01-01&end_date=2001-01-31");
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    assert_int_equal((long long)jnum(&j, 0, "total_points"), 0);
    jfree(&j);
    resp_free(&r);
    /* unknown intersection */
    r = get(srv.port, "/api/v2/safety/history/999");
    assert_int_equal(r.status, 404);
    resp_free(&r);
}

static void test_history_all(void **state)
{
    (void)state;
    char a[16], b[16], path[256];
    day_str(a, sizeof a, today - 1);
    day_str(b, sizeof b, today);
    snprintf(path, sizeof path, "/api/v2/safety/history/?start_date=%s&end_date=%s", a, b);
    resp r;
    jdoc j;
    get_json(srv.port, path, &r, &j);
    int arr = tsi_json_get(&j.d, 0, "intersections");
    assert_int_equal(jcount(&j, arr), th_int(owner, "SELECT count(*) FROM intersections"));
    long long total = 0;
    for (int o = tsi_json_first(&j.d, arr); o >= 0; o = tsi_json_next(&j.d, arr, o)) {
        long long id = (long long)jnum(&j, o, "intersection_id");
        char sql[400];
        snprintf(sql, sizeof sql,
                 "SELECT count(DISTINCT date_trunc('hour', \"timestamp\")) FROM (SELECT"
                 " intersection_id, \"timestamp\" FROM exp_minutes UNION SELECT intersection_id,"
                 " \"timestamp\" FROM safety_indices_realtime) m"
                 " WHERE intersection_id = %lld AND \"timestamp\" >= to_timestamp(%lld)",
                 id, (today - 1) * 86400);
        long long want = th_int(owner, sql);
        assert_int_equal(jcount(&j, tsi_json_get(&j.d, o, "data_points")), want);
        total += want;
    }
    assert_int_equal((long long)jnum(&j, 0, "total_points"), total);
    jfree(&j);
    resp_free(&r);
}

/* ---- stats, compare, ranking --------------------------------------------------------------- */
static void check_stats(jdoc *j, int o, long long iid, long long d0, long long d1)
{
    char sql[800];
    snprintf(sql, sizeof sql,
             "SELECT count(*), avg(si), min(si), max(si), stddev_samp(si), sum(vol),"
             " count(*) FILTER (WHERE si > 75) FROM exp_minutes WHERE intersection_id = %lld"
             " AND \"timestamp\" >= to_timestamp(%lld) AND \"timestamp\" < to_timestamp(%lld)",
             iid, d0 * 86400, (d1 + 1) * 86400);
    PGresult *res = PQexec(owner, sql);
    double n = strtod(PQgetvalue(res, 0, 0), NULL);
    assert_near(jnum(j, o, "avg_safety_index"), strtod(PQgetvalue(res, 0, 1), NULL), 1e-9, "avg");
    assert_near(jnum(j, o, "min_safety_index"), strtod(PQgetvalue(res, 0, 2), NULL), 1e-12, "min");
    assert_near(jnum(j, o, "max_safety_index"), strtod(PQgetvalue(res, 0, 3), NULL), 1e-12, "max");
    assert_near(jnum(j, o, "std_safety_index"), strtod(PQgetvalue(res, 0, 4), NULL), 1e-7, "std");
    double vol = strtod(PQgetvalue(res, 0, 5), NULL);
    assert_near(jnum(j, o, "total_traffic_volume"), vol, 0, "total volume");
    assert_near(jnum(j, o, "avg_traffic_volume"), vol / n, 1e-9, "avg volume");
    double hr = strtod(PQgetvalue(res, 0, 6), NULL);
    assert_near(jnum(j, o, "high_risk_intervals"), hr, 0, "high risk");
    assert_near(jnum(j, o, "high_risk_percentage"), 100.0 * hr / n, 1e-9, "high risk %");
    PQclear(res);
    char ps[16], want[16];
    jstr(j, o, "period_start", ps, sizeof ps);
    day_str(want, sizeof want, d0);
    assert_string_equal(ps, want); /* the request's period, not the data's */
    jstr(j, o, "period_end", ps, sizeof ps);
    day_str(want, sizeof want, d1);
    assert_string_equal(ps, want);
}

static void test_stats(void **state)
{
    (void)state;
    char a[16], b[16], path[256];
    day_str(a, sizeof a, today - 2);
    day_str(b, sizeof b, today);
    snprintf(path, sizeof path, "/api/v2/safety/history/101/stats?start_date=%s&end_date=%s", a, b);
    resp r;
    jdoc j;
    get_json(srv.port, path, &r, &j);
    check_stats(&j, 0, 101, today - 2, today);
    jfree(&j);
    resp_free(&r);

    /* with the 6 daily-only days: minutes = total/avg volume = 1440 each, sd 3 */
    day_str(a, sizeof a, today - 10);
    snprintf(path, sizeof path, "/api/v2/safety/history/101/stats?start_date=%s&end_date=%s", a, b);
    r = get(srv.port, path);
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    PGresult *res = PQexec(owner, "SELECT count(*), sum(si), sum(si * si), min(si), max(si),"
                                  " sum(vol), count(*) FILTER (WHERE si > 75)"
                                  " FROM exp_minutes WHERE intersection_id = 101");
    double n = strtod(PQgetvalue(res, 0, 0), NULL), s = strtod(PQgetvalue(res, 0, 1), NULL),
           s2 = strtod(PQgetvalue(res, 0, 2), NULL), vol = strtod(PQgetvalue(res, 0, 5), NULL),
           hr = strtod(PQgetvalue(res, 0, 6), NULL);
    PQclear(res);
    for (int k = 1; k <= 6; k++) { /* by hand: n=1440, mean 20+k, sd 3 */
        double m = 20 + k;
        n += 1440;
        s += 1440 * m;
        s2 += 1439 * 9.0 + 1440 * m * m;
        vol += 1000 * k;
        hr += (k % 3) * 60;
    }
    double mean = s / n, sd = sqrt((s2 - n * mean * mean) / (n - 1));
    assert_near(jnum(&j, 0, "avg_safety_index"), mean, 1e-9, "avg with daily");
    assert_near(jnum(&j, 0, "std_safety_index"), sd, 1e-6, "pooled sd with daily");
    assert_near(jnum(&j, 0, "min_safety_index"), 10, 0, "min with daily");
    assert_near(jnum(&j, 0, "total_traffic_volume"), vol, 0, "volume with daily");
    assert_near(jnum(&j, 0, "high_risk_intervals"), hr, 0, "high risk with daily");
    jfree(&j);
    resp_free(&r);

    /* no data in the period: nulls and zeros, not an error */
    r = get(srv.port, "/api/v2/safety/history/103/stats?start_date=2001-01-01&end_date=2001-01-02");
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    assert_true(isnan(jnum(&j, 0, "avg_safety_index")));
    assert_int_equal((long long)jnum(&j, 0, "total_traffic_volume"), 0);
    jfree(&j);
    resp_free(&r);
    r = get(srv.port, "/api/v2/safety/history/999/stats");
    assert_int_equal(r.status, 404);
    resp_free(&r);
}

static void test_compare_ranking(void **state)
{
    (void)state;
    char a[16], b[16], path[256];
    day_str(a, sizeof a, today - 2);
    day_str(b, sizeof b, today);
    snprintf(path, sizeof path, "/api/v2/safety/compare?ids=102,101,999&start_date=%s&end_date=%s",
             a, b);
    resp r;
    jdoc j;
    get_json(srv.port, path, &r, &j);
    int arr = tsi_json_get(&j.d, 0, "intersections");
    assert_int_equal(jcount(&j, arr), 2);
    for (int o = tsi_json_first(&j.d, arr); o >= 0; o = tsi_json_next(&j.d, arr, o))
        check_stats(&j, o, (long long)jnum(&j, o, "intersection_id"), today - 2, today);
    int nf = tsi_json_get(&j.d, 0, "not_found");
    assert_int_equal(jcount(&j, nf), 1);
    double x;
    tsi_json_num(&j.d, jat(&j, nf, 0), &x);
    assert_int_equal((long long)x, 999);
    jfree(&j);
    resp_free(&r);

    /* ranking by avg_si, ascending, against SQL's own order */
    snprintf(path, sizeof path,
             "/api/v2/safety/ranking?metric=avg_si&order=asc&limit=2&start_date=%s&end_date=%s", a,
             b);
    r = get(srv.port, path);
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    int items = tsi_json_get(&j.d, 0, "items");
    assert_int_equal(jcount(&j, items), 2);
    char sql[600];
    snprintf(sql, sizeof sql,
             "SELECT count(DISTINCT intersection_id) FROM exp_minutes"
             " WHERE \"timestamp\" >= to_timestamp(%lld)",
             (today - 2) * 86400);
    long long with_data = th_int(owner, sql); /* 103's late row is not in exp_minutes */
    assert_int_equal((long long)jnum(&j, 0, "total"), with_data + 1);
    for (int k = 0; k < 2; k++) {
        int o = jat(&j, items, k);
        assert_int_equal((long long)jnum(&j, o, "rank"), k + 1);
        snprintf(sql, sizeof sql,
                 "SELECT i FROM (SELECT intersection_id AS i, avg(si) AS a FROM (SELECT"
                 " intersection_id, si FROM exp_minutes WHERE \"timestamp\" >= to_timestamp(%lld)"
                 " UNION ALL SELECT 103, 61.5) s GROUP BY 1) t ORDER BY a, i OFFSET %d LIMIT 1",
                 (today - 2) * 86400, k);
        assert_int_equal((long long)jnum(&j, o, "intersection_id"), th_int(owner, sql));
    }
    jfree(&j);
    resp_free(&r);

    /* filters: high risk only → 201 (avg 80) */
    r = get(srv.port, "/api/v2/safety/ranking?risk_level=high&days=2");
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    items = tsi_json_get(&j.d, 0, "items");
    assert_int_equal(jcount(&j, items), 1);
    assert_int_equal((long long)jnum(&j, jat(&j, items, 0), "intersection_id"), 201);
    jfree(&j);
    resp_free(&r);
}

/* ---- spatial ----------------------------------------------------------------------------- */
static double haversine(double la1, double lo1, double la2, double lo2)
{
    const double R = 6371008.8, d2r = M_PI / 180;
    double dla = (la2 - la1) * d2r, dlo = (lo2 - lo1) * d2r;
    double h =
        sin(dla / 2) * sin(dla / 2) + cos(la1 * d2r) * cos(la2 * d2r) * sin(dlo / 2) * sin(dlo / 2);
    return 2 * R * asin(sqrt(h));
}

static void ids_of(jdoc *j, int arr, long long *out, int *n)
{
    *n = 0;
    for (int o = tsi_json_first(&j->d, arr); o >= 0; o = tsi_json_next(&j->d, arr, o))
        out[(*n)++] = (long long)jnum(j, o, "intersection_id");
}

static void test_spatial_nearby(void **state)
{
    (void)state;
    /* across the antimeridian */
    resp r;
    jdoc j;
    get_json(srv.port, "/api/v2/intersections/nearby?lat=0&lon=180&radius=500", &r, &j);
    long long ids[16];
    int n;
    ids_of(&j, 0, ids, &n);
    assert_int_equal(n, 2); /* 201 and 202, both ~79 m away; 203 is 111 km away */
    for (int k = 0; k < 2; k++) {
        int o = jat(&j, 0, k);
        double want = haversine(0, 180, jnum(&j, o, "latitude"), jnum(&j, o, "longitude"));
        assert_near(jnum(&j, o, "distance_m"), want, 0.006, "antimeridian distance");
        assert_true(ids[k] == 201 || ids[k] == 202);
    }
    jfree(&j);
    resp_free(&r);

    /* near the pole: ordered by distance, distances as the sphere says (±0.6 %) */
    r = get(srv.port, "/api/v2/intersections/nearby?lat=89.99&lon=0&radius=3000");
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    ids_of(&j, 0, ids, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 301);
    assert_int_equal(ids[1], 303);
    assert_int_equal(ids[2], 302);
    for (int k = 0; k < 3; k++) {
        int o = jat(&j, 0, k);
        double want = haversine(89.99, 0, jnum(&j, o, "latitude"), jnum(&j, o, "longitude"));
        if (want > 1)
            assert_near(jnum(&j, o, "distance_m"), want, 0.006, "polar distance");
    }
    jfree(&j);
    resp_free(&r);

    /* filters and GeoJSON */
    r = get(srv.port, "/api/v2/intersections/nearby?lat=0&lon=180&radius=500&risk_level=high"
                      "&format=geojson");
    assert_int_equal(r.status, 200);
    char ct[64];
    assert_true(resp_header(&r, "Content-Type", ct, sizeof ct));
    assert_string_equal(ct, "application/geo+json");
    jparse(&j, &r);
    char type[32];
    jstr(&j, 0, "type", type, sizeof type);
    assert_string_equal(type, "FeatureCollection");
    int feats = tsi_json_get(&j.d, 0, "features");
    assert_int_equal(jcount(&j, feats), 1);
    int f = jat(&j, feats, 0);
    int coords = tsi_json_path(&j.d, f, "geometry", "coordinates", NULL);
    double lon, lat;
    tsi_json_num(&j.d, jat(&j, coords, 0), &lon);
    tsi_json_num(&j.d, jat(&j, coords, 1), &lat);
    assert_near(lon, 179.9995, 1e-12, "geojson lon first");
    assert_near(lat, 0.0005, 1e-12, "geojson lat second");
    int props = tsi_json_get(&j.d, f, "properties");
    assert_int_equal((long long)jnum(&j, props, "intersection_id"), 201);
    assert_false(jbool(&j, props, "stale"));
    jfree(&j);
    resp_free(&r);

    /* the same intersection silent for 10 minutes (> --stale-seconds 300): its current
     * answer says so, and the risk filters skip it */
    th_sqlf(owner, "UPDATE safety_indices_latest SET \"timestamp\" = now() - interval '10 minutes'"
                   " WHERE intersection_id = 201");
    r = get(srv.port, "/api/v2/intersections/nearby?lat=0&lon=180&radius=500&risk_level=high");
    jparse(&j, &r);
    assert_int_equal(jcount(&j, 0), 0);
    jfree(&j);
    resp_free(&r);
    r = get(srv.port, "/api/v2/intersections/nearby?lat=0&lon=180&radius=500");
    jparse(&j, &r);
    ids_of(&j, 0, ids, &n);
    assert_int_equal(n, 2); /* 201 and 202, across the antimeridian */
    int it = jat(&j, 0, ids[0] == 201 ? 0 : 1);
    assert_true(jbool(&j, it, "stale"));
    assert_true(jnum(&j, it, "age_seconds") >= 600);
    jfree(&j);
    resp_free(&r);
    r = get(srv.port, "/api/v1/intersections/nearby?lat=0&lon=180&radius=500");
    assert_false(strstr(r.body, "\"stale\"") || strstr(r.body, "age_seconds")); /* v2 only */
    resp_free(&r);
    th_sqlf(owner, "UPDATE safety_indices_latest SET \"timestamp\" = date_trunc('minute', now())"
                   " - interval '1 minute' WHERE intersection_id = 201");

    /* the Fairfax cluster against haversine, for a radius that splits it */
    r = get(srv.port, "/api/v2/intersections/nearby?lat=38.87&lon=-77.27&radius=1500");
    jparse(&j, &r);
    ids_of(&j, 0, ids, &n);
    int want_n = 0;
    const double pts[3][2] = {{38.87, -77.27}, {38.88, -77.26}, {38.89, -77.25}};
    for (int k = 0; k < 3; k++)
        want_n += haversine(38.87, -77.27, pts[k][0], pts[k][1]) <= 1500;
    assert_int_equal(n, want_n);
    jfree(&j);
    resp_free(&r);
}

static void test_spatial_route_area(void **state)
{
    (void)state;
    char enc[2048], path[4096];
    long long ids[16];
    int n;
    jdoc j;
    /* a route along the equator across the antimeridian: 201/202 are 55 m off it */
    urlenc(enc, sizeof enc, "[{\"lat\":0,\"lon\":179.99},{\"lat\":0,\"lon\":-179.99}]");
    snprintf(path, sizeof path, "/api/v2/intersections/route?waypoints=%s&buffer=100", enc);
    resp r = get(srv.port, path);
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    ids_of(&j, 0, ids, &n);
    assert_int_equal(n, 2);
    for (int k = 0; k < 2; k++) {
        assert_true(ids[k] == 201 || ids[k] == 202);
        /* distance to the equator = the latitude arc */
        assert_near(jnum(&j, jat(&j, 0, k), "distance_m"), 0.0005 * M_PI / 180 * 6371008.8, 0.006,
                    "route distance");
    }
    jfree(&j);
    resp_free(&r);
    snprintf(path, sizeof path, "/api/v2/intersections/route?waypoints=%s&buffer=50", enc);
    r = get(srv.port, path);
    jparse(&j, &r);
    assert_int_equal(jcount(&j, 0), 0); /* 55 m > 50 m */
    jfree(&j);
    resp_free(&r);

    /* a box across the antimeridian */
    urlenc(enc, sizeof enc,
           "[{\"lat\":-0.01,\"lon\":179.99},{\"lat\":-0.01,\"lon\":-179.99},"
           "{\"lat\":0.01,\"lon\":-179.99},{\"lat\":0.01,\"lon\":179.99}]");
    snprintf(path, sizeof path, "/api/v2/intersections/area?polygon=%s", enc);
    r = get(srv.port, path);
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    ids_of(&j, 0, ids, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 201);
    assert_int_equal(ids[1], 202);
    jfree(&j);
    resp_free(&r);

    /* near the pole (closed explicitly: the repeated vertex is accepted) */
    urlenc(enc, sizeof enc,
           "[{\"lat\":89.98,\"lon\":-10},{\"lat\":89.98,\"lon\":10},{\"lat\":89.995,\"lon\":10},"
           "{\"lat\":89.995,\"lon\":-10},{\"lat\":89.98,\"lon\":-10}]");
    snprintf(path, sizeof path, "/api/v2/intersections/area?polygon=%s", enc);
    r = get(srv.port, path);
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    ids_of(&j, 0, ids, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 301);
    jfree(&j);
    resp_free(&r);

    /* a ring AROUND the North Pole (at 80°N, four vertices 90° apart): a planar check on
     * lon/lat calls it self-intersecting; on the sphere it is a cap. Its edges are
     * geodesics, which rise between the vertices: at lon 45 the edge from lon 0 to 90
     * passes latitude atan(tan 80° / cos 45°) (computed here); a point just above it is
     * inside, just below it outside. */
    double edge = atan(tan(80 * M_PI / 180) / cos(45 * M_PI / 180)) * 180 / M_PI; /* 82.93 */
    th_sqlf(owner,
            "INSERT INTO intersections (id, name, latitude, longitude, geometry) VALUES"
            " (311, 'above the arc', %.6f, 45, ST_SetSRID(ST_MakePoint(45, %.6f), 4326)),"
            " (312, 'below the arc', %.6f, 45, ST_SetSRID(ST_MakePoint(45, %.6f), 4326)),"
            " (313, 'far side', 85, -135, ST_SetSRID(ST_MakePoint(-135, 85), 4326)),"
            " (314, 'south of the ring', 79, 0, ST_SetSRID(ST_MakePoint(0, 79), 4326))",
            edge + 0.05, edge + 0.05, edge - 0.05, edge - 0.05);
    urlenc(enc, sizeof enc,
           "[{\"lat\":80,\"lon\":0},{\"lat\":80,\"lon\":90},{\"lat\":80,\"lon\":180},"
           "{\"lat\":80,\"lon\":-90}]");
    snprintf(path, sizeof path, "/api/v2/intersections/area?polygon=%s", enc);
    r = get(srv.port, path);
    if (r.status != 200)
        fail_msg("pole ring: %ld %s", r.status, r.body);
    jparse(&j, &r);
    ids_of(&j, 0, ids, &n);
    /* inside: the three near the pole (301-303), above the arc, the far side */
    long long want[] = {301, 302, 303, 311, 313};
    assert_int_equal(n, 5);
    for (int k = 0; k < 5; k++)
        assert_int_equal(ids[k], want[k]);
    jfree(&j);
    resp_free(&r);
    /* the same ring as a bow-tie across the pole is still refused, naming the edges */
    urlenc(enc, sizeof enc,
           "[{\"lat\":80,\"lon\":0},{\"lat\":80,\"lon\":180},{\"lat\":80,\"lon\":90},"
           "{\"lat\":80,\"lon\":-90}]");
    snprintf(path, sizeof path, "/api/v2/intersections/area?polygon=%s", enc);
    r = get(srv.port, path);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "invalid_polygon"));
    resp_free(&r);
    th_sqlf(owner, "DELETE FROM intersections WHERE id BETWEEN 311 AND 314");
}

static void test_intersection_meta(void **state)
{
    (void)state;
    resp r;
    jdoc j;
    get_json(srv.port, "/api/v2/intersections/101", &r, &j);
    char name[128], src[32];
    jstr(&j, 0, "name", name, sizeof name);
    assert_string_equal(name, "Main St & \"O'Brien\" Ave — Üñî");
    assert_int_equal((long long)jnum(&j, 0, "lane_count"), 4);
    jstr(&j, tsi_json_get(&j.d, 0, "metadata"), "source", src, sizeof src);
    assert_string_equal(src, "test");
    int cur = tsi_json_get(&j.d, 0, "current");
    assert_true(tsi_json_is_object(&j.d, cur));
    jfree(&j);
    resp_free(&r);
    r = get(srv.port, "/api/v2/intersections/302");
    jparse(&j, &r);
    assert_true(tsi_json_is_null(&j.d, tsi_json_get(&j.d, 0, "current")));
    jfree(&j);
    resp_free(&r);
    r = get(srv.port, "/api/v2/intersections/4242");
    assert_int_equal(r.status, 404);
    resp_free(&r);
}

/* ---- bad input ----------------------------------------------------------------------------- */
static const struct {
    const char *path;
    int status;
    const char *field; /* NULL: field null */
} bad_inputs[] = {
    {"/api/v2/safety/index/abc", 400, "intersection_id"},
    {"/api/v2/safety/index/-1", 400, "intersection_id"},
    {"/api/v2/safety/index/1e3", 400, "intersection_id"},
    {"/api/v2/safety/index/99999999999999999999", 400, "intersection_id"},
    {"/api/v2/safety/history/x1", 400, "intersection_id"},
    {"/api/v2/safety/history/101?days=0", 400, "days"},
    {"/api/v2/safety/history/101?days=366", 400, "days"},
    {"/api/v2/safety/history/101?days=abc", 400, "days"},
    {"/api/v2/safety/history/101?days=1.5", 400, "days"},
    {"/api/v2/safety/history/101?days=", 400, "days"},
    {"/api/v2/safety/history/101?start_date=2026-02-30", 400, "start_date"},
    {"/api/v2/safety/history/101?start_date=2024-02-30", 400, "start_date"},
    {"/api/v2/safety/history/101?start_date=2026-13-01", 400, "start_date"},
    {"/api/v2/safety/history/101?start_date=20260101", 400, "start_date"},
    {"/api/v2/safety/history/101?start_date=2026-1-01", 400, "start_date"},
    {"/api/v2/safety/history/101?start_date=1969-12-31", 400, "start_date"},
    {"/api/v2/safety/history/101?start_date=%27;DROP%20TABLE%20x;--", 400, "start_date"},
    {"/api/v2/safety/history/101?end_date=2026-00-10", 400, "end_date"},
    {"/api/v2/safety/history/101?start_date=2026-03-02&end_date=2026-03-01", 400, "start_date"},
    {"/api/v2/safety/history/101?start_date=2025-01-01&end_date=2026-01-01", 400, "end_date"},
    {"/api/v2/safety/history/101?aggregation=2min", 400, "aggregation"},
    {"/api/v2/safety/history/101?aggregation=1MIN", 400, "aggregation"},
    {"/api/v2/safety/history/101?aggregation=1min&days=8", 400, "aggregation"},
    {"/api/v2/safety/history/?days=31", 400, "end_date"},
    {"/api/v2/safety/history/?aggregation=1min", 400, "aggregation"},
    {"/api/v2/safety/history/101/stats?days=-3", 400, "days"},
    {"/api/v2/safety/compare", 400, "ids"},
    {"/api/v2/safety/compare?ids=", 400, "ids"},
    {"/api/v2/safety/compare?ids=1,,2", 400, "ids"},
    {"/api/v2/safety/compare?ids=1,a", 400, "ids"},
    {"/api/v2/safety/compare?ids=1,", 400, "ids"},
    {"/api/v2/safety/compare?ids=%201", 400, "ids"},
    {"/api/v2/safety/compare?ids=1&days=0", 400, "days"},
    {"/api/v2/safety/ranking?metric=foo", 400, "metric"},
    {"/api/v2/safety/ranking?order=up", 400, "order"},
    {"/api/v2/safety/ranking?limit=0", 400, "limit"},
    {"/api/v2/safety/ranking?limit=1001", 400, "limit"},
    {"/api/v2/safety/ranking?min_index=101", 400, "min_index"},
    {"/api/v2/safety/ranking?min_index=nan", 400, "min_index"},
    {"/api/v2/safety/ranking?min_index=-1", 400, "min_index"},
    {"/api/v2/safety/ranking?risk_level=extreme", 400, "risk_level"},
    {"/api/v2/intersections/nearby?lon=0", 400, "lat"},
    {"/api/v2/intersections/nearby?lat=0", 400, "lon"},
    {"/api/v2/intersections/nearby?lat=91&lon=0", 400, "lat"},
    {"/api/v2/intersections/nearby?lat=-90.5&lon=0", 400, "lat"},
    {"/api/v2/intersections/nearby?lat=0&lon=-181", 400, "lon"},
    {"/api/v2/intersections/nearby?lat=0&lon=0&radius=0", 400, "radius"},
    {"/api/v2/intersections/nearby?lat=0&lon=0&radius=200001", 400, "radius"},
    {"/api/v2/intersections/nearby?lat=0&lon=0&radius=inf", 400, "radius"},
    {"/api/v2/intersections/nearby?lat=1e400&lon=0", 400, "lat"},
    {"/api/v2/intersections/nearby?lat=0x10&lon=0", 400, "lat"},
    {"/api/v2/intersections/nearby?lat=abc&lon=0", 400, "lat"},
    {"/api/v2/intersections/nearby?lat=0&lon=0&format=xml", 400, "format"},
    {"/api/v2/intersections/nearby?lat=0&lon=0&min_index=200", 400, "min_index"},
    {"/api/v2/intersections/route", 400, "waypoints"},
    {"/api/v2/intersections/route?waypoints=%5B", 400, "waypoints"},
    {"/api/v2/intersections/route?waypoints=%7B%7D", 400, "waypoints"},
    {"/api/v2/intersections/route?waypoints=%5B%7B%22lat%22%3A1%7D%5D", 400, "waypoints"},
    {"/api/v2/intersections/route?waypoints=%5B%7B%22lat%22%3A1%2C%22lon%22%3A2%7D%5D", 400,
     "waypoints"},
    {"/api/v2/intersections/route?waypoints=%5B%7B%22lat%22%3A95%2C%22lon%22%3A2%7D%2C%7B%22lat%22"
     "%3A1%2C%22lon%22%3A2%7D%5D",
     400, "waypoints"},
    {"/api/v2/intersections/route?waypoints=%5B%7B%22lat%22%3A%221%22%2C%22lon%22%3A2%7D%2C%7B%22"
     "lat%22%3A1%2C%22lon%22%3A2%7D%5D",
     400, "waypoints"},
    {"/api/v2/intersections/route?waypoints=%5B%7B%22lat%22%3A0%2C%22lon%22%3A0%7D%2C%7B%22lat%22"
     "%3A1%2C%22lon%22%3A1%7D%5D&buffer=-5",
     400, "buffer"},
    {"/api/v2/intersections/area", 400, "polygon"},
    {"/api/v2/intersections/area?polygon=%5B%7B%22lat%22%3A0%2C%22lon%22%3A0%7D%2C%7B%22lat%22%3A1"
     "%2C%22lon%22%3A1%7D%5D",
     400, "polygon"},
    /* a bow tie */
    {"/api/v2/intersections/area?polygon=%5B%7B%22lat%22%3A0%2C%22lon%22%3A0%7D%2C%7B%22lat%22%3A1"
     "%2C%22lon%22%3A1%7D%2C%7B%22lat%22%3A0%2C%22lon%22%3A1%7D%2C%7B%22lat%22%3A1%2C%22lon%22%3A0"
     "%7D%5D",
     400, "polygon"},
    {"/api/v2/intersections/x", 400, "intersection_id"},
    {"/api/v2/nope", 404, NULL},
    {"/api/v3/safety/index/", 404, NULL},
};

static void test_bad_inputs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_inputs / sizeof bad_inputs[0]; i++) {
        resp r = get(srv.port, bad_inputs[i].path);
        if (r.status != bad_inputs[i].status)
            fail_msg("%s: status %ld, want %d: %s", bad_inputs[i].path, r.status,
                     bad_inputs[i].status, r.body);
        jdoc j;
        jparse(&j, &r);
        char d[600], code[64];
        jstr(&j, 0, "detail", d, sizeof d);
        jstr(&j, 0, "code", code, sizeof code);
        assert_true(strlen(d) > 0 && strlen(code) > 0);
        int f = tsi_json_get(&j.d, 0, "field");
        assert_true(f >= 0);
        if (bad_inputs[i].field) {
            char field[64];
            jstr(&j, 0, "field", field, sizeof field);
            if (strcmp(field, bad_inputs[i].field) != 0)
                fail_msg("%s: field %s, want %s", bad_inputs[i].path, field, bad_inputs[i].field);
        } else {
            assert_true(tsi_json_is_null(&j.d, f));
        }
        jfree(&j);
        resp_free(&r);
    }
    /* too many route points: 1001 */
    size_t cap = 1001 * 40 + 100;
    char *wp = malloc(cap), *enc = malloc(cap * 3), *path = malloc(cap * 3 + 100);
    size_t k = 0;
    k += (size_t)snprintf(wp + k, cap - k, "[");
    for (int i = 0; i < 1001; i++)
        k += (size_t)snprintf(wp + k, cap - k, "%s{\"lat\":%d.5,\"lon\":1}", i ? "," : "", i % 80);
    snprintf(wp + k, cap - k, "]");
    urlenc(enc, cap * 3, wp);
    snprintf(path, cap * 3 + 100, "/api/v2/intersections/route?waypoints=%s", enc);
    resp r = get(srv.port, path);
    assert_int_equal(r.status, 400);
    if (!strstr(r.body, "too_many_points"))
        fail_msg("1001 points: %ld %.300s", r.status, r.body);
    resp_free(&r);
    /* a query string beyond the limit */
    memset(path, 'a', 70000);
    memcpy(path, "/api/v2/safety/index/?x=", 24);
    path[70000] = '\0';
    r = get(srv.port, path);
    assert_true(r.status == 414 || r.status == 431 || r.status == 413);
    resp_free(&r);
    free(wp);
    free(enc);
    free(path);
    /* methods */
    CURL *c = curl_easy_init();
    http_req(c, srv.port, "POST", "/api/v2/safety/index/", NULL, false, &r);
    assert_int_equal(r.status, 405);
    resp_free(&r);
    http_req(c, srv.port, "DELETE", "/api/v2/safety/index/101", NULL, false, &r);
    assert_int_equal(r.status, 405);
    resp_free(&r);
    http_req(c, srv.port, "OPTIONS", "/api/v2/safety/index/", NULL, false, &r);
    assert_int_equal(r.status, 204);
    char h[128];
    assert_true(resp_header(&r, "Access-Control-Allow-Methods", h, sizeof h));
    resp_free(&r);
    http_req(c, srv.port, "HEAD", "/api/v2/safety/index/", NULL, false, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    resp_free(&r);
    curl_easy_cleanup(c);
}

/* ---- HTTP behaviour: gzip, static files, openapi, metrics, health ------------------------ */
static void test_http(void **state)
{
    (void)state;
    CURL *c = curl_easy_init();
    resp plain, gz;
    http_req(c, srv.port, "GET", "/api/v2/openapi.json", NULL, false, &plain);
    assert_int_equal(plain.status, 200);
    http_req(c, srv.port, "GET", "/api/v2/openapi.json", NULL, true, &gz);
    char h[128];
    assert_true(resp_header(&gz, "Content-Encoding", h, sizeof h));
    assert_string_equal(h, "gzip");
    assert_int_equal(gz.len, plain.len); /* curl decoded it: identical bytes */
    assert_memory_equal(gz.body, plain.body, plain.len);
    assert_false(resp_header(&plain, "Content-Encoding", h, sizeof h));
    resp_free(&gz);
    /* the OpenAPI document covers every route */
    jdoc j;
    jparse(&j, &plain);
    char v[16];
    jstr(&j, 0, "openapi", v, sizeof v);
    assert_string_equal(v, "3.1.0");
    static const char *const routes[] = {"/health",
                                         "/metrics",
                                         "/api/v2/openapi.json",
                                         "/api/v2/config",
                                         "/api/v2/safety/index/",
                                         "/api/v2/safety/index/{intersection_id}",
                                         "/api/v2/safety/history/",
                                         "/api/v2/safety/history/{intersection_id}",
                                         "/api/v2/safety/history/{intersection_id}/stats",
                                         "/api/v2/safety/compare",
                                         "/api/v2/safety/ranking",
                                         "/api/v2/intersections/nearby",
                                         "/api/v2/intersections/route",
                                         "/api/v2/intersections/area",
                                         "/api/v2/intersections/{intersection_id}"};
    int paths = tsi_json_get(&j.d, 0, "paths");
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (tsi_json_get(&j.d, paths, routes[i]) < 0)
            fail_msg("openapi.json lacks %s", routes[i]);
    jfree(&j);
    resp_free(&plain);

    /* static files of the dashboard */
    http_req(c, srv.port, "GET", "/", NULL, false, &plain);
    assert_int_equal(plain.status, 200);
    assert_true(resp_header(&plain, "Content-Type", h, sizeof h));
    assert_string_equal(h, "text/html; charset=utf-8");
    assert_true(resp_header(&plain, "Cache-Control", h, sizeof h));
    assert_string_equal(h, "no-cache");
    assert_non_null(strstr(plain.body, "<title>tsi</title>"));
    resp_free(&plain);
    http_req(c, srv.port, "GET", "/assets/app-4f3a9c1b.js", NULL, false, &plain);
    assert_int_equal(plain.status, 200);
    assert_true(resp_header(&plain, "Content-Type", h, sizeof h));
    assert_string_equal(h, "text/javascript; charset=utf-8");
    assert_true(resp_header(&plain, "Cache-Control", h, sizeof h));
    assert_non_null(strstr(h, "immutable"));
    resp_free(&plain);
    http_req(c, srv.port, "GET", "/assets/missing.js", NULL, false, &plain);
    assert_int_equal(plain.status, 404);
    resp_free(&plain);
    http_req(c, srv.port, "GET", "/../../etc/passwd", NULL, false, &plain);
    assert_int_equal(plain.status, 404);
    assert_null(strstr(plain.body, "root:"));
    resp_free(&plain);
    http_req(c, srv.port, "GET", "/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd", NULL, false, &plain);
    assert_int_equal(plain.status, 404);
    assert_null(strstr(plain.body, "root:"));
    resp_free(&plain);
    /* a client-side route gets the app */
    http_req(c, srv.port, "GET", "/map", NULL, false, &plain);
    assert_int_equal(plain.status, 200);
    assert_non_null(strstr(plain.body, "<title>tsi</title>"));
    resp_free(&plain);

    /* health */
    http_req(c, srv.port, "GET", "/health", NULL, false, &plain);
    assert_int_equal(plain.status, 200);
    jparse(&j, &plain);
    char st[32];
    jstr(&j, 0, "status", st, sizeof st);
    assert_string_equal(st, "ok");
    int dbo = tsi_json_get(&j.d, 0, "database");
    bool reach = false;
    tsi_json_bool(&j.d, tsi_json_get(&j.d, dbo, "reachable"), &reach);
    assert_true(reach);
    char pg[32];
    jstr(&j, dbo, "postgis_version", pg, sizeof pg);
    char *want = th_value(owner, "SELECT extversion FROM pg_extension WHERE extname = 'postgis'");
    assert_string_equal(pg, want);
    free(want);
    jfree(&j);
    resp_free(&plain);

    /* a collector's status file (as `tsi collect` writes it; a collector test running
     * beside this one may replace it with its own, which has the same keys): its counters
     * become tsi_collector_* gauges, time_ms in seconds (promtool refuses "_ms") */
    char cdir[600], cpath[640], ctmp[660];
    snprintf(cdir, sizeof cdir, "%s/run", getenv("TSI_HOME"));
    mkdir(cdir, 0755);
    snprintf(cpath, sizeof cpath, "%s/collect.json", cdir);
    snprintf(ctmp, sizeof ctmp, "%s.api-test", cpath);
    FILE *cf = fopen(ctmp, "w");
    assert_non_null(cf);
    fputs("{\"time_ms\":1764064800000,\"pid\":1,\"messages_in\":7,\"bsm_stream_up\":true}\n", cf);
    assert_int_equal(fclose(cf), 0);
    assert_int_equal(rename(ctmp, cpath), 0);

    /* metrics count what was asked */
    http_req(c, srv.port, "GET", "/metrics", NULL, false, &plain);
    assert_int_equal(plain.status, 200);
    assert_non_null(strstr(plain.body, "tsi_http_requests_total{route=\"openapi\",code=\"2xx\"}"));
    assert_non_null(
        strstr(plain.body, "tsi_http_request_duration_seconds_bucket{route=\"static\""));
    assert_non_null(strstr(plain.body, "tsi_data_source{source=\"postgres\"} 1"));
    assert_non_null(strstr(plain.body, "tsi_cache_hits_total"));
    /* the database facts of `tsi status` (issue 17): sizes, partitions ahead */
    assert_non_null(strstr(plain.body, "tsi_db_size_bytes"));
    assert_non_null(strstr(plain.body, "tsi_db_partitions_ahead{"));
    assert_non_null(strstr(plain.body, "tsi_db_table_bytes{"));
    assert_non_null(strstr(plain.body, "\ntsi_collector_time_seconds "));
    assert_null(strstr(plain.body, "_ms "));
    /* promtool (Debian `prometheus`, installed by scripts/test) accepts the whole page */
    if (access("/usr/bin/promtool", X_OK) != 0)
        fail_msg("promtool is missing: apt-get install prometheus");
    char mpath[] = "/tmp/tsi-api-metrics-XXXXXX";
    int mfd = mkstemp(mpath);
    assert_true(mfd >= 0);
    assert_int_equal(write(mfd, plain.body, strlen(plain.body)), (ssize_t)strlen(plain.body));
    close(mfd);
    char pcmd[256], pout[8192];
    snprintf(pcmd, sizeof pcmd, "promtool check metrics < %s", mpath);
    char *pargv[] = {"sh", "-c", pcmd, NULL};
    int prc = tsi_proc_run(pargv, NULL, pout, sizeof pout, NULL);
    unlink(mpath);
    if (prc != 0)
        fail_msg("promtool refused /metrics:\n%s", pout);
    resp_free(&plain);
    curl_easy_cleanup(c);
}

/* ---- load: 50 clients -------------------------------------------------------------------------
 */
static atomic_long load_ok, load_err;
static atomic_int load_stop;

static void *load_client(void *arg)
{
    int id = (int)(intptr_t)arg;
    static const char *const paths[] = {
        "/api/v2/safety/index/",
        "/api/v2/safety/index/101",
        "/api/v2/safety/history/101?days=2",
        "/api/v2/safety/history/102/stats?days=3",
        "/api/v2/intersections/nearby?lat=38.87&lon=-77.27&radius=5000",
        "/health"};
    CURL *c = curl_easy_init();
    int k = id;
    while (!atomic_load(&load_stop)) {
        resp r;
        const char *p = paths[k % 6];
        bool z = k % 2 == 0;
        k++;
        CURLcode rc = http_req(c, srv.port, "GET", p, NULL, z, &r);
        if (rc == CURLE_OK && r.status == 200)
            atomic_fetch_add(&load_ok, 1);
        else
            atomic_fetch_add(&load_err, 1);
        resp_free(&r);
    }
    curl_easy_cleanup(c);
    return NULL;
}

static void test_concurrent_clients(void **state)
{
    (void)state;
    /* 50 clients with keep-alive; 10 s rather than the 30 s to keep the suite fast
     * (the sanitizer build is ~5x slower; bench/ runs the long mixed load) */
    const char *s = getenv("TSI_API_LOAD_SECONDS");
    int secs = s && atoi(s) > 0 ? atoi(s) : 10;
    pthread_t t[50];
    for (int i = 0; i < 50; i++)
        pthread_create(&t[i], NULL, load_client, (void *)(intptr_t)i);
    sleep((unsigned)secs);
    atomic_store(&load_stop, 1);
    for (int i = 0; i < 50; i++)
        pthread_join(t[i], NULL);
    fprintf(stderr, "load: %ld ok, %ld errors in %d s\n", atomic_load(&load_ok),
            atomic_load(&load_err), secs);
    assert_int_equal(atomic_load(&load_err), 0);
    assert_true(atomic_load(&load_ok) > 50);
}

/* ---- SIGTERM drains ---------------------------------------------------------------------------
 */
static void *slow_req(void *arg)
{
    resp *r = arg;
    CURL *c = curl_easy_init();
    http_req(c, srv.port, "GET", "/api/v2/safety/ranking?days=365&limit=5", NULL, false, r);
    curl_easy_cleanup(c);
    return NULL;
}

static void test_sigterm_drain(void **state)
{
    (void)state;
    resp r;
    memset(&r, 0, sizeof r);
    pthread_t t;
    pthread_create(&t, NULL, slow_req, &r);
    usleep(20000);
    int rc = srv_stop(&srv);
    pthread_join(t, NULL);
    assert_int_equal(rc, 0);
    /* the request in flight was answered, not cut */
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* the log carries the request id on the access line */
    FILE *f = fopen(srv.log, "r");
    assert_non_null(f);
    char line[2048];
    bool access = false, stopped = false;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "req=") && strstr(line, "route=ranking") && strstr(line, "status=200"))
            access = true;
        if (strstr(line, "stopped unfinished=0"))
            stopped = true;
    }
    fclose(f);
    assert_true(access);
    assert_true(stopped);
    unlink(srv.log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statement_columns),
        cmocka_unit_test(test_index),
        cmocka_unit_test(test_history_routing),
        cmocka_unit_test(test_history_minutes_order),
        cmocka_unit_test(test_history_minutes_exact),
        cmocka_unit_test(test_history_daily_table),
        cmocka_unit_test(test_history_all),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_compare_ranking),
        cmocka_unit_test(test_spatial_nearby),
        cmocka_unit_test(test_spatial_route_area),
        cmocka_unit_test(test_intersection_meta),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_http),
        cmocka_unit_test(test_concurrent_clients),
        cmocka_unit_test(test_sigterm_drain),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
