/* tests/harness/test_api_util.h — what the API tests share: start `tsi serve` on a free
 * port as a child process, GET with libcurl, read JSON answers with core/json.h.
 * Compiled once in tests/harness (test_api_util.c). */
#ifndef TSI_TEST_API_UTIL_H
#define TSI_TEST_API_UTIL_H

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/json.h"
#include "harness.h"
#include "proc_helper.h"

typedef struct api_srv {
    pid_t pid;
    int port;
    char log[512];
} api_srv;

typedef struct resp {
    long status;
    char *body;
    size_t len;
    char headers[4096];
    size_t hlen;
} resp;

size_t on_body(char *p, size_t sz, size_t n, void *ud);

size_t on_header(char *p, size_t sz, size_t n, void *ud);

void resp_free(resp *r);

/* header value (case-insensitive name) into out; false when absent */
bool resp_header(const resp *r, const char *name, char *out, size_t len);

/* GET path (already URL-encoded) with optional extra header and gzip handling */
CURLcode http_req(CURL *c, int port, const char *method, const char *path, const char *extra_header,
                  bool decode_gzip, resp *r);

resp get(int port, const char *path);

/* true when the file at path contains needle (a server's log) */
bool log_has(const char *path, const char *needle);

/* starts tsi serve with args (NULL-terminated) and env ("K=V", NULL-terminated);
 * waits until /health answers. The port is one the kernel just handed out; should another
 * process take it before the server binds it, the server is started again on a new one. */
void srv_start(api_srv *s, const char *const *args, const char *const *env);

/* SIGTERM and wait; returns the exit status (-1 when killed or not exited in 60 s: a hang
 * detector, generous for a machine loaded by parallel tests, not a speed bound) */
int srv_stop(api_srv *s);

/* srv_stop, and the server's log removed when it stopped cleanly (kept for a failure) */
int srv_stop_clean(api_srv *s);

/* The common teardown of an API test file: stop the server (its log removed after a clean
 * stop), close the owner connection, drop the test database, remove the test's work
 * directory, release libcurl. */
void api_teardown(api_srv *s, PGconn *owner, const char *db, const char *dir);

/* ---- JSON reading ---------------------------------------------------------------------- */
typedef struct jdoc {
    tsi_json d;
    char *text;
} jdoc;

void jparse(jdoc *j, const resp *r);

/* GET path, require 200, parse the body into j (r keeps the response for headers) */
void get_json(int port, const char *path, resp *r, jdoc *j);

/* a UTC day number as YYYY-MM-DD */
void day_str(char *out, size_t len, long long day);

/* /api/v2/safety/history/{id} over the days d0..d1 at agg, into path */
void history_path(char *path, size_t len, long long id, long long d0, long long d1,
                  const char *agg);

void jfree(jdoc *j);

/* GET that history (200 required) and parse it; returns the data_points array */
int history_get(int port, long long id, long long d0, long long d1, const char *agg, resp *r,
                jdoc *j);

double jnum(jdoc *j, int obj, const char *key);

bool jbool(jdoc *j, int obj, const char *key);

void jstr(jdoc *j, int obj, const char *key, char *out, size_t len);

int jcount(jdoc *j, int arr);

int jat(jdoc *j, int arr, int k);

void assert_near(double got, double want, double tol, const char *what);

/* percent-encoding for query values */
void urlenc(char *out, size_t len, const char *s);

#endif
