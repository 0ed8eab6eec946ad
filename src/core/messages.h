/* core/messages.h — decoded V2X messages as plain structs (domain.md §1).
 *
 * The JSON decoders live in vcc/decode.h; everything downstream (intersection
 * assignment, windows, features, archive columns) reads these structs only.
 * Unavailable values (J2735 "unavailable", decoded as JSON null) are NAN for doubles
 * and the documented sentinel for integers.
 *
 * Ownership: tsi_msg is a value (no pointers). tsi_mapdata and tsi_spat own an arena
 * holding every array they point to: release with tsi_mapdata_free / tsi_spat_free
 * (NULL-safe, idempotent). */
#ifndef TSI_CORE_MESSAGES_H
#define TSI_CORE_MESSAGES_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

typedef struct tsi_arena tsi_arena;

typedef enum {
    TSI_MSG_BSM = 1,
    TSI_MSG_PSM = 2,
} tsi_msg_type;

/* PSM basicType */
enum {
    TSI_PSM_UNAVAILABLE = 0,
    TSI_PSM_PEDESTRIAN = 1,
    TSI_PSM_CYCLIST = 2,
    TSI_PSM_WORKER = 3,
    TSI_PSM_ANIMAL = 4,
};

#define TSI_SECMARK_UNAVAILABLE 65535

/* How a producer wrote an enumerated or bit-string field (domain.md §1): one bit per
 * form, OR-ed over the fields of one message (tsi_msg.forms) or of one MapData
 * (tsi_mapdata.forms). */
enum {
    TSI_FORM_INTEGER = 1 << 0,   /* the VCC v3.1 document: an integer (bit 0 = MSB) */
    TSI_FORM_BITSTRING = 1 << 1, /* "01000": character k is bit k */
    TSI_FORM_BOOLOBJ = 1 << 2,   /* {"leftFront":true,...} (USDOT ODE) */
    TSI_FORM_NAME = 1 << 3,      /* an enum or bit name: "forwardGears", "straight" */
    /* MapData laneType only */
    TSI_FORM_LANETYPE_NULLS = 1 << 4,  /* the eight keys, one of them not null */
    TSI_FORM_LANETYPE_ONEKEY = 1 << 5, /* {"vehicle":{...}} */
    TSI_FORM_LANETYPE_STRING = 1 << 6, /* "vehicle" */
};

#define TSI_FORM__COUNT 7
/* "integer", "bitstring", "bool_object", "name", "lanetype_nulls", "lanetype_onekey",
 * "lanetype_string" for TSI_FORM_* bit k (counters, /metrics). */
const char *tsi_form_name(int bit);

/* BSM fields that were present but unreadable (tsi_msg.unreadable): the message is kept,
 * the field is -1, the collector writes a data_quality_log row `unreadable_value`. */
enum {
    TSI_BAD_WHEEL_BRAKES = 1 << 0,
    TSI_BAD_TRACTION = 1 << 1,
    TSI_BAD_ABS = 1 << 2,
    TSI_BAD_SCS = 1 << 3,
    TSI_BAD_BRAKE_BOOST = 1 << 4,
    TSI_BAD_AUX_BRAKES = 1 << 5,
    TSI_BAD_TRANSMISSION = 1 << 6,
    TSI_BAD__COUNT = 7,
};
/* The JSON path of TSI_BAD_* bit k ("brakes.wheelBrakes", ..., "transmission"). */
const char *tsi_bad_field_name(int bit);

/* BrakeAppliedStatus bits as the document's integer (J2735 bit 0 is the MSB) */
enum {
    TSI_WHEEL_UNAVAILABLE = 0x10,
    TSI_WHEEL_LEFT_FRONT = 0x08,
    TSI_WHEEL_LEFT_REAR = 0x04,
    TSI_WHEEL_RIGHT_FRONT = 0x02,
    TSI_WHEEL_RIGHT_REAR = 0x01,
};

/* One BsmWithMetadata or PsmWithMetadata. */
typedef struct tsi_msg {
    tsi_msg_type type;
    int64_t timestamp_ms;  /* VCC receive time, epoch ms (required) */
    int64_t id;            /* temporary id (required) */
    int msg_cnt;           /* 0..127, -1 when null */
    int sec_mark;          /* ms in minute, TSI_SECMARK_UNAVAILABLE when null */
    double lat, lon;       /* degrees (required) */
    double elev;           /* m */
    double speed;          /* m/s */
    double heading;        /* degrees, 0 = north, clockwise */
    double accel_lon;      /* m/s², accelSet.lon */
    double accel_lat;      /* m/s² */
    double accel_vert;     /* G */
    double accel_yaw;      /* deg/s */
    double width_m;        /* BSM size.width (cm → m); NAN when absent or 0 */
    double length_m;       /* BSM size.length (cm → m) */
    int basic_type;        /* PSM basicType 0..4; -1 for a BSM */
    char wheel_brakes[16]; /* BSM brakes.wheelBrakes as a 5-character bit string
                            * ("01000" = leftFront), whatever form it came in; ""
                            * when absent or unreadable */
    /* BSM brakes and transmission, typed (J2735 values; -1 when absent or unreadable):
     * wheel_bits TSI_WHEEL_* (0..31); traction, abs, scs 0 unavailable, 1 off, 2 on,
     * 3 engaged; brake_boost 0 unavailable, 1 off, 2 on; aux_brakes 0 unavailable, 1 off,
     * 2 on, 3 reserved; transmission 0 neutral, 1 park, 2 forwardGears, 3 reverseGears,
     * 4..6 reserved, 7 unavailable */
    int8_t wheel_bits, traction, abs, scs, brake_boost, aux_brakes, transmission;
    uint8_t forms;           /* TSI_FORM_* of those fields */
    uint8_t unreadable;      /* TSI_BAD_* */
    char rsu_name[64];       /* "" when absent */
    char location_name[128]; /* "" when absent */
} tsi_msg;

typedef tsi_msg tsi_bsm;
typedef tsi_msg tsi_psm;

/* True when the PSM is a person (pedestrian, cyclist, worker, or unavailable type):
 * the road users vru_event_count pairs with vehicles. Animals are counted in vru_count
 * but take part in no conflict. */
bool tsi_msg_is_vru_person(const tsi_msg *m);

/* MapData lane kinds (laneAttributes.laneType) */
typedef enum {
    TSI_LANE_OTHER = 0,
    TSI_LANE_VEHICLE,
    TSI_LANE_CROSSWALK,
    TSI_LANE_BIKE,
    TSI_LANE_SIDEWALK,
    TSI_LANE_MEDIAN,
    TSI_LANE_STRIPING,
    TSI_LANE_TRACKED,
    TSI_LANE_PARKING,
} tsi_lane_type;

/* LaneDirection (2 bits), LaneSharing (10 bits), AllowedManeuvers (12 bits) as the
 * document's integers: J2735 bit k of an n-bit field is 1 << (n - 1 - k). */
enum {
    TSI_DIR_INGRESS = 0x2,
    TSI_DIR_EGRESS = 0x1,
    TSI_MANEUVER_STRAIGHT = 0x800,
    TSI_MANEUVER_LEFT = 0x400,
    TSI_MANEUVER_RIGHT = 0x200,
    TSI_MANEUVER_UTURN = 0x100,
};

typedef struct tsi_connection {
    int lane;         /* connectingLane.lane, -1 when absent */
    int maneuver;     /* connectingLane.maneuver (AllowedManeuvers bits), -1 when absent */
    int signal_group; /* -1 when absent */
} tsi_connection;

typedef struct tsi_lane {
    int lane_id;
    tsi_lane_type type;
    int ingress_approach, egress_approach; /* -1 when absent */
    int directional_use;                   /* laneAttributes.directionalUse bits, -1 absent */
    int shared_with;                       /* laneAttributes.sharedWith bits, -1 absent */
    int maneuvers;                         /* AllowedManeuvers bits, -1 absent */
    int nconnects;
    tsi_connection *connects; /* connectsTo */
    int nnodes;
    double *lat, *lon; /* nnodes each, absolute degrees */
} tsi_lane;

typedef struct tsi_map_intersection {
    int64_t id; /* region * 65536 + local id */
    int region, local_id;
    char name[128]; /* "" when absent */
    int revision;
    double ref_lat, ref_lon, ref_elev; /* ref_elev NAN when absent */
    double lane_width_m;               /* NAN when absent */
    double speed_limit;                /* m/s, NAN when absent: the vehicleMaxSpeed (5)
                                        * entry of speedLimits, else the first */
    int speed_limit_type;              /* its SpeedLimitType 0..12, -1 when absent */
    int vehicle_lanes;                 /* lanes of type vehicle */
    int nlanes;
    tsi_lane *lanes;
} tsi_map_intersection;

typedef struct tsi_mapdata {
    int n;
    tsi_map_intersection *items;
    int nrejected;              /* intersections skipped as invalid */
    tsi_error first_error;      /* why the first of them was skipped */
    int forms;                  /* TSI_FORM_* seen in laneType and the bit fields */
    int unreadable;             /* values present but unreadable (left -1 / TSI_LANE_OTHER) */
    tsi_error first_unreadable; /* the first of them: field and value */
    tsi_arena *arena;
} tsi_mapdata;

void tsi_mapdata_free(tsi_mapdata *m);

typedef struct tsi_spat_state {
    int signal_group;
    int event_state;                             /* 0..9 of the first stateTimeSpeed, -1 none */
    double min_end, max_end, likely, confidence; /* NAN when absent */
} tsi_spat_state;

typedef struct tsi_spat_intersection {
    int64_t id; /* region * 65536 + id */
    int revision;
    int status;       /* status bits as an int; -1 when absent or not numeric */
    double timestamp; /* timeStamp as given, NAN when absent */
    int nstates;
    tsi_spat_state *states;
} tsi_spat_intersection;

typedef struct tsi_spat {
    int n;
    tsi_spat_intersection *items;
    tsi_arena *arena;
} tsi_spat;

void tsi_spat_free(tsi_spat *s);

#endif
