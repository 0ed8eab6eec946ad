/* Integration: analytics comparable over months (issue 26).
 *   - constants and EB priors over the whole 28-day window after the realtime rows older
 *     than 48 h are gone (the hourly features store keeps what they need), equal to a
 *     recomputation from the generated minutes, not over the last 48 hours;
 *   - VRU and vehicle sub-indices and the model provenance of hourly and daily rollups,
 *     equal to a recomputation from the minutes (1e-9);
 *   - a constants set refused for too few minutes or a jumping maximum: previous set stays
 *     valid, data_quality_log says why, `tsi jobs status` shows the active set; bad flags.
 * Every expectation is computed here from the generated rows (test_jobs_util.h). */
#include "test_jobs_util.h"

#define MAXROWS 14000

static jt_row rows[MAXROWS];
static size_t nrows;

static void add(jt_row r)
{
    if (nrows >= MAXROWS)
        fail_msg("too many rows");
    rows[nrows++] = r;
}

/* a minute: big values before `quiet` (the first 26 days), small ones after (the last 48 h) */
static jt_row minute(long long iid, long long ts, long long quiet)
{
    jt_row r = jt_make(iid, ts, 0, 100, 0.1);
    bool q = ts >= quiet;
    r.vru_events = (int)(jt_rand() * (q ? 2 : 9));
    r.veh_events = (int)(jt_rand() * (q ? 2 : 13));
    r.vru_count = (int)(jt_rand() * 5);
    r.vol = (int)(jt_rand() * (q ? 20 : 250));
    r.hb = (int)(jt_rand() * (q ? 1 : 7));
    r.sd = jt_rand() * (q ? 2 : 15);
    r.speed = jt_rand() < 0.2 ? 0 : (q ? 1 + jt_rand() * 3 : 2 + jt_rand() * 18);
    r.raw = jt_rand() * (q ? 10 : 100);
    r.vru_index = jt_rand() < 0.1 ? NAN : jt_rand() * (q ? 10 : 100);
    r.veh_index = jt_rand() * (q ? 10 : 100);
    return r;
}

static double set_num(PGconn *c, long long set_valid_from, const char *path)
{
    return th_doublef(c,
                      "SELECT (constants #>> '%s')::float8 FROM normalization_constants "
                      "WHERE valid_from = to_timestamp(%lld)",
                      path, set_valid_from);
}

static void test_constants_over_the_whole_window(void **state)
{
    (void)state;
    char db[64], at_s[64];
    th_db_create(db);
    PGconn *owner = th_connect("tsi_owner");
    jt_intersections(owner, 2);
    PGconn *w = th_connect("tsi_writer");
    long long day = ((long long)time(NULL) / 86400) * 86400;
    long long at = day - 86400 + 30 * 60; /* yesterday 00:30 UTC */
    long long hour = at - 30 * 60, lo = hour - 28 * 86400LL, quiet = at - 48 * 3600;
    nrows = 0;
    jt_seed = 26;
    for (long long iid = 1; iid <= 2; iid++)
        for (long long ts = lo - 3 * 3600; ts < at; ts += 7 * 60) {
            jt_row r = minute(iid, ts + (iid - 1) * 60, quiet);
            if (ts < lo) { /* before the window: huge values that must not count */
                r.vol = 100000;
                r.vru_events = 500;
            }
            if (r.ts < at)
                add(r);
        }
    jt_insert(w, rows, nrows);

    /* the hourly job fills the features store; then the realtime rows older than 48 h go,
     * as retention removes them */
    tsi_job_result res;
    jt_run_ok("hourly", jt_at(at_s, sizeof at_s, at), NULL, &res);
    th_sqlf(owner, "DELETE FROM safety_indices_realtime WHERE \"timestamp\" < to_timestamp(%lld)",
            quiet);
    assert_int_equal(th_intf(owner,
                             "SELECT count(*) FROM safety_indices_realtime WHERE "
                             "\"timestamp\" < to_timestamp(%lld)",
                             quiet),
                     0);
    assert_true(th_intf(owner,
                        "SELECT count(*) FROM safety_features_hourly WHERE hour_timestamp < "
                        "to_timestamp(%lld)",
                        quiet) > 24 * 26);

    jt_run_ok("constants", at_s, NULL, &res);
    assert_int_equal(res.buckets, 1);
    jt_constants e = jt_constants_of(rows, nrows, lo, at),
                 e48 = jt_constants_of(rows, nrows, quiet, at);
    assert_int_equal((long long)set_num(owner, at, "{minutes}"), e.minutes);
    jt_close(set_num(owner, at, "{I_vru_max}"), e.vru_max);
    jt_close(set_num(owner, at, "{I_veh_max}"), e.veh_max);
    jt_close(set_num(owner, at, "{V_max}"), e.v_max);
    jt_close(set_num(owner, at, "{sigma_max}"), e.sd_max);
    jt_close(set_num(owner, at, "{HB_max}"), e.hb_max);
    /* the percentile is exact: the same values, the same interpolation */
    assert_true(set_num(owner, at, "{S_ref}") == e.s_ref);
    /* and none of it is what the last 48 hours alone would give */
    assert_true(e.v_max != e48.v_max && e.s_ref != e48.s_ref && e.minutes > 10 * e48.minutes);
    assert_int_equal(th_intf(owner,
                             "SELECT extract(epoch FROM (constants->>'window_start')::timestamptz)"
                             "::bigint FROM normalization_constants WHERE valid_from = "
                             "to_timestamp(%lld)",
                             at),
                     lo);

    /* priors: per intersection x hour of day, and network-wide, over all 28 days */
    const char *names[3] = {"combined", "vru", "vehicle"};
    for (int h = 0; h < 24; h += 5)
        for (int which = 0; which < 3; which++) {
            long n;
            char path[96];
            double net = jt_mean_at(rows, nrows, which, 0, h, lo, at, &n);
            snprintf(path, sizeof path, "{priors,network,%d,%s}", h, names[which]);
            jt_close(set_num(owner, at, path), net);
            for (long long iid = 1; iid <= 2; iid++) {
                double own = jt_mean_at(rows, nrows, which, iid, h, lo, at, &n);
                snprintf(path, sizeof path, "{priors,intersections,%lld,%d,%s}", iid, h,
                         names[which]);
                jt_close(set_num(owner, at, path), own);
                snprintf(path, sizeof path, "{priors,intersections,%lld,%d,prior,%s}", iid, h,
                         names[which]);
                jt_close(set_num(owner, at, path), n >= 60 ? own : net);
            }
        }
    PQfinish(w);
    PQfinish(owner);
    th_db_drop(db);
}

/* ---- sub-indices and provenance through the rollups ------------------------------------- */

static jt_mrow mrows[6000];
static size_t nm;

typedef struct sub {
    jt_stats vru_si, veh_si, vru, vru_eb, veh, veh_eb;
    long long cids[4];
    int ncid;
} sub;

/* the sub-index statistics of iid's minutes in [lo, hi) */
static sub sub_of(long long iid, long long lo, long long hi)
{
    static double v[6][4000];
    size_t n[6] = {0};
    sub s;
    memset(&s, 0, sizeof s);
    for (size_t i = 0; i < nm; i++) {
        const jt_mrow *r = &mrows[i];
        if (r->iid != iid || r->ts < lo || r->ts >= hi)
            continue;
        double x[6] = {isnan(r->vru_eb) ? r->vru : r->vru_eb,
                       isnan(r->veh_eb) ? r->veh : r->veh_eb,
                       r->vru,
                       r->vru_eb,
                       r->veh,
                       r->veh_eb};
        for (int k = 0; k < 6; k++)
            if (!isnan(x[k]))
                v[k][n[k]++] = x[k];
        bool seen = false;
        for (int k = 0; k < s.ncid; k++)
            seen = seen || s.cids[k] == r->cid;
        if (!seen)
            s.cids[s.ncid++] = r->cid;
    }
    s.vru_si = jt_stats_of(v[0], n[0]);
    s.veh_si = jt_stats_of(v[1], n[1]);
    s.vru = jt_stats_of(v[2], n[2]);
    s.vru_eb = jt_stats_of(v[3], n[3]);
    s.veh = jt_stats_of(v[4], n[4]);
    s.veh_eb = jt_stats_of(v[5], n[5]);
    return s;
}

static void check_sub(PGconn *c, const char *table, const char *key, long long iid, long long lo,
                      long long hi)
{
    sub s = sub_of(iid, lo, hi);
    const struct {
        const char *col;
        double want;
    } cols[] = {
        {"avg_vru_si", s.vru_si.mean},       {"min_vru_si", s.vru_si.min},
        {"max_vru_si", s.vru_si.max},        {"n_vru_si", (double)s.vru_si.n},
        {"avg_vehicle_si", s.veh_si.mean},   {"min_vehicle_si", s.veh_si.min},
        {"max_vehicle_si", s.veh_si.max},    {"n_vehicle_si", (double)s.veh_si.n},
        {"avg_vru_index", s.vru.mean},       {"n_vru_index", (double)s.vru.n},
        {"avg_vru_index_eb", s.vru_eb.mean}, {"n_vru_index_eb", (double)s.vru_eb.n},
        {"avg_vehicle_index", s.veh.mean},   {"avg_vehicle_index_eb", s.veh_eb.mean},
    };
    for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
        double got = th_doublef(c, "SELECT %s::float8 FROM %s WHERE intersection_id = %lld AND %s",
                                cols[k].col, table, iid, key);
        if (!(fabs(got - cols[k].want) <= JT_EPS))
            fail_msg("%s.%s (%s, iid %lld) = %.17g, expected %.17g", table, cols[k].col, key, iid,
                     got, cols[k].want);
    }
    /* provenance: the distinct constants sets, sorted */
    tsi_buf want = TSI_BUF_INIT;
    for (int a = 0; a < s.ncid; a++)
        for (int b = a + 1; b < s.ncid; b++)
            if (s.cids[b] < s.cids[a]) {
                long long t = s.cids[a];
                s.cids[a] = s.cids[b];
                s.cids[b] = t;
            }
    tsi_buf_puts(&want, "{");
    for (int a = 0; a < s.ncid; a++)
        tsi_buf_printf(&want, "%s%lld", a ? "," : "", s.cids[a]);
    tsi_buf_puts(&want, "}");
    char q[400];
    snprintf(q, sizeof q,
             "SELECT constants_ids::text || ' ' || algorithm_versions::text FROM %s WHERE "
             "intersection_id = %lld AND %s",
             table, iid, key);
    char *got = th_value(c, q);
    tsi_buf_puts(&want, " {1}");
    assert_string_equal(got, tsi_buf_cstr(&want));
    free(got);
    tsi_buf_free(&want);
}

static void test_subindices_and_provenance(void **state)
{
    (void)state;
    char db[64], at_s[64];
    th_db_create(db);
    PGconn *owner = th_connect("tsi_owner");
    jt_intersections(owner, 2);
    PGconn *w = th_connect("tsi_writer");
    long long day = ((long long)time(NULL) / 86400) * 86400 - 2 * 86400; /* two days ago */
    nm = 0;
    jt_seed = 2626;
    /* two days; constants set 7 until 30 hours in, then set 9: day 2 is mixed */
    nm = jt_two_days(mrows, sizeof mrows / sizeof mrows[0], day);
    jt_insert_m(w, mrows, nm);
    jt_run_ok("daily", jt_at(at_s, sizeof at_s, day + 2 * 86400), NULL, NULL);
    char key[128];
    for (long long iid = 1; iid <= 2; iid++) {
        for (int h = 0; h < 48; h += 7) {
            long long hs = day + h * 3600LL;
            snprintf(key, sizeof key, "hour_timestamp = to_timestamp(%lld)", hs);
            check_sub(owner, "safety_indices_hourly", key, iid, hs, hs + 3600);
        }
        for (int d = 0; d < 2; d++) {
            long long ds = day + d * 86400LL;
            snprintf(key, sizeof key, "date = (to_timestamp(%lld) AT TIME ZONE 'UTC')::date", ds);
            check_sub(owner, "safety_indices_daily", key, iid, ds, ds + 86400);
        }
    }
    /* a re-run changes nothing */
    char *d1 = jt_digest(owner, "*", "safety_indices_daily", "id");
    jt_run_ok("daily", at_s, NULL, NULL);
    char *d2 = jt_digest(owner, "*", "safety_indices_daily", "id");
    assert_string_equal(d1, d2);
    free(d1);
    free(d2);
    PQfinish(w);
    PQfinish(owner);
    th_db_drop(db);
}

/* ---- refusal ------------------------------------------------------------------------------ */

static void test_refusal(void **state)
{
    (void)state;
    char db[64], at_s[64], out[8192];
    th_db_create(db);
    PGconn *owner = th_connect("tsi_owner");
    jt_intersections(owner, 1);
    PGconn *w = th_connect("tsi_writer");
    long long now = jt_server_now(owner);
    long long at1 = (now / 3600) * 3600 - 6 * 3600, at2 = at1 + 3 * 3600;
    nrows = 0;
    jt_seed = 5;
    /* too few minutes: 30 < min_minutes 60: refused, no set */
    for (int m = 0; m < 30; m++)
        add(minute(1, at1 - 4 * 3600 + m * 60, at1 + 86400));
    jt_insert(w, rows, nrows);
    tsi_job_result res;
    jt_run_ok("constants", jt_at(at_s, sizeof at_s, at1), NULL, &res);
    assert_int_equal(res.buckets, 0);
    assert_non_null(strstr(res.detail, "fewer than min_minutes"));
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM normalization_constants"), 0);
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM data_quality_log WHERE issue_type = "
                                    "'constants_refused' AND message LIKE '%%30 minutes%%'"),
                     1);
    /* with a lower threshold it is accepted */
    jt_run_ok("constants", at_s, "{\"min_minutes\": 20}", &res);
    assert_int_equal(res.buckets, 1);
    double vmax = set_num(owner, at1, "{V_max}");
    long long id1 = th_intf(owner, "SELECT id FROM normalization_constants");

    /* a maximum that jumps more than max_jump (10) times: refused, the first set stays open */
    size_t before = nrows;
    for (int m = 0; m < 90; m++) {
        jt_row r = minute(1, at1 + m * 60, at1 + 86400);
        r.vol = m == 45 ? (int)(vmax * 12) : r.vol;
        add(r);
    }
    jt_insert(w, rows + before, nrows - before);
    jt_run_ok("constants", jt_at(at_s, sizeof at_s, at2), "{\"min_minutes\": 20}", &res);
    assert_int_equal(res.buckets, 0);
    assert_non_null(strstr(res.detail, "V_max moves from"));
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM normalization_constants"), 1);
    assert_int_equal(th_intf(owner,
                             "SELECT count(*) FROM normalization_constants WHERE id = %lld "
                             "AND valid_until IS NULL",
                             id1),
                     1);
    assert_int_equal(th_intf(owner,
                             "SELECT count(*) FROM data_quality_log WHERE issue_type = "
                             "'constants_refused' AND severity = 'warning' AND "
                             "(metadata->>'previous_set')::bigint = %lld AND message LIKE "
                             "'%%V_max%%'",
                             id1),
                     1);
    /* a larger factor lets it through and closes the first set */
    jt_run_ok("constants", at_s, "{\"min_minutes\": 20, \"max_jump\": 20}", &res);
    assert_int_equal(res.buckets, 1);
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM normalization_constants"), 2);

    /* tsi jobs status: the active set, its window and inputs, the last refusal */
    const char *st[] = {"jobs", "status", NULL};
    th_run_tsi(st, NULL, out, sizeof out);
    assert_non_null(strstr(out, "active constants set: id="));
    assert_non_null(strstr(out, "source=safety_features_hourly"));
    assert_non_null(strstr(out, "V_max="));
    assert_non_null(strstr(out, "last refused constants set:"));

    /* bad flags exit 2 */
    const char *b1[] = {"jobs", "run", "constants", "--features-retention-days", "7", NULL};
    assert_int_equal(th_run_tsi(b1, NULL, out, sizeof out), 2);
    const char *b2[] = {"jobs", "run", "constants", "--constants-max-jump", "1", NULL};
    assert_int_equal(th_run_tsi(b2, NULL, out, sizeof out), 2);
    const char *b3[] = {"jobs", "run", "constants", "--constants-min-minutes", "0", NULL};
    assert_int_equal(th_run_tsi(b3, NULL, out, sizeof out), 2);
    const char *b4[] = {"jobs", "run", "constants", "--constants-max-jump", "nan", NULL};
    assert_int_equal(th_run_tsi(b4, NULL, out, sizeof out), 2);
    PQfinish(w);
    PQfinish(owner);
    th_db_drop(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constants_over_the_whole_window),
        cmocka_unit_test(test_subindices_and_provenance),
        cmocka_unit_test(test_refusal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
