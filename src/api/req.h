/* api/req.h — one request of `tsi serve` as the handlers see it (tsi_req), its query
 * arguments and headers, the three ways to answer an error in the request's dialect,
 * reference-counted response blobs and gzip.
 *
 * Each request gets a tsi_req: its arena, its response body and status, the dialect asked
 * for and the route's {id}. Ownership: tsi_req owns its arena and body (released by the
 * server, server.c, after the response is queued). Handlers borrow the request; they
 * never keep pointers into it. Strings returned by tsi_req_arg/tsi_req_header belong to
 * libmicrohttpd and live as long as the request. */
#ifndef TSI_API_REQ_H
#define TSI_API_REQ_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/dialect.h"
#include "base/arena.h"
#include "base/buf.h"

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

#endif
