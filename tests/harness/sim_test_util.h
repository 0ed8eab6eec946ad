/* tests/harness/sim_test_util.h — helpers shared by the `tsi sim` contract tests:
 * start a simulator, talk REST to it, capture its WebSocket streams.
 * Compiled once in tests/harness (sim_test_util.c). */
#ifndef TSI_TEST_SIM_UTIL_H
#define TSI_TEST_SIM_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json.h"
#include "proc_helper.h"
#include "vcc/ws_client.h"

/* 2026-11-25T12:00:00Z: 07:00 in the simulator's default time zone (UTC-5), the AM rush */
#define SIM_START "2026-11-25T12:00:00Z"

typedef struct sim_t {
    th_proc proc;
    int port;
    char base[64]; /* http://127.0.0.1:PORT */
    char ws[64];   /* ws://127.0.0.1:PORT */
} sim_t;

double sim_ms_now(void);

/* Starts `tsi sim` on a free port with --start SIM_START and the extra arguments. */
void sim_start(sim_t *s, const char *const *extra);

/* GET base+path with an optional bearer token; returns the status. */
int sim_get(sim_t *s, const char *path, const char *tok, char **body);

int sim_post(sim_t *s, const char *path, const char *body_in, char **body);

void json_doc(tsi_json *d, const char *text);

int count_array(const char *text);

/* A fresh access token (malloc'd). */
char *sim_token(sim_t *s);

/* A one-time stream key ("bsm" or "psm"), malloc'd. */
char *sim_key(sim_t *s, const char *tok, const char *kind);

/* A number field of /sim/status. */
int64_t sim_status(sim_t *s, const char *field);

int64_t sim_now(sim_t *s);

/* The simulated tick (ms) of a frame: from its first message's timestamp and secMark;
 * -1 for an empty frame. */
int64_t frame_tick(const char *frame);

/* ---- stream capture with vcc/ws_client ---- */

typedef struct capture {
    char url[1024];
    bool url_used;
    sim_t *sim; /* when set with tok/kind: every connection fetches a fresh key */
    const char *tok, *kind;
    char **frames;
    size_t n, cap;
    int connected, failed, closed;
    double t_first, t_last;
    tsi_ws_client *c;
} capture;

void capture_init(capture *c, const char *fmt, ...);

int capture_url(void *ud, char *url, size_t len);

void capture_frame(void *ud, const char *data, size_t len);

void capture_event(void *ud, int ev, const char *detail);

/* Runs the client for ms milliseconds (or, without reconnect, until the stream ends). */
void capture_run(capture *c, int ms, bool reconnect);

void *capture_thread(void *arg);

/* Runs two captures concurrently for ms milliseconds. */
void capture_run2(capture *a, capture *b, int ms);

void capture_free(capture *c);

#endif
