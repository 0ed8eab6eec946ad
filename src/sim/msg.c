/* sim/msg.c — see msg.h */
#include "sim/msg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/jsonw.h"

#define RAWLIT(w, lit) tsi_jsonw_raw((w), lit, sizeof(lit) - 1)

int tsi_sim_fmt_fixed(char *out, double v, int decimals)
{
    static const int64_t p10[10] = {1,      10,      100,      1000,      10000,
                                    100000, 1000000, 10000000, 100000000, 1000000000};
    if (!isfinite(v)) {
        memcpy(out, "null", 5);
        return 4;
    }
    if (decimals < 0)
        decimals = 0;
    if (decimals > 9)
        decimals = 9;
    double av = fabs(v);
    if (av * (double)p10[decimals] > 9e17)
        return snprintf(out, 32, "%.*f", decimals, v);
    int64_t x = llround(av * (double)p10[decimals]);
    int n = 0;
    if (v < 0 && x != 0)
        out[n++] = '-';
    int64_t ip = x / p10[decimals], fp = x % p10[decimals];
    char tmp[24];
    int k = 0;
    do {
        tmp[k++] = (char)('0' + ip % 10);
        ip /= 10;
    } while (ip);
    while (k)
        out[n++] = tmp[--k];
    if (decimals > 0) {
        out[n++] = '.';
        for (int d = decimals - 1; d >= 0; d--) {
            out[n + d] = (char)('0' + fp % 10);
            fp /= 10;
        }
        n += decimals;
    }
    out[n] = '\0';
    return n;
}

static void knum(tsi_jsonw *w, const char *k, double v, int dec)
{
    char t[40];
    int n = tsi_sim_fmt_fixed(t, v, dec);
    tsi_jsonw_key(w, k);
    tsi_jsonw_raw(w, t, (size_t)n);
}

/* ---- a plausible J2735 payload: MessageFrame id, length, packed core fields ---- */

static void put16(unsigned char *p, int *n, unsigned v)
{
    p[(*n)++] = (unsigned char)(v >> 8);
    p[(*n)++] = (unsigned char)v;
}

static void put32(unsigned char *p, int *n, uint32_t v)
{
    put16(p, n, v >> 16);
    put16(p, n, v & 0xffff);
}

static int base64(char *tmp, const unsigned char *p, int n)
{
    static const char tb[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int k = 0;
    for (int i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        tmp[k++] = tb[(v >> 18) & 63];
        tmp[k++] = tb[(v >> 12) & 63];
        tmp[k++] = i + 1 < n ? tb[(v >> 6) & 63] : '=';
        tmp[k++] = i + 2 < n ? tb[v & 63] : '=';
    }
    return k;
}

static void j2735(tsi_jsonw *w, const tsi_sim_sample *s)
{
    unsigned char p[48];
    int n = 0;
    p[n++] = 0x00;
    p[n++] = s->kind == TSI_SIM_BSM ? 0x14 : 0x20; /* BSM 20, PSM 32 */
    p[n++] = 0;                                    /* length, set below */
    p[n++] = s->msgcnt;
    put32(p, &n, s->id);
    put16(p, &n, (unsigned)(s->gen_ms % 60000));
    put32(p, &n, (uint32_t)(int32_t)lround(s->lat * 1e7));
    put32(p, &n, (uint32_t)(int32_t)lround(s->lon * 1e7));
    put16(p, &n, isnan(s->elev) ? 0xF000u : (unsigned)(int16_t)lround(s->elev * 10));
    put16(p, &n, (unsigned)lround(s->speed / 0.02));
    put16(p, &n, (unsigned)lround(s->heading / 0.0125));
    put16(p, &n, isnan(s->accel_lon) ? 2001u : (unsigned)(int16_t)lround(s->accel_lon * 100));
    put16(p, &n, (unsigned)s->width_cm);
    put16(p, &n, (unsigned)s->length_cm);
    p[2] = (unsigned char)(n - 3);
    tsi_jsonw_key(w, s->kind == TSI_SIM_BSM ? "bsmJ2735" : "psmJ2735");
    char tmp[96];
    tmp[0] = '"';
    int k = 1 + base64(tmp + 1, p, n);
    tmp[k++] = '"';
    tsi_jsonw_raw(w, tmp, (size_t)k);
}

static void metadata(tsi_jsonw *w, const tsi_sim_model *m, const tsi_sim_sample *s, bool ts)
{
    const tsi_sim_isect *is = tsi_sim_model_isect(m, s->isect);
    if (ts)
        tsi_jsonw_kv_int(w, "timestamp", s->ts_ms);
    tsi_jsonw_kv_str(w, "rsuName", is->rsu);
    tsi_jsonw_kv_str(w, "format", "JSON");
    if (is->location[0])
        tsi_jsonw_kv_str(w, "locationName", is->location);
    if (tsi_sim_model_cfg(m)->legacy)
        tsi_jsonw_kv_str(w, "clientId", "vcc-public");
    else
        tsi_jsonw_kv_null(w, "clientId"); /* RSU-relayed messages: null (domain.md §1) */
    tsi_jsonw_kv_str(w, "sourceType", "RSU");
    tsi_jsonw_kv_str(w, "vendorName", tsi_sim_vendors[s->vendor].name);
}

static void accel_set(tsi_jsonw *w, const tsi_sim_sample *s)
{
    tsi_jsonw_key(w, "accelSet");
    tsi_jsonw_object(w);
    knum(w, "lon", s->accel_lon, 2);
    knum(w, "lat", s->accel_lat, 2);
    knum(w, "vert", s->accel_vert, 2);
    knum(w, "yaw", s->yaw, 2);
    tsi_jsonw_end(w);
}

static void body(tsi_jsonw *w, const tsi_sim_sample *s, int defect, bool legacy)
{
    if (s->kind == TSI_SIM_BSM) {
        tsi_jsonw_key(w, "bsmJson");
        tsi_jsonw_object(w);
        if (defect == 0) {
            tsi_jsonw_end(w);
            return;
        }
        tsi_jsonw_key(w, "coreData");
        tsi_jsonw_object(w);
        tsi_jsonw_kv_int(w, "msgCnt", s->msgcnt);
        tsi_jsonw_kv_int(w, "id", s->id);
        tsi_jsonw_kv_int(w, "secMark", s->gen_ms % 60000);
        knum(w, "lat", defect == 1 ? 91.5 : s->lat, 7);
        knum(w, "lon", s->lon, 7);
        knum(w, "elev", s->elev, 1);
        tsi_jsonw_key(w, "accuracy");
        RAWLIT(w, "{\"semiMajor\":1.5,\"semiMinor\":1.0,\"orientation\":0.0}");
        if (legacy)
            tsi_jsonw_kv_str(w, "transmission", "forwardGears");
        else
            tsi_jsonw_kv_int(w, "transmission", 2); /* forwardGears */
        if (defect == 2)
            tsi_jsonw_kv_str(w, "speed", "fast");
        else
            knum(w, "speed", s->speed, 2);
        knum(w, "heading", s->heading, 4);
        knum(w, "angle", 0.0, 1);
        accel_set(w, s);
        tsi_jsonw_key(w, "brakes");
        tsi_jsonw_object(w);
        if (legacy) {
            tsi_jsonw_kv_str(w, "wheelBrakes", s->brakes ? "01111" : "00000");
            tsi_jsonw_kv_str(w, "traction", "unavailable");
            tsi_jsonw_kv_str(w, "abs", "off");
            tsi_jsonw_kv_str(w, "scs", "unavailable");
            tsi_jsonw_kv_str(w, "brakeBoost", "unavailable");
            tsi_jsonw_kv_str(w, "auxBrakes", "unavailable");
        } else { /* the document: the bit string as a number, integer enums */
            tsi_jsonw_kv_int(w, "wheelBrakes", s->brakes ? 0x0F : 0);
            tsi_jsonw_kv_int(w, "traction", 0);
            tsi_jsonw_kv_int(w, "abs", 1);
            tsi_jsonw_kv_int(w, "scs", 0);
            tsi_jsonw_kv_int(w, "brakeBoost", 0);
            tsi_jsonw_kv_int(w, "auxBrakes", 0);
        }
        tsi_jsonw_end(w);
        tsi_jsonw_key(w, "size");
        tsi_jsonw_object(w);
        tsi_jsonw_kv_int(w, "width", s->width_cm);
        tsi_jsonw_kv_int(w, "length", s->length_cm);
        tsi_jsonw_end(w);
        tsi_jsonw_end(w); /* coreData */
        tsi_jsonw_end(w); /* bsmJson */
    } else {
        tsi_jsonw_key(w, "psmJson");
        if (defect == 0) {
            tsi_jsonw_null(w);
            return;
        }
        tsi_jsonw_object(w);
        tsi_jsonw_kv_int(w, "basicType", s->basic_type);
        tsi_jsonw_kv_int(w, "secMark", s->gen_ms % 60000);
        tsi_jsonw_kv_int(w, "msgCnt", s->msgcnt);
        tsi_jsonw_kv_int(w, "id", s->id);
        tsi_jsonw_key(w, "position");
        tsi_jsonw_object(w);
        knum(w, "lat", defect == 1 ? 91.5 : s->lat, 7);
        knum(w, "lon", s->lon, 7);
        knum(w, "elev", s->elev, 1);
        tsi_jsonw_end(w);
        tsi_jsonw_key(w, "accuracy");
        RAWLIT(w, "{\"semiMajor\":2.0,\"semiMinor\":2.0,\"orientation\":0.0}");
        if (defect == 2)
            tsi_jsonw_kv_str(w, "speed", "fast");
        else
            knum(w, "speed", s->speed, 2);
        knum(w, "heading", s->heading, 4);
        accel_set(w, s);
        tsi_jsonw_end(w);
    }
}

void tsi_sim_msg_write(tsi_buf *b, const tsi_sim_model *m, const tsi_sim_sample *s)
{
    tsi_jsonw w;
    tsi_jsonw_init(&w, b);
    tsi_jsonw_object(&w);
    metadata(&w, m, s, true);
    j2735(&w, s);
    body(&w, s, -1, tsi_sim_model_cfg(m)->legacy);
    tsi_jsonw_end(&w);
}

void tsi_sim_msg_malformed(tsi_buf *b, const tsi_sim_model *m, const tsi_sim_sample *s,
                           unsigned variant)
{
    int defect = (int)(variant % 4);
    tsi_jsonw w;
    tsi_jsonw_init(&w, b);
    tsi_jsonw_object(&w);
    metadata(&w, m, s, defect != 3);
    body(&w, s, defect == 3 ? -1 : defect, tsi_sim_model_cfg(m)->legacy);
    tsi_jsonw_end(&w);
}

/* ---- MapData ---- */

static void node(tsi_jsonw *w, const tsi_sim_isect *is, double x, double y, bool legacy)
{
    double lat, lon;
    tsi_ltp_to_ll(&is->ltp, x, y, &lat, &lon);
    tsi_jsonw_object(w);
    tsi_jsonw_key(w, "delta");
    tsi_jsonw_object(w);
    knum(w, "lat", lat, 7);
    knum(w, "lon", lon, 7);
    tsi_jsonw_end(w);
    if (!legacy)
        tsi_jsonw_kv_null(w, "attributes");
    tsi_jsonw_end(w);
}

static void vdir(double bearing, double *x, double *y)
{
    double r = bearing * M_PI / 180.0;
    *x = sin(r);
    *y = cos(r);
}

static int64_t minute_of_year(int64_t t_ms)
{
    time_t t = (time_t)(t_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    return (int64_t)tm.tm_yday * 1440 + tm.tm_hour * 60 + tm.tm_min;
}

/* An optional field: the value, or (document) null / (legacy) left out. */
static void opt_kint(tsi_jsonw *w, const char *k, bool present, int64_t v, bool legacy)
{
    if (present)
        tsi_jsonw_kv_int(w, k, v);
    else if (!legacy)
        tsi_jsonw_kv_null(w, k);
}

/* laneAttributes: legacy {"laneType":"vehicle"}; the document {directionalUse (2-bit
 * field), sharedWith (10-bit field), laneType: the eight keys, one not null} */
static void lane_attributes(tsi_jsonw *w, int type_index, int dir_bits, int shared_bits,
                            bool legacy)
{
    static const char *const keys[8] = {"vehicle", "crosswalk", "bikeLane",       "sidewalk",
                                        "median",  "striping",  "trackedVehicle", "parking"};
    tsi_jsonw_key(w, "laneAttributes");
    tsi_jsonw_object(w);
    if (legacy) {
        tsi_jsonw_kv_str(w, "laneType", keys[type_index]);
    } else {
        tsi_jsonw_kv_int(w, "directionalUse", dir_bits);
        tsi_jsonw_kv_int(w, "sharedWith", shared_bits);
        tsi_jsonw_key(w, "laneType");
        tsi_jsonw_object(w);
        for (int k = 0; k < 8; k++) {
            if (k == type_index)
                tsi_jsonw_kv_int(w, keys[k], 0); /* LaneAttributes-Vehicle/-Crosswalk: none */
            else
                tsi_jsonw_kv_null(w, keys[k]);
        }
        tsi_jsonw_end(w);
    }
    tsi_jsonw_end(w);
}

static void nodes_begin(tsi_jsonw *w)
{
    tsi_jsonw_key(w, "nodesList");
    tsi_jsonw_object(w);
    tsi_jsonw_key(w, "nodes");
    tsi_jsonw_array(w);
}

static void nodes_end(tsi_jsonw *w, bool legacy)
{
    tsi_jsonw_end(w);
    if (!legacy)
        tsi_jsonw_kv_null(w, "computed");
    tsi_jsonw_end(w);
}

/* LaneDirection, LaneSharing and AllowedManeuvers bits (J2735 bit k of n = 1 << (n-1-k)) */
enum {
    DIR_INGRESS = 0x2,
    DIR_EGRESS = 0x1,
    SHARE_PEDESTRIANS = 1 << (9 - 6), /* pedestriansTraffic */
    MAN_STRAIGHT = 0x800,
    MAN_LEFT = 0x400,
    MAN_RIGHT = 0x200,
};

void tsi_sim_mapdata_write(tsi_buf *b, const tsi_sim_model *m, int i, int64_t t_ms)
{
    static const char *in_names[4] = {"SB in", "WB in", "NB in", "EB in"};
    static const char *out_names[4] = {"NB out", "EB out", "SB out", "WB out"};
    static const char *leg_names[4] = {"north crosswalk", "east crosswalk", "south crosswalk",
                                       "west crosswalk"};
    static const int sg[4] = {6, 8, 2, 4};
    const tsi_sim_isect *is = tsi_sim_model_isect(m, i);
    const bool legacy = tsi_sim_model_cfg(m)->legacy;
    int64_t changed = 0;
    int rev = tsi_sim_model_map_revision(m, i, t_ms, &changed);
    tsi_jsonw w;
    tsi_jsonw_init(&w, b);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_int(&w, "timeStamp", minute_of_year(changed));
    tsi_jsonw_kv_int(&w, "msgIssueRevision", rev);
    tsi_jsonw_key(&w, "intersections");
    tsi_jsonw_array(&w);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_str(&w, "name", is->name);
    tsi_jsonw_key(&w, "id");
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_int(&w, "region", is->region);
    tsi_jsonw_kv_int(&w, "id", is->local_id);
    tsi_jsonw_end(&w);
    tsi_jsonw_kv_int(&w, "revision", rev);
    tsi_jsonw_key(&w, "refPoint");
    tsi_jsonw_object(&w);
    knum(&w, "lat", is->lat, 7);
    knum(&w, "lon", is->lon, 7);
    knum(&w, "elevation", is->elev, 1);
    tsi_jsonw_end(&w);
    knum(&w, "laneWidth", TSI_SIM_LANE_WIDTH, 1);
    tsi_jsonw_key(&w, "speedLimits");
    tsi_jsonw_array(&w);
    tsi_jsonw_object(&w);
    if (legacy)
        tsi_jsonw_kv_str(&w, "type", "vehicleMaxSpeed");
    else
        tsi_jsonw_kv_int(&w, "type", 5); /* SpeedLimitType vehicleMaxSpeed */
    knum(&w, "speed", is->speed_limit, 4);
    tsi_jsonw_end(&w);
    tsi_jsonw_end(&w);
    tsi_jsonw_key(&w, "laneSet");
    tsi_jsonw_array(&w);
    for (int a = 0; a < 4; a++) {
        double ux, uy, rx, ry, px, py;
        vdir(is->rot_deg + 90.0 * a, &ux, &uy);
        vdir(is->rot_deg + 90.0 * a - 90.0, &rx, &ry);
        vdir(is->rot_deg + 90.0 * a + 90.0, &px, &py);
        /* ingress: from the stop line outward (J2735 order) */
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_int(&w, "laneID", 1 + 2 * a);
        tsi_jsonw_kv_str(&w, "name", in_names[a]);
        tsi_jsonw_kv_int(&w, "ingressApproach", a + 1);
        opt_kint(&w, "egressApproach", false, 0, legacy);
        lane_attributes(&w, 0, DIR_INGRESS, 0, legacy);
        opt_kint(&w, "maneuvers", !legacy, MAN_STRAIGHT | MAN_LEFT | MAN_RIGHT, legacy);
        nodes_begin(&w);
        static const double along[3] = {TSI_SIM_STOP_LINE, 70.0, TSI_SIM_APPROACH_LEN};
        for (int k = 0; k < 3; k++)
            node(&w, is, along[k] * ux + TSI_SIM_LANE_OFFSET * rx,
                 along[k] * uy + TSI_SIM_LANE_OFFSET * ry, legacy);
        nodes_end(&w, legacy);
        /* the movements of this lane, all on the approach's own (split-phase) group:
         * through to the opposite leg, left to leg a+1, right to leg a+3 */
        tsi_jsonw_key(&w, "connectsTo");
        tsi_jsonw_array(&w);
        static const int turn_to[3] = {2, 1, 3};
        static const char *maneuver[3] = {"straight", "left", "right"};
        static const int maneuver_bits[3] = {MAN_STRAIGHT, MAN_LEFT, MAN_RIGHT};
        for (int k = 0; k < 3; k++) {
            tsi_jsonw_object(&w);
            tsi_jsonw_key(&w, "connectingLane");
            tsi_jsonw_object(&w);
            tsi_jsonw_kv_int(&w, "lane", 2 + 2 * ((a + turn_to[k]) % 4));
            if (legacy)
                tsi_jsonw_kv_str(&w, "maneuver", maneuver[k]);
            else
                tsi_jsonw_kv_int(&w, "maneuver", maneuver_bits[k]);
            tsi_jsonw_end(&w);
            tsi_jsonw_kv_int(&w, "signalGroup", sg[a]);
            tsi_jsonw_end(&w);
        }
        tsi_jsonw_end(&w);
        tsi_jsonw_end(&w);
        /* egress */
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_int(&w, "laneID", 2 + 2 * a);
        tsi_jsonw_kv_str(&w, "name", out_names[a]);
        opt_kint(&w, "ingressApproach", false, 0, legacy);
        tsi_jsonw_kv_int(&w, "egressApproach", a + 1);
        lane_attributes(&w, 0, DIR_EGRESS, 0, legacy);
        opt_kint(&w, "maneuvers", false, 0, legacy);
        nodes_begin(&w);
        for (int k = 0; k < 3; k++)
            node(&w, is, along[k] * ux + TSI_SIM_LANE_OFFSET * px,
                 along[k] * uy + TSI_SIM_LANE_OFFSET * py, legacy);
        nodes_end(&w, legacy);
        if (!legacy)
            tsi_jsonw_kv_null(&w, "connectsTo");
        tsi_jsonw_end(&w);
        /* crosswalk */
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_int(&w, "laneID", 20 + a);
        tsi_jsonw_kv_str(&w, "name", leg_names[a]);
        opt_kint(&w, "ingressApproach", false, 0, legacy);
        opt_kint(&w, "egressApproach", false, 0, legacy);
        lane_attributes(&w, 1, DIR_INGRESS | DIR_EGRESS, SHARE_PEDESTRIANS, legacy);
        opt_kint(&w, "maneuvers", false, 0, legacy);
        nodes_begin(&w);
        node(&w, is, TSI_SIM_CROSSWALK * ux + TSI_SIM_CW_HALF * px,
             TSI_SIM_CROSSWALK * uy + TSI_SIM_CW_HALF * py, legacy);
        node(&w, is, TSI_SIM_CROSSWALK * ux - TSI_SIM_CW_HALF * px,
             TSI_SIM_CROSSWALK * uy - TSI_SIM_CW_HALF * py, legacy);
        nodes_end(&w, legacy);
        tsi_jsonw_key(&w, "connectsTo");
        tsi_jsonw_array(&w);
        tsi_jsonw_object(&w);
        tsi_jsonw_key(&w, "connectingLane");
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_int(&w, "lane", 20 + a);
        if (!legacy)
            tsi_jsonw_kv_null(&w, "maneuver");
        tsi_jsonw_end(&w);
        tsi_jsonw_kv_int(&w, "signalGroup", 10 + 2 * a);
        tsi_jsonw_end(&w);
        tsi_jsonw_end(&w);
        tsi_jsonw_end(&w);
    }
    tsi_jsonw_end(&w); /* laneSet */
    tsi_jsonw_end(&w); /* intersection */
    tsi_jsonw_end(&w); /* intersections */
    tsi_jsonw_end(&w);
}

/* The J2735 MapData of intersection i, base64 (a packed MessageFrame-like record: id 18,
 * length, msgIssueRevision, region, id, revision, refPoint ×1e7, lane width, lane
 * count; plausible, not UPER), for GET /api/mapdata[/{id}]. */
void tsi_sim_mapdata_summary(tsi_buf *b, const tsi_sim_model *m, int i, int64_t t_ms)
{
    const tsi_sim_isect *is = tsi_sim_model_isect(m, i);
    int rev = tsi_sim_model_map_revision(m, i, t_ms, NULL);
    unsigned char p[32];
    int n = 0;
    p[n++] = 0x00;
    p[n++] = 0x12; /* MapData 18 */
    p[n++] = 0;
    p[n++] = (unsigned char)rev;
    put16(p, &n, (unsigned)is->region);
    put16(p, &n, (unsigned)is->local_id);
    p[n++] = (unsigned char)rev;
    put32(p, &n, (uint32_t)(int32_t)lround(is->lat * 1e7));
    put32(p, &n, (uint32_t)(int32_t)lround(is->lon * 1e7));
    put16(p, &n, (unsigned)lround(TSI_SIM_LANE_WIDTH * 100));
    p[n++] = 12; /* lanes */
    p[2] = (unsigned char)(n - 3);
    char tmp[64];
    int k = base64(tmp, p, n);
    tsi_jsonw w;
    tsi_jsonw_init(&w, b);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_int(&w, "id", tsi_sim_isect_id(is));
    tsi_jsonw_kv_int(&w, "revision", rev);
    tsi_jsonw_key(&w, "msg");
    tsi_jsonw_strn(&w, tmp, (size_t)k);
    tsi_jsonw_end(&w);
}

/* ---- SPaT ---- */

void tsi_sim_spat_write(tsi_buf *b, const tsi_sim_model *m, int i, int64_t t_ms)
{
    static const int groups[8] = {2, 4, 6, 8, 10, 12, 14, 16};
    const tsi_sim_isect *is = tsi_sim_model_isect(m, i);
    tsi_jsonw w;
    tsi_jsonw_init(&w, b);
    tsi_jsonw_object(&w);
    tsi_jsonw_key(&w, "intersections");
    tsi_jsonw_array(&w);
    tsi_jsonw_object(&w);
    tsi_jsonw_key(&w, "id");
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_int(&w, "region", is->region);
    tsi_jsonw_kv_int(&w, "id", is->local_id);
    tsi_jsonw_end(&w);
    tsi_jsonw_kv_int(&w, "revision", tsi_sim_model_map_revision(m, i, t_ms, NULL));
    tsi_jsonw_kv_int(&w, "status", 0);
    tsi_jsonw_kv_int(&w, "moy", minute_of_year(t_ms));
    tsi_jsonw_kv_int(&w, "timeStamp", t_ms % 60000);
    tsi_jsonw_key(&w, "states");
    tsi_jsonw_array(&w);
    for (int k = 0; k < 8; k++) {
        int64_t end = 0;
        int st = tsi_sim_signal(m, i, groups[k], t_ms, &end);
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_int(&w, "signalGroup", groups[k]);
        tsi_jsonw_key(&w, "stateTimeSpeed");
        tsi_jsonw_array(&w);
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_int(&w, "eventState", st);
        tsi_jsonw_key(&w, "timing");
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_int(&w, "minEndTimeStamp", end);
        tsi_jsonw_kv_int(&w, "maxEndTimeStamp", end);
        tsi_jsonw_kv_int(&w, "likelyTimeStamp", end);
        tsi_jsonw_kv_int(&w, "confidence", 15);
        tsi_jsonw_end(&w);
        tsi_jsonw_end(&w);
        tsi_jsonw_end(&w);
        tsi_jsonw_end(&w);
    }
    tsi_jsonw_end(&w);
    tsi_jsonw_end(&w);
    tsi_jsonw_end(&w);
    tsi_jsonw_end(&w);
}

int tsi_sim_spat_format_parse(const char *s)
{
    static const char *const names[TSI_SIM_SPAT__COUNT] = {"UPER", "JSON", "JSON_METADATA",
                                                           "JSON_COMPLETE"};
    if (s == NULL)
        return TSI_SIM_SPAT_UPER; /* the document's default */
    for (int k = 0; k < TSI_SIM_SPAT__COUNT; k++)
        if (strcmp(s, names[k]) == 0)
            return k;
    return -1;
}

/* UPER: base64 of a packed SPaT-like record (MessageFrame id 19, length, region, id,
 * revision, status, minute of the year, ms in the minute, then per signal group its id,
 * eventState and likely end in tenths of a second of the hour; plausible, not UPER). */
static void spat_uper(tsi_buf *b, const tsi_sim_model *m, int i, int64_t t_ms)
{
    static const int groups[8] = {2, 4, 6, 8, 10, 12, 14, 16};
    const tsi_sim_isect *is = tsi_sim_model_isect(m, i);
    unsigned char p[96];
    int n = 0;
    p[n++] = 0x00;
    p[n++] = 0x13; /* SPaT 19 */
    p[n++] = 0;
    put16(p, &n, (unsigned)is->region);
    put16(p, &n, (unsigned)is->local_id);
    p[n++] = (unsigned char)tsi_sim_model_map_revision(m, i, t_ms, NULL);
    put16(p, &n, 0);
    put32(p, &n, (uint32_t)minute_of_year(t_ms));
    put16(p, &n, (unsigned)(t_ms % 60000));
    p[n++] = 8;
    for (int k = 0; k < 8; k++) {
        int64_t end = 0;
        int st = tsi_sim_signal(m, i, groups[k], t_ms, &end);
        p[n++] = (unsigned char)groups[k];
        p[n++] = (unsigned char)st;
        put16(p, &n, (unsigned)((end % 3600000) / 100));
    }
    p[2] = (unsigned char)(n - 3);
    char tmp[160];
    int k = base64(tmp, p, n);
    tsi_buf_append(b, tmp, (size_t)k);
}

void tsi_sim_spat_write_format(tsi_buf *b, const tsi_sim_model *m, int i, int64_t t_ms, int format)
{
    if (format == TSI_SIM_SPAT_UPER) {
        spat_uper(b, m, i, t_ms);
        return;
    }
    if (format != TSI_SIM_SPAT_JSON_METADATA) {
        tsi_sim_spat_write(b, m, i, t_ms);
        return;
    }
    const tsi_sim_isect *is = tsi_sim_model_isect(m, i);
    tsi_jsonw w;
    tsi_jsonw_init(&w, b);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_int(&w, "timestamp", t_ms);
    tsi_jsonw_kv_str(&w, "rsuName", is->rsu);
    tsi_jsonw_kv_str(&w, "format", "JSON");
    tsi_jsonw_key(&w, "spatJ2735");
    tsi_buf u = TSI_BUF_INIT;
    spat_uper(&u, m, i, t_ms);
    tsi_jsonw_strn(&w, u.data, u.len);
    tsi_buf_free(&u);
    tsi_jsonw_key(&w, "spatJson");
    tsi_buf j = TSI_BUF_INIT;
    tsi_sim_spat_write(&j, m, i, t_ms);
    tsi_jsonw_raw(&w, j.data, j.len);
    tsi_buf_free(&j);
    tsi_jsonw_end(&w);
}
