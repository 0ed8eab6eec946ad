/* core/engine.c — see engine.h */
#include "base/xalloc.h"
#include "core/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MINUTE_MS 60000LL

void tsi_feature_config_default(tsi_feature_config *c)
{
    c->grace_ms = 10000;
    c->hard_brake_accel = -3.0;
    c->hard_brake_drop = 3.0;
    c->vru_ttc_s = 3.0;
    c->vru_dist_m = 5.0;
    c->veh_ttc_s = 1.5;
    c->veh_dist_m = 2.0;
    c->align_s = 1.0;
    c->default_length_m = 4.8;
    c->vru_radius_m = 0.5;
    c->same_position_m = 0.1;
    c->max_skew_ms = 120000;
}

int64_t tsi_median_ms(int64_t *ts, int n)
{
    /* quickselect of the lower middle element */
    int k = (n - 1) / 2, lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t pivot = ts[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (ts[i] < pivot)
                i++;
            while (ts[j] > pivot)
                j--;
            if (i <= j) {
                int64_t t = ts[i];
                ts[i++] = ts[j];
                ts[j--] = t;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return ts[k];
}

int64_t tsi_minute_of(int64_t ts)
{
    int64_t m = ts / MINUTE_MS;
    if (ts % MINUTE_MS < 0)
        m--;
    return m * MINUTE_MS;
}

double tsi_ttc(double px, double py, double vx, double vy, double r)
{
    double pv = px * vx + py * vy;
    if (!(pv < 0)) /* separating, parallel, or NAN */
        return NAN;
    double c = px * px + py * py - r * r;
    if (c <= 0)
        return 0;
    double a = vx * vx + vy * vy;
    double disc = pv * pv - a * c;
    if (disc < 0 || a <= 0)
        return NAN;
    double t = (-pv - sqrt(disc)) / a;
    return t >= 0 ? t : NAN;
}

/* One accepted message of a road user. The dedupe key is (type, id) — the track — plus
 * msgCnt, secMark and the timestamp in 100 ms units relative to the window's minute:
 * repeats are found by scanning the track's own samples (contiguous, newest first), which
 * costs less than a per-window hash set that every message would miss in cache. */
typedef struct sample {
    int64_t t;
    double x, y;   /* local metres */
    double vx, vy; /* m/s, NAN when speed or heading unknown */
    double speed, accel;
    int32_t ts100;
    uint16_t sec_mark;
    int8_t msg_cnt;
} sample;

typedef struct track {
    int64_t id;
    int type; /* TSI_MSG_* */
    bool person;
    double length; /* m, NAN unknown (last known value) */
    int n, cap;
    sample *s;
    int32_t ts100_max; /* the largest ts100 of s[0..n): a newer sample needs no dedupe scan */
    /* computed when the window closes, for pruning pairs */
    double minx, maxx, miny, maxy, vmax;
} track;

typedef struct tslot {
    int64_t key;
    int idx; /* track index + 1, 0 = empty */
} tslot;

typedef struct window {
    int64_t isect_id, minute;
    tsi_ltp ltp;
    track *tracks;
    int ntracks, tcap;
    tslot *tmap; /* track key → index: a slot's key and index share a cache line */
    size_t tmap_cap;
    int duplicates;
    struct window *next; /* in its minute bucket, or in the free pool */
} window;

typedef struct bucket {
    int64_t minute;
    window *head;
    int count;
} bucket;

struct tsi_engine {
    tsi_feature_config cfg;
    tsi_registry *reg;
    tsi_window_cb cb;
    void *ud;
    int64_t clock;
    bool clock_set;
    /* (isect, minute) → window, linear probing with backward-shift deletion */
    window **wtab;
    size_t wcap, wused;
    bucket *buckets; /* sorted by minute */
    int nb, bcap;
    window *pool;
    int npool;
    window *last; /* the window the previous push went to (a frame is one intersection) */
    tsi_engine_stats st;
    /* scratch for closing */
    tsi_conflict *conf;
    int nconf, confcap;
    window **sortbuf;
    int sortcap;
};

tsi_engine *tsi_engine_new(const tsi_feature_config *cfg, tsi_registry *reg, tsi_window_cb cb,
                           void *ud)
{
    tsi_engine *e = tsi_xmalloc(sizeof *e);
    memset(e, 0, sizeof *e);
    if (cfg)
        e->cfg = *cfg;
    else
        tsi_feature_config_default(&e->cfg);
    e->reg = reg;
    e->cb = cb;
    e->ud = ud;
    e->wcap = 1024;
    e->wtab = tsi_xmalloc(e->wcap * sizeof *e->wtab);
    memset(e->wtab, 0, e->wcap * sizeof *e->wtab);
    return e;
}

static void window_release(window *w)
{
    for (int i = 0; i < w->tcap; i++)
        free(w->tracks[i].s);
    free(w->tracks);
    free(w->tmap);
    free(w);
}

void tsi_engine_free(tsi_engine *e)
{
    if (e == NULL)
        return;
    for (int b = 0; b < e->nb; b++) {
        window *w = e->buckets[b].head;
        while (w) {
            window *nx = w->next;
            window_release(w);
            w = nx;
        }
    }
    while (e->pool) {
        window *nx = e->pool->next;
        window_release(e->pool);
        e->pool = nx;
    }
    free(e->buckets);
    free(e->wtab);
    free(e->conf);
    free(e->sortbuf);
    free(e);
}

static size_t wslot(const tsi_engine *e, int64_t isect, int64_t minute)
{
    return tsi_hash_mix64((uint64_t)isect * 0x9E3779B97F4A7C15ull ^ (uint64_t)minute) &
           (e->wcap - 1);
}

static window *wfind(const tsi_engine *e, int64_t isect, int64_t minute)
{
    size_t i = wslot(e, isect, minute);
    for (window *w; (w = e->wtab[i]) != NULL; i = (i + 1) & (e->wcap - 1))
        if (w->isect_id == isect && w->minute == minute)
            return w;
    return NULL;
}

static void winsert_raw(tsi_engine *e, window *w)
{
    size_t i = wslot(e, w->isect_id, w->minute);
    while (e->wtab[i])
        i = (i + 1) & (e->wcap - 1);
    e->wtab[i] = w;
}

static void winsert(tsi_engine *e, window *w)
{
    if ((e->wused + 1) * 2 > e->wcap) {
        window **old = e->wtab;
        size_t oldcap = e->wcap;
        e->wcap *= 2;
        e->wtab = tsi_xmalloc(e->wcap * sizeof *e->wtab);
        memset(e->wtab, 0, e->wcap * sizeof *e->wtab);
        for (size_t i = 0; i < oldcap; i++)
            if (old[i])
                winsert_raw(e, old[i]);
        free(old);
    }
    winsert_raw(e, w);
    e->wused++;
}

static void wdelete(tsi_engine *e, window *w)
{
    if (e->last == w)
        e->last = NULL;
    size_t i = wslot(e, w->isect_id, w->minute);
    while (e->wtab[i] != w)
        i = (i + 1) & (e->wcap - 1);
    e->wtab[i] = NULL;
    /* backward-shift: re-place the rest of the cluster */
    for (size_t j = (i + 1) & (e->wcap - 1); e->wtab[j]; j = (j + 1) & (e->wcap - 1)) {
        window *x = e->wtab[j];
        e->wtab[j] = NULL;
        winsert_raw(e, x);
    }
    e->wused--;
}

static window *window_new(tsi_engine *e, const tsi_isect *isect, int64_t minute)
{
    window *w = e->pool;
    if (w) {
        e->pool = w->next;
        e->npool--;
    } else {
        w = tsi_xmalloc(sizeof *w);
        memset(w, 0, sizeof *w);
    }
    w->isect_id = isect->id;
    w->minute = minute;
    w->ltp = isect->ltp;
    w->ntracks = 0;
    w->duplicates = 0;
    if (w->tmap_cap)
        memset(w->tmap, 0, w->tmap_cap * sizeof *w->tmap);
    w->next = NULL;
    winsert(e, w);
    /* its minute bucket */
    int b = 0;
    while (b < e->nb && e->buckets[b].minute < minute)
        b++;
    if (b == e->nb || e->buckets[b].minute != minute) {
        if (e->nb == e->bcap) {
            e->bcap = e->bcap ? e->bcap * 2 : 8;
            e->buckets = tsi_xrealloc(e->buckets, (size_t)e->bcap * sizeof *e->buckets);
        }
        memmove(&e->buckets[b + 1], &e->buckets[b], (size_t)(e->nb - b) * sizeof *e->buckets);
        e->buckets[b].minute = minute;
        e->buckets[b].head = NULL;
        e->buckets[b].count = 0;
        e->nb++;
    }
    w->next = e->buckets[b].head;
    e->buckets[b].head = w;
    e->buckets[b].count++;
    e->st.open_windows++;
    return w;
}

/* Keeps a bounded pool of cleared windows (their arrays stay allocated). */
static void window_recycle(tsi_engine *e, window *w)
{
    if (e->npool >= 4096 || w->tcap > 1024) {
        window_release(w);
        return;
    }
    /* sample arrays go back to malloc: kept with the slots, every slot would ratchet up
     * to the largest track it ever held and RSS would creep minute after minute */
    for (int i = 0; i < w->tcap; i++) {
        free(w->tracks[i].s);
        w->tracks[i].s = NULL;
        w->tracks[i].cap = 0;
        w->tracks[i].n = 0;
    }
    w->next = e->pool;
    e->pool = w;
    e->npool++;
}

static track *track_get(window *w, const tsi_msg *m)
{
    int64_t key = m->id * 2 + (m->type == TSI_MSG_PSM);
    if ((size_t)(w->ntracks + 1) * 2 > w->tmap_cap) {
        size_t cap = w->tmap_cap ? w->tmap_cap * 2 : 64;
        free(w->tmap);
        w->tmap = tsi_xmalloc(cap * sizeof *w->tmap);
        memset(w->tmap, 0, cap * sizeof *w->tmap);
        w->tmap_cap = cap;
        for (int t = 0; t < w->ntracks; t++) {
            int64_t k2 = w->tracks[t].id * 2 + (w->tracks[t].type == TSI_MSG_PSM);
            size_t j = tsi_hash_mix64((uint64_t)k2) & (cap - 1);
            while (w->tmap[j].idx)
                j = (j + 1) & (cap - 1);
            w->tmap[j].idx = t + 1;
            w->tmap[j].key = k2;
        }
    }
    size_t j = tsi_hash_mix64((uint64_t)key) & (w->tmap_cap - 1);
    for (; w->tmap[j].idx; j = (j + 1) & (w->tmap_cap - 1))
        if (w->tmap[j].key == key)
            return &w->tracks[w->tmap[j].idx - 1];
    if (w->ntracks == w->tcap) {
        int cap = w->tcap ? w->tcap * 2 : 32;
        w->tracks = tsi_xrealloc(w->tracks, (size_t)cap * sizeof *w->tracks);
        for (int t = w->tcap; t < cap; t++) {
            w->tracks[t].s = NULL;
            w->tracks[t].cap = 0;
        }
        w->tcap = cap;
    }
    track *t = &w->tracks[w->ntracks];
    t->id = m->id;
    t->type = m->type;
    t->person = tsi_msg_is_vru_person(m);
    t->length = NAN;
    t->n = 0;
    w->tmap[j].idx = ++w->ntracks;
    w->tmap[j].key = key;
    return t;
}

static void add_sample(window *w, track *t, const tsi_msg *m, int32_t ts100)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->s = tsi_xrealloc(t->s, (size_t)t->cap * sizeof *t->s);
    }
    if (t->n == 0 || ts100 > t->ts100_max)
        t->ts100_max = ts100;
    sample *s = &t->s[t->n++];
    s->t = m->timestamp_ms;
    s->ts100 = ts100;
    s->sec_mark = (uint16_t)m->sec_mark;
    s->msg_cnt = (int8_t)m->msg_cnt;
    tsi_ltp_to_xy(&w->ltp, m->lat, m->lon, &s->x, &s->y);
    s->speed = m->speed;
    s->accel = m->accel_lon;
    if (isfinite(m->speed) && isfinite(m->heading))
        tsi_geo_velocity(m->speed, m->heading, &s->vx, &s->vy);
    else
        s->vx = s->vy = NAN;
    if (isfinite(m->length_m))
        t->length = m->length_m;
}

static void sort_samples(track *t)
{
    for (int i = 1; i < t->n; i++) {
        if (t->s[i].t >= t->s[i - 1].t)
            continue;
        sample v = t->s[i];
        int j = i;
        while (j > 0 && t->s[j - 1].t > v.t) {
            t->s[j] = t->s[j - 1];
            j--;
        }
        t->s[j] = v;
    }
}

static bool hard_braking(const tsi_feature_config *c, const track *t)
{
    for (int i = 0; i < t->n; i++) {
        const sample *s = &t->s[i];
        if (isfinite(s->accel)) {
            if (s->accel <= c->hard_brake_accel)
                return true;
            continue;
        }
        /* acceleration unavailable: the speed drop from the previous message */
        if (i == 0)
            continue;
        const sample *p = &t->s[i - 1];
        double dt = (double)(s->t - p->t) / 1000.0;
        if (dt > 0 && isfinite(s->speed) && isfinite(p->speed) &&
            (p->speed - s->speed) / dt >= c->hard_brake_drop)
            return true;
    }
    return false;
}

typedef struct pair_eval {
    double min_ttc, min_d;
    int64_t at_ttc, at_d;
} pair_eval;

/* Aligns the samples of a and b and returns min TTC / min distance (NAN / INFINITY when
 * none). */
static void eval_pair(const tsi_feature_config *c, const track *a, const track *b, double r,
                      bool vehicles, pair_eval *pe)
{
    pe->min_ttc = NAN;
    pe->min_d = INFINITY;
    pe->at_ttc = pe->at_d = 0;
    int64_t align = (int64_t)llround(c->align_s * 1000.0);
    double min_d2 = INFINITY;
    double same_hi = c->same_position_m * c->same_position_m * (1 + 1e-6) + 1e-300;
    int j = 0;
    for (int i = 0; i < a->n; i++) {
        const sample *sa = &a->s[i];
        while (j + 1 < b->n && llabs(b->s[j + 1].t - sa->t) <= llabs(b->s[j].t - sa->t))
            j++;
        const sample *sb = &b->s[j];
        int64_t dtm = sb->t - sa->t;
        if (llabs(dtm) > align)
            continue;
        double dt = (double)dtm / 1000.0;
        double ax = sa->x, ay = sa->y, bx = sb->x, by = sb->y;
        /* extrapolate the earlier sample to the later time */
        if (dt > 0 && isfinite(sa->vx)) {
            ax += sa->vx * dt;
            ay += sa->vy * dt;
        } else if (dt < 0 && isfinite(sb->vx)) {
            bx += sb->vx * -dt;
            by += sb->vy * -dt;
        }
        double px = bx - ax, py = by - ay;
        double d2 = px * px + py * py;
        /* the distance's square root only where it decides something: sqrt is monotonic, so
         * d2 >= min_d2 (the square min_d came from) means d >= min_d, and d < same_position
         * needs d2 below a bound a little above its square; every comparison that decides
         * is then made on d itself, as it always was */
        if (vehicles && d2 < same_hi && sqrt(d2) < c->same_position_m)
            continue; /* the same vehicle under two ids */
        int64_t at = dtm > 0 ? sb->t : sa->t;
        if (d2 < min_d2) {
            double d = sqrt(d2);
            if (d < pe->min_d) {
                pe->min_d = d;
                pe->at_d = at;
                min_d2 = d2;
            }
        }
        if (isfinite(sa->vx) && isfinite(sb->vx)) {
            double ttc = tsi_ttc(px, py, sb->vx - sa->vx, sb->vy - sa->vy, r);
            if (isfinite(ttc) && !(ttc >= pe->min_ttc)) {
                pe->min_ttc = ttc;
                pe->at_ttc = at;
            }
        }
    }
}

static void add_conflict(tsi_engine *e, const window *w, int kind, int64_t a, int64_t b,
                         const pair_eval *pe)
{
    if (e->nconf == e->confcap) {
        e->confcap = e->confcap ? e->confcap * 2 : 64;
        e->conf = tsi_xrealloc(e->conf, (size_t)e->confcap * sizeof *e->conf);
    }
    tsi_conflict *cf = &e->conf[e->nconf++];
    cf->intersection_id = w->isect_id;
    cf->minute_ms = w->minute;
    cf->kind = kind;
    cf->id_a = a;
    cf->id_b = b;
    cf->min_ttc_s = pe->min_ttc;
    cf->min_distance_m = pe->min_d;
    cf->at_ms = isfinite(pe->min_ttc) ? pe->at_ttc : pe->at_d;
}

static double veh_length(const tsi_feature_config *c, const track *t)
{
    return isfinite(t->length) && t->length > 0 ? t->length : c->default_length_m;
}

/* False when no aligned sample of a and b can be a conflict: their times never come
 * within align_s, or their bounding boxes (grown by how far a sample can be
 * extrapolated) stay farther apart than the distance threshold and than what the pair
 * could close within the TTC threshold at their top speeds. */
static bool may_conflict(const tsi_feature_config *c, const track *a, const track *b, bool vehicles)
{
    int64_t align = (int64_t)llround(c->align_s * 1000.0);
    if (a->s[a->n - 1].t + align < b->s[0].t || b->s[b->n - 1].t + align < a->s[0].t)
        return false;
    double ga = a->vmax * c->align_s, gb = b->vmax * c->align_s;
    double dx = fmax(0, fmax(a->minx - ga - (b->maxx + gb), b->minx - gb - (a->maxx + ga)));
    double dy = fmax(0, fmax(a->miny - ga - (b->maxy + gb), b->miny - gb - (a->maxy + ga)));
    double gap = sqrt(dx * dx + dy * dy);
    double r, dist, ttc;
    if (vehicles) {
        r = (veh_length(c, a) + veh_length(c, b)) / 2;
        dist = c->veh_dist_m;
        ttc = c->veh_ttc_s;
    } else {
        r = veh_length(c, a) / 2 + c->vru_radius_m;
        dist = c->vru_dist_m;
        ttc = c->vru_ttc_s;
    }
    double reach = fmax(dist, r + (a->vmax + b->vmax) * ttc);
    return gap <= reach + 1e-6;
}

static void close_window(tsi_engine *e, window *w)
{
    const tsi_feature_config *c = &e->cfg;
    tsi_features f;
    memset(&f, 0, sizeof f);
    f.intersection_id = w->isect_id;
    f.minute_ms = w->minute;
    e->nconf = 0;

    double sum_means = 0, mean = 0, m2 = 0;
    long nveh_speed = 0, nspeeds = 0;
    for (int i = 0; i < w->ntracks; i++) {
        track *t = &w->tracks[i];
        sort_samples(t);
        t->minx = t->miny = INFINITY;
        t->maxx = t->maxy = -INFINITY;
        t->vmax = 0;
        for (int j = 0; j < t->n; j++) {
            const sample *sp = &t->s[j];
            t->minx = fmin(t->minx, sp->x);
            t->maxx = fmax(t->maxx, sp->x);
            t->miny = fmin(t->miny, sp->y);
            t->maxy = fmax(t->maxy, sp->y);
            if (isfinite(sp->vx) && sp->speed > t->vmax)
                t->vmax = sp->speed;
        }
        if (t->type == TSI_MSG_PSM) {
            f.vru_count++;
            f.psm_messages += t->n;
            continue;
        }
        f.traffic_volume++;
        f.bsm_messages += t->n;
        double s = 0;
        int k = 0;
        for (int j = 0; j < t->n; j++) {
            double v = t->s[j].speed;
            if (!isfinite(v))
                continue;
            s += v;
            k++;
            nspeeds++;
            double dlt = v - mean;
            mean += dlt / (double)nspeeds;
            m2 += dlt * (v - mean);
        }
        if (k) {
            sum_means += s / k;
            nveh_speed++;
        }
        if (hard_braking(c, t))
            f.hard_braking_count++;
    }
    f.avg_speed = nveh_speed ? sum_means / (double)nveh_speed : 0;
    f.speed_stddev = nspeeds >= 2 ? sqrt(m2 / (double)(nspeeds - 1)) : 0;

    /* conflicts: each unordered pair of distinct road users at most once */
    for (int i = 0; i < w->ntracks; i++) {
        const track *a = &w->tracks[i];
        if (a->type != TSI_MSG_BSM)
            continue;
        for (int j = 0; j < w->ntracks; j++) {
            const track *b = &w->tracks[j];
            pair_eval pe;
            if ((b->type == TSI_MSG_BSM && j <= i) || (b->type == TSI_MSG_PSM && !b->person))
                continue;
            if (!may_conflict(c, a, b, b->type == TSI_MSG_BSM))
                continue;
            if (b->type == TSI_MSG_BSM) {
                double r = (veh_length(c, a) + veh_length(c, b)) / 2;
                eval_pair(c, a, b, r, true, &pe);
                if (pe.min_ttc <= c->veh_ttc_s || pe.min_d < c->veh_dist_m) {
                    f.vehicle_event_count++;
                    add_conflict(e, w, TSI_CONFLICT_VEHICLE, a->id < b->id ? a->id : b->id,
                                 a->id < b->id ? b->id : a->id, &pe);
                }
            } else if (b->person) {
                double r = veh_length(c, a) / 2 + c->vru_radius_m;
                eval_pair(c, a, b, r, false, &pe);
                if (pe.min_ttc <= c->vru_ttc_s || pe.min_d < c->vru_dist_m) {
                    f.vru_event_count++;
                    add_conflict(e, w, TSI_CONFLICT_VRU, a->id, b->id, &pe);
                }
            }
        }
    }

    e->st.windows_closed++;
    e->st.open_windows--;
    if (e->cb) {
        tsi_window_result r;
        r.features = f;
        r.conflicts = e->conf;
        r.nconflicts = e->nconf;
        r.duplicates = w->duplicates;
        e->cb(e->ud, &r);
    }
}

static int cmp_window(const void *x, const void *y)
{
    const window *a = *(window *const *)x, *b = *(window *const *)y;
    return (a->isect_id > b->isect_id) - (a->isect_id < b->isect_id);
}

/* Closes the first bucket: its windows in intersection-id order. */
static void close_bucket(tsi_engine *e)
{
    bucket bk = e->buckets[0];
    memmove(&e->buckets[0], &e->buckets[1], (size_t)(e->nb - 1) * sizeof *e->buckets);
    e->nb--;
    if (bk.count > e->sortcap) {
        e->sortcap = bk.count * 2;
        e->sortbuf = tsi_xrealloc(e->sortbuf, (size_t)e->sortcap * sizeof *e->sortbuf);
    }
    int n = 0;
    for (window *w = bk.head; w; w = w->next)
        e->sortbuf[n++] = w;
    qsort(e->sortbuf, (size_t)n, sizeof *e->sortbuf, cmp_window);
    for (int i = 0; i < n; i++) {
        window *w = e->sortbuf[i];
        wdelete(e, w);
        close_window(e, w);
        window_recycle(e, w);
    }
}

static void close_due(tsi_engine *e)
{
    while (e->nb > 0 && e->buckets[0].minute + MINUTE_MS + e->cfg.grace_ms < e->clock)
        close_bucket(e);
}

void tsi_engine_advance(tsi_engine *e, int64_t clock_ms)
{
    if (!e->clock_set || clock_ms > e->clock) {
        e->clock = clock_ms;
        e->clock_set = true;
    }
    close_due(e);
}

void tsi_engine_flush(tsi_engine *e)
{
    while (e->nb > 0)
        close_bucket(e);
}

/* A push that moves to another window is usually the first of a frame of that
 * intersection's road users (one frame per intersection and half second): the memory its
 * next pushes will touch — the track map, the tracks and each track's next sample slot,
 * cold since the previous frame — is requested at once here, so the misses overlap
 * instead of coming one after another. */
static void prefetch_window(const window *w)
{
    const char *tm = (const char *)w->tmap;
    for (size_t b = 0; b < w->tmap_cap * sizeof *w->tmap; b += 64)
        __builtin_prefetch(tm + b, 0);
    int n = w->ntracks < 64 ? w->ntracks : 64;
    for (int i = 0; i < n; i++) {
        const track *t = &w->tracks[i];
        if (t->n < t->cap)
            __builtin_prefetch(&t->s[t->n], 1);
    }
}

int tsi_engine_push_at(tsi_engine *e, const tsi_isect *isect, const tsi_msg *m, tsi_push_info *info,
                       tsi_error *err)
{
    int64_t minute = tsi_minute_of(m->timestamp_ms);
    if (info) {
        info->intersection_id = isect->id;
        info->minute_ms = minute;
        info->offset_ms = 0;
    }
    if (e->clock_set && minute + MINUTE_MS + e->cfg.grace_ms < e->clock) {
        e->st.late++;
        return tsi_error_set(err, TSI_E_LATE, "message arrived after its window closed",
                             "timestamp %lld is %lld ms behind the stream clock (grace %lld ms)",
                             (long long)m->timestamp_ms, (long long)(e->clock - m->timestamp_ms),
                             (long long)e->cfg.grace_ms);
    }
    window *w = e->last;
    if (w == NULL || w->isect_id != isect->id || w->minute != minute) {
        w = wfind(e, isect->id, minute);
        if (w == NULL)
            w = window_new(e, isect, minute);
        e->last = w;
        prefetch_window(w);
    }
    int64_t ts = m->timestamp_ms;
    /* dedupe: timestamp rounded to 100 ms (minute is a multiple of 100 ms) */
    int32_t ts100 = (int32_t)((ts + 50 - minute) / 100);
    track *t = track_get(w, m);
    bool dup = false;
    /* a duplicate has the same ts100 as a sample already held: none when this one is newer
     * than all of them (the usual, in-order case: no scan of the minute's samples) */
    for (int j = t->n > 0 && ts100 <= t->ts100_max ? t->n - 1 : -1; j >= 0 && !dup; j--) {
        const sample *o = &t->s[j];
        dup = o->ts100 == ts100 && o->sec_mark == (uint16_t)m->sec_mark &&
              o->msg_cnt == (int8_t)m->msg_cnt;
    }
    if (dup) {
        w->duplicates++;
        e->st.duplicates++;
        return tsi_error_set(err, TSI_E_DUPLICATE, "message already received",
                             "%s id %lld msgCnt %d secMark %d timestamp %lld",
                             m->type == TSI_MSG_BSM ? "BSM" : "PSM", (long long)m->id, m->msg_cnt,
                             m->sec_mark, (long long)ts);
    }
    add_sample(w, t, m, ts100);
    e->st.accepted++;
    if (!e->clock_set || ts > e->clock) {
        e->clock = ts;
        e->clock_set = true;
        close_due(e);
    }
    return 0;
}

/* TSI_E_CLOCK_SKEW when ts lies too far from the reference clock (see engine.h) */
static int skew_check(tsi_engine *e, int64_t ts, int64_t ref, int64_t isect_id, tsi_push_info *info,
                      tsi_error *err)
{
    if (ref == TSI_CLOCK_NONE || e->cfg.max_skew_ms <= 0)
        return 0;
    int64_t past = e->cfg.max_skew_ms > MINUTE_MS + e->cfg.grace_ms ? e->cfg.max_skew_ms
                                                                    : MINUTE_MS + e->cfg.grace_ms;
    /* |ts| and |ref| are bounded by the decoder (2000..2100) and the caller's clock, but a
     * hostile ref must not overflow the subtraction */
    if ((ref > 0 && ts < INT64_MIN + ref) || (ref < 0 && ts > INT64_MAX + ref))
        return 0;
    int64_t off = ts - ref;
    if (off <= e->cfg.max_skew_ms && off >= -past)
        return 0;
    e->st.skewed++;
    if (info) {
        info->intersection_id = isect_id;
        info->minute_ms = tsi_minute_of(ts);
        info->offset_ms = off;
    }
    return tsi_error_set(err, TSI_E_CLOCK_SKEW, "message time far from the receiver's clock",
                         "timestamp %lld is %lld ms %s the reference %lld (allowed %lld ahead, "
                         "%lld behind)",
                         (long long)ts, (long long)(off < 0 ? -off : off),
                         off < 0 ? "behind" : "ahead of", (long long)ref,
                         (long long)e->cfg.max_skew_ms, (long long)past);
}

int tsi_engine_push(tsi_engine *e, const tsi_msg *m, tsi_push_info *info, tsi_error *err)
{
    return tsi_engine_push_ref(e, m, TSI_CLOCK_NONE, info, err);
}

int tsi_engine_push_ref(tsi_engine *e, const tsi_msg *m, int64_t ref_ms, tsi_push_info *info,
                        tsi_error *err)
{
    const tsi_isect *isect;
    int rc = tsi_registry_assign(e->reg, m, &isect, err);
    int sk = skew_check(e, m->timestamp_ms, ref_ms, rc < 0 ? -1 : isect->id, info, err);
    if (sk < 0)
        return sk;
    if (rc < 0) {
        e->st.unmatched++;
        if (info) {
            info->intersection_id = -1;
            info->minute_ms = tsi_minute_of(m->timestamp_ms);
            info->offset_ms = 0;
        }
        return rc;
    }
    return tsi_engine_push_at(e, isect, m, info, err);
}

void tsi_engine_get_stats(const tsi_engine *e, tsi_engine_stats *out)
{
    *out = e->st;
    out->clock_ms = e->clock;
}
