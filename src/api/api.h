/* api/api.h — what the rooms of the API server share (internal to src/api/).
 *
 * One tsi_api (the server's state) lives for the whole run. Each request gets a tsi_req:
 * its arena, its response body and status, and the worker (thread-local PostgreSQL and
 * DuckDB connections) it runs on.
 *
 * Ownership: tsi_req owns its arena and body (released by the server after the response
 * is queued). Handlers borrow the request; they never keep pointers into it. The worker
 * belongs to its thread. */
#ifndef TSI_API_API_H
#define TSI_API_API_H

#include <libpq-fe.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <duckdb.h>

#include "api/dialect.h"
#include "base/arena.h"
#include "base/buf.h"
#include "base/error.h"

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
    int gzip_min; /* bytes */
    bool access_log;
    atomic_int db_up;     /* the monitor's view */
    atomic_ullong gen;    /* bumped on NOTIFY tsi_latest and on source switches */
    atomic_int listening; /* the monitor holds a LISTEN */
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
} tsi_api;

extern tsi_api *tsi_api_g; /* the running server */

typedef struct tsi_worker {
    PGconn *pg;
    duckdb_connection dc;
    bool dc_ok;
} tsi_worker;

typedef struct tsi_req {
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    char id[24];
    tsi_arena *arena;
    tsi_buf body;
    int status;
    const char *content_type;
    const char *data_source; /* "postgres" | "parquet" | NULL */
    const char *cache_control;
    const char *location; /* a redirect's target (arena) */
    int route;
    const tsi_dialect *dl; /* the version asked for (/api/v1 or v2; unversioned: v1's) */
    int64_t path_id;       /* the {id} segment as an integer, -1 when it is not one */
    char path_text[64];    /* the {id} segment as written (v1 echoes it as a string) */
    const char *err_code, *err_field;
    /* a pre-encoded body (cache): borrowed, copied into the response */
    const char *raw;
    size_t raw_len;
    bool raw_gz;
    char *raw_owned;
    bool raw_blob; /* raw is a blob this request holds a reference to (handed to MHD) */
} tsi_req;

/* Reference-counted immutable buffers (the cached current index): a response borrows
 * one without copying it, and libmicrohttpd drops the reference when it is sent.
 * new → data with one reference; ref/unref take and drop one (unref frees at 0). */
char *tsi_api_blob_new(const char *p, size_t n);
void tsi_api_blob_ref(const char *data);
void tsi_api_blob_unref(void *data);

/* monotonic seconds */
double tsi_api_now(void);

/* The worker of the calling thread (created on first use). */
tsi_worker *tsi_api_worker(void);
/* A connected PostgreSQL connection of this worker with statements prepared, or NULL
 * when the database is unreachable (the monitor is told). */
PGconn *tsi_api_pg(tsi_req *r);
/* Tells the server that a query failed on a broken connection: drops it. */
void tsi_api_pg_broken(tsi_req *r);
/* A helper connection (statements prepared, as tsi_api_pg's) for a request that reads
 * on a second backend at once, or NULL when none is free or the database is down: never
 * waits. One per two cores; *slot names it for tsi_api_pg_return, which every borrow must
 * reach (broken: the connection is dropped, and reconnected by a later borrow). */
PGconn *tsi_api_pg_borrow(tsi_req *r, int *slot);
void tsi_api_pg_return(int slot, bool broken);
/* Whether reads go to Parquet now (mode parquet, or auto while the DB is down). */
bool tsi_api_use_parquet(void);

/* The request's query parameter (NULL when absent). */
const char *tsi_req_arg(tsi_req *r, const char *name);
const char *tsi_req_header(tsi_req *r, const char *name);

/* Error response in the request's dialect; returns 0 so handlers `return api_error(...)`.
 * v2: {"detail","code","field"} with status. v1 (FastAPI's): a 400 naming a field is a
 * parameter that failed validation, answered 422 {"detail":[{type: "value_error", loc,
 * msg, input}]}; anything else {"detail": text} with status. */
int tsi_api_error(tsi_req *r, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* An invalid parameter with pydantic's words for v1: type (e.g. "int_parsing"), msg, ctx
 * (a JSON object's text, or NULL), loc "query" or "path"; v2 answers 400 with the
 * formatted detail and code invalid_parameter (missing_parameter when type is
 * "missing"). Returns 0. */
typedef struct tsi_pyerr {
    const char *type;
    const char *loc;
    char msg[200];
    char ctx[160];
} tsi_pyerr;
int tsi_api_invalid(tsi_req *r, const char *field, const tsi_pyerr *pe, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* {"detail": text} in v1 (the original's HTTPException), the v2 error otherwise */
int tsi_api_detail(tsi_req *r, int status, const char *code, const char *field, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));

/* gzip (RFC 1952) of in[0..n) into a malloc'd buffer; returns 0 or -1. */
int tsi_api_gzip(const char *in, size_t n, int level, char **out, size_t *out_len);

/* The route table (routes.c): the router, the metric names and the 404/405/redirect
 * logic all read it; a new endpoint is one row and one handler. Patterns are matched
 * segment by segment; "{id}" matches one segment (an intersection id). Versioned rows
 * exist under /api/v1 and /api/v2 (the request's dialect says which); the others at the
 * root. `slash`: the canonical path ends in '/' (v1 redirects the other form, as
 * FastAPI's redirect_slashes does). */
typedef int (*tsi_handler)(tsi_req *r);
typedef struct tsi_route_def {
    int id;              /* R_*: index of the metrics */
    const char *name;    /* metric label */
    const char *pattern; /* "/safety/history/{id}/stats" */
    bool versioned;
    bool slash;
    tsi_handler handler;
} tsi_route_def;
extern const tsi_route_def tsi_routes[]; /* ends with pattern == NULL */
const char *tsi_route_name(int id);

/* handlers, by resource family: the current index (h_index.c), history and statistics
 * (h_history.c), comparison and ranking (h_rank.c), spatial (h_spatial.c),
 * intersections (h_intersections.c), the service endpoints (h_service.c) */
int tsi_h_index_all(tsi_req *r);
int tsi_h_index_one(tsi_req *r);
int tsi_h_history_one(tsi_req *r);
int tsi_h_history_all(tsi_req *r);
int tsi_h_stats(tsi_req *r);
int tsi_h_compare(tsi_req *r);
int tsi_h_ranking(tsi_req *r);
int tsi_h_nearby(tsi_req *r);
int tsi_h_route(tsi_req *r);
int tsi_h_area(tsi_req *r);
int tsi_h_intersection(tsi_req *r);
int tsi_h_geometry(tsi_req *r); /* GET /intersections/geometry?bbox= (lane polylines) */
int tsi_h_health(tsi_req *r);
int tsi_h_metrics(tsi_req *r);
int tsi_h_openapi(tsi_req *r);
int tsi_h_config(tsi_req *r);

/* queries.c: prepares every statement on a fresh connection */
int tsi_api_prepare(PGconn *c);

/* fallback.c: reads from the indices Parquet archive through DuckDB */
typedef struct tsi_point {
    int64_t iid;
    int64_t ts;          /* epoch seconds: the bin's start */
    int64_t first;       /* the bin's first instant with data (hour_of_day, day_of_week) */
    double si, vru, veh; /* NaN: NULL (the columns' CHECKs keep NaN out) */
    int64_t vol;
} tsi_point;
/* latest row per intersection (within the last 7 days of files) into r->body as the
 * /safety/index/ array; one == -1 for all. Returns HTTP status (200/404/503). */
int tsi_fb_index(tsi_req *r, int64_t one);
/* series of one intersection in [t0, t1) at bucket "1min|1hour|1day|1week|1month" */
int tsi_fb_series(tsi_req *r, int64_t iid, int64_t t0, int64_t t1, const char *agg, tsi_point **out,
                  int *n);
/* stats over minutes: fills n, avg, min, max, std, vol, hr; returns 0 or <0 */
typedef struct tsi_stats {
    int64_t iid;
    double n, avg, min, max, std, vol, hr;
    double first, last; /* epoch seconds of the first and last minute with data (NaN: none) */
} tsi_stats;
int tsi_fb_stats(tsi_req *r, int64_t iid, int64_t t0, int64_t t1, tsi_stats *s);
/* name/position of an intersection from the server's cache (PostgreSQL when it was
 * up, else archive/intersections/<file>.parquet); returns false when unknown. */
bool tsi_api_int_info(int64_t id, char *name, size_t len, double *lat, double *lon);
void tsi_api_int_refresh(PGconn *c);
void tsi_api_int_load_parquet(void);

/* tz.c: the deployment's time zone (TSI_TIMEZONE). init validates the IANA name, sets TZ
 * and builds the offset table; the rest are lock-free and thread-safe. Days are day
 * numbers since 1970-01-01 of the local calendar. */
int tsi_api_tz_init(const char *name, tsi_error *err);
bool tsi_api_tz_utc(void);
const char *tsi_api_tz_name(void);
int32_t tsi_api_tz_offset(int64_t t);      /* seconds east of UTC at instant t */
int64_t tsi_api_tz_day_start(int64_t day); /* first instant of a local day */
int64_t tsi_api_tz_local_day(int64_t t);   /* the local day of instant t */

/* openapi.c */
extern const char tsi_openapi_v1_json[], tsi_openapi_v2_json[];

#endif
