/* `tsi sim` contract tests, part two: determinism over the wire (same seed, same bytes),
 * ground truth consistent with what was sent (recounted here from a capture of both
 * streams, and by `tsi features` run on that capture), and every fault switch observable
 * (flags and POST /sim/faults). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/geo.h"
#include "core/json.h"
#include "harness.h"
#include "proc_helper.h"
#include "sim_test_util.h"
#include "vcc/decode.h"

/* ---- determinism ---- */

static int same_ticks(const capture *x, const capture *y, bool want_equal)
{
    int common = 0;
    for (size_t i = 0; i < y->n; i++) {
        int64_t t = frame_tick(y->frames[i]);
        for (size_t j = 0; t >= 0 && j < x->n; j++)
            if (frame_tick(x->frames[j]) == t) {
                if (want_equal)
                    assert_string_equal(x->frames[j], y->frames[i]); /* byte-identical */
                else
                    assert_string_not_equal(x->frames[j], y->frames[i]);
                common++;
            }
    }
    return common;
}

static void test_determinism(void **state)
{
    (void)state;
    sim_t a, b, c;
    const char *same[] = {"--intersections", "3", "--seed", "11", "--speed", "10", NULL};
    const char *other[] = {"--intersections", "3", "--seed", "12", "--speed", "10", NULL};
    sim_start(&a, same);
    sim_start(&b, same);
    sim_start(&c, other);
    char *ta = sim_token(&a), *tb = sim_token(&b), *tc = sim_token(&c);
    char *ka = sim_key(&a, ta, "bsm"), *kb = sim_key(&b, tb, "bsm");
    capture ca, cb, ca2, cc;
    capture_init(&ca, "%s/ws/bsm?key=%s", a.ws, ka);
    capture_init(&cb, "%s/ws/bsm?key=%s", b.ws, kb);
    capture_run2(&ca, &cb, 3000);
    int common = same_ticks(&ca, &cb, true);
    print_message("identical frames: %d (of %zu and %zu)\n", common, ca.n, cb.n);
    assert_true(common >= 10);
    /* another seed: other traffic at the same simulated times */
    free(ka);
    ka = sim_key(&a, ta, "bsm");
    char *kc = sim_key(&c, tc, "bsm");
    capture_init(&ca2, "%s/ws/bsm?key=%s", a.ws, ka);
    capture_init(&cc, "%s/ws/bsm?key=%s", c.ws, kc);
    capture_run2(&ca2, &cc, 3000);
    int compared = same_ticks(&ca2, &cc, false);
    print_message("different frames: %d\n", compared);
    assert_true(compared >= 10);
    capture_free(&ca);
    capture_free(&cb);
    capture_free(&ca2);
    capture_free(&cc);
    free(ta);
    free(tb);
    free(tc);
    free(ka);
    free(kb);
    free(kc);
    assert_int_equal(th_proc_stop(&a.proc), 0);
    assert_int_equal(th_proc_stop(&b.proc), 0);
    assert_int_equal(th_proc_stop(&c.proc), 0);
}

/* ---- ground truth ---- */

#define MAXMSG 400000

typedef struct rec {
    tsi_msg m;
    int64_t tick;
} rec;

typedef struct recs {
    rec *r;
    size_t n;
} recs;

/* decodes every frame of the BSM capture, then of the PSM capture, into fn(ud, ...) */
static void decode_captures(capture *bsm, capture *psm, tsi_frame_cb fn, void *ud)
{
    tsi_decoder dec;
    tsi_decoder_init(&dec);
    tsi_error e = {0};
    for (int k = 0; k < 2; k++) {
        capture *c = k ? psm : bsm;
        for (size_t i = 0; i < c->n; i++)
            assert_true(tsi_frame_decode(&dec, c->frames[i], strlen(c->frames[i]), fn, ud, &e) >=
                        0);
    }
    tsi_decoder_free(&dec);
}

static void rec_cb(void *ud, int index, const tsi_msg *m, int rc, const tsi_error *err)
{
    (void)index;
    recs *R = ud;
    if (rc < 0)
        fail_msg("undecodable message: %s %s", err->message, err->detail);
    assert_true(R->n < MAXMSG);
    rec *x = &R->r[R->n++];
    x->m = *m;
    x->tick = m->timestamp_ms - ((m->timestamp_ms % 60000 - m->sec_mark + 60000) % 60000);
}

/* Ticks covered by a capture: the first non-empty frame fixes the tick of every frame
 * (one frame per 500 ms tick, none lost). */
static void coverage(const capture *c, int64_t *first, int64_t *last)
{
    *first = *last = -1;
    for (size_t i = 0; i < c->n; i++) {
        int64_t t = frame_tick(c->frames[i]);
        if (t >= 0) {
            *first = t - (int64_t)i * 500;
            *last = *first + (int64_t)(c->n - 1) * 500;
            return;
        }
    }
}

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

static bool conflict(const tsi_msg *v, const tsi_msg *o)
{
    const double R = 6371008.8, d2r = M_PI / 180.0;
    double dx = (o->lon - v->lon) * d2r * R * cos(v->lat * d2r), dy = (o->lat - v->lat) * d2r * R;
    double wx = o->speed * sin(o->heading * d2r) - v->speed * sin(v->heading * d2r);
    double wy = o->speed * cos(o->heading * d2r) - v->speed * cos(v->heading * d2r);
    bool vv = o->type == TSI_MSG_BSM;
    double r = vv ? (v->length_m + o->length_m) / 2 : v->length_m / 2 + 0.5;
    double t = ttc(dx, dy, wx, wy, r), d = hypot(dx, dy);
    return vv ? ((t >= 0 && t <= 1.5) || d < 2.0) : ((t >= 0 && t <= 3.0) || d < 5.0);
}

typedef struct truth_min {
    char rsu[32];
    int64_t id, minute;
    int64_t vehicles, vrus, hard, bsm, psm, nconf;
    int64_t conf[64][2];
} truth_min;

static int read_truth(sim_t *s, int64_t from, int64_t to, truth_min *out, int max)
{
    char path[160], *body = NULL;
    snprintf(path, sizeof path, "/sim/truth?from=%lld&to=%lld", (long long)from, (long long)to);
    assert_int_equal(sim_get(s, path, NULL, &body), 200);
    tsi_json d;
    json_doc(&d, body);
    int mins = tsi_json_get(&d, 0, "minutes"), n = 0;
    for (int i = tsi_json_first(&d, mins); i >= 0; i = tsi_json_next(&d, mins, i)) {
        assert_true(n < max);
        truth_min *t = &out[n++];
        memset(t, 0, sizeof *t);
        tsi_json_str(&d, tsi_json_get(&d, i, "rsuName"), t->rsu, sizeof t->rsu);
        tsi_json_int64(&d, tsi_json_get(&d, i, "intersection_id"), &t->id);
        tsi_json_int64(&d, tsi_json_get(&d, i, "minute"), &t->minute);
        tsi_json_int64(&d, tsi_json_get(&d, i, "vehicles"), &t->vehicles);
        tsi_json_int64(&d, tsi_json_get(&d, i, "vrus"), &t->vrus);
        tsi_json_int64(&d, tsi_json_get(&d, i, "hard_braking"), &t->hard);
        tsi_json_int64(&d, tsi_json_get(&d, i, "bsm_messages"), &t->bsm);
        tsi_json_int64(&d, tsi_json_get(&d, i, "psm_messages"), &t->psm);
        int cf = tsi_json_get(&d, i, "conflicts");
        for (int k = tsi_json_first(&d, cf); k >= 0; k = tsi_json_next(&d, cf, k)) {
            assert_true(t->nconf < 64);
            tsi_json_int64(&d, tsi_json_get(&d, k, "a"), &t->conf[t->nconf][0]);
            tsi_json_int64(&d, tsi_json_get(&d, k, "b"), &t->conf[t->nconf][1]);
            t->nconf++;
        }
    }
    tsi_json_free(&d);
    free(body);
    return n;
}

static int cmp_rec(const void *a, const void *b)
{
    const rec *x = a, *y = b;
    int c = strcmp(x->m.rsu_name, y->m.rsu_name);
    if (c)
        return c;
    if (x->tick != y->tick)
        return x->tick < y->tick ? -1 : 1;
    if (x->m.type != y->m.type)
        return x->m.type < y->m.type ? -1 : 1;
    return x->m.id < y->m.id ? -1 : x->m.id > y->m.id;
}

/* Both captures as JSON lines, merged in tick order (the features close a minute when
 * the stream clock passes it: lines must come in time order, as a collector sees them). */
static void write_lines(const char *path, const capture *a, const capture *b)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    size_t i = 0, j = 0;
    while (i < a->n || j < b->n) {
        int64_t ta = i < a->n ? frame_tick(a->frames[i]) : INT64_MAX;
        int64_t tb = j < b->n ? frame_tick(b->frames[j]) : INT64_MAX;
        if (i < a->n && ta < 0) {
            i++;
            continue;
        }
        if (j < b->n && tb < 0) {
            j++;
            continue;
        }
        if (ta <= tb)
            fprintf(f, "%s\n", a->frames[i++]);
        else
            fprintf(f, "%s\n", b->frames[j++]);
    }
    fclose(f);
}

typedef struct feat_min {
    int64_t id, minute, volume, vru, hard, vru_events, veh_events;
} feat_min;

static void test_truth(void **state)
{
    (void)state;
    sim_t s;
    const char *extra[] = {"--intersections",
                           "4",
                           "--speed",
                           "20",
                           "--seed",
                           "5",
                           "--vv-conflict-rate",
                           "120",
                           "--vru-conflict-rate",
                           "120",
                           "--hard-brake-rate",
                           "60",
                           "--ped-rate",
                           "150",
                           "--demand",
                           "0.6",
                           NULL};
    sim_start(&s, extra);
    char *tok = sim_token(&s);
    char *kb = sim_key(&s, tok, "bsm"), *kp = sim_key(&s, tok, "psm");
    char *mapdata = NULL;
    assert_int_equal(sim_get(&s, "/api/mapdata/decoded", tok, &mapdata), 200);
    capture cb, cp;
    capture_init(&cb, "%s/ws/bsm?key=%s", s.ws, kb);
    capture_init(&cp, "%s/ws/psm?key=%s", s.ws, kp);
    capture_run2(&cb, &cp, 12000);
    int64_t b0, b1, p0, p1;
    coverage(&cb, &b0, &b1);
    coverage(&cp, &p0, &p1);
    assert_true(b0 > 0 && p0 > 0);
    int64_t lo = b0 > p0 ? b0 : p0, hi = b1 < p1 ? b1 : p1;
    int64_t m_first = lo % 60000 ? lo - lo % 60000 + 60000 : lo; /* complete minutes */
    int64_t m_end = (hi + 500) - (hi + 500) % 60000;
    print_message("captured ticks %lld..%lld; complete minutes %lld..%lld\n", (long long)lo,
                  (long long)hi, (long long)m_first, (long long)m_end);
    assert_true(m_end - m_first >= 60000);

    /* decode every message of both captures */
    recs R = {calloc(MAXMSG, sizeof(rec)), 0};
    assert_non_null(R.r);
    decode_captures(&cb, &cp, rec_cb, &R);
    qsort(R.r, R.n, sizeof(rec), cmp_rec);

    truth_min *T = calloc(256, sizeof *T);
    int nt = read_truth(&s, m_first, m_end, T, 256);
    int compared = 0, conflicts = 0, hard_total = 0;
    for (int q = 0; q < nt; q++) {
        truth_min *t = &T[q];
        int64_t vehicles = 0, vrus = 0, hard = 0, bsm = 0, psm = 0;
        int64_t found_pairs = 0;
        /* messages of this rsu in this minute (sorted by rsu, tick, type, id) */
        size_t i0 = 0;
        while (i0 < R.n &&
               (strcmp(R.r[i0].m.rsu_name, t->rsu) < 0 ||
                (strcmp(R.r[i0].m.rsu_name, t->rsu) == 0 && R.r[i0].m.timestamp_ms < t->minute)))
            i0++;
        size_t i1 = i0;
        while (i1 < R.n && strcmp(R.r[i1].m.rsu_name, t->rsu) == 0 &&
               R.r[i1].m.timestamp_ms < t->minute + 60000)
            i1++;
        /* distinct ids, hard braking once per vehicle, by the rules of domain.md §3 */
        int64_t *ids = calloc(i1 - i0 + 1, sizeof *ids);
        size_t nids = 0;
        for (size_t i = i0; i < i1; i++) {
            const tsi_msg *m = &R.r[i].m;
            if (m->type == TSI_MSG_BSM)
                bsm++;
            else
                psm++;
            bool seen = false;
            for (size_t k = 0; k < nids; k++)
                if (ids[k] == m->id * 2 + (m->type == TSI_MSG_PSM))
                    seen = true;
            if (!seen) {
                ids[nids++] = m->id * 2 + (m->type == TSI_MSG_PSM);
                if (m->type == TSI_MSG_BSM)
                    vehicles++;
                else
                    vrus++;
            }
        }
        /* hard braking per vehicle: accelSet.lon <= -3, else a speed drop >= 3 m/s per s */
        int64_t *hb = calloc(i1 - i0 + 1, sizeof *hb);
        size_t nhb = 0;
        for (size_t i = i0; i < i1; i++) {
            const tsi_msg *m = &R.r[i].m;
            if (m->type != TSI_MSG_BSM)
                continue;
            bool h = false;
            if (!isnan(m->accel_lon)) {
                h = m->accel_lon <= -3.0;
            } else {
                /* the same vehicle one tick earlier (any minute: search all messages) */
                for (size_t k = 0; k < R.n; k++) {
                    const tsi_msg *p = &R.r[k].m;
                    if (p->type == TSI_MSG_BSM && p->id == m->id &&
                        R.r[k].tick == R.r[i].tick - 500 &&
                        (p->speed - m->speed) / ((m->timestamp_ms - p->timestamp_ms) / 1000.0) >=
                            3.0 - 1e-9)
                        h = true;
                }
            }
            if (!h)
                continue;
            bool seen = false;
            for (size_t k = 0; k < nhb; k++)
                if (hb[k] == m->id)
                    seen = true;
            if (!seen)
                hb[nhb++] = m->id;
        }
        hard = (int64_t)nhb;
        /* conflicts: every vehicle against every other road user at the same tick */
        int64_t pairs[256][2];
        int npairs = 0;
        for (size_t i = i0; i < i1; i++) {
            if (R.r[i].m.type != TSI_MSG_BSM)
                continue;
            for (size_t j = i0; j < i1 && R.r[j].tick <= R.r[i].tick; j++) {
                if (j == i || R.r[j].tick != R.r[i].tick || R.r[j].m.id == R.r[i].m.id)
                    continue;
                if (R.r[j].m.type == TSI_MSG_BSM && j < i)
                    continue;
                if (!conflict(&R.r[i].m, &R.r[j].m))
                    continue;
                int64_t a = R.r[i].m.id, b = R.r[j].m.id;
                bool dup = false;
                for (int k = 0; k < npairs; k++)
                    if ((pairs[k][0] == a && pairs[k][1] == b) ||
                        (pairs[k][0] == b && pairs[k][1] == a))
                        dup = true;
                if (!dup) {
                    assert_true(npairs < 256);
                    pairs[npairs][0] = a;
                    pairs[npairs][1] = b;
                    npairs++;
                }
            }
        }
        for (int k = 0; k < npairs; k++)
            for (int q2 = 0; q2 < t->nconf; q2++)
                if ((t->conf[q2][0] == pairs[k][0] && t->conf[q2][1] == pairs[k][1]) ||
                    (t->conf[q2][0] == pairs[k][1] && t->conf[q2][1] == pairs[k][0]))
                    found_pairs++;
        assert_int_equal(t->bsm, bsm);
        assert_int_equal(t->psm, psm);
        assert_int_equal(t->vehicles, vehicles);
        assert_int_equal(t->vrus, vrus);
        assert_int_equal(t->hard, hard);
        assert_int_equal(npairs, t->nconf);      /* no pair beyond the truth ... */
        assert_int_equal(found_pairs, t->nconf); /* ... and every truth pair measured */
        conflicts += npairs;
        hard_total += (int)hard;
        compared++;
        free(ids);
        free(hb);
    }
    print_message("compared %d intersection-minutes: %d conflicts, %d hard-braking vehicles\n",
                  compared, conflicts, hard_total);
    assert_true(compared >= 4);
    assert_true(conflicts >= 2);
    assert_true(hard_total >= 2);

    /* `tsi features` on the same capture agrees with the truth on complete minutes */
    char dir[256], mpath[300], lpath[300];
    const char *tmp = getenv("TSI_TEST_TMP");
    snprintf(dir, sizeof dir, "%s", tmp && *tmp ? tmp : "/tmp");
    snprintf(mpath, sizeof mpath, "%s/sim_map_%d.json", dir, (int)getpid());
    snprintf(lpath, sizeof lpath, "%s/sim_msgs_%d.jsonl", dir, (int)getpid());
    FILE *f = fopen(mpath, "w");
    assert_non_null(f);
    fputs(mapdata, f);
    fclose(f);
    write_lines(lpath, &cb, &cp);
    const char *args[] = {"features", "--mapdata", mpath,         "--messages", lpath,
                          "--format", "jsonl",     "--log-level", "error",      NULL};
    size_t outlen = 4 << 20;
    char *out = malloc(outlen);
    int rc = th_run_tsi(args, NULL, out, outlen);
    if (rc != 0)
        fail_msg("tsi features failed (%d) on %s %s: %s", rc, mpath, lpath,
                 strlen(out) > 3000 ? out + strlen(out) - 3000 : out);
    int matched = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] != '{')
            continue;
        tsi_json d;
        json_doc(&d, line);
        feat_min fm = {0};
        tsi_json_int64(&d, tsi_json_get(&d, 0, "intersection_id"), &fm.id);
        char ts[40] = "";
        tsi_json_str(&d, tsi_json_get(&d, 0, "timestamp"), ts, sizeof ts);
        int64_t mts = -1;
        if (tsi_json_int64(&d, tsi_json_get(&d, 0, "timestamp"), &mts) < 0 && ts[0]) {
            struct tm tmv;
            memset(&tmv, 0, sizeof tmv);
            if (strptime(ts, "%Y-%m-%dT%H:%M:%S", &tmv))
                mts = (int64_t)timegm(&tmv) * 1000;
        }
        fm.minute = mts;
        tsi_json_int64(&d, tsi_json_get(&d, 0, "traffic_volume"), &fm.volume);
        tsi_json_int64(&d, tsi_json_get(&d, 0, "vru_count"), &fm.vru);
        tsi_json_int64(&d, tsi_json_get(&d, 0, "hard_braking_count"), &fm.hard);
        tsi_json_int64(&d, tsi_json_get(&d, 0, "vru_event_count"), &fm.vru_events);
        tsi_json_int64(&d, tsi_json_get(&d, 0, "vehicle_event_count"), &fm.veh_events);
        tsi_json_free(&d);
        for (int q = 0; q < nt; q++) {
            if (T[q].id != fm.id || T[q].minute != fm.minute)
                continue;
            /* stated tolerances: counts exact; conflicts within one pair (the features may
             * pair samples up to 1 s apart, the truth pairs same-tick samples) */
            assert_int_equal(fm.volume, T[q].vehicles);
            assert_int_equal(fm.vru, T[q].vrus);
            assert_int_equal(fm.hard, T[q].hard);
            int64_t tv = 0, tp = 0;
            for (int k = 0; k < T[q].nconf; k++) {
                bool vv = false;
                for (size_t i = 0; i < R.n; i++)
                    if (R.r[i].m.type == TSI_MSG_BSM && R.r[i].m.id == T[q].conf[k][1])
                        vv = true;
                if (vv)
                    tv++;
                else
                    tp++;
            }
            assert_true(llabs(fm.veh_events - tv) <= 1);
            assert_true(llabs(fm.vru_events - tp) <= 1);
            matched++;
        }
    }
    print_message("tsi features matched %d intersection-minutes of the truth\n", matched);
    assert_int_equal(matched, nt);
    unlink(mpath);
    unlink(lpath);
    free(out);
    free(T);
    free(R.r);
    free(mapdata);
    capture_free(&cb);
    capture_free(&cp);
    free(kb);
    free(kp);
    free(tok);
    assert_int_equal(th_proc_stop(&s.proc), 0);
}

/* ---- the truth equals the capture, exactly ---- */

typedef struct tup {
    int rsu; /* index into the capture's rsu names */
    int64_t minute, id;
    int type;
} tup;

static int cmp_tup(const void *a, const void *b)
{
    const tup *x = a, *y = b;
    if (x->rsu != y->rsu)
        return x->rsu < y->rsu ? -1 : 1;
    if (x->minute != y->minute)
        return x->minute < y->minute ? -1 : 1;
    if (x->type != y->type)
        return x->type < y->type ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

typedef struct tups {
    tup *t;
    size_t n, cap;
    char rsus[64][32];
    int nrsu;
} tups;

static void tup_cb(void *ud, int index, const tsi_msg *m, int rc, const tsi_error *err)
{
    (void)index;
    tups *T = ud;
    if (rc < 0)
        fail_msg("undecodable message: %s %s", err->message, err->detail);
    int r = 0;
    while (r < T->nrsu && strcmp(T->rsus[r], m->rsu_name) != 0)
        r++;
    if (r == T->nrsu) {
        assert_true(T->nrsu < 64);
        snprintf(T->rsus[T->nrsu++], sizeof T->rsus[0], "%s", m->rsu_name);
    }
    if (T->n == T->cap) {
        T->cap = T->cap ? T->cap * 2 : 65536;
        T->t = realloc(T->t, sizeof *T->t * T->cap);
        assert_non_null(T->t);
    }
    /* the minute of the message's own timestamp, as a collector windows it */
    T->t[T->n++] = (tup){r, m->timestamp_ms - m->timestamp_ms % 60000, m->id, m->type};
}

/* Every BSM and PSM sent over /ws/bsm and /ws/psm for several simulated minutes of a
 * 10-intersection rush hour, recounted per intersection-minute (messages by their own
 * `timestamp`, distinct temporary ids), equals /sim/truth exactly, in both directions:
 * no minute of the truth without its messages, no message in a minute the truth lacks. */
static void test_truth_exact(void **state)
{
    (void)state;
    sim_t s;
    const char *extra[] = {"--intersections", "10", "--speed", "20", "--seed", "3", NULL};
    sim_start(&s, extra);
    char *tok = sim_token(&s);
    char *kb = sim_key(&s, tok, "bsm"), *kp = sim_key(&s, tok, "psm");
    capture cb, cp;
    capture_init(&cb, "%s/ws/bsm?key=%s", s.ws, kb);
    capture_init(&cp, "%s/ws/psm?key=%s", s.ws, kp);
    capture_run2(&cb, &cp, 20000);
    int64_t b0, b1, p0, p1;
    coverage(&cb, &b0, &b1);
    coverage(&cp, &p0, &p1);
    /* one frame per 500 ms tick, none lost: every non-empty frame at its place */
    for (int k = 0; k < 2; k++) {
        capture *c = k ? &cp : &cb;
        int64_t f0 = k ? p0 : b0;
        int lost = 0;
        for (size_t i = 0; i < c->n; i++) {
            int64_t t = frame_tick(c->frames[i]);
            if (t >= 0 && t != f0 + (int64_t)i * 500 && lost++ < 5)
                print_error("%s frame %zu: tick %lld, expected %lld\n", k ? "psm" : "bsm", i,
                            (long long)t, (long long)(f0 + (int64_t)i * 500));
        }
        assert_int_equal(lost, 0);
    }
    assert_true(b0 > 0 && p0 > 0);
    int64_t lo = b0 > p0 ? b0 : p0, hi = b1 < p1 ? b1 : p1;
    /* complete minutes: a message of minute M is generated at a tick in (M - 120 ms, M + 60 s) */
    int64_t m_first = (lo + 120) % 60000 ? (lo + 120) - (lo + 120) % 60000 + 60000 : lo + 120;
    int64_t m_end = (hi + 500) - (hi + 500) % 60000;
    assert_true(m_end - m_first >= 120000);
    tups T = {0};
    decode_captures(&cb, &cp, tup_cb, &T);
    qsort(T.t, T.n, sizeof *T.t, cmp_tup);
    truth_min *tr = calloc(1024, sizeof *tr);
    int nt = read_truth(&s, m_first, m_end, tr, 1024);
    int64_t tot_bsm = 0, tot_veh = 0, groups = 0;
    int bad = 0;
    /* captured groups: (rsu, minute) */
    for (size_t i = 0; i < T.n;) {
        size_t j = i;
        int64_t bsm = 0, psm = 0, veh = 0, vru = 0;
        for (; j < T.n && T.t[j].rsu == T.t[i].rsu && T.t[j].minute == T.t[i].minute; j++) {
            bool first = j == i || T.t[j].type != T.t[j - 1].type || T.t[j].id != T.t[j - 1].id;
            if (T.t[j].type == TSI_MSG_BSM) {
                bsm++;
                veh += first;
            } else {
                psm++;
                vru += first;
            }
        }
        int64_t minute = T.t[i].minute;
        if (minute >= m_first && minute < m_end) {
            const truth_min *t = NULL;
            for (int q = 0; q < nt; q++)
                if (tr[q].minute == minute && strcmp(tr[q].rsu, T.rsus[T.t[i].rsu]) == 0)
                    t = &tr[q];
            if (!t || t->bsm != bsm || t->psm != psm || t->vehicles != veh || t->vrus != vru) {
                print_error("%s minute %lld: sent bsm=%lld psm=%lld vehicles=%lld vrus=%lld; "
                            "truth %lld %lld %lld %lld\n",
                            T.rsus[T.t[i].rsu], (long long)minute, (long long)bsm, (long long)psm,
                            (long long)veh, (long long)vru, t ? (long long)t->bsm : -1,
                            t ? (long long)t->psm : -1, t ? (long long)t->vehicles : -1,
                            t ? (long long)t->vrus : -1);
                bad++;
            }
            tot_bsm += bsm;
            tot_veh += veh;
            groups++;
        }
        i = j;
    }
    /* and no minute of the truth without what was sent */
    for (int q = 0; q < nt; q++) {
        if (tr[q].minute < m_first || tr[q].minute >= m_end)
            continue;
        bool seen = false;
        for (size_t i = 0; i < T.n && !seen; i++)
            seen = T.t[i].minute == tr[q].minute && strcmp(T.rsus[T.t[i].rsu], tr[q].rsu) == 0;
        if (!seen) {
            print_error("%s minute %lld: in the truth (bsm=%lld), nothing sent\n", tr[q].rsu,
                        (long long)tr[q].minute, (long long)tr[q].bsm);
            bad++;
        }
    }
    print_message("truth exact: %lld intersection-minutes, %lld BSM, %lld vehicle-minutes\n",
                  (long long)groups, (long long)tot_bsm, (long long)tot_veh);
    assert_int_equal(bad, 0);
    assert_true(groups >= 20);
    free(T.t);
    free(tr);
    capture_free(&cb);
    capture_free(&cp);
    free(kb);
    free(kp);
    free(tok);
    assert_int_equal(th_proc_stop(&s.proc), 0);
}

/* ---- faults ---- */

typedef struct dup_ctx {
    int good, bad;
    int64_t keys[4096];
    int counts[4096];
    int n;
} dup_ctx;

static void dup_cb(void *ud, int index, const tsi_msg *m, int rc, const tsi_error *err)
{
    (void)index;
    (void)err;
    dup_ctx *c = ud;
    if (rc < 0) {
        c->bad++;
        return;
    }
    c->good++;
    int64_t k = m->id * 1000003 + m->msg_cnt * 65536 + m->sec_mark + m->timestamp_ms / 100;
    for (int i = 0; i < c->n; i++)
        if (c->keys[i] == k) {
            c->counts[i]++;
            return;
        }
    if (c->n < 4096) {
        c->keys[c->n] = k;
        c->counts[c->n++] = 1;
    }
}

static void set_faults(sim_t *s, const char *json)
{
    char *body = NULL;
    int st = sim_post(s, "/sim/faults", json, &body);
    if (st != 200)
        fail_msg("POST /sim/faults %s -> %d %s", json, st, body ? body : "");
    free(body);
}

static void test_faults(void **state)
{
    (void)state;
    sim_t s;
    const char *extra[] = {"--intersections", "2", "--speed", "10", "--demand", "0.5", NULL};
    sim_start(&s, extra);
    char *tok = sim_token(&s), *body = NULL;
    const char *reset = "{\"http_error_rate\":0,\"slow_ms\":0,\"drop_rate\":0,"
                        "\"duplicate_rate\":0,\"malformed_rate\":0,\"token_lifetime_s\":0}";

    /* hostile fault bodies are refused and change nothing */
    const char *bad[] = {"{\"http_error_rate\":2}",
                         "{\"nope\":1}",
                         "not json",
                         "{\"slow_ms\":\"x\"}",
                         "{\"slow_ms\":1.5}",
                         "[1]",
                         "{\"drop_rate\":-0.1}",
                         "{\"slow_ms\":1e9}",
                         "{\"drop_rate\":0.5,",
                         "{\"mapdata_withdrawn\":-1}",
                         "{\"mapdata_withdrawn\":1.5}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sim_post(&s, "/sim/faults", bad[i], NULL), 400);
    assert_int_equal(sim_get(&s, "/sim/faults", NULL, &body), 200);
    assert_string_equal(body, "{\"http_error_rate\":0,\"slow_ms\":0,\"slow_rate\":1,"
                              "\"drop_rate\":0,\"duplicate_rate\":0,\"malformed_rate\":0,"
                              "\"token_lifetime_s\":0,\"mapdata_withdrawn\":0}");
    free(body);

    /* HTTP 500/503 on every /api request; the control endpoints keep answering */
    set_faults(&s, "{\"http_error_rate\":1}");
    int n500 = 0, n503 = 0;
    for (int i = 0; i < 16; i++) {
        int st = sim_get(&s, "/api/bsm/current", tok, NULL);
        assert_true(st == 500 || st == 503);
        n500 += st == 500;
        n503 += st == 503;
    }
    assert_true(n500 > 0 && n503 > 0);
    assert_int_equal(sim_get(&s, "/sim/status", NULL, NULL), 200);
    set_faults(&s, "{\"http_error_rate\":0.5}");
    int fails = 0;
    for (int i = 0; i < 40; i++)
        fails += sim_get(&s, "/api/bsm/current", tok, NULL) != 200;
    assert_true(fails >= 8 && fails <= 32); /* binomial(40, 0.5): far outside 4 sigma */
    set_faults(&s, reset);
    assert_int_equal(sim_get(&s, "/api/bsm/current", tok, NULL), 200);

    /* slow responses */
    set_faults(&s, "{\"slow_ms\":700}");
    char url[160];
    snprintf(url, sizeof url, "%s/api/psm/current", s.base);
    char h[1100];
    snprintf(h, sizeof h, "Authorization: Bearer %s", tok);
    const char *hdr[] = {h, NULL};
    double ms = 0;
    assert_int_equal(th_http("GET", url, hdr, NULL, NULL, &ms), 200);
    assert_true(ms >= 690);
    set_faults(&s, reset);
    assert_int_equal(th_http("GET", url, hdr, NULL, NULL, &ms), 200);
    assert_true(ms < 690);

    /* short token lifetime */
    set_faults(&s, "{\"token_lifetime_s\":1}");
    snprintf(url, sizeof url, "%s/api/auth/client", s.base);
    assert_int_equal(
        th_http("POST", url, NULL, "client_id=tsi-sim&client_secret=tsi-sim-secret", &body, NULL),
        200);
    assert_non_null(strstr(body, "\"expires_in\":1,"));
    tsi_json d;
    json_doc(&d, body);
    char shortlived[1024];
    tsi_json_str(&d, tsi_json_get(&d, 0, "access_token"), shortlived, sizeof shortlived);
    tsi_json_free(&d);
    free(body);
    assert_int_equal(sim_get(&s, "/api/bsm/key", shortlived, NULL), 200);
    usleep(1300000);
    assert_int_equal(sim_get(&s, "/api/bsm/key", shortlived, NULL), 401);
    set_faults(&s, reset);

    /* duplicated messages: every message twice */
    set_faults(&s, "{\"duplicate_rate\":1}");
    usleep(200000);
    char *key = sim_key(&s, tok, "bsm");
    capture c;
    capture_init(&c, "%s/ws/bsm?key=%s", s.ws, key);
    capture_run(&c, 800, false);
    set_faults(&s, reset);
    tsi_decoder dec;
    tsi_decoder_init(&dec);
    tsi_error e = {0};
    static dup_ctx dc;
    memset(&dc, 0, sizeof dc);
    /* skip the first frames: they may predate the switch */
    for (size_t i = 2; i + 2 < c.n; i++)
        assert_true(tsi_frame_decode(&dec, c.frames[i], strlen(c.frames[i]), dup_cb, &dc, &e) >= 0);
    assert_true(dc.n > 10);
    for (int i = 0; i < dc.n; i++)
        assert_int_equal(dc.counts[i], 2);
    capture_free(&c);
    free(key);
    /* the truth counts them */
    assert_int_equal(sim_get(&s, "/sim/truth", NULL, &body), 200);
    assert_non_null(strstr(body, "\"duplicates\":"));
    int64_t dups = 0;
    json_doc(&d, body);
    int mins = tsi_json_get(&d, 0, "minutes");
    for (int i = tsi_json_first(&d, mins); i >= 0; i = tsi_json_next(&d, mins, i)) {
        int64_t v = 0;
        tsi_json_int64(&d, tsi_json_get(&d, i, "duplicates"), &v);
        dups += v;
    }
    tsi_json_free(&d);
    free(body);
    assert_true(dups >= dc.n);

    /* malformed messages: each good message followed by a malformed one */
    set_faults(&s, "{\"malformed_rate\":1}");
    usleep(200000);
    key = sim_key(&s, tok, "bsm");
    capture_init(&c, "%s/ws/bsm?key=%s", s.ws, key);
    capture_run(&c, 800, false);
    set_faults(&s, reset);
    memset(&dc, 0, sizeof dc);
    for (size_t i = 2; i + 2 < c.n; i++)
        assert_true(tsi_frame_decode(&dec, c.frames[i], strlen(c.frames[i]), dup_cb, &dc, &e) >= 0);
    assert_true(dc.good > 10);
    assert_int_equal(dc.bad, dc.good);
    capture_free(&c);
    free(key);

    /* dropped sockets: the server closes after every frame; the client reconnects */
    set_faults(&s, "{\"drop_rate\":1}");
    capture_init(&c, "unused");
    c.sim = &s;
    c.tok = tok;
    c.kind = "psm";
    capture_run(&c, 2000, true);
    set_faults(&s, reset);
    print_message("drop: %d connections, %d closes, %zu frames\n", c.connected, c.closed, c.n);
    assert_true(c.connected >= 3);
    assert_true(c.closed >= c.connected - 1);
    assert_true((int)c.n <= c.connected);
    capture_free(&c);
    tsi_decoder_free(&dec);
    free(tok);
    assert_int_equal(th_proc_stop(&s.proc), 0);

    /* the same switches as flags */
    const char *flags[] = {"--intersections",
                           "1",
                           "--duplicate-rate",
                           "0.25",
                           "--slow-ms",
                           "50",
                           "--http-error-rate",
                           "0.1",
                           NULL};
    sim_start(&s, flags);
    assert_int_equal(sim_get(&s, "/sim/faults", NULL, &body), 200);
    assert_string_equal(body, "{\"http_error_rate\":0.1,\"slow_ms\":50,\"slow_rate\":1,"
                              "\"drop_rate\":0,\"duplicate_rate\":0.25,\"malformed_rate\":0,"
                              "\"token_lifetime_s\":0,\"mapdata_withdrawn\":0}");
    free(body);
    assert_int_equal(th_proc_stop(&s.proc), 0);
}

/* Tokens and keys expire on the wall clock (--auth-lifetime, --key-lifetime). */
static void test_expiry(void **state)
{
    (void)state;
    sim_t s;
    const char *extra[] = {
        "--intersections", "1", "--auth-lifetime", "2", "--key-lifetime", "1", NULL};
    sim_start(&s, extra);
    char *tok = sim_token(&s);
    char *key = sim_key(&s, tok, "bsm");
    usleep(1300000);
    capture c;
    capture_init(&c, "%s/ws/bsm?key=%s", s.ws, key); /* the key is 1.3 s old */
    capture_run(&c, 500, false);
    assert_int_equal(c.connected, 0);
    capture_free(&c);
    assert_int_equal(sim_get(&s, "/api/bsm/current", tok, NULL), 200);
    usleep(3000000);
    assert_int_equal(sim_get(&s, "/api/bsm/current", tok, NULL), 401); /* over 4 s old */
    free(key);
    free(tok);
    assert_int_equal(th_proc_stop(&s.proc), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism), cmocka_unit_test(test_truth),
        cmocka_unit_test(test_truth_exact), cmocka_unit_test(test_faults),
        cmocka_unit_test(test_expiry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
