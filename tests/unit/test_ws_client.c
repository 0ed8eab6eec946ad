/* Unit tests of src/vcc/ws_client.h that need no simulator: URL parsing (hostile input
 * included), configuration checks, a failing connection reported with backoff, and the
 * client against a scripted server inside the test (a thread with a socket on 127.0.0.1)
 * that completes the handshake and then sends crafted byte streams: frames split into
 * 1-byte writes, fragmented messages, 16/64-bit lengths, max_frame +-1, every protocol
 * error of RFC 6455 §5, ping/pong, close, idle timeout, stop from another thread, bad
 * handshakes, and 300 random streams checked against a whole-buffer reference reading.
 * The client against the simulator (ws:// and wss://) is tested in
 * tests/integration/test_sim*.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vcc/ws_client.h"

static void test_parse_url(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        int rc;
        bool tls;
        const char *host;
        int port;
        const char *path;
    } cases[] = {
        {"ws://127.0.0.1:8090/ws/bsm?key=abc", 0, false, "127.0.0.1", 8090, "/ws/bsm?key=abc"},
        {"wss://vcc.vtti.vt.edu/ws/psm?key=k&rsu=x", 0, true, "vcc.vtti.vt.edu", 443,
         "/ws/psm?key=k&rsu=x"},
        {"ws://host", 0, false, "host", 80, "/"},
        {"ws://host?key=1", 0, false, "host", 80, "/?key=1"},
        {"http://host/ws", TSI_E_INVALID, false, "", 0, ""},
        {"ws://", TSI_E_INVALID, false, "", 0, ""},
        {"ws://:80/x", TSI_E_INVALID, false, "", 0, ""},
        {"ws://host:0/x", TSI_E_INVALID, false, "", 0, ""},
        {"ws://host:65536/x", TSI_E_INVALID, false, "", 0, ""},
        {"ws://host:12ab/x", TSI_E_INVALID, false, "", 0, ""},
        {"ws://host/a b", TSI_E_INVALID, false, "", 0, ""},
        {"ws://host/a\nb", TSI_E_INVALID, false, "", 0, ""},
        {"ws://host#frag", TSI_E_INVALID, false, "", 0, ""},
        {"", TSI_E_INVALID, false, "", 0, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool tls = false;
        char host[64] = "", path[128] = "";
        int port = 0;
        int rc = tsi_ws_parse_url(cases[i].url, &tls, host, sizeof host, &port, path, sizeof path);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            assert_int_equal(tls, cases[i].tls);
            assert_string_equal(host, cases[i].host);
            assert_int_equal(port, cases[i].port);
            assert_string_equal(path, cases[i].path);
        }
    }
    /* a host name longer than the buffer is refused, not truncated */
    char longhost[300] = "ws://";
    memset(longhost + 5, 'h', 200);
    longhost[205] = '\0';
    bool tls;
    char host[64], path[64];
    int port;
    assert_int_equal(tsi_ws_parse_url(longhost, &tls, host, sizeof host, &port, path, sizeof path),
                     TSI_E_INVALID);
}

static int no_url(void *ud, char *url, size_t len)
{
    (void)ud;
    (void)url;
    (void)len;
    return TSI_E_UNAVAILABLE;
}

static int closed_port(void *ud, char *url, size_t len)
{
    int *calls = ud;
    (*calls)++;
    strncpy(url, "ws://127.0.0.1:1/ws/bsm?key=x", len);
    return 0;
}

static void on_frame(void *ud, const char *d, size_t n)
{
    (void)ud;
    (void)d;
    (void)n;
    fail_msg("no frame expected");
}

static void test_config_and_failures(void **state)
{
    (void)state;
    tsi_ws_client *c = NULL;
    tsi_error e = {0};
    tsi_ws_client_cfg cfg = {0};
    assert_int_equal(tsi_ws_client_new(&c, &cfg, &e), TSI_E_INVALID);
    assert_null(c);
    tsi_ws_client_free(NULL);
    /* no URL: nothing connects, the run ends at its deadline */
    cfg.get_url = no_url;
    cfg.on_frame = on_frame;
    cfg.reconnect = true;
    cfg.backoff_min_ms = 20;
    cfg.backoff_max_ms = 40;
    assert_int_equal(tsi_ws_client_new(&c, &cfg, &e), 0);
    assert_int_equal(tsi_ws_client_run(c, 300), 0);
    assert_false(tsi_ws_client_connected(c));
    tsi_ws_stats st;
    tsi_ws_client_stats(c, &st);
    assert_int_equal(st.connects, 0);
    assert_true(st.failures >= 3); /* retried with backoff */
    tsi_ws_client_free(c);
    /* a refused connection: retried, a fresh URL asked each time */
    int calls = 0;
    cfg.get_url = closed_port;
    cfg.ud = &calls;
    assert_int_equal(tsi_ws_client_new(&c, &cfg, &e), 0);
    assert_int_equal(tsi_ws_client_run(c, 400), 0);
    tsi_ws_client_stats(c, &st);
    assert_int_equal(st.connects, 0);
    assert_true(st.failures >= 2);
    assert_true(calls >= 2);
    tsi_ws_client_free(c);
    /* without reconnect the run ends with the first failure */
    calls = 0;
    cfg.reconnect = false;
    assert_int_equal(tsi_ws_client_new(&c, &cfg, &e), 0);
    assert_int_equal(tsi_ws_client_run(c, 10000), 0);
    assert_int_equal(calls, 1);
    tsi_ws_client_free(c);
}

/* ---- a scripted WebSocket server (a thread with a socket on 127.0.0.1, port 0) ---------- */

typedef struct script_srv {
    int lfd, port;
    pthread_t th;
    int hs;                   /* 0: a correct 101; 1: a wrong Sec-WebSocket-Accept; 2: HTTP 404 */
    const unsigned char *out; /* bytes sent after the handshake */
    size_t outlen;
    size_t chunk;            /* write size (0: all at once) */
    unsigned seed;           /* with chunk == SIZE_MAX: random write sizes from this seed */
    int byte_delay_us;       /* pause between writes */
    bool with_hs;            /* the first bytes go in the same write as the handshake response */
    bool hold;               /* keep the connection open (no FIN) until the client closes */
    unsigned char got[8192]; /* what the client sent after its request */
    size_t gotlen;
    char request[4096];
} script_srv;

/* SHA-1 + base64 of key + the RFC 6455 GUID, computed here with OpenSSL's one-shot API */
static void expected_accept(const char *key, char out[64])
{
    char cat[256];
    snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    assert_int_equal(EVP_Digest(cat, strlen(cat), md, &n, EVP_sha1(), NULL), 1);
    assert_int_equal(n, 20);
    EVP_EncodeBlock((unsigned char *)out, md, 20);
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the client went away (it may, after a protocol error) */
        b += w;
        n -= (size_t)w;
    }
}

static void *script_main(void *arg)
{
    script_srv *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    size_t rl = 0;
    while (rl + 1 < sizeof s->request) {
        ssize_t r = recv(fd, s->request + rl, sizeof s->request - 1 - rl, 0);
        if (r <= 0)
            break;
        rl += (size_t)r;
        s->request[rl] = '\0';
        if (strstr(s->request, "\r\n\r\n"))
            break;
    }
    s->request[rl] = '\0';
    char key[128] = "";
    const char *k = strcasestr(s->request, "\r\nSec-WebSocket-Key:");
    if (k) {
        k += strlen("\r\nSec-WebSocket-Key:");
        while (*k == ' ')
            k++;
        size_t n = strcspn(k, "\r\n");
        if (n < sizeof key) {
            memcpy(key, k, n);
            key[n] = '\0';
        }
    }
    char acc[64];
    expected_accept(key, acc);
    if (s->hs == 1)
        acc[3] = acc[3] == 'A' ? 'B' : 'A';
    char resp[512];
    if (s->hs == 2)
        snprintf(resp, sizeof resp, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
    else
        snprintf(resp, sizeof resp,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                 "Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                 acc);
    size_t first = 0;
    if (s->with_hs) {
        unsigned char both[4096];
        size_t rn = strlen(resp);
        first = s->outlen < sizeof both - rn ? s->outlen : sizeof both - rn;
        memcpy(both, resp, rn);
        memcpy(both + rn, s->out, first);
        send_all(fd, both, rn + first);
    } else {
        send_all(fd, resp, strlen(resp));
    }
    unsigned rs = s->seed;
    for (size_t off = first; off < s->outlen;) {
        size_t n = s->outlen - off;
        if (s->chunk == SIZE_MAX) {
            rs = rs * 1103515245u + 12345u;
            size_t c = 1 + (rs >> 8) % 4096;
            n = n < c ? n : c;
        } else if (s->chunk && n > s->chunk) {
            n = s->chunk;
        }
        send_all(fd, s->out + off, n);
        off += n;
        if (s->byte_delay_us)
            usleep((useconds_t)s->byte_delay_us);
    }
    if (!s->hold)
        shutdown(fd, SHUT_WR);
    /* collect what the client sends until it closes (at most 5 s) */
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 5000) <= 0)
            break;
        unsigned char tmp[4096];
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r <= 0)
            break;
        size_t room = sizeof s->got - s->gotlen;
        size_t c = (size_t)r < room ? (size_t)r : room;
        memcpy(s->got + s->gotlen, tmp, c);
        s->gotlen += c;
    }
    close(fd);
    return NULL;
}

static void script_start(script_srv *s)
{
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->lfd, 4), 0);
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &l), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, script_main, s), 0);
}

static void script_join(script_srv *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
}

/* ---- what the client reported ---- */

typedef struct seen {
    int port;
    bool url_used;
    char *frames[64];
    size_t lens[64];
    size_t n;
    int connected, closed, failed;
    char detail[320];
    tsi_ws_client *c;
    bool close_on_frame;
} seen;

static int seen_url(void *ud, char *url, size_t len)
{
    seen *s = ud;
    if (s->url_used)
        return TSI_E_UNAVAILABLE;
    s->url_used = true;
    snprintf(url, len, "ws://127.0.0.1:%d/ws/bsm?key=k", s->port);
    return 0;
}

static void seen_frame(void *ud, const char *d, size_t n)
{
    seen *s = ud;
    assert_true(s->n < 64);
    assert_int_equal(d[n], '\0'); /* NUL-terminated, as documented by tsi_buf */
    s->frames[s->n] = malloc(n + 1);
    memcpy(s->frames[s->n], d, n + 1);
    s->lens[s->n++] = n;
    if (s->close_on_frame)
        tsi_ws_client_close(s->c);
}

static void seen_event(void *ud, int ev, const char *detail)
{
    seen *s = ud;
    if (ev == TSI_WS_CONNECTED)
        s->connected++;
    else if (ev == TSI_WS_CLOSED)
        s->closed++;
    else if (ev == TSI_WS_FAILED)
        s->failed++;
    if (ev != TSI_WS_CONNECTED)
        snprintf(s->detail, sizeof s->detail, "%s", detail);
}

static void seen_free(seen *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->frames[i]);
}

/* Runs one client (no reconnect) against the scripted server; returns its stats. */
static tsi_ws_stats run_script(script_srv *srv, seen *s, size_t max_frame, int idle_s, int ms)
{
    script_start(srv);
    memset(s, 0, sizeof *s);
    s->port = srv->port;
    tsi_ws_client_cfg cfg = {.get_url = seen_url,
                             .on_frame = seen_frame,
                             .on_event = seen_event,
                             .ud = s,
                             .reconnect = false,
                             .max_frame = max_frame,
                             .idle_timeout_s = idle_s};
    tsi_error e = {0};
    assert_int_equal(tsi_ws_client_new(&s->c, &cfg, &e), 0);
    assert_int_equal(tsi_ws_client_run(s->c, ms), 0);
    tsi_ws_stats st;
    tsi_ws_client_stats(s->c, &st);
    tsi_ws_client_free(s->c);
    s->c = NULL;
    script_join(srv);
    return st;
}

/* ---- server frames, built byte by byte from RFC 6455 §5.2 ---- */

typedef struct bytes {
    unsigned char *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put_byte(bytes *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put(b, &c, 1);
}

/* a server frame: b0 is FIN|RSV|opcode, the length encoded in 7, 7+16 or 7+64 bits */
static void frame(bytes *b, unsigned b0, const void *pl, size_t len)
{
    put_byte(b, b0);
    if (len < 126) {
        put_byte(b, (unsigned)len);
    } else if (len < 65536) {
        put_byte(b, 126);
        put_byte(b, (unsigned)(len >> 8));
        put_byte(b, (unsigned)(len & 0xff));
    } else {
        put_byte(b, 127);
        for (int i = 7; i >= 0; i--)
            put_byte(b, (unsigned)((uint64_t)len >> (8 * i)) & 0xff);
    }
    put(b, pl, len);
}

static void text(bytes *b, const char *s)
{
    frame(b, 0x81, s, strlen(s));
}

/* The client's frames in what the server received (after the request): each must be
 * masked; returns the unmasked payload of frame number idx and its opcode, or -1. */
static int client_frame(const script_srv *s, int idx, unsigned char *pl, size_t *len)
{
    size_t p = 0;
    for (int i = 0; p + 2 <= s->gotlen; i++) {
        int op = s->got[p] & 0x0f;
        assert_true(s->got[p] & 0x80);     /* FIN */
        assert_true(s->got[p + 1] & 0x80); /* masked (RFC 6455 §5.3) */
        size_t n = s->got[p + 1] & 0x7f;
        assert_true(n <= 125);
        assert_true(p + 6 + n <= s->gotlen);
        const unsigned char *m = s->got + p + 2;
        if (i == idx) {
            for (size_t k = 0; k < n; k++)
                pl[k] = s->got[p + 6 + k] ^ m[k & 3];
            *len = n;
            return op;
        }
        p += 6 + n;
    }
    return -1;
}

static void test_rfc6455_accept_vector(void **state)
{
    (void)state;
    /* RFC 6455 §1.3's example: the test's own Accept computation is right */
    char acc[64];
    expected_accept("dGhlIHNhbXBsZSBub25jZQ==", acc);
    assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_frames_split_and_fragmented(void **state)
{
    (void)state;
    script_srv srv;
    seen s;
    /* one text frame, one byte per write; then the handshake's own write carrying a frame */
    bytes b = {0};
    text(&b, "hello, one byte at a time");
    memset(&srv, 0, sizeof srv);
    srv.out = b.p;
    srv.outlen = b.n;
    srv.chunk = 1;
    srv.byte_delay_us = 300;
    tsi_ws_stats st = run_script(&srv, &s, 0, 0, 5000);
    assert_int_equal(s.connected, 1);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.failed, 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.frames[0], "hello, one byte at a time");
    assert_int_equal(st.frames, 1);
    assert_int_equal(st.bytes, 25);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.closes, 1);
    /* the request the server saw */
    assert_non_null(strstr(srv.request, "GET /ws/bsm?key=k HTTP/1.1\r\n"));
    assert_non_null(strcasestr(srv.request, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strcasestr(srv.request, "\r\nSec-WebSocket-Version: 13\r\n"));
    assert_non_null(strstr(srv.request, "\r\nHost: 127.0.0.1:"));
    seen_free(&s);
    free(b.p);

    /* handshake and first frames in one write; a fragmented message with a ping between
     * its fragments; an empty frame; binary frames are delivered like text (as before) */
    memset(&b, 0, sizeof b);
    text(&b, "first");
    frame(&b, 0x01, "ab", 2);      /* text, FIN=0 */
    frame(&b, 0x00, "cd", 2);      /* continuation, FIN=0 */
    frame(&b, 0x89, "p1", 2);      /* a ping between fragments */
    frame(&b, 0x80, "ef", 2);      /* continuation, FIN=1 */
    frame(&b, 0x81, "", 0);        /* an empty text frame */
    frame(&b, 0x82, "bin", 3);     /* binary */
    frame(&b, 0x8A, "unasked", 7); /* an unsolicited pong: ignored */
    memset(&srv, 0, sizeof srv);
    srv.out = b.p;
    srv.outlen = b.n;
    srv.with_hs = true;
    st = run_script(&srv, &s, 0, 0, 5000);
    assert_int_equal(s.connected, 1);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.frames[0], "first");
    assert_string_equal(s.frames[1], "abcdef");
    assert_int_equal(s.lens[2], 0);
    assert_string_equal(s.frames[3], "bin");
    assert_int_equal(st.bytes, 5 + 6 + 0 + 3);
    /* the ping was answered with a masked pong carrying its payload */
    unsigned char pl[126];
    size_t n = 0;
    assert_int_equal(client_frame(&srv, 0, pl, &n), 0xA);
    assert_int_equal(n, 2);
    assert_memory_equal(pl, "p1", 2);
    seen_free(&s);
    free(b.p);
}

static void test_lengths_and_max_frame(void **state)
{
    (void)state;
    script_srv srv;
    seen s;
    /* 16-bit and 64-bit lengths, payloads large enough to cross reads */
    bytes b = {0};
    size_t l1 = 300, l2 = 65535, l3 = 300000;
    char *big = malloc(l3);
    for (size_t i = 0; i < l3; i++)
        big[i] = (char)('a' + (i * 7) % 26);
    frame(&b, 0x81, big, l1);
    frame(&b, 0x81, big, l2);
    frame(&b, 0x81, big, l3);
    memset(&srv, 0, sizeof srv);
    srv.out = b.p;
    srv.outlen = b.n;
    srv.chunk = 1000;
    tsi_ws_stats st = run_script(&srv, &s, 0, 0, 10000);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.lens[0], l1);
    assert_int_equal(s.lens[1], l2);
    assert_int_equal(s.lens[2], l3);
    assert_memory_equal(s.frames[0], big, l1);
    assert_memory_equal(s.frames[1], big, l2);
    assert_memory_equal(s.frames[2], big, l3);
    assert_int_equal(st.bytes, l1 + l2 + l3);
    seen_free(&s);
    free(b.p);

    /* max_frame 1000: exactly 1000 passes; 1001 (one frame, or 600 + 401 in fragments) is
     * dropped and counted, and the connection stays up for the next frame */
    memset(&b, 0, sizeof b);
    frame(&b, 0x81, big, 1000);
    frame(&b, 0x81, big, 1001);
    frame(&b, 0x01, big, 600);
    frame(&b, 0x80, big, 401);
    text(&b, "after");
    memset(&srv, 0, sizeof srv);
    srv.out = b.p;
    srv.outlen = b.n;
    srv.chunk = 333;
    st = run_script(&srv, &s, 1000, 0, 5000);
    assert_int_equal(s.connected, 1);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.lens[0], 1000);
    assert_memory_equal(s.frames[0], big, 1000);
    assert_string_equal(s.frames[1], "after");
    assert_int_equal(st.oversize, 2);
    assert_int_equal(st.frames, 2);
    seen_free(&s);
    free(b.p);
    free(big);
}

/* A frame that breaks the protocol: the frames before it arrive, none after, the client
 * closes with 1002 and reports CLOSED saying why. */
static void expect_protocol_error(const void *bad, size_t badlen, const char *why)
{
    bytes b = {0};
    text(&b, "before");
    put(&b, bad, badlen);
    text(&b, "after");
    script_srv srv;
    memset(&srv, 0, sizeof srv);
    srv.out = b.p;
    srv.outlen = b.n;
    srv.hold = true; /* the client, not the server, ends the connection */
    seen s;
    run_script(&srv, &s, 0, 0, 5000);
    if (!strstr(s.detail, why))
        fail_msg("expected \"%s\" in the detail, got \"%s\"", why, s.detail);
    assert_int_equal(s.connected, 1);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.frames[0], "before");
    unsigned char pl[126];
    size_t n = 0;
    assert_int_equal(client_frame(&srv, 0, pl, &n), 0x8);
    assert_int_equal(n, 2);
    assert_int_equal(pl[0] << 8 | pl[1], 1002);
    seen_free(&s);
    free(b.p);
}

static void test_protocol_errors(void **state)
{
    (void)state;
    const unsigned char masked[] = {0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2};
    expect_protocol_error(masked, sizeof masked, "masked");
    const unsigned char rsv1[] = {0xC1, 0x02, 'h', 'i'};
    expect_protocol_error(rsv1, sizeof rsv1, "reserved bits");
    const unsigned char rsv3[] = {0x91, 0x02, 'h', 'i'};
    expect_protocol_error(rsv3, sizeof rsv3, "reserved bits");
    const unsigned char op3[] = {0x83, 0x02, 'h', 'i'};
    expect_protocol_error(op3, sizeof op3, "opcode 3");
    const unsigned char op11[] = {0x8B, 0x00};
    expect_protocol_error(op11, sizeof op11, "opcode 11");
    unsigned char bigping[4 + 126];
    bigping[0] = 0x89;
    bigping[1] = 126;
    bigping[2] = 0;
    bigping[3] = 126;
    memset(bigping + 4, 'x', 126);
    expect_protocol_error(bigping, sizeof bigping, "control frame longer than 125");
    const unsigned char fragping[] = {0x09, 0x01, 'x'};
    expect_protocol_error(fragping, sizeof fragping, "fragmented control");
    const unsigned char top[] = {0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
    expect_protocol_error(top, sizeof top, "64-bit length");
    const unsigned char cont[] = {0x80, 0x02, 'h', 'i'};
    expect_protocol_error(cont, sizeof cont, "continuation");
    const unsigned char twice[] = {0x01, 0x01, 'a', 0x81, 0x01, 'b'};
    expect_protocol_error(twice, sizeof twice, "inside a fragmented message");
    const unsigned char close1[] = {0x88, 0x01, 0x03};
    expect_protocol_error(close1, sizeof close1, "1-byte");
}

static void test_ping_close_idle(void **state)
{
    (void)state;
    /* ping → a masked pong with the same payload (125 bytes: the most a control frame
     * carries); then the server's close → the client answers with a close and reports it */
    bytes b = {0};
    unsigned char pp[125];
    for (int i = 0; i < 125; i++)
        pp[i] = (unsigned char)(i * 3 + 1);
    frame(&b, 0x89, pp, sizeof pp);
    text(&b, "x");
    const unsigned char cl[] = {0x88, 0x05, 0x03, 0xE8, 'b', 'y', 'e'}; /* 1000 "bye" */
    put(&b, cl, sizeof cl);
    text(&b, "never");
    script_srv srv;
    memset(&srv, 0, sizeof srv);
    srv.out = b.p;
    srv.outlen = b.n;
    srv.hold = true;
    seen s;
    tsi_ws_stats st = run_script(&srv, &s, 0, 0, 5000);
    assert_int_equal(s.closed, 1);
    assert_non_null(strstr(s.detail, "1000"));
    assert_non_null(strstr(s.detail, "bye"));
    assert_int_equal(s.n, 1);
    assert_string_equal(s.frames[0], "x");
    assert_int_equal(st.closes, 1);
    unsigned char pl[126];
    size_t n = 0;
    assert_int_equal(client_frame(&srv, 0, pl, &n), 0xA);
    assert_int_equal(n, 125);
    assert_memory_equal(pl, pp, 125);
    assert_int_equal(client_frame(&srv, 1, pl, &n), 0x8);
    assert_int_equal(n, 2);
    assert_int_equal(pl[0] << 8 | pl[1], 1000);
    seen_free(&s);
    free(b.p);

    /* a silent server: closed after idle_timeout_s */
    memset(&srv, 0, sizeof srv);
    srv.hold = true;
    st = run_script(&srv, &s, 0, 1, 5000);
    assert_int_equal(s.connected, 1);
    assert_int_equal(s.closed, 1);
    assert_non_null(strstr(s.detail, "idle"));

    /* tsi_ws_client_close() inside on_frame: a close frame 1000, CLOSED */
    memset(&b, 0, sizeof b);
    text(&b, "one");
    text(&b, "two");
    memset(&srv, 0, sizeof srv);
    srv.out = b.p;
    srv.outlen = b.n;
    srv.hold = true;
    script_start(&srv);
    memset(&s, 0, sizeof s);
    s.port = srv.port;
    s.close_on_frame = true;
    tsi_ws_client_cfg cfg = {
        .get_url = seen_url, .on_frame = seen_frame, .on_event = seen_event, .ud = &s};
    tsi_error e = {0};
    assert_int_equal(tsi_ws_client_new(&s.c, &cfg, &e), 0);
    assert_int_equal(tsi_ws_client_run(s.c, 5000), 0);
    assert_false(tsi_ws_client_connected(s.c));
    tsi_ws_client_free(s.c);
    script_join(&srv);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.closed, 1);
    assert_int_equal(client_frame(&srv, 0, pl, &n), 0x8);
    assert_int_equal(pl[0] << 8 | pl[1], 1000);
    seen_free(&s);
    free(b.p);
}

static void *stop_later(void *arg)
{
    usleep(300000);
    tsi_ws_client_stop(arg);
    return NULL;
}

static void test_stop_from_another_thread(void **state)
{
    (void)state;
    bytes b = {0};
    text(&b, "hi");
    script_srv srv;
    memset(&srv, 0, sizeof srv);
    srv.out = b.p;
    srv.outlen = b.n;
    srv.hold = true;
    script_start(&srv);
    seen s;
    memset(&s, 0, sizeof s);
    s.port = srv.port;
    tsi_ws_client_cfg cfg = {.get_url = seen_url,
                             .on_frame = seen_frame,
                             .on_event = seen_event,
                             .ud = &s,
                             .reconnect = true};
    tsi_error e = {0};
    assert_int_equal(tsi_ws_client_new(&s.c, &cfg, &e), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_later, s.c), 0);
    assert_int_equal(tsi_ws_client_run(s.c, -1), 0); /* returns because of stop */
    pthread_join(t, NULL);
    assert_true(tsi_ws_client_connected(s.c));
    assert_int_equal(s.n, 1);
    tsi_ws_client_free(s.c); /* closes the connection: the server's read ends */
    script_join(&srv);
    unsigned char pl[126];
    size_t n = 0;
    assert_int_equal(client_frame(&srv, 0, pl, &n), 0x8);
    assert_int_equal(pl[0] << 8 | pl[1], 1001);
    seen_free(&s);
    free(b.p);
}

static void test_bad_handshakes(void **state)
{
    (void)state;
    bytes b = {0};
    text(&b, "unseen");
    for (int hs = 1; hs <= 2; hs++) {
        script_srv srv;
        memset(&srv, 0, sizeof srv);
        srv.hs = hs;
        srv.out = b.p;
        srv.outlen = b.n;
        seen s;
        tsi_ws_stats st = run_script(&srv, &s, 0, 0, 5000);
        assert_int_equal(s.connected, 0);
        assert_int_equal(s.failed, 1);
        assert_int_equal(s.n, 0);
        assert_int_equal(st.failures, 1);
        assert_non_null(strstr(s.detail, hs == 1 ? "Sec-WebSocket-Accept" : "404 Not Found"));
        seen_free(&s);
    }
    free(b.p);
}

/* ---- random streams: the client never crashes and delivers exactly the messages an
 * independent whole-buffer reading of RFC 6455 finds before the first error ---- */

static unsigned fz_next(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* whole-buffer reference: the messages before the stream ends, breaks the protocol or
 * closes */
static size_t reference(const unsigned char *p, size_t n, char **msgs, size_t *lens, size_t most)
{
    size_t pos = 0, got = 0;
    bool inmsg = false;
    bytes m = {0};
    for (;;) {
        if (n - pos < 2)
            break;
        unsigned b0 = p[pos], b1 = p[pos + 1];
        unsigned op = b0 & 15;
        bool fin = (b0 & 0x80) != 0;
        if ((b0 & 0x70) || (b1 & 0x80))
            break;
        if (!(op <= 2 || (op >= 8 && op <= 10)))
            break;
        size_t hl = (b1 & 0x7f) == 126 ? 4 : (b1 & 0x7f) == 127 ? 10 : 2;
        if (n - pos < hl)
            break;
        uint64_t len = b1 & 0x7f;
        if (hl == 4)
            len = (uint64_t)p[pos + 2] * 256 + p[pos + 3];
        if (hl == 10) {
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len * 256 + p[pos + 2 + i];
            if (len >= ((uint64_t)1 << 63))
                break;
        }
        if (n - pos - hl < len)
            break;
        if (op >= 8) {
            if (!fin || len > 125 || op == 8)
                break;
            pos += hl + len;
            continue;
        }
        if ((op == 0) != inmsg)
            break;
        if (!inmsg)
            m.n = 0;
        put(&m, p + pos + hl, len);
        inmsg = true;
        pos += hl + len;
        if (fin) {
            assert_true(got < most);
            msgs[got] = malloc(m.n + 1);
            if (m.n)
                memcpy(msgs[got], m.p, m.n);
            lens[got++] = m.n;
            inmsg = false;
        }
    }
    free(m.p);
    return got;
}

static void fuzz_stream(unsigned *rs, bytes *b)
{
    int items = 1 + (int)(fz_next(rs) % 8);
    for (int i = 0; i < items; i++) {
        unsigned kind = fz_next(rs) % 100;
        unsigned char pl[70000];
        size_t len = fz_next(rs) % 5 == 0 ? fz_next(rs) % 70000 : fz_next(rs) % 200;
        for (size_t k = 0; k < len; k++)
            pl[k] = (unsigned char)('A' + fz_next(rs) % 58);
        if (kind < 40) {
            frame(b, 0x81, pl, len);
        } else if (kind < 55) {
            size_t a = len / 3, c = len / 3;
            frame(b, 0x01, pl, a);
            if (fz_next(rs) % 2)
                frame(b, 0x89, pl, a < 125 ? a : 125);
            frame(b, 0x00, pl + a, c);
            frame(b, 0x80, pl + a + c, len - a - c);
        } else if (kind < 65) {
            frame(b, 0x89, pl, len < 125 ? len : 125);
        } else if (kind < 75) {
            size_t g = 1 + fz_next(rs) % 64;
            for (size_t k = 0; k < g; k++)
                put_byte(b, fz_next(rs) & 0xff);
        } else if (kind < 85) {
            size_t at = b->n;
            frame(b, 0x81, pl, len % 300);
            b->p[at + fz_next(rs) % (b->n - at)] ^= (unsigned char)(1u << (fz_next(rs) % 8));
        } else if (kind < 90) {
            const unsigned char cl[] = {0x88, 0x02, 0x03, 0xE8};
            put(b, cl, sizeof cl);
        } else {
            bytes t = {0};
            frame(&t, 0x81, pl, len);
            put(b, t.p, t.n > 3 ? t.n / 2 : t.n); /* a truncated frame */
            free(t.p);
        }
    }
}

static void test_random_streams(void **state)
{
    (void)state;
    unsigned rs = 20261125u;
    size_t total = 0;
    for (int iter = 0; iter < 300; iter++) {
        bytes b = {0};
        fuzz_stream(&rs, &b);
        char *want[64];
        size_t wlen[64];
        size_t nw = reference(b.p, b.n, want, wlen, 64);
        script_srv srv;
        memset(&srv, 0, sizeof srv);
        srv.out = b.p;
        srv.outlen = b.n;
        srv.chunk = SIZE_MAX;
        srv.seed = (unsigned)iter * 2654435761u + 1;
        seen s;
        tsi_ws_stats st = run_script(&srv, &s, 0, 0, 10000);
        if (s.connected != 1 || s.closed != 1 || s.failed != 0 || s.n != nw)
            fail_msg("stream %d (%zu bytes): connected=%d closed=%d failed=%d frames=%zu "
                     "expected=%zu detail=%s",
                     iter, b.n, s.connected, s.closed, s.failed, s.n, nw, s.detail);
        for (size_t i = 0; i < nw; i++) {
            assert_int_equal(s.lens[i], wlen[i]);
            assert_memory_equal(s.frames[i], want[i], wlen[i]);
            free(want[i]);
        }
        assert_int_equal(st.frames, nw);
        total += nw;
        seen_free(&s);
        free(b.p);
    }
    print_message("random streams: 300 streams, %zu messages delivered as expected\n", total);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url),
        cmocka_unit_test(test_config_and_failures),
        cmocka_unit_test(test_rfc6455_accept_vector),
        cmocka_unit_test(test_frames_split_and_fragmented),
        cmocka_unit_test(test_lengths_and_max_frame),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_ping_close_idle),
        cmocka_unit_test(test_stop_from_another_thread),
        cmocka_unit_test(test_bad_handshakes),
        cmocka_unit_test(test_random_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
