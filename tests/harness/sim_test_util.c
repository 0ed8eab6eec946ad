/* tests/harness/sim_test_util.c — see sim_test_util.h */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sim_test_util.h"

double sim_ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void sim_start(sim_t *s, const char *const *extra)
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

int sim_get(sim_t *s, const char *path, const char *tok, char **body)
{
    char url[1024], h[1200];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    const char *hdr[] = {h, NULL};
    if (tok)
        snprintf(h, sizeof h, "Authorization: Bearer %s", tok);
    return th_http("GET", url, tok ? hdr : NULL, NULL, body, NULL);
}

int sim_post(sim_t *s, const char *path, const char *body_in, char **body)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    return th_http("POST", url, hdr, body_in, body, NULL);
}

void json_doc(tsi_json *d, const char *text)
{
    tsi_error e = {0};
    int rc = tsi_json_parse_alloc(d, text, strlen(text), TSI_JSON_MAX_TOKS, &e);
    if (rc < 0)
        fail_msg("not JSON (%s %s): %.200s", e.message, e.detail, text);
}

int count_array(const char *text)
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

char *sim_token(sim_t *s)
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

char *sim_key(sim_t *s, const char *tok, const char *kind)
{
    char path[64], *body = NULL;
    snprintf(path, sizeof path, "/api/%s/key", kind);
    assert_int_equal(sim_get(s, path, tok, &body), 200);
    return body;
}

int64_t sim_status(sim_t *s, const char *field)
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

int64_t sim_now(sim_t *s)
{
    return sim_status(s, "now");
}

int64_t frame_tick(const char *frame)
{
    const char *t = strstr(frame, "\"timestamp\":");
    const char *m = strstr(frame, "\"secMark\":");
    if (!t || !m)
        return -1;
    long long ts = atoll(t + 12), sm = atoll(m + 10);
    return ts - ((ts % 60000 - sm + 60000) % 60000);
}

void capture_init(capture *c, const char *fmt, ...)
{
    memset(c, 0, sizeof *c);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->url, sizeof c->url, fmt, ap);
    va_end(ap);
}

int capture_url(void *ud, char *url, size_t len)
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

void capture_frame(void *ud, const char *data, size_t len)
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

void capture_event(void *ud, int ev, const char *detail)
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

void capture_run(capture *c, int ms, bool reconnect)
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

void *capture_thread(void *arg)
{
    capture *c = arg;
    capture_run(c, (int)c->t_first, false); /* t_first carries the duration until then */
    return NULL;
}

void capture_run2(capture *a, capture *b, int ms)
{
    pthread_t ta, tb;
    a->t_first = b->t_first = ms;
    assert_int_equal(pthread_create(&ta, NULL, capture_thread, a), 0);
    assert_int_equal(pthread_create(&tb, NULL, capture_thread, b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
}

void capture_free(capture *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->frames[i]);
    free(c->frames);
    c->frames = NULL;
    c->n = c->cap = 0;
}
