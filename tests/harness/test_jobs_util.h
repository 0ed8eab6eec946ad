/* tests/harness/test_jobs_util.h — helpers shared by the jobs tests (issue 14).
 *
 * Rows are generated here, inserted as the collector would (tsi_writer), and every
 * expectation is computed from the generated rows in C, never read back from the code
 * under test. */
#ifndef TSI_TEST_JOBS_UTIL_H
#define TSI_TEST_JOBS_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "harness.h"
#include "jobs/jobs.h"

typedef struct jt_row {
    long long iid;
    long long ts; /* epoch seconds, minute-aligned */
    double raw;   /* combined_index */
    double eb;    /* combined_index_eb, NAN = NULL */
    int vol;
    /* features (constants) */
    int vru_events, veh_events, vru_count, hb; /* hb < 0 = NULL */
    double speed, sd;                          /* NAN = NULL */
    double vru_index, veh_index;               /* NAN = NULL */
} jt_row;

extern uint64_t jt_seed;
static inline double jt_rand(void) /* [0, 1) */
{
    jt_seed ^= jt_seed << 13;
    jt_seed ^= jt_seed >> 7;
    jt_seed ^= jt_seed << 17;
    return (double)(jt_seed >> 11) / 9007199254740992.0;
}

/* intersections 1..n, as the owner */
void jt_intersections(PGconn *owner, int n);

void jt_num(tsi_buf *b, double v);

/* Inserts rows into safety_indices_realtime through c (the collector's role). */
void jt_insert(PGconn *c, const jt_row *rows, size_t n);

/* A plain row with random index values (eb NULL with probability p_null). */
jt_row jt_make(long long iid, long long ts, double lo, double hi, double p_null);

/* Runs a job through the library (as tsi_jobs) and asserts that it succeeded. */
void jt_run_ok(const char *job, const char *at, const char *params, tsi_job_result *out);

/* The database's clock (epoch seconds): what a job run without --at uses as its clock.
 * A test that lets the job take now() dates its rows by this clock, never by its own
 * (the two differ under a faked or skewed client clock). */
long long jt_server_now(PGconn *c);

/* "to_timestamp(ts)" text as PostgreSQL reads it (UTC) */
const char *jt_at(char *buf, size_t len, long long ts);

/* md5 of a table's rows in a stable order, columns as given */
char *jt_digest(PGconn *c, const char *cols, const char *table, const char *order);

/* sample statistics of a list (two passes) */
typedef struct jt_stats {
    size_t n;
    double mean, min, max, std; /* std NAN when n < 2 */
} jt_stats;

jt_stats jt_stats_of(const double *v, size_t n);

#define JT_EPS 1e-9
#define jt_close(a, b)                                                                             \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= JT_EPS))                                                            \
            fail_msg("%s = %.17g, expected %s = %.17g (line %d)", #a, a_, #b, b_, __LINE__);       \
    } while (0)

/* mean of one index (0 raw combined, 1 vru, 2 vehicle) over the rows of iid (0 = all) at an
 * hour of day (the UTC hour: jt_insert writes it so) in [lo, hi); *cnt gets the count of
 * non-NULL values */
double jt_mean_at(const jt_row *rows, size_t n, int which, long long iid, int hour, long long lo,
                  long long hi, long *cnt);

int jt_cmp_double(const void *a, const void *b);

/* the 85th percentile of v[0..n) (sorted here), linear interpolation between closest ranks
 * (rank 0.85·(n−1), PostgreSQL's percentile_cont); NAN when n == 0 */
double jt_p85(double *v, size_t n);

/* A 1-minute row with every index column and the model provenance (issue 26). */
typedef struct jt_mrow {
    long long iid, ts, cid;                   /* cid: constants_id */
    double raw, eb, vru, vru_eb, veh, veh_eb; /* NAN = NULL */
    int vol, ver;                             /* ver: algorithm_version */
} jt_mrow;

double jt_maybe(double p_null, double hi);

/* Two UTC days from `day` for intersections 1 and 2, a minute every 1-3 minutes, some
 * indices NULL; constants set 7 for the first 30 hours, then set 9 (the second day is
 * mixed), algorithm version 1. Returns the row count. */
size_t jt_two_days(jt_mrow *out, size_t cap, long long day);

/* Inserts jt_mrows into safety_indices_realtime through c (hour_of_day: UTC). */
void jt_insert_m(PGconn *c, const jt_mrow *rows, size_t n);

/* mean, min, max and count of the VRU (which 0) or vehicle (1) index the API reports (EB,
 * else raw) over iid's rows in [lo, hi) */
jt_stats jt_sub_stats(const jt_mrow *rows, size_t n, long long iid, int which, long long lo,
                      long long hi);

/* The normalisation constants the constants job should compute from rows[0..n) in
 * [lo, hi), computed here independently: the maxima of VRU and vehicle events, volume,
 * speed standard deviation and hard braking (0 becomes 1: the job never divides by 0), the
 * 85th percentile of the positive speeds (S_ref), and the minutes counted. */
typedef struct jt_constants {
    double vru_max, veh_max, v_max, sd_max, hb_max, s_ref;
    long long minutes;
} jt_constants;
jt_constants jt_constants_of(const jt_row *rows, size_t n, long long lo, long long hi);

#endif
