/* api/h_intersections.c — intersections: GET /intersections/{id} (detail with its
 * MapData metadata and current index; name and position from the server's cache while
 * PostgreSQL is away) and /intersections/geometry?bbox= (lane polylines as GeoJSON). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api/h_common.h"
#include "api/handlers.h"
#include "api/names.h"
#include "api/pool.h"
#include "api/state.h"
#include "base/jsonw.h"

/* ---- /intersections/geometry -------------------------------------------------------------
 * The lane polylines of MapData (intersections.metadata.lane_geometry) of the intersections
 * in a bbox, as a GeoJSON FeatureCollection of LineStrings: the dashboard draws them when
 * zoomed in, so the current-index payload stays small (issue 16). */
int tsi_h_geometry(tsi_req *r)
{
    const char *bb = tsi_req_arg(r, "bbox");
    if (!bb)
        return tsi_api_error(r, 400, "missing_parameter", "bbox",
                             "bbox is required: min_lon,min_lat,max_lon,max_lat");
    double b[4];
    int nb = 0;
    const char *p = bb;
    while (nb < 5) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char one[48];
        if (nb == 4 || l == 0 || l >= sizeof one)
            return tsi_hc_bad(r, "bbox", "%s must be four numbers min_lon,min_lat,max_lon,max_lat",
                              bb);
        memcpy(one, p, l);
        one[l] = '\0';
        if (!tsi_hc_parse_num(one, &b[nb]))
            return tsi_hc_bad(r, "bbox", "%s must be four numbers min_lon,min_lat,max_lon,max_lat",
                              bb);
        nb++;
        if (!e)
            break;
        p = e + 1;
    }
    if (nb != 4)
        return tsi_hc_bad(r, "bbox", "%s must be four numbers min_lon,min_lat,max_lon,max_lat", bb);
    if (fabs(b[0]) > 180 || fabs(b[2]) > 180 || fabs(b[1]) > 90 || fabs(b[3]) > 90)
        return tsi_hc_bad(r, "bbox",
                          "%s must have longitudes in [-180, 180] and latitudes in [-90, 90]", bb);
    if (!(b[0] < b[2]) || !(b[1] < b[3]))
        return tsi_hc_bad(r, "bbox", "%s must have min_lon < max_lon and min_lat < max_lat", bb);
    if (b[2] - b[0] > 1 || b[3] - b[1] > 1)
        return tsi_hc_bad(r, "bbox", "%s must span at most 1 degree each way (zoom in)", bb);
    long long limit;
    if (tsi_hc_arg_int(r, "limit", 1, 5000, 1000, &limit) < 0)
        return 0;
    if (tsi_api_use_parquet())
        return tsi_api_error(r, 503, "geometry_unavailable", NULL,
                             "lane geometry is kept in PostgreSQL; the server reads from the"
                             " Parquet archive now");
    PGconn *c = tsi_api_pg(r);
    if (!c)
        return tsi_api_error(r, 503, "geometry_unavailable", NULL,
                             "lane geometry is kept in PostgreSQL, which is unreachable now;"
                             " try again shortly");
    r->data_source = "postgres";
    char v0[40], v1[40], v2[40], v3[40], v4[24];
    snprintf(v0, sizeof v0, "%.17g", b[0]);
    snprintf(v1, sizeof v1, "%.17g", b[1]);
    snprintf(v2, sizeof v2, "%.17g", b[2]);
    snprintf(v3, sizeof v3, "%.17g", b[3]);
    snprintf(v4, sizeof v4, "%lld", limit);
    const char *v[5] = {v0, v1, v2, v3, v4};
    PGresult *res = tsi_hc_run(r, c, "geometry", 5, v);
    if (!res)
        return 0;
    enum { ID, FEATURE, NCOL };
    static const char *const names[NCOL] = {"id", "feature"};
    int col[NCOL];
    if (!tsi_hc_cols(r, res, NCOL, names, col)) {
        PQclear(res);
        return 0;
    }
    r->content_type = "application/geo+json";
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_str(&w, "type", "FeatureCollection");
    tsi_jsonw_key(&w, "bbox");
    tsi_jsonw_array(&w);
    for (int i = 0; i < 4; i++)
        tsi_jsonw_double(&w, b[i]);
    tsi_jsonw_end(&w);
    tsi_jsonw_key(&w, "features");
    tsi_jsonw_array(&w);
    long long nisect = 0, last = -1;
    bool truncated = false;
    for (int i = 0; i < PQntuples(res); i++) {
        long long id = tsi_hc_ival(res, i, col[ID]);
        if (id != last) {
            if (nisect == limit) {
                truncated = true;
                break;
            }
            nisect++;
            last = id;
        }
        const char *f = PQgetvalue(res, i, col[FEATURE]);
        tsi_jsonw_raw(&w, f, strlen(f)); /* jsonb text from PostgreSQL: valid JSON */
    }
    tsi_jsonw_end(&w);
    tsi_jsonw_kv_int(&w, "intersections", nisect);
    tsi_jsonw_kv_bool(&w, "truncated", truncated);
    tsi_jsonw_end(&w);
    PQclear(res);
    return 0;
}

/* A stored time as the dialect writes it, from PostgreSQL's UTC text
 * "YYYY-MM-DDTHH:MM:SS.ffffff" (Q_INTERSECTION): v2 keeps milliseconds and Z (tsi's
 * format since the first version); v1 writes pydantic's naive form, the fraction only
 * when it is not zero. */
static void stamp_text(const tsi_dialect *dl, char *b, size_t len, const char *pg)
{
    if (!dl->naive_time) {
        snprintf(b, len, "%.23sZ", pg);
        return;
    }
    bool zero = strlen(pg) < 26 || strspn(pg + 20, "0") >= 6;
    snprintf(b, len, "%.*s", zero ? 19 : 26, pg);
}

/* ---- /intersections/{id} ------------------------------------------------------------------------
 */
int tsi_h_intersection(tsi_req *r)
{
    if (!tsi_hc_need_id(r))
        return 0;
    PGconn *c = tsi_api_pg(r);
    if (!c) {
        char nm[256];
        double la, lo;
        if (tsi_api_g->source_mode == TSI_SRC_POSTGRES)
            return tsi_api_error(r, 503, "database_unavailable", NULL,
                                 "the database is unreachable");
        if (!tsi_api_int_info(r->path_id, nm, sizeof nm, &la, &lo))
            return tsi_api_error(r, 404, "not_found", "intersection_id", "Intersection not found");
        r->data_source = "parquet";
        tsi_jsonw w;
        tsi_jsonw_init(&w, &r->body);
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_int(&w, "id", r->path_id);
        tsi_jsonw_kv_int(&w, "intersection_id", r->path_id);
        tsi_jsonw_kv_str(&w, "name", nm);
        tsi_dialect_kv_float(r->dl, &w, "latitude", la);
        tsi_dialect_kv_float(r->dl, &w, "longitude", lo);
        tsi_jsonw_end(&w);
        return 0;
    }
    r->data_source = "postgres";
    PGresult *res = tsi_hc_run_id(r, c, "intersection");
    if (!res)
        return 0;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return tsi_api_error(r, 404, "not_found", "intersection_id", "Intersection not found");
    }
    /* Q_INTERSECTION's own columns, then an index object's (id, name, position, current) */
    enum { LANES, REV, META, CREATED, UPDATED, GEOM, NCOL };
    static const char *const names[NCOL] = {"lane_count", "revision",   "metadata",
                                            "created_at", "updated_at", "geometry"};
    int col[NCOL];
    tsi_hc_index_cols ic;
    if (!tsi_hc_cols(r, res, NCOL, names, col) || !tsi_hc_index_cols_of(r, res, &ic)) {
        PQclear(res);
        return 0;
    }
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_int(&w, "id", tsi_hc_ival(res, 0, ic.id));
    tsi_jsonw_kv_int(&w, "intersection_id", tsi_hc_ival(res, 0, ic.id));
    tsi_jsonw_kv_str(&w, "name", PQgetvalue(res, 0, ic.name));
    tsi_hc_kv_pg(&w, r->dl, "latitude", res, 0, ic.lat);
    tsi_hc_kv_pg(&w, r->dl, "longitude", res, 0, ic.lon);
    tsi_jsonw_kv_str(&w, "geometry", PQgetvalue(res, 0, col[GEOM]));
    tsi_jsonw_key(&w, "lane_count");
    if (PQgetisnull(res, 0, col[LANES]))
        tsi_jsonw_null(&w);
    else
        tsi_jsonw_int(&w, tsi_hc_ival(res, 0, col[LANES]));
    tsi_jsonw_key(&w, "revision");
    if (PQgetisnull(res, 0, col[REV]))
        tsi_jsonw_null(&w);
    else
        tsi_jsonw_int(&w, tsi_hc_ival(res, 0, col[REV]));
    tsi_jsonw_key(&w, "metadata");
    const char *md = PQgetvalue(res, 0, col[META]);
    tsi_jsonw_raw(&w, md, strlen(md)); /* jsonb text from PostgreSQL: valid JSON */
    char tb[48];
    stamp_text(r->dl, tb, sizeof tb, PQgetvalue(res, 0, col[CREATED]));
    tsi_jsonw_kv_str(&w, "created_at", tb);
    stamp_text(r->dl, tb, sizeof tb, PQgetvalue(res, 0, col[UPDATED]));
    tsi_jsonw_kv_str(&w, "updated_at", tb);
    tsi_jsonw_key(&w, "current");
    if (PQgetisnull(res, 0, ic.ts)) {
        tsi_jsonw_null(&w);
    } else {
        tsi_jsonw_object(&w);
        tsi_hc_write_index_obj(&w, r->dl, res, 0, &ic, false);
        tsi_jsonw_end(&w);
    }
    tsi_jsonw_end(&w);
    PQclear(res);
    return 0;
}
