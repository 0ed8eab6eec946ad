/* `tsi sim` speaks the VCC v3.1 document (domain.md §1, issue 29), over real HTTP and real
 * WebSocket: every REST and stream answer checked field by field against a table of
 * (path, JSON type) written from the document; the eight-key laneType objects; SPaT in
 * each format with UPER the default; 400 for bad credentials; the token's
 * not-before-policy; the upload reply {msgCnt, id}; and `--encoding legacy`, whose string
 * forms the decoder reads to the same typed values and the same MapData. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/json.h"
#include "harness.h"
#include "proc_helper.h"
#include "sim_test_util.h"
#include "vcc/decode.h"

/* ---- (path, type) checks ---- */

/* The node at path under root: keys separated by '.', array elements as [n]; "" is root.
 * -1 when a key or element is absent. */
static int json_at(const tsi_json *d, int root, const char *path)
{
    int cur = root;
    const char *p = path;
    while (*p && cur >= 0) {
        if (*p == '.') {
            p++;
            continue;
        }
        if (*p == '[') {
            int n = atoi(p + 1);
            int e = tsi_json_is_array(d, cur) ? tsi_json_first(d, cur) : -1;
            for (int k = 0; k < n && e >= 0; k++)
                e = tsi_json_next(d, cur, e);
            cur = e;
            p = strchr(p, ']');
            p = p ? p + 1 : "";
            continue;
        }
        char key[64];
        size_t k = 0;
        while (*p && *p != '.' && *p != '[' && k < sizeof key - 1)
            key[k++] = *p++;
        key[k] = '\0';
        cur = tsi_json_is_object(d, cur) ? tsi_json_get(d, cur, key) : -1;
    }
    return cur;
}

/* The JSON type of node i: absent, null, int, num (with a fraction or exponent), str,
 * bool, obj, arr. */
static const char *json_type(const tsi_json *d, int i)
{
    if (i < 0)
        return "absent";
    if (tsi_json_is_null(d, i))
        return "null";
    if (tsi_json_is_object(d, i))
        return "obj";
    if (tsi_json_is_array(d, i))
        return "arr";
    if (tsi_json_is_string(d, i))
        return "str";
    if (tsi_json_is_number(d, i)) {
        size_t n;
        const char *s = tsi_json_raw(d, i, &n);
        for (size_t k = 0; k < n; k++)
            if (s[k] == '.' || s[k] == 'e' || s[k] == 'E')
                return "num";
        return "int";
    }
    return "bool";
}

typedef struct pt {
    const char *path;
    const char *types; /* "int", "num|null", ...: "num" also accepts an integer */
} pt;

static bool type_ok(const char *got, const char *want)
{
    char w[64];
    snprintf(w, sizeof w, "%s", want);
    for (char *t = strtok(w, "|"); t; t = strtok(NULL, "|"))
        if (strcmp(t, got) == 0 || (strcmp(t, "num") == 0 && strcmp(got, "int") == 0))
            return true;
    return false;
}

/* Checks every row of the table under root; what names the answer in a failure. */
static void check_types(const tsi_json *d, int root, const pt *t, size_t n, const char *what)
{
    for (size_t k = 0; k < n; k++) {
        const char *got = json_type(d, json_at(d, root, t[k].path));
        if (!type_ok(got, t[k].types))
            fail_msg("%s: %s is %s, the document says %s", what, t[k].path, got, t[k].types);
    }
}

static const pt META[] = {
    {"timestamp", "int"},           {"rsuName", "str"},    {"format", "str"},
    {"clientId", "null"},           {"sourceType", "str"}, {"vendorName", "str"},
    {"locationName", "str|absent"},
};

static const pt BSM[] = {
    {"bsmJ2735", "str"},
    {"bsmJson.coreData.msgCnt", "int"},
    {"bsmJson.coreData.id", "int"},
    {"bsmJson.coreData.secMark", "int"},
    {"bsmJson.coreData.lat", "num"},
    {"bsmJson.coreData.lon", "num"},
    {"bsmJson.coreData.elev", "num|null"},
    {"bsmJson.coreData.speed", "num"},
    {"bsmJson.coreData.heading", "num"},
    {"bsmJson.coreData.angle", "num"},
    {"bsmJson.coreData.accelSet", "obj"},
    {"bsmJson.coreData.accelSet.lon", "num|null"},
    {"bsmJson.coreData.accelSet.lat", "num|null"},
    {"bsmJson.coreData.accelSet.vert", "num|null"},
    {"bsmJson.coreData.accelSet.yaw", "num|null"},
    {"bsmJson.coreData.brakes.wheelBrakes", "int"},
    {"bsmJson.coreData.brakes.traction", "int"},
    {"bsmJson.coreData.brakes.abs", "int"},
    {"bsmJson.coreData.brakes.scs", "int"},
    {"bsmJson.coreData.brakes.brakeBoost", "int"},
    {"bsmJson.coreData.brakes.auxBrakes", "int"},
    {"bsmJson.coreData.size.width", "int"},
    {"bsmJson.coreData.size.length", "int"},
    {"bsmJson.coreData.transmission", "int"},
    {"bsmJson.coreData.accuracy.semiMajor", "num"},
    {"bsmJson.coreData.accuracy.semiMinor", "num"},
    {"bsmJson.coreData.accuracy.orientation", "num"},
};

static const pt PSM[] = {
    {"psmJ2735", "str"},
    {"psmJson.basicType", "int"},
    {"psmJson.id", "int"},
    {"psmJson.msgCnt", "int"},
    {"psmJson.secMark", "int"},
    {"psmJson.position.lat", "num"},
    {"psmJson.position.lon", "num"},
    {"psmJson.position.elev", "num|null"},
    {"psmJson.speed", "num"},
    {"psmJson.heading", "num"},
    {"psmJson.accelSet", "obj"},
};

static const pt MAPDATA[] = {
    {"timeStamp", "int|null"},
    {"msgIssueRevision", "int"},
    {"intersections", "arr"},
    {"intersections[0].name", "str|null"},
    {"intersections[0].id.region", "int|null"},
    {"intersections[0].id.id", "int"},
    {"intersections[0].revision", "int"},
    {"intersections[0].refPoint.lat", "num"},
    {"intersections[0].refPoint.lon", "num"},
    {"intersections[0].refPoint.elevation", "num|null"},
    {"intersections[0].laneWidth", "num|null"},
    {"intersections[0].speedLimits[0].type", "int"},
    {"intersections[0].speedLimits[0].speed", "num"},
    /* an ingress lane: every optional field present */
    {"intersections[0].laneSet[0].laneID", "int"},
    {"intersections[0].laneSet[0].name", "str|null"},
    {"intersections[0].laneSet[0].ingressApproach", "int"},
    {"intersections[0].laneSet[0].egressApproach", "null"},
    {"intersections[0].laneSet[0].laneAttributes.directionalUse", "int"},
    {"intersections[0].laneSet[0].laneAttributes.sharedWith", "int"},
    {"intersections[0].laneSet[0].laneAttributes.laneType", "obj"},
    {"intersections[0].laneSet[0].laneAttributes.laneType.vehicle", "int"},
    {"intersections[0].laneSet[0].laneAttributes.laneType.crosswalk", "null"},
    {"intersections[0].laneSet[0].laneAttributes.laneType.bikeLane", "null"},
    {"intersections[0].laneSet[0].laneAttributes.laneType.sidewalk", "null"},
    {"intersections[0].laneSet[0].laneAttributes.laneType.median", "null"},
    {"intersections[0].laneSet[0].laneAttributes.laneType.striping", "null"},
    {"intersections[0].laneSet[0].laneAttributes.laneType.trackedVehicle", "null"},
    {"intersections[0].laneSet[0].laneAttributes.laneType.parking", "null"},
    {"intersections[0].laneSet[0].maneuvers", "int"},
    {"intersections[0].laneSet[0].nodesList.nodes[0].delta.lat", "num"},
    {"intersections[0].laneSet[0].nodesList.nodes[0].delta.lon", "num"},
    {"intersections[0].laneSet[0].nodesList.nodes[0].attributes", "null"},
    {"intersections[0].laneSet[0].nodesList.computed", "null"},
    {"intersections[0].laneSet[0].connectsTo[0].connectingLane.lane", "int"},
    {"intersections[0].laneSet[0].connectsTo[0].connectingLane.maneuver", "int"},
    {"intersections[0].laneSet[0].connectsTo[0].signalGroup", "int"},
    /* an egress lane: its optional fields null */
    {"intersections[0].laneSet[1].ingressApproach", "null"},
    {"intersections[0].laneSet[1].egressApproach", "int"},
    {"intersections[0].laneSet[1].maneuvers", "null"},
    {"intersections[0].laneSet[1].connectsTo", "null"},
    {"intersections[0].laneSet[1].laneAttributes.laneType.vehicle", "int"},
    /* a crosswalk */
    {"intersections[0].laneSet[2].laneAttributes.laneType.vehicle", "null"},
    {"intersections[0].laneSet[2].laneAttributes.laneType.crosswalk", "int"},
    {"intersections[0].laneSet[2].connectsTo[0].connectingLane.maneuver", "null"},
};

static const pt TOKEN[] = {
    {"access_token", "str"},  {"expires_in", "int"},
    {"refresh_token", "str"}, {"refresh_expires_in", "int"},
    {"token_type", "str"},    {"not-before-policy", "int"},
    {"scope", "str"},
};

static const pt SUMMARY[] = {{"id", "int"}, {"revision", "int"}, {"msg", "str"}};
static const pt SPAT[] = {
    {"intersections[0].id.id", "int"},
    {"intersections[0].revision", "int"},
    {"intersections[0].status", "int"},
    {"intersections[0].states[0].signalGroup", "int"},
    {"intersections[0].states[0].stateTimeSpeed[0].eventState", "int"},
    {"intersections[0].states[0].stateTimeSpeed[0].timing.minEndTimeStamp", "int"},
};

#define CHECK(d, root, table, what)                                                                \
    check_types((d), (root), (table), sizeof(table) / sizeof((table)[0]), (what))

/* Every message of a frame or /current answer against META + its kind's table. */
static int check_messages(const char *body, bool bsm, const char *what)
{
    tsi_json d;
    json_doc(&d, body);
    assert_true(tsi_json_is_array(&d, 0));
    int n = 0;
    for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i), n++) {
        CHECK(&d, i, META, what);
        if (bsm)
            CHECK(&d, i, BSM, what);
        else
            CHECK(&d, i, PSM, what);
    }
    tsi_json_free(&d);
    return n;
}

static bool is_base64(const char *s, size_t n)
{
    if (n == 0 || n % 4)
        return false;
    for (size_t k = 0; k < n; k++)
        if (!(s[k] >= 'A' && s[k] <= 'Z') && !(s[k] >= 'a' && s[k] <= 'z') &&
            !(s[k] >= '0' && s[k] <= '9') && s[k] != '+' && s[k] != '/' && s[k] != '=')
            return false;
    return true;
}

static void test_document_types(void **state)
{
    (void)state;
    sim_t s;
    const char *extra[] = {"--intersections", "4", "--seed", "5", "--speed", "10", NULL};
    sim_start(&s, extra);
    char url[256], *body = NULL;
    /* auth: bad credentials are a 400; the token as documented */
    snprintf(url, sizeof url, "%s/api/auth/client", s.base);
    assert_int_equal(th_http("POST", url, NULL, "client_id=tsi-sim&client_secret=no", NULL, NULL),
                     400);
    assert_int_equal(th_http("POST", url, NULL, "", NULL, NULL), 400);
    assert_int_equal(
        th_http("POST", url, NULL, "client_id=tsi-sim&client_secret=tsi-sim-secret", &body, NULL),
        200);
    tsi_json d;
    json_doc(&d, body);
    CHECK(&d, 0, TOKEN, "token");
    tsi_json_free(&d);
    free(body);
    char *tok = sim_token(&s);

    /* MapData, decoded */
    assert_int_equal(sim_get(&s, "/api/mapdata/decoded", tok, &body), 200);
    json_doc(&d, body);
    int nmd = 0;
    for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i), nmd++)
        CHECK(&d, i, MAPDATA, "/api/mapdata/decoded");
    assert_int_equal(nmd, 4);
    tsi_json_free(&d);
    tsi_mapdata md;
    tsi_error e = {0};
    assert_int_equal(tsi_mapdata_decode(body, strlen(body), &md, &e), 0);
    assert_int_equal(md.forms, TSI_FORM_LANETYPE_NULLS | TSI_FORM_INTEGER);
    assert_int_equal(md.unreadable, 0);
    assert_int_equal(md.items[0].vehicle_lanes, 8);
    assert_int_equal(md.items[0].nlanes, 12);
    assert_int_equal(md.items[0].speed_limit_type, 5);
    free(body);
    char path[128];
    snprintf(path, sizeof path, "/api/mapdata/%lld/decoded", (long long)md.items[1].id);
    assert_int_equal(sim_get(&s, path, tok, &body), 200);
    json_doc(&d, body);
    CHECK(&d, 0, MAPDATA, path);
    tsi_json_free(&d);
    free(body);

    /* MapData summaries: {id, revision, msg (base64)} */
    assert_int_equal(sim_get(&s, "/api/mapdata", tok, &body), 200);
    json_doc(&d, body);
    int nsum = 0;
    for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i), nsum++) {
        CHECK(&d, i, SUMMARY, "/api/mapdata");
        int64_t id = -1, rev = -1;
        tsi_json_int64(&d, tsi_json_get(&d, i, "id"), &id);
        tsi_json_int64(&d, tsi_json_get(&d, i, "revision"), &rev);
        assert_int_equal(id, md.items[nsum].id);
        assert_int_equal(rev, md.items[nsum].revision);
        size_t n;
        const char *m = tsi_json_raw(&d, tsi_json_get(&d, i, "msg"), &n);
        assert_true(is_base64(m, n));
    }
    assert_int_equal(nsum, 4);
    tsi_json_free(&d);
    free(body);
    snprintf(path, sizeof path, "/api/mapdata/%lld", (long long)md.items[2].id);
    assert_int_equal(sim_get(&s, path, tok, &body), 200);
    json_doc(&d, body);
    CHECK(&d, 0, SUMMARY, path);
    tsi_json_free(&d);
    free(body);
    assert_int_equal(sim_get(&s, "/api/mapdata/999999", tok, NULL), 404);
    assert_int_equal(sim_get(&s, "/api/mapdata/12x", tok, NULL), 404);

    /* BSM and PSM: every message of /current, and stream frames */
    for (int i = 0; i < 200 && sim_status(&s, "ticks") < 8; i++)
        usleep(50000);
    assert_int_equal(sim_get(&s, "/api/bsm/current", tok, &body), 200);
    assert_true(check_messages(body, true, "/api/bsm/current") > 10);
    free(body);
    assert_int_equal(sim_get(&s, "/api/psm/current", tok, &body), 200);
    check_messages(body, false, "/api/psm/current");
    free(body);
    for (int kind = 0; kind < 2; kind++) {
        char *key = sim_key(&s, tok, kind ? "psm" : "bsm");
        capture c;
        capture_init(&c, "%s/ws/%s?key=%s", s.ws, kind ? "psm" : "bsm", key);
        capture_run(&c, 1500, false);
        assert_true(c.n >= 1);
        int msgs = 0;
        for (size_t f = 0; f < c.n; f++)
            msgs += check_messages(c.frames[f], !kind, kind ? "/ws/psm" : "/ws/bsm");
        assert_true(kind || msgs > 0);
        capture_free(&c);
        free(key);
    }

    /* SPaT: UPER (base64 strings) when no format is given, as documented */
    assert_int_equal(sim_get(&s, "/api/spat", tok, &body), 200);
    json_doc(&d, body);
    int nsp = 0;
    for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i), nsp++) {
        assert_string_equal(json_type(&d, i), "str");
        size_t n;
        const char *m = tsi_json_raw(&d, i, &n);
        assert_true(is_base64(m, n));
    }
    assert_int_equal(nsp, 4);
    tsi_json_free(&d);
    free(body);
    assert_int_equal(sim_get(&s, "/api/spat?format=UPER", tok, &body), 200);
    assert_int_equal(count_array(body), 4);
    free(body);
    /* JSON and JSON_COMPLETE: JSON strings holding the SPaT; JSON_METADATA: objects */
    static const char *const fmts[] = {"JSON", "JSON_COMPLETE", "JSON_METADATA"};
    for (int f = 0; f < 3; f++) {
        snprintf(path, sizeof path, "/api/spat?format=%s", fmts[f]);
        assert_int_equal(sim_get(&s, path, tok, &body), 200);
        json_doc(&d, body);
        int first = tsi_json_first(&d, 0);
        if (f < 2) {
            assert_string_equal(json_type(&d, first), "str");
            tsi_spat sp;
            assert_int_equal(tsi_spat_decode(body, strlen(body), &sp, &e), 0);
            assert_int_equal(sp.n, 4);
            tsi_spat_free(&sp);
        } else {
            static const pt META_SPAT[] = {{"timestamp", "int"},
                                           {"rsuName", "str"},
                                           {"spatJ2735", "str"},
                                           {"spatJson", "obj"}};
            CHECK(&d, first, META_SPAT, path);
            CHECK(&d, json_at(&d, first, "spatJson"), SPAT, path);
        }
        tsi_json_free(&d);
        free(body);
    }
    assert_int_equal(sim_get(&s, "/api/spat?format=XML", tok, NULL), 400);
    /* the SPaT stream: UPER frames by default, JSON_COMPLETE objects when asked */
    for (int f = 0; f < 2; f++) {
        assert_int_equal(
            sim_get(&s, f ? "/api/spat/all?format=JSON_COMPLETE" : "/api/spat/all", tok, &body),
            200);
        json_doc(&d, body);
        char wsurl[256];
        assert_true(tsi_json_str(&d, tsi_json_get(&d, 0, "url"), wsurl, sizeof wsurl) > 0);
        tsi_json_free(&d);
        free(body);
        capture c;
        capture_init(&c, "%s%s", s.ws, wsurl);
        capture_run(&c, 1200, false);
        assert_true(c.n >= 4);
        for (size_t k = 0; k < c.n; k++) {
            if (f == 0) {
                assert_true(is_base64(c.frames[k], strlen(c.frames[k])));
            } else {
                json_doc(&d, c.frames[k]);
                CHECK(&d, 0, SPAT, "/ws/spat JSON_COMPLETE");
                tsi_json_free(&d);
            }
        }
        capture_free(&c);
    }

    /* uploads: {msgCnt, id} of each message */
    snprintf(url, sizeof url, "%s/api/bsm/json", s.base);
    char h[1100];
    snprintf(h, sizeof h, "Authorization: Bearer %s", tok);
    const char *hdr[] = {h, "Content-Type: application/json", NULL};
    assert_int_equal(th_http("POST", url, hdr,
                             "{\"bsmJson\":{\"coreData\":{\"msgCnt\":17,\"id\":4242}}}", &body,
                             NULL),
                     200);
    assert_string_equal(body, "{\"msgCnt\":17,\"id\":4242}");
    free(body);
    assert_int_equal(
        th_http("POST", url, hdr, "[{\"psmJson\":{\"msgCnt\":3,\"id\":9}},{\"x\":1}]", &body, NULL),
        200);
    assert_string_equal(body, "[{\"msgCnt\":3,\"id\":9},{\"msgCnt\":null,\"id\":null}]");
    free(body);
    assert_int_equal(th_http("POST", url, hdr, "7", NULL, NULL), 400);
    assert_int_equal(th_http("POST", url, hdr, "[1,", NULL, NULL), 400);

    tsi_mapdata_free(&md);
    free(tok);
    assert_int_equal(th_proc_stop(&s.proc), 0);
}

/* BSM typed values of every message of a /current answer; returns the forms seen. */
static int brake_forms(const char *body, int *n)
{
    tsi_json d;
    json_doc(&d, body);
    int forms = 0;
    *n = 0;
    for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i), (*n)++) {
        tsi_msg m;
        tsi_error e = {0};
        assert_int_equal(tsi_msg_from_json(&d, i, TSI_MSG_BSM, &m, &e), 0);
        /* the simulator's facts, whatever the encoding: brakes all four wheels or none,
         * traction unavailable, abs off, forward gears */
        assert_true(m.wheel_bits == 0 || m.wheel_bits == 0x0F);
        assert_string_equal(m.wheel_brakes, m.wheel_bits ? "01111" : "00000");
        assert_int_equal(m.traction, 0);
        assert_int_equal(m.abs, 1);
        assert_int_equal(m.scs, 0);
        assert_int_equal(m.brake_boost, 0);
        assert_int_equal(m.aux_brakes, 0);
        assert_int_equal(m.transmission, 2);
        assert_int_equal(m.unreadable, 0);
        forms |= m.forms;
    }
    tsi_json_free(&d);
    return forms;
}

/* --encoding legacy: the former string forms, read to the same values; the same MapData
 * as the document encoding of the same seed. */
static void test_legacy_encoding(void **state)
{
    (void)state;
    sim_t doc, leg;
    const char *e1[] = {"--intersections",      "3", "--seed", "9", "--speed", "10", "--start",
                        "2026-11-25T12:00:00Z", NULL};
    const char *e2[] = {"--intersections", "3",      "--seed",  "9",
                        "--speed",         "10",     "--start", "2026-11-25T12:00:00Z",
                        "--encoding",      "legacy", NULL};
    sim_start(&doc, e1);
    sim_start(&leg, e2);
    char *td = sim_token(&doc), *tl = sim_token(&leg);
    char *bd = NULL, *bl = NULL;
    assert_int_equal(sim_get(&doc, "/api/mapdata/decoded", td, &bd), 200);
    assert_int_equal(sim_get(&leg, "/api/mapdata/decoded", tl, &bl), 200);
    /* the legacy strings */
    assert_non_null(strstr(bl, "\"laneType\":\"vehicle\""));
    assert_non_null(strstr(bl, "\"maneuver\":\"straight\""));
    assert_non_null(strstr(bl, "\"type\":\"vehicleMaxSpeed\""));
    assert_null(strstr(bl, "null"));
    assert_null(strstr(bd, "\"laneType\":\"vehicle\""));
    tsi_mapdata a, b;
    tsi_error e = {0};
    assert_int_equal(tsi_mapdata_decode(bd, strlen(bd), &a, &e), 0);
    assert_int_equal(tsi_mapdata_decode(bl, strlen(bl), &b, &e), 0);
    assert_int_equal(b.forms, TSI_FORM_LANETYPE_STRING | TSI_FORM_NAME);
    assert_int_equal(a.unreadable + b.unreadable, 0);
    assert_int_equal(a.n, 3);
    assert_int_equal(b.n, 3);
    for (int i = 0; i < a.n; i++) {
        const tsi_map_intersection *x = &a.items[i], *y = &b.items[i];
        assert_int_equal(x->id, y->id);
        assert_int_equal(x->revision, y->revision);
        assert_int_equal(x->vehicle_lanes, y->vehicle_lanes);
        assert_true(x->speed_limit == y->speed_limit);
        assert_int_equal(x->speed_limit_type, y->speed_limit_type);
        assert_int_equal(x->nlanes, y->nlanes);
        for (int l = 0; l < x->nlanes; l++) {
            const tsi_lane *p = &x->lanes[l], *q = &y->lanes[l];
            assert_int_equal(p->type, q->type);
            assert_int_equal(p->nnodes, q->nnodes);
            for (int k = 0; k < p->nnodes; k++)
                assert_true(p->lat[k] == q->lat[k] && p->lon[k] == q->lon[k]);
            assert_int_equal(p->nconnects, q->nconnects);
            for (int k = 0; k < p->nconnects; k++) {
                assert_int_equal(p->connects[k].lane, q->connects[k].lane);
                assert_int_equal(p->connects[k].maneuver, q->connects[k].maneuver);
                assert_int_equal(p->connects[k].signal_group, q->connects[k].signal_group);
            }
        }
    }
    tsi_mapdata_free(&a);
    tsi_mapdata_free(&b);
    free(bd);
    free(bl);
    /* BSMs: integers in one, strings in the other, the same typed values */
    for (int i = 0; i < 200 && (sim_status(&doc, "ticks") < 8 || sim_status(&leg, "ticks") < 8);
         i++)
        usleep(50000);
    assert_int_equal(sim_get(&doc, "/api/bsm/current", td, &bd), 200);
    assert_int_equal(sim_get(&leg, "/api/bsm/current", tl, &bl), 200);
    int nd, nl;
    assert_int_equal(brake_forms(bd, &nd), TSI_FORM_INTEGER);
    assert_int_equal(brake_forms(bl, &nl), TSI_FORM_BITSTRING | TSI_FORM_NAME);
    assert_true(nd > 10 && nl > 10);
    assert_non_null(strstr(bd, "\"clientId\":null"));
    assert_non_null(strstr(bl, "\"clientId\":\"vcc-public\""));
    free(bd);
    free(bl);
    free(td);
    free(tl);
    assert_int_equal(th_proc_stop(&doc.proc), 0);
    assert_int_equal(th_proc_stop(&leg.proc), 0);
}

/* A bad --encoding is refused with exit 2. */
static void test_encoding_flag(void **state)
{
    (void)state;
    char out[4096];
    const char *args[] = {"sim", "--encoding", "xml", NULL};
    assert_int_equal(th_run_tsi(args, NULL, out, sizeof out), 2);
    assert_non_null(strstr(out, "--encoding"));
    const char *help[] = {"sim", "--help", NULL};
    assert_int_equal(th_run_tsi(help, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "document|legacy"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_document_types),
        cmocka_unit_test(test_legacy_encoding),
        cmocka_unit_test(test_encoding_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
