/* Unit tests of core/engine and core/registry on small hand-built trajectories:
 * rear-end TTC known analytically, a pedestrian crossing, self-conflicts, pairs counted
 * once, hard braking both ways, dedupe, late messages, minute boundaries, PSM-only
 * minutes, intersection assignment in metres. Positions are written in the
 * intersection's local metres and converted to lat/lon, so every expectation below is
 * plain kinematics computed by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "core/engine.h"
#include "core/registry.h"
#include "vcc/decode.h"

#define T0      1764066600000LL /* 2025-11-25 10:30:00 UTC, a minute start */
#define REF_LAT 38.86
#define REF_LON -77.26

typedef struct collected {
    int n;
    tsi_features f[64];
    int nconf[64];
    tsi_conflict conf[64][16];
} collected;

static void on_window(void *ud, const tsi_window_result *r)
{
    collected *c = ud;
    assert_true(c->n < 64);
    c->f[c->n] = r->features;
    c->nconf[c->n] = r->nconflicts;
    for (int i = 0; i < r->nconflicts && i < 16; i++)
        c->conf[c->n][i] = r->conflicts[i];
    c->n++;
}

static tsi_map_intersection isect(int region, int id, double lat, double lon, int rev)
{
    tsi_map_intersection x;
    memset(&x, 0, sizeof x);
    x.region = region;
    x.local_id = id;
    x.id = (int64_t)region * 65536 + id;
    x.revision = rev;
    x.ref_lat = lat;
    x.ref_lon = lon;
    x.ref_elev = x.lane_width_m = x.speed_limit = NAN;
    snprintf(x.name, sizeof x.name, "test %d", id);
    return x;
}

typedef struct fixture {
    tsi_registry *reg;
    tsi_engine *eng;
    collected got;
    tsi_ltp ltp;
} fixture;

static fixture *fx_new(void)
{
    fixture *fx = calloc(1, sizeof *fx);
    fx->reg = tsi_registry_new(150);
    tsi_map_intersection x = isect(1, 4101, REF_LAT, REF_LON, 1);
    assert_int_equal(tsi_registry_upsert(fx->reg, &x), 1);
    fx->eng = tsi_engine_new(NULL, fx->reg, on_window, &fx->got);
    tsi_ltp_init(&fx->ltp, REF_LAT, REF_LON);
    return fx;
}

static void fx_free(fixture *fx)
{
    tsi_engine_free(fx->eng);
    tsi_registry_free(fx->reg);
    free(fx);
}

/* A message at local (x, y) metres around the test intersection. */
static tsi_msg mk(const fixture *fx, int type, int64_t id, int64_t ts, double x, double y,
                  double speed, double heading, double accel)
{
    tsi_msg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    m.id = id;
    m.timestamp_ms = ts;
    m.msg_cnt = (int)((ts / 100) % 128);
    m.sec_mark = (int)(ts % 60000);
    tsi_ltp_to_ll(&fx->ltp, x, y, &m.lat, &m.lon);
    m.elev = NAN;
    m.speed = speed;
    m.heading = heading;
    m.accel_lon = accel;
    m.accel_lat = m.accel_vert = m.accel_yaw = NAN;
    m.width_m = NAN;
    m.length_m = type == TSI_MSG_BSM ? 4.8 : NAN;
    m.basic_type = type == TSI_MSG_PSM ? TSI_PSM_PEDESTRIAN : -1;
    return m;
}

static void push_ok(fixture *fx, tsi_msg m)
{
    tsi_error err;
    int rc = tsi_engine_push(fx->eng, &m, NULL, &err);
    if (rc != 0)
        fail_msg("push failed: %s %s", tsi_error_name(rc), err.detail);
}

static void test_ttc_function(void **state)
{
    (void)state;
    /* b 30 m ahead (north), closing at 10 m/s, r = 4.8: (30 − 4.8) / 10 */
    assert_true(fabs(tsi_ttc(0, 30, 0, -10, 4.8) - 2.52) < 1e-12);
    /* separating: none */
    assert_true(isnan(tsi_ttc(0, 30, 0, 10, 4.8)));
    /* passing wide (closest approach 10 m > r): never reaches r */
    assert_true(isnan(tsi_ttc(-30, 10, 10, 0, 4.8)));
    /* already within r and closing: 0 */
    assert_true(tsi_ttc(0, 3, 0, -1, 4.8) == 0);
    /* no relative motion: none */
    assert_true(isnan(tsi_ttc(0, 3, 0, 0, 4.8)));
}

/* Follower (id 1) at 15 m/s behind a leader (id 2) at 5 m/s, both northbound, 30 m
 * apart at t0; gap(t) = 30 − 10 t, collision distance = mean length 4.8 m, so
 * TTC(t) = (gap(t) − 4.8) / 10. */
static void rear_end(fixture *fx, int samples, int64_t lead_offset_ms)
{
    for (int k = 0; k < samples; k++) {
        double tf = 0.5 * k, tl = 0.5 * k + lead_offset_ms / 1000.0;
        push_ok(fx, mk(fx, TSI_MSG_BSM, 1, T0 + 5000 + 500 * k, 0, -40 + 15 * tf, 15, 0, 0));
        push_ok(fx, mk(fx, TSI_MSG_BSM, 2, T0 + 5000 + 500 * k + lead_offset_ms, 0, -10 + 5 * tl, 5,
                       0, 0));
    }
    tsi_engine_flush(fx->eng);
}

static void test_rear_end(void **state)
{
    (void)state;
    /* 4 aligned samples: gaps 30, 25, 20, 15 → TTC 2.52 … 1.02 ≤ 1.5: one event */
    fixture *fx = fx_new();
    rear_end(fx, 4, 0);
    assert_int_equal(fx->got.n, 1);
    tsi_features *f = &fx->got.f[0];
    assert_int_equal(f->intersection_id, 65536 + 4101);
    assert_int_equal(f->minute_ms, T0);
    assert_int_equal(f->traffic_volume, 2);
    assert_int_equal(f->vehicle_event_count, 1);
    assert_int_equal(f->vru_event_count, 0);
    assert_int_equal(fx->got.nconf[0], 1);
    tsi_conflict *c = &fx->got.conf[0][0];
    assert_int_equal(c->kind, TSI_CONFLICT_VEHICLE);
    assert_int_equal(c->id_a, 1);
    assert_int_equal(c->id_b, 2);
    assert_true(fabs(c->min_ttc_s - (15 - 4.8) / 10) < 1e-6);
    assert_true(fabs(c->min_distance_m - 15) < 1e-6);
    assert_int_equal(c->at_ms, T0 + 5000 + 1500);
    fx_free(fx);

    /* 3 samples: min TTC (20 − 4.8)/10 = 1.52 > 1.5 and distance ≥ 20: no event */
    fx = fx_new();
    rear_end(fx, 3, 0);
    assert_int_equal(fx->got.f[0].vehicle_event_count, 0);
    assert_int_equal(fx->got.nconf[0], 0);
    fx_free(fx);

    /* leader sampled 250 ms later than the follower: the earlier sample is extrapolated
     * to the later time; the last aligned time is t = 1.75 s → gap 12.5 → TTC 0.77 */
    fx = fx_new();
    rear_end(fx, 4, 250);
    assert_int_equal(fx->got.f[0].vehicle_event_count, 1);
    assert_true(fabs(fx->got.conf[0][0].min_ttc_s - (30 - 10 * 1.75 - 4.8) / 10) < 1e-6);
    fx_free(fx);

    /* samples more than 1 s apart are never aligned: leader 1.2 s late → no pair */
    fx = fx_new();
    for (int k = 0; k < 2; k++) {
        push_ok(fx, mk(fx, TSI_MSG_BSM, 1, T0 + 5000 + 3000 * k, 0, -40 + 45 * k, 15, 0, 0));
        push_ok(fx, mk(fx, TSI_MSG_BSM, 2, T0 + 6200 + 3000 * k, 0, -4, 5, 0, 0));
    }
    tsi_engine_flush(fx->eng);
    assert_int_equal(fx->got.f[0].vehicle_event_count, 0);
    fx_free(fx);
}

static void test_pedestrian_crossing(void **state)
{
    (void)state;
    fixture *fx = fx_new();
    /* vehicle 10 eastbound at 10 m/s from x = −30 on y = 0; pedestrian 77 walking north
     * at 1.4 m/s from (0, −3); a second vehicle 11 far north (y = 60) eastbound. */
    push_ok(fx, mk(fx, TSI_MSG_BSM, 10, T0 + 1000, -30, 0, 10, 90, 0));
    push_ok(fx, mk(fx, TSI_MSG_PSM, 77, T0 + 1000, 0, -3, 1.4, 0, NAN));
    push_ok(fx, mk(fx, TSI_MSG_BSM, 11, T0 + 1000, -30, 60, 10, 90, 0));
    tsi_engine_flush(fx->eng);
    assert_int_equal(fx->got.n, 1);
    tsi_features *f = &fx->got.f[0];
    assert_int_equal(f->traffic_volume, 2);
    assert_int_equal(f->vru_count, 1);
    assert_int_equal(f->vru_event_count, 1);
    assert_int_equal(f->vehicle_event_count, 0);
    /* by hand: p = (30, −3), v = (−10, 1.4), R = 4.8/2 + 0.5 = 2.9;
     * t = (−p·v − sqrt((p·v)² − |v|²(|p|² − R²))) / |v|² */
    double pv = 30 * -10 + -3 * 1.4, vv = 100 + 1.96, cc = 900 + 9 - 2.9 * 2.9;
    double want = (-pv - sqrt(pv * pv - vv * cc)) / vv;
    assert_int_equal(fx->got.nconf[0], 1);
    tsi_conflict *c = &fx->got.conf[0][0];
    assert_int_equal(c->kind, TSI_CONFLICT_VRU);
    assert_int_equal(c->id_a, 10);
    assert_int_equal(c->id_b, 77);
    assert_true(fabs(c->min_ttc_s - want) < 1e-6);
    assert_true(fabs(c->min_distance_m - sqrt(909)) < 1e-6);
    fx_free(fx);

    /* a standing pedestrian 30 m ahead: TTC = (30 − 2.9)/10 = 2.71 ≤ 3 → event; an
     * animal at the same spot takes part in no conflict but is counted in vru_count */
    fx = fx_new();
    push_ok(fx, mk(fx, TSI_MSG_BSM, 10, T0 + 1000, -30, 0, 10, 90, 0));
    push_ok(fx, mk(fx, TSI_MSG_PSM, 78, T0 + 1000, 0, 0, 0, 0, NAN));
    tsi_msg animal = mk(fx, TSI_MSG_PSM, 79, T0 + 1000, 0, 0.5, 0, 0, NAN);
    animal.basic_type = TSI_PSM_ANIMAL;
    push_ok(fx, animal);
    tsi_engine_flush(fx->eng);
    assert_int_equal(fx->got.f[0].vru_count, 2);
    assert_int_equal(fx->got.f[0].vru_event_count, 1);
    assert_true(fabs(fx->got.conf[0][0].min_ttc_s - 2.71) < 1e-6);
    assert_int_equal(fx->got.conf[0][0].id_b, 78);
    fx_free(fx);
}

static void test_no_self_conflict(void **state)
{
    (void)state;
    fixture *fx = fx_new();
    /* the same vehicle reported by two RSUs (same id, msgCnt, secMark, timestamp) and
     * again 500 ms later: one vehicle, no conflict with itself */
    tsi_msg a = mk(fx, TSI_MSG_BSM, 5, T0 + 2000, 0, 0, 10, 0, 0);
    tsi_msg b = a;
    snprintf(b.rsu_name, sizeof b.rsu_name, "other-rsu");
    push_ok(fx, a);
    tsi_error err;
    assert_int_equal(tsi_engine_push(fx->eng, &b, NULL, &err), TSI_E_DUPLICATE);
    push_ok(fx, mk(fx, TSI_MSG_BSM, 5, T0 + 2500, 0, 5, 10, 0, 0));
    /* the same physical vehicle under a second id at the very same position */
    push_ok(fx, mk(fx, TSI_MSG_BSM, 6, T0 + 2500, 0, 5, 10, 0, 0));
    tsi_engine_flush(fx->eng);
    assert_int_equal(fx->got.f[0].traffic_volume, 2);
    assert_int_equal(fx->got.f[0].vehicle_event_count, 0);
    assert_int_equal(fx->got.nconf[0], 0);
    fx_free(fx);
}

static void test_pair_counted_once(void **state)
{
    (void)state;
    fixture *fx = fx_new();
    /* two vehicles side by side 1.5 m apart, same speed and heading, in three samples:
     * separation < 2 m in each, one event, one audit record with min distance 1.5 */
    for (int k = 0; k < 3; k++) {
        push_ok(fx, mk(fx, TSI_MSG_BSM, 21, T0 + 10000 + 500 * k, 0, 5.0 * k, 10, 0, 0));
        push_ok(fx, mk(fx, TSI_MSG_BSM, 20, T0 + 10000 + 500 * k, 1.5, 5.0 * k, 10, 0, 0));
    }
    tsi_engine_flush(fx->eng);
    assert_int_equal(fx->got.f[0].vehicle_event_count, 1);
    assert_int_equal(fx->got.nconf[0], 1);
    assert_int_equal(fx->got.conf[0][0].id_a, 20); /* ordered pair */
    assert_int_equal(fx->got.conf[0][0].id_b, 21);
    assert_true(isnan(fx->got.conf[0][0].min_ttc_s)); /* parallel: no TTC */
    assert_true(fabs(fx->got.conf[0][0].min_distance_m - 1.5) < 1e-6);
    fx_free(fx);
}

static void test_hard_braking(void **state)
{
    (void)state;
    fixture *fx = fx_new();
    /* id 30: accelSet.lon −3.5 twice → one event; id 31: exactly −3.0 → event (≤);
     * id 32: −2.9 → none */
    push_ok(fx, mk(fx, TSI_MSG_BSM, 30, T0 + 1000, -100, 0, 10, 90, -3.5));
    push_ok(fx, mk(fx, TSI_MSG_BSM, 30, T0 + 1500, -95, 0, 8, 90, -3.5));
    push_ok(fx, mk(fx, TSI_MSG_BSM, 31, T0 + 1000, 100, 0, 10, 270, -3.0));
    push_ok(fx, mk(fx, TSI_MSG_BSM, 32, T0 + 1000, 0, 100, 10, 180, -2.9));
    /* acceleration unavailable: id 33 drops 15 → 13.4 m/s in 0.5 s (3.2 m/s²) → event;
     * id 34 drops 15 → 13.6 in 0.5 s (2.8 m/s²) → none; id 35 drops 15 → 13.5 in 0.5 s
     * (exactly 3.0) → event */
    push_ok(fx, mk(fx, TSI_MSG_BSM, 33, T0 + 1000, 0, -100, 15, 0, NAN));
    push_ok(fx, mk(fx, TSI_MSG_BSM, 33, T0 + 1500, 0, -93, 13.4, 0, NAN));
    push_ok(fx, mk(fx, TSI_MSG_BSM, 34, T0 + 1000, 50, -100, 15, 0, NAN));
    push_ok(fx, mk(fx, TSI_MSG_BSM, 34, T0 + 1500, 50, -93, 13.6, 0, NAN));
    push_ok(fx, mk(fx, TSI_MSG_BSM, 35, T0 + 1000, -50, -100, 15, 0, NAN));
    push_ok(fx, mk(fx, TSI_MSG_BSM, 35, T0 + 1500, -50, -93, 13.5, 0, NAN));
    tsi_engine_flush(fx->eng);
    assert_int_equal(fx->got.f[0].traffic_volume, 6);
    assert_int_equal(fx->got.f[0].hard_braking_count, 4); /* 30, 31, 33, 35 */
    fx_free(fx);
}

static void test_speed_features(void **state)
{
    (void)state;
    fixture *fx = fx_new();
    /* vehicle A: 4 messages at 10 m/s; vehicle B: 1 message at 20 m/s; C: speed null.
     * avg_speed = mean of per-vehicle means = (10 + 20)/2 = 15 (not the message mean 12);
     * speed_stddev = sample sd of 10,10,10,10,20 = sqrt(80/4) */
    for (int k = 0; k < 4; k++)
        push_ok(fx, mk(fx, TSI_MSG_BSM, 40, T0 + 1000 + 500 * k, -100 + 5 * k, 20, 10, 90, 0));
    push_ok(fx, mk(fx, TSI_MSG_BSM, 41, T0 + 1000, 100, -20, 20, 270, 0));
    push_ok(fx, mk(fx, TSI_MSG_BSM, 42, T0 + 1000, 0, 100, NAN, NAN, NAN));
    tsi_engine_flush(fx->eng);
    assert_int_equal(fx->got.f[0].traffic_volume, 3);
    assert_int_equal(fx->got.f[0].bsm_messages, 6);
    assert_true(fabs(fx->got.f[0].avg_speed - 15) < 1e-9);
    assert_true(fabs(fx->got.f[0].speed_stddev - sqrt(20.0)) < 1e-9);
    fx_free(fx);

    /* one message: stddev 0 */
    fx = fx_new();
    push_ok(fx, mk(fx, TSI_MSG_BSM, 40, T0 + 1000, 0, 0, 12, 90, 0));
    tsi_engine_flush(fx->eng);
    assert_true(fx->got.f[0].speed_stddev == 0);
    assert_true(fx->got.f[0].avg_speed == 12);
    fx_free(fx);
}

/* a copy of an older sample that arrives after newer ones is still a duplicate (the scan
 * is skipped only for a sample newer than every one held), and a new message whose time
 * falls between held samples is not */
static void test_dedupe_out_of_order(void **state)
{
    (void)state;
    fixture *fx = fx_new();
    tsi_error err;
    tsi_msg a = mk(fx, TSI_MSG_BSM, 60, T0 + 1000, 0, 0, 10, 0, 0);
    tsi_msg b = mk(fx, TSI_MSG_BSM, 60, T0 + 1200, 0, 2, 10, 0, 0);
    tsi_msg c = mk(fx, TSI_MSG_BSM, 60, T0 + 1400, 0, 4, 10, 0, 0);
    push_ok(fx, c); /* the newest first */
    push_ok(fx, a);
    push_ok(fx, b);
    assert_int_equal(tsi_engine_push(fx->eng, &a, NULL, &err), TSI_E_DUPLICATE);
    assert_int_equal(tsi_engine_push(fx->eng, &b, NULL, &err), TSI_E_DUPLICATE);
    assert_int_equal(tsi_engine_push(fx->eng, &c, NULL, &err), TSI_E_DUPLICATE);
    tsi_msg d = mk(fx, TSI_MSG_BSM, 60, T0 + 1300, 0, 3, 10, 0, 0); /* between b and c */
    push_ok(fx, d);
    assert_int_equal(tsi_engine_push(fx->eng, &d, NULL, &err), TSI_E_DUPLICATE);
    tsi_engine_flush(fx->eng);
    assert_int_equal(fx->got.f[0].bsm_messages, 4);
    tsi_engine_stats st;
    tsi_engine_get_stats(fx->eng, &st);
    assert_int_equal(st.duplicates, 4);
    assert_int_equal(st.accepted, 4);
    fx_free(fx);
}

static void test_dedupe(void **state)
{
    (void)state;
    fixture *fx = fx_new();
    tsi_error err;
    tsi_msg m = mk(fx, TSI_MSG_BSM, 50, T0 + 1234, 0, 0, 10, 0, 0);
    push_ok(fx, m);
    assert_int_equal(tsi_engine_push(fx->eng, &m, NULL, &err), TSI_E_DUPLICATE);
    /* 10 ms later receive time, same 100-ms rounding (12.34 and 12.44 both → 12) */
    tsi_msg m2 = m;
    m2.timestamp_ms = T0 + 1244;
    assert_int_equal(tsi_engine_push(fx->eng, &m2, NULL, &err), TSI_E_DUPLICATE);
    /* another msgCnt: a different message */
    tsi_msg m3 = m;
    m3.msg_cnt = (m.msg_cnt + 1) % 128;
    push_ok(fx, m3);
    /* same key but a PSM: a different message */
    tsi_msg p = m;
    p.type = TSI_MSG_PSM;
    p.basic_type = TSI_PSM_PEDESTRIAN;
    push_ok(fx, p);
    tsi_engine_flush(fx->eng);
    assert_int_equal(fx->got.f[0].bsm_messages, 2);
    assert_int_equal(fx->got.f[0].psm_messages, 1);
    assert_int_equal(fx->got.f[0].traffic_volume, 1);
    tsi_engine_stats st;
    tsi_engine_get_stats(fx->eng, &st);
    assert_int_equal(st.duplicates, 2);
    assert_int_equal(st.accepted, 3);
    fx_free(fx);
}

static void test_late_and_boundaries(void **state)
{
    (void)state;
    fixture *fx = fx_new();
    tsi_error err;
    tsi_push_info info;
    /* minute T0 gets a message at +5 s */
    push_ok(fx, mk(fx, TSI_MSG_BSM, 60, T0 + 5000, 0, 0, 10, 0, 0));
    /* a message exactly on the boundary belongs to the next minute */
    tsi_msg b = mk(fx, TSI_MSG_BSM, 61, T0 + 60000, 0, 10, 10, 0, 0);
    assert_int_equal(tsi_engine_push(fx->eng, &b, &info, &err), 0);
    assert_int_equal(info.minute_ms, T0 + 60000);
    /* clock exactly at end + grace (70 s): minute T0 still open, a message for it is
     * accepted */
    push_ok(fx, mk(fx, TSI_MSG_BSM, 62, T0 + 70000, 0, 20, 10, 0, 0));
    assert_int_equal(fx->got.n, 0);
    push_ok(fx, mk(fx, TSI_MSG_BSM, 63, T0 + 59900, 0, 30, 10, 0, 0));
    /* the clock passes end + grace by 1 s: minute T0 closes */
    push_ok(fx, mk(fx, TSI_MSG_BSM, 64, T0 + 71000, 0, 40, 10, 0, 0));
    assert_int_equal(fx->got.n, 1);
    assert_int_equal(fx->got.f[0].minute_ms, T0);
    assert_int_equal(fx->got.f[0].traffic_volume, 2); /* ids 60 and 63 */
    /* a message for minute T0 now is late: rejected and counted */
    tsi_msg late = mk(fx, TSI_MSG_BSM, 65, T0 + 30000, 0, 50, 10, 0, 0);
    assert_int_equal(tsi_engine_push(fx->eng, &late, &info, &err), TSI_E_LATE);
    assert_int_equal(info.minute_ms, T0);
    assert_int_equal(info.intersection_id, 65536 + 4101);
    tsi_engine_stats st;
    tsi_engine_get_stats(fx->eng, &st);
    assert_int_equal(st.late, 1);
    assert_int_equal(st.open_windows, 1);
    tsi_engine_flush(fx->eng);
    assert_int_equal(fx->got.n, 2);
    assert_int_equal(fx->got.f[1].minute_ms, T0 + 60000);
    assert_int_equal(fx->got.f[1].traffic_volume, 3); /* 61, 62, 64 */
    fx_free(fx);

    /* advance() closes windows while the stream is quiet */
    fx = fx_new();
    push_ok(fx, mk(fx, TSI_MSG_BSM, 60, T0 + 5000, 0, 0, 10, 0, 0));
    tsi_engine_advance(fx->eng, T0 + 70000);
    assert_int_equal(fx->got.n, 0);
    tsi_engine_advance(fx->eng, T0 + 70001);
    assert_int_equal(fx->got.n, 1);
    tsi_engine_advance(fx->eng, T0); /* never backwards */
    tsi_engine_get_stats(fx->eng, &st);
    assert_int_equal(st.clock_ms, T0 + 70001);
    fx_free(fx);
    assert_int_equal(tsi_minute_of(-1), -60000);
    assert_int_equal(tsi_minute_of(T0 + 59999), T0);
}

static void test_psm_only_minute(void **state)
{
    (void)state;
    fixture *fx = fx_new();
    push_ok(fx, mk(fx, TSI_MSG_PSM, 70, T0 + 1000, 0, 0, 1.2, 0, NAN));
    push_ok(fx, mk(fx, TSI_MSG_PSM, 71, T0 + 1000, 3, 0, 1.2, 180, NAN));
    push_ok(fx, mk(fx, TSI_MSG_PSM, 70, T0 + 1500, 0, 0.6, 1.2, 0, NAN));
    tsi_engine_flush(fx->eng);
    assert_int_equal(fx->got.n, 1);
    assert_int_equal(fx->got.f[0].traffic_volume, 0);
    assert_int_equal(fx->got.f[0].vru_count, 2);
    assert_int_equal(fx->got.f[0].psm_messages, 3);
    assert_true(fx->got.f[0].avg_speed == 0 && fx->got.f[0].speed_stddev == 0);
    assert_int_equal(fx->got.f[0].vru_event_count, 0);
    fx_free(fx);
}

static void test_windows_in_order(void **state)
{
    (void)state;
    /* two intersections, three minutes, out of order pushes within grace */
    tsi_registry *reg = tsi_registry_new(150);
    tsi_map_intersection a = isect(0, 9, REF_LAT, REF_LON, 1);
    tsi_map_intersection b = isect(0, 3, REF_LAT + 0.01, REF_LON, 1);
    tsi_registry_upsert(reg, &a);
    tsi_registry_upsert(reg, &b);
    collected got = {0};
    tsi_engine *e = tsi_engine_new(NULL, reg, on_window, &got);
    tsi_msg m;
    memset(&m, 0, sizeof m);
    m.type = TSI_MSG_BSM;
    m.speed = m.heading = m.accel_lon = m.length_m = NAN;
    int64_t ts[] = {T0 + 61000, T0 + 1000, T0 + 121000, T0 + 65000};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 2; k++) {
            m.id = i * 10 + k;
            m.timestamp_ms = ts[i];
            m.lat = k ? REF_LAT + 0.01 : REF_LAT;
            m.lon = REF_LON;
            assert_int_equal(tsi_engine_push(e, &m, NULL, NULL), 0);
        }
    tsi_engine_flush(e);
    assert_int_equal(got.n, 6);
    int64_t want_min[] = {T0, T0, T0 + 60000, T0 + 60000, T0 + 120000, T0 + 120000};
    int64_t want_id[] = {3, 9, 3, 9, 3, 9};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(got.f[i].minute_ms, want_min[i]);
        assert_int_equal(got.f[i].intersection_id, want_id[i]);
    }
    assert_int_equal(got.f[2].traffic_volume, 2); /* minute 1 at id 3: 2 messages */
    tsi_engine_free(e);
    tsi_registry_free(reg);
}

static void test_registry_assignment(void **state)
{
    (void)state;
    tsi_registry *r = tsi_registry_new(0); /* default radius 150 m */
    tsi_map_intersection a = isect(1, 100, REF_LAT, REF_LON, 1);
    /* a 400 m eastbound approach lane west of A along y = 0, lane width 3.0 m */
    tsi_ltp ltp;
    tsi_ltp_init(&ltp, REF_LAT, REF_LON);
    double la[2], lo[2];
    tsi_ltp_to_ll(&ltp, -10, 0, &la[0], &lo[0]);
    tsi_ltp_to_ll(&ltp, -400, 0, &la[1], &lo[1]);
    tsi_lane lane = {.lane_id = 1, .type = TSI_LANE_VEHICLE, .nnodes = 2, .lat = la, .lon = lo};
    a.lanes = &lane;
    a.nlanes = 1;
    a.vehicle_lanes = 1;
    a.lane_width_m = 3.0;
    assert_int_equal(tsi_registry_upsert(r, &a), 1);
    /* B 200 m east of A */
    double blat, blon;
    tsi_ltp_to_ll(&ltp, 200, 0, &blat, &blon);
    tsi_map_intersection b = isect(1, 200, blat, blon, 1);
    assert_int_equal(tsi_registry_upsert(r, &b), 1);
    assert_int_equal(tsi_registry_count(r), 2);
    assert_int_equal(tsi_registry_find(r, 65536 + 200)->lane_count, 0);
    assert_int_equal(tsi_registry_find(r, 65536 + 100)->lane_count, 1);

    tsi_msg m;
    memset(&m, 0, sizeof m);
    const tsi_isect *got;
    tsi_error err;
#define AT(x, y) tsi_ltp_to_ll(&ltp, (x), (y), &m.lat, &m.lon)
    AT(20, 5); /* 20.6 m from A, 180 m from B */
    assert_int_equal(tsi_registry_assign(r, &m, &got, &err), 0);
    assert_int_equal(got->id, 65536 + 100);
    AT(120, 0); /* 120 m from A, 80 m from B: nearest wins */
    assert_int_equal(tsi_registry_assign(r, &m, &got, &err), 0);
    assert_int_equal(got->id, 65536 + 200);
    AT(-300, 1.4); /* 300 m out, 1.4 m off the lane centre (< 1.5 half width) */
    assert_int_equal(tsi_registry_assign(r, &m, &got, &err), 0);
    assert_int_equal(got->id, 65536 + 100);
    AT(-300, 1.6); /* 1.6 m off: outside the footprint and the radius */
    assert_int_equal(tsi_registry_assign(r, &m, &got, &err), TSI_E_UNMATCHED);
    assert_null(got);
    assert_non_null(strstr(err.detail, "nearest refPoint 300 m"));
    AT(0, 151); /* 151 m north of A: outside 150 m */
    assert_int_equal(tsi_registry_assign(r, &m, &got, &err), TSI_E_UNMATCHED);
    AT(0, 149);
    assert_int_equal(tsi_registry_assign(r, &m, &got, &err), 0);
    m.lat = 10;
    m.lon = 10; /* far from everything */
    assert_int_equal(tsi_registry_assign(r, &m, &got, &err), TSI_E_UNMATCHED);
    /* a configured locationName wins over geometry */
    tsi_registry_map_location(r, "US-29 & Nutley", 65536 + 200);
    snprintf(m.location_name, sizeof m.location_name, "US-29 & Nutley");
    assert_int_equal(tsi_registry_assign(r, &m, &got, &err), 0);
    assert_int_equal(got->id, 65536 + 200);
    /* a name mapped to an unknown id falls back to geometry */
    tsi_registry_map_location(r, "Nowhere", 999);
    snprintf(m.location_name, sizeof m.location_name, "Nowhere");
    assert_int_equal(tsi_registry_assign(r, &m, &got, &err), TSI_E_UNMATCHED);

    /* revisions: same or older ignored, newer replaces, 127 → 0 wraps as newer */
    tsi_map_intersection b2 = isect(1, 200, blat, blon, 1);
    snprintf(b2.name, sizeof b2.name, "renamed");
    assert_int_equal(tsi_registry_upsert(r, &b2), 0);
    b2.revision = 2;
    assert_int_equal(tsi_registry_upsert(r, &b2), 1);
    assert_string_equal(tsi_registry_find(r, 65536 + 200)->name, "renamed");
    b2.revision = 127;
    assert_int_equal(tsi_registry_upsert(r, &b2), 0); /* 127 is 3 steps behind 2 */
    b2.revision = 60;
    assert_int_equal(tsi_registry_upsert(r, &b2), 1);
    b2.revision = 120;
    assert_int_equal(tsi_registry_upsert(r, &b2), 1);
    b2.revision = 2; /* 120 → 2: 10 steps ahead modulo 128 */
    assert_int_equal(tsi_registry_upsert(r, &b2), 1);
    assert_int_equal(tsi_registry_count(r), 2);

    /* 1,000 intersections on a 30 × 34 grid 500 m apart: each message goes to its own */
    tsi_registry *big = tsi_registry_new(150);
    for (int i = 0; i < 1000; i++) {
        double la2, lo2;
        tsi_ltp_to_ll(&ltp, (i % 30) * 500.0, (i / 30) * 500.0, &la2, &lo2);
        tsi_map_intersection x = isect(0, i, la2, lo2, 1);
        tsi_registry_upsert(big, &x);
    }
    memset(&m, 0, sizeof m);
    for (int i = 0; i < 1000; i += 7) {
        AT((i % 30) * 500.0 + 40, (i / 30) * 500.0 - 30);
        assert_int_equal(tsi_registry_assign(big, &m, &got, &err), 0);
        assert_int_equal(got->id, i);
    }
    AT(250, 250); /* between four intersections, 354 m from each */
    assert_int_equal(tsi_registry_assign(big, &m, &got, &err), TSI_E_UNMATCHED);
    /* removed (gone from MapData): its messages are no longer its, the others' still are */
    AT(14 * 500.0 + 40, 7 * 500.0 - 30); /* next to intersection 224 */
    assert_int_equal(tsi_registry_assign(big, &m, &got, &err), 0);
    assert_int_equal(got->id, 224);
    assert_int_equal(tsi_registry_remove(big, 224), 1);
    assert_int_equal(tsi_registry_remove(big, 224), 0);
    assert_int_equal(tsi_registry_count(big), 999);
    assert_null(tsi_registry_find(big, 224));
    assert_int_equal(tsi_registry_assign(big, &m, &got, &err), TSI_E_UNMATCHED);
    for (int i = 0; i < 1000; i += 7) {
        if (i == 224)
            continue;
        AT((i % 30) * 500.0 + 40, (i / 30) * 500.0 - 30);
        assert_int_equal(tsi_registry_assign(big, &m, &got, &err), 0);
        assert_int_equal(got->id, i);
        assert_int_equal(tsi_registry_find(big, i)->id, i);
    }
#undef AT
    tsi_registry_free(big);
    tsi_registry_free(r);
}

/* ---- clock sanity in a real capture (tests/fixtures/messages/capture.jsonl) ---------- */

typedef struct capture {
    tsi_msg *m;
    int n, cap;
} capture;

static void capture_msg(void *ud, int index, const tsi_msg *m, int rc, const tsi_error *err)
{
    (void)index;
    (void)err;
    capture *c = ud;
    if (rc < 0)
        return; /* the fixture's two hostile lines */
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 128;
        c->m = realloc(c->m, (size_t)c->cap * sizeof *c->m);
    }
    c->m[c->n++] = *m;
}

static char *fixture_text(const char *rel, size_t *len)
{
    char path[1024];
    const char *root = getenv("TSI_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/fixtures/%s", root ? root : TSI_SOURCE_DIR, rel);
    tsi_error e = {0};
    char *t = tsi_read_file(path, len, 1u << 24, &e);
    if (!t)
        fail_msg("%s: %s", path, e.detail);
    return t;
}

enum { REF_WALL, REF_MEDIAN };

/* Pushes the messages with the reference clock of the mode: REF_WALL, each message's own
 * real time + 300 ms (the receiver's wall clock; an inserted message has the real time of
 * the message it copies); REF_MEDIAN, the median of the 16 messages before and after
 * (what tsi features does). Returns the engine's stats. */
static tsi_engine_stats run_capture(tsi_registry *reg, const tsi_msg *m, const int64_t *real, int n,
                                    int mode, int64_t max_skew_ms, collected *got)
{
    tsi_feature_config fc;
    tsi_feature_config_default(&fc);
    fc.max_skew_ms = max_skew_ms;
    memset(got, 0, sizeof *got);
    tsi_engine *e = tsi_engine_new(&fc, reg, on_window, got);
    for (int i = 0; i < n; i++) {
        int64_t ref = real[i] + 300;
        if (mode == REF_MEDIAN) {
            int64_t ts[33];
            int k = 0;
            for (int j = i - 16; j <= i + 16; j++)
                if (j >= 0 && j < n)
                    ts[k++] = m[j].timestamp_ms;
            ref = tsi_median_ms(ts, k);
        }
        tsi_error err;
        (void)tsi_engine_push_ref(e, &m[i], ref, NULL, &err);
    }
    tsi_engine_flush(e);
    tsi_engine_stats st;
    tsi_engine_get_stats(e, &st);
    tsi_engine_free(e);
    return st;
}

static void test_clock_skew_in_capture(void **state)
{
    (void)state;
    size_t len;
    char *mapjs = fixture_text("mapdata/corridor.json", &len);
    tsi_mapdata md;
    tsi_error err = {0};
    assert_int_equal(tsi_mapdata_decode(mapjs, len, &md, &err), 0);
    tsi_registry *reg = tsi_registry_new(150);
    assert_true(tsi_registry_upsert_all(reg, &md) > 0);
    char *text = fixture_text("messages/capture.jsonl", &len);
    capture c = {0};
    tsi_decoder dec;
    tsi_decoder_init(&dec);
    for (char *a = text, *nl; a < text + len; a = nl + 1) {
        nl = memchr(a, '\n', (size_t)(text + len - a));
        if (!nl)
            nl = text + len;
        if (nl > a)
            (void)tsi_frame_decode(&dec, a, (size_t)(nl - a), capture_msg, &c, &err);
    }
    tsi_decoder_free(&dec);
    assert_true(c.n > 80);

    /* the capture as it is: the windows every case must give again */
    int64_t *real = malloc((size_t)(c.n + 8) * sizeof *real);
    for (int i = 0; i < c.n; i++)
        real[i] = c.m[i].timestamp_ms;
    static collected base, got;
    tsi_engine_stats st = run_capture(reg, c.m, real, c.n, REF_WALL, 120000, &base);
    assert_int_equal(st.late, 0);
    assert_int_equal(st.skewed, 0);
    assert_true(base.n >= 2);

    static const struct {
        const char *name;
        int at;         /* the copy goes before message `at` (a copy of it) */
        int copies;     /* a burst: this many copies, other ids */
        int64_t offset; /* added to the copy's timestamp */
        int mode;
        int64_t max_skew_ms;
        long long skewed; /* expected; -1: the windows differ from the base (today) */
    } cases[] = {
        {"a day ahead, wall clock", 40, 1, 86400000, REF_WALL, 120000, 1},
        {"a day ahead, median of the stream", 40, 1, 86400000, REF_MEDIAN, 120000, 1},
        {"a burst of 5 a day ahead, median", 40, 5, 86400000, REF_MEDIAN, 120000, 5},
        {"the first message a day ahead, median", 0, 1, 86400000, REF_MEDIAN, 120000, 1},
        {"an hour behind, wall clock", 60, 1, -3600000, REF_WALL, 120000, 1},
        {"an hour behind, median", 60, 1, -3600000, REF_MEDIAN, 120000, 1},
        {"121 s ahead, wall clock", 40, 1, 121000, REF_WALL, 120000, 1},
        {"a year ahead, the largest skew allowed", 40, 1, 366LL * 86400000, REF_WALL, 31536000000LL,
         1},
        {"a day ahead, check off: today's engine loses the stream", 40, 1, 86400000, REF_WALL, 0,
         -1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int n = c.n + cases[k].copies;
        tsi_msg *m = malloc((size_t)n * sizeof *m);
        int64_t *r = malloc((size_t)n * sizeof *r);
        int o = 0;
        for (int i = 0; i < c.n; i++) {
            if (i == cases[k].at)
                for (int j = 0; j < cases[k].copies; j++) {
                    m[o] = c.m[i];
                    m[o].id = 900000 + j;
                    m[o].timestamp_ms += cases[k].offset;
                    r[o++] = c.m[i].timestamp_ms;
                }
            m[o] = c.m[i];
            r[o++] = c.m[i].timestamp_ms;
        }
        st = run_capture(reg, m, r, n, cases[k].mode, cases[k].max_skew_ms, &got);
        bool same = got.n == base.n;
        for (int w = 0; same && w < base.n; w++)
            same = got.f[w].intersection_id == base.f[w].intersection_id &&
                   got.f[w].minute_ms == base.f[w].minute_ms &&
                   got.f[w].traffic_volume == base.f[w].traffic_volume &&
                   got.f[w].vru_count == base.f[w].vru_count &&
                   got.f[w].bsm_messages == base.f[w].bsm_messages &&
                   got.f[w].psm_messages == base.f[w].psm_messages;
        if (cases[k].skewed >= 0) {
            if (!same || st.skewed != cases[k].skewed || st.late != 0)
                fail_msg("%s: windows %s, skewed %lld (want %lld), late %lld", cases[k].name,
                         same ? "as without it" : "differ", st.skewed, cases[k].skewed, st.late);
        } else if (same || st.late == 0) {
            fail_msg("%s: expected the stream to be lost (late %lld)", cases[k].name, st.late);
        }
        free(m);
        free(r);
    }
    free(real);
    free(c.m);
    free(text);
    free(mapjs);
    tsi_mapdata_free(&md);
    tsi_registry_free(reg);
}

static void test_median(void **state)
{
    (void)state;
    static const struct {
        int n;
        int64_t v[9], want;
    } cases[] = {
        {1, {5}, 5},
        {2, {9, 3}, 3}, /* the lower middle */
        {3, {3, 1, 2}, 2},
        {5, {7, 7, 7, 1, 7}, 7},
        {6, {6, 5, 4, 3, 2, 1}, 3},
        {9, {INT64_MAX, INT64_MIN, 0, 0, 0, 1, -1, 2, -2}, 0},
        {7, {4, 4, 4, 4, 4, 4, 4}, 4},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int64_t v[9];
        memcpy(v, cases[k].v, sizeof v);
        assert_int_equal(tsi_median_ms(v, cases[k].n), cases[k].want);
    }
}

/* locationName map (tsi features / tsi collect --location-map): valid and hostile maps */
static void test_location_map_json(void **state)
{
    (void)state;
    fixture *fx = fx_new();
    tsi_error err;
    static const struct {
        const char *js;
        int want; /* names mapped, or the error */
    } cases[] = {
        {"{\"US-29 & Nutley\": 69637, \"Other\": 0}", 2},
        {"{}", 0},
        {"[]", TSI_E_NOT_OBJECT},
        {"\"x\"", TSI_E_NOT_OBJECT},
        {"{\"a\": -1}", TSI_E_INVALID},
        {"{\"a\": 1.5}", TSI_E_INVALID},
        {"{\"a\": \"69637\"}", TSI_E_INVALID},
        {"{\"a\": 1, \"b\": null}", TSI_E_INVALID},
        {"{\"a\": 99999999999999999999}", TSI_E_INVALID},
        {"{\"a\": 1", TSI_E_JSON_TRUNCATED},
        {"", TSI_E_JSON_TRUNCATED},
        {"{\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\": 1}",
         TSI_E_INVALID},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int rc = tsi_registry_map_locations_json(fx->reg, cases[k].js, strlen(cases[k].js), &err);
        if (rc != cases[k].want &&
            !(cases[k].want < 0 && rc < 0 && cases[k].want == TSI_E_JSON_TRUNCATED))
            fail_msg("map %s: %d, want %d", cases[k].js, rc, cases[k].want);
    }
    /* a message 5 km away named by the map goes to its intersection; a bad map applied
     * nothing (its first entry is not mapped) */
    assert_int_equal(
        tsi_registry_map_locations_json(fx->reg, "{\"Far\": 1, \"Bad\": -1}", 21, &err),
        TSI_E_INVALID);
    tsi_msg m = mk(fx, TSI_MSG_BSM, 1, T0, 5000, 0, 10, 0, 0);
    const tsi_isect *is;
    snprintf(m.location_name, sizeof m.location_name, "Far");
    assert_int_equal(tsi_registry_assign(fx->reg, &m, &is, &err), TSI_E_UNMATCHED);
    assert_int_equal(tsi_registry_map_locations_json(fx->reg, "{\"Far\": 69637}", 14, &err), 1);
    assert_int_equal(tsi_registry_assign(fx->reg, &m, &is, &err), 0);
    assert_int_equal(is->id, 69637);
    fx_free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ttc_function),
        cmocka_unit_test(test_rear_end),
        cmocka_unit_test(test_pedestrian_crossing),
        cmocka_unit_test(test_no_self_conflict),
        cmocka_unit_test(test_pair_counted_once),
        cmocka_unit_test(test_hard_braking),
        cmocka_unit_test(test_speed_features),
        cmocka_unit_test(test_dedupe),
        cmocka_unit_test(test_dedupe_out_of_order),
        cmocka_unit_test(test_late_and_boundaries),
        cmocka_unit_test(test_psm_only_minute),
        cmocka_unit_test(test_windows_in_order),
        cmocka_unit_test(test_registry_assignment),
        cmocka_unit_test(test_clock_skew_in_capture),
        cmocka_unit_test(test_median),
        cmocka_unit_test(test_location_map_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
