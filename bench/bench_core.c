/* bench/bench_core.c — the domain core on a realistic stream, one core.
 *
 *   bench_core --sample FILE [--minutes 60] [--intersections 1000] [--sample-count 200000]
 *
 * 1. Writes FILE: sample-count BSMs (JSON lines, shaped like tests/fixtures/messages/
 *    bsm.json, ~800 bytes) and times tsi_bsm_decode over them (decode only, best of 3):
 *    the figure bench/core.sh sets beside Python's json.loads over the same lines.
 * 2. The pipeline: N intersections (MapData-like, 4 vehicle lanes each, 600 m apart),
 *    each with 20 vehicles and 2 pedestrians reporting at 2 Hz, one stream frame per
 *    intersection per half second (22 messages), for `minutes` simulated minutes:
 *    decode + assign (geometry, no locationName map) + window + dedupe + features
 *    (TTC conflicts included), windows closing as the stream clock moves. Only the time
 *    spent inside tsi_frame_decode (which pushes into the engine) is counted; building
 *    the frame text is not. RSS is sampled every simulated minute (it must stay flat).
 * Prints `key=value` lines for bench/core.sh. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/engine.h"
#include "core/registry.h"
#include "vcc/decode.h"

#define T0        1764064800000LL /* 2025-11-25T10:00:00Z */
#define NVEH      20
#define NVRU      2
#define HALF_SPAN 145.0 /* vehicles drive from -145 m to +145 m through the centre */

/* CPU time of this thread: "per second on one core" even when the machine is shared */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long rss_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kn = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, kn) == 0)
            v = atol(line + kn);
    if (f)
        fclose(f);
    return v;
}

/* ---- fast text building ---- */

#define PUT(o, lit) (memcpy((o), (lit), sizeof(lit) - 1), (o) + sizeof(lit) - 1)

static char *put_u64(char *o, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *o++ = tmp[--n];
    return o;
}

static char *put_fixed(char *o, double v, int dec)
{
    static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
    if (v < 0) {
        *o++ = '-';
        v = -v;
    }
    uint64_t scaled = (uint64_t)llround(v * p10[dec]);
    uint64_t ip = scaled / (uint64_t)p10[dec], fp = scaled % (uint64_t)p10[dec];
    o = put_u64(o, ip);
    *o++ = '.';
    for (int k = dec - 1; k >= 0; k--) {
        o[k] = (char)('0' + fp % 10);
        fp /= 10;
    }
    return o + dec;
}

typedef struct isect_model {
    int64_t id;
    double lat, lon;
    tsi_ltp ltp;
} isect_model;

/* Vehicle v of intersection i at time t (ms since T0): position, speed, heading, accel,
 * temporary id (it rotates each time the vehicle re-enters). */
typedef struct state {
    double x, y, speed, heading, accel;
    uint64_t id;
    int msg_cnt;
} state;

static void vehicle_at(int i, int v, int64_t t, state *s)
{
    int lane = v % 4;            /* 0 northbound, 1 eastbound, 2 southbound, 3 westbound */
    double speed = 9 + 2 * lane; /* one speed per lane: no vehicle drives through another */
    double travel = speed * t / 1000.0 + (v / 4) * 58.0;
    long lap = (long)floor(travel / (2 * HALF_SPAN));
    double along = travel - lap * 2 * HALF_SPAN - HALF_SPAN; /* -150 .. 150 */
    static const double hx[] = {0, 1, 0, -1}, hy[] = {1, 0, -1, 0};
    /* right-hand lanes, 5.4 m from the centre line (a median between directions) */
    s->x = hx[lane] * along + hy[lane] * 5.4;
    s->y = hy[lane] * along - hx[lane] * 5.4;
    s->speed = speed;
    s->heading = lane * 90.0;
    s->accel = (v % 10 == 3 && along > -40 && along < -30) ? -3.6 : 0.05 * ((v % 5) - 2);
    s->id = ((uint64_t)i * 1000 + (uint64_t)v) * 4096 + (uint64_t)(lap & 4095);
    s->id %= 4294967296ull;
    s->msg_cnt = (int)((t / 500 + v) % 128);
}

static void vru_at(int i, int p, int64_t t, state *s)
{
    double span = 24, speed = 1.3;
    double travel = speed * t / 1000.0 + p * 7.0;
    long lap = (long)floor(travel / span);
    double along = travel - lap * span - span / 2; /* -12 .. 12 */
    bool back = lap % 2;
    s->x = back ? -along : along;
    s->y = p ? 12 : -12;
    s->speed = speed;
    s->heading = back ? 270 : 90;
    s->accel = NAN;
    s->id = 3000000000ull + (uint64_t)i * 16 + (uint64_t)p;
    s->msg_cnt = (int)((t / 500 + p) % 128);
}

static const char B64[] =
    "ADwAjlMn0h3hX0hEDkq2d0i+4d0AAlH//3/w8H/ehOXRn5Rn6X5l8AABAAZCB+AAAA3x8H/ehOXRn5Rn6X5l8AABA==";

static char *put_bsm(char *o, const isect_model *im, int64_t ts, const state *s, int rsu)
{
    double lat, lon;
    tsi_ltp_to_ll(&im->ltp, s->x, s->y, &lat, &lon);
    o = PUT(o, "{\"timestamp\":");
    o = put_u64(o, (uint64_t)ts);
    o = PUT(o, ",\"rsuName\":\"rsu-");
    o = put_u64(o, (uint64_t)rsu);
    o = PUT(o, "\",\"format\":\"JSON\",\"locationName\":\"Corridor node ");
    o = put_u64(o, (uint64_t)rsu);
    o = PUT(o, "\",\"clientId\":\"vcc-public\",\"sourceType\":\"RSU\",\"vendorName\":"
               "\"Commsignia\",\"bsmJ2735\":\"");
    o = PUT(o, B64);
    o = PUT(o, "\",\"bsmJson\":{\"coreData\":{\"msgCnt\":");
    o = put_u64(o, (uint64_t)s->msg_cnt);
    o = PUT(o, ",\"id\":");
    o = put_u64(o, s->id);
    o = PUT(o, ",\"secMark\":");
    o = put_u64(o, (uint64_t)(ts % 60000));
    o = PUT(o, ",\"lat\":");
    o = put_fixed(o, lat, 7);
    o = PUT(o, ",\"lon\":");
    o = put_fixed(o, lon, 7);
    o = PUT(o, ",\"elev\":118.3,\"accuracy\":{\"semiMajor\":1.5,\"semiMinor\":1.0,"
               "\"orientation\":0.0},\"transmission\":\"forwardGears\",\"speed\":");
    o = put_fixed(o, s->speed, 2);
    o = PUT(o, ",\"heading\":");
    o = put_fixed(o, s->heading, 4);
    o = PUT(o, ",\"angle\":0.0,\"accelSet\":{\"lon\":");
    o = put_fixed(o, s->accel, 2);
    o = PUT(o, ",\"lat\":0.12,\"vert\":0.0,\"yaw\":0.5},\"brakes\":{\"wheelBrakes\":\"00000\","
               "\"traction\":\"unavailable\",\"abs\":\"off\",\"scs\":\"unavailable\","
               "\"brakeBoost\":\"unavailable\",\"auxBrakes\":\"unavailable\"},\"size\":"
               "{\"width\":190,\"length\":480}}}}");
    return o;
}

static char *put_psm(char *o, const isect_model *im, int64_t ts, const state *s, int rsu)
{
    double lat, lon;
    tsi_ltp_to_ll(&im->ltp, s->x, s->y, &lat, &lon);
    o = PUT(o, "{\"timestamp\":");
    o = put_u64(o, (uint64_t)ts);
    o = PUT(o, ",\"rsuName\":\"rsu-");
    o = put_u64(o, (uint64_t)rsu);
    o = PUT(o, "\",\"format\":\"JSON\",\"clientId\":\"vcc-public\",\"sourceType\":\"RSU\","
               "\"psmJson\":{\"basicType\":1,\"secMark\":");
    o = put_u64(o, (uint64_t)(ts % 60000));
    o = PUT(o, ",\"msgCnt\":");
    o = put_u64(o, (uint64_t)s->msg_cnt);
    o = PUT(o, ",\"id\":");
    o = put_u64(o, s->id);
    o = PUT(o, ",\"position\":{\"lat\":");
    o = put_fixed(o, lat, 7);
    o = PUT(o, ",\"lon\":");
    o = put_fixed(o, lon, 7);
    o = PUT(o, ",\"elev\":118.0},\"accuracy\":{\"semiMajor\":2.0,\"semiMinor\":2.0,"
               "\"orientation\":0.0},\"speed\":");
    o = put_fixed(o, s->speed, 2);
    o = PUT(o, ",\"heading\":");
    o = put_fixed(o, s->heading, 1);
    o = PUT(o, "}}");
    return o;
}

/* ---- pipeline callbacks ---- */

typedef struct counters {
    tsi_engine *eng;
    long long msgs, bsm, rejected, push_err;
    long long windows, conflicts, vru_events, veh_events, hard_braking, volume;
} counters;

static void on_msg(void *ud, int index, const tsi_msg *m, int rc, const tsi_error *err)
{
    counters *c = ud;
    (void)index;
    (void)err;
    c->msgs++;
    if (rc < 0) {
        c->rejected++;
        return;
    }
    c->bsm += m->type == TSI_MSG_BSM;
    if (c->eng && tsi_engine_push(c->eng, m, NULL, NULL) < 0)
        c->push_err++;
}

static void on_window(void *ud, const tsi_window_result *r)
{
    counters *c = ud;
    c->windows++;
    c->conflicts += r->nconflicts;
    c->vru_events += r->features.vru_event_count;
    c->veh_events += r->features.vehicle_event_count;
    c->hard_braking += r->features.hard_braking_count;
    c->volume += r->features.traffic_volume;
}

int main(int argc, char **argv)
{
    const char *sample = NULL;
    int minutes = 60, nisect = 1000, nsample = 200000;
    for (int a = 1; a + 1 < argc; a += 2) {
        if (strcmp(argv[a], "--sample") == 0)
            sample = argv[a + 1];
        else if (strcmp(argv[a], "--minutes") == 0)
            minutes = atoi(argv[a + 1]);
        else if (strcmp(argv[a], "--intersections") == 0)
            nisect = atoi(argv[a + 1]);
        else if (strcmp(argv[a], "--sample-count") == 0)
            nsample = atoi(argv[a + 1]);
    }
    if (sample == NULL || minutes < 1 || nisect < 1 || nsample < 1) {
        fprintf(stderr, "usage: bench_core --sample FILE [--minutes N] [--intersections N] "
                        "[--sample-count N]\n");
        return 2;
    }

    /* intersections: a 40-wide grid 600 m apart, each with 4 vehicle lanes of 150 m */
    isect_model *im = calloc((size_t)nisect, sizeof *im);
    tsi_registry *reg = tsi_registry_new(150);
    tsi_ltp base;
    tsi_ltp_init(&base, 38.80, -77.40);
    for (int i = 0; i < nisect; i++) {
        im[i].id = 65536 + i;
        tsi_ltp_to_ll(&base, (i % 40) * 600.0, (i / 40) * 600.0, &im[i].lat, &im[i].lon);
        tsi_ltp_init(&im[i].ltp, im[i].lat, im[i].lon);
        tsi_map_intersection x;
        memset(&x, 0, sizeof x);
        x.region = 1;
        x.local_id = i;
        x.id = im[i].id;
        x.ref_lat = im[i].lat;
        x.ref_lon = im[i].lon;
        x.lane_width_m = 3.6;
        x.speed_limit = 20;
        tsi_lane lanes[4];
        double la[4][2], lo[4][2];
        static const double hx[] = {0, 1, 0, -1}, hy[] = {1, 0, -1, 0};
        for (int l = 0; l < 4; l++) {
            /* the ingress half of each approach */
            for (int k = 0; k < 2; k++) {
                double along = k ? -HALF_SPAN : -5;
                tsi_ltp_to_ll(&im[i].ltp, hx[l] * along + hy[l] * 5.4, hy[l] * along - hx[l] * 5.4,
                              &la[l][k], &lo[l][k]);
            }
            lanes[l] = (tsi_lane){.lane_id = l + 1,
                                  .type = TSI_LANE_VEHICLE,
                                  .ingress_approach = l + 1,
                                  .egress_approach = -1,
                                  .nnodes = 2,
                                  .lat = la[l],
                                  .lon = lo[l]};
        }
        x.lanes = lanes;
        x.nlanes = 4;
        x.vehicle_lanes = 4;
        tsi_registry_upsert(reg, &x);
    }

    /* 1. the sample for the parse comparison */
    FILE *f = fopen(sample, "w");
    if (!f) {
        perror(sample);
        return 1;
    }
    char *line = malloc(4096);
    size_t total_bytes = 0;
    for (int k = 0; k < nsample; k++) {
        int i = k % nisect, v = (k / nisect) % NVEH;
        int64_t t = (int64_t)(k / (nisect * NVEH)) * 500 + (v * 13 % 97);
        state s;
        vehicle_at(i, v, t, &s);
        char *e = put_bsm(line, &im[i], T0 + t, &s, i);
        *e++ = '\n';
        fwrite(line, 1, (size_t)(e - line), f);
        total_bytes += (size_t)(e - line - 1);
    }
    fclose(f);
    /* decode-only over the same lines */
    f = fopen(sample, "r");
    char **lines = malloc((size_t)nsample * sizeof *lines);
    size_t *lens = malloc((size_t)nsample * sizeof *lens);
    for (int k = 0; k < nsample; k++) {
        size_t cap = 0;
        lines[k] = NULL;
        ssize_t n = getline(&lines[k], &cap, f);
        lens[k] = n > 0 ? (size_t)n - 1 : 0;
    }
    fclose(f);
    double best = 1e30;
    long long bad = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_s();
        tsi_msg m;
        tsi_error err;
        for (int k = 0; k < nsample; k++)
            if (tsi_bsm_decode(lines[k], lens[k], &m, &err) != 0)
                bad++;
        double dt = now_s() - t0;
        if (dt < best)
            best = dt;
    }
    for (int k = 0; k < nsample; k++)
        free(lines[k]);
    free(lines);
    free(lens);
    printf("sample_messages=%d\nsample_avg_bytes=%.0f\ndecode_only_msgs_per_s=%.0f\n"
           "decode_only_rejected=%lld\n",
           nsample, (double)total_bytes / nsample, nsample / best, bad);
    fflush(stdout);

    /* 2. the pipeline */
    counters c;
    memset(&c, 0, sizeof c);
    /* BENCH_CORE_NO_ENGINE=1: frames decoded but not pushed (to split the cost) */
    const char *noeng = getenv("BENCH_CORE_NO_ENGINE");
    c.eng = noeng && *noeng == '1' ? NULL : tsi_engine_new(NULL, reg, on_window, &c);
    tsi_decoder dec;
    tsi_decoder_init(&dec);
    char *frame = malloc(64 * 1024);
    double busy = 0, wall0 = wall_s();
    long rss_first = 0, rss_5 = 0, rss_last = 0, rss_max = 0;
    printf("rss_kb_by_minute=");
    for (int minute = 0; minute < minutes; minute++) {
        for (int half = 0; half < 120; half++) {
            int64_t t = (int64_t)minute * 60000 + half * 500;
            for (int i = 0; i < nisect; i++) {
                char *o = frame;
                *o++ = '[';
                for (int v = 0; v < NVEH; v++) {
                    state s;
                    int64_t tj = t + (v * 13 + i) % 97; /* receive-time jitter */
                    vehicle_at(i, v, tj, &s);
                    o = put_bsm(o, &im[i], T0 + tj, &s, i);
                    *o++ = ',';
                }
                for (int p = 0; p < NVRU; p++) {
                    state s;
                    int64_t tj = t + (p * 29 + i) % 97;
                    vru_at(i, p, tj, &s);
                    o = put_psm(o, &im[i], T0 + tj, &s, i);
                    *o++ = p + 1 < NVRU ? ',' : ']';
                }
                double t0 = now_s();
                tsi_frame_decode(&dec, frame, (size_t)(o - frame), on_msg, &c, NULL);
                busy += now_s() - t0;
            }
        }
        long r = rss_kb("VmRSS:");
        if (minute == 0)
            rss_first = r;
        if (minute == 4)
            rss_5 = r;
        rss_last = r;
        if (r > rss_max)
            rss_max = r;
        printf("%s%ld", minute ? "," : "", r);
        fflush(stdout);
    }
    double t0 = now_s();
    if (c.eng)
        tsi_engine_flush(c.eng);
    busy += now_s() - t0;
    double wall = wall_s() - wall0;
    printf("\npipeline_intersections=%d\npipeline_minutes=%d\npipeline_messages=%lld\n"
           "pipeline_bsm=%lld\npipeline_seconds=%.3f\npipeline_wall_seconds=%.3f\n"
           "pipeline_msgs_per_s=%.0f\npipeline_bsm_per_s=%.0f\n"
           "pipeline_rejected=%lld\npipeline_push_errors=%lld\nwindows=%lld\n"
           "conflicts=%lld\nvru_events=%lld\nvehicle_events=%lld\nhard_braking=%lld\n"
           "mean_traffic_volume=%.2f\nrss_kb_first_minute=%ld\nrss_kb_minute_5=%ld\n"
           "rss_kb_last_minute=%ld\nrss_kb_max_sampled=%ld\npeak_rss_kb=%ld\n",
           nisect, minutes, c.msgs, c.bsm, busy, wall, c.msgs / busy, c.bsm / busy, c.rejected,
           c.push_err, c.windows, c.conflicts, c.vru_events, c.veh_events, c.hard_braking,
           c.windows ? (double)c.volume / c.windows : 0, rss_first, rss_5, rss_last, rss_max,
           rss_kb("VmHWM:"));
    free(frame);
    free(line);
    tsi_decoder_free(&dec);
    tsi_engine_free(c.eng);
    tsi_registry_free(reg);
    free(im);
    return 0;
}
