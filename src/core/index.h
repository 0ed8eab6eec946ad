/* core/index.h — the safety index (domain.md §4): normalised terms, clipping,
 * normalisation constants from 1-minute features, Empirical Bayes with the prior
 * hierarchy, risk levels. Pure functions and plain structs: the database layer loads
 * and stores tsi_constants (as the JSON object of normalization_constants.constants)
 * and fills tsi_priors from history.
 *
 * Ownership: tsi_constants_acc and tsi_priors own their memory (free with their _free,
 * NULL-safe). Everything else is values. */
#ifndef TSI_CORE_INDEX_H
#define TSI_CORE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/error.h"

/* The features of one intersection-minute (domain.md §3). */
typedef struct tsi_features {
    int64_t intersection_id;
    int64_t minute_ms;   /* UTC epoch ms of the minute's start */
    int traffic_volume;  /* distinct BSM ids */
    int vru_count;       /* distinct PSM ids */
    double avg_speed;    /* m/s, mean of per-vehicle mean speeds (0 without speeds) */
    double speed_stddev; /* sample sd of per-message speeds (0 if < 2) */
    int hard_braking_count;
    int vru_event_count;
    int vehicle_event_count;
    /* accounting (not index inputs) */
    int bsm_messages, psm_messages; /* accepted (deduplicated) messages */
} tsi_features;

/* Normalisation constants; JSON keys I_vru_max, I_veh_max, V_max, sigma_max, S_ref,
 * HB_max, k. */
typedef struct tsi_constants {
    double I_vru_max, I_veh_max, V_max, sigma_max, S_ref, HB_max;
    double k;       /* Empirical Bayes strength */
    int64_t set_id; /* normalization_constants.id the values came from; 0 = none (defaults,
                       a file): recorded with every index row (model provenance) */
} tsi_constants;

/* The version of the feature and index code: bumped whenever a change makes the same
 * messages give a different feature or index value (a threshold, a formula, a rule of
 * dedupe or windows). Every 1-minute row records the version that computed it
 * (safety_indices_realtime.algorithm_version, docs/domain-core.md § Model provenance). */
#define TSI_ALGORITHM_VERSION 1

/* The configured defaults used until data exists (the worked vector's constants). */
extern const tsi_constants tsi_constants_default;

/* Parses a constants JSON object. Every one of the six normalisation keys is required
 * (TSI_E_MISSING names the first absent one: an empty file is an error, never a silent
 * index of 0); each must be a finite number > 0 (TSI_E_RANGE). `k` is optional
 * (default 50, >= 0). Unknown keys are ignored. */
int tsi_constants_from_json(const char *js, size_t len, tsi_constants *out, tsi_error *err);
/* Appends the constants as a JSON object with the keys above. */
void tsi_constants_to_json(const tsi_constants *c, tsi_buf *out);

/* Builds constants from 1-minute features: maxima of vru_event_count,
 * vehicle_event_count, traffic_volume, speed_stddev and hard_braking_count, and the 85th
 * percentile (linear interpolation) of avg_speed over minutes with avg_speed > 0; a
 * maximum (or percentile) of zero becomes 1. */
typedef struct tsi_constants_acc {
    double max_vru, max_veh, max_v, max_sigma, max_hb;
    double *speeds;
    size_t nspeeds, cap;
    size_t minutes;
} tsi_constants_acc;

void tsi_constants_acc_init(tsi_constants_acc *a);
void tsi_constants_acc_add(tsi_constants_acc *a, const tsi_features *f);
/* Fills out (k as given). Returns 0, or TSI_E_NOTFOUND when no minute was added (the
 * caller keeps its configured defaults). Sorts the accumulated speeds. */
int tsi_constants_acc_finish(tsi_constants_acc *a, double k, tsi_constants *out);
void tsi_constants_acc_free(tsi_constants_acc *a);

/* p-th quantile (0..1) of sorted values, linear interpolation between closest ranks
 * (rank = p·(n−1), the definition of numpy's default and PostgreSQL's
 * percentile_cont). NAN when n == 0. */
double tsi_quantile_sorted(const double *sorted, size_t n, double p);

enum { TSI_PRIOR_NONE = 0, TSI_PRIOR_INTERSECTION = 1, TSI_PRIOR_NETWORK = 2 };

/* One minute's index: raw (clipped) values, each term's contribution in index points
 * (before clipping), and the Empirical Bayes forms. */
typedef struct tsi_index {
    double vru, vehicle, combined; /* raw, each clipped to 0..100 */
    /* contributions in points (100·weight·value/constant), unclipped */
    double vru_t_events, vru_t_volume, vru_t_speed, vru_t_stddev;
    double veh_t_events, veh_t_volume, veh_t_stddev, veh_t_braking;
    double vru_unclipped, vehicle_unclipped;
    /* Empirical Bayes */
    double n, lambda;
    double prior_vru, prior_vehicle, prior_combined;
    int prior_source; /* TSI_PRIOR_* */
    double vru_eb, vehicle_eb, combined_eb;
} tsi_index;

/* Raw index of one minute. A constant that is not a finite positive number is taken as
 * 1 (the zero → 1 rule), so the result is always finite. EB fields are set to the raw
 * values with prior_source NONE (λ = 1). */
void tsi_index_compute(const tsi_features *f, const tsi_constants *c, tsi_index *out);

/* Applies Empirical Bayes: X_eb = λ·X + (1−λ)·P, λ = N/(N+k), N = traffic_volume +
 * vru_count. prior = {P_vru, P_vehicle, P_combined}, or NULL for "no history" (P = X).
 * k <= 0 gives λ = 1; N = 0 with k > 0 gives λ = 0 (the prior alone). */
void tsi_index_eb(tsi_index *x, const tsi_features *f, double k, const double prior[3],
                  int prior_source);

/* The risk thresholds (domain.md): "High" above TSI_RISK_HIGH, "Medium" from
 * TSI_RISK_MEDIUM to TSI_RISK_HIGH inclusive, "Low" below. High-risk minutes and hours
 * (history, stats, rollups) are those above TSI_RISK_HIGH; SQL text that counts them
 * writes TSI_RISK_HIGH_SQL, the same number as a literal. */
#define TSI_RISK_HIGH     75
#define TSI_RISK_HIGH_SQL "75"
#define TSI_RISK_MEDIUM   60

/* "Low" (< 60), "Medium" (60..75 inclusive), "High" (> 75), and their colours. */
const char *tsi_risk_level(double index);
const char *tsi_risk_colour(double index);

/* Prior hierarchy: mean raw X per (intersection, hour of day); with fewer than
 * TSI_PRIOR_MIN_MINUTES minutes of such history, the network-wide mean at that hour;
 * with none, no prior. */
#define TSI_PRIOR_MIN_MINUTES 60

typedef struct tsi_priors tsi_priors;

tsi_priors *tsi_priors_new(void);
void tsi_priors_free(tsi_priors *p);
/* Adds one minute of history: raw = {VRU, Vehicle, Combined}, hour 0..23. */
void tsi_priors_add(tsi_priors *p, int64_t intersection_id, int hour, const double raw[3]);
/* Loads pre-aggregated history (what the database returns): means over `minutes`. The
 * network-wide figures are derived from what was loaded per intersection. */
void tsi_priors_set(tsi_priors *p, int64_t intersection_id, int hour, const double mean[3],
                    long minutes);
/* Fills out[3] and returns the TSI_PRIOR_* source used. */
int tsi_priors_get(const tsi_priors *p, int64_t intersection_id, int hour, double out[3]);

#endif
