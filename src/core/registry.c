/* core/registry.c — see registry.h */
#include "base/xalloc.h"
#include "core/registry.h"
#include "core/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CELL_DEG 0.01 /* grid cell: ~1.1 km north-south */

typedef struct cell_ref {
    int64_t cell;
    int idx;
} cell_ref;

typedef struct loc_entry {
    char *name; /* NULL = empty slot */
    int64_t id;
} loc_entry;

struct tsi_registry {
    double radius_m;
    tsi_isect *items;
    int n, cap;
    /* grid: cell_refs sorted by cell, and an open-addressing table cell → first ref */
    bool dirty;
    cell_ref *refs;
    size_t nrefs;
    int64_t *tab_cell;
    size_t *tab_start;
    size_t tab_cap;
    /* id → index */
    int64_t *id_key;
    int *id_idx;
    size_t id_cap;
    /* locationName map */
    loc_entry *loc;
    size_t loc_cap, loc_used;
};

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

tsi_registry *tsi_registry_new(double radius_m)
{
    tsi_registry *r = tsi_xcalloc(1, sizeof *r);
    r->radius_m = radius_m > 0 ? radius_m : TSI_DEFAULT_RADIUS_M;
    r->dirty = true;
    return r;
}

void tsi_registry_free(tsi_registry *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < r->n; i++)
        free(r->items[i].seg);
    free(r->items);
    free(r->refs);
    free(r->tab_cell);
    free(r->tab_start);
    free(r->id_key);
    free(r->id_idx);
    for (size_t i = 0; i < r->loc_cap; i++)
        free(r->loc[i].name);
    free(r->loc);
    free(r);
}

static int id_lookup(const tsi_registry *r, int64_t id)
{
    if (r->id_cap == 0)
        return -1;
    size_t i = tsi_hash_mix64((uint64_t)id) & (r->id_cap - 1);
    while (r->id_idx[i] >= 0) {
        if (r->id_key[i] == id)
            return r->id_idx[i];
        i = (i + 1) & (r->id_cap - 1);
    }
    return -1;
}

static void id_insert(tsi_registry *r, int64_t id, int idx)
{
    if ((size_t)(r->n + 1) * 2 > r->id_cap) {
        size_t cap = r->id_cap ? r->id_cap * 2 : 64;
        free(r->id_key);
        free(r->id_idx);
        r->id_key = tsi_xcalloc(cap, sizeof *r->id_key);
        r->id_idx = tsi_xcalloc(cap, sizeof *r->id_idx);
        r->id_cap = cap;
        for (size_t i = 0; i < cap; i++)
            r->id_idx[i] = -1;
        for (int k = 0; k < r->n; k++)
            if (k != idx)
                id_insert(r, r->items[k].id, k);
    }
    size_t i = tsi_hash_mix64((uint64_t)id) & (r->id_cap - 1);
    while (r->id_idx[i] >= 0 && r->id_key[i] != id)
        i = (i + 1) & (r->id_cap - 1);
    r->id_key[i] = id;
    r->id_idx[i] = idx;
}

static bool newer(int rev, int old)
{
    int d = ((rev - old) % 128 + 128) % 128;
    return d >= 1 && d <= 63;
}

static void fill(tsi_isect *s, const tsi_map_intersection *x)
{
    free(s->seg);
    memset(s, 0, sizeof *s);
    s->id = x->id;
    snprintf(s->name, sizeof s->name, "%s", x->name);
    s->ref_lat = x->ref_lat;
    s->ref_lon = x->ref_lon;
    s->lane_count = x->vehicle_lanes;
    s->revision = x->revision;
    s->speed_limit = x->speed_limit;
    s->lane_width_m = x->lane_width_m > 0 ? x->lane_width_m : TSI_DEFAULT_LANE_WIDTH_M;
    s->nlanes = x->nlanes;
    tsi_ltp_init(&s->ltp, x->ref_lat, x->ref_lon);
    /* the footprint: vehicle lanes only (crosswalks and sidewalks are not where a message
     * 300 m out should be claimed from) */
    int nseg = 0;
    for (int l = 0; l < x->nlanes; l++)
        if (x->lanes[l].type == TSI_LANE_VEHICLE)
            nseg += x->lanes[l].nnodes > 1 ? x->lanes[l].nnodes - 1 : x->lanes[l].nnodes;
    s->seg = nseg ? tsi_xcalloc((size_t)nseg * 4, sizeof(double)) : NULL;
    double reach = 0;
    for (int l = 0; l < x->nlanes; l++) {
        const tsi_lane *ln = &x->lanes[l];
        if (ln->type != TSI_LANE_VEHICLE)
            continue;
        double px = 0, py = 0;
        for (int k = 0; k < ln->nnodes; k++) {
            double nx, ny;
            tsi_ltp_to_xy(&s->ltp, ln->lat[k], ln->lon[k], &nx, &ny);
            double dd = hypot(nx, ny);
            if (dd > reach)
                reach = dd;
            if (ln->nnodes == 1 || k > 0) {
                double *g = &s->seg[4 * s->nseg++];
                g[0] = ln->nnodes == 1 ? nx : px;
                g[1] = ln->nnodes == 1 ? ny : py;
                g[2] = nx;
                g[3] = ny;
            }
            px = nx;
            py = ny;
        }
    }
    s->reach_m = s->nseg ? reach + s->lane_width_m / 2 : 0;
}

int tsi_registry_upsert(tsi_registry *r, const tsi_map_intersection *x)
{
    int at = id_lookup(r, x->id);
    if (at >= 0) {
        if (!newer(x->revision, r->items[at].revision))
            return 0;
        fill(&r->items[at], x);
        r->dirty = true;
        return 1;
    }
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 64;
        tsi_isect *it = realloc(r->items, (size_t)cap * sizeof *it);
        if (it == NULL)
            abort();
        r->items = it;
        r->cap = cap;
    }
    tsi_isect *s = &r->items[r->n];
    s->seg = NULL;
    fill(s, x);
    id_insert(r, x->id, r->n);
    r->n++;
    r->dirty = true;
    return 1;
}

int tsi_registry_upsert_all(tsi_registry *r, const tsi_mapdata *m)
{
    int n = 0;
    for (int i = 0; i < m->n; i++)
        n += tsi_registry_upsert(r, &m->items[i]);
    return n;
}

int tsi_registry_remove(tsi_registry *r, int64_t id)
{
    int at = id_lookup(r, id);
    if (at < 0)
        return 0;
    free(r->items[at].seg);
    r->items[at] = r->items[--r->n];
    /* rare (an RSU out of service): the id table is rebuilt from the items */
    for (size_t i = 0; i < r->id_cap; i++)
        r->id_idx[i] = -1;
    for (int k = 0; k < r->n; k++)
        id_insert(r, r->items[k].id, k);
    r->dirty = true;
    return 1;
}

int tsi_registry_count(const tsi_registry *r)
{
    return r->n;
}

const tsi_isect *tsi_registry_at(const tsi_registry *r, int i)
{
    return i >= 0 && i < r->n ? &r->items[i] : NULL;
}

const tsi_isect *tsi_registry_find(const tsi_registry *r, int64_t id)
{
    int i = id_lookup(r, id);
    return i >= 0 ? &r->items[i] : NULL;
}

void tsi_registry_map_location(tsi_registry *r, const char *name, int64_t id)
{
    if ((r->loc_used + 1) * 2 > r->loc_cap) {
        size_t cap = r->loc_cap ? r->loc_cap * 2 : 16;
        loc_entry *old = r->loc;
        size_t oldcap = r->loc_cap;
        r->loc = tsi_xcalloc(cap, sizeof *r->loc);
        r->loc_cap = cap;
        for (size_t i = 0; i < oldcap; i++) {
            if (!old[i].name)
                continue;
            size_t j = str_hash(old[i].name) & (cap - 1);
            while (r->loc[j].name)
                j = (j + 1) & (cap - 1);
            r->loc[j] = old[i];
        }
        free(old);
    }
    size_t j = str_hash(name) & (r->loc_cap - 1);
    while (r->loc[j].name && strcmp(r->loc[j].name, name) != 0)
        j = (j + 1) & (r->loc_cap - 1);
    if (!r->loc[j].name) {
        r->loc[j].name = strdup(name);
        if (!r->loc[j].name)
            abort();
        r->loc_used++;
    }
    r->loc[j].id = id;
}

static int64_t cell_of(int64_t cy, int64_t cx)
{
    return cy * 100000 + cx;
}

static int cmp_ref(const void *a, const void *b)
{
    const cell_ref *x = a, *y = b;
    if (x->cell != y->cell)
        return x->cell < y->cell ? -1 : 1;
    return x->idx - y->idx;
}

static void rebuild(tsi_registry *r)
{
    free(r->refs);
    free(r->tab_cell);
    free(r->tab_start);
    r->refs = NULL;
    r->tab_cell = NULL;
    r->tab_start = NULL;
    r->nrefs = r->tab_cap = 0;
    size_t cap = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t k = 0;
        for (int i = 0; i < r->n; i++) {
            const tsi_isect *s = &r->items[i];
            double reach = s->reach_m > r->radius_m ? s->reach_m : r->radius_m;
            double dlat = reach / s->ltp.m_per_deg_lat;
            double dlon = s->ltp.m_per_deg_lon > 1 ? reach / s->ltp.m_per_deg_lon : 360;
            if (dlon > 10)
                dlon = 10; /* near the poles: a generous box is enough */
            int64_t y0 = (int64_t)floor((s->ref_lat - dlat) / CELL_DEG);
            int64_t y1 = (int64_t)floor((s->ref_lat + dlat) / CELL_DEG);
            int64_t x0 = (int64_t)floor((s->ref_lon - dlon) / CELL_DEG);
            int64_t x1 = (int64_t)floor((s->ref_lon + dlon) / CELL_DEG);
            for (int64_t y = y0; y <= y1; y++)
                for (int64_t x = x0; x <= x1; x++) {
                    if (pass == 1) {
                        r->refs[k].cell = cell_of(y, x);
                        r->refs[k].idx = i;
                    }
                    k++;
                }
        }
        if (pass == 0) {
            cap = k;
            r->refs = tsi_xcalloc(cap, sizeof *r->refs);
        }
        r->nrefs = k;
    }
    qsort(r->refs, r->nrefs, sizeof *r->refs, cmp_ref);
    size_t tc = 16;
    while (tc < r->nrefs * 2)
        tc *= 2;
    r->tab_cap = tc;
    r->tab_cell = tsi_xcalloc(tc, sizeof *r->tab_cell);
    r->tab_start = tsi_xcalloc(tc, sizeof *r->tab_start);
    for (size_t i = 0; i < tc; i++)
        r->tab_start[i] = SIZE_MAX;
    for (size_t k = 0; k < r->nrefs; k++) {
        if (k > 0 && r->refs[k].cell == r->refs[k - 1].cell)
            continue;
        size_t j = tsi_hash_mix64((uint64_t)r->refs[k].cell) & (tc - 1);
        while (r->tab_start[j] != SIZE_MAX)
            j = (j + 1) & (tc - 1);
        r->tab_cell[j] = r->refs[k].cell;
        r->tab_start[j] = k;
    }
    r->dirty = false;
}

int tsi_registry_assign(tsi_registry *r, const tsi_msg *m, const tsi_isect **out, tsi_error *err)
{
    *out = NULL;
    if (m->location_name[0] && r->loc_used) {
        size_t j = str_hash(m->location_name) & (r->loc_cap - 1);
        while (r->loc[j].name) {
            if (strcmp(r->loc[j].name, m->location_name) == 0) {
                int i = id_lookup(r, r->loc[j].id);
                if (i >= 0) {
                    *out = &r->items[i];
                    return 0;
                }
                break;
            }
            j = (j + 1) & (r->loc_cap - 1);
        }
    }
    if (r->dirty)
        rebuild(r);
    double best_d = INFINITY, near_d = INFINITY;
    bool best_fp = false;
    int best = -1;
    if (r->tab_cap && isfinite(m->lat) && isfinite(m->lon)) {
        int64_t c = cell_of((int64_t)floor(m->lat / CELL_DEG), (int64_t)floor(m->lon / CELL_DEG));
        size_t j = tsi_hash_mix64((uint64_t)c) & (r->tab_cap - 1);
        while (r->tab_start[j] != SIZE_MAX && r->tab_cell[j] != c)
            j = (j + 1) & (r->tab_cap - 1);
        if (r->tab_start[j] != SIZE_MAX) {
            for (size_t k = r->tab_start[j]; k < r->nrefs && r->refs[k].cell == c; k++) {
                const tsi_isect *s = &r->items[r->refs[k].idx];
                double x, y;
                tsi_ltp_to_xy(&s->ltp, m->lat, m->lon, &x, &y);
                double d = sqrt(x * x + y * y);
                if (d < near_d)
                    near_d = d;
                bool fp = false;
                if (s->nseg && d <= s->reach_m) {
                    double half = s->lane_width_m / 2;
                    for (int g = 0; g < s->nseg && !fp; g++) {
                        const double *sg = &s->seg[4 * g];
                        fp = tsi_geo_point_segment_m(x, y, sg[0], sg[1], sg[2], sg[3]) <= half;
                    }
                }
                if (!fp && d > r->radius_m)
                    continue;
                if ((fp && !best_fp) || (fp == best_fp && d < best_d)) {
                    best = r->refs[k].idx;
                    best_d = d;
                    best_fp = fp;
                }
            }
        }
    }
    if (best < 0) {
        if (isfinite(near_d))
            return tsi_error_set(err, TSI_E_UNMATCHED, "message matches no intersection",
                                 "lat %.7f lon %.7f: nearest refPoint %.0f m away (radius %.0f m)",
                                 m->lat, m->lon, near_d, r->radius_m);
        return tsi_error_set(err, TSI_E_UNMATCHED, "message matches no intersection",
                             "lat %.7f lon %.7f: no intersection within %.0f m", m->lat, m->lon,
                             r->radius_m);
    }
    *out = &r->items[best];
    return 0;
}

int tsi_registry_map_locations_json(tsi_registry *r, const char *js, size_t len, tsi_error *err)
{
    tsi_json d;
    int rc = tsi_json_parse_alloc(&d, js, len, 0, err);
    if (rc >= 0 && !tsi_json_is_object(&d, 0))
        rc = tsi_error_set(err, TSI_E_NOT_OBJECT, "location map must be a JSON object",
                           "an object of locationName: intersection id");
    int n = 0;
    for (int pass = 0; pass < 2 && rc >= 0; pass++) { /* check every entry, then apply */
        n = 0;
        for (int k = tsi_json_first_key(&d, 0); k >= 0; k = tsi_json_next_key(&d, 0, k)) {
            char name[128];
            int64_t id;
            if (tsi_json_str(&d, k, name, sizeof name) < 0) {
                rc = tsi_error_set(err, TSI_E_INVALID, "bad location map entry",
                                   "entry %d: the name is not a string of at most %zu bytes", n + 1,
                                   sizeof name - 1);
                break;
            }
            if (tsi_json_int64(&d, k + 1, &id) < 0 || id < 0) {
                rc = tsi_error_set(err, TSI_E_INVALID, "bad location map entry",
                                   "\"%s\": the value must be an intersection id (an integer "
                                   ">= 0)",
                                   name);
                break;
            }
            if (pass == 1)
                tsi_registry_map_location(r, name, id);
            n++;
        }
    }
    tsi_json_free(&d);
    return rc < 0 ? rc : n;
}
