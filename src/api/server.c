/* api/server.c — `tsi serve`: libmicrohttpd thread pool, router over the route table
 * (routes.c), request lifecycle (request id, access log, CORS, gzip, limits), static files
 * of the dashboard and graceful drain. The connections and the database monitor are
 * pool.c's, the request helpers and error answers req.c's, the endpoints the handlers'
 * (handlers.h). See server.h and docs/api.md. */
#include "api/server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/names.h"
#include "api/pool.h"
#include "api/queries.h"
#include "api/req.h"
#include "api/routes.h"
#include "api/state.h"
#include "base/tz.h"
#include "base/log.h"
#include "db/conn.h"

/* ---- static files --------------------------------------------------------------------- */
static const char *mime_of(const char *path)
{
    static const struct {
        const char *ext, *type;
    } t[] = {{".html", "text/html; charset=utf-8"},
             {".js", "text/javascript; charset=utf-8"},
             {".mjs", "text/javascript; charset=utf-8"},
             {".css", "text/css; charset=utf-8"},
             {".json", "application/json"},
             {".map", "application/json"},
             {".webmanifest", "application/manifest+json"},
             {".svg", "image/svg+xml"},
             {".png", "image/png"},
             {".jpg", "image/jpeg"},
             {".jpeg", "image/jpeg"},
             {".gif", "image/gif"},
             {".webp", "image/webp"},
             {".ico", "image/x-icon"},
             {".woff2", "font/woff2"},
             {".woff", "font/woff"},
             {".ttf", "font/ttf"},
             {".txt", "text/plain; charset=utf-8"},
             {".wasm", "application/wasm"},
             {".pbf", "application/x-protobuf"}};
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
            if (strcasecmp(dot, t[i].ext) == 0)
                return t[i].type;
    return "application/octet-stream";
}

/* a content hash in the file name (Vite: name-Ab12Cd34.js, or name.0123abcd.css) */
static bool hashed_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot)
        return false;
    int run = 0, best = 0, digits = 0;
    for (const char *c = base; c < dot; c++) {
        if (isalnum((unsigned char)*c)) {
            run++;
            digits += isdigit((unsigned char)*c) != 0;
        } else {
            if (run > best && digits)
                best = run;
            run = 0;
            digits = 0;
        }
    }
    if (run > best && digits)
        best = run;
    return best >= 8 && (strchr(base, '-') || strchr(base, '.') != dot);
}

static const char not_built_page[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>tsi: dashboard not found</title>"
    "</head><body><h1>Dashboard not found</h1><p>tsi serve found no dashboard files. Build the "
    "dashboard (web/) into web/dist, or point <code>--web-dir</code> / <code>TSI_WEB_DIR</code> "
    "at the built files.</p><p>The API is at <a href=\"/api/v1/openapi.json\">/api/v1/"
    "openapi.json</a>.</p></body></html>";

/* returns an MHD response for a static file or NULL (404) */
static struct MHD_Response *static_file(tsi_req *r, int *status)
{
    tsi_api *a = tsi_api_g;
    const char *p = r->path;
    if (!a->web_dir[0]) {
        *status = 404;
        r->content_type = "text/html; charset=utf-8";
        return MHD_create_response_from_buffer(sizeof not_built_page - 1, (void *)not_built_page,
                                               MHD_RESPMEM_PERSISTENT);
    }
    if (strstr(p, "..") || strchr(p, '\\') || strlen(p) > 1024) {
        *status = 404;
        return NULL;
    }
    char file[8192];
    bool spa = false;
    if (strcmp(p, "/") == 0)
        snprintf(file, sizeof file, "%s/index.html", a->web_dir);
    else
        snprintf(file, sizeof file, "%s%s", a->web_dir, p);
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        /* a client-side route (no extension): the app's index.html */
        const char *base = strrchr(p, '/');
        if (base && !strchr(base, '.')) {
            snprintf(file, sizeof file, "%s/index.html", a->web_dir);
            fd = open(file, O_RDONLY | O_CLOEXEC);
            if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
                close(fd);
                fd = -1;
            }
            spa = true;
        }
    }
    if (fd < 0) {
        *status = 404;
        if (strcmp(p, "/") == 0 || spa) {
            r->content_type = "text/html; charset=utf-8";
            return MHD_create_response_from_buffer(sizeof not_built_page - 1,
                                                   (void *)not_built_page, MHD_RESPMEM_PERSISTENT);
        }
        return NULL;
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        *status = 500;
        return NULL;
    }
    r->content_type = mime_of(file);
    if (strstr(file, "/index.html") || strcmp(mime_of(file), "text/html; charset=utf-8") == 0)
        r->cache_control = "no-cache";
    else if (hashed_name(file))
        r->cache_control = "public, max-age=31536000, immutable";
    else
        r->cache_control = "public, max-age=3600";
    *status = 200;
    return resp;
}

/* ---- router: the route table (routes.c) ------------------------------------------ */
static bool parse_id(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 18)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* the version a path asks for, and the rest of the path after its prefix (NULL: none) */
static const char *version_of(const char *p, const tsi_dialect **dl)
{
    static const tsi_dialect *const all[] = {&tsi_dialect_v1, &tsi_dialect_v2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        size_t n = strlen(all[i]->prefix);
        if (strncmp(p, all[i]->prefix, n) == 0 && (p[n] == '/' || p[n] == '\0')) {
            *dl = all[i];
            return p + n;
        }
    }
    return NULL;
}

/* up to 8 non-empty segments of a path */
typedef struct {
    const char *s[8];
    size_t n[8];
    int count;
    bool overflow;
} segs;

static void split(const char *p, segs *g)
{
    g->count = 0;
    g->overflow = false;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l > 0) {
            if (g->count == 8) {
                g->overflow = true;
                return;
            }
            g->s[g->count] = p;
            g->n[g->count++] = l;
        }
        p += l;
        if (*p == '/')
            p++;
    }
}

/* whether the path's segments match a pattern's; the {id} segment goes into r */
static bool match(const char *pattern, const segs *g, tsi_req *r)
{
    segs ps;
    split(pattern, &ps);
    if (g->overflow || ps.count != g->count)
        return false;
    for (int i = 0; i < ps.count; i++) {
        if (ps.n[i] == 4 && memcmp(ps.s[i], "{id}", 4) == 0)
            continue;
        if (ps.n[i] != g->n[i] || memcmp(ps.s[i], g->s[i], g->n[i]) != 0)
            return false;
    }
    for (int i = 0; i < ps.count; i++)
        if (ps.n[i] == 4 && memcmp(ps.s[i], "{id}", 4) == 0) {
            snprintf(r->path_text, sizeof r->path_text, "%.*s", (int)g->n[i], g->s[i]);
            if (!parse_id(g->s[i], g->n[i], &r->path_id))
                r->path_id = -1;
        }
    return true;
}

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    tsi_buf *b = cls;
    static const char safe[] = "-._~";
    tsi_buf_putc(b, b->len && strchr(b->data, '?') ? '&' : '?');
    for (int part = 0; part < 2; part++) {
        const char *v = part ? value : key;
        if (part) {
            if (!v)
                break;
            tsi_buf_putc(b, '=');
        }
        for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
            if (isalnum(*c) || strchr(safe, *c))
                tsi_buf_putc(b, (char)*c);
            else
                tsi_buf_printf(b, "%%%02X", *c);
        }
    }
    return MHD_YES;
}

/* 307 to the canonical form of the path (FastAPI's redirect_slashes), query kept */
static void redirect(tsi_req *r, bool slash)
{
    tsi_buf loc = TSI_BUF_INIT;
    size_t n = strlen(r->path);
    while (n > 1 && r->path[n - 1] == '/')
        n--;
    tsi_buf_append(&loc, r->path, n);
    if (slash)
        tsi_buf_putc(&loc, '/');
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, add_arg, &loc);
    r->location = tsi_arena_strdup(r->arena, loc.data);
    tsi_buf_free(&loc);
    tsi_buf_reset(&r->body);
    r->status = 307;
    r->content_type = NULL;
}

/* Dispatches through the route table; fills r. Returns true when handled as API, false
 * for static files. */
static bool route(tsi_req *r)
{
    const char *p = r->path;
    r->dl = &tsi_dialect_v1; /* the unversioned endpoints (/health) are the original's */
    r->path_id = -1;
    const tsi_dialect *dl = NULL;
    const char *rest = version_of(p, &dl);
    if (rest)
        r->dl = dl;
    else if (strncmp(p, "/api/", 5) == 0 || strcmp(p, "/api") == 0)
        r->dl = &tsi_dialect_v2; /* another version: tsi's words */
    segs g;
    split(rest ? rest : p, &g);
    for (const tsi_route_def *d = tsi_routes; d->name; d++) {
        if (!d->pattern || d->versioned != (rest != NULL) || !match(d->pattern, &g, r))
            continue;
        r->route = d->id;
        size_t n = strlen(p);
        bool has_slash = n > 1 && p[n - 1] == '/';
        if (rest && r->dl->fastapi_errors && has_slash != d->slash) {
            redirect(r, d->slash);
            return true;
        }
        d->handler(r);
        return true;
    }
    if (!rest && strncmp(p, "/api/", 5) != 0 && strcmp(p, "/api") != 0)
        return false;
    r->route = R_NOTFOUND;
    if (r->dl->fastapi_errors)
        tsi_api_detail(r, 404, "not_found", NULL, "Not Found");
    else
        tsi_api_error(r, 404, "not_found", NULL, "no such endpoint: %s", p);
    return true;
}

/* ---- request lifecycle ----------------------------------------------------------------- */
typedef struct conn_ctx {
    tsi_req req;
    double t0;
    size_t query_bytes;
    size_t body_bytes;
    bool too_big;
    size_t sent;
} conn_ctx;

static atomic_ullong req_seq;
static uint32_t req_salt;

static enum MHD_Result sum_args(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    (void)kind;
    size_t *n = cls;
    *n += strlen(key) + (value ? strlen(value) : 0) + 2;
    return MHD_YES;
}

static bool accepts_gzip(tsi_req *r)
{
    const char *ae = tsi_req_header(r, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    if (!ae)
        return false;
    const char *g = strstr(ae, "gzip");
    if (!g)
        return false;
    const char *q = strstr(g, "q=0");
    if (q && (q[3] == '\0' || q[3] == ',' || q[3] == ' ' ||
              (q[3] == '.' && q[4] == '0' && !strpbrk(q + 4, "123456789"))))
        return false;
    return true;
}

static void add_common_headers(struct MHD_Response *resp, tsi_req *r)
{
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                            "X-Request-Id, X-Data-Source, X-Data-Source-Since, Link, Location");
    if (r->content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    if (r->data_source)
        MHD_add_response_header(resp, "X-Data-Source", r->data_source);
    if (r->data_source) { /* since when this source answers (RFC 3339, UTC) */
        char since[TSI_DIALECT_TIME_MAX];
        tsi_dialect_time(&tsi_dialect_v2, since, (int64_t)atomic_load(&tsi_api_g->source_since));
        MHD_add_response_header(resp, "X-Data-Source-Since", since);
    }
    if (r->cache_control)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, r->cache_control);
    else if (r->route != R_STATIC)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (atomic_load(&tsi_api_g->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
}

/* v1 answers name their successor: Link: </api/v2/...>; rel="successor-version" */
static void link_successor(struct MHD_Response *resp, tsi_req *r)
{
    const tsi_dialect *dl = NULL;
    const char *rest = version_of(r->path, &dl);
    if (!rest || !dl->successor)
        return;
    char link[1200];
    snprintf(link, sizeof link, "<%s%.1000s>; rel=\"successor-version\"", dl->successor, rest);
    MHD_add_response_header(resp, "Link", link);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    tsi_api *a = tsi_api_g;
    conn_ctx *cx = *con_cls;
    if (!cx) {
        cx = calloc(1, sizeof *cx);
        if (!cx)
            return MHD_NO;
        cx->t0 = tsi_api_now();
        tsi_req *r = &cx->req;
        r->conn = conn;
        r->method = method;
        r->path = url;
        r->route = R_NOTFOUND;
        unsigned long long seq = atomic_fetch_add(&req_seq, 1) + 1;
        snprintf(r->id, sizeof r->id, "%08x%08llx", req_salt, seq);
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, sum_args, &cx->query_bytes);
        atomic_fetch_add(&a->inflight, 1);
        *con_cls = cx;
        return MHD_YES;
    }
    tsi_req *r = &cx->req;
    if (*upload_size) {
        cx->body_bytes += *upload_size;
        if (cx->body_bytes > a->max_body)
            cx->too_big = true;
        *upload_size = 0;
        return MHD_YES;
    }
    r->arena = tsi_arena_new(16 * 1024);
    tsi_buf_reserve(&r->body, 16 * 1024); /* most bodies fit: no regrowth copies */
    r->status = 200;
    r->content_type = "application/json";
    struct MHD_Response *resp = NULL;
    int status = 200;
    bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    const tsi_dialect *dl = NULL;
    r->dl = version_of(r->path, &dl)            ? dl
            : strncmp(r->path, "/api/", 5) == 0 ? &tsi_dialect_v2
                                                : &tsi_dialect_v1;
    if (strcmp(method, "OPTIONS") == 0) {
        r->route = R_OPTIONS;
        r->status = 204;
        r->content_type = NULL;
    } else if (cx->too_big) {
        tsi_api_error(r, 413, "body_too_large", NULL, "request body larger than %zu bytes",
                      a->max_body);
    } else if (!is_get) {
        if (r->dl->fastapi_errors)
            tsi_api_error(r, 405, "method_not_allowed", NULL, "Method Not Allowed");
        else
            tsi_api_error(r, 405, "method_not_allowed", NULL, "method %s is not allowed", method);
    } else if (cx->query_bytes > a->max_query) {
        tsi_api_error(r, 414, "query_too_long", NULL, "query string longer than %zu bytes",
                      a->max_query);
    } else if (!route(r)) {
        r->route = R_STATIC;
        r->content_type = NULL;
        resp = static_file(r, &status);
        if (!resp) {
            if (status == 404) {
                r->content_type = "text/plain; charset=utf-8";
                tsi_buf_puts(&r->body, "404 not found\n");
            }
            r->status = status;
        } else {
            r->status = status;
        }
    }
    status = r->status;
    if (!resp) {
        const char *data = r->raw ? r->raw : r->body.data;
        size_t n = r->raw ? r->raw_len : r->body.len;
        bool gz = r->raw_gz;
        char *zbuf = NULL;
        size_t zlen = 0;
        if (r->raw && r->raw_blob) {
            /* a cached blob: libmicrohttpd sends it in place and drops our reference */
            resp = MHD_create_response_from_buffer_with_free_callback(n, (void *)r->raw,
                                                                      tsi_api_blob_unref);
            r->raw_blob = false;
        } else if (!gz && n >= (size_t)a->gzip_min && status == 200 && accepts_gzip(r) &&
                   tsi_api_gzip(data ? data : "", n, 1, &zbuf, &zlen) == 0) {
            resp = MHD_create_response_from_buffer(zlen, zbuf, MHD_RESPMEM_MUST_FREE);
            gz = true;
        } else if (!r->raw && r->body.data && n > 0) {
            /* the body's malloc'd buffer goes to libmicrohttpd as is (it frees it): no copy */
            resp = MHD_create_response_from_buffer(n, r->body.data, MHD_RESPMEM_MUST_FREE);
            r->body.data = NULL;
            r->body.len = r->body.cap = 0;
        } else {
            resp = MHD_create_response_from_buffer(n, (void *)(data ? data : ""),
                                                   MHD_RESPMEM_MUST_COPY);
        }
        if (gz)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
        if (n >= (size_t)a->gzip_min)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
        cx->sent = zbuf ? zlen : n;
    }
    if (r->route == R_OPTIONS) {
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                "Content-Type, Accept-Encoding, X-Request-Id");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
    }
    if (status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, OPTIONS");
    if (status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "5");
    if (r->location)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
    link_successor(resp, r);
    add_common_headers(resp, r);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    conn_ctx *cx = *con_cls;
    if (!cx)
        return;
    tsi_api *a = tsi_api_g;
    tsi_req *r = &cx->req;
    double dt = tsi_api_now() - cx->t0;
    int rt = r->route >= 0 && r->route < R__COUNT ? r->route : R_NOTFOUND;
    int cls_ = r->status / 100;
    if (cls_ < 1 || cls_ > 5)
        cls_ = 5;
    atomic_fetch_add(&a->m.req[rt][cls_], 1);
    for (int i = 0; i < TSI_API_NBUCKETS; i++)
        if (dt <= tsi_api_buckets[i]) {
            atomic_fetch_add(&a->m.hist[rt][i], 1);
            break;
        }
    atomic_fetch_add(&a->m.sum_us[rt], (unsigned long long)(dt * 1e6));
    if (a->access_log || r->status >= 500) {
        enum tsi_log_level lv = r->status >= 500   ? TSI_LOG_ERROR
                                : r->status >= 400 ? TSI_LOG_WARN
                                                   : TSI_LOG_INFO;
        tsi_log(lv, "api", "req=%s %s %s status=%d bytes=%zu ms=%.2f route=%s%s%s%s%s%s%s%s", r->id,
                r->method ? r->method : "-", r->path ? r->path : "-", r->status, cx->sent, dt * 1e3,
                tsi_api_route_name(rt), r->data_source ? " source=" : "",
                r->data_source ? r->data_source : "", r->err_code ? " code=" : "",
                r->err_code ? r->err_code : "", r->err_field ? " field=" : "",
                r->err_field ? r->err_field : "",
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    }
    tsi_buf_free(&r->body);
    free(r->raw_owned);
    if (r->raw_blob) /* a reference never handed to a response */
        tsi_api_blob_unref((void *)r->raw);
    tsi_arena_free(r->arena);
    free(cx);
    *con_cls = NULL;
    atomic_fetch_sub(&a->inflight, 1);
}

/* ---- the command ------------------------------------------------------------------------ */
static void resolve_web_dir(tsi_api *a, const char *opt)
{
    char cand[3][4096];
    int n = 0;
    if (opt && *opt) {
        snprintf(a->web_dir, sizeof a->web_dir, "%s", opt);
        struct stat st;
        if (stat(a->web_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
            tsi_warn("api", "dashboard directory missing: %s (/ answers 404)", a->web_dir);
            a->web_dir[0] = '\0';
        }
        return;
    }
    snprintf(cand[n++], sizeof cand[0], "web/dist");
    snprintf(cand[n++], sizeof cand[0], "%s/web/dist", TSI_SOURCE_DIR);
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(cand[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            char real[PATH_MAX];
            snprintf(a->web_dir, sizeof a->web_dir, "%s", realpath(cand[i], real) ? real : cand[i]);
            return;
        }
    }
    a->web_dir[0] = '\0';
    tsi_warn("api", "no dashboard found (web/dist): / answers a 404 page; set --web-dir");
}

int tsi_serve_run(const tsi_opts *o)
{
    /* SIGTERM and SIGINT are taken by sigwait below. They are blocked before any thread
     * exists (DuckDB's, libmicrohttpd's, the monitor), which inherit the mask: a signal
     * delivered to a thread that did not block it would end the process at once, without
     * the drain (a DuckDB thread made at open once did, now and then). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    static tsi_api api;
    tsi_api *a = &api;
    memset(a, 0, sizeof *a);
    tsi_api_g = a;
    a->routes = tsi_routes;
    a->port = (int)tsi_opts_int(o, "port");
    a->threads = (int)tsi_opts_int(o, "threads");
    const char *src = tsi_opts_str(o, "source");
    a->source_mode = strcmp(src, "postgres") == 0  ? TSI_SRC_POSTGRES
                     : strcmp(src, "parquet") == 0 ? TSI_SRC_PARQUET
                                                   : TSI_SRC_AUTO;
    a->max_query = (size_t)tsi_opts_int(o, "max-query");
    a->max_body = 1024;
    a->gzip_min = (int)tsi_opts_int(o, "gzip-min");
    a->stale_seconds = (int)tsi_opts_int(o, "stale-seconds");
    a->statement_ms = (int)tsi_opts_int(o, "statement-timeout-ms");
    a->access_log = strcmp(tsi_opts_str(o, "access-log"), "on") == 0;
    int drain = (int)tsi_opts_int(o, "drain-seconds");
    resolve_web_dir(a, tsi_opts_str(o, "web-dir"));
    const char *tile = tsi_opts_str(o, "tile-url");
    if (tile && strlen(tile) >= sizeof a->tile_url) {
        fprintf(stderr, "tsi serve: --tile-url is longer than %zu bytes\n", sizeof a->tile_url - 1);
        return 2;
    }
    snprintf(a->tile_url, sizeof a->tile_url, "%s", tile ? tile : "");
    tsi_error tze = {0};
    if (tsi_tz_init(tsi_opts_str(o, "timezone"), &tze) < 0) {
        fprintf(stderr, "tsi serve: --timezone: %s: %s\n", tze.message, tze.detail);
        return 2;
    }
    const char *ad = getenv("TSI_ARCHIVE_DIR");
    if (ad && *ad)
        snprintf(a->archive_dir, sizeof a->archive_dir, "%s", ad);
    else
        snprintf(a->archive_dir, sizeof a->archive_dir, "%s/archive", tsi_home());
    for (int v = 0; v < 3; v++)
        pthread_mutex_init(&a->index_cache[v].mu, NULL);
    pthread_mutex_init(&a->info_mu, NULL);
    /* response bodies of 100 kB–1 MB are built and freed on every request: keep them in
     * the heap rather than fresh mmap'd pages (page faults were 10 % of a large history
     * answer's CPU) */
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
    a->started = tsi_api_now();
    req_salt = (uint32_t)(time(NULL) ^ (getpid() << 16));

    duckdb_config dcfg;
    if (duckdb_create_config(&dcfg) == DuckDBSuccess) {
        duckdb_set_config(dcfg, "threads", "2");
        a->duck_ok = duckdb_open_ext(NULL, &a->duck, dcfg, NULL) == DuckDBSuccess;
        duckdb_destroy_config(&dcfg);
    }
    tsi_api_int_load_parquet();

    atomic_store(&a->source_since, (long long)time(NULL));
    /* the first view of the database, before accepting requests */
    if (a->source_mode != TSI_SRC_PARQUET) {
        tsi_error e = {0};
        PGconn *c = tsi_db_connect(TSI_ROLE_READER, NULL, &e);
        if (c) {
            tsi_api_int_refresh(c);
            PQfinish(c);
            tsi_api_db_state(true);
        } else {
            tsi_warn("api", "database unreachable at start: %s", e.detail);
        }
    }

    pthread_t mon;
    pthread_create(&mon, NULL, tsi_api_monitor, a);

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)a->port);
    if (inet_pton(AF_INET, tsi_opts_str(o, "bind"), &sa.sin_addr) != 1) {
        fprintf(stderr, "tsi serve: --bind must be an IPv4 address\n");
        atomic_store(&a->stop, 1);
        pthread_join(mon, NULL);
        return 2;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG,
        (uint16_t)a->port, NULL, NULL, answer, a, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)a->threads,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)tsi_opts_int(o, "max-header"), MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "tsi serve: cannot listen on port %d: %s\n", a->port, strerror(errno));
        atomic_store(&a->stop, 1);
        pthread_join(mon, NULL);
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int port = di ? di->port : a->port;
    tsi_info("api", "listening port=%d threads=%d source=%s timezone=%s web_dir=%s archive=%s",
             port, a->threads, src, tsi_tz_name(), a->web_dir[0] ? a->web_dir : "(none)",
             a->archive_dir);

    int sig = 0;
    sigwait(&set, &sig);
    tsi_info("api", "signal %d: draining in-flight requests (up to %d s)", sig, drain);
    atomic_store(&a->draining, 1);
    MHD_socket ls = MHD_quiesce_daemon(d);
    if (ls != MHD_INVALID_SOCKET)
        close(ls);
    double until = tsi_api_now() + drain;
    while (atomic_load(&a->inflight) > 0 && tsi_api_now() < until)
        usleep(20000);
    int left = atomic_load(&a->inflight);
    MHD_stop_daemon(d);
    atomic_store(&a->stop, 1);
    pthread_join(mon, NULL);
    tsi_api_pool_close();
    if (a->duck_ok)
        duckdb_close(&a->duck);
    for (int v = 0; v < 3; v++) {
        if (a->index_cache[v].plain)
            tsi_api_blob_unref(a->index_cache[v].plain);
        if (a->index_cache[v].gz)
            tsi_api_blob_unref(a->index_cache[v].gz);
    }
    tsi_info("api", "stopped unfinished=%d", left);
    return 0;
}
