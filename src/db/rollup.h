/* db/rollup.h — the jobs' rollup arithmetic (migrations 010 and 060: tsi_rollup_hours,
 * tsi_rollup_days; domain.md §5) in C, for a writer that builds rollups without PostgreSQL
 * computing them (tsi seed writes history beyond the 1-minute window this way).
 * tests/integration/test_db_rollup.c checks that it agrees with the jobs' SQL on the same
 * minutes: hourly mean, min, max, sample standard deviation, volume and high-risk minutes
 * (above TSI_RISK_HIGH); daily minute-weighted mean, pooled standard deviation, volume,
 * high-risk hours and the peak hour.
 *
 * Ownership: plain values; the caller owns every array. Thread-safe. */
#ifndef TSI_DB_ROLLUP_H
#define TSI_DB_ROLLUP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct tsi_rollup_hour {
    int64_t hour;             /* epoch seconds of the hour start */
    int n;                    /* minutes with a row */
    double avg, min, max, sd; /* sd: sample (NaN when n < 2) */
    int64_t total_vol;
    int high_risk_minutes;
    /* the VRU (0) and vehicle (1) sub-index: mean, min, max over the n minutes; modelled
     * hours only (has_sub; the 1-minute window's hours get theirs from tsi_rollup_hours) */
    bool has_sub;
    double sub[2][3];
} tsi_rollup_hour;

typedef struct tsi_rollup_day {
    int64_t day;
    int n;
    double avg, min, max, sd;
    int64_t total_vol;
    int high_risk_hours, peak_hour;
    double peak_si;
    bool has_sub; /* every hour has its sub-indices (tsi_rollup_hour) */
    double sub[2][3];
} tsi_rollup_day;

/* An hour from its n >= 1 minutes (si: each minute's safety index, the EB-adjusted one
 * where there is one; vol: its traffic volume). h->hour is left to the caller; the
 * sub-indices are not computed (has_sub false: the jobs derive them). */
void tsi_rollup_hour_of_minutes(tsi_rollup_hour *h, const double *si, const int *vol, int n);

/* A day from the nh >= 1 hours of it that have rows (each with its n minutes). */
void tsi_rollup_day_of_hours(tsi_rollup_day *d, const tsi_rollup_hour *hs, int nh);

#endif
