/* Integration tests of `tsi seed` (issue 13): what it writes is checked against SQL's own
 * aggregates of the rows it wrote (hourly from 1-minute rows, daily from hourly by
 * domain.md §5), the time plan, the latest-row table, the indices Parquet (read back
 * with DuckDB), re-runs, and bad arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <duckdb.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static char db[64];
static PGconn *c;
static char archive[256], env_archive[300];

static int setup(void **state)
{
    (void)state;
    th_db_create(db);
    c = th_connect("tsi_owner");
    PQclear(PQexec(c, "SET TIME ZONE 'UTC'"));
    snprintf(archive, sizeof archive, "/tmp/tsi-seed-test-%d", (int)getpid());
    snprintf(env_archive, sizeof env_archive, "TSI_ARCHIVE_DIR=%s", archive);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    PQfinish(c);
    th_db_drop(db);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", archive);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", archive);
    return 0;
}

static void run_seed(int n, int days)
{
    char ns[16], ds[16], out[8192];
    snprintf(ns, sizeof ns, "%d", n);
    snprintf(ds, sizeof ds, "%d", days);
    const char *args[] = {"seed", "--intersections", ns, "--days", ds, "--seed", "7", NULL};
    const char *env[] = {env_archive, NULL};
    int rc = th_run_tsi(args, env, out, sizeof out);
    if (rc != 0)
        fail_msg("tsi seed failed (%d): %s", rc, out);
}

static void test_seed_writes_consistent_history(void **state)
{
    (void)state;
    time_t before = time(NULL);
    run_seed(3, 4);
    time_t after = time(NULL);

    assert_int_equal(th_int(c, "SELECT count(*) FROM intersections"), 3);
    /* around the corridor: every intersection within 20 km of (38.87, -77.27) */
    assert_int_equal(th_int(c, "SELECT count(*) FROM intersections WHERE ST_DWithin(geometry::"
                               "geography, ST_MakePoint(-77.27, 38.87)::geography, 20000)"),
                     3);

    /* 1-minute rows: from the hour two days back to the last complete minute */
    long long first = th_int(c, "SELECT extract(epoch FROM min(\"timestamp\"))::bigint"
                                " FROM safety_indices_realtime");
    long long last = th_int(c, "SELECT extract(epoch FROM max(\"timestamp\"))::bigint"
                               " FROM safety_indices_realtime");
    long long cur_hour_b = (before - before % 60 - 60 + 60) / 3600 * 3600;
    long long cur_hour_a = (after - after % 60 - 60 + 60) / 3600 * 3600;
    assert_true(first == cur_hour_b - 2 * 86400 || first == cur_hour_a - 2 * 86400 ||
                first == cur_hour_b - 2 * 86400 + 60 || first == cur_hour_a - 2 * 86400 + 60);
    assert_true(last <= after - after % 60 - 60 && last >= before - before % 60 - 120);
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime"
                               " WHERE extract(second FROM \"timestamp\") <> 0"),
                     0);
    long long minutes = (last - first) / 60 + 1;
    long long rows = th_int(c, "SELECT count(*) FROM safety_indices_realtime");
    assert_true(rows <= 3 * minutes && rows >= 3 * minutes * 99 / 100); /* a few gaps */
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime WHERE hour_of_day"
                               " <> extract(hour FROM \"timestamp\") OR day_of_week <>"
                               " extract(isodow FROM \"timestamp\") - 1"),
                     0);
    /* realistic: rush hours riskier and busier than the night, some medium/high minutes */
    double rush = th_double(c, "SELECT avg(combined_index_eb) FROM safety_indices_realtime"
                               " WHERE hour_of_day BETWEEN 7 AND 9 AND day_of_week < 5");
    double night = th_double(c, "SELECT avg(combined_index_eb) FROM safety_indices_realtime"
                                " WHERE hour_of_day BETWEEN 1 AND 4");
    long long weekday_rush = th_int(c, "SELECT count(*) FROM safety_indices_realtime WHERE"
                                       " hour_of_day BETWEEN 7 AND 9 AND day_of_week < 5");
    if (weekday_rush > 0)
        assert_true(rush > night + 5);
    assert_true(th_int(c, "SELECT count(*) FROM safety_indices_realtime"
                          " WHERE combined_index_eb >= 60") > 0 ||
                weekday_rush == 0);

    /* hourly rows of the 1-minute window are exactly the aggregates of those rows */
    assert_int_equal(
        th_int(c,
               "WITH r AS (SELECT intersection_id, date_trunc('hour', \"timestamp\") AS h,"
               " avg(combined_index_eb) a, min(combined_index_eb) mn, max(combined_index_eb) mx,"
               " stddev_samp(combined_index_eb) s, sum(traffic_volume) tv, avg(traffic_volume) av,"
               " count(*) FILTER (WHERE combined_index_eb > 75) hr, count(*) / 60.0 q"
               " FROM safety_indices_realtime WHERE \"timestamp\" < date_trunc('hour',"
               " (SELECT max(\"timestamp\") + interval '1 minute' FROM safety_indices_realtime))"
               " GROUP BY 1, 2)"
               " SELECT count(*) FROM r LEFT JOIN safety_indices_hourly x ON x.intersection_id ="
               " r.intersection_id AND x.hour_timestamp = r.h"
               " WHERE x.avg_si IS NULL OR abs(x.avg_si - r.a) > 1e-9 OR x.min_si <> r.mn OR"
               " x.max_si <> r.mx OR abs(x.std_si - r.s) > 1e-9 OR x.total_volume <> r.tv OR"
               " abs(x.avg_volume - r.av) > 1e-9 OR x.high_risk_minutes <> r.hr OR"
               " abs(x.data_quality_score - r.q) > 1e-12"),
        0);
    /* the hour in progress is not rolled up */
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_hourly WHERE hour_timestamp"
                               " >= date_trunc('hour', (SELECT max(\"timestamp\") + interval"
                               " '1 minute' FROM safety_indices_realtime))"),
                     0);
    /* hourly back to 4 days (day aligned), every hour of every intersection */
    long long hfirst = th_int(c, "SELECT extract(epoch FROM min(hour_timestamp))::bigint"
                                 " FROM safety_indices_hourly");
    long long today = last - last % 86400;
    assert_int_equal(hfirst, today - 4 * 86400);

    /* daily rows: 4 complete days, each the §5 aggregate of its hourly rows */
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_daily"), 3 * 4);
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_daily"
                               " WHERE date >= (now() AT TIME ZONE 'UTC')::date"),
                     0);
    assert_int_equal(
        th_int(
            c,
            "WITH h AS (SELECT intersection_id, hour_timestamp::date AS d,"
            " extract(hour FROM hour_timestamp) AS hr, avg_si, min_si, max_si, std_si,"
            " total_volume, round(data_quality_score * 60) AS n FROM safety_indices_hourly),"
            " m AS (SELECT intersection_id, d, sum(n * avg_si) / sum(n) AS mean, sum(n) AS n,"
            " min(min_si) mn, max(max_si) mx, sum(total_volume) tv,"
            " count(*) FILTER (WHERE avg_si > 75) hrh, max(avg_si) peak FROM h GROUP BY 1, 2),"
            " s AS (SELECT h.intersection_id, h.d, sqrt(sum((h.n - 1) * coalesce(h.std_si ^ 2, 0)"
            " + h.n * (h.avg_si - m.mean) ^ 2) / (m.n - 1)) AS sd,"
            " (array_agg(h.hr ORDER BY h.avg_si DESC, h.hr))[1] AS ph"
            " FROM h JOIN m USING (intersection_id, d) GROUP BY 1, 2, m.n)"
            " SELECT count(*) FROM safety_indices_daily x JOIN m ON m.intersection_id ="
            " x.intersection_id AND m.d = x.date JOIN s ON s.intersection_id = x.intersection_id"
            " AND s.d = x.date"
            " WHERE abs(x.avg_si - m.mean) > 1e-9 OR x.min_si <> m.mn OR x.max_si <> m.mx OR"
            " abs(x.std_si - s.sd) > 1e-6 OR x.total_volume <> m.tv OR"
            " abs(x.avg_volume - m.tv::float8 / m.n) > 1e-9 OR x.high_risk_hours <> m.hrh OR"
            " x.peak_si <> m.peak OR x.peak_hour <> s.ph"),
        0);

    /* the VRU and vehicle sub-indices at every hour and day (issue 26): the window's hours
     * from their minutes (the jobs' rollup), the modelled ones from the model, each over
     * all the hour's minutes, min <= mean <= max */
    assert_int_equal(th_int(c,
                            "SELECT count(*) FROM safety_indices_hourly WHERE"
                            " avg_vru_si IS NULL OR avg_vehicle_si IS NULL OR"
                            " avg_vru_index IS NULL OR avg_vehicle_index_eb IS NULL OR"
                            " n_vru_si <> round(data_quality_score * 60) OR"
                            " n_vehicle_si <> round(data_quality_score * 60) OR"
                            " min_vru_si > avg_vru_si OR max_vru_si < avg_vru_si OR"
                            " min_vehicle_si > avg_vehicle_si OR max_vehicle_si < avg_vehicle_si"),
                     0);
    /* modelled hours: 0.6 VRU + 0.4 vehicle is the hour's index where nothing clips */
    long long modelled = th_int(c, "SELECT count(*) FROM safety_indices_hourly WHERE hour_timestamp"
                                   " < (SELECT min(\"timestamp\") FROM safety_indices_realtime)"
                                   " AND avg_vru_si BETWEEN 0.001 AND 99.999"
                                   " AND avg_vehicle_si BETWEEN 0.001 AND 99.999");
    assert_true(modelled > 3 * 24);
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_hourly WHERE hour_timestamp"
                               " < (SELECT min(\"timestamp\") FROM safety_indices_realtime)"
                               " AND avg_vru_si BETWEEN 0.001 AND 99.999"
                               " AND avg_vehicle_si BETWEEN 0.001 AND 99.999"
                               " AND abs(0.6 * avg_vru_si + 0.4 * avg_vehicle_si - avg_si) > 1e-9"),
                     0);
    /* every day: the minute-weighted mean, min and max of its hours' (an independent
     * recomputation from the hourly rows) */
    assert_int_equal(
        th_int(c, "WITH m AS (SELECT intersection_id, hour_timestamp::date AS d,"
                  " sum(n_vru_si * avg_vru_si) / sum(n_vru_si) AS v, min(min_vru_si) AS vmn,"
                  " max(max_vru_si) AS vmx, sum(n_vehicle_si * avg_vehicle_si) / sum(n_vehicle_si)"
                  " AS h, sum(n_vehicle_si) AS nh FROM safety_indices_hourly GROUP BY 1, 2)"
                  " SELECT count(*) FROM safety_indices_daily x LEFT JOIN m ON m.intersection_id ="
                  " x.intersection_id AND m.d = x.date WHERE m.v IS NULL OR x.avg_vru_si IS NULL"
                  " OR abs(x.avg_vru_si - m.v) > 1e-9 OR x.min_vru_si <> m.vmn OR"
                  " x.max_vru_si <> m.vmx OR abs(x.avg_vehicle_si - m.h) > 1e-9 OR"
                  " x.n_vehicle_si <> m.nh OR x.avg_vru_index IS NULL"),
        0);

    /* the latest-row table follows the realtime table */
    assert_int_equal(
        th_int(c, "SELECT count(*) FROM (SELECT DISTINCT ON (intersection_id) intersection_id,"
                  " \"timestamp\", combined_index_eb FROM safety_indices_realtime ORDER BY"
                  " intersection_id, \"timestamp\" DESC) d JOIN safety_indices_latest l USING"
                  " (intersection_id, \"timestamp\", combined_index_eb)"),
        3);

    /* the indices Parquet holds the same minute rows */
    duckdb_database ddb;
    duckdb_connection con;
    assert_int_equal(duckdb_open(NULL, &ddb), DuckDBSuccess);
    assert_int_equal(duckdb_connect(ddb, &con), DuckDBSuccess);
    char sql[600];
    snprintf(sql, sizeof sql,
             "SELECT count(*), sum(combined_index_eb), count(DISTINCT intersection_id),"
             " min(epoch(\"timestamp\"))::BIGINT, sum(avg_speed) > 0"
             " FROM read_parquet('%s/indices/*/*/*/seed_*.parquet')",
             archive);
    duckdb_result res;
    assert_int_equal(duckdb_query(con, sql, &res), DuckDBSuccess);
    assert_int_equal(duckdb_value_int64(&res, 0, 0), rows);
    double want = th_double(c, "SELECT sum(combined_index_eb) FROM safety_indices_realtime");
    assert_true(fabs(duckdb_value_double(&res, 1, 0) - want) < 1e-6 * want);
    assert_int_equal(duckdb_value_int64(&res, 2, 0), 3);
    assert_int_equal(duckdb_value_int64(&res, 3, 0), first);
    assert_true(duckdb_value_boolean(&res, 4, 0));
    duckdb_destroy_result(&res);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM read_parquet('%s/intersections/*.parquet')",
             archive);
    assert_int_equal(duckdb_query(con, sql, &res), DuckDBSuccess);
    assert_int_equal(duckdb_value_int64(&res, 0, 0), 3);
    duckdb_destroy_result(&res);
    duckdb_disconnect(&con);
    duckdb_close(&ddb);

    /* a re-run replaces: no duplicates anywhere, one seed file per day */
    run_seed(3, 4);
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_daily"), 3 * 4);
    assert_int_equal(th_int(c, "SELECT count(*) FROM (SELECT intersection_id, hour_timestamp"
                               " FROM safety_indices_hourly GROUP BY 1, 2 HAVING count(*) > 1) d"),
                     0);
    char pat[400];
    snprintf(pat, sizeof pat, "%s/indices/*/*/*/seed_*.parquet", archive);
    glob_t g;
    assert_int_equal(glob(pat, 0, NULL, &g), 0);
    assert_true(g.gl_pathc == 3 || g.gl_pathc == 2); /* the days the 1-minute window touches */
    globfree(&g);
}

static void test_seed_long_history_and_bad_args(void **state)
{
    (void)state;
    /* 120 days: hourly stops at 90, daily goes on (with its sub-indices) */
    run_seed(2, 120);
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_daily WHERE"
                               " avg_vru_si IS NULL OR avg_vehicle_si IS NULL OR n_vru_si = 0"),
                     0);
    assert_int_equal(
        th_int(c, "SELECT count(*) FROM safety_indices_daily WHERE intersection_id = 1"), 120);
    assert_int_equal(th_int(c, "SELECT (now() AT TIME ZONE 'UTC')::date - min(hour_timestamp)::date"
                               " FROM safety_indices_hourly"),
                     90);
    /* the intersections of the first run beyond N=2 keep their rows (ids 3) */
    char out[4096];
    const char *bad1[] = {"seed", "--intersections", "0", NULL};
    assert_int_equal(th_run_tsi(bad1, NULL, out, sizeof out), 2);
    const char *bad2[] = {"seed", "--days", "abc", NULL};
    assert_int_equal(th_run_tsi(bad2, NULL, out, sizeof out), 2);
    const char *bad3[] = {"seed", "--days", "0", NULL};
    assert_int_equal(th_run_tsi(bad3, NULL, out, sizeof out), 2);
    const char *bad4[] = {"seed", "extra", NULL};
    assert_int_equal(th_run_tsi(bad4, NULL, out, sizeof out), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_writes_consistent_history),
        cmocka_unit_test(test_seed_long_history_and_bad_args),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
