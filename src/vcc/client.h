/* vcc/client.h — the VCC Public API over HTTP (domain.md §1), with libcurl.
 *
 * OAuth2 client credentials: POST /api/auth/client (form: client_id, client_secret) gives
 * an access token (and a refresh token). The token is cached and renewed before it
 * expires (refresh_margin_s ahead, or a tenth of its lifetime when that is shorter):
 * first with grant_type=refresh_token while the refresh token lives, else with the
 * credentials again. A 401 drops the token, authenticates again and retries the request
 * once. Every request has a connect timeout and a total timeout, and requests keep a
 * polite minimum gap between them. Every failure returns a negative code with its cause
 * in err (HTTP status and the start of the body, or curl's message): never an empty
 * result that looks like "no traffic".
 *
 * Credentials come from the environment only (VCC_CLIENT_ID, VCC_CLIENT_SECRET); they
 * are never logged.
 *
 * Ownership: tsi_vcc owns a curl handle (connection reuse) and copies its configuration.
 * Not thread-safe: one client per thread. Bodies are appended to the caller's tsi_buf. */
#ifndef TSI_VCC_CLIENT_H
#define TSI_VCC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/error.h"

typedef struct tsi_vcc_config {
    const char *base_url;       /* e.g. https://vcc.vtti.vt.edu (no trailing slash needed) */
    const char *client_id;      /* NULL: VCC_CLIENT_ID */
    const char *client_secret;  /* NULL: VCC_CLIENT_SECRET */
    int timeout_ms;             /* whole request; 0 = 15000 */
    int connect_timeout_ms;     /* 0 = 5000 */
    int min_gap_ms;             /* between two requests; 0 = none, < 0 = default 100 */
    int refresh_margin_s;       /* renew this long before expiry; 0 = 60 */
    const volatile int *cancel; /* optional: a request in flight aborts when *cancel != 0 */
    const char *ca_file;        /* optional: PEM CA bundle that https:// certificates must
                                 * chain to (instead of the system's); copied */
} tsi_vcc_config;

typedef struct tsi_vcc_stats {
    long long requests;     /* HTTP requests sent (auth included) */
    long long failures;     /* requests that failed (transport or status) */
    long long auths;        /* tokens obtained with the credentials */
    long long refreshes;    /* tokens obtained with a refresh token */
    long long unauthorized; /* 401 answers to data requests */
} tsi_vcc_stats;

typedef struct tsi_vcc tsi_vcc;

int tsi_vcc_new(tsi_vcc **out, const tsi_vcc_config *cfg, tsi_error *err);
void tsi_vcc_free(tsi_vcc *c); /* NULL-safe */

/* Authenticated GET of base_url + path (path starts with '/', query included). The body
 * of a 2xx answer is appended to body; *status (may be NULL) gets the HTTP status.
 * Returns 0, TSI_E_HTTP (non-2xx), TSI_E_AUTH (credentials refused), TSI_E_TIMEOUT,
 * TSI_E_UNAVAILABLE (cannot connect), TSI_E_TOO_BIG (body over 256 MiB). */
int tsi_vcc_get(tsi_vcc *c, const char *path, tsi_buf *body, long *status, tsi_error *err);

/* Ensures a valid token (authenticating or refreshing when due). */
int tsi_vcc_auth(tsi_vcc *c, tsi_error *err);
/* Forgets the token (the next request authenticates). */
void tsi_vcc_drop_token(tsi_vcc *c);

/* The endpoints the collector uses. */
int tsi_vcc_bsm_current(tsi_vcc *c, tsi_buf *body, tsi_error *err);
int tsi_vcc_psm_current(tsi_vcc *c, tsi_buf *body, tsi_error *err);
/* changed_since_ms <= 0: everything (the server's default window). */
int tsi_vcc_mapdata(tsi_vcc *c, int64_t changed_since_ms, tsi_buf *body, tsi_error *err);
int tsi_vcc_spat(tsi_vcc *c, tsi_buf *body, tsi_error *err);
/* A one-time stream key ("bsm" or "psm"), trimmed, into key. */
int tsi_vcc_stream_key(tsi_vcc *c, const char *kind, char *key, size_t len, tsi_error *err);
/* The WebSocket URL of a stream path ("/ws/bsm?key=..."): ws:// for http://, wss:// for
 * https://, same host and port as base_url. */
int tsi_vcc_ws_url(const tsi_vcc *c, const char *path, char *url, size_t len, tsi_error *err);

void tsi_vcc_get_stats(const tsi_vcc *c, tsi_vcc_stats *st);
/* Seconds the current token has left (<= 0 when none). */
double tsi_vcc_token_left_s(const tsi_vcc *c);

#endif
