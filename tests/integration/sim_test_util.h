/* tests/integration/sim_test_util.h — helpers shared by the `tsi sim` contract tests:
 * start a simulator, talk REST to it, capture its WebSocket streams.
 * Header-only (static functions): included by test_sim*.c after cmocka.h. */
#ifndef TSI_TEST_SIM_UTIL_H
#define TSI_TEST_SIM_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json.h"
#include "proc_helper.h"
#include "vcc/ws_client.h"

/* 2026-11-25T12:00:00Z: 07:00 in the simulator's default time zone (UTC-5), the AM rush */
#define SIM_START "2026-11-25T12:00:00Z"

typedef struct sim_t {
    th_proc proc;
    int port;
    char base[64]; /* http://127.0.0.1:PORT */
    char ws[64];   /* ws://127.0.0.1:PORT */
} sim_t;

static inline double sim_ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Starts `tsi sim` on a free port with --start SIM_START and the extra arguments. */
static inline void sim_start(sim_t *s, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    char port[16];
    const char *args[64];
    for (int attempt = 0; attempt < 3; attempt++) {
        s->port = th_free_port();
        assert_true(s->port > 0);
        snprintf(port, sizeof port, "%d", s->port);
        int n = 0;
        args[n++] = "sim";
        args[n++] = "--port";
        args[n++] = port;
        args[n++] = "--start";
        args[n++] = SIM_START;
        args[n++] = "--log-level";
        args[n++] = getenv("TH_SIM_LOG_LEVEL") ? getenv("TH_SIM_LOG_LEVEL") : "warn";
        for (const char *const *e = extra; e && *e && n < 62; e++)
            args[n++] = *e;
        args[n] = NULL;
        th_proc_start(&s->proc, args, NULL);
        snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
        snprintf(s->ws, sizeof s->ws, "ws://127.0.0.1:%d", s->port);
        char url[128];
        snprintf(url, sizeof url, "%s/healthz", s->base);
        if (th_wait_http(&s->proc, url, 60000) == 200)
            return;
        th_proc_stop(&s->proc); /* the port was taken meanwhile: try another */
    }
    fail_msg("tsi sim did not start");
}

/* GET base+path with an optional bearer token; returns the status. */
static inline int sim_get(sim_t *s, const char *path, const char *tok, char **body)
{
    char url[1024], h[1200];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    const char *hdr[] = {h, NULL};
    if (tok)
        snprintf(h, sizeof h, "Authorization: Bearer %s", tok);
    return th_http("GET", url, tok ? hdr : NULL, NULL, body, NULL);
}

static inline int sim_post(sim_t *s, const char *path, const char *body_in, char **body)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    return th_http("POST", url, hdr, body_in, body, NULL);
}

static inline void json_doc(tsi_json *d, const char *text)
{
    tsi_error e = {0};
    int rc = tsi_json_parse_alloc(d, text, strlen(text), TSI_JSON_MAX_TOKS, &e);
    if (rc < 0)
        fail_msg("not JSON (%s %s): %.200s", e.message, e.detail, text);
}

static inline int count_array(const char *text)
{
    tsi_json d;
    json_doc(&d, text);
    assert_true(tsi_json_is_array(&d, 0));
    int n = 0;
    for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i))
        n++;
    tsi_json_free(&d);
    return n;
}

/* A fresh access token (malloc'd). */
static inline char *sim_token(sim_t *s)
{
    char url[128], *body = NULL;
    snprintf(url, sizeof url, "%s/api/auth/client", s->base);
    int st =
        th_http("POST", url, NULL, "client_id=tsi-sim&client_secret=tsi-sim-secret", &body, NULL);
    assert_int_equal(st, 200);
    tsi_json d;
    json_doc(&d, body);
    char tok[1024];
    assert_true(tsi_json_str(&d, tsi_json_get(&d, 0, "access_token"), tok, sizeof tok) > 0);
    tsi_json_free(&d);
    free(body);
    return strdup(tok);
}

/* A one-time stream key ("bsm" or "psm"), malloc'd. */
static inline char *sim_key(sim_t *s, const char *tok, const char *kind)
{
    char path[64], *body = NULL;
    snprintf(path, sizeof path, "/api/%s/key", kind);
    assert_int_equal(sim_get(s, path, tok, &body), 200);
    return body;
}

/* A number field of /sim/status. */
static inline int64_t sim_status(sim_t *s, const char *field)
{
    char *body = NULL;
    assert_int_equal(sim_get(s, "/sim/status", NULL, &body), 200);
    tsi_json d;
    json_doc(&d, body);
    int64_t v = 0;
    assert_int_equal(tsi_json_int64(&d, tsi_json_get(&d, 0, field), &v), 0);
    tsi_json_free(&d);
    free(body);
    return v;
}

static inline int64_t sim_now(sim_t *s)
{
    return sim_status(s, "now");
}

/* The simulated tick (ms) of a frame: from its first message's timestamp and secMark;
 * -1 for an empty frame. */
static inline int64_t frame_tick(const char *frame)
{
    const char *t = strstr(frame, "\"timestamp\":");
    const char *m = strstr(frame, "\"secMark\":");
    if (!t || !m)
        return -1;
    long long ts = atoll(t + 12), sm = atoll(m + 10);
    return ts - ((ts % 60000 - sm + 60000) % 60000);
}

/* ---- stream capture with vcc/ws_client ---- */

typedef struct capture {
    char url[1024];
    bool url_used;
    sim_t *sim; /* when set with tok/kind: every connection fetches a fresh key */
    const char *tok, *kind;
    char **frames;
    size_t n, cap;
    int connected, failed, closed;
    double t_first, t_last;
    tsi_ws_client *c;
} capture;

static inline void capture_init(capture *c, const char *fmt, ...)
{
    memset(c, 0, sizeof *c);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->url, sizeof c->url, fmt, ap);
    va_end(ap);
}

static inline int capture_url(void *ud, char *url, size_t len)
{
    capture *c = ud;
    if (c->sim) {
        char *k = sim_key(c->sim, c->tok, c->kind);
        snprintf(url, len, "%s/ws/%s?key=%s", c->sim->ws, c->kind, k);
        free(k);
        return 0;
    }
    if (c->url_used)
        return TSI_E_UNAVAILABLE;
    c->url_used = true;
    snprintf(url, len, "%s", c->url);
    return 0;
}

static inline void capture_frame(void *ud, const char *data, size_t len)
{
    capture *c = ud;
    double t = sim_ms_now();
    if (c->n == 0)
        c->t_first = t;
    c->t_last = t;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->frames = realloc(c->frames, sizeof *c->frames * c->cap);
        assert_non_null(c->frames);
    }
    c->frames[c->n] = malloc(len + 1);
    memcpy(c->frames[c->n], data, len);
    c->frames[c->n][len] = '\0';
    c->n++;
}

static inline void capture_event(void *ud, int ev, const char *detail)
{
    (void)detail;
    capture *c = ud;
    if (ev == TSI_WS_CONNECTED)
        c->connected++;
    else if (ev == TSI_WS_FAILED)
        c->failed++;
    else if (ev == TSI_WS_CLOSED)
        c->closed++;
}

/* Runs the client for ms milliseconds (or, without reconnect, until the stream ends). */
static inline void capture_run(capture *c, int ms, bool reconnect)
{
    tsi_ws_client_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.get_url = capture_url;
    cfg.on_frame = capture_frame;
    cfg.on_event = capture_event;
    cfg.ud = c;
    cfg.reconnect = reconnect;
    cfg.backoff_min_ms = 50;
    cfg.backoff_max_ms = 200;
    tsi_error e = {0};
    assert_int_equal(tsi_ws_client_new(&c->c, &cfg, &e), 0);
    tsi_ws_client_run(c->c, ms);
    tsi_ws_client_free(c->c);
    c->c = NULL;
}

static inline void *capture_thread(void *arg)
{
    capture *c = arg;
    capture_run(c, (int)c->t_first, false); /* t_first carries the duration until then */
    return NULL;
}

/* Runs two captures concurrently for ms milliseconds. */
static inline void capture_run2(capture *a, capture *b, int ms)
{
    pthread_t ta, tb;
    a->t_first = b->t_first = ms;
    assert_int_equal(pthread_create(&ta, NULL, capture_thread, a), 0);
    assert_int_equal(pthread_create(&tb, NULL, capture_thread, b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
}

static inline void capture_free(capture *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->frames[i]);
    free(c->frames);
    c->frames = NULL;
    c->n = c->cap = 0;
}

#endif
