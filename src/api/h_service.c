/* api/h_service.c — the service endpoints: GET /health (liveness, and v2's readiness),
 * /metrics (Prometheus text: the server's counters by route, the database's facts, the
 * collector's status file), /openapi.json (the embedded document of the version asked
 * for) and /config (what the dashboard needs to know). */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "api/handlers.h"
#include "api/pool.h"
#include "api/state.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/options.h"
#include "core/json.h"
#include "db/result.h"
#include "db/status.h"

/* the OpenAPI documents, NUL-terminated (generated from src/api/openapi_v*.json by
 * cmake/embed_openapi.cmake; read only here) */
extern const char tsi_openapi_v1_json[], tsi_openapi_v2_json[];

/* ---- health, metrics, openapi -----------------------------------------------------------------
 */
int tsi_h_health(tsi_req *r)
{
    tsi_api *a = tsi_api_g;
    bool up = atomic_load(&a->db_up);
    bool parquet = tsi_api_use_parquet();
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_object(&w);
    const char *status =
        up ? "ok" : (a->source_mode == TSI_SRC_POSTGRES ? "unavailable" : "degraded");
    if (a->source_mode == TSI_SRC_PARQUET)
        status = "ok";
    /* /health and /api/v1/health are the original's liveness answer: {"status":"ok"}
     * whenever the server answers, the database's state beside it; /api/v2/health is
     * tsi's readiness: degraded, or 503 unavailable with --source postgres */
    bool liveness = r->dl->version == 1;
    tsi_jsonw_kv_str(&w, "status", liveness ? "ok" : status);
    tsi_jsonw_kv_str(&w, "state", status);
    tsi_jsonw_kv_str(&w, "version", TSI_VERSION);
    tsi_jsonw_kv_double(&w, "uptime_seconds", tsi_api_now() - a->started);
    tsi_jsonw_kv_str(&w, "data_source", parquet ? "parquet" : "postgres");
    char since[TSI_DIALECT_TIME_MAX];
    tsi_dialect_time(r->dl, since, (int64_t)atomic_load(&a->source_since));
    tsi_jsonw_kv_str(&w, "data_source_since", since);
    tsi_jsonw_kv_str(&w, "source_mode",
                     a->source_mode == TSI_SRC_AUTO       ? "auto"
                     : a->source_mode == TSI_SRC_POSTGRES ? "postgres"
                                                          : "parquet");
    tsi_jsonw_key(&w, "database");
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_bool(&w, "reachable", up);
    pthread_mutex_lock(&a->info_mu);
    if (a->pgversion[0])
        tsi_jsonw_kv_str(&w, "server_version", a->pgversion);
    else
        tsi_jsonw_kv_null(&w, "server_version");
    if (a->postgis[0])
        tsi_jsonw_kv_str(&w, "postgis_version", a->postgis);
    else
        tsi_jsonw_kv_null(&w, "postgis_version");
    pthread_mutex_unlock(&a->info_mu);
    tsi_jsonw_end(&w);
    tsi_jsonw_key(&w, "pool");
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_int(&w, "size", a->threads);
    tsi_jsonw_kv_int(&w, "connected", atomic_load(&a->m.pool_connected));
    tsi_jsonw_kv_int(&w, "in_flight", atomic_load(&a->inflight));
    tsi_jsonw_end(&w);
    tsi_jsonw_kv_bool(&w, "parquet_reader", a->duck_ok);
    tsi_jsonw_kv_bool(&w, "dashboard", a->web_dir[0] != '\0');
    tsi_jsonw_end(&w);
    r->status = (!liveness && a->source_mode == TSI_SRC_POSTGRES && !up) ? 503 : 200;
    return 0;
}

/* The collector's counters, from the file `tsi collect` rewrites every status period
 * ($TSI_HOME/run/collect.json): each number or boolean becomes a tsi_collector_* gauge (a
 * key in milliseconds, *_ms, becomes *_seconds: promtool refuses abbreviated units). */
static void metrics_collector(tsi_buf *b)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/run/collect.json", tsi_home());
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    tsi_json d;
    tsi_jtok tok[512];
    if (tsi_json_parse(&d, text, n, tok, 512, NULL) < 1 || !tsi_json_is_object(&d, 0))
        return;
    for (int k = tsi_json_first_key(&d, 0); k >= 0; k = tsi_json_next_key(&d, 0, k)) {
        char key[64];
        double v;
        bool bv;
        if (tsi_json_str(&d, k, key, sizeof key) < 0)
            continue;
        bool ok = true;
        for (char *p = key; *p; p++)
            ok = ok && ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
        if (!ok)
            continue;
        bool num = tsi_json_num(&d, k + 1, &v) == 0;
        if (!num && tsi_json_bool(&d, k + 1, &bv) != 0)
            continue;
        size_t kl = strlen(key);
        if (num && kl > 3 && strcmp(key + kl - 3, "_ms") == 0 && kl + 6 < sizeof key) {
            /* Prometheus wants base units: time_ms -> time_seconds */
            strcpy(key + kl - 3, "_seconds");
            v /= 1000;
        }
        tsi_buf_printf(b,
                       "# HELP tsi_collector_%s The collector's %s, from its status file.\n"
                       "# TYPE tsi_collector_%s gauge\n",
                       key, key, key);
        if (num)
            tsi_buf_printf(b, "tsi_collector_%s %.17g\n", key, v);
        else
            tsi_buf_printf(b, "tsi_collector_%s %d\n", key, bv);
    }
    tsi_json_free(&d);
}

int tsi_h_metrics(tsi_req *r)
{
    tsi_api *a = tsi_api_g;
    tsi_buf *b = &r->body;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    tsi_buf_puts(b, "# HELP tsi_http_requests_total HTTP requests by route and status class.\n"
                    "# TYPE tsi_http_requests_total counter\n");
    for (int rt = 0; rt < R__COUNT; rt++)
        for (int c = 1; c <= 5; c++) {
            unsigned long long n = atomic_load(&a->m.req[rt][c]);
            if (n)
                tsi_buf_printf(b, "tsi_http_requests_total{route=\"%s\",code=\"%dxx\"} %llu\n",
                               tsi_api_route_name(rt), c, n);
        }
    tsi_buf_puts(b, "# HELP tsi_http_request_duration_seconds Request latency by route.\n"
                    "# TYPE tsi_http_request_duration_seconds histogram\n");
    for (int rt = 0; rt < R__COUNT; rt++) {
        unsigned long long cum = 0;
        unsigned long long tot = 0;
        for (int c = 1; c <= 5; c++)
            tot += atomic_load(&a->m.req[rt][c]);
        if (!tot)
            continue;
        for (int i = 0; i < TSI_API_NBUCKETS; i++) {
            cum += atomic_load(&a->m.hist[rt][i]);
            if (i == TSI_API_NBUCKETS - 1)
                tsi_buf_printf(b,
                               "tsi_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"}"
                               " %llu\n",
                               tsi_api_route_name(rt), cum);
            else
                tsi_buf_printf(b,
                               "tsi_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"}"
                               " %llu\n",
                               tsi_api_route_name(rt), tsi_api_buckets[i], cum);
        }
        tsi_buf_printf(b, "tsi_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
                       tsi_api_route_name(rt), atomic_load(&a->m.sum_us[rt]) / 1e6);
        tsi_buf_printf(b, "tsi_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                       tsi_api_route_name(rt), cum);
    }
    bool parquet = tsi_api_use_parquet();
    tsi_buf_printf(
        b,
        "# HELP tsi_db_pool_size Worker threads, each with one connection.\n"
        "# TYPE tsi_db_pool_size gauge\ntsi_db_pool_size %d\n"
        "# HELP tsi_db_pool_connected Open PostgreSQL connections of the workers and helpers.\n"
        "# TYPE tsi_db_pool_connected gauge\ntsi_db_pool_connected %d\n"
        "# HELP tsi_http_in_flight Requests being answered.\n"
        "# TYPE tsi_http_in_flight gauge\ntsi_http_in_flight %d\n"
        "# HELP tsi_db_up Whether PostgreSQL is reachable.\n"
        "# TYPE tsi_db_up gauge\ntsi_db_up %d\n"
        "# HELP tsi_data_source Where reads come from now (1 = this source).\n"
        "# TYPE tsi_data_source gauge\n"
        "tsi_data_source{source=\"postgres\"} %d\ntsi_data_source{source=\"parquet\"} %d\n"
        "# HELP tsi_cache_hits_total Current-index responses served from the cache.\n"
        "# TYPE tsi_cache_hits_total counter\ntsi_cache_hits_total %llu\n"
        "# HELP tsi_cache_misses_total Current-index responses built from the database.\n"
        "# TYPE tsi_cache_misses_total counter\ntsi_cache_misses_total %llu\n"
        "# HELP tsi_parquet_answers_total Answers read from the Parquet archive.\n"
        "# TYPE tsi_parquet_answers_total counter\ntsi_parquet_answers_total %llu\n"
        "# HELP tsi_db_errors_total Queries that failed on a lost connection.\n"
        "# TYPE tsi_db_errors_total counter\ntsi_db_errors_total %llu\n"
        "# HELP tsi_db_connects_total Worker connections opened.\n"
        "# TYPE tsi_db_connects_total counter\ntsi_db_connects_total %llu\n",
        a->threads, atomic_load(&a->m.pool_connected), atomic_load(&a->inflight),
        atomic_load(&a->db_up), !parquet, parquet, atomic_load(&a->m.cache_hits),
        atomic_load(&a->m.cache_misses), atomic_load(&a->m.parquet_answers),
        atomic_load(&a->m.db_errors), atomic_load(&a->m.reconnects));
    tsi_buf_printf(b,
                   "# HELP tsi_data_source_since_timestamp_seconds Since when reads come from"
                   " the source tsi_data_source names (Unix time).\n"
                   "# TYPE tsi_data_source_since_timestamp_seconds gauge\n"
                   "tsi_data_source_since_timestamp_seconds %lld\n",
                   (long long)atomic_load(&a->source_since));
    if (!parquet) {
        PGconn *c = tsi_api_pg(r);
        char spool[PATH_MAX];
        snprintf(spool, sizeof spool, "%s/spool", tsi_home());
        tsi_status s = {0};
        tsi_error e = {0};
        if (c && tsi_status_collect(c, spool, &s, &e) == 0)
            tsi_status_prometheus(&s, b);
        else
            tsi_warn("api", "req=%s database facts missing from /metrics: %s", r->id, e.message);
        tsi_status_free(&s);
        char secs[16];
        snprintf(secs, sizeof secs, "%d", a->stale_seconds);
        const char *v[1] = {secs};
        PGresult *res = c ? PQexecPrepared(c, "current_age", 1, v, NULL, NULL, 0) : NULL;
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
            tsi_buf_printf(b,
                           "# HELP tsi_current_intersections Intersections with a current index.\n"
                           "# TYPE tsi_current_intersections gauge\n"
                           "tsi_current_intersections %s\n"
                           "# HELP tsi_stale_intersections Intersections whose current index is"
                           " older than --stale-seconds.\n"
                           "# TYPE tsi_stale_intersections gauge\n"
                           "tsi_stale_intersections %s\n",
                           tsi_pq_get(res, 0, "current"), tsi_pq_get(res, 0, "stale"));
        PQclear(res);
    }
    metrics_collector(b);
    return 0;
}

int tsi_h_openapi(tsi_req *r)
{
    r->raw = r->dl->version == 1 ? tsi_openapi_v1_json : tsi_openapi_v2_json;
    r->raw_len = strlen(r->raw);
    r->cache_control = "public, max-age=300";
    return 0;
}

int tsi_h_config(tsi_req *r)
{
    tsi_api *a = tsi_api_g;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_object(&w);
    if (a->tile_url[0])
        tsi_jsonw_kv_str(&w, "tile_url", a->tile_url);
    else
        tsi_jsonw_kv_null(&w, "tile_url");
    tsi_jsonw_end(&w);
    r->status = 200;
    return 0;
}
