/* vcc/ws_client.h — a WebSocket client for the VCC streams (ws:// and wss://): connects
 * to a URL, hands every complete text frame to a callback, reconnects with backoff.
 *
 *   tsi_ws_client_cfg cfg = {.get_url = fresh_url, .on_frame = got_frame, .ud = me,
 *                            .reconnect = true};
 *   tsi_ws_client *c;
 *   if (tsi_ws_client_new(&c, &cfg, &err) < 0) ...
 *   tsi_ws_client_run(c, -1);            // until tsi_ws_client_stop()
 *   tsi_ws_client_free(c);
 *
 * A VCC stream key is single-use (domain.md §1), so the client asks get_url() for a URL
 * before every connection attempt: the collector fetches a new key there
 * (GET /api/bsm/key) and returns "wss://HOST/ws/bsm?key=KEY". A connection that stays
 * silent longer than idle_timeout_s (the VCC sends a frame, "[]" at least, every 0.5 s)
 * is closed and reconnected.
 *
 * Implementation: our own small RFC 6455 client (ws_client.c), not libwebsockets. With
 * Debian 12's libwebsockets 4.1 the collector at 1,000 simulated intersections (rush hour,
 * ~26-30k messages/s) used 70-82 % of a core, 27 µs a message, 35.6 % of its perf samples
 * in libwebsockets, whose client parses every received byte in its per-byte frame state
 * machine (lws_client_rx_sm). This client reads up to 256 KiB at a time and copies
 * unmasked server payloads with memcpy (a frame wholly in the buffer is handed out in
 * place). libwebsockets stays for the simulator's server side (src/sim).
 * - ws:// over TCP (non-blocking, getaddrinfo: IPv4/IPv6) and wss:// over OpenSSL: SNI,
 *   the certificate verified against ca_file or the system store, the host name (or IP
 *   address) checked; failures say why in the FAILED detail ("tls: certificate verify
 *   failed: ...").
 * - An attempt (connect, TLS, upgrade) that takes longer than idle_timeout_s fails.
 * - Text and binary messages (fragments assembled) go to on_frame; a message above
 *   max_frame is dropped, counted in oversize, and the connection stays. Pings are
 *   answered, a close is answered and reported as CLOSED, protocol errors (masked or
 *   RSV-flagged server frames, unknown opcodes, bad control frames, continuation without
 *   a start, 64-bit lengths with the top bit set) close with 1002 and CLOSED.
 * - Retries: exponential backoff between backoff_min_ms and backoff_max_ms with up to a
 *   quarter of jitter.
 *
 * Ownership: the client owns its socket, TLS state and buffers; URLs are copied.
 * The data passed to on_frame is borrowed for the duration of the call (NUL-terminated).
 * Threading: tsi_ws_client_run() runs the event loop, and every callback, on the
 * calling thread. tsi_ws_client_stop() may be called from any thread (not from a signal
 * handler: set a flag there and call stop from the thread that watches it). One client
 * is one connection at a time; use one client per stream. */
#ifndef TSI_VCC_WS_CLIENT_H
#define TSI_VCC_WS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct tsi_ws_client tsi_ws_client;

enum {
    TSI_WS_CONNECTED = 1, /* the handshake succeeded */
    TSI_WS_CLOSED,        /* an open connection ended (detail: why) */
    TSI_WS_FAILED,        /* a connection attempt failed (detail: why) */
};

/* Writes the URL of the next connection into url (NUL-terminated); returns 0, or a
 * negative TSI_E_* to try again after the backoff. */
typedef int (*tsi_ws_url_fn)(void *ud, char *url, size_t len);
typedef void (*tsi_ws_frame_fn)(void *ud, const char *data, size_t len);
typedef void (*tsi_ws_event_fn)(void *ud, int event, const char *detail);

typedef struct tsi_ws_client_cfg {
    tsi_ws_url_fn get_url;    /* required */
    tsi_ws_frame_fn on_frame; /* required: one call per complete text frame */
    tsi_ws_event_fn on_event; /* optional */
    void *ud;
    bool reconnect;      /* false: run() returns once the first connection ends or fails */
    int backoff_min_ms;  /* first retry delay (default 500), doubling ...            */
    int backoff_max_ms;  /* ... up to this (default 30000); reset by a good connection */
    int idle_timeout_s;  /* default 30 */
    size_t max_frame;    /* frames above this are dropped and counted (default 64 MiB) */
    bool tls_insecure;   /* wss: accept any certificate and any host name */
    const char *ca_file; /* wss: PEM CA bundle the server certificate must chain to
                          * (instead of the system's); copied */
} tsi_ws_client_cfg;

typedef struct tsi_ws_stats {
    uint64_t frames, bytes;
    uint64_t connects, closes, failures, oversize;
} tsi_ws_stats;

int tsi_ws_client_new(tsi_ws_client **out, const tsi_ws_client_cfg *cfg, tsi_error *err);
/* Runs the event loop until tsi_ws_client_stop(), until timeout_ms has passed
 * (negative: no limit), or, without reconnect, until the connection ended. Returns 0, or
 * TSI_E_IO when poll() fails. A connection outlives a run that ends by its timeout (the
 * next run goes on with it). The TLS context is made at the first wss:// attempt (a client
 * of ws:// URLs never loads certificates) and kept; ws:// and wss:// URLs may alternate. */
int tsi_ws_client_run(tsi_ws_client *c, int timeout_ms);
void tsi_ws_client_stop(tsi_ws_client *c); /* thread-safe */
/* Closes the current connection (the client reconnects when configured to). Call from
 * the loop's thread, e.g. inside on_frame. */
void tsi_ws_client_close(tsi_ws_client *c);
bool tsi_ws_client_connected(const tsi_ws_client *c);
void tsi_ws_client_stats(const tsi_ws_client *c, tsi_ws_stats *out);
void tsi_ws_client_free(tsi_ws_client *c); /* NULL-safe */

/* Splits ws[s]://host[:port]/path?query. Returns 0 or TSI_E_INVALID. */
int tsi_ws_parse_url(const char *url, bool *tls, char *host, size_t hostlen, int *port, char *path,
                     size_t pathlen);

#endif
