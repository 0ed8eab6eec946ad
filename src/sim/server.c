/* sim/server.c — see server.h */
#include "sim/server.h"

#include <ctype.h>
#include <errno.h>
#include <arpa/inet.h>
#include <libwebsockets.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include "base/buf.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "core/json.h"
#include "sim/msg.h"

#define MAX_BODY (64 * 1024)
#define CHUNK    (64 * 1024)
#define WS_CHUNK (1024 * 1024)
/* Over TLS, writes larger than an SSL record that OpenSSL takes only in part lost their
 * tail at the end of an HTTP transaction (libwebsockets 4.1): pieces of 4 KiB are taken
 * whole. */
#define TLS_CHUNK       4096
#define MAX_ARGS        16
#define TICK_BUDGET_US  20000
#define QUEUE_MAX       16384
#define QUEUE_MAX_BYTES ((size_t)256 << 20) /* per client */
#define MAX_TRUTH_MIN   (24 * 60)
#define BP_FRAMES       3
#define BP_STALL_US     (10 * 1000000LL)

enum { K_HTTP = 0, K_BSM, K_PSM, K_SPAT };

typedef struct frame {
    int refs;
    size_t len;
    unsigned char data[]; /* LWS_PRE + len */
} frame;

typedef struct sess {
    int kind;
    /* http */
    char path[256];
    char auth[1024];
    tsi_buf args; /* "k=v\0k=v\0" url-decoded fragments */
    int nargs;
    bool is_post, too_big, responding, hdr_sent;
    bool completing; /* body written, TLS still holds part of it: complete once flushed */
    tsi_buf req;
    int status;
    const char *ctype;
    tsi_buf resp;
    size_t off;
    /* websocket */
    struct lws *wsi;
    struct sess *next, *prev;
    bool *match; /* per intersection, NULL = everything */
    int spat_isect;
    int spat_fmt; /* TSI_SIM_SPAT_* of a /ws/spat stream */
    frame **q;
    size_t qcap, qhead, qn, qbytes;
    int64_t bp_since; /* mono us since the backlog is over BP_FRAMES, 0: not */
    frame *cur;       /* being sent, from cur_off */
    size_t cur_off;
    uint64_t dropped;
} sess;

typedef struct token {
    char tok[512];
    int64_t exp_ms; /* monotonic ms */
    char kind;      /* 'a' access, 'r' refresh */
} token;

typedef struct key {
    char key[40];
    int kind; /* K_BSM | K_PSM | K_SPAT */
    int spat_isect;
    int spat_fmt;
    int64_t exp_ms;
    bool used;
    struct lws *claimed_by;
} key;

typedef struct tickbuf {
    tsi_buf json; /* "[m1,m2,...]" */
    uint32_t *off, *len;
    int *isect;
    size_t n, cap;
} tickbuf;

typedef struct server {
    const tsi_sim_server_cfg *cfg;
    tsi_sim_faults faults;
    tsi_sim_model *model;
    struct lws_context *ctx;
    lws_sorted_usec_list_t sul;
    int64_t wall0_us;
    int64_t sim0_ms;
    uint64_t ticks;
    int nring;
    tickbuf *ring[2]; /* [kind][slot] */
    int ring_head;    /* slot of the latest tick */
    sess *clients;
    int nclients;
    token *tokens;
    size_t ntokens, captokens;
    key *keys;
    size_t nkeys, capkeys;
    unsigned char secret[32];
    uint64_t seq;
    uint64_t frames_sent, msgs_sent, bytes_sent, requests;
    uint64_t fault_rng;
    unsigned malformed_variant;
    int port;
} server;

static unsigned char txbuf[LWS_PRE + WS_CHUNK];

/* ---- time ---- */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
    return mono_us() / 1000;
}

static int64_t sim_target(const server *S)
{
    double el = (double)(mono_us() - S->wall0_us) / 1000.0 * S->cfg->speed;
    return S->sim0_ms + (int64_t)el;
}

int tsi_sim_parse_time(const char *s, int64_t *out_ms)
{
    if (!s || !*s)
        return TSI_E_INVALID;
    if (strcmp(s, "now") == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        *out_ms = (int64_t)ts.tv_sec / 60 * 60000;
        return 0;
    }
    bool digits = true;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            digits = false;
    if (digits) {
        if (strlen(s) > 15)
            return TSI_E_INVALID;
        *out_ms = strtoll(s, NULL, 10);
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!e)
        return TSI_E_INVALID;
    int ms = 0;
    if (*e == '.') {
        e++;
        int scale = 100;
        while (isdigit((unsigned char)*e)) {
            ms += (*e - '0') * scale;
            scale /= 10;
            e++;
        }
    }
    if (strcmp(e, "Z") != 0 && strcmp(e, "") != 0 && strcmp(e, "+00:00") != 0)
        return TSI_E_INVALID;
    time_t t = timegm(&tm);
    if (t < 0)
        return TSI_E_INVALID;
    *out_ms = (int64_t)t * 1000 + ms;
    return 0;
}

/* ---- small helpers ---- */

static uint64_t hmix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static double unit_hash(uint64_t a, uint64_t b, uint64_t c)
{
    return (double)(hmix(a ^ hmix(b ^ hmix(c))) >> 11) * 0x1.0p-53;
}

static double fault_draw(server *S)
{
    S->fault_rng = hmix(S->fault_rng);
    return (double)(S->fault_rng >> 11) * 0x1.0p-53;
}

static void b64url(tsi_buf *out, const unsigned char *p, size_t n)
{
    static const char tb[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        tsi_buf_putc(out, tb[(v >> 18) & 63]);
        tsi_buf_putc(out, tb[(v >> 12) & 63]);
        if (i + 1 < n)
            tsi_buf_putc(out, tb[(v >> 6) & 63]);
        if (i + 2 < n)
            tsi_buf_putc(out, tb[v & 63]);
    }
}

static void random_hex(char *out, size_t nbytes)
{
    unsigned char r[32];
    if (nbytes > sizeof r)
        nbytes = sizeof r;
    if (getrandom(r, nbytes, 0) != (ssize_t)nbytes) {
        uint64_t x = hmix((uint64_t)mono_us());
        for (size_t i = 0; i < nbytes; i++)
            r[i] = (unsigned char)(x = hmix(x));
    }
    for (size_t i = 0; i < nbytes; i++)
        sprintf(out + 2 * i, "%02x", r[i]);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Finds `name` in a form-encoded body; url-decodes into out. 1 found, 0 absent,
 * -1 malformed (bad escape or too long). */
static int form_get(const char *body, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && body[j] != '&')
            j++;
        const char *eq = memchr(body + i, '=', j - i);
        size_t kl = eq ? (size_t)(eq - (body + i)) : j - i;
        if (kl == nl && memcmp(body + i, name, nl) == 0) {
            size_t o = 0;
            for (const char *p = eq ? eq + 1 : body + j; p < body + j; p++) {
                int c = (unsigned char)*p;
                if (c == '+')
                    c = ' ';
                else if (c == '%') {
                    if (body + j - p < 3)
                        return -1;
                    int h = hexval(p[1]), l = hexval(p[2]);
                    if (h < 0 || l < 0)
                        return -1;
                    c = h * 16 + l;
                    p += 2;
                }
                if (c == 0 || o + 1 >= outlen)
                    return -1;
                out[o++] = (char)c;
            }
            out[o] = '\0';
            return 1;
        }
        i = j + 1;
    }
    return 0;
}

static const char *arg_get(const sess *s, const char *name)
{
    size_t nl = strlen(name);
    const char *p = s->args.data;
    for (int i = 0; p && i < s->nargs; i++) {
        if (strncmp(p, name, nl) == 0 && p[nl] == '=')
            return p + nl + 1;
        p += strlen(p) + 1;
    }
    return NULL;
}

/* Parses a non-negative integer argument; -1 when absent, -2 when malformed. */
static int64_t arg_int(const sess *s, const char *name)
{
    const char *v = arg_get(s, name);
    if (!v)
        return -1;
    if (!*v || strlen(v) > 15)
        return -2;
    for (const char *p = v; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -2;
    return strtoll(v, NULL, 10);
}

/* ---- responses ---- */

static void reply(server *S, struct lws *wsi, sess *s, int status, const char *ctype, tsi_buf *body)
{
    s->status = status;
    s->ctype = ctype;
    tsi_buf_free(&s->resp);
    s->resp = *body;
    *body = (tsi_buf)TSI_BUF_INIT;
    s->off = 0;
    s->hdr_sent = false;
    s->completing = false;
    s->responding = true;
    bool api = strncmp(s->path, "/api/", 5) == 0;
    if (api && S->faults.slow_ms > 0 &&
        (S->faults.slow_rate >= 1.0 || fault_draw(S) < S->faults.slow_rate)) {
        lws_set_timer_usecs(wsi, (lws_usec_t)S->faults.slow_ms * 1000);
        return;
    }
    lws_callback_on_writable(wsi);
}

static void reply_json_error(server *S, struct lws *wsi, sess *s, int status, const char *code,
                             const char *detail)
{
    tsi_buf b = TSI_BUF_INIT;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &b);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_str(&w, "detail", detail);
    tsi_jsonw_kv_str(&w, "code", code);
    tsi_jsonw_end(&w);
    reply(S, wsi, s, status, "application/json", &b);
}

static int write_http(struct lws *wsi, sess *s)
{
    if (!s->responding)
        return 0;
    if (s->completing) {
        if (lws_partial_buffered(wsi)) {
            lws_callback_on_writable(wsi);
            return 0;
        }
        s->completing = false;
        s->responding = false;
        tsi_buf_free(&s->resp);
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    if (!s->hdr_sent) {
        unsigned char hb[LWS_PRE + 2048], *start = hb + LWS_PRE, *p = start,
                                          *end = hb + sizeof hb - 1;
        if (lws_add_http_common_headers(wsi, (unsigned)s->status, s->ctype, s->resp.len, &p, end))
            return 1;
        if (s->status == 401 &&
            lws_add_http_header_by_name(wsi, (const unsigned char *)"www-authenticate:",
                                        (const unsigned char *)"Bearer", 6, &p, end))
            return 1;
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                        (const unsigned char *)"no-store", 8, &p, end))
            return 1;
        if (lws_finalize_write_http_header(wsi, start, &p, end))
            return 1;
        s->hdr_sent = true;
        if (s->resp.len == 0 && lws_partial_buffered(wsi)) {
            s->completing = true;
            lws_callback_on_writable(wsi);
            return 0;
        }
        if (s->resp.len == 0) {
            s->responding = false;
            return lws_http_transaction_completed(wsi) ? -1 : 0;
        }
        lws_callback_on_writable(wsi);
        return 0;
    }
    size_t n = s->resp.len - s->off;
    size_t most = lws_is_ssl(wsi) ? TLS_CHUNK : CHUNK;
    if (n > most)
        n = most;
    memcpy(txbuf + LWS_PRE, s->resp.data + s->off, n);
    bool final = s->off + n == s->resp.len;
    int w = lws_write(wsi, txbuf + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
    if (w < 0)
        return 1;
    if ((size_t)w < n) { /* TLS may take less: the rest goes on the next writable */
        s->off += (size_t)w;
        lws_callback_on_writable(wsi);
        return 0;
    }
    s->off += n;
    if (final && lws_partial_buffered(wsi)) {
        /* completing the transaction now would drop what TLS has not sent yet */
        s->completing = true;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (final) {
        s->responding = false;
        tsi_buf_free(&s->resp);
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    lws_callback_on_writable(wsi);
    return 0;
}

/* ---- tokens and keys ---- */

static void prune_tokens(server *S)
{
    int64_t now = mono_ms();
    size_t k = 0;
    for (size_t i = 0; i < S->ntokens; i++)
        if (S->tokens[i].exp_ms > now)
            S->tokens[k++] = S->tokens[i];
    S->ntokens = k;
    k = 0;
    for (size_t i = 0; i < S->nkeys; i++)
        if (S->keys[i].exp_ms > now && !S->keys[i].used)
            S->keys[k++] = S->keys[i];
    S->nkeys = k;
}

static void make_token(server *S, tsi_buf *out, const char *sub, int64_t iat_s, int64_t exp_s,
                       char kind)
{
    const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char payload[512];
    int pl = snprintf(payload, sizeof payload,
                      "{\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld,\"jti\":\"%llu\",\"typ\":\"%s\"}",
                      sub, (long long)iat_s, (long long)exp_s, (unsigned long long)++S->seq,
                      kind == 'a' ? "Bearer" : "Refresh");
    tsi_buf_reset(out);
    b64url(out, (const unsigned char *)hdr, strlen(hdr));
    tsi_buf_putc(out, '.');
    b64url(out, (const unsigned char *)payload, (size_t)pl);
    /* signature: a keyed hash of the first two parts (the simulator's own tokens; not a
     * cryptographic MAC, nothing outside the simulator verifies it) */
    unsigned char sig[32];
    uint64_t h = 0;
    for (int i = 0; i < 32; i++)
        h = hmix(h ^ S->secret[i]);
    for (size_t i = 0; i < out->len; i++)
        h = hmix(h ^ (unsigned char)out->data[i]);
    for (int i = 0; i < 4; i++) {
        h = hmix(h + (uint64_t)i);
        memcpy(sig + 8 * i, &h, 8);
    }
    tsi_buf_putc(out, '.');
    b64url(out, sig, sizeof sig);
}

static void add_token(server *S, const char *tok, int64_t exp_ms, char kind)
{
    prune_tokens(S);
    if (S->ntokens == S->captokens) {
        S->captokens = S->captokens ? S->captokens * 2 : 64;
        S->tokens = realloc(S->tokens, sizeof *S->tokens * S->captokens);
        if (!S->tokens)
            abort();
    }
    token *t = &S->tokens[S->ntokens++];
    snprintf(t->tok, sizeof t->tok, "%s", tok);
    t->exp_ms = exp_ms;
    t->kind = kind;
}

static token *find_token(server *S, const char *tok, char kind)
{
    int64_t now = mono_ms();
    for (size_t i = 0; i < S->ntokens; i++)
        if (S->tokens[i].kind == kind && S->tokens[i].exp_ms > now &&
            strcmp(S->tokens[i].tok, tok) == 0)
            return &S->tokens[i];
    return NULL;
}

static bool authorized(server *S, const sess *s)
{
    const char *a = s->auth;
    if (strncasecmp(a, "Bearer ", 7) != 0)
        return false;
    a += 7;
    while (*a == ' ')
        a++;
    return *a && find_token(S, a, 'a') != NULL;
}

static const char *new_key(server *S, int kind, int spat_isect, int spat_fmt)
{
    prune_tokens(S);
    if (S->nkeys == S->capkeys) {
        S->capkeys = S->capkeys ? S->capkeys * 2 : 64;
        S->keys = realloc(S->keys, sizeof *S->keys * S->capkeys);
        if (!S->keys)
            abort();
    }
    key *k = &S->keys[S->nkeys++];
    memset(k, 0, sizeof *k);
    random_hex(k->key, 16);
    k->kind = kind;
    k->spat_isect = spat_isect;
    k->spat_fmt = spat_fmt;
    k->exp_ms = mono_ms() + (int64_t)S->cfg->key_lifetime_s * 1000;
    return k->key;
}

/* ---- the tick: model step, message JSON, fan-out ---- */

static void tb_add(tickbuf *tb, uint32_t off, uint32_t len, int isect)
{
    if (tb->n == tb->cap) {
        tb->cap = tb->cap ? tb->cap * 2 : 1024;
        tb->off = realloc(tb->off, sizeof *tb->off * tb->cap);
        tb->len = realloc(tb->len, sizeof *tb->len * tb->cap);
        tb->isect = realloc(tb->isect, sizeof *tb->isect * tb->cap);
        if (!tb->off || !tb->len || !tb->isect)
            abort();
    }
    tb->off[tb->n] = off;
    tb->len[tb->n] = len;
    tb->isect[tb->n] = isect;
    tb->n++;
}

static frame *frame_new(const char *data, size_t len)
{
    frame *f = malloc(sizeof *f + LWS_PRE + len);
    if (!f)
        abort();
    f->refs = 1;
    f->len = len;
    memcpy(f->data + LWS_PRE, data, len);
    return f;
}

static void frame_unref(frame *f)
{
    if (f && --f->refs == 0)
        free(f);
}

static void drop_oldest(sess *c)
{
    frame *o = c->q[c->qhead]; /* a slow client loses its oldest frame */
    c->qbytes -= o->len;
    frame_unref(o);
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qn--;
    c->dropped++;
}

static void enqueue(sess *c, frame *f)
{
    /* bounded by count and by bytes: a stalled client cannot hold the process's memory */
    while (c->qn > 0 && c->qbytes + f->len > QUEUE_MAX_BYTES)
        drop_oldest(c);
    if (c->qn == c->qcap) {
        if (c->qcap >= QUEUE_MAX) {
            drop_oldest(c);
        } else {
            size_t ncap = c->qcap ? c->qcap * 2 : 16;
            frame **nq = malloc(sizeof *nq * ncap);
            if (!nq)
                abort();
            for (size_t i = 0; i < c->qn; i++)
                nq[i] = c->q[(c->qhead + i) % c->qcap];
            free(c->q);
            c->q = nq;
            c->qcap = ncap;
            c->qhead = 0;
        }
    }
    f->refs++;
    c->q[(c->qhead + c->qn) % c->qcap] = f;
    c->qn++;
    c->qbytes += f->len;
    lws_callback_on_writable(c->wsi);
}

static void build_tick(server *S, const tsi_sim_sample *smp, size_t n)
{
    tsi_sim_model *m = S->model;
    int slot = (S->ring_head + 1) % S->nring;
    S->ring_head = slot;
    for (int kind = 0; kind < 2; kind++) {
        tickbuf *tb = &S->ring[kind][slot];
        tsi_buf_reset(&tb->json);
        tb->n = 0;
        tsi_buf_putc(&tb->json, '[');
        for (size_t i = 0; i < n; i++) {
            const tsi_sim_sample *s = &smp[i];
            if (s->kind != kind)
                continue;
            int copies = 1, bad = 0;
            if (S->faults.duplicate_rate > 0 &&
                unit_hash(s->id, (uint64_t)s->ts_ms, 0xd0b1) < S->faults.duplicate_rate)
                copies = 2;
            if (S->faults.malformed_rate > 0 &&
                unit_hash(s->id, (uint64_t)s->ts_ms, 0xbad) < S->faults.malformed_rate)
                bad = 1;
            size_t start = tb->json.len + (tb->n ? 1 : 0);
            if (tb->n)
                tsi_buf_putc(&tb->json, ',');
            tsi_sim_msg_write(&tb->json, m, s);
            uint32_t len = (uint32_t)(tb->json.len - start);
            tb_add(tb, (uint32_t)start, len, s->isect);
            if (copies == 2) {
                tsi_buf_reserve(&tb->json, len + 2); /* the source must not move */
                tsi_buf_putc(&tb->json, ',');
                size_t st2 = tb->json.len;
                tsi_buf_append(&tb->json, tb->json.data + start, len);
                tb_add(tb, (uint32_t)st2, len, s->isect);
            }
            if (bad) {
                tsi_buf_putc(&tb->json, ',');
                size_t st3 = tb->json.len;
                tsi_sim_msg_malformed(&tb->json, m, s, S->malformed_variant++);
                tb_add(tb, (uint32_t)st3, (uint32_t)(tb->json.len - st3), s->isect);
            }
            if (copies == 2 || bad)
                tsi_sim_truth_note(m, s->isect, s->ts_ms, copies - 1, bad);
        }
        tsi_buf_putc(&tb->json, ']');
    }
}

static frame *filtered_frame(const tickbuf *tb, const bool *match, tsi_buf *tmp)
{
    tsi_buf_reset(tmp);
    tsi_buf_putc(tmp, '[');
    bool first = true;
    for (size_t i = 0; i < tb->n; i++) {
        if (!match[tb->isect[i]])
            continue;
        if (!first)
            tsi_buf_putc(tmp, ',');
        first = false;
        tsi_buf_append(tmp, tb->json.data + tb->off[i], tb->len[i]);
    }
    tsi_buf_putc(tmp, ']');
    return frame_new(tmp->data, tmp->len);
}

static void fan_out(server *S)
{
    if (!S->clients)
        return;
    frame *shared[2] = {NULL, NULL};
    frame **spat = NULL;
    int n = tsi_sim_model_count(S->model);
    int64_t now = tsi_sim_model_now(S->model);
    tsi_buf tmp = TSI_BUF_INIT;
    for (sess *c = S->clients; c; c = c->next) {
        if (c->kind == K_BSM || c->kind == K_PSM) {
            int k = c->kind == K_BSM ? TSI_SIM_BSM : TSI_SIM_PSM;
            const tickbuf *tb = &S->ring[k][S->ring_head];
            if (c->match) {
                frame *f = filtered_frame(tb, c->match, &tmp);
                enqueue(c, f);
                frame_unref(f);
            } else {
                if (!shared[k])
                    shared[k] = frame_new(tb->json.data, tb->json.len);
                enqueue(c, shared[k]);
            }
        } else if (c->kind == K_SPAT) {
            if (!spat) { /* [format][intersection], made on first use */
                spat = calloc((size_t)n * TSI_SIM_SPAT__COUNT, sizeof *spat);
                if (!spat)
                    abort();
            }
            for (int i = 0; i < n; i++) {
                if (c->spat_isect >= 0 && c->spat_isect != i)
                    continue;
                frame **f = &spat[(size_t)c->spat_fmt * (size_t)n + (size_t)i];
                if (!*f) {
                    tsi_buf_reset(&tmp);
                    tsi_sim_spat_write_format(&tmp, S->model, i, now, c->spat_fmt);
                    *f = frame_new(tmp.data, tmp.len);
                }
                enqueue(c, *f);
            }
        }
    }
    frame_unref(shared[0]);
    frame_unref(shared[1]);
    if (spat) {
        for (int i = 0; i < n * TSI_SIM_SPAT__COUNT; i++)
            frame_unref(spat[i]);
        free(spat);
    }
    tsi_buf_free(&tmp);
}

/* Backpressure: true while a stream reader has more than BP_FRAMES frames waiting (and has
 * not been stuck so for BP_STALL_US: a reader that stopped reading no longer holds the
 * simulation back; its queue then drops its oldest frames). */
static bool backlogged(server *S)
{
    if (!S->cfg->backpressure)
        return false;
    int64_t now = mono_us();
    bool any = false;
    for (sess *c = S->clients; c; c = c->next) {
        if (c->kind != K_BSM && c->kind != K_PSM)
            continue;
        if (c->qn < BP_FRAMES) {
            c->bp_since = 0;
            continue;
        }
        if (c->bp_since == 0)
            c->bp_since = now;
        if (now - c->bp_since < BP_STALL_US)
            any = true;
    }
    return any;
}

/* Runs the ticks that are due, for at most TICK_BUDGET_US of wall time (so the sockets are
 * served in between when the model is behind the clock). Returns true when still behind. */
static bool run_ticks(server *S)
{
    int64_t t0 = mono_us();
    while (tsi_sim_model_now(S->model) + TSI_SIM_TICK_MS <= sim_target(S)) {
        if (mono_us() - t0 >= TICK_BUDGET_US || backlogged(S))
            return true;
        size_t n;
        const tsi_sim_sample *smp = tsi_sim_model_step(S->model, &n);
        build_tick(S, smp, n);
        fan_out(S);
        S->ticks++;
    }
    return false;
}

static void tick_cb(lws_sorted_usec_list_t *sul)
{
    server *S = lws_container_of(sul, server, sul);
    run_ticks(S);
    int64_t next = tsi_sim_model_now(S->model) + TSI_SIM_TICK_MS;
    int64_t target = sim_target(S);
    /* behind: catch up again right after a poll of the sockets (a little later when a
     * reader holds the model back) */
    lws_usec_t delay = backlogged(S) ? 2000 : 100;
    if (next > target)
        delay = (lws_usec_t)((double)(next - target) * 1000.0 / S->cfg->speed);
    if (delay < 1)
        delay = 1;
    lws_sul_schedule(S->ctx, 0, &S->sul, tick_cb, delay);
}

/* ---- REST handlers ---- */

static void h_auth(server *S, struct lws *wsi, sess *s)
{
    const char *b = s->req.data ? s->req.data : "";
    size_t bl = s->req.len;
    char id[256], secret[256], grant[64], refresh[512];
    int ri = form_get(b, bl, "client_id", id, sizeof id);
    int rs = form_get(b, bl, "client_secret", secret, sizeof secret);
    int rg = form_get(b, bl, "grant_type", grant, sizeof grant);
    int rr = form_get(b, bl, "refresh_token", refresh, sizeof refresh);
    if (ri < 0 || rs < 0 || rg < 0 || rr < 0) {
        reply_json_error(S, wsi, s, 400, "bad_form", "malformed form body");
        return;
    }
    bool ok = false;
    char sub[256] = "";
    if (rg == 1 && strcmp(grant, "refresh_token") == 0) {
        if (rr == 1 && find_token(S, refresh, 'r')) {
            ok = true;
            snprintf(sub, sizeof sub, "%s", S->cfg->client_id);
        }
    } else if (ri == 1 && rs == 1 && strcmp(id, S->cfg->client_id) == 0 &&
               strcmp(secret, S->cfg->client_secret) == 0) {
        ok = true;
        snprintf(sub, sizeof sub, "%s", id);
    }
    if (!ok) {
        tsi_info("sim", "auth refused client_id_given=%d", ri == 1);
        /* the document: bad client credentials are a 400 */
        reply_json_error(S, wsi, s, 400, "invalid_client", "Invalid client credentials");
        return;
    }
    int life =
        S->faults.token_lifetime_s > 0 ? S->faults.token_lifetime_s : S->cfg->auth_lifetime_s;
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    int64_t now = mono_ms();
    tsi_buf at = TSI_BUF_INIT, rtok = TSI_BUF_INIT;
    make_token(S, &at, sub, rt.tv_sec, rt.tv_sec + life, 'a');
    make_token(S, &rtok, sub, rt.tv_sec, rt.tv_sec + S->cfg->refresh_lifetime_s, 'r');
    add_token(S, at.data, now + (int64_t)life * 1000, 'a');
    add_token(S, rtok.data, now + (int64_t)S->cfg->refresh_lifetime_s * 1000, 'r');
    tsi_buf out = TSI_BUF_INIT;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &out);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_str(&w, "access_token", at.data);
    tsi_jsonw_kv_int(&w, "expires_in", life);
    tsi_jsonw_kv_str(&w, "refresh_token", rtok.data);
    tsi_jsonw_kv_int(&w, "refresh_expires_in", S->cfg->refresh_lifetime_s);
    tsi_jsonw_kv_str(&w, "token_type", "bearer");
    tsi_jsonw_kv_int(&w, "not-before-policy", 0);
    tsi_jsonw_kv_str(&w, "scope", "bsm psm mapdata spat");
    tsi_jsonw_end(&w);
    tsi_buf_free(&at);
    tsi_buf_free(&rtok);
    reply(S, wsi, s, 200, "application/json", &out);
}

static void h_current(server *S, struct lws *wsi, sess *s, int kind)
{
    tsi_buf out = TSI_BUF_INIT;
    tsi_buf_putc(&out, '[');
    bool first = true;
    for (int k = S->nring - 1; k >= 0; k--) {
        if ((uint64_t)k >= S->ticks)
            continue;
        const tickbuf *tb = &S->ring[kind][(S->ring_head - k + S->nring) % S->nring];
        if (tb->json.len <= 2)
            continue;
        if (!first)
            tsi_buf_putc(&out, ',');
        first = false;
        tsi_buf_append(&out, tb->json.data + 1, tb->json.len - 2);
    }
    tsi_buf_putc(&out, ']');
    reply(S, wsi, s, 200, "application/json", &out);
}

static void h_mapdata(server *S, struct lws *wsi, sess *s, int one)
{
    int64_t now = tsi_sim_model_now(S->model);
    tsi_buf out = TSI_BUF_INIT;
    if (one >= 0) {
        tsi_sim_mapdata_write(&out, S->model, one, now);
        reply(S, wsi, s, 200, "application/json", &out);
        return;
    }
    int64_t changed = arg_int(s, "changedSinceTimestamp");
    int64_t received = arg_int(s, "receivedSinceTimestamp");
    if (changed == -2 || received == -2) {
        reply_json_error(S, wsi, s, 400, "bad_parameter",
                         "changedSinceTimestamp and receivedSinceTimestamp are epoch ms");
        return;
    }
    if (received == -1)
        received = now - 86400000LL;
    tsi_buf_putc(&out, '[');
    bool first = true;
    /* every RSU broadcasts its MapData each second: received up to now */
    if (received <= now) {
        for (int i = 0; i < tsi_sim_model_count(S->model); i++) {
            if (i + 1 == S->faults.mapdata_withdrawn)
                continue;
            int64_t ch = 0;
            tsi_sim_model_map_revision(S->model, i, now, &ch);
            if (changed >= 0 && ch <= changed)
                continue;
            if (!first)
                tsi_buf_putc(&out, ',');
            first = false;
            tsi_sim_mapdata_write(&out, S->model, i, now);
        }
    }
    tsi_buf_putc(&out, ']');
    reply(S, wsi, s, 200, "application/json", &out);
}

/* GET /api/mapdata (one = -1: every intersection) and /api/mapdata/{id}: {id, revision,
 * msg} with msg the base64 J2735 MapData */
static void h_mapdata_summary(server *S, struct lws *wsi, sess *s, int one)
{
    int64_t now = tsi_sim_model_now(S->model);
    tsi_buf out = TSI_BUF_INIT;
    if (one >= 0) {
        tsi_sim_mapdata_summary(&out, S->model, one, now);
    } else {
        tsi_buf_putc(&out, '[');
        bool first = true;
        for (int i = 0; i < tsi_sim_model_count(S->model); i++) {
            if (i + 1 == S->faults.mapdata_withdrawn)
                continue; /* as /api/mapdata/decoded */
            if (!first)
                tsi_buf_putc(&out, ',');
            first = false;
            tsi_sim_mapdata_summary(&out, S->model, i, now);
        }
        tsi_buf_putc(&out, ']');
    }
    reply(S, wsi, s, 200, "application/json", &out);
}

/* The SPaT format asked for (UPER when absent), or -1 after a 400. */
static int spat_format(server *S, struct lws *wsi, sess *s)
{
    int f = tsi_sim_spat_format_parse(arg_get(s, "format"));
    if (f < 0)
        reply_json_error(S, wsi, s, 400, "bad_format",
                         "format must be UPER, JSON, JSON_METADATA or JSON_COMPLETE");
    return f;
}

static void h_spat_list(server *S, struct lws *wsi, sess *s)
{
    int fmt = spat_format(S, wsi, s);
    if (fmt < 0)
        return;
    int64_t now = tsi_sim_model_now(S->model);
    tsi_buf out = TSI_BUF_INIT, one = TSI_BUF_INIT;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &out);
    tsi_jsonw_array(&w);
    for (int i = 0; i < tsi_sim_model_count(S->model); i++) {
        tsi_buf_reset(&one);
        tsi_sim_spat_write_format(&one, S->model, i, now, fmt);
        if (fmt == TSI_SIM_SPAT_JSON_METADATA)
            tsi_jsonw_raw(&w, one.data, one.len); /* objects */
        else
            tsi_jsonw_strn(&w, one.data, one.len); /* strings: base64, or JSON text */
    }
    tsi_jsonw_end(&w);
    tsi_buf_free(&one);
    reply(S, wsi, s, 200, "application/json", &out);
}

static void h_spat_url(server *S, struct lws *wsi, sess *s, const char *which)
{
    int fmt = spat_format(S, wsi, s);
    if (fmt < 0)
        return;
    int isect = -1;
    if (strcmp(which, "all") != 0) {
        char *e = NULL;
        errno = 0;
        long long id = strtoll(which, &e, 10);
        if (!*which || *e || errno || id < 0 ||
            (isect = tsi_sim_model_find(S->model, (int64_t)id)) < 0) {
            /* the id may also be the local id of region 1 */
            if (*which && !*e && !errno && id >= 0 && id < 65536)
                isect = tsi_sim_model_find(S->model, 65536 + id);
            if (isect < 0) {
                reply_json_error(S, wsi, s, 404, "not_found", "Intersection not found");
                return;
            }
        }
    }
    const char *k = new_key(S, K_SPAT, isect, fmt);
    tsi_buf out = TSI_BUF_INIT;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &out);
    tsi_jsonw_object(&w);
    char url[128];
    snprintf(url, sizeof url, "/ws/spat?key=%s", k);
    tsi_jsonw_kv_str(&w, "url", url);
    tsi_jsonw_end(&w);
    reply(S, wsi, s, 200, "application/json", &out);
}

static void h_key(server *S, struct lws *wsi, sess *s, int kind)
{
    tsi_buf out = TSI_BUF_INIT;
    tsi_buf_puts(&out, new_key(S, kind, -1, 0));
    reply(S, wsi, s, 200, "text/plain", &out);
}

static void h_upload(server *S, struct lws *wsi, sess *s)
{
    tsi_json d;
    tsi_error e = {0};
    if (tsi_json_parse_alloc(&d, s->req.data ? s->req.data : "", s->req.len, 1 << 20, &e) < 0) {
        reply_json_error(S, wsi, s, 400, "bad_json", "the body is not JSON");
        return;
    }
    if (!tsi_json_is_array(&d, 0) && !tsi_json_is_object(&d, 0)) {
        tsi_json_free(&d);
        reply_json_error(S, wsi, s, 400, "bad_json", "expected a message or an array of them");
        return;
    }
    /* the document's reply: {msgCnt, id} of the message (an array of them for an array) */
    tsi_buf out = TSI_BUF_INIT;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &out);
    bool arr = tsi_json_is_array(&d, 0);
    if (arr)
        tsi_jsonw_array(&w);
    for (int i = arr ? tsi_json_first(&d, 0) : 0; i >= 0; i = arr ? tsi_json_next(&d, 0, i) : -1) {
        int core = tsi_json_path(&d, i, "bsmJson", "coreData", NULL);
        if (core < 0)
            core = tsi_json_get(&d, i, "psmJson");
        if (core < 0)
            core = tsi_json_get(&d, i, "coreData");
        if (core < 0)
            core = i; /* a bare coreData / psmJson */
        tsi_jsonw_object(&w);
        static const char *const keys[2] = {"msgCnt", "id"};
        for (int k = 0; k < 2; k++) {
            int64_t v;
            if (tsi_json_int64(&d, tsi_json_get(&d, core, keys[k]), &v) == 0)
                tsi_jsonw_kv_int(&w, keys[k], v);
            else
                tsi_jsonw_kv_null(&w, keys[k]);
        }
        tsi_jsonw_end(&w);
    }
    if (arr)
        tsi_jsonw_end(&w);
    tsi_json_free(&d);
    reply(S, wsi, s, 200, "application/json", &out);
}

static void faults_json(const tsi_sim_faults *f, tsi_buf *out)
{
    tsi_jsonw w;
    tsi_jsonw_init(&w, out);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_double(&w, "http_error_rate", f->http_error_rate);
    tsi_jsonw_kv_int(&w, "slow_ms", f->slow_ms);
    tsi_jsonw_kv_double(&w, "slow_rate", f->slow_rate);
    tsi_jsonw_kv_double(&w, "drop_rate", f->drop_rate);
    tsi_jsonw_kv_double(&w, "duplicate_rate", f->duplicate_rate);
    tsi_jsonw_kv_double(&w, "malformed_rate", f->malformed_rate);
    tsi_jsonw_kv_int(&w, "token_lifetime_s", f->token_lifetime_s);
    tsi_jsonw_kv_int(&w, "mapdata_withdrawn", f->mapdata_withdrawn);
    tsi_jsonw_end(&w);
}

int tsi_sim_faults_parse(const char *js, size_t len, tsi_sim_faults *f, tsi_error *err)
{
    tsi_jtok t[64];
    tsi_json d;
    int n = tsi_json_parse(&d, js, len, t, 64, err);
    if (n < 0)
        return n;
    if (!tsi_json_is_object(&d, 0))
        return tsi_error_set(err, TSI_E_NOT_OBJECT, "the fault set is not a JSON object", NULL);
    tsi_sim_faults nf = *f;
    for (int k = tsi_json_first_key(&d, 0); k >= 0; k = tsi_json_next_key(&d, 0, k)) {
        char name[40];
        if (tsi_json_str(&d, k, name, sizeof name) < 0)
            return tsi_error_set(err, TSI_E_INVALID, "unknown fault", "key too long");
        double v;
        if (tsi_json_num(&d, k + 1, &v) < 0)
            return tsi_error_set(err, TSI_E_TYPE, "a fault value must be a number", "key %s", name);
        bool rate = true;
        double *dst = NULL;
        int *idst = NULL;
        if (strcmp(name, "http_error_rate") == 0)
            dst = &nf.http_error_rate;
        else if (strcmp(name, "slow_rate") == 0)
            dst = &nf.slow_rate;
        else if (strcmp(name, "drop_rate") == 0)
            dst = &nf.drop_rate;
        else if (strcmp(name, "duplicate_rate") == 0)
            dst = &nf.duplicate_rate;
        else if (strcmp(name, "malformed_rate") == 0)
            dst = &nf.malformed_rate;
        else if (strcmp(name, "slow_ms") == 0)
            idst = &nf.slow_ms, rate = false;
        else if (strcmp(name, "token_lifetime_s") == 0)
            idst = &nf.token_lifetime_s, rate = false;
        else if (strcmp(name, "mapdata_withdrawn") == 0)
            idst = &nf.mapdata_withdrawn, rate = false;
        else
            return tsi_error_set(err, TSI_E_INVALID, "unknown fault", "key %s", name);
        if (rate) {
            if (v < 0 || v > 1)
                return tsi_error_set(err, TSI_E_RANGE, "a rate is between 0 and 1", "%s=%g", name,
                                     v);
            *dst = v;
        } else {
            if (v < 0 || v > 600000 || v != floor(v))
                return tsi_error_set(err, TSI_E_RANGE, "an integer between 0 and 600000", "%s=%g",
                                     name, v);
            *idst = (int)v;
        }
    }
    *f = nf;
    return 0;
}

static void h_faults(server *S, struct lws *wsi, sess *s)
{
    if (s->is_post) {
        tsi_error e = {0};
        if (tsi_sim_faults_parse(s->req.data ? s->req.data : "", s->req.len, &S->faults, &e) < 0) {
            char d[800];
            snprintf(d, sizeof d, "%s: %s", e.message, e.detail);
            reply_json_error(S, wsi, s, 400, tsi_error_name(e.code), d);
            return;
        }
        tsi_buf fj = TSI_BUF_INIT;
        faults_json(&S->faults, &fj);
        tsi_info("sim", "faults set %s", fj.data);
        tsi_buf_free(&fj);
    }
    tsi_buf out = TSI_BUF_INIT;
    faults_json(&S->faults, &out);
    reply(S, wsi, s, 200, "application/json", &out);
}

static void h_status(server *S, struct lws *wsi, sess *s)
{
    tsi_buf out = TSI_BUF_INIT;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &out);
    tsi_jsonw_object(&w);
    int64_t now = tsi_sim_model_now(S->model);
    tsi_jsonw_kv_int(&w, "now", now);
    tsi_jsonw_kv_int(&w, "start", tsi_sim_model_cfg(S->model)->start_ms);
    tsi_jsonw_kv_double(&w, "speed", S->cfg->speed);
    tsi_jsonw_kv_int(&w, "lag_ms", sim_target(S) - now);
    tsi_jsonw_kv_int(&w, "ticks", (int64_t)S->ticks);
    tsi_jsonw_kv_int(&w, "intersections", tsi_sim_model_count(S->model));
    tsi_jsonw_kv_int(&w, "seed", (int64_t)tsi_sim_model_cfg(S->model)->seed);
    tsi_jsonw_kv_int(&w, "clients", S->nclients);
    tsi_jsonw_kv_int(&w, "frames_sent", (int64_t)S->frames_sent);
    tsi_jsonw_kv_int(&w, "bytes_sent", (int64_t)S->bytes_sent);
    tsi_jsonw_kv_int(&w, "requests", (int64_t)S->requests);
    tsi_jsonw_end(&w);
    reply(S, wsi, s, 200, "application/json", &out);
}

static void h_truth(server *S, struct lws *wsi, sess *s)
{
    int64_t now = tsi_sim_model_now(S->model);
    int64_t from = arg_int(s, "from"), to = arg_int(s, "to"), id = arg_int(s, "intersection");
    if (from == -2 || to == -2 || id == -2) {
        reply_json_error(S, wsi, s, 400, "bad_parameter",
                         "from, to (epoch ms) and intersection are non-negative integers");
        return;
    }
    if (to == -1)
        to = now + 1;
    if (from == -1)
        from = to - 10 * 60000;
    if (from > to || to - from > (int64_t)MAX_TRUTH_MIN * 60000) {
        reply_json_error(S, wsi, s, 400, "bad_range", "from <= to, at most 24 hours apart");
        return;
    }
    int only = -1;
    if (id >= 0 && (only = tsi_sim_model_find(S->model, id)) < 0) {
        reply_json_error(S, wsi, s, 404, "not_found", "Intersection not found");
        return;
    }
    size_t ncf;
    const tsi_sim_conflict *cf = tsi_sim_truth_conflicts(S->model, &ncf);
    uint64_t ivv, ivru, missed;
    tsi_sim_truth_injections(S->model, &ivv, &ivru, &missed);
    tsi_buf out = TSI_BUF_INIT;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &out);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_int(&w, "from", from);
    tsi_jsonw_kv_int(&w, "to", to);
    tsi_jsonw_kv_int(&w, "now", now);
    tsi_jsonw_key(&w, "thresholds");
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_double(&w, "vru_ttc_s", TSI_SIM_VRU_TTC);
    tsi_jsonw_kv_double(&w, "vru_distance_m", TSI_SIM_VRU_DIST);
    tsi_jsonw_kv_double(&w, "vehicle_ttc_s", TSI_SIM_VV_TTC);
    tsi_jsonw_kv_double(&w, "vehicle_distance_m", TSI_SIM_VV_DIST);
    tsi_jsonw_kv_double(&w, "hard_braking_mps2", -3.0);
    tsi_jsonw_end(&w);
    tsi_jsonw_key(&w, "injected");
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_int(&w, "vehicle", (int64_t)ivv);
    tsi_jsonw_kv_int(&w, "vru", (int64_t)ivru);
    tsi_jsonw_kv_int(&w, "never_met_thresholds", (int64_t)missed);
    tsi_jsonw_end(&w);
    tsi_jsonw_key(&w, "minutes");
    tsi_jsonw_array(&w);
    int64_t m0 = from - (from % 60000);
    int n = tsi_sim_model_count(S->model);
    for (int64_t mm = m0; mm < to; mm += 60000) {
        for (int i = 0; i < n; i++) {
            if (only >= 0 && i != only)
                continue;
            const tsi_sim_minute *r = tsi_sim_truth_minute(S->model, i, mm);
            if (!r)
                continue;
            const tsi_sim_isect *is = tsi_sim_model_isect(S->model, i);
            tsi_jsonw_object(&w);
            tsi_jsonw_kv_int(&w, "intersection_id", tsi_sim_isect_id(is));
            tsi_jsonw_kv_str(&w, "rsuName", is->rsu);
            tsi_jsonw_kv_int(&w, "minute", mm);
            tsi_jsonw_kv_bool(&w, "complete", mm + 60000 <= now);
            tsi_jsonw_kv_int(&w, "vehicles", r->vehicles);
            tsi_jsonw_kv_int(&w, "vrus", r->vrus);
            tsi_jsonw_kv_int(&w, "pedestrians", r->pedestrians);
            tsi_jsonw_kv_int(&w, "cyclists", r->cyclists);
            tsi_jsonw_kv_int(&w, "hard_braking", r->hard_braking);
            tsi_jsonw_kv_int(&w, "bsm_messages", r->bsm);
            tsi_jsonw_kv_int(&w, "psm_messages", r->psm);
            tsi_jsonw_kv_int(&w, "duplicates", r->duplicates);
            tsi_jsonw_kv_int(&w, "malformed", r->malformed);
            int nv = 0, np = 0;
            for (size_t k = 0; k < ncf; k++)
                if (cf[k].isect == i && cf[k].minute_ms == mm) {
                    if (cf[k].kind == 'v')
                        nv++;
                    else
                        np++;
                }
            tsi_jsonw_kv_int(&w, "vehicle_conflicts", nv);
            tsi_jsonw_kv_int(&w, "vru_conflicts", np);
            tsi_jsonw_key(&w, "conflicts");
            tsi_jsonw_array(&w);
            for (size_t k = 0; k < ncf; k++) {
                if (cf[k].isect != i || cf[k].minute_ms != mm)
                    continue;
                tsi_jsonw_object(&w);
                tsi_jsonw_kv_str(&w, "kind", cf[k].kind == 'v' ? "vehicle" : "vru");
                tsi_jsonw_kv_int(&w, "a", cf[k].a);
                tsi_jsonw_kv_int(&w, "b", cf[k].b);
                if (cf[k].min_ttc >= 0)
                    tsi_jsonw_kv_double(&w, "min_ttc", round(cf[k].min_ttc * 1000) / 1000);
                else
                    tsi_jsonw_kv_null(&w, "min_ttc");
                tsi_jsonw_kv_double(&w, "min_distance", round(cf[k].min_dist * 1000) / 1000);
                tsi_jsonw_end(&w);
            }
            tsi_jsonw_end(&w);
            tsi_jsonw_end(&w);
        }
    }
    tsi_jsonw_end(&w);
    tsi_jsonw_end(&w);
    reply(S, wsi, s, 200, "application/json", &out);
}

static void handle(server *S, struct lws *wsi, sess *s)
{
    const char *p = s->path;
    S->requests++;
    if (s->too_big) {
        reply_json_error(S, wsi, s, 413, "too_big", "request body over 64 KiB");
        return;
    }
    if (strcmp(p, "/healthz") == 0 || strcmp(p, "/") == 0) {
        tsi_buf out = TSI_BUF_INIT;
        tsi_buf_puts(&out, "ok\n");
        reply(S, wsi, s, 200, "text/plain", &out);
        return;
    }
    if (strncmp(p, "/sim/", 5) == 0) {
        if (strcmp(p, "/sim/status") == 0 && !s->is_post)
            h_status(S, wsi, s);
        else if (strcmp(p, "/sim/truth") == 0 && !s->is_post)
            h_truth(S, wsi, s);
        else if (strcmp(p, "/sim/faults") == 0)
            h_faults(S, wsi, s);
        else
            reply_json_error(S, wsi, s, 404, "not_found", "Not Found");
        return;
    }
    if (strncmp(p, "/api/", 5) != 0) {
        reply_json_error(S, wsi, s, 404, "not_found", "Not Found");
        return;
    }
    if (S->faults.http_error_rate > 0 && fault_draw(S) < S->faults.http_error_rate) {
        bool five03 = fault_draw(S) < 0.5;
        reply_json_error(S, wsi, s, five03 ? 503 : 500, five03 ? "unavailable" : "internal",
                         five03 ? "Service Unavailable (injected)"
                                : "Internal Server Error (injected)");
        return;
    }
    if (strcmp(p, "/api/auth/client") == 0) {
        if (!s->is_post)
            reply_json_error(S, wsi, s, 405, "method", "Method Not Allowed");
        else
            h_auth(S, wsi, s);
        return;
    }
    if (!authorized(S, s)) {
        reply_json_error(S, wsi, s, 401, "unauthorized", "Not authenticated");
        return;
    }
    if (s->is_post) {
        if (strcmp(p, "/api/bsm/json") == 0 || strcmp(p, "/api/psm/json") == 0)
            h_upload(S, wsi, s);
        else
            reply_json_error(S, wsi, s, 405, "method", "Method Not Allowed");
        return;
    }
    if (strcmp(p, "/api/bsm/current") == 0)
        h_current(S, wsi, s, TSI_SIM_BSM);
    else if (strcmp(p, "/api/psm/current") == 0)
        h_current(S, wsi, s, TSI_SIM_PSM);
    else if (strcmp(p, "/api/bsm/key") == 0)
        h_key(S, wsi, s, K_BSM);
    else if (strcmp(p, "/api/psm/key") == 0)
        h_key(S, wsi, s, K_PSM);
    else if (strcmp(p, "/api/mapdata/decoded") == 0)
        h_mapdata(S, wsi, s, -1);
    else if (strcmp(p, "/api/mapdata") == 0)
        h_mapdata_summary(S, wsi, s, -1);
    else if (strcmp(p, "/api/spat") == 0)
        h_spat_list(S, wsi, s);
    else if (strncmp(p, "/api/mapdata/", 13) == 0) {
        const char *idp = p + 13;
        char *e = NULL;
        errno = 0;
        long long id = strtoll(idp, &e, 10);
        int i = -1;
        bool decoded = e && strcmp(e, "/decoded") == 0;
        if (isdigit((unsigned char)*idp) && e && (decoded || *e == '\0') && !errno) {
            i = tsi_sim_model_find(S->model, id);
            if (i < 0 && id < 65536)
                i = tsi_sim_model_find(S->model, 65536 + id);
        }
        if (i < 0 || i + 1 == S->faults.mapdata_withdrawn)
            reply_json_error(S, wsi, s, 404, "not_found", "MapData not found");
        else if (decoded)
            h_mapdata(S, wsi, s, i);
        else
            h_mapdata_summary(S, wsi, s, i);
    } else if (strncmp(p, "/api/spat/", 10) == 0 && strchr(p + 10, '/') == NULL) {
        h_spat_url(S, wsi, s, p + 10);
    } else
        reply_json_error(S, wsi, s, 404, "not_found", "Not Found");
}

/* ---- websocket sessions ---- */

static int ws_kind_of(const char *uri)
{
    if (strcmp(uri, "/ws/bsm") == 0)
        return K_BSM;
    if (strcmp(uri, "/ws/psm") == 0)
        return K_PSM;
    if (strcmp(uri, "/ws/spat") == 0)
        return K_SPAT;
    return -1;
}

/* Collects the url arguments of wsi into s->args. */
static void collect_args(struct lws *wsi, sess *s)
{
    tsi_buf_reset(&s->args);
    s->nargs = 0;
    char frag[1024];
    for (int i = 0; i < MAX_ARGS; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            break;
        tsi_buf_append(&s->args, frag, (size_t)n);
        tsi_buf_putc(&s->args, '\0');
        s->nargs++;
    }
}

static bool build_match(server *S, sess *s, bool **out)
{
    *out = NULL;
    const char *p = s->args.data;
    int n = tsi_sim_model_count(S->model);
    bool *m = NULL;
    for (int i = 0; p && i < s->nargs; i++, p += strlen(p) + 1) {
        if (strncmp(p, "rsu=", 4) != 0)
            continue;
        regex_t re;
        if (regcomp(&re, p + 4, REG_EXTENDED | REG_NOSUB) != 0) {
            free(m);
            return false;
        }
        if (!m) {
            m = calloc((size_t)n, sizeof *m);
            if (!m)
                abort();
        }
        for (int k = 0; k < n; k++)
            if (!m[k] && regexec(&re, tsi_sim_model_isect(S->model, k)->rsu, 0, NULL, 0) == 0)
                m[k] = true;
        regfree(&re);
    }
    *out = m;
    return true;
}

static int ws_filter(server *S, struct lws *wsi)
{
    char uri[256];
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
        return 1;
    int kind = ws_kind_of(uri);
    if (kind < 0)
        return 1;
    sess tmp;
    memset(&tmp, 0, sizeof tmp);
    collect_args(wsi, &tmp);
    const char *k = arg_get(&tmp, "key");
    bool *m = NULL;
    bool ok_re = build_match(S, &tmp, &m);
    free(m);
    int rc = 1;
    if (k && ok_re) {
        int64_t now = mono_ms();
        for (size_t i = 0; i < S->nkeys; i++) {
            key *kk = &S->keys[i];
            if (strcmp(kk->key, k) == 0 && kk->kind == kind && !kk->used && kk->exp_ms > now) {
                kk->used = true;
                kk->claimed_by = wsi;
                rc = 0;
                break;
            }
        }
    }
    if (rc)
        tsi_info("sim", "stream refused path=%s reason=%s", uri,
                 !k       ? "no_key"
                 : !ok_re ? "bad_rsu_regex"
                          : "bad_or_used_key");
    tsi_buf_free(&tmp.args);
    return rc;
}

static int ws_established(server *S, struct lws *wsi, sess *s)
{
    key *kk = NULL;
    for (size_t i = 0; i < S->nkeys; i++)
        if (S->keys[i].claimed_by == wsi)
            kk = &S->keys[i];
    if (!kk)
        return -1;
    s->kind = kk->kind;
    s->spat_isect = kk->spat_isect;
    s->spat_fmt = kk->spat_fmt;
    /* frames go out in large pieces back to back: no Nagle delay on their tails */
    int one = 1, fd = (int)lws_get_socket_fd(wsi);
    int sndbuf = 8 << 20; /* a frame of 1,000 busy intersections is ~10 MB */
    if (fd >= 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    }
    kk->claimed_by = NULL;
    s->wsi = wsi;
    collect_args(wsi, s);
    if (!build_match(S, s, &s->match))
        return -1;
    s->next = S->clients;
    s->prev = NULL;
    if (S->clients)
        S->clients->prev = s;
    S->clients = s;
    S->nclients++;
    tsi_info("sim", "stream opened kind=%s filter=%s clients=%d",
             s->kind == K_BSM   ? "bsm"
             : s->kind == K_PSM ? "psm"
                                : "spat",
             s->match ? "rsu" : "none", S->nclients);
    return 0;
}

static void ws_closed(server *S, sess *s)
{
    if (s->wsi == NULL)
        return;
    if (s->prev)
        s->prev->next = s->next;
    else if (S->clients == s)
        S->clients = s->next;
    if (s->next)
        s->next->prev = s->prev;
    S->nclients--;
    for (size_t i = 0; i < s->qn; i++)
        frame_unref(s->q[(s->qhead + i) % s->qcap]);
    frame_unref(s->cur);
    s->cur = NULL;
    free(s->q);
    free(s->match);
    tsi_buf_free(&s->args);
    s->q = NULL;
    s->match = NULL;
    s->wsi = NULL;
    tsi_info("sim", "stream closed dropped_frames=%llu clients=%d", (unsigned long long)s->dropped,
             S->nclients);
}

/* Sends the frame in flight in pieces of at most WS_CHUNK bytes (one per writable callback, a
 * websocket fragment each), so a large frame never monopolises the loop nor is copied
 * whole into libwebsockets' send buffer. */
static int ws_writable(server *S, struct lws *wsi, sess *s)
{
    if (!s->cur) {
        if (s->qn == 0)
            return 0;
        s->cur = s->q[s->qhead];
        s->qhead = (s->qhead + 1) % s->qcap;
        s->qn--;
        s->qbytes -= s->cur->len;
        s->cur_off = 0;
    }
    frame *f = s->cur;
    size_t n = f->len - s->cur_off;
    size_t most = lws_is_ssl(wsi) ? TLS_CHUNK : WS_CHUNK;
    if (n > most)
        n = most;
    bool start = s->cur_off == 0, end = s->cur_off + n == f->len;
    memcpy(txbuf + LWS_PRE, f->data + LWS_PRE + s->cur_off, n);
    int w = lws_write(wsi, txbuf + LWS_PRE, n,
                      (enum lws_write_protocol)lws_write_ws_flags(LWS_WRITE_TEXT, start, end));
    if (w < 0)
        return -1;
    s->cur_off += n;
    S->bytes_sent += n;
    if (end) {
        S->frames_sent++;
        frame_unref(f);
        s->cur = NULL;
        if (S->faults.drop_rate > 0 && fault_draw(S) < S->faults.drop_rate) {
            tsi_info("sim", "stream dropped (injected fault)");
            return -1;
        }
    }
    if (s->cur || s->qn)
        lws_callback_on_writable(wsi);
    return 0;
}

/* ---- the lws protocol ---- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    server *S = lws_context_user(lws_get_context(wsi));
    sess *s = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        snprintf(s->path, sizeof s->path, "%s", in ? (const char *)in : "/");
        s->is_post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
        s->auth[0] = '\0';
        if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) < (int)sizeof s->auth)
            lws_hdr_copy(wsi, s->auth, sizeof s->auth, WSI_TOKEN_HTTP_AUTHORIZATION);
        collect_args(wsi, s);
        tsi_buf_reset(&s->req);
        s->too_big = false;
        if (s->is_post) {
            char cl[32] = "";
            if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
                atoll(cl) > 0) {
                if (atoll(cl) > MAX_BODY)
                    s->too_big = true;
                else
                    return 0; /* wait for the body */
            }
        }
        handle(S, wsi, s);
        return 0;
    }
    case LWS_CALLBACK_HTTP_BODY:
        if (s->req.len + len > MAX_BODY)
            s->too_big = true;
        else
            tsi_buf_append(&s->req, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        handle(S, wsi, s);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return write_http(wsi, s);
    case LWS_CALLBACK_TIMER:
        if (s->responding)
            lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (s) {
            tsi_buf_free(&s->req);
            tsi_buf_free(&s->resp);
            tsi_buf_free(&s->args);
            s->responding = false;
        }
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return ws_filter(S, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        return ws_established(S, wsi, s);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_writable(S, wsi, s);
    case LWS_CALLBACK_RECEIVE:
        return 0;
    case LWS_CALLBACK_CLOSED:
        ws_closed(S, s);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"vcc", callback, sizeof(sess), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log_emit(int level, const char *line)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", line);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if (level & LLL_ERR)
        tsi_err("lws", "%s", buf);
    else
        tsi_debug("lws", "%s", buf);
}

int tsi_sim_server_run(const tsi_sim_server_cfg *cfg, volatile sig_atomic_t *stop, tsi_error *err)
{
    server S;
    memset(&S, 0, sizeof S);
    S.cfg = cfg;
    S.faults = cfg->faults;
    S.fault_rng = cfg->model.seed ^ 0xFA17ull;
    if (cfg->speed <= 0)
        return tsi_error_set(err, TSI_E_INVALID, "speed must be positive", NULL);
    if (getrandom(S.secret, sizeof S.secret, 0) != (ssize_t)sizeof S.secret) {
        uint64_t x = hmix((uint64_t)mono_us());
        for (size_t i = 0; i < sizeof S.secret; i++)
            S.secret[i] = (unsigned char)(x = hmix(x));
    }
    int64_t t0 = mono_us();
    S.model = tsi_sim_model_new(&cfg->model);
    if (!S.model)
        return tsi_error_set(err, TSI_E_INVALID, "bad simulator configuration", NULL);
    tsi_info("sim", "model ready intersections=%d warmup_s=%d build_ms=%lld",
             cfg->model.n_intersections, cfg->model.warmup_s, (long long)((mono_us() - t0) / 1000));
    S.nring = cfg->current_seconds * 2 > 0 ? cfg->current_seconds * 2 : 1;
    for (int k = 0; k < 2; k++) {
        S.ring[k] = calloc((size_t)S.nring, sizeof(tickbuf));
        if (!S.ring[k])
            abort();
    }
    S.ring_head = 0;

    lws_set_log_level(LLL_ERR | (tsi_log_get_level() <= TSI_LOG_DEBUG ? LLL_WARN : 0),
                      lws_log_emit);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.user = &S;
    info.count_threads = 1;
    info.timeout_secs = 30;
    info.max_http_header_data = 4096;
    info.pt_serv_buf_size = 64 * 1024;
    bool tls = cfg->tls_cert && cfg->tls_key;
    if (tls)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    int rc = 0;
    S.ctx = lws_create_context(&info);
    if (!S.ctx) {
        rc = tsi_error_set(err, TSI_E_IO, "cannot create the libwebsockets context", NULL);
        goto done;
    }
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof vi);
    vi.port = cfg->port;
    vi.iface = cfg->bind;
    /* libwebsockets (4.1) opens an IPv6 socket whenever it was built with IPv6 and then
     * fails to apply an IPv4 address to it: `--bind 127.0.0.1` ended up as *:port, every
     * interface. An IPv4 address gets an IPv4 socket, which it binds as given. */
    struct in_addr bind4;
    if (cfg->bind && inet_pton(AF_INET, cfg->bind, &bind4) == 1)
        vi.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    vi.protocols = protocols;
    vi.vhost_name = "tsi-sim";
    vi.keepalive_timeout = 30;
    if (tls) {
        vi.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT; /* read per vhost, too */
        vi.ssl_cert_filepath = cfg->tls_cert;
        vi.ssl_private_key_filepath = cfg->tls_key;
    }
    struct lws_vhost *vh = lws_create_vhost(S.ctx, &vi);
    if (!vh) {
        if (tls)
            rc = tsi_error_set(err, TSI_E_IO, "cannot listen with TLS",
                               "%s:%d cert %s key %s (unreadable, not PEM, or not a pair?)",
                               cfg->bind, cfg->port, cfg->tls_cert, cfg->tls_key);
        else
            rc = tsi_error_set(err, TSI_E_IO, "cannot listen", "%s:%d", cfg->bind, cfg->port);
        goto done;
    }
    S.port = lws_get_vhost_listen_port(vh);
    if (cfg->port_file) {
        FILE *pf = fopen(cfg->port_file, "w");
        if (pf) {
            fprintf(pf, "%d\n", S.port);
            fclose(pf);
        }
    }
    S.wall0_us = mono_us();
    S.sim0_ms = tsi_sim_model_now(S.model);
    tsi_info("sim", "listening url=%s://%s:%d intersections=%d seed=%llu speed=%g start=%lld",
             tls ? "https" : "http", cfg->bind, S.port, cfg->model.n_intersections,
             (unsigned long long)cfg->model.seed, cfg->speed,
             (long long)tsi_sim_model_cfg(S.model)->start_ms);
    lws_sul_schedule(S.ctx, 0, &S.sul, tick_cb, 1);
    while (!*stop) {
        if (lws_service(S.ctx, 0) < 0)
            break;
    }
    tsi_info("sim", "stopping ticks=%llu frames_sent=%llu requests=%llu",
             (unsigned long long)S.ticks, (unsigned long long)S.frames_sent,
             (unsigned long long)S.requests);
done:
    if (S.ctx)
        lws_context_destroy(S.ctx);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; S.ring[k] && i < S.nring; i++) {
            tsi_buf_free(&S.ring[k][i].json);
            free(S.ring[k][i].off);
            free(S.ring[k][i].len);
            free(S.ring[k][i].isect);
        }
        free(S.ring[k]);
    }
    free(S.tokens);
    free(S.keys);
    tsi_sim_model_free(S.model);
    return rc;
}
