/* api/h_index.c — the current index: GET /safety/index/ (every intersection) and
 * /safety/index/{id} (one), from PostgreSQL's safety_indices_latest or, while it is away,
 * the Parquet archive; the list's encoded answer is cached per API version (plain and
 * gzip), invalidated by NOTIFY tsi_latest (the monitor bumps tsi_api.gen) or after 30 s
 * (1 s when the monitor holds no LISTEN). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/fallback.h"
#include "api/h_common.h"
#include "api/handlers.h"
#include "api/pool.h"
#include "api/state.h"
#include "base/jsonw.h"

/* whether a LATEST_COLS row has what the dialect's index item requires: v1's
 * IntersectionRead has no Optional field, so an intersection without a current index or a
 * position is left out there */
static bool index_complete(const tsi_dialect *dl, PGresult *res, int i, const tsi_hc_index_cols *c)
{
    return !dl->index_complete || (!PQgetisnull(res, i, c->ts) && !PQgetisnull(res, i, c->lat) &&
                                   !PQgetisnull(res, i, c->lon));
}

static void serve_cached(tsi_req *r, tsi_cached *cc, bool gz)
{
    /* no copy: the response holds a reference to the cached bytes (393 kB at 1,000
     * intersections: two copies per request were the plain row's gap to nginx) */
    const char *src = gz ? cc->gz : cc->plain;
    tsi_api_blob_ref(src);
    r->raw = src;
    r->raw_len = gz ? cc->gz_len : cc->plain_len;
    r->raw_gz = gz;
    r->raw_blob = true;
}

static bool wants_gzip(tsi_req *r)
{
    const char *ae = tsi_req_header(r, "Accept-Encoding");
    return ae && strstr(ae, "gzip") && !strstr(ae, "gzip;q=0");
}

/* the Parquet answer of the current index (auto mode: also when PostgreSQL just went away) */
static int index_parquet(tsi_req *r, bool one)
{
    tsi_hc_answer_afresh(r);
    r->data_source = "parquet";
    atomic_fetch_add(&tsi_api_g->m.parquet_answers, 1);
    int st = tsi_fb_index(r, one ? r->path_id : -1);
    if (st == 404)
        return tsi_api_error(r, 404, "not_found", "intersection_id", "Intersection not found");
    return 0;
}

int tsi_h_index_all(tsi_req *r)
{
    tsi_api *a = tsi_api_g;
    if (tsi_api_use_parquet())
        return index_parquet(r, false);
    r->data_source = "postgres";
    tsi_cached *cc = &a->index_cache[r->dl->version];
    uint64_t gen = atomic_load(&a->gen);
    double now = tsi_api_now(), ttl = atomic_load(&a->listening) ? 30.0 : 1.0;
    bool gz = wants_gzip(r);
    pthread_mutex_lock(&cc->mu);
    if (cc->plain && cc->gen == gen && now - cc->at < ttl && cc->source == TSI_SRC_POSTGRES) {
        serve_cached(r, cc, gz);
        pthread_mutex_unlock(&cc->mu);
        atomic_fetch_add(&a->m.cache_hits, 1);
        return 0;
    }
    pthread_mutex_unlock(&cc->mu);
    atomic_fetch_add(&a->m.cache_misses, 1);
    PGconn *c = tsi_hc_need_pg(r);
    if (!c)
        return a->source_mode == TSI_SRC_AUTO ? index_parquet(r, false) : 0;
    PGresult *res = tsi_hc_run(r, c, "index_all", 0, NULL);
    if (!res)
        return a->source_mode == TSI_SRC_AUTO && r->status == 503 ? index_parquet(r, false) : 0;
    tsi_hc_index_cols ic;
    if (!tsi_hc_index_cols_of(r, res, &ic)) {
        PQclear(res);
        return 0;
    }
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_array(&w);
    for (int i = 0; i < PQntuples(res); i++)
        if (index_complete(r->dl, res, i, &ic))
            tsi_hc_write_index_obj(&w, r->dl, res, i, &ic, true);
    tsi_jsonw_end(&w);
    PQclear(res);
    char *z = NULL;
    size_t zl = 0;
    if (tsi_api_gzip(r->body.data, r->body.len, 6, &z, &zl) == 0) {
        char *plain = tsi_api_blob_new(r->body.data, r->body.len);
        char *gzb = tsi_api_blob_new(z, zl);
        free(z);
        if (plain && gzb) {
            pthread_mutex_lock(&cc->mu);
            if (cc->plain)
                tsi_api_blob_unref(cc->plain);
            if (cc->gz)
                tsi_api_blob_unref(cc->gz);
            cc->plain = plain;
            cc->plain_len = r->body.len;
            cc->gz = gzb;
            cc->gz_len = zl;
            cc->gen = gen;
            cc->at = now;
            cc->source = TSI_SRC_POSTGRES;
            if (gz)
                serve_cached(r, cc, true);
            pthread_mutex_unlock(&cc->mu);
        } else {
            if (plain)
                tsi_api_blob_unref(plain);
            if (gzb)
                tsi_api_blob_unref(gzb);
        }
    }
    return 0;
}

int tsi_h_index_one(tsi_req *r)
{
    if (!tsi_hc_need_id(r))
        return 0;
    if (tsi_api_use_parquet())
        return index_parquet(r, true);
    PGconn *c = tsi_hc_need_pg(r);
    if (!c)
        return tsi_api_g->source_mode == TSI_SRC_AUTO ? index_parquet(r, true) : 0;
    r->data_source = "postgres";
    PGresult *res = tsi_hc_run_id(r, c, "index_one");
    if (!res)
        return 0;
    tsi_hc_index_cols ic;
    if (!tsi_hc_index_cols_of(r, res, &ic)) {
        PQclear(res);
        return 0;
    }
    if (PQntuples(res) == 0 || !index_complete(r->dl, res, 0, &ic)) {
        PQclear(res);
        return tsi_api_error(r, 404, "not_found", "intersection_id", "Intersection not found");
    }
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_hc_write_index_obj(&w, r->dl, res, 0, &ic, true);
    PQclear(res);
    return 0;
}
