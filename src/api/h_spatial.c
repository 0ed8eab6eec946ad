/* api/h_spatial.c — spatial queries through PostGIS: GET /intersections/nearby (a
 * radius around a point), /intersections/route (a buffer along waypoints) and
 * /intersections/area (inside a polygon), each intersection with its current index, as
 * JSON or GeoJSON. PostgreSQL only (503 spatial_unavailable otherwise). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api/h_common.h"
#include "api/handlers.h"
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

static int spatial(tsi_req *r, int kind)
{
    double min_index;
    const char *rl;
    const char *fmt = tsi_req_arg(r, "format");
    bool geo = false;
    if (fmt) {
        if (strcmp(fmt, "geojson") == 0)
            geo = true;
        else if (strcmp(fmt, "json") != 0)
            return tsi_hc_bad(r, "format", "%s must be json or geojson", fmt);
    }
    if (tsi_hc_arg_num(r, "min_index", 0, false, 100, -1, &min_index) < 0 ||
        tsi_hc_arg_risk(r, &rl) < 0)
        return 0;
    tsi_buf lats = TSI_BUF_INIT, lons = TSI_BUF_INIT;
    char p1[64], p2[64], p3[64];
    const char *v[3];
    const char *stmt;
    int np = 0;
    if (kind == R_NEARBY) {
        double lat, lon, radius;
        if (tsi_hc_arg_num(r, "lat", -90, false, 90, NAN, &lat) < 0 ||
            tsi_hc_arg_num(r, "lon", -180, false, 180, NAN, &lon) < 0 ||
            tsi_hc_arg_num(r, "radius", 0, true, 200000, 1000, &radius) < 0)
            return 0;
        snprintf(p1, sizeof p1, "%.17g", lat);
        snprintf(p2, sizeof p2, "%.17g", lon);
        snprintf(p3, sizeof p3, "%.17g", radius);
        v[0] = p1;
        v[1] = p2;
        v[2] = p3;
        stmt = "nearby";
    } else {
        bool route = kind == R_ROUTE;
        double buffer = 0;
        if (route && tsi_hc_arg_num(r, "buffer", 0, true, 200000, 100, &buffer) < 0)
            return 0;
        double *plat = tsi_arena_alloc(r->arena, sizeof(double) * 1001);
        double *plon = tsi_arena_alloc(r->arena, sizeof(double) * 1001);
        if (arg_points(r, route ? "waypoints" : "polygon", route ? 2 : 3, 1000, &lats, &lons, plat,
                       plon, &np, !route) < 0) {
            tsi_buf_free(&lats);
            tsi_buf_free(&lons);
            return 0;
        }
        int ea, eb;
        /* a polygon's edges are geodesics (geography): a ring around a pole or across the
         * antimeridian is simple when its arcs are; a planar check would refuse both */
        if (!route && tsi_geo_ring_self_intersects(plat, plon, np, &ea, &eb)) {
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
        snprintf(p3, sizeof p3, "%.17g", buffer);
        v[0] = lats.data;
        v[1] = lons.data;
        v[2] = p3;
        stmt = route ? "route" : "area";
    }
    if (tsi_api_use_parquet()) {
        tsi_buf_free(&lats);
        tsi_buf_free(&lons);
        return tsi_api_error(r, 503, "spatial_unavailable", NULL,
                             "spatial queries need PostgreSQL/PostGIS; the server reads from the"
                             " Parquet archive now");
    }
    PGconn *c = tsi_api_pg(r);
    if (!c) {
        tsi_buf_free(&lats);
        tsi_buf_free(&lons);
        return tsi_api_error(r, 503, "spatial_unavailable", NULL,
                             "spatial queries need PostgreSQL/PostGIS, which is unreachable now;"
                             " try again shortly");
    }
    r->data_source = "postgres";
    PGresult *res = tsi_hc_run(r, c, stmt, kind == R_AREA ? 2 : 3, v);
    tsi_buf_free(&lats);
    tsi_buf_free(&lons);
    if (!res) {
        if (r->status == 503)
            return tsi_api_error(r, 503, "spatial_unavailable", NULL,
                                 "spatial queries need PostgreSQL/PostGIS, which is unreachable"
                                 " now; try again shortly");
        return 0;
    }
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    if (geo) {
        r->content_type = "application/geo+json";
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_str(&w, "type", "FeatureCollection");
        tsi_jsonw_key(&w, "features");
    }
    tsi_jsonw_array(&w);
    int count = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        bool has = !PQgetisnull(res, i, 4);
        bool ebnull;
        double eb = tsi_hc_dval(res, i, 6, &ebnull);
        double si = has ? (ebnull ? tsi_hc_dval(res, i, 5, NULL) : eb) : NAN;
        /* a stale current index is no risk now: the filters on it skip the intersection */
        if (has && (min_index >= 0 || rl) && tsi_hc_stale(tsi_hc_dval(res, i, 4, NULL)))
            continue;
        if (min_index >= 0 && (isnan(si) || si < min_index))
            continue;
        if (rl && (isnan(si) || strcmp(tsi_risk_level(si), rl) != 0))
            continue;
        count++;
        tsi_jsonw_object(&w);
        if (geo) {
            tsi_jsonw_kv_str(&w, "type", "Feature");
            tsi_jsonw_key(&w, "geometry");
            tsi_jsonw_object(&w);
            tsi_jsonw_kv_str(&w, "type", "Point");
            tsi_jsonw_key(&w, "coordinates");
            tsi_jsonw_array(&w);
            tsi_jsonw_double(&w, tsi_hc_dval(res, i, 3, NULL));
            tsi_jsonw_double(&w, tsi_hc_dval(res, i, 2, NULL));
            tsi_jsonw_end(&w);
            tsi_jsonw_end(&w);
            tsi_jsonw_kv_int(&w, "id", tsi_hc_ival(res, i, 0));
            tsi_jsonw_key(&w, "properties");
            tsi_jsonw_object(&w);
        }
        tsi_hc_write_index_obj(&w, r->dl, res, i, 4, false);
        if (kind != R_AREA)
            tsi_hc_kv_pg(&w, r->dl, "distance_m", res, i, 13);
        if (geo)
            tsi_jsonw_end(&w);
        tsi_jsonw_end(&w);
    }
    tsi_jsonw_end(&w);
    if (geo)
        tsi_jsonw_end(&w);
    (void)count;
    (void)np;
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
