/* tests/harness/proc_helper.h — background tsi processes for integration tests: start
 * any tsi subcommand (tsi sim, tsi serve, tsi collect ...) with extra environment, wait
 * until an HTTP URL answers, stop it with SIGTERM then SIGKILL.
 *
 *   th_proc sim;
 *   int port = th_free_port();
 *   char p[16]; snprintf(p, sizeof p, "%d", port);
 *   const char *args[] = {"sim", "--port", p, "--speed", "20", NULL};
 *   th_proc_start(&sim, args, NULL);                      // fails the test on error
 *   th_wait_http("http://127.0.0.1:.../healthz", 20000);  // 0 when it answered
 *   ...
 *   th_proc_stop(&sim);                                   // exit status
 *
 * Output (stdout + stderr) goes to a log file (th_proc.log, under TSI_TEST_TMP or /tmp),
 * printed by th_proc_stop when the process did not exit cleanly or when
 * TH_SHOW_LOGS is set. Ownership: th_proc is the caller's value; th_proc_stop reaps the
 * child and removes the log. Processes still running when the test executable exits are
 * killed by an atexit hook, so a failed assertion does not leave them behind. */
#ifndef TSI_TEST_PROC_HELPER_H
#define TSI_TEST_PROC_HELPER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct th_proc {
    pid_t pid; /* 0 when not running */
    char log[256];
    bool reaped; /* the child has exited and was waited for; status holds its wait status */
    int status;
} th_proc;

/* Starts the tsi binary (TSI_BIN) with args (NULL-terminated, without the binary) and
 * extra "K=V" environment entries (NULL-terminated, may be NULL), in the background.
 * Fails the test when it cannot be started. */
void th_proc_start(th_proc *p, const char *const *args, const char *const *env);

/* Polls url with GET until any HTTP status arrives (returns it), the process exits, or
 * timeout_ms passes (returns -1). p may be NULL (no liveness check). */
int th_wait_http(th_proc *p, const char *url, int timeout_ms);

/* True while the process runs. */
bool th_proc_alive(th_proc *p);

/* SIGTERM, up to 10 s to exit, then SIGKILL. Returns the exit status (128 + signal when
 * killed by one), -1 when it was not running. NULL-safe, idempotent. */
int th_proc_stop(th_proc *p);

/* The log so far (malloc'd, NUL-terminated; caller frees). */
char *th_proc_log(const th_proc *p);

/* A TCP port free on 127.0.0.1 right now (bound and released). */
int th_free_port(void);

/* Plain HTTP with libcurl: method "GET"/"POST", optional body and header lines
 * (NULL-terminated). Returns the status (-1 on transport error); *body (malloc'd, may be
 * NULL) receives the response body; *elapsed_ms (may be NULL) the wall time taken. */
int th_http(const char *method, const char *url, const char *const *headers, const char *req_body,
            char **body, double *elapsed_ms);

#endif
