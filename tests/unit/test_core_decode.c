/* Unit tests of core/json (the jsmn accessor) and vcc/decode: real-shaped fixtures
 * written from domain.md §1 (tests/fixtures/), and a hostile-input table where each
 * malformed case maps to its reason code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "core/json.h"
#include "core/registry.h"
#include "harness.h"
#include "vcc/decode.h"

static void test_bsm_fixture(void **state)
{
    (void)state;
    size_t n;
    char *js = th_fixture("messages/bsm.json", &n);
    tsi_msg m;
    tsi_error err = {0};
    assert_int_equal(tsi_msg_decode(js, n, &m, &err), 0);
    assert_int_equal(m.type, TSI_MSG_BSM);
    assert_int_equal(m.timestamp_ms, 1764066601250LL);
    assert_int_equal(m.id, 305419896);
    assert_int_equal(m.msg_cnt, 42);
    assert_int_equal(m.sec_mark, 1250);
    assert_true(m.lat == 38.8604512 && m.lon == -77.2601833);
    assert_true(m.elev == 118.3);
    assert_true(m.speed == 13.42 && m.heading == 92.5);
    assert_true(m.accel_lon == -0.58 && m.accel_lat == 0.12 && m.accel_yaw == 1.25);
    assert_true(m.width_m == 1.9 && m.length_m == 4.8);
    assert_string_equal(m.wheel_brakes, "00000");
    assert_string_equal(m.rsu_name, "rsu-us29-nutley");
    assert_string_equal(m.location_name, "US-29 & Nutley");
    assert_int_equal(m.basic_type, -1);
    /* the typed decoders agree; the other type is refused */
    assert_int_equal(tsi_bsm_decode(js, n, &m, &err), 0);
    assert_int_equal(tsi_psm_decode(js, n, &m, &err), TSI_E_UNKNOWN_TYPE);
    assert_non_null(strstr(err.message, "PSM rejected"));
    free(js);

    js = th_fixture("messages/bsm_nulls.json", &n);
    assert_int_equal(tsi_bsm_decode(js, n, &m, &err), 0);
    assert_int_equal(m.msg_cnt, -1);
    assert_int_equal(m.sec_mark, TSI_SECMARK_UNAVAILABLE);
    assert_true(isnan(m.speed) && isnan(m.heading) && isnan(m.accel_lon) && isnan(m.elev));
    assert_true(isnan(m.length_m) && isnan(m.width_m));
    assert_string_equal(m.location_name, "");
    free(js);
}

static void test_psm_fixture(void **state)
{
    (void)state;
    size_t n;
    char *js = th_fixture("messages/psm.json", &n);
    tsi_msg m;
    tsi_error err = {0};
    assert_int_equal(tsi_msg_decode(js, n, &m, &err), 0);
    assert_int_equal(m.type, TSI_MSG_PSM);
    assert_int_equal(m.basic_type, TSI_PSM_PEDESTRIAN);
    assert_int_equal(m.id, 2882400001LL);
    assert_int_equal(m.msg_cnt, 7);
    assert_int_equal(m.sec_mark, 1500);
    assert_true(m.lat == 38.86011 && m.lon == -77.25994 && m.elev == 118.0);
    assert_true(m.speed == 1.4 && m.heading == 270.0);
    assert_true(tsi_msg_is_vru_person(&m));
    free(js);
}

static void test_mapdata_fixture(void **state)
{
    (void)state;
    size_t n;
    char *js = th_fixture("mapdata/corridor.json", &n);
    tsi_mapdata md;
    tsi_error err = {0};
    assert_int_equal(tsi_mapdata_decode(js, n, &md, &err), 0);
    assert_int_equal(md.n, 2);
    assert_int_equal(md.nrejected, 0);
    tsi_map_intersection *a = &md.items[0], *b = &md.items[1];
    assert_int_equal(a->id, 1 * 65536 + 4101);
    assert_string_equal(a->name, "US-29 & Nutley");
    assert_int_equal(a->revision, 3);
    assert_true(a->ref_lat == 38.86 && a->ref_lon == -77.26 && a->ref_elev == 118.0);
    assert_true(a->lane_width_m == 3.6);
    assert_true(a->speed_limit == 20.1168);
    assert_int_equal(a->nlanes, 5);
    assert_int_equal(a->vehicle_lanes, 4);
    assert_int_equal(a->lanes[0].lane_id, 1);
    assert_int_equal(a->lanes[0].ingress_approach, 1);
    assert_int_equal(a->lanes[0].egress_approach, -1);
    assert_int_equal(a->lanes[0].nnodes, 2);
    assert_true(a->lanes[0].lon[1] == -77.263);
    assert_int_equal(a->lanes[4].type, TSI_LANE_CROSSWALK);
    assert_int_equal(b->id, 65536 + 4102);
    assert_int_equal(b->vehicle_lanes, 1);
    assert_int_equal(b->lanes[1].type, TSI_LANE_BIKE);
    assert_true(isnan(b->lane_width_m) && isnan(b->ref_elev));
    tsi_mapdata_free(&md);
    tsi_mapdata_free(&md); /* idempotent */
    free(js);

    /* one bad intersection is skipped and counted; the good one is kept */
    const char *mixed = "{\"intersections\":[{\"id\":{\"id\":7},\"refPoint\":{\"lat\":91,"
                        "\"lon\":0}},{\"id\":{\"id\":8},\"revision\":2,\"refPoint\":{\"lat\":1,"
                        "\"lon\":2},\"laneSet\":[{\"laneID\":1,\"laneAttributes\":{\"laneType\":"
                        "{\"vehicle\":{}}}}]}]}";
    assert_int_equal(tsi_mapdata_decode(mixed, strlen(mixed), &md, &err), 0);
    assert_int_equal(md.n, 1);
    assert_int_equal(md.items[0].id, 8);
    assert_int_equal(md.items[0].vehicle_lanes, 1); /* {"vehicle":{}} form */
    assert_int_equal(md.nrejected, 1);
    assert_int_equal(md.first_error.code, TSI_E_RANGE);
    assert_non_null(strstr(md.first_error.detail, "refPoint.lat"));
    tsi_mapdata_free(&md);

    static const struct {
        const char *json;
        int want;
    } bad[] = {
        {"{\"msgIssueRevision\":1}", TSI_E_MISSING},
        {"{\"intersections\":{}}", TSI_E_TYPE},
        {"{\"intersections\":[", TSI_E_JSON_TRUNCATED},
        {"\"x\"", TSI_E_NOT_OBJECT},
        {"", TSI_E_JSON_TRUNCATED},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = tsi_mapdata_decode(bad[i].json, strlen(bad[i].json), &md, &err);
        if (rc != bad[i].want)
            fail_msg("mapdata case %zu: got %s want %s", i, tsi_error_name(rc),
                     tsi_error_name(bad[i].want));
        tsi_mapdata_free(&md);
    }
    /* every intersection invalid in several kinds of way: decoded as zero, all counted */
    const char *allbad = "[{\"intersections\":[{\"id\":{\"id\":70000},\"refPoint\":{\"lat\":1,"
                         "\"lon\":1}},{\"id\":5},{\"id\":{\"id\":1}},3]}]";
    assert_int_equal(tsi_mapdata_decode(allbad, strlen(allbad), &md, &err), 0);
    assert_int_equal(md.n, 0);
    assert_int_equal(md.nrejected, 4);
    tsi_mapdata_free(&md);
}

static void test_spat_forms(void **state)
{
    (void)state;
    size_t n;
    char *js = th_fixture("messages/spat_strings.json", &n);
    tsi_spat sp;
    tsi_error err = {0};
    assert_int_equal(tsi_spat_decode(js, n, &sp, &err), 0);
    assert_int_equal(sp.n, 1);
    assert_int_equal(sp.items[0].id, 65536 + 4101);
    assert_int_equal(sp.items[0].revision, 3);
    assert_int_equal(sp.items[0].status, 0);
    assert_true(sp.items[0].timestamp == 512345);
    assert_int_equal(sp.items[0].nstates, 2);
    assert_int_equal(sp.items[0].states[0].signal_group, 2);
    assert_int_equal(sp.items[0].states[0].event_state, 6);
    assert_true(sp.items[0].states[0].likely == 1764066620000.0);
    assert_true(sp.items[0].states[0].confidence == 15);
    assert_int_equal(sp.items[0].states[1].event_state, 3);
    assert_true(isnan(sp.items[0].states[1].max_end));
    tsi_spat_free(&sp);
    free(js);

    /* the object form, and an array of objects */
    const char *obj = "{\"intersections\":[{\"id\":{\"id\":9},\"revision\":1,\"states\":[]}]}";
    assert_int_equal(tsi_spat_decode(obj, strlen(obj), &sp, &err), 0);
    assert_int_equal(sp.n, 1);
    assert_int_equal(sp.items[0].id, 9);
    tsi_spat_free(&sp);
    const char *arr = "[{\"intersections\":[{\"id\":{\"id\":1}}]},"
                      "\"{\\\"intersections\\\":[{\\\"id\\\":{\\\"id\\\":2}}]}\"]";
    assert_int_equal(tsi_spat_decode(arr, strlen(arr), &sp, &err), 0);
    assert_int_equal(sp.n, 2);
    assert_int_equal(sp.items[1].id, 2);
    tsi_spat_free(&sp);
    /* a string that is not JSON, an eventState out of range */
    const char *badstr = "[\"{not json\"]";
    assert_int_equal(tsi_spat_decode(badstr, strlen(badstr), &sp, &err), TSI_E_JSON);
    const char *badev = "{\"intersections\":[{\"id\":{\"id\":1},\"states\":[{\"signalGroup\":1,"
                        "\"stateTimeSpeed\":[{\"eventState\":12}]}]}]}";
    assert_int_equal(tsi_spat_decode(badev, strlen(badev), &sp, &err), TSI_E_RANGE);
    tsi_spat_free(&sp);
}

/* Builds a BSM with one coreData field replaced (raw JSON text) or removed (NULL). */
static char *bsm_with(const char *field, const char *value)
{
    static const char *fields[][2] = {
        {"msgCnt", "42"},
        {"id", "305419896"},
        {"secMark", "1250"},
        {"lat", "38.8604512"},
        {"lon", "-77.26"},
        {"elev", "118.3"},
        {"speed", "13.42"},
        {"heading", "92.5"},
        {"accelSet", "{\"lon\":-0.58,\"lat\":0.1,\"vert\":0,\"yaw\":1}"},
        {"size", "{\"width\":190,\"length\":480}"},
    };
    char *out = malloc(4096);
    int o = snprintf(out, 4096,
                     "{\"timestamp\":1764066601250,\"rsuName\":\"r\",\"bsmJson\":"
                     "{\"coreData\":{");
    bool first = true;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *v = fields[i][1];
        if (strcmp(fields[i][0], field) == 0) {
            if (value == NULL)
                continue;
            v = value;
        }
        o +=
            snprintf(out + o, (size_t)(4096 - o), "%s\"%s\":%s", first ? "" : ",", fields[i][0], v);
        first = false;
    }
    snprintf(out + o, (size_t)(4096 - o), "}}}");
    return out;
}

static void test_hostile_bsm_fields(void **state)
{
    (void)state;
    static const struct {
        const char *field, *value;
        int want;
    } cases[] = {
        {"lat", "91", TSI_E_RANGE},
        {"lat", "-90.0000001", TSI_E_RANGE},
        {"lon", "180.5", TSI_E_RANGE},
        {"lat", NULL, TSI_E_MISSING},
        {"lat", "null", TSI_E_MISSING},
        {"lat", "\"38.8\"", TSI_E_TYPE},
        {"lat", "1e999", TSI_E_RANGE},
        {"lat", "NaN", TSI_E_JSON},
        {"lat", "-Infinity", TSI_E_JSON},
        {"lat", "true", TSI_E_TYPE},
        {"lat", "[]", TSI_E_TYPE},
        {"speed", "-0.5", TSI_E_RANGE},
        {"speed", "163.83", TSI_E_RANGE},
        {"heading", "400", TSI_E_RANGE},
        {"id", NULL, TSI_E_MISSING},
        {"id", "1.5", TSI_E_RANGE},
        {"id", "4294967296", TSI_E_RANGE},
        {"id", "99999999999999999999999", TSI_E_RANGE},
        {"id", "\"abc\"", TSI_E_TYPE},
        {"msgCnt", "128", TSI_E_RANGE},
        {"secMark", "65536", TSI_E_RANGE},
        {"accelSet", "{\"lon\":-25}", TSI_E_RANGE},
        {"accelSet", "7", TSI_E_TYPE},
        {"size", "{\"length\":\"long\"}", TSI_E_TYPE},
        {"elev", "01", TSI_E_JSON},
        {"elev", "1.", TSI_E_JSON},
        {"elev", ".5", TSI_E_JSON},
        {"elev", "-", TSI_E_JSON},
        {"elev", "1e", TSI_E_JSON},
        {"elev", "nul", TSI_E_JSON},
        /* accepted edge values */
        {"lat", "90", 0},
        {"lat", "-9e1", 0},
        {"speed", "0", 0},
        {"speed", "null", 0},
        {"heading", "360", 0},
        {"id", "4294967295", 0},
        {"id", "-5", 0},
        {"id", "7.0", 0},
        {"msgCnt", "null", 0},
        {"accelSet", "null", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *js = bsm_with(cases[i].field, cases[i].value);
        tsi_msg m;
        tsi_error err = {0};
        int rc = tsi_bsm_decode(js, strlen(js), &m, &err);
        if (rc != cases[i].want)
            fail_msg("case %zu (%s = %s): got %s want %s (%s: %s)", i, cases[i].field,
                     cases[i].value ? cases[i].value : "<absent>", tsi_error_name(rc),
                     tsi_error_name(cases[i].want), err.message, err.detail);
        if (rc < 0) {
            /* a message fit for data_quality_log: kind, sentence, what was seen */
            assert_non_null(strstr(err.message, "BSM rejected: "));
            assert_int_equal(err.code, rc);
        }
        free(js);
    }
}

static void test_hostile_documents(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int want;
    } cases[] = {
        {"", TSI_E_JSON_TRUNCATED},
        {"   ", TSI_E_JSON_TRUNCATED},
        {"{\"timestamp\":1,", TSI_E_JSON_TRUNCATED},
        {"{\"timestamp\":1764066601250,\"bsmJson\":{\"coreData\":{\"lat\":1", TSI_E_JSON_TRUNCATED},
        {"[1,2,3]", TSI_E_NOT_OBJECT},
        {"\"bsm\"", TSI_E_NOT_OBJECT},
        {"{\"timestamp\":1764066601250}", TSI_E_UNKNOWN_TYPE},
        {"{\"timestamp\":1764066601250,\"bsmJson\":{},\"psmJson\":{}}", TSI_E_UNKNOWN_TYPE},
        {"{\"timestamp\":1764066601250,\"bsmJson\":{}}", TSI_E_MISSING},
        {"{\"timestamp\":1764066601250,\"bsmJson\":{\"coreData\":5}}", TSI_E_TYPE},
        {"{\"timestamp\":1764066601250,\"bsmJson\":[]}", TSI_E_TYPE},
        {"{\"bsmJson\":{\"coreData\":{\"id\":1,\"lat\":1,\"lon\":1}}}", TSI_E_MISSING},
        {"{\"timestamp\":1764066601,\"bsmJson\":{\"coreData\":{\"id\":1,\"lat\":1,\"lon\":1}}}",
         TSI_E_RANGE}, /* seconds, not ms */
        {"{\"timestamp\":\"1764066601250\",\"bsmJson\":{\"coreData\":{\"id\":1,\"lat\":1,"
         "\"lon\":1}}}",
         TSI_E_TYPE},
        {"{\"timestamp\":1764066601250,\"psmJson\":{\"basicType\":9,\"id\":1,\"position\":{"
         "\"lat\":1,\"lon\":1}}}",
         TSI_E_UNKNOWN_TYPE},
        {"{\"timestamp\":1764066601250,\"psmJson\":{\"basicType\":1,\"id\":1}}", TSI_E_MISSING},
        {"{\"timestamp\":1764066601250,\"psmJson\":{\"id\":1,\"position\":{\"lat\":1,\"lon\":"
         "1},\"speed\":-1}}",
         TSI_E_RANGE},
        /* grammar jsmn alone would accept */
        {"{\"timestamp\":1764066601250 \"bsmJson\":{}}", TSI_E_JSON},
        {"{\"timestamp\":1764066601250,}", TSI_E_JSON},
        {"{\"a\":[1 2]}", TSI_E_JSON},
        {"{\"a\":[1,]}", TSI_E_JSON},
        {"{\"a\" 1}", TSI_E_JSON},
        {"{\"a\":1}{\"b\":2}", TSI_E_JSON},
        {"{\"a\":1} x", TSI_E_JSON},
        {"{\"a\":tru}", TSI_E_JSON},
        {"{\"timestamp\":1764066601250,\"rsuName\":\"a\x01\",\"bsmJson\":{}}", TSI_E_JSON},
        {"{\"a\":'x'}", TSI_E_JSON},
        {"{\"a\":\"\\x\"}", TSI_E_JSON},
        {"{a:1}", TSI_E_JSON},
        {"}", TSI_E_JSON},
        /* strings read by the decoder */
        {"{\"timestamp\":1764066601250,\"locationName\":\"\\ud800\",\"bsmJson\":{}}", TSI_E_JSON},
        {"{\"timestamp\":1764066601250,\"rsuName\":\"\xff\xfe\",\"bsmJson\":{}}", TSI_E_JSON},
        {"{\"timestamp\":1764066601250,\"rsuName\":\"a\\u0000b\",\"bsmJson\":{}}", TSI_E_JSON},
        {"{\"timestamp\":1764066601250,\"rsuName\":7,\"bsmJson\":{}}", TSI_E_TYPE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsi_msg m;
        tsi_error err = {0};
        int rc = tsi_msg_decode(cases[i].json, strlen(cases[i].json), &m, &err);
        if (rc != cases[i].want)
            fail_msg("case %zu %s: got %s want %s (%s: %s)", i, cases[i].json, tsi_error_name(rc),
                     tsi_error_name(cases[i].want), err.message, err.detail);
    }
    /* an embedded NUL byte, and a long name */
    const char nul[] = "{\"timestamp\":1764066601250,\"bsmJson\":{}}\0{}";
    tsi_msg m;
    tsi_error err;
    assert_int_equal(tsi_msg_decode(nul, sizeof nul - 1, &m, &err), TSI_E_JSON);
    char big[1024];
    int o = snprintf(big, sizeof big, "{\"timestamp\":1764066601250,\"locationName\":\"");
    for (int i = 0; i < 300; i++)
        big[o++] = 'x';
    snprintf(big + o, sizeof big - (size_t)o,
             "\",\"bsmJson\":{\"coreData\":{\"id\":1,\"lat\":1,"
             "\"lon\":1}}}");
    assert_int_equal(tsi_msg_decode(big, strlen(big), &m, &err), TSI_E_TOO_BIG);
    /* deep nesting and huge arrays cost bounded tokens: refused, not crashed */
    size_t dn = 200000;
    char *deep = malloc(dn);
    memset(deep, '[', dn);
    assert_int_equal(tsi_msg_decode(deep, dn, &m, &err), TSI_E_TOO_BIG);
    for (size_t i = 0; i < dn; i += 2) {
        deep[i] = i == 0 ? '[' : ',';
        deep[i + 1] = '1';
    }
    deep[dn - 1] = ']';
    assert_int_equal(tsi_msg_decode(deep, dn, &m, &err), TSI_E_TOO_BIG);
    free(deep);
    /* a message whose input is a truncated prefix of a valid one, at every length */
    size_t n;
    char *js = th_fixture("messages/bsm.json", &n);
    while (n > 0 && (js[n - 1] == '\n' || js[n - 1] == ' '))
        n--;
    for (size_t k = 0; k < n; k++) {
        int rc = tsi_msg_decode(js, k, &m, &err);
        assert_true(rc == TSI_E_JSON_TRUNCATED || rc == TSI_E_JSON);
    }
    assert_int_equal(tsi_msg_decode(js, n, &m, &err), 0);
    free(js);
}

typedef struct frame_seen {
    int ok, bad, last_bad_index, last_bad_code;
    int64_t ids[8];
} frame_seen;

static void on_frame_msg(void *ud, int index, const tsi_msg *m, int rc, const tsi_error *err)
{
    frame_seen *s = ud;
    if (rc == 0) {
        assert_non_null(m);
        if (s->ok < 8)
            s->ids[s->ok] = m->id;
        s->ok++;
    } else {
        assert_null(m);
        assert_int_equal(err->code, rc);
        s->bad++;
        s->last_bad_index = index;
        s->last_bad_code = rc;
    }
}

static void test_frames(void **state)
{
    (void)state;
    size_t nb, np;
    char *b = th_fixture("messages/bsm.json", &nb);
    char *p = th_fixture("messages/psm.json", &np);
    while (nb && b[nb - 1] == '\n')
        nb--;
    while (np && p[np - 1] == '\n')
        np--;
    size_t cap = nb + np + 256;
    char *frame = malloc(cap);
    int len = snprintf(frame, cap,
                       "[%.*s,{\"timestamp\":1764066601250,\"bsmJson\":{\"coreData\":"
                       "{\"id\":3,\"lat\":91,\"lon\":0}}},%.*s]",
                       (int)nb, b, (int)np, p);
    tsi_decoder dec;
    tsi_decoder_init(&dec);
    frame_seen s = {0};
    tsi_error err;
    assert_int_equal(tsi_frame_decode(&dec, frame, (size_t)len, on_frame_msg, &s, &err), 3);
    assert_int_equal(s.ok, 2);
    assert_int_equal(s.bad, 1);
    assert_int_equal(s.last_bad_index, 1);
    assert_int_equal(s.last_bad_code, TSI_E_RANGE);
    assert_int_equal(s.ids[0], 305419896);
    assert_int_equal(s.ids[1], 2882400001LL);
    /* keepalive, a single object, and unusable frames */
    memset(&s, 0, sizeof s);
    assert_int_equal(tsi_frame_decode(&dec, "[]", 2, on_frame_msg, &s, &err), 0);
    assert_int_equal(tsi_frame_decode(&dec, b, nb, on_frame_msg, &s, &err), 1);
    assert_int_equal(s.ok, 1);
    assert_int_equal(tsi_frame_decode(&dec, "[1,", 3, on_frame_msg, &s, &err),
                     TSI_E_JSON_TRUNCATED);
    assert_int_equal(tsi_frame_decode(&dec, "\"x\"", 3, on_frame_msg, &s, &err), TSI_E_NOT_OBJECT);
    /* a frame of 2,000 messages grows the decoder's token buffer */
    size_t big_cap = 2000 * (nb + 1) + 3;
    char *big = malloc(big_cap);
    size_t o = 0;
    big[o++] = '[';
    for (int i = 0; i < 2000; i++) {
        if (i)
            big[o++] = ',';
        memcpy(big + o, b, nb);
        o += nb;
    }
    big[o++] = ']';
    memset(&s, 0, sizeof s);
    assert_int_equal(tsi_frame_decode(&dec, big, o, on_frame_msg, &s, &err), 2000);
    assert_int_equal(s.ok, 2000);
    free(big);
    tsi_decoder_free(&dec);
    tsi_decoder_free(&dec);
    free(frame);
    free(b);
    free(p);
}

static void test_json_accessors(void **state)
{
    (void)state;
    const char *js = "{\"a\":{\"b\":[1,{\"c\":\"x\\u00e9\\ud83d\\ude00\\n\"},null]},"
                     "\"n\":-12.5e-1,\"t\":true,\"big\":12345678901234567}";
    tsi_jtok toks[64];
    tsi_json d;
    tsi_error err;
    assert_true(tsi_json_parse(&d, js, strlen(js), toks, 64, &err) > 0);
    int b = tsi_json_path(&d, 0, "a", "b", NULL);
    assert_true(tsi_json_is_array(&d, b));
    int e0 = tsi_json_first(&d, b);
    int e1 = tsi_json_next(&d, b, e0);
    int e2 = tsi_json_next(&d, b, e1);
    assert_int_equal(tsi_json_next(&d, b, e2), -1);
    assert_true(tsi_json_is_null(&d, e2));
    char buf[32];
    /* é = C3 A9, 😀 = F0 9F 98 80 */
    assert_int_equal(tsi_json_str(&d, tsi_json_get(&d, e1, "c"), buf, sizeof buf), 8);
    assert_memory_equal(buf, "x\xc3\xa9\xf0\x9f\x98\x80\n", 8);
    assert_int_equal(tsi_json_str(&d, tsi_json_get(&d, e1, "c"), buf, 4), TSI_E_TOO_BIG);
    double v;
    assert_int_equal(tsi_json_num(&d, tsi_json_get(&d, 0, "n"), &v), 0);
    assert_true(v == -1.25);
    bool t;
    assert_int_equal(tsi_json_bool(&d, tsi_json_get(&d, 0, "t"), &t), 0);
    assert_true(t);
    int64_t iv;
    assert_int_equal(tsi_json_int64(&d, tsi_json_get(&d, 0, "big"), &iv), 0);
    assert_int_equal(iv, 12345678901234567LL);
    assert_int_equal(tsi_json_num(&d, tsi_json_get(&d, 0, "zz"), &v), TSI_E_MISSING);
    assert_int_equal(tsi_json_num(&d, tsi_json_get(&d, 0, "t"), &v), TSI_E_TYPE);
    assert_int_equal(tsi_json_get(&d, b, "a"), -1); /* not an object */
    int k = tsi_json_first_key(&d, 0);
    int keys = 0;
    for (; k >= 0; k = tsi_json_next_key(&d, 0, k))
        keys++;
    assert_int_equal(keys, 4);

    /* the fast number path agrees exactly with strtod (the independent reference) */
    srand(7);
    for (int i = 0; i < 100000; i++) {
        char num[64];
        int digits = 1 + rand() % 15, frac = rand() % (digits + 1);
        long long mant = 0;
        for (int j = 0; j < digits; j++)
            mant = mant * 10 + rand() % 10;
        int len;
        if (frac)
            len = snprintf(num, sizeof num, "%s%lld.%0*lld", rand() % 2 ? "-" : "",
                           mant / (long long)pow(10, frac), frac, mant % (long long)pow(10, frac));
        else
            len = snprintf(num, sizeof num, "%lld", mant);
        if (rand() % 4 == 0)
            len += snprintf(num + len, sizeof num - (size_t)len, "e%d", rand() % 40 - 20);
        double fast = tsi_json_atof(num, (size_t)len);
        double ref = strtod(num, NULL);
        if (fast != ref)
            fail_msg("%s: fast %.17g strtod %.17g", num, fast, ref);
    }
    const char *slow[] = {"123456789012345678901234", "1e300", "4.9e-324", "0.1e-30", "-0", "1E+2"};
    for (size_t i = 0; i < sizeof slow / sizeof slow[0]; i++)
        assert_true(tsi_json_atof(slow[i], strlen(slow[i])) == strtod(slow[i], NULL));

    /* parse_alloc sizes the tokens itself */
    assert_true(tsi_json_parse_alloc(&d, js, strlen(js), 0, &err) > 0);
    assert_non_null(d.owned);
    tsi_json_free(&d);
    assert_int_equal(tsi_json_parse_alloc(&d, js, strlen(js), 5, &err), TSI_E_TOO_BIG);
    tsi_json_free(&d);
}

/* ---- tsi_json_num's plain-number path against the general one ---------------------------- */

static int neg_first(const char *num)
{
    return num[0] == '-';
}

/* One number text read by tsi_json_num (which takes the plain path for short numbers
 * without an exponent) must give the very bits tsi_json_atof (the general path, unchanged)
 * and strtod (the independent reference) give, the sign of zero included, and refuse what
 * overflows as TSI_E_RANGE. */
static void num_agrees(const char *num)
{
    char js[160];
    int len = snprintf(js, sizeof js, "[%s]", num);
    tsi_json d;
    tsi_jtok t[4];
    tsi_error err = {0};
    if (tsi_json_parse(&d, js, (size_t)len, t, 4, &err) < 0)
        fail_msg("%s: not parsed: %s", num, err.detail);
    double got = 0, general = tsi_json_atof(num, strlen(num)), ref = strtod(num, NULL);
    int rc = tsi_json_num(&d, 1, &got);
    if (memcmp(&general, &ref, sizeof ref) != 0)
        fail_msg("%s: tsi_json_atof %.17g, strtod %.17g", num, general, ref);
    if (!isfinite(ref)) {
        if (rc != TSI_E_RANGE)
            fail_msg("%s: overflow read as %d, not TSI_E_RANGE", num, rc);
        return;
    }
    if (rc != 0 || memcmp(&got, &ref, sizeof ref) != 0)
        fail_msg("%s: tsi_json_num rc %d value %.17g (sign %d), strtod %.17g (sign %d)", num, rc,
                 got, signbit(got) != 0, ref, signbit(ref) != 0);
}

static void test_json_num_paths(void **state)
{
    (void)state;
    static const char *const table[] = {
        "0",
        "-0",
        "0.0",
        "-0.0",
        "-0.000000",
        "1",
        "-1",
        "38.8012345",
        "-77.4012345",
        "118.3",
        "0.58",
        "-0.58",
        "163.82",
        "359.9999",
        "0.1",
        "0.2",
        "0.3",
        "1.7976931348623157",
        "9007199254740992",
        "9007199254740993",
        "-9007199254740993",
        "9007199254740991.5",
        "900719925474099.3",
        "12345678901234567.8",
        "1234567890123456789",
        "123456789012345678",
        "0.000000000000000001",
        "0.0000000000000000001",
        "0.1234567890123456789",
        "-0.123456789012345678",
        "99999999999999999.9",
        "18446744073709551615",
        "18446744073709551616",
        "1e400",
        "-1e400",
        "1e-400",
        "-1e-400",
        "1e308",
        "1.7976931348623159e308",
        "4.9e-324",
        "2.4703282292062327e-324",
        "2.2250738585072011e-308",
        "1e22",
        "1e23",
        "1.5e-7",
        "1E+2",
        "1e-0",
        "-0e5",
        "0e-5",
        "123456789012345678901234567890",
        "0.30000000000000004",
        "3.0000000000000004",
        "2.5",
        "-2.5",
        "1.0000000000000002",
        "4503599627370496.5",
        "4503599627370497.5",
        "0.1000000000000000055511151231257827",
        "100000000000000000000000",
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        num_agrees(table[i]);
    /* long mantissas and many places, at every length around the plain path's 19 characters */
    char num[64];
    for (int digits = 1; digits <= 24; digits++)
        for (int point = 0; point <= digits; point++)
            for (int neg = 0; neg < 2; neg++) {
                int o = 0;
                if (neg)
                    num[o++] = '-';
                for (int k = 0; k < digits; k++) {
                    if (k == point && k > 0)
                        num[o++] = '.';
                    num[o++] = (char)('1' + (k * 7 + digits) % 9);
                }
                num[o] = '\0';
                num_agrees(num);
            }
    /* leading zeros of a fraction (a JSON integer part has none) */
    for (int z = 0; z < 20; z++) {
        int o = snprintf(num, sizeof num, "0.");
        for (int k = 0; k < z; k++)
            num[o++] = '0';
        snprintf(num + o, sizeof num - (size_t)o, "12345");
        num_agrees(num);
    }
    /* random plain numbers of every length */
    srand(11);
    for (int i = 0; i < 200000; i++) {
        int digits = 1 + rand() % 19, o = 0;
        int point = rand() % (digits + 1);
        if (rand() % 2)
            num[o++] = '-';
        for (int k = 0; k < digits; k++) {
            if (k == point && k > 0)
                num[o++] = '.';
            num[o++] =
                (char)((k == 0 && point != 1 && digits > 1 && point != 0) ? '1' + rand() % 9
                                                                          : '0' + rand() % 10);
        }
        num[o] = '\0';
        /* a JSON integer part has no leading zero: "0" alone, or 0.xxx */
        if ((num[0] == '0' || (num[0] == '-' && num[1] == '0')) && num[neg_first(num) + 1] != '.' &&
            num[neg_first(num) + 1] != '\0')
            continue;
        num_agrees(num);
    }
}

/* ---- the fast strict pass against jsmn + the grammar check ----------------------------- */

/* One text through both readers of tsi_json_parse: the fast pass accepts exactly what
 * jsmn + validate accept (the acceptance is tsi_json_parse's, so the result cannot
 * change), with the same tokens, field by field; tsi_json_parse returns what jsmn +
 * validate return, error code included. Also with exactly as many tokens as needed and
 * one fewer (TOO_BIG from both). Returns 1 when the text is valid. */
static int diff_one(const char *js, size_t len, const char *what)
{
    enum { CAP = 4096 };
    static tsi_jtok ref[CAP], fast[CAP], via[CAP];
    tsi_json d;
    tsi_error e = {0};
    int want = tsi_json_parse_jsmn(&d, js, len, ref, CAP, &e);
    int got = tsi_json_parse_fast(js, len, fast, CAP);
    if (want > 0 && got != want)
        fail_msg("%s: jsmn + validate accept %d tokens, the fast pass returns %d", what, want, got);
    if (want < 0 && got != -1)
        fail_msg("%s: jsmn + validate refuse (%s), the fast pass accepts %d tokens", what,
                 tsi_error_name(want), got);
    for (int i = 0; i < want; i++)
        if (ref[i].type != fast[i].type || ref[i].start != fast[i].start ||
            ref[i].end != fast[i].end || ref[i].size != fast[i].size ||
            ref[i].parent != fast[i].parent)
            fail_msg("%s: token %d differs: jsmn {%d,%d,%d,%d,%d} fast {%d,%d,%d,%d,%d}", what, i,
                     ref[i].type, ref[i].start, ref[i].end, ref[i].size, ref[i].parent,
                     fast[i].type, fast[i].start, fast[i].end, fast[i].size, fast[i].parent);
    int rc = tsi_json_parse(&d, js, len, via, CAP, &e);
    if (rc != want)
        fail_msg("%s: tsi_json_parse %s, jsmn + validate %s", what, tsi_error_name(rc),
                 tsi_error_name(want));
    if (want > 0) {
        assert_int_equal(d.ntok, want);
        assert_memory_equal(via, ref, (size_t)want * sizeof *ref);
        /* tsi_json_skip against a plain walk: the subtree of i is every later token that
         * starts before i ends */
        for (int i = 0; i < want; i++) {
            int j = i + 1;
            while (j < want && ref[j].start < ref[i].end)
                j++;
            if (tsi_json_skip(&d, i) != j)
                fail_msg("%s: tsi_json_skip(%d) = %d, want %d", what, i, tsi_json_skip(&d, i), j);
        }
        /* the walks (tsi_json_next, tsi_json_next_key) against the parent links: every
         * child of a container, in order, and nothing after the last (which they find
         * without walking a last member that is a container) */
        for (int c = 0; c < want; c++) {
            bool obj = ref[c].type == TSI_JSON_OBJECT;
            if (!obj && ref[c].type != TSI_JSON_ARRAY)
                continue;
            int k = obj ? tsi_json_first_key(&d, c) : tsi_json_first(&d, c);
            for (int j = c + 1; j < want; j++) {
                if (ref[j].parent != c)
                    continue;
                if (k != j)
                    fail_msg("%s: the walk of %d gives %d, the parent links %d", what, c, k, j);
                k = obj ? tsi_json_next_key(&d, c, k) : tsi_json_next(&d, c, k);
            }
            if (k != -1)
                fail_msg("%s: the walk of %d goes on to %d after its last member", what, c, k);
        }
        /* exactly enough tokens, then one fewer */
        assert_int_equal(tsi_json_parse_fast(js, len, fast, want), want);
        assert_int_equal(tsi_json_parse(&d, js, len, via, want, &e), want);
        if (want > 1) {
            assert_int_equal(tsi_json_parse_fast(js, len, fast, want - 1), -1);
            assert_int_equal(tsi_json_parse(&d, js, len, via, want - 1, &e), TSI_E_TOO_BIG);
            assert_int_equal(tsi_json_parse_jsmn(&d, js, len, ref, want - 1, &e), TSI_E_TOO_BIG);
        }
    }
    return want > 0;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33) % n;
}

/* Texts: hand-made edge cases, every fuzz corpus input and fixture, and for each of them
 * random mutations (a byte replaced, inserted or deleted, drawn mostly from JSON's own
 * characters) and cuts; fixed seed. Both readers must agree on each one; the counts of
 * valid and invalid texts checked are bounded below so the test cannot pass vacuously. */
static void test_json_fast_equals_jsmn(void **state)
{
    (void)state;
    static const char *const edge[] = {
        "{}",
        "[]",
        " {} ",
        "\t[\r\n]\n",
        "{\"a\":1}",
        "{\"a\":1 }",
        "{ \"a\" : 1 , \"b\" : [ ] }",
        "[1,2,3]",
        "[[[]],[{}],{\"a\":{\"b\":{}}}]",
        "\"s\"",
        " \"s\" ",
        "\"\"",
        "123",
        "123 ",
        "-0 ",
        "1.5e+3\n",
        "true",
        "true ",
        "null\t",
        "false ",
        "[true,false,null]",
        "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\"}",
        "[\"\\u12\"]",
        "[\"\\u12G4\"]",
        "[\"\\x\"]",
        "[\"a\\\"]",
        "[\"\x01\x1f\"]",
        "[\"\xff\xfe\"]",
        "[\"caf\xc3\xa9\"]",
        "{\"k\\\"ey\":2}",
        "[1 2]",
        "[1,]",
        "[,1]",
        "{\"a\":1,}",
        "{,\"a\":1}",
        "{\"a\" 1}",
        "{\"a\"::1}",
        "{\"a\":}",
        "{1:2}",
        "{\"a\":1}{}",
        "{\"a\":1} x",
        "[01]",
        "[1.]",
        "[.5]",
        "[1e]",
        "[1e+]",
        "[-]",
        "[--1]",
        "[+1]",
        "[1.5E-7]",
        "[0e0]",
        "[tru]",
        "[truex]",
        "[nul]",
        "[True]",
        "[1}",
        "{\"a\":1]",
        "[[]",
        "[]]",
        "}",
        "]",
        "",
        "   ",
        "{\"a\":[1,{\"b\":\"c\"},[null]],\"d\":-2.5e-3}",
        "[1:2]",
        "[\"a\":1]",
        "{\"a\":1:2}",
        "[1\"a\"]",
        "[\"a\"1]",
        "[{}{}]",
        "[[][]]",
        "{\"a\":{}\"b\":1}",
        "[1 , 2 ,3 ]",
        "[\"\\u0000\"]",
        "[\"a\"] ",
        "\"a\" \"b\"",
        "[1]\x01",
        "\x01[1]",
        "[ 1\f]",
        "{\"\":\"\"}",
        "[\"\\/\"]",
        "[1e5000]",
        "[-0.0e-0]",
    };
    int valid = 0, invalid = 0;
    char what[128];
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        snprintf(what, sizeof what, "edge case %zu", i);
        if (diff_one(edge[i], strlen(edge[i]), what))
            valid++;
        else
            invalid++;
    }
    /* strings around the 16-byte steps of the string scan: an escape, a quote, a raw
     * control byte, a NUL, a non-ASCII byte or a bad escape at every offset of strings of
     * 0..40 bytes, as a value and as a key */
    static const char *const specials[] = {"\\\"", "\\n",   "\\u00e9", "\x01", "\xc3\xa9",
                                           "\\x",  "\\u12", "\"",      "\\"};
    for (int n = 0; n <= 40; n++)
        for (int at = 0; at <= n; at++)
            for (size_t sp = 0; sp < sizeof specials / sizeof specials[0]; sp++) {
                char body[96], js[160];
                memset(body, 'a', (size_t)n);
                body[n] = '\0';
                size_t sl = strlen(specials[sp]);
                memmove(body + at + sl, body + at, (size_t)(n - at) + 1);
                memcpy(body + at, specials[sp], sl);
                snprintf(what, sizeof what, "string of %d with special %zu at %d", n, sp, at);
                int len = snprintf(js, sizeof js, "[\"%s\",{\"%s\":1}]", body, body);
                if (diff_one(js, (size_t)len, what))
                    valid++;
                else
                    invalid++;
                js[1 + 1 + at] = '\0'; /* a NUL byte in place */
                diff_one(js, (size_t)len, what);
            }

    /* a NUL byte inside a string, and after a complete value */
    assert_int_equal(diff_one("[\"a\0b\"]", 7, "NUL in a string"), 0);
    assert_int_equal(diff_one("[1]\0", 4, "NUL after the value"), 0);
    assert_int_equal(diff_one("[1\0]", 4, "NUL after a number"), 0);
    assert_int_equal(diff_one("[tr\0e]", 6, "NUL in a literal"), 0);
    assert_int_equal(diff_one("{\"a\0\":1}", 8, "NUL in a key"), 0);
    assert_int_equal(diff_one("[ \0 1]", 6, "NUL among whitespace"), 0);
    assert_int_equal(diff_one("\0[1]", 4, "NUL first"), 0);

    /* the fuzz corpus and the message fixtures, each mutated */
    char dir[1024];
    const char *root = getenv("TSI_SOURCE_DIR") ? getenv("TSI_SOURCE_DIR") : TSI_SOURCE_DIR;
    const char *fixtures[] = {"bsm.json", "bsm_nulls.json", "psm.json", "spat_strings.json",
                              "capture.jsonl"};
    char **paths = NULL;
    size_t npaths = 0;
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        paths = realloc(paths, (npaths + 1) * sizeof *paths);
        size_t n = strlen(root) + strlen(fixtures[i]) + 40;
        paths[npaths] = malloc(n);
        snprintf(paths[npaths++], n, "%s/tests/fixtures/messages/%s", root, fixtures[i]);
    }
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus", root);
    DIR *dh = opendir(dir);
    assert_non_null(dh);
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        paths = realloc(paths, (npaths + 1) * sizeof *paths);
        size_t n = strlen(dir) + strlen(de->d_name) + 2;
        paths[npaths] = malloc(n);
        snprintf(paths[npaths++], n, "%s/%s", dir, de->d_name);
    }
    closedir(dh);
    assert_true(npaths > 100);
    size_t nfiles = npaths;
    static const char alphabet[] = "{}[]\",:\\ \t\n0123456789-+.eEtrufalsn\x01\x80\xff\0";
    for (size_t f = 0; f < npaths; f++) {
        size_t len;
        char *text = th_read_file(paths[f], &len);
        char *m = malloc(len + 2);
        if (diff_one(text, len, paths[f]))
            valid++;
        else
            invalid++;
        /* each line of a JSON-lines file on its own */
        for (char *a = text, *nl; (nl = memchr(a, '\n', (size_t)(text + len - a))) != NULL;
             a = nl + 1) {
            snprintf(what, sizeof what, "a line of %s", paths[f]);
            if (diff_one(a, (size_t)(nl - a), what))
                valid++;
            else
                invalid++;
        }
        for (int k = 0; k < 40; k++) {
            size_t mlen = len;
            memcpy(m, text, len);
            uint32_t op = rnd(4);
            size_t at = len ? rnd((uint32_t)len) : 0;
            char c = alphabet[rnd(sizeof alphabet - 1)];
            if (op == 0 && len) {
                m[at] = c;
            } else if (op == 1) {
                memmove(m + at + 1, m + at, len - at);
                m[at] = c;
                mlen++;
            } else if (op == 2 && len) {
                memmove(m + at, m + at + 1, len - at - 1);
                mlen--;
            } else {
                mlen = at; /* cut */
            }
            snprintf(what, sizeof what, "mutation %d (op %u at %zu) of %s", k, op, at, paths[f]);
            if (diff_one(m, mlen, what))
                valid++;
            else
                invalid++;
        }
        free(m);
        free(text);
        free(paths[f]);
    }
    free(paths);
    print_message("fast pass = jsmn + validate on %d valid and %d invalid texts (%zu edge "
                  "cases, %zu files)\n",
                  valid, invalid, sizeof edge / sizeof edge[0], nfiles);
    /* both kinds well represented (counted when this test was written: thousands each) */
    assert_true(valid > 1000);
    assert_true(invalid > 1000);
}

/* ---- the encodings of domain.md §1 (issue 29) ---- */

/* The document's BSM: brakes and transmission as integers, clientId null. */
static void test_bsm_document_fixture(void **state)
{
    (void)state;
    size_t n;
    char *js = th_fixture("messages/bsm_document.json", &n);
    tsi_msg m;
    tsi_error err = {0};
    assert_int_equal(tsi_bsm_decode(js, n, &m, &err), 0);
    assert_int_equal(m.id, 305419896);
    assert_true(m.accel_lon == -3.58 && m.speed == 13.42);
    assert_int_equal(m.wheel_bits, TSI_WHEEL_LEFT_FRONT | TSI_WHEEL_LEFT_REAR |
                                       TSI_WHEEL_RIGHT_FRONT | TSI_WHEEL_RIGHT_REAR);
    assert_string_equal(m.wheel_brakes, "01111");
    assert_int_equal(m.traction, 1);
    assert_int_equal(m.abs, 3);
    assert_int_equal(m.scs, 1);
    assert_int_equal(m.brake_boost, 2);
    assert_int_equal(m.aux_brakes, 0);
    assert_int_equal(m.transmission, 2);
    assert_int_equal(m.forms, TSI_FORM_INTEGER);
    assert_int_equal(m.unreadable, 0);
    free(js);
    /* the older string fixture: the same typed values from names and a bit string */
    js = th_fixture("messages/bsm.json", &n);
    assert_int_equal(tsi_bsm_decode(js, n, &m, &err), 0);
    assert_int_equal(m.wheel_bits, 0);
    assert_int_equal(m.traction, 0);
    assert_int_equal(m.abs, 1);
    assert_int_equal(m.transmission, 2);
    assert_int_equal(m.forms, TSI_FORM_BITSTRING | TSI_FORM_NAME);
    free(js);
}

/* One BSM per brake encoding: every form gives the same typed values; an unreadable
 * value keeps the message, leaves the field -1 and says which field. */
static void test_brake_forms(void **state)
{
    (void)state;
    static const struct {
        const char *brakes, *transmission;
        int wheel, traction, abs, scs, boost, aux, trans, forms, bad;
        const char *bits;
    } cases[] = {
        /* the document: integers */
        {"{\"wheelBrakes\":8,\"traction\":2,\"abs\":1,\"scs\":0,\"brakeBoost\":1,"
         "\"auxBrakes\":3}",
         "2", 8, 2, 1, 0, 1, 3, 2, TSI_FORM_INTEGER, 0, "01000"},
        /* older VCC JSON: a bit string and enum names */
        {"{\"wheelBrakes\":\"01000\",\"traction\":\"on\",\"abs\":\"off\",\"scs\":"
         "\"unavailable\",\"brakeBoost\":\"off\",\"auxBrakes\":\"reserved\"}",
         "\"forwardGears\"", 8, 2, 1, 0, 1, 3, 2, TSI_FORM_BITSTRING | TSI_FORM_NAME, 0, "01000"},
        /* USDOT ODE: an object of booleans, upper-case enum names */
        {"{\"wheelBrakes\":{\"unavailable\":false,\"leftFront\":true,\"leftRear\":false,"
         "\"rightFront\":false,\"rightRear\":false},\"traction\":\"ON\",\"abs\":\"OFF\","
         "\"scs\":\"UNAVAILABLE\",\"brakeBoost\":\"OFF\",\"auxBrakes\":\"RESERVED\"}",
         "\"FORWARDGEARS\"", 8, 2, 1, 0, 1, 3, 2, TSI_FORM_BOOLOBJ | TSI_FORM_NAME, 0, "01000"},
        /* a bit name alone, an array of names */
        {"{\"wheelBrakes\":\"leftFront\"}", NULL, 8, -1, -1, -1, -1, -1, -1, TSI_FORM_NAME, 0,
         "01000"},
        {"{\"wheelBrakes\":[\"leftFront\",\"rightRear\"]}", NULL, 9, -1, -1, -1, -1, -1, -1,
         TSI_FORM_NAME, 0, "01001"},
        /* unavailable: bit 0 = 0x10 */
        {"{\"wheelBrakes\":16}", "7", 16, -1, -1, -1, -1, -1, 7, TSI_FORM_INTEGER, 0, "10000"},
        /* nulls and absent fields: -1, nothing unreadable */
        {"{\"wheelBrakes\":null,\"traction\":null}", "null", -1, -1, -1, -1, -1, -1, -1, 0, 0, ""},
        {NULL, NULL, -1, -1, -1, -1, -1, -1, -1, 0, 0, ""},
        /* unreadable values: the message is kept, the field says so */
        {"{\"wheelBrakes\":32}", NULL, -1, -1, -1, -1, -1, -1, -1, 0, TSI_BAD_WHEEL_BRAKES, ""},
        {"{\"wheelBrakes\":\"0100\"}", NULL, -1, -1, -1, -1, -1, -1, -1, 0, TSI_BAD_WHEEL_BRAKES,
         ""},
        {"{\"wheelBrakes\":\"banana\"}", NULL, -1, -1, -1, -1, -1, -1, -1, 0, TSI_BAD_WHEEL_BRAKES,
         ""},
        {"{\"wheelBrakes\":{\"leftFront\":1}}", NULL, -1, -1, -1, -1, -1, -1, -1, 0,
         TSI_BAD_WHEEL_BRAKES, ""},
        {"{\"wheelBrakes\":{\"nose\":true}}", NULL, -1, -1, -1, -1, -1, -1, -1, 0,
         TSI_BAD_WHEEL_BRAKES, ""},
        {"{\"wheelBrakes\":-1,\"traction\":4,\"abs\":1.5,\"scs\":true,\"brakeBoost\":3,"
         "\"auxBrakes\":\"maybe\"}",
         "8", -1, -1, -1, -1, -1, -1, -1, 0, 0x7f, ""},
        {"{\"abs\":2}", "\"drive\"", -1, -1, 2, -1, -1, -1, -1, TSI_FORM_INTEGER,
         TSI_BAD_TRANSMISSION, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char js[1024];
        snprintf(js, sizeof js,
                 "{\"timestamp\":1764066601250,\"bsmJson\":{\"coreData\":{\"id\":5,\"lat\":38.86,"
                 "\"lon\":-77.26%s%s%s%s}}}",
                 cases[i].brakes ? ",\"brakes\":" : "", cases[i].brakes ? cases[i].brakes : "",
                 cases[i].transmission ? ",\"transmission\":" : "",
                 cases[i].transmission ? cases[i].transmission : "");
        tsi_msg m;
        tsi_error err = {0};
        int rc = tsi_bsm_decode(js, strlen(js), &m, &err);
        if (rc != 0)
            fail_msg("case %zu: rejected %s (%s)", i, tsi_error_name(rc), err.detail);
        int got[] = {m.wheel_bits, m.traction,     m.abs,   m.scs,       m.brake_boost,
                     m.aux_brakes, m.transmission, m.forms, m.unreadable};
        int want[] = {cases[i].wheel, cases[i].traction, cases[i].abs,
                      cases[i].scs,   cases[i].boost,    cases[i].aux,
                      cases[i].trans, cases[i].forms,    cases[i].bad};
        for (size_t k = 0; k < sizeof got / sizeof got[0]; k++)
            if (got[k] != want[k])
                fail_msg("case %zu field %zu: got %d want %d", i, k, got[k], want[k]);
        assert_string_equal(m.wheel_brakes, cases[i].bits);
    }
    assert_string_equal(tsi_bad_field_name(0), "brakes.wheelBrakes");
    assert_string_equal(tsi_bad_field_name(6), "transmission");
    assert_string_equal(tsi_form_name(0), "integer");
}

/* The document's MapData of intersection 152: eight-key laneType objects with nulls, the
 * bit fields as integers, optional fields null. */
static void test_mapdata_document_fixture(void **state)
{
    (void)state;
    size_t n;
    char *js = th_fixture("mapdata/document_152.json", &n);
    tsi_mapdata md;
    tsi_error err = {0};
    assert_int_equal(tsi_mapdata_decode(js, n, &md, &err), 0);
    assert_int_equal(md.n, 1);
    assert_int_equal(md.nrejected, 0);
    assert_int_equal(md.unreadable, 0);
    assert_int_equal(md.forms, TSI_FORM_LANETYPE_NULLS | TSI_FORM_INTEGER);
    const tsi_map_intersection *x = &md.items[0];
    assert_int_equal(x->id, 152);
    assert_int_equal(x->region, 0);
    assert_string_equal(x->name, "Intersection 152");
    assert_true(isnan(x->ref_elev));
    assert_int_equal(x->speed_limit_type, 5); /* vehicleMaxSpeed, not the first entry */
    assert_true(x->speed_limit == 15.6464);
    assert_int_equal(x->nlanes, 5);
    assert_int_equal(x->vehicle_lanes, 2); /* not 5: the first key is not the type */
    static const tsi_lane_type types[5] = {TSI_LANE_VEHICLE, TSI_LANE_VEHICLE, TSI_LANE_CROSSWALK,
                                           TSI_LANE_CROSSWALK, TSI_LANE_SIDEWALK};
    static const int dir[5] = {TSI_DIR_INGRESS, TSI_DIR_EGRESS, 3, 3, 3};
    static const int shared[5] = {0, 0, 8, 8, 8};
    for (int l = 0; l < 5; l++) {
        assert_int_equal(x->lanes[l].type, types[l]);
        assert_int_equal(x->lanes[l].directional_use, dir[l]);
        assert_int_equal(x->lanes[l].shared_with, shared[l]);
    }
    const tsi_lane *in = &x->lanes[0];
    assert_int_equal(in->maneuvers, TSI_MANEUVER_STRAIGHT | TSI_MANEUVER_LEFT | TSI_MANEUVER_RIGHT);
    assert_int_equal(in->ingress_approach, 1);
    assert_int_equal(in->egress_approach, -1);
    assert_int_equal(in->nconnects, 2);
    assert_int_equal(in->connects[0].lane, 2);
    assert_int_equal(in->connects[0].maneuver, TSI_MANEUVER_STRAIGHT);
    assert_int_equal(in->connects[0].signal_group, 2);
    assert_int_equal(in->connects[1].maneuver, TSI_MANEUVER_LEFT);
    assert_int_equal(in->connects[1].signal_group, -1);
    assert_int_equal(x->lanes[1].maneuvers, -1);
    assert_int_equal(x->lanes[1].nconnects, 0);
    assert_int_equal(x->lanes[2].nconnects, 1);
    assert_int_equal(x->lanes[2].connects[0].maneuver, -1);
    assert_int_equal(x->lanes[2].connects[0].signal_group, 10);
    assert_int_equal(x->lanes[4].nnodes, 2);
    /* the bit fields by their J2735 names */
    tsi_buf b = TSI_BUF_INIT;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &b);
    tsi_bits_json(&w, TSI_BITS_MANEUVERS, in->maneuvers);
    assert_string_equal(tsi_buf_cstr(&b), "[\"maneuverStraightAllowed\",\"maneuverLeftAllowed\","
                                          "\"maneuverRightAllowed\"]");
    tsi_buf_free(&b);

    /* lane_count and the assignment footprint: vehicle lanes only. The sidewalk runs
     * 400 m south, the ingress lane 400 m north. */
    tsi_registry *r = tsi_registry_new(0);
    assert_int_equal(tsi_registry_upsert_all(r, &md), 1);
    const tsi_isect *is = tsi_registry_find(r, 152);
    assert_non_null(is);
    assert_int_equal(is->lane_count, 2);
    tsi_msg m;
    memset(&m, 0, sizeof m);
    const tsi_isect *got = NULL;
    m.lat = 38.8628; /* on the ingress lane, 300 m north of the refPoint */
    m.lon = -77.25975;
    assert_int_equal(tsi_registry_assign(r, &m, &got, &err), 0);
    assert_int_equal(got->id, 152);
    m.lat = 38.8574; /* on the sidewalk, 300 m south: not a vehicle footprint */
    m.lon = -77.26000;
    assert_int_equal(tsi_registry_assign(r, &m, &got, &err), TSI_E_UNMATCHED);
    m.lat = 38.8596; /* on the sidewalk 55 m out: within the radius */
    assert_int_equal(tsi_registry_assign(r, &m, &got, &err), 0);
    tsi_registry_free(r);
    tsi_mapdata_free(&md);
    free(js);
}

/* One lane of each of the eight types; laneType in each form; unreadable ones counted. */
static void test_lane_type_forms(void **state)
{
    (void)state;
    static const char *const keys[8] = {"vehicle", "crosswalk", "bikeLane",       "sidewalk",
                                        "median",  "striping",  "trackedVehicle", "parking"};
    static const tsi_lane_type want8[8] = {TSI_LANE_VEHICLE,  TSI_LANE_CROSSWALK, TSI_LANE_BIKE,
                                           TSI_LANE_SIDEWALK, TSI_LANE_MEDIAN,    TSI_LANE_STRIPING,
                                           TSI_LANE_TRACKED,  TSI_LANE_PARKING};
    tsi_buf js = TSI_BUF_INIT;
    tsi_buf_puts(&js, "{\"intersections\":[{\"id\":{\"id\":9},\"refPoint\":{\"lat\":1,\"lon\":2},"
                      "\"laneSet\":[");
    for (int l = 0; l < 8; l++) {
        tsi_buf_printf(&js, "%s{\"laneID\":%d,\"laneAttributes\":{\"laneType\":{", l ? "," : "",
                       l + 1);
        for (int k = 0; k < 8; k++)
            tsi_buf_printf(&js, "%s\"%s\":%s", k ? "," : "", keys[k], k == l ? "0" : "null");
        tsi_buf_puts(&js, "}}}");
    }
    tsi_buf_puts(&js, "]}]}");
    tsi_mapdata md;
    tsi_error err = {0};
    assert_int_equal(tsi_mapdata_decode(js.data, js.len, &md, &err), 0);
    assert_int_equal(md.items[0].nlanes, 8);
    for (int l = 0; l < 8; l++)
        assert_int_equal(md.items[0].lanes[l].type, want8[l]);
    assert_int_equal(md.items[0].vehicle_lanes, 1);
    assert_int_equal(md.unreadable, 0);
    tsi_mapdata_free(&md);
    tsi_buf_free(&js);

    static const struct {
        const char *lane_type; /* raw JSON, NULL = absent */
        int want;              /* tsi_lane_type, or -1 = unreadable (TSI_LANE_OTHER) */
        int form;
    } cases[] = {
        {"{\"vehicle\":null,\"crosswalk\":0,\"bikeLane\":null}", TSI_LANE_CROSSWALK,
         TSI_FORM_LANETYPE_NULLS},
        {"{\"crosswalk\":{}}", TSI_LANE_CROSSWALK, TSI_FORM_LANETYPE_ONEKEY},
        {"{\"sidewalk\":null}", TSI_LANE_SIDEWALK, TSI_FORM_LANETYPE_ONEKEY},
        {"\"bikeLane\"", TSI_LANE_BIKE, TSI_FORM_LANETYPE_STRING},
        {"\"vehicle\"", TSI_LANE_VEHICLE, TSI_FORM_LANETYPE_STRING},
        {"{\"vehicle\":null,\"crosswalk\":null}", -1, 0}, /* none chosen */
        {"{\"vehicle\":0,\"crosswalk\":0}", -1, 0},       /* two chosen */
        {"{\"hovercraft\":0,\"crosswalk\":null}", -1, 0}, /* unknown key */
        {"\"tram\"", -1, 0},                              /* unknown name */
        {"7", -1, 0},
        {"[]", -1, 0},
        {NULL, -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char doc[512];
        snprintf(doc, sizeof doc,
                 "{\"intersections\":[{\"id\":{\"id\":9},\"refPoint\":{\"lat\":1,\"lon\":2},"
                 "\"laneSet\":[{\"laneID\":1,\"laneAttributes\":{%s%s}}]}]}",
                 cases[i].lane_type ? "\"laneType\":" : "",
                 cases[i].lane_type ? cases[i].lane_type : "");
        assert_int_equal(tsi_mapdata_decode(doc, strlen(doc), &md, &err), 0);
        assert_int_equal(md.n, 1);
        int got = (int)md.items[0].lanes[0].type;
        if (cases[i].want >= 0) {
            if (got != cases[i].want || md.unreadable != 0 || md.forms != cases[i].form)
                fail_msg("case %zu: type %d forms %d unreadable %d", i, got, md.forms,
                         md.unreadable);
        } else {
            if (got != TSI_LANE_OTHER || md.unreadable != 1)
                fail_msg("case %zu: type %d unreadable %d", i, got, md.unreadable);
            assert_non_null(
                strstr(md.first_unreadable.detail, "laneSet[0].laneAttributes.laneType"));
        }
        tsi_mapdata_free(&md);
    }

    /* the bit fields and speedLimits.type in the other forms; unreadable ones counted */
    const char *legacy =
        "{\"intersections\":[{\"id\":{\"id\":9},\"refPoint\":{\"lat\":1,\"lon\":2},"
        "\"speedLimits\":[{\"type\":\"vehicleMaxSpeed\",\"speed\":11.2}],"
        "\"laneSet\":[{\"laneID\":1,\"laneAttributes\":{\"laneType\":\"vehicle\","
        "\"directionalUse\":\"10\",\"sharedWith\":{\"busVehicleTraffic\":true}},"
        "\"maneuvers\":[\"straight\",\"maneuverRightAllowed\"],\"connectsTo\":[{"
        "\"connectingLane\":{\"lane\":2,\"maneuver\":\"left\"}},{"
        "\"connectingLane\":{\"lane\":3,\"maneuver\":\"sideways\"}}]}]}]}";
    assert_int_equal(tsi_mapdata_decode(legacy, strlen(legacy), &md, &err), 0);
    const tsi_lane *l = &md.items[0].lanes[0];
    assert_int_equal(md.items[0].speed_limit_type, 5);
    assert_true(md.items[0].speed_limit == 11.2);
    assert_int_equal(l->directional_use, TSI_DIR_INGRESS);
    assert_int_equal(l->shared_with, 1 << (9 - 4));
    assert_int_equal(l->maneuvers, TSI_MANEUVER_STRAIGHT | TSI_MANEUVER_RIGHT);
    assert_int_equal(l->connects[0].maneuver, TSI_MANEUVER_LEFT);
    assert_int_equal(l->connects[1].maneuver, -1);
    assert_int_equal(md.unreadable, 1);
    assert_non_null(strstr(md.first_unreadable.detail,
                           "laneSet[0].connectsTo[1].connectingLane.maneuver = sideways"));
    assert_int_equal(md.forms, TSI_FORM_LANETYPE_STRING | TSI_FORM_BITSTRING | TSI_FORM_BOOLOBJ |
                                   TSI_FORM_NAME);
    tsi_mapdata_free(&md);
    /* hostile: bit fields out of range, speedLimits not an array, connectsTo of numbers */
    static const struct {
        const char *doc;
        int rc, unreadable;
    } bad[] = {
        {"\"maneuvers\":4096", 0, 1},
        {"\"maneuvers\":-1", 0, 1},
        {"\"maneuvers\":\"111111111111\"", 0, 0},
        {"\"maneuvers\":\"1111111111111\"", 0, 1},
        {"\"connectsTo\":[1]", TSI_E_NOT_OBJECT, 0},
        {"\"connectsTo\":{}", TSI_E_TYPE, 0},
        {"\"connectsTo\":[{\"connectingLane\":{\"lane\":300}}]", TSI_E_RANGE, 0},
        {"\"laneAttributes\":7", TSI_E_TYPE, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char doc[512];
        snprintf(doc, sizeof doc,
                 "{\"intersections\":[{\"id\":{\"id\":9},\"refPoint\":{\"lat\":1,\"lon\":2},"
                 "\"laneSet\":[{\"laneID\":1,%s%s}]}]}",
                 strstr(bad[i].doc, "laneAttributes")
                     ? ""
                     : "\"laneAttributes\":{\"laneType\":\"vehicle\"},",
                 bad[i].doc);
        assert_int_equal(tsi_mapdata_decode(doc, strlen(doc), &md, &err), 0);
        if (bad[i].rc < 0) {
            if (md.n != 0 || md.nrejected != 1 || md.first_error.code != bad[i].rc)
                fail_msg("bad %zu: n %d rejected %d code %s", i, md.n, md.nrejected,
                         tsi_error_name(md.first_error.code));
        } else if (md.n != 1 || md.unreadable != bad[i].unreadable) {
            fail_msg("bad %zu: n %d unreadable %d", i, md.n, md.unreadable);
        }
        tsi_mapdata_free(&md);
    }
    const char *sl = "{\"intersections\":[{\"id\":{\"id\":9},\"refPoint\":{\"lat\":1,\"lon\":2},"
                     "\"speedLimits\":{\"type\":5}}]}";
    assert_int_equal(tsi_mapdata_decode(sl, strlen(sl), &md, &err), 0);
    assert_int_equal(md.nrejected, 1);
    assert_int_equal(md.first_error.code, TSI_E_TYPE);
    tsi_mapdata_free(&md);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bsm_fixture),
        cmocka_unit_test(test_psm_fixture),
        cmocka_unit_test(test_mapdata_fixture),
        cmocka_unit_test(test_bsm_document_fixture),
        cmocka_unit_test(test_brake_forms),
        cmocka_unit_test(test_mapdata_document_fixture),
        cmocka_unit_test(test_lane_type_forms),
        cmocka_unit_test(test_spat_forms),
        cmocka_unit_test(test_hostile_bsm_fields),
        cmocka_unit_test(test_hostile_documents),
        cmocka_unit_test(test_frames),
        cmocka_unit_test(test_json_accessors),
        cmocka_unit_test(test_json_fast_equals_jsmn),
        cmocka_unit_test(test_json_num_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
