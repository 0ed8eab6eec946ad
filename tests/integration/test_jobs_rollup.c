/* Integration: hourly and daily rollups (domain.md §5) against real PostgreSQL —
 * exactness to 1e-9 against the test's own arithmetic, idempotency, catch-up from the
 * watermark, re-roll on late rows, a failing job recorded and healed (issue 14). */
#include "test_jobs_util.h"

#define MAXROWS 4000

static jt_row rows[MAXROWS];
static size_t nrows;
static long long day0; /* UTC midnight two days ago */

static void add(jt_row r)
{
    if (nrows >= MAXROWS)
        fail_msg("too many rows");
    rows[nrows++] = r;
}

static double si(const jt_row *r)
{
    return isnan(r->eb) ? r->raw : r->eb;
}

/* The dataset: a full 60-minute hour with NULL EB values, a single-minute hour, a day
 * with missing hours, high-risk hours, an all-NULL-EB high-risk hour, and a row after the
 * job's clock that must not be rolled. */
static void make_dataset(void)
{
    nrows = 0;
    jt_seed = 0x9E3779B97F4A7C15ULL;
    day0 = ((long long)time(NULL) / 86400 - 2) * 86400;
    for (int m = 0; m < 60; m++) /* int 1, hour 0: 60 minutes, ~30 % NULL EB */
        add(jt_make(1, day0 + m * 60, 0, 100, 0.3));
    add(jt_make(1, day0 + 3600 + 17 * 60, 0, 100, 0)); /* int 1, hour 1: one minute */
    for (int m = 0; m < 45; m++)                       /* int 1, hour 3: high values */
        add(jt_make(1, day0 + 3 * 3600 + m * 60, 70, 100, 0.2));
    for (int h = 0; h < 24; h++) { /* int 2: a day with missing hours */
        if (h == 5 || h == 11 || h == 17)
            continue;
        int minutes = 1 + (h * 7) % 60;
        double lo = (h >= 8 && h <= 10) ? 78 : 0, hi = (h >= 8 && h <= 10) ? 100 : 90;
        for (int m = 0; m < minutes; m++)
            add(jt_make(2, day0 + h * 3600 + m * 60, lo, hi, 0.25));
    }
    for (int m = 0; m < 60; m++) /* int 3, hour 12: 60 minutes, EB all NULL, all > 75 */
        add(jt_make(3, day0 + 12 * 3600 + m * 60, 76, 99, 1.0));
    /* after the clock: next day 00:10 (the hour is not complete at 00:05) */
    add(jt_make(1, day0 + 86400 + 600, 0, 100, 0));
}

/* Loads the dataset through the collector's role, optionally without the row after the
 * job's clock. */
static void load_dataset(PGconn *w, bool drop_last)
{
    make_dataset();
    if (drop_last)
        nrows--;
    jt_insert(w, rows, nrows);
}

/* Each test: a fresh database with intersections 1..3, the owner and writer connected. */
typedef struct fixture {
    char db[64];
    PGconn *owner, *w;
} fixture;

static int fx_setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    th_db_create(fx->db);
    fx->owner = th_connect("tsi_owner");
    jt_intersections(fx->owner, 3);
    fx->w = th_connect("tsi_writer");
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    fixture *fx = *state;
    PQfinish(fx->w);
    PQfinish(fx->owner);
    th_db_drop(fx->db);
    free(fx);
    return 0;
}

typedef struct hour_exp {
    long long iid, hour;
    jt_stats s;
    long long total;
    double avg_vol;
    int high, n;
} hour_exp;

static size_t expected_hours(long long before, hour_exp *out, size_t cap)
{
    size_t k = 0;
    static double vals[MAXROWS];
    for (long long iid = 1; iid <= 3; iid++) {
        for (long long h = day0 - 86400; h < before; h += 3600) {
            size_t n = 0;
            long long total = 0;
            int high = 0;
            for (size_t i = 0; i < nrows; i++) {
                if (rows[i].iid != iid || rows[i].ts < h || rows[i].ts >= h + 3600)
                    continue;
                vals[n++] = si(&rows[i]);
                total += rows[i].vol;
                high += si(&rows[i]) > 75;
            }
            if (n == 0)
                continue;
            assert_true(k < cap);
            out[k].iid = iid;
            out[k].hour = h;
            out[k].s = jt_stats_of(vals, n);
            out[k].total = total;
            out[k].avg_vol = (double)total / (double)n;
            out[k].high = high;
            out[k].n = (int)n;
            k++;
        }
    }
    return k;
}

static void check_hourly(PGconn *c, long long before)
{
    hour_exp exp[200];
    size_t n = expected_hours(before, exp, 200);
    PGresult *r = PQexec(c, "SELECT intersection_id, extract(epoch FROM hour_timestamp)::bigint, "
                            "avg_si, min_si, max_si, std_si, total_volume, avg_volume, "
                            "high_risk_minutes, data_quality_score FROM safety_indices_hourly "
                            "ORDER BY 1, 2");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal((size_t)PQntuples(r), n);
    for (size_t i = 0; i < n; i++) {
        int row = (int)i;
        assert_int_equal(strtoll(PQgetvalue(r, row, 0), NULL, 10), exp[i].iid);
        assert_int_equal(strtoll(PQgetvalue(r, row, 1), NULL, 10), exp[i].hour);
        jt_close(strtod(PQgetvalue(r, row, 2), NULL), exp[i].s.mean);
        jt_close(strtod(PQgetvalue(r, row, 3), NULL), exp[i].s.min);
        jt_close(strtod(PQgetvalue(r, row, 4), NULL), exp[i].s.max);
        if (exp[i].n < 2)
            assert_true(PQgetisnull(r, row, 5)); /* single minute: std is NULL */
        else
            jt_close(strtod(PQgetvalue(r, row, 5), NULL), exp[i].s.std);
        assert_int_equal(strtoll(PQgetvalue(r, row, 6), NULL, 10), exp[i].total);
        jt_close(strtod(PQgetvalue(r, row, 7), NULL), exp[i].avg_vol);
        assert_int_equal(atoi(PQgetvalue(r, row, 8)), exp[i].high);
        jt_close(strtod(PQgetvalue(r, row, 9), NULL), exp[i].n / 60.0);
        if (exp[i].n == 60)
            assert_string_equal(PQgetvalue(r, row, 9), "1");
    }
    PQclear(r);
}

static double daily_col(PGconn *c, const char *col, long long iid, long long day)
{
    return th_doublef(c,
                      "SELECT %s FROM safety_indices_daily WHERE intersection_id = %lld AND "
                      "date = (to_timestamp(%lld) AT TIME ZONE 'UTC')::date",
                      col, iid, day);
}

/* the day's figures straight from the minutes (not from the hourly rows) */
static void check_daily(PGconn *c, long long day)
{
    static double vals[MAXROWS];
    int checked = 0;
    for (long long iid = 1; iid <= 3; iid++) {
        size_t n = 0;
        long long total = 0;
        double hour_mean[24];
        int hour_n[24] = {0};
        double hour_sum[24] = {0};
        for (size_t i = 0; i < nrows; i++) {
            if (rows[i].iid != iid || rows[i].ts < day || rows[i].ts >= day + 86400)
                continue;
            vals[n++] = si(&rows[i]);
            total += rows[i].vol;
            int h = (int)((rows[i].ts - day) / 3600);
            hour_n[h]++;
            hour_sum[h] += si(&rows[i]);
        }
        char *cnt = NULL;
        char sql[200];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM safety_indices_daily WHERE intersection_id = %lld "
                 "AND date = (to_timestamp(%lld) AT TIME ZONE 'UTC')::date",
                 iid, day);
        cnt = th_value(c, sql);
        if (n == 0) {
            assert_string_equal(cnt, "0");
            free(cnt);
            continue;
        }
        assert_string_equal(cnt, "1");
        free(cnt);
        jt_stats s = jt_stats_of(vals, n);
        int high_hours = 0, peak = -1;
        for (int h = 0; h < 24; h++) {
            if (!hour_n[h])
                continue;
            hour_mean[h] = hour_sum[h] / hour_n[h];
            high_hours += hour_mean[h] > 75;
            if (peak < 0 || hour_mean[h] > hour_mean[peak])
                peak = h;
        }
        jt_close(daily_col(c, "avg_si", iid, day), s.mean);
        jt_close(daily_col(c, "min_si", iid, day), s.min);
        jt_close(daily_col(c, "max_si", iid, day), s.max);
        jt_close(daily_col(c, "std_si", iid, day), s.std); /* pooled == std of all minutes */
        assert_int_equal((long long)daily_col(c, "total_volume", iid, day), total);
        jt_close(daily_col(c, "avg_volume", iid, day), (double)total / (double)n);
        assert_int_equal((int)daily_col(c, "high_risk_hours", iid, day), high_hours);
        assert_int_equal((int)daily_col(c, "peak_hour", iid, day), peak);
        jt_close(daily_col(c, "peak_si", iid, day), hour_mean[peak]);
        checked++;
    }
    assert_int_equal(checked, 3);
}

static void test_hourly_and_daily_exact(void **state)
{
    fixture *fx = *state;
    PGconn *owner = fx->owner, *w = fx->w;
    char at[64];
    load_dataset(w, false);

    /* the hourly job at 00:05 the next day rolls every completed hour, nothing later */
    tsi_job_result res;
    jt_run_ok("hourly", jt_at(at, sizeof at, day0 + 86400 + 300), NULL, &res);
    check_hourly(owner, day0 + 86400);
    assert_int_equal(th_intf(owner,
                             "SELECT count(*) FROM safety_indices_hourly WHERE "
                             "hour_timestamp >= to_timestamp(%lld)",
                             day0 + 86400),
                     0);
    /* int 2 has 21 hours, int 1 three, int 3 one */
    assert_int_equal(res.rows, 25);

    jt_run_ok("daily", at, NULL, &res);
    check_daily(owner, day0);
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM safety_indices_daily"), 3);
    /* int 2: hours 8..10 are high risk, its peak among them */
    assert_int_equal(th_intf(owner, "SELECT high_risk_hours FROM safety_indices_daily WHERE "
                                    "intersection_id = 2"),
                     3);
}

static const char *const TABLES[][3] = {
    {"*", "safety_indices_hourly", "intersection_id, hour_timestamp"},
    {"*", "safety_indices_daily", "intersection_id, date"},
    {"id, intersection_id, \"timestamp\", combined_index, combined_index_eb",
     "safety_indices_realtime", "intersection_id, \"timestamp\""},
    {"*", "normalization_constants", "valid_from"},
    {"*", "job_state", "job"},
};

static void digests(PGconn *c, char *out[5])
{
    for (int i = 0; i < 5; i++)
        out[i] = jt_digest(c, TABLES[i][0], TABLES[i][1], TABLES[i][2]);
}

static void test_every_job_twice_identical(void **state)
{
    fixture *fx = *state;
    PGconn *owner = fx->owner, *w = fx->w;
    char at[64];
    load_dataset(w, false);
    jt_at(at, sizeof at, day0 + 86400 + 300);

    char out[4096];
    const char *args[] = {"jobs", "run", "all", "--at", at, "--log-level", "warn", NULL};
    int rc = th_run_tsi(args, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("tsi jobs run all: %d\n%s", rc, out);
    char *first[5], *second[5];
    digests(owner, first);
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM safety_indices_daily"), 3);
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM normalization_constants"), 1);

    rc = th_run_tsi(args, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("tsi jobs run all (again): %d\n%s", rc, out);
    digests(owner, second);
    for (int i = 0; i < 5; i++) {
        if (strcmp(first[i], second[i]) != 0)
            fail_msg("%s changed on the second run", TABLES[i][1]);
        free(first[i]);
        free(second[i]);
    }
    /* each job: two runs, all ok */
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM job_runs WHERE status = 'ok'"), 10);
    /* and the figures are still the independent ones */
    check_hourly(owner, day0 + 86400);
    check_daily(owner, day0);
}

/* 5 hours with no job run and no dirty marks (as if written with triggers off): the
 * watermark alone makes one run heal all five. */
static void test_catch_up_five_hours(void **state)
{
    fixture *fx = *state;
    PGconn *owner = fx->owner, *w = fx->w;
    char at[64];
    nrows = 0;
    day0 = ((long long)time(NULL) / 86400 - 2) * 86400;
    long long h0 = day0 + 6 * 3600;
    add(jt_make(1, h0 - 3600, 0, 100, 0));
    jt_insert(w, rows, nrows);
    jt_run_ok("hourly", jt_at(at, sizeof at, h0 + 60), NULL, NULL); /* watermark = h0 */
    assert_int_equal(th_intf(owner, "SELECT extract(epoch FROM watermark)::bigint FROM job_state "
                                    "WHERE job = 'hourly'"),
                     h0);
    size_t before = nrows;
    for (int h = 0; h < 5; h++)
        for (int m = 0; m < 10 + h; m++)
            for (int iid = 1; iid <= 3; iid++)
                add(jt_make(iid, h0 + h * 3600 + m * 60, 0, 100, 0.2));
    jt_insert(w, rows + before, nrows - before);
    th_sqlf(owner, "DELETE FROM rollup_dirty");
    tsi_job_result res;
    jt_run_ok("hourly", jt_at(at, sizeof at, h0 + 5 * 3600 + 300), NULL, &res);
    assert_int_equal(res.buckets, 5);
    assert_int_equal(res.rows, 15);
    check_hourly(owner, h0 + 5 * 3600);
}

/* A late row (insert) and a corrected row (upsert) for hours already rolled up: the next
 * run re-rolls exactly those hours, and the daily run re-rolls their day. */
static void test_late_row_rerolls(void **state)
{
    fixture *fx = *state;
    PGconn *owner = fx->owner, *w = fx->w;
    char at[64];
    load_dataset(w, true); /* without the row after the clock */
    jt_at(at, sizeof at, day0 + 86400 + 300);
    jt_run_ok("daily", at, NULL, NULL);
    check_hourly(owner, day0 + 86400);
    check_daily(owner, day0);
    char *untouched = jt_digest(owner, "*", "safety_indices_hourly WHERE intersection_id <> 1",
                                "intersection_id, hour_timestamp");

    /* late: a new minute in int 1's single-minute hour; corrected: a minute of hour 0 */
    jt_row late = jt_make(1, day0 + 3600 + 40 * 60, 90, 100, 0);
    add(late);
    jt_insert(w, &late, 1);
    th_sqlf(
        w,
        "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", combined_index, "
        "combined_index_eb, traffic_volume, vru_count, vehicle_event_count, vru_event_count, "
        "hour_of_day, day_of_week) VALUES (1, to_timestamp(%lld), 99.5, 99.25, 7, 0, 0, 0, 0, 0) "
        "ON CONFLICT (intersection_id, \"timestamp\") DO UPDATE SET combined_index = "
        "EXCLUDED.combined_index, combined_index_eb = EXCLUDED.combined_index_eb, "
        "traffic_volume = EXCLUDED.traffic_volume",
        rows[5].ts);
    rows[5].raw = 99.5;
    rows[5].eb = 99.25;
    rows[5].vol = 7;

    tsi_job_result res;
    jt_run_ok("hourly", at, NULL, &res);
    assert_int_equal(res.buckets, 2); /* exactly the two dirty hours */
    assert_int_equal(res.rows, 2);
    check_hourly(owner, day0 + 86400);
    char *after = jt_digest(owner, "*", "safety_indices_hourly WHERE intersection_id <> 1",
                            "intersection_id, hour_timestamp");
    assert_string_equal(untouched, after);
    jt_run_ok("daily", at, NULL, &res);
    assert_int_equal(res.buckets, 1);
    check_daily(owner, day0);
    free(untouched);
    free(after);
}

/* A constraint violation injected into the daily table: the run is recorded as failed
 * with the error, every table is as before (the nested hourly rollup included), and the
 * next run after the fault is removed heals everything. */
static void test_failing_job_recorded_and_healed(void **state)
{
    fixture *fx = *state;
    PGconn *owner = fx->owner, *w = fx->w;
    char at[64];
    load_dataset(w, true);
    th_sqlf(owner, "ALTER TABLE safety_indices_daily ADD CONSTRAINT injected_fault "
                   "CHECK (total_volume < 0) NOT VALID");
    const char *snap[4][3] = {
        {"*", "safety_indices_hourly", "intersection_id, hour_timestamp"},
        {"*", "safety_indices_daily", "intersection_id, date"},
        {"*", "job_state", "job"},
        {"kind, bucket", "rollup_dirty", "kind, bucket"},
    };
    char *before[4];
    for (int i = 0; i < 4; i++)
        before[i] = jt_digest(owner, snap[i][0], snap[i][1], snap[i][2]);

    char out[4096];
    jt_at(at, sizeof at, day0 + 86400 + 300);
    const char *args[] = {"jobs", "run", "daily", "--at", at, "--log-level", "warn", NULL};
    int rc = th_run_tsi(args, NULL, out, sizeof out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "injected_fault"));
    for (int i = 0; i < 4; i++) {
        char *now = jt_digest(owner, snap[i][0], snap[i][1], snap[i][2]);
        if (strcmp(now, before[i]) != 0)
            fail_msg("%s changed by a failed run", snap[i][1]);
        free(now);
        free(before[i]);
    }
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM job_runs WHERE job = 'daily' AND "
                                    "status = 'failed' AND error LIKE '23514:%%injected_fault%%'"),
                     1);
    const char *st[] = {"jobs", "status", "--log-level", "warn", NULL};
    rc = th_run_tsi(st, NULL, out, sizeof out);
    assert_int_equal(rc, 1); /* the last daily run failed */
    assert_non_null(strstr(out, "injected_fault"));

    th_sqlf(owner, "ALTER TABLE safety_indices_daily DROP CONSTRAINT injected_fault");
    rc = th_run_tsi(args, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("second run: %d %s", rc, out);
    check_hourly(owner, day0 + 86400);
    check_daily(owner, day0);
    rc = th_run_tsi(st, NULL, out, sizeof out);
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hourly_and_daily_exact, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_every_job_twice_identical, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_five_hours, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_late_row_rerolls, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_failing_job_recorded_and_healed, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
