/* Integration: normalisation constants and EB priors (domain.md §4) recomputed by the
 * constants job from 1-minute rows — maxima, the 85th percentile, zero -> 1, defaults
 * for a feature with no data, priors per intersection x hour with the network fallback,
 * validity periods that never overlap, and an index computed later with the new set
 * (issue 14). */
#include "test_jobs_util.h"

#include "core/index.h"

#define MAXROWS 1000

static jt_row rows[MAXROWS];
static size_t nrows;

static void add(jt_row r)
{
    if (nrows >= MAXROWS)
        fail_msg("too many rows");
    rows[nrows++] = r;
}

/* a minute with features; hour_of_day follows the UTC timestamp (TSI_TIMEZONE = UTC) */
static jt_row feat(long long iid, long long ts)
{
    jt_row r = jt_make(iid, ts, 0, 100, 0);
    r.vru_events = (int)(jt_rand() * 9);
    r.veh_events = (int)(jt_rand() * 13);
    r.vru_count = (int)(jt_rand() * 5);
    r.vol = (int)(jt_rand() * 250);
    r.hb = 0;                                              /* always 0: HB_max becomes 1 */
    r.sd = NAN;                                            /* never written: default */
    r.speed = jt_rand() < 0.2 ? 0 : 2 + jt_rand() * 18;    /* some 0 (excluded) */
    r.vru_index = jt_rand() < 0.1 ? NAN : jt_rand() * 100; /* some NULL */
    r.veh_index = jt_rand() * 100;
    return r;
}

static const char *const KEYS[3] = {"combined", "vru", "vehicle"};

static void check_set(PGconn *c, long long valid_from, long long lo, long long hi)
{
    jt_constants e = jt_constants_of(rows, nrows, lo, hi);
    char sel[200];
    snprintf(sel, sizeof sel, "FROM normalization_constants WHERE valid_from = to_timestamp(%lld)",
             valid_from);
    jt_close(th_doublef(c, "SELECT (constants->>'I_vru_max')::float8 %s", sel), e.vru_max);
    jt_close(th_doublef(c, "SELECT (constants->>'I_veh_max')::float8 %s", sel), e.veh_max);
    jt_close(th_doublef(c, "SELECT (constants->>'V_max')::float8 %s", sel), e.v_max);
    jt_close(th_doublef(c, "SELECT (constants->>'S_ref')::float8 %s", sel), e.s_ref);
    jt_close(th_doublef(c, "SELECT (constants->>'HB_max')::float8 %s", sel), 1);      /* 0 -> 1 */
    jt_close(th_doublef(c, "SELECT (constants->>'sigma_max')::float8 %s", sel), 7.5); /* default */
    jt_close(th_doublef(c, "SELECT (constants->>'k')::float8 %s", sel), 42);
    assert_int_equal(th_intf(c, "SELECT (constants->>'minutes')::bigint %s", sel), e.minutes);
    assert_int_equal(th_intf(c, "SELECT (constants->'defaulted' ? 'sigma_max')::int %s", sel), 1);
    assert_int_equal(th_intf(c, "SELECT jsonb_array_length(constants->'defaulted') %s", sel), 1);

    /* priors: intersection 1 has >= 60 minutes at hour 8 (its own mean), intersection 2
     * fewer (the network mean at 8), intersection 3 only hour 9 with 10 minutes */
    for (int x = 0; x < 3; x++) {
        long n_own, n_net;
        double own1 = jt_mean_at(rows, nrows, x, 1, 8, lo, hi, &n_own);
        double net8 = jt_mean_at(rows, nrows, x, 0, 8, lo, hi, &n_net);
        assert_true(n_own >= 60);
        /* the intersection's own mean, and the resolved prior: its own */
        jt_close(th_doublef(c, "SELECT (constants #>> '{priors,intersections,1,8,%s}')::float8 %s",
                            KEYS[x], sel),
                 own1);
        jt_close(
            th_doublef(c, "SELECT (constants #>> '{priors,intersections,1,8,prior,%s}')::float8 %s",
                       KEYS[x], sel),
            own1);
        double own2 = jt_mean_at(rows, nrows, x, 2, 8, lo, hi, &n_own);
        assert_true(n_own > 0 && n_own < 60);
        jt_close(th_doublef(c, "SELECT (constants #>> '{priors,intersections,2,8,%s}')::float8 %s",
                            KEYS[x], sel),
                 own2);
        /* fewer than 60 minutes: the prior is the network-wide mean at that hour */
        jt_close(
            th_doublef(c, "SELECT (constants #>> '{priors,intersections,2,8,prior,%s}')::float8 %s",
                       KEYS[x], sel),
            net8);
        jt_close(th_doublef(c, "SELECT (constants #>> '{priors,network,8,%s}')::float8 %s", KEYS[x],
                            sel),
                 net8);
        double net9 = jt_mean_at(rows, nrows, x, 0, 9, lo, hi, &n_net);
        jt_close(
            th_doublef(c, "SELECT (constants #>> '{priors,intersections,3,9,prior,%s}')::float8 %s",
                       KEYS[x], sel),
            net9);
    }
    long n2;
    jt_mean_at(rows, nrows, 0, 2, 8, lo, hi, &n2);
    assert_int_equal(
        th_intf(c, "SELECT (constants #>> '{priors,intersections,2,8,minutes}')::int %s", sel), n2);
    char *src2 = th_value(c, "SELECT constants #>> '{priors,intersections,2,8,source}' "
                             "FROM normalization_constants ORDER BY valid_from DESC LIMIT 1");
    assert_string_equal(src2, "network");
    free(src2);
    char *src = th_value(c, "SELECT constants #>> '{priors,intersections,1,8,source}' "
                            "FROM normalization_constants ORDER BY valid_from DESC LIMIT 1");
    assert_string_equal(src, "intersection");
    free(src);
    /* no history at hour 3 anywhere: no prior (P = X) */
    assert_int_equal(
        th_intf(c, "SELECT count(*) %s AND constants #> '{priors,network,3}' IS NULL", sel), 1);
}

static void no_overlap(PGconn *c)
{
    assert_int_equal(th_intf(c, "SELECT count(*) FROM normalization_constants a JOIN "
                                "normalization_constants b ON a.id < b.id AND "
                                "tstzrange(a.valid_from, a.valid_until) && "
                                "tstzrange(b.valid_from, b.valid_until)"),
                     0);
    assert_int_equal(th_intf(c, "SELECT count(*) FROM normalization_constants WHERE valid_until IS "
                                "NULL"),
                     1);
    /* the periods tile the timeline: each ends where the next begins */
    assert_int_equal(th_intf(c, "SELECT count(*) FROM (SELECT valid_until, lead(valid_from) OVER "
                                "(ORDER BY valid_from) nxt FROM normalization_constants) s "
                                "WHERE valid_until IS DISTINCT FROM nxt"),
                     0);
}

static void test_constants_and_priors(void **state)
{
    (void)state;
    char db[64], at_s[64];
    th_db_create(db);
    PGconn *owner = th_connect("tsi_owner");
    jt_intersections(owner, 3);
    PGconn *w = th_connect("tsi_writer");
    long long day = ((long long)time(NULL) / 86400) * 86400;
    long long a1 = day - 86400 + 12 * 3600; /* yesterday noon */
    nrows = 0;
    jt_seed = 7;
    for (int m = 0; m < 80; m++) /* intersection 1: 80 minutes at 08:xx, over two days */
        add(feat(1, day - (2 + m % 2) * 86400 + 8 * 3600 + (m / 2) * 60));
    for (int m = 0; m < 30; m++) /* intersection 2: 30 minutes at 08:xx */
        add(feat(2, day - 86400 + 8 * 3600 + m * 60));
    for (int m = 0; m < 10; m++) /* intersection 3: 10 minutes at 09:xx */
        add(feat(3, day - 86400 + 9 * 3600 + m * 60));
    /* outside the windows: too old, and after both clocks; huge values that must not count */
    jt_row old = feat(1, a1 - 29 * 86400LL), late = feat(2, a1 + 4 * 3600);
    old.vol = late.vol = 100000;
    old.vru_events = late.vru_events = 500;
    add(old);
    add(late);
    jt_insert(w, rows, nrows);

    const char *params = "{\"k\": 42, \"defaults\": {\"sigma_max\": 7.5}}";
    tsi_job_result res;
    jt_run_ok("constants", jt_at(at_s, sizeof at_s, a1), params, &res);
    check_set(owner, a1, a1 - 28 * 86400LL, a1);
    no_overlap(owner);

    /* again with the same clock: the same set, in place */
    char *d1 = jt_digest(owner, "*", "normalization_constants", "id");
    jt_run_ok("constants", at_s, params, &res);
    char *d2 = jt_digest(owner, "*", "normalization_constants", "id");
    assert_string_equal(d1, d2);

    /* a later set (new data in the window) closes the first at its start */
    long long a2 = a1 + 3 * 3600;
    jt_row more = feat(1, a1 + 2 * 3600);
    more.vol = 300;
    add(more);
    jt_insert(w, &more, 1);
    jt_run_ok("constants", jt_at(at_s, sizeof at_s, a2), params, &res);
    check_set(owner, a2, a2 - 28 * 86400LL, a2);
    jt_close(th_doublef(owner,
                        "SELECT (constants->>'V_max')::float8 FROM normalization_constants "
                        "WHERE valid_from = to_timestamp(%lld)",
                        a2),
             300);
    assert_int_equal(th_intf(owner,
                             "SELECT extract(epoch FROM valid_until)::bigint FROM "
                             "normalization_constants WHERE valid_from = to_timestamp(%lld)",
                             a1),
                     a2);
    /* a backfilled set before the first ends where the first begins */
    jt_run_ok("constants", jt_at(at_s, sizeof at_s, a1 - 6 * 3600), params, &res);
    no_overlap(owner);
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM normalization_constants"), 3);

    /* an index row computed later uses the new set: the set valid at a2 + 1 min is the
     * second one, and the index from it matches the formula with the test's own maxima */
    jt_constants e2 = jt_constants_of(rows, nrows, a2 - 28 * 86400LL, a2);
    char q[200];
    snprintf(q, sizeof q, "SELECT tsi_constants_at(to_timestamp(%lld))::text", a2 + 60);
    PGconn *reader = th_connect("tsi_reader");
    char *set = th_value(reader, q);
    assert_non_null(set);
    tsi_constants k;
    tsi_error err = {0};
    assert_int_equal(tsi_constants_from_json(set, strlen(set), &k, &err), 0);
    free(set);
    tsi_features f;
    memset(&f, 0, sizeof f);
    f.vru_event_count = 5;
    f.vehicle_event_count = 3;
    f.traffic_volume = 150;
    f.avg_speed = 12;
    f.speed_stddev = 4;
    f.hard_braking_count = 0;
    tsi_index ix;
    tsi_index_compute(&f, &k, &ix);
    double vru =
        100 * (0.4 * 5 / e2.vru_max + 0.2 * 150 / e2.v_max + 0.2 * 12 / e2.s_ref + 0.2 * 4 / 7.5);
    double veh = 100 * (0.3 * 3 / e2.veh_max + 0.3 * 150 / e2.v_max + 0.2 * 4 / 7.5 + 0);
    vru = fmin(fmax(vru, 0), 100);
    veh = fmin(fmax(veh, 0), 100);
    jt_close(ix.vru, vru);
    jt_close(ix.vehicle, veh);
    jt_close(ix.combined, fmin(fmax(0.6 * vru + 0.4 * veh, 0), 100));
    /* and before a2 the first set is the one in force */
    snprintf(q, sizeof q,
             "SELECT (tsi_constants_at(to_timestamp(%lld))->>'window_end') = "
             "(SELECT constants->>'window_end' FROM normalization_constants WHERE valid_from = "
             "to_timestamp(%lld))",
             a2 - 60, a1);
    char *same = th_value(reader, q);
    assert_string_equal(same, "t");
    free(same);
    free(d1);
    free(d2);
    PQfinish(reader);
    PQfinish(w);
    PQfinish(owner);
    th_db_drop(db);
}

static void test_constants_without_rows_and_bad_input(void **state)
{
    (void)state;
    char db[64], out[2048];
    th_db_create(db);
    PGconn *owner = th_connect("tsi_owner");
    tsi_job_result res;
    jt_run_ok("constants", NULL, NULL, &res); /* no rows: no set, previous stays */
    assert_int_equal(res.buckets, 0);
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM normalization_constants"), 0);

    const char *a1[] = {"jobs", "run", "constants", "--constants-defaults", "[1,2]", NULL};
    assert_int_equal(th_run_tsi(a1, NULL, out, sizeof out), 2);
    const char *a2[] = {"jobs", "run", "constants", "--constants-defaults", "{bad", NULL};
    assert_int_equal(th_run_tsi(a2, NULL, out, sizeof out), 2);
    const char *a3[] = {"jobs", "run", "constants", "--window-days", "0", NULL};
    assert_int_equal(th_run_tsi(a3, NULL, out, sizeof out), 2);
    const char *a4[] = {"jobs", "run", "constants", "--prior-k", "-1", NULL};
    assert_int_equal(th_run_tsi(a4, NULL, out, sizeof out), 2);
    const char *a5[] = {"jobs", "run", "constants", "--prior-k", "nan", NULL};
    assert_int_equal(th_run_tsi(a5, NULL, out, sizeof out), 2);
    /* a default that is not a positive number, for a feature with no data: job fails */
    jt_intersections(owner, 1);
    PGconn *w = th_connect("tsi_writer");
    jt_row r = jt_make(1, jt_server_now(owner) - 3600, 0, 100, 0); /* the job's clock: now() */
    jt_insert(w, &r, 1);
    PGconn *c = th_connect("tsi_jobs");
    tsi_error e = {0};
    assert_int_equal(
        tsi_jobs_run_one(c, "constants", NULL, "{\"defaults\": {\"S_ref\": -3}}", &res, &e), 0);
    assert_string_equal(res.status, "failed");
    assert_non_null(strstr(res.error, "S_ref"));
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM normalization_constants"), 0);
    PQfinish(c);
    PQfinish(w);
    PQfinish(owner);
    th_db_drop(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constants_and_priors),
        cmocka_unit_test(test_constants_without_rows_and_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
