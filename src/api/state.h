/* api/state.h — the state of `tsi serve` that every room of the API reads: the server
 * (tsi_api: configuration, the monitor's view of the database, counters, the cache of
 * the current index), the route ids the metrics are kept by, and the route table's type.
 *
 * One tsi_api lives for the whole run (tsi_api_g, set by server.c before anything else
 * starts). Ownership: server.c owns it and writes its configuration before the threads
 * start; afterwards the atomics are shared by all threads, the caches are guarded by their
 * mutex, postgis/pgversion by info_mu (written by the monitor, pool.c). The route table
 * (routes.c) is static; the server points `routes` at it at start, so that whoever needs a
 * route's name (the access log, /metrics) reads it here without depending on the table's
 * module (which depends on the handlers). */
#ifndef TSI_API_STATE_H
#define TSI_API_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <duckdb.h>

enum tsi_api_source { TSI_SRC_AUTO = 0, TSI_SRC_POSTGRES, TSI_SRC_PARQUET };

/* routes, for metrics */
enum tsi_route {
    R_HEALTH = 0,
    R_METRICS,
    R_OPENAPI,
    R_INDEX_ALL,
    R_INDEX_ONE,
    R_HISTORY_ALL,
    R_HISTORY_ONE,
    R_STATS,
    R_COMPARE,
    R_RANKING,
    R_NEARBY,
    R_ROUTE,
    R_AREA,
    R_INTERSECTION,
    R_CONFIG,
    R_GEOMETRY,
    R_STATIC,
    R_OPTIONS,
    R_NOTFOUND,
    R__COUNT
};

/* The route table (rows in routes.c): the router, the metric names and the
 * 404/405/redirect logic all read it; a new endpoint is one row and one handler. Patterns
 * are matched segment by segment; "{id}" matches one segment (an intersection id).
 * Versioned rows exist under /api/v1 and /api/v2 (the request's dialect says which); the
 * others at the root. `slash`: the canonical path ends in '/' (v1 redirects the other
 * form, as FastAPI's redirect_slashes does). */
struct tsi_req;
typedef int (*tsi_handler)(struct tsi_req *r);
typedef struct tsi_route_def {
    int id;              /* R_*: index of the metrics */
    const char *name;    /* metric label */
    const char *pattern; /* "/safety/history/{id}/stats" */
    bool versioned;
    bool slash;
    tsi_handler handler;
} tsi_route_def;

#define TSI_API_NBUCKETS 14
extern const double tsi_api_buckets[TSI_API_NBUCKETS]; /* seconds, last = +Inf */

typedef struct tsi_api_metrics {
    atomic_ullong req[R__COUNT][6]; /* by status class 1xx..5xx ([0] unused) */
    atomic_ullong hist[R__COUNT][TSI_API_NBUCKETS];
    atomic_ullong sum_us[R__COUNT];
    atomic_ullong cache_hits, cache_misses;
    atomic_ullong parquet_answers, db_errors, reconnects;
    atomic_int pool_connected, pool_in_use;
} tsi_api_metrics;

typedef struct tsi_cached {
    pthread_mutex_t mu;
    char *plain, *gz; /* reference-counted blobs (tsi_api_blob_*), one reference owned */
    size_t plain_len, gz_len;
    uint64_t gen;
    double at;  /* monotonic seconds */
    int source; /* TSI_SRC_POSTGRES or TSI_SRC_PARQUET */
} tsi_cached;

typedef struct tsi_api {
    int port;
    int threads;
    int source_mode;    /* TSI_SRC_* */
    char web_dir[4096]; /* "" = none */
    char archive_dir[4096];
    char tile_url[2048]; /* --tile-url / TSI_TILE_URL; "" = none (config answers null) */
    size_t max_query;    /* bytes of the query string */
    size_t max_body;
    int gzip_min;      /* bytes */
    int stale_seconds; /* --stale-seconds: a current answer older than this is stale */
    int statement_ms;  /* --statement-timeout-ms of the API's sessions */
    bool access_log;
    atomic_int db_up;          /* the monitor's view (changed through tsi_api_db_state, pool.h) */
    atomic_llong source_since; /* epoch seconds since which reads come from where they do */
    atomic_ullong gen;         /* bumped on NOTIFY tsi_latest and on source switches */
    atomic_int listening;      /* the monitor holds a LISTEN */
    atomic_int draining;
    atomic_int inflight;
    atomic_int stop;
    double started;
    tsi_api_metrics m;
    tsi_cached index_cache[3]; /* by API version (1, 2): each encodes the index its way */
    char postgis[64], pgversion[64];
    pthread_mutex_t info_mu;
    duckdb_database duck;
    bool duck_ok;
    const tsi_route_def *routes; /* the route table (ends with name == NULL) */
} tsi_api;

extern tsi_api *tsi_api_g; /* the running server */

/* monotonic seconds */
double tsi_api_now(void);

/* The metric label of a route id: the first row of the server's table with that id,
 * "not_found" when none (or before the server set its table). Static text. */
const char *tsi_api_route_name(int id);

#endif
