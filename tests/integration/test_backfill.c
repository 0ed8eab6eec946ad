/* Integration: `tsi backfill` and `tsi validate` against real PostgreSQL (issue 15).
 *
 * The fixtures are written by this test with DuckDB in both layouts:
 *   legacy 1-minute  indices/indices_<D-3>.parquet: float ids (0.0, 5.0), 90 minutes per
 *                    intersection, then a duplicate row, a row with index 120 and a row of
 *                    an unknown intersection (99);
 *   legacy 15-minute indices/indices_<D-4>.parquet: string ids ('5', '7'), no
 *                    Combined_Index_EB column;
 *   tsi layout       indices/YYYY/MM/DD/indices_test_1.parquet: two intersections, the two
 *                    whole hours before the previous one (inside the realtime window), one
 *                    row with a negative count, plus a conflicts_ file to be ignored.
 * The values come from formulas (macros below) evaluated by DuckDB for the files and by
 * PostgreSQL for the expectations; every expected number is computed by PostgreSQL from
 * those formulas, never read from the code under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <duckdb.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "duck_util.h"
#include "harness.h"

#define US_MIN  60000000LL
#define US_HOUR (60 * US_MIN)
#define US_DAY  (24 * US_HOUR)

/* formulas of m (minute or quarter index) and iid, valid in DuckDB and PostgreSQL */
#define F_CI    "(((m * 37 + iid * 11) %% 97) + 0.25)"
#define F_EB    "(CASE WHEN m %% 3 = 0 THEN NULL ELSE (((m * 37 + iid * 11) %% 97) + 0.25) * 0.8 END)"
#define F_VRU   "(((m * 13) %% 100) * 0.5)"
#define F_VEH   "(((m * 17) %% 100) * 0.9)"
#define F_VOL   "((m %% 20) + iid)"
#define F_VRUC  "(m %% 4)"
#define F_VRUE  "(m %% 2)"
#define F_VEHE  "(m %% 3)"
#define F_CI15  "(((m * 23 + iid) %% 100) + 0.5)"
#define F_VOL15 "(30 + m + iid)"

#define assert_exit(rc, want)                                                                      \
    do {                                                                                           \
        if ((rc) != (want))                                                                        \
            fail_msg("exit status %d, want %d; output:\n%s", (rc), (want), dump(out));             \
    } while (0)

/* fail_msg truncates: the whole output goes to stderr first */
static const char *dump(const char *s)
{
    fprintf(stderr, "---- output ----\n%s\n----------------\n", s);
    return "(above)";
}

static char out[1 << 20];

#define expect_in(needle)                                                                          \
    do {                                                                                           \
        if (!strstr(out, (needle)))                                                                \
            fail_msg("missing in the output: %s%s", (needle), dump(out));                          \
    } while (0)

static char dir[512];
static char legacy1[600], legacy15[600];
static long long today_us, d1_us, d2_us, h0_us; /* D-3, D-4, first realtime hour */

static void mkdirs(const char *path)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                fail_msg("mkdir %s: %s", tmp, strerror(errno));
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", tmp, strerror(errno));
}

static void day_path(char *buf, size_t len, long long us)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, "%s/indices/%04d/%02d/%02d", dir, tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday);
}

static void date_str(char *buf, size_t len, long long us)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d", &tm);
}

/* The database clock decides the dates (the backfill reads the same clock). */
static void clock_from(PGconn *c)
{
    today_us = th_intf(
        c, "SELECT (extract(epoch FROM date_trunc('day', now(), 'UTC')) * 1000000)::bigint");
    long long hour_us =
        th_intf(c, "SELECT (extract(epoch FROM date_trunc('hour', now())) * 1000000)::bigint");
    d1_us = today_us - 3 * US_DAY;
    d2_us = today_us - 4 * US_DAY;
    h0_us = hour_us - 3 * US_HOUR; /* hours h0 and h0+1 are complete and in the window */
}

static void write_fixtures(void)
{
    duckdb_database db;
    duckdb_connection con;
    assert_int_equal(duckdb_open(NULL, &db), DuckDBSuccess);
    assert_int_equal(duckdb_connect(db, &con), DuckDBSuccess);
    duckdb_query(con, "SET TimeZone = 'UTC'", NULL);
    char d1[16], d2[16];
    date_str(d1, sizeof d1, d1_us);
    date_str(d2, sizeof d2, d2_us);
    char idx[600];
    snprintf(idx, sizeof idx, "%s/indices", dir);
    mkdirs(idx);
    snprintf(legacy1, sizeof legacy1, "%s/indices_%s.parquet", idx, d1);
    snprintf(legacy15, sizeof legacy15, "%s/indices_%s.parquet", idx, d2);

    /* legacy, 1-minute bins, 10:00 .. 11:29 for intersections 0.0 and 5.0; rows 1..180 */
    duck_queryf(con,
                "CREATE TABLE l1 AS SELECT row_number() OVER (ORDER BY iid, m) AS seq,"
                " CAST(iid AS DOUBLE) AS intersection,"
                " make_timestamp(%lld + (600 + m) * %lld) AS time_15min,"
                " " F_CI " AS Combined_Index, " F_EB " AS Combined_Index_EB,"
                " " F_VRU " AS VRU_Index, " F_VEH " AS Vehicle_Index,"
                " " F_VOL " AS vehicle_count, " F_VRUC " AS psm_vru_count,"
                " " F_VRUE " AS vru_event_count, " F_VEHE " AS vehicle_event_count,"
                " CAST(10 + m // 60 AS BIGINT) AS hour_of_day, isodow(make_timestamp(%lld)) - 1"
                " AS day_of_week"
                " FROM range(0, 90) t(m), (VALUES (0), (5)) v(iid)",
                d1_us, US_MIN, d1_us);
    /* row 181: the duplicate of row 6 (intersection 0, minute 5); row 182: index 120;
     * row 183: an intersection that does not exist */
    duck_queryf(con, "INSERT INTO l1 SELECT 181, * EXCLUDE (seq) FROM l1 WHERE seq = 6");
    duck_queryf(con,
                "INSERT INTO l1 SELECT 182, 5.0, make_timestamp(%lld), 120, NULL,"
                " 1, 1, 3, 0, 0, 0, 12, isodow(make_timestamp(%lld)) - 1",
                d1_us + 720 * US_MIN, d1_us);
    duck_queryf(con,
                "INSERT INTO l1 SELECT 183, 99.0, make_timestamp(%lld), 50, NULL,"
                " 1, 1, 3, 0, 0, 0, 12, isodow(make_timestamp(%lld)) - 1",
                d1_us + 720 * US_MIN, d1_us);
    duck_queryf(con, "COPY (SELECT * EXCLUDE (seq) FROM l1 ORDER BY seq) TO '%s' (FORMAT parquet)",
                legacy1);

    /* legacy, 15-minute bins, 08:00 .. 09:45 for intersections '5' and '7', no EB column */
    duck_queryf(con,
                "COPY (SELECT CAST(iid AS VARCHAR) AS intersection,"
                " make_timestamp(%lld + (480 + 15 * m) * %lld) AS time_15min,"
                " " F_CI15 " AS Combined_Index, " F_VRU " AS VRU_Index, " F_VEH " AS Vehicle_Index,"
                " " F_VOL15 " AS vehicle_count, " F_VRUC " AS psm_vru_count,"
                " " F_VRUE " AS vru_event_count, " F_VEHE " AS vehicle_event_count,"
                " 8 + m // 4 AS hour_of_day, isodow(make_timestamp(%lld)) - 1 AS day_of_week"
                " FROM range(0, 8) t(m), (VALUES (5), (7)) v(iid) ORDER BY iid, m)"
                " TO '%s' (FORMAT parquet)",
                d2_us, US_MIN, d2_us, legacy15);

    /* tsi layout: intersections 0 and 7, 120 minutes from h0, by day directory; one row
     * with a negative count (30 minutes before h0) */
    duck_queryf(con,
                "CREATE TABLE t AS SELECT CAST(iid AS BIGINT) AS intersection_id,"
                " CAST(make_timestamp(%lld + m * %lld) AS TIMESTAMPTZ) AS \"timestamp\","
                " " F_CI " AS combined_index, " F_EB " AS combined_index_eb,"
                " " F_VRU " AS vru_index, CAST(NULL AS DOUBLE) AS vru_index_eb,"
                " " F_VEH " AS vehicle_index, CAST(NULL AS DOUBLE) AS vehicle_index_eb,"
                " CAST(" F_VOL " AS INTEGER) AS traffic_volume, CAST(" F_VRUC
                " AS INTEGER) AS vru_count,"
                " CAST(" F_VEHE " AS INTEGER) AS vehicle_event_count,"
                " CAST(" F_VRUE " AS INTEGER) AS vru_event_count,"
                " CAST(hour(make_timestamp(%lld + m * %lld)) AS SMALLINT) AS hour_of_day,"
                " CAST(isodow(make_timestamp(%lld + m * %lld)) - 1 AS SMALLINT) AS day_of_week,"
                " 8.5 + m %% 5 AS avg_speed, 1.25 AS speed_stddev, CAST(m %% 2 AS INTEGER) AS "
                "hard_braking_count"
                " FROM range(0, 120) r(m), (VALUES (0), (7)) v(iid)",
                h0_us, US_MIN, h0_us, US_MIN, h0_us, US_MIN);
    duck_queryf(con,
                "INSERT INTO t SELECT 0, CAST(make_timestamp(%lld) AS TIMESTAMPTZ), 10, NULL, 1,"
                " NULL, 1, NULL, 3, -1, 0, 0, 0, 0, 1, 1, 0",
                h0_us - 30 * US_MIN);
    for (int k = 0; k < 2; k++) {
        long long lo = (k == 0 ? (h0_us - 30 * US_MIN) : (h0_us + 119 * US_MIN)) / US_DAY * US_DAY;
        if (k == 1 && lo == (h0_us - 30 * US_MIN) / US_DAY * US_DAY)
            break;
        char dd[600];
        day_path(dd, sizeof dd, lo);
        mkdirs(dd);
        duck_queryf(con,
                    "COPY (SELECT * FROM t WHERE epoch_us(\"timestamp\") >= %lld"
                    " AND epoch_us(\"timestamp\") < %lld ORDER BY intersection_id, \"timestamp\")"
                    " TO '%s/indices_test_1.parquet' (FORMAT parquet)",
                    lo, lo + US_DAY, dd);
        /* the conflict audit beside it is not index rows */
        duck_queryf(con,
                    "COPY (SELECT 0 AS intersection_id, 'vru' AS kind, 1 AS id_a, 2 AS id_b)"
                    " TO '%s/conflicts_test_1.parquet' (FORMAT parquet)",
                    dd);
    }
    duckdb_disconnect(&con);
    duckdb_close(&db);
}

/* The expected valid rows, from the same formulas, by PostgreSQL. */
static void expected_rows(PGconn *c)
{
    th_sqlf(c,
            "CREATE TABLE exp AS\n"
            "SELECT iid::bigint AS iid, timestamptz 'epoch' + (%lld + (600 + m) * %lld) * interval "
            "'1 microsecond' AS ts,\n"
            "       coalesce(" F_EB ", " F_CI ")::float8 AS si, " F_VOL " AS vol, 1 AS bin,\n"
            "       " F_VRU "::float8 AS vru, " F_VEH "::float8 AS veh\n"
            "  FROM generate_series(0::bigint, 89) m, (VALUES (0), (5)) v(iid)\n"
            "UNION ALL\n"
            "SELECT iid, timestamptz 'epoch' + (%lld + (480 + 15 * m) * %lld) * interval "
            "'1 microsecond',\n"
            "       " F_CI15 "::float8, " F_VOL15 ", 15, " F_VRU "::float8, " F_VEH "::float8\n"
            "  FROM generate_series(0::bigint, 7) m, (VALUES (5), (7)) v(iid)\n"
            "UNION ALL\n"
            "SELECT iid, timestamptz 'epoch' + (%lld + m * %lld) * interval '1 microsecond',\n"
            "       coalesce(" F_EB ", " F_CI ")::float8, " F_VOL ", 1, " F_VRU "::float8,\n"
            "       " F_VEH "::float8\n"
            "  FROM generate_series(0::bigint, 119) m, (VALUES (0), (7)) v(iid)",
            d1_us, US_MIN, d2_us, US_MIN, h0_us, US_MIN);
    th_sqlf(
        c,
        "CREATE TABLE exp_hourly AS\n"
        "SELECT iid, date_trunc('hour', ts) AS h, sum(si * bin) / sum(bin) AS avg_si,\n"
        "       min(si) AS min_si, max(si) AS max_si, stddev_samp(si) AS std_si,\n"
        "       sum(vol) AS total_volume, sum(vol)::float8 / sum(bin) AS avg_volume,\n"
        "       least(coalesce(sum(bin) FILTER (WHERE si > 75), 0), 60) AS high_risk_minutes,\n"
        "       least(sum(bin), 60) / 60.0 AS data_quality_score, least(sum(bin), 60) AS n,\n"
        "       sum(vru * bin) / sum(bin) AS avg_vru, min(vru) AS min_vru, max(vru) AS max_vru,\n"
        "       sum(veh * bin) / sum(bin) AS avg_veh, min(veh) AS min_veh, max(veh) AS max_veh,\n"
        "       sum(bin) AS n_sub\n"
        "  FROM exp GROUP BY 1, 2");
}

/* rows of the hourly table that differ from the expectation (both directions) */
static long long hourly_diff(PGconn *c)
{
    return th_int(
        c, "SELECT count(*) FROM exp_hourly e FULL JOIN safety_indices_hourly h\n"
           "    ON h.intersection_id = e.iid AND h.hour_timestamp = e.h\n"
           " WHERE e.iid IS NULL OR h.intersection_id IS NULL\n"
           "    OR abs(h.avg_si - e.avg_si) > 1e-9 OR abs(h.min_si - e.min_si) > 1e-9\n"
           "    OR abs(h.max_si - e.max_si) > 1e-9\n"
           "    OR (h.std_si IS NULL) <> (e.std_si IS NULL) OR abs(h.std_si - e.std_si) > 1e-9\n"
           "    OR h.total_volume <> e.total_volume OR abs(h.avg_volume - e.avg_volume) > 1e-9\n"
           "    OR h.high_risk_minutes <> e.high_risk_minutes\n"
           "    OR abs(h.data_quality_score - e.data_quality_score) > 1e-9");
}

/* hourly and daily rows whose VRU and vehicle sub-indices (migration 060) differ from the
 * minutes' (raw = the index reported: these files have no EB sub-indices), or that have no
 * model provenance recorded (the files carry none: an empty list) */
static long long subindex_diff(PGconn *c)
{
    return th_int(
        c,
        "SELECT (SELECT count(*) FROM exp_hourly e JOIN safety_indices_hourly h\n"
        "          ON h.intersection_id = e.iid AND h.hour_timestamp = e.h\n"
        "         WHERE abs(h.avg_vru_si - e.avg_vru) > 1e-9 OR h.avg_vru_si IS NULL\n"
        "            OR abs(h.avg_vru_index - e.avg_vru) > 1e-9 OR h.avg_vru_index_eb IS NOT NULL\n"
        "            OR abs(h.min_vru_si - e.min_vru) > 1e-9 OR abs(h.max_vru_si - e.max_vru) > "
        "1e-9\n"
        "            OR abs(h.avg_vehicle_si - e.avg_veh) > 1e-9 OR h.avg_vehicle_si IS NULL\n"
        "            OR abs(h.min_vehicle_si - e.min_veh) > 1e-9\n"
        "            OR abs(h.max_vehicle_si - e.max_veh) > 1e-9\n"
        "            OR h.n_vru_si <> e.n_sub OR h.n_vehicle_si <> e.n_sub\n"
        "            OR h.constants_ids <> '{}' OR h.algorithm_versions <> '{}')\n"
        "     + (SELECT count(*) FROM (SELECT iid, (h AT TIME ZONE 'UTC')::date AS date,\n"
        "                sum(avg_vru * n_sub) / sum(n_sub) AS vru,\n"
        "                sum(avg_veh * n_sub) / sum(n_sub) AS veh FROM exp_hourly\n"
        "          WHERE (h AT TIME ZONE 'UTC')::date < (now() AT TIME ZONE 'UTC')::date\n"
        "          GROUP BY 1, 2) e JOIN safety_indices_daily d\n"
        "          ON d.intersection_id = e.iid AND d.date = e.date\n"
        "         WHERE abs(d.avg_vru_si - e.vru) > 1e-9 OR d.avg_vru_si IS NULL\n"
        "            OR abs(d.avg_vehicle_si - e.veh) > 1e-9 OR d.avg_vehicle_si IS NULL)");
}

static long long daily_diff(PGconn *c)
{
    return th_int(
        c, "WITH e AS (SELECT iid, (h AT TIME ZONE 'UTC')::date AS date,\n"
           "                  sum(avg_si * n) / sum(n) AS avg_si, min(min_si) AS min_si,\n"
           "                  max(max_si) AS max_si, sum(total_volume) AS total_volume,\n"
           "                  count(*) FILTER (WHERE avg_si > 75) AS high_risk_hours,\n"
           "                  max(avg_si) AS peak_si\n"
           "             FROM exp_hourly\n"
           "            WHERE (h AT TIME ZONE 'UTC')::date < (now() AT TIME ZONE 'UTC')::date\n"
           "            GROUP BY 1, 2)\n"
           "SELECT count(*) FROM e FULL JOIN safety_indices_daily d\n"
           "    ON d.intersection_id = e.iid AND d.date = e.date\n"
           " WHERE e.iid IS NULL OR d.intersection_id IS NULL\n"
           "    OR abs(d.avg_si - e.avg_si) > 1e-9 OR abs(d.min_si - e.min_si) > 1e-9\n"
           "    OR abs(d.max_si - e.max_si) > 1e-9 OR d.total_volume <> e.total_volume\n"
           "    OR d.high_risk_hours <> e.high_risk_hours OR abs(d.peak_si - e.peak_si) > 1e-9");
}

static char *snapshot(PGconn *c)
{
    return th_value(
        c,
        "SELECT md5(coalesce((SELECT string_agg(r::text, '|' ORDER BY r.intersection_id,"
        " r.\"timestamp\") FROM (SELECT intersection_id, \"timestamp\", combined_index,"
        " combined_index_eb, vru_index, vehicle_index, traffic_volume, vru_count,"
        " vehicle_event_count, vru_event_count, hour_of_day, day_of_week, avg_speed,"
        " speed_stddev, hard_braking_count, xmin::text AS x FROM safety_indices_realtime) r), '')"
        " || coalesce((SELECT string_agg(h::text, '|' ORDER BY h.intersection_id,"
        " h.hour_timestamp) FROM (SELECT *, xmin::text AS x FROM safety_indices_hourly) h), '')"
        " || coalesce((SELECT string_agg(d::text, '|' ORDER BY d.intersection_id, d.date)"
        " FROM (SELECT *, xmin::text AS x FROM safety_indices_daily) d), ''))");
}

static void insert_intersections(PGconn *c)
{
    th_sqlf(c, "INSERT INTO intersections (id, name, latitude, longitude) VALUES"
               " (0, 'Zero & First', 38.86, -77.05), (5, 'US-29 & Nutley', 38.87, -77.23),"
               " (7, 'Seventh', 38.88, -77.20)");
}

static void make_dir(void)
{
    const char *tmp = getenv("TSI_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/backfill.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        fail_msg("mkdtemp: %s", strerror(errno));
}

static void test_backfill_validate(void **state)
{
    (void)state;
    char db[64];
    th_db_create(db);
    PGconn *c = th_connect("tsi_owner");
    insert_intersections(c);
    clock_from(c);
    make_dir();
    write_fixtures();
    expected_rows(c);

    /* a dry run reads and reports, writes nothing */
    const char *dry[] = {"backfill", "--from", dir, "--dry-run", "--progress", "log", NULL};
    int rc = th_run_tsi(dry, NULL, out, sizeof out);
    assert_exit(rc, 0);
    expect_in("valid=436 rejected=4");
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime"), 0);
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_hourly"), 0);

    char report[700];
    snprintf(report, sizeof report, "%s/rejected.csv", dir);
    const char *run[] = {"backfill", "--from", dir, "--progress", "log", "--report", report, NULL};
    rc = th_run_tsi(run, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("backfill exit %d:\n%s", rc, dump(out));
    /* 183 + 16 + 241 rows read; exactly the valid ones: 2 x 90 + 2 x 8 + 2 x 120 */
    expect_in("rows=440 valid=436 rejected=4");
    /* each rejected row named with file and row */
    char want[1400];
    snprintf(want, sizeof want, "rejected row file=%s row=181 reason=\"duplicate of %s row 6\"",
             legacy1, legacy1);
    expect_in(want);
    snprintf(want, sizeof want,
             "rejected row file=%s row=182 reason=\"combined_index 120.0 outside 0..100\"",
             legacy1);
    expect_in(want);
    snprintf(want, sizeof want, "rejected row file=%s row=183 reason=\"unknown intersection 99\"",
             legacy1);
    expect_in(want);
    expect_in("reason=\"vru_count -1.0 is not a count\"");
    expect_in("duplicate=1");
    expect_in("out_of_range=2");
    expect_in("unknown_intersection=1");
    expect_in("RESULT: OK");
    /* the CSV report holds the same 4 rows plus its header */
    FILE *f = fopen(report, "r");
    assert_non_null(f);
    int lines = 0;
    char line[2048];
    while (fgets(line, sizeof line, f))
        lines++;
    fclose(f);
    assert_int_equal(lines, 5);

    /* realtime: exactly the 240 window rows, equal to the formulas */
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime"), 240);
    assert_int_equal(
        th_int(c, "SELECT count(*) FROM exp e JOIN safety_indices_realtime r"
                  " ON r.intersection_id = e.iid AND r.\"timestamp\" = e.ts"
                  " WHERE abs(coalesce(r.combined_index_eb, r.combined_index) - e.si) < 1e-12"
                  "   AND r.traffic_volume = e.vol"),
        240);
    /* legacy rows stay out of the realtime table (older than its window) */
    assert_int_equal(th_intf(c,
                             "SELECT count(*) FROM safety_indices_realtime WHERE \"timestamp\" <"
                             " timestamptz 'epoch' + %lld * interval '1 microsecond'",
                             h0_us),
                     0);
    /* hourly: 2 + 2 (legacy 1-min) + 4 (15-min) + 4 (realtime hours) */
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_hourly"), 12);
    assert_int_equal(hourly_diff(c), 0);
    assert_int_equal(subindex_diff(c), 0);
    /* the constants' features store of the old 1-minute hours (legacy, 2 x 90 minutes in 4
     * hours); 15-minute bins are not 1-minute features */
    assert_int_equal(th_int(c, "SELECT count(*) * 1000 + sum(minutes) FROM safety_features_hourly"
                               " WHERE hour_timestamp < now() - interval '48 hours'"),
                     4 * 1000 + 180);
    /* by hand: hour 11 of D-3 has 30 one-minute rows; 15-minute hours are complete */
    assert_int_equal(
        th_intf(c,
                "SELECT count(*) FROM safety_indices_hourly WHERE data_quality_score = 0.5"
                " AND hour_timestamp = timestamptz 'epoch' + %lld"
                " * interval '1 microsecond'",
                d1_us + 11 * US_HOUR),
        2);
    assert_int_equal(
        th_intf(c,
                "SELECT count(*) FROM safety_indices_hourly WHERE data_quality_score = 1"
                " AND hour_timestamp >= timestamptz 'epoch' + %lld"
                " * interval '1 microsecond' AND hour_timestamp < timestamptz 'epoch' + %lld"
                " * interval '1 microsecond'",
                d2_us, d2_us + US_DAY),
        4);
    assert_int_equal(daily_diff(c), 0);
    assert_true(th_int(c, "SELECT count(*) FROM safety_indices_daily") >= 4);

    /* a second run changes nothing (not even a row version) */
    char *before = snapshot(c);
    rc = th_run_tsi(run, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("second backfill exit %d:\n%s", rc, dump(out));
    expect_in("inserted=0 updated=0 hourly_rows=8 inserted=0 updated=0");
    char *after = snapshot(c);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* validate on its own: passes, in every format */
    char since[16], until[16];
    date_str(since, sizeof since, d2_us);
    date_str(until, sizeof until, today_us);
    const char *val[] = {"validate", "--from",   dir,    "--since",  since,  "--until",
                         until,      "--format", "json", "--sample", "1000", NULL};
    rc = th_run_tsi(val, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("validate exit %d:\n%s", rc, dump(out));
    expect_in("\"result\":\"ok\"");
    expect_in("\"mismatches\":0");

    /* one realtime row altered in PostgreSQL: caught by the stats and the sample */
    th_sqlf(c,
            "UPDATE safety_indices_realtime SET combined_index_eb = combined_index_eb / 2"
            " WHERE intersection_id = 7 AND \"timestamp\" = timestamptz 'epoch' + %lld"
            " * interval '1 microsecond'",
            h0_us + 4 * US_MIN); /* m = 4: EB not NULL */
    rc = th_run_tsi(val, NULL, out, sizeof out);
    assert_exit(rc, 1);
    expect_in("\"result\":\"mismatch\"");
    expect_in("{\"check\":\"realtime_stats\",\"bucket\":null,"
              "\"intersection_id\":7,\"field\":\"mean_si\"");
    expect_in("\"check\":\"realtime_sample\"");
    expect_in("\"field\":\"combined_index_eb\"");

    /* one hourly row altered: caught by the hourly check, readable in HTML */
    th_sqlf(c, "UPDATE safety_indices_hourly SET total_volume = total_volume + 1"
               " WHERE intersection_id = 5 AND hour_timestamp = (SELECT min(hour_timestamp)"
               " FROM safety_indices_hourly WHERE intersection_id = 5)");
    char html[700];
    snprintf(html, sizeof html, "%s/report.html", dir);
    const char *vh[] = {"validate", "--from",   dir,    "--since",  since, "--until",
                        until,      "--format", "html", "--output", html,  NULL};
    rc = th_run_tsi(vh, NULL, out, sizeof out);
    assert_exit(rc, 1);
    f = fopen(html, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    expect_in("<!DOCTYPE html>");
    expect_in("Differences found");
    expect_in("<td>hourly</td>");
    expect_in("<td>total_volume</td>");

    /* the sub-indices and the provenance of the rollups (migration 060) are compared too:
     * an hourly VRU mean, a daily vehicle maximum and a daily constants set altered */
    th_sqlf(c, "UPDATE safety_indices_hourly SET avg_vru_index = avg_vru_index / 2 + 1"
               " WHERE intersection_id = 7 AND hour_timestamp = (SELECT max(hour_timestamp)"
               " FROM safety_indices_hourly WHERE intersection_id = 7)");
    th_sqlf(c,
            "UPDATE safety_indices_daily SET max_vehicle_si = max_vehicle_si / 2,"
            " constants_ids = '{3}' WHERE intersection_id = 5 AND date = (SELECT min(date)"
            " FROM safety_indices_daily WHERE intersection_id = 5 AND date >= '%s')",
            since);
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_daily"
                               " WHERE constants_ids = '{3}' AND max_vehicle_si IS NOT NULL"),
                     1);
    rc = th_run_tsi(val, NULL, out, sizeof out);
    assert_exit(rc, 1);
    expect_in("\"check\":\"hourly\",");
    expect_in("\"intersection_id\":7,\"field\":\"avg_vru_index\"");
    expect_in("\"intersection_id\":5,\"field\":\"max_vehicle_si\"");
    expect_in("\"intersection_id\":5,\"field\":\"constants_ids\",\"parquet\":\"{}\","
              "\"postgres\":\"{3}\"");

    PQfinish(c);
    th_db_drop(db);
}

/* Hostile input: garbage under a Parquet name, a file without a required column, bad
 * arguments, a missing directory. Nothing crashes, every row is accounted for. */
static void test_backfill_hostile(void **state)
{
    (void)state;
    char db[64];
    th_db_create(db);
    PGconn *c = th_connect("tsi_owner");
    insert_intersections(c);
    clock_from(c);
    make_dir();
    char idx[600], p[700];
    snprintf(idx, sizeof idx, "%s/indices", dir);
    mkdirs(idx);
    char d1[16];
    date_str(d1, sizeof d1, today_us - 5 * US_DAY);
    snprintf(p, sizeof p, "%s/indices_%s.parquet", idx, d1);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("PAR1 this is not parquet at all", f);
    fclose(f);
    duckdb_database ddb;
    duckdb_connection con;
    assert_int_equal(duckdb_open(NULL, &ddb), DuckDBSuccess);
    assert_int_equal(duckdb_connect(ddb, &con), DuckDBSuccess);
    date_str(d1, sizeof d1, today_us - 6 * US_DAY);
    snprintf(p, sizeof p, "%s/indices_%s.parquet", idx, d1);
    /* no Combined_Index column: 3 rows that cannot be loaded */
    duck_queryf(
        con,
        "COPY (SELECT 5.0 AS intersection, make_timestamp(%lld + m * 60000000) AS time_15min,"
        " 1.0 AS VRU_Index FROM range(0, 3) t(m)) TO '%s' (FORMAT parquet)",
        today_us - 6 * US_DAY, p);
    /* NaN, a string id that is no intersection name, a negative id, a fractional id, an
     * hour of 24, a time not on a minute */
    date_str(d1, sizeof d1, today_us - 7 * US_DAY);
    snprintf(p, sizeof p, "%s/indices_%s.parquet", idx, d1);
    duck_queryf(
        con,
        "COPY (SELECT * FROM (VALUES"
        " ('5', make_timestamp(%lld), 'NaN'::DOUBLE, 1.0, 1.0, 1, 0, 0, 0, 0, 0),"
        " ('Nowhere & Main', make_timestamp(%lld), 10.0, 1.0, 1.0, 1, 0, 0, 0, 0, 0),"
        " ('-5', make_timestamp(%lld), 10.0, 1.0, 1.0, 1, 0, 0, 0, 0, 0),"
        " ('5.5', make_timestamp(%lld), 10.0, 1.0, 1.0, 1, 0, 0, 0, 0, 0),"
        " ('US-29 & Nutley', make_timestamp(%lld), 10.0, 1.0, 1.0, 1, 0, 0, 0, 24, 0),"
        " ('7', make_timestamp(%lld + 1000000), 10.0, 1.0, 1.0, 1, 0, 0, 0, 0, 0),"
        " ('US-29 & Nutley', make_timestamp(%lld + 60000000), 10.0, 1.0, 1.0, 1, 0, 0, 0, 0, 0))"
        " v(intersection, time_15min, Combined_Index, VRU_Index, Vehicle_Index, vehicle_count,"
        " psm_vru_count, vru_event_count, vehicle_event_count, hour_of_day, day_of_week))"
        " TO '%s' (FORMAT parquet)",
        today_us - 7 * US_DAY, today_us - 7 * US_DAY, today_us - 7 * US_DAY, today_us - 7 * US_DAY,
        today_us - 7 * US_DAY, today_us - 7 * US_DAY, today_us - 7 * US_DAY, p);
    duckdb_disconnect(&con);
    duckdb_close(&ddb);

    const char *run[] = {"backfill", "--from", dir, "--progress", "log", NULL};
    int rc = th_run_tsi(run, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("backfill exit %d:\n%s", rc, dump(out));
    /* the one good row is the last (an intersection name known to the database) */
    expect_in("unreadable=2");
    expect_in("valid=1 rejected=9");
    expect_in("reason=\"combined_index nan outside 0..100\"");
    expect_in("'Nowhere & Main' is neither a non-negative integer nor a known name");
    expect_in("intersection id '-5'");
    expect_in("intersection id '5.5'");
    expect_in("hour_of_day 24.0 outside 0..23");
    expect_in("is not on a minute boundary");
    expect_in("required column Combined_Index is missing");
    expect_in("unreadable_file=3");
    assert_int_equal(
        th_int(c, "SELECT count(*) FROM safety_indices_hourly WHERE intersection_id = 5"), 1);

    const char *bad1[] = {"backfill", "--from", dir, "--since", "2026-02-30", NULL};
    assert_int_equal(th_run_tsi(bad1, NULL, out, sizeof out), 2);
    const char *bad2[] = {"backfill", NULL};
    assert_int_equal(th_run_tsi(bad2, NULL, out, sizeof out), 2);
    const char *bad3[] = {"backfill", "--from", "/nonexistent/tsi-archive", NULL};
    assert_int_equal(th_run_tsi(bad3, NULL, out, sizeof out), 1);
    expect_in("does not exist");
    const char *bad4[] = {"validate", "--since", "2026-01-02", "--until", "2026-01-01", NULL};
    assert_int_equal(th_run_tsi(bad4, NULL, out, sizeof out), 2);
    const char *bad5[] = {"validate", "--since", "2026-01-01", NULL};
    assert_int_equal(th_run_tsi(bad5, NULL, out, sizeof out), 2);
    PQfinish(c);
    th_db_drop(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backfill_validate),
        cmocka_unit_test(test_backfill_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
