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
 * Ownership: the client owns its libwebsockets context and buffers; URLs are copied.
 * The data passed to on_frame is borrowed for the duration of the call.
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
    bool tls_insecure;   /* wss: accept self-signed certificates and any host name (also
                          * forces TLS support when the first URL is ws://) */
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
 * TSI_E_IO when the event loop cannot be created. The event loop is made once get_url has
 * given a first URL (asked again with backoff until then): TLS support (OpenSSL) is left
 * out when that URL is ws:// (and tls_insecure is not set); a client of ws:// URLs cannot
 * later open wss://. */
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
