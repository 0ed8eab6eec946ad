/* Unit tests of the simulator's traffic model (src/sim/model.h, src/sim/msg.h): the
 * ground truth is recounted here from the samples with this file's own arithmetic
 * (distinct ids, hard braking by the domain.md §3 rule, conflicts by its TTC definition
 * over every pair of road users), vehicles obey the signals the SPaT serves, and the same
 * configuration gives byte-identical messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "sim/model.h"
#include "sim/msg.h"

/* ---- a tiny open-addressing set of 64-bit keys ---- */

typedef struct set64 {
    uint64_t *k;
    size_t cap, n;
} set64;

static void set_init(set64 *s, size_t cap)
{
    s->cap = cap;
    s->n = 0;
    s->k = calloc(cap, sizeof *s->k);
    assert_non_null(s->k);
}

/* Returns true when the key was new. Key 0 is reserved. */
static bool set_add(set64 *s, uint64_t key)
{
    assert_true(s->n < s->cap / 2);
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) % s->cap;
    while (s->k[i]) {
        if (s->k[i] == key)
            return false;
        i = (i + 1) % s->cap;
    }
    s->k[i] = key;
    s->n++;
    return true;
}

static void set_free(set64 *s)
{
    free(s->k);
}

static uint64_t key3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = 1469598103934665603ull;
    h = (h ^ a) * 1099511628211ull;
    h = (h ^ b) * 1099511628211ull;
    h = (h ^ c) * 1099511628211ull;
    return h ? h : 1;
}

/* ---- independent geometry: equirectangular metres around the intersection ---- */

static void to_xy(double lat0, double lon0, double lat, double lon, double *x, double *y)
{
    const double R = 6371008.8, d2r = M_PI / 180.0;
    *x = (lon - lon0) * d2r * R * cos(lat0 * d2r);
    *y = (lat - lat0) * d2r * R;
}

/* First t >= 0 with |d + w t| = r while closing; -1 when none. */
static double ttc(double dx, double dy, double wx, double wy, double r)
{
    double a = wx * wx + wy * wy, b = 2 * (dx * wx + dy * wy), c = dx * dx + dy * dy - r * r;
    if (b >= 0)
        return -1;
    if (c <= 0)
        return 0;
    double disc = b * b - 4 * a * c;
    if (disc < 0)
        return -1;
    return (-b - sqrt(disc)) / (2 * a);
}

typedef struct pairrec {
    int isect;
    int64_t minute;
    uint32_t lo, hi;
    char kind;
    double ttc, dist, va, vb, ha, hb, la, lb;
} pairrec;

static tsi_sim_cfg busy_cfg(void)
{
    tsi_sim_cfg c;
    tsi_sim_cfg_defaults(&c);
    c.n_intersections = 12;
    c.seed = 7;
    c.start_ms = 1795606200000LL; /* 2026-11-25T11:30Z = 06:30 local: the rush builds */
    c.vv_rate = 40;
    c.vru_rate = 40;
    c.hard_brake_rate = 20;
    c.ped_rate = 120;
    c.warmup_s = 60;
    return c;
}

static void test_truth_matches_samples(void **state)
{
    (void)state;
    tsi_sim_cfg c = busy_cfg();
    tsi_sim_model *m = tsi_sim_model_new(&c);
    assert_non_null(m);
    const int ticks = 8 * 120; /* 8 simulated minutes */
    int n = tsi_sim_model_count(m);
    set64 seen, hb, msgs;
    set_init(&seen, 1 << 20);
    set_init(&hb, 1 << 16);
    set_init(&msgs, 1 << 22);
    /* recounted per (intersection, minute) */
    enum { MAXMIN = 16 };
    static int veh[MAXMIN][64], vrus[MAXMIN][64], nbsm[MAXMIN][64], npsm[MAXMIN][64],
        hard[MAXMIN][64];
    memset(veh, 0, sizeof veh);
    memset(vrus, 0, sizeof vrus);
    memset(nbsm, 0, sizeof nbsm);
    memset(npsm, 0, sizeof npsm);
    memset(hard, 0, sizeof hard);
    int64_t m0 = c.start_ms - c.start_ms % 60000;
    /* previous speed and time per id, for the speed-drop rule */
    enum { PREV = 1 << 16 };
    static uint32_t pid[PREV];
    static double pspeed[PREV];
    static int64_t pts[PREV];
    memset(pid, 0, sizeof pid);
    pairrec *pairs = NULL;
    size_t npairs = 0, cappairs = 0;
    set64 pairset;
    set_init(&pairset, 1 << 16);
    int red_crossings = 0, crossings = 0;
    for (int t = 0; t < ticks; t++) {
        size_t ns;
        const tsi_sim_sample *s = tsi_sim_model_step(m, &ns);
        assert_int_equal(tsi_sim_model_now(m), c.start_ms + (int64_t)t * TSI_SIM_TICK_MS);
        for (size_t k = 0; k < ns; k++) {
            const tsi_sim_sample *a = &s[k];
            int64_t mi = (a->ts_ms - m0) / 60000;
            assert_true(mi >= 0 && mi < MAXMIN);
            assert_true(a->isect >= 0 && a->isect < n);
            assert_true(a->msgcnt < 128);
            assert_true(a->ts_ms >= a->gen_ms && a->ts_ms - a->gen_ms < 500);
            /* the dedupe key of domain.md §3 is unique per generated message */
            assert_true(set_add(&msgs, key3((uint64_t)a->kind << 32 | a->id,
                                            (uint64_t)a->msgcnt << 16 | (a->gen_ms % 60000),
                                            (uint64_t)a->ts_ms / 100)));
            bool fresh = set_add(&seen, key3((uint64_t)a->isect, (uint64_t)mi, a->id));
            if (a->kind == TSI_SIM_BSM) {
                nbsm[mi][a->isect]++;
                veh[mi][a->isect] += fresh;
                size_t slot = a->id % PREV;
                bool h;
                if (!isnan(a->accel_lon))
                    h = a->accel_lon <= -3.0;
                else
                    h = pid[slot] == a->id &&
                        (pspeed[slot] - a->speed) / ((double)(a->ts_ms - pts[slot]) / 1000.0) >=
                            3.0 - 1e-9;
                pid[slot] = a->id;
                pspeed[slot] = a->speed;
                pts[slot] = a->ts_ms;
                if (h && set_add(&hb, key3((uint64_t)a->isect, (uint64_t)mi, a->id)))
                    hard[mi][a->isect]++;
            } else {
                npsm[mi][a->isect]++;
                vrus[mi][a->isect] += fresh;
            }
        }
        /* every pair at the same intersection, same tick (time-aligned samples) */
        for (size_t i = 0; i < ns; i++) {
            const tsi_sim_sample *a = &s[i];
            if (a->kind != TSI_SIM_BSM)
                continue;
            const tsi_sim_isect *is = tsi_sim_model_isect(m, a->isect);
            double ax, ay;
            to_xy(is->lat, is->lon, a->lat, a->lon, &ax, &ay);
            double avx = a->speed * sin(a->heading * M_PI / 180),
                   avy = a->speed * cos(a->heading * M_PI / 180);
            for (size_t j = 0; j < ns; j++) {
                const tsi_sim_sample *b = &s[j];
                if (j == i || b->isect != a->isect || b->id == a->id)
                    continue;
                if (b->kind == TSI_SIM_BSM && j < i)
                    continue; /* each vehicle pair once */
                double bx, by;
                to_xy(is->lat, is->lon, b->lat, b->lon, &bx, &by);
                double bvx = b->speed * sin(b->heading * M_PI / 180),
                       bvy = b->speed * cos(b->heading * M_PI / 180);
                bool vv = b->kind == TSI_SIM_BSM;
                double r = vv ? (a->length_cm + b->length_cm) / 200.0 : a->length_cm / 200.0 + 0.5;
                double tt = ttc(bx - ax, by - ay, bvx - avx, bvy - avy, r);
                double d = hypot(bx - ax, by - ay);
                bool hit =
                    vv ? ((tt >= 0 && tt <= 1.5) || d < 2.0) : ((tt >= 0 && tt <= 3.0) || d < 5.0);
                if (!hit)
                    continue;
                int64_t minute = a->ts_ms - a->ts_ms % 60000;
                uint32_t lo = a->id < b->id ? a->id : b->id, hi = a->id < b->id ? b->id : a->id;
                if (!set_add(&pairset, key3((uint64_t)a->isect << 1 | vv, (uint64_t)minute,
                                            (uint64_t)lo << 32 | hi)))
                    continue;
                if (npairs == cappairs) {
                    cappairs = cappairs ? cappairs * 2 : 64;
                    pairs = realloc(pairs, sizeof *pairs * cappairs);
                    assert_non_null(pairs);
                }
                pairs[npairs++] = (pairrec){
                    a->isect, minute,   lo,         hi,         vv ? 'v' : 'p', tt,          d,
                    a->speed, b->speed, a->heading, b->heading, a->length_cm,   b->length_cm};
            }
        }
        (void)red_crossings;
        (void)crossings;
    }
    /* truth per minute equals the recount */
    int checked = 0, total_veh = 0, total_hb = 0;
    for (int mi = 0; mi < 8; mi++)
        for (int i = 0; i < n; i++) {
            const tsi_sim_minute *r = tsi_sim_truth_minute(m, i, m0 + (int64_t)mi * 60000);
            if (nbsm[mi][i] == 0 && npsm[mi][i] == 0) {
                assert_null(r);
                continue;
            }
            assert_non_null(r);
            assert_int_equal(r->bsm, nbsm[mi][i]);
            assert_int_equal(r->psm, npsm[mi][i]);
            assert_int_equal(r->vehicles, veh[mi][i]);
            assert_int_equal(r->vrus, vrus[mi][i]);
            assert_int_equal(r->pedestrians + r->cyclists, r->vrus);
            assert_int_equal(r->hard_braking, hard[mi][i]);
            total_veh += r->vehicles;
            total_hb += r->hard_braking;
            checked++;
        }
    assert_true(checked > 50);
    assert_true(total_veh > 500);
    assert_true(total_hb > 0);
    /* conflicts: the pairs measured here are exactly the pairs the truth lists */
    size_t ncf;
    const tsi_sim_conflict *cf = tsi_sim_truth_conflicts(m, &ncf);
    int nvv = 0, nvru = 0, unexpected = 0;
    for (size_t k = 0; k < npairs; k++) {
        bool found = false;
        for (size_t q = 0; q < ncf; q++) {
            uint32_t lo = cf[q].a < cf[q].b ? cf[q].a : cf[q].b;
            uint32_t hi = cf[q].a < cf[q].b ? cf[q].b : cf[q].a;
            if (cf[q].isect == pairs[k].isect && cf[q].minute_ms == pairs[k].minute &&
                lo == pairs[k].lo && hi == pairs[k].hi && cf[q].kind == pairs[k].kind)
                found = true;
        }
        if (!found) {
            print_message("a conflict nobody injected: isect %d minute %lld kind %c ids %u %u "
                          "ttc %.2f dist %.2f speeds %.2f %.2f headings %.1f %.1f lengths %.0f "
                          "%.0f\n",
                          pairs[k].isect, (long long)pairs[k].minute, pairs[k].kind, pairs[k].lo,
                          pairs[k].hi, pairs[k].ttc, pairs[k].dist, pairs[k].va, pairs[k].vb,
                          pairs[k].ha, pairs[k].hb, pairs[k].la, pairs[k].lb);
            unexpected++;
        }
        if (pairs[k].kind == 'v')
            nvv++;
        else
            nvru++;
    }
    assert_int_equal(unexpected, 0);
    assert_int_equal((int)ncf, (int)npairs);
    assert_true(nvv > 5);
    assert_true(nvru > 5);
    uint64_t ivv, ivru, missed;
    tsi_sim_truth_injections(m, &ivv, &ivru, &missed);
    assert_int_equal(missed, 0);
    free(pairs);
    set_free(&seen);
    set_free(&hb);
    set_free(&msgs);
    set_free(&pairset);
    tsi_sim_model_free(m);
}

/* Vehicles cross their stop line only on green or yellow (of the SPaT the server sends):
 * the along-path distance from the centre is recomputed from each BSM. */
static void test_signals_obeyed(void **state)
{
    (void)state;
    tsi_sim_cfg c = busy_cfg();
    c.vv_rate = c.vru_rate = 0;
    tsi_sim_model *m = tsi_sim_model_new(&c);
    assert_non_null(m);
    enum { PREV = 1 << 16 };
    static uint32_t pid[PREV];
    static double pdist[PREV];
    memset(pid, 0, sizeof pid);
    static const int sg_of_approach[4] = {6, 8, 2, 4};
    int crossings = 0, on_red = 0;
    for (int t = 0; t < 6 * 120; t++) {
        size_t ns;
        const tsi_sim_sample *s = tsi_sim_model_step(m, &ns);
        for (size_t k = 0; k < ns; k++) {
            const tsi_sim_sample *a = &s[k];
            if (a->kind != TSI_SIM_BSM)
                continue;
            const tsi_sim_isect *is = tsi_sim_model_isect(m, a->isect);
            double x, y;
            to_xy(is->lat, is->lon, a->lat, a->lon, &x, &y);
            double hx = sin(a->heading * M_PI / 180), hy = cos(a->heading * M_PI / 180);
            double ahead = -(x * hx + y * hy); /* > 0 before the centre */
            double front = ahead - a->length_cm / 200.0;
            size_t slot = a->id % PREV;
            if (pid[slot] == a->id && pdist[slot] > TSI_SIM_STOP_LINE + 0.05 &&
                front <= TSI_SIM_STOP_LINE + 0.05) {
                crossings++;
                /* approach: the one whose outward bearing is opposite the heading */
                double outward = fmod(a->heading + 180.0 - is->rot_deg + 720.0, 360.0);
                int ap = (int)lround(outward / 90.0) % 4;
                int st_prev = tsi_sim_signal(m, a->isect, sg_of_approach[ap],
                                             a->gen_ms - TSI_SIM_TICK_MS, NULL);
                int st_now = tsi_sim_signal(m, a->isect, sg_of_approach[ap], a->gen_ms, NULL);
                if (st_prev == 3 && st_now == 3)
                    on_red++;
            }
            pid[slot] = a->id;
            pdist[slot] = front;
        }
    }
    assert_true(crossings > 200);
    assert_int_equal(on_red, 0);
    tsi_sim_model_free(m);
}

static void serialize_ticks(const tsi_sim_cfg *c, int ticks, tsi_buf *out)
{
    tsi_sim_model *m = tsi_sim_model_new(c);
    assert_non_null(m);
    for (int t = 0; t < ticks; t++) {
        size_t ns;
        const tsi_sim_sample *s = tsi_sim_model_step(m, &ns);
        for (size_t k = 0; k < ns; k++) {
            tsi_sim_msg_write(out, m, &s[k]);
            tsi_buf_putc(out, '\n');
        }
    }
    tsi_sim_model_free(m);
}

static void test_deterministic(void **state)
{
    (void)state;
    tsi_sim_cfg c = busy_cfg();
    tsi_buf a = TSI_BUF_INIT, b = TSI_BUF_INIT, d = TSI_BUF_INIT;
    serialize_ticks(&c, 240, &a);
    serialize_ticks(&c, 240, &b);
    assert_true(a.len > 100000);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    c.seed = 8;
    serialize_ticks(&c, 240, &d);
    assert_true(d.len != a.len || memcmp(a.data, d.data, a.len) != 0);
    tsi_buf_free(&a);
    tsi_buf_free(&b);
    tsi_buf_free(&d);
}

/* --vcc-quirks: every message carries a locationName and sits 300 m from its refPoint. */
static void test_quirks(void **state)
{
    (void)state;
    tsi_sim_cfg c = busy_cfg();
    c.quirks = true;
    c.n_intersections = 4;
    tsi_sim_model *m = tsi_sim_model_new(&c);
    assert_non_null(m);
    size_t ns;
    const tsi_sim_sample *s = NULL;
    for (int t = 0; t < 10; t++)
        s = tsi_sim_model_step(m, &ns);
    assert_true(ns > 0);
    for (size_t k = 0; k < ns; k++) {
        const tsi_sim_isect *is = tsi_sim_model_isect(m, s[k].isect);
        assert_true(is->location[0] != '\0');
        double x, y;
        to_xy(is->lat, is->lon, s[k].lat, s[k].lon, &x, &y);
        double d = hypot(x, y);
        for (int i = 0; i < tsi_sim_model_count(m); i++) {
            const tsi_sim_isect *o = tsi_sim_model_isect(m, i);
            to_xy(o->lat, o->lon, s[k].lat, s[k].lon, &x, &y);
            assert_true(hypot(x, y) > 150.0); /* away from every refPoint */
        }
        assert_true(d > 150.0 && d < 300.0 + 2 * TSI_SIM_APPROACH_LEN);
    }
    tsi_sim_model_free(m);
}

static void test_bad_config(void **state)
{
    (void)state;
    tsi_sim_cfg c;
    tsi_sim_cfg_defaults(&c);
    c.n_intersections = 0;
    assert_null(tsi_sim_model_new(&c));
    c.n_intersections = TSI_SIM_MAX_ISECT + 1;
    assert_null(tsi_sim_model_new(&c));
    c.n_intersections = 3;
    c.vv_rate = -1;
    assert_null(tsi_sim_model_new(&c));
}

/* The TTC of the model agrees with hand-computed cases. */
static void test_ttc(void **state)
{
    (void)state;
    /* head-on along x: 20 m apart, closing at 10 m/s, R = 4.8 -> (20-4.8)/10 */
    assert_float_equal(tsi_sim_ttc(0, 0, 5, 0, 20, 0, -5, 0, 4.8), 1.52, 1e-9);
    /* separating */
    assert_float_equal(tsi_sim_ttc(0, 0, -5, 0, 20, 0, 5, 0, 4.8), -1, 0);
    /* passing with a 6 m lateral offset never reaches R = 4.8 */
    assert_float_equal(tsi_sim_ttc(0, 0, 10, 0, 30, 6, 0, 0, 4.8), -1, 0);
    /* lateral offset 3, R 5: reaches R when the along gap is 4: (30-4)/10 */
    assert_float_equal(tsi_sim_ttc(0, 0, 10, 0, 30, 3, 0, 0, 5), 2.6, 1e-9);
    /* inside R and closing */
    assert_float_equal(tsi_sim_ttc(0, 0, 1, 0, 2, 0, 0, 0, 4.8), 0, 0);
    /* the daily profile peaks in the rush hours and is low at night */
    assert_true(tsi_sim_profile(1795608000000LL /* 07:00 local */, -300) > 0.9);
    assert_true(tsi_sim_profile(1795579200000LL /* 23:00 local */, -300) < 0.3);
}

static void test_fmt_fixed(void **state)
{
    (void)state;
    char b[40];
    tsi_sim_fmt_fixed(b, 38.8735, 7);
    assert_string_equal(b, "38.8735000");
    tsi_sim_fmt_fixed(b, -77.271, 7);
    assert_string_equal(b, "-77.2710000");
    tsi_sim_fmt_fixed(b, -0.004, 2);
    assert_string_equal(b, "0.00");
    tsi_sim_fmt_fixed(b, -0.005, 2);
    assert_string_equal(b, "-0.01");
    tsi_sim_fmt_fixed(b, 12.5, 0);
    assert_string_equal(b, "13");
    tsi_sim_fmt_fixed(b, NAN, 2);
    assert_string_equal(b, "null");
    tsi_sim_fmt_fixed(b, 148.0, 4);
    assert_string_equal(b, "148.0000");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truth_matches_samples),
        cmocka_unit_test(test_signals_obeyed),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_quirks),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_ttc),
        cmocka_unit_test(test_fmt_fixed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
