/* vcc/decode.c — see decode.h */
#include "vcc/decode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"

#define TS_MIN_MS 946684800000LL  /* 2000-01-01 */
#define TS_MAX_MS 4102444800000LL /* 2100-01-01 */

void tsi_decoder_init(tsi_decoder *dec)
{
    dec->tok = NULL;
    dec->cap = 0;
}

void tsi_decoder_free(tsi_decoder *dec)
{
    if (dec == NULL)
        return;
    free(dec->tok);
    dec->tok = NULL;
    dec->cap = 0;
}

static const char *type_label(int t)
{
    return t == TSI_MSG_BSM ? "BSM" : t == TSI_MSG_PSM ? "PSM" : "message";
}

/* Prefixes err->message with the message kind: "BSM rejected: <sentence>". */
static int reject(tsi_error *err, int rc, int type)
{
    if (err) {
        char m[sizeof err->message];
        snprintf(m, sizeof m, "%s rejected: %s", type_label(type), err->message);
        memcpy(err->message, m, sizeof m);
        err->code = rc;
    }
    return rc;
}

/* Optional number in [lo, hi]: absent or null → NAN. */
static int opt_num(const tsi_json *d, int i, double lo, double hi, double *out, const char *what,
                   tsi_error *err)
{
    if (i < 0 || tsi_json_is_null(d, i)) {
        *out = NAN;
        return 0;
    }
    return tsi_json_num_range(d, i, lo, hi, out, what, err);
}

/* Optional integer in [lo, hi]: absent or null → dflt. */
static int opt_int(const tsi_json *d, int i, int64_t lo, int64_t hi, int64_t dflt, int64_t *out,
                   const char *what, tsi_error *err)
{
    if (i < 0 || tsi_json_is_null(d, i)) {
        *out = dflt;
        return 0;
    }
    int rc = tsi_json_int64(d, i, out);
    size_t n;
    const char *raw = tsi_json_raw(d, i, &n);
    if (n > 40)
        n = 40;
    if (rc == TSI_E_TYPE)
        return tsi_error_set(err, rc, "field is not a number", "%s = %.*s", what, (int)n, raw);
    if (rc == 0 && (*out < lo || *out > hi))
        rc = TSI_E_RANGE;
    if (rc == TSI_E_RANGE)
        return tsi_error_set(err, rc, "value out of range", "%s = %.*s (valid %lld..%lld)", what,
                             (int)n, raw, (long long)lo, (long long)hi);
    return rc;
}

static int req_int(const tsi_json *d, int i, int64_t lo, int64_t hi, int64_t *out, const char *what,
                   tsi_error *err)
{
    if (i < 0 || tsi_json_is_null(d, i))
        return tsi_error_set(err, TSI_E_MISSING, "required field is missing or null", "%s", what);
    return opt_int(d, i, lo, hi, 0, out, what, err);
}

static int opt_str(const tsi_json *d, int i, char *buf, size_t cap, const char *what,
                   tsi_error *err)
{
    buf[0] = '\0';
    if (i < 0 || tsi_json_is_null(d, i))
        return 0;
    int rc = tsi_json_str(d, i, buf, cap);
    if (rc >= 0)
        return 0;
    if (rc == TSI_E_TYPE)
        return tsi_error_set(err, rc, "field is not a string", "%s", what);
    if (rc == TSI_E_TOO_BIG)
        return tsi_error_set(err, rc, "string too long", "%s longer than %zu bytes", what, cap - 1);
    return tsi_error_set(err, rc, "string is not valid JSON text", "%s", what);
}

static int opt_object(const tsi_json *d, int i, const char *what, tsi_error *err)
{
    if (i < 0 || tsi_json_is_null(d, i) || tsi_json_is_object(d, i))
        return 0;
    return tsi_error_set(err, TSI_E_TYPE, "field is not an object", "%s", what);
}

#define KEY_IS(s, n, lit) ((n) == sizeof(lit) - 1 && memcmp((s), (lit), sizeof(lit) - 1) == 0)

static int decode_accel(const tsi_json *d, int acc, tsi_msg *m, bool psm, tsi_error *err)
{
    int rc = opt_object(d, acc, psm ? "psmJson.accelSet" : "coreData.accelSet", err);
    if (rc < 0 || acc < 0 || tsi_json_is_null(d, acc))
        return rc;
    int lon = -1, lat = -1, vert = -1, yaw = -1;
    for (int k = tsi_json_first_key(d, acc); k >= 0; k = tsi_json_next_key(d, acc, k)) {
        size_t n;
        const char *s = tsi_json_raw(d, k, &n);
        if (KEY_IS(s, n, "lon"))
            lon = k + 1;
        else if (KEY_IS(s, n, "lat"))
            lat = k + 1;
        else if (KEY_IS(s, n, "vert"))
            vert = k + 1;
        else if (KEY_IS(s, n, "yaw"))
            yaw = k + 1;
    }
#define ACC(name) (psm ? "psmJson.accelSet." name : "coreData.accelSet." name)
    if ((rc = opt_num(d, lon, -20.0, 20.0, &m->accel_lon, ACC("lon"), err)) < 0 ||
        (rc = opt_num(d, lat, -20.0, 20.0, &m->accel_lat, ACC("lat"), err)) < 0 ||
        (rc = opt_num(d, vert, -3.4, 3.4, &m->accel_vert, ACC("vert"), err)) < 0)
        return rc;
    return opt_num(d, yaw, -327.67, 327.67, &m->accel_yaw, ACC("yaw"), err);
#undef ACC
}

static void msg_init(tsi_msg *m, int type)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    m->msg_cnt = -1;
    m->sec_mark = TSI_SECMARK_UNAVAILABLE;
    m->lat = m->lon = NAN;
    m->elev = m->speed = m->heading = NAN;
    m->accel_lon = m->accel_lat = m->accel_vert = m->accel_yaw = NAN;
    m->width_m = m->length_m = NAN;
    m->basic_type = -1;
}

/* BSM coreData or PSM psmJson, in one pass over its keys (field names in messages are
 * literal, so nothing is formatted unless a field is rejected). */
static int decode_core(const tsi_json *d, int o, bool psm, tsi_msg *m, tsi_error *err)
{
    int id = -1, cnt = -1, sec = -1, lat = -1, lon = -1, elev = -1, speed = -1, heading = -1;
    int accel = -1, size = -1, brakes = -1, pos = -1, basic = -1;
    for (int k = tsi_json_first_key(d, o); k >= 0; k = tsi_json_next_key(d, o, k)) {
        size_t n;
        const char *s = tsi_json_raw(d, k, &n);
        int v = k + 1;
        switch (n) {
        case 2:
            if (KEY_IS(s, n, "id"))
                id = v;
            break;
        case 3:
            if (KEY_IS(s, n, "lat"))
                lat = v;
            else if (KEY_IS(s, n, "lon"))
                lon = v;
            break;
        case 4:
            if (KEY_IS(s, n, "elev"))
                elev = v;
            else if (KEY_IS(s, n, "size"))
                size = v;
            break;
        case 5:
            if (KEY_IS(s, n, "speed"))
                speed = v;
            break;
        case 6:
            if (KEY_IS(s, n, "msgCnt"))
                cnt = v;
            else if (KEY_IS(s, n, "brakes"))
                brakes = v;
            break;
        case 7:
            if (KEY_IS(s, n, "secMark"))
                sec = v;
            else if (KEY_IS(s, n, "heading"))
                heading = v;
            break;
        case 8:
            if (KEY_IS(s, n, "accelSet"))
                accel = v;
            else if (KEY_IS(s, n, "position"))
                pos = v;
            break;
        case 9:
            if (KEY_IS(s, n, "basicType"))
                basic = v;
            break;
        }
    }
#define F(name)  (psm ? "psmJson." name : "coreData." name)
#define FP(name) (psm ? "psmJson.position." name : "coreData." name)
    int rc;
    int64_t v;
    if (psm) {
        if ((rc = opt_int(d, basic, INT32_MIN, INT32_MAX, 0, &v, "psmJson.basicType", err)) < 0)
            return rc;
        if (v < 0 || v > 4)
            return tsi_error_set(err, TSI_E_UNKNOWN_TYPE, "unknown PSM basicType",
                                 "psmJson.basicType = %lld (valid 0..4)", (long long)v);
        m->basic_type = (int)v;
        if (pos < 0 || tsi_json_is_null(d, pos))
            return tsi_error_set(err, TSI_E_MISSING, "required field is missing or null",
                                 "psmJson.position");
        if (!tsi_json_is_object(d, pos))
            return tsi_error_set(err, TSI_E_TYPE, "field is not an object", "psmJson.position");
        lat = lon = elev = -1;
        for (int k = tsi_json_first_key(d, pos); k >= 0; k = tsi_json_next_key(d, pos, k)) {
            size_t n;
            const char *s = tsi_json_raw(d, k, &n);
            if (KEY_IS(s, n, "lat"))
                lat = k + 1;
            else if (KEY_IS(s, n, "lon"))
                lon = k + 1;
            else if (KEY_IS(s, n, "elev"))
                elev = k + 1;
        }
    }
    if ((rc = req_int(d, id, -2147483648LL, 4294967295LL, &m->id, F("id"), err)) < 0)
        return rc;
    if ((rc = opt_int(d, cnt, 0, 127, -1, &v, F("msgCnt"), err)) < 0)
        return rc;
    m->msg_cnt = (int)v;
    if ((rc = opt_int(d, sec, 0, 65535, TSI_SECMARK_UNAVAILABLE, &v, F("secMark"), err)) < 0)
        return rc;
    m->sec_mark = (int)v;
    if ((rc = tsi_json_num_range(d, lat, -90, 90, &m->lat, FP("lat"), err)) < 0 ||
        (rc = tsi_json_num_range(d, lon, -180, 180, &m->lon, FP("lon"), err)) < 0 ||
        (rc = opt_num(d, elev, -409.6, 6143.9, &m->elev, FP("elev"), err)) < 0 ||
        (rc = opt_num(d, speed, 0, 163.82, &m->speed, F("speed"), err)) < 0 ||
        (rc = opt_num(d, heading, 0, 360, &m->heading, F("heading"), err)) < 0)
        return rc;
    if (m->heading == 360)
        m->heading = 0;
    if ((rc = decode_accel(d, accel, m, psm, err)) < 0)
        return rc;
    if (psm)
        return 0;
#undef F
#undef FP
    if ((rc = opt_object(d, size, "coreData.size", err)) < 0)
        return rc;
    if (size >= 0 && !tsi_json_is_null(d, size)) {
        double cm;
        if ((rc = opt_num(d, tsi_json_get(d, size, "width"), 0, 1023, &cm, "coreData.size.width",
                          err)) < 0)
            return rc;
        m->width_m = cm > 0 ? cm / 100.0 : NAN;
        if ((rc = opt_num(d, tsi_json_get(d, size, "length"), 0, 4095, &cm, "coreData.size.length",
                          err)) < 0)
            return rc;
        m->length_m = cm > 0 ? cm / 100.0 : NAN;
    }
    if ((rc = opt_object(d, brakes, "coreData.brakes", err)) < 0)
        return rc;
    int wb = tsi_json_get(d, brakes, "wheelBrakes");
    if (tsi_json_is_string(d, wb) &&
        tsi_json_str(d, wb, m->wheel_brakes, sizeof m->wheel_brakes) < 0)
        m->wheel_brakes[0] = '\0';
    return 0;
}

int tsi_msg_from_json(const tsi_json *d, int obj, int want, tsi_msg *out, tsi_error *err)
{
    int rc;
    msg_init(out, want);
    if (!tsi_json_is_object(d, obj)) {
        tsi_error_set(err, TSI_E_NOT_OBJECT, "not a JSON object", "a message must be an object");
        return reject(err, TSI_E_NOT_OBJECT, want);
    }
    int ts = -1, rsu = -1, loc = -1, bj = -1, pj = -1;
    for (int k = tsi_json_first_key(d, obj); k >= 0; k = tsi_json_next_key(d, obj, k)) {
        size_t n;
        const char *s = tsi_json_raw(d, k, &n);
        if (KEY_IS(s, n, "timestamp"))
            ts = k + 1;
        else if (KEY_IS(s, n, "rsuName"))
            rsu = k + 1;
        else if (KEY_IS(s, n, "locationName"))
            loc = k + 1;
        else if (KEY_IS(s, n, "bsmJson"))
            bj = k + 1;
        else if (KEY_IS(s, n, "psmJson"))
            pj = k + 1;
    }
    bool has_b = bj >= 0 && !tsi_json_is_null(d, bj);
    bool has_p = pj >= 0 && !tsi_json_is_null(d, pj);
    int type = has_b && !has_p ? TSI_MSG_BSM : has_p && !has_b ? TSI_MSG_PSM : 0;
    if (type == 0 || (want && want != type)) {
        tsi_error_set(err, TSI_E_UNKNOWN_TYPE, "unknown message type",
                      has_b && has_p ? "both bsmJson and psmJson"
                      : want         ? (want == TSI_MSG_BSM ? "no bsmJson" : "no psmJson")
                                     : "neither bsmJson nor psmJson");
        return reject(err, TSI_E_UNKNOWN_TYPE, want);
    }
    out->type = type;
    if ((rc = req_int(d, ts, TS_MIN_MS, TS_MAX_MS, &out->timestamp_ms, "timestamp (epoch ms)",
                      err)) < 0 ||
        (rc = opt_str(d, rsu, out->rsu_name, sizeof out->rsu_name, "rsuName", err)) < 0 ||
        (rc = opt_str(d, loc, out->location_name, sizeof out->location_name, "locationName", err)) <
            0)
        return reject(err, rc, type);

    int core;
    if (type == TSI_MSG_BSM) {
        if (!tsi_json_is_object(d, bj)) {
            tsi_error_set(err, TSI_E_TYPE, "field is not an object", "bsmJson");
            return reject(err, TSI_E_TYPE, type);
        }
        core = tsi_json_get(d, bj, "coreData");
        if (core < 0 || tsi_json_is_null(d, core)) {
            tsi_error_set(err, TSI_E_MISSING, "required field is missing or null",
                          "bsmJson.coreData");
            return reject(err, TSI_E_MISSING, type);
        }
        if (!tsi_json_is_object(d, core)) {
            tsi_error_set(err, TSI_E_TYPE, "field is not an object", "bsmJson.coreData");
            return reject(err, TSI_E_TYPE, type);
        }
    } else {
        core = pj;
        if (!tsi_json_is_object(d, core)) {
            tsi_error_set(err, TSI_E_TYPE, "field is not an object", "psmJson");
            return reject(err, TSI_E_TYPE, type);
        }
    }
    if ((rc = decode_core(d, core, type == TSI_MSG_PSM, out, err)) < 0)
        return reject(err, rc, type);
    return 0;
}

static int parse_with(tsi_decoder *dec, tsi_json *d, const char *js, size_t len, int max,
                      tsi_error *err)
{
    if (dec->cap == 0) {
        dec->cap = 1024;
        dec->tok = malloc((size_t)dec->cap * sizeof *dec->tok);
        if (dec->tok == NULL) {
            dec->cap = 0;
            return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
        }
    }
    for (;;) {
        int rc = tsi_json_parse(d, js, len, dec->tok, dec->cap, err);
        if (rc != TSI_E_TOO_BIG || dec->cap >= max)
            return rc;
        /* a bound from the text: a token needs at least 1 byte, plus one */
        int want = dec->cap * 4;
        if ((size_t)want > len + 1)
            want = (int)(len + 1);
        if (want > max)
            want = max;
        if (want <= dec->cap)
            return rc;
        tsi_jtok *t = realloc(dec->tok, (size_t)want * sizeof *t);
        if (t == NULL)
            return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
        dec->tok = t;
        dec->cap = want;
    }
}

static int decode_one(const char *js, size_t len, int want, tsi_msg *out, tsi_error *err)
{
    tsi_jtok toks[512];
    tsi_json d;
    int rc = tsi_json_parse(&d, js, len, toks, 512, err);
    if (rc == TSI_E_TOO_BIG) {
        tsi_decoder dec;
        tsi_decoder_init(&dec);
        rc = parse_with(&dec, &d, js, len, TSI_MSG_MAX_TOKENS, err);
        if (rc >= 0)
            rc = tsi_msg_from_json(&d, 0, want, out, err);
        else
            reject(err, rc, want);
        tsi_decoder_free(&dec);
        return rc < 0 ? rc : 0;
    }
    if (rc < 0) {
        msg_init(out, want);
        return reject(err, rc, want);
    }
    return tsi_msg_from_json(&d, 0, want, out, err);
}

int tsi_msg_decode(const char *js, size_t len, tsi_msg *out, tsi_error *err)
{
    return decode_one(js, len, 0, out, err);
}

int tsi_bsm_decode(const char *js, size_t len, tsi_bsm *out, tsi_error *err)
{
    return decode_one(js, len, TSI_MSG_BSM, out, err);
}

int tsi_psm_decode(const char *js, size_t len, tsi_psm *out, tsi_error *err)
{
    return decode_one(js, len, TSI_MSG_PSM, out, err);
}

int tsi_frame_decode(tsi_decoder *dec, const char *js, size_t len, tsi_frame_cb cb, void *ud,
                     tsi_error *err)
{
    tsi_json d;
    int rc = parse_with(dec, &d, js, len, TSI_FRAME_MAX_TOKENS, err);
    if (rc < 0)
        return rc;
    tsi_msg m;
    tsi_error e;
    if (tsi_json_is_object(&d, 0)) {
        memset(&e, 0, sizeof e);
        rc = tsi_msg_from_json(&d, 0, 0, &m, &e);
        cb(ud, 0, rc < 0 ? NULL : &m, rc, &e);
        return 1;
    }
    if (!tsi_json_is_array(&d, 0))
        return tsi_error_set(err, TSI_E_NOT_OBJECT, "a frame must be a JSON array or object", NULL);
    int n = 0;
    for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i), n++) {
        memset(&e, 0, sizeof e);
        rc = tsi_msg_from_json(&d, i, 0, &m, &e);
        cb(ud, n, rc < 0 ? NULL : &m, rc, &e);
    }
    return n;
}

/* ---- MapData ---- */

static tsi_lane_type lane_type(const tsi_json *d, int attrs)
{
    int lt = tsi_json_get(d, attrs, "laneType");
    int name = -1;
    if (tsi_json_is_string(d, lt))
        name = lt;
    else if (tsi_json_is_object(d, lt))
        name = tsi_json_first_key(d, lt); /* {"vehicle": {...}} form */
    if (name < 0)
        return TSI_LANE_OTHER;
    if (tsi_json_key_is(d, name, "vehicle"))
        return TSI_LANE_VEHICLE;
    if (tsi_json_key_is(d, name, "crosswalk"))
        return TSI_LANE_CROSSWALK;
    if (tsi_json_key_is(d, name, "bikeLane"))
        return TSI_LANE_BIKE;
    if (tsi_json_key_is(d, name, "sidewalk"))
        return TSI_LANE_SIDEWALK;
    return TSI_LANE_OTHER;
}

static int decode_intersection(const tsi_json *d, int g, tsi_arena *a, tsi_map_intersection *x,
                               tsi_error *err)
{
    int rc;
    int64_t v;
    memset(x, 0, sizeof *x);
    x->ref_elev = x->lane_width_m = x->speed_limit = NAN;
    if (!tsi_json_is_object(d, g))
        return tsi_error_set(err, TSI_E_NOT_OBJECT, "intersection is not an object", NULL);
    int id = tsi_json_get(d, g, "id");
    if (id < 0 || tsi_json_is_null(d, id))
        return tsi_error_set(err, TSI_E_MISSING, "required field is missing or null",
                             "intersection id");
    if (!tsi_json_is_object(d, id))
        return tsi_error_set(err, TSI_E_TYPE, "field is not an object", "intersection id");
    if ((rc = opt_int(d, tsi_json_get(d, id, "region"), 0, 65535, 0, &v, "id.region", err)) < 0)
        return rc;
    x->region = (int)v;
    if ((rc = req_int(d, tsi_json_get(d, id, "id"), 0, 65535, &v, "id.id", err)) < 0)
        return rc;
    x->local_id = (int)v;
    x->id = (int64_t)x->region * 65536 + x->local_id;
    if ((rc = opt_int(d, tsi_json_get(d, g, "revision"), 0, 127, 0, &v, "revision", err)) < 0)
        return rc;
    x->revision = (int)v;
    if ((rc = opt_str(d, tsi_json_get(d, g, "name"), x->name, sizeof x->name, "name", err)) < 0)
        return rc;
    int ref = tsi_json_get(d, g, "refPoint");
    if (ref < 0 || tsi_json_is_null(d, ref))
        return tsi_error_set(err, TSI_E_MISSING, "required field is missing or null", "refPoint");
    if (!tsi_json_is_object(d, ref))
        return tsi_error_set(err, TSI_E_TYPE, "field is not an object", "refPoint");
    if ((rc = tsi_json_num_range(d, tsi_json_get(d, ref, "lat"), -90, 90, &x->ref_lat,
                                 "refPoint.lat", err)) < 0)
        return rc;
    if ((rc = tsi_json_num_range(d, tsi_json_get(d, ref, "lon"), -180, 180, &x->ref_lon,
                                 "refPoint.lon", err)) < 0)
        return rc;
    if ((rc = opt_num(d, tsi_json_get(d, ref, "elevation"), -409.6, 6143.9, &x->ref_elev,
                      "refPoint.elevation", err)) < 0)
        return rc;
    if ((rc = opt_num(d, tsi_json_get(d, g, "laneWidth"), 0, 327.67, &x->lane_width_m, "laneWidth",
                      err)) < 0)
        return rc;
    if (x->lane_width_m == 0)
        x->lane_width_m = NAN;
    int sl = tsi_json_get(d, g, "speedLimits");
    int s0 = tsi_json_first(d, sl);
    if (s0 >= 0 && (rc = opt_num(d, tsi_json_get(d, s0, "speed"), 0, 163.82, &x->speed_limit,
                                 "speedLimits[0].speed", err)) < 0)
        return rc;

    int ls = tsi_json_get(d, g, "laneSet");
    if (ls >= 0 && !tsi_json_is_null(d, ls) && !tsi_json_is_array(d, ls))
        return tsi_error_set(err, TSI_E_TYPE, "field is not an array", "laneSet");
    int nl = tsi_json_is_array(d, ls) ? d->tok[ls].size : 0;
    x->lanes = nl ? tsi_arena_calloc(a, (size_t)nl * sizeof *x->lanes) : NULL;
    for (int l = tsi_json_first(d, ls); l >= 0; l = tsi_json_next(d, ls, l)) {
        tsi_lane *ln = &x->lanes[x->nlanes];
        if (!tsi_json_is_object(d, l))
            return tsi_error_set(err, TSI_E_NOT_OBJECT, "lane is not an object", "laneSet[%d]",
                                 x->nlanes);
        if ((rc = opt_int(d, tsi_json_get(d, l, "laneID"), 0, 255, -1, &v, "laneID", err)) < 0)
            return rc;
        ln->lane_id = (int)v;
        if ((rc = opt_int(d, tsi_json_get(d, l, "ingressApproach"), 0, 15, -1, &v,
                          "ingressApproach", err)) < 0)
            return rc;
        ln->ingress_approach = (int)v;
        if ((rc = opt_int(d, tsi_json_get(d, l, "egressApproach"), 0, 15, -1, &v, "egressApproach",
                          err)) < 0)
            return rc;
        ln->egress_approach = (int)v;
        ln->type = lane_type(d, tsi_json_get(d, l, "laneAttributes"));
        if (ln->type == TSI_LANE_VEHICLE)
            x->vehicle_lanes++;
        int nodes = tsi_json_path(d, l, "nodesList", "nodes", NULL);
        if (nodes >= 0 && !tsi_json_is_null(d, nodes) && !tsi_json_is_array(d, nodes))
            return tsi_error_set(err, TSI_E_TYPE, "field is not an array",
                                 "laneSet[%d].nodesList.nodes", x->nlanes);
        int nn = tsi_json_is_array(d, nodes) ? d->tok[nodes].size : 0;
        if (nn) {
            ln->lat = tsi_arena_alloc(a, (size_t)nn * sizeof(double));
            ln->lon = tsi_arena_alloc(a, (size_t)nn * sizeof(double));
        }
        for (int k = tsi_json_first(d, nodes); k >= 0; k = tsi_json_next(d, nodes, k)) {
            int delta = tsi_json_get(d, k, "delta");
            double la, lo;
            if ((rc = tsi_json_num_range(d, tsi_json_get(d, delta, "lat"), -90, 90, &la,
                                         "nodes[].delta.lat", err)) < 0)
                return rc;
            if ((rc = tsi_json_num_range(d, tsi_json_get(d, delta, "lon"), -180, 180, &lo,
                                         "nodes[].delta.lon", err)) < 0)
                return rc;
            ln->lat[ln->nnodes] = la;
            ln->lon[ln->nnodes] = lo;
            ln->nnodes++;
        }
        x->nlanes++;
    }
    return 0;
}

static int mapdata_one(const tsi_json *d, int md, tsi_mapdata *out, int cap, tsi_error *err)
{
    if (!tsi_json_is_object(d, md))
        return tsi_error_set(err, TSI_E_NOT_OBJECT, "MapData is not a JSON object", NULL);
    int xs = tsi_json_get(d, md, "intersections");
    if (xs < 0 || tsi_json_is_null(d, xs))
        return tsi_error_set(err, TSI_E_MISSING, "required field is missing or null",
                             "MapData.intersections");
    if (!tsi_json_is_array(d, xs))
        return tsi_error_set(err, TSI_E_TYPE, "field is not an array", "MapData.intersections");
    for (int g = tsi_json_first(d, xs); g >= 0; g = tsi_json_next(d, xs, g)) {
        tsi_error e = {0};
        if (out->n >= cap)
            break;
        tsi_map_intersection *x = &out->items[out->n];
        if (decode_intersection(d, g, out->arena, x, &e) < 0) {
            if (out->nrejected++ == 0)
                out->first_error = e;
            continue;
        }
        out->n++;
    }
    return 0;
}

int tsi_mapdata_decode(const char *js, size_t len, tsi_mapdata *out, tsi_error *err)
{
    memset(out, 0, sizeof *out);
    tsi_json d;
    int rc = tsi_json_parse_alloc(&d, js, len, TSI_FRAME_MAX_TOKENS, err);
    if (rc < 0)
        return rc;
    /* capacity: every intersections[] element across the input */
    int cap = 0;
    for (int i = 0; i + 1 < d.ntok; i++)
        if (d.tok[i].type == TSI_JSON_STRING && d.tok[i].size == 1 &&
            tsi_json_key_is(&d, i, "intersections") && tsi_json_is_array(&d, i + 1))
            cap += d.tok[i + 1].size;
    out->arena = tsi_arena_new(64 * 1024);
    out->items = cap ? tsi_arena_calloc(out->arena, (size_t)cap * sizeof *out->items) : NULL;
    if (tsi_json_is_array(&d, 0)) {
        for (int m = tsi_json_first(&d, 0); m >= 0; m = tsi_json_next(&d, 0, m)) {
            tsi_error e = {0};
            if (mapdata_one(&d, m, out, cap, &e) < 0 && out->nrejected++ == 0)
                out->first_error = e;
        }
        rc = 0;
    } else {
        rc = mapdata_one(&d, 0, out, cap, err);
    }
    tsi_json_free(&d);
    if (rc < 0)
        tsi_mapdata_free(out);
    return rc;
}

/* ---- SPaT ---- */

static int spat_object(const tsi_json *d, int o, tsi_spat *out, tsi_error *err);

/* One element: an object, or a JSON string holding one (parsed a second time). */
static int spat_value(const tsi_json *d, int v, tsi_spat *out, tsi_error *err)
{
    if (tsi_json_is_object(d, v))
        return spat_object(d, v, out, err);
    if (!tsi_json_is_string(d, v))
        return tsi_error_set(err, TSI_E_NOT_OBJECT, "SPaT is neither an object nor a string", NULL);
    size_t n;
    tsi_json_raw(d, v, &n);
    char *buf = malloc(n + 1);
    if (buf == NULL)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    int len = tsi_json_str(d, v, buf, n + 1);
    int rc;
    if (len < 0) {
        rc = tsi_error_set(err, TSI_E_JSON, "SPaT string is not valid JSON text", NULL);
    } else {
        tsi_json inner;
        rc = tsi_json_parse_alloc(&inner, buf, (size_t)len, TSI_FRAME_MAX_TOKENS, err);
        if (rc >= 0) {
            rc = tsi_json_is_object(&inner, 0)
                     ? spat_object(&inner, 0, out, err)
                     : tsi_error_set(err, TSI_E_NOT_OBJECT, "SPaT is not a JSON object", NULL);
            tsi_json_free(&inner);
        }
    }
    free(buf);
    return rc;
}

static int spat_object(const tsi_json *d, int o, tsi_spat *out, tsi_error *err)
{
    int rc;
    int64_t v;
    int xs = tsi_json_get(d, o, "intersections");
    if (xs < 0 || tsi_json_is_null(d, xs))
        return tsi_error_set(err, TSI_E_MISSING, "required field is missing or null",
                             "SPaT.intersections");
    if (!tsi_json_is_array(d, xs))
        return tsi_error_set(err, TSI_E_TYPE, "field is not an array", "SPaT.intersections");
    int nx = d->tok[xs].size;
    tsi_spat_intersection *grown =
        tsi_arena_calloc(out->arena, (size_t)(out->n + nx + 1) * sizeof *grown);
    if (out->n)
        memcpy(grown, out->items, (size_t)out->n * sizeof *grown);
    out->items = grown;
    for (int g = tsi_json_first(d, xs); g >= 0; g = tsi_json_next(d, xs, g)) {
        tsi_spat_intersection *x = &out->items[out->n];
        memset(x, 0, sizeof *x);
        if (!tsi_json_is_object(d, g))
            return tsi_error_set(err, TSI_E_NOT_OBJECT, "SPaT intersection is not an object", NULL);
        int id = tsi_json_get(d, g, "id");
        if (!tsi_json_is_object(d, id))
            return tsi_error_set(err,
                                 id < 0 || tsi_json_is_null(d, id) ? TSI_E_MISSING : TSI_E_TYPE,
                                 "SPaT intersection id missing or not an object", NULL);
        int64_t region;
        if ((rc = opt_int(d, tsi_json_get(d, id, "region"), 0, 65535, 0, &region, "id.region",
                          err)) < 0)
            return rc;
        if ((rc = req_int(d, tsi_json_get(d, id, "id"), 0, 65535, &v, "id.id", err)) < 0)
            return rc;
        x->id = region * 65536 + v;
        if ((rc = opt_int(d, tsi_json_get(d, g, "revision"), 0, 127, 0, &v, "revision", err)) < 0)
            return rc;
        x->revision = (int)v;
        int st = tsi_json_get(d, g, "status");
        x->status = -1;
        if (tsi_json_is_number(d, st) && tsi_json_int64(d, st, &v) == 0 && v >= 0 && v <= 65535)
            x->status = (int)v;
        x->timestamp = NAN;
        if ((rc = opt_num(d, tsi_json_get(d, g, "timeStamp"), 0, 1e15, &x->timestamp, "timeStamp",
                          err)) < 0)
            return rc;
        int states = tsi_json_get(d, g, "states");
        if (states >= 0 && !tsi_json_is_null(d, states) && !tsi_json_is_array(d, states))
            return tsi_error_set(err, TSI_E_TYPE, "field is not an array", "states");
        int ns = tsi_json_is_array(d, states) ? d->tok[states].size : 0;
        x->states = ns ? tsi_arena_calloc(out->arena, (size_t)ns * sizeof *x->states) : NULL;
        for (int s = tsi_json_first(d, states); s >= 0; s = tsi_json_next(d, states, s)) {
            tsi_spat_state *ss = &x->states[x->nstates];
            if (!tsi_json_is_object(d, s))
                return tsi_error_set(err, TSI_E_NOT_OBJECT, "SPaT state is not an object", NULL);
            if ((rc = req_int(d, tsi_json_get(d, s, "signalGroup"), 0, 255, &v, "signalGroup",
                              err)) < 0)
                return rc;
            ss->signal_group = (int)v;
            ss->event_state = -1;
            ss->min_end = ss->max_end = ss->likely = ss->confidence = NAN;
            int sts = tsi_json_first(d, tsi_json_get(d, s, "stateTimeSpeed"));
            if (sts >= 0) {
                if ((rc = opt_int(d, tsi_json_get(d, sts, "eventState"), 0, 9, -1, &v, "eventState",
                                  err)) < 0)
                    return rc;
                ss->event_state = (int)v;
                int tm = tsi_json_get(d, sts, "timing");
                if ((rc = opt_num(d, tsi_json_get(d, tm, "minEndTimeStamp"), 0, 1e15, &ss->min_end,
                                  "minEndTimeStamp", err)) < 0 ||
                    (rc = opt_num(d, tsi_json_get(d, tm, "maxEndTimeStamp"), 0, 1e15, &ss->max_end,
                                  "maxEndTimeStamp", err)) < 0 ||
                    (rc = opt_num(d, tsi_json_get(d, tm, "likelyTimeStamp"), 0, 1e15, &ss->likely,
                                  "likelyTimeStamp", err)) < 0 ||
                    (rc = opt_num(d, tsi_json_get(d, tm, "confidence"), 0, 1e6, &ss->confidence,
                                  "confidence", err)) < 0)
                    return rc;
            }
            x->nstates++;
        }
        out->n++;
    }
    return 0;
}

int tsi_spat_decode(const char *js, size_t len, tsi_spat *out, tsi_error *err)
{
    memset(out, 0, sizeof *out);
    tsi_json d;
    int rc = tsi_json_parse_alloc(&d, js, len, TSI_FRAME_MAX_TOKENS, err);
    if (rc < 0)
        return rc;
    out->arena = tsi_arena_new(16 * 1024);
    if (tsi_json_is_array(&d, 0)) {
        rc = 0;
        for (int v = tsi_json_first(&d, 0); v >= 0 && rc >= 0; v = tsi_json_next(&d, 0, v))
            rc = spat_value(&d, v, out, err);
    } else {
        rc = spat_value(&d, 0, out, err);
    }
    tsi_json_free(&d);
    if (rc < 0)
        tsi_spat_free(out);
    return rc < 0 ? rc : 0;
}
