/* Unit tests of core/index: the worked vectors of domain.md §4, clipping edges,
 * constants from 1-minute features, Empirical Bayes and its prior hierarchy, risk
 * levels. Every expectation is the formula of §4 evaluated by hand in the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "core/index.h"

#define EPS 1e-6

static const tsi_constants worked_c = {.I_vru_max = 8,
                                       .I_veh_max = 8,
                                       .V_max = 200,
                                       .sigma_max = 20,
                                       .S_ref = 40,
                                       .HB_max = 15,
                                       .k = 50};

static tsi_features feats(int vru_ev, int veh_ev, int v, double s, double sd, int hb)
{
    tsi_features f;
    memset(&f, 0, sizeof f);
    f.vru_event_count = vru_ev;
    f.vehicle_event_count = veh_ev;
    f.traffic_volume = v;
    f.avg_speed = s;
    f.speed_stddev = sd;
    f.hard_braking_count = hb;
    return f;
}

static void test_worked_vector(void **state)
{
    (void)state;
    tsi_features f = feats(5, 3, 150, 35, 12, 8);
    tsi_index x;
    tsi_index_compute(&f, &worked_c, &x);
    /* domain.md §4: VRU = 69.5, Vehicle = 56.416667, Combined = 64.266667 */
    assert_true(fabs(x.vru - 69.5) < EPS);
    assert_true(fabs(x.vehicle - 56.416667) < EPS);
    assert_true(fabs(x.combined - 64.266667) < EPS);
    /* term contributions: 0.4·5/8, 0.2·150/200, 0.2·35/40, 0.2·12/20 (×100) */
    assert_true(fabs(x.vru_t_events - 25.0) < EPS);
    assert_true(fabs(x.vru_t_volume - 15.0) < EPS);
    assert_true(fabs(x.vru_t_speed - 17.5) < EPS);
    assert_true(fabs(x.vru_t_stddev - 12.0) < EPS);
    assert_true(fabs(x.veh_t_events - 11.25) < EPS);
    assert_true(fabs(x.veh_t_volume - 22.5) < EPS);
    assert_true(fabs(x.veh_t_stddev - 12.0) < EPS);
    assert_true(fabs(x.veh_t_braking - 100.0 * 0.2 * 8 / 15) < EPS);
    /* without history EB equals the raw index */
    assert_int_equal(x.prior_source, TSI_PRIOR_NONE);
    assert_true(fabs(x.combined_eb - x.combined) < EPS);

    /* EB with N = 29, k = 50, P = 20: λ = 29/79, Combined_eb = 36.249789 */
    tsi_features n29 = feats(0, 0, 20, 0, 0, 0);
    n29.vru_count = 9;
    double prior[3] = {20, 20, 20};
    tsi_index_eb(&x, &n29, 50, prior, TSI_PRIOR_INTERSECTION);
    assert_true(fabs(x.lambda - 29.0 / 79.0) < 1e-12);
    assert_true(fabs(x.combined_eb - 36.249789) < EPS);
    assert_true(fabs(x.vru_eb - (20 + 29.0 / 79.0 * (69.5 - 20))) < EPS);
    assert_int_equal(x.prior_source, TSI_PRIOR_INTERSECTION);
}

static void test_clipping_edges(void **state)
{
    (void)state;
    tsi_index x;
    /* every term at twice its constant: VRU = 100·(0.8+0.4+0.4+0.4) = 200 → 100 */
    tsi_features f = feats(16, 16, 400, 80, 40, 30);
    tsi_index_compute(&f, &worked_c, &x);
    assert_true(fabs(x.vru_unclipped - 200) < EPS);
    assert_true(fabs(x.vehicle_unclipped - 200) < EPS);
    assert_true(x.vru == 100 && x.vehicle == 100 && x.combined == 100);

    /* every term exactly at its constant: exactly 100, not clipped below */
    f = feats(8, 8, 200, 40, 20, 15);
    tsi_index_compute(&f, &worked_c, &x);
    assert_true(fabs(x.vru - 100) < EPS && fabs(x.vehicle - 100) < EPS);

    /* one term above 1 alone: vru_events = 24 (3×): 100·0.4·3 = 120 → VRU 100, the
     * vehicle index is untouched (0), combined = 0.6·100 = 60 */
    f = feats(24, 0, 0, 0, 0, 0);
    tsi_index_compute(&f, &worked_c, &x);
    assert_true(fabs(x.vru_unclipped - 120) < EPS);
    assert_true(x.vru == 100);
    assert_true(x.vehicle == 0);
    assert_true(fabs(x.combined - 60) < EPS);

    /* all-zero features: 0 everywhere; EB with N = 0 takes the prior alone */
    f = feats(0, 0, 0, 0, 0, 0);
    tsi_index_compute(&f, &worked_c, &x);
    assert_true(x.vru == 0 && x.vehicle == 0 && x.combined == 0);
    double prior[3] = {30, 40, 34};
    tsi_index_eb(&x, &f, 50, prior, TSI_PRIOR_NETWORK);
    assert_true(x.lambda == 0);
    assert_true(fabs(x.vru_eb - 30) < EPS && fabs(x.vehicle_eb - 40) < EPS &&
                fabs(x.combined_eb - 34) < EPS);

    /* a zero (missing) constant is taken as 1, never a division by zero: with all
     * constants 0 and one VRU event, one vehicle: VRU = 100·(0.4·1 + 0.2·1) = 60 */
    tsi_constants zero = {0};
    f = feats(1, 0, 1, 0, 0, 0);
    tsi_index_compute(&f, &zero, &x);
    assert_true(fabs(x.vru - 60) < EPS);
    assert_true(fabs(x.vehicle - 30) < EPS);
    assert_true(fabs(x.combined - (0.6 * 60 + 0.4 * 30)) < EPS);
    /* NAN features never poison the index */
    f = feats(0, 0, 0, NAN, NAN, 0);
    tsi_index_compute(&f, &worked_c, &x);
    assert_true(x.vru == 0 && isfinite(x.combined));
}

static void test_constants_json(void **state)
{
    (void)state;
    tsi_constants c;
    tsi_error err;
    const char *full = "{\"I_vru_max\":8,\"I_veh_max\":8,\"V_max\":200,\"sigma_max\":20,"
                       "\"S_ref\":40,\"HB_max\":15}";
    assert_int_equal(tsi_constants_from_json(full, strlen(full), &c, &err), 0);
    assert_true(c.V_max == 200 && c.S_ref == 40 && c.HB_max == 15 && c.k == 50);

    /* an empty constants object is an error naming the first key, never index 0 */
    assert_int_equal(tsi_constants_from_json("{}", 2, &c, &err), TSI_E_MISSING);
    assert_non_null(strstr(err.detail, "I_vru_max"));
    const char *no_hb = "{\"I_vru_max\":8,\"I_veh_max\":8,\"V_max\":200,\"sigma_max\":20,"
                        "\"S_ref\":40}";
    assert_int_equal(tsi_constants_from_json(no_hb, strlen(no_hb), &c, &err), TSI_E_MISSING);
    assert_non_null(strstr(err.detail, "HB_max"));
    const char *zero = "{\"I_vru_max\":0,\"I_veh_max\":8,\"V_max\":200,\"sigma_max\":20,"
                       "\"S_ref\":40,\"HB_max\":15}";
    assert_int_equal(tsi_constants_from_json(zero, strlen(zero), &c, &err), TSI_E_RANGE);
    const char *str = "{\"I_vru_max\":\"8\",\"I_veh_max\":8,\"V_max\":200,\"sigma_max\":20,"
                      "\"S_ref\":40,\"HB_max\":15}";
    assert_int_equal(tsi_constants_from_json(str, strlen(str), &c, &err), TSI_E_TYPE);
    assert_int_equal(tsi_constants_from_json("", 0, &c, &err), TSI_E_JSON_TRUNCATED);
    assert_int_equal(tsi_constants_from_json("[1]", 3, &c, &err), TSI_E_NOT_OBJECT);

    /* round trip through the JSON the database stores */
    tsi_constants in = {1.5, 2.25, 180, 9.75, 13.4, 7, 25, 0}, out;
    tsi_buf b = TSI_BUF_INIT;
    tsi_constants_to_json(&in, &b);
    assert_int_equal(tsi_constants_from_json(b.data, b.len, &out, &err), 0);
    assert_memory_equal(&in, &out, sizeof in);
    tsi_buf_free(&b);
}

static void test_quantile_and_constants_from_features(void **state)
{
    (void)state;
    /* linear interpolation, rank p·(n−1): [1,2,3,4] at .85 → rank 2.55 → 3.55 */
    double v[] = {1, 2, 3, 4};
    assert_true(fabs(tsi_quantile_sorted(v, 4, 0.85) - 3.55) < 1e-12);
    assert_true(tsi_quantile_sorted(v, 1, 0.85) == 1);
    assert_true(isnan(tsi_quantile_sorted(v, 0, 0.85)));

    tsi_constants_acc a;
    tsi_constants_acc_init(&a);
    tsi_constants c;
    assert_int_equal(tsi_constants_acc_finish(&a, 50, &c), TSI_E_NOTFOUND);
    /* minutes: avg speeds 10, 0 (excluded), 20, 30, 40; maxima below */
    tsi_features f[] = {feats(2, 0, 10, 10, 3, 1), feats(0, 0, 0, 0, 0, 0),
                        feats(0, 0, 40, 20, 7.5, 0), feats(5, 0, 30, 30, 2, 4),
                        feats(1, 0, 12, 40, 1, 2)};
    for (size_t i = 0; i < 5; i++)
        tsi_constants_acc_add(&a, &f[i]);
    assert_int_equal(tsi_constants_acc_finish(&a, 50, &c), 0);
    assert_true(c.I_vru_max == 5);
    assert_true(c.I_veh_max == 1); /* zero maximum becomes 1 */
    assert_true(c.V_max == 40);
    assert_true(c.sigma_max == 7.5);
    assert_true(c.HB_max == 4);
    /* speeds 10,20,30,40 (the 0 is excluded): rank .85·3 = 2.55 → 30 + .55·10 = 35.5 */
    assert_true(fabs(c.S_ref - 35.5) < 1e-12);
    assert_true(c.k == 50);
    tsi_constants_acc_free(&a);

    /* only zero-speed minutes: S_ref becomes 1 */
    tsi_constants_acc_init(&a);
    tsi_features z = feats(0, 0, 3, 0, 0, 0);
    tsi_constants_acc_add(&a, &z);
    assert_int_equal(tsi_constants_acc_finish(&a, 10, &c), 0);
    assert_true(c.S_ref == 1 && c.I_vru_max == 1 && c.V_max == 3 && c.k == 10);
    tsi_constants_acc_free(&a);
}

static void test_risk_levels(void **state)
{
    (void)state;
    assert_int_equal(atoi(TSI_RISK_HIGH_SQL), TSI_RISK_HIGH); /* the SQL spelling agrees */
    assert_string_equal(tsi_risk_level(59.999), "Low");
    assert_string_equal(tsi_risk_level(60), "Medium");
    assert_string_equal(tsi_risk_level(75), "Medium");
    assert_string_equal(tsi_risk_level(75.0001), "High");
    assert_string_equal(tsi_risk_colour(10), "#2ECC71");
    assert_string_equal(tsi_risk_colour(70), "#F39C12");
    assert_string_equal(tsi_risk_colour(90), "#E74C3C");
}

static void test_prior_hierarchy(void **state)
{
    (void)state;
    tsi_priors *p = tsi_priors_new();
    double out[3];
    assert_int_equal(tsi_priors_get(p, 7, 8, out), TSI_PRIOR_NONE);
    /* intersection 7 at 08h: 59 minutes of X = {10, 20, 14} */
    double a[3] = {10, 20, 14};
    for (int i = 0; i < 59; i++)
        tsi_priors_add(p, 7, 8, a);
    /* intersection 9 at 08h: 41 minutes of X = {50, 60, 54} */
    double b[3] = {50, 60, 54};
    for (int i = 0; i < 41; i++)
        tsi_priors_add(p, 9, 8, b);
    /* < 60 minutes at 7: the network mean at 08h = (59·10 + 41·50) / 100 = 26.4 */
    assert_int_equal(tsi_priors_get(p, 7, 8, out), TSI_PRIOR_NETWORK);
    assert_true(fabs(out[0] - 26.4) < 1e-9);
    assert_true(fabs(out[1] - (59 * 20 + 41 * 60) / 100.0) < 1e-9);
    /* the 60th minute makes intersection 7's own history the prior */
    tsi_priors_add(p, 7, 8, a);
    assert_int_equal(tsi_priors_get(p, 7, 8, out), TSI_PRIOR_INTERSECTION);
    assert_true(fabs(out[0] - 10) < 1e-9 && fabs(out[2] - 14) < 1e-9);
    /* another hour has no history at all */
    assert_int_equal(tsi_priors_get(p, 7, 9, out), TSI_PRIOR_NONE);
    /* unknown intersection at 08h: the network */
    assert_int_equal(tsi_priors_get(p, 12345, 8, out), TSI_PRIOR_NETWORK);
    /* pre-aggregated load (what the DB gives): replaces, network follows */
    double m[3] = {30, 30, 30};
    tsi_priors_set(p, 9, 8, m, 100);
    assert_int_equal(tsi_priors_get(p, 9, 8, out), TSI_PRIOR_INTERSECTION);
    assert_true(fabs(out[0] - 30) < 1e-9);
    assert_int_equal(tsi_priors_get(p, 12345, 8, out), TSI_PRIOR_NETWORK);
    assert_true(fabs(out[0] - (60 * 10 + 100 * 30) / 160.0) < 1e-9);
    /* many intersections: the table grows */
    for (int id = 100; id < 2100; id++)
        tsi_priors_add(p, id, id % 24, a);
    assert_int_equal(tsi_priors_get(p, 7, 8, out), TSI_PRIOR_INTERSECTION);
    tsi_priors_free(p);
    tsi_priors_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worked_vector),
        cmocka_unit_test(test_clipping_edges),
        cmocka_unit_test(test_constants_json),
        cmocka_unit_test(test_quantile_and_constants_from_features),
        cmocka_unit_test(test_risk_levels),
        cmocka_unit_test(test_prior_hierarchy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
