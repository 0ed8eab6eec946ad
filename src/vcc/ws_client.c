/* vcc/ws_client.c — see ws_client.h */
#include "vcc/ws_client.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "base/buf.h"
#include "base/log.h"

/* libwebsockets' OpenSSL global init and teardown are not safe to run concurrently:
 * contexts are created and destroyed one at a time across the process. */
static pthread_mutex_t ctx_mu = PTHREAD_MUTEX_INITIALIZER;

struct tsi_ws_client {
    tsi_ws_client_cfg cfg;
    struct lws_context *ctx;
    struct lws *wsi;
    lws_sorted_usec_list_t sul_connect, sul_deadline;
    tsi_buf frame;
    bool frame_oversize;
    int backoff_ms;
    volatile int stop;
    bool ended; /* without reconnect: the connection is over */
    bool connected, want_close;
    bool have_pending; /* url holds the first URL, fetched before the context existed */
    tsi_ws_stats st;
    pthread_mutex_t mu; /* guards st for readers on other threads */
    char url[2048], host[256], path[1536];
    char *ca_file;
};

int tsi_ws_parse_url(const char *url, bool *tls, char *host, size_t hostlen, int *port, char *path,
                     size_t pathlen)
{
    const char *p;
    if (strncmp(url, "ws://", 5) == 0) {
        *tls = false;
        *port = 80;
        p = url + 5;
    } else if (strncmp(url, "wss://", 6) == 0) {
        *tls = true;
        *port = 443;
        p = url + 6;
    } else {
        return TSI_E_INVALID;
    }
    size_t hl = strcspn(p, ":/?#");
    if (hl == 0 || hl >= hostlen)
        return TSI_E_INVALID;
    memcpy(host, p, hl);
    host[hl] = '\0';
    p += hl;
    if (*p == ':') {
        char *e = NULL;
        long v = strtol(p + 1, &e, 10);
        if (e == p + 1 || v < 1 || v > 65535 || (*e && *e != '/' && *e != '?'))
            return TSI_E_INVALID;
        *port = (int)v;
        p = e;
    }
    if (*p == '#')
        return TSI_E_INVALID;
    int n = snprintf(path, pathlen, "%s%s", *p == '/' ? "" : "/", p);
    if (n < 0 || (size_t)n >= pathlen)
        return TSI_E_INVALID;
    for (const char *c = path; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '#')
            return TSI_E_INVALID;
    return 0;
}

static void event(tsi_ws_client *c, int ev, const char *detail)
{
    if (c->cfg.on_event)
        c->cfg.on_event(c->cfg.ud, ev, detail ? detail : "");
}

static void connect_cb(lws_sorted_usec_list_t *sul);

static void schedule_connect(tsi_ws_client *c, bool after_failure)
{
    if (c->stop)
        return;
    if (!c->cfg.reconnect) {
        c->ended = true;
        lws_cancel_service(c->ctx);
        return;
    }
    int delay = after_failure ? c->backoff_ms : c->cfg.backoff_min_ms;
    if (after_failure) {
        c->backoff_ms *= 2;
        if (c->backoff_ms > c->cfg.backoff_max_ms)
            c->backoff_ms = c->cfg.backoff_max_ms;
    }
    lws_sul_schedule(c->ctx, 0, &c->sul_connect, connect_cb, (lws_usec_t)delay * 1000);
}

static void connect_cb(lws_sorted_usec_list_t *sul)
{
    tsi_ws_client *c = lws_container_of(sul, tsi_ws_client, sul_connect);
    if (c->stop || c->wsi)
        return;
    bool pending = c->have_pending;
    c->have_pending = false;
    if (!pending)
        c->url[0] = '\0';
    if ((!pending && c->cfg.get_url(c->cfg.ud, c->url, sizeof c->url) < 0) || !c->url[0]) {
        pthread_mutex_lock(&c->mu);
        c->st.failures++;
        pthread_mutex_unlock(&c->mu);
        event(c, TSI_WS_FAILED, "no url");
        schedule_connect(c, true);
        return;
    }
    bool tls = false;
    int port = 0;
    if (tsi_ws_parse_url(c->url, &tls, c->host, sizeof c->host, &port, c->path, sizeof c->path) <
        0) {
        pthread_mutex_lock(&c->mu);
        c->st.failures++;
        pthread_mutex_unlock(&c->mu);
        event(c, TSI_WS_FAILED, "bad url");
        schedule_connect(c, true);
        return;
    }
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = c->ctx;
    ci.address = c->host;
    ci.port = port;
    ci.path = c->path;
    ci.host = c->host;
    ci.origin = c->host;
    ci.protocol = NULL; /* no subprotocol header: the VCC names none */
    ci.local_protocol_name = "tsi-ws-client";
    ci.userdata = c;
    ci.pwsi = &c->wsi;
    if (tls) {
        ci.ssl_connection = LCCSCF_USE_SSL;
        if (c->cfg.tls_insecure)
            ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                                 LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
    }
    tsi_buf_reset(&c->frame);
    c->frame_oversize = false;
    if (!lws_client_connect_via_info(&ci)) {
        c->wsi = NULL;
        pthread_mutex_lock(&c->mu);
        c->st.failures++;
        pthread_mutex_unlock(&c->mu);
        event(c, TSI_WS_FAILED, "connect failed");
        schedule_connect(c, true);
    }
}

static void deadline_cb(lws_sorted_usec_list_t *sul)
{
    tsi_ws_client *c = lws_container_of(sul, tsi_ws_client, sul_deadline);
    c->ended = true;
    lws_cancel_service(c->ctx);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    tsi_ws_client *c = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->connected = true;
        c->backoff_ms = c->cfg.backoff_min_ms;
        pthread_mutex_lock(&c->mu);
        c->st.connects++;
        pthread_mutex_unlock(&c->mu);
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, c->cfg.idle_timeout_s);
        event(c, TSI_WS_CONNECTED, c->path);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE: {
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, c->cfg.idle_timeout_s);
        if (!c->frame_oversize) {
            if (c->frame.len + len > c->cfg.max_frame) {
                c->frame_oversize = true;
                tsi_buf_reset(&c->frame);
            } else {
                tsi_buf_append(&c->frame, in, len);
            }
        }
        if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
            if (c->frame_oversize) {
                pthread_mutex_lock(&c->mu);
                c->st.oversize++;
                pthread_mutex_unlock(&c->mu);
            } else {
                pthread_mutex_lock(&c->mu);
                c->st.frames++;
                c->st.bytes += c->frame.len;
                pthread_mutex_unlock(&c->mu);
                c->cfg.on_frame(c->cfg.ud, c->frame.data ? c->frame.data : "", c->frame.len);
            }
            tsi_buf_reset(&c->frame);
            c->frame_oversize = false;
        }
        if (c->want_close || c->stop) {
            c->want_close = false;
            return -1;
        }
        return 0;
    }
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (c->want_close || c->stop) {
            c->want_close = false;
            return -1;
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        char why[256];
        snprintf(why, sizeof why, "%s", in ? (const char *)in : "connection error");
        c->wsi = NULL;
        c->connected = false;
        pthread_mutex_lock(&c->mu);
        c->st.failures++;
        pthread_mutex_unlock(&c->mu);
        event(c, TSI_WS_FAILED, why);
        schedule_connect(c, true);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
        c->wsi = NULL;
        if (c->connected) {
            c->connected = false;
            pthread_mutex_lock(&c->mu);
            c->st.closes++;
            pthread_mutex_unlock(&c->mu);
            event(c, TSI_WS_CLOSED, "closed");
        }
        schedule_connect(c, false);
        return 0;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"tsi-ws-client", callback, 0, 1 << 20, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int tsi_ws_client_new(tsi_ws_client **out, const tsi_ws_client_cfg *cfg, tsi_error *err)
{
    *out = NULL;
    if (!cfg || !cfg->get_url || !cfg->on_frame)
        return tsi_error_set(err, TSI_E_INVALID, "ws client needs get_url and on_frame", NULL);
    tsi_ws_client *c = calloc(1, sizeof *c);
    if (!c)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    c->cfg = *cfg;
    if (c->cfg.backoff_min_ms <= 0)
        c->cfg.backoff_min_ms = 500;
    if (c->cfg.backoff_max_ms < c->cfg.backoff_min_ms)
        c->cfg.backoff_max_ms = c->cfg.backoff_min_ms > 30000 ? c->cfg.backoff_min_ms : 30000;
    if (c->cfg.idle_timeout_s <= 0)
        c->cfg.idle_timeout_s = 30;
    if (c->cfg.max_frame == 0)
        c->cfg.max_frame = 64u << 20;
    if (cfg->ca_file && *cfg->ca_file && !(c->ca_file = strdup(cfg->ca_file))) {
        free(c);
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    }
    c->cfg.ca_file = c->ca_file;
    c->backoff_ms = c->cfg.backoff_min_ms;
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return 0;
}

/* The context is made on the first run, once the first URL tells whether TLS is needed:
 * OpenSSL is initialised only for wss:// (plain ws:// clients never load it). */
static int make_context(tsi_ws_client *c)
{
    c->url[0] = '\0';
    if (c->cfg.get_url(c->cfg.ud, c->url, sizeof c->url) < 0 || !c->url[0]) {
        /* no URL yet: no context either (guessing TLS here would initialise OpenSSL for
         * a plain ws:// peer, and lws does not release that client store) */
        c->url[0] = '\0';
        return 1;
    }
    c->have_pending = true;
    bool tls = strncmp(c->url, "ws://", 5) != 0 || c->cfg.tls_insecure;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.options = tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0;
    info.count_threads = 1;
    info.fd_limit_per_thread = 16;
    info.pt_serv_buf_size = 256 * 1024; /* read in large pieces: frames reach megabytes */
    if (tls && c->ca_file)
        info.client_ssl_ca_filepath = c->ca_file;
    pthread_mutex_lock(&ctx_mu);
    c->ctx = lws_create_context(&info);
    pthread_mutex_unlock(&ctx_mu);
    return c->ctx ? 0 : TSI_E_IO;
}

int tsi_ws_client_run(tsi_ws_client *c, int timeout_ms)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int delay = c->cfg.backoff_min_ms;
    while (!c->ctx && !c->stop) {
        int rc = make_context(c);
        if (rc < 0) {
            tsi_err("ws", "cannot create the websocket client context");
            return TSI_E_IO;
        }
        if (rc == 0)
            break;
        pthread_mutex_lock(&c->mu);
        c->st.failures++;
        pthread_mutex_unlock(&c->mu);
        event(c, TSI_WS_FAILED, "no url");
        if (!c->cfg.reconnect)
            return 0;
        /* wait (stoppable, within the caller's timeout), then ask again */
        for (int waited = 0; waited < delay && !c->stop; waited += 50) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long el = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
            if (timeout_ms >= 0 && el >= timeout_ms)
                return 0;
            usleep(50000);
        }
        delay = delay * 2 > c->cfg.backoff_max_ms ? c->cfg.backoff_max_ms : delay * 2;
    }
    if (!c->ctx)
        return 0;
    c->ended = false;
    if (timeout_ms >= 0)
        lws_sul_schedule(c->ctx, 0, &c->sul_deadline, deadline_cb, (lws_usec_t)timeout_ms * 1000);
    if (!c->wsi)
        lws_sul_schedule(c->ctx, 0, &c->sul_connect, connect_cb, 1);
    while (!c->stop && !c->ended)
        if (lws_service(c->ctx, 0) < 0)
            break;
    lws_sul_cancel(&c->sul_deadline);
    return 0;
}

void tsi_ws_client_stop(tsi_ws_client *c)
{
    c->stop = 1;
    if (c->ctx)
        lws_cancel_service(c->ctx);
}

void tsi_ws_client_close(tsi_ws_client *c)
{
    if (c->wsi) {
        c->want_close = true;
        lws_callback_on_writable(c->wsi);
    }
}

bool tsi_ws_client_connected(const tsi_ws_client *c)
{
    return c->connected;
}

void tsi_ws_client_stats(const tsi_ws_client *c, tsi_ws_stats *out)
{
    pthread_mutex_lock((pthread_mutex_t *)&c->mu);
    *out = c->st;
    pthread_mutex_unlock((pthread_mutex_t *)&c->mu);
}

void tsi_ws_client_free(tsi_ws_client *c)
{
    if (!c)
        return;
    if (c->ctx) {
        pthread_mutex_lock(&ctx_mu);
        lws_context_destroy(c->ctx);
        pthread_mutex_unlock(&ctx_mu);
    }
    tsi_buf_free(&c->frame);
    pthread_mutex_destroy(&c->mu);
    free(c->ca_file);
    free(c);
}
