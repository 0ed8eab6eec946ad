/* vcc/decode.c — see decode.h */
#include "vcc/decode.h"

#include <math.h>
#include <stddef.h>
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

/* ---- enumerations and bit strings, in every producer's form (domain.md §1) ---- */

typedef struct bitfield {
    int nbits;
    const char *const *names; /* J2735 names of bits 0..nbits-1 (or enum values) */
    const char *const *alias; /* shorter names other producers write, or NULL */
} bitfield;

static const char *const WHEEL_NAMES[] = {"unavailable", "leftFront", "leftRear", "rightFront",
                                          "rightRear"};
static const char *const DIR_NAMES[] = {"ingressPath", "egressPath"};
static const char *const SHARING_NAMES[] = {"overlappingLaneDescriptionProvided",
                                            "multipleLanesTreatedAsOneLane",
                                            "otherNonMotorizedTrafficTypes",
                                            "individualMotorizedVehicleTraffic",
                                            "busVehicleTraffic",
                                            "taxiVehicleTraffic",
                                            "pedestriansTraffic",
                                            "cyclistVehicleTraffic",
                                            "trackedVehicleTraffic",
                                            "pedestrianTraffic"};
static const char *const MANEUVER_NAMES[] = {"maneuverStraightAllowed",
                                             "maneuverLeftAllowed",
                                             "maneuverRightAllowed",
                                             "maneuverUTurnAllowed",
                                             "maneuverLeftTurnOnRedAllowed",
                                             "maneuverRightTurnOnRedAllowed",
                                             "maneuverLaneChangeAllowed",
                                             "maneuverNoStoppingAllowed",
                                             "yieldAllwaysRequired",
                                             "goWithHalt",
                                             "caution",
                                             "reserved1"};
static const char *const MANEUVER_ALIAS[] = {
    "straight",   "left",       "right", "uTurn", "leftTurnOnRed", "rightTurnOnRed",
    "laneChange", "noStopping", "yield", "halt",  "caution",       "reserved1"};

static const bitfield BITS[] = {
    [TSI_BITS_WHEEL] = {5, WHEEL_NAMES, NULL},
    [TSI_BITS_DIRECTION] = {2, DIR_NAMES, NULL},
    [TSI_BITS_SHARING] = {10, SHARING_NAMES, NULL},
    [TSI_BITS_MANEUVERS] = {12, MANEUVER_NAMES, MANEUVER_ALIAS},
};

static const char *const TRACTION_NAMES[] = {"unavailable", "off", "on", "engaged"};
static const char *const BOOST_NAMES[] = {"unavailable", "off", "on"};
static const char *const AUX_NAMES[] = {"unavailable", "off", "on", "reserved"};
static const char *const TRANSMISSION_NAMES[] = {"neutral",      "park",       "forwardGears",
                                                 "reverseGears", "reserved1",  "reserved2",
                                                 "reserved3",    "unavailable"};
static const char *const SPEED_LIMIT_NAMES[] = {"unknown",
                                                "maxSpeedInSchoolZone",
                                                "maxSpeedInSchoolZoneWhenChildrenArePresent",
                                                "maxSpeedInConstructionZone",
                                                "vehicleMinSpeed",
                                                "vehicleMaxSpeed",
                                                "vehicleNightMaxSpeed",
                                                "truckMinSpeed",
                                                "truckMaxSpeed",
                                                "truckNightMaxSpeed",
                                                "vehiclesWithTrailersMinSpeed",
                                                "vehiclesWithTrailersMaxSpeed",
                                                "vehiclesWithTrailersNightMaxSpeed"};
#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ASCII case folding, as strncasecmp does in the C locale tsi runs in (names are ASCII) */
static inline unsigned char fold(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

static bool same_ci(const char *s, size_t n, const char *name)
{
    /* the first byte (folded) and the length turn most names away; the exact spelling is
     * the usual match; the case-folded comparison is for the producers that shout */
    if (name == NULL || (n > 0 && fold((unsigned char)s[0]) != fold((unsigned char)name[0])) ||
        strnlen(name, n + 1) != n)
        return false;
    if (memcmp(s, name, n) == 0)
        return true;
    for (size_t k = 0; k < n; k++)
        if (fold((unsigned char)s[k]) != fold((unsigned char)name[k]))
            return false;
    return true;
}

/* Index of the name s[0..n) (case-insensitive: ODE writes "FORWARDGEARS"), or -1. */
static int name_index(const char *s, size_t n, const char *const *names, const char *const *alias,
                      int count)
{
    for (int k = 0; k < count; k++)
        if (same_ci(s, n, names[k]) || (alias && same_ci(s, n, alias[k])))
            return k;
    return -1;
}

/* An n-bit BIT STRING as an integer (bit k = 1 << (n-1-k)), a bit string "01000", an
 * object of booleans keyed by bit name, one bit name, or an array of them. Returns 1 (read,
 * *out set, its form added to *forms), 0 (absent or null: *out = -1) or -1 (unreadable:
 * *out = -1). */
static int read_bits(const tsi_json *d, int i, tsi_bitfield which, int *out, int *forms)
{
    const bitfield *f = &BITS[which];
    *out = -1;
    if (i < 0 || tsi_json_is_null(d, i))
        return 0;
    size_t n;
    const char *s = tsi_json_raw(d, i, &n);
    int v = 0;
    if (tsi_json_is_number(d, i)) {
        int64_t x;
        if (tsi_json_int64(d, i, &x) < 0 || x < 0 || x >= (1 << f->nbits))
            return -1;
        *out = (int)x;
        *forms |= TSI_FORM_INTEGER;
        return 1;
    }
    if (tsi_json_is_string(d, i)) {
        bool digits = n == (size_t)f->nbits;
        for (size_t k = 0; digits && k < n; k++)
            digits = s[k] == '0' || s[k] == '1';
        if (digits) {
            for (size_t k = 0; k < n; k++)
                if (s[k] == '1')
                    v |= 1 << (f->nbits - 1 - (int)k);
            *out = v;
            *forms |= TSI_FORM_BITSTRING;
            return 1;
        }
        int k = name_index(s, n, f->names, f->alias, f->nbits);
        if (k < 0)
            return -1;
        *out = 1 << (f->nbits - 1 - k);
        *forms |= TSI_FORM_NAME;
        return 1;
    }
    if (tsi_json_is_object(d, i)) {
        for (int key = tsi_json_first_key(d, i); key >= 0; key = tsi_json_next_key(d, i, key)) {
            const char *ks = tsi_json_raw(d, key, &n);
            int k = name_index(ks, n, f->names, f->alias, f->nbits);
            bool b;
            if (k < 0 || tsi_json_bool(d, key + 1, &b) < 0)
                return -1;
            if (b)
                v |= 1 << (f->nbits - 1 - k);
        }
        *out = v;
        *forms |= TSI_FORM_BOOLOBJ;
        return 1;
    }
    if (tsi_json_is_array(d, i)) {
        for (int e = tsi_json_first(d, i); e >= 0; e = tsi_json_next(d, i, e)) {
            const char *es = tsi_json_raw(d, e, &n);
            int k = tsi_json_is_string(d, e) ? name_index(es, n, f->names, f->alias, f->nbits) : -1;
            if (k < 0)
                return -1;
            v |= 1 << (f->nbits - 1 - k);
        }
        *out = v;
        *forms |= TSI_FORM_NAME;
        return 1;
    }
    return -1;
}

/* An ENUMERATED 0..count-1 as an integer or by name; returns as read_bits. */
static int read_enum(const tsi_json *d, int i, const char *const *names, int count, int *out,
                     int *forms)
{
    *out = -1;
    if (i < 0 || tsi_json_is_null(d, i))
        return 0;
    if (tsi_json_is_number(d, i)) {
        int64_t x;
        if (tsi_json_int64(d, i, &x) < 0 || x < 0 || x >= count)
            return -1;
        *out = (int)x;
        *forms |= TSI_FORM_INTEGER;
        return 1;
    }
    if (!tsi_json_is_string(d, i))
        return -1;
    size_t n;
    const char *s = tsi_json_raw(d, i, &n);
    int k = name_index(s, n, names, NULL, count);
    if (k < 0)
        return -1;
    *out = k;
    *forms |= TSI_FORM_NAME;
    return 1;
}

int tsi_bits_nbits(tsi_bitfield f)
{
    return BITS[f].nbits;
}

void tsi_bits_json(tsi_jsonw *w, tsi_bitfield f, int value)
{
    const bitfield *b = &BITS[f];
    tsi_jsonw_array(w);
    for (int k = 0; k < b->nbits; k++)
        if (value >= 0 && (value & (1 << (b->nbits - 1 - k))))
            tsi_jsonw_str(w, b->names[k]);
    tsi_jsonw_end(w);
}

/* The BSM's brakes object and transmission: every form to the same typed values; a value
 * present but unreadable leaves its field -1 and sets its TSI_BAD_* bit. */
static void decode_brakes(const tsi_json *d, int brakes, int trans, tsi_msg *m)
{
    int forms = 0, v;
    int wb = -1, tr = -1, ab = -1, sc = -1, bb = -1, ax = -1;
    if (brakes >= 0 && tsi_json_is_object(d, brakes)) {
        for (int k = tsi_json_first_key(d, brakes); k >= 0; k = tsi_json_next_key(d, brakes, k)) {
            size_t n;
            const char *s = tsi_json_raw(d, k, &n);
            if (KEY_IS(s, n, "wheelBrakes"))
                wb = k + 1;
            else if (KEY_IS(s, n, "traction"))
                tr = k + 1;
            else if (KEY_IS(s, n, "abs"))
                ab = k + 1;
            else if (KEY_IS(s, n, "scs"))
                sc = k + 1;
            else if (KEY_IS(s, n, "brakeBoost"))
                bb = k + 1;
            else if (KEY_IS(s, n, "auxBrakes"))
                ax = k + 1;
        }
    }
    if (read_bits(d, wb, TSI_BITS_WHEEL, &v, &forms) < 0)
        m->unreadable |= TSI_BAD_WHEEL_BRAKES;
    m->wheel_bits = (int8_t)v;
    if (v >= 0) {
        for (int k = 0; k < 5; k++)
            m->wheel_brakes[k] = (v & (0x10 >> k)) ? '1' : '0';
        m->wheel_brakes[5] = '\0';
    }
    static const struct {
        size_t off;
        const char *const *names;
        int count, bad;
    } en[] = {
        {offsetof(tsi_msg, traction), TRACTION_NAMES, NELEM(TRACTION_NAMES), TSI_BAD_TRACTION},
        {offsetof(tsi_msg, abs), TRACTION_NAMES, NELEM(TRACTION_NAMES), TSI_BAD_ABS},
        {offsetof(tsi_msg, scs), TRACTION_NAMES, NELEM(TRACTION_NAMES), TSI_BAD_SCS},
        {offsetof(tsi_msg, brake_boost), BOOST_NAMES, NELEM(BOOST_NAMES), TSI_BAD_BRAKE_BOOST},
        {offsetof(tsi_msg, aux_brakes), AUX_NAMES, NELEM(AUX_NAMES), TSI_BAD_AUX_BRAKES},
        {offsetof(tsi_msg, transmission), TRANSMISSION_NAMES, NELEM(TRANSMISSION_NAMES),
         TSI_BAD_TRANSMISSION},
    };
    const int tok[] = {tr, ab, sc, bb, ax, trans};
    for (int e = 0; e < NELEM(en); e++) {
        if (read_enum(d, tok[e], en[e].names, en[e].count, &v, &forms) < 0)
            m->unreadable |= (uint8_t)en[e].bad;
        *(int8_t *)((char *)m + en[e].off) = (int8_t)v;
    }
    m->forms = (uint8_t)forms;
}

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
    m->wheel_bits = m->traction = m->abs = m->scs = m->brake_boost = m->aux_brakes =
        m->transmission = -1;
}

/* BSM coreData or PSM psmJson, in one pass over its keys (field names in messages are
 * literal, so nothing is formatted unless a field is rejected). */
static int decode_core(const tsi_json *d, int o, bool psm, tsi_msg *m, tsi_error *err)
{
    int id = -1, cnt = -1, sec = -1, lat = -1, lon = -1, elev = -1, speed = -1, heading = -1;
    int accel = -1, size = -1, brakes = -1, pos = -1, basic = -1, trans = -1;
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
        case 12:
            if (KEY_IS(s, n, "transmission"))
                trans = v;
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
    decode_brakes(d, brakes, trans, m);
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
        switch (n) { /* the length first: most keys of a message are none of these */
        case 7:
            if (KEY_IS(s, n, "rsuName"))
                rsu = k + 1;
            else if (KEY_IS(s, n, "bsmJson"))
                bj = k + 1;
            else if (KEY_IS(s, n, "psmJson"))
                pj = k + 1;
            break;
        case 9:
            if (KEY_IS(s, n, "timestamp"))
                ts = k + 1;
            break;
        case 12:
            if (KEY_IS(s, n, "locationName"))
                loc = k + 1;
            break;
        }
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

/* An empty error, without writing its 772 bytes for every message of a frame. */
static inline void error_clear(tsi_error *e)
{
    e->code = 0;
    e->message[0] = e->detail[0] = '\0';
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
        error_clear(&e);
        rc = tsi_msg_from_json(&d, 0, 0, &m, &e);
        cb(ud, 0, rc < 0 ? NULL : &m, rc, &e);
        return 1;
    }
    if (!tsi_json_is_array(&d, 0))
        return tsi_error_set(err, TSI_E_NOT_OBJECT, "a frame must be a JSON array or object", NULL);
    int n = 0;
    for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i), n++) {
        error_clear(&e);
        rc = tsi_msg_from_json(&d, i, 0, &m, &e);
        cb(ud, n, rc < 0 ? NULL : &m, rc, &e);
    }
    return n;
}

/* ---- MapData ---- */

/* What one intersection's decoding saw beyond its accepted values: merged into the
 * tsi_mapdata when the intersection is kept. */
typedef struct mapctx {
    int forms, unreadable;
    tsi_error first;
} mapctx;

static void unreadable(mapctx *c, const tsi_json *d, int i, const char *fmt, int a, int b)
{
    if (c->unreadable++ > 0)
        return;
    char path[96];
    snprintf(path, sizeof path, fmt, a, b);
    size_t n = 0;
    const char *raw = i >= 0 ? tsi_json_raw(d, i, &n) : "";
    if (n > 60)
        n = 60;
    tsi_error_set(&c->first, TSI_E_TYPE, "value present but unreadable", "%s = %.*s", path, (int)n,
                  i >= 0 ? raw : "(absent)");
}

static const char *const LANE_NAMES[] = {"vehicle", "crosswalk", "bikeLane",       "sidewalk",
                                         "median",  "striping",  "trackedVehicle", "parking"};
static const tsi_lane_type LANE_TYPES[] = {TSI_LANE_VEHICLE,  TSI_LANE_CROSSWALK, TSI_LANE_BIKE,
                                           TSI_LANE_SIDEWALK, TSI_LANE_MEDIAN,    TSI_LANE_STRIPING,
                                           TSI_LANE_TRACKED,  TSI_LANE_PARKING};

/* laneAttributes.laneType: the CHOICE written as an object of the eight keys with exactly
 * one not null (the document), an object of one key, or the name as a string. The type is
 * the key whose value is not null, never simply the first key. Returns the type, or -1
 * when the value is missing or unreadable. */
static int lane_type(const tsi_json *d, int lt, int *forms)
{
    int name = -1;
    int form = 0;
    if (tsi_json_is_string(d, lt)) {
        name = lt;
        form = TSI_FORM_LANETYPE_STRING;
    } else if (tsi_json_is_object(d, lt)) {
        int nkeys = 0, nonnull = 0;
        for (int k = tsi_json_first_key(d, lt); k >= 0; k = tsi_json_next_key(d, lt, k)) {
            nkeys++;
            if (!tsi_json_is_null(d, k + 1)) {
                nonnull++;
                name = k;
            }
        }
        if (nkeys == 1) {
            name = tsi_json_first_key(d, lt);
            form = TSI_FORM_LANETYPE_ONEKEY;
        } else if (nonnull == 1) {
            form = TSI_FORM_LANETYPE_NULLS;
        } else {
            return -1;
        }
    }
    if (name < 0)
        return -1;
    size_t n;
    const char *s = tsi_json_raw(d, name, &n);
    int k = name_index(s, n, LANE_NAMES, NULL, NELEM(LANE_NAMES));
    if (k < 0)
        return -1;
    *forms |= form;
    return (int)LANE_TYPES[k];
}

/* speedLimits: the vehicleMaxSpeed (5) entry, else the first */
static int speed_limits(const tsi_json *d, int sl, tsi_map_intersection *x, mapctx *c,
                        tsi_error *err)
{
    if (sl >= 0 && !tsi_json_is_null(d, sl) && !tsi_json_is_array(d, sl))
        return tsi_error_set(err, TSI_E_TYPE, "field is not an array", "speedLimits");
    int pick = -1, pick_type = -1, idx = 0;
    for (int e = tsi_json_first(d, sl); e >= 0; e = tsi_json_next(d, sl, e), idx++) {
        int t;
        if (read_enum(d, tsi_json_get(d, e, "type"), SPEED_LIMIT_NAMES, NELEM(SPEED_LIMIT_NAMES),
                      &t, &c->forms) < 0)
            unreadable(c, d, tsi_json_get(d, e, "type"), "speedLimits[%d].type", idx, 0);
        if (pick < 0 || (t == 5 && pick_type != 5)) {
            pick = e;
            pick_type = t;
        }
    }
    x->speed_limit_type = pick_type;
    if (pick >= 0)
        return opt_num(d, tsi_json_get(d, pick, "speed"), 0, 163.82, &x->speed_limit,
                       "speedLimits[].speed", err);
    return 0;
}

static int decode_connects(const tsi_json *d, int ct, int l, tsi_arena *a, tsi_lane *ln, mapctx *c,
                           tsi_error *err)
{
    int rc;
    int64_t v;
    if (ct < 0 || tsi_json_is_null(d, ct))
        return 0;
    if (!tsi_json_is_array(d, ct))
        return tsi_error_set(err, TSI_E_TYPE, "field is not an array", "laneSet[%d].connectsTo", l);
    int n = d->tok[ct].size;
    ln->connects = n ? tsi_arena_calloc(a, (size_t)n * sizeof *ln->connects) : NULL;
    for (int e = tsi_json_first(d, ct); e >= 0; e = tsi_json_next(d, ct, e)) {
        tsi_connection *cn = &ln->connects[ln->nconnects];
        if (!tsi_json_is_object(d, e))
            return tsi_error_set(err, TSI_E_NOT_OBJECT, "connection is not an object",
                                 "laneSet[%d].connectsTo[%d]", l, ln->nconnects);
        int cl = tsi_json_get(d, e, "connectingLane");
        if ((rc = opt_object(d, cl, "connectsTo[].connectingLane", err)) < 0)
            return rc;
        if ((rc = opt_int(d, tsi_json_get(d, cl, "lane"), 0, 255, -1, &v,
                          "connectsTo[].connectingLane.lane", err)) < 0)
            return rc;
        cn->lane = (int)v;
        int mv = tsi_json_get(d, cl, "maneuver");
        if (read_bits(d, mv, TSI_BITS_MANEUVERS, &cn->maneuver, &c->forms) < 0)
            unreadable(c, d, mv, "laneSet[%d].connectsTo[%d].connectingLane.maneuver", l,
                       ln->nconnects);
        if ((rc = opt_int(d, tsi_json_get(d, e, "signalGroup"), 0, 255, -1, &v,
                          "connectsTo[].signalGroup", err)) < 0)
            return rc;
        cn->signal_group = (int)v;
        ln->nconnects++;
    }
    return 0;
}

static int decode_intersection(const tsi_json *d, int g, tsi_arena *a, tsi_map_intersection *x,
                               mapctx *c, tsi_error *err)
{
    int rc;
    int64_t v;
    memset(x, 0, sizeof *x);
    x->ref_elev = x->lane_width_m = x->speed_limit = NAN;
    x->speed_limit_type = -1;
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
    if ((rc = speed_limits(d, tsi_json_get(d, g, "speedLimits"), x, c, err)) < 0)
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
        int li = x->nlanes;
        int attrs = tsi_json_get(d, l, "laneAttributes");
        if ((rc = opt_object(d, attrs, "laneSet[].laneAttributes", err)) < 0)
            return rc;
        int lt = tsi_json_get(d, attrs, "laneType");
        int type = lane_type(d, lt, &c->forms);
        if (type < 0)
            unreadable(c, d, lt, "laneSet[%d].laneAttributes.laneType", li, 0);
        ln->type = type < 0 ? TSI_LANE_OTHER : (tsi_lane_type)type;
        if (ln->type == TSI_LANE_VEHICLE)
            x->vehicle_lanes++;
        int du = tsi_json_get(d, attrs, "directionalUse");
        if (read_bits(d, du, TSI_BITS_DIRECTION, &ln->directional_use, &c->forms) < 0)
            unreadable(c, d, du, "laneSet[%d].laneAttributes.directionalUse", li, 0);
        int sw = tsi_json_get(d, attrs, "sharedWith");
        if (read_bits(d, sw, TSI_BITS_SHARING, &ln->shared_with, &c->forms) < 0)
            unreadable(c, d, sw, "laneSet[%d].laneAttributes.sharedWith", li, 0);
        int mn = tsi_json_get(d, l, "maneuvers");
        if (read_bits(d, mn, TSI_BITS_MANEUVERS, &ln->maneuvers, &c->forms) < 0)
            unreadable(c, d, mn, "laneSet[%d].maneuvers", li, 0);
        if ((rc = decode_connects(d, tsi_json_get(d, l, "connectsTo"), li, a, ln, c, err)) < 0)
            return rc;
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
        mapctx c = {0};
        if (decode_intersection(d, g, out->arena, x, &c, &e) < 0) {
            if (out->nrejected++ == 0)
                out->first_error = e;
            continue;
        }
        out->forms |= c.forms;
        if (c.unreadable > 0 && out->unreadable == 0)
            out->first_unreadable = c.first;
        out->unreadable += c.unreadable;
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
