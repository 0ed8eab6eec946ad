/* api/req.c — a request's arguments and headers, the error answers in the request's
 * dialect (v2's {"detail","code","field"}, v1's FastAPI bodies), reference-counted
 * response blobs and gzip (req.h). */
#include "api/req.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/jsonw.h"

/* ---- arguments and headers -------------------------------------------------------------- */
const char *tsi_req_arg(tsi_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *tsi_req_header(tsi_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* the v2 body {"detail","code","field"} */
static void error_v2(tsi_req *r, int status, const char *code, const char *field,
                     const char *detail)
{
    tsi_buf_reset(&r->body);
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_str(&w, "detail", detail);
    tsi_jsonw_kv_str(&w, "code", code);
    if (field)
        tsi_jsonw_kv_str(&w, "field", field);
    else
        tsi_jsonw_kv_null(&w, "field");
    tsi_jsonw_end(&w);
    r->status = status;
}

/* FastAPI's HTTPException body {"detail": text} */
static void error_detail(tsi_req *r, int status, const char *detail)
{
    tsi_buf_reset(&r->body);
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_str(&w, "detail", detail);
    tsi_jsonw_end(&w);
    r->status = status;
}

/* FastAPI's RequestValidationError: 422 {"detail":[{type, loc, msg, input[, ctx]}]} */
static void error_422(tsi_req *r, const char *field, const tsi_pyerr *pe)
{
    bool path = pe->loc && strcmp(pe->loc, "path") == 0;
    const char *input = !strcmp(pe->type, "missing") ? NULL
                        : path                       ? r->path_text
                                                     : tsi_req_arg(r, field);
    tsi_buf_reset(&r->body);
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_object(&w);
    tsi_jsonw_key(&w, "detail");
    tsi_jsonw_array(&w);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_str(&w, "type", pe->type);
    tsi_jsonw_key(&w, "loc");
    tsi_jsonw_array(&w);
    tsi_jsonw_str(&w, path ? "path" : "query");
    tsi_jsonw_str(&w, field);
    tsi_jsonw_end(&w);
    tsi_jsonw_kv_str(&w, "msg", pe->msg);
    tsi_jsonw_kv_str(&w, "input", input); /* NULL -> null */
    if (pe->ctx[0]) {
        tsi_jsonw_key(&w, "ctx");
        tsi_jsonw_raw(&w, pe->ctx, strlen(pe->ctx));
    }
    tsi_jsonw_end(&w);
    tsi_jsonw_end(&w);
    tsi_jsonw_end(&w);
    r->status = 422;
}

static void error_done(tsi_req *r, const char *code, const char *field)
{
    r->content_type = "application/json";
    r->err_code = code;
    r->err_field = field;
    if (r->raw_blob)
        tsi_api_blob_unref((void *)r->raw);
    r->raw_blob = false;
    r->raw = NULL;
}

int tsi_api_error(tsi_req *r, int status, const char *code, const char *field, const char *fmt, ...)
{
    char detail[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (r->dl && r->dl->fastapi_errors) {
        if (status == 400 && field) { /* a parameter that failed validation */
            tsi_pyerr pe = {.type =
                                strcmp(code, "missing_parameter") == 0 ? "missing" : "value_error",
                            .loc = "query"};
            snprintf(pe.msg, sizeof pe.msg, "%s",
                     strcmp(pe.type, "missing") == 0 ? "Field required" : "");
            if (!pe.msg[0])
                snprintf(pe.msg, sizeof pe.msg, "Value error, %.180s", detail);
            error_422(r, field, &pe);
        } else {
            error_detail(r, status, detail);
        }
    } else {
        error_v2(r, status, code, field, detail);
    }
    error_done(r, code, field);
    return 0;
}

int tsi_api_invalid(tsi_req *r, const char *field, const tsi_pyerr *pe, const char *fmt, ...)
{
    const char *code = strcmp(pe->type, "missing") == 0 ? "missing_parameter" : "invalid_parameter";
    if (r->dl && r->dl->fastapi_errors) {
        error_422(r, field, pe);
    } else {
        char detail[600];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        error_v2(r, 400, code, field, detail);
    }
    error_done(r, code, field);
    return 0;
}

int tsi_api_detail(tsi_req *r, int status, const char *code, const char *field, const char *fmt,
                   ...)
{
    char detail[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (r->dl && r->dl->fastapi_errors)
        error_detail(r, status, detail);
    else
        error_v2(r, status, code, field, detail);
    error_done(r, code, field);
    return 0;
}

typedef struct blob {
    atomic_int refs;
    size_t len;
    char data[];
} blob;

static blob *blob_of(const void *data)
{
    return (blob *)(void *)((char *)(uintptr_t)data - offsetof(blob, data));
}

char *tsi_api_blob_new(const char *p, size_t n)
{
    blob *b = malloc(sizeof *b + n + 1);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = n;
    if (n)
        memcpy(b->data, p, n);
    b->data[n] = '\0';
    return b->data;
}

void tsi_api_blob_ref(const char *data)
{
    atomic_fetch_add(&blob_of(data)->refs, 1);
}

void tsi_api_blob_unref(void *data)
{
    blob *b = blob_of(data);
    if (atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

int tsi_api_gzip(const char *in, size_t n, int level, char **out, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&z, (uLong)n) + 32;
    char *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)buf;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = z.total_out;
    return 0;
}
