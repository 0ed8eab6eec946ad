/* sim/model.h — the simulator's traffic model: intersections, signals, vehicles, VRUs,
 * injected conflicts and the ground truth of what was generated.
 *
 * Deterministic: the state after k ticks depends only on the configuration (seed, start,
 * rates); the same configuration gives the same samples, bit for bit. One tick is 500 ms
 * of simulated time (the 2 Hz of the VCC streams); inside a tick the dynamics integrate
 * at 100 ms. Every intersection has four approaches (one ingress and one egress lane
 * each, a 6.5 m median), four crosswalks and a split-phase signal with a 120 s cycle
 * (each approach green in turn for its through, left and right movements, then an
 * exclusive pedestrian phase); vehicles go straight, turn left (10 m arc) or turn right
 * (7 m arc) at configured shares. The geometry and the phase plan keep ordinary traffic
 * free of conflicts in the sense of domain.md §3, so the conflicts that occur are the
 * injected ones (rear-end near misses and jaywalkers), which the truth lists pair by
 * pair.
 *
 * Ownership: tsi_sim_model owns everything it allocates; tsi_sim_model_free releases it.
 * tsi_sim_model_step() fills the model's own sample array (valid until the next step).
 * Not thread-safe: one thread drives a model. */
#ifndef TSI_SIM_MODEL_H
#define TSI_SIM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "core/geo.h"

#define TSI_SIM_TICK_MS      500
#define TSI_SIM_MAX_ISECT    5000
#define TSI_SIM_APPROACH_LEN 140.0 /* m from the centre to the end of a lane */
#define TSI_SIM_STOP_LINE    16.0  /* m from the centre */
#define TSI_SIM_CROSSWALK    11.0  /* m from the centre, crosswalk centre line */
#define TSI_SIM_CW_HALF      12.0  /* half length of a crosswalk */
#define TSI_SIM_LANE_OFFSET  5.0   /* lane centre from the road axis (median 6.5 m) */
#define TSI_SIM_LANE_WIDTH   3.5
#define TSI_SIM_CYCLE_S      120
#define TSI_SIM_RIGHT_R      7.0  /* m, right-turn arc radius (lane centre) */
#define TSI_SIM_LEFT_R       10.0 /* m, left-turn arc radius */
#define TSI_SIM_TURN_ALAT    2.4  /* m/s², lateral acceleration the turn speed allows */

/* Thresholds of domain.md §3 used to record which injected pairs met them. */
#define TSI_SIM_VRU_TTC  3.0
#define TSI_SIM_VRU_DIST 5.0
#define TSI_SIM_VV_TTC   1.5
#define TSI_SIM_VV_DIST  2.0

typedef struct tsi_sim_cfg {
    int n_intersections; /* 1..5000 */
    uint64_t seed;
    int64_t start_ms;       /* simulated clock at the first tick (rounded up to 500 ms) */
    double demand;          /* multiplier of the daily profile (1 = nominal) */
    double vv_rate;         /* injected vehicle-vehicle conflicts per intersection-hour */
    double vru_rate;        /* injected vehicle-VRU conflicts per intersection-hour */
    double hard_brake_rate; /* spontaneous hard brakes per intersection-hour */
    double ped_rate;        /* pedestrians+cyclists per crosswalk-hour at profile 1 */
    bool quirks;            /* --vcc-quirks: locationName only, positions off the refPoint,
                             * rsuName "From_WebSocket" */
    bool legacy;            /* --encoding legacy: brakes, transmission, laneType, maneuvers
                             * and speedLimits.type as strings, optional fields omitted,
                             * clientId "vcc-public" (tsi's own forms before issue 29) */
    int tz_offset_min;      /* time zone of the daily profile, minutes east of UTC */
    int truth_minutes;      /* minutes of truth kept per intersection */
    int warmup_s;           /* simulated seconds run before start_ms (not emitted) */
    double turn_left;       /* share of vehicles turning left (0..1) */
    double turn_right;      /* share turning right (0..1; left + right <= 1) */
} tsi_sim_cfg;

void tsi_sim_cfg_defaults(tsi_sim_cfg *c);

enum { TSI_SIM_BSM = 0, TSI_SIM_PSM = 1 };

/* One generated message, before serialisation (sim/msg.h). NAN = null. */
typedef struct tsi_sim_sample {
    uint8_t kind;       /* TSI_SIM_BSM | TSI_SIM_PSM */
    uint8_t vendor;     /* index into tsi_sim_vendors */
    uint8_t msgcnt;     /* 0..127 */
    uint8_t basic_type; /* PSM: 1 pedestrian, 2 cyclist */
    uint8_t brakes;     /* wheelBrakes bits (5), set while braking */
    int isect;          /* index of the intersection */
    uint32_t id;        /* temporary id */
    int64_t gen_ms;     /* generation time (secMark = gen_ms % 60000) */
    int64_t ts_ms;      /* VCC receive time (timestamp) */
    double lat, lon, elev;
    double speed, heading;
    double accel_lon, accel_lat, accel_vert, yaw;
    int width_cm, length_cm;
} tsi_sim_sample;

typedef struct tsi_sim_vendor {
    const char *name;
    bool elev_zero, elev_null, accel_null;
} tsi_sim_vendor;
extern const tsi_sim_vendor tsi_sim_vendors[4];

/* Static description of an intersection (MapData, SPaT, names). */
typedef struct tsi_sim_isect {
    int region, local_id;
    char name[64];
    char rsu[32];
    char location[48]; /* "" when messages carry no locationName */
    double lat, lon, elev;
    double rot_deg;     /* bearing of approach 0 (north leg) */
    double speed_limit; /* m/s */
    int offset_s;       /* signal offset in the cycle */
    double demand_ns, demand_ew;
    tsi_ltp ltp;
} tsi_sim_isect;

/* One intersection-minute of ground truth. */
typedef struct tsi_sim_minute {
    int64_t minute_ms; /* -1: empty slot */
    uint32_t bsm, psm, duplicates, malformed;
    uint16_t vehicles, vrus, pedestrians, cyclists, hard_braking;
} tsi_sim_minute;

typedef struct tsi_sim_conflict {
    int isect;
    int64_t minute_ms;
    uint32_t a, b; /* a: vehicle (the leader of a rear-end pair), b: the other */
    char kind;     /* 'v' vehicle-vehicle, 'p' vehicle-VRU */
    float min_ttc; /* s; -1 when no TTC was defined in any sample */
    float min_dist;
} tsi_sim_conflict;

typedef struct tsi_sim_model tsi_sim_model;

/* Builds the network and runs the warm-up. Returns NULL on a bad configuration. */
tsi_sim_model *tsi_sim_model_new(const tsi_sim_cfg *cfg);
void tsi_sim_model_free(tsi_sim_model *m); /* NULL-safe */

/* Advances one tick; returns the samples generated at the new tick time (borrowed). */
const tsi_sim_sample *tsi_sim_model_step(tsi_sim_model *m, size_t *n);
int64_t tsi_sim_model_now(const tsi_sim_model *m); /* ms of the last tick */
const tsi_sim_cfg *tsi_sim_model_cfg(const tsi_sim_model *m);

int tsi_sim_model_count(const tsi_sim_model *m);
const tsi_sim_isect *tsi_sim_model_isect(const tsi_sim_model *m, int i);
/* Index of the intersection with this id (region*65536+id), or -1. */
int tsi_sim_model_find(const tsi_sim_model *m, int64_t id);
int64_t tsi_sim_isect_id(const tsi_sim_isect *s);

/* MapData revision of intersection i at time t and when it last changed (epoch ms). */
int tsi_sim_model_map_revision(const tsi_sim_model *m, int i, int64_t t_ms, int64_t *changed_ms);

/* Signal state of a signal group at t: eventState (3 red, 6 green/walk, 8 yellow/clear)
 * and the epoch ms at which it ends. Vehicle groups 6 (approach 0, north leg), 8 (1,
 * east), 2 (2, south), 4 (3, west), green one after the other (split phasing); the
 * pedestrian groups 10,12,14,16 walk together while every vehicle group is red. */
int tsi_sim_signal(const tsi_sim_model *m, int i, int signal_group, int64_t t_ms, int64_t *end_ms);

/* Ground truth. Records faults the server added (duplicates, malformed) to the minute of
 * the message they were added beside. */
void tsi_sim_truth_note(tsi_sim_model *m, int isect, int64_t ts_ms, int duplicates, int malformed);
/* The minute record of intersection i for minute_ms, or NULL when nothing happened. */
const tsi_sim_minute *tsi_sim_truth_minute(const tsi_sim_model *m, int i, int64_t minute_ms);
/* Conflicts recorded (all kept minutes), in the order they were first met. */
const tsi_sim_conflict *tsi_sim_truth_conflicts(const tsi_sim_model *m, size_t *n);
/* Injections that started, and those whose pair never met the thresholds (diagnostics). */
void tsi_sim_truth_injections(const tsi_sim_model *m, uint64_t *vv, uint64_t *vru,
                              uint64_t *missed);

/* TTC of domain.md §3 between two road users: positions (m, a plane), velocities (m/s),
 * collision distance R. Returns the TTC in s, or -1 when none (separating or never
 * reaching R); 0 when already within R and closing. */
double tsi_sim_ttc(double ax, double ay, double avx, double avy, double bx, double by, double bvx,
                   double bvy, double r);

/* The daily demand profile at t (local time by tz_offset_min): 0..1. */
double tsi_sim_profile(int64_t t_ms, int tz_offset_min);

#endif
