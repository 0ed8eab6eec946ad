/* core/engine.h — the streaming domain pipeline: assign each message to an
 * intersection, put it into its 1-minute window, dedupe, and when a window closes
 * compute the features of domain.md §3 (conflicts included) and hand them over.
 *
 *   tsi_engine *e = tsi_engine_new(&cfg, registry, on_window, ud);
 *   for each decoded message m:  rc = tsi_engine_push_ref(e, &m, ref_ms, &info, &err);
 *        rc: 0 accepted, TSI_E_DUPLICATE, TSI_E_LATE, TSI_E_UNMATCHED, TSI_E_CLOCK_SKEW
 *        (info says which intersection / minute / clock offset, for data_quality_log)
 *   tsi_engine_advance(e, wall_clock_ms);   (optional: close windows while quiet)
 *   tsi_engine_flush(e);                    (end of input: every open window closes)
 *
 * Windows: epoch-aligned UTC minutes of the message timestamp (VCC receive time). The
 * stream clock is the largest timestamp pushed (or passed to advance). The window of
 * minute [s, s+60 s) closes when the clock passes s + 60 s + grace; a message whose
 * minute has closed is late (TSI_E_LATE, counted, not featurised). Windows close in
 * minute order; the callback runs synchronously inside push/advance/flush.
 *
 * Clock sanity: the caller passes the receiver's clock (ref_ms: the wall clock when the
 * message was received, live; offline, a robust estimate of the stream's clock such as
 * tsi_median_ms of the timestamps around the message). The engine reads no clock itself.
 * A message more than max_skew_ms ahead of ref_ms, or more than max(max_skew_ms, 60 s +
 * grace) behind it, is TSI_E_CLOCK_SKEW: counted, never put into a window, and it never
 * moves the stream clock (one message dated a day ahead would otherwise make every
 * real message late). ref_ms = TSI_CLOCK_NONE (tsi_engine_push) skips the check.
 *
 * Dedupe: key (type, id, msgCnt, secMark, timestamp rounded to 100 ms) within the
 * window the message falls in; a repeat is TSI_E_DUPLICATE.
 *
 * Conflicts: for each unordered pair of distinct road users of a window (vehicle–
 * vehicle, and vehicle–person PSM), time-aligned samples (nearest in time, at most
 * align_s apart; the earlier one extrapolated at constant velocity to the later time)
 * give a centre distance and a TTC in the intersection's local tangent plane; the pair
 * is one event when any aligned sample has TTC <= the threshold while closing, or a
 * distance below the threshold. A pair counts at most once per minute; an audit record
 * (ids, min TTC, min distance) is produced for each counted pair.
 *
 * Ownership: the engine borrows the registry (it must outlive the engine, and is read
 * on every push). The tsi_window_result given to the callback, and its conflicts, are
 * valid only during the callback. Not thread-safe: one engine per thread. Memory is
 * bounded by the open windows; closed windows return their memory to a pool. */
#ifndef TSI_CORE_ENGINE_H
#define TSI_CORE_ENGINE_H

#include <stdint.h>

#include "base/error.h"
#include "core/index.h"
#include "core/messages.h"
#include "core/registry.h"

typedef struct tsi_feature_config {
    int64_t grace_ms;        /* default 10000 */
    double hard_brake_accel; /* accelSet.lon <= this (m/s²): default -3.0 */
    double hard_brake_drop;  /* speed drop rate >= this (m/s per s): default 3.0 */
    double vru_ttc_s;        /* default 3.0 */
    double vru_dist_m;       /* default 5.0 */
    double veh_ttc_s;        /* default 1.5 */
    double veh_dist_m;       /* default 2.0 */
    double align_s;          /* time alignment of two samples: default 1.0 */
    double default_length_m; /* vehicle length when size.length is unknown: 4.8 */
    double vru_radius_m;     /* added to half the vehicle length for a person: 0.5 */
    double same_position_m;  /* two vehicle ids closer than this are one vehicle: 0.1 */
    int64_t max_skew_ms;     /* clock sanity (see above): default 120000; <= 0: off */
} tsi_feature_config;

void tsi_feature_config_default(tsi_feature_config *c);

enum { TSI_CONFLICT_VRU = 1, TSI_CONFLICT_VEHICLE = 2 };

typedef struct tsi_conflict {
    int64_t intersection_id;
    int64_t minute_ms;
    int kind;              /* TSI_CONFLICT_* */
    int64_t id_a, id_b;    /* vehicle–vehicle: id_a < id_b; VRU: a = vehicle, b = PSM */
    double min_ttc_s;      /* NAN when no TTC existed (distance-only event) */
    double min_distance_m; /* at aligned samples */
    int64_t at_ms;         /* time of the aligned sample with the smallest TTC (or distance) */
} tsi_conflict;

typedef struct tsi_window_result {
    tsi_features features;
    const tsi_conflict *conflicts;
    int nconflicts;
    int duplicates; /* repeats dropped in this window */
} tsi_window_result;

typedef void (*tsi_window_cb)(void *ud, const tsi_window_result *r);

typedef struct tsi_push_info {
    int64_t intersection_id; /* -1 when unmatched */
    int64_t minute_ms;
    int64_t offset_ms; /* TSI_E_CLOCK_SKEW: timestamp − reference (negative: in the past) */
} tsi_push_info;

#define TSI_CLOCK_NONE INT64_MIN /* no reference clock: no clock sanity check */

typedef struct tsi_engine_stats {
    long long accepted, duplicates, late, unmatched, skewed;
    long long windows_closed;
    long long open_windows;
    int64_t clock_ms;
} tsi_engine_stats;

typedef struct tsi_engine tsi_engine;

tsi_engine *tsi_engine_new(const tsi_feature_config *cfg, tsi_registry *reg, tsi_window_cb cb,
                           void *ud);
void tsi_engine_free(tsi_engine *e); /* NULL-safe; open windows are dropped, not reported */

/* Pushes one decoded message. info may be NULL. Same as tsi_engine_push_ref with
 * TSI_CLOCK_NONE. */
int tsi_engine_push(tsi_engine *e, const tsi_msg *m, tsi_push_info *info, tsi_error *err);
/* Pushes one decoded message judged against the receiver's clock ref_ms (see above). */
int tsi_engine_push_ref(tsi_engine *e, const tsi_msg *m, int64_t ref_ms, tsi_push_info *info,
                        tsi_error *err);
/* Pushes a message already assigned to an intersection (reprocessing, simulator). */
int tsi_engine_push_at(tsi_engine *e, const tsi_isect *isect, const tsi_msg *m, tsi_push_info *info,
                       tsi_error *err);
/* Advances the stream clock (never backwards) and closes what is due. */
void tsi_engine_advance(tsi_engine *e, int64_t clock_ms);
/* Closes every open window, in minute order. */
void tsi_engine_flush(tsi_engine *e);
void tsi_engine_get_stats(const tsi_engine *e, tsi_engine_stats *out);

/* The median of n > 0 timestamps (the lower of the two middle ones when n is even): a
 * clock estimate that a minority of wrong timestamps cannot move. Reorders ts. */
int64_t tsi_median_ms(int64_t *ts, int n);

/* Minute start of an epoch-ms timestamp (floor, also for negative values). */
int64_t tsi_minute_of(int64_t ts_ms);

/* TTC of two discs moving at constant velocity: relative position (px, py) of b from a
 * in metres, relative velocity (vx, vy) of b from a in m/s, collision distance r. The
 * first t >= 0 at which the centre distance equals r while closing; 0 when already
 * within r and closing; NAN when separating or when it never reaches r. */
double tsi_ttc(double px, double py, double vx, double vy, double r);

#endif
