/* Contract tests of `tsi sim` over real HTTP (libcurl) and real WebSocket
 * (src/vcc/ws_client): auth and 401s, the shape of every endpoint (domain.md §1, read
 * with the project's own decoders), single-use keys, 2 Hz frames, the rsu filter, SPaT
 * agreement, --vcc-quirks, hostile input, the command line, and --bind (127.0.0.1 answers on
 * no other address of the machine; 0.0.0.0 does, the control). The simulator runs as a
 * child process (tests/harness/proc_helper.h). Determinism, ground truth and faults are
 * in test_sim_truth.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/geo.h"
#include "core/json.h"
#include "harness.h"
#include "proc_helper.h"
#include "sim_test_util.h"
#include "vcc/decode.h"

static sim_t g; /* the shared simulator: 6 intersections, 10x real time */

static int setup(void **state)
{
    (void)state;
    const char *extra[] = {"--intersections", "6",   "--seed", "3", "--speed", "10",
                           "--demand",        "0.5", NULL};
    sim_start(&g, extra);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(th_proc_stop(&g.proc), 0);
    return 0;
}

/* ---- auth ---- */

static void test_auth(void **state)
{
    (void)state;
    char url[128], *body = NULL;
    snprintf(url, sizeof url, "%s/api/auth/client", g.base);
    /* wrong secret, missing fields, a malformed form, the wrong method */
    /* (bad client credentials: 400, as the VCC document says) */
    assert_int_equal(th_http("POST", url, NULL, "client_id=tsi-sim&client_secret=nope", NULL, NULL),
                     400);
    assert_int_equal(th_http("POST", url, NULL, "client_id=tsi-sim", NULL, NULL), 400);
    assert_int_equal(th_http("POST", url, NULL, "", NULL, NULL), 400);
    assert_int_equal(th_http("POST", url, NULL, "client_id=%ZZ&client_secret=x", NULL, NULL), 400);
    assert_int_equal(th_http("GET", url, NULL, NULL, NULL, NULL), 405);
    /* the token */
    int st =
        th_http("POST", url, NULL, "client_id=tsi-sim&client_secret=tsi-sim-secret", &body, NULL);
    assert_int_equal(st, 200);
    tsi_json d;
    json_doc(&d, body);
    char tok[1024], tt[32], scope[128], refresh[1024];
    assert_true(tsi_json_str(&d, tsi_json_get(&d, 0, "access_token"), tok, sizeof tok) > 0);
    /* JWT-shaped: three base64url parts */
    int dots = 0;
    for (char *c = tok; *c; c++) {
        if (*c == '.')
            dots++;
        else
            assert_non_null(
                strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *c));
    }
    assert_int_equal(dots, 2);
    int64_t ex = 0, rex = 0;
    assert_int_equal(tsi_json_int64(&d, tsi_json_get(&d, 0, "expires_in"), &ex), 0);
    assert_int_equal(ex, 3600); /* the default --auth-lifetime */
    assert_int_equal(tsi_json_int64(&d, tsi_json_get(&d, 0, "refresh_expires_in"), &rex), 0);
    assert_int_equal(rex, 36000);
    assert_true(tsi_json_str(&d, tsi_json_get(&d, 0, "token_type"), tt, sizeof tt) > 0);
    assert_string_equal(tt, "bearer");
    assert_true(tsi_json_str(&d, tsi_json_get(&d, 0, "scope"), scope, sizeof scope) > 0);
    assert_true(tsi_json_str(&d, tsi_json_get(&d, 0, "refresh_token"), refresh, sizeof refresh) >
                0);
    tsi_json_free(&d);
    free(body);

    /* 401 on a missing, malformed or unknown token; 200 with the real one */
    char api[128];
    snprintf(api, sizeof api, "%s/api/bsm/current", g.base);
    assert_int_equal(th_http("GET", api, NULL, NULL, NULL, NULL), 401);
    const char *bad1[] = {"Authorization: Bearer", NULL};
    const char *bad2[] = {"Authorization: Bearer eyJ.eyJ.sig", NULL};
    const char *bad3[] = {"Authorization: Basic dHNpLXNpbTp0c2ktc2ltLXNlY3JldA==", NULL};
    assert_int_equal(th_http("GET", api, bad1, NULL, NULL, NULL), 401);
    assert_int_equal(th_http("GET", api, bad2, NULL, NULL, NULL), 401);
    assert_int_equal(th_http("GET", api, bad3, NULL, NULL, NULL), 401);
    char h[1100];
    snprintf(h, sizeof h, "Authorization: Bearer %s", tok);
    const char *good[] = {h, NULL};
    assert_int_equal(th_http("GET", api, good, NULL, NULL, NULL), 200);
    /* the refresh token is not an access token */
    snprintf(h, sizeof h, "Authorization: Bearer %s", refresh);
    assert_int_equal(th_http("GET", api, good, NULL, NULL, NULL), 401);
    /* refresh: a new access token from the refresh token; a bogus one is refused */
    char form[1200];
    snprintf(form, sizeof form, "grant_type=refresh_token&refresh_token=%s", refresh);
    assert_int_equal(th_http("POST", url, NULL, form, &body, NULL), 200);
    json_doc(&d, body);
    char tok2[1024];
    assert_true(tsi_json_str(&d, tsi_json_get(&d, 0, "access_token"), tok2, sizeof tok2) > 0);
    assert_string_not_equal(tok, tok2);
    tsi_json_free(&d);
    free(body);
    snprintf(h, sizeof h, "Authorization: Bearer %s", tok2);
    assert_int_equal(th_http("GET", api, good, NULL, NULL, NULL), 200);
    assert_int_equal(
        th_http("POST", url, NULL, "grant_type=refresh_token&refresh_token=xyz", NULL, NULL), 400);
}

/* ---- REST shapes ---- */

typedef struct shape_ctx {
    int ok, bad, bsm, psm;
    int64_t min_ts, max_ts;
    const tsi_mapdata *map;
    int far; /* messages farther than 160 m from every refPoint */
    int located, elev_null, elev_zero, accel_null;
} shape_ctx;

static void shape_cb(void *ud, int index, const tsi_msg *m, int rc, const tsi_error *err)
{
    (void)index;
    shape_ctx *c = ud;
    if (rc < 0) {
        print_message("bad message: %s %s\n", err->message, err->detail);
        c->bad++;
        return;
    }
    c->ok++;
    if (m->type == TSI_MSG_BSM) {
        c->bsm++;
        assert_true(m->msg_cnt >= 0 && m->msg_cnt <= 127);
        assert_true(m->sec_mark >= 0 && m->sec_mark < 60000);
        assert_true(m->speed >= 0 && m->speed < 40); /* m/s */
        assert_true(m->heading >= 0 && m->heading < 360);
        assert_true(m->length_m > 3 && m->length_m < 13);
        assert_true(m->width_m > 1.5 && m->width_m < 3);
        assert_int_equal(strlen(m->wheel_brakes), 5);
        if (isnan(m->elev))
            c->elev_null++;
        else if (m->elev == 0)
            c->elev_zero++;
        if (isnan(m->accel_lon))
            c->accel_null++;
        else
            assert_true(m->accel_lon > -10 && m->accel_lon < 5);
    } else {
        c->psm++;
        assert_true(m->basic_type == 1 || m->basic_type == 2);
        assert_true(m->speed >= 0 && m->speed < 8);
    }
    if (m->location_name[0])
        c->located++;
    assert_true(m->rsu_name[0] != '\0');
    if (c->min_ts == 0 || m->timestamp_ms < c->min_ts)
        c->min_ts = m->timestamp_ms;
    if (m->timestamp_ms > c->max_ts)
        c->max_ts = m->timestamp_ms;
    double best = 1e12;
    for (int i = 0; i < c->map->n; i++) {
        double dd =
            tsi_geo_haversine_m(m->lat, m->lon, c->map->items[i].ref_lat, c->map->items[i].ref_lon);
        if (dd < best)
            best = dd;
    }
    if (best > 160)
        c->far++;
}

static void test_rest_shapes(void **state)
{
    (void)state;
    char *tok = sim_token(&g);
    char *body = NULL;
    /* MapData: one per intersection, through the real decoder */
    assert_int_equal(sim_get(&g, "/api/mapdata/decoded", tok, &body), 200);
    tsi_mapdata map;
    tsi_error e = {0};
    assert_int_equal(tsi_mapdata_decode(body, strlen(body), &map, &e), 0);
    assert_int_equal(map.n, 6);
    assert_int_equal(map.nrejected, 0);
    assert_string_equal(map.items[0].name, "US-29 (Lee Hwy) & Nutley St");
    assert_float_equal(map.items[0].ref_lat, 38.8735, 1e-6);
    assert_float_equal(map.items[0].ref_lon, -77.2710, 1e-6);
    assert_float_equal(map.items[1].ref_lat, 38.8666, 1e-6);
    for (int i = 0; i < map.n; i++) {
        tsi_map_intersection *it = &map.items[i];
        assert_int_equal(it->id, 65536 + it->local_id); /* region 1 */
        assert_int_equal(it->vehicle_lanes, 8);
        assert_true(it->revision >= 1 && it->revision <= 127);
        assert_float_equal(it->lane_width_m, 3.5, 1e-9);
        assert_true(it->speed_limit > 10 && it->speed_limit < 21);
        int crosswalks = 0;
        for (int l = 0; l < it->nlanes; l++) {
            if (it->lanes[l].type == TSI_LANE_CROSSWALK)
                crosswalks++;
            for (int k = 0; k < it->lanes[l].nnodes; k++) {
                /* absolute degrees, within the approach length of the refPoint */
                double dd = tsi_geo_haversine_m(it->ref_lat, it->ref_lon, it->lanes[l].lat[k],
                                                it->lanes[l].lon[k]);
                assert_true(dd < 141.0);
            }
        }
        assert_int_equal(crosswalks, 4);
    }
    /* the grid intersections are distinct and 600 m apart at least */
    for (int i = 0; i < map.n; i++)
        for (int j = i + 1; j < map.n; j++)
            assert_true(tsi_geo_haversine_m(map.items[i].ref_lat, map.items[i].ref_lon,
                                            map.items[j].ref_lat, map.items[j].ref_lon) > 590);
    free(body);

    /* one MapData by id, 404 for unknown ids */
    char path[128];
    snprintf(path, sizeof path, "/api/mapdata/%lld/decoded", (long long)map.items[2].id);
    assert_int_equal(sim_get(&g, path, tok, &body), 200);
    tsi_mapdata one;
    assert_int_equal(tsi_mapdata_decode(body, strlen(body), &one, &e), 0);
    assert_int_equal(one.n, 1);
    assert_int_equal(one.items[0].id, map.items[2].id);
    tsi_mapdata_free(&one);
    free(body);
    assert_int_equal(sim_get(&g, "/api/mapdata/999999/decoded", tok, NULL), 404);
    assert_int_equal(sim_get(&g, "/api/mapdata/abc/decoded", tok, NULL), 404);
    /* changedSinceTimestamp: 0 -> everything; a day ahead -> nothing; junk -> 400 */
    int64_t now = sim_now(&g);
    assert_int_equal(sim_get(&g, "/api/mapdata/decoded?changedSinceTimestamp=0", tok, &body), 200);
    assert_int_equal(count_array(body), 6);
    free(body);
    snprintf(path, sizeof path, "/api/mapdata/decoded?changedSinceTimestamp=%lld",
             (long long)(now + 86400000LL));
    assert_int_equal(sim_get(&g, path, tok, &body), 200);
    assert_int_equal(count_array(body), 0);
    free(body);
    snprintf(path, sizeof path, "/api/mapdata/decoded?receivedSinceTimestamp=%lld",
             (long long)(now + 86400000LL));
    assert_int_equal(sim_get(&g, path, tok, &body), 200);
    assert_int_equal(count_array(body), 0);
    free(body);
    assert_int_equal(sim_get(&g, "/api/mapdata/decoded?changedSinceTimestamp=abc", tok, NULL), 400);
    assert_int_equal(sim_get(&g, "/api/mapdata/decoded?changedSinceTimestamp=-5", tok, NULL), 400);

    /* BSM and PSM current: the last few seconds only, every message decodes */
    for (int i = 0; i < 200 && sim_status(&g, "ticks") < 8; i++)
        usleep(50000); /* the window of /current is full */
    for (int kind = 0; kind < 2; kind++) {
        now = sim_now(&g);
        assert_int_equal(sim_get(&g, kind ? "/api/psm/current" : "/api/bsm/current", tok, &body),
                         200);
        shape_ctx c = {0};
        c.map = &map;
        tsi_decoder dec;
        tsi_decoder_init(&dec);
        int n = tsi_frame_decode(&dec, body, strlen(body), shape_cb, &c, &e);
        tsi_decoder_free(&dec);
        if (n < (kind ? 1 : 30))
            fail_msg("%s/current: %d messages", kind ? "psm" : "bsm", n);
        assert_int_equal(c.bad, 0);
        assert_int_equal(c.ok, n);
        assert_int_equal(kind ? c.psm : c.bsm, n);
        assert_int_equal(c.far, 0);
        /* the window is --current-seconds 2 of simulated time (plus receive jitter) */
        assert_true(c.max_ts - c.min_ts <= 2000 + 150);
        assert_true(c.min_ts >= now - 3000 && c.max_ts <= now + 3000);
        if (!kind) {
            /* the corridor carries locationName, the grid does not; elev sometimes null,
             * sometimes 0; some vendors send no acceleration */
            assert_true(c.located > 0 && c.located < n);
            assert_true(c.elev_null > 0 && c.elev_zero > 0);
            assert_true(c.accel_null > 0 && c.accel_null < n);
            assert_non_null(strstr(body, "\"bsmJ2735\":\""));
            assert_non_null(strstr(body, "\"vendorName\":"));
            assert_non_null(strstr(body, "\"sourceType\":\"RSU\""));
        }
        free(body);
    }

    /* SPaT: a list of JSON strings, one per intersection; vehicle groups agree */
    assert_int_equal(sim_get(&g, "/api/spat?format=JSON_COMPLETE", tok, &body), 200);
    tsi_json d;
    json_doc(&d, body);
    assert_true(tsi_json_is_array(&d, 0));
    int strings = 0;
    for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i)) {
        assert_true(tsi_json_is_string(&d, i));
        strings++;
    }
    assert_int_equal(strings, 6);
    tsi_json_free(&d);
    tsi_spat sp;
    assert_int_equal(tsi_spat_decode(body, strlen(body), &sp, &e), 0);
    assert_int_equal(sp.n, 6);
    for (int i = 0; i < sp.n; i++) {
        assert_int_equal(sp.items[i].id, map.items[i].id);
        assert_int_equal(sp.items[i].nstates, 8);
        int sg_state[20] = {0};
        for (int k = 0; k < sp.items[i].nstates; k++) {
            tsi_spat_state *s = &sp.items[i].states[k];
            assert_true(s->event_state == 3 || s->event_state == 6 || s->event_state == 8);
            assert_true(s->signal_group >= 2 && s->signal_group <= 16);
            assert_true(s->min_end >= (double)now - 5000 && s->min_end <= (double)now + 200000);
            sg_state[s->signal_group] = s->event_state;
        }
        /* split phasing: at most one approach's group is not red, and never while a
         * crosswalk walks (the pedestrian phase is exclusive, all crosswalks together) */
        int moving =
            (sg_state[2] != 3) + (sg_state[4] != 3) + (sg_state[6] != 3) + (sg_state[8] != 3);
        assert_true(moving <= 1);
        assert_int_equal(sg_state[10], sg_state[12]);
        assert_int_equal(sg_state[10], sg_state[14]);
        assert_int_equal(sg_state[10], sg_state[16]);
        assert_false(moving && sg_state[10] != 3);
    }
    tsi_spat_free(&sp);
    free(body);
    assert_int_equal(sim_get(&g, "/api/spat?format=XML", tok, NULL), 400);

    /* the SPaT stream urls */
    snprintf(path, sizeof path, "/api/spat/%lld?format=JSON_COMPLETE", (long long)map.items[1].id);
    assert_int_equal(sim_get(&g, path, tok, &body), 200);
    assert_non_null(strstr(body, "{\"url\":\"/ws/spat?key="));
    free(body);
    assert_int_equal(sim_get(&g, "/api/spat/all?format=JSON_COMPLETE", tok, &body), 200);
    assert_non_null(strstr(body, "{\"url\":\"/ws/spat?key="));
    free(body);
    assert_int_equal(sim_get(&g, "/api/spat/999999?format=JSON_COMPLETE", tok, NULL), 404);
    assert_int_equal(sim_get(&g, "/api/spat/x1?format=JSON_COMPLETE", tok, NULL), 404);

    /* keys are plain text */
    assert_int_equal(sim_get(&g, "/api/bsm/key", tok, &body), 200);
    assert_int_equal(strlen(body), 32);
    free(body);
    /* uploads are accepted: {msgCnt, id} of each message (test_sim_document.c) */
    char url[128];
    snprintf(url, sizeof url, "%s/api/bsm/json", g.base);
    char h[1100];
    snprintf(h, sizeof h, "Authorization: Bearer %s", tok);
    const char *hdr[] = {h, "Content-Type: application/json", NULL};
    assert_int_equal(th_http("POST", url, hdr, "[{\"a\":1},{\"b\":2}]", &body, NULL), 200);
    assert_string_equal(body, "[{\"msgCnt\":null,\"id\":null},{\"msgCnt\":null,\"id\":null}]");
    free(body);
    assert_int_equal(th_http("POST", url, hdr, "[1,", NULL, NULL), 400);
    tsi_mapdata_free(&map);
    free(tok);
}

/* ---- streams ---- */

static void test_keys_single_use(void **state)
{
    (void)state;
    char *tok = sim_token(&g);
    char *key = sim_key(&g, tok, "bsm");
    capture c;
    /* the key opens one stream ... */
    capture_init(&c, "%s/ws/bsm?key=%s", g.ws, key);
    capture_run(&c, 1500, false);
    assert_int_equal(c.connected, 1);
    assert_true(c.n >= 1);
    capture_free(&c);
    /* ... once */
    capture_init(&c, "%s/ws/bsm?key=%s", g.ws, key);
    capture_run(&c, 600, false);
    assert_int_equal(c.connected, 0);
    assert_int_equal(c.failed, 1);
    capture_free(&c);
    free(key);
    /* a PSM key does not open the BSM stream, nor a made-up key, nor no key */
    key = sim_key(&g, tok, "psm");
    capture_init(&c, "%s/ws/bsm?key=%s", g.ws, key);
    capture_run(&c, 500, false);
    assert_int_equal(c.connected, 0);
    capture_free(&c);
    /* (the failed attempt did not use it up) */
    capture_init(&c, "%s/ws/psm?key=%s", g.ws, key);
    capture_run(&c, 500, false);
    assert_int_equal(c.connected, 1);
    capture_free(&c);
    free(key);
    capture_init(&c, "%s/ws/bsm?key=%s", g.ws, "00000000000000000000000000000000");
    capture_run(&c, 500, false);
    assert_int_equal(c.connected, 0);
    capture_free(&c);
    capture_init(&c, "%s/ws/bsm", g.ws);
    capture_run(&c, 500, false);
    assert_int_equal(c.connected, 0);
    capture_free(&c);
    /* an unknown stream path and a bad rsu regex are refused */
    key = sim_key(&g, tok, "bsm");
    capture_init(&c, "%s/ws/nope?key=%s", g.ws, key);
    capture_run(&c, 500, false);
    assert_int_equal(c.connected, 0);
    capture_free(&c);
    capture_init(&c, "%s/ws/bsm?key=%s&rsu=(", g.ws, key);
    capture_run(&c, 500, false);
    assert_int_equal(c.connected, 0);
    capture_free(&c);
    free(key);
    /* keys need a token */
    assert_int_equal(sim_get(&g, "/api/bsm/key", NULL, NULL), 401);
    assert_int_equal(sim_get(&g, "/api/psm/key", "bogus", NULL), 401);
    free(tok);
}

typedef struct rsu_ctx {
    int msgs, other_rsu;
    const char *prefix;
} rsu_ctx;

static void rsu_cb(void *ud, int index, const tsi_msg *m, int rc, const tsi_error *err)
{
    (void)index;
    (void)err;
    rsu_ctx *c = ud;
    assert_true(rc >= 0);
    c->msgs++;
    if (strncmp(m->rsu_name, c->prefix, strlen(c->prefix)) != 0)
        c->other_rsu++;
}

static void test_stream_rate_and_filter(void **state)
{
    (void)state;
    char *tok = sim_token(&g);
    /* 2 Hz of simulated time at --speed 10: 20 frames per wall second */
    char *key = sim_key(&g, tok, "bsm");
    capture c;
    capture_init(&c, "%s/ws/bsm?key=%s", g.ws, key);
    capture_run(&c, 3000, false);
    assert_int_equal(c.connected, 1);
    double secs = (c.t_last - c.t_first) / 1000.0;
    double rate = (double)(c.n - 1) / secs;
    print_message("bsm frames: %zu over %.2f s = %.1f/s (expected 20)\n", c.n, secs, rate);
    assert_true(secs > 2.0);
    assert_true(rate > 20 * 0.7 && rate < 20 * 1.3);
    /* consecutive frames are 500 ms of simulated time apart (secMark of their messages) */
    int64_t prev = -1;
    int steps_ok = 0, steps = 0;
    for (size_t i = 0; i < c.n; i++) {
        int64_t t = frame_tick(c.frames[i]);
        if (t < 0)
            continue;
        if (prev >= 0) {
            steps++;
            if (t - prev == 500)
                steps_ok++;
        }
        prev = t;
    }
    assert_true(steps > 30);
    assert_int_equal(steps_ok, steps);
    capture_free(&c);
    free(key);

    /* the rsu filter: only the matching RSU's messages */
    key = sim_key(&g, tok, "bsm");
    capture_init(&c, "%s/ws/bsm?key=%s&rsu=%%5Ersu-us29", g.ws, key); /* ^rsu-us29 */
    capture_run(&c, 1000, false);
    rsu_ctx r = {0, 0, "rsu-us29"};
    tsi_decoder dec;
    tsi_decoder_init(&dec);
    tsi_error e = {0};
    for (size_t i = 0; i < c.n; i++)
        assert_true(tsi_frame_decode(&dec, c.frames[i], strlen(c.frames[i]), rsu_cb, &r, &e) >= 0);
    assert_true(r.msgs > 20);
    assert_int_equal(r.other_rsu, 0);
    capture_free(&c);
    free(key);

    /* nothing matches: every frame is the keepalive [] */
    key = sim_key(&g, tok, "psm");
    capture_init(&c, "%s/ws/psm?key=%s&rsu=%%5Enothing%%24", g.ws, key);
    capture_run(&c, 1000, false);
    assert_true(c.n >= 10);
    for (size_t i = 0; i < c.n; i++)
        assert_string_equal(c.frames[i], "[]");
    capture_free(&c);
    free(key);
    tsi_decoder_free(&dec);
    free(tok);
}

static void test_spat_stream(void **state)
{
    (void)state;
    char *tok = sim_token(&g);
    char *body = NULL;
    assert_int_equal(sim_get(&g, "/api/spat/69638?format=JSON_COMPLETE", tok, &body), 200);
    char *k = strstr(body, "/ws/spat?key=");
    assert_non_null(k);
    char *end = strchr(k, '"');
    *end = '\0';
    capture c;
    capture_init(&c, "%s%s", g.ws, k);
    free(body);
    capture_run(&c, 1000, false);
    assert_int_equal(c.connected, 1);
    assert_true(c.n >= 10); /* one SPaT per tick at 20 ticks per second */
    tsi_error e = {0};
    for (size_t i = 0; i < c.n; i++) {
        tsi_spat sp;
        assert_int_equal(tsi_spat_decode(c.frames[i], strlen(c.frames[i]), &sp, &e), 0);
        assert_int_equal(sp.n, 1);
        assert_int_equal(sp.items[0].id, 69638); /* US-50 & Nutley: region 1, id 4102 */
        tsi_spat_free(&sp);
    }
    capture_free(&c);
    /* all intersections: six SPaT frames per tick (JSON_COMPLETE: without a format the
     * stream is UPER, as documented — test_sim_document.c) */
    assert_int_equal(sim_get(&g, "/api/spat/all?format=JSON_COMPLETE", tok, &body), 200);
    k = strstr(body, "/ws/spat?key=");
    end = strchr(k, '"');
    *end = '\0';
    capture_init(&c, "%s%s", g.ws, k);
    free(body);
    capture_run(&c, 1000, false);
    int seen[8] = {0};
    for (size_t i = 0; i < c.n; i++) {
        tsi_spat sp;
        assert_int_equal(tsi_spat_decode(c.frames[i], strlen(c.frames[i]), &sp, &e), 0);
        int64_t id = sp.items[0].id;
        if (id == 69637 || id == 69638)
            seen[id - 69637] = 1;
        else if (id >= 65536 + 5001 && id < 65536 + 5005)
            seen[2 + id - 65536 - 5001] = 1;
        tsi_spat_free(&sp);
    }
    for (int i = 0; i < 6; i++)
        assert_int_equal(seen[i], 1);
    assert_true(c.n >= 6 * 10);
    capture_free(&c);
    free(tok);
}

/* ---- hostile input ---- */

static void test_hostile(void **state)
{
    (void)state;
    char *tok = sim_token(&g);
    char url[256];
    assert_int_equal(sim_get(&g, "/nope", tok, NULL), 404);
    assert_int_equal(sim_get(&g, "/api/nope", tok, NULL), 404);
    assert_int_equal(sim_get(&g, "/api/bsm/current/../../etc/passwd", tok, NULL), 404);
    assert_int_equal(sim_get(&g, "/sim/truth?from=abc", NULL, NULL), 400);
    assert_int_equal(sim_get(&g, "/sim/truth?from=10&to=5", NULL, NULL), 400);
    assert_int_equal(sim_get(&g, "/sim/truth?from=0&to=999999999999", NULL, NULL), 400);
    assert_int_equal(sim_get(&g, "/sim/truth?intersection=12", NULL, NULL), 404);
    /* a body over 64 KiB */
    size_t big = 100 * 1024;
    char *b = malloc(big + 1);
    memset(b, 'a', big);
    b[big] = '\0';
    memcpy(b, "client_id=", 10);
    snprintf(url, sizeof url, "%s/api/auth/client", g.base);
    assert_int_equal(th_http("POST", url, NULL, b, NULL, NULL), 413);
    snprintf(url, sizeof url, "%s/sim/faults", g.base);
    assert_int_equal(th_http("POST", url, NULL, b, NULL, NULL), 413);
    free(b);
    /* an over-long value in the form */
    char form[1200];
    memset(form, 'x', sizeof form);
    memcpy(form, "client_id=", 10);
    form[sizeof form - 1] = '\0';
    snprintf(url, sizeof url, "%s/api/auth/client", g.base);
    assert_int_equal(th_http("POST", url, NULL, form, NULL, NULL), 400);
    /* a huge Authorization header */
    char *h = malloc(8000);
    memset(h, 'b', 7999);
    h[7999] = '\0';
    memcpy(h, "Authorization: Bearer ", 22);
    const char *hh[] = {h, NULL};
    snprintf(url, sizeof url, "%s/api/bsm/current", g.base);
    int st = th_http("GET", url, hh, NULL, NULL, NULL);
    assert_true(st == 401 || st == 431 || st == 400 || st == -1);
    free(h);
    /* still alive and well */
    assert_int_equal(sim_get(&g, "/api/bsm/current", tok, NULL), 200);
    free(tok);
}

/* ---- the command line ---- */

static void test_cli(void **state)
{
    (void)state;
    char out[4096];
    const char *a1[] = {"sim", "--intersections", "0", NULL};
    assert_int_equal(th_run_tsi(a1, NULL, out, sizeof out), 2);
    const char *a2[] = {"sim", "--intersections", "5001", NULL};
    assert_int_equal(th_run_tsi(a2, NULL, out, sizeof out), 2);
    const char *a3[] = {"sim", "--start", "yesterday", NULL};
    assert_int_equal(th_run_tsi(a3, NULL, out, sizeof out), 2);
    assert_non_null(strstr(out, "--start"));
    const char *a4[] = {"sim", "--speed", "0", NULL};
    assert_int_equal(th_run_tsi(a4, NULL, out, sizeof out), 2);
    /* turn shares: two numbers 0..1 summing to at most 1, nothing else */
    static const char *bad_turns[] = {"0.6,0.5",  "x",           "0.1,",    ",0.1",    "0.1",
                                      "-0.1,0.2", "0.1,0.2,0.3", "nan,0.1", "0.1;0.2", ""};
    for (size_t k = 0; k < sizeof bad_turns / sizeof *bad_turns; k++) {
        const char *at[] = {"sim", "--turn-share", bad_turns[k], NULL};
        assert_int_equal(th_run_tsi(at, NULL, out, sizeof out), 2);
        assert_non_null(strstr(out, "--turn-share"));
    }
    const char *a5[] = {"sim", "--help", NULL};
    assert_int_equal(th_run_tsi(a5, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "--vcc-quirks"));
    /* the port is taken: exit 1 with a message */
    char p[16];
    snprintf(p, sizeof p, "%d", g.port);
    const char *a6[] = {"sim", "--port", p, "--warmup", "0", "--intersections", "1", NULL};
    assert_int_equal(th_run_tsi(a6, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "cannot listen"));
}

/* ---- --bind ---- */

/* 0 when a TCP connection to addr:port is accepted, else the connect errno */
static int tcp_connect(const char *addr, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    assert_int_equal(inet_pton(AF_INET, addr, &sa.sin_addr), 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

/* The machine's addresses other than 127.0.0.1: 127.0.0.2 (loopback, but not the one
 * bound) and the first IPv4 address of a non-loopback interface, when there is one. */
static int other_addresses(char out[2][INET_ADDRSTRLEN])
{
    int n = 0;
    snprintf(out[n++], INET_ADDRSTRLEN, "127.0.0.2");
    struct ifaddrs *ifs = NULL;
    assert_int_equal(getifaddrs(&ifs), 0);
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        const struct sockaddr_in *a = (const struct sockaddr_in *)i->ifa_addr;
        if ((ntohl(a->sin_addr.s_addr) >> 24) == 127)
            continue;
        inet_ntop(AF_INET, &a->sin_addr, out[n++], INET_ADDRSTRLEN);
        break;
    }
    freeifaddrs(ifs);
    if (n == 1)
        print_message("test_bind: this machine has no non-loopback IPv4 address; only "
                      "127.0.0.2 is tried\n");
    return n;
}

static void test_bind(void **state)
{
    (void)state;
    char other[2][INET_ADDRSTRLEN];
    int n = other_addresses(other);

    /* the default, and --bind 127.0.0.1 said outright: 127.0.0.1 only */
    sim_t lo;
    const char *e_lo[] = {"--bind", "127.0.0.1", "--intersections", "1", "--warmup", "0", NULL};
    sim_start(&lo, e_lo); /* answers /healthz on 127.0.0.1 */
    sim_t def;
    const char *e_def[] = {"--intersections", "1", "--warmup", "0", NULL};
    sim_start(&def, e_def);
    for (int k = 0; k < n; k++) {
        if (tcp_connect(other[k], lo.port) != ECONNREFUSED)
            fail_msg("--bind 127.0.0.1: a connection to %s:%d was not refused", other[k], lo.port);
        if (tcp_connect(other[k], def.port) != ECONNREFUSED)
            fail_msg("default bind: a connection to %s:%d was not refused", other[k], def.port);
    }
    assert_int_equal(tcp_connect("127.0.0.1", lo.port), 0);
    assert_int_equal(th_proc_stop(&lo.proc), 0);
    assert_int_equal(th_proc_stop(&def.proc), 0);

    /* the control: --bind 0.0.0.0 answers HTTP on those same addresses */
    sim_t any;
    const char *e_any[] = {"--bind", "0.0.0.0", "--intersections", "1", "--warmup", "0", NULL};
    sim_start(&any, e_any);
    for (int k = 0; k < n; k++) {
        char url[128];
        snprintf(url, sizeof url, "http://%s:%d/healthz", other[k], any.port);
        assert_int_equal(th_http("GET", url, NULL, NULL, NULL, NULL), 200);
    }
    assert_int_equal(th_proc_stop(&any.proc), 0);

    /* anything but a numeric address: exit 2, said (libwebsockets would take it for an
     * interface name, find none and listen nowhere) */
    char out[4096];
    static const char *bad[] = {"nonsense",  "",   "127.0.0.1:80", "999.1.1.1",
                                "localhost", "lo", "127.0.0.1 ",   "::1/128"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        const char *a[] = {"sim", "--bind", bad[k], "--port", "0", NULL};
        assert_int_equal(th_run_tsi(a, NULL, out, sizeof out), 2);
        assert_non_null(strstr(out, "--bind must be an IPv4 or IPv6 address"));
    }
}

/* ---- --vcc-quirks ---- */

static void test_quirks(void **state)
{
    (void)state;
    sim_t q;
    const char *extra[] = {"--intersections", "3", "--vcc-quirks", "--speed", "5", NULL};
    sim_start(&q, extra);
    char *tok = sim_token(&q);
    char *body = NULL;
    assert_int_equal(sim_get(&q, "/api/mapdata/decoded", tok, &body), 200);
    tsi_mapdata map;
    tsi_error e = {0};
    assert_int_equal(tsi_mapdata_decode(body, strlen(body), &map, &e), 0);
    free(body);
    usleep(300000);
    assert_int_equal(sim_get(&q, "/api/bsm/current", tok, &body), 200);
    shape_ctx c = {0};
    c.map = &map;
    tsi_decoder dec;
    tsi_decoder_init(&dec);
    int n = tsi_frame_decode(&dec, body, strlen(body), shape_cb, &c, &e);
    tsi_decoder_free(&dec);
    assert_true(n > 10);
    assert_int_equal(c.located, n); /* every message names its location */
    assert_int_equal(c.far, n);     /* and none lies near a refPoint */
    assert_null(strstr(body, "rsu-us29"));
    assert_non_null(strstr(body, "\"rsuName\":\"From_WebSocket\"")); /* the real streams' */
    free(body);
    tsi_mapdata_free(&map);
    free(tok);
    assert_int_equal(th_proc_stop(&q.proc), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_rest_shapes),
        cmocka_unit_test(test_keys_single_use),
        cmocka_unit_test(test_stream_rate_and_filter),
        cmocka_unit_test(test_spat_stream),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_bind),
        cmocka_unit_test(test_quirks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
