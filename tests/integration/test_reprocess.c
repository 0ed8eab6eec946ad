/* Integration: `tsi reprocess` against real PostgreSQL (issue 15).
 *
 * Raw archive fixtures written by this test with DuckDB, in both layouts:
 *   tsi     raw/bsm/YYYY/MM/DD/HH/bsm_test_1.parquet (timestamp_ms, reject_reason, json):
 *           intersection 5, two whole hours inside the realtime window, 1 + (m mod 4)
 *           vehicles in minute m, 10 m/s, all heading north 22 m apart (no conflict), and
 *           every message of minute 7 delivered twice (repeated polling);
 *   legacy  raw/bsm/bsm_<date>_<stamp>.parquet: one row per message with bsmJson as a
 *           nested struct, two files whose struct schemas differ (one without accelSet),
 *           intersection 7, the first 10 minutes of the second hour, one vehicle each.
 * Expected indices come from domain.md §4 evaluated by PostgreSQL on the vehicle counts
 * the test put in (V, S = 10 m/s, σ = 0, no events, no braking; no EB priors, so EB =
 * raw). Reprocessing the second hour with changed constants must replace exactly that
 * hour: realtime rows, hourly rollup, indices Parquet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <duckdb.h>
#include <errno.h>
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

static char out[1 << 20];
static char dir[512], arch[600];
static long long h0_us; /* the first of the two hours */

static const char *dump(const char *s)
{
    fprintf(stderr, "---- output ----\n%s\n----------------\n", s);
    return "(above)";
}

static void mkdirs(const char *path)
{
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", tmp, strerror(errno));
}

static long long duck_int(duckdb_connection con, const char *sql)
{
    duckdb_result r;
    if (duckdb_query(con, sql, &r) != DuckDBSuccess)
        fail_msg("duckdb: %s\n%s", duckdb_result_error(&r), sql);
    duckdb_data_chunk ch = duckdb_fetch_chunk(r);
    long long v = -1;
    if (ch) {
        v = ((int64_t *)duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 0)))[0];
        duckdb_destroy_data_chunk(&ch);
    }
    duckdb_destroy_result(&r);
    return v;
}

/* one BSM as the VCC sends it */
#define BSM_JSON(ts, id, lat)                                                                      \
    "CAST(json_object('timestamp', " ts ", 'rsuName', 'rsu-test', 'bsmJson',"                      \
    " json_object('coreData', json_object('msgCnt', 1, 'id', " id ", 'secMark', 0,"                \
    " 'lat', " lat ", 'lon', -77.23, 'elev', 100.0, 'speed', 10.0, 'heading', 0.0,"                \
    " 'accelSet', json_object('lon', 0.0, 'lat', 0.0, 'vert', 0.0, 'yaw', 0.0),"                   \
    " 'size', json_object('width', 180, 'length', 480)))) AS VARCHAR)"

static void write_raw(void)
{
    duckdb_database db;
    duckdb_connection con;
    assert_int_equal(duckdb_open(NULL, &db), DuckDBSuccess);
    assert_int_equal(duckdb_connect(db, &con), DuckDBSuccess);
    duckdb_query(con, "SET TimeZone = 'UTC'", NULL);
    /* tsi layout: per hour directory */
    duck_queryf(con,
                "CREATE TABLE m AS SELECT %lld + mi * %lld + v * 1000 AS timestamp_ms, mi, v"
                " FROM range(0, 120) a(mi), range(1, 5) b(v) WHERE v <= 1 + mi %% 4",
                h0_us / 1000, US_MIN / 1000);
    duck_queryf(con, "INSERT INTO m SELECT * FROM m WHERE mi = 7"); /* repeated polling */
    for (int h = 0; h < 2; h++) {
        long long hs = h0_us + h * US_HOUR;
        time_t t = (time_t)(hs / 1000000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char hd[700];
        snprintf(hd, sizeof hd, "%s/raw/bsm/%04d/%02d/%02d/%02d", dir, tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour);
        mkdirs(hd);
        duck_queryf(
            con,
            "COPY (SELECT timestamp_ms, CAST(NULL AS VARCHAR) AS reject_reason, " BSM_JSON(
                "timestamp_ms", "1000 + v",
                "38.87 + v * 0.0002") " AS json"
                                      " FROM m WHERE mi >= %d AND mi < %d ORDER BY timestamp_ms)"
                                      " TO '%s/bsm_test_1.parquet' (FORMAT parquet)",
            h * 60, h * 60 + 60, hd);
    }
    /* legacy layout: nested structs, two schemas */
    char ld[700];
    snprintf(ld, sizeof ld, "%s/raw/bsm", dir);
    time_t t = (time_t)(h0_us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char date[16];
    strftime(date, sizeof date, "%Y-%m-%d", &tm);
    for (int f = 0; f < 2; f++)
        duck_queryf(
            con,
            "COPY (SELECT %lld + (60 + mi) * %lld + 500 AS \"timestamp\", 'rsu-old' AS rsuName,"
            " struct_pack(coreData := struct_pack(msgCnt := mi, id := 7000 + mi, secMark := 500,"
            " lat := 38.88, lon := -77.20, speed := 10.0, heading := 0.0%s)) AS bsmJson"
            " FROM range(%d, %d) a(mi)) TO '%s/bsm_%s_%d.parquet' (FORMAT parquet)",
            h0_us / 1000, US_MIN / 1000,
            f == 0 ? ", accelSet := struct_pack(lon := 0.0, lat := 0.0, vert := 0.0, yaw := 0.0)"
                   : "",
            f * 5, f * 5 + 5, ld, date, f);
    duckdb_disconnect(&con);
    duckdb_close(&db);
}

/* combined index of a minute with V vehicles at 10 m/s, given V_max and S_ref */
#define F_COMBINED(v, vmax)                                                                        \
    "least(100, greatest(0, 0.6 * least(100, greatest(0, 100 * (0.2 * (" v ")::float8 / " vmax     \
    " + 0.2 * 10.0 / 40)))"                                                                        \
    " + 0.4 * least(100, greatest(0, 100 * (0.3 * (" v ")::float8 / " vmax ")))))"

/* rows of intersection 5 in hour h (0 or 1) whose index equals the formula with vmax */
static long long matching(PGconn *c, int h, const char *vmax)
{
    char f[1024];
    snprintf(f, sizeof f, F_COMBINED("1 + (m %% 4)", "%s"), vmax, vmax);
    char sql[2048];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM safety_indices_realtime r, generate_series(%d::bigint, %d) m"
             " WHERE r.intersection_id = 5 AND r.\"timestamp\" = timestamptz 'epoch' +"
             " (%lld + m * %lld) * interval '1 microsecond'"
             " AND r.traffic_volume = 1 + (m %% 4) AND abs(r.combined_index - %s) < 1e-9"
             " AND abs(r.combined_index_eb - r.combined_index) < 1e-9",
             h * 60, h * 60 + 59, h0_us, US_MIN, f);
    return th_intf(c, "%s", sql);
}

static void run_reprocess(long long from, long long to)
{
    char s[32], u[32];
    time_t a = (time_t)(from / 1000000), b = (time_t)(to / 1000000);
    struct tm ta, tb;
    gmtime_r(&a, &ta);
    gmtime_r(&b, &tb);
    strftime(s, sizeof s, "%Y-%m-%dT%H:00Z", &ta);
    strftime(u, sizeof u, "%Y-%m-%dT%H:00Z", &tb);
    const char *args[] = {"reprocess", "--since", s,           "--until", u,
                          "--raw",     dir,       "--archive", arch,      NULL};
    int rc = th_run_tsi(args, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("reprocess exit %d %s", rc, dump(out));
}

/* A fresh database with intersections 5 and 7, the raw archive of three hours ago and
 * constants A (V_max 20) valid since yesterday */
static PGconn *world_base(char *db)
{
    th_db_create(db);
    PGconn *c = th_connect("tsi_owner");
    th_sqlf(c, "INSERT INTO intersections (id, name, latitude, longitude) VALUES"
               " (5, 'US-29 & Nutley', 38.87, -77.23), (7, 'Seventh', 38.88, -77.20)");
    h0_us = th_intf(c, "SELECT (extract(epoch FROM date_trunc('hour', now())) * 1000000)::bigint") -
            3 * US_HOUR;
    const char *tmp = getenv("TSI_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/reprocess.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        fail_msg("mkdtemp: %s", strerror(errno));
    snprintf(arch, sizeof arch, "%s/archive", dir);
    mkdirs(arch);
    write_raw();
    th_sqlf(c, "INSERT INTO normalization_constants (constants, valid_from) VALUES"
               " ('{\"I_vru_max\": 8, \"I_veh_max\": 8, \"V_max\": 20, \"sigma_max\": 20,"
               " \"S_ref\": 40, \"HB_max\": 15, \"k\": 50}', now() - interval '1 day')");
    return c;
}

/* `tsi explain --intersection iid --at minute` (issue 26): the stored minute recomputed with
 * constants set `set` matches; the JSON form says so too */
static void fmt_minute(char *buf, size_t len, long long us)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void explain_ok(long long iid, long long minute_us, long long set)
{
    char at[32], id[24], want[64];
    fmt_minute(at, sizeof at, minute_us);
    snprintf(id, sizeof id, "%lld", iid);
    const char *args[] = {"explain", "--intersection", id, "--at", at, "--archive", arch, NULL};
    int rc = th_run_tsi(args, NULL, out, sizeof out);
    if (rc != 0 || !strstr(out, "\nmatch (tolerance 1e-9)"))
        fail_msg("explain %s %s: exit %d %s", id, at, rc, dump(out));
    snprintf(want, sizeof want, "constants set %lld:", set);
    if (!strstr(out, want) || !strstr(out, "stored (database)"))
        fail_msg("explain %s %s: no %s or no database row %s", id, at, want, dump(out));
    const char *jargs[] = {"explain", "--intersection", id,     "--at", at, "--archive",
                           arch,      "--format",       "json", NULL};
    rc = th_run_tsi(jargs, NULL, out, sizeof out);
    snprintf(want, sizeof want, "\"constants_id\":%lld,", set);
    if (rc != 0 || !strstr(out, "\"match\":true") || !strstr(out, want))
        fail_msg("explain --format json %s %s: exit %d %s", id, at, rc, dump(out));
}

/* bad flags exit 2; a minute not stored exits 1; a database row changed behind the archive's
 * back is a mismatch (exit 1) */
static void explain_hostile(PGconn *c)
{
    char at[32];
    fmt_minute(at, sizeof at, h0_us + 10 * US_MIN);
    const char *a1[] = {"explain", "--intersection", "5", "--at", "yesterday", NULL};
    assert_int_equal(th_run_tsi(a1, NULL, out, sizeof out), 2);
    const char *a2[] = {"explain", "--intersection", "5", NULL};
    assert_int_equal(th_run_tsi(a2, NULL, out, sizeof out), 2);
    const char *a3[] = {"explain", "--at", at, "--features", "/dev/null", NULL};
    assert_int_equal(th_run_tsi(a3, NULL, out, sizeof out), 2);
    const char *a4[] = {"explain", "--intersection", "-4", "--at", at, NULL};
    assert_int_equal(th_run_tsi(a4, NULL, out, sizeof out), 2);
    const char *a5[] = {"explain", "--intersection", "99", "--at", at, "--archive", arch, NULL};
    assert_int_equal(th_run_tsi(a5, NULL, out, sizeof out), 1);
    if (!strstr(out, "no stored minute"))
        fail_msg("explain of a minute not stored %s", dump(out));
    th_sqlf(c,
            "UPDATE safety_indices_realtime SET combined_index_eb = combined_index_eb / 2 WHERE"
            " intersection_id = 5 AND \"timestamp\" = timestamptz 'epoch' + %lld *"
            " interval '1 microsecond'",
            h0_us + 10 * US_MIN);
    const char *a6[] = {"explain", "--intersection", "5", "--at", at, "--archive", arch, NULL};
    assert_int_equal(th_run_tsi(a6, NULL, out, sizeof out), 1);
    if (!strstr(out, "MISMATCH") || !strstr(out, "DIFFERS"))
        fail_msg("explain of a changed row %s", dump(out));
    th_sqlf(c,
            "UPDATE safety_indices_realtime SET combined_index_eb = combined_index_eb * 2 WHERE"
            " intersection_id = 5 AND \"timestamp\" = timestamptz 'epoch' + %lld *"
            " interval '1 microsecond'",
            h0_us + 10 * US_MIN);
}

static void test_reprocess_hour(void **state)
{
    (void)state;
    char db[64];
    PGconn *c = world_base(db); /* constants A: V_max 20 */
    /* one more raw file in the first hour, as the collector writes them (with received_at):
     * a message of minute 30 that arrived a day after its own time (an RSU whose clock is a
     * day behind). Clock sanity as live: clock_skew, never in minute 30's window. */
    {
        duckdb_database ddb;
        duckdb_connection con;
        assert_int_equal(duckdb_open(NULL, &ddb), DuckDBSuccess);
        assert_int_equal(duckdb_connect(ddb, &con), DuckDBSuccess);
        time_t t = (time_t)(h0_us / 1000000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char hd[700];
        snprintf(hd, sizeof hd, "%s/raw/bsm/%04d/%02d/%02d/%02d", dir, tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour);
        duck_queryf(
            con,
            "COPY (SELECT ts AS timestamp_ms, to_timestamp(ts / 1000 + 86400) AS received_at,"
            " CAST(NULL AS VARCHAR) AS reject_reason, " BSM_JSON(
                "ts", "4242", "38.8702") " AS json FROM (SELECT %lld + 30 * %lld + 500 AS ts))"
                                         " TO '%s/bsm_skewed_1.parquet' (FORMAT parquet)",
            h0_us / 1000, US_MIN / 1000, hd);
        duckdb_disconnect(&con);
        duckdb_close(&ddb);
    }

    run_reprocess(h0_us, h0_us + 2 * US_HOUR);
    if (!strstr(out, "clock_skew=1"))
        fail_msg("the message received a day after its time is not clock_skew %s", dump(out));
    if (!strstr(out, "deduped=4"))
        fail_msg("the repeated minute 7 (4 messages) is not deduplicated %s", dump(out));
    /* intersection 5: 120 minutes, every index as the formula with V_max 20 */
    assert_int_equal(
        th_intf(c, "SELECT count(*) FROM safety_indices_realtime WHERE intersection_id = 5"), 120);
    assert_int_equal(matching(c, 0, "20"), 60);
    assert_int_equal(matching(c, 1, "20"), 60);
    /* intersection 7 from the legacy files of both schemas: minutes 60..69, one vehicle */
    assert_int_equal(th_intf(c,
                             "SELECT count(*) FROM safety_indices_realtime WHERE"
                             " intersection_id = 7 AND traffic_volume = 1 AND \"timestamp\" >="
                             " timestamptz 'epoch' + %lld * interval '1 microsecond'",
                             h0_us + US_HOUR),
                     10);
    assert_int_equal(th_intf(c, "SELECT count(*) FROM safety_indices_realtime"), 130);
    /* hourly rollups by the jobs from the realtime rows */
    assert_int_equal(th_intf(c, "SELECT count(*) FROM safety_indices_hourly"), 3);
    /* model provenance (issue 26): every row says it was computed with set A and this
     * algorithm version */
    long long set_a = th_intf(c, "SELECT id FROM normalization_constants");
    assert_int_equal(th_intf(c,
                             "SELECT count(*) FROM safety_indices_realtime WHERE constants_id ="
                             " %lld AND algorithm_version = 1",
                             set_a),
                     130);

    /* constants B from now on: V_max 10 */
    th_sqlf(c, "UPDATE normalization_constants SET valid_until = now()");
    th_sqlf(c, "INSERT INTO normalization_constants (constants, valid_from) VALUES"
               " ('{\"I_vru_max\": 8, \"I_veh_max\": 8, \"V_max\": 10, \"sigma_max\": 20,"
               " \"S_ref\": 40, \"HB_max\": 15, \"k\": 50}', now())");
    char *first_hour = th_value(
        c, "SELECT md5(string_agg(r::text, '|' ORDER BY intersection_id, \"timestamp\")) FROM"
           " (SELECT *, xmin::text AS x FROM safety_indices_realtime) r"
           " WHERE \"timestamp\" < (SELECT min(\"timestamp\") + interval '1 hour' FROM"
           " safety_indices_realtime)");
    char *first_hourly = th_value(c, "SELECT md5(string_agg(h::text, '|')) FROM"
                                     " (SELECT *, xmin::text FROM safety_indices_hourly"
                                     "   ORDER BY hour_timestamp, intersection_id LIMIT 1) h");

    run_reprocess(h0_us + US_HOUR, h0_us + 2 * US_HOUR);
    /* the first hour is untouched, the second follows the new constants */
    char *after = th_value(
        c, "SELECT md5(string_agg(r::text, '|' ORDER BY intersection_id, \"timestamp\")) FROM"
           " (SELECT *, xmin::text AS x FROM safety_indices_realtime) r"
           " WHERE \"timestamp\" < (SELECT min(\"timestamp\") + interval '1 hour' FROM"
           " safety_indices_realtime)");
    assert_string_equal(first_hour, after);
    free(after);
    after = th_value(c, "SELECT md5(string_agg(h::text, '|')) FROM"
                        " (SELECT *, xmin::text FROM safety_indices_hourly"
                        "   ORDER BY hour_timestamp, intersection_id LIMIT 1) h");
    assert_string_equal(first_hourly, after);
    free(after);
    free(first_hour);
    free(first_hourly);
    assert_int_equal(matching(c, 0, "20"), 60);
    assert_int_equal(matching(c, 1, "10"), 60);
    assert_int_equal(th_intf(c, "SELECT count(*) FROM safety_indices_realtime"), 130);
    /* the reprocessed hour carries set B's id, the first keeps A's; the hourly rollups say
     * which set made each hour */
    long long set_b = th_intf(c, "SELECT max(id) FROM normalization_constants");
    assert_true(set_b != set_a);
    /* tsi explain recomputes stored minutes with the set each records: both hours match */
    explain_ok(5, h0_us + 5 * US_MIN, set_a);
    explain_ok(5, h0_us + 65 * US_MIN, set_b);
    explain_ok(7, h0_us + 61 * US_MIN, set_b);
    explain_ok(5, h0_us + 119 * US_MIN, set_b);
    explain_hostile(c);
    assert_int_equal(th_intf(c,
                             "SELECT count(*) FROM safety_indices_realtime WHERE constants_id ="
                             " %lld AND \"timestamp\" >= timestamptz 'epoch' + %lld * interval"
                             " '1 microsecond'",
                             set_b, h0_us + US_HOUR),
                     70);
    assert_int_equal(th_intf(c,
                             "SELECT count(*) FROM safety_indices_realtime WHERE constants_id ="
                             " %lld AND \"timestamp\" < timestamptz 'epoch' + %lld * interval"
                             " '1 microsecond'",
                             set_a, h0_us + US_HOUR),
                     60);
    assert_int_equal(
        th_intf(c,
                "SELECT count(*) FROM safety_indices_hourly WHERE intersection_id = 5"
                " AND constants_ids = ARRAY[CASE WHEN hour_timestamp < timestamptz"
                " 'epoch' + %lld * interval '1 microsecond' THEN %lld ELSE %lld END]::bigint[]"
                " AND algorithm_versions = '{1}'",
                h0_us + US_HOUR, set_a, set_b),
        2);
    /* the second hour's rollup is the mean of the new values */
    char f[1024], sql[2048];
    snprintf(f, sizeof f, F_COMBINED("1 + (m %% 4)", "10"));
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM safety_indices_hourly WHERE intersection_id = 5"
             " AND hour_timestamp = timestamptz 'epoch' + %lld * interval '1 microsecond'"
             " AND abs(avg_si - (SELECT avg(%s) FROM generate_series(60::bigint, 119) m)) < 1e-9",
             h0_us + US_HOUR, f);
    assert_int_equal(th_intf(c, "%s", sql), 1);

    /* indices Parquet: one generation, no duplicate minute, the second hour new */
    duckdb_database ddb;
    duckdb_connection con;
    assert_int_equal(duckdb_open(NULL, &ddb), DuckDBSuccess);
    assert_int_equal(duckdb_connect(ddb, &con), DuckDBSuccess);
    duck_queryf(con, "SET TimeZone = 'UTC'");
    char q[2048];
    snprintf(
        q, sizeof q,
        "CREATE VIEW ix AS SELECT * FROM read_parquet('%s/indices/[0-9]*/*/*/indices_*.parquet',"
        " union_by_name = true)",
        arch);
    duck_queryf(con, "%s", q);
    assert_int_equal(duck_int(con, "SELECT count(*) FROM ix"), 130);
    snprintf(q, sizeof q,
             "SELECT count(*) FROM ix WHERE constants_id = %lld AND"
             " algorithm_version = 1 AND epoch_us(\"timestamp\") >= %lld",
             set_b, h0_us + US_HOUR);
    assert_int_equal(duck_int(con, q), 70);
    assert_int_equal(
        duck_int(con, "SELECT count(DISTINCT (intersection_id, \"timestamp\")) FROM ix"), 130);
    snprintf(f, sizeof f, F_COMBINED("traffic_volume", "10"));
    snprintf(q, sizeof q,
             "SELECT count(*) FROM ix WHERE intersection_id = 5 AND epoch_us(\"timestamp\") >= %lld"
             " AND abs(combined_index - %s) < 1e-9",
             h0_us + US_HOUR, f);
    assert_int_equal(duck_int(con, q), 60);
    snprintf(f, sizeof f, F_COMBINED("traffic_volume", "20"));
    snprintf(q, sizeof q,
             "SELECT count(*) FROM ix WHERE intersection_id = 5 AND epoch_us(\"timestamp\") < %lld"
             " AND abs(combined_index - %s) < 1e-9",
             h0_us + US_HOUR, f);
    assert_int_equal(duck_int(con, q), 60);
    duckdb_disconnect(&con);
    duckdb_close(&ddb);
    char sup[700];
    snprintf(sup, sizeof sup, "%s/indices/.superseded", arch);
    struct stat st;
    assert_int_equal(stat(sup, &st), 0);

    /* a constants set WITH EB priors (issue 26): set B's constants plus priors of
     * intersection 5 at every hour of day; intersection 7 has none, so it takes the
     * network's prior of its hour. The second hour reprocessed with it: EB is no longer the
     * raw index (N = 1..4 against k = 50), and tsi explain recomputes every stored EB value
     * with the stored set's priors to 1e-9 */
    th_sqlf(c, "UPDATE normalization_constants SET valid_until = now() WHERE valid_until IS NULL");
    th_sqlf(c, "INSERT INTO normalization_constants (constants, valid_from) SELECT"
               " jsonb_build_object('I_vru_max', 8, 'I_veh_max', 8, 'V_max', 10, 'sigma_max', 20,"
               " 'S_ref', 40, 'HB_max', 15, 'k', 50, 'priors', jsonb_build_object("
               " 'intersections', jsonb_build_object('5', jsonb_object_agg(h::text,"
               " jsonb_build_object('vru', 30 + h * 0.5, 'vehicle', 40.25 - h,"
               " 'combined', 55.125 + h, 'minutes', 1000))))), now()"
               " FROM generate_series(0, 23) h");
    long long set_c = th_intf(c, "SELECT max(id) FROM normalization_constants");
    assert_true(set_c != set_b);
    run_reprocess(h0_us + US_HOUR, h0_us + 2 * US_HOUR);
    assert_int_equal(th_intf(c,
                             "SELECT count(*) FROM safety_indices_realtime WHERE constants_id ="
                             " %lld AND combined_index_eb IS NOT NULL AND vru_index_eb IS NOT NULL"
                             " AND vehicle_index_eb IS NOT NULL AND abs(combined_index_eb -"
                             " combined_index) > 1e-6",
                             set_c),
                     70);
    static const long long eb_minutes[][2] = {{5, 60}, {5, 77}, {5, 119}, {7, 61}, {7, 69}};
    for (size_t i = 0; i < sizeof eb_minutes / sizeof eb_minutes[0]; i++) {
        explain_ok(eb_minutes[i][0], h0_us + eb_minutes[i][1] * US_MIN, set_c);
        const char *want =
            eb_minutes[i][0] == 5 ? "\"prior\":\"intersection\"" : "\"prior\":\"network\"";
        if (!strstr(out, want))
            fail_msg("explain of intersection %lld: no %s %s", eb_minutes[i][0], want, dump(out));
    }

    /* bad arguments */
    const char *bad1[] = {"reprocess", "--since",           "2026-01-01T10:30Z",
                          "--until",   "2026-01-01T12:00Z", NULL};
    assert_int_equal(th_run_tsi(bad1, NULL, out, sizeof out), 2);
    const char *bad2[] = {"reprocess", "--since",           "2026-01-01T12:00Z",
                          "--until",   "2026-01-01T10:00Z", NULL};
    assert_int_equal(th_run_tsi(bad2, NULL, out, sizeof out), 2);
    const char *bad3[] = {"reprocess", "--since",           "2999-01-01T10:00Z",
                          "--until",   "2999-01-01T12:00Z", NULL};
    assert_int_equal(th_run_tsi(bad3, NULL, out, sizeof out), 2);
    PQfinish(c);
    th_db_drop(db);
}

/* ------------------------------------------------ reprocess that cannot destroy -- */

/* Runs reprocess of [from, to) with raw dir rawdir, up to two extra flags and one extra
 * environment entry; returns the exit status (output in `out`). */
static int rp(const char *rawdir, long long from, long long to, const char *x1, const char *x2,
              const char *env1)
{
    char s[32], u[32];
    time_t a = (time_t)(from / 1000000), b = (time_t)(to / 1000000);
    struct tm ta, tb;
    gmtime_r(&a, &ta);
    gmtime_r(&b, &tb);
    strftime(s, sizeof s, "%Y-%m-%dT%H:00Z", &ta);
    strftime(u, sizeof u, "%Y-%m-%dT%H:00Z", &tb);
    const char *args[12] = {"reprocess", "--since", s,           "--until", u,
                            "--raw",     rawdir,    "--archive", arch};
    int n = 9;
    if (x1)
        args[n++] = x1;
    if (x2)
        args[n++] = x2;
    args[n] = NULL;
    const char *env[2] = {env1, NULL};
    return th_run_tsi(args, env1 ? env : NULL, out, sizeof out);
}

/* A database and archive as the first run of test_reprocess_hour leaves them: 130
 * realtime rows computed with V_max 20, their indices Parquet; then constants B (V_max
 * 10) from now on, so that a real replacement of the second hour is visible. */
static PGconn *world(char *db)
{
    PGconn *c = world_base(db);
    run_reprocess(h0_us, h0_us + 2 * US_HOUR);
    assert_int_equal(th_intf(c, "SELECT count(*) FROM safety_indices_realtime"), 130);
    th_sqlf(c, "UPDATE normalization_constants SET valid_until = now()");
    th_sqlf(c, "INSERT INTO normalization_constants (constants, valid_from) VALUES"
               " ('{\"I_vru_max\": 8, \"I_veh_max\": 8, \"V_max\": 10, \"sigma_max\": 20,"
               " \"S_ref\": 40, \"HB_max\": 15, \"k\": 50}', now())");
    return c;
}

static void world_end(PGconn *c, const char *db)
{
    PQfinish(c);
    th_db_drop(db);
}

/* every realtime row with its row version: equal before and after = nothing written */
static char *rt_state(PGconn *c)
{
    return th_value(c, "SELECT md5(string_agg(r::text, '|' ORDER BY intersection_id,"
                       " \"timestamp\")) FROM (SELECT *, xmin::text AS x FROM"
                       " safety_indices_realtime) r");
}

/* the live indices Parquet: count of rows matching `where` (SQL over the indices view) */
static long long pq_count(const char *where)
{
    duckdb_database ddb;
    duckdb_connection con;
    assert_int_equal(duckdb_open(NULL, &ddb), DuckDBSuccess);
    assert_int_equal(duckdb_connect(ddb, &con), DuckDBSuccess);
    duck_queryf(con, "SET TimeZone = 'UTC'");
    char q[2048];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM read_parquet('%s/indices/[0-9]*/*/*/indices_*.parquet',"
             " union_by_name = true) WHERE %s",
             arch, where);
    long long n = duck_int(con, q);
    duckdb_disconnect(&con);
    duckdb_close(&ddb);
    return n;
}

/* rows of intersection 5 in hour h whose Parquet index follows V_max vmax */
static long long pq_matching(int h, const char *vmax)
{
    char f[1024], w[2048];
    snprintf(f, sizeof f, F_COMBINED("traffic_volume", "%s"), vmax, vmax);
    snprintf(w, sizeof w,
             "intersection_id = 5 AND epoch_us(\"timestamp\") >= %lld AND"
             " epoch_us(\"timestamp\") < %lld AND abs(combined_index - %s) < 1e-9",
             h0_us + h * US_HOUR, h0_us + (h + 1) * US_HOUR, f);
    return pq_count(w);
}

/* the live day directory of the second hour */
static void day_dir(char *buf, size_t len)
{
    time_t t = (time_t)((h0_us + US_HOUR) / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, "%s/indices/%04d/%02d/%02d", arch, tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday);
}

/* the lines `ls <how> <what>` prints */
static int ls_count(const char *how, const char *what)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls %s %s 2>/dev/null | wc -l", how, what);
    FILE *f = popen(cmd, "r");
    int n = -1;
    if (!f || fscanf(f, "%d", &n) != 1)
        fail_msg("cannot list %s", what);
    pclose(f);
    return n;
}

/* how many paths match a shell glob */
static int globcount(const char *pattern)
{
    return ls_count("-d", pattern);
}

/* the entries of a directory */
static int entries(const char *path)
{
    char q[1024];
    snprintf(q, sizeof q, "'%s'", path);
    return ls_count("-A", q);
}

/* The archive and the database as the first run left them: nothing replaced. */
static void assert_untouched(PGconn *c, const char *rt_before, int superseded_before)
{
    char *now = rt_state(c);
    assert_string_equal(rt_before, now);
    free(now);
    assert_int_equal(matching(c, 0, "20"), 60);
    assert_int_equal(matching(c, 1, "20"), 60);
    assert_int_equal(pq_count("true"), 130);
    assert_int_equal(pq_matching(1, "20"), 60);
    char sup[700];
    snprintf(sup, sizeof sup, "%s/indices/.superseded", arch);
    assert_int_equal(entries(sup), superseded_before);
    snprintf(sup, sizeof sup, "%s/indices/.staging", arch);
    assert_true(entries(sup) <= 0);
}

/* A raw directory that holds nothing, then one holding a single unreadable file: each is
 * refused with exit 3 and the table, and nothing changes; --force then does replace. */
static void test_refuse_empty_and_unreadable(void **state)
{
    (void)state;
    char db[64];
    PGconn *c = world(db);
    char *before = rt_state(c);
    char sup[700];
    snprintf(sup, sizeof sup, "%s/indices/.superseded", arch);
    int nsup = entries(sup);

    char empty[700];
    snprintf(empty, sizeof empty, "%s/empty", dir);
    mkdirs(empty);
    char rawd[720];
    snprintf(rawd, sizeof rawd, "%s/raw", empty);
    mkdirs(rawd);
    int rc = rp(empty, h0_us, h0_us + 2 * US_HOUR, NULL, NULL, NULL);
    if (rc != 3 || !strstr(out, "no raw message") || !strstr(out, "rows_before") ||
        !strstr(out, "nothing was changed"))
        fail_msg("an empty raw directory: exit %d, want 3 with the table %s", rc, dump(out));
    assert_untouched(c, before, nsup);

    /* one legacy file of the day that DuckDB cannot read */
    char bad[800], bsmd[760];
    snprintf(bsmd, sizeof bsmd, "%s/one/raw/bsm", dir);
    mkdirs(bsmd);
    time_t t = (time_t)((h0_us + US_HOUR) / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char date[16];
    strftime(date, sizeof date, "%Y-%m-%d", &tm);
    snprintf(bad, sizeof bad, "%s/bsm_%s_0.parquet", bsmd, date);
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fputs("PAR1 this is not a parquet file\n", f);
    fclose(f);
    char one[720];
    snprintf(one, sizeof one, "%s/one", dir);
    rc = rp(one, h0_us + US_HOUR, h0_us + 2 * US_HOUR, NULL, NULL, NULL);
    if (rc != 3 || !strstr(out, "unreadable raw file") || !strstr(out, bad))
        fail_msg("an unreadable raw file: exit %d, want 3 naming it %s", rc, dump(out));
    assert_untouched(c, before, nsup);
    /* the unreadable file beside the good ones: still refused (it may hold rows) */
    char good_bad[900];
    snprintf(good_bad, sizeof good_bad, "%s/raw/bsm/bsm_%s_9.parquet", dir, date);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", bad, good_bad);
    assert_int_equal(system(cmd), 0);
    rc = rp(dir, h0_us + US_HOUR, h0_us + 2 * US_HOUR, NULL, NULL, NULL);
    if (rc != 3 || !strstr(out, good_bad))
        fail_msg("an unreadable file among readable ones: exit %d %s", rc, dump(out));
    assert_untouched(c, before, nsup);
    unlink(good_bad);

    /* --force replaces the second hour with nothing: its rows go, the first hour stays */
    rc = rp(empty, h0_us + US_HOUR, h0_us + 2 * US_HOUR, "--force", NULL, NULL);
    if (rc != 0)
        fail_msg("--force: exit %d %s", rc, dump(out));
    assert_int_equal(matching(c, 0, "20"), 60);
    assert_int_equal(th_intf(c,
                             "SELECT count(*) FROM safety_indices_realtime WHERE \"timestamp\" >="
                             " timestamptz 'epoch' + %lld * interval '1 microsecond'",
                             h0_us + US_HOUR),
                     0);
    assert_int_equal(pq_count("true"), 60);
    assert_int_equal(pq_matching(0, "20"), 60);
    assert_int_equal(th_int(c, "SELECT count(*) FROM reprocess_generations WHERE forced AND"
                               " swapped_at IS NOT NULL AND raw_messages = 0 AND rows_after = 0"
                               " AND rows_before = 70"),
                     1);
    free(before);
    world_end(c, db);
}

/* --dry-run prints the table and changes nothing, even when a real run would replace. */
static void test_dry_run(void **state)
{
    (void)state;
    char db[64];
    PGconn *c = world(db);
    char *before = rt_state(c);
    char sup[700];
    snprintf(sup, sizeof sup, "%s/indices/.superseded", arch);
    int nsup = entries(sup);
    long long gens = th_int(c, "SELECT count(*) FROM reprocess_generations"); /* the first run's */
    int rc = rp(dir, h0_us + US_HOUR, h0_us + 2 * US_HOUR, "--dry-run", NULL, NULL);
    /* the second hour: 60 rows of intersection 5 and 10 of 7, before and after alike */
    if (rc != 0 || !strstr(out, "dry run: nothing was changed") || !strstr(out, "verdict=ok") ||
        !strstr(out, "rows_before=70 rows_after=70"))
        fail_msg("--dry-run: exit %d %s", rc, dump(out));
    assert_untouched(c, before, nsup);
    assert_int_equal(th_int(c, "SELECT count(*) FROM reprocess_generations"), gens);
    /* only the legacy files (intersection 7, 10 minutes): the hour shrinks from 70 rows
     * to 10 and intersection 5 from 60 to 0, more than the default half: refused; a
     * --max-shrink of 1 accepts any shrink (the raw input is not empty) */
    char legacy[700], cmd[2048];
    snprintf(legacy, sizeof legacy, "%s/legacy/raw/bsm", dir);
    mkdirs(legacy);
    snprintf(cmd, sizeof cmd, "cp %s/raw/bsm/bsm_*.parquet '%s'/", dir, legacy);
    assert_int_equal(system(cmd), 0);
    snprintf(legacy, sizeof legacy, "%s/legacy", dir);
    rc = rp(legacy, h0_us + US_HOUR, h0_us + 2 * US_HOUR, "--dry-run", NULL, NULL);
    if (rc != 3 || !strstr(out, "rows 70 -> 10 (-85.7%)") ||
        !strstr(out, "refused: intersection 5 on") || strstr(out, "refused: intersection 7"))
        fail_msg("a shrink of 6/7: exit %d %s", rc, dump(out));
    rc = rp(legacy, h0_us + US_HOUR, h0_us + 2 * US_HOUR, "--dry-run", "--max-shrink=1", NULL);
    if (rc != 0 || !strstr(out, "verdict=ok"))
        fail_msg("--max-shrink 1: exit %d %s", rc, dump(out));
    assert_untouched(c, before, nsup);
    /* and a refusal seen by a dry run is exit 3, still without a change */
    char empty[700];
    snprintf(empty, sizeof empty, "%s/empty", dir);
    mkdirs(empty);
    rc = rp(empty, h0_us + US_HOUR, h0_us + 2 * US_HOUR, "--dry-run", "--force", NULL);
    if (rc != 3 || !strstr(out, "verdict=refuse"))
        fail_msg("--dry-run of an empty input: exit %d %s", rc, dump(out));
    assert_untouched(c, before, nsup);
    free(before);
    world_end(c, db);
}

/* A collector file published into the live day directory while a swap is pending */
static void collector_file(char *path, size_t len)
{
    char dd[700];
    day_dir(dd, sizeof dd);
    snprintf(path, len, "%s/indices_29991231T000000Z_0.parquet", dd);
    duckdb_database ddb;
    duckdb_connection con;
    assert_int_equal(duckdb_open(NULL, &ddb), DuckDBSuccess);
    assert_int_equal(duckdb_connect(ddb, &con), DuckDBSuccess);
    duck_queryf(con,
                "COPY (SELECT * REPLACE (intersection_id + 1000 AS intersection_id,"
                " \"timestamp\" + INTERVAL 90 MINUTE AS \"timestamp\") FROM"
                " read_parquet('%s/indices_*.parquet') WHERE intersection_id = 5 AND"
                " epoch_us(\"timestamp\") >= %lld ORDER BY \"timestamp\" LIMIT 1)"
                " TO '%s' (FORMAT parquet)",
                dd, h0_us + US_HOUR, path);
    duckdb_disconnect(&con);
    duckdb_close(&ddb);
}

static void assert_healed(PGconn *c, const char *collector)
{
    assert_int_equal(matching(c, 0, "20"), 60);
    assert_int_equal(matching(c, 1, "10"), 60);
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime"), 130);
    assert_int_equal(pq_matching(0, "20"), 60);
    assert_int_equal(pq_matching(1, "10"), 60);
    assert_int_equal(pq_count("intersection_id < 1000"), 130);
    assert_int_equal(
        pq_count("intersection_id < 1000 GROUP BY ALL HAVING count(DISTINCT (intersection_id,"
                 " \"timestamp\")) = 130"),
        130);
    struct stat st;
    if (collector) {
        if (stat(collector, &st) != 0)
            fail_msg("the collector's file %s was superseded", collector);
        assert_int_equal(pq_count("intersection_id > 1000"), 1);
    }
    char p[700];
    snprintf(p, sizeof p, "%s/indices/.staging", arch);
    assert_true(entries(p) <= 0);
    assert_int_equal(th_int(c, "SELECT count(*) FROM reprocess_generations"
                               " WHERE swapped_at IS NULL"),
                     0);
}

/* A crash after the Parquet generation was staged, before the database transaction:
 * nothing changed (the database decides, and it has not); the next run rolls the staging
 * back and replaces the hour. */
static void test_crash_before_commit(void **state)
{
    (void)state;
    char db[64];
    PGconn *c = world(db);
    char *before = rt_state(c);
    char sup[700];
    snprintf(sup, sizeof sup, "%s/indices/.superseded", arch);
    int nsup = entries(sup);
    long long gens = th_int(c, "SELECT count(*) FROM reprocess_generations"); /* the first run's */
    int rc =
        rp(dir, h0_us + US_HOUR, h0_us + 2 * US_HOUR, NULL, NULL, "TSI_REPROCESS_CRASH_AT=staged");
    if (rc != 70)
        fail_msg("crash injection: exit %d %s", rc, dump(out));
    char st[700];
    snprintf(st, sizeof st, "%s/indices/.staging", arch);
    assert_int_equal(entries(st), 1); /* the staged generation is left behind */
    char *now = rt_state(c);
    assert_string_equal(before, now);
    free(now);
    assert_int_equal(pq_count("true"), 130);
    assert_int_equal(pq_matching(1, "20"), 60);
    assert_int_equal(entries(sup), nsup);
    assert_int_equal(th_int(c, "SELECT count(*) FROM reprocess_generations"), gens);
    char coll[800];
    collector_file(coll, sizeof coll);

    rc = rp(dir, h0_us + US_HOUR, h0_us + 2 * US_HOUR, NULL, NULL, NULL);
    if (rc != 0 || !strstr(out, "rolling back an uncommitted generation"))
        fail_msg("the next run: exit %d %s", rc, dump(out));
    assert_healed(c, coll);
    free(before);
    world_end(c, db);
}

/* A crash after the database commit, before the Parquet swap: the database already holds
 * the new rows; `tsi reprocess --recover` finishes the swap, and a file the collector
 * published meanwhile stays live. */
static void test_crash_after_commit(void **state)
{
    (void)state;
    char db[64];
    PGconn *c = world(db);
    int rc = rp(dir, h0_us + US_HOUR, h0_us + 2 * US_HOUR, NULL, NULL,
                "TSI_REPROCESS_CRASH_AT=committed");
    if (rc != 70)
        fail_msg("crash injection: exit %d %s", rc, dump(out));
    assert_int_equal(matching(c, 1, "10"), 60);
    assert_int_equal(pq_matching(1, "20"), 60); /* the swap is still to do */
    assert_int_equal(th_int(c, "SELECT count(*) FROM reprocess_generations"
                               " WHERE swapped_at IS NULL"),
                     1);
    char coll[800];
    collector_file(coll, sizeof coll);
    const char *args[] = {"reprocess", "--recover", "--archive", arch, NULL};
    rc = th_run_tsi(args, NULL, out, sizeof out);
    if (rc != 0 || !strstr(out, "finished=1"))
        fail_msg("--recover: exit %d %s", rc, dump(out));
    assert_healed(c, coll);
    /* .superseded holds the replaced files only: no collector file, no kept file */
    char sup[700];
    snprintf(sup, sizeof sup, "%s/indices/.superseded/*.g*/indices_29991231T000000Z_0.parquet",
             arch);
    assert_int_equal(globcount(sup), 0);
    snprintf(sup, sizeof sup, "%s/indices/.superseded/*.g*/indices_*.parquet", arch);
    assert_true(globcount(sup) >= 1);
    /* a second recovery has nothing to do */
    rc = th_run_tsi(args, NULL, out, sizeof out);
    if (rc != 0 || !strstr(out, "finished=0 rolled_back=0"))
        fail_msg("second --recover: exit %d %s", rc, dump(out));
    PQfinish(c);
    th_db_drop(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reprocess_hour),
        cmocka_unit_test(test_refuse_empty_and_unreadable),
        cmocka_unit_test(test_dry_run),
        cmocka_unit_test(test_crash_before_commit),
        cmocka_unit_test(test_crash_after_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
