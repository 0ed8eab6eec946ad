/* Integration test of TSI_TIMEZONE in `tsi serve` (issue 13): with America/New_York, day,
 * week and month buckets, the dates of stats/compare/ranking and hour_of_day/day_of_week
 * follow the local calendar across a DST change, on the PostgreSQL path (local days
 * summed from hourly rows; UTC daily rows only before the hour-level data) and on the
 * Parquet path. The DST change is the one nearest to now, found by PostgreSQL; every
 * local midnight is computed here by hand from the two UTC offsets PostgreSQL reports,
 * and every expected value from the rows this test inserted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <duckdb.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "test_api_util.h"

#define TZ "America/New_York"

static char db[64];
static api_srv srv;
static PGconn *owner;
static char home[256];

static long long T;            /* the DST change: first instant of the new offset */
static long long off_a, off_b; /* UTC offsets (s) before and after T */
static long long D;            /* local day number of T */
static long long today;        /* the local date now */

/* first instant of local day x (midnight is never inside a US DST jump: they are at 2 AM) */
static long long mid(long long x)
{
    return x * 86400 - (x <= D ? off_a : off_b);
}

static long long off_at(long long t)
{
    return t < T ? off_a : off_b;
}

static void ts_str(char *out, size_t len, long long t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int dow_of_day(long long day) /* 0 = Monday; 1970-01-01 was a Thursday */
{
    return (int)(((day % 7) + 7 + 3) % 7);
}

/* ---- the hourly rows of intersection 501: every UTC hour of local days D-2 .. D+2 ---- */
typedef struct {
    long long h; /* epoch seconds */
    double si, mn, mx, sd;
    int n, vol, hr;
} hour_row;
static hour_row hrs[200];
static int nhrs;

/* daily rows (UTC dates D-6 .. D+2) of 501: avg 5 + j, volume 10000 + j */
static double daily_si(long long date)
{
    return 5.0 + (double)(date - (D - 6));
}
static long long daily_vol(long long date)
{
    return 10000 + (date - (D - 6));
}

static void insert_rows(void)
{
    th_sqlf(owner,
            "INSERT INTO intersections (id, name, latitude, longitude, geometry) VALUES"
            " (501, 'DST corner', 40.75, -73.99, ST_SetSRID(ST_MakePoint(-73.99, 40.75), 4326)),"
            " (502, 'Minutes corner', 40.76, -73.98,"
            "  ST_SetSRID(ST_MakePoint(-73.98, 40.76), 4326))");
    tsi_buf sql = TSI_BUF_INIT;
    tsi_buf_puts(&sql, "INSERT INTO safety_indices_hourly (intersection_id, hour_timestamp, avg_si,"
                       " min_si, max_si, std_si, total_volume, avg_volume, high_risk_minutes,"
                       " data_quality_score) VALUES ");
    nhrs = 0;
    for (long long h = mid(D - 2); h < mid(D + 3); h += 3600) {
        hour_row *x = &hrs[nhrs];
        int k = nhrs++;
        x->h = h;
        x->si = 20 + (k * 13) % 70;
        x->mn = x->si - 5;
        x->mx = x->si + 5;
        x->sd = 2 + k % 3;
        x->n = 30 + k % 31;
        x->vol = 100 + k;
        x->hr = x->si > 75 ? x->n / 2 : 0;
        char ts[32];
        ts_str(ts, sizeof ts, h);
        tsi_buf_printf(&sql, "%s(501, '%s', %g, %g, %g, %g, %d, %g, %d, %.17g)", k ? "," : "", ts,
                       x->si, x->mn, x->mx, x->sd, x->vol, (double)x->vol / x->n, x->hr,
                       x->n / 60.0);
    }
    th_sqlf(owner, "%s", sql.data);
    tsi_buf_free(&sql);
    th_sqlf(owner,
            "INSERT INTO safety_indices_daily (intersection_id, date, avg_si, min_si, max_si,"
            " std_si, total_volume, avg_volume, high_risk_hours, peak_hour, peak_si)"
            " SELECT 501, date '1970-01-01' + d, 5 + (d - %lld), 1, 99, 3, 10000 + (d - %lld),"
            "  (10000 + (d - %lld)) / 1440.0, 0, 8, 50 FROM generate_series(%lld, %lld) d",
            D - 6, D - 6, D - 6, D - 6, D + 2);
    /* minute rows of 502 over the last 90 minutes (today's local-hour check) */
    th_sqlf(owner,
            "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", combined_index,"
            " combined_index_eb, traffic_volume, vru_count, vehicle_event_count, vru_event_count,"
            " hour_of_day, day_of_week)"
            " SELECT 502, t, 40 + m %% 20, NULL, m %% 7, 0, 0, 0,"
            "  extract(hour FROM t AT TIME ZONE '" TZ "'),"
            "  extract(isodow FROM t AT TIME ZONE '" TZ "') - 1"
            " FROM (SELECT m, date_trunc('minute', now()) - m * interval '1 minute' AS t"
            "       FROM generate_series(2, 90) m) s");
}

/* ---- the indices Parquet of 501: minutes of local days D-1 .. D+1, one file per UTC day */
static double pq_si(long long m)
{
    return 10 + (double)((m * 7) % 80);
}

static void write_parquet(void)
{
    duckdb_database ddb;
    duckdb_connection con;
    assert_int_equal(duckdb_open(NULL, &ddb), DuckDBSuccess);
    assert_int_equal(duckdb_connect(ddb, &con), DuckDBSuccess);
    char sql[2048], dir[512];
    duckdb_result res;
    long long m0 = mid(D - 1) / 60, m1 = mid(D + 2) / 60;
    for (long long day = (m0 * 60) / 86400; day * 86400 < m1 * 60; day++) {
        char ds[16];
        day_str(ds, sizeof ds, day);
        snprintf(dir, sizeof dir, "mkdir -p %s/archive/indices/%.4s/%.2s/%.2s", home, ds, ds + 5,
                 ds + 8);
        assert_int_equal(system(dir), 0);
        long long a = day * 1440 > m0 ? day * 1440 : m0;
        long long b = (day + 1) * 1440 < m1 ? (day + 1) * 1440 : m1;
        snprintf(
            sql, sizeof sql,
            "COPY (SELECT 501::BIGINT AS intersection_id, to_timestamp(m * 60) AS \"timestamp\","
            " 10 + (m * 7) %% 80 AS combined_index, NULL::DOUBLE AS combined_index_eb,"
            " NULL::DOUBLE AS vru_index, NULL::DOUBLE AS vru_index_eb,"
            " NULL::DOUBLE AS vehicle_index, NULL::DOUBLE AS vehicle_index_eb,"
            " (m %% 13)::INTEGER AS traffic_volume, 0::INTEGER AS vru_count"
            " FROM range(%lld, %lld) t(m)) TO '%s/archive/indices/%.4s/%.2s/%.2s/t.parquet'"
            " (FORMAT parquet)",
            a, b, home, ds, ds + 5, ds + 8);
        if (duckdb_query(con, sql, &res) == DuckDBError)
            fail_msg("duckdb: %s", duckdb_result_error(&res));
        duckdb_destroy_result(&res);
    }
    snprintf(dir, sizeof dir, "mkdir -p %s/archive/intersections", home);
    assert_int_equal(system(dir), 0);
    snprintf(sql, sizeof sql,
             "COPY (SELECT 501::BIGINT AS id, 'DST corner' AS name, 40.75 AS latitude,"
             " -73.99 AS longitude) TO '%s/archive/intersections/i.parquet' (FORMAT parquet)",
             home);
    if (duckdb_query(con, sql, &res) == DuckDBError)
        fail_msg("duckdb: %s", duckdb_result_error(&res));
    duckdb_destroy_result(&res);
    duckdb_disconnect(&con);
    duckdb_close(&ddb);
}

static int setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    th_db_create(db);
    owner = th_connect("tsi_owner");
    /* the DST change of New York nearest to now (there is one within 6 months) */
    T = th_int(owner, "SELECT extract(epoch FROM h)::bigint FROM generate_series("
                      " date_trunc('hour', now()) - interval '80 days',"
                      " date_trunc('hour', now()) + interval '120 days', interval '1 hour') h"
                      " WHERE (h AT TIME ZONE '" TZ "') - (h AT TIME ZONE 'UTC') <>"
                      "  ((h - interval '1 hour') AT TIME ZONE '" TZ "')"
                      "  - ((h - interval '1 hour') AT TIME ZONE 'UTC')"
                      " ORDER BY abs(extract(epoch FROM h - now())) LIMIT 1");
    off_a = th_intf(owner,
                    "SELECT extract(epoch FROM (to_timestamp(%lld - 1) AT TIME ZONE '" TZ "')"
                    " - (to_timestamp(%lld - 1) AT TIME ZONE 'UTC'))::bigint",
                    T, T);
    off_b = th_intf(owner,
                    "SELECT extract(epoch FROM (to_timestamp(%lld) AT TIME ZONE '" TZ "')"
                    " - (to_timestamp(%lld) AT TIME ZONE 'UTC'))::bigint",
                    T, T);
    D = (T + off_a) / 86400; /* T is 2 AM local of the old offset */
    today = th_int(owner, "SELECT (now() AT TIME ZONE '" TZ "')::date - date '1970-01-01'");
    /* the hand-made midnights agree with PostgreSQL's */
    for (long long x = D - 6; x <= D + 8; x++)
        assert_int_equal(mid(x), th_intf(owner,
                                         "SELECT extract(epoch FROM ((date '1970-01-01' + %lld)"
                                         "::timestamp AT TIME ZONE '" TZ "'))::bigint",
                                         x));
    insert_rows();
    snprintf(home, sizeof home, "/tmp/tsi-api-tz-%d", (int)getpid());
    mkdir(home, 0755);
    write_parquet();
    static char e1[300], e2[300];
    snprintf(e1, sizeof e1, "TSI_TIMEZONE=%s", TZ);
    snprintf(e2, sizeof e2, "TSI_ARCHIVE_DIR=%s/archive", home);
    const char *env[] = {e1, e2, NULL};
    const char *args[] = {"--threads", "2", "--access-log", "off", NULL};
    srv_start(&srv, args, env);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    api_teardown(&srv, owner, db, home);
    return 0;
}

/* expected local-day point of 501 for day x (hours of the day, or the daily row) */
typedef struct {
    long long ts;
    double si;
    long long vol;
    int hours;
    double n; /* minutes: the weight of the day in a week or month (means over minutes) */
} day_exp;

static day_exp expect_day(long long x)
{
    day_exp e = {mid(x), NAN, 0, 0, 0};
    if (x < D - 2) { /* before the hourly rows: the UTC daily row of the same date */
        e.si = daily_si(x);
        e.vol = daily_vol(x);
        e.n = 1440; /* total_volume / avg_volume of the row */
        return e;
    }
    double sn = 0, ssi = 0;
    for (int i = 0; i < nhrs; i++)
        if (hrs[i].h >= mid(x) && hrs[i].h < mid(x + 1)) {
            sn += hrs[i].n;
            ssi += hrs[i].n * hrs[i].si;
            e.vol += hrs[i].vol;
            e.hours++;
        }
    e.si = ssi / sn;
    e.n = sn;
    return e;
}

static void check_point(jdoc *j, int p, long long ts, double si, long long vol, const char *what)
{
    char got[40], want[40];
    jstr(j, p, "timestamp", got, sizeof got);
    ts_str(want, sizeof want, ts);
    if (strcmp(got, want) != 0)
        fail_msg("%s: timestamp %s, want %s", what, got, want);
    assert_near(jnum(j, p, "safety_index"), si, 1e-9, what);
    assert_int_equal((long long)jnum(j, p, "traffic_volume"), vol);
    long long local = ts + off_at(ts);
    assert_int_equal((long long)jnum(j, p, "hour_of_day"), (local % 86400) / 3600);
    assert_int_equal((long long)jnum(j, p, "day_of_week"), dow_of_day(local / 86400));
}

static void test_days_across_dst(void **state)
{
    (void)state;
    resp r;
    jdoc j;
    int pts = history_get(srv.port, 501, D - 4, D + 2, "1day", &r, &j);
    assert_int_equal(jcount(&j, pts), 7);
    for (long long x = D - 4; x <= D + 2; x++) {
        day_exp ex = expect_day(x);
        char what[64];
        snprintf(what, sizeof what, "local day D%+lld", x - D);
        check_point(&j, jat(&j, pts, (int)(x - (D - 4))), ex.ts, ex.si, ex.vol, what);
        if (x >= D - 2)
            assert_int_equal(ex.hours, x == D ? 24 - (off_b - off_a) / 3600 : 24);
    }
    jfree(&j);
    resp_free(&r);
}

static void test_hours_of_dst_day(void **state)
{
    (void)state;
    resp r;
    jdoc j;
    int pts = history_get(srv.port, 501, D, D, "1hour", &r, &j);
    int k = 0;
    for (int i = 0; i < nhrs; i++) {
        if (hrs[i].h < mid(D) || hrs[i].h >= mid(D + 1))
            continue;
        char what[48];
        snprintf(what, sizeof what, "hour %d of the DST day", k);
        check_point(&j, jat(&j, pts, k), hrs[i].h, hrs[i].si, hrs[i].vol, what);
        k++;
    }
    assert_int_equal(jcount(&j, pts), k);
    assert_int_equal(k, 24 - (off_b - off_a) / 3600); /* 25 in autumn, 23 in spring */
    assert_int_equal((long long)jnum(&j, 0, "total_points"), k);
    jfree(&j);
    resp_free(&r);
}

static void test_week_month(void **state)
{
    (void)state;
    const char *aggs[] = {"1week", "1month"};
    for (int a = 0; a < 2; a++) {
        /* group the local days by their week (Monday) or month start, by hand; a bin's
         * mean is the mean of its minutes (each day weighted by its minutes) */
        long long lab[8];
        double sum[8], cnt[8];
        long long vol[8];
        int nb = 0;
        for (long long x = D - 4; x <= D + 2; x++) {
            long long start;
            if (a == 0) {
                start = x - dow_of_day(x);
            } else {
                time_t t = (time_t)(x * 86400);
                struct tm tm;
                gmtime_r(&t, &tm);
                start = x - (tm.tm_mday - 1);
            }
            if (nb == 0 || lab[nb - 1] != mid(start)) {
                lab[nb] = mid(start);
                sum[nb] = 0;
                vol[nb] = 0;
                cnt[nb] = 0;
                nb++;
            }
            day_exp ex = expect_day(x);
            sum[nb - 1] += ex.si * ex.n;
            vol[nb - 1] += ex.vol;
            cnt[nb - 1] += ex.n;
        }
        resp r;
        jdoc j;
        int pts = history_get(srv.port, 501, D - 4, D + 2, aggs[a], &r, &j);
        assert_int_equal(jcount(&j, pts), nb);
        for (int b = 0; b < nb; b++)
            check_point(&j, jat(&j, pts, b), lab[b], sum[b] / cnt[b], vol[b], aggs[a]);
        jfree(&j);
        resp_free(&r);
    }
}

static void test_stats_compare_ranking(void **state)
{
    (void)state;
    /* local day D alone: its 23/24/25 UTC hours, never the UTC daily rows */
    double n = 0, snm = 0, sq = 0, mn = 1e9, mx = -1e9;
    long long vol = 0, hr = 0;
    for (int i = 0; i < nhrs; i++) {
        const hour_row *x = &hrs[i];
        if (x->h < mid(D) || x->h >= mid(D + 1))
            continue;
        n += x->n;
        snm += x->n * x->si;
        sq += (x->n - 1) * x->sd * x->sd + x->n * x->si * x->si;
        mn = x->mn < mn ? x->mn : mn;
        mx = x->mx > mx ? x->mx : mx;
        vol += x->vol;
        hr += x->hr;
    }
    double avg = snm / n, sd = sqrt((sq - snm * snm / n) / (n - 1));
    char d[16], path[256];
    day_str(d, sizeof d, D);
    snprintf(path, sizeof path, "/api/v2/safety/history/501/stats?start_date=%s&end_date=%s", d, d);
    resp r;
    jdoc j;
    get_json(srv.port, path, &r, &j);
    char ps[16];
    jstr(&j, 0, "period_start", ps, sizeof ps);
    assert_string_equal(ps, d);
    assert_near(jnum(&j, 0, "avg_safety_index"), avg, 1e-9, "stats avg");
    assert_near(jnum(&j, 0, "min_safety_index"), mn, 1e-12, "stats min");
    assert_near(jnum(&j, 0, "max_safety_index"), mx, 1e-12, "stats max");
    assert_near(jnum(&j, 0, "std_safety_index"), sd, 1e-9, "stats std");
    assert_int_equal((long long)jnum(&j, 0, "total_traffic_volume"), vol);
    assert_int_equal((long long)jnum(&j, 0, "high_risk_intervals"), hr);
    assert_int_equal((long long)jnum(&j, 0, "data_minutes"), (long long)n);
    jfree(&j);
    resp_free(&r);

    snprintf(path, sizeof path, "/api/v2/safety/compare?ids=501&start_date=%s&end_date=%s", d, d);
    r = get(srv.port, path);
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    int it = jat(&j, tsi_json_get(&j.d, 0, "intersections"), 0);
    assert_near(jnum(&j, it, "avg_safety_index"), avg, 1e-9, "compare avg");
    assert_int_equal((long long)jnum(&j, it, "total_traffic_volume"), vol);
    jfree(&j);
    resp_free(&r);

    snprintf(path, sizeof path,
             "/api/v2/safety/ranking?metric=total_volume&start_date=%s&end_date=%s&limit=5", d, d);
    r = get(srv.port, path);
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    it = jat(&j, tsi_json_get(&j.d, 0, "items"), 0);
    assert_int_equal((long long)jnum(&j, it, "intersection_id"), 501);
    assert_int_equal((long long)jnum(&j, it, "value"), vol);
    jfree(&j);
    resp_free(&r);
}

static void test_minutes_and_today(void **state)
{
    (void)state;
    resp r;
    jdoc j;
    int pts = history_get(srv.port, 502, today, today, "1min", &r, &j);
    /* expected, by PostgreSQL: the rows of that local date with their local hour and
     * weekday (robust to a DST change within the day) */
    char q[600];
    snprintf(q, sizeof q,
             "SELECT extract(epoch FROM \"timestamp\")::bigint,"
             " extract(hour FROM \"timestamp\" AT TIME ZONE '" TZ "')::int,"
             " (extract(isodow FROM \"timestamp\" AT TIME ZONE '" TZ "') - 1)::int"
             " FROM safety_indices_realtime WHERE intersection_id = 502"
             " AND (\"timestamp\" AT TIME ZONE '" TZ "')::date = date '1970-01-01' + %lld"
             " ORDER BY 1",
             today);
    PGresult *ex = PQexec(owner, q);
    assert_int_equal(PQresultStatus(ex), PGRES_TUPLES_OK);
    assert_true(PQntuples(ex) > 0);
    assert_int_equal(jcount(&j, pts), PQntuples(ex));
    int k = 0;
    for (int i = tsi_json_first(&j.d, pts); i >= 0; i = tsi_json_next(&j.d, pts, i), k++) {
        char ts[40], want[40];
        jstr(&j, i, "timestamp", ts, sizeof ts);
        ts_str(want, sizeof want, strtoll(PQgetvalue(ex, k, 0), NULL, 10));
        assert_string_equal(ts, want);
        assert_int_equal((long long)jnum(&j, i, "hour_of_day"), atoll(PQgetvalue(ex, k, 1)));
        assert_int_equal((long long)jnum(&j, i, "day_of_week"), atoll(PQgetvalue(ex, k, 2)));
    }
    PQclear(ex);
    jfree(&j);
    resp_free(&r);
    /* no dates: the range ends on the local today */
    r = get(srv.port, "/api/v2/safety/history/502/stats?days=1");
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    char pe[16], t2[16], d[16];
    day_str(d, sizeof d, today);
    jstr(&j, 0, "period_end", pe, sizeof pe);
    day_str(t2, sizeof t2,
            th_int(owner, "SELECT (now() AT TIME ZONE '" TZ "')::date - date '1970-01-01'"));
    if (strcmp(pe, d) != 0 && strcmp(pe, t2) != 0) /* local midnight may pass meanwhile */
        fail_msg("period_end %s, want the local today %s", pe, t2);
    jfree(&j);
    resp_free(&r);
}

static void test_parquet_days(void **state)
{
    (void)state;
    static char e1[300], e2[300];
    snprintf(e1, sizeof e1, "TSI_TIMEZONE=%s", TZ);
    snprintf(e2, sizeof e2, "TSI_ARCHIVE_DIR=%s/archive", home);
    const char *env[] = {e1, e2, NULL};
    const char *args[] = {"--threads", "2", "--source", "parquet", NULL};
    api_srv pq;
    srv_start(&pq, args, env);
    char path[256];
    history_path(path, sizeof path, 501, D - 1, D + 1, "1day");
    resp r = get(pq.port, path);
    assert_int_equal(r.status, 200);
    char src[32];
    assert_true(resp_header(&r, "X-Data-Source", src, sizeof src));
    assert_string_equal(src, "parquet");
    jdoc j;
    jparse(&j, &r);
    int pts = tsi_json_get(&j.d, 0, "data_points");
    assert_int_equal(jcount(&j, pts), 3);
    for (long long x = D - 1; x <= D + 1; x++) {
        double sum = 0;
        long long vol = 0, n = 0;
        for (long long m = mid(x) / 60; m < mid(x + 1) / 60; m++) {
            sum += pq_si(m);
            vol += m % 13;
            n++;
        }
        assert_int_equal(n, x == D ? 1440 - (off_b - off_a) / 60 : 1440);
        char what[48];
        snprintf(what, sizeof what, "parquet local day D%+lld", x - D);
        check_point(&j, jat(&j, pts, (int)(x - (D - 1))), mid(x), sum / n, vol, what);
    }
    jfree(&j);
    resp_free(&r);
    assert_int_equal(srv_stop_clean(&pq), 0);
    unlink(pq.log);
}

static void test_bad_zone(void **state)
{
    (void)state;
    const char *bad[] = {"Mars/Olympus_Mons", "../../../etc/passwd", "/etc/localtime",
                         "America/New_York; DROP TABLE intersections"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *args[] = {"serve", "--port", "0", "--timezone", bad[i], NULL};
        char out[4096];
        int rc = th_run_tsi(args, NULL, out, sizeof out);
        if (rc != 2)
            fail_msg("--timezone '%s': exit %d, want 2: %s", bad[i], rc, out);
        assert_non_null(strstr(out, "time zone"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_days_across_dst),   cmocka_unit_test(test_hours_of_dst_day),
        cmocka_unit_test(test_week_month),        cmocka_unit_test(test_stats_compare_ranking),
        cmocka_unit_test(test_minutes_and_today), cmocka_unit_test(test_parquet_days),
        cmocka_unit_test(test_bad_zone),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
