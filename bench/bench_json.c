/* bench/bench_json.c — the collector's frame parse (issue 12): one rush-hour /ws/bsm
 * frame (15,500 BSMs in the VCC form of tests/fixtures/messages/bsm.json, ~11 MB, ~1.2 M
 * tokens) read by tsi_json_parse (the one-pass strict reader the collector uses) beside,
 * in the same run, tsi_json_parse_jsmn (jsmn + the grammar check: what tsi_json_parse did
 * before, and what it still falls back to on a malformed text); then the frame walked and
 * every element decoded (tsi_msg_from_json) as the pipeline does. CPU time of this
 * thread, best of --repeat rounds, per message; the tokens are kept from round to round,
 * as the pipeline keeps them.
 *   bench_json [--messages 15500] [--repeat 7] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "core/json.h"
#include "vcc/decode.h"

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int n = 15500, repeat = 7;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--messages") == 0)
            n = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--repeat") == 0)
            repeat = atoi(argv[i + 1]);
    }
    if (n < 1 || repeat < 1) {
        fprintf(stderr, "usage: bench_json [--messages N] [--repeat R]\n");
        return 2;
    }
    tsi_buf f = TSI_BUF_INIT;
    tsi_buf_append(&f, "[", 1);
    for (int i = 0; i < n; i++)
        tsi_buf_printf(
            &f,
            "%s{\"timestamp\":%lld,\"rsuName\":\"rsu-us29-nutley\",\"format\":\"JSON\","
            "\"locationName\":\"US-29 & Nutley\",\"clientId\":\"vcc-public\",\"sourceType\":"
            "\"RSU\",\"vendorName\":\"Commsignia\",\"bsmJ2735\":\"ADwAjlMn0h3hX0hEDkq2d0i+4d0AAlH/"
            "/3/w8H/ehOXRn5Rn6X5l8AABAAZCB+AAAA==\",\"bsmJson\":{\"coreData\":{\"msgCnt\":%d,"
            "\"id\":%d,\"secMark\":%d,\"lat\":38.86%05d,\"lon\":-77.26%05d,\"elev\":118.3,"
            "\"accuracy\":{\"semiMajor\":1.5,\"semiMinor\":1.0,\"orientation\":0.0},"
            "\"transmission\":\"forwardGears\",\"speed\":%d.42,\"heading\":%d.5,\"angle\":0.0,"
            "\"accelSet\":{\"lon\":-0.58,\"lat\":0.12,\"vert\":0.0,\"yaw\":1.25},\"brakes\":{"
            "\"wheelBrakes\":\"00000\",\"traction\":\"unavailable\",\"abs\":\"off\",\"scs\":"
            "\"unavailable\",\"brakeBoost\":\"unavailable\",\"auxBrakes\":\"unavailable\"},"
            "\"size\":{\"width\":190,\"length\":480}}}}",
            i ? "," : "", 1764066600000LL + i * 7, i % 128, 100000 + i, (i * 7) % 60000,
            (i * 37) % 100000, (i * 53) % 100000, i % 30, i % 360);
    tsi_buf_append(&f, "]", 1);

    int cap = TSI_FRAME_MAX_TOKENS;
    tsi_jtok *t = malloc((size_t)cap * sizeof *t);
    if (!t)
        return 1;
    double best_fast = 1e9, best_jsmn = 1e9, best_walk = 1e9;
    int ntok = 0;
    long long decoded = 0;
    for (int r = 0; r < repeat; r++) {
        tsi_json d;
        tsi_error e = {0};
        double a = cpu_s();
        int k = tsi_json_parse_jsmn(&d, f.data, f.len, t, cap, &e);
        double b = cpu_s();
        if (k < 0) {
            fprintf(stderr, "jsmn parse failed: %s %s\n", tsi_error_name(k), e.detail);
            return 1;
        }
        int k2 = tsi_json_parse(&d, f.data, f.len, t, cap, &e);
        double c = cpu_s();
        if (k2 != k) {
            fprintf(stderr, "token counts differ: %d and %d\n", k, k2);
            return 1;
        }
        decoded = 0;
        for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i)) {
            tsi_msg m;
            if (tsi_msg_from_json(&d, i, TSI_MSG_BSM, &m, &e) == 0)
                decoded++;
        }
        double w = cpu_s();
        ntok = k;
        if (b - a < best_jsmn)
            best_jsmn = b - a;
        if (c - b < best_fast)
            best_fast = c - b;
        if (w - c < best_walk)
            best_walk = w - c;
    }
    if (decoded != n) {
        fprintf(stderr, "decoded %lld of %d messages\n", decoded, n);
        return 1;
    }
    printf("frame_bytes=%zu\nframe_tokens=%d\nmessages=%d\n", f.len, ntok, n);
    printf("parse_us_per_msg=%.3f\n", 1e6 * best_fast / n);
    printf("reference_jsmn_validate_us_per_msg=%.3f\n", 1e6 * best_jsmn / n);
    printf("walk_decode_us_per_msg=%.3f\n", 1e6 * best_walk / n);
    printf("parse_mb_per_s=%.0f\nreference_mb_per_s=%.0f\n", f.len / best_fast / 1e6,
           f.len / best_jsmn / 1e6);
    free(t);
    tsi_buf_free(&f);
    return 0;
}
