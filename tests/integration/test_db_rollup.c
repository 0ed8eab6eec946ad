/* db/rollup.h, the jobs' rollup arithmetic in C (what tsi seed writes beyond the 1-minute
 * window), against the jobs' SQL (tsi_rollup_hours, tsi_rollup_days) on the same minutes
 * (issue 28): the hourly and daily rows the jobs write from inserted 1-minute rows equal
 * what tsi_rollup_hour_of_minutes and tsi_rollup_day_of_hours compute from those minutes.
 * Cases: full hours, a sparse hour, a single-minute hour (no standard deviation), minutes
 * on both sides of the high-risk threshold, EB values and raw ones. Real PostgreSQL. */
#include "test_jobs_util.h"

#include "db/rollup.h"

static void close_to(double got, double want)
{
    if (isnan(want) ? !isnan(got) : !(fabs(got - want) <= 1e-9 * fmax(1, fabs(want))))
        fail_msg("the jobs wrote %.17g, db/rollup computes %.17g", got, want);
}

static double col(PGconn *c, const char *table, const char *column, const char *key, long long at)
{
    bool day = strcmp(key, "date") == 0;
    return th_doublef(
        c, "SELECT %s FROM %s WHERE intersection_id = 1 AND %s = %sto_timestamp(%lld)%s", column,
        table, key, day ? "(" : "", at, day ? " AT TIME ZONE 'UTC')::date" : "");
}

static void test_rollups_agree_with_the_jobs(void **state)
{
    (void)state;
    th_require_cluster();
    PGconn *owner = th_connect("tsi_owner"), *w = th_connect("tsi_writer");
    jt_intersections(owner, 1);
    long long day0 = (jt_server_now(owner) / 86400 - 1) * 86400; /* yesterday, UTC */
    /* hours of the day and how many minutes each has (1..60, one at the edges) */
    static const struct {
        int hour, minutes;
        double lo, hi; /* the index range of its minutes */
    } hours[] = {
        {3, 60, 10, 40}, {8, 60, 60, 95}, {9, 17, 70, 80}, {15, 1, 76, 76}, {22, 45, 0, 100}};
    enum { NH = sizeof hours / sizeof hours[0] };
    jt_row rows[300];
    size_t n = 0;
    tsi_rollup_hour want[NH];
    for (int h = 0; h < NH; h++) {
        double si[60];
        int vol[60];
        for (int m = 0; m < hours[h].minutes; m++) {
            long long ts = day0 + hours[h].hour * 3600LL + (60 / hours[h].minutes) * m * 60LL;
            jt_row r = jt_make(1, ts, hours[h].lo, hours[h].hi, 0.3);
            rows[n++] = r;
            si[m] = isnan(r.eb) ? r.raw : r.eb; /* the index the jobs roll: EB where known */
            vol[m] = r.vol;
        }
        tsi_rollup_hour_of_minutes(&want[h], si, vol, hours[h].minutes);
        want[h].hour = day0 + hours[h].hour * 3600LL;
    }
    jt_insert(w, rows, n);
    char at[64];
    jt_run_ok("hourly", jt_at(at, sizeof at, day0 + 86400 + 300), NULL, NULL);
    jt_run_ok("daily", at, NULL, NULL);

    for (int h = 0; h < NH; h++) {
        const char *T = "safety_indices_hourly", *K = "hour_timestamp";
        long long t = want[h].hour;
        close_to(col(owner, T, "avg_si", K, t), want[h].avg);
        close_to(col(owner, T, "min_si", K, t), want[h].min);
        close_to(col(owner, T, "max_si", K, t), want[h].max);
        close_to(col(owner, T, "std_si", K, t), want[h].sd);
        assert_int_equal((long long)col(owner, T, "total_volume", K, t), want[h].total_vol);
        assert_int_equal((int)col(owner, T, "high_risk_minutes", K, t), want[h].high_risk_minutes);
        close_to(col(owner, T, "data_quality_score", K, t), want[h].n / 60.0);
    }
    tsi_rollup_day d;
    tsi_rollup_day_of_hours(&d, want, NH);
    const char *T = "safety_indices_daily", *K = "date";
    close_to(col(owner, T, "avg_si", K, day0), d.avg);
    close_to(col(owner, T, "min_si", K, day0), d.min);
    close_to(col(owner, T, "max_si", K, day0), d.max);
    close_to(col(owner, T, "std_si", K, day0), d.sd);
    assert_int_equal((long long)col(owner, T, "total_volume", K, day0), d.total_vol);
    assert_int_equal((int)col(owner, T, "high_risk_hours", K, day0), d.high_risk_hours);
    assert_int_equal((int)col(owner, T, "peak_hour", K, day0), d.peak_hour);
    close_to(col(owner, T, "peak_si", K, day0), d.peak_si);
    /* the cases cover both sides of the threshold: high-risk minutes and hours exist */
    assert_true(d.high_risk_hours > 0 && d.high_risk_hours < NH);
    PQfinish(w);
    PQfinish(owner);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rollups_agree_with_the_jobs, th_db_setup,
                                        th_db_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
