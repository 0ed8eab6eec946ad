/* tools/validate.h — Parquet ⇄ PostgreSQL validation (`tsi validate`, and the last step
 * of `tsi backfill`): the requirement's MR-2.
 *
 * Compares the valid rows of the indices Parquet (archive/parquet_read.h: pq_valid,
 * pq_hourly, already prepared on p) with PostgreSQL:
 *   realtime_rows_per_day  rows per UTC day and intersection inside the realtime window
 *   realtime_stats         mean/min/max of the safety index per intersection (window)
 *   realtime_sample        a random sample of window rows, every column, field by field
 *   minutes_per_day        minutes covered per UTC day and intersection (hourly rollups)
 *   hourly                 every hourly rollup row, field by field, both directions
 *   intersection_stats     minute-weighted mean/min/max per intersection (hourly)
 *   daily                  every daily rollup row: avg/min/max, volumes, high-risk hours,
 *                          peak
 * Numbers match when |a - b| <= tolerance * max(1, |a|, |b|); NULL matches only NULL.
 * Buckets the jobs have not rolled up yet by design (the current hour, today) and
 * hourly rows past their retention are not compared.
 *
 * Ownership: p and c are borrowed; the report is written to out. */
#ifndef TSI_TOOLS_VALIDATE_H
#define TSI_TOOLS_VALIDATE_H

#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"
#include "base/options.h"
#include "tools/pqr_pg.h"

/* `tsi validate` on options parsed with the table of cli/cmd_tools.c (--since, --until,
 * --from, --format, ...). Returns the exit status: 0 everything matches, 1 a difference or
 * a failure, 2 a bad option value. */
int tsi_validate_check(const tsi_opts *o);

typedef enum { TSI_VFMT_TEXT = 0, TSI_VFMT_JSON, TSI_VFMT_HTML } tsi_validate_format;

typedef struct tsi_validate_cfg {
    const char *from;      /* for the report */
    int64_t since_us;      /* first instant compared (UTC midnight) */
    int64_t until_us;      /* end (exclusive) */
    int64_t now_us;        /* the database's clock */
    int64_t rt_cut_us;     /* first hour held in the realtime table */
    int64_t hourly_cut_us; /* first hour the hourly table still holds */
    int sample;            /* realtime rows sampled */
    uint32_t seed;         /* of the sample */
    double tolerance;      /* relative, see above */
    int max_issues;        /* listed in text/html (all are counted; JSON lists them all) */
    tsi_validate_format format;
    const tsi_pqr_summary *summary; /* what was read (may be NULL) */
} tsi_validate_cfg;

typedef struct tsi_validate_result {
    int64_t compared;   /* items compared, all checks */
    int64_t mismatches; /* items that differ */
} tsi_validate_result;

/* Runs every check, writes the report in the chosen format to out. Returns 0 (the
 * result says whether anything differs) or a negative code when a check could not run. */
int tsi_validate_run(tsi_pqr *p, PGconn *c, const tsi_validate_cfg *cfg, FILE *out,
                     tsi_validate_result *res, tsi_error *err);

/* The realtime window start (first whole hour within `hours` of now), the hourly
 * retention start and now, from the database's clock. */
int tsi_validate_clock(PGconn *c, int realtime_hours, int hourly_days, int64_t *now_us,
                       int64_t *rt_cut_us, int64_t *hourly_cut_us, tsi_error *err);

#endif
