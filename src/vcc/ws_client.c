/* vcc/ws_client.c — see ws_client.h
 *
 * A small RFC 6455 client: one non-blocking socket (plain or OpenSSL) polled together with
 * an eventfd (tsi_ws_client_stop), a 256 KiB read buffer parsed frame by frame; payloads
 * of unmasked server frames are handed out in place (a whole frame already in the buffer)
 * or appended with one memcpy per read (a frame or message spanning reads). */
#include "vcc/ws_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/buf.h"
#include "base/log.h"

#define RBUF_SIZE (256u * 1024u) /* one read; frames larger than this stream through it */
#define HS_MAX    (16u * 1024u)  /* the handshake response's headers */
#define WS_GUID   "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { ST_IDLE, ST_TCP, ST_TLS, ST_HS, ST_OPEN };

struct tsi_ws_client {
    tsi_ws_client_cfg cfg;
    char *ca_file;
    int wakefd; /* eventfd: tsi_ws_client_stop() wakes poll() */
    atomic_int stop;
    atomic_bool connected;
    int state;
    int fd;
    SSL_CTX *ssl_ctx; /* made on the first wss:// attempt */
    SSL *ssl;
    bool ssl_want_write; /* the last SSL call needs the socket writable */
    struct addrinfo *ai_list, *ai_next;
    int ai_errno;
    bool tls;
    int port;
    int64_t next_attempt_ms; /* ST_IDLE: when to connect */
    int64_t deadline_ms;     /* ST_TCP..ST_HS: the attempt's end; ST_OPEN: the idle limit */
    int backoff_ms;
    bool ended, want_close;
    /* input: bytes [rpos, rlen) of rbuf are unparsed; rbuf has one spare byte for a NUL */
    unsigned char *rbuf;
    size_t rpos, rlen;
    /* output: bytes [woff, wbuf.len) are pending */
    tsi_buf wbuf;
    size_t woff;
    /* the frame and message being received */
    bool in_frame, fr_fin, in_msg, msg_oversize;
    uint64_t fr_left, msg_total;
    tsi_buf msg;
    char accept[32]; /* the Sec-WebSocket-Accept we expect */
    char why[320];
    tsi_ws_stats st;
    pthread_mutex_t mu; /* guards st for readers on other threads */
    char url[2048], host[256], path[1536];
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

/* ---- small helpers -------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void random_bytes(void *p, size_t n)
{
    unsigned char *b = p;
    while (n > 0) {
        ssize_t r = getrandom(b, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            /* no getrandom (very old kernel): the masks and keys need not be secret */
            for (size_t i = 0; i < n; i++)
                b[i] = (unsigned char)(rand() & 0xff);
            return;
        }
        b += r;
        n -= (size_t)r;
    }
}

static void event(tsi_ws_client *c, int ev, const char *detail)
{
    if (c->cfg.on_event)
        c->cfg.on_event(c->cfg.ud, ev, detail ? detail : "");
}

static void count(tsi_ws_client *c, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&c->mu);
    *field += n;
    pthread_mutex_unlock(&c->mu);
}

/* The OpenSSL error queue as text (and empties it). */
static void ssl_errors(char *out, size_t n)
{
    out[0] = '\0';
    unsigned long e;
    size_t used = 0;
    while ((e = ERR_get_error()) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof one);
        int w = snprintf(out + used, n - used, "%s%s", used ? "; " : "", one);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
    ERR_clear_error();
}

/* SSL writes may write() to a socket the peer closed: keep SIGPIPE from killing the
 * process (block it on this thread, consume one raised meanwhile). */
typedef struct {
    sigset_t old;
    bool was_pending;
} pipe_guard;

static void pipe_block(pipe_guard *g)
{
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pend);
    sigpending(&pend);
    g->was_pending = sigismember(&pend, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void pipe_unblock(pipe_guard *g)
{
    if (!g->was_pending) {
        sigset_t set, pend;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        sigemptyset(&pend);
        if (sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE) == 1) {
            struct timespec zero = {0, 0};
            while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
                ;
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- connection lifecycle --------------------------------------------------------------- */

static void drop_conn(tsi_ws_client *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->ai_list) {
        freeaddrinfo(c->ai_list);
        c->ai_list = c->ai_next = NULL;
    }
    c->ssl_want_write = false;
    c->rpos = c->rlen = 0;
    tsi_buf_reset(&c->wbuf);
    c->woff = 0;
    c->in_frame = c->fr_fin = c->in_msg = c->msg_oversize = false;
    c->fr_left = c->msg_total = 0;
    tsi_buf_reset(&c->msg);
    c->want_close = false;
    c->state = ST_IDLE;
}

static void schedule(tsi_ws_client *c, bool after_failure)
{
    c->state = ST_IDLE;
    if (!c->cfg.reconnect) {
        c->ended = true;
        c->next_attempt_ms = now_ms();
        return;
    }
    int delay = c->cfg.backoff_min_ms;
    if (after_failure) {
        delay = c->backoff_ms;
        c->backoff_ms =
            c->backoff_ms > c->cfg.backoff_max_ms / 2 ? c->cfg.backoff_max_ms : c->backoff_ms * 2;
    }
    /* jitter: up to a quarter less, never below the minimum (clients started together do
     * not retry in lockstep) */
    unsigned r;
    random_bytes(&r, sizeof r);
    delay -= (int)(r % (unsigned)(delay / 4 + 1));
    if (delay < c->cfg.backoff_min_ms)
        delay = c->cfg.backoff_min_ms;
    c->next_attempt_ms = now_ms() + delay;
}

static void fail(tsi_ws_client *c, const char *why)
{
    char d[sizeof c->why];
    snprintf(d, sizeof d, "%s", why);
    drop_conn(c);
    count(c, &c->st.failures, 1);
    event(c, TSI_WS_FAILED, d);
    schedule(c, true);
}

static void closed(tsi_ws_client *c, const char *why)
{
    char d[sizeof c->why];
    snprintf(d, sizeof d, "%s", why);
    bool was = atomic_exchange(&c->connected, false);
    drop_conn(c);
    if (was) {
        count(c, &c->st.closes, 1);
        event(c, TSI_WS_CLOSED, d);
    }
    schedule(c, false);
}

/* ---- raw I/O: >0 bytes, 0 end of stream, -1 would block, -2 error (c->why) ------------- */

/* a plain socket's recv (rd) or send (wr, whose buffer is only read): bytes moved, -1 when
 * it would block, -2 on failure (c->why) */
static ssize_t plain_io(tsi_ws_client *c, void *rd, const void *wr, size_t n)
{
    for (;;) {
        ssize_t r = rd ? recv(c->fd, rd, n, 0) : send(c->fd, wr, n, MSG_NOSIGNAL);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -1;
        snprintf(c->why, sizeof c->why, "%s: %s", rd ? "read" : "write", strerror(errno));
        return -2;
    }
}

static ssize_t io_read(tsi_ws_client *c, void *p, size_t n)
{
    if (!c->ssl)
        return plain_io(c, p, NULL, n);
    ERR_clear_error();
    c->ssl_want_write = false;
    int r = SSL_read(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
    if (r > 0)
        return r;
    int e = SSL_get_error(c->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return -1;
    case SSL_ERROR_WANT_WRITE:
        c->ssl_want_write = true;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0 || r == 0) {
            ERR_clear_error();
            return 0;
        }
        snprintf(c->why, sizeof c->why, "tls read: %s", strerror(errno));
        ERR_clear_error();
        return -2;
    default: {
        char q[256];
        ssl_errors(q, sizeof q);
        snprintf(c->why, sizeof c->why, "tls read: %s", q[0] ? q : "error");
        return -2;
    }
    }
}

static ssize_t io_write(tsi_ws_client *c, const void *p, size_t n)
{
    if (!c->ssl)
        return plain_io(c, NULL, p, n);
    ERR_clear_error();
    c->ssl_want_write = false;
    pipe_guard g;
    pipe_block(&g);
    int r = SSL_write(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
    int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
    int saved = errno;
    pipe_unblock(&g);
    if (r > 0)
        return r;
    if (e == SSL_ERROR_WANT_WRITE) {
        c->ssl_want_write = true;
        return -1;
    }
    if (e == SSL_ERROR_WANT_READ)
        return -1;
    if (e == SSL_ERROR_SYSCALL && saved != 0) {
        snprintf(c->why, sizeof c->why, "tls write: %s", strerror(saved));
        ERR_clear_error();
    } else {
        char q[256];
        ssl_errors(q, sizeof q);
        snprintf(c->why, sizeof c->why, "tls write: %s", q[0] ? q : "error");
    }
    return -2;
}

/* Writes what is pending. 0: all or some written (the rest waits for POLLOUT), -2 error. */
static int flush(tsi_ws_client *c)
{
    while (c->woff < c->wbuf.len) {
        ssize_t w = io_write(c, c->wbuf.data + c->woff, c->wbuf.len - c->woff);
        if (w == -1)
            return 0;
        if (w < 0)
            return -2;
        c->woff += (size_t)w;
    }
    tsi_buf_reset(&c->wbuf);
    c->woff = 0;
    return 0;
}

/* Queues a masked client frame (control frames only: payload <= 125 bytes). */
static void queue_frame(tsi_ws_client *c, int opcode, const unsigned char *pl, size_t len)
{
    if (len > 125)
        len = 125;
    unsigned char h[6 + 125];
    h[0] = (unsigned char)(0x80 | opcode);
    h[1] = (unsigned char)(0x80 | len);
    random_bytes(h + 2, 4);
    for (size_t i = 0; i < len; i++)
        h[6 + i] = pl[i] ^ h[2 + (i & 3)];
    tsi_buf_append(&c->wbuf, h, 6 + len);
}

/* A close frame (best effort: one non-blocking write), then the TLS close_notify. */
static void send_close(tsi_ws_client *c, int code)
{
    unsigned char pl[2] = {(unsigned char)(code >> 8), (unsigned char)(code & 0xff)};
    queue_frame(c, 0x8, pl, code ? 2 : 0);
    (void)flush(c);
    if (c->ssl) {
        ERR_clear_error();
        pipe_guard g;
        pipe_block(&g);
        (void)SSL_shutdown(c->ssl);
        pipe_unblock(&g);
        ERR_clear_error();
    }
}

static int proto_error(tsi_ws_client *c, const char *what)
{
    char d[200];
    snprintf(d, sizeof d, "protocol error: %s", what);
    send_close(c, 1002);
    closed(c, d);
    return -1;
}

/* ---- frames ----------------------------------------------------------------------------- */

static void deliver(tsi_ws_client *c, const char *data, size_t len)
{
    pthread_mutex_lock(&c->mu);
    c->st.frames++;
    c->st.bytes += len;
    pthread_mutex_unlock(&c->mu);
    c->cfg.on_frame(c->cfg.ud, data, len);
}

static void finish_msg(tsi_ws_client *c)
{
    c->in_msg = false;
    if (c->msg_oversize)
        count(c, &c->st.oversize, 1);
    else
        deliver(c, c->msg.data ? c->msg.data : "", c->msg.len);
    c->msg_oversize = false;
    c->msg_total = 0;
    tsi_buf_reset(&c->msg);
}

static int control(tsi_ws_client *c, int op, const unsigned char *pl, size_t len)
{
    if (op == 0x9) { /* ping: pong with the same payload */
        queue_frame(c, 0xA, pl, len);
        if (flush(c) < 0) {
            char d[sizeof c->why];
            snprintf(d, sizeof d, "%s", c->why);
            closed(c, d);
            return -1;
        }
        return 0;
    }
    if (op == 0xA) /* pong: nothing asked */
        return 0;
    /* close */
    if (len == 1)
        return proto_error(c, "close frame with a 1-byte payload");
    int code = len >= 2 ? (pl[0] << 8) | pl[1] : 0;
    char reason[126];
    size_t rl = len > 2 ? len - 2 : 0;
    for (size_t i = 0; i < rl; i++)
        reason[i] = pl[2 + i] >= ' ' && pl[2 + i] < 0x7f ? (char)pl[2 + i] : '?';
    reason[rl] = '\0';
    char d[220];
    if (code)
        snprintf(d, sizeof d, "closed by the server (code %d%s%s)", code, rl ? ": " : "", reason);
    else
        snprintf(d, sizeof d, "closed by the server");
    send_close(c, code ? 1000 : 0);
    closed(c, d);
    return -1;
}

/* Parses [rpos, rlen): 0 when more bytes are needed (or the loop must look at a close or
 * stop request), -1 when the connection is gone. */
static int parse_frames(tsi_ws_client *c)
{
    while (!c->want_close && !atomic_load(&c->stop)) {
        unsigned char *p = c->rbuf + c->rpos;
        size_t avail = c->rlen - c->rpos;
        if (c->in_frame) {
            size_t n = avail < c->fr_left ? avail : (size_t)c->fr_left;
            if (n == 0)
                break;
            if (!c->msg_oversize)
                tsi_buf_append(&c->msg, p, n);
            c->rpos += n;
            c->fr_left -= n;
            if (c->fr_left == 0) {
                c->in_frame = false;
                if (c->fr_fin)
                    finish_msg(c);
            }
            continue;
        }
        if (avail < 2)
            break;
        bool fin = p[0] & 0x80;
        int op = p[0] & 0x0f;
        if (p[0] & 0x70)
            return proto_error(c, "reserved bits set (no extension was negotiated)");
        if (p[1] & 0x80)
            return proto_error(c, "masked frame from the server");
        if (op != 0x0 && op != 0x1 && op != 0x2 && op != 0x8 && op != 0x9 && op != 0xA) {
            char d[40];
            snprintf(d, sizeof d, "unknown opcode %d", op);
            return proto_error(c, d);
        }
        size_t len7 = p[1] & 0x7f, hl = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
        if (avail < hl)
            break;
        uint64_t len = len7;
        if (len7 == 126) {
            len = ((uint64_t)p[2] << 8) | p[3];
        } else if (len7 == 127) {
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | p[2 + i];
            if (len >> 63)
                return proto_error(c, "64-bit length with the most significant bit set");
        }
        if (op >= 0x8) {
            if (!fin)
                return proto_error(c, "fragmented control frame");
            if (len > 125)
                return proto_error(c, "control frame longer than 125 bytes");
            if (avail < hl + len)
                break;
            c->rpos += hl + (size_t)len;
            if (control(c, op, p + hl, (size_t)len) < 0)
                return -1;
            continue;
        }
        if (op == 0x0 && !c->in_msg)
            return proto_error(c, "continuation frame without a message to continue");
        if (op != 0x0 && c->in_msg)
            return proto_error(c, "new data frame inside a fragmented message");
        if (op != 0x0) {
            c->in_msg = true;
            c->msg_oversize = false;
            c->msg_total = 0;
            tsi_buf_reset(&c->msg);
        }
        if (!c->msg_oversize) {
            if (len > (uint64_t)c->cfg.max_frame - c->msg_total) {
                c->msg_oversize = true;
                tsi_buf_reset(&c->msg);
            } else {
                c->msg_total += len;
            }
        }
        c->rpos += hl;
        if (fin && op != 0x0 && !c->msg_oversize && avail - hl >= len) {
            /* the whole message is in the buffer: hand it out in place, NUL-terminated
             * (rbuf has a spare byte past its end) */
            char *d = (char *)p + hl;
            char keep = d[len];
            d[len] = '\0';
            c->in_msg = false;
            c->msg_total = 0;
            c->rpos += (size_t)len;
            deliver(c, d, (size_t)len);
            d[len] = keep;
            continue;
        }
        if (len == 0) {
            if (fin)
                finish_msg(c);
            continue;
        }
        c->in_frame = true;
        c->fr_left = len;
        c->fr_fin = fin;
    }
    return 0;
}

/* ---- the handshake ---------------------------------------------------------------------- */

static void b64(const unsigned char *in, int n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, n);
}

static int send_upgrade(tsi_ws_client *c)
{
    unsigned char key[16];
    random_bytes(key, sizeof key);
    char k64[32];
    b64(key, sizeof key, k64);
    char cat[64 + sizeof WS_GUID];
    snprintf(cat, sizeof cat, "%s%s", k64, WS_GUID);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20) {
        fail(c, "handshake: SHA-1 unavailable");
        return -1;
    }
    b64(md, 20, c->accept);
    bool dflt = c->port == (c->tls ? 443 : 80);
    char port[16] = "";
    if (!dflt)
        snprintf(port, sizeof port, ":%d", c->port);
    tsi_buf_reset(&c->wbuf);
    c->woff = 0;
    tsi_buf_printf(&c->wbuf,
                   "GET %s HTTP/1.1\r\nHost: %s%s\r\nUpgrade: websocket\r\nConnection: "
                   "Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                   "User-Agent: tsi\r\n\r\n",
                   c->path, c->host, port, k64);
    c->state = ST_HS;
    if (flush(c) < 0) {
        char d[sizeof c->why + 16];
        snprintf(d, sizeof d, "handshake: %s", c->why);
        fail(c, d);
        return -1;
    }
    return 0;
}

static bool has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        size_t n = strcspn(v, ",");
        size_t m = n;
        while (m > 0 && (v[m - 1] == ' ' || v[m - 1] == '\t'))
            m--;
        if (m == tl && strncasecmp(v, tok, tl) == 0)
            return true;
        v += n;
    }
    return false;
}

/* Checks the response in rbuf[0, hlen) (hlen includes the blank line). 0 or -1 (failed). */
static int check_upgrade(tsi_ws_client *c, size_t hlen)
{
    if (memchr(c->rbuf, '\0', hlen)) {
        fail(c, "handshake: NUL byte in the response");
        return -1;
    }
    char *h = malloc(hlen + 1);
    if (!h) {
        fail(c, "handshake: out of memory");
        return -1;
    }
    memcpy(h, c->rbuf, hlen);
    h[hlen] = '\0';
    char d[300];
    char *eol = strstr(h, "\r\n");
    *eol = '\0';
    int code = 0;
    if (sscanf(h, "HTTP/1.%*1[01] %3d", &code) != 1 || code != 101) {
        char line[200];
        size_t i = 0;
        for (const char *s = h; *s && i + 1 < sizeof line; s++)
            line[i++] = (unsigned char)*s >= ' ' && (unsigned char)*s < 0x7f ? *s : '?';
        line[i] = '\0';
        snprintf(d, sizeof d, "handshake refused: %s", line[0] ? line : "(empty status line)");
        free(h);
        fail(c, d);
        return -1;
    }
    bool upgrade = false, connection = false, accept = false;
    const char *bad = NULL;
    for (char *line = eol + 2; *line;) {
        char *end = strstr(line, "\r\n");
        if (!end)
            break;
        *end = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vl = strlen(v);
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                v[--vl] = '\0';
            if (strcasecmp(line, "Upgrade") == 0)
                upgrade = strcasecmp(v, "websocket") == 0;
            else if (strcasecmp(line, "Connection") == 0)
                connection = has_token(v, "upgrade");
            else if (strcasecmp(line, "Sec-WebSocket-Accept") == 0)
                accept = strcmp(v, c->accept) == 0;
            else if (strcasecmp(line, "Sec-WebSocket-Extensions") == 0 && *v)
                bad = "an extension was not asked for";
        }
        line = end + 2;
    }
    free(h);
    if (!bad && !upgrade)
        bad = "no \"Upgrade: websocket\"";
    if (!bad && !connection)
        bad = "no \"Connection: Upgrade\"";
    if (!bad && !accept)
        bad = "missing or wrong Sec-WebSocket-Accept";
    if (bad) {
        snprintf(d, sizeof d, "handshake: %s", bad);
        fail(c, d);
        return -1;
    }
    return 0;
}

static void opened(tsi_ws_client *c)
{
    c->state = ST_OPEN;
    atomic_store(&c->connected, true);
    c->backoff_ms = c->cfg.backoff_min_ms;
    c->deadline_ms = now_ms() + (int64_t)c->cfg.idle_timeout_s * 1000;
    count(c, &c->st.connects, 1);
    event(c, TSI_WS_CONNECTED, c->path);
}

/* ---- connecting --------------------------------------------------------------------------- */

static int make_ssl_ctx(tsi_ws_client *c, char *why, size_t n)
{
    if (c->ssl_ctx)
        return 0;
    ERR_clear_error();
    SSL_CTX *x = SSL_CTX_new(TLS_client_method());
    if (!x) {
        char q[256];
        ssl_errors(q, sizeof q);
        snprintf(why, n, "tls: cannot create a context: %s", q);
        return -1;
    }
    SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION);
    SSL_CTX_set_mode(x, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (c->cfg.tls_insecure) {
        SSL_CTX_set_verify(x, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(x, SSL_VERIFY_PEER, NULL);
        int ok = c->ca_file ? SSL_CTX_load_verify_locations(x, c->ca_file, NULL)
                            : SSL_CTX_set_default_verify_paths(x);
        if (ok != 1) {
            char q[256];
            ssl_errors(q, sizeof q);
            snprintf(why, n, "tls: cannot load the CA certificates %s: %s",
                     c->ca_file ? c->ca_file : "(system store)", q);
            SSL_CTX_free(x);
            return -1;
        }
    }
    c->ssl_ctx = x;
    return 0;
}

static void tls_step(tsi_ws_client *c)
{
    ERR_clear_error();
    c->ssl_want_write = false;
    pipe_guard g;
    pipe_block(&g);
    int r = SSL_connect(c->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
    int saved = errno;
    pipe_unblock(&g);
    if (r == 1) {
        (void)send_upgrade(c);
        return;
    }
    if (e == SSL_ERROR_WANT_READ)
        return;
    if (e == SSL_ERROR_WANT_WRITE) {
        c->ssl_want_write = true;
        return;
    }
    char d[sizeof c->why];
    long vr = SSL_get_verify_result(c->ssl);
    if (vr != X509_V_OK) {
        snprintf(d, sizeof d, "tls: certificate verify failed: %s (host %s)",
                 X509_verify_cert_error_string(vr), c->host);
        ERR_clear_error();
    } else {
        char q[256];
        ssl_errors(q, sizeof q);
        if (!q[0])
            snprintf(q, sizeof q, "%s",
                     e == SSL_ERROR_SYSCALL && saved ? strerror(saved) : "connection closed");
        snprintf(d, sizeof d, "tls: handshake failed: %s", q);
    }
    fail(c, d);
}

static void tcp_up(tsi_ws_client *c)
{
    freeaddrinfo(c->ai_list);
    c->ai_list = c->ai_next = NULL;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!c->tls) {
        (void)send_upgrade(c);
        return;
    }
    ERR_clear_error();
    c->ssl = SSL_new(c->ssl_ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        char q[256], d[300];
        ssl_errors(q, sizeof q);
        snprintf(d, sizeof d, "tls: %s", q);
        fail(c, d);
        return;
    }
    SSL_set_connect_state(c->ssl);
    unsigned char ip[16];
    bool literal = inet_pton(AF_INET, c->host, ip) == 1 || inet_pton(AF_INET6, c->host, ip) == 1;
    if (!literal)
        SSL_set_tlsext_host_name(c->ssl, c->host); /* SNI (not for IP addresses) */
    if (!c->cfg.tls_insecure) {
        int ok = literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), c->host)
                         : SSL_set1_host(c->ssl, c->host);
        if (ok != 1) {
            fail(c, "tls: cannot set the host name to verify");
            return;
        }
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    c->state = ST_TLS;
    tls_step(c);
}

/* Tries the remaining addresses until one connects or is in progress. */
static void try_addrs(tsi_ws_client *c)
{
    for (; c->ai_next; c->ai_next = c->ai_next->ai_next) {
        struct addrinfo *a = c->ai_next;
        int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            c->ai_errno = errno;
            continue;
        }
        int r;
        do
            r = connect(fd, a->ai_addr, a->ai_addrlen);
        while (r < 0 && errno == EINTR);
        if (r == 0 || errno == EINPROGRESS) {
            c->fd = fd;
            c->ai_next = a->ai_next;
            if (r == 0) {
                tcp_up(c);
            } else {
                c->state = ST_TCP;
            }
            return;
        }
        c->ai_errno = errno;
        close(fd);
    }
    char d[sizeof c->host + 80];
    snprintf(d, sizeof d, "connect %s:%d: %s", c->host, c->port,
             c->ai_errno ? strerror(c->ai_errno) : "no address");
    fail(c, d);
}

static void tcp_step(tsi_ws_client *c)
{
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
        err = errno;
    if (err == 0) {
        tcp_up(c);
        return;
    }
    c->ai_errno = err;
    close(c->fd);
    c->fd = -1;
    try_addrs(c);
}

static void start_attempt(tsi_ws_client *c)
{
    c->url[0] = '\0';
    if (c->cfg.get_url(c->cfg.ud, c->url, sizeof c->url) < 0 || !c->url[0]) {
        fail(c, "no url");
        return;
    }
    c->url[sizeof c->url - 1] = '\0';
    if (tsi_ws_parse_url(c->url, &c->tls, c->host, sizeof c->host, &c->port, c->path,
                         sizeof c->path) < 0) {
        fail(c, "bad url");
        return;
    }
    if (c->tls && make_ssl_ctx(c, c->why, sizeof c->why) < 0) {
        char d[sizeof c->why];
        snprintf(d, sizeof d, "%s", c->why);
        fail(c, d);
        return;
    }
    c->deadline_ms = now_ms() + (int64_t)c->cfg.idle_timeout_s * 1000;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char port[8];
    snprintf(port, sizeof port, "%d", c->port);
    int r = getaddrinfo(c->host, port, &hints, &c->ai_list);
    if (r != 0) {
        c->ai_list = NULL;
        char d[sizeof c->host + 80];
        snprintf(d, sizeof d, "resolve %s: %s", c->host,
                 r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
        fail(c, d);
        return;
    }
    c->ai_next = c->ai_list;
    c->ai_errno = 0;
    try_addrs(c);
}

/* ---- reading ---------------------------------------------------------------------------- */

/* ST_HS: collects the response headers; then the connection is open and the bytes after
 * them are the first frame bytes. */
static void hs_read(tsi_ws_client *c)
{
    for (;;) {
        if (c->rlen >= HS_MAX) {
            fail(c, "handshake: response headers too large");
            return;
        }
        ssize_t n = io_read(c, c->rbuf + c->rlen, HS_MAX - c->rlen);
        if (n == -1)
            return;
        if (n == 0) {
            fail(c, "handshake: connection closed by the server");
            return;
        }
        if (n < 0) {
            char d[sizeof c->why + 16];
            snprintf(d, sizeof d, "handshake: %s", c->why);
            fail(c, d);
            return;
        }
        size_t from = c->rlen > 3 ? c->rlen - 3 : 0;
        c->rlen += (size_t)n;
        unsigned char *e = memmem(c->rbuf + from, c->rlen - from, "\r\n\r\n", 4);
        if (!e)
            continue;
        size_t hlen = (size_t)(e - c->rbuf) + 4;
        if (check_upgrade(c, hlen) < 0)
            return;
        c->rpos = hlen;
        opened(c);
        if (c->state != ST_OPEN || c->rpos == c->rlen)
            return;
        if (parse_frames(c) < 0)
            return;
        return; /* the loop reads on (and looks at close/stop requests first) */
    }
}

static void open_read(tsi_ws_client *c)
{
    for (int i = 0; i < 64; i++) {
        /* keep the unparsed tail (< one header + one control frame) at the front */
        if (c->rpos > 0) {
            size_t rest = c->rlen - c->rpos;
            if (rest)
                memmove(c->rbuf, c->rbuf + c->rpos, rest);
            c->rpos = 0;
            c->rlen = rest;
        }
        if (c->rlen >= RBUF_SIZE) { /* cannot happen: the parser leaves < 140 bytes */
            closed(c, "internal error: read buffer full");
            return;
        }
        ssize_t n = io_read(c, c->rbuf + c->rlen, RBUF_SIZE - c->rlen);
        if (n == -1)
            return;
        if (n == 0) {
            closed(c, "connection closed by the server (no close frame)");
            return;
        }
        if (n < 0) {
            char d[sizeof c->why];
            snprintf(d, sizeof d, "%s", c->why);
            closed(c, d);
            return;
        }
        c->rlen += (size_t)n;
        c->deadline_ms = now_ms() + (int64_t)c->cfg.idle_timeout_s * 1000;
        if (parse_frames(c) < 0 || c->want_close || atomic_load(&c->stop))
            return;
    }
}

static void on_io(tsi_ws_client *c, short revents)
{
    switch (c->state) {
    case ST_TCP:
        if (revents & (POLLOUT | POLLERR | POLLHUP))
            tcp_step(c);
        return;
    case ST_TLS:
        tls_step(c);
        return;
    case ST_HS:
    case ST_OPEN:
        if (c->woff < c->wbuf.len && flush(c) < 0) {
            char d[sizeof c->why + 16];
            snprintf(d, sizeof d, "%s%s", c->state == ST_HS ? "handshake: " : "", c->why);
            if (c->state == ST_HS)
                fail(c, d);
            else
                closed(c, d);
            return;
        }
        if (c->state == ST_HS)
            hs_read(c);
        else
            open_read(c);
        return;
    default:
        return;
    }
}

/* ---- the public API --------------------------------------------------------------------- */

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
    c->fd = -1;
    c->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->rbuf = malloc(RBUF_SIZE + 1);
    bool want_ca = cfg->ca_file && *cfg->ca_file;
    if (want_ca)
        c->ca_file = strdup(cfg->ca_file);
    if (c->wakefd < 0 || !c->rbuf || (want_ca && !c->ca_file)) {
        int code = c->wakefd < 0 ? TSI_E_IO : TSI_E_NOMEM;
        if (c->wakefd >= 0)
            close(c->wakefd);
        free(c->rbuf);
        free(c->ca_file);
        free(c);
        return tsi_error_set(err, code, code == TSI_E_IO ? "eventfd failed" : "out of memory",
                             NULL);
    }
    c->cfg.ca_file = c->ca_file;
    c->backoff_ms = c->cfg.backoff_min_ms;
    c->state = ST_IDLE;
    c->next_attempt_ms = 0; /* the first run connects at once */
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return 0;
}

int tsi_ws_client_run(tsi_ws_client *c, int timeout_ms)
{
    int64_t t_end = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
    c->ended = false;
    while (!atomic_load(&c->stop) && !c->ended) {
        if (c->want_close) {
            if (c->state == ST_OPEN) {
                send_close(c, 1000);
                closed(c, "closed");
            } else if (c->state != ST_IDLE) {
                fail(c, "closed by the client");
            }
            c->want_close = false;
            continue;
        }
        int64_t now = now_ms();
        if (t_end >= 0 && now >= t_end)
            break;
        if (c->state == ST_IDLE) {
            if (now >= c->next_attempt_ms) {
                start_attempt(c);
                continue;
            }
        } else if (now >= c->deadline_ms) {
            char d[96];
            if (c->state == ST_OPEN) {
                snprintf(d, sizeof d, "idle timeout: nothing received for %d s",
                         c->cfg.idle_timeout_s);
                closed(c, d);
            } else {
                snprintf(d, sizeof d, "timeout: %s took longer than %d s",
                         c->state == ST_TCP   ? "connect"
                         : c->state == ST_TLS ? "the TLS handshake"
                                              : "the WebSocket handshake",
                         c->cfg.idle_timeout_s);
                fail(c, d);
            }
            continue;
        }
        int64_t until = c->state == ST_IDLE ? c->next_attempt_ms : c->deadline_ms;
        if (t_end >= 0 && t_end < until)
            until = t_end;
        int64_t wait = until - now;
        if (wait > INT_MAX)
            wait = INT_MAX;
        struct pollfd pf[2] = {{.fd = c->wakefd, .events = POLLIN}, {.fd = -1}};
        int nfd = 1;
        if (c->state != ST_IDLE) {
            short ev = c->state == ST_TCP ? POLLOUT : POLLIN;
            if (c->ssl_want_write || c->woff < c->wbuf.len)
                ev |= POLLOUT;
            pf[1].fd = c->fd;
            pf[1].events = ev;
            nfd = 2;
        }
        bool buffered = c->ssl && c->state == ST_OPEN && SSL_pending(c->ssl) > 0;
        int r = poll(pf, (nfds_t)nfd, buffered ? 0 : (int)wait);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            tsi_err("ws", "poll failed: %s", strerror(errno));
            return TSI_E_IO;
        }
        if (pf[0].revents) {
            uint64_t v;
            while (read(c->wakefd, &v, sizeof v) > 0)
                ;
        }
        if (nfd == 2 && (pf[1].revents || buffered))
            on_io(c, pf[1].revents);
    }
    return 0;
}

void tsi_ws_client_stop(tsi_ws_client *c)
{
    atomic_store(&c->stop, 1);
    uint64_t one = 1;
    ssize_t w = write(c->wakefd, &one, sizeof one);
    (void)w; /* full counter: poll wakes anyway */
}

void tsi_ws_client_close(tsi_ws_client *c)
{
    if (c->state != ST_IDLE)
        c->want_close = true;
}

bool tsi_ws_client_connected(const tsi_ws_client *c)
{
    return atomic_load(&((tsi_ws_client *)c)->connected);
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
    if (c->state == ST_OPEN)
        send_close(c, 1001); /* going away; no event: the owner is tearing down */
    atomic_store(&c->connected, false);
    drop_conn(c);
    if (c->ssl_ctx)
        SSL_CTX_free(c->ssl_ctx);
    close(c->wakefd);
    free(c->rbuf);
    tsi_buf_free(&c->wbuf);
    tsi_buf_free(&c->msg);
    pthread_mutex_destroy(&c->mu);
    free(c->ca_file);
    free(c);
}
