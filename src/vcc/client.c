/* vcc/client.c — see client.h */
#include "vcc/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "core/json.h"

#define MAX_BODY (256u * 1024u * 1024u)

struct tsi_vcc {
    CURL *curl;
    char base[512];
    char *id, *secret;
    char *ca_file; /* NULL: the system's CA store */
    int timeout_ms, connect_timeout_ms, min_gap_ms, margin_s;
    char token[4096];
    int64_t token_exp_ms; /* monotonic */
    int64_t token_life_ms;
    char refresh[4096];
    int64_t refresh_exp_ms;
    int64_t last_req_ms;
    const volatile int *cancel;
    tsi_vcc_stats st;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int tsi_vcc_new(tsi_vcc **out, const tsi_vcc_config *cfg, tsi_error *err)
{
    *out = NULL;
    if (!cfg || !cfg->base_url || !*cfg->base_url)
        return tsi_error_set(err, TSI_E_INVALID, "VCC base URL is not configured",
                             "set VCC_BASE_URL");
    if (strncmp(cfg->base_url, "http://", 7) != 0 && strncmp(cfg->base_url, "https://", 8) != 0)
        return tsi_error_set(err, TSI_E_INVALID, "VCC base URL must start with http:// or https://",
                             "%.200s", cfg->base_url);
    if (strlen(cfg->base_url) >= 500)
        return tsi_error_set(err, TSI_E_INVALID, "VCC base URL too long", NULL);
    const char *id = cfg->client_id ? cfg->client_id : getenv("VCC_CLIENT_ID");
    const char *secret = cfg->client_secret ? cfg->client_secret : getenv("VCC_CLIENT_SECRET");
    if (!id || !*id || !secret || !*secret)
        return tsi_error_set(err, TSI_E_INVALID, "VCC credentials are not configured",
                             "set VCC_CLIENT_ID and VCC_CLIENT_SECRET in the environment");
    pthread_once(&curl_once, curl_init_once);
    tsi_vcc *c = calloc(1, sizeof *c);
    if (!c)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    snprintf(c->base, sizeof c->base, "%s", cfg->base_url);
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    c->id = strdup(id);
    c->secret = strdup(secret);
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 15000;
    c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 5000;
    c->min_gap_ms = cfg->min_gap_ms < 0 ? 100 : cfg->min_gap_ms;
    c->margin_s = cfg->refresh_margin_s > 0 ? cfg->refresh_margin_s : 60;
    c->cancel = cfg->cancel;
    if (cfg->ca_file && *cfg->ca_file && !(c->ca_file = strdup(cfg->ca_file))) {
        tsi_vcc_free(c);
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    }
    c->curl = curl_easy_init();
    if (!c->curl || !c->id || !c->secret) {
        tsi_vcc_free(c);
        return tsi_error_set(err, TSI_E_NOMEM, "cannot create the HTTP client", NULL);
    }
    *out = c;
    return 0;
}

void tsi_vcc_free(tsi_vcc *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    if (c->secret) {
        memset(c->secret, 0, strlen(c->secret));
        free(c->secret);
    }
    free(c->id);
    free(c->ca_file);
    memset(c->token, 0, sizeof c->token);
    memset(c->refresh, 0, sizeof c->refresh);
    free(c);
}

typedef struct sink {
    tsi_buf *b;
    size_t start;
    bool too_big;
} sink;

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    sink *s = ud;
    size_t n = size * nmemb;
    if (s->b->len - s->start + n > MAX_BODY) {
        s->too_big = true;
        return 0;
    }
    tsi_buf_append(s->b, p, n);
    return n;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t x, curl_off_t y)
{
    (void)a;
    (void)b;
    (void)x;
    (void)y;
    const volatile int *cancel = ud;
    return cancel && *cancel ? 1 : 0;
}

static void polite_wait(tsi_vcc *c)
{
    if (c->min_gap_ms <= 0 || c->last_req_ms == 0)
        return;
    int64_t wait = c->last_req_ms + c->min_gap_ms - mono_ms();
    if (wait > 0)
        usleep((useconds_t)wait * 1000);
}

/* One HTTP exchange. form != NULL makes it a POST. Body (any status) appended to body. */
static int request(tsi_vcc *c, const char *path, const char *form, const char *bearer,
                   tsi_buf *body, long *status, tsi_error *err)
{
    char url[2048];
    if (snprintf(url, sizeof url, "%s%s", c->base, path) >= (int)sizeof url)
        return tsi_error_set(err, TSI_E_INVALID, "request URL too long", NULL);
    polite_wait(c);
    CURL *h = c->curl;
    curl_easy_reset(h);
    char ebuf[CURL_ERROR_SIZE] = "";
    sink s = {body, body->len, false};
    struct curl_slist *hdr = NULL;
    char auth[4200];
    if (bearer) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        hdr = curl_slist_append(hdr, auth);
    }
    hdr = curl_slist_append(hdr, "Accept: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "tsi/" TSI_VERSION);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (c->cancel) {
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)c->cancel);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    if (form) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
    }
    CURLcode rc = curl_easy_perform(h);
    c->last_req_ms = mono_ms();
    c->st.requests++;
    curl_slist_free_all(hdr);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (status)
        *status = code;
    if (rc != CURLE_OK) {
        c->st.failures++;
        body->len = s.start;
        if (body->data)
            body->data[body->len] = '\0';
        if (s.too_big)
            return tsi_error_set(err, TSI_E_TOO_BIG, "VCC response too large", "%s: over %u bytes",
                                 path, MAX_BODY);
        int code2 = rc == CURLE_OPERATION_TIMEDOUT ? TSI_E_TIMEOUT : TSI_E_UNAVAILABLE;
        return tsi_error_set(err, code2, "VCC request failed", "%s: %s", path,
                             ebuf[0] ? ebuf : curl_easy_strerror(rc));
    }
    return 0;
}

static int http_error(tsi_vcc *c, const char *path, long code, tsi_buf *body, size_t start,
                      tsi_error *err)
{
    c->st.failures++;
    char snippet[160] = "";
    size_t n = body->len - start;
    if (n > sizeof snippet - 1)
        n = sizeof snippet - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)body->data[start + i];
        snippet[i] = (ch >= 32 && ch < 127) ? (char)ch : '?';
    }
    snippet[n] = '\0';
    body->len = start;
    if (body->data)
        body->data[start] = '\0';
    return tsi_error_set(err, code == 401 || code == 403 ? TSI_E_AUTH : TSI_E_HTTP,
                         "VCC answered with an error status", "%s: HTTP %ld %s", path, code,
                         snippet);
}

static char *form_escape(CURL *h, const char *s)
{
    return curl_easy_escape(h, s, 0);
}

static int token_request(tsi_vcc *c, bool use_refresh, tsi_error *err)
{
    tsi_buf form = TSI_BUF_INIT, body = TSI_BUF_INIT;
    if (use_refresh) {
        char *r = form_escape(c->curl, c->refresh);
        tsi_buf_printf(&form, "grant_type=refresh_token&refresh_token=%s", r ? r : "");
        curl_free(r);
    } else {
        char *i = form_escape(c->curl, c->id), *s = form_escape(c->curl, c->secret);
        tsi_buf_printf(&form, "grant_type=client_credentials&client_id=%s&client_secret=%s",
                       i ? i : "", s ? s : "");
        curl_free(i);
        curl_free(s);
    }
    long code = 0;
    int64_t t0 = mono_ms();
    int rc = request(c, "/api/auth/client", tsi_buf_cstr(&form), NULL, &body, &code, err);
    memset(form.data, 0, form.len);
    tsi_buf_free(&form);
    if (rc < 0)
        goto done;
    if (code < 200 || code >= 300) {
        rc = http_error(c, "/api/auth/client", code, &body, 0, err);
        if (code == 400) /* the document's answer to bad client credentials */
            rc = err ? (err->code = TSI_E_AUTH) : TSI_E_AUTH;
        goto done;
    }
    tsi_json d;
    tsi_jtok tok[64];
    if ((rc = tsi_json_parse(&d, body.data ? body.data : "", body.len, tok, 64, err)) < 0)
        goto done;
    int at = tsi_json_get(&d, 0, "access_token");
    int ex = tsi_json_get(&d, 0, "expires_in");
    int rt = tsi_json_get(&d, 0, "refresh_token");
    int rex = tsi_json_get(&d, 0, "refresh_expires_in");
    double exp_s = 0, rexp_s = 0;
    char token[sizeof c->token];
    if (tsi_json_str(&d, at, token, sizeof token) <= 0 || tsi_json_num(&d, ex, &exp_s) < 0 ||
        exp_s <= 0) {
        rc = tsi_error_set(err, TSI_E_AUTH, "VCC token answer lacks access_token or expires_in",
                           NULL);
        goto done;
    }
    snprintf(c->token, sizeof c->token, "%s", token);
    memset(token, 0, sizeof token);
    c->token_life_ms = (int64_t)(exp_s * 1000);
    c->token_exp_ms = t0 + c->token_life_ms;
    c->refresh[0] = '\0';
    c->refresh_exp_ms = 0;
    if (tsi_json_str(&d, rt, c->refresh, sizeof c->refresh) > 0 &&
        tsi_json_num(&d, rex, &rexp_s) == 0 && rexp_s > 0)
        c->refresh_exp_ms = t0 + (int64_t)(rexp_s * 1000);
    if (use_refresh)
        c->st.refreshes++;
    else
        c->st.auths++;
    tsi_info("vcc", "token obtained via=%s lifetime_s=%.0f",
             use_refresh ? "refresh" : "credentials", exp_s);
    rc = 0;
done:
    if (body.data)
        memset(body.data, 0, body.len);
    tsi_buf_free(&body);
    return rc;
}

static int64_t margin_ms(const tsi_vcc *c)
{
    int64_t m = (int64_t)c->margin_s * 1000, tenth = c->token_life_ms / 10;
    return tenth < m ? tenth : m;
}

int tsi_vcc_auth(tsi_vcc *c, tsi_error *err)
{
    int64_t now = mono_ms();
    if (c->token[0] && now < c->token_exp_ms - margin_ms(c))
        return 0;
    if (c->token[0] && c->refresh[0] && now < c->refresh_exp_ms - 1000) {
        tsi_error e = {0};
        if (token_request(c, true, &e) == 0)
            return 0;
        tsi_warn("vcc", "token refresh failed, authenticating again err=%s detail=%s",
                 tsi_error_name(e.code), e.detail);
    }
    return token_request(c, false, err);
}

void tsi_vcc_drop_token(tsi_vcc *c)
{
    c->token[0] = '\0';
    c->token_exp_ms = 0;
}

double tsi_vcc_token_left_s(const tsi_vcc *c)
{
    if (!c->token[0])
        return 0;
    return (double)(c->token_exp_ms - mono_ms()) / 1000.0;
}

int tsi_vcc_get(tsi_vcc *c, const char *path, tsi_buf *body, long *status, tsi_error *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = tsi_vcc_auth(c, err);
        if (rc < 0)
            return rc;
        size_t start = body->len;
        long code = 0;
        rc = request(c, path, NULL, c->token, body, &code, err);
        if (status)
            *status = code;
        if (rc < 0)
            return rc;
        if (code >= 200 && code < 300)
            return 0;
        if (code == 401 && attempt == 0) {
            c->st.unauthorized++;
            body->len = start;
            if (body->data)
                body->data[start] = '\0';
            tsi_info("vcc", "401 from VCC: authenticating again path=%s", path);
            tsi_vcc_drop_token(c);
            c->refresh[0] = '\0'; /* a refused token: start from the credentials */
            continue;
        }
        return http_error(c, path, code, body, start, err);
    }
    return TSI_E_AUTH; /* not reached */
}

int tsi_vcc_bsm_current(tsi_vcc *c, tsi_buf *body, tsi_error *err)
{
    return tsi_vcc_get(c, "/api/bsm/current", body, NULL, err);
}

int tsi_vcc_psm_current(tsi_vcc *c, tsi_buf *body, tsi_error *err)
{
    return tsi_vcc_get(c, "/api/psm/current", body, NULL, err);
}

int tsi_vcc_mapdata(tsi_vcc *c, int64_t changed_since_ms, tsi_buf *body, tsi_error *err)
{
    char path[128];
    if (changed_since_ms > 0)
        snprintf(path, sizeof path, "/api/mapdata/decoded?changedSinceTimestamp=%lld",
                 (long long)changed_since_ms);
    else
        snprintf(path, sizeof path, "/api/mapdata/decoded");
    return tsi_vcc_get(c, path, body, NULL, err);
}

int tsi_vcc_spat(tsi_vcc *c, tsi_buf *body, tsi_error *err)
{
    return tsi_vcc_get(c, "/api/spat?format=JSON_COMPLETE", body, NULL, err);
}

int tsi_vcc_stream_key(tsi_vcc *c, const char *kind, char *key, size_t len, tsi_error *err)
{
    if (strcmp(kind, "bsm") != 0 && strcmp(kind, "psm") != 0)
        return tsi_error_set(err, TSI_E_INVALID, "unknown stream kind", "%s", kind);
    char path[32];
    snprintf(path, sizeof path, "/api/%s/key", kind);
    tsi_buf b = TSI_BUF_INIT;
    int rc = tsi_vcc_get(c, path, &b, NULL, err);
    if (rc == 0) {
        const char *s = tsi_buf_cstr(&b);
        size_t n = b.len;
        while (n > 0 &&
               (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '"'))
            n--;
        while (n > 0 && (*s == ' ' || *s == '"')) {
            s++;
            n--;
        }
        bool ok = n > 0 && n < len;
        for (size_t i = 0; ok && i < n; i++)
            ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
                 (s[i] >= 'A' && s[i] <= 'Z') || strchr("-_.~", s[i]) != NULL;
        if (!ok)
            rc = tsi_error_set(err, TSI_E_INVALID, "VCC stream key is empty or not URL-safe",
                               "%zu bytes", n);
        else {
            memcpy(key, s, n);
            key[n] = '\0';
        }
    }
    tsi_buf_free(&b);
    return rc;
}

int tsi_vcc_ws_url(const tsi_vcc *c, const char *path, char *url, size_t len, tsi_error *err)
{
    const char *rest = NULL, *scheme = NULL;
    if (strncmp(c->base, "https://", 8) == 0) {
        scheme = "wss://";
        rest = c->base + 8;
    } else {
        scheme = "ws://";
        rest = c->base + 7;
    }
    size_t hostlen = strcspn(rest, "/");
    int n = snprintf(url, len, "%s%.*s%s", scheme, (int)hostlen, rest, path);
    if (n < 0 || (size_t)n >= len)
        return tsi_error_set(err, TSI_E_INVALID, "WebSocket URL too long", NULL);
    return 0;
}

void tsi_vcc_get_stats(const tsi_vcc *c, tsi_vcc_stats *st)
{
    *st = c->st;
}
