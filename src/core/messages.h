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

/* One BsmWithMetadata or PsmWithMetadata. */
typedef struct tsi_msg {
    tsi_msg_type type;
    int64_t timestamp_ms;    /* VCC receive time, epoch ms (required) */
    int64_t id;              /* temporary id (required) */
    int msg_cnt;             /* 0..127, -1 when null */
    int sec_mark;            /* ms in minute, TSI_SECMARK_UNAVAILABLE when null */
    double lat, lon;         /* degrees (required) */
    double elev;             /* m */
    double speed;            /* m/s */
    double heading;          /* degrees, 0 = north, clockwise */
    double accel_lon;        /* m/s², accelSet.lon */
    double accel_lat;        /* m/s² */
    double accel_vert;       /* G */
    double accel_yaw;        /* deg/s */
    double width_m;          /* BSM size.width (cm → m); NAN when absent or 0 */
    double length_m;         /* BSM size.length (cm → m) */
    int basic_type;          /* PSM basicType 0..4; -1 for a BSM */
    char wheel_brakes[16];   /* BSM brakes.wheelBrakes bit string, "" when absent */
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
} tsi_lane_type;

typedef struct tsi_lane {
    int lane_id;
    tsi_lane_type type;
    int ingress_approach, egress_approach; /* -1 when absent */
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
    double speed_limit;                /* m/s, NAN when absent (first entry) */
    int vehicle_lanes;                 /* lanes of type vehicle */
    int nlanes;
    tsi_lane *lanes;
} tsi_map_intersection;

typedef struct tsi_mapdata {
    int n;
    tsi_map_intersection *items;
    int nrejected;         /* intersections skipped as invalid */
    tsi_error first_error; /* why the first of them was skipped */
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
