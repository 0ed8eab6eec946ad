/* core/index.c — see index.h */
#include "core/index.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonw.h"
#include "core/json.h"

const tsi_constants tsi_constants_default = {.I_vru_max = 8,
                                             .I_veh_max = 8,
                                             .V_max = 200,
                                             .sigma_max = 20,
                                             .S_ref = 40,
                                             .HB_max = 15,
                                             .k = 50};

static const struct {
    const char *key;
    size_t off;
} ckeys[] = {
    {"I_vru_max", offsetof(tsi_constants, I_vru_max)},
    {"I_veh_max", offsetof(tsi_constants, I_veh_max)},
    {"V_max", offsetof(tsi_constants, V_max)},
    {"sigma_max", offsetof(tsi_constants, sigma_max)},
    {"S_ref", offsetof(tsi_constants, S_ref)},
    {"HB_max", offsetof(tsi_constants, HB_max)},
};

int tsi_constants_from_json(const char *js, size_t len, tsi_constants *out, tsi_error *err)
{
    tsi_jtok toks[256];
    tsi_json d;
    int rc = tsi_json_parse(&d, js, len, toks, 256, err);
    if (rc < 0)
        return rc;
    if (!tsi_json_is_object(&d, 0))
        return tsi_error_set(err, TSI_E_NOT_OBJECT, "constants must be a JSON object", NULL);
    tsi_constants c = tsi_constants_default;
    for (size_t i = 0; i < sizeof ckeys / sizeof ckeys[0]; i++) {
        double v;
        int t = tsi_json_get(&d, 0, ckeys[i].key);
        rc = tsi_json_num(&d, t, &v);
        if (rc == TSI_E_MISSING)
            return tsi_error_set(err, rc, "normalisation constant missing", "%s", ckeys[i].key);
        if (rc == TSI_E_TYPE)
            return tsi_error_set(err, rc, "normalisation constant is not a number", "%s",
                                 ckeys[i].key);
        if (rc < 0 || !(v > 0))
            return tsi_error_set(err, TSI_E_RANGE, "normalisation constant must be > 0", "%s = %g",
                                 ckeys[i].key, rc < 0 ? NAN : v);
        *(double *)((char *)&c + ckeys[i].off) = v;
    }
    int kt = tsi_json_get(&d, 0, "k");
    if (kt >= 0 && !tsi_json_is_null(&d, kt)) {
        double k;
        rc = tsi_json_num(&d, kt, &k);
        if (rc < 0 || !(k >= 0))
            return tsi_error_set(err, rc < 0 && rc != TSI_E_RANGE ? rc : TSI_E_RANGE,
                                 "k must be a number >= 0", NULL);
        c.k = k;
    }
    *out = c;
    return 0;
}

void tsi_constants_to_json(const tsi_constants *c, tsi_buf *out)
{
    tsi_jsonw w;
    tsi_jsonw_init(&w, out);
    w.double_digits = 17;
    tsi_jsonw_object(&w);
    for (size_t i = 0; i < sizeof ckeys / sizeof ckeys[0]; i++)
        tsi_jsonw_kv_double(&w, ckeys[i].key, *(const double *)((const char *)c + ckeys[i].off));
    tsi_jsonw_kv_double(&w, "k", c->k);
    tsi_jsonw_end(&w);
}

void tsi_constants_acc_init(tsi_constants_acc *a)
{
    memset(a, 0, sizeof *a);
}

void tsi_constants_acc_add(tsi_constants_acc *a, const tsi_features *f)
{
    a->minutes++;
    if (f->vru_event_count > a->max_vru)
        a->max_vru = f->vru_event_count;
    if (f->vehicle_event_count > a->max_veh)
        a->max_veh = f->vehicle_event_count;
    if (f->traffic_volume > a->max_v)
        a->max_v = f->traffic_volume;
    if (f->speed_stddev > a->max_sigma)
        a->max_sigma = f->speed_stddev;
    if (f->hard_braking_count > a->max_hb)
        a->max_hb = f->hard_braking_count;
    if (f->avg_speed > 0 && isfinite(f->avg_speed)) {
        if (a->nspeeds == a->cap) {
            size_t cap = a->cap ? a->cap * 2 : 1024;
            double *s = realloc(a->speeds, cap * sizeof *s);
            if (s == NULL)
                abort();
            a->speeds = s;
            a->cap = cap;
        }
        a->speeds[a->nspeeds++] = f->avg_speed;
    }
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

double tsi_quantile_sorted(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return NAN;
    if (p <= 0)
        return sorted[0];
    if (p >= 1)
        return sorted[n - 1];
    double rank = p * (double)(n - 1);
    size_t lo = (size_t)floor(rank);
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    double frac = rank - (double)lo;
    return sorted[lo] + frac * (sorted[hi] - sorted[lo]);
}

static double nonzero(double v)
{
    return v > 0 && isfinite(v) ? v : 1.0;
}

int tsi_constants_acc_finish(tsi_constants_acc *a, double k, tsi_constants *out)
{
    if (a->minutes == 0)
        return TSI_E_NOTFOUND;
    if (a->nspeeds > 1)
        qsort(a->speeds, a->nspeeds, sizeof *a->speeds, cmp_double);
    out->I_vru_max = nonzero(a->max_vru);
    out->I_veh_max = nonzero(a->max_veh);
    out->V_max = nonzero(a->max_v);
    out->sigma_max = nonzero(a->max_sigma);
    out->HB_max = nonzero(a->max_hb);
    out->S_ref = nonzero(tsi_quantile_sorted(a->speeds, a->nspeeds, 0.85));
    out->k = k;
    return 0;
}

void tsi_constants_acc_free(tsi_constants_acc *a)
{
    if (a == NULL)
        return;
    free(a->speeds);
    memset(a, 0, sizeof *a);
}

static double clip100(double v)
{
    if (!(v > 0)) /* also NAN */
        return 0;
    return v > 100 ? 100 : v;
}

void tsi_index_compute(const tsi_features *f, const tsi_constants *c, tsi_index *x)
{
    memset(x, 0, sizeof *x);
    double S = isfinite(f->avg_speed) ? f->avg_speed : 0;
    double sd = isfinite(f->speed_stddev) ? f->speed_stddev : 0;
    x->vru_t_events = 100 * 0.4 * f->vru_event_count / nonzero(c->I_vru_max);
    x->vru_t_volume = 100 * 0.2 * f->traffic_volume / nonzero(c->V_max);
    x->vru_t_speed = 100 * 0.2 * S / nonzero(c->S_ref);
    x->vru_t_stddev = 100 * 0.2 * sd / nonzero(c->sigma_max);
    x->veh_t_events = 100 * 0.3 * f->vehicle_event_count / nonzero(c->I_veh_max);
    x->veh_t_volume = 100 * 0.3 * f->traffic_volume / nonzero(c->V_max);
    x->veh_t_stddev = 100 * 0.2 * sd / nonzero(c->sigma_max);
    x->veh_t_braking = 100 * 0.2 * f->hard_braking_count / nonzero(c->HB_max);
    x->vru_unclipped = x->vru_t_events + x->vru_t_volume + x->vru_t_speed + x->vru_t_stddev;
    x->vehicle_unclipped = x->veh_t_events + x->veh_t_volume + x->veh_t_stddev + x->veh_t_braking;
    x->vru = clip100(x->vru_unclipped);
    x->vehicle = clip100(x->vehicle_unclipped);
    x->combined = clip100(0.6 * x->vru + 0.4 * x->vehicle);
    tsi_index_eb(x, f, 0, NULL, TSI_PRIOR_NONE);
}

void tsi_index_eb(tsi_index *x, const tsi_features *f, double k, const double prior[3],
                  int prior_source)
{
    x->n = (double)f->traffic_volume + (double)f->vru_count;
    if (prior == NULL) {
        prior_source = TSI_PRIOR_NONE;
        x->prior_vru = x->vru;
        x->prior_vehicle = x->vehicle;
        x->prior_combined = x->combined;
    } else {
        x->prior_vru = prior[0];
        x->prior_vehicle = prior[1];
        x->prior_combined = prior[2];
    }
    x->prior_source = prior_source;
    x->lambda = k > 0 && isfinite(k) ? x->n / (x->n + k) : 1.0;
    x->vru_eb = clip100(x->prior_vru + x->lambda * (x->vru - x->prior_vru));
    x->vehicle_eb = clip100(x->prior_vehicle + x->lambda * (x->vehicle - x->prior_vehicle));
    x->combined_eb = clip100(x->prior_combined + x->lambda * (x->combined - x->prior_combined));
}

const char *tsi_risk_level(double v)
{
    return v > TSI_RISK_HIGH ? "High" : v >= TSI_RISK_MEDIUM ? "Medium" : "Low";
}

const char *tsi_risk_colour(double v)
{
    return v > TSI_RISK_HIGH ? "#E74C3C" : v >= TSI_RISK_MEDIUM ? "#F39C12" : "#2ECC71";
}

/* ---- priors: open addressing on (intersection, hour) ---- */

typedef struct prior_slot {
    int64_t id; /* -1 = empty */
    int hour;
    double sum[3];
    long minutes;
} prior_slot;

struct tsi_priors {
    prior_slot *slots;
    size_t cap, used;
    double net_sum[24][3];
    long net_minutes[24];
};

tsi_priors *tsi_priors_new(void)
{
    tsi_priors *p = calloc(1, sizeof *p);
    if (p == NULL)
        abort();
    p->cap = 256;
    p->slots = malloc(p->cap * sizeof *p->slots);
    if (p->slots == NULL)
        abort();
    for (size_t i = 0; i < p->cap; i++)
        p->slots[i].id = -1;
    return p;
}

void tsi_priors_free(tsi_priors *p)
{
    if (p == NULL)
        return;
    free(p->slots);
    free(p);
}

static size_t hash_key(int64_t id, int hour)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull ^ (uint64_t)hour * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h ^ (h >> 31));
}

static prior_slot *find_slot(const tsi_priors *p, int64_t id, int hour)
{
    size_t i = hash_key(id, hour) & (p->cap - 1);
    for (;;) {
        prior_slot *s = &p->slots[i];
        if (s->id == -1 || (s->id == id && s->hour == hour))
            return s;
        i = (i + 1) & (p->cap - 1);
    }
}

static prior_slot *get_slot(tsi_priors *p, int64_t id, int hour)
{
    if ((p->used + 1) * 2 > p->cap) {
        prior_slot *old = p->slots;
        size_t oldcap = p->cap;
        p->cap *= 2;
        p->slots = malloc(p->cap * sizeof *p->slots);
        if (p->slots == NULL)
            abort();
        for (size_t i = 0; i < p->cap; i++)
            p->slots[i].id = -1;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].id != -1)
                *find_slot(p, old[i].id, old[i].hour) = old[i];
        free(old);
    }
    prior_slot *s = find_slot(p, id, hour);
    if (s->id == -1) {
        memset(s, 0, sizeof *s);
        s->id = id;
        s->hour = hour;
        p->used++;
    }
    return s;
}

void tsi_priors_add(tsi_priors *p, int64_t id, int hour, const double raw[3])
{
    if (hour < 0 || hour > 23 || id < 0)
        return;
    prior_slot *s = get_slot(p, id, hour);
    for (int k = 0; k < 3; k++) {
        s->sum[k] += raw[k];
        p->net_sum[hour][k] += raw[k];
    }
    s->minutes++;
    p->net_minutes[hour]++;
}

void tsi_priors_set(tsi_priors *p, int64_t id, int hour, const double mean[3], long minutes)
{
    if (hour < 0 || hour > 23 || id < 0 || minutes <= 0)
        return;
    prior_slot *s = get_slot(p, id, hour);
    for (int k = 0; k < 3; k++) {
        p->net_sum[hour][k] -= s->sum[k];
        s->sum[k] = mean[k] * (double)minutes;
        p->net_sum[hour][k] += s->sum[k];
    }
    p->net_minutes[hour] += minutes - s->minutes;
    s->minutes = minutes;
}

int tsi_priors_get(const tsi_priors *p, int64_t id, int hour, double out[3])
{
    if (p == NULL || hour < 0 || hour > 23)
        return TSI_PRIOR_NONE;
    const prior_slot *s = id >= 0 ? find_slot(p, id, hour) : NULL;
    if (s && s->id == id && s->minutes >= TSI_PRIOR_MIN_MINUTES) {
        for (int k = 0; k < 3; k++)
            out[k] = s->sum[k] / (double)s->minutes;
        return TSI_PRIOR_INTERSECTION;
    }
    if (p->net_minutes[hour] > 0) {
        for (int k = 0; k < 3; k++)
            out[k] = p->net_sum[hour][k] / (double)p->net_minutes[hour];
        return TSI_PRIOR_NETWORK;
    }
    return TSI_PRIOR_NONE;
}
