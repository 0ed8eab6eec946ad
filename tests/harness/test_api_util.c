/* tests/harness/test_api_util.c — see test_api_util.h */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_api_util.h"

size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    size_t k = sz * n;
    char *nb = realloc(r->body, r->len + k + 1);
    if (!nb)
        return 0;
    r->body = nb;
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = '\0';
    return k;
}

size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    size_t k = sz * n;
    if (r->hlen + k + 1 < sizeof r->headers) {
        memcpy(r->headers + r->hlen, p, k);
        r->hlen += k;
        r->headers[r->hlen] = '\0';
    }
    return k;
}

void resp_free(resp *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

bool resp_header(const resp *r, const char *name, char *out, size_t len)
{
    size_t nl = strlen(name);
    const char *p = r->headers;
    while (p && *p) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t k = strcspn(v, "\r\n");
            snprintf(out, len, "%.*s", (int)k, v);
            return true;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return false;
}

CURLcode http_req(CURL *c, int port, const char *method, const char *path, const char *extra_header,
                  bool decode_gzip, resp *r)
{
    memset(r, 0, sizeof *r);
    size_t ul = strlen(path) + 64;
    char *url = malloc(ul);
    snprintf(url, ul, "http://127.0.0.1:%d%s", port, path);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    if (decode_gzip)
        curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "gzip");
    if (method && strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (method && strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    struct curl_slist *h = NULL;
    if (extra_header) {
        h = curl_slist_append(h, extra_header);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    CURLcode rc = curl_easy_perform(c);
    free(url);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (h)
        curl_slist_free_all(h);
    if (!r->body) {
        r->body = calloc(1, 1);
    }
    return rc;
}

resp get(int port, const char *path)
{
    CURL *c = curl_easy_init();
    resp r;
    CURLcode rc = http_req(c, port, "GET", path, NULL, false, &r);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK)
        fail_msg("GET %s: %s", path, curl_easy_strerror(rc));
    return r;
}

bool log_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

void srv_start(api_srv *s, const char *const *args, const char *const *env)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        s->port = th_free_port();
        snprintf(s->log, sizeof s->log, "/tmp/tsi-api-test-%d-%d.log", (int)getpid(), s->port);
        s->pid = fork();
        if (s->pid == 0) {
            int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(fd, 1);
            dup2(fd, 2);
            for (const char *const *e = env; e && *e; e++)
                putenv((char *)*e);
            char port[16];
            snprintf(port, sizeof port, "%d", s->port);
            const char *argv[40];
            int n = 0;
            argv[n++] = th_tsi_bin();
            argv[n++] = "serve";
            argv[n++] = "--port";
            argv[n++] = port;
            argv[n++] = "--bind";
            argv[n++] = "127.0.0.1";
            for (const char *const *a = args; a && *a && n < 38; a++)
                argv[n++] = *a;
            argv[n] = NULL;
            execv(argv[0], (char *const *)argv);
            _exit(127);
        }
        bool retry = false;
        for (int i = 0; i < 300 && !retry; i++) {
            CURL *c = curl_easy_init();
            resp r;
            CURLcode rc = http_req(c, s->port, "GET", "/health", NULL, false, &r);
            curl_easy_cleanup(c);
            resp_free(&r);
            if (rc == CURLE_OK)
                return;
            int st;
            if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
                s->pid = 0;
                if (!log_has(s->log, "cannot listen on port"))
                    fail_msg("tsi serve exited early (see %s)", s->log);
                fprintf(stderr, "port %d was taken before tsi serve bound it; another\n", s->port);
                unlink(s->log);
                retry = true;
            } else {
                usleep(100000);
            }
        }
        if (!retry)
            fail_msg("tsi serve did not answer on port %d (see %s)", s->port, s->log);
    }
    fail_msg("tsi serve could not bind a port in three attempts");
}

int srv_stop(api_srv *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 600; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        usleep(100000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    return -1;
}

int srv_stop_clean(api_srv *s)
{
    int rc = srv_stop(s);
    if (rc == 0)
        unlink(s->log);
    return rc;
}

void api_teardown(api_srv *s, PGconn *owner, const char *db, const char *dir)
{
    srv_stop_clean(s);
    if (owner)
        PQfinish(owner);
    th_db_drop(db);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    curl_global_cleanup();
}

void jparse(jdoc *j, const resp *r)
{
    tsi_error e = {0};
    j->text = strdup(r->body ? r->body : "");
    if (tsi_json_parse_alloc(&j->d, j->text, strlen(j->text), 8 * 1024 * 1024, &e) < 0)
        fail_msg("response is not JSON (%s): %.300s", e.message, r->body);
}

void get_json(int port, const char *path, resp *r, jdoc *j)
{
    *r = get(port, path);
    if (r->status != 200)
        fail_msg("GET %s: %ld, expected 200: %.300s", path, r->status, r->body ? r->body : "");
    jparse(j, r);
}

void day_str(char *out, size_t len, long long day)
{
    time_t t = (time_t)(day * 86400);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%d", &tm);
}

void history_path(char *path, size_t len, long long id, long long d0, long long d1, const char *agg)
{
    char a[16], b[16];
    day_str(a, sizeof a, d0);
    day_str(b, sizeof b, d1);
    snprintf(path, len, "/api/v2/safety/history/%lld?start_date=%s&end_date=%s&aggregation=%s", id,
             a, b, agg);
}

void jfree(jdoc *j)
{
    tsi_json_free(&j->d);
    free(j->text);
}

int history_get(int port, long long id, long long d0, long long d1, const char *agg, resp *r,
                jdoc *j)
{
    char path[256];
    history_path(path, sizeof path, id, d0, d1, agg);
    get_json(port, path, r, j);
    int arr = tsi_json_get(&j->d, 0, "data_points");
    if (arr < 0)
        fail_msg("%s: no data_points", path);
    return arr;
}

double jnum(jdoc *j, int obj, const char *key)
{
    double v;
    int t = tsi_json_get(&j->d, obj, key);
    if (t < 0)
        fail_msg("key %s missing", key);
    if (tsi_json_is_null(&j->d, t))
        return NAN;
    if (tsi_json_num(&j->d, t, &v) < 0)
        fail_msg("key %s is not a number", key);
    return v;
}

bool jbool(jdoc *j, int obj, const char *key)
{
    bool v;
    if (tsi_json_bool(&j->d, tsi_json_get(&j->d, obj, key), &v) < 0)
        fail_msg("key %s missing or not a boolean", key);
    return v;
}

void jstr(jdoc *j, int obj, const char *key, char *out, size_t len)
{
    int t = tsi_json_get(&j->d, obj, key);
    if (t < 0 || tsi_json_str(&j->d, t, out, len) < 0)
        fail_msg("key %s missing or not a string", key);
}

int jcount(jdoc *j, int arr)
{
    int n = 0;
    for (int i = tsi_json_first(&j->d, arr); i >= 0; i = tsi_json_next(&j->d, arr, i))
        n++;
    return n;
}

int jat(jdoc *j, int arr, int k)
{
    int i = tsi_json_first(&j->d, arr);
    while (i >= 0 && k-- > 0)
        i = tsi_json_next(&j->d, arr, i);
    return i;
}

void assert_near(double got, double want, double tol, const char *what)
{
    if (isnan(got) && isnan(want))
        return;
    if (!(fabs(got - want) <= tol * (1 + fabs(want))))
        fail_msg("%s: got %.12g want %.12g", what, got, want);
}

void urlenc(char *out, size_t len, const char *s)
{
    size_t j = 0;
    for (; *s && j + 4 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
            out[j++] = (char)c;
        else
            j += (size_t)snprintf(out + j, len - j, "%%%02X", c);
    }
    out[j] = '\0';
}
