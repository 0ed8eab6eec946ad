/* api/h_spatial.c — spatial queries: GET /intersections/nearby (a radius around a
 * point), /intersections/route (a buffer along waypoints) and /intersections/area (inside
 * a polygon), each intersection with its current index, as JSON or GeoJSON. Through
 * PostGIS; while PostgreSQL is away (or with --source parquet) over the server's cache of
 * intersections and the archive's current rows (core/geo), 503 spatial_unavailable only
 * when no intersection is known. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/h_common.h"
#include "api/fallback.h"
#include "api/handlers.h"
#include "api/names.h"
#include "api/pool.h"
#include "api/state.h"
#include "base/jsonw.h"
#include "core/geo.h"
#include "core/index.h"
#include "core/json.h"

/* ---- spatial ----------------------------------------------------------------------------------
 */
/* [{"lat":..,"lon":..}, ...] → "{..}" arrays of lat and lon; count in *n */
static int arg_points(tsi_req *r, const char *name, int min, int max, tsi_buf *lats, tsi_buf *lons,
                      double *plat, double *plon, int *n, bool close_ring)
{
    const char *v = tsi_req_arg(r, name);
    if (!v) {
        tsi_api_error(r, 400, "missing_parameter", name,
                      "%s is required: a JSON array of {\"lat\":..,\"lon\":..}", name);
        return -1;
    }
    tsi_json d;
    tsi_error e = {0};
    /* 5 tokens per point ({, 2 keys, 2 values; the counting pass over-estimates): more points
     * than allowed still parse, so that too many points gets its own answer */
    if (tsi_json_parse_alloc(&d, v, strlen(v), 8 * (max + 1) + 16, &e) < 0) {
        tsi_json_free(&d);
        return tsi_hc_bad(r, name, "%s must be a JSON array of {\"lat\":..,\"lon\":..} objects", v);
    }
    if (!tsi_json_is_array(&d, 0)) {
        tsi_json_free(&d);
        return tsi_hc_bad(r, name, "%s must be a JSON array", v);
    }
    int k = 0;
    double flat = 0, flon = 0, llat = 0, llon = 0;
    tsi_buf_putc(lats, '{');
    tsi_buf_putc(lons, '{');
    for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i)) {
        double la, lo;
        if (!tsi_json_is_object(&d, i) || tsi_json_num(&d, tsi_json_get(&d, i, "lat"), &la) < 0 ||
            tsi_json_num(&d, tsi_json_get(&d, i, "lon"), &lo) < 0) {
            tsi_json_free(&d);
            char msg[96];
            snprintf(msg, sizeof msg, "point %d", k + 1);
            return tsi_hc_bad(r, name, "%s: every point needs numeric lat and lon", msg);
        }
        if (la < -90 || la > 90 || lo < -180 || lo > 180) {
            tsi_json_free(&d);
            tsi_api_error(r, 400, "invalid_parameter", name,
                          "%s: point %d is outside lat -90..90, lon -180..180", name, k + 1);
            return -1;
        }
        if (++k > max) {
            tsi_json_free(&d);
            tsi_api_error(r, 400, "too_many_points", name, "%s has more than %d points", name, max);
            return -1;
        }
        if (k == 1) {
            flat = la;
            flon = lo;
        }
        llat = la;
        llon = lo;
        plat[k - 1] = la;
        plon[k - 1] = lo;
        if (k > 1) {
            tsi_buf_putc(lats, ',');
            tsi_buf_putc(lons, ',');
        }
        tsi_buf_printf(lats, "%.17g", la);
        tsi_buf_printf(lons, "%.17g", lo);
    }
    tsi_json_free(&d);
    if (close_ring && k > 1 && flat == llat && flon == llon) {
        /* an explicitly closed ring: drop the repeated vertex (the SQL closes it) */
        k--;
        char *cl = strrchr(lats->data, ',');
        char *co = strrchr(lons->data, ',');
        *cl = '\0';
        lats->len = (size_t)(cl - lats->data);
        *co = '\0';
        lons->len = (size_t)(co - lons->data);
    }
    tsi_buf_putc(lats, '}');
    tsi_buf_putc(lons, '}');
    if (k < min) {
        tsi_api_error(r, 400, "too_few_points", name, "%s needs at least %d distinct points", name,
                      min);
        return -1;
    }
    *n = k;
    return 0;
}

/* One hit of a spatial query, from either source: its row in the PostgreSQL result, or
 * the cached intersection and its current row from the archive. */
typedef struct {
    int64_t id;
    double d; /* metres (nearby, route) */
    int row;  /* PostgreSQL: the result's row */
    const tsi_api_int_rec *it;
    const tsi_fb_cur *cur; /* archive: NULL when it has no current row */
} hit;

typedef struct {
    int kind;
    bool geo;
    double min_index; /* < 0: none */
    const char *rl;   /* risk level filter or NULL */
    double lat, lon, dist;
    double *plat, *plon;
    int np;
} spatial_q;

static int hit_cmp(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* whether a hit's current index passes the filters: a stale one passes none */
static bool passes(const spatial_q *q, bool has, double ts, double si)
{
    if (has && (q->min_index >= 0 || q->rl) && tsi_hc_stale(ts))
        return false;
    if (q->min_index >= 0 && (isnan(si) || si < q->min_index))
        return false;
    if (q->rl && (isnan(si) || strcmp(tsi_risk_level(si), q->rl) != 0))
        return false;
    return true;
}

/* the answer: a JSON array of index objects with distance_m, or a GeoJSON
 * FeatureCollection of Points carrying them as properties */
static void write_hits(tsi_req *r, const spatial_q *q, const hit *h, int n, PGresult *res,
                       const tsi_hc_index_cols *ic, int dcol)
{
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    if (q->geo) {
        r->content_type = "application/geo+json";
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_str(&w, "type", "FeatureCollection");
        tsi_jsonw_key(&w, "features");
    }
    tsi_jsonw_array(&w);
    for (int i = 0; i < n; i++) {
        double lat = res ? tsi_hc_dval(res, h[i].row, ic->lat, NULL) : h[i].it->lat;
        double lon = res ? tsi_hc_dval(res, h[i].row, ic->lon, NULL) : h[i].it->lon;
        tsi_jsonw_object(&w);
        if (q->geo) {
            tsi_jsonw_kv_str(&w, "type", "Feature");
            tsi_jsonw_key(&w, "geometry");
            tsi_jsonw_object(&w);
            tsi_jsonw_kv_str(&w, "type", "Point");
            tsi_jsonw_key(&w, "coordinates");
            tsi_jsonw_array(&w);
            tsi_jsonw_double(&w, lon);
            tsi_jsonw_double(&w, lat);
            tsi_jsonw_end(&w);
            tsi_jsonw_end(&w);
            tsi_jsonw_kv_int(&w, "id", h[i].id);
            tsi_jsonw_key(&w, "properties");
            tsi_jsonw_object(&w);
        }
        if (res) {
            tsi_hc_write_index_obj(&w, r->dl, res, h[i].row, ic, false);
            if (q->kind != R_AREA)
                tsi_hc_kv_pg(&w, r->dl, "distance_m", res, h[i].row, dcol);
        } else {
            tsi_fb_write_item(&w, r->dl, h[i].id, h[i].cur, h[i].it->name, lat, lon);
            if (q->kind != R_AREA)
                tsi_dialect_kv_float(r->dl, &w, "distance_m", h[i].d);
        }
        if (q->geo)
            tsi_jsonw_end(&w);
        tsi_jsonw_end(&w);
    }
    tsi_jsonw_end(&w);
    if (q->geo)
        tsi_jsonw_end(&w);
}

/* The same query over the server's cache of intersections and the archive's current
 * rows, while PostgreSQL is away (or with --source parquet): geodesic distances on the
 * sphere (PostGIS measures on the WGS84 spheroid: distances agree to 0.5 %, documented)
 * and the polygon as PostGIS's geography reads it (core/geo). */
static int spatial_parquet(tsi_req *r, const spatial_q *q)
{
    int ni = 0, nc = 0;
    tsi_api_int_rec *ints = tsi_api_int_all(&ni);
    if (ni == 0) {
        free(ints);
        return tsi_api_error(r, 503, "spatial_unavailable", NULL,
                             "no intersection is known: PostgreSQL is unreachable and the archive"
                             " has no intersections file");
    }
    tsi_fb_cur *cur;
    if (tsi_fb_latest(r, -1, &cur, &nc) < 0) {
        free(ints);
        return 0;
    }
    atomic_fetch_add(&tsi_api_g->m.parquet_answers, 1);
    hit *h = tsi_arena_alloc(r->arena, sizeof *h * (size_t)ni);
    int n = 0, j = 0;
    for (int i = 0; i < ni; i++) { /* both by id */
        const tsi_api_int_rec *it = &ints[i];
        double d = 0;
        if (q->kind == R_NEARBY)
            d = tsi_geo_haversine_m(q->lat, q->lon, it->lat, it->lon);
        else if (q->kind == R_ROUTE)
            d = tsi_geo_point_polyline_m(it->lat, it->lon, q->plat, q->plon, q->np);
        bool in = q->kind == R_AREA ? tsi_geo_ring_covers(q->plat, q->plon, q->np, it->lat, it->lon)
                                    : d <= q->dist;
        while (j < nc && cur[j].iid < it->id)
            j++;
        const tsi_fb_cur *c = j < nc && cur[j].iid == it->id ? &cur[j] : NULL;
        double si = c ? (isnan(c->eb) ? c->comb : c->eb) : NAN;
        if (!in || !passes(q, c != NULL, c ? c->ts : 0, si))
            continue;
        h[n++] = (hit){.id = it->id, .d = q->kind == R_AREA ? 0 : d, .it = it, .cur = c};
    }
    qsort(h, (size_t)n, sizeof *h, hit_cmp);
    write_hits(r, q, h, n, NULL, NULL, -1);
    free(ints);
    return 0;
}

static int spatial(tsi_req *r, int kind)
{
    spatial_q q = {.kind = kind};
    const char *fmt = tsi_req_arg(r, "format");
    if (fmt) {
        if (strcmp(fmt, "geojson") == 0)
            q.geo = true;
        else if (strcmp(fmt, "json") != 0)
            return tsi_hc_bad(r, "format", "%s must be json or geojson", fmt);
    }
    if (tsi_hc_arg_num(r, "min_index", 0, false, 100, -1, &q.min_index) < 0 ||
        tsi_hc_arg_risk(r, &q.rl) < 0)
        return 0;
    tsi_buf lats = TSI_BUF_INIT, lons = TSI_BUF_INIT;
    char p1[64], p2[64], p3[64];
    const char *v[3];
    const char *stmt;
    if (kind == R_NEARBY) {
        if (tsi_hc_arg_num(r, "lat", -90, false, 90, NAN, &q.lat) < 0 ||
            tsi_hc_arg_num(r, "lon", -180, false, 180, NAN, &q.lon) < 0 ||
            tsi_hc_arg_num(r, "radius", 0, true, 200000, 1000, &q.dist) < 0)
            return 0;
        snprintf(p1, sizeof p1, "%.17g", q.lat);
        snprintf(p2, sizeof p2, "%.17g", q.lon);
        snprintf(p3, sizeof p3, "%.17g", q.dist);
        v[0] = p1;
        v[1] = p2;
        v[2] = p3;
        stmt = "nearby";
    } else {
        bool route = kind == R_ROUTE;
        if (route && tsi_hc_arg_num(r, "buffer", 0, true, 200000, 100, &q.dist) < 0)
            return 0;
        q.plat = tsi_arena_alloc(r->arena, sizeof(double) * 1001);
        q.plon = tsi_arena_alloc(r->arena, sizeof(double) * 1001);
        if (arg_points(r, route ? "waypoints" : "polygon", route ? 2 : 3, 1000, &lats, &lons,
                       q.plat, q.plon, &q.np, !route) < 0) {
            tsi_buf_free(&lats);
            tsi_buf_free(&lons);
            return 0;
        }
        int ea, eb;
        /* a polygon's edges are geodesics (geography): a ring around a pole or across the
         * antimeridian is simple when its arcs are; a planar check would refuse both */
        if (!route && tsi_geo_ring_self_intersects(q.plat, q.plon, q.np, &ea, &eb)) {
            tsi_buf_free(&lats);
            tsi_buf_free(&lons);
            if (ea == eb)
                return tsi_api_error(r, 400, "invalid_polygon", "polygon",
                                     "polygon is not a valid simple polygon: edge %d (from vertex"
                                     " %d) has coincident or antipodal ends",
                                     ea + 1, ea + 1);
            return tsi_api_error(r, 400, "invalid_polygon", "polygon",
                                 "polygon is not a valid simple polygon: edges %d and %d cross or"
                                 " touch (edge k runs from vertex k to the next)",
                                 ea + 1, eb + 1);
        }
        snprintf(p3, sizeof p3, "%.17g", q.dist);
        v[0] = lats.data;
        v[1] = lons.data;
        v[2] = p3;
        stmt = route ? "route" : "area";
    }
    PGconn *c = tsi_api_use_parquet() ? NULL : tsi_api_pg(r);
    if (!c) {
        tsi_buf_free(&lats);
        tsi_buf_free(&lons);
        if (tsi_api_g->source_mode == TSI_SRC_POSTGRES)
            return tsi_api_error(r, 503, "spatial_unavailable", NULL,
                                 "spatial queries need PostgreSQL/PostGIS, which is unreachable"
                                 " now; try again shortly");
        return spatial_parquet(r, &q);
    }
    r->data_source = "postgres";
    PGresult *res = tsi_hc_run(r, c, stmt, kind == R_AREA ? 2 : 3, v);
    tsi_buf_free(&lats);
    tsi_buf_free(&lons);
    if (!res) {
        if (tsi_hc_retry_on_parquet(r)) /* the database went away meanwhile */
            return spatial_parquet(r, &q);
        if (r->status == 503)
            return tsi_api_error(r, 503, "spatial_unavailable", NULL,
                                 "spatial queries need PostgreSQL/PostGIS, which is unreachable"
                                 " now; try again shortly");
        return 0;
    }
    /* an index object's columns and the distance d, by name (queries.c's SPATIAL_COLS) */
    tsi_hc_index_cols ic;
    static const char *const dname[1] = {"d"};
    int dcol;
    if (!tsi_hc_index_cols_of(r, res, &ic) || !tsi_hc_cols(r, res, 1, dname, &dcol)) {
        PQclear(res);
        return 0;
    }
    int nr = PQntuples(res), n = 0;
    hit *h = tsi_arena_alloc(r->arena, sizeof *h * (size_t)(nr ? nr : 1));
    for (int i = 0; i < nr; i++) { /* in the statement's order */
        bool has = !PQgetisnull(res, i, ic.ts);
        bool ebnull;
        double eb = tsi_hc_dval(res, i, ic.ci_eb, &ebnull);
        double si = has ? (ebnull ? tsi_hc_dval(res, i, ic.ci, NULL) : eb) : NAN;
        if (!passes(&q, has, has ? tsi_hc_dval(res, i, ic.ts, NULL) : 0, si))
            continue;
        h[n++] = (hit){.id = tsi_hc_ival(res, i, ic.id), .row = i};
    }
    write_hits(r, &q, h, n, res, &ic, dcol);
    PQclear(res);
    return 0;
}

int tsi_h_nearby(tsi_req *r)
{
    return spatial(r, R_NEARBY);
}

int tsi_h_route(tsi_req *r)
{
    return spatial(r, R_ROUTE);
}

int tsi_h_area(tsi_req *r)
{
    return spatial(r, R_AREA);
}
