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
#include "core/json.h"
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
    c.vv_rate = 1;
    c.turn_left = 0.7;
    c.turn_right = 0.4; /* shares above 1 in total */
    assert_null(tsi_sim_model_new(&c));
    c.turn_left = -0.1;
    c.turn_right = 0.1;
    assert_null(tsi_sim_model_new(&c));
    c.turn_left = NAN;
    assert_null(tsi_sim_model_new(&c));
    c.turn_left = 0.5;
    c.turn_right = 0.5;
    tsi_sim_model *m = tsi_sim_model_new(&c);
    assert_non_null(m);
    tsi_sim_model_free(m);
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

/* A temporary id names one road user: within an intersection, an id seen again after a
 * gap (a road user that left and another that came) never happens, for vehicles and VRUs
 * alike, so distinct ids per intersection-minute count road users exactly. */
static void test_ids_unique(void **state)
{
    (void)state;
    tsi_sim_cfg c = busy_cfg();
    tsi_sim_model *m = tsi_sim_model_new(&c);
    assert_non_null(m);
    enum { CAP = 1 << 18 };
    typedef struct slot {
        uint64_t key; /* isect << 32 | id, 0 = empty */
        int64_t last;
    } slot;
    slot *tab = calloc(CAP, sizeof *tab);
    assert_non_null(tab);
    size_t users = 0;
    for (int t = 0; t < 20 * 120; t++) { /* 20 simulated minutes */
        size_t ns;
        const tsi_sim_sample *s = tsi_sim_model_step(m, &ns);
        for (size_t k = 0; k < ns; k++) {
            assert_true(s[k].id != 0 && s[k].id <= 0x7fffffffu);
            uint64_t key = ((uint64_t)(s[k].isect + 1) << 32) | s[k].id;
            size_t h = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 46) & (CAP - 1);
            while (tab[h].key && tab[h].key != key)
                h = (h + 1) & (CAP - 1);
            if (tab[h].key == key) {
                if (s[k].gen_ms - tab[h].last != TSI_SIM_TICK_MS)
                    fail_msg("intersection %d id %u seen again after %lld ms", s[k].isect, s[k].id,
                             (long long)(s[k].gen_ms - tab[h].last));
            } else {
                assert_true(++users < CAP / 2);
                tab[h].key = key;
            }
            tab[h].last = s[k].gen_ms;
        }
    }
    print_message("%zu road users, each id once per intersection\n", users);
    assert_true(users > 2000);
    free(tab);
    tsi_sim_model_free(m);
}

/* ---- turning movements ---- */

/* One lane of the MapData, read back from the JSON the server sends. */
typedef struct maplane {
    int id, ingress, egress, nnodes, nconn;
    double x[4], y[4]; /* nodes, local metres */
    int conn[4], conn_sg[4];
} maplane;

static int read_lanes(const tsi_sim_model *m, int i, maplane *out, int cap)
{
    tsi_buf b = TSI_BUF_INIT;
    tsi_sim_mapdata_write(&b, m, i, tsi_sim_model_now(m));
    tsi_json d;
    tsi_error e;
    assert_true(tsi_json_parse_alloc(&d, b.data, b.len, 100000, &e) > 0);
    const tsi_sim_isect *is = tsi_sim_model_isect(m, i);
    int set = tsi_json_path(&d, tsi_json_first(&d, tsi_json_get(&d, 0, "intersections")), "laneSet",
                            NULL);
    int n = 0;
    for (int l = tsi_json_first(&d, set); l >= 0 && n < cap; l = tsi_json_next(&d, set, l)) {
        maplane *ml = &out[n++];
        memset(ml, 0, sizeof *ml);
        double v;
        assert_int_equal(tsi_json_num(&d, tsi_json_get(&d, l, "laneID"), &v), 0);
        ml->id = (int)v;
        ml->ingress =
            tsi_json_num(&d, tsi_json_get(&d, l, "ingressApproach"), &v) == 0 ? (int)v : -1;
        ml->egress = tsi_json_num(&d, tsi_json_get(&d, l, "egressApproach"), &v) == 0 ? (int)v : -1;
        int nodes = tsi_json_path(&d, l, "nodesList", "nodes", NULL);
        for (int k = tsi_json_first(&d, nodes); k >= 0 && ml->nnodes < 4;
             k = tsi_json_next(&d, nodes, k)) {
            double lat, lon;
            assert_int_equal(tsi_json_num(&d, tsi_json_path(&d, k, "delta", "lat", NULL), &lat), 0);
            assert_int_equal(tsi_json_num(&d, tsi_json_path(&d, k, "delta", "lon", NULL), &lon), 0);
            to_xy(is->lat, is->lon, lat, lon, &ml->x[ml->nnodes], &ml->y[ml->nnodes]);
            ml->nnodes++;
        }
        int ct = tsi_json_get(&d, l, "connectsTo");
        for (int k = tsi_json_first(&d, ct); k >= 0 && ml->nconn < 4;
             k = tsi_json_next(&d, ct, k)) {
            assert_int_equal(
                tsi_json_num(&d, tsi_json_path(&d, k, "connectingLane", "lane", NULL), &v), 0);
            ml->conn[ml->nconn] = (int)v;
            assert_int_equal(tsi_json_num(&d, tsi_json_get(&d, k, "signalGroup"), &v), 0);
            ml->conn_sg[ml->nconn++] = (int)v;
        }
    }
    tsi_json_free(&d);
    tsi_buf_free(&b);
    return n;
}

/* Distance from (x, y) to the polyline of a lane. */
static double lane_dist(const maplane *l, double x, double y)
{
    double best = 1e9;
    for (int k = 0; k + 1 < l->nnodes; k++) {
        double ax = l->x[k], ay = l->y[k], bx = l->x[k + 1], by = l->y[k + 1];
        double vx = bx - ax, vy = by - ay,
               t = ((x - ax) * vx + (y - ay) * vy) / (vx * vx + vy * vy);
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        double d = hypot(x - (ax + t * vx), y - (ay + t * vy));
        if (d < best)
            best = d;
    }
    return best;
}

static double wrap180(double d)
{
    while (d > 180)
        d -= 360;
    while (d <= -180)
        d += 360;
    return d;
}

typedef struct track {
    uint32_t id;
    int isect;
    int64_t last_gen;
    double first_x, first_y, x, y, heading, turned, speed;
    bool full_start;
} track;

/* Vehicles go through, turn left or turn right at the configured shares (20 simulated
 * minutes at 12 intersections, nothing injected, so no pair may meet a conflict
 * threshold at any tick): the heading
 * turns by 0 or ±90° (±5°), the vehicle ends on an egress lane its ingress lane's
 * connectsTo names (and heads out along it), the lateral acceleration v·dθ/dt between
 * consecutive BSMs never exceeds 2.5 m/s², and the shares are within a binomial tolerance
 * (4 standard deviations) of the configuration. */
static void test_turns(void **state)
{
    (void)state;
    tsi_sim_cfg c = busy_cfg();
    c.vv_rate = c.vru_rate = c.hard_brake_rate = 0;
    c.turn_left = 0.25;
    c.turn_right = 0.10;
    c.start_ms = 1795615200000LL; /* 2026-11-25T14:00Z = 09:00 local */
    tsi_sim_model *m = tsi_sim_model_new(&c);
    assert_non_null(m);
    int n = tsi_sim_model_count(m);
    static maplane lanes[12][16];
    int nl[12];
    for (int i = 0; i < n; i++)
        nl[i] = read_lanes(m, i, lanes[i], 16);
    enum { CAP = 1 << 14 };
    static track tr[CAP];
    int ntr = 0;
    int nthru = 0, nleft = 0, nright = 0, checked_lanes = 0;
    double max_alat = 0;
    const int ticks = 20 * 120;
    for (int t = 0; t <= ticks; t++) {
        size_t ns;
        const tsi_sim_sample *s = t < ticks ? tsi_sim_model_step(m, &ns) : NULL;
        if (t == ticks)
            ns = 0;
        int64_t now = tsi_sim_model_now(m);
        for (size_t k = 0; k < ns; k++) {
            const tsi_sim_sample *a = &s[k];
            if (a->kind != TSI_SIM_BSM)
                continue;
            const tsi_sim_isect *is = tsi_sim_model_isect(m, a->isect);
            double x, y;
            to_xy(is->lat, is->lon, a->lat, a->lon, &x, &y);
            track *q = NULL;
            for (int j = ntr - 1; j >= 0; j--)
                if (tr[j].id == a->id && tr[j].isect == a->isect) {
                    q = &tr[j];
                    break;
                }
            if (!q) {
                assert_true(ntr < CAP);
                q = &tr[ntr++];
                *q = (track){a->id,
                             a->isect,
                             a->gen_ms,
                             x,
                             y,
                             x,
                             y,
                             a->heading,
                             0,
                             a->speed,
                             hypot(x, y) > TSI_SIM_APPROACH_LEN - 30};
                continue;
            }
            assert_int_equal(a->gen_ms - q->last_gen, TSI_SIM_TICK_MS);
            double dh = wrap180(a->heading - q->heading);
            double alat = a->speed * fabs(dh) * M_PI / 180.0 / (TSI_SIM_TICK_MS / 1000.0);
            if (alat > max_alat)
                max_alat = alat;
            q->turned += dh;
            q->heading = a->heading;
            q->x = x;
            q->y = y;
            q->speed = a->speed;
            q->last_gen = a->gen_ms;
        }
        /* nothing is injected here: no pair of road users may meet the conflict thresholds
         * (samples come grouped by intersection) */
        for (size_t g0 = 0, g1; g0 < ns; g0 = g1) {
            for (g1 = g0; g1 < ns && s[g1].isect == s[g0].isect; g1++)
                ;
            const tsi_sim_isect *is = tsi_sim_model_isect(m, s[g0].isect);
            for (size_t i = g0; i < g1; i++) {
                if (s[i].kind != TSI_SIM_BSM)
                    continue;
                double ax, ay, bx, by;
                to_xy(is->lat, is->lon, s[i].lat, s[i].lon, &ax, &ay);
                double avx = s[i].speed * sin(s[i].heading * M_PI / 180),
                       avy = s[i].speed * cos(s[i].heading * M_PI / 180);
                for (size_t j = g0; j < g1; j++) {
                    if (j == i || (s[j].kind == TSI_SIM_BSM && j < i))
                        continue;
                    to_xy(is->lat, is->lon, s[j].lat, s[j].lon, &bx, &by);
                    double bvx = s[j].speed * sin(s[j].heading * M_PI / 180),
                           bvy = s[j].speed * cos(s[j].heading * M_PI / 180);
                    bool vv = s[j].kind == TSI_SIM_BSM;
                    double r = vv ? (s[i].length_cm + s[j].length_cm) / 200.0
                                  : s[i].length_cm / 200.0 + 0.5;
                    double tt = ttc(bx - ax, by - ay, bvx - avx, bvy - avy, r);
                    double dd = hypot(bx - ax, by - ay);
                    if (vv ? ((tt >= 0 && tt <= 1.5) || dd < 2.0)
                           : ((tt >= 0 && tt <= 3.0) || dd < 5.0))
                        fail_msg("unintended conflict at %d: %u %u ttc %.2f dist %.2f headings "
                                 "%.1f %.1f speeds %.2f %.2f",
                                 s[i].isect, s[i].id, s[j].id, tt, dd, s[i].heading, s[j].heading,
                                 s[i].speed, s[j].speed);
                }
            }
        }
        /* vehicles that left since the last tick: classify the complete ones */
        int keep = 0;
        for (int j = 0; j < ntr; j++) {
            track *q = &tr[j];
            if (q->last_gen >= now - (t < ticks ? 0 : TSI_SIM_TICK_MS)) {
                tr[keep++] = *q;
                continue;
            }
            if (t == ticks || !q->full_start || hypot(q->x, q->y) < TSI_SIM_APPROACH_LEN - 30)
                continue; /* seen only in part */
            double turned = q->turned;
            int mv = fabs(turned) <= 5        ? 0
                     : fabs(turned - 90) <= 5 ? 2
                     : fabs(turned + 90) <= 5 ? 1
                                              : -1;
            if (mv < 0)
                fail_msg("vehicle %u turned by %.1f°", q->id, turned);
            nthru += mv == 0;
            nleft += mv == 1;
            nright += mv == 2;
            /* its ingress lane (nearest to the first position) names its egress lane */
            const maplane *in = NULL, *out = NULL;
            double din = 1e9, dout = 1e9;
            for (int l = 0; l < nl[q->isect]; l++) {
                const maplane *ml = &lanes[q->isect][l];
                if (ml->ingress > 0 && lane_dist(ml, q->first_x, q->first_y) < din) {
                    din = lane_dist(ml, q->first_x, q->first_y);
                    in = ml;
                }
                if (ml->egress > 0 && lane_dist(ml, q->x, q->y) < dout) {
                    dout = lane_dist(ml, q->x, q->y);
                    out = ml;
                }
            }
            assert_non_null(in);
            assert_non_null(out);
            assert_true(din < 0.5 && dout < 0.5);
            bool named = false;
            for (int k = 0; k < in->nconn; k++)
                named |= in->conn[k] == out->id;
            if (!named)
                fail_msg("vehicle %u from lane %d ended on lane %d", q->id, in->id, out->id);
            /* heading out along the egress lane (its nodes run outward) */
            double ob =
                atan2(out->x[out->nnodes - 1] - out->x[0], out->y[out->nnodes - 1] - out->y[0]) *
                180 / M_PI;
            assert_true(fabs(wrap180(q->heading - ob)) < 5);
            checked_lanes++;
        }
        ntr = keep;
    }
    int total = nthru + nleft + nright;
    print_message("turns: %d vehicles, %d through, %d left, %d right, max lateral %.2f m/s²\n",
                  total, nthru, nleft, nright, max_alat);
    assert_true(total > 400);
    assert_int_equal(checked_lanes, total);
    assert_true(max_alat <= 2.5);
    assert_true(max_alat > 1.5); /* the turns do reach their speed */
    double tolL = 4 * sqrt(total * c.turn_left * (1 - c.turn_left));
    double tolR = 4 * sqrt(total * c.turn_right * (1 - c.turn_right));
    assert_true(fabs(nleft - total * c.turn_left) <= tolL);
    assert_true(fabs(nright - total * c.turn_right) <= tolR);
    tsi_sim_model_free(m);
}

/* Every ingress lane connects to the three egress lanes of the other legs, on the signal
 * group of its approach; the SPaT never has two vehicle groups or a vehicle group and a
 * walk together (split phasing with an exclusive pedestrian phase). */
static void test_phases_and_map(void **state)
{
    (void)state;
    tsi_sim_cfg c;
    tsi_sim_cfg_defaults(&c);
    c.n_intersections = 3;
    tsi_sim_model *m = tsi_sim_model_new(&c);
    assert_non_null(m);
    maplane lanes[16];
    int n = read_lanes(m, 0, lanes, 16);
    assert_int_equal(n, 12);
    int ingress = 0;
    bool group_used[20] = {false};
    for (int l = 0; l < n; l++) {
        if (lanes[l].ingress < 0)
            continue;
        ingress++;
        assert_int_equal(lanes[l].nconn, 3);
        bool seen[5] = {false};
        for (int k = 0; k < 3; k++) {
            const maplane *to = NULL;
            for (int j = 0; j < n; j++)
                if (lanes[j].id == lanes[l].conn[k])
                    to = &lanes[j];
            assert_non_null(to);
            assert_true(to->egress >= 1 && to->egress <= 4);
            assert_true(to->egress != lanes[l].ingress); /* no U-turns */
            seen[to->egress] = true;
            assert_int_equal(lanes[l].conn_sg[k], lanes[l].conn_sg[0]);
        }
        for (int ap = 1; ap <= 4; ap++)
            assert_true(seen[ap] == (ap != lanes[l].ingress));
        int g = lanes[l].conn_sg[0];
        assert_true(g == 2 || g == 4 || g == 6 || g == 8);
        assert_false(group_used[g]); /* each approach its own group */
        group_used[g] = true;
    }
    assert_int_equal(ingress, 4);
    static const int veh[4] = {2, 4, 6, 8}, ped[4] = {10, 12, 14, 16};
    int green_s[4] = {0}, walk_s = 0;
    for (int64_t t = 0; t < (int64_t)TSI_SIM_CYCLE_S * 1000; t += 500) {
        int64_t at = c.start_ms + t;
        int moving = 0, walking = 0;
        for (int k = 0; k < 4; k++) {
            int st = tsi_sim_signal(m, 0, veh[k], at, NULL);
            moving += st != 3;
            green_s[k] += st == 6;
            int ps = tsi_sim_signal(m, 0, ped[k], at, NULL);
            walking += ps != 3;
            walk_s += ps == 6;
            assert_int_equal(ps, tsi_sim_signal(m, 0, ped[0], at, NULL));
        }
        assert_true(moving <= 1);
        assert_false(moving && walking);
    }
    for (int k = 0; k < 4; k++)
        assert_true(green_s[k] >= 20); /* >= 10 s of green per approach */
    assert_true(walk_s > 0);
    tsi_sim_model_free(m);
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
        cmocka_unit_test(test_ids_unique),
        cmocka_unit_test(test_turns),
        cmocka_unit_test(test_phases_and_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
